/* fuzz_api.c: libFuzzer harness driving the buddy_* API against a shadow model.
 *
 * Each input is a program: every 4 bytes are one operation on one of
 * FUZZ_SLOTS slots (malloc, calloc, realloc, aligned allocation, free, trim),
 * with sizes spread over small, medium and huge. The model remembers each
 * live block's size and pattern seed (test_support.h); before a block is
 * freed or reallocated its contents are checked, after every operation no two live blocks may overlap,
 * and every few operations the invariant walker checks each zone's buddy heap.
 * Any failure aborts, which libFuzzer reports with the input that caused it.
 * Built by tests/fuzz/meson.build (-Dfuzz=true, clang,
 * -fsanitize=fuzzer,address,undefined) and run by scripts/fuzz.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buddymalloc.h"
#include "internal.h"
#include "test_support.h"

#define FUZZ_SLOTS 32
#define FUZZ_VERIFY_EVERY 16
#define FUZZ_CHECK_BYTES 4096 /* contents checked at both ends of a block */

typedef struct slot {
  unsigned char *p;
  size_t size;
  uint64_t seed; /* of the pattern at both ends of the block */
} slot_t;

static slot_t slots[FUZZ_SLOTS];

static void fuzz_fail(const char *what, const void *p) {
  error_fatal(what, p);
}

/* Sizes: mostly small, some medium, a few huge (up to 9 MiB). */
static size_t fuzz_size(uint8_t kind, uint8_t amount) {
  switch (kind % 8) {
  case 0:
    return amount % 17;
  case 1:
  case 2:
  case 3:
    return (size_t)amount * 16 + (amount & 7);
  case 4:
    return (size_t)amount * 128 + 3;
  case 5:
    return SMALL_SIZE_MAX - 64 + amount;
  case 6:
    return (size_t)amount * 4096 + 100;
  default:
    return (size_t)(amount % 10) * (1u << 20) + 4096 * (amount & 3) + 1;
  }
}

/* Writes the slot's pattern over the first and last FUZZ_CHECK_BYTES of its
 * block (all of it when shorter). */
static void fill(slot_t *s) {
  size_t head = s->size < FUZZ_CHECK_BYTES ? s->size : FUZZ_CHECK_BYTES;
  test_fill_range(s->p, 0, head, s->seed);
  if (s->size > head) test_fill_range(s->p, s->size - head, s->size, s->seed);
}

/* Checks the pattern of the first and last FUZZ_CHECK_BYTES of [p, p+size)
 * (all of it when shorter). */
static void check(const slot_t *s, size_t size) {
  size_t head = size < FUZZ_CHECK_BYTES ? size : FUZZ_CHECK_BYTES;
  if (test_check_range(s->p, 0, head, s->seed) != head ||
      (size > head && test_check_range(s->p, size - head, size, s->seed) != size))
    fuzz_fail("fuzz: block contents changed", s->p);
}

static void check_no_overlap(void) {
  for (int i = 0; i < FUZZ_SLOTS; i++) {
    if (slots[i].p == NULL) continue;
    size_t ui = buddy_malloc_usable_size(slots[i].p);
    if (ui < slots[i].size) fuzz_fail("fuzz: usable size below the request", slots[i].p);
    for (int j = i + 1; j < FUZZ_SLOTS; j++) {
      if (slots[j].p == NULL) continue;
      size_t uj = buddy_malloc_usable_size(slots[j].p);
      if (slots[i].p < slots[j].p + uj && slots[j].p < slots[i].p + ui)
        fuzz_fail("fuzz: two live blocks overlap", slots[i].p);
    }
  }
}

static void release(slot_t *s) {
  if (s->p == NULL) return;
  check(s, s->size);
  buddy_free(s->p);
  s->p = NULL;
}

static void apply(const uint8_t op[4]) {
  slot_t *s = &slots[op[1] % FUZZ_SLOTS];
  size_t size = fuzz_size(op[2], op[3]);
  uint64_t seed = (uint64_t)(op[0] ^ op[3] ^ 0x5a);
  switch (op[0] % 7) {
  case 0:
  case 1:
    release(s);
    s->p = buddy_malloc(size);
    break;
  case 2:
    release(s);
    s->p = buddy_calloc(1, size);
    for (size_t i = 0; s->p != NULL && i < size; i += 997)
      if (s->p[i] != 0) fuzz_fail("fuzz: calloc returned non-zero bytes", s->p + i);
    break;
  case 3: {
    if (s->p == NULL) return;
    check(s, s->size);
    unsigned char *q = buddy_realloc(s->p, size);
    if (q == NULL && size != 0) return; /* failed: the old block is intact */
    s->p = q;
    if (q == NULL) return; /* realloc(p, 0) freed it */
    /* The old head survives; its tail was filled at the old end. */
    size_t kept = s->size < size ? s->size : size;
    check(s, kept < FUZZ_CHECK_BYTES ? kept : FUZZ_CHECK_BYTES);
    break;
  }
  case 4: {
    release(s);
    size_t alignment = (size_t)1 << (op[3] % 23);
    if (buddy_posix_memalign((void **)&s->p, alignment < sizeof(void *) ? sizeof(void *) : alignment, size) != 0)
      s->p = NULL;
    else if ((uintptr_t)s->p % alignment != 0) fuzz_fail("fuzz: misaligned block", s->p);
    break;
  }
  case 5:
    release(s);
    return;
  default:
    if (op[3] == 0) buddy_trim(0);
    return;
  }
  if (s->p == NULL) return;
  s->size = size;
  s->seed = seed;
  fill(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len) {
  for (size_t i = 0; i + 4 <= len; i += 4) {
    apply(data + i);
    check_no_overlap();
    if ((i / 4) % FUZZ_VERIFY_EVERY == 0) zone_verify_all();
  }
  for (int i = 0; i < FUZZ_SLOTS; i++) release(&slots[i]);
  zone_verify_all();
  return 0;
}
