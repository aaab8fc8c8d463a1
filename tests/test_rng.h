/* test_rng.h: the deterministic PRNG (xorshift64*) of the stress and hang
 * programs (tests/stress/, tests/hang/): a seed gives the same stream on
 * every run and under every allocator. */
#ifndef TEST_RNG_H
#define TEST_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s;
} test_rng;

static inline void test_rng_seed(test_rng *r, uint64_t seed)
{
    r->s = seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
    if (r->s == 0)
        r->s = 1;
}

static inline uint64_t test_rng_next(test_rng *r)
{
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* Uniform in [0, n). */
static inline uint64_t test_rng_below(test_rng *r, uint64_t n)
{
    return test_rng_next(r) % n;
}

#endif /* TEST_RNG_H */
