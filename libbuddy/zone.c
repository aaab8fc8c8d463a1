/* zone.c: the locked global zones.
 *
 * A zone owns a buddy heap (the regions it mapped) and, per size class, the
 * slabs carved from that heap. Threads are spread over the zones round-robin
 * and refill their caches from their home zone, but a block always returns to
 * the zone of its region, found from its address (region_of_address).
 *
 * Transfer stacks. A thread that frees many blocks of another zone is a
 * consumer of that zone's blocks (tcache_remote_adopt). What its bins have
 * no room for comes here and waits, per class, as pointers in the zone's
 * transfer stack, and the next refill of a thread at home in the zone takes
 * it from there before any slab. So a block that goes round a producer and
 * a consumer costs neither of them a write to its slab's bits and counts:
 * in the xthread ring those lines were written in turn by the thread giving
 * objects back and the thread taking them, and each write missed.
 * Misuse is caught as a slab would catch it, and more:
 *  - a block enters a stack after its slab's checks (an object start, handed
 *    out before, not free in its slab), and gets a mark in its first word
 *    (zone_transfer_mark) beside the key in its second;
 *  - a free of a stacked block whose key is intact is confirmed here
 *    (zone_holds_free_object scans the stack);
 *  - a block freed twice by two threads (neither can see the other's batch)
 *    comes back while its first copy is stacked: the mark sends the second
 *    copy, to a stack or to the slab, to a scan of the stack, which finds it;
 *  - a block leaves a stack only with its mark and key intact: anything else
 *    was written since, by the program or by malloc handing out another
 *    copy; it is reported and left alone;
 *  - a slab going back to the core takes any object of it out of the stack
 *    (there can be one only after a double free the checks above missed).
 * The stacks are bounded (types.h); a class's stack that no refill took from
 * for a sweep period goes back to its slabs (zone_transfer_expire), and a
 * trim empties them all.
 *
 * Lock order (the only places that hold two locks): zones by ascending index,
 * then pagemap_lock (pagemap.c). No lock is held across a call that could
 * reach a foreign allocator: the zone code calls only os_*, the page map and
 * the buddy core.
 */
#include "internal.h"

#include <string.h>

/* Zone locks spin a little before they sleep (glibc's adaptive mutex): a
 * section lasts a few hundred instructions, far less than a futex sleep and
 * wake-up. With 4 threads on 2 cores it halved the futex calls of the xthread
 * ring and took 6% off its time. */
#ifdef PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
#define ZONE_LOCK_INITIALISER PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
#define ZONE_LOCK_TYPE PTHREAD_MUTEX_ADAPTIVE_NP
#else
#define ZONE_LOCK_INITIALISER PTHREAD_MUTEX_INITIALIZER
#define ZONE_LOCK_TYPE PTHREAD_MUTEX_DEFAULT
#endif
#define ZONE_INITIALISER {.lock = ZONE_LOCK_INITIALISER}
zone_t zones[ZONES_MAX] = {ZONE_INITIALISER, ZONE_INITIALISER, ZONE_INITIALISER,
                           ZONE_INITIALISER, ZONE_INITIALISER, ZONE_INITIALISER};
_Static_assert(ZONES_MAX == 6, "one initialiser per zone");

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
  lock_take(&z->lock);
  if (unlikely(!z->initialised)) zone_init_locked(z);
}

/* Every locked section ends by purging what is due (see purge.c). */
void zone_unlock(zone_t *z) {
  purge_if_due_locked(z);
  lock_release(&z->lock);
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
static page_desc_t *zone_alloc_block_locked(zone_t *z, unsigned order, bool *zeroed) {
  page_desc_t *d = buddy_heap_alloc(&z->heap, order, zeroed);
  if (d == NULL && zone_release_empty_slabs_locked(z)) d = buddy_heap_alloc(&z->heap, order, zeroed);
  if (d == NULL && zone_grow_locked(z)) d = buddy_heap_alloc(&z->heap, order, zeroed);
  return d;
}

/* Frees a block to the heap. A region that becomes wholly free stays mapped
 * until the purge that follows (purge.c): unmapping at once would make a
 * program that frees and reallocates a large block fault every page in anew. */
static void zone_free_block_locked(zone_t *z, page_desc_t *d) {
  purge_note_freed_locked(z, (size_t)1 << d->order);
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

/* Used by the slab functions below (Transfer stacks). */
static void zone_transfer_drop_slab_locked(zone_t *z, unsigned cls, const char *start, size_t bytes);
static bool zone_transfer_holds_locked(const zone_t *z, unsigned cls, const void *p);

/* Gives an empty slab's block back to the buddy core. */
static void zone_release_slab_locked(zone_t *z, page_desc_t *head) {
  if (z->transfer_count[page_class_of_desc(head)] > 0)
    zone_transfer_drop_slab_locked(z, page_class_of_desc(head), page_address_of(head), PAGE_SIZE << head->order);
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

/* The head of p's slab, of class cls: slabs are aligned to their order. */
static page_desc_t *zone_slab_head_at(region_t *r, const void *p, unsigned cls) {
  return &r->pages[page_index_of(r, p) & ~(((size_t)1 << size_class_slab_order[cls]) - 1)];
}

/* Returns one object of class cls to its slab; moves the slab between lists.
 * One waiting in the zone's transfer stack is a double free (the free that
 * sent it here did not see it: it was in another thread's batch). */
static inline __attribute__((always_inline)) void zone_give_locked(zone_t *z, page_desc_t *head, void *p, unsigned cls) {
  if (unlikely((uintptr_t)((void **)p)[0] == zone_transfer_mark()) && zone_transfer_holds_locked(z, cls, p))
    return error_misuse("double free of a small block", p);
  slab_list_t *s = &z->slabs[cls];
  bool was_full = slab_free_objects(head, cls) == 0;
  if (!slab_give(head, p, cls)) return;
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

/* ---- Transfer stacks ----------------------------------------------------- */

static bool zone_transfer_has_room_locked(const zone_t *z, unsigned cls) {
  size_t bytes = size_class_bytes[cls], count = z->transfer_count[cls];
  return count < ZONE_TRANSFER_MAX && (count + 1) * bytes <= ZONE_TRANSFER_CLASS_BYTES &&
         z->transfer_bytes + bytes <= ZONE_TRANSFER_BYTES;
}

/* Pushes p after the checks slab_give makes, and one of its own: a block
 * never handed out, free in its slab, or already here (freed twice, by two
 * threads whose batches both came here) must not be handed out from here.
 * Reports and leaves p alone if one fails. */
static void zone_transfer_push_locked(zone_t *z, page_desc_t *head, void **p, unsigned cls) {
  const char *wrong = slab_check_give(head, p, cls);
  if (wrong == NULL && unlikely((uintptr_t)p[0] == zone_transfer_mark()) && zone_transfer_holds_locked(z, cls, p))
    wrong = "double free of a small block";
  if (unlikely(wrong != NULL)) return error_misuse(wrong, p);
  p[0] = (void *)zone_transfer_mark();
  z->transfer[cls][z->transfer_count[cls]++] = p;
  z->transfer_bytes += size_class_bytes[cls];
}

/* p leaves its stack: it must still hold the mark and the key, which it
 * came with. Anything else there was written since: by malloc (it was freed
 * twice, and the other copy handed out) or by the program. Reports; false if
 * p must be neither handed out nor given back. Clears the mark. */
static bool zone_transfer_leave(void **p) {
  if (unlikely((uintptr_t)p[0] != zone_transfer_mark() || !free_key_matches(p[1]))) {
    error_misuse("a small block was written after its free (or freed twice) while in a transfer stack", p);
    return false;
  }
  p[0] = NULL;
  return true;
}

/* Up to n objects off class cls's stack into out. */
static unsigned zone_transfer_take_locked(zone_t *z, unsigned cls, void **out, unsigned n) {
  unsigned count = z->transfer_count[cls], popped = n < count ? n : count, taken = 0;
  for (unsigned i = 0; i < popped; i++) {
    void **obj = z->transfer[cls][count - 1 - i];
    if (zone_transfer_leave(obj)) out[taken++] = obj; /* else left alone */
  }
  z->transfer_count[cls] = (uint16_t)(count - popped);
  z->transfer_bytes -= popped * size_class_bytes[cls];
  if (popped > 0) z->transfer_taken |= (uint64_t)1 << cls;
  return taken;
}

static bool zone_transfer_holds_locked(const zone_t *z, unsigned cls, const void *p) {
  return pointers_hold(z->transfer[cls], z->transfer_count[cls], p);
}

/* Class cls's stack back to its slabs. */
static void zone_transfer_flush_class_locked(zone_t *z, unsigned cls) {
  unsigned count = z->transfer_count[cls];
  z->transfer_count[cls] = 0;
  z->transfer_bytes -= count * size_class_bytes[cls];
  for (unsigned i = 0; i < count; i++) {
    void **p = z->transfer[cls][i];
    if (zone_transfer_leave(p)) zone_give_locked(z, zone_slab_head_at(region_of_address(p), p, cls), p, cls);
  }
}

static void zone_transfer_flush_locked(zone_t *z) {
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) zone_transfer_flush_class_locked(z, c);
}

/* A slab going back to the core has none of its objects in the stack: one
 * there would mean the slab gave back an object twice (a double free that
 * reached the slab by a bin). Drops and reports any, so that none is handed
 * out from memory that is no longer this slab's. */
static void zone_transfer_drop_slab_locked(zone_t *z, unsigned cls, const char *start, size_t bytes) {
  unsigned kept = 0, count = z->transfer_count[cls];
  for (unsigned i = 0; i < count; i++) {
    void *p = z->transfer[cls][i];
    if ((uintptr_t)((const char *)p - start) < bytes) error_misuse("double free of a small block", p);
    else z->transfer[cls][kept++] = p;
  }
  z->transfer_count[cls] = (uint16_t)kept;
  z->transfer_bytes -= (count - kept) * size_class_bytes[cls];
}

/* Never waits for a zone: one busy now is looked at next period. */
void zone_transfer_expire(void) {
  for (unsigned i = 0; i < ZONES_MAX; i++) {
    zone_t *z = &zones[i];
    if (!lock_try(&z->lock)) continue;
    if (!z->initialised) {
      lock_release(&z->lock);
      continue;
    }
    for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++)
      if (!(z->transfer_taken & ((uint64_t)1 << c))) zone_transfer_flush_class_locked(z, c);
    z->transfer_taken = 0;
    zone_unlock(z);
  }
}

/* Each object of the stacks is an object start of its class in a slab of
 * this zone, handed out and not free there, holding the mark and the key, in
 * one stack once; the counts and bytes within their bounds. Aborts with a
 * report (a write after free to the key word shows here too). */
static void zone_transfer_verify_locked(const zone_t *z) {
  size_t bytes = 0;
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) {
    unsigned count = z->transfer_count[c];
    if (count > ZONE_TRANSFER_MAX || count * size_class_bytes[c] > ZONE_TRANSFER_CLASS_BYTES)
      error_fatal("heap check failed: a transfer stack past its bound", z->transfer[c]);
    bytes += count * size_class_bytes[c];
    for (unsigned i = 0; i < count; i++) {
      void *p = z->transfer[c][i];
      region_t *r = pagemap_region_of(p);
      if (r == NULL || r->zone != z || page_desc_of(r, p)->kind != PAGE_SLAB || page_class_at(r, p) != c ||
          slab_check_give(zone_slab_head_at(r, p, c), p, c) != NULL)
        error_fatal("heap check failed: a transfer stack holds what is not a used object of its class", p);
      if ((uintptr_t)((void **)p)[0] != zone_transfer_mark() || !free_key_matches(((void **)p)[1]))
        error_fatal("heap check failed: an object in a transfer stack without its mark and key", p);
      if (pointers_hold(z->transfer[c], i, p)) error_fatal("heap check failed: an object twice in a transfer stack", p);
    }
  }
  if (bytes != z->transfer_bytes || bytes > ZONE_TRANSFER_BYTES)
    error_fatal("heap check failed: a zone's transfer bytes disagree with its stacks", z);
}

/* ---- Objects ------------------------------------------------------------- */

unsigned zone_alloc_objects(zone_t *z, unsigned cls, void **out, unsigned n) {
  zone_lock(z);
  unsigned got = zone_transfer_take_locked(z, cls, out, n);
  while (got < n) {
    page_desc_t *head = zone_slab_with_room_locked(z, cls);
    if (head == NULL) break;
    unsigned taken = slab_take(head, out + got, n - got);
    if (taken == 0) error_fatal("heap corrupted: a slab with room gave no object", page_address_of(head));
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
              (slab_holds_free(slab_head_of(r, d), p) || zone_transfer_holds_locked(z, page_class_of_desc(d), p));
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
    zone_give_locked(locked, zone_slab_head_at(r, p, cls), p, cls);
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
    page_desc_t *head = zone_slab_head_at(r, p, cls);
    if (zone_transfer_has_room_locked(z, cls)) zone_transfer_push_locked(z, head, p, cls);
    else zone_give_locked(z, head, p, cls);
  }
  zone_unlock(z);
}

/* ---- Page runs (medium blocks) ------------------------------------------- */

static void *zone_alloc_run_flagged(zone_t *z, unsigned order, bool *zeroed, uint8_t flags) {
  zone_lock(z);
  page_desc_t *d = zone_alloc_block_locked(z, order, zeroed);
  if (d != NULL) {
    d->kind = PAGE_RUN;
    d->flags = flags;
  }
  zone_unlock(z);
  return d != NULL ? page_address_of(d) : NULL;
}

void *zone_alloc_run(zone_t *z, unsigned order, bool *zeroed) {
  return zone_alloc_run_flagged(z, order, zeroed, 0);
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
  error_misuse(d->kind == PAGE_RUN ? "free of a pointer buddymalloc does not own" : "free of a pointer inside a block (not its start)", p);
  return NULL;
}

static void zone_free_run_flagged(region_t *r, void *p, uint8_t meta) {
  zone_t *z = r->zone;
  zone_lock(z);
  page_desc_t *d = zone_run_locked(r, p, meta);
  if (d != NULL) zone_free_block_locked(z, d);
  zone_unlock(z);
}

void zone_free_run(region_t *r, void *p) {
  zone_free_run_flagged(r, p, 0);
}

void zone_free_meta_run(void *p) {
  zone_free_run_flagged(region_of_address(p), p, PAGE_META);
}

bool zone_grow_run(region_t *r, void *p, unsigned order) {
  zone_t *z = r->zone;
  zone_lock(z);
  page_desc_t *d = zone_run_locked(r, p, 0);
  bool grown = d != NULL && buddy_heap_grow(&z->heap, d, order);
  zone_unlock(z);
  return grown;
}

void zone_shrink_run(region_t *r, void *p, unsigned order) {
  zone_t *z = r->zone;
  zone_lock(z);
  page_desc_t *d = zone_run_locked(r, p, 0);
  if (d != NULL) {
    purge_note_freed_locked(z, ((size_t)1 << d->order) - ((size_t)1 << order));
    buddy_heap_shrink(&z->heap, d, order);
  }
  zone_unlock(z);
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
  return purge_zone_locked(z) > 0 || released;
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

/* ---- Checking ------------------------------------------------------------ */

/* Every slab of the zone's regions, found by walking their blocks; and the
 * empty slabs' count and bytes. */
static void zone_verify_slabs_locked(zone_t *z) {
  for (region_t *r = z->heap.region_list; r != NULL; r = r->next)
    for (size_t i = 0; i < BUDDY_REGION_PAGES; i += (size_t)1 << r->pages[i].order)
      if (r->pages[i].kind == PAGE_SLAB) slab_verify(&r->pages[i]);
  size_t empty_bytes = 0;
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) {
    uint32_t count = 0;
    for (page_desc_t *d = z->slabs[c].empty.next; d != &z->slabs[c].empty; d = d->next, count++) {
      if (d->slab_used != 0) error_fatal("heap check failed: a slab in reserve holds objects", page_address_of(d));
      empty_bytes += PAGE_SIZE << d->order;
    }
    if (count != z->slabs[c].empty_count) error_fatal("heap check failed: an empty-slab count is wrong", z);
  }
  if (empty_bytes != z->empty_slab_bytes) error_fatal("heap check failed: the empty slabs' bytes are wrong", z);
}

size_t zone_verify_all(void) {
  size_t regions = 0;
  for (unsigned i = 0; i < ZONES_MAX; i++) {
    zone_lock(&zones[i]);
    buddy_heap_verify(&zones[i].heap);
    zone_verify_slabs_locked(&zones[i]);
    zone_transfer_verify_locked(&zones[i]);
    regions += zones[i].heap.regions;
    zone_unlock(&zones[i]);
  }
  return regions;
}

/* ---- fork() -------------------------------------------------------------- */

void zone_fork_prepare(void) {
  for (unsigned i = 0; i < ZONES_MAX; i++) lock_take(&zones[i].lock);
  pagemap_fork_prepare();
}

void zone_fork_parent(void) {
  pagemap_fork_parent();
  for (unsigned i = ZONES_MAX; i-- > 0;) lock_release(&zones[i].lock);
}

/* The child has one thread: the locks are re-made rather than unlocked. */
void zone_fork_child(void) {
  pagemap_fork_child();
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_settype(&attr, ZONE_LOCK_TYPE);
  for (unsigned i = 0; i < ZONES_MAX; i++) lock_reset(&zones[i].lock, &attr);
  pthread_mutexattr_destroy(&attr);
}
