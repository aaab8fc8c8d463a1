/* prof_leak.c: leaks a known amount (PROF_LEAK_BLOCKS blocks of
 * PROF_LEAK_SIZE bytes, 32 MiB) from one known function, prof_leak_known,
 * and frees every other block it allocates (small, medium and huge, through
 * malloc, calloc, realloc and aligned_alloc). prof.sh runs it with leaks=1:
 * the leak report must name prof_leak_known first, within 20% of the bytes
 * printed here. Built with -rdynamic, so that dladdr names the function in
 * the report at exit. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROF_LEAK_BLOCKS 131072
#define PROF_LEAK_SIZE 256
#define LIVE 1024

static void *leaked[PROF_LEAK_BLOCKS];

__attribute__((noinline)) void *prof_leak_known(size_t n) {
  void *p = malloc(n);
  if (p != NULL) memset(p, 0x5a, n);
  return p;
}

static uint64_t next_random(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

/* About 300 MB allocated, none of it kept. */
__attribute__((noinline)) void prof_churn(void) {
  static void *live[LIVE];
  uint64_t s = 88172645463325252ULL;
  for (int i = 0; i < 400000; i++) {
    unsigned k = (unsigned)(next_random(&s) % LIVE), kind = (unsigned)(next_random(&s) % 100);
    free(live[k]);
    size_t n = 16 + next_random(&s) % 1024;
    if (kind < 2) n = 40000 + next_random(&s) % 100000; /* page runs */
    if (kind == 99 && i % 16 == 0) n = 5000000;         /* huge blocks */
    if (kind % 10 == 3) live[k] = calloc(1, n);
    else if (kind % 10 == 4) live[k] = aligned_alloc(64, (n + 63) & ~(size_t)63);
    else live[k] = malloc(n);
    if (live[k] == NULL) abort();
    ((char *)live[k])[0] = 1;
    if (kind % 10 == 5) {
      void *q = realloc(live[k], n * 2);
      if (q == NULL) abort();
      live[k] = q;
    }
  }
  for (int k = 0; k < LIVE; k++) free(live[k]);
}

int main(void) {
  size_t total = 0;
  for (int i = 0; i < PROF_LEAK_BLOCKS; i++) {
    leaked[i] = prof_leak_known(PROF_LEAK_SIZE);
    total += PROF_LEAK_SIZE;
  }
  prof_churn();
  printf("leaked %zu bytes from prof_leak_known\n", total);
  return 0;
}
