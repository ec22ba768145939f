/*
 * ast.c - the hash-consed expression DAG. Every node is made by intern():
 * a node equal to an existing one (same op, operands, value and shape) is
 * that node. Equal subexpressions are therefore one pointer, which gives
 * common-subexpression elimination, memoised rewriting and emitting each
 * shared value once for free.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "md.h"

static uint64_t mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  return h;
}

// splitmix64's finaliser: every bit of the key reaches the low bits that
// index the table. Without it a whole number, whose double has a low half
// of zeros, changed only high bits: every literal fell in one hash chain,
// and interning n of them took time n^2.
static uint64_t finish(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static uint64_t hash_node(const Node *n) {
  uint64_t bits;
  memcpy(&bits, &n->num, sizeof bits);
  uint64_t h = mix(n->op, (uintptr_t)n->a);
  h = mix(h, (uintptr_t)n->b);
  h = mix(h, bits);
  h = mix(h, (uint64_t)n->k);
  h = mix(h, (uint64_t)n->shape.r.sym * 31 + (uint64_t)n->shape.r.n);
  h = mix(h, (uint64_t)n->shape.c.sym * 31 + (uint64_t)n->shape.c.n);
  return finish(h);
}

static bool same_node(const Node *x, const Node *y) {
  return x->op == y->op && x->a == y->a && x->b == y->b && x->k == y->k &&
         memcmp(&x->num, &y->num, sizeof x->num) == 0 && shape_eq(x->shape, y->shape);
}

static bool grow(Ctx *c) {
  int size = c->tabsize ? c->tabsize * 2 : 1024;
  Node **t = arena_alloc(&c->arena, sizeof(Node *) * (size_t)size);
  if (!t)
    return false;
  for (int i = 0; i < c->tabsize; i++)
    for (Node *n = c->table[i], *next; n; n = next) {
      next = n->next;
      size_t h = hash_node(n) & (size_t)(size - 1);
      n->next = t[h];
      t[h] = n;
    }
  c->table = t;
  c->tabsize = size;
  return true;
}

// c->nodes grows geometrically: the arrays it leaves behind add up to less
// than the last.
static bool grow_nodes(Ctx *c) {
  int cap = c->nodecap ? c->nodecap * 2 : 1024;
  Node **v = arena_alloc(&c->arena, sizeof(Node *) * (size_t)cap);
  if (!v)
    return false;
  if (c->nnodes)
    memcpy(v, c->nodes, sizeof(Node *) * (size_t)c->nnodes);
  c->nodes = v;
  c->nodecap = cap;
  return true;
}

static Node *nomem(Ctx *c) {
  c->astfail = AST_NOMEM;
  return NULL;
}

// The one way nodes come to exist. Returns NULL only when memory runs out,
// which the caller reports.
static Node *intern(Ctx *c, const Node *key) {
  if ((c->nnodes >= c->tabsize && !grow(c)) || (c->nnodes >= c->nodecap && !grow_nodes(c)))
    return nomem(c);
  size_t h = hash_node(key) & (size_t)(c->tabsize - 1);
  for (Node *n = c->table[h]; n; n = n->next)
    if (same_node(n, key))
      return n;
  Node *n = arena_alloc(&c->arena, sizeof *n);
  if (!n)
    return nomem(c);
  *n = *key;
  n->id = c->nnodes++;
  n->depth = 1 + (n->a ? n->a->depth : 0);
  if (n->b && n->b->depth >= n->depth)
    n->depth = n->b->depth + 1;
  n->next = c->table[h];
  c->table[h] = n;
  c->nodes[n->id] = n;
  return n;
}

// -0.0 and 0.0 are two nodes: 1/-0.0 is -Inf. (Equal NaNs of one bit
// pattern are one node: nodes compare by bits.)
Node *ast_num(Ctx *c, double v) {
  Node key = {.op = OP_NUM, .num = v, .shape = shape_scalar()};
  return intern(c, &key);
}

Node *ast_var(Ctx *c, int index) {
  Node key = {.op = OP_VAR, .k = index, .shape = c->vars[index].shape};
  return intern(c, &key);
}

Node *ast_fill(Ctx *c, Op op, Shape s) {
  if (shape_is_scalar(s))
    return ast_num(c, op == OP_ZEROS ? 0 : 1);
  Node key = {.op = op, .shape = s};
  return intern(c, &key);
}

Node *ast_opk(Ctx *c, Op op, Node *a, Node *b, long k) {
  if (!a || (op_arity[op] == 2 && !b))
    return NULL;  // an operand failed: c->astfail says why already
  Node key = {.op = op, .a = a, .b = b, .k = k};
  if (!shape_check(c, op, a->shape, b ? b->shape : a->shape, k, &key.shape, c->astmsg,
                   sizeof c->astmsg)) {
    c->astfail = AST_SHAPE;  // a rule built an ill-shaped node: a bug the caller reports
    return NULL;
  }
  return intern(c, &key);
}

bool ast_error(Ctx *c, Loc loc, const char *what) {
  if (c->astfail == AST_SHAPE)
    return ctx_error(c, loc, "internal error: %s built an ill-shaped node: %s", what, c->astmsg);
  return ctx_error(c, loc, "out of memory");
}

Node *ast_op(Ctx *c, Op op, Node *a, Node *b) { return ast_opk(c, op, a, b, 0); }

Node *ast_op_nz(Ctx *c, Op op, Node *a, Node *b, bool *failed) {
  if (!a || (op_arity[op] == 2 && !b))
    return NULL;
  Node *n = ast_op(c, op, a, b);
  *failed |= !n;
  return n;
}

Node *ast_dim(Ctx *c, Dim d) {
  if (d.sym < 0)
    return ast_num(c, (double)d.n);
  Node key = {.op = OP_DIM, .k = d.sym, .shape = shape_scalar()};
  return intern(c, &key);
}

Node *ast_seed(Ctx *c, Shape s) {
  Node key = {.op = OP_SEED, .shape = s};
  return intern(c, &key);
}

Node *ast_dir(Ctx *c, int index) {
  Node key = {.op = OP_DIR, .k = index, .shape = c->vars[index].shape};
  return intern(c, &key);
}

bool ast_is_num(const Node *n, double v) { return n && n->op == OP_NUM && n->num == v; }

void ast_mark(Ctx *c, const Node *root, char *seen) {
  seen[root->id] = 1;
  for (int i = root->id; i >= 0; i--)
    if (seen[i]) {
      const Node *p = c->nodes[i];
      if (p->a)
        seen[p->a->id] = 1;
      if (p->b)
        seen[p->b->id] = 1;
    }
}
