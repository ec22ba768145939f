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
 * MDRT_INLINE marks them; the library defines it empty.
 */
#ifndef MDRT_INLINE
#define MDRT_INLINE static inline
#endif

MDRT_INLINE void *mdrt_alloc(long nbytes) {
  return nbytes < 0 ? NULL : malloc(nbytes > 0 ? (size_t)nbytes : 1);
}

MDRT_INLINE void mdrt_free(void *p) { free(p); }

/* C = alpha*op(A)*op(B) + beta*C, row-major; op(A) is m x k. */
static inline void mdrt_gemm(int transa, int transb, long m, long n, long k, double alpha,
                             const double *A, const double *B, double beta, double *C) {
  for (long i = 0; i < m; i++) {
    for (long j = 0; j < n; j++)
      C[i * n + j] = beta == 0 ? 0 : beta * C[i * n + j];
    for (long p = 0; p < k; p++) {
      double a = alpha * (transa ? A[p * m + i] : A[i * k + p]);
      if (a == 0)
        continue;
      for (long j = 0; j < n; j++)
        C[i * n + j] += a * (transb ? B[j * k + p] : B[p * n + j]);
    }
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

MDRT_INLINE double mdrt_sum(long n, const double *x) {
  double s = 0;
  for (long i = 0; i < n; i++)
    s += x[i];
  return s;
}

MDRT_INLINE double mdrt_sumsq(long n, const double *x) {
  double s = 0;
  for (long i = 0; i < n; i++)
    s += x[i] * x[i];
  return s;
}

/* LU with partial pivoting of a copy of A: det(A) into *det, inv(A) into
   OUT (each when not NULL), and log|det A| into *logdet. 0, or -1 if A is
   singular, -2 without memory. */
static inline int mdrt_lu(long n, const double *A, double *out, double *det, double *logdet) {
  double *lu = (double *)malloc(sizeof(double) * (size_t)(n * n + 1));
  long *piv = (long *)malloc(sizeof(long) * (size_t)(n + 1));
  int rc = lu && piv ? 0 : -2;
  double d = 1, ld = 0;
  for (long i = 0; rc == 0 && i < n * n; i++)
    lu[i] = A[i];
  for (long c = 0; rc == 0 && c < n; c++) {
    long p = c;
    for (long r = c + 1; r < n; r++)
      if (fabs(lu[r * n + c]) > fabs(lu[p * n + c]))
        p = r;
    piv[c] = p;
    if (lu[p * n + c] == 0 || !isfinite(lu[p * n + c])) {
      rc = -1;
      break;
    }
    if (p != c) {
      d = -d;
      for (long j = 0; j < n; j++) {
        double t = lu[c * n + j];
        lu[c * n + j] = lu[p * n + j];
        lu[p * n + j] = t;
      }
    }
    d *= lu[c * n + c];
    ld += log(fabs(lu[c * n + c]));
    for (long r = c + 1; r < n; r++) {
      double f = lu[r * n + c] /= lu[c * n + c];
      for (long j = c + 1; j < n; j++)
        lu[r * n + j] -= f * lu[c * n + j];
    }
  }
  // The inverse, one column of the identity at a time: P A = L U.
  for (long col = 0; rc == 0 && out && col < n; col++) {
    double *x = out + col;  /* column col of OUT, stride n */
    for (long i = 0; i < n; i++)
      x[i * n] = i == col;
    for (long i = 0; i < n; i++) {
      double t = x[i * n];
      x[i * n] = x[piv[i] * n];
      x[piv[i] * n] = t;
    }
    for (long i = 0; i < n; i++)
      for (long j = 0; j < i; j++)
        x[i * n] -= lu[i * n + j] * x[j * n];
    for (long i = n - 1; i >= 0; i--) {
      for (long j = i + 1; j < n; j++)
        x[i * n] -= lu[i * n + j] * x[j * n];
      x[i * n] /= lu[i * n + i];
    }
  }
  if (det)
    *det = rc == 0 ? d : 0;
  if (logdet)
    *logdet = ld;
  free(lu);
  free(piv);
  return rc;
}

static inline int mdrt_lu_inv(long n, const double *A, double *out, double *det) {
  return mdrt_lu(n, A, out, det, NULL);
}

static inline int mdrt_logdet(long n, const double *A, double *out) {
  return mdrt_lu(n, A, NULL, NULL, out);
}

MDRT_INLINE double mdrt_logsumexp(long n, const double *x) {
  double mx = -INFINITY, s = 0;
  for (long i = 0; i < n; i++)
    mx = x[i] > mx ? x[i] : mx;
  if (!isfinite(mx))
    return mx;
  for (long i = 0; i < n; i++)
    s += exp(x[i] - mx);
  return mx + log(s);
}

MDRT_INLINE void mdrt_logsumexp_rows(long n, long m, const double *A, double *out) {
  for (long i = 0; i < n; i++)
    out[i] = mdrt_logsumexp(m, A + i * m);
}

MDRT_INLINE void mdrt_softmax_rows(long n, long m, const double *A, double *out) {
  for (long i = 0; i < n; i++) {
    double lse = mdrt_logsumexp(m, A + i * m);
    for (long j = 0; j < m; j++)
      out[i * m + j] = exp(A[i * m + j] - lse);
  }
}

MDRT_INLINE double mdrt_sigmoid(double x) {
  double z = exp(-fabs(x));
  return x >= 0 ? 1 / (1 + z) : z / (1 + z);
}

MDRT_INLINE double mdrt_softplus(double x) { return (x > 0 ? x : 0) + log1p(exp(-fabs(x))); }

// NaN goes through, as in PyTorch: the comparison alone would make it 0.
MDRT_INLINE double mdrt_relu(double x) { return x > 0 || isnan(x) ? x : 0; }

MDRT_INLINE double mdrt_sign(double x) { return x > 0 ? 1 : x < 0 ? -1 : x == 0 ? 0 : x; }
