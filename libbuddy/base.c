/* base.c: the base layer's own state: each thread's lock depth (lock.h),
 * the free key (base.h), which start-up sets (init.c), and the count of
 * bytes handed out with its peak (base.h); and the warnings' writer.
 */
#include "base.h"

#include <stdarg.h>
#include <string.h>

__thread unsigned lock_depth __attribute__((tls_model("initial-exec")));

uintptr_t free_key;

static long heap_bytes_out, heap_bytes_most;

/* Off the fast paths (base.h): an atomic add, and a compare-and-swap only
 * when the count passes its peak. */
void heap_bytes_note(long delta) {
  long now = __atomic_add_fetch(&heap_bytes_out, delta, __ATOMIC_RELAXED);
  long most = __atomic_load_n(&heap_bytes_most, __ATOMIC_RELAXED);
  while (now > most &&
         !__atomic_compare_exchange_n(&heap_bytes_most, &most, now, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
}

size_t heap_bytes_peak(void) {
  long most = __atomic_load_n(&heap_bytes_most, __ATOMIC_RELAXED);
  return most > 0 ? (size_t)most : 0;
}

void heap_bytes_fork_child(void) {
  heap_bytes_most = heap_bytes_out;
}

#define WARNING_MAX 512

void base_warning(const char *first, ...) {
  static const char prefix[] = "buddymalloc: warning: ";
  char line[WARNING_MAX];
  size_t len = sizeof prefix - 1;
  memcpy(line, prefix, len);
  va_list ap;
  va_start(ap, first);
  for (const char *s = first; s != NULL; s = va_arg(ap, const char *)) {
    size_t n = strlen(s);
    if (n > sizeof line - 1 - len) n = sizeof line - 1 - len; /* room for the newline */
    memcpy(line + len, s, n);
    len += n;
  }
  va_end(ap);
  line[len++] = '\n';
  os_write_stderr(line, len);
}
