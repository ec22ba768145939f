/*
 * shape.c - shape inference with symbolic sizes, and the lowering of the
 * parse tree to the DAG. Each operation's shape rule is here; every misfit
 * is reported at the operator with both shapes named, e.g.
 *   cannot multiply (n×k) by (n×k): inner sizes k and n differ
 */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "md.h"

bool dim_eq(Dim a, Dim b) { return a.sym == b.sym && (a.sym >= 0 || a.n == b.n); }

bool shape_eq(Shape a, Shape b) { return dim_eq(a.r, b.r) && dim_eq(a.c, b.c); }

static Dim lit(long n) { return (Dim){.sym = -1, .n = n}; }

Shape shape_scalar(void) { return (Shape){lit(1), lit(1)}; }

bool shape_is_scalar(Shape s) { return dim_eq(s.r, lit(1)) && dim_eq(s.c, lit(1)); }

long dim_value(Dim d, const long *dims) { return d.sym >= 0 ? dims[d.sym] : d.n; }

char *dim_str(Ctx *c, Dim d) {
  return d.sym >= 0 ? c->dims[d.sym] : arena_printf(&c->arena, "%ld", d.n);
}

char *shape_str(Ctx *c, Shape s) {
  if (shape_is_scalar(s))
    return "scalar";
  return arena_printf(&c->arena, "(%s×%s)", dim_str(c, s.r), dim_str(c, s.c));
}

static const char *verb(Op op) {
  switch (op) {
  case OP_ADD: return "add";
  case OP_SUB: return "subtract";
  case OP_EMUL: return "multiply elementwise";
  case OP_EDIV: return "divide elementwise";
  case OP_EPOW: return "raise elementwise";
  default: return op_spelling[op];
  }
}

// Elementwise operands fit when their shapes are equal or one is a scalar.
static bool elementwise(Shape a, Shape b, Shape *out) {
  if (shape_eq(a, b) || shape_is_scalar(b))
    *out = a;
  else if (shape_is_scalar(a))
    *out = b;
  else
    return false;
  return true;
}

bool shape_check(Ctx *c, Op op, Shape a, Shape b, Shape *out, char *msg, size_t n) {
  switch (op) {
  case OP_ADD:
  case OP_SUB:
  case OP_EMUL:
  case OP_EDIV:
  case OP_EPOW:
    if (elementwise(a, b, out))
      return true;
    snprintf(msg, n, "cannot %s %s and %s: shapes differ", verb(op), shape_str(c, a),
             shape_str(c, b));
    return false;
  case OP_MUL:
    if (shape_is_scalar(a) || shape_is_scalar(b))
      return elementwise(a, b, out);
    if (dim_eq(a.c, b.r)) {
      *out = (Shape){a.r, b.c};
      return true;
    }
    snprintf(msg, n, "cannot multiply %s by %s: inner sizes %s and %s differ", shape_str(c, a),
             shape_str(c, b), dim_str(c, a.c), dim_str(c, b.r));
    return false;
  case OP_DIV:
    if (shape_is_scalar(b)) {
      *out = a;
      return true;
    }
    snprintf(msg, n, "cannot divide %s by %s: the divisor of / must be a scalar; use ./ to divide elementwise",
             shape_str(c, a), shape_str(c, b));
    return false;
  case OP_POW:
    if (shape_is_scalar(a) && shape_is_scalar(b)) {
      *out = a;
      return true;
    }
    if (!shape_is_scalar(a))
      snprintf(msg, n, "^ needs a scalar base, not %s; use .^ for an elementwise power",
               shape_str(c, a));
    else
      snprintf(msg, n, "the exponent of ^ must be a scalar, not %s; use .^ for an elementwise power",
               shape_str(c, b));
    return false;
  case OP_TRANS:
    *out = (Shape){a.c, a.r};
    return true;
  case OP_SUM:
  case OP_NORM:
  case OP_NORMSQ:
    *out = shape_scalar();
    return true;
  case OP_EXP:
  case OP_LOG:
    *out = a;
    return true;
  case OP_NUM:
  case OP_VAR:
  case OP_ZEROS:
  case OP_ONES:
  case OP_COUNT:
    break;
  }
  snprintf(msg, n, "bad operation");
  return false;
}

/* ---- lowering ---------------------------------------------------------- */

static int find_var(Ctx *c, const char *name) {
  for (int i = 0; i < c->nvars; i++)
    if (!strcmp(c->vars[i].name, name))
      return i;
  return -1;
}

static Node *find_let(Ctx *c, const char *name) {
  for (int i = c->nlets - 1; i >= 0; i--)
    if (!strcmp(c->lets[i].name, name))
      return c->lets[i].node;
  return NULL;
}

static int find_dim(Ctx *c, const char *name) {
  for (int i = 0; i < c->ndims; i++)
    if (!strcmp(c->dims[i], name))
      return i;
  return -1;
}

// Grow an arena array of N elements of SIZE to N+1, by copying (arrays
// here are short: variables, sizes, assignments).
static void *push(Ctx *c, void *arr, int n, size_t size) {
  void *p = arena_alloc(&c->arena, size * (size_t)(n + 1));
  if (p && n)
    memcpy(p, arr, size * (size_t)n);
  return p;
}

static Node *oom(Ctx *c, Loc loc) {
  ctx_error(c, loc, "out of memory");
  return NULL;
}

static Node *binary(Ctx *c, Op op, Node *a, Node *b, Loc loc) {
  char msg[400];
  Shape s;
  if (!shape_check(c, op, a->shape, b->shape, &s, msg, sizeof msg)) {
    ctx_error(c, loc, "%s", msg);
    return NULL;
  }
  // ||e||^2 is kept whole: its derivative is 2*e, with no square root.
  if ((op == OP_POW || op == OP_EPOW) && a->op == OP_NORM && ast_is_num(b, 2))
    return ast_op(c, OP_NORMSQ, a->a, NULL);
  Node *n = ast_op(c, op, a, b);
  return n ? n : oom(c, loc);
}

static Node *lower(Ctx *c, Expr *e);

static Node *call(Ctx *c, Expr *e) {
  static const struct {
    const char *name;
    Op op;
  } funcs[] = {{"sum", OP_SUM}, {"exp", OP_EXP}, {"log", OP_LOG}};
  for (size_t i = 0; i < sizeof funcs / sizeof *funcs; i++) {
    if (strcmp(funcs[i].name, e->name))
      continue;
    if (e->nargs != 1) {
      ctx_error(c, e->loc, "%s takes 1 argument, not %d", e->name, e->nargs);
      return NULL;
    }
    Node *a = lower(c, e->args[0]);
    if (!a)
      return NULL;
    Node *n = ast_op(c, funcs[i].op, a, NULL);
    return n ? n : oom(c, e->loc);
  }
  ctx_error(c, e->loc, "unknown function '%s'", e->name);
  return NULL;
}

static Node *name(Ctx *c, Expr *e) {
  int v = find_var(c, e->name);
  if (v >= 0)
    return c->vars[v].node;
  Node *n = find_let(c, e->name);
  if (n)
    return n;
  if (find_dim(c, e->name) >= 0)
    ctx_error(c, e->loc, "'%s' is a size, not a variable", e->name);
  else
    ctx_error(c, e->loc, "undeclared variable '%s'", e->name);
  return NULL;
}

static Node *norm(Ctx *c, Expr *e, Node *a) {
  bool vector = dim_eq(a->shape.c, lit(1)) || dim_eq(a->shape.r, lit(1));
  if (e->sub == '2' && !vector) {
    ctx_error(c, e->loc, "||A||_2 of the matrix %s would be the spectral norm, which matdiff does not "
              "have; use ||A||_F for the Frobenius norm", shape_str(c, a->shape));
    return NULL;
  }
  if (e->sub == '1') {
    ctx_error(c, e->loc, "||e||_1 is not supported yet");
    return NULL;
  }
  Node *n = ast_op(c, OP_NORM, a, NULL);
  return n ? n : oom(c, e->loc);
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
    if (!(a = lower(c, e->a)))
      return NULL;
    return (a = ast_op(c, OP_TRANS, a, NULL)) ? a : oom(c, e->loc);
  case EX_BINARY:
    if (!(a = lower(c, e->a)) || !(b = lower(c, e->b)))
      return NULL;
    return binary(c, e->op, a, b, e->loc);
  }
  return NULL;
}

static bool dim(Ctx *c, DimSpec *d, Dim *out) {
  if (!d->name) {
    *out = lit(d->n);
    return true;
  }
  int i = find_dim(c, d->name);
  if (i < 0) {
    char **dims = push(c, c->dims, c->ndims, sizeof *dims);
    if (!dims)
      return ctx_error(c, d->loc, "out of memory");
    dims[c->ndims] = d->name;
    c->dims = dims;
    i = c->ndims++;
  }
  *out = (Dim){.sym = i};
  return true;
}

static bool declare(Ctx *c, Stmt *s) {
  if (find_var(c, s->name) >= 0 || find_let(c, s->name))
    return ctx_error(c, s->loc, "'%s' is already declared", s->name);
  static const struct {
    const char *type;
    int ndims;
    const char *form;
  } types[] = {{"scalar", 0, "scalar"}, {"vector", 1, "vector(n)"}, {"matrix", 2, "matrix(n, m)"}};
  int t = -1;
  for (int i = 0; i < 3; i++)
    if (!strcmp(s->type, types[i].type))
      t = i;
  if (t < 0)
    return ctx_error(c, s->typeloc, "unknown type '%s'; expected scalar, vector(n) or matrix(n, m)",
                     s->type);
  if (s->ndims != types[t].ndims)
    return ctx_error(c, s->typeloc, "%s takes %d size%s, as in '%s'", s->type, types[t].ndims,
                     types[t].ndims == 1 ? "" : "s", types[t].form);
  Var v = {.name = s->name, .shape = shape_scalar(), .vector = t == 1, .loc = s->loc};
  if (t >= 1 && !dim(c, &s->dims[0], &v.shape.r))
    return false;
  if (t == 2 && !dim(c, &s->dims[1], &v.shape.c))
    return false;
  Var *vars = push(c, c->vars, c->nvars, sizeof *vars);
  if (!vars)
    return ctx_error(c, s->loc, "out of memory");
  vars[c->nvars] = v;
  c->vars = vars;
  int index = c->nvars++;
  if (!(c->vars[index].node = ast_var(c, index)))
    return ctx_error(c, s->loc, "out of memory");
  return true;
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
  Node *n = lower(c, s->expr);
  if (!n)
    return false;
  Let *lets = push(c, c->lets, c->nlets, sizeof *lets);
  if (!lets)
    return ctx_error(c, s->loc, "out of memory");
  lets[c->nlets++] = (Let){s->name, n};
  c->lets = lets;
  c->outname = s->name;
  c->out = n;
  return true;
}

bool shape_program(Ctx *c) {
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
  if (!last)
    return ctx_error(c, (Loc){(int)c->len, (int)c->len},
                     "no output: end with an assignment such as 'y = ||X*W + b||_F^2'");
  if (!shape_is_scalar(c->out->shape))
    return ctx_error(c, last->loc, "the output '%s' is %s, not a scalar; reduce it with sum(...) or a norm",
                     last->name, shape_str(c, c->out->shape));
  if (!any_wrt)
    for (int i = 0; i < c->nvars; i++)
      c->vars[i].wrt = true;
  return true;
}
