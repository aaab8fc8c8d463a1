/* secure.c: secure mode (BUDDY_OPTIONS=secure=1): the checks that cost too
 * much for the default mode, on the slow paths every block takes then.
 *
 * Secure mode implies debug=1, so that the thread caches' bins hold
 * nothing: the zones leave the small map empty (zone.c), so that every free
 * reaches free_not_small_object and, from there, this file; malloc's fast
 * path finds every bin empty and reaches alloc_small_slow, which comes here
 * with the size asked for. So the fast paths carry no test of their own for
 * the mode. A freed block's way back to the program (a thread's batch, its
 * zone's quarantine, the blocks the thread hands out next) is
 * secure_cache.c's.
 *
 * A small block of secure mode, of class bytes B, holds
 *   [0, asked)         the program's bytes;
 *   [asked, B - 16)    FILL_TAIL;
 *   [B - 16, B - 8)    the canary: secure_cookie ^ address ^ asked ^ kind
 *                      (malloc, new or new[]: who must free it);
 *   [B - 8, B)         asked (last, so that a delete[] of a block from new
 *                      reads a small count before it, not the canary),
 * so that its usable size is its request (malloc_usable_size says so). The
 * free checks the canary and the fill (a write past the end), and the last
 * 16 bytes of the block before it in the slab: a live block's canary, or a
 * freed block's fill; anything else is a write before the start of this
 * block (or past the end of that one). The class of huge blocks'
 * descriptors (huge.c takes them for itself) is never a secure block's, so
 * that no slab mixes the two.
 *
 * A freed block (small, or a page run's first SECURE_RUN_FILL bytes) is
 * filled with FILL_FREED, its first word set to its quarantine mark
 * (secure_mark), its second to FREE_KEY and, if small, its last to 0 as
 * slab.c's fill does (a delete[] of the block after it, which came from
 * new, reads a count of 0 and frees what is then an interior pointer,
 * reported). A second free of a block on its way back finds the mark: a
 * double free; one that went back to its slab is found there.
 *
 * The first object of each slab is never handed out: it stays filled with
 * FILL_FREED, a guard whose end the underflow check of the next object
 * reads. And each slab has a guard page just past its end (zone.c:
 * PAGE_GUARD), so a read or write that runs off its last block faults at
 * once and is reported here (secure_fault), and no two slabs touch.
 */
#include "tcache.h"

#include <errno.h>
#include <string.h>

/* ---- Words of a block ---------------------------------------------------- */

static size_t *secure_trailer(void *p, size_t bytes) {
  return (size_t *)((char *)p + bytes - SECURE_TRAILER);
}

#define SECURE_KIND_MAX SECURE_NEW_ARRAY /* kinds fit the canary's low 2 bits */

/* The kind the canary of a block of `bytes` at p holds, or -1 if the canary
 * or the request is not what was written. */
static int secure_kind_of(void *p, size_t bytes) {
  size_t *t = secure_trailer(p, bytes);
  size_t kind = t[0] ^ secure_cookie() ^ (uintptr_t)p ^ t[1];
  return t[1] > bytes - SECURE_TRAILER || kind > SECURE_KIND_MAX ? -1 : (int)kind;
}

/* The trailer of a block of `bytes` at p is intact: its request, or
 * SIZE_MAX if the canary or the request is not what was written. */
static size_t secure_asked(void *p, size_t bytes) {
  return secure_kind_of(p, bytes) < 0 ? SIZE_MAX : secure_trailer(p, bytes)[1];
}

/* ---- Allocation ---------------------------------------------------------- */

/* Classes of more than two words only: a freed block's last word is then
 * apart from its key word (slab.c's fill); never the huge descriptors'. */
unsigned secure_class(size_t size, size_t align) {
  if (size > SMALL_SIZE_MAX - SECURE_TRAILER || align > PAGE_SIZE) return 0;
  size_t need = size + SECURE_TRAILER > 2 * sizeof(void *) ? size + SECURE_TRAILER : 2 * sizeof(void *) + 1;
  unsigned first = size_class_of(need);
  /* Every class is a multiple of SMALL_ALIGN: malloc's blocks need no
   * search (and no division); the class after the huge descriptors' is
   * small too. */
  _Static_assert(sizeof(huge_t) <= SMALL_SIZE_MAX / 2, "a class follows the huge descriptors'");
  if (align <= SMALL_ALIGN) return first != HUGE_DESC_CLASS ? first : first + 1;
  for (unsigned c = first; c < SIZE_CLASS_COUNT; c++)
    if (size_class_bytes[c] % align == 0 && c != HUGE_DESC_CLASS) return c;
  return 0;
}

void *secure_alloc_small(unsigned cls, size_t size, secure_kind_t kind) {
  tcache_t *tc = tcache_enter_held();
  void *p = secure_cache_take(tc, cls);
  /* Counted as the default mode counts a bin's pops (the statistics' per
   * class requests), or a thread's without a cache of its own. */
  if (p != NULL && tc->state == TCACHE_LIVE) counter_add(tc->bin_requests[tcache_home_bin(tc, cls)], 1);
  else if (p != NULL) __atomic_fetch_add(&tcache_requests_uncached[cls], 1, __ATOMIC_RELAXED);
  tcache_release();
  if (p == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  size_t bytes = size_class_bytes[cls];
  ((void **)p)[1] = NULL; /* not FREE_KEY any more */
  memset((char *)p + size, FILL_TAIL, bytes - SECURE_TRAILER - size);
  size_t *t = secure_trailer(p, bytes);
  t[0] = secure_cookie() ^ (uintptr_t)p ^ size ^ (size_t)kind;
  t[1] = size;
  return p;
}

size_t secure_usable_small(void *p, unsigned cls) {
  size_t asked = secure_asked(p, size_class_bytes[cls]);
  return asked == SIZE_MAX ? size_class_bytes[cls] - SECURE_TRAILER : asked;
}

/* ---- Checks at free ------------------------------------------------------ */

/* A write past the end of the small block p: its canary, or its fill.
 * False if it found one (reported). */
static bool secure_check_trailer(void *p, size_t bytes) {
  size_t asked = secure_asked(p, bytes);
  if (asked == SIZE_MAX) {
    error_misuse_block("heap overflow: the canary after a block was overwritten", secure_trailer(p, bytes), bytes, 0);
    return false;
  }
  return fill_tail_check((char *)p + asked, bytes - SECURE_TRAILER - asked,
                         "heap overflow: a write past the end of a block", bytes, asked);
}

void *secure_resize_small(void *p, unsigned cls, size_t size) {
  size_t bytes = size_class_bytes[cls];
  if (secure_class(size, SMALL_ALIGN) != cls || secure_kind_of(p, bytes) != SECURE_MALLOC ||
      !secure_check_trailer(p, bytes))
    return NULL;
  size_t *t = secure_trailer(p, bytes), asked = t[1];
  if (size < asked) memset((char *)p + size, FILL_TAIL, asked - size);
  t[0] = secure_cookie() ^ (uintptr_t)p ^ size ^ (size_t)SECURE_MALLOC;
  t[1] = size;
  return p;
}

/* Whether the last 16 bytes of the small block at q are each what some
 * state of a block leaves there: its canary and request while it is the
 * program's, FILL_FREED and 0 once freed (slab.c fills it whole, then writes
 * the 0), or a guard. Word by word, because another thread may be
 * allocating or freeing that block right now: any mix of the two states is
 * one the check must accept. A write before the next block changes the
 * request word's high bytes first. */
static bool secure_end_plausible(const char *q, size_t bytes) {
  const size_t *t = (const size_t *)(q + bytes - SECURE_TRAILER), max = bytes - SECURE_TRAILER;
  size_t fill;
  memset(&fill, FILL_FREED, sizeof fill);
  size_t canary = __atomic_load_n(&t[0], __ATOMIC_RELAXED), asked = __atomic_load_n(&t[1], __ATOMIC_RELAXED);
  bool canary_ok = canary == fill || (canary ^ secure_cookie() ^ (uintptr_t)q) <= (max | SECURE_KIND_MAX);
  bool asked_ok = asked == 0 || asked == fill || asked <= max;
  return canary_ok && asked_ok;
}

/* A write before the small block p: the block below it in the slab must end
 * as a block of secure mode does (secure_end_plausible). */
static void secure_check_before(void *p, size_t bytes, unsigned cls) {
  if (((uintptr_t)p & size_class_info[cls].slab_mask) < bytes) return; /* a guard (never handed out) */
  char *q = (char *)p - bytes;
  if (secure_end_plausible(q, bytes)) return;
  error_misuse_block("heap underflow: a write before the start of a block (or past the end of the block before it)", p,
                     bytes, secure_usable_small(p, cls));
}

/* checked: the bytes filled; small: the block's last word is set to 0,
 * first (secure_end_plausible). */
static void secure_fill_freed(void *p, size_t checked, bool small) {
  if (small) {
    size_t *t = secure_trailer(p, checked), fill;
    memset(&fill, FILL_FREED, sizeof fill);
    __atomic_store_n(&t[1], 0, __ATOMIC_RELAXED);
    __atomic_store_n(&t[0], fill, __ATOMIC_RELAXED);
    checked -= SECURE_TRAILER;
  }
  memset(p, FILL_FREED, checked);
  ((void **)p)[0] = (void *)secure_mark(p);
  ((void **)p)[1] = (void *)FREE_KEY;
}

unsigned secure_replaced_kinds;

/* The block was freed by what did not allocate it (`made`): free of a block
 * from new, delete of one from malloc, delete[] of one from new, and so on
 * (but not between malloc and operators the program replaced). */
void secure_check_made(void *p, size_t bytes, size_t asked, secure_kind_t made, secure_kind_t freed) {
  static const char *const what[SECURE_KIND_MAX + 1][SECURE_KIND_MAX + 1] = {
      [SECURE_MALLOC] = {[SECURE_NEW] = "mismatched free: delete of a block from malloc",
                         [SECURE_NEW_ARRAY] = "mismatched free: delete[] of a block from malloc"},
      [SECURE_NEW] = {[SECURE_MALLOC] = "mismatched free: free of a block from new",
                      [SECURE_NEW_ARRAY] = "mismatched free: delete[] of a block from new"},
      [SECURE_NEW_ARRAY] = {[SECURE_MALLOC] = "mismatched free: free of a block from new[]",
                            [SECURE_NEW] = "mismatched free: delete of a block from new[]"},
  };
  if (made == freed) return;
  secure_kind_t operators = made != SECURE_MALLOC ? made : freed;
  if ((made == SECURE_MALLOC || freed == SECURE_MALLOC) && (secure_replaced_kinds & (1u << operators))) return;
  error_misuse_block(what[made][freed], p, bytes, asked);
}

static void secure_check_kind(void *p, size_t bytes, secure_kind_t kind) {
  int made = secure_kind_of(p, bytes);
  if (made >= 0) secure_check_made(p, bytes, secure_trailer(p, bytes)[1], (secure_kind_t)made, kind);
}

void secure_free_small(region_t *r, void *p, unsigned cls, secure_kind_t kind) {
  size_t bytes = size_class_bytes[cls];
  /* A slab's guard (its first object) was never handed out: let through, it
   * would come back as a block of a slab that counts as empty without it. */
  if (slab_guard_at(slab_head_at(r, p, cls), (uintptr_t)p & size_class_info[cls].slab_mask))
    return error_misuse_block("free of a small block that was never allocated (a slab's guard)", p, bytes, 0);
  if (((void **)p)[0] == (void *)secure_mark(p))
    return error_misuse_block("double free of a small block (it waits in the quarantine)", p, bytes, 0);
  if (free_key_matches(((void **)p)[1]) && zone_holds_free_object(r, p))
    return error_misuse_block("double free of a small block", p, bytes, 0);
  secure_check_trailer(p, bytes);
  secure_check_kind(p, bytes, kind);
  secure_check_before(p, bytes, cls);
  secure_fill_freed(p, bytes, true);
  tcache_t *tc = tcache_enter_held(); /* on its way back to the program (secure_cache.c) */
  secure_cache_put_small(tc, p, cls);
  tcache_release();
}

/* ---- Medium blocks: a header page -------------------------------------- */

/* The header page before a medium block (secure_header_run) starts with
 * secure_header_word and ends with SECURE_HEADER_TAIL bytes of FILL_TAIL: a
 * write just before the block changes them. */
#define SECURE_HEADER_TAIL 64

static uintptr_t secure_header_word(const void *head) {
  return secure_cookie() ^ (uintptr_t)head ^ 0x4844u;
}

/* The header's second word: the block's kind (malloc, new, new[]). */
static uintptr_t secure_header_kind_word(const void *head, secure_kind_t kind) {
  return secure_cookie() ^ ~(uintptr_t)head ^ (uintptr_t)kind;
}

void *secure_header_run(void *head, secure_kind_t kind) {
  char *h = head;
  ((uintptr_t *)h)[0] = secure_header_word(h);
  ((uintptr_t *)h)[1] = secure_header_kind_word(h, kind);
  memset(h + PAGE_SIZE - SECURE_HEADER_TAIL, FILL_TAIL, SECURE_HEADER_TAIL);
  return h + PAGE_SIZE;
}

void *secure_run_head(region_t *r, void *p) {
  if (((uintptr_t)p & (PAGE_SIZE - 1)) != 0 || page_index_of(r, p) == 0) return NULL;
  char *head = (char *)p - PAGE_SIZE;
  page_desc_t *d = page_desc_of(r, head);
  if (d->kind != PAGE_RUN || (d->flags & PAGE_META) || ((uintptr_t *)head)[0] != secure_header_word(head)) return NULL;
  return head;
}

/* The program's request for the block after the header page at head (d:
 * its descriptor), which the run's tail check records with the header
 * counted; 0 if the tail is disarmed (malloc_usable_size). */
static size_t secure_run_asked(const page_desc_t *d) {
  return d->run_tail != 0 ? d->run_asked - PAGE_SIZE : 0;
}

/* The kind the header at head records (secure_kind_t), or a larger value if
 * the word was overwritten. */
static uintptr_t secure_run_made(const char *head) {
  return ((const uintptr_t *)head)[1] ^ secure_header_kind_word(head, SECURE_MALLOC);
}

void *secure_resize_run(region_t *r, void *p, char *head, size_t size) {
  page_desc_t *d = page_desc_of(r, head);
  size_t bytes = (PAGE_SIZE << d->order) - PAGE_SIZE, asked = secure_run_asked(d);
  if (secure_run_made(head) != SECURE_MALLOC || size > bytes ||
      buddy_order_for_pages(((size + PAGE_SIZE - 1) >> PAGE_SHIFT) + 1) != d->order)
    return NULL;
  if (d->run_tail != 0 &&
      !fill_tail_check(head + d->run_asked, d->run_tail,
                       "heap overflow: a write past the end of a medium block, found at its realloc", bytes, asked)) {
    zone_run_disarm_tail(head); /* reported once: the move's free does not again */
    return NULL;
  }
  zone_run_move_tail(head, size + PAGE_SIZE); /* the run's request counts the header */
  return p;
}

/* The head of the page run that holds `page` (a page of region r), or NULL:
 * runs are aligned to their order, so the head is the page rounded down to
 * some order's size. Reads descriptors only: the signal handler calls it. */
static page_desc_t *secure_run_holding(region_t *r, const void *page) {
  size_t index = page_index_of(r, page);
  for (unsigned k = 0; k <= BUDDY_MAX_ORDER; k++) {
    page_desc_t *d = &r->pages[index & ~(((size_t)1 << k) - 1)];
    if (d->kind == PAGE_RUN && d->order >= k) return d;
    if (d->kind != PAGE_INNER) return NULL;
  }
  return NULL;
}

/* A fault at addr in a sealed run: a read or a write of a medium block
 * after its free, reported (the program stops there). From the SIGSEGV
 * handler (runtime), after huge_fault: reads the page map and descriptors. */
void secure_fault(void *addr) {
  char *page = (char *)((uintptr_t)addr & ~(uintptr_t)(PAGE_SIZE - 1));
  uintptr_t entry = pagemap_entry(page);
  if (entry == 0 || !pagemap_is_region(entry)) return;
  region_t *r = pagemap_region(entry);
  page_desc_t *d = secure_run_holding(r, page);
  if (d != NULL && (d->flags & PAGE_SEALED))
    error_fatal_block("use after free: a freed medium block was read or written (it is sealed in the quarantine)", addr,
                      PAGE_SIZE << d->order, 0);
  /* A guard page: the slab just before it (zone.c) was run off its end. */
  const page_desc_t *slab = d != NULL && (d->flags & PAGE_GUARD) ? page_desc_of(r, page - PAGE_SIZE) : NULL;
  if (slab != NULL && slab->kind == PAGE_SLAB)
    error_fatal_block("heap overflow: a read or write past the end of a slab's last small block (its guard page)", addr,
                      size_class_bytes[page_class_of_desc(slab)], 0);
}

/* A run waiting in the quarantine, its pages inaccessible (PAGE_SEALED):
 * reading its header or its mark would fault, so its descriptor says it. */
static bool secure_run_sealed(region_t *r, void *p) {
  if (((uintptr_t)p & (PAGE_SIZE - 1)) != 0) return false;
  page_desc_t *d = secure_run_holding(r, p);
  return d != NULL && (d->flags & PAGE_SEALED);
}

void secure_free_run(region_t *r, void *p, secure_kind_t kind) {
  if (secure_run_sealed(r, p))
    return error_misuse_block("double free of a medium block (it waits in the quarantine)", p, 0, 0);
  char *head = secure_run_head(r, p);
  page_desc_t *d = page_desc_of(r, head != NULL ? head : p);
  if (head == NULL) {
    if (!zone_run_live_at(d, p)) return zone_free_run(r, p); /* reported there */
    head = p;
  }
  size_t run_bytes = PAGE_SIZE << d->order, bytes = run_bytes - (size_t)((char *)p - head);
  if (((void **)p)[0] == (void *)secure_mark(p))
    return error_misuse_block("double free of a medium block (it waits in the quarantine)", p, bytes, 0);
  if (head != (char *)p) {
    size_t asked = secure_run_asked(d);
    uintptr_t made = secure_run_made(head);
    if (made <= SECURE_KIND_MAX) secure_check_made(p, bytes, asked, (secure_kind_t)made, kind);
    fill_tail_check(head + PAGE_SIZE - SECURE_HEADER_TAIL, SECURE_HEADER_TAIL,
                    "heap underflow: a write before the start of a medium block", bytes, asked);
    fill_tail_check(head + d->run_asked, d->run_tail,
                    "heap overflow: a write past the end of a medium block, found when it was freed", bytes, asked);
    zone_run_disarm_tail(head);
  } else {
    zone_run_take_tail(head);
  }
  size_t checked = bytes < SECURE_RUN_FILL ? bytes : SECURE_RUN_FILL;
  secure_fill_freed(p, checked, false);
  /* Sealed while it waits, so that a read or a write through a stale
   * pointer faults at once (secure_fault); where that fails (the kernel's
   * count of mappings, or the count of guards: os.h), its fill is checked
   * when it leaves. */
  bool sealed = os_make_counted_guard(head, run_bytes);
  if (sealed) d->flags |= PAGE_SEALED;
  tcache_t *tc = tcache_enter_held();
  secure_cache_put_run(tc, p, head, run_bytes, sealed);
  tcache_release();
}

/* At exit, every block still waiting is checked: the calling thread's own
 * (other threads' are checked when they leave them) unless its frame is
 * halfway through a change of them (a signal handler's child exits), and
 * the quarantines'. */
__attribute__((destructor)) startup_code static void secure_check_at_exit(void) {
  if (!options.secure) return;
  if (tcache_tls.busy == 0) secure_cache_check(tcache_get());
  secure_check_quarantines();
}
