/* test_prof_unwind.c: unit tests of heap profiling's unwinder (prof_unwind.c,
 * prof_cfi.c), against glibc's backtrace() (libgcc's unwinder) called from
 * the same frame, so that both see the same return addresses:
 *  - the same frames through a deep and varied stack: recursion, a 64 KiB
 *    frame, variable-length arrays (an rbp-based CFA), a shared library's
 *    frame built with frame pointers, a C++ frame with a landing pad; the
 *    first time (each call site a cache miss) and again (hits), and in four
 *    threads at once (the shared cache's writers racing);
 *  - the same last frame: main's _start, a thread's clone3, a makecontext
 *    coroutine's __start_context (on a stack of its own, mapped);
 *  - through a signal frame: a handler on the thread's own stack, and
 *    wherever a signal interrupts a busy thread (any instruction of the
 *    frames above, prologues and epilogues included; or ours stop at the
 *    interrupted frame, if the walk cannot follow its rule);
 *  - a clean stop, ours a prefix of glibc's: at a frame whose CFA is a DWARF
 *    expression (which the walk does not follow), and in a handler on an
 *    alternate signal stack;
 *  - at most max frames.
 * Under ASan, backtrace() is intercepted and gains a frame of its own: the
 * comparison finds where ours meet glibc's.
 */
#include <criterion/criterion.h>
#include <execinfo.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>

#include "prof.h"
#include "test_support.h"
#include "unwind_testlib.h"

#define TRACE_FRAMES 128
#define BIG_FRAME (64 * KIB)
#define DEEP 40
#define LEVEL_KINDS 5 /* plain, big, VLA, shared library, C++ */
#define THREADS 4
#define THREAD_ROUNDS 200
#define SIGNALS 3000
#define SPIN_LEAF 64         /* loop turns at a busy stack's top */
#define ALT_STACK (64 * KIB) /* an alternate signal stack */
#define COROUTINE_STACK (256 * KIB)

typedef struct trace trace_t;
struct trace {
  int max;                  /* frames asked of prof_unwind */
  void (*leaf)(trace_t *t); /* what the top of the stack does */
  int ours_n, glibc_n;
  void *ours[TRACE_FRAMES], *glibc[TRACE_FRAMES];
};

static noinline void trace_here(trace_t *t) {
  t->glibc_n = backtrace(t->glibc, TRACE_FRAMES);
  t->ours_n = prof_unwind(t->ours, t->max);
}

/* How many of our frames agree with glibc's: ours[0] (a different call
 * site in trace_here) and then each that is glibc's next, from where
 * ours[1] is in glibc's. *whole: all of ours, ending where glibc's do. */
static int trace_agree(const trace_t *t, bool *whole) {
  *whole = false;
  if (t->ours_n < 2) return t->ours_n;
  int k = 1;
  while (k < t->glibc_n && t->glibc[k] != t->ours[1]) k++;
  if (k == t->glibc_n) return 1;
  int i = 1;
  while (i < t->ours_n && k < t->glibc_n && t->ours[i] == t->glibc[k]) i++, k++;
  *whole = i == t->ours_n && k == t->glibc_n;
  return i;
}

/* Both traces on stderr, with the rule of each of glibc's call sites. */
static void trace_print(const char *what, const trace_t *t) {
  fprintf(stderr, "%s: ours, %d frames:\n", what, t->ours_n);
  backtrace_symbols_fd(t->ours, t->ours_n, 2);
  fprintf(stderr, "glibc's, %d frames, each with its call site's rule (kind, rbp, ra, rbp, CFA offsets):\n",
          t->glibc_n);
  for (int i = 0; i < t->glibc_n; i++) {
    unwind_rule_t r = prof_cfi_rule((uintptr_t)t->glibc[i] - 1);
    fprintf(stderr, "  %d %d %lld %lld %lld  ", (int)unwind_rule_kind(r), (int)unwind_rule_bp(r),
            (long long)unwind_rule_ra_off(r), (long long)unwind_rule_bp_off(r), (long long)unwind_rule_cfa_off(r));
    backtrace_symbols_fd(&t->glibc[i], 1, 2);
  }
}

static void assert_same(const trace_t *t, const char *what) {
  bool whole;
  trace_agree(t, &whole);
  if (!whole) trace_print(what, t);
  cr_assert(whole, "%s: our frames are not glibc's (listed on stderr)", what);
}

/* Ours stop early, where glibc's go on: every one of ours agrees. */
static void assert_prefix(const trace_t *t, const char *what) {
  bool whole;
  int agree = trace_agree(t, &whole);
  if (agree != t->ours_n || t->ours_n >= t->glibc_n) trace_print(what, t);
  cr_assert_eq(agree, t->ours_n, "%s: only %d of our %d frames are glibc's", what, agree, t->ours_n);
  cr_assert_lt(t->ours_n, t->glibc_n, "%s: ours did not stop early", what);
}

/* ---- a deep stack of varied frames ------------------------------------- */

static int descend(int depth, void *arg);

static noinline int level_plain(int depth, trace_t *t) {
  volatile int keep = depth;
  int r = descend(depth - 1, t);
  return r + keep;
}

static noinline int level_big(int depth, trace_t *t) {
  volatile char room[BIG_FRAME];
  room[0] = (char)depth;
  room[BIG_FRAME - 1] = 1;
  int r = descend(depth - 1, t);
  return r + room[0] + room[BIG_FRAME - 1];
}

static noinline int level_vla(int depth, trace_t *t) {
  volatile char room[16 + depth * 24];
  room[0] = (char)depth;
  int r = descend(depth - 1, t);
  return r + room[0];
}

/* Called through pointers, not the PLT: a signal may interrupt anywhere
 * in the frames, and the walk does not follow a PLT stub's rule. */
static int (*volatile call_library)(unwind_test_cb, int, void *) = unwind_testlib_call;
static int (*volatile call_cxx)(unwind_test_cb, int, void *) = unwind_cxx_call;

static noinline int descend(int depth, void *arg) {
  trace_t *t = arg;
  if (depth <= 0) {
    t->leaf(t);
    return 0;
  }
  switch (depth % LEVEL_KINDS) {
  case 0:
    return level_plain(depth, t) + 1;
  case 1:
    return level_big(depth, t) + 1;
  case 2:
    return level_vla(depth, t) + 1;
  case 3:
    return call_library(descend, depth - 1, t) + 1;
  default:
    return call_cxx(descend, depth - 1, t) + 1;
  }
}

static void trace_deep(trace_t *t, int depth, int max) {
  *t = (trace_t){.max = max, .leaf = trace_here};
  descend(depth, t);
}

/* A frame whose CFA is a DWARF expression (DW_CFA_def_cfa_expression:
 * DW_OP_breg7 (rsp) 16, the CFA of its body), which libgcc follows and our
 * walk does not; it calls cb(depth, arg). */
int unwind_expression_frame(unwind_test_cb cb, int depth, void *arg);
__asm__(".text\n"
        ".globl unwind_expression_frame\n"
        ".hidden unwind_expression_frame\n"
        ".type unwind_expression_frame, @function\n"
        "unwind_expression_frame:\n"
        "  .cfi_startproc\n"
        "  subq $8, %rsp\n"
        "  .cfi_escape 0x0f, 0x02, 0x77, 0x10\n"
        "  movq %rdi, %rax\n"
        "  movl %esi, %edi\n"
        "  movq %rdx, %rsi\n"
        "  call *%rax\n"
        "  addq $8, %rsp\n"
        "  .cfi_def_cfa %rsp, 8\n"
        "  ret\n"
        "  .cfi_endproc\n"
        ".size unwind_expression_frame, .-unwind_expression_frame\n");

static void setup(void) {
  cr_assert(prof_unwind_init());
  void *warm[4];
  backtrace(warm, 4); /* libgcc_s is loaded (and allocates) here, not in a handler */
}

TestSuite(prof_unwind, .init = setup);

Test(prof_unwind, returns_glibcs_frames_through_a_deep_varied_stack) {
  for (int round = 0; round < 2; round++) { /* each call site missed, then hit */
    trace_t t;
    trace_deep(&t, DEEP, TRACE_FRAMES);
    cr_assert_gt(t.ours_n, DEEP, "round %d: %d frames for %d levels", round, t.ours_n, DEEP);
    assert_same(&t, round == 0 ? "first round" : "second round");
  }
}

Test(prof_unwind, keeps_to_max) {
  trace_t full, cut;
  trace_deep(&full, 12, TRACE_FRAMES);
  trace_deep(&cut, 12, 5);
  cr_assert_eq(cut.ours_n, 5);
  for (int i = 1; i < cut.ours_n; i++) cr_assert_eq(cut.ours[i], full.ours[i], "frame %d", i);
  trace_deep(&cut, 12, 0);
  cr_assert_eq(cut.ours_n, 0);
}

typedef struct thread_traces {
  trace_t t, first_bad;
  int bad;
} thread_traces_t;

static void *trace_in_thread(void *arg) {
  thread_traces_t *tt = arg;
  for (int round = 0; round < THREAD_ROUNDS; round++) {
    trace_deep(&tt->t, 1 + round % DEEP, TRACE_FRAMES);
    bool whole;
    trace_agree(&tt->t, &whole);
    if (!whole && tt->bad++ == 0) tt->first_bad = tt->t;
  }
  return NULL;
}

Test(prof_unwind, returns_glibcs_frames_in_threads_at_once_to_their_last) {
  static thread_traces_t traces[THREADS];
  pthread_t threads[THREADS];
  for (int i = 0; i < THREADS; i++) cr_assert_eq(pthread_create(&threads[i], NULL, trace_in_thread, &traces[i]), 0);
  for (int i = 0; i < THREADS; i++) {
    pthread_join(threads[i], NULL);
    if (traces[i].bad > 0) trace_print("thread", &traces[i].first_bad);
    cr_assert_eq(traces[i].bad, 0, "thread %d: %d of %d stacks not glibc's", i, traces[i].bad, THREAD_ROUNDS);
  }
}

static ucontext_t coroutine_return;
static trace_t coroutine_trace;

static void coroutine(void) {
  trace_deep(&coroutine_trace, 12, TRACE_FRAMES);
}

Test(prof_unwind, returns_glibcs_frames_in_a_coroutine_to_its_last) {
  void *stack = mmap(NULL, COROUTINE_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  cr_assert_neq(stack, MAP_FAILED);
  ucontext_t uc;
  cr_assert_eq(getcontext(&uc), 0);
  uc.uc_stack = (stack_t){.ss_sp = stack, .ss_size = COROUTINE_STACK};
  uc.uc_link = &coroutine_return;
  makecontext(&uc, coroutine, 0);
  cr_assert_eq(swapcontext(&coroutine_return, &uc), 0);
  cr_assert_gt(coroutine_trace.ours_n, 12);
  assert_same(&coroutine_trace, "coroutine");
  munmap(stack, COROUTINE_STACK);
}

Test(prof_unwind, stops_at_a_frame_whose_cfa_is_an_expression) {
  trace_t t = {.max = TRACE_FRAMES, .leaf = trace_here};
  unwind_expression_frame(descend, 6, &t);
  assert_prefix(&t, "expression");
  uintptr_t last = (uintptr_t)t.ours[t.ours_n - 1], frame = (uintptr_t)unwind_expression_frame;
  cr_assert(last > frame && last - frame < 64, "our last frame is the expression frame's call");
}

/* ---- signals -------------------------------------------------------------- */

static trace_t signal_trace;

static void on_signal_trace(int sig) {
  (void)sig;
  trace_here(&signal_trace);
}

static void leaf_raise(trace_t *t) {
  (void)t;
  raise(SIGUSR1);
}

static void catch_usr1(int flags) {
  struct sigaction sa = {.sa_handler = on_signal_trace, .sa_flags = flags};
  sigemptyset(&sa.sa_mask);
  cr_assert_eq(sigaction(SIGUSR1, &sa, NULL), 0);
}

Test(prof_unwind, goes_through_a_signal_frame) {
  catch_usr1(0);
  signal_trace = (trace_t){.max = TRACE_FRAMES};
  trace_t t = {.leaf = leaf_raise};
  descend(12, &t);
  cr_assert_gt(signal_trace.ours_n, 12, "%d frames through the signal frame", signal_trace.ours_n);
  assert_same(&signal_trace, "from a handler");
}

Test(prof_unwind, stops_cleanly_on_an_alternate_signal_stack) {
  void *alt = mmap(NULL, ALT_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  cr_assert_neq(alt, MAP_FAILED);
  stack_t ss = {.ss_sp = alt, .ss_size = ALT_STACK};
  cr_assert_eq(sigaltstack(&ss, NULL), 0);
  catch_usr1(SA_ONSTACK);
  signal_trace = (trace_t){.max = TRACE_FRAMES};
  trace_t t = {.leaf = leaf_raise};
  descend(6, &t);
  cr_assert_geq(signal_trace.ours_n, 1);
  assert_prefix(&signal_trace, "on an alternate stack");
}

/* A busy thread, interrupted SIGNALS times: each handler compares. Ours
 * may also stop early at the interrupted frame, if the walk cannot follow
 * its rule: ld.so's lazy binding (_dl_runtime_resolve: a CFA based on rbx),
 * which ASan's calls into its runtime go through at first. */
static struct {
  trace_t trace, first_bad;
  unsigned seen, stopped, bad;
  bool started, stop;
} busy;

/* Whether ours stop, at a frame whose rule the walk cannot follow (exact
 * or a return address), where glibc's go on. */
static bool trace_stopped(const trace_t *t) {
  bool whole;
  if (t->ours_n == 0 || trace_agree(t, &whole) != t->ours_n || t->ours_n >= t->glibc_n) return false;
  uintptr_t last = (uintptr_t)t->ours[t->ours_n - 1];
  return unwind_rule_kind(prof_cfi_rule(last)) == UNWIND_STOP ||
         unwind_rule_kind(prof_cfi_rule(last - 1)) == UNWIND_STOP;
}

static void on_signal_compare(int sig) {
  (void)sig;
  busy.trace.max = TRACE_FRAMES;
  trace_here(&busy.trace);
  bool whole;
  trace_agree(&busy.trace, &whole);
  if (!whole && trace_stopped(&busy.trace)) busy.stopped++;
  else if (!whole && busy.bad++ == 0) busy.first_bad = busy.trace;
  __atomic_add_fetch(&busy.seen, 1, __ATOMIC_RELEASE);
}

static void leaf_spin(trace_t *t) {
  (void)t;
  for (volatile int i = 0; i < SPIN_LEAF; i = i + 1) continue;
}

static void *busy_thread(void *arg) {
  (void)arg;
  trace_t t = {.leaf = leaf_spin};
  __atomic_store_n(&busy.started, true, __ATOMIC_RELEASE);
  for (int round = 0; !__atomic_load_n(&busy.stop, __ATOMIC_ACQUIRE); round++) descend(1 + round % 17, &t);
  return NULL;
}

Test(prof_unwind, returns_glibcs_frames_wherever_a_signal_interrupts) {
  struct sigaction sa = {.sa_handler = on_signal_compare};
  sigemptyset(&sa.sa_mask);
  cr_assert_eq(sigaction(SIGUSR2, &sa, NULL), 0);
  pthread_t thread;
  cr_assert_eq(pthread_create(&thread, NULL, busy_thread, NULL), 0);
  while (!__atomic_load_n(&busy.started, __ATOMIC_ACQUIRE)) sched_yield();
  for (unsigned i = 0; i < SIGNALS; i++) {
    pthread_kill(thread, SIGUSR2);
    while (__atomic_load_n(&busy.seen, __ATOMIC_ACQUIRE) == i) sched_yield();
  }
  __atomic_store_n(&busy.stop, true, __ATOMIC_RELEASE);
  pthread_join(thread, NULL);
  if (busy.bad > 0) trace_print("interrupted", &busy.first_bad);
  cr_assert_eq(busy.bad, 0, "%u of %u interrupted stacks not glibc's", busy.bad, SIGNALS);
  cr_assert_lt(busy.stopped, SIGNALS / 10, "%u of %u interrupted stacks stopped early", busy.stopped, SIGNALS);
}
