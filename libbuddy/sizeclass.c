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

/* Objects per slab: (PAGE_SIZE << order) / bytes, kept as a table because the
 * refill path reads it on every slab. */
const uint16_t size_class_slab_count[SIZE_CLASS_COUNT] = {
    0,  256, 128, 85, 64, 51, 42, 36, 32, 25, 21, 18, 16, 12, 10, 9, 8, 12, 10, 9, 8,
    12, 10,  9,   8,  12, 10, 9,  8,  6,  5,  9,  4,  6,  5,  9,  4, 6,  5,  9,  4,
};

/* ceil(2^32 / bytes): offset * divisor >> 32 == offset / bytes for every exact
 * multiple below 2^32, which size_class_is_object_start() relies on. */
const uint32_t size_class_divisor[SIZE_CLASS_COUNT] = {
    0,         268435456, 134217728, 89478486, 67108864, 53687092, 44739243,
    38347923,  33554432,  26843546,  22369622, 19173962, 16777216, 13421773,
    11184811,  9586981,   8388608,   6710887,  5592406,  4793491,  4194304,
    3355444,   2796203,   2396746,   2097152,  1677722,  1398102,  1198373,
    1048576,   838861,    699051,    599187,   524288,   419431,   349526,
    299594,    262144,    209716,    174763,   149797,   131072,
};
