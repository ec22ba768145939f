/*
 * test_runtime.c - unit tests of the runtime (runtime/kernels.c and
 * runtime/tape.c): gemm in all four transpose combinations against a naive
 * triple loop, the vector kernels, the factorisations and solves against
 * the tape's own LU, every tape op's value on a hand example, its
 * gradient, its tangent (forward mode) and its Hessian-vector product
 * (forward-over-reverse) against central finite differences, the
 * broadcast and accumulation semantics of backward, the errors, and the
 * numerically delicate cases (softplus(700), logsumexp of [1000 1000]).
 *
 * The tape is matdiff's oracle, so its own gradients are checked only
 * against finite differences, never against the symbolic side.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "matdiff_rt.h"
#include "util.h"

/* ---- shared helpers ----------------------------------------------------- */

static int near(double got, double want, double tol) {
  return fabs(got - want) <= tol * fmax(1.0, fabs(want));
}

static void expect_values(const mdrt_tape *t, int h, long r, long c, const double *want) {
  cr_assert_geq(h, 0, "op failed: %s", mdrt_tape_error(t));
  cr_assert_eq(mdrt_tape_rows(t, h), r, "rows: got %ld, want %ld", mdrt_tape_rows(t, h), r);
  cr_assert_eq(mdrt_tape_cols(t, h), c, "cols: got %ld, want %ld", mdrt_tape_cols(t, h), c);
  const double *v = mdrt_tape_value(t, h);
  for (long i = 0; i < r * c; i++)
    cr_expect(near(v[i], want[i], 1e-12), "element %ld: got %.17g, want %.17g", i, v[i],
              want[i]);
}

static void expect_grad(const mdrt_tape *t, int h, long n, const double *want) {
  const double *g = mdrt_tape_grad(t, h);
  cr_assert_not_null(g, "handle %d has no gradient", h);
  for (long i = 0; i < n; i++)
    cr_expect(near(g[i], want[i], 1e-12), "grad %ld: got %.17g, want %.17g", i, g[i],
              want[i]);
}

static void expect_error(const mdrt_tape *t, int h, const char *want) {
  cr_expect_eq(h, -1, "expected failure \"%s\", got handle %d", want, h);
  cr_expect(strstr(mdrt_tape_error(t), want), "error \"%s\" lacks \"%s\"", mdrt_tape_error(t),
            want);
}

/* ---- kernels: gemm ------------------------------------------------------ */

// C = alpha*op(A)*op(B) + beta*C, straight from the definition.
static void naive_gemm(int ta, int tb, long m, long n, long k, double alpha, const double *A,
                       const double *B, double beta, double *C) {
  for (long i = 0; i < m; i++)
    for (long j = 0; j < n; j++) {
      double s = 0.0;
      for (long p = 0; p < k; p++)
        s += (ta ? A[p * m + i] : A[i * k + p]) * (tb ? B[j * k + p] : B[p * n + j]);
      C[i * n + j] = alpha * s + (beta == 0.0 ? 0.0 : beta * C[i * n + j]);
    }
}

// Every flag combination and beta in {0, 1}, in both precisions; with beta
// 0, C starts as NaN, which must not leak into the result.
static void check_gemm(long m, long n, long k) {
  Rng g = {(uint64_t)(m * 10007 + n * 101 + k)};
  double *A = calloc((size_t)(m * k), sizeof(double));
  double *B = calloc((size_t)(k * n), sizeof(double));
  double *C = calloc((size_t)(m * n), sizeof(double));
  double *D = calloc((size_t)(m * n), sizeof(double));
  float *Af = calloc((size_t)(m * k), sizeof(float)), *Bf = calloc((size_t)(k * n), sizeof(float));
  float *Cf = calloc((size_t)(m * n), sizeof(float));
  cr_assert(A && B && C && D && Af && Bf && Cf);
  for (long i = 0; i < m * k; i++)
    Af[i] = (float)(A[i] = uniform(&g, -1, 1));
  for (long i = 0; i < k * n; i++)
    Bf[i] = (float)(B[i] = uniform(&g, -1, 1));
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++)
      for (int beta = 0; beta < 2; beta++) {
        for (long i = 0; i < m * n; i++)
          C[i] = D[i] = beta ? uniform(&g, -1, 1) : NAN;
        for (long i = 0; i < m * n; i++)
          Cf[i] = (float)C[i];
        mdrt_gemm(ta, tb, m, n, k, 1.5, A, B, beta, C);
        mdrt_gemm_f(ta, tb, m, n, k, 1.5f, Af, Bf, (float)beta, Cf);
        naive_gemm(ta, tb, m, n, k, 1.5, A, B, beta, D);
        for (long i = 0; i < m * n; i++) {
          cr_expect(near(C[i], D[i], 1e-12), "%ldx%ldx%ld ta=%d tb=%d beta=%d [%ld]: %g vs %g",
                    m, n, k, ta, tb, beta, i, C[i], D[i]);
          cr_expect(near(Cf[i], D[i], 1e-5), "float %ldx%ldx%ld ta=%d tb=%d beta=%d [%ld]", m, n,
                    k, ta, tb, beta, i);
        }
      }
  free(A), free(B), free(C), free(D);
  free(Af), free(Bf), free(Cf);
}

Test(kernels, gemm_transposes) {
  check_gemm(5, 7, 3);
  check_gemm(1, 1, 1);
  check_gemm(4, 1, 6);
  check_gemm(70, 67, 130);  // crosses the portable kernel's 64-wide tiles
}

// One row or one column: mdrt_gemm hands these to gemv.
Test(kernels, gemm_vector_shapes) {
  check_gemm(1, 5, 3);
  check_gemm(4, 1, 3);
  check_gemm(1, 1, 4);
  check_gemm(3, 1, 1);
  check_gemm(1, 4, 1);
}

// Float sums are pairwise: a million numbers keep float's precision, where
// a running float sum of numbers alike drifts by 1e-3 relative. Summed
// block by block through the cascade, they come out the same to the bit.
Test(kernels, float_sums_keep_precision) {
  enum { N = 1000000 };
  static float x[N];
  Rng g = {fnv1a("float sums")};
  double sum = 0, sumsq = 0;
  for (long i = 0; i < N; i++) {
    x[i] = (float)uniform(&g, 0.1, 0.101);  // alike: a running sum drifts
    sum += x[i];
    sumsq += (double)x[i] * x[i];
  }
  cr_expect(fabs(mdrt_sum_f(N, x) - sum) < 1e-6 * sum, "%.9g vs %.9g", mdrt_sum_f(N, x), sum);
  cr_expect(fabs(mdrt_sumsq_f(N, x) - sumsq) < 1e-6 * sumsq, "%.9g vs %.9g", mdrt_sumsq_f(N, x),
            sumsq);
  float naive = 0;
  for (long i = 0; i < N; i++)
    naive += x[i];
  cr_expect(fabs(naive - sum) > 1e-4 * sum, "the test's premise: %.9g vs %.9g", naive, sum);
  // Block by block through the cascade, as emitted loops sum: the same bits.
  for (long n = 0; n < 3000; n = 2 * n + 37) {
    float acc[64];
    long k = 0;
    for (long i = 0; i < n; i += 256, k++)
      mdrt_cascade_f(acc, k, mdrt_sum_f(n - i < 256 ? n - i : 256, x + i));
    cr_expect_eq(mdrt_cascade_total_f(acc, k), mdrt_sum_f(n, x), "n = %ld", n);
  }
  float acc[64];
  long k = 0;
  for (long i = 0; i < 5000; i += 256, k++)
    mdrt_cascade_f(acc, k, mdrt_sumsq_f(5000 - i < 256 ? 5000 - i : 256, x + i));
  cr_expect_eq(mdrt_cascade_total_f(acc, k), mdrt_sumsq_f(5000, x));
}

Test(kernels, gemm_empty_sizes) {
  double C[6] = {NAN, NAN, NAN, NAN, NAN, NAN}, A[1] = {NAN}, B[1] = {NAN};
  mdrt_gemm(0, 0, 2, 3, 0, 1.0, A, B, 0.0, C);  // k = 0, beta = 0: zeros
  for (int i = 0; i < 6; i++)
    cr_expect_eq(C[i], 0.0);
  double D[4] = {1, 2, 3, 4};
  mdrt_gemm(1, 1, 2, 2, 0, 1.0, A, B, 2.0, D);  // k = 0: D = 2 D
  cr_expect(D[0] == 2 && D[1] == 4 && D[2] == 6 && D[3] == 8);
  mdrt_gemm(0, 0, 0, 2, 2, 1.0, A, B, 0.0, D);  // m = 0: nothing to write
  mdrt_gemm(0, 0, 2, 0, 2, 1.0, A, B, 0.0, D);  // n = 0: likewise
  cr_expect(D[0] == 2 && D[3] == 8);
}

// syrk is gemm of A with itself, and the products with diag(v) are gemm
// with the dense diagonal matrix, in both precisions.
Test(kernels, syrk_and_diagonal_scalings) {
  enum { N = 70, K = 5 };  // past OpenBLAS's small-matrix paths
  static double A[N * K], C[N * N], W[N * N], D[N * N], v[N], X[N * K];
  static float Af[N * K], Cf[N * N], vf[N], Xf[N * K];
  Rng g = {fnv1a("syrk")};
  for (int i = 0; i < N * K; i++)
    Af[i] = (float)(A[i] = uniform(&g, -1, 1));
  for (int i = 0; i < N; i++)
    vf[i] = (float)(v[i] = uniform(&g, -1, 1));
  for (int trans = 0; trans < 2; trans++) {
    long n = trans ? K : N, k = trans ? N : K;
    for (long i = 0; i < n * n; i++)
      C[i] = W[i] = (double)(i / n + i % n);  // symmetric, for beta
    mdrt_syrk(trans, n, k, 0.5, A, 2.0, C);
    naive_gemm(trans, !trans, n, n, k, 0.5, A, A, 2.0, W);
    for (long i = 0; i < n * n; i++) {
      cr_expect(near(C[i], W[i], 1e-13), "syrk trans=%d [%ld]", trans, i);
      cr_expect_eq(C[i], C[(i % n) * n + i / n], "symmetric");
    }
    mdrt_syrk_f(trans, n, k, 1.0f, Af, 0.0f, Cf);
    naive_gemm(trans, !trans, n, n, k, 1.0, A, A, 0.0, W);
    for (long i = 0; i < n * n; i++)
      cr_expect(near(Cf[i], W[i], 1e-5), "syrk_f trans=%d [%ld]", trans, i);
  }
  for (int cols = 0; cols < 2; cols++) {
    long r = cols ? K : N, c = cols ? N : K, m = cols ? c : r;
    for (long i = 0; i < m * m; i++)
      D[i] = i % (m + 1) ? 0 : v[i / m];
    for (long i = 0; i < r * c; i++)
      X[i] = W[i] = (double)i;
    naive_gemm(0, 0, r, c, cols ? c : r, 3.0, cols ? A : D, cols ? D : A, -1.0, W);
    (cols ? mdrt_scale_cols : mdrt_scale_rows)(r, c, 3.0, v, A, -1.0, X);
    for (long i = 0; i < r * c; i++)
      cr_expect(near(X[i], W[i], 1e-15), "scale %s [%ld]", cols ? "cols" : "rows", i);
    memcpy(X, A, sizeof A);  // in place, beta = 0 ignoring NaN
    (cols ? mdrt_scale_cols : mdrt_scale_rows)(r, c, 3.0, v, X, 0.0, X);
    for (long i = 0; i < r * c; i++)
      W[i] = NAN;
    naive_gemm(0, 0, r, c, cols ? c : r, 3.0, cols ? A : D, cols ? D : A, 0.0, W);
    for (long i = 0; i < r * c; i++)
      cr_expect(near(X[i], W[i], 1e-15), "in place %s [%ld]", cols ? "cols" : "rows", i);
    memcpy(Xf, Af, sizeof Af);
    (cols ? mdrt_scale_cols_f : mdrt_scale_rows_f)(r, c, 3.0f, vf, Xf, 0.0f, Xf);
    for (long i = 0; i < r * c; i++)
      cr_expect(near(Xf[i], W[i], 1e-5), "float %s [%ld]", cols ? "cols" : "rows", i);
  }
}

/* ---- kernels: vectors, workspace, LU ------------------------------------ */

// add_bcast and sum_axis against sums worked by hand, in both precisions.
Test(kernels, broadcast_and_axis_sums) {
  const double X[6] = {1, 2, 3, 4, 5, 6};  // 2 x 3
  const double r[2] = {10, 20}, c[3] = {100, 200, 300};
  double Y[6], s[3];
  mdrt_add_bcast(1, 2, 3, 1.0, X, -1.0, r, Y);  // X - r along the rows
  const double want_rows[6] = {-9, -8, -7, -16, -15, -14};
  for (int i = 0; i < 6; i++)
    cr_expect_eq(Y[i], want_rows[i], "rows [%d]: %g", i, Y[i]);
  mdrt_add_bcast(0, 2, 3, -1.0, X, 1.0, c, Y);  // c' - X along the columns
  const double want_cols[6] = {99, 198, 297, 96, 195, 294};
  for (int i = 0; i < 6; i++)
    cr_expect_eq(Y[i], want_cols[i], "cols [%d]: %g", i, Y[i]);
  const double neg0[3] = {-0.0, -0.0, -0.0};
  mdrt_add_bcast(0, 2, 3, 0.0, NULL, 1.0, neg0, Y);  // no X: the vector, -0 kept
  for (int i = 0; i < 6; i++)
    cr_expect(Y[i] == 0 && signbit(Y[i]), "no X [%d]: %g", i, Y[i]);
  mdrt_add_bcast(1, 2, 3, 0.0, NULL, 2.0, r, Y);  // no X, along the rows: 2r
  for (int i = 0; i < 6; i++)
    cr_expect_eq(Y[i], i < 3 ? 20 : 40, "no X, rows [%d]: %g", i, Y[i]);
  mdrt_sum_axis(1, 2, 3, X, s);
  cr_expect(s[0] == 5 && s[1] == 7 && s[2] == 9, "columns: %g %g %g", s[0], s[1], s[2]);
  mdrt_sum_axis(2, 2, 3, X, s);
  cr_expect(s[0] == 6 && s[1] == 15, "rows: %g %g", s[0], s[1]);
  const float Xf[6] = {1, 2, 3, 4, 5, 6}, cf[3] = {100, 200, 300};
  float Yf[6], sf[3];
  mdrt_add_bcast_f(0, 2, 3, 1.0f, Xf, 2.0f, cf, Yf);
  cr_expect(Yf[0] == 201 && Yf[5] == 606, "float: %g %g", Yf[0], Yf[5]);
  mdrt_sum_axis_f(1, 2, 3, Xf, sf);
  cr_expect(sf[0] == 5 && sf[2] == 9, "float columns: %g %g", sf[0], sf[2]);
}

Test(kernels, vector_ops) {
  double x[3] = {1, -2, 3}, y[3] = {NAN, NAN, NAN};
  mdrt_axpby(3, 2.0, x, 0.0, y);  // b = 0: y is output only
  cr_expect(y[0] == 2 && y[1] == -4 && y[2] == 6);
  mdrt_axpby(3, 1.0, x, -1.0, y);
  cr_expect(y[0] == -1 && y[1] == 2 && y[2] == -3);
  mdrt_copy(3, x, y);
  cr_expect(y[0] == 1 && y[1] == -2 && y[2] == 3);
  mdrt_fill(3, 7.0, y);
  cr_expect(y[0] == 7 && y[1] == 7 && y[2] == 7);
  cr_expect_eq(mdrt_sum(3, x), 2.0);
  cr_expect_eq(mdrt_sumsq(3, x), 14.0);
  cr_expect_eq(mdrt_dot(3, x, y), 14.0);
  cr_expect_eq(mdrt_sum(0, NULL), 0.0);
  // tanh's gradient g.*(1 - h.^2), worked by hand; y may be g.
  double g[3] = {2, -1, 4}, h[3] = {0.5, -0.25, 1};
  mdrt_tanh_grad(3, g, h, y);
  cr_expect(y[0] == 1.5 && y[1] == -0.9375 && y[2] == 0, "%g %g %g", y[0], y[1], y[2]);
  mdrt_tanh_grad(3, g, h, g);
  cr_expect(g[0] == 1.5 && g[1] == -0.9375 && g[2] == 0, "in place: %g %g %g", g[0], g[1], g[2]);
  const float gf[2] = {2, -1}, hf[2] = {0.5f, -0.25f};
  float yf[2];
  mdrt_tanh_grad_f(2, gf, hf, yf);
  cr_expect(yf[0] == 1.5f && yf[1] == -0.9375f, "float: %g %g", yf[0], yf[1]);
}

Test(kernels, axpby_t) {
  double X[6] = {1, 2, 3, 4, 5, 6};  // 2 x 3, so Y is 3 x 2
  double Y[6] = {NAN, NAN, NAN, NAN, NAN, NAN};
  mdrt_axpby_t(3, 2, 1.0, X, 0.0, Y);
  double want[6] = {1, 4, 2, 5, 3, 6};
  for (int i = 0; i < 6; i++)
    cr_expect_eq(Y[i], want[i]);
  mdrt_axpby_t(3, 2, 2.0, X, -1.0, Y);  // Y = 2 X' - X' = X'
  for (int i = 0; i < 6; i++)
    cr_expect_eq(Y[i], want[i]);
}

Test(kernels, alloc) {
  void *p = mdrt_alloc(0);
  cr_expect_not_null(p, "0 bytes must still give a pointer");
  mdrt_free(p);
  cr_expect_null(mdrt_alloc(-1));
  double *q = mdrt_alloc(4 * sizeof(double));
  cr_assert_not_null(q);
  q[3] = 1.0;
  mdrt_free(q);
  mdrt_free(NULL);
}

Test(kernels, lu_inverse_and_det) {
  double A[9] = {0, 2, 1, 1, 1, 0, 3, 0, 1};  // a zero first pivot forces a swap
  double inv[9], det, ld, P[9];
  cr_assert_eq(mdrt_lu_inv(3, A, inv, &det), 0);
  cr_expect(near(det, -5.0, 1e-14), "det %.17g", det);
  mdrt_gemm(0, 0, 3, 3, 3, 1.0, A, inv, 0.0, P);
  for (int i = 0; i < 9; i++)
    cr_expect(near(P[i], i % 4 == 0 ? 1.0 : 0.0, 1e-14), "A*inv(A) [%d] = %g", i, P[i]);
  cr_assert_eq(mdrt_logdet(3, A, &ld), 0);
  cr_expect(near(ld, log(5.0), 1e-14));
  double B[9];
  memcpy(B, A, sizeof B);
  cr_assert_eq(mdrt_lu_inv(3, B, B, NULL), 0);  // in place
  for (int i = 0; i < 9; i++)
    cr_expect(near(B[i], inv[i], 1e-15));
  cr_expect_eq(mdrt_lu_inv(0, NULL, NULL, &det), 0);
  cr_expect_eq(det, 1.0);
}

Test(kernels, lu_singular) {
  double S[4] = {1, 2, 2, 4}, out[4], det = -1, ld;
  cr_expect_eq(mdrt_lu_inv(2, S, out, &det), -1);
  cr_expect_eq(det, 0.0);
  cr_expect_eq(mdrt_logdet(2, S, &ld), -1);
  double N[4] = {1, NAN, 0, 1};
  cr_expect_eq(mdrt_lu_inv(2, N, NULL, &det), -1);
  cr_expect(isnan(det));
  double I[4] = {INFINITY, 0, 0, 1};
  cr_expect_eq(mdrt_logdet(2, I, &ld), -1);
}

/* ---- kernels: elementwise functions on blocks ---------------------------- */

// Every elementwise function of the op table, from its line: a function
// without its block kernel mdrt_v<f> fails to compile here.
static const struct {
  const char *name;
  double (*d)(double);
  float (*f)(float);
  void (*vd)(long, const double *, double *);
  void (*vf)(long, const float *, float *);
} VFNS[] = {
#define OP(...)
#define MAP(name, spelling, cfn, ...) cfn
#define LIBM(d, f) {#d, d, f, mdrt_v##d, mdrt_v##d##_f},
#define RT(n) {#n, mdrt_##n, mdrt_##n##_f, mdrt_v##n, mdrt_v##n##_f},
#include "ops.h"
#undef LIBM
#undef RT
};

// How many ulps of WANT apart GOT is; 0 for equal values (infinities,
// zeros of either sign, two NaNs), infinity where one is NaN or infinite
// and the other not.
static double ulps(double got, double want, double ulp_of_one) {
  if (got == want || (isnan(got) && isnan(want)))
    return 0;
  if (!isfinite(got) || !isfinite(want))
    return INFINITY;
  // The ulp of WANT, not below that of the smallest normal number.
  double u = fmax(ulp_of_one * fabs(want), ulp_of_one * (ulp_of_one == DBL_EPSILON ? DBL_MIN : FLT_MIN));
  return fabs(got - want) / u;
}

/* libmvec promises 4 ulp from the exact result and glibc's scalar
   functions about 2 (tanh), so the block kernels must stay within 6 ulp of
   the scalar function, at wide arguments, at the special values, and at
   every length of a last partial block. */
Test(kernels, elementwise_on_blocks) {
  enum { N = 4099 };
  static double x[N], y[N];
  static float xf[N], yf[N];
  Rng g = {fnv1a("elementwise on blocks")};
  static const double special[] = {0.0, -0.0, 1, -1, 0.5, -0.5, INFINITY, -INFINITY, NAN,
                                   700, -700, 710, -745, 1e-310, -1e-310, 1e300, -1e300,
                                   88, -88, 89, -104, 1e-40, 3.4e38};
  for (size_t k = 0; k < sizeof VFNS / sizeof *VFNS; k++) {
    size_t ns = sizeof special / sizeof *special;
    for (long i = 0; i < N; i++) {
      double r = uniform(&g, 0, 1);
      x[i] = i < (long)ns     ? special[i]
             : i % 3 == 0     ? uniform(&g, -30, 30)
             : i % 3 == 1     ? uniform(&g, -1, 1)
                              : (r < 0.5 ? -1 : 1) * exp(uniform(&g, -700, 700));
      xf[i] = (float)x[i];
    }
    double worst = 0, worstf = 0;
    long at = 0, atf = 0;
    static const long lengths[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, N};  // every tail
    for (size_t l = 0; l < sizeof lengths / sizeof *lengths; l++) {
      long n = lengths[l];
      VFNS[k].vd(n, x, y);
      VFNS[k].vf(n, xf, yf);
      for (long i = 0; i < n; i++) {
        double e = ulps(y[i], VFNS[k].d(x[i]), DBL_EPSILON);
        double ef = ulps(yf[i], VFNS[k].f(xf[i]), FLT_EPSILON);
        if (e > worst)
          worst = e, at = i;
        if (ef > worstf)
          worstf = ef, atf = i;
      }
    }
    cr_expect(worst <= 6, "mdrt_v%s: %g ulp at x = %.17g: %.17g, scalar %.17g", VFNS[k].name,
              worst, x[at], (VFNS[k].vd(N, x, y), y[at]), VFNS[k].d(x[at]));
    cr_expect(worstf <= 6, "mdrt_v%s_f: %g ulp at x = %.9g: %.9g, scalar %.9g", VFNS[k].name,
              worstf, xf[atf], (VFNS[k].vf(N, xf, yf), yf[atf]), VFNS[k].f(xf[atf]));
    memcpy(y, x, sizeof x);  // in place
    VFNS[k].vd(N, y, y);
    for (long i = 0; i < N; i++)
      cr_assert(ulps(y[i], VFNS[k].d(x[i]), DBL_EPSILON) <= 6, "in place: mdrt_v%s", VFNS[k].name);
  }
  // softplus and sigmoid from one exp.
  static double sp[N], sg[N];
  mdrt_vsoftplus_sigmoid(N, x, sp, sg);
  for (long i = 0; i < N; i++)
    cr_assert(ulps(sp[i], mdrt_softplus(x[i]), DBL_EPSILON) <= 6 &&
                  ulps(sg[i], mdrt_sigmoid(x[i]), DBL_EPSILON) <= 6,
              "softplus_sigmoid at %.17g: %.17g %.17g", x[i], sp[i], sg[i]);
  static float spf[N], sgf[N];
  mdrt_vsoftplus_sigmoid_f(N, xf, spf, sgf);
  for (long i = 0; i < N; i++)
    cr_assert(ulps(spf[i], mdrt_softplus_f(xf[i]), FLT_EPSILON) <= 6 &&
                  ulps(sgf[i], mdrt_sigmoid_f(xf[i]), FLT_EPSILON) <= 6,
              "softplus_sigmoid_f at %.9g", xf[i]);
}

/* ---- kernels: factorisations against the tape's own LU ------------------ */

// The tape's value of OP applied to the n x n matrix A, into OUT.
static void tape_op(mdrt_op op, long n, const double *A, double *out) {
  mdrt_tape *t = mdrt_tape_new();
  int a = mdrt_tape_leaf(t, n, n, A);
  int y = mdrt_tape_unary(t, op, a, 0);
  cr_assert_geq(y, 0, "tape: %s", mdrt_tape_error(t));
  memcpy(out, mdrt_tape_value(t, y), sizeof(double) * (size_t)(op == MDRT_INV ? n * n : 1));
  mdrt_tape_free(t);
}

// max|got - want| / max(1, max|want|) over LEN numbers.
static double max_rel(long len, const double *got, const double *want) {
  double d = 0, w = 1;
  for (long i = 0; i < len; i++) {
    d = fmax(d, fabs(got[i] - want[i]));
    w = fmax(w, fabs(want[i]));
  }
  return d / w;
}

// X = op(inv)*B or B*op(inv) through gemm, from the tape's inverse.
static void by_inverse(int right, int trans, long n, long m, const double *inv, const double *B,
                       double *X) {
  if (right)
    mdrt_gemm(0, trans, m, n, n, 1.0, B, inv, 0.0, X);
  else
    mdrt_gemm(trans, 0, n, m, n, 1.0, inv, B, 0.0, X);
}

typedef struct {
  int (*solve)(int trans, long n, long m, const double *F, const double *B, double *X);
  int (*solve_right)(int trans, long m, long n, const double *F, const double *B, double *X);
} Solves;

static int chol_solve_t(int trans, long n, long m, const double *F, const double *B, double *X) {
  (void)trans;  // A' = A
  return mdrt_chol_solve(n, m, F, B, X);
}
static int chol_solve_right_t(int trans, long m, long n, const double *F, const double *B,
                              double *X) {
  (void)trans;
  return mdrt_chol_solve_right(m, n, F, B, X);
}

// Every solve of F's matrix, out of place and in place, against the tape's
// inverse times B.
static void check_solves(Solves s, long n, const double *F, const double *inv, Rng *g) {
  enum { M = 3 };
  double *B = malloc(sizeof(double) * (size_t)(n * M)), *X = malloc(sizeof(double) * (size_t)(n * M));
  double *W = malloc(sizeof(double) * (size_t)(n * M));
  for (long i = 0; i < n * M; i++)
    B[i] = uniform(g, -1, 1);
  for (int right = 0; right < 2; right++)
    for (int trans = 0; trans < 2; trans++) {
      by_inverse(right, trans, n, M, inv, B, W);
      int rc = right ? s.solve_right(trans, M, n, F, B, X) : s.solve(trans, n, M, F, B, X);
      cr_expect_eq(rc, 0);
      cr_expect(max_rel(n * M, X, W) < 1e-10, "n=%ld right=%d trans=%d: %g", n, right, trans,
                max_rel(n * M, X, W));
      memcpy(X, B, sizeof(double) * (size_t)(n * M));
      rc = right ? s.solve_right(trans, M, n, F, X, X) : s.solve(trans, n, M, F, X, X);
      cr_expect(rc == 0 && max_rel(n * M, X, W) < 1e-10, "in place: n=%ld right=%d trans=%d", n,
                right, trans);
    }
  free(B), free(X), free(W);
}

// The sizes go past LAPACK's block of 64, so that the blocked paths run.
static const long SIZES[] = {1, 2, 3, 7, 33, 130};

Test(kernels, lu_against_tape) {
  Rng g = {fnv1a("lu_against_tape")};
  for (size_t k = 0; k < sizeof SIZES / sizeof *SIZES; k++) {
    long n = SIZES[k];
    double *A = malloc(sizeof(double) * (size_t)(n * n)), *F = malloc(sizeof(double) * (size_t)(n * n + n));
    double *inv = malloc(sizeof(double) * (size_t)(n * n)), *got = malloc(sizeof(double) * (size_t)(n * n));
    for (long i = 0; i < n * n; i++)
      A[i] = uniform(&g, -1, 1);  // pivoting happens
    double det, ld;
    tape_op(MDRT_DET, n, A, &det);
    tape_op(MDRT_LOGDET, n, A, &ld);
    tape_op(MDRT_INV, n, A, inv);
    cr_assert_eq(mdrt_lu(n, A, F), 0, "n=%ld", n);
    cr_expect(near(mdrt_lu_det(n, F), det, 1e-10), "det n=%ld: %.17g, tape %.17g", n,
              mdrt_lu_det(n, F), det);
    cr_expect(near(mdrt_lu_logdet(n, F), ld, 1e-12), "logdet n=%ld", n);
    cr_assert_eq(mdrt_lu_inverse(n, F, got), 0);
    cr_expect(max_rel(n * n, got, inv) < 1e-10, "inverse n=%ld: %g", n, max_rel(n * n, got, inv));
    check_solves((Solves){mdrt_lu_solve, mdrt_lu_solve_right}, n, F, inv, &g);
    // A may be F.
    memcpy(F, A, sizeof(double) * (size_t)(n * n));
    cr_expect(mdrt_lu(n, F, F) == 0 && near(mdrt_lu_det(n, F), det, 1e-10), "in place n=%ld", n);
    free(A), free(F), free(inv), free(got);
  }
}

Test(kernels, chol_against_tape) {
  Rng g = {fnv1a("chol_against_tape")};
  for (size_t k = 0; k < sizeof SIZES / sizeof *SIZES; k++) {
    long n = SIZES[k];
    double *M = malloc(sizeof(double) * (size_t)(n * n)), *A = malloc(sizeof(double) * (size_t)(n * n));
    double *F = malloc(sizeof(double) * (size_t)(n * n)), *inv = malloc(sizeof(double) * (size_t)(n * n));
    double *got = malloc(sizeof(double) * (size_t)(n * n));
    for (long i = 0; i < n * n; i++)
      M[i] = uniform(&g, -1, 1);
    mdrt_gemm(0, 1, n, n, n, 1.0, M, M, 0.0, A);  // A = M*M' + I
    for (long i = 0; i < n; i++)
      A[i * n + i] += 1;
    double det, ld;
    tape_op(MDRT_DET, n, A, &det);
    tape_op(MDRT_LOGDET, n, A, &ld);
    tape_op(MDRT_INV, n, A, inv);
    // Only the upper triangle is read: another lower one changes nothing.
    memcpy(got, A, sizeof(double) * (size_t)(n * n));
    for (long i = 0; i < n; i++)
      for (long j = 0; j < i; j++)
        got[i * n + j] = 1e3 + (double)j;
    cr_assert_eq(mdrt_chol(n, got, F), 0, "n=%ld", n);
    cr_expect(near(mdrt_chol_det(n, F), det, 1e-10), "det n=%ld", n);
    cr_expect(near(mdrt_chol_logdet(n, F), ld, 1e-12), "logdet n=%ld", n);
    // R'*R = A, R the upper triangle.
    double err = 0;
    for (long i = 0; i < n; i++)
      for (long j = 0; j < n; j++) {
        double s = 0;
        for (long p = 0; p <= i && p <= j; p++)
          s += F[p * n + i] * F[p * n + j];
        err = fmax(err, fabs(s - A[i * n + j]) / fmax(1, fabs(A[i * n + j])));
      }
    cr_expect(err < 1e-12, "R'R = A, n=%ld: %g", n, err);
    cr_assert_eq(mdrt_chol_inverse(n, F, got), 0);
    cr_expect(max_rel(n * n, got, inv) < 1e-10, "inverse n=%ld: %g", n, max_rel(n * n, got, inv));
    long asym = 0;
    for (long i = 0; i < n; i++)
      for (long j = 0; j < i; j++)
        asym += got[i * n + j] != got[j * n + i];
    cr_expect_eq(asym, 0, "inverse symmetric n=%ld", n);
    check_solves((Solves){chol_solve_t, chol_solve_right_t}, n, F, inv, &g);
    free(M), free(A), free(F), free(inv), free(got);
  }
}

// The float twins against the double kernels, at float's precision.
Test(kernels, factorisations_in_float) {
  enum { N = 7, M = 2 };
  Rng g = {fnv1a("factorisations_in_float")};
  double A[N * N], S[N * N], F[N * N + N], inv[N * N], B[N * M], X[N * M];
  float Af[N * N], Sf[N * N], Ff[N * N + N], invf[N * N], Bf[N * M], Xf[N * M];
  for (int i = 0; i < N * N; i++)
    Af[i] = (float)(A[i] = uniform(&g, -1, 1));
  mdrt_gemm(0, 1, N, N, N, 1.0, A, A, 0.0, S);
  for (int i = 0; i < N * N; i++)
    Sf[i] = (float)(S[i] += i % (N + 1) == 0);
  for (int i = 0; i < N * M; i++)
    Bf[i] = (float)(B[i] = uniform(&g, -1, 1));
  for (int c = 0; c < 2; c++) {
    int ok = c ? mdrt_chol(N, S, F) == 0 && mdrt_chol_f(N, Sf, Ff) == 0
               : mdrt_lu(N, A, F) == 0 && mdrt_lu_f(N, Af, Ff) == 0;
    cr_assert(ok);
    double det = c ? mdrt_chol_logdet(N, F) : mdrt_lu_logdet(N, F);
    float detf = c ? mdrt_chol_logdet_f(N, Ff) : mdrt_lu_logdet_f(N, Ff);
    cr_expect(near(detf, det, 1e-4), "logdet %d: %g, %g", c, detf, det);
    cr_expect(near(c ? mdrt_chol_det_f(N, Ff) : mdrt_lu_det_f(N, Ff),
                   c ? mdrt_chol_det(N, F) : mdrt_lu_det(N, F), 1e-4));
    cr_assert_eq(c ? mdrt_chol_inverse(N, F, inv) : mdrt_lu_inverse(N, F, inv), 0);
    cr_assert_eq(c ? mdrt_chol_inverse_f(N, Ff, invf) : mdrt_lu_inverse_f(N, Ff, invf), 0);
    for (int i = 0; i < N * N; i++)
      cr_expect(near(invf[i], inv[i], 1e-3), "inverse %d [%d]", c, i);
    for (int right = 0; right < 2; right++) {
      if (c)
        cr_assert(right ? !mdrt_chol_solve_right(M, N, F, B, X) && !mdrt_chol_solve_right_f(M, N, Ff, Bf, Xf)
                        : !mdrt_chol_solve(N, M, F, B, X) && !mdrt_chol_solve_f(N, M, Ff, Bf, Xf));
      else
        cr_assert(right ? !mdrt_lu_solve_right(1, M, N, F, B, X) && !mdrt_lu_solve_right_f(1, M, N, Ff, Bf, Xf)
                        : !mdrt_lu_solve(1, N, M, F, B, X) && !mdrt_lu_solve_f(1, N, M, Ff, Bf, Xf));
      for (int i = 0; i < N * M; i++)
        cr_expect(near(Xf[i], X[i], 1e-3), "solve %d %d [%d]", c, right, i);
    }
  }
}

Test(kernels, factorisations_refuse) {
  double F[6], S[4] = {1, 2, 2, 4};
  cr_expect_eq(mdrt_lu(2, S, F), -1, "singular");
  cr_expect_eq(mdrt_lu_det(2, F), 0.0, "an exact zero pivot");
  cr_expect_eq(mdrt_chol(2, S, F), -1, "semidefinite");
  cr_expect_eq(mdrt_chol(2, (double[]){1, 2, 2, 1}, F), -1, "indefinite");
  cr_expect_eq(mdrt_lu(2, (double[]){1, NAN, 0, 1}, F), -1, "NaN");
  cr_expect_eq(mdrt_chol(2, (double[]){1, 0, 0, INFINITY}, F), -1, "infinity");
  cr_expect_eq(mdrt_lu(0, NULL, F), 0);
  cr_expect_eq(mdrt_lu_det(0, F), 1.0);
  cr_expect_eq(mdrt_lu_logdet(0, F), 0.0);
  cr_expect_eq(mdrt_chol(0, NULL, F), 0);
}

/* ---- tape: values ------------------------------------------------------- */

static const double X23[6] = {1, 2, 3, 4, 5, 6};  // [1 2 3; 4 5 6]

Test(tape_values, reductions) {
  mdrt_tape *t = mdrt_tape_new();
  int x = mdrt_tape_leaf(t, 2, 3, X23);
  expect_values(t, mdrt_tape_unary(t, MDRT_SUM, x, 0), 1, 1, (double[]){21});
  expect_values(t, mdrt_tape_unary(t, MDRT_SUM, x, 1), 1, 3, (double[]){5, 7, 9});
  expect_values(t, mdrt_tape_unary(t, MDRT_SUM, x, 2), 2, 1, (double[]){6, 15});
  expect_values(t, mdrt_tape_unary(t, MDRT_MEAN, x, 0), 1, 1, (double[]){3.5});
  expect_values(t, mdrt_tape_unary(t, MDRT_MEAN, x, 1), 1, 3, (double[]){2.5, 3.5, 4.5});
  expect_values(t, mdrt_tape_unary(t, MDRT_MEAN, x, 2), 2, 1, (double[]){2, 5});
  expect_values(t, mdrt_tape_unary(t, MDRT_SUMSQ, x, 0), 1, 1, (double[]){91});
  expect_values(t, mdrt_tape_unary(t, MDRT_NORM2, x, 0), 1, 1, (double[]){sqrt(91.0)});
  int n = mdrt_tape_unary(t, MDRT_NEG, x, 0);
  expect_values(t, n, 2, 3, (double[]){-1, -2, -3, -4, -5, -6});
  expect_values(t, mdrt_tape_unary(t, MDRT_NORM1, n, 0), 1, 1, (double[]){21});
  expect_values(t, mdrt_tape_unary(t, MDRT_TRANSPOSE, x, 0), 3, 2,
                (double[]){1, 4, 2, 5, 3, 6});
  mdrt_tape_free(t);
}

Test(tape_values, linear_algebra) {
  mdrt_tape *t = mdrt_tape_new();
  int a = mdrt_tape_leaf(t, 2, 2, (double[]){1, 2, 3, 4});
  expect_values(t, mdrt_tape_unary(t, MDRT_TRACE, a, 0), 1, 1, (double[]){5});
  expect_values(t, mdrt_tape_unary(t, MDRT_DET, a, 0), 1, 1, (double[]){-2});
  expect_values(t, mdrt_tape_unary(t, MDRT_LOGDET, a, 0), 1, 1, (double[]){log(2.0)});
  expect_values(t, mdrt_tape_unary(t, MDRT_INV, a, 0), 2, 2, (double[]){-2, 1, 1.5, -0.5});
  expect_values(t, mdrt_tape_unary(t, MDRT_DIAG, a, 0), 2, 1, (double[]){1, 4});
  int v = mdrt_tape_leaf(t, 2, 1, (double[]){7, 8});
  expect_values(t, mdrt_tape_unary(t, MDRT_DIAG, v, 0), 2, 2, (double[]){7, 0, 0, 8});
  expect_values(t, mdrt_tape_binary(t, MDRT_MATMUL, a, v), 2, 1, (double[]){23, 53});
  int f = mdrt_tape_leaf(t, 2, 2, (double[]){1, 1, 1, 0});
  expect_values(t, mdrt_tape_unary(t, MDRT_MPOW, f, 10), 2, 2, (double[]){89, 55, 55, 34});
  expect_values(t, mdrt_tape_unary(t, MDRT_MPOW, f, 1), 2, 2, (double[]){1, 1, 1, 0});
  expect_values(t, mdrt_tape_unary(t, MDRT_MPOW, f, 0), 2, 2, (double[]){1, 0, 0, 1});
  mdrt_tape_free(t);
}

Test(tape_values, elementwise) {
  static const struct {
    const char *fn;
    double (*f)(double);
  } fs[] = {{"exp", exp},       {"log", log},       {"sqrt", sqrt}, {"sin", sin},
            {"cos", cos},       {"tan", tan},       {"tanh", tanh}, {"arcsin", asin},
            {"arccos", acos},   {"arctan", atan},   {"abs", fabs}};
  double x[3] = {0.25, 0.5, 0.75};
  mdrt_tape *t = mdrt_tape_new();
  int h = mdrt_tape_leaf(t, 1, 3, x);
  for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++)
    expect_values(t, mdrt_tape_map(t, fs[i].fn, h), 1, 3,
                  (double[]){fs[i].f(x[0]), fs[i].f(x[1]), fs[i].f(x[2])});
  int s = mdrt_tape_leaf(t, 1, 3, (double[]){-0.75, 0.0, 2.0});
  expect_values(t, mdrt_tape_map(t, "relu", s), 1, 3, (double[]){0, 0, 2});
  expect_values(t, mdrt_tape_map(t, "abs", s), 1, 3, (double[]){0.75, 0, 2});
  expect_values(t, mdrt_tape_map(t, "sign", s), 1, 3, (double[]){-1, 0, 1});
  expect_values(t, mdrt_tape_map(t, "sigmoid", s), 1, 3,
                (double[]){1 / (1 + exp(0.75)), 0.5, 1 / (1 + exp(-2.0))});
  expect_values(t, mdrt_tape_map(t, "softplus", s), 1, 3,
                (double[]){log(1 + exp(-0.75)), log(2.0), log(1 + exp(2.0))});
  cr_expect_eq(mdrt_tape_map(t, "asin", h), -1, "the language spells it arcsin");
  cr_expect_str_eq(mdrt_tape_error(t), "map: no elementwise function 'asin'");
  mdrt_tape_free(t);
}

// The kernels compiled code calls and the tape are one definition: NaN goes
// through each function libm lacks, as in PyTorch (relu and sign too,
// where a comparison alone would give 0).
Test(tape_values, nan_goes_through) {
  static const struct {
    const char *fn;
    double (*kernel)(double);
    float (*kernel_f)(float);
  } fs[] = {{"relu", mdrt_relu, mdrt_relu_f},
            {"sign", mdrt_sign, mdrt_sign_f},
            {"sigmoid", mdrt_sigmoid, mdrt_sigmoid_f},
            {"softplus", mdrt_softplus, mdrt_softplus_f}};
  mdrt_tape *t = mdrt_tape_new();
  int h = mdrt_tape_leaf(t, 1, 1, (double[]){NAN});
  for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++) {
    int y = mdrt_tape_map(t, fs[i].fn, h);
    cr_assert_geq(y, 0, "%s", mdrt_tape_error(t));
    cr_expect(isnan(mdrt_tape_value(t, y)[0]), "%s(NaN) on the tape", fs[i].fn);
    cr_expect(isnan(fs[i].kernel(NAN)), "mdrt_%s(NaN)", fs[i].fn);
    cr_expect(isnan(fs[i].kernel_f(NAN)), "mdrt_%s_f(NaN)", fs[i].fn);
  }
  mdrt_tape_free(t);
}

// The unit direction X/||X||: 0 at 0 (the subgradient of ||X|| there),
// NaN for a NaN anywhere in X, on the tape and in both precisions'
// kernels alike; and ||X||'s gradient at 0 and at NaN is the same.
Test(tape_values, unit_direction) {
  static const struct {
    double x[3], want[3];
  } cases[] = {{{3, 0, -4}, {0.6, 0, -0.8}},
               {{0, 0, 0}, {0, 0, 0}},
               {{-0.0, 0, 0}, {0, 0, 0}},
               {{1, NAN, 0}, {NAN, NAN, NAN}},
               {{1e-200, 0, 0}, {0, 0, 0}}};  // its square underflows: ||x|| is 0 as computed
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    mdrt_tape *t = mdrt_tape_new();
    int x = mdrt_tape_leaf(t, 3, 1, cases[i].x);
    int u = mdrt_tape_unary(t, MDRT_UNIT, x, 0);
    cr_assert_geq(u, 0, "%s", mdrt_tape_error(t));
    cr_assert_eq(mdrt_tape_backward(t, mdrt_tape_unary(t, MDRT_NORM2, x, 0), NULL), 0);
    double y[3];
    float xf[3], yf[3];
    mdrt_unit(3, cases[i].x, y);
    for (int e = 0; e < 3; e++)
      xf[e] = (float)cases[i].x[e];
    mdrt_unit_f(3, xf, yf);
    for (int e = 0; e < 3; e++) {
      double w = cases[i].want[e];
      cr_expect_eq(ulps(mdrt_tape_value(t, u)[e], w, DBL_EPSILON), 0, "case %zu: the tape's %g, want %g",
                   i, mdrt_tape_value(t, u)[e], w);
      cr_expect_eq(ulps(mdrt_tape_grad(t, x)[e], w, DBL_EPSILON), 0,
                   "case %zu: the tape's gradient of ||x|| %g, want %g", i, mdrt_tape_grad(t, x)[e], w);
      cr_expect_eq(ulps(y[e], w, DBL_EPSILON), 0, "case %zu: mdrt_unit %g, want %g", i, y[e], w);
      if (i != 4)  // 1e-200 is 0 in float already
        cr_expect_leq(ulps(yf[e], w, FLT_EPSILON), 1, "case %zu: mdrt_unit_f %g, want %g", i, yf[e], w);
    }
    mdrt_tape_free(t);
  }
}

Test(tape_values, broadcasting) {
  mdrt_tape *t = mdrt_tape_new();
  int x = mdrt_tape_leaf(t, 2, 3, X23);
  int row = mdrt_tape_const(t, 1, 3, (double[]){10, 20, 30});
  int col = mdrt_tape_const(t, 2, 1, (double[]){1, 2});
  int two = mdrt_tape_const(t, 1, 1, (double[]){2});
  expect_values(t, mdrt_tape_binary(t, MDRT_ADD, x, row), 2, 3,
                (double[]){11, 22, 33, 14, 25, 36});
  expect_values(t, mdrt_tape_binary(t, MDRT_SUB, row, x), 2, 3,
                (double[]){9, 18, 27, 6, 15, 24});
  expect_values(t, mdrt_tape_binary(t, MDRT_EMUL, col, x), 2, 3,
                (double[]){1, 2, 3, 8, 10, 12});
  expect_values(t, mdrt_tape_binary(t, MDRT_EDIV, x, two), 2, 3,
                (double[]){0.5, 1, 1.5, 2, 2.5, 3});
  expect_values(t, mdrt_tape_binary(t, MDRT_EPOW, two, x), 2, 3,
                (double[]){2, 4, 8, 16, 32, 64});
  expect_values(t, mdrt_tape_binary(t, MDRT_EPOW, x, two), 2, 3,
                (double[]){1, 4, 9, 16, 25, 36});
  expect_values(t, mdrt_tape_binary(t, MDRT_SUB, x, x), 2, 3, (double[]){0, 0, 0, 0, 0, 0});
  mdrt_tape_free(t);
}

Test(tape_values, softmax_logsumexp) {
  mdrt_tape *t = mdrt_tape_new();
  int x = mdrt_tape_leaf(t, 2, 2, (double[]){0, log(3.0), 1000, 1000});
  expect_values(t, mdrt_tape_unary(t, MDRT_LOGSUMEXP, x, 2), 2, 1,
                (double[]){log(4.0), 1000 + log(2.0)});
  expect_values(t, mdrt_tape_unary(t, MDRT_SOFTMAX, x, 2), 2, 2,
                (double[]){0.25, 0.75, 0.5, 0.5});
  int y = mdrt_tape_leaf(t, 1, 2, (double[]){1000, 1000});
  expect_values(t, mdrt_tape_unary(t, MDRT_LOGSUMEXP, y, 0), 1, 1, (double[]){1000 + log(2.0)});
  mdrt_tape_free(t);
}

/* ---- tape: gradients against finite differences ------------------------- */

// Where each input is drawn from, so that every function is smooth there.
typedef enum {
  ANY,      /* (-2, 2) */
  POS,      /* (0.5, 2): log, sqrt, a base of .^ */
  UNIT,     /* (-0.9, 0.9): asin, acos, tan, matrix powers */
  AWAY,     /* +-(0.2, 2): away from the kinks of relu, abs, sign, norm1 */
  DIAGDOM,  /* (-1, 1) plus +-(n+1) on the diagonal, signs alternating */
} Domain;

enum { MAXN = 64 };  // the most elements of any input or output

typedef struct {
  int n;
  long r[3], c[3];
  Domain dom[3];
} Inputs;

typedef int (*Build)(mdrt_tape *t, const int *leaf, const void *ctx);

static void draw(Rng *g, Domain d, long r, long c, double *x) {
  for (long i = 0; i < r * c; i++) {
    double s = next_u64(g) & 1 ? 1.0 : -1.0;
    x[i] = d == POS    ? uniform(g, 0.5, 2)
           : d == UNIT ? uniform(g, -0.9, 0.9)
           : d == AWAY ? s * uniform(g, 0.2, 2)
           : d == ANY  ? uniform(g, -2, 2)
                       : uniform(g, -1, 1);
  }
  for (long i = 0; d == DIAGDOM && i < r && i < c; i++)
    x[i * c + i] += (i % 2 ? -1.0 : 1.0) * (double)(r + 1);
}

static mdrt_tape *record(const Inputs *in, double x[][MAXN], Build build, const void *ctx,
                         int *out) {
  mdrt_tape *t = mdrt_tape_new();
  cr_assert_not_null(t);
  int leaf[3];
  for (int i = 0; i < in->n; i++)
    leaf[i] = mdrt_tape_leaf(t, in->r[i], in->c[i], x[i]);
  *out = build(t, leaf, ctx);
  cr_assert_geq(*out, 0, "recording failed: %s", mdrt_tape_error(t));
  cr_assert_leq(mdrt_tape_rows(t, *out) * mdrt_tape_cols(t, *out), MAXN);
  return t;
}

// sum(W .* y): the scalar whose finite differences the gradient must match.
static double weighted(const Inputs *in, double x[][MAXN], Build build, const void *ctx,
                       const double *W) {
  int y;
  mdrt_tape *t = record(in, x, build, ctx, &y);
  const double *v = mdrt_tape_value(t, y);
  double f = 0.0;
  for (long i = 0; i < mdrt_tape_rows(t, y) * mdrt_tape_cols(t, y); i++)
    f += W[i] * v[i];
  mdrt_tape_free(t);
  return f;
}

// The gradients of sum(W .* y) at X into GRAD; with V (one direction per
// input), the second-order pass's hvps into HVP and the output's tangent
// (its Jacobian-vector product) into JVP.
static void derivatives(const char *name, const Inputs *in, double x[][MAXN], Build build,
                        const void *ctx, const double *W, double v[][MAXN], double grad[][MAXN],
                        double hvp[][MAXN], double *jvp) {
  int y;
  mdrt_tape *t = record(in, x, build, ctx, &y);
  for (int i = 0; v && i < in->n; i++)
    cr_assert_eq(mdrt_tape_direction(t, i, v[i]), 0, "%s: %s", name, mdrt_tape_error(t));
  int rc = v ? mdrt_tape_backward2(t, y, W) : mdrt_tape_backward(t, y, W);
  cr_assert_eq(rc, 0, "%s: %s", name, mdrt_tape_error(t));
  for (int i = 0; i < in->n; i++) {
    size_t bytes = sizeof(double) * (size_t)(in->r[i] * in->c[i]);
    memcpy(grad[i], mdrt_tape_grad(t, i), bytes);
    if (v)
      memcpy(hvp[i], mdrt_tape_hvp(t, i), bytes);
  }
  if (v)
    memcpy(jvp, mdrt_tape_tangent(t, y), sizeof(double) * (size_t)(mdrt_tape_rows(t, y) * mdrt_tape_cols(t, y)));
  mdrt_tape_free(t);
}

// X + S*V for every input.
static void step(const Inputs *in, double x[][MAXN], double v[][MAXN], double s, double out[][MAXN]) {
  for (int i = 0; i < in->n; i++)
    for (long e = 0; e < in->r[i] * in->c[i]; e++)
      out[i][e] = x[i][e] + s * v[i][e];
}

// Backward with a random seed W against central differences of sum(W .* y),
// with step h = 1e-6 max(1, |x|) and relative tolerance 1e-6. Then forward
// mode and forward-over-reverse along a random direction V: the tangent of
// y against central differences of y along V, and the hvps against central
// differences of the gradients along V, with step 1e-5 and tolerance 1e-6
// (the gradients of the steps are exact to rounding, so the differences
// carry only their O(h^2) truncation and rounding of eps/h).
static void check_gradient(const char *name, const Inputs *in, Build build, const void *ctx) {
  Rng g = {fnv1a(name)};
  double x[3][MAXN], grad[3][MAXN], W[MAXN], v[3][MAXN], hvp[3][MAXN], jvp[MAXN];
  for (int i = 0; i < in->n; i++)
    draw(&g, in->dom[i], in->r[i], in->c[i], x[i]);
  for (int i = 0; i < MAXN; i++)
    W[i] = uniform(&g, -1, 1);
  for (int i = 0; i < in->n; i++)
    for (long e = 0; e < MAXN; e++)
      v[i][e] = uniform(&g, -1, 1);
  derivatives(name, in, x, build, ctx, W, NULL, grad, NULL, NULL);
  for (int i = 0; i < in->n; i++)
    for (long e = 0; e < in->r[i] * in->c[i]; e++) {
      double x0 = x[i][e], h = 1e-6 * fmax(1.0, fabs(x0));
      double xp = x[i][e] = x0 + h, fp = weighted(in, x, build, ctx, W);
      double xm = x[i][e] = x0 - h, fm = weighted(in, x, build, ctx, W);
      x[i][e] = x0;
      double fd = (fp - fm) / (xp - xm);
      cr_expect(near(grad[i][e], fd, 1e-6), "%s: input %d element %ld: tape %.12g, fd %.12g",
                name, i, e, grad[i][e], fd);
    }
  double grad2[3][MAXN];
  derivatives(name, in, x, build, ctx, W, v, grad2, hvp, jvp);
  for (int i = 0; i < in->n; i++)
    for (long e = 0; e < in->r[i] * in->c[i]; e++)
      cr_expect_eq(grad2[i][e], grad[i][e], "%s: the second-order pass changed the gradient", name);
  const double h = 1e-5;
  double xp[3][MAXN], xm[3][MAXN], gp[3][MAXN], gm[3][MAXN];
  step(in, x, v, h, xp);
  step(in, x, v, -h, xm);
  derivatives(name, in, xp, build, ctx, W, NULL, gp, NULL, NULL);
  derivatives(name, in, xm, build, ctx, W, NULL, gm, NULL, NULL);
  for (int i = 0; i < in->n; i++)
    for (long e = 0; e < in->r[i] * in->c[i]; e++) {
      double fd = (gp[i][e] - gm[i][e]) / (2 * h);
      cr_expect(near(hvp[i][e], fd, 1e-6), "%s: hvp of input %d element %ld: tape %.12g, fd %.12g",
                name, i, e, hvp[i][e], fd);
    }
  int yp, ym;
  mdrt_tape *tp = record(in, xp, build, ctx, &yp), *tm = record(in, xm, build, ctx, &ym);
  for (long e = 0; e < mdrt_tape_rows(tp, yp) * mdrt_tape_cols(tp, yp); e++) {
    double fd = (mdrt_tape_value(tp, yp)[e] - mdrt_tape_value(tm, ym)[e]) / (2 * h);
    cr_expect(near(jvp[e], fd, 1e-6), "%s: tangent element %ld: tape %.12g, fd %.12g", name, e,
              jvp[e], fd);
  }
  mdrt_tape_free(tp);
  mdrt_tape_free(tm);
}

// One op on one or two leaves. Names are arrays, not pointers: Criterion
// runs each parameter in a fresh process, where the parent's pointers into
// static data need not hold.
typedef struct {
  char name[48];
  mdrt_op op;
  long k;
  Inputs in;
  char fn[16];     /* an elementwise function, by name, in place of OP */
} OpCase;

static int build_op(mdrt_tape *t, const int *leaf, const void *ctx) {
  const OpCase *c = ctx;
  if (c->fn[0])
    return mdrt_tape_map(t, c->fn, leaf[0]);
  return c->in.n == 1 ? mdrt_tape_unary(t, c->op, leaf[0], c->k)
                      : mdrt_tape_binary(t, c->op, leaf[0], leaf[1]);
}

#define UNARY(name, op, k, r, c, dom) {name, op, k, {1, {r}, {c}, {dom}}, ""}
#define MAP(name, r, c, dom) {name, 0, 0, {1, {r}, {c}, {dom}}, name}

ParameterizedTestParameters(grad, unary) {
  static OpCase cases[] = {
    UNARY("neg", MDRT_NEG, 0, 3, 4, ANY),
    UNARY("transpose", MDRT_TRANSPOSE, 0, 3, 4, ANY),
    UNARY("sum k=0", MDRT_SUM, 0, 3, 4, ANY),
    UNARY("sum k=1", MDRT_SUM, 1, 3, 4, ANY),
    UNARY("sum k=2", MDRT_SUM, 2, 3, 4, ANY),
    UNARY("mean k=0", MDRT_MEAN, 0, 3, 4, ANY),
    UNARY("mean k=1", MDRT_MEAN, 1, 3, 4, ANY),
    UNARY("mean k=2", MDRT_MEAN, 2, 3, 4, ANY),
    UNARY("sumsq", MDRT_SUMSQ, 0, 3, 4, ANY),
    UNARY("norm2", MDRT_NORM2, 0, 3, 4, ANY),
    UNARY("unit", MDRT_UNIT, 0, 3, 4, ANY),
    UNARY("unit of a vector", MDRT_UNIT, 0, 4, 1, ANY),
    UNARY("norm1", MDRT_NORM1, 0, 3, 4, AWAY),
    MAP("exp", 3, 4, ANY),
    MAP("log", 3, 4, POS),
    MAP("sqrt", 3, 4, POS),
    MAP("sin", 3, 4, ANY),
    MAP("cos", 3, 4, ANY),
    MAP("tan", 3, 4, UNIT),
    MAP("tanh", 3, 4, ANY),
    MAP("sigmoid", 3, 4, ANY),
    MAP("relu", 3, 4, AWAY),
    MAP("softplus", 3, 4, ANY),
    MAP("abs", 3, 4, AWAY),
    MAP("sign", 3, 4, AWAY),
    MAP("arcsin", 3, 4, UNIT),
    MAP("arccos", 3, 4, UNIT),
    MAP("arctan", 3, 4, ANY),
    MAP("erf", 3, 4, ANY),
    UNARY("logsumexp k=0", MDRT_LOGSUMEXP, 0, 3, 4, ANY),
    UNARY("logsumexp k=2", MDRT_LOGSUMEXP, 2, 3, 4, ANY),
    UNARY("softmax k=2", MDRT_SOFTMAX, 2, 3, 4, ANY),
    UNARY("trace", MDRT_TRACE, 0, 4, 4, ANY),
    UNARY("det 3x3", MDRT_DET, 0, 3, 3, DIAGDOM),  // det < 0
    UNARY("det 4x4", MDRT_DET, 0, 4, 4, DIAGDOM),
    UNARY("logdet 3x3", MDRT_LOGDET, 0, 3, 3, DIAGDOM),
    UNARY("logdet 4x4", MDRT_LOGDET, 0, 4, 4, DIAGDOM),
    UNARY("inv", MDRT_INV, 0, 4, 4, DIAGDOM),
    UNARY("diag of a vector", MDRT_DIAG, 0, 4, 1, ANY),
    UNARY("diag of a matrix", MDRT_DIAG, 0, 4, 4, ANY),
    UNARY("diag of a scalar", MDRT_DIAG, 0, 1, 1, ANY),
    UNARY("mpow k=0", MDRT_MPOW, 0, 3, 3, UNIT),
    UNARY("mpow k=1", MDRT_MPOW, 1, 3, 3, UNIT),
    UNARY("mpow k=2", MDRT_MPOW, 2, 3, 3, UNIT),
    UNARY("mpow k=3", MDRT_MPOW, 3, 3, 3, UNIT),
    UNARY("mpow k=7", MDRT_MPOW, 7, 3, 3, UNIT),
    UNARY("sum of a scalar", MDRT_SUM, 1, 1, 1, ANY),
  };
  return cr_make_param_array(OpCase, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(OpCase *c, grad, unary) {
  check_gradient(c->name, &c->in, build_op, c);
}

// Each broadcasting op over every pair of shapes that may meet.
typedef struct {
  char name[8];
  mdrt_op op;
  Domain da, db;
} BinaryCase;

ParameterizedTestParameters(grad, broadcasting) {
  static BinaryCase cases[] = {
    {"add", MDRT_ADD, ANY, ANY},   {"sub", MDRT_SUB, ANY, ANY},
    {"emul", MDRT_EMUL, ANY, ANY}, {"ediv", MDRT_EDIV, ANY, AWAY},
    {"epow", MDRT_EPOW, POS, ANY},
  };
  return cr_make_param_array(BinaryCase, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(BinaryCase *b, grad, broadcasting) {
  static const long shapes[][4] = {{3, 4, 3, 4}, {3, 4, 1, 4}, {1, 4, 3, 4}, {3, 4, 3, 1},
                                   {3, 1, 3, 4}, {1, 1, 3, 4}, {3, 4, 1, 1}, {1, 1, 1, 1}};
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    const long *sh = shapes[s];
    OpCase c = {"", b->op, 0, {2, {sh[0], sh[2]}, {sh[1], sh[3]}, {b->da, b->db}}, ""};
    snprintf(c.name, sizeof c.name, "%s %ldx%ld %ldx%ld", b->name, sh[0], sh[1], sh[2], sh[3]);
    check_gradient(c.name, &c.in, build_op, &c);
  }
}

Test(grad, matmul) {
  static const long shapes[][3] = {{3, 2, 4}, {1, 3, 1}, {4, 1, 3}, {1, 1, 3}, {3, 3, 3}};
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    const long *sh = shapes[s];
    OpCase c = {"", MDRT_MATMUL, 0, {2, {sh[0], sh[1]}, {sh[1], sh[2]}, {ANY, ANY}}, ""};
    snprintf(c.name, sizeof c.name, "matmul %ldx%ld * %ldx%ld", sh[0], sh[1], sh[1], sh[2]);
    check_gradient(c.name, &c.in, build_op, &c);
  }
}

// logsumexp(tanh(W*x + b)) * norm2(W) + x'*x: chains, fan-out and a leaf
// used on both sides of one op.
static int build_chain(mdrt_tape *t, const int *leaf, const void *ctx) {
  (void)ctx;
  int w = leaf[0], x = leaf[1], b = leaf[2];
  int z = mdrt_tape_binary(t, MDRT_ADD, mdrt_tape_binary(t, MDRT_MATMUL, w, x), b);
  int l = mdrt_tape_unary(t, MDRT_LOGSUMEXP, mdrt_tape_map(t, "tanh", z), 0);
  int p = mdrt_tape_binary(t, MDRT_EMUL, l, mdrt_tape_unary(t, MDRT_NORM2, w, 0));
  int xx = mdrt_tape_binary(t, MDRT_MATMUL, mdrt_tape_unary(t, MDRT_TRANSPOSE, x, 0), x);
  return mdrt_tape_binary(t, MDRT_ADD, p, xx);
}

Test(grad, chain) {
  Inputs in = {3, {3, 4, 3}, {4, 1, 1}, {ANY, ANY, ANY}};
  check_gradient("chain", &in, build_chain, NULL);
}

// inv(A) * diag(v) - A^3 .* (A ./ 4): matrix ops feeding each other.
static int build_matrix_chain(mdrt_tape *t, const int *leaf, const void *ctx) {
  (void)ctx;
  int a = leaf[0], v = leaf[1];
  int four = mdrt_tape_const(t, 1, 1, (double[]){4});
  int left = mdrt_tape_binary(t, MDRT_MATMUL, mdrt_tape_unary(t, MDRT_INV, a, 0),
                              mdrt_tape_unary(t, MDRT_DIAG, v, 0));
  int right = mdrt_tape_binary(t, MDRT_EMUL, mdrt_tape_unary(t, MDRT_MPOW, a, 3),
                               mdrt_tape_binary(t, MDRT_EDIV, a, four));
  return mdrt_tape_binary(t, MDRT_SUB, left, right);
}

Test(grad, matrix_chain) {
  Inputs in = {2, {3, 3}, {3, 1}, {DIAGDOM, ANY}};
  check_gradient("matrix chain", &in, build_matrix_chain, NULL);
}

/* ---- tape: forward mode and second order, by hand ------------------------ */

// f = x'*A*x: its tangent along v is x'(A + A')v, its Hessian A + A', so
// the hvp along v is (A + A')v. The hvp adds over passes like the gradient,
// and zero_grad clears it; A, without a direction, moves nothing.
Test(tape, second_order_by_hand) {
  const double A[4] = {1, 2, -3, 4}, x[2] = {0.5, -1}, v[2] = {2, 3};
  mdrt_tape *t = mdrt_tape_new();
  int a = mdrt_tape_leaf(t, 2, 2, A), xl = mdrt_tape_leaf(t, 2, 1, x);
  int xt = mdrt_tape_unary(t, MDRT_TRANSPOSE, xl, 0);
  int f = mdrt_tape_binary(t, MDRT_MATMUL, mdrt_tape_binary(t, MDRT_MATMUL, xt, a), xl);
  cr_assert_geq(f, 0, "%s", mdrt_tape_error(t));
  cr_expect_null(mdrt_tape_tangent(t, f), "no tangent before a forward pass");
  expect_error(t, mdrt_tape_direction(t, f, v), "not a leaf");
  cr_assert_eq(mdrt_tape_direction(t, xl, v), 0);
  cr_assert_eq(mdrt_tape_forward(t), 0, "%s", mdrt_tape_error(t));
  // (A + A') = [2 -1; -1 8]; (A + A')v = [1, 22]; x'(A + A')v = 0.5 - 22
  cr_expect(near(mdrt_tape_tangent(t, f)[0], -21.5, 1e-15));
  cr_expect(near(mdrt_tape_tangent(t, a)[3], 0, 0), "a leaf without a direction has a zero tangent");
  for (int pass = 1; pass <= 2; pass++) {
    cr_assert_eq(mdrt_tape_backward2(t, f, NULL), 0, "%s", mdrt_tape_error(t));
    expect_grad(t, xl, 2, (double[]){pass * (2 * 0.5 - 1 * -1), pass * (-1 * 0.5 + 8 * -1)});
    const double *h = mdrt_tape_hvp(t, xl);
    cr_expect(near(h[0], pass * 1.0, 1e-15) && near(h[1], pass * 22.0, 1e-15),
              "pass %d: hvp [%g, %g]", pass, h[0], h[1]);
  }
  // d/dA (x'Ax) = x x', and its tangent along v: v x' + x v'.
  const double *ha = mdrt_tape_hvp(t, a);
  cr_expect(near(ha[1], 2 * (2 * -1 + 0.5 * 3), 1e-15), "hvp of A: %g", ha[1]);
  // A leaf recorded after the output has a zero hvp, as its gradient is.
  int late = mdrt_tape_leaf(t, 1, 1, (double[]){1});
  cr_assert_eq(mdrt_tape_backward2(t, f, NULL), 0, "%s", mdrt_tape_error(t));
  cr_expect(mdrt_tape_hvp(t, late) && mdrt_tape_hvp(t, late)[0] == 0.0);
  mdrt_tape_zero_grad(t);
  cr_expect_eq(mdrt_tape_hvp(t, xl)[1], 0.0);
  cr_assert_eq(mdrt_tape_direction(t, xl, NULL), 0);
  cr_assert_eq(mdrt_tape_forward(t), 0);
  cr_expect_eq(mdrt_tape_tangent(t, f)[0], 0.0, "no direction: a zero tangent");
  mdrt_tape_free(t);
}

// x.^2 at a negative x: the exponent is a constant, and its partial, log x,
// is NaN there. It must not reach the tangent or the hvp as 0*NaN.
Test(tape, constant_exponent_of_a_negative_base) {
  mdrt_tape *t = mdrt_tape_new();
  int x = mdrt_tape_leaf(t, 1, 1, (double[]){-3});
  int y = mdrt_tape_binary(t, MDRT_EPOW, x, mdrt_tape_const(t, 1, 1, (double[]){2}));
  cr_assert_eq(mdrt_tape_direction(t, x, (double[]){1}), 0);
  cr_assert_eq(mdrt_tape_backward2(t, y, NULL), 0, "%s", mdrt_tape_error(t));
  cr_expect_eq(mdrt_tape_tangent(t, y)[0], -6.0);
  cr_expect_eq(mdrt_tape_hvp(t, x)[0], 2.0);
  mdrt_tape_free(t);
}

/* ---- tape: backward semantics ------------------------------------------- */

// A bias row added to every row of X: its gradient is the column sums of
// the seed, on either side of the add. Likewise a column, and a scalar.
Test(tape, broadcast_bias_gradient) {
  Rng g = {42};
  double X[12], S[12];
  for (int i = 0; i < 12; i++)
    X[i] = uniform(&g, -1, 1), S[i] = uniform(&g, -1, 1);
  double colsum[4] = {0}, rowsum[3] = {0}, total = 0;
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 4; j++)
      colsum[j] += S[i * 4 + j], rowsum[i] += S[i * 4 + j], total += S[i * 4 + j];
  for (int side = 0; side < 2; side++) {
    mdrt_tape *t = mdrt_tape_new();
    int x = mdrt_tape_const(t, 3, 4, X);
    int row = mdrt_tape_leaf(t, 1, 4, (double[]){1, 2, 3, 4});
    int col = mdrt_tape_leaf(t, 3, 1, (double[]){5, 6, 7});
    int one = mdrt_tape_leaf(t, 1, 1, (double[]){8});
    int y = x;
    for (int b = row; b <= one; b++)
      y = side ? mdrt_tape_binary(t, MDRT_ADD, b, y) : mdrt_tape_binary(t, MDRT_ADD, y, b);
    cr_assert_eq(mdrt_tape_backward(t, y, S), 0, "%s", mdrt_tape_error(t));
    expect_grad(t, row, 4, colsum);
    expect_grad(t, col, 3, rowsum);
    expect_grad(t, one, 1, &total);
    cr_expect_null(mdrt_tape_grad(t, x), "a constant has no gradient");
    cr_expect_null(mdrt_tape_grad(t, y), "an op has no gradient");
    mdrt_tape_free(t);
  }
}

// A notebook session replayed: y1 = (w*x + b)^2 at w=2, x=1, b=3, then
// y2 = w*x + b on the same leaves without zeroing, then after zeroing.
Test(tape, notebook_replay) {
  mdrt_tape *t = mdrt_tape_new();
  int w = mdrt_tape_leaf(t, 1, 1, (double[]){2});
  int x = mdrt_tape_leaf(t, 1, 1, (double[]){1});
  int b = mdrt_tape_leaf(t, 1, 1, (double[]){3});
  int two = mdrt_tape_const(t, 1, 1, (double[]){2});
  int s = mdrt_tape_binary(t, MDRT_ADD, mdrt_tape_binary(t, MDRT_MATMUL, w, x), b);
  int y1 = mdrt_tape_binary(t, MDRT_EPOW, s, two);
  expect_values(t, y1, 1, 1, (double[]){25});
  cr_assert_eq(mdrt_tape_backward(t, y1, NULL), 0);
  expect_grad(t, w, 1, (double[]){10});
  expect_grad(t, x, 1, (double[]){20});
  expect_grad(t, b, 1, (double[]){10});

  int y2 = mdrt_tape_binary(t, MDRT_ADD, mdrt_tape_binary(t, MDRT_MATMUL, w, x), b);
  cr_assert_eq(mdrt_tape_backward(t, y2, NULL), 0);
  expect_grad(t, w, 1, (double[]){11});
  expect_grad(t, x, 1, (double[]){22});
  expect_grad(t, b, 1, (double[]){11});

  mdrt_tape_zero_grad(t);
  cr_assert_eq(mdrt_tape_backward(t, y2, NULL), 0);
  expect_grad(t, w, 1, (double[]){1});
  expect_grad(t, x, 1, (double[]){2});
  expect_grad(t, b, 1, (double[]){1});
  cr_expect_null(mdrt_tape_grad(t, two));
  mdrt_tape_free(t);
}

Test(tape, leaf_used_twice) {
  mdrt_tape *t = mdrt_tape_new();
  int x = mdrt_tape_leaf(t, 1, 3, (double[]){1, -2, 3});
  int y = mdrt_tape_binary(t, MDRT_EMUL, x, x);
  cr_assert_eq(mdrt_tape_backward(t, y, NULL), 0);
  expect_grad(t, x, 3, (double[]){2, -4, 6});
  cr_assert_eq(mdrt_tape_backward(t, x, (double[]){1, 1, 1}), 0);  // out may be a leaf
  expect_grad(t, x, 3, (double[]){3, -3, 7});
  mdrt_tape_free(t);
}

// Subgradient 0 at the kinks, as the header promises.
Test(tape, kinks_take_zero) {
  const char *fns[] = {"relu", "abs", "sign", NULL};  // NULL: norm1
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    mdrt_tape *t = mdrt_tape_new();
    int x = mdrt_tape_leaf(t, 1, 2, (double[]){0, 0});
    int y = fns[i] ? mdrt_tape_map(t, fns[i], x) : mdrt_tape_unary(t, MDRT_NORM1, x, 0);
    cr_assert_eq(mdrt_tape_backward(t, y, NULL), 0);
    expect_grad(t, x, 2, (double[]){0, 0});
    mdrt_tape_free(t);
  }
  mdrt_tape *t = mdrt_tape_new();  // norm2 at 0 likewise
  int x = mdrt_tape_leaf(t, 2, 1, (double[]){0, 0});
  cr_assert_eq(mdrt_tape_backward(t, mdrt_tape_unary(t, MDRT_NORM2, x, 0), NULL), 0);
  expect_grad(t, x, 2, (double[]){0, 0});
  mdrt_tape_free(t);
}

Test(tape, constants_only) {
  mdrt_tape *t = mdrt_tape_new();
  int c = mdrt_tape_const(t, 2, 2, NULL);
  expect_values(t, c, 2, 2, (double[]){0, 0, 0, 0});
  int y = mdrt_tape_map(t, "exp", c);
  cr_expect_eq(mdrt_tape_backward(t, y, NULL), 0, "nothing to do is not an error");
  cr_expect_null(mdrt_tape_grad(t, c));
  mdrt_tape_free(t);
}

Test(tape, empty_matrices) {
  mdrt_tape *t = mdrt_tape_new();
  int a = mdrt_tape_leaf(t, 2, 0, NULL), b = mdrt_tape_leaf(t, 0, 3, NULL);
  int p = mdrt_tape_binary(t, MDRT_MATMUL, a, b);
  expect_values(t, p, 2, 3, (double[]){0, 0, 0, 0, 0, 0});
  int s = mdrt_tape_unary(t, MDRT_SUM, b, 0);
  expect_values(t, s, 1, 1, (double[]){0});
  cr_expect_eq(mdrt_tape_backward(t, p, NULL), 0);
  cr_expect_eq(mdrt_tape_backward(t, s, NULL), 0);
  mdrt_tape_free(t);
}

Test(tape, separate_tapes_are_independent) {
  mdrt_tape *t = mdrt_tape_new(), *u = mdrt_tape_new();
  int x = mdrt_tape_leaf(t, 1, 1, (double[]){3});
  cr_expect_eq(mdrt_tape_unary(u, MDRT_NEG, x, 0), -1, "u has no handle 0");
  cr_expect_str_eq(mdrt_tape_error(t), "");
  cr_expect_eq(mdrt_tape_unary(t, MDRT_NEG, x, 0), 1);
  mdrt_tape_free(t);
  mdrt_tape_free(u);
  mdrt_tape_free(NULL);
}

/* ---- tape: errors ------------------------------------------------------- */

Test(tape_errors, shapes_and_arguments) {
  mdrt_tape *t = mdrt_tape_new();
  cr_expect_str_eq(mdrt_tape_error(t), "");
  int a = mdrt_tape_leaf(t, 2, 3, X23), b = mdrt_tape_leaf(t, 4, 2, NULL);
  expect_error(t, b, "leaf: data is NULL");
  b = mdrt_tape_const(t, 4, 2, NULL);
  expect_error(t, mdrt_tape_binary(t, MDRT_MATMUL, a, b), "matmul: inner sizes 3 and 4 differ");
  int row = mdrt_tape_const(t, 1, 3, NULL), col = mdrt_tape_const(t, 2, 1, NULL);
  expect_error(t, mdrt_tape_binary(t, MDRT_ADD, row, col),
               "add: shapes 1x3 and 2x1 do not broadcast");
  expect_error(t, mdrt_tape_binary(t, MDRT_EMUL, a, b), "emul: shapes 2x3 and 4x2");
  expect_error(t, mdrt_tape_unary(t, MDRT_TRACE, a, 0), "trace: matrix is 2x3, not square");
  expect_error(t, mdrt_tape_unary(t, MDRT_INV, a, 0), "not square");
  expect_error(t, mdrt_tape_unary(t, MDRT_MPOW, a, 2), "not square");
  expect_error(t, mdrt_tape_unary(t, MDRT_DIAG, a, 0), "diag: needs a column vector or a square");
  expect_error(t, mdrt_tape_unary(t, MDRT_DIAG, row, 0), "diag");
  expect_error(t, mdrt_tape_unary(t, MDRT_SUM, a, 3), "sum: k must be 0, 1 or 2, not 3");
  expect_error(t, mdrt_tape_unary(t, MDRT_LOGSUMEXP, a, 1), "logsumexp: k must be 0 or 2");
  expect_error(t, mdrt_tape_unary(t, MDRT_SOFTMAX, a, 0), "softmax: k must be 2");
  expect_error(t, mdrt_tape_unary(t, MDRT_NEG, a, 1), "neg: takes no k");
  expect_error(t, mdrt_tape_unary(t, MDRT_MPOW, mdrt_tape_const(t, 2, 2, NULL), -1),
               "mpow: power must be >= 0, not -1");
  expect_error(t, mdrt_tape_unary(t, MDRT_NEG, 99, 0), "bad handle 99");
  expect_error(t, mdrt_tape_unary(t, MDRT_NEG, -1, 0), "bad handle -1");
  expect_error(t, mdrt_tape_binary(t, MDRT_ADD, a, 99), "bad handle 99");
  expect_error(t, mdrt_tape_unary(t, MDRT_ADD, a, 0), "not a unary op");
  expect_error(t, mdrt_tape_binary(t, MDRT_NEG, a, a), "not a binary op");
  expect_error(t, mdrt_tape_unary(t, (mdrt_op)1000, a, 0), "not a unary op");
  expect_error(t, mdrt_tape_leaf(t, -1, 2, X23), "leaf: bad size -1x2");
  int tall = mdrt_tape_const(t, 1L << 40, 0, NULL), wide = mdrt_tape_const(t, 0, 1L << 40, NULL);
  expect_error(t, mdrt_tape_binary(t, MDRT_MATMUL, tall, wide), "matmul: a 1099511627776x");
  cr_expect_eq(mdrt_tape_backward(t, 99, NULL), -1);
  cr_expect_eq(mdrt_tape_rows(t, 99), -1);
  cr_expect_null(mdrt_tape_value(t, 99));
  // Failures add no value: the next handle follows the last good one.
  int n = mdrt_tape_unary(t, MDRT_NEG, a, 0);
  cr_expect_eq(n, wide + 1, "got handle %d after %d", n, wide);
  mdrt_tape_free(t);
}

Test(tape_errors, singular_matrices) {
  mdrt_tape *t = mdrt_tape_new();
  int s = mdrt_tape_leaf(t, 2, 2, (double[]){1, 2, 2, 4});
  expect_error(t, mdrt_tape_unary(t, MDRT_INV, s, 0), "inv: matrix is singular");
  expect_error(t, mdrt_tape_unary(t, MDRT_LOGDET, s, 0), "logdet: matrix is singular");
  int d = mdrt_tape_unary(t, MDRT_DET, s, 0);  // a value, 0, but no gradient
  expect_values(t, d, 1, 1, (double[]){0});
  int y = mdrt_tape_binary(t, MDRT_ADD, d, mdrt_tape_unary(t, MDRT_SUM, s, 0));
  cr_expect_eq(mdrt_tape_backward(t, y, NULL), -1);
  cr_expect(strstr(mdrt_tape_error(t), "det: gradient needs an invertible matrix"), "%s",
            mdrt_tape_error(t));
  expect_grad(t, s, 4, (double[]){0, 0, 0, 0});  // a failed pass adds nothing
  mdrt_tape_free(t);
}

/* ---- tape: large arguments ---------------------------------------------- */

Test(tape, stable_at_large_arguments) {
  mdrt_tape *t = mdrt_tape_new();
  int x = mdrt_tape_leaf(t, 1, 4, (double[]){700, -700, 1000, -1000});
  int sp = mdrt_tape_map(t, "softplus", x), sg = mdrt_tape_map(t, "sigmoid", x);
  expect_values(t, sp, 1, 4, (double[]){700, exp(-700.0), 1000, 0});
  expect_values(t, sg, 1, 4, (double[]){1, exp(-700.0), 1, 0});
  cr_expect(mdrt_tape_value(t, sp)[1] > 0 && mdrt_tape_value(t, sg)[1] > 0,
            "exp(-700) is a normal double, not 0");
  cr_assert_eq(mdrt_tape_backward(t, sp, NULL), 0);
  cr_assert_eq(mdrt_tape_backward(t, sg, NULL), 0);
  const double *g = mdrt_tape_grad(t, x);
  for (int i = 0; i < 4; i++)
    cr_expect(isfinite(g[i]), "grad %d is %g", i, g[i]);
  expect_grad(t, x, 4, (double[]){1, 2 * exp(-700.0), 1, 0});

  int z = mdrt_tape_leaf(t, 1, 2, (double[]){1000, 1000});
  int l = mdrt_tape_unary(t, MDRT_LOGSUMEXP, z, 0);
  expect_values(t, l, 1, 1, (double[]){1000 + log(2.0)});
  cr_assert_eq(mdrt_tape_backward(t, l, NULL), 0);
  expect_grad(t, z, 2, (double[]){0.5, 0.5});
  int m = mdrt_tape_leaf(t, 1, 2, (double[]){-1000, 0});
  expect_values(t, mdrt_tape_unary(t, MDRT_SOFTMAX, m, 2), 1, 2, (double[]){0, 1});
  expect_values(t, mdrt_tape_unary(t, MDRT_LOGSUMEXP, m, 2), 1, 1, (double[]){0});
  mdrt_tape_free(t);
}
