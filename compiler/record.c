/*
 * record.c - the bridge from the primal DAG to the runtime's tape, the
 * independent oracle. It records the value's operations numerically, one
 * tape operation per DAG node, and never looks at a symbolic derivative:
 * the tape's own backward pass then gives gradients to hold the emitted
 * code against.
 */
#include <stdlib.h>
#include "matdiff_rt.h"
#include "md.h"

static int record(Ctx *c, mdrt_tape *t, Node *n, const long *dims, int *h) {
  int a = n->a ? h[n->a->id] : -1, b = n->b ? h[n->b->id] : -1;
  long r = dim_value(n->shape.r, dims), cols = dim_value(n->shape.c, dims);
  (void)c;
  switch (n->op) {
  case OP_NUM: return mdrt_tape_const(t, 1, 1, &n->num);
  case OP_ZEROS: return mdrt_tape_const(t, r, cols, NULL);
  case OP_DIM: {
    double v = (double)dims[n->k];
    return mdrt_tape_const(t, 1, 1, &v);
  }
  case OP_ONES:
  case OP_EYE: {
    long len = size_mul(r, cols);
    double *m = len > 0 ? calloc((size_t)len, sizeof *m) : NULL;
    if (!m)
      return -1;
    for (long i = 0; i < len; i++)
      m[i] = n->op == OP_ONES || i / cols == i % cols;
    int k = mdrt_tape_const(t, r, cols, m);
    free(m);
    return k;
  }
  case OP_ADD: return mdrt_tape_binary(t, MDRT_ADD, a, b);
  case OP_SUB: return mdrt_tape_binary(t, MDRT_SUB, a, b);
  case OP_MUL:
    if (shape_is_scalar(n->a->shape) || shape_is_scalar(n->b->shape))
      return mdrt_tape_binary(t, MDRT_EMUL, a, b);
    return mdrt_tape_binary(t, MDRT_MATMUL, a, b);
  case OP_DIV:
  case OP_EDIV: return mdrt_tape_binary(t, MDRT_EDIV, a, b);
  case OP_EMUL: return mdrt_tape_binary(t, MDRT_EMUL, a, b);
  case OP_POW:
  case OP_EPOW: return mdrt_tape_binary(t, MDRT_EPOW, a, b);
  case OP_TRANS: return mdrt_tape_unary(t, MDRT_TRANSPOSE, a, 0);
  case OP_SUM: return mdrt_tape_unary(t, MDRT_SUM, a, n->k);
  case OP_NORM: return mdrt_tape_unary(t, MDRT_NORM2, a, 0);
  case OP_NORMSQ: return mdrt_tape_unary(t, MDRT_SUMSQ, a, 0);
  case OP_LSE: return mdrt_tape_unary(t, MDRT_LOGSUMEXP, a, n->k);
  case OP_SOFTMAX: return mdrt_tape_unary(t, MDRT_SOFTMAX, a, n->k);
  case OP_TR: return mdrt_tape_unary(t, MDRT_TRACE, a, 0);
  case OP_DET: return mdrt_tape_unary(t, MDRT_DET, a, 0);
  case OP_LOGDET: return mdrt_tape_unary(t, MDRT_LOGDET, a, 0);
  case OP_INV: return mdrt_tape_unary(t, MDRT_INV, a, 0);
  case OP_DIAGM:
  case OP_DIAGV: return mdrt_tape_unary(t, MDRT_DIAG, a, 0);
  case OP_EXP: return mdrt_tape_unary(t, MDRT_EXP, a, 0);
  case OP_LOG: return mdrt_tape_unary(t, MDRT_LOG, a, 0);
  case OP_SQRT: return mdrt_tape_unary(t, MDRT_SQRT, a, 0);
  case OP_SIN: return mdrt_tape_unary(t, MDRT_SIN, a, 0);
  case OP_COS: return mdrt_tape_unary(t, MDRT_COS, a, 0);
  case OP_TAN: return mdrt_tape_unary(t, MDRT_TAN, a, 0);
  case OP_TANH: return mdrt_tape_unary(t, MDRT_TANH, a, 0);
  case OP_SIGMOID: return mdrt_tape_unary(t, MDRT_SIGMOID, a, 0);
  case OP_RELU: return mdrt_tape_unary(t, MDRT_RELU, a, 0);
  case OP_SOFTPLUS: return mdrt_tape_unary(t, MDRT_SOFTPLUS, a, 0);
  case OP_ABS: return mdrt_tape_unary(t, MDRT_ABS, a, 0);
  case OP_SIGN: return mdrt_tape_unary(t, MDRT_SIGN, a, 0);
  case OP_ASIN: return mdrt_tape_unary(t, MDRT_ASIN, a, 0);
  case OP_ACOS: return mdrt_tape_unary(t, MDRT_ACOS, a, 0);
  case OP_ATAN: return mdrt_tape_unary(t, MDRT_ATAN, a, 0);
  case OP_SEED:  /* not part of any value: the seed goes to mdrt_tape_backward */
  case OP_VAR:
  case OP_COUNT: break;
  }
  return -1;
}

// The seed of a gradient DAG: SEED, or all ones.
static int record_seed(mdrt_tape *t, const Node *n, const long *dims, const double *seed) {
  long r = dim_value(n->shape.r, dims), cols = dim_value(n->shape.c, dims), len = size_mul(r, cols);
  if (seed)
    return mdrt_tape_const(t, r, cols, seed);
  double *ones = len > 0 ? malloc(sizeof *ones * (size_t)len) : NULL;
  if (!ones)
    return -1;
  for (long i = 0; i < len; i++)
    ones[i] = 1;
  int k = mdrt_tape_const(t, r, cols, ones);
  free(ones);
  return k;
}

int record_nodes(Ctx *c, mdrt_tape *t, const long *dims, const double *const *inputs,
                 Node *const *roots, int nroots, const double *seed, int *leaves, int *h) {
  int n = 0;
  for (int r = 0; r < nroots; r++)
    n = roots[r]->id >= n ? roots[r]->id + 1 : n;
  char *need = calloc((size_t)n + 1, 1);
  if (!need)
    return -1;
  int rc = -1;
  for (int i = 0; i < n; i++)
    h[i] = -1;
  for (int i = 0; i < c->nvars; i++) {
    Var *v = &c->vars[i];
    leaves[i] = mdrt_tape_leaf(t, dim_value(v->shape.r, dims), dim_value(v->shape.c, dims), inputs[i]);
    if (leaves[i] < 0)
      goto done;
    if (v->node->id < n)
      h[v->node->id] = leaves[i];
  }
  for (int r = 0; r < nroots; r++)
    ast_mark(c, roots[r], need);
  for (int i = 0; i < n; i++) {
    Node *p = c->nodes[i];
    if (need[i] && p->op != OP_VAR &&
        (h[i] = p->op == OP_SEED ? record_seed(t, p, dims, seed) : record(c, t, p, dims, h)) < 0)
      goto done;
  }
  rc = 0;
done:
  free(need);
  return rc;
}

int record_on_tape(Ctx *c, mdrt_tape *t, const long *dims, const double *const *inputs, int *leaves) {
  int *h = malloc(sizeof *h * (size_t)(c->out->id + 1)), out = -1;
  if (h && record_nodes(c, t, dims, inputs, &c->out, 1, NULL, leaves, h) == 0)
    out = h[c->out->id];
  free(h);
  return out;
}
