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
static const char *let_name(Ctx *c, const Node *n);

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
  return n != b->top && let_name(c, n) ? PREC_ATOM : prec(n);
}

static void operand(Ctx *c, Buf *b, const Node *n, bool paren) {
  if (paren)
    buf_puts(b, "(");
  print(c, b, n);
  if (paren)
    buf_puts(b, ")");
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
    if (n->op == OP_MUL && (l->op == OP_EMUL || l->op == OP_EDIV) && eprec(c, b, l) == PREC_MUL)
      lp = true;
    // a*(b*c) is a*b*c and a + (b + c) is a + b + c, as long as a + b
    // still fits together (broadcasting may not allow it); other operators
    // on the right need parentheses at their own level.
    Shape sh;
    char msg[8];
    bool assoc = (n->op == OP_MUL && r->op == OP_MUL && eprec(c, b, r) == PREC_MUL) ||
                 (n->op == OP_ADD && (r->op == OP_ADD || r->op == OP_SUB) &&
                  shape_check(c, OP_ADD, l->shape, r->a->shape, 0, &sh, msg, sizeof msg));
    rp = assoc ? eprec(c, b, r) < p : eprec(c, b, r) <= p;
    if (r->op == OP_MUL && eprec(c, b, r) == PREC_UNARY && n->op != OP_POW)
      rp = false;  // a*-b and a - -b parse as meant
  }
  operand(c, b, l, lp);
  if (p == PREC_ADD)
    buf_printf(b, " %s ", op_spelling[n->op]);
  else
    buf_puts(b, op_spelling[n->op]);
  operand(c, b, r, rp);
}

// exp(A - logsumexp(A, k)), which softmax(A) lowers to and which the
// derivative of logsumexp is, prints as softmax(A, k): it reads back as
// the same function. NULL if N is not of that form.
static const Node *softmax_operand(const Node *n) {
  const Node *d = n->op == OP_EXP ? n->a : NULL;
  return d && d->op == OP_SUB && d->b->op == OP_LSE && d->b->a == d->a ? d->a : NULL;
}

static void shape_args(Ctx *c, Buf *b, const Node *n) {
  buf_printf(b, "(%s, %s)", dim_str(c, n->shape.r), dim_str(c, n->shape.c));
}

// The name the user gave N with an assignment, if any (the first).
static const char *let_name(Ctx *c, const Node *n) {
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

static void print(Ctx *c, Buf *b, const Node *n) {
  char num[32];
  // A shared subexpression prints once per use: a printed tree can be far
  // larger than its DAG, so a printer given a limit stops at it.
  if (b->limit && b->len > b->limit)
    return;
  // A value the user named is printed by its name: dloss/dw =
  // X'*(sigmoid(z) - y)/n rather than z spelled out. (Not at the top: the
  // definition of z itself is spelled out.)
  const char *let = n != b->top ? let_name(c, n) : NULL;
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
    buf_puts(b, "G");
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
      operand(c, b, n->b, eprec(c, b, n->b) < PREC_MUL || (n->b->op == OP_NUM && n->b->num < 0) ||
                              (eprec(c, b, n->b) == PREC_MUL && n->b->op == OP_MUL && n->b->a->op == OP_NUM));
      return;
    }
    binary(c, b, n);
    return;
  case OP_TRANS:
    operand(c, b, n->a, eprec(c, b, n->a) < PREC_POST);
    buf_puts(b, "'");
    return;
  case OP_EXP:
    if (softmax_operand(n)) {
      buf_puts(b, "softmax(");
      print(c, b, softmax_operand(n));
      if (n->a->b->k)
        buf_printf(b, ", %ld", n->a->b->k);
      buf_puts(b, ")");
      return;
    }
    break;
  case OP_NORM:
  case OP_NORMSQ: {
    bool vector = shape_is_scalar(n->a->shape) || (n->a->shape.c.sym < 0 && n->a->shape.c.n == 1);
    buf_puts(b, "||");
    print(c, b, n->a);
    buf_puts(b, vector ? "||" : "||_F");
    if (n->op == OP_NORMSQ)
      buf_puts(b, "^2");
    return;
  }
  default:
    break;
  }
  if (op_arity[n->op] == 2) {
    binary(c, b, n);
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
  const char *us = memchr(name, '_', stem);
  if (us) {
    stem = (size_t)(us - name);
  }
  bool gr = false;
  for (size_t i = 0; i < sizeof greek / sizeof *greek; i++)
    if (strlen(greek[i]) == stem && !strncmp(greek[i], name, stem))
      gr = true;
  if (gr)
    buf_printf(b, "\\%.*s", (int)stem, name);
  else if (stem == 1)
    buf_printf(b, "%.*s", (int)stem, name);
  else
    buf_printf(b, "\\mathrm{%.*s}", (int)stem, name);
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

static void latex(Ctx *c, Buf *b, const Node *n) {
  char num[32];
  if (b->limit && b->len > b->limit)  // as print(): a tree may dwarf its DAG
    return;
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
  case OP_ZEROS:
    buf_puts(b, op_latex[n->op]);
    return;
  case OP_ONES:
  case OP_EYE:
    buf_printf(b, "%s_{", op_latex[n->op]);
    latex_dim(c, b, n->shape.r);
    if (n->op == OP_ONES && !(n->shape.c.sym < 0 && n->shape.c.n == 1))
      buf_puts(b, " \\times "), latex_dim(c, b, n->shape.c);
    buf_puts(b, "}");
    return;
  case OP_ADD:
  case OP_SUB:
    latex_group(c, b, l, false);
    buf_printf(b, " %s ", op_latex[n->op]);
    latex_group(c, b, r, n->op == OP_SUB && prec(r) <= PREC_ADD);
    return;
  case OP_MUL:
    if (l->op == OP_NUM && l->num == -1) {
      buf_puts(b, "-");
      latex_group(c, b, r, prec(r) <= PREC_ADD);
      return;
    }
    latex_group(c, b, l, prec(l) <= PREC_ADD);
    buf_puts(b, l->op == OP_NUM && (r->op == OP_NUM || prec(r) == PREC_UNARY) ? " \\cdot " : " ");
    latex_group(c, b, r, prec(r) <= PREC_ADD || prec(r) == PREC_UNARY);
    return;
  case OP_EMUL:
  case OP_EDIV:
    latex_group(c, b, l, prec(l) <= PREC_ADD);
    buf_printf(b, " %s ", op_latex[n->op]);
    latex_group(c, b, r, prec(r) <= PREC_MUL);
    return;
  case OP_DIV:
    buf_printf(b, "%s{", op_latex[n->op]);
    latex(c, b, l);
    buf_puts(b, "}{");
    latex(c, b, r);
    buf_puts(b, "}");
    return;
  case OP_POW:
  case OP_EPOW:
    latex_group(c, b, l, prec(l) < PREC_ATOM || l->op == OP_TRANS);
    buf_puts(b, n->op == OP_POW ? "^{" : "^{\\circ ");
    latex(c, b, r);
    buf_puts(b, "}");
    return;
  case OP_TRANS:
    latex_group(c, b, l, prec(l) < PREC_ATOM || l->op == OP_INV);
    buf_puts(b, op_latex[n->op]);
    return;
  case OP_INV:
    latex_group(c, b, l, prec(l) < PREC_ATOM || l->op == OP_TRANS);
    buf_puts(b, op_latex[n->op]);
    return;
  case OP_NORM:
  case OP_NORMSQ: {
    bool vector = shape_is_scalar(l->shape) || (l->shape.c.sym < 0 && l->shape.c.n == 1);
    buf_puts(b, "\\left\\| ");
    latex(c, b, l);
    buf_puts(b, vector ? " \\right\\|" : " \\right\\|_F");
    if (n->op == OP_NORMSQ)
      buf_puts(b, "^2");
    return;
  }
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
  if (softmax_operand(n)) {
    buf_puts(b, "\\operatorname{softmax}");
    if (n->a->b->k)
      buf_printf(b, "_{%ld}", n->a->b->k);
    l = softmax_operand(n);
  } else if (op_latex[n->op]) {
    buf_puts(b, op_latex[n->op]);
  } else {
    buf_printf(b, "\\operatorname{%s}", op_spelling[n->op]);
  }
  if ((op_flags[n->op] & OPF_AXIS) && n->k)
    buf_printf(b, "_{%ld}", n->k);
  buf_puts(b, "\\left( ");
  latex(c, b, l);
  buf_puts(b, " \\right)");
}

void print_latex(Ctx *c, Buf *b, const Node *n) {
  size_t limit = b->limit;
  if (!limit)
    b->limit = b->len + MD_MAX_PRINT;
  latex(c, b, n);
  if (b->len > b->limit)
    buf_puts(b, " \\dots");
  b->limit = limit;
}
