// shim_cxx.cpp: C++ operator new and delete, every form, forwarding to libbuddy.
//
// new loops on the new-handler and throws std::bad_alloc as the standard asks;
// the nothrow forms return nullptr. Sized deletes pass the size as a hint only
// (buddy_free_sized never trusts it over the allocator's own record).
#include <cstddef>
#include <new>

#include "buddymalloc.h"

#define SHIM_EXPORT __attribute__((visibility("default")))

namespace {

void *new_or_throw(std::size_t size, std::size_t align) {
  for (;;) {
    void *p = align <= __STDCPP_DEFAULT_NEW_ALIGNMENT__ ? buddy_malloc(size) : buddy_aligned_alloc(align, size);
    if (p != nullptr) return p;
    std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) throw std::bad_alloc();
    handler();
  }
}

void *new_or_null(std::size_t size, std::size_t align) noexcept {
  try {
    return new_or_throw(size, align);
  } catch (...) {
    return nullptr;
  }
}

}  // namespace

SHIM_EXPORT void *operator new(std::size_t n) { return new_or_throw(n, 0); }
SHIM_EXPORT void *operator new[](std::size_t n) { return new_or_throw(n, 0); }
SHIM_EXPORT void *operator new(std::size_t n, const std::nothrow_t &) noexcept { return new_or_null(n, 0); }
SHIM_EXPORT void *operator new[](std::size_t n, const std::nothrow_t &) noexcept { return new_or_null(n, 0); }
SHIM_EXPORT void *operator new(std::size_t n, std::align_val_t a) { return new_or_throw(n, (std::size_t)a); }
SHIM_EXPORT void *operator new[](std::size_t n, std::align_val_t a) { return new_or_throw(n, (std::size_t)a); }
SHIM_EXPORT void *operator new(std::size_t n, std::align_val_t a, const std::nothrow_t &) noexcept {
  return new_or_null(n, (std::size_t)a);
}
SHIM_EXPORT void *operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t &) noexcept {
  return new_or_null(n, (std::size_t)a);
}

SHIM_EXPORT void operator delete(void *p) noexcept { buddy_free(p); }
SHIM_EXPORT void operator delete[](void *p) noexcept { buddy_free(p); }
SHIM_EXPORT void operator delete(void *p, const std::nothrow_t &) noexcept { buddy_free(p); }
SHIM_EXPORT void operator delete[](void *p, const std::nothrow_t &) noexcept { buddy_free(p); }
SHIM_EXPORT void operator delete(void *p, std::size_t n) noexcept { buddy_free_sized(p, n); }
SHIM_EXPORT void operator delete[](void *p, std::size_t n) noexcept { buddy_free_sized(p, n); }
SHIM_EXPORT void operator delete(void *p, std::align_val_t) noexcept { buddy_free(p); }
SHIM_EXPORT void operator delete[](void *p, std::align_val_t) noexcept { buddy_free(p); }
SHIM_EXPORT void operator delete(void *p, std::size_t n, std::align_val_t) noexcept { buddy_free_sized(p, n); }
SHIM_EXPORT void operator delete[](void *p, std::size_t n, std::align_val_t) noexcept { buddy_free_sized(p, n); }
SHIM_EXPORT void operator delete(void *p, std::align_val_t, const std::nothrow_t &) noexcept { buddy_free(p); }
SHIM_EXPORT void operator delete[](void *p, std::align_val_t, const std::nothrow_t &) noexcept { buddy_free(p); }
