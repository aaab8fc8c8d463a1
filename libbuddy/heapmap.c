/* heapmap.c: a dump of every region, page by page, for scripts/heapmap.
 *
 * BUDDY_HEAPMAP=FILE writes it at exit (off by default). The format is text:
 *   buddymalloc-heapmap 1
 *   region BASE ZONE        then one line of BUDDY_REGION_PAGES numbers,
 *   pages N N N …           one per page: 0 free, 1..40 a slab of that size
 *                           class, 41 a page run (medium block)
 *   huge-live COUNT BYTES   the live huge blocks, in total
 * scripts/heapmap turns it into a PNG where each page is a coloured cell.
 * Written with write(2) from a stack-sized static buffer: no allocation.
 */
#include "report.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define HEAPMAP_CODE_FREE 0
#define HEAPMAP_CODE_RUN SIZE_CLASS_COUNT

static const char *heapmap_path startup_state;

startup_code void heapmap_init(void) {
  static const char name[] startup_data = "BUDDY_HEAPMAP";
  heapmap_path = os_getenv(name);
}

static uint8_t heapmap_code(const page_desc_t *head) {
  if (head->kind == PAGE_SLAB) return page_class_of_desc(head);
  if (head->kind == PAGE_FREE) return HEAPMAP_CODE_FREE;
  return HEAPMAP_CODE_RUN;
}

/* One region: its header line and its pages line. */
static void heapmap_write_region(int fd, const region_t *r, unsigned zone) {
  static char line[BUDDY_REGION_PAGES * 3 + 64];
  size_t len = (size_t)snprintf(line, sizeof line, "region %p %u\npages", (void *)r->base, zone);
  for (size_t i = 0; i < BUDDY_REGION_PAGES;) {
    const page_desc_t *head = &r->pages[i];
    size_t n = (size_t)1 << head->order;
    uint8_t code = heapmap_code(head);
    for (size_t j = 0; j < n; j++) len += (size_t)snprintf(line + len, sizeof line - len, " %u", code);
    i += n;
  }
  line[len++] = '\n';
  os_write_fd(fd, line, len);
}

startup_code void heapmap_write(void) {
  if (heapmap_path == NULL || *heapmap_path == '\0') return;
  int fd = os_create_file(heapmap_path);
  if (fd < 0) {
    os_write_stderr("buddymalloc: warning: cannot write BUDDY_HEAPMAP file\n", 54);
    return;
  }
  os_write_fd(fd, "buddymalloc-heapmap 1\n", 22);
  for (unsigned z = 0; z < ZONES_MAX; z++) {
    zone_lock(&zones[z]);
    for (const region_t *r = zones[z].heap.region_list; r != NULL; r = r->next) heapmap_write_region(fd, r, z);
    zone_unlock(&zones[z]);
  }
  huge_write_map(fd);
  os_close(fd);
}
