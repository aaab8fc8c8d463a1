/* transfer.c: a zone's transfer stacks, the objects of the zone that wait,
 * per class, between a thread that freed them and the next refill.
 *
 * A thread that frees many blocks of another zone is a consumer of that
 * zone's blocks (tcache_remote_adopt). What its bins have no room for comes
 * to the zone and waits, per class, as pointers in the zone's transfer
 * stack, and the next refill of a thread at home in the zone takes it from
 * there before any slab. So a block that goes round a producer and a
 * consumer costs neither of them a write to its slab's bits and counts,
 * which two cores would otherwise write in turn. A full bin's flush comes
 * here too, while there is room (transfer_push_bin_locked): its objects
 * come back to the next refill as pointers, where a slab would have them
 * walk its bits, and the give costs the checks alone.
 * Misuse is caught as a slab would catch it, and more:
 *  - a block enters a stack after its slab's checks (an object start, handed
 *    out before, not free in its slab), and gets a mark in its first word
 *    (zone_transfer_mark) beside the key in its second;
 *  - a free of a stacked block whose key is intact is confirmed here
 *    (zone_holds_free_object scans the stack);
 *  - a block freed twice by two threads (neither can see the other's batch)
 *    comes back while its first copy is stacked: the mark sends the second
 *    copy, to a stack or to the slab, to a scan of the stack, which finds it;
 *  - a block leaves a stack only with its mark and key intact: anything else
 *    was written since, by the program or by malloc handing out another
 *    copy; it is reported and left alone;
 *  - a slab going back to the core takes any object of it out of the stack
 *    (there can be one only after a double free the checks above missed).
 * The stacks are bounded (types.h). zone.c decides when they go back to
 * their slabs: a class's stack no refill took from for a sweep period
 * (zone_transfer_expire), and all of them on a trim.
 *
 * Every function here is called with the zone's lock held, and calls only
 * the layers below the zones: a stack is a structure, and giving its objects
 * back to their slabs is zone.c's.
 */
#include "zone.h"

/* Pushes p after the checks slab_give makes, and one of its own: a block
 * never handed out, free in its slab, or already here (freed twice, by two
 * threads whose batches both came here) must not be handed out from here.
 * Reports and leaves p alone if one fails. */
void transfer_push_locked(zone_t *z, page_desc_t *head, void **p, unsigned cls) {
  const char *wrong = slab_check_give(head, p, cls);
  if (wrong == NULL && unlikely((uintptr_t)p[0] == zone_transfer_mark()) && transfer_holds_locked(z, cls, p))
    wrong = "double free of a small block";
  if (unlikely(wrong != NULL)) return error_misuse(wrong, p);
  p[0] = (void *)zone_transfer_mark();
  z->transfer[cls][z->transfer_count[cls]++] = p;
  z->transfer_bytes += size_class_bytes[cls];
}

/* How many more objects of class cls the stack has room for. */
static unsigned transfer_room_locked(const zone_t *z, unsigned cls) {
  size_t bytes = size_class_bytes[cls], count = z->transfer_count[cls];
  size_t room = ZONE_TRANSFER_MAX - count, by_class = ZONE_TRANSFER_CLASS_BYTES / bytes;
  if (by_class < count + room) room = by_class > count ? by_class - count : 0;
  size_t by_zone = (ZONE_TRANSFER_BYTES - z->transfer_bytes) / bytes;
  return (unsigned)(room < by_zone ? room : by_zone);
}

/* transfer_push_locked's checks on each object, those of slab_give but the
 * object-start test, which free made for the bin's class (a bin holds
 * nothing else): the object is of zone z and in a slab of the class, holds
 * the key and no mark, was handed out by its slab and is not free there.
 * The first that fails stops the push, and the caller's flush reports it
 * (the mark of a copy pushed earlier in this flush stops the second copy:
 * it is on the stack by then, where the caller's look finds it). */
unsigned transfer_push_bin_locked(zone_t *z, unsigned cls, void *const *objs, unsigned count) {
  const uintptr_t key = FREE_KEY, slab_mask = size_class_info[cls].slab_mask;
  const size_t bytes = size_class_bytes[cls], head_mask = ~(((size_t)1 << size_class_slab_order[cls]) - 1);
  unsigned room = transfer_room_locked(z, cls), pushed = 0;
  if (count < room) room = count;
  void **stack = &z->transfer[cls][z->transfer_count[cls]];
  for (; pushed < room; pushed++) {
    void **p = objs[pushed];
    region_t *r = region_of_address(p);
    size_t page = page_index_of(r, p), offset = (uintptr_t)p & slab_mask, g = slab_free_granule(p);
    if (r->zone != z || r->page_class[page] != cls || (uintptr_t)p[1] != key || (uintptr_t)p[0] == ~key) break;
    const page_desc_t *head = &r->pages[page & head_mask];
    if (offset >= (size_t)head->slab_carved * bytes || (r->slab_free_bits[g / 64] & slab_free_mask(g)) ||
        head->slab_used <= slab_kept(head))
      break;
    p[0] = (void *)zone_transfer_mark();
    stack[pushed] = p;
  }
  z->transfer_count[cls] = (uint16_t)(z->transfer_count[cls] + pushed);
  z->transfer_bytes += pushed * bytes;
  return pushed;
}

/* p leaves its stack: it must still hold the mark and the key, which it
 * came with. Anything else there was written since: by malloc (it was freed
 * twice, and the other copy handed out) or by the program. Reports; false if
 * p must be neither handed out nor given back. Clears the mark. */
static bool transfer_leave(void **p) {
  if (unlikely((uintptr_t)p[0] != zone_transfer_mark() || !free_key_matches(p[1]))) {
    error_misuse("a small block was written after its free (or freed twice) while in a transfer stack", p);
    return false;
  }
  p[0] = NULL;
  return true;
}

unsigned transfer_take_locked(zone_t *z, unsigned cls, void **out, unsigned n) {
  unsigned count = z->transfer_count[cls], popped = n < count ? n : count, taken = 0;
  for (unsigned i = 0; i < popped; i++) {
    void **obj = z->transfer[cls][count - 1 - i];
    if (transfer_leave(obj)) out[taken++] = obj; /* else left alone */
  }
  z->transfer_count[cls] = (uint16_t)(count - popped);
  z->transfer_bytes -= popped * size_class_bytes[cls];
  if (popped > 0) z->transfer_taken |= (uint64_t)1 << cls;
  return taken;
}

void *transfer_pop_locked(zone_t *z, unsigned cls) {
  while (z->transfer_count[cls] > 0) {
    void **p = z->transfer[cls][--z->transfer_count[cls]];
    z->transfer_bytes -= size_class_bytes[cls];
    if (transfer_leave(p)) return p;
  }
  return NULL;
}

bool transfer_holds_locked(const zone_t *z, unsigned cls, const void *p) {
  return pointers_hold(z->transfer[cls], z->transfer_count[cls], p);
}

/* A slab going back to the core has none of its objects in the stack: one
 * there would mean the slab gave back an object twice (a double free that
 * reached the slab by a bin). Drops and reports any, so that none is handed
 * out from memory that is no longer this slab's. The stack is only read
 * until one is found: every slab that empties comes here. */
void transfer_drop_range_locked(zone_t *z, unsigned cls, const char *start, size_t bytes) {
  unsigned kept = 0, count = z->transfer_count[cls];
  while (kept < count && (uintptr_t)((const char *)z->transfer[cls][kept] - start) >= bytes) kept++;
  for (unsigned i = kept; i < count; i++) {
    void *p = z->transfer[cls][i];
    if ((uintptr_t)((const char *)p - start) < bytes) error_misuse("double free of a small block", p);
    else z->transfer[cls][kept++] = p;
  }
  z->transfer_count[cls] = (uint16_t)kept;
  z->transfer_bytes -= (count - kept) * size_class_bytes[cls];
}

/* Each object of the stacks is an object start of its class in a slab of
 * this zone, handed out and not free there, holding the mark and the key, in
 * one stack once; the counts and bytes within their bounds. Aborts with a
 * report (a write after free to the key word shows here too). */
void transfer_verify_locked(const zone_t *z) {
  size_t bytes = 0;
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) {
    unsigned count = z->transfer_count[c];
    if (count > ZONE_TRANSFER_MAX || count * size_class_bytes[c] > ZONE_TRANSFER_CLASS_BYTES)
      error_fatal("heap check failed: a transfer stack past its bound", z->transfer[c]);
    bytes += count * size_class_bytes[c];
    for (unsigned i = 0; i < count; i++) {
      void *p = z->transfer[c][i];
      region_t *r = pagemap_region_of(p);
      if (r == NULL || r->zone != z || page_desc_of(r, p)->kind != PAGE_SLAB || page_class_at(r, p) != c ||
          slab_check_give(slab_head_at(r, p, c), p, c) != NULL)
        error_fatal("heap check failed: a transfer stack holds what is not a used object of its class", p);
      if ((uintptr_t)((void **)p)[0] != zone_transfer_mark() || !free_key_matches(((void **)p)[1]))
        error_fatal("heap check failed: an object in a transfer stack without its mark and key", p);
      if (pointers_hold(z->transfer[c], i, p)) error_fatal("heap check failed: an object twice in a transfer stack", p);
    }
  }
  if (bytes != z->transfer_bytes || bytes > ZONE_TRANSFER_BYTES)
    error_fatal("heap check failed: a zone's transfer bytes disagree with its stacks", z);
}
