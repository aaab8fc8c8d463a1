/* prof_dump.c: what the samples of prof.c become: a heap profile (prof=1:
 * at exit, on prof_signal, on buddy_prof_dump) and a leak report (leaks=1:
 * at exit).
 *
 * The heap profile is gperftools' heap-profile text, which google-pprof
 * reads (text, call graphs, SVG):
 *   heap profile: <live samples>: <live bytes> [<samples>: <bytes>] @ heap_v2/<prof_sample>
 *   <live>: <live bytes> [<all>: <all bytes>] @ 0x<pc> 0x<return address> ...
 *   ...
 *   MAPPED_LIBRARIES:
 *   <a copy of /proc/self/maps>
 * one line per stack, innermost frame first. The figures are the samples'
 * own; "heap_v2/N" tells the reader that each stack's allocations were
 * sampled with probability 1 - exp(-size / N) (a Poisson process of rate
 * 1/N per byte, as tcache_prof.c draws it), by which it divides them. The
 * first frame is a return address made a call site (less 1), as the reader
 * does for the others.
 *
 * The leak report: the stacks with blocks still live at exit, each with its
 * estimated bytes and blocks (scaled the same way), largest first, their
 * frames named by dladdr (exported symbols; scripts/heapprof names the rest,
 * with file:line, by addr2line from the module+offset printed beside each).
 * The ten largest go to stderr, all of them to PREFIX.leaks.
 *
 * Both copy the stacks out under the samples' lock (prof_copy_stacks) into
 * memory from the OS, then write with no lock held: dladdr takes the dynamic
 * linker's lock, under which a thread in dlopen may be allocating.
 */
#include "prof.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define PROF_LEAKS_ON_STDERR 10

/* A buffered writer to a descriptor (lines of up to a few KiB). */
typedef struct prof_out {
  int fd;
  size_t len;
  char buf[16384];
} prof_out_t;

static void prof_flush(prof_out_t *o) {
  os_write_fd(o->fd, o->buf, o->len);
  o->len = 0;
}

static void prof_printf(prof_out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void prof_printf(prof_out_t *o, const char *fmt, ...) {
  if (o->len > sizeof o->buf - 4096) prof_flush(o);
  va_list ap;
  va_start(ap, fmt);
  base_vappend(o->buf, sizeof o->buf, &o->len, fmt, ap);
  va_end(ap);
}

/* The stacks, copied into memory of their own (*bytes of it, to unmap). */
static prof_stack_t *prof_snapshot(size_t *count, size_t *bytes, uint64_t *dropped) {
  size_t max = prof_stack_count() + 64; /* and those made meanwhile */
  *bytes = (max * sizeof(prof_stack_t) + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
  prof_stack_t *s = os_map_aligned(*bytes, PAGE_SIZE);
  *count = s != NULL ? prof_copy_stacks(s, max, dropped) : 0;
  return s;
}

/* PREFIX (prof_prefix, default buddy.%p; %p: the pid) and a suffix. */
static void prof_path(char *path, size_t size, const char *suffix) {
  const char *prefix = options.prof_prefix != NULL ? options.prof_prefix : "buddy.%p";
  size_t len = base_expand_pid(path, size, prefix);
  snprintf(path + len, size - len, "%s", suffix);
}

/* ---- The heap profile ---------------------------------------------------- */

static void prof_write_stack_line(prof_out_t *o, const prof_stack_t *s) {
  prof_printf(o, "%llu: %llu [%llu: %llu] @", (unsigned long long)s->live_count, (unsigned long long)s->live_bytes,
              (unsigned long long)s->total_count, (unsigned long long)s->total_bytes);
  for (uint32_t i = 0; i < s->depth; i++)
    prof_printf(o, " %#lx", (unsigned long)(uintptr_t)s->frames[i] - (i == 0 ? 1 : 0));
  prof_printf(o, "\n");
}

/* One heap profile is written at a time (its buffer is static). A fork
 * takes this lock first (fork.c), so that a child does not inherit it held
 * by a thread it does not have: a thread writing a profile holds no other
 * lock. */
static pthread_mutex_t prof_out_lock = PTHREAD_MUTEX_INITIALIZER;

void prof_dump_fork_prepare(void) {
  if (options_sampling()) lock_take(&prof_out_lock);
}

void prof_dump_fork_parent(void) {
  if (options_sampling()) lock_release(&prof_out_lock);
}

void prof_dump_fork_child(void) {
  if (options_sampling()) lock_reset(&prof_out_lock, NULL);
}

bool prof_dump(const char *path) {
  if (!options_sampling()) return false;
  size_t count, bytes;
  uint64_t dropped = 0;
  prof_stack_t *stacks = prof_snapshot(&count, &bytes, &dropped);
  if (stacks == NULL) return false;
  int fd = os_create_file(path);
  if (fd < 0) {
    os_unmap(stacks, bytes);
    return false;
  }
  static prof_out_t out; /* a thread at a time: the callers are few and rare */
  lock_take(&prof_out_lock);
  prof_out_t *o = &out;
  o->fd = fd;
  o->len = 0;
  unsigned long long live = 0, live_bytes = 0, all = 0, all_bytes = 0;
  for (size_t i = 0; i < count; i++) {
    live += stacks[i].live_count, live_bytes += stacks[i].live_bytes;
    all += stacks[i].total_count, all_bytes += stacks[i].total_bytes;
  }
  prof_printf(o, "heap profile: %llu: %llu [%llu: %llu] @ heap_v2/%ld\n", live, live_bytes, all, all_bytes,
              options.prof_sample);
  for (size_t i = 0; i < count; i++)
    if (stacks[i].depth > 0) prof_write_stack_line(o, &stacks[i]);
  prof_printf(o, "\nMAPPED_LIBRARIES:\n");
  prof_flush(o);
  os_copy_file(fd, "/proc/self/maps");
  lock_release(&prof_out_lock);
  os_close(fd);
  os_unmap(stacks, bytes);
  return true;
}

void prof_dump_on_signal(void) {
  static unsigned n;
  char path[OPTIONS_PATH_MAX + 32], suffix[32];
  snprintf(suffix, sizeof suffix, ".%u.heap", ++n);
  prof_path(path, sizeof path, suffix);
  if (!prof_dump(path)) base_warning("prof_signal: cannot write the heap profile ", path, (const char *)NULL);
}

/* ---- The leak report ----------------------------------------------------- */

/* What the samples of s stand for: each of size `avg` was sampled with
 * probability 1 - exp(-avg / prof_sample). */
static double prof_scale(const prof_stack_t *s) {
  double avg = (double)s->live_bytes / (double)s->live_count;
  double p = 1 - base_exp(-avg / (double)options.prof_sample);
  return p > 0 ? 1 / p : 1;
}

/* Printed as integers: printf's %f may allocate. */
static unsigned long long prof_round(double x) {
  return (unsigned long long)(x + 0.5);
}

static double prof_leak_bytes(const prof_stack_t *s) {
  return (double)s->live_bytes * prof_scale(s);
}

/* Shell sort of the live stacks, most estimated bytes first (no qsort: it
 * may allocate). */
static void prof_sort(prof_stack_t **v, size_t n) {
  for (size_t gap = n / 2; gap > 0; gap /= 2)
    for (size_t i = gap; i < n; i++)
      for (size_t j = i; j >= gap && prof_leak_bytes(v[j - gap]) < prof_leak_bytes(v[j]); j -= gap) {
        prof_stack_t *t = v[j];
        v[j] = v[j - gap];
        v[j - gap] = t;
      }
}

/* One frame: function+offset where dladdr knows a symbol, and the module
 * and offset in it, which addr2line reads (scripts/heapprof). A return
 * address is looked up less 1, in the call. */
static void prof_write_frame(prof_out_t *o, unsigned i, void *frame) {
  uintptr_t pc = (uintptr_t)frame - 1;
  Dl_info info;
  if (dladdr((void *)pc, &info) == 0 || info.dli_fname == NULL) {
    prof_printf(o, "    #%u %#lx ??\n", i, (unsigned long)pc);
    return;
  }
  unsigned long module_off = (unsigned long)(pc - (uintptr_t)info.dli_fbase);
  if (info.dli_sname == NULL || info.dli_saddr == NULL)
    return prof_printf(o, "    #%u %#lx ?? (%s+%#lx)\n", i, (unsigned long)pc, info.dli_fname, module_off);
  prof_printf(o, "    #%u %#lx %s+%#lx (%s+%#lx)\n", i, (unsigned long)pc, info.dli_sname,
              (unsigned long)(pc - (uintptr_t)info.dli_saddr), info.dli_fname, module_off);
}

static void prof_write_leak(prof_out_t *o, size_t rank, const prof_stack_t *s) {
  double scale = prof_scale(s);
  prof_printf(o, "leak %zu: %llu bytes in %llu blocks (estimated from %llu samples of %llu bytes), thread %d:\n", rank,
              prof_round((double)s->live_bytes * scale), prof_round((double)s->live_count * scale),
              (unsigned long long)s->live_count, (unsigned long long)s->live_bytes, s->tid);
  for (uint32_t i = 0; i < s->depth; i++) prof_write_frame(o, i, s->frames[i]);
}

static void prof_write_leaks(prof_out_t *o, prof_stack_t **v, size_t n, size_t max, const char *file) {
  double bytes = 0, blocks = 0;
  for (size_t i = 0; i < n; i++) bytes += prof_leak_bytes(v[i]), blocks += (double)v[i]->live_count * prof_scale(v[i]);
  prof_printf(o,
              "buddymalloc: leak report (pid %d): about %llu bytes in %llu blocks still live at exit, from %zu stacks"
              " (estimated from samples, one per %ld bytes allocated)%s%s\n",
              os_process_id(), prof_round(bytes), prof_round(blocks), n, options.prof_sample,
              file != NULL ? "; all of them in " : "", file != NULL ? file : "");
  for (size_t i = 0; i < n && i < max; i++) prof_write_leak(o, i + 1, v[i]);
  prof_flush(o);
}

static void prof_leak_report(void) {
  size_t count, bytes;
  uint64_t dropped = 0;
  prof_stack_t *stacks = prof_snapshot(&count, &bytes, &dropped);
  if (stacks == NULL) return;
  size_t vbytes = (count * sizeof(prof_stack_t *) + PAGE_SIZE) & ~(PAGE_SIZE - 1);
  prof_stack_t **v = os_map_aligned(vbytes, PAGE_SIZE);
  if (v == NULL) return os_unmap(stacks, bytes);
  size_t n = 0;
  for (size_t i = 0; i < count; i++)
    if (stacks[i].live_count > 0) v[n++] = &stacks[i];
  prof_sort(v, n);
  static prof_out_t out;
  char path[OPTIONS_PATH_MAX + 32];
  prof_path(path, sizeof path, ".leaks");
  out.fd = os_create_file(path);
  bool file = out.fd >= 0;
  if (file) {
    prof_write_leaks(&out, v, n, n, NULL);
    os_close(out.fd);
  }
  out.fd = 2;
  out.len = 0;
  prof_write_leaks(&out, v, n, PROF_LEAKS_ON_STDERR, file ? path : NULL);
  os_unmap(v, vbytes);
  os_unmap(stacks, bytes);
}

/* At exit: the profile (prof=1) and the leak report (leaks=1). */
__attribute__((destructor)) startup_code static void prof_at_exit(void) {
  if (options.prof) {
    char path[OPTIONS_PATH_MAX + 32];
    prof_path(path, sizeof path, ".heap");
    if (!prof_dump(path)) base_warning("prof: cannot write the heap profile ", path, (const char *)NULL);
  }
  if (options.leaks) prof_leak_report();
}
