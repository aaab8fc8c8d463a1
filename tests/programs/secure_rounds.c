/* secure_rounds.c: a long-running program's pattern in secure mode: rounds
 * of many small blocks, of other classes each round, all freed at the end
 * of each. Its slabs empty (their guard object does not keep them), so they
 * are reused or go back with their guard pages, and the process's count of
 * mappings (/proc/self/maps) stays where the first rounds left it instead
 * of growing until mmap fails. Prints each round's count, then whether a
 * 16 MiB malloc and an mmap of the program's own still work; exits 1 if
 * not (2 if a small malloc fails). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define ROUNDS_BLOCKS 200000
#define ROUNDS_COUNT 6
#define ROUNDS_CLASS_STEP 48 /* each round's sizes start this much further */

static long mappings(void) {
  FILE *f = fopen("/proc/self/maps", "r");
  if (f == NULL) return -1;
  long lines = 0;
  for (int c; (c = fgetc(f)) != EOF;) lines += c == '\n';
  fclose(f);
  return lines;
}

int main(void) {
  static void *blocks[ROUNDS_BLOCKS];
  uint64_t random = 7;
  for (int round = 0; round < ROUNDS_COUNT; round++) {
    size_t smallest = 16 + (size_t)round * ROUNDS_CLASS_STEP;
    for (size_t i = 0; i < ROUNDS_BLOCKS; i++) {
      random = random * 6364136223846793005u + 1442695040888963407u;
      size_t size = smallest + (size_t)(random >> 59); /* 32 sizes from `smallest` */
      if ((blocks[i] = malloc(size)) == NULL) return 2;
      memset(blocks[i], round, size);
    }
    for (size_t i = 0; i < ROUNDS_BLOCKS; i++)
      free(blocks[(i * 7919) % ROUNDS_BLOCKS]); /* 7919: prime, not a divisor */
    printf("round %d: %ld mappings\n", round, mappings());
  }
  void *big = malloc((size_t)16 << 20);
  void *own = mmap(NULL, (size_t)1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  printf("malloc(16 MiB): %s; mmap(1 MiB): %s\n", big != NULL ? "ok" : "failed", own != MAP_FAILED ? "ok" : "failed");
  free(big);
  return big == NULL || own == MAP_FAILED;
}
