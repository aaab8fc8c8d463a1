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

#include <malloc.h>
#include <stdlib.h>

#define SHIM_EXPORT __attribute__((visibility("default")))

SHIM_EXPORT void *malloc(size_t size) { return buddy_malloc(size); }
SHIM_EXPORT void free(void *ptr) { buddy_free(ptr); }
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
