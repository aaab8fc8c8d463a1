/* zone.h: locked global zones: each owns a buddy heap and the slabs of
 * every class on it (zone.c), transfer stacks between threads (transfer.c),
 * page runs for medium blocks (run.c), and gives free pages back to the OS
 * after a delay.
 */
#ifndef BUDDY_ZONE_H
#define BUDDY_ZONE_H

#include "slab.h"

#pragma GCC visibility push(hidden)

/* ---- zone.c: locked global zones ----------------------------------------- */

extern zone_t zones[ZONES_MAX];

/* An object waiting in a zone's transfer stack holds the key's complement
 * in its first word as well (never 0 either: FREE_KEY's low bits are
 * clear), so that the zone sees it come back while still there (zone.c). */
static inline uintptr_t zone_transfer_mark(void) {
  return ~FREE_KEY;
}

zone_t *zone_for_new_thread(void);
void zone_lock(zone_t *z);
void zone_unlock(zone_t *z);
/* Up to n objects of class cls into out[0..n); returns the count (0 = OOM). */
unsigned zone_alloc_objects(zone_t *z, unsigned cls, void **out, unsigned n);
/* Secure mode: up to n objects of class cls into out[0..n), each from z's
 * first slab with room, chosen at random among its free objects
 * (slab_take_random) from `random` on; returns the count (0 = OOM). */
unsigned zone_alloc_objects_random(zone_t *z, unsigned cls, void **out, unsigned n, uint64_t random);
/* Returns objs[0..count), objects of any classes and zones from a thread's
 * bins or batches (each holds the key: one without it is reported). */
void zone_free_objects(void *const *objs, unsigned count);
/* The same for objects of one class cls, from a thread's bin; with `stack`
 * (a full bin's flush), into their zone's transfer stack first, while it
 * has room, so that the next refill takes them back as pointers. */
void zone_free_bin_objects(unsigned cls, void *const *objs, unsigned count, bool stack);
/* Objects of zone z (classes[i] is objs[i]'s) that a consumer thread freed:
 * into the zone's transfer stacks while they have room, the rest to their
 * slabs. */
void zone_free_remote_objects(zone_t *z, void *const *objs, const uint8_t *classes, unsigned count);
/* Each class's transfer stack that no refill took from since the last call
 * goes back to its slabs; once per maintenance period (maintain.c). */
void zone_transfer_expire(void);
/* Purges each zone's dirty pages if their delay has passed. */
void zone_purge_due(void);
void zone_free_object(region_t *r, page_desc_t *d, void *p);
/* objs[0..n), small objects of any classes and zones that hold the debug
 * fill whole (and the key): back to their slabs, under one lock for those of
 * one zone in a row, not filled again. For secure mode (secure_cache.c):
 * blocks leaving the quarantine's way (checked). */
void zone_return_untouched(void *const *objs, unsigned n);
/* The same for a small object of buddymalloc's own, found by its address. */
void zone_free_small(void *p);
/* Whether p is free in its slab or waits in its zone's transfer stack
 * (takes the zone lock). */
bool zone_holds_free_object(region_t *r, void *p);
size_t zone_release_free_regions_locked(zone_t *z, size_t keep);
/* Gives the empty slabs kept in reserve back to the buddy heap; true if any. */
bool zone_release_empty_slabs_locked(zone_t *z);
/* Medium blocks: page runs of order 0..BUDDY_MAX_ORDER (run.c). */
void *zone_alloc_run(zone_t *z, unsigned order, bool *zeroed);
void zone_free_run(region_t *r, void *p);
void *zone_alloc_sampled_run(zone_t *z, unsigned order, bool *zeroed);
/* zone_free_run for a run that may have been sampled: its record, read
 * under the lock once the run is known to be live and the program's
 * (.stack PROF_NO_STACK if it was not sampled, or the free was misuse). */
prof_record_t zone_free_run_sample(region_t *r, void *p);
/* Keeps the record of the sampled run at p (live, the program's), for its
 * free: a live run's head is on no list, so its links hold it. */
static inline void zone_run_keep_sample(void *p, prof_record_t sample) {
  page_desc_of(region_of_address(p), p)->sample = sample;
}
/* Whether p heads a live page run of the program's (d: p's page). */
static inline bool zone_run_live_at(const page_desc_t *d, const void *p) {
  return d->kind == PAGE_RUN && !(d->flags & PAGE_META) && ((uintptr_t)p & (PAGE_SIZE - 1)) == 0;
}
/* The tail check of a run of the program's at p (run.c): the bytes past
 * `asked` are filled, and checked when the run is freed; disarmed when the
 * program may use every byte of the run (malloc_usable_size). */
void zone_run_arm_tail(void *p, size_t asked);
/* The same at a live run's new end (realloc in place: run.c). */
void zone_run_move_tail(void *p, size_t asked);
void zone_run_disarm_tail(void *p);
/* Checks the tail of the run at p now, then disarms it (secure.c). */
void zone_run_take_tail(void *p);
/* A page run of the allocator's own (a thread's cache): not the program's
 * to free, and counted apart in the statistics. */
void *zone_alloc_meta_run(zone_t *z, unsigned order, bool *zeroed);
void zone_free_meta_run(void *p);
bool zone_grow_run(region_t *r, void *p, unsigned order);
void zone_shrink_run(region_t *r, void *p, unsigned order);
/* Returns every wholly free region beyond none kept, empty slabs; 1 if any. */
int zone_trim_all(void);
/* A mapping failed (alloc.c): what malloc_trim gives back but the purge,
 * which returns memory, not address space; true if a slab or a region went
 * back. */
bool zone_unmap_free_all(void);
/* Runs the invariant walker over every zone; returns the regions mapped. */
size_t zone_verify_all(void);
void zone_fork_prepare(void);
void zone_fork_parent(void);
void zone_fork_child(void);

/* ---- Within the zone layer ---------------------------------------------- */

/* zone.c, for run.c: a block of `order` from the zone's heap (its empty
 * slabs released, or a region mapped, if needed); a block back to it. */
page_desc_t *zone_alloc_block_locked(zone_t *z, unsigned order, bool *zeroed);
void zone_free_block_locked(zone_t *z, page_desc_t *d);
/* zone.c's purge: dirty pages counted as freed, purged when due (on unlock). */
size_t zone_purge_locked(zone_t *z);
void zone_note_freed_locked(zone_t *z, size_t pages);
void zone_purge_if_due_locked(zone_t *z);
/* Page runs handed to the program (run.c; atomic). */
extern uint64_t zone_run_requests;

/* transfer.c, for zone.c: a zone's transfer stacks, under its lock. */
static inline bool transfer_has_room_locked(const zone_t *z, unsigned cls) {
  size_t bytes = size_class_bytes[cls], count = z->transfer_count[cls];
  return count < ZONE_TRANSFER_MAX && (count + 1) * bytes <= ZONE_TRANSFER_CLASS_BYTES &&
         z->transfer_bytes + bytes <= ZONE_TRANSFER_BYTES;
}
void transfer_push_locked(zone_t *z, page_desc_t *head, void **p, unsigned cls);
/* The leading objects of objs[0..count) (a bin's flush, of class cls) that
 * are of zone z and pass transfer_push_locked's checks, pushed while the
 * stack has room; returns how many. */
unsigned transfer_push_bin_locked(zone_t *z, unsigned cls, void *const *objs, unsigned count);
/* Up to n objects off class cls's stack into out (a refill: marks the class
 * taken from); returns how many. */
unsigned transfer_take_locked(zone_t *z, unsigned cls, void **out, unsigned n);
/* One object off class cls's stack, NULL once it is empty (a flush). */
void *transfer_pop_locked(zone_t *z, unsigned cls);
bool transfer_holds_locked(const zone_t *z, unsigned cls, const void *p);
/* Drops (and reports) any object in [start, start + bytes) from the stack. */
void transfer_drop_range_locked(zone_t *z, unsigned cls, const char *start, size_t bytes);
void transfer_verify_locked(const zone_t *z);

/* zone.c, for zone_free.c: the slab lists, and a slab's way back. */
static inline void zone_slab_list_push(page_desc_t *sentinel, page_desc_t *head) {
  head->next = sentinel->next;
  head->prev = sentinel;
  sentinel->next->prev = head;
  sentinel->next = head;
}

static inline void zone_slab_list_remove(page_desc_t *head) {
  head->prev->next = head->next;
  head->next->prev = head->prev;
  head->next = head->prev = NULL;
}
/* Gives an empty slab's block back to the buddy core. */
void zone_release_slab_locked(zone_t *z, page_desc_t *head);

/* The slab headed by head, of class cls, had `used` objects out and got some
 * back: it moves from no list (it was full) to the partial ones, and from
 * those to the reserve of empty slabs, or back to the core, once empty. */
static inline __attribute__((always_inline)) void zone_slab_given_locked(zone_t *z, page_desc_t *head, unsigned cls,
                                                                         unsigned used) {
  slab_list_t *s = &z->slabs[cls];
  z->out_pending -= (long)((used - head->slab_used) * size_class_bytes[cls]);
  if (unlikely(used == size_class_slab_count[cls])) zone_slab_list_push(&s->partial, head);
  /* Empty at slab_kept(head): 0, or 1 (secure mode's guard); a slab with
   * more out costs no look at its flags. */
  if (likely(head->slab_used > 1) || head->slab_used != slab_kept(head)) return;
  zone_slab_list_remove(head);
  size_t bytes = PAGE_SIZE << head->order;
  if (s->empty_count < SLAB_EMPTY_RESERVE || z->empty_slab_bytes + bytes <= ZONE_EMPTY_SLAB_BYTES) {
    zone_slab_list_push(&s->empty, head);
    s->empty_count++;
    z->empty_slab_bytes += bytes;
  } else {
    zone_release_slab_locked(z, head);
  }
}

/* A double free that the free itself could not see (the first copy was in
 * another thread's batch): the object waits in the zone's transfer stack.
 * The mark in its first word is the cheap test; the scan confirms. */
static inline bool zone_object_stacked_locked(const zone_t *z, const void *p, unsigned cls) {
  return unlikely((uintptr_t)((void *const *)p)[0] == zone_transfer_mark()) && transfer_holds_locked(z, cls, p);
}

/* Returns one object of class cls to its slab (head, in region r); moves the
 * slab between lists. The object holds the key (slab_give). False if
 * refused (reported, left alone). */
static inline __attribute__((always_inline)) bool zone_give_locked(zone_t *z, region_t *r, page_desc_t *head, void *p,
                                                                   unsigned cls) {
  if (zone_object_stacked_locked(z, p, cls)) {
    error_misuse("double free of a small block", p);
    return false;
  }
  unsigned used = head->slab_used;
  if (!slab_give(r, head, p, cls)) return false;
  zone_slab_given_locked(z, head, cls, used);
  return true;
}

#pragma GCC visibility pop

#endif /* BUDDY_ZONE_H */
