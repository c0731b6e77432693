/* The kernel tests' random numbers: xorshift64, one stream per test file, seeded by the
 * file (define KERNEL_RNG_SEED before including), so each file's data stay fixed. */
#ifndef VLMN_TESTS_KERNEL_RNG_H
#define VLMN_TESTS_KERNEL_RNG_H

#include <stdint.h>

static uint64_t rng_state = KERNEL_RNG_SEED;

static inline uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

/* uniform in [-1, 1], 2,000,001 steps */
static inline float frand(void) { return (float)(rnd() % 2000001) / 1000000.0f - 1.0f; }

#endif
