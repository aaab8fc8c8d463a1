/* stats.c: figures about the heap, gathered on demand by walking the zones.
 *
 * Nothing here is on a fast path: stats_collect() takes each zone's lock in
 * turn and reads the page descriptors, so the figures are exact for each
 * zone at the moment it is read (the zones and the thread caches are read one
 * after the other, not at one instant). BUDDY_STATS=1 (stats=text) prints
 * them at exit, as text, BUDDY_STATS=json (stats=json) as JSON; malloc_stats()
 * prints the text at any time, and stats_signal= a snapshot (snapshot.c) on
 * a signal. Each report names its process; stats_file= sends them to a file
 * (appended, %p standing for the pid) instead of stderr. Output is formatted
 * in a static buffer and written with write(2).
 */
#include "report.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void stats_add_region(buddy_stats_t *s, const region_t *r) {
  for (size_t i = 0; i < BUDDY_REGION_PAGES;) {
    const page_desc_t *d = &r->pages[i];
    if (d->kind == PAGE_SLAB) {
      unsigned cls = page_class_of_desc(d);
      s->class_slabs[cls]++;
      unsigned live = d->slab_used - slab_kept(d); /* not secure mode's guards */
      s->class_live[cls] += live;
      s->bytes_in_slabs += PAGE_SIZE << d->order;
      s->bytes_small_live += (size_t)live * size_class_bytes[cls];
    } else if (d->kind == PAGE_RUN && (d->flags & PAGE_GUARD)) {
      /* secure mode's guard page: never resident */
    } else if (d->kind == PAGE_RUN && (d->flags & PAGE_META)) {
      s->bytes_meta_runs += PAGE_SIZE << d->order; /* resident at most */
    } else if (d->kind == PAGE_RUN) {
      s->runs++;
      s->bytes_runs += PAGE_SIZE << d->order;
    } else if (d->kind == PAGE_FREE && !(d->flags & PAGE_ZEROED)) {
      s->bytes_resident += PAGE_SIZE << d->order; /* freed, not purged yet */
    }
    i += (size_t)1 << d->order;
  }
}

void stats_collect(buddy_stats_t *s) {
  memset(s, 0, sizeof *s);
  for (unsigned z = 0; z < ZONES_MAX; z++) {
    zone_t *zone = &zones[z];
    zone_lock(zone);
    const buddy_heap_t *h = &zone->heap;
    s->regions += h->regions;
    s->pages_used += h->pages_used;
    s->pages_free += h->pages_free;
    for (unsigned k = 0; k < BUDDY_ORDERS; k++) s->free_blocks[k] += h->free_blocks[k];
    for (const region_t *r = h->region_list; r != NULL; r = r->next) stats_add_region(s, r);
    s->purged_pages += zone->purged_pages;
    s->bytes_in_transfer += zone->transfer_bytes;
    zone_unlock(zone);
  }
  s->huge_blocks = __atomic_load_n(&huge_live_blocks, __ATOMIC_RELAXED);
  s->huge_bytes = __atomic_load_n(&huge_live_bytes, __ATOMIC_RELAXED);
  s->huge_cached_bytes = __atomic_load_n(&huge_cached_bytes, __ATOMIC_RELAXED);
  s->medium_requests = __atomic_load_n(&zone_run_requests, __ATOMIC_RELAXED);
  s->huge_requests = __atomic_load_n(&huge_requests, __ATOMIC_RELAXED);
  s->huge_descriptors = __atomic_load_n(&huge_descriptors, __ATOMIC_RELAXED);
  tcache_collect_stats(s);
  s->bytes_allocated = s->bytes_small_live + s->bytes_runs + s->huge_bytes;
  s->bytes_resident += s->pages_used * PAGE_SIZE + s->regions * sizeof(region_t) + s->huge_bytes + s->huge_cached_bytes;
  /* The count behind the peak moves in steps (ZONE_OUT_GRAIN): never below
   * what is allocated now. */
  size_t peak = heap_bytes_peak();
  s->bytes_allocated_peak = peak > s->bytes_allocated ? peak : s->bytes_allocated;
  s->process_peak_rss = os_peak_resident();
}

/* ---- Printing ------------------------------------------------------------ */

typedef struct out {
  char text[STATS_TEXT_MAX];
  size_t len;
} out_t;

static void out_printf(out_t *o, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  base_vappend(o->text, sizeof o->text, &o->len, fmt, ap);
  va_end(ap);
}

/* A string as JSON wants it: quotes, backslashes and control bytes escaped. */
static void out_json_string(out_t *o, const char *s) {
  out_printf(o, "\"");
  for (; *s != '\0'; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') out_printf(o, "\\%c", c);
    else if (c < 0x20) out_printf(o, "\\u%04x", c);
    else out_printf(o, "%c", c);
  }
  out_printf(o, "\"");
}

static const char *const stats_when_text[] = {
    [STATS_AT_EXIT] = "at exit", [STATS_ON_SIGNAL] = "on signal", [STATS_ON_CALL] = "on request"};
static const char *const stats_when_json[] = {
    [STATS_AT_EXIT] = "exit", [STATS_ON_SIGNAL] = "signal", [STATS_ON_CALL] = "call"};

/* The objects of class c out of their slabs that are the program's: the
 * huge blocks' descriptors are the allocator's own. */
static size_t stats_class_out(const buddy_stats_t *s, unsigned c) {
  size_t own = c == HUGE_DESC_CLASS ? s->huge_descriptors : 0;
  return s->class_live[c] > own ? s->class_live[c] - own : 0;
}

static void stats_text(out_t *o, const buddy_stats_t *s, stats_when_t when) {
  out_printf(o, "buddymalloc statistics: pid %d (%s), %s", os_process_id(), os_program_name(), stats_when_text[when]);
  if (when == STATS_ON_SIGNAL) out_printf(o, " %ld", options.stats_signal);
  out_printf(o, "\n");
  out_printf(o, "  allocated           %zu KiB now, %zu KiB at peak: small blocks out of their slabs, page runs,\n",
             s->bytes_allocated >> 10, s->bytes_allocated_peak >> 10);
  out_printf(o, "                      huge blocks (now, %zu KiB of them wait in thread caches, %zu KiB in transfer\n",
             s->bytes_cached >> 10, s->bytes_in_transfer >> 10);
  out_printf(o,
             "                      stacks; the peak is counted as blocks leave and return to the zones, to\n"
             "                      %ld KiB per zone)\n",
             ZONE_OUT_GRAIN >> 10);
  out_printf(o, "  resident            %zu KiB at most (pages never touched count too): pages in use, freed\n",
             s->bytes_resident >> 10);
  out_printf(o, "                      pages not yet given back to the OS, metadata, huge blocks live and kept\n");
  if (s->process_peak_rss != 0)
    out_printf(o, "  peak RSS            %zu KiB, the whole process's (the kernel's VmHWM)\n",
               s->process_peak_rss >> 10);
  out_printf(o, "  regions mapped      %zu (%zu KiB each: %u pages of 4 KiB)\n", s->regions,
             (size_t)BUDDY_REGION_SIZE >> 10, (unsigned)BUDDY_REGION_PAGES);
  out_printf(o, "  pages used / free   %zu / %zu\n", s->pages_used, s->pages_free);
  out_printf(o, "  pages purged        %zu (given back to the OS so far)\n", s->purged_pages);
  out_printf(o, "  page runs           %zu (%zu KiB): medium blocks up to %zu KiB, each a power of two pages\n",
             s->runs, s->bytes_runs >> 10, (size_t)MEDIUM_SIZE_MAX >> 10);
  out_printf(o, "  huge blocks         %zu (%zu KiB), each a mapping of its own; %zu KiB freed, kept for reuse\n",
             s->huge_blocks, s->huge_bytes >> 10, s->huge_cached_bytes >> 10);
  out_printf(o, "  small blocks        %zu KiB out of %zu KiB of slabs\n", s->bytes_small_live >> 10,
             s->bytes_in_slabs >> 10);
  out_printf(o, "  free blocks        ");
  bool none = true;
  for (unsigned k = 0; k < BUDDY_ORDERS; k++)
    if (s->free_blocks[k] != 0) {
      out_printf(o, "%s %zu of %zu page%s", none ? "" : ",", s->free_blocks[k], (size_t)1 << k, k == 0 ? "" : "s");
      none = false;
    }
  out_printf(o, "%s\n", none ? " none" : "");
  out_printf(o, "  requests            medium %llu, huge %llu (small ones: per class, below)\n",
             (unsigned long long)s->medium_requests, (unsigned long long)s->huge_requests);
  out_printf(
      o, "  thread caches       %zu, holding %zu KiB, in %zu KiB of page runs; %zu emptied while idle (%zu KiB)\n",
      s->thread_caches, s->bytes_cached >> 10, s->bytes_meta_runs >> 10, s->caches_reclaimed, s->bytes_reclaimed >> 10);
  if (s->huge_descriptors != 0)
    out_printf(o, "  descriptors         %zu of huge blocks, %u bytes each (the allocator's own: not in the table)\n",
               s->huge_descriptors, (unsigned)size_class_bytes[HUGE_DESC_CLASS]);
  out_printf(o, "  size class  block size  requests   slabs  blocks out  (in caches)\n");
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) {
    size_t out = stats_class_out(s, c);
    /* The caches are read after the zones: never more in them than out. */
    size_t cached = s->class_cached[c] < out ? s->class_cached[c] : out;
    if (out != 0 || s->class_requests[c] != 0)
      out_printf(o, "  %10u %11u %9llu %7zu %11zu %12zu\n", c, (unsigned)size_class_bytes[c],
                 (unsigned long long)s->class_requests[c], s->class_slabs[c], out, cached);
  }
}

static void stats_json(out_t *o, const buddy_stats_t *s, stats_when_t when) {
  out_printf(o, "{\"allocator\":\"buddymalloc\",\"pid\":%d,\"program\":", os_process_id());
  out_json_string(o, os_program_name());
  out_printf(o, ",\"when\":\"%s\"", stats_when_json[when]);
  if (when == STATS_ON_SIGNAL) out_printf(o, ",\"signal\":%ld", options.stats_signal);
  out_printf(
      o,
      ",\"regions\":%zu,\"pages_used\":%zu,\"pages_free\":%zu,"
      "\"runs\":%zu,\"run_bytes\":%zu,\"huge_blocks\":%zu,\"huge_bytes\":%zu,\"purged_pages\":%zu,"
      "\"small_live_bytes\":%zu,\"slab_bytes\":%zu,\"medium_requests\":%llu,\"huge_requests\":%llu,"
      "\"allocated_bytes\":%zu,\"allocated_peak_bytes\":%zu,\"resident_bytes\":%zu,\"process_peak_rss_bytes\":%zu,"
      "\"thread_caches\":%zu,\"cached_bytes\":%zu,\"cache_run_bytes\":%zu,\"transfer_bytes\":%zu,"
      "\"caches_reclaimed\":%zu,\"reclaimed_bytes\":%zu,\"huge_descriptors\":%zu,"
      "\"free_blocks\":[",
      s->regions, s->pages_used, s->pages_free, s->runs, s->bytes_runs, s->huge_blocks, s->huge_bytes, s->purged_pages,
      s->bytes_small_live, s->bytes_in_slabs, (unsigned long long)s->medium_requests,
      (unsigned long long)s->huge_requests, s->bytes_allocated, s->bytes_allocated_peak, s->bytes_resident,
      s->process_peak_rss, s->thread_caches, s->bytes_cached, s->bytes_meta_runs, s->bytes_in_transfer,
      s->caches_reclaimed, s->bytes_reclaimed, s->huge_descriptors);
  for (unsigned k = 0; k < BUDDY_ORDERS; k++) out_printf(o, "%s%zu", k ? "," : "", s->free_blocks[k]);
  out_printf(o, "],\"classes\":[");
  bool first = true;
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++) {
    if (s->class_slabs[c] == 0 && s->class_requests[c] == 0) continue;
    out_printf(o, "%s{\"class\":%u,\"bytes\":%u,\"requests\":%llu,\"slabs\":%zu,\"live\":%zu,\"cached\":%zu}",
               first ? "" : ",", c, (unsigned)size_class_bytes[c], (unsigned long long)s->class_requests[c],
               s->class_slabs[c], s->class_live[c], s->class_cached[c]);
    first = false;
  }
  out_printf(o, "]}\n");
}

/* ---- Where the reports go ------------------------------------------------- */

static int stats_stderr_fd = -1;

/* Each guards a static buffer that its user starts afresh every time, so a
 * fork child re-makes them rather than have them taken around fork: a
 * report may wait on a full pipe, and fork must not wait for it. */
static pthread_mutex_t stats_format_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t stats_print_lock = PTHREAD_MUTEX_INITIALIZER;

void stats_fork_child(void) {
  pthread_mutex_init(&stats_format_lock, NULL);
  pthread_mutex_init(&stats_print_lock, NULL);
}

/* A private copy of stderr, kept for the reports at exit and on a signal: a
 * program may close fd 2 first (coreutils do). */
startup_code void stats_init(void) {
  if (options.stats != 0 || options.stats_signal != 0) stats_stderr_fd = os_dup_stderr();
  heapmap_init();
}

size_t stats_format_json(char *buf, size_t size) {
  static out_t o;
  buddy_stats_t s;
  stats_collect(&s);
  pthread_mutex_lock(&stats_format_lock);
  o.len = 0;
  stats_json(&o, &s, STATS_ON_CALL);
  size_t n = o.len < size ? o.len : size;
  memcpy(buf, o.text, n);
  pthread_mutex_unlock(&stats_format_lock);
  return n;
}

/* The stats_file path with each %p replaced by the pid, into path. */
static void stats_file_path(char *path, size_t size) {
  base_expand_pid(path, size, options.stats_file);
}

/* Under stats_print_lock: where a report goes. A file that cannot be opened
 * is said once per process, and the report goes to stderr. */
static int stats_open_output(bool *opened) {
  static char path[OPTIONS_PATH_MAX + 16];
  static bool warned;
  *opened = false;
  if (options.stats_file != NULL) {
    stats_file_path(path, sizeof path);
    int fd = os_append_file(path);
    if (fd >= 0) {
      *opened = true;
      return fd;
    }
    if (!warned) base_warning("cannot open stats_file '", path, "': the statistics go to stderr", (const char *)NULL);
    warned = true;
  }
  return stats_stderr_fd >= 0 ? stats_stderr_fd : 2;
}

static void stats_write(int fd, stats_when_t when, bool json, bool to_options_output) {
  static out_t o; /* too large for small thread stacks; printing is rare */
  buddy_stats_t s;
  stats_collect(&s);
  pthread_mutex_lock(&stats_print_lock);
  o.len = 0;
  if (json) stats_json(&o, &s, when);
  else stats_text(&o, &s, when);
  bool opened = false;
  if (to_options_output) fd = stats_open_output(&opened);
  os_write_fd(fd, o.text, o.len);
  if (opened) os_close(fd);
  pthread_mutex_unlock(&stats_print_lock);
}

void stats_print(bool json) {
  stats_write(2, STATS_ON_CALL, json, false);
}

void stats_report(stats_when_t when) {
  stats_write(-1, when, options.stats == 2, true);
}

__attribute__((destructor)) startup_code static void stats_at_exit(void) {
  heapmap_write();
  if (options.stats != 0) stats_report(STATS_AT_EXIT);
}
