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
 */
#include <math.h>
#include "emit.h"

static double numel(Shape s, const long *dims) {
  return (double)dim_value(s.r, dims) * (double)dim_value(s.c, dims);
}

// Operations per element of N's fused loop.
static double fused_ops(const Plan *p, Node *n, bool top) {
  if (!top && (is_buffer(p, n) || scalar(n) || p->form[n->id] == F_LEAF || n->op == OP_VAR ||
               n->op == OP_SEED))
    return 0;
  double k = n->op == OP_TRANS || n->op == OP_DIAGM || n->op == OP_DIAGV ? 0 : 1;
  return k + (n->a ? fused_ops(p, n->a, false) : 0) + (n->b ? fused_ops(p, n->b, false) : 0);
}

static double matrix_cost(const Plan *p, Node *n, bool accumulate, const long *dims) {
  double len = numel(n->shape, dims);
  if (!accumulate && n->op == OP_SUM)
    return numel(n->a->shape, dims) * (1 + fused_ops(p, n->a, false));
  if (!accumulate && n->op == OP_INV)  // from the factors
    return 4 * pow((double)dim_value(n->shape.r, dims), 3) / 3;
  if (!accumulate && (n->op == OP_SOFTMAX || n->op == OP_LSE || n->op == OP_UNIT))
    return 3 * numel(n->a->shape, dims);
  if (accumulate && in_memory(p, n))
    return 2 * len;
  const Terms *terms = p->terms[n->id];
  double cost = 0;
  int ew = 0;
  bool written = accumulate;  // as emit_c.c's write_sum: the loop, then each gemm
  for (int t = 0; t < terms->n; t++)
    written |= !terms->gemm[t];
  for (int t = 0; t < terms->n; t++) {
    Node *x = terms->node[t];
    Gemm g;
    if (terms->gemm[t] && plan_gemm(p, x, &g)) {
      bool ta, tb;
      double k = (double)dim_value(g.prod->a->shape.c, dims),
             r = (double)dim_value(g.prod->shape.r, dims);
      // A'*A or A*A' written fresh is syrk: one triangle, r(r+1)k.
      if (!written && plan_strip(p, g.prod->a, &ta) == plan_strip(p, g.prod->b, &tb) && ta != tb)
        cost += r * (r + 1) * k;
      else
        cost += 2 * len * k;
      written = true;
    } else {
      cost += len * fused_ops(p, x, x == n);
      ew++;
    }
  }
  cost += len * ((ew > 1 ? ew - 1 : 0) + (accumulate && ew ? 1 : 0));
  return cost;
}

static double scalar_cost(const Plan *p, Node *n, const long *dims) {
  Node *a = n->a;
  if (!a || scalar(a))
    return 1;
  double len = numel(a->shape, dims), r = (double)dim_value(a->shape.r, dims);
  switch (n->op) {
  case OP_SUM: return len * (1 + fused_ops(p, plan_strip(p, a, &(bool){0}), false));
  case OP_NORM:
  case OP_NORMSQ: return len * (2 + fused_ops(p, plan_strip(p, a, &(bool){0}), false));
  case OP_LSE: return 3 * len;
  case OP_TR: return p->form[a->id] == F_GEMM ? 2 * r * (double)dim_value(a->a->shape.c, dims) : r;
  case OP_DET:
  case OP_LOGDET: return r;  // from the factors
  case OP_MUL: return 2 * (double)dim_value(a->shape.c, dims);
  default: return 1;
  }
}

// The operations of body P: its temporaries, the roots added into their
// buffers, and a written matrix root that is not a temporary of its own.
static double plan_flops(Ctx *c, const Plan *p, const long *dims) {
  double cost = 0;
  for (int i = 0; i < p->n; i++) {
    Node *n = c->nodes[i];
    if (p->lu[i])  // LU, once per matrix that det, logdet and inv read
      cost += 2 * pow((double)dim_value(n->shape.r, dims), 3) / 3;
    // Cholesky, n^3/3, for each det, logdet or inv of a posdef matrix
    // (emit_c.c's chol(): one per reader, outside plan_factorises).
    if ((n->op == OP_DET || n->op == OP_LOGDET || n->op == OP_INV) && !scalar(n->a) &&
        simp_posdef(c, n->a) && (p->form[i] == F_SCALAR || p->form[i] == F_ROOT || is_buffer(p, n)))
      cost += pow((double)dim_value(n->a->shape.r, dims), 3) / 3;
    if (p->form[i] == F_SCALAR)
      cost += scalar_cost(p, n, dims);
    else if (is_buffer(p, n))
      cost += matrix_cost(p, n, false, dims);
  }
  for (int r = p->added; r < p->nroots; r++) {
    Node *g = p->roots[r];
    if (g->op != OP_ZEROS && !scalar(g))
      cost += matrix_cost(p, g, true, dims);
    else if (scalar(g))
      cost += 1;
  }
  for (int r = 0; r < p->added; r++) {
    Node *g = p->roots[r];
    if (!scalar(g) && !is_buffer(p, g) && !is_input(g))
      cost += matrix_cost(p, g, false, dims);
  }
  return cost;
}

double emit_flops(Ctx *c, bool grads, const long *dims) {
  const Plan *p = plan_body(c, grads);
  return p ? plan_flops(c, p, dims) : -1;
}

double emit_flops_second(Ctx *c, int what, const long *dims) {
  bool hvp = what == ORDER2_HVP;
  if (hvp && !shape_is_scalar(c->out->shape))
    return -1;
  if (hvp ? !c->hvps && !second_hvp(c) : !c->jvp && !second_jvp(c))
    return -1;
  const Plan *p = plan_second(c, hvp ? PLAN_HVP : PLAN_JVP);
  return p ? plan_flops(c, p, dims) : -1;
}
