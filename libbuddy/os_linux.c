/* os_linux.c: the Linux implementation of os.h (mmap, madvise, environ).
 *
 * File and time calls are system calls made directly too (syscall(2) is no
 * cancellation point, where libc's open, read, write, close and nanosleep
 * are).
 *
 * The memory calls go straight to the kernel with syscall(2), not through
 * libc's mmap/munmap/madvise/mremap symbols: another preloaded library may
 * interpose those and call malloc from them, which would re-enter buddymalloc
 * while it holds a zone lock. Sanitizer builds use the libc symbols instead:
 * ASan and TSan must see mappings come and go to keep their shadow memory
 * right (unseen munmaps leave the shadow of freed ranges resident).
 *
 * syscall(2) reads every argument as a long through varargs: each one is
 * passed as a long (or a pointer or size_t) here. An int leaves the upper
 * half of its slot undefined, and the kernel reads the whole of it where its
 * parameter is a long: mmap's offset, the sixth argument, goes on the stack,
 * where nothing clears that half (valgrind reports it). */
#include "os.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#if __has_include(<sys/single_threaded.h>)
#include <sys/single_threaded.h>
#define OS_HAS_SINGLE_THREADED 1
#endif

extern char **environ;
/* glibc's stdio list lock (exported since 2.2.5; weak: absent elsewhere). */
extern void _IO_list_lock(void) __attribute__((weak));
extern void _IO_list_unlock(void) __attribute__((weak));
extern void _IO_list_resetlock(void) __attribute__((weak));

/* Private descriptors are placed at or above this, out of programs' way. */
#define OS_PRIVATE_FD_MIN 200

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
static const bool os_via_libc = true;
#else
static const bool os_via_libc = false;
#endif

/* Read-write memory is the program's: the kernel's overcommit policy judges
 * it as it judges glibc's mappings, so a request far beyond what the machine
 * has fails here (ENOMEM) rather than dying on first touch. Read-only
 * reservations (the small map's leaves) are never committed. */
static void *os_mmap(void *hint, size_t size, int prot) {
  int flags = MAP_PRIVATE | MAP_ANONYMOUS | (prot == PROT_READ ? MAP_NORESERVE : 0);
  if (os_via_libc) {
    void *p = mmap(hint, size, prot, flags, -1, 0);
    return p == MAP_FAILED ? NULL : p;
  }
  long p = syscall(SYS_mmap, hint, size, (long)prot, (long)flags, -1L, 0L);
  return p == -1 ? NULL : (void *)p;
}

static int munmap_raw(void *addr, size_t size) {
  return os_via_libc ? munmap(addr, size) : (int)syscall(SYS_munmap, addr, size);
}

static int madvise_raw(void *addr, size_t size, int advice) {
  return os_via_libc ? madvise(addr, size, advice) : (int)syscall(SYS_madvise, addr, size, (long)advice);
}

static void *mremap_raw(void *addr, size_t old_size, size_t new_size, int flags, void *target) {
  if (os_via_libc) return mremap(addr, old_size, new_size, flags, target);
  long p = syscall(SYS_mremap, addr, old_size, new_size, (long)flags, target);
  return p == -1 ? MAP_FAILED : (void *)p;
}

/* Over-maps by `align` and trims both ends, keeping `prefix` bytes before
 * the aligned address: the only portable way to get an alignment larger than
 * the page size from mmap. */
void *os_map_aligned_with_prefix(size_t prefix, size_t size, size_t align) {
  size_t total;
  if (__builtin_add_overflow(prefix, size, &total) || __builtin_add_overflow(total, align, &total)) return NULL;
  int saved = errno;
  char *raw = os_mmap(NULL, total, PROT_READ | PROT_WRITE), *aligned = NULL;
  if (raw != NULL) {
    aligned = (char *)(((uintptr_t)raw + prefix + align - 1) & ~(uintptr_t)(align - 1));
    char *start = aligned - prefix, *end = aligned + size;
    if (start > raw) munmap_raw(raw, (size_t)(start - raw));
    if (raw + total > end) munmap_raw(end, (size_t)(raw + total - end));
  }
  errno = saved;
  return aligned;
}

/* A first try maps exactly `size`, which the kernel often places aligned
 * already; otherwise over-map and trim (os_map_aligned_with_prefix). */
void *os_map_aligned(size_t size, size_t align) {
  int saved = errno;
  void *p = os_mmap(NULL, size, PROT_READ | PROT_WRITE);
  if (p != NULL && ((uintptr_t)p & (align - 1)) != 0) {
    munmap_raw(p, size);
    p = os_map_aligned_with_prefix(0, size, align);
  }
  errno = saved;
  return p;
}

void *os_map_readonly(size_t size) {
  int saved = errno;
  void *p = os_mmap(NULL, size, PROT_READ);
  errno = saved;
  return p;
}

static bool os_protect(void *addr, size_t size, int prot) {
  int saved = errno;
  int r = os_via_libc ? mprotect(addr, size, prot) : (int)syscall(SYS_mprotect, addr, size, (long)prot);
  errno = saved;
  return r == 0;
}

bool os_make_writable(void *addr, size_t size) {
  return os_protect(addr, size, PROT_READ | PROT_WRITE);
}

bool os_make_readonly(void *addr, size_t size) {
  return os_protect(addr, size, PROT_READ);
}

void os_exclude_from_core_dumps(void *addr, size_t size) {
  int saved = errno;
  madvise_raw(addr, size, MADV_DONTDUMP);
  errno = saved;
}

void os_unmap(void *addr, size_t size) {
  int saved = errno;
  munmap_raw(addr, size);
  errno = saved;
}

bool os_purge(void *addr, size_t size, bool lazy) {
  int saved = errno;
  bool zeroed = false;
  if (!lazy || madvise_raw(addr, size, MADV_FREE) != 0) zeroed = madvise_raw(addr, size, MADV_DONTNEED) == 0;
  errno = saved;
  return zeroed;
}

void os_huge_pages(void *addr, size_t size, bool wanted) {
  int saved = errno;
  madvise_raw(addr, size, wanted ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
  errno = saved;
}

void *os_remap_aligned(void *addr, size_t old_size, size_t new_size, size_t align) {
  int saved = errno;
  void *p = mremap_raw(addr, old_size, new_size, 0, NULL); /* in place first */
  if (p == MAP_FAILED) {
    /* Reserve an aligned target, then move the pages into it: no copying. */
    void *target = os_map_aligned(new_size, align);
    p = NULL;
    if (target != NULL) {
      p = mremap_raw(addr, old_size, new_size, MREMAP_MAYMOVE | MREMAP_FIXED, target);
      if (p == MAP_FAILED) {
        munmap_raw(target, new_size);
        p = NULL;
      }
    }
  }
  errno = saved;
  return p;
}

/* glibc's pthread_atfork is a stub in libc_nonshared.a that calls this with
 * the library's __dso_handle (so that the handlers go if it is unloaded);
 * linked from that archive, the stub would land at the end of the library's
 * code, in a 64 KiB window of it that start-up touches for nothing else. */
extern int __register_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void), void *dso_handle);
extern void *__dso_handle;

startup_code void os_at_fork(void (*prepare)(void), void (*parent)(void), void (*child)(void)) {
  __register_atfork(prepare, parent, child, __dso_handle);
}

startup_code size_t os_page_size(void) {
  /* The kernel's word, as sysconf(_SC_PAGESIZE) gives it; sysconf's
   * dispatch reads a page of libc's read-only data that a process would
   * otherwise not map (with fault-around, 64 KiB of it): start-up cost. */
  unsigned long size = getauxval(AT_PAGESZ);
  return size != 0 ? (size_t)size : (size_t)sysconf(_SC_PAGESIZE);
}

startup_code const char *os_getenv(const char *name) {
  if (getauxval(AT_SECURE)) return NULL;
  size_t len = strlen(name);
  for (char **e = environ; e != NULL && *e != NULL; e++)
    if (strncmp(*e, name, len) == 0 && (*e)[len] == '=') return *e + len + 1;
  return NULL;
}

void os_write_stderr(const char *buf, size_t len) {
  os_write_fd(STDERR_FILENO, buf, len);
}

/* open(2), read(2), write(2), close(2) without their cancellation points;
 * errno as the system call left it. */
static int os_open_raw(const char *path, int flags, int mode) {
  return (int)syscall(SYS_openat, (long)AT_FDCWD, path, (long)flags, (long)mode);
}
static ssize_t os_read_raw(int fd, void *buf, size_t len) {
  return (ssize_t)syscall(SYS_read, (long)fd, buf, len);
}
static ssize_t os_write_raw(int fd, const void *buf, size_t len) {
  return (ssize_t)syscall(SYS_write, (long)fd, buf, len);
}
static void os_close_raw(int fd) {
  syscall(SYS_close, (long)fd);
}

int os_append_file(const char *path) {
  int saved = errno;
  int fd = os_open_raw(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  errno = saved;
  return fd;
}

int os_create_file(const char *path) {
  int saved = errno;
  int fd = os_open_raw(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  errno = saved;
  return fd;
}

bool os_copy_file(int fd, const char *path) {
  int saved = errno;
  int in = os_open_raw(path, O_RDONLY | O_CLOEXEC, 0);
  bool ok = in >= 0;
  char buf[4096];
  for (ssize_t n; ok && (n = os_read_raw(in, buf, sizeof buf)) != 0;) {
    if (n < 0) {
      ok = errno == EINTR;
      continue;
    }
    os_write_fd(fd, buf, (size_t)n);
  }
  if (in >= 0) os_close_raw(in);
  errno = saved;
  return ok;
}

void os_close(int fd) {
  int saved = errno;
  os_close_raw(fd);
  errno = saved;
}

int os_dup_stderr(void) {
  int saved = errno;
  int fd = (int)syscall(SYS_fcntl, (long)STDERR_FILENO, (long)F_DUPFD_CLOEXEC, (long)OS_PRIVATE_FD_MIN);
  errno = saved;
  return fd;
}

void os_write_fd(int fd, const char *buf, size_t len) {
  int saved = errno;
  while (len > 0) {
    ssize_t n = os_write_raw(fd, buf, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    buf += n;
    len -= (size_t)n;
  }
  errno = saved;
}

_Noreturn void os_abort(void) {
  abort();
}

uint64_t os_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void os_sleep_ms(long ms) {
  int saved = errno;
  struct timespec pause = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
  while (syscall(SYS_nanosleep, &pause, &pause) != 0 && errno == EINTR) {
  }
  errno = saved;
}

void os_futex_wait(uint32_t *word, uint32_t expected) {
  int saved = errno;
  syscall(SYS_futex, word, (long)FUTEX_WAIT_PRIVATE, (long)expected, NULL, NULL, 0L);
  errno = saved;
}

void os_futex_wake(uint32_t *word) {
  int saved = errno;
  syscall(SYS_futex, word, (long)FUTEX_WAKE_PRIVATE, 1L, NULL, NULL, 0L);
  errno = saved;
}

int os_thread_id(void) {
  return (int)syscall(SYS_gettid);
}

/* Reads the file at path into buf (NUL-terminated; what does not fit is
 * left out); false on failure. One read: a /proc file is made whole by it. */
static bool os_read_small_file(const char *path, char *buf, size_t size) {
  int fd = os_open_raw(path, O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) return false;
  ssize_t n;
  do n = os_read_raw(fd, buf, size - 1);
  while (n < 0 && errno == EINTR);
  os_close_raw(fd);
  if (n <= 0) return false;
  buf[n] = '\0';
  return true;
}

/* Reads /proc/self/task/TID/NAME into buf (NUL-terminated); false on failure. */
static bool os_read_task_file(int tid, const char *name, char *buf, size_t size) {
  char path[64] = "/proc/self/task/";
  size_t len = strlen(path);
  char digits[16];
  size_t nd = 0;
  for (unsigned v = (unsigned)tid; nd == 0 || v != 0; v /= 10) digits[nd++] = (char)('0' + v % 10);
  while (nd > 0) path[len++] = digits[--nd];
  path[len++] = '/';
  size_t name_len = strlen(name);
  memcpy(path + len, name, name_len + 1);
  return os_read_small_file(path, buf, size);
}

bool os_thread_blocked(int tid, uint64_t *run_ns) {
  int saved = errno;
  char text[256];
  bool blocked = false;
  /* "running", or "-1 sp pc" when blocked outside a system call (a page
   * fault), or "NR args... sp pc" inside system call NR. */
  if (os_read_task_file(tid, "syscall", text, sizeof text) && text[0] >= '0' && text[0] <= '9' &&
      os_read_task_file(tid, "schedstat", text, sizeof text)) {
    uint64_t ns = 0;
    for (const char *c = text; *c >= '0' && *c <= '9'; c++) ns = ns * 10 + (uint64_t)(*c - '0');
    *run_ns = ns;
    blocked = true;
  }
  errno = saved;
  return blocked;
}

size_t os_peak_resident(void) {
  int saved = errno;
  char text[4096];
  size_t kib = 0;
  if (os_read_small_file("/proc/self/status", text, sizeof text)) {
    const char *line = strstr(text, "\nVmHWM:");
    if (line != NULL) {
      const char *c = line + strlen("\nVmHWM:");
      while (*c == ' ' || *c == '\t') c++;
      for (; *c >= '0' && *c <= '9'; c++) kib = kib * 10 + (size_t)(*c - '0');
    }
  }
  errno = saved;
  return kib * 1024;
}

int os_process_id(void) {
  return (int)syscall(SYS_getpid);
}

const char *os_program_name(void) {
  return program_invocation_short_name != NULL ? program_invocation_short_name : "";
}

size_t os_current_directory(char *buf, size_t size) {
  int saved = errno;
  long n = syscall(SYS_getcwd, buf, size);
  errno = saved;
  /* The length with its NUL; "(unreachable)..." when the directory is not
   * below the process's root. */
  if (n <= 1 || buf[0] != '/') return 0;
  return (size_t)n - 1;
}

bool os_catch_signal(int sig, void (*handler)(int)) {
  int saved = errno;
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = handler;
  action.sa_flags = SA_RESTART;
  sigfillset(&action.sa_mask); /* nothing else runs on top of the handler */
  bool caught = sigaction(sig, &action, NULL) == 0;
  errno = saved;
  return caught;
}

bool os_make_guard(void *addr, size_t size) {
  return os_protect(addr, size, PROT_NONE);
}

size_t os_counted_guards_max = OS_COUNTED_GUARDS_MAX;
static size_t os_counted_guards_live;

bool os_make_counted_guard(void *addr, size_t size) {
  size_t live = __atomic_add_fetch(&os_counted_guards_live, 1, __ATOMIC_RELAXED);
  if (live <= __atomic_load_n(&os_counted_guards_max, __ATOMIC_RELAXED) && os_make_guard(addr, size)) return true;
  __atomic_sub_fetch(&os_counted_guards_live, 1, __ATOMIC_RELAXED);
  return false;
}

bool os_drop_counted_guard(void *addr, size_t size) {
  if (!os_make_writable(addr, size)) return false;
  __atomic_sub_fetch(&os_counted_guards_live, 1, __ATOMIC_RELAXED);
  return true;
}

size_t os_counted_guards(void) {
  return __atomic_load_n(&os_counted_guards_live, __ATOMIC_RELAXED);
}

static void (*os_fault_handler)(void *addr);
static struct sigaction os_fault_before[2]; /* SIGSEGV's and SIGBUS's */

static void os_on_fault(int sig, siginfo_t *info, void *context) {
  (void)context;
  os_fault_handler(info->si_addr);
  /* Not ours to report: as before, and the access faults again. */
  sigaction(sig, &os_fault_before[sig == SIGBUS], NULL);
}

bool os_catch_faults(void (*handler)(void *addr)) {
  int saved = errno;
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_sigaction = os_on_fault;
  action.sa_flags = SA_SIGINFO | SA_ONSTACK;
  os_fault_handler = handler;
  bool caught = sigaction(SIGSEGV, &action, &os_fault_before[0]) == 0 &&
                sigaction(SIGBUS, &action, &os_fault_before[1]) == 0;
  errno = saved;
  return caught;
}

bool os_start_thread(void *(*main)(void *)) {
  int saved = errno;
  sigset_t all, before;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &before); /* inherited by the new thread */
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t thread;
  bool started = pthread_create(&thread, &attr, main, NULL) == 0;
  pthread_attr_destroy(&attr);
  pthread_sigmask(SIG_SETMASK, &before, NULL);
  errno = saved;
  return started;
}

bool os_single_threaded(void) {
#ifdef OS_HAS_SINGLE_THREADED
  return __atomic_load_n(&__libc_single_threaded, __ATOMIC_RELAXED) != 0;
#else
  return false;
#endif
}

void os_stdio_lock(void) {
  if (_IO_list_lock != NULL) _IO_list_lock();
}

void os_stdio_unlock(void) {
  if (_IO_list_unlock != NULL) _IO_list_unlock();
}

void os_stdio_reset(void) {
  if (_IO_list_resetlock != NULL) _IO_list_resetlock();
}

unsigned long os_random_seed(void) {
  const unsigned char *bytes = (const unsigned char *)getauxval(AT_RANDOM);
  unsigned long seed = 0x9e3779b97f4a7c15ul;
  if (bytes != NULL) memcpy(&seed, bytes, sizeof seed);
  return seed ^ (unsigned long)(uintptr_t)&seed;
}
