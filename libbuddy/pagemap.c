/* pagemap.c: the map from any address to the region_t or huge_t holding it.
 *
 * A two-level radix table over the 48-bit address space, indexed by region
 * number (address >> BUDDY_REGION_SHIFT): a static root of 2^PAGEMAP_ROOT_BITS
 * leaf pointers (8 KiB), and leaves of 2^PAGEMAP_LEAF_BITS entries (512 KiB
 * of address space each, resident only where touched; one leaf covers 256 GiB)
 * mapped on first use and never unmapped. A root entry with no leaf yet points
 * at pagemap_empty_leaf, all NULL and never written (its pages stay the
 * kernel's shared zero page), so a lookup needs no test between its two
 * loads. Lookups take no lock (acquire loads); writers hold pagemap_lock. An
 * address with no entry is not buddymalloc's, which is how foreign pointers
 * are recognised in O(1) without touching the memory they point to.
 *
 * Beside it, the small map: one byte per page of the 47-bit address space
 * (SMALL_MAP_BYTES, 32 GiB of address space, reserved read-only, so untouched
 * pages stay the kernel's shared zero page and cost neither memory nor commit
 * charge, and left out of core dumps). A byte holds the bin number (zone *
 * SIZE_CLASS_COUNT + class) of the slab on that page, 0 anywhere else. The
 * bytes of a zone region (1 KiB, a quarter page) are made writable when the
 * region is mapped and are all 0 again by the time it is unmapped. Below the
 * first byte, in two pages of their own made read-only once filled, lie the
 * object-start fields of each bin (small_map_info_t), so that free's fast path
 * reads the bin and the test from one base in three loads. The map only ever
 * speeds free up: bin 0 fails the test and sends free to the page map, and so
 * does an address past the map (at or above 2^47), an unreserved map (its
 * size is 0 until then, and stays 0 if it cannot be reserved: a process
 * limited by RLIMIT_AS, or under valgrind with little address space left),
 * and a region whose bytes could not be made writable.
 */
#include "internal.h"

#define PAGEMAP_LEAF_ENTRIES ((size_t)1 << PAGEMAP_LEAF_BITS)

static void *pagemap_empty_leaf[PAGEMAP_LEAF_ENTRIES];
void **pagemap_root[(size_t)1 << PAGEMAP_ROOT_BITS] = {
    [0 ...((size_t)1 << PAGEMAP_ROOT_BITS) - 1] = pagemap_empty_leaf};
static pthread_mutex_t pagemap_lock = PTHREAD_MUTEX_INITIALIZER;

small_map_t small_map; /* pages 0 until reserved */
/* The mapping: the info pages, then the bytes. */
#define SMALL_MAP_INFO_PAGES ((sizeof(small_map_info_t) + PAGE_SIZE - 1) / PAGE_SIZE)
static bool small_map_failed; /* under pagemap_lock: no second try */
/* The bytes once reserved, for the writers (small_map.bytes may be swapped
 * by a unit test that plays an unreserved map). */
static uint8_t *small_map_reserved;

/* The leaf for region number `slot`, mapped if absent; NULL if out of memory. */
static void **pagemap_leaf_locked(uintptr_t slot) {
  void ***root_entry = &pagemap_root[slot >> PAGEMAP_LEAF_BITS];
  void **leaf = *root_entry;
  if (leaf == pagemap_empty_leaf) {
    leaf = os_map_aligned(PAGEMAP_LEAF_ENTRIES * sizeof(void *), PAGE_SIZE);
    if (leaf == NULL) return NULL;
    __atomic_store_n(root_entry, leaf, __ATOMIC_RELEASE);
  }
  return leaf;
}

static void pagemap_set_locked(uintptr_t first, uintptr_t last, uintptr_t entry) {
  for (uintptr_t slot = first; slot <= last; slot++) {
    void **leaf = pagemap_root[slot >> PAGEMAP_LEAF_BITS];
    __atomic_store_n(&leaf[slot & (PAGEMAP_LEAF_ENTRIES - 1)], (void *)entry, __ATOMIC_RELEASE);
  }
}

bool pagemap_register(const void *base, size_t size, uintptr_t entry) {
  uintptr_t first = (uintptr_t)base >> BUDDY_REGION_SHIFT;
  uintptr_t last = ((uintptr_t)base + size - 1) >> BUDDY_REGION_SHIFT;
  if (((uintptr_t)base + size - 1) >> ADDRESS_BITS) return false;
  bool ok = true;
  pthread_mutex_lock(&pagemap_lock);
  for (uintptr_t slot = first; slot <= last && ok; slot++) ok = pagemap_leaf_locked(slot) != NULL;
  if (ok) pagemap_set_locked(first, last, entry);
  pthread_mutex_unlock(&pagemap_lock);
  return ok;
}

void pagemap_unregister(const void *base, size_t size) {
  uintptr_t first = (uintptr_t)base >> BUDDY_REGION_SHIFT;
  uintptr_t last = ((uintptr_t)base + size - 1) >> BUDDY_REGION_SHIFT;
  pthread_mutex_lock(&pagemap_lock);
  pagemap_set_locked(first, last, 0);
  pthread_mutex_unlock(&pagemap_lock);
}

/* Under pagemap_lock: reserves the map and fills its info; false if not. */
static bool small_map_reserve_locked(void) {
  if (small_map_reserved != NULL) return true;
  if (small_map_failed) return false;
  size_t info_bytes = SMALL_MAP_INFO_PAGES * PAGE_SIZE;
  char *mapping = os_map_readonly(info_bytes + SMALL_MAP_BYTES);
  if (mapping == NULL || !os_make_writable(mapping, info_bytes)) {
    if (mapping != NULL) os_unmap(mapping, info_bytes + SMALL_MAP_BYTES);
    small_map_failed = true;
    return false;
  }
  uint8_t *bytes = (uint8_t *)mapping + info_bytes;
  small_map_info_t *info = (small_map_info_t *)(bytes - sizeof(small_map_info_t));
  for (unsigned z = 0; z < ZONES_MAX; z++)
    for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) {
      unsigned bin = small_map_bin_number(z, c);
      info->magic[bin] = size_class_info[c].magic;
      info->limit[bin] = size_class_info[c].limit;
      info->slab_mask[bin] = size_class_info[c].slab_mask;
    }
  os_make_readonly(mapping, info_bytes);
  os_exclude_from_core_dumps(bytes, SMALL_MAP_BYTES);
  small_map_reserved = bytes;
  __atomic_store_n(&small_map.bytes, bytes, __ATOMIC_RELAXED);
  __atomic_store_n(&small_map.pages, SMALL_MAP_BYTES, __ATOMIC_RELEASE);
  return true;
}

bool small_map_add_region(const void *base) {
  uintptr_t first = (uintptr_t)base >> PAGE_SHIFT;
  if (first + BUDDY_REGION_PAGES > SMALL_MAP_BYTES) return false;
  pthread_mutex_lock(&pagemap_lock);
  bool ok = small_map_reserve_locked();
  if (ok) {
    /* A region's bytes are a quarter page, aligned: within one page. */
    uintptr_t page = ((uintptr_t)small_map_reserved + first) & ~(uintptr_t)(PAGE_SIZE - 1);
    ok = os_make_writable((void *)page, PAGE_SIZE);
  }
  pthread_mutex_unlock(&pagemap_lock);
  return ok;
}

void small_map_set(const void *p, size_t pages, unsigned bin) {
  uint8_t *bytes = small_map_reserved + ((uintptr_t)p >> PAGE_SHIFT);
  for (size_t i = 0; i < pages; i++) __atomic_store_n(&bytes[i], (uint8_t)bin, __ATOMIC_RELAXED);
}

bool small_map_region_clear(const void *base) {
  const uint8_t *bytes = small_map_reserved + ((uintptr_t)base >> PAGE_SHIFT);
  for (size_t i = 0; i < BUDDY_REGION_PAGES; i++)
    if (bytes[i] != 0) return false;
  return true;
}

void pagemap_fork_prepare(void) {
  pthread_mutex_lock(&pagemap_lock);
}

void pagemap_fork_parent(void) {
  pthread_mutex_unlock(&pagemap_lock);
}

void pagemap_fork_child(void) {
  pthread_mutex_init(&pagemap_lock, NULL);
}
