/* internal.h: the static inline fast paths and every internal declaration.
 *
 * Files and their prefixes: buddy.c (buddy_heap_, the page-level core),
 * pagemap.c (pagemap_), sizeclass.c (size_class_), slab.c (slab_), zone.c
 * (zone_), huge.c (huge_), tcache.c (tcache_), alloc.c / free.c / realloc.c
 * (the public buddy_* API), error.c (error_), os_linux.c (os_).
 * Everything declared here has hidden visibility: meson sets it for the
 * definitions, and the pragma below tells every user, so that the fast paths
 * address tables and keys directly rather than through the GOT.
 */
#ifndef BUDDY_INTERNAL_H
#define BUDDY_INTERNAL_H

#include "lock.h"
#include "os.h"
#include "types.h"

#include <stdint.h>

#pragma GCC visibility push(hidden)

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define noinline __attribute__((__noinline__))
#define cold_path __attribute__((__noinline__, __cold__))

/* Whether p is among ptrs[0..count): the scan that confirms a suspected
 * double free in a bin, a remote batch or a transfer stack. */
static inline bool pointers_hold(void *const *ptrs, size_t count, const void *p) {
  for (size_t i = 0; i < count; i++)
    if (ptrs[i] == p) return true;
  return false;
}

/* ---- Debug levels (constants, so every variant is compiled) -------------- */

#ifndef BUDDY_DEBUG_LEVEL
#define BUDDY_DEBUG_LEVEL 0
#endif
static const int debug_level = BUDDY_DEBUG_LEVEL;

_Noreturn void error_assert_failed(const char *cond, const char *file, int line);

/* Level 2: internal invariants; level 3: expensive whole-structure walks. */
#define assert_internal(c) \
  ((debug_level >= 2 && !(c)) ? error_assert_failed(#c, __FILE__, __LINE__) : (void)0)
#define assert_expensive(c) \
  ((debug_level >= 3 && !(c)) ? error_assert_failed(#c, __FILE__, __LINE__) : (void)0)

/* ---- error.c: misuse reports (write(2), then abort; never allocate) ------ */

_Noreturn void error_fatal(const char *what, const void *ptr);
/* Heap misuse by the program: reported, then abort() — or, with
 * abort_on_error=0, a warning after which the caller leaks the block. */
void error_misuse(const char *what, const void *ptr);

/* ---- options.c ----------------------------------------------------------- */

extern buddy_options_t options;
void options_init(void);

/* ---- sizeclass.c --------------------------------------------------------- */

#include "sizeclass.h"

/* ---- pagemap.c: address -> region_t / huge_t in O(1) --------------------- */

/* A page-map entry is a uintptr_t: 0 for an address buddymalloc does not
 * own, a region_t's address, or a huge_t's address with PAGEMAP_HUGE_TAG in
 * its low bit. */
#define PAGEMAP_HUGE_TAG ((uintptr_t)1)
static inline uintptr_t pagemap_region_entry(const region_t *r) {
  return (uintptr_t)r;
}
static inline uintptr_t pagemap_huge_entry(const huge_t *h) {
  return (uintptr_t)h | PAGEMAP_HUGE_TAG;
}
static inline bool pagemap_is_region(uintptr_t entry) {
  return entry != 0 && (entry & PAGEMAP_HUGE_TAG) == 0;
}
static inline region_t *pagemap_region(uintptr_t entry) {
  return (region_t *)entry;
}
static inline huge_t *pagemap_huge(uintptr_t entry) {
  return (huge_t *)(entry - PAGEMAP_HUGE_TAG);
}

extern void **pagemap_root[(size_t)1 << PAGEMAP_ROOT_BITS];

/* The entry for `p`. Two dependent loads; a root entry with no leaf of its
 * own points at an all-zero leaf, so there is no test between them. */
static inline uintptr_t pagemap_entry(const void *p) {
  uintptr_t a = (uintptr_t)p;
  uintptr_t root_index = a >> (BUDDY_REGION_SHIFT + PAGEMAP_LEAF_BITS);
  if (unlikely(root_index >= ((uintptr_t)1 << PAGEMAP_ROOT_BITS))) return 0; /* past 48 bits */
  void **leaf = __atomic_load_n(&pagemap_root[root_index], __ATOMIC_ACQUIRE);
  void *entry = __atomic_load_n(&leaf[(a >> BUDDY_REGION_SHIFT) & (((uintptr_t)1 << PAGEMAP_LEAF_BITS) - 1)],
                                __ATOMIC_ACQUIRE);
  return (uintptr_t)entry;
}

/* The small map (pagemap.c; its shape in types.h): the byte of page p >>
 * PAGE_SHIFT is the number of the bin (zone * SIZE_CLASS_COUNT + class) of
 * the slab holding p, 0 if p is in no slab. Everything free's fast path
 * reads lies in one static struct, found with one address computation:
 *  - a copy of each bin's size_class_info, as three arrays indexed by bin
 *    number (read-only once filled);
 *  - the root: for each 4 GiB of address space, its leaf's address minus
 *    empty_leaf's, so that 0, the value of a root entry with no leaf of its
 *    own, stands for empty_leaf, which is all zeros (never written, made
 *    read-only), and an address's byte is at empty_leaf + root entry + its
 *    page index in the leaf: no test between the two loads, and no
 *    relocations for the root (it is zero-initialised);
 *  - empty_leaf itself.
 * The map only ever speeds free up: bin 0 fails the object-start test and
 * sends free to the page map, and so does an address past the map (at or
 * above 2^47: with 5-level page tables, or not canonical), an address in no
 * leaf, and a region whose bytes could not be made writable. */
typedef struct small_map_info {
  uint64_t magic[256];
  uint64_t limit[256];
  uint32_t slab_mask[256];
} small_map_info_t;
#define SMALL_MAP_INFO_BYTES ((sizeof(small_map_info_t) + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1))
typedef struct small_map {
  union {
    small_map_info_t info;
    uint8_t info_pages[SMALL_MAP_INFO_BYTES]; /* whole pages, made read-only */
  };
  intptr_t leaf_offset[SMALL_MAP_ROOT_ENTRIES];
  uint8_t empty_leaf[SMALL_MAP_LEAF_BYTES];
} small_map_t;
extern small_map_t small_map;

/* Root entry `root`'s offset. On x86-64 a plain read: it races only with
 * the one store that publishes a leaf, an aligned word the hardware writes
 * whole, and a reader that still sees 0 reads a zero byte (slow path, which
 * is always right); the plain read lets the add take it from memory.
 * ThreadSanitizer builds and other targets use an atomic load. */
static inline intptr_t small_map_leaf_offset(uintptr_t root) {
#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
  return small_map.leaf_offset[root];
#else
  return __atomic_load_n(&small_map.leaf_offset[root], __ATOMIC_ACQUIRE);
#endif
}

/* The address of the byte of p (below 2^SMALL_MAP_ADDRESS_BITS; root is
 * its root entry's number) in the map (in empty_leaf if p's leaf is not
 * mapped). Integer arithmetic: the byte is in another object than
 * empty_leaf, whatever the indexing says. */
static inline const uint8_t *small_map_byte_in(uintptr_t p, uintptr_t root) {
  uintptr_t from_empty_leaf = ((uint32_t)p >> PAGE_SHIFT) + (uintptr_t)small_map_leaf_offset(root);
  /* Summed apart (the empty asm), so that the offset is added from memory
   * and empty_leaf comes in as the load's displacement: one instruction
   * each. */
  __asm__("" : "+r"(from_empty_leaf));
  return (const uint8_t *)((uintptr_t)small_map.empty_leaf + from_empty_leaf);
}
static inline const uint8_t *small_map_byte_of(uintptr_t p) {
  return small_map_byte_in(p, p >> SMALL_MAP_LEAF_SPAN_BITS);
}

static inline bool small_map_covers(uintptr_t p) {
  return (p >> SMALL_MAP_LEAF_SPAN_BITS) < SMALL_MAP_ROOT_ENTRIES;
}

static inline unsigned small_map_bin_number(unsigned zone_index, unsigned cls) {
  return zone_index * SIZE_CLASS_COUNT + cls;
}
/* True if p starts an object of the slab the map says p lies in; *bin is its
 * bin number. A range test, the root entry, the byte, a multiply and a
 * compare (sizeclass.c): 14 instructions. */
static inline bool small_map_object(const void *p, size_t *bin) {
  uintptr_t a = (uintptr_t)p, root = a >> SMALL_MAP_LEAF_SPAN_BITS;
  /* The range test compares the root number itself (the empty asm keeps
   * the compiler from testing the address apart), which then indexes. */
  __asm__("" : "+r"(root));
  if (unlikely(root >= SMALL_MAP_ROOT_ENTRIES)) return false;
  /* A plain read (an atomic one costs clang an instruction): for a pointer
   * the program may free, its slab was made before the program got it. */
  size_t b = *small_map_byte_in(a, root);
  const small_map_info_t *info = &small_map.info;
  *bin = b;
  return size_class_test_object_start(a & info->slab_mask[b], info->magic[b], info->limit[b]);
}
/* Maps the leaf of the region at base if it has none yet (the first region
 * also fills the info), and makes the region's bytes writable; false if
 * either failed (its frees then take the slow path). Takes pagemap_lock. */
bool small_map_add_region(const void *base);
/* Sets the map byte of `pages` pages from p (mapped by small_map_add_region). */
void small_map_set(const void *p, size_t pages, unsigned bin);
/* True when no byte of the region at base is set (debug check on release). */
bool small_map_region_clear(const void *base);
/* The bin number the map holds for p (0 when unmapped). */
static inline unsigned small_map_at(const void *p) {
  uintptr_t a = (uintptr_t)p;
  return small_map_covers(a) ? __atomic_load_n(small_map_byte_of(a), __ATOMIC_RELAXED) : 0;
}

/* The region holding p, for a caller that knows p is a small or medium block. */
static inline region_t *pagemap_region_of(const void *p) {
  return pagemap_region(pagemap_entry(p));
}

/* Sets `entry` for every region-sized slot of [base, base+size). Returns
 * false if a leaf of the map could not be mapped. */
bool pagemap_register(const void *base, size_t size, uintptr_t entry);
void pagemap_unregister(const void *base, size_t size);
void pagemap_fork_prepare(void);
void pagemap_fork_parent(void);
void pagemap_fork_child(void);

/* ---- buddy.c: the page-level core ---------------------------------------- */

/* The region_t of an address in a zone's region, computed, not loaded: zone.c
 * maps each region's metadata just below its pages. Only valid once the
 * small map or the page map has said the address is in a zone region. */
static inline region_t *region_of_address(const void *p) {
  return (region_t *)(((uintptr_t)p & ~(uintptr_t)(BUDDY_REGION_SIZE - 1)) - REGION_META_SIZE);
}
static inline region_t *region_of_desc(const page_desc_t *d) {
  return (region_t *)((uintptr_t)d & ~(uintptr_t)(REGION_META_SIZE - 1));
}
/* Regions are aligned to their size: the page index is in the address bits. */
static inline size_t page_index_of(const region_t *r, const void *p) {
  (void)r;
  return ((uintptr_t)p >> PAGE_SHIFT) & (BUDDY_REGION_PAGES - 1);
}
static inline char *page_address_of(const page_desc_t *d) {
  const region_t *r = region_of_desc(d);
  return r->base + ((size_t)(d - r->pages) << PAGE_SHIFT);
}
static inline page_desc_t *page_desc_of(region_t *r, const void *p) {
  return &r->pages[page_index_of(r, p)];
}
/* The size class of p's page (0: not a slab). */
static inline unsigned page_class_at(const region_t *r, const void *p) {
  return r->page_class[page_index_of(r, p)];
}
/* The size class of the page d describes (0: not a slab). */
static inline unsigned page_class_of_desc(const page_desc_t *d) {
  const region_t *r = region_of_desc(d);
  return r->page_class[d - r->pages];
}
/* Sets the class of the `pages` pages from d on (0: not a slab), in the
 * region and, as its bin number, in the small map. */
static inline void page_class_set(page_desc_t *d, size_t pages, unsigned cls) {
  region_t *r = region_of_desc(d);
  for (size_t i = 0; i < pages; i++) r->page_class[(size_t)(d - r->pages) + i] = (uint8_t)cls;
  if (r->small_mapped) small_map_set(page_address_of(d), pages, cls == 0 ? 0 : small_map_bin_number(r->zone_index, cls));
}

void buddy_heap_init(buddy_heap_t *h);
/* Adds a region (meta aligned to REGION_META_SIZE, base to BUDDY_REGION_SIZE)
 * whose pages are all free; `zeroed` says they hold only zeros. */
void buddy_heap_add_region(buddy_heap_t *h, region_t *r, void *base, bool zeroed);
/* Takes a wholly free region out of the heap (the caller unmaps it). */
void buddy_heap_remove_region(buddy_heap_t *h, region_t *r);
/* A block of `order` (kind PAGE_USED), or NULL when no region has room.
 * *zeroed tells whether its pages are known to hold zeros. */
page_desc_t *buddy_heap_alloc(buddy_heap_t *h, unsigned order, bool *zeroed);
/* Frees the block headed by `d`; coalesces. Returns the region if it became
 * wholly free (the caller may release it), else NULL. */
region_t *buddy_heap_free(buddy_heap_t *h, page_desc_t *d);
/* Grows the block headed by `d` in place to `order` if the blocks above it are
 * free; returns false (nothing changed) otherwise. */
bool buddy_heap_grow(buddy_heap_t *h, page_desc_t *d, unsigned order);
/* Shrinks the block headed by `d` to `order`, freeing its upper halves. */
void buddy_heap_shrink(buddy_heap_t *h, page_desc_t *d, unsigned order);
/* Validates a pointer freed to the core: a block's start, not free. Returns
 * the head descriptor, or NULL after reporting misuse (error_misuse). */
page_desc_t *buddy_heap_check_block(region_t *r, const void *p);
/* Walks every region and free list, checking all invariants; aborts with a
 * message on the first violation. Returns the number of free pages seen. */
size_t buddy_heap_verify(const buddy_heap_t *h);
/* Order of the smallest block holding `pages` pages. */
static inline unsigned buddy_order_for_pages(size_t pages) {
  return pages <= 1 ? 0 : 64u - (unsigned)__builtin_clzl(pages - 1);
}

/* ---- slab.c: a buddy block carved into objects of one class -------------- */

/* The second word of a free small object, in a cache, a transfer stack or
 * free in its slab, holds tcache_key (random, never 0): a free finding it
 * there suspects a double free and confirms it by a scan of its own cache,
 * the object's free bit (slab.c) and its zone's transfer stack. One key for
 * all places keeps free's test to a compare. */
extern uintptr_t tcache_key;
static inline bool free_key_matches(const void *word) {
  return (uintptr_t)word == tcache_key;
}
/* An object waiting in a zone's transfer stack holds the key's complement
 * in its first word as well (never 0 either: tcache_key's low bits are
 * clear), so that the zone sees it come back while still there (zone.c). */
static inline uintptr_t zone_transfer_mark(void) {
  return ~tcache_key;
}

/* obj's free bit (region_t.slab_free_bits): granule g is bit g % 64 of
 * word g / 64. */
static inline size_t slab_free_granule(const void *obj) {
  return ((uintptr_t)obj & (BUDDY_REGION_SIZE - 1)) / SMALL_ALIGN;
}
static inline uint64_t slab_free_mask(size_t granule) {
  return (uint64_t)1 << (granule % 64);
}

/* The free-bit words of the slab headed by `head`: slab_free_word_count()
 * of them from this one (slabs are aligned to their size, at least a page:
 * a whole number of words). */
static inline uint64_t *slab_free_words(const page_desc_t *head) {
  return &region_of_desc(head)->slab_free_bits[slab_free_granule(page_address_of(head)) / 64];
}
static inline size_t slab_free_word_count(const page_desc_t *head) {
  return (PAGE_SIZE << head->order) / SMALL_ALIGN / 64;
}

void slab_init(page_desc_t *head, unsigned cls);
/* Takes up to n objects into out[0..n), each with tcache_key in its second
 * word; returns the count. */
unsigned slab_take(page_desc_t *head, void **out, unsigned n);
/* Whether obj is free in its slab (its free bit). */
static inline bool slab_holds_free(const page_desc_t *head, const void *obj) {
  size_t g = slab_free_granule(obj);
  return (region_of_desc(head)->slab_free_bits[g / 64] & slab_free_mask(g)) != 0;
}
/* Clears the free bits of a slab going back to the core (set for its free
 * objects, which is all it carved). */
void slab_clear_free_bits(page_desc_t *head);
void slab_debug_fill(void *obj, size_t bytes);
/* Checks a slab's counts against its free bits (zone_verify_all). */
void slab_verify(const page_desc_t *head);
/* What is wrong with giving obj (of class cls) back to its slab, or NULL.
 * A multiply, not a division, for "never handed out"; a bit, not a scan, for
 * "already free". */
static inline const char *slab_check_give(const page_desc_t *head, const void *obj, unsigned cls) {
  /* Slabs are aligned to their size: the offset is in the address bits. */
  size_t offset = (uintptr_t)obj & size_class_info[cls].slab_mask;
  if (!size_class_is_object_start(cls, offset)) return "free of a pointer inside a small block (not its start)";
  if (offset >= (size_t)head->slab_carved * size_class_bytes[cls]) return "free of a small block that was never allocated";
  if (slab_holds_free(head, obj)) return "double free of a small block";
  if (head->slab_used == 0) return "double free of a small block (slab already empty)";
  return NULL;
}
/* Returns one object of class cls (its slab's), under the zone lock; checks it
 * is an object start not already free (false, after reporting misuse, if not:
 * the object is left alone). Inline: every object a flush or a remote batch
 * sends home comes through here. */
static inline bool slab_give(page_desc_t *head, void *obj, unsigned cls) {
  const char *wrong = slab_check_give(head, obj, cls);
  if (unlikely(wrong != NULL)) {
    error_misuse(wrong, obj);
    return false;
  }
  if (unlikely(options.debug)) slab_debug_fill(obj, size_class_bytes[cls]);
  ((void **)obj)[1] = (void *)tcache_key;
  head->slab_used--;
  size_t g = slab_free_granule(obj);
  uint64_t *word = &region_of_desc(head)->slab_free_bits[g / 64];
  *word |= slab_free_mask(g);
  size_t scan = (size_t)(word - slab_free_words(head));
  if (scan < head->slab_scan) head->slab_scan = (uint16_t)scan;
  return true;
}
static inline unsigned slab_free_objects(const page_desc_t *head, unsigned cls) {
  return size_class_slab_count[cls] - head->slab_used;
}
static inline page_desc_t *slab_head_of(region_t *r, page_desc_t *d) {
  size_t index = (size_t)(d - r->pages) & ~(((size_t)1 << d->order) - 1);
  return &r->pages[index];
}
/* Offset of p from the start of its slab: slabs are aligned to their size. */
static inline size_t slab_offset_of(const page_desc_t *d, const void *p) {
  return (uintptr_t)p & ((PAGE_SIZE << d->order) - 1);
}

/* ---- zone.c: locked global zones ----------------------------------------- */

extern zone_t zones[ZONES_MAX];

zone_t *zone_for_new_thread(void);
void zone_lock(zone_t *z);
void zone_unlock(zone_t *z);
/* Up to n objects of class cls into out[0..n); returns the count (0 = OOM). */
unsigned zone_alloc_objects(zone_t *z, unsigned cls, void **out, unsigned n);
/* Returns objs[0..count), objects of any classes and zones from a thread's
 * bins or batches (each holds the key: one without it is reported). */
void zone_free_objects(void *const *objs, unsigned count);
/* Objects of zone z (classes[i] is objs[i]'s) that a consumer thread freed:
 * into the zone's transfer stacks while they have room, the rest to their
 * slabs. */
void zone_free_remote_objects(zone_t *z, void *const *objs, const uint8_t *classes, unsigned count);
/* Each class's transfer stack that no refill took from since the last call
 * goes back to its slabs; once per sweep period (tcache_sweep_idle). */
void zone_transfer_expire(void);
void zone_free_object(region_t *r, page_desc_t *d, void *p);
/* The same for a small object of buddymalloc's own, found by its address. */
void zone_free_small(void *p);
/* Whether p is free in its slab or waits in its zone's transfer stack
 * (takes the zone lock). */
bool zone_holds_free_object(region_t *r, void *p);
size_t zone_release_free_regions_locked(zone_t *z, size_t keep);
/* Gives the empty slabs kept in reserve back to the buddy heap; true if any. */
bool zone_release_empty_slabs_locked(zone_t *z);
/* Medium blocks: page runs of order 0..BUDDY_MAX_ORDER. */
void *zone_alloc_run(zone_t *z, unsigned order, bool *zeroed);
void zone_free_run(region_t *r, void *p);
/* A page run of the allocator's own (a thread's cache): not the program's
 * to free, and counted apart in the statistics. */
void *zone_alloc_meta_run(zone_t *z, unsigned order, bool *zeroed);
void zone_free_meta_run(void *p);
bool zone_grow_run(region_t *r, void *p, unsigned order);
void zone_shrink_run(region_t *r, void *p, unsigned order);
/* Returns every wholly free region beyond none kept, empty slabs; 1 if any. */
int zone_trim_all(void);
/* Runs the invariant walker over every zone; returns the regions mapped. */
size_t zone_verify_all(void);
void zone_fork_prepare(void);
void zone_fork_parent(void);
void zone_fork_child(void);

/* ---- huge.c: blocks with a mapping of their own -------------------------- */

/* *zeroed: whether the block is fresh from the OS (else it held data). */
void *huge_alloc(size_t size, size_t align, bool *zeroed);
void huge_free(huge_t *h, void *p);
size_t huge_usable_size(huge_t *h, const void *p);
/* Unmaps every cached huge block (malloc_trim), or those past the delay. */
void huge_trim(void);
void huge_expire(void);
extern size_t huge_cached_bytes;
void *huge_realloc(huge_t *h, void *p, size_t size);
void huge_fork_prepare(void);
void huge_fork_parent(void);
void huge_fork_child(void);

/* ---- tcache.c: per-thread caches ----------------------------------------- */

/* The calling thread's cache and busy depth, in one TLS block so that a fast
 * path finds them from one thread-pointer offset (one GOT load). `current`
 * is the cache (whose bin tops come first: free's fast path indexes them by
 * bin number); `home` points at its home zone's top of class 0, so malloc's
 * fast path indexes it by class. Both change together (tcache_set_current). */
typedef struct tcache_tls {
  void ***home;      /* &current->bin_top[current->home_bins] */
  tcache_t *current; /* the thread's cache, or a static stand-in (tcache.c) */
  unsigned busy;     /* see tcache_hold() */
} tcache_tls_t;
extern __thread tcache_tls_t tcache_tls __attribute__((tls_model("initial-exec")));

/* The room of a bin read in place, as the 16 bits it is (little-endian: the
 * low half-word of the tally). A narrow read that may alias the tally keeps
 * free's fast path to a compare in memory and one decrement in memory. */
typedef uint16_t __attribute__((may_alias)) tcache_room_t;
_Static_assert(TCACHE_TALLY_ROOM_BITS == 16 && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the room is the tally's first half-word");
static inline uint32_t tcache_bin_room(uint64_t tally) {
  return (uint32_t)(tally & TCACHE_TALLY_ROOM_MASK);
}
/* A bin's tally, from its top's address: the tallies follow the tops. */
_Static_assert(offsetof(tcache_t, bin_tally) == offsetof(tcache_t, bin_top) + TCACHE_BINS * sizeof(void *),
               "a bin's tally is TCACHE_BINS words after its top");
static inline uint64_t *tcache_tally_of(void ***top) {
  /* Byte arithmetic: the tally lies past the tops array, not in it. */
  return (uint64_t *)(void *)((char *)top + TCACHE_BINS * sizeof(void *));
}
/* The bin number of class cls in tc's home zone. */
static inline unsigned tcache_home_bin(const tcache_t *tc, unsigned cls) {
  return tc->home_bins + cls;
}
/* Whether zone_index is tc's home zone (else its objects are remote frees). */
static inline bool tcache_zone_is_home(const tcache_t *tc, unsigned zone_index) {
  return small_map_bin_number(zone_index, 0) == tc->home_bins;
}
/* Objects in the home bin of class cls of tc, from a tally read of it. The
 * owner may be resizing the bin while another thread reads (statistics): such
 * a reader may see a count off by the change, never one below 0. */
static inline uint32_t tcache_bin_count(const tcache_t *tc, unsigned cls, uint64_t tally) {
  uint32_t max = __atomic_load_n(&tc->bin_max[cls], __ATOMIC_RELAXED), room = tcache_bin_room(tally);
  return room < max ? max - room : 0;
}
static inline uint64_t tcache_bin_requests(uint64_t tally) {
  return tally >> TCACHE_TALLY_ROOM_BITS;
}
/* Whether the bin whose top is at `top` has no room. */
static inline bool tcache_top_full(void ***top) {
  return *(const tcache_room_t *)tcache_tally_of(top) == 0;
}
/* Pushes p on the bin whose top is at `top`, which has room; p's second
 * word takes the key. */
static inline void tcache_top_push(void ***top, void *p) {
  **top = p;
  (*top)++;
  ((void **)p)[1] = (void *)tcache_key;
  (*tcache_tally_of(top))--;
}
static inline void tcache_bin_push(tcache_t *tc, size_t bin, void *p) {
  tcache_top_push(&tc->bin_top[bin], p);
}

/* Called held (tcache_hold) by the fast paths; they release. */
void *tcache_alloc_slow(unsigned cls); /* ENOMEM on failure */
/* The fast path could not push p, an object start of bin `bin`. */
void tcache_free_slow(void *p, size_t bin);
void tcache_flush_current(void);
void tcache_global_init(void); /* idempotent; cheap once done */
void tcache_fork_prepare(void);
void tcache_fork_parent(void);
void tcache_fork_child_locked(void);
void tcache_fork_child(void);
/* How many of the calling thread's allocator calls may hold a pointer to its
 * cache or a bin: raised before tcache_tls.current is read, lowered after the
 * last use (a slow path lowers what its fast path raised; calls nest). An
 * idle-cache reclaim leaves a thread alone while it is not zero, which also
 * covers a fast path interrupted by a signal handler that then blocks. The
 * signal fences keep the compiler from moving cache accesses across them;
 * the thread's own program order is all a signal handler or a sweep (which
 * reads it only while the thread is blocked in the kernel) can observe. */
static inline void tcache_hold(void) {
  tcache_tls.busy++;
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
}
static inline void tcache_release(void) {
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  tcache_tls.busy--;
}
/* The calling thread's cache: a relaxed load, because an idle-cache reclaim
 * (tcache.c) may store to another thread's tcache_tls.current. */
static inline tcache_t *tcache_get(void) {
  return __atomic_load_n(&tcache_tls.current, __ATOMIC_RELAXED);
}
/* Its home zone's bin tops, by class (tcache_tls.home). */
static inline void ***tcache_get_home(void) {
  return __atomic_load_n(&tcache_tls.home, __ATOMIC_RELAXED);
}
/* The max a home bin of class cls starts at (tcache.c: bins adapt). */
uint32_t tcache_bin_start(unsigned cls);
/* Bytes of a thread's cache with its bins' slots (a small block). */
size_t tcache_size(void);
/* Empties idle threads' caches when a reclaim period has passed (tcache.c). */
void tcache_sweep_idle(void);
/* Request counters, thread caches and reclaims, into s. */
void tcache_collect_stats(buddy_stats_t *s);

/* ---- purge.c ------------------------------------------------------------ */

size_t purge_zone_locked(zone_t *z);
void purge_note_freed_locked(zone_t *z, size_t pages);
void purge_if_due_locked(zone_t *z);
void purge_start_thread(void);
bool purge_thread_wanted(void);
void purge_fork_child(void);

/* ---- fork.c: fork handlers over every layer ----------------------------- */

void fork_install_handlers(void); /* once, at global start-up */

/* ---- stats.c ------------------------------------------------------------ */

extern size_t huge_live_blocks, huge_live_bytes; /* atomic counters of huge.c */
extern uint64_t alloc_medium_requests, alloc_huge_requests; /* atomic counters of alloc.c */
void stats_collect(buddy_stats_t *s);
void stats_print(bool json); /* to stderr */
void stats_init(void);         /* keeps a descriptor for the report at exit */
void stats_fork_child(void);   /* re-makes the report locks */
/* The statistics as JSON, into buf; returns the length (truncated to size). */
size_t stats_format_json(char *buf, size_t size);

/* ---- heapmap.c ----------------------------------------------------------- */

void heapmap_init(void);  /* reads BUDDY_HEAPMAP */
void heapmap_write(void); /* at exit: the region dump, if asked for */
void huge_write_map(int fd);

/* ---- alloc.c ------------------------------------------------------------- */

size_t alloc_usable_size(const void *p);
void *alloc_aligned(size_t alignment, size_t size);
/* Medium and huge blocks, aligned to at least `align` (a power of two). */
void *alloc_large(size_t size, size_t align, bool *zeroed);

/* malloc's fast path (buddy_malloc, and the shim's malloc with no call in
 * between): the class from a table indexed by the size, then a pop from the
 * home bin of that class, counted. Cost: 16 instructions (clang 14; gcc 12
 * makes 18) up to 1 KiB when the bin is not empty, 3 of them the busy depth;
 * the slow paths are tail calls, so the fast path saves no registers. The second word is
 * cleared so that a block handed out never looks like a cached one
 * (tcache_key) when freed. */
static inline void *alloc_fast(size_t size) {
  size_t cls;
  if (likely(size <= SIZE_CLASS_LOOKUP_MAX)) cls = size_class_lookup[size];
  else if (size <= SMALL_SIZE_MAX) cls = size_class_of(size);
  else return alloc_large(size, PAGE_SIZE, NULL);
  tcache_hold();
  void ***top = tcache_get_home() + cls;
  void **p = (*top)[-1];
  /* sets errno when it fails; releases */
  if (unlikely(p == NULL)) return tcache_alloc_slow((unsigned)cls);
  /* The top is decremented in memory (one instruction) rather than from the
   * register it was loaded into (two): the empty asm says it may have
   * changed. */
  __asm__("" : "+m"(*top));
  (*top)--;
  /* Static caches never get here: their bins are empty. */
  *tcache_tally_of(top) += TCACHE_TALLY_POP;
  p[1] = NULL;
  tcache_release();
  return p;
}

/* ---- free.c -------------------------------------------------------------- */

/* p does not start an object by the small map: a page run, a huge block, a
 * foreign or interior pointer, or a small object whose map byte could not be
 * written (then freed as the fast path would). */
void free_not_small_object(void *p);

/* free's fast path (buddy_free, and the shim's free): the small map gives the
 * bin number of p's slab (zone and class) and, from the same base, the
 * object-start test (a multiply and a compare); then a push on that bin of
 * the thread's cache. Bins of other zones have no room, so a remote free
 * goes to the slow path with no test of its own.
 * Misuse is caught before anything is written: a pointer that is in no slab
 * or does not start an object goes to the page map (foreign, interior, or
 * not small); one whose second word holds the cache key is checked for a
 * double free by the slow path. Cost: 26 instructions when the bin has room
 * (clang 14; gcc 12 makes 28): 11 the range test, the map and the object
 * test, 3 the cache (raising the busy depth), 3 the key, 7 the room test and
 * the push, 2 lowering the busy depth and returning; every exit is a tail
 * call. */
static inline void free_fast(void *p) {
  size_t bin;
  if (unlikely(!small_map_object(p, &bin))) return free_not_small_object(p);
  tcache_hold();
  tcache_t *tc = tcache_get();
  void ***top = &tc->bin_top[bin];
  /* A key in the 2nd word may be a double free; no room: a full bin, another
   * zone's bin, a class the thread has not used yet, or a static cache. */
  if (unlikely(free_key_matches(((void **)p)[1]) || tcache_top_full(top))) return tcache_free_slow(p, bin);
  tcache_top_push(top, p);
  tcache_release();
}

#pragma GCC visibility pop

#endif /* BUDDY_INTERNAL_H */
