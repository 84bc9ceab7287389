/* NEON kernels (aarch64 only, where Advanced SIMD is architectural, so no runtime check).
 *
 * Plain Hamming: byte popcounts with vcntq_u8 on XOR-ed 128-bit chunks, widened by pairwise
 * adds (vpaddlq / vpadalq), the classic NEON popcount (ARM "Neon Programmer's Guide"; also
 * libpopcnt). One-word codes go 2 rows per vector; other lengths row by row. Threshold scans
 * compute distances of a small block of rows into a stack buffer and compare them.
 *
 * Weighted Hamming: 4 codes per vector; the 16-float table of each nibble (64 bytes, four
 * q-registers) is looked up with vqtbl4q_u8 on byte indices 4*nibble + {0,1,2,3}, summed in the
 * canonical nibble order, so results are bit-identical to the scalar reference.
 *
 * Deliberately no allocation and no threads.
 */
#include <arm_neon.h>

#include "simd_internal.h"

static inline uint32_t dist_row(const uint64_t *q, const uint64_t *x, size_t words)
{
    uint16x8_t acc = vdupq_n_u16(0); /* each chunk adds <= 16 per lane: no overflow <= 4096 bits */
    size_t w = 0;
    for (; w + 2 <= words; w += 2) {
        uint8x16_t d = vreinterpretq_u8_u64(veorq_u64(vld1q_u64(x + w), vld1q_u64(q + w)));
        acc = vpadalq_u8(acc, vcntq_u8(d));
    }
    uint32_t tail = 0;
    if (w < words)
        tail = vaddv_u8(vcnt_u8(vreinterpret_u8_u64(vdup_n_u64(x[w] ^ q[w]))));
    return vaddlvq_u16(acc) + tail;
}

static void neon_distances(const uint64_t *q, const uint64_t *db, size_t n, size_t words,
                           uint32_t *out)
{
    size_t i = 0;
    if (words == 1) {
        const uint64x2_t qb = vdupq_n_u64(q[0]);
        for (; i + 4 <= n; i += 4) {
            uint8x16_t a = vcntq_u8(vreinterpretq_u8_u64(veorq_u64(vld1q_u64(db + i), qb)));
            uint8x16_t b = vcntq_u8(vreinterpretq_u8_u64(veorq_u64(vld1q_u64(db + i + 2), qb)));
            uint32x4_t sa = vpaddlq_u16(vpaddlq_u8(a)); /* 4 half-row sums of row i, i+1 */
            uint32x4_t sb = vpaddlq_u16(vpaddlq_u8(b));
            vst1q_u32(out + i, vpaddq_u32(sa, sb)); /* rows i .. i+3 */
        }
    }
    for (; i < n; i++)
        out[i] = dist_row(q, db + i * words, words);
}

#define NEON_SCAN_BLOCK 256

static void neon_scan(const uint64_t *q, size_t nq, const uint64_t *db, size_t n, size_t words,
                      int64_t base, hm_cand_list *lists)
{
    uint32_t buf[NEON_SCAN_BLOCK];
    for (size_t j = 0; j < nq; j++) {
        hm_cand_list *l = &lists[j];
        const uint64_t *qj = q + j * words;
        for (size_t i0 = 0; i0 < n; i0 += NEON_SCAN_BLOCK) {
            size_t m = n - i0 < NEON_SCAN_BLOCK ? n - i0 : NEON_SCAN_BLOCK;
            neon_distances(qj, db + i0 * words, m, words, buf);
            for (size_t i = 0; i < m; i++) {
                if (buf[i] < l->thr) {
                    hm_cand_push(l, base + (int64_t)(i0 + i), buf[i]);
                }
            }
        }
    }
}

/* ---- weighted ---------------------------------------------------------------------------- */

static inline float32x4_t add_nibbles8(float32x4_t acc, uint32x4_t v, const float *t)
{
    const uint32x4_t bytes = vdupq_n_u32(0x03020100u);
    for (int p = 0; p < 8; p++) {
        uint8x16x4_t tab;
        tab.val[0] = vreinterpretq_u8_f32(vld1q_f32(t + 16 * p));
        tab.val[1] = vreinterpretq_u8_f32(vld1q_f32(t + 16 * p + 4));
        tab.val[2] = vreinterpretq_u8_f32(vld1q_f32(t + 16 * p + 8));
        tab.val[3] = vreinterpretq_u8_f32(vld1q_f32(t + 16 * p + 12));
        uint32x4_t nib = vandq_u32(vshlq_u32(v, vdupq_n_s32(-4 * p)), vdupq_n_u32(15));
        uint32x4_t idx = vmlaq_n_u32(bytes, nib, 0x04040404u); /* 4*nib in every byte + 0..3 */
        float32x4_t val = vreinterpretq_f32_u8(vqtbl4q_u8(tab, vreinterpretq_u8_u32(idx)));
        acc = vaddq_f32(acc, val);
    }
    return acc;
}

/* Canonical weighted distances of the 4 rows at db. */
static inline float32x4_t weighted4(const uint64_t *q, const uint64_t *db, size_t words,
                                    const float *tables)
{
    float32x4_t acc = vdupq_n_f32(0.0f);
    for (size_t wi = 0; wi < words; wi++) {
        const uint64_t *p = db + wi;
        uint64x2_t a = vcombine_u64(vcreate_u64(p[0]), vcreate_u64(p[words]));
        uint64x2_t b = vcombine_u64(vcreate_u64(p[2 * words]), vcreate_u64(p[3 * words]));
        a = veorq_u64(a, vdupq_n_u64(q[wi]));
        b = veorq_u64(b, vdupq_n_u64(q[wi]));
        uint32x4_t lo = vuzp1q_u32(vreinterpretq_u32_u64(a), vreinterpretq_u32_u64(b));
        uint32x4_t hi = vuzp2q_u32(vreinterpretq_u32_u64(a), vreinterpretq_u32_u64(b));
        acc = add_nibbles8(acc, lo, tables + wi * 256);
        acc = add_nibbles8(acc, hi, tables + wi * 256 + 128);
    }
    return acc;
}

static void neon_weighted_distances(const uint64_t *q, const uint64_t *db, size_t n, size_t words,
                                    const float *tables, float *out)
{
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        vst1q_f32(out + i, weighted4(q, db + i * words, words, tables));
    for (; i < n; i++)
        out[i] = hm_weighted_row_canonical(q, db + i * words, words, tables);
}

#define NEON_WSCAN_BLOCK 64

static void neon_scan_weighted(const uint64_t *q, size_t nq, const uint64_t *db, size_t n,
                               size_t words, const float *tables, size_t tstride, int64_t base,
                               hm_cand_list *lists, void *scratch, const uint64_t *next,
                               size_t next_n)
{
    (void)scratch, (void)next, (void)next_n;
    float buf[NEON_WSCAN_BLOCK];
    for (size_t j = 0; j < nq; j++) {
        hm_cand_list *l = &lists[j];
        const uint64_t *qj = q + j * words;
        const float *tj = tables + j * tstride;
        for (size_t i0 = 0; i0 < n; i0 += NEON_WSCAN_BLOCK) {
            size_t m = n - i0 < NEON_WSCAN_BLOCK ? n - i0 : NEON_WSCAN_BLOCK;
            neon_weighted_distances(qj, db + i0 * words, m, words, tj, buf);
            for (size_t i = 0; i < m; i++) {
                if (buf[i] < l->wthr) {
                    hm_cand_push_w(l, base + (int64_t)(i0 + i), buf[i]);
                }
            }
        }
    }
}

const hm_kernels hm_kernels_neon = {
    .isa = HM_ISA_NEON,
    .distances = neon_distances,
    .weighted_distances = neon_weighted_distances,
    .scan = neon_scan,
    .scan_weighted = neon_scan_weighted,
    .wscan_copy_word_bytes = 16,
};
