/*
 * lower.c - the parse tree to the DAG: declarations, wrt, assignments,
 * and every expression lowered to hash-consed nodes (ast.c) with its
 * shape checked (shape.c) and any misfit reported at its operator.
 * Functions the language spells out in terms of others (mean, dot,
 * norm1, softmax over all elements, A^k and A^-k, vector(v)) become those
 * others here. Sizes that are not declared (those of vector(1), matrix(1),
 * a bare eye, and of a one-line expression's variables) are inferred as
 * the operations meet them, with infer.c; lower_program then walks the
 * statements again until a walk has equated nothing.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "md.h"

// Names are looked up in hash maps, so that a program of N declarations
// lowers in O(N).
static int find_var(Ctx *c, const char *name) { return names_get(&c->varidx, name); }
static int find_dim(Ctx *c, const char *name) { return names_get(&c->dimidx, name); }

static Node *find_let(Ctx *c, const char *name) {
  int i = names_get(&c->letidx, name);
  return i >= 0 ? c->lets[i].node : NULL;
}

// Why an ast_* call returned NULL. (Shapes are checked before: an
// ill-shaped node made here would be lower.c's bug.)
static Node *failed(Ctx *c, Loc loc) {
  ast_error(c, loc, "lowering");
  return NULL;
}

static Node *make(Ctx *c, Op op, Node *a, Node *b, long k, Loc loc) {
  char msg[400];
  Shape s;
  Shape bs = b ? b->shape : a->shape;
  // Sizes being inferred are first equated as the operation needs (infer.c).
  infer_fit(c, op, a->shape, bs);
  if (!shape_check(c, op, a->shape, bs, k, &s, msg, sizeof msg)) {
    ctx_error(c, loc, "%s", msg);
    return NULL;
  }
  Node *n = ast_opk(c, op, a, b, k);
  // Intermediates chain expressions past the parser's nesting limit; the
  // DAG's depth is bounded too, for every stage that recurses over it.
  if (n && n->depth > MD_MAX_NODE_DEPTH / 4) {
    ctx_error(c, loc, "the expression is nested too deeply through its intermediates: more than "
              "%d levels", MD_MAX_NODE_DEPTH / 4);
    return NULL;
  }
  return n ? n : failed(c, loc);
}

// The whole literal K of an exponent node: a number, or the negated number
// that "-1" lowers to (a product with -1).
static bool whole_literal(const Node *b, double *k) {
  if (b->op == OP_MUL && ast_is_num(b->a, -1) && b->b->op == OP_NUM)
    *k = -b->b->num;
  else if (b->op == OP_NUM)
    *k = b->num;
  else
    return false;
  return *k == floor(*k) && fabs(*k) <= 1e6;
}

// A^k for a square matrix and a whole literal k, by repeated squaring: A^4
// is (A*A)*(A*A), with A*A one shared node. A^-k is inv(A)^k, as
// matrixcalculus.org reads A^-1: one inverse, then products.
static Node *matrix_power(Ctx *c, Node *a, Node *b, Loc loc) {
  infer_fit(c, OP_INV, a->shape, a->shape);  // square, as inv needs
  if (!shape_is_square(infer_shape(c, a->shape))) {
    ctx_error(c, loc, "^ needs a scalar or a square matrix as its base, not %s; use .^ for an "
              "elementwise power", shape_str(c, a->shape));
    return NULL;
  }
  double k;
  if (!whole_literal(b, &k)) {
    ctx_error(c, loc, "the power of the matrix %s must be a whole number literal from -1000000 to "
              "1000000, as in A^2, or A^-1 for the inverse", shape_str(c, a->shape));
    return NULL;
  }
  if (k < 0 && !(a = make(c, OP_INV, a, NULL, 0, loc)))
    return NULL;
  Node *r = NULL, *p = a;
  for (long n = (long)fabs(k); n > 0 && p; n >>= 1) {
    if (n & 1)
      r = r ? make(c, OP_MUL, r, p, 0, loc) : p;
    if (n > 1)
      p = make(c, OP_MUL, p, p, 0, loc);
  }
  if (c->failed)
    return NULL;
  return r ? r : ast_fill(c, OP_EYE, a->shape);
}

static Node *binary(Ctx *c, Op op, Node *a, Node *b, Loc loc) {
  // A^T, as some write the transpose; in a one-line expression T is a matrix.
  if (op == OP_POW && !shape_is_scalar(a->shape) && b->op == OP_VAR && !strcmp(c->vars[b->k].name, "T")) {
    ctx_error(c, loc, "^T: T is a variable here, and the transpose is written A', not A^T");
    return NULL;
  }
  if (op == OP_POW && !shape_is_scalar(a->shape) && shape_is_scalar(b->shape))
    return matrix_power(c, a, b, loc);
  // ||e||^2 is kept whole: its derivative is 2*e, with no square root.
  if ((op == OP_POW || op == OP_EPOW) && a->op == OP_NORM && ast_is_num(b, 2))
    return make(c, OP_NORMSQ, a->a, NULL, 0, loc);
  // e/||e|| is the unit direction, 0 where e is 0 (docs/LANGUAGE.md): the
  // form a gradient of ||e|| prints in reads back to it.
  if (op == OP_DIV && b->op == OP_NORM && b->a == a)
    return make(c, OP_UNIT, a, NULL, 0, loc);
  return make(c, op, a, b, 0, loc);
}

static Node *lower(Ctx *c, Expr *e);

// A size argument, as in eye(n) or ones(n, 3): a declared size or a whole
// number.
static bool size_arg(Ctx *c, Expr *e, Dim *d) {
  if (e->kind == EX_NUM && e->num >= 1 && e->num <= 1e9 && e->num == floor(e->num)) {
    *d = dim_lit((long)e->num);
    return true;
  }
  if (e->kind == EX_NAME) {
    int i = find_dim(c, e->name);
    if (i >= 0) {
      *d = (Dim){.sym = i};
      return true;
    }
  }
  if (e->kind == EX_NUM)
    return ctx_error(c, e->loc, "a size must be a whole number from 1 to 1000000000");
  if (c->implicit)
    return ctx_error(c, e->loc, "a one-line expression has no size names: write eye, vector(1) or "
                     "matrix(1) without a size, and the size is inferred");
  return ctx_error(c, e->loc, "expected a size: a whole number or a size declared in a type, "
                   "like n in matrix(n, m)");
}

// The dimension argument of sum(A, 1) and friends.
static bool dim_arg(Ctx *c, Expr *e, const char *f, long *k) {
  if (e->kind == EX_NUM && (e->num == 1 || e->num == 2)) {
    *k = (long)e->num;
    return true;
  }
  return ctx_error(c, e->loc, "the dimension argument of %s must be 1 (down the columns) or 2 "
                   "(along the rows)", f);
}

// The number of elements a mean divides by, as a scalar expression.
static Node *count(Ctx *c, Shape s, long k) {
  Node *r = ast_dim(c, s.r), *cols = ast_dim(c, s.c);
  if (k == 1)
    return r;
  if (k == 2)
    return cols;
  if (r->op == OP_NUM && cols->op == OP_NUM)
    return ast_num(c, r->num * cols->num);
  return ast_op(c, OP_MUL, r, cols);
}

typedef enum Form {
  F_UNARY,    /* f(A) */
  F_REDUCE,   /* f(A) or f(A, dim) */
  F_SIZES,    /* f(n) or f(n, m) */
  F_FILL,     /* f(v): every element the scalar v, the shape inferred */
  F_OTHER,    /* handled by name in call() */
} Form;

static const struct Func {
  const char *name;
  Op op;
  Form form;
} funcs[] = {
    {"sum", OP_SUM, F_REDUCE},        {"mean", OP_SUM, F_REDUCE},
    {"logsumexp", OP_LSE, F_REDUCE},  {"softmax", OP_SOFTMAX, F_REDUCE},
    {"tr", OP_TR, F_UNARY},           {"det", OP_DET, F_UNARY},
    {"logdet", OP_LOGDET, F_UNARY},   {"inv", OP_INV, F_UNARY},
    {"diag", OP_DIAGM, F_OTHER},      {"dot", OP_SUM, F_OTHER},
    {"norm1", OP_ABS, F_OTHER},       {"norm2", OP_NORM, F_UNARY},
    {"eye", OP_EYE, F_SIZES},         {"ones", OP_ONES, F_SIZES},
    {"zeros", OP_ZEROS, F_SIZES},     {"vector", OP_ONES, F_FILL},
    {"matrix", OP_ONES, F_FILL},
#define OP(...)
#define MAP(name, spelling, ...) {spelling, OP_##name, F_UNARY},
#include "ops.h"
};

static Node *sizes(Ctx *c, Expr *e, const struct Func *f) {
  int max = f->op == OP_EYE ? 1 : 2;
  if (e->nargs < 1 || e->nargs > max) {
    ctx_error(c, e->loc, max == 1 ? "%s takes 1 size, as in %s(n)" : "%s takes 1 or 2 sizes, as in %s(n, m)",
              f->name, f->name);
    return NULL;
  }
  Dim r, cols = dim_lit(1);
  if (!size_arg(c, e->args[0], &r) || (e->nargs == 2 && !size_arg(c, e->args[1], &cols)))
    return NULL;
  Node *n = ast_fill(c, f->op, (Shape){r, f->op == OP_EYE ? r : cols});
  return n ? n : failed(c, e->loc);
}

// vector(v) and matrix(v), as matrixcalculus.org has them: every element
// the scalar v, the shape inferred from where it stands (infer.c).
// vector(1) is a vector of ones.
static Node *fill(Ctx *c, Expr *e, const struct Func *f) {
  bool vec = f->name[0] == 'v';
  const char *sized = vec ? "ones(n)" : "ones(n, m)";
  if (e->nargs != 1) {
    ctx_error(c, e->loc, "%s takes 1 argument, the value of every element, as in %s(1), and its "
              "size is inferred; for a given size write %s", f->name, f->name, sized);
    return NULL;
  }
  // The type vector(n) of a declaration is not this function.
  Expr *arg = e->args[0];
  if (arg->kind == EX_NAME && find_dim(c, arg->name) >= 0 && find_var(c, arg->name) < 0 &&
      !find_let(c, arg->name)) {
    ctx_error(c, e->loc, "the argument of %s is the value of every element, not a size: %s(1) is "
              "a %s of ones whose size is inferred; for the size %s write %s", f->name, f->name,
              f->name, arg->name, sized);
    return NULL;
  }
  Node *v = lower(c, arg);
  if (!v)
    return NULL;
  if (!shape_is_scalar(v->shape)) {
    ctx_error(c, e->loc, "%s takes a scalar, the value of every element, not %s", f->name,
              shape_str(c, v->shape));
    return NULL;
  }
  Shape s = {.c = dim_lit(1)};
  if (!infer_fresh(c, e->loc, f->name, vec ? 2 : 0, &s.r) ||
      (!vec && !infer_fresh(c, e->loc, f->name, 1, &s.c)))
    return NULL;
  Node *ones = ast_fill(c, OP_ONES, s);
  if (!ones)
    return failed(c, e->loc);
  return ast_is_num(v, 1) ? ones : make(c, OP_MUL, v, ones, 0, e->loc);
}

static Node *reduce(Ctx *c, Expr *e, const struct Func *f, Node *a) {
  long k = 0;
  if (e->nargs == 2 && !dim_arg(c, e->args[1], f->name, &k))
    return NULL;
  bool mean = !strcmp(f->name, "mean");
  if (f->op == OP_SOFTMAX && k == 0) {
    // softmax(A): over all elements, exp(A - logsumexp(A)).
    Node *lse = make(c, OP_LSE, a, NULL, 0, e->loc);
    Node *d = lse ? make(c, OP_SUB, a, lse, 0, e->loc) : NULL;
    return d ? make(c, OP_EXP, d, NULL, 0, e->loc) : NULL;
  }
  if (f->op != OP_SUM && k == 1) {
    // Down the columns is along the rows of the transpose.
    Node *t = make(c, OP_TRANS, a, NULL, 0, e->loc);
    Node *r = t ? make(c, f->op, t, NULL, 2, e->loc) : NULL;
    return r ? make(c, OP_TRANS, r, NULL, 0, e->loc) : NULL;
  }
  Node *n = make(c, f->op, a, NULL, k, e->loc);
  if (n && mean)
    n = make(c, OP_DIV, n, count(c, a->shape, k), 0, e->loc);
  return n;
}

// Functions people bring from matrixcalculus.org's output, MATLAB or
// NumPy, and how matdiff writes them.
static const struct Alias {
  const char *name, *hint;
} aliases[] = {
    {"adj", "the adjugate is det(A)*inv(A)"},
    {"trace", "the trace is tr(A)"},
    {"transpose", "the transpose is A'"},
    {"inverse", "the inverse is inv(A), or A^-1"},
    {"norm", "the norms are norm2(e) or ||e|| (Euclidean, or Frobenius for a matrix) and norm1(e) "
             "or ||e||_1"},
    {"ln", "the natural logarithm is log(e)"},
    {"asin", "write arcsin(e)"},
    {"acos", "write arccos(e)"},
    {"atan", "write arctan(e)"},
    {"logistic", "write sigmoid(e)"},
};

static Node *call(Ctx *c, Expr *e) {
  const struct Func *f = NULL;
  for (size_t i = 0; i < sizeof funcs / sizeof *funcs && !f; i++)
    if (funcs[i].name && !strcmp(funcs[i].name, e->name))
      f = &funcs[i];
  if (!f) {
    for (size_t i = 0; i < sizeof aliases / sizeof *aliases; i++)
      if (!strcmp(aliases[i].name, e->name)) {
        ctx_error(c, e->loc, "unknown function '%s'; %s", e->name, aliases[i].hint);
        return NULL;
      }
    ctx_error(c, e->loc, "unknown function '%s'", e->name);
    return NULL;
  }
  if (f->form == F_SIZES)
    return sizes(c, e, f);
  if (f->form == F_FILL)
    return fill(c, e, f);
  int min = 1, max = f->form == F_REDUCE ? 2 : !strcmp(f->name, "dot") ? 2 : 1;
  if (!strcmp(f->name, "dot"))
    min = 2;
  if (e->nargs < min || e->nargs > max) {
    if (min == max)
      ctx_error(c, e->loc, "%s takes %d argument%s, not %d", f->name, min, min == 1 ? "" : "s", e->nargs);
    else
      ctx_error(c, e->loc, "%s takes 1 or 2 arguments, as in %s(A) or %s(A, 2), not %d", f->name,
                f->name, f->name, e->nargs);
    return NULL;
  }
  Node *a = lower(c, e->args[0]);
  if (!a)
    return NULL;
  if (f->form == F_REDUCE)
    return reduce(c, e, f, a);
  if (!strcmp(f->name, "dot")) {
    Node *b = lower(c, e->args[1]);
    if (!b)
      return NULL;
    infer_same(c, a->shape, b->shape);
    if (!shape_eq(infer_shape(c, a->shape), infer_shape(c, b->shape))) {
      ctx_error(c, e->loc, "dot needs two operands of one shape, not %s and %s", shape_str(c, a->shape),
                shape_str(c, b->shape));
      return NULL;
    }
    Node *p = make(c, OP_EMUL, a, b, 0, e->loc);
    return p ? make(c, OP_SUM, p, NULL, 0, e->loc) : NULL;
  }
  if (!strcmp(f->name, "norm1")) {
    Node *p = make(c, OP_ABS, a, NULL, 0, e->loc);
    return p ? make(c, OP_SUM, p, NULL, 0, e->loc) : NULL;
  }
  if (!strcmp(f->name, "diag"))
    return shape_is_scalar(a->shape) ? a
           : make(c, shape_is_column(a->shape) ? OP_DIAGM : OP_DIAGV, a, NULL, 0, e->loc);
  return make(c, f->op, a, NULL, 0, e->loc);
}

static bool add_var(Ctx *c, Var v) {
  Var *vars = arena_grow(&c->arena, c->vars, c->nvars, &c->varcap, sizeof *vars);
  if (!vars || !names_put(&c->arena, &c->varidx, v.name, c->nvars))
    return ctx_error(c, v.loc, "out of memory");
  vars[c->nvars] = v;
  c->vars = vars;
  int index = c->nvars++;
  if (!(c->vars[index].node = ast_var(c, index)))
    return ctx_error(c, v.loc, "out of memory");
  return true;
}

// A variable of a one-line expression, declared where it is first used.
// matrixcalculus.org's convention gives its kind by its first letter: a-g
// a scalar, h-z a vector, A-Z a matrix (lambda is a vector, x1 too); its
// sizes are inferred (infer.c).
static Node *implicit_var(Ctx *c, Expr *e) {
  char first = e->name[0];
  Var v = {.name = e->name, .shape = shape_scalar(), .vector = first >= 'h' && first <= 'z',
           .loc = e->loc};
  bool matrix = first >= 'A' && first <= 'Z';
  if ((v.vector || matrix) && !infer_fresh(c, e->loc, NULL, matrix ? 0 : 2, &v.shape.r))
    return NULL;
  if (matrix && !infer_fresh(c, e->loc, NULL, 1, &v.shape.c))
    return NULL;
  return add_var(c, v) ? c->vars[c->nvars - 1].node : NULL;
}

// Does E stand right after a ^ or .^, as T does in A^T?
static bool exponent(Ctx *c, const Expr *e) {
  int i = e->loc.begin;
  while (i > 0 && (c->src[i - 1] == ' ' || c->src[i - 1] == '\t'))
    i--;
  return i > 0 && c->src[i - 1] == '^';
}

static Node *name(Ctx *c, Expr *e) {
  int v = find_var(c, e->name);
  if (v >= 0)
    return c->vars[v].node;
  Node *n = find_let(c, e->name);
  if (n)
    return n;
  int d = find_dim(c, e->name);
  if (d >= 0)
    return (n = ast_dim(c, (Dim){.sym = d})) ? n : failed(c, e->loc);
  // A bare eye, unless the program names something so: the identity, its
  // size inferred (infer.c), as on matrixcalculus.org.
  Dim size;
  if (!strcmp(e->name, "eye"))
    return !infer_fresh(c, e->loc, "eye", 2, &size) ? NULL
           : (n = ast_fill(c, OP_EYE, (Shape){size, size})) ? n : failed(c, e->loc);
  if (c->implicit)
    return implicit_var(c, e);
  if (!strcmp(e->name, "T") && exponent(c, e))
    ctx_error(c, e->loc, "undeclared variable 'T'; the transpose is written A', not A^T");
  else
    ctx_error(c, e->loc, "undeclared variable '%s'", e->name);
  return NULL;
}

static Node *norm(Ctx *c, Expr *e, Node *a) {
  bool vector = shape_is_column(a->shape) || shape_is_row(a->shape);
  if (e->sub == '2' && !vector) {
    ctx_error(c, e->loc, "||A||_2 of the matrix %s would be the spectral norm, which matdiff does not "
              "have; use ||A||_F for the Frobenius norm", shape_str(c, a->shape));
    return NULL;
  }
  if (e->sub == '1') {
    Node *p = make(c, OP_ABS, a, NULL, 0, e->loc);
    return p ? make(c, OP_SUM, p, NULL, 0, e->loc) : NULL;
  }
  return make(c, OP_NORM, a, NULL, 0, e->loc);
}

static Node *lower(Ctx *c, Expr *e) {
  Node *a, *b;
  switch (e->kind) {
  case EX_NUM:
    return ast_num(c, e->num);
  case EX_NAME:
    return name(c, e);
  case EX_CALL:
    return call(c, e);
  case EX_NORM:
    return (a = lower(c, e->a)) ? norm(c, e, a) : NULL;
  case EX_NEG:
    return (a = lower(c, e->a)) ? binary(c, OP_MUL, ast_num(c, -1), a, e->loc) : NULL;
  case EX_TRANS:
    return (a = lower(c, e->a)) ? make(c, OP_TRANS, a, NULL, 0, e->loc) : NULL;
  case EX_BINARY:
    if (!(a = lower(c, e->a)) || !(b = lower(c, e->b)))
      return NULL;
    return binary(c, e->op, a, b, e->loc);
  }
  return NULL;
}

static bool dim(Ctx *c, DimSpec *d, Dim *out) {
  if (!d->name) {
    *out = dim_lit(d->n);
    return true;
  }
  int i = find_dim(c, d->name);
  if (i < 0 && find_var(c, d->name) >= 0)
    return ctx_error(c, d->loc, "'%s' is a variable, not a size", d->name);
  if (i < 0 && (i = ctx_new_dim(c, d->name)) < 0)
    return ctx_error(c, d->loc, "out of memory");
  *out = (Dim){.sym = i};
  return true;
}

static bool declare(Ctx *c, Stmt *s) {
  if (find_var(c, s->name) >= 0 || find_let(c, s->name))
    return ctx_error(c, s->loc, "'%s' is already declared", s->name);
  if (find_dim(c, s->name) >= 0)
    return ctx_error(c, s->loc, "'%s' is already a size", s->name);
  // symmetric(n) and posdef(n) are n x n matrices that are known to be
  // symmetric (and positive definite): matrixcalculus.org's "symmetric
  // matrix", with one size, as the matrix is square.
  static const struct {
    const char *type;
    int ndims;
    const char *form;
  } types[] = {{"scalar", 0, "scalar"},         {"vector", 1, "vector(n)"},
               {"matrix", 2, "matrix(n, m)"},   {"symmetric", 1, "symmetric(n)"},
               {"posdef", 1, "posdef(n)"}};
  int t = -1;
  for (int i = 0; i < 5; i++)
    if (!strcmp(s->type, types[i].type))
      t = i;
  if (t < 0)
    return ctx_error(c, s->typeloc,
                     "unknown type '%s'; expected scalar, vector(n), matrix(n, m), symmetric(n) "
                     "or posdef(n)", s->type);
  if (s->ndims != types[t].ndims)
    return ctx_error(c, s->typeloc, "%s takes %d size%s, as in '%s'%s", s->type, types[t].ndims,
                     types[t].ndims == 1 ? "" : "s", types[t].form,
                     t >= 3 ? ": the matrix is square" : "");
  Var v = {.name = s->name, .shape = shape_scalar(), .vector = t == 1, .symmetric = t >= 3,
           .posdef = t == 4, .loc = s->loc};
  if (t >= 1 && !dim(c, &s->dims[0], &v.shape.r))
    return false;
  if (t == 2 && !dim(c, &s->dims[1], &v.shape.c))
    return false;
  if (t >= 3)
    v.shape.c = v.shape.r;
  return add_var(c, v);
}

static bool wrt(Ctx *c, Stmt *s) {
  for (int i = 0; i < s->nnames; i++) {
    int v = find_var(c, s->names[i]);
    if (v < 0)
      return ctx_error(c, s->nameloc[i], "'%s' in wrt is not a declared variable", s->names[i]);
    c->vars[v].wrt = true;
  }
  return true;
}

static bool assign(Ctx *c, Stmt *s) {
  if (find_var(c, s->name) >= 0)
    return ctx_error(c, s->loc, "cannot assign to the input '%s'", s->name);
  if (find_let(c, s->name))
    return ctx_error(c, s->loc, "'%s' is already assigned", s->name);
  if (find_dim(c, s->name) >= 0)
    return ctx_error(c, s->loc, "cannot assign to the size '%s'", s->name);
  Node *n = lower(c, s->expr);
  if (!n)
    return false;
  Let *lets = arena_grow(&c->arena, c->lets, c->nlets, &c->letcap, sizeof *lets);
  if (!lets || !names_put(&c->arena, &c->letidx, s->name, c->nlets))
    return ctx_error(c, s->loc, "out of memory");
  lets[c->nlets++] = (Let){s->name, n};
  c->lets = lets;
  c->outname = s->name;
  c->out = n;
  return true;
}

// One walk over the statements.
static bool lower_round(Ctx *c) {
  bool any_wrt = false;
  Stmt *last = NULL;
  for (Stmt *s = c->stmts; s; s = s->next) {
    bool ok = s->kind == ST_DECL ? declare(c, s) : s->kind == ST_WRT ? wrt(c, s) : assign(c, s);
    if (!ok)
      return false;
    any_wrt |= s->kind == ST_WRT;
    if (s->kind == ST_ASSIGN)
      last = s;
  }
  // No assignment: the error points at the start of the last line that
  // holds anything.
  long end = c->len;
  while (end > 0 && (c->src[end - 1] == '\n' || c->src[end - 1] == '\r' || c->src[end - 1] == ' '))
    end--;
  long bol = end;
  while (bol > 0 && c->src[bol - 1] != '\n')
    bol--;
  if (!last)
    return ctx_error(c, (Loc){(int)bol, (int)bol},
                     "no output: end with an assignment such as 'y = ||X*W + b||_F^2'");
  if (!any_wrt)
    for (int i = 0; i < c->nvars; i++)
      c->vars[i].wrt = true;
  return true;
}

// Back to before the first statement, with the parse tree kept: no nodes,
// names or error. The arena keeps what the round allocated until the end.
static void lower_reset(Ctx *c) {
  if (c->table)
    memset(c->table, 0, sizeof *c->table * (size_t)c->tabsize);
  c->nnodes = c->nvars = c->ndims = c->nlets = 0;
  memset(&c->varidx, 0, sizeof c->varidx);
  memset(&c->dimidx, 0, sizeof c->dimidx);
  memset(&c->letidx, 0, sizeof c->letidx);
  c->outname = NULL;
  c->out = NULL;
  c->failed = false;
  diag_clear(c->err);
}

// A round that equated inferred sizes left nodes made before with the
// sizes they had, and an error it met may read differently once every size
// is known from the start: such a round is done again (see infer.c). The
// round after one that equated sizes equates none; a few more are a bug.
bool lower_program(Ctx *c) {
  for (int round = 1;; round++) {
    bool ok = lower_round(c);
    if (!infer_round(c))
      return ok && infer_finish(c);
    if (round == 4)
      return ctx_error(c, (Loc){-1, -1}, "internal error: the inferred sizes do not settle");
    lower_reset(c);
  }
}
