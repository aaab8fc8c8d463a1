/* core_util.h: helpers of the Criterion suites linked to the static core with
 * internal.h (tests/integration/): heap_util.h's, on top of test_support.h. */
#ifndef BUDDY_CORE_UTIL_H
#define BUDDY_CORE_UTIL_H

#include "internal.h"
#include "heap_util.h"

#endif
