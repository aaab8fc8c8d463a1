/* heap_util.h: helpers of the Criterion suites that see the slabs: a unit
 * test linked to the slab layer or one above it (include the layer's header
 * first), and, through core_util.h, the suites linked to the whole core. */
#ifndef BUDDY_HEAP_UTIL_H
#define BUDDY_HEAP_UTIL_H

#ifndef BUDDY_SLAB_H
#error "heap_util.h: include slab.h, or the header of a layer above it, first"
#endif

#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdio.h>

#include "test_support.h"

/* What the test wrote to stderr so far (the test's .init redirected it). */
static inline const char *redirected_stderr(void) {
  static char text[8192];
  fflush(stderr);
  size_t n = fread(text, 1, sizeof text - 1, cr_get_redirected_stderr());
  text[n] = '\0';
  return text;
}

/* Whether the small block p is free in its slab (its free bit). */
static inline bool free_in_slab(const void *p) {
  region_t *r = pagemap_region_of(p);
  return slab_holds_free(slab_head_of(r, page_desc_of(r, p)), p);
}

/* For a suite's .init: misuse warns, into a stderr the test reads back
 * (redirected_stderr), instead of aborting. */
static inline void heap_test_warn_on_misuse(void) {
  cr_redirect_stderr();
  options.abort_on_error = 0;
}

#ifdef BUDDY_ZONE_H
/* Regions mapped by every zone, each zone's heap checked on the way. */
static inline size_t heap_test_zone_regions(void) {
  size_t n = 0;
  for (unsigned i = 0; i < ZONES_MAX; i++) {
    zone_lock(&zones[i]);
    n += zones[i].heap.regions;
    buddy_heap_verify(&zones[i].heap);
    zone_unlock(&zones[i]);
  }
  return n;
}
#endif

#endif /* BUDDY_HEAP_UTIL_H */
