/*
 * kernels.c - the numeric kernels that emitted code and the tape call, those
 * with a definition of their own here (kernels.def marks them OWN) and
 * those only the tape calls; the others are standalone.c's loops
 * (functions.c).
 *
 * Everything here works on dense row-major doubles and keeps no state. The
 * one heavy kernel, mdrt_gemm, goes to CBLAS; building with -DMDRT_NO_BLAS
 * swaps in a portable blocked loop with the same contract, so matdiff still
 * runs where no BLAS is installed. The factorisations are linalg.c's.
 */
#include <limits.h>
#ifndef MDRT_NO_BLAS
#include <cblas.h>
#endif
#include "matdiff_rt.h"

/* ---- gemm --------------------------------------------------------------- */

// Tile edge of the portable kernel: three 64x64 tiles of doubles (96 KiB)
// sit in L2 on anything recent.
enum { BLOCK = 64 };

// A matrix seen through a transpose flag: element (i,j) is data[i*rs + j*cs].
typedef struct {
  const double *data;
  long rs, cs;
} View;

// op(X) is rows x cols; X itself is stored cols x rows when TRANS.
static View view(const double *data, int trans, long rows, long cols) {
  View v = {data, trans ? 1 : cols, trans ? rows : 1};
  return v;
}

static long min_long(long a, long b) {
  return a < b ? a : b;
}

// C = beta*C. BLAS defines beta == 0 as "C is output only", so C is then
// written without being read: it may hold NaN garbage.
static void scale(long len, double beta, double *C) {
  if (beta == 0.0)
    mdrt_fill(len, 0.0, C);
  else if (beta != 1.0)
    for (long i = 0; i < len; i++)
      C[i] *= beta;
}

// C += alpha*a*b, a m x k, b k x n. The i-k-j order runs the inner loop
// along a row of C; the tiles keep a block of b in cache across rows of a.
static void gemm_loops(View a, View b, long m, long n, long k, double alpha, double *C) {
  for (long i0 = 0; i0 < m; i0 += BLOCK)
    for (long p0 = 0; p0 < k; p0 += BLOCK)
      for (long j0 = 0; j0 < n; j0 += BLOCK) {
        long i1 = min_long(i0 + BLOCK, m), p1 = min_long(p0 + BLOCK, k);
        long j1 = min_long(j0 + BLOCK, n);
        for (long i = i0; i < i1; i++)
          for (long p = p0; p < p1; p++) {
            double s = alpha * a.data[i * a.rs + p * a.cs];
            const double *brow = b.data + p * b.rs;
            double *crow = C + i * n;
            for (long j = j0; j < j1; j++)
              crow[j] += s * brow[j * b.cs];
          }
      }
}

void mdrt_gemm(int transa, int transb, long m, long n, long k, double alpha,
               const double *A, const double *B, double beta, double *C) {
  if (m <= 0 || n <= 0)
    return;
  // An empty inner product, or alpha == 0, leaves beta*C; BLAS then reads
  // neither A nor B, and some BLASes reject k == 0 leading dimensions.
  if (k <= 0 || alpha == 0.0) {
    scale(m * n, beta, C);
    return;
  }
#ifndef MDRT_NO_BLAS
  // CBLAS takes int sizes; anything larger goes through the loops below.
  if (m <= INT_MAX && n <= INT_MAX && k <= INT_MAX) {
    // A matrix times a vector is gemv, which BLAS does faster than a gemm
    // of one column: C (m x 1) = alpha*op(A)*b, or C (1 x n) = alpha*a*op(B).
    if (n == 1) {
      cblas_dgemv(CblasRowMajor, transa ? CblasTrans : CblasNoTrans, (int)(transa ? k : m),
                  (int)(transa ? m : k), alpha, A, (int)(transa ? m : k), B, 1, beta, C, 1);
      return;
    }
    if (m == 1) {
      cblas_dgemv(CblasRowMajor, transb ? CblasNoTrans : CblasTrans, (int)(transb ? n : k),
                  (int)(transb ? k : n), alpha, B, (int)(transb ? k : n), A, 1, beta, C, 1);
      return;
    }
    cblas_dgemm(CblasRowMajor, transa ? CblasTrans : CblasNoTrans,
                transb ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k, alpha, A,
                (int)(transa ? m : k), B, (int)(transb ? k : n), beta, C, (int)n);
    return;
  }
#endif
  scale(m * n, beta, C);
  gemm_loops(view(A, transa, m, k), view(B, transb, k, n), m, n, k, alpha, C);
}

/* ---- vector kernels ----------------------------------------------------- */

// copy, axpby, sum and sumsq are standalone.c's loops (functions.c).

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
