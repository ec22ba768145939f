/*
 * simplify.c - rewrite rules that bring a derivative to the form a person
 * writes on paper, applied bottom-up to a fixpoint. Results are memoised by
 * node id, which hash-consing makes exact.
 *
 * Besides local rules (each with its identity beside it), three normal
 * forms do most of the work:
 *   - a product of scalars and elementwise factors is one monomial,
 *     c * s1^p1 * ... .* A1.^q1 ... ./ ... / ..., its factors in the order
 *     they first appear, equal bases merged into one power (x*x*x is x^3,
 *     e/e is 1);
 *   - a sum is a list of terms with numeric coefficients: like terms are
 *     collected, and a factor common to several terms (a coefficient, a
 *     left or right matrix factor, a divisor) is taken out once;
 *   - a transpose is pushed into a sum or product, or pulled out of one,
 *     whichever prints shorter.
 * Every rule is an identity of real arithmetic. In IEEE arithmetic they
 * hold wherever the expression they rewrite is defined (finite): 0*A is 0
 * only for A finite whatever the inputs; e/e is 1, where e/e itself is not
 * defined when e is 0 or infinite. docs/LANGUAGE.md lists them.
 *
 * Time is linear in the size of the DAG: each node is rewritten once (the
 * memo), a normal form looks at a bounded number of nodes below it, and no
 * rule multiplies out a product, so a chain of n steps stays n nodes.
 */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "md.h"

enum {
  REWRITE_BUDGET = 1000000,  /* rewrites in one program, a guard against a cycle of rules */
  MAX_REWRITE_DEPTH = 2000,  /* simp()'s recursion through rewritten nodes, for the stack */
  MAX_TLEN_DEPTH = 100,      /* tlen()'s look into pushed-in transposes: past it, wrapped */
};

typedef struct Simp {
  Ctx *c;
  Node **memo;       /* by node id: the simplified node */
  char *busy;        /* by node id: being simplified (a rewrite that comes
                        back to it stops there, so no cycle of rules loops) */
  char *named;       /* by node id: an intermediate the user named, which
                        prints by its name: rules keep it whole */
  char *primal;      /* by node id: the value computes it (ast_mark) */
  int *tcost;        /* by node id: tlen(), cached; INT_MIN when not yet */
  int cap, nprimal;
  long budget;       /* rewrites left: stopping early is safe, only less simple */
  int depth;         /* of simp()'s recursion, bounded for the stack's sake */
} Simp;

static bool scalar(const Node *n) { return shape_is_scalar(n->shape); }
static bool is_num(const Node *n) { return n->op == OP_NUM; }
static bool is_zero(const Node *n) { return ast_is_num(n, 0) || n->op == OP_ZEROS; }
static Node *mk(Simp *s, Op op, Node *a, Node *b) { return ast_op(s->c, op, a, b); }
static Node *num(Simp *s, double v) { return ast_num(s->c, v); }
static Node *zeros(Simp *s, Shape sh) { return ast_fill(s->c, OP_ZEROS, sh); }
static Node *ones(Simp *s, Shape sh) { return ast_fill(s->c, OP_ONES, sh); }
static bool named(const Simp *s, const Node *n) { return n->id < s->cap && s->named[n->id]; }
// A matrix product proper, not a scaling.
static bool is_matmul(const Node *n) { return n->op == OP_MUL && !scalar(n->a) && !scalar(n->b); }

// Does N have only finite elements, whatever the inputs? Then 0*N is 0.
// An input may hold an infinity or a NaN, and 0*Inf is NaN, so in IEEE
// arithmetic 0*A -> 0 holds only for such A: constants, sizes, and bounded
// functions of them.
static bool finite(const Node *n) {
  switch (n->op) {
  case OP_NUM: return isfinite(n->num);
  case OP_DIM:
  case OP_ZEROS:
  case OP_ONES:
  case OP_EYE: return true;
  case OP_TRANS:
  case OP_SIN:
  case OP_COS:
  case OP_TANH:
  case OP_SIGMOID:
  case OP_SIGN: return finite(n->a);
  default: return false;
  }
}

// Is N a constant that is never zero? Then 0/N is 0. (Sizes are >= 1.)
static bool nonzero_const(const Node *n) {
  return (n->op == OP_NUM && isfinite(n->num) && n->num != 0) || n->op == OP_DIM || n->op == OP_ONES;
}

// Fold only finite results, and no -0.0 (Lua's lcode.c folds neither): NaN
// and infinities stay symbolic so that the emitted code computes them where
// and when the user's inputs say, and 1/-0.0 keeps its sign.
static bool foldable(double v) { return isfinite(v) && !(v == 0 && signbit(v)); }
static Node *fold(Simp *s, Op op, double x, double y) {
  double v;
  switch (op) {
  case OP_ADD: v = x + y; break;
  case OP_SUB: v = x - y; break;
  case OP_MUL:
  case OP_EMUL: v = x * y; break;
  case OP_DIV:
  case OP_EDIV: v = x / y; break;
  case OP_POW:
  case OP_EPOW: v = pow(x, y); break;
  default: return NULL;
  }
  return foldable(v) ? num(s, v) : NULL;
}

/* ---- symmetry ---------------------------------------------------------------
 *
 * What is known symmetric from its structure. Each test visits at most
 * SYM_VISITS nodes, so that a sum of sums costs a bounded time however
 * large the DAG.
 */

enum { SYM_VISITS = 64 };

// Is X' the node Y (or Y' the node X)?
static bool transposes(const Node *x, const Node *y) {
  return (y->op == OP_TRANS && y->a == x) || (x->op == OP_TRANS && x->a == y);
}

static bool sym(const Ctx *c, const Node *n, int *visits);

// The factors of the matrix product N, however it is grouped, into F (at
// most MAXCHAIN): false if there are more. A grouping nests no deeper than
// it has factors, which bounds the recursion.
enum { MAXCHAIN = 16 };
static bool chain_factors(const Node *n, const Node **f, int *k, int depth) {
  if (depth > MAXCHAIN)
    return false;
  if (n->op == OP_MUL && !shape_is_scalar(n->a->shape) && !shape_is_scalar(n->b->shape))
    return chain_factors(n->a, f, k, depth + 1) && chain_factors(n->b, f, k, depth + 1);
  if (*k == MAXCHAIN)
    return false;
  f[(*k)++] = n;
  return true;
}

// A product F1*...*Fk is symmetric when it reads the same transposed: Fi'
// is F(k+1-i), and the middle factor, if any, is symmetric:
// (A*A')' = A*A', (P*S*P')' = P*S'*P' = P*S*P', (S*T*S)' = S*T*S.
static bool sym_chain(const Ctx *c, const Node *n, int *visits) {
  const Node *f[MAXCHAIN];
  int k = 0;
  if (!chain_factors(n, f, &k, 0))
    return false;
  for (int i = 0, j = k - 1; i <= j; i++, j--)
    if (!(i < j && transposes(f[i], f[j])) && !(f[i] == f[j] && sym(c, f[i], visits)))
      return false;
  return true;
}

static bool sym(const Ctx *c, const Node *n, int *visits) {
  if (shape_is_scalar(n->shape))
    return true;                                    /* s' = s */
  if (!shape_is_square(n->shape) || --*visits < 0)
    return false;
  const Node *a = n->a, *b = n->b;
  switch (n->op) {
  case OP_VAR: return c->vars[n->k].symmetric;      /* S : symmetric(n) */
  case OP_EYE:
  case OP_ZEROS:
  case OP_ONES:
  case OP_DIAGM: return true;
  case OP_TRANS:
  case OP_INV: return sym(c, a, visits);            /* inv(S)' = inv(S') = inv(S) */
  case OP_DIV: return sym(c, a, visits);            /* (S/t)' = S/t */
  case OP_ADD:
  case OP_EMUL:
  case OP_SUB:
  case OP_EDIV:
  case OP_EPOW: return sym(c, a, visits) && sym(c, b, visits); /* elementwise, S and T or s */
  case OP_MUL:
    if (shape_is_scalar(a->shape) || shape_is_scalar(b->shape))
      return sym(c, a, visits) && sym(c, b, visits); /* (s*S)' = s*S */
    return sym_chain(c, n, visits);
  default:                                          /* f(S)' = f(S'), elementwise */
    return op_class[n->op] == SC_MAP && sym(c, a, visits);
  }
}

bool simp_symmetric(const Ctx *c, const Node *n) {
  int visits = SYM_VISITS;
  return sym(c, n, &visits);
}

static bool pd(const Ctx *c, const Node *n, int *visits) {
  if (--*visits < 0)
    return false;
  switch (n->op) {
  case OP_VAR: return c->vars[n->k].posdef;         /* P : posdef(n) */
  case OP_EYE: return true;
  case OP_TRANS:
  case OP_INV: return pd(c, n->a, visits);          /* P' = P; inv(P) = R^-1*R^-T */
  case OP_ADD: return pd(c, n->a, visits) && pd(c, n->b, visits); /* x'(P + Q)x > 0 */
  case OP_MUL:                                      /* s*P, s > 0 */
    return n->a->op == OP_NUM && n->a->num > 0 && pd(c, n->b, visits);
  case OP_DIV: return n->b->op == OP_NUM && n->b->num > 0 && pd(c, n->a, visits);
  default: return false;
  }
}

bool simp_posdef(const Ctx *c, const Node *n) {
  int visits = SYM_VISITS;
  return shape_is_square(n->shape) && !shape_is_scalar(n->shape) && pd(c, n, &visits);
}

// Every element of N >= 0 (or NaN), whatever the inputs.
static bool nonneg(const Node *n, int *visits) {
  if (--*visits < 0)
    return false;
  const Node *a = n->a, *b = n->b;
  switch (n->op) {
  case OP_NUM: return n->num >= 0;
  case OP_DIM: case OP_ZEROS: case OP_ONES: case OP_EYE:
  case OP_EXP: case OP_SQRT: case OP_SIGMOID: case OP_SOFTPLUS: case OP_RELU: case OP_ABS:
  case OP_NORM: case OP_NORMSQ:
    return true;
  case OP_TRANS: case OP_SUM: case OP_DIAGM: case OP_DIAGV: case OP_TR:
    return nonneg(a, visits);
  case OP_EMUL:                                     /* x.*x >= 0 */
    return a == b || (nonneg(a, visits) && nonneg(b, visits));
  case OP_MUL:                                      /* x*x, a scalar */
    return (a == b && shape_is_scalar(a->shape)) || (nonneg(a, visits) && nonneg(b, visits));
  case OP_ADD: case OP_DIV: case OP_EDIV:
    return nonneg(a, visits) && nonneg(b, visits);
  case OP_POW: case OP_EPOW:                        /* x.^2k, or x >= 0 */
    return (b->op == OP_NUM && fmod(b->num, 2) == 0) || nonneg(a, visits);
  case OP_SUB:                                      /* c - sigmoid(x), c >= 1 */
    return a->op == OP_NUM && a->num >= 1 && b->op == OP_SIGMOID;
  default: return false;
  }
}

bool simp_nonneg(const Ctx *c, const Node *n) {
  (void)c;
  int visits = SYM_VISITS;
  return nonneg(n, &visits);
}

/* ---- monomials ------------------------------------------------------------
 *
 * A product of scalars and elementwise factors, as a coefficient and a list
 * of bases with exponents:
 *     c * s1 * s2^2 * A .* B.^2 ./ C / (t1*t2)
 * is c = c, s1^1, s2^2, A^1, B^2, C^-1, t1^-1, t2^-1. Its canonical node is
 * one chain in that layout: the coefficient, the scalar factors, the
 * elementwise factors, each by the order in which they first appear, the
 * elementwise divisors, and the scalar divisor last. Equal bases are one
 * factor: x*x*x is x^3 (merging powers, x^a*x^b = x^(a+b)), and a factor
 * whose exponent comes to 0 is gone (e/e = 1, e*e^-1 = 1). A matrix
 * product, a sum, a call are bases: a monomial never multiplies out.
 */

enum { MAXF = 16, MAXVISIT = 64 };

typedef struct Factor {
  Node *base;
  double e;
} Factor;

typedef struct Mono {
  double c;
  int n, visits;
  bool ones;         /* a ones(...) factor was dropped: ones .* A = A */
  Factor f[MAXF];
} Mono;

static bool mono_put(Mono *m, Node *base, double e) {
  for (int i = 0; i < m->n; i++)
    if (m->f[i].base == base) {
      m->f[i].e += e;              /* x^a * x^b = x^(a+b) */
      return true;
    }
  if (m->n == MAXF)
    return false;
  m->f[m->n++] = (Factor){base, e};
  return true;
}

// Is N a product that a monomial takes apart? Scaling, / by a scalar, .*,
// ./, and a power with a numeric exponent; a named value stays whole.
static bool mono_op(const Simp *s, const Node *n) {
  if (named(s, n))
    return false;
  switch (n->op) {
  case OP_MUL: return scalar(n->a) || scalar(n->b);
  case OP_DIV:
  case OP_EMUL:
  case OP_EDIV: return true;
  case OP_POW:
  case OP_EPOW: return is_num(n->b);
  default: return false;
  }
}

// N^E into M; false when M would grow past its bounds (then N is left as
// it is: a rewrite looks at a bounded part of the DAG, so time stays linear).
static bool mono_flatten(const Simp *s, Node *n, double e, Mono *m) {
  if (++m->visits > MAXVISIT)
    return false;
  if (is_num(n) && (e == 1 || e == -1)) {
    m->c = e == 1 ? m->c * n->num : m->c / n->num;
    return true;
  }
  if (n->op == OP_ONES) {          /* ones.^p = ones, ones .* A = A */
    m->ones = true;
    return true;
  }
  if (n->op == OP_ZEROS && e > 0) {
    m->c *= 0;
    return true;
  }
  if (!mono_op(s, n))
    return mono_put(m, n, e);
  switch (n->op) {
  case OP_MUL:
  case OP_EMUL: return mono_flatten(s, n->a, e, m) && mono_flatten(s, n->b, e, m);
  case OP_DIV:
  case OP_EDIV: return mono_flatten(s, n->a, e, m) && mono_flatten(s, n->b, -e, m);
  default: {                       /* a power with a numeric exponent p */
    double p = n->b->num;
    // (a*b)^p = a^p*b^p for a whole p; otherwise only for positive a and b,
    // and the base stays whole.
    if (p == floor(p) && fabs(p) <= 64)
      return mono_flatten(s, n->a, e * p, m);
    return mono_put(m, n->a, e * p);
  }
  }
}

// BASE^E, E > 0.
static Node *power(Simp *s, Node *base, double e) {
  if (e == 1)
    return base;
  return mk(s, scalar(base) ? OP_POW : OP_EPOW, base, num(s, e));
}

// Multiply the chain so far by X: scaling while either side is a scalar,
// elementwise after.
static Node *times(Simp *s, Node *acc, Node *x) {
  if (!acc)
    return x;
  return mk(s, scalar(acc) || scalar(x) ? OP_MUL : OP_EMUL, acc, x);
}

// M's canonical node, of shape WANT; NULL if it cannot be made (a
// coefficient that does not fold, shapes that no longer fit).
static Node *mono_build(Simp *s, const Mono *m, Shape want) {
  if (m->c == 0) {
    // 0*A -> 0 and 0./c -> 0, for A finite and c a nonzero constant.
    for (int i = 0; i < m->n; i++)
      if (m->f[i].e != 0 && !(m->f[i].e > 0 ? finite(m->f[i].base) : nonzero_const(m->f[i].base)))
        return NULL;
    return zeros(s, want);
  }
  if (!foldable(m->c))
    return NULL;
  Node *acc = m->c == 1 ? NULL : num(s, m->c);
  Node *sden = NULL;
  bool full = false;               /* some factor has the whole shape */
  // The scalars first, then the elementwise factors, then their divisors.
  for (int pass = 0; pass < 3; pass++)
    for (int i = 0; i < m->n; i++) {
      const Factor *f = &m->f[i];
      bool sc = scalar(f->base);
      if (f->e == 0 || (pass == 0) != (sc && f->e > 0) || (pass == 1) != (!sc && f->e > 0))
        continue;
      Node *p = power(s, f->base, fabs(f->e));
      if (!p)
        return NULL;
      if (pass < 2)
        acc = times(s, acc, p);
      else if (sc)
        sden = times(s, sden, p);
      else
        acc = mk(s, OP_EDIV, acc ? acc : num(s, 1), p);
      full |= !sc && shape_eq(f->base->shape, want);
      if (sc && pass == 2 ? !sden : !acc)
        return NULL;
    }
  // A factor gone (ones dropped, e/e cancelled) may take a broadcast with
  // it: then ones of the whole shape come first among the elementwise factors.
  if (!full && !shape_is_scalar(want)) {
    Mono k = *m;
    k.ones = false;
    if (k.n == MAXF)
      return NULL;
    memmove(k.f + 1, k.f, sizeof *k.f * (size_t)k.n);
    k.f[0] = (Factor){ones(s, want), 1};
    k.n++;
    // ones(...) .* ones(...) stays one: the recursion ends at once.
    for (int i = 1; i < k.n; i++)
      if (k.f[i].base == k.f[0].base)
        return NULL;
    return mono_build(s, &k, want);
  }
  if (!acc)
    acc = num(s, 1);
  if (sden)
    acc = mk(s, OP_DIV, acc, sden);
  return acc && shape_eq(acc->shape, want) ? acc : NULL;
}

// unit(A)*||A||^p -> A*||A||^(p-1), for a whole p other than 0: the unit
// direction A/||A|| (0 at A = 0) joins a power of A's norm into one. Where
// A is 0 both sides are 0 (p >= 1) or not defined (p < 0, a division by
// 0), so the rule holds wherever what it rewrites is defined; the unit
// direction alone, p = 0, stays whole. False when M would grow too large.
static bool mono_unit(const Simp *s, Mono *m) {
  for (int i = 0; i < m->n; i++) {
    Node *u = m->f[i].base;
    if (u->op != OP_UNIT || m->f[i].e != 1 || named(s, u))
      continue;
    for (int j = 0; j < m->n; j++) {
      double p = m->f[j].e;
      if (m->f[j].base->op != OP_NORM || m->f[j].base->a != u->a || p == 0 || p != floor(p))
        continue;
      m->f[i].e = 0;
      m->f[j].e -= 1;
      return mono_flatten(s, u->a, 1, m);
    }
  }
  return true;
}

// N as its monomial's canonical node; NULL if it is that already.
static Node *rw_mono(Simp *s, Node *n) {
  Mono m = {.c = 1};
  if (!mono_flatten(s, n, 1, &m) || !mono_unit(s, &m))
    return NULL;
  Node *r = mono_build(s, &m, n->shape);
  return r == n ? NULL : r;
}

// N = k*rest, k its monomial's coefficient; 1 and N itself when it has none.
static double coef(Simp *s, Node *n, Node **rest) {
  Mono m = {.c = 1};
  *rest = n;
  if (!mono_op(s, n) || !mono_flatten(s, n, 1, &m) || m.c == 1 || m.c == 0 || !foldable(m.c))
    return 1;
  double k = m.c;
  m.c = 1;
  Node *r = mono_build(s, &m, n->shape);
  if (!r)
    return 1;
  *rest = r;
  return k;
}

// K*A, as its monomial's canonical node (so that a sum built of such terms
// is canonical too, and comes out the same when it is taken apart again).
static Node *scaled(Simp *s, double k, Node *a) {
  if (k == 1 || !a)
    return a;
  Mono m = {.c = k};
  Node *r = mono_op(s, a) && mono_flatten(s, a, 1, &m) ? mono_build(s, &m, a->shape) : NULL;
  return r ? r : mk(s, OP_MUL, num(s, k), a);
}

// A as OUTER*INNER, OUTER its scalar factors (coefficient included), INNER
// the rest; false if A has no scalar factor to take out.
static bool split_scalars(Simp *s, Node *a, Node **outer, Node **inner) {
  Mono m = {.c = 1}, in = {.c = 1}, out = {.c = 1};
  if (!mono_op(s, a) || !mono_flatten(s, a, 1, &m) || m.c == 0)
    return false;
  out.c = m.c;
  for (int i = 0; i < m.n; i++)
    if (m.f[i].e != 0) {
      Mono *to = scalar(m.f[i].base) ? &out : &in;
      to->f[to->n++] = m.f[i];
    }
  if ((out.n == 0 && out.c == 1) || scalar(a))
    return false;
  *inner = mono_build(s, &in, a->shape);
  *outer = mono_build(s, &out, shape_scalar());
  return *inner && *outer;
}

// sum(A, k) and tr(A) are linear: a scalar factor comes out of them,
// sum(c*s*A/t) -> c*s*sum(A)/t. The rest of A stays inside.
static Node *pull_scalars(Simp *s, Node *n, Node *a) {
  Node *outer, *inner;
  if (!split_scalars(s, a, &outer, &inner))
    return NULL;
  return times(s, outer, ast_opk(s->c, n->op, inner, NULL, n->k));
}

/* ---- transposes ------------------------------------------------------------
 *
 * (A + B)' = A' + B', (A*B)' = B'*A', (s*A)' = s*A', (A/s)' = A'/s,
 * (A .* B)' = A' .* B', f(A)' = f(A') for an elementwise f: a transpose
 * can be pushed into a sum or product, or pulled out of one. tlen(N) is
 * what printing N' costs over printing N, in characters, done the shorter
 * way; the rules push or pull where that is shorter, and leave a tie.
 */

enum { TFAR = 1000 };              /* "cannot push": more than any wrapping */

// N' written as N': one character after an atom, "()'" around the rest;
// a sum counts 2, as it often stands in parentheses already (X*(A + B)').
static int twrap(const Simp *s, const Node *n) {
  if (named(s, n) || op_prec[n->op] >= PREC_POST || is_num(n))
    return 1;
  return n->op == OP_ADD || n->op == OP_SUB ? 2 : 3;
}

static int tlen(Simp *s, const Node *n, int depth);
static int tlen_term(Simp *s, const Node *n, int depth);

// As tlen, for a term of a sum (or an elementwise product) the transpose
// would be pushed into. A matrix product the value computes anyway is
// transposed there for free (the emitted code hands BLAS a flag), where
// pushing it into the sum would make B'*A', a new product: (R - U*V')'
// stays so. (A vector's product costs little either way.)
static int tlen_term(Simp *s, const Node *n, int depth) {
  if (is_matmul(n) && n->id < s->nprimal && s->primal[n->id] && !shape_is_row(n->shape) &&
      !shape_is_column(n->shape))
    return twrap(s, n);
  return tlen(s, n, depth);
}

// N' with the transpose pushed one level in, over N.
static int tpushc(Simp *s, const Node *n, int depth) {
  if (scalar(n) || simp_symmetric(s->c, n))
    return 0;                      /* s' = s, S' = S */
  if (named(s, n))
    return TFAR;
  const Node *a = n->a, *b = n->b;
  int d = depth + 1;
  switch (n->op) {
  case OP_TRANS: return -twrap(s, a);
  case OP_ZEROS:
  case OP_ONES:
  case OP_EYE:
  case OP_DIAGM: return 0;
  case OP_ADD:
  case OP_SUB:
  case OP_EMUL:
  case OP_EDIV: return tlen_term(s, a, d) + tlen_term(s, b, d);
  case OP_MUL: return scalar(a) ? tlen(s, b, d) : tlen(s, a, d) + tlen(s, b, d);
  case OP_DIV: return tlen(s, a, d);
  case OP_EPOW: return tlen(s, a, d) + tlen(s, b, d);
  default: return op_class[n->op] == SC_MAP ? tlen(s, a, d) : TFAR;
  }
}

static int tlen(Simp *s, const Node *n, int depth) {
  if (n->id < s->cap && s->tcost[n->id] != INT_MIN)
    return s->tcost[n->id];
  int w = twrap(s, n);
  int r = depth > MAX_TLEN_DEPTH ? w : tpushc(s, n, depth);
  r = r < w ? r : w;
  if (r > TFAR)
    r = TFAR;
  if (n->id < s->cap && depth <= MAX_TLEN_DEPTH)
    s->tcost[n->id] = r;
  return r;
}

static Node *trans(Simp *s, Node *a) { return mk(s, OP_TRANS, a, NULL); }

// N' with the transpose pushed one level in (N one of tpushc's ops).
static Node *tpush(Simp *s, Node *n) {
  Node *a = n->a, *b = n->b;
  if (simp_symmetric(s->c, n))
    return n;                      /* S' = S */
  switch (n->op) {
  case OP_TRANS: return a;
  case OP_ZEROS:
  case OP_ONES:
  case OP_EYE: return ast_fill(s->c, n->op, (Shape){n->shape.c, n->shape.r});
  case OP_DIAGM: return n;
  case OP_ADD:
  case OP_SUB:
  case OP_EMUL:
  case OP_EDIV:
  case OP_EPOW: return mk(s, n->op, trans(s, a), trans(s, b));
  case OP_MUL: return scalar(a) ? mk(s, OP_MUL, a, trans(s, b)) : mk(s, OP_MUL, trans(s, b), trans(s, a));
  case OP_DIV: return mk(s, OP_DIV, trans(s, a), b);
  default: return op_class[n->op] == SC_MAP ? mk(s, n->op, trans(s, a), NULL) : NULL;
  }
}

static Node *simp(Simp *s, Node *n);

// A sum or product that prints shorter as (...)' is written so: B'*X' +
// X'*B' is (X*B + B*X)'. The result must not be pushed in again.
static Node *pull_transpose(Simp *s, Node *n) {
  if (scalar(n) || named(s, n) || !(n->op == OP_ADD || n->op == OP_SUB || is_matmul(n)))
    return NULL;
  if (tpushc(s, n, 0) >= -twrap(s, n))
    return NULL;
  Node *u = simp(s, tpush(s, n));
  if (!u || tpushc(s, u, 0) < twrap(s, u))
    return NULL;
  return trans(s, u);
}

/* ---- sums ------------------------------------------------------------------ */

/* A sum as terms k*t: like terms are collected (a + b - a -> b,
   A + 2*A -> 3*A), and what several terms share is taken out once. */
typedef struct Term {
  double k;
  Node *t;
} Term;

enum { MAX_TERMS = 64 };

static bool is_sum(const Simp *s, const Node *n) {
  return (n->op == OP_ADD || n->op == OP_SUB) && !named(s, n);
}

// The terms of the sum N, times SIGN; with DISTRIBUTE, also those of a
// numeric multiple of a sum (k*(a + b) = k*a + k*b). false past MAX_TERMS,
// when the sum is left as it is.
static bool flatten(Simp *s, Node *n, double sign, bool distribute, Term *ts, int *nt) {
  // Each sum on the left spine brings a term more: a spine longer than
  // MAX_TERMS is given up at once, not after recursing all the way down
  // (the gradient of a weight that thousands of layers share is such a sum).
  int spine = 0;
  for (const Node *x = n; is_sum(s, x) && spine <= MAX_TERMS; x = x->a)
    spine++;
  if (spine > MAX_TERMS)
    return false;
  if (is_sum(s, n))
    return flatten(s, n->a, sign, distribute, ts, nt) &&
           flatten(s, n->b, n->op == OP_SUB ? -sign : sign, distribute, ts, nt);
  Node *rest;
  double k = coef(s, n, &rest);
  if (distribute && k != 1 && is_sum(s, rest))
    return flatten(s, rest, sign * k, distribute, ts, nt);
  if (*nt == MAX_TERMS)
    return false;
  ts[(*nt)++] = (Term){sign * k, rest};
  return true;
}

// Collect like terms in place; true if any were.
static bool merge(Term *ts, int *nt) {
  int out = 0;
  bool merged = false;
  for (int i = 0; i < *nt; i++) {
    int j = 0;
    while (j < out && ts[j].t != ts[i].t)
      j++;
    if (j < out) {
      ts[j].k += ts[i].k;
      merged = true;
    } else {
      ts[out++] = ts[i];
    }
  }
  for (int i = 0; i < out; i++)
    merged |= ts[i].k == 0;
  *nt = out;
  return merged;
}

// The terms as a sum of shape WANT: a positive term first where there is
// one, then + and - in order. NULL if they no longer fit together (a
// cancelled term may have carried a broadcast).
static Node *build_sum(Simp *s, const Term *ts, int nt, Shape want) {
  int first = -1;
  bool full = false;
  for (int i = 0; i < nt; i++) {
    if (ts[i].k != 0 && (first < 0 || (ts[first].k < 0 && ts[i].k > 0)))
      first = i;
    full |= ts[i].k != 0 && ts[i].t->op != OP_ONES && shape_eq(ts[i].t->shape, want);
  }
  if (first < 0)
    return zeros(s, want);
  Node *r = NULL;
  for (int pass = 0; pass < 2; pass++)
    for (int i = 0; i < nt; i++) {
      if (ts[i].k == 0 || (pass == 0) != (i == first))
        continue;
      // A + k*ones -> A + k, when A has the whole shape: the scalar broadcasts.
      Node *t = ts[i].t->op == OP_ONES && full ? num(s, 1) : ts[i].t;
      double k = ts[i].k;
      if (!r)
        r = scaled(s, k, t);
      else
        r = mk(s, k < 0 ? OP_SUB : OP_ADD, r, scaled(s, fabs(k), t));
      if (!r)
        return NULL;
    }
  return shape_eq(r->shape, want) ? r : NULL;
}

// A term as L*X (RIGHT) or X*R, X the factor a group of terms may share:
// P*X, s*(P*X) or (P*X)/t. Into *X; with REST, also the term without it.
static bool split(Simp *s, Node *t, bool right, Node **x, Node **rest) {
  if (named(s, t))
    return false;
  if (is_matmul(t)) {
    *x = right ? t->b : t->a;
    if (rest)
      *rest = right ? t->a : t->b;
    return true;
  }
  Node *p = t->op == OP_MUL && scalar(t->a) ? t->b : t->op == OP_DIV ? t->a : NULL;
  if (!p || !is_matmul(p) || named(s, p))
    return false;
  *x = right ? p->b : p->a;
  if (!rest)
    return true;
  Node *r = right ? p->a : p->b;
  *rest = t->op == OP_MUL ? mk(s, OP_MUL, t->a, r) : mk(s, OP_DIV, r, t->b);
  return *rest != NULL;
}

// The factor term T may share with others as KIND: 0 its divisor, 1 a
// matrix on the right, 2 a matrix on the left, 3 its scalar factors (s*A);
// NULL if none. With REST, also T without it.
static Node *shared(Simp *s, Node *t, int kind, Node **rest) {
  Node *x = NULL, *r = NULL;
  if (named(s, t))
    return NULL;
  if (kind == 0 && t->op == OP_DIV)
    x = t->b, r = t->a;
  else if (kind == 3 && t->op == OP_MUL && scalar(t->a) && !scalar(t->b))
    x = t->a, r = t->b;
  else if ((kind == 1 || kind == 2) && !split(s, t, kind == 1, &x, rest ? &r : NULL))
    return NULL;
  if (rest)
    *rest = r;
  return x;
}

// Take out what several terms share:
//   k*a + k*b = k*(a + b)            (all terms, one coefficient k != 1)
//   A/t + B/t = (A + B)/t
//   A*X + B*X = (A + B)*X,  X*A + X*B = X*(A + B)
//   s*A + s*B = s*(A + B)            (s a scalar)
// The group with the most terms goes first; NULL if nothing is shared.
static Node *factor(Simp *s, const Term *ts, int nt, Shape want) {
  if (nt < 2)
    return NULL;
  Term g[MAX_TERMS];
  double k = fabs(ts[0].k);
  bool same = k != 1;
  for (int i = 1; i < nt; i++)
    same &= fabs(ts[i].k) == k;
  // Only where that prints shorter: 2*a + 2*b is as long as 2*(a + b), and
  // the emitted code adds 2*a into its result without a temporary.
  char buf[32];
  if (same && (size_t)(nt - 1) * (strlen(print_num(buf, sizeof buf, k)) + 1) > 2) {
    bool neg = true;
    for (int i = 0; i < nt; i++)
      neg &= ts[i].k < 0;
    for (int i = 0; i < nt; i++)
      g[i] = (Term){ts[i].k / (neg ? -k : k), ts[i].t};
    return mk(s, OP_MUL, num(s, neg ? -k : k), build_sum(s, g, nt, want));
  }
  // The factor most terms share (of shared()'s kinds, in that order on a tie).
  int best = 0, bkind = 0;
  Node *bx = NULL, *xs[4][MAX_TERMS];
  for (int kind = 0; kind < 4; kind++)
    for (int i = 0; i < nt; i++)
      xs[kind][i] = shared(s, ts[i].t, kind, NULL);
  for (int kind = 0; kind < 4; kind++)
    for (int i = 0; i < nt; i++) {
      int count = 0;
      for (int j = 0; xs[kind][i] && j < nt; j++)
        count += xs[kind][j] == xs[kind][i];
      if (count > best)
        best = count, bkind = kind, bx = xs[kind][i];
    }
  if (best < 2)
    return NULL;
  // The group's terms, without the factor, summed; the group is one term
  // where its first one was.
  Term in[MAX_TERMS], out[MAX_TERMS];
  int nin = 0, nout = 0, at = -1;
  for (int i = 0; i < nt; i++) {
    Node *rest;
    if (xs[bkind][i] != bx) {
      out[nout++] = ts[i];
      continue;
    }
    if (!shared(s, ts[i].t, bkind, &rest) || !rest)
      return NULL;
    in[nin++] = (Term){ts[i].k, rest};
    if (at < 0)
      at = nout++;
  }
  // One coefficient for the whole group comes out in front: 2*A*x + 2*B*x
  // is 2*(A + B)*x.
  double gk = fabs(in[0].k);
  for (int i = 1; i < nin; i++)
    gk = fabs(in[i].k) == gk ? gk : 1;
  for (int i = 0; i < nin; i++)
    in[i].k /= gk;
  Node *inner = build_sum(s, in, nin, in[0].t->shape);
  if (!inner) {  // the group's terms broadcast among themselves: any shape that fits
    Node *r = NULL;
    for (int i = 0; i < nin && (i == 0 || r); i++)
      r = !r ? scaled(s, in[i].k, in[i].t) : mk(s, in[i].k < 0 ? OP_SUB : OP_ADD, r, scaled(s, fabs(in[i].k), in[i].t));
    inner = r;
  }
  Node *group = !inner         ? NULL
                : bkind == 0 ? mk(s, OP_DIV, inner, bx)
                : bkind == 1 ? mk(s, OP_MUL, inner, bx)
                             : mk(s, OP_MUL, bx, inner);  /* X*(A + B), s*(A + B) */
  if (!group)
    return NULL;
  out[at] = (Term){gk, group};
  return build_sum(s, out, nout, want);
}

// A sum whose terms all have the coefficient k, as k and the sum without
// it (1 when they do not): as a factor of a product, the coefficient comes
// out in front, A*(2*a + 2*b) -> 2*A*(a + b), even where the sum alone
// prints no shorter with it taken out.
static double sum_coef(Simp *s, Node *n, Node **inner) {
  Term ts[MAX_TERMS];
  int nt = 0;
  if (!is_sum(s, n) || !flatten(s, n, 1, false, ts, &nt) || nt < 2)
    return 1;
  double k = fabs(ts[0].k);
  bool neg = true;
  for (int i = 0; i < nt; i++) {
    if (fabs(ts[i].k) != k)
      return 1;
    neg &= ts[i].k < 0;
  }
  k = neg ? -k : k;
  for (int i = 0; i < nt; i++)
    ts[i].k /= k;
  return k != 1 && (*inner = build_sum(s, ts, nt, n->shape)) ? k : 1;
}

// k1*diag(u) + k2*diag(v) + ... -> diag(k1*u + k2*v + ...): the diagonal
// terms of a sum as one, in place of the first; true if there were two.
// Unnamed diagonals only: a name the user gave stays.
static bool merge_diags(Simp *s, Term *ts, int *nt) {
  Term vs[MAX_TERMS];
  int nv = 0, first = -1, out = 0;
  for (int i = 0; i < *nt; i++)
    if (ts[i].t->op == OP_DIAGM && !named(s, ts[i].t) && ts[i].k != 0 &&
        (nv == 0 || shape_eq(ts[i].t->a->shape, vs[0].t->shape))) {
      vs[nv++] = (Term){ts[i].k, ts[i].t->a};
      first = first < 0 ? i : first;
    }
  Node *v = nv > 1 ? build_sum(s, vs, nv, vs[0].t->shape) : NULL;
  Node *d = v ? mk(s, OP_DIAGM, v, NULL) : NULL;
  if (!d)
    return false;
  for (int i = 0; i < *nt; i++)
    if (i == first)
      ts[out++] = (Term){1, d};
    else if (!(ts[i].t->op == OP_DIAGM && !named(s, ts[i].t) && ts[i].k != 0 &&
               shape_eq(ts[i].t->a->shape, vs[0].t->shape)))
      ts[out++] = ts[i];
  *nt = out;
  return true;
}

static Node *rw_sum(Simp *s, Node *n) {
  Term ts[MAX_TERMS], td[MAX_TERMS];
  int nt = 0, nd = 0;
  if (!flatten(s, n, 1, false, ts, &nt))
    return NULL;
  bool merged = merge(ts, &nt);
  merged |= merge_diags(s, ts, &nt);
  // Multiplying out a numeric factor, 2*(a + b) = 2*a + 2*b, only where
  // terms then collect: x + 2*(a + b) - 2*a is x + 2*b.
  if (!merged && flatten(s, n, 1, true, td, &nd) && nd > nt && merge(td, &nd)) {
    memcpy(ts, td, sizeof *ts * (size_t)nd);
    nt = nd;
    merged = true;
  }
  Node *r = merged ? NULL : factor(s, ts, nt, n->shape);
  if (!r)
    r = build_sum(s, ts, nt, n->shape);
  return r == n ? NULL : r;
}

/* ---- the local rules --------------------------------------------------------- */

// Are X and Y inverse matrices: X*Y = I?
static bool inverses(const Node *x, const Node *y) {
  if ((x->op == OP_INV && x->a == y) || (y->op == OP_INV && y->a == x))
    return true;                   /* inv(A)*A = A*inv(A) = I */
  return x->op == OP_TRANS && y->op == OP_TRANS && inverses(y->a, x->a);
}                                  /* inv(A)'*A' = (A*inv(A))' = I */

// The vector V that A = ones(m, n).*V repeats: a column (COL) across the
// columns, or a row down the rows; NULL when A is not such a product.
static Node *repeated(const Node *a, bool col) {
  if (a->op != OP_EMUL || (a->a->op != OP_ONES && a->b->op != OP_ONES))
    return NULL;
  Node *v = a->a->op == OP_ONES ? a->b : a->a;
  bool ok = col ? shape_is_column(v->shape) && !shape_is_column(a->shape)
                : shape_is_row(v->shape) && !shape_is_row(a->shape);
  return ok && !scalar(v) ? v : NULL;
}

// A matrix product A*B proper.
static Node *rw_matmul(Simp *s, Node *n, Node *a, Node *b) {
  if ((is_zero(a) && finite(b)) || (is_zero(b) && finite(a)))
    return zeros(s, n->shape);                      /* 0*A -> 0, A finite */
  if (a->op == OP_ONES && b->op == OP_ONES)         /* ones(n, k)*ones(k, m) -> k*ones(n, m) */
    return mk(s, OP_MUL, ast_dim(s->c, a->shape.c), ones(s, n->shape));
  if (a->op == OP_EYE)                              /* eye*A -> A */
    return b;
  if (b->op == OP_EYE)                              /* A*eye -> A */
    return a;
  if (b->op == OP_ONES && shape_is_column(b->shape)) /* A*ones(k, 1) -> sum(A, 2) */
    return ast_opk(s->c, OP_SUM, a, NULL, 2);
  if (a->op == OP_ONES && shape_is_row(a->shape))   /* ones(1, k)*A -> sum(A, 1) */
    return ast_opk(s->c, OP_SUM, b, NULL, 1);
  Node *v;
  if ((v = repeated(a, true)))                      /* (ones(m, n).*c)*B -> c*sum(B, 1) */
    return mk(s, OP_MUL, v, ast_opk(s->c, OP_SUM, b, NULL, 1));
  if ((v = repeated(b, false)))                     /* A*(ones(m, n).*r) -> sum(A, 2)*r */
    return mk(s, OP_MUL, ast_opk(s->c, OP_SUM, a, NULL, 2), v);
  if (inverses(a, b))                               /* inv(A)*A -> eye */
    return ast_fill(s->c, OP_EYE, n->shape);
  if (is_matmul(a) && !named(s, a) && inverses(a->b, b))
    return a->a;                                    /* P*inv(A)*A -> P */
  if (is_matmul(b) && !named(s, b) && inverses(a, b->a))
    return b->b;                                    /* inv(A)*(A*Q) -> Q */
  // (s*A)*B -> s*(A*B), A*(s*B) -> s*(A*B), (A/t)*B -> (A*B)/t, ...:
  // the scalar factors of either side come out in front.
  Node *outer, *inner;
  if (split_scalars(s, a, &outer, &inner))
    return times(s, outer, mk(s, OP_MUL, inner, b));
  if (split_scalars(s, b, &outer, &inner))
    return times(s, outer, mk(s, OP_MUL, a, inner));
  double k;
  if ((k = sum_coef(s, a, &inner)) != 1)            /* (2*a + 2*b)*B -> 2*(a + b)*B */
    return scaled(s, k, mk(s, OP_MUL, inner, b));
  if ((k = sum_coef(s, b, &inner)) != 1)            /* A*(2*a + 2*b) -> 2*A*(a + b) */
    return scaled(s, k, mk(s, OP_MUL, a, inner));
  return pull_transpose(s, n);
}

static Node *rw_add(Simp *s, Node *n, Node *a, Node *b) {
  if (is_num(a) && is_num(b))
    return fold(s, n->op, a->num, b->num);
  if (is_zero(b) && shape_eq(a->shape, n->shape))   /* A + 0 -> A, A - 0 -> A */
    return a;
  if (is_zero(a) && shape_eq(b->shape, n->shape))   /* 0 + A -> A, 0 - A -> -A */
    return n->op == OP_ADD ? b : scaled(s, -1, b);
  Node *r = rw_sum(s, n);
  return r ? r : pull_transpose(s, n);
}

static Node *rw_emul(Simp *s, Node *n, Node *a, Node *b) {
  if (n->op == OP_EMUL && (scalar(a) || scalar(b)))
    return mk(s, OP_MUL, a, b);                     /* s.*A -> s*A */
  if (n->op == OP_EDIV && scalar(b))
    return mk(s, OP_DIV, a, b);                     /* A./s -> A/s */
  if (n->op == OP_EMUL && a->op == OP_ONES && shape_eq(b->shape, n->shape))
    return b;                                       /* ones.*A -> A, of A's shape */
  if (n->op == OP_EMUL && b->op == OP_ONES && shape_eq(a->shape, n->shape))
    return a;                                       /* A.*ones -> A */
  return rw_mono(s, n);
}

static Node *rw_trans(Simp *s, Node *n, Node *a) {
  if (scalar(a))                                    /* s' -> s */
    return a;
  if (a->op == OP_TRANS)                            /* (A')' -> A */
    return a->a;
  if (simp_symmetric(s->c, a))                      /* S' -> S, S symmetric */
    return a;
  if (op_is_fill(a->op) || a->op == OP_DIAGM)       /* eye' -> eye, diag(v)' -> diag(v) */
    return tpush(s, a);
  // (A + B)' -> A' + B', (A*B)' -> B'*A', (s*A)' -> s*A', (A/s)' -> A'/s,
  // (A.*B)' -> A'.*B', f(A)' -> f(A'): where that prints shorter.
  if (tpushc(s, a, 0) < twrap(s, a))
    return tpush(s, a);
  (void)n;
  return NULL;
}

// Are A and B vectors of one shape: sum(A .* B) is a dot product?
static bool same_vectors(const Node *a, const Node *b) {
  return shape_eq(a->shape, b->shape) && (shape_is_column(a->shape) || shape_is_row(a->shape)) &&
         !scalar(a);
}

// sum(ones(m, n).*B, k), B a row or column that the ones only repeat: each
// element of the sum is B's times the number of repeats, m*B along 1 (B a
// row), n*B along 2 (B a column), and m*sum(B) or n*sum(B) over all.
static Node *sum_broadcast(Simp *s, Node *n, Node *a) {
  Node *row = repeated(a, false), *col = repeated(a, true), *b = row ? row : col;
  if (!(row && (n->k == 1 || !n->k)) && !(col && (n->k == 2 || !n->k)))
    return NULL;
  Node *reps = ast_dim(s->c, row ? a->shape.r : a->shape.c);
  return mk(s, OP_MUL, reps, n->k ? b : ast_opk(s->c, OP_SUM, b, NULL, 0));
}

static Node *rw_sumop(Simp *s, Node *n, Node *a) {
  if (shape_eq(a->shape, n->shape))                 /* sum(A) of one element, or along */
    return a;                                       /* a dimension of size 1 -> A */
  Node *r = pull_scalars(s, n, a);                  /* sum(s*A) -> s*sum(A), sum(A/t) -> sum(A)/t */
  if (r)
    return r;
  if (a->op == OP_ONES && n->k)                     /* sum(ones(n, m), 1) -> n*ones(1, m) */
    return mk(s, OP_MUL, ast_dim(s->c, n->k == 1 ? a->shape.r : a->shape.c), ones(s, n->shape));
  if (a->op == OP_ONES)                             /* sum(ones(n, m)) -> n*m */
    return mk(s, OP_MUL, ast_dim(s->c, a->shape.r), ast_dim(s->c, a->shape.c));
  if (named(s, a))
    return NULL;
  if ((r = sum_broadcast(s, n, a)))                 /* sum(ones(m, n).*r, 1) -> m*r, r a row */
    return r;
  if (a->op == OP_EMUL && !n->k && a->a->op == OP_EYE)  /* sum(eye .* A) -> tr(A) */
    return mk(s, OP_TR, a->b, NULL);
  if (a->op == OP_EMUL && !n->k && a->b->op == OP_EYE)  /* sum(A .* eye) -> tr(A) */
    return mk(s, OP_TR, a->a, NULL);
  if (a->op == OP_EMUL && !n->k && same_vectors(a->a, a->b)) /* sum(a .* b) -> b'*a, vectors */
    return shape_is_column(a->shape) ? mk(s, OP_MUL, trans(s, a->b), a->a)
                                     : mk(s, OP_MUL, a->b, trans(s, a->a));
  if (is_matmul(a) && n->k == 1)                    /* sum(A*B, 1) -> sum(A, 1)*B */
    return mk(s, OP_MUL, ast_opk(s->c, OP_SUM, a->a, NULL, 1), a->b);
  if (is_matmul(a) && n->k == 2)                    /* sum(A*B, 2) -> A*sum(B, 2) */
    return mk(s, OP_MUL, a->a, ast_opk(s->c, OP_SUM, a->b, NULL, 2));
  return NULL;
}

static Node *rw_linalg(Simp *s, Node *n, Node *a) {
  switch (n->op) {
  case OP_TR:
    if (a->op == OP_TRANS)                          /* tr(A') -> tr(A) */
      return mk(s, OP_TR, a->a, NULL);
    if (a->op == OP_EYE)                            /* tr(eye(n)) -> n */
      return ast_dim(s->c, a->shape.r);
    return pull_scalars(s, n, a);                   /* tr(s*A) -> s*tr(A) */
  case OP_DET:
    if (a->op == OP_TRANS)                          /* det(A') -> det(A) */
      return mk(s, OP_DET, a->a, NULL);
    if (a->op == OP_INV)                            /* det(inv(A)) -> 1/det(A) */
      return mk(s, OP_DIV, num(s, 1), mk(s, OP_DET, a->a, NULL));
    return NULL;
  case OP_LOGDET:
    if (a->op == OP_TRANS)                          /* logdet(A') -> logdet(A) */
      return mk(s, OP_LOGDET, a->a, NULL);
    if (a->op == OP_INV)                            /* logdet(inv(A)) -> -logdet(A) */
      return scaled(s, -1, mk(s, OP_LOGDET, a->a, NULL));
    return NULL;
  case OP_INV:
    if (a->op == OP_INV)                            /* inv(inv(A)) -> A */
      return a->a;
    return NULL;
  case OP_LOG:
    if (a->op == OP_DET)                            /* log(det(A)) -> logdet(A), where defined */
      return mk(s, OP_LOGDET, a->a, NULL);
    return NULL;
  case OP_DIAGV:
    if (a->op == OP_DIAGM)                          /* diag(diag(v)) -> v */
      return a->a;
    if (a->op == OP_EYE)                            /* diag(eye(n)) -> ones(n, 1) */
      return ones(s, n->shape);
    return pull_scalars(s, n, a);                   /* diag(s*A) -> s*diag(A) */
  case OP_DIAGM:
    if (a->op == OP_DIAGV && a->a->op == OP_DIAGM)
      return a->a;
    if (a->op == OP_ONES)                           /* diag(ones(n, 1)) -> eye(n) */
      return ast_fill(s->c, OP_EYE, n->shape);
    return pull_scalars(s, n, a);                   /* diag(s*v) -> s*diag(v) */
  default: return NULL;
  }
}

// -(a - b) -> b - a, -(-a - b) -> a + b: a sum's negation is its terms'.
static Node *rw_neg(Simp *s, Node *n) {
  Term ts[MAX_TERMS];
  int nt = 0;
  if (!ast_is_num(n->a, -1) || !is_sum(s, n->b) || !flatten(s, n->b, -1, false, ts, &nt))
    return NULL;
  return build_sum(s, ts, nt, n->shape);
}

// One rewrite at the top of N (whose operands are already simplified), or
// NULL when no rule applies.
static Node *rewrite(Simp *s, Node *n) {
  Node *a = n->a, *b = n->b, *r;
  if (op_arity[n->op] == 2 && is_num(a) && is_num(b))
    return fold(s, n->op, a->num, b->num);          /* c1 op c2 -> c */
  switch (n->op) {
  case OP_MUL: return is_matmul(n) ? rw_matmul(s, n, a, b) : (r = rw_neg(s, n)) ? r : rw_mono(s, n);
  case OP_ADD:
  case OP_SUB: return rw_add(s, n, a, b);
  case OP_EMUL:
  case OP_EDIV: return rw_emul(s, n, a, b);
  case OP_DIV:
  case OP_POW:
  case OP_EPOW: return mono_op(s, n) ? rw_mono(s, n) : NULL;
  case OP_TRANS: return rw_trans(s, n, a);
  case OP_SUM: return rw_sumop(s, n, a);
  default: return rw_linalg(s, n, a);
  }
}

static bool reserve(Simp *s, int id) {
  if (id < s->cap)
    return true;
  int cap = s->cap ? s->cap : 256;
  while (cap <= id)
    cap *= 2;
  Node **m = realloc(s->memo, sizeof *m * (size_t)cap);
  if (!m)
    return false;
  s->memo = m;
  char *busy = realloc(s->busy, (size_t)cap);
  if (!busy)
    return false;
  s->busy = busy;
  char *nm = realloc(s->named, (size_t)cap);
  if (!nm)
    return false;
  s->named = nm;
  int *tc = realloc(s->tcost, sizeof *tc * (size_t)cap);
  if (!tc)
    return false;
  s->tcost = tc;
  memset(m + s->cap, 0, sizeof *m * (size_t)(cap - s->cap));
  memset(busy + s->cap, 0, (size_t)(cap - s->cap));
  memset(nm + s->cap, 0, (size_t)(cap - s->cap));
  for (int i = s->cap; i < cap; i++)
    tc[i] = INT_MIN;
  s->cap = cap;
  return true;
}

static Node *simp(Simp *s, Node *n) {
  if (!n || !reserve(s, n->id))
    return NULL;
  if (s->memo[n->id])
    return s->memo[n->id];
  // A value the user named prints by its name; it stays as written.
  if (s->busy[n->id] || s->named[n->id])  // busy: a rewrite led back here, stop at this form
    return n;
  s->busy[n->id] = 1;
  Node *a = n->a ? simp(s, n->a) : NULL;
  Node *b = n->b ? simp(s, n->b) : NULL;
  Node *m = NULL, *r = NULL;
  bool mine = false;
  if ((n->a && !a) || (n->b && !b))
    goto done;
  m = (a == n->a && b == n->b) ? n : ast_opk(s->c, n->op, a, b, n->k);
  if (!m || !reserve(s, m->id))
    goto done;
  if (m != n && (s->memo[m->id] || s->busy[m->id])) {
    r = s->memo[m->id] ? s->memo[m->id] : m;
    goto done;
  }
  s->busy[m->id] = 1;
  mine = true;
  r = s->budget > 0 && s->depth < MAX_REWRITE_DEPTH ? rewrite(s, m) : NULL;
  // A rewrite may lose sharing (x^(2^40) as products re-associated): one
  // that builds a DAG deeper than every later stage's recursion can take
  // is not made.
  if (r && (r == m || r->depth > MD_MAX_NODE_DEPTH))
    r = NULL;
  if (r) {
    s->budget--;
    s->depth++;
    r = simp(s, r);
    s->depth--;
  } else {
    r = m;
  }
done:
  s->busy[n->id] = 0;
  if (mine)
    s->busy[m->id] = 0;
  if (r) {
    s->memo[n->id] = r;
    if (m)
      s->memo[m->id] = r;
  }
  return r;
}

static void simp_init(Simp *s, Ctx *c) {
  *s = (Simp){.c = c, .budget = REWRITE_BUDGET};
  if (c->out && (s->primal = calloc((size_t)c->out->id + 1, 1))) {
    ast_mark(c, c->out, s->primal);
    s->nprimal = c->out->id + 1;
  }
  // The intermediates the user named print by their names; a rule that took
  // one apart would print it spelled out instead.
  for (int i = 0; i < c->nlets; i++) {
    Node *n = c->lets[i].node;
    if (n != c->out && n->op != OP_VAR && reserve(s, n->id))
      s->named[n->id] = 1;
  }
}

static void simp_free(Simp *s) {
  free(s->primal);
  free(s->memo);
  free(s->busy);
  free(s->named);
  free(s->tcost);
}

Node *simp_expr(Ctx *c, Node *n) {
  Simp s;
  simp_init(&s, c);
  Node *r = simp(&s, n);
  simp_free(&s);
  return r;
}

// simp() recurses into the operands first, as deep as the DAG. The sweep
// walks the DAG below ROOT as it would, with a stack of its own, and
// simplifies each node in the order the recursion would finish it: each
// call then finds its operands done, and recurses no deeper than a
// rewrite's new nodes, however long a chain of layers is.
typedef struct Visit {
  Node *n;
  int next;  /* the operand to visit next: 0 (a), 1 (b), 2 (done) */
} Visit;

static void sweep(Simp *s, Node *root) {
  int cap = 64, top = 0;
  Visit *st = malloc(sizeof *st * (size_t)cap);
  if (st)
    st[top++] = (Visit){root, 0};
  while (top > 0) {
    Visit *v = &st[top - 1];
    Node *n = v->n;
    if (v->next == 0 && (!reserve(s, n->id) || s->memo[n->id] || s->named[n->id])) {
      top--;
      continue;
    }
    if (v->next == 2) {
      top--;
      simp(s, n);
      continue;
    }
    Node *o = v->next++ == 0 ? n->a : n->b;
    if (!o)
      continue;
    if (top == cap) {
      Visit *g = realloc(st, sizeof *st * (size_t)(cap *= 2));
      if (!g)
        break;  // simp() itself then recurses, and reports what fails
      st = g;
    }
    st[top++] = (Visit){o, 0};
  }
  free(st);
}

void simp_program(Ctx *c) {
  Simp s;
  simp_init(&s, c);
  for (int i = 0; i < c->nvars; i++)
    if (c->grads[i])
      sweep(&s, c->grads[i]);
  for (int i = 0; i < c->nvars; i++)
    if (c->grads[i] && !(c->grads[i] = simp(&s, c->grads[i])))
      ctx_error(c, (Loc){-1, -1}, "internal error: simplifying d%s/d%s failed", c->outname,
                c->vars[i].name);
  simp_free(&s);
}
