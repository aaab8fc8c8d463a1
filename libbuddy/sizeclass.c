/* sizeclass.c: the small size classes and the slab order of each.
 *
 * Classes step by 16 bytes up to 128, then four per power of two up to 32 KiB
 * (160, 192, 224, 256, 320, …), so a request above 128 bytes wastes at most a
 * quarter step: 12.5% of the class below. size_class_of() in internal.h maps a
 * size to its class with arithmetic alone; these tables give each class's
 * bytes and slab shape. Slab orders were chosen as the smallest order holding
 * at least 8 objects (4 above 4 KiB) with at most 1/16 of the slab left over,
 * or failing that the order of least waste; tests/unit checks both tables
 * against those rules and against size_class_of().
 */
#include "sizeclass.h"

const uint32_t size_class_bytes[SIZE_CLASS_COUNT] = {
    0,     16,    32,    48,    64,    80,    96,    112,   128,   160,   192,
    224,   256,   320,   384,   448,   512,   640,   768,   896,   1024,  1280,
    1536,  1792,  2048,  2560,  3072,  3584,  4096,  5120,  6144,  7168,  8192,
    10240, 12288, 14336, 16384, 20480, 24576, 28672, 32768,
};

const uint8_t size_class_slab_order[SIZE_CLASS_COUNT] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1,
    2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 4, 3, 4, 4, 5, 4, 5, 5, 6, 5,
};

/* Bytes of a slab that objects occupy (count * bytes): an offset at or past
 * it is in the slab's unused tail, never an object. */
const uint32_t size_class_slab_bytes_used[SIZE_CLASS_COUNT] = {
    0,     4096,   4096,   4080,   4096,   4080,   4032,   4032,   4096,   4000,  4032,
    4032,  4096,   3840,   3840,   4032,   4096,   7680,   7680,   8064,   8192,  15360,
    15360, 16128,  16384,  30720,  30720,  32256,  32768,  30720,  30720,  64512, 32768,
    61440, 61440,  129024, 65536,  122880, 122880, 258048, 131072,
};

/* Objects per slab: (PAGE_SIZE << order) / bytes, kept as a table because the
 * refill path reads it on every slab. */
const uint16_t size_class_slab_count[SIZE_CLASS_COUNT] = {
    0,  256, 128, 85, 64, 51, 42, 36, 32, 25, 21, 18, 16, 12, 10, 9, 8, 12, 10, 9, 8,
    12, 10,  9,   8,  12, 10, 9,  8,  6,  5,  9,  4,  6,  5,  9,  4, 6,  5,  9,  4,
};

/* The object-start test (size_class_is_object_start). With magic =
 * ceil(2^64 / bytes), bytes * magic == 2^64 + e (mod 2^64: e) for a small e
 * (0 <= e < bytes). An offset n = k * bytes then gives n * magic == k * e, at
 * most (count - 1) * e for an object (k < count); any other offset below 2^32
 * gives at least magic, far above that (Lemire, Kaser and Kurz: "n is a
 * multiple of d iff n * ceil(2^64/d) mod 2^64 < ceil(2^64/d)"). So one
 * multiply and one compare against limit = (count - 1) * e + 1 cover both "a
 * multiple of bytes" and "before the slab's unused tail". For a power of two,
 * e == 0 and limit == 1: the slab has no tail. Class 0 has limit 0: nothing
 * passes, which sends page runs off free's fast path. */
#define CLASS_MAGIC(bytes) (UINT64_MAX / (bytes) + 1)
#define CLASS_COUNT(bytes, order) ((PAGE_SIZE << (order)) / (bytes))
#define CLASS_INFO(bytes, order)                                                                  \
  {.magic = CLASS_MAGIC((uint64_t)(bytes)), .slab_mask = (uint32_t)((PAGE_SIZE << (order)) - 1),  \
   .limit = (uint32_t)((CLASS_COUNT(bytes, order) - 1) * ((uint64_t)(bytes) * CLASS_MAGIC((uint64_t)(bytes))) + 1)}

const size_class_info_t size_class_info[SIZE_CLASS_COUNT] = {
    {.limit = 0}, /* class 0 (page runs): no offset is an object start */
    CLASS_INFO(16, 0),    CLASS_INFO(32, 0),    CLASS_INFO(48, 0),    CLASS_INFO(64, 0),
    CLASS_INFO(80, 0),    CLASS_INFO(96, 0),    CLASS_INFO(112, 0),   CLASS_INFO(128, 0),
    CLASS_INFO(160, 0),   CLASS_INFO(192, 0),   CLASS_INFO(224, 0),   CLASS_INFO(256, 0),
    CLASS_INFO(320, 0),   CLASS_INFO(384, 0),   CLASS_INFO(448, 0),   CLASS_INFO(512, 0),
    CLASS_INFO(640, 1),   CLASS_INFO(768, 1),   CLASS_INFO(896, 1),   CLASS_INFO(1024, 1),
    CLASS_INFO(1280, 2),  CLASS_INFO(1536, 2),  CLASS_INFO(1792, 2),  CLASS_INFO(2048, 2),
    CLASS_INFO(2560, 3),  CLASS_INFO(3072, 3),  CLASS_INFO(3584, 3),  CLASS_INFO(4096, 3),
    CLASS_INFO(5120, 3),  CLASS_INFO(6144, 3),  CLASS_INFO(7168, 4),  CLASS_INFO(8192, 3),
    CLASS_INFO(10240, 4), CLASS_INFO(12288, 4), CLASS_INFO(14336, 5), CLASS_INFO(16384, 4),
    CLASS_INFO(20480, 5), CLASS_INFO(24576, 5), CLASS_INFO(28672, 6), CLASS_INFO(32768, 5),
};

/* Class of each request up to SIZE_CLASS_LOOKUP_MAX bytes, indexed by the size
 * itself: malloc's fast path loads it with no rounding (1 KiB of table, of
 * which a program's usual sizes touch a few lines). malloc(0) is class 1. */
const uint8_t size_class_lookup[SIZE_CLASS_LOOKUP_MAX + 1] = {
    [0 ... 16] = 1,      [17 ... 32] = 2,     [33 ... 48] = 3,     [49 ... 64] = 4,
    [65 ... 80] = 5,     [81 ... 96] = 6,     [97 ... 112] = 7,    [113 ... 128] = 8,
    [129 ... 160] = 9,   [161 ... 192] = 10,  [193 ... 224] = 11,  [225 ... 256] = 12,
    [257 ... 320] = 13,  [321 ... 384] = 14,  [385 ... 448] = 15,  [449 ... 512] = 16,
    [513 ... 640] = 17,  [641 ... 768] = 18,  [769 ... 896] = 19,  [897 ... 1024] = 20,
};
