/*
 * version.c — the git commit lsa was built from, for provenance attributes. The only file compiled with
 * LSA_GIT_COMMIT, so that a new commit rebuilds one file, not the library.
 */
#include "lsa/lsa.h"

#ifndef LSA_GIT_COMMIT
#define LSA_GIT_COMMIT "unknown"
#endif

const char *lsa_commit(void) { return LSA_GIT_COMMIT; }
