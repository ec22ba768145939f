/*
 * test_hostile.c - reproducers of what hostile testing found (issue #10):
 * inputs that are legal but huge or odd, each of which once crashed,
 * exhausted memory or misreported. Every test here failed before its fix.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include "matdiff.h"

// ASan's shadow memory and quarantine multiply what a program keeps.
#if defined(__SANITIZE_ADDRESS__)
#define MEM_FACTOR 4
#else
#define MEM_FACTOR 1
#endif

static long peak_kib(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

// 50,000 one-line declarations once took memory quadratic in their number
// (8,000 took 2 GB): each copied the whole array of variables. The timeout
// only guards against a hang; the memory bound is the assertion.
Test(hostile, fifty_thousand_declarations, .timeout = 120) {
  enum { N = 50000 };
  size_t cap = (size_t)N * 24 + 64, len = 0;
  char *src = malloc(cap);
  cr_assert_not_null(src);
  for (int i = 0; i < N; i++)
    len += (size_t)snprintf(src + len, cap - len, "x%d : scalar\n", i);
  snprintf(src + len, cap - len, "wrt x0\ny = x0*x%d\n", N - 1);
  long before = peak_kib();
  md_error err;
  md_function *f = md_compile(src, "decl.expr", &err);
  free(src);
  cr_assert_not_null(f, "%s", err.diag);
  long grown = peak_kib() - before;
  cr_expect_lt(grown, 200L * 1024 * MEM_FACTOR, "md_compile grew the peak by %ld KiB", grown);
  cr_assert_eq(md_num_inputs(f), N);
  double *x = calloc(N, sizeof *x), *g = calloc(N, sizeof *g);
  const double **in = malloc(sizeof *in * N);
  double **grads = calloc(N, sizeof *grads);
  cr_assert(x && g && in && grads);
  for (int i = 0; i < N; i++)
    in[i] = &x[i], grads[i] = &g[i];
  x[0] = 3, x[N - 1] = 5;
  double y = 0;
  cr_assert_eq(md_grad(f, NULL, in, &y, grads, &err), 0, "%s", err.diag);
  cr_expect_eq(y, 15);     /* x0*x49999 = 3*5 */
  cr_expect_eq(g[0], 5);   /* d/dx0 = x49999 */
  cr_expect_eq(g[1], 0);   /* not in wrt: untouched */
  free(x), free(g), free(in), free(grads);
  md_free(f);
}

// A source past the size limit is refused before the scanner sees it:
// flex takes the length as an int, and once parsed only its first 2^31
// bytes or called exit(2) inside the library.
Test(hostile, source_too_large) {
  size_t n = (size_t)(1 << 26) + 1;
  char *src = malloc(n + 1);
  cr_assert_not_null(src);
  memset(src, ' ', n);
  memcpy(src, "y = 1\n", 6);
  src[n] = 0;
  md_error err;
  md_function *f = md_compile(src, "big.expr", &err);
  free(src);
  cr_assert_null(f);
  cr_expect(strstr(err.message, "the source is too large") != NULL, "%s", err.message);
}

// The value and gradient of SRC at the scalar inputs X (one per declared
// variable, all scalars), gradients into G.
static double grad_at(const char *src, const double *x, double *g) {
  md_error err;
  md_function *f = md_compile(src, "nonfinite.expr", &err);
  cr_assert_not_null(f, "%s", err.diag);
  int n = md_num_inputs(f);
  const double *in[4];
  double *gs[4];
  for (int i = 0; i < n; i++)
    in[i] = &x[i], gs[i] = &g[i], g[i] = 0;
  double y;
  cr_assert_eq(md_grad(f, NULL, in, &y, gs, &err), 0, "%s", err.diag);
  md_free(f);
  return y;
}

// The simplifier rewrote 0*A and 0/c to 0, dropping the NaN that IEEE
// arithmetic (and PyTorch) gives when A is infinite or c is zero. By
// hand: d/dx 0*exp(x) = 0*exp(x), NaN at x = 1000 where exp overflows;
// d/dc 0/c = -0/c^2, NaN at c = 0.
Test(hostile, zero_times_infinity_is_nan) {
  double g[2];
  grad_at("x : scalar\ny = 0*exp(x)\n", (double[]){1000}, g);
  cr_expect(isnan(g[0]), "d/dx 0*exp(x) at 1000: %g, expected NaN", g[0]);
  grad_at("c : scalar\nx : scalar\ny = 0/c + x\n", (double[]){0, 1}, g);
  cr_expect(isnan(g[0]), "d/dc 0/c at 0: %g, expected NaN", g[0]);
  cr_expect_eq(g[1], 1);
}

// Constant folding kept no -0.0: 0*(-1) folded to -0.0, which interned as
// 0.0. By hand, d/dx x/(0*(-1)) = 1/(-0.0) = -Inf, as in PyTorch.
Test(hostile, negative_zero_survives) {
  double g[1];
  grad_at("x : scalar\ny = x/(0*(-1))\n", (double[]){2}, g);
  cr_expect(isinf(g[0]) && g[0] < 0, "d/dx x/(0*(-1)) = %g, expected -inf", g[0]);
}
