/* core_util.h: helpers of the Criterion suites linked to the static core with
 * internal.h (tests/unit/, tests/integration/), on top of test_support.h. */
#ifndef BUDDY_CORE_UTIL_H
#define BUDDY_CORE_UTIL_H

#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdio.h>

#include "internal.h"
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

#endif
