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
 *     a NULL gradient buffer skips it;
 *   - the kernels that can fail (a singular matrix) make the function
 *     return their message; the public wrappers turn it into NaN or -1.
 *
 * The emitter first plans (which nodes get a buffer, which are fused into
 * their user, which products are absorbed into a sum), then prints.
 */
#include <math.h>
#include <stdarg.h>
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
  K_ROOT,     /* a root used only as such: written straight into its buffer */
  K_SCALAR,   /* a local double */
  K_BUFFER,   /* a temporary in the workspace */
} Kind;

#define ALL_ROOTS (~0ull)

/* A set of C names, open hashing; cap is a power of two. */
typedef struct NameSet {
  char **slot;
  size_t cap, n;
} NameSet;

typedef struct Emit {
  Ctx *c;
  Buf *o;
  const EmitOpts *opts;
  int n;              /* node ids below n */
  Node **byid;        /* c->nodes when planning began */
  int *uses;          /* uses by needed nodes and roots */
  Node **user;        /* the last node seen using each node */
  unsigned long long *mask; /* the roots that need each node */
  Kind *kind;
  char **cname;       /* C name of a buffer, scalar or input */
  Node **alias;       /* a buffer whose memory this buffer reuses, or NULL */
  int *lastuse;       /* for buffers: the last statement reading it */
  char **pname;       /* C parameter names of the inputs */
  char **gname;       /* C parameter names of the gradients */
  char **dname;       /* C names of the symbolic sizes */
  char *outp, *seedp; /* C names of the output and seed parameters */
  char *arr_d, *arr_in, *arr_g; /* the JIT entry points' arrays */
  bool matrix_out;    /* the output is not a scalar */
  NameSet fixed;      /* C names of functions and parameters */
  NameSet temps;      /* C names of the body being planned */
  bool sealed;        /* the fixed names are all taken */
  int ntemps;
} Emit;

static const char *const reserved[] = {
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else",
    "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register",
    "restrict", "return", "short", "signed", "sizeof", "static", "struct", "switch", "typedef",
    "union", "unsigned", "void", "volatile", "while", "_Bool", "_Complex", "_Imaginary",
    "i", "j", "v", "y", "ws", "ws_", "NULL", "main", "NAN",
};

static size_t name_hash(const char *s) {
  size_t h = 5381;
  while (*s)
    h = h * 33 + (unsigned char)*s++;
  return h;
}

static bool set_has(const NameSet *t, const char *s) {
  if (!t->cap)
    return false;
  for (size_t i = name_hash(s) & (t->cap - 1); t->slot[i]; i = (i + 1) & (t->cap - 1))
    if (!strcmp(t->slot[i], s))
      return true;
  return false;
}

static bool set_add(Arena *a, NameSet *t, char *s) {
  if (2 * (t->n + 1) > t->cap) {
    NameSet bigger = {.cap = t->cap ? 2 * t->cap : 64};
    if (!(bigger.slot = arena_alloc(a, sizeof(char *) * bigger.cap)))
      return false;
    for (size_t i = 0; i < t->cap; i++)
      if (t->slot[i])
        set_add(a, &bigger, t->slot[i]);
    *t = bigger;
  }
  size_t i = name_hash(s) & (t->cap - 1);
  while (t->slot[i])
    i = (i + 1) & (t->cap - 1);
  t->slot[i] = s;
  t->n++;
  return true;
}

static bool is_taken(Emit *e, const char *s) {
  for (size_t i = 0; i < sizeof reserved / sizeof *reserved; i++)
    if (!strcmp(reserved[i], s))
      return true;
  return !strncmp(s, "mdrt_", 5) || optab_is_libm(s, strlen(s), true) || set_has(&e->fixed, s) ||
         set_has(&e->temps, s);
}

// A C name for WANT that clashes with nothing so far: WANT, else WANT_,
// WANT__, ... Names taken before the bodies are planned (functions,
// parameters) stay; a body's temporaries are forgotten when the next body
// is planned.
static char *claim(Emit *e, const char *want) {
  // The runtime owns every mdrt_ name: a user's mdrt_x becomes u_mdrt_x.
  char *s = strncmp(want, "mdrt_", 5) ? arena_strdup(&e->c->arena, want)
                                       : arena_printf(&e->c->arena, "u_%s", want);
  while (s && is_taken(e, s))
    s = arena_printf(&e->c->arena, "%s_", s);
  if (!s || !set_add(&e->c->arena, e->sealed ? &e->temps : &e->fixed, s))
    return NULL;
  return s;
}

static bool scalar(const Node *n) { return shape_is_scalar(n->shape); }

static bool is_ident(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_';
}

static bool is_buffer(Emit *e, const Node *n) {
  return e->kind[n->id] == K_BUFFER && n->op != OP_VAR && n->op != OP_SEED;
}

static bool is_product(const Node *n) {
  return n->op == OP_MUL && !scalar(n->a) && !scalar(n->b);
}

// Can N be computed element by element from its operands' elements, so
// that it fuses into a loop? (DIAGM and DIAGV map indices; they fuse too.)
static bool elementwise(const Node *n) {
  if (scalar(n))
    return false;
  if (op_cfunc[n->op])
    return true;
  switch (n->op) {
  case OP_ADD: case OP_SUB: case OP_EMUL: case OP_EDIV: case OP_EPOW: case OP_DIV:
  case OP_DIAGM: case OP_DIAGV:
    return true;
  case OP_MUL:
    return !is_product(n);
  default:
    return false;
  }
}

// Operations that call a runtime kernel on plain (untransposed) buffers.
static bool kernel(const Node *n) {
  return n->op == OP_INV || n->op == OP_DET || n->op == OP_LOGDET || n->op == OP_SOFTMAX ||
         (n->op == OP_LSE && !scalar(n->a));
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

// The memory gemm reads for operand N: through transposes (each a flag)
// down to the first value that has memory of its own. share_memory's
// reads() sees the same.
static Node *strip_mem(Emit *e, Node *n, bool *trans) {
  *trans = false;
  while (n->op == OP_TRANS && !scalar(n) && !is_buffer(e, n)) {
    *trans = !*trans;
    n = n->a;
  }
  return n;
}

/* ---- planning ----------------------------------------------------------- */

// Mark what ROOT needs, walking down by decreasing id.
static void need(Emit *e, Node *root, unsigned long long bit) {
  char *seen = calloc((size_t)e->n, 1);
  if (!seen) {
    e->c->failed = true;
    return;
  }
  ast_mark(e->c, root, seen);
  for (int i = root->id; i >= 0; i--) {
    if (!seen[i])
      continue;
    e->mask[i] |= bit;
    if (e->kind[i] == K_NONE)
      e->kind[i] = K_LEAF;  // provisional: "needed"; plan() decides
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

// Uses seen through transposes: a value read through a transpose that is
// used twice is used twice.
static int eff_uses(Emit *e, Node *n) {
  Node *u = e->user[n->id];
  if (e->uses[n->id] == 1 && u && u->op == OP_TRANS)
    return eff_uses(e, u);
  return e->uses[n->id];
}

// A gemm operand must be in memory; a transpose of it is a flag.
static void force_buffer(Emit *e, Node *n) {
  bool tr;
  n = strip(n, &tr);
  if (n->op != OP_VAR && n->op != OP_SEED)
    e->kind[n->id] = K_BUFFER;
}

// A kernel's operand must be in memory as it is, untransposed.
static void force_plain(Emit *e, Node *n) {
  if (n->op != OP_VAR && n->op != OP_SEED && !scalar(n))
    e->kind[n->id] = K_BUFFER;
}

/* A product that gemm computes whole, alpha*op(A)*op(B): the product P
   itself, s*P or P/t (s and t scalars), or (s*P)/t, where each inner node
   is used only here. */
typedef struct Gemm {
  Node *prod;        /* the product */
  Node *mul, *div;   /* the scalar factor and divisor of alpha, or NULL */
  Node *inner[2];    /* the nodes between the term and the product */
  int ninner;
} Gemm;

static bool gemm_form(Emit *e, Node *t, Gemm *g) {
  memset(g, 0, sizeof *g);
  if (t->op == OP_DIV && !scalar(t->a) && (t->a == t || e->uses[t->a->id] == 1)) {
    g->div = t->b;
    t = g->inner[g->ninner++] = t->a;
  }
  if (t->op == OP_MUL && scalar(t->a) && is_product(t->b) && e->uses[t->b->id] == 1) {
    g->mul = t->a;
    t = g->inner[g->ninner++] = t->b;
  }
  g->prod = t;
  return is_product(t);
}

// Plan term T as a gemm: the nodes inside are absorbed, the operands must
// be in memory.
static bool gemm_term(Emit *e, Node *t) {
  Gemm g;
  if (!gemm_form(e, t, &g))
    return false;
  for (int i = 0; i < g.ninner; i++)
    e->kind[g.inner[i]->id] = K_GEMM;
  force_buffer(e, g.prod->a);
  force_buffer(e, g.prod->b);
  return true;
}

// The terms of N, a sum being written into a buffer: sums used once are
// flattened, and products among the terms are marked for gemm.
static void plan_terms(Emit *e, Node *n) {
  if (!flat_sum(n)) {
    gemm_term(e, n);
    return;
  }
  Node *ops[2] = {n->a, n->b};
  for (int k = 0; k < 2; k++) {
    Node *t = ops[k];
    if (e->uses[t->id] != 1 || e->kind[t->id] == K_BUFFER)
      continue;
    if (t->op == OP_ADD || t->op == OP_SUB) {
      e->kind[t->id] = K_TERM;
      plan_terms(e, t);
    } else if (gemm_term(e, t)) {
      e->kind[t->id] = K_GEMM;
    }
  }
}

// Decide each needed node's kind, parents before operands (by decreasing
// id), since a parent decides whether its operand is fused or absorbed.
static void plan(Emit *e, Node **roots, int nroots) {
  // A matrix root used by nothing else is written straight into its
  // destination (the output, or a gradient by adding into it).
  for (int r = 0; r < nroots; r++) {
    Node *g = roots[r];
    Op op = g->op;
    if (!scalar(g) && e->uses[g->id] == 1 && !op_is_leaf(op) && op != OP_TRANS &&
        !(r > 0 && (kernel(g) || op == OP_SUM))) {
      e->kind[g->id] = K_ROOT;
      plan_terms(e, g);
    }
  }
  for (int i = e->n - 1; i >= 0; i--) {
    Node *p = e->byid[i];
    Kind k = e->kind[i];
    if (k == K_NONE || k == K_TERM || k == K_GEMM)
      continue;
    if (k == K_ROOT)
      ;
    else if (op_is_leaf(p->op) && !op_is_fill(p->op))
      k = K_LEAF;
    else if (scalar(p))
      k = K_SCALAR;
    else if (k == K_BUFFER)
      ;
    else if (op_is_fill(p->op))
      k = K_LEAF;
    else if (p->op == OP_TRANS)
      k = K_VIEW;
    else if (elementwise(p) && eff_uses(e, p) == 1)
      k = K_INLINE;
    else
      k = K_BUFFER;
    e->kind[i] = k;
    if (k == K_BUFFER)
      plan_terms(e, p);
    if (is_product(p) && (k == K_BUFFER || k == K_ROOT)) {
      force_buffer(e, p->a);
      force_buffer(e, p->b);
    }
    if (kernel(p))
      force_plain(e, p->a);
    // tr(P*Q) is sum(P.*Q'): the product itself is never formed.
    if (p->op == OP_TR && is_product(p->a) && !scalar(p->a) && e->uses[p->a->id] == 1) {
      e->kind[p->a->id] = K_GEMM;
      force_buffer(e, p->a->a);
      force_buffer(e, p->a->b);
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

static bool is_one(Dim d) { return d.sym < 0 && d.n == 1; }

static char *elem_op(Emit *e, Node *n, const char *ri, const char *ci, bool flat);

// The C expression for element (ri, ci) of N; FLAT means one index i runs
// over N's elements in row-major order. An operand with a size-1 dimension
// reads index 0 there: that is broadcasting.
static char *elem(Emit *e, Node *n, const char *ri, const char *ci, bool flat) {
  Arena *A = &e->c->arena;
  if (n->op == OP_NUM)
    return numc(e, n->num);
  if (n->op == OP_DIM)
    return arena_printf(A, "(double)%s", e->dname[n->k]);
  if (scalar(n))
    return n->op == OP_VAR || n->op == OP_SEED ? arena_printf(A, "%s[0]", e->cname[n->id])
                                               : e->cname[n->id];
  if (n->op == OP_VAR || n->op == OP_SEED || e->kind[n->id] == K_BUFFER) {
    const char *name = e->cname[n->id];
    if (flat)
      return arena_printf(A, "%s[i]", name);
    if (is_one(n->shape.c))
      return arena_printf(A, "%s[%s]", name, ri);
    if (is_one(n->shape.r))
      return arena_printf(A, "%s[%s]", name, ci);
    return arena_printf(A, "%s[%s*%s + %s]", name, ri, dimc(e, n->shape.c), ci);
  }
  return elem_op(e, n, ri, ci, flat);
}

// Element (ri, ci) of N computed from its operands.
static char *elem_op(Emit *e, Node *n, const char *ri, const char *ci, bool flat) {
  Arena *A = &e->c->arena;
  switch (n->op) {
  case OP_ZEROS: return "0.0";
  case OP_ONES: return "1.0";
  case OP_EYE: return !strcmp(ri, ci) ? "1.0" : arena_printf(A, "(%s == %s ? 1.0 : 0.0)", ri, ci);
  case OP_TRANS: return elem(e, n->a, ci, ri, flat);
  case OP_DIAGM:
    if (!strcmp(ri, ci))
      return elem(e, n->a, ri, "0", false);
    return arena_printf(A, "(%s == %s ? %s : 0.0)", ri, ci, elem(e, n->a, ri, "0", false));
  case OP_DIAGV: return elem(e, n->a, ri, ri, false);
  default: break;
  }
  // Broadcast operands see index 0 along their size-1 dimensions.
  char *a = NULL, *b = NULL;
  if (n->a)
    a = elem(e, n->a, is_one(n->a->shape.r) ? "0" : ri, is_one(n->a->shape.c) ? "0" : ci, flat);
  if (n->b)
    b = elem(e, n->b, is_one(n->b->shape.r) ? "0" : ri, is_one(n->b->shape.c) ? "0" : ci, flat);
  if (op_cfunc[n->op])
    return arena_printf(A, "%s(%s)", op_cfunc[n->op], a);
  switch (n->op) {
  case OP_ADD: return arena_printf(A, "(%s + %s)", a, b);
  case OP_SUB: return arena_printf(A, "(%s - %s)", a, b);
  case OP_MUL:
  case OP_EMUL: return arena_printf(A, "(%s*%s)", a, b);
  case OP_DIV:
  case OP_EDIV: return arena_printf(A, "(%s/%s)", a, b);
  case OP_POW:
  case OP_EPOW:
    // A square of a value in memory is a product, cheaper than pow().
    if (ast_is_num(n->b, 2) && !strpbrk(a, "(+-*/"))
      return arena_printf(A, "(%s*%s)", a, a);
    return arena_printf(A, "pow(%s, %s)", a, b);
  default: return "0.0 /* unreachable */";
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
  if (op == OP_VAR || op == OP_SEED || op == OP_ZEROS || op == OP_ONES)
    return false;
  // A vector and its transpose lie the same way in memory.
  if (op == OP_TRANS && (is_one(n->a->shape.r) || is_one(n->a->shape.c)))
    return needs_2d(e, n->a, n->a->shape, false);
  if (op == OP_EYE || op == OP_TRANS || op == OP_DIAGM || op == OP_DIAGV)
    return true;
  if (e->kind[n->id] == K_BUFFER && !top)
    return false;
  return (n->a && needs_2d(e, n->a, shape, false)) || (n->b && needs_2d(e, n->b, shape, false));
}

static void indent(Emit *e, int depth) {
  for (int i = 0; i < depth; i++)
    buf_puts(e->o, "  ");
}

static void line(Emit *e, int depth, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void line(Emit *e, int depth, const char *fmt, ...) {
  indent(e, depth);
  va_list ap;
  va_start(ap, fmt);
  char tmp[1];
  int n = vsnprintf(tmp, 1, fmt, ap);
  va_end(ap);
  char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
  if (s) {
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buf_puts(e->o, s);
    free(s);
  }
  buf_puts(e->o, "\n");
}

// "/* t3 = X*W + b */". Printed formulas never hold "*/": no '/' follows '*'.
static void comment(Emit *e, int depth, const char *lhs, Node *n) {
  char *s = print_short(e->c, n, 69);
  if (s)
    line(e, depth, "/* %s = %s */", lhs, s);
}

// for (i) [for (j)] DST[..] OP RHS(i, j), over SHAPE.
static void for_each(Emit *e, int depth, Shape s, bool two, const char *dst, const char *op,
                     const char *rhs) {
  if (two) {
    line(e, depth, "for (long i = 0; i < %s; i++)", dimc(e, s.r));
    line(e, depth + 1, "for (long j = 0; j < %s; j++)", dimc(e, s.c));
    line(e, depth + 2, "%s[i*%s + j] %s %s;", dst, dimc(e, s.c), op, rhs);
  } else {
    line(e, depth, "for (long i = 0; i < %s; i++)", lenc(e, s));
    line(e, depth + 1, "%s[i] %s %s;", dst, op, rhs);
  }
}

// DST (of TOP's shape) OP the elementwise TERMS with their SIGNS.
static void loop(Emit *e, int depth, const char *dst, Node *top, Node **terms, int *signs, int nt,
                 const char *op) {
  bool two = false;
  for (int t = 0; t < nt; t++)
    two |= needs_2d(e, terms[t], top->shape, terms[t] == top);
  Buf rhs = {0};
  for (int t = 0; t < nt; t++) {
    char *x = terms[t] == top ? elem_op(e, terms[t], "i", "j", !two) : elem(e, terms[t], "i", "j", !two);
    if (t == 0)
      buf_printf(&rhs, "%s%s", signs[t] < 0 ? "-" : "", x);
    else
      buf_printf(&rhs, " %s %s", signs[t] < 0 ? "-" : "+", x);
  }
  for_each(e, depth, top->shape, two, dst, op, rhs.s ? rhs.s : "0.0");
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
  Gemm g;
  if (e->kind[t->id] == K_GEMM)
    return true;
  if (t != top || !gemm_form(e, t, &g))
    return false;
  for (int i = 0; i < g.ninner; i++)
    if (e->kind[g.inner[i]->id] != K_GEMM)
      return false;
  return true;
}

static void gemm(Emit *e, int depth, const char *dst, Node *t, int sign, bool accumulate) {
  Gemm g;
  gemm_form(e, t, &g);
  Node *prod = g.prod;
  bool ta, tb;
  Node *a = strip_mem(e, prod->a, &ta), *b = strip_mem(e, prod->b, &tb);
  char *al = g.mul ? elem(e, g.mul, "0", "0", true) : "1.0";
  if (g.div)
    al = arena_printf(&e->c->arena, "%s/%s", al, elem(e, g.div, "0", "0", true));
  if (sign < 0)
    al = arena_printf(&e->c->arena, "-%s", al);
  line(e, depth, "mdrt_gemm(%d, %d, %s, %s, %s, %s, %s, %s, %s, %s);", ta, tb,
       dimc(e, prod->shape.r), dimc(e, prod->shape.c), dimc(e, prod->a->shape.c), al,
       e->cname[a->id], e->cname[b->id], accumulate ? "1.0" : "0.0", dst);
}

// Write (or with ACCUMULATE, add) the sum of terms N into DST: the
// elementwise terms in one loop, then each product through gemm.
static void write_sum(Emit *e, int depth, const char *dst, Node *n, bool accumulate) {
  int cap = count_terms(e, n, true), nt = 0, new = 0;
  Node **terms = calloc((size_t)cap, sizeof *terms), **ew = calloc((size_t)cap, sizeof *ew);
  int *signs = calloc((size_t)cap, sizeof *signs), *ews = calloc((size_t)cap, sizeof *ews);
  if (!terms || !ew || !signs || !ews) {
    e->c->failed = true;
    goto done;
  }
  collect(e, n, true, 1, terms, signs, &nt, cap);
  for (int t = 0; t < nt; t++)
    if (!is_gemm(e, terms[t], n)) {
      ew[new] = terms[t];
      ews[new++] = signs[t];
    }
  bool written = accumulate;
  if (new == 1 && ews[0] > 0 && !accumulate && ew[0] != n &&
      (ew[0]->op == OP_VAR || ew[0]->op == OP_SEED || e->kind[ew[0]->id] == K_BUFFER) &&
      shape_eq(ew[0]->shape, n->shape)) {
    line(e, depth, "mdrt_copy(%s, %s, %s);", lenc(e, n->shape), e->cname[ew[0]->id], dst);
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
done:
  free(terms);
  free(signs);
  free(ew);
  free(ews);
}

// sum(A, 1) or sum(A, 2) into DST, fused with A's loop.
static void write_sum_axis(Emit *e, int depth, const char *dst, Node *n) {
  Node *a = n->a;
  bool cols = n->k == 1;
  line(e, depth, "for (long i = 0; i < %s; i++)", lenc(e, n->shape));
  line(e, depth + 1, "%s[i] = 0;", dst);
  line(e, depth, "for (long i = 0; i < %s; i++)", dimc(e, a->shape.r));
  line(e, depth + 1, "for (long j = 0; j < %s; j++)", dimc(e, a->shape.c));
  line(e, depth + 2, "%s[%s] += %s;", dst, cols ? "j" : "i", elem(e, a, "i", "j", false));
}

// A kernel that can fail returns its message from the generated function.
static void check(Emit *e, int depth, const char *call, const char *what) {
  line(e, depth, "if (%s)", call);
  line(e, depth + 1, "return \"%s: the matrix is singular\";", what);
}

// Write the matrix N into DST (or add it in, with ACCUMULATE).
static void write_matrix(Emit *e, int depth, const char *dst, Node *n, bool accumulate) {
  Node *a = n->a;
  const char *src = a ? e->cname[a->id] : NULL;
  switch (accumulate ? OP_COUNT : n->op) {
  case OP_SUM:
    write_sum_axis(e, depth, dst, n);
    return;
  case OP_INV:
    check(e, depth, arena_printf(&e->c->arena, "mdrt_lu_inv(%s, %s, %s, 0)", dimc(e, a->shape.r), src, dst),
          "inv");
    return;
  case OP_SOFTMAX:
    line(e, depth, "mdrt_softmax_rows(%s, %s, %s, %s);", dimc(e, a->shape.r), dimc(e, a->shape.c), src, dst);
    return;
  case OP_LSE:
    line(e, depth, "mdrt_logsumexp_rows(%s, %s, %s, %s);", dimc(e, a->shape.r), dimc(e, a->shape.c), src, dst);
    return;
  default:
    break;
  }
  Kind k = e->kind[n->id];
  if (accumulate && (k == K_BUFFER || n->op == OP_VAR || n->op == OP_SEED)) {
    line(e, depth, "mdrt_axpby(%s, 1.0, %s, 1.0, %s);", lenc(e, n->shape), e->cname[n->id], dst);
    return;
  }
  write_sum(e, depth, dst, n, accumulate);
}

// A reduction of A to a scalar, into the local double DST.
static void reduce(Emit *e, int depth, const char *dst, Node *n) {
  bool tr;
  Node *a = strip_mem(e, n->a, &tr);  // a full reduction does not care about order
  bool norm = n->op == OP_NORM;
  if (a->op == OP_VAR || a->op == OP_SEED || e->kind[a->id] == K_BUFFER) {
    line(e, depth, "%s = %s%s(%s, %s)%s;", dst, norm ? "sqrt(" : "",
         n->op == OP_SUM ? "mdrt_sum" : "mdrt_sumsq", lenc(e, a->shape), e->cname[a->id],
         norm ? ")" : "");
    return;
  }
  bool two = needs_2d(e, a, a->shape, false);
  char *x = elem(e, a, "i", "j", !two);
  line(e, depth, "%s = 0;", dst);
  if (two) {
    line(e, depth, "for (long i = 0; i < %s; i++)", dimc(e, a->shape.r));
    line(e, depth + 1, "for (long j = 0; j < %s; j++) {", dimc(e, a->shape.c));
  } else {
    line(e, depth, "for (long i = 0; i < %s; i++) {", lenc(e, a->shape));
  }
  if (n->op == OP_SUM) {
    line(e, depth + 1 + two, "%s += %s;", dst, x);
  } else {
    line(e, depth + 1 + two, "double v = %s;", x);
    line(e, depth + 1 + two, "%s += v*v;", dst);
  }
  line(e, depth + two, "}");
  if (norm)
    line(e, depth, "%s = sqrt(%s);", dst, dst);
}

static void scalar_op(Emit *e, int depth, Node *n) {
  Arena *A = &e->c->arena;
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
      line(e, depth, "%s = mdrt_logsumexp(%s, %s);", dst, lenc(e, an->shape), src);
      return;
    case OP_TR:
      line(e, depth, "%s = 0;", dst);
      line(e, depth, "for (long i = 0; i < %s; i++)", sz);
      if (e->kind[an->id] == K_GEMM) {  /* tr(P*Q) = sum of P(i,j)*Q(j,i) */
        line(e, depth + 1, "for (long j = 0; j < %s; j++)", dimc(e, an->a->shape.c));
        line(e, depth + 2, "%s += %s*%s;", dst, elem(e, an->a, "i", "j", false),
             elem(e, an->b, "j", "i", false));
      } else {
        line(e, depth + 1, "%s += %s;", dst, elem(e, an, "i", "i", false));
      }
      return;
    case OP_DET:
      check(e, depth, arena_printf(A, "mdrt_lu_inv(%s, %s, 0, &%s)", sz, src, dst), "det");
      return;
    case OP_LOGDET:
      check(e, depth, arena_printf(A, "mdrt_logdet(%s, %s, &%s)", sz, src, dst), "logdet");
      return;
    case OP_MUL:  /* a row times a column: a dot product */
      line(e, depth, "%s = 0;", dst);
      line(e, depth, "for (long i = 0; i < %s; i++)", dimc(e, an->shape.c));
      line(e, depth + 1, "%s += %s*%s;", dst, elem(e, an, "0", "i", false), elem(e, n->b, "i", "0", false));
      return;
    default:
      break;
    }
  }
  char *a = an ? elem(e, an, "0", "0", true) : NULL;
  char *b = n->b ? elem(e, n->b, "0", "0", true) : NULL;
  if (op_cfunc[n->op]) {
    line(e, depth, "%s = %s(%s);", dst, op_cfunc[n->op], a);
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
  case OP_EPOW: line(e, depth, "%s = pow(%s, %s);", dst, a, b); break;
  case OP_NORM: line(e, depth, "%s = fabs(%s);", dst, a); break;
  case OP_NORMSQ: line(e, depth, "%s = %s*%s;", dst, a, a); break;
  case OP_LSE:   /* of a scalar: itself */
  case OP_SUM:
  case OP_TRANS:
  case OP_TR:
  case OP_DET:
  case OP_DIAGM:
  case OP_DIAGV: line(e, depth, "%s = %s;", dst, a); break;
  case OP_SOFTMAX: line(e, depth, "(void)%s;", a), line(e, depth, "%s = 1.0;", dst); break;
  case OP_INV: line(e, depth, "%s = 1.0/%s;", dst, a); break;
  case OP_LOGDET: line(e, depth, "%s = log(fabs(%s));", dst, a); break;
  default: line(e, depth, "%s = 0; /* unreachable */", dst); break;
  }
}

/* ---- functions ---------------------------------------------------------- */

typedef enum Sig {
  SIG_VALUE,     /* the value: dims, inputs, out */
  SIG_GRAD,      /* the gradients: dims, inputs, [seed,] out, grads */
} Sig;

static void sep(Buf *o, bool *first) {
  if (!*first)
    buf_puts(o, ", ");
  *first = false;
}

// The parameter list of the generated functions. PUBLIC drops the out
// parameter where the public API has none (a scalar output is returned;
// the VJP does not give the value).
static void params(Emit *e, Sig sig, bool public, bool ws) {
  Ctx *c = e->c;
  bool first = true;
  for (int i = 0; i < c->ndims; i++)
    sep(e->o, &first), buf_printf(e->o, "long %s", e->dname[i]);
  for (int i = 0; i < c->nvars; i++)
    sep(e->o, &first), buf_printf(e->o, "const double *%s", e->pname[i]);
  if (sig == SIG_GRAD && e->matrix_out)
    sep(e->o, &first), buf_printf(e->o, "const double *%s", e->seedp);
  if (!public || (sig == SIG_VALUE && e->matrix_out))
    sep(e->o, &first), buf_printf(e->o, "double *%s", e->outp);
  if (sig == SIG_GRAD)
    for (int i = 0; i < c->nvars; i++)
      if (c->vars[i].wrt)
        sep(e->o, &first), buf_printf(e->o, "double *%s", e->gname[i]);
  if (ws)
    sep(e->o, &first), buf_puts(e->o, "void *ws_");
  if (first)
    buf_puts(e->o, "void");
}

// The arguments matching params(e, sig, false, true), from the names used
// inside a public wrapper.
static void call_args(Emit *e, Sig sig, const char *out) {
  Ctx *c = e->c;
  bool first = true;
  for (int i = 0; i < c->ndims; i++)
    sep(e->o, &first), buf_puts(e->o, e->dname[i]);
  for (int i = 0; i < c->nvars; i++)
    sep(e->o, &first), buf_puts(e->o, e->pname[i]);
  if (sig == SIG_GRAD && e->matrix_out)
    sep(e->o, &first), buf_puts(e->o, e->seedp);
  sep(e->o, &first), buf_puts(e->o, out);
  if (sig == SIG_GRAD)
    for (int i = 0; i < c->nvars; i++)
      if (c->vars[i].wrt)
        sep(e->o, &first), buf_puts(e->o, e->gname[i]);
  sep(e->o, &first), buf_puts(e->o, "ws");
}

static void guard_open(Emit *e, unsigned long long m) {
  Buf cond = {0};
  for (int i = 0; i < e->c->nvars && i < 63; i++)
    if (m & (1ull << i))
      buf_printf(&cond, "%s%s", cond.len ? " || " : "", e->gname[i]);
  line(e, 1, "if (%s) {", cond.s ? cond.s : "1");
  buf_free(&cond);
}

// A fused loop's expression is bounded in depth (libtcc's value stack
// holds 256 entries): every 32 levels of fused operations, one is given a
// buffer of its own. Operands come before users, so one pass in id order
// sees each node's operands' depths.
static void limit_fusion(Emit *e) {
  int *depth = calloc((size_t)e->n + 1, sizeof *depth);
  if (!depth) {
    e->c->failed = true;
    return;
  }
  for (int i = 0; i < e->n; i++) {
    Node *p = e->byid[i];
    if (e->kind[i] != K_INLINE && e->kind[i] != K_VIEW)
      continue;
    int d = 0;
    if (p->a && (e->kind[p->a->id] == K_INLINE || e->kind[p->a->id] == K_VIEW))
      d = depth[p->a->id];
    if (p->b && (e->kind[p->b->id] == K_INLINE || e->kind[p->b->id] == K_VIEW) && depth[p->b->id] > d)
      d = depth[p->b->id];
    depth[i] = d + 1;
    if (depth[i] > 32 && e->kind[i] == K_INLINE) {
      e->kind[i] = K_BUFFER;
      depth[i] = 0;
    }
  }
  free(depth);
}

/* ---- workspace ---------------------------------------------------------- */


// Mark statement S as reading the buffers N's code reads: the buffers met
// below N through values that have no memory of their own.
static void reads(Emit *e, Node *n, int s, bool top) {
  if (!top && is_buffer(e, n)) {
    e->lastuse[n->id] = s;
    return;
  }
  Kind k = e->kind[n->id];
  if (!top && (k == K_SCALAR || k == K_LEAF || n->op == OP_VAR))
    return;
  if (n->a)
    reads(e, n->a, s, false);
  if (n->b)
    reads(e, n->b, s, false);
}

// Give each buffer its memory: a buffer may take over the memory of one of
// the same shape whose last reader came before it (a transposed or gemm
// read of a buffer being written is never safe, so "before" is strict).
// Statements are numbered in the order print_body emits them: the nodes in
// id order, then the gradients, then the output. Returns the workspace
// size in doubles, as C.
static char *share_memory(Emit *e, Node **roots, int nroots) {
  int n = e->n, s = 0;
  for (int i = 0; i < n; i++)
    e->lastuse[i] = -1;
  for (int i = 0; i < n; i++)
    if (is_buffer(e, e->byid[i]) || e->kind[i] == K_SCALAR)
      reads(e, e->byid[i], s++, true);
  for (int r = 1; r <= nroots; r++) {
    Node *g = roots[r % nroots];  // the gradients, then the output
    reads(e, g, s++, !is_buffer(e, g));
  }
  // Each buffer that owns memory remembers the last statement reading it or
  // any later tenant; a new buffer takes the first owner of its shape that
  // is free by then.
  int *owners = malloc(sizeof *owners * (size_t)(n + 1));
  int *olast = malloc(sizeof *olast * (size_t)(n + 1));
  int nowners = 0;
  Buf ws = {0};
  buf_puts(&ws, "0");
  s = 0;
  for (int i = 0; owners && olast && i < n; i++) {
    Node *p = e->byid[i];
    e->alias[i] = NULL;
    if (!is_buffer(e, p) && e->kind[i] != K_SCALAR)
      continue;
    int here = s++;
    if (!is_buffer(e, p))
      continue;
    for (int k = 0; k < nowners && !e->alias[i]; k++) {
      Node *q = e->byid[owners[k]];
      if (olast[owners[k]] < here && shape_eq(q->shape, p->shape)) {
        e->alias[i] = q;
        if (e->lastuse[i] > olast[owners[k]])
          olast[owners[k]] = e->lastuse[i];
      }
    }
    if (!e->alias[i]) {
      owners[nowners++] = i;
      olast[i] = e->lastuse[i];
      buf_printf(&ws, " + %s", lenc(e, p->shape));
    }
  }
  if (!owners || !olast)
    e->c->failed = true;
  free(owners);
  free(olast);
  char *size = ws.s ? arena_strdup(&e->c->arena, ws.s) : NULL;
  buf_free(&ws);
  return size;
}

// Plan one body: the value, and with GRADS the gradients. Returns the
// workspace size as a C expression in doubles.
static char *plan_body(Emit *e, bool grads, Node **roots, int *nroots) {
  Ctx *c = e->c;
  int n = e->n;
  memset(e->uses, 0, sizeof *e->uses * (size_t)n);
  memset(e->mask, 0, sizeof *e->mask * (size_t)n);
  memset(e->kind, 0, sizeof *e->kind * (size_t)n);
  memset(e->user, 0, sizeof *e->user * (size_t)n);
  memset(e->cname, 0, sizeof *e->cname * (size_t)n);
  if (e->temps.cap)
    memset(e->temps.slot, 0, sizeof(char *) * e->temps.cap);
  e->temps.n = 0;
  e->ntemps = 0;
  roots[0] = c->out;
  need(e, c->out, ALL_ROOTS);
  *nroots = 1;
  if (grads)
    for (int i = 0; i < c->nvars; i++)
      if (c->vars[i].wrt) {
        roots[(*nroots)++] = c->grads[i];
        need(e, c->grads[i], c->nvars > 63 ? ALL_ROOTS : 1ull << i);
      }
  for (int r = 0; r < *nroots; r++)
    e->uses[roots[r]->id]++;
  count_uses(e);
  plan(e, roots, *nroots);
  limit_fusion(e);

  // Names: buffers and scalars get t1, t2, ... in order.
  for (int i = 0; i < n; i++) {
    Node *p = e->byid[i];
    if (p->op == OP_VAR)
      e->cname[i] = e->pname[p->k];
    else if (p->op == OP_SEED)
      e->cname[i] = e->seedp;
    else if (e->kind[i] == K_BUFFER || e->kind[i] == K_SCALAR)
      e->cname[i] = claim(e, arena_printf(&c->arena, "t%d", ++e->ntemps));
  }
  return share_memory(e, roots, *nroots);
}

// Print one body, planned by plan_body.
static void print_body(Emit *e, bool grads, Node **roots, int nroots) {
  Ctx *c = e->c;
  int n = e->n;
  // Declarations: workspace pointers and scalars.
  const char *prev = NULL;
  Shape prevshape = shape_scalar();
  for (int i = 0; i < n; i++) {
    if (is_buffer(e, e->byid[i]) && e->alias[i]) {
      line(e, 1, "double *%s = %s;  /* %s's memory, no longer needed */", e->cname[i],
           e->cname[e->alias[i]->id], e->cname[e->alias[i]->id]);
    } else if (is_buffer(e, e->byid[i])) {
      if (prev)
        line(e, 1, "double *%s = %s + %s;", e->cname[i], prev, lenc(e, prevshape));
      else
        line(e, 1, "double *%s = ws;", e->cname[i]);
      prev = e->cname[i];
      prevshape = e->byid[i]->shape;
    } else if (e->kind[i] == K_SCALAR) {
      line(e, 1, "double %s = 0;", e->cname[i]);
    }
  }
  if (!prev)
    line(e, 1, "(void)ws;");

  // The code, in id order, grouped under guards by the roots that need it.
  unsigned long long open = ALL_ROOTS;
  for (int i = 0; i < n; i++) {
    Kind k = e->kind[i];
    Node *p = e->byid[i];
    if ((k != K_BUFFER && k != K_SCALAR) || p->op == OP_VAR)
      continue;
    if (e->mask[i] != open) {
      if (open != ALL_ROOTS)
        line(e, 1, "}");
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
    line(e, 1, "}");

  for (int r = 1; r < nroots; r++) {
    // Root r is the gradient of the r-th wrt variable.
    int i = 0;
    for (int k = 0, seen = 0; k < c->nvars; k++)
      if (c->vars[k].wrt && ++seen == r)
        i = k;
    Node *g = roots[r];
    line(e, 1, "if (%s) {", e->gname[i]);
    comment(e, 2, arena_printf(&c->arena, "d%s/d%s", c->outname, c->vars[i].name), g);
    if (g->op == OP_ZEROS || ast_is_num(g, 0))
      line(e, 2, "/* nothing to add */");
    else if (scalar(g))
      line(e, 2, "%s[0] += %s;", e->gname[i], elem(e, g, "0", "0", true));
    else
      write_matrix(e, 2, e->gname[i], g, true);
    line(e, 1, "}");
  }
  Node *out = c->out;
  if (!e->matrix_out) {
    line(e, 1, "%s[0] = %s;", e->outp, elem(e, out, "0", "0", true));
  } else {
    if (grads)
      line(e, 1, "if (%s) {", e->outp);
    comment(e, 1 + grads, c->outname, out);
    if (e->kind[out->id] == K_BUFFER || out->op == OP_VAR || out->op == OP_SEED)
      line(e, 1 + grads, "mdrt_copy(%s, %s, %s);", lenc(e, out->shape), e->cname[out->id], e->outp);
    else
      write_matrix(e, 1 + grads, e->outp, out, false);
    if (grads)
      line(e, 1, "}");
  }
  line(e, 1, "return 0;");
}

// (void)NAME; when the C text BODY never mentions NAME.
static void unused(Emit *e, const char *body, const char *name) {
  size_t n = strlen(name);
  for (const char *p = body; p && (p = strstr(p, name)); p += n) {
    // Mentions inside /* comments */ do not count.
    const char *open = p, *close = p;
    while (open > body && !(open[-1] == '*' && open - 1 > body && open[-2] == '/'))
      open--;
    while (close > body && !(close[-1] == '/' && close - 1 > body && close[-2] == '*'))
      close--;
    bool in_comment = open > close;
    bool before = p > body && is_ident(p[-1]), after = is_ident(p[n]);
    if (!before && !after && !in_comment)
      return;
  }
  line(e, 1, "(void)%s;", name);
}

// For the JIT, the function that does the work is the entry point itself:
// it takes its sizes, inputs and gradient buffers as arrays (libtcc cannot
// pass a hundred arguments), and names them as the AOT code does.
static void jit_prologue(Emit *e, bool grads) {
  Ctx *c = e->c;
  const char *P = e->opts->name;
  if (grads)
    buf_printf(e->o, "const char *%s_entry_grad(const long *%s, const double *const *%s, "
                     "const double *%s, double *%s, double *const *%s, void *ws_) {\n",
               P, e->arr_d, e->arr_in, e->seedp, e->outp, e->arr_g);
  else
    buf_printf(e->o, "const char *%s_entry_eval(const long *%s, const double *const *%s, double *%s, "
                     "void *ws_) {\n", P, e->arr_d, e->arr_in, e->outp);
  buf_printf(e->o, "  double *ws = ws_;\n  (void)%s; (void)%s;\n", e->arr_d, e->arr_in);
  if (grads)
    buf_printf(e->o, "  (void)%s; (void)%s;\n", e->seedp, e->arr_g);
  for (int i = 0; i < c->ndims; i++)
    buf_printf(e->o, "  long %s = %s[%d];\n", e->dname[i], e->arr_d, i);
  for (int i = 0; i < c->nvars; i++)
    buf_printf(e->o, "  const double *%s = %s[%d];\n", e->pname[i], e->arr_in, i);
  for (int i = 0; grads && i < c->nvars; i++)
    if (c->vars[i].wrt)
      buf_printf(e->o, "  double *%s = %s[%d];\n", e->gname[i], e->arr_g, i);
}

// The static function that does the work, returning NULL or a message.
static char *impl(Emit *e, bool grads, bool print) {
  Node **roots = arena_alloc(&e->c->arena, sizeof *roots * (size_t)(e->c->nvars + 1));
  int nroots;
  if (!roots)
    return NULL;
  char *size = plan_body(e, grads, roots, &nroots);
  if (!print)
    return size;
  if (e->opts->jit)
    jit_prologue(e, grads);
  else {
    buf_printf(e->o, "static const char *%s_%s(", e->opts->name, grads ? "backward" : "forward");
    params(e, grads ? SIG_GRAD : SIG_VALUE, false, true);
    buf_puts(e->o, ") {\n  double *ws = ws_;\n");
  }
  // The body first, to see which parameters it leaves unused: those are
  // cast to void, so the file compiles with -Wall -Wextra -Werror.
  Buf *o = e->o, body = {0};
  e->o = &body;
  print_body(e, grads, roots, nroots);
  e->o = o;
  Ctx *c = e->c;
  for (int i = 0; i < c->ndims; i++)
    unused(e, body.s, e->dname[i]);
  for (int i = 0; i < c->nvars; i++) {
    unused(e, body.s, e->pname[i]);
    if (grads && c->vars[i].wrt)
      unused(e, body.s, e->gname[i]);
  }
  if (grads && e->matrix_out)
    unused(e, body.s, e->seedp);
  buf_puts(o, body.s ? body.s : "");
  o->oom |= body.oom;
  buf_free(&body);
  buf_puts(e->o, "}\n\n");
  return size;
}

static void dims_args(Emit *e) {
  for (int i = 0; i < e->c->ndims; i++)
    buf_printf(e->o, "%s%s", i ? ", " : "", e->dname[i]);
}

// The public functions around one impl: P_ws / P_grad_ws (or P_vjp_ws) in
// a caller's workspace, and P / P_grad (P_vjp) allocating it.
static void wrappers(Emit *e, bool grads) {
  const char *P = e->opts->name;
  Sig sig = grads ? SIG_GRAD : SIG_VALUE;
  const char *suffix = !grads ? "" : e->matrix_out ? "_vjp" : "_grad";
  const char *impl_name = grads ? "backward" : "forward";
  // A scalar output is returned (NaN on error); otherwise 0 or -1.
  const char *type = e->matrix_out ? "int" : "double";
  bool has_out = !e->matrix_out || !grads;
  const char *out = !e->matrix_out ? "&y" : grads ? "0" : e->outp;
  buf_printf(e->o, "%s %s%s_ws(", type, P, suffix);
  params(e, sig, true, true);
  buf_printf(e->o, ") {\n  double *ws = ws_;\n");
  if (!e->matrix_out)
    buf_printf(e->o, "  double y;\n  if (%s_%s(", P, impl_name), call_args(e, sig, out),
        buf_puts(e->o, "))\n    return 0.0/0.0;\n  return y;\n}\n\n");
  else
    buf_printf(e->o, "  return %s_%s(", P, impl_name), call_args(e, sig, out),
        buf_puts(e->o, ") ? -1 : 0;\n}\n\n");
  (void)has_out;
  buf_printf(e->o, "%s %s%s(", type, P, suffix);
  params(e, sig, true, false);
  buf_printf(e->o, ") {\n  void *ws = mdrt_alloc(%s_workspace_size(", P);
  dims_args(e);
  buf_printf(e->o, "));\n  if (!ws)\n    return %s;\n  %s y = %s%s_ws(", e->matrix_out ? "-1" : "0.0/0.0",
             type, P, suffix);
  Ctx *c = e->c;
  bool first = true;
  for (int i = 0; i < c->ndims; i++)
    sep(e->o, &first), buf_puts(e->o, e->dname[i]);
  for (int i = 0; i < c->nvars; i++)
    sep(e->o, &first), buf_puts(e->o, e->pname[i]);
  if (grads && e->matrix_out)
    sep(e->o, &first), buf_puts(e->o, e->seedp);
  if (!grads && e->matrix_out)
    sep(e->o, &first), buf_puts(e->o, e->outp);
  if (grads)
    for (int i = 0; i < c->nvars; i++)
      if (c->vars[i].wrt)
        sep(e->o, &first), buf_puts(e->o, e->gname[i]);
  sep(e->o, &first), buf_puts(e->o, "ws");
  buf_puts(e->o, ");\n  mdrt_free(ws);\n  return y;\n}\n\n");
}

// Array-form entry points for md_eval and md_grad, which call any arity.
static void jit_entries(Emit *e) {
  Ctx *c = e->c;
  const char *P = e->opts->name;
  buf_printf(e->o, "long %s_entry_ws(const long *d) {\n  (void)d;\n  return %s_workspace_size(", P, P);
  for (int i = 0; i < c->ndims; i++)
    buf_printf(e->o, "%sd[%d]", i ? ", " : "", i);
  buf_puts(e->o, ");\n}\n\n");
}

static bool setup(Emit *e, Ctx *c, const EmitOpts *o, Buf *out) {
  memset(e, 0, sizeof *e);
  e->c = c;
  e->o = out;
  e->opts = o;
  e->matrix_out = !shape_is_scalar(c->out->shape);
  static const char *const suffixes[] = {"", "_ws", "_grad", "_grad_ws", "_vjp", "_vjp_ws",
                                         "_workspace_size", "_forward", "_backward",
                                         "_entry_ws", "_entry_eval", "_entry_grad"};
  for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++)
    claim(e, arena_printf(&c->arena, "%s%s", o->name, suffixes[i]));
  e->dname = arena_alloc(&c->arena, sizeof(char *) * (size_t)(c->ndims + 1));
  e->pname = arena_alloc(&c->arena, sizeof(char *) * (size_t)(c->nvars + 1));
  e->gname = arena_alloc(&c->arena, sizeof(char *) * (size_t)(c->nvars + 1));
  if (!e->dname || !e->pname || !e->gname)
    return false;
  for (int i = 0; i < c->ndims; i++)
    e->dname[i] = claim(e, c->dims[i]);
  for (int i = 0; i < c->nvars; i++)
    e->pname[i] = claim(e, c->vars[i].name);
  e->seedp = e->matrix_out || o->jit ? claim(e, "seed") : NULL;
  e->outp = claim(e, "out");
  if (o->jit) {
    e->arr_d = claim(e, "dims");
    e->arr_in = claim(e, "inputs");
    e->arr_g = claim(e, "grads");
  }
  for (int i = 0; i < c->nvars; i++)
    if (c->vars[i].wrt)
      e->gname[i] = claim(e, arena_printf(&c->arena, "d%s", c->vars[i].name));
  // The DAG has grown during differentiation; emit sees all of it.
  e->n = c->nnodes;
  e->byid = c->nodes;
  e->uses = arena_alloc(&c->arena, sizeof(int) * (size_t)e->n);
  e->mask = arena_alloc(&c->arena, sizeof(unsigned long long) * (size_t)e->n);
  e->kind = arena_alloc(&c->arena, sizeof(Kind) * (size_t)e->n);
  e->cname = arena_alloc(&c->arena, sizeof(char *) * (size_t)e->n);
  e->user = arena_alloc(&c->arena, sizeof(Node *) * (size_t)e->n);
  e->alias = arena_alloc(&c->arena, sizeof(Node *) * (size_t)e->n);
  e->lastuse = arena_alloc(&c->arena, sizeof(int) * (size_t)e->n);
  e->sealed = true;
  if (!e->byid || !e->uses || !e->mask || !e->kind || !e->cname || !e->user || !e->alias ||
      !e->lastuse)
    return false;
  return true;
}

static void header(Emit *e) {
  Ctx *c = e->c;
  const char *P = e->opts->name;
  buf_printf(e->o, "/*\n * Generated by matdiff %s from %s. Do not edit.\n *\n", MATDIFF_VERSION, c->file);
  char *out = print_short(c, c->out, 2000);
  buf_printf(e->o, " *   %s = %s\n", c->outname, out ? out : "?");
  for (int i = 0; i < c->nvars; i++)
    if (c->vars[i].wrt) {
      char *g = print_short(c, c->grads[i], 2000);
      buf_printf(e->o, " *   %s%s/d%s = %s\n", e->matrix_out ? "G'*d" : "d", c->outname,
                 c->vars[i].name, g ? g : "?");
    }
  buf_printf(e->o, " *\n * Matrices are row-major %ss; a scalar is passed as a pointer to one %s.\n",
             e->opts->flt ? "float" : "double", e->opts->flt ? "float" : "double");
  if (e->matrix_out)
    buf_printf(e->o, " * %s writes the output into out and returns 0, or -1 on error (a singular\n"
                     " * matrix). %s_vjp ADDS seed'*J, the vector-Jacobian product, into each\n"
                     " * gradient buffer; a NULL buffer skips that gradient and the work only it needs.\n */\n",
               P, P);
  else
    buf_printf(e->o, " * %s returns the value, NaN on error (a singular matrix). %s_grad returns\n"
                     " * the value and ADDS each gradient into its buffer; a NULL buffer skips that\n"
                     " * gradient and the work only it needs.\n */\n", P, P);
}

/* ---- operation counts -------------------------------------------------- */

/* The arithmetic the emitted code does at given sizes: one per +, -, *, /
   or function applied to an element, 2mnk per gemm, LU's 2n^3/3 (and 2n^3
   for an inverse), 3 per element for logsumexp and softmax. Copies count
   nothing. This is what `matdiff cost` prints and what the cheap-gradient
   bound of reverse mode (gradient <= 4 x value) is checked against. */

static double elems(Shape s, const long *dims) {
  return (double)dim_value(s.r, dims) * (double)dim_value(s.c, dims);
}

// Operations per element of N's fused loop.
static double fused_ops(Emit *e, Node *n, bool top) {
  if (!top && (is_buffer(e, n) || scalar(n) || e->kind[n->id] == K_LEAF || n->op == OP_VAR ||
               n->op == OP_SEED))
    return 0;
  double k = n->op == OP_TRANS || n->op == OP_DIAGM || n->op == OP_DIAGV ? 0 : 1;
  return k + (n->a ? fused_ops(e, n->a, false) : 0) + (n->b ? fused_ops(e, n->b, false) : 0);
}

static double matrix_cost(Emit *e, Node *n, bool accumulate, const long *dims) {
  double len = elems(n->shape, dims);
  if (!accumulate && n->op == OP_SUM)
    return elems(n->a->shape, dims) * (1 + fused_ops(e, n->a, false));
  if (!accumulate && n->op == OP_INV)
    return 2 * pow((double)dim_value(n->shape.r, dims), 3);
  if (!accumulate && (n->op == OP_SOFTMAX || n->op == OP_LSE))
    return 3 * elems(n->a->shape, dims);
  if (accumulate && (is_buffer(e, n) || n->op == OP_VAR || n->op == OP_SEED))
    return 2 * len;
  int cap = count_terms(e, n, true), nt = 0;
  Node **terms = calloc((size_t)cap, sizeof *terms);
  int *signs = calloc((size_t)cap, sizeof *signs);
  double cost = 0;
  int ew = 0;
  if (terms && signs)
    collect(e, n, true, 1, terms, signs, &nt, cap);
  for (int t = 0; t < nt; t++) {
    Gemm g;
    if (is_gemm(e, terms[t], n) && gemm_form(e, terms[t], &g)) {
      cost += 2 * len * (double)dim_value(g.prod->a->shape.c, dims);
    } else {
      cost += len * fused_ops(e, terms[t], terms[t] == n);
      ew++;
    }
  }
  cost += len * ((ew > 1 ? ew - 1 : 0) + (accumulate && ew ? 1 : 0));
  free(terms);
  free(signs);
  return cost;
}

static double scalar_cost(Emit *e, Node *n, const long *dims) {
  Node *a = n->a;
  if (!a || scalar(a))
    return 1;
  double len = elems(a->shape, dims), r = (double)dim_value(a->shape.r, dims);
  switch (n->op) {
  case OP_SUM: return len * (1 + fused_ops(e, strip_mem(e, a, &(bool){0}), false));
  case OP_NORM:
  case OP_NORMSQ: return len * (2 + fused_ops(e, strip_mem(e, a, &(bool){0}), false));
  case OP_LSE: return 3 * len;
  case OP_TR: return e->kind[a->id] == K_GEMM ? 2 * r * (double)dim_value(a->a->shape.c, dims) : r;
  case OP_DET:
  case OP_LOGDET: return 2 * r * r * r / 3;
  case OP_MUL: return 2 * (double)dim_value(a->shape.c, dims);
  default: return 1;
  }
}

double emit_flops(Ctx *c, bool grads, const long *dims) {
  Emit e;
  Buf sink = {0};
  EmitOpts o = {.name = "f"};
  if (!setup(&e, c, &o, &sink))
    return -1;
  Node **roots = arena_alloc(&c->arena, sizeof *roots * (size_t)(c->nvars + 1));
  int nroots;
  if (!roots || !plan_body(&e, grads, roots, &nroots))
    return -1;
  double cost = 0;
  for (int i = 0; i < e.n; i++) {
    Node *p = e.byid[i];
    if (e.kind[i] == K_SCALAR)
      cost += scalar_cost(&e, p, dims);
    else if (is_buffer(&e, p))
      cost += matrix_cost(&e, p, false, dims);
  }
  for (int r = 1; r < nroots; r++) {
    Node *g = roots[r];
    if (g->op != OP_ZEROS && !scalar(g))
      cost += matrix_cost(&e, g, true, dims);
    else if (scalar(g))
      cost += 1;
  }
  if (e.matrix_out && !is_buffer(&e, c->out) && c->out->op != OP_VAR)
    cost += matrix_cost(&e, c->out, false, dims);
  buf_free(&sink);
  return cost;
}

/* --float: the same program in single precision. The emitter writes double;
   this turns the finished text's tokens, outside comments and strings,
   into float: the type, each floating literal (2.0 -> 2.0f), each libm
   function (exp -> expf) and each runtime kernel (mdrt_gemm -> mdrt_gemm_f;
   the allocator is the same for both). */
static void to_float(const char *s, Buf *out) {
  while (*s) {
    const char *start = s;
    if (s[0] == '/' && s[1] == '*') {
      const char *end = strstr(s + 2, "*/");
      s = end ? end + 2 : s + strlen(s);
    } else if (s[0] == '/' && s[1] == '/') {
      s += strcspn(s, "\n");
    } else if (*s == '"') {
      for (s++; *s && *s != '"'; s++)
        if (*s == '\\' && s[1])
          s++;
      if (*s)
        s++;
    } else if (is_ident(*s) && !(*s >= '0' && *s <= '9')) {
      while (is_ident(*s))
        s++;
      size_t n = (size_t)(s - start);
      bool math = optab_is_libm(start, n, false);
      if (n == 6 && !strncmp(start, "double", 6))
        buf_puts(out, "float");
      else
        buf_printf(out, "%.*s%s", (int)n, start,
                   math ? "f"
                   : n > 5 && !strncmp(start, "mdrt_", 5) && strncmp(start, "mdrt_alloc", n) &&
                           strncmp(start, "mdrt_free", n) ? "_f" : "");
      continue;
    } else if ((*s >= '0' && *s <= '9') || (*s == '.' && s[1] >= '0' && s[1] <= '9')) {
      bool real = false;
      while ((*s >= '0' && *s <= '9') || *s == '.' || *s == 'e' || *s == 'E' ||
             ((*s == '+' || *s == '-') && (s[-1] == 'e' || s[-1] == 'E')))
        real |= *s == '.' || *s == 'e' || *s == 'E', s++;
      buf_printf(out, "%.*s%s", (int)(s - start), start, real ? "f" : "");
      continue;
    } else {
      s++;
    }
    buf_printf(out, "%.*s", (int)(s - start), start);
  }
}

bool emit_c(Ctx *c, const EmitOpts *o, Buf *out) {
  if (o->flt && !o->jit) {
    EmitOpts d = *o;
    d.flt = false;
    Buf tmp = {0};
    bool ok = emit_c(c, &d, &tmp);
    if (ok)
      to_float(tmp.s, out);
    buf_free(&tmp);
    return ok && !out->oom;
  }
  Emit e;
  if (!setup(&e, c, o, out))
    return false;
  header(&e);
  if (o->jit)
    buf_puts(out, optab_libm_prototypes);
  else if (o->standalone)
    buf_printf(out, "#include <math.h>\n#include <stdlib.h>\n\n"
                    "/* The runtime's kernels, as plain loops (matdiff's runtime/standalone.c). */\n"
                    "%s\n", md_rt_standalone);
  else
    buf_puts(out, "#include <math.h>\n#include \"matdiff_rt.h\"\n\n");

  // The workspace holds the temporaries of the larger of the two bodies.
  char *wv = impl(&e, false, false);
  char *wg = impl(&e, true, false);
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

  if (o->jit)
    jit_entries(&e);
  impl(&e, false, true);
  impl(&e, true, true);
  if (!o->jit) {
    wrappers(&e, false);
    wrappers(&e, true);
  }
  return !out->oom && !c->failed;
}
