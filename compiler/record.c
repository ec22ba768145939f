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
    double *m = calloc((size_t)(r * cols), sizeof *m);
    if (!m)
      return -1;
    for (long i = 0; i < r * cols; i++)
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

int record_on_tape(Ctx *c, mdrt_tape *t, const long *dims, const double *const *inputs, int *leaves) {
  int n = c->out->id + 1, out = -1;
  int *h = malloc(sizeof *h * (size_t)n);
  if (!h)
    return -1;
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
  out = record_dag(c, t, c->out, dims, h);
done:
  free(h);
  return out;
}
