/* unwind_testlib.h: frames in a shared library of their own, for the
 * unwinder's tests (test_prof_unwind.c): each calls back cb(depth, arg)
 * through a frame of its own kind. */
#ifndef UNWIND_TESTLIB_H
#define UNWIND_TESTLIB_H

#ifdef __cplusplus
extern "C" {
#endif

typedef int (*unwind_test_cb)(int depth, void *arg);

/* unwind_testlib.c, a shared library built with frame pointers, whose
 * frame holds a variable-length array: its CFA is rbp-based. */
int unwind_testlib_call(unwind_test_cb cb, int depth, void *arg);
/* unwind_cxx.cpp, in the test program: a C++ frame with a destructor to
 * run if cb throws (a landing pad: its CIE has a personality and an LSDA,
 * augmentation "zPLR"). */
int unwind_cxx_call(unwind_test_cb cb, int depth, void *arg);

#ifdef __cplusplus
}
#endif

#endif /* UNWIND_TESTLIB_H */
