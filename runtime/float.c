/*
 * float.c - the runtime's single-precision kernels, for the C that
 * `matdiff compile --float` writes. They are the plain loops of
 * standalone.c with double read as float, except the matrix product, which
 * goes to cblas_sgemm. Each mdrt_X_f means what mdrt_X means.
 */
#include <math.h>
#include <stdlib.h>
#ifndef MDRT_NO_BLAS
#include <cblas.h>
#endif
#include "matdiff_rt.h"

// standalone.c, in float, under internal names.
#define double float
#define exp expf
#define log logf
#define fabs fabsf
#define log1p log1pf
#define mdrt_alloc sa_alloc
#define mdrt_free sa_free
#define mdrt_gemm sa_gemm
#define mdrt_copy sa_copy
#define mdrt_fill sa_fill
#define mdrt_axpby sa_axpby
#define mdrt_sum sa_sum
#define mdrt_sumsq sa_sumsq
#define mdrt_dot sa_dot
#define mdrt_lu sa_lu
#define mdrt_lu_inv sa_lu_inv
#define mdrt_logdet sa_logdet
#define mdrt_logsumexp sa_logsumexp
#define mdrt_logsumexp_rows sa_logsumexp_rows
#define mdrt_softmax_rows sa_softmax_rows
#define mdrt_sigmoid sa_sigmoid
#define mdrt_softplus sa_softplus
#define mdrt_relu sa_relu
#define mdrt_sign sa_sign
#include "standalone.c"
#undef double
#undef exp
#undef log
#undef fabs
#undef log1p

void mdrt_gemm_f(int transa, int transb, long m, long n, long k, float alpha, const float *A,
                 const float *B, float beta, float *C) {
#ifdef MDRT_NO_BLAS
  sa_gemm(transa, transb, m, n, k, alpha, A, B, beta, C);
#else
  if (m <= 0 || n <= 0)
    return;
  if (k <= 0) {
    sa_gemm(transa, transb, m, n, 0, alpha, A, B, beta, C);
    return;
  }
  cblas_sgemm(CblasRowMajor, transa ? CblasTrans : CblasNoTrans, transb ? CblasTrans : CblasNoTrans,
              (int)m, (int)n, (int)k, alpha, A, transa ? (int)m : (int)k, B, transb ? (int)k : (int)n,
              beta, C, (int)n);
#endif
}

void mdrt_copy_f(long n, const float *x, float *y) { sa_copy(n, x, y); }
void mdrt_fill_f(long n, float v, float *y) { sa_fill(n, v, y); }
void mdrt_axpby_f(long n, float a, const float *x, float b, float *y) { sa_axpby(n, a, x, b, y); }
float mdrt_sum_f(long n, const float *x) { return sa_sum(n, x); }
float mdrt_sumsq_f(long n, const float *x) { return sa_sumsq(n, x); }
float mdrt_dot_f(long n, const float *x, const float *y) { return sa_dot(n, x, y); }
int mdrt_lu_inv_f(long n, const float *A, float *out, float *det) { return sa_lu_inv(n, A, out, det); }
int mdrt_logdet_f(long n, const float *A, float *out) { return sa_logdet(n, A, out); }
float mdrt_logsumexp_f(long n, const float *x) { return sa_logsumexp(n, x); }
void mdrt_logsumexp_rows_f(long n, long m, const float *A, float *out) { sa_logsumexp_rows(n, m, A, out); }
void mdrt_softmax_rows_f(long n, long m, const float *A, float *out) { sa_softmax_rows(n, m, A, out); }
float mdrt_sigmoid_f(float x) { return sa_sigmoid(x); }
float mdrt_softplus_f(float x) { return sa_softplus(x); }
float mdrt_relu_f(float x) { return sa_relu(x); }
float mdrt_sign_f(float x) { return sa_sign(x); }
