/*
 * kernels.c - the numeric kernels that emitted code and the tape call, those
 * with a definition of their own here (kernels.def marks them OWN) and
 * those only the tape calls; the others are standalone.c's loops
 * (functions.c).
 *
 * Everything here works on dense row-major doubles and keeps no state. The
 * one heavy kernel, mdrt_gemm, goes to CBLAS; building with -DMDRT_NO_BLAS
 * swaps in a portable blocked loop with the same contract, so matdiff still
 * runs where no BLAS is installed. The LU helpers give emitted code and the
 * tape one shared det, inverse and log-determinant.
 */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
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

/* ---- LU ----------------------------------------------------------------- */

// How lu_factor ends.
enum { LU_OK, LU_ZERO_PIVOT, LU_NONFINITE };

static int all_finite(long len, const double *x) {
  for (long i = 0; i < len; i++)
    if (!isfinite(x[i]))
      return 0;
  return 1;
}

// The row at or below J with the largest |entry| in column J.
static long pivot_row(long n, const double *LU, long j) {
  long p = j;
  for (long i = j + 1; i < n; i++)
    if (fabs(LU[i * n + j]) > fabs(LU[p * n + j]))
      p = i;
  return p;
}

static void swap_rows(long n, double *LU, long *perm, long i, long j) {
  for (long c = 0; c < n; c++) {
    double v = LU[i * n + c];
    LU[i * n + c] = LU[j * n + c];
    LU[j * n + c] = v;
  }
  long p = perm[i];
  perm[i] = perm[j];
  perm[j] = p;
}

// Factor P*A = L*U in place: L unit lower (below the diagonal), U upper.
// perm[i] is the row of A now at row i; *sign is det(P). The input is
// checked for NaN and infinities first, since pivoting's comparisons would
// otherwise step around them.
static int lu_factor(long n, double *LU, long *perm, int *sign) {
  *sign = 1;
  for (long i = 0; i < n; i++)
    perm[i] = i;
  if (!all_finite(n * n, LU))
    return LU_NONFINITE;
  for (long j = 0; j < n; j++) {
    long p = pivot_row(n, LU, j);
    if (p != j) {
      swap_rows(n, LU, perm, p, j);
      *sign = -*sign;
    }
    double d = LU[j * n + j];
    if (d == 0.0)
      return LU_ZERO_PIVOT;
    if (!isfinite(d))
      return LU_NONFINITE;
    for (long i = j + 1; i < n; i++) {
      double l = LU[i * n + j] /= d;
      for (long c = j + 1; c < n; c++)
        LU[i * n + c] -= l * LU[j * n + c];
    }
  }
  return LU_OK;
}

// Column J of inv(A), which solves L*U*x = P*e_j, into X.
static void lu_solve_unit(long n, const double *LU, const long *perm, long j, double *x) {
  for (long i = 0; i < n; i++) {
    x[i] = perm[i] == j ? 1.0 : 0.0;
    for (long c = 0; c < i; c++)
      x[i] -= LU[i * n + c] * x[c];
  }
  for (long i = n - 1; i >= 0; i--) {
    for (long c = i + 1; c < n; c++)
      x[i] -= LU[i * n + c] * x[c];
    x[i] /= LU[i * n + i];
  }
}

// Scratch for one factorisation: LU (n*n), a column (n) and the permutation.
typedef struct {
  double *LU, *col;
  long *perm;
} LuWork;

static void lu_release(LuWork *w) {
  free(w->LU);
  free(w->perm);
}

// Copy A into fresh scratch and factor it: an LU_ status, or -2 if the
// scratch cannot be allocated.
static int lu_start(long n, const double *A, LuWork *w, int *sign) {
  w->LU = NULL;
  w->perm = NULL;
  if (n > LONG_MAX / n || n * n + n > LONG_MAX / (long)sizeof(double))
    return -2;
  w->LU = malloc((size_t)(n * n + n) * sizeof(double));
  w->perm = malloc((size_t)n * sizeof(long));
  if (!w->LU || !w->perm) {
    lu_release(w);
    return -2;
  }
  w->col = w->LU + n * n;
  mdrt_copy(n * n, A, w->LU);
  return lu_factor(n, w->LU, w->perm, sign);
}

int mdrt_lu_inv(long n, const double *A, double *out, double *det) {
  if (n <= 0) {  // the empty matrix: det 1, an empty inverse
    if (det)
      *det = 1.0;
    return 0;
  }
  LuWork w;
  int sign, rc = lu_start(n, A, &w, &sign);
  if (rc == -2)
    return -2;
  if (det) {
    double d = sign;
    for (long i = 0; i < n && rc == LU_OK; i++)
      d *= w.LU[i * n + i];
    *det = rc == LU_OK ? d : rc == LU_ZERO_PIVOT ? 0.0 : NAN;
  }
  for (long j = 0; out && rc == LU_OK && j < n; j++) {
    lu_solve_unit(n, w.LU, w.perm, j, w.col);
    for (long i = 0; i < n; i++)
      out[i * n + j] = w.col[i];
  }
  lu_release(&w);
  return rc == LU_OK ? 0 : -1;
}

// A sum of logs rather than the log of a product, which would over- or
// underflow long before log|det| itself does.
int mdrt_logdet(long n, const double *A, double *out) {
  if (n <= 0) {
    *out = 0.0;
    return 0;
  }
  LuWork w;
  int sign, rc = lu_start(n, A, &w, &sign);
  if (rc == -2)
    return -2;
  double s = 0.0;
  for (long i = 0; i < n && rc == LU_OK; i++)
    s += log(fabs(w.LU[i * n + i]));
  lu_release(&w);
  if (rc != LU_OK)
    return -1;
  *out = s;
  return 0;
}
