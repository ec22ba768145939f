/*
 * second.c - second order and Jacobians, from forward mode (diff.c's
 * tangents) over the output and over the gradients reverse mode made:
 *
 *   jvp       the output's tangent along every direction: J*v;
 *   hvp       each gradient's tangent along every direction: H*v, block
 *             row by block row (forward over reverse);
 *   hessian   d2y/dxi dxj as a matrix, for scalar or vector xi and xj: the
 *             tangent of gradient i along dxj alone is linear in dxj, M*dxj,
 *             and extract() reads M off it, with one rule per linear
 *             operation tangents use;
 *   jacobian  dF/dx of a scalar or vector output, the same way from the
 *             output's tangent.
 *
 * Matrices are in vec layout: a vector is its own vec, and M has one row
 * per element of the tangent and one column per element of dx. Where M
 * cannot be read off (a matrix variable, whose Hessian is a fourth-order
 * tensor, or a matrix output), the entry is NULL and the tangent stands for
 * it. Every result is simplified like any formula.
 */
#include <stdlib.h>
#include <string.h>
#include "md.h"

static bool is_scalar(const Node *n) { return shape_is_scalar(n->shape); }

// A column, a row or a scalar: a node whose vec is itself or its transpose.
static bool vector_like(const Shape s) { return shape_is_column(s) || shape_is_row(s); }

// The length of a vector-like shape.
static Dim vlen(Shape s) { return shape_is_column(s) ? s.r : s.c; }

/* ---- simplifying ------------------------------------------------------------ */

// Simplify the N nodes of V in place (NULL entries stay). simp_program
// simplifies c->grads, so it is lent that array, one variable's worth at a
// time: simplify.c is being reworked on a branch of its own, and a
// simp_node() entry would be its one-line interface.
static bool simplify(Ctx *c, Node **v, int n) {
  if (!c->nvars)  // no directions: every tangent is a fill of zeros already
    return true;
  Node **grads = c->grads, **chunk = calloc((size_t)c->nvars + 1, sizeof *chunk);
  if (!chunk)
    return ctx_error(c, (Loc){-1, -1}, "out of memory");
  c->grads = chunk;
  for (int at = 0; at < n && !c->failed; at += c->nvars) {
    int m = n - at < c->nvars ? n - at : c->nvars;
    memset(chunk, 0, sizeof *chunk * (size_t)c->nvars);
    memcpy(chunk, v + at, sizeof *chunk * (size_t)m);
    simp_program(c);
    memcpy(v + at, chunk, sizeof *chunk * (size_t)m);
  }
  c->grads = grads;
  free(chunk);
  return !c->failed;
}

/* ---- reading a matrix off a linear tangent --------------------------------- */

/* What is known of a node, by its id: the DAG shares subexpressions, and
   each is looked at once (a sum of a term and a product of it would
   otherwise be read twice per level). */
typedef struct Known {
  char dep;          /* 1 if it depends on D, 2 if not, 0 not known yet */
  bool extracted;    /* m holds extract()'s result (NULL: zero) */
  Node *m;
  Node *tr[2];       /* transpose(n, all) for all false and true, or NULL */
} Known;

typedef struct Lin {
  Ctx *c;
  Node *dir;         /* D, the direction the tangent is linear in */
  Known *known;      /* by node id */
  int cap;
  int depth;         /* of extract()'s recursion, bounded */
  bool failed;       /* out of memory, or a tangent not of the forms below */
} Lin;

// N's entry, the table grown to hold it; NULL without memory.
static Known *known(Lin *l, const Node *n) {
  if (n->id >= l->cap) {
    int cap = l->cap ? l->cap : 256;
    while (cap <= n->id)
      cap *= 2;
    Known *k = realloc(l->known, sizeof *k * (size_t)cap);
    if (!k) {
      l->failed = true;
      return NULL;
    }
    memset(k + l->cap, 0, sizeof *k * (size_t)(cap - l->cap));
    l->known = k;
    l->cap = cap;
  }
  return &l->known[n->id];
}

static bool depends(Lin *l, const Node *n) {
  Known *k = n ? known(l, n) : NULL;
  if (!k)
    return false;
  if (!k->dep) {
    char d = n == l->dir || depends(l, n->a) || depends(l, n->b) ? 1 : 2;
    l->known[n->id].dep = d;  // the table may have moved
  }
  return l->known[n->id].dep == 1;
}

// Nodes as ast_op makes them, NULL standing for zero: a product with a
// zero is zero. A failure sets L->failed.
static Node *mk(Lin *l, Op o, Node *a, Node *b) { return ast_op_nz(l->c, o, a, b, &l->failed); }

static Node *fail(Lin *l) {
  l->failed = true;
  return NULL;
}

// N' with the transpose moved inside products, as people write it; with
// ALL also inside sums and elementwise products, so that the rules below
// meet the operations of a transposed tangent rather than its transpose.
static Node *transpose_of(Lin *l, Node *n, bool all);

static Node *transpose(Lin *l, Node *n, bool all) {
  if (!n || is_scalar(n))
    return n;
  Known *k = known(l, n);
  if (!k)
    return NULL;
  if (!k->tr[all]) {
    Node *t = transpose_of(l, n, all);
    if ((k = known(l, n)))
      k->tr[all] = t;
  }
  return l->known[n->id].tr[all];
}

static Node *transpose_of(Lin *l, Node *n, bool all) {
  switch (n->op) {
  case OP_TRANS: return n->a;                                       /* (A')' = A */
  case OP_DIAGM: return n;                                          /* diag(v)' = diag(v) */
  case OP_MUL:
    if (is_scalar(n->a))                                            /* (s*A)' = s*A' */
      return mk(l, OP_MUL, n->a, transpose(l, n->b, all));
    return mk(l, OP_MUL, transpose(l, n->b, all), transpose(l, n->a, all)); /* (A*B)' = B'*A' */
  case OP_DIV: return mk(l, OP_DIV, transpose(l, n->a, all), n->b); /* (A/s)' = A'/s */
  case OP_ADD:
  case OP_SUB:
  case OP_EMUL:
  case OP_EDIV:                                                     /* (A + B)' = A' + B' */
    if (all)
      return mk(l, n->op, transpose(l, n->a, all), transpose(l, n->b, all));
    return mk(l, OP_TRANS, n, NULL);
  default: return mk(l, OP_TRANS, n, NULL);
  }
}

static Node *tr(Lin *l, Node *n) { return transpose(l, n, false); }

// A vector-like node as a column.
static Node *vec(Lin *l, Node *n) { return shape_is_column(n->shape) ? n : tr(l, n); }

// N broadcast to SHAPE, made whole: the sum's operand as the sum sees it.
static Node *widen(Lin *l, Node *n, Shape shape) {
  if (shape_eq(n->shape, shape))
    return n;
  return mk(l, is_scalar(n) ? OP_MUL : OP_EMUL, n, ast_fill(l->c, OP_ONES, shape));
}

static Node *ones(Lin *l, Dim r, Dim c) { return ast_fill(l->c, OP_ONES, (Shape){r, c}); }

static Node *extract(Lin *l, Node *e);

// diag(U)*M, the rows of M scaled by U, written as a person would: over a
// sum term by term, diag(U)*I = diag(U), diag(U)*(1*R) = U*R.
static Node *scale_rows(Lin *l, Node *u, Node *m) {
  if (!m || u->op == OP_ONES)                                        /* diag(1) = I */
    return m;
  switch (m->op) {
  case OP_EYE: return mk(l, OP_DIAGM, u, NULL);
  case OP_ADD:
  case OP_SUB:
    if (shape_eq(m->a->shape, m->shape) && shape_eq(m->b->shape, m->shape))
      return mk(l, m->op, scale_rows(l, u, m->a), scale_rows(l, u, m->b));
    break;
  case OP_MUL:
    if (is_scalar(m->a))
      return mk(l, OP_MUL, m->a, scale_rows(l, u, m->b));
    if (m->a->op == OP_ONES && shape_is_column(m->a->shape))
      return mk(l, OP_MUL, u, m->b);
    break;
  default: break;
  }
  return mk(l, OP_MUL, mk(l, OP_DIAGM, u, NULL), m);
}

// The elementwise product tree N (a .* b .* ...) split: *DEP gets its one
// factor that depends on D, and the result is the product of the others
// (NULL if there are none), broadcasting as in N.
static Node *emul_rest(Lin *l, Node *n, Node **dep) {
  if (!depends(l, n))
    return n;
  if (n->op != OP_EMUL) {
    *dep = n;
    return NULL;
  }
  if (depends(l, n->a) && depends(l, n->b))
    return fail(l);
  Node *x = depends(l, n->a) ? n->a : n->b, *c = x == n->a ? n->b : n->a;
  Node *r = emul_rest(l, x, dep);
  return r ? mk(l, OP_EMUL, r, c) : c;
}

// sum(U .* X) for a constant U and a matrix X linear in D, brought to a
// vector X by moving factors across: the trace identities
// <U, P*Q> = <P'*U, Q> = <U*Q', P>, and sums along the side a broadcast
// X repeats on.
static Node *sum_dot(Lin *l, Node *u, Node *x) {
  Node *a = x->a, *b = x->b;
  if (l->failed || !u || !x)
    return NULL;
  if (is_scalar(x))                                                  /* <U, s> = sum(U)*s */
    return mk(l, OP_MUL, mk(l, OP_SUM, u, NULL), extract(l, x));
  if (!shape_eq(u->shape, x->shape)) {                               /* <U, r> = <sum(U, 1), r> */
    Node *s = ast_opk(l->c, OP_SUM, u, NULL, shape_is_row(x->shape) ? 1 : 2);
    l->failed |= !s;
    return sum_dot(l, s, x);
  }
  if (vector_like(x->shape))
    return mk(l, OP_MUL, tr(l, vec(l, u)), extract(l, x));           /* vec(U)'*M */
  switch (x->op) {
  case OP_MUL:
    if (is_scalar(a) && depends(l, a))                               /* <U, s*Y> = <U, Y>*s */
      return mk(l, OP_MUL, mk(l, OP_SUM, mk(l, OP_EMUL, u, b), NULL), extract(l, a));
    if (is_scalar(a))                                                /* <U, s*Y> = s*<U, Y> */
      return mk(l, OP_MUL, a, sum_dot(l, u, b));
    if (depends(l, b))                                               /* <U, P*Q> = <P'*U, Q> */
      return sum_dot(l, mk(l, OP_MUL, tr(l, a), u), b);
    return sum_dot(l, mk(l, OP_MUL, u, tr(l, b)), a);                /* <U, P*Q> = <U*Q', P> */
  case OP_TRANS: return sum_dot(l, tr(l, u), a);                     /* <U, Y'> = <U', Y> */
  case OP_DIV: return mk(l, OP_DIV, sum_dot(l, u, a), b);            /* <U, Y/s> = <U, Y>/s */
  case OP_ADD:
  case OP_SUB: {
    Node *p = depends(l, a) ? sum_dot(l, u, widen(l, a, x->shape)) : NULL;
    Node *q = depends(l, b) ? sum_dot(l, u, widen(l, b, x->shape)) : NULL;
    if (!q)
      return p;
    if (x->op == OP_SUB)
      q = mk(l, OP_MUL, ast_num(l->c, -1), q);
    return p ? mk(l, OP_ADD, p, q) : q;
  }
  case OP_EMUL: {                                                    /* <U, C.*Y> = <U.*C, Y> */
    Node *dep = NULL, *rest = emul_rest(l, x, &dep);
    return dep ? sum_dot(l, rest ? mk(l, OP_EMUL, u, rest) : u, dep) : fail(l);
  }
  case OP_DIAGM: return sum_dot(l, mk(l, OP_DIAGV, u, NULL), a);     /* <U, diag(v)> = <diag(U), v> */
  default: return fail(l);
  }
}

// A product P*Q whose factor linear in D scales columns or rows by a
// broadcast vector, with that scaling moved out: W*(Y.*r) = (W*Y).*r for a
// row r, (Y.*u)*W = (Y*W).*u for a column u. N itself otherwise.
static Node *float_scaling(Lin *l, Node *n) {
  if (n->op != OP_MUL || is_scalar(n->a) || is_scalar(n->b))
    return n;
  bool right = depends(l, n->b);
  Node *q = right ? n->b : n->a, *dep = NULL, *rest = q->op == OP_EMUL ? emul_rest(l, q, &dep) : NULL;
  if (!dep || !rest || !shape_eq(rest->shape, q->shape) ||
      !(right ? shape_is_row(dep->shape) : shape_is_column(dep->shape)) || shape_eq(dep->shape, q->shape))
    return n;
  return mk(l, OP_EMUL, right ? mk(l, OP_MUL, n->a, rest) : mk(l, OP_MUL, rest, n->b), dep);
}

// The matrix of A*b, where the matrix A is linear in D and the column b is
// constant: A's structure decides how b moves in.
static Node *extract_left(Lin *l, Node *a, Node *b) {
  Node *p = a->a, *q = a->b;
  switch (a->op) {
  case OP_MUL:
    if (is_scalar(p))                                                /* (s*X)*b = s*(X*b) */
      return extract(l, mk(l, OP_MUL, p, mk(l, OP_MUL, q, b)));
    return extract(l, mk(l, OP_MUL, p, mk(l, OP_MUL, q, b)));        /* (P*Q)*b = P*(Q*b) */
  case OP_DIV: return extract(l, mk(l, OP_DIV, mk(l, OP_MUL, p, b), q)); /* (X/s)*b = (X*b)/s */
  case OP_ADD:
  case OP_SUB:                                                       /* (P + Q)*b = P*b + Q*b */
    return extract(l, mk(l, a->op, mk(l, OP_MUL, widen(l, p, a->shape), b),
                         mk(l, OP_MUL, widen(l, q, a->shape), b)));
  case OP_DIAGM: return extract(l, mk(l, OP_EMUL, p, b));            /* diag(v)*b = v.*b */
  case OP_EMUL: {
    // A full factor Y, and one v that broadcasts along a side of it: one of
    // them depends on D, the product of the others is the second.
    Node *dep = NULL, *rest = emul_rest(l, a, &dep);
    if (!dep || !rest)
      return fail(l);
    if (dep->op == OP_ADD || dep->op == OP_SUB)                     /* C.*(P + Q) = C.*P + C.*Q */
      return extract_left(l, mk(l, dep->op, mk(l, OP_EMUL, rest, widen(l, dep->a, dep->shape)),
                                mk(l, OP_EMUL, rest, widen(l, dep->b, dep->shape))), b);
    Node *out = float_scaling(l, dep);
    if (out != dep)
      return extract_left(l, mk(l, OP_EMUL, rest, out), b);
    bool full = shape_eq(dep->shape, a->shape);
    if (full && shape_eq(rest->shape, a->shape) && dep->op == OP_MUL && !is_scalar(dep->a) &&
        depends(l, dep->a))                                          /* (C.*(P*W))*b = */
      return extract_left(l, mk(l, OP_EMUL, dep->a,                   /* (P.*((C.*b')*W'))*1 */
                                mk(l, OP_MUL, mk(l, OP_EMUL, rest, tr(l, b)), tr(l, dep->b))),
                          ones(l, dep->a->shape.c, dim_lit(1)));
    Node *v = full ? rest : dep, *y = full ? dep : rest;
    if (shape_eq(v->shape, a->shape) || !shape_eq(y->shape, a->shape))
      return fail(l);
    if (is_scalar(v))                                                /* (s.*Y)*b = s*(Y*b) */
      return extract(l, mk(l, OP_MUL, v, mk(l, OP_MUL, y, b)));
    if (shape_is_column(v->shape))                                   /* (u.*Y)*b = u.*(Y*b) */
      return extract(l, mk(l, OP_EMUL, v, mk(l, OP_MUL, y, b)));
    return extract(l, mk(l, OP_MUL, y, mk(l, OP_EMUL, tr(l, v), b))); /* (r.*Y)*b = Y*(r'.*b) */
  }
  case OP_TRANS: {
    Node *t = transpose(l, p, true);                                 /* the transpose moved in */
    return t && t->op != OP_TRANS ? extract_left(l, t, b) : fail(l);
  }
  default: return fail(l);
  }
}

/* The matrix M with vec(E) = M*D, for a vector-like E linear in D; NULL for
   a zero M (E does not depend on D), or with L->failed when E is not of the
   forms the rules know. */
static Node *extract_of(Lin *l, Node *e);

static Node *extract(Lin *l, Node *e) {
  if (l->failed || !e || !depends(l, e))
    return NULL;
  if (l->known[e->id].extracted)
    return l->known[e->id].m;
  Node *m = extract_of(l, e);
  if (!l->failed) {
    l->known[e->id].extracted = true;  // extract_of may have moved the table
    l->known[e->id].m = m;
  }
  return m;
}

static Node *extract_of(Lin *l, Node *e) {
  if (e == l->dir) {                                                 /* D = I*D */
    Dim n = vlen(e->shape);
    return ast_fill(l->c, OP_EYE, (Shape){n, n});
  }
  if (!vector_like(e->shape) || ++l->depth > MD_MAX_DEPTH)
    return fail(l);
  Node *a = e->a, *b = e->b, *m = NULL;
  bool da = depends(l, a), db = depends(l, b);
  if (da && db && e->op != OP_ADD && e->op != OP_SUB)
    m = fail(l);  // a product of two tangents is not linear in D
  else switch (e->op) {
  case OP_ADD:
  case OP_SUB: {                                                     /* M = Ma + Mb */
    Node *ma = extract(l, widen(l, a, e->shape)), *mb = extract(l, widen(l, b, e->shape));
    if (mb && e->op == OP_SUB)
      mb = mk(l, OP_MUL, ast_num(l->c, -1), mb);
    m = !ma ? mb : !mb ? ma : mk(l, OP_ADD, ma, mb);
    break;
  }
  case OP_MUL:
    if (is_scalar(a) || is_scalar(b)) {
      Node *s = is_scalar(a) ? a : b, *x = s == a ? b : a;
      if (depends(l, x))
        m = mk(l, OP_MUL, s, extract(l, x));                          /* s*X: s*Mx */
      else
        m = mk(l, OP_MUL, vec(l, x), extract(l, s));                  /* s*x, s linear: vec(x)*Ms */
    } else if (db && shape_is_column(b->shape)) {
      m = mk(l, OP_MUL, a, extract(l, b));                            /* A*x: A*Mx */
    } else if (db) {
      m = extract(l, mk(l, OP_MUL, tr(l, b), tr(l, a)));              /* a row: vec(a*B) = B'*a' */
    } else if (shape_is_row(a->shape)) {
      m = mk(l, OP_MUL, tr(l, b), extract(l, a));                     /* r*B: B'*Mr */
    } else {
      m = extract_left(l, a, b);                                      /* A*b, A linear */
    }
    break;
  case OP_EMUL:
  case OP_EDIV: {
    if (e->op == OP_EDIV && db) {
      m = fail(l);
      break;
    }
    Node *x = da ? a : b, *u = da ? b : a;
    if (e->op == OP_EDIV && is_scalar(u))
      m = mk(l, OP_DIV, extract(l, x), u);                            /* X./s: Mx/s */
    else if (is_scalar(u))
      m = mk(l, OP_MUL, u, extract(l, x));                            /* s.*X: s*Mx */
    else {
      if (e->op == OP_EDIV)
        u = mk(l, OP_EDIV, ast_num(l->c, 1), u);                      /* X./u = X.*(1./u) */
      if (is_scalar(x))
        m = mk(l, OP_MUL, vec(l, u), extract(l, x));                  /* u.*s: vec(u)*Ms */
      else if (shape_eq(u->shape, x->shape))
        m = scale_rows(l, vec(l, u), extract(l, x));                  /* u.*x: diag(u)*Mx */
      else
        m = fail(l);
    }
    break;
  }
  case OP_DIV: m = mk(l, OP_DIV, extract(l, a), b); break;            /* X/s: Mx/s */
  case OP_TRANS: m = extract(l, a); break;                            /* x': Mx */
  case OP_SUM:
    if (e->k == 0 && is_scalar(a))
      m = extract(l, a);
    else if (e->k == 0 && a->op == OP_EMUL && shape_eq(a->a->shape, a->b->shape))
      m = sum_dot(l, depends(l, a->a) ? a->b : a->a, depends(l, a->a) ? a->a : a->b);
    else if (e->k == 0)
      m = sum_dot(l, ast_fill(l->c, OP_ONES, a->shape), a);          /* sum(X) = <1, X> */
    else if (e->k == 1)
      m = extract(l, mk(l, OP_MUL, ones(l, dim_lit(1), a->shape.r), a)); /* sum(X, 1) = 1'*X */
    else
      m = extract(l, mk(l, OP_MUL, a, ones(l, a->shape.c, dim_lit(1)))); /* sum(X, 2) = X*1 */
    break;
  default: m = fail(l); break;
  }
  l->depth--;
  return m;
}

// The matrix of the tangent T, linear in the direction of variable J, or
// NULL if it has none (T not vector-like, or J a matrix variable, or a form
// the rules do not know). A zero matrix is a fill of zeros.
static Node *matrix_of(Ctx *c, Node *t, int j) {
  Shape dj = c->vars[j].shape;
  if (!vector_like(t->shape) || !vector_like(dj))
    return NULL;
  Lin l = {.c = c, .dir = ast_dir(c, j)};
  if (!l.dir)
    return NULL;
  Node *m = extract(&l, t);
  free(l.known);
  if (l.failed)
    return NULL;
  return m ? m : ast_fill(c, OP_ZEROS, (Shape){vlen(t->shape), vlen(dj)});
}

/* ---- the entry points --------------------------------------------------------- */

bool second_jvp(Ctx *c) {
  Node *t;
  if (!diff_tangents(c, &c->out, 1, -1, &t) || !simplify(c, &t, 1))
    return false;
  c->jvp = t;
  return true;
}

bool second_hvp(Ctx *c) {
  int n = c->nvars;
  Node **h = arena_alloc(&c->arena, sizeof *h * (size_t)(n ? n : 1));
  if (!h)
    return ctx_error(c, (Loc){-1, -1}, "out of memory");
  if (!diff_tangents(c, c->grads, n, -1, h) || !simplify(c, h, n))
    return false;
  c->hvps = h;
  return true;
}

// Does variable I have a gradient, and is it a scalar or a vector?
static bool vector_wrt(const Ctx *c, int i) {
  return c->vars[i].wrt && vector_like(c->vars[i].shape);
}

bool second_hessian(Ctx *c) {
  int n = c->nvars;
  Node **hs = arena_alloc(&c->arena, sizeof *hs * (size_t)(n * n + 1));
  Node **t = arena_alloc(&c->arena, sizeof *t * (size_t)(n + 1));
  if (!hs || !t)
    return ctx_error(c, (Loc){-1, -1}, "out of memory");
  // Block (i, j) from gradient i's tangent along dxj alone, for i <= j
  // (d2y/dxdb is d/db of dy/dx); the blocks below the diagonal are their
  // transposes.
  for (int j = 0; j < n; j++) {
    if (!vector_wrt(c, j))
      continue;
    Node **g = arena_alloc(&c->arena, sizeof *g * (size_t)(n + 1));
    if (!g)
      return ctx_error(c, (Loc){-1, -1}, "out of memory");
    for (int i = 0; i <= j; i++)
      g[i] = vector_wrt(c, i) ? c->grads[i] : NULL;
    memset(t, 0, sizeof *t * (size_t)n);
    if (!diff_tangents(c, g, n, j, t) || !simplify(c, t, n))
      return false;
    for (int i = 0; i <= j; i++)
      if (g[i] && (hs[i * n + j] = matrix_of(c, t[i], j)) && i != j)
        hs[j * n + i] = ast_op(c, OP_TRANS, hs[i * n + j], NULL);
  }
  if (!simplify(c, hs, n * n))
    return false;
  c->hess = hs;
  return true;
}

bool second_jacobian(Ctx *c) {
  int n = c->nvars;
  Node **js = arena_alloc(&c->arena, sizeof *js * (size_t)(n + 1));
  if (!js)
    return ctx_error(c, (Loc){-1, -1}, "out of memory");
  // A scalar output's Jacobian is its gradient as a row; otherwise it is
  // read off the output's tangent along dxj alone.
  bool scalar = is_scalar(c->out);
  for (int j = 0; j < n; j++) {
    Node *t;
    if (!vector_wrt(c, j))
      continue;
    if (scalar) {
      Node *g = c->grads[j];
      js[j] = shape_is_column(g->shape) ? ast_op(c, OP_TRANS, g, NULL) : g;
      continue;
    }
    if (!diff_tangents(c, &c->out, 1, j, &t) || !simplify(c, &t, 1))
      return false;
    js[j] = matrix_of(c, t, j);
  }
  if (!simplify(c, js, n))
    return false;
  c->jacs = js;
  return true;
}
