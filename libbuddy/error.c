/* error.c: reports of heap misuse and failed assertions.
 *
 * Messages are built in a stack buffer and written with write(2): the failure
 * path never allocates, never uses stdio, and so works with the heap broken.
 */
#include "base.h"

#include <stdint.h>
#include <string.h>

#define ERROR_BUFFER_SIZE 512

typedef struct message {
  char text[ERROR_BUFFER_SIZE];
  size_t len;
} message_t;

static void message_add(message_t *m, const char *s) {
  size_t n = strlen(s);
  if (n > sizeof m->text - m->len) n = sizeof m->text - m->len;
  memcpy(m->text + m->len, s, n);
  m->len += n;
}

static void message_add_hex(message_t *m, uintptr_t value) {
  char digits[2 + 2 * sizeof value + 1];
  size_t i = sizeof digits - 1;
  digits[i] = '\0';
  do {
    digits[--i] = "0123456789abcdef"[value & 15];
    value >>= 4;
  } while (value != 0);
  digits[--i] = 'x';
  digits[--i] = '0';
  message_add(m, digits + i);
}

static void message_add_decimal(message_t *m, unsigned long value) {
  char digits[24];
  size_t i = sizeof digits - 1;
  digits[i] = '\0';
  do {
    digits[--i] = (char)('0' + value % 10);
    value /= 10;
  } while (value != 0);
  message_add(m, digits + i);
}

/* The block a report is about: its bytes (its size class, or the run's or
 * mapping's length) and what the program asked for; 0 when not known. */
typedef struct error_block {
  size_t bytes, asked;
} error_block_t;

static void error_report_block(const char *level, const char *what, const void *ptr, error_block_t block,
                               const char *tail) {
  message_t m = {.len = 0};
  message_add(&m, "buddymalloc: ");
  message_add(&m, level);
  message_add(&m, what);
  message_add(&m, " (address ");
  message_add_hex(&m, (uintptr_t)ptr);
  if (block.bytes != 0) {
    message_add(&m, ", block of ");
    message_add_decimal(&m, block.bytes);
    message_add(&m, " bytes");
  }
  if (block.asked != 0) {
    message_add(&m, ", ");
    message_add_decimal(&m, block.asked);
    message_add(&m, " asked for");
  }
  message_add(&m, ")");
  message_add(&m, tail);
  message_add(&m, "\n");
  os_write_stderr(m.text, m.len);
}

static void error_report(const char *level, const char *what, const void *ptr, const char *tail) {
  error_report_block(level, what, ptr, (error_block_t){0, 0}, tail);
}

_Noreturn void error_fatal(const char *what, const void *ptr) {
  error_report("error: ", what, ptr, "");
  os_abort();
}

/* The way to keep going is named where the program stops: a program that
 * mixes allocators (one frees what another allocated) meets this first. */
void error_misuse(const char *what, const void *ptr) {
  if (options.abort_on_error) {
    error_report("error: ", what, ptr, "; aborting (BUDDY_OPTIONS=abort_on_error=0 makes this a warning)");
    os_abort();
  }
  error_report("warning: ", what, ptr, "; left alone (abort_on_error=0)");
}

_Noreturn void error_fatal_block(const char *what, const void *ptr, size_t bytes, size_t asked) {
  error_report_block("error: ", what, ptr, (error_block_t){bytes, asked}, "");
  os_abort();
}

void error_misuse_block(const char *what, const void *ptr, size_t bytes, size_t asked) {
  error_block_t block = {bytes, asked};
  if (options.abort_on_error) {
    error_report_block("error: ", what, ptr, block, "; aborting (BUDDY_OPTIONS=abort_on_error=0 makes this a warning)");
    os_abort();
  }
  error_report_block("warning: ", what, ptr, block, "; going on (abort_on_error=0)");
}

_Noreturn void error_assert_failed(const char *cond, const char *file, int line) {
  message_t m = {.len = 0};
  message_add(&m, "buddymalloc: assertion failed: ");
  message_add(&m, cond);
  message_add(&m, " at ");
  message_add(&m, file);
  message_add(&m, ":");
  message_add_decimal(&m, (unsigned long)line);
  message_add(&m, "\n");
  os_write_stderr(m.text, m.len);
  os_abort();
}
