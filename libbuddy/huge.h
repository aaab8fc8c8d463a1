/* huge.h: blocks with a mapping of their own, and their cache (huge.c).
 */
#ifndef BUDDY_HUGE_H
#define BUDDY_HUGE_H

#include "zone.h"

#pragma GCC visibility push(hidden)

/* ---- huge.c: blocks with a mapping of their own -------------------------- */

/* *zeroed: whether the block is fresh from the OS (else it held data). */
void *huge_alloc(size_t size, size_t align, bool *zeroed);
void huge_free(huge_t *h, void *p);
size_t huge_usable_size(huge_t *h, const void *p);
/* Unmaps every cached huge block (malloc_trim), or those past the delay. */
void huge_trim(void);
void huge_expire(void);
extern size_t huge_cached_bytes;
extern size_t huge_live_blocks, huge_live_bytes; /* atomic */
extern uint64_t huge_requests;                   /* atomic: blocks handed out */
/* Descriptors (huge_t) in use, live blocks' and cached ones': small objects
 * of class HUGE_DESC_CLASS that the allocator takes for itself, with no
 * request (the statistics count them apart). Atomic. */
extern size_t huge_descriptors;
#define HUGE_DESC_CLASS size_class_of(sizeof(huge_t))
void *huge_realloc(huge_t *h, void *p, size_t size);
/* Secure mode, from the fault handler: reports a fault in a guard page of a
 * huge block (and aborts); returns if addr is in none. */
void huge_fault(void *addr);
void huge_fork_prepare(void);
void huge_fork_parent(void);
void huge_fork_child(void);

#pragma GCC visibility pop

#endif /* BUDDY_HUGE_H */
