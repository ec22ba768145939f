/*
 * infer.c - sizes that are inferred rather than declared. vector(1),
 * matrix(1) and a bare eye take their shape from where they stand (as on
 * matrixcalculus.org), and the variables of a one-line expression have no
 * declared sizes at all (expr.c).
 *
 * Each such size starts free: a slot of a union-find. When an operation's
 * shapes do not fit and fitting them only takes equating free sizes with
 * each other or with a declared one, lower.c asks infer_fit to equate them
 * and goes on. Nodes made before that keep the sizes they were made with,
 * so shape_check reads every size through infer_shape; and after a round
 * that equated anything the program is lowered again from scratch, with
 * every class known from its first use, so that the DAG that is kept holds
 * one size per class. Equating sizes only lets more checks pass, so the
 * round after one that equated something equates nothing.
 *
 * A free size is never equated with the literal 1: a vector stays a vector
 * and a matrix a matrix. A class still free at the end is a named size
 * (n, m, k, ...) if a variable of a one-line expression has it, and for a
 * constant alone an error: its size cannot be inferred.
 */
#include <stdio.h>
#include <string.h>
#include "md.h"

typedef struct Slot {
  int parent;         /* union-find; a class's representative is its smallest slot */
  bool bound;         /* representative only: the class equals the declared size ... */
  Dim size;           /* ... SIZE (a symbolic size or a literal) */
  int dim;            /* representative only, this round: its index in c->dims, or -1 */
  Loc loc;            /* this round: where the slot was made */
  const char *what;   /* the constant it sizes: "eye", "vector" or "matrix"; NULL for a variable */
  int axis;           /* of WHAT: 0 its rows, 1 its columns, 2 its only size */
} Slot;

typedef struct Infer Infer;
struct Infer {
  Slot *slot;         /* every slot any round made, in the order of making */
  int nslots, cap;
  int next;           /* slots made this round: the walk makes them in the same order each round */
  int *dimslot;       /* c->dims index -> the slot it was made for, -1 for a declared size */
  int ndimslot, dimslotcap;
  int named;          /* names given this round */
  bool changed;       /* this round equated sizes */
  Names used;         /* every name the source spells, which generated names avoid */
  bool scanned;
};

static Infer *get(Ctx *c) {
  if (!c->infer)
    c->infer = arena_alloc(&c->arena, sizeof *c->infer);
  return c->infer;
}

static int find(Infer *in, int s) {
  while (in->slot[s].parent != s)
    s = in->slot[s].parent = in->slot[in->slot[s].parent].parent;  // path halving
  return s;
}

// The slot D was made for, or -1 for a literal or a declared size.
static int slot_of(const Infer *in, Dim d) {
  return d.sym >= 0 && d.sym < in->ndimslot ? in->dimslot[d.sym] : -1;
}

static Dim canon(Infer *in, Dim d) {
  int s = slot_of(in, d);
  if (s < 0)
    return d;
  s = find(in, s);
  return in->slot[s].bound ? in->slot[s].size : (Dim){.sym = in->slot[s].dim};
}

Shape infer_shape(Ctx *c, Shape s) {
  if (c->infer)
    s = (Shape){canon(c->infer, s.r), canon(c->infer, s.c)};
  return s;
}

// Every name the source spells: letters, digits and _ after a letter, as
// the scanner reads them (in comments too, which only costs a name).
static bool scan_names(Ctx *c, Infer *in) {
  for (long i = 0; i < c->len;) {
    char ch = c->src[i];
    if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z'))) {
      i++;
      continue;
    }
    long j = i + 1;
    while (j < c->len && ((c->src[j] >= 'A' && c->src[j] <= 'Z') || (c->src[j] >= 'a' && c->src[j] <= 'z') ||
                          (c->src[j] >= '0' && c->src[j] <= '9') || c->src[j] == '_'))
      j++;
    char *name = arena_strndup(&c->arena, c->src + i, (size_t)(j - i));
    if (!name || !names_put(&c->arena, &in->used, name, 1))
      return false;
    i = j;
  }
  in->scanned = true;
  return true;
}

char *infer_name(Ctx *c, const char *const *first, int nfirst, const char *stem, int *counter) {
  Infer *in = get(c);
  if (!in || (!in->scanned && !scan_names(c, in)))
    return NULL;
  for (;; (*counter)++) {
    char buf[32];
    if (*counter < nfirst)
      snprintf(buf, sizeof buf, "%s", first[*counter]);
    else
      snprintf(buf, sizeof buf, "%s%d", stem, *counter - nfirst + 1);
    if (names_get(&in->used, buf) < 0) {
      (*counter)++;
      return arena_strdup(&c->arena, buf);
    }
  }
}

// dimslot[D] = R, and -1 for the declared sizes made since the last one.
static bool set_dimslot(Ctx *c, Infer *in, int d, int r) {
  while (in->ndimslot <= d) {
    int *ds = arena_grow(&c->arena, in->dimslot, in->ndimslot, &in->dimslotcap, sizeof *ds);
    if (!ds)
      return false;
    in->dimslot = ds;
    ds[in->ndimslot++] = -1;
  }
  in->dimslot[d] = r;
  return true;
}

bool infer_fresh(Ctx *c, Loc loc, const char *what, int axis, Dim *out) {
  Infer *in = get(c);
  Slot *slot = in ? arena_grow(&c->arena, in->slot, in->nslots, &in->cap, sizeof *slot) : NULL;
  if (!slot)
    return ctx_error(c, loc, "out of memory");
  in->slot = slot;
  int s = in->next++;
  if (s == in->nslots)
    slot[in->nslots++] = (Slot){.parent = s, .dim = -1};
  slot[s].loc = loc;
  slot[s].what = what;
  slot[s].axis = axis;
  // The representative is the class's first slot, so it was made before
  // this one in this round, and has its size already, unless it is S.
  int r = find(in, s);
  if (slot[r].bound) {
    *out = slot[r].size;
    return true;
  }
  if (slot[r].dim < 0) {
    static const char *const names[] = {"n", "m", "k", "p", "q", "r", "s", "t", "u", "v", "w"};
    char *name = infer_name(c, names, (int)(sizeof names / sizeof *names), "n", &in->named);
    int d = name ? ctx_new_dim(c, name) : -1;
    if (d < 0 || !set_dimslot(c, in, d, r))
      return ctx_error(c, loc, "out of memory");
    slot[r].dim = d;
  }
  *out = (Dim){.sym = slot[r].dim};
  return true;
}

// Make A and B one size: 0 if they are already, 1 if they are now, -1 if
// they cannot be (two declared sizes, or a free size and the literal 1).
static int unify(Infer *in, Dim a, Dim b) {
  a = canon(in, a);
  b = canon(in, b);
  if (dim_eq(a, b))
    return 0;
  int sa = slot_of(in, a), sb = slot_of(in, b);
  if (sa < 0 && sb < 0)
    return -1;
  if (sa >= 0 && sb >= 0) {
    sa = find(in, sa);
    sb = find(in, sb);
    in->slot[sa > sb ? sa : sb].parent = sa < sb ? sa : sb;
  } else {
    Dim fixed = sa < 0 ? a : b;
    if (dim_eq(fixed, dim_lit(1)))
      return -1;
    int s = find(in, sa < 0 ? sb : sa);
    in->slot[s].bound = true;
    in->slot[s].size = fixed;
  }
  in->changed = true;
  return 1;
}

// Equate the N pairs of sizes in P: true if every pair is now one size and
// some were not before. A pair that cannot be equated stops it, with the
// pairs before it equated: each is needed for the fit, so each holds.
static bool unify_pairs(Infer *in, Dim p[][2], int n) {
  bool changed = false;
  for (int i = 0; i < n; i++) {
    int r = unify(in, p[i][0], p[i][1]);
    if (r < 0)
      return false;
    changed |= r > 0;
  }
  return changed;
}

// What a shape is to broadcasting: a scalar, a column, a row or a matrix.
typedef enum ShapeKind { K_SCALAR, K_COLUMN, K_ROW, K_MATRIX } ShapeKind;

static ShapeKind kind(Shape s) {
  return shape_is_scalar(s) ? K_SCALAR : shape_is_column(s) ? K_COLUMN : shape_is_row(s) ? K_ROW : K_MATRIX;
}

bool infer_fit(Ctx *c, Op op, Shape a, Shape b) {
  Infer *in = c->infer;
  if (!in)
    return false;
  a = infer_shape(c, a);
  b = infer_shape(c, b);
  Dim p[2][2];
  int n = 0;
  ShapeKind ka = kind(a), kb = kind(b);
  switch (op) {
  case OP_ADD:
  case OP_SUB:
  case OP_EMUL:
  case OP_EDIV:
  case OP_EPOW:
    // Free sizes are never 1, so what broadcasts is fixed by the kinds: a
    // column against a column or a matrix repeats along the rows, which
    // must agree; a row likewise along the columns; two matrices agree in
    // both sizes. A column and a row never fit.
    if (ka == K_SCALAR || kb == K_SCALAR || (ka == K_COLUMN && kb == K_ROW) ||
        (ka == K_ROW && kb == K_COLUMN))
      return false;
    if (ka != K_ROW && kb != K_ROW) {
      p[n][0] = a.r, p[n][1] = b.r, n++;
    }
    if (ka != K_COLUMN && kb != K_COLUMN) {
      p[n][0] = a.c, p[n][1] = b.c, n++;
    }
    break;
  case OP_MUL:
    if (ka == K_SCALAR || kb == K_SCALAR)
      return false;
    p[n][0] = a.c, p[n][1] = b.r, n++;
    break;
  case OP_TR:
  case OP_DET:
  case OP_LOGDET:
  case OP_INV:
  case OP_DIAGV:
    p[n][0] = a.r, p[n][1] = a.c, n++;
    break;
  default:
    return false;
  }
  return unify_pairs(in, p, n);
}

bool infer_same(Ctx *c, Shape a, Shape b) {
  Dim p[2][2] = {{a.r, b.r}, {a.c, b.c}};
  return c->infer && unify_pairs(c->infer, p, 2);
}

bool infer_round(Ctx *c) {
  Infer *in = c->infer;
  if (!in || !in->changed)
    return false;
  in->changed = false;
  in->next = in->named = in->ndimslot = 0;
  for (int s = 0; s < in->nslots; s++)
    in->slot[s].dim = -1;
  return true;
}

bool infer_finish(Ctx *c) {
  Infer *in = c->infer;
  if (!in)
    return true;
  // A class a variable has is that variable's size; one that only
  // constants have is known nowhere.
  char *named = arena_alloc(&c->arena, (size_t)in->next + 1);
  if (!named)
    return ctx_error(c, (Loc){-1, -1}, "out of memory");
  for (int s = 0; s < in->next; s++)
    if (!in->slot[s].what)
      named[find(in, s)] = 1;
  for (int s = 0; s < in->next; s++) {
    Slot *p = &in->slot[s];
    int r = find(in, s);
    if (in->slot[r].bound || named[r])
      continue;
    static const char *const part[] = {"the number of rows of", "the number of columns of", "the size of"};
    int len = p->loc.end - p->loc.begin;
    const char *example = !strcmp(p->what, "eye") ? "eye(n)" : !strcmp(p->what, "vector") ? "ones(n)"
                          : "ones(n, m)";
    if (c->implicit)
      return ctx_error(c, p->loc, "cannot infer %s %.*s from where it stands: nothing in the "
                       "expression has that size", part[p->axis], len > 40 ? (int)strlen(p->what) : len,
                       len > 40 ? p->what : c->src + p->loc.begin);
    return ctx_error(c, p->loc, "cannot infer %s %.*s from where it stands; give the size, as in %s",
                     part[p->axis], len > 40 ? (int)strlen(p->what) : len,
                     len > 40 ? p->what : c->src + p->loc.begin, example);
  }
  return true;
}
