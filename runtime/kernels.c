/*
 * kernels.c - the kernels only the tape calls (matdiff_rt.h declares them
 * apart from kernels.def's): fill, the transposing axpby, dot. What
 * emitted code calls is standalone.c's loops (functions.c, float.c) and
 * linalg.c's BLAS and LAPACK.
 */
#include "matdiff_rt.h"

/* ---- vector kernels ----------------------------------------------------- */

void mdrt_fill(long n, double v, double *y) {
  for (long i = 0; i < n; i++)
    y[i] = v;
}

void mdrt_axpby_t(long r, long c, double a, const double *X, double b, double *Y) {
  for (long i = 0; i < r; i++)
    for (long j = 0; j < c; j++) {
      double v = a * X[j * r + i];
      Y[i * c + j] = b == 0.0 ? v : v + b * Y[i * c + j];
    }
}

double mdrt_dot(long n, const double *x, const double *y) {
  double s = 0.0;
  for (long i = 0; i < n; i++)
    s += x[i] * y[i];
  return s;
}
