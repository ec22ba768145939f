/*
 * emit.h - what the emitter's files share (md.h declares emit_c and
 * emit_flops for everyone else; api.c runs plan_body as the front's last
 * stage, and dump.c prints the plans):
 *
 *   plan.c    decides once per body how each node becomes code: the Plan;
 *   emit_c.c  prints the C of each body from its plan;
 *   abi.c     names everything and prints the functions around the bodies;
 *   cost.c    counts the operations of each body from its plan;
 *   emit_second.c  prints the second-order bodies and their functions.
 */
#ifndef MD_EMIT_H
#define MD_EMIT_H

#include <string.h>
#include "md.h"

/* ---- plan.c ------------------------------------------------------------ */

/* How a node becomes code. */
typedef enum Form {
  F_UNNEEDED, /* no root needs it */
  F_NEEDED,   /* needed, form not decided yet: seen only while planning */
  F_LEAF,     /* a number, an input, a size, zeros or ones: referenced in place */
  F_VIEW,     /* a transpose: its operand, read transposed */
  F_FUSED,    /* an elementwise value used once: fused into its user's loop */
  F_TERM,     /* a sum used once, absorbed into its user's list of terms */
  F_GEMM,     /* a product absorbed as a term: gemm into the user's buffer */
  F_ROOT,     /* a root used only as such: written straight into its buffer */
  F_SCALAR,   /* a local variable */
  F_BUFFER,   /* a temporary in the workspace */
} Form;

/* A set of roots, as bits of a mask: bit i is the gradient of variable i.
   Past ROOT_BITS variables, every gradient counts as needing everything
   (no `if (dX || ...)` guards then). */
typedef unsigned long long RootMask;
#define ROOT_BITS 63
#define ALL_ROOTS (~0ull)
/* The output of the gradients' body when it is a matrix: its buffer may be
   NULL (P_vjp_ws), and work only it needs goes under `if (out)`. */
#define OUT_ROOT (1ull << ROOT_BITS)

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

/* What a body computes: its roots. */
typedef enum PlanKind {
  PLAN_VALUE,      /* the output */
  PLAN_GRADS,      /* the output, then each wrt variable's gradient, added */
  PLAN_JVP,        /* the output's tangent, written */
  PLAN_HVP,        /* the output, then each gradient's tangent, added */
  PLAN_HESSIAN,    /* the one wrt variable's Hessian as a matrix, added */
  PLAN_JACOBIAN,   /* the one wrt variable's Jacobian as a matrix, added */
} PlanKind;

/* One body: the value (the forward function) or, with grads, the value and
   the gradients (the backward function); or a second-order one (KIND).
   Arrays are indexed by node id. */
typedef struct Plan {
  Ctx *c;
  bool grads;
  PlanKind kind;
  int added;         /* the roots from this index on are added into their buffers */
  int n;             /* node ids below n */
  Node **roots;      /* the output, then the gradient of each wrt variable */
  int *rootvar;      /* roots[r], r >= 1: the index of its variable */
  int nroots;
  Form *form;        /* how each node becomes code */
  int *uses;         /* uses by needed nodes and roots */
  RootMask *mask;    /* the roots that need each node */
  Node **alias;      /* a buffer whose memory this buffer reuses, or NULL */
  Terms **terms;     /* of each buffer and each matrix root not in memory */
  bool *dim_read;    /* by size index: the printed body reads that size */
  bool *var_read;    /* by variable index: ... that input */
  bool seed_read;    /* ... the seed */
  /* One LU factorisation per matrix that det, logdet or inv read, shared
     by all of them: numbered from 1. */
  int *lu;           /* by node id: the matrix's factorisation, or 0 */
  int *lu_first;     /* by factorisation: the id of the statement before
                        which it is computed (the first reader the body
                        prints in id order, else a root) */
  RootMask *lu_mask; /* by factorisation: the roots that need it */
  int nlu;
  /* softplus(z) and sigmoid(z) of the same z, both buffers, by node id:
     each the other; one kernel computes both from one exp, at the
     statement of the first. */
  Node **pair;
  /* By node id: for a product inv(A)*B or B*inv(A) (either inverse
     perhaps transposed) written fresh into its buffer, the inv node: the
     product is a solve from A's factors, and an inverse that only solves
     read is never formed. */
  Node **solve;
  /* By size index: some chain's grouping depends on that size (chain.c's
     probe; only in a plan made at no particular sizes). */
  bool *vary;
} Plan;

/* Is N a reader of its operand's LU factorisation (det, logdet, inv of a
   matrix)? */
static inline bool plan_factorises(const Plan *p, const Node *n) {
  return (n->op == OP_DET || n->op == OP_LOGDET || n->op == OP_INV) && n->a &&
         !shape_is_scalar(n->a->shape) && !simp_posdef(p->c, n->a);
}

/* The det, logdet or inv whose operand's factorisation statement N reads:
   N itself, or the inverse of a solve; NULL if it reads none. */
static inline Node *plan_lu_reader(const Plan *p, Node *n) {
  if (p->solve[n->id])
    return p->solve[n->id];
  return plan_factorises(p, n) && (p->form[n->id] == F_BUFFER || p->form[n->id] == F_SCALAR ||
                                p->form[n->id] == F_ROOT)
             ? n
             : NULL;
}

/* The plan of one body, made on the first call and kept in C; NULL when
   memory ran out. */
const Plan *plan_body(Ctx *c, bool grads);
/* The same for a second-order body (KIND past PLAN_GRADS), whose formulas
   second.c has derived; NULL when memory ran out or KIND has no root. */
const Plan *plan_second(Ctx *c, PlanKind kind);
/* The variants of the body of KIND, into *V: its plan (plan_body's or
   plan_second's) first, then up to MAX_VARIANTS - 1 more, planned with
   their chains grouped for other sizes, where the sizes decide; the
   emitted code runs the one cost_plan counts cheapest at its sizes.
   Their number, 0 when memory ran out. */
#define MAX_VARIANTS 4
int plan_variants(Ctx *c, PlanKind kind, const Plan *const **v);
/* N's function if the runtime applies it to blocks (kernels.def's
   MDRT_VMAP: "tanh" for mdrt_vtanh), else NULL. */
const char *plan_block_function(const Node *n);
/* The sum or product that buffer N = f(S) writes into its own memory as
   terms before mapping f over it in place, or NULL. */
Node *plan_mapped_sum(const Plan *p, const Node *n);
/* Is term T a product gemm computes (in G)? */
bool plan_gemm(const Plan *p, Node *t, Gemm *g);
/* The memory gemm or a reduction reads for operand N: through transposes
   (each a flag) down to the first value that has memory of its own. */
Node *plan_strip(const Plan *p, Node *n, bool *trans);


static inline bool scalar(const Node *n) { return shape_is_scalar(n->shape); }

/* An input of the body, in memory the caller gives: a variable, the seed,
   a direction. */
static inline bool is_input(const Node *n) {
  return n->op == OP_VAR || n->op == OP_SEED || n->op == OP_DIR;
}

/* The runtime owns every name that begins so. */
static inline bool runtime_name(const char *s) { return !strncmp(s, "mdrt_", 5); }

/* A temporary in the workspace (an input or the seed is in memory too,
   but not in the workspace). */
static inline bool is_buffer(const Plan *p, const Node *n) {
  return p->form[n->id] == F_BUFFER && !is_input(n);
}

/* Has N memory of its own that can be read in place? */
static inline bool in_memory(const Plan *p, const Node *n) {
  return is_input(n) || p->form[n->id] == F_BUFFER;
}

/* ---- emit_c.c and abi.c ------------------------------------------------ */

/* A set of C names, open hashing; cap is a power of two. */
typedef struct NameSet {
  char **slot;
  size_t cap, n;
} NameSet;

/* The printer's state: where the C goes, and the C names of everything. */
typedef struct Emit {
  Ctx *c;
  Buf *o;
  const EmitOpts *opts;
  const Plan *p;      /* the body being printed */
  const char **cname; /* C name of a buffer, scalar or input, by node id */
  const char **pname; /* C parameter names of the inputs */
  const char **gname; /* C parameter names of the gradients */
  const char **dname; /* C names of the symbolic sizes */
  const char *outp, *seedp; /* C names of the output and seed parameters */
  const char *arr_d, *arr_in, *arr_g; /* the JIT entry points' arrays */
  /* Second order (EmitOpts.second): the C names of the directions and of
     the HVP buffers, by variable; of the arrays the second-order bodies
     take; of their results. */
  const char **dirp, **hvp;
  const char *arr_dir, *arr_hv, *tangentp, *hessp, *jacp;
  bool matrix_out;    /* the output is not a scalar */
  const char *variant; /* the suffix of the body being printed: "", or "_v1" for
                          variant 1 of those abi_dispatch chooses among */
  /* The precision, spelled in C: the type, and the suffix of a floating
     literal (2.0f), of a libm function (expf) and of a runtime kernel
     (mdrt_gemm_f). */
  const char *real, *lit, *libm, *kern;
  const char *zero, *one;     /* 0.0 and 1.0 at that precision */
  NameSet fixed;      /* C names of functions and parameters */
  NameSet temps;      /* C names of the body being printed */
  const char **luname; /* by factorisation: the C name of its buffer */
  bool *lu_done;      /* by factorisation: printed already */
  bool sealed;        /* the fixed names are all taken */
  bool oom;           /* memory ran out: the text is not whole */
} Emit;

/* ---- abi.c ------------------------------------------------------------- */

/* Claim the names of the functions, sizes and parameters. A function name
   C or the runtime has, or no memory, and it returns false with the reason
   reported; or a name is "" and e->oom is set. */
bool abi_setup(Emit *e, Ctx *c, const EmitOpts *o, Buf *out);
/* Name the temporaries of the body E->p. */
void abi_name_temps(Emit *e);
void abi_header(Emit *e);
void abi_workspace_size(Emit *e, const char *const *value, int nv, const char *const *grads,
                        int ng);
void abi_dispatch(Emit *e, bool grads, int n, const char *const *cost);
void abi_jit_entries(Emit *e);
/* The function that computes the body E->p, up to the opening of its
   body: with a cast to void of each parameter the body does not read. */
void abi_open(Emit *e);
/* The public functions around it. */
void abi_wrappers(Emit *e, bool grads);
/* A C name for WANT that clashes with no other (see claim). */
const char *abi_claim(Emit *e, const char *want);

/* ---- emit_c.c, for emit_second.c --------------------------------------- */

/* The declarations of the body E->p's temporaries and the code that
   computes them, under their guards. */
void emit_temps(Emit *e);
/* Write the matrix N into DST at DEPTH (or add it in, with ACCUMULATE). */
void emit_matrix(Emit *e, int depth, const char *dst, Node *n, bool accumulate);
/* Element 0 of scalar N as C. */
const char *emit_scalar(Emit *e, Node *n);
/* A comment at DEPTH: LHS = the formula of N. */
void emit_comment(Emit *e, int depth, const char *lhs, Node *n);
/* The workspace body P needs, in doubles, as C. */
const char *emit_workspace(Emit *e, const Plan *p);
/* rows*cols of S as C. */
const char *emit_len(Emit *e, Shape s);

/* ---- cost.c ------------------------------------------------------------ */

/* The operations body P does at sizes DIMS. */
double cost_plan(Ctx *c, const Plan *p, const long *dims);
/* ... as C, a polynomial in the sizes' C names (a double). */
const char *cost_plan_c(Emit *e, const Plan *p);

/* ---- emit_second.c ------------------------------------------------------ */

/* Derive what the second-order functions compute (second.c) and plan
   their bodies, before the emitter names the nodes; false with the reason
   reported. */
bool emit_second_prepare(Ctx *c);
/* The second-order functions, after the first-order ones; false with the
   reason reported. */
bool emit_second(Emit *e);
/* The paragraph of the file's header comment that says what they are. */
void emit_second_header(Emit *e);
/* Does the Hessian (HESSIAN) or the Jacobian come from a matrix formula of
   its own (one wrt variable, a scalar or a vector: PLAN_HESSIAN or
   PLAN_JACOBIAN), rather than one HVP or JVP per unit direction? After
   emit_second_prepare. */
bool emit_second_formula(const Ctx *c, bool hessian);

#endif
