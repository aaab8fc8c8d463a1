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
  error_fatal("free of a pointer buddymalloc does not own", p);
}

static cold_path void free_interior(void *p) {
  error_fatal("free of a pointer inside a small block (not its start)", p);
}

/* Medium and huge blocks. */
static noinline void free_large(void *chunk, void *p) {
  if (pagemap_is_huge(chunk)) huge_free(pagemap_huge(chunk), p);
  else zone_free_run(chunk, p);
}

/* Cost: about 35 instructions when the bin has room. */
void buddy_free(void *p) {
  void *chunk = pagemap_lookup(p);
  if (unlikely(chunk == NULL)) {
    if (p != NULL) free_foreign(p);
    return;
  }
  if (unlikely(pagemap_is_huge(chunk))) return free_large(chunk, p);
  region_t *r = chunk;
  page_desc_t *d = page_desc_of(r, p);
  unsigned cls = d->size_class;
  if (unlikely(cls == 0)) return free_large(chunk, p);
  if (unlikely(!size_class_is_object_start(cls, (size_t)((char *)p - slab_start_of(r, d)))))
    free_interior(p);
  tcache_t *tc = tcache_current;
  tcache_bin_t *b = &tc->bins[cls];
  void **obj = p;
  if (unlikely(obj[1] == (void *)tcache_key)) tcache_check_double_free(tc, p, cls);
  if (likely(b->count < b->max)) {
    obj[0] = b->head;
    obj[1] = (void *)tcache_key;
    b->head = obj;
    b->count++;
    return;
  }
  tcache_free_slow(tc, p, cls);
}

/* The size from sized delete is a hint: the page map is the record. */
void buddy_free_sized(void *p, size_t size) {
  (void)size;
  buddy_free(p);
}
