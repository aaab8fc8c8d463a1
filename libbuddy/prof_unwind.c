/* prof_unwind.c: the heap profile's stack walk (prof.h): the return
 * addresses of the calling thread, frame by frame, by each call site's rule
 * (CFA, return address, rbp), with the rules kept in a cache shared by all
 * threads, so that a sample costs a hash lookup per frame once its call
 * sites were seen. A miss reads the unwind tables (prof_cfi.c).
 *
 * The walk starts in prof_unwind itself: one asm statement reads rip, rsp
 * and rbp together, so that the rule of that rip applies to that rsp. Each
 * return address is looked up less 1 (it follows the call, and may be the
 * start of the next function's code), as libgcc does; but the address a
 * signal interrupted is exact, so the frame after a signal frame is looked
 * up at it.
 *
 * Safety: every read of the stack is of 8 bytes within [sp, top), where sp
 * is the frame's own stack pointer (it only grows: each CFA must be above
 * the frame's sp, and becomes the caller's sp; a frame a signal interrupted
 * may also read its red zone, below its sp) and top is the top of the
 * thread's stack: the thread's descriptor (glibc puts it above the stack it
 * allocates, or at the top of one the program gave), or for the main thread
 * __libc_stack_end (where its stack began), if either is above sp and
 * within UNWIND_STACK_SPAN of it; else the end of sp's page (an alternate
 * signal stack, or a coroutine's far from both: the walk stops sooner).
 * libgcc's unwinder bounds none of its reads; with these, even a wrong rule
 * (an object unloaded and another loaded at its addresses after its rules
 * were cached: the cache keeps them) reads only the stack: it makes a wrong
 * stack, not a fault. Anything odd ends the walk: a CFA not above sp, a
 * return address of 0, a frame rule that needs an rbp that was lost.
 *
 * Where the walk stops early (a rule it does not follow: prof_cfi.c), the
 * sample's stack is shorter. There is no fallback to glibc's backtrace():
 * its first call loads libgcc_s, which allocates and takes the loader's
 * lock, from inside malloc; and what libgcc follows and we do not (PLT
 * stubs, ld.so's lazy binding, the *context functions) is seldom on an
 * allocation's stack: where a signal interrupted it, or where ld.so binds
 * a symbol and allocates (its CFA there is rbx-based).
 *
 * The cache: UNWIND_CACHE_SIZE slots mapped from the OS at start-up, open
 * addressing with UNWIND_PROBES probes from the pc's hash, no deletion (a
 * full probe run evicts the home slot). Each slot is a seqlock: a writer
 * makes its sequence odd with a compare-and-swap (a writer that loses it
 * just does not cache), writes pc and rule, and makes it even again; a
 * reader takes the rule only if the sequence was even and unchanged around
 * its reads. Every field is read and written atomically (acquire/release:
 * plain moves on x86-64), so TSan sees no race; no fence is needed. No lock:
 * a fork leaves the cache as it is; a slot some other thread was writing
 * stays odd in the child, whose pc is then looked up in the tables each
 * time (a cache only costs).
 */
#include "prof.h"

#include <execinfo.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>
#include <ucontext.h>

#define UNWIND_CACHE_BITS 14
#define UNWIND_CACHE_SIZE ((size_t)1 << UNWIND_CACHE_BITS)
#define UNWIND_PROBES 4
/* The farthest a thread's stack top may be above the walk's first sp. */
#define UNWIND_STACK_SPAN ((uintptr_t)1 << 30)
/* The x86-64 ABI's red zone: below a function's rsp, kept from signals. */
#define UNWIND_RED_ZONE 128
/* Where a signal frame (glibc's __restore_rt, at the CFA of the handler's
 * frame) keeps the interrupted registers. */
#if defined(__x86_64__)
static const bool unwind_native = true;
#define UNWIND_BACKTRACE_MAX 1 /* not used */
#define UNWIND_UC_RIP offsetof(ucontext_t, uc_mcontext.gregs[REG_RIP])
#define UNWIND_UC_RSP offsetof(ucontext_t, uc_mcontext.gregs[REG_RSP])
#define UNWIND_UC_RBP offsetof(ucontext_t, uc_mcontext.gregs[REG_RBP])
/* rip, rsp and rbp at one instruction. */
#define UNWIND_HERE(pc, sp, bp)                                                                                        \
  __asm__ volatile("leaq 0(%%rip), %0\n\tmovq %%rsp, %1\n\tmovq %%rbp, %2" : "=r"(pc), "=r"(sp), "=r"(bp))
#else
/* Another architecture: glibc's backtrace() (libgcc's unwinder), whose
 * first call, from prof_start (prof_unwind_start), loads libgcc_s. */
#define UNWIND_BACKTRACE_MAX 128
static const bool unwind_native = false;
#define UNWIND_UC_RIP 0
#define UNWIND_UC_RSP 0
#define UNWIND_UC_RBP 0
#define UNWIND_HERE(pc, sp, bp) ((pc) = (sp) = (bp) = 0)
#endif

typedef struct unwind_slot {
  uint64_t seq; /* odd while a writer fills the slot */
  uint64_t pc;  /* the code address looked up; 0: an empty slot */
  unwind_rule_t rule;
} unwind_slot_t;

static unwind_slot_t *unwind_cache; /* [UNWIND_CACHE_SIZE], NULL until mapped */

/* glibc's (ld.so's): the main thread's stack pointer at start-up. */
extern void *__libc_stack_end;

bool prof_unwind_init(void) {
  size_t bytes = (UNWIND_CACHE_SIZE * sizeof(unwind_slot_t) + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
  unwind_cache = os_map_aligned(bytes, PAGE_SIZE);
  return unwind_cache != NULL;
}

/* ---- the cache ---------------------------------------------------------- */

static size_t unwind_home(uintptr_t pc) {
  return (size_t)((pc * 0x9E3779B97F4A7C15ULL) >> (64 - UNWIND_CACHE_BITS));
}

static unwind_slot_t *unwind_slot(unwind_slot_t *cache, size_t home, unsigned probe) {
  return &cache[(home + probe) & (UNWIND_CACHE_SIZE - 1)];
}

/* The cached rule of pc, or 0. */
static unwind_rule_t unwind_cached(unwind_slot_t *cache, uintptr_t pc, size_t home) {
  for (unsigned i = 0; i < UNWIND_PROBES; i++) {
    unwind_slot_t *s = unwind_slot(cache, home, i);
    uint64_t seq = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
    uint64_t key = __atomic_load_n(&s->pc, __ATOMIC_ACQUIRE);
    if (key == 0) return 0;
    if (key != pc) continue;
    unwind_rule_t rule = __atomic_load_n(&s->rule, __ATOMIC_ACQUIRE);
    bool whole = (seq & 1) == 0 && __atomic_load_n(&s->seq, __ATOMIC_RELAXED) == seq;
    return whole ? rule : 0;
  }
  return 0;
}

/* Caches pc's rule: in its slot or the first empty one of its probes, else
 * over the home slot; not at all if another writer has that slot. */
static void unwind_remember(unwind_slot_t *cache, uintptr_t pc, size_t home, unwind_rule_t rule) {
  unwind_slot_t *s = unwind_slot(cache, home, 0);
  for (unsigned i = 0; i < UNWIND_PROBES; i++) {
    uint64_t key = __atomic_load_n(&unwind_slot(cache, home, i)->pc, __ATOMIC_RELAXED);
    if (key == 0 || key == pc) {
      s = unwind_slot(cache, home, i);
      break;
    }
  }
  uint64_t seq = __atomic_load_n(&s->seq, __ATOMIC_RELAXED);
  if ((seq & 1) || !__atomic_compare_exchange_n(&s->seq, &seq, seq + 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
    return;
  __atomic_store_n(&s->pc, pc, __ATOMIC_RELEASE);
  __atomic_store_n(&s->rule, rule, __ATOMIC_RELEASE);
  __atomic_store_n(&s->seq, seq + 2, __ATOMIC_RELEASE);
}

static unwind_rule_t unwind_rule_at(unwind_slot_t *cache, uintptr_t pc) {
  size_t home = unwind_home(pc);
  unwind_rule_t rule = unwind_cached(cache, pc, home);
  if (likely(rule != 0)) return rule;
  rule = prof_cfi_rule(pc);
  unwind_remember(cache, pc, home, rule);
  return rule;
}

/* ---- the walk ----------------------------------------------------------- */

/* Where the walk is: the frame's code address to look up, its registers,
 * and the bounds of what it may read, [floor, top). The floor is sp, but
 * for a frame a signal interrupted: the 128 bytes below its sp (the ABI's
 * red zone, which the kernel leaves above the signal frame) hold a saved
 * register there after an epilogue popped it (gcc's rule for rbp after
 * `leave` is still its slot below the CFA). */
typedef struct unwind_frame {
  uintptr_t pc, sp, bp, floor, top;
  bool bp_known;
} unwind_frame_t;

static uintptr_t unwind_stack_top(uintptr_t sp) {
  uintptr_t self = (uintptr_t)pthread_self();
  if (sp < self && self - sp <= UNWIND_STACK_SPAN) return self;
  uintptr_t start = (uintptr_t)__libc_stack_end;
  if (sp < start && start - sp <= UNWIND_STACK_SPAN) return start;
  return (sp | (PAGE_SIZE - 1)) + 1;
}

/* The 8 bytes at `at` into *out, if they lie within the frame's bounds. */
static bool unwind_read(const unwind_frame_t *f, uintptr_t at, uintptr_t *out) {
  if (at < f->floor || at > f->top - sizeof(uintptr_t)) return false;
  memcpy(out, (const void *)at, sizeof *out);
  return true;
}

/* One frame up by a CFA rule; its return address into *ra. */
static bool unwind_step(unwind_frame_t *f, unwind_rule_t rule, uintptr_t *ra) {
  unwind_kind_t kind = unwind_rule_kind(rule);
  if (kind == UNWIND_CFA_RBP && !f->bp_known) return false;
  uintptr_t cfa = (kind == UNWIND_CFA_RSP ? f->sp : f->bp) + (uintptr_t)unwind_rule_cfa_off(rule);
  if (cfa <= f->sp || cfa > f->top) return false;
  if (!unwind_read(f, cfa + (uintptr_t)unwind_rule_ra_off(rule), ra)) return false;
  unwind_bp_t bp = unwind_rule_bp(rule);
  if (bp == UNWIND_BP_SAVED) f->bp_known = unwind_read(f, cfa + (uintptr_t)unwind_rule_bp_off(rule), &f->bp);
  else if (bp == UNWIND_BP_LOST) f->bp_known = false;
  f->sp = f->floor = cfa;
  f->pc = *ra - 1;
  return true;
}

/* Through a signal frame: sp is at the ucontext the kernel saved. */
static bool unwind_signal_step(unwind_frame_t *f, uintptr_t *ra) {
  uintptr_t sp;
  if (!unwind_read(f, f->sp + UNWIND_UC_RIP, ra) || !unwind_read(f, f->sp + UNWIND_UC_RSP, &sp) ||
      !unwind_read(f, f->sp + UNWIND_UC_RBP, &f->bp))
    return false;
  if (sp <= f->sp || sp >= f->top) return false; /* another stack: sigaltstack's */
  f->floor = sp - UNWIND_RED_ZONE > f->sp ? sp - UNWIND_RED_ZONE : f->sp;
  f->sp = sp;
  f->bp_known = true;
  f->pc = *ra; /* where it was interrupted: exact */
  return true;
}

void prof_unwind_start(void) {
  void *frames[1];
  if (!unwind_native) backtrace(frames, 1);
}

noinline int prof_unwind(void **frames, int max) {
  if (!unwind_native) { /* backtrace()'s frames less its first, here */
    void *all[UNWIND_BACKTRACE_MAX + 1];
    int n = backtrace(all, (max < UNWIND_BACKTRACE_MAX ? max : UNWIND_BACKTRACE_MAX) + 1) - 1;
    if (n <= 0) return 0;
    memcpy(frames, all + 1, (size_t)n * sizeof(void *));
    return n;
  }
  unwind_frame_t f = {.bp_known = true};
  UNWIND_HERE(f.pc, f.sp, f.bp);
  unwind_slot_t *cache = unwind_cache;
  if (cache == NULL) return 0;
  f.floor = f.sp;
  f.top = unwind_stack_top(f.sp);
  int n = 0;
  while (n < max) {
    unwind_rule_t rule = unwind_rule_at(cache, f.pc);
    unwind_kind_t kind = unwind_rule_kind(rule);
    uintptr_t ra;
    bool stepped = kind == UNWIND_SIGNAL                              ? unwind_signal_step(&f, &ra)
                   : kind == UNWIND_CFA_RSP || kind == UNWIND_CFA_RBP ? unwind_step(&f, rule, &ra)
                                                                      : false;
    if (!stepped || ra == 0) break;
    frames[n++] = (void *)ra;
  }
  return n;
}
