/* base.h: the bottom of libbuddy, which every layer may use: branch hints,
 * debug levels and internal asserts, misuse reports (error.c), options
 * (options.c), the locks' wrappers (lock.h) and the key that marks free small
 * objects. Everything declared in libbuddy's headers has hidden visibility:
 * meson sets it for the definitions, and the pragma in each header tells
 * every user, so that the fast paths address tables and keys directly rather
 * than through the GOT.
 */
#ifndef BUDDY_BASE_H
#define BUDDY_BASE_H

#include "lock.h"
#include "os.h"
#include "types.h"

#include <stdarg.h>

#pragma GCC visibility push(hidden)

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define noinline __attribute__((__noinline__))
#define cold_path __attribute__((__noinline__, __cold__))

/* Whether p is among ptrs[0..count): the scan that confirms a suspected
 * double free in a bin, a remote batch or a transfer stack. */
static inline bool pointers_hold(void *const *ptrs, size_t count, const void *p) {
  for (size_t i = 0; i < count; i++)
    if (ptrs[i] == p) return true;
  return false;
}

/* ---- Debug levels (constants, so every variant is compiled) -------------- */

#ifndef BUDDY_DEBUG_LEVEL
#define BUDDY_DEBUG_LEVEL 0
#endif
static const int debug_level = BUDDY_DEBUG_LEVEL;

_Noreturn void error_assert_failed(const char *cond, const char *file, int line);

/* Level 2: internal invariants; level 3: expensive whole-structure walks. */
#define assert_internal(c) ((debug_level >= 2 && !(c)) ? error_assert_failed(#c, __FILE__, __LINE__) : (void)0)
#define assert_expensive(c) ((debug_level >= 3 && !(c)) ? error_assert_failed(#c, __FILE__, __LINE__) : (void)0)

/* ---- error.c: misuse reports (write(2), then abort; never allocate) ------ */

_Noreturn void error_fatal(const char *what, const void *ptr);
/* Heap misuse by the program: reported, then abort() — or, with
 * abort_on_error=0, a warning after which the caller leaks the block. */
void error_misuse(const char *what, const void *ptr);
/* The same about a block whose bytes (size class, run or mapping) and
 * requested size are known (0: not known): a corrupted block, reported with
 * them; with abort_on_error=0 the caller goes on. */
void error_misuse_block(const char *what, const void *ptr, size_t bytes, size_t asked);
/* The same, always fatal: the program cannot go on (a fault). */
_Noreturn void error_fatal_block(const char *what, const void *ptr, size_t bytes, size_t asked);

/* ---- The free key ------------------------------------------------------ */

/* The second word of a free small object, in a cache, a transfer stack or
 * free in its slab, holds FREE_KEY: a free finding it there suspects a
 * double free and confirms it by a scan of its own cache, the object's free
 * bit (slab.c) and its zone's transfer stack. One key for all places keeps
 * free's test to a compare. It is a constant so that free's fast path
 * compares and stores it as an instruction's immediate, with no load; the
 * key only raises a suspicion, which the scan settles, so a program whose
 * data holds it is slower on that free, never wrong. Its value is a 32-bit
 * immediate sign-extended (the only wide form x86-64 compares memory with):
 * its upper half is all ones, so no user-space pointer, the commonest
 * content of a second word, equals it. It is not 0 (fresh blocks hold 0),
 * and its low bits are clear, so that zone_transfer_mark, its complement,
 * is not 0 either. */
#define FREE_KEY ((uintptr_t)-0x214f2e90) /* 0xffffffffdeb0d170 */
_Static_assert(FREE_KEY != 0 && (FREE_KEY & 3) == 0 && ~FREE_KEY != 0, "the key and its complement are not 0");
static inline bool free_key_matches(const void *word) {
  return (uintptr_t)word == FREE_KEY;
}

/* ---- Warnings (base.c) ----------------------------------------------------- */

/* "buddymalloc: warning: " and the strings up to a NULL, then a newline, on
 * stderr in one write (so that processes sharing stderr do not mix lines);
 * never allocates. */
void base_warning(const char *first, ...) __attribute__((sentinel));
/* Set by quiet=1 (options.c): base_warning prints nothing. */
extern bool base_warnings_off;

/* ---- Bytes handed out, and their peak (base.c) --------------------------- */

/* Small objects out of their slabs, page runs and huge blocks: the layers
 * that hand them out add and subtract their bytes here where blocks leave
 * and come back (a zone once its own count has moved by ZONE_OUT_GRAIN,
 * huge.c at once), never on malloc's or free's fast path. The peak is the
 * most this ever was, the statistics' "allocated at peak". */
void heap_bytes_note(long delta);

/* `pattern` into path (at most size bytes, with its NUL), each %p replaced
 * by the process id (the options' paths: stats_file, prof_prefix); returns
 * the length written. */
size_t base_expand_pid(char *path, size_t size, const char *pattern);

/* Appends vsnprintf's output at text + *len (text holds size bytes), and
 * advances *len; output that does not fit is cut, and the text stays
 * NUL-terminated (the reports' writers: stats.c, prof_dump.c). */
void base_vappend(char *text, size_t size, size_t *len, const char *fmt, va_list ap);
size_t heap_bytes_peak(void);
/* In a fork child: its peak starts at what it has now, as the kernel's
 * VmHWM does. */
void heap_bytes_fork_child(void);

/* ---- fill.c: the hardening checks' patterns ------------------------------ */

#define FILL_TAIL 0xa5   /* past the requested end of a run or huge block */
#define FILL_FREED 0xdf  /* a freed block (huge ones: their start, in the cache) */
#define FILL_TAIL_MAX 64 /* tail bytes checked at most (fits a uint8_t) */
size_t fill_tail_bytes(size_t asked, size_t end);
/* Fills the tail of the block of `bytes` at p past `asked` (fill_tail_bytes
 * of it) with FILL_TAIL; returns its length, to be checked at free. */
size_t fill_tail_arm(char *p, size_t asked, size_t bytes);
const unsigned char *fill_find_other(const void *p, size_t n, unsigned char byte);
/* Reports `what` at the first of from[0..n) that is not FILL_TAIL any more
 * (a write past an end, or before a start), with the block's bytes and the
 * program's request, and returns false; true if the fill is intact. */
bool fill_tail_check(const char *from, size_t n, const char *what, size_t block_bytes, size_t asked);

/* ---- options.c ----------------------------------------------------------- */

extern buddy_options_t options;
void options_init(void);
/* Allocations are sampled: prof=1 or leaks=1 (tcache_prof.c, prof.c). */
static inline bool options_sampling(void) {
  return (options.prof | options.leaks) != 0;
}

/* ---- Arithmetic the allocator cannot take from libm (base.c) ------------- */

/* The natural logarithm of x > 0, and e to the x, to about 1e-12 relative:
 * the sampling draws exponential intervals and scales its estimates with
 * them, and the preload library depends on libc alone. */
double base_ln(double x);
double base_exp(double x);

#pragma GCC visibility pop

#endif /* BUDDY_BASE_H */
