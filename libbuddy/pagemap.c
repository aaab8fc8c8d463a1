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
 * Beside it, the zone-slot map: one byte per region-sized slot of the same
 * address space (2^PAGEMAP_ZONE_SLOT_BITS bytes: 64 MiB of address space,
 * reserved read-only, so untouched pages stay the shared zero page and cost
 * neither memory nor commit charge; a page is made writable when a region in
 * its range first needs its byte). A byte is 1 where a zone region lies:
 * free's fast path tests it, one load at a fixed base, instead of the two
 * dependent loads of the page map. It only ever speeds free up: a 0 sends
 * free to its slow path, which asks the page map, so a process that could
 * not reserve it, or a region whose page could not be made writable, still
 * frees correctly.
 */
#include "internal.h"

#define PAGEMAP_LEAF_ENTRIES ((size_t)1 << PAGEMAP_LEAF_BITS)

static void *pagemap_empty_leaf[PAGEMAP_LEAF_ENTRIES];
void **pagemap_root[(size_t)1 << PAGEMAP_ROOT_BITS] = {
    [0 ...((size_t)1 << PAGEMAP_ROOT_BITS) - 1] = pagemap_empty_leaf};
static pthread_mutex_t pagemap_lock = PTHREAD_MUTEX_INITIALIZER;

#define PAGEMAP_ZONE_SLOTS ((size_t)1 << PAGEMAP_ZONE_SLOT_BITS)
pagemap_zone_slots_t pagemap_zone_slots; /* count 0 until reserved */
/* Under pagemap_lock: which pages of the zone-slot map are writable. */
static uint64_t pagemap_zone_slot_pages_writable[PAGEMAP_ZONE_SLOTS / PAGE_SIZE / 64];

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

/* Under pagemap_lock: the byte of `slot`, writable; NULL if it cannot be, or,
 * when `for_clearing`, if it was never written (so it reads 0 already). */
static uint8_t *pagemap_zone_slot_locked(uintptr_t slot, bool for_clearing) {
  if (pagemap_zone_slots.count == 0) {
    if (for_clearing) return NULL;
    uint8_t *bytes = os_map_readonly(PAGEMAP_ZONE_SLOTS);
    if (bytes == NULL) return NULL;
    pagemap_zone_slots.bytes = bytes;
    __atomic_store_n(&pagemap_zone_slots.count, PAGEMAP_ZONE_SLOTS, __ATOMIC_RELEASE);
  }
  if (slot >= PAGEMAP_ZONE_SLOTS) return NULL;
  uint8_t *byte = (uint8_t *)&pagemap_zone_slots.bytes[slot];
  size_t page = slot / PAGE_SIZE;
  uint64_t bit = (uint64_t)1 << (page % 64);
  if (!(pagemap_zone_slot_pages_writable[page / 64] & bit)) {
    if (for_clearing || !os_make_writable(byte - slot % PAGE_SIZE, PAGE_SIZE)) return NULL;
    pagemap_zone_slot_pages_writable[page / 64] |= bit;
  }
  return byte;
}

void pagemap_mark_zone_region(const void *base, bool zone) {
  uintptr_t slot = (uintptr_t)base >> BUDDY_REGION_SHIFT;
  pthread_mutex_lock(&pagemap_lock);
  uint8_t *byte = pagemap_zone_slot_locked(slot, !zone);
  if (byte != NULL) __atomic_store_n(byte, (uint8_t)zone, __ATOMIC_RELEASE);
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
