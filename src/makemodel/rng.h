/* Seeded random numbers for the model and dataset generators: xoshiro256** seeded
 * through splitmix64 from (seed, stream, row), so any row of any tensor can be drawn
 * on its own (streaming writes, permuted rows) and the same seed gives the same bytes. */
#ifndef VLMN_MAKEMODEL_RNG_H
#define VLMN_MAKEMODEL_RNG_H

#include <stdint.h>

typedef struct mm_rng { uint64_t s[4]; } mm_rng;

static inline uint64_t mm_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Independent stream for (seed, stream, row). */
static inline void mm_rng_seed(mm_rng *r, uint64_t seed, uint64_t stream, uint64_t row)
{
    uint64_t x = seed;
    uint64_t a = mm_splitmix64(&x);
    x = a ^ (stream * 0xd1342543de82ef95ULL);
    uint64_t b = mm_splitmix64(&x);
    x = b ^ (row * 0x9e6c63d0676a9a99ULL + 0x632be59bd9b4e019ULL);
    for (int i = 0; i < 4; i++) r->s[i] = mm_splitmix64(&x);
}

static inline uint64_t mm_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t mm_rng_u64(mm_rng *r)
{
    uint64_t *s = r->s;
    uint64_t res = mm_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = mm_rotl(s[3], 45);
    return res;
}

/* Uniform in [0, 1). */
static inline double mm_rng_uniform(mm_rng *r) { return (double)(mm_rng_u64(r) >> 11) * 0x1.0p-53; }

/* Uniform integer in [0, n) (n > 0; the modulo bias is irrelevant here). */
static inline uint64_t mm_rng_below(mm_rng *r, uint64_t n) { return mm_rng_u64(r) % n; }

/* Approximately standard normal from one 64-bit draw: the sum of four 16-bit
 * uniforms (Irwin-Hall, variance 1/3) centred and scaled to unit variance. Fast
 * enough for 7e9 weights; exact Gaussian tails do not matter for random weights. */
static inline float mm_rng_normal(mm_rng *r)
{
    uint64_t u = mm_rng_u64(r);
    uint32_t s = (uint32_t)(u & 0xffff) + (uint32_t)((u >> 16) & 0xffff) +
                 (uint32_t)((u >> 32) & 0xffff) + (uint32_t)(u >> 48);
    /* mean 4 * 32767.5, sd sqrt(4/12) * 65536 */
    return (float)(((double)s - 131070.0) * (1.7320508075688772 / 65536.0));
}

#endif
