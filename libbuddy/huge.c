/* huge.c: blocks above MEDIUM_SIZE_MAX, each in a mapping of its own.
 *
 * A huge block is mapped BUDDY_REGION_SIZE-aligned (or more, for larger
 * alignments), so it covers whole page-map slots, each of which points at its
 * huge_t tagged with PAGEMAP_HUGE_TAG. The huge_t is a small object of zone 0.
 * Freeing unmaps at once; realloc moves the pages with mremap, never copying.
 */
#include "internal.h"

#include <string.h>

/* Whole pages, at least one (an aligned request may ask for 0 bytes). */
static size_t huge_round(size_t size) {
  return size == 0 ? PAGE_SIZE : (size + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
}

static huge_t *huge_desc_alloc(void) {
  void *list = NULL;
  if (zone_alloc_objects(&zones[0], size_class_of(sizeof(huge_t)), &list, 1) == 0) return NULL;
  return list;
}

static void huge_desc_free(huge_t *h) {
  region_t *r = pagemap_lookup(h);
  zone_free_object(r, page_desc_of(r, h), h);
}

void *huge_alloc(size_t size, size_t align) {
  size_t length = huge_round(size);
  if (length < size) return NULL;
  huge_t *h = huge_desc_alloc();
  if (h == NULL) return NULL;
  char *base = os_map_aligned(length, align > BUDDY_REGION_SIZE ? align : BUDDY_REGION_SIZE);
  if (base == NULL) {
    huge_desc_free(h);
    return NULL;
  }
  *h = (huge_t){.kind = CHUNK_HUGE, .base = base, .size = length};
  if (!pagemap_register(base, length, (void *)((uintptr_t)h | PAGEMAP_HUGE_TAG))) {
    os_unmap(base, length);
    huge_desc_free(h);
    return NULL;
  }
  __atomic_add_fetch(&huge_live_blocks, 1, __ATOMIC_RELAXED);
  __atomic_add_fetch(&huge_live_bytes, length, __ATOMIC_RELAXED);
  return base;
}

void huge_free(huge_t *h, void *p) {
  if (p != h->base) error_fatal("free of a pointer inside a huge block (not its start)", p);
  pagemap_unregister(h->base, h->size);
  os_unmap(h->base, h->size);
  __atomic_sub_fetch(&huge_live_blocks, 1, __ATOMIC_RELAXED);
  __atomic_sub_fetch(&huge_live_bytes, h->size, __ATOMIC_RELAXED);
  huge_desc_free(h);
}

void *huge_realloc(huge_t *h, void *p, size_t size) {
  if (p != h->base) error_fatal("realloc of a pointer inside a huge block (not its start)", p);
  size_t length = huge_round(size);
  if (length == h->size) return p;
  pagemap_unregister(h->base, h->size);
  char *moved = os_remap_aligned(h->base, h->size, length, BUDDY_REGION_SIZE);
  if (moved != NULL) {
    __atomic_add_fetch(&huge_live_bytes, length - h->size, __ATOMIC_RELAXED);
    h->base = moved;
    h->size = length;
  }
  /* Re-registers the old mapping if the move failed: it is intact. */
  if (!pagemap_register(h->base, h->size, (void *)((uintptr_t)h | PAGEMAP_HUGE_TAG)))
    error_fatal("page map out of memory while moving a huge block", p);
  return moved;
}
