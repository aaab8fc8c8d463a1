// unwind_cxx.cpp: a C++ frame for the unwinder's tests (unwind_testlib.h):
// a destructor runs if the callback throws, so the function has a landing
// pad (its CIE: "zPLR"). No allocation and no call through the PLT, so that
// a signal may interrupt it anywhere in the tests that send signals.
#include "unwind_testlib.h"

namespace {
struct counted_exit {
  volatile int *count;
  ~counted_exit() {
    *count = *count + 1;
  }
};
} // namespace

extern "C" int unwind_cxx_call(unwind_test_cb cb, int depth, void *arg) {
  volatile int exits = 0;
  int r;
  {
    counted_exit guard{&exits};
    auto call = [&](int d) { return cb(d, arg); };
    r = call(depth);
  }
  return r + exits;
}
