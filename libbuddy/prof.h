/* prof.h: heap profiling (prof=1, leaks=1): the samples of allocations with
 * their stacks (prof.c), the stacks' unwinder (prof_unwind.c, prof_cfi.c),
 * and the heap profile and leak report made from them (prof_dump.c). The caches decide which small allocations are
 * sampled (tcache_prof.c); the API serves a sampled block from a page run of its own and records it here.
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
/* After start-up, with no lock held: the allocator's own code range (its
 * frames are left out of the stacks). */
void prof_start(void);
/* A page run or huge block of `bytes` is about to be allocated: whether it
 * reaches the calling thread's sample point for large blocks. */
bool prof_large_due(size_t bytes);
/* Records a sampled block of `bytes` with the calling thread's stack, and
 * returns the stack's number, which the block keeps (prof_record_t) for its
 * free; PROF_NO_STACK if nothing was recorded (the thread is already inside:
 * a signal handler's allocation; the table is full). */
uint32_t prof_note(size_t bytes);
/* A sampled block is being freed: its record. */
void prof_forget(prof_record_t sample);
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
 * returns how many. *dropped: the samples the full table could not take. */
size_t prof_copy_stacks(prof_stack_t *out, size_t max, uint64_t *dropped);
/* The stacks' count, to size a copy. */
size_t prof_stack_count(void);

/* ---- prof_unwind.c, prof_cfi.c: the stack walk ----------------------------
 *
 * The heap profile's unwinder (x86-64 Linux; elsewhere glibc's backtrace()),
 * for prof.c alone: the return addresses of the calling thread's stack,
 * from the DWARF call frame information of the loaded objects (.eh_frame, found by their .eh_frame_hdr), with each call
 * site's frame rule kept in a cache.
 *
 *  - prof_unwind.c: the walk up the stack, and the cache of rules;
 *  - prof_cfi.c: a rule made from the tables, on a cache miss.
 *
 * A rule says, for one address of code, how to find its caller's frame:
 *   CFA = rsp + cfa_off, or rbp + cfa_off (the CFA: the stack pointer
 *         before the call that made the frame);
 *   return address = [CFA + ra_off] (ra_off is -8 from every compiler);
 *   caller's rbp   = unchanged, or [CFA + bp_off], or lost (not followed:
 *                    a caller whose CFA is rbp-based then ends the stack);
 * or that the stack ends there (the outermost frame, or code whose rule
 * the walk cannot follow), or that the frame is a signal frame (glibc's
 * __restore_rt: the interrupted registers are in the ucontext at the CFA).
 * Packed in 64 bits, so that the cache reads and writes one as a word:
 *   bits  0-2   kind (unwind_kind_t)    bits 16-31  bp_off (signed)
 *   bits  3-4   how rbp is found        bits 32-63  cfa_off (signed)
 *   bits  8-15  ra_off (signed)
 */
typedef enum unwind_kind {
  UNWIND_STOP = 1,   /* the walk ends before this frame's caller: no rule */
  UNWIND_END = 2,    /* the outermost frame (its return address undefined) */
  UNWIND_SIGNAL = 3, /* a signal frame: the registers from the ucontext */
  UNWIND_CFA_RSP = 4,
  UNWIND_CFA_RBP = 5,
} unwind_kind_t;

typedef enum unwind_bp {
  UNWIND_BP_SAME = 0,  /* the caller's rbp is this frame's */
  UNWIND_BP_SAVED = 1, /* at CFA + bp_off */
  UNWIND_BP_LOST = 2,  /* in a register or an expression: not followed */
} unwind_bp_t;

typedef uint64_t unwind_rule_t;
#define UNWIND_KIND_MASK 7
#define UNWIND_BP_SHIFT 3
#define UNWIND_BP_MASK 3
#define UNWIND_RA_OFF_SHIFT 8
#define UNWIND_BP_OFF_SHIFT 16
#define UNWIND_CFA_OFF_SHIFT 32

static inline unwind_rule_t unwind_rule(unwind_kind_t kind, unwind_bp_t bp, int8_t ra_off, int16_t bp_off,
                                        int32_t cfa_off) {
  return (uint64_t)kind | (uint64_t)bp << UNWIND_BP_SHIFT | (uint64_t)(uint8_t)ra_off << UNWIND_RA_OFF_SHIFT |
         (uint64_t)(uint16_t)bp_off << UNWIND_BP_OFF_SHIFT | (uint64_t)(uint32_t)cfa_off << UNWIND_CFA_OFF_SHIFT;
}
/* No rule is 0: the cache's "not cached". */
static inline unwind_rule_t unwind_stop_rule(void) {
  return unwind_rule(UNWIND_STOP, UNWIND_BP_LOST, 0, 0, 0);
}
static inline unwind_kind_t unwind_rule_kind(unwind_rule_t r) {
  return (unwind_kind_t)(r & UNWIND_KIND_MASK);
}
static inline unwind_bp_t unwind_rule_bp(unwind_rule_t r) {
  return (unwind_bp_t)(r >> UNWIND_BP_SHIFT & UNWIND_BP_MASK);
}
static inline int64_t unwind_rule_ra_off(unwind_rule_t r) {
  return (int8_t)(uint8_t)(r >> UNWIND_RA_OFF_SHIFT);
}
static inline int64_t unwind_rule_bp_off(unwind_rule_t r) {
  return (int16_t)(uint16_t)(r >> UNWIND_BP_OFF_SHIFT);
}
static inline int64_t unwind_rule_cfa_off(unwind_rule_t r) {
  return (int32_t)(uint32_t)(r >> UNWIND_CFA_OFF_SHIFT);
}

/* Maps the cache of rules (sampling on, at start-up); false if it cannot:
 * prof_unwind then finds nothing. */
bool prof_unwind_init(void);
/* After start-up, outside any lock: on an architecture other than x86-64,
 * where prof_unwind is glibc's backtrace(), its first call (which loads
 * libgcc_s, and allocates). */
void prof_unwind_start(void);
/* The return addresses of the calling function's callers, innermost first,
 * at most max of them, into frames; returns how many. frames[0] is in the
 * caller of prof_unwind, as with glibc's backtrace(). Allocates nothing and
 * takes no lock of ours; built against glibc 2.35 or later (_dl_find_object),
 * no lock at all: async-signal-safe. */
int prof_unwind(void **frames, int max);

/* The rule of the code at pc (a return address less 1, or the exact
 * address of an instruction), from the unwind tables of the object that
 * holds it; UNWIND_STOP when there is none the walk can follow. */
unwind_rule_t prof_cfi_rule(uintptr_t pc);

/* ---- prof_dump.c: the heap profile and the leak report ------------------- */

/* The heap profile (gperftools' text format) into path; false on failure. */
bool prof_dump(const char *path);
/* On prof_signal (the snapshot thread): PREFIX.N.heap, N counting from 1. */
void prof_dump_on_signal(void);

#pragma GCC visibility pop

#endif /* BUDDY_PROF_H */
