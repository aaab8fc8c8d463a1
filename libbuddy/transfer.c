/* transfer.c: a zone's transfer stacks, the objects of the zone that wait,
 * per class, between a thread that freed them and the next refill.
 *
 * A thread that frees many blocks of another zone is a consumer of that
 * zone's blocks (tcache_remote_adopt). What its bins have no room for comes
 * to the zone and waits, per class, as pointers in the zone's transfer
 * stack, and the next refill of a thread at home in the zone takes it from
 * there before any slab. So a block that goes round a producer and a
 * consumer costs neither of them a write to its slab's bits and counts,
 * which two cores would otherwise write in turn.
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
 * out from memory that is no longer this slab's. */
void transfer_drop_range_locked(zone_t *z, unsigned cls, const char *start, size_t bytes) {
  unsigned kept = 0, count = z->transfer_count[cls];
  for (unsigned i = 0; i < count; i++) {
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
