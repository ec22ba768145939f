/*
 * print.c - DAG to text in the input language, with the fewest
 * parentheses that keep its meaning, so that what `matdiff diff` prints
 * parses back to the same function. Matrix products print as one chain
 * (the product is associative); a leading factor of -1 prints as unary -.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "md.h"

char *print_num(char *buf, size_t n, double v) {
  // Whole numbers are the common case; otherwise the shortest of 15, 16 or
  // 17 significant digits that reads back as V.
  if (fabs(v) < 1e15 && v == (double)(long)v) {  // range first: the cast needs it
    snprintf(buf, n, "%ld", (long)v);
    return buf;
  }
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(buf, n, "%.*g", prec, v);
    if (strtod(buf, NULL) == v)
      break;
  }
  return buf;
}

static void print(Ctx *c, Buf *b, const Node *n);

// The precedence a node prints at: a negative number or a -1*A prints as
// a unary minus.
static int prec(const Node *n) {
  if (n->op == OP_NUM && (n->num < 0 || signbit(n->num)))
    return PREC_UNARY;
  if (n->op == OP_MUL && n->a->op == OP_NUM && n->a->num == -1)
    return PREC_UNARY;
  if (n->op == OP_MUL && n->a->op == OP_NUM && n->a->num < 0)
    return PREC_MUL;
  return op_prec[n->op];
}

// The precedence N prints at here: a named value is an atom.
static int eprec(Ctx *c, const Buf *b, const Node *n) {
  return n != b->top && print_let_name(c, n) ? PREC_ATOM : prec(n);
}

// Is N printed as itself here, not by the name the user gave it?
static bool spelled(Ctx *c, const Buf *b, const Node *n) { return n == b->top || !print_let_name(c, n); }

static bool is_minus(const Node *n) { return n->op == OP_MUL && ast_is_num(n->a, -1); }

/* How far the printers look into a tree to decide on parentheses before
   giving the safe answer: they ask at every product, and a tree may be deep. */
enum { LOOK = 64 };

/* A product reads left to right: a*(b*c) printed as a*b*c is (a*b)*c. That
   is the same product wherever it is defined, and it is unless a scalar
   stands inside: a*(h*y), h*y a scalar, is no (a*h)*y. Reading L and then
   the factors R prints bare is defined when L is a scalar, or R's factors
   all are, or L's columns are the rows of R's first factor that is not a
   scalar: every step after it is then a product R's own reading defines.
   The printers ask this at every product; only R's leading scalars are
   walked (at most LOOK), so it costs little. */
typedef enum Form { TEXT, TEX } Form;
enum { NO_MATRIX = 0, FOUND = 1, UNKNOWN = 2 };

static bool chain_ok(Ctx *c, const Buf *b, Form f, const Node *l, const Node *r, int *budget);
static bool loose(Ctx *c, const Buf *b, const Node *n, int depth);
static bool leads_minus(Ctx *c, const Buf *b, const Node *n, int depth);

// Does N print as an elementwise product or quotient at the level of *,
// bare: A.*B, or -A.*B (the minus of one, which reads (-A).*B)? As the
// left factor of a product it keeps its parentheses: X*(A.*B)*C must not
// read as (X*A).*B*C, nor X*(-A.*B)*C as (X*(-A)).*B*C.
static bool elementwise_bare(Ctx *c, const Buf *b, const Node *n) {
  if (is_minus(n) && eprec(c, b, n) == PREC_UNARY)
    n = n->b;
  return (n->op == OP_EMUL || n->op == OP_EDIV) && eprec(c, b, n) == PREC_MUL;
}

// Is N, in a product, printed as a chain of factors, a bare left operand
// and, when RIGHT says, a bare right one (which continues the chain)?
static bool chained(Ctx *c, const Buf *b, Form f, const Node *n) {
  if (f == TEXT)
    return eprec(c, b, n) == PREC_MUL && (n->op == OP_MUL || n->op == OP_DIV || n->op == OP_UNIT);
  return spelled(c, b, n) && n->op == OP_MUL && !is_minus(n);
}

static bool left_bare(Ctx *c, const Buf *b, Form f, const Node *n) {
  const Node *l = n->a;
  if (f == TEX)
    return !loose(c, b, l, 0);
  return eprec(c, b, l) >= PREC_MUL && !(n->op == OP_MUL && elementwise_bare(c, b, l));
}

// Does the operand X of a unary minus print bare: -A*B, but -(A + B),
// -(-2) and -(2*A)?
static bool minus_bare(Ctx *c, const Buf *b, const Node *x) {
  int p = eprec(c, b, x);
  return !(p < PREC_MUL || (x->op == OP_NUM && x->num < 0) ||
           (p == PREC_MUL && x->op == OP_MUL && x->a->op == OP_NUM));
}

// Is N a unary minus of a product printed bare, -A*B? The minus takes only
// A: in a product it reads as (-A)*B, the chain going on through B.
static bool minus_chain(Ctx *c, const Buf *b, const Node *n) {
  return is_minus(n) && eprec(c, b, n) == PREC_UNARY && n->b->op == OP_MUL && minus_bare(c, b, n->b);
}

static bool right_bare(Ctx *c, const Buf *b, Form f, const Node *n, int *budget) {
  const Node *r = n->b;
  if (n->op != OP_MUL)
    return false;
  // a*-(2*b) is one factor; a*-b*c reads a*(-b)*c, a chain.
  if (f == TEXT && is_minus(r) && eprec(c, b, r) == PREC_UNARY)
    return r->b->op == OP_MUL && (!minus_bare(c, b, r->b) || chain_ok(c, b, f, n->a, r, budget));
  if (f == TEXT)
    return r->op == OP_MUL && eprec(c, b, r) == PREC_MUL && chain_ok(c, b, f, n->a, r, budget);
  return !loose(c, b, r, 0) && !leads_minus(c, b, r, 0) &&
         (!chained(c, b, f, r) || chain_ok(c, b, f, n->a, r, budget));
}

// The first factor of N's reading in a product that is not a scalar.
static int first_matrix(Ctx *c, const Buf *b, Form f, const Node *n, int *budget, const Node **out) {
  if (--*budget < 0)
    return UNKNOWN;
  if (f == TEXT && minus_chain(c, b, n))  // -A*B: the factors of A*B
    n = n->b;
  // A.*B/k leading the reading: X*(A.*B/k) printed X*A.*B/k would read
  // (X*A).*B/k. No chain goes on through it.
  if (f == TEXT && elementwise_bare(c, b, n))
    return UNKNOWN;
  if (!chained(c, b, f, n)) {
    *out = n;
    return shape_is_scalar(n->shape) ? NO_MATRIX : FOUND;
  }
  int k = NO_MATRIX;
  if (left_bare(c, b, f, n))
    k = first_matrix(c, b, f, n->a, budget, out);
  else if (!shape_is_scalar(n->a->shape))
    *out = n->a, k = FOUND;
  if (k != NO_MATRIX || n->op == OP_DIV || n->op == OP_UNIT)  // a divisor is a scalar
    return k;
  if (right_bare(c, b, f, n, budget))
    return first_matrix(c, b, f, n->b, budget, out);
  *out = n->b;
  return shape_is_scalar(n->b->shape) ? NO_MATRIX : FOUND;
}

static bool chain_ok(Ctx *c, const Buf *b, Form f, const Node *l, const Node *r, int *budget) {
  if (shape_is_scalar(l->shape))
    return true;
  const Node *m = NULL;
  int k = first_matrix(c, b, f, r, budget, &m);
  return k == NO_MATRIX || (k == FOUND && dim_eq(l->shape.c, m->shape.r));
}

/* A sum reads left to right too: a + (b + c) printed as a + b + c is
   (a + b) + c, the same sum wherever every step is defined. Broadcasting
   may leave a step undefined: 1×k + (N×1 + N×k) is, but 1×k + N×1 is not.
   Broadcasting orders shapes (a scalar fits in a row, a row in a matrix
   with its columns), the partial sums of a reading only grow in that order,
   and A + (its terms) reads as defined when A fits with each of them. So a
   sum's reading is said by the shapes of its partial sums, in order, each
   once; there are a few at most. */
enum { MAX_PARTIAL = 8, PAREN = 0, BARE = 1 };  /* and UNKNOWN */
typedef struct Partials {
  int n;
  Shape s[MAX_PARTIAL];
} Partials;

static bool partial(Partials *p, Shape s) {
  if (p->n > 0 && shape_eq(p->s[p->n - 1], s))
    return true;
  if (p->n == MAX_PARTIAL)
    return false;
  p->s[p->n++] = s;
  return true;
}

// Does A + (the reading R) read as defined? Into OUT (if not NULL) its
// partial sums after A's.
static bool fold(Ctx *c, Shape a, const Partials *r, Partials *out) {
  char msg[8];
  for (int i = 0; i < r->n; i++) {
    Shape t;
    if (!shape_check(c, OP_ADD, a, r->s[i], 0, &t, msg, sizeof msg) || (out && !partial(out, t)))
      return false;
  }
  return true;
}

static bool partials(Ctx *c, const Buf *b, const Node *n, Partials *p, int *budget);

// The sum N = a + r, r a sum: does r print bare, as + and then its terms?
// Into *R r's partial sums. UNKNOWN past the budget.
static int sum_right(Ctx *c, const Buf *b, const Node *n, Partials *r, int *budget) {
  if (n->op != OP_ADD || eprec(c, b, n->b) != PREC_ADD)  // a - (b + c) keeps them
    return PAREN;
  if (shape_eq(n->a->shape, n->shape))  // a has the sum's shape: every partial sum fits in it
    return BARE;
  if (!partials(c, b, n->b, r, budget))
    return UNKNOWN;
  return fold(c, n->a->shape, r, NULL) ? BARE : PAREN;
}

// The partial sums of N's reading, added to *P; false past the budget.
static bool partials(Ctx *c, const Buf *b, const Node *n, Partials *p, int *budget) {
  if (--*budget < 0)
    return false;
  if (eprec(c, b, n) != PREC_ADD)  // one term
    return partial(p, n->shape);
  if (!partials(c, b, n->a, p, budget))
    return false;
  if (shape_eq(n->a->shape, n->shape))  // and so has each partial sum after it
    return partial(p, n->shape);
  Partials r = {0};
  int k = sum_right(c, b, n, &r, budget);
  return k == UNKNOWN ? false : k == BARE ? fold(c, n->a->shape, &r, p) : partial(p, n->shape);
}

// Does the right operand of the sum N print bare?
static bool sum_assoc(Ctx *c, const Buf *b, const Node *n) {
  Partials r = {0};
  int budget = LOOK;
  return sum_right(c, b, n, &r, &budget) == BARE;
}

static void operand(Ctx *c, Buf *b, const Node *n, bool paren) {
  if (paren)
    buf_puts(b, "(");
  print(c, b, n);
  if (paren)
    buf_puts(b, ")");
}

// Does X, after a unary minus, print as one factor? A minus of a minus
// prints bare too: --A*B is (--A)*B, two factors, unless the inner minus
// keeps its operand's parentheses.
static bool one_factor(Ctx *c, const Buf *b, const Node *x) {
  for (int depth = 0; is_minus(x) && eprec(c, b, x) == PREC_UNARY; depth++) {
    if (depth == LOOK)
      return false;  // the safe answer: parentheses
    if (!minus_bare(c, b, x->b))
      return true;
    x = x->b;
  }
  return eprec(c, b, x) > PREC_MUL;
}

static void binary(Ctx *c, Buf *b, const Node *n) {
  int p = op_prec[n->op];
  const Node *l = n->a, *r = n->b;
  bool lp, rp;
  if (n->op == OP_POW || n->op == OP_EPOW) {
    // Right associative, and the exponent may be a unary minus: x^-1.
    lp = eprec(c, b, l) <= p;
    rp = eprec(c, b, r) < PREC_UNARY;
    // x^-(a/2) needs them: x^-a/2 is (x^-a)/2.
    if (r->op == OP_MUL && ast_is_num(r->a, -1) && eprec(c, b, r) == PREC_UNARY &&
        eprec(c, b, r->b) < PREC_POW)
      rp = true;
  } else {
    lp = eprec(c, b, l) < p;
    // In a chain of products, an elementwise operand keeps its parentheses:
    // X*(A.*B)*C must not read as (X*A).*B*C.
    if (n->op == OP_MUL && elementwise_bare(c, b, l))
      lp = true;
    // a*(b*c) is a*b*c and a + (b + c) is a + b + c, as long as each step
    // of the reading still fits together (a scalar inside a product,
    // broadcasting may not allow it); other operators on the right need
    // parentheses at their own level.
    int budget = LOOK;
    bool assoc = (n->op == OP_MUL && right_bare(c, b, TEXT, n, &budget)) ||
                 (n->op == OP_ADD && sum_assoc(c, b, n));
    rp = assoc ? eprec(c, b, r) < p : eprec(c, b, r) <= p;
    // a*-b and a - -b parse as meant. But -X prints as - then X, and the
    // minus takes only X's first factor: a.*-b*c reads (a.*(-b))*c and
    // a/-b*c (a/(-b))*c. Without parentheses only where that is the same:
    // after + or -, before an X that is one factor, or in a chain of
    // products with X a product that the chain's reading allows (as above).
    if (r->op == OP_MUL && eprec(c, b, r) == PREC_UNARY && n->op != OP_POW) {
      budget = LOOK;
      rp = !(p == PREC_ADD || one_factor(c, b, r->b) || right_bare(c, b, TEXT, n, &budget));
    }
  }
  operand(c, b, l, lp);
  if (p == PREC_ADD)
    buf_printf(b, " %s ", op_spelling[n->op]);
  else
    buf_puts(b, op_spelling[n->op]);
  operand(c, b, r, rp);
}

static void shape_args(Ctx *c, Buf *b, const Node *n) {
  buf_printf(b, "(%s, %s)", dim_str(c, n->shape.r), dim_str(c, n->shape.c));
}

// The name the user gave N with an assignment, if any (the first).
const char *print_let_name(Ctx *c, const Node *n) {
  if (c->nletnames < c->nnodes) {
    const char **names = arena_alloc(&c->arena, sizeof *names * (size_t)(c->nnodes + 1));
    if (!names)
      return NULL;
    // Not the output: a derivative is said in terms of the inputs and the
    // intermediates, never of the function being differentiated.
    for (int i = c->nlets - 1; i >= 0; i--)
      if (c->lets[i].node != c->out)
        names[c->lets[i].node->id] = c->lets[i].name;
    c->letnames = names;
    c->nletnames = c->nnodes;
  }
  return n->id < c->nletnames && n->op != OP_VAR ? c->letnames[n->id] : NULL;
}

// exp(A - logsumexp(A, k)) is softmax(A, k), by definition: the printers
// write it so (k 0 or 2, the ones lower.c and the emitter have). The DAG
// keeps the exp, which the emitted code computes from the logsumexp the
// value has already. Into *A the softmax's operand.
static bool is_softmax(Ctx *c, const Buf *b, const Node *n, const Node **a) {
  if (n->op != OP_EXP || !spelled(c, b, n->a) || n->a->op != OP_SUB)
    return false;
  const Node *d = n->a, *lse = d->b;
  if (lse->op != OP_LSE || lse->a != d->a || (lse->k != 0 && lse->k != 2) || !spelled(c, b, lse))
    return false;
  *a = d->a;
  return true;
}

static void print_node(Ctx *c, Buf *b, const Node *n);

// Nesting past MD_MAX_PRINT_DEPTH prints as "...": a chain of thousands of
// layers has a DAG that deep, and a printer that followed it all the way
// would run out of stack before it ran out of its length limit.
// A short print (a comment in the C, a line of its header) goes no deeper
// than its limit: each level prints at least a character. Without that, a
// comment on each step of a long chain walked the whole chain down to its
// first operand, and compile time grew with the square of its length.
static void print(Ctx *c, Buf *b, const Node *n) {
  if (b->depth >= MD_MAX_PRINT_DEPTH || (b->limit && (size_t)b->depth > b->limit)) {
    buf_puts(b, "...");
    return;
  }
  b->depth++;
  print_node(c, b, n);
  b->depth--;
}

// ||A||, or ||A||_F of a matrix.
static void print_norm(Ctx *c, Buf *b, const Node *a) {
  bool vector = shape_is_scalar(a->shape) || (a->shape.c.sym < 0 && a->shape.c.n == 1);
  buf_puts(b, "||");
  print(c, b, a);
  buf_puts(b, vector ? "||" : "||_F");
}

static void print_node(Ctx *c, Buf *b, const Node *n) {
  char num[32];
  // A shared subexpression prints once per use: a printed tree can be far
  // larger than its DAG, so a printer given a limit stops at it.
  if (b->limit && b->len > b->limit)
    return;
  // A value the user named is printed by its name: dloss/dw =
  // X'*(sigmoid(z) - y)/n rather than z spelled out. (Not at the top: the
  // definition of z itself is spelled out.)
  const char *let = n != b->top ? print_let_name(c, n) : NULL;
  if (let) {
    buf_puts(b, let);
    return;
  }
  switch (n->op) {
  case OP_NUM:
    buf_puts(b, print_num(num, sizeof num, n->num));
    return;
  case OP_VAR:
    buf_puts(b, c->vars[n->k].name);
    return;
  case OP_DIM:
    buf_puts(b, c->dims[n->k]);
    return;
  case OP_SEED:
    buf_puts(b, print_seed_name(c));
    return;
  case OP_DIR:
    buf_puts(b, c->dirnames ? c->dirnames[n->k] : "d?");
    return;
  case OP_ZEROS:
  case OP_ONES:
    buf_puts(b, op_spelling[n->op]);
    shape_args(c, b, n);
    return;
  case OP_EYE:
    buf_printf(b, "eye(%s)", dim_str(c, n->shape.r));
    return;
  case OP_MUL:
    if (n->a->op == OP_NUM && n->a->num == -1) {
      buf_puts(b, "-");
      // -(A*B) is -A*B, but -(A + B) keeps its parentheses.
      operand(c, b, n->b, !minus_bare(c, b, n->b));
      return;
    }
    binary(c, b, n);
    return;
  case OP_TRANS:
    operand(c, b, n->a, eprec(c, b, n->a) < PREC_POST);
    buf_puts(b, "'");
    return;
  case OP_UNIT:  // A/||A||, which lower.c reads back as the unit direction
    operand(c, b, n->a, eprec(c, b, n->a) < PREC_MUL);
    buf_puts(b, "/");
    print_norm(c, b, n->a);
    return;
  case OP_NORM:
  case OP_NORMSQ:
    print_norm(c, b, n->a);
    if (n->op == OP_NORMSQ)
      buf_puts(b, "^2");
    return;
  default:
    break;
  }
  if (op_arity[n->op] == 2) {
    binary(c, b, n);
    return;
  }
  const Node *sm;
  if (is_softmax(c, b, n, &sm)) {
    buf_puts(b, "softmax(");
    print(c, b, sm);
    buf_puts(b, n->a->b->k ? ", 2)" : ")");
    return;
  }
  buf_printf(b, "%s(", op_spelling[n->op]);
  print(c, b, n->a);
  // The dimension of sum(A, 1), logsumexp(A, 2), softmax(A, 2).
  if ((op_flags[n->op] & OPF_AXIS) && n->k)
    buf_printf(b, ", %ld", n->k);
  buf_puts(b, ")");
}

// A printed tree can be exponentially larger than its DAG (A^1000000): past
// a mebibyte a formula is cut, and ends in "...".
char *print_str(Ctx *c, const Node *n) { return print_short(c, n, MD_MAX_PRINT); }

char *print_short(Ctx *c, const Node *n, size_t limit) {
  Buf b = {.limit = limit, .top = n};
  print(c, &b, n);
  if (limit && b.len > limit)
    b.len = limit, b.s[limit] = '\0', buf_puts(&b, "...");
  char *s = b.oom ? NULL : arena_strdup(&c->arena, b.s ? b.s : "");
  buf_free(&b);
  return s;
}

/* ---- the seed's name -------------------------------------------------------- */

// Does the program have a name NAME, or one that LaTeX writes as TEX?
static bool name_taken(Ctx *c, const char *name, const char *tex) {
  for (int i = 0; i < c->nvars + c->nlets + c->ndims; i++) {
    const char *x = i < c->nvars            ? c->vars[i].name
                    : i < c->nvars + c->nlets ? c->lets[i - c->nvars].name
                                              : c->dims[i - c->nvars - c->nlets];
    if (!x)
      continue;
    if (!strcmp(x, name))
      return true;
    Buf t = {0};
    latex_name(&t, x);
    bool same = t.s && !strcmp(t.s, tex);
    buf_free(&t);
    if (same)
      return true;
  }
  return false;
}

const char *print_seed_name(Ctx *c) {
  if (c->seedname)
    return c->seedname;
  char name[64];
  for (int k = 0; !c->seedname; k++) {
    if (k == 0)
      snprintf(name, sizeof name, "G");
    else if (k == 1 && c->outname && strlen(c->outname) < sizeof name - 1)
      snprintf(name, sizeof name, "d%s", c->outname);
    else if (k == 1)
      continue;
    else
      snprintf(name, sizeof name, "G%d", k - 1);
    Buf t = {0};
    latex_name(&t, name);
    if (t.s && !name_taken(c, name, t.s))
      c->seedname = arena_strdup(&c->arena, name);
    buf_free(&t);
    if (k > c->nvars + c->nlets + c->ndims + 2)  // out of memory: one of these was free
      return "G";
  }
  return c->seedname;
}

/* ---- LaTeX -------------------------------------------------------------- */

/* The same DAG as LaTeX, for papers: products by juxtaposition, \odot for
   .*, X^\top, X^{-1}, \operatorname{tr}, \log\det, \|A\|_F. Names become
   symbols where they look like them: lambda -> \lambda, W1 -> W_{1}. */

static const char *const greek[] = {
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
    "lambda", "mu", "nu", "xi", "pi", "rho", "sigma", "tau", "upsilon", "phi", "chi", "psi",
    "omega", "Gamma", "Delta", "Theta", "Lambda", "Xi", "Pi", "Sigma", "Upsilon", "Phi",
    "Psi", "Omega",
};

void latex_name(Buf *b, const char *name) {
  size_t n = strlen(name), stem = n;
  while (stem > 0 && name[stem - 1] >= '0' && name[stem - 1] <= '9')
    stem--;
  if (stem == 0)
    stem = n;
  // W_1 -> W_{1}, x_hat -> x_{hat}; a trailing _ (ws_) stays in the name.
  const char *us = memchr(name, '_', stem);
  if (us && us + 1 < name + n)
    stem = (size_t)(us - name);
  else
    us = NULL;
  bool gr = false;
  for (size_t i = 0; i < sizeof greek / sizeof *greek; i++)
    if (strlen(greek[i]) == stem && !strncmp(greek[i], name, stem))
      gr = true;
  if (gr)
    buf_printf(b, "\\%.*s", (int)stem, name);
  else if (stem == 1)
    buf_printf(b, "%.*s", (int)stem, name);
  else {
    buf_puts(b, "\\mathrm{");
    for (size_t i = 0; i < stem; i++)
      buf_printf(b, name[i] == '_' ? "\\_" : "%c", name[i]);
    buf_puts(b, "}");
  }
  const char *sub = name + stem + (us ? 1 : 0);
  if (*sub) {
    buf_puts(b, "_{");
    for (; *sub; sub++)
      buf_printf(b, *sub == '_' ? "\\_" : "%c", *sub);
    buf_puts(b, "}");
  }
}

static void latex(Ctx *c, Buf *b, const Node *n);

static void latex_group(Ctx *c, Buf *b, const Node *n, bool paren) {
  if (paren)
    buf_puts(b, "\\left( ");
  latex(c, b, n);
  if (paren)
    buf_puts(b, " \\right)");
}

static void latex_dim(Ctx *c, Buf *b, Dim d) {
  if (d.sym >= 0)
    latex_name(b, c->dims[d.sym]);
  else
    buf_printf(b, "%ld", d.n);
}

// Does N's LaTeX hold a sum, or an elementwise product or quotient, outside
// any parentheses? As an operand of a product (juxtaposition, which binds
// tighter than \odot) it then needs them: X^\top (b \odot a), not
// X^\top b \odot a. A unary minus prints its operand bare: -(A .* B) is
// -A \odot B.
static bool loose(Ctx *c, const Buf *b, const Node *n, int depth) {
  if (!spelled(c, b, n))
    return false;
  if (n->op == OP_EMUL || n->op == OP_EDIV || prec(n) <= PREC_ADD || depth > LOOK)
    return true;
  return is_minus(n) && loose(c, b, n->b, depth + 1);
}

// Does N's LaTeX end in a superscript (X^\top, X^{-1}, x^{2}, \|x\|^2)? A
// second one needs parentheses first: X^\top^\top is not TeX.
static bool superscripted(Ctx *c, const Buf *b, const Node *n) {
  return spelled(c, b, n) && (n->op == OP_TRANS || n->op == OP_INV || n->op == OP_POW ||
                              n->op == OP_EPOW || n->op == OP_NORMSQ);
}

// The base of a superscript is an atom, with no superscript of its own.
static bool base_paren(Ctx *c, const Buf *b, const Node *n) {
  return eprec(c, b, n) < PREC_ATOM || superscripted(c, b, n);
}

// Does N's LaTeX begin with a minus sign? After juxtaposition that reads as
// a subtraction: X (-2 Y), not X -2 Y.
static bool leads_minus(Ctx *c, const Buf *b, const Node *n, int depth) {
  if (!spelled(c, b, n))
    return false;
  if (n->op == OP_NUM)
    return n->num < 0 || signbit(n->num);
  if (n->op != OP_MUL || depth > LOOK)
    return depth > LOOK;
  return loose(c, b, n->a, 0) ? false : leads_minus(c, b, n->a, depth + 1);
}

// Does N's LaTeX begin with a digit, or with a parenthesis? TeX ignores
// spaces in math, so 2 3 reads as 23, and a product of such juxtaposed
// takes \cdot; so does one whose left factor reads as a function (below).
static bool leads(Ctx *c, const Buf *b, const Node *n, bool digit, int depth) {
  if (depth > LOOK)
    return true;  // \cdot is never wrong
  if (!spelled(c, b, n))
    return false;
  switch (n->op) {
  case OP_NUM:
  case OP_ZEROS: return digit;
  case OP_MUL:
    if (is_minus(n))
      return false;
    return loose(c, b, n->a, 0) ? !digit : leads(c, b, n->a, digit, depth + 1);
  case OP_POW:
  case OP_EPOW:
  case OP_TRANS:
  case OP_INV: return base_paren(c, b, n->a) ? !digit : leads(c, b, n->a, digit, depth + 1);
  default: return false;
  }
}

// The name N's LaTeX ends with, or NULL if it ends otherwise.
static const char *trailing_name(Ctx *c, const Buf *b, const Node *n, int depth) {
  if (!spelled(c, b, n))
    return print_let_name(c, n);
  if (depth > LOOK)
    return NULL;
  switch (n->op) {
  case OP_VAR: return c->vars[n->k].name;
  case OP_DIM: return c->dims[n->k];
  case OP_SEED: return print_seed_name(c);
  case OP_MUL:
    if (loose(c, b, n->b, 0) || (!is_minus(n) && leads_minus(c, b, n->b, 0)))
      return NULL;
    return trailing_name(c, b, n->b, depth + 1);
  default: return NULL;
  }
}

// Is NAME, in LaTeX, also how a function is written? A group in parentheses
// after it would read as a call: sigma*(x + y) printed as
// \sigma \left( x + y \right) is sigmoid(x + y).
static bool function_like(const char *name) {
  Buf t = {0};
  latex_name(&t, name);
  bool yes = false;
  for (int op = 0; t.s && op < OP_COUNT; op++)
    yes |= op_arity[op] == 1 && ((op_latex[op] && !strcmp(op_latex[op], t.s)) ||
                                 !strcmp(op_spelling[op], name));
  buf_free(&t);
  return yes;
}

// \|A\|, or \|A\|_F of a matrix.
static void latex_norm(Ctx *c, Buf *b, const Node *a) {
  bool vector = shape_is_scalar(a->shape) || (a->shape.c.sym < 0 && a->shape.c.n == 1);
  buf_puts(b, "\\left\\| ");
  latex(c, b, a);
  buf_puts(b, vector ? " \\right\\|" : " \\right\\|_F");
}

static void latex_product(Ctx *c, Buf *b, const Node *n) {
  const Node *l = n->a, *r = n->b;
  int budget = LOOK;
  bool lp = loose(c, b, l, 0);
  bool rp = !right_bare(c, b, TEX, n, &budget);
  latex_group(c, b, l, lp);
  const char *name = lp ? NULL : trailing_name(c, b, l, 0);
  bool dot = rp ? l->op == OP_NUM && spelled(c, b, l) && leads_minus(c, b, r, 0) : leads(c, b, r, true, 0);
  dot |= name && (rp || leads(c, b, r, false, 0)) && function_like(name);
  buf_puts(b, dot ? " \\cdot " : " ");
  latex_group(c, b, r, rp);
}

static void latex(Ctx *c, Buf *b, const Node *n) {
  char num[32];
  if (b->limit && b->len > b->limit)  // as print(): a tree may dwarf its DAG
    return;
  // A value the user named prints by its name, as in the text form.
  const char *let = n != b->top ? print_let_name(c, n) : NULL;
  if (let) {
    latex_name(b, let);
    return;
  }
  const Node *l = n->a, *r = n->b;
  switch (n->op) {
  case OP_NUM:
    buf_puts(b, print_num(num, sizeof num, n->num));
    return;
  case OP_VAR:
    latex_name(b, c->vars[n->k].name);
    return;
  case OP_DIM:
    latex_name(b, c->dims[n->k]);
    return;
  case OP_DIR:
    buf_printf(b, "%s ", op_latex[n->op]);
    latex_name(b, c->vars[n->k].name);
    return;
  case OP_SEED:
    latex_name(b, print_seed_name(c));
    return;
  case OP_ZEROS:
  case OP_ONES:
  case OP_EYE:
    buf_printf(b, "%s_{", op_latex[n->op]);
    latex_dim(c, b, n->shape.r);
    if (n->op != OP_EYE && !(n->shape.c.sym < 0 && n->shape.c.n == 1))
      buf_puts(b, " \\times "), latex_dim(c, b, n->shape.c);
    buf_puts(b, "}");
    return;
  case OP_ADD:
  case OP_SUB: {
    // a + (b + c) is a + b + c when each step fits together (see binary()).
    latex_group(c, b, l, false);
    buf_printf(b, " %s ", op_latex[n->op]);
    latex_group(c, b, r, eprec(c, b, r) <= PREC_ADD && !(n->op == OP_ADD && sum_assoc(c, b, n)));
    return;
  }
  case OP_MUL:
    if (is_minus(n)) {
      buf_puts(b, "-");
      latex_group(c, b, r, eprec(c, b, r) <= PREC_ADD);
      return;
    }
    latex_product(c, b, n);
    return;
  case OP_EMUL:
  case OP_EDIV:
    latex_group(c, b, l, eprec(c, b, l) <= PREC_ADD);
    buf_printf(b, " %s ", op_latex[n->op]);
    latex_group(c, b, r, eprec(c, b, r) <= PREC_MUL || loose(c, b, r, 0));
    return;
  case OP_DIV:
  case OP_UNIT:  /* \frac{A}{\|A\|} */
    buf_printf(b, "%s{", op_latex[n->op]);
    latex(c, b, l);
    buf_puts(b, "}{");
    if (n->op == OP_UNIT)
      latex_norm(c, b, l);
    else
      latex(c, b, r);
    buf_puts(b, "}");
    return;
  case OP_POW:
  case OP_EPOW:
    latex_group(c, b, l, base_paren(c, b, l));
    buf_puts(b, n->op == OP_POW ? "^{" : "^{\\circ ");
    latex(c, b, r);
    buf_puts(b, "}");
    return;
  case OP_TRANS:
  case OP_INV:
    latex_group(c, b, l, base_paren(c, b, l));
    buf_puts(b, op_latex[n->op]);
    return;
  case OP_NORM:
  case OP_NORMSQ:
    latex_norm(c, b, l);
    if (n->op == OP_NORMSQ)
      buf_puts(b, "^2");
    return;
  case OP_SQRT:
    buf_printf(b, "%s{", op_latex[n->op]);
    latex(c, b, l);
    buf_puts(b, "}");
    return;
  case OP_ABS:
    buf_puts(b, "\\left| ");
    latex(c, b, l);
    buf_puts(b, " \\right|");
    return;
  default:
    break;
  }
  long k = n->k;
  if (is_softmax(c, b, n, &l)) {
    k = n->a->b->k;
    buf_puts(b, "\\operatorname{softmax}");
  } else if (op_latex[n->op]) {
    buf_puts(b, op_latex[n->op]);
  } else {
    buf_printf(b, "\\operatorname{%s}", op_spelling[n->op]);
  }
  if (k && ((op_flags[n->op] & OPF_AXIS) || n->op == OP_EXP))
    buf_printf(b, "_{%ld}", k);
  buf_puts(b, "\\left( ");
  latex(c, b, l);
  buf_puts(b, " \\right)");
}

void print_latex(Ctx *c, Buf *b, const Node *n) {
  size_t limit = b->limit;
  const Node *top = b->top;
  if (!limit)
    b->limit = b->len + MD_MAX_PRINT;
  b->top = n;  // spelled out, even if the user named it
  latex(c, b, n);
  if (b->len > b->limit)
    buf_puts(b, " \\dots");
  b->limit = limit;
  b->top = top;
}
