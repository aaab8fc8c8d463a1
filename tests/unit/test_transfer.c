/* test_transfer.c: unit tests of the zones' transfer stacks (transfer.c, and
 * zone.c where the stacks meet the slabs), linked to the zone layer alone.
 * A thread cache's remote batch is played by zone_free_remote_objects, a
 * refill by zone_alloc_objects, a bin flush by zone_free_objects, the
 * runtime's period by zone_transfer_expire; the transfer_* functions are
 * also called directly, under the zone lock as zone.c calls them. What waits
 * in a stack is checked on the way in, found by the double-free checks while
 * there, bounded, taken first by refills, and given back to the slabs when
 * unused for a period or on a trim. The stacks fed by real consumer threads
 * through malloc and free are in tests/integration/test_transfer_heap.c.
 * Each test runs in a process of its own, on zones that start empty. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>

#include "zone.h"
#include "heap_util.h"

#define CLASS_256 SIZE_CLASS_FOR_256
#define BLOCKS 1000 /* of 256 bytes: more than a stack holds */

static void setup(void) {}

static void setup_warnings(void) {
  setup();
  heap_test_warn_on_misuse();
}

TestSuite(transfer, .init = setup);
TestSuite(transfer_misuse, .init = setup_warnings);
TestSuite(transfer_fatal, .init = setup);

static zone_t *const home = &zones[0];

static void objects_alloc(unsigned cls, void **out, unsigned n) {
  cr_assert_eq(zone_alloc_objects(home, cls, out, n), n, "%u objects of class %u", n, cls);
}

/* objs[0..n), all of class cls, come home as a batch of remote frees: as
 * they are, or with the key that each free into the batch wrote (tcache.c). */
static void remote_come_home(void **objs, unsigned cls, unsigned n) {
  static uint8_t classes[BLOCKS];
  cr_assert_leq(n, BLOCKS);
  memset(classes, (int)cls, n);
  zone_free_remote_objects(home, objs, classes, n);
}

static void remote_free(void **objs, unsigned cls, unsigned n) {
  for (unsigned i = 0; i < n; i++) ((void **)objs[i])[1] = (void *)FREE_KEY;
  remote_come_home(objs, cls, n);
}

static bool in_stack(unsigned cls, const void *p) {
  return pointers_hold(home->transfer[cls], home->transfer_count[cls], p);
}

static unsigned copies_in_stack(unsigned cls, const void *p) {
  unsigned n = 0;
  for (unsigned i = 0; i < home->transfer_count[cls]; i++) n += home->transfer[cls][i] == p;
  return n;
}

/* BLOCKS objects of 256 bytes, each written, then all freed remotely: the
 * first ZONE_TRANSFER_MAX wait in the stack, the rest go to their slabs. */
static void *blocks[BLOCKS];
static unsigned allocate_and_consume(void) {
  objects_alloc(CLASS_256, blocks, BLOCKS);
  for (int i = 0; i < BLOCKS; i++) memset(blocks[i], 0x3c, 256);
  remote_free(blocks, CLASS_256, BLOCKS);
  return home->transfer_count[CLASS_256];
}

/* ---- Into the stack, and out by refills ------------------------------------ */

Test(transfer, remote_frees_wait_in_the_stack_until_it_is_full) {
  unsigned count = allocate_and_consume();
  cr_assert_eq(count, ZONE_TRANSFER_MAX, "a full stack: %u objects", count);
  cr_assert_eq(home->transfer_bytes, (size_t)count * 256);
  for (unsigned i = 0; i < count; i++) {
    void **p = blocks[i];
    cr_assert_eq(home->transfer[CLASS_256][i], p, "object %u, in the order freed", i);
    cr_assert_eq((uintptr_t)p[0], zone_transfer_mark(), "object %u holds the mark", i);
    cr_assert_eq(p[1], (void *)FREE_KEY, "and the key");
    cr_assert(!free_in_slab(p), "object %u is not free in its slab as well", i);
  }
  for (unsigned i = count; i < BLOCKS; i++) cr_assert(free_in_slab(blocks[i]), "object %u went to its slab", i);
  zone_verify_all();
}

Test(transfer, refills_take_from_the_top_of_the_stack_first) {
  unsigned count = allocate_and_consume();
  void *before[ZONE_TRANSFER_MAX];
  memcpy(before, home->transfer[CLASS_256], count * sizeof(void *));
  cr_assert_eq(home->transfer_taken, 0);
  enum { TAKEN = 16 };
  void *got[ZONE_TRANSFER_MAX];
  objects_alloc(CLASS_256, got, TAKEN);
  unsigned left = home->transfer_count[CLASS_256];
  cr_assert_eq(left, count - TAKEN);
  cr_assert_eq(home->transfer_bytes, (size_t)left * 256);
  cr_assert_eq(memcmp(home->transfer[CLASS_256], before, left * sizeof(void *)), 0, "the bottom is untouched");
  for (int i = 0; i < TAKEN; i++) {
    cr_assert_eq(got[i], before[count - 1 - i], "object %d came from the top", i);
    cr_assert_null(((void **)got[i])[0], "its mark is cleared");
    cr_assert_eq(((void **)got[i])[1], (void *)FREE_KEY);
  }
  cr_assert_eq(home->transfer_taken, (uint64_t)1 << CLASS_256, "the class was taken from");
  /* More than the stack holds: all of it, then the slabs. */
  objects_alloc(CLASS_256, got, left);
  cr_assert_eq(home->transfer_count[CLASS_256], 0);
  cr_assert_eq(home->transfer_bytes, 0);
  void *more[2];
  objects_alloc(CLASS_256, more, 2);
  for (int i = 0; i < 2; i++) cr_assert_not(pointers_hold(got, left, more[i]), "from a slab, not the stack");
  zone_verify_all();
}

/* A refill of another class does not touch the stack. */
Test(transfer, a_stack_serves_its_own_class_only) {
  unsigned count = allocate_and_consume();
  void *other[8];
  objects_alloc(size_class_of(192), other, 8);
  cr_assert_eq(home->transfer_count[CLASS_256], count);
  cr_assert_eq(home->transfer_taken, 0);
  for (int i = 0; i < 8; i++) cr_assert_eq(page_class_at(region_of_address(other[i]), other[i]), size_class_of(192));
}

/* ---- Bounds ---------------------------------------------------------------- */

/* Five classes of 2 to 4 KiB, each past its own bound: every stack stays
 * within its bound, and together within the zone's. */
Test(transfer, stacks_stay_within_their_bounds) {
  static const size_t sizes[] = {2048, 2560, 3072, 3584, 4096};
  enum { CLASSES = sizeof sizes / sizeof sizes[0], PER_CLASS = 80 };
  static void *objs[CLASSES][PER_CLASS];
  for (int k = 0; k < CLASSES; k++) objects_alloc(size_class_of(sizes[k]), objs[k], PER_CLASS);
  for (int k = 0; k < CLASSES; k++) remote_free(objs[k], size_class_of(sizes[k]), PER_CLASS);
  size_t bytes = 0;
  for (int k = 0; k < CLASSES; k++) {
    unsigned cls = size_class_of(sizes[k]);
    cr_assert_leq(home->transfer_count[cls] * sizes[k], ZONE_TRANSFER_CLASS_BYTES, "class of %zu", sizes[k]);
    bytes += home->transfer_count[cls] * sizes[k];
    for (int i = 0; i < PER_CLASS; i++)
      cr_assert(in_stack(cls, objs[k][i]) != free_in_slab(objs[k][i]), "class of %zu, object %d: in one place",
                sizes[k], i);
  }
  cr_assert_eq(bytes, home->transfer_bytes);
  cr_assert_leq(bytes, ZONE_TRANSFER_BYTES);
  cr_assert_gt(bytes, ZONE_TRANSFER_BYTES - 4096, "the zone's bound is what stopped them: %zu", bytes);
  zone_verify_all();
}

/* The room test, on its own: the count bound for small classes, the class's
 * bytes for large ones. */
Test(transfer, the_room_test_follows_each_bound) {
  unsigned small = SIZE_CLASS_FOR_16, large = SIZE_CLASS_FOR_4096;
  enum { N = ZONE_TRANSFER_MAX + 1 };
  static void *objs[N];
  objects_alloc(small, objs, N);
  remote_free(objs, small, N);
  cr_assert_eq(home->transfer_count[small], ZONE_TRANSFER_MAX);
  objects_alloc(large, objs, N);
  remote_free(objs, large, N);
  cr_assert_eq(home->transfer_count[large], ZONE_TRANSFER_CLASS_BYTES / 4096);
  zone_lock(home);
  cr_assert_not(transfer_has_room_locked(home, small));
  cr_assert_not(transfer_has_room_locked(home, large));
  cr_assert(transfer_has_room_locked(home, SIZE_CLASS_FOR_64), "another class has room");
  zone_unlock(home);
}

/* ---- Back to the slabs -------------------------------------------------------- */

Test(transfer, unused_stacks_go_back_to_their_slabs) {
  unsigned full = allocate_and_consume();
  void *taken;
  objects_alloc(CLASS_256, &taken, 1); /* a refill takes from the stack */
  unsigned count = home->transfer_count[CLASS_256];
  cr_assert_eq(count, full - 1);
  void *waiting[ZONE_TRANSFER_MAX];
  memcpy(waiting, home->transfer[CLASS_256], count * sizeof(void *));
  zone_transfer_expire(); /* taken from since the last: kept */
  cr_assert_eq(home->transfer_count[CLASS_256], count);
  cr_assert_eq(home->transfer_taken, 0, "a new period starts");
  zone_transfer_expire(); /* not taken from since: back to the slabs */
  cr_assert_eq(home->transfer_count[CLASS_256], 0);
  cr_assert_eq(home->transfer_bytes, 0);
  for (unsigned i = 0; i < count; i++) {
    cr_assert(free_in_slab(waiting[i]), "object %u is back in its slab", i);
    cr_assert_null(((void **)waiting[i])[0], "without its mark");
  }
  cr_assert(!free_in_slab(taken));
  zone_verify_all();
}

/* Expiry is per class: a stack no refill took from goes back to its slabs
 * even while refills keep taking from another class's stack. */
Test(transfer, each_class_expires_on_its_own) {
  unsigned class_64 = SIZE_CLASS_FOR_64;
  static void *small[BLOCKS];
  allocate_and_consume();
  objects_alloc(class_64, small, BLOCKS);
  remote_free(small, class_64, BLOCKS);
  cr_assert_gt(home->transfer_count[class_64], 0);
  for (int round = 0; round < 2; round++) {
    void *p;
    objects_alloc(CLASS_256, &p, 1); /* a refill takes from the 256-byte stack */
    zone_transfer_expire();
  }
  cr_assert_eq(home->transfer_count[class_64], 0, "the unused class went back to its slabs");
  cr_assert_gt(home->transfer_count[CLASS_256], 0, "the class in use kept its stack");
  zone_verify_all();
}

/* After a trim every object is in its slab: with all of them free, every
 * slab and region goes back. */
Test(transfer, a_trim_empties_the_stacks) {
  options.purge_delay_ms = 3600000;
  cr_assert_gt(allocate_and_consume(), 0);
  cr_assert_gt(home->heap.regions, 0);
  cr_assert_eq(zone_trim_all(), 1);
  cr_assert_eq(home->transfer_count[CLASS_256], 0);
  cr_assert_eq(home->transfer_bytes, 0);
  cr_assert_eq(home->heap.regions, 0, "every object was back in its slab");
  cr_assert_eq(zone_verify_all(), 0);
}

/* ---- Misuse caught on the way in ------------------------------------------- */

/* The same object comes home twice, each time in a full batch (two threads
 * freed it): the second copy is refused, the first stays. */
Test(transfer_misuse, a_block_stacked_twice_is_refused) {
  void *p[2];
  objects_alloc(CLASS_256, p, 2);
  remote_free(p, CLASS_256, 1);
  remote_free(p, CLASS_256, 2);
  cr_assert_eq(copies_in_stack(CLASS_256, p[0]), 1, "in the stack once");
  cr_assert(in_stack(CLASS_256, p[1]));
  cr_assert(!free_in_slab(p[0]), "not free in its slab as well");
  const char *text = redirected_stderr();
  cr_assert_not_null(strstr(text, "double free of a small block"), "got:\n%s", text);
  zone_verify_all();
}

/* A copy that a bin flush sends to the slab while the other waits in the
 * stack, and one that comes as a batch when the stack has no room: the mark
 * sends both to a scan of the stack, which finds them. */
Test(transfer_misuse, a_stacked_block_given_to_its_slab_is_refused) {
  unsigned count = allocate_and_consume();
  void *twice = home->transfer[CLASS_256][7];
  cr_assert_eq(count, ZONE_TRANSFER_MAX);
  zone_free_objects(&twice, 1);      /* a flush: to its slab */
  remote_free(&twice, CLASS_256, 1); /* a batch, the stack full: to its slab */
  cr_assert_eq(copies_in_stack(CLASS_256, twice), 1);
  cr_assert(!free_in_slab(twice));
  const char *text = redirected_stderr();
  const char *first = strstr(text, "double free of a small block");
  cr_assert_not_null(first, "got:\n%s", text);
  cr_assert_not_null(strstr(first + 1, "double free of a small block"), "both reported:\n%s", text);
  zone_verify_all();
}

/* A block free in its slab whose key a batch wrote again comes home: the
 * stack checks it as its slab would, and refuses it. */
Test(transfer_misuse, a_block_free_in_its_slab_is_refused_there) {
  void *p[4];
  objects_alloc(CLASS_256, p, 4);
  zone_free_objects(p, 1);
  cr_assert(free_in_slab(p[0]));
  remote_free(p, CLASS_256, 4);
  cr_assert(!in_stack(CLASS_256, p[0]), "refused, not stacked");
  for (int i = 1; i < 4; i++) cr_assert(in_stack(CLASS_256, p[i]), "object %d stacked", i);
  cr_assert(free_in_slab(p[0]), "still free in its slab");
  const char *text = redirected_stderr();
  cr_assert_not_null(strstr(text, "double free of a small block"), "got:\n%s", text);
  zone_verify_all();
  /* It comes out once: from its slab, after the stack ran dry. */
  void *got[8];
  objects_alloc(CLASS_256, got, 8);
  unsigned seen = 0;
  for (int i = 0; i < 8; i++) seen += got[i] == p[0];
  cr_assert_eq(seen, 1);
}

/* An object start its slab never handed out (past its carved objects), and a
 * pointer inside an object: refused, never stacked, never handed out. */
Test(transfer_misuse, a_block_never_handed_out_or_inside_one_is_refused_there) {
  unsigned cls = SIZE_CLASS_FOR_48;
  void *p[5];
  objects_alloc(cls, p, 3);
  char *slab = page_address_of(slab_head_at(region_of_address(p[0]), p[0], cls));
  cr_assert_eq(slab_head_at(region_of_address(p[0]), p[0], cls)->slab_carved, 3);
  void **never = (void **)(slab + 84 * 48), **inside = (void **)((char *)p[1] + 16);
  p[3] = never;
  p[4] = inside;
  remote_free(p, cls, 5);
  cr_assert(!in_stack(cls, never), "refused, not stacked");
  cr_assert(!in_stack(cls, inside));
  cr_assert_eq(home->transfer_count[cls], 3, "the others stacked");
  const char *text = redirected_stderr();
  cr_assert_not_null(strstr(text, "free of a small block that was never allocated"), "got:\n%s", text);
  cr_assert_not_null(strstr(text, "free of a pointer inside a small block"), "got:\n%s", text);
  zone_verify_all();
}

/* ---- Misuse caught on the way out ------------------------------------------- */

/* A write after free to a block waiting in a stack is reported when the
 * block leaves it, and the block is not handed out. */
Test(transfer_misuse, a_write_to_a_waiting_block_is_reported_when_it_leaves) {
  unsigned count = allocate_and_consume();
  void **written = home->transfer[CLASS_256][count - 1]; /* the next out */
  written[1] = NULL;                                     /* a write after free */
  static void *got[ZONE_TRANSFER_MAX];
  objects_alloc(CLASS_256, got, count);
  cr_assert_not(pointers_hold(got, count, written), "never handed out");
  cr_assert(!in_stack(CLASS_256, written));
  cr_assert(!free_in_slab(written), "left alone");
  const char *text = redirected_stderr();
  cr_assert_not_null(strstr(text, "written after its free"), "got:\n%s", text);
  zone_verify_all();
}

/* The same when the stack goes back to its slabs: the block with its mark
 * overwritten is reported and left out. */
Test(transfer_misuse, a_write_to_a_waiting_block_is_reported_when_it_expires) {
  unsigned count = allocate_and_consume();
  void **written = home->transfer[CLASS_256][3];
  written[0] = (void *)1;
  zone_transfer_expire();
  cr_assert_eq(home->transfer_count[CLASS_256], 0);
  for (unsigned i = 0; i < count; i++)
    cr_assert_eq(free_in_slab(blocks[i]), blocks[i] != (void *)written, "object %u", i);
  const char *text = redirected_stderr();
  cr_assert_not_null(strstr(text, "written after its free"), "got:\n%s", text);
  zone_verify_all();
}

/* Two copies of one block: one is stacked and handed out by a refill (and
 * the program's malloc wipes its key), then the other copy comes home: its
 * key is gone, so the zone reports it and leaves it alone. */
Test(transfer_misuse, a_copy_coming_home_after_the_other_was_handed_out_is_refused) {
  void *p[2];
  objects_alloc(CLASS_256, p, 2);
  remote_free(p, CLASS_256, 2);
  void *got;
  objects_alloc(CLASS_256, &got, 1);
  cr_assert_eq(got, p[1], "the stacked copy was handed out");
  ((void **)got)[1] = NULL;             /* malloc hands it out */
  remote_come_home(&got, CLASS_256, 1); /* the other copy: its batch's key is gone */
  zone_free_objects(&got, 1);           /* and as a flush */
  const char *text = redirected_stderr();
  cr_assert_not_null(strstr(text, "double free of a small block (or a write"), "got:\n%s", text);
  cr_assert(!free_in_slab(got), "not free in its slab while handed out");
  cr_assert(!in_stack(CLASS_256, got));
  zone_verify_all();
}

/* A free of a block waiting in a stack, with its key intact: free's
 * double-free check asks the zone, which finds it there. */
Test(transfer, a_block_waiting_there_is_seen_free) {
  allocate_and_consume();
  void *waiting = home->transfer[CLASS_256][0];
  region_t *r = region_of_address(waiting);
  cr_assert(zone_holds_free_object(r, waiting));
  void *taken;
  objects_alloc(CLASS_256, &taken, 1);
  cr_assert_not(zone_holds_free_object(r, taken), "handed out: not free");
}

Test(transfer_fatal, a_double_free_of_a_block_waiting_there_aborts, .signal = SIGABRT) {
  allocate_and_consume();
  void *waiting = home->transfer[CLASS_256][0];
  zone_free_objects(&waiting, 1);
}

/* ---- The stack's own functions, under the zone lock ------------------------ */

Test(transfer, push_take_and_pop_are_last_in_first_out) {
  void *p[6];
  objects_alloc(CLASS_256, p, 6);
  zone_lock(home);
  for (int i = 0; i < 6; i++) {
    cr_assert(transfer_has_room_locked(home, CLASS_256));
    transfer_push_locked(home, slab_head_at(region_of_address(p[i]), p[i], CLASS_256), p[i], CLASS_256);
    cr_assert(transfer_holds_locked(home, CLASS_256, p[i]));
  }
  cr_assert_eq(home->transfer_count[CLASS_256], 6);
  cr_assert_eq(home->transfer_bytes, 6 * 256);
  cr_assert_eq(transfer_pop_locked(home, CLASS_256), p[5]);
  cr_assert_eq(home->transfer_taken, 0, "a flush is not a refill");
  void *out[8];
  cr_assert_eq(transfer_take_locked(home, CLASS_256, out, 3), 3);
  for (int i = 0; i < 3; i++) cr_assert_eq(out[i], p[4 - i]);
  cr_assert_eq(home->transfer_taken, (uint64_t)1 << CLASS_256);
  cr_assert_eq(transfer_take_locked(home, CLASS_256, out, 8), 2, "no more than it holds");
  cr_assert_null(transfer_pop_locked(home, CLASS_256), "empty");
  cr_assert_eq(home->transfer_bytes, 0);
  cr_assert_not(transfer_holds_locked(home, CLASS_256, p[0]));
  transfer_verify_locked(home);
  zone_unlock(home);
}

/* A slab going back to the core takes its objects out of the stack (there
 * can be one only after a double free the other checks missed): each is
 * reported, the other slabs' stay, in order. */
Test(transfer_misuse, a_slab_going_back_drops_its_objects_from_the_stack) {
  unsigned count = size_class_slab_count[CLASS_256];
  void *p[64];
  cr_assert_leq(3 * count, 64);
  objects_alloc(CLASS_256, p, 3 * count); /* three slabs */
  char *middle = page_address_of(slab_head_at(region_of_address(p[count]), p[count], CLASS_256));
  remote_free(p, CLASS_256, 3 * count);
  zone_lock(home);
  transfer_drop_range_locked(home, CLASS_256, middle, PAGE_SIZE << size_class_slab_order[CLASS_256]);
  zone_unlock(home);
  cr_assert_eq(home->transfer_count[CLASS_256], 2 * count);
  cr_assert_eq(home->transfer_bytes, 2 * count * 256);
  unsigned kept = 0;
  for (unsigned i = 0; i < 3 * count; i++) {
    bool in_middle = (uintptr_t)((char *)p[i] - middle) < PAGE_SIZE;
    cr_assert_eq(in_stack(CLASS_256, p[i]), !in_middle, "object %u", i);
    if (!in_middle) cr_assert_eq(home->transfer[CLASS_256][kept++], p[i], "object %u keeps its place", i);
  }
  const char *text = redirected_stderr();
  cr_assert_not_null(strstr(text, "double free of a small block"), "got:\n%s", text);
}

/* ---- The heap walker checks the stacks ------------------------------------- */

/* An object in a stack twice aborts. */
Test(transfer_fatal, the_heap_walker_finds_an_object_stacked_twice, .signal = SIGABRT) {
  void *p;
  objects_alloc(CLASS_256, &p, 1);
  ((void **)p)[0] = (void *)zone_transfer_mark(); /* as if stacked: only the repeat is wrong */
  ((void **)p)[1] = (void *)FREE_KEY;
  home->transfer[CLASS_256][0] = home->transfer[CLASS_256][1] = p;
  home->transfer_count[CLASS_256] = 2;
  home->transfer_bytes = 2 * 256;
  zone_verify_all();
}

Test(transfer_fatal, the_heap_walker_finds_an_object_without_its_mark, .signal = SIGABRT) {
  allocate_and_consume();
  ((void **)home->transfer[CLASS_256][5])[0] = NULL;
  zone_verify_all();
}

Test(transfer_fatal, the_heap_walker_finds_bytes_that_disagree, .signal = SIGABRT) {
  allocate_and_consume();
  home->transfer_bytes += 256;
  zone_verify_all();
}

Test(transfer_fatal, the_heap_walker_finds_an_object_free_in_its_slab, .signal = SIGABRT) {
  void *p[2];
  objects_alloc(CLASS_256, p, 2);
  remote_free(p, CLASS_256, 1);
  zone_lock(home);
  slab_give(region_of_address(p[0]), slab_head_at(region_of_address(p[0]), p[0], CLASS_256), p[0],
            CLASS_256); /* forged: in both */
  zone_unlock(home);
  zone_verify_all();
}
