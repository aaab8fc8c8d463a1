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
#include "internal.h"

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

/* ceil(2^64 / bytes): an offset n < 2^32 is a multiple of bytes exactly when
 * n * divisible (mod 2^64) <= divisible - 1 (Lemire's divisibility test), one
 * multiply on the free fast path. */
const uint64_t size_class_divisible[SIZE_CLASS_COUNT] = {
    0, 0x1000000000000000u, 0x0800000000000000u,
    0x0555555555555556u, 0x0400000000000000u, 0x0333333333333334u,
    0x02aaaaaaaaaaaaabu, 0x024924924924924au, 0x0200000000000000u,
    0x019999999999999au, 0x0155555555555556u, 0x0124924924924925u,
    0x0100000000000000u, 0x00cccccccccccccdu, 0x00aaaaaaaaaaaaabu,
    0x0092492492492493u, 0x0080000000000000u, 0x0066666666666667u,
    0x0055555555555556u, 0x004924924924924au, 0x0040000000000000u,
    0x0033333333333334u, 0x002aaaaaaaaaaaabu, 0x0024924924924925u,
    0x0020000000000000u, 0x001999999999999au, 0x0015555555555556u,
    0x0012492492492493u, 0x0010000000000000u, 0x000ccccccccccccdu,
    0x000aaaaaaaaaaaabu, 0x000924924924924au, 0x0008000000000000u,
    0x0006666666666667u, 0x0005555555555556u, 0x0004924924924925u,
    0x0004000000000000u, 0x0003333333333334u, 0x0002aaaaaaaaaaabu,
    0x0002492492492493u, 0x0002000000000000u,
};
