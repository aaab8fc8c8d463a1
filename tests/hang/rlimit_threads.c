/* rlimit_threads.c: allocation failure under an address-space limit, in many
 * threads at once (the idea of glibc's tst-malloc-thread-fail).
 *
 * With RLIMIT_AS lowered to LIMIT (never raised) after the allocator has
 * started, each combination of allocation function, size and alignment
 * below runs in a fresh child process: THREADS threads with small stacks
 * plus the main thread each allocate until allocation fails, keeping their
 * blocks on a linked list; they meet at a barrier, free everything, meet
 * again, and each allocates once more, which must succeed. Checked:
 *  - pthread_create succeeds (an allocator that reserved more address space
 *    than the limit leaves no room for the threads' stacks);
 *  - every failure is NULL with errno ENOMEM (posix_memalign returns
 *    ENOMEM), never a crash or a hang;
 *  - allocation does fail before the blocks add up to LIMIT: an allocator
 *    whose memory escapes the limit would otherwise fill the machine, so
 *    this is checked as the blocks are counted;
 *  - blocks are aligned, and calloc's are zero.
 * Filling LIMIT takes 50-700 ms per combination, too long to run them all at
 * every repetition: when the driver numbers the runs (HANG_RUN=1, 2, ...),
 * a run tests one combination, in turn; without HANG_RUN, it tests all.
 */
#include <sys/resource.h>
#include <sys/wait.h>

#include "hang_common.h"

#define LIMIT (256 * MIB)
#define THREADS 8
#define STACK_SIZE (256 * KIB)
#define WARM_UP_SIZE 64 /* the first malloc, before the limit */
#define FIRST_REALLOC_SIZE 16
#define COMBO_ALIGNMENT 128
#define PAGES_BIG 17

enum function { WITH_MALLOC, WITH_CALLOC, WITH_REALLOC, WITH_POSIX_MEMALIGN, WITH_ALIGNED_ALLOC };

typedef struct {
  enum function function;
  const char *name;
  size_t size;      /* 0: PAGES_BIG pages */
  size_t alignment; /* for the aligned functions; else max_align_t's */
} combo_t;

static const combo_t combos[] = {
    {WITH_MALLOC, "malloc", 144, 0},
    {WITH_CALLOC, "calloc", 4096, 0},
    {WITH_REALLOC, "realloc from 16", 4096, 0},
    {WITH_POSIX_MEMALIGN, "posix_memalign", 512, COMBO_ALIGNMENT},
    {WITH_ALIGNED_ALLOC, "aligned_alloc", 4096, COMBO_ALIGNMENT},
    {WITH_MALLOC, "malloc", 0, 0},
};
#define COMBO_COUNT (sizeof combos / sizeof combos[0])

/* The combination the child runs, and its size in bytes. */
static const combo_t *combo;
static size_t combo_size;
static size_t limit_bytes; /* RLIMIT_AS in force */
static atomic_size_t allocated_bytes;
static pthread_barrier_t start_line, all_full, all_freed;

struct node {
  struct node *next;
};

/* One allocation by the combination; NULL on failure, with its error
 * number (0 when none was reported) in *err. */
static void *allocate(int *err) {
  void *p = NULL;
  errno = 0;
  switch (combo->function) {
  case WITH_MALLOC:
    p = malloc(combo_size);
    break;
  case WITH_CALLOC:
    p = calloc(1, combo_size);
    if (p != NULL) {
      const uint64_t *w = p;
      for (size_t i = 0; i < combo_size / sizeof *w; i++)
        if (w[i] != 0) hang_child_fail("calloc(1, %zu) = %p not zero at word %zu", combo_size, p, i);
    }
    break;
  case WITH_REALLOC: {
    void *small = realloc(NULL, FIRST_REALLOC_SIZE);
    if (small != NULL) {
      p = realloc(small, combo_size);
      if (p == NULL) {
        int saved = errno;
        free(small);
        errno = saved;
      }
    }
    break;
  }
  case WITH_POSIX_MEMALIGN: {
    int rc = posix_memalign(&p, combo->alignment, combo_size);
    if (rc != 0) {
      p = NULL;
      errno = rc;
    }
    break;
  }
  case WITH_ALIGNED_ALLOC:
    p = aligned_alloc(combo->alignment, combo_size);
    break;
  }
  *err = errno;
  if (p != NULL) {
    size_t align = combo->alignment != 0 ? combo->alignment : _Alignof(max_align_t);
    if ((uintptr_t)p % align != 0)
      hang_child_fail("%s(%zu) returned %p, not aligned to %zu", combo->name, combo_size, p, align);
  }
  return p;
}

static void *allocate_until_failure(void *arg) {
  (void)arg;
  struct node *head = NULL;
  int err;
  hang_barrier_wait(&start_line);
  for (;;) {
    struct node *n = allocate(&err);
    if (n == NULL) break;
    n->next = head;
    head = n;
    size_t total = atomic_fetch_add(&allocated_bytes, combo_size) + combo_size;
    if (total > limit_bytes)
      hang_child_fail("%s(%zu): %zu MiB allocated under RLIMIT_AS of %zu MiB: the limit does not "
                      "bound the allocator",
                      combo->name, combo_size, total / MIB, limit_bytes / MIB);
  }
  if (err != ENOMEM)
    hang_child_fail("%s(%zu) failed with errno %d (%s), expected ENOMEM", combo->name, combo_size, err, strerror(err));
  hang_barrier_wait(&all_full);
  while (head != NULL) {
    struct node *next = head->next;
    free(head);
    head = next;
  }
  /* Only once every thread has freed: until then the memory may still
   * be another thread's. */
  hang_barrier_wait(&all_freed);
  void *again = allocate(&err);
  if (again == NULL)
    hang_child_fail("%s(%zu) failed after everything was freed: %s", combo->name, combo_size, strerror(err));
  free(again);
  return NULL;
}

/* The child's whole run for one combination. */
static _Noreturn void run_combo_child(void) {
  pthread_attr_t attr;
  pthread_t threads[THREADS];
  if (pthread_barrier_init(&start_line, NULL, THREADS + 1) != 0 ||
      pthread_barrier_init(&all_full, NULL, THREADS + 1) != 0 ||
      pthread_barrier_init(&all_freed, NULL, THREADS + 1) != 0 || pthread_attr_init(&attr) != 0)
    hang_child_fail("barrier or attribute initialisation failed");
  int rc = pthread_attr_setstacksize(&attr, STACK_SIZE);
  if (rc != 0) hang_child_fail("pthread_attr_setstacksize(%zu): %s", STACK_SIZE, strerror(rc));
  for (unsigned i = 0; i < THREADS; i++) {
    rc = pthread_create(&threads[i], &attr, allocate_until_failure, NULL);
    if (rc != 0)
      hang_child_fail("%s: pthread_create of thread %u under RLIMIT_AS of %zu MiB: %s", combo->name, i,
                      limit_bytes / MIB, strerror(rc));
  }
  allocate_until_failure(NULL);
  for (unsigned i = 0; i < THREADS; i++) {
    rc = pthread_join(threads[i], NULL);
    if (rc != 0) hang_child_fail("pthread_join: %s", strerror(rc));
  }
  _exit(0);
}

int main(void) {
  void *warm = malloc(WARM_UP_SIZE); /* the allocator has started */
  if (warm == NULL) hang_fail("malloc(%d) returned NULL", WARM_UP_SIZE);
  free(warm);

  struct rlimit rl;
  hang_check_errno(getrlimit(RLIMIT_AS, &rl), "getrlimit");
  if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > LIMIT) {
    rl.rlim_cur = LIMIT;
    hang_check_errno(setrlimit(RLIMIT_AS, &rl), "setrlimit");
  }
  limit_bytes = (size_t)rl.rlim_cur;

  size_t first = 0, last = COMBO_COUNT - 1;
  const char *run = getenv("HANG_RUN");
  if (run != NULL && run[0] != '\0') first = last = (strtoul(run, NULL, 10) + COMBO_COUNT - 1) % COMBO_COUNT;
  long page = sysconf(_SC_PAGESIZE);
  for (size_t i = first; i <= last; i++) {
    combo = &combos[i];
    combo_size = combo->size != 0 ? combo->size : PAGES_BIG * (size_t)page;
    uint64_t start = test_now_ns();
    pid_t pid = fork();
    if (pid < 0) hang_fail("fork: %s", strerror(errno));
    if (pid == 0) run_combo_child();
    int status;
    while (waitpid(pid, &status, 0) < 0)
      if (errno != EINTR) hang_fail("waitpid: %s", strerror(errno));
    if (WIFSIGNALED(status))
      hang_fail("%s(%zu): the child died of signal %d", combo->name, combo_size, WTERMSIG(status));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) exit(HANG_EXIT_FAILURE); /* the child reported why */
    printf("%s(%zu): %llu ms\n", combo->name, combo_size, (unsigned long long)((test_now_ns() - start) / NS_PER_MS));
  }
  return 0;
}
