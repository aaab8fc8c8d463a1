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

static unsigned zone_next_thread startup_state;

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
  buddy_heap_add_fresh_region(&z->heap, r, base);
  r->zone = z;
  r->zone_index = (uint8_t)(z - zones);
  if (!pagemap_register(base, BUDDY_REGION_SIZE, pagemap_region_entry(r))) {
    buddy_heap_remove_region(&z->heap, r);
    os_unmap(r, REGION_META_SIZE + BUDDY_REGION_SIZE);
    return false;
  }
  /* Secure mode leaves the small map empty: every free takes the slow path,
   * where its checks are (secure.c). */
  r->small_mapped = !options.secure && small_map_add_region(base);
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

/* Said once: past the guards' budget (os.h), secure mode protects less. */
static void zone_warn_guards_spent(void) {
  static bool warned;
  if (os_counted_guards() < os_counted_guards_max || __atomic_exchange_n(&warned, true, __ATOMIC_RELAXED)) return;
  base_warning("secure=1: the guard pages' budget is spent (os_counted_guards_max, half the kernel's default count ",
               "of mappings): slabs made from now on have none, and freed page runs are not sealed",
               (const char *)NULL);
}

/* Secure mode (secure.c): a slab's block of `order` and, just past it, a
 * guard page, inaccessible, so that a read or write running off the slab's
 * last block faults at once (secure_fault reports it) and two slabs never
 * touch. The pair is taken as one block of order + 1, split: the rest of its
 * upper half goes back to the core. Without a guard if the page cannot be
 * made inaccessible (the kernel's count of mappings, or past
 * os_counted_guards_max guards: os.h). */
static page_desc_t *zone_alloc_guarded_slab_locked(zone_t *z, unsigned order) {
  page_desc_t *head = zone_alloc_block_locked(z, order + 1, NULL);
  if (head == NULL) return NULL;
  page_desc_t *guard = buddy_heap_split(head);
  while (guard->order > 0) zone_free_block_locked(z, buddy_heap_split(guard));
  if (!os_make_counted_guard(page_address_of(guard), PAGE_SIZE)) {
    zone_free_block_locked(z, guard);
    zone_warn_guards_spent();
    return head;
  }
  guard->kind = PAGE_RUN;
  guard->flags = PAGE_META | PAGE_GUARD;
  return head;
}

/* The guard page past the slab at head, if it has one: made accessible
 * again and freed (left in place if it cannot be). */
static void zone_release_guard_locked(zone_t *z, page_desc_t *head) {
  region_t *r = region_of_desc(head);
  size_t after = (size_t)(head - r->pages) + ((size_t)1 << head->order);
  if (after >= BUDDY_REGION_PAGES) return;
  page_desc_t *guard = &r->pages[after];
  if (guard->kind != PAGE_RUN || !(guard->flags & PAGE_GUARD)) return;
  if (!os_drop_counted_guard(page_address_of(guard), PAGE_SIZE)) return;
  guard->kind = PAGE_USED;
  guard->flags = 0;
  zone_free_block_locked(z, guard);
}

/* Gives an empty slab's block back to the buddy core, with its guard page. */
void zone_release_slab_locked(zone_t *z, page_desc_t *head) {
  if (z->transfer_count[page_class_of_desc(head)] > 0)
    transfer_drop_range_locked(z, page_class_of_desc(head), page_address_of(head), PAGE_SIZE << head->order);
  zone_release_guard_locked(z, head);
  for (size_t i = 0; i < ((size_t)1 << head->order); i++) head[i].kind = PAGE_INNER;
  page_class_set(head, (size_t)1 << head->order, 0);
  slab_clear_free_bits(head);
  head->kind = PAGE_USED;
  zone_free_block_locked(z, head);
}

/* Takes the first empty slab of s, which has one, off the zone's reserve. */
static page_desc_t *zone_reserve_pop_locked(zone_t *z, slab_list_t *s) {
  page_desc_t *head = s->empty.next;
  zone_slab_list_remove(head);
  s->empty_count--;
  z->empty_slab_bytes -= PAGE_SIZE << head->order;
  return head;
}

/* A slab of class cls with free objects that is on no list: one of the
 * reserve, else a new one. Returns NULL when memory is exhausted. */
static page_desc_t *zone_slab_off_list_locked(zone_t *z, unsigned cls) {
  slab_list_t *s = &z->slabs[cls];
  if (s->empty.next != &s->empty) return zone_reserve_pop_locked(z, s);
  unsigned order = size_class_slab_order[cls];
  page_desc_t *head = options.secure ? zone_alloc_guarded_slab_locked(z, order)
                                     : zone_alloc_block_locked(z, order, NULL);
  if (head == NULL) return NULL;
  slab_init(head, cls);
  if (options.secure) slab_keep_guard(head, cls);
  return head;
}

/* ---- Objects ------------------------------------------------------------- */

/* `taken` objects left the slab at head (on the partial list if `listed`):
 * counted as handed out, and a slab taken off the reserve or new joins the
 * partial list only if it is not full after the take; a partial one leaves
 * it when it is. */
static void zone_slab_taken_locked(zone_t *z, page_desc_t *head, unsigned cls, unsigned taken, bool listed) {
  z->out_pending += (long)(taken * size_class_bytes[cls]);
  bool full = head->slab_used == size_class_slab_count[cls];
  if (listed && full) zone_slab_list_remove(head);
  else if (!listed && !full) zone_slab_list_push(&z->slabs[cls].partial, head);
}

unsigned zone_alloc_objects(zone_t *z, unsigned cls, void **out, unsigned n) {
  zone_lock(z);
  unsigned got = z->transfer_count[cls] > 0 ? transfer_take_locked(z, cls, out, n) : 0;
  slab_list_t *s = &z->slabs[cls];
  /* Partial slabs first, then the reserve, then new ones. */
  while (got < n) {
    page_desc_t *head = s->partial.next;
    bool listed = head != &s->partial;
    if (!listed && (head = zone_slab_off_list_locked(z, cls)) == NULL) break;
    unsigned taken = slab_take(head, cls, out + got, n - got);
    if (taken == 0) error_fatal("heap corrupted: a slab with room gave no object", page_address_of(head));
    got += taken;
    zone_slab_taken_locked(z, head, cls, taken, listed);
  }
  zone_unlock(z);
  return got;
}

unsigned zone_alloc_objects_random(zone_t *z, unsigned cls, void **out, unsigned n, uint64_t random) {
  unsigned got = 0;
  zone_lock(z);
  slab_list_t *s = &z->slabs[cls];
  while (got < n) {
    page_desc_t *head = s->partial.next;
    bool listed = head != &s->partial;
    if (!listed && (head = zone_slab_off_list_locked(z, cls)) == NULL) break;
    out[got++] = slab_take_random(head, cls, random >> 16);
    zone_slab_taken_locked(z, head, cls, 1, listed);
    random = random * 6364136223846793005u + 1442695040888963407u; /* the next choice's (an LCG step) */
  }
  zone_unlock(z);
  return got;
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

/* The transfer stacks and empty slabs back to the core, then every wholly
 * free region unmapped; true if a slab or a region went. */
static bool zone_unmap_free_locked(zone_t *z) {
  zone_transfer_flush_locked(z);
  bool released = zone_release_empty_slabs_locked(z);
  return zone_release_free_regions_locked(z, 0) > 0 || released;
}

static bool zone_trim_locked(zone_t *z) {
  bool released = zone_unmap_free_locked(z);
  return zone_purge_locked(z) > 0 || released;
}

/* Calls f on every zone in use, under its lock (a zone never used holds
 * nothing: it is left untouched, not made); true if any call was. */
static bool zone_each_in_use(bool (*f)(zone_t *z)) {
  bool any = false;
  for (unsigned i = 0; i < ZONES_MAX; i++) {
    zone_t *z = &zones[i];
    lock_word_take(&z->lock);
    if (!z->initialised) {
      lock_word_release(&z->lock);
      continue;
    }
    any |= f(z);
    zone_unlock(z);
  }
  return any;
}

bool zone_unmap_free_all(void) {
  return zone_each_in_use(zone_unmap_free_locked);
}

int zone_trim_all(void) {
  return zone_each_in_use(zone_trim_locked);
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
