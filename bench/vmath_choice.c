/*
 * vmath_choice.c - the measurement behind the runtime's vector math
 * library (README, "Vectorised elementwise math"): SLEEF against glibc's
 * libmvec on tanh, exp, log, log1p, sigmoid and softplus, over a million
 * doubles, four lanes of AVX2 at a time, one thread. Time is the best of
 * seven passes in thread CPU time; error is the largest in ulps, against
 * long double (x87, 64-bit mantissa) as the exact value, and against
 * glibc's scalar function. Prints a Markdown table.
 *
 *   apt-get install libsleef-dev
 *   cc -std=c11 -O2 -mavx2 -mfma bench/vmath_choice.c -o vmath_choice -lsleef -lm
 */
#define _GNU_SOURCE
#include <immintrin.h>
#include <math.h>
#include <sleef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

__m256d _ZGVdN4v_tanh(__m256d), _ZGVdN4v_exp(__m256d), _ZGVdN4v_log(__m256d),
    _ZGVdN4v_log1p(__m256d);

enum { N = 1000000, REPS = 7 };
static double x[N], y[N], ref[N];
static long double exact[N];

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

// The runtime's formulas (runtime/standalone.c), scalar and in lanes.
static double sigmoid(double v) {
  double z = exp(-fabs(v));
  return v >= 0 ? 1 / (1 + z) : z / (1 + z);
}
static double softplus(double v) {
  return (v > 0 ? v : 0) + log1p(exp(-fabs(v)));
}
static long double sigmoidl(long double v) {
  return 1 / (1 + expl(-v));
}
static long double softplusl(long double v) {
  return v > 0 ? v + log1pl(expl(-v)) : log1pl(expl(v));
}
static __m256d neg_abs(__m256d v) {
  return _mm256_or_pd(_mm256_set1_pd(-0.0), v);
}
#define SIGMOID(name, EXP)                                                                \
  static __m256d name(__m256d v) {                                                        \
    __m256d z = EXP(neg_abs(v)), d = _mm256_add_pd(_mm256_set1_pd(1), z);                 \
    return _mm256_blendv_pd(_mm256_div_pd(_mm256_set1_pd(1), d), _mm256_div_pd(z, d),     \
                            _mm256_cmp_pd(v, _mm256_setzero_pd(), _CMP_NGE_UQ));          \
  }
#define SOFTPLUS(name, EXP, LOG1P)                                                        \
  static __m256d name(__m256d v) {                                                        \
    return _mm256_add_pd(_mm256_max_pd(v, _mm256_setzero_pd()), LOG1P(EXP(neg_abs(v)))); \
  }
SIGMOID(sigmoid_sleef, Sleef_expd4_u10avx2)
SIGMOID(sigmoid_mvec, _ZGVdN4v_exp)
SOFTPLUS(softplus_sleef, Sleef_expd4_u10avx2, Sleef_log1pd4_u10avx2)
SOFTPLUS(softplus_mvec, _ZGVdN4v_exp, _ZGVdN4v_log1p)

typedef __m256d (*Lanes)(__m256d);

static void blocks(Lanes f, const double *a, double *b) {
  for (long i = 0; i < N; i += 4)
    _mm256_storeu_pd(b + i, f(_mm256_loadu_pd(a + i)));
}

static double ulps(double got, long double want) {
  double w = (double)want, u = nextafter(fabs(w), INFINITY) - fabs(w);
  return got == w ? 0 : (double)(fabsl((long double)got - want) / u);
}

static void row(const char *name, double lo, double hi, int log_uniform, double (*scalar)(double),
                long double (*exactf)(long double), Lanes sleef, Lanes mvec) {
  srand(7);
  for (long i = 0; i < N; i++) {
    double r = rand() / (double)RAND_MAX;
    x[i] = log_uniform ? exp(log(lo) + (log(hi) - log(lo)) * r) : lo + (hi - lo) * r;
    exact[i] = exactf(x[i]);
  }
  double t[3] = {INFINITY, INFINITY, INFINITY}, err[3] = {0}, vs_libm[3] = {0};
  Lanes lanes[3] = {0, sleef, mvec};
  for (int rep = 0; rep < REPS; rep++)
    for (int k = 0; k < 3; k++) {
      double t0 = now();
      if (k == 0)
        for (long i = 0; i < N; i++)
          ref[i] = scalar(x[i]);
      else
        blocks(lanes[k], x, y);
      t[k] = fmin(t[k], now() - t0);
      for (long i = 0; rep == 0 && i < N; i++) {
        double v = k ? y[i] : ref[i];
        err[k] = fmax(err[k], ulps(v, exact[i]));
        vs_libm[k] = fmax(vs_libm[k], ulps(v, ref[i]));
      }
    }
  printf("| %s | [%g, %g] | %.2f ms, %.2f ulp | %.2f ms, %.2f ulp, %.0f vs libm | "
         "%.2f ms, %.2f ulp, %.0f vs libm |\n",
         name, lo, hi, t[0] * 1e3, err[0], t[1] * 1e3, err[1], vs_libm[1], t[2] * 1e3, err[2],
         vs_libm[2]);
}

int main(void) {
  printf("| function | x | glibc scalar | SLEEF u10 (AVX2) | libmvec (AVX2) |\n"
         "| --- | --- | ---: | ---: | ---: |\n");
  row("tanh", -20, 20, 0, tanh, tanhl, Sleef_tanhd4_u10avx2, _ZGVdN4v_tanh);
  row("exp", -700, 700, 0, exp, expl, Sleef_expd4_u10avx2, _ZGVdN4v_exp);
  row("log", 1e-300, 1e300, 1, log, logl, Sleef_logd4_u10avx2, _ZGVdN4v_log);
  row("log1p", 1e-10, 1e10, 1, log1p, log1pl, Sleef_log1pd4_u10avx2, _ZGVdN4v_log1p);
  row("sigmoid", -30, 30, 0, sigmoid, sigmoidl, sigmoid_sleef, sigmoid_mvec);
  row("softplus", -30, 30, 0, softplus, softplusl, softplus_sleef, softplus_mvec);
  return 0;
}
