/* test_misuse.c: API misuse the allocator must catch: freeing memory it does
 * not own, interior pointers, double frees of each class and realloc of a
 * freed block. Each must be reported on stderr and end in abort(); Criterion
 * runs every test in its own child, so the abort ends only that child. */
#include "api.h"

#include <criterion/criterion.h>
#include <ctype.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define SMALL_BLOCK ((size_t)64)
#define MEDIUM_BLOCK (256 * KIB)
#define HUGE_BLOCK (16 * MIB)
/* Offsets of the interior pointers freed. */
#define SMALL_INTERIOR ((size_t)16)
#define MEDIUM_INTERIOR ((size_t)4096)
#define MEDIUM_INTERIOR_BLOCK (64 * KIB)
#define STATIC_BUFFER_SIZE ((size_t)8192)
#define REPORT_MAX ((size_t)4096)

/* Memory that never came from the allocator. */
static _Alignas(4096) unsigned char static_buffer[STATIC_BUFFER_SIZE];

Test(misuse, free_of_static_buffer_aborts, .signal = SIGABRT) {
  buddy_free(api_hide_ptr(static_buffer));
}

/* Past the small map free's fast path reads: reported, not read. */
Test(misuse, free_of_an_address_past_user_space_aborts, .signal = SIGABRT) {
  void *warm = buddy_malloc(api_hide(64)); /* the map is reserved */
  cr_assert_not_null(warm);
  buddy_free(api_hide_ptr((void *)(uintptr_t)-16));
}

Test(misuse, free_of_a_kernel_address_aborts, .signal = SIGABRT) {
  void *warm = buddy_malloc(api_hide(64));
  cr_assert_not_null(warm);
  buddy_free(api_hide_ptr((void *)(uintptr_t)0xffff800000001000ull));
}

Test(misuse, free_into_static_buffer_aborts, .signal = SIGABRT) {
  buddy_free(api_hide_ptr(static_buffer + 16));
}

Test(misuse, realloc_of_static_buffer_aborts, .signal = SIGABRT) {
  void *p = buddy_realloc(api_hide_ptr(static_buffer + 32), api_hide(100));
  (void)p;
}

Test(misuse, free_of_small_interior_pointer_aborts, .signal = SIGABRT) {
  unsigned char *p = buddy_malloc(api_hide(SMALL_BLOCK));
  cr_assert_not_null(p);
  buddy_free(api_hide_ptr(p + SMALL_INTERIOR));
}

Test(misuse, free_of_medium_interior_pointer_aborts, .signal = SIGABRT) {
  unsigned char *p = buddy_malloc(api_hide(MEDIUM_INTERIOR_BLOCK));
  cr_assert_not_null(p);
  buddy_free(api_hide_ptr(p + MEDIUM_INTERIOR));
}

Test(misuse, free_of_huge_interior_pointer_aborts, .signal = SIGABRT) {
  unsigned char *p = buddy_malloc(api_hide(HUGE_BLOCK));
  cr_assert_not_null(p);
  buddy_free(api_hide_ptr(p + MEDIUM_INTERIOR));
}

Test(misuse, double_free_small_aborts, .signal = SIGABRT) {
  /* A second live block keeps the first one's slab in use. */
  void *p = buddy_malloc(api_hide(SMALL_BLOCK));
  void *q = buddy_malloc(api_hide(SMALL_BLOCK));
  cr_assert(p != NULL && q != NULL);
  buddy_free(p);
  buddy_free(api_hide_ptr(p));
}

/* Thread body for the remote double free: a block of the main thread's zone. */
static void *misuse_double_free_remote(void *block) {
  buddy_free(block); /* a remote free: into this thread's batch for that zone */
  buddy_free(api_hide_ptr(block));
  return NULL;
}

Test(misuse, double_free_small_by_another_thread_aborts, .signal = SIGABRT) {
  /* zones=4 by default: the second thread's home zone is not this one's. */
  void *p = buddy_malloc(api_hide(SMALL_BLOCK));
  void *q = buddy_malloc(api_hide(SMALL_BLOCK));
  cr_assert(p != NULL && q != NULL);
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, misuse_double_free_remote, p), 0);
  pthread_join(t, NULL);
}

/* buddymalloc's own thread-exit destructor flushes the thread's cache and
 * leaves the thread without one; a destructor that runs after it (here in
 * the second round of destructors) still has its double free reported. */
static pthread_key_t misuse_late_key;

static void misuse_late_destructor(void *round) {
  if ((uintptr_t)round < 2) {
    pthread_setspecific(misuse_late_key, (void *)((uintptr_t)round + 1));
    return;
  }
  void *p = buddy_malloc(api_hide(SMALL_BLOCK));
  void *q = buddy_malloc(api_hide(SMALL_BLOCK));
  if (p == NULL || q == NULL) return; /* no abort: the test fails */
  buddy_free(p);
  buddy_free(api_hide_ptr(p));
}

static void *misuse_late_thread(void *arg) {
  (void)arg;
  buddy_free(buddy_malloc(api_hide(SMALL_BLOCK))); /* the thread has a cache */
  pthread_setspecific(misuse_late_key, (void *)1);
  return NULL;
}

Test(misuse, double_free_in_a_late_thread_exit_destructor_aborts, .signal = SIGABRT) {
  cr_assert_eq(pthread_key_create(&misuse_late_key, misuse_late_destructor), 0);
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, misuse_late_thread, NULL), 0);
  pthread_join(t, NULL);
}

Test(misuse, double_free_medium_aborts, .signal = SIGABRT) {
  void *p = buddy_malloc(api_hide(MEDIUM_BLOCK));
  cr_assert_not_null(p);
  buddy_free(p);
  buddy_free(api_hide_ptr(p));
}

Test(misuse, double_free_huge_aborts, .signal = SIGABRT) {
  void *p = buddy_malloc(api_hide(HUGE_BLOCK));
  cr_assert_not_null(p);
  buddy_free(p);
  buddy_free(api_hide_ptr(p));
}

Test(misuse, realloc_of_freed_block_aborts, .signal = SIGABRT) {
  void *p = buddy_malloc(api_hide(SMALL_BLOCK));
  void *q = buddy_malloc(api_hide(SMALL_BLOCK));
  cr_assert(p != NULL && q != NULL);
  buddy_free(p);
  void *r = buddy_realloc(api_hide_ptr(p), api_hide(2 * SMALL_BLOCK));
  (void)r;
}

/* Default-mode hardening (fill.c): a write just past a medium or huge
 * block's request is found when it is freed; a write to a freed huge block in
 * the cache when it is taken again; a sized delete whose size gives another
 * class than the block's when it is called. */
#define TAIL_REQUEST_MEDIUM ((size_t)100000)
#define TAIL_REQUEST_HUGE ((size_t)5000000)

Test(misuse, write_past_a_medium_block_aborts_when_it_is_freed, .signal = SIGABRT) {
  unsigned char *p = buddy_malloc(api_hide(TAIL_REQUEST_MEDIUM));
  cr_assert_not_null(p);
  ((unsigned char *)api_hide_ptr(p))[TAIL_REQUEST_MEDIUM] = 1;
  buddy_free(api_hide_ptr(p));
}

Test(misuse, write_past_a_huge_block_aborts_when_it_is_freed, .signal = SIGABRT) {
  unsigned char *p = buddy_malloc(api_hide(TAIL_REQUEST_HUGE));
  cr_assert_not_null(p);
  ((unsigned char *)api_hide_ptr(p))[TAIL_REQUEST_HUGE + 31] = 1;
  buddy_free(api_hide_ptr(p));
}

/* malloc_usable_size gives the program every usable byte: then no tail. */
Test(misuse, usable_bytes_of_a_medium_block_are_the_programs) {
  unsigned char *p = buddy_malloc(api_hide(TAIL_REQUEST_MEDIUM));
  cr_assert_not_null(p);
  size_t usable = buddy_malloc_usable_size(p);
  cr_assert_gt(usable, TAIL_REQUEST_MEDIUM);
  memset(api_hide_ptr(p), 7, usable);
  buddy_free(api_hide_ptr(p));
}

/* Found when the block is taken again (the default mode reuses it at once)
 * or unmapped (secure mode delays its reuse; malloc_trim unmaps it). */
Test(misuse, write_to_a_freed_huge_block_aborts_when_it_is_reused_or_unmapped, .signal = SIGABRT) {
  unsigned char *p = buddy_malloc(api_hide(TAIL_REQUEST_HUGE));
  cr_assert_not_null(p);
  buddy_free(p);
  ((unsigned char *)api_hide_ptr(p))[8] = 1;
  void *again = buddy_malloc(api_hide(TAIL_REQUEST_HUGE));
  (void)again;
  buddy_trim(0);
}

/* The standard names have no sized free (API_PLAIN: plain free). */
#ifndef API_PLAIN
Test(misuse, sized_free_of_another_class_aborts, .signal = SIGABRT) {
  void *p = buddy_malloc(api_hide(SMALL_BLOCK));
  cr_assert_not_null(p);
  buddy_free_sized(api_hide_ptr(p), api_hide(4 * SMALL_BLOCK));
}

Test(misuse, sized_free_of_a_medium_block_of_another_order_aborts, .signal = SIGABRT) {
  void *p = buddy_malloc(api_hide(TAIL_REQUEST_MEDIUM));
  cr_assert_not_null(p);
  buddy_free_sized(api_hide_ptr(p), api_hide(SMALL_BLOCK));
}
#endif

Test(misuse, sized_free_of_the_right_size_frees) {
  size_t sizes[] = {0, 1, SMALL_BLOCK, 1000, 20000, TAIL_REQUEST_MEDIUM, TAIL_REQUEST_HUGE};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    void *p = buddy_malloc(api_hide(sizes[i]));
    cr_assert_not_null(p);
    buddy_free_sized(api_hide_ptr(p), api_hide(sizes[i]));
  }
}

/* Runs `misuse` on `ptr` in a child with stderr sent to a pipe; returns the
 * child's wait status and leaves what it wrote, NUL-terminated, in report. */
static int run_reporting_child(void (*misuse)(void *), void *ptr, char *report, size_t cap) {
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  fflush(NULL);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], STDERR_FILENO);
    misuse(ptr);
    _exit(0);
  }
  close(fds[1]);
  size_t len = 0;
  ssize_t got;
  while ((got = read(fds[0], report + len, cap - 1 - len)) > 0) {
    len += (size_t)got;
    if (len == cap - 1) break;
  }
  report[len] = '\0';
  close(fds[0]);
  int status = 0;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  return status;
}

static void misuse_free(void *ptr) {
  buddy_free(ptr);
}

/* Whether report names ptr: some hexadecimal number in it (any case, with or
 * without 0x and leading zeros) equals the address. */
static int report_names(const char *report, const void *ptr) {
  for (const char *s = report; *s != '\0'; s++) {
    if (!isxdigit((unsigned char)*s) || (s != report && isalnum((unsigned char)s[-1]))) continue;
    char *end;
    uintmax_t value = strtoumax(s, &end, 16);
    if (end != s && value == (uintmax_t)(uintptr_t)ptr) return 1;
  }
  return 0;
}

Test(misuse, report_on_stderr_names_the_address) {
  static char report[REPORT_MAX];
  void *bad[3];
  unsigned char *small = buddy_malloc(api_hide(SMALL_BLOCK));
  cr_assert_not_null(small);
  bad[0] = static_buffer + 16;
  bad[1] = small + SMALL_INTERIOR;
  void *freed = buddy_malloc(api_hide(MEDIUM_BLOCK));
  cr_assert_not_null(freed);
  buddy_free(freed);
  bad[2] = freed;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int status = run_reporting_child(misuse_free, bad[i], report, sizeof report);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "free(%p): child did not abort (status %#x)", bad[i],
              (unsigned)status);
    cr_assert(report_names(report, bad[i]), "free(%p): stderr does not name it: \"%s\"", bad[i], report);
    cr_assert(strstr(report, "abort_on_error=0") != NULL, "free(%p): the report names no way to go on: \"%s\"", bad[i],
              report);
  }
  buddy_free(small);
}
