/* pagemap.c: the map from any address to the region_t or huge_t holding it.
 *
 * A two-level radix table over the 48-bit address space, indexed by region
 * number (address >> BUDDY_REGION_SHIFT): a static root of 2^PAGEMAP_ROOT_BITS
 * entries (8 KiB), and leaves of 2^PAGEMAP_LEAF_BITS entries (512 KiB
 * of address space each, resident only where touched; one leaf covers 256 GiB)
 * mapped on first use and never unmapped. A root entry holds its leaf's
 * address minus pagemap_empty_leaf's, so that 0, the value of an entry with
 * no leaf yet, stands for pagemap_empty_leaf, all NULL and never written (its
 * pages stay the kernel's shared zero page): a lookup needs no test between
 * its two loads, and the root is zero-initialised (no relocations to apply
 * at load, no page of it touched until a leaf is mapped). Lookups take no
 * lock (acquire loads); writers hold pagemap_lock. An address with no entry
 * is not buddymalloc's, which is how foreign pointers are recognised in
 * O(1) without touching the memory they point to.
 *
 * Beside it, the small map (its shape in types.h and pagemap.h): a byte per
 * page of the 47-bit address space, holding the bin number (zone *
 * SIZE_CLASS_COUNT + class) of the slab on that page, 0 anywhere else. Its
 * root and the bins' object-start fields are static; a leaf (a byte per page
 * of 4 GiB: 1 MiB of address space, reserved read-only, left out of core
 * dumps) is mapped when the first zone region in its span is, and never
 * unmapped, so untouched pages stay the kernel's shared zero page and cost
 * neither memory nor commit charge. The bytes of a zone region (1 KiB, a
 * quarter page) are made writable when the region is mapped and are all 0
 * again by the time it is unmapped. A leaf that cannot be mapped (RLIMIT_AS,
 * or under valgrind with little address space left) leaves its regions out
 * of the map: their frees take the page map, correct and slower.
 */
#include "pagemap.h"

#define PAGEMAP_LEAF_ENTRIES ((size_t)1 << PAGEMAP_LEAF_BITS)

void *pagemap_empty_leaf[PAGEMAP_LEAF_ENTRIES];
uintptr_t pagemap_root[(size_t)1 << PAGEMAP_ROOT_BITS];
static pthread_mutex_t pagemap_lock startup_state = PTHREAD_MUTEX_INITIALIZER;

small_map_t small_map __attribute__((aligned(PAGE_SIZE)));
_Static_assert(offsetof(small_map_t, empty_leaf) % PAGE_SIZE == 0, "the empty leaf is whole pages");
static bool small_map_ready startup_state; /* under pagemap_lock: info filled, read-only parts protected */

/* The leaf for region number `slot`, mapped if absent; NULL if out of memory. */
static void **pagemap_leaf_locked(uintptr_t slot) {
  uintptr_t *root_entry = &pagemap_root[slot >> PAGEMAP_LEAF_BITS];
  if (*root_entry == 0) {
    void **leaf = os_map_aligned(PAGEMAP_LEAF_ENTRIES * sizeof(void *), PAGE_SIZE);
    if (leaf == NULL) return NULL;
    __atomic_store_n(root_entry, (uintptr_t)leaf - (uintptr_t)pagemap_empty_leaf, __ATOMIC_RELEASE);
  }
  return pagemap_leaf_of(*root_entry);
}

static void pagemap_set_locked(uintptr_t first, uintptr_t last, uintptr_t entry) {
  for (uintptr_t slot = first; slot <= last; slot++) {
    void **leaf = pagemap_leaf_of(pagemap_root[slot >> PAGEMAP_LEAF_BITS]);
    __atomic_store_n(&leaf[slot & (PAGEMAP_LEAF_ENTRIES - 1)], (void *)entry, __ATOMIC_RELEASE);
  }
}

bool pagemap_register(const void *base, size_t size, uintptr_t entry) {
  uintptr_t first = (uintptr_t)base >> BUDDY_REGION_SHIFT;
  uintptr_t last = ((uintptr_t)base + size - 1) >> BUDDY_REGION_SHIFT;
  if (((uintptr_t)base + size - 1) >> ADDRESS_BITS) return false;
  bool ok = true;
  lock_take(&pagemap_lock);
  for (uintptr_t slot = first; slot <= last && ok; slot++) ok = pagemap_leaf_locked(slot) != NULL;
  if (ok) pagemap_set_locked(first, last, entry);
  lock_release(&pagemap_lock);
  return ok;
}

void pagemap_unregister(const void *base, size_t size) {
  uintptr_t first = (uintptr_t)base >> BUDDY_REGION_SHIFT;
  uintptr_t last = ((uintptr_t)base + size - 1) >> BUDDY_REGION_SHIFT;
  lock_take(&pagemap_lock);
  pagemap_set_locked(first, last, 0);
  lock_release(&pagemap_lock);
}

/* Under pagemap_lock, once: fills each bin's object-start fields, then makes
 * them and the empty leaf read-only (a stray write faults rather than
 * changes what free trusts). */
static void small_map_prepare_locked(void) {
  if (small_map_ready) return;
  small_map_info_t *info = &small_map.info;
  for (unsigned z = 0; z < ZONES_MAX; z++)
    for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) {
      unsigned bin = small_map_bin_number(z, c);
      info->magic[bin] = size_class_info[c].magic;
      info->limit[bin] = size_class_info[c].limit;
      info->slab_mask[bin] = size_class_info[c].slab_mask;
    }
  os_make_readonly(small_map.info_pages, sizeof small_map.info_pages);
  os_make_readonly(small_map.empty_leaf, sizeof small_map.empty_leaf);
  small_map_ready = true;
}

/* The leaf of root entry `root`, mapped if absent; NULL if it cannot be. */
static uint8_t *small_map_leaf_locked(uintptr_t root) {
  /* Integer arithmetic: a leaf is another object than empty_leaf. */
  uintptr_t empty = (uintptr_t)small_map.empty_leaf;
  intptr_t offset = small_map.leaf_offset[root];
  if (offset != 0) return (uint8_t *)(empty + (uintptr_t)offset);
  uint8_t *leaf = os_map_readonly(SMALL_MAP_LEAF_BYTES);
  if (leaf == NULL) return NULL;
  os_exclude_from_core_dumps(leaf, SMALL_MAP_LEAF_BYTES);
  __atomic_store_n(&small_map.leaf_offset[root], (intptr_t)((uintptr_t)leaf - empty), __ATOMIC_RELEASE);
  return leaf;
}

bool small_map_add_region(const void *base) {
  uintptr_t a = (uintptr_t)base;
  if (!small_map_covers(a)) return false;
  lock_take(&pagemap_lock);
  small_map_prepare_locked();
  uint8_t *leaf = small_map_leaf_locked(a >> SMALL_MAP_LEAF_SPAN_BITS);
  /* A region's bytes are a quarter page, aligned: within one page. */
  bool ok = leaf != NULL &&
            os_make_writable((void *)(((uintptr_t)leaf + ((uint32_t)a >> PAGE_SHIFT)) & ~(uintptr_t)(PAGE_SIZE - 1)),
                             PAGE_SIZE);
  lock_release(&pagemap_lock);
  return ok;
}

/* The writable bytes of `pages` pages from p, in a mapped leaf; NULL if the
 * root shows none (a unit test may hide the leaves: nothing is written then,
 * least of all the empty leaf). */
static uint8_t *small_map_bytes_at(const void *p) {
  uintptr_t a = (uintptr_t)p;
  if (__atomic_load_n(&small_map.leaf_offset[a >> SMALL_MAP_LEAF_SPAN_BITS], __ATOMIC_RELAXED) == 0) return NULL;
  return (uint8_t *)(uintptr_t)small_map_byte_of(a);
}

void small_map_set(const void *p, size_t pages, unsigned bin) {
  uint8_t *bytes = small_map_bytes_at(p);
  if (bytes == NULL) return;
  for (size_t i = 0; i < pages; i++) __atomic_store_n(&bytes[i], (uint8_t)bin, __ATOMIC_RELAXED);
}

bool small_map_region_clear(const void *base) {
  const uint8_t *bytes = small_map_bytes_at(base);
  for (size_t i = 0; bytes != NULL && i < BUDDY_REGION_PAGES; i++)
    if (bytes[i] != 0) return false;
  return true;
}

void pagemap_fork_prepare(void) {
  lock_take(&pagemap_lock);
}

void pagemap_fork_parent(void) {
  lock_release(&pagemap_lock);
}

void pagemap_fork_child(void) {
  lock_reset(&pagemap_lock, NULL);
}
