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

/* Each op's operation on the tape (ops.h's tape column); none for a leaf,
   which the tape holds as a constant, or an elementwise function, which it
   knows by name. */
#define MDRT_NONE (-1)
static const int tape_op[OP_COUNT] = {
#define OP(name, spelling, arity, prec, class, tape, ...) [OP_##name] = MDRT_##tape,
#include "ops.h"
};

static int record(mdrt_tape *t, Node *n, const long *dims, int *h) {
  int a = n->a ? h[n->a->id] : -1, b = n->b ? h[n->b->id] : -1;
  long r = dim_value(n->shape.r, dims), cols = dim_value(n->shape.c, dims);
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
  case OP_MUL:  // scaling by a scalar is elementwise on the tape
    if (shape_is_scalar(n->a->shape) || shape_is_scalar(n->b->shape))
      return mdrt_tape_binary(t, MDRT_EMUL, a, b);
    break;
  default:
    break;
  }
  if (op_class[n->op] == SC_MAP)
    return mdrt_tape_map(t, op_spelling[n->op], a);
  if (tape_op[n->op] == MDRT_NONE)  // an input or the seed: never recorded here
    return -1;
  return op_arity[n->op] == 2 ? mdrt_tape_binary(t, tape_op[n->op], a, b)
                              : mdrt_tape_unary(t, tape_op[n->op], a, n->k);
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

int record_dag(Ctx *c, mdrt_tape *t, const Node *root, const long *dims, int *h) {
  char *need = calloc((size_t)root->id + 1, 1);
  if (!need)
    return -1;
  ast_mark(c, root, need);
  int out = 0;
  for (int i = 0; i <= root->id && out >= 0; i++)
    if (need[i] && h[i] < 0)
      out = h[i] = record(t, c->nodes[i], dims, h);  // an input or seed not given: -1
  free(need);
  return out < 0 ? -1 : h[root->id];
}

int record_nodes(Ctx *c, mdrt_tape *t, const long *dims, const double *const *inputs,
                 Node *const *roots, int nroots, const double *seed, int *leaves, int *h) {
  int n = 0;
  for (int r = 0; r < nroots; r++)
    n = roots[r]->id >= n ? roots[r]->id + 1 : n;
  for (int i = 0; i < n; i++)
    h[i] = -1;
  for (int i = 0; i < c->nvars; i++) {
    Var *v = &c->vars[i];
    leaves[i] = mdrt_tape_leaf(t, dim_value(v->shape.r, dims), dim_value(v->shape.c, dims), inputs[i]);
    if (leaves[i] < 0)
      return -1;
    if (v->node->id < n)
      h[v->node->id] = leaves[i];
  }
  // The seed, wherever a gradient reads it; then every root.
  for (int i = 0; i < n; i++)
    if (c->nodes[i]->op == OP_SEED && (h[i] = record_seed(t, c->nodes[i], dims, seed)) < 0)
      return -1;
  for (int r = 0; r < nroots; r++)
    if (record_dag(c, t, roots[r], dims, h) < 0)
      return -1;
  return 0;
}

int record_on_tape(Ctx *c, mdrt_tape *t, const long *dims, const double *const *inputs, int *leaves) {
  int *h = malloc(sizeof *h * (size_t)(c->out->id + 1)), out = -1;
  if (h && record_nodes(c, t, dims, inputs, &c->out, 1, NULL, leaves, h) == 0)
    out = h[c->out->id];
  free(h);
  return out;
}
