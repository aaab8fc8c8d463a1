/* buddy.c: the page-level buddy core.
 *
 * The algorithm. A region is 2^BUDDY_MAX_ORDER pages (4 MiB), aligned to its
 * size. It is handed out in blocks: runs of 2^k pages ("order k") that start at
 * a page index that is a multiple of 2^k. The two halves of a block of order
 * k+1 are buddies of order k; the buddy of the block at page index i is at
 * i XOR 2^k. So:
 *   - allocation of order k takes the first block on free list k, or the first
 *     block of the smallest larger order j, splitting it j-k times: each split
 *     keeps the lower half and puts the upper half on the free list below;
 *   - freeing a block of order k looks at page i XOR 2^k: if that page heads a
 *     free block of exactly order k, the two merge into a block of order k+1
 *     (headed by the lower index) and the step repeats, up to the region.
 * Each step is O(1): a buddy's state is read from its page descriptor, and the
 * free lists are doubly linked, so a free buddy is unlinked by address. An
 * allocation costs at most BUDDY_ORDERS list looks and BUDDY_MAX_ORDER splits;
 * a free at most BUDDY_MAX_ORDER merges.
 *
 * The memory layout. Nothing is written inside the pages: each region has a
 * region_t, kept apart, whose pages[] array holds one 32-byte page_desc_t per
 * page (see types.h for its invariants). Only the head page of a free block
 * says PAGE_FREE and carries the order; pages inside a block say PAGE_INNER.
 * The free lists run through the head descriptors of free blocks of all the
 * heap's regions; a descriptor finds its region by masking its own address,
 * since each region_t is REGION_META_SIZE-aligned.
 *
 * This file maps nothing and takes no lock: the caller (a zone, or a unit test
 * with static buffers) supplies regions and serialises calls.
 */
#include "buddy.h"

#include <string.h>

/* ---- Free lists ---------------------------------------------------------- */

static void free_list_push(buddy_heap_t *h, page_desc_t *d, unsigned order, uint8_t flags) {
  page_desc_t *head = &h->free_list[order];
  d->kind = PAGE_FREE;
  d->order = (uint8_t)order;
  d->flags = flags;
  d->next = head->next;
  d->prev = head;
  head->next->prev = d;
  head->next = d;
  h->free_blocks[order]++;
}

static void free_list_remove(buddy_heap_t *h, page_desc_t *d) {
  d->prev->next = d->next;
  d->next->prev = d->prev;
  d->next = d->prev = NULL;
  h->free_blocks[d->order]--;
}

/* Accounting of pages moving between used and free in region r. */
static void account_freed(buddy_heap_t *h, region_t *r, size_t pages) {
  r->free_pages += pages;
  h->pages_free += pages;
  h->pages_used -= pages;
  if (r->free_pages == BUDDY_REGION_PAGES) h->regions_free++;
}

static void account_taken(buddy_heap_t *h, region_t *r, size_t pages) {
  if (r->free_pages == BUDDY_REGION_PAGES) h->regions_free--;
  r->free_pages -= pages;
  h->pages_free -= pages;
  h->pages_used += pages;
}

/* ---- Heap and regions ---------------------------------------------------- */

void buddy_heap_init(buddy_heap_t *h) {
  *h = (buddy_heap_t){0};
  for (unsigned k = 0; k < BUDDY_ORDERS; k++) h->free_list[k].next = h->free_list[k].prev = &h->free_list[k];
}

/* Links a region whose descriptors and classes are all zero. */
static void buddy_heap_link_region(buddy_heap_t *h, region_t *r, void *base, bool zeroed) {
  assert_internal(((uintptr_t)r & (REGION_META_SIZE - 1)) == 0);
  assert_internal(((uintptr_t)base & (BUDDY_REGION_SIZE - 1)) == 0);
  r->kind = CHUNK_REGION;
  r->small_mapped = false; /* the zone maps its bytes */
  r->base = base;
  r->heap = h;
  r->free_pages = BUDDY_REGION_PAGES;
  r->prev = NULL;
  r->next = h->region_list;
  if (h->region_list != NULL) h->region_list->prev = r;
  h->region_list = r;
  h->regions++;
  h->regions_free++;
  h->pages_free += BUDDY_REGION_PAGES;
  free_list_push(h, &r->pages[0], BUDDY_MAX_ORDER, zeroed ? PAGE_ZEROED : 0);
}

void buddy_heap_add_region(buddy_heap_t *h, region_t *r, void *base, bool zeroed) {
  for (size_t i = 0; i < BUDDY_REGION_PAGES; i++) r->pages[i] = (page_desc_t){0};
  memset(r->page_class, 0, sizeof r->page_class);
  buddy_heap_link_region(h, r, base, zeroed);
}

/* Nothing is cleared: the descriptors (32 KiB a region) stay untouched, so
 * cost no memory, until their pages are used. */
void buddy_heap_add_fresh_region(buddy_heap_t *h, region_t *r, void *base) {
  buddy_heap_link_region(h, r, base, true);
}

void buddy_heap_remove_region(buddy_heap_t *h, region_t *r) {
  assert_internal(r->free_pages == BUDDY_REGION_PAGES && r->pages[0].kind == PAGE_FREE);
  free_list_remove(h, &r->pages[0]);
  if (r->prev != NULL) r->prev->next = r->next;
  else h->region_list = r->next;
  if (r->next != NULL) r->next->prev = r->prev;
  h->regions--;
  h->regions_free--;
  h->pages_free -= BUDDY_REGION_PAGES;
  r->heap = NULL;
}

/* ---- Allocation ---------------------------------------------------------- */

page_desc_t *buddy_heap_alloc(buddy_heap_t *h, unsigned order, bool *zeroed) {
  unsigned k = order;
  while (k <= BUDDY_MAX_ORDER && h->free_blocks[k] == 0) k++;
  if (k > BUDDY_MAX_ORDER) return NULL;

  page_desc_t *d = h->free_list[k].next;
  free_list_remove(h, d);
  region_t *r = region_of_desc(d);
  uint8_t flags = d->flags;
  while (k > order) { /* split: keep the lower half, free the upper */
    k--;
    free_list_push(h, d + ((size_t)1 << k), k, flags);
  }
  account_taken(h, r, (size_t)1 << order);
  d->kind = PAGE_USED;
  d->order = (uint8_t)order;
  d->flags = 0;
  if (zeroed != NULL) *zeroed = (flags & PAGE_ZEROED) != 0;
  return d;
}

/* ---- Free ---------------------------------------------------------------- */

region_t *buddy_heap_free(buddy_heap_t *h, page_desc_t *d) {
  region_t *r = region_of_desc(d);
  assert_internal(d->kind != PAGE_FREE && d->kind != PAGE_INNER && page_class_of_desc(d) == 0);
  size_t index = (size_t)(d - r->pages);
  unsigned k = d->order;
  uint8_t flags = 0; /* a block that was in use holds data, not zeros */
  account_freed(h, r, (size_t)1 << k);
  while (k < BUDDY_MAX_ORDER) {
    size_t buddy_index = index ^ ((size_t)1 << k);
    page_desc_t *buddy = &r->pages[buddy_index];
    if (buddy->kind != PAGE_FREE || buddy->order != k) break;
    free_list_remove(h, buddy);
    flags &= buddy->flags;
    page_desc_t *upper = buddy_index > index ? buddy : d;
    upper->kind = PAGE_INNER;
    upper->flags = 0;
    if (buddy_index < index) {
      d = buddy;
      index = buddy_index;
    }
    k++;
  }
  free_list_push(h, d, k, flags);
  return r->free_pages == BUDDY_REGION_PAGES ? r : NULL;
}

page_desc_t *buddy_heap_split(page_desc_t *d) {
  assert_internal(d->kind == PAGE_USED && d->order > 0);
  unsigned k = d->order - 1u;
  page_desc_t *upper = d + ((size_t)1 << k);
  d->order = (uint8_t)k;
  upper->kind = PAGE_USED;
  upper->order = (uint8_t)k;
  upper->flags = 0;
  return upper;
}

/* ---- Resizing in place --------------------------------------------------- */

bool buddy_heap_grow(buddy_heap_t *h, page_desc_t *d, unsigned order) {
  region_t *r = region_of_desc(d);
  size_t index = (size_t)(d - r->pages);
  if (order > BUDDY_MAX_ORDER) return false;
  if ((index & (((size_t)1 << order) - 1)) != 0) return false; /* not the lower half */
  for (unsigned k = d->order; k < order; k++) {
    const page_desc_t *upper = &r->pages[index + ((size_t)1 << k)];
    if (upper->kind != PAGE_FREE || upper->order != k) return false;
  }
  for (unsigned k = d->order; k < order; k++) {
    page_desc_t *upper = &r->pages[index + ((size_t)1 << k)];
    free_list_remove(h, upper);
    upper->kind = PAGE_INNER;
    upper->flags = 0;
    account_taken(h, r, (size_t)1 << k);
  }
  d->order = (uint8_t)order;
  return true;
}

void buddy_heap_shrink(buddy_heap_t *h, page_desc_t *d, unsigned order) {
  region_t *r = region_of_desc(d);
  assert_internal(order <= d->order);
  /* The upper halves cannot merge: each one's buddy is the block we keep. */
  for (unsigned k = d->order; k > order; k--) {
    page_desc_t *upper = d + ((size_t)1 << (k - 1));
    free_list_push(h, upper, k - 1, 0);
    account_freed(h, r, (size_t)1 << (k - 1));
  }
  d->order = (uint8_t)order;
}

/* ---- Validation of freed pointers ---------------------------------------- */

page_desc_t *buddy_heap_check_block(region_t *r, const void *p) {
  const char *wrong = NULL;
  page_desc_t *d = page_desc_of(r, p);
  if (((uintptr_t)p & (PAGE_SIZE - 1)) != 0) wrong = "free of a pointer that is not a block's start";
  else if (d->kind == PAGE_FREE) wrong = "double free: block is already free";
  else if (d->kind == PAGE_INNER) wrong = "free of a pointer inside a block (not its start)";
  if (wrong == NULL) return d;
  error_misuse(wrong, p);
  return NULL;
}

/* ---- The invariant checker (debug builds and unit tests) ----------------- */

#define VERIFY(cond, what, where)                                                                                      \
  do {                                                                                                                 \
    if (!(cond)) error_fatal("heap check failed: " what, (where));                                                     \
  } while (0)

/* Checks the blocks of one region in address order; returns its free pages. */
static size_t verify_region(const region_t *r) {
  size_t free_pages = 0;
  for (size_t i = 0; i < BUDDY_REGION_PAGES;) {
    const page_desc_t *d = &r->pages[i];
    const void *at = r->base + (i << PAGE_SHIFT);
    VERIFY(d->kind != PAGE_INNER, "a block starts at an inner page", at);
    VERIFY(d->order <= BUDDY_MAX_ORDER, "order out of range", at);
    size_t n = (size_t)1 << d->order;
    VERIFY((i & (n - 1)) == 0, "block not aligned to its size", at);
    for (size_t j = 1; j < n && d->kind != PAGE_SLAB; j++)
      VERIFY(r->pages[i + j].kind == PAGE_INNER, "page inside a block is not inner", at);
    for (size_t j = 0; j < n && d->kind == PAGE_SLAB; j++)
      VERIFY(r->pages[i + j].kind == PAGE_SLAB && r->page_class[i + j] == r->page_class[i] &&
                 r->pages[i + j].order == d->order,
             "slab pages disagree", at);
    VERIFY(d->kind == PAGE_SLAB || r->page_class[i] == 0, "class set outside a slab", at);
    if (d->kind == PAGE_FREE) {
      free_pages += n;
      if (d->order < BUDDY_MAX_ORDER) {
        const page_desc_t *b = &r->pages[i ^ n];
        VERIFY(!(b->kind == PAGE_FREE && b->order == d->order), "free buddies not merged", at);
      }
    }
    i += n;
  }
  VERIFY(free_pages == r->free_pages, "region free page count wrong", r->base);
  return free_pages;
}

size_t buddy_heap_verify(const buddy_heap_t *h) {
  size_t free_pages = 0, regions = 0, regions_free = 0;
  for (const region_t *r = h->region_list; r != NULL; r = r->next) {
    VERIFY(r->heap == h && r->kind == CHUNK_REGION, "region not of this heap", r->base);
    free_pages += verify_region(r);
    regions++;
    regions_free += r->free_pages == BUDDY_REGION_PAGES;
  }
  size_t listed = 0;
  for (unsigned k = 0; k < BUDDY_ORDERS; k++) {
    size_t count = 0;
    const page_desc_t *head = &h->free_list[k];
    for (const page_desc_t *d = head->next; d != head; d = d->next) {
      VERIFY(d->kind == PAGE_FREE && d->order == k, "free list entry not a free block of its order",
             page_address_of(d));
      VERIFY(d->next->prev == d, "free list links broken", page_address_of(d));
      VERIFY(region_of_desc(d)->heap == h, "free block of a foreign region", page_address_of(d));
      count++;
      listed += (size_t)1 << k;
    }
    VERIFY(count == h->free_blocks[k], "free block count wrong", NULL);
  }
  VERIFY(listed == free_pages && free_pages == h->pages_free, "free page totals disagree", NULL);
  VERIFY(regions == h->regions && regions_free == h->regions_free, "region counts wrong", NULL);
  VERIFY(h->pages_free + h->pages_used == h->regions * BUDDY_REGION_PAGES, "page totals wrong", NULL);
  return free_pages;
}
