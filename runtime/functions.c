/*
 * functions.c - the elementwise functions libm lacks and the stable
 * row-wise reductions that emitted code calls for logsumexp and softmax.
 * Each is written to stay finite where the mathematics is: exp is only
 * ever taken of a non-positive number.
 */
#include <math.h>
#include "matdiff_rt.h"

double mdrt_sigmoid(double x) {
  double z = exp(-fabs(x));  /* in (0, 1]: never overflows */
  return x >= 0 ? 1 / (1 + z) : z / (1 + z);
}

double mdrt_softplus(double x) { return fmax(x, 0) + log1p(exp(-fabs(x))); }

double mdrt_relu(double x) { return x > 0 ? x : 0; }

double mdrt_sign(double x) { return x > 0 ? 1 : x < 0 ? -1 : x == 0 ? 0 : x; }

double mdrt_logsumexp(long n, const double *x) {
  double mx = -INFINITY;
  for (long i = 0; i < n; i++)
    mx = fmax(mx, x[i]);
  if (!isfinite(mx))
    return mx;  /* all -inf, or +inf, or NaN */
  double s = 0;
  for (long i = 0; i < n; i++)
    s += exp(x[i] - mx);
  return mx + log(s);
}

void mdrt_logsumexp_rows(long n, long m, const double *A, double *out) {
  for (long i = 0; i < n; i++)
    out[i] = mdrt_logsumexp(m, A + i * m);
}

void mdrt_softmax_rows(long n, long m, const double *A, double *out) {
  for (long i = 0; i < n; i++) {
    double lse = mdrt_logsumexp(m, A + i * m);
    for (long j = 0; j < m; j++)
      out[i * m + j] = exp(A[i * m + j] - lse);
  }
}
