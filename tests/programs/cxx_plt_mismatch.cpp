// cxx_plt_mismatch.cpp: a real mismatch (free of a block from new) in a
// program that replaces nothing but takes operator delete's address in its
// code. Built as a non-PIE executable without -fpic, it has a canonical PLT
// entry for operator delete: an undefined symbol with an address, which
// dlsym returns as if the program defined the operator. Secure mode must
// still report the mismatch (cxx_replaced.sh). Prints "not reported" if it
// runs to the end.
#include <cstdio>
#include <cstdlib>
#include <new>

void (*volatile delete_address)(void *) noexcept;
int *volatile block;

int main() {
  delete_address = &::operator delete;
  block = new int(5);
  std::free(block);
  std::puts("not reported");
  return 0;
}
