/* shim_cxx.c: C++ operator new and delete, every form, forwarding to libbuddy,
 * written in C under their mangled names so that the library needs no C++
 * runtime: a C program that preloads it loads libc alone, and a C++ program
 * brings its own runtime, which the few things only a C++ runtime can do are
 * looked up in when they are needed (dlsym):
 *  - new loops on the new-handler (std::get_new_handler) and, without one,
 *    throws std::bad_alloc (__cxa_allocate_exception, the class's vtable and
 *    typeinfo, __cxa_throw): an exception unwinds through these C frames as
 *    through any with unwind tables;
 *  - the nothrow forms are the C++ runtime's own (RTLD_NEXT), which call the
 *    throwing form (ours: preloaded first) in a try block and return null on
 *    std::bad_alloc, as the standard specifies;
 *  - new and new[] (unaligned) pass their kind down, and so do delete and
 *    delete[]: secure mode keeps it with the block and reports a mismatch
 *    (free of a block from new, delete of one from new[] or malloc, ...);
 *  - sized deletes pass the size to free_sized_as, which reports one that
 *    does not fit the block (the allocator's own record says what is freed);
 *    the aligned sized forms do not, since an aligned new may have taken a
 *    larger class than the size.
 * The names are the Itanium C++ ABI's for x86-64 and AArch64 (size_t is
 * unsigned long, "m"; std::align_val_t is "St11align_val_t").
 */
#include "buddymalloc.h"
#include "internal.h"

#include <dlfcn.h>
#include <link.h>
#include <stddef.h>

#define SHIM_EXPORT __attribute__((visibility("default")))
/* The alignment operator new gives without align_val_t
 * (__STDCPP_DEFAULT_NEW_ALIGNMENT__ on these targets). */
#define CXX_DEFAULT_NEW_ALIGNMENT 16

typedef void (*cxx_new_handler)(void);

/* A symbol of the program's C++ runtime, NULL without one. */
static void *cxx_runtime(const char *name) {
  return dlsym(RTLD_DEFAULT, name);
}

/* throw std::bad_alloc(): its object is one word, the vtable pointer, which
 * points past the vtable's offset-to-top and typeinfo words. */
static _Noreturn void cxx_throw_bad_alloc(void) {
  void *(*allocate_exception)(size_t) = (void *(*)(size_t))cxx_runtime("__cxa_allocate_exception");
  void (*throw_exception)(void *, void *,
                          void (*)(void *)) = (void (*)(void *, void *, void (*)(void *)))cxx_runtime("__cxa_throw");
  void *typeinfo = cxx_runtime("_ZTISt9bad_alloc"), *vtable = cxx_runtime("_ZTVSt9bad_alloc");
  void (*destructor)(void *) = (void (*)(void *))cxx_runtime("_ZNSt9bad_allocD1Ev");
  if (allocate_exception == NULL || throw_exception == NULL || typeinfo == NULL || vtable == NULL || destructor == NULL)
    error_fatal("operator new: out of memory, and no C++ runtime to throw std::bad_alloc", NULL);
  void **exception = allocate_exception(sizeof(void *));
  exception[0] = (void **)vtable + 2;
  throw_exception(exception, typeinfo, destructor);
  __builtin_unreachable();
}

/* align 0: an unaligned form, whose kind (new or new[]) secure mode keeps
 * for its delete to match; the aligned forms are malloc's kind. */
static void *cxx_allocate(size_t size, size_t align, secure_kind_t kind) {
  if (align == 0) return alloc_fast_as(size, kind);
  return align <= CXX_DEFAULT_NEW_ALIGNMENT ? buddy_malloc(size) : buddy_aligned_alloc(align, size);
}

/* Allocates, calling the program's new-handler while that fails; NULL once
 * there is none (a handler that throws throws through). */
static void *cxx_allocate_or_handle(size_t size, size_t align, secure_kind_t kind) {
  for (;;) {
    void *p = cxx_allocate(size, align, kind);
    if (p != NULL) return p;
    cxx_new_handler (*get_handler)(void) = (cxx_new_handler(*)(void))cxx_runtime("_ZSt15get_new_handlerv");
    cxx_new_handler handler = get_handler != NULL ? get_handler() : NULL;
    if (handler == NULL) return NULL;
    handler();
  }
}

static void *cxx_new(size_t size, size_t align, secure_kind_t kind) {
  void *p = cxx_allocate_or_handle(size, align, kind);
  if (p == NULL) cxx_throw_bad_alloc();
  return p;
}

/* The C++ runtime's nothrow form `name` holds the try block around the
 * throwing form that the standard asks for; without a runtime, no handler
 * can throw, and the loop alone does. */
static void *cxx_new_nothrow(const char *name, size_t size, size_t align, secure_kind_t kind) {
  typedef void *(*plain_nothrow)(size_t, const void *);
  typedef void *(*aligned_nothrow)(size_t, size_t, const void *);
  static const char nothrow_tag = 0; /* std::nothrow_t is empty: any address will do */
  void *runtime_form = dlsym(RTLD_NEXT, name);
  if (runtime_form == NULL) return cxx_allocate_or_handle(size, align, kind);
  return align == 0 ? ((plain_nothrow)runtime_form)(size, &nothrow_tag)
                    : ((aligned_nothrow)runtime_form)(size, align, &nothrow_tag);
}

/* ---- new ------------------------------------------------------------------ */

/* clang-format off */
SHIM_EXPORT void *cxx_new_plain(size_t n) __asm__("_Znwm");
SHIM_EXPORT void *cxx_new_array(size_t n) __asm__("_Znam");
SHIM_EXPORT void *cxx_new_plain_nothrow(size_t n, const void *tag) __asm__("_ZnwmRKSt9nothrow_t");
SHIM_EXPORT void *cxx_new_array_nothrow(size_t n, const void *tag) __asm__("_ZnamRKSt9nothrow_t");
SHIM_EXPORT void *cxx_new_plain_aligned(size_t n, size_t a) __asm__("_ZnwmSt11align_val_t");
SHIM_EXPORT void *cxx_new_array_aligned(size_t n, size_t a) __asm__("_ZnamSt11align_val_t");
SHIM_EXPORT void *cxx_new_plain_aligned_nothrow(size_t n, size_t a, const void *tag)
    __asm__("_ZnwmSt11align_val_tRKSt9nothrow_t");
SHIM_EXPORT void *cxx_new_array_aligned_nothrow(size_t n, size_t a, const void *tag)
    __asm__("_ZnamSt11align_val_tRKSt9nothrow_t");
/* clang-format on */

/* clang-format off */
void *cxx_new_plain(size_t n) { return cxx_new(n, 0, SECURE_NEW); }
void *cxx_new_array(size_t n) { return cxx_new(n, 0, SECURE_NEW_ARRAY); }
void *cxx_new_plain_nothrow(size_t n, const void *tag) { (void)tag; return cxx_new_nothrow("_ZnwmRKSt9nothrow_t", n, 0, SECURE_NEW); }
void *cxx_new_array_nothrow(size_t n, const void *tag) { (void)tag; return cxx_new_nothrow("_ZnamRKSt9nothrow_t", n, 0, SECURE_NEW_ARRAY); }
void *cxx_new_plain_aligned(size_t n, size_t a) { return cxx_new(n, a, SECURE_MALLOC); }
void *cxx_new_array_aligned(size_t n, size_t a) { return cxx_new(n, a, SECURE_MALLOC); }
void *cxx_new_plain_aligned_nothrow(size_t n, size_t a, const void *tag) {
  (void)tag;
  return cxx_new_nothrow("_ZnwmSt11align_val_tRKSt9nothrow_t", n, a, SECURE_MALLOC);
}
void *cxx_new_array_aligned_nothrow(size_t n, size_t a, const void *tag) {
  (void)tag;
  return cxx_new_nothrow("_ZnamSt11align_val_tRKSt9nothrow_t", n, a, SECURE_MALLOC);
}
/* clang-format on */

/* ---- delete --------------------------------------------------------------- */

/* clang-format off */
SHIM_EXPORT void cxx_delete_plain(void *p) __asm__("_ZdlPv");
SHIM_EXPORT void cxx_delete_array(void *p) __asm__("_ZdaPv");
SHIM_EXPORT void cxx_delete_plain_nothrow(void *p, const void *tag) __asm__("_ZdlPvRKSt9nothrow_t");
SHIM_EXPORT void cxx_delete_array_nothrow(void *p, const void *tag) __asm__("_ZdaPvRKSt9nothrow_t");
SHIM_EXPORT void cxx_delete_plain_sized(void *p, size_t n) __asm__("_ZdlPvm");
SHIM_EXPORT void cxx_delete_array_sized(void *p, size_t n) __asm__("_ZdaPvm");
SHIM_EXPORT void cxx_delete_plain_aligned(void *p, size_t a) __asm__("_ZdlPvSt11align_val_t");
SHIM_EXPORT void cxx_delete_array_aligned(void *p, size_t a) __asm__("_ZdaPvSt11align_val_t");
SHIM_EXPORT void cxx_delete_plain_sized_aligned(void *p, size_t n, size_t a) __asm__("_ZdlPvmSt11align_val_t");
SHIM_EXPORT void cxx_delete_array_sized_aligned(void *p, size_t n, size_t a) __asm__("_ZdaPvmSt11align_val_t");
SHIM_EXPORT void cxx_delete_plain_aligned_nothrow(void *p, size_t a, const void *tag)
    __asm__("_ZdlPvSt11align_val_tRKSt9nothrow_t");
SHIM_EXPORT void cxx_delete_array_aligned_nothrow(void *p, size_t a, const void *tag)
    __asm__("_ZdaPvSt11align_val_tRKSt9nothrow_t");
/* clang-format on */

/* clang-format off */
void cxx_delete_plain(void *p) { free_fast_as(p, SECURE_NEW); }
void cxx_delete_array(void *p) { free_fast_as(p, SECURE_NEW_ARRAY); }
void cxx_delete_plain_nothrow(void *p, const void *tag) { (void)tag; free_fast_as(p, SECURE_NEW); }
void cxx_delete_array_nothrow(void *p, const void *tag) { (void)tag; free_fast_as(p, SECURE_NEW_ARRAY); }
void cxx_delete_plain_sized(void *p, size_t n) { free_sized_as(p, n, SECURE_NEW); }
void cxx_delete_array_sized(void *p, size_t n) { free_sized_as(p, n, SECURE_NEW_ARRAY); }
void cxx_delete_plain_aligned(void *p, size_t a) { (void)a; buddy_free(p); }
void cxx_delete_array_aligned(void *p, size_t a) { (void)a; buddy_free(p); }
void cxx_delete_plain_sized_aligned(void *p, size_t n, size_t a) { (void)n; (void)a; buddy_free(p); }
void cxx_delete_array_sized_aligned(void *p, size_t n, size_t a) { (void)n; (void)a; buddy_free(p); }
void cxx_delete_plain_aligned_nothrow(void *p, size_t a, const void *tag) { (void)a; (void)tag; buddy_free(p); }
void cxx_delete_array_aligned_nothrow(void *p, size_t a, const void *tag) { (void)a; (void)tag; buddy_free(p); }
/* clang-format on */

/* ---- Operators the program replaced --------------------------------------- */

/* The program may replace some of these operators with its own (its
 * executable's definitions come before ours) and keep ours for the rest: a
 * new of its own over malloc whose blocks our delete frees, or a delete of
 * its own calling free on blocks of our new. The standard allows both (a
 * replaced operator meets the default one of its pair), so secure mode
 * must not report them as mismatched (secure_replaced_kinds). */
static bool cxx_replaced(const char *name, void *ours) {
  void *found = dlsym(RTLD_DEFAULT, name);
  if (found == NULL || found == ours) return false;
  /* A definition, not a non-PIE executable's canonical PLT entry for the
   * operator (an undefined symbol with an address, which dlsym returns too
   * when the program takes the operator's address in its code). */
  Dl_info info;
  const ElfW(Sym) *symbol = NULL;
  return dladdr1(found, &info, (void **)&symbol, RTLD_DL_SYMENT) != 0 && symbol != NULL &&
         symbol->st_shndx != SHN_UNDEF;
}

void secure_find_replaced_operators(void) {
  bool plain = cxx_replaced("_Znwm", (void *)cxx_new_plain) ||
               cxx_replaced("_ZnwmRKSt9nothrow_t", (void *)cxx_new_plain_nothrow) ||
               cxx_replaced("_ZdlPv", (void *)cxx_delete_plain) ||
               cxx_replaced("_ZdlPvm", (void *)cxx_delete_plain_sized) ||
               cxx_replaced("_ZdlPvRKSt9nothrow_t", (void *)cxx_delete_plain_nothrow);
  bool array = cxx_replaced("_Znam", (void *)cxx_new_array) ||
               cxx_replaced("_ZnamRKSt9nothrow_t", (void *)cxx_new_array_nothrow) ||
               cxx_replaced("_ZdaPv", (void *)cxx_delete_array) ||
               cxx_replaced("_ZdaPvm", (void *)cxx_delete_array_sized) ||
               cxx_replaced("_ZdaPvRKSt9nothrow_t", (void *)cxx_delete_array_nothrow);
  secure_replaced_kinds = (plain ? 1u << SECURE_NEW : 0) | (array ? 1u << SECURE_NEW_ARRAY : 0);
}
