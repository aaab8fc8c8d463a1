/* types.h: every constant and structure of buddymalloc, with its invariants.
 *
 * Abbreviations used throughout:
 *   page   4 KiB, the unit of the buddy core
 *   order  log2 of a block's size in pages (order 0 = 4 KiB, order 10 = 4 MiB)
 *   block  a power-of-two run of pages, aligned (within its region) to its size
 *   region a run of BUDDY_REGION_SIZE bytes, aligned to that size, whose pages the
 *          core hands out; its metadata (region_t) lives outside it
 *   class  a small size class (1 .. SIZE_CLASS_COUNT-1); class 0 means "not small"
 *   slab   a block carved into objects of one class
 *   zone   a lock, a buddy heap and slab lists; threads are spread over zones
 *   tcache a thread's cache of free small objects, one bounded list per class
 */
#ifndef BUDDY_TYPES_H
#define BUDDY_TYPES_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- Limits (every one written down) ------------------------------------- */

#define PAGE_SHIFT 12
#define PAGE_SIZE ((size_t)1 << PAGE_SHIFT)

#define BUDDY_MAX_ORDER 10 /* largest block: 4 MiB */
#define BUDDY_ORDERS (BUDDY_MAX_ORDER + 1)
#define BUDDY_REGION_SHIFT (PAGE_SHIFT + BUDDY_MAX_ORDER)
#define BUDDY_REGION_SIZE ((size_t)1 << BUDDY_REGION_SHIFT)
#define BUDDY_REGION_PAGES ((size_t)1 << BUDDY_MAX_ORDER)

/* region_t is mapped just below its region's pages, REGION_META_SIZE bytes
 * before them: a page descriptor finds its region by masking (free lists link
 * descriptors, not regions), and an address in the region by masking and
 * subtracting (region_of_address). */
#define REGION_META_SHIFT 17
#define REGION_META_SIZE ((size_t)1 << REGION_META_SHIFT)

/* Address space covered by the page map: 48-bit user addresses. */
#define ADDRESS_BITS 48
#define PAGEMAP_LEAF_BITS 16
#define PAGEMAP_ROOT_BITS (ADDRESS_BITS - BUDDY_REGION_SHIFT - PAGEMAP_LEAF_BITS)
/* The small map (pagemap.c): one byte per page of the 47-bit address space
 * a process's mappings use (x86-64 and AArch64 without 5-level tables), in
 * two levels: a root of SMALL_MAP_ROOT_ENTRIES entries, one per 4 GiB of
 * address space, and leaves of SMALL_MAP_LEAF_BYTES (a byte per page of
 * those 4 GiB: 1 MiB of address space, reserved read-only) mapped when a
 * zone region first lies in their span. So the map's address space grows
 * with the heap's spread (1 MiB per 4 GiB that holds regions), never a
 * fixed reservation a program's RLIMIT_AS could trip over. The span of a
 * leaf is what the low 32 bits of an address cover: its page index is
 * (uint32_t)address >> PAGE_SHIFT, with no mask (pagemap.h). */
#define SMALL_MAP_ADDRESS_BITS 47
#define SMALL_MAP_LEAF_SPAN_BITS 32
/* The root is indexed by an address's bits 32..47, one bit more than the
 * map covers: free's fast path takes the index as a 16-bit word (one
 * zero-extension instead of a compare and a branch), and every address at
 * or above 2^47, the kernel's half included, finds an entry of the upper
 * half, which never gets a leaf. */
#define SMALL_MAP_ROOT_INDEX_BITS 16
#define SMALL_MAP_ROOT_ENTRIES ((size_t)1 << SMALL_MAP_ROOT_INDEX_BITS)
_Static_assert(SMALL_MAP_ROOT_INDEX_BITS > SMALL_MAP_ADDRESS_BITS - SMALL_MAP_LEAF_SPAN_BITS,
               "the root's upper half lies past the map");
#define SMALL_MAP_LEAF_BYTES ((size_t)1 << (SMALL_MAP_LEAF_SPAN_BITS - PAGE_SHIFT))
_Static_assert(SMALL_MAP_LEAF_SPAN_BITS >= BUDDY_REGION_SHIFT, "a region lies within one leaf");

/* Small size classes: 16-byte steps up to 128, then four per power of two up to
 * 32 KiB, so that no class wastes more than 25% of a request above 128 bytes
 * and 12.5% on average.
 * SIZE_CLASSES is the one list of them: X(bytes, slab order) per class, class
 * 1 first, in ascending order of bytes (class 0, "not small", has no row).
 * Everything else about the classes (sizeclass.h) is derived from these rows;
 * they sit here because the structures below are sized by SIZE_CLASS_COUNT.
 * A class's slab is the smallest order holding at least 8 objects (4 above
 * 4 KiB) with at most 1/16 of the slab left over; tests/unit/test_sizeclass.c
 * holds the rows to that rule. */
/* The rows as a table: four classes to a power of two. */
/* clang-format off */
#define SIZE_CLASSES(X)                                                                              \
  X(16, 0) X(32, 0) X(48, 0) X(64, 0) X(80, 0) X(96, 0) X(112, 0) X(128, 0)                          \
  X(160, 0) X(192, 0) X(224, 0) X(256, 0)                                                            \
  X(320, 0) X(384, 0) X(448, 0) X(512, 0)                                                            \
  X(640, 1) X(768, 1) X(896, 1) X(1024, 1)                                                           \
  X(1280, 2) X(1536, 2) X(1792, 2) X(2048, 2)                                                        \
  X(2560, 3) X(3072, 3) X(3584, 3) X(4096, 3)                                                        \
  X(5120, 3) X(6144, 3) X(7168, 4) X(8192, 3)                                                        \
  X(10240, 4) X(12288, 4) X(14336, 5) X(16384, 4)                                                    \
  X(20480, 5) X(24576, 5) X(28672, 6) X(32768, 5)
/* clang-format on */
/* Class 0 and one per row: a sum of literals, so #if can use it too. */
#define SIZE_CLASS_PLUS_ONE_(bytes, order) 1 +
#define SIZE_CLASS_COUNT (1 + SIZE_CLASSES(SIZE_CLASS_PLUS_ONE_) 0)
/* The last row's bytes (sizeclass.c checks that they agree). */
#define SMALL_SIZE_MAX ((size_t)32768)
#define SMALL_ALIGN 16
#define SLAB_MAX_ORDER 6
/* malloc finds the class of requests up to this size in a table. */
#define SIZE_CLASS_LOOKUP_MAX 1024

/* Requests above MEDIUM_SIZE_MAX bypass the buddy core with their own mapping. */
#define MEDIUM_SIZE_MAX BUDDY_REGION_SIZE

/* Zones: threads are spread round-robin over this many locked zones. A
 * thread cache has a bin per zone and class, numbered zone * SIZE_CLASS_COUNT
 * + class, and the small map holds that number in a byte: hence at most 6. */
#define ZONES_MAX 6
#define TCACHE_BINS (ZONES_MAX * SIZE_CLASS_COUNT)
_Static_assert(TCACHE_BINS <= 256, "a bin number fits the small map's byte");

/* Thread caches: each bin's max adapts to its class's demand (tcache.c). It
 * is 0 until the class's first slow path, then about TCACHE_BIN_START_BYTES
 * (TCACHE_BIN_START_MAX objects at most); a refill (the bin ran empty)
 * doubles it, up to about TCACHE_BIN_CEILING_BYTES (TCACHE_BIN_MAX objects
 * at most: a batch of 2048 blocks of 16 to 64 bytes fits). A started bin's max is at least 1 object (0 for
 * a class not started, or closed), every max at most TCACHE_BIN_MAX objects
 * and its bin's slots, and a thread's maxes, times their classes' bytes,
 * add up to at most TCACHE_BYTES_MAX: that is the most its bins can hold.
 * When the budget refuses a bin, other bins give up budget (tcache.c:
 * tcache_rebalance), at most once in TCACHE_REBALANCE_SLOW_PATHS slow paths
 * unless the bin is below its start. A refill takes half a bin; a full bin
 * flushes a quarter (TCACHE_FLUSH_DIVISOR), its oldest objects, so that it
 * stays nearly full: a thread that allocates and frees batches about the
 * bin's size is then served by the bin alone, where flushing half left
 * too few for the next batch and sent a third of the objects through the
 * zone (bench: batch). */
#define TCACHE_BIN_MAX 2048
#define TCACHE_FLUSH_DIVISOR 4
#define TCACHE_BIN_START_BYTES ((size_t)12288)
#define TCACHE_BIN_START_MAX 128
/* A bin's first refill takes about TCACHE_FIRST_FILL_BYTES of objects (one
 * at least, half its start at most), and the bin doubles only once it has
 * served half its start: a class a thread asks for a few times costs it a
 * few objects, each touched (their key), not half a start's worth. A class
 * in demand pays one more refill than it would otherwise. */
#define TCACHE_FIRST_FILL_BYTES ((size_t)1024)
#define TCACHE_BIN_CEILING_BYTES ((size_t)131072)
#define TCACHE_BYTES_MAX ((size_t)1024 * 1024)
#define TCACHE_REBALANCE_SLOW_PATHS 1024
_Static_assert(TCACHE_BYTES_MAX <= 1024 * 1024, "a thread's bins hold 1 MiB at most");
/* Remote frees (a small object whose region belongs to another zone than the
 * freeing thread's home zone) wait in a per-zone batch of the freeing thread
 * until it reaches either bound (then the bins adopt what fits, the rest goes
 * home under one lock, to the zone's transfer stacks while they have room); a
 * thread holds under (zones - 1) * TCACHE_REMOTE_BYTES there. */
#define TCACHE_REMOTE_MAX 64
#define TCACHE_REMOTE_BYTES ((size_t)16384)

/* Empty slabs kept per class and zone before they go back to the buddy core:
 * at least SLAB_EMPTY_RESERVE, and more while a zone's reserve holds at most
 * ZONE_EMPTY_SLAB_BYTES. Keeping them costs no resident memory that
 * releasing them would save: a released slab's pages stay resident in the
 * buddy heap until the purge, which releases the reserve too. It saves a
 * program that frees bursts of blocks and allocates them again (lifo) the
 * slabs' teardown and set-up (page classes, map bytes, coalescing), and a
 * zone that must map a region releases its reserve first. */
#define SLAB_EMPTY_RESERVE 1
#define ZONE_EMPTY_SLAB_BYTES ((size_t)4 << 20)
/* Wholly free regions kept mapped per zone (the rest are unmapped). */
#define REGION_RESERVE 1

/* ---- Page descriptors ---------------------------------------------------- */

typedef enum page_kind {
  PAGE_INNER = 0, /* inside a block whose head is elsewhere (or never headed) */
  PAGE_FREE,      /* head of a free block of `order` */
  PAGE_USED,      /* head of a block the core handed out, not yet typed */
  PAGE_RUN,       /* head of a medium allocation (page run) of `order` */
  PAGE_SLAB,      /* any page of a slab of `order` (head found by masking) */
} page_kind_t;

enum page_flags {
  PAGE_ZEROED = 1,      /* free block known to hold only zero bytes (fresh or purged) */
  PAGE_META = 2,        /* head of a page run of the allocator's own (a thread's cache) */
  PAGE_SAMPLED = 4,     /* head of a page run whose allocation was sampled (prof=1) */
  PAGE_SEALED = 8,      /* head of a page run in secure mode's quarantine, its pages inaccessible */
  PAGE_GUARD = 16,      /* head of secure mode's guard page just past a slab (a PAGE_META run of
                         * order 0, inaccessible: zone.c), freed with its slab */
  PAGE_SLAB_GUARD = 32, /* head of a slab of secure mode whose first object is kept out for
                         * good, a guard (slab_keep_guard): counted in slab_used, so that
                         * the slab is empty with that one out (slab_kept) */
};

/* A sampled block's record (prof=1, leaks=1: prof.c), kept with the block
 * (its run's head descriptor, or its huge_t) so that its free finds it
 * without a table: the sample's stack number (PROF_NO_STACK: not recorded)
 * and the bytes it was sampled at. */
typedef struct prof_record {
  uint64_t bytes;
  uint32_t stack;
} prof_record_t;
#define PROF_NO_STACK UINT32_MAX

/* One per page of a region, outside the pages.
 * Invariants:
 *   kind == PAGE_FREE   <=> the page heads a free block of `order`, which is on
 *                           the heap's free list `order` (linked by next/prev);
 *   class != 0          <=> kind == PAGE_SLAB (every page of a live slab; the
 *                           class is in the region's page_class, not
 *                           here);
 *   head of a slab:      slab_used + (its objects with their free bit set) +
 *                        (objects past slab_carved) == objects per slab of
 *                        its class; no free bit is set in the slab's bitmap
 *                        words below slab_scan (slab.c). */
typedef struct page_desc {
  union {
    struct {
      struct page_desc *next; /* free list of its order, or zone list of its slab */
      struct page_desc *prev;
    };
    prof_record_t sample; /* head of a live run flagged PAGE_SAMPLED (on no list) */
  };
  uint16_t slab_used;   /* slab head: objects out of the slab (caches or users) */
  uint16_t slab_carved; /* slab head: objects ever handed out; the rest untouched */
  uint16_t slab_scan;   /* slab head: no free bit in the slab's words below this */
  uint8_t kind;         /* page_kind_t */
  uint8_t order;        /* block order; on every page of a slab, the slab's */
  uint8_t run_tail;     /* run head: bytes from run_asked on that hold FILL_TAIL (run.c) */
  uint8_t flags;        /* page_flags, meaningful on free block and run heads */
  uint32_t run_asked;   /* run head: bytes the program asked for (run_tail != 0) */
} page_desc_t;

/* ---- Regions and huge blocks (what the page map points at) ---------------- */

typedef enum chunk_kind {
  CHUNK_REGION = 1, /* a region_t: a buddy region */
  CHUNK_HUGE = 2,   /* a huge_t: one mapping of its own */
} chunk_kind_t;

struct zone;
struct buddy_heap;

/* A region's metadata, in the REGION_META_SIZE bytes just below its pages.
 * Invariant: free_pages == sum over its free blocks of 2^order. */
typedef struct region {
  uint8_t kind;            /* CHUNK_REGION: first, as in huge_t */
  uint8_t zone_index;      /* zone - zones: remote frees index their batch by it */
  bool small_mapped;       /* its bytes in the small map are writable (pagemap.c) */
  char *base;              /* BUDDY_REGION_SIZE-aligned start of the pages */
  struct buddy_heap *heap; /* heap whose free lists hold its free blocks */
  struct zone *zone;       /* owner (NULL in unit tests of the core) */
  struct region *next;     /* heap's list of regions */
  struct region *prev;
  size_t free_pages;
  page_desc_t pages[BUDDY_REGION_PAGES];
  /* Each page's size class (0 outside slabs), for the slow paths; free's fast
   * path reads the same fact from the small map (pagemap.c). */
  uint8_t page_class[BUDDY_REGION_PAGES];
  /* One bit per SMALL_ALIGN bytes of the region: set at an object's start
   * while the object is free in its slab (slab.c). This is the slab's free
   * set itself, so refills never read the objects, and a double free
   * reaching the slab is seen in O(1), whichever cache it came through.
   * Untouched words cost nothing: only slabs' bits are ever written. */
  uint64_t slab_free_bits[BUDDY_REGION_SIZE / SMALL_ALIGN / 64];
} region_t;

_Static_assert(sizeof(region_t) <= REGION_META_SIZE, "region_t fits its mapping");
_Static_assert(sizeof(page_desc_t) == 32, "page descriptors stay 32 bytes");

/* A block above MEDIUM_SIZE_MAX, in a BUDDY_REGION_SIZE-aligned mapping of its
 * own; every region-sized slot it covers maps to it in the page map. */
typedef struct huge {
  uint8_t kind;         /* CHUNK_HUGE */
  bool cached;          /* freed, waiting in the huge cache for reuse or unmapping */
  bool freed_fill;      /* cached, and its first HUGE_FREED_FILL bytes hold FILL_FREED */
  uint8_t tail;         /* bytes from `asked` on that hold FILL_TAIL (huge.c) */
  bool guarded;         /* secure mode: a guard page before and after it (huge.c) */
  bool sampled;         /* its allocation was sampled (prof=1): its free forgets `sample` */
  bool sealed;          /* secure mode: cached, its pages inaccessible (huge.c) */
  uint8_t made;         /* secure mode: its kind (secure_kind_t) + 1; 0: not known */
  char *base;           /* start of the block */
  size_t size;          /* usable bytes: mapped length */
  size_t asked;         /* bytes the program asked for (live, tail != 0) */
  char *mapping;        /* start of the mapping it was carved from (huge.c: blocks
                           split from one mapping merge again; never across two) */
  prof_record_t sample; /* sampled: its record */
} huge_t;

/* ---- The buddy heap ------------------------------------------------------ */

/* Per-order free lists over any number of regions; the caller provides the
 * regions (the zone maps them; unit tests pass static buffers).
 * Invariants: free_blocks[k] == length of free list k;
 *   pages_free == sum_k free_blocks[k] << k;
 *   pages_free + pages_used == regions * BUDDY_REGION_PAGES. */
typedef struct buddy_heap {
  page_desc_t free_list[BUDDY_ORDERS]; /* circular, sentinel heads */
  size_t free_blocks[BUDDY_ORDERS];
  size_t pages_used;
  size_t pages_free;
  size_t regions;
  size_t regions_free; /* regions wholly free (one free block of max order) */
  region_t *region_list;
} buddy_heap_t;

/* ---- Locks (lock.h) ------------------------------------------------------ */

/* A lock of the allocator's own (the zones'): state 0 free, 1 held, 2 held
 * and a thread may be asleep waiting for it. */
typedef struct lock_word {
  uint32_t state;
} lock_word_t;

/* ---- Zones --------------------------------------------------------------- */

/* Slabs of one class in a zone. Full slabs are on no list.
 * Invariant: every slab on `partial` has 0 < free objects; `empty` slabs have
 * slab_used == 0 and number empty_count; their bytes over all classes are
 * the zone's empty_slab_bytes. */
typedef struct slab_list {
  page_desc_t partial; /* sentinel; slabs with free objects and some used */
  page_desc_t empty;   /* sentinel; wholly free slabs kept in reserve */
  uint32_t empty_count;
} slab_list_t;

/* A zone's transfer stacks (transfer.c): objects of the zone that a
 * consumer thread freed and its bins had no room for, and those of a full
 * bin's flush while there is room, kept as pointers, one stack per class,
 * for the next refill at home in the zone, so that neither side touches the
 * objects' slabs. An object there still counts in its slab's
 * slab_used, its free bit is clear, and it holds the key in its second word
 * and zone_transfer_mark() in its first (zone.h).
 * Invariants: transfer_count[c] <= ZONE_TRANSFER_MAX and, times the class's
 * bytes, <= ZONE_TRANSFER_CLASS_BYTES; transfer_bytes is the sum over the
 * classes, <= ZONE_TRANSFER_BYTES. So a zone holds at most 512 KiB there,
 * and a class's stack that no refill took from for a sweep period goes back
 * to its slabs. */
#define ZONE_TRANSFER_MAX 256
#define ZONE_TRANSFER_CLASS_BYTES ((size_t)128 * 1024)
#define ZONE_TRANSFER_BYTES ((size_t)512 * 1024)
_Static_assert(SIZE_CLASS_COUNT <= 64, "zone_t.transfer_taken has a bit per class");
/* A zone's count of bytes handed out reaches the global one in steps of at
 * least this (zone_t.out_pending): a shared atomic written at every locked
 * section would make threads of different zones share its cache line. */
#define ZONE_OUT_GRAIN ((long)64 * 1024)

/* A zone's fields are guarded by its lock, which lives apart (zone.c:
 * zone_locks), so that an unused zone is all zeros, in pages never touched. */
typedef struct zone {
  lock_word_t lock; /* guards everything below; lock order: see zone.c */
  buddy_heap_t heap;
  slab_list_t slabs[SIZE_CLASS_COUNT];
  size_t empty_slab_bytes;    /* in the classes' empty slabs (slab_list_t) */
  size_t dirty_pages;         /* freed to the heap since the last purge */
  uint64_t purge_deadline_ns; /* when they must be purged (valid if dirty) */
  size_t purged_pages;        /* statistics: pages given back so far */
  /* Bytes handed out (objects out of their slabs, page runs) since the zone
   * last added its count to heap_bytes_out (base.c): it does so in zone_unlock
   * once this passes ZONE_OUT_GRAIN either way, so the global count and its
   * peak are off by less than that grain per zone. */
  long out_pending;
  bool initialised;
  uint64_t transfer_taken; /* bit c: a refill took from class c's stack since the last expiry */
  size_t transfer_bytes;   /* in all transfer stacks */
  uint16_t transfer_count[SIZE_CLASS_COUNT];
  void *transfer[SIZE_CLASS_COUNT][ZONE_TRANSFER_MAX];
} zone_t;

/* ---- Options (options.c): BUDDY_OPTIONS, fixed after start-up ------------ */

/* The longest stats_file= path, its terminating NUL included (PATH_MAX). */
#define OPTIONS_PATH_MAX 4096

typedef struct buddy_options {
  long purge_delay_ms;   /* free pages are purged this long after freeing */
  long zones;            /* zones in use, 1 .. ZONES_MAX */
  long tcache_max;       /* objects per bin at most */
  long stats;            /* at exit: 0 nothing, 1 text, 2 JSON */
  long verbose;          /* report the options at start-up */
  long quiet;            /* print no warning (misuse reports still print) */
  long purge_madv_free;  /* MADV_FREE rather than MADV_DONTNEED */
  long background_purge; /* a thread purges while the program is idle */
  long thp;              /* transparent huge pages on regions */
  long debug;            /* fill freed small blocks, check the fill on reuse */
  long secure;           /* secure mode (secure.c); implies debug */
  long quarantine_kb;    /* secure mode: freed bytes held back from reuse */
  long abort_on_error;   /* misuse aborts (1) or warns and leaks the block (0) */
  long reclaim_idle;     /* empty the caches of threads idle for a purge period */
  long stats_signal;     /* a snapshot of the statistics on this signal (0: none) */
  long prof;             /* sample allocations; a heap profile at exit */
  long prof_sample;      /* mean bytes allocated between two samples */
  long prof_signal;      /* a heap profile on this signal (0: none) */
  long leaks;            /* sample, and report the blocks live at exit by stack */
  /* Where the reports go: a path, %p standing for the pid (NULL: stderr). */
  const char *stats_file;
  /* The heap profile's and the leak report's path, less .heap / .leaks. */
  const char *prof_prefix;
} buddy_options_t;

/* ---- Thread caches ------------------------------------------------------- */

/* A bin: a stack of pointers to free objects of one class, its limit and
 * its request count. The stack lives in the cache's slots: slot 0 of a bin is NULL, its objects
 * follow, and bin_top points past the last. So malloc pops without reading
 * the object (the stack is the thread's own, hot; the object was often last
 * written on another core) and sees an empty bin as a NULL below the top.
 * The tops, limits and request counts of all bins are three arrays
 * (tcache_t), so that a bin number indexes any of them, scaled by 8. The
 * second word of an object holds FREE_KEY while the object sits in a cache
 * or in its slab, which makes a double free cheap to suspect (then confirmed
 * by a scan).
 * A bin's limit is the top it has when full (its slot 0, plus 1, plus its
 * max): free's fast path goes slow when the top has reached it, which is
 * also what a bin with max 0 (not started, another zone's, or a static
 * cache's) shows, and pushes without writing anything else. Its requests
 * count the objects it handed out (one add on malloc's fast path); its count
 * of objects is top - slot 0 - 1. Invariant: slot 0 < top <= limit = slot 0
 * + 1 + max, max <= the bin's ceiling <= TCACHE_BIN_MAX, and the bin's slots
 * hold its max (its nursery its start, its full stack its ceiling: tcache_t).
 * Other threads read the tops and slot 0s (statistics, the idle sweep), so
 * every write of either is a store of the whole word. */

/* Objects freed by this thread that belong to one other zone, with their
 * classes (FREE_KEY in each one's second word): not reused while the batch
 * fills, so a block handed over by another thread never puts both on one
 * cache line. An array, like a bin, so that emptying the batch reads no
 * object.
 * Invariant: count < TCACHE_REMOTE_MAX and bytes < TCACHE_REMOTE_BYTES between
 * frees (reaching either empties the batch: into bins with room, the rest to
 * its zone). */
typedef struct tcache_remote {
  void *objs[TCACHE_REMOTE_MAX];
  uint8_t classes[TCACHE_REMOTE_MAX];
  uint32_t count;
  uint32_t bytes; /* sum of the objects' class sizes */
} tcache_remote_t;

/* The static caches (tcache_thread.c) are zero-initialised, so that they
 * cost a process no page until used: all three have state 0 and are told
 * apart by their addresses (tcache_empty, tcache_dead, tcache_reclaimed). */
typedef enum tcache_state {
  TCACHE_STATIC = 0, /* a static cache: no bins, no zone of its own */
  TCACHE_LIVE,       /* a thread's own cache */
} tcache_state_t;

/* A thread's cache. The bins and counters are the owner's alone: no lock, no
 * atomic read-modify-write. Other threads read the counters (relaxed) for
 * statistics, and touch the bins only in two cases, each under
 * tcache_registry_lock: the idle-cache reclaim (tcache.c: the owner is then
 * blocked in a system call with tcache_tls.busy zero, so inside no allocator
 * path, and finds tcache_reclaimed in its place when it wakes) and a fork child dropping the
 * caches of threads it does not have. */
typedef struct tcache {
  /* Bin zone * SIZE_CLASS_COUNT + class. Only the home zone's bins hold
   * objects; the others keep max 0 (top and limit NULL, never read), so
   * that free's fast path, which takes the bin number from the small map,
   * sends another zone's object (a remote free) to its slow path by the
   * limit test alone. bin_top comes first: the cache's address is its tops'
   * (free's fast path). */
  void **bin_top[TCACHE_BINS];
  void **bin_limit[TCACHE_BINS];      /* the top when full; == top: no room */
  uint64_t bin_requests[TCACHE_BINS]; /* objects handed out (home bins) */
  unsigned home_bins;                 /* number of the home zone's bin of class 0 */
  tcache_remote_t *remote;            /* ZONES_MAX batches of frees bound for other zones, by zone
                                       * index, after the nurseries (NULL in the static caches) */
  zone_t *zone;                       /* home zone: refills come from here (NULL: static) */
  uint32_t state;                     /* tcache_state_t */
  unsigned *owner_busy;               /* the owner's tcache_tls.busy */
  bool orphan_busy;                   /* an orphan: its owner was inside an allocator call at the fork */
  /* Each class's home bin: max (0 in the static caches, and for classes not
   * used yet), the requests it had served at the last
   * rebalance, and the sum of max * class bytes (<= TCACHE_BYTES_MAX). Only
   * the owner writes them; max is stored atomically for other threads'
   * statistics. */
  uint32_t bin_max[SIZE_CLASS_COUNT];
  uint64_t bin_requests_seen[SIZE_CLASS_COUNT];
  size_t budget_used;
  uint64_t rebalanced_at; /* slow_paths at the last rebalance */
  uint64_t slow_paths;    /* slow paths entered: a clock of activity */
  /* The registry of live caches, under tcache_registry_lock. */
  struct tcache *next, *prev;
  struct tcache_tls *owner_tls; /* the owner's tcache_tls: its cache slots */
  int tid;                      /* the owner's kernel thread id */
  /* What the last idle sweep saw: blocked in a system call, at this CPU time
   * and slow-path count. Unchanged at the next sweep means idle since. */
  bool idle_seen;
  uint64_t idle_run_ns, idle_slow_paths;
  struct tcache_prof *prof;    /* malloc's sampling stacks (prof=1; else NULL) */
  struct secure_cache *secure; /* secure mode's freed and next blocks (secure=1; else NULL) */
  /* Each home bin's slot 0 (NULL), its stack above it: in the class's
   * nursery while its max fits there, in its full stack once it outgrew
   * it (tcache_size.c: tcache_bin_resize moves it, never back). The slots
   * hold the nurseries, class after class, each its class's largest start
   * long (tcache_bin_nursery_slots), then the full stacks, each its
   * class's ceiling long (tcache_bin_slots): so a thread that uses a few
   * objects of many classes touches a few pages of slots, not a page per
   * class. Invariant: bin_base[c] is bin_nursery(c) or bin_stack[c], and
   * the bin's limit lies within the slots it points at. The remote batches
   * lie between the nurseries and the full stacks, out of the way of a
   * thread that frees no other zone's blocks. */
  void **bin_base[SIZE_CLASS_COUNT];
  void **bin_stack[SIZE_CLASS_COUNT];
  void *slots[];
} tcache_t;

/* With prof=1, malloc's fast path pops from these stacks, not from the home
 * bins (tcache_tls.home points at `top`), and free's fast path never pushes
 * on them: so the bytes a thread allocated are known exactly at every slow
 * path, and the allocation that reaches the next sample point takes the
 * slow path (tcache_prof.c). A stack is filled from its home bin with at
 * most the objects that stay below that point, at malloc's slow path (it
 * ran empty) and at free's (the bin is full: tcache_prof_absorb), each
 * counting first what the stack handed out since the last; it holds at
 * most its slots, TCACHE_PROF_FILL_BYTES of objects (TCACHE_PROF_FILL_MIN
 * objects at least) and its bin's max (as long as the max does not shrink).
 * Invariants, per class c: top[c] - (slots[c] + 1) <= filled[c] <=
 * TCACHE_PROF_SLOTS; slots[c][0] == NULL; filled[c] * class bytes < left[c]
 * at each fill (those objects cannot reach the point);
 * requests[c] is junk (the fast path counts pops there; the home bin
 * counted them when it gave the objects), and the limits are never read
 * (free pushes on the home bins). `top` and `limit` are TCACHE_BINS long so
 * that a class's request count lies 2 * TCACHE_BINS words after its top, as
 * in tcache_t. */
#define TCACHE_PROF_SLOTS 256
/* And a fill takes at most TCACHE_PROF_FILL_BYTES of objects
 * (TCACHE_PROF_FILL_MIN at least). malloc pops the stack where free pushes on
 * the bin, so the stack hands out objects freed up to a stack's length
 * earlier, where a bin hands back the last one freed: a short stack keeps
 * them in the cache (pools-t1, prof=1, 2 MiB of simulated LL: 160K data
 * misses with 256 objects of any size, 58K with 16 KiB, 42K with sampling
 * off; docs/benchmarks.md). */
#define TCACHE_PROF_FILL_BYTES ((size_t)16384)
#define TCACHE_PROF_FILL_MIN 8
/* A home bin of fewer objects grows when its stack could take more than
 * half of it before the sample point (tcache.c: tcache_prof_refill_and_pop). */
#define TCACHE_PROF_GROW_BELOW 8
/* A stack takes all of its bin but one once the bin has served this many
 * times its max, else half of it (tcache_prof.c: tcache_prof_fill_from). */
#define TCACHE_PROF_HOT 64
typedef struct tcache_prof {
  void **top[TCACHE_BINS];
  void **limit[TCACHE_BINS];
  uint64_t requests[TCACHE_BINS];
  uint32_t filled[SIZE_CLASS_COUNT]; /* objects given to the stack at its last fill */
  int64_t left[SIZE_CLASS_COUNT];    /* bytes to the class's next sample point, after the fill */
  uint64_t random;                   /* the state of the draws (xorshift) */
  void *slots[SIZE_CLASS_COUNT][1 + TCACHE_PROF_SLOTS];
} tcache_prof_t;
_Static_assert(offsetof(tcache_prof_t, requests) - offsetof(tcache_prof_t, top) ==
                   offsetof(tcache_t, bin_requests) - offsetof(tcache_t, bin_top),
               "a stack's request count lies where a bin's does");

/* ---- Secure mode's blocks (secure_cache.c) ------------------------------- */

/* A freed block waiting in a quarantine (secure mode): in its thread's batch,
 * then in its zone's FIFO. `what` holds its class (0: a page run) in its
 * low SECURE_ENTRY_CLASS_BITS, then SECURE_ENTRY_SEALED (a page run whose
 * pages are inaccessible while it waits), SECURE_ENTRY_HEADER (p lies a
 * header page past its run's head) and SECURE_ENTRY_RESIDENT (a sealed
 * run whose pages were kept: secure_cache.c), and its bytes (the class's,
 * or the whole run's) from SECURE_ENTRY_BYTES_SHIFT up: two words, so that
 * a batch or a quarantine's ring is quick to copy and small to keep. */
typedef struct secure_entry {
  void *p; /* the block as the program had it */
  uintptr_t what;
} secure_entry_t;
#define SECURE_ENTRY_CLASS_BITS 6
#define SECURE_ENTRY_SEALED ((uintptr_t)1 << SECURE_ENTRY_CLASS_BITS)
#define SECURE_ENTRY_HEADER ((uintptr_t)2 << SECURE_ENTRY_CLASS_BITS)
#define SECURE_ENTRY_RESIDENT ((uintptr_t)4 << SECURE_ENTRY_CLASS_BITS)
#define SECURE_ENTRY_BYTES_SHIFT (SECURE_ENTRY_CLASS_BITS + 3)
_Static_assert(SIZE_CLASS_COUNT <= (1 << SECURE_ENTRY_CLASS_BITS), "a class fits an entry's class bits");
/* Of a freed page run, the first SECURE_RUN_FILL bytes are filled and
 * checked (past the header page, if any). */
#define SECURE_RUN_FILL PAGE_SIZE

/* A thread's freed small blocks wait in its batch until the batch holds
 * SECURE_BATCH_SLOTS of them or SECURE_BATCH_BYTES, then move to its home
 * zone's quarantine under one lock; as many of the oldest blocks there as
 * go over its bounds come back in the same call, at most SECURE_EVICT_MAX
 * more than went in (so a quarantine over its bounds shrinks). */
#define SECURE_BATCH_SLOTS 64
#define SECURE_BATCH_BYTES ((size_t)64 << 10)
#define SECURE_EVICT_MAX 16
/* The blocks a thread hands out next, per class: those that left the
 * quarantine through it, of classes it allocates, and those its zone gives
 * it SECURE_READY_FILL at a time, each chosen at random in its slab. malloc
 * takes one of them at random. A class holds at most SECURE_READY_BYTES of
 * them (SECURE_READY_FILL blocks at least, SECURE_READY_MAX at most); more
 * go back to their slabs. */
#define SECURE_READY_MAX 128
#define SECURE_READY_FILL 8
#define SECURE_READY_BYTES ((size_t)64 << 10)
/* A class counts as one the thread allocates (its blocks leaving the
 * quarantine join its ready ones) for this many spills after its last
 * malloc; then its ready blocks go back to their slabs. */
#define SECURE_WANTED_SPILLS 64
/* Invariants: every block in `batch` and in `ready` holds its quarantine
 * mark in its first word, FREE_KEY in its second, 0 in its last and
 * FILL_FREED elsewhere (secure_cache.c), unless the program wrote to it
 * after its free; batch_count <= SECURE_BATCH_SLOTS between calls, and the
 * slots past it hold what a spill brings back; ready_count[c] <= the
 * class's cap (secure_cache.c: secure_ready_cap) <= SECURE_READY_MAX. Only
 * the owner touches it, or a flush while the owner cannot (thread exit, an
 * idle reclaim, a fork's orphan). */
typedef struct secure_cache {
  unsigned batch_count;
  size_t batch_bytes;
  uint64_t random; /* the state of the thread's random choices (xorshift) */
  secure_entry_t batch[SECURE_BATCH_SLOTS + SECURE_EVICT_MAX];
  uint32_t ready_count[SIZE_CLASS_COUNT];
  uint8_t wanted[SIZE_CLASS_COUNT]; /* spills to go before the class counts as not taken any more */
  void *ready[SIZE_CLASS_COUNT][SECURE_READY_MAX];
} secure_cache_t;

/* ---- Statistics (stats.c) ------------------------------------------------ */

typedef struct buddy_stats {
  size_t regions;
  size_t pages_used, pages_free;
  size_t free_blocks[BUDDY_ORDERS];
  size_t runs, bytes_runs; /* medium blocks */
  size_t bytes_meta_runs;  /* thread caches' page runs */
  size_t huge_blocks, huge_bytes;
  size_t bytes_in_slabs, bytes_small_live;
  size_t class_slabs[SIZE_CLASS_COUNT];
  size_t class_live[SIZE_CLASS_COUNT]; /* objects out of their slabs (caches included) */
  size_t purged_pages;
  size_t huge_cached_bytes; /* freed huge blocks kept for reuse */
  size_t huge_descriptors;  /* of class_live: huge blocks' descriptors (the allocator's own, no request) */
  /* Requests served since start: small ones per class (exited threads'
   * included), medium page runs, huge blocks. */
  uint64_t class_requests[SIZE_CLASS_COUNT];
  uint64_t medium_requests, huge_requests;
  size_t thread_caches, bytes_cached;    /* live thread caches and what they hold */
  size_t bytes_in_transfer;              /* in the zones' transfer stacks */
  size_t class_cached[SIZE_CLASS_COUNT]; /* of class_live, objects in thread caches */
  /* Fragmentation: blocks handed out (class_live's bytes, runs, huge), against
   * what the heap keeps resident at most: pages used, free pages not purged,
   * region metadata, huge blocks live and cached. */
  size_t bytes_allocated, bytes_resident;
  size_t caches_reclaimed, bytes_reclaimed; /* idle threads' caches emptied */
  /* The most bytes_allocated ever was, counted where blocks leave and return
   * to the zones and where huge blocks are mapped (heap_bytes_out, base.c);
   * and the process's peak resident set (the kernel's VmHWM), 0 if unknown. */
  size_t bytes_allocated_peak, process_peak_rss;
} buddy_stats_t;

#endif /* BUDDY_TYPES_H */
