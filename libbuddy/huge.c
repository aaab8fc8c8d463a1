/* huge.c: blocks above MEDIUM_SIZE_MAX, each in a mapping of its own.
 *
 * A huge block is mapped BUDDY_REGION_SIZE-aligned (or more, for larger
 * alignments), so it covers whole page-map slots, each of which points at its
 * huge_t, tagged (pagemap_huge_entry). The huge_t is a small object of zone 0.
 * realloc moves the pages with mremap, never copying.
 *
 * Freed blocks up to HUGE_CACHE_BLOCK_MAX wait in a cache for purge_delay_ms
 * before they are unmapped, still registered and marked `cached`, so that a
 * program that replaces large blocks reuses pages already faulted in rather
 * than faulting fresh ones (a page fault and the kernel's zeroing cost more
 * than the program's own memset of the block). A request takes the smallest
 * cached block that holds it. When the rest is itself a huge block, it is
 * split off (at a slot boundary) and stays cached, faulted in, for the next
 * request; a smaller rest (less than a slot, plus the request's rounding
 * to slots) stays with the block, faulted in, if it is at most the request
 * (HUGE_FIT_SLACK_SHARE), else it is unmapped. Freed blocks carved from one
 * mapping merge again when they meet in the cache. With no block large
 * enough, the largest is grown with mremap. The cache holds
 * HUGE_CACHE_SLOTS blocks and at most half the live huge bytes
 * (HUGE_CACHE_BYTES_MIN at least); the oldest go first. Those bounds are
 * what a program that replaces large buffers of random sizes needs to
 * fault in about as few pages as allocators that keep all freed pages
 * (docs/benchmarks.md: large-*); purge_delay_ms and malloc_trim still give
 * everything back. A mapping that fails for want of address space
 * (RLIMIT_AS) is tried again once the cache is emptied (alloc.c). A second
 * free of a cached block is a double free.
 *
 * Checks on the way (fill.c): a live block holds FILL_TAIL in the bytes
 * just past the request (huge_arm_tail), checked when it is freed (a write
 * past its end); a freed block's first HUGE_FREED_FILL bytes hold
 * FILL_FREED while it is cached, checked when it is taken again or unmapped
 * (a write after free). Both cost a page's memset and compare at most, on
 * paths that map, unmap or fault pages anyway.
 *
 * Secure mode (secure=1) maps each block with an inaccessible page before
 * and after it (guarded), which a write before the start or past the end
 * meets, and makes a freed block inaccessible while it is cached (sealed),
 * so that a read or a write after its free faults: huge_fault reports both
 * from the SIGSEGV handler. Such a block is
 * reused from the cache only for a request of its exact length, once
 * HUGE_SECURE_DELAY blocks were freed after it (a write through a stale
 * pointer then finds it still cached: its fill is checked when it is
 * taken, unmapped, or at exit), and moves by copying, never by mremap, so
 * that its guards stay where they are.
 *
 * The cache's lock is a leaf (lock.h): blocks are split, merged, registered
 * and unmapped out of the cache, with the lock released.
 */
#include "huge.h"

#include <stdio.h>
#include <string.h>

#define HUGE_CACHE_SLOTS 16
#define HUGE_CACHE_BLOCK_MAX ((size_t)64 << 20)
#define HUGE_CACHE_BYTES_MIN ((size_t)128 << 20)
_Static_assert(HUGE_CACHE_BLOCK_MAX <= HUGE_CACHE_BYTES_MIN, "a cacheable block fits the cache alone");
#define HUGE_CACHE_LIVE_SHARE 2   /* the cache holds at most live bytes / this */
#define HUGE_FIT_SLACK_SHARE 1    /* a block keeps up to length / this more than asked */
#define HUGE_FREED_FILL PAGE_SIZE /* bytes of a cached block's start that hold FILL_FREED */
#define HUGE_SECURE_DELAY 4       /* secure mode: blocks freed since, before a cached one is reused */

static struct huge_cache {
  pthread_mutex_t lock;
  huge_t *slot[HUGE_CACHE_SLOTS];       /* NULL or a cached block */
  uint64_t freed_ns[HUGE_CACHE_SLOTS];  /* for expiry (a coarse clock) */
  uint64_t put_order[HUGE_CACHE_SLOTS]; /* for eviction: the lowest goes first */
  uint64_t puts;
} huge_cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

size_t huge_cached_bytes;
/* Atomic counters: live huge blocks and their bytes, and blocks handed out. */
size_t huge_live_blocks, huge_live_bytes;
uint64_t huge_requests;

/* Whole pages, at least one (an aligned request may ask for 0 bytes). */
static size_t huge_round(size_t size) {
  return size == 0 ? PAGE_SIZE : (size + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
}

size_t huge_descriptors;

static huge_t *huge_desc_alloc(void) {
  void *list = NULL;
  if (zone_alloc_objects(&zones[0], HUGE_DESC_CLASS, &list, 1) == 0) return NULL;
  __atomic_add_fetch(&huge_descriptors, 1, __ATOMIC_RELAXED);
  return list;
}

static void huge_desc_free(huge_t *h) {
  __atomic_sub_fetch(&huge_descriptors, 1, __ATOMIC_RELAXED);
  zone_free_small(h);
}

/* ---- The checks (fill.c) ------------------------------------------------ */

/* Fills the bytes past `asked` that the check covers. */
static void huge_arm_tail(huge_t *h, size_t asked) {
  h->tail = (uint8_t)fill_tail_arm(h->base, asked, h->size);
  h->asked = asked;
}

static void huge_check_tail(const huge_t *h) {
  fill_tail_check(h->base + h->asked, h->tail,
                  "heap overflow: a write past the end of a large block, found when it was freed", h->size, h->asked);
}

/* A block going into the cache: its start is filled, or, in secure mode,
 * its pages made inaccessible (sealed) so that a read or a write through a
 * stale pointer faults at once (huge_fault reports it); where that fails
 * (the kernel's count of mappings), filled as in the default mode. */
static void huge_fill_freed(huge_t *h) {
  if (h->guarded && os_make_guard(h->base, h->size)) {
    h->sealed = true;
    return;
  }
  memset(h->base, FILL_FREED, HUGE_FREED_FILL);
  h->freed_fill = true;
}

/* A sealed block leaving the cache for the program: its pages are made
 * accessible again (they hold what they held at its free). False if that
 * fails: the caller unmaps it. */
static bool huge_unseal(huge_t *h) {
  if (!h->sealed) return true;
  if (!os_make_writable(h->base, h->size)) return false;
  h->sealed = false;
  return true;
}

/* A cached block leaving the cache (taken or unmapped): its start must still
 * hold the fill. */
static void huge_check_freed(huge_t *h) {
  if (!h->freed_fill) return;
  h->freed_fill = false;
  const unsigned char *bad = fill_find_other(h->base, HUGE_FREED_FILL, FILL_FREED);
  if (unlikely(bad != NULL)) error_misuse_block("use after free: a freed large block was written to", bad, h->size, 0);
}

/* The mapping of a block of `length` bytes at base, with its guard pages if
 * it has them (secure mode). */
static void huge_unmap_pages(char *base, size_t length, bool guarded) {
  if (guarded) os_unmap(base - PAGE_SIZE, length + 2 * PAGE_SIZE);
  else os_unmap(base, length);
}

static void huge_unmap(huge_t *h) {
  huge_check_freed(h);
  pagemap_unregister(h->base, h->size);
  huge_unmap_pages(h->base, h->size, h->guarded);
  huge_desc_free(h);
}

static void huge_count(huge_t *h, bool live) {
  size_t blocks = live ? 1 : (size_t)-1, bytes = live ? h->size : 0 - h->size;
  __atomic_add_fetch(&huge_live_blocks, blocks, __ATOMIC_RELAXED);
  __atomic_add_fetch(&huge_live_bytes, bytes, __ATOMIC_RELAXED);
  heap_bytes_note(live ? (long)h->size : -(long)h->size);
}

/* ---- The cache ----------------------------------------------------------- */

/* Under the cache's lock: removes slot i's block. */
static huge_t *huge_cache_remove_locked(int i) {
  huge_t *h = huge_cache.slot[i];
  huge_cache.slot[i] = NULL;
  __atomic_sub_fetch(&huge_cached_bytes, h->size, __ATOMIC_RELAXED);
  return h;
}

/* Takes the smallest cached block of at least `length`, else the largest
 * below it (grown with mremap); NULL if the cache is empty. */
static huge_t *huge_cache_take(size_t length) {
  lock_take(&huge_cache.lock);
  int best = -1;
  for (int i = 0; i < HUGE_CACHE_SLOTS; i++) {
    huge_t *h = huge_cache.slot[i];
    if (h == NULL) continue;
    if (h->guarded && h->size != length) continue; /* its guards stay */
    /* Secure mode: the last blocks freed wait (a quarantine) */
    if (h->guarded && huge_cache.put_order[i] + HUGE_SECURE_DELAY > huge_cache.puts) continue;
    huge_t *b = best < 0 ? NULL : huge_cache.slot[best];
    bool fits = h->size >= length, best_fits = b != NULL && b->size >= length;
    if (b == NULL || (fits && (!best_fits || h->size < b->size)) || (!fits && !best_fits && h->size > b->size))
      best = i;
  }
  huge_t *h = best < 0 ? NULL : huge_cache_remove_locked(best);
  lock_release(&huge_cache.lock);
  return h;
}

static void huge_cache_put(huge_t *h);

/* Splits h (out of the cache) after `front` bytes, a slot multiple: the rest
 * becomes a cached block of its own, pages and all. False (h unchanged) if
 * no descriptor could be had. */
static bool huge_split(huge_t *h, size_t front) {
  huge_t *rest = huge_desc_alloc();
  if (rest == NULL) return false;
  *rest = (huge_t){
      .kind = CHUNK_HUGE, .cached = true, .base = h->base + front, .size = h->size - front, .mapping = h->mapping};
  h->size = front;
  /* Its slots were h's, and stay mapped: re-pointing them cannot fail. */
  if (!pagemap_register(rest->base, rest->size, pagemap_huge_entry(rest)))
    error_fatal("page map out of memory while splitting a huge block", rest->base);
  huge_cache_put(rest);
  return true;
}

/* Fits a cached block to `length`; false (block unmapped) if that fails. */
static bool huge_fit(huge_t *h, size_t length) {
  size_t slots = (length + BUDDY_REGION_SIZE - 1) & ~(BUDDY_REGION_SIZE - 1);
  if (h->size > slots && h->size - slots > MEDIUM_SIZE_MAX && huge_split(h, slots)) return true;
  if (h->size > length && h->size - length <= length / HUGE_FIT_SLACK_SHARE) return true; /* kept, faulted in */
  if (h->size > length) {
    /* Keep the slots the shorter block still covers registered. */
    pagemap_unregister(h->base, h->size);
    os_unmap(h->base + length, h->size - length);
    h->size = length;
  } else if (h->size < length) {
    pagemap_unregister(h->base, h->size);
    char *moved = os_remap_aligned(h->base, h->size, length, BUDDY_REGION_SIZE);
    if (moved == NULL) {
      os_unmap(h->base, h->size);
      huge_desc_free(h);
      return false;
    }
    if (moved != h->base) h->mapping = moved;
    h->base = moved;
    h->size = length;
  } else {
    return true;
  }
  if (pagemap_register(h->base, h->size, pagemap_huge_entry(h))) return true;
  os_unmap(h->base, h->size);
  huge_desc_free(h);
  return false;
}

/* Unmaps cached blocks freed more than purge_delay_ms ago (all if `all`). */
static void huge_cache_expire(bool all) {
  huge_t *expired[HUGE_CACHE_SLOTS];
  int n = 0;
  uint64_t now = os_now_ns(), delay = (uint64_t)options.purge_delay_ms * 1000000u;
  lock_take(&huge_cache.lock);
  for (int i = 0; i < HUGE_CACHE_SLOTS; i++)
    if (huge_cache.slot[i] != NULL && (all || now - huge_cache.freed_ns[i] >= delay))
      expired[n++] = huge_cache_remove_locked(i);
  lock_release(&huge_cache.lock);
  while (n > 0) huge_unmap(expired[--n]);
}

/* Under the cache's lock: takes out the cached block that ends where h
 * starts, or starts where h ends, carved from h's mapping; NULL if none. */
static huge_t *huge_cache_neighbour_locked(const huge_t *h) {
  for (int i = 0; i < HUGE_CACHE_SLOTS; i++) {
    huge_t *c = huge_cache.slot[i];
    if (c != NULL && c->mapping == h->mapping && (c->base + c->size == h->base || h->base + h->size == c->base))
      return huge_cache_remove_locked(i);
  }
  return NULL;
}

/* Merges c, h's neighbour, into one block (whichever starts first); returns it. */
static huge_t *huge_merge(huge_t *h, huge_t *c) {
  huge_t *low = c->base < h->base ? c : h, *high = low == c ? h : c;
  /* Their slots stay mapped: re-pointing them cannot fail. */
  if (!pagemap_register(high->base, high->size, pagemap_huge_entry(low)))
    error_fatal("page map out of memory while merging huge blocks", high->base);
  low->size += high->size;
  huge_desc_free(high);
  return low;
}

/* The most the cache may hold: a share of the live huge bytes, and a floor. */
static size_t huge_cache_bytes_max(void) {
  size_t share = __atomic_load_n(&huge_live_bytes, __ATOMIC_RELAXED) / HUGE_CACHE_LIVE_SHARE;
  return share > HUGE_CACHE_BYTES_MIN ? share : HUGE_CACHE_BYTES_MIN;
}

/* Parks h (marked cached, out of any slot) in the cache, merged with the
 * blocks of its mapping it meets there, or unmaps it if it is larger than
 * HUGE_CACHE_BLOCK_MAX or purge_delay_ms is 0; the oldest blocks leave
 * (unmapped) while the cache is over its bounds. */
static void huge_cache_put(huge_t *h) {
  huge_t *neighbour, *evicted[HUGE_CACHE_SLOTS];
  for (;;) {
    lock_take(&huge_cache.lock);
    neighbour = huge_cache_neighbour_locked(h);
    if (neighbour == NULL) break; /* still locked */
    lock_release(&huge_cache.lock);
    h = huge_merge(h, neighbour);
  }
  /* Too large to cache (freed so, or merged past it: a piece had grown in
   * place), or no caching at all. */
  if (h->size > HUGE_CACHE_BLOCK_MAX || options.purge_delay_ms == 0) {
    lock_release(&huge_cache.lock);
    return huge_unmap(h);
  }
  int n = 0, slot = -1;
  size_t bytes_max = huge_cache_bytes_max();
  for (;;) {
    int oldest = -1;
    slot = -1;
    for (int i = 0; i < HUGE_CACHE_SLOTS; i++) {
      if (huge_cache.slot[i] == NULL) slot = slot < 0 ? i : slot;
      else if (oldest < 0 || huge_cache.put_order[i] < huge_cache.put_order[oldest]) oldest = i;
    }
    bool over = __atomic_load_n(&huge_cached_bytes, __ATOMIC_RELAXED) + h->size > bytes_max;
    if ((slot >= 0 && !over) || oldest < 0) break;
    evicted[n++] = huge_cache_remove_locked(oldest);
  }
  /* A slot is free: the cache was emptied if need be, and h, of at most
   * HUGE_CACHE_BLOCK_MAX, fits the bound alone. */
  assert_internal(slot >= 0 && h->size <= bytes_max);
  huge_cache.slot[slot] = h;
  huge_cache.freed_ns[slot] = os_now_ns();
  huge_cache.put_order[slot] = ++huge_cache.puts;
  __atomic_add_fetch(&huge_cached_bytes, h->size, __ATOMIC_RELAXED);
  lock_release(&huge_cache.lock);
  while (n > 0) huge_unmap(evicted[--n]);
}

/* fork(): the cache lock is a leaf (nothing is locked while it is held), so
 * it is taken last and re-made in the child. */
void huge_fork_prepare(void) {
  lock_take(&huge_cache.lock);
}

void huge_fork_parent(void) {
  lock_release(&huge_cache.lock);
}

void huge_fork_child(void) {
  lock_reset(&huge_cache.lock, NULL);
}

/* The heap map's line for huge blocks: their count and bytes. Huge blocks
 * are not kept on any list (only counted), so the map gives totals. */
void huge_write_map(int fd) {
  char line[96];
  int len = snprintf(line, sizeof line, "huge-live %zu %zu\n", __atomic_load_n(&huge_live_blocks, __ATOMIC_RELAXED),
                     __atomic_load_n(&huge_live_bytes, __ATOMIC_RELAXED));
  os_write_fd(fd, line, (size_t)len);
}

void huge_trim(void) {
  huge_cache_expire(true);
}

void huge_expire(void) {
  if (__atomic_load_n(&huge_cached_bytes, __ATOMIC_RELAXED) != 0) huge_cache_expire(false);
}

/* ---- Allocation ---------------------------------------------------------- */

/* Secure mode: [base - PAGE_SIZE, base + length + PAGE_SIZE) mapped, its
 * first and last pages made guards; NULL if that fails. */
static char *huge_map_guarded(size_t length, size_t align) {
  char *base = os_map_aligned_with_prefix(PAGE_SIZE, length + PAGE_SIZE, align);
  if (base == NULL) return NULL;
  if (os_make_guard(base - PAGE_SIZE, PAGE_SIZE) && os_make_guard(base + length, PAGE_SIZE)) return base;
  huge_unmap_pages(base, length, true);
  return NULL;
}

static void *huge_map_new(size_t length, size_t align) {
  huge_t *h = huge_desc_alloc();
  if (h == NULL) return NULL;
  align = align > BUDDY_REGION_SIZE ? align : BUDDY_REGION_SIZE;
  bool guarded = options.secure != 0;
  char *base = guarded ? huge_map_guarded(length, align) : os_map_aligned(length, align);
  if (base == NULL) {
    huge_desc_free(h);
    return NULL;
  }
  *h = (huge_t){.kind = CHUNK_HUGE, .guarded = guarded, .base = base, .size = length, .mapping = base};
  if (!pagemap_register(base, length, pagemap_huge_entry(h))) {
    huge_unmap_pages(base, length, guarded);
    huge_desc_free(h);
    return NULL;
  }
  huge_count(h, true);
  return base;
}

static void *huge_alloc_block(size_t size, size_t align, bool *zeroed) {
  size_t length = huge_round(size);
  if (length < size) return NULL;
  huge_cache_expire(false);
  if (align <= BUDDY_REGION_SIZE) {
    huge_t *h = huge_cache_take(length);
    if (h != NULL) huge_check_freed(h);
    if (h != NULL && !huge_unseal(h)) {
      huge_unmap(h);
      h = NULL;
    }
    if (h != NULL && huge_fit(h, length)) {
      h->cached = false;
      huge_count(h, true);
      *zeroed = false;
      return h->base;
    }
  }
  *zeroed = true;
  return huge_map_new(length, align);
}

void *huge_alloc(size_t size, size_t align, bool *zeroed) {
  void *p = huge_alloc_block(size, align, zeroed);
  if (p == NULL) return NULL;
  __atomic_fetch_add(&huge_requests, 1, __ATOMIC_RELAXED);
  huge_arm_tail(pagemap_huge(pagemap_entry(p)), size);
  return p;
}

/* False after reporting misuse: p is not this live huge block's start. */
static bool huge_check(huge_t *h, const void *p, const char *what) {
  if (p != h->base) error_misuse(what, p);
  else if (h->cached) error_misuse("double free: huge block is already free", p);
  else return true;
  return false;
}

void huge_free(huge_t *h, void *p) {
  if (!huge_check(h, p, "free of a pointer inside a huge block (not its start)")) return;
  if (h->tail != 0) huge_check_tail(h);
  h->tail = 0;
  huge_count(h, false);
  huge_fill_freed(h);
  h->cached = true;
  huge_cache_put(h);
  huge_cache_expire(false);
}

size_t huge_usable_size(huge_t *h, const void *p) {
  return huge_check(h, p, "malloc_usable_size of a pointer inside a huge block") ? h->size : 0;
}

void *huge_realloc(huge_t *h, void *p, size_t size) {
  if (!huge_check(h, p, "realloc of a pointer inside a huge block (not its start)")) return NULL;
  size_t length = huge_round(size);
  if (h->guarded && length != h->size) return NULL; /* copied instead: the guards stay */
  if (length == h->size) {
    huge_arm_tail(h, size);
    return p;
  }
  pagemap_unregister(h->base, h->size);
  char *moved = os_remap_aligned(h->base, h->size, length, BUDDY_REGION_SIZE);
  if (moved != NULL) {
    __atomic_add_fetch(&huge_live_bytes, length - h->size, __ATOMIC_RELAXED);
    heap_bytes_note((long)length - (long)h->size);
    if (moved != h->base) h->mapping = moved;
    h->base = moved;
    h->size = length;
    huge_arm_tail(h, size);
  }
  /* Re-registers the old mapping if the move failed: it is intact. */
  if (!pagemap_register(h->base, h->size, pagemap_huge_entry(h)))
    error_fatal("page map out of memory while moving a huge block", p);
  return moved;
}

/* ---- Guard pages (secure mode) -------------------------------------------- */

/* A fault at addr: in a sealed block (a use after free), or in the guard
 * page just before or just after a guarded huge block (a write before its
 * start or past its end), reported (the program stops there). Called from the SIGSEGV handler: it reads the page
 * map only, and writes the report with write(2). */
void huge_fault(void *addr) {
  char *page = (char *)((uintptr_t)addr & ~(uintptr_t)(PAGE_SIZE - 1));
  uintptr_t at = pagemap_entry(page), after = pagemap_entry(page + PAGE_SIZE), before = pagemap_entry(page - PAGE_SIZE);
  huge_t *h = at != 0 && !pagemap_is_region(at) ? pagemap_huge(at) : NULL;
  if (h != NULL && h->sealed && page >= h->base && page < h->base + h->size)
    error_fatal_block("use after free: a freed large block was read or written (it is sealed while cached)", addr,
                      h->size, 0);
  h = after != 0 && !pagemap_is_region(after) ? pagemap_huge(after) : NULL;
  if (h != NULL && h->guarded && h->base == page + PAGE_SIZE)
    error_fatal_block("heap underflow: a write before the start of a large block (its guard page)", addr, h->size,
                      h->tail != 0 ? h->asked : 0);
  h = before != 0 && !pagemap_is_region(before) ? pagemap_huge(before) : NULL;
  if (h != NULL && h->guarded && h->base + h->size == page)
    error_fatal_block("heap overflow: a write past the end of a large block (its guard page)", addr, h->size,
                      h->tail != 0 ? h->asked : 0);
}

/* Secure mode, at exit: the cached blocks' fill is checked (a write after
 * free that no reuse met). */
__attribute__((destructor)) startup_code static void huge_check_at_exit(void) {
  /* A trylock, as secure.c's check at exit: the lock may be held for good
   * in a child forked by a signal handler (fork.c). */
  if (!options.secure || !lock_try(&huge_cache.lock)) return;
  for (int i = 0; i < HUGE_CACHE_SLOTS; i++)
    if (huge_cache.slot[i] != NULL) huge_check_freed(huge_cache.slot[i]);
  lock_release(&huge_cache.lock);
}
