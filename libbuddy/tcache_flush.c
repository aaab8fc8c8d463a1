/* tcache_flush.c: a thread cache's objects back to their zones: the oldest
 * of a bin (a full bin, or one shrinking), a remote batch, or everything
 * (thread exit, a reclaim, a fork's orphans), secure mode's blocks
 * included.
 */
#include "tcache.h"

#include <string.h>

/* Moves the n oldest objects of tc's home bin of class cls (the bottom of
 * its stack, the coldest) back to their zones: with `stack` (a full bin,
 * whose thread will likely refill it soon), to their zones' transfer stacks
 * while those have room; else (exit, reclaim, a bin shrinking) to their
 * slabs. */
void tcache_flush_bin(tcache_t *tc, unsigned cls, uint32_t n, bool stack) {
  if (n == 0) return;
  unsigned bin = tcache_home_bin(tc, cls);
  void **bottom = tc->bin_base[cls] + 1, **top = tc->bin_top[bin];
  zone_free_bin_objects(cls, bottom, n, stack);
  memmove(bottom, bottom + n, (size_t)(top - bottom - n) * sizeof(void *));
  tcache_set_top(tc, bin, top - n);
}

void tcache_remote_flush(tcache_remote_t *rb) {
  zone_free_objects(rb->objs, rb->count);
  rb->count = rb->bytes = 0;
}

void tcache_flush_all(tcache_t *tc) {
  tcache_prof_unload(tc);
  secure_cache_flush(tc);
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) tcache_flush_bin(tc, c, tcache_bin_count(tc, c), false);
  for (unsigned z = 0; z < ZONES_MAX; z++) tcache_remote_flush(&tc->remote[z]);
}

size_t tcache_cached_bytes(const tcache_t *tc) {
  size_t bytes = secure_cache_bytes(tc);
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++)
    bytes += (size_t)(tcache_bin_count(tc, c) + tcache_prof_waiting(tc, c)) * size_class_bytes[c];
  return bytes;
}
