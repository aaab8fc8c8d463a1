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

static void error_report(const char *level, const char *what, const void *ptr, const char *tail) {
  message_t m = {.len = 0};
  message_add(&m, "buddymalloc: ");
  message_add(&m, level);
  message_add(&m, what);
  message_add(&m, " (address ");
  message_add_hex(&m, (uintptr_t)ptr);
  message_add(&m, ")");
  message_add(&m, tail);
  message_add(&m, "\n");
  os_write_stderr(m.text, m.len);
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
