/* alloc.c: the allocating half of the public API.
 *
 * Routing by size: up to SMALL_SIZE_MAX a size class served by the thread's
 * cache (alloc_fast() in api.h, inlined here and into the shim's
 * malloc), up to MEDIUM_SIZE_MAX a page run from the home zone's buddy heap,
 * beyond that a mapping of its own (huge.c).
 */
#include "api.h"
#include "buddymalloc.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

/* Requests above this cannot be met (glibc's limit too: PTRDIFF_MAX). */
#define ALLOC_SIZE_LIMIT ((size_t)PTRDIFF_MAX)

static void *alloc_fail(void) {
  errno = ENOMEM;
  return NULL;
}

/* A mapping failed (out of address space: RLIMIT_AS, or the kernel's count
 * of mappings): a zone's region for small and medium blocks, or a huge
 * block's own. Freed memory kept mapped for reuse holds address space that
 * the program may have again, as glibc's malloc gives it (tests/hang:
 * rlimit_reuse): the freed huge blocks waiting in their cache, and the
 * regions that the calling thread's cached blocks, secure mode's
 * quarantines, the zones' transfer stacks and empty slabs leave wholly
 * free, go back to the OS so that the caller can try once more. False if
 * none did. */
static bool alloc_unmap_freed(void) {
  /* A signal handler's malloc whose thread was inside a locked section: the
   * locks here could be the ones its interrupted frame holds. */
  if (lock_depth != 0) return false;
  bool huge = __atomic_load_n(&huge_cached_bytes, __ATOMIC_RELAXED) != 0;
  if (huge) huge_trim();
  tcache_flush_current();
  /* Secure mode: the quarantines' delay before reuse gives way to the
   * program's memory (the thread's batch went in with the flush). */
  bool drained = options.secure && secure_drain_quarantines();
  return zone_unmap_free_all() || huge || drained;
}

static void *alloc_block_once(size_t size, size_t align, unsigned order, bool *fresh, bool sampled) {
  if (order > BUDDY_MAX_ORDER) {
    void *p = huge_alloc(size, align, fresh);
    if (p != NULL && sampled) pagemap_huge(pagemap_entry(p))->sampled = true;
    return p;
  }
  zone_t *z = tcache_home_zone(tcache_get());
  return sampled ? zone_alloc_sampled_run(z, order, fresh) : zone_alloc_run(z, order, fresh);
}

/* A medium or huge block of `order` (huge: above BUDDY_MAX_ORDER); a
 * sampled one is flagged, so that its free forgets its sample (prof.c). */
static void *alloc_block(size_t size, size_t align, unsigned order, bool *fresh, bool sampled) {
  void *p = alloc_block_once(size, align, order, fresh, sampled);
  if (p == NULL && alloc_unmap_freed()) p = alloc_block_once(size, align, order, fresh, sampled);
  return p;
}

/* Records the sampled block p of `bytes`, a page run or huge block of
 * `order` (prof.c), and keeps the record with it for its free. */
static void alloc_note_sample(void *p, size_t bytes, unsigned order) {
  prof_record_t sample = {.bytes = bytes, .stack = prof_note(bytes)};
  if (order > BUDDY_MAX_ORDER) pagemap_huge(pagemap_entry(p))->sample = sample;
  else zone_run_keep_sample(p, sample);
}

/* A page run of at least `size` bytes or a huge block, aligned to `align`.
 * With sampling on, it counts towards the thread's sample point for large
 * blocks (prof_large_due). */
static void *alloc_run_or_huge(size_t size, size_t align, bool *zeroed) {
  size_t pages = (size + PAGE_SIZE - 1) >> PAGE_SHIFT;
  unsigned order = buddy_order_for_pages(pages);
  unsigned align_order = align > PAGE_SIZE ? buddy_order_for_pages(align >> PAGE_SHIFT) : 0;
  if (align_order > order) order = align_order;
  bool fresh = true;
  bool sampled = unlikely(options_sampling()) && prof_large_due(size);
  void *p = alloc_block(size, align, order, &fresh, sampled);
  if (p == NULL) return alloc_fail();
  if (order <= BUDDY_MAX_ORDER) zone_run_arm_tail(p, size); /* huge_alloc arms its own */
  if (sampled) alloc_note_sample(p, size, order);
  if (zeroed != NULL) *zeroed = fresh;
  return p;
}

/* Medium and huge blocks, aligned to at least `align` (a power of two).
 * Secure mode gives a medium block a header page before it, and a huge
 * block its descriptor, that keep the block's kind (secure.c). */
noinline void *alloc_large(size_t size, size_t align, bool *zeroed, secure_kind_t kind) {
  if (size > ALLOC_SIZE_LIMIT) return alloc_fail();
  runtime_enter(); /* start-up, even if no small block came first */
  if (likely(!options.secure)) return alloc_run_or_huge(size, align, zeroed);
  if (align <= PAGE_SIZE && size <= MEDIUM_SIZE_MAX - PAGE_SIZE) {
    void *head = alloc_run_or_huge(size + PAGE_SIZE, PAGE_SIZE, zeroed);
    return head != NULL ? secure_header_run(head, kind) : NULL;
  }
  void *p = alloc_run_or_huge(size, align, zeroed);
  uintptr_t entry = p != NULL ? pagemap_entry(p) : 0;
  if (entry != 0 && !pagemap_is_region(entry)) pagemap_huge(entry)->made = (uint8_t)(kind + 1);
  return p;
}

/* Secure mode (secure.c): a small block with its canary, if a class holds
 * both, else a page run or a huge block (checked as in the default mode). */
static noinline void *alloc_secure(size_t size, size_t align, secure_kind_t kind) {
  unsigned cls = secure_class(size, align);
  if (cls == 0) return alloc_large(size, align < PAGE_SIZE ? PAGE_SIZE : align, NULL, kind); /* retries itself */
  int saved = errno;
  void *p = secure_alloc_small(cls, size, kind);
  if (unlikely(p == NULL) && alloc_unmap_freed()) {
    errno = saved;
    p = secure_alloc_small(cls, size, kind);
  }
  return p;
}

/* Sampling on, class cls's sampling stack ran empty (tcache_prof.c): the
 * allocation is served by the cache, or it is the sample, served from a
 * page run of its own (as tcmalloc serves sampled objects from a span of
 * their own) so that free's fast path never sees it: its free, through
 * free_not_small_object, finds the run's flag. */
static noinline void *alloc_small_sampling(unsigned cls) {
  void *p = tcache_alloc_slow(cls);
  if (p != TCACHE_SAMPLE) return p;
  size_t size = size_class_bytes[cls];
  bool fresh;
  p = alloc_block(size, PAGE_SIZE, alloc_sampled_order(cls), &fresh, true);
  if (p == NULL) return alloc_fail();
  zone_run_arm_tail(p, size);
  alloc_note_sample(p, size, alloc_sampled_order(cls));
  return p;
}

/* The slow path of alloc_fast (api.h): into the runtime first, then the
 * thread's cache (secure mode: every small malloc, its bins being empty).
 * Entered held (tcache_hold); tcache_alloc_slow releases. */
noinline void *alloc_small_slow(size_t size, unsigned cls, secure_kind_t kind) {
  runtime_enter_counted();
  if (unlikely(options.secure)) {
    tcache_release();
    return alloc_secure(size, SMALL_ALIGN, kind);
  }
  if (unlikely(options_sampling())) return alloc_small_sampling(cls);
  int saved = errno;
  void *p = tcache_alloc_slow(cls);
  if (unlikely(p == NULL) && alloc_unmap_freed()) {
    errno = saved;
    tcache_hold(); /* tcache_alloc_slow released */
    p = tcache_alloc_slow(cls);
  }
  return p;
}

void *buddy_malloc(size_t size) {
  return alloc_fast(size);
}

/* calloc's zeroing of a block that was not fresh: a huge one (a cached
 * block taken again, its pages faulted in) has its whole pages purged, so
 * that they read as zero and only those the program touches come back (a
 * program that callocs a large table and uses a part of it keeps that part
 * resident, not the table: jemalloc does likewise); the bytes past the last
 * whole page, where the block's tail pattern follows the request, are
 * written. Anything else is written. */
static void alloc_zero_reused(void *p, size_t total) {
  char *start = p, *end = start + total, *pages_end = (char *)((uintptr_t)end & ~(uintptr_t)(PAGE_SIZE - 1));
  if (total > MEDIUM_SIZE_MAX && pages_end > start && os_purge(start, (size_t)(pages_end - start), false)) {
    memset(pages_end, 0, (size_t)(end - pages_end));
    return;
  }
  memset(p, 0, total);
}

void *buddy_calloc(size_t count, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(count, size, &total)) return alloc_fail();
  if (total <= SMALL_SIZE_MAX) {
    void *p = buddy_malloc(total);
    if (p != NULL) memset(p, 0, total);
    return p;
  }
  bool zeroed = false;
  void *p = alloc_large(total, PAGE_SIZE, &zeroed, SECURE_MALLOC);
  if (p != NULL && !zeroed) alloc_zero_reused(p, total);
  return p;
}

/* The smallest class of at least `size` bytes whose objects are all aligned
 * to `alignment` (<= PAGE_SIZE): slabs start page-aligned and objects sit at
 * multiples of the class size. 0 if no small class fits. */
static unsigned alloc_aligned_class(size_t size, size_t alignment) {
  if (size > SMALL_SIZE_MAX || alignment > PAGE_SIZE) return 0;
  for (unsigned c = size_class_of(size < alignment ? alignment : size); c < SIZE_CLASS_COUNT; c++)
    if (size_class_bytes[c] % alignment == 0) return c;
  return 0;
}

/* alignment: a power of two. */
void *alloc_aligned(size_t alignment, size_t size) {
  if (alignment <= SMALL_ALIGN) return buddy_malloc(size);
  if (unlikely(options.secure)) {
    runtime_enter();
    return alloc_secure(size, alignment, SECURE_MALLOC);
  }
  unsigned cls = alloc_aligned_class(size, alignment);
  if (cls != 0) return buddy_malloc(size_class_bytes[cls]);
  return alloc_large(size, alignment, NULL, SECURE_MALLOC);
}

int buddy_posix_memalign(void **out, size_t alignment, size_t size) {
  if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0) return EINVAL;
  int saved = errno;
  void *p = alloc_aligned(alignment, size);
  errno = saved;
  if (p == NULL) return ENOMEM;
  *out = p;
  return 0;
}

void *buddy_aligned_alloc(size_t alignment, size_t size) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
    errno = EINVAL;
    return NULL;
  }
  return alloc_aligned(alignment, size);
}

/* glibc's memalign accepts any alignment: it rounds up to a power of two,
 * and fails with EINVAL above the largest one. */
void *buddy_memalign(size_t alignment, size_t size) {
  if (alignment > SIZE_MAX / 2 + 1) {
    errno = EINVAL;
    return NULL;
  }
  if ((alignment & (alignment - 1)) != 0) alignment = (size_t)1 << (64 - __builtin_clzl(alignment));
  return alloc_aligned(alignment, size);
}

void *buddy_valloc(size_t size) {
  return alloc_aligned(PAGE_SIZE, size);
}

void *buddy_pvalloc(size_t size) {
  size_t rounded = (size + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
  if (rounded < size) return alloc_fail();
  return alloc_aligned(PAGE_SIZE, rounded == 0 ? PAGE_SIZE : rounded);
}

/* ---- Usable size --------------------------------------------------------- */

/* 0 for a pointer that is not a live block (after reporting it). */
size_t alloc_usable_size(const void *p) {
  uintptr_t entry = pagemap_entry(p);
  if (entry == 0) {
    error_misuse("malloc_usable_size of a pointer buddymalloc does not own", p);
    return 0;
  }
  if (!pagemap_is_region(entry)) return huge_usable_size(pagemap_huge(entry), p);
  region_t *r = pagemap_region(entry);
  page_desc_t *d = page_desc_of(r, p);
  unsigned cls = page_class_of_desc(d);
  if (cls != 0) {
    if (size_class_is_object_start(cls, slab_offset_of(d, p)))
      return options.secure ? secure_usable_small((void *)p, cls) : size_class_bytes[cls];
    error_misuse("malloc_usable_size of a pointer inside a small block", p);
    return 0;
  }
  if (zone_run_live_at(d, p)) return PAGE_SIZE << d->order;
  const char *head = options.secure ? secure_run_head(r, (void *)p) : NULL;
  if (head != NULL) return (PAGE_SIZE << page_desc_of(r, head)->order) - PAGE_SIZE;
  error_misuse("malloc_usable_size of a pointer that is not a live block", p);
  return 0;
}

/* The program may use every usable byte it was told of: a medium or huge
 * block's tail is not checked any more (run.c, huge.c). */
size_t buddy_malloc_usable_size(void *p) {
  size_t usable = p == NULL ? 0 : alloc_usable_size(p);
  if (usable == 0) return 0;
  uintptr_t entry = pagemap_entry(p);
  if (!pagemap_is_region(entry)) pagemap_huge(entry)->tail = 0;
  else if (page_class_at(pagemap_region(entry), p) == 0) {
    void *head = options.secure ? secure_run_head(pagemap_region(entry), p) : NULL;
    zone_run_disarm_tail(head != NULL ? head : p);
  }
  return usable;
}

/* Formatted into a block of the longest report's size, then copied into
 * one that fits: no lock, and nothing static to re-make in a fork child. */
char *buddy_stats_json(void) {
  char *text = buddy_malloc(STATS_TEXT_MAX + 1);
  if (text == NULL) return NULL;
  size_t n = stats_format_json(text, STATS_TEXT_MAX);
  text[n] = '\0';
  char *fitted = buddy_malloc(n + 1);
  if (fitted != NULL) memcpy(fitted, text, n + 1);
  buddy_free(text);
  return fitted;
}

int buddy_prof_dump(const char *path) {
  if (path == NULL) return -1;
  return prof_dump(path) ? 0 : -1;
}

int buddy_trim(size_t pad) {
  (void)pad;
  tcache_flush_current();
  huge_trim();
  return zone_trim_all();
}
