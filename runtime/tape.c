/*
 * tape.c - reverse-mode AD on a tape, the numeric oracle that matdiff's
 * symbolic derivatives are checked against.
 *
 * It is written to be plainly right rather than fast. Every op is evaluated
 * at once into a fresh dense buffer. Handles are numbered in creation order,
 * which is already a topological order, so mdrt_tape_backward is a single
 * walk from the output down to handle 0 that applies each op's
 * vector-Jacobian rule (micrograd's shape). The rules sit side by side in
 * the "backward" section, each under its math. Broadcasting is undone in
 * one place only, unbroadcast_add. The elementwise functions are those of
 * matdiff's language, one per line of compiler/ops.h, which gives each its
 * C function and the first and second derivatives the tape uses.
 *
 * Forward mode is one walk up in creation order with one tangent rule per
 * op; second order (Hessian-vector products) is forward-over-reverse: the
 * reverse walk carries the tangent of every adjoint beside it, through the
 * same rules plus each rule's curvature, written under it in its own
 * section. All three are the oracles of the symbolic first and second
 * derivatives.
 *
 * A tape owns its memory and its error message and there is no global
 * state, so separate tapes may be used from separate threads. Nothing here
 * prints or exits: failures return -1 and leave a message on the tape.
 */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "matdiff_rt.h"

typedef enum { KIND_LEAF, KIND_CONST, KIND_OP } TapeKind;

/* An operation: an mdrt_op, or an elementwise function of matdiff's
   language (mdrt_tape_map), numbered on from the last mdrt_op in the order
   of compiler/ops.h. */
typedef int TapeOp;
enum {
  TAPE_BEFORE_MAPS = MDRT_MATMUL,
#define OP(...)
#define MAP(name, ...) TAPE_##name,
#include "ops.h"
  TAPE_NOPS
};

typedef struct {
  TapeKind kind;
  TapeOp op;       /* KIND_OP only */
  int a, b;        /* operand handles; b is -1 for unary ops */
  long k;          /* the unary op's parameter: axis or power */
  long rows, cols;
  double *val;
  double *grad;    /* leaves only: the sum over backward passes */
  double *tan;     /* a leaf's direction (NULL: zero); an op's tangent, from
                      the last forward pass (NULL before one) */
  double *hvp;     /* leaves only: the sum over second-order backward passes */
  int needs_grad;  /* a leaf lies at or below, so backward must visit */
} TapeNode;

struct mdrt_tape {
  TapeNode *nodes;
  int len, cap;
  char err[160];
};

static const char *const op_names[TAPE_NOPS] = {
  [MDRT_NEG] = "neg",         [MDRT_TRANSPOSE] = "transpose", [MDRT_SUM] = "sum",
  [MDRT_MEAN] = "mean",       [MDRT_SUMSQ] = "sumsq",         [MDRT_NORM2] = "norm2",
  [MDRT_NORM1] = "norm1",     [MDRT_LOGSUMEXP] = "logsumexp", [MDRT_SOFTMAX] = "softmax",
  [MDRT_TRACE] = "trace",     [MDRT_DET] = "det",             [MDRT_LOGDET] = "logdet",
  [MDRT_INV] = "inv",         [MDRT_DIAG] = "diag",           [MDRT_MPOW] = "mpow",
  [MDRT_UNIT] = "unit",
  [MDRT_ADD] = "add",         [MDRT_SUB] = "sub",             [MDRT_EMUL] = "emul",
  [MDRT_EDIV] = "ediv",       [MDRT_EPOW] = "epow",           [MDRT_MATMUL] = "matmul",
#define OP(...)
#define MAP(name, spelling, ...) [TAPE_##name] = spelling,
#include "ops.h"
};

/* ---- small helpers ------------------------------------------------------ */

__attribute__((format(printf, 2, 3)))
static int fail(mdrt_tape *t, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(t->err, sizeof t->err, fmt, ap);
  va_end(ap);
  return -1;
}

static long numel(const TapeNode *n) {
  return n->rows * n->cols;
}

// Sizes whose buffer fits in memory's address range.
static int size_ok(long r, long c) {
  return r >= 0 && c >= 0 && (c == 0 || r <= LONG_MAX / (long)sizeof(double) / c);
}

// One byte at least, so that NULL always means out of memory.
static double *new_buf(long n) {
  return malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
}

static double *new_zeros(long n) {
  return calloc((size_t)(n > 0 ? n : 1), sizeof(double));
}

static const TapeNode *node(const mdrt_tape *t, int h) {
  return t && h >= 0 && h < t->len ? &t->nodes[h] : NULL;
}

static int bad_handle(mdrt_tape *t, int h) {
  return fail(t, "bad handle %d (the tape holds %d values)", h, t->len);
}

// Element (i,j) of an r x c operand broadcast against a larger shape: a
// size-1 dimension repeats its only index.
static long bidx(long r, long c, long i, long j) {
  return (r == 1 ? 0 : i) * c + (c == 1 ? 0 : j);
}

// dst (r x c) += D (R x C) summed over the dimensions that dst broadcast
// along. The gradient of every broadcast operand comes through here, and
// so does the forward pass of sum.
static void unbroadcast_add(const double *D, long R, long C, double scale, double *dst,
                            long r, long c) {
  for (long i = 0; i < R; i++)
    for (long j = 0; j < C; j++)
      dst[bidx(r, c, i, j)] += scale * D[i * C + j];
}

// The adjoint of unbroadcast_add: dst (R x C) += src (r x c) repeated.
static void broadcast_add(const double *src, long r, long c, double scale, double *dst,
                          long R, long C) {
  for (long i = 0; i < R; i++)
    for (long j = 0; j < C; j++)
      dst[i * C + j] += scale * src[bidx(r, c, i, j)];
}

static void identity(long n, double *Y) {
  mdrt_fill(n * n, 0.0, Y);
  for (long i = 0; i < n; i++)
    Y[i * n + i] = 1.0;
}

/* ---- the tape ----------------------------------------------------------- */

mdrt_tape *mdrt_tape_new(void) {
  mdrt_tape *t = calloc(1, sizeof *t);
  return t;
}

void mdrt_tape_free(mdrt_tape *t) {
  if (!t)
    return;
  for (int h = 0; h < t->len; h++) {
    free(t->nodes[h].val);
    free(t->nodes[h].grad);
    free(t->nodes[h].tan);
    free(t->nodes[h].hvp);
  }
  free(t->nodes);
  free(t);
}

// Append N, taking over its buffers (freed here on failure).
static int push(mdrt_tape *t, TapeNode n) {
  if (t->len == t->cap) {
    int cap = t->cap ? t->cap * 2 : 16;
    TapeNode *nodes = t->cap <= INT_MAX / 2 ? realloc(t->nodes, (size_t)cap * sizeof *nodes) : NULL;
    if (!nodes) {
      free(n.val);
      free(n.grad);
      return fail(t, "tape: out of memory");
    }
    t->nodes = nodes;
    t->cap = cap;
  }
  t->nodes[t->len] = n;
  return t->len++;
}

static int add_input(mdrt_tape *t, TapeKind kind, long rows, long cols, const double *data) {
  const char *what = kind == KIND_LEAF ? "leaf" : "const";
  if (!t)
    return -1;
  if (!size_ok(rows, cols))
    return fail(t, "%s: bad size %ldx%ld", what, rows, cols);
  if (!data && rows * cols > 0 && kind == KIND_LEAF)
    return fail(t, "leaf: data is NULL");
  TapeNode n = {.kind = kind, .a = -1, .b = -1, .rows = rows, .cols = cols,
            .needs_grad = kind == KIND_LEAF};
  n.val = data ? new_buf(rows * cols) : new_zeros(rows * cols);
  n.grad = kind == KIND_LEAF ? new_zeros(rows * cols) : NULL;
  if (!n.val || (kind == KIND_LEAF && !n.grad)) {
    free(n.val);
    free(n.grad);
    return fail(t, "%s: out of memory", what);
  }
  if (data)
    mdrt_copy(rows * cols, data, n.val);
  return push(t, n);
}

int mdrt_tape_leaf(mdrt_tape *t, long rows, long cols, const double *data) {
  return add_input(t, KIND_LEAF, rows, cols, data);
}

int mdrt_tape_const(mdrt_tape *t, long rows, long cols, const double *data) {
  return add_input(t, KIND_CONST, rows, cols, data);
}

/* ---- elementwise functions ---------------------------------------------- */

// Each entry is f and its first and second derivatives, given both x and
// y = f(x) so that the rules can reuse the value (exp, tanh, sigmoid). All
// come from the function's line in compiler/ops.h: f is the C function
// compiled code calls (libm's, or the runtime's kernel), the derivatives
// the line's own formulas, written apart from the compiler's rules.
typedef struct {
  double (*f)(double x);
  double (*df)(double x, double y);
  double (*d2f)(double x, double y);
} Elementwise;

#define OP(...)
#define MAP(name, spelling, cfn, latex, dom, dtape, d2tape, ...) \
  static double d_##name(double x, double y) { (void)x, (void)y; return dtape; } \
  static double d2_##name(double x, double y) { (void)x, (void)y; return d2tape; }
#include "ops.h"

static const Elementwise elementwise[TAPE_NOPS] = {
#define OP(...)
#define MAP(name, spelling, cfn, ...) [TAPE_##name] = {cfn, d_##name, d2_##name},
#define LIBM(d, f) d
#define RT(n) mdrt_##n
#include "ops.h"
#undef LIBM
#undef RT
};

static const Elementwise *elementwise_of(TapeOp op) {
  return op > TAPE_BEFORE_MAPS && op < TAPE_NOPS ? &elementwise[op] : NULL;
}

// Binary elementwise ops: f(a, b), its two partials given a, b, y, and the
// directional derivatives of those partials, given also the tangents da,
// db and dy (second order).
typedef struct {
  double (*f)(double a, double b);
  double (*da)(double a, double b, double y);
  double (*db)(double a, double b, double y);
  double (*dda)(double a, double b, double y, double da, double db, double dy);
  double (*ddb)(double a, double b, double y, double da, double db, double dy);
} Binary;

static double add(double a, double b) { return a + b; }
static double sub(double a, double b) { return a - b; }
static double mul(double a, double b) { return a * b; }
static double quo(double a, double b) { return a / b; }

static double one(double a, double b, double y) { (void)a; (void)b; (void)y; return 1.0; }
static double minus_one(double a, double b, double y) { (void)a; (void)b; (void)y; return -1.0; }
static double take_b(double a, double b, double y) { (void)a; (void)y; return b; }
static double take_a(double a, double b, double y) { (void)b; (void)y; return a; }
/* y = a/b: dy/da = 1/b, dy/db = -a/b^2 = -y/b */
static double d_quo_a(double a, double b, double y) { (void)a; (void)y; return 1.0 / b; }
static double d_quo_b(double a, double b, double y) { (void)a; return -y / b; }

/* y = a^b: dy/da = b a^(b-1), taken as 0 when b = 0 (a^0 is constant even
   at a = 0, where the formula gives 0*inf) */
static double d_pow_a(double a, double b, double y) {
  (void)y;
  return b == 0.0 ? 0.0 : b * pow(a, b - 1.0);
}

/* y = a^b: dy/db = a^b log a, taken as 0 at a = 0, b >= 0 (where 0^b is
   constant in b), NaN for a < 0 where a^b is not differentiable in b */
static double d_pow_b(double a, double b, double y) {
  return a == 0.0 && b >= 0.0 ? 0.0 : y * log(a);
}

/* The partials' directional derivatives. Of a constant partial: 0. */
static double flat(double a, double b, double y, double da, double db, double dy) {
  (void)a, (void)b, (void)y, (void)da, (void)db, (void)dy;
  return 0.0;
}

/* y = a*b: d(b) = db, d(a) = da */
static double dd_mul_a(double a, double b, double y, double da, double db, double dy) {
  (void)a, (void)b, (void)y, (void)da, (void)dy;
  return db;
}
static double dd_mul_b(double a, double b, double y, double da, double db, double dy) {
  (void)a, (void)b, (void)y, (void)db, (void)dy;
  return da;
}

/* y = a/b: d(1/b) = -db/b^2;  d(-y/b) = (y db/b - dy)/b */
static double dd_quo_a(double a, double b, double y, double da, double db, double dy) {
  (void)a, (void)y, (void)da, (void)dy;
  return -db / (b * b);
}
static double dd_quo_b(double a, double b, double y, double da, double db, double dy) {
  (void)a, (void)da;
  return (y * db / b - dy) / b;
}

/* y = a^b: d(b a^(b-1)) = db a^(b-1) + b ((b-1) a^(b-2) da + a^(b-1) log(a) db);
   d(y log a) = dy log a + y da/a. A term whose factor da or db is 0 is
   left out, so that a constant exponent never meets log of its base, nor
   0^(b-2) at a 0 base. */
static double dd_pow_a(double a, double b, double y, double da, double db, double dy) {
  (void)y, (void)dy;
  double d = 0.0;
  if (db != 0.0)
    d += db * pow(a, b - 1.0) * (1.0 + b * log(a));
  if (da != 0.0 && b != 0.0 && b != 1.0)
    d += b * (b - 1.0) * pow(a, b - 2.0) * da;
  return d;
}
static double dd_pow_b(double a, double b, double y, double da, double db, double dy) {
  (void)db;
  if (a == 0.0 && b >= 0.0)
    return 0.0;
  return dy * log(a) + (da != 0.0 ? y * da / a : 0.0);
}

static const Binary binary[] = {
  [MDRT_ADD] = {add, one, one, flat, flat},
  [MDRT_SUB] = {sub, one, minus_one, flat, flat},
  [MDRT_EMUL] = {mul, take_b, take_a, dd_mul_a, dd_mul_b},
  [MDRT_EDIV] = {quo, d_quo_a, d_quo_b, dd_quo_a, dd_quo_b},
  [MDRT_EPOW] = {pow, d_pow_a, d_pow_b, dd_pow_a, dd_pow_b},
};

/* ---- shapes ------------------------------------------------------------- */

static int takes_k(TapeOp op) {
  return op == MDRT_SUM || op == MDRT_MEAN || op == MDRT_LOGSUMEXP || op == MDRT_SOFTMAX ||
         op == MDRT_MPOW;
}

static int need_square(mdrt_tape *t, TapeOp op, const TapeNode *a) {
  if (a->rows == a->cols)
    return 0;
  return fail(t, "%s: matrix is %ldx%ld, not square", op_names[op], a->rows, a->cols);
}

// Checks K and the operand; sets the result shape *R x *C.
static int unary_shape(mdrt_tape *t, TapeOp op, const TapeNode *a, long k, long *r, long *c) {
  const char *name = op_names[op];
  *r = a->rows;
  *c = a->cols;
  if (!takes_k(op) && k != 0)
    return fail(t, "%s: takes no k, but k is %ld", name, k);
  switch (op) {
  case MDRT_TRANSPOSE:
    *r = a->cols, *c = a->rows;
    return 0;
  case MDRT_SUM:
  case MDRT_MEAN:
    if (k < 0 || k > 2)
      return fail(t, "%s: k must be 0, 1 or 2, not %ld", name, k);
    *r = k == 2 ? a->rows : 1, *c = k == 1 ? a->cols : 1;
    return 0;
  case MDRT_SUMSQ:
  case MDRT_NORM2:
  case MDRT_NORM1:
    *r = *c = 1;
    return 0;
  case MDRT_LOGSUMEXP:
    if (k != 0 && k != 2)
      return fail(t, "logsumexp: k must be 0 or 2, not %ld", k);
    *r = k == 2 ? a->rows : 1, *c = 1;
    return 0;
  case MDRT_SOFTMAX:
    return k == 2 ? 0 : fail(t, "softmax: k must be 2, not %ld", k);
  case MDRT_TRACE:
  case MDRT_DET:
  case MDRT_LOGDET:
    *r = *c = 1;
    return need_square(t, op, a);
  case MDRT_INV:
    return need_square(t, op, a);
  case MDRT_MPOW:
    if (k < 0)
      return fail(t, "mpow: power must be >= 0, not %ld", k);
    return need_square(t, op, a);
  case MDRT_DIAG:
    if (a->cols == 1)  // a vector (or a 1x1) becomes a diagonal matrix
      *c = a->rows;
    else if (a->rows == a->cols)
      *c = 1;
    else
      return fail(t, "diag: needs a column vector or a square matrix, not %ldx%ld",
                  a->rows, a->cols);
    return 0;
  default:
    return 0;  // neg and the elementwise functions keep the shape
  }
}

// Does an r x c operand broadcast to R x C?
static int fits(long r, long c, long R, long C) {
  return (r == R || r == 1) && (c == C || c == 1);
}

// One operand fixes the result shape and the other fits it; a row against
// a column (outer broadcasting) is not one of the cases and is refused.
static int binary_shape(mdrt_tape *t, mdrt_op op, const TapeNode *a, const TapeNode *b, long *r,
                        long *c) {
  if (op == MDRT_MATMUL) {
    if (a->cols != b->rows)
      return fail(t, "matmul: inner sizes %ld and %ld differ", a->cols, b->rows);
    *r = a->rows, *c = b->cols;
    return 0;
  }
  const TapeNode *big = fits(b->rows, b->cols, a->rows, a->cols)   ? a
                    : fits(a->rows, a->cols, b->rows, b->cols) ? b
                                                               : NULL;
  if (!big)
    return fail(t, "%s: shapes %ldx%ld and %ldx%ld do not broadcast", op_names[op], a->rows,
                a->cols, b->rows, b->cols);
  *r = big->rows, *c = big->cols;
  return 0;
}

/* ---- forward ------------------------------------------------------------ */

// The groups that logsumexp and softmax reduce over, as the rows of a
// *GR x *GC view: the whole matrix for k = 0, each row for k = 2.
static void groups(const TapeNode *a, long k, long *gr, long *gc) {
  *gr = k == 0 ? 1 : a->rows;
  *gc = k == 0 ? numel(a) : a->cols;
}

// The shift that keeps exp(x - m) in range: the row's max, unless that is
// infinite (or the row empty), where subtracting it would give NaN.
static double row_max(long n, const double *x) {
  double m = -INFINITY;
  for (long j = 0; j < n; j++)
    m = x[j] > m ? x[j] : m;
  return isfinite(m) ? m : 0.0;
}

static void logsumexp_rows(long gr, long gc, const double *x, double *y) {
  for (long i = 0; i < gr; i++) {
    const double *row = x + i * gc;
    double m = row_max(gc, row), s = 0.0;
    for (long j = 0; j < gc; j++)
      s += exp(row[j] - m);
    y[i] = m + log(s);
  }
}

static void softmax_rows(long gr, long gc, const double *x, double *y) {
  for (long i = 0; i < gr; i++) {
    const double *row = x + i * gc;
    double m = row_max(gc, row), s = 0.0;
    for (long j = 0; j < gc; j++) {
      y[i * gc + j] = exp(row[j] - m);
      s += y[i * gc + j];
    }
    for (long j = 0; j < gc; j++)
      y[i * gc + j] /= s;
  }
}

// Y = X^k by repeated squaring: about 2 log2(k) products rather than k.
static int mpow(long n, const double *X, long k, double *Y) {
  double *buf = new_buf(2 * n * n);
  if (!buf)
    return -1;
  double *base = buf, *tmp = buf + n * n;
  identity(n, Y);
  mdrt_copy(n * n, X, base);
  while (k > 0) {
    if (k & 1) {
      mdrt_gemm(0, 0, n, n, n, 1.0, Y, base, 0.0, tmp);
      mdrt_copy(n * n, tmp, Y);
    }
    k >>= 1;
    if (k) {
      mdrt_gemm(0, 0, n, n, n, 1.0, base, base, 0.0, tmp);
      double *swap = base;
      base = tmp, tmp = swap;
    }
  }
  free(buf);
  return 0;
}

/* The tape's own LU, apart from the runtime's LAPACK kernels so that it can
   check them: Gaussian elimination with partial pivoting on a row-major
   copy of A, the inverse from n solves. It writes det(A) into *DET,
   log|det A| into *LOGDET, inv(A) into INV (each when not NULL), and
   returns 0; -1 if A is singular (*DET is then 0, or NaN for non-finite
   input); -2 without memory. */
static int lu(long n, const double *A, double *inv, double *det, double *logdet) {
  double *a = new_buf(n * n), d = 1, ld = 0;
  long *piv = malloc(sizeof(long) * (size_t)(n + 1));
  int rc = a && piv ? 0 : -2, finite = 1;
  for (long i = 0; rc == 0 && i < n * n; i++)
    finite &= isfinite(a[i] = A[i]) != 0;
  if (rc == 0 && !finite)
    rc = -1, d = NAN;
  for (long c = 0; rc == 0 && c < n; c++) {
    long p = c;
    for (long r = c + 1; r < n; r++)
      if (fabs(a[r * n + c]) > fabs(a[p * n + c]))
        p = r;
    piv[c] = p;
    if (a[p * n + c] == 0 || !isfinite(a[p * n + c])) {
      rc = -1, d = a[p * n + c] == 0 ? 0 : NAN;
      break;
    }
    for (long j = 0; p != c && j < n; j++) {
      double v = a[c * n + j];
      a[c * n + j] = a[p * n + j];
      a[p * n + j] = v;
    }
    d *= p != c ? -a[c * n + c] : a[c * n + c];
    ld += log(fabs(a[c * n + c]));
    for (long r = c + 1; r < n; r++) {
      double f = a[r * n + c] /= a[c * n + c];
      for (long j = c + 1; j < n; j++)
        a[r * n + j] -= f * a[c * n + j];
    }
  }
  // Column COL of the inverse solves L*U*x = P*e_col, in place in INV.
  for (long col = 0; rc == 0 && inv && col < n; col++) {
    double *x = inv + col;
    for (long i = 0; i < n; i++)
      x[i * n] = i == col;
    for (long i = 0; i < n; i++) {
      double v = x[i * n];
      x[i * n] = x[piv[i] * n];
      x[piv[i] * n] = v;
    }
    for (long i = 0; i < n; i++)
      for (long j = 0; j < i; j++)
        x[i * n] -= a[i * n + j] * x[j * n];
    for (long i = n - 1; i >= 0; i--) {
      for (long j = i + 1; j < n; j++)
        x[i * n] -= a[i * n + j] * x[j * n];
      x[i * n] /= a[i * n + i];
    }
  }
  if (det && rc != -2)
    *det = d;
  if (logdet && rc == 0)
    *logdet = ld;
  free(a);
  free(piv);
  return rc;
}

// D (n x n) = the top-right block of [A B; 0 A]^k, which is
// sum_{i<k} A^i B A^(k-1-i): the derivative of A^k in the direction B, in
// about 2 log2(k) products of twice the size. -1 without memory.
static int upper_power(long n, const double *A, const double *B, long k, double *D) {
  long m = 2 * n;
  double *M = new_zeros(2 * m * m);
  if (!M)
    return -1;
  double *P = M + m * m;
  for (long i = 0; i < n; i++)
    for (long j = 0; j < n; j++) {
      M[i * m + j] = M[(i + n) * m + j + n] = A[i * n + j];
      M[i * m + j + n] = B[i * n + j];
    }
  int rc = mpow(m, M, k, P);
  for (long i = 0; rc == 0 && i < n; i++)
    mdrt_copy(n, P + i * m + n, D + i * n);
  free(M);
  return rc;
}

// The LU-based ops: det, logdet, inv, with their failures.
static int forward_lu(mdrt_tape *t, TapeOp op, const TapeNode *a, double *y) {
  int rc = op == MDRT_DET      ? lu(a->rows, a->val, NULL, y, NULL)
           : op == MDRT_LOGDET ? lu(a->rows, a->val, NULL, NULL, y)
                               : lu(a->rows, a->val, y, NULL, NULL);
  if (rc == -2)
    return fail(t, "%s: out of memory", op_names[op]);
  // det of a singular matrix is a fine value: 0 (or NaN for non-finite input)
  if (rc == -1 && op != MDRT_DET)
    return fail(t, "%s: matrix is singular", op_names[op]);
  return 0;
}

// diag of X (rows x cols): a column to a diagonal matrix, a square matrix
// to its diagonal. It is linear, so it serves values and tangents alike.
static void diag(long rows, long cols, const double *x, double *y) {
  long n = rows;
  if (cols == 1) {
    mdrt_fill(n * n, 0.0, y);
    for (long i = 0; i < n; i++)
      y[i * n + i] = x[i];
  } else {
    for (long i = 0; i < n; i++)
      y[i] = x[i * n + i];
  }
}

static double trace(long n, const double *x) {
  double s = 0.0;
  for (long i = 0; i < n; i++)
    s += x[i * n + i];
  return s;
}

static double norm1(long n, const double *x) {
  double s = 0.0;
  for (long i = 0; i < n; i++)
    s += fabs(x[i]);
  return s;
}

// Y's value from its operand A; Y's shape and k are already set.
static int forward_unary(mdrt_tape *t, TapeNode *y, const TapeNode *a) {
  const Elementwise *e = elementwise_of(y->op);
  long n = numel(a), gr, gc;
  if (e) {
    for (long i = 0; i < n; i++)
      y->val[i] = e->f(a->val[i]);
    return 0;
  }
  switch (y->op) {
  case MDRT_NEG:
    mdrt_axpby(n, -1.0, a->val, 0.0, y->val);
    return 0;
  case MDRT_TRANSPOSE:
    mdrt_axpby_t(a->cols, a->rows, 1.0, a->val, 0.0, y->val);
    return 0;
  case MDRT_SUM:
  case MDRT_MEAN: {
    long count = y->k == 0 ? n : y->k == 1 ? a->rows : a->cols;
    double scale = y->op == MDRT_MEAN ? 1.0 / (double)count : 1.0;
    mdrt_fill(numel(y), 0.0, y->val);
    unbroadcast_add(a->val, a->rows, a->cols, scale, y->val, y->rows, y->cols);
    return 0;
  }
  case MDRT_SUMSQ:  y->val[0] = mdrt_sumsq(n, a->val); return 0;
  case MDRT_NORM2:  y->val[0] = sqrt(mdrt_sumsq(n, a->val)); return 0;
  case MDRT_NORM1:  y->val[0] = norm1(n, a->val); return 0;
  case MDRT_TRACE:  y->val[0] = trace(a->rows, a->val); return 0;
  case MDRT_LOGSUMEXP:
    groups(a, y->k, &gr, &gc);
    logsumexp_rows(gr, gc, a->val, y->val);
    return 0;
  case MDRT_SOFTMAX:
    groups(a, y->k, &gr, &gc);
    softmax_rows(gr, gc, a->val, y->val);
    return 0;
  case MDRT_UNIT:  mdrt_unit(n, a->val, y->val); return 0;
  case MDRT_DIAG: diag(a->rows, a->cols, a->val, y->val); return 0;
  case MDRT_DET:
  case MDRT_LOGDET:
  case MDRT_INV:
    return forward_lu(t, y->op, a, y->val);
  case MDRT_MPOW:
    return mpow(a->rows, a->val, y->k, y->val) ? fail(t, "mpow: out of memory") : 0;
  default:
    return fail(t, "%s: not a unary op", op_names[y->op]);
  }
}

static void forward_binary(TapeNode *y, const TapeNode *a, const TapeNode *b) {
  if (y->op == MDRT_MATMUL) {
    mdrt_gemm(0, 0, a->rows, b->cols, a->cols, 1.0, a->val, b->val, 0.0, y->val);
    return;
  }
  const Binary *f = &binary[y->op];
  for (long i = 0; i < y->rows; i++)
    for (long j = 0; j < y->cols; j++)
      y->val[i * y->cols + j] = f->f(a->val[bidx(a->rows, a->cols, i, j)],
                                     b->val[bidx(b->rows, b->cols, i, j)]);
}

static int valid_op(mdrt_op op) {
  return (int)op >= 0 && (int)op <= (int)MDRT_MATMUL;
}

static int is_binary(mdrt_op op) {
  return (int)op >= (int)MDRT_ADD;
}

// A buffer for Y's value, once its shape is known.
static int alloc_value(mdrt_tape *t, TapeNode *y) {
  if (!size_ok(y->rows, y->cols))
    return fail(t, "%s: a %ldx%ld result is too large", op_names[y->op], y->rows, y->cols);
  if (!(y->val = new_buf(numel(y))))
    return fail(t, "%s: out of memory", op_names[y->op]);
  return 0;
}

// Record OP (checked to be unary) on handle A.
static int unary(mdrt_tape *t, TapeOp op, int a, long k) {
  const TapeNode *x = node(t, a);
  if (!x)
    return bad_handle(t, a);
  TapeNode y = {.kind = KIND_OP, .op = op, .a = a, .b = -1, .k = k, .needs_grad = x->needs_grad};
  if (unary_shape(t, op, x, k, &y.rows, &y.cols))
    return -1;
  if (alloc_value(t, &y))
    return -1;
  if (forward_unary(t, &y, x)) {
    free(y.val);
    return -1;
  }
  return push(t, y);
}

int mdrt_tape_unary(mdrt_tape *t, mdrt_op op, int a, long k) {
  if (!t)
    return -1;
  if (!valid_op(op) || is_binary(op))
    return fail(t, "unary: %d is not a unary op", (int)op);
  return unary(t, op, a, k);
}

int mdrt_tape_map(mdrt_tape *t, const char *fn, int a) {
  if (!t)
    return -1;
  for (TapeOp op = TAPE_BEFORE_MAPS + 1; op < TAPE_NOPS; op++)
    if (fn && !strcmp(op_names[op], fn))
      return unary(t, op, a, 0);
  return fail(t, "map: no elementwise function '%s'", fn ? fn : "(null)");
}

int mdrt_tape_binary(mdrt_tape *t, mdrt_op op, int a, int b) {
  if (!t)
    return -1;
  if (!valid_op(op) || !is_binary(op))
    return fail(t, "binary: %d is not a binary op", (int)op);
  const TapeNode *x = node(t, a), *z = node(t, b);
  if (!x || !z)
    return bad_handle(t, x ? b : a);
  TapeNode y = {.kind = KIND_OP, .op = op, .a = a, .b = b,
            .needs_grad = x->needs_grad || z->needs_grad};
  if (binary_shape(t, op, x, z, &y.rows, &y.cols))
    return -1;
  if (alloc_value(t, &y))
    return -1;
  forward_binary(&y, x, z);
  return push(t, y);
}

/* ---- forward mode: one tangent rule per op ------------------------------ */

// In every rule dy is the output's tangent, which the rule writes, dx (da,
// db) the operands' tangents and y the output. The rules are the
// directional derivatives of the forward section's values.

static double dot_sign(long n, const double *x, const double *dx) {
  double s = 0.0;
  for (long i = 0; i < n; i++)
    s += mdrt_sign(x[i]) * dx[i];
  return s;
}

// tr(A*B) for n x n A and B, without forming the product.
static double trace_of_product(long n, const double *A, const double *B) {
  double s = 0.0;
  for (long i = 0; i < n; i++)
    for (long j = 0; j < n; j++)
      s += A[i * n + j] * B[j * n + i];
  return s;
}

// inv(X) into a new buffer, or NULL with the tape's error (WHO: the op).
static double *inverse(mdrt_tape *t, const TapeNode *x, const char *who) {
  long n = x->rows;
  double *inv = new_buf(n * n);
  int rc = inv ? lu(n, x->val, inv, NULL, NULL) : -2;
  if (rc == 0)
    return inv;
  free(inv);
  fail(t, rc == -1 ? "%s: its derivatives need an invertible matrix" : "%s: out of memory", who);
  return NULL;
}

/* D (n x n) = alpha*A*B*C + beta*D for n x n matrices, through scratch. */
static int triple(long n, double alpha, const double *A, const double *B, const double *C,
                  double beta, double *D) {
  double *tmp = new_buf(n * n);
  if (!tmp)
    return -1;
  mdrt_gemm(0, 0, n, n, n, 1.0, A, B, 0.0, tmp);
  mdrt_gemm(0, 0, n, n, n, alpha, tmp, C, beta, D);
  free(tmp);
  return 0;
}

static int tangent_unary(mdrt_tape *t, const TapeNode *y, const TapeNode *x, double *dy) {
  const Elementwise *e = elementwise_of(y->op);
  const double *dx = x->tan;
  long n = numel(x), gr, gc;
  if (e) {
    /* y = f(x) elementwise: dy = f'(x) .* dx */
    for (long i = 0; i < n; i++)
      dy[i] = e->df(x->val[i], y->val[i]) * dx[i];
    return 0;
  }
  switch (y->op) {
  /* y = -x: dy = -dx */
  case MDRT_NEG: mdrt_axpby(n, -1.0, dx, 0.0, dy); return 0;
  /* Y = X': dY = dX' */
  case MDRT_TRANSPOSE: mdrt_axpby_t(x->cols, x->rows, 1.0, dx, 0.0, dy); return 0;
  /* y = sum (or mean) of x along k: dy = the same of dx */
  case MDRT_SUM:
  case MDRT_MEAN: {
    long count = y->k == 0 ? n : y->k == 1 ? x->rows : x->cols;
    mdrt_fill(numel(y), 0.0, dy);
    unbroadcast_add(dx, x->rows, x->cols, y->op == MDRT_MEAN ? 1.0 / (double)count : 1.0, dy,
                    y->rows, y->cols);
    return 0;
  }
  /* y = sum x.^2: dy = 2 <x, dx> */
  case MDRT_SUMSQ: dy[0] = 2.0 * mdrt_dot(n, x->val, dx); return 0;
  /* y = ||x||: dy = <u, dx>, u = x/||x|| the unit direction, 0 at x = 0 */
  case MDRT_NORM2: {
    double *u = new_buf(n);
    if (!u)
      return fail(t, "forward: out of memory");
    mdrt_unit(n, x->val, u);
    dy[0] = mdrt_dot(n, u, dx);
    free(u);
    return 0;
  }
  /* Y = X/||X||: dY = (dX - Y <Y, dX>)/||X||, not finite at X = 0, where Y
     jumps */
  case MDRT_UNIT: {
    double s = sqrt(mdrt_sumsq(n, x->val)), p = mdrt_dot(n, y->val, dx);
    for (long i = 0; i < n; i++)
      dy[i] = (dx[i] - y->val[i] * p) / s;
    return 0;
  }
  /* y = sum |x|: dy = <sign(x), dx> */
  case MDRT_NORM1: dy[0] = dot_sign(n, x->val, dx); return 0;
  /* y = tr X: dy = tr dX */
  case MDRT_TRACE: dy[0] = trace(x->rows, dx); return 0;
  /* y_i = log sum_j exp x_ij: dy_i = sum_j exp(x_ij - y_i) dx_ij */
  case MDRT_LOGSUMEXP:
    groups(x, y->k, &gr, &gc);
    for (long i = 0; i < gr; i++) {
      dy[i] = 0.0;
      for (long j = 0; j < gc; j++)
        dy[i] += exp(x->val[i * gc + j] - y->val[i]) * dx[i * gc + j];
    }
    return 0;
  /* Y = softmax of each row of X: dY_i = Y_i .* (dX_i - <Y_i, dX_i>) */
  case MDRT_SOFTMAX:
    for (long i = 0; i < y->rows; i++) {
      const double *yi = y->val + i * y->cols, *dxi = dx + i * y->cols;
      double s = mdrt_dot(y->cols, yi, dxi);
      for (long j = 0; j < y->cols; j++)
        dy[i * y->cols + j] = yi[j] * (dxi[j] - s);
    }
    return 0;
  /* y = diag(x): dy = diag(dx) */
  case MDRT_DIAG: diag(x->rows, x->cols, dx, dy); return 0;
  /* y = det X: dy = y tr(inv(X) dX);  y = log|det X|: dy = tr(inv(X) dX) */
  case MDRT_DET:
  case MDRT_LOGDET: {
    double *inv = inverse(t, x, op_names[y->op]);
    if (!inv)
      return -1;
    double tr = trace_of_product(x->rows, inv, dx);
    dy[0] = y->op == MDRT_DET ? y->val[0] * tr : tr;
    free(inv);
    return 0;
  }
  /* Y = inv X: dY = -Y dX Y */
  case MDRT_INV:
    return triple(x->rows, -1.0, y->val, dx, y->val, 0.0, dy) ? fail(t, "forward: out of memory")
                                                              : 0;
  /* Y = X^k: dY = sum_{i<k} X^i dX X^(k-1-i), the top-right block of [X dX; 0 X]^k */
  case MDRT_MPOW:
    return upper_power(x->rows, x->val, dx, y->k, dy) ? fail(t, "forward: out of memory") : 0;
  default:
    return fail(t, "%s: no tangent rule", op_names[y->op]);
  }
}

static void tangent_binary(const TapeNode *y, const TapeNode *a, const TapeNode *b, double *dy) {
  if (y->op == MDRT_MATMUL) {
    /* C = A*B: dC = dA*B + A*dB */
    mdrt_gemm(0, 0, a->rows, b->cols, a->cols, 1.0, a->tan, b->val, 0.0, dy);
    mdrt_gemm(0, 0, a->rows, b->cols, a->cols, 1.0, a->val, b->tan, 1.0, dy);
    return;
  }
  /* y = f(a, b) with broadcasting: dy = f_a da + f_b db. A term whose
     tangent is 0 is left out: a constant exponent's partial, log of a
     negative base, is NaN, and 0*NaN would be too. */
  const Binary *f = &binary[y->op];
  for (long i = 0; i < y->rows; i++)
    for (long j = 0; j < y->cols; j++) {
      long o = i * y->cols + j, ia = bidx(a->rows, a->cols, i, j), ib = bidx(b->rows, b->cols, i, j);
      double av = a->val[ia], bv = b->val[ib], da = a->tan[ia], db = b->tan[ib];
      dy[o] = (da != 0 ? f->da(av, bv, y->val[o]) * da : 0) + (db != 0 ? f->db(av, bv, y->val[o]) * db : 0);
    }
}

int mdrt_tape_direction(mdrt_tape *t, int leaf, const double *dir) {
  if (!t)
    return -1;
  TapeNode *n = leaf >= 0 && leaf < t->len ? &t->nodes[leaf] : NULL;
  if (!n)
    return bad_handle(t, leaf);
  if (n->kind != KIND_LEAF)
    return fail(t, "direction: handle %d is not a leaf", leaf);
  if (!dir) {
    free(n->tan);
    n->tan = NULL;
    return 0;
  }
  if (!n->tan && !(n->tan = new_buf(numel(n))))
    return fail(t, "direction: out of memory");
  mdrt_copy(numel(n), dir, n->tan);
  return 0;
}

// Every value's tangent, in creation order (a topological order): a leaf
// without a direction and a constant have a zero one.
int mdrt_tape_forward(mdrt_tape *t) {
  if (!t)
    return -1;
  for (int h = 0; h < t->len; h++) {
    TapeNode *y = &t->nodes[h];
    if (y->kind == KIND_LEAF && y->tan)
      continue;
    if (!y->tan && !(y->tan = new_buf(numel(y))))
      return fail(t, "forward: out of memory");
    if (y->kind != KIND_OP)
      mdrt_fill(numel(y), 0.0, y->tan);
    else if (y->b >= 0)
      tangent_binary(y, &t->nodes[y->a], &t->nodes[y->b], y->tan);
    else if (tangent_unary(t, y, &t->nodes[y->a], y->tan))
      return -1;
  }
  return 0;
}

/* ---- backward: one vector-Jacobian rule per op -------------------------- */

// In every rule G is the output's adjoint, d* the operands' adjoints (NULL
// when no leaf lies below that operand) and y the output. Rules add.

/* y = f(x) elementwise: dx += G .* f'(x) */
static void back_elementwise(const Elementwise *e, const TapeNode *y, const TapeNode *x,
                             const double *G, double *dx) {
  for (long i = 0; i < numel(x); i++)
    dx[i] += G[i] * e->df(x->val[i], y->val[i]);
}

/* y = sum of x along k (or mean, count = elements per sum):
   dx += G broadcast back along the summed axes / count */
static void back_sum(const TapeNode *y, const TapeNode *x, const double *G, double *dx) {
  long count = y->k == 0 ? numel(x) : y->k == 1 ? x->rows : x->cols;
  double scale = y->op == MDRT_MEAN ? 1.0 / (double)count : 1.0;
  broadcast_add(G, y->rows, y->cols, scale, dx, x->rows, x->cols);
}

/* y = sum x.^2: dx += 2 g x;  y = sum |x|: dx += g sign(x) */
static void back_norms(const TapeNode *y, const TapeNode *x, const double *G, double *dx) {
  double g = G[0];
  for (long i = 0; i < numel(x); i++) {
    double xi = x->val[i];
    dx[i] += y->op == MDRT_SUMSQ ? 2.0 * g * xi : g * mdrt_sign(xi);
  }
}

/* y = ||x||: dx += g u, u = x/||x|| the unit direction, 0 at x = 0 (the
   subgradient 0, as PyTorch's); the runtime's mdrt_unit, which emitted
   code calls too */
static int back_norm2(mdrt_tape *t, const TapeNode *x, const double *G, double *dx) {
  long n = numel(x);
  double *u = new_buf(n);
  if (!u)
    return fail(t, "backward: out of memory");
  mdrt_unit(n, x->val, u);
  mdrt_axpby(n, G[0], u, 1.0, dx);
  free(u);
  return 0;
}

/* Y = X/||X||: dX += (G - Y <Y, G>)/||X|| (the Jacobian (I - Y Y')/||X||
   is symmetric), not finite at X = 0 */
static void back_unit(const TapeNode *y, const TapeNode *x, const double *G, double *dx) {
  long n = numel(x);
  double s = sqrt(mdrt_sumsq(n, x->val)), p = mdrt_dot(n, y->val, G);
  for (long i = 0; i < n; i++)
    dx[i] += (G[i] - y->val[i] * p) / s;
}

/* y_i = log sum_j exp x_ij over each group i: dx_ij += g_i exp(x_ij - y_i),
   the group's softmax, which is at most 1 and cannot overflow */
static void back_logsumexp(const TapeNode *y, const TapeNode *x, const double *G, double *dx) {
  long gr, gc;
  groups(x, y->k, &gr, &gc);
  for (long i = 0; i < gr; i++)
    for (long j = 0; j < gc; j++)
      dx[i * gc + j] += G[i] * exp(x->val[i * gc + j] - y->val[i]);
}

/* Y = softmax of each row of X: dX_i += Y_i .* (G_i - <G_i, Y_i>) */
static void back_softmax(const TapeNode *y, const double *G, double *dx) {
  long c = y->cols;
  for (long i = 0; i < y->rows; i++) {
    const double *yi = y->val + i * c, *gi = G + i * c;
    double s = mdrt_dot(c, gi, yi);
    for (long j = 0; j < c; j++)
      dx[i * c + j] += yi[j] * (gi[j] - s);
  }
}

/* y = det X: dX += g y inv(X)';  y = log|det X|: dX += g inv(X)'.
   At a singular X, det's gradient (the adjugate) exists but inv(X) does
   not; that is reported rather than turned into NaN. */
static int back_det(mdrt_tape *t, const TapeNode *y, const TapeNode *x, const double *G,
                    double *dx) {
  long n = x->rows;
  double *inv = new_buf(n * n);
  int rc = inv ? lu(n, x->val, inv, NULL, NULL) : -2;
  if (rc == 0) {
    double scale = y->op == MDRT_DET ? G[0] * y->val[0] : G[0];
    mdrt_axpby_t(n, n, scale, inv, 1.0, dx);
  }
  free(inv);
  if (rc == -1)
    return fail(t, "%s: gradient needs an invertible matrix", op_names[y->op]);
  return rc ? fail(t, "backward: out of memory") : 0;
}

/* Y = inv X: dX += -Y' G Y' */
static int back_inv(mdrt_tape *t, const TapeNode *y, const double *G, double *dx) {
  long n = y->rows;
  double *tmp = new_buf(n * n);
  if (!tmp)
    return fail(t, "backward: out of memory");
  mdrt_gemm(1, 0, n, n, n, 1.0, y->val, G, 0.0, tmp);
  mdrt_gemm(0, 1, n, n, n, -1.0, tmp, y->val, 1.0, dx);
  free(tmp);
  return 0;
}

/* Y = X^k: dX += sum_{i<k} (X')^i G (X')^(k-1-i), the top-right block of
   [X' G; 0 X']^k (upper_power) */
static int back_mpow(mdrt_tape *t, const TapeNode *y, const TapeNode *x, const double *G,
                     double *dx) {
  long n = x->rows;
  double *buf = new_buf(2 * n * n);
  if (!buf)
    return fail(t, "backward: out of memory");
  double *xt = buf, *D = buf + n * n;
  mdrt_axpby_t(n, n, 1.0, x->val, 0.0, xt);
  int rc = upper_power(n, xt, G, y->k, D);
  if (rc == 0)
    mdrt_axpby(n * n, 1.0, D, 1.0, dx);
  free(buf);
  return rc ? fail(t, "backward: out of memory") : 0;
}

/* y = tr X: dX += g I;  Y = diag(x) (vector to matrix): dx_i += G_ii;
   y = diag(X) (matrix to vector): dX_ii += g_i */
static void back_diagonal(const TapeNode *y, const TapeNode *x, const double *G, double *dx) {
  long n = x->rows;
  for (long i = 0; i < n; i++) {
    if (y->op == MDRT_TRACE)
      dx[i * n + i] += G[0];
    else if (x->cols == 1)
      dx[i] += G[i * n + i];
    else
      dx[i * n + i] += G[i];
  }
}

static int back_unary(mdrt_tape *t, const TapeNode *y, const double *G, double *dx) {
  const TapeNode *x = &t->nodes[y->a];
  const Elementwise *e = elementwise_of(y->op);
  if (e) {
    back_elementwise(e, y, x, G, dx);
    return 0;
  }
  switch (y->op) {
  /* y = -x: dx -= G */
  case MDRT_NEG: mdrt_axpby(numel(x), -1.0, G, 1.0, dx); return 0;
  /* Y = X': dX += G' */
  case MDRT_TRANSPOSE: mdrt_axpby_t(x->rows, x->cols, 1.0, G, 1.0, dx); return 0;
  case MDRT_SUM:
  case MDRT_MEAN: back_sum(y, x, G, dx); return 0;
  case MDRT_SUMSQ:
  case MDRT_NORM1: back_norms(y, x, G, dx); return 0;
  case MDRT_NORM2: return back_norm2(t, x, G, dx);
  case MDRT_UNIT: back_unit(y, x, G, dx); return 0;
  case MDRT_LOGSUMEXP: back_logsumexp(y, x, G, dx); return 0;
  case MDRT_SOFTMAX: back_softmax(y, G, dx); return 0;
  case MDRT_TRACE:
  case MDRT_DIAG: back_diagonal(y, x, G, dx); return 0;
  case MDRT_DET:
  case MDRT_LOGDET: return back_det(t, y, x, G, dx);
  case MDRT_INV: return back_inv(t, y, G, dx);
  case MDRT_MPOW: return back_mpow(t, y, x, G, dx);
  default: return fail(t, "%s: no backward rule", op_names[y->op]);
  }
}

/* C = A*B: dA += G*B', dB += A'*G */
static void back_matmul(const TapeNode *a, const TapeNode *b, const double *G, double *da,
                        double *db) {
  long r = a->rows, k = a->cols, c = b->cols;
  if (da)
    mdrt_gemm(0, 1, r, k, c, 1.0, G, b->val, 1.0, da);
  if (db)
    mdrt_gemm(1, 0, k, c, r, 1.0, a->val, G, 1.0, db);
}

/* y = f(a, b) with broadcasting: da += unbroadcast(G .* df/da), and so for
   b. D holds G .* df/d(operand) at the output's full shape. */
static void back_broadcast(const TapeNode *y, const TapeNode *a, const TapeNode *b, const double *G,
                           double *D, double *da, double *db) {
  const Binary *f = &binary[y->op];
  for (int side = 0; side < 2; side++) {
    const TapeNode *w = side ? b : a;
    double *dw = side ? db : da;
    if (!dw)
      continue;
    for (long i = 0; i < y->rows; i++)
      for (long j = 0; j < y->cols; j++) {
        long o = i * y->cols + j;
        double av = a->val[bidx(a->rows, a->cols, i, j)];
        double bv = b->val[bidx(b->rows, b->cols, i, j)];
        D[o] = G[o] * (side ? f->db : f->da)(av, bv, y->val[o]);
      }
    unbroadcast_add(D, y->rows, y->cols, 1.0, dw, w->rows, w->cols);
  }
}

static int back_binary(mdrt_tape *t, const TapeNode *y, const double *G, double *da, double *db) {
  const TapeNode *a = &t->nodes[y->a], *b = &t->nodes[y->b];
  if (y->op == MDRT_MATMUL) {
    back_matmul(a, b, G, da, db);
    return 0;
  }
  // Zeroed, though every element is written before it is read: GCC's
  // -Wmaybe-uninitialized cannot see that through the broadcast indexing.
  double *D = new_zeros(numel(y));
  if (!D)
    return fail(t, "backward: out of memory");
  back_broadcast(y, a, b, G, D, da, db);
  free(D);
  return 0;
}

/* ---- second order: the curvature of each vector-Jacobian rule ---------- */

// Forward-over-reverse differentiates the reverse pass along the tangents.
// Each rule above is linear in its G, so the tangent dG of an adjoint goes
// through the rule itself; what is left is the rule's derivative with G
// held fixed, its curvature, one per op here under the rule it
// differentiates. d* are the operands' tangents, dy the output's, and dd*
// the tangents of the operands' adjoints, which the rules add into.

static int curve_unary(mdrt_tape *t, const TapeNode *y, const double *G, double *ddx) {
  const TapeNode *x = &t->nodes[y->a];
  const Elementwise *e = elementwise_of(y->op);
  const double *dx = x->tan, *dy = y->tan;
  long n = numel(x), gr, gc;
  if (e) {
    /* dx += G .* f'(x):  ddx += G .* f''(x) .* dx */
    for (long i = 0; i < n; i++)
      ddx[i] += G[i] * e->d2f(x->val[i], y->val[i]) * dx[i];
    return 0;
  }
  switch (y->op) {
  /* linear, or constant derivatives (norm1's sign): none */
  case MDRT_NEG:
  case MDRT_TRANSPOSE:
  case MDRT_SUM:
  case MDRT_MEAN:
  case MDRT_NORM1:
  case MDRT_TRACE:
  case MDRT_DIAG:
    return 0;
  /* dx += 2 g x:  ddx += 2 g dx */
  case MDRT_SUMSQ: mdrt_axpby(n, 2.0 * G[0], dx, 1.0, ddx); return 0;
  /* dx += g x / y:  ddx += g (dx - x dy/y) / y */
  case MDRT_NORM2:
    for (long i = 0; y->val[0] > 0 && i < n; i++)
      ddx[i] += G[0] * (dx[i] - x->val[i] * dy[0] / y->val[0]) / y->val[0];
    return 0;
  /* dX += (G - Y <Y, G>)/s, s = ||X||:
     ddX += -(dY <Y, G> + Y <dY, G>)/s - (G - Y <Y, G>) <Y, dX>/s^2 */
  case MDRT_UNIT: {
    double s = sqrt(mdrt_sumsq(n, x->val)), p = mdrt_dot(n, y->val, G);
    double dp = mdrt_dot(n, dy, G), ds = mdrt_dot(n, y->val, dx);
    for (long i = 0; i < n; i++)
      ddx[i] += -(dy[i] * p + y->val[i] * dp) / s - (G[i] - y->val[i] * p) * ds / (s * s);
    return 0;
  }
  /* dx_ij += g_i exp(x_ij - y_i):  ddx_ij += g_i exp(x_ij - y_i) (dx_ij - dy_i) */
  case MDRT_LOGSUMEXP:
    groups(x, y->k, &gr, &gc);
    for (long i = 0; i < gr; i++)
      for (long j = 0; j < gc; j++) {
        long o = i * gc + j;
        ddx[o] += G[i] * exp(x->val[o] - y->val[i]) * (dx[o] - dy[i]);
      }
    return 0;
  /* dX_i += Y_i .* (G_i - <G_i, Y_i>):
     ddX_i += dY_i .* (G_i - <G_i, Y_i>) - Y_i <G_i, dY_i> */
  case MDRT_SOFTMAX: {
    long c = y->cols;
    for (long i = 0; i < y->rows; i++) {
      const double *yi = y->val + i * c, *dyi = dy + i * c, *gi = G + i * c;
      double s = mdrt_dot(c, gi, yi), ds = mdrt_dot(c, gi, dyi);
      for (long j = 0; j < c; j++)
        ddx[i * c + j] += dyi[j] * (gi[j] - s) - yi[j] * ds;
    }
    return 0;
  }
  /* dX += g y inv(X)':  ddX += g dy inv(X)' - g y (inv(X) dX inv(X))';
     dX += g inv(X)':    ddX += -g (inv(X) dX inv(X))' */
  case MDRT_DET:
  case MDRT_LOGDET: {
    long m = x->rows;
    double *inv = inverse(t, x, op_names[y->op]), *P = inv ? new_buf(m * m) : NULL;
    int rc = P && triple(m, 1.0, inv, dx, inv, 0.0, P) == 0 ? 0 : -1;
    if (rc == 0 && y->op == MDRT_DET) {
      mdrt_axpby_t(m, m, G[0] * dy[0], inv, 1.0, ddx);
      mdrt_axpby_t(m, m, -G[0] * y->val[0], P, 1.0, ddx);
    } else if (rc == 0) {
      mdrt_axpby_t(m, m, -G[0], P, 1.0, ddx);
    }
    free(inv);
    free(P);
    return rc == 0 ? 0 : inv ? fail(t, "backward: out of memory") : -1;
  }
  /* dX += -Y' G Y':  ddX += -(dY' G Y' + Y' G dY') */
  case MDRT_INV: {
    long m = x->rows;
    double *tmp = new_buf(m * m);
    if (!tmp)
      return fail(t, "backward: out of memory");
    mdrt_gemm(1, 0, m, m, m, 1.0, dy, G, 0.0, tmp);
    mdrt_gemm(0, 1, m, m, m, -1.0, tmp, y->val, 1.0, ddx);
    mdrt_gemm(1, 0, m, m, m, 1.0, y->val, G, 0.0, tmp);
    mdrt_gemm(0, 1, m, m, m, -1.0, tmp, dy, 1.0, ddx);
    free(tmp);
    return 0;
  }
  /* dX += the top-right block of M^k, M = [X' G; 0 X']: ddX += the same block
     of M^k's derivative along [dX' 0; 0 dX'], by upper_power at twice the size */
  case MDRT_MPOW: {
    long m = x->rows, w = 2 * m;
    double *buf = new_zeros(3 * w * w);
    if (!buf)
      return fail(t, "backward: out of memory");
    double *M = buf, *dM = buf + w * w, *D = buf + 2 * w * w;
    for (long i = 0; i < m; i++)
      for (long j = 0; j < m; j++) {
        M[i * w + j] = M[(i + m) * w + j + m] = x->val[j * m + i];
        M[i * w + j + m] = G[i * m + j];
        dM[i * w + j] = dM[(i + m) * w + j + m] = dx[j * m + i];
      }
    int rc = upper_power(w, M, dM, y->k, D);
    for (long i = 0; rc == 0 && i < m; i++)
      mdrt_axpby(m, 1.0, D + i * w + m, 1.0, ddx + i * m);
    free(buf);
    return rc ? fail(t, "backward: out of memory") : 0;
  }
  default:
    return fail(t, "%s: no second-order rule", op_names[y->op]);
  }
}

static int curve_binary(mdrt_tape *t, const TapeNode *y, const double *G, double *dda,
                        double *ddb) {
  const TapeNode *a = &t->nodes[y->a], *b = &t->nodes[y->b];
  if (y->op == MDRT_MATMUL) {
    /* dA += G B':  ddA += G dB';  dB += A' G:  ddB += dA' G */
    long r = a->rows, k = a->cols, c = b->cols;
    if (dda)
      mdrt_gemm(0, 1, r, k, c, 1.0, G, b->tan, 1.0, dda);
    if (ddb)
      mdrt_gemm(1, 0, k, c, r, 1.0, a->tan, G, 1.0, ddb);
    return 0;
  }
  /* da += unbroadcast(G .* f_a):  dda += unbroadcast(G .* d(f_a)), and so for b */
  const Binary *f = &binary[y->op];
  double *D = new_buf(numel(y));
  if (!D)
    return fail(t, "backward: out of memory");
  for (int side = 0; side < 2; side++) {
    const TapeNode *w = side ? b : a;
    double *ddw = side ? ddb : dda;
    if (!ddw)
      continue;
    for (long i = 0; i < y->rows; i++)
      for (long j = 0; j < y->cols; j++) {
        long o = i * y->cols + j, ia = bidx(a->rows, a->cols, i, j), ib = bidx(b->rows, b->cols, i, j);
        double av = a->val[ia], bv = b->val[ib];
        D[o] = G[o] * (side ? f->ddb : f->dda)(av, bv, y->val[o], a->tan[ia], b->tan[ib], y->tan[o]);
      }
    unbroadcast_add(D, y->rows, y->cols, 1.0, ddw, w->rows, w->cols);
  }
  free(D);
  return 0;
}

/* ---- the reverse walk --------------------------------------------------- */

// The adjoint of handle H, zero when first asked for; NULL when no leaf lies
// below H (nothing to propagate) or when memory runs out (with the error).
static double *adjoint(mdrt_tape *t, double **adj, int h, int *rc) {
  if (!t->nodes[h].needs_grad)
    return NULL;
  if (!adj[h] && !(adj[h] = new_zeros(numel(&t->nodes[h]))))
    *rc = fail(t, "backward: out of memory");
  return adj[h];
}

// Apply handle H's rule if it is an op with an adjoint, then drop that
// adjoint: every use of H comes after H, so it is complete and spent. With
// ADJT, the tangents of the adjoints (second order), the rule also takes
// H's adjoint tangent, and its curvature adds the rest.
static int visit(mdrt_tape *t, double **adj, double **adjt, int h) {
  const TapeNode *y = &t->nodes[h];
  if (y->kind != KIND_OP || !adj[h])
    return 0;
  int rc = 0, binary_op = y->b >= 0;
  double *da = adjoint(t, adj, y->a, &rc);
  double *db = binary_op ? adjoint(t, adj, y->b, &rc) : NULL;
  double *dda = adjt ? adjoint(t, adjt, y->a, &rc) : NULL;
  double *ddb = adjt && binary_op ? adjoint(t, adjt, y->b, &rc) : NULL;
  if (rc == 0)
    rc = binary_op ? back_binary(t, y, adj[h], da, db) : back_unary(t, y, adj[h], da);
  if (rc == 0 && adjt)
    rc = binary_op ? back_binary(t, y, adjt[h], dda, ddb) : back_unary(t, y, adjt[h], dda);
  if (rc == 0 && adjt)
    rc = binary_op ? curve_binary(t, y, adj[h], dda, ddb) : curve_unary(t, y, adj[h], dda);
  free(adj[h]);
  adj[h] = NULL;
  if (adjt) {
    free(adjt[h]);
    adjt[h] = NULL;
  }
  return rc;
}

// The reverse pass from OUT, and with SECOND its tangent (mdrt_tape_backward2).
// Leaf gradients and hvps change only once the whole walk has succeeded, so
// a failed pass leaves them as they were.
static int reverse(mdrt_tape *t, int out, const double *seed, int second) {
  if (!t)
    return -1;
  const TapeNode *o = node(t, out);
  if (!o)
    return bad_handle(t, out);
  if (second && mdrt_tape_forward(t))
    return -1;
  for (int h = 0; second && h < t->len; h++) {
    TapeNode *n = &t->nodes[h];
    if (n->kind == KIND_LEAF && !n->hvp && !(n->hvp = new_zeros(numel(n))))
      return fail(t, "backward: out of memory");
  }
  if (!o->needs_grad)
    return 0;
  double **adj = calloc((size_t)out + 1, sizeof *adj);
  double **adjt = second ? calloc((size_t)out + 1, sizeof *adjt) : NULL;
  if (!adj || (second && !adjt) || !(adj[out] = new_buf(numel(o))) ||
      (second && !(adjt[out] = new_zeros(numel(o))))) {
    if (adj)
      free(adj[out]);
    free(adj);
    free(adjt);
    return fail(t, "backward: out of memory");
  }
  if (seed)
    mdrt_copy(numel(o), seed, adj[out]);
  else
    mdrt_fill(numel(o), 1.0, adj[out]);
  int rc = 0;
  for (int h = out; h >= 0 && rc == 0; h--)
    rc = visit(t, adj, adjt, h);
  for (int h = 0; h <= out; h++) {
    TapeNode *n = &t->nodes[h];
    if (rc == 0 && adj[h] && n->kind == KIND_LEAF)
      mdrt_axpby(numel(n), 1.0, adj[h], 1.0, n->grad);
    if (rc == 0 && adjt && adjt[h] && n->kind == KIND_LEAF)
      mdrt_axpby(numel(n), 1.0, adjt[h], 1.0, n->hvp);
    free(adj[h]);
    if (adjt)
      free(adjt[h]);
  }
  free(adj);
  free(adjt);
  return rc;
}

int mdrt_tape_backward(mdrt_tape *t, int out, const double *seed) {
  return reverse(t, out, seed, 0);
}

int mdrt_tape_backward2(mdrt_tape *t, int out, const double *seed) {
  return reverse(t, out, seed, 1);
}

void mdrt_tape_zero_grad(mdrt_tape *t) {
  for (int h = 0; t && h < t->len; h++)
    if (t->nodes[h].kind == KIND_LEAF) {
      mdrt_fill(numel(&t->nodes[h]), 0.0, t->nodes[h].grad);
      if (t->nodes[h].hvp)
        mdrt_fill(numel(&t->nodes[h]), 0.0, t->nodes[h].hvp);
    }
}

/* ---- accessors: -1 or NULL for a bad handle ----------------------------- */

long mdrt_tape_rows(const mdrt_tape *t, int h) {
  const TapeNode *n = node(t, h);
  return n ? n->rows : -1;
}

long mdrt_tape_cols(const mdrt_tape *t, int h) {
  const TapeNode *n = node(t, h);
  return n ? n->cols : -1;
}

const double *mdrt_tape_value(const mdrt_tape *t, int h) {
  const TapeNode *n = node(t, h);
  return n ? n->val : NULL;
}

const double *mdrt_tape_grad(const mdrt_tape *t, int h) {
  const TapeNode *n = node(t, h);
  return n ? n->grad : NULL;
}

const double *mdrt_tape_tangent(const mdrt_tape *t, int h) {
  const TapeNode *n = node(t, h);
  return n ? n->tan : NULL;
}

const double *mdrt_tape_hvp(const mdrt_tape *t, int h) {
  const TapeNode *n = node(t, h);
  return n ? n->hvp : NULL;
}

const char *mdrt_tape_error(const mdrt_tape *t) {
  return t ? t->err : "no tape";
}
