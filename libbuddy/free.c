/* free.c: the freeing half of the public API.
 *
 * The fast path is free_fast() in internal.h, inlined into buddy_free and the
 * shim's free: the zone-slot map says the block is in a zone region, whose
 * metadata is found from the address; the region's class map gives the
 * class, the address says whether it starts an object, and the object goes
 * on the thread's bin. Misuse is caught before anything is written: a
 * pointer with no page-map entry is foreign; one that is not an object or
 * block start is interior; one whose second word holds the cache key and
 * which is found in the bin, the remote batch or the slab is a double free.
 * This file holds its exits.
 */
#include "internal.h"
#include "buddymalloc.h"

noinline void free_not_in_zone_region(void *p) {
  uintptr_t entry = pagemap_entry(p);
  if (pagemap_is_region(entry)) {
    region_t *r = pagemap_region(entry);
    if (r != region_of_address(p)) error_fatal("heap corrupted: a region's metadata is not below its pages", p);
    return free_in_region(r, p);
  }
  if (entry != 0) huge_free(pagemap_huge(entry), p);
  else if (p != NULL) error_misuse("free of a pointer buddymalloc does not own", p);
}

noinline void free_not_object(region_t *r, void *p) {
  if (page_class_at(r, p) == 0) zone_free_run(r, p);
  else error_misuse("free of a pointer inside a small block (not its start)", p);
}

void buddy_free(void *p) {
  free_fast(p);
}

/* The size from sized delete is a hint: the page map is the record. */
void buddy_free_sized(void *p, size_t size) {
  (void)size;
  buddy_free(p);
}
