/*
 * emit_c.c - DAG to C. The value and the gradients become straight-line
 * C99 that calls the runtime's kernels:
 *
 *   - matrix products are mdrt_gemm calls; a transpose is a flag, never a
 *     copy; a product added into a sum or into a gradient buffer goes
 *     straight in through gemm's beta;
 *   - elementwise chains whose values are used once are fused into one
 *     loop, and a reduction into the loop that produces its operand;
 *   - every other matrix value is a temporary in one workspace, every
 *     scalar a local double, each commented with the expression it holds;
 *   - work needed only by some gradients sits under `if (dX || ...)`, so
 *     a NULL gradient buffer skips it.
 *
 * The emitter first plans (which nodes get a buffer, which are fused into
 * their user, which products are absorbed into a sum), then prints.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include "md.h"

typedef enum Kind {
  K_NONE,     /* not needed */
  K_LEAF,     /* a number, an input, zeros or ones: referenced in place */
  K_VIEW,     /* a transpose: its operand, read transposed */
  K_INLINE,   /* an elementwise value used once: fused into its user's loop */
  K_TERM,     /* a sum used once, absorbed into its user's list of terms */
  K_GEMM,     /* a product absorbed as a term: gemm into the user's buffer */
  K_ROOT,     /* a gradient used only as such: written straight into its buffer */
  K_SCALAR,   /* a local double */
  K_BUFFER,   /* a temporary in the workspace */
} Kind;

#define ALL_ROOTS (~0ull)

typedef struct Emit {
  Ctx *c;
  Buf *o;
  const EmitOpts *opts;
  int n;              /* node ids below n */
  Node **byid;
  int *uses;          /* uses by needed nodes and roots */
  Node **user;        /* the last node seen using each node */
  unsigned long long *mask; /* the roots that need each node */
  Kind *kind;
  char **cname;       /* C name of a buffer, scalar or input */
  char **pname;       /* C parameter names of the inputs */
  char **gname;       /* C parameter names of the gradients */
  char **dname;       /* C names of the symbolic sizes */
  char **taken;       /* every C name in use */
  int ntaken, captaken;
  int nfixed;         /* names taken before any body: functions, params */
  int ntemps;
} Emit;

static const char *const reserved[] = {
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else",
    "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register",
    "restrict", "return", "short", "signed", "sizeof", "static", "struct", "switch", "typedef",
    "union", "unsigned", "void", "volatile", "while", "_Bool", "_Complex", "_Imaginary",
    "i", "j", "v", "ws", "pow", "exp", "log", "sqrt", "fabs", "NULL", "main", "NAN",
};

static bool is_taken(Emit *e, const char *s) {
  for (size_t i = 0; i < sizeof reserved / sizeof *reserved; i++)
    if (!strcmp(reserved[i], s))
      return true;
  if (!strncmp(s, "mdrt_", 5))
    return true;
  for (int i = 0; i < e->ntaken; i++)
    if (!strcmp(e->taken[i], s))
      return true;
  return false;
}

// A C name for WANT that clashes with nothing so far: WANT, else WANT_,
// WANT__, ...
static char *claim(Emit *e, const char *want) {
  char *s = arena_strdup(&e->c->arena, want);
  while (s && is_taken(e, s))
    s = arena_printf(&e->c->arena, "%s_", s);
  if (!s)
    return NULL;
  if (e->ntaken == e->captaken) {
    int cap = e->captaken ? e->captaken * 2 : 64;
    char **t = arena_alloc(&e->c->arena, sizeof *t * (size_t)cap);
    if (!t)
      return NULL;
    if (e->ntaken)
      memcpy(t, e->taken, sizeof *t * (size_t)e->ntaken);
    e->taken = t;
    e->captaken = cap;
  }
  e->taken[e->ntaken++] = s;
  return s;
}

static bool scalar(const Node *n) { return shape_is_scalar(n->shape); }

// Is N an elementwise operation on matrices (so it can be fused)?
static bool elementwise(const Node *n) {
  if (scalar(n))
    return false;
  switch (n->op) {
  case OP_ADD: case OP_SUB: case OP_EMUL: case OP_EDIV: case OP_EPOW: case OP_DIV:
  case OP_EXP: case OP_LOG:
    return true;
  case OP_MUL:
    return scalar(n->a) || scalar(n->b);
  default:
    return false;
  }
}

static bool is_product(const Node *n) {
  return n->op == OP_MUL && !scalar(n->a) && !scalar(n->b);
}

// A sum whose terms all have its shape: plan_terms and collect expand it.
static bool flat_sum(const Node *n) {
  return (n->op == OP_ADD || n->op == OP_SUB) && shape_eq(n->a->shape, n->shape) &&
         shape_eq(n->b->shape, n->shape);
}

static Node *strip(Node *n, bool *trans) {
  *trans = false;
  while (n->op == OP_TRANS && !scalar(n)) {
    *trans = !*trans;
    n = n->a;
  }
  return n;
}

/* ---- planning ----------------------------------------------------------- */

// Mark what ROOT needs: uses and masks, walking down by decreasing id.
static void need(Emit *e, Node *root, unsigned long long bit) {
  e->uses[root->id]++;
  char *seen = calloc((size_t)e->n, 1);
  if (!seen) {
    e->c->failed = true;
    return;
  }
  seen[root->id] = 1;
  for (int i = root->id; i >= 0; i--) {
    if (!seen[i])
      continue;
    Node *p = e->byid[i];
    e->mask[i] |= bit;
    if (e->kind[i] == K_NONE)
      e->kind[i] = K_LEAF;  // provisional: "needed"; plan() decides
    if (p->a)
      seen[p->a->id] = 1;
    if (p->b)
      seen[p->b->id] = 1;
  }
  free(seen);
}

// Count uses once per needed node (a node needed by several roots is still
// one piece of code).
static void count_uses(Emit *e) {
  for (int i = 0; i < e->n; i++) {
    if (e->kind[i] == K_NONE)
      continue;
    Node *p = e->byid[i];
    if (p->a)
      e->uses[p->a->id]++, e->user[p->a->id] = p;
    if (p->b)
      e->uses[p->b->id]++, e->user[p->b->id] = p;
  }
}

// Uses seen through transposes: a value read through a transpose used
// twice is used twice.
static int eff_uses(Emit *e, Node *n) {
  Node *u = e->user[n->id];
  if (e->uses[n->id] == 1 && u && u->op == OP_TRANS)
    return eff_uses(e, u);
  return e->uses[n->id];
}

// A product absorbed as a term of the sum being built: alpha*op(A)*op(B).
static bool gemm_term(Emit *e, Node *t, Node **prod, Node **alpha) {
  *alpha = NULL;
  if (t->op == OP_MUL && scalar(t->a) && is_product(t->b) && e->uses[t->b->id] == 1) {
    *alpha = t->a;
    t = t->b;
  }
  if (!is_product(t))
    return false;
  *prod = t;
  return true;
}

static void force_buffer(Emit *e, Node *n) {
  bool tr;
  n = strip(n, &tr);
  if (n->op != OP_VAR)
    e->kind[n->id] = K_BUFFER;
}

// The terms of N, a sum being written into a buffer: sums used once are
// flattened, and products among the terms are marked for gemm.
static void plan_terms(Emit *e, Node *n) {
  if (flat_sum(n)) {
    Node *ops[2] = {n->a, n->b};
    for (int k = 0; k < 2; k++) {
      Node *t = ops[k];
      if ((t->op == OP_ADD || t->op == OP_SUB) && e->uses[t->id] == 1 && e->kind[t->id] != K_BUFFER) {
        e->kind[t->id] = K_TERM;
        plan_terms(e, t);
        continue;
      }
      Node *prod, *alpha;
      if (e->uses[t->id] == 1 && gemm_term(e, t, &prod, &alpha) && e->kind[t->id] != K_BUFFER) {
        e->kind[t->id] = K_GEMM;
        if (alpha)
          e->kind[prod->id] = K_GEMM;
        force_buffer(e, prod->a);
        force_buffer(e, prod->b);
      }
    }
    return;
  }
  Node *prod, *alpha;
  if (gemm_term(e, n, &prod, &alpha)) {
    if (alpha)
      e->kind[prod->id] = K_GEMM;
    force_buffer(e, prod->a);
    force_buffer(e, prod->b);
  }
}

// Decide each needed node's kind, parents before operands (by decreasing
// id), since a parent decides whether its operand is fused or absorbed.
static void plan(Emit *e, Node **roots, int nroots) {
  // Roots 1.. are gradients: one used by nothing else is written straight
  // into its buffer.
  for (int r = 1; r < nroots; r++) {
    Node *g = roots[r];
    if (!scalar(g) && e->uses[g->id] == 1 && g->op != OP_VAR && g->op != OP_TRANS) {
      e->kind[g->id] = K_ROOT;
      plan_terms(e, g);
    }
  }
  for (int i = e->n - 1; i >= 0; i--) {
    Node *p = e->byid[i];
    Kind k = e->kind[i];
    if (k == K_NONE || k == K_TERM || k == K_GEMM || k == K_ROOT)
      continue;
    if (p->op == OP_NUM || p->op == OP_VAR)
      k = K_LEAF;
    else if ((p->op == OP_ZEROS || p->op == OP_ONES) && k != K_BUFFER)
      k = K_LEAF;
    else if (scalar(p))
      k = K_SCALAR;
    else if (p->op == OP_TRANS)
      k = K_VIEW;
    else if (k == K_BUFFER)
      ;
    else if (elementwise(p) && eff_uses(e, p) == 1)
      k = K_INLINE;
    else
      k = K_BUFFER;
    e->kind[i] = k;
    if (k == K_BUFFER)
      plan_terms(e, p);
    if (is_product(p) && k == K_BUFFER) {
      force_buffer(e, p->a);
      force_buffer(e, p->b);
    }
  }
}

/* ---- C text ------------------------------------------------------------- */

static char *dimc(Emit *e, Dim d) {
  return d.sym >= 0 ? e->dname[d.sym] : arena_printf(&e->c->arena, "%ld", d.n);
}

// rows*cols as C, folded when both are literals.
static char *lenc(Emit *e, Shape s) {
  if (s.r.sym < 0 && s.c.sym < 0)
    return arena_printf(&e->c->arena, "%ld", s.r.n * s.c.n);
  if (s.r.sym < 0 && s.r.n == 1)
    return dimc(e, s.c);
  if (s.c.sym < 0 && s.c.n == 1)
    return dimc(e, s.r);
  return arena_printf(&e->c->arena, "%s*%s", dimc(e, s.r), dimc(e, s.c));
}

static char *numc(Emit *e, double v) {
  char buf[40];
  print_num(buf, sizeof buf, v);
  bool dot = strpbrk(buf, ".eEn") != NULL;  // n: nan, inf
  return arena_printf(&e->c->arena, v < 0 ? "(%s%s)" : "%s%s", buf, dot ? "" : ".0");
}

// The C expression for element (ri, ci) of N; FLAT means one index i runs
// over N's elements in row-major order.
static char *elem_op(Emit *e, Node *n, const char *ri, const char *ci, bool flat);

static char *elem(Emit *e, Node *n, const char *ri, const char *ci, bool flat) {
  Arena *A = &e->c->arena;
  if (n->op == OP_NUM)
    return numc(e, n->num);
  if (scalar(n))
    return n->op == OP_VAR ? arena_printf(A, "%s[0]", e->cname[n->id]) : e->cname[n->id];
  if (n->op == OP_VAR || e->kind[n->id] == K_BUFFER) {
    if (flat)
      return arena_printf(A, "%s[i]", e->cname[n->id]);
    return arena_printf(A, "%s[%s*%s + %s]", e->cname[n->id], ri, dimc(e, n->shape.c), ci);
  }
  return elem_op(e, n, ri, ci, flat);
}

// Element (ri, ci) of N computed from its operands.
static char *elem_op(Emit *e, Node *n, const char *ri, const char *ci, bool flat) {
  Arena *A = &e->c->arena;
  if (n->op == OP_ZEROS || n->op == OP_ONES)
    return n->op == OP_ZEROS ? "0.0" : "1.0";
  if (n->op == OP_TRANS)
    return elem(e, n->a, ci, ri, flat);
  char *a = n->a ? elem(e, n->a, ri, ci, flat) : NULL;
  char *b = n->b ? elem(e, n->b, ri, ci, flat) : NULL;
  switch (n->op) {
  case OP_ADD: return arena_printf(A, "(%s + %s)", a, b);
  case OP_SUB: return arena_printf(A, "(%s - %s)", a, b);
  case OP_MUL:
  case OP_EMUL: return arena_printf(A, "%s*%s", a, b);
  case OP_DIV:
  case OP_EDIV: return arena_printf(A, "%s/%s", a, b);
  case OP_EPOW: return arena_printf(A, "pow(%s, %s)", a, b);
  case OP_EXP: return arena_printf(A, "exp(%s)", a);
  case OP_LOG: return arena_printf(A, "log(%s)", a);
  default: return "0.0 /* unreachable */";
  }
}

// Does reading N elementwise need row and column indices (a transpose in
// the fused tree), or does one flat index do?
static bool needs_2d(Emit *e, Node *n, bool top) {
  if (scalar(n) || n->op == OP_VAR || e->kind[n->id] == K_LEAF)
    return false;
  if (e->kind[n->id] == K_BUFFER && !top)
    return false;
  if (n->op == OP_TRANS)
    return true;
  return (n->a && needs_2d(e, n->a, false)) || (n->b && needs_2d(e, n->b, false));
}

static void indent(Emit *e, int depth) {
  for (int i = 0; i < depth; i++)
    buf_puts(e->o, "  ");
}

static void comment(Emit *e, int depth, const char *lhs, Node *n) {
  char *s = print_str(e->c, n);
  if (!s)
    return;
  size_t len = strlen(s);
  indent(e, depth);
  if (len > 72)
    buf_printf(e->o, "/* %s = %.69s... */\n", lhs, s);
  else
    buf_printf(e->o, "/* %s = %s */\n", lhs, s);
  // A comment must not end early: "*/" cannot appear in printed formulas,
  // which have no '/' after '*'.
}

// DST (shape of N) op= the elementwise terms of N; OP is "=" or "+=".
// SIGNS[i] gives each term's sign.
static void loop(Emit *e, int depth, const char *dst, Node *top, Node **terms, int *signs, int nt,
                 const char *op) {
  Shape s = top->shape;
  bool two = false;
  for (int t = 0; t < nt; t++)
    two |= needs_2d(e, terms[t], terms[t] == top);
  Buf rhs = {0};
  for (int t = 0; t < nt; t++) {
    char *x = terms[t] == top ? elem_op(e, terms[t], "i", "j", !two) : elem(e, terms[t], "i", "j", !two);
    if (t == 0)
      buf_printf(&rhs, "%s%s", signs[t] < 0 ? "-" : "", x);
    else
      buf_printf(&rhs, " %s %s", signs[t] < 0 ? "-" : "+", x);
  }
  indent(e, depth);
  if (two)
    buf_printf(e->o, "for (long i = 0; i < %s; i++)\n", dimc(e, s.r)), indent(e, depth + 1),
        buf_printf(e->o, "for (long j = 0; j < %s; j++)\n", dimc(e, s.c)), indent(e, depth + 2),
        buf_printf(e->o, "%s[i*%s + j] %s %s;\n", dst, dimc(e, s.c), op, rhs.s ? rhs.s : "0.0");
  else
    buf_printf(e->o, "for (long i = 0; i < %s; i++)\n", lenc(e, s)), indent(e, depth + 1),
        buf_printf(e->o, "%s[i] %s %s;\n", dst, op, rhs.s ? rhs.s : "0.0");
  buf_free(&rhs);
}

static void collect(Emit *e, Node *n, bool top, int sign, Node **terms, int *signs, int *nt, int cap) {
  if (top ? flat_sum(n) : (n->op == OP_ADD || n->op == OP_SUB) && e->kind[n->id] == K_TERM) {
    collect(e, n->a, false, sign, terms, signs, nt, cap);
    collect(e, n->b, false, n->op == OP_SUB ? -sign : sign, terms, signs, nt, cap);
    return;
  }
  if (*nt < cap) {
    terms[*nt] = n;
    signs[*nt] = sign;
    (*nt)++;
  }
}

static int count_terms(Emit *e, Node *n, bool top) {
  if (top ? flat_sum(n) : (n->op == OP_ADD || n->op == OP_SUB) && e->kind[n->id] == K_TERM)
    return count_terms(e, n->a, false) + count_terms(e, n->b, false);
  return 1;
}

// Is term T of the sum TOP written by gemm?
static bool is_gemm(Emit *e, Node *t, Node *top) {
  if (e->kind[t->id] == K_GEMM)
    return true;
  if (t != top)
    return false;
  return is_product(t) || (t->op == OP_MUL && scalar(t->a) && is_product(t->b) &&
                           e->kind[t->b->id] == K_GEMM);
}

static void gemm(Emit *e, int depth, const char *dst, Node *t, int sign, bool accumulate) {
  Node *prod = t, *alpha = NULL;
  if (t->op == OP_MUL && scalar(t->a) && !scalar(t->b)) {
    alpha = t->a;
    prod = t->b;
  }
  bool ta, tb;
  Node *a = strip(prod->a, &ta), *b = strip(prod->b, &tb);
  char *al = alpha ? elem(e, alpha, "0", "0", true) : "1.0";
  if (sign < 0)
    al = arena_printf(&e->c->arena, "-%s", al);
  indent(e, depth);
  buf_printf(e->o, "mdrt_gemm(%d, %d, %s, %s, %s, %s, %s, %s, %s, %s);\n", ta, tb,
             dimc(e, prod->shape.r), dimc(e, prod->shape.c), dimc(e, prod->a->shape.c), al,
             e->cname[a->id], e->cname[b->id], accumulate ? "1.0" : "0.0", dst);
}

// Write (OP "=") or add (OP "+=") the matrix N into DST.
static void write_matrix(Emit *e, int depth, const char *dst, Node *n, bool accumulate) {
  int cap = count_terms(e, n, true);
  Node **terms = calloc((size_t)cap, sizeof *terms);
  int *signs = calloc((size_t)cap, sizeof *signs);
  if (!terms || !signs) {
    free(terms);
    free(signs);
    e->c->failed = true;
    return;
  }
  int nt = 0;
  collect(e, n, true, 1, terms, signs, &nt, cap);
  // Elementwise terms first, in one loop; then each product through gemm.
  Node **ew = calloc((size_t)cap, sizeof *ew);
  int *ews = calloc((size_t)cap, sizeof *ews);
  int new = 0;
  for (int t = 0; ew && ews && t < nt; t++)
    if (!is_gemm(e, terms[t], n)) {
      ew[new] = terms[t];
      ews[new++] = signs[t];
    }
  bool written = accumulate;
  if (new == 1 && ews[0] > 0 && !accumulate && ew[0] != n &&
      (ew[0]->op == OP_VAR || e->kind[ew[0]->id] == K_BUFFER)) {
    indent(e, depth);
    buf_printf(e->o, "mdrt_copy(%s, %s, %s);\n", lenc(e, n->shape), e->cname[ew[0]->id], dst);
    written = true;
  } else if (new > 0) {
    loop(e, depth, dst, n, ew, ews, new, accumulate ? "+=" : "=");
    written = true;
  }
  for (int t = 0; t < nt; t++)
    if (is_gemm(e, terms[t], n)) {
      gemm(e, depth, dst, terms[t], signs[t], written);
      written = true;
    }
  free(terms);
  free(signs);
  free(ew);
  free(ews);
}

// A reduction of A to a scalar, into the local double DST.
static void reduce(Emit *e, int depth, const char *dst, Node *n) {
  bool tr;
  Node *a = strip(n->a, &tr);  // a full reduction does not care about order
  bool plain = a->op == OP_VAR || e->kind[a->id] == K_BUFFER;
  const char *sq = n->op == OP_SUM ? "mdrt_sum" : "mdrt_sumsq";
  indent(e, depth);
  if (plain) {
    buf_printf(e->o, "%s = %s%s(%s, %s)%s;\n", dst, n->op == OP_NORM ? "sqrt(" : "", sq,
               lenc(e, a->shape), e->cname[a->id], n->op == OP_NORM ? ")" : "");
    return;
  }
  bool two = needs_2d(e, a, false);
  char *x = elem(e, a, "i", "j", !two);
  buf_printf(e->o, "%s = 0;\n", dst);
  indent(e, depth);
  if (two)
    buf_printf(e->o, "for (long i = 0; i < %s; i++)\n", dimc(e, a->shape.r)), indent(e, depth + 1),
        buf_printf(e->o, "for (long j = 0; j < %s; j++) {\n", dimc(e, a->shape.c));
  else
    buf_printf(e->o, "for (long i = 0; i < %s; i++) {\n", lenc(e, a->shape));
  indent(e, depth + 1 + two);
  if (n->op == OP_SUM)
    buf_printf(e->o, "%s += %s;\n", dst, x);
  else
    buf_printf(e->o, "double v = %s;\n", x), indent(e, depth + 1 + two),
        buf_printf(e->o, "%s += v*v;\n", dst);
  indent(e, depth + two);
  buf_puts(e->o, "}\n");
  if (n->op == OP_NORM) {
    indent(e, depth);
    buf_printf(e->o, "%s = sqrt(%s);\n", dst, dst);
  }
}

static void scalar_op(Emit *e, int depth, Node *n) {
  const char *dst = e->cname[n->id];
  if (n->op == OP_SUM || n->op == OP_NORM || n->op == OP_NORMSQ) {
    if (scalar(n->a)) {
      char *a = elem(e, n->a, "0", "0", true);
      indent(e, depth);
      if (n->op == OP_SUM)
        buf_printf(e->o, "%s = %s;\n", dst, a);
      else if (n->op == OP_NORM)
        buf_printf(e->o, "%s = fabs(%s);\n", dst, a);
      else
        buf_printf(e->o, "%s = %s*%s;\n", dst, a, a);
      return;
    }
    reduce(e, depth, dst, n);
    return;
  }
  char *a = n->a ? elem(e, n->a, "0", "0", true) : NULL;
  char *b = n->b ? elem(e, n->b, "0", "0", true) : NULL;
  indent(e, depth);
  switch (n->op) {
  case OP_ADD: buf_printf(e->o, "%s = %s + %s;\n", dst, a, b); break;
  case OP_SUB: buf_printf(e->o, "%s = %s - %s;\n", dst, a, b); break;
  case OP_MUL:
  case OP_EMUL: buf_printf(e->o, "%s = %s*%s;\n", dst, a, b); break;
  case OP_DIV:
  case OP_EDIV: buf_printf(e->o, "%s = %s/%s;\n", dst, a, b); break;
  case OP_POW:
  case OP_EPOW: buf_printf(e->o, "%s = pow(%s, %s);\n", dst, a, b); break;
  case OP_TRANS: buf_printf(e->o, "%s = %s;\n", dst, a); break;
  case OP_EXP: buf_printf(e->o, "%s = exp(%s);\n", dst, a); break;
  case OP_LOG: buf_printf(e->o, "%s = log(%s);\n", dst, a); break;
  default: buf_printf(e->o, "%s = 0; /* unreachable */\n", dst); break;
  }
}

/* ---- functions ---------------------------------------------------------- */

static void params(Emit *e, bool grads) {
  Ctx *c = e->c;
  bool first = true;
  for (int i = 0; i < c->ndims; i++, first = false)
    buf_printf(e->o, "%slong %s", first ? "" : ", ", e->dname[i]);
  for (int i = 0; i < c->nvars; i++, first = false)
    buf_printf(e->o, "%sconst double *%s", first ? "" : ", ", e->pname[i]);
  if (grads)
    for (int i = 0; i < c->nvars; i++)
      if (c->vars[i].wrt)
        buf_printf(e->o, "%sdouble *%s", first ? "" : ", ", e->gname[i]), first = false;
  if (first)
    buf_puts(e->o, "void");
}

static void args(Emit *e, bool grads, const char *dims, const char *in, const char *g) {
  Ctx *c = e->c;
  bool first = true;
  for (int i = 0; i < c->ndims; i++, first = false)
    buf_printf(e->o, "%s%s[%d]", first ? "" : ", ", dims, i);
  for (int i = 0; i < c->nvars; i++, first = false)
    buf_printf(e->o, "%s%s[%d]", first ? "" : ", ", in, i);
  if (grads)
    for (int i = 0; i < c->nvars; i++)
      if (c->vars[i].wrt)
        buf_printf(e->o, "%s%s[%d]", first ? "" : ", ", g, i), first = false;
}

static void guard_open(Emit *e, unsigned long long m) {
  buf_puts(e->o, "  if (");
  bool first = true;
  for (int i = 0; i < e->c->nvars && i < 63; i++)
    if (m & (1ull << i)) {
      buf_printf(e->o, "%s%s", first ? "" : " || ", e->gname[i]);
      first = false;
    }
  buf_puts(e->o, ") {\n");
}

// Plan and print one function body: the value, and with GRADS the
// accumulation into each gradient buffer. Returns the workspace size as a
// C expression in doubles.
static char *body(Emit *e, bool grads, bool print) {
  Ctx *c = e->c;
  int n = e->n;
  memset(e->uses, 0, sizeof *e->uses * (size_t)n);
  memset(e->mask, 0, sizeof *e->mask * (size_t)n);
  memset(e->kind, 0, sizeof *e->kind * (size_t)n);
  memset(e->user, 0, sizeof *e->user * (size_t)n);
  e->ntaken = e->nfixed;
  e->ntemps = 0;
  Node **roots = arena_alloc(&c->arena, sizeof *roots * (size_t)(c->nvars + 1));
  if (!roots)
    return NULL;
  roots[0] = c->out;
  need(e, c->out, ALL_ROOTS);
  int nroots = 1;
  if (grads)
    for (int i = 0; i < c->nvars; i++)
      if (c->vars[i].wrt && c->grads[i]) {
        roots[nroots++] = c->grads[i];
        need(e, c->grads[i], c->nvars > 63 ? ALL_ROOTS : 1ull << i);
      }
  memset(e->uses, 0, sizeof *e->uses * (size_t)n);
  for (int r = 0; r < nroots; r++)
    e->uses[roots[r]->id]++;
  count_uses(e);
  plan(e, roots, nroots);

  // Names: buffers and scalars get t1, t2, ... in order.
  Buf ws = {0};
  buf_puts(&ws, "0");
  for (int i = 0; i < n; i++) {
    Node *p = e->byid[i];
    if (p->op == OP_VAR)
      e->cname[i] = e->pname[p->k];
    else if (e->kind[i] == K_BUFFER || e->kind[i] == K_SCALAR)
      e->cname[i] = claim(e, arena_printf(&c->arena, "t%d", ++e->ntemps));
    if (e->kind[i] == K_BUFFER && p->op != OP_VAR)
      buf_printf(&ws, " + %s", lenc(e, p->shape));
  }
  char *size = arena_strdup(&c->arena, ws.s);
  buf_free(&ws);
  if (!print)
    return size;

  // Declarations: workspace pointers and scalars.
  const char *prev = NULL;
  Shape prevshape = shape_scalar();
  for (int i = 0; i < n; i++) {
    if (e->kind[i] == K_BUFFER && e->byid[i]->op != OP_VAR) {
      if (prev)
        buf_printf(e->o, "  double *%s = %s + %s;\n", e->cname[i], prev, lenc(e, prevshape));
      else
        buf_printf(e->o, "  double *%s = ws;\n", e->cname[i]);
      prev = e->cname[i];
      prevshape = e->byid[i]->shape;
    } else if (e->kind[i] == K_SCALAR) {
      buf_printf(e->o, "  double %s = 0;\n", e->cname[i]);
    }
  }
  if (!prev)
    buf_puts(e->o, "  (void)ws;\n");

  // The code, in id order, grouped under guards by the roots that need it.
  unsigned long long open = ALL_ROOTS;
  for (int i = 0; i < n; i++) {
    Kind k = e->kind[i];
    if (k != K_BUFFER && k != K_SCALAR)
      continue;
    Node *p = e->byid[i];
    if (p->op == OP_VAR)
      continue;
    if (e->mask[i] != open) {
      if (open != ALL_ROOTS)
        buf_puts(e->o, "  }\n");
      open = e->mask[i];
      if (open != ALL_ROOTS)
        guard_open(e, open);
    }
    int depth = open == ALL_ROOTS ? 1 : 2;
    comment(e, depth, e->cname[i], p);
    if (k == K_SCALAR)
      scalar_op(e, depth, p);
    else
      write_matrix(e, depth, e->cname[i], p, false);
  }
  if (open != ALL_ROOTS)
    buf_puts(e->o, "  }\n");

  if (grads)
    for (int i = 0; i < c->nvars; i++) {
      Node *g = c->grads[i];
      if (!c->vars[i].wrt || !g)
        continue;
      buf_printf(e->o, "  if (%s) {\n", e->gname[i]);
      char *lhs = arena_printf(&c->arena, "d%s/d%s", c->outname, c->vars[i].name);
      comment(e, 2, lhs, g);
      if (g->op == OP_ZEROS || ast_is_num(g, 0))
        buf_puts(e->o, "    /* nothing to add */\n");
      else if (scalar(g))
        buf_printf(e->o, "    %s[0] += %s;\n", e->gname[i], elem(e, g, "0", "0", true));
      else if (e->kind[g->id] == K_BUFFER || g->op == OP_VAR)
        buf_printf(e->o, "    mdrt_axpby(%s, 1.0, %s, 1.0, %s);\n", lenc(e, g->shape),
                   e->cname[g->id], e->gname[i]);
      else
        write_matrix(e, 2, e->gname[i], g, true);
      buf_puts(e->o, "  }\n");
    }
  buf_printf(e->o, "  return %s;\n", elem(e, c->out, "0", "0", true));
  return size;
}

static void prototype(Emit *e, const char *suffix, bool grads, bool ws) {
  buf_printf(e->o, "double %s%s(", e->opts->name, suffix);
  params(e, grads);
  if (ws)
    buf_puts(e->o, ", void *ws_");
  buf_puts(e->o, ")");
}

static void function(Emit *e, bool grads) {
  const char *suffix = grads ? "_grad" : "";
  // The _ws form does the work in a caller's workspace.
  prototype(e, grads ? "_grad_ws" : "_ws", grads, true);
  buf_puts(e->o, " {\n  double *ws = ws_;\n");
  body(e, grads, true);
  buf_puts(e->o, "}\n\n");
  // The plain form allocates the workspace once per call.
  prototype(e, suffix, grads, false);
  buf_printf(e->o, " {\n  double *ws = mdrt_alloc(%s_workspace_size(", e->opts->name);
  for (int i = 0; i < e->c->ndims; i++)
    buf_printf(e->o, "%s%s", i ? ", " : "", e->dname[i]);
  buf_printf(e->o, "));\n  if (!ws)\n    return 0.0/0.0;\n  double y = %s%s_ws(", e->opts->name,
             grads ? "_grad" : "");
  bool first = true;
  for (int i = 0; i < e->c->ndims; i++, first = false)
    buf_printf(e->o, "%s%s", first ? "" : ", ", e->dname[i]);
  for (int i = 0; i < e->c->nvars; i++, first = false)
    buf_printf(e->o, "%s%s", first ? "" : ", ", e->pname[i]);
  if (grads)
    for (int i = 0; i < e->c->nvars; i++)
      if (e->c->vars[i].wrt)
        buf_printf(e->o, "%s%s", first ? "" : ", ", e->gname[i]), first = false;
  buf_printf(e->o, "%sws);\n  mdrt_free(ws);\n  return y;\n}\n\n", first ? "" : ", ");
}

static bool setup(Emit *e, Ctx *c, const EmitOpts *o, Buf *out) {
  memset(e, 0, sizeof *e);
  e->c = c;
  e->o = out;
  e->opts = o;
  claim(e, o->name);
  claim(e, arena_printf(&c->arena, "%s_grad", o->name));
  claim(e, arena_printf(&c->arena, "%s_ws", o->name));
  claim(e, arena_printf(&c->arena, "%s_grad_ws", o->name));
  claim(e, arena_printf(&c->arena, "%s_workspace_size", o->name));
  claim(e, "y");
  e->dname = arena_alloc(&c->arena, sizeof(char *) * (size_t)(c->ndims + 1));
  e->pname = arena_alloc(&c->arena, sizeof(char *) * (size_t)(c->nvars + 1));
  e->gname = arena_alloc(&c->arena, sizeof(char *) * (size_t)(c->nvars + 1));
  if (!e->dname || !e->pname || !e->gname)
    return false;
  for (int i = 0; i < c->ndims; i++)
    e->dname[i] = claim(e, c->dims[i]);
  for (int i = 0; i < c->nvars; i++)
    e->pname[i] = claim(e, c->vars[i].name);
  for (int i = 0; i < c->nvars; i++)
    if (c->vars[i].wrt)
      e->gname[i] = claim(e, arena_printf(&c->arena, "d%s", c->vars[i].name));
  // The DAG has grown during differentiation; emit sees all of it.
  e->n = c->nnodes;
  e->byid = arena_alloc(&c->arena, sizeof(Node *) * (size_t)e->n);
  e->uses = arena_alloc(&c->arena, sizeof(int) * (size_t)e->n);
  e->mask = arena_alloc(&c->arena, sizeof(unsigned long long) * (size_t)e->n);
  e->kind = arena_alloc(&c->arena, sizeof(Kind) * (size_t)e->n);
  e->cname = arena_alloc(&c->arena, sizeof(char *) * (size_t)e->n);
  e->user = arena_alloc(&c->arena, sizeof(Node *) * (size_t)e->n);
  e->nfixed = e->ntaken;
  if (!e->byid || !e->uses || !e->mask || !e->kind || !e->cname || !e->user)
    return false;
  for (int i = 0; i < c->tabsize; i++)
    for (Node *p = c->table[i]; p; p = p->next)
      if (p->id < e->n)
        e->byid[p->id] = p;
  return true;
}

static void header(Emit *e) {
  Ctx *c = e->c;
  buf_printf(e->o, "/*\n * Generated by matdiff %s from %s. Do not edit.\n *\n", MATDIFF_VERSION, c->file);
  char *out = print_str(c, c->out);
  buf_printf(e->o, " *   %s = %s\n", c->outname, out ? out : "?");
  for (int i = 0; i < c->nvars; i++)
    if (c->vars[i].wrt && c->grads[i]) {
      char *g = print_str(c, c->grads[i]);
      buf_printf(e->o, " *   d%s/d%s = %s\n", c->outname, c->vars[i].name, g ? g : "?");
    }
  buf_puts(e->o, " *\n * Matrices are row-major doubles; a scalar is passed as a pointer to one\n"
                 " * double. P_grad returns the value and ADDS each gradient into its buffer;\n"
                 " * a NULL buffer skips that gradient and the work only it needs.\n */\n");
}

bool emit_c(Ctx *c, const EmitOpts *o, Buf *out) {
  Emit e;
  if (!setup(&e, c, o, out))
    return false;
  header(&e);
  if (o->jit)
    buf_puts(out, "double pow(double, double);\ndouble exp(double);\ndouble log(double);\n"
                  "double sqrt(double);\ndouble fabs(double);\n\n");
  else
    buf_puts(out, "#include <math.h>\n#include \"matdiff_rt.h\"\n\n");

  // The workspace holds the temporaries of the larger of the two bodies.
  char *wv = body(&e, false, false);
  char *wg = body(&e, true, false);
  buf_printf(out, "long %s_workspace_size(", o->name);
  for (int i = 0; i < c->ndims; i++)
    buf_printf(out, "%slong %s", i ? ", " : "", e.dname[i]);
  if (!c->ndims)
    buf_puts(out, "void");
  buf_printf(out, ") {\n");
  for (int i = 0; i < c->ndims; i++)
    buf_printf(out, "  (void)%s;\n", e.dname[i]);
  buf_printf(out, "  long v = %s, g = %s;\n  return (long)sizeof(double) * (v > g ? v : g);\n}\n\n",
             wv ? wv : "0", wg ? wg : "0");
  (void)wv;

  function(&e, false);
  function(&e, true);

  if (o->jit) {
    // Array-form entry points, so md_eval and md_grad can call any arity.
    buf_printf(out, "long %s_entry_ws(const long *d) { (void)d; return %s_workspace_size(",
               o->name, o->name);
    for (int i = 0; i < c->ndims; i++)
      buf_printf(out, "%sd[%d]", i ? ", " : "", i);
    buf_printf(out, "); }\n");
    buf_printf(out, "double %s_entry_eval(const long *d, const double *const *in, void *ws) {\n"
                    "  (void)d; (void)in;\n  return %s_ws(", o->name, o->name);
    args(&e, false, "d", "in", "g");
    buf_printf(out, "%sws);\n}\n", c->ndims + c->nvars ? ", " : "");
    buf_printf(out, "double %s_entry_grad(const long *d, const double *const *in, double *const *g, void *ws) {\n"
                    "  (void)d; (void)in; (void)g;\n  return %s_grad_ws(", o->name, o->name);
    args(&e, true, "d", "in", "g");
    buf_printf(out, "%sws);\n}\n", c->ndims + c->nvars ? ", " : "");
  }
  return !out->oom && !c->failed;
}
