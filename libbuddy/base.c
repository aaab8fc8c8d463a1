/* base.c: the base layer's own state: each thread's lock depth (lock.h),
 * the free key (base.h), which start-up sets (init.c), and the count of
 * bytes handed out with its peak (base.h); the lock words' waits (lock.h);
 * the warnings' writer; and the logarithm and exponential of the sampling
 * (no libm).
 */
#include "base.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

__thread unsigned lock_depth __attribute__((tls_model("initial-exec")));

/* How many times a thread looks at a held lock word before it sleeps. A
 * zone's longest sections (a flush of a full bin, a remote batch going home)
 * take tens of microseconds; a futex sleep and its wake-up cost about as
 * much, and more in a virtual machine. With 100 looks (glibc's adaptive
 * mutex's most, 3 to 5 us at a pause of 100 to 140 cycles), mixed-xthread
 * slept about 300 times a run, tcmalloc's threads 25 times; with 1000 (up to
 * 50 us), 20 to 40 times, and it took 0.7 to 0.9 of the time
 * (docs/benchmarks.md). A waiter whose holder was preempted wastes that much
 * before it sleeps, against a time slice of milliseconds. */
#define LOCK_WORD_SPINS 1000

static inline void lock_word_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

void lock_word_wait(lock_word_t *l) {
  for (unsigned i = 0; i < LOCK_WORD_SPINS; i++) {
    lock_word_relax();
    uint32_t free_state = 0;
    if (__atomic_load_n(&l->state, __ATOMIC_RELAXED) == 0 &&
        __atomic_compare_exchange_n(&l->state, &free_state, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
      return;
  }
  /* Marked 2 before sleeping, so that the holder's release wakes a sleeper;
   * a thread that takes it this way leaves it 2 (there may be others). */
  while (__atomic_exchange_n(&l->state, 2, __ATOMIC_ACQUIRE) != 0) os_futex_wait(&l->state, 2);
}

void lock_word_wake(lock_word_t *l) {
  os_futex_wake(&l->state);
}

static long heap_bytes_out startup_state, heap_bytes_most startup_state;

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

bool base_warnings_off;

void base_warning(const char *first, ...) {
  static const char prefix[] = "buddymalloc: warning: ";
  if (base_warnings_off) return;
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

/* ---- ln and exp ---------------------------------------------------------- */

#define BASE_LN2 0.69314718055994530942

/* x = m * 2^e with m in [1/sqrt 2, sqrt 2); ln m = 2 atanh(z), z = (m-1)/(m+1),
 * |z| < 0.172, whose odd series converges by a factor 34 a term. */
double base_ln(double x) {
  if (!(x > 0)) return -1e300;
  int e = 0;
  while (x >= 1.4142135623730951) x *= 0.5, e++;
  while (x < 0.7071067811865476) x *= 2, e--;
  double z = (x - 1) / (x + 1), z2 = z * z, term = z, sum = 0;
  for (int k = 1; k < 30; k += 2) {
    sum += term / k;
    term *= z2;
  }
  return 2 * sum + e * BASE_LN2;
}

/* e^x = 2^k e^r with r = x - k ln 2 in [-ln2/2, ln2/2]: a Taylor series. */
double base_exp(double x) {
  if (x < -700) return 0;
  if (x > 700) return 1e300;
  long k = (long)(x / BASE_LN2 + (x < 0 ? -0.5 : 0.5));
  double r = x - (double)k * BASE_LN2, term = 1, sum = 1;
  for (int i = 1; i < 20; i++) {
    term *= r / i;
    sum += term;
  }
  for (; k > 0; k--) sum *= 2;
  for (; k < 0; k++) sum *= 0.5;
  return sum;
}

size_t base_expand_pid(char *path, size_t size, const char *pattern) {
  char pid[16];
  int pid_len = snprintf(pid, sizeof pid, "%d", os_process_id());
  size_t len = 0;
  for (const char *c = pattern; *c != '\0' && len + 1 < size; c++) {
    if (c[0] == '%' && c[1] == 'p' && len + (size_t)pid_len + 1 < size) {
      memcpy(path + len, pid, (size_t)pid_len);
      len += (size_t)pid_len;
      c++;
    } else {
      path[len++] = *c;
    }
  }
  path[len] = '\0';
  return len;
}

void base_vappend(char *text, size_t size, size_t *len, const char *fmt, va_list ap) {
  int n = vsnprintf(text + *len, size - *len, fmt, ap);
  if (n > 0) *len += (size_t)n < size - *len ? (size_t)n : size - *len - 1;
}
