/* unwind_testlib.c: a shared library's frame for the unwinder's tests
 * (unwind_testlib.h): built with frame pointers, and a variable-length
 * array, so that its CFA is rbp-based through the call. */
#include "unwind_testlib.h"

int unwind_testlib_call(unwind_test_cb cb, int depth, void *arg) {
  volatile char room[32 + (depth & 7) * 16];
  room[0] = (char)depth;
  int r = cb(depth, arg);
  return r + room[0];
}
