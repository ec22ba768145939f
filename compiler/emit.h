/*
 * emit.h - what the emitter's files share, and nothing outside them sees
 * (md.h declares emit_c and emit_flops). plan.c decides once per body how
 * each node becomes code: the Plan. The printer reads the plan and writes
 * the C.
 */
#ifndef MD_EMIT_H
#define MD_EMIT_H

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

/* A product that gemm computes whole, alpha*op(A)*op(B): the product P
   itself, s*P or P/t (s and t scalars), or (s*P)/t, where each inner node
   is used only here. */
typedef struct Gemm {
  Node *prod;        /* the product */
  Node *mul, *div;   /* the scalar factor and divisor of alpha, or NULL */
  Node *inner[2];    /* the nodes between the term and the product */
  int ninner;
} Gemm;

/* The terms of a matrix written into one buffer: a sum whose operands are
   sums used once is one list. */
typedef struct Terms {
  Node **node;
  int *sign;         /* +1 or -1 */
  bool *gemm;        /* written by gemm, not in the elementwise loop */
  int n;
} Terms;

/* One body: the value (the forward function) or, with grads, the value and
   the gradients (the backward function). Arrays are indexed by node id. */
typedef struct Plan {
  Ctx *c;
  bool grads;
  int n;             /* node ids below n */
  Node **roots;      /* the output, then the gradient of each wrt variable */
  int *rootvar;      /* roots[r], r >= 1: the index of its variable */
  int nroots;
  Kind *kind;
  int *uses;         /* uses by needed nodes and roots */
  unsigned long long *mask; /* the roots that need each node */
  Node **alias;      /* a buffer whose memory this buffer reuses, or NULL */
  Terms **terms;     /* of each buffer and each matrix root not in memory */
} Plan;

/* The plan of one body, made on the first call and kept in C; NULL when
   memory ran out. */
const Plan *plan_body(Ctx *c, bool grads);
/* Is T a gemm in the plan's terms, and which? */
bool plan_gemm(const Plan *p, Node *t, Gemm *g);
/* The memory gemm or a reduction reads for operand N: through transposes
   (each a flag) down to the first value that has memory of its own. */
Node *plan_strip(const Plan *p, Node *n, bool *trans);

static inline bool scalar(const Node *n) { return shape_is_scalar(n->shape); }

/* A temporary in the workspace (an input or the seed is in memory too,
   but not in the workspace). */
static inline bool is_buffer(const Plan *p, const Node *n) {
  return p->kind[n->id] == K_BUFFER && n->op != OP_VAR && n->op != OP_SEED;
}

/* Has N memory of its own that can be read in place? */
static inline bool in_memory(const Plan *p, const Node *n) {
  return n->op == OP_VAR || n->op == OP_SEED || p->kind[n->id] == K_BUFFER;
}

#endif
