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

/* Zone locks spin a little before they sleep (glibc's adaptive mutex): a
 * locked section is short, far shorter than a futex sleep and wake-up
 * (docs/benchmarks.md: what it saved on the xthread ring). */
#ifdef PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
#define ZONE_LOCK_INITIALISER PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
#define ZONE_LOCK_TYPE PTHREAD_MUTEX_ADAPTIVE_NP
#else
#define ZONE_LOCK_INITIALISER PTHREAD_MUTEX_INITIALIZER
#define ZONE_LOCK_TYPE PTHREAD_MUTEX_DEFAULT
#endif
/* The locks apart from the zones, in one small array: the zones (large:
 * their transfer stacks) are zero-initialised, and cost a process nothing
 * until it uses them. */
static pthread_mutex_t zone_locks[ZONES_MAX] = {ZONE_LOCK_INITIALISER, ZONE_LOCK_INITIALISER, ZONE_LOCK_INITIALISER,
                                                ZONE_LOCK_INITIALISER, ZONE_LOCK_INITIALISER, ZONE_LOCK_INITIALISER};
_Static_assert(ZONES_MAX == 6, "one initialiser per zone lock");
zone_t zones[ZONES_MAX];

static pthread_mutex_t *zone_mutex(const zone_t *z) {
  return &zone_locks[z - zones];
}

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
  lock_take(zone_mutex(z));
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
  lock_release(zone_mutex(z));
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

/* A slab of class cls with free objects: partial first, then the reserve,
 * then a new one. Returns NULL when memory is exhausted. */
static page_desc_t *zone_slab_with_room_locked(zone_t *z, unsigned cls) {
  slab_list_t *s = &z->slabs[cls];
  if (s->partial.next != &s->partial) return s->partial.next;
  page_desc_t *head;
  if (s->empty.next != &s->empty) {
    head = zone_reserve_pop_locked(z, s);
  } else {
    head = zone_alloc_block_locked(z, size_class_slab_order[cls], NULL);
    if (head == NULL) return NULL;
    slab_init(head, cls);
  }
  slab_list_push(&s->partial, head);
  return head;
}

/* Returns one object of class cls to its slab; moves the slab between lists.
 * One waiting in the zone's transfer stack is a double free (the free that
 * sent it here did not see it: it was in another thread's batch). */
static inline __attribute__((always_inline)) void zone_give_locked(zone_t *z, page_desc_t *head, void *p,
                                                                   unsigned cls) {
  if (unlikely((uintptr_t)((void **)p)[0] == zone_transfer_mark()) && transfer_holds_locked(z, cls, p))
    return error_misuse("double free of a small block", p);
  slab_list_t *s = &z->slabs[cls];
  bool was_full = slab_free_objects(head, cls) == 0;
  if (!slab_give(head, p, cls)) return;
  z->out_pending -= (long)size_class_bytes[cls];
  if (unlikely(was_full)) slab_list_push(&s->partial, head);
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

/* ---- Objects ------------------------------------------------------------- */

unsigned zone_alloc_objects(zone_t *z, unsigned cls, void **out, unsigned n) {
  zone_lock(z);
  unsigned got = transfer_take_locked(z, cls, out, n);
  while (got < n) {
    page_desc_t *head = zone_slab_with_room_locked(z, cls);
    if (head == NULL) break;
    unsigned taken = slab_take(head, out + got, n - got);
    if (taken == 0) error_fatal("heap corrupted: a slab with room gave no object", page_address_of(head));
    z->out_pending += (long)(taken * size_class_bytes[cls]);
    got += taken;
    if (slab_free_objects(head, cls) == 0) slab_list_remove(head); /* full: on no list */
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

void zone_free_object(region_t *r, page_desc_t *d, void *p) {
  zone_t *z = r->zone;
  zone_lock(z);
  zone_give_locked(z, slab_head_of(r, d), p, page_class_of_desc(d));
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

/* Every object here was found in a zone region by free (the small map or
 * the page map) or came from a slab, so its region is found from its
 * address, and its slab's head from its class's slab order. */
void zone_free_objects(void *const *objs, unsigned count) {
  zone_t *locked = NULL;
  for (unsigned i = 0; i < count; i++) {
    void *p = objs[i];
    if (!zone_cached_key_intact(p)) continue;
    region_t *r = region_of_address(p);
    if (r->zone != locked) {
      if (locked != NULL) zone_unlock(locked);
      locked = r->zone;
      zone_lock(locked);
    }
    unsigned cls = page_class_at(r, p);
    zone_give_locked(locked, slab_head_at(r, p, cls), p, cls);
  }
  if (locked != NULL) zone_unlock(locked);
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
    else zone_give_locked(z, head, p, cls);
  }
  zone_unlock(z);
}

/* ---- Transfer stacks back to their slabs --------------------------------- */

static void zone_transfer_flush_class_locked(zone_t *z, unsigned cls) {
  for (void **p; (p = transfer_pop_locked(z, cls)) != NULL;)
    zone_give_locked(z, slab_head_at(region_of_address(p), p, cls), p, cls);
}

static void zone_transfer_flush_locked(zone_t *z) {
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) zone_transfer_flush_class_locked(z, c);
}

/* Never waits for a zone: one busy now is looked at next period. */
void zone_transfer_expire(void) {
  for (unsigned i = 0; i < ZONES_MAX; i++) {
    zone_t *z = &zones[i];
    if (!lock_try(zone_mutex(z))) continue;
    if (!z->initialised) {
      lock_release(zone_mutex(z));
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
  for (unsigned i = 0; i < ZONES_MAX; i++) lock_take(&zone_locks[i]);
  pagemap_fork_prepare();
}

void zone_fork_parent(void) {
  pagemap_fork_parent();
  for (unsigned i = ZONES_MAX; i-- > 0;) lock_release(&zone_locks[i]);
}

/* The child has one thread: the locks are re-made rather than unlocked. */
void zone_fork_child(void) {
  pagemap_fork_child();
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_settype(&attr, ZONE_LOCK_TYPE);
  for (unsigned i = 0; i < ZONES_MAX; i++) lock_reset(&zone_locks[i], &attr);
  pthread_mutexattr_destroy(&attr);
}
