/* unit_util.h: helpers the unit tests share. */
#ifndef BUDDY_UNIT_UTIL_H
#define BUDDY_UNIT_UTIL_H

#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdio.h>

/* What the test wrote to stderr so far (the test's .init redirected it). */
static inline const char *redirected_stderr(void) {
  static char text[8192];
  fflush(stderr);
  size_t n = fread(text, 1, sizeof text - 1, cr_get_redirected_stderr());
  text[n] = '\0';
  return text;
}

#endif
