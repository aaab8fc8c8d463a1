/* shim.c: the glibc malloc family under its standard names.
 *
 * Names only: each function forwards to libbuddy (buddy_* or an internal
 * helper) with no logic of its own. Linking libbuddymalloc.so, or preloading
 * it, replaces malloc in the whole process; glibc's own internal calls go
 * through the __libc_* aliases below, so no path reaches glibc's allocator
 * with a pointer of ours.
 */
#include "buddymalloc.h"
#include "internal.h"

#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

#define SHIM_EXPORT __attribute__((visibility("default")))

/* malloc and free inline the fast paths (internal.h): no jump in between. */
/* One line per forwarding name, as a table. */
/* clang-format off */
SHIM_EXPORT void *malloc(size_t size) { return alloc_fast(size); }
SHIM_EXPORT void free(void *ptr) { free_fast(ptr); }
SHIM_EXPORT void *calloc(size_t count, size_t size) { return buddy_calloc(count, size); }
SHIM_EXPORT void *realloc(void *ptr, size_t size) { return buddy_realloc(ptr, size); }
SHIM_EXPORT void *reallocarray(void *ptr, size_t count, size_t size) {
  return buddy_reallocarray(ptr, count, size);
}
SHIM_EXPORT int posix_memalign(void **out, size_t alignment, size_t size) {
  return buddy_posix_memalign(out, alignment, size);
}
SHIM_EXPORT void *aligned_alloc(size_t alignment, size_t size) {
  return buddy_aligned_alloc(alignment, size);
}
SHIM_EXPORT void *memalign(size_t alignment, size_t size) { return buddy_memalign(alignment, size); }
SHIM_EXPORT void *valloc(size_t size) { return buddy_valloc(size); }
SHIM_EXPORT void *pvalloc(size_t size) { return buddy_pvalloc(size); }
SHIM_EXPORT size_t malloc_usable_size(void *ptr) { return buddy_malloc_usable_size(ptr); }
SHIM_EXPORT int malloc_trim(size_t pad) { return buddy_trim(pad); }

/* The names glibc exports besides the standard ones, and calls internally. */
SHIM_EXPORT void cfree(void *ptr) { buddy_free(ptr); }
SHIM_EXPORT void *__libc_malloc(size_t size) { return buddy_malloc(size); }
SHIM_EXPORT void __libc_free(void *ptr) { buddy_free(ptr); }
SHIM_EXPORT void *__libc_calloc(size_t count, size_t size) { return buddy_calloc(count, size); }
SHIM_EXPORT void *__libc_realloc(void *ptr, size_t size) { return buddy_realloc(ptr, size); }
SHIM_EXPORT void *__libc_memalign(size_t alignment, size_t size) { return buddy_memalign(alignment, size); }
SHIM_EXPORT void *__libc_valloc(size_t size) { return buddy_valloc(size); }
SHIM_EXPORT void *__libc_pvalloc(size_t size) { return buddy_pvalloc(size); }
/* clang-format on */

/* ---- Introspection in glibc's shapes, with buddymalloc's figures --------- */

static struct mallinfo2 shim_mallinfo2(void) {
  buddy_stats_t s;
  stats_collect(&s);
  size_t arena = s.regions * BUDDY_REGION_SIZE;
  size_t used = s.bytes_runs + s.bytes_small_live;
  size_t free_blocks = 0;
  for (unsigned k = 0; k < BUDDY_ORDERS; k++) free_blocks += s.free_blocks[k];
  return (struct mallinfo2){.arena = arena,
                            .ordblks = free_blocks,
                            .hblks = s.huge_blocks,
                            .hblkhd = s.huge_bytes,
                            .uordblks = used + s.huge_bytes,
                            .fordblks = arena - used,
                            .keepcost = s.pages_free * PAGE_SIZE};
}

SHIM_EXPORT struct mallinfo2 mallinfo2(void) {
  return shim_mallinfo2();
}

/* The old int fields saturate rather than wrap. */
static int shim_int(size_t v) {
  return v > (size_t)__INT_MAX__ ? __INT_MAX__ : (int)v;
}

SHIM_EXPORT struct mallinfo mallinfo(void) {
  struct mallinfo2 m = shim_mallinfo2();
  return (struct mallinfo){.arena = shim_int(m.arena),
                           .ordblks = shim_int(m.ordblks),
                           .hblks = shim_int(m.hblks),
                           .hblkhd = shim_int(m.hblkhd),
                           .uordblks = shim_int(m.uordblks),
                           .fordblks = shim_int(m.fordblks),
                           .keepcost = shim_int(m.keepcost)};
}

/* Accepted and ignored: buddymalloc's tuning comes from BUDDY_OPTIONS. */
SHIM_EXPORT int mallopt(int param, int value) {
  (void)param;
  (void)value;
  return 1;
}

SHIM_EXPORT void malloc_stats(void) {
  stats_print(false);
}

/* glibc's contract: options must be 0, else EINVAL is the result (errno is
 * left alone); a NULL stream is refused the same way rather than crashing. */
SHIM_EXPORT int malloc_info(int options, FILE *out) {
  if (options != 0 || out == NULL) return EINVAL;
  struct mallinfo2 m = shim_mallinfo2();
  fprintf(out,
          "<malloc version=\"buddymalloc-1\">\n<total type=\"fast\" count=\"0\" size=\"0\"/>\n"
          "<total type=\"rest\" count=\"%zu\" size=\"%zu\"/>\n<system type=\"current\" size=\"%zu\"/>\n"
          "<aspace type=\"total\" size=\"%zu\"/>\n<aspace type=\"mprotect\" size=\"%zu\"/>\n</malloc>\n",
          m.ordblks, m.fordblks, m.arena + m.hblkhd, m.arena + m.hblkhd, m.arena + m.hblkhd);
  return 0;
}
