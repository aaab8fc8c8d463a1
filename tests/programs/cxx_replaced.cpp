// cxx_replaced.cpp: a program that replaces part of the C++ allocation
// operators and keeps the runtime's for the rest, as the standard allows:
// with CXX_REPLACE_NEW its own operator new over malloc, whose blocks the
// default delete frees; with CXX_REPLACE_DELETE its own operator delete
// (plain and sized) over free, which frees the default new's blocks. Prints
// a checksum and whether its operator ran; exits 1 if it did not.
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

static unsigned long replaced_calls;

#ifdef CXX_REPLACE_NEW
void *operator new(std::size_t n) {
  ++replaced_calls;
  if (void *p = std::malloc(n != 0 ? n : 1)) return p;
  throw std::bad_alloc();
}
#endif

#ifdef CXX_REPLACE_DELETE
void operator delete(void *p) noexcept {
  ++replaced_calls;
  std::free(p);
}
void operator delete(void *p, std::size_t) noexcept {
  ++replaced_calls;
  std::free(p);
}
#endif

int main() {
  std::vector<std::string> words;
  for (int i = 0; i < 10000; i++) words.push_back(std::string(20 + i % 50, static_cast<char>('a' + i % 26)));
  unsigned long total = 0;
  for (const std::string &w : words) total += w.size();
  words.clear();
  words.shrink_to_fit();
  for (int i = 0; i < 1000; i++) {
    int *x = new int(i);
    total += static_cast<unsigned long>(*x);
    delete x;
  }
  std::printf("%lu, the replaced operator %s\n", total, replaced_calls > 0 ? "ran" : "did not run");
  return replaced_calls > 0 ? 0 : 1;
}
