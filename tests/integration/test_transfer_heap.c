/* test_transfer_heap.c: the zones' transfer stacks (transfer.c, zone.c)
 * fed by the thread caches' remote batches. A consumer thread
 * frees the main thread's blocks; what its bins do not adopt waits in the
 * main thread's zone: checked on the way in, found by the double-free check
 * while there, bounded, taken first by the main thread's refills, and given
 * back to the slabs when unused for a sweep period or on a trim. Linked to
 * the static library with internal.h; each test runs in a process of its
 * own, and zones=4 (the default) puts the consumer in another zone. The
 * stacks driven by the zone layer alone have tests/unit/test_transfer.c.
 * A full bin's flush waits there too, checked the same way (the last
 * tests). */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buddymalloc.h"
#include "core_util.h"

#define CLASS_256 12 /* 256-byte objects */
#define BLOCKS 1000  /* of 256 bytes: more than a stack holds */

typedef struct consumer {
  void **blocks;
  size_t count;
  unsigned zone_index; /* the consumer's home zone */
} consumer_t;

/* The calling thread's home zone (its first allocation makes its cache). */
static unsigned home_zone_index(void) {
  void *own = buddy_malloc(16);
  unsigned index = region_of_address(own)->zone_index;
  buddy_free(own);
  return index;
}

/* Frees the blocks in order (remote frees: each full batch for the main
 * thread's zone goes to its bins or the zone), then exits, which sends its
 * bins and partial batches to the slabs. */
static void *consumer_main(void *arg) {
  consumer_t *c = arg;
  c->zone_index = home_zone_index();
  for (size_t i = 0; i < c->count; i++) buddy_free(c->blocks[i]);
  return NULL;
}

/* Has a new thread free blocks[0..count); checks it is at home in another
 * zone than `home`. */
static void consume(void **blocks, size_t count, const zone_t *home) {
  consumer_t c = {.blocks = blocks, .count = count};
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, consumer_main, &c), 0);
  cr_assert_eq(pthread_join(t, NULL), 0);
  cr_assert_neq(c.zone_index, (unsigned)(home - zones), "the consumer is at home in another zone");
}

static zone_t *zone_of(const void *p) {
  return region_of_address(p)->zone;
}

static size_t transfer_bytes_now(void) {
  buddy_stats_t s;
  stats_collect(&s);
  return s.bytes_in_transfer;
}

static bool in_stack(const zone_t *z, unsigned cls, const void *p) {
  return pointers_hold(z->transfer[cls], z->transfer_count[cls], p);
}

/* Bins of at most TRANSFER_TEST_BIN_MAX objects, so that a refill (half a
 * bin) takes part of a stack, not all of it. */
#define TRANSFER_TEST_BIN_MAX 128

/* Every test starts here: bins as above, and quiet sweeps. A sweep (which
 * expires unused stacks) runs once at the first slow path that looks, then
 * once per period: run it now, with a period far longer than a test, so
 * that only the test's own calls expire stacks. */
/* A block freed twice was reported, and waits in its zone's stack once (not
 * free in its slab as well): the heap is consistent. */
static void assert_reported_and_stacked_once(const zone_t *home, const void *twice) {
  const char *text = redirected_stderr();
  cr_assert_not_null(strstr(text, "double free of a small block"), "got:\n%s", text);
  unsigned copies = 0;
  for (unsigned i = 0; i < home->transfer_count[CLASS_256]; i++) copies += home->transfer[CLASS_256][i] == twice;
  cr_assert_eq(copies, 1, "in the stack once");
  cr_assert(!free_in_slab(twice), "not free in its slab as well");
  zone_verify_all();
}

/* No periodic work (a transfer stack's expiry, a sweep) during the test: a
 * first tick only starts the clock, with a first period due
 * MAINTAIN_PERIOD_MIN_MS later whatever the purge delay, so the next one
 * is set here a purge delay away. */
static void quiet_sweeps(void) {
  options.tcache_max = TRANSFER_TEST_BIN_MAX;
  options.purge_delay_ms = 1000000;
  maintain_tick();
  __atomic_store_n(&maintain_next_ns, os_now_ns() + (uint64_t)options.purge_delay_ms * 1000000u, __ATOMIC_RELAXED);
}

/* BLOCKS of 256 bytes, each written, freed by a consumer; returns their zone.
 * The main thread's cache is flushed after, so its next malloc of 256 bytes
 * refills. */
static zone_t *allocate_and_consume(void **blocks) {
  quiet_sweeps();
  for (int i = 0; i < BLOCKS; i++) {
    blocks[i] = buddy_malloc(256);
    cr_assert_not_null(blocks[i]);
    memset(blocks[i], 0x3c, 256);
  }
  zone_t *home = zone_of(blocks[0]);
  consume(blocks, BLOCKS, home);
  tcache_flush_current();
  return home;
}

Test(transfer, a_consumers_overflow_waits_in_the_home_zone_and_goes_to_its_refills) {
  void *blocks[BLOCKS];
  zone_t *home = allocate_and_consume(blocks);
  unsigned count = home->transfer_count[CLASS_256];
  cr_assert_eq(count, ZONE_TRANSFER_MAX, "a full stack: %u objects", count);
  cr_assert_eq(transfer_bytes_now(), (size_t)count * 256);
  zone_verify_all();
  for (unsigned i = 0; i < count; i++) {
    bool freed = false;
    for (int b = 0; b < BLOCKS && !freed; b++) freed = home->transfer[CLASS_256][i] == blocks[b];
    cr_assert(freed, "object %u of the stack is one the consumer freed", i);
    cr_assert(!free_in_slab(home->transfer[CLASS_256][i]), "object %u is not free in its slab as well", i);
  }
  /* The main thread's refills take them, from the top, before any slab. */
  void *before[ZONE_TRANSFER_MAX];
  memcpy(before, home->transfer[CLASS_256], count * sizeof(void *));
  enum { TAKEN = 16 };
  void *got[TAKEN];
  for (int i = 0; i < TAKEN; i++) got[i] = buddy_malloc(256);
  unsigned left = home->transfer_count[CLASS_256];
  cr_assert_leq(left, count - TAKEN);
  cr_assert_eq(memcmp(home->transfer[CLASS_256], before, left * sizeof(void *)), 0, "the bottom is untouched");
  for (int i = 0; i < TAKEN; i++) {
    bool from_top = false;
    for (unsigned k = left; k < count && !from_top; k++) from_top = got[i] == before[k];
    cr_assert(from_top, "malloc %d came from the top of the stack", i);
  }
  for (int i = 0; i < TAKEN; i++) buddy_free(got[i]);
  zone_verify_all();
}

/* A write after free to a block waiting in a stack is reported when the
 * block leaves it, and the block is not handed out. */
Test(transfer, a_write_to_a_waiting_block_is_reported_when_it_leaves, .init = cr_redirect_stderr) {
  options.abort_on_error = 0;
  void *blocks[BLOCKS];
  zone_t *home = allocate_and_consume(blocks);
  unsigned count = home->transfer_count[CLASS_256];
  void **written = home->transfer[CLASS_256][count - 1]; /* the next out */
  written[1] = NULL;                                     /* a write after free */
  for (unsigned i = 0; i < count; i++) cr_assert_neq(buddy_malloc(256), (void *)written, "malloc %u", i);
  cr_assert(!in_stack(home, CLASS_256, written));
  const char *text = redirected_stderr();
  cr_assert_not_null(strstr(text, "written after its free"), "got:\n%s", text);
  zone_verify_all();
}

/* ---- Two consumers free one block (a double free neither can see) -------- */

typedef struct two_consumers {
  void **first_blocks, **second_blocks; /* TCACHE_REMOTE_MAX - 1 and TCACHE_REMOTE_MAX */
  void *last;                           /* the first consumer's last free, or NULL: it exits */
  int ready[2], go[2];                  /* first consumer to main, main to first consumer */
} two_consumers_t;

static void *first_consumer(void *arg) {
  two_consumers_t *t = arg;
  for (int i = 0; i < TCACHE_REMOTE_MAX - 1; i++) buddy_free(t->first_blocks[i]); /* its batch: one short */
  char c = 1;
  cr_assert_eq(write(t->ready[1], &c, 1), 1);
  cr_assert_eq(read(t->go[0], &c, 1), 1);   /* until the second consumer is done */
  if (t->last != NULL) buddy_free(t->last); /* the batch fills and goes home */
  return NULL;                              /* else its batch goes home at exit */
}

static void *second_consumer(void *arg) {
  two_consumers_t *t = arg;
  for (int i = 0; i < TCACHE_REMOTE_MAX; i++) buddy_free(t->second_blocks[i]);
  return NULL;
}

/* The first consumer frees `twice` into its batch; the second frees it too,
 * in a batch that fills and is stacked; then the first one's batch goes home
 * (full: to the stack, or at exit: to the slab). Either way the zone sees
 * `twice` is already in its stack. */
static void two_consumers_free_one_block(bool first_fills) {
  options.abort_on_error = 0;
  quiet_sweeps();
  enum { N = 2 * TCACHE_REMOTE_MAX };
  void *blocks[N];
  for (int i = 0; i < N; i++) blocks[i] = buddy_malloc(256);
  void *twice = blocks[0];
  zone_t *home = zone_of(twice);
  void *second[TCACHE_REMOTE_MAX];
  for (int i = 0; i < TCACHE_REMOTE_MAX - 1; i++) second[i] = blocks[TCACHE_REMOTE_MAX + i];
  second[TCACHE_REMOTE_MAX - 1] = twice;
  two_consumers_t t = {.first_blocks = blocks, .second_blocks = second, .last = first_fills ? blocks[N - 1] : NULL};
  cr_assert_eq(pipe(t.ready), 0);
  cr_assert_eq(pipe(t.go), 0);
  pthread_t a, b;
  cr_assert_eq(pthread_create(&a, NULL, first_consumer, &t), 0);
  char c;
  cr_assert_eq(read(t.ready[0], &c, 1), 1);
  cr_assert_eq(pthread_create(&b, NULL, second_consumer, &t), 0);
  cr_assert_eq(pthread_join(b, NULL), 0);
  cr_assert(in_stack(home, CLASS_256, twice), "the second consumer's copy is stacked");
  cr_assert_eq(write(t.go[1], &c, 1), 1);
  cr_assert_eq(pthread_join(a, NULL), 0);
  assert_reported_and_stacked_once(home, twice);
  int seen = 0;
  for (int i = 0; i < 4 * N; i++) seen += buddy_malloc(256) == twice;
  cr_assert_eq(seen, 1, "handed out once");
}

Test(transfer, a_block_stacked_twice_is_refused, .init = cr_redirect_stderr) {
  two_consumers_free_one_block(true);
}

Test(transfer, a_stacked_block_given_to_its_slab_is_refused, .init = cr_redirect_stderr) {
  two_consumers_free_one_block(false);
}

/* A consumer whose bin of the class has room adopts what fits; the rest of
 * the batch is stacked, each block in one place. */
static void *consume_with_room(void *arg) {
  void **blocks = arg;
  void *own[8];
  for (int i = 0; i < 8; i++) own[i] = buddy_malloc(256); /* its bin of 256 B starts */
  for (int i = 0; i < 8; i++) buddy_free(own[i]);
  for (int i = 0; i < TCACHE_REMOTE_MAX; i++) buddy_free(blocks[i]);
  return NULL; /* at exit its bin goes to the slabs */
}

Test(transfer, a_batch_is_split_between_the_consumers_bin_and_the_stack) {
  quiet_sweeps();
  void *blocks[TCACHE_REMOTE_MAX];
  for (int i = 0; i < TCACHE_REMOTE_MAX; i++) blocks[i] = buddy_malloc(256);
  zone_t *home = zone_of(blocks[0]);
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, consume_with_room, blocks), 0);
  cr_assert_eq(pthread_join(t, NULL), 0);
  unsigned stacked = 0, in_slab = 0;
  for (int i = 0; i < TCACHE_REMOTE_MAX; i++) {
    bool s = in_stack(home, CLASS_256, blocks[i]), f = free_in_slab(blocks[i]);
    cr_assert(s != f, "block %d: in the stack %d, free in its slab %d", i, s, f);
    stacked += s;
    in_slab += f;
  }
  cr_assert(stacked > 0 && in_slab > 0, "%u stacked, %u adopted (then back to their slabs)", stacked, in_slab);
  zone_verify_all();
}

Test(transfer, a_double_free_of_a_block_waiting_there_aborts, .signal = SIGABRT) {
  void *blocks[BLOCKS];
  zone_t *home = allocate_and_consume(blocks);
  void *waiting = home->transfer[CLASS_256][0];
  cr_assert_eq(((void **)waiting)[1], (void *)FREE_KEY);
  buddy_free(waiting); /* suspected by its key, found in the stack */
}

/* A write after free wipes the key of a block free in its slab, and a
 * consumer frees it again in a full batch: the stack checks it as its slab
 * would, and refuses it. */
Test(transfer, a_block_free_in_its_slab_is_refused_there, .init = cr_redirect_stderr) {
  options.abort_on_error = 0;
  quiet_sweeps();
  enum { BATCH = TCACHE_REMOTE_MAX };
  void *blocks[BATCH];
  for (int i = 0; i < BATCH; i++) blocks[i] = buddy_malloc(256);
  void **again = blocks[0];
  zone_t *home = zone_of(again);
  buddy_free(again);
  tcache_flush_current(); /* free in its slab */
  cr_assert(free_in_slab(again));
  again[1] = NULL;              /* the program writes to it, */
  consume(blocks, BATCH, home); /* and frees it again, in a batch that fills */
  cr_assert(!in_stack(home, CLASS_256, again), "refused, not stacked");
  for (int i = 1; i < BATCH; i++) cr_assert(in_stack(home, CLASS_256, blocks[i]), "block %d stacked", i);
  cr_assert(free_in_slab(again), "still free in its slab");
  const char *text = redirected_stderr();
  cr_assert_not_null(strstr(text, "double free of a small block"), "got:\n%s", text);
  zone_verify_all();
  /* It comes out once: from its slab, after the stack ran dry. */
  int seen = 0;
  for (int i = 0; i < 4 * BATCH; i++) seen += buddy_malloc(256) == (void *)again;
  cr_assert_eq(seen, 1);
  zone_verify_all();
}

/* An object start of a slab that never handed it out (past its carved
 * objects), freed in a consumer's full batch: refused, never handed out. */
Test(transfer, a_block_never_handed_out_is_refused_there, .init = cr_redirect_stderr) {
  options.abort_on_error = 0;
  quiet_sweeps();
  options.tcache_max = 16; /* refills of 8 blocks: the 63 below carve 64 of the slab's 85 */
  enum { BATCH = TCACHE_REMOTE_MAX };
  void *blocks[BATCH];
  for (int i = 0; i < BATCH - 1; i++) blocks[i] = buddy_malloc(48);
  char *slab = (char *)((uintptr_t)blocks[0] & ~(uintptr_t)(PAGE_SIZE - 1));
  void *never = slab + 84 * 48; /* class 48: the last of a slab's 85 objects */
  region_t *r = pagemap_region_of(never);
  cr_assert_leq(slab_head_of(r, page_desc_of(r, never))->slab_carved, 84, "the slab has not carved it yet");
  blocks[BATCH - 1] = never;
  zone_t *home = zone_of(never);
  consume(blocks, BATCH, home);
  unsigned cls = size_class_of(48);
  cr_assert(!in_stack(home, cls, never), "refused, not stacked");
  cr_assert_eq(home->transfer_count[cls], BATCH - 1, "the others stacked");
  const char *text = redirected_stderr();
  cr_assert_not_null(strstr(text, "free of a small block that was never allocated"), "got:\n%s", text);
  zone_verify_all();
}

/* Five classes of 2 to 4 KiB, each past its own bound: every stack stays
 * within its bound, and together within the zone's. */
Test(transfer, stacks_stay_within_their_bounds) {
  static const size_t sizes[] = {2048, 2560, 3072, 3584, 4096};
  enum { CLASSES = sizeof sizes / sizeof sizes[0], PER_CLASS = 80, N = CLASSES * PER_CLASS };
  static void *blocks[N];
  quiet_sweeps();
  for (int i = 0; i < N; i++) blocks[i] = buddy_malloc(sizes[i % CLASSES]);
  zone_t *home = zone_of(blocks[0]);
  consume(blocks, N, home);
  size_t bytes = 0;
  for (int k = 0; k < CLASSES; k++) {
    unsigned cls = size_class_of(sizes[k]);
    cr_assert_leq(home->transfer_count[cls] * sizes[k], ZONE_TRANSFER_CLASS_BYTES, "class of %zu", sizes[k]);
    bytes += home->transfer_count[cls] * sizes[k];
  }
  cr_assert_eq(bytes, home->transfer_bytes);
  cr_assert_leq(bytes, ZONE_TRANSFER_BYTES);
  cr_assert_gt(bytes, ZONE_TRANSFER_BYTES - 4096, "the zone's bound is what stopped them: %zu", bytes);
  cr_assert_eq(transfer_bytes_now(), bytes);
  zone_verify_all();
}

Test(transfer, unused_stacks_go_back_to_their_slabs) {
  void *blocks[BLOCKS];
  zone_t *home = allocate_and_consume(blocks);
  unsigned full = home->transfer_count[CLASS_256];
  buddy_free(buddy_malloc(256)); /* a refill takes from the stack */
  unsigned count = home->transfer_count[CLASS_256];
  cr_assert(count > 0 && count < full);
  zone_transfer_expire(); /* taken from since the last: kept */
  cr_assert_eq(home->transfer_count[CLASS_256], count);
  buddy_stats_t before, after;
  stats_collect(&before);
  zone_transfer_expire(); /* not taken from since: back to the slabs */
  cr_assert_eq(home->transfer_count[CLASS_256], 0);
  stats_collect(&after);
  cr_assert_eq(after.bytes_in_transfer, 0);
  cr_assert_eq(after.class_live[CLASS_256], before.class_live[CLASS_256] - count, "all %u back in their slabs", count);
  zone_verify_all();
}

Test(transfer, a_trim_empties_the_stacks) {
  void *blocks[BLOCKS];
  zone_t *home = allocate_and_consume(blocks);
  cr_assert_gt(home->transfer_count[CLASS_256], 0);
  buddy_trim(0);
  cr_assert_eq(transfer_bytes_now(), 0);
  buddy_stats_t s;
  stats_collect(&s);
  cr_assert_eq(s.class_live[CLASS_256], 0, "every block back in its slab: %zu live", s.class_live[CLASS_256]);
  zone_verify_all();
}

/* debug=1 caches nothing: a consumer's frees go straight to the slabs. */
Test(transfer, nothing_waits_there_with_debug) {
  options.debug = 1;
  void *blocks[BLOCKS];
  zone_t *home = allocate_and_consume(blocks);
  cr_assert_eq(home->transfer_count[CLASS_256], 0);
  buddy_stats_t s;
  stats_collect(&s);
  cr_assert_eq(s.bytes_in_transfer, 0);
  cr_assert_eq(s.class_live[CLASS_256], 0, "every block back in its slab: %zu live", s.class_live[CLASS_256]);
}

/* The heap walker checks the stacks: an object in one twice aborts. */
Test(transfer, the_heap_walker_finds_an_object_stacked_twice, .signal = SIGABRT) {
  void *blocks[BLOCKS];
  zone_t *home = allocate_and_consume(blocks);
  buddy_trim(0); /* room in the stack again */
  blocks[0] = buddy_malloc(256);
  ((void **)blocks[0])[0] = (void *)zone_transfer_mark(); /* as if stacked: only the repeat is wrong */
  ((void **)blocks[0])[1] = (void *)FREE_KEY;
  home->transfer[CLASS_256][0] = home->transfer[CLASS_256][1] = blocks[0];
  home->transfer_count[CLASS_256] = 2;
  home->transfer_bytes = 2 * 256;
  zone_verify_all();
}

/* Expiry is per class: a stack no refill took from goes back to its slabs
 * even while refills keep taking from another class's stack. */
static void *consume_two_classes(void *arg) {
  void **blocks = arg;
  for (int i = 0; i < 2 * BLOCKS; i++) buddy_free(blocks[i]);
  return NULL;
}

Test(transfer, each_class_expires_on_its_own) {
  quiet_sweeps();
  static void *blocks[2 * BLOCKS];
  for (int i = 0; i < 2 * BLOCKS; i++) blocks[i] = buddy_malloc(i % 2 ? 256 : 64);
  zone_t *home = zone_of(blocks[0]);
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, consume_two_classes, blocks), 0);
  cr_assert_eq(pthread_join(t, NULL), 0);
  unsigned class_64 = size_class_of(64);
  cr_assert_gt(home->transfer_count[class_64], 0);
  cr_assert_gt(home->transfer_count[CLASS_256], 0);
  tcache_flush_current();
  for (int round = 0; round < 2; round++) {
    buddy_free(buddy_malloc(256)); /* a refill takes from the 256-byte stack */
    tcache_flush_current();
    zone_transfer_expire();
  }
  cr_assert_eq(home->transfer_count[class_64], 0, "the unused class went back to its slabs");
  cr_assert_gt(home->transfer_count[CLASS_256], 0, "the class in use kept its stack");
  zone_verify_all();
}

/* ---- A copy handed out while the other waits in a batch ------------------ */

static void *waiting_block;
static int waiter_ready[2], waiter_go[2];
static unsigned waiter_zone, filler_zone; /* the consumers' home zones */

/* Frees the block and TCACHE_REMOTE_MAX - 2 others (its batch: one short of
 * full), then waits, then exits: the batch goes home at exit. */
static void *waiting_consumer(void *arg) {
  void **others = arg;
  waiter_zone = home_zone_index();
  buddy_free(waiting_block);
  for (int i = 0; i < TCACHE_REMOTE_MAX - 2; i++) buddy_free(others[i]);
  char c = 1;
  cr_assert_eq(write(waiter_ready[1], &c, 1), 1);
  cr_assert_eq(read(waiter_go[0], &c, 1), 1);
  return NULL;
}

static void *filling_consumer(void *arg) {
  void **blocks = arg; /* the waiting block first: a batch that fills */
  filler_zone = home_zone_index();
  for (int i = 0; i < TCACHE_REMOTE_MAX; i++) buddy_free(blocks[i]);
  return NULL;
}

/* Two threads free one block; one copy is stacked and handed out to the
 * main thread, then the other copy comes home: its key is gone (malloc
 * wrote there), so the zone reports it and leaves it alone. */
Test(transfer, a_copy_coming_home_after_the_other_was_handed_out_is_refused, .init = cr_redirect_stderr) {
  options.abort_on_error = 0;
  quiet_sweeps();
  enum { N = 2 * TCACHE_REMOTE_MAX };
  void *blocks[N];
  for (int i = 0; i < N; i++) blocks[i] = buddy_malloc(256);
  waiting_block = blocks[0];
  zone_t *home = zone_of(waiting_block);
  cr_assert_eq(pipe(waiter_ready), 0);
  cr_assert_eq(pipe(waiter_go), 0);
  pthread_t waiter, filler;
  cr_assert_eq(pthread_create(&waiter, NULL, waiting_consumer, &blocks[TCACHE_REMOTE_MAX + 1]), 0);
  char c;
  cr_assert_eq(read(waiter_ready[0], &c, 1), 1);
  cr_assert_eq(pthread_create(&filler, NULL, filling_consumer, blocks), 0); /* its copy is stacked */
  cr_assert_eq(pthread_join(filler, NULL), 0);
  unsigned home_index = (unsigned)(home - zones);
  cr_assert(waiter_zone != home_index && filler_zone != home_index, "zones=4: both consumers are remote");
  cr_assert(in_stack(home, CLASS_256, waiting_block));
  tcache_flush_current();
  bool got = false;
  for (int i = 0; i < 2 * TCACHE_REMOTE_MAX && !got; i++) got = buddy_malloc(256) == waiting_block;
  cr_assert(got, "the stacked copy was handed out");
  cr_assert_eq(write(waiter_go[1], &c, 1), 1);
  cr_assert_eq(pthread_join(waiter, NULL), 0); /* the other copy comes home */
  const char *text = redirected_stderr();
  cr_assert_not_null(strstr(text, "double free of a small block (or a write"), "got:\n%s", text);
  cr_assert(!free_in_slab(waiting_block), "not free in its slab while handed out");
  cr_assert(!in_stack(home, CLASS_256, waiting_block));
  zone_verify_all();
}

/* ---- A full bin's flush (the thread's own zone) -------------------------- */

/* Bins of 8 blocks: each free into a full bin flushes its 2 oldest. */
#define HOME_TEST_BIN_MAX 8

/* N blocks of 256 bytes, the thread's bin emptied into the slabs after, so
 * that the frees that follow fill it from the bottom. */
static zone_t *allocate_with_small_bins(void **blocks, int n) {
  quiet_sweeps();
  options.tcache_max = HOME_TEST_BIN_MAX;
  for (int i = 0; i < n; i++) cr_assert_not_null(blocks[i] = buddy_malloc(256));
  tcache_flush_current();
  return zone_of(blocks[0]);
}

static bool among(void *const *blocks, int n, const void *p) {
  return pointers_hold(blocks, (size_t)n, p);
}

Test(transfer, a_full_bins_flush_waits_in_its_zones_stack_for_the_next_refill) {
  enum { N = 64 };
  void *blocks[N];
  zone_t *home = allocate_with_small_bins(blocks, N);
  cr_assert_eq(home->transfer_count[CLASS_256], 0);
  for (int i = 0; i < N; i++) buddy_free(blocks[i]);
  unsigned count = home->transfer_count[CLASS_256];
  uint32_t cached = tcache_bin_count(tcache_get(), CLASS_256);
  cr_assert_eq(count + cached, N, "%u stacked, %u in the bin", count, cached);
  for (unsigned i = 0; i < count; i++) {
    void *p = home->transfer[CLASS_256][i];
    cr_assert(among(blocks, N, p), "object %u of the stack is one the thread freed", i);
    cr_assert(!free_in_slab(p), "object %u is not free in its slab as well", i);
  }
  zone_verify_all();
  /* The next refill takes its objects from the top of the stack. */
  void *top[4];
  memcpy(top, &home->transfer[CLASS_256][count - 4], sizeof top);
  tcache_flush_current();
  void *p = buddy_malloc(256);
  cr_assert(among(top, 4, p), "the refill came from the top of the stack");
  cr_assert_eq(home->transfer_count[CLASS_256], count - HOME_TEST_BIN_MAX / 2);
  buddy_free(p);
  zone_verify_all();
}

/* A block freed, written to (its key wiped) and freed again sits twice in
 * the bin; a full bin's flush pushes the first copy, and the second is
 * refused: its mark sends it to a scan of the stack, which finds the first.
 * The block stays in the stack once and comes out once. */
Test(transfer, a_second_copy_in_a_full_bins_flush_is_refused, .init = cr_redirect_stderr) {
  options.abort_on_error = 0;
  enum { N = 16 };
  void *blocks[N];
  zone_t *home = allocate_with_small_bins(blocks, N);
  void **twice = blocks[0];
  buddy_free(twice);
  twice[1] = NULL;   /* the program writes to it, */
  buddy_free(twice); /* and frees it again: not suspected, into the bin */
  for (int i = 1; i < HOME_TEST_BIN_MAX; i++) buddy_free(blocks[i]); /* the bin is full */
  buddy_free(blocks[HOME_TEST_BIN_MAX]);                             /* its 2 oldest go home: both copies */
  assert_reported_and_stacked_once(home, twice);
  tcache_flush_current();
  int seen = 0;
  for (int i = 0; i < 4 * N; i++) seen += buddy_malloc(256) == (void *)twice;
  cr_assert_eq(seen, 1, "handed out once");
}

/* An object start of a slab that never handed it out, at the bottom of a
 * full bin: the flush does not stack it, reports it and leaves it alone. */
Test(transfer, a_block_never_handed_out_in_a_full_bins_flush_is_refused, .init = cr_redirect_stderr) {
  options.abort_on_error = 0;
  enum { N = HOME_TEST_BIN_MAX + 1 }; /* refills of 4 carve 12 of the slab's objects */
  void *blocks[N];
  zone_t *home = allocate_with_small_bins(blocks, N);
  char *slab = (char *)((uintptr_t)blocks[0] & ~(uintptr_t)(PAGE_SIZE - 1));
  void *never = slab + 15 * 256; /* class 256: the last of a slab's 16 objects */
  region_t *r = pagemap_region_of(never);
  cr_assert_leq(slab_head_of(r, page_desc_of(r, never))->slab_carved, 15, "the slab has not carved it yet");
  buddy_free(never);                                                 /* an object start: into the bin */
  for (int i = 0; i < HOME_TEST_BIN_MAX; i++) buddy_free(blocks[i]); /* the last one flushes `never` */
  cr_assert(!in_stack(home, CLASS_256, never), "refused, not stacked");
  cr_assert(!free_in_slab(never), "not free in its slab either");
  const char *text = redirected_stderr();
  cr_assert_not_null(strstr(text, "free of a small block that was never allocated"), "got:\n%s", text);
  zone_verify_all();
}
