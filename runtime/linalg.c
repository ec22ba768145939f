/*
 * linalg.c - the kernels that kernels.def marks BLAS, through BLAS and
 * LAPACK, which OpenBLAS ships: matrix products by dgemm and dgemv, A*A'
 * by dsyrk; LU by dgetrf, Cholesky by
 * dpotrf, the inverse by dgetri or dpotri, solves by dgetrs, dpotrs and
 * dtrsm. Emitted code factorises a matrix once per call and takes its
 * det, logdet, inverse and solves from the one F.
 *
 * LAPACK is column-major and the runtime row-major: F is the row-major A
 * read as column-major, which is A', factored in place. So B*inv(A) is a
 * left solve with A' (dgetrs), and inv(A)*B, whose rows the column-major
 * view sees as columns, is a right solve (dtrsm and the pivots by hand).
 *
 * This file is compiled once per precision: as it is for double, and
 * through linalg_f.c for float (MDRT_LINALG_FLOAT). Built with
 * -DMDRT_NO_BLAS it is not compiled at all: standalone.c's loops stand in.
 */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <cblas.h>
#include <f77blas.h>
#include "matdiff_rt.h"

#ifdef MDRT_LINALG_FLOAT
#define real float
#define K(name) mdrt_##name##_f             /* the kernel */
#define LA(name) s##name##_                 /* the LAPACK routine */
#define trsm cblas_strsm
#define swap cblas_sswap
#define syrk cblas_ssyrk
#define gemm cblas_sgemm
#define gemv cblas_sgemv
#else
#define real double
#define K(name) mdrt_##name
#define LA(name) d##name##_
#define trsm cblas_dtrsm
#define swap cblas_dswap
#define syrk cblas_dsyrk
#define gemm cblas_dgemm
#define gemv cblas_dgemv
#endif

// dgetri is LAPACK's own, not one of the routines OpenBLAS's f77blas.h
// declares (those it optimises).
int LA(getri)(blasint *n, real *a, blasint *lda, blasint *ipiv, real *work, blasint *lwork,
              blasint *info);

// F keeps the pivots as ints in the room of n reals (kernels.def).
_Static_assert(sizeof(blasint) == sizeof(int), "LAPACK with 32-bit integers");

/* A matrix times a vector is gemv, which BLAS does faster than a gemm of
   one column: C (m x 1) = alpha*op(A)*b, or C (1 x n) = alpha*a*op(B). An
   empty inner product, or alpha == 0, leaves beta*C: BLAS then reads
   neither A nor B, and some BLASes reject a k == 0 leading dimension.
   Sizes past BLAS's int take the plain loop. */
void K(gemm)(int transa, int transb, long m, long n, long k, real alpha, const real *A,
             const real *B, real beta, real *C) {
  if (m <= 0 || n <= 0)
    return;
  if (k > 0 && alpha != 0 && m <= INT_MAX && n <= INT_MAX && k <= INT_MAX) {
    blasint M = (blasint)m, N = (blasint)n, Kk = (blasint)k;
    if (n == 1)
      gemv(CblasRowMajor, transa ? CblasTrans : CblasNoTrans, transa ? Kk : M, transa ? M : Kk,
           alpha, A, transa ? M : Kk, B, 1, beta, C, 1);
    else if (m == 1)
      gemv(CblasRowMajor, transb ? CblasNoTrans : CblasTrans, transb ? N : Kk, transb ? Kk : N,
           alpha, B, transb ? Kk : N, A, 1, beta, C, 1);
    else
      gemm(CblasRowMajor, transa ? CblasTrans : CblasNoTrans, transb ? CblasTrans : CblasNoTrans,
           M, N, Kk, alpha, A, transa ? M : Kk, B, transb ? Kk : N, beta, C, N);
    return;
  }
  for (long i = 0; i < m; i++)
    for (long j = 0; j < n; j++) {
      real s = 0;
      for (long p = 0; alpha != 0 && p < k; p++)
        s += (transa ? A[p * m + i] : A[i * k + p]) * (transb ? B[j * k + p] : B[p * n + j]);
      C[i * n + j] = alpha * s + (beta == 0 ? 0 : beta * C[i * n + j]);
    }
}

// C = alpha*op(A)*op(A)' + beta*C into C's upper triangle (row-major),
// then mirrored into the lower.
void K(syrk)(int trans, long n, long k, real alpha, const real *A, real beta, real *C) {
  if (n <= 0)
    return;
  if (k <= 0 || n > INT_MAX || k > INT_MAX) {
    K(gemm)(trans, !trans, n, n, k, alpha, A, A, beta, C);
    return;
  }
  syrk(CblasRowMajor, CblasUpper, trans ? CblasTrans : CblasNoTrans, (blasint)n, (blasint)k, alpha,
       A, trans ? (blasint)n : (blasint)k, beta, C, (blasint)n);
  for (long i = 0; i < n; i++)
    for (long j = 0; j < i; j++)
      C[i * n + j] = C[j * n + i];
}

// What a kernel with sizes N and M does first: 1 when a size is 0 (there
// is nothing to do), -2 when one passes LAPACK's int, 0 to go on.
static int sizes(long n, long m) {
  return n <= 0 || m <= 0 ? 1 : n > INT_MAX || m > INT_MAX ? -2 : 0;
}
#define SIZES(n, m)                \
  do {                             \
    int rc_ = sizes(n, m);         \
    if (rc_)                       \
      return rc_ > 0 ? 0 : rc_;    \
  } while (0)

static blasint *pivots(long n, const real *F) {
  return (blasint *)(F + n * n);
}

static void copy(long len, const real *B, real *X) {
  for (long i = 0; X != B && i < len; i++)
    X[i] = B[i];
}

static int copy_finite(long len, const real *A, real *F) {
  int finite = 1;
  for (long i = 0; i < len; i++)
    finite &= isfinite(F[i] = A[i]) != 0;
  return finite;
}

int K(lu)(long n, const real *A, real *F) {
  SIZES(n, n);
  int finite = copy_finite(n * n, A, F);
  blasint N = (blasint)n, info = 0;
  LA(getrf)(&N, &N, F, &N, pivots(n, F), &info);
  for (long i = 0; i < n; i++)
    finite &= isfinite(F[i * n + i]) != 0;
  return info < 0 ? -2 : info > 0 || !finite ? -1 : 0;
}

int K(chol)(long n, const real *A, real *F) {
  SIZES(n, n);
  if (!copy_finite(n * n, A, F))
    return -1;
  char lo = 'L';
  blasint N = (blasint)n, info = 0;
  LA(potrf)(&lo, &N, F, &N, &info);
  return info < 0 ? -2 : info > 0 ? -1 : 0;
}

// dgetri works in OUT with scratch of the size it asks for.
int K(lu_inverse)(long n, const real *F, real *out) {
  SIZES(n, n);
  copy(n * n, F, out);
  blasint N = (blasint)n, lwork = -1, info = 0;
  real size;
  LA(getri)(&N, out, &N, pivots(n, F), &size, &lwork, &info);
  lwork = size >= (real)N && size < (real)INT_MAX ? (blasint)size : N;
  real *work = malloc((size_t)lwork * sizeof(real));
  if (!work)
    return -2;
  LA(getri)(&N, out, &N, pivots(n, F), work, &lwork, &info);
  free(work);
  return info ? -2 : 0;
}

// dpotri leaves inv(A) in the lower triangle (column-major); the upper is
// filled in from it.
int K(chol_inverse)(long n, const real *F, real *out) {
  SIZES(n, n);
  copy(n * n, F, out);
  char lo = 'L';
  blasint N = (blasint)n, info = 0;
  LA(potri)(&lo, &N, out, &N, &info);
  for (long i = 0; i < n; i++)
    for (long j = 0; j < i; j++)
      out[i * n + j] = out[j * n + i];
  return info ? -2 : 0;
}

// Rows I and piv[i] of X (n x m), I in order, or in reverse order for BACK.
static void swap_rows(long n, long m, const blasint *piv, real *X, int back) {
  for (long t = 0; t < n; t++) {
    long i = back ? n - 1 - t : t, p = piv[i] - 1;
    if (p != i)
      swap((blasint)m, X + i * m, 1, X + p * m, 1);
  }
}

/* A*X = B is Y*M = C for Y = X', C = B' column-major (m x n, leading
   dimension m), M = A' = P*L*U: Y = C*inv(U)*inv(L)*P'. With TRANS,
   A'*X = B is Y*M' = C: Y = C*P*inv(L')*inv(U'). */
int K(lu_solve)(int trans, long n, long m, const real *F, const real *B, real *X) {
  SIZES(n, m);
  copy(n * m, B, X);
  blasint N = (blasint)n, M = (blasint)m;
  if (trans)
    swap_rows(n, m, pivots(n, F), X, 0);
  enum CBLAS_TRANSPOSE t = trans ? CblasTrans : CblasNoTrans;
  trsm(CblasColMajor, CblasRight, trans ? CblasLower : CblasUpper, t,
       trans ? CblasUnit : CblasNonUnit, M, N, 1, F, N, X, M);
  trsm(CblasColMajor, CblasRight, trans ? CblasUpper : CblasLower, t,
       trans ? CblasNonUnit : CblasUnit, M, N, 1, F, N, X, M);
  if (!trans)
    swap_rows(n, m, pivots(n, F), X, 1);
  return 0;
}

/* X*A = B is M*Y = C for Y = X', C = B' column-major (n x m, leading
   dimension n): dgetrs with M = A'; with TRANS, X*A' = B is M'*Y = C. */
int K(lu_solve_right)(int trans, long m, long n, const real *F, const real *B, real *X) {
  SIZES(n, m);
  copy(n * m, B, X);
  char t = trans ? 'T' : 'N';
  blasint N = (blasint)n, M = (blasint)m, info = 0;
  LA(getrs)(&t, &N, &M, (real *)F, &N, pivots(n, F), X, &N, &info);
  return info ? -2 : 0;
}

/* A*X = B is Y*A = C, column-major as above, A = L*L': Y = C*inv(L')*inv(L). */
int K(chol_solve)(long n, long m, const real *F, const real *B, real *X) {
  SIZES(n, m);
  copy(n * m, B, X);
  blasint N = (blasint)n, M = (blasint)m;
  trsm(CblasColMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, M, N, 1, F, N, X, M);
  trsm(CblasColMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit, M, N, 1, F, N, X, M);
  return 0;
}

int K(chol_solve_right)(long m, long n, const real *F, const real *B, real *X) {
  SIZES(n, m);
  copy(n * m, B, X);
  char lo = 'L';
  blasint N = (blasint)n, M = (blasint)m, info = 0;
  LA(potrs)(&lo, &N, &M, (real *)F, &N, X, &N, &info);
  return info ? -2 : 0;
}
