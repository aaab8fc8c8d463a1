/* early_late_main.c: uses the block early_late.so allocated before main,
 * frees from an atexit handler, and leaves the last frees to the library's
 * destructor (after exit handlers). */
#include <stdio.h>
#include <stdlib.h>

const char *early_late_block(void);

static char *at_exit_block;

static void at_exit_handler(void) {
  free(at_exit_block);
  puts("atexit: freed");
}

int main(void) {
  printf("main: %s\n", early_late_block());
  at_exit_block = malloc(1 << 20);
  atexit(at_exit_handler);
  return 0;
}
