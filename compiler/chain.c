/*
 * chain.c - the emitter's algebra: the value's and the gradients' DAG
 * rewritten for cost just before C is planned, so that no O(n^3) work is
 * done where O(n^2) will do. The printed formulas keep the user's form:
 * only the emitted code sees these nodes.
 *
 *   - A chain of matrix products is grouped by its cost: the classic
 *     dynamic program over the chain's dimensions, so that a vector at
 *     either end (or a size 1 inside) is always used first. The written
 *     grouping stays unless another is cheaper. Scalar factors go to the
 *     front. Literal sizes count as they are; symbolic ones as the sizes
 *     AT says (plan.c's samples), or with none given each as the same
 *     large number, CHAIN_SIZE: literal sizes and vectors then decide.
 *     That rewrite also probes each chain at the corners of its symbolic
 *     sizes (each small or large) and reports, in VARY, the sizes of any
 *     chain whose grouping a corner changes: plan.c then plans the body
 *     again at sample sizes, and the emitted code chooses among those
 *     variants at run time by their cost (cost.c). A chain's grouping is
 *     chosen here; which one runs, there.
 *   - Structured matrices are never dense: diag(v)*A is v.*A, A*diag(v)
 *     is A.*v', eye*A is A, ones(1,n)*A is sum(A,1) and a full ones(n,m)
 *     times A the outer product ones(n,1)*sum(A,1).
 *   - X'*diag(s)*X with s >= 0 known (simp_nonneg: a Hessian's
 *     sigmoid(z).*(1 - sigmoid(z)), exp, squares) is B'*B, B = sqrt(s).*X:
 *     a symmetric product, which emit_c.c writes with syrk.
 *   - Only what is read of a product is computed: sum(A*B) is
 *     sum(A,1)*sum(B,2), diag(M*N) is sum(M.*N', 2) (sum(X.*N, 1)' for
 *     M = X') and tr(M*N) is sum(M.*N'); the chain inside is grouped for
 *     that last step's cost.
 *   - A'*B' is (B*A)' where B*A is computed anyway (by this rewrite: an
 *     earlier one, for another body or other sizes, may have made it and
 *     it is not computed here) or is a vector, so that a product and its
 *     transpose are one node (else gemm takes both transposes as flags);
 *     (P + Q)*x is P*x + Q*x for a vector x, used once: no n x n sum.
 *   - Sums of products, as forward mode writes tangents (d(A*B*C*x) is
 *     (dA*B + A*dB)*C*x + ...), never make the vector wait: a reduction
 *     (sum, tr, diag) is taken through sums with a product in them and
 *     into products (reduce), a vector goes first into a product or such
 *     a sum whatever else reads it, an outer product times a matrix is
 *     u*(v'*B), P*R + Q*R is (P + Q)*R, and a product with a sum of
 *     structured terms ((eye(n) + 2*u*v')*B, as the simplifier factors)
 *     is the products with its terms (spread). So a Hessian-vector
 *     product mostly does no O(n^3) work its gradients do not.
 *
 * One sweep by increasing id rewrites each node after its operands, with
 * no recursion over the DAG's depth; the rewrites through sums and
 * products recurse, at most MAX_PUSH of them per node. Two sweeps: the
 * second groups a product with the chains that are its only readers once
 * the first has taken a sum or a reduction off it.
 */
#include <float.h>
#include <string.h>
#include "md.h"

enum {
  MAX_CHAIN = 64,  /* factors of one chain; a longer one keeps its grouping */
  MAX_PUSH = 256,  /* rewrites through sums and products, per node (budget) */
  MAX_TERMS = 32,  /* nodes of a structured sum (structured) */
};

/* What is read of a chain's product: all of it, its diagonal (diag), or
   the sum of its diagonal (tr). A sum reads all of a longer chain, one
   with vectors of ones at its ends. */
typedef enum Want { WANT_ALL, WANT_DIAG, WANT_TRACE } Want;

// The corners a chain is probed at: each of its symbolic sizes (up to
// PROBE_SIZES of them, the rest large) small or large.
#define PROBE_SIZES 6
#define PROBE_SMALL 1e2
#define PROBE_LARGE 1e4

typedef struct Chain {
  Ctx *c;
  int n;          /* nodes below n are the original DAG's */
  int *uses;      /* by original id: users among the needed nodes, and roots */
  Node **user;    /* by original id: a user */
  char *inner;    /* by original id: a product the chain above it takes apart */
  Node **memo;    /* by original id: the rewritten node */
  const double *at; /* by size index: what a symbolic size counts as, or NULL */
  bool *vary;     /* by size index: a chain's grouping depends on it, or NULL */
  int *made;      /* by id, nmade of them: when op() first made it, or 0 */
  int nmade, stamp;
  int budget;     /* rewrites left to the node being rewritten (MAX_PUSH) */
  /* The chain being grouped. */
  Node *factor[MAX_CHAIN];
  int nf;
  Node *coef;     /* the product of its scalar factors, or NULL */
  Node *eye;      /* an identity it left out, or NULL */
  double dim[MAX_CHAIN + 1];
  int (*written)[MAX_CHAIN]; /* the split of [i, j]: as written */
  int (*split)[MAX_CHAIN];   /* ... and the cheapest */
  int (*probe)[MAX_CHAIN];   /* ... and the cheapest at a probe's sizes */
  double (*cost)[MAX_CHAIN]; /* the cost of [i, j] split so */
} Chain;

static bool is_scalar(const Node *n) { return shape_is_scalar(n->shape); }

static bool is_one(Dim d) { return d.sym < 0 && d.n == 1; }

// The matrix that N, a scaling c*M (or M*c) by a scalar c, scales, and
// into *COEF c; NULL if N is no such scaling.
static Node *scaled(const Node *n, Node **coef) {
  if (n->op != OP_MUL || is_scalar(n->a) == is_scalar(n->b))
    return NULL;
  *coef = is_scalar(n->a) ? n->a : n->b;
  return is_scalar(n->a) ? n->b : n->a;
}

// A matrix product, or a scaling of a matrix by a scalar.
// (P*Q)' is Q'*P': the transpose of a product is a chain too.
static bool chainable(const Node *n) {
  if (n->op == OP_TRANS)
    return !is_scalar(n) && chainable(n->a);
  return n->op == OP_MUL && !(is_scalar(n->a) && is_scalar(n->b));
}

// Operand K (0 or 1) of a product, or of a transpose (which has one).
static Node *operand(const Node *n, int k) { return k ? n->b : n->a; }
static int operands(const Node *n) { return n->b ? 2 : 1; }

// A size as the cost model counts it: a symbolic one large, but not so
// large that a literal size never matters; or as AT says.
static double size(const Chain *ch, Dim d) {
  return d.sym >= 0 ? ch->at ? ch->at[d.sym] : CHAIN_SIZE : (double)d.n;
}

/* ---- products of two ----------------------------------------------------- */

// Each node the rewrite makes is stamped (ch->made) when first made: an
// earlier rewrite of the DAG (another body, or this one grouped for other
// sizes) may have made it already, with an id below ch->n.
static Node *op(Chain *ch, Op o, Node *a, Node *b, long k) {
  Node *n = ast_opk(ch->c, o, a, b, k);
  if (!n)
    return NULL;
  if (n->id >= ch->nmade) {  // room for twice as many
    int cap = 2 * n->id + 1, *grown = arena_alloc(&ch->c->arena, sizeof *grown * (size_t)cap);
    if (!grown)
      return NULL;
    if (ch->nmade)
      memcpy(grown, ch->made, sizeof *grown * (size_t)ch->nmade);
    ch->made = grown, ch->nmade = cap;
  }
  if (!ch->made[n->id])
    ch->made[n->id] = ++ch->stamp;
  return n;
}

// N', and (N')' is N.
static Node *trans(Chain *ch, Node *n) {
  return n && n->op == OP_TRANS ? n->a : op(ch, OP_TRANS, n, NULL, 0);
}

static bool is_diag(const Node *n) { return n->op == OP_DIAGM || n->op == OP_EYE; }

// ones of N's shape, read through any transposes.
static bool is_ones(const Node *n) {
  while (n->op == OP_TRANS)
    n = n->a;
  return n->op == OP_ONES;
}

static Node *ones(Chain *ch, Dim r, Dim c) {
  return ast_fill(ch->c, OP_ONES, (Shape){r, c});
}

// A sum of two matrices of its shape, not a broadcast.
static bool flat_sum(const Node *n) {
  return (n->op == OP_ADD || n->op == OP_SUB) && shape_eq(n->a->shape, n->shape) &&
         shape_eq(n->b->shape, n->shape);
}

// Did this rewrite make N, by stamp BEFORE?
static bool made_by(const Chain *ch, const Node *n, int before) {
  return n->id < ch->nmade && ch->made[n->id] && ch->made[n->id] <= before;
}

// One more rewrite through a sum or a product, if the node being
// rewritten has any left: DAGs that share much would take exponential
// time through them.
static bool spend(Chain *ch) { return --ch->budget >= 0; }

// Used once: by its id below ch->n, else made here (and used once).
static bool once(const Chain *ch, const Node *n) { return n->id >= ch->n || ch->uses[n->id] == 1; }

static Node *mul(Chain *ch, Node *a, Node *b);

// A matrix product, not a scaling by a scalar.
static bool matrix_product(const Node *n);
static bool pushable(const Node *x, bool sum, int *budget);

static Node *reduce(Chain *ch, Op o, long k, Node *x);

// sum(X, K) for K = 1 or 2, taken inside X (reduce); of a transpose, the
// transpose of the sum the other way, which reads X in memory order and
// is the node the value's sum(X, 3-K) already is, where it has one.
static Node *sum_along(Chain *ch, Node *x, int k) {
  return reduce(ch, OP_SUM, k, x);
}

// M as v.*X, X a matrix of M's shape and v a vector that scales its rows
// (a column, *ROWS) or its columns (a row); false if it is not one.
static bool scaling(Node *m, Node **x, Node **v, bool *rows) {
  if (m->op != OP_EMUL || shape_is_row(m->shape) || shape_is_column(m->shape))
    return false;
  for (int k = 0; k < 2; k++) {
    Node *s = k ? m->a : m->b, *o = k ? m->b : m->a;
    if (shape_eq(s->shape, m->shape) && (shape_is_column(o->shape) || shape_is_row(o->shape))) {
      *x = s, *v = o, *rows = shape_is_column(o->shape);
      return true;
    }
  }
  return false;
}

// X'*(v.*X) with v >= 0, as X'*diag(v)*X becomes, is B'*B for
// B = sqrt(v).*X, and X*(X'.*v) (X*diag(v)*X') is B*B' for B = X.*sqrt(v)':
// one symmetric product (syrk, half gemm's work) after the same one
// scaling pass. Exact to rounding; a v that may be negative stays as it is.
static Node *symmetric(Chain *ch, Node *a, Node *b) {
  Node *x, *v;
  bool rows, left = scaling(a, &x, &v, &rows);
  if ((!left && !scaling(b, &x, &v, &rows)) || left == rows)
    return NULL;
  Node *other = left ? b : a;  // X' (or X) beside X (or X') scaled: no node made to ask
  if (!(x->op == OP_TRANS ? other == x->a : other->op == OP_TRANS && other->a == x) ||
      !simp_nonneg(ch->c, v))
    return NULL;
  // X'*D*X (a Gram matrix) or X*D*X', with X the matrix in memory.
  bool gram = left == (x->op == OP_TRANS);
  Node *base = x->op == OP_TRANS ? x->a : x;
  Node *r = op(ch, OP_SQRT, shape_is_column(v->shape) ? v : trans(ch, v), NULL, 0);
  if (gram) {
    Node *B = op(ch, OP_EMUL, r, base, 0);
    return op(ch, OP_MUL, trans(ch, B), B, 0);
  }
  Node *B = op(ch, OP_EMUL, base, trans(ch, r), 0);
  return op(ch, OP_MUL, B, trans(ch, B), 0);
}

// An outer product u*v' of two vectors.
static bool outer(const Node *n) { return matrix_product(n) && is_one(n->a->shape.c); }

// Is X (of the shape S of the sum it is a term of) structured: an
// identity, a diagonal, ones, a scalar (broadcast: that many times ones),
// an outer product u*v', or a sum, multiple or transpose of them? Through
// at most *BUDGET nodes.
static bool structured(const Node *x, Shape s, int *budget) {
  if (--*budget < 0 || !(shape_eq(x->shape, s) || is_scalar(x)))
    return false;
  if (is_scalar(x) || x->op == OP_EYE || x->op == OP_DIAGM || is_ones(x))
    return true;
  if (x->op == OP_TRANS)
    return structured(x->a, x->a->shape, budget);
  Node *c, *m = scaled(x, &c);
  if (m)
    return structured(m, s, budget);
  if (matrix_product(x))
    return outer(x);
  return (x->op == OP_ADD || x->op == OP_SUB) && structured(x->a, s, budget) &&
         structured(x->b, s, budget);
}

// A sum of structured terms, as the simplifier writes B' + 2*u*x'*B' =
// (eye(n) + 2*u*x')*B': a product with it is the products with its
// terms, each O(n^2) or less, never the O(n^3) of the sum made dense.
static bool structured_sum(const Node *x) {
  return (x->op == OP_ADD || x->op == OP_SUB) && !is_scalar(x) &&
         structured(x, x->shape, &(int){MAX_TERMS});
}

// T*B (LEFT) or B*T for T a term of a structured sum of shape S: a scalar
// term t is t*ones(S).
static Node *term_mul(Chain *ch, Node *t, Shape s, Node *b, bool left) {
  if (!is_scalar(t))
    return left ? mul(ch, t, b) : mul(ch, b, t);
  Node *o = ones(ch, s.r, s.c);
  return op(ch, OP_MUL, t, left ? mul(ch, o, b) : mul(ch, b, o), 0);
}

// S*B (LEFT) or B*S for S a structured sum or the transpose of one: the
// products with its terms (their transposes); NULL if S is neither.
static Node *spread(Chain *ch, Node *s, Node *b, bool left) {
  bool tr = s->op == OP_TRANS;
  Node *sum = tr ? s->a : s;
  if (!structured_sum(sum) || !spend(ch))
    return NULL;
  Node *t[2] = {sum->a, sum->b}, *p[2];
  for (int k = 0; k < 2; k++)  // in order: the ids
    p[k] = term_mul(ch, tr && !is_scalar(t[k]) ? trans(ch, t[k]) : t[k], s->shape, b, left);
  return op(ch, sum->op, p[0], p[1], 0);
}

/* A*B with the structure of either used. */
static Node *mul(Chain *ch, Node *a, Node *b) {
  if (!a || !b)
    return NULL;
  Node *sym = symmetric(ch, a, b);
  if (sym)
    return sym;
  Node *sp = spread(ch, a, b, true);
  if (sp || (sp = spread(ch, b, a, false)))
    return sp;
  for (int side = 0; side < 2 && !is_scalar(a) && !is_scalar(b); side++) {
    Node *c, *m = scaled(side ? b : a, &c);  // (c*S)*B is c*(S*B), S structured
    if (m && (structured_sum(m) || is_diag(m) || is_ones(m) || outer(m)) && spend(ch))
      return op(ch, OP_MUL, c, side ? mul(ch, a, m) : mul(ch, m, b), 0);
  }
  if (a->op == OP_EYE)
    return b;
  if (b->op == OP_EYE)
    return a;
  if (a->op == OP_DIAGM)  // row i scaled by v(i)
    return op(ch, OP_EMUL, a->a, b, 0);
  if (b->op == OP_DIAGM)  // column j scaled by v(j)
    return op(ch, OP_EMUL, a, trans(ch, b->a), 0);
  // A column of ones on the left (a row on the right) is an outer product
  // already; anything wider, each row (column) of the product is the same.
  // (Of a vector, a plain sum: taking it inside would turn on itself.)
  if (is_ones(a) && !is_one(a->shape.c)) {
    Node *sums = is_one(b->shape.c) ? op(ch, OP_SUM, b, NULL, 0) : sum_along(ch, b, 1);
    return is_one(a->shape.r) ? sums : op(ch, OP_MUL, ones(ch, a->shape.r, dim_lit(1)), sums, 0);
  }
  if (is_ones(b) && !is_one(b->shape.r)) {
    Node *sums = is_one(a->shape.r) ? op(ch, OP_SUM, a, NULL, 0) : sum_along(ch, a, 2);
    return is_one(b->shape.c) ? sums : op(ch, OP_MUL, sums, ones(ch, dim_lit(1), b->shape.c), 0);
  }
  if (a->op == OP_TRANS && b->op == OP_TRANS) {
    int before = ch->stamp;
    Node *flip = mul(ch, b->a, a->a);
    bool vector = is_one(a->shape.r) || is_one(b->shape.c);  // its transpose is free
    if (flip && (vector || (flip->id < ch->n && ch->uses[flip->id] > 0) ||
                 made_by(ch, flip, before)))
      return trans(ch, flip);
  }
  // x'*B, a row, is (B'*x)': one node for the vector and its transpose,
  // which lie the same way in memory (x'*inv(A) and inv(A)'*x: one solve).
  if (a->op == OP_TRANS && is_one(a->shape.r) && !is_one(a->shape.c) && !is_one(b->shape.c) &&
      !is_one(b->shape.r) && spend(ch))
    return trans(ch, mul(ch, trans(ch, b), a->a));
  // An outer product times a matrix is the vector times the product of
  // the other vector and the matrix: u*v'*B is u*(v'*B).
  if (outer(a) && !is_one(b->shape.c) && spend(ch))
    return mul(ch, a->a, mul(ch, a->b, b));
  if (outer(b) && !is_one(a->shape.r) && spend(ch))
    return mul(ch, mul(ch, a, b->a), b->b);
  // A product of matrices times a vector: the vector first. Where the
  // product is needed whole as well, that costs a product with a vector
  // more, O(n^2), against the O(n^3) it saves where it is not (the
  // tangent dS*S + S*dS of S*S, read by vectors only). (A row times a
  // column stays: that is a dot product.)
  if (matrix_product(a) && is_one(b->shape.c) && !is_one(a->shape.r) && !is_one(a->shape.c) &&
      spend(ch))
    return mul(ch, a->a, mul(ch, a->b, b));
  if (matrix_product(b) && is_one(a->shape.r) && !is_one(b->shape.r) && !is_one(b->shape.c) &&
      spend(ch))
    return mul(ch, mul(ch, a, b->a), b->b);
  // (P*Q)'*x is Q'*(P'*x), and x'*(P*Q)' is (x'*Q')*P', alike.
  if (a->op == OP_TRANS && matrix_product(a->a) && is_one(b->shape.c) && !is_one(a->shape.r) &&
      !is_one(a->shape.c) && spend(ch))
    return mul(ch, trans(ch, a->a->b), mul(ch, trans(ch, a->a->a), b));
  if (b->op == OP_TRANS && matrix_product(b->a) && is_one(a->shape.r) && !is_one(b->shape.r) &&
      !is_one(b->shape.c) && spend(ch))
    return mul(ch, mul(ch, a, trans(ch, b->a->b)), trans(ch, b->a->a));
  // (P + Q)*x is P*x + Q*x: used once, or with a product in it, for the
  // same reason; (P + Q)'*x is P'*x + Q'*x.
  if (a->op == OP_TRANS && flat_sum(a->a) && is_one(b->shape.c) &&
      (once(ch, a->a) || pushable(a->a, false, &(int){MAX_TERMS})) && spend(ch)) {
    Node *l = mul(ch, trans(ch, a->a->a), b);
    return op(ch, a->a->op, l, mul(ch, trans(ch, a->a->b), b), 0);
  }
  if (flat_sum(a) && is_one(b->shape.c) &&
      (once(ch, a) || pushable(a, false, &(int){MAX_TERMS})) && spend(ch)) {
    Node *l = mul(ch, a->a, b);
    return op(ch, a->op, l, mul(ch, a->b, b), 0);
  }
  if (flat_sum(b) && is_one(a->shape.r) &&
      (once(ch, b) || pushable(b, false, &(int){MAX_TERMS})) && spend(ch)) {
    Node *l = mul(ch, a, b->a);
    return op(ch, b->op, l, mul(ch, a, b->b), 0);
  }
  return op(ch, OP_MUL, a, b, 0);
}

/* What WANT reads of M*N: its diagonal, sum(M.*N', 2), or the sum of its
   diagonal, sum(M.*N'). */
static Node *read_product(Chain *ch, Want want, Node *m, Node *n) {
  if (m->op == OP_TRANS && n->op != OP_TRANS) {
    // diag(X'*N) is sum(X.*N, 1)': both read down their columns in
    // memory order, where X'.*N' would read both across, a stride apart.
    Node *dots = op(ch, OP_EMUL, m->a, n, 0);
    return want == WANT_DIAG ? trans(ch, op(ch, OP_SUM, dots, NULL, 1))
                             : op(ch, OP_SUM, dots, NULL, 0);
  }
  Node *dots = op(ch, OP_EMUL, m, trans(ch, n), 0);
  return op(ch, OP_SUM, dots, NULL, want == WANT_DIAG ? 2 : 0);
}

/* ---- reductions and sums -------------------------------------------------- */

static bool matrix_product(const Node *n) {
  return n->op == OP_MUL && !is_scalar(n->a) && !is_scalar(n->b);
}

// Is there a product (or an inverse, for a sum) in X, through its sums,
// scalings and transposes, that a reduction taken inside saves work on?
// Else a sum of buffers (softmax(Z) - Y) is read once, not term by term.
static bool pushable(const Node *x, bool sum, int *budget) {
  if (--*budget < 0)
    return false;
  if (matrix_product(x) || (sum && x->op == OP_INV))
    return true;
  if (flat_sum(x))
    return pushable(x->a, sum, budget) || pushable(x->b, sum, budget);
  Node *c, *m = scaled(x, &c);
  if (m)
    return pushable(m, sum, budget);
  return x->op == OP_TRANS && !is_scalar(x) && pushable(x->a, sum, budget);
}

// sum(X, K) of X = S.*M, M (of X's shape) with a product in it and S an
// outer product u*w' or a vector v repeated along M's rows or columns: the
// vectors taken into the product, which is then never formed whole:
// sum(u*w'.*M) is u'*M*w, sum(v.*M, 1) is v'*M, and so on. NULL if X is
// not such a product.
static Node *sum_of_scaled(Chain *ch, long k, Node *x) {
  for (int side = 0; side < 2; side++) {
    Node *s = side ? x->a : x->b, *m = side ? x->b : x->a;
    if (!shape_eq(m->shape, x->shape) || !pushable(m, true, &(int){MAX_TERMS}))
      continue;
    if (outer(s) && shape_eq(s->shape, x->shape)) {
      Node *u = s->a, *w = trans(ch, s->b);  // columns: S = u*w'
      if (k == 1)
        return op(ch, OP_EMUL, mul(ch, trans(ch, u), m), s->b, 0);
      if (k == 2)
        return op(ch, OP_EMUL, mul(ch, m, w), u, 0);
      return mul(ch, mul(ch, trans(ch, u), m), w);
    }
    bool col = shape_is_column(s->shape) && !is_one(x->shape.c) && dim_eq(s->shape.r, x->shape.r);
    bool row = shape_is_row(s->shape) && !is_one(x->shape.r) && dim_eq(s->shape.c, x->shape.c);
    if (col)  // v.*M, row i times v(i)
      return k == 1   ? mul(ch, trans(ch, s), m)
             : k == 2 ? op(ch, OP_EMUL, s, reduce(ch, OP_SUM, 2, m), 0)
                      : mul(ch, trans(ch, s), reduce(ch, OP_SUM, 2, m));
    if (row)  // M.*v', column j times v(j)
      return k == 2   ? mul(ch, m, trans(ch, s))
             : k == 1 ? op(ch, OP_EMUL, s, reduce(ch, OP_SUM, 1, m), 0)
                      : mul(ch, reduce(ch, OP_SUM, 1, m), trans(ch, s));
  }
  return NULL;
}

/* The reduction O (sum along K, tr or diag) of X, a rewritten node, taken
   inside (within the node's budget): a sum's terms are reduced each, so
   that sum((P + Q)*C, 1) is sum(P, 1)*C + sum(Q, 1)*C, vectors all the
   way, where the sum would first form an n x n product; a transpose is
   read the other way; a product P*Q gives up what is summed of it first,
   sum(P, 1)*Q or P*sum(Q, 2), and its trace or diagonal is read as
   read_product reads it. Forward mode writes such sums of products (the
   tangent of A*B*C*x is (dA*B + A*dB)*C*x + ...), and a Hessian-vector
   product reduces them. Where X is needed whole as well, this costs a
   product of a vector more, O(n^2), against the O(n^3) it saves where
   it is not: so X is taken apart whatever else uses it. */
static Node *reduce(Chain *ch, Op o, long k, Node *x) {
  if (!x)
    return NULL;
  bool sum = o == OP_SUM;
  if (sum && ((k == 0 && is_scalar(x)) || (k == 1 && is_one(x->shape.r)) ||
              (k == 2 && is_one(x->shape.c))))
    return x;  // already summed that way
  if (!spend(ch))
    return op(ch, o, x, NULL, k);
  if (flat_sum(x) && pushable(x, sum, &(int){MAX_TERMS})) {
    Node *a = reduce(ch, o, k, x->a);  // in this order: the budget
    return op(ch, x->op, a, reduce(ch, o, k, x->b), 0);
  }
  Node *coef, *m = scaled(x, &coef);
  if (m)
    return op(ch, OP_MUL, coef, reduce(ch, o, k, m), 0);
  if (x->op == OP_TRANS && !is_scalar(x)) {
    if (sum && k)
      return trans(ch, reduce(ch, o, 3 - k, x->a));
    return reduce(ch, o, k, x->a);  // tr, diag and sum are the transpose's
  }
  if (sum && x->op == OP_EMUL && !is_scalar(x->a) && !is_scalar(x->b)) {
    Node *r = sum_of_scaled(ch, k, x);
    if (r)
      return r;
  }
  if (sum && x->op == OP_INV) {  // solves with ones (plan.c), not the inverse
    Node *r = k == 1 ? x : op(ch, OP_MUL, x, ones(ch, x->shape.c, dim_lit(1)), 0);
    return k == 2 ? r : op(ch, OP_MUL, ones(ch, dim_lit(1), x->shape.r), r, 0);
  }
  if (!matrix_product(x))
    return op(ch, o, x, NULL, k);
  if (!sum)
    return read_product(ch, o == OP_TR ? WANT_TRACE : WANT_DIAG, x->a, x->b);
  Node *left = k == 2 ? x->a : reduce(ch, OP_SUM, 1, x->a);
  Node *right = k == 1 ? x->b : reduce(ch, OP_SUM, 2, x->b);
  Node *r = mul(ch, left, right);
  return r && k == 0 && !is_scalar(r) ? op(ch, OP_SUM, r, NULL, 0) : r;
}

/* A sum (O, ADD or SUB) of two rewritten products that share a factor,
   each computed for it alone: P*R + Q*R is (P + Q)*R, and R*P + R*Q is
   R*(P + Q), one product fewer. Where R is a row (a column) the sum is an
   outer product again, which a chain it is a factor of takes apart
   (flatten): B*(u*1' + w*1') is (B*(u + w))*1', no n x n product. NULL if
   the terms share no factor. */
static Node *factor_out(Chain *ch, Op o, Node *a, Node *b) {
  if (!matrix_product(a) || !matrix_product(b) || !once(ch, a) || !once(ch, b))
    return NULL;
  if (a->b == b->b && shape_eq(a->a->shape, b->a->shape))
    return op(ch, OP_MUL, op(ch, o, a->a, b->a, 0), a->b, 0);
  if (a->a == b->a && shape_eq(a->b->shape, b->b->shape))
    return op(ch, OP_MUL, a->a, op(ch, o, a->b, b->b, 0), 0);
  return NULL;
}

/* ---- one chain ------------------------------------------------------------ */

static bool push(Chain *ch, Node *f) {
  if (ch->nf == MAX_CHAIN)
    return false;
  ch->factor[ch->nf++] = f;
  return true;
}

// Take N apart into ch's factors and scalar coefficient, through the
// products the chain owns; the written split of each product is kept.
// The factors are rewritten nodes (memo). An identity is left out, and a
// full matrix of ones is a column of ones times a row. Returns the index
// past N's last factor, or -1 if the chain is too long.
static int flatten(Chain *ch, Node *n, bool top);

// The factors [FIRST, LAST] of a product, transposed: reversed, each
// transposed, and the written splits mirrored (through ch->split, which
// is free until the chain is grouped).
static void transpose(Chain *ch, int first, int last) {
  int(*w)[MAX_CHAIN] = ch->split;
  for (int i = first; i <= last; i++)
    for (int j = i + 1; j <= last; j++)
      w[i][j] = ch->written[i][j];
  for (int i = first; i <= last; i++)
    for (int j = i + 1; j <= last; j++)
      ch->written[first + last - j][first + last - i] = first + last - (w[i][j] + 1);
  for (int i = first, j = last; i <= j; i++, j--) {
    Node *f = trans(ch, ch->factor[i]);
    ch->factor[i] = trans(ch, ch->factor[j]);
    ch->factor[j] = f;
  }
}

static int flatten(Chain *ch, Node *n, bool top) {
  if (n->op == OP_TRANS && chainable(n) && (top || ch->inner[n->id])) {
    int first = ch->nf;
    if (flatten(ch, n->a, false) < 0)
      return -1;
    transpose(ch, first, ch->nf - 1);
    return ch->nf;
  }
  if (chainable(n) && (top || ch->inner[n->id])) {
    int first = ch->nf;
    int mid = flatten(ch, n->a, false);
    if (mid < 0 || flatten(ch, n->b, false) < 0)
      return -1;
    if (mid > first && ch->nf > mid)  // a product of two parts, not a scaling
      ch->written[first][ch->nf - 1] = mid - 1;
    return ch->nf;
  }
  Node *f = ch->memo[n->id];
  if (is_scalar(n)) {  // a scalar factor of a scaling
    ch->coef = ch->coef ? op(ch, OP_MUL, ch->coef, f, 0) : f;
    return ch->nf;
  }
  if (f->op == OP_EYE) {
    ch->eye = f;
    return ch->nf;
  }
  // A full matrix of ones is a column of ones times a row, and an outer
  // product (a sum rewritten into one, factor_out) its two vectors.
  bool two = outer(f);
  if ((two || is_ones(f)) && !is_one(f->shape.r) && !is_one(f->shape.c)) {
    if (!push(ch, two ? f->a : ones(ch, f->shape.r, dim_lit(1))) ||
        !push(ch, two ? f->b : ones(ch, dim_lit(1), f->shape.c)))
      return -1;
    ch->written[ch->nf - 2][ch->nf - 1] = ch->nf - 2;
    return ch->nf;
  }
  return push(ch, f) ? ch->nf : -1;
}

// The cost of multiplying [i, s] by [s+1, j]; the last step of a chain
// whose WANT is not all of it costs what that reading costs.
static double step_cost(const Chain *ch, int i, int s, int j, Want want) {
  const double *d = ch->dim;
  if (want != WANT_ALL)
    return d[i] * d[s + 1];
  if ((s == i && is_diag(ch->factor[i])) || (s + 1 == j && is_diag(ch->factor[j])))
    return d[i] * d[j + 1];  // a scaling
  return d[i] * d[s + 1] * d[j + 1];
}

// The cost of [i, j] split as SPLIT says, the last step wanting WANT.
static double tree_cost(const Chain *ch, int split[][MAX_CHAIN], int i, int j, Want want) {
  if (i == j)
    return 0;
  int s = split[i][j];
  return tree_cost(ch, split, i, s, WANT_ALL) + tree_cost(ch, split, s + 1, j, WANT_ALL) +
         step_cost(ch, i, s, j, want);
}

// The cheapest split of every [i, j], by dynamic programming.
static void best_splits(Chain *ch, int split[][MAX_CHAIN], Want want) {
  double(*cost)[MAX_CHAIN] = ch->cost;
  int k = ch->nf;
  for (int i = 0; i < k; i++)
    cost[i][i] = 0;
  for (int len = 2; len <= k; len++)
    for (int i = 0; i + len - 1 < k; i++) {
      int j = i + len - 1;
      Want w = len == k ? want : WANT_ALL;
      cost[i][j] = DBL_MAX;
      for (int s = i; s < j; s++) {
        double t = cost[i][s] + cost[s + 1][j] + step_cost(ch, i, s, j, w);
        if (t < cost[i][j])
          cost[i][j] = t, split[i][j] = s;
      }
    }
}

// The chain's dimensions, ch->dim, as the cost model counts them; a
// symbolic size among the NS of SYM (distinct size indices) large if its
// bit in CORNER is set, else small.
static void set_dims(Chain *ch, const int *sym, int ns, unsigned corner) {
  for (int i = 0; i <= ch->nf; i++) {
    Dim d = i ? ch->factor[i - 1]->shape.c : ch->factor[0]->shape.r;
    ch->dim[i] = size(ch, d);
    for (int k = 0; k < ns; k++)
      if (d.sym == sym[k])
        ch->dim[i] = corner >> k & 1 ? PROBE_LARGE : PROBE_SMALL;
  }
}

// The grouping the chain gets at ch->dim: the cheapest (into SPLIT), or
// the written one unless another is cheaper.
static int (*cheapest(Chain *ch, int split[][MAX_CHAIN], Want w))[MAX_CHAIN] {
  int nf = ch->nf;
  best_splits(ch, split, w);
  if (nf >= 2 && tree_cost(ch, split, 0, nf - 1, w) >= tree_cost(ch, ch->written, 0, nf - 1, w))
    return ch->written;
  return split;
}

static bool same_tree(int a[][MAX_CHAIN], int b[][MAX_CHAIN], int i, int j) {
  if (i == j)
    return true;
  int s = a[i][j];
  return s == b[i][j] && same_tree(a, b, i, s) && same_tree(a, b, s + 1, j);
}

// Does the chain's grouping depend on its symbolic sizes? It is grouped
// again at each corner of them (the first PROBE_SIZES, each small or
// large); where another grouping than CHOSEN wins, they are marked in
// ch->vary. ch->dim is left as the cost model counts it.
static void probe(Chain *ch, int chosen[][MAX_CHAIN], Want w) {
  int sym[PROBE_SIZES] = {0}, ns = 0;
  for (int i = 0; i <= ch->nf; i++) {
    Dim d = i ? ch->factor[i - 1]->shape.c : ch->factor[0]->shape.r;
    bool seen = d.sym < 0;
    for (int k = 0; k < ns; k++)
      seen |= sym[k] == d.sym;
    if (!seen && ns < PROBE_SIZES)
      sym[ns++] = d.sym;
  }
  bool differs = false;
  for (unsigned corner = 0; corner < 1u << ns && !differs; corner++) {
    set_dims(ch, sym, ns, corner);
    differs = !same_tree(cheapest(ch, ch->probe, w), chosen, 0, ch->nf - 1);
  }
  for (int k = 0; k < ns && differs; k++)
    ch->vary[sym[k]] = true;
  set_dims(ch, NULL, 0, 0);
}

static Node *build(Chain *ch, int split[][MAX_CHAIN], int i, int j) {
  if (i == j)
    return ch->factor[i];
  int s = split[i][j];
  return mul(ch, build(ch, split, i, s), build(ch, split, s + 1, j));
}

/* The chain at N (a product or scaling), grouped for WANT: the node that
   computes it, or what TOP (diag, tr, sum along K) reads of it. */
static Node *group(Chain *ch, Node *n, Want want, Op top, long k) {
  int(*split)[MAX_CHAIN] = ch->split;
  ch->nf = 0;
  ch->coef = ch->eye = NULL;
  // sum(P) is 1'*P*1: a longer chain, with vectors at its ends.
  if (top == OP_SUM && k != 2 && !is_one(n->shape.r) && !push(ch, ones(ch, dim_lit(1), n->shape.r)))
    return NULL;
  int first = ch->nf;
  if (flatten(ch, n, true) < 0)
    return NULL;
  if (first && ch->nf >= 2)  // as written: 1'*(P)
    ch->written[0][ch->nf - 1] = 0;
  int last = ch->nf;
  if (top == OP_SUM && k != 1 && !is_one(n->shape.c) && !push(ch, ones(ch, n->shape.c, dim_lit(1))))
    return NULL;
  if (ch->nf > last && last >= 1)  // (1'*P)*1
    ch->written[0][ch->nf - 1] = last - 1;
  if (ch->nf == 0)  // identities and scalars only
    push(ch, ch->eye);
  int nf = ch->nf;
  Want w = nf >= 2 ? want : WANT_ALL;
  set_dims(ch, NULL, 0, 0);
  split = cheapest(ch, split, w);
  if (ch->vary && nf >= 3)
    probe(ch, split, w);
  Node *r;
  if (w == WANT_ALL)
    r = build(ch, split, 0, nf - 1);
  else
    r = read_product(ch, w, build(ch, split, 0, split[0][nf - 1]),
                     build(ch, split, split[0][nf - 1] + 1, nf - 1));
  if (want != WANT_ALL && w == WANT_ALL)  // one factor: read as written
    r = op(ch, top, r, NULL, 0);
  if (top == OP_SUM && r && !shape_eq(r->shape, shape_scalar()) && k == 0)
    r = op(ch, OP_SUM, r, NULL, 0);  // a vector at one end only: one sum more
  return ch->coef && r ? op(ch, OP_MUL, ch->coef, r, 0) : r;
}

/* ---- the sweep ------------------------------------------------------------ */

// What a reduction N reads of its operand, if that is a product used only
// here: its diagonal (diag), the sum of its diagonal (tr), or its sum (all
// of a longer chain).
static Want reads(const Chain *ch, const Node *n, bool *reduces) {
  const Node *a = n->a;
  *reduces = false;
  if (!a || a->id >= ch->n || !chainable(a) || is_scalar(a) || ch->uses[a->id] != 1)
    return WANT_ALL;
  *reduces = n->op == OP_DIAGV || n->op == OP_TR || n->op == OP_SUM;
  return n->op == OP_DIAGV ? WANT_DIAG : n->op == OP_TR ? WANT_TRACE : WANT_ALL;
}

static Node *rewrite(Chain *ch, Node *n) {
  if (op_is_leaf(n->op))
    return n;
  ch->budget = MAX_PUSH;
  if (chainable(n))
    return group(ch, n, WANT_ALL, OP_MUL, 0);
  bool reduces;
  Want want = reads(ch, n, &reduces);
  if (n->a && ch->inner[n->a->id])  // a product that only this reads part of
    return group(ch, n->a, want, n->op, n->k);
  Node *a = ch->memo[n->a->id], *b = n->b ? ch->memo[n->b->id] : NULL;
  if (n->op == OP_SUM || n->op == OP_TR || n->op == OP_DIAGV)
    return reduce(ch, n->op, n->k, a);
  if (flat_sum(n)) {
    Node *f = factor_out(ch, n->op, a, b);
    if (f)
      return f;
  }
  // (u*w').*v, an outer product scaled along its rows by a column v (or
  // along its columns by a row), is the outer product (u.*v)*w' (or
  // u*(w'.*v)), which a product takes apart.
  for (int side = 0; n->op == OP_EMUL && side < 2; side++) {
    Node *o = side ? b : a, *v = side ? a : b;
    if (!outer(o) || is_scalar(v) || !shape_eq(n->shape, o->shape))
      continue;
    if (shape_is_column(v->shape) && !is_one(n->shape.c))
      return op(ch, OP_MUL, is_ones(o->a) ? v : op(ch, OP_EMUL, o->a, v, 0), o->b, 0);
    if (shape_is_row(v->shape) && !is_one(n->shape.r))
      return op(ch, OP_MUL, o->a, is_ones(o->b) ? v : op(ch, OP_EMUL, o->b, v, 0), 0);
  }
  // f(v') of an elementwise f is f(v)': the one node f(v) for both.
  if (op_class[n->op] == SC_MAP && !b && a->op == OP_TRANS && is_one(a->shape.r) &&
      !is_scalar(a))
    return trans(ch, op(ch, n->op, a->a, NULL, n->k));
  // ones(n, m).*v, a vector repeated, is the outer product v*ones(1, m)
  // (or ones(n, 1)*v for a row), which a product takes apart (flatten).
  Node *o = n->op == OP_EMUL && is_ones(a) ? b : n->op == OP_EMUL && is_ones(b) ? a : NULL;
  if (o && shape_is_column(o->shape) && !is_scalar(o) && !shape_eq(a->shape, b->shape) &&
      !is_one(n->shape.c))
    return op(ch, OP_MUL, o, ones(ch, dim_lit(1), n->shape.c), 0);
  if (o && shape_is_row(o->shape) && !is_scalar(o) && !shape_eq(a->shape, b->shape) &&
      !is_one(n->shape.r))
    return op(ch, OP_MUL, ones(ch, n->shape.r, dim_lit(1)), o, 0);
  return op(ch, n->op, a, b, n->k);
}

bool chain_rewrite(Ctx *c, Node **roots, int nroots) {
  return chain_rewrite_at(c, roots, nroots, NULL, NULL);
}

static bool sweep(Ctx *c, Node **roots, int nroots, const double *at, bool *vary);

// Twice: the first sweep may leave a product that only chains read, where
// a sum or a reduction read it too (taken apart since): the second groups
// it with them. sum(A*B*x) + tr(A*B) becomes tr's sum(A.*B'), so A*B is
// then the chain's alone, and A*(B*x).
bool chain_rewrite_at(Ctx *c, Node **roots, int nroots, const double *at, bool *vary) {
  return sweep(c, roots, nroots, at, vary) && sweep(c, roots, nroots, at, vary);
}

static bool sweep(Ctx *c, Node **roots, int nroots, const double *at, bool *vary) {
  Chain ch = {.c = c, .n = c->nnodes, .at = at, .vary = vary};
  Arena *A = &c->arena;
  size_t n = (size_t)ch.n;
  char *seen = arena_alloc(A, n + 1);
  ch.uses = arena_alloc(A, sizeof(int) * (n + 1));
  ch.user = arena_alloc(A, sizeof(Node *) * (n + 1));
  ch.inner = arena_alloc(A, n + 1);
  ch.memo = arena_alloc(A, sizeof(Node *) * (n + 1));
  ch.written = arena_alloc(A, sizeof(int[MAX_CHAIN][MAX_CHAIN]));
  ch.split = arena_alloc(A, sizeof(int[MAX_CHAIN][MAX_CHAIN]));
  ch.probe = vary ? arena_alloc(A, sizeof(int[MAX_CHAIN][MAX_CHAIN])) : ch.split;
  ch.cost = arena_alloc(A, sizeof(double[MAX_CHAIN][MAX_CHAIN]));
  if (!seen || !ch.uses || !ch.user || !ch.inner || !ch.memo || !ch.written || !ch.split ||
      !ch.probe || !ch.cost)
    return false;
  for (int r = 0; r < nroots; r++)
    if (roots[r]) {
      ast_mark(c, roots[r], seen);
      ch.uses[roots[r]->id]++;
    }
  for (int i = 0; i < ch.n; i++) {
    Node *x = c->nodes[i];
    if (!seen[i])
      continue;
    if (x->a)
      ch.uses[x->a->id]++, ch.user[x->a->id] = x;
    if (x->b)
      ch.uses[x->b->id]++, ch.user[x->b->id] = x;
  }
  // A product whose every user is a product, or that one reduction reads
  // part of, belongs to the chains above it (a candidate): each takes it
  // apart, and the groupings they choose share what they share, being
  // hash-consed. Unless a chain is longer than MAX_CHAIN factors: then its
  // products are chains of their own.
  int *len = arena_alloc(A, sizeof(int) * (n + 1));
  int *chain_users = arena_alloc(A, sizeof(int) * (n + 1));
  char *cand = arena_alloc(A, n + 1), *too_long = arena_alloc(A, n + 1);
  if (!len || !chain_users || !cand || !too_long)
    return false;
  for (int i = 0; i < ch.n; i++)
    if (seen[i] && chainable(c->nodes[i]))
      for (int k = 0; k < operands(c->nodes[i]); k++)
        chain_users[operand(c->nodes[i], k)->id]++;
  for (int i = 0; i < ch.n; i++) {
    Node *x = c->nodes[i], *u = ch.user[i];
    bool reduces = false;
    if (!seen[i] || !chainable(x))
      continue;
    if (u && ch.uses[i] == 1)
      reads(&ch, u, &reduces);
    cand[i] = !is_scalar(x) && (chain_users[i] == ch.uses[i] || (reduces && u->a == x));
    for (int k = 0; k < operands(x); k++) {
      Node *o = operand(x, k);
      len[i] += is_scalar(o) ? 0 : cand[o->id] ? len[o->id] : 2;
    }
    len[i] = len[i] > MAX_CHAIN ? MAX_CHAIN + 1 : len[i];  // a power can double it
  }
  for (int i = ch.n - 1; i >= 0; i--) {
    Node *x = c->nodes[i];
    if (!seen[i] || !chainable(x))
      continue;
    if (!cand[i] || chain_users[i] < ch.uses[i])  // group() starts here
      too_long[i] |= len[i] + 2 > MAX_CHAIN;
    for (int k = 0; k < operands(x); k++)
      if (cand[operand(x, k)->id])
        too_long[operand(x, k)->id] |= too_long[i];
    ch.inner[i] = cand[i] && !too_long[i];
  }
  for (int i = 0; i < ch.n; i++)
    if (seen[i] && !ch.inner[i] && !(ch.memo[i] = rewrite(&ch, c->nodes[i])))
      return false;
  for (int r = 0; r < nroots; r++)
    if (roots[r])
      roots[r] = ch.memo[roots[r]->id];
  return true;
}
