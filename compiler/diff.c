/*
 * diff.c - symbolic reverse mode. The output's adjoint is the seed; the
 * DAG is walked once in reverse topological order (decreasing node id),
 * and each node hands its adjoint G to its operands through the one rule
 * for its op below. Adjoints are DAG nodes too: the result is one
 * expression per wrt variable, which simplify.c then cleans up.
 */
#include <stdio.h>
#include <stdlib.h>
#include "md.h"

typedef struct Diff {
  Ctx *c;
  Node **adj;        /* by node id: the adjoint so far, NULL for none */
  Op op;             /* the op whose rule is running */
} Diff;

static Node *op(Diff *d, Op o, Node *a, Node *b) { return ast_op(d->c, o, a, b); }
static Node *num(Diff *d, double v) { return ast_num(d->c, v); }

// A broadcast operand's gradient is summed back to its own shape: the one
// place this happens. A scalar added to a matrix receives sum(G), a 1 x m
// row sum(G, 1), an n x 1 column sum(G, 2).
static Node *unbroadcast(Diff *d, Node *g, Shape to) {
  if (!g || shape_eq(g->shape, to))
    return g;
  if (shape_is_scalar(to))
    return op(d, OP_SUM, g, NULL);
  return ast_opk(d->c, OP_SUM, g, NULL, shape_is_column(to) ? 2 : 1);
}

// G spread over SHAPE: the other direction of unbroadcast.
static Node *spread(Diff *d, Node *g, Shape shape) {
  if (!g || shape_eq(g->shape, shape))
    return g;
  return op(d, shape_is_scalar(g->shape) ? OP_MUL : OP_EMUL, g, ast_fill(d->c, OP_ONES, shape));
}

static void add(Diff *d, Node *n, Node *g) {
  g = unbroadcast(d, g, n->shape);
  if (!g) {
    char what[64];
    snprintf(what, sizeof what, "the derivative rule of '%s'", op_spelling[d->op]);
    ast_error(d->c, (Loc){-1, -1}, what);
    return;
  }
  d->adj[n->id] = d->adj[n->id] ? op(d, OP_ADD, d->adj[n->id], g) : g;
}

static bool is_scalar(const Node *n) { return shape_is_scalar(n->shape); }

// sum(A .* B), the derivative of a scaling by a scalar.
static Node *dot(Diff *d, Node *a, Node *b) { return op(d, OP_SUM, op(d, OP_EMUL, a, b), NULL); }

/* The rules: node N = op(A, B) with adjoint G. There is no default: -Wswitch
   names an op without a rule. */
static void rule(Diff *d, Node *n, Node *g) {
  Node *a = n->a, *b = n->b;
  d->op = n->op;
  switch (n->op) {
#define OP(...)
#define LEAF(name, ...) case OP_##name:
#include "ops.h"
  case OP_COUNT:  /* a leaf: nothing lies below it */
    break;
  case OP_ADD:  /* C = A + B:  dA += G,  dB += G */
    add(d, a, g);
    add(d, b, g);
    break;
  case OP_SUB:  /* C = A - B:  dA += G,  dB += -G */
    add(d, a, g);
    add(d, b, op(d, OP_MUL, num(d, -1), g));
    break;
  case OP_MUL:
    if (is_scalar(a) && !is_scalar(b)) {
      /* C = s*B:  ds += sum(G.*B),  dB += s*G */
      add(d, a, dot(d, g, b));
      add(d, b, op(d, OP_MUL, a, g));
    } else if (is_scalar(b) && !is_scalar(a)) {
      /* C = A*s:  dA += G*s,  ds += sum(G.*A) */
      add(d, a, op(d, OP_MUL, g, b));
      add(d, b, dot(d, g, a));
    } else if (is_scalar(a)) {
      /* c = a*b (scalars):  da += g*b,  db += a*g */
      add(d, a, op(d, OP_MUL, g, b));
      add(d, b, op(d, OP_MUL, a, g));
    } else {
      /* C = A*B:  dA += G*B',  dB += A'*G */
      add(d, a, op(d, OP_MUL, g, op(d, OP_TRANS, b, NULL)));
      add(d, b, op(d, OP_MUL, op(d, OP_TRANS, a, NULL), g));
    }
    break;
  case OP_DIV:  /* C = A/s:  dA += G/s,  ds += -sum(G.*A)/s^2 */
    add(d, a, op(d, OP_DIV, g, b));
    add(d, b, op(d, OP_DIV, op(d, OP_MUL, num(d, -1), is_scalar(a) ? op(d, OP_MUL, g, a) : dot(d, g, a)),
                 op(d, OP_POW, b, num(d, 2))));
    break;
  case OP_EMUL: /* C = A.*B:  dA += G.*B,  dB += G.*A */
    add(d, a, op(d, OP_EMUL, g, b));
    add(d, b, op(d, OP_EMUL, g, a));
    break;
  case OP_EDIV: /* C = A./B:  dA += G./B,  dB += -G.*A./B.^2 */
    add(d, a, op(d, OP_EDIV, g, b));
    add(d, b, op(d, OP_MUL, num(d, -1),
                 op(d, OP_EDIV, op(d, OP_EMUL, g, a), op(d, OP_EPOW, b, num(d, 2)))));
    break;
  case OP_POW:  /* c = a^p:  da += g*p*a^(p-1),  dp += g*log(a)*a^p */
  case OP_EPOW: /* C = A.^P: dA += G.*P.*A.^(P-1),  dP += G.*log(A).*A.^P */
    if (n->op == OP_POW) {
      add(d, a, op(d, OP_MUL, g, op(d, OP_MUL, b, op(d, OP_POW, a, op(d, OP_SUB, b, num(d, 1))))));
      if (b->op != OP_NUM)
        add(d, b, op(d, OP_MUL, g, op(d, OP_MUL, op(d, OP_LOG, a, NULL), n)));
    } else {
      add(d, a, op(d, OP_EMUL, g, op(d, OP_EMUL, b, op(d, OP_EPOW, a, op(d, OP_SUB, b, num(d, 1))))));
      if (b->op != OP_NUM)
        add(d, b, op(d, OP_EMUL, g, op(d, OP_EMUL, op(d, OP_LOG, a, NULL), n)));
    }
    break;
  case OP_TRANS: /* C = A':  dA += G' */
    add(d, a, op(d, OP_TRANS, g, NULL));
    break;
  case OP_SUM:   /* c = sum(A, k):  dA += G spread back over A's shape */
    add(d, a, spread(d, g, a->shape));
    break;
  case OP_NORM:  /* c = ||A||:  dA += (g/||A||)*A */
    add(d, a, op(d, OP_MUL, op(d, OP_DIV, g, n), a));
    break;
  case OP_NORMSQ: /* c = ||A||^2:  dA += 2*g*A */
    add(d, a, op(d, OP_MUL, op(d, OP_MUL, num(d, 2), g), a));
    break;
  case OP_LSE:   /* c = logsumexp(A, k):  dA += G .* exp(A - c), spread */
    add(d, a, op(d, OP_EMUL, spread(d, g, a->shape), op(d, OP_EXP, op(d, OP_SUB, a, n), NULL)));
    break;
  case OP_SOFTMAX: /* S = softmax(A, 2):  dA += S .* (G - sum(G .* S, 2)) */
    add(d, a, op(d, OP_EMUL, n, op(d, OP_SUB, g, ast_opk(d->c, OP_SUM, op(d, OP_EMUL, g, n), NULL, 2))));
    break;
  case OP_TR:    /* c = tr(A):  dA += g*eye */
    add(d, a, op(d, OP_MUL, g, ast_fill(d->c, OP_EYE, a->shape)));
    break;
  case OP_DET:   /* c = det(A):  dA += g*det(A)*inv(A)' */
    add(d, a, op(d, OP_MUL, op(d, OP_MUL, g, n), op(d, OP_TRANS, op(d, OP_INV, a, NULL), NULL)));
    break;
  case OP_LOGDET: /* c = log|det A|:  dA += g*inv(A)' */
    add(d, a, op(d, OP_MUL, g, op(d, OP_TRANS, op(d, OP_INV, a, NULL), NULL)));
    break;
  case OP_INV: { /* C = inv(A):  dA += -C'*G*C' */
    Node *ct = op(d, OP_TRANS, n, NULL);
    add(d, a, op(d, OP_MUL, num(d, -1), op(d, OP_MUL, op(d, OP_MUL, ct, g), ct)));
    break;
  }
  case OP_DIAGM: /* C = diag(v):  dv += diag(G) */
    add(d, a, op(d, OP_DIAGV, g, NULL));
    break;
  case OP_DIAGV: /* c = diag(A):  dA += diag(G) */
    add(d, a, op(d, OP_DIAGM, g, NULL));
    break;
  case OP_EXP:   /* C = exp(A):  dA += G.*exp(A) */
    add(d, a, op(d, OP_EMUL, g, n));
    break;
  case OP_LOG:   /* C = log(A):  dA += G./A */
    add(d, a, op(d, OP_EDIV, g, a));
    break;
  case OP_SQRT:  /* C = sqrt(A):  dA += G./(2*sqrt(A)) */
    add(d, a, op(d, OP_EDIV, g, op(d, OP_MUL, num(d, 2), n)));
    break;
  case OP_SIN:   /* dA += G.*cos(A) */
    add(d, a, op(d, OP_EMUL, g, op(d, OP_COS, a, NULL)));
    break;
  case OP_COS:   /* dA += -G.*sin(A) */
    add(d, a, op(d, OP_MUL, num(d, -1), op(d, OP_EMUL, g, op(d, OP_SIN, a, NULL))));
    break;
  case OP_TAN:   /* dA += G.*(1 + tan(A).^2) */
    add(d, a, op(d, OP_EMUL, g, op(d, OP_ADD, num(d, 1), op(d, OP_EPOW, n, num(d, 2)))));
    break;
  case OP_TANH:  /* dA += G.*(1 - tanh(A).^2) */
    add(d, a, op(d, OP_EMUL, g, op(d, OP_SUB, num(d, 1), op(d, OP_EPOW, n, num(d, 2)))));
    break;
  case OP_SIGMOID: /* dA += G.*sigmoid(A).*(1 - sigmoid(A)) */
    add(d, a, op(d, OP_EMUL, g, op(d, OP_EMUL, n, op(d, OP_SUB, num(d, 1), n))));
    break;
  case OP_RELU:  /* dA += G.*sign(relu(A)): the step, 0 at 0 */
    add(d, a, op(d, OP_EMUL, g, op(d, OP_SIGN, n, NULL)));
    break;
  case OP_SOFTPLUS: /* dA += G.*sigmoid(A) */
    add(d, a, op(d, OP_EMUL, g, op(d, OP_SIGMOID, a, NULL)));
    break;
  case OP_ABS:   /* dA += G.*sign(A): 0 at 0 */
    add(d, a, op(d, OP_EMUL, g, op(d, OP_SIGN, a, NULL)));
    break;
  case OP_SIGN:  /* constant almost everywhere: nothing */
    break;
  case OP_ASIN:  /* dA += G./sqrt(1 - A.^2) */
  case OP_ACOS:  /* dA += -G./sqrt(1 - A.^2) */
    add(d, a, op(d, OP_MUL, num(d, n->op == OP_ASIN ? 1 : -1),
                 op(d, OP_EDIV, g, op(d, OP_SQRT, op(d, OP_SUB, num(d, 1), op(d, OP_EPOW, a, num(d, 2))), NULL))));
    break;
  case OP_ATAN:  /* dA += G./(1 + A.^2) */
    add(d, a, op(d, OP_EDIV, g, op(d, OP_ADD, num(d, 1), op(d, OP_EPOW, a, num(d, 2)))));
    break;
  case OP_ERF:   /* dA += G.*(2/sqrt(pi))*exp(-A.^2) */
    add(d, a, op(d, OP_EMUL, g, op(d, OP_MUL, num(d, 1.1283791670955126),
                                   op(d, OP_EXP, op(d, OP_MUL, num(d, -1), op(d, OP_EPOW, a, num(d, 2))), NULL))));
    break;
  }
}

void diff_program(Ctx *c, Node *seed) {
  Diff d = {.c = c};
  int n = c->nnodes;
  d.adj = arena_alloc(&c->arena, sizeof(Node *) * (size_t)n);
  c->grads = arena_alloc(&c->arena, sizeof(Node *) * (size_t)(c->nvars ? c->nvars : 1));
  if (!d.adj || !c->grads) {
    ctx_error(c, (Loc){-1, -1}, "out of memory");
    return;
  }
  // A node has an adjoint only if the output depends on it; those are
  // visited in decreasing id order, a topological order of the DAG.
  d.adj[c->out->id] = seed;
  for (int i = c->out->id; i >= 0; i--)
    if (d.adj[i])
      rule(&d, c->nodes[i], d.adj[i]);
  for (int i = 0; i < c->nvars; i++)
    if (c->vars[i].wrt) {
      Node *v = c->vars[i].node;
      c->grads[i] = v->id < n && d.adj[v->id] ? d.adj[v->id] : ast_fill(c, OP_ZEROS, v->shape);
    }
}
