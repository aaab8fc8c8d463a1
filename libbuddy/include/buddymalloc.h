/* buddymalloc.h: the public, prefixed API of buddymalloc.
 *
 * Link with -lbuddymalloc (pkg-config buddymalloc) to call these directly; the
 * same library also exports the standard malloc names, so linking it or
 * preloading it (LD_PRELOAD=libbuddymalloc.so) replaces malloc altogether.
 *
 * Semantics follow glibc's malloc wherever the standards leave room:
 *  - buddy_malloc(0) returns a unique pointer that must be freed;
 *  - buddy_free(NULL) does nothing, and buddy_free never changes errno;
 *  - impossible sizes return NULL with errno = ENOMEM;
 *  - buddy_realloc(p, 0) with p != NULL frees p and returns NULL;
 *  - every block of 16 bytes or more is aligned to 16 (max_align_t).
 * Misuse (freeing a pointer buddymalloc does not own, an interior pointer, or a
 * block already free) is reported on stderr with the address, then abort().
 */
#ifndef BUDDYMALLOC_H
#define BUDDYMALLOC_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define BUDDY_API __attribute__((visibility("default")))
#else
#define BUDDY_API
#endif

BUDDY_API void *buddy_malloc(size_t size);
BUDDY_API void buddy_free(void *ptr);
BUDDY_API void *buddy_calloc(size_t count, size_t size);
BUDDY_API void *buddy_realloc(void *ptr, size_t size);
BUDDY_API void *buddy_reallocarray(void *ptr, size_t count, size_t size);
BUDDY_API int buddy_posix_memalign(void **out, size_t alignment, size_t size);
BUDDY_API void *buddy_aligned_alloc(size_t alignment, size_t size);
BUDDY_API void *buddy_memalign(size_t alignment, size_t size);
BUDDY_API void *buddy_valloc(size_t size);
BUDDY_API void *buddy_pvalloc(size_t size);
BUDDY_API size_t buddy_malloc_usable_size(void *ptr);

/* Frees ptr; size is a hint from sized delete and is checked, never trusted. */
BUDDY_API void buddy_free_sized(void *ptr, size_t size);

/* The allocator's statistics as a JSON object (the same figures BUDDY_STATS=json
 * prints at exit), in a block the caller frees with buddy_free/free. NULL when
 * out of memory. */
BUDDY_API char *buddy_stats_json(void);

/* Returns every free page it can to the OS at once (flushes the calling
 * thread's cache first). Returns 1 if memory was released, else 0. */
BUDDY_API int buddy_trim(size_t pad);

/* With BUDDY_OPTIONS=prof=1 (or leaks=1): writes a heap profile of the
 * sampled allocations to path, in gperftools' heap-profile text format
 * (google-pprof reads it). Returns 0, or -1 if sampling is off or the file
 * cannot be written. */
BUDDY_API int buddy_prof_dump(const char *path);

#ifdef __cplusplus
}
#endif

#endif /* BUDDYMALLOC_H */
