/*
 * matdiff_rt.h - the matdiff runtime: the numeric kernels that emitted code
 * calls, and a tape-based reverse-mode AD that serves as the independent
 * oracle for the symbolic gradients.
 *
 * All matrices are dense, row-major doubles. A scalar is a 1x1 matrix, a
 * vector an n x 1 column. Sizes are `long`.
 *
 * This header includes nothing: the JIT feeds it to libtcc as it is.
 */
#ifndef MATDIFF_RT_H
#define MATDIFF_RT_H

#ifdef __cplusplus
extern "C" {
#endif

/* ---- kernels ------------------------------------------------------------ */

/* C = alpha*op(A)*op(B) + beta*C, where op(A) is m x k and op(B) is k x n.
   A is stored m x k, or k x m when transa; B is k x n, or n x k when transb.
   Transposes are flags, never copies. beta == 0 ignores C's old contents. */
void mdrt_gemm(int transa, int transb, long m, long n, long k, double alpha,
               const double *A, const double *B, double beta, double *C);

void mdrt_copy(long n, const double *x, double *y);                  /* y = x */
void mdrt_fill(long n, double v, double *y);                         /* y = v */
void mdrt_axpby(long n, double a, const double *x, double b, double *y); /* y = a*x + b*y */
/* Y (r x c) = a*X' + b*Y, where X is c x r. */
void mdrt_axpby_t(long r, long c, double a, const double *X, double b, double *Y);
double mdrt_sum(long n, const double *x);
double mdrt_sumsq(long n, const double *x);
double mdrt_dot(long n, const double *x, const double *y);

/* LU with partial pivoting of the n x n matrix A. mdrt_lu_inv writes inv(A)
   into OUT (skipped if NULL; OUT may be A) and det(A) into *DET (if DET is
   not NULL); mdrt_logdet writes log|det A| into *OUT. They return 0; -1 if A
   is singular: an exact zero pivot (*DET is then 0) or a non-finite one
   (*DET is then NaN); -2 if scratch memory runs out. */
int mdrt_lu_inv(long n, const double *A, double *out, double *det);
int mdrt_logdet(long n, const double *A, double *out);

/* Stable reductions along rows (functions.c): for the n x m matrix A,
   out[i] = log(sum_j exp(A[i][j])), and the row-wise softmax into OUT (n x m).
   Both subtract the row's maximum first, so |A| up to 700 and beyond is fine. */
double mdrt_logsumexp(long n, const double *x);
void mdrt_logsumexp_rows(long n, long m, const double *A, double *out);
void mdrt_softmax_rows(long n, long m, const double *A, double *out);

/* Elementwise functions that C's libm lacks, stable for |x| up to 700:
   sigmoid(x) = 1/(1 + exp(-x)), softplus(x) = log(1 + exp(x)),
   relu(x) = max(x, 0), sign(x) in {-1, 0, 1} (0 at 0, and NaN for NaN). */
double mdrt_sigmoid(double x);
double mdrt_softplus(double x);
double mdrt_relu(double x);
double mdrt_sign(double x);

/* Single precision (float.c), for `matdiff compile --float`: each means
   what the function without _f means. */
void mdrt_gemm_f(int transa, int transb, long m, long n, long k, float alpha, const float *A,
                 const float *B, float beta, float *C);
void mdrt_copy_f(long n, const float *x, float *y);
void mdrt_fill_f(long n, float v, float *y);
void mdrt_axpby_f(long n, float a, const float *x, float b, float *y);
float mdrt_sum_f(long n, const float *x);
float mdrt_sumsq_f(long n, const float *x);
float mdrt_dot_f(long n, const float *x, const float *y);
int mdrt_lu_inv_f(long n, const float *A, float *out, float *det);
int mdrt_logdet_f(long n, const float *A, float *out);
float mdrt_logsumexp_f(long n, const float *x);
void mdrt_logsumexp_rows_f(long n, long m, const float *A, float *out);
void mdrt_softmax_rows_f(long n, long m, const float *A, float *out);
float mdrt_sigmoid_f(float x);
float mdrt_softplus_f(float x);
float mdrt_relu_f(float x);
float mdrt_sign_f(float x);

/* Workspace for emitted code: one allocation per call, freed by mdrt_free. */
void *mdrt_alloc(long nbytes);                /* NULL on failure or nbytes < 0 */
void mdrt_free(void *p);

/* ---- tape --------------------------------------------------------------- */

/* A tape records operations on matrices as they are evaluated. Values are
   named by integer handles (0, 1, 2, ... in creation order). Leaves keep a
   gradient that every backward pass ADDS into, until mdrt_tape_zero_grad,
   like PyTorch's .grad. Operations after a backward pass may be recorded
   on the same tape and differentiated again. */
typedef struct mdrt_tape mdrt_tape;

typedef enum mdrt_op {
  /* unary: mdrt_tape_unary(t, op, a, k) */
  MDRT_NEG,          /* -a */
  MDRT_TRANSPOSE,    /* a' */
  MDRT_SUM,          /* k=0: sum of all (1x1); k=1: column sums (1 x c); k=2: row sums (r x 1) */
  MDRT_MEAN,         /* as MDRT_SUM, divided by the count */
  MDRT_SUMSQ,        /* sum of squares (1x1) */
  MDRT_NORM2,        /* sqrt of sum of squares (1x1) */
  MDRT_NORM1,        /* sum of absolute values (1x1) */
  MDRT_EXP, MDRT_LOG, MDRT_SQRT, MDRT_SIN, MDRT_COS, MDRT_TAN, MDRT_TANH,
  MDRT_SIGMOID, MDRT_RELU, MDRT_SOFTPLUS, MDRT_ABS, MDRT_SIGN,
  MDRT_ASIN, MDRT_ACOS, MDRT_ATAN,   /* elementwise; relu/abs/sign take subgradient 0 at 0 */
  MDRT_LOGSUMEXP,    /* k=0: over all (1x1); k=2: per row (r x 1); stable */
  MDRT_SOFTMAX,      /* k=2: per row, same shape; stable */
  MDRT_TRACE,        /* square a -> 1x1 */
  MDRT_DET,          /* square a -> 1x1, LU with partial pivoting */
  MDRT_LOGDET,       /* log|det a| */
  MDRT_INV,          /* square a -> inverse */
  MDRT_DIAG,         /* n x 1 vector -> n x n diagonal matrix; square n x n -> n x 1 diagonal */
  MDRT_MPOW,         /* square a to the integer power k >= 0 (matrix power) */
  /* binary: mdrt_tape_binary(t, op, a, b) */
  MDRT_ADD,          /* elementwise with broadcasting: equal shapes, a 1x1, */
  MDRT_SUB,          /*   a 1 x c row against r x c, or an r x 1 column     */
  MDRT_EMUL,         /*   against r x c, on either side                     */
  MDRT_EDIV,
  MDRT_EPOW,         /* elementwise a.^b, broadcasting as above */
  MDRT_MATMUL        /* (r x k) * (k x c) */
} mdrt_op;

mdrt_tape *mdrt_tape_new(void);            /* NULL on allocation failure */
void mdrt_tape_free(mdrt_tape *t);

/* A leaf: DATA (rows*cols doubles) is copied; it has a gradient, zero at first. */
int mdrt_tape_leaf(mdrt_tape *t, long rows, long cols, const double *data);
/* A constant: like a leaf, but no gradient flows into it. DATA may be NULL for zeros. */
int mdrt_tape_const(mdrt_tape *t, long rows, long cols, const double *data);
/* Record an operation; its value is computed now. Returns the handle, or -1
   with mdrt_tape_error set (bad handle, shapes that do not fit, singular matrix). */
int mdrt_tape_unary(mdrt_tape *t, mdrt_op op, int a, long k);
int mdrt_tape_binary(mdrt_tape *t, mdrt_op op, int a, int b);

/* Reverse pass from OUT: ADDS seed' * d(out)/d(leaf) into every leaf's
   gradient. SEED has out's shape; NULL means all ones. 0, or -1 on error. */
int mdrt_tape_backward(mdrt_tape *t, int out, const double *seed);
void mdrt_tape_zero_grad(mdrt_tape *t);   /* every leaf's gradient to zero */

long mdrt_tape_rows(const mdrt_tape *t, int h);
long mdrt_tape_cols(const mdrt_tape *t, int h);
const double *mdrt_tape_value(const mdrt_tape *t, int h);
const double *mdrt_tape_grad(const mdrt_tape *t, int h);   /* NULL for non-leaves */
const char *mdrt_tape_error(const mdrt_tape *t);            /* last error, "" if none */

#ifdef __cplusplus
}
#endif
#endif
