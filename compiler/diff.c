/*
 * diff.c - symbolic differentiation, with two rules per op side by side:
 *
 *   reverse mode  the output's adjoint is the seed; the DAG is walked once
 *                 in reverse topological order (decreasing node id), and
 *                 each node hands its adjoint G to its operands through
 *                 its reverse rule;
 *   forward mode  each variable's tangent is its direction dx (an OP_DIR
 *                 leaf); the DAG is walked once upwards (increasing id),
 *                 and each node's tangent is made from its operands'
 *                 tangents by its tangent rule.
 *
 * An elementwise function has one derivative, f'(A), which both modes
 * multiply in (elementwise()). Adjoints and tangents are DAG nodes too: the
 * results are expressions, which simplify.c then cleans up. Second order
 * (second.c) is forward mode over the gradients reverse mode made.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "md.h"

static bool is_scalar(const Node *n) { return shape_is_scalar(n->shape); }

// G spread over SHAPE: a scalar or a broadcast row or column made whole.
static Node *spread(Ctx *c, Node *g, Shape shape) {
  if (!g || shape_eq(g->shape, shape))
    return g;
  return ast_op(c, is_scalar(g) ? OP_MUL : OP_EMUL, g, ast_fill(c, OP_ONES, shape));
}

// G.*D in reverse mode, D.*G in forward mode: the derivative D is written
// before a tangent (f'(A).*dA) and after an adjoint (G.*f'(A)).
static Node *times(Ctx *c, Node *g, Node *d, bool fwd) {
  return fwd ? ast_op(c, OP_EMUL, d, g) : ast_op(c, OP_EMUL, g, d);
}

/* f'(A) .* G for the elementwise function N = f(A), in the form both modes
   print: reverse mode passes the adjoint as G, forward mode (FWD) the
   operand's tangent. NULL for sign, whose derivative is 0 almost everywhere
   (and for an op that is not elementwise, which no caller passes). There
   is no default: -Wswitch names an elementwise function without its
   derivative. */
static Node *elementwise(Ctx *c, Node *n, Node *g, bool fwd) {
  Node *a = n->a;
  switch (n->op) {
#define OP(name, ...) case OP_##name:
#define MAP(...)
#include "ops.h"
  case OP_COUNT:
  case OP_SIGN:  /* constant almost everywhere */
    return NULL;
  case OP_EXP:   /* exp(A):  G.*exp(A) */
    return times(c, g, n, fwd);
  case OP_LOG:   /* log(A):  G./A */
    return ast_op(c, OP_EDIV, g, a);
  case OP_SQRT:  /* sqrt(A):  G./(2*sqrt(A)) */
    return ast_op(c, OP_EDIV, g, ast_op(c, OP_MUL, ast_num(c, 2), n));
  case OP_SIN:   /* G.*cos(A) */
    return times(c, g, ast_op(c, OP_COS, a, NULL), fwd);
  case OP_COS:   /* -G.*sin(A) */
    return ast_op(c, OP_MUL, ast_num(c, -1), times(c, g, ast_op(c, OP_SIN, a, NULL), fwd));
  case OP_TAN:   /* G.*(1 + tan(A).^2) */
    return times(c, g, ast_op(c, OP_ADD, ast_num(c, 1), ast_op(c, OP_EPOW, n, ast_num(c, 2))), fwd);
  case OP_TANH:  /* G.*(1 - tanh(A).^2) */
    return times(c, g, ast_op(c, OP_SUB, ast_num(c, 1), ast_op(c, OP_EPOW, n, ast_num(c, 2))), fwd);
  case OP_SIGMOID: /* G.*sigmoid(A).*(1 - sigmoid(A)) */
    return times(c, g, ast_op(c, OP_EMUL, n, ast_op(c, OP_SUB, ast_num(c, 1), n)), fwd);
  case OP_RELU:  /* G.*sign(relu(A)): the step, 0 at 0 */
    return times(c, g, ast_op(c, OP_SIGN, n, NULL), fwd);
  case OP_SOFTPLUS: /* G.*sigmoid(A) */
    return times(c, g, ast_op(c, OP_SIGMOID, a, NULL), fwd);
  case OP_ABS:   /* G.*sign(A): 0 at 0 */
    return times(c, g, ast_op(c, OP_SIGN, a, NULL), fwd);
  case OP_ASIN:  /* G./sqrt(1 - A.^2) */
  case OP_ACOS:  /* -G./sqrt(1 - A.^2) */
    return ast_op(c, OP_MUL, ast_num(c, n->op == OP_ASIN ? 1 : -1),
                  ast_op(c, OP_EDIV, g, ast_op(c, OP_SQRT, ast_op(c, OP_SUB, ast_num(c, 1),
                                                                  ast_op(c, OP_EPOW, a, ast_num(c, 2))), NULL)));
  case OP_ATAN:  /* G./(1 + A.^2) */
    return ast_op(c, OP_EDIV, g, ast_op(c, OP_ADD, ast_num(c, 1), ast_op(c, OP_EPOW, a, ast_num(c, 2))));
  case OP_ERF:   /* G.*(2/sqrt(pi))*exp(-A.^2) */
    return times(c, g, ast_op(c, OP_MUL, ast_num(c, 1.1283791670955126),
                              ast_op(c, OP_EXP, ast_op(c, OP_MUL, ast_num(c, -1),
                                                       ast_op(c, OP_EPOW, a, ast_num(c, 2))), NULL)),
                 fwd);
  }
  return NULL;
}

/* ---- reverse mode --------------------------------------------------------- */

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

// The name of the rule that failed to build a node, for the error.
static void rule_failed(Ctx *c, Op o, const char *mode) {
  char what[64];
  snprintf(what, sizeof what, "the %s rule of '%s'", mode, op_spelling[o]);
  ast_error(c, (Loc){-1, -1}, what);
}

static void add(Diff *d, Node *n, Node *g) {
  g = unbroadcast(d, g, n->shape);
  if (!g) {
    rule_failed(d->c, d->op, "derivative");
    return;
  }
  d->adj[n->id] = d->adj[n->id] ? op(d, OP_ADD, d->adj[n->id], g) : g;
}

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
#define OP(...)
#define MAP(name, ...) case OP_##name:
#include "ops.h"
    /* C = f(A) elementwise:  dA += G.*f'(A) (elementwise() above) */
    if (n->op != OP_SIGN)
      add(d, a, elementwise(d->c, n, g, false));
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
    add(d, a, spread(d->c, g, a->shape));
    break;
  case OP_NORM:  /* c = ||A||:  dA += g*U, U = A/||A|| (0 at A = 0) */
    add(d, a, op(d, OP_MUL, g, op(d, OP_UNIT, a, NULL)));
    break;
  case OP_UNIT: { /* U = A/||A||:  dA += (G - sum(G.*A)*A/||A||^2)/||A|| */
    /* = (G - U*sum(U.*G))/||A||, in A: U jumps at A = 0, where this is not
       defined either way, and so it prints as it did before U had an op */
    Node *norm = op(d, OP_NORM, a, NULL);
    add(d, a, op(d, OP_DIV, op(d, OP_SUB, g, op(d, OP_DIV, op(d, OP_MUL, dot(d, g, a), a),
                                                 op(d, OP_POW, norm, num(d, 2)))), norm));
    break;
  }
  case OP_NORMSQ: /* c = ||A||^2:  dA += 2*g*A */
    add(d, a, op(d, OP_MUL, op(d, OP_MUL, num(d, 2), g), a));
    break;
  case OP_LSE:   /* c = logsumexp(A, k):  dA += G .* exp(A - c), spread */
    add(d, a, op(d, OP_EMUL, spread(d->c, g, a->shape), op(d, OP_EXP, op(d, OP_SUB, a, n), NULL)));
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
      Node *g = v->id < n && d.adj[v->id] ? d.adj[v->id] : ast_fill(c, OP_ZEROS, v->shape);
      // A symmetric variable's gradient is the one in the space of symmetric
      // matrices: the projection (G + G')/2 of the gradient over all
      // matrices, G (docs/LANGUAGE.md). The simplifier takes it back to G
      // when G is known symmetric.
      if (g && c->vars[i].symmetric)
        g = ast_op(c, OP_DIV, ast_op(c, OP_ADD, g, ast_op(c, OP_TRANS, g, NULL)), ast_num(c, 2));
      c->grads[i] = g;
    }
}

/* ---- forward mode ---------------------------------------------------------- */

/* The direction of variable x is printed dx: "d" and its name. When the
   program already has that name (a variable, a size, an intermediate or
   the output), or another direction took it, it is dx_1, dx_2, ..., the
   first that is free; variables are named in declaration order. */
bool diff_name_directions(Ctx *c) {
  if (c->dirnames)
    return true;
  char **names = arena_alloc(&c->arena, sizeof *names * (size_t)(c->nvars ? c->nvars : 1));
  Names taken = {0};
  if (!names)
    return ctx_error(c, (Loc){-1, -1}, "out of memory");
  for (int i = 0; i < c->nvars; i++) {
    char *name = arena_printf(&c->arena, "d%s", c->vars[i].name);
    for (int k = 1; name && (names_get(&c->varidx, name) >= 0 || names_get(&c->dimidx, name) >= 0 ||
                             names_get(&c->letidx, name) >= 0 || names_get(&taken, name) >= 0);
         k++)
      name = arena_printf(&c->arena, "d%s_%d", c->vars[i].name, k);
    if (!name || !names_put(&c->arena, &taken, name, i))
      return ctx_error(c, (Loc){-1, -1}, "out of memory");
    names[i] = name;
  }
  c->dirnames = names;
  return true;
}

typedef struct Fwd {
  Ctx *c;
  Node **tan;        /* by node id: the tangent, NULL for zero */
  int only;          /* the variable whose direction is taken, or -1: every wrt one */
  bool failed;       /* a node could not be made */
} Fwd;

// A node from operands that may be NULL, standing for zero: NULL when the
// product of a zero is wanted, or when making it failed (F->failed then).
static Node *mk(Fwd *f, Op o, Node *a, Node *b) { return ast_op_nz(f->c, o, a, b, &f->failed); }

static Node *mkk(Fwd *f, Op o, Node *a, long k) {
  if (!a)
    return NULL;
  Node *n = ast_opk(f->c, o, a, NULL, k);
  f->failed |= !n;
  return n;
}

static Node *plus(Fwd *f, Node *a, Node *b) { return !a ? b : !b ? a : mk(f, OP_ADD, a, b); }

// -A, with -(k*A) = (-k)*A and -(A/s) = (-A)/s: a rule's minus sign meets
// the one its operand's tangent may carry, and no "- -" is left over.
static Node *negate(Fwd *f, Node *a) {
  if (a && a->op == OP_MUL && a->a->op == OP_NUM)
    return ast_is_num(a->a, -1) ? a->b : mk(f, OP_MUL, ast_num(f->c, -a->a->num), a->b);
  if (a && (a->op == OP_DIV || a->op == OP_EDIV))
    return mk(f, a->op, negate(f, a->a), a->b);
  return mk(f, OP_MUL, ast_num(f->c, -1), a);
}

static Node *minus(Fwd *f, Node *a, Node *b) {
  return !b ? a : !a ? negate(f, b) : mk(f, OP_SUB, a, b);
}

/* The rules: the tangent of node N = op(A, B) from the tangents dA and dB
   of its operands (NULL for zero). There is no default: -Wswitch names an
   op without a rule. */
static Node *tangent(Fwd *f, Node *n) {
  Ctx *c = f->c;
  Node *a = n->a, *b = n->b;
  Node *da = a ? f->tan[a->id] : NULL, *db = b ? f->tan[b->id] : NULL;
  switch (n->op) {
#define OP(...)
#define LEAF(name, ...) case OP_##name:
#include "ops.h"
  case OP_COUNT:
    /* x:  dx, for a variable differentiated; any other leaf is constant */
    if (n->op == OP_VAR && c->vars[n->k].wrt && (f->only < 0 || f->only == n->k))
      return ast_dir(c, (int)n->k);
    return NULL;
#define OP(...)
#define MAP(name, ...) case OP_##name:
#include "ops.h"
    /* C = f(A) elementwise:  dC = f'(A).*dA (elementwise() above) */
    if (!da || n->op == OP_SIGN)
      return NULL;
    Node *t = elementwise(c, n, da, true);
    f->failed |= !t;
    return t;
  case OP_ADD:  /* C = A + B:  dC = dA + dB */
    return plus(f, da, db);
  case OP_SUB:  /* C = A - B:  dC = dA - dB */
    return minus(f, da, db);
  case OP_MUL:  /* C = A*B:  dC = dA*B + A*dB (a scalar side scales) */
    return plus(f, mk(f, OP_MUL, da, b), mk(f, OP_MUL, a, db));
  case OP_DIV:  /* C = A/s:  dC = (dA - C*ds)/s */
    return mk(f, OP_DIV, minus(f, da, mk(f, OP_MUL, n, db)), b);
  case OP_EMUL: /* C = A.*B:  dC = dA.*B + A.*dB */
    return plus(f, mk(f, OP_EMUL, da, b), mk(f, OP_EMUL, a, db));
  case OP_EDIV: /* C = A./B:  dC = (dA - C.*dB)./B */
    return mk(f, OP_EDIV, minus(f, da, mk(f, OP_EMUL, n, db)), b);
  case OP_POW:  /* c = a^p:  dc = p*a^(p-1)*da + log(a)*c*dp */
    return plus(f, mk(f, OP_MUL, mk(f, OP_MUL, b, mk(f, OP_POW, a, mk(f, OP_SUB, b, ast_num(c, 1)))), da),
                mk(f, OP_MUL, mk(f, OP_MUL, mk(f, OP_LOG, a, NULL), n), db));
  case OP_EPOW: /* C = A.^P:  dC = P.*A.^(P-1).*dA + log(A).*C.*dP */
    return plus(f, mk(f, OP_EMUL, mk(f, OP_EMUL, b, mk(f, OP_EPOW, a, mk(f, OP_SUB, b, ast_num(c, 1)))), da),
                mk(f, OP_EMUL, mk(f, OP_EMUL, mk(f, OP_LOG, a, NULL), n), db));
  case OP_TRANS: /* C = A':  dC = dA' */
    return mk(f, OP_TRANS, da, NULL);
  case OP_SUM:   /* c = sum(A, k):  dc = sum(dA, k) */
    return mkk(f, OP_SUM, da, n->k);
  case OP_NORM:  /* c = ||A||:  dc = sum(A.*dA)/c, not sum(U.*dA): at A = 0 the
                    JVP is NaN, where the gradient takes 0, so that the JVP and
                    the Jacobians made of it print as they did */
    return mk(f, OP_DIV, mk(f, OP_SUM, mk(f, OP_EMUL, a, da), NULL), n);
  case OP_UNIT: { /* U = A/||A||:  dU = (dA - A*sum(A.*dA)/||A||^2)/||A|| */
    /* = (dA - U*sum(U.*dA))/||A||, in A as the reverse rule is */
    Node *norm = mk(f, OP_NORM, a, NULL);
    return mk(f, OP_DIV, minus(f, da, mk(f, OP_DIV, mk(f, OP_MUL, mk(f, OP_SUM, mk(f, OP_EMUL, a, da), NULL), a),
                                        mk(f, OP_POW, norm, ast_num(c, 2)))), norm);
  }
  case OP_NORMSQ: /* c = ||A||^2:  dc = 2*sum(A.*dA) */
    return mk(f, OP_MUL, ast_num(c, 2), mk(f, OP_SUM, mk(f, OP_EMUL, a, da), NULL));
  case OP_LSE:   /* c = logsumexp(A, k):  dc = sum(exp(A - c).*dA, k) */
    return mkk(f, OP_SUM, mk(f, OP_EMUL, mk(f, OP_EXP, mk(f, OP_SUB, a, n), NULL), da), n->k);
  case OP_SOFTMAX: /* S = softmax(A, 2):  dS = S.*(dA - sum(S.*dA, 2)) */
    return mk(f, OP_EMUL, n, minus(f, da, mkk(f, OP_SUM, mk(f, OP_EMUL, n, da), 2)));
  case OP_TR:    /* c = tr(A):  dc = tr(dA) */
    return mk(f, OP_TR, da, NULL);
  case OP_DET:   /* c = det(A):  dc = det(A)*tr(inv(A)*dA) */
    return mk(f, OP_MUL, n, mk(f, OP_TR, mk(f, OP_MUL, mk(f, OP_INV, a, NULL), da), NULL));
  case OP_LOGDET: /* c = log|det A|:  dc = tr(inv(A)*dA) */
    return mk(f, OP_TR, mk(f, OP_MUL, mk(f, OP_INV, a, NULL), da), NULL);
  case OP_INV:   /* C = inv(A):  dC = -C*dA*C */
    return negate(f, mk(f, OP_MUL, mk(f, OP_MUL, n, da), n));
  case OP_DIAGM: /* C = diag(v):  dC = diag(dv) */
  case OP_DIAGV: /* c = diag(A):  dc = diag(dA) */
    return mk(f, n->op, da, NULL);
  }
  return NULL;
}

bool diff_tangents(Ctx *c, Node *const *roots, int n, int only, Node **out) {
  if (!diff_name_directions(c))
    return false;
  int top = 0;
  for (int i = 0; i < n; i++)
    if (roots[i] && roots[i]->id >= top)
      top = roots[i]->id + 1;
  Fwd f = {.c = c, .only = only};
  f.tan = calloc((size_t)top + 1, sizeof *f.tan);
  char *need = calloc((size_t)top + 1, 1);
  if (!f.tan || !need) {
    free(f.tan);
    free(need);
    return ctx_error(c, (Loc){-1, -1}, "out of memory");
  }
  for (int i = 0; i < n; i++)
    if (roots[i])
      ast_mark(c, roots[i], need);
  // Operands have smaller ids than their users: one walk up in id order.
  for (int i = 0; i < top && !f.failed; i++)
    if (need[i]) {
      Node *p = c->nodes[i], *t = tangent(&f, p);
      // A tangent has its node's shape: a broadcast operand's is made whole.
      if (!f.failed && t && !(f.tan[i] = spread(c, t, p->shape)))
        f.failed = true;
      if (f.failed)
        rule_failed(c, p->op, "tangent");
    }
  for (int i = 0; i < n && !f.failed; i++) {
    if (!roots[i])
      continue;
    out[i] = f.tan[roots[i]->id] ? f.tan[roots[i]->id] : ast_fill(c, OP_ZEROS, roots[i]->shape);
    if (!out[i])
      f.failed = !ctx_error(c, (Loc){-1, -1}, "out of memory");
  }
  free(f.tan);
  free(need);
  return !f.failed;
}
