/* free.c: the freeing half of the public API.
 *
 * The fast path is free_fast() in api.h, inlined into buddy_free and the
 * shim's free: the small map gives the bin of the block's slab (its zone and
 * class) and whether the address starts an object, and the object goes on
 * the thread's bin. Misuse is caught before anything is written: a pointer
 * with no page-map entry is foreign; one that is not an object or block
 * start is interior; one whose second word holds the cache key and which is
 * found in the bin, the remote batch, the slab or the zone's transfer stack
 * is a double free. This file
 * holds its exit for everything but a small object start.
 */
#include "api.h"
#include "buddymalloc.h"

noinline void free_not_small_object(void *p, secure_kind_t kind) {
  uintptr_t entry = pagemap_entry(p);
  if (pagemap_is_region(entry)) {
    region_t *r = pagemap_region(entry);
    /* Elsewhere objects find their region from the address alone. */
    if (r != region_of_address(p)) error_fatal("heap corrupted: a region's metadata is not below its pages", p);
    unsigned cls = page_class_at(r, p);
    if (cls == 0) {
      if (unlikely(options.secure)) return secure_free_run(r, p, kind);
      if (unlikely(options_sampling())) return prof_forget(zone_free_run_sample(r, p));
      return zone_free_run(r, p);
    }
    if (!size_class_is_object(cls, p)) return error_misuse("free of a pointer inside a small block (not its start)", p);
    if (options.secure) return secure_free_small(r, p, cls, kind); /* its slab is not in the small map */
    /* A small object the map does not show (its region's bytes could not be
     * made writable, or the map could not be reserved). */
    tcache_hold();
    return tcache_free_slow(p, small_map_bin_number(r->zone_index, cls));
  }
  if (entry != 0) {
    huge_t *h = pagemap_huge(entry);
    if (unlikely(h->made != 0) && p == h->base && !h->cached)
      secure_check_made(p, h->size, h->tail != 0 ? h->asked : 0, (secure_kind_t)(h->made - 1), kind);
    if (unlikely(h->sampled) && p == h->base) {
      h->sampled = false;
      prof_forget(h->sample);
    }
    huge_free(h, p);
  } else if (p != NULL) error_misuse("free of a pointer buddymalloc does not own", p);
}

void buddy_free(void *p) {
  free_fast(p);
}

/* ---- Sized delete -------------------------------------------------------- */

/* A size that does not fit the block is a bug of the program (a delete
 * through a pointer to another type, of another size): reported, and with
 * abort_on_error=0 the block is freed by the allocator's own record. */
static cold_path void free_sized_wrong(void *p, size_t size, size_t block_bytes) {
  error_misuse_block("sized delete: the size given does not fit the block", p, block_bytes, size);
}

/* A page run or a huge block: the size must be one alloc_large would have
 * served with this run's order, or with a mapping this long. */
static noinline void free_sized_large(void *p, size_t size, secure_kind_t kind) {
  uintptr_t entry = pagemap_entry(p);
  if (entry != 0 && pagemap_is_region(entry)) {
    region_t *r = pagemap_region(entry);
    page_desc_t *d = page_desc_of(r, p);
    size_t pages = (size + PAGE_SIZE - 1) >> PAGE_SHIFT;
    unsigned cls = page_class_at(r, p);
    bool run = cls == 0 && zone_run_live_at(d, p);
    size_t small_max = options.secure ? SMALL_SIZE_MAX - SECURE_TRAILER : SMALL_SIZE_MAX;
    /* A sampled small block (prof=1) is a run of its own: a size of its
     * class is right. */
    bool sampled_small = (d->flags & PAGE_SAMPLED) && size <= SMALL_SIZE_MAX &&
                         d->order == alloc_sampled_order(size_class_of(size));
    if (run && !sampled_small &&
        (size <= small_max || size > MEDIUM_SIZE_MAX || buddy_order_for_pages(pages) != d->order))
      free_sized_wrong(p, size, PAGE_SIZE << d->order);
    /* Secure mode: no small map; the canary's request is the record. */
    if (options.secure && cls != 0 && size_class_is_object(cls, p) && secure_usable_small(p, cls) != size)
      free_sized_wrong(p, size, size_class_bytes[cls]);
  } else if (entry != 0) {
    huge_t *h = pagemap_huge(entry);
    if (p == h->base && !h->cached && (size <= MEDIUM_SIZE_MAX || size > h->size)) free_sized_wrong(p, size, h->size);
  }
  free_not_small_object(p, kind);
}

/* The size from sized delete (without an alignment: operator new took
 * exactly this size) must give the block's own size class: a table lookup
 * and a compare on the way to free's fast path. The page map stays the
 * record of what is freed. */
void free_sized_as(void *p, size_t size, secure_kind_t kind) {
  size_t bin;
  if (unlikely(!small_map_object(p, &bin))) return free_sized_large(p, size, kind);
  unsigned cls = small_map_bin_class(bin);
  if (unlikely(size > SMALL_SIZE_MAX || size_class_of(size) != cls)) free_sized_wrong(p, size, size_class_bytes[cls]);
  free_fast_as(p, kind);
}

void buddy_free_sized(void *p, size_t size) {
  free_sized_as(p, size, SECURE_MALLOC);
}
