/* run.c: page runs, the medium blocks (order 0..BUDDY_MAX_ORDER), straight
 * from a zone's buddy heap: allocated, freed, grown and shrunk in place under
 * the zone's lock. A run of the allocator's own (a thread's cache) is flagged
 * PAGE_META: the program can neither free nor resize it, and the statistics
 * count it apart. One whose allocation was sampled is flagged PAGE_SAMPLED.
 * A run of the program's holds FILL_TAIL in the bytes just past what the
 * program asked for (up to FILL_TAIL_MAX of them, within the page: fill.c),
 * armed by the API once it has the run and checked when the run is freed:
 * a write past the end of the request is reported then.
 */
#include "zone.h"

#include <string.h>

uint64_t zone_run_requests startup_state;

/* The bytes of a run of the program's (not PAGE_META) count as handed out. */
static long zone_run_bytes(unsigned order) {
  return (long)(PAGE_SIZE << order);
}

static void *zone_alloc_run_flagged(zone_t *z, unsigned order, bool *zeroed, uint8_t flags) {
  zone_lock(z);
  page_desc_t *d = zone_alloc_block_locked(z, order, zeroed);
  if (d != NULL) {
    d->kind = PAGE_RUN;
    d->flags = flags;
    d->run_tail = 0;
    if (!(flags & PAGE_META)) z->out_pending += zone_run_bytes(order);
  }
  zone_unlock(z);
  return d != NULL ? page_address_of(d) : NULL;
}

void *zone_alloc_run(zone_t *z, unsigned order, bool *zeroed) {
  void *p = zone_alloc_run_flagged(z, order, zeroed, 0);
  if (p != NULL) __atomic_fetch_add(&zone_run_requests, 1, __ATOMIC_RELAXED);
  return p;
}

/* A run for an allocation that was sampled (prof=1): flagged PAGE_SAMPLED,
 * so that its free, which reads the flag, forgets the sample. */
void *zone_alloc_sampled_run(zone_t *z, unsigned order, bool *zeroed) {
  void *p = zone_alloc_run_flagged(z, order, zeroed, PAGE_SAMPLED);
  if (p != NULL) __atomic_fetch_add(&zone_run_requests, 1, __ATOMIC_RELAXED);
  return p;
}

void *zone_alloc_meta_run(zone_t *z, unsigned order, bool *zeroed) {
  return zone_alloc_run_flagged(z, order, zeroed, PAGE_META);
}

/* The run headed at p, checked under the zone lock; NULL after reporting
 * misuse. A run of the allocator's own (PAGE_META) is not the program's to
 * free or resize. */
static page_desc_t *zone_run_locked(region_t *r, void *p, uint8_t meta) {
  page_desc_t *d = buddy_heap_check_block(r, p);
  if (d == NULL) return NULL;
  if (d->kind == PAGE_RUN && (d->flags & PAGE_META) == meta) return d;
  error_misuse(d->kind == PAGE_RUN ? "free of a pointer buddymalloc does not own"
                                   : "free of a pointer inside a block (not its start)",
               p);
  return NULL;
}

/* The run headed by d (the program's, at p) was written past its request. */
static void zone_run_check_tail(const page_desc_t *d, const char *p) {
  fill_tail_check(p + d->run_asked, d->run_tail,
                  "heap overflow: a write past the end of a medium block, found when it was freed",
                  PAGE_SIZE << d->order, d->run_asked);
}

void zone_run_arm_tail(void *p, size_t asked) {
  page_desc_t *d = page_desc_of(region_of_address(p), p);
  d->run_tail = (uint8_t)fill_tail_arm(p, asked, PAGE_SIZE << d->order);
  d->run_asked = (uint32_t)asked;
}

/* A live run's new end (realloc in place). Grown within its armed tail (a
 * string appended to: a few bytes at a time), the bytes of the old tail
 * past the new end hold the fill already, or a write past the old end that
 * the free will still report: only the bytes past the old tail are filled,
 * where each step refilled the whole tail before. */
void zone_run_move_tail(void *p, size_t asked) {
  page_desc_t *d = page_desc_of(region_of_address(p), p);
  size_t old_end = (size_t)d->run_asked + d->run_tail;
  if (d->run_tail == 0 || asked < d->run_asked || asked >= old_end) return zone_run_arm_tail(p, asked);
  size_t tail = fill_tail_bytes(asked, PAGE_SIZE << d->order);
  if (asked + tail > old_end) memset((char *)p + old_end, FILL_TAIL, asked + tail - old_end);
  d->run_tail = (uint8_t)tail;
  d->run_asked = (uint32_t)asked;
}

void zone_run_take_tail(void *p) {
  page_desc_t *d = page_desc_of(region_of_address(p), p);
  if (d->run_tail != 0) zone_run_check_tail(d, p);
  d->run_tail = 0;
}

void zone_run_disarm_tail(void *p) {
  page_desc_of(region_of_address(p), p)->run_tail = 0;
}

/* *sample (if sample is not NULL): the record of the run if it was sampled
 * (left as it is if not). */
static void zone_free_run_flagged(region_t *r, void *p, uint8_t meta, prof_record_t *sample) {
  zone_t *z = r->zone;
  zone_lock(z);
  page_desc_t *d = zone_run_locked(r, p, meta);
  if (d != NULL && d->run_tail != 0) zone_run_check_tail(d, p);
  if (d != NULL) {
    if (sample != NULL && (d->flags & PAGE_SAMPLED)) *sample = d->sample;
    if (!meta) z->out_pending -= zone_run_bytes(d->order);
    zone_free_block_locked(z, d);
  }
  zone_unlock(z);
}

void zone_free_run(region_t *r, void *p) {
  zone_free_run_flagged(r, p, 0, NULL);
}

prof_record_t zone_free_run_sample(region_t *r, void *p) {
  prof_record_t sample = {.stack = PROF_NO_STACK};
  zone_free_run_flagged(r, p, 0, &sample);
  return sample;
}

void zone_free_meta_run(void *p) {
  zone_free_run_flagged(region_of_address(p), p, PAGE_META, NULL);
}

bool zone_grow_run(region_t *r, void *p, unsigned order) {
  zone_t *z = r->zone;
  zone_lock(z);
  page_desc_t *d = zone_run_locked(r, p, 0);
  unsigned old = d != NULL ? d->order : 0;
  bool grown = d != NULL && buddy_heap_grow(&z->heap, d, order);
  if (grown) z->out_pending += zone_run_bytes(order) - zone_run_bytes(old);
  zone_unlock(z);
  return grown;
}

void zone_shrink_run(region_t *r, void *p, unsigned order) {
  zone_t *z = r->zone;
  zone_lock(z);
  page_desc_t *d = zone_run_locked(r, p, 0);
  if (d != NULL) {
    zone_note_freed_locked(z, ((size_t)1 << d->order) - ((size_t)1 << order));
    z->out_pending -= zone_run_bytes(d->order) - zone_run_bytes(order);
    buddy_heap_shrink(&z->heap, d, order);
  }
  zone_unlock(z);
}
