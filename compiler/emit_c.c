/*
 * emit_c.c - DAG to C. The value and the gradients become straight-line
 * C99 that calls the runtime's kernels:
 *
 *   - matrix products are mdrt_gemm calls (mdrt_syrk for A*A' and A'*A);
 *     a transpose is a flag, never a copy; a product added into a sum or
 *     into a gradient buffer goes straight in through gemm's beta;
 *   - elementwise chains whose values are used once are fused into one
 *     loop, and a reduction into the loop that produces its operand;
 *   - every other matrix value is a temporary in one workspace, every
 *     scalar a local variable, each commented with the expression it holds;
 *   - work needed only by some gradients sits under `if (dX || ...)`, so
 *     a NULL gradient buffer skips it; so does work only a matrix output
 *     needs, under `if (out)`, in the gradients' body;
 *   - the kernels that can fail (a singular matrix) make the function
 *     return their message; the public wrappers turn it into NaN or -1;
 *   - a body whose product chains the sizes group differently (plan.c's
 *     variants) is printed once per variant, P_forward_v0 ..., and
 *     P_forward runs the one that does the fewest operations at its sizes.
 *
 * plan.c first decides, once per body, which nodes get a buffer, which are
 * fused into their user, which products are absorbed into a sum; this
 * file prints from that plan.
 */
#include <ctype.h>
#include <float.h>
#include <math.h>
#include <string.h>
#include "emit.h"

#define COMMENT_FORMULA_MAX 69  /* bytes of a statement's comment, about 80 columns in all */

/* ---- C text ------------------------------------------------------------- */

// Pieces of C text live in the arena. When memory runs out a piece is ""
// and e->oom is set: emit_c then fails with that reason, and no NULL
// reaches a printf on the way.
#define text(e, ...) checked((e), arena_printf(&(e)->c->arena, __VA_ARGS__))
static const char *checked(Emit *e, const char *s) {
  if (!s)
    e->oom = true;
  return s ? s : "";
}

static const char *dimc(Emit *e, Dim d) {
  return d.sym >= 0 ? e->dname[d.sym] : text(e, "%ld", d.n);
}

// rows*cols as C, folded when both are literals.
static const char *lenc(Emit *e, Shape s) {
  if (s.r.sym < 0 && s.c.sym < 0)
    return text(e, "%ld", s.r.n * s.c.n);
  if (s.r.sym < 0 && s.r.n == 1)
    return dimc(e, s.c);
  if (s.c.sym < 0 && s.c.n == 1)
    return dimc(e, s.r);
  return text(e, "%s*%s", dimc(e, s.r), dimc(e, s.c));
}

// V as a C floating literal: 2.0, 0.5, 1e+20 (or 2.0f ...); inf and nan as
// print_num spells them.
//
// In single precision a finite V out of float's range would be C's
// "floating constant exceeds range" (inf) or "truncated to zero": either
// changes the formula silently, and breaks a -Werror build. It is an
// error, reported once; a subnormal float is kept.
static const char *numc(Emit *e, double v) {
  char buf[40];
  print_num(buf, sizeof buf, v);
  if (e->opts->flt && isfinite(v) && (fabs(v) > FLT_MAX || (v != 0 && (float)v == 0)))
    ctx_error(e->c, (Loc){-1, -1},
              "--float: the constant %s is outside single precision's range (it would be %s); "
              "compile it in double", buf, fabs(v) > 1 ? "inf" : "0");
  bool dot = strpbrk(buf, ".eEn") != NULL;  // n: nan, inf
  return text(e, v < 0 ? "(%s%s%s)" : "%s%s%s", buf, dot ? "" : ".0",
                      isfinite(v) ? e->lit : "");
}

// The C function of elementwise op OP at the emitter's precision.
static const char *cfunc(Emit *e, Op op) { return e->opts->flt ? op_cfunc_f[op] : op_cfunc[op]; }

static bool is_one(Dim d) { return d.sym < 0 && d.n == 1; }

static const char *compute_element(Emit *e, Node *n, const char *ri, const char *ci, bool flat);

// The C expression for element (ri, ci) of N, read from memory or computed;
// FLAT means one index i runs over N's elements in row-major order. An
// operand with a size-1 dimension reads index 0 there: that is
// broadcasting.
static const char *element(Emit *e, Node *n, const char *ri, const char *ci, bool flat) {
  if (n->op == OP_NUM)
    return numc(e, n->num);
  if (n->op == OP_DIM)
    return text(e, "(%s)%s", e->real, e->dname[n->k]);
  if (scalar(n))
    return is_input(n) ? text(e, "%s[0]", e->cname[n->id])
                                               : e->cname[n->id];
  if (in_memory(e->p, n)) {
    const char *name = e->cname[n->id];
    if (flat)
      return text(e, "%s[i]", name);
    if (is_one(n->shape.c))
      return text(e, "%s[%s]", name, ri);
    if (is_one(n->shape.r))
      return text(e, "%s[%s]", name, ci);
    return text(e, "%s[%s*%s + %s]", name, ri, dimc(e, n->shape.c), ci);
  }
  return compute_element(e, n, ri, ci, flat);
}

// Element (ri, ci) of N computed from its operands.
static const char *compute_element(Emit *e, Node *n, const char *ri, const char *ci, bool flat) {
  switch (n->op) {
  case OP_ZEROS: return e->zero;
  case OP_ONES: return e->one;
  case OP_EYE:
    if (!strcmp(ri, ci))
      return e->one;
    return text(e, "(%s == %s ? %s : %s)", ri, ci, e->one, e->zero);
  case OP_TRANS: return element(e, n->a, ci, ri, flat);
  case OP_DIAGM:
    if (!strcmp(ri, ci))
      return element(e, n->a, ri, "0", false);
    return text(e, "(%s == %s ? %s : %s)", ri, ci, element(e, n->a, ri, "0", false),
                        e->zero);
  case OP_DIAGV: return element(e, n->a, ri, ri, false);
  default: break;
  }
  // Broadcast operands see index 0 along their size-1 dimensions.
  const char *a = NULL, *b = NULL;
  if (n->a)
    a = element(e, n->a, is_one(n->a->shape.r) ? "0" : ri, is_one(n->a->shape.c) ? "0" : ci, flat);
  if (n->b)
    b = element(e, n->b, is_one(n->b->shape.r) ? "0" : ri, is_one(n->b->shape.c) ? "0" : ci, flat);
  if (op_cfunc[n->op])
    return text(e, "%s(%s)", cfunc(e, n->op), a);
  switch (n->op) {
  case OP_ADD: return text(e, "(%s + %s)", a, b);
  case OP_SUB: return text(e, "(%s - %s)", a, b);
  case OP_MUL:
  case OP_EMUL: return text(e, "(%s*%s)", a, b);
  case OP_DIV:
  case OP_EDIV: return text(e, "(%s/%s)", a, b);
  case OP_POW:
  case OP_EPOW:
    // A square of a value in memory (a name, or one indexed: nothing in
    // parentheses) is a product, cheaper than pow(), which libtcc calls.
    if (ast_is_num(n->b, 2) && !strchr(a, '('))
      return text(e, "(%s*%s)", a, a);
    return text(e, "pow%s(%s, %s)", e->libm, a, b);
  default: return text(e, "%s /* unreachable */", e->zero);
  }
}

// Does reading N elementwise over SHAPE need row and column indices (a
// transpose, a broadcast, an index map), or does one flat index do?
static bool needs_2d(Emit *e, Node *n, Shape shape, bool top) {
  if (scalar(n))
    return false;
  if (!shape_eq(n->shape, shape))
    return true;
  Op op = n->op;
  if (is_input(n) || op == OP_ZEROS || op == OP_ONES)
    return false;
  // A vector and its transpose lie the same way in memory.
  if (op == OP_TRANS && (is_one(n->a->shape.r) || is_one(n->a->shape.c)))
    return needs_2d(e, n->a, n->a->shape, false);
  if (op == OP_EYE || op == OP_TRANS || op == OP_DIAGM || op == OP_DIAGV)
    return true;
  if (e->p->form[n->id] == F_BUFFER && !top)
    return false;
  return (n->a && needs_2d(e, n->a, shape, false)) || (n->b && needs_2d(e, n->b, shape, false));
}

static void indent(Emit *e, int depth) {
  for (int i = 0; i < depth; i++)
    buf_puts(e->o, "  ");
}

// One line of C at DEPTH, printed straight into the output.
#define line(e, depth, ...) \
  (indent((e), (depth)), buf_printf((e)->o, __VA_ARGS__), buf_puts((e)->o, "\n"))

// "/* t3 = X*W + b */". Printed formulas never hold "*/": no '/' follows '*'.
static void comment(Emit *e, int depth, const char *lhs, Node *n) {
  char *s = print_short(e->c, n, COMMENT_FORMULA_MAX);
  if (s)
    line(e, depth, "/* %s = %s */", lhs, s);
}

// for (i) [for (j)] DST[..] OP, over SHAPE: the loops and the left side of
// the assignment; the caller prints the right side and ends the line.
static void for_each(Emit *e, int depth, Shape s, bool two, const char *dst, const char *op) {
  if (two) {
    line(e, depth, "for (long i = 0; i < %s; i++)", dimc(e, s.r));
    line(e, depth + 1, "for (long j = 0; j < %s; j++)", dimc(e, s.c));
    indent(e, depth + 2);
    buf_printf(e->o, "%s[i*%s + j] %s ", dst, dimc(e, s.c), op);
  } else {
    line(e, depth, "for (long i = 0; i < %s; i++)", lenc(e, s));
    indent(e, depth + 1);
    buf_printf(e->o, "%s[i] %s ", dst, op);
  }
}

enum { MAX_ROWS = 16 };  /* row pointers one loop hoists */

// The matrices a loop over rows i and columns j of C columns reads as
// X[i*C + j]: read through pointers to their rows, set once per row, since
// libtcc computes what it is given, and the index per element cost the
// JIT's loops a fifth of their time.
typedef struct Rows {
  const char *c;                /* the columns, spelled in C */
  const char *name[MAX_ROWS];   /* each matrix's name, len[k] characters */
  size_t len[MAX_ROWS];
  int n;
} Rows;

// TEXT with each X[i*C + j] as rowK_[j], X recorded in R.
static const char *through_rows(Emit *e, Rows *r, const char *text_in) {
  const char *pat = text(e, "[i*%s + j]", r->c);
  size_t pl = strlen(pat);
  Buf body = {0};
  for (const char *p = text_in; *p;) {
    const char *hit = strstr(p, pat), *b = hit;
    while (b && b > p && (isalnum((unsigned char)b[-1]) || b[-1] == '_'))
      b--;
    int k = 0;
    while (hit && k < r->n &&
           !(r->len[k] == (size_t)(hit - b) && !strncmp(r->name[k], b, r->len[k])))
      k++;
    if (!hit || b == hit || (k == r->n && r->n == MAX_ROWS)) {  // as it is
      size_t take = hit ? (size_t)(hit + pl - p) : strlen(p);
      buf_printf(&body, "%.*s", (int)take, p);
      p += take;
      continue;
    }
    if (k == r->n)
      r->name[r->n] = b, r->len[r->n++] = (size_t)(hit - b);
    buf_printf(&body, "%.*srow%d_[j]", (int)(b - p), p, k);
    p = hit + pl;
  }
  const char *out = text(e, "%s", body.s ? body.s : "");
  e->oom |= body.oom;
  buf_free(&body);
  return out;
}

// "for (long i = 0; i < ROWS; i++) {" and R's row pointers.
static void rows_open(Emit *e, int depth, const char *rows, const Rows *r) {
  line(e, depth, "for (long i = 0; i < %s; i++) {", rows);
  for (int k = 0; k < r->n; k++)
    line(e, depth + 1, "const %s *row%d_ = %.*s + i*%s;", e->real, k, (int)r->len[k], r->name[k],
         r->c);
}

// DST[i*C + j] OP RHS over the rows and columns of S, through rows.
static void rows_loop(Emit *e, int depth, Shape s, const char *dst, const char *op,
                      const char *rhs) {
  Rows r = {.c = dimc(e, s.c)};
  const char *body = through_rows(e, &r, rhs);
  rows_open(e, depth, dimc(e, s.r), &r);
  line(e, depth + 1, "%s *rowd_ = %s + i*%s;", e->real, dst, r.c);
  line(e, depth + 1, "for (long j = 0; j < %s; j++)", r.c);
  line(e, depth + 2, "rowd_[j] %s %s;", op, body);
  line(e, depth, "}");
}

// DST (of TOP's shape) OP the elementwise terms of TERMS, with their signs.
static void loop(Emit *e, int depth, const char *dst, Node *top, const Terms *terms,
                 const char *op) {
  bool two = false;
  for (int t = 0; t < terms->n; t++)
    if (!terms->gemm[t])
      two |= needs_2d(e, terms->node[t], top->shape, terms->node[t] == top);
  Buf rhs = {0};
  bool first = true;
  for (int t = 0; t < terms->n; t++) {
    if (terms->gemm[t])
      continue;
    Node *x = terms->node[t];
    const char *s =
        x == top ? compute_element(e, x, "i", "j", !two) : element(e, x, "i", "j", !two);
    if (first)
      buf_printf(&rhs, "%s%s", terms->sign[t] < 0 ? "-" : "", s);
    else
      buf_printf(&rhs, " %s %s", terms->sign[t] < 0 ? "-" : "+", s);
    first = false;
  }
  if (two) {
    rows_loop(e, depth, top->shape, dst, op, rhs.s ? rhs.s : "");
  } else {
    for_each(e, depth, top->shape, two, dst, op);
    buf_printf(e->o, "%s;\n", rhs.s ? rhs.s : "");
  }
  e->oom |= rhs.oom;
  buf_free(&rhs);
}

static const char *factorise(Emit *e, int depth, Node *n);

// The product PROD (a solve, plan.c's p->solve) into DST: X = op(inv(A))*B
// or B*op(inv(A)) from A's factors, never the inverse and a product.
static void solve(Emit *e, int depth, const char *dst, Node *prod) {
  Node *inv = e->p->solve[prod->id];
  bool ta, tb;
  Node *a = plan_strip(e->p, prod->a, &ta), *b = plan_strip(e->p, prod->b, &tb);
  const char *lu = factorise(e, depth, inv);
  const char *size = dimc(e, inv->shape.r);
  if (a == inv)
    line(e, depth, "if (mdrt_lu_solve%s(%d, %s, %s, %s, %s, %s))", e->kern, ta, size,
         dimc(e, prod->shape.c), lu, e->cname[b->id], dst);
  else
    line(e, depth, "if (mdrt_lu_solve_right%s(%d, %s, %s, %s, %s, %s))", e->kern, tb,
         dimc(e, prod->shape.r), size, lu, e->cname[a->id], dst);
  line(e, depth + 1, "return \"inv: out of memory\";");
}

static void gemm(Emit *e, int depth, const char *dst, Node *t, int sign, bool accumulate) {
  Gemm g;
  plan_gemm(e->p, t, &g);
  Node *prod = g.prod;
  if (e->p->solve[prod->id] && t == prod && sign > 0 && !accumulate) {
    solve(e, depth, dst, prod);
    return;
  }
  bool ta, tb;
  Node *a = plan_strip(e->p, prod->a, &ta), *b = plan_strip(e->p, prod->b, &tb);
  const char *al = g.mul ? element(e, g.mul, "0", "0", true) : e->one;
  if (g.div)
    al = text(e, "%s/%s", al, element(e, g.div, "0", "0", true));
  if (sign < 0)
    al = text(e, "-%s", al);
  if (a == b && ta != tb && !accumulate) {  // A*A' or A'*A: symmetric, half the work
    line(e, depth, "mdrt_syrk%s(%d, %s, %s, %s, %s, %s, %s);", e->kern, ta,
         dimc(e, prod->shape.r), dimc(e, prod->a->shape.c), al, e->cname[a->id], e->zero, dst);
    return;
  }
  line(e, depth, "mdrt_gemm%s(%d, %d, %s, %s, %s, %s, %s, %s, %s, %s);", e->kern, ta, tb,
       dimc(e, prod->shape.r), dimc(e, prod->shape.c), dimc(e, prod->a->shape.c), al,
       e->cname[a->id], e->cname[b->id], accumulate ? e->one : e->zero, dst);
}

// N = v.*X written fresh into DST, X a matrix of N's shape and v a vector
// along its rows or columns, both in memory as they are: the runtime's
// scaling kernel, one call, where the JIT's own loop would be slower.
static bool scale(Emit *e, int depth, const char *dst, Node *n) {
  if (n->op != OP_EMUL)
    return false;
  for (int k = 0; k < 2; k++) {
    Node *x = k ? n->b : n->a, *v = k ? n->a : n->b;
    bool rows = shape_is_column(v->shape), cols = shape_is_row(v->shape);
    if (!shape_eq(x->shape, n->shape) || (!rows && !cols) || rows == cols ||
        x->op == OP_TRANS || v->op == OP_TRANS || !in_memory(e->p, x) || !in_memory(e->p, v))
      continue;
    line(e, depth, "mdrt_scale_%s%s(%s, %s, %s, %s, %s, %s, %s);", rows ? "rows" : "cols", e->kern,
         dimc(e, n->shape.r), dimc(e, n->shape.c), e->one, e->cname[v->id], e->cname[x->id],
         e->zero, dst);
    return true;
  }
  return false;
}

// N = G.*(1 - H.^2) written fresh into DST, G and H matrices in memory of
// N's shape: the gradient through a tanh layer, by the runtime's
// tanh_grad, where the JIT's own loop would be slower.
static bool tanh_grad(Emit *e, int depth, const char *dst, Node *n) {
  if (n->op != OP_EMUL)
    return false;
  for (int k = 0; k < 2; k++) {
    Node *g = k ? n->b : n->a, *d = k ? n->a : n->b;
    if (d->op != OP_SUB || !ast_is_num(d->a, 1) || d->b->op != OP_EPOW || !ast_is_num(d->b->b, 2))
      continue;
    // 1 - H.^2 and H.^2 fused, so that the plan sees this statement read
    // H (a buffer of either is read as it is, by the loop).
    Node *h = d->b->a;
    if (in_memory(e->p, d) || in_memory(e->p, d->b) || !in_memory(e->p, g) ||
        !in_memory(e->p, h) || !shape_eq(g->shape, n->shape) || !shape_eq(h->shape, n->shape))
      continue;
    line(e, depth, "mdrt_tanh_grad%s(%s, %s, %s, %s);", e->kern, lenc(e, n->shape),
         e->cname[g->id], e->cname[h->id], dst);
    return true;
  }
  return false;
}

// Is T, a term of the sum N, a vector in memory that N repeats along its
// rows (*ROWS) or columns? Into *V the vector, through a transpose flag.
static bool repeated_vector(Emit *e, Node *n, Node *t, bool *rows, Node **v) {
  bool tr;
  *v = plan_strip(e->p, t, &tr);
  *rows = shape_is_column(t->shape) && !shape_is_column(n->shape);
  bool cols = shape_is_row(t->shape) && !shape_is_row(n->shape);
  return (*rows != cols) && !shape_is_scalar(t->shape) && in_memory(e->p, *v);
}

// SX*X + SV*V written fresh into DST (N's shape) by the runtime's
// add_bcast, where X is a matrix in memory of N's shape (or NULL: 0) and V
// a vector in memory that N repeats: X*W + b', A - v. One call, where the
// JIT's own loop is slower. False, writing nothing, where they are not so.
static bool add_bcast(Emit *e, int depth, const char *dst, Node *n, Node *x, int sx, Node *vt,
                      int sv) {
  bool rows, tr;
  Node *v;
  if (!repeated_vector(e, n, vt, &rows, &v) ||
      (x && (!in_memory(e->p, x) || plan_strip(e->p, x, &tr) != x || !shape_eq(x->shape, n->shape))))
    return false;
  const char *a = !x ? e->zero : sx > 0 ? e->one : text(e, "-%s", e->one);
  line(e, depth, "mdrt_add_bcast%s(%d, %s, %s, %s, %s, %s%s, %s, %s);", e->kern, rows,
       dimc(e, n->shape.r), dimc(e, n->shape.c), a, x ? e->cname[x->id] : "0", sv > 0 ? "" : "-",
       e->one, e->cname[v->id], dst);
  return true;
}

// The elementwise terms of N through add_bcast: a repeated vector, and at
// most one matrix.
static bool add_bcast_terms(Emit *e, int depth, const char *dst, Node *n, const Terms *terms) {
  int el[2], new = 0;
  for (int t = 0; t < terms->n; t++)
    if (!terms->gemm[t] && new++ < 2)
      el[new - 1] = t;
  if (new == 1)
    return add_bcast(e, depth, dst, n, NULL, 0, terms->node[el[0]], terms->sign[el[0]]);
  for (int k = 0; new == 2 && k < 2; k++) {
    int x = el[k], v = el[1 - k];
    if (add_bcast(e, depth, dst, n, terms->node[x], terms->sign[x], terms->node[v], terms->sign[v]))
      return true;
  }
  return false;
}

// DST = (or with ACCUMULATE, +=) SIGN*c*X, T (the one term of N) being
// c*X or X: c a scalar, X in memory of N's shape as it is, not N's own.
// The runtime's axpby, one call, where the JIT's own loop would be slower:
// a gradient's d_A += 2*A.
static bool axpby(Emit *e, int depth, const char *dst, Node *n, Node *t, int sign,
                  bool accumulate) {
  Shape shape = n->shape;
  Node *x = t, *c = NULL;
  bool tr;
  // A term in memory is read as it is: the plan has X's memory, which the
  // loop would not read, reused by then.
  if ((t->op == OP_MUL || t->op == OP_EMUL) && scalar(t->a) != scalar(t->b) &&
      !in_memory(e->p, t))
    c = scalar(t->a) ? t->a : t->b, x = scalar(t->a) ? t->b : t->a;
  if (x == n || scalar(x) || !in_memory(e->p, x) || plan_strip(e->p, x, &tr) != x ||
      !shape_eq(x->shape, shape))
    return false;
  const char *a = c ? element(e, c, "0", "0", true) : e->one;
  if (sign < 0)
    a = text(e, "-(%s)", a);
  line(e, depth, "mdrt_axpby%s(%s, %s, %s, %s, %s);", e->kern, lenc(e, shape), a,
       e->cname[x->id], accumulate ? e->one : e->zero, dst);
  return true;
}

// Write (or with ACCUMULATE, add) the sum of terms N into DST: the
// elementwise terms in one loop, then each product through gemm.
static void write_sum(Emit *e, int depth, const char *dst, Node *n, bool accumulate) {
  const Terms *terms = e->p->terms[n->id];
  int new = 0, first = -1;
  for (int t = 0; t < terms->n; t++)
    if (!terms->gemm[t] && !new++)
      first = t;
  Node *one = first >= 0 ? terms->node[first] : NULL;
  bool written = accumulate;
  if (new == 1 && terms->sign[first] > 0 && !accumulate && one != n && in_memory(e->p, one) &&
      shape_eq(one->shape, n->shape)) {
    line(e, depth, "mdrt_copy%s(%s, %s, %s);", e->kern, lenc(e, n->shape), e->cname[one->id], dst);
    written = true;
  } else if (new == 1 && terms->sign[first] > 0 && !accumulate && one == n &&
             (scale(e, depth, dst, n) || tanh_grad(e, depth, dst, n))) {
    written = true;
  } else if (new > 0 && !accumulate && one != n && add_bcast_terms(e, depth, dst, n, terms)) {
    written = true;
  } else if (new == 1 && axpby(e, depth, dst, n, one, terms->sign[first], accumulate)) {
    written = true;
  } else if (new > 0) {
    loop(e, depth, dst, n, terms, accumulate ? "+=" : "=");
    written = true;
  }
  for (int t = 0; t < terms->n; t++)
    if (terms->gemm[t]) {
      gemm(e, depth, dst, terms->node[t], terms->sign[t], written);
      written = true;
    }
}

// sum(A, 1) or sum(A, 2) into DST, fused with A's loop.
static void write_sum_axis(Emit *e, int depth, const char *dst, Node *n) {
  Node *a = n->a;
  bool cols = n->k == 1, tr;
  // A matrix in memory: the runtime's loop, compiled by cc, where the
  // JIT's own would be slower. sum(A', 1) is the row sums of A.
  Node *x = plan_strip(e->p, a, &tr);
  if (in_memory(e->p, x) && !shape_is_scalar(x->shape)) {
    line(e, depth, "mdrt_sum_axis%s(%d, %s, %s, %s, %s);", e->kern, cols != tr ? 1 : 2,
         dimc(e, x->shape.r), dimc(e, x->shape.c), e->cname[x->id], dst);
    return;
  }
  line(e, depth, "for (long i = 0; i < %s; i++)", lenc(e, n->shape));
  line(e, depth + 1, "%s[i] = 0;", dst);
  Rows r = {.c = dimc(e, a->shape.c)};
  const char *el = through_rows(e, &r, element(e, a, "i", "j", false));
  rows_open(e, depth, dimc(e, a->shape.r), &r);
  line(e, depth + 1, "for (long j = 0; j < %s; j++)", r.c);
  line(e, depth + 2, "%s[%s] += %s;", dst, cols ? "j" : "i", el);
  line(e, depth, "}");
}

// A kernel that can fail (CALL returns nonzero for a singular matrix) makes
// the generated function return its message.
static void fail_if_singular(Emit *e, int depth, const char *call, const char *what) {
  line(e, depth, "if (%s)", call);
  line(e, depth + 1, "return \"%s: the matrix is singular\";", what);
}

// inv, det or logdet (OP) of a matrix A known positive definite (posdef(n),
// simp_posdef) factorises it by Cholesky, which fails, naming it, when it
// is not. FIELD picks the result: "out, 0, 0", "0, &d, 0" or "0, 0, &d".
static void chol(Emit *e, int depth, Op op, Node *a, const char *field) {
  const char *name = print_short(e->c, a, 40);
  line(e, depth, "if (mdrt_chol_inv%s(%s, %s, %s))", e->kern, dimc(e, a->shape.r),
       e->cname[a->id], field);
  line(e, depth + 1, "return \"%s(%s): %s is not positive definite\";", op_spelling[op],
       name ? name : "", name ? name : "the matrix");
}

// The C name of the factorisation that N (det, logdet or inv) reads,
// printed first if it is not yet: mdrt_lu, which fails for a singular
// matrix with N's name in the message.
static const char *factorise(Emit *e, int depth, Node *n) {
  Node *a = n->a;
  int k = e->p->lu[a->id];
  if (!e->lu_done[k]) {
    e->lu_done[k] = true;
    fail_if_singular(e, depth, text(e, "mdrt_lu%s(%s, %s, %s)", e->kern, dimc(e, a->shape.r),
                                    e->cname[a->id], e->luname[k]), op_spelling[n->op]);
  }
  return e->luname[k];
}

// The runtime's kernel that applies N's function to a block, or NULL.
static const char *block_kernel(Emit *e, const Node *n) {
  const char *f = plan_block_function(n);
  return f ? text(e, "mdrt_v%s%s", f, e->kern) : NULL;
}

// f(X) into DST where the runtime has f on blocks: X's loop writes DST,
// then the kernel maps it in place, four (eight) at a time with libmvec,
// where a scalar libm call per element costs several times more.
static void write_mapped(Emit *e, int depth, const char *dst, Node *n, const char *kern) {
  Node *a = n->a;
  const char *len = lenc(e, n->shape);
  if (in_memory(e->p, a) && shape_eq(a->shape, n->shape)) {
    line(e, depth, "%s(%s, %s, %s);", kern, len, e->cname[a->id], dst);
    return;
  }
  // tanh(X*W + b'): b' repeated, then gemm onto it (plan.c's
  // plan_mapped), then the kernel in place.
  if (plan_mapped_sum(e->p, n)) {
    write_sum(e, depth, dst, a, false);
    line(e, depth, "%s(%s, %s, %s);", kern, len, dst, dst);
    return;
  }
  bool two = needs_2d(e, a, n->shape, false);
  for_each(e, depth, n->shape, two, dst, "=");
  buf_printf(e->o, "%s;\n", element(e, a, is_one(a->shape.r) ? "0" : "i",
                                      is_one(a->shape.c) ? "0" : "j", !two));
  line(e, depth, "%s(%s, %s, %s);", kern, len, dst, dst);
}

// Write the matrix N into DST (or add it in, with ACCUMULATE).
static void write_matrix(Emit *e, int depth, const char *dst, Node *n, bool accumulate) {
  Node *a = n->a;
  const char *src = a ? e->cname[a->id] : NULL;
  switch (accumulate ? OP_COUNT : n->op) {
  case OP_SUM:
    write_sum_axis(e, depth, dst, n);
    return;
  case OP_INV: {
    if (simp_posdef(e->c, a)) {
      chol(e, depth, OP_INV, a, text(e, "%s, 0, 0", dst));
      return;
    }
    const char *lu = factorise(e, depth, n);
    line(e, depth, "if (mdrt_lu_inverse%s(%s, %s, %s))", e->kern, dimc(e, a->shape.r), lu, dst);
    line(e, depth + 1, "return \"inv: out of memory\";");
    return;
  }
  case OP_SOFTMAX:
    line(e, depth, "mdrt_softmax_rows%s(%s, %s, %s, %s);", e->kern, dimc(e, a->shape.r),
         dimc(e, a->shape.c), src, dst);
    return;
  case OP_LSE:
    line(e, depth, "mdrt_logsumexp_rows%s(%s, %s, %s, %s);", e->kern, dimc(e, a->shape.r),
         dimc(e, a->shape.c), src, dst);
    return;
  case OP_UNIT:
    line(e, depth, "mdrt_unit%s(%s, %s, %s);", e->kern, lenc(e, a->shape), src, dst);
    return;
  default:
    break;
  }
  Node *pair = e->p->pair[n->id];
  if (!accumulate && pair && is_buffer(e->p, n)) {
    if (pair->id < n->id) {
      line(e, depth, "/* computed with %s */", e->cname[pair->id]);
    } else {
      bool sp = n->op == OP_SOFTPLUS;
      line(e, depth, "mdrt_vsoftplus_sigmoid%s(%s, %s, %s, %s);", e->kern, lenc(e, n->shape), src,
           sp ? dst : e->cname[pair->id], sp ? e->cname[pair->id] : dst);
    }
    return;
  }
  const char *kern = accumulate ? NULL : block_kernel(e, n);
  if (kern) {
    write_mapped(e, depth, dst, n, kern);
    return;
  }
  if (accumulate && in_memory(e->p, n)) {
    line(e, depth, "mdrt_axpby%s(%s, %s, %s, %s, %s);", e->kern, lenc(e, n->shape), e->one,
         e->cname[n->id], e->one, dst);
    return;
  }
  write_sum(e, depth, dst, n, accumulate);
}

// A reduction of A to a scalar, into the local variable DST.
static void reduce(Emit *e, int depth, const char *dst, Node *n) {
  bool tr;
  Node *a = plan_strip(e->p, n->a, &tr);  // a full reduction does not care about order
  bool norm = n->op == OP_NORM;
  if (in_memory(e->p, a)) {
    const char *sum = n->op == OP_SUM ? "mdrt_sum" : "mdrt_sumsq";
    if (norm)
      line(e, depth, "%s = sqrt%s(%s%s(%s, %s));", dst, e->libm, sum, e->kern, lenc(e, a->shape),
           e->cname[a->id]);
    else
      line(e, depth, "%s = %s%s(%s, %s);", dst, sum, e->kern, lenc(e, a->shape), e->cname[a->id]);
    return;
  }
  bool two = needs_2d(e, a, a->shape, false);
  const char *x = element(e, a, "i", "j", !two);
  line(e, depth, "%s = 0;", dst);
  Rows r = {.c = dimc(e, a->shape.c)};
  if (two) {
    x = through_rows(e, &r, x);
    rows_open(e, depth, dimc(e, a->shape.r), &r);
    line(e, depth + 1, "for (long j = 0; j < %s; j++) {", r.c);
  } else {
    line(e, depth, "for (long i = 0; i < %s; i++) {", lenc(e, a->shape));
  }
  if (n->op == OP_SUM) {
    line(e, depth + 1 + two, "%s += %s;", dst, x);
  } else {
    line(e, depth + 1 + two, "%s v = %s;", e->real, x);
    line(e, depth + 1 + two, "%s += v*v;", dst);
  }
  line(e, depth + two, "}");
  if (two)
    line(e, depth, "}");
  if (norm)
    line(e, depth, "%s = sqrt%s(%s);", dst, e->libm, dst);
}

// The scalar N into its local variable.
static void scalar_op(Emit *e, int depth, Node *n) {
  const char *dst = e->cname[n->id];
  Node *an = n->a;
  if (an && !scalar(an)) {
    const char *src = e->cname[an->id];
    const char *sz = dimc(e, an->shape.r);
    switch (n->op) {
    case OP_SUM:
    case OP_NORM:
    case OP_NORMSQ:
      reduce(e, depth, dst, n);
      return;
    case OP_LSE:
      line(e, depth, "%s = mdrt_logsumexp%s(%s, %s);", dst, e->kern, lenc(e, an->shape), src);
      return;
    case OP_TR:
      line(e, depth, "%s = 0;", dst);
      line(e, depth, "for (long i = 0; i < %s; i++)", sz);
      if (e->p->form[an->id] == F_GEMM) {  /* tr(P*Q) = sum of P(i,j)*Q(j,i) */
        line(e, depth + 1, "for (long j = 0; j < %s; j++)", dimc(e, an->a->shape.c));
        line(e, depth + 2, "%s += %s*%s;", dst, element(e, an->a, "i", "j", false),
             element(e, an->b, "j", "i", false));
      } else {
        line(e, depth + 1, "%s += %s;", dst, element(e, an, "i", "i", false));
      }
      return;
    case OP_DET:
    case OP_LOGDET: {
      if (simp_posdef(e->c, an)) {
        chol(e, depth, n->op, an, text(e, n->op == OP_DET ? "0, &%s, 0" : "0, 0, &%s", dst));
        return;
      }
      const char *lu = factorise(e, depth, n);
      line(e, depth, "%s = mdrt_lu_%s%s(%s, %s);", dst, n->op == OP_DET ? "det" : "logdet", e->kern,
           sz, lu);
      return;
    }
    case OP_MUL:  /* a row times a column: a dot product */
      line(e, depth, "%s = 0;", dst);
      line(e, depth, "for (long i = 0; i < %s; i++)", dimc(e, an->shape.c));
      line(e, depth + 1, "%s += %s*%s;", dst, element(e, an, "0", "i", false),
           element(e, n->b, "i", "0", false));
      return;
    default:
      break;
    }
  }
  const char *a = an ? element(e, an, "0", "0", true) : NULL;
  const char *b = n->b ? element(e, n->b, "0", "0", true) : NULL;
  if (op_cfunc[n->op]) {
    line(e, depth, "%s = %s(%s);", dst, cfunc(e, n->op), a);
    return;
  }
  switch (n->op) {
  case OP_ADD: line(e, depth, "%s = %s + %s;", dst, a, b); break;
  case OP_SUB: line(e, depth, "%s = %s - %s;", dst, a, b); break;
  case OP_MUL:
  case OP_EMUL: line(e, depth, "%s = %s*%s;", dst, a, b); break;
  case OP_DIV:
  case OP_EDIV: line(e, depth, "%s = %s/%s;", dst, a, b); break;
  case OP_POW:
  case OP_EPOW: line(e, depth, "%s = pow%s(%s, %s);", dst, e->libm, a, b); break;
  case OP_NORM: line(e, depth, "%s = fabs%s(%s);", dst, e->libm, a); break;
  case OP_NORMSQ: line(e, depth, "%s = %s*%s;", dst, a, a); break;
  case OP_LSE:   /* of a scalar: itself */
  case OP_SUM:
  case OP_TRANS:
  case OP_TR:
  case OP_DET:
  case OP_DIAGM:
  case OP_DIAGV: line(e, depth, "%s = %s;", dst, a); break;
  case OP_SOFTMAX: line(e, depth, "(void)%s;", a), line(e, depth, "%s = %s;", dst, e->one); break;
  case OP_UNIT:  /* of a scalar: through the kernel, which says what it is at 0 */
    line(e, depth, "%s = %s;", dst, a);
    line(e, depth, "mdrt_unit%s(1, &%s, &%s);", e->kern, dst, dst);
    break;
  case OP_INV: line(e, depth, "%s = %s/%s;", dst, e->one, a); break;
  case OP_LOGDET: line(e, depth, "%s = log%s(fabs%s(%s));", dst, e->libm, e->libm, a); break;
  default: line(e, depth, "%s = 0; /* unreachable */", dst); break;
  }
}

// `if (dX || dY) {`: what follows is needed by the gradients in M only.
static void guard_open(Emit *e, RootMask m) {
  indent(e, 1);
  buf_puts(e->o, "if (");
  bool first = !(m & OUT_ROOT);
  if (!first)
    buf_puts(e->o, e->outp);
  for (int i = 0; i < e->c->nvars && i < ROOT_BITS; i++)
    if (m & (1ull << i)) {
      buf_printf(e->o, "%s%s", first ? "" : " || ", e->gname[i]);
      first = false;
    }
  buf_puts(e->o, first ? "1) {\n" : ") {\n");
}

// The reals of the LU factorisation of the n x n matrix N: the factors,
// then the pivots.
static const char *lu_len(Emit *e, Node *n) {
  return text(e, "%s + %s", lenc(e, n->shape), dimc(e, n->shape.r));
}

// Declare NAME, LEN reals of the workspace after *PREV (*PREVLEN reals).
static void carve(Emit *e, const char **prev, const char **prevlen, const char *name,
                  const char *len) {
  if (*prev)
    line(e, 1, "%s *%s = %s + %s;", e->real, name, *prev, *prevlen);
  else
    line(e, 1, "%s *%s = ws;", e->real, name);
  *prev = name;
  *prevlen = len;
}

// Open the guard of the roots in M, closing the one open (*OPEN): the
// depth of the statements under it.
static int guard(Emit *e, RootMask *open, RootMask m) {
  if (m != *open) {
    if (*open != ALL_ROOTS)
      line(e, 1, "}");
    *open = m;
    if (m != ALL_ROOTS)
      guard_open(e, m);
  }
  return m == ALL_ROOTS ? 1 : 2;
}

// The declarations and the statements of the body E->p, grouped under
// guards; its roots are printed by its caller.
void emit_temps(Emit *e) {
  Ctx *c = e->c;
  const Plan *pl = e->p;
  int n = pl->n;
  // Declarations: workspace pointers and scalars.
  const char *prev = NULL, *prevlen = NULL;
  for (int i = 0; i < n; i++) {
    if (is_buffer(pl, c->nodes[i]) && pl->alias[i]) {
      line(e, 1, "%s *%s = %s;  /* %s's memory, no longer needed */", e->real, e->cname[i],
           e->cname[pl->alias[i]->id], e->cname[pl->alias[i]->id]);
    } else if (is_buffer(pl, c->nodes[i])) {
      carve(e, &prev, &prevlen, e->cname[i], lenc(e, c->nodes[i]->shape));
    } else if (pl->form[i] == F_SCALAR) {
      line(e, 1, "%s %s = 0;", e->real, e->cname[i]);
    }
  }
  for (int i = 0; i < n; i++)
    if (pl->lu[i])
      carve(e, &prev, &prevlen, e->luname[pl->lu[i]], lu_len(e, c->nodes[i]));
  if (!prev)
    line(e, 1, "(void)ws;");

  // The code, in id order, grouped under guards by the roots that need it.
  RootMask open = ALL_ROOTS;
  for (int i = 0; i < n; i++) {
    Form k = pl->form[i];
    Node *p = c->nodes[i];
    if ((k != F_BUFFER && k != F_SCALAR) || p->op == OP_VAR)
      continue;
    // A factorisation before its first reader, for all its readers.
    Node *reader = plan_lu_reader(pl, p);
    if (reader && pl->lu_first[pl->lu[reader->a->id]] == i)
      factorise(e, guard(e, &open, pl->lu_mask[pl->lu[reader->a->id]]), reader);
    int depth = guard(e, &open, pl->mask[i]);
    comment(e, depth, e->cname[i], p);
    if (k == F_SCALAR)
      scalar_op(e, depth, p);
    else
      write_matrix(e, depth, e->cname[i], p, false);
  }
  if (open != ALL_ROOTS)
    line(e, 1, "}");
}

// Print the body of E->p.
static void print_body(Emit *e) {
  Ctx *c = e->c;
  const Plan *pl = e->p;
  emit_temps(e);
  for (int r = 1; r < pl->nroots; r++) {
    int i = pl->rootvar[r];
    Node *g = pl->roots[r];
    line(e, 1, "if (%s) {", e->gname[i]);
    comment(e, 2, text(e, "d%s/d%s", c->outname, c->vars[i].name), g);
    if (g->op == OP_ZEROS || ast_is_num(g, 0))
      line(e, 2, "/* nothing to add */");
    else if (scalar(g))
      line(e, 2, "%s[0] += %s;", e->gname[i], element(e, g, "0", "0", true));
    else
      write_matrix(e, 2, e->gname[i], g, true);
    line(e, 1, "}");
  }
  Node *out = pl->roots[0];  // as chain.c rewrote it
  if (!e->matrix_out) {
    line(e, 1, "%s[0] = %s;", e->outp, element(e, out, "0", "0", true));
  } else {
    if (pl->grads)
      line(e, 1, "if (%s) {", e->outp);
    comment(e, 1 + pl->grads, c->outname, out);
    if (in_memory(pl, out))
      line(e, 1 + pl->grads, "mdrt_copy%s(%s, %s, %s);", e->kern, lenc(e, out->shape),
           e->cname[out->id], e->outp);
    else
      write_matrix(e, 1 + pl->grads, e->outp, out, false);
    if (pl->grads)
      line(e, 1, "}");
  }
  line(e, 1, "return 0;");
}

// The function that computes body P: the static P_forward or P_backward
// (for the JIT, the entry point itself), returning NULL or a message.
static void print_function(Emit *e, const Plan *p) {
  e->p = p;
  abi_name_temps(e);
  abi_open(e);
  print_body(e);
  buf_puts(e->o, "}\n\n");
}

// The N variants V of a body (plan_variants): one function, or one each
// (P_forward_v0 ...) and the function that chooses among them.
static void print_variants(Emit *e, bool grads, int n, const Plan *const *v) {
  if (n == 1) {
    print_function(e, v[0]);
    return;
  }
  const char *cost[MAX_VARIANTS];
  for (int i = 0; i < n; i++) {
    e->variant = text(e, "_v%d", i);
    print_function(e, v[i]);
    cost[i] = cost_plan_c(e, v[i]);
  }
  e->variant = "";
  abi_dispatch(e, grads, n, cost);
}

// The workspace a body needs, in doubles, as C: the sizes of the buffers
// that own memory.
const char *emit_workspace(Emit *e, const Plan *p) {
  Buf ws = {0};
  buf_puts(&ws, "0");
  for (int i = 0; i < p->n; i++)
    if (is_buffer(p, e->c->nodes[i]) && !p->alias[i])
      buf_printf(&ws, " + %s", lenc(e, e->c->nodes[i]->shape));
  for (int i = 0; i < p->n; i++)
    if (p->lu[i])
      buf_printf(&ws, " + %s", lu_len(e, e->c->nodes[i]));
  const char *size = checked(e, ws.oom ? NULL : arena_strdup(&e->c->arena, ws.s));
  buf_free(&ws);
  return size;
}

bool emit_c(Ctx *c, const EmitOpts *o, Buf *out) {
  Loc nowhere = {-1, -1};
  if (o->jit && o->flt)
    return ctx_error(c, nowhere, "internal error: the JIT's code is double precision only");
  // Each body's variants, its chains grouped for other sizes: all planned
  // before the emitter names the nodes.
  const Plan *const *value, *const *grads;
  int nv = plan_variants(c, PLAN_VALUE, &value), ng = plan_variants(c, PLAN_GRADS, &grads);
  if (!nv || !ng)
    return false;  // plan_variants said why
  if (o->second && !emit_second_prepare(c))
    return false;
  Emit e;
  if (!abi_setup(&e, c, o, out))
    return ctx_error(c, nowhere, "out of memory naming the variables of the C code");
  abi_header(&e);
  const char *wv[MAX_VARIANTS], *wg[MAX_VARIANTS];
  for (int i = 0; i < nv; i++)
    wv[i] = emit_workspace(&e, value[i]);
  for (int i = 0; i < ng; i++)
    wg[i] = emit_workspace(&e, grads[i]);
  abi_workspace_size(&e, wv, nv, wg, ng);
  if (o->jit)
    abi_jit_entries(&e);
  print_variants(&e, false, nv, value);
  print_variants(&e, true, ng, grads);
  if (!o->jit) {
    abi_wrappers(&e, false);
    abi_wrappers(&e, true);
  }
  if (o->second && !emit_second(&e))
    return false;  // emit_second said why
  if (e.oom || out->oom)
    return ctx_error(c, nowhere, "out of memory writing the C code (%zu bytes written)", out->len);
  return !c->failed;  // a constant single precision cannot hold (numc)
}

/* ---- for emit_second.c -------------------------------------------------- */

void emit_matrix(Emit *e, int depth, const char *dst, Node *n, bool accumulate) {
  write_matrix(e, depth, dst, n, accumulate);
}

const char *emit_scalar(Emit *e, Node *n) { return element(e, n, "0", "0", true); }

void emit_comment(Emit *e, int depth, const char *lhs, Node *n) { comment(e, depth, lhs, n); }

const char *emit_len(Emit *e, Shape s) { return lenc(e, s); }
