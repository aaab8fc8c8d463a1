/* free.c: the freeing half of the public API.
 *
 * The fast path finds the block's page descriptor through the page map (two
 * loads), checks the pointer is an object start (a multiply), and pushes the
 * object on the thread's bin. Misuse is caught before anything is written:
 * a pointer with no page-map entry is foreign; one that is not an object or
 * block start is interior; one whose second word holds the cache key and which
 * is found in the bin is a double free.
 */
#include "internal.h"
#include "buddymalloc.h"

static cold_path void free_foreign(void *p) {
  if (p != NULL) error_misuse("free of a pointer buddymalloc does not own", p);
}

static cold_path void free_interior(void *p) {
  error_misuse("free of a pointer inside a small block (not its start)", p);
}

/* Medium and huge blocks. */
static noinline void free_large(void *chunk, void *p) {
  if (pagemap_is_huge(chunk)) huge_free(pagemap_huge(chunk), p);
  else zone_free_run(chunk, p);
}

/* Every exit that leaves the fast path is a tail call, so the path itself
 * saves no registers. Cost: about 35 instructions when the bin has room. */
void buddy_free(void *p) {
  void *chunk = pagemap_lookup(p);
  if (unlikely(chunk == NULL)) return free_foreign(p);
  if (unlikely(pagemap_is_huge(chunk))) return free_large(chunk, p);
  page_desc_t *d = page_desc_of(chunk, p);
  unsigned cls = d->size_class;
  if (unlikely(cls == 0)) return free_large(chunk, p);
  if (unlikely(!size_class_is_object_start(cls, slab_offset_of(d, p)))) return free_interior(p);
  tcache_t *tc = tcache_current;
  region_t *r = chunk;
  /* Another zone's object is a remote free: batched, never reused here. */
  if (unlikely(r->zone != tc->zone)) return tcache_free_remote(tc, r, p, cls);
  tcache_bin_t *b = &tc->bins[cls];
  void **obj = p;
  /* A key in the 2nd word may be a double free; a full bin must flush. */
  if (unlikely(free_key_matches(obj[1]) || b->count >= b->max)) return tcache_free_slow(tc, p, cls);
  obj[0] = b->head;
  obj[1] = (void *)tcache_key;
  b->head = obj;
  b->count++;
}

/* The size from sized delete is a hint: the page map is the record. */
void buddy_free_sized(void *p, size_t size) {
  (void)size;
  buddy_free(p);
}
