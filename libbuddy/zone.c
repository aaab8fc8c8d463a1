/* zone.c: the locked global zones.
 *
 * A zone owns a buddy heap (the regions it mapped) and, per size class, the
 * slabs carved from that heap. Threads are spread over the zones round-robin
 * and refill their caches from their home zone, but a block always returns to
 * the zone of its region, found from its address (region_of_address).
 *
 * Lock order (the only places that hold two locks): zones by ascending index,
 * then pagemap_lock (pagemap.c). No lock is held across a call that could
 * reach a foreign allocator: the zone code calls only os_*, the page map and
 * the buddy core.
 */
#include "zone.h"

#include <string.h>

/* Zone locks are lock words (lock.h), free when zero: the zones are
 * zero-initialised, so that the zones (large: their transfer stacks) cost a
 * process nothing until it uses them. */
zone_t zones[ZONES_MAX];

static unsigned zone_next_thread;

/* ---- Locking ------------------------------------------------------------- */

static void zone_init_locked(zone_t *z) {
  buddy_heap_init(&z->heap);
  for (unsigned c = 0; c < SIZE_CLASS_COUNT; c++) {
    slab_list_t *s = &z->slabs[c];
    s->partial.next = s->partial.prev = &s->partial;
    s->empty.next = s->empty.prev = &s->empty;
    s->empty_count = 0;
  }
  z->initialised = true;
}

void zone_lock(zone_t *z) {
  lock_word_take(&z->lock);
  if (unlikely(!z->initialised)) zone_init_locked(z);
}

/* Every locked section ends by purging what is due (Purge, below), and by
 * adding the bytes it handed out or took back to the global count once they
 * make a grain (types.h: ZONE_OUT_GRAIN). */
void zone_unlock(zone_t *z) {
  zone_purge_if_due_locked(z);
  if (unlikely(z->out_pending >= ZONE_OUT_GRAIN || z->out_pending <= -ZONE_OUT_GRAIN)) {
    heap_bytes_note(z->out_pending);
    z->out_pending = 0;
  }
  lock_word_release(&z->lock);
}

zone_t *zone_for_new_thread(void) {
  unsigned n = __atomic_fetch_add(&zone_next_thread, 1, __ATOMIC_RELAXED);
  return &zones[n % (unsigned)options.zones];
}

/* ---- Regions ------------------------------------------------------------- */

/* Maps a region with its metadata just below its pages (region_of_address)
 * and adds it to the zone's heap. */
static bool zone_grow_locked(zone_t *z) {
  char *base = os_map_aligned_with_prefix(REGION_META_SIZE, BUDDY_REGION_SIZE, BUDDY_REGION_SIZE);
  if (base == NULL) return false;
  region_t *r = region_of_address(base);
  os_huge_pages(base, BUDDY_REGION_SIZE, options.thp != 0); /* never by surprise */
  buddy_heap_add_region(&z->heap, r, base, true);
  r->zone = z;
  r->zone_index = (uint8_t)(z - zones);
  if (!pagemap_register(base, BUDDY_REGION_SIZE, pagemap_region_entry(r))) {
    buddy_heap_remove_region(&z->heap, r);
    os_unmap(r, REGION_META_SIZE + BUDDY_REGION_SIZE);
    return false;
  }
  r->small_mapped = small_map_add_region(base);
  return true;
}

static void zone_release_region_locked(zone_t *z, region_t *r) {
  buddy_heap_remove_region(&z->heap, r);
  if (r->small_mapped) assert_expensive(small_map_region_clear(r->base));
  pagemap_unregister(r->base, BUDDY_REGION_SIZE);
  os_unmap(r, REGION_META_SIZE + BUDDY_REGION_SIZE);
}

/* Before it maps a region, the zone gives back its empty slabs. */
page_desc_t *zone_alloc_block_locked(zone_t *z, unsigned order, bool *zeroed) {
  page_desc_t *d = buddy_heap_alloc(&z->heap, order, zeroed);
  if (d == NULL && zone_release_empty_slabs_locked(z)) d = buddy_heap_alloc(&z->heap, order, zeroed);
  if (d == NULL && zone_grow_locked(z)) d = buddy_heap_alloc(&z->heap, order, zeroed);
  return d;
}

/* Frees a block to the heap. A region that becomes wholly free stays mapped
 * until the purge that follows (below): unmapping at once would make a
 * program that frees and reallocates a large block fault every page in anew. */
void zone_free_block_locked(zone_t *z, page_desc_t *d) {
  zone_note_freed_locked(z, (size_t)1 << d->order);
  buddy_heap_free(&z->heap, d);
}

/* Unmaps wholly free regions beyond `keep`; returns how many. */
size_t zone_release_free_regions_locked(zone_t *z, size_t keep) {
  size_t released = 0;
  for (region_t *r = z->heap.region_list, *next; r != NULL && z->heap.regions_free > keep; r = next) {
    next = r->next;
    if (r->free_pages != BUDDY_REGION_PAGES) continue;
    zone_release_region_locked(z, r);
    released++;
  }
  return released;
}

/* ---- Slabs --------------------------------------------------------------- */

static void slab_list_push(page_desc_t *sentinel, page_desc_t *head) {
  head->next = sentinel->next;
  head->prev = sentinel;
  sentinel->next->prev = head;
  sentinel->next = head;
}

static void slab_list_remove(page_desc_t *head) {
  head->prev->next = head->next;
  head->next->prev = head->prev;
  head->next = head->prev = NULL;
}

/* Gives an empty slab's block back to the buddy core. */
static void zone_release_slab_locked(zone_t *z, page_desc_t *head) {
  if (z->transfer_count[page_class_of_desc(head)] > 0)
    transfer_drop_range_locked(z, page_class_of_desc(head), page_address_of(head), PAGE_SIZE << head->order);
  for (size_t i = 0; i < ((size_t)1 << head->order); i++) head[i].kind = PAGE_INNER;
  page_class_set(head, (size_t)1 << head->order, 0);
  slab_clear_free_bits(head);
  head->kind = PAGE_USED;
  zone_free_block_locked(z, head);
}

/* Takes the first empty slab of s, which has one, off the zone's reserve. */
static page_desc_t *zone_reserve_pop_locked(zone_t *z, slab_list_t *s) {
  page_desc_t *head = s->empty.next;
  slab_list_remove(head);
  s->empty_count--;
  z->empty_slab_bytes -= PAGE_SIZE << head->order;
  return head;
}

/* A slab of class cls with free objects that is on no list: one of the
 * reserve, else a new one. Returns NULL when memory is exhausted. */
static page_desc_t *zone_slab_off_list_locked(zone_t *z, unsigned cls) {
  slab_list_t *s = &z->slabs[cls];
  if (s->empty.next != &s->empty) return zone_reserve_pop_locked(z, s);
  page_desc_t *head = zone_alloc_block_locked(z, size_class_slab_order[cls], NULL);
  if (head != NULL) slab_init(head, cls);
  return head;
}

/* The slab headed by head, of class cls, had `used` objects out and got some
 * back: it moves from no list (it was full) to the partial ones, and from
 * those to the reserve of empty slabs, or back to the core, once empty. */
static inline __attribute__((always_inline)) void zone_slab_given_locked(zone_t *z, page_desc_t *head, unsigned cls,
                                                                         unsigned used) {
  slab_list_t *s = &z->slabs[cls];
  z->out_pending -= (long)((used - head->slab_used) * size_class_bytes[cls]);
  if (unlikely(used == size_class_slab_count[cls])) slab_list_push(&s->partial, head);
  if (likely(head->slab_used > 0)) return;
  slab_list_remove(head);
  size_t bytes = PAGE_SIZE << head->order;
  if (s->empty_count < SLAB_EMPTY_RESERVE || z->empty_slab_bytes + bytes <= ZONE_EMPTY_SLAB_BYTES) {
    slab_list_push(&s->empty, head);
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

/* ---- Objects ------------------------------------------------------------- */

unsigned zone_alloc_objects(zone_t *z, unsigned cls, void **out, unsigned n) {
  zone_lock(z);
  unsigned got = z->transfer_count[cls] > 0 ? transfer_take_locked(z, cls, out, n) : 0;
  slab_list_t *s = &z->slabs[cls];
  /* Partial slabs first, then the reserve, then new ones. A slab taken off
   * the reserve or new joins the partial list only if it is not full after
   * the take; a partial one leaves it when it is. */
  while (got < n) {
    page_desc_t *head = s->partial.next;
    bool listed = head != &s->partial;
    if (!listed && (head = zone_slab_off_list_locked(z, cls)) == NULL) break;
    unsigned taken = slab_take(head, cls, out + got, n - got);
    if (taken == 0) error_fatal("heap corrupted: a slab with room gave no object", page_address_of(head));
    z->out_pending += (long)(taken * size_class_bytes[cls]);
    got += taken;
    bool full = head->slab_used == size_class_slab_count[cls];
    if (listed && full) slab_list_remove(head);
    else if (!listed && !full) slab_list_push(&s->partial, head);
  }
  zone_unlock(z);
  return got;
}

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
  if (zone_give_locked(z, r, slab_head_of(r, d), p, page_class_of_desc(d))) ((void **)p)[1] = (void *)free_key;
  zone_unlock(z);
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

/* A flush of objects that may belong to several zones holds the lock of
 * one at a time: unlocks `held` (if any) and locks z. Apart, so that the
 * loops that call it keep their registers. */
static noinline zone_t *zone_switch_lock(zone_t *held, zone_t *z) {
  if (held != NULL) zone_unlock(held);
  zone_lock(z);
  return z;
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
  const uintptr_t key = free_key, slab_mask = size_class_info[cls].slab_mask;
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

/* ---- Transfer stacks back to their slabs --------------------------------- */

static void zone_transfer_flush_class_locked(zone_t *z, unsigned cls) {
  for (void **p; (p = transfer_pop_locked(z, cls)) != NULL;) {
    region_t *r = region_of_address(p);
    zone_give_locked(z, r, slab_head_at(r, p, cls), p, cls);
  }
}

static void zone_transfer_flush_locked(zone_t *z) {
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) zone_transfer_flush_class_locked(z, c);
}

/* Never waits for a zone: one busy now is looked at next period. */
void zone_transfer_expire(void) {
  for (unsigned i = 0; i < ZONES_MAX; i++) {
    zone_t *z = &zones[i];
    if (!lock_word_try(&z->lock)) continue;
    if (!z->initialised) {
      lock_word_release(&z->lock);
      continue;
    }
    for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++)
      if (!(z->transfer_taken & ((uint64_t)1 << c))) zone_transfer_flush_class_locked(z, c);
    z->transfer_taken = 0;
    zone_unlock(z);
  }
}

/* ---- Purge --------------------------------------------------------------
 *
 * A zone counts the pages it freed to its buddy heap since its last purge
 * ("dirty" pages: free, but still resident) and the time by which they must be
 * gone: purge_delay_ms after the first of them was freed. Every zone slow path
 * that finds that time passed purges all the zone's free blocks not yet known
 * to be zero (madvise), which also marks them zeroed, so calloc skips them,
 * and unmaps wholly free regions beyond REGION_RESERVE. With
 * purge_delay_ms=0 that happens as the free's zone lock is released. A
 * program that goes idle takes no slow path: the runtime's background thread
 * (maintain.c) purges what is due then.
 */

/* Releases the zone's empty-slab reserve (it saves a slab's set-up when a class
 * empties and refills in quick succession, and a whole purge delay has passed
 * since the zone last freed pages), unmaps wholly free regions beyond the
 * reserve, then purges every free block not known to be zero; returns pages
 * given back. */
size_t zone_purge_locked(zone_t *z) {
  zone_release_empty_slabs_locked(z);
  size_t purged = zone_release_free_regions_locked(z, REGION_RESERVE) * BUDDY_REGION_PAGES;
  for (unsigned k = 0; k < BUDDY_ORDERS; k++) {
    page_desc_t *sentinel = &z->heap.free_list[k];
    for (page_desc_t *d = sentinel->next; d != sentinel; d = d->next) {
      if (d->flags & PAGE_ZEROED) continue;
      /* Only a purge that surely zeroed the pages lets calloc skip them. */
      if (os_purge(page_address_of(d), PAGE_SIZE << k, options.purge_madv_free)) d->flags |= PAGE_ZEROED;
      purged += (size_t)1 << k;
    }
  }
  z->dirty_pages = 0;
  z->purged_pages += purged;
  return purged;
}

/* Called as pages go back to the heap: the purge happens on unlock. */
void zone_note_freed_locked(zone_t *z, size_t pages) {
  if (z->dirty_pages == 0) z->purge_deadline_ns = os_now_ns() + (uint64_t)options.purge_delay_ms * 1000000u;
  z->dirty_pages += pages;
}

void zone_purge_if_due_locked(zone_t *z) {
  if (z->dirty_pages != 0 && os_now_ns() >= z->purge_deadline_ns) zone_purge_locked(z);
}

/* Purges what is due in every zone (the background thread's round). */
void zone_purge_due(void) {
  for (unsigned i = 0; i < ZONES_MAX; i++) {
    zone_lock(&zones[i]);
    zone_purge_if_due_locked(&zones[i]);
    zone_unlock(&zones[i]);
  }
}

/* ---- Trim ---------------------------------------------------------------- */

bool zone_release_empty_slabs_locked(zone_t *z) {
  bool released = false;
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) {
    slab_list_t *s = &z->slabs[c];
    while (s->empty.next != &s->empty) {
      zone_release_slab_locked(z, zone_reserve_pop_locked(z, s));
      released = true;
    }
  }
  return released;
}

static bool zone_trim_locked(zone_t *z) {
  zone_transfer_flush_locked(z);
  bool released = zone_release_empty_slabs_locked(z);
  released |= zone_release_free_regions_locked(z, 0) > 0;
  return zone_purge_locked(z) > 0 || released;
}

int zone_trim_all(void) {
  bool released = false;
  for (unsigned i = 0; i < ZONES_MAX; i++) {
    zone_t *z = &zones[i];
    zone_lock(z);
    released |= zone_trim_locked(z);
    zone_unlock(z);
  }
  return released;
}

/* ---- fork() -------------------------------------------------------------- */

void zone_fork_prepare(void) {
  for (unsigned i = 0; i < ZONES_MAX; i++) lock_word_take(&zones[i].lock);
  pagemap_fork_prepare();
}

void zone_fork_parent(void) {
  pagemap_fork_parent();
  for (unsigned i = ZONES_MAX; i-- > 0;) lock_word_release(&zones[i].lock);
}

/* The child has one thread: the locks are made free rather than released. */
void zone_fork_child(void) {
  pagemap_fork_child();
  for (unsigned i = 0; i < ZONES_MAX; i++) lock_word_reset(&zones[i].lock);
}
