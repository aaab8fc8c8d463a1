/* pagemap.h: address -> region_t / huge_t in O(1) (the page map), and the
 * small map that free's fast path reads (pagemap.c).
 */
#ifndef BUDDY_PAGEMAP_H
#define BUDDY_PAGEMAP_H

#include "sizeclass.h"

#pragma GCC visibility push(hidden)

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

/* The root: each entry is its leaf's address minus pagemap_empty_leaf's (0:
 * no leaf of its own, so the all-NULL empty leaf; pagemap.c). */
extern uintptr_t pagemap_root[(size_t)1 << PAGEMAP_ROOT_BITS];
extern void *pagemap_empty_leaf[];
static inline void **pagemap_leaf_of(uintptr_t root_entry) {
  return (void **)((uintptr_t)pagemap_empty_leaf + root_entry);
}

/* The entry for `p`. Two dependent loads: there is no test between them. */
static inline uintptr_t pagemap_entry(const void *p) {
  uintptr_t a = (uintptr_t)p;
  uintptr_t root_index = a >> (BUDDY_REGION_SHIFT + PAGEMAP_LEAF_BITS);
  if (unlikely(root_index >= ((uintptr_t)1 << PAGEMAP_ROOT_BITS))) return 0; /* past 48 bits */
  void **leaf = pagemap_leaf_of(__atomic_load_n(&pagemap_root[root_index], __ATOMIC_ACQUIRE));
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
  return (p >> SMALL_MAP_ADDRESS_BITS) == 0;
}

static inline unsigned small_map_bin_number(unsigned zone_index, unsigned cls) {
  return zone_index * SIZE_CLASS_COUNT + cls;
}
/* The class of bin number `bin` (small_map_bin_number's inverse). */
static inline unsigned small_map_bin_class(size_t bin) {
  return (unsigned)(bin % SIZE_CLASS_COUNT);
}
/* True if p starts an object of the slab the map says p lies in; *bin is its
 * bin number. The root entry, the byte, a multiply and a
 * compare (sizeclass.c). */
static inline bool small_map_object(const void *p, size_t *bin) {
  /* No range test: the root index is the address's bits 32..47 (types.h),
   * so an address at or above 2^47 reads an entry that never has a leaf.
   * Only a non-canonical address (bits 48..63 not copies of bit 47) can
   * alias a covered one; if that alias starts an object, free's read of
   * the key (api.h) faults, as glibc's free faults on reading the header
   * of such a block. */
  uintptr_t a = (uintptr_t)p, root = (uint16_t)(a >> SMALL_MAP_LEAF_SPAN_BITS);
  _Static_assert(SMALL_MAP_ROOT_INDEX_BITS == 16, "the root index is a 16-bit word");
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

#pragma GCC visibility pop

#endif /* BUDDY_PAGEMAP_H */
