/*
 * simplify.c - a list of rewrite rules, applied bottom-up to a fixpoint.
 * Results are memoised by node id, which hash-consing makes exact. The
 * rules aim at the form a person writes on paper: no 1*, no + 0, no (A')',
 * scalar factors in front, constants folded, like terms collected.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "md.h"

typedef struct Simp {
  Ctx *c;
  Node **memo;       /* by node id */
  int cap;
  long budget;       /* rewrites left: a guard against two rules undoing each
                        other forever; every rewrite keeps the meaning, so
                        stopping early is safe, only less simple */
  int depth;         /* of simp()'s recursion, bounded for the stack's sake */
} Simp;

static bool scalar(const Node *n) { return shape_is_scalar(n->shape); }
static bool is_num(const Node *n) { return n->op == OP_NUM; }
static bool is_zero(const Node *n) { return ast_is_num(n, 0) || n->op == OP_ZEROS; }
static bool is_one(const Node *n) { return ast_is_num(n, 1); }
static Node *mk(Simp *s, Op op, Node *a, Node *b) { return ast_op(s->c, op, a, b); }
static Node *num(Simp *s, double v) { return ast_num(s->c, v); }
static Node *zeros(Simp *s, Shape sh) { return ast_fill(s->c, OP_ZEROS, sh); }

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
  return (n->op == OP_NUM && isfinite(n->num) && n->num != 0) || n->op == OP_DIM;
}

// Fold only finite results, and no -0.0 (Lua's lcode.c folds neither): NaN
// and infinities stay symbolic so that the emitted code computes them where
// and when the user's inputs say, and 1/-0.0 keeps its sign.
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
  return isfinite(v) && !(v == 0 && signbit(v)) ? num(s, v) : NULL;
}

// c*A -> (c, A); A -> (1, A): the numeric factor of a term.
static double coef(const Node *n, const Node **rest) {
  if (n->op == OP_MUL && is_num(n->a) && !is_num(n->b)) {
    *rest = n->b;
    return n->a->num;
  }
  *rest = n;
  return 1;
}

static Node *scaled(Simp *s, double k, Node *a) { return mk(s, OP_MUL, num(s, k), a); }

static bool is_product(const Node *n) { return n->op == OP_MUL && !scalar(n->a) && !scalar(n->b); }

static Node *rw_mul(Simp *s, Node *n, Node *a, Node *b) {
  if (is_num(a) && is_num(b))                       /* c1*c2 -> c */
    return fold(s, OP_MUL, a->num, b->num);
  if (is_one(a) && shape_eq(b->shape, n->shape))    /* 1*A -> A */
    return b;
  if (is_one(b) && shape_eq(a->shape, n->shape))    /* A*1 -> A */
    return a;
  if ((is_zero(a) && finite(b)) || (is_zero(b) && finite(a)))
    return zeros(s, n->shape);                      /* 0*A -> 0, A finite */
  if (scalar(b) && (!scalar(a) || (is_num(b) && !is_num(a))))
    return mk(s, OP_MUL, b, a);                     /* A*s -> s*A */
  if (is_num(a) && b->op == OP_DIV && is_num(b->a)) /* c*(d/t) -> (c*d)/t */
    return mk(s, OP_DIV, num(s, a->num * b->a->num), b->b);
  if (a->op == OP_DIV && ast_is_num(a->a, 1))       /* (1/t)*A -> A/t */
    return mk(s, OP_DIV, b, a->b);
  if (a->op == OP_DIV && is_num(a->a) && !is_num(b)) /* (c/t)*A -> (c*A)/t */
    return mk(s, OP_DIV, scaled(s, a->a->num, b), a->b);
  if (!scalar(a) && b->op == OP_DIV && !scalar(b))  /* A*(B/t) -> (A*B)/t */
    return mk(s, OP_DIV, mk(s, OP_MUL, a, b->a), b->b);
  if (a->op == OP_DIV && !scalar(a) && !scalar(b))  /* (A/t)*B -> (A*B)/t */
    return mk(s, OP_DIV, mk(s, OP_MUL, a->a, b), a->b);
  if (a->op == OP_ONES && b->op == OP_ONES)         /* ones(n, k)*ones(k, m) -> k*ones(n, m) */
    return mk(s, OP_MUL, ast_dim(s->c, a->shape.c), ast_fill(s->c, OP_ONES, n->shape));
  if (a->op == OP_EYE && !scalar(b))                /* eye*A -> A */
    return b;
  if (b->op == OP_EYE && !scalar(a))                /* A*eye -> A */
    return a;
  if (scalar(a) && b->op == OP_MUL && scalar(b->a)) /* s*(t*A) -> (s*t)*A */
    return mk(s, OP_MUL, mk(s, OP_MUL, a, b->a), b->b);
  if (!scalar(b) && a->op == OP_MUL && scalar(a->a) && !scalar(a->b))
    return mk(s, OP_MUL, a->a, mk(s, OP_MUL, a->b, b)); /* (s*A)*B -> s*(A*B) */
  if (!scalar(a) && b->op == OP_MUL && scalar(b->a))
    return mk(s, OP_MUL, b->a, mk(s, OP_MUL, a, b->b)); /* A*(s*B) -> s*(A*B) */
  return NULL;
}

/* Like terms across a whole sum: a + b - a -> b, A + 2*A + B -> 3*A + B. */
typedef struct Term {
  double k;
  Node *t;
} Term;

enum { MAX_TERMS = 64 };

// The terms of the sum N; false if there are more than MAX_TERMS, when the
// sum is left as it is.
static bool flatten(Node *n, double sign, Term *ts, int *nt) {
  if (n->op == OP_ADD || n->op == OP_SUB)
    return flatten(n->a, sign, ts, nt) && flatten(n->b, n->op == OP_SUB ? -sign : sign, ts, nt);
  if (*nt == MAX_TERMS)
    return false;
  const Node *rest;
  double k = coef(n, &rest);
  ts[(*nt)++] = (Term){sign * k, (Node *)rest};
  return true;
}

static Node *collect_terms(Simp *s, Node *n) {
  Term ts[MAX_TERMS];
  int nt = 0, out = 0;
  if (!flatten(n, 1, ts, &nt))
    return NULL;
  bool merged = false;
  for (int i = 0; i < nt; i++) {
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
  if (!merged)
    return NULL;
  Node *r = NULL;
  for (int i = 0; i < out; i++) {
    if (ts[i].k == 0)
      continue;
    Node *t = ts[i].k == 1 ? ts[i].t : scaled(s, ts[i].k, ts[i].t);
    // Without a cancelled term, the rest may not fit together (a row and
    // a column): then the sum stays as it was.
    if (!t || (r && !(t = mk(s, OP_ADD, r, t))))
      return NULL;
    r = t;
  }
  if (!r)
    return zeros(s, n->shape);
  // Dropping a cancelled term may lose a broadcast: keep the shape.
  return r && shape_eq(r->shape, n->shape) ? r : NULL;
}

static Node *rw_add(Simp *s, Node *n, Node *a, Node *b) {
  if (is_num(a) && is_num(b))
    return fold(s, OP_ADD, a->num, b->num);
  if (is_zero(a) && shape_eq(b->shape, n->shape))   /* 0 + A -> A */
    return b;
  if (is_zero(b) && shape_eq(a->shape, n->shape))   /* A + 0 -> A */
    return a;
  const Node *ra, *rb;
  double ka = coef(a, &ra), kb = coef(b, &rb);
  if (ra == rb)                                     /* s*A + t*A -> (s+t)*A */
    return scaled(s, ka + kb, (Node *)ra);
  Node *r = collect_terms(s, n);
  if (r)
    return r;
  if (a->op == OP_DIV && b->op == OP_DIV && a->b == b->b)
    return mk(s, OP_DIV, mk(s, OP_ADD, a->a, b->a), a->b); /* A/t + B/t -> (A + B)/t */
  if (kb < 0)                                       /* A + (-c)*B -> A - c*B */
    return mk(s, OP_SUB, a, scaled(s, -kb, (Node *)rb));
  if (is_product(a) && is_product(b) && a->b == b->b && shape_eq(a->a->shape, b->a->shape))
    return mk(s, OP_MUL, mk(s, OP_ADD, a->a, b->a), a->b); /* A*X + B*X -> (A + B)*X */
  if (is_product(a) && is_product(b) && a->a == b->a && shape_eq(a->b->shape, b->b->shape))
    return mk(s, OP_MUL, a->a, mk(s, OP_ADD, a->b, b->b)); /* X*A + X*B -> X*(A + B) */
  if (ka < 0)                                       /* (-c)*A + B -> B - c*A */
    return mk(s, OP_SUB, b, scaled(s, -ka, (Node *)ra));
  return NULL;
}

static Node *rw_sub(Simp *s, Node *n, Node *a, Node *b) {
  if (is_num(a) && is_num(b))
    return fold(s, OP_SUB, a->num, b->num);
  if (is_zero(b) && shape_eq(a->shape, n->shape))   /* A - 0 -> A */
    return a;
  if (is_zero(a) && shape_eq(b->shape, n->shape))   /* 0 - A -> -A */
    return scaled(s, -1, b);
  const Node *ra, *rb;
  double ka = coef(a, &ra), kb = coef(b, &rb);
  if (ra == rb)                                     /* s*A - t*A -> (s-t)*A */
    return scaled(s, ka - kb, (Node *)ra);
  Node *r = collect_terms(s, n);
  if (r)
    return r;
  if (a->op == OP_DIV && b->op == OP_DIV && a->b == b->b)
    return mk(s, OP_DIV, mk(s, OP_SUB, a->a, b->a), a->b); /* A/t - B/t -> (A - B)/t */
  if (kb < 0)                                       /* A - (-c)*B -> A + c*B */
    return mk(s, OP_ADD, a, scaled(s, -kb, (Node *)rb));
  return NULL;
}

static Node *rw_emul(Simp *s, Node *n, Node *a, Node *b) {
  if (is_num(a) && is_num(b))
    return fold(s, n->op, a->num, b->num);
  if (n->op == OP_EMUL && (scalar(a) || scalar(b)))
    return mk(s, OP_MUL, a, b);                     /* s.*A -> s*A */
  if (n->op == OP_EDIV && scalar(b))
    return mk(s, OP_DIV, a, b);                     /* A./s -> A/s */
  if (n->op == OP_EDIV && a->op == OP_ONES && shape_eq(b->shape, n->shape))
    return mk(s, OP_EDIV, num(s, 1), b);            /* ones./A -> 1./A */
  if (n->op == OP_EMUL && a->op == OP_ONES && b->op == OP_ONES)
    return ast_fill(s->c, OP_ONES, n->shape);       /* ones.*ones -> ones */
  if (n->op == OP_EMUL && a->op == OP_DIV)          /* (A/s).*B -> (A.*B)/s */
    return mk(s, OP_DIV, mk(s, OP_EMUL, a->a, b), a->b);
  if (n->op == OP_EMUL && b->op == OP_DIV)          /* A.*(B/s) -> (A.*B)/s */
    return mk(s, OP_DIV, mk(s, OP_EMUL, a, b->a), b->b);
  if (n->op == OP_EMUL && a->op == OP_ONES && shape_eq(b->shape, n->shape))
    return b;                                       /* ones.*A -> A */
  if (n->op == OP_EMUL && b->op == OP_ONES && shape_eq(a->shape, n->shape))
    return a;
  if (n->op == OP_EMUL && a->op == OP_MUL && scalar(a->a))
    return mk(s, OP_MUL, a->a, mk(s, OP_EMUL, a->b, b)); /* (s*A).*B -> s*(A.*B) */
  if (n->op == OP_EMUL && b->op == OP_MUL && scalar(b->a))
    return mk(s, OP_MUL, b->a, mk(s, OP_EMUL, a, b->b)); /* A.*(s*B) -> s*(A.*B) */
  if (is_zero(a) && (n->op == OP_EMUL ? finite(b) : nonzero_const(b)))
    return zeros(s, n->shape);                      /* 0.*A -> 0, 0./c -> 0 */
  return NULL;
}

static Node *rw_div(Simp *s, Node *n, Node *a, Node *b) {
  (void)n;
  if (is_num(a) && is_num(b))
    return fold(s, OP_DIV, a->num, b->num);
  if (is_one(b))                                    /* A/1 -> A */
    return a;
  if (is_zero(a) && nonzero_const(b))               /* 0/c -> 0 */
    return zeros(s, n->shape);
  if (a->op == OP_MUL && is_num(a->a) && is_num(b) && b->num != 0)
    return scaled(s, a->a->num / b->num, a->b);     /* (c*A)/d -> (c/d)*A */
  return NULL;
}

static Node *rw_pow(Simp *s, Node *n, Node *a, Node *b) {
  if (is_num(a) && is_num(b))
    return fold(s, n->op, a->num, b->num);
  if (is_one(b))                                    /* A^1 -> A */
    return a;
  if (ast_is_num(b, 0))                             /* A^0 -> 1 */
    return ast_fill(s->c, OP_ONES, n->shape);
  return NULL;
}

static Node *rw_trans(Simp *s, Node *n, Node *a) {
  if (scalar(a))                                    /* s' -> s */
    return a;
  if (a->op == OP_TRANS)                            /* (A')' -> A */
    return a->a;
  if (op_is_fill(a->op))
    return ast_fill(s->c, a->op, n->shape);         /* eye' -> eye */
  if (a->op == OP_MUL && scalar(a->a))              /* (s*A)' -> s*A' */
    return mk(s, OP_MUL, a->a, mk(s, OP_TRANS, a->b, NULL));
  if (a->op == OP_DIAGM)                            /* diag(v)' -> diag(v) */
    return a;
  if (a->op == OP_DIV)                              /* (A/s)' -> A'/s */
    return mk(s, OP_DIV, mk(s, OP_TRANS, a->a, NULL), a->b);
  if (a->op == OP_MUL)                              /* (A*B)' -> B'*A' */
    return mk(s, OP_MUL, mk(s, OP_TRANS, a->b, NULL), mk(s, OP_TRANS, a->a, NULL));
  return NULL;
}

static Node *rw_sum(Simp *s, Node *n, Node *a) {
  if (shape_eq(a->shape, n->shape))                 /* sum(A) of one element, or along */
    return a;                                       /* a dimension of size 1 -> A */
  if (a->op == OP_MUL && scalar(a->a))              /* sum(s*A) -> s*sum(A) */
    return mk(s, OP_MUL, a->a, ast_opk(s->c, OP_SUM, a->b, NULL, n->k));
  if (a->op == OP_DIV)                              /* sum(A/t) -> sum(A)/t */
    return mk(s, OP_DIV, ast_opk(s->c, OP_SUM, a->a, NULL, n->k), a->b);
  if (a->op == OP_ONES && n->k)                     /* sum(ones(n, m), 1) -> n*ones(1, m) */
    return mk(s, OP_MUL, ast_dim(s->c, n->k == 1 ? a->shape.r : a->shape.c),
              ast_fill(s->c, OP_ONES, n->shape));
  return NULL;
}

static Node *rw_diag(Simp *s, Node *n, Node *a) {
  (void)s;
  if ((n->op == OP_DIAGV && a->op == OP_DIAGM) || (n->op == OP_DIAGM && a->op == OP_DIAGV &&
                                                    a->a->op == OP_DIAGM))
    return a->a;                                    /* diag(diag(v)) -> v */
  return NULL;
}

// One rewrite at the top of N (whose operands are already simplified), or
// NULL when no rule applies.
static Node *rewrite(Simp *s, Node *n) {
  Node *a = n->a, *b = n->b;
  switch (n->op) {
  case OP_MUL: return rw_mul(s, n, a, b);
  case OP_ADD: return rw_add(s, n, a, b);
  case OP_SUB: return rw_sub(s, n, a, b);
  case OP_EMUL:
  case OP_EDIV: return rw_emul(s, n, a, b);
  case OP_DIV: return rw_div(s, n, a, b);
  case OP_POW:
  case OP_EPOW: return rw_pow(s, n, a, b);
  case OP_TRANS: return rw_trans(s, n, a);
  case OP_SUM: return rw_sum(s, n, a);
  case OP_DIAGM:
  case OP_DIAGV: return rw_diag(s, n, a);
  default: return NULL;
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
  memset(m + s->cap, 0, sizeof *m * (size_t)(cap - s->cap));
  s->memo = m;
  s->cap = cap;
  return true;
}

static Node *simp(Simp *s, Node *n) {
  if (!n || !reserve(s, n->id))
    return NULL;
  if (s->memo[n->id])
    return s->memo[n->id];
  Node *a = n->a ? simp(s, n->a) : NULL;
  Node *b = n->b ? simp(s, n->b) : NULL;
  if ((n->a && !a) || (n->b && !b))
    return NULL;
  Node *m = (a == n->a && b == n->b) ? n : ast_opk(s->c, n->op, a, b, n->k);
  if (!m)
    return NULL;
  Node *r = s->budget > 0 && s->depth < 2000 ? rewrite(s, m) : NULL;
  // A rewrite may lose sharing (x^(2^40) as products re-associated): one
  // that builds a DAG deeper than every later stage's recursion can take
  // is not made.
  if (r && r->depth > MD_MAX_NODE_DEPTH)
    r = NULL;
  if (r) {
    s->budget--;
    s->depth++;
    r = simp(s, r);
    s->depth--;
  } else {
    r = m;
  }
  if (r && reserve(s, m->id)) {
    s->memo[n->id] = r;
    s->memo[m->id] = r;
  }
  return r;
}

void simp_program(Ctx *c) {
  Simp s = {.c = c, .budget = 1000000};
  for (int i = 0; i < c->nvars; i++)
    if (c->grads[i] && !(c->grads[i] = simp(&s, c->grads[i])))
      ctx_error(c, (Loc){-1, -1}, "internal error: simplifying d%s/d%s failed", c->outname,
                c->vars[i].name);
  free(s.memo);
}
