/* footprint.c: what the allocator's first small malloc costs a process in
 * anonymous memory (RssAnon of /proc/self/status, in KiB), printed as
 * "first_malloc_kib=N". The process reads its status with read(2) alone, so
 * that nothing else allocates in between (stdio would: its buffer). With the
 * argument "none" it allocates nothing at all and prints nothing. */
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

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "none") == 0) return 0;
  long before = rss_anon_kib();
  char *volatile p = malloc(FOOTPRINT_REQUEST);
  if (p == NULL) return 1;
  p[0] = 1;
  long after = rss_anon_kib();
  if (before < 0 || after < 0) return 1;
  free(p);
  printf("first_malloc_kib=%ld\n", after - before);
  return 0;
}
