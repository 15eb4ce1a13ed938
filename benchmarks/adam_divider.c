/* How much of Adam's float32 update is the square root and the divisions, on one core.
 *
 *   gcc -O3 -march=native -fno-math-errno -ffp-contract=off benchmarks/adam_divider.c \
 *       -o /tmp/adam_divider -lm && taskset -c 1 /tmp/adam_divider
 *
 * The loop of nanogan's Adam kernel (_cython_kernels.pyx, _adam1: a square root and two
 * divisions a value, the compiler flags of setup.py) against the same loop with one division
 * (sqrt(v) + eps * sqrt_bc2 in the denominator, the step size times sqrt_bc2: the same value up
 * to rounding) and with neither root nor division (what the memory traffic alone costs), on
 * 280,000 values (an MLP GAN's network, 4.5 MB over the four arrays): best of 200 calls each,
 * three rounds, in ns a value. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

typedef void (*step_fn)(float*, const float*, float*, float*, long);

static const float B1 = 0.5f, C1 = 0.5f, B2 = 0.999f, C2 = 0.001f, EPS = 1e-8f, SS = 2e-4f,
                   SB = 0.3f;

__attribute__((noinline)) static void two_div(float* restrict p, const float* restrict g,
                                              float* restrict m, float* restrict v, long n)
{
    for (long i = 0; i < n; i++) {
        const float gi = g[i];
        m[i] = m[i] * B1 + C1 * gi;
        v[i] = v[i] * B2 + C2 * gi * gi;
        p[i] = p[i] - (SS * m[i]) / (sqrtf(v[i]) / SB + EPS);
    }
}

__attribute__((noinline)) static void one_div(float* restrict p, const float* restrict g,
                                              float* restrict m, float* restrict v, long n)
{
    const float e2 = EPS * SB, s2 = SS * SB;
    for (long i = 0; i < n; i++) {
        const float gi = g[i];
        m[i] = m[i] * B1 + C1 * gi;
        v[i] = v[i] * B2 + C2 * gi * gi;
        p[i] = p[i] - (s2 * m[i]) / (sqrtf(v[i]) + e2);
    }
}

__attribute__((noinline)) static void no_div(float* restrict p, const float* restrict g,
                                             float* restrict m, float* restrict v, long n)
{
    for (long i = 0; i < n; i++) {
        const float gi = g[i];
        m[i] = m[i] * B1 + C1 * gi;
        v[i] = v[i] * B2 + C2 * gi * gi;
        p[i] = p[i] - (SS * m[i]) * (v[i] + EPS);
    }
}

int main(void)
{
    const long n = 280000;
    float *p = malloc(4 * n), *g = malloc(4 * n), *m = malloc(4 * n), *v = malloc(4 * n);
    for (long i = 0; i < n; i++) {
        p[i] = 1.0f;
        g[i] = 0.001f * (float)(i % 100);
        m[i] = 0.0f;
        v[i] = 1e-4f;
    }
    const step_fn fns[3] = {two_div, one_div, no_div};
    const char* names[3] = {"sqrt + two divisions", "sqrt + one division", "neither"};
    for (int r = 0; r < 3; r++) {
        double best[3] = {1e9, 1e9, 1e9};
        for (int k = 0; k < 200; k++)
            for (int f = 0; f < 3; f++) {
                const double t = now();
                fns[f](p, g, m, v, n);
                const double dt = now() - t;
                if (dt < best[f])
                    best[f] = dt;
            }
        for (int f = 0; f < 3; f++)
            printf("%s%s %.2f ns", f ? ",  " : "", names[f], best[f] / n * 1e9);
        printf("\n");
    }
    free(p); free(g); free(m); free(v);
    return 0;
}
