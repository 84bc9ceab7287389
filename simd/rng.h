/* The seeded random numbers of drsch: every random choice (weight initialisation, dataset
 * splits, samplers, augmentation, LSH / ITQ projections, single-shot galleries, benchmark codes)
 * draws from here, so a seed gives the same models, splits and baselines on every machine.
 * Libc only (and libm). Not part of the installed headers.
 *
 * Two generators, both kept bit for bit as they were (changing either changes trained models,
 * splits or baseline projections and so the numbers under results/):
 *  - rng_state: xoshiro256** seeded through splitmix64 (Blackman & Vigna 2018); core/ weight
 *    initialisation and every datasets/ choice;
 *  - rng_splitmix64 alone as a generator over one 64-bit state (Steele, Lea & Flood 2014): the
 *    LSH / ITQ baselines, the CUHK03 single-shot gallery picks, drsch bench hamming's codes. */
#ifndef DRSCH_RNG_H
#define DRSCH_RNG_H

#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Advances *state by one splitmix64 step and returns its output. */
DRSCH_API uint64_t rng_splitmix64(uint64_t *state);
/* Standard normal deviate (Box-Muller) from two splitmix64 draws: u1 = (a + 1) / (2^53 + 1) in
 * (0, 1], u2 = b / 2^53 in [0, 1), where a and b are the draws' top 53 bits. */
DRSCH_API double rng_splitmix64_normal(uint64_t *state);

typedef struct {
    uint64_t s[4];
} rng_state;

/* The state from four splitmix64 outputs of seed. */
DRSCH_API void rng_seed(rng_state *r, uint64_t seed);
DRSCH_API uint64_t rng_next(rng_state *r);
/* Uniform integer in [0, n) without modulo bias (Lemire 2019); n > 0. */
DRSCH_API uint64_t rng_below(rng_state *r, uint64_t n);
/* Uniform double in [0, 1): the top 53 bits of one draw times 2^-53. */
DRSCH_API double rng_uniform(rng_state *r);
/* Standard normal deviate (Box-Muller) from two rng_uniform draws, the first raised to 1e-300. */
DRSCH_API double rng_normal(rng_state *r);
/* Fisher-Yates shuffles of v[0..n) (from the last element down, j = rng_below(r, i + 1)). */
DRSCH_API void rng_shuffle_i64(rng_state *r, int64_t *v, int64_t n);
DRSCH_API void rng_shuffle_i32(rng_state *r, int32_t *v, int n);

#ifdef __cplusplus
}
#endif

#endif
