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

noinline void free_not_small_object(void *p) {
  uintptr_t entry = pagemap_entry(p);
  if (pagemap_is_region(entry)) {
    region_t *r = pagemap_region(entry);
    /* Elsewhere objects find their region from the address alone. */
    if (r != region_of_address(p)) error_fatal("heap corrupted: a region's metadata is not below its pages", p);
    unsigned cls = page_class_at(r, p);
    if (cls == 0) {
      if (unlikely(options_sampling()) && zone_run_sampled(r, p)) prof_forget(p);
      return zone_free_run(r, p);
    }
    if (!size_class_is_object(cls, p)) return error_misuse("free of a pointer inside a small block (not its start)", p);
    /* A small object the map does not show (its region's bytes could not be
     * made writable, or the map could not be reserved). */
    tcache_hold();
    return tcache_free_slow(p, small_map_bin_number(r->zone_index, cls));
  }
  if (entry != 0) {
    huge_t *h = pagemap_huge(entry);
    if (unlikely(h->sampled) && p == h->base) {
      h->sampled = false;
      prof_forget(p);
    }
    huge_free(h, p);
  } else if (p != NULL) error_misuse("free of a pointer buddymalloc does not own", p);
}

void buddy_free(void *p) {
  free_fast(p);
}

/* The size from sized delete is a hint: the page map is the record. */
void buddy_free_sized(void *p, size_t size) {
  (void)size;
  buddy_free(p);
}
