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
 */
#include "internal.h"

#define PAGEMAP_LEAF_ENTRIES ((size_t)1 << PAGEMAP_LEAF_BITS)

static void *pagemap_empty_leaf[PAGEMAP_LEAF_ENTRIES];
void **pagemap_root[(size_t)1 << PAGEMAP_ROOT_BITS] = {
    [0 ...((size_t)1 << PAGEMAP_ROOT_BITS) - 1] = pagemap_empty_leaf};
static pthread_mutex_t pagemap_lock = PTHREAD_MUTEX_INITIALIZER;

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

void pagemap_fork_prepare(void) {
  pthread_mutex_lock(&pagemap_lock);
}

void pagemap_fork_parent(void) {
  pthread_mutex_unlock(&pagemap_lock);
}

void pagemap_fork_child(void) {
  pthread_mutex_init(&pagemap_lock, NULL);
}
