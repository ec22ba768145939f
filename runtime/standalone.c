/*
 * standalone.c - the runtime's kernels as plain loops, for
 * `matdiff compile --standalone`: the emitter copies this file into its
 * output, so that the C it writes needs nothing beyond libm. Each function
 * is named as in matdiff_rt.h, means the same, and is static inline (an
 * unused one costs nothing and warns about nothing). With --float the
 * emitted file reads it in single precision, as float.c does: double
 * defined as float, <tgmath.h> for libm, and each kernel renamed to its
 * twin mdrt_X_f. This file is never compiled on its own.
 *
 * These loops are the one definition of the kernels that kernels.def
 * marks LOOP: the runtime library compiles this file into its own (as
 * exported functions, functions.c; in float, float.c), and the tape
 * calls those, so standalone C, compiled C and the tape cannot disagree.
 * MDRT_INLINE marks them; the library defines it empty. MDRT_VECTOR, a
 * no-op here, is where the library's loops on blocks take vector code.
 */
#ifndef MDRT_INLINE
#define MDRT_INLINE static inline
#endif
#ifndef MDRT_VECTOR
#define MDRT_VECTOR(name, args) (void)0
#endif

MDRT_INLINE void *mdrt_alloc(long nbytes) {
  return nbytes < 0 ? NULL : malloc(nbytes > 0 ? (size_t)nbytes : 1);
}

MDRT_INLINE void mdrt_free(void *p) { free(p); }

/* The loops by row, beta == 0 apart: the one emitted code calls (v.*X
   written fresh), with nothing in its inner loop but a product, which cc
   vectorises. */
MDRT_INLINE void mdrt_scale_rows(long r, long c, double alpha, const double *v, const double *X,
                                 double beta, double *Y) {
  for (long i = 0; i < r; i++) {
    double s = alpha * v[i];
    const double *x = X + i * c;
    double *y = Y + i * c;
    if (beta == 0)
      for (long j = 0; j < c; j++)
        y[j] = s * x[j];
    else
      for (long j = 0; j < c; j++)
        y[j] = s * x[j] + beta * y[j];
  }
}

MDRT_INLINE void mdrt_scale_cols(long r, long c, double alpha, const double *v, const double *X,
                                 double beta, double *Y) {
  for (long i = 0; i < r; i++) {
    const double *x = X + i * c;
    double *y = Y + i * c;
    if (beta == 0)
      for (long j = 0; j < c; j++)
        y[j] = alpha * x[j] * v[j];
    else
      for (long j = 0; j < c; j++)
        y[j] = alpha * x[j] * v[j] + beta * y[j];
  }
}

MDRT_INLINE void mdrt_copy(long n, const double *x, double *y) {
  for (long i = 0; i < n; i++)
    y[i] = x[i];
}

MDRT_INLINE void mdrt_axpby(long n, double a, const double *x, double b, double *y) {
  for (long i = 0; i < n; i++)
    y[i] = a * x[i] + (b == 0 ? 0 : b * y[i]);
}

/* Sums in a fixed shape, which emitted loops on blocks reproduce: blocks of
   256 numbers, each summed in four running sums (number i in sum i % 4),
   and the blocks' sums added as a binary counter adds ones (mdrt_cascade),
   so that the rounding error grows as log n rather than n. A float sum of
   a million numbers then keeps float's precision. */
MDRT_INLINE void mdrt_cascade(double *acc, long k, double s) {
  long j = 0;
  for (long c = k; c & 1; c >>= 1, j++)
    s = acc[j] + s;
  acc[j] = s;
}

MDRT_INLINE double mdrt_cascade_total(const double *acc, long k) {
  double t = 0;
  for (long j = 0; k >> j; j++)
    if (k >> j & 1)
      t = acc[j] + t;
  return t;
}

/* One block: X[i] (SQ: squared) into running sum i % 4. */
static inline double mdrt_block_sum(long n, const double *x, int sq) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  long i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += sq ? x[i] * x[i] : x[i];
    s1 += sq ? x[i + 1] * x[i + 1] : x[i + 1];
    s2 += sq ? x[i + 2] * x[i + 2] : x[i + 2];
    s3 += sq ? x[i + 3] * x[i + 3] : x[i + 3];
  }
  s0 += i < n ? (sq ? x[i] * x[i] : x[i]) : 0;
  s1 += i + 1 < n ? (sq ? x[i + 1] * x[i + 1] : x[i + 1]) : 0;
  s2 += i + 2 < n ? (sq ? x[i + 2] * x[i + 2] : x[i + 2]) : 0;
  return (s0 + s1) + (s2 + s3);
}

static inline double mdrt_blocks_sum(long n, const double *x, int sq) {
  double acc[64];
  long k = 0;
  for (long i = 0; i < n; i += 256, k++)
    mdrt_cascade(acc, k, mdrt_block_sum(n - i < 256 ? n - i : 256, x + i, sq));
  return mdrt_cascade_total(acc, k);
}

/* One number after another, as the emitter's fused loops add today: a
   value that one body sums in a loop and the other by mdrt_sum is then
   the same to the bit (md_eval's and md_grad's). Single precision takes
   the blocks and the cascade (float.c defines MDRT_BLOCK_SUMS), where a
   running sum of a million numbers loses float's precision; double will
   too once the fused loops work on blocks. */
static inline double mdrt_running_sum(long n, const double *x, int sq) {
  double s = 0;
  for (long i = 0; i < n; i++)
    s += sq ? x[i] * x[i] : x[i];
  return s;
}
#ifdef MDRT_BLOCK_SUMS
#define MDRT_SUMS mdrt_blocks_sum
#else
#define MDRT_SUMS mdrt_running_sum
#endif

MDRT_INLINE double mdrt_sum(long n, const double *x) { return MDRT_SUMS(n, x, 0); }

MDRT_INLINE double mdrt_sumsq(long n, const double *x) { return MDRT_SUMS(n, x, 1); }

/* The cases apart, each inner loop plain: the compiler keeps the branches
   out of the loops only at -O3. Without X, the repeated row (b' of
   X*W + b', before gemm adds onto it) is one row copied. */
MDRT_INLINE void mdrt_add_bcast(int along_rows, long r, long c, double a, const double *X, double b,
                                const double *v, double *Y) {
  for (long i = 0; i < r; i++) {
    double *y = Y + i * c;
    const double *x = X ? X + i * c : NULL;
    if (along_rows) {
      double s = b * v[i];
      if (x)
        for (long j = 0; j < c; j++)
          y[j] = a * x[j] + s;
      else
        for (long j = 0; j < c; j++)
          y[j] = s;
    } else if (x) {
      for (long j = 0; j < c; j++)
        y[j] = a * x[j] + b * v[j];
    } else if (i > 0) {
      for (long j = 0; j < c; j++)
        y[j] = Y[j];
    } else {
      for (long j = 0; j < c; j++)
        y[j] = b * v[j];
    }
  }
}

MDRT_INLINE void mdrt_tanh_grad(long n, const double *g, const double *h, double *y) {
  for (long i = 0; i < n; i++)
    y[i] = g[i] * (1 - h[i] * h[i]);
}

MDRT_INLINE void mdrt_sum_axis(int k, long r, long c, const double *A, double *out) {
  if (k == 2) {
    for (long i = 0; i < r; i++) {
      double s = 0;
      for (long j = 0; j < c; j++)
        s += A[i * c + j];
      out[i] = s;
    }
    return;
  }
  for (long j = 0; j < c; j++)
    out[j] = 0;
  for (long i = 0; i < r; i++)
    for (long j = 0; j < c; j++)
      out[j] += A[i * c + j];
}

/* The library calls BLAS and LAPACK instead of the loops from here to the
   #endif (runtime/linalg.c). */
#ifndef MDRT_HAVE_BLAS
/* C = alpha*op(A)*op(B) + beta*C, row-major; op(A) is m x k, its (i,p) at
   A[i*ars + p*acs]. In tiles of 64 (three tiles of doubles, 96 KiB, sit in
   L2), the inner loop along a row of C. Each tile of the product is summed
   in T and then added to C once, as BLAS does: accumulating into C as it
   goes would round C's old value in with every term, and a gradient added
   twice would not be exactly twice the gradient. As in BLAS, beta == 0
   ignores C's old contents (NaN included) and alpha == 0 reads neither A
   nor B. */
MDRT_INLINE void mdrt_gemm(int transa, int transb, long m, long n, long k, double alpha,
                           const double *A, const double *B, double beta, double *C) {
  enum { TILE = 64 };
  long ars = transa ? 1 : k, acs = transa ? m : 1, brs = transb ? 1 : n, bcs = transb ? k : 1;
  double T[TILE * TILE];
  for (long i0 = 0; i0 < m; i0 += TILE)
    for (long j0 = 0; j0 < n; j0 += TILE) {
      long ni = m - i0 < TILE ? m - i0 : TILE, nj = n - j0 < TILE ? n - j0 : TILE;
      for (long t = 0; t < ni * nj; t++)
        T[t] = 0;
      for (long p0 = 0; alpha != 0 && p0 < k; p0 += TILE)
        for (long i = 0; i < ni; i++)
          for (long p = p0; p < k && p < p0 + TILE; p++) {
            double a = A[(i0 + i) * ars + p * acs];
            for (long j = 0; j < nj; j++)
              T[i * nj + j] += a * B[p * brs + (j0 + j) * bcs];
          }
      for (long i = 0; i < ni; i++)
        for (long j = 0; j < nj; j++) {
          double *c = &C[(i0 + i) * n + j0 + j];
          *c = (beta == 0 ? 0 : beta * *c) + (alpha == 0 ? 0 : alpha * T[i * nj + j]);
        }
    }
}

/* Where dsyrk does half gemm's work, this is gemm. */
MDRT_INLINE void mdrt_syrk(int trans, long n, long k, double alpha, const double *A, double beta,
                           double *C) {
  mdrt_gemm(trans, !trans, n, n, k, alpha, A, A, beta, C);
}

/* Linear algebra. F holds the factors in LAPACK's layout (kernels.def): the
   row-major A read as column-major is A', so column j of M = A' is
   F + j*n, and mdrt_lu factors M = P*L*U in place, mdrt_chol M = L*L'. */
MDRT_INLINE int mdrt_lu(long n, const double *A, double *F) {
  int *piv = (int *)(F + n * n), rc = 0;
  for (long i = 0; i < n * n; i++)
    if (!isfinite(F[i] = A[i]))
      rc = -1;
  for (long j = 0; j < n; j++) {
    double *cj = F + j * n;
    long p = j;
    for (long i = j + 1; i < n; i++)
      if (fabs(cj[i]) > fabs(cj[p]))
        p = i;
    piv[j] = (int)(p + 1);
    for (long c = 0; p != j && c < n; c++) {
      double t = F[c * n + j];
      F[c * n + j] = F[c * n + p];
      F[c * n + p] = t;
    }
    if (cj[j] == 0 || !isfinite(cj[j])) {
      rc = -1;
      continue;
    }
    for (long i = j + 1; i < n; i++)
      cj[i] /= cj[j];
    for (long c = j + 1; c < n; c++) {
      double *cc = F + c * n, f = cc[j];
      for (long i = j + 1; i < n; i++)
        cc[i] -= f * cj[i];
    }
  }
  return rc;
}

/* Solve M*y = b, or M'*y = b when TRANS, in place in Y (stride S), from
   M = P*L*U: P = P_1*...*P_n, where P_j swaps j and piv[j]. */
static inline void mdrt_lu_vsolve(int trans, long n, const double *F, double *y, long s) {
  const int *piv = (const int *)(F + n * n);
  for (long i = 0; !trans && i < n; i++) {  /* P'*b */
    double t = y[i * s];
    y[i * s] = y[(piv[i] - 1) * s];
    y[(piv[i] - 1) * s] = t;
  }
  for (long j = 0; !trans && j < n; j++)  /* L, unit lower */
    for (long i = j + 1; i < n; i++)
      y[i * s] -= F[j * n + i] * y[j * s];
  for (long j = n - 1; !trans && j >= 0; j--) {  /* U */
    y[j * s] /= F[j * n + j];
    for (long i = 0; i < j; i++)
      y[i * s] -= F[j * n + i] * y[j * s];
  }
  for (long j = 0; trans && j < n; j++) {  /* U' */
    double t = y[j * s];
    for (long i = 0; i < j; i++)
      t -= F[j * n + i] * y[i * s];
    y[j * s] = t / F[j * n + j];
  }
  for (long j = n - 1; trans && j >= 0; j--)  /* L' */
    for (long i = j + 1; i < n; i++)
      y[j * s] -= F[j * n + i] * y[i * s];
  for (long i = n - 1; trans && i >= 0; i--) {  /* P*z */
    double t = y[i * s];
    y[i * s] = y[(piv[i] - 1) * s];
    y[(piv[i] - 1) * s] = t;
  }
}

/* A*x = b is M'*x = b for a column x of X; x*A = b is M*x = b for a row. */
MDRT_INLINE int mdrt_lu_solve(int trans, long n, long m, const double *F, const double *B,
                              double *X) {
  for (long i = 0; X != B && i < n * m; i++)
    X[i] = B[i];
  for (long k = 0; k < m; k++)
    mdrt_lu_vsolve(!trans, n, F, X + k, m);
  return 0;
}

MDRT_INLINE int mdrt_lu_solve_right(int trans, long m, long n, const double *F, const double *B,
                                    double *X) {
  for (long i = 0; X != B && i < n * m; i++)
    X[i] = B[i];
  for (long k = 0; k < m; k++)
    mdrt_lu_vsolve(trans, n, F, X + k * n, 1);
  return 0;
}

MDRT_INLINE int mdrt_lu_inverse(long n, const double *F, double *out) {
  for (long i = 0; i < n * n; i++)
    out[i] = i % (n + 1) == 0;
  return mdrt_lu_solve_right(0, n, n, F, out, out);
}

MDRT_INLINE int mdrt_chol(long n, const double *A, double *F) {
  for (long i = 0; i < n * n; i++)
    if (!isfinite(F[i] = A[i]))
      return -1;
  for (long j = 0; j < n; j++) {
    double *cj = F + j * n;
    for (long k = 0; k < j; k++)
      for (long i = j; i < n; i++)
        cj[i] -= F[k * n + i] * F[k * n + j];
    if (!(cj[j] > 0) || !isfinite(cj[j]))
      return -1;
    cj[j] = sqrt(cj[j]);
    for (long i = j + 1; i < n; i++)
      cj[i] /= cj[j];
  }
  return 0;
}

/* Solve M*y = b in place in Y (stride S), from M = L*L'. */
static inline void mdrt_chol_vsolve(long n, const double *F, double *y, long s) {
  for (long j = 0; j < n; j++) {
    y[j * s] /= F[j * n + j];
    for (long i = j + 1; i < n; i++)
      y[i * s] -= F[j * n + i] * y[j * s];
  }
  for (long j = n - 1; j >= 0; j--) {
    double t = y[j * s];
    for (long i = j + 1; i < n; i++)
      t -= F[j * n + i] * y[i * s];
    y[j * s] = t / F[j * n + j];
  }
}

MDRT_INLINE int mdrt_chol_solve(long n, long m, const double *F, const double *B, double *X) {
  for (long i = 0; X != B && i < n * m; i++)
    X[i] = B[i];
  for (long k = 0; k < m; k++)
    mdrt_chol_vsolve(n, F, X + k, m);
  return 0;
}

MDRT_INLINE int mdrt_chol_solve_right(long m, long n, const double *F, const double *B,
                                      double *X) {
  for (long i = 0; X != B && i < n * m; i++)
    X[i] = B[i];
  for (long k = 0; k < m; k++)
    mdrt_chol_vsolve(n, F, X + k * n, 1);
  return 0;
}

/* Symmetric to the last bit, as dpotri's is. */
MDRT_INLINE int mdrt_chol_inverse(long n, const double *F, double *out) {
  for (long i = 0; i < n * n; i++)
    out[i] = i % (n + 1) == 0;
  mdrt_chol_solve_right(n, n, F, out, out);
  for (long i = 0; i < n; i++)
    for (long j = 0; j < i; j++)
      out[i * n + j] = out[j * n + i];
  return 0;
}
#endif

MDRT_INLINE double mdrt_lu_det(long n, const double *F) {
  const int *piv = (const int *)(F + n * n);
  double d = 1;
  for (long i = 0; i < n; i++)
    d *= piv[i] == i + 1 ? F[i * n + i] : -F[i * n + i];
  return d;
}

MDRT_INLINE double mdrt_lu_logdet(long n, const double *F) {
  double s = 0;
  for (long i = 0; i < n; i++)
    s += log(fabs(F[i * n + i]));
  return s;
}

MDRT_INLINE double mdrt_chol_det(long n, const double *F) {
  double d = 1;
  for (long i = 0; i < n; i++)
    d *= F[i * n + i] * F[i * n + i];
  return d;
}

MDRT_INLINE double mdrt_chol_logdet(long n, const double *F) { return 2 * mdrt_lu_logdet(n, F); }

/* One factorisation in scratch memory; the det is 0 for an exact zero
   pivot, NaN for non-finite input. */
MDRT_INLINE int mdrt_lu_inv(long n, const double *A, double *out, double *det) {
  double *F = (double *)malloc(sizeof(double) * (size_t)(n * n + n + 1));
  int rc = F ? mdrt_lu(n, A, F) : -2;
  if (det && rc != -2) {
    long i = 0;
    while (i < n * n && isfinite(A[i]))
      i++;
    *det = i < n * n ? NAN : rc == 0 ? mdrt_lu_det(n, F) : 0;
  }
  if (rc == 0 && out)
    rc = mdrt_lu_inverse(n, F, out);
  free(F);
  return rc;
}

MDRT_INLINE int mdrt_logdet(long n, const double *A, double *out) {
  double *F = (double *)malloc(sizeof(double) * (size_t)(n * n + n + 1));
  int rc = F ? mdrt_lu(n, A, F) : -2;
  if (rc == 0)
    *out = mdrt_lu_logdet(n, F);
  free(F);
  return rc;
}

MDRT_INLINE int mdrt_chol_inv(long n, const double *A, double *out, double *det,
                              double *logdet) {
  double *F = (double *)malloc(sizeof(double) * (size_t)(n * n + 1));
  int rc = F ? mdrt_chol(n, A, F) : -2;
  if (rc == 0 && det)
    *det = mdrt_chol_det(n, F);
  if (rc == 0 && logdet)
    *logdet = mdrt_chol_logdet(n, F);
  if (rc == 0 && out)
    rc = mdrt_chol_inverse(n, F, out);
  free(F);
  return rc;
}

MDRT_INLINE void mdrt_unit(long n, const double *x, double *y) {
  double s = sqrt(mdrt_sumsq(n, x));
  for (long i = 0; i < n; i++)
    y[i] = s == 0 ? 0 : x[i] / s;
}

MDRT_INLINE double mdrt_sigmoid(double x) {
  double z = exp(-fabs(x));
  return x >= 0 ? 1 / (1 + z) : z / (1 + z);
}

MDRT_INLINE double mdrt_softplus(double x) { return (x > 0 ? x : 0) + log1p(exp(-fabs(x))); }

// NaN goes through, as in PyTorch: the comparison alone would make it 0.
MDRT_INLINE double mdrt_relu(double x) { return x > 0 || isnan(x) ? x : 0; }

MDRT_INLINE double mdrt_sign(double x) { return x > 0 ? 1 : x < 0 ? -1 : x == 0 ? 0 : x; }

/* The elementwise functions on blocks, y = f(x). MDRT_VECTOR is where the
   library hands a block to its vector code (runtime/vmath.h). */
MDRT_INLINE void mdrt_vexp(long n, const double *x, double *y) {
  MDRT_VECTOR(vexp, (n, x, y));
  for (long i = 0; i < n; i++)
    y[i] = exp(x[i]);
}

MDRT_INLINE void mdrt_vlog(long n, const double *x, double *y) {
  MDRT_VECTOR(vlog, (n, x, y));
  for (long i = 0; i < n; i++)
    y[i] = log(x[i]);
}

MDRT_INLINE void mdrt_vsqrt(long n, const double *x, double *y) {
  MDRT_VECTOR(vsqrt, (n, x, y));
  for (long i = 0; i < n; i++)
    y[i] = sqrt(x[i]);
}

MDRT_INLINE void mdrt_vsin(long n, const double *x, double *y) {
  MDRT_VECTOR(vsin, (n, x, y));
  for (long i = 0; i < n; i++)
    y[i] = sin(x[i]);
}

MDRT_INLINE void mdrt_vcos(long n, const double *x, double *y) {
  MDRT_VECTOR(vcos, (n, x, y));
  for (long i = 0; i < n; i++)
    y[i] = cos(x[i]);
}

MDRT_INLINE void mdrt_vtan(long n, const double *x, double *y) {
  MDRT_VECTOR(vtan, (n, x, y));
  for (long i = 0; i < n; i++)
    y[i] = tan(x[i]);
}

MDRT_INLINE void mdrt_vtanh(long n, const double *x, double *y) {
  MDRT_VECTOR(vtanh, (n, x, y));
  for (long i = 0; i < n; i++)
    y[i] = tanh(x[i]);
}

MDRT_INLINE void mdrt_vasin(long n, const double *x, double *y) {
  MDRT_VECTOR(vasin, (n, x, y));
  for (long i = 0; i < n; i++)
    y[i] = asin(x[i]);
}

MDRT_INLINE void mdrt_vacos(long n, const double *x, double *y) {
  MDRT_VECTOR(vacos, (n, x, y));
  for (long i = 0; i < n; i++)
    y[i] = acos(x[i]);
}

MDRT_INLINE void mdrt_vatan(long n, const double *x, double *y) {
  MDRT_VECTOR(vatan, (n, x, y));
  for (long i = 0; i < n; i++)
    y[i] = atan(x[i]);
}

MDRT_INLINE void mdrt_verf(long n, const double *x, double *y) {
  MDRT_VECTOR(verf, (n, x, y));
  for (long i = 0; i < n; i++)
    y[i] = erf(x[i]);
}

MDRT_INLINE void mdrt_vfabs(long n, const double *x, double *y) {
  MDRT_VECTOR(vfabs, (n, x, y));
  for (long i = 0; i < n; i++)
    y[i] = fabs(x[i]);
}

MDRT_INLINE void mdrt_vsigmoid(long n, const double *x, double *y) {
  MDRT_VECTOR(vsigmoid, (n, x, y));
  for (long i = 0; i < n; i++)
    y[i] = mdrt_sigmoid(x[i]);
}

MDRT_INLINE void mdrt_vsoftplus(long n, const double *x, double *y) {
  MDRT_VECTOR(vsoftplus, (n, x, y));
  for (long i = 0; i < n; i++)
    y[i] = mdrt_softplus(x[i]);
}

MDRT_INLINE void mdrt_vrelu(long n, const double *x, double *y) {
  MDRT_VECTOR(vrelu, (n, x, y));
  for (long i = 0; i < n; i++)
    y[i] = mdrt_relu(x[i]);
}

MDRT_INLINE void mdrt_vsign(long n, const double *x, double *y) {
  MDRT_VECTOR(vsign, (n, x, y));
  for (long i = 0; i < n; i++)
    y[i] = mdrt_sign(x[i]);
}

/* exp of a row's elements less its maximum, a block at a time through
   mdrt_vexp (so after it), summed. */
MDRT_INLINE double mdrt_logsumexp(long n, const double *x) {
  double mx = -INFINITY, s = 0, t[64];
  for (long i = 0; i < n; i++)
    mx = x[i] > mx ? x[i] : mx;
  if (!isfinite(mx))
    return mx;
  for (long i = 0; i < n; i += 64) {
    long m = n - i < 64 ? n - i : 64;
    for (long j = 0; j < m; j++)
      t[j] = x[i + j] - mx;
    mdrt_vexp(m, t, t);
    for (long j = 0; j < m; j++)
      s += t[j];
  }
  return mx + log(s);
}

MDRT_INLINE void mdrt_logsumexp_rows(long n, long m, const double *A, double *out) {
  for (long i = 0; i < n; i++)
    out[i] = mdrt_logsumexp(m, A + i * m);
}

MDRT_INLINE void mdrt_softmax_rows(long n, long m, const double *A, double *out) {
  for (long i = 0; i < n; i++) {
    double lse = mdrt_logsumexp(m, A + i * m), *y = out + i * m;
    for (long j = 0; j < m; j++)
      y[j] = A[i * m + j] - lse;
    mdrt_vexp(m, y, y);
  }
}

/* Both from one exp(-|x|) in the library's vector code; twice here. */
MDRT_INLINE void mdrt_vsoftplus_sigmoid(long n, const double *x, double *sp, double *sg) {
  MDRT_VECTOR(vsoftplus_sigmoid, (n, x, sp, sg));
  for (long i = 0; i < n; i++) {
    double v = x[i];
    sp[i] = mdrt_softplus(v);
    sg[i] = mdrt_sigmoid(v);
  }
}
