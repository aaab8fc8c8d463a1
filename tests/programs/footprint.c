/* footprint.c: what the allocator's first small malloc costs a process in
 * anonymous memory (RssAnon of /proc/self/status, in KiB), printed as
 * "first_malloc_kib=N"; then what one block in each of FOOTPRINT_CLASSES
 * more size classes costs ("classes_kib=N"), and the resident KiB of the
 * library's code mapping once all are freed ("code_kib=N", 0 if no mapping
 * named libbuddymalloc is found). The process reads /proc with read(2)
 * alone, so that nothing else allocates in between (stdio would: its
 * buffer). With the argument "none" it allocates nothing at all and prints
 * nothing. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The size of one small request. */
#define FOOTPRINT_REQUEST 16

static long rss_anon_kib(void) {
  static char status[8192];
  int fd = open("/proc/self/status", O_RDONLY);
  if (fd < 0) return -1;
  ssize_t n = read(fd, status, sizeof status - 1);
  close(fd);
  if (n <= 0) return -1;
  status[n] = '\0';
  const char *line = strstr(status, "RssAnon:");
  return line != NULL ? strtol(line + strlen("RssAnon:"), NULL, 10) : -1;
}

/* One request in each of the small classes from 32 bytes to 1 KiB (types.h:
 * SIZE_CLASSES), as a short process makes them. */
static const size_t footprint_sizes[] = {32,  48,  64,  80,  96,  112, 128, 160, 192, 224,
                                         256, 320, 384, 448, 512, 640, 768, 896, 1024};
#define FOOTPRINT_CLASSES (sizeof footprint_sizes / sizeof footprint_sizes[0])

/* The Rss of the first executable mapping whose line names `name`, in KiB;
 * 0 if there is none, -1 if smaps cannot be read. */
static long code_rss_kib(const char *name) {
  static char smaps[1 << 18];
  int fd = open("/proc/self/smaps", O_RDONLY);
  if (fd < 0) return -1;
  size_t len = 0;
  ssize_t n;
  while (len < sizeof smaps - 1 && (n = read(fd, smaps + len, sizeof smaps - 1 - len)) > 0) len += (size_t)n;
  close(fd);
  smaps[len] = '\0';
  for (char *line = smaps; line != NULL && *line != '\0';) {
    char *end = strchr(line, '\n');
    if (end != NULL) *end = '\0';
    if (strstr(line, name) != NULL && strstr(line, " r-xp ") != NULL) {
      char *rss = end != NULL ? strstr(end + 1, "\nRss:") : NULL;
      return rss != NULL ? strtol(rss + strlen("\nRss:"), NULL, 10) : -1;
    }
    line = end != NULL ? end + 1 : NULL;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "none") == 0) return 0;
  long before = rss_anon_kib();
  char *volatile p = malloc(FOOTPRINT_REQUEST);
  if (p == NULL) return 1;
  p[0] = 1;
  long after = rss_anon_kib();
  char *blocks[FOOTPRINT_CLASSES];
  for (size_t i = 0; i < FOOTPRINT_CLASSES; i++) {
    if ((blocks[i] = malloc(footprint_sizes[i])) == NULL) return 1;
    blocks[i][0] = 1;
  }
  long classes = rss_anon_kib();
  for (size_t i = 0; i < FOOTPRINT_CLASSES; i++) free(blocks[i]);
  free(p);
  if (before < 0 || after < 0 || classes < 0) return 1;
  long code = code_rss_kib("libbuddymalloc");
  printf("first_malloc_kib=%ld\nclasses_kib=%ld\ncode_kib=%ld\n", after - before, classes - after, code);
  return 0;
}
