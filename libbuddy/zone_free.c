/* zone_free.c: objects coming home to their zone: one freed with no cache
 * to take it, a thread's flushed bin (slab by slab, or into the transfer
 * stack), a consumer's remote batch. Each is checked as its slab would
 * check it before it is given back (zone.h: zone_give_locked).
 */
#include "zone.h"

void zone_free_small(void *p) {
  region_t *r = pagemap_region_of(p);
  zone_free_object(r, page_desc_of(r, p), p);
}

bool zone_holds_free_object(region_t *r, void *p) {
  zone_t *z = r->zone;
  zone_lock(z);
  page_desc_t *d = page_desc_of(r, p);
  bool held = d->kind == PAGE_SLAB &&
              (slab_holds_free(slab_head_of(r, d), p) || transfer_holds_locked(z, page_class_of_desc(d), p));
  zone_unlock(z);
  return held;
}

/* A block freed straight to its zone (no cache took it) gets the key that
 * marks it free once its slab took it. */
void zone_free_object(region_t *r, page_desc_t *d, void *p) {
  zone_t *z = r->zone;
  zone_lock(z);
  if (zone_give_locked(z, r, slab_head_of(r, d), p, page_class_of_desc(d))) ((void **)p)[1] = (void *)FREE_KEY;
  zone_unlock(z);
}

/* A flush of objects that may belong to several zones holds the lock of
 * one at a time: unlocks `held` (if any) and locks z. Apart, so that the
 * loops that call it keep their registers. */
static noinline zone_t *zone_switch_lock(zone_t *held, zone_t *z) {
  if (held != NULL) zone_unlock(held);
  zone_lock(z);
  return z;
}

void zone_return_untouched(void *const *objs, unsigned n) {
  zone_t *locked = NULL;
  for (unsigned i = 0; i < n; i++) {
    region_t *r = region_of_address(objs[i]);
    if (r->zone != locked) locked = zone_switch_lock(locked, r->zone);
    unsigned cls = page_class_at(r, objs[i]);
    page_desc_t *head = slab_head_at(r, objs[i], cls);
    unsigned used = head->slab_used;
    if (slab_give_as(r, head, objs[i], cls, true)) zone_slab_given_locked(locked, head, cls, used);
  }
  if (locked != NULL) zone_unlock(locked);
}

/* An object from a thread's bin or batch holds the key, which its push
 * wrote. Without it, malloc handed it out since (it was freed twice, and
 * went on with another copy: into a bin, a stack or the program) or the
 * program wrote to it after its free. Reports; false: leave it alone. */
static bool zone_cached_key_intact(const void *p) {
  if (likely(free_key_matches(((void *const *)p)[1]))) return true;
  error_misuse("double free of a small block (or a write to it after its free)", p);
  return false;
}

/* Every object here was found in a zone region by free (the small map or
 * the page map) or came from a slab, so its region is found from its
 * address, and its slab's head from its class's slab order. */
void zone_free_objects(void *const *objs, unsigned count) {
  zone_t *locked = NULL;
  for (unsigned i = 0; i < count; i++) {
    void *p = objs[i];
    if (!zone_cached_key_intact(p)) continue;
    region_t *r = region_of_address(p);
    if (r->zone != locked) locked = zone_switch_lock(locked, r->zone);
    unsigned cls = page_class_at(r, p);
    zone_give_locked(locked, r, slab_head_at(r, p, cls), p, cls);
  }
  if (locked != NULL) zone_unlock(locked);
}

/* A bin's flush closes a run of objects it gave back to one slab: the
 * slab's count and scan start, written once for the run, and its lists
 * (`used` was its count when the run opened). */
static inline void zone_run_close_locked(zone_t *z, page_desc_t *head, unsigned cls, unsigned used, unsigned left,
                                         unsigned scan) {
  if (left == used) return;
  head->slab_used = (uint16_t)left;
  head->slab_scan = (uint16_t)scan;
  zone_slab_given_locked(z, head, cls, used);
}

/* p, in a slab of class cls (its free-bit words and carved bytes; `empty`:
 * the run has given back every object the slab counted as used), which the
 * flush's loop would not give without a closer look: it may wait in the
 * transfer stack, or not be an object the slab handed out and holds, or
 * need the debug fill. Reports what is wrong, one check at a time (those of
 * slab_give): false, leave p alone. */
static noinline bool zone_run_check(zone_t *z, void *p, size_t offset, unsigned cls, const uint64_t *words,
                                    size_t carved_bytes, bool empty) {
  if (zone_object_stacked_locked(z, p, cls)) {
    error_misuse("double free of a small block", p);
    return false;
  }
  size_t g = offset / SMALL_ALIGN;
  const char *wrong = NULL;
  if (!size_class_is_object_start(cls, offset)) wrong = "free of a pointer inside a small block (not its start)";
  else if (offset >= carved_bytes) wrong = "free of a small block that was never allocated";
  else if (words[g / 64] & slab_free_mask(g)) wrong = "double free of a small block";
  else if (empty) wrong = "double free of a small block (slab already empty)";
  if (unlikely(wrong != NULL)) {
    error_misuse(wrong, p);
    return false;
  }
  if (unlikely(options.debug)) slab_debug_fill(p, size_class_bytes[cls]);
  return true;
}

/* A bin's objects are of one class; mostly of the home zone, and of one
 * slab for a few in a row (a refill took them from one slab, and frees give
 * them back in about the order malloc handed them out), so they go back run
 * by run: the slab's count, scan start and lists are written once for the
 * run, its free bits as each object comes (so an object twice in a run is
 * seen at its second copy). Objects of other zones (a bin adopts remote
 * frees) lock their zone in turn, as zone_free_objects does.
 * The loop makes slab_give's checks but one: every object in a bin passed
 * free's object-start test for the bin's class (the small map's, or the page
 * map's), and a run opens only on a slab of that class, so the test is made
 * again only when a closer look is due for another reason. Its first test
 * is all most objects cost: one compare says both "in the run's slab" and
 * "carved" (carved objects lie below the slab's end); anything that fails
 * it is looked at again one check at a time, below it. */
void zone_free_bin_objects(unsigned cls, void *const *objs, unsigned count, bool stack) {
  const uintptr_t key = FREE_KEY, slab_mask = size_class_info[cls].slab_mask;
  /* debug=1 fills each object: every object takes the closer look, as if
   * none were carved. */
  const size_t bytes = options.debug ? 0 : size_class_bytes[cls];
  zone_t *locked = NULL;
  /* The run: its slab (0: none), head, free-bit words, carved bytes,
   * slab_used when it opened and what is left of it, lowest word given a
   * bit (or slab_scan). */
  uintptr_t slab = 0;
  page_desc_t *head = NULL;
  uint64_t *words = NULL;
  size_t carved_bytes = 0;
  unsigned used = 0, left = 0, scan = 0;
  void *const *it = objs, *const *end = objs + count;
  if (stack && count > 0 && !options.debug) {
    /* The objects of the first one's zone go to its stack first, while it
     * has room (and they need no report: the first one that does stops
     * them, and the loop below reports it). */
    locked = zone_switch_lock(NULL, region_of_address(objs[0])->zone);
    it += transfer_push_bin_locked(locked, cls, objs, count);
  }
  for (; it != end; it++) {
    void **p = *it;
    uintptr_t offset = (uintptr_t)p - slab;
    size_t g = offset / SMALL_ALIGN;
    if (likely(offset < carved_bytes && (uintptr_t)p[1] == key && (uintptr_t)p[0] != ~key &&
               !(words[g / 64] & slab_free_mask(g)) && left != 0)) {
      words[g / 64] |= slab_free_mask(g);
      left--;
      if (g / 64 < scan) scan = (unsigned)(g / 64);
      continue;
    }
    if (!zone_cached_key_intact(p)) continue;
    if (((uintptr_t)p & ~slab_mask) != slab) {
      if (slab != 0) zone_run_close_locked(locked, head, cls, used, left, scan);
      slab = 0;
      region_t *r = region_of_address(p);
      if (r->zone != locked) locked = zone_switch_lock(locked, r->zone);
      unsigned page_cls = page_class_at(r, p);
      if (unlikely(page_cls != cls)) {
        /* Not in a slab of the bin's class any more: only after a misuse
         * (its slab emptied and went back to the core while it was cached).
         * Its page's own checks report it. */
        zone_give_locked(locked, r, slab_head_at(r, p, page_cls), p, page_cls);
        continue;
      }
      slab = (uintptr_t)p & ~slab_mask;
      head = slab_head_at(r, p, cls);
      words = &r->slab_free_bits[slab_free_granule((void *)slab) / 64];
      carved_bytes = (size_t)head->slab_carved * bytes;
      used = left = head->slab_used;
      scan = head->slab_scan;
    }
    offset = (uintptr_t)p & slab_mask;
    g = offset / SMALL_ALIGN;
    uint64_t mask = slab_free_mask(g);
    if (unlikely((uintptr_t)p[0] == ~key || offset >= carved_bytes || (words[g / 64] & mask) || left == 0) &&
        !zone_run_check(locked, p, offset, cls, words, (size_t)head->slab_carved * size_class_bytes[cls], left == 0))
      continue;
    words[g / 64] |= mask;
    left--;
    if (g / 64 < scan) scan = (unsigned)(g / 64);
  }
  if (locked != NULL) {
    if (slab != 0) zone_run_close_locked(locked, head, cls, used, left, scan);
    zone_unlock(locked);
  }
}

void zone_free_remote_objects(zone_t *z, void *const *objs, const uint8_t *classes, unsigned count) {
  assert_internal(!options.debug); /* debug=1 sends remote frees to their slabs, to be filled */
  zone_lock(z);
  for (unsigned i = 0; i < count; i++) {
    void *p = objs[i];
    unsigned cls = classes[i];
    if (!zone_cached_key_intact(p)) continue;
    region_t *r = region_of_address(p);
    assert_internal(r->zone == z && page_class_at(r, p) == cls);
    page_desc_t *head = slab_head_at(r, p, cls);
    if (transfer_has_room_locked(z, cls)) transfer_push_locked(z, head, p, cls);
    else zone_give_locked(z, r, head, p, cls);
  }
  zone_unlock(z);
}
