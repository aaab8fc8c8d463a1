/* slab.c: a buddy block carved into objects of one size class.
 *
 * A slab is a block of size_class_slab_order[class]; every one of its page
 * descriptors says PAGE_SLAB, the class and the order, so a pointer anywhere
 * in it finds the class in one load and the head page by masking. The head
 * descriptor keeps the slab's state:
 *   slab_carved  objects [0, slab_carved) have been handed out at least once;
 *                the rest were never touched (so a fresh slab costs no writes);
 *   slab_free    returned objects, linked through their first word, each with
 *                tcache_key in its second word and its free bit set (the
 *                region's slab_free_bits: set exactly for the objects on
 *                the list);
 *   slab_used    objects out of the slab (in thread caches or with the program).
 * The caller holds the zone lock for every function here.
 */
#include "internal.h"

#include <string.h>

void slab_init(page_desc_t *head, unsigned cls) {
  unsigned order = size_class_slab_order[cls];
  assert_internal(head->kind == PAGE_USED && head->order == order);
  for (size_t i = 0; i < ((size_t)1 << order); i++) {
    head[i].kind = PAGE_SLAB;
    head[i].order = (uint8_t)order;
  }
  page_class_set(head, (size_t)1 << order, cls);
  head->slab_free = NULL;
  head->slab_used = 0;
  head->slab_carved = 0;
}

/* debug=1: a freed object's bytes past its two link words hold DEBUG_FILL
 * until it is handed out again; anything else there was written after free. */
#define DEBUG_FILL 0xdf
#define DEBUG_LINK_BYTES (2 * sizeof(void *))

void slab_debug_fill(void *obj, size_t bytes) {
  memset((char *)obj + DEBUG_LINK_BYTES, DEBUG_FILL, bytes - DEBUG_LINK_BYTES);
}

static void slab_debug_check(void *obj, size_t bytes) {
  const unsigned char *p = obj;
  for (size_t i = DEBUG_LINK_BYTES; i < bytes; i++)
    if (p[i] != DEBUG_FILL) error_fatal("use after free: a freed block was written to", p + i);
}

unsigned slab_take(page_desc_t *head, void **list, unsigned n) {
  unsigned cls = page_class_of_desc(head), taken = 0;
  void **obj;
  while (taken < n && (obj = head->slab_free) != NULL) {
    if (options.debug) slab_debug_check(obj, size_class_bytes[cls]);
    head->slab_free = obj[0];
    size_t g = slab_free_granule(obj);
    region_of_desc(head)->slab_free_bits[g / 64] &= ~slab_free_mask(g);
    obj[0] = *list;
    obj[1] = (void *)tcache_key; /* now in a bin */
    *list = obj;
    taken++;
  }
  size_t bytes = size_class_bytes[cls];
  char *start = page_address_of(head);
  while (taken < n && head->slab_carved < size_class_slab_count[cls]) {
    obj = (void **)(start + head->slab_carved++ * bytes);
    obj[0] = *list;
    obj[1] = (void *)tcache_key;
    *list = obj;
    taken++;
  }
  head->slab_used = (uint16_t)(head->slab_used + taken);
  return taken;
}

void slab_clear_free_bits(page_desc_t *head) {
  size_t first = slab_free_granule(page_address_of(head)), granules = (PAGE_SIZE << head->order) / SMALL_ALIGN;
  memset(&region_of_desc(head)->slab_free_bits[first / 64], 0, granules / 8);
}
