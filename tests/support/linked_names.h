/* linked_names.h: with -DSTRESS_LINKED, the standard allocation functions
 * the stress and hang programs call are mapped onto buddymalloc's prefixed
 * API (libbuddy/include/buddymalloc.h), so one source builds both forms:
 * plain (run preloaded, or without the preload against glibc) and linked
 * with the static core. Include it after every system header (and after
 * test_support.h): a function-like macro named like a library function would
 * break its declaration. Apart from test_support.h for that reason: only the
 * programs built in both forms want the mapping. */
#ifndef LINKED_NAMES_H
#define LINKED_NAMES_H

#ifdef STRESS_LINKED
#include "buddymalloc.h"
#define malloc(n) buddy_malloc(n)
#define free(p) buddy_free(p)
#define calloc(n, s) buddy_calloc((n), (s))
#define realloc(p, n) buddy_realloc((p), (n))
#define posix_memalign(out, a, n) buddy_posix_memalign((out), (a), (n))
#define aligned_alloc(a, n) buddy_aligned_alloc((a), (n))
#define memalign(a, n) buddy_memalign((a), (n))
#endif

#endif /* LINKED_NAMES_H */
