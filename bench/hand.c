/*
 * hand.c - the benchmark's baseline: the three losses and their gradients,
 * and the logistic and factorisation losses' Hessians and HVP in closed
 * form, written by hand against CBLAS, as an expert would, to hold
 * matdiff's emitted code against. Products are dgemm/dgemv with the scale folded into
 * alpha and the accumulation into beta; everything elementwise between two
 * BLAS calls is one fused loop; nothing is allocated.
 */
#include <cblas.h>
#include <math.h>
#include <string.h>
#include "hand.h"

long hand_seed_ws(long n, long k, long m) {
  (void)k;
  return n * m * (long)sizeof(double);
}

// R = X*W + b (copy, then dgemm with beta = 1); y = sum(R.^2) and db += 2*R
// in one pass; dX += 2*R*W', dW += 2*X'*R.
double hand_seed(long n, long k, long m, const double *X, const double *W, const double *b,
                 double *dX, double *dW, double *db, double *R) {
  memcpy(R, b, sizeof *R * (size_t)(n * m));
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)m, (int)k, 1.0, X, (int)k,
              W, (int)m, 1.0, R, (int)m);
  double y = 0;
  for (long i = 0; i < n * m; i++) {
    double r = R[i];
    y += r * r;
    db[i] += 2 * r;
  }
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)k, (int)m, 2.0, R, (int)m,
              W, (int)m, 1.0, dX, (int)k);
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)k, (int)m, (int)n, 2.0, X, (int)k,
              R, (int)m, 1.0, dW, (int)m);
  return y;
}

long hand_logistic_ws(long n, long d) {
  (void)d;
  return n * (long)sizeof(double);
}

// z = X*w (dgemv); one pass over z for the loss and r = (sigmoid(z) - y)/n,
// sharing exp(-|z|) between softplus and sigmoid; dw += X'*r (dgemv),
// db += sum(r).
double hand_logistic(long n, long d, const double *X, const double *w, const double *b,
                     const double *y, double *dw, double *db, double *z) {
  cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)n, (int)d, 1.0, X, (int)d, w, 1, 0.0, z, 1);
  double loss = 0, sr = 0, inv_n = 1.0 / (double)n;
  for (long i = 0; i < n; i++) {
    double zi = z[i] + b[0], e = exp(-fabs(zi));
    double sig = zi >= 0 ? 1 / (1 + e) : e / (1 + e);
    loss += fmax(zi, 0) + log1p(e) - y[i] * zi;
    z[i] = (sig - y[i]) * inv_n;
    sr += z[i];
  }
  cblas_dgemv(CblasRowMajor, CblasTrans, (int)n, (int)d, 1.0, X, (int)d, z, 1, 1.0, dw, 1);
  db[0] += sr;
  return loss * inv_n;
}

long hand_mlp_ws(long n, long d, long h, long k) {
  (void)d;
  return (2 * n * h + n * k) * (long)sizeof(double);
}

// Forward: H = tanh(X*W1 + b1') (bias rows copied in, dgemm with beta = 1,
// tanh in place), Z = H*W2 + b2' the same way. One pass per row of Z gives
// its logsumexp, the loss and G = (softmax(Z) - Y)/n, with db2 += column sums
// of G. Backward: dW2 += H'*G, D = G*W2', D .*= 1 - H.^2 with db1 += column
// sums of D in the same pass, dW1 += X'*D.
double hand_mlp(long n, long d, long h, long k, const double *X, const double *W1,
                const double *b1, const double *W2, const double *b2, const double *Y,
                double *dW1, double *db1, double *dW2, double *db2, double *ws) {
  double *H = ws, *D = H + n * h, *Z = D + n * h;
  for (long i = 0; i < n; i++)
    memcpy(H + i * h, b1, sizeof *H * (size_t)h);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)h, (int)d, 1.0, X, (int)d,
              W1, (int)h, 1.0, H, (int)h);
  for (long i = 0; i < n * h; i++)
    H[i] = tanh(H[i]);
  for (long i = 0; i < n; i++)
    memcpy(Z + i * k, b2, sizeof *Z * (size_t)k);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)k, (int)h, 1.0, H, (int)h,
              W2, (int)k, 1.0, Z, (int)k);
  double loss = 0, inv_n = 1.0 / (double)n;
  for (long i = 0; i < n; i++) {
    double *z = Z + i * k;
    const double *yr = Y + i * k;
    double mx = z[0], yz = 0;
    for (long j = 0; j < k; j++) {
      mx = fmax(mx, z[j]);
      yz += yr[j] * z[j];
    }
    double s = 0;
    for (long j = 0; j < k; j++) {
      z[j] = exp(z[j] - mx);
      s += z[j];
    }
    double lse = mx + log(s), inv_s = 1 / s;
    for (long j = 0; j < k; j++) {
      z[j] = (z[j] * inv_s - yr[j]) * inv_n;
      db2[j] += z[j];
    }
    loss += lse - yz;
  }
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)h, (int)k, (int)n, 1.0, H, (int)h,
              Z, (int)k, 1.0, dW2, (int)k);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)h, (int)k, 1.0, Z, (int)k,
              W2, (int)k, 0.0, D, (int)h);
  for (long i = 0; i < n; i++)
    for (long j = 0; j < h; j++) {
      double hv = H[i * h + j], g = D[i * h + j] * (1 - hv * hv);
      D[i * h + j] = g;
      db1[j] += g;
    }
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)d, (int)h, (int)n, 1.0, X, (int)d,
              D, (int)h, 1.0, dW1, (int)h);
  return loss * inv_n;
}

// H += B'*B, B' the rows of the n x k matrix A: dsyrk into T's upper
// triangle (k x k scratch), then added into both triangles of H, which
// need not be symmetric (the same contract as P_hessian: it adds).
static void add_syrk(long n, long k, double alpha, const double *A, double *H, double *T) {
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)k, (int)n, alpha, A, (int)k, 0.0, T,
              (int)k);
  for (long i = 0; i < k; i++) {
    H[i * k + i] += T[i * k + i];
    for (long j = i + 1; j < k; j++) {
      H[i * k + j] += T[i * k + j];
      H[j * k + i] += T[i * k + j];
    }
  }
}

long hand_logistic_hessian_ws(long n, long d) {
  return (n + n * d + d * d) * (long)sizeof(double);
}

// The closed form X'*diag(s)*X/n, s = sigmoid(z).*(1 - sigmoid(z)) >= 0:
// z = X*w + b (dgemv), the rows of X scaled by sqrt(s/n) into B, then
// dsyrk (half gemm's work) and H += B'*B.
void hand_logistic_hessian(long n, long d, const double *X, const double *w, const double *b,
                           double *H, double *ws) {
  double *z = ws, *B = z + n, *T = B + n * d, inv_n = 1.0 / (double)n;
  cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)n, (int)d, 1.0, X, (int)d, w, 1, 0.0, z, 1);
  for (long i = 0; i < n; i++) {
    double zi = z[i] + b[0], e = exp(-fabs(zi));
    double r = sqrt(e * inv_n) / (1 + e);  // sqrt(sigmoid(z)*(1 - sigmoid(z))/n)
    for (long j = 0; j < d; j++)
      B[i * d + j] = r * X[i * d + j];
  }
  add_syrk(n, d, 1.0, B, H, T);
}

long hand_logistic_hvp_ws(long n, long d) {
  (void)d;
  return 2 * n * (long)sizeof(double);
}

// The closed form X'*(s.*(X*v))/n: z = X*w + b and t = X*v (dgemv each),
// t .*= s/n in one pass, hv += X'*t (dgemv).
void hand_logistic_hvp(long n, long d, const double *X, const double *w, const double *b,
                       const double *v, double *hv, double *ws) {
  double *z = ws, *t = z + n, inv_n = 1.0 / (double)n;
  cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)n, (int)d, 1.0, X, (int)d, w, 1, 0.0, z, 1);
  cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)n, (int)d, 1.0, X, (int)d, v, 1, 0.0, t, 1);
  for (long i = 0; i < n; i++) {
    double e = exp(-fabs(z[i] + b[0]));
    t[i] *= e / ((1 + e) * (1 + e)) * inv_n;  // sigmoid(z)*(1 - sigmoid(z))/n
  }
  cblas_dgemv(CblasRowMajor, CblasTrans, (int)n, (int)d, 1.0, X, (int)d, t, 1, 1.0, hv, 1);
}

long hand_factor_hessian_ws(long m, long n, long k) {
  (void)m;
  (void)n;
  return k * k * (long)sizeof(double);
}

// The Hessian of ||R - U*V'||_F^2 + lambda*(||U||_F^2 + ||V||_F^2) wrt U
// (m x k, row-major vec) is block diagonal, I_m kron (2*V'*V + 2*lambda*I):
// G = 2*V'*V by dsyrk, then G + 2*lambda*I added into the m diagonal
// blocks; the rest of H is 0, and is left as it is.
void hand_factor_hessian(long m, long n, long k, const double *R, const double *U,
                         const double *V, const double *lambda, double *H, double *G) {
  (void)R;
  (void)U;
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)k, (int)n, 2.0, V, (int)k, 0.0, G,
              (int)k);
  for (long a = 0; a < k; a++) {
    G[a * k + a] += 2 * lambda[0];
    for (long c = a + 1; c < k; c++)
      G[c * k + a] = G[a * k + c];
  }
  long N = m * k;
  for (long i = 0; i < m; i++)
    for (long a = 0; a < k; a++) {
      double *row = H + (i * k + a) * N + i * k;
      for (long c = 0; c < k; c++)
        row[c] += G[a * k + c];
    }
}
