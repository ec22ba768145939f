/*
 * gen.c - random well-shaped matdiff programs (see gen.h): the generator,
 * the interval analysis that keeps them in the domain, the printer, the
 * reference interpreter and the shrinker.
 *
 * The generator is type-directed. gen_any(r, c) returns an expression of
 * shape r x c by picking an operation whose shape rule gives r x c and
 * asking for operands of the shapes that rule needs: a matrix product asks
 * for r x K and K x c with K random, a row sum sum(e, 1) for K x c, a
 * broadcast sum for a 1 x c row and an r x c matrix, and so on.
 *
 * Where a function has a restricted domain, its argument comes from a
 * narrower generator:
 *   gen_pos   every element >= 0.2    e.*e + 1, softplus(e) + 0.5, exp(B), ...
 *   gen_bnd   every element in [-1,1] tanh(e), sin(e), softmax(e, 2), inputs, ...
 *   gen_unit  every element in [-0.9, 0.9], for arcsin and arccos
 *   gen_wc    a well-conditioned square matrix, for inv, det, logdet:
 *             B + (n + 1)*eye(n) with |B| <= 1, B*B' + c*eye(n), diag(P)
 * and the interval analysis (iv_node, wc_margin) proves each result, so
 * the shrinker can use the same proof on the programs it makes.
 *
 * Magnitudes: every node's interval assumes the worst (sizes of
 * GEN_MAX_SIZE, inputs of +-1). When a subexpression's bound passes
 * SQUASH_AT it is wrapped in a function that flattens out (tanh, arctan, sigmoid),
 * so nothing downstream overflows and finite differences stay meaningful.
 */
#include "gen.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Exclusion switches. Set one to 0 to keep a construct out of the random
   programs while a compiler bug in it blocks the run (a crash or a hang);
   tests/test_random.c prints the ones that are off. */
#ifndef GEN_HOSTILE_NAMES
#define GEN_HOSTILE_NAMES 1   /* input and size names that are C keywords, libm names, emitter locals */
#endif

#define SQUASH_AT 50.0        /* wrap a subexpression whose bound passes this */
#define MAG_LIMIT 1e6         /* no node may be bounded worse than this */
#define POS_MIN 0.2           /* the lower bound log, sqrt, ./ and ||.|| need */
#define UNIT_MAX 0.9          /* the bound arcsin and arccos need */

/* ---- random numbers ----------------------------------------------------- */

uint64_t gen_hash(uint64_t seed, const char *tag) {
  uint64_t h = mix64(seed + 0x9E3779B97F4A7C15ull);
  for (const unsigned char *s = (const unsigned char *)tag; *s; s++)
    h = mix64(h ^ (*s + 0x100ull * (uint64_t)(s - (const unsigned char *)tag)));
  return h;
}

typedef struct Gen {
  GProg *p;
  Rng rng;
  int budget;        /* composite nodes still allowed */
  bool hostile;      /* names that collide with C */
} Gen;

static uint64_t next(Gen *g) { return next_u64(&g->rng); }
static int pick(Gen *g, int n) { return (int)(next(g) % (uint64_t)n); }
static bool chance(Gen *g, double pr) { return (double)(next(g) >> 11) * 0x1.0p-53 < pr; }

/* ---- sizes and shapes --------------------------------------------------- */

static GDim lit(long n) { return (GDim){-1, n}; }
static bool deq(GDim a, GDim b) { return a.sym == b.sym && (a.sym >= 0 || a.n == b.n); }
static bool is1(GDim d) { return d.sym < 0 && d.n == 1; }
static bool is_scalar(GDim r, GDim c) { return is1(r) && is1(c); }
static long dmax(GDim d) { return d.sym >= 0 ? GEN_MAX_SIZE : d.n; }
static long dmin(GDim d) { return d.sym >= 0 ? 1 : d.n; }
static long dval(GDim d, const long *dims) { return d.sym >= 0 ? dims[d.sym] : d.n; }

static const GNode *N(const GProg *p, int i) { return &p->node[i]; }
static bool nscalar(const GProg *p, int i) { return is_scalar(N(p, i)->r, N(p, i)->c); }
static bool same_shape(const GProg *p, int a, int b) {
  return deq(N(p, a)->r, N(p, b)->r) && deq(N(p, a)->c, N(p, b)->c);
}

/* ---- intervals ---------------------------------------------------------- */

static double smul(double x, double y) { return x == 0 || y == 0 ? 0 : x * y; }
static double mag(const GNode *n) { return fmax(fabs(n->lo), fabs(n->hi)); }

// The product of two intervals.
static void iv_mul(double alo, double ahi, double blo, double bhi, double *lo, double *hi) {
  double v[4] = {smul(alo, blo), smul(alo, bhi), smul(ahi, blo), smul(ahi, bhi)};
  *lo = *hi = v[0];
  for (int i = 1; i < 4; i++) {
    *lo = fmin(*lo, v[i]);
    *hi = fmax(*hi, v[i]);
  }
}

// A sum of between nmin and nmax terms, each in [lo, hi].
static void iv_nsum(double lo, double hi, long nmin, long nmax, double *olo, double *ohi) {
  *olo = fmin(smul((double)nmin, lo), smul((double)nmax, lo));
  *ohi = fmax(smul((double)nmin, hi), smul((double)nmax, hi));
}

// The smallest |x| over [lo, hi].
static double iv_mini(double lo, double hi) { return lo > 0 ? lo : hi < 0 ? -hi : 0; }

// An exponent that is one whole constant: its value in *E.
static bool const_int(const GNode *b, double *e) {
  if (b->lo != b->hi || b->lo != floor(b->lo) || fabs(b->lo) > 8)
    return false;
  *e = b->lo;
  return true;
}

static void iv_pow(const GNode *a, const GNode *b, double *lo, double *hi) {
  double e;
  if (const_int(b, &e) && e >= 0) {
    double m = mag(a), mi = iv_mini(a->lo, a->hi);
    if (e == 0) {
      *lo = *hi = 1;
    } else if ((long)e % 2) {
      *lo = a->lo < 0 ? -pow(-a->lo, e) : pow(a->lo, e);
      *hi = a->hi < 0 ? -pow(-a->hi, e) : pow(a->hi, e);
    } else {
      *lo = pow(mi, e);
      *hi = pow(m, e);
    }
    return;
  }
  if (a->lo <= 0) {  // a non-integer or varying power needs a positive base
    *lo = -INFINITY;
    *hi = INFINITY;
    return;
  }
  double v[4] = {pow(a->lo, b->lo), pow(a->lo, b->hi), pow(a->hi, b->lo), pow(a->hi, b->hi)};
  *lo = *hi = v[0];
  for (int i = 1; i < 4; i++) {
    *lo = fmin(*lo, v[i]);
    *hi = fmax(*hi, v[i]);
  }
}

static double sigmoid(double x) { return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)); }
static double softplus(double x) { return fmax(x, 0) + log1p(exp(-fabs(x))); }

static void iv_func(int f, double lo, double hi, double *olo, double *ohi) {
  switch (f) {
  case GF_EXP: *olo = exp(lo); *ohi = exp(hi); return;
  case GF_LOG: *olo = lo > 0 ? log(lo) : -INFINITY; *ohi = hi > 0 ? log(hi) : -INFINITY; return;
  case GF_SQRT: *olo = sqrt(fmax(lo, 0)); *ohi = sqrt(fmax(hi, 0)); return;
  case GF_SIN:
  case GF_COS: *olo = -1; *ohi = 1; return;
  case GF_TAN:
    if (lo > -1.5 && hi < 1.5) {
      *olo = tan(lo);
      *ohi = tan(hi);
    } else {
      *olo = -INFINITY;
      *ohi = INFINITY;
    }
    return;
  case GF_TANH: *olo = tanh(lo); *ohi = tanh(hi); return;
  case GF_SIGMOID: *olo = sigmoid(lo); *ohi = sigmoid(hi); return;
  case GF_RELU: *olo = fmax(lo, 0); *ohi = fmax(hi, 0); return;
  case GF_SOFTPLUS: *olo = softplus(lo); *ohi = softplus(hi); return;
  case GF_ABS: *olo = iv_mini(lo, hi); *ohi = fmax(fabs(lo), fabs(hi)); return;
  case GF_SIGN: *olo = lo > 0 ? 1 : -1; *ohi = hi < 0 ? -1 : 1; return;
  case GF_ASIN: *olo = asin(fmax(lo, -1)); *ohi = asin(fmin(hi, 1)); return;
  case GF_ACOS: *olo = acos(fmin(hi, 1)); *ohi = acos(fmax(lo, -1)); return;
  case GF_ATAN: *olo = atan(lo); *ohi = atan(hi); return;
  }
  *olo = -INFINITY;
  *ohi = INFINITY;
}

// The lower bound of the diagonal of D if D is "a diagonal matrix": eye,
// c*eye, eye*c, diag(P) or (n + v)*eye(n); -INFINITY if not. For
// (n + v)*eye(n), whose diagonal grows with n itself, it returns v and sets
// *SYM_PLUS.
static double diag_part(const GProg *p, int d, bool *sym_plus) {
  const GNode *n = N(p, d);
  *sym_plus = false;
  if (n->kind == G_LET)
    return diag_part(p, p->let[n->k].root, sym_plus);
  if (n->kind == G_EYE)
    return 1;
  if (n->kind == G_DIAGM && !nscalar(p, d))
    return N(p, n->kid[0])->lo;
  if (n->kind == G_MUL && !nscalar(p, d)) {
    int s = nscalar(p, n->kid[0]) ? n->kid[0] : n->kid[1], e = s == n->kid[0] ? n->kid[1] : n->kid[0];
    if (!nscalar(p, s) || N(p, e)->kind != G_EYE)
      return -INFINITY;
    const GNode *sn = N(p, s);
    // (n + v)*eye(n): the diagonal is n + v whatever n is bound to.
    if (sn->kind == G_ADD) {
      const GNode *x = N(p, sn->kid[0]), *y = N(p, sn->kid[1]);
      if (y->kind == G_SIZE)
        x = N(p, sn->kid[1]), y = N(p, sn->kid[0]);
      if (x->kind == G_SIZE && N(p, e)->r.sym == x->k && y->kind == G_NUM) {
        *sym_plus = true;
        return y->num;
      }
    }
    return sn->lo;
  }
  return -INFINITY;
}

// A lower bound on the smallest |eigenvalue| of node I if it is a
// well-conditioned square matrix by construction, 0 if it is not known to
// be. Gershgorin for diagonal + bounded (the off-diagonal row sums are at
// most (n - 1)*|B|), positive definiteness for B*B' + c*eye.
static double wc_margin(const GProg *p, int i) {
  const GNode *n = N(p, i);
  if (n->kind == G_LET)
    return wc_margin(p, p->let[n->k].root);
  if (nscalar(p, i))
    return iv_mini(n->lo, n->hi) >= POS_MIN ? iv_mini(n->lo, n->hi) : 0;
  bool symp;
  double d = diag_part(p, i, &symp);
  if (d > 0)  // diagonal: its smallest entry (at least 1 + v for (n + v)*eye(n))
    return symp ? (1 + d >= POS_MIN ? 1 + d : 0) : d >= POS_MIN ? d : 0;
  if (n->kind != G_ADD && n->kind != G_SUB)
    return 0;
  long size = dmax(n->r);
  for (int side = 0; side < 2; side++) {
    if (n->kind == G_SUB && side == 1)
      break;  // only c*eye - B
    int dd = n->kid[side], bb = n->kid[1 - side];
    double diag = diag_part(p, dd, &symp);
    if (diag == -INFINITY)
      continue;
    const GNode *b = N(p, bb);
    if (!same_shape(p, bb, i))
      continue;  // a broadcast operand is not a matrix we can bound this way
    // B*B' or B'*B, symmetric positive semidefinite: + c*eye is definite.
    if (n->kind == G_ADD && b->kind == G_MUL && !symp && diag >= POS_MIN) {
      const GNode *x = N(p, b->kid[0]), *y = N(p, b->kid[1]);
      if ((y->kind == G_TRANS && y->kid[0] == b->kid[0]) || (x->kind == G_TRANS && x->kid[0] == b->kid[1]))
        if (mag(N(p, x->kind == G_TRANS ? x->kid[0] : b->kid[0])) <= 1)
          return diag;
    }
    // Row i: |a_ii| >= diag - |B|, and the rest of the row sums to at most
    // (n - 1)|B|. For (n + v)*eye(n) the diagonal is n + v, so n|B| of it
    // is paid for by n itself when |B| <= 1.
    double bm = mag(b), margin = symp ? diag - (double)size * fmax(bm - 1, 0) : diag - (double)size * bm;
    return margin >= POS_MIN ? margin : 0;
  }
  return 0;
}

// Node I's interval, from its operands' (already computed).
static void iv_node(GProg *p, int i) {
  GNode *n = &p->node[i];
  const GNode *a = n->kid[0] >= 0 ? N(p, n->kid[0]) : NULL, *b = n->kid[1] >= 0 ? N(p, n->kid[1]) : NULL;
  double lo = -INFINITY, hi = INFINITY;
  switch (n->kind) {
  case G_NUM: lo = hi = n->num; break;
  case G_VAR: lo = -1; hi = 1; break;
  case G_LET: lo = N(p, p->let[n->k].root)->lo; hi = N(p, p->let[n->k].root)->hi; break;
  case G_SIZE: lo = 1; hi = GEN_MAX_SIZE; break;
  case G_ZEROS: lo = hi = 0; break;
  case G_ONES: lo = hi = 1; break;
  case G_EYE: lo = is_scalar(n->r, n->c) ? 1 : 0; hi = 1; break;
  case G_NEG: lo = -a->hi; hi = -a->lo; break;
  case G_TRANS: lo = a->lo; hi = a->hi; break;
  case G_FUNC: iv_func(n->k, a->lo, a->hi, &lo, &hi); break;
  case G_SUM:
  case G_MEAN: {
    long nmin = n->k == 0 ? dmin(a->r) * dmin(a->c) : n->k == 1 ? dmin(a->r) : dmin(a->c);
    long nmax = n->k == 0 ? dmax(a->r) * dmax(a->c) : n->k == 1 ? dmax(a->r) : dmax(a->c);
    if (n->kind == G_MEAN)
      lo = a->lo, hi = a->hi;
    else
      iv_nsum(a->lo, a->hi, nmin, nmax, &lo, &hi);
    break;
  }
  case G_LSE: {
    long nmax = n->k == 0 ? dmax(a->r) * dmax(a->c) : n->k == 1 ? dmax(a->r) : dmax(a->c);
    lo = a->lo;
    hi = a->hi + log((double)nmax);
    break;
  }
  case G_SOFTMAX: lo = 0; hi = 1; break;
  case G_NORM:
  case G_NORMSQ:
  case G_NORM1: {
    double cnt_lo = (double)(dmin(a->r) * dmin(a->c)), cnt_hi = (double)(dmax(a->r) * dmax(a->c));
    double mi = iv_mini(a->lo, a->hi), m = mag(a);
    if (n->kind == G_NORM)
      lo = mi * sqrt(cnt_lo), hi = m * sqrt(cnt_hi);
    else if (n->kind == G_NORMSQ)
      lo = mi * mi * cnt_lo, hi = m * m * cnt_hi;
    else
      lo = mi * cnt_lo, hi = m * cnt_hi;
    break;
  }
  case G_TR: iv_nsum(a->lo, a->hi, dmin(a->r), dmax(a->r), &lo, &hi); break;
  case G_DET:
  case G_LOGDET: {
    // Hadamard: |det A| <= (sqrt(n)*max|a_ij|)^n; below, every |eigenvalue| >= the margin.
    double bound = 0;
    for (long k = dmin(a->r); k <= dmax(a->r); k++)
      bound = fmax(bound, pow(sqrt((double)k) * mag(a), (double)k));
    double margin = wc_margin(p, n->kid[0]);
    if (n->kind == G_DET) {
      lo = -bound;
      hi = bound;
    } else {
      lo = margin > 0 ? (double)dmax(a->r) * fmin(log(margin), 0) : -INFINITY;
      hi = log(fmax(bound, 1));
    }
    break;
  }
  case G_INV: {
    double margin = wc_margin(p, n->kid[0]);
    // Diagonally dominant by a margin: ||inv||_inf <= 1/margin; definite: ||inv||_2 <= 1/margin.
    if (margin > 0)
      lo = -1 / margin, hi = 1 / margin;
    break;
  }
  case G_DIAGM:
    lo = nscalar(p, n->kid[0]) ? a->lo : fmin(a->lo, 0);
    hi = nscalar(p, n->kid[0]) ? a->hi : fmax(a->hi, 0);
    break;
  case G_DIAGV: lo = a->lo; hi = a->hi; break;
  case G_MPOW:
    if (n->k == 0) {
      lo = 0;
      hi = 1;
    } else {
      double m = pow((double)dmax(a->r), n->k - 1) * pow(mag(a), n->k);
      lo = n->k == 1 ? a->lo : -m;
      hi = n->k == 1 ? a->hi : m;
    }
    break;
  case G_ADD: lo = a->lo + b->lo; hi = a->hi + b->hi; break;
  case G_SUB: lo = a->lo - b->hi; hi = a->hi - b->lo; break;
  case G_MUL:
    iv_mul(a->lo, a->hi, b->lo, b->hi, &lo, &hi);
    if (!is_scalar(a->r, a->c) && !is_scalar(b->r, b->c))
      iv_nsum(lo, hi, dmin(a->c), dmax(a->c), &lo, &hi);
    break;
  case G_EMUL: iv_mul(a->lo, a->hi, b->lo, b->hi, &lo, &hi); break;
  case G_DIV:
  case G_EDIV:
    if (b->lo > 0 || b->hi < 0)
      iv_mul(a->lo, a->hi, 1 / b->hi, 1 / b->lo, &lo, &hi);
    break;
  case G_POW:
  case G_EPOW: iv_pow(a, b, &lo, &hi); break;
  case G_DOT:
    iv_mul(a->lo, a->hi, b->lo, b->hi, &lo, &hi);
    iv_nsum(lo, hi, dmin(a->r) * dmin(a->c), dmax(a->r) * dmax(a->c), &lo, &hi);
    break;
  case G_KINDS: break;
  }
  if (isnan(lo) || isnan(hi))
    lo = -INFINITY, hi = INFINITY;
  n->lo = lo;
  n->hi = hi;
}

/* ---- nodes -------------------------------------------------------------- */

static int add_node(GProg *p, GKind kind, int a, int b, int k, double num, GDim r, GDim c) {
  if (p->nnodes == p->cap) {
    p->cap = p->cap ? 2 * p->cap : 256;
    p->node = realloc(p->node, sizeof *p->node * (size_t)p->cap);
    if (!p->node)
      abort();
  }
  p->node[p->nnodes] = (GNode){.kind = kind, .kid = {a, b}, .k = k, .num = num, .r = r, .c = c};
  iv_node(p, p->nnodes);
  return p->nnodes++;
}

static GDim let_r(const GProg *p, int l) { return N(p, p->let[l].root)->r; }
static GDim let_c(const GProg *p, int l) { return N(p, p->let[l].root)->c; }

static int mk_num(GProg *p, double v) { return add_node(p, G_NUM, -1, -1, 0, v, lit(1), lit(1)); }
static int mk_var(GProg *p, int i) { return add_node(p, G_VAR, -1, -1, i, 0, p->in[i].r, p->in[i].c); }
static int mk_let(GProg *p, int l) { return add_node(p, G_LET, -1, -1, l, 0, let_r(p, l), let_c(p, l)); }
static int mk_size(GProg *p, int d) { return add_node(p, G_SIZE, -1, -1, d, 0, lit(1), lit(1)); }
static int mk_fill(GProg *p, GKind kind, GDim r, GDim c) { return add_node(p, kind, -1, -1, 0, 0, r, c); }

// A unary operation; the shape follows the language's rule.
static int mk_un(GProg *p, GKind kind, int k, int a) {
  GDim r = N(p, a)->r, c = N(p, a)->c;
  switch (kind) {
  case G_TRANS: return add_node(p, kind, a, -1, k, 0, c, r);
  case G_SUM:
  case G_MEAN:
  case G_LSE:
    if (k == 0)
      return add_node(p, kind, a, -1, k, 0, lit(1), lit(1));
    return add_node(p, kind, a, -1, k, 0, k == 1 ? lit(1) : r, k == 1 ? c : lit(1));
  case G_NORM: case G_NORMSQ: case G_NORM1: case G_TR: case G_DET: case G_LOGDET:
    return add_node(p, kind, a, -1, k, 0, lit(1), lit(1));
  case G_DIAGM: return add_node(p, kind, a, -1, k, 0, r, r);
  case G_DIAGV: return add_node(p, kind, a, -1, k, 0, r, lit(1));
  default: return add_node(p, kind, a, -1, k, 0, r, c);
  }
}

// The broadcast shape of an elementwise operation on A and B.
static void bshape(const GProg *p, int a, int b, GDim *r, GDim *c) {
  const GNode *x = N(p, a), *y = N(p, b);
  bool xs = is_scalar(x->r, x->c), ys = is_scalar(y->r, y->c);
  bool same = deq(x->r, y->r) && deq(x->c, y->c);
  bool xrow = is1(x->r) && deq(x->c, y->c), xcol = is1(x->c) && deq(x->r, y->r);
  const GNode *w = same || ys ? x : xs ? y : xrow || xcol ? y : x;
  *r = w->r;
  *c = w->c;
}

static int mk_bin(GProg *p, GKind kind, int a, int b) {
  GDim r = N(p, a)->r, c = N(p, a)->c;
  switch (kind) {
  case G_ADD: case G_SUB: case G_EMUL: case G_EDIV: case G_EPOW:
    bshape(p, a, b, &r, &c);
    break;
  case G_MUL:
    if (nscalar(p, a))
      r = N(p, b)->r, c = N(p, b)->c;
    else if (!nscalar(p, b))
      c = N(p, b)->c;
    break;
  case G_POW: case G_DOT:
    r = c = lit(1);
    break;
  default: break;
  }
  return add_node(p, kind, a, b, 0, 0, r, c);
}

/* ---- names -------------------------------------------------------------- */

static const char *const input_names[] = {
    "x", "y", "z", "w", "b", "v", "u", "a", "c", "A", "B", "C", "W", "X", "Y", "M", "S",
    "P", "theta", "bias", "W_1", "x2", "alpha", "Sigma", "mu", "h0", "Wout", "beta"};
// Legal matdiff names that are C keywords, libm functions, macros, or the
// emitted code's own names (dX for X's gradient, out, seed, ws_, i, j).
static const char *const hostile_names[] = {
    "out", "seed", "ws", "ws_", "i", "j", "int", "double", "sin", "exp", "log", "dX", "dx",
    "dw", "f", "tmp", "t0", "NULL", "len", "y0", "main", "float", "abs", "free", "pow",
    "sqrt", "rows", "cols", "sum", "X", "x", "w", "long", "return", "M_PI", "NAN", "errno"};
static const char *const dim_names[] = {"n", "m", "k", "d", "p", "q", "N", "h", "n2", "r"};
static const char *const hostile_dims[] = {"i", "j", "len", "out", "long", "n0", "ws", "int", "k", "size"};
static const char *const let_names[] = {"r", "t", "h1", "z1", "tmp", "s", "acc", "u1", "e1", "q2"};
static const char *const out_names[] = {"y", "loss", "f", "out", "L", "obj", "value", "res"};

static bool name_taken(const GProg *p, const char *s) {
  if (!strcmp(s, "G") || !strcmp(s, "wrt"))
    return true;
  for (int i = 0; i < p->ndims; i++)
    if (!strcmp(p->dimname[i], s))
      return true;
  for (int i = 0; i < p->ninputs; i++)
    if (!strcmp(p->in[i].name, s))
      return true;
  for (int i = 0; i < p->nlets; i++)
    if (!strcmp(p->let[i].name, s))
      return true;
  return false;
}

// A fresh name from POOL (or, when all are taken, one made from a prefix).
static void fresh(Gen *g, char *out, const char *const *pool, int n, const char *prefix) {
  for (int tries = 0; tries < 8; tries++) {
    const char *s = pool[pick(g, n)];
    if (!name_taken(g->p, s)) {
      snprintf(out, GEN_NAME, "%s", s);
      return;
    }
  }
  for (int k = 1;; k++) {
    snprintf(out, GEN_NAME, "%s%d", prefix, k);
    if (!name_taken(g->p, out))
      return;
  }
}

#define COUNT(a) ((int)(sizeof(a) / sizeof *(a)))

/* ---- the generator ------------------------------------------------------ */

static GDim rand_dim(Gen *g) {
  if (g->p->ndims > 0 && chance(g, 0.55))
    return (GDim){pick(g, g->p->ndims), 0};
  return chance(g, 0.45) ? lit(1) : lit(2 + pick(g, 3));
}

static const double nice_nums[] = {0.5, 1, 2, 3, 0.25, 1.5, 0.1, 10, 0.75, 4};

static int new_input(Gen *g, GDim r, GDim c) {
  GProg *p = g->p;
  if (p->ninputs >= GEN_MAX_INPUTS - GEN_MAX_DIMS)
    return -1;
  GInput *in = &p->in[p->ninputs];
  memset(in, 0, sizeof *in);
  if (g->hostile && chance(g, 0.5))
    fresh(g, in->name, hostile_names, COUNT(hostile_names), "v");
  else
    fresh(g, in->name, input_names, COUNT(input_names), "x");
  in->r = r;
  in->c = c;
  in->type = is_scalar(r, c) ? (chance(g, 0.8) ? 0 : chance(g, 0.5) ? 1 : 2)
             : is1(c)        ? (chance(g, 0.8) ? 1 : 2)
                             : 2;
  return p->ninputs++;
}

// An input of shape r x c: an existing one, usually, or a new one.
static int get_input(Gen *g, GDim r, GDim c) {
  GProg *p = g->p;
  int have[GEN_MAX_INPUTS], nh = 0;
  for (int i = 0; i < p->ninputs; i++)
    if (deq(p->in[i].r, r) && deq(p->in[i].c, c))
      have[nh++] = i;
  if (nh && chance(g, 0.7))
    return have[pick(g, nh)];
  int i = new_input(g, r, c);
  return i >= 0 ? i : nh ? have[pick(g, nh)] : -1;
}

static int gen_any(Gen *g, GDim r, GDim c, int depth);
static int gen_pos(Gen *g, GDim r, GDim c, int depth);
static int gen_bnd(Gen *g, GDim r, GDim c, int depth);

static int num(Gen *g) { return mk_num(g->p, nice_nums[pick(g, COUNT(nice_nums))]); }

// A constant of shape r x c.
static int gen_const(Gen *g, GDim r, GDim c) {
  GProg *p = g->p;
  if (is_scalar(r, c))
    return chance(g, 0.85) ? num(g) : mk_un(p, G_NEG, 0, num(g));
  if (deq(r, c) && chance(g, 0.3))
    return mk_fill(p, G_EYE, r, c);
  if (chance(g, 0.2))
    return mk_fill(p, G_ZEROS, r, c);
  int o = mk_fill(p, G_ONES, r, c);
  return chance(g, 0.5) ? o : mk_bin(p, G_MUL, num(g), o);
}

// Intermediate L made into shape r x c, when a cheap adapter exists: L
// itself, L', a reduction to a scalar, a row or a column, or a scalar L
// spread with ones. -1 if none.
static int adapt_let(Gen *g, int l, GDim r, GDim c) {
  GProg *p = g->p;
  GDim a = let_r(p, l), b = let_c(p, l);
  if (deq(a, r) && deq(b, c))
    return mk_let(p, l);
  if (deq(a, c) && deq(b, r))
    return mk_un(p, G_TRANS, 0, mk_let(p, l));
  if (is_scalar(r, c)) {
    switch (pick(g, 4)) {
    case 0: return mk_un(p, G_SUM, 0, mk_let(p, l));
    case 1: return mk_un(p, G_MEAN, 0, mk_let(p, l));
    case 2: return mk_un(p, G_NORMSQ, 0, mk_let(p, l));
    default: return mk_un(p, G_LSE, 0, mk_let(p, l));
    }
  }
  if (is1(r) && deq(b, c))
    return mk_un(p, chance(g, 0.5) ? G_SUM : G_MEAN, 1, mk_let(p, l));
  if (is1(c) && deq(a, r))
    return mk_un(p, chance(g, 0.5) ? G_SUM : G_LSE, 2, mk_let(p, l));
  if (is_scalar(a, b))
    return mk_bin(p, G_MUL, mk_let(p, l), mk_fill(p, G_ONES, r, c));
  return -1;
}

static int gen_leaf(Gen *g, GDim r, GDim c) {
  GProg *p = g->p;
  if (p->nlets && chance(g, 0.45)) {
    int l = pick(g, p->nlets), x = adapt_let(g, l, r, c);
    if (x >= 0)
      return x;
  }
  if (is_scalar(r, c)) {
    if (p->ndims && chance(g, 0.1))
      return mk_size(p, pick(g, p->ndims));
    if (chance(g, 0.25))
      return gen_const(g, r, c);
  } else if (chance(g, 0.06)) {
    return gen_const(g, r, c);
  }
  int i = get_input(g, r, c);
  return i >= 0 ? mk_var(p, i) : gen_const(g, r, c);
}

// Shapes for the operands of an elementwise operation giving r x c: equal,
// a scalar with either, a 1 x c row or an r x 1 column with the matrix.
static void bcast_shapes(Gen *g, GDim r, GDim c, GDim s[4]) {
  GDim one = lit(1);
  s[0] = s[2] = r;
  s[1] = s[3] = c;
  if (is_scalar(r, c) || chance(g, 0.55))
    return;
  int side = pick(g, 2) * 2;  // which operand is the small one
  switch (pick(g, 3)) {
  case 0: s[side] = one; s[side + 1] = one; break;  // scalar
  case 1: s[side] = one; break;                     // 1 x c row
  default: s[side + 1] = one; break;                // r x 1 column
  }
}

// An argument for relu, abs, sign, norm1: kinks are at 0, so anything but
// a bare input gets an offset; an expression that is 0 in exact arithmetic
// and rounding noise in practice then stays away from the kink.
static int kink_arg(Gen *g, GDim r, GDim c, int depth) {
  GProg *p = g->p;
  int e = gen_any(g, r, c, depth);
  if (N(p, e)->kind == G_VAR && chance(g, 0.7))
    return e;
  int o = mk_num(p, chance(g, 0.5) ? 0.3 : 0.7);
  return chance(g, 0.5) ? mk_bin(p, G_ADD, e, o) : mk_bin(p, G_SUB, e, o);
}

static int gen_pos(Gen *g, GDim r, GDim c, int depth) {
  GProg *p = g->p;
  static const double offs[] = {0.25, 0.5, 1, 2};
  if (depth <= 0 || chance(g, 0.15)) {
    if (is_scalar(r, c) && chance(g, 0.5))
      return p->ndims && chance(g, 0.3) ? mk_size(p, pick(g, p->ndims)) : mk_num(p, offs[1 + pick(g, 3)]);
    int v = get_input(g, r, c);
    if (v < 0 || chance(g, 0.2))
      return mk_fill(p, G_ONES, r, c);
    return chance(g, 0.5) ? mk_un(p, G_FUNC, GF_EXP, mk_var(p, v))
                          : mk_bin(p, G_ADD, mk_un(p, G_FUNC, GF_SIGMOID, mk_var(p, v)), mk_num(p, 0.5));
  }
  switch (pick(g, 9)) {
  case 0: {  // e.*e + c, e.^2 + c
    int e = gen_any(g, r, c, depth - 1);
    int sq = chance(g, 0.5) ? mk_bin(p, G_EMUL, e, e) : mk_bin(p, G_EPOW, e, mk_num(p, 2));
    return mk_bin(p, G_ADD, sq, mk_num(p, offs[1 + pick(g, 3)]));
  }
  case 1: {  // softplus(e) + c, sigmoid(e) + c
    int e = gen_any(g, r, c, depth - 1);
    int f = mk_un(p, G_FUNC, chance(g, 0.5) ? GF_SOFTPLUS : GF_SIGMOID, e);
    int o = mk_num(p, offs[pick(g, 4)]);
    return chance(g, 0.5) ? mk_bin(p, G_ADD, f, o) : mk_bin(p, G_ADD, o, f);
  }
  case 2: return mk_un(p, G_FUNC, GF_EXP, gen_bnd(g, r, c, depth - 1));
  case 3: return mk_un(p, G_FUNC, GF_SQRT, gen_pos(g, r, c, depth - 1));
  case 4: {  // P + P, broadcasting
    GDim s[4];
    bcast_shapes(g, r, c, s);
    return mk_bin(p, G_ADD, gen_pos(g, s[0], s[1], depth - 1), gen_pos(g, s[2], s[3], depth - 1));
  }
  case 5:  // softmax(e, k) + c
    return mk_bin(p, G_ADD, mk_un(p, G_SOFTMAX, pick(g, 3), gen_any(g, r, c, depth - 1)),
                  mk_num(p, offs[1 + pick(g, 3)]));
  case 6:
    if (is_scalar(r, c)) {  // 1 + ||e||^2
      int e = gen_any(g, rand_dim(g), rand_dim(g), depth - 1);
      return mk_bin(p, G_ADD, mk_num(p, 1), mk_un(p, G_NORMSQ, pick(g, 4), e));
    }
    return mk_bin(p, G_ADD, mk_un(p, G_FUNC, GF_ABS, kink_arg(g, r, c, depth - 1)), mk_num(p, 0.5));
  case 7: {  // P .* P stays >= 0.2 when one side is >= 1
    int a = mk_bin(p, G_ADD, gen_pos(g, r, c, depth - 1), mk_num(p, 1));
    return mk_bin(p, G_EMUL, a, gen_pos(g, r, c, depth - 1));
  }
  default: {  // cosh-like: exp(B) + exp(-B)
    int b = gen_bnd(g, r, c, depth - 1);
    return mk_bin(p, G_ADD, mk_un(p, G_FUNC, GF_EXP, b), mk_un(p, G_FUNC, GF_EXP, mk_un(p, G_NEG, 0, b)));
  }
  }
}

static int gen_bnd(Gen *g, GDim r, GDim c, int depth) {
  GProg *p = g->p;
  if (depth <= 0 || chance(g, 0.25)) {
    int v = get_input(g, r, c);
    return v >= 0 && chance(g, 0.9) ? mk_var(p, v) : mk_fill(p, chance(g, 0.5) ? G_ONES : G_ZEROS, r, c);
  }
  switch (pick(g, 11)) {
  case 0:
  case 1: return mk_un(p, G_FUNC, GF_TANH, gen_any(g, r, c, depth - 1));
  case 2: return mk_un(p, G_FUNC, GF_SIN, gen_any(g, r, c, depth - 1));
  case 3: return mk_un(p, G_FUNC, GF_COS, gen_any(g, r, c, depth - 1));
  case 4: return mk_un(p, G_FUNC, GF_SIGMOID, gen_any(g, r, c, depth - 1));
  case 5: return mk_bin(p, G_DIV, mk_un(p, G_FUNC, GF_ATAN, gen_any(g, r, c, depth - 1)), mk_num(p, 2));
  case 6: return mk_un(p, G_SOFTMAX, pick(g, 3), gen_any(g, r, c, depth - 1));
  case 7: {
    GDim s[4];
    bcast_shapes(g, r, c, s);
    return mk_bin(p, G_EMUL, gen_bnd(g, s[0], s[1], depth - 1), gen_bnd(g, s[2], s[3], depth - 1));
  }
  case 8: return mk_un(p, G_NEG, 0, gen_bnd(g, r, c, depth - 1));
  case 9: return mk_un(p, G_TRANS, 0, gen_bnd(g, c, r, depth - 1));
  default: {
    GDim s[4];
    bcast_shapes(g, r, c, s);
    int sum = mk_bin(p, chance(g, 0.5) ? G_ADD : G_SUB, gen_bnd(g, s[0], s[1], depth - 1),
                     gen_bnd(g, s[2], s[3], depth - 1));
    return mk_bin(p, G_DIV, sum, mk_num(p, 2));
  }
  }
}

static int gen_unit(Gen *g, GDim r, GDim c, int depth) {
  GProg *p = g->p;
  switch (pick(g, 4)) {
  case 0: return mk_bin(p, G_DIV, gen_bnd(g, r, c, depth - 1), mk_num(p, 2));
  case 1: return mk_bin(p, G_MUL, mk_num(p, chance(g, 0.5) ? 0.8 : 0.9), gen_bnd(g, r, c, depth - 1));
  case 2: return mk_bin(p, G_SUB, mk_un(p, G_FUNC, GF_SIGMOID, gen_any(g, r, c, depth - 1)), mk_num(p, 0.5));
  default: return mk_bin(p, G_MUL, gen_bnd(g, r, c, depth - 1), mk_num(p, 0.5));
  }
}

// c*eye(n) with c large enough for any B with |B| <= 1 beside it: n + 1
// for a literal n, and for a symbolic one either (n + 1) or 6.
static int dominant_eye(Gen *g, GDim n) {
  GProg *p = g->p;
  int c;
  if (n.sym >= 0 && chance(g, 0.6))
    c = mk_bin(p, G_ADD, mk_size(p, n.sym), mk_num(p, chance(g, 0.5) ? 1 : 2));
  else
    c = mk_num(p, (double)dmax(n) + 1 + pick(g, 2));
  int e = mk_fill(p, G_EYE, n, n);
  return chance(g, 0.7) ? mk_bin(p, G_MUL, c, e) : mk_bin(p, G_MUL, e, c);
}

static int gen_wc(Gen *g, GDim n, int depth) {
  GProg *p = g->p;
  if (is1(n))
    return gen_pos(g, n, n, depth);
  if (depth <= 0 && chance(g, 0.3))
    return mk_fill(p, G_EYE, n, n);
  switch (pick(g, 5)) {
  case 0:
  case 1: {  // B + c*eye(n)
    int b = gen_bnd(g, n, n, depth - 1), d = dominant_eye(g, n);
    return chance(g, 0.5) ? mk_bin(p, G_ADD, b, d) : mk_bin(p, G_ADD, d, b);
  }
  case 2:  // c*eye(n) - B
    return mk_bin(p, G_SUB, dominant_eye(g, n), gen_bnd(g, n, n, depth - 1));
  case 3: {  // B*B' + c*eye(n), or B'*B
    GDim k = rand_dim(g);
    bool left = chance(g, 0.5);
    int b = left ? gen_bnd(g, n, k, depth - 1) : gen_bnd(g, k, n, depth - 1);
    int bt = mk_un(p, G_TRANS, 0, b);
    int prod = left ? mk_bin(p, G_MUL, b, bt) : mk_bin(p, G_MUL, bt, b);
    int ce = mk_bin(p, G_MUL, mk_num(p, chance(g, 0.5) ? 0.5 : 1), mk_fill(p, G_EYE, n, n));
    return mk_bin(p, G_ADD, prod, ce);
  }
  default: return mk_un(p, G_DIAGM, 0, gen_pos(g, n, lit(1), depth - 1));
  }
}

// An exponent and base for a^b or a.^b of shape r x c.
static int gen_power(Gen *g, GDim r, GDim c, int depth, bool scalar_pow) {
  GProg *p = g->p;
  GKind kind = scalar_pow ? G_POW : G_EPOW;
  static const double any_exp[] = {1, 2, 3};
  static const double pos_exp[] = {-1, -2, 0.5, 1.5, -0.5, 0, 2, 3};
  switch (pick(g, 4)) {
  case 0:  // anything to 1, 2 or 3
    return mk_bin(p, kind, gen_any(g, r, c, depth - 1), mk_num(p, any_exp[pick(g, 3)]));
  case 1: {  // positive to a literal, perhaps negative, perhaps fractional
    double e = pos_exp[pick(g, COUNT(pos_exp))];
    int x = e < 0 ? mk_un(p, G_NEG, 0, mk_num(p, -e)) : mk_num(p, e);
    return mk_bin(p, kind, gen_pos(g, r, c, depth - 1), x);
  }
  case 2: {  // positive to a bounded expression (broadcasting), or to a size
    GDim s[4];
    bcast_shapes(g, r, c, s);
    if (scalar_pow || is_scalar(s[2], s[3]) || chance(g, 0.3)) {  // a scalar exponent
      int e = p->ndims && chance(g, 0.3) ? mk_size(p, pick(g, p->ndims)) : gen_bnd(g, lit(1), lit(1), depth - 1);
      if (N(p, e)->kind == G_SIZE && chance(g, 0.5))
        e = mk_un(p, G_NEG, 0, e);
      return mk_bin(p, kind, gen_pos(g, r, c, depth - 1), e);
    }
    return mk_bin(p, kind, gen_pos(g, s[0], s[1], depth - 1), gen_bnd(g, s[2], s[3], depth - 1));
  }
  default:  // a constant base: 2 .^ B
    return mk_bin(p, kind, mk_num(p, chance(g, 0.5) ? 2 : 0.5), gen_bnd(g, r, c, depth - 1));
  }
}

// A scalar from a reduction of something of a random shape.
static int gen_scalar_reduce(Gen *g, int depth) {
  GProg *p = g->p;
  GDim r = rand_dim(g), c = rand_dim(g);
  bool vec = is1(r) || is1(c);
  switch (pick(g, 11)) {
  case 0: return mk_un(p, G_SUM, 0, gen_any(g, r, c, depth - 1));
  case 1: return mk_un(p, G_MEAN, 0, gen_any(g, r, c, depth - 1));
  case 2: return mk_bin(p, G_DOT, gen_any(g, r, c, depth - 1), gen_any(g, r, c, depth - 1));
  case 3: return mk_un(p, G_LSE, 0, gen_any(g, r, c, depth - 1));
  case 4: return mk_un(p, G_NORM, vec ? pick(g, 4) : pick(g, 3), gen_pos(g, r, c, depth - 1));
  case 5: return mk_un(p, G_NORMSQ, vec ? pick(g, 5) : pick(g, 4), gen_any(g, r, c, depth - 1));
  case 6: return mk_un(p, G_NORM1, pick(g, 2), kink_arg(g, r, c, depth - 1));
  case 7: return mk_un(p, G_TR, 0, gen_any(g, r, r, depth - 1));
  case 8: return mk_un(p, G_DET, 0, gen_wc(g, r, depth - 1));
  case 9: return mk_un(p, G_LOGDET, 0, gen_wc(g, r, depth - 1));
  default:  // sum(v, 1) of a column, sum(v, 2) of a row: 1x1 too
    return chance(g, 0.5) ? mk_un(p, G_SUM, 1, gen_any(g, r, lit(1), depth - 1))
                          : mk_un(p, G_MEAN, 2, gen_any(g, lit(1), c, depth - 1));
  }
}

static int gen_func(Gen *g, GDim r, GDim c, int depth) {
  GProg *p = g->p;
  int f = pick(g, GF_COUNT), a;
  switch (f) {
  case GF_EXP: case GF_TAN: a = gen_bnd(g, r, c, depth - 1); break;
  case GF_LOG: case GF_SQRT: a = gen_pos(g, r, c, depth - 1); break;
  case GF_RELU: case GF_ABS: case GF_SIGN: a = kink_arg(g, r, c, depth - 1); break;
  case GF_ASIN: case GF_ACOS: a = gen_unit(g, r, c, depth - 1); break;
  default: a = gen_any(g, r, c, depth - 1); break;
  }
  return mk_un(p, G_FUNC, f, a);
}

// Wrap X in a bounded function if its bound has grown past SQUASH_AT. Only
// functions that flatten out: sin(X) would bound the value but not the
// derivative, and an argument of 10^4 oscillates faster than any finite
// difference can follow.
static int squash(Gen *g, int x) {
  GProg *p = g->p;
  if (mag(N(p, x)) <= SQUASH_AT)
    return x;
  static const int fs[] = {GF_TANH, GF_ATAN, GF_SIGMOID};
  return mk_un(p, G_FUNC, fs[pick(g, COUNT(fs))], x);
}

static int gen_any(Gen *g, GDim r, GDim c, int depth) {
  GProg *p = g->p;
  if (depth <= 0 || g->budget <= 0 || chance(g, 0.12))
    return gen_leaf(g, r, c);
  g->budget--;
  bool scalar = is_scalar(r, c), square = deq(r, c) && !scalar;
  // The operations only some shapes have would be rare among the twenty
  // choices below: give them their own chance first.
  int first = square && chance(g, 0.2) ? 14 : scalar && chance(g, 0.3) ? 17 : -1;
  for (;;) {
    int x = -1, choice = first >= 0 ? first : pick(g, 20);
    first = -1;
    switch (choice) {
    case 0:
    case 1: {  // + and -, broadcasting
      GDim s[4];
      bcast_shapes(g, r, c, s);
      x = mk_bin(p, chance(g, 0.6) ? G_ADD : G_SUB, gen_any(g, s[0], s[1], depth - 1), gen_any(g, s[2], s[3], depth - 1));
      break;
    }
    case 2: {  // .*
      GDim s[4];
      bcast_shapes(g, r, c, s);
      x = mk_bin(p, G_EMUL, gen_any(g, s[0], s[1], depth - 1), gen_any(g, s[2], s[3], depth - 1));
      break;
    }
    case 3: {  // ./ by something positive
      GDim s[4];
      bcast_shapes(g, r, c, s);
      x = mk_bin(p, G_EDIV, gen_any(g, s[0], s[1], depth - 1), gen_pos(g, s[2], s[3], depth - 1));
      break;
    }
    case 4:
    case 5: {  // a matrix product through a random inner size
      GDim k = rand_dim(g);
      x = mk_bin(p, G_MUL, gen_any(g, r, k, depth - 1), gen_any(g, k, c, depth - 1));
      break;
    }
    case 6: {  // scaling: s*A, A*s
      int s = gen_any(g, lit(1), lit(1), depth - 1), a = gen_any(g, r, c, depth - 1);
      x = chance(g, 0.5) ? mk_bin(p, G_MUL, s, a) : mk_bin(p, G_MUL, a, s);
      break;
    }
    case 7:  // / by a positive scalar
      x = mk_bin(p, G_DIV, gen_any(g, r, c, depth - 1), gen_pos(g, lit(1), lit(1), depth - 1));
      break;
    case 8: x = mk_un(p, G_NEG, 0, gen_any(g, r, c, depth - 1)); break;
    case 9: x = mk_un(p, G_TRANS, 0, gen_any(g, c, r, depth - 1)); break;
    case 10:
    case 11: x = gen_func(g, r, c, depth); break;
    case 12: x = gen_power(g, r, c, depth, scalar); break;
    case 13: x = mk_un(p, G_SOFTMAX, pick(g, 3), gen_any(g, r, c, depth - 1)); break;
    case 14:  // square only: A^k, inv, diag(v)
      if (!square)
        continue;
      switch (pick(g, 3)) {
      case 0: x = mk_un(p, G_MPOW, pick(g, 4), gen_bnd(g, r, r, depth - 1)); break;
      case 1: x = mk_un(p, G_INV, 0, gen_wc(g, r, depth - 1)); break;
      default: x = mk_un(p, G_DIAGM, 0, gen_any(g, r, lit(1), depth - 1)); break;
      }
      break;
    case 15: {  // a row from a reduction down the columns
      if (!is1(r))
        continue;
      GDim k = rand_dim(g);
      GKind kind = (GKind[]){G_SUM, G_MEAN, G_LSE}[pick(g, 3)];
      x = mk_un(p, kind, 1, gen_any(g, k, c, depth - 1));
      break;
    }
    case 16: {  // a column from a reduction along the rows, or a diagonal
      if (!is1(c))
        continue;
      if (chance(g, 0.25)) {
        x = mk_un(p, G_DIAGV, 0, gen_any(g, r, r, depth - 1));
        break;
      }
      GDim k = rand_dim(g);
      GKind kind = (GKind[]){G_SUM, G_MEAN, G_LSE}[pick(g, 3)];
      x = mk_un(p, kind, 2, gen_any(g, r, k, depth - 1));
      break;
    }
    default:
      if (!scalar)
        continue;
      x = gen_scalar_reduce(g, depth);
      break;
    }
    return squash(g, x);
  }
}

/* ---- whole programs ----------------------------------------------------- */

static void mark_reachable(const GProg *p, int i, char *seen) {
  if (i < 0 || seen[i])
    return;
  seen[i] = 1;
  const GNode *n = N(p, i);
  if (n->kind == G_LET)
    mark_reachable(p, p->let[n->k].root, seen);
  mark_reachable(p, n->kid[0], seen);
  mark_reachable(p, n->kid[1], seen);
}

// Every node reachable from any statement (dead intermediates included).
static char *all_used(const GProg *p) {
  char *seen = calloc((size_t)p->nnodes + 1, 1);
  if (!seen)
    abort();
  for (int l = 0; l < p->nlets; l++)
    mark_reachable(p, p->let[l].root, seen);
  return seen;
}

static bool dim_declared(const GProg *p, int d) {
  for (int i = 0; i < p->ninputs; i++)
    if (p->in[i].r.sym == d || (p->in[i].type == 2 && p->in[i].c.sym == d))
      return true;
  return false;
}

// Sizes are introduced by declarations: a size that only the expressions
// use gets an input of its own (unused, which is a case worth having too).
static void declare_dims(GProg *p) {
  char *used = all_used(p);
  bool need[GEN_MAX_DIMS] = {0};
  for (int i = 0; i < p->nnodes; i++) {
    if (!used[i])
      continue;
    const GNode *n = N(p, i);
    if (n->r.sym >= 0)
      need[n->r.sym] = true;
    if (n->c.sym >= 0)
      need[n->c.sym] = true;
    if (n->kind == G_SIZE)
      need[n->k] = true;
  }
  free(used);
  for (int d = 0; d < p->ndims; d++)
    if (need[d] && !dim_declared(p, d) && p->ninputs < GEN_MAX_INPUTS) {
      GInput *in = &p->in[p->ninputs];
      memset(in, 0, sizeof *in);
      for (int k = 0;; k++) {
        snprintf(in->name, GEN_NAME, k ? "pad_%s%d" : "pad_%s", p->dimname[d], k);
        if (!name_taken(p, in->name))
          break;
      }
      in->r = (GDim){d, 0};
      in->c = lit(1);
      in->type = 1;
      p->ninputs++;
    }
}

static void compute_intervals(GProg *p, int i, char *done) {
  if (i < 0 || done[i])
    return;
  done[i] = 1;
  GNode *n = &p->node[i];
  if (n->kind == G_LET)
    compute_intervals(p, p->let[n->k].root, done);
  compute_intervals(p, n->kid[0], done);
  compute_intervals(p, n->kid[1], done);
  iv_node(p, i);
}

static bool check_node(const GProg *p, int i, const char **why) {
  const GNode *n = N(p, i), *a = n->kid[0] >= 0 ? N(p, n->kid[0]) : NULL, *b = n->kid[1] >= 0 ? N(p, n->kid[1]) : NULL;
  double e;
#define FAIL(msg) return (*why = (msg)), false
  if (!(mag(n) <= MAG_LIMIT))
    FAIL("a value may grow too large");
  switch (n->kind) {
  case G_FUNC:
    if ((n->k == GF_LOG || n->k == GF_SQRT) && !(a->lo >= POS_MIN))
      FAIL("log or sqrt of something not bounded away from 0");
    if ((n->k == GF_ASIN || n->k == GF_ACOS) && !(mag(a) <= UNIT_MAX))
      FAIL("arcsin or arccos of something not within 0.9");
    if (n->k == GF_TAN && !(mag(a) <= 1.2))
      FAIL("tan of something too large");
    if ((n->k == GF_SIN || n->k == GF_COS) && !(mag(a) <= 2 * SQUASH_AT))
      FAIL("sin or cos of something so large that it oscillates faster than finite differences see");
    if (n->k == GF_EXP && !(a->hi <= 3))
      FAIL("exp of something too large");
    break;
  case G_DIV:
  case G_EDIV:
    if (!(iv_mini(b->lo, b->hi) >= POS_MIN))
      FAIL("division by something not bounded away from 0");
    break;
  case G_POW:
  case G_EPOW:
    if (const_int(b, &e) && e >= 1 && e <= 3)
      break;
    if (!(a->lo >= POS_MIN))
      FAIL("a power of something not positive");
    if (!(b->lo >= -5 && b->hi <= 5))
      FAIL("an exponent too large");
    break;
  case G_NORM:
    if (!(n->lo >= POS_MIN))
      FAIL("a norm that may be 0");
    break;
  case G_INV:
  case G_DET:
  case G_LOGDET:
    if (!(wc_margin(p, n->kid[0]) > 0))
      FAIL("inv, det or logdet of a matrix not known to be well conditioned");
    break;
  case G_MPOW:
    if (!deq(a->r, a->c) || is_scalar(a->r, a->c))
      FAIL("a matrix power of a matrix not square");
    break;
  default: break;
  }
#undef FAIL
  return true;
}

bool gen_valid(GProg *p, const char **why) {
  const char *dummy;
  why = why ? why : &dummy;
  *why = "";
  char *done = calloc((size_t)p->nnodes + 1, 1), *used = all_used(p);
  if (!done)
    abort();
  for (int l = 0; l < p->nlets; l++)
    compute_intervals(p, p->let[l].root, done);
  bool ok = p->nlets > 0;
  for (int i = 0; ok && i < p->nnodes; i++)
    if (used[i])
      ok = check_node(p, i, why);
  free(done);
  free(used);
  return ok;
}

int gen_size(const GProg *p) {
  char *seen = all_used(p);
  int n = 0;
  for (int i = 0; i < p->nnodes; i++)
    n += seen[i];
  free(seen);
  n += p->nlets + p->ninputs + p->ndims + !p->plain;
  for (int i = 0; p->use_wrt && i < p->ninputs; i++)
    n += p->in[i].wrt;
  return n;
}

// Is intermediate K unused by ROOT and by the intermediates ROOT uses?
static bool let_dead(const GProg *p, int k, int root) {
  char *seen = calloc((size_t)p->nnodes + 1, 1);
  if (!seen)
    abort();
  mark_reachable(p, root, seen);
  bool dead = true;
  for (int i = 0; i < p->nnodes && dead; i++)
    dead = !(seen[i] && N(p, i)->kind == G_LET && N(p, i)->k == k);
  free(seen);
  return dead;
}

static void one_program(GProg *p, uint64_t seed, uint64_t attempt) {
  Gen g = {.p = p, .rng = {gen_hash(seed, "program") + attempt * 0x51ED27u}};
  memset(p, 0, sizeof *p);
  p->seed = seed;
  g.hostile = GEN_HOSTILE_NAMES && chance(&g, 0.08);
  p->style = (unsigned)next(&g);
  int nd = (int[]){0, 1, 1, 2, 2, 2, 3, 3, 4}[pick(&g, 9)];
  for (int d = 0; d < nd; d++) {
    if (g.hostile && chance(&g, 0.5))
      fresh(&g, p->dimname[d], hostile_dims, COUNT(hostile_dims), "s");
    else
      fresh(&g, p->dimname[d], dim_names, COUNT(dim_names), "s");
    p->ndims++;  // after naming, so the name is checked against the others
  }
  int ninter = (int[]){0, 0, 0, 1, 1, 1, 2, 2, 3, 4}[pick(&g, 10)];
  for (int l = 0; l <= ninter; l++) {
    bool out = l == ninter;
    GDim r, c;
    if (out && p->nlets && chance(&g, 0.4)) {  // the shape of an intermediate, to use it whole
      int k = pick(&g, p->nlets);
      r = let_r(p, k);
      c = let_c(p, k);
    } else if (chance(&g, out ? 0.55 : 0.3)) {
      r = c = lit(1);
    } else {
      r = rand_dim(&g);
      c = rand_dim(&g);
    }
    int depth = out ? 2 + pick(&g, 5) : 1 + pick(&g, 3);
    g.budget = out ? 6 + pick(&g, 30) : 2 + pick(&g, 12);
    int root = gen_any(&g, r, c, depth);
    // Most intermediates would be dead: the output uses some more.
    for (int k = 0; out && k < p->nlets; k++) {
      int x;
      if (let_dead(p, k, root) && chance(&g, 0.6) && (x = adapt_let(&g, k, r, c)) >= 0)
        root = squash(&g, mk_bin(p, (GKind[]){G_ADD, G_SUB, G_EMUL}[pick(&g, 3)], root, x));
    }
    GLet *let = &p->let[p->nlets];
    if (out)
      fresh(&g, let->name, out_names, COUNT(out_names), "y");
    else
      fresh(&g, let->name, let_names, COUNT(let_names), "t");
    let->root = root;
    p->nlets++;
  }
  declare_dims(p);
  p->use_wrt = p->ninputs > 0 && chance(&g, 0.4);
  if (p->use_wrt) {
    int any = 0;
    for (int i = 0; i < p->ninputs; i++)
      any += p->in[i].wrt = chance(&g, 0.6);
    if (!any)
      p->in[pick(&g, p->ninputs)].wrt = true;
  }
  // Printing variants, chosen per node.
  for (int i = 0; i < p->nnodes; i++)
    p->node[i].style = (unsigned)next(&g);
}

void gen_program(GProg *p, uint64_t seed) {
  for (uint64_t attempt = 0;; attempt++) {
    one_program(p, seed, attempt);
    if (gen_valid(p, NULL) || attempt == 50)
      return;
    gen_free(p);
  }
}

void gen_free(GProg *p) {
  free(p->node);
  p->node = NULL;
  p->nnodes = p->cap = 0;
}

void gen_copy(GProg *dst, const GProg *src) {
  *dst = *src;
  dst->cap = src->nnodes > 0 ? src->nnodes : 1;
  dst->node = malloc(sizeof *dst->node * (size_t)dst->cap);
  if (!dst->node)
    abort();
  memcpy(dst->node, src->node, sizeof *dst->node * (size_t)src->nnodes);
}

/* ---- printing ----------------------------------------------------------- */


/* Style bits of a node. */
enum {
  ST_PAREN = 1,      /* redundant parentheses (1 in 8: with ST_PAREN2) */
  ST_PAREN2 = 2,
  ST_PAREN3 = 4,
  ST_TIGHT = 8,      /* no spaces around the operator */
  ST_NUMFORM = 16,   /* another spelling of a number: 5e-1, .5, 2.0 */
  ST_NUMFORM2 = 32,
  ST_SHORT = 64,     /* ones(n) for ones(n, 1) */
  ST_CONT = 128,     /* a line continuation after the operator (rarely) */
  ST_CONT2 = 256,
  ST_CONT3 = 512,
};
/* Style bits of a program. */
enum {
  PS_SEMI = 1,       /* declarations separated by ';' on one line */
  PS_SEMI2 = 2,
  PS_COMMENT = 4,    /* comments and blank lines */
  PS_WRTSPLIT = 8,   /* two wrt lines */
  PS_WRTLATE = 16,   /* wrt after the first assignment */
  PS_TIGHT = 32,     /* matrix(n,m) */
};

enum { PR_ADD = 1, PR_MUL, PR_UNARY, PR_POW, PR_POST, PR_ATOM };

static int prec(const GNode *n) {
  switch (n->kind) {
  case G_ADD: case G_SUB: return PR_ADD;
  case G_MUL: case G_DIV: case G_EMUL: case G_EDIV: return PR_MUL;
  case G_NEG: return PR_UNARY;
  case G_POW: case G_EPOW: case G_MPOW: case G_NORMSQ: return PR_POW;
  case G_TRANS: return PR_POST;
  default: return PR_ATOM;
  }
}

static void put_dim(const GProg *p, Out *o, GDim d) {
  if (d.sym >= 0)
    put(o, "%s", p->dimname[d.sym]);
  else
    put(o, "%ld", d.n);
}

static void put_num(Out *o, double v, unsigned style, bool plain) {
  int form = plain ? 0 : (style & ST_NUMFORM ? 1 : 0) + (style & ST_NUMFORM2 ? 2 : 0);
  char buf[64];
  snprintf(buf, sizeof buf, "%.15g", v);
  if (form == 1 && v == floor(v))
    put(o, "%s.0", buf);  // 2.0
  else if (form == 2 && v > 0 && v < 1)
    put(o, "%s", buf + 1);  // .5
  else if (form == 3)
    put(o, "%sE0", buf);  // 2E0, 0.5E0
  else
    put(o, "%s", buf);
}

static const char *const func_name[GF_COUNT] = {
    "exp", "log", "sqrt", "sin", "cos", "tan", "tanh", "sigmoid", "relu", "softplus", "abs",
    "sign", "arcsin", "arccos", "arctan"};

static void gprint(const GProg *p, Out *o, int i, int min);

static const char *comma(const GProg *p, const GNode *n) {
  return !p->plain && (n->style & ST_TIGHT) ? "," : ", ";
}

static void print_call(const GProg *p, Out *o, const char *f, const GNode *n, int k) {
  put(o, "%s(", f);
  gprint(p, o, n->kid[0], 0);
  if (n->kid[1] >= 0) {
    put(o, "%s", comma(p, n));
    gprint(p, o, n->kid[1], 0);
  }
  if (k)
    put(o, "%s%d", comma(p, n), k);
  put(o, ")");
}

static void print_bin(const GProg *p, Out *o, const GNode *n, const char *op, int lmin, int rmin) {
  bool tight = !p->plain && (n->style & ST_TIGHT);
  unsigned cbits = ST_CONT | ST_CONT2 | ST_CONT3 | ST_SHORT | ST_NUMFORM;  // 1 in 32
  bool cont = !p->plain && (n->style & cbits) == cbits;
  gprint(p, o, n->kid[0], lmin);
  put(o, tight ? "%s" : " %s ", op);
  if (cont)
    put(o, "...\n    ");
  gprint(p, o, n->kid[1], rmin);
}

static void gprint(const GProg *p, Out *o, int i, int min) {
  const GNode *n = N(p, i);
  int pr = prec(n);
  bool paren = pr < min || (!p->plain && pr < PR_ATOM && (n->style & (ST_PAREN | ST_PAREN2 | ST_PAREN3)) == (ST_PAREN | ST_PAREN2 | ST_PAREN3));
  if (paren)
    put(o, "(");
  switch (n->kind) {
  case G_NUM: put_num(o, n->num, n->style, p->plain); break;
  case G_VAR: put(o, "%s", p->in[n->k].name); break;
  case G_LET: put(o, "%s", p->let[n->k].name); break;
  case G_SIZE: put(o, "%s", p->dimname[n->k]); break;
  case G_ZEROS:
  case G_ONES:
    put(o, "%s(", n->kind == G_ZEROS ? "zeros" : "ones");
    put_dim(p, o, n->r);
    if (!is1(n->c) || p->plain || !(n->style & ST_SHORT)) {
      put(o, "%s", comma(p, n));
      put_dim(p, o, n->c);
    }
    put(o, ")");
    break;
  case G_EYE:
    put(o, "eye(");
    put_dim(p, o, n->r);
    put(o, ")");
    break;
  case G_NEG:
    put(o, "-");
    gprint(p, o, n->kid[0], PR_UNARY);
    break;
  case G_TRANS:
    gprint(p, o, n->kid[0], PR_POST);
    put(o, "'");
    break;
  case G_FUNC: print_call(p, o, func_name[n->k], n, 0); break;
  case G_SUM: print_call(p, o, "sum", n, n->k); break;
  case G_MEAN: print_call(p, o, "mean", n, n->k); break;
  case G_LSE: print_call(p, o, "logsumexp", n, n->k); break;
  case G_SOFTMAX: print_call(p, o, "softmax", n, n->k); break;
  case G_NORM:
  case G_NORMSQ:
  case G_NORM1: {
    static const char *const pre[3][5] = {{"||", "||", "norm2(", "||"},
                                          {"||", "||", "norm2(", "||", "||"},
                                          {"||", "norm1("}};
    static const char *const post[3][5] = {{"||", "||_F", ")", "||_2"},
                                           {"||^2", "||_F^2", ")^2", "||.^2", "||_2^2"},
                                           {"||_1", ")"}};
    int w = n->kind == G_NORM ? 0 : n->kind == G_NORMSQ ? 1 : 2, k = p->plain ? 0 : n->k;
    put(o, "%s", pre[w][k]);
    gprint(p, o, n->kid[0], 0);
    put(o, "%s", post[w][k]);
    break;
  }
  case G_TR: print_call(p, o, "tr", n, 0); break;
  case G_DET: print_call(p, o, "det", n, 0); break;
  case G_LOGDET: print_call(p, o, "logdet", n, 0); break;
  case G_INV: print_call(p, o, "inv", n, 0); break;
  case G_DIAGM:
  case G_DIAGV: print_call(p, o, "diag", n, 0); break;
  case G_MPOW:
    gprint(p, o, n->kid[0], PR_POST);
    put(o, "^%d", n->k);
    break;
  case G_ADD: print_bin(p, o, n, "+", PR_ADD, PR_MUL); break;
  case G_SUB: print_bin(p, o, n, "-", PR_ADD, PR_MUL); break;
  case G_MUL: print_bin(p, o, n, "*", PR_MUL, PR_UNARY); break;
  case G_DIV: print_bin(p, o, n, "/", PR_MUL, PR_UNARY); break;
  case G_EMUL: print_bin(p, o, n, ".*", PR_MUL, PR_UNARY); break;
  case G_EDIV: print_bin(p, o, n, "./", PR_MUL, PR_UNARY); break;
  case G_POW: print_bin(p, o, n, "^", PR_POST, PR_UNARY); break;
  case G_EPOW: print_bin(p, o, n, ".^", PR_POST, PR_UNARY); break;
  case G_DOT: print_call(p, o, "dot", n, 0); break;
  case G_KINDS: break;
  }
  if (paren)
    put(o, ")");
}

static void print_decl(const GProg *p, Out *o, const GInput *in) {
  bool tight = !p->plain && (p->style & PS_TIGHT);
  put(o, tight ? "%s:" : "%s : ", in->name);
  if (in->type == 0) {
    put(o, "scalar");
  } else if (in->type == 1) {
    put(o, "vector(");
    put_dim(p, o, in->r);
    put(o, ")");
  } else {
    put(o, "matrix(");
    put_dim(p, o, in->r);
    put(o, tight ? "," : ", ");
    put_dim(p, o, in->c);
    put(o, ")");
  }
}

static void print_wrt(const GProg *p, Out *o, int part, int parts) {
  int k = 0, n = 0;
  for (int i = 0; i < p->ninputs; i++)
    n += p->in[i].wrt;
  int from = part * n / parts, to = (part + 1) * n / parts;
  if (from == to)
    return;
  put(o, "wrt ");
  for (int i = 0; i < p->ninputs; i++)
    if (p->in[i].wrt) {
      if (k >= from && k < to)
        put(o, "%s%s", k > from ? ", " : "", p->in[i].name);
      k++;
    }
  put(o, "\n");
}

char *gen_source(const GProg *p) {
  Out o = {0};
  bool fancy = !p->plain;
  put(&o, "%s", "");
  if (fancy && (p->style & PS_COMMENT))
    put(&o, "# random program %llu\n\n", (unsigned long long)p->seed);
  bool semi = fancy && (p->style & (PS_SEMI | PS_SEMI2)) == (PS_SEMI | PS_SEMI2);
  for (int i = 0; i < p->ninputs; i++) {
    print_decl(p, &o, &p->in[i]);
    put(&o, semi && i + 1 < p->ninputs ? "; " : "\n");
  }
  int parts = fancy && (p->style & PS_WRTSPLIT) ? 2 : 1;
  bool late = fancy && (p->style & PS_WRTLATE) && p->nlets > 1;
  if (p->use_wrt && !late)
    for (int k = 0; k < parts; k++)
      print_wrt(p, &o, k, parts);
  for (int l = 0; l < p->nlets; l++) {
    put(&o, "%s = ", p->let[l].name);
    gprint(p, &o, p->let[l].root, 0);
    if (fancy && (p->style & PS_COMMENT) && l + 1 == p->nlets)
      put(&o, "  # the output");
    put(&o, "\n");
    if (p->use_wrt && late && l == 0)
      for (int k = 0; k < parts; k++)
        print_wrt(p, &o, k, parts);
  }
  return o.s;
}

/* ---- the reference interpreter ------------------------------------------ */

typedef struct Mat {
  long r, c;
  double *v;
} Mat;

static Mat mat(long r, long c) {
  Mat m = {r, c, calloc((size_t)(r * c > 0 ? r * c : 1), sizeof(double))};
  if (!m.v)
    abort();
  return m;
}

static double *at(Mat *m, long i, long j) { return &m->v[i * m->c + j]; }
static double get(const Mat *m, long i, long j) { return m->v[i * m->c + j]; }

// LU with partial pivoting of the n x n matrix A, in place; the
// determinant, and 0 if a pivot is exactly 0.
static double lu(long n, double *a, long *perm) {
  double det = 1;
  for (long i = 0; i < n; i++)
    perm[i] = i;
  for (long k = 0; k < n; k++) {
    long piv = k;
    for (long i = k + 1; i < n; i++)
      if (fabs(a[i * n + k]) > fabs(a[piv * n + k]))
        piv = i;
    if (a[piv * n + k] == 0)
      return 0;
    if (piv != k) {
      for (long j = 0; j < n; j++) {
        double t = a[k * n + j];
        a[k * n + j] = a[piv * n + j];
        a[piv * n + j] = t;
      }
      long t = perm[k];
      perm[k] = perm[piv];
      perm[piv] = t;
      det = -det;
    }
    det *= a[k * n + k];
    for (long i = k + 1; i < n; i++) {
      double f = a[i * n + k] /= a[k * n + k];
      for (long j = k + 1; j < n; j++)
        a[i * n + j] -= f * a[k * n + j];
    }
  }
  return det;
}

typedef struct Eval {
  const GProg *p;
  const long *dims;
  const double *const *inputs;
  Mat *memo;
  char *have;
  bool singular;
} Eval;

static Mat ev(Eval *e, int i);

static double func(int f, double x) {
  switch (f) {
  case GF_EXP: return exp(x);
  case GF_LOG: return log(x);
  case GF_SQRT: return sqrt(x);
  case GF_SIN: return sin(x);
  case GF_COS: return cos(x);
  case GF_TAN: return tan(x);
  case GF_TANH: return tanh(x);
  case GF_SIGMOID: return sigmoid(x);
  case GF_RELU: return x > 0 ? x : 0;
  case GF_SOFTPLUS: return softplus(x);
  case GF_ABS: return fabs(x);
  case GF_SIGN: return x > 0 ? 1 : x < 0 ? -1 : x == 0 ? 0 : x;
  case GF_ASIN: return asin(x);
  case GF_ACOS: return acos(x);
  case GF_ATAN: return atan(x);
  }
  return NAN;
}

// An elementwise operation with broadcasting by the runtime sizes: a
// 1-sized side repeats.
static Mat bcast(GKind kind, const Mat *a, const Mat *b) {
  long r = a->r > b->r ? a->r : b->r, c = a->c > b->c ? a->c : b->c;
  Mat m = mat(r, c);
  for (long i = 0; i < r; i++)
    for (long j = 0; j < c; j++) {
      double x = get(a, a->r == 1 ? 0 : i, a->c == 1 ? 0 : j);
      double y = get(b, b->r == 1 ? 0 : i, b->c == 1 ? 0 : j);
      double z = kind == G_ADD ? x + y : kind == G_SUB ? x - y : kind == G_EMUL ? x * y
               : kind == G_EDIV ? x / y : pow(x, y);
      *at(&m, i, j) = z;
    }
  return m;
}

static Mat matmul(const Mat *a, const Mat *b) {
  Mat m = mat(a->r, b->c);
  for (long i = 0; i < a->r; i++)
    for (long j = 0; j < b->c; j++) {
      double s = 0;
      for (long k = 0; k < a->c; k++)
        s += get(a, i, k) * get(b, k, j);
      *at(&m, i, j) = s;
    }
  return m;
}

// Sum (or logsumexp, or softmax) over everything (k = 0), down the
// columns (k = 1) or along the rows (k = 2).
static Mat reduce(GKind kind, int k, const Mat *a) {
  long R = k == 1 ? 1 : k == 2 ? a->r : 1, C = k == 1 ? a->c : k == 2 ? 1 : 1;
  long outer = k == 0 ? 1 : k == 1 ? a->c : a->r, inner = k == 0 ? a->r * a->c : k == 1 ? a->r : a->c;
  Mat m = kind == G_SOFTMAX ? mat(a->r, a->c) : mat(R, C);
  for (long o = 0; o < outer; o++) {
    // element t of group o
#define EL(t) (k == 0 ? a->v[t] : k == 1 ? get(a, t, o) : get(a, o, t))
    double mx = -INFINITY, s = 0;
    for (long t = 0; t < inner; t++)
      mx = fmax(mx, EL(t));
    for (long t = 0; t < inner; t++)
      s += kind == G_SUM || kind == G_MEAN ? EL(t) : exp(EL(t) - mx);
    if (kind == G_SOFTMAX) {
      for (long t = 0; t < inner; t++) {
        double v = exp(EL(t) - mx) / s;
        if (k == 0)
          m.v[t] = v;
        else if (k == 1)
          *at(&m, t, o) = v;
        else
          *at(&m, o, t) = v;
      }
      continue;
    }
#undef EL
    double v = kind == G_SUM ? s : kind == G_MEAN ? s / (double)inner : mx + log(s);
    m.v[o] = v;
  }
  return m;
}

static Mat ev_node(Eval *e, int i) {
  const GProg *p = e->p;
  const GNode *n = N(p, i);
  long r = dval(n->r, e->dims), c = dval(n->c, e->dims);
  Mat a = {0}, b = {0}, m;
  if (n->kid[0] >= 0)
    a = ev(e, n->kid[0]);
  if (n->kid[1] >= 0)
    b = ev(e, n->kid[1]);
  switch (n->kind) {
  case G_NUM: m = mat(1, 1); m.v[0] = n->num; return m;
  case G_VAR:
    m = mat(r, c);
    memcpy(m.v, e->inputs[n->k], sizeof(double) * (size_t)(r * c));
    return m;
  case G_LET: {
    Mat x = ev(e, p->let[n->k].root);
    m = mat(x.r, x.c);
    memcpy(m.v, x.v, sizeof(double) * (size_t)(x.r * x.c));
    return m;
  }
  case G_SIZE: m = mat(1, 1); m.v[0] = (double)e->dims[n->k]; return m;
  case G_ZEROS:
  case G_ONES:
  case G_EYE:
    m = mat(r, c);
    for (long x = 0; x < r; x++)
      for (long y = 0; y < c; y++)
        *at(&m, x, y) = n->kind == G_ONES || (n->kind == G_EYE && x == y);
    return m;
  case G_NEG:
  case G_FUNC:
    m = mat(a.r, a.c);
    for (long t = 0; t < a.r * a.c; t++)
      m.v[t] = n->kind == G_NEG ? -a.v[t] : func(n->k, a.v[t]);
    return m;
  case G_TRANS:
    m = mat(a.c, a.r);
    for (long x = 0; x < a.r; x++)
      for (long y = 0; y < a.c; y++)
        *at(&m, y, x) = get(&a, x, y);
    return m;
  case G_SUM:
  case G_MEAN:
  case G_LSE:
  case G_SOFTMAX: return reduce(n->kind, n->k, &a);
  case G_NORM:
  case G_NORMSQ:
  case G_NORM1: {
    double s = 0;
    for (long t = 0; t < a.r * a.c; t++)
      s += n->kind == G_NORM1 ? fabs(a.v[t]) : a.v[t] * a.v[t];
    m = mat(1, 1);
    m.v[0] = n->kind == G_NORM ? sqrt(s) : s;
    return m;
  }
  case G_TR:
    m = mat(1, 1);
    for (long t = 0; t < a.r; t++)
      m.v[0] += get(&a, t, t);
    return m;
  case G_DET:
  case G_LOGDET:
  case G_INV: {
    long k = a.r, *perm = malloc(sizeof(long) * (size_t)k);
    double *lu_ = malloc(sizeof(double) * (size_t)(k * k));
    if (!perm || !lu_)
      abort();
    memcpy(lu_, a.v, sizeof(double) * (size_t)(k * k));
    double det = lu(k, lu_, perm);
    if (det == 0)
      e->singular = true;
    if (n->kind == G_INV) {
      m = mat(k, k);
      for (long col = 0; col < k && det != 0; col++) {
        // Solve A x = e_col: P A = L U.
        double *x = &m.v[0];
        double *y = malloc(sizeof(double) * (size_t)k);
        if (!y)
          abort();
        for (long i2 = 0; i2 < k; i2++) {
          double s = perm[i2] == col;
          for (long j = 0; j < i2; j++)
            s -= lu_[i2 * k + j] * y[j];
          y[i2] = s;
        }
        for (long i2 = k - 1; i2 >= 0; i2--) {
          double s = y[i2];
          for (long j = i2 + 1; j < k; j++)
            s -= lu_[i2 * k + j] * x[j * k + col];
          x[i2 * k + col] = s / lu_[i2 * k + i2];
        }
        free(y);
      }
    } else {
      m = mat(1, 1);
      if (n->kind == G_DET) {
        m.v[0] = det;
      } else {
        double s = 0;
        for (long t = 0; t < k; t++)
          s += log(fabs(lu_[t * k + t]));
        m.v[0] = det == 0 ? -INFINITY : s;
      }
    }
    free(perm);
    free(lu_);
    return m;
  }
  case G_DIAGM:
    if (a.r * a.c == 1 && is_scalar(N(p, n->kid[0])->r, N(p, n->kid[0])->c)) {
      m = mat(1, 1);
      m.v[0] = a.v[0];
      return m;
    }
    m = mat(a.r, a.r);
    for (long t = 0; t < a.r; t++)
      *at(&m, t, t) = a.v[t];
    return m;
  case G_DIAGV:
    m = mat(a.r, 1);
    for (long t = 0; t < a.r; t++)
      m.v[t] = get(&a, t, t);
    return m;
  case G_MPOW: {
    m = mat(a.r, a.r);
    for (long t = 0; t < a.r; t++)
      *at(&m, t, t) = 1;
    for (int k = 0; k < n->k; k++) {
      Mat t2 = matmul(&m, &a);
      free(m.v);
      m = t2;
    }
    return m;
  }
  case G_ADD:
  case G_SUB:
  case G_EMUL:
  case G_EDIV:
  case G_EPOW: return bcast(n->kind, &a, &b);
  case G_MUL:
    if (a.c == b.r)
      return matmul(&a, &b);
    return bcast(G_EMUL, &a, &b);  // scaling: one side is 1x1
  case G_DIV:
  case G_POW: {
    Mat s = b;
    m = mat(a.r, a.c);
    for (long t = 0; t < a.r * a.c; t++)
      m.v[t] = n->kind == G_DIV ? a.v[t] / s.v[0] : pow(a.v[t], s.v[0]);
    return m;
  }
  case G_DOT:
    m = mat(1, 1);
    for (long t = 0; t < a.r * a.c; t++)
      m.v[0] += a.v[t] * b.v[t];
    return m;
  case G_KINDS: break;
  }
  return mat(1, 1);
}

static Mat ev(Eval *e, int i) {
  if (!e->have[i]) {
    e->memo[i] = ev_node(e, i);
    e->have[i] = 1;
  }
  return e->memo[i];
}

int gen_eval(const GProg *p, const long *dims, const double *const *inputs, double **out,
             long *rows, long *cols) {
  Eval e = {.p = p, .dims = dims, .inputs = inputs};
  e.memo = calloc((size_t)p->nnodes + 1, sizeof *e.memo);
  e.have = calloc((size_t)p->nnodes + 1, 1);
  if (!e.memo || !e.have)
    abort();
  Mat m = ev(&e, p->let[p->nlets - 1].root);
  *rows = m.r;
  *cols = m.c;
  *out = malloc(sizeof(double) * (size_t)(m.r * m.c));
  if (!*out)
    abort();
  memcpy(*out, m.v, sizeof(double) * (size_t)(m.r * m.c));
  for (int i = 0; i < p->nnodes; i++)
    if (e.have[i])
      free(e.memo[i].v);
  free(e.memo);
  free(e.have);
  return e.singular ? -1 : 0;
}

/* ---- shrinking ---------------------------------------------------------- */

typedef struct Shrink {
  GProg *p;
  bool (*fails)(const GProg *, void *);
  void *arg;
  int tries, max;
  int size;          /* gen_size of *p */
} Shrink;

// Try Q (already modified from *S->p): keep it if it is valid, smaller, and
// still fails. Frees Q otherwise.
static bool try_candidate(Shrink *s, GProg *q) {
  declare_dims(q);
  if (s->tries >= s->max || !gen_valid(q, NULL) || gen_size(q) >= s->size) {
    gen_free(q);
    return false;
  }
  s->tries++;
  if (!s->fails(q, s->arg)) {
    gen_free(q);
    return false;
  }
  gen_free(s->p);
  *s->p = *q;
  s->size = gen_size(s->p);
  return true;
}

static bool let_referenced(const GProg *p, int l) {
  char *used = all_used(p);
  bool ref = false;
  for (int i = 0; i < p->nnodes && !ref; i++)
    ref = used[i] && N(p, i)->kind == G_LET && N(p, i)->k == l;
  free(used);
  return ref;
}

// Remove intermediate L (nothing may refer to it).
static void drop_let(GProg *q, int l) {
  for (int i = 0; i < q->nnodes; i++)
    if (q->node[i].kind == G_LET && q->node[i].k > l)
      q->node[i].k--;
  memmove(&q->let[l], &q->let[l + 1], sizeof q->let[0] * (size_t)(q->nlets - l - 1));
  q->nlets--;
}

static bool input_used(const GProg *p, int v) {
  char *used = all_used(p);
  bool u = false;
  for (int i = 0; i < p->nnodes && !u; i++)
    u = used[i] && N(p, i)->kind == G_VAR && N(p, i)->k == v;
  free(used);
  return u;
}

static void drop_input(GProg *q, int v) {
  for (int i = 0; i < q->nnodes; i++)
    if (q->node[i].kind == G_VAR && q->node[i].k > v)
      q->node[i].k--;
  memmove(&q->in[v], &q->in[v + 1], sizeof q->in[0] * (size_t)(q->ninputs - v - 1));
  q->ninputs--;
}

// Replace symbolic size D by the literal V everywhere, and forget it.
static void fix_dim(GProg *q, int d, long v) {
  GDim L = lit(v);
#define SUBST(x) ((x).sym == d ? L : (x).sym > d ? (GDim){(x).sym - 1, 0} : (x))
  for (int i = 0; i < q->nnodes; i++) {
    GNode *n = &q->node[i];
    if (n->kind == G_SIZE && n->k == d) {
      n->kind = G_NUM;
      n->num = (double)v;
    } else if (n->kind == G_SIZE && n->k > d) {
      n->k--;
    }
    n->r = SUBST(n->r);
    n->c = SUBST(n->c);
  }
  for (int i = 0; i < q->ninputs; i++) {
    q->in[i].r = SUBST(q->in[i].r);
    q->in[i].c = SUBST(q->in[i].c);
    if (is1(q->in[i].r) && is1(q->in[i].c) && q->in[i].type == 1)
      q->in[i].type = 0;
  }
#undef SUBST
  memmove(q->dimname[d], q->dimname[d + 1], sizeof q->dimname[0] * (size_t)(q->ndims - d - 1));
  q->ndims--;
}

// The nodes reachable from the statements, parents before children.
static int order(const GProg *p, int *out) {
  char *seen = calloc((size_t)p->nnodes + 1, 1);
  int n = 0;
  if (!seen)
    abort();
  for (int l = p->nlets - 1; l >= 0; l--) {
    int head = n;
    if (!seen[p->let[l].root])
      seen[p->let[l].root] = 1, out[n++] = p->let[l].root;
    for (; head < n; head++) {
      const GNode *x = N(p, out[head]);
      for (int k = 0; k < 2; k++)
        if (x->kid[k] >= 0 && !seen[x->kid[k]])
          seen[x->kid[k]] = 1, out[n++] = x->kid[k];
    }
  }
  free(seen);
  return n;
}

static int subtree_size(const GProg *p, int i) {
  const GNode *n = N(p, i);
  int s = 1;
  for (int k = 0; k < 2; k++)
    if (n->kid[k] >= 0)
      s += subtree_size(p, n->kid[k]);
  return s > 100000 ? 100000 : s;
}

// Collect node I's descendants into OUT (without I).
static void descendants(const GProg *p, int i, char *seen, int *out, int *n) {
  const GNode *x = N(p, i);
  for (int k = 0; k < 2; k++) {
    int d = x->kid[k];
    if (d >= 0 && !seen[d]) {
      seen[d] = 1;
      out[(*n)++] = d;
      descendants(p, d, seen, out, n);
    }
  }
}

static const GProg *cmp_prog;
static int by_size(const void *a, const void *b) {
  return subtree_size(cmp_prog, *(const int *)a) - subtree_size(cmp_prog, *(const int *)b);
}

// One pass over the candidates; true when one was taken.
static bool shrink_pass(Shrink *s) {
  GProg *p = s->p, q;
  // Intermediates nothing refers to (not the output).
  for (int l = 0; l + 1 < p->nlets; l++)
    if (!let_referenced(p, l)) {
      gen_copy(&q, p);
      drop_let(&q, l);
      if (try_candidate(s, &q))
        return true;
    }
  // Subtrees: an input, a constant, or one of their own descendants.
  int *ord = malloc(sizeof(int) * (size_t)(p->nnodes + 1)), *desc = malloc(sizeof(int) * (size_t)(p->nnodes + 1));
  char *seen = malloc((size_t)p->nnodes + 1);
  if (!ord || !desc || !seen)
    abort();
  int n = order(p, ord);
  bool taken = false;
  for (int t = 0; t < n && !taken && s->tries < s->max; t++) {
    int i = ord[t];
    const GNode *x = N(p, i);
    GDim r = x->r, c = x->c;
    if (x->kind == G_LET) {  // inline it
      gen_copy(&q, p);
      int l = x->k;
      q.node[i] = q.node[q.let[l].root];
      q.node[i].style = x->style;
      if (!let_referenced(&q, l) && l + 1 < q.nlets)
        drop_let(&q, l);
      if ((taken = try_candidate(s, &q)))
        break;
    }
    if (x->kid[0] < 0 && x->kind != G_LET) {
      // A leaf: an input may become an earlier input of its shape.
      for (int v = 0; x->kind == G_VAR && v < x->k && !taken; v++)
        if (deq(p->in[v].r, r) && deq(p->in[v].c, c)) {
          gen_copy(&q, p);
          q.node[i].k = v;
          taken = try_candidate(s, &q);
        }
      continue;
    }
    // An input of the same shape, existing or new.
    for (int v = 0; v <= p->ninputs && !taken; v++) {
      if (v < p->ninputs && !(deq(p->in[v].r, r) && deq(p->in[v].c, c)))
        continue;
      gen_copy(&q, p);
      if (v == p->ninputs) {
        if (q.ninputs >= GEN_MAX_INPUTS) {
          gen_free(&q);
          break;
        }
        GInput *in = &q.in[q.ninputs];
        memset(in, 0, sizeof *in);
        for (int k = 1;; k++) {
          snprintf(in->name, GEN_NAME, "z%d", k);
          if (!name_taken(&q, in->name))
            break;
        }
        in->r = r;
        in->c = c;
        in->type = is_scalar(r, c) ? 0 : is1(c) ? 1 : 2;
        in->wrt = true;
        q.ninputs++;
      }
      q.node[i] = (GNode){.kind = G_VAR, .kid = {-1, -1}, .k = v, .r = r, .c = c};
      taken = try_candidate(s, &q);
      if (v < p->ninputs)
        break;  // one existing input is enough to try
    }
    // Constants.
    for (int k = 0; k < 4 && !taken; k++) {
      GNode leaf = {.kid = {-1, -1}, .r = r, .c = c};
      if (is_scalar(r, c)) {
        if (k > 1)
          break;
        leaf.kind = G_NUM;
        leaf.num = k == 0 ? 1 : 0.5;
      } else {
        if (k == 1 && !deq(r, c))
          continue;
        if (k > 2)
          break;
        leaf.kind = k == 0 ? G_ONES : k == 1 ? G_EYE : G_ZEROS;
      }
      gen_copy(&q, p);
      q.node[i] = leaf;
      taken = try_candidate(s, &q);
    }
    // Descendants of the same shape (or transposed), smallest first.
    memset(seen, 0, (size_t)p->nnodes + 1);
    int nd = 0;
    descendants(p, i, seen, desc, &nd);
    cmp_prog = p;
    qsort(desc, (size_t)nd, sizeof *desc, by_size);
    for (int k = 0; k < nd && !taken && s->tries < s->max; k++) {
      const GNode *d = N(p, desc[k]);
      if (deq(d->r, r) && deq(d->c, c)) {
        gen_copy(&q, p);
        unsigned style = q.node[i].style;
        q.node[i] = q.node[desc[k]];
        q.node[i].style = style;
        taken = try_candidate(s, &q);
      } else if (deq(d->r, c) && deq(d->c, r)) {
        gen_copy(&q, p);
        q.node[i] = (GNode){.kind = G_TRANS, .kid = {desc[k], -1}, .r = r, .c = c};
        taken = try_candidate(s, &q);
      }
    }
  }
  free(ord);
  free(desc);
  free(seen);
  if (taken)
    return true;
  // Inputs nothing uses, and wrt names.
  for (int v = 0; v < p->ninputs; v++)
    if (!input_used(p, v)) {
      gen_copy(&q, p);
      drop_input(&q, v);
      if (try_candidate(s, &q))
        return true;
    }
  if (p->use_wrt) {
    int nw = 0;
    for (int v = 0; v < p->ninputs; v++)
      nw += p->in[v].wrt;
    for (int v = 0; v < p->ninputs && nw > 1; v++)
      if (p->in[v].wrt) {
        gen_copy(&q, p);
        q.in[v].wrt = false;
        if (try_candidate(s, &q))
          return true;
      }
    if (nw == p->ninputs) {
      gen_copy(&q, p);
      q.use_wrt = false;
      if (try_candidate(s, &q))
        return true;
    }
  }
  // Symbolic sizes to literals.
  static const long lits[] = {2, 3, 1, 4, 5};
  for (int d = 0; d < p->ndims; d++)
    for (int k = 0; k < 5; k++) {
      gen_copy(&q, p);
      fix_dim(&q, d, lits[k]);
      if (try_candidate(s, &q))
        return true;
    }
  if (!p->plain) {
    gen_copy(&q, p);
    q.plain = true;
    if (try_candidate(s, &q))
      return true;
  }
  return false;
}

int gen_shrink(GProg *p, bool (*still_fails)(const GProg *, void *), void *arg, int max_tries) {
  Shrink s = {.p = p, .fails = still_fails, .arg = arg, .max = max_tries, .size = gen_size(p)};
  while (s.tries < s.max && shrink_pass(&s))
    ;
  return s.tries;
}
