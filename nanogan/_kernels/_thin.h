/* Thin convolution products in AVX-512 (and, below, AVX2) float32, for nanogan's Cython kernels.
 *
 * "Thin": the column matrix of one image, cols (K, L) with K = C*kh*kw <= 16 rows and L = OH*OW
 * columns, is the small operand of the product, as in a convolution on a one-channel image
 * (DCGAN-28's Conv2d(1, 64, 4, 2, 1) and ConvTranspose2d(64, 1, 4, 2, 1): K = 16). BLAS runs
 * these products with K = 16 far below its peak: each output value is one short dot product, and
 * the time goes into loading and storing the (M, L) operand. Here each 16-column vector of cols
 * stays in registers while every row of the large operand passes it once:
 *
 *   nanogan_thin_ab:   out[m, p]  = sum_k a[m, k] cols[k, p]        (im2col_matmul)
 *   nanogan_thin_atb:  cols[k, p] = sum_m a[k, m] b[m, p]           (matmul_col2im, before the fold)
 *   nanogan_thin_abt:  lanes[m, k, :] += a[m, p] cols[k, p] over p  (matmul_im2col_t: 16 partial
 *                      sums per (m, k), one per lane; lane l holds the columns with p mod 16 = l,
 *                      summed in order; the caller adds the 16 lanes in order)
 *
 * Sums run over k (or m) in order with fused multiply-adds, like BLAS's kernels. a is dense by
 * rows (lda = its row length), cols dense (row k at cols + k*L); b and out rows at ldb / ldo.
 *
 * A convolution's leaky ReLU rides along (D's first layer and its gradient): nanogan_thin_ab
 * with act stores leaky_relu(out) (u * (u > 0 ? 1 : slope): u itself where u > 0, as the
 * reference); nanogan_thin_atb and _abt with a non-NULL y (stored like b, or like a) read the
 * large operand d through the activation's gradient, d where y > 0, else d * slope, so that the
 * gradient dz is never written out and read back.
 *
 * nanogan_thin_ok says whether the build targets AVX-512 or AVX2 and K fits, and
 * nanogan_thin_abt_ok the same for the weight gradient (AVX-512 only); where they are 0 the
 * callers run their BLAS products.
 */
#ifndef NANOGAN_THIN_H
#define NANOGAN_THIN_H

#include <stddef.h>

/* The loops over k unrolled where K is the constant 16, so that the 16 column vectors (or sums)
 * are registers, not an array in memory: GCC 12 otherwise kept them, and the eight sums beside
 * them, on the stack (each multiply-add a store and a reload: 3-4x slower on a Zen 4). */
#define NANOGAN_UNROLL _Pragma("GCC unroll 16")

/* How far ahead (in floats) nanogan_thin_atb prefetches its rows of b. */
#ifndef NANOGAN_THIN_AHEAD
#define NANOGAN_THIN_AHEAD 64
#endif

#if defined(__AVX512F__)
#include <immintrin.h>

static inline int nanogan_thin_ok(ptrdiff_t K) { return K >= 1 && K <= 16; }
static inline int nanogan_thin_abt_ok(ptrdiff_t K) { return nanogan_thin_ok(K); }

static inline __mmask16 nanogan_thin_mask(ptrdiff_t r)
{
    return (__mmask16)(r >= 16 ? 0xFFFFu : ((1u << r) - 1u));
}

/* Store the lanes of mk: a plain store where all 16 are chosen (masked stores cost more on some
 * CPUs: on a Zen 4 the forward product took 12% longer with them; the branch is predicted). */
static inline void nanogan_thin_store(float* dst, __mmask16 mk, __m512 v)
{
    if (mk == (__mmask16)0xFFFFu)
        _mm512_storeu_ps(dst, v);
    else
        _mm512_mask_storeu_ps(dst, mk, v);
}

/* The leaky ReLU of the reference, u * (u > 0 ? 1 : slope): u itself where u > 0. */
static inline __m512 nanogan_thin_act(__m512 u, __m512 slope)
{
    return _mm512_mask_mov_ps(_mm512_mul_ps(u, slope),
                              _mm512_cmp_ps_mask(u, _mm512_setzero_ps(), _CMP_GT_OQ), u);
}

/* dy where y > 0, else dy * slope (the leaky ReLU's gradient from its output y). */
static inline __m512 nanogan_thin_grad(__m512 dy, __m512 y, __m512 slope)
{
    return _mm512_mask_mov_ps(_mm512_mul_ps(dy, slope),
                              _mm512_cmp_ps_mask(y, _mm512_setzero_ps(), _CMP_GT_OQ), dy);
}

/* Eight rows of a at once: eight independent chains of K multiply-adds per column vector. */
static inline __attribute__((always_inline)) void
nanogan_thin_ab_k(const float* a, ptrdiff_t lda, const float* cols, const ptrdiff_t K,
                  ptrdiff_t L, float* out, ptrdiff_t ldo, ptrdiff_t M, int act, float slope_)
{
    const __m512 slope = _mm512_set1_ps(slope_);
    for (ptrdiff_t p = 0; p < L; p += 16) {
        const __mmask16 mk = nanogan_thin_mask(L - p);
        __m512 c[16];
        NANOGAN_UNROLL
        for (ptrdiff_t k = 0; k < 16; ++k)  /* the rows k >= K are never read */
            c[k] = k < K ? _mm512_maskz_loadu_ps(mk, cols + k * L + p) : _mm512_setzero_ps();
        ptrdiff_t m = 0;
        for (; m + 8 <= M; m += 8) {
            const float* r = a + m * lda;
            __m512 s0 = _mm512_mul_ps(_mm512_set1_ps(r[0]), c[0]);
            __m512 s1 = _mm512_mul_ps(_mm512_set1_ps(r[lda]), c[0]);
            __m512 s2 = _mm512_mul_ps(_mm512_set1_ps(r[2 * lda]), c[0]);
            __m512 s3 = _mm512_mul_ps(_mm512_set1_ps(r[3 * lda]), c[0]);
            __m512 s4 = _mm512_mul_ps(_mm512_set1_ps(r[4 * lda]), c[0]);
            __m512 s5 = _mm512_mul_ps(_mm512_set1_ps(r[5 * lda]), c[0]);
            __m512 s6 = _mm512_mul_ps(_mm512_set1_ps(r[6 * lda]), c[0]);
            __m512 s7 = _mm512_mul_ps(_mm512_set1_ps(r[7 * lda]), c[0]);
            NANOGAN_UNROLL
            for (ptrdiff_t k = 1; k < K; ++k) {
                s0 = _mm512_fmadd_ps(_mm512_set1_ps(r[k]), c[k], s0);
                s1 = _mm512_fmadd_ps(_mm512_set1_ps(r[lda + k]), c[k], s1);
                s2 = _mm512_fmadd_ps(_mm512_set1_ps(r[2 * lda + k]), c[k], s2);
                s3 = _mm512_fmadd_ps(_mm512_set1_ps(r[3 * lda + k]), c[k], s3);
                s4 = _mm512_fmadd_ps(_mm512_set1_ps(r[4 * lda + k]), c[k], s4);
                s5 = _mm512_fmadd_ps(_mm512_set1_ps(r[5 * lda + k]), c[k], s5);
                s6 = _mm512_fmadd_ps(_mm512_set1_ps(r[6 * lda + k]), c[k], s6);
                s7 = _mm512_fmadd_ps(_mm512_set1_ps(r[7 * lda + k]), c[k], s7);
            }
            if (act) {
                s0 = nanogan_thin_act(s0, slope); s1 = nanogan_thin_act(s1, slope);
                s2 = nanogan_thin_act(s2, slope); s3 = nanogan_thin_act(s3, slope);
                s4 = nanogan_thin_act(s4, slope); s5 = nanogan_thin_act(s5, slope);
                s6 = nanogan_thin_act(s6, slope); s7 = nanogan_thin_act(s7, slope);
            }
            float* o = out + m * ldo + p;
            nanogan_thin_store(o, mk, s0);
            nanogan_thin_store(o + ldo, mk, s1);
            nanogan_thin_store(o + 2 * ldo, mk, s2);
            nanogan_thin_store(o + 3 * ldo, mk, s3);
            nanogan_thin_store(o + 4 * ldo, mk, s4);
            nanogan_thin_store(o + 5 * ldo, mk, s5);
            nanogan_thin_store(o + 6 * ldo, mk, s6);
            nanogan_thin_store(o + 7 * ldo, mk, s7);
        }
        for (; m < M; ++m) {
            const float* r = a + m * lda;
            __m512 s = _mm512_mul_ps(_mm512_set1_ps(r[0]), c[0]);
            NANOGAN_UNROLL
            for (ptrdiff_t k = 1; k < K; ++k)
                s = _mm512_fmadd_ps(_mm512_set1_ps(r[k]), c[k], s);
            if (act)
                s = nanogan_thin_act(s, slope);
            nanogan_thin_store(out + m * ldo + p, mk, s);
        }
    }
}

static inline void nanogan_thin_ab(const float* a, ptrdiff_t lda, const float* cols,
                                   ptrdiff_t K, ptrdiff_t L, float* out, ptrdiff_t ldo,
                                   ptrdiff_t M, int act, float slope)
{
    if (K == 16)  /* the DCGAN kernel: the loops over k unrolled, cols in 16 registers */
        nanogan_thin_ab_k(a, lda, cols, 16, L, out, ldo, M, act, slope);
    else
        nanogan_thin_ab_k(a, lda, cols, K, L, out, ldo, M, act, slope);
}

static inline __attribute__((always_inline)) void
nanogan_thin_atb_k(const float* a, ptrdiff_t lda, const float* b, ptrdiff_t ldb, ptrdiff_t M,
                   float* cols, const ptrdiff_t K, ptrdiff_t L, const float* y, float slope_)
{
    const __m512 slope = _mm512_set1_ps(slope_);
    for (ptrdiff_t p = 0; p < L; p += 16) {
        const __mmask16 mk = nanogan_thin_mask(L - p);
        __m512 s[16];
        NANOGAN_UNROLL
        for (ptrdiff_t k = 0; k < 16; ++k)  /* dead where K is 16; else the rows k >= K */
            s[k] = _mm512_setzero_ps();
        __m512 v0 = _mm512_maskz_loadu_ps(mk, b + p);
        if (y)
            v0 = nanogan_thin_grad(v0, _mm512_maskz_loadu_ps(mk, y + p), slope);
        NANOGAN_UNROLL
        for (ptrdiff_t k = 0; k < K; ++k)
            s[k] = _mm512_mul_ps(_mm512_set1_ps(a[k * lda]), v0);
        for (ptrdiff_t m = 1; m < M; ++m) {
            /* The M rows of b are M streams far apart (ldb spans the whole batch), more than
             * the hardware prefetchers follow: ask for each row's vector four ahead. */
            _mm_prefetch((const char*)(b + m * ldb + p + NANOGAN_THIN_AHEAD), _MM_HINT_T0);
            if (y)
                _mm_prefetch((const char*)(y + m * ldb + p + NANOGAN_THIN_AHEAD), _MM_HINT_T0);
            __m512 v = _mm512_maskz_loadu_ps(mk, b + m * ldb + p);
            if (y)
                v = nanogan_thin_grad(v, _mm512_maskz_loadu_ps(mk, y + m * ldb + p), slope);
            NANOGAN_UNROLL
            for (ptrdiff_t k = 0; k < K; ++k)
                s[k] = _mm512_fmadd_ps(_mm512_set1_ps(a[k * lda + m]), v, s[k]);
        }
        NANOGAN_UNROLL
        for (ptrdiff_t k = 0; k < K; ++k)
            nanogan_thin_store(cols + k * L + p, mk, s[k]);
    }
}

static inline void nanogan_thin_atb(const float* a, ptrdiff_t lda, const float* b,
                                    ptrdiff_t ldb, ptrdiff_t M, float* cols, ptrdiff_t K,
                                    ptrdiff_t L, const float* y, float slope)
{
    if (K == 16)
        nanogan_thin_atb_k(a, lda, b, ldb, M, cols, 16, L, y, slope);
    else
        nanogan_thin_atb_k(a, lda, b, ldb, M, cols, K, L, y, slope);
}

static inline __attribute__((always_inline)) void
nanogan_thin_abt_k(const float* a, ptrdiff_t lda, ptrdiff_t M, const float* cols,
                   const ptrdiff_t K, ptrdiff_t L, float* lanes, const float* y, float slope_)
{
    const __m512 slope = _mm512_set1_ps(slope_);
    for (ptrdiff_t m = 0; m < M; ++m) {
        const float* r = a + m * lda;
        const float* yr = y ? y + m * lda : 0;
        float* acc = lanes + m * K * 16;
        __m512 s[16];
        NANOGAN_UNROLL
        for (ptrdiff_t k = 0; k < 16; ++k)  /* dead where K is 16; else the rows k >= K */
            s[k] = _mm512_setzero_ps();
        NANOGAN_UNROLL
        for (ptrdiff_t k = 0; k < K; ++k)
            s[k] = _mm512_loadu_ps(acc + 16 * k);
        for (ptrdiff_t p = 0; p < L; p += 16) {
            const __mmask16 mk = nanogan_thin_mask(L - p);
            __m512 v = _mm512_maskz_loadu_ps(mk, r + p);
            if (yr)
                v = nanogan_thin_grad(v, _mm512_maskz_loadu_ps(mk, yr + p), slope);
            NANOGAN_UNROLL
            for (ptrdiff_t k = 0; k < K; ++k)
                s[k] = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(mk, cols + k * L + p), s[k]);
        }
        NANOGAN_UNROLL
        for (ptrdiff_t k = 0; k < K; ++k)
            _mm512_storeu_ps(acc + 16 * k, s[k]);
    }
}

static inline void nanogan_thin_abt(const float* a, ptrdiff_t lda, ptrdiff_t M,
                                    const float* cols, ptrdiff_t K, ptrdiff_t L, float* lanes,
                                    const float* y, float slope)
{
    if (K == 16)
        nanogan_thin_abt_k(a, lda, M, cols, 16, L, lanes, y, slope);
    else
        nanogan_thin_abt_k(a, lda, M, cols, K, L, lanes, y, slope);
}

#elif defined(__AVX2__) && defined(__FMA__) && !defined(__znver1__)
#include <immintrin.h>

/* The forward and folding products in 8-lane AVX2, for CPUs without AVX-512 (not built for
 * Zen 1, as _simd.h's AVX2 loops; the weight gradient stays with BLAS, below). With 16
 * registers of 8 lanes the AVX-512 loops' 16 column vectors do not fit beside their sums, so
 * each loop keeps its sums in registers and reads the other operand from L1 instead: thin_ab
 * eight rows of a by 8 columns, thin_atb the offsets k in groups of 8. Each value is summed in
 * the AVX-512 loops' order, with the same fused multiply-adds, so both give the same bits
 * (tests/c/simd_check.c checks both against fmaf). On a Zen 4 built without AVX-512, 256
 * images on one thread: the forward product 2.3-2.9 ms against BLAS's 4.2-4.6, the folding one
 * 2.2-2.9 against 3.4-4.0. */

static inline int nanogan_thin_ok(ptrdiff_t K) { return K >= 1 && K <= 16; }

/* The lanes below r (at most 8) as a mask for maskload/maskstore. */
static inline __m256i nanogan_thin_mask8(ptrdiff_t r)
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(r < 8 ? r : 8)), lane);
}

static inline __m256 nanogan_thin_load8(const float* src, ptrdiff_t r, __m256i mk)
{
    return r >= 8 ? _mm256_loadu_ps(src) : _mm256_maskload_ps(src, mk);
}

static inline void nanogan_thin_store8(float* dst, ptrdiff_t r, __m256i mk, __m256 v)
{
    if (r >= 8)
        _mm256_storeu_ps(dst, v);
    else
        _mm256_maskstore_ps(dst, mk, v);
}

static inline __m256 nanogan_thin_act8(__m256 u, __m256 slope)
{
    return _mm256_blendv_ps(_mm256_mul_ps(u, slope), u,
                            _mm256_cmp_ps(u, _mm256_setzero_ps(), _CMP_GT_OQ));
}

static inline __m256 nanogan_thin_grad8(__m256 dy, __m256 y, __m256 slope)
{
    return _mm256_blendv_ps(_mm256_mul_ps(dy, slope), dy,
                            _mm256_cmp_ps(y, _mm256_setzero_ps(), _CMP_GT_OQ));
}

static inline void nanogan_thin_ab(const float* a, ptrdiff_t lda, const float* cols,
                                   ptrdiff_t K, ptrdiff_t L, float* out, ptrdiff_t ldo,
                                   ptrdiff_t M, int act, float slope_)
{
    const __m256 slope = _mm256_set1_ps(slope_);
    for (ptrdiff_t p = 0; p < L; p += 8) {
        const ptrdiff_t r = L - p;
        const __m256i mk = nanogan_thin_mask8(r);
        ptrdiff_t m = 0;
        for (; m + 8 <= M; m += 8) {
            const float* ra = a + m * lda;
            __m256 c = nanogan_thin_load8(cols + p, r, mk), s[8];
            NANOGAN_UNROLL
            for (int t = 0; t < 8; ++t)
                s[t] = _mm256_mul_ps(_mm256_broadcast_ss(ra + t * lda), c);
            for (ptrdiff_t k = 1; k < K; ++k) {
                c = nanogan_thin_load8(cols + k * L + p, r, mk);
                NANOGAN_UNROLL
                for (int t = 0; t < 8; ++t)
                    s[t] = _mm256_fmadd_ps(_mm256_broadcast_ss(ra + t * lda + k), c, s[t]);
            }
            NANOGAN_UNROLL
            for (int t = 0; t < 8; ++t)
                nanogan_thin_store8(out + (m + t) * ldo + p, r, mk,
                                    act ? nanogan_thin_act8(s[t], slope) : s[t]);
        }
        for (; m < M; ++m) {
            const float* ra = a + m * lda;
            __m256 s = _mm256_mul_ps(_mm256_broadcast_ss(ra), nanogan_thin_load8(cols + p, r, mk));
            for (ptrdiff_t k = 1; k < K; ++k)
                s = _mm256_fmadd_ps(_mm256_broadcast_ss(ra + k),
                                    nanogan_thin_load8(cols + k * L + p, r, mk), s);
            nanogan_thin_store8(out + m * ldo + p, r, mk, act ? nanogan_thin_act8(s, slope) : s);
        }
    }
}

/* nk offsets k0 .. k0 + nk - 1 of 8 columns: with nk the constant 8 the sums stay in registers;
 * a variable nk (the last group where K is not a multiple of 8) keeps them in memory, as GCC
 * does with any array it cannot unroll (the folding product then ran 4.7 ms against BLAS's
 * 3.6). */
static inline __attribute__((always_inline)) void
nanogan_thin_atb_group(const float* a, ptrdiff_t lda, const float* b, ptrdiff_t ldb, ptrdiff_t M,
                       float* cols, ptrdiff_t L, const float* y, __m256 slope, ptrdiff_t p,
                       ptrdiff_t r, __m256i mk, ptrdiff_t k0, const int nk)
{
    __m256 s[8];
    __m256 v = nanogan_thin_load8(b + p, r, mk);
    if (y)
        v = nanogan_thin_grad8(v, nanogan_thin_load8(y + p, r, mk), slope);
    NANOGAN_UNROLL
    for (int t = 0; t < nk; ++t)
        s[t] = _mm256_mul_ps(_mm256_broadcast_ss(a + (k0 + t) * lda), v);
    for (ptrdiff_t m = 1; m < M; ++m) {
        _mm_prefetch((const char*)(b + m * ldb + p + NANOGAN_THIN_AHEAD), _MM_HINT_T0);
        if (y)
            _mm_prefetch((const char*)(y + m * ldb + p + NANOGAN_THIN_AHEAD), _MM_HINT_T0);
        v = nanogan_thin_load8(b + m * ldb + p, r, mk);
        if (y)
            v = nanogan_thin_grad8(v, nanogan_thin_load8(y + m * ldb + p, r, mk), slope);
        NANOGAN_UNROLL
        for (int t = 0; t < nk; ++t)
            s[t] = _mm256_fmadd_ps(_mm256_broadcast_ss(a + (k0 + t) * lda + m), v, s[t]);
    }
    NANOGAN_UNROLL
    for (int t = 0; t < nk; ++t)
        nanogan_thin_store8(cols + (k0 + t) * L + p, r, mk, s[t]);
}

static inline void nanogan_thin_atb(const float* a, ptrdiff_t lda, const float* b,
                                    ptrdiff_t ldb, ptrdiff_t M, float* cols, ptrdiff_t K,
                                    ptrdiff_t L, const float* y, float slope_)
{
    const __m256 slope = _mm256_set1_ps(slope_);
    for (ptrdiff_t p = 0; p < L; p += 8) {
        const ptrdiff_t r = L - p;
        const __m256i mk = nanogan_thin_mask8(r);
        ptrdiff_t k0 = 0;
        for (; k0 + 8 <= K; k0 += 8)
            nanogan_thin_atb_group(a, lda, b, ldb, M, cols, L, y, slope, p, r, mk, k0, 8);
        if (k0 < K)
            nanogan_thin_atb_group(a, lda, b, ldb, M, cols, L, y, slope, p, r, mk, k0,
                                   (int)(K - k0));
    }
}

/* The weight gradient (thin_abt) stays with BLAS here: its sixteen 16-lane sums per row do not
 * fit AVX2's registers, and in groups of four offsets (four passes over the row, the activation's
 * gradient applied in each) it ran 5.2-5.5 ms for 256 images against BLAS's 4.2-4.7 (one thread,
 * a Zen 4 built without AVX-512). */
static inline int nanogan_thin_abt_ok(ptrdiff_t K) { (void)K; return 0; }
static inline void nanogan_thin_abt(const float* a, ptrdiff_t lda, ptrdiff_t M,
                                    const float* cols, ptrdiff_t K, ptrdiff_t L, float* lanes,
                                    const float* y, float slope)
{ (void)a; (void)lda; (void)M; (void)cols; (void)K; (void)L; (void)lanes; (void)y;
  (void)slope; }

#else  /* neither AVX-512 nor AVX2: the callers run their BLAS products */

static inline int nanogan_thin_ok(ptrdiff_t K) { (void)K; return 0; }
static inline int nanogan_thin_abt_ok(ptrdiff_t K) { (void)K; return 0; }
static inline void nanogan_thin_ab(const float* a, ptrdiff_t lda, const float* cols,
                                   ptrdiff_t K, ptrdiff_t L, float* out, ptrdiff_t ldo,
                                   ptrdiff_t M, int act, float slope)
{ (void)a; (void)lda; (void)cols; (void)K; (void)L; (void)out; (void)ldo; (void)M; (void)act;
  (void)slope; }
static inline void nanogan_thin_atb(const float* a, ptrdiff_t lda, const float* b,
                                    ptrdiff_t ldb, ptrdiff_t M, float* cols, ptrdiff_t K,
                                    ptrdiff_t L, const float* y, float slope)
{ (void)a; (void)lda; (void)b; (void)ldb; (void)M; (void)cols; (void)K; (void)L; (void)y;
  (void)slope; }
static inline void nanogan_thin_abt(const float* a, ptrdiff_t lda, ptrdiff_t M,
                                    const float* cols, ptrdiff_t K, ptrdiff_t L, float* lanes,
                                    const float* y, float slope)
{ (void)a; (void)lda; (void)M; (void)cols; (void)K; (void)L; (void)lanes; (void)y;
  (void)slope; }

#endif
#endif
