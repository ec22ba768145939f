/*
 * plan.c - how each node of a body becomes C, decided once per body and
 * then only read: by emit_c.c, which prints the body, and by cost.c, which
 * counts the operations it does. The plan says
 *
 *   - what each root needs (the output, and with gradients each wrt
 *     variable's gradient), as a mask of roots: work needed only by some
 *     gradients goes under `if (dX || ...)`;
 *   - each needed node's form: read in place, fused into its user's loop,
 *     absorbed into a sum's terms or into gemm, a local scalar, a buffer in
 *     the workspace (emit.h lists them); a parent decides before its
 *     operands, so nodes are planned by decreasing id;
 *   - the terms of each matrix written into one buffer;
 *   - which buffer reuses the memory of one that is no longer read;
 *   - which sizes, inputs and seed the printed code reads: the parameters
 *     it leaves unused are cast to void.
 *
 * Where the grouping of a product chain depends on symbolic sizes
 * (chain.c), a body has variants: planned again with its chains grouped
 * for sample sizes, the few that are much cheaper somewhere kept, for
 * the emitted code to choose among at run time by their cost (cost.c).
 */
#include <math.h>
#include <string.h>
#include "emit.h"

#define MAX_FUSED_DEPTH 32  /* fused operations in one expression, then a buffer */
#define NEW(A, ptr, count) ((ptr) = arena_alloc((A), sizeof *(ptr) * (size_t)(count)))

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

// An elementwise value of one operation on inputs and scalars (v.*A,
// s*A, A - B): recomputed in each loop that reads it, never stored. A
// buffer would cost a write and a read of each element to save one
// operation; and a rewritten product (chain.c's v.*A for diag(v)*A) is
// shared by the value and the gradients where the written form was not.
static bool recomputed(const Node *n) {
  if (!elementwise(n) || op_cfunc[n->op] || n->op == OP_DIAGM || n->op == OP_DIAGV ||
      n->op == OP_EPOW)
    return false;
  const Node *ops[2] = {n->a, n->b};
  for (int k = 0; k < 2; k++) {
    const Node *o = ops[k];
    if (o && o->op == OP_TRANS && (shape_is_row(o->shape) || shape_is_column(o->shape)))
      o = o->a;  // a vector's transpose lies the same way in memory
    if (o && !scalar(o) && o->op != OP_VAR && o->op != OP_SEED)
      return false;
  }
  return true;
}

// Operations that call a runtime kernel on plain (untransposed) buffers.
static bool kernel(const Node *n) {
  return n->op == OP_INV || n->op == OP_DET || n->op == OP_LOGDET || n->op == OP_SOFTMAX ||
         ((n->op == OP_LSE || n->op == OP_UNIT) && !scalar(n->a));
}

// Is T, of N's shape or a vector that N repeats along its rows or columns
// (b' in X*W + b'), a term N's loop can read as it is?
static bool fits(const Node *t, const Node *n) {
  Shape s = t->shape, m = n->shape;
  return shape_eq(s, m) || (!shape_is_scalar(s) && ((shape_is_row(s) && dim_eq(s.c, m.c)) ||
                                                    (shape_is_column(s) && dim_eq(s.r, m.r))));
}

// A sum whose terms have its shape or repeat along it: plan_terms and
// collect expand it.
static bool flat_sum(const Node *n) {
  return (n->op == OP_ADD || n->op == OP_SUB) && fits(n->a, n) && fits(n->b, n);
}

static Node *strip(Node *n, bool *trans) {
  *trans = false;
  while (n->op == OP_TRANS && !scalar(n)) {
    *trans = !*trans;
    n = n->a;
  }
  return n;
}

// share_memory's reads() sees the same.
Node *plan_strip(const Plan *p, Node *n, bool *trans) {
  *trans = false;
  while (n->op == OP_TRANS && !scalar(n) && !is_buffer(p, n)) {
    *trans = !*trans;
    n = n->a;
  }
  return n;
}

/* ---- what is needed, and how often -------------------------------------- */

// Mark what ROOT needs, walking down by decreasing id. SEEN is scratch.
static void mark_needed(Plan *p, Node *root, RootMask bit, char *seen) {
  memset(seen, 0, (size_t)root->id + 1);
  ast_mark(p->c, root, seen);
  for (int i = root->id; i >= 0; i--) {
    if (!seen[i])
      continue;
    p->mask[i] |= bit;
    if (p->form[i] == F_UNNEEDED)
      p->form[i] = F_NEEDED;  // plan_forms() decides which form
  }
}

// Count uses once per needed node (a node needed by several roots is still
// one piece of code).
static void count_uses(Plan *p, Node **user) {
  for (int i = 0; i < p->n; i++) {
    if (p->form[i] == F_UNNEEDED)
      continue;
    Node *n = p->c->nodes[i];
    if (n->a)
      p->uses[n->a->id]++, user[n->a->id] = n;
    if (n->b)
      p->uses[n->b->id]++, user[n->b->id] = n;
  }
}

// Uses seen through transposes: a value read through a transpose that is
// used twice is used twice.
static int eff_uses(const Plan *p, Node **user, Node *n) {
  Node *u = user[n->id];
  if (p->uses[n->id] == 1 && u && u->op == OP_TRANS)
    return eff_uses(p, user, u);
  return p->uses[n->id];
}

/* ---- forms -------------------------------------------------------------- */

// A gemm operand must be in memory; a transpose of it is a flag.
static void force_buffer(Plan *p, Node *n) {
  bool tr;
  n = strip(n, &tr);
  if (!is_input(n))
    p->form[n->id] = F_BUFFER;
}

// A kernel's operand must be in memory as it is, untransposed.
static void force_plain(Plan *p, Node *n) {
  if (!is_input(n) && !scalar(n))
    p->form[n->id] = F_BUFFER;
}

bool plan_gemm(const Plan *p, Node *t, Gemm *g) {
  memset(g, 0, sizeof *g);
  if (t->op == OP_DIV && !scalar(t->a) && (t->a == t || p->uses[t->a->id] == 1)) {
    g->div = t->b;
    t = g->inner[g->ninner++] = t->a;
  }
  if (t->op == OP_MUL && scalar(t->a) && is_product(t->b) && p->uses[t->b->id] == 1) {
    g->mul = t->a;
    t = g->inner[g->ninner++] = t->b;
  }
  g->prod = t;
  return is_product(t);
}

// Plan term T as a gemm: the nodes inside are absorbed, the operands must
// be in memory.
static bool gemm_term(Plan *p, Node *t) {
  Gemm g;
  if (!plan_gemm(p, t, &g))
    return false;
  for (int i = 0; i < g.ninner; i++)
    p->form[g.inner[i]->id] = F_GEMM;
  force_buffer(p, g.prod->a);
  force_buffer(p, g.prod->b);
  return true;
}

// The terms of N, a sum being written into a buffer: sums used once are
// flattened, and products among the terms are marked for gemm.
static void plan_terms(Plan *p, Node *n) {
  if (!flat_sum(n)) {
    gemm_term(p, n);
    return;
  }
  Node *ops[2] = {n->a, n->b};
  for (int k = 0; k < 2; k++) {
    Node *t = ops[k];
    // A repeated term is read as it is: a product or sum of its smaller
    // shape is no term of N's.
    if (p->uses[t->id] != 1 || p->form[t->id] == F_BUFFER || !shape_eq(t->shape, n->shape))
      continue;
    if (t->op == OP_ADD || t->op == OP_SUB) {
      p->form[t->id] = F_TERM;
      plan_terms(p, t);
    } else if (gemm_term(p, t)) {
      p->form[t->id] = F_GEMM;
    }
  }
}

// The symmetric product A'*A or A*A' that root G is (or is a scaling of),
// for a root added into its buffer: NULL if it is none. syrk, half gemm's
// work, writes a fresh buffer only (the caller's need not be symmetric), so
// the product gets a buffer of its own and the root adds it in one pass.
static Node *added_syrk(const Plan *p, Node *g) {
  Gemm gm;
  bool ta, tb;
  if (!plan_gemm(p, g, &gm))
    return NULL;
  Node *a = strip(gm.prod->a, &ta), *b = strip(gm.prod->b, &tb);
  Dim inner = gm.prod->a->shape.c;
  return a == b && ta != tb && (inner.sym >= 0 || inner.n > 1) ? gm.prod : NULL;
}

// The elementwise functions the runtime has on blocks (mdrt_vtanh ...):
// kernels.def's MDRT_VMAP list, by the name ops.h gives them.
static const char *const vmapped[] = {
#define MDRT_VMAP(f, from) #f,
#define MDRT_KERNEL(ret, name, params, args, dbl, flt)
#define MDRT_LIBM(name, fname, arity, who)
#include "kernels.def"
#undef MDRT_VMAP
#undef MDRT_KERNEL
#undef MDRT_LIBM
};

const char *plan_block_function(const Node *n) {
  const char *f = op_cfunc[n->op];
  if (!f || scalar(n))
    return NULL;
  if (runtime_name(f))
    f += strlen("mdrt_");
  for (size_t i = 0; i < sizeof vmapped / sizeof *vmapped; i++)
    if (!strcmp(vmapped[i], f))
      return vmapped[i];
  return NULL;
}

// A block function that costs a libm call per element in a loop (not
// fabs or sqrt, an instruction, or relu and sign, a comparison): where it
// would be fused into its user's loop, it gets a buffer instead, mapped
// four or eight elements at a time, for one more pass over memory.
static bool costly_call(const Node *n) {
  static const char *const cheap[] = {"fabs", "sqrt", "relu", "sign"};
  const char *f = plan_block_function(n);
  for (size_t i = 0; f && i < sizeof cheap / sizeof *cheap; i++)
    if (!strcmp(cheap[i], f))
      return false;
  return f != NULL;
}

static Node *inverse(const Plan *p, Node *n);

// A product with an inverse among its operands: plan_solves may make it a
// solve, which writes a buffer of its own.
static bool solvable(const Plan *p, const Node *n) {
  return is_product(n) && (inverse(p, n->a) || inverse(p, n->b));
}

// f(S) in a buffer, f a block function and S a sum or product used only
// there: S is written into the buffer as terms (X*W + b' as b' repeated,
// then gemm onto it), and f maps it in place. No buffer for S, unless S
// is solvable: a solve writes its own.
static void plan_mapped(Plan *p, Node *n) {
  Node *a = n->a;
  if (!plan_block_function(n) || p->uses[a->id] != 1 || p->form[a->id] == F_BUFFER ||
      !shape_eq(a->shape, n->shape) || solvable(p, a))
    return;
  if (flat_sum(a)) {
    p->form[a->id] = F_TERM;
    plan_terms(p, a);
  } else if (gemm_term(p, a)) {
    p->form[a->id] = F_GEMM;
  }
}

Node *plan_mapped_sum(const Plan *p, const Node *n) {
  Node *a = n->a;
  return is_buffer(p, n) && plan_block_function(n) &&
                 (p->form[a->id] == F_TERM || p->form[a->id] == F_GEMM)
             ? a
             : NULL;
}

// A call on a vector (sqrt(v), exp(v)) read by a matrix's loop, where it
// broadcasts: computed once into a buffer, not once per element.
static bool broadcast_call(Node **user, const Node *n) {
  const Node *u = user[n->id];
  return op_cfunc[n->op] && u && (shape_is_column(n->shape) || shape_is_row(n->shape)) &&
         !scalar(u) && !shape_is_column(u->shape) && !shape_is_row(u->shape);
}

// Decide each needed node's form, parents before operands (by decreasing
// id), since a parent decides whether its operand is fused or absorbed.
static void plan_forms(Plan *p, Node **user) {
  // A matrix root used by nothing else is written straight into its
  // destination (the output, or a gradient by adding into it).
  for (int r = 0; r < p->nroots; r++) {
    Node *g = p->roots[r];
    Op op = g->op;
    // (An added product with an inverse gets a buffer: a solve writes its
    // own, which is then added, where the product would form the inverse.)
    if (!scalar(g) && p->uses[g->id] == 1 && !op_is_leaf(op) && op != OP_TRANS &&
        !(r >= p->added && (kernel(g) || op == OP_SUM || solvable(p, g)))) {
      Node *sym = r >= p->added ? added_syrk(p, g) : NULL;
      p->form[g->id] = F_ROOT;
      if (sym)
        p->form[sym->id] = F_BUFFER;
      else
        plan_terms(p, g);
    }
  }
  for (int i = p->n - 1; i >= 0; i--) {
    Node *n = p->c->nodes[i];
    Form k = p->form[i];
    if (k == F_UNNEEDED || k == F_TERM || k == F_GEMM)
      continue;
    if (k == F_ROOT)
      ;
    else if (op_is_leaf(n->op) && !op_is_fill(n->op))
      k = F_LEAF;
    else if (scalar(n))
      k = F_SCALAR;
    else if (k == F_BUFFER)
      ;
    else if (op_is_fill(n->op))
      k = F_LEAF;
    else if (n->op == OP_TRANS)
      k = F_VIEW;
    else if (elementwise(n) && (eff_uses(p, user, n) == 1 || recomputed(n)) &&
             !broadcast_call(user, n) && !costly_call(n))
      k = F_FUSED;
    else
      k = F_BUFFER;
    p->form[i] = k;
    if (k == F_BUFFER) {
      plan_terms(p, n);
      plan_mapped(p, n);
    }
    if (is_product(n) && (k == F_BUFFER || k == F_ROOT)) {
      force_buffer(p, n->a);
      force_buffer(p, n->b);
    }
    if (kernel(n))
      force_plain(p, n->a);
    // tr(P*Q) is sum(P.*Q'): the product itself is never formed.
    if (n->op == OP_TR && is_product(n->a) && !scalar(n->a) && p->uses[n->a->id] == 1) {
      p->form[n->a->id] = F_GEMM;
      force_buffer(p, n->a->a);
      force_buffer(p, n->a->b);
    }
  }
}

// A fused loop's expression is bounded in depth (libtcc's value stack
// holds 256 entries): every MAX_FUSED_DEPTH levels of fused operations, one
// is given a buffer of its own. Operands come before users, so one pass in id order
// sees each node's operands' depths. DEPTH is scratch.
static void limit_fusion(Plan *p, int *depth) {
  for (int i = 0; i < p->n; i++) {
    Node *n = p->c->nodes[i];
    if (p->form[i] != F_FUSED && p->form[i] != F_VIEW)
      continue;
    int d = 0;
    if (n->a && (p->form[n->a->id] == F_FUSED || p->form[n->a->id] == F_VIEW))
      d = depth[n->a->id];
    if (n->b && (p->form[n->b->id] == F_FUSED || p->form[n->b->id] == F_VIEW) && depth[n->b->id] > d)
      d = depth[n->b->id];
    depth[i] = d + 1;
    if (depth[i] > MAX_FUSED_DEPTH && p->form[i] == F_FUSED) {
      p->form[i] = F_BUFFER;
      depth[i] = 0;
    }
  }
}

/* ---- softplus and sigmoid ------------------------------------------------ */

// softplus(z) and sigmoid(z) both needed, z in memory (a logistic loss and
// its gradient): both become buffers, computed together by one kernel
// from one exp(-|z|), under the guard of either. SCRATCH has 2n ints.
static bool plan_pairs(Plan *p, int *scratch) {
  int n = p->n, *sp = scratch, *sg = scratch + n;
  if (!NEW(&p->c->arena, p->pair, n))
    return false;
  for (int i = 0; i < n; i++)
    sp[i] = sg[i] = -1;
  for (int i = 0; i < n; i++) {
    Node *x = p->c->nodes[i];
    Form k = p->form[i];
    if ((x->op != OP_SOFTPLUS && x->op != OP_SIGMOID) || (k != F_FUSED && k != F_BUFFER) ||
        scalar(x) || !in_memory(p, x->a))
      continue;
    if (x->op == OP_SOFTPLUS)
      sp[x->a->id] = i;
    else if (x->op == OP_SIGMOID)
      sg[x->a->id] = i;
  }
  for (int z = 0; z < n; z++) {
    if (sp[z] < 0 || sg[z] < 0)
      continue;
    Node *a = p->c->nodes[sp[z]], *b = p->c->nodes[sg[z]];
    p->pair[a->id] = b;
    p->pair[b->id] = a;
    p->form[a->id] = p->form[b->id] = F_BUFFER;
    p->mask[a->id] = p->mask[b->id] = p->mask[a->id] | p->mask[b->id];
  }
  return true;
}

/* ---- workspace ---------------------------------------------------------- */

// Mark statement S as reading the buffers N's code reads: the buffers met
// below N through values that have no memory of their own.
static void reads(Plan *p, int *lastuse, Node *n, int s, bool top) {
  if (!top && is_buffer(p, n)) {
    lastuse[n->id] = s;
    return;
  }
  Form k = p->form[n->id];
  if (!top && (k == F_SCALAR || k == F_LEAF || n->op == OP_VAR))
    return;
  if (n->a)
    reads(p, lastuse, n->a, s, false);
  if (n->b)
    reads(p, lastuse, n->b, s, false);
}

// The owners of memory of one shape, a binary heap on the last statement
// that reads each (its olast), the earliest at the top; ties go to the
// lower node id, so that the plan does not depend on the heap's history.
typedef struct Owners {
  int *h, n;
} Owners;

static bool owner_before(const int *olast, int a, int b) {
  return olast[a] < olast[b] || (olast[a] == olast[b] && a < b);
}

static void owner_push(Owners *o, const int *olast, int x) {
  int i = o->n++;
  for (; i > 0 && owner_before(olast, x, o->h[(i - 1) / 2]); i = (i - 1) / 2)
    o->h[i] = o->h[(i - 1) / 2];
  o->h[i] = x;
}

static int owner_pop(Owners *o, const int *olast) {
  int top = o->h[0], x = o->h[--o->n], i = 0;
  for (;;) {
    int k = 2 * i + 1;
    if (k >= o->n)
      break;
    if (k + 1 < o->n && owner_before(olast, o->h[k + 1], o->h[k]))
      k++;
    if (!owner_before(olast, o->h[k], x))
      break;
    o->h[i] = o->h[k];
    i = k;
  }
  if (o->n)
    o->h[i] = x;
  return top;
}

// The index of SH among the shapes met so far in KEYS (an open-addressed
// table of CAP slots, a power of two, of node ids; -1 empty), adding it.
static int shape_class(const Plan *p, int *keys, int *class_of, int cap, int id, int *nclasses) {
  Shape sh = p->c->nodes[id]->shape;
  unsigned long hash = (unsigned long)(sh.r.sym >= 0 ? sh.r.sym : sh.r.n) * 1000003u ^
                       (unsigned long)(sh.c.sym >= 0 ? sh.c.sym : sh.c.n + 7919);
  for (unsigned long i = hash & (unsigned long)(cap - 1);; i = (i + 1) & (unsigned long)(cap - 1)) {
    if (keys[i] < 0) {
      keys[i] = id;
      return class_of[id] = (*nclasses)++;
    }
    if (shape_eq(p->c->nodes[keys[i]]->shape, sh))
      return class_of[id] = class_of[keys[i]];
  }
}

// Give each buffer its memory: a buffer may take over the memory of one of
// the same shape whose last reader came before it (a transposed or gemm
// read of a buffer being written is never safe, so "before" is strict).
// Statements are numbered in the order the body is printed: the nodes in
// id order, then the gradients, then the output. SCRATCH has 3n ints.
//
// Each buffer that owns memory remembers the last statement reading it or
// any later tenant; a new buffer takes, of the owners of its shape, the one
// free the earliest, if that is free by then. The owners of a shape are a
// heap on that, so a body that keeps thousands of buffers alive (every
// layer of a deep network, for its gradient) is planned in O(n log n), not
// by a scan of every owner for every buffer.
static bool share_memory(Plan *p, int *scratch) {
  int n = p->n, s = 0;
  int *lastuse = scratch, *class_of = scratch + n, *olast = scratch + 2 * n;
  for (int i = 0; i < n; i++)
    lastuse[i] = -1;
  for (int i = 0; i < n; i++)
    if (is_buffer(p, p->c->nodes[i]) || p->form[i] == F_SCALAR)
      reads(p, lastuse, p->c->nodes[i], s++, true);
  for (int r = 1; r <= p->nroots; r++) {
    Node *g = p->roots[r % p->nroots];  // the gradients, then the output
    reads(p, lastuse, g, s++, !is_buffer(p, g));
  }
  // The buffers' shapes, as classes 0, 1, ...; each class's heap has room
  // for all its buffers, in one array.
  int nbuf = 0, nclasses = 0, cap = 16;
  for (int i = 0; i < n; i++)
    nbuf += is_buffer(p, p->c->nodes[i]);
  while (cap < 2 * nbuf)
    cap *= 2;
  int *keys, *size, *heap;
  Owners *own;
  Arena *A = &p->c->arena;
  if (!NEW(A, keys, cap) || !NEW(A, size, nbuf + 1) || !NEW(A, heap, nbuf + 1) ||
      !NEW(A, own, nbuf + 1))
    return false;
  for (int i = 0; i < cap; i++)
    keys[i] = -1;
  for (int i = 0; i < n; i++)
    if (is_buffer(p, p->c->nodes[i]))
      size[shape_class(p, keys, class_of, cap, i, &nclasses)]++;
  for (int k = 0, at = 0; k < nclasses; at += size[k++])
    own[k] = (Owners){heap + at, 0};
  s = 0;
  for (int i = 0; i < n; i++) {
    Node *q = p->c->nodes[i];
    if (!is_buffer(p, q) && p->form[i] != F_SCALAR)
      continue;
    int here = s++;
    if (!is_buffer(p, q))
      continue;
    // The second of a pair is written at the first's statement: it
    // takes no memory that may still be read then.
    bool second = p->pair[i] && p->pair[i]->id < i;
    Owners *o = &own[class_of[i]];
    if (!second && o->n && olast[o->h[0]] < here) {
      int k = owner_pop(o, olast);
      p->alias[i] = p->c->nodes[k];
      if (lastuse[i] > olast[k])
        olast[k] = lastuse[i];
      owner_push(o, olast, k);
    } else {
      olast[i] = lastuse[i];
      owner_push(o, olast, i);
    }
  }
  return true;
}

/* ---- terms -------------------------------------------------------------- */

static bool sum_of_terms(const Plan *p, const Node *n, bool top) {
  return top ? flat_sum(n) : (n->op == OP_ADD || n->op == OP_SUB) && p->form[n->id] == F_TERM;
}

static int count_terms(const Plan *p, Node *n, bool top) {
  if (sum_of_terms(p, n, top))
    return count_terms(p, n->a, false) + count_terms(p, n->b, false);
  return 1;
}

static void collect(const Plan *p, Node *n, bool top, int sign, Terms *t) {
  if (sum_of_terms(p, n, top)) {
    collect(p, n->a, false, sign, t);
    collect(p, n->b, false, n->op == OP_SUB ? -sign : sign, t);
    return;
  }
  t->node[t->n] = n;
  t->sign[t->n] = sign;
  t->n++;
}

// Is term T of the sum TOP written by gemm?
static bool is_gemm(const Plan *p, Node *t, Node *top) {
  Gemm g;
  if (p->form[t->id] == F_GEMM)
    return true;
  if (t != top || !plan_gemm(p, t, &g))
    return false;
  for (int i = 0; i < g.ninner; i++)
    if (p->form[g.inner[i]->id] != F_GEMM)
      return false;
  return true;
}

static bool plan_sum(Plan *p, Node *n) {
  Arena *A = &p->c->arena;
  int cap = count_terms(p, n, true);
  Terms *t = arena_alloc(A, sizeof *t);
  if (!t || !(t->node = arena_alloc(A, sizeof *t->node * (size_t)cap)) ||
      !(t->sign = arena_alloc(A, sizeof *t->sign * (size_t)cap)) ||
      !(t->gemm = arena_alloc(A, sizeof *t->gemm * (size_t)cap)))
    return false;
  collect(p, n, true, 1, t);
  for (int k = 0; k < t->n; k++)
    t->gemm[k] = is_gemm(p, t->node[k], n);
  p->terms[n->id] = t;
  return true;
}

/* ---- what the printed code reads ---------------------------------------- */

// N appears in the printed code: its sizes do, and so does the input, seed
// or size it is. Every size a statement prints is one of the sizes of a
// node it reads (loop bounds, gemm's sizes, a row's stride); its fused
// operands have its sizes, or 1 where they broadcast.
static void note(Plan *p, const Node *n) {
  if (n->shape.r.sym >= 0)
    p->dim_read[n->shape.r.sym] = true;
  if (n->shape.c.sym >= 0)
    p->dim_read[n->shape.c.sym] = true;
  if (n->op == OP_VAR)
    p->var_read[n->k] = true;
  else if (n->op == OP_SEED)
    p->seed_read = true;
  else if (n->op == OP_DIM)
    p->dim_read[n->k] = true;
}

// What printing N reads: N itself and, unless it is read from memory or as
// a scalar or leaf (or TOP: N is the statement's own node), its operands.
static void note_reads(Plan *p, Node *n, bool top) {
  note(p, n);
  Form k = p->form[n->id];
  if (!top && (in_memory(p, n) || k == F_SCALAR || k == F_LEAF))
    return;
  if (n->a)
    note_reads(p, n->a, false);
  if (n->b)
    note_reads(p, n->b, false);
}

// The statements as emit_c.c prints them: each buffer and scalar; each
// gradient, added into its buffer; the output.
static void note_statements(Plan *p) {
  for (int i = 0; i < p->n; i++) {
    Node *n = p->c->nodes[i];
    if ((p->form[i] == F_BUFFER || p->form[i] == F_SCALAR) && n->op != OP_VAR)
      note_reads(p, n, true);
  }
  for (int r = 0; r < p->nroots; r++) {
    Node *g = p->roots[r];
    if (r >= p->added && (g->op == OP_ZEROS || ast_is_num(g, 0)))
      continue;  // nothing to add
    note_reads(p, g, !scalar(g) && !in_memory(p, g));
  }
}

/* ---- factorisations ----------------------------------------------------- */

// Number the factorisations: one per matrix that a needed det, logdet or
// inv reads. It is computed before its first reader the body prints as a
// statement, under the guard of all its readers; a root written straight
// into its destination (F_ROOT) is printed last, so it is first only if
// it reads alone.
static bool plan_factors(Plan *p) {
  Arena *A = &p->c->arena;
  int n = p->n;
  if (!NEW(A, p->lu, n) || !NEW(A, p->lu_first, n + 1) || !NEW(A, p->lu_mask, n + 1))
    return false;
  for (int i = 0; i < n; i++) {
    Node *x = plan_lu_reader(p, p->c->nodes[i]);
    if (!x)
      continue;
    int k = p->lu[x->a->id];
    if (!k) {
      k = p->lu[x->a->id] = ++p->nlu;
      p->lu_first[k] = -1;
    }
    if (p->lu_first[k] < 0 && p->form[i] != F_ROOT)
      p->lu_first[k] = i;
    p->lu_mask[k] |= p->mask[i];
  }
  for (int i = 0; i < n; i++) {
    Node *x = plan_lu_reader(p, p->c->nodes[i]);
    if (x && p->form[i] == F_ROOT && p->lu_first[p->lu[x->a->id]] < 0)
      p->lu_first[p->lu[x->a->id]] = i;
  }
  return true;
}

// The inverse that operand N of a product reads, through transposes (each
// a flag) that have no buffer of their own, or NULL. A posdef matrix's
// inverse is not one: it comes from Cholesky (emit_c.c's chol()), and no
// LU of that matrix is made, so nothing could solve from one.
static Node *inverse(const Plan *p, Node *n) {
  bool tr;
  n = plan_strip(p, n, &tr);
  return n->op == OP_INV && !scalar(n) && !simp_posdef(p->c, n->a) ? n : NULL;
}

// Products with an inverse written fresh into their own buffer (or the
// output: root 0 when the body writes it, not a Hessian's or Jacobian's,
// which are added into their buffers) become solves: inv(A)*B is lu_solve, B*inv(A) lu_solve_right,
// with B in memory as it is (untransposed, or a vector). An inverse that nothing but
// solves reads, and no root, is then never formed: absorbed (F_GEMM).
// SCRATCH has 2n ints.
static bool plan_solves(Plan *p, int *scratch) {
  int n = p->n, *reads = scratch, *solved = scratch + n;
  if (!NEW(&p->c->arena, p->solve, n))
    return false;
  memset(scratch, 0, sizeof(int) * 2 * (size_t)n);
  for (int i = 0; i < n; i++) {
    Node *x = p->c->nodes[i];
    Form k = p->form[i];
    if (k == F_UNNEEDED || (x->op == OP_TRANS && !scalar(x) && !is_buffer(p, x)))
      continue;
    Node *ops[2] = {x->a, x->b};
    for (int j = 0; j < 2; j++) {
      Node *inv = ops[j] ? inverse(p, ops[j]) : NULL;
      if (inv)
        reads[inv->id]++;
    }
    if (!is_product(x) || (k != F_BUFFER && !(k == F_ROOT && x == p->roots[0] && p->added)))
      continue;
    bool ta, tb;
    Node *a = plan_strip(p, x->a, &ta), *b = plan_strip(p, x->b, &tb);
    // A vector's transpose is the same memory: x'*inv(A) is a solve too.
    ta &= !shape_is_row(a->shape) && !shape_is_column(a->shape);
    tb &= !shape_is_row(b->shape) && !shape_is_column(b->shape);
    Node *inv = inverse(p, x->a) && !inverse(p, x->b) && !tb   ? a
                : inverse(p, x->b) && !inverse(p, x->a) && !ta ? b
                                                               : NULL;
    if (inv) {
      p->solve[i] = inv;
      solved[inv->id]++;
    }
  }
  for (int r = 0; r < p->nroots; r++) {
    Node *inv = inverse(p, p->roots[r]);
    if (inv)
      reads[inv->id]++;
  }
  for (int i = 0; i < n; i++)
    if (p->form[i] != F_UNNEEDED && p->c->nodes[i]->op == OP_INV && reads[i] &&
        reads[i] == solved[i])
      p->form[i] = F_GEMM;
  return true;
}

/* ---- the plan ----------------------------------------------------------- */

// The roots of a body of KIND into P->roots, P->rootvar, P->nroots and
// P->added, with the product chains grouped for the sizes AT (chain.c);
// false without memory.
static bool plan_roots(Plan *p, PlanKind kind, const double *at) {
  Ctx *c = p->c;
  Node **src = kind == PLAN_HVP ? c->hvps : c->grads;
  p->nroots = 0;
  p->added = 1;
  switch (kind) {
  case PLAN_JVP:
    p->roots[p->nroots++] = c->jvp;
    break;
  case PLAN_HESSIAN:
  case PLAN_JACOBIAN:
    // The one wrt variable's matrix (emit_second.c asks only then).
    for (int i = 0; i < c->nvars; i++)
      if (c->vars[i].wrt) {
        p->rootvar[0] = i;
        p->roots[p->nroots++] = kind == PLAN_HESSIAN ? c->hess[i * c->nvars + i] : c->jacs[i];
      }
    p->added = 0;
    if (p->nroots != 1 || !p->roots[0])
      return false;
    break;
  default:
    // The HVP does not give the value: it needs only what the HVPs read.
    if (kind == PLAN_HVP)
      p->added = 0;
    else
      p->roots[p->nroots++] = c->out;
    if (kind != PLAN_VALUE)
      for (int i = 0; i < c->nvars; i++)
        if (c->vars[i].wrt) {
          p->rootvar[p->nroots] = i;
          p->roots[p->nroots++] = src[i];
        }
    break;
  }
  // The code computes the roots as chain.c rewrites them for cost: no
  // diag(v) made dense, product chains grouped by cost. The printed
  // formulas keep c->out, c->grads and the rest as they are.
  return chain_rewrite_at(c, p->roots, p->nroots, at, p->vary);
}

// The start of the plan of a body of KIND: its roots, the chains grouped
// for the sizes AT, or with AT NULL at no particular sizes (p->vary says
// which matter). plan_finish does the rest.
static Plan *plan_start(Ctx *c, PlanKind kind, const double *at) {
  Arena *A = &c->arena;
  Plan *p = arena_alloc(A, sizeof *p);
  if (!p)
    return NULL;
  p->c = c;
  p->kind = kind;
  p->grads = kind == PLAN_GRADS || kind == PLAN_HVP;
  if (!NEW(A, p->roots, c->nvars + 1) || !NEW(A, p->rootvar, c->nvars + 1) ||
      (!at && !NEW(A, p->vary, c->ndims + 1)) || !plan_roots(p, kind, at))
    return NULL;
  return p;
}

static Plan *plan_finish(Plan *p) {
  Ctx *c = p->c;
  Arena *A = &c->arena;
  PlanKind kind = p->kind;
  // The DAG has grown during differentiation and chain.c's rewrite; the
  // plan sees all of it.
  int n = p->n = c->nnodes;
  Node **user;
  char *seen;
  int *scratch;
  if (!NEW(A, p->form, n) || !NEW(A, p->uses, n) || !NEW(A, p->mask, n) || !NEW(A, p->alias, n) ||
      !NEW(A, p->terms, n) || !NEW(A, p->dim_read, c->ndims + 1) ||
      !NEW(A, p->var_read, c->nvars + 1) || !NEW(A, user, n) || !NEW(A, seen, n) ||
      !NEW(A, scratch, 3 * n + 1))
    return NULL;

  for (int r = 0; r < p->nroots; r++) {
    Node *g = p->roots[r];
    // Only gradients and HVPs have buffers a NULL skips; with the
    // gradients, a matrix output's own work is under its own bit too.
    RootMask need;
    if (r < p->added)
      need = kind == PLAN_GRADS && !scalar(g) ? OUT_ROOT : ALL_ROOTS;
    else if (kind == PLAN_HESSIAN || kind == PLAN_JACOBIAN || c->nvars > ROOT_BITS)
      need = ALL_ROOTS;
    else
      need = 1ull << p->rootvar[r];
    mark_needed(p, g, need, seen);
  }
  for (int r = 0; r < p->nroots; r++)
    p->uses[p->roots[r]->id]++;
  count_uses(p, user);
  plan_forms(p, user);
  limit_fusion(p, scratch);
  if (!plan_solves(p, scratch) || !plan_pairs(p, scratch))
    return NULL;
  if (!share_memory(p, scratch))
    return NULL;
  if (!plan_factors(p))
    return NULL;

  for (int i = 0; i < n; i++) {
    Node *x = c->nodes[i], *a = plan_mapped_sum(p, x);
    if ((is_buffer(p, x) && !plan_sum(p, x)) || (a && !plan_sum(p, a)))
      return NULL;
  }
  for (int r = 0; r < p->nroots; r++) {
    Node *g = p->roots[r];
    if (!scalar(g) && !in_memory(p, g) && !p->terms[g->id] && !plan_sum(p, g))
      return NULL;
  }
  note_statements(p);
  return p;
}

static Plan *plan_new(Ctx *c, PlanKind kind) {
  Plan *p = plan_start(c, kind, NULL);
  return p ? plan_finish(p) : NULL;
}

// Nodes are never changed, and any made after the plan (by a printer, say)
// are new ids past p->n: a plan stays right for the compilation's life.
const Plan *plan_body(Ctx *c, bool grads) {
  if (!c->plan[grads] && !(c->plan[grads] = plan_new(c, grads ? PLAN_GRADS : PLAN_VALUE)))
    ctx_error(c, (Loc){-1, -1}, "out of memory planning the C code of the %s",
              grads ? "gradients" : "value");
  return c->plan[grads];
}

const Plan *plan_second(Ctx *c, PlanKind kind) {
  struct Plan **slot = &c->plan2[kind - PLAN_JVP];
  if (!*slot && !(*slot = plan_new(c, kind)))
    ctx_error(c, (Loc){-1, -1}, "out of memory planning the C code of the second order");
  return *slot;
}

/* ---- variants ------------------------------------------------------------ */

enum {
  MAX_CANDIDATES = 16, /* distinct groupings planned, at most */
  CORNER_SIZES = 5,    /* sizes whose every corner is sampled, at most */
  RANDOM_SAMPLES = 16, /* samples drawn at random, besides */
};

#define SAMPLE_SMALL 1e2
#define SAMPLE_LARGE 1e4
/* A variant is kept only if it is this much cheaper than all the others
   kept, at one sample at least. */
#define VARIANT_GAIN 1.5

// splitmix64: the samples are the same on every run and platform.
static unsigned long long next_random(unsigned long long *s) {
  unsigned long long z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Sample I's sizes into AT (for chain.c) and DIMS (for cost.c): the sizes
// VARY marks at a corner (each small or large) for the first 2^CORNER_SIZES
// samples, and past them drawn log-uniformly between the two; the others
// as chain.c counts them.
static void sample(const Ctx *c, const bool *vary, int i, int corners, unsigned long long *rng,
                   double *at, long *dims) {
  int k = 0;
  for (int d = 0; d < c->ndims; d++) {
    double v = CHAIN_SIZE;
    if (vary[d] && i < corners)
      v = i >> k++ & 1 ? SAMPLE_LARGE : SAMPLE_SMALL;
    else if (vary[d])
      v = round(exp(log(SAMPLE_SMALL) + (log(SAMPLE_LARGE) - log(SAMPLE_SMALL)) *
                                            (double)(next_random(rng) >> 11) * 0x1.0p-53));
    at[d] = v;
    dims[d] = (long)v;
  }
}

static bool same_roots(const Plan *a, const Plan *b) {
  for (int r = 0; r < a->nroots; r++)
    if (a->roots[r] != b->roots[r])
      return false;
  return true;
}

// The variants of the body of KIND: its plan at no particular sizes,
// then, if some chain's grouping depends on the sizes, the body planned
// again at sample sizes (each corner of the sizes that matter, and some
// drawn at random). Of the distinct plans, the one that most improves on
// those kept at some sample is kept next (greedily, the worst case
// first), while it is VARIANT_GAIN cheaper there and there is room.
static bool find_variants(Ctx *c, PlanKind kind) {
  Arena *A = &c->arena;
  const Plan *plan = kind <= PLAN_GRADS ? plan_body(c, kind == PLAN_GRADS) : plan_second(c, kind);
  Plan *first = (Plan *)plan, **kept, *cand[MAX_CANDIDATES];
  if (!first || !NEW(A, kept, MAX_VARIANTS))
    return false;
  kept[0] = first;
  c->variants[kind] = kept;  // one, unless the sizes decide
  c->nvariants[kind] = 1;
  int nkept = 1, nvary = 0;
  for (int d = 0; d < c->ndims; d++)
    nvary += first->vary[d];
  if (!nvary)
    return true;
  int corners = 1 << (nvary < CORNER_SIZES ? nvary : CORNER_SIZES);
  int ns = corners + RANDOM_SAMPLES, nd = c->ndims, ncand = 1;
  double *at, *cost, *best;
  long *dims;
  if (!NEW(A, at, nd) || !NEW(A, dims, (size_t)ns * (size_t)nd) ||
      !NEW(A, cost, (size_t)ns * MAX_CANDIDATES) || !NEW(A, best, ns))
    return false;
  cand[0] = first;
  unsigned long long rng = 0x6d6174646966ull;  // "matdif"
  for (int s = 0; s < ns; s++) {
    sample(c, first->vary, s, corners, &rng, at, dims + s * nd);
    Plan *q = plan_start(c, kind, at);
    if (!q)
      return false;
    bool seen = false;
    for (int k = 0; k < ncand && !seen; k++)
      seen = same_roots(q, cand[k]);
    if (!seen && ncand < MAX_CANDIDATES)
      cand[ncand++] = q;
  }
  // Each distinct grouping planned once.
  for (int k = 1; k < ncand; k++)
    if (!plan_finish(cand[k]))
      return false;
  for (int s = 0; s < ns; s++) {
    for (int k = 0; k < ncand; k++)
      cost[s * MAX_CANDIDATES + k] = cost_plan(c, cand[k], dims + s * nd);
    best[s] = cost[s * MAX_CANDIDATES];
  }
  while (nkept < MAX_VARIANTS) {
    int pick = -1;
    double gain = VARIANT_GAIN;
    for (int k = 1; k < ncand; k++)
      for (int s = 0; s < ns; s++)
        if (best[s] / cost[s * MAX_CANDIDATES + k] > gain)
          gain = best[s] / cost[s * MAX_CANDIDATES + k], pick = k;
    if (pick < 0)
      break;
    kept[nkept++] = cand[pick];
    for (int s = 0; s < ns; s++)
      if (cost[s * MAX_CANDIDATES + pick] < best[s])
        best[s] = cost[s * MAX_CANDIDATES + pick];
  }
  c->variants[kind] = kept;
  c->nvariants[kind] = nkept;
  return true;
}

int plan_variants(Ctx *c, PlanKind kind, const Plan *const **v) {
  if (!c->variants[kind] && !find_variants(c, kind)) {
    if (!c->failed)
      ctx_error(c, (Loc){-1, -1}, "out of memory planning the variants of the C code");
    return 0;
  }
  *v = (const Plan *const *)c->variants[kind];
  return c->nvariants[kind];
}
