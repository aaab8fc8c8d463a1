/* api_util.c: helpers shared by the API conformance tests (see api.h). */
#include "api.h"

#include <string.h>
#include <unistd.h>

size_t api_hide(size_t value) {
  volatile size_t hidden = value;
  return hidden;
}

void *api_hide_ptr(void *ptr) {
  void *volatile hidden = ptr;
  return hidden;
}

static int range_cmp(const void *a, const void *b) {
  const struct api_range *x = a, *y = b;
  return (x->start > y->start) - (x->start < y->start);
}

size_t api_first_overlap(struct api_range *ranges, size_t count) {
  qsort(ranges, count, sizeof *ranges, range_cmp);
  for (size_t i = 1; i < count; i++) {
    const struct api_range *prev = &ranges[i - 1];
    /* A zero-length range still owns its address: two blocks may not
     * share a start even when a usable size is 0. */
    size_t prev_len = prev->len != 0 ? prev->len : 1;
    if (ranges[i].start < prev->start + prev_len) return i;
  }
  return count;
}

int api_is_aligned(const void *ptr, size_t alignment) {
  return ((uintptr_t)ptr & (alignment - 1)) == 0;
}

size_t api_page_size(void) {
  return (size_t)sysconf(_SC_PAGESIZE);
}

size_t api_next_pow2(size_t value) {
  size_t p = 1;
  while (p < value) p <<= 1;
  return p;
}
