/* stats.c: figures about the heap, gathered on demand by walking the zones.
 *
 * Nothing here is on a fast path: stats_collect() takes each zone's lock in
 * turn and reads the page descriptors, so the figures are exact for each
 * zone at the moment it is read. BUDDY_STATS=1 prints them on stderr at exit
 * (also malloc_stats()); BUDDY_STATS=json prints JSON. Output is formatted in
 * a stack buffer and written with write(2).
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
      s->class_live[cls] += d->slab_used;
      s->bytes_in_slabs += PAGE_SIZE << d->order;
      s->bytes_small_live += (size_t)d->slab_used * size_class_bytes[cls];
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
  tcache_collect_stats(s);
  s->bytes_allocated = s->bytes_small_live + s->bytes_runs + s->huge_bytes;
  s->bytes_resident += s->pages_used * PAGE_SIZE + s->regions * sizeof(region_t) + s->huge_bytes + s->huge_cached_bytes;
}

/* ---- Printing ------------------------------------------------------------ */

typedef struct out {
  char text[STATS_TEXT_MAX];
  size_t len;
} out_t;

static void out_printf(out_t *o, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(o->text + o->len, sizeof o->text - o->len, fmt, ap);
  va_end(ap);
  if (n > 0) o->len += (size_t)n < sizeof o->text - o->len ? (size_t)n : sizeof o->text - o->len - 1;
}

static void stats_text(out_t *o, const buddy_stats_t *s) {
  out_printf(o, "buddymalloc statistics\n");
  out_printf(o, "  regions mapped      %zu (%zu KiB)\n", s->regions, s->regions * (BUDDY_REGION_SIZE >> 10));
  out_printf(o, "  pages used / free   %zu / %zu\n", s->pages_used, s->pages_free);
  out_printf(o, "  page runs           %zu (%zu KiB)\n", s->runs, s->bytes_runs >> 10);
  out_printf(o, "  pages purged        %zu\n", s->purged_pages);
  out_printf(o, "  huge blocks         %zu (%zu KiB, %zu KiB cached)\n", s->huge_blocks, s->huge_bytes >> 10,
             s->huge_cached_bytes >> 10);
  out_printf(o, "  small: %zu KiB live in %zu KiB of slabs\n", s->bytes_small_live >> 10, s->bytes_in_slabs >> 10);
  out_printf(o,
             "  allocated / resident %zu / %zu KiB (at most; of the allocated, %zu KiB in thread caches, %zu KiB in "
             "transfer stacks)\n",
             s->bytes_allocated >> 10, s->bytes_resident >> 10, s->bytes_cached >> 10, s->bytes_in_transfer >> 10);
  out_printf(o, "  free blocks per order:");
  for (unsigned k = 0; k < BUDDY_ORDERS; k++) out_printf(o, " %zu", s->free_blocks[k]);
  out_printf(o, "\n  requests: medium %llu, huge %llu\n", (unsigned long long)s->medium_requests,
             (unsigned long long)s->huge_requests);
  out_printf(o, "  thread caches       %zu (%zu KiB cached, in %zu KiB of page runs); %zu idle emptied (%zu KiB)\n",
             s->thread_caches, s->bytes_cached >> 10, s->bytes_meta_runs >> 10, s->caches_reclaimed,
             s->bytes_reclaimed >> 10);
  out_printf(o, "  class     bytes     requests   slabs    live  (cached)\n");
  for (unsigned c = 1; c < SIZE_CLASS_COUNT; c++)
    if (s->class_slabs[c] != 0 || s->class_requests[c] != 0)
      out_printf(o, "  %5u %9u %12llu %7zu %7zu %9zu\n", c, (unsigned)size_class_bytes[c],
                 (unsigned long long)s->class_requests[c], s->class_slabs[c], s->class_live[c], s->class_cached[c]);
}

static void stats_json(out_t *o, const buddy_stats_t *s) {
  out_printf(
      o,
      "{\"allocator\":\"buddymalloc\",\"regions\":%zu,\"pages_used\":%zu,\"pages_free\":%zu,"
      "\"runs\":%zu,\"run_bytes\":%zu,\"huge_blocks\":%zu,\"huge_bytes\":%zu,\"purged_pages\":%zu,"
      "\"small_live_bytes\":%zu,\"slab_bytes\":%zu,\"medium_requests\":%llu,\"huge_requests\":%llu,"
      "\"allocated_bytes\":%zu,\"resident_bytes\":%zu,\"thread_caches\":%zu,\"cached_bytes\":%zu,\"cache_run_bytes\":%zu,\"transfer_bytes\":%zu,\"caches_reclaimed\":%zu,\"reclaimed_bytes\":%zu,"
      "\"free_blocks\":[",
      s->regions, s->pages_used, s->pages_free, s->runs, s->bytes_runs, s->huge_blocks, s->huge_bytes, s->purged_pages,
      s->bytes_small_live, s->bytes_in_slabs, (unsigned long long)s->medium_requests,
      (unsigned long long)s->huge_requests, s->bytes_allocated, s->bytes_resident, s->thread_caches, s->bytes_cached,
      s->bytes_meta_runs, s->bytes_in_transfer, s->caches_reclaimed, s->bytes_reclaimed);
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

static int stats_exit_fd = -1;

/* Each guards a static buffer that its user starts afresh every time, so a
 * fork child re-makes them rather than have them taken around fork: a
 * report may wait on a full pipe, and fork must not wait for it. */
static pthread_mutex_t stats_format_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t stats_print_lock = PTHREAD_MUTEX_INITIALIZER;

void stats_fork_child(void) {
  pthread_mutex_init(&stats_format_lock, NULL);
  pthread_mutex_init(&stats_print_lock, NULL);
}

void stats_init(void) {
  if (options.stats != 0) stats_exit_fd = os_dup_stderr();
  heapmap_init();
}

size_t stats_format_json(char *buf, size_t size) {
  static out_t o;
  buddy_stats_t s;
  stats_collect(&s);
  pthread_mutex_lock(&stats_format_lock);
  o.len = 0;
  stats_json(&o, &s);
  size_t n = o.len < size ? o.len : size;
  memcpy(buf, o.text, n);
  pthread_mutex_unlock(&stats_format_lock);
  return n;
}

static void stats_print_to(int fd, bool json) {
  static out_t o; /* too large for small thread stacks; printing is rare */
  buddy_stats_t s;
  stats_collect(&s);
  pthread_mutex_lock(&stats_print_lock);
  o.len = 0;
  if (json) stats_json(&o, &s);
  else stats_text(&o, &s);
  os_write_fd(fd, o.text, o.len);
  pthread_mutex_unlock(&stats_print_lock);
}

void stats_print(bool json) {
  stats_print_to(2, json);
}

__attribute__((destructor)) static void stats_at_exit(void) {
  heapmap_write();
  if (options.stats != 0) stats_print_to(stats_exit_fd >= 0 ? stats_exit_fd : 2, options.stats == 2);
}
