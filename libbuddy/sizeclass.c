/* sizeclass.c: the size-class tables, each derived at compile time from the
 * rows (SIZE_CLASSES, types.h) by the formulas of sizeclass.h, and the
 * compile-time checks of what those derivations assume of the rows.
 *
 * The tables are constants rather than filled at start-up: the fast paths
 * read them from the program's first malloc on, which may come before any
 * constructor of ours has run.
 */
#include "sizeclass.h"

/* M(k), M(k + 1), ..., M(k + 63). */
#define REPEAT_2(M, k) M(k) M((k) + 1)
#define REPEAT_4(M, k) REPEAT_2(M, k) REPEAT_2(M, (k) + 2)
#define REPEAT_8(M, k) REPEAT_4(M, k) REPEAT_4(M, (k) + 4)
#define REPEAT_16(M, k) REPEAT_8(M, k) REPEAT_8(M, (k) + 8)
#define REPEAT_32(M, k) REPEAT_16(M, k) REPEAT_16(M, (k) + 16)
#define REPEAT_64(M, k) REPEAT_32(M, k) REPEAT_32(M, (k) + 32)

/* ---- What the rows must be ---------------------------------------------- */

/* The bytes of class k, 0 if there is none: a chain like SIZE_CLASS_FIT's,
 * "k == 1 ? 16 : k == 2 ? 32 : ... : 0". */
#define BYTES_OF_ROW(bytes, order) SIZE_CLASS_FOR_##bytes ? (bytes):
#define BYTES_OF(k) (SIZE_CLASSES((k) == BYTES_OF_ROW) 0)

/* Each row on its own. The object-start test is exact for offsets below 2^32
 * when no object's product reaches magic (limit <= magic), and offsets within
 * a slab stay below 2^32 (slab_mask is 32 bits). */
#define CHECK_ROW(bytes, order)                                                                                        \
  _Static_assert((bytes) % SMALL_ALIGN == 0,                                                                           \
                 "a class is a multiple of SMALL_ALIGN: its objects stay aligned, and the lookup "                     \
                 "table is built SMALL_ALIGN sizes at a time");                                                        \
  _Static_assert((bytes) <= SMALL_SIZE_MAX, "no class is above SMALL_SIZE_MAX");                                       \
  _Static_assert((order) <= SLAB_MAX_ORDER, "slab orders are at most SLAB_MAX_ORDER");                                 \
  _Static_assert(SIZE_CLASS_SLAB_COUNT(bytes, order) >= 1 && SIZE_CLASS_SLAB_COUNT(bytes, order) <= UINT16_MAX,        \
                 "a slab holds an object, and its count fits size_class_slab_count");                                  \
  _Static_assert(SIZE_CLASS_LIMIT(bytes, order) <= SIZE_CLASS_MAGIC(bytes),                                            \
                 "the object-start test accepts no offset that is not a multiple of the class");                       \
  _Static_assert((bytes) <= SIZE_CLASS_LOOKUP_MAX || SIZE_CLASS_ARITHMETIC(bytes) == SIZE_CLASS_FOR_##bytes,           \
                 "above the lookup table, size_class_of's arithmetic gives a class's bytes that class");               \
  _Static_assert((bytes) < SIZE_CLASS_LOOKUP_MAX || (bytes) == SMALL_SIZE_MAX ||                                       \
                     SIZE_CLASS_ARITHMETIC((bytes) + 1) == SIZE_CLASS_FOR_##bytes + 1,                                 \
                 "above the lookup table, size_class_of's arithmetic gives one byte more the next class");
SIZE_CLASSES(CHECK_ROW)

_Static_assert(SLAB_MAX_ORDER <= BUDDY_MAX_ORDER && SIZE_CLASS_SLAB_BYTES(SLAB_MAX_ORDER) - 1 <= UINT32_MAX,
               "a slab is a block of the buddy core, and its offsets fit slab_mask");

/* The rows ascend: SIZE_CLASS_FIT takes the first row that fits for the
 * smallest, and size_class_bytes is sorted. */
_Static_assert(SIZE_CLASS_COUNT <= 64, "the check below covers every class");
#define CHECK_ASCENDING(k)                                                                                             \
  _Static_assert((k) + 1 >= SIZE_CLASS_COUNT || BYTES_OF(k) < BYTES_OF((k) + 1), "the rows ascend in bytes");
REPEAT_64(CHECK_ASCENDING, 0)

_Static_assert(BYTES_OF(SIZE_CLASS_COUNT - 1) == SMALL_SIZE_MAX, "SMALL_SIZE_MAX is the largest class");

/* size_class_of's arithmetic serves the sizes past the lookup table. It never
 * decreases as the size grows, and the checks per row and this one find it
 * right at the first size past the table, at each class's bytes and at one
 * byte more: so it is right at every size between. It assumes the spacing
 * above 128 bytes, where the table ends. */
_Static_assert(SIZE_CLASS_LOOKUP_MAX >= 128 && SIZE_CLASS_LOOKUP_MAX < SMALL_SIZE_MAX,
               "the arithmetic serves sizes past the table, above 128 bytes");
_Static_assert(SIZE_CLASS_ARITHMETIC(SIZE_CLASS_LOOKUP_MAX + 1) == SIZE_CLASS_FIT(SIZE_CLASS_LOOKUP_MAX + 1),
               "size_class_of's arithmetic is right at the first size past the lookup table");

/* ---- The tables ------------------------------------------------------------ */

#define ROW_BYTES(bytes, order) bytes,
const uint32_t size_class_bytes[SIZE_CLASS_COUNT] = {0, SIZE_CLASSES(ROW_BYTES)};

#define ROW_ORDER(bytes, order) order,
const uint8_t size_class_slab_order[SIZE_CLASS_COUNT] = {0, SIZE_CLASSES(ROW_ORDER)};

/* Bytes of a slab that objects occupy (count * bytes): an offset at or past
 * it is in the slab's unused tail, never an object. */
#define ROW_BYTES_USED(bytes, order) (uint32_t)(SIZE_CLASS_SLAB_COUNT(bytes, order) * (bytes)),
const uint32_t size_class_slab_bytes_used[SIZE_CLASS_COUNT] = {0, SIZE_CLASSES(ROW_BYTES_USED)};

/* Objects per slab, kept as a table because the refill path reads it on
 * every slab. */
#define ROW_COUNT(bytes, order) (uint16_t) SIZE_CLASS_SLAB_COUNT(bytes, order),
const uint16_t size_class_slab_count[SIZE_CLASS_COUNT] = {0, SIZE_CLASSES(ROW_COUNT)};

#define ROW_INFO(bytes, order)                                                                                         \
  {.magic = SIZE_CLASS_MAGIC(bytes),                                                                                   \
   .slab_mask = (uint32_t)(SIZE_CLASS_SLAB_BYTES(order) - 1),                                                          \
   .limit = (uint32_t)SIZE_CLASS_LIMIT(bytes, order)},
const size_class_info_t size_class_info[SIZE_CLASS_COUNT] = {
    {.limit = 0}, /* class 0 (page runs): no offset is an object start */
    SIZE_CLASSES(ROW_INFO)};

/* Class of each request up to SIZE_CLASS_LOOKUP_MAX bytes, indexed by the
 * size itself: malloc's fast path loads it with no rounding. Built
 * SMALL_ALIGN sizes at a time: every class is a multiple of SMALL_ALIGN, so
 * the sizes (k * SMALL_ALIGN, (k + 1) * SMALL_ALIGN] share the class of the
 * largest of them. malloc(0) is class 1, the smallest that fits 0 bytes. */
#define LOOKUP_SPAN(k) [(k)*SMALL_ALIGN + 1 ...((k) + 1) * SMALL_ALIGN] = SIZE_CLASS_FIT(((k) + 1) * SMALL_ALIGN),
_Static_assert(SIZE_CLASS_LOOKUP_MAX == 64 * SMALL_ALIGN,
               "the lookup table's initialiser covers 64 spans of SMALL_ALIGN sizes (REPEAT_64)");
const uint8_t size_class_lookup[SIZE_CLASS_LOOKUP_MAX + 1] = {[0] = SIZE_CLASS_FIT(0), REPEAT_64(LOOKUP_SPAN, 0)};
