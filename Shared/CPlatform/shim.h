#include <openssl/evp.h>
#include <sys/prctl.h>
#include <signal.h>

/* prctl is variadic, which Swift cannot call: ask the kernel to signal us when our parent dies. */
static inline int baton_set_parent_death_signal(int sig) { return prctl(PR_SET_PDEATHSIG, (unsigned long)sig, 0, 0, 0); }

#include <fcntl.h>
#include <unistd.h>
/* glibc declares pipe2 only under _GNU_SOURCE: a pipe whose two ends are close-on-exec from the start. */
int pipe2(int pipefd[2], int flags);
static inline int baton_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

/* Names the calling thread (15 bytes at most), as shown in /proc/<pid>/task/<tid>/comm. */
static inline int baton_set_thread_name(const char *name) { return prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0); }
