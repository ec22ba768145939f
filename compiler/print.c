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
  for (int prec = 1; prec <= 17; prec++) {
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
    lp = prec(l) <= p;
    rp = prec(r) < PREC_UNARY;
  } else {
    lp = prec(l) < p;
    // a*(b*c) is a*b*c and a + (b + c) is a + b + c; other operators on
    // the right need parentheses at their own level.
    bool assoc = (n->op == OP_MUL && r->op == OP_MUL && prec(r) == PREC_MUL) ||
                 (n->op == OP_ADD && (r->op == OP_ADD || r->op == OP_SUB));
    rp = assoc ? prec(r) < p : prec(r) <= p;
    if (r->op == OP_MUL && prec(r) == PREC_UNARY && n->op != OP_POW)
      rp = false;  // a*-b and a - -b parse as meant
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

static void print(Ctx *c, Buf *b, const Node *n) {
  char num[32];
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
      operand(c, b, n->b, prec(n->b) < PREC_MUL || (n->b->op == OP_NUM && n->b->num < 0) ||
                              (prec(n->b) == PREC_MUL && n->b->op == OP_MUL && n->b->a->op == OP_NUM));
      return;
    }
    binary(c, b, n);
    return;
  case OP_TRANS:
    operand(c, b, n->a, prec(n->a) < PREC_POST);
    buf_puts(b, "'");
    return;
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
  if ((n->op == OP_SUM || n->op == OP_LSE || n->op == OP_SOFTMAX) && n->k)
    buf_printf(b, ", %ld", n->k);
  buf_puts(b, ")");
}

void print_node(Ctx *c, Buf *b, const Node *n) { print(c, b, n); }

char *print_str(Ctx *c, const Node *n) {
  Buf b = {0};
  print(c, &b, n);
  char *s = b.oom ? NULL : arena_strdup(&c->arena, b.s ? b.s : "");
  buf_free(&b);
  return s;
}
