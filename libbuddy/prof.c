/* prof.c: the samples of heap profiling (prof=1, leaks=1): for each sampled
 * block, its stack, size and thread, so that a profile and a leak report can
 * be made from them at any time (prof_dump.c).
 *
 * Which allocations are sampled: small ones by their classes' countdowns in
 * the thread caches (tcache_prof.c), page runs and huge blocks by one
 * countdown per thread here (prof_large_due), all drawn the same way, one
 * sample per prof_sample bytes on average. The API serves a sampled block
 * from a page run flagged PAGE_SAMPLED (a huge block: huge_t.sampled), so
 * that its free, which never takes free's fast path, sees the flag, and
 * passes the block's record (prof_record_t: its stack's number and bytes,
 * which the API keeps in the run's head descriptor or the huge_t) to
 * prof_forget. Nothing here runs with sampling off: the table is not even
 * mapped.
 *
 * One table, in memory mapped from the OS at start-up (never malloc): one
 * record per distinct stack (prof_stack_t), found by its hash through an
 * open-addressed index; a record lives for the whole process, so that the
 * profile's total-allocated figures cover freed blocks too. The live
 * samples are counted in their stacks' records and kept nowhere else: a
 * table of them by address would touch a page of its own at almost every
 * sample (the first touch maps the zero page, the first write then copies
 * it and flushes the other cores' TLBs). Under prof_lock, a leaf: taken
 * with no other allocator lock held, and nothing is allocated or locked
 * under it (fork.c takes it last). A full table drops the sample and
 * counts it.
 *
 * The stack: prof_unwind (prof_unwind.c), our own walk of the DWARF unwind
 * tables (frame pointers are usually absent) with each call site's rule
 * cached: it allocates nothing and takes none of our locks. It runs before
 * prof_lock is taken, so that the lock is held for the record alone (and
 * the loader's lock, which a cache miss takes where glibc is older than
 * 2.35, is never taken under ours). A thread inside prof_note is marked
 * (prof_inside), so that an allocation made under it (a signal handler's)
 * is never sampled in turn. The innermost frames are the allocator's own:
 * those within its code (the preload library's executable segment) are
 * left out.
 */
#include "prof.h"

#include <link.h>
#include <string.h>

#define PROF_STACKS_MAX ((size_t)1 << 16)
#define PROF_INDEX_SIZE ((size_t)1 << 17) /* stack numbers + 1 by hash; 0: empty */
/* Frames the unwinder is asked for: the stack's and the allocator's own. */
#define PROF_UNWIND_DEPTH (PROF_DEPTH + 16)

static struct {
  pthread_mutex_t lock;
  bool ready;               /* the tables are mapped (sampling on) */
  uintptr_t own_lo, own_hi; /* the allocator's code, when it is a library of its own */
  prof_stack_t *stacks;     /* [PROF_STACKS_MAX] */
  uint32_t *index;          /* [PROF_INDEX_SIZE] */
  size_t stack_count;
  uint64_t dropped;
} prof = {.lock = PTHREAD_MUTEX_INITIALIZER};

static __thread bool prof_inside __attribute__((tls_model("initial-exec")));
/* Page runs and huge blocks: bytes to the thread's next sample point, and
 * its draws' state (0: not drawn yet). */
static __thread int64_t prof_large_left __attribute__((tls_model("initial-exec")));
static __thread uint64_t prof_large_random __attribute__((tls_model("initial-exec")));

static void *prof_map(size_t bytes) {
  return os_map_aligned((bytes + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1), PAGE_SIZE);
}

startup_code void prof_init(void) {
  if (!options_sampling()) return;
  prof.stacks = prof_map(PROF_STACKS_MAX * sizeof(prof_stack_t));
  prof.index = prof_map(PROF_INDEX_SIZE * sizeof(uint32_t));
  if (prof.stacks == NULL || prof.index == NULL || !prof_unwind_init()) {
    base_warning("prof: cannot map the sample tables: no heap profile", (const char *)NULL);
    return;
  }
  prof.ready = true;
}

/* dl_iterate_phdr: the executable segment that holds prof_note, if it is in
 * a shared object (the preload library) rather than the program. */
static int prof_find_own(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  (void)arg;
  uintptr_t here = (uintptr_t)&prof_note;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
    uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
    if (here < lo || here >= hi) continue;
    if (info->dlpi_name != NULL && info->dlpi_name[0] != '\0') prof.own_lo = lo, prof.own_hi = hi;
    return 1;
  }
  return 0;
}

startup_code void prof_start(void) {
  if (!prof.ready) return;
  prof_inside = true; /* the unwinder's start may allocate */
  prof_unwind_start();
  dl_iterate_phdr(prof_find_own, NULL);
  prof_inside = false;
}

bool prof_large_due(size_t bytes) {
  if (prof_large_random == 0) {
    prof_large_random = (os_random_seed() ^ (uintptr_t)&prof_large_left) | 1;
    prof_large_left = tcache_prof_draw(&prof_large_random);
  }
  if ((prof_large_left -= (int64_t)bytes) > 0) return false;
  prof_large_left = tcache_prof_draw(&prof_large_random);
  return true;
}

static uint64_t prof_hash_frames(void *const *frames, int n) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (int i = 0; i < n; i++) h = (h ^ (uintptr_t)frames[i]) * 0x100000001b3ULL;
  return h ^ (h >> 29);
}

/* Under prof_lock: the number of the stack frames[0..n), made if new;
 * PROF_STACKS_MAX if the table is full. */
static uint32_t prof_stack_locked(void *const *frames, int n, uint64_t hash) {
  size_t mask = PROF_INDEX_SIZE - 1;
  for (size_t i = hash & mask;; i = (i + 1) & mask) {
    uint32_t id = prof.index[i];
    if (id == 0) break;
    prof_stack_t *s = &prof.stacks[id - 1];
    if (s->hash == hash && s->depth == (uint32_t)n && memcmp(s->frames, frames, (size_t)n * sizeof(void *)) == 0)
      return id - 1;
  }
  if (prof.stack_count >= PROF_STACKS_MAX) return PROF_STACKS_MAX;
  uint32_t id = (uint32_t)prof.stack_count++;
  prof_stack_t *s = &prof.stacks[id];
  s->hash = hash;
  s->depth = (uint32_t)n;
  s->tid = os_thread_id();
  memcpy(s->frames, frames, (size_t)n * sizeof(void *));
  size_t i = hash & mask;
  while (prof.index[i] != 0) i = (i + 1) & mask;
  prof.index[i] = id + 1;
  return id;
}

uint32_t prof_note(size_t bytes) {
  if (!prof.ready || prof_inside) return PROF_NO_STACK;
  prof_inside = true;
  void *frames[PROF_UNWIND_DEPTH];
  int n = prof_unwind(frames, PROF_UNWIND_DEPTH), first = 1; /* frames[0] is here */
  while (first < n && (uintptr_t)frames[first] >= prof.own_lo && (uintptr_t)frames[first] < prof.own_hi) first++;
  n -= first;
  if (n > PROF_DEPTH) n = PROF_DEPTH;
  uint64_t hash = prof_hash_frames(frames + first, n);
  lock_take(&prof.lock);
  uint32_t id = prof_stack_locked(frames + first, n, hash);
  if (id < PROF_STACKS_MAX) {
    prof_stack_t *s = &prof.stacks[id];
    s->live_count++, s->live_bytes += bytes;
    s->total_count++, s->total_bytes += bytes;
  } else {
    prof.dropped++;
    id = PROF_NO_STACK;
  }
  lock_release(&prof.lock);
  prof_inside = false;
  return id;
}

void prof_forget(prof_record_t sample) {
  if (!prof.ready || sample.stack == PROF_NO_STACK) return;
  lock_take(&prof.lock);
  prof_stack_t *s = &prof.stacks[sample.stack];
  s->live_count--, s->live_bytes -= sample.bytes;
  lock_release(&prof.lock);
}

size_t prof_stack_count(void) {
  lock_take(&prof.lock);
  size_t n = prof.stack_count;
  lock_release(&prof.lock);
  return n;
}

size_t prof_copy_stacks(prof_stack_t *out, size_t max, uint64_t *dropped) {
  if (!prof.ready) return 0;
  lock_take(&prof.lock);
  size_t n = prof.stack_count < max ? prof.stack_count : max;
  memcpy(out, prof.stacks, n * sizeof(prof_stack_t));
  *dropped = prof.dropped;
  lock_release(&prof.lock);
  return n;
}

/* fork.c: the samples' lock is a leaf, taken last; the child keeps every
 * sample (its blocks are its own now). */
void prof_fork_prepare(void) {
  if (prof.ready) lock_take(&prof.lock);
}

void prof_fork_parent(void) {
  if (prof.ready) lock_release(&prof.lock);
}

void prof_fork_child(void) {
  if (prof.ready) lock_reset(&prof.lock, NULL);
}
