/*
 * baton-exec: the guard Baton's command runner puts in front of every user command.
 *
 *   baton-exec [--grace-ms N] [--input PATH] -- program [argument ...]
 *
 * Standard input of baton-exec is the lifeline: the read end of a pipe whose only write end the Baton
 * service holds (close-on-exec, so no other child inherits it). When the service dies, by any means and
 * from any thread, the pipe reaches end-of-file and baton-exec SIGKILLs the command's process group.
 *
 * The command runs in a new process group of its own, with PATH (or /dev/null) as its standard input.
 * - When the command exits, anything it left running in its process group is killed (SIGKILL), and
 *   baton-exec exits with the command's status (or dies by the same signal that ended it).
 * - On SIGTERM (or SIGINT, SIGHUP) baton-exec sends SIGTERM to the command's group and, if the group is
 *   not gone after the grace period, SIGKILLs it.
 * - baton-exec is a child subreaper: the group's orphans become its children, so it can wait until every
 *   process of the group is gone before it exits. When baton-exec exits, the command's group is empty.
 * - If the program cannot be started, a message goes to standard error and the status is 127.
 * Plain C, no dependencies, Linux only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void usage(void) {
    fprintf(stderr, "usage: baton-exec [--grace-ms N] [--input PATH] -- program [argument ...]\n");
    exit(2);
}

static pid_t child = -1;
static int child_status = 0;
static int child_reaped = 0;

/* Reaps every child that has ended (the command's orphans come to us as subreaper), noting the command's status. */
static void reap(void) {
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid == child) { child_status = status; child_reaped = 1; }
    }
}

/* SIGKILLs the command's group and waits (at most about 2 s) until no process of it is left, zombies included. */
static void kill_group(void) {
    kill(-child, SIGKILL);
    long long deadline = now_ms() + 2000;
    for (;;) {
        reap();
        if ((child_reaped && kill(-child, 0) != 0) || now_ms() >= deadline) break;
        struct timespec pause = {0, 2 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    if (!child_reaped && waitpid(child, &child_status, 0) == child) child_reaped = 1;
}

/* Ends baton-exec the way the command ended. */
static void exit_like(int status) {
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        signal(sig, SIG_DFL);
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, sig);
        sigprocmask(SIG_UNBLOCK, &set, NULL);
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0); /* no second core dump for the command's crash */
        raise(sig);
        _exit(128 + sig);
    }
    _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 1);
}

int main(int argc, char **argv) {
    long grace_ms = 5000;
    const char *input = NULL;
    int i = 1;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) { i++; break; }
        if (strcmp(argv[i], "--grace-ms") == 0 && i + 1 < argc) { grace_ms = atol(argv[++i]); continue; }
        if (strcmp(argv[i], "--input") == 0 && i + 1 < argc) { input = argv[++i]; continue; }
        usage();
    }
    if (i >= argc) usage();
    char **command = argv + i;

    /* The lifeline moves off standard input (close-on-exec), which becomes the command's input. */
    int lifeline = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
    if (lifeline < 0) { perror("baton-exec: no lifeline on standard input"); return 126; }
    int in = open(input ? input : "/dev/null", O_RDONLY);
    if (in < 0) {
        fprintf(stderr, "baton-exec: cannot open %s as the command's input: %s\n", input ? input : "/dev/null", strerror(errno));
        return 126;
    }
    dup2(in, STDIN_FILENO);
    if (in != STDIN_FILENO) close(in);

    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    sigset_t handled, previous;
    sigemptyset(&handled);
    sigaddset(&handled, SIGCHLD);
    sigaddset(&handled, SIGTERM);
    sigaddset(&handled, SIGINT);
    sigaddset(&handled, SIGHUP);
    sigprocmask(SIG_BLOCK, &handled, &previous);
    int signals = signalfd(-1, &handled, SFD_CLOEXEC);
    if (signals < 0) { perror("baton-exec: signalfd"); return 126; }

    pid_t guard = getpid();
    child = fork();
    if (child < 0) { perror("baton-exec: fork"); return 126; }
    if (child == 0) {
        setpgid(0, 0);
        /* If baton-exec itself is SIGKILLed, the command goes too (baton-exec is single-threaded). */
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        if (getppid() != guard) _exit(127);
        for (int s = 1; s < NSIG; s++) signal(s, SIG_DFL); /* e.g. SIGPIPE, ignored by the service */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execvp(command[0], command);
        fprintf(stderr, "baton-exec: cannot run %s: %s\n", command[0], strerror(errno));
        _exit(127);
    }
    setpgid(child, child); /* also here, so the group exists before we ever signal it */

    long long kill_at = -1; /* when a SIGTERM's grace period ends */
    for (;;) {
        int timeout = -1;
        if (kill_at >= 0) {
            long long left = kill_at - now_ms();
            timeout = left < 0 ? 0 : (int)left;
        }
        struct pollfd fds[2] = {{lifeline, POLLIN, 0}, {signals, POLLIN, 0}};
        int ready = poll(fds, 2, timeout);
        if (ready < 0) {
            if (errno == EINTR) continue;
            kill_group();
            return 126;
        }
        if (ready == 0 && kill_at >= 0 && now_ms() >= kill_at) {
            kill_group();
            exit_like(child_status);
        }
        if (fds[0].revents) {
            char buffer[64];
            ssize_t got = read(lifeline, buffer, sizeof buffer);
            if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN)) {
                /* The service is gone: nobody waits for this command any more. */
                kill_group();
                _exit(137);
            }
        }
        if (fds[1].revents) {
            struct signalfd_siginfo info;
            if (read(signals, &info, sizeof info) != sizeof info) continue;
            if (info.ssi_signo == SIGCHLD) {
                siginfo_t ended;
                memset(&ended, 0, sizeof ended);
                /* Look without reaping: the zombie keeps the group id from being reused while we kill it. */
                if (waitid(P_PID, child, &ended, WEXITED | WNOHANG | WNOWAIT) == 0 && ended.si_pid == child) {
                    kill(-child, SIGKILL);
                    kill_group();
                    exit_like(child_status);
                }
                /* Reap orphans only: never the command itself, whose zombie holds the group id. */
                int status;
                pid_t pid;
                while ((pid = waitpid(-1, &status, WNOHANG | __WALL)) > 0 && pid != child) {}
                if (pid == child) { child_status = status; child_reaped = 1; kill_group(); exit_like(child_status); }
            } else if (kill_at < 0) {
                kill(-child, SIGTERM);
                kill_at = now_ms() + grace_ms;
            }
        }
    }
}
