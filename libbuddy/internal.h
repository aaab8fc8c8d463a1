/* internal.h: every layer of libbuddy, for the code above them all (the
 * shim) and for whole-heap tests. A file of libbuddy includes its own
 * layer's header instead (docs/design.md lists the layers).
 */
#ifndef BUDDY_INTERNAL_H
#define BUDDY_INTERNAL_H

#include "api.h"

#endif /* BUDDY_INTERNAL_H */
