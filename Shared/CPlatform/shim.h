#include <openssl/evp.h>
#include <sys/prctl.h>
#include <signal.h>

/* prctl is variadic, which Swift cannot call: ask the kernel to signal us when our parent dies. */
static inline int baton_set_parent_death_signal(int sig) { return prctl(PR_SET_PDEATHSIG, (unsigned long)sig, 0, 0, 0); }
