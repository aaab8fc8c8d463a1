/* prof.h: heap profiling (prof=1, leaks=1): the samples of allocations with
 * their stacks (prof.c), and the heap profile and leak report made from
 * them (prof_dump.c). The caches decide which small allocations are sampled
 * (tcache_prof.c); the API serves a sampled block from a page run of its own
 * and records it here.
 */
#ifndef BUDDY_PROF_H
#define BUDDY_PROF_H

#include "tcache.h"

#pragma GCC visibility push(hidden)

/* ---- prof.c: the samples ------------------------------------------------ */

/* Frames kept per sample (the innermost, the allocator's own left out). */
#define PROF_DEPTH 64

/* Start-up, options read: the tables, when sampling is on. */
void prof_init(void);
/* After start-up, with no lock held: the unwinder's first call, which loads
 * libgcc_s (and allocates), and the allocator's own code range. */
void prof_start(void);
/* A page run or huge block of `bytes` is about to be allocated: whether it
 * reaches the calling thread's sample point for large blocks. */
bool prof_large_due(size_t bytes);
/* Records the sampled block p of `bytes` with the calling thread's stack;
 * nothing if the thread is already inside (the unwinder allocating). */
void prof_note(void *p, size_t bytes);
/* p, a sampled block, is being freed. */
void prof_forget(void *p);
void prof_fork_prepare(void);
void prof_fork_parent(void);
void prof_fork_child(void);
/* The heap profile writer's lock (prof_dump.c), taken before every other. */
void prof_dump_fork_prepare(void);
void prof_dump_fork_parent(void);
void prof_dump_fork_child(void);

/* For prof_dump.c: one stack of allocations and what its samples add up to. */
typedef struct prof_stack {
  uint64_t hash;
  uint32_t depth;
  int tid;                           /* the thread of its first sample */
  uint64_t live_count, live_bytes;   /* samples not freed */
  uint64_t total_count, total_bytes; /* every sample */
  void *frames[PROF_DEPTH];          /* return addresses, innermost first */
} prof_stack_t;
/* Copies the stacks into out (at most max), under the samples' lock;
 * returns how many. *samples: the live samples, *dropped: the samples the
 * full tables could not take. */
size_t prof_copy_stacks(prof_stack_t *out, size_t max, uint64_t *dropped);
/* The stacks' count, to size a copy. */
size_t prof_stack_count(void);

/* ---- prof_dump.c: the heap profile and the leak report ------------------- */

/* The heap profile (gperftools' text format) into path; false on failure. */
bool prof_dump(const char *path);
/* On prof_signal (the snapshot thread): PREFIX.N.heap, N counting from 1. */
void prof_dump_on_signal(void);

#pragma GCC visibility pop

#endif /* BUDDY_PROF_H */
