/*
 * matdiff_rt.h - the matdiff runtime: the numeric kernels that emitted code
 * calls, and a tape-based reverse-mode AD that serves as the independent
 * oracle for the symbolic gradients.
 *
 * All matrices are dense, row-major doubles. A scalar is a 1x1 matrix, a
 * vector an n x 1 column. Sizes are `long`.
 *
 * The prototypes of the kernels come from kernels.def. The header installed,
 * and the one the JIT feeds to libtcc, have kernels.def copied in where it
 * is included: they include nothing.
 */
#ifndef MATDIFF_RT_H
#define MATDIFF_RT_H

#ifdef __cplusplus
extern "C" {
#endif

/* ---- kernels ------------------------------------------------------------ */

/* Everything emitted code may call, from kernels.def: each mdrt_X in double
   and, for `matdiff compile --float`, mdrt_X_f in float, which means what
   mdrt_X means. */
#define mdrt_real double
#define MDRT_KERNEL(ret, name, params, args, dbl, flt) ret mdrt_##name params;
#define MDRT_LIBM(name, fname, arity, who)
#include "kernels.def"
#undef mdrt_real
#undef MDRT_KERNEL
#define mdrt_real float
#define MDRT_KERNEL(ret, name, params, args, dbl, flt) MDRT_TWIN_##flt(ret, name, params)
#define MDRT_TWIN_LOOP(ret, name, params) ret mdrt_##name##_f params;
#define MDRT_TWIN_OWN(ret, name, params) ret mdrt_##name##_f params;
#define MDRT_TWIN_BLAS(ret, name, params) ret mdrt_##name##_f params;
#define MDRT_TWIN_NONE(ret, name, params)
#include "kernels.def"
#undef mdrt_real
#undef MDRT_KERNEL
#undef MDRT_TWIN_LOOP
#undef MDRT_TWIN_OWN
#undef MDRT_TWIN_BLAS
#undef MDRT_TWIN_NONE
#undef MDRT_LIBM

/* The other kernels, which the tape calls. */
void mdrt_fill(long n, double v, double *y);                         /* y = v */
/* Y (r x c) = a*X' + b*Y, where X is c x r. */
void mdrt_axpby_t(long r, long c, double a, const double *X, double b, double *Y);
double mdrt_dot(long n, const double *x, const double *y);

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
  MDRT_NORM2,        /* sqrt of sum of squares (1x1); gradient a/||a||, 0 at 0 */
  MDRT_NORM1,        /* sum of absolute values (1x1) */
  MDRT_LOGSUMEXP,    /* k=0: over all (1x1); k=2: per row (r x 1); stable */
  MDRT_SOFTMAX,      /* k=2: per row, same shape; stable */
  MDRT_TRACE,        /* square a -> 1x1 */
  MDRT_DET,          /* square a -> 1x1, LU with partial pivoting */
  MDRT_LOGDET,       /* log|det a| */
  MDRT_INV,          /* square a -> inverse */
  MDRT_DIAG,         /* n x 1 vector -> n x n diagonal matrix; square n x n -> n x 1 diagonal */
  MDRT_MPOW,         /* square a to the integer power k >= 0 (matrix power) */
  MDRT_UNIT,         /* a/||a||, same shape; 0 where ||a|| = 0 (mdrt_unit) */
  /* binary: mdrt_tape_binary(t, op, a, b) */
  MDRT_ADD,          /* elementwise with broadcasting: equal shapes, a 1x1, */
  MDRT_SUB,          /*   a 1 x c row against r x c, or an r x 1 column     */
  MDRT_EMUL,         /*   against r x c, on either side                     */
  MDRT_EDIV,
  MDRT_EPOW,         /* elementwise a.^b, broadcasting as above */
  MDRT_MATMUL        /* (r x k) * (k x c); the last */
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
/* An elementwise function of matdiff's language by its name, as in
   "exp", "sigmoid", "arcsin": the same C function compiled code calls, with
   its derivative (relu, abs and sign take the subgradient 0 at 0). */
int mdrt_tape_map(mdrt_tape *t, const char *fn, int a);

/* Reverse pass from OUT: ADDS seed' * d(out)/d(leaf) into every leaf's
   gradient. SEED has out's shape; NULL means all ones. 0, or -1 on error. */
int mdrt_tape_backward(mdrt_tape *t, int out, const double *seed);
void mdrt_tape_zero_grad(mdrt_tape *t);   /* every leaf's gradient to zero */

/* Forward mode and second order. A leaf's direction (DIR, rows*cols
   doubles, is copied; NULL makes it zero, as every leaf's is at first) is
   what mdrt_tape_forward differentiates along: it sets every value's
   tangent, its directional derivative (a Jacobian-vector product), which
   mdrt_tape_tangent then reads. Values recorded later have a tangent after
   the next forward pass. 0, or -1 on error (a handle that is not a leaf, a
   singular matrix). */
int mdrt_tape_direction(mdrt_tape *t, int leaf, const double *dir);
int mdrt_tape_forward(mdrt_tape *t);
const double *mdrt_tape_tangent(const mdrt_tape *t, int h);  /* NULL before a forward pass */
/* Forward-over-reverse: mdrt_tape_backward from OUT with SEED, and with it
   the directional derivative of that reverse pass along the leaves'
   directions, which it ADDS into each leaf's hvp: for a scalar OUT, the
   Hessian times the directions stacked, H*v, block by block. It runs a
   forward pass first. 0, or -1 on error, with gradients and hvps as they
   were. mdrt_tape_zero_grad zeros the hvps too. */
int mdrt_tape_backward2(mdrt_tape *t, int out, const double *seed);
const double *mdrt_tape_hvp(const mdrt_tape *t, int leaf);  /* NULL before one */

long mdrt_tape_rows(const mdrt_tape *t, int h);
long mdrt_tape_cols(const mdrt_tape *t, int h);
const double *mdrt_tape_value(const mdrt_tape *t, int h);
const double *mdrt_tape_grad(const mdrt_tape *t, int h);   /* NULL for non-leaves */
const char *mdrt_tape_error(const mdrt_tape *t);            /* last error, "" if none */

#ifdef __cplusplus
}
#endif
#endif
