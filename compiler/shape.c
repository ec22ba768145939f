/*
 * shape.c - shape inference with symbolic sizes: each operation's shape
 * rule. Every misfit is described with both shapes named, e.g.
 *   cannot multiply (n×k) by (n×k): inner sizes k and n differ
 * and lower.c reports it at the operator.
 */
#include <stdio.h>
#include "md.h"

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

// Elementwise operands fit when their shapes are equal, when one is a
// scalar, or when one is a 1 x m row against n x m (it repeats over the
// rows) or an n x 1 column against n x m (it repeats over the columns).
static bool broadcast(Shape a, Shape b, Shape *out) {
  if (shape_eq(a, b) || shape_is_scalar(b))
    *out = a;
  else if (shape_is_scalar(a))
    *out = b;
  else if ((shape_is_row(a) && dim_eq(a.c, b.c)) || (shape_is_column(a) && dim_eq(a.r, b.r)))
    *out = b;
  else if ((shape_is_row(b) && dim_eq(b.c, a.c)) || (shape_is_column(b) && dim_eq(b.r, a.r)))
    *out = a;
  else
    return false;
  return true;
}

static bool square(Ctx *c, Op op, Shape a, char *msg, size_t n) {
  if (shape_is_square(a))
    return true;
  snprintf(msg, n, "%s needs a square matrix, not %s", op_spelling[op], shape_str(c, a));
  return false;
}

// One rule per op; -Wswitch names an op without one. The elementwise
// functions' and the leaves' case labels come from ops.h.
bool shape_check(Ctx *c, Op op, Shape a, Shape b, long k, Shape *out, char *msg, size_t n) {
  // Sizes being inferred are read as equated so far (infer.c).
  a = infer_shape(c, a);
  b = infer_shape(c, b);
  switch (op) {
#define OP(...)
#define MAP(name, ...) case OP_##name:
#include "ops.h"
    *out = a;  // elementwise: the operand's shape
    return true;
  case OP_ADD:
  case OP_SUB:
  case OP_EMUL:
  case OP_EDIV:
  case OP_EPOW:
    if (broadcast(a, b, out))
      return true;
    if (op == OP_EPOW)
      snprintf(msg, n, "cannot raise %s elementwise to the power %s: the shapes differ and neither "
               "broadcasts", shape_str(c, a), shape_str(c, b));
    else
      snprintf(msg, n, "cannot %s %s and %s: the shapes differ and neither broadcasts", verb(op),
               shape_str(c, a), shape_str(c, b));
    return false;
  case OP_MUL:
    if (shape_is_scalar(a) || shape_is_scalar(b))
      return broadcast(a, b, out);
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
  case OP_UNIT:
    *out = a;
    return true;
  case OP_SUM:
  case OP_LSE:
  case OP_SOFTMAX:
    if (op == OP_SOFTMAX)
      *out = a;
    else if (k == 0)
      *out = shape_scalar();
    else
      *out = k == 1 ? (Shape){dim_lit(1), a.c} : (Shape){a.r, dim_lit(1)};
    if (k == 0 || k == 2 || (k == 1 && op == OP_SUM))
      return true;
    snprintf(msg, n, "%s has no dimension %ld", op_spelling[op], k);
    return false;
  case OP_NORM:
  case OP_NORMSQ:
    *out = shape_scalar();
    return true;
  case OP_TR:
  case OP_DET:
  case OP_LOGDET:
    *out = shape_scalar();
    return square(c, op, a, msg, n);
  case OP_INV:
    *out = a;
    return square(c, op, a, msg, n);
  case OP_DIAGM:
    *out = (Shape){a.r, a.r};
    if (shape_is_column(a))
      return true;
    snprintf(msg, n, "diag needs a column vector or a square matrix, not %s", shape_str(c, a));
    return false;
  case OP_DIAGV:
    *out = (Shape){a.r, dim_lit(1)};
    if (shape_is_square(a))
      return true;
    snprintf(msg, n, "diag needs a column vector or a square matrix, not %s", shape_str(c, a));
    return false;
#define OP(...)
#define LEAF(name, ...) case OP_##name:
#include "ops.h"
  case OP_COUNT:  // a leaf is made by ast_num, ast_fill and the like
    break;
  }
  snprintf(msg, n, "%s takes no operands", op_spelling[op]);
  return false;
}
