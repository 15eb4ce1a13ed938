/* AVX-512 im2col / col2im of float32 image planes, for nanogan's Cython kernels.
 *
 * One unit is one channel c of a block of images. A zero-padded input row (at most 32 values:
 * two registers, the padding supplied by masked loads, which never touch the masked lanes) gives
 * the output row oh of every window offset (i, j) reading it:
 *
 *   im2col: chunk[oh*OW + ow] = xpad[oh*sh + i][ow*sw + j]
 *           one two-register permute and one masked store of OW lanes per (i, j, oh);
 *   col2im: the adjoint, built one image row at a time in two registers:
 *           x[h][w] = sum over (i, j) in order of chunk_ij[oh*OW + ow] where oh*sh + i = h + ph
 *           and ow*sw + j = w + pw, one masked load and two permute-and-adds per (i, j), then
 *           a masked store of the row.
 *
 * col2im adds the offsets (i, j) in the reference's order, starting from zero, so each pixel gets
 * exactly the reference's float32 sum. The functions apply when the padded row fits two registers
 * (W + 2 pw <= 32) and an output row one (OW <= 16): nanogan_simd_im2col_ok and
 * nanogan_simd_col2im_ok tell.
 *
 * Where the compiler targets AVX2 but not AVX-512, im2col has an 8-lane version: a padded row
 * of at most 16 values in two registers (masked loads), each output row of at most 8 values one
 * permute of each register and a blend, stored whole where the lanes past the row fall on rows
 * written after it in the image's chunk, else lane by lane (not built for Zen 1, where it was
 * slower than the loops). col2im has one too, the adjoint as above in two 8-lane registers per
 * image row (a padded row of at most 16 values, an output row of at most 8): on a Zen 4 built
 * without AVX-512, 11 images of 64 x 14 x 14 folded in 111-153 us against the loops' 293-334.
 * Without either, both are 0 and the callers run their portable loops.
 */
#ifndef NANOGAN_SIMD_H
#define NANOGAN_SIMD_H

#include <stddef.h>
#include <stdint.h>

#if defined(__AVX512F__)
#include <immintrin.h>

static inline int nanogan_simd_im2col_ok(ptrdiff_t H, ptrdiff_t W, ptrdiff_t ph, ptrdiff_t pw,
                                         ptrdiff_t OW)
{
    (void)H; (void)ph;
    return W + 2 * pw <= 32 && OW >= 1 && OW <= 16;
}

static inline int nanogan_simd_col2im_ok(ptrdiff_t H, ptrdiff_t W, ptrdiff_t ph, ptrdiff_t pw,
                                         ptrdiff_t OW)
{
    return nanogan_simd_im2col_ok(H, W, ph, pw, OW);
}

/* The lanes [lo, hi) of a 32-lane pair of registers, as two 16-lane masks. */
static inline void nanogan_lanes(ptrdiff_t lo, ptrdiff_t hi, __mmask16* m0, __mmask16* m1)
{
    const uint64_t bits = (hi > lo) ? (((uint64_t)1 << (hi - lo)) - 1) << lo : 0;
    *m0 = (__mmask16)(bits & 0xFFFFu);
    *m1 = (__mmask16)((bits >> 16) & 0xFFFFu);
}

/* im2col of channel c of nimg images: plane n (H rows of W) at x + n*sN; the chunk of image n
 * for offset (i, j) at cols + (i*kw + j)*rowstride + n*OH*OW. */
static inline void nanogan_im2col_f32(const float* x, ptrdiff_t sN, ptrdiff_t nimg, float* cols,
                                      ptrdiff_t rowstride, ptrdiff_t H, ptrdiff_t W,
                                      ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw,
                                      ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t OH, ptrdiff_t OW)
{
    const ptrdiff_t L = OH * OW;
    const __mmask16 m = (__mmask16)((1u << OW) - 1u);
    const __m512 zero = _mm512_setzero_ps();
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    __m512i idx[32];  /* lane ow reads padded position ow*sw + j; kw <= W + 2 pw <= 32 */
    for (ptrdiff_t j = 0; j < kw; ++j)
        idx[j] = _mm512_add_epi32(_mm512_mullo_epi32(lane, _mm512_set1_epi32((int)sw)),
                                  _mm512_set1_epi32((int)j));
    __mmask16 v0, v1;  /* the padded positions that hold pixels */
    nanogan_lanes(pw, pw + W, &v0, &v1);
    if (2 * OW <= 16 && (OW - 1) * sw + kw <= 16) {
        /* Two output rows per store (DCGAN-28's 14 x 14 -> 7 x 7): each reads the first 16
         * padded positions of its input row only, one register, so one two-register permute
         * gives both rows of an offset: lane t < OW from row oh, lane OW + t from row oh + 1. */
        __m512i idx2[16];
        int src[16];
        for (ptrdiff_t j = 0; j < kw; ++j) {
            for (int t = 0; t < 16; ++t)
                src[t] = t < OW ? (int)(t * sw + j)
                                : (t < 2 * OW ? (int)(16 + (t - OW) * sw + j) : 0);
            idx2[j] = _mm512_loadu_si512(src);
        }
        const __mmask16 m2 = (__mmask16)((1u << (2 * OW)) - 1u);
        for (ptrdiff_t n = 0; n < nimg; ++n) {
            const float* plane = x + n * sN;
            float* chunk = cols + n * L;
            for (ptrdiff_t i = 0; i < kh; ++i) {
                for (ptrdiff_t oh = 0; oh < OH; oh += 2) {
                    const ptrdiff_t h1 = oh * sh + i - ph, h2 = h1 + sh;
                    /* padded position p holds plane[h][p - pw]: masked lanes are never read */
                    const __m512 r1 = (h1 < 0 || h1 >= H) ? zero : _mm512_maskz_loadu_ps(
                        v0, (const void*)((uintptr_t)(plane + h1 * W) - (uintptr_t)pw * 4));
                    const int two = oh + 1 < OH;
                    const __m512 r2 = (!two || h2 < 0 || h2 >= H) ? zero : _mm512_maskz_loadu_ps(
                        v0, (const void*)((uintptr_t)(plane + h2 * W) - (uintptr_t)pw * 4));
                    float* dst = chunk + i * kw * rowstride + oh * OW;
                    for (ptrdiff_t j = 0; j < kw; ++j)
                        _mm512_mask_storeu_ps(dst + j * rowstride, two ? m2 : m,
                                              _mm512_permutex2var_ps(r1, idx2[j], r2));
                }
            }
        }
        return;
    }
    for (ptrdiff_t n = 0; n < nimg; ++n) {
        const float* plane = x + n * sN;
        float* chunk = cols + n * L;
        for (ptrdiff_t i = 0; i < kh; ++i) {
            for (ptrdiff_t oh = 0; oh < OH; ++oh) {
                const ptrdiff_t h = oh * sh + i - ph;
                float* dst = chunk + i * kw * rowstride + oh * OW;
                if (h < 0 || h >= H) {
                    for (ptrdiff_t j = 0; j < kw; ++j)
                        _mm512_mask_storeu_ps(dst + j * rowstride, m, zero);
                    continue;
                }
                /* padded position p holds plane[h][p - pw]: masked lanes are never read */
                const uintptr_t row = (uintptr_t)(plane + h * W) - (uintptr_t)pw * sizeof(float);
                const __m512 a = _mm512_maskz_loadu_ps(v0, (const void*)row);
                const __m512 b = _mm512_maskz_loadu_ps(v1, (const void*)(row + 16 * sizeof(float)));
                for (ptrdiff_t j = 0; j < kw; ++j)
                    _mm512_mask_storeu_ps(dst + j * rowstride, m,
                                          _mm512_permutex2var_ps(a, idx[j], b));
            }
        }
    }
}

/* col2im of channel c of nimg images (the adjoint of nanogan_im2col_f32): every pixel of the
 * planes written. Each row of a plane is one chain of masked adds (the offsets in the
 * reference's order); NI images go side by side, so that NI chains overlap instead of each add
 * waiting for the one before. */
static inline __attribute__((always_inline)) void
nanogan_col2im_images(const float* chunk, ptrdiff_t L, float* plane, ptrdiff_t sN, const int NI,
                      ptrdiff_t rowstride, ptrdiff_t H, ptrdiff_t W, ptrdiff_t kh, ptrdiff_t kw,
                      ptrdiff_t sh, ptrdiff_t ph, ptrdiff_t OH, ptrdiff_t OW, __mmask16 m,
                      const __m512i* lo_i, const __m512i* hi_i, const __mmask16* lo_m,
                      const __mmask16* hi_m, __mmask16 w0, __mmask16 w1)
{
    /* padded row h + ph = q*sh + r is read by the offsets i = r, r + sh, ... at the output
     * rows oh = q, q - 1, ... (q and r kept without dividing) */
    ptrdiff_t q = ph / sh, r = ph % sh;
    for (ptrdiff_t h = 0; h < H; ++h) {
        __m512 a[4], b[4];
        for (int t = 0; t < NI; ++t) {
            a[t] = _mm512_setzero_ps();
            b[t] = _mm512_setzero_ps();
        }
        ptrdiff_t oh = q;
        for (ptrdiff_t i = r; i < kh; i += sh, --oh) {
            if (oh < 0)
                break;
            if (oh >= OH)
                continue;
            const float* src = chunk + i * kw * rowstride + oh * OW;
            for (ptrdiff_t j = 0; j < kw; ++j) {
                for (int t = 0; t < NI; ++t) {
                    const __m512 v = _mm512_maskz_loadu_ps(m, src + t * L + j * rowstride);
                    a[t] = _mm512_mask_add_ps(a[t], lo_m[j], a[t],
                                              _mm512_permutexvar_ps(lo_i[j], v));
                    if (W > 16)
                        b[t] = _mm512_mask_add_ps(b[t], hi_m[j], b[t],
                                                  _mm512_permutexvar_ps(hi_i[j], v));
                }
            }
        }
        for (int t = 0; t < NI; ++t) {
            _mm512_mask_storeu_ps(plane + t * sN + h * W, w0, a[t]);
            if (W > 16)
                _mm512_mask_storeu_ps(plane + t * sN + h * W + 16, w1, b[t]);
        }
        if (++r == sh) {
            r = 0;
            ++q;
        }
    }
}

static inline void nanogan_col2im_f32(const float* cols, ptrdiff_t rowstride, float* x,
                                      ptrdiff_t sN, ptrdiff_t nimg, ptrdiff_t H, ptrdiff_t W,
                                      ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw,
                                      ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t OH, ptrdiff_t OW)
{
    const ptrdiff_t L = OH * OW;
    const __mmask16 m = (__mmask16)((1u << OW) - 1u);
    /* pixel column w of a row takes lane (w + pw - j)/sw of offset j's chunk row, when that is a
     * whole number in [0, OW); kw <= W + 2 pw <= 32 */
    __m512i lo_i[32], hi_i[32];
    __mmask16 lo_m[32], hi_m[32];
    for (ptrdiff_t j = 0; j < kw; ++j) {
        int src[32] = {0};
        uint32_t take = 0;
        for (ptrdiff_t ow = 0; ow < OW; ++ow) {  /* w + pw = ow*sw + j, without dividing */
            const ptrdiff_t w = ow * sw + j - pw;
            if (w >= 0 && w < W) {
                src[w] = (int)ow;
                take |= (uint32_t)1 << w;
            }
        }
        lo_i[j] = _mm512_loadu_si512(src);
        hi_i[j] = _mm512_loadu_si512(src + 16);
        lo_m[j] = (__mmask16)(take & 0xFFFFu);
        hi_m[j] = (__mmask16)(take >> 16);
    }
    __mmask16 w0, w1;
    nanogan_lanes(0, W, &w0, &w1);
    ptrdiff_t n = 0;
    for (; n + 4 <= nimg; n += 4)
        nanogan_col2im_images(cols + n * L, L, x + n * sN, sN, 4, rowstride, H, W, kh, kw, sh,
                              ph, OH, OW, m, lo_i, hi_i, lo_m, hi_m, w0, w1);
    for (; n < nimg; ++n)
        nanogan_col2im_images(cols + n * L, L, x + n * sN, sN, 1, rowstride, H, W, kh, kw, sh,
                              ph, OH, OW, m, lo_i, hi_i, lo_m, hi_m, w0, w1);
}

#else  /* no AVX-512 */

/* Not on Zen 1 (GCC's __znver1__, set by -march=native there): it runs each 256-bit operation as
 * two 128-bit halves and its 8-lane permute is slow, and this version measured 10-35% slower
 * than the portable loop there (1.7x faster on Zen 3). */
#if defined(__AVX2__) && !defined(__znver1__)
#include <immintrin.h>

static inline int nanogan_simd_im2col_ok(ptrdiff_t H, ptrdiff_t W, ptrdiff_t ph, ptrdiff_t pw,
                                         ptrdiff_t OW)
{
    (void)H; (void)ph;
    return W + 2 * pw <= 16 && OW >= 1 && OW <= 8;
}

/* The lanes [lo, hi) of 8 as a mask for maskload/maskstore (all bits set in a chosen lane). */
static inline __m256i nanogan_lanes8(ptrdiff_t lo, ptrdiff_t hi)
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i ge = _mm256_cmpgt_epi32(lane, _mm256_set1_epi32((int)lo - 1));
    const __m256i lt = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)hi), lane);
    return _mm256_and_si256(ge, lt);
}

/* v's first r lanes (1 <= r <= 8) to dst: 4-, 2- and 1-lane stores (a masked store is slow on
 * some AVX2 machines). */
static inline void nanogan_store_first(float* dst, __m256 v, ptrdiff_t r)
{
    __m128 q = _mm256_castps256_ps128(v);
    if (r >= 4) {
        _mm_storeu_ps(dst, q);
        dst += 4;
        r -= 4;
        q = _mm256_extractf128_ps(v, 1);
    }
    if (r >= 2) {
        _mm_storel_pi((__m64*)dst, q);
        dst += 2;
        r -= 2;
        q = _mm_movehl_ps(q, q);
    }
    if (r >= 1)
        _mm_store_ss(dst, q);
}

/* im2col of channel c of nimg images, as the AVX-512 version (the same arguments and layout):
 * the padded row in registers a (positions 0-7) and b (8-15); lane ow of offset j reads
 * position ow*sw + j, from a or b by the blend. */
static inline void nanogan_im2col_f32(const float* x, ptrdiff_t sN, ptrdiff_t nimg, float* cols,
                                      ptrdiff_t rowstride, ptrdiff_t H, ptrdiff_t W,
                                      ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw,
                                      ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t OH, ptrdiff_t OW)
{
    const ptrdiff_t L = OH * OW;
    const __m256i va = nanogan_lanes8(pw, pw + W);        /* padded positions 0-7 with pixels */
    const __m256i vb = nanogan_lanes8(pw - 8, pw + W - 8);  /* and 8-15 */
    const __m256 zero = _mm256_setzero_ps();
    __m256i idx[16];   /* lane ow reads padded position ow*sw + j (kw <= W + 2 pw <= 16) */
    __m256 fromb[16];  /* lanes whose position is >= 8, as a blend mask */
    for (ptrdiff_t j = 0; j < kw; ++j) {
        int src[8];
        for (int t = 0; t < 8; ++t)
            src[t] = t < OW ? (int)(t * sw + j) : 0;
        const __m256i p = _mm256_loadu_si256((const __m256i*)src);
        idx[j] = _mm256_and_si256(p, _mm256_set1_epi32(7));
        fromb[j] = _mm256_castsi256_ps(_mm256_cmpgt_epi32(p, _mm256_set1_epi32(7)));
    }
    for (ptrdiff_t n = 0; n < nimg; ++n) {
        const float* plane = x + n * sN;
        float* chunk = cols + n * L;
        for (ptrdiff_t i = 0; i < kh; ++i) {
            for (ptrdiff_t oh = 0; oh < OH; ++oh) {
                const ptrdiff_t h = oh * sh + i - ph;
                float* dst = chunk + i * kw * rowstride + oh * OW;
                __m256 a = zero, b = zero;
                if (h >= 0 && h < H) {
                    /* padded position p holds plane[h][p - pw]: masked lanes are never read */
                    const uintptr_t row = (uintptr_t)(plane + h * W) - (uintptr_t)pw * sizeof(float);
                    a = _mm256_maskload_ps((const float*)row, va);
                    b = _mm256_maskload_ps((const float*)(row + 8 * sizeof(float)), vb);
                }
                for (ptrdiff_t j = 0; j < kw; ++j) {
                    const __m256 v = _mm256_blendv_ps(_mm256_permutevar8x32_ps(a, idx[j]),
                                                      _mm256_permutevar8x32_ps(b, idx[j]),
                                                      fromb[j]);
                    /* lanes past the row land on the rows below it of the same offset,
                     * stored after this one, while the eight stay inside the image's chunk */
                    if (oh * OW + 8 <= L)
                        _mm256_storeu_ps(dst + j * rowstride, v);
                    else
                        nanogan_store_first(dst + j * rowstride, v, OW);
                }
            }
        }
    }
}

static inline int nanogan_simd_col2im_ok(ptrdiff_t H, ptrdiff_t W, ptrdiff_t ph, ptrdiff_t pw,
                                         ptrdiff_t OW)
{
    return nanogan_simd_im2col_ok(H, W, ph, pw, OW);
}

/* col2im of channel c of nimg images, as the AVX-512 version: each row of a plane one chain of
 * adds in the reference's order of the offsets, in two 8-lane registers (pixels 0-7 and 8-15);
 * offset j's chunk row (at most 8 values, a masked load) goes to pixel w from lane
 * (w + pw - j)/sw by one permute per register, the lanes that take nothing zeroed by a mask
 * (adding +0 leaves a sum that started from +0 unchanged, so the bits are the reference's). NI
 * images side by side, so that their chains overlap. A row is stored whole where the lanes past
 * it fall on the next row of its plane, written after it. */
static inline __attribute__((always_inline)) void
nanogan_col2im_images8(const float* chunk, ptrdiff_t L, float* plane, ptrdiff_t sN, const int NI,
                       ptrdiff_t rowstride, ptrdiff_t H, ptrdiff_t W, ptrdiff_t kh, ptrdiff_t kw,
                       ptrdiff_t sh, ptrdiff_t ph, ptrdiff_t OH, ptrdiff_t OW, __m256i m,
                       const __m256i* lo_i, const __m256i* hi_i, const __m256* lo_m,
                       const __m256* hi_m)
{
    ptrdiff_t q = ph / sh, r = ph % sh;  /* as the AVX-512 version */
    for (ptrdiff_t h = 0; h < H; ++h) {
        __m256 a[4], b[4];
        for (int t = 0; t < NI; ++t) {
            a[t] = _mm256_setzero_ps();
            b[t] = _mm256_setzero_ps();
        }
        ptrdiff_t oh = q;
        for (ptrdiff_t i = r; i < kh; i += sh, --oh) {
            if (oh < 0)
                break;
            if (oh >= OH)
                continue;
            const float* src = chunk + i * kw * rowstride + oh * OW;
            for (ptrdiff_t j = 0; j < kw; ++j) {
                for (int t = 0; t < NI; ++t) {
                    const __m256 v = _mm256_maskload_ps(src + t * L + j * rowstride, m);
                    a[t] = _mm256_add_ps(a[t], _mm256_and_ps(_mm256_permutevar8x32_ps(v, lo_i[j]),
                                                             lo_m[j]));
                    if (W > 8)
                        b[t] = _mm256_add_ps(b[t], _mm256_and_ps(
                            _mm256_permutevar8x32_ps(v, hi_i[j]), hi_m[j]));
                }
            }
        }
        for (int t = 0; t < NI; ++t) {
            /* eight lanes stored whole while they stay inside the plane: those past the row
             * land on the rows below it, written after it */
            float* row = plane + t * sN + h * W;
            const ptrdiff_t room = (H - h) * W;
            if (W > 8) {
                _mm256_storeu_ps(row, a[t]);
                if (room >= 16)
                    _mm256_storeu_ps(row + 8, b[t]);
                else
                    nanogan_store_first(row + 8, b[t], W - 8);
            } else if (room >= 8) {
                _mm256_storeu_ps(row, a[t]);
            } else {
                nanogan_store_first(row, a[t], W);
            }
        }
        if (++r == sh) {
            r = 0;
            ++q;
        }
    }
}

static inline void nanogan_col2im_f32(const float* cols, ptrdiff_t rowstride, float* x,
                                      ptrdiff_t sN, ptrdiff_t nimg, ptrdiff_t H, ptrdiff_t W,
                                      ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw,
                                      ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t OH, ptrdiff_t OW)
{
    const ptrdiff_t L = OH * OW;
    const __m256i m = nanogan_lanes8(0, OW);
    /* pixel column w takes lane (w + pw - j)/sw of offset j's chunk row, when that is a whole
     * number in [0, OW); kw <= W + 2 pw <= 16 */
    __m256i lo_i[16], hi_i[16];
    __m256 lo_m[16], hi_m[16];
    for (ptrdiff_t j = 0; j < kw; ++j) {
        int src[16] = {0}, take[16] = {0};
        for (ptrdiff_t ow = 0; ow < OW; ++ow) {  /* w + pw = ow*sw + j, without dividing */
            const ptrdiff_t w = ow * sw + j - pw;
            if (w >= 0 && w < W) {
                src[w] = (int)ow;
                take[w] = -1;
            }
        }
        lo_i[j] = _mm256_loadu_si256((const __m256i*)src);
        hi_i[j] = _mm256_loadu_si256((const __m256i*)(src + 8));
        lo_m[j] = _mm256_castsi256_ps(_mm256_loadu_si256((const __m256i*)take));
        hi_m[j] = _mm256_castsi256_ps(_mm256_loadu_si256((const __m256i*)(take + 8)));
    }
    ptrdiff_t n = 0;
    for (; n + 4 <= nimg; n += 4)
        nanogan_col2im_images8(cols + n * L, L, x + n * sN, sN, 4, rowstride, H, W, kh, kw, sh,
                               ph, OH, OW, m, lo_i, hi_i, lo_m, hi_m);
    for (; n < nimg; ++n)
        nanogan_col2im_images8(cols + n * L, L, x + n * sN, sN, 1, rowstride, H, W, kh, kw, sh,
                               ph, OH, OW, m, lo_i, hi_i, lo_m, hi_m);
}

#else  /* neither AVX-512 nor AVX2: the callers run their portable loops */

static inline int nanogan_simd_im2col_ok(ptrdiff_t H, ptrdiff_t W, ptrdiff_t ph, ptrdiff_t pw,
                                         ptrdiff_t OW)
{
    (void)H; (void)W; (void)ph; (void)pw; (void)OW;
    return 0;
}

static inline void nanogan_im2col_f32(const float* x, ptrdiff_t sN, ptrdiff_t nimg, float* cols,
                                      ptrdiff_t rowstride, ptrdiff_t H, ptrdiff_t W,
                                      ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw,
                                      ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t OH, ptrdiff_t OW)
{
    (void)x; (void)sN; (void)nimg; (void)cols; (void)rowstride; (void)H; (void)W; (void)kh;
    (void)kw; (void)sh; (void)sw; (void)ph; (void)pw; (void)OH; (void)OW;
}

static inline int nanogan_simd_col2im_ok(ptrdiff_t H, ptrdiff_t W, ptrdiff_t ph, ptrdiff_t pw,
                                         ptrdiff_t OW)
{
    (void)H; (void)W; (void)ph; (void)pw; (void)OW;
    return 0;
}

static inline void nanogan_col2im_f32(const float* cols, ptrdiff_t rowstride, float* x,
                                      ptrdiff_t sN, ptrdiff_t nimg, ptrdiff_t H, ptrdiff_t W,
                                      ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw,
                                      ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t OH, ptrdiff_t OW)
{
    (void)cols; (void)rowstride; (void)x; (void)sN; (void)nimg; (void)H; (void)W; (void)kh;
    (void)kw; (void)sh; (void)sw; (void)ph; (void)pw; (void)OH; (void)OW;
}

#endif  /* AVX2 */
#endif  /* AVX-512 */
#endif
