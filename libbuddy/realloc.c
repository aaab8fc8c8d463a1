/* realloc.c: buddy_realloc, in place wherever the block allows.
 *
 * Small blocks stay put while the new size fits their class and uses at least
 * half of it; page runs grow into free buddies above them and shrink by
 * splitting; huge blocks move with mremap. Otherwise: allocate, copy every
 * usable byte the new block can hold, free. A failed realloc leaves the old
 * block as it was. buddy_reallocarray too.
 */
#include "api.h"
#include "buddymalloc.h"

#include <errno.h>
#include <string.h>

/* A pointer that is not a live block (abort_on_error=0): fail, touch nothing. */
static void *realloc_refuse(void) {
  errno = EINVAL;
  return NULL;
}

static void *realloc_move(void *p, size_t old_usable, size_t size) {
  void *q = buddy_malloc(size);
  if (q == NULL) return NULL;
  memcpy(q, p, old_usable < size ? old_usable : size);
  buddy_free(p);
  return q;
}

/* A page run shrunk to this many orders below its own, or more, moves: split
 * in place, it would leave its freed upper buddies beside a live lower
 * part, unable to coalesce into a run of the old order again. A buffer grown
 * to 1 MB and shrunk to 40 KB to be kept (a string builder's shrink to fit)
 * then strands 960 KiB of dirty pages each: 1000 of them kept a peak of
 * 500 MB resident, against glibc's 42 MB. The copy is at most a quarter of
 * what the program wrote into the block to grow it. */
#define REALLOC_SHRINK_MOVE_ORDERS 2

/* A page run: same order, shrink, or grow in place when the buddies allow. */
static void *realloc_run(region_t *r, void *p, size_t usable, size_t size) {
  if (size <= SMALL_SIZE_MAX || size > MEDIUM_SIZE_MAX) return realloc_move(p, usable, size);
  unsigned order = buddy_order_for_pages((size + PAGE_SIZE - 1) >> PAGE_SHIFT);
  unsigned current = page_desc_of(r, p)->order;
  if (order + REALLOC_SHRINK_MOVE_ORDERS <= current) {
    void *q = realloc_move(p, usable, size);
    if (q != NULL) return q; /* else shrunk in place: a shrink never fails */
  }
  if (order < current) zone_shrink_run(r, p, order);
  if (order <= current || zone_grow_run(r, p, order)) {
    zone_run_move_tail(p, size); /* the tail check, at the new end */
    return p;
  }
  return realloc_move(p, usable, size);
}

static void *realloc_huge(huge_t *h, void *p, size_t size) {
  size_t usable = huge_usable_size(h, p);
  if (usable == 0) return realloc_refuse(); /* misuse, reported */
  /* A sampled block moves by copy, so that its free forgets the sample. */
  if (size <= MEDIUM_SIZE_MAX || h->sampled) return realloc_move(p, usable, size);
  void *q = huge_realloc(h, p, size);
  /* The pages could not move (no aligned room, or a block merged from two
   * kernel mappings): copy them. */
  return q != NULL ? q : realloc_move(p, usable, size);
}

/* Every realloc but the in-place one of buddy_realloc's fast path. */
static noinline void *realloc_checked(void *p, size_t size) {
  uintptr_t entry = pagemap_entry(p);
  if (entry == 0) {
    error_misuse("realloc of a pointer buddymalloc does not own", p);
    return realloc_refuse();
  }
  if (size == 0) { /* glibc: frees and returns NULL */
    buddy_free(p);
    return NULL;
  }
  if (size > (size_t)PTRDIFF_MAX) {
    alloc_usable_size(p); /* still reports a bad pointer */
    errno = ENOMEM;
    return NULL;
  }
  if (!pagemap_is_region(entry)) return realloc_huge(pagemap_huge(entry), p, size);
  region_t *r = pagemap_region(entry);
  unsigned cls = page_class_at(r, p);
  if (options.secure && cls != 0 && size_class_is_object(cls, p)) {
    /* Secure mode: the usable size is the request, 0 for malloc(0), which
     * the trailer records: a block stays for a request of its class, its
     * trailer rewritten (a string grown a byte at a time moved at every
     * step, copying all it held: quadratic). */
    size_t asked = secure_usable_small(p, cls);
    if (size == asked) return p;
    void *q = secure_resize_small(p, cls, size);
    return q != NULL ? q : realloc_move(p, asked, size);
  }
  /* A live page run (alloc_usable_size's test, made here once): a string
   * appended to past the small classes reallocs it at every step. */
  page_desc_t *d = page_desc_of(r, p);
  if (cls == 0 && !options.secure && zone_run_live_at(d, p)) return realloc_run(r, p, PAGE_SIZE << d->order, size);
  size_t usable = alloc_usable_size(p);
  if (usable == 0) return realloc_refuse(); /* misuse, reported */
  char *head = options.secure ? secure_run_head(r, p) : NULL;
  if (head != NULL) { /* secure mode's medium block, after its header page */
    void *q = secure_resize_run(r, p, head, size);
    return q != NULL ? q : realloc_move(p, usable, size);
  }
  if (cls == 0) return realloc_run(r, p, usable, size);
  /* In place only within the block's class, so that the size a program
   * gives free_sized or sized delete afterwards still names the class. */
  if (size <= usable && size_class_of(size) == cls) return p;
  return realloc_move(p, usable, size);
}

/* The common case first, as free's fast path finds it (no registers saved,
 * the rest a tail call): a small block (by the small map: a slab's object
 * start) that the new size keeps in its class. Anything else, and a block
 * whose second word holds the cache key (maybe freed), takes the checks. */
void *buddy_realloc(void *p, size_t size) {
  if (p == NULL) return buddy_malloc(size);
  size_t bin;
  if (likely(size - 1 < SMALL_SIZE_MAX) && small_map_object(p, &bin) && !options.secure &&
      size_class_of(size) == small_map_bin_class(bin) && !free_key_matches(((void **)p)[1]))
    return p;
  return realloc_checked(p, size);
}

void *buddy_reallocarray(void *ptr, size_t count, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(count, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  return buddy_realloc(ptr, total);
}
