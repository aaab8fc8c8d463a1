/* api_util.c: helpers shared by the API conformance tests (see api.h). */
#include "api.h"

#include <string.h>
#include <unistd.h>

#define PATTERN_MULT UINT64_C(0x9E3779B97F4A7C15)
#define WORD_BYTES sizeof(uint64_t)

size_t api_hide(size_t value)
{
    volatile size_t hidden = value;
    return hidden;
}

void *api_hide_ptr(void *ptr)
{
    void *volatile hidden = ptr;
    return hidden;
}

/* The 8 bytes that the pattern puts at offsets [8*word, 8*word+8). */
static uint64_t pattern_word(uint64_t seed, size_t word)
{
    uint64_t x = (seed ^ (uint64_t)word) * PATTERN_MULT;
    return x ^ (x >> 29) ^ seed;
}

void api_fill(void *ptr, size_t len, uint64_t seed)
{
    unsigned char *bytes = ptr;
    size_t words = len / WORD_BYTES;
    for (size_t w = 0; w < words; w++) {
        uint64_t v = pattern_word(seed, w);
        memcpy(bytes + w * WORD_BYTES, &v, WORD_BYTES);
    }
    size_t tail = len % WORD_BYTES;
    if (tail != 0) {
        uint64_t v = pattern_word(seed, words);
        memcpy(bytes + words * WORD_BYTES, &v, tail);
    }
}

size_t api_check(const void *ptr, size_t len, uint64_t seed)
{
    const unsigned char *bytes = ptr;
    size_t words = len / WORD_BYTES;
    for (size_t w = 0; w <= words; w++) {
        size_t start = w * WORD_BYTES;
        size_t n = w < words ? WORD_BYTES : len % WORD_BYTES;
        if (n == 0)
            break;
        uint64_t v = pattern_word(seed, w);
        if (memcmp(bytes + start, &v, n) != 0) {
            const unsigned char *want = (const unsigned char *)&v;
            for (size_t i = 0; i < n; i++)
                if (bytes[start + i] != want[i])
                    return start + i;
        }
    }
    return len;
}

size_t api_first_nonzero(const void *ptr, size_t len)
{
    const unsigned char *bytes = ptr;
    for (size_t i = 0; i < len; i++)
        if (bytes[i] != 0)
            return i;
    return len;
}

uint64_t api_rng_next(struct api_rng *rng)
{
    uint64_t z = (rng->state += PATTERN_MULT);
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

size_t api_rng_range(struct api_rng *rng, size_t lo, size_t hi)
{
    size_t span = hi - lo + 1;
    if (span == 0) /* the whole range of size_t */
        return (size_t)api_rng_next(rng);
    return lo + (size_t)(api_rng_next(rng) % span);
}

static int range_cmp(const void *a, const void *b)
{
    const struct api_range *x = a, *y = b;
    return (x->start > y->start) - (x->start < y->start);
}

size_t api_first_overlap(struct api_range *ranges, size_t count)
{
    qsort(ranges, count, sizeof *ranges, range_cmp);
    for (size_t i = 1; i < count; i++) {
        const struct api_range *prev = &ranges[i - 1];
        /* A zero-length range still owns its address: two blocks may not
         * share a start even when a usable size is 0. */
        size_t prev_len = prev->len != 0 ? prev->len : 1;
        if (ranges[i].start < prev->start + prev_len)
            return i;
    }
    return count;
}

int api_is_aligned(const void *ptr, size_t alignment)
{
    return ((uintptr_t)ptr & (alignment - 1)) == 0;
}

size_t api_page_size(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

size_t api_next_pow2(size_t value)
{
    size_t p = 1;
    while (p < value)
        p <<= 1;
    return p;
}
