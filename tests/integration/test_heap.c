/* test_heap.c: whole-heap behaviour through the linked API: memory handed
 * back to the OS (malloc_trim, purge delay, the background purge thread),
 * address-space exhaustion (RLIMIT_AS), BUDDY_OPTIONS parsing, statistics,
 * the debug fill, misuse with abort_on_error=0, the huge-block cache, and
 * regressions found in review. RSS comes from /proc/self/statm
 * (test_support.h); each Criterion test runs in a process of its own. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <errno.h>
#include <stdlib.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buddymalloc.h"
#include "core_util.h"

#define WORKING_SET (384 * MIB)
#define SMALL_BLOCK 200
#define MEDIUM_BLOCK (96 * 1024)

/* Under AddressSanitizer the RSS is the sanitizer's (shadow, quarantine), and
 * its terabytes of shadow mapping cannot be mlocked: such tests run in the
 * plain build only. */
static void skip_under_asan(void) {
  if (TEST_ASAN) cr_skip_test("RSS and mlock are AddressSanitizer's own under ASan; checked in the plain build");
}

/* Builds a working set of small and medium blocks (half each), touching every
 * byte, then frees all of it. Returns the RSS growth it caused at its peak. */
static size_t build_and_free_working_set(void) {
  size_t before = test_rss_bytes();
  size_t small_count = WORKING_SET / 2 / SMALL_BLOCK, medium_count = WORKING_SET / 2 / MEDIUM_BLOCK;
  void **small = calloc(small_count, sizeof *small); /* the test's own libc */
  void **medium = calloc(medium_count, sizeof *medium);
  for (size_t i = 0; i < small_count; i++) memset(small[i] = buddy_malloc(SMALL_BLOCK), 1, SMALL_BLOCK);
  for (size_t i = 0; i < medium_count; i++) memset(medium[i] = buddy_malloc(MEDIUM_BLOCK), 2, MEDIUM_BLOCK);
  size_t peak = test_rss_bytes() - before;
  cr_assert_geq(peak, WORKING_SET * 9 / 10, "the working set was resident");
  for (size_t i = 0; i < small_count; i++) buddy_free(small[i]);
  for (size_t i = 0; i < medium_count; i++) buddy_free(medium[i]);
  free(small);
  free(medium);
  return peak;
}

Test(heap, malloc_trim_returns_the_working_set) {
  skip_under_asan();
  options.purge_delay_ms = 3600000; /* nothing but the trim gives memory back */
  size_t start = test_rss_bytes();
  size_t peak = build_and_free_working_set();
  buddy_trim(0);
  size_t left = test_rss_bytes() - start;
  cr_assert_leq(left, peak / 10, "after trim %zu KiB of %zu KiB still resident", left >> 10, peak >> 10);
}

Test(heap, purge_delay_returns_the_working_set_without_trim) {
  skip_under_asan();
  options.purge_delay_ms = 100;
  size_t start = test_rss_bytes();
  size_t peak = build_and_free_working_set();
  test_sleep_ms(300);
  buddy_free(buddy_malloc(MEDIUM_BLOCK)); /* a zone slow path: what is due is purged */
  tcache_flush_current();                 /* the cache gives back what it holds */
  buddy_free(buddy_malloc(MEDIUM_BLOCK));
  size_t left = test_rss_bytes() - start;
  /* Empty slabs of each class stay in reserve, and one free region stays mapped. */
  cr_assert_leq(left, peak / 10, "after the delay %zu KiB of %zu KiB still resident", left >> 10, peak >> 10);
}

Test(heap, out_of_address_space_fails_with_enomem_then_recovers) {
  struct rlimit limit = {.rlim_cur = 0, .rlim_max = RLIM_INFINITY};
  getrlimit(RLIMIT_AS, &limit);
  limit.rlim_cur = test_vsize_bytes() + 64 * MIB;
  cr_assert_eq(setrlimit(RLIMIT_AS, &limit), 0);
  enum { HELD_MAX = 4096 };
  static void *held[HELD_MAX];
  int n = 0;
  errno = 0;
  while (n < HELD_MAX && (held[n] = buddy_malloc(MEDIUM_BLOCK)) != NULL) n++;
  cr_assert_lt(n, HELD_MAX, "the limit was reached");
  cr_assert_eq(errno, ENOMEM);
  errno = 0;
  cr_assert_null(buddy_malloc(64 * MIB));
  cr_assert_eq(errno, ENOMEM);
  errno = 0;
  cr_assert_null(buddy_calloc(1, 64 * MIB));
  cr_assert_eq(errno, ENOMEM);
  void *p = NULL;
  cr_assert_eq(buddy_posix_memalign(&p, 8 * MIB, 64 * MIB), ENOMEM);
  cr_assert_null(buddy_aligned_alloc(8 * MIB, 64 * MIB));
  void *keep = held[0];
  errno = 0;
  cr_assert_null(buddy_realloc(keep, 64 * MIB));
  cr_assert_eq(errno, ENOMEM);
  cr_assert_eq(keep, held[0], "a failed realloc leaves the block");
  for (int i = 0; i < n; i++) buddy_free(held[i]);
  buddy_trim(0);
  void *again = buddy_malloc(MEDIUM_BLOCK);
  cr_assert_not_null(again, "the heap works again after frees");
  memset(again, 3, MEDIUM_BLOCK);
  buddy_free(again);
}

Test(heap, huge_blocks_are_reused_from_the_cache) {
  options.purge_delay_ms = 3600000;
  char *a = buddy_malloc(20 * MIB);
  memset(a, 7, 20 * MIB);
  buddy_free(a);
  char *b = buddy_malloc(12 * MIB); /* the cached 20 MiB block, trimmed */
  cr_assert_eq(b, a);
  cr_assert_eq(buddy_malloc_usable_size(b), 12 * MIB);
  char *c = buddy_calloc(1, 12 * MIB);
  for (size_t i = 0; i < 12 * MIB; i += 4096) cr_assert_eq(c[i], 0, "calloc clears a reused block");
  buddy_free(b);
  buddy_free(c);
}

/* calloc of a cached huge block (its pages faulted in, dirty) purges them
 * rather than writing zeros over them: every byte reads 0, and the pages the
 * program does not touch stay out of its memory (a sparse table keeps only
 * what it uses resident). The last partial page and the tail pattern past
 * the request are kept right: the free reports nothing. */
Test(heap, calloc_of_a_cached_huge_block_leaves_untouched_pages_out, .init = cr_redirect_stderr) {
  options.purge_delay_ms = 3600000;
  enum { BYTES = 24 * MIB, ASKED = 24 * MIB - 100 };
  char *a = buddy_malloc(BYTES);
  memset(a, 7, BYTES);
  buddy_free(a);
  char *c = buddy_calloc(1, ASKED);
  cr_assert_eq(c, a, "the cached block is taken again");
  unsigned char in[BYTES / 4096];
  cr_assert_eq(mincore(c, BYTES, in), 0);
  size_t resident = 0;
  for (size_t i = 0; i < sizeof in; i++) resident += in[i] & 1;
  cr_assert_leq(resident, 1, "%zu of %zu pages still resident after calloc", resident, sizeof in);
  for (size_t i = 0; i < ASKED; i += 512) cr_assert_eq(c[i], 0, "byte %zu", i);
  for (size_t i = ASKED - 4096; i < ASKED; i++) cr_assert_eq(c[i], 0, "byte %zu", i);
  buddy_free(c);
  fflush(stderr);
  cr_assert_stderr_eq_str("", "the free found the tail intact");
}

Test(heap, double_free_of_a_cached_huge_block_aborts, .signal = SIGABRT) {
  options.purge_delay_ms = 3600000;
  void *a = buddy_malloc(10 * MIB);
  buddy_free(a);
  buddy_free(a);
}

/* The rest of a larger cached block, itself a huge block, is split off and
 * stays cached with its pages: the next request takes it, its old bytes
 * still there (not faulted in anew). Pieces of one mapping merge again when
 * both are freed; a second free of a piece merged away is still caught. */
static size_t cached_huge_bytes(void) {
  buddy_stats_t s;
  stats_collect(&s);
  return s.huge_cached_bytes;
}

Test(heap, the_rest_of_a_cached_huge_block_stays_cached_and_serves_the_next_request) {
  options.purge_delay_ms = 3600000;
  char *a = buddy_malloc(24 * MIB);
  memset(a, 7, 24 * MIB);
  buddy_free(a);
  char *b = buddy_malloc(8 * MIB);
  cr_assert_eq(b, a, "the front of the cached block");
  cr_assert_eq(buddy_malloc_usable_size(b), 8 * MIB);
  cr_assert_eq(cached_huge_bytes(), 16 * MIB, "the rest waits in the cache");
  char *c = buddy_malloc(14 * MIB);
  cr_assert_eq(c, a + 8 * MIB, "the rest serves the next request");
  cr_assert_eq(buddy_malloc_usable_size(c), 16 * MIB, "a rest of at most a quarter stays with the block");
  for (size_t i = 0; i < 14 * MIB; i += 4096) cr_assert_eq(c[i], 7, "its pages are the old ones");
  cr_assert_eq(cached_huge_bytes(), 0);
  buddy_free(b);
  buddy_free(c);
  cr_assert_eq(cached_huge_bytes(), 24 * MIB);
  char *d = buddy_malloc(24 * MIB);
  cr_assert_eq(d, a, "the two pieces merged again");
  cr_assert_eq(buddy_malloc_usable_size(d), 24 * MIB);
  buddy_free(d);
  buddy_trim(0);
  cr_assert_eq(cached_huge_bytes(), 0, "a trim unmaps every cached block");
}

Test(heap, a_second_free_of_a_huge_piece_merged_away_aborts, .signal = SIGABRT) {
  options.purge_delay_ms = 3600000;
  char *a = buddy_malloc(24 * MIB);
  buddy_free(a);
  char *b = buddy_malloc(8 * MIB), *c = buddy_malloc(16 * MIB);
  cr_assert(b == a && c == a + 8 * MIB);
  buddy_free(b);
  buddy_free(c); /* merged into b's block */
  buddy_free(c);
}

/* The cache holds at most half the live huge bytes, and
 * HUGE_CACHE_BYTES_MIN (128 MiB) at least: the oldest blocks go first. */
Test(heap, the_huge_cache_is_bounded_and_keeps_the_newest) {
  options.purge_delay_ms = 3600000;
  enum { BLOCKS = 8 };
  char *blocks[BLOCKS];
  for (int i = 0; i < BLOCKS; i++) blocks[i] = buddy_malloc(20 * MIB);
  for (int i = 0; i < BLOCKS; i++) buddy_free(blocks[i]);
  cr_assert_leq(cached_huge_bytes(), 128 * MIB);
  cr_assert_geq(cached_huge_bytes(), 120 * MIB);
  for (int i = 0; i < BLOCKS; i++) {
    uintptr_t entry = pagemap_entry(blocks[i]);
    bool cached = entry != 0 && pagemap_huge(entry)->cached;
    cr_assert_eq(cached, i >= 2, "block %d (the oldest two were unmapped)", i);
  }
}

/* A cached block whose rest past the request is less than a slot (so no
 * huge block of its own) keeps it, pages and all, when it is at most the
 * request: a program replacing buffers of random sizes then reuses pages
 * already faulted in. A larger rest is unmapped. */
Test(heap, a_reused_huge_block_keeps_a_rest_up_to_its_request) {
  options.purge_delay_ms = 3600000;
  char *a = buddy_malloc(11 * MIB);
  buddy_free(a);
  char *b = buddy_malloc(6 * MIB); /* slots: 8 MiB; rest 3 MiB, slack 5 MiB */
  cr_assert_eq(b, a);
  cr_assert_eq(buddy_malloc_usable_size(b), 11 * MIB);
  buddy_free(b);
  char *c = buddy_malloc(5 * MIB); /* slack 6 MiB: more than the request */
  cr_assert_eq(c, a);
  cr_assert_eq(buddy_malloc_usable_size(c), 5 * MIB);
  buddy_free(c);
}

/* Freed huge blocks waiting in the cache hold address space: under
 * RLIMIT_AS, an allocation that needs a new mapping (a region for medium
 * and small blocks, a huge block's own) gets it once they are unmapped,
 * rather than failing where an allocator that unmaps at once would not. */
static void cache_huge_blocks_then_limit_address_space(size_t headroom) {
  options.purge_delay_ms = 3600000;
  enum { BLOCKS = 4 };
  void *blocks[BLOCKS];
  for (int i = 0; i < BLOCKS; i++) cr_assert_not_null(blocks[i] = buddy_malloc(24 * MIB));
  for (int i = 0; i < BLOCKS; i++) buddy_free(blocks[i]);
  cr_assert_eq(cached_huge_bytes(), BLOCKS * 24 * MIB);
  struct rlimit limit;
  cr_assert_eq(getrlimit(RLIMIT_AS, &limit), 0);
  limit.rlim_cur = test_vsize_bytes() + headroom;
  cr_assert_eq(setrlimit(RLIMIT_AS, &limit), 0);
}

Test(heap, cached_huge_blocks_make_way_for_a_new_region) {
  cache_huge_blocks_then_limit_address_space(2 * MIB); /* less than a region */
  enum { HELD_MAX = 512 };
  static void *held[HELD_MAX];
  for (int i = 0; i < HELD_MAX; i++) { /* 48 MiB: more than the regions mapped so far */
    held[i] = buddy_malloc(MEDIUM_BLOCK);
    cr_assert_not_null(held[i], "medium block %d", i);
    memset(held[i], 1, MEDIUM_BLOCK);
  }
  cr_assert_eq(cached_huge_bytes(), 0);
  for (int i = 0; i < HELD_MAX; i++) buddy_free(held[i]);
}

Test(heap, cached_huge_blocks_make_way_for_new_slabs) {
  cache_huge_blocks_then_limit_address_space(2 * MIB);
  enum { HELD_MAX = 48 * MIB / SMALL_BLOCK };
  static void *held[HELD_MAX];
  for (int i = 0; i < HELD_MAX; i++) {
    held[i] = buddy_malloc(SMALL_BLOCK);
    if (held[i] == NULL) cr_assert_fail("small block %d of %d", i, HELD_MAX);
  }
  cr_assert_eq(cached_huge_bytes(), 0);
  for (int i = 0; i < HELD_MAX; i++) buddy_free(held[i]);
}

Test(heap, cached_huge_blocks_make_way_for_a_new_huge_mapping) {
  cache_huge_blocks_then_limit_address_space(8 * MIB);
  void *p = NULL;
  /* Aligned beyond a slot: never served from the cache, always mapped. */
  cr_assert_eq(buddy_posix_memalign(&p, 16 * MIB, 40 * MIB), 0);
  cr_assert_eq(cached_huge_bytes(), 0);
  memset(p, 1, 40 * MIB);
  buddy_free(p);
  char *q = buddy_malloc(60 * MIB); /* and the heap goes on */
  cr_assert_not_null(q);
  buddy_free(q);
}

/* ---- BUDDY_OPTIONS -------------------------------------------------------- */

static void run_options(const char *value) {
  setenv("BUDDY_OPTIONS", value, 1);
  options_init();
}

Test(options, values_are_parsed, .init = cr_redirect_stderr) {
  run_options("purge_delay_ms=250,zones=2,tcache_max=16");
  cr_assert_eq(options.purge_delay_ms, 250);
  cr_assert_eq(options.zones, 2);
  cr_assert_eq(options.tcache_max, 16);
  fflush(stderr);
  cr_assert_stderr_eq_str("");
}

Test(options, unknown_key_warns_once_and_keeps_defaults, .init = cr_redirect_stderr) {
  run_options("purge_delay=5,zones=99,zones=x,stats=1,zones=2,zones=7,verbose=2,zones");
  cr_assert_eq(options.zones, 2, "bad values keep what was in force");
  cr_assert_eq(options.stats, 1, "good keys after bad ones still apply");
  options.stats = 0; /* no report at exit: stderr is Criterion's pipe */
  fflush(stderr);
  cr_assert_stderr_eq_str(
      "buddymalloc: warning: BUDDY_OPTIONS: unknown option 'purge_delay', ignored (verbose=1 lists the options)\n"
      "buddymalloc: warning: BUDDY_OPTIONS: zones=99: must be 1-6, keeping 4\n"
      "buddymalloc: warning: BUDDY_OPTIONS: zones=x: must be 1-6, keeping 4\n"
      "buddymalloc: warning: BUDDY_OPTIONS: zones=7: must be 1-6, keeping 2\n"
      "buddymalloc: warning: BUDDY_OPTIONS: verbose=2: must be 0 or 1, keeping 0\n"
      "buddymalloc: warning: BUDDY_OPTIONS: zones: must be 1-6, keeping 2\n");
}

/* quiet=1 silences every warning, those of the options before it too (the
 * children of a pipeline, each of which would print the same), and changes
 * nothing else: bad values are still refused, and misuse still reported. */
Test(options, quiet_silences_the_warnings_wherever_it_stands, .init = cr_redirect_stderr) {
  setenv("BUDDY_STATS", "sometimes", 1);
  run_options("purge_delay=5,zones=99,zones=2,quiet=1,verbose=2,tcache_max=0");
  unsetenv("BUDDY_STATS");
  cr_assert_eq(options.quiet, 1);
  cr_assert_eq(options.zones, 2, "bad values are still refused");
  cr_assert_eq(options.verbose, 0);
  cr_assert_eq(options.tcache_max, TCACHE_BIN_MAX);
  options.abort_on_error = 0;
  void **p = buddy_malloc(48);
  buddy_free(p);
  buddy_free(p); /* a double free: reported, and left alone */
  fflush(stderr);
  const char *text = redirected_stderr();
  cr_assert_null(strstr(text, "warning: BUDDY"), "got:\n%s", text);
  cr_assert_not_null(strstr(text, "double free"), "misuse is still reported; got:\n%s", text);
}

/* BUDDY_STATS and stats= take one set of values: 0, 1 or text, 2 or json. */
static long stats_from(const char *variable, const char *option) {
  options.stats = 0;
  if (variable != NULL) setenv("BUDDY_STATS", variable, 1);
  else unsetenv("BUDDY_STATS");
  setenv("BUDDY_OPTIONS", option != NULL ? option : "", 1);
  options_init();
  long value = options.stats;
  options.stats = 0; /* no report at exit */
  return value;
}

Test(options, stats_values_are_the_same_in_both_places, .init = cr_redirect_stderr) {
  const char *values[] = {"0", "1", "text", "2", "json"};
  const long meaning[] = {0, 1, 1, 2, 2};
  for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
    char option[32];
    snprintf(option, sizeof option, "stats=%s", values[i]);
    cr_assert_eq(stats_from(values[i], NULL), meaning[i], "BUDDY_STATS=%s", values[i]);
    cr_assert_eq(stats_from(NULL, option), meaning[i], "BUDDY_OPTIONS=%s", option);
  }
  cr_assert_eq(stats_from("", NULL), 0, "an empty BUDDY_STATS is unset");
  cr_assert_eq(stats_from("json", "stats=text"), 1, "stats= in BUDDY_OPTIONS wins");
  fflush(stderr);
  cr_assert_stderr_eq_str("", "no value above warns");
}

Test(options, unknown_stats_values_warn_in_both_places, .init = cr_redirect_stderr) {
  cr_assert_eq(stats_from("yes", NULL), 0);
  cr_assert_eq(stats_from(NULL, "stats=JSON"), 0);
  cr_assert_eq(stats_from("3", NULL), 0);
  fflush(stderr);
  cr_assert_stderr_eq_str(
      "buddymalloc: warning: BUDDY_STATS=yes: must be 0, 1 or text, 2 or json, keeping 0\n"
      "buddymalloc: warning: BUDDY_OPTIONS: stats=JSON: must be 0, 1 or text, 2 or json, keeping 0\n"
      "buddymalloc: warning: BUDDY_STATS=3: must be 0, 1 or text, 2 or json, keeping 0\n");
}

Test(options, stats_file_is_made_absolute_and_stats_signal_takes_names, .init = cr_redirect_stderr) {
  char cwd[4096];
  cr_assert_not_null(getcwd(cwd, sizeof cwd));
  run_options("stats_file=report.%p,stats_signal=USR2");
  char expected[4200];
  snprintf(expected, sizeof expected, "%s%sreport.%%p", cwd, strcmp(cwd, "/") == 0 ? "" : "/");
  cr_assert_str_eq(options.stats_file, expected);
  cr_assert_eq(options.stats_signal, SIGUSR2);
  run_options("stats_signal=10,stats_file=/abs/x");
  cr_assert_eq(options.stats_signal, 10);
  cr_assert_str_eq(options.stats_file, "/abs/x");
  run_options("stats_signal=99,stats_file=");
  fflush(stderr);
  cr_assert_stderr_eq_str(
      "buddymalloc: warning: BUDDY_OPTIONS: stats_signal=99: must be 0 (none), a signal number 1-64, USR1 or USR2, "
      "keeping 10\n"
      "buddymalloc: warning: BUDDY_OPTIONS: stats_file=: must be a path (%p: the pid), keeping /abs/x\n");
}

/* What the test wrote to stderr so far (with .init = cr_redirect_stderr). */
Test(options, verbose_reports_options_and_their_source, .init = cr_redirect_stderr) {
  run_options("verbose=1,purge_delay_ms=10");
  const char *text = redirected_stderr();
  cr_assert_gt(strlen(text), 0);
  cr_assert_not_null(strstr(text, "purge_delay_ms=10 (BUDDY_OPTIONS)"), "%s", text);
  cr_assert_not_null(strstr(text, "zones=4 (default)"), "%s", text);
}

/* ---- Statistics ----------------------------------------------------------- */

static size_t json_number(const char *json, const char *key) {
  char pattern[64];
  snprintf(pattern, sizeof pattern, "\"%s\":", key);
  const char *at = strstr(json, pattern);
  cr_assert_not_null(at, "%s in %s", key, json);
  return (size_t)strtoull(at + strlen(pattern), NULL, 10);
}

Test(stats, json_counts_what_is_live) {
  char *before = buddy_stats_json();
  cr_assert_not_null(before);
  size_t runs_before = json_number(before, "runs"), huge_before = json_number(before, "huge_blocks");
  buddy_free(before);
  void *medium = buddy_malloc(MEDIUM_BLOCK);
  void *huge = buddy_malloc(9 * MIB);
  char *during = buddy_stats_json();
  cr_assert_eq(json_number(during, "runs"), runs_before + 1);
  cr_assert_eq(json_number(during, "huge_blocks"), huge_before + 1);
  cr_assert_geq(json_number(during, "huge_bytes"), 9 * MIB);
  cr_assert_eq(json_number(during, "pages_used") + json_number(during, "pages_free"),
               json_number(during, "regions") * BUDDY_REGION_PAGES, "pages add up to the regions");
  buddy_free(during);
  buddy_free(medium);
  buddy_free(huge);
  char *after = buddy_stats_json();
  cr_assert_eq(json_number(after, "runs"), runs_before);
  cr_assert_eq(json_number(after, "huge_blocks"), huge_before);
  buddy_free(after);
}

Test(stats, allocated_and_resident_bytes_follow_the_heap) {
  options.purge_delay_ms = 3600000;
  buddy_stats_t before, during, after;
  buddy_free(buddy_malloc(1)); /* the thread's cache exists (it is a small block itself) */
  stats_collect(&before);
  enum { SMALL = 20000, MEDIUM = 64 };
  static void *small[SMALL], *medium[MEDIUM];
  size_t asked = 0, usable = 0;
  for (int i = 0; i < SMALL; i++) memset(small[i] = buddy_malloc(SMALL_BLOCK), 1, SMALL_BLOCK);
  for (int i = 0; i < MEDIUM; i++) memset(medium[i] = buddy_malloc(MEDIUM_BLOCK), 1, MEDIUM_BLOCK);
  for (int i = 0; i < SMALL; i++) usable += buddy_malloc_usable_size(small[i]);
  for (int i = 0; i < MEDIUM; i++) usable += buddy_malloc_usable_size(medium[i]);
  asked = (size_t)SMALL * SMALL_BLOCK + (size_t)MEDIUM * MEDIUM_BLOCK;
  stats_collect(&during);
  /* Allocated counts usable sizes, and objects a refill moved into the cache. */
  size_t grown = during.bytes_allocated - before.bytes_allocated;
  cr_assert_geq(grown, usable);
  cr_assert_leq(grown, usable + during.bytes_cached, "%zu grown, %zu usable", grown, usable);
  cr_assert_geq(during.bytes_resident, during.bytes_allocated);
  for (int i = 0; i < SMALL; i++) buddy_free(small[i]);
  for (int i = 0; i < MEDIUM; i++) buddy_free(medium[i]);
  stats_collect(&after);
  cr_assert_leq(after.bytes_allocated, before.bytes_allocated + after.bytes_cached + 64 * 1024);
  cr_assert_geq(after.bytes_resident, asked, "freed pages stay resident until purged");
  buddy_trim(0);
  stats_collect(&after);
  cr_assert_leq(after.bytes_resident, before.bytes_resident + 2 * MIB, "a trim purges them");
}

/* Every report says which process it is, and the peaks. */
Test(stats, report_names_the_process_and_its_peaks, .init = cr_redirect_stderr) {
  options.purge_delay_ms = 3600000;
  enum { MEDIUM = 48 };
  static void *medium[MEDIUM];
  for (int i = 0; i < MEDIUM; i++) memset(medium[i] = buddy_malloc(MEDIUM_BLOCK), 1, MEDIUM_BLOCK);
  void *huge = buddy_malloc(9 * MIB);
  memset(huge, 1, 9 * MIB);
  size_t held = (size_t)MEDIUM * MEDIUM_BLOCK + 9 * MIB;
  buddy_stats_t during, after;
  stats_collect(&during);
  cr_assert_geq(during.bytes_allocated_peak, during.bytes_allocated);
  cr_assert_geq(during.bytes_allocated_peak, held);
  for (int i = 0; i < MEDIUM; i++) buddy_free(medium[i]);
  buddy_free(huge);
  stats_collect(&after);
  cr_assert_lt(after.bytes_allocated + held / 2, during.bytes_allocated, "the blocks are gone");
  cr_assert_geq(after.bytes_allocated_peak + ZONE_OUT_GRAIN * ZONES_MAX, during.bytes_allocated,
                "the peak stays (to a grain per zone)");
  if (!TEST_ASAN) cr_assert_geq(after.process_peak_rss, held, "VmHWM saw the blocks resident");
  stats_print(false);
  const char *text = redirected_stderr();
  char first[128];
  snprintf(first, sizeof first, "buddymalloc statistics: pid %d (%s), on request\n", (int)getpid(),
           program_invocation_short_name);
  cr_assert_eq(strncmp(text, first, strlen(first)), 0, "%s", text);
  cr_assert_not_null(strstr(text, "KiB at peak"), "%s", text);
  cr_assert_not_null(strstr(text, "peak RSS"), "%s", text);
}

/* No row of the class table says what cannot be: blocks out of their slabs
 * with no request for them (a huge block's descriptor is the allocator's),
 * or more in the caches than out. */
Test(stats, the_class_table_has_no_impossible_rows, .init = cr_redirect_stderr) {
  void *huge[3];
  for (int i = 0; i < 3; i++) huge[i] = buddy_malloc((size_t)(5 + i) * MIB);
  void *small = buddy_malloc(100);
  buddy_stats_t s;
  stats_collect(&s);
  cr_assert_geq(s.huge_descriptors, 3);
  stats_print(false);
  const char *text = redirected_stderr();
  const char *table = strstr(text, "  size class");
  cr_assert_not_null(table, "%s", text);
  int rows = 0;
  for (const char *line = strchr(table, '\n') + 1; *line != '\0'; line = strchr(line, '\n') + 1) {
    unsigned cls, bytes;
    unsigned long long requests;
    size_t slabs, out, cached;
    cr_assert_eq(sscanf(line, "%u %u %llu %zu %zu %zu", &cls, &bytes, &requests, &slabs, &out, &cached), 6, "%s", line);
    cr_assert(requests > 0 || out == 0, "class %u: %zu blocks out with no request\n%s", cls, out, text);
    cr_assert_leq(cached, out, "class %u\n%s", cls, text);
    rows++;
  }
  cr_assert_gt(rows, 0);
  buddy_free(small);
  for (int i = 0; i < 3; i++) buddy_free(huge[i]);
}

/* Reads the whole of a file (small) into a static buffer; "" if missing. */
static const char *file_text(const char *path) {
  static char text[65536];
  FILE *f = fopen(path, "r");
  size_t n = 0;
  if (f != NULL) {
    n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
  }
  text[n] = '\0';
  return text;
}

static size_t count_of(const char *text, const char *what) {
  size_t n = 0;
  for (const char *at = text; (at = strstr(at, what)) != NULL; at += strlen(what)) n++;
  return n;
}

/* stats_file: %p is the pid; reports are appended; JSON with stats=json. */
Test(stats, stats_file_takes_each_report_of_the_process) {
  char dir[] = "/tmp/buddy-stats-XXXXXX", pattern[128], path[128];
  cr_assert_not_null(mkdtemp(dir));
  snprintf(pattern, sizeof pattern, "%s/report.%%p.txt", dir);
  snprintf(path, sizeof path, "%s/report.%d.txt", dir, (int)getpid());
  options.stats_file = pattern;
  options.stats = 1;
  stats_report(STATS_AT_EXIT);
  options.stats = 2;
  stats_report(STATS_AT_EXIT);
  options.stats = 0;
  const char *text = file_text(path);
  char first[128], json[128];
  snprintf(first, sizeof first, "buddymalloc statistics: pid %d (%s), at exit\n", (int)getpid(),
           program_invocation_short_name);
  snprintf(json, sizeof json, "{\"allocator\":\"buddymalloc\",\"pid\":%d,\"program\":\"%s\",\"when\":\"exit\",",
           (int)getpid(), program_invocation_short_name);
  cr_assert_eq(strncmp(text, first, strlen(first)), 0, "%s", text);
  cr_assert_not_null(strstr(text, json), "%s", text);
  cr_assert_not_null(strstr(text, "\"allocated_peak_bytes\":"), "%s", text);
  cr_assert_eq(count_of(text, "buddymalloc statistics: pid"), 1, "appended: %s", text);
  cr_assert_eq(count_of(text, "{\"allocator\":"), 1, "appended: %s", text);
  unlink(path);
  rmdir(dir);
}

/* stats_signal: a snapshot on the signal, from a thread of the allocator's,
 * written like the report at exit. */
Test(stats, a_signal_writes_a_snapshot) {
  char dir[] = "/tmp/buddy-stats-XXXXXX", path[128];
  cr_assert_not_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/snapshot", dir);
  options.stats_file = path;
  options.stats_signal = SIGUSR2;
  snapshot_init();                        /* start-up ran at load, before these options */
  buddy_free(buddy_malloc(MEDIUM_BLOCK)); /* a slow path: the thread starts */
  cr_assert(snapshot_thread_running);
  for (int tries = 0; tries < 1000 && count_of(file_text(path), "on signal 12") < 2; tries++) {
    if (tries % 100 == 0) kill(getpid(), SIGUSR2);
    usleep(10 * 1000);
  }
  const char *text = file_text(path);
  cr_assert_geq(count_of(text, "on signal 12\n"), 2, "%s", text);
  cr_assert_eq(count_of(text, "buddymalloc statistics: pid"), count_of(text, "(in caches)\n"), "whole reports: %s",
               text);
  unlink(path);
  rmdir(dir);
}

/* A fork child has no snapshot thread of its parent's: its first slow path
 * starts its own, and its reports name it. Not under AddressSanitizer: its
 * allocator's lock may be held by another thread of the test process when
 * it forks, and the child's new thread then waits on it for good, inside
 * the sanitizer (AsanThread::Init → pthread_getattr_np → free; seen in 1 run
 * in 40, with the code of dd30a08 too). */
Test(stats, a_fork_child_writes_its_own_snapshots) {
  if (TEST_ASAN) cr_skip_test("a fork child's pthread_create may wait on AddressSanitizer's allocator lock");
  char dir[] = "/tmp/buddy-stats-XXXXXX", path[128], header[128];
  cr_assert_not_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/snapshot", dir);
  options.stats_file = path;
  options.stats_signal = SIGUSR2;
  snapshot_init();
  buddy_free(buddy_malloc(MEDIUM_BLOCK));
  pid_t child = fork();
  cr_assert_geq(child, 0);
  if (child == 0) {
    buddy_free(buddy_malloc(MEDIUM_BLOCK)); /* its own thread starts */
    snprintf(header, sizeof header, "statistics: pid %d (", (int)getpid());
    for (int tries = 0; tries < 1000 && count_of(file_text(path), header) == 0; tries++) {
      if (tries % 100 == 0) kill(getpid(), SIGUSR2);
      usleep(10 * 1000);
    }
    _exit(count_of(file_text(path), header) >= 1 ? 0 : 1);
  }
  int status = 0;
  cr_assert_eq(waitpid(child, &status, 0), child);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child wrote no snapshot: %s", file_text(path));
  unlink(path);
  rmdir(dir);
}

Test(stats, a_signal_that_cannot_be_caught_is_said, .init = cr_redirect_stderr) {
  options.stats_signal = SIGKILL;
  snapshot_init();
  options.stats_signal = 0;
  const char *text = redirected_stderr();
  cr_assert_not_null(strstr(text, "stats_signal: that signal cannot be caught"), "%s", text);
}

/* ---- debug=1: freed blocks are filled and checked on reuse ----------------- */

Test(debug, write_after_free_is_reported, .signal = SIGABRT) {
  options.debug = 1; /* before the first allocation: the thread caches stay off */
  char *p = buddy_malloc(64);
  buddy_free(p);
  p[40] = 7; /* use after free */
  buddy_malloc(64);
}

/* The first word too: no list runs through free objects any more. */
Test(debug, write_after_free_to_the_first_word_is_reported, .signal = SIGABRT) {
  options.debug = 1;
  char *p = buddy_malloc(16);
  buddy_free(p);
  p[0] = 7;
  buddy_malloc(16);
}

static void *free_in_another_zone(void *p) {
  void *own = buddy_malloc(64);
  cr_assert_neq(region_of_address(own)->zone, region_of_address(p)->zone, "zones=4: this thread is at home elsewhere");
  buddy_free(own);
  buddy_free(p); /* a remote free: straight to its slab, filled */
  return NULL;
}

/* A block freed by a thread of another zone is filled as well, and checked
 * when its own zone hands it out again. */
Test(debug, write_after_a_remote_free_is_reported, .signal = SIGABRT) {
  options.debug = 1;
  char *p = buddy_malloc(64);
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, free_in_another_zone, p), 0);
  cr_assert_eq(pthread_join(t, NULL), 0);
  cr_assert(free_in_slab(p), "back in its slab, not in a batch");
  p[40] = 7; /* use after free */
  buddy_malloc(64);
}

Test(debug, correct_programs_run_unchanged) {
  options.debug = 1;
  enum { N = 2000 };
  static char *blocks[N];
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < N; i++) {
      blocks[i] = buddy_malloc((size_t)(i % 700) + 1);
      memset(blocks[i], i & 0xff, (size_t)(i % 700) + 1);
    }
    for (int i = 0; i < N; i++) {
      cr_assert_eq((unsigned char)blocks[i][i % 700], (unsigned char)(i & 0xff));
      buddy_free(blocks[i]);
    }
  }
}

/* ---- abort_on_error=0: misuse warns and leaves the block alone ------------- */

Test(misuse, warn_and_leak_keeps_the_heap_working, .init = cr_redirect_stderr) {
  options.abort_on_error = 0;
  options.purge_delay_ms = 3600000;
  static char not_ours[64];
  char *small = buddy_malloc(64), *other = buddy_malloc(64);
  char *medium = buddy_malloc(MEDIUM_BLOCK), *huge = buddy_malloc(9 * MIB);
  buddy_free(not_ours);
  buddy_free(small + 16);
  buddy_free(small);
  buddy_free(small); /* still in this thread's cache */
  buddy_free(medium + PAGE_SIZE);
  buddy_free(medium);
  buddy_free(medium);
  buddy_free(huge);
  buddy_free(huge); /* waiting in the huge cache */
  errno = 0;
  cr_assert_null(buddy_realloc(not_ours, 10));
  cr_assert_eq(errno, EINVAL);
  cr_assert_eq(buddy_malloc_usable_size(not_ours), 0);
  /* Nothing was handed out twice and every structure is intact. */
  char *again = buddy_malloc(64);
  cr_assert_neq(again, buddy_malloc(64));
  memset(other, 1, 64);
  buddy_free(other);
  buddy_trim(0);
  zone_verify_all();
  const char *text = redirected_stderr();
  const char *expected[] = {"free of a pointer buddymalloc does not own",
                            "inside a small block",
                            "double free of a small block",
                            "inside a block (not its start)",
                            "double free: block is already free",
                            "double free: huge block is already free",
                            "realloc of a pointer buddymalloc does not own"};
  for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++)
    cr_assert_not_null(strstr(text, expected[i]), "warning '%s' missing from:\n%s", expected[i], text);
  cr_assert_null(strstr(text, "error:"), "nothing was fatal:\n%s", text);
}

/* ---- A page run's tail check through realloc in place ---------------------
 * realloc in place moves the tail check to the new end (run.c:
 * zone_run_move_tail), filling only the bytes past the old tail when the run
 * grew within it. A string appended to a few bytes at a time: */

#define RUN_START 40000 /* a page run of 64 KiB: above the small classes */
#define RUN_STEP 7

static char *run_grown_to(size_t end) {
  char *p = buddy_malloc(RUN_START), *q = p;
  memset(p, 'a', RUN_START);
  for (size_t n = RUN_START + RUN_STEP; n <= end; n += RUN_STEP) {
    q = buddy_realloc(q, n);
    cr_assert_eq(q, p, "in place at %zu bytes", n);
    memset(q + n - RUN_STEP, 'b', RUN_STEP); /* the program writes what it asked for */
  }
  return q;
}

static void assert_overflow_reported(bool reported) {
  const char *text = redirected_stderr();
  const char *found = strstr(text, "a write past the end of a medium block");
  cr_assert(reported ? found != NULL : found == NULL, "%s:\n%s", reported ? "not reported" : "reported", text);
}

Test(run_tail, a_run_grown_in_place_and_written_to_its_end_is_not_reported, .init = cr_redirect_stderr) {
  options.abort_on_error = 0;
  buddy_free(run_grown_to(RUN_START + 100 * RUN_STEP));
  assert_overflow_reported(false);
}

Test(run_tail, a_write_past_the_new_end_of_a_grown_run_is_reported, .init = cr_redirect_stderr) {
  options.abort_on_error = 0;
  size_t end = RUN_START + 100 * RUN_STEP;
  char *p = run_grown_to(end);
  p[end + FILL_TAIL_MAX - 1] = 'x'; /* the last byte of the tail */
  buddy_free(p);
  assert_overflow_reported(true);
}

/* A write past the old end, which the grown run's new end does not reach:
 * still past the end, still reported (refilling the whole tail at each
 * realloc used to erase it). */
Test(run_tail, a_write_past_the_old_end_that_stays_past_the_new_one_is_reported, .init = cr_redirect_stderr) {
  options.abort_on_error = 0;
  char *p = run_grown_to(RUN_START);
  p[RUN_START + 20] = 'x';
  cr_assert_eq(buddy_realloc(p, RUN_START + 10), p);
  buddy_free(p);
  assert_overflow_reported(true);
}

/* Shrunk, or grown past its tail, the run is armed again whole. */
Test(run_tail, a_run_shrunk_or_grown_far_is_checked_at_its_new_end, .init = cr_redirect_stderr) {
  options.abort_on_error = 0;
  char *p = run_grown_to(RUN_START);
  cr_assert_eq(buddy_realloc(p, RUN_START - 1000), p, "shrunk in place");
  p[RUN_START - 1000] = 'x';
  buddy_free(p);
  assert_overflow_reported(true);
  char *q = run_grown_to(RUN_START);
  cr_assert_eq(buddy_realloc(q, RUN_START + 1000), q, "grown in place past the tail");
  memset(q + RUN_START, 'b', 1000);
  buddy_free(q);
  assert_overflow_reported(false); /* what was written since the first report */
}

/* A page run shrunk to a quarter of its order or less moves, so that its
 * whole run goes back and coalesces (the next buffer grown as large takes
 * it); a smaller shrink splits it in place. A buffer grown to 1 MiB and
 * shrunk to 40 KB to be kept stranded 960 KiB of dirty pages beside it. */
Test(realloc, a_run_shrunk_to_a_quarter_moves_and_its_run_serves_again) {
  enum { BIG = MIB, KEPT = 40000, HALF = 600 * 1024 };
  char *a = buddy_malloc(BIG);
  cr_assert_not_null(a);
  for (size_t i = 0; i < BIG; i += 4096) a[i] = (char)(i >> 12);
  char *kept = buddy_realloc(a, KEPT);
  cr_assert_neq(kept, a, "shrunk to a quarter or less: moved");
  for (size_t i = 0; i < KEPT; i += 4096) cr_assert_eq(kept[i], (char)(i >> 12), "byte %zu kept", i);
  char *next = buddy_malloc(BIG);
  cr_assert_eq(next, a, "the old run, whole again, serves the next block of its size");
  cr_assert_eq(buddy_realloc(next, HALF), next, "shrunk to half: in place");
  buddy_free(next);
  buddy_free(kept);
}

/* Secure mode: a medium block (after its header page) stays in place too,
 * its tail checked at each realloc; one written past its end is reported
 * there, once, and moves. */
Test(run_tail, secure_mode_reports_a_write_past_a_medium_block_at_its_realloc, .init = cr_redirect_stderr) {
  options.secure = 1;
  options.debug = 1; /* as secure=1 in BUDDY_OPTIONS sets it */
  options.abort_on_error = 0;
  char *p = buddy_malloc(RUN_START);
  memset(p, 'a', RUN_START);
  cr_assert_eq(buddy_realloc(p, RUN_START + 100), p, "in place");
  p[RUN_START + 100] = 'x';
  char *q = buddy_realloc(p, RUN_START + 200);
  cr_assert_not_null(q);
  cr_assert_neq(q, p, "moved after the report");
  cr_assert_eq(q[RUN_START - 1], 'a');
  buddy_free(q);
  const char *text = redirected_stderr();
  cr_assert_not_null(strstr(text, "a write past the end of a medium block, found at its realloc"), "got:\n%s", text);
  cr_assert_null(strstr(text, "found when it was freed"), "reported once:\n%s", text);
}

/* slab_give checks every object a bin flush sends home (slab_check_give): an
 * object start never handed out is refused and left alone, and the slab stays
 * intact. Bins hold one block, so each free below
 * flushes the one before it. */
Test(misuse, a_flush_refuses_an_object_never_handed_out, .init = cr_redirect_stderr) {
  options.abort_on_error = 0;
  options.tcache_max = 1;
  char *p = buddy_malloc(48); /* a fresh slab carves one object per refill */
  char *slab = (char *)((uintptr_t)p & ~(uintptr_t)(PAGE_SIZE - 1));
  char *never = slab + 40 * 48;
  cr_assert_neq(never, p);
  buddy_free(never); /* an object start: into the bin */
  buddy_free(p);     /* the bin is full: `never` goes home and is refused */
  char *q = buddy_malloc(48);
  cr_assert_neq(q, never, "a refused object is never handed out");
  buddy_free(q);
  buddy_trim(0);
  zone_verify_all();
  const char *text = redirected_stderr();
  cr_assert_not_null(strstr(text, "free of a small block that was never allocated"), "got:\n%s", text);
}

/* A flush gives a bin's objects back slab by slab, in runs (zone.c): an
 * object that needs a report in the middle of a run (freed twice with its key
 * wiped in between, or never handed out) is reported and left alone, and the
 * objects around it still reach their slab. The four objects below share one
 * slab: bins of 8 blocks of 48 bytes, whose first refill carves 4 objects of
 * a fresh slab. */
static void flush_a_run_with(char *odd, bool twice, const char *report) {
  options.abort_on_error = 0;
  options.tcache_max = 8;
  char *a = buddy_malloc(48), *b = buddy_malloc(48), *c = buddy_malloc(48);
  char *slab = (char *)((uintptr_t)a & ~(uintptr_t)(PAGE_SIZE - 1));
  cr_assert(((uintptr_t)b & ~(uintptr_t)(PAGE_SIZE - 1)) == (uintptr_t)slab &&
                ((uintptr_t)c & ~(uintptr_t)(PAGE_SIZE - 1)) == (uintptr_t)slab,
            "one slab");
  if (odd == NULL) odd = a;
  buddy_free(a);
  if (twice) {
    ((void **)a)[1] = NULL; /* the program writes to it, */
    buddy_free(a);          /* and frees it again: not suspected, into the bin */
  } else {
    buddy_free(odd);
  }
  buddy_free(b);
  buddy_free(c);
  tcache_flush_current(); /* one run: a, a (or odd), b, c */
  const char *text = redirected_stderr();
  cr_assert_not_null(strstr(text, report), "got:\n%s", text);
  cr_assert(free_in_slab(a) && free_in_slab(b) && free_in_slab(c), "the others reached their slab");
  if (!twice) cr_assert(!free_in_slab(odd), "the refused object is left alone");
  zone_verify_all();
  /* Each comes out once (slabs hand out their lowest free objects first, and
   * 40 blocks carve none near the slab's end). */
  int seen_a = 0, seen_odd = 0;
  for (int i = 0; i < 40; i++) {
    char *q = buddy_malloc(48);
    seen_a += q == a;
    seen_odd += q == odd;
  }
  cr_assert_eq(seen_a, 1);
  if (!twice) cr_assert_eq(seen_odd, 0);
}

Test(misuse, a_flush_refuses_a_second_copy_within_a_run, .init = cr_redirect_stderr) {
  flush_a_run_with(NULL, true, "double free of a small block");
}

Test(misuse, a_flush_refuses_an_object_never_handed_out_within_a_run, .init = cr_redirect_stderr) {
  options.tcache_max = 8;     /* before the first refill: see flush_a_run_with */
  char *p = buddy_malloc(48); /* the slab the test's blocks come from */
  char *never = (char *)((uintptr_t)p & ~(uintptr_t)(PAGE_SIZE - 1)) + 84 * 48; /* its last object */
  buddy_free(p);
  flush_a_run_with(never, false, "free of a small block that was never allocated");
}

/* ---- Regressions found in review -------------------------------------------- */

Test(review, double_free_after_the_bin_flushed_aborts, .signal = SIGABRT) {
  options.tcache_max = 1; /* before the first allocation: bins hold one block */
  void *p = buddy_malloc(48);
  buddy_free(p);
  for (int i = 0; i < 8; i++) buddy_free(buddy_malloc(48)); /* p goes back to its slab */
  buddy_free(p);
}

static void *free_and_exit(void *p) {
  buddy_free(p);
  return NULL;
}

Test(review, double_free_after_the_freeing_thread_exited_aborts, .signal = SIGABRT) {
  void *p = buddy_malloc(48);
  pthread_t t;
  pthread_create(&t, NULL, free_and_exit, p);
  pthread_join(t, NULL); /* its cache went back to the slabs at exit */
  buddy_free(p);
}

/* A block back on its slab is freed again after a write to it wiped the key
 * (a use after free, then a double free): free cannot suspect it, so it
 * enters the bin; when the bin flushes, the slab finds its free bit set. */
Test(review, a_double_free_with_the_key_overwritten_aborts_at_the_slab, .signal = SIGABRT) {
  void **p = buddy_malloc(48), *keep = buddy_malloc(48);
  cr_assert(p != NULL && keep != NULL);
  buddy_free(p);
  tcache_flush_current(); /* p is free in its slab */
  p[1] = NULL;            /* the program writes to it */
  buddy_free(p);          /* not suspected: into the bin */
  tcache_flush_current(); /* back to the slab: refused */
}

/* A slab's free bits are set exactly for its free objects. */
/* What this thread freed, back in its slabs: its bins, and its zone's
 * transfer stacks, where a full bin's flush goes first while they have room
 * (zone_transfer_expire sends a class's stack to its slabs when no refill
 * took from it since the call before: the second call does). */
static void freed_blocks_to_their_slabs(void) {
  tcache_flush_current();
  zone_transfer_expire();
  zone_transfer_expire();
}

Test(review, free_bits_follow_the_slabs_free_objects) {
  options.tcache_max = 1; /* frees reach the zone at once, or nearly */
  enum { N = 64 };
  char *blocks[N];
  for (int i = 0; i < N; i++) blocks[i] = buddy_malloc(96);
  for (int i = 0; i < N; i += 2) buddy_free(blocks[i]);
  freed_blocks_to_their_slabs();
  for (int i = 0; i < N; i++) {
    region_t *r = pagemap_region_of(blocks[i]);
    page_desc_t *head = slab_head_of(r, page_desc_of(r, blocks[i]));
    cr_assert_eq(slab_holds_free(head, blocks[i]), i % 2 == 0, "block %d", i);
  }
  for (int i = 1; i < N; i += 2) buddy_free(blocks[i]);
  freed_blocks_to_their_slabs();
  /* Handed out again: the new blocks' bits are clear, and each old block
   * that none of them is still has its bit (its slab kept in reserve). */
  char *again[N];
  for (int i = 0; i < N; i++) cr_assert_not_null(again[i] = buddy_malloc(96));
  for (int i = 0; i < N; i++) {
    region_t *r = pagemap_region_of(again[i]);
    cr_assert(!slab_holds_free(slab_head_of(r, page_desc_of(r, again[i])), again[i]), "new block %d", i);
  }
  for (int i = 0; i < N; i++) {
    bool reused = false;
    for (int j = 0; j < N && !reused; j++) reused = again[j] == blocks[i];
    region_t *r = pagemap_region_of(blocks[i]);
    page_desc_t *d = page_desc_of(r, blocks[i]);
    if (!reused && d->kind == PAGE_SLAB)
      cr_assert(slab_holds_free(slab_head_of(r, d), blocks[i]), "old block %d, not handed out, is free", i);
  }
}

Test(review, free_in_a_slab_tail_aborts, .signal = SIGABRT) {
  char *p = buddy_malloc(48); /* class 48: 85 objects, 16 bytes of tail */
  char *slab = (char *)((uintptr_t)p & ~(uintptr_t)(PAGE_SIZE - 1));
  buddy_free(slab + 85 * 48);
}

Test(review, calloc_is_zero_when_a_purge_cannot_zero_locked_pages) {
  skip_under_asan();
  options.purge_delay_ms = 0;
  cr_assert_eq(mlockall(MCL_CURRENT | MCL_FUTURE), 0, "mlockall (the test runs as root in CI)");
  unsigned char *a = buddy_malloc(MEDIUM_BLOCK);
  memset(a, 0xab, MEDIUM_BLOCK);
  buddy_free(a); /* purged at once: madvise fails on locked pages */
  unsigned char *b = buddy_calloc(1, MEDIUM_BLOCK);
  for (size_t i = 0; i < MEDIUM_BLOCK; i++) cr_assert_eq(b[i], 0, "byte %zu", i);
  buddy_free(b);
  munlockall();
}

Test(review, shrinking_in_place_gives_the_pages_back) {
  skip_under_asan();
  options.purge_delay_ms = 0;
  size_t start = test_rss_bytes();
  char *p = buddy_malloc(4 * MIB);
  memset(p, 1, 4 * MIB);
  cr_assert_geq(test_rss_bytes() - start, 4 * MIB - 64 * 1024);
  p = buddy_realloc(p, 40000);
  cr_assert_leq(test_rss_bytes() - start, MIB, "the shrunk-away pages were purged");
  buddy_free(p);
}

static void child_allocates(void) {
  buddy_free(buddy_malloc(32));
}

Test(review, fork_handler_registered_before_any_malloc_may_allocate, .timeout = 20) {
  pthread_atfork(NULL, NULL, child_allocates);
  buddy_free(buddy_malloc(16));
  pid_t pid = fork();
  if (pid == 0) _exit(0); /* reached only if the child handler did not hang */
  int status = 0;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* ---- background_purge=1: an idle program still gives memory back ----------- */

Test(purge, background_thread_purges_an_idle_program) {
  skip_under_asan();
  options.purge_delay_ms = 50;
  options.background_purge = 1;
  enum { BLOCKS = 512 };
  static void *blocks[BLOCKS];
  size_t start = test_rss_bytes();
  for (int i = 0; i < BLOCKS; i++) memset(blocks[i] = buddy_malloc(MEDIUM_BLOCK), 1, MEDIUM_BLOCK);
  size_t peak = test_rss_bytes() - start;
  cr_assert_geq(peak, BLOCKS * MEDIUM_BLOCK * 9 / 10);
  for (int i = 0; i < BLOCKS; i++) buddy_free(blocks[i]);
  /* No allocator call from here on: only the background thread can purge. */
  test_sleep_ms(400);
  size_t left = test_rss_bytes() - start;
  cr_assert_leq(left, peak / 10, "idle: %zu KiB of %zu KiB still resident", left >> 10, peak >> 10);
}

/* Which thread ran the program's handler (0: none yet). */
static volatile sig_atomic_t usr1_taken_by;

static void record_taker(int sig) {
  (void)sig;
  usr1_taken_by = (sig_atomic_t)os_thread_id();
}

/* A signal sent to the process goes to a thread that does not block it. The
 * program blocks SIGUSR1 in its only thread: the allocator's background
 * thread must not take it (it blocks every signal), so it stays pending
 * until the program unblocks it, and then runs on the program's thread. */
Test(purge, background_thread_never_takes_the_programs_signals, .timeout = 20) {
  options.purge_delay_ms = 50;
  options.background_purge = 1;
  buddy_free(buddy_malloc(MEDIUM_BLOCK)); /* the purge thread starts */
  cr_assert(__atomic_load_n(&maintain_thread_running, __ATOMIC_ACQUIRE), "the background thread runs");
  test_sleep_ms(60); /* and has been through a round */
  struct sigaction sa = {.sa_handler = record_taker};
  sigemptyset(&sa.sa_mask);
  cr_assert_eq(sigaction(SIGUSR1, &sa, NULL), 0);
  sigset_t usr1, before;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  cr_assert_eq(pthread_sigmask(SIG_BLOCK, &usr1, &before), 0);
  cr_assert_eq(kill(getpid(), SIGUSR1), 0);
  test_sleep_ms(200); /* a thread that takes it runs the handler by now */
  cr_assert_eq(usr1_taken_by, 0, "thread %d, not the program's, took the program's signal", (int)usr1_taken_by);
  cr_assert_eq(pthread_sigmask(SIG_SETMASK, &before, NULL), 0); /* delivered here, now */
  cr_assert_eq(usr1_taken_by, os_thread_id());
}

/* Returns 0 when memory freed in this process is purged while it idles. */
static int idle_purge_works(void) {
  enum { BLOCKS = 256 };
  static void *blocks[BLOCKS];
  size_t start = test_rss_bytes();
  for (int i = 0; i < BLOCKS; i++) memset(blocks[i] = buddy_malloc(MEDIUM_BLOCK), 1, MEDIUM_BLOCK);
  size_t peak = test_rss_bytes() - start;
  for (int i = 0; i < BLOCKS; i++) buddy_free(blocks[i]);
  test_sleep_ms(400);
  return test_rss_bytes() - start <= peak / 10 ? 0 : 1;
}

Test(purge, background_thread_works_again_in_a_forked_child, .timeout = 20) {
  skip_under_asan();
  options.purge_delay_ms = 50;
  options.background_purge = 1;
  buddy_free(buddy_malloc(MEDIUM_BLOCK)); /* the parent's purge thread starts */
  pid_t pid = fork();
  if (pid == 0) _exit(idle_purge_works()); /* the child has no such thread until it allocates */
  int status = 0;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child's idle memory was not purged");
}

/* The address space in use now, in bytes (/proc/self/statm's first field). */
static size_t address_space_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  cr_assert_not_null(f);
  unsigned long pages = 0;
  cr_assert_eq(fscanf(f, "%lu", &pages), 1);
  fclose(f);
  return pages * (size_t)sysconf(_SC_PAGESIZE);
}

/* With no address space left for a thread's stack, the background thread
 * cannot start: the allocator goes on without it, tries once per period
 * (not on every slow path: each try maps and unmaps a stack), and starts it
 * once it can. */
Test(purge, a_background_thread_that_cannot_start_is_tried_once_a_period, .timeout = 20) {
  skip_under_asan();
  options.purge_delay_ms = 50;            /* a period: 100 ms (MAINTAIN_PERIOD_MIN_MS) */
  buddy_free(buddy_malloc(MEDIUM_BLOCK)); /* start-up, a region: within the limit below */
  maintain_tick();                        /* starts the clock: the first period ends 100 ms from here */
  struct rlimit before;
  cr_assert_eq(getrlimit(RLIMIT_AS, &before), 0);
  struct rlimit tight = {address_space_bytes() + 2 * MIB, before.rlim_max};
  cr_assert_eq(setrlimit(RLIMIT_AS, &tight), 0);
  options.background_purge = 1;
  for (int i = 0; i < 100; i++) { /* each medium allocation enters the runtime */
    void *p = buddy_malloc(MEDIUM_BLOCK);
    cr_assert_not_null(p);
    buddy_free(p);
  }
  cr_assert_eq(__atomic_load_n(&maintain_thread_failures, __ATOMIC_RELAXED), 1, "one try in the period");
  cr_assert_eq(setrlimit(RLIMIT_AS, &before), 0);
  test_sleep_ms(150);
  maintain_tick(); /* the next period: a slow path may try again */
  buddy_free(buddy_malloc(MEDIUM_BLOCK));
  cr_assert_eq(__atomic_load_n(&maintain_thread_failures, __ATOMIC_RELAXED), 1);
  cr_assert(__atomic_load_n(&maintain_thread_running, __ATOMIC_ACQUIRE), "the background thread runs");
  cr_assert_eq(idle_purge_works(), 0, "and purges");
}

/* Start-up reads no clock (a short process never maps libc's clock_gettime
 * for it: #20): the first tick starts the clock, and the periodic work is
 * due one period (100 ms) after it, not at once. */
Test(purge, the_maintenance_clock_starts_at_the_first_tick, .timeout = 20) {
  buddy_free(buddy_malloc(MEDIUM_BLOCK)); /* start-up */
  cr_assert_eq(__atomic_load_n(&maintain_next_ns, __ATOMIC_RELAXED), MAINTAIN_CLOCK_UNSTARTED,
               "start-up started the clock");
  uint64_t before = os_now_ns();
  maintain_tick();
  uint64_t due = __atomic_load_n(&maintain_next_ns, __ATOMIC_RELAXED), after = os_now_ns();
  cr_assert(due >= before + 100 * 1000000ull && due <= after + 100 * 1000000ull,
            "the first period is due 100 ms after the first tick");
  maintain_tick();
  /* (Unless this thread was held off the CPU for a whole period: then the
   * clock, read after the tick, is past `due`.) */
  if (os_now_ns() < due)
    cr_assert_eq(__atomic_load_n(&maintain_next_ns, __ATOMIC_RELAXED), due, "not due yet: nothing changes");
  test_sleep_ms(110);
  maintain_tick();
  cr_assert_gt(__atomic_load_n(&maintain_next_ns, __ATOMIC_RELAXED), due, "due: the next period is set");
}

/* Frees a written 32 MiB block into the huge cache (purge delay 50 ms) and
 * returns the RSS from before it was allocated. */
static size_t cache_a_huge_block(void) {
  skip_under_asan();
  options.purge_delay_ms = 50;
  size_t start = test_rss_bytes();
  char *huge = buddy_malloc(32 * MIB);
  memset(huge, 1, 32 * MIB);
  buddy_free(huge); /* waits in the huge cache */
  cr_assert_geq(test_rss_bytes() - start, 30 * MIB, "still resident while cached");
  return start;
}

Test(purge, background_thread_unmaps_cached_huge_blocks) {
  options.background_purge = 1;
  size_t start = cache_a_huge_block();
  test_sleep_ms(400);
  cr_assert_leq(test_rss_bytes() - start, 2 * MIB, "an idle program's cached huge block is unmapped");
}

Test(purge, cached_huge_blocks_expire_while_the_program_allocates_small_blocks) {
  options.tcache_max = 16;             /* a few hundred blocks take slow paths: refills and flushes */
  size_t start = cache_a_huge_block(); /* no huge call from here on */
  /* Small blocks only, with slow paths (refills, flushes) among them. */
  for (int round = 0; round < 100 && test_rss_bytes() - start > 2 * MIB; round++) {
    enum { BLOCKS = 400 };
    void *blocks[BLOCKS];
    for (int i = 0; i < BLOCKS; i++) blocks[i] = buddy_malloc(SMALL_BLOCK);
    for (int i = 0; i < BLOCKS; i++) buddy_free(blocks[i]);
    test_sleep_ms(10);
  }
  cr_assert_leq(test_rss_bytes() - start, 2 * MIB, "the cached huge block is unmapped within a few periods");
}
