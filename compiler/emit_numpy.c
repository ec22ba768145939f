/*
 * emit_numpy.c - DAG to NumPy: the Python module `matdiff compile --lang
 * numpy` writes and md_numpy_source returns. It prints from the plans
 * plan.c makes for the C (emit.h), so that the Python has the C's
 * temporaries, one line each, in the same order:
 *
 *   - a buffer or a local scalar of the C is a Python variable: named by
 *     its assignment in the source when it has one (H = np.tanh(...)),
 *     else t1, t2, ...; a value the C fuses, absorbs into a sum or into
 *     gemm, or reads transposed is written inline in its user's line;
 *   - each op is written by its template, the numpy column of ops.h, so
 *     a new op cannot be left out; a value of shape 1x1 is a NumPy scalar
 *     (np.float64), every other value a 2-D float64 array;
 *   - the guards of the C (`if (dX || ...)`) and its workspace have no
 *     Python counterpart: P_grad computes every gradient.
 *
 * The module defines P(inputs) (the value), P_grad(inputs) (the value and
 * a dict of gradients, as the Python package's Function.grad returns), and
 * for an output that is not a scalar P_vjp(G, inputs). With the second
 * order (emit_second.c's functions, from its plans), P_jvp(inputs,
 * directions), and P_hvp(inputs, directions) and P_hessian(inputs) for a
 * scalar output or P_jacobian(inputs) for any other: a Hessian or a
 * Jacobian from its matrix formula where the C has one, else filled by
 * one P_hvp or P_jvp per unit direction, as the C fills it. A few private
 * helpers come first: _input, which binds the symbolic sizes from the
 * arrays' shapes, and the functions NumPy lacks (logsumexp, softmax,
 * sigmoid, erf, unit), each only if the code calls it.
 */
#include <math.h>
#include <string.h>
#include "emit.h"

#define HEADER_FORMULA_MAX 2000  /* bytes of a formula in the module's docstring */
#define COMMENT_FORMULA_MAX 69   /* bytes of a statement's comment */

/* ---- helpers ---------------------------------------------------------- */

/* The private functions a template may call (ops.h's numpy column names
   them _f), with the helper and the module each needs. _input, first, is
   always there. */
static const struct Helper {
  const char *name, *needs, *import, *text;
} helpers[] = {
    {"_input", NULL, NULL,
     "def _input(name, a, declared, sizes, given=None, what=\"input\"):\n"
     "    \"\"\"Input NAME as float64, of its DECLARED shape (rows, cols), each a size's\n"
     "    name or a number: a name is bound in SIZES by the first array that has it. A\n"
     "    column or a row may be given 1-D, a 1x1 as a number; a declared 1x1 is a NumPy\n"
     "    scalar. GIVEN, when there, keeps the shape as given, for its gradient. WHAT\n"
     "    names it in the error: an input, a direction, the seed.\"\"\"\n"
     "    a = np.asarray(a, dtype=np.float64)\n"
     "    if given is not None:\n"
     "        given[name] = a.shape\n"
     "    r, c = declared\n"
     "    shape = (a.shape if a.ndim == 2 else (a.size, 1) if a.ndim == 1 and c == 1\n"
     "             else (1, a.size) if a.ndim == 1 and r == 1 else (1, 1) if a.size == 1\n"
     "             else a.shape)\n"
     "    for d, s in zip(declared, shape):\n"
     "        if isinstance(d, str):\n"
     "            sizes.setdefault(d, s)\n"
     "    want = tuple(sizes[d] if isinstance(d, str) else d for d in declared)\n"
     "    if shape != want or min(shape) < 1:\n"
     "        raise ValueError(\"%s '%s' is declared (%s), given shape %s, where %s is \"\n"
     "                         \"wanted\" % (what, name, \", \".join(map(str, declared)), a.shape,\n"
     "                                      want))\n"
     "    return a.reshape(())[()] if declared == (1, 1) else a.reshape(shape)\n"},
    {"_logsumexp", NULL, NULL,
     "def _logsumexp(a, axis=None, keepdims=False):\n"
     "    \"\"\"log(sum(exp(a))) of all elements, or along AXIS (with keepdims), without\n"
     "    overflow: the largest element is taken out first, unless it is not finite.\"\"\"\n"
     "    m = np.max(a, axis=axis, keepdims=True)\n"
     "    m = np.where(np.isfinite(m), m, 0.0)\n"
     "    s = m + np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True))\n"
     "    return s if keepdims and axis is not None else s.reshape(())[()]\n"},
    {"_softmax", "_logsumexp", NULL,
     "def _softmax(a, axis=None, keepdims=True):\n"
     "    \"\"\"exp(a - logsumexp(a)), over all elements or along AXIS.\"\"\"\n"
     "    return np.exp(a - _logsumexp(a, axis=axis, keepdims=keepdims))\n"},
    {"_unit", NULL, NULL,
     "def _unit(a):\n"
     "    \"\"\"a/||a||, 0 where ||a|| = 0: the subgradient of the norm that matdiff takes.\"\"\"\n"
     "    s = np.sqrt(np.sum(np.square(a)))\n"
     "    return np.zeros_like(a)[()] if s == 0 else a / s\n"},
    {"_sigmoid", NULL, NULL,
     "def _sigmoid(x):\n"
     "    \"\"\"1/(1 + exp(-x)), without overflow.\"\"\"\n"
     "    z = np.exp(-np.abs(x))\n"
     "    return np.where(x >= 0, 1 / (1 + z), z / (1 + z))[()]\n"},
    {"_erf", NULL, "math",
     "def _erf(x):\n"
     "    \"\"\"The error function, elementwise (NumPy has none: math.erf's).\"\"\"\n"
     "    return np.vectorize(math.erf, otypes=[np.float64])(x)[()]\n"},
};
#define NHELPERS (sizeof helpers / sizeof *helpers)

/* Python's keywords, and the names the module itself uses: none is a
   variable's. */
static const char *const reserved[] = {
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class",
    "continue", "def", "del", "elif", "else", "except", "finally", "for", "from", "global",
    "if", "import", "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise",
    "return", "try", "while", "with", "yield", "np", "math", "float", "sizes", "given",
};

/* The builtins the helpers call: the module's functions, which are its
   globals, do not take their names. */
static const char *const builtins[] = {
    "isinstance", "map", "min", "str", "tuple", "ValueError", "zip",
};

/* ---- the printer's state ------------------------------------------------ */

/* Where a name of fixed is seen: in every function of the module (its
   functions, the inputs, the sizes), or only in the first-order ones (the
   seed, the output, the gradients dX) or only in the second-order ones
   (the directions dX): a gradient and the direction of one variable never
   meet, and both keep the name the formulas give them. */
enum { SCOPE_MODULE = 1, SCOPE_FIRST, SCOPE_SECOND };

/* The functions of the module, each from one plan but the Hessian and the
   Jacobian filled by one HVP (JVP) per unit direction, which have none. */
typedef enum Kind { K_VALUE, K_GRAD, K_VJP, K_JVP, K_HVP, K_HESSIAN, K_JACOBIAN } Kind;

typedef struct Py {
  Ctx *c;
  Buf *o;             /* where the current function's lines go */
  const Plan *p;      /* the body being printed, or NULL */
  Kind kind;          /* the function being printed */
  int scope;          /* ... and its names' scope */
  Names fixed;        /* names of functions, parameters and outputs, by scope */
  Names temps;        /* the function's own: temporaries and locals */
  const char *fn, *fn_grad, *fn_vjp, *fn_jvp, *fn_hvp, *fn_hessian, *fn_jacobian;
  const char **vname, **gname, **dname; /* inputs, gradients, sizes */
  const char **dirname; /* by variable: the direction of a wrt one */
  const char **rootname; /* by root of the body printed: its name */
  const char *seedp, *outp;
  const char **tname; /* by node id: the temporary's name, or NULL */
  bool *dim_used;     /* by size: the body reads it */
  bool helper[NHELPERS];
  bool matrix_out;
  bool oom, bad;      /* out of memory; an op the bodies cannot have */
} Py;

static const char *checked(Py *y, const char *s) {
  if (!s)
    y->oom = true;
  return s ? s : "";
}
#define text(y, ...) checked((y), arena_printf(&(y)->c->arena, __VA_ARGS__))

// Is S a name no new one of SCOPE (0: a local of the function printed)
// may take?
static bool taken(const Py *y, const char *s, int scope) {
  for (size_t i = 0; i < sizeof reserved / sizeof *reserved; i++)
    if (!strcmp(reserved[i], s))
      return true;
  int at = names_get(&y->fixed, s), in = scope ? scope : y->scope;
  return at == SCOPE_MODULE || (at >= 0 && (at == in || in == SCOPE_MODULE)) ||
         names_get(&y->temps, s) >= 0;
}

// A Python name for WANT that clashes with nothing it can meet: WANT, else
// WANT_, WANT__, ...; one of SCOPE, or with 0 a local of the function
// being printed.
static const char *claim(Py *y, const char *want, int scope) {
  Arena *A = &y->c->arena;
  char *s = want ? arena_strdup(A, want) : NULL;
  while (s && taken(y, s, scope))
    s = arena_printf(A, "%s_", s);
  if (!s || !names_put(A, scope ? &y->fixed : &y->temps, s, scope ? scope : 1)) {
    y->oom = true;
    return "";
  }
  return s;
}

/* ---- expressions -------------------------------------------------------- */

/* Python text and the precedence it binds at (md.h's PREC_*, which order
   Python's operators as they order the language's). */
typedef struct Ex {
  const char *s;
  int prec;
} Ex;

static Ex atom(const char *s) { return (Ex){s, PREC_ATOM}; }

static const char *dim_py(Py *y, Dim d) {
  if (d.sym < 0)
    return text(y, "%ld", d.n);
  y->dim_used[d.sym] = true;
  return y->dname[d.sym];
}

// The number of elements of shape S: "n * m", "n", "12".
static const char *len_py(Py *y, Shape s) {
  if (s.r.sym < 0 && s.c.sym < 0)
    return text(y, "%ld", s.r.n * s.c.n);
  if (shape_is_row(s) || shape_is_column(s))
    return dim_py(y, shape_is_row(s) ? s.c : s.r);
  return text(y, "%s * %s", dim_py(y, s.r), dim_py(y, s.c));
}

// V as a Python float literal.
static Ex number(Py *y, double v) {
  char buf[40];
  print_num(buf, sizeof buf, v);
  const char *s = isnan(v) ? "np.nan" : isinf(v) ? (v < 0 ? "-np.inf" : "np.inf")
                  : strpbrk(buf, ".e") ? text(y, "%s", buf) : text(y, "%s.0", buf);
  return (Ex){s, v < 0 || signbit(v) ? PREC_UNARY : PREC_ATOM};
}

// Does the node have a name of its own in the body being printed?
static bool named(const Py *y, const Node *n) {
  return n->id < y->p->n && y->tname[n->id];
}

static Ex expr(Py *y, Node *n, bool top);

// Expand ops.h's template T for N: $a and $b its operands (in parentheses
// where Python would bind them otherwise), $k the axis arguments, $s and
// $r a fill's shape and rows.
static Ex expand(Py *y, Node *n, const char *t) {
  bool infix = t[0] == '$' && t[1] == 'a';
  int prec = infix ? op_prec[n->op] : PREC_ATOM;
  bool right_assoc = n->op == OP_POW || n->op == OP_EPOW;
  Buf b = {0};
  for (const char *q = t; *q; q++) {
    if (*q != '$' || !q[1]) {
      char ch[2] = {*q, 0};
      buf_puts(&b, ch);
      continue;
    }
    switch (*++q) {
    case 'a':
    case 'b': {
      Ex x = expr(y, *q == 'a' ? n->a : n->b, false);
      bool left = *q == 'a';
      bool paren = infix && (x.prec < prec || (x.prec == prec && (!left || right_assoc)));
      buf_printf(&b, paren ? "(%s)" : "%s", x.s);
      break;
    }
    case 'k':
      if (!scalar(n) && (n->k == 1 || n->k == 2))
        buf_printf(&b, ", axis=%ld, keepdims=True", n->k - 1);
      break;
    case 's':
      buf_printf(&b, "(%s, %s)", dim_py(y, n->shape.r), dim_py(y, n->shape.c));
      break;
    case 'r': buf_puts(&b, dim_py(y, n->shape.r)); break;
    default: y->bad = true; break;
    }
  }
  if (t[0] == '_')
    for (size_t i = 0; i < NHELPERS; i++)
      if (!strncmp(t, helpers[i].name, strlen(helpers[i].name)) && t[strlen(helpers[i].name)] == '(')
        y->helper[i] = true;
  const char *s = checked(y, b.oom ? NULL : arena_strdup(&y->c->arena, b.s ? b.s : ""));
  buf_free(&b);
  return (Ex){s, prec};
}

// N's value as Python: its name, or (TOP: it is the line's own node, or N
// has no name) the expression that computes it.
static Ex expr(Py *y, Node *n, bool top) {
  if (!top && named(y, n))
    return atom(y->tname[n->id]);
  switch (n->op) {
  case OP_NUM: return number(y, n->num);
  case OP_VAR: return atom(y->vname[n->k]);
  case OP_DIM: return atom(dim_py(y, (Dim){(int)n->k, 0}));
  case OP_SEED: return atom(y->seedp ? y->seedp : "1.0");
  case OP_DIR: return atom(y->dirname[n->k]);
  default: break;
  }
  // A 1x1 value is a NumPy scalar, which the matrix functions do not take.
  if (scalar(n) && (op_is_fill(n->op)))
    return atom(n->op == OP_ZEROS ? "0.0" : "1.0");
  if (scalar(n) && n->a && scalar(n->a) && n->op != OP_MUL) {
    Ex a = expr(y, n->a, false);
    switch (n->op) {
    case OP_TRANS: case OP_TR: case OP_DET: case OP_DIAGM: case OP_DIAGV:
      return a;
    case OP_INV:
      return (Ex){text(y, a.prec > PREC_MUL ? "1.0 / %s" : "1.0 / (%s)", a.s), PREC_MUL};
    case OP_LOGDET:
      return atom(text(y, "np.log(np.abs(%s))", a.s));
    default:
      break;
    }
  }
  if (n->op == OP_MUL && (scalar(n->a) || scalar(n->b)))
    return expand(y, n, "$a * $b");
  if (n->op == OP_MUL && scalar(n))  /* a row times a column */
    return expand(y, n, "np.vdot($a, $b)");
  if (!op_numpy[n->op]) {
    y->bad = true;
    return atom("None");
  }
  return expand(y, n, op_numpy[n->op]);
}

/* ---- lines -------------------------------------------------------------- */

// One line of a function's body.
#define line(y, ...) \
  (buf_puts((y)->o, "    "), buf_printf((y)->o, __VA_ARGS__), buf_puts((y)->o, "\n"))

// "# t3 = X*W + b". A printed formula has no newline.
static void comment(Py *y, const char *lhs, Node *n) {
  char *s = print_short(y->c, n, COMMENT_FORMULA_MAX);
  if (s)
    line(y, "# %s = %s", lhs, s);
}

// The roots of the body printed from the ones added into their buffers
// (the gradients, the HVPs) to the output, last as in the C: the K-th.
static int root_at(const Plan *p, int k) { return (p->added + k) % p->nroots; }

// Root R's name and, into *LABEL, how its comment names it.
static const char *root_name(Py *y, int r, const char **label) {
  Ctx *c = y->c;
  int v = y->p->rootvar[r];  // r > 0, or a Hessian's or a Jacobian's one root
  switch (y->kind) {
  case K_JVP: *label = text(y, "d%s", c->outname); break;
  case K_HVP: *label = text(y, "d(d%s/d%s)", c->outname, c->vars[v].name); break;
  case K_HESSIAN: *label = text(y, "d2%s/d%s2", c->outname, c->vars[v].name); break;
  case K_JACOBIAN: *label = text(y, "d%s/d%s", c->outname, c->vars[v].name); break;
  default:
    *label = r ? text(y, "d%s/d%s", c->outname, c->vars[v].name) : c->outname;
    return r ? y->gname[v] : y->outp;
  }
  return y->rootname[r];
}

// The one root of a second-order body that N is, or -1.
static int only_root(const Py *y, const Node *n) {
  int at = -1;
  for (int r = 0; y->kind > K_VJP && r < y->p->nroots; r++)
    if (y->p->roots[r] == n) {
      if (at >= 0)
        return -1;  // two results: each its own array
      at = r;
    }
  return at;
}

// Name the roots of a second-order body (locals of the function, dy,
// hv_X, H or J, as the C names its buffers), then the temporaries of plan
// P, the C's buffers and local scalars: a temporary that is the output, or
// a second-order body's root, takes its name.
static void name_temps(Py *y, const Plan *p) {
  Ctx *c = y->c;
  y->p = p;
  y->temps = (Names){0};
  int ntemps = 0;
  bool first = y->kind <= K_VJP;
  for (int r = 0; !first && r < p->nroots; r++)
    y->rootname[r] = claim(y, y->kind == K_JVP       ? text(y, "d%s", c->outname)
                              : y->kind == K_HVP     ? text(y, "hv_%s", c->vars[p->rootvar[r]].name)
                              : y->kind == K_HESSIAN ? "H"
                                                     : "J", 0);
  for (int i = 0; i < p->n; i++) {
    Node *n = c->nodes[i];
    y->tname[i] = NULL;
    if (n->op == OP_VAR || n->op == OP_SEED || (p->form[i] != F_BUFFER && p->form[i] != F_SCALAR))
      continue;
    const char *let = print_let_name(c, n);
    if (first && n == p->roots[0])
      y->tname[i] = y->outp;
    else if (only_root(y, n) >= 0)
      y->tname[i] = y->rootname[only_root(y, n)];
    else if (let)
      y->tname[i] = claim(y, let, 0);
    else {
      // Not a name the source gave another value: t1 would read as that.
      const char *t;
      do
        t = text(y, "t%d", ++ntemps);
      while (names_get(&c->letidx, t) >= 0);
      y->tname[i] = claim(y, t, 0);
    }
  }
}

// A root's value as returned: a copy where it would be a view of an input.
static const char *owned(Py *y, Node *g, const char *name) {
  Node *x = g;
  while (x->op == OP_TRANS && !named(y, x))
    x = x->a;
  bool view = !scalar(g) && (is_input(x) || x->op == OP_DIAGV);
  return view ? text(y, "np.array(%s)", name) : name;
}

// The body of plan y->p: its temporaries, then its roots, each into its
// name.
static void body(Py *y) {
  Ctx *c = y->c;
  const Plan *p = y->p;
  for (int i = 0; i < p->n; i++) {
    if (!y->tname[i])
      continue;
    Node *n = c->nodes[i];
    comment(y, y->tname[i], n);
    line(y, "%s = %s", y->tname[i], expr(y, n, true).s);
  }
  for (int k = 0; k < p->nroots; k++) {
    int r = root_at(p, k);
    Node *g = p->roots[r];
    const char *label, *lhs = root_name(y, r, &label);
    if (named(y, g) && !strcmp(y->tname[g->id], lhs)) {  // a temporary already
      if (strcmp(owned(y, g, lhs), lhs))
        line(y, "%s = %s", lhs, owned(y, g, lhs));
      continue;
    }
    comment(y, label, g);
    if (!scalar(g) && (g->op == OP_ZEROS || ast_is_num(g, 0)))
      line(y, "%s = np.zeros((%s, %s))", lhs, dim_py(y, g->shape.r), dim_py(y, g->shape.c));
    else
      line(y, "%s = %s", lhs, owned(y, g, expr(y, g, !named(y, g)).s));
  }
}

// What the function returns: the value or the tangent, a float for a
// scalar output and the 2-D array otherwise; each gradient or HVP in the
// shape its input was given, by name; a Hessian's or a Jacobian's formula
// as a matrix (its 1x1 NumPy scalar too).
static void returns(Py *y) {
  Ctx *c = y->c;
  const Plan *p = y->p;
  const char *out = y->kind >= K_JVP ? y->rootname[0] : y->outp;
  switch (y->kind) {
  case K_VALUE:
  case K_JVP: line(y, y->matrix_out ? "return %s" : "return float(%s)", out); return;
  case K_HESSIAN:
  case K_JACOBIAN:
    line(y, "return np.reshape(%s, (%s, %s))", out, dim_py(y, p->roots[0]->shape.r),
         dim_py(y, p->roots[0]->shape.c));
    return;
  case K_GRAD:
  case K_VJP:
    line(y, "return %s%s%s, {", y->matrix_out ? "" : "float(", out, y->matrix_out ? "" : ")");
    break;
  case K_HVP: line(y, "return {"); break;
  }
  for (int r = y->kind == K_HVP ? 0 : 1; r < p->nroots; r++) {
    const char *x = c->vars[p->rootvar[r]].name, *label;
    line(y, "    \"%s\": np.reshape(%s, given[\"%s\"]),", x, root_name(y, r, &label), x);
  }
  line(y, "}");
}

/* ---- functions ---------------------------------------------------------- */

static void declared(Py *y, Buf *b, Dim d) {
  if (d.sym < 0)
    buf_printf(b, "%ld", d.n);
  else
    buf_printf(b, "\"%s\"", y->c->dims[d.sym]);
}

// ", (r, c), sizes": the declared shape S as _input takes it.
static void declared_shape(Py *y, Buf *b, Shape s) {
  buf_puts(b, ", (");
  declared(y, b, s.r);
  buf_puts(b, ", ");
  declared(y, b, s.c);
  buf_puts(b, "), sizes");
}

// The function's opening: its signature (the seed G first, the
// directions last, None by default), docstring, and the inputs (and the
// seed, and the directions) made float64 arrays of their declared shapes,
// binding the sizes; the sizes the body reads are then local variables.
static void open_function(Py *y, Buf *o, const char *fn, const char *doc) {
  Ctx *c = y->c;
  bool vjp = y->kind == K_VJP, dirs = y->kind == K_JVP || y->kind == K_HVP;
  bool given = y->kind == K_GRAD || y->kind == K_VJP || y->kind == K_HVP;
  buf_printf(o, "\n\ndef %s(", fn);
  if (vjp)
    buf_printf(o, "%s, ", y->seedp);
  for (int i = 0; i < c->nvars; i++)
    buf_printf(o, "%s%s", i ? ", " : "", y->vname[i]);
  for (int i = 0; dirs && i < c->nvars; i++)
    if (c->vars[i].wrt)
      buf_printf(o, ", %s=None", y->dirname[i]);
  buf_printf(o, "):\n    \"\"\"%s\"\"\"\n", doc);
  buf_printf(o, "    sizes%s = {}%s\n", given ? ", given" : "", given ? ", {}" : "");
  for (int i = 0; i < c->nvars; i++) {
    buf_printf(o, "    %s = _input(\"%s\", %s", y->vname[i], c->vars[i].name, y->vname[i]);
    declared_shape(y, o, c->vars[i].shape);
    buf_printf(o, "%s)\n", given ? ", given" : "");
  }
  for (int i = 0; dirs && i < c->nvars; i++)
    if (c->vars[i].wrt) {
      const char *d = y->dirname[i];
      buf_printf(o, "    %s = np.zeros_like(%s)[()] if %s is None else _input(\"%s\", %s", d,
                 y->vname[i], d, c->dirnames[i], d);
      declared_shape(y, o, c->vars[i].shape);
      buf_puts(o, ", what=\"direction\")\n");
    }
  Shape s = c->out->shape;
  if (vjp)  // the seed's default needs the output's sizes
    dim_py(y, s.r), dim_py(y, s.c);
  bool first = true;
  for (int d = 0; d < c->ndims; d++)
    if (y->dim_used[d]) {
      buf_printf(o, "%s%s", first ? "    " : ", ", y->dname[d]);
      first = false;
    }
  if (!first) {
    buf_puts(o, " = ");
    first = true;
    for (int d = 0; d < c->ndims; d++)
      if (y->dim_used[d]) {
        buf_printf(o, "%ssizes[\"%s\"]", first ? "" : ", ", c->dims[d]);
        first = false;
      }
    buf_puts(o, "\n");
  }
  if (vjp) {
    buf_printf(o, "    %s = np.ones((%s, %s)) if %s is None else _input(\"%s\", %s", y->seedp,
               dim_py(y, s.r), dim_py(y, s.c), y->seedp, y->seedp, y->seedp);
    declared_shape(y, o, s);
    buf_puts(o, ", what=\"seed\")\n");
  }
}

// The Hessian (the Jacobian) of a function with no matrix formula for it:
// row by row, f_hvp along each unit direction (H is symmetric, so H*e_k is
// its row k), or column by column, f_jvp along each. The direction of a
// symmetric variable is symmetric: its unit direction at (r, c) is
// (E_rc + E_cr)/2, as in the C.
static void fill(Py *y) {
  Ctx *c = y->c;
  bool hessian = y->kind == K_HESSIAN;
  y->temps = (Names){0};
  const char *at = claim(y, "at", 0), *e = claim(y, "e", 0), *k = claim(y, "k", 0),
             *hv = claim(y, "hv", 0), *m = claim(y, hessian ? "H" : "J", 0);
  Buf b = {0};
  buf_printf(&b, "%s = np.cumsum([0", at);
  for (int i = 0; i < c->nvars; i++)
    if (c->vars[i].wrt)
      buf_printf(&b, ", np.size(%s)", y->vname[i]);
  line(y, "%s])", b.s);
  Shape s = c->out->shape;
  if (hessian)
    line(y, "%s = np.zeros((%s[-1], %s[-1]))", m, at, at);
  else
    line(y, "%s = np.zeros((%s, %s[-1]))", m, len_py(y, s), at);
  line(y, "for %s in range(%s[-1]):", k, at);
  line(y, "    %s = np.zeros(%s[-1])", e, at);
  line(y, "    %s[%s] = 1.0", e, k);
  int w = 0;
  for (int i = 0; i < c->nvars; i++)
    if (c->vars[i].wrt) {
      const char *d = y->dirname[i];
      line(y, "    %s = %s[%s[%d]:%s[%d]].reshape(np.shape(%s))", d, e, at, w, at, w + 1,
           y->vname[i]);
      if (c->vars[i].symmetric)
        line(y, "    %s = (%s + %s.T) / 2", d, d, d);
      w++;
    }
  b.len = 0;
  buf_printf(&b, "%s(", hessian ? y->fn_hvp : y->fn_jvp);
  for (int i = 0; i < c->nvars; i++)
    buf_printf(&b, "%s%s", i ? ", " : "", y->vname[i]);
  for (int i = 0; i < c->nvars; i++)
    if (c->vars[i].wrt)
      buf_printf(&b, ", %s", y->dirname[i]);
  buf_puts(&b, ")");
  if (hessian) {
    line(y, "    %s = %s", hv, b.s);
    b.len = 0;
    for (int i = 0; i < c->nvars; i++)
      if (c->vars[i].wrt)
        buf_printf(&b, "%snp.ravel(%s[\"%s\"])", b.len ? ", " : "", hv, c->vars[i].name);
    line(y, "    %s[%s] = np.concatenate([%s])", m, k, b.s ? b.s : "");
  } else {
    line(y, "    %s[:, %s] = np.ravel(%s)", m, k, b.s);
  }
  line(y, "return %s", m);
  y->oom |= b.oom;
  buf_free(&b);
}

// One function of KIND: the body of plan P (or the fill of a Hessian or a
// Jacobian, P NULL), printed first (so that the sizes it reads are known),
// after its opening.
static void function(Py *y, Kind kind, const Plan *p, Buf *out, const char *fn, const char *doc) {
  Ctx *c = y->c;
  Buf b = {0};
  memset(y->dim_used, 0, sizeof *y->dim_used * (size_t)(c->ndims + 1));
  y->o = &b;
  y->kind = kind;
  y->scope = kind <= K_VJP ? SCOPE_FIRST : SCOPE_SECOND;
  if (p) {
    name_temps(y, p);
    body(y);
    returns(y);
  } else {
    fill(y);
  }
  open_function(y, out, fn, doc);
  buf_puts(out, b.s ? b.s : "");
  y->oom |= b.oom;
  buf_free(&b);
}

// The wrt inputs as a Python dict's keys: {"X": ..., "W": ...}, each
// FORMAT with the output's and its name.
static const char *wrt_keys(Py *y, const char *format) {
  Buf b = {0};
  for (int i = 0; i < y->c->nvars; i++)
    if (y->c->vars[i].wrt) {
      buf_printf(&b, "%s\"%s\": ", b.len ? ", " : "", y->c->vars[i].name);
      buf_printf(&b, format, y->c->outname, y->c->vars[i].name);
    }
  const char *s = checked(y, b.oom ? NULL : arena_strdup(&y->c->arena, b.s ? b.s : ""));
  buf_free(&b);
  return s;
}

static const char *grad_keys(Py *y) { return wrt_keys(y, "d%s/d%s"); }

// The directions, "dX, dW" (none: "no direction").
static const char *dir_list(Py *y) {
  Buf b = {0};
  for (int i = 0; i < y->c->nvars; i++)
    if (y->c->vars[i].wrt)
      buf_printf(&b, "%s%s", b.len ? ", " : "", y->dirname[i]);
  const char *s =
      checked(y, b.oom ? NULL : arena_strdup(&y->c->arena, b.len ? b.s : "no direction"));
  buf_free(&b);
  return s;
}

// The wrt inputs, "X, W".
static const char *wrt_list(Py *y) {
  Buf b = {0};
  for (int i = 0; i < y->c->nvars; i++)
    if (y->c->vars[i].wrt)
      buf_printf(&b, "%s%s", b.len ? ", " : "", y->c->vars[i].name);
  const char *s = checked(y, b.oom ? NULL : arena_strdup(&y->c->arena, b.len ? b.s : "none"));
  buf_free(&b);
  return s;
}

static void module_doc(Py *y, Buf *o, bool second) {
  Ctx *c = y->c;
  buf_printf(o, "\"\"\"Generated by matdiff %s from ", MATDIFF_VERSION);
  for (const char *q = c->file ? c->file : "<input>"; *q; q++)  // a string literal's text
    buf_printf(o, *q == '\\' || *q == '"' ? "\\%c" : "%c", *q);
  buf_puts(o, ". Do not edit.\n\n");
  char *f = print_short(c, c->out, HEADER_FORMULA_MAX);
  buf_printf(o, "    %s = %s\n", c->outname, f ? f : "?");
  for (int i = 0; i < c->nvars; i++)
    if (c->vars[i].wrt) {
      char *g = print_short(c, c->grads[i], HEADER_FORMULA_MAX);
      buf_printf(o, "    %s%s/d%s = %s\n", y->matrix_out ? "G'*d" : "d", c->outname,
                 c->vars[i].name, g ? g : "?");
    }
  buf_printf(o, "\n%s(", y->fn);
  for (int i = 0; i < c->nvars; i++)
    buf_printf(o, "%s%s", i ? ", " : "", y->vname[i]);
  if (y->matrix_out)
    buf_printf(o, ") returns the value, a 2-D ndarray. %s(...) returns (value, {%s}),\n"
                  "the gradient of the sum of the output's elements; %s(%s, ...) the\n"
                  "vector-Jacobian product with %s of the output's shape in its place.\n",
               y->fn_grad, grad_keys(y), y->fn_vjp, y->seedp, y->seedp);
  else
    buf_printf(o, ") returns the value, a float. %s(...) returns\n(value, {%s}).\n",
               y->fn_grad, grad_keys(y));
  if (second) {
    buf_printf(o, "\n%s(..., %s) returns the value's directional derivative along\n"
                  "the directions of the wrt inputs, each of its input's shape (None: zeros).\n",
               y->fn_jvp, dir_list(y));
    if (y->matrix_out)
      buf_printf(o, "%s(...) returns d vec(%s)/d(%s), an (M, N) ndarray: a row per\n"
                    "element of the output, row by row, and a column per element of the wrt\n"
                    "inputs, stacked in declaration order, each row by row.\n\n",
                 y->fn_jacobian, c->outname, wrt_list(y));
    else
      buf_printf(o, "%s(..., %s) returns H*v, {%s},\n"
                    "each in the shape its input was given. %s(...) returns the Hessian, an\n"
                    "(N, N) ndarray over the elements of %s, stacked in declaration order,\n"
                    "each row by row.\n\n",
                 y->fn_hvp, dir_list(y), wrt_keys(y, "d(d%s/d%s)"), y->fn_hessian, wrt_list(y));
  }
  buf_puts(o, "Inputs are anything np.asarray makes float64, of their declared shapes (a\n"
              "column or row may be 1-D, a 1x1 a number); the sizes are bound from them, and a\n"
              "mismatch is a ValueError. Each gradient has the shape its input was given.\n"
              "NumPy's errors are raised as NumPy raises them (a singular matrix:\n"
              "numpy.linalg.LinAlgError).\n\"\"\"\n");
}

// The second-order functions: f_jvp, then f_hvp and f_hessian for a
// scalar output, f_jacobian for any other, as the C has them.
static void second_functions(Py *y, Buf *fns) {
  Ctx *c = y->c;
  char *f = print_short(c, c->jvp, COMMENT_FORMULA_MAX);
  function(y, K_JVP, plan_second(c, PLAN_JVP), fns, y->fn_jvp,
           text(y, "d%s = %s:\n    the directional derivative along %s (zeros where None), %s.",
                c->outname, f ? f : "?", dir_list(y), y->matrix_out ? "a 2-D ndarray" : "a float"));
  bool formula = emit_second_formula(c, !y->matrix_out);
  const char *how = formula ? "from its matrix formula" : "one HVP per unit direction";
  if (!y->matrix_out) {
    function(y, K_HVP, plan_second(c, PLAN_HVP), fns, y->fn_hvp,
             text(y, "{%s}:\n    H*v, each gradient's directional derivative along %s "
                     "(zeros where None),\n    in the shape its input was given.",
                  wrt_keys(y, "d(d%s/d%s)"), dir_list(y)));
    function(y, K_HESSIAN, formula ? plan_second(c, PLAN_HESSIAN) : NULL, fns, y->fn_hessian,
             text(y, "The Hessian of %s over %s stacked in declaration order, each\n    row by "
                     "row: an (N, N) ndarray, %s.", c->outname, wrt_list(y), how));
  } else {
    how = formula ? "from its matrix formula" : "one JVP per unit direction";
    function(y, K_JACOBIAN, formula ? plan_second(c, PLAN_JACOBIAN) : NULL, fns, y->fn_jacobian,
             text(y, "d vec(%s)/d(%s stacked in declaration order, each row by row):\n    an (M, N) "
                     "ndarray, a row per element of %s, %s.", c->outname, wrt_list(y), c->outname,
                  how));
  }
}

bool emit_numpy(Ctx *c, const char *name, bool second, Buf *out) {
  Loc nowhere = {-1, -1};
  const Plan *value = plan_body(c, false), *grads = plan_body(c, true);
  if (!value || !grads)
    return false;  // plan_body said why
  if (second && (!emit_second_prepare(c) || !diff_name_directions(c)))
    return false;  // they said why
  Arena *A = &c->arena;
  Py y = {.c = c, .matrix_out = !scalar(c->out)};
  if (!(y.vname = arena_alloc(A, sizeof(char *) * (size_t)(c->nvars + 1))) ||
      !(y.gname = arena_alloc(A, sizeof(char *) * (size_t)(c->nvars + 1))) ||
      !(y.dirname = arena_alloc(A, sizeof(char *) * (size_t)(c->nvars + 1))) ||
      !(y.rootname = arena_alloc(A, sizeof(char *) * (size_t)(c->nvars + 1))) ||
      !(y.dname = arena_alloc(A, sizeof(char *) * (size_t)(c->ndims + 1))) ||
      !(y.dim_used = arena_alloc(A, sizeof(bool) * (size_t)(c->ndims + 1))) ||
      !(y.tname = arena_alloc(A, sizeof(char *) * (size_t)(c->nnodes + 1))))
    return ctx_error(c, nowhere, "out of memory naming the variables of the NumPy code");
  bool builtin = false;
  for (size_t i = 0; i < sizeof builtins / sizeof *builtins; i++)
    builtin |= !strcmp(builtins[i], name);
  y.fn = claim(&y, builtin ? text(&y, "%s_", name) : name, SCOPE_MODULE);
  y.fn_grad = claim(&y, text(&y, "%s_grad", name), SCOPE_MODULE);
  y.fn_vjp = y.matrix_out ? claim(&y, text(&y, "%s_vjp", name), SCOPE_MODULE) : NULL;
  if (second) {
    y.fn_jvp = claim(&y, text(&y, "%s_jvp", name), SCOPE_MODULE);
    if (y.matrix_out) {
      y.fn_jacobian = claim(&y, text(&y, "%s_jacobian", name), SCOPE_MODULE);
    } else {
      y.fn_hvp = claim(&y, text(&y, "%s_hvp", name), SCOPE_MODULE);
      y.fn_hessian = claim(&y, text(&y, "%s_hessian", name), SCOPE_MODULE);
    }
  }
  for (int i = 0; i < c->nvars; i++)
    y.vname[i] = claim(&y, c->vars[i].name, SCOPE_MODULE);
  for (int i = 0; i < c->ndims; i++)
    y.dname[i] = claim(&y, c->dims[i], SCOPE_MODULE);
  y.seedp = y.matrix_out ? claim(&y, print_seed_name(c), SCOPE_FIRST) : NULL;
  y.outp = claim(&y, c->outname, SCOPE_FIRST);
  for (int i = 0; i < c->nvars; i++)
    if (c->vars[i].wrt) {
      y.gname[i] = claim(&y, text(&y, "d%s", c->vars[i].name), SCOPE_FIRST);
      if (second)  // as the formulas name them
        y.dirname[i] = claim(&y, c->dirnames[i], SCOPE_SECOND);
    }

  Buf fns = {0};
  char *f = print_short(c, c->out, COMMENT_FORMULA_MAX);
  function(&y, K_VALUE, value, &fns, y.fn,
           text(&y, "%s = %s: the value%s.", c->outname, f ? f : "?",
                y.matrix_out ? ", a 2-D ndarray" : ", a float"));
  if (y.matrix_out) {
    function(&y, K_VJP, grads, &fns, y.fn_vjp,
             text(&y, "(%s, {%s}) at the seed %s (ones if None).", c->outname, grad_keys(&y),
                  y.seedp));
    buf_printf(&fns, "\n\ndef %s(", y.fn_grad);
    for (int i = 0; i < c->nvars; i++)
      buf_printf(&fns, "%s%s", i ? ", " : "", y.vname[i]);
    buf_printf(&fns, "):\n    \"\"\"(%s, {%s}) at the seed ones: the gradient of the sum of %s.\"\"\"\n"
                     "    return %s(None", c->outname, grad_keys(&y), c->outname, y.fn_vjp);
    for (int i = 0; i < c->nvars; i++)
      buf_printf(&fns, ", %s", y.vname[i]);
    buf_puts(&fns, ")\n");
  } else {
    function(&y, K_GRAD, grads, &fns, y.fn_grad,
             text(&y, "(%s, {%s}).", c->outname, grad_keys(&y)));
  }
  if (second)
    second_functions(&y, &fns);

  module_doc(&y, out, second);
  y.helper[0] = true;
  bool math = false;
  for (size_t i = 0; i < NHELPERS; i++) {
    for (size_t j = 0; helpers[i].needs && j < NHELPERS; j++)
      if (y.helper[i] && !strcmp(helpers[j].name, helpers[i].needs))
        y.helper[j] = true;
    math |= y.helper[i] && helpers[i].import;
  }
  buf_puts(out, math ? "import math\n\nimport numpy as np\n" : "import numpy as np\n");
  for (size_t i = 0; i < NHELPERS; i++)
    if (y.helper[i])
      buf_printf(out, "\n\n%s", helpers[i].text);
  buf_puts(out, fns.s ? fns.s : "");
  y.oom |= fns.oom;
  buf_free(&fns);
  if (y.bad)
    return ctx_error(c, nowhere, "internal error: an operation the NumPy code cannot write");
  if (y.oom || out->oom)
    return ctx_error(c, nowhere, "out of memory writing the NumPy code (%zu bytes written)", out->len);
  return true;
}
