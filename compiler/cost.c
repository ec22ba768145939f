/*
 * cost.c - the arithmetic the emitted code does at given sizes, read from
 * the same plan emit_c.c prints (plan.c): one per +, -, *, / or function
 * applied to an element, 2mnk per gemm (n(n+1)k per syrk, the symmetric
 * product n x n: one triangle), LU's 2n^3/3 once per matrix (and
 * 4n^3/3 more for an inverse, n for a det from the factors), 3 per element
 * for logsumexp, softmax and the unit direction. Copies count nothing.
 * This is what `matdiff cost` and md_flops report, and what the
 * cheap-gradient bound of reverse mode (gradient <= 4 x value) and its
 * second-order counterpart (HVP <= 10 x value) are checked against.
 * The same count, as a polynomial in the symbolic sizes printed as C, is
 * how the emitted code chooses among a body's variants at run time (a
 * chain grouped one way or another, plan.c), and how plan.c picks them.
 */
#include <math.h>
#include <stdio.h>
#include "emit.h"

enum { MAX_FACTORS = 3 };  /* sizes in one term: gemm's m*n*k, LU's n^3 */

/* A count of operations: evaluated at sizes DIMS as it is added up
   (total), or with DIMS NULL collected as a polynomial in the symbolic
   sizes, to be printed as C (emit_c.c's run-time choice among a body's
   variants). */
typedef struct Term {
  double k;
  int sym[MAX_FACTORS];  /* size indices, ascending; -1 past the last */
} Term;

typedef struct Count {
  const long *dims;
  double total;
  Term *term;
  int nterms, cap;
  Arena *A;
  bool oom;
} Count;

static const Dim ONE = {-1, 1};

// K * A * B * C, each a size.
static void add(Count *n, double k, Dim a, Dim b, Dim c) {
  Dim d[MAX_FACTORS] = {a, b, c};
  if (n->dims) {
    for (int i = 0; i < MAX_FACTORS; i++)
      k *= (double)dim_value(d[i], n->dims);
    n->total += k;
    return;
  }
  Term t = {k, {-1, -1, -1}};
  int m = 0;
  for (int i = 0; i < MAX_FACTORS; i++) {
    if (d[i].sym < 0) {
      t.k *= (double)d[i].n;
      continue;
    }
    int j = m++;
    for (; j > 0 && t.sym[j - 1] > d[i].sym; j--)
      t.sym[j] = t.sym[j - 1];
    t.sym[j] = d[i].sym;
  }
  if (t.k == 0)
    return;
  for (int i = 0; i < n->nterms; i++)
    if (!memcmp(n->term[i].sym, t.sym, sizeof t.sym)) {
      n->term[i].k += t.k;
      return;
    }
  Term *grown = arena_grow(n->A, n->term, n->nterms, &n->cap, sizeof *n->term);
  if (!grown) {
    n->oom = true;
    return;
  }
  n->term = grown;
  n->term[n->nterms++] = t;
}

// Operations per element of N's fused loop.
static double fused_ops(const Plan *p, Node *n, bool top) {
  if (!top && (is_buffer(p, n) || scalar(n) || p->form[n->id] == F_LEAF || n->op == OP_VAR ||
               n->op == OP_SEED))
    return 0;
  double k = n->op == OP_TRANS || n->op == OP_DIAGM || n->op == OP_DIAGV ? 0 : 1;
  return k + (n->a ? fused_ops(p, n->a, false) : 0) + (n->b ? fused_ops(p, n->b, false) : 0);
}

static void matrix_cost(Count *k, const Plan *p, Node *n, bool accumulate) {
  Dim r = n->shape.r, c = n->shape.c;
  if (!accumulate && n->op == OP_SUM)
    return add(k, 1 + fused_ops(p, n->a, false), n->a->shape.r, n->a->shape.c, ONE);
  if (!accumulate && n->op == OP_INV)  // from the factors
    return add(k, 4.0 / 3, r, r, r);
  if (!accumulate && (n->op == OP_SOFTMAX || n->op == OP_LSE || n->op == OP_UNIT))
    return add(k, 3, n->a->shape.r, n->a->shape.c, ONE);
  if (accumulate && in_memory(p, n))
    return add(k, 2, r, c, ONE);
  Node *mapped = accumulate ? NULL : plan_mapped_sum(p, n);
  if (mapped) {  // f(S): S's terms written, then f in place
    matrix_cost(k, p, mapped, false);
    return add(k, 1, r, c, ONE);
  }
  const Terms *terms = p->terms[n->id];
  double per_element = 0;
  int ew = 0;
  bool written = accumulate;  // as emit_c.c's write_sum: the loop, then each gemm
  for (int t = 0; t < terms->n; t++)
    written |= !terms->gemm[t];
  for (int t = 0; t < terms->n; t++) {
    Node *x = terms->node[t];
    Gemm g;
    if (terms->gemm[t] && plan_gemm(p, x, &g)) {
      bool ta, tb;
      Dim kd = g.prod->a->shape.c, rd = g.prod->shape.r;
      // A'*A or A*A' written fresh is syrk: one triangle, r(r+1)k.
      if (!written && plan_strip(p, g.prod->a, &ta) == plan_strip(p, g.prod->b, &tb) && ta != tb) {
        add(k, 1, rd, rd, kd);
        add(k, 1, rd, kd, ONE);
      } else {
        add(k, 2, r, c, kd);
      }
      written = true;
    } else {
      per_element += fused_ops(p, x, x == n);
      ew++;
    }
  }
  per_element += (ew > 1 ? ew - 1 : 0) + (accumulate && ew ? 1 : 0);
  add(k, per_element, r, c, ONE);
}

static void scalar_cost(Count *k, const Plan *p, Node *n) {
  Node *a = n->a;
  if (!a || scalar(a))
    return add(k, 1, ONE, ONE, ONE);
  Dim r = a->shape.r, c = a->shape.c;
  switch (n->op) {
  case OP_SUM: return add(k, 1 + fused_ops(p, plan_strip(p, a, &(bool){0}), false), r, c, ONE);
  case OP_NORM:
  case OP_NORMSQ: return add(k, 2 + fused_ops(p, plan_strip(p, a, &(bool){0}), false), r, c, ONE);
  case OP_LSE: return add(k, 3, r, c, ONE);
  case OP_TR: return p->form[a->id] == F_GEMM ? add(k, 2, r, a->a->shape.c, ONE) : add(k, 1, r, ONE, ONE);
  case OP_DET:
  case OP_LOGDET: return add(k, 1, r, ONE, ONE);  // from the factors
  case OP_MUL: return add(k, 2, c, ONE, ONE);
  default: return add(k, 1, ONE, ONE, ONE);
  }
}

// The operations of body P: its temporaries, the roots added into their
// buffers, and a written matrix root that is not a temporary of its own.
static void plan_flops(Count *k, Ctx *c, const Plan *p) {
  for (int i = 0; i < p->n; i++) {
    Node *n = c->nodes[i];
    Dim r = n->shape.r;
    if (p->lu[i])  // LU, once per matrix that det, logdet and inv read
      add(k, 2.0 / 3, r, r, r);
    // Cholesky, n^3/3, for each det, logdet or inv of a posdef matrix
    // (emit_c.c's chol(): one per reader, outside plan_factorises).
    if ((n->op == OP_DET || n->op == OP_LOGDET || n->op == OP_INV) && !scalar(n->a) &&
        simp_posdef(c, n->a) && (p->form[i] == F_SCALAR || p->form[i] == F_ROOT || is_buffer(p, n)))
      add(k, 1.0 / 3, n->a->shape.r, n->a->shape.r, n->a->shape.r);
    if (p->form[i] == F_SCALAR)
      scalar_cost(k, p, n);
    else if (is_buffer(p, n))
      matrix_cost(k, p, n, false);
  }
  for (int r = p->added; r < p->nroots; r++) {
    Node *g = p->roots[r];
    if (g->op != OP_ZEROS && !scalar(g))
      matrix_cost(k, p, g, true);
    else if (scalar(g))
      add(k, 1, ONE, ONE, ONE);
  }
  for (int r = 0; r < p->added; r++) {
    Node *g = p->roots[r];
    if (!scalar(g) && !is_buffer(p, g) && !is_input(g))
      matrix_cost(k, p, g, false);
  }
}

double cost_plan(Ctx *c, const Plan *p, const long *dims) {
  Count k = {.dims = dims};
  plan_flops(&k, c, p);
  return k.total;
}

const char *cost_plan_c(Emit *e, const Plan *p) {
  Ctx *c = e->c;
  Count k = {.A = &c->arena};
  plan_flops(&k, c, p);
  Buf b = {0};
  for (int i = 0; i < k.nterms; i++) {
    char num[40];
    snprintf(num, sizeof num, "%.17g", k.term[i].k);
    buf_printf(&b, "%s%s%s", i ? " + " : "", num, strpbrk(num, ".en") ? "" : ".0");
    for (int j = 0; j < MAX_FACTORS && k.term[i].sym[j] >= 0; j++)
      buf_printf(&b, "*%s", e->dname[k.term[i].sym[j]]);
  }
  if (!k.nterms)
    buf_puts(&b, "0.0");
  const char *s = k.oom || b.oom ? NULL : arena_strdup(&c->arena, b.s);
  buf_free(&b);
  if (!s)
    e->oom = true;
  return s ? s : "";
}

// The operations of the body of KIND that runs at DIMS: of its variants
// (plan.c), the one this count finds cheapest there.
static double least(Ctx *c, PlanKind kind, const long *dims) {
  const Plan *const *v;
  int n = plan_variants(c, kind, &v);
  double best = -1;
  for (int i = 0; i < n; i++) {
    double f = cost_plan(c, v[i], dims);
    if (best < 0 || f < best)
      best = f;
  }
  return best;
}

double emit_flops(Ctx *c, bool grads, const long *dims) {
  return least(c, grads ? PLAN_GRADS : PLAN_VALUE, dims);
}

double emit_flops_second(Ctx *c, int what, const long *dims) {
  bool hvp = what == ORDER2_HVP;
  if (hvp && !shape_is_scalar(c->out->shape))
    return -1;
  if (hvp ? !c->hvps && !second_hvp(c) : !c->jvp && !second_jvp(c))
    return -1;
  return least(c, hvp ? PLAN_HVP : PLAN_JVP, dims);
}
