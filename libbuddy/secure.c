/* secure.c: secure mode (BUDDY_OPTIONS=secure=1): the checks that cost too
 * much for the default mode, on the slow paths every block takes then.
 *
 * Secure mode implies debug=1, so that nothing is cached: a freed small
 * block goes back to its slab, filled (slab.c), and the fill is checked when
 * the slab hands it out again. The zones leave the small map empty
 * (zone.c), so that every free reaches free_not_small_object and, from
 * there, this file; malloc's fast path finds every bin empty and reaches
 * alloc_small_slow, which comes here with the size asked for. So the fast
 * paths carry no test of their own for the mode.
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
 * (secure_cookie ^ ~address), its second to FREE_KEY and, if small, its last
 * to 0 as slab.c's fill does (a delete[] of the block after it, which came
 * from new, reads a count of 0 and frees what is then an interior
 * pointer, reported), and waits in the
 * quarantine of the freeing thread's home zone: a FIFO bounded in bytes
 * (quarantine_kb, each) and in slots. A block leaving it is checked (a
 * write after free) before it goes back to its slab or its zone; each free
 * also checks one block still waiting (a cursor going round), and every
 * quarantine is checked at exit. A second free of a block in a quarantine
 * finds the mark: a double free.
 *
 * malloc takes one object chosen at random among the free ones of a slab
 * (slab_take_random: at least 8 to choose among while the slab has them),
 * so the next block is not predictable from the last one freed or handed
 * out, and only the block handed out has its fill checked. The first object
 * of each slab is never handed out: it stays filled with FILL_FREED, a
 * guard whose end the underflow check of the next object reads. And each
 * slab has a guard page just past its end (zone.c: PAGE_GUARD), so a read
 * or write that runs off its last block faults at once and is reported
 * here (secure_fault), and no two slabs touch.
 *
 * A quarantine's lock is a leaf (lock.h): blocks leave it with the lock
 * released.
 */
#include "tcache.h"

#include <errno.h>
#include <string.h>

#define SECURE_QUARANTINE_SLOTS 4096
#define SECURE_RUN_FILL PAGE_SIZE
#define SECURE_EVICT_MAX 16 /* blocks that leave the quarantine in one free, at most */

typedef struct secure_entry {
  bool sealed;      /* a page run whose pages are inaccessible while it waits */
  void *p;          /* the block as the program had it */
  void *run;        /* a page run: its head (p, or p's header page) */
  size_t bytes;     /* the block's: class bytes or the run's */
  size_t checked;   /* bytes from p that hold the fill (and the mark, the key) */
  region_t *region; /* its region */
  unsigned cls;     /* its class; 0: a page run */
} secure_entry_t;

typedef struct secure_quarantine {
  pthread_mutex_t lock;
  secure_entry_t slot[SECURE_QUARANTINE_SLOTS];
  unsigned first, count, cursor; /* the oldest; how many; the next to check in place */
  size_t bytes;
} secure_quarantine_t;

/* A quarantine per zone: a block waits in its freeing thread's home zone's,
 * so that threads of different zones do not contend for one lock on every
 * free. Zone 0's is static; the others are mapped at start-up in secure
 * mode (secure_init), and stay zone 0's if that fails. */
static secure_quarantine_t secure_quarantine0 = {.lock = PTHREAD_MUTEX_INITIALIZER};
static secure_quarantine_t *secure_quarantines[ZONES_MAX] = {[0 ... ZONES_MAX - 1] = &secure_quarantine0};

static uint64_t secure_sequence; /* atomic: the random choice's counter */

/* The secret of the canaries, the quarantine marks and the random choice,
 * drawn at start-up (secure_init): the library's code does not tell them
 * (FREE_KEY, a constant of the fast paths, would). */
static uint64_t secure_secret;

void secure_init(void) {
  secure_secret = (uint64_t)os_random_seed() | 1;
  size_t others = (size_t)options.zones - 1;
  size_t bytes = (others * sizeof(secure_quarantine_t) + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
  secure_quarantine_t *q = others == 0 ? NULL : os_map_aligned(bytes, PAGE_SIZE);
  if (q == NULL) return; /* all of them zone 0's */
  for (size_t i = 0; i < others; i++) {
    lock_reset(&q[i].lock, NULL);
    secure_quarantines[i + 1] = &q[i];
  }
}

/* Calls f on each quarantine once (zones may share zone 0's). */
static void secure_each_quarantine(void (*f)(secure_quarantine_t *q)) {
  for (unsigned i = 0; i < ZONES_MAX; i++) {
    bool seen = false;
    for (unsigned j = 0; j < i && !seen; j++) seen = secure_quarantines[j] == secure_quarantines[i];
    if (!seen) f(secure_quarantines[i]);
  }
}

/* ---- Words of a block ---------------------------------------------------- */

static uintptr_t secure_cookie(void) {
  return (uintptr_t)(secure_secret * 0x9e3779b97f4a7c15u ^ 0x5a5a5a5a5a5a5a5au);
}

static uintptr_t secure_mark(const void *p) {
  return secure_cookie() ^ ~(uintptr_t)p;
}

/* A random number (splitmix64 of a counter and the secret). */
static uint64_t secure_random(void) {
  uint64_t x = __atomic_add_fetch(&secure_sequence, 0x9e3779b97f4a7c15u, __ATOMIC_RELAXED) ^ secure_secret;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
  return x ^ (x >> 31);
}

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
  for (unsigned c = size_class_of(need); c < SIZE_CLASS_COUNT; c++)
    if (size_class_bytes[c] % align == 0 && c != HUGE_DESC_CLASS) return c;
  return 0;
}

/* The first object of a slab, kept out: it ends as a freed block does. */
static void secure_guard(void *p, size_t bytes) {
  memset(p, FILL_FREED, bytes);
  ((void **)p)[bytes / sizeof(void *) - 1] = NULL;
}

/* An object from the thread's zone, chosen at random among the free ones of
 * a slab (zone_alloc_object_random); the first object of a slab is kept out
 * as its guard. */
static void *secure_take(unsigned cls) {
  zone_t *z = tcache_thread_zone();
  for (;;) {
    void *p = zone_alloc_object_random(z, cls, secure_random());
    if (p == NULL || ((uintptr_t)p & size_class_info[cls].slab_mask) != 0) return p;
    secure_guard(p, size_class_bytes[cls]);
  }
}

void *secure_alloc_small(unsigned cls, size_t size, secure_kind_t kind) {
  void *p = secure_take(cls);
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

/* The block of entry e still holds its fill and mark: else written after
 * free. */
/* False after reporting a write to the block since its free. */
static bool secure_check_freed(const secure_entry_t *e) {
  if (e->sealed) return true; /* nothing could write to it */
  void **w = e->p;
  const unsigned char *bad = NULL;
  size_t last = e->cls != 0 ? e->bytes / sizeof(void *) - 1 : 0; /* 0: none */
  if (w[0] != (void *)secure_mark(e->p)) bad = e->p;
  else if (w[1] != (void *)FREE_KEY) bad = (unsigned char *)e->p + sizeof(void *);
  else if (last != 0 && w[last] != NULL) bad = (unsigned char *)(w + last);
  else bad = fill_find_other(w + 2, e->checked - (last != 0 ? 3 : 2) * sizeof(void *), FILL_FREED);
  if (bad == NULL) return true;
  error_misuse_block("use after free: a freed block was written to while in the quarantine", bad, e->bytes, 0);
  return false;
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

/* ---- The quarantine ------------------------------------------------------ */

static secure_entry_t *secure_slot(secure_quarantine_t *q, unsigned i) {
  return &q->slot[(q->first + i) % SECURE_QUARANTINE_SLOTS];
}

/* A block leaving the quarantine: checked, then back to its slab or zone. */
static void secure_release(const secure_entry_t *e) {
  if (e->sealed) {
    if (!os_make_writable(e->run, e->bytes)) {
      base_warning("secure=1: a quarantined block cannot be made accessible again; it stays out of use", e->run);
      return;
    }
    page_desc_of(e->region, e->run)->flags &= (uint8_t)~PAGE_SEALED;
  }
  bool intact = secure_check_freed(e);
  if (e->cls != 0 && !intact) return zone_free_small(e->p); /* slab.c's fill replaces what was written */
  if (e->cls != 0) {
    /* Filled as slab.c fills a freed object but for its mark: with the
     * fill in its place, it goes back as it is. */
    memset(&((void **)e->p)[0], FILL_FREED, sizeof(void *));
    return zone_return_untouched(e->region->zone, e->cls, &e->p, 1);
  }
  ((void **)e->p)[0] = NULL;   /* the run may come back to the program as it is */
  ((void **)e->run)[0] = NULL; /* and its header, if it had one, is gone */
  zone_free_run(e->region, e->run);
}

/* Parks e; the oldest blocks leave while the quarantine is over its bounds.
 * One block still waiting is checked in place. */
static void secure_quarantine_put(secure_entry_t e) {
  secure_entry_t out[SECURE_EVICT_MAX];
  unsigned n = 0;
  size_t bound = (size_t)options.quarantine_kb << 10;
  secure_quarantine_t *q = secure_quarantines[tcache_home_zone(tcache_get()) - zones];
  lock_take(&q->lock);
  if (q->count > 0) secure_check_freed(secure_slot(q, q->cursor++ % q->count));
  *secure_slot(q, q->count++) = e;
  q->bytes += e.bytes;
  while (n < SECURE_EVICT_MAX && q->count > 0 && (q->bytes > bound || q->count == SECURE_QUARANTINE_SLOTS)) {
    out[n++] = *secure_slot(q, 0);
    q->bytes -= out[n - 1].bytes;
    q->first = (q->first + 1) % SECURE_QUARANTINE_SLOTS;
    q->count--;
  }
  lock_release(&q->lock);
  for (unsigned i = 0; i < n; i++) secure_release(&out[i]);
}

/* The block was freed by what did not allocate it (`made`): free of a block
 * from new, delete of one from malloc, delete[] of one from new, and so on. */
void secure_check_made(void *p, size_t bytes, size_t asked, secure_kind_t made, secure_kind_t freed) {
  static const char *const what[SECURE_KIND_MAX + 1][SECURE_KIND_MAX + 1] = {
      [SECURE_MALLOC] = {[SECURE_NEW] = "mismatched free: delete of a block from malloc",
                         [SECURE_NEW_ARRAY] = "mismatched free: delete[] of a block from malloc"},
      [SECURE_NEW] = {[SECURE_MALLOC] = "mismatched free: free of a block from new",
                      [SECURE_NEW_ARRAY] = "mismatched free: delete[] of a block from new"},
      [SECURE_NEW_ARRAY] = {[SECURE_MALLOC] = "mismatched free: free of a block from new[]",
                            [SECURE_NEW] = "mismatched free: delete of a block from new[]"},
  };
  if (made != freed) error_misuse_block(what[made][freed], p, bytes, asked);
}

static void secure_check_kind(void *p, size_t bytes, secure_kind_t kind) {
  int made = secure_kind_of(p, bytes);
  if (made >= 0) secure_check_made(p, bytes, secure_trailer(p, bytes)[1], (secure_kind_t)made, kind);
}

void secure_free_small(region_t *r, void *p, unsigned cls, secure_kind_t kind) {
  size_t bytes = size_class_bytes[cls];
  if (((void **)p)[0] == (void *)secure_mark(p))
    return error_misuse_block("double free of a small block (it waits in the quarantine)", p, bytes, 0);
  if (free_key_matches(((void **)p)[1]) && zone_holds_free_object(r, p))
    return error_misuse_block("double free of a small block", p, bytes, 0);
  secure_check_trailer(p, bytes);
  secure_check_kind(p, bytes, kind);
  secure_check_before(p, bytes, cls);
  secure_fill_freed(p, bytes, true);
  secure_quarantine_put(
      (secure_entry_t){.p = p, .run = NULL, .bytes = bytes, .checked = bytes, .region = r, .cls = cls});
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
   * count of mappings), its fill is checked when it leaves. */
  bool sealed = os_make_guard(head, run_bytes);
  if (sealed) d->flags |= PAGE_SEALED;
  secure_quarantine_put((secure_entry_t){
      .sealed = sealed, .p = p, .run = head, .bytes = run_bytes, .checked = checked, .region = r, .cls = 0});
}

/* A trylock: at exit the lock may be held for good, by a frame a signal
 * handler interrupted before it forked this process (fork.c); the check is
 * then skipped rather than the exit hung. */
static void secure_check_quarantine(secure_quarantine_t *q) {
  if (!lock_try(&q->lock)) return;
  for (unsigned i = 0; i < q->count; i++) secure_check_freed(secure_slot(q, i));
  lock_release(&q->lock);
}

/* At exit, every block still in a quarantine is checked. */
__attribute__((destructor)) startup_code static void secure_check_at_exit(void) {
  if (!options.secure) return;
  secure_each_quarantine(secure_check_quarantine);
}

/* fork(): the quarantines' locks are leaves (no two are held at once but
 * here, in zone order), taken last, re-made in the child. */
static void secure_lock_quarantine(secure_quarantine_t *q) {
  lock_take(&q->lock);
}
static void secure_unlock_quarantine(secure_quarantine_t *q) {
  lock_release(&q->lock);
}
static void secure_remake_quarantine_lock(secure_quarantine_t *q) {
  lock_reset(&q->lock, NULL);
}

void secure_fork_prepare(void) {
  secure_each_quarantine(secure_lock_quarantine);
}

void secure_fork_parent(void) {
  secure_each_quarantine(secure_unlock_quarantine);
}

void secure_fork_child(void) {
  secure_each_quarantine(secure_remake_quarantine_lock);
}
