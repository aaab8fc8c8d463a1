// cxx_new.cpp: operator new's contract, checked under whichever allocator is
// preloaded (cxx_new.sh runs it plain, then with libbuddymalloc.so, which
// defines the operators without a C++ runtime of its own):
//  - a new that cannot be met calls the new-handler, again while it returns,
//    and throws std::bad_alloc once none is installed;
//  - the nothrow forms return nullptr instead, also when the handler throws;
//  - the aligned forms honour the alignment; every delete form frees.
// Prints one line per check; exits non-zero on the first failure.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <new>

namespace {

// Far more than any machine has: every allocator must fail it.
constexpr std::size_t kImpossible = std::size_t{1} << 46;
constexpr int kHandlerCallsBeforeGivingUp = 3;
constexpr std::size_t kAlign = 4096;

int handler_calls;

void counting_handler() {
  if (++handler_calls == kHandlerCallsBeforeGivingUp) std::set_new_handler(nullptr);
}

void throwing_handler() {
  ++handler_calls;
  throw std::bad_alloc();
}

int failures;
// Where each block goes before it is deleted: the compiler may not elide a
// new/delete pair whose block escapes.
void *volatile sink;

void check(bool ok, const char *what) {
  std::printf("%s: %s\n", ok ? "ok" : "FAILED", what);
  if (!ok) ++failures;
}

template <typename F> bool throws_bad_alloc(F f) {
  try {
    f();
  } catch (const std::bad_alloc &) {
    return true;
  }
  return false;
}

} // namespace

int main() {
  handler_calls = 0;
  std::set_new_handler(counting_handler);
  check(throws_bad_alloc([] {
          char *p = new char[kImpossible];
          sink = p;
          delete[] p;
        }),
        "new[] throws std::bad_alloc");
  check(handler_calls == kHandlerCallsBeforeGivingUp, "the new-handler ran until it removed itself");

  check(throws_bad_alloc([] { sink = ::operator new(kImpossible); }), "new throws without a handler");
  check(throws_bad_alloc([] { sink = ::operator new (kImpossible, std::align_val_t{kAlign}); }), "aligned new throws");

  char *nothrow_array = new (std::nothrow) char[kImpossible];
  sink = nothrow_array;
  check(nothrow_array == nullptr, "nothrow new[] returns nullptr");
  handler_calls = 0;
  std::set_new_handler(throwing_handler);
  check(::operator new(kImpossible, std::nothrow) == nullptr, "nothrow new returns nullptr when the handler throws");
  check(handler_calls == 1, "the throwing handler ran once");
  check(::operator new (kImpossible, std::align_val_t{kAlign}, std::nothrow) == nullptr,
        "aligned nothrow new returns nullptr when the handler throws");
  std::set_new_handler(nullptr);

  void *aligned = ::operator new (100, std::align_val_t{kAlign});
  check(reinterpret_cast<std::uintptr_t>(aligned) % kAlign == 0, "aligned new is aligned");
  ::operator delete (aligned, 100, std::align_val_t{kAlign});
  void *nothrow_aligned = ::operator new[](64, std::align_val_t{kAlign}, std::nothrow);
  check(nothrow_aligned != nullptr && reinterpret_cast<std::uintptr_t>(nothrow_aligned) % kAlign == 0,
        "aligned nothrow new[] is aligned");
  ::operator delete[](nothrow_aligned, std::align_val_t{kAlign}, std::nothrow);
  int *sized = new int[1000];
  ::operator delete[](sized, 1000 * sizeof(int));
  ::operator delete(new (std::nothrow) long, std::nothrow);
  check(true, "every delete form freed its block");
  return failures == 0 ? 0 : 1;
}
