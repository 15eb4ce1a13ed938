/* The SIMD im2col/col2im of nanogan/_kernels/_simd.h against scalar loops, bit for bit, for
 * whichever version the compiler flags select (tests/test_simd_builds.py builds this file once
 * with AVX2 and without AVX-512, and once with AVX-512, where the CPU has them, so that every
 * CI host tests the versions its CPU can run, not only the one its build of the extension
 * uses).
 *
 * For random geometries inside the version's limits (nanogan_simd_im2col_ok / _col2im_ok):
 * im2col must equal the copy, zero where the window reads padding; col2im must equal the sum of
 * the columns over the window offsets (i, j) in order, from zero, in float32 (the reference's
 * order; build with -ffp-contract=off). Both must leave untouched the floats between the rows of
 * the column matrix and between the planes (gaps filled with a sentinel). Prints the number of
 * geometries checked of each, and the first mismatch; exits 1 on a mismatch, 2 if no geometry
 * took a SIMD path.
 *
 * The thin products of nanogan/_kernels/_thin.h likewise, where the version has them: each sum
 * in their order (the first product, then fused multiply-adds, fmaf), the leaky ReLU and its
 * gradient as theirs, bit for bit, on random shapes (K <= 16 rows, any M and L, padded leading
 * dimensions). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "_simd.h"
#include "_thin.h"

static uint64_t state = 88172645463325252ULL;

static uint64_t next(void)
{
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
}

static long pick(long lo, long hi) { return lo + (long)(next() % (uint64_t)(hi - lo + 1)); }

static float value(void) { return (float)((long)(next() >> 40) - (1L << 23)) / (float)(1 << 20); }

static const float SENTINEL = -12345.678f;

int main(void)
{
    long checked[2] = {0, 0};
    for (int trial = 0; trial < 20000; ++trial) {
        const long kh = pick(1, 5), kw = pick(1, 6), sh = pick(1, 3), sw = pick(1, 3);
        const long ph = pick(0, kh), pw = pick(0, kw), nimg = pick(1, 6);
        const long H = pick(1, 20), W = pick(1, 34);
        if (H + 2 * ph < kh || W + 2 * pw < kw)
            continue;
        const long OH = (H + 2 * ph - kh) / sh + 1, OW = (W + 2 * pw - kw) / sw + 1;
        const int do_im2col = nanogan_simd_im2col_ok(H, W, ph, pw, OW);
        const int do_col2im = nanogan_simd_col2im_ok(H, W, ph, pw, OW);
        if (!do_im2col && !do_col2im)
            continue;
        const long L = OH * OW, sN = H * W + 3, rowstride = nimg * L + 5;
        const long nx = nimg * sN, ncols = kh * kw * rowstride;
        float* x = malloc(sizeof(float) * nx);
        float* x2 = malloc(sizeof(float) * nx);
        float* cols = malloc(sizeof(float) * ncols);
        float* cols2 = malloc(sizeof(float) * ncols);
        for (long k = 0; k < nx; ++k)
            x[k] = SENTINEL;
        for (long n = 0; n < nimg; ++n)
            for (long k = 0; k < H * W; ++k)
                x[n * sN + k] = value();
        if (do_im2col) {
            for (long k = 0; k < ncols; ++k)
                cols[k] = cols2[k] = SENTINEL;
            for (long i = 0; i < kh; ++i)
                for (long j = 0; j < kw; ++j)
                    for (long n = 0; n < nimg; ++n)
                        for (long oh = 0; oh < OH; ++oh)
                            for (long ow = 0; ow < OW; ++ow) {
                                const long h = oh * sh + i - ph, w = ow * sw + j - pw;
                                cols2[(i * kw + j) * rowstride + n * L + oh * OW + ow] =
                                    (h >= 0 && h < H && w >= 0 && w < W) ? x[n * sN + h * W + w]
                                                                         : 0.0f;
                            }
            nanogan_im2col_f32(x, sN, nimg, cols, rowstride, H, W, kh, kw, sh, sw, ph, pw, OH, OW);
            if (memcmp(cols, cols2, sizeof(float) * ncols) != 0) {
                printf("im2col mismatch: nimg %ld H %ld W %ld k %ldx%ld s %ldx%ld p %ldx%ld\n",
                       nimg, H, W, kh, kw, sh, sw, ph, pw);
                return 1;
            }
            ++checked[0];
        }
        if (do_col2im) {
            for (long k = 0; k < ncols; ++k)
                cols[k] = SENTINEL;
            for (long r = 0; r < kh * kw; ++r)
                for (long k = 0; k < nimg * L; ++k)
                    cols[r * rowstride + k] = value();
            for (long k = 0; k < nx; ++k)
                x[k] = x2[k] = SENTINEL;
            for (long n = 0; n < nimg; ++n)
                for (long h = 0; h < H; ++h)
                    for (long w = 0; w < W; ++w) {
                        float s = 0.0f;
                        for (long i = 0; i < kh; ++i)
                            for (long j = 0; j < kw; ++j) {
                                const long a = h + ph - i, b = w + pw - j;
                                if (a < 0 || b < 0 || a % sh || b % sw || a / sh >= OH
                                    || b / sw >= OW)
                                    continue;
                                s += cols[(i * kw + j) * rowstride + n * L + (a / sh) * OW
                                          + b / sw];
                            }
                        x2[n * sN + h * W + w] = s;
                    }
            nanogan_col2im_f32(cols, rowstride, x, sN, nimg, H, W, kh, kw, sh, sw, ph, pw, OH, OW);
            if (memcmp(x, x2, sizeof(float) * nx) != 0) {
                printf("col2im mismatch: nimg %ld H %ld W %ld k %ldx%ld s %ldx%ld p %ldx%ld\n",
                       nimg, H, W, kh, kw, sh, sw, ph, pw);
                return 1;
            }
            ++checked[1];
        }
        free(x);
        free(x2);
        free(cols);
        free(cols2);
    }
    long thin[3] = {0, 0, 0};
    for (int trial = 0; nanogan_thin_ok(1) && trial < 3000; ++trial) {
        const long K = pick(1, 16), M = pick(1, 70), L = pick(1, 100);
        const long lda = pick(0, 3), ldb = L + pick(0, 5), ldo = L + pick(0, 5);
        const int act = (int)pick(0, 1), grad = (int)pick(0, 1);
        const float slope = act || grad ? 0.2f : 0.0f;
        /* thin_ab: out (M, L) at ldo = a (M, K) at K + lda @ cols (K, L) */
        float* a = malloc(sizeof(float) * M * (K + lda + 70));
        float* cols = malloc(sizeof(float) * K * L);
        float* out = malloc(sizeof(float) * M * ldo);
        float* want = malloc(sizeof(float) * M * ldo);
        float* b = malloc(sizeof(float) * M * ldb);
        float* y = malloc(sizeof(float) * M * ldb);
        float* c2 = malloc(sizeof(float) * K * L);
        for (long k = 0; k < M * (K + lda + 70); ++k)
            a[k] = value();
        for (long k = 0; k < K * L; ++k)
            cols[k] = value();
        for (long k = 0; k < M * ldo; ++k)
            out[k] = want[k] = SENTINEL;
        for (long m = 0; m < M; ++m)
            for (long q = 0; q < L; ++q) {
                const float* r = a + m * (K + lda);
                float t = r[0] * cols[q];
                for (long k = 1; k < K; ++k)
                    t = fmaf(r[k], cols[k * L + q], t);
                want[m * ldo + q] = act && !(t > 0.0f) ? t * slope : t;
            }
        nanogan_thin_ab(a, K + lda, cols, K, L, out, ldo, M, act, slope);
        if (memcmp(out, want, sizeof(float) * M * ldo) != 0) {
            printf("thin_ab mismatch: M %ld K %ld L %ld act %d\n", M, K, L, act);
            return 1;
        }
        ++thin[0];
        /* thin_atb: cols (K, L) = a (K, M) at M + lda @ b (M, L) at ldb, through the gradient */
        for (long k = 0; k < M * ldb; ++k) {
            b[k] = value();
            y[k] = value();
        }
        for (long k = 0; k < K * L; ++k)
            cols[k] = c2[k] = SENTINEL;
        for (long k = 0; k < K; ++k)
            for (long q = 0; q < L; ++q) {
                const float* r = a + k * (M + lda);
                float t = 0.0f;
                for (long m = 0; m < M; ++m) {
                    float v = b[m * ldb + q];
                    if (grad && !(y[m * ldb + q] > 0.0f))
                        v = v * slope;
                    t = m ? fmaf(r[m], v, t) : r[0] * v;
                }
                c2[k * L + q] = t;
            }
        nanogan_thin_atb(a, M + lda, b, ldb, M, cols, K, L, grad ? y : NULL, slope);
        if (memcmp(cols, c2, sizeof(float) * K * L) != 0) {
            printf("thin_atb mismatch: M %ld K %ld L %ld grad %d\n", M, K, L, grad);
            return 1;
        }
        ++thin[1];
        if (nanogan_thin_abt_ok(K)) {
            /* thin_abt: lanes (M, K, 16) += a (M, L) at ldb @ cols^T by lanes (p mod 16) */
            float* lanes = malloc(sizeof(float) * M * K * 16);
            float* l2 = malloc(sizeof(float) * M * K * 16);
            for (long k = 0; k < M * K * 16; ++k)
                lanes[k] = l2[k] = value();
            for (long m = 0; m < M; ++m)
                for (long k = 0; k < K; ++k)
                    for (long q = 0; q < L; ++q) {
                        float v = b[m * ldb + q];
                        if (grad && !(y[m * ldb + q] > 0.0f))
                            v = v * slope;
                        float* t = l2 + (m * K + k) * 16 + q % 16;
                        *t = fmaf(v, cols[k * L + q], *t);
                    }
            nanogan_thin_abt(b, ldb, M, cols, K, L, lanes, grad ? y : NULL, slope);
            if (memcmp(lanes, l2, sizeof(float) * M * K * 16) != 0) {
                printf("thin_abt mismatch: M %ld K %ld L %ld grad %d\n", M, K, L, grad);
                return 1;
            }
            ++thin[2];
            free(lanes);
            free(l2);
        }
        free(a); free(cols); free(out); free(want); free(b); free(y); free(c2);
    }
    printf("im2col %ld geometries, col2im %ld geometries, thin_ab %ld, thin_atb %ld, thin_abt %ld:"
           " equal\n", checked[0], checked[1], thin[0], thin[1], thin[2]);
    return checked[0] + checked[1] > 0 ? 0 : 2;
}
