/* base.c: the base layer's own state: each thread's lock depth (lock.h)
 * and the free key (base.h), which start-up sets (init.c).
 */
#include "base.h"

__thread unsigned lock_depth __attribute__((tls_model("initial-exec")));

uintptr_t free_key;
