/*
 * md.h - the compiler's internal header: the data structures every stage
 * shares and, file by file, the functions each stage exports.
 *
 * The pipeline (see md_compile in api.c and main in cli.c):
 *   expr.c            a one-line expression -> the source of its program
 *   parser.y/lexer.l  source text -> statements holding expression trees
 *   lower.c           trees -> hash-consed DAG (ast.c), shapes checked (shape.c),
 *                     undeclared sizes inferred (infer.c)
 *   diff.c            DAG -> one adjoint DAG per wrt variable (reverse mode);
 *                     tangents (forward mode)
 *   second.c          tangents of the output and the gradients: JVPs, HVPs,
 *                     Hessians and Jacobians as matrices
 *   simplify.c        rewrite rules to a fixpoint
 *   chain.c           the DAG the emitter sees, rewritten for cost
 *   print.c           DAG -> text in the input language
 *   dump.c            the state between stages as text (matdiff diff --dump)
 *   plan.c            how each node of the value and the gradients becomes C
 *   emit_c.c          the plans -> C source (abi.c: names, the functions around them)
 *   cost.c            the plans -> operation counts
 *   jit.c             C source -> machine code with libtcc
 *
 * Memory: everything a compilation makes lives in one Arena and is freed
 * with it in one call. Long-lived results (md_function) own plain mallocs.
 */
#ifndef MD_H
#define MD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include "diag.h"
#include "matdiff.h"

/* ---- arena.c ----------------------------------------------------------- */

typedef struct Chunk Chunk;
typedef struct Arena {
  Chunk *head;
} Arena;

void *arena_alloc(Arena *a, size_t n);          /* zeroed; aborts never: NULL on OOM */
char *arena_strdup(Arena *a, const char *s);
char *arena_strndup(Arena *a, const char *s, size_t n);
char *arena_printf(Arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* ARR (N elements of SIZE, room for *CAP) with room for one more: ARR
   itself, or a copy twice as large (NULL on OOM). Growing by doubling
   keeps appending N elements O(N) in time and memory. */
void *arena_grow(Arena *a, void *arr, int n, int *cap, size_t size);
void arena_free(Arena *a);

/* A map from names (not copied: they must outlive it) to numbers, open
   hashing in the arena. */
typedef struct Names {
  struct NameSlot {
    const char *key;
    int value;
  } *slot;
  size_t cap, n;     /* cap: a power of two */
} Names;
int names_get(const Names *m, const char *key);      /* -1 if absent */
bool names_put(Arena *a, Names *m, const char *key, int value); /* add or replace */

/* A growable string, allocated with malloc. */
typedef struct Buf {
  char *s;
  size_t len, cap;
  bool oom;          /* an allocation failed; the text is truncated */
  size_t limit;      /* printers stop past this length (0: no limit) */
  const struct Node *top; /* what a printer prints: spelled out even if named */
  int depth;         /* the printer's nesting, bounded by MD_MAX_PRINT_DEPTH */
} Buf;
void buf_printf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_puts(Buf *b, const char *s);
void buf_free(Buf *b);

/* ---- shapes ------------------------------------------------------------ */

/* A size: a literal (sym < 0, n >= 1) or a symbolic size (sym = index into
   Ctx.dims). */
typedef struct Dim {
  int sym;
  long n;
} Dim;

typedef struct Shape {
  Dim r, c;
} Shape;

/* The algebra of sizes, which every stage reads. */
static inline bool dim_eq(Dim a, Dim b) { return a.sym == b.sym && (a.sym >= 0 || a.n == b.n); }
static inline bool shape_eq(Shape a, Shape b) { return dim_eq(a.r, b.r) && dim_eq(a.c, b.c); }
static inline Dim dim_lit(long n) { return (Dim){.sym = -1, .n = n}; }  /* a literal size */
static inline Shape shape_scalar(void) { return (Shape){dim_lit(1), dim_lit(1)}; }
static inline bool shape_is_scalar(Shape s) { return dim_eq(s.r, dim_lit(1)) && dim_eq(s.c, dim_lit(1)); }
static inline bool shape_is_square(Shape s) { return dim_eq(s.r, s.c); }
static inline bool shape_is_column(Shape s) { return dim_eq(s.c, dim_lit(1)); }  /* n x 1 */
static inline bool shape_is_row(Shape s) { return dim_eq(s.r, dim_lit(1)); }     /* 1 x m */

/* ---- operations -------------------------------------------------------- */

enum { PREC_ADD = 1, PREC_MUL, PREC_UNARY, PREC_POW, PREC_POST, PREC_ATOM };

/* Shape classes: the kind of shape rule an op has (shape.c). */
typedef enum OpClass {
  SC_LEAF,     /* no operands: a number, an input, a size, the seed, a fill */
  SC_MAP,      /* f(A) elementwise: A's shape, with no rule of its own */
  SC_ZIP,      /* A op B elementwise, a scalar, row or column broadcasting */
  SC_PRODUCT,  /* the matrix product, or scaling by a scalar */
  SC_SCALAR,   /* an operand must be a scalar: A/s, a^p */
  SC_REDUCE,   /* over all elements or along a dimension: sum, norms, logsumexp, softmax */
  SC_LINALG,   /* square matrices: tr, det, logdet, inv */
  SC_INDEX,    /* an index map: transpose, diag */
} OpClass;

/* Op flags. */
enum {
  OPF_LEAF = 1,     /* no operands */
  OPF_FILL = 2,     /* a constant of the node's shape, made by ast_fill */
  OPF_AXIS = 4,     /* Node.k is the dimension it works along: sum(A, 2) */
  OPF_INVERTS = 8,  /* factors its square operand (LU), singular at some inputs:
                       inputs are best made well conditioned */
  OPF_KERNEL = 16,  /* an elementwise function whose C function is a runtime
                       kernel (runtime/kernels.def), not libm's */
};

/* Where an operand lies for an op to be smooth there (ops.h's dom columns). */
typedef enum Domain {
  DOM_ANY,     /* anywhere */
  DOM_POS,     /* x > 0: log, sqrt, the base of a power */
  DOM_UNIT,    /* |x| < 1: arcsin, arccos */
  DOM_AWAY,    /* away from 0: a kink (relu, abs, sign) or a divisor */
} Domain;

typedef enum Op {
#define OP(name, ...) OP_##name,
#include "ops.h"
  OP_COUNT
} Op;

/* ---- optab.c: the columns of ops.h, and what they generate ------------- */

extern const char *const op_spelling[OP_COUNT];
extern const int op_arity[OP_COUNT];
extern const int op_prec[OP_COUNT];
extern const OpClass op_class[OP_COUNT];
extern const unsigned op_flags[OP_COUNT];
extern const char *const op_latex[OP_COUNT];   /* NULL: \operatorname{spelling} */
extern const char *const op_cfunc[OP_COUNT];   /* elementwise functions: the C function */
extern const char *const op_cfunc_f[OP_COUNT]; /* ... and its single-precision twin */
extern const Domain op_domain[OP_COUNT][2];    /* of each operand */
extern const char *const op_numpy[OP_COUNT];   /* its NumPy template (ops.h), NULL for a named leaf */

static inline bool op_is_leaf(Op op) { return op_flags[op] & OPF_LEAF; }
static inline bool op_is_fill(Op op) { return op_flags[op] & OPF_FILL; }

/* The libm functions emitted code may call: the C functions of ops.h's
   elementwise functions and the MDRT_LIBM lines of runtime/kernels.def. */
/* Does S[0..N) name one, by its double name (its float twin is that and
   "f"), or with FLT also by its float name? A user's variable takes
   neither: the code it is a name in calls them. */
bool optab_is_libm(const char *s, size_t n, bool flt);
/* The prototypes of those the emitter writes, for the JIT, which compiles
   with no <math.h>. */
extern const char optab_libm_prototypes[];

/* ---- the hash-consed DAG (ast.c) --------------------------------------- */

/* Nodes are built only through ast_* functions, which intern them: two
   equal nodes are the same pointer. */
typedef struct Node Node;
struct Node {
  Op op;
  Node *a, *b;       /* operands, NULL past the arity */
  double num;        /* OP_NUM: the value */
  long k;            /* OP_VAR: variable index; OP_DIM: size index; an op
                        with OPF_AXIS: the dimension (0 for all) */
  Shape shape;
  int id;            /* creation order, so operands always have smaller ids */
  int depth;         /* of the DAG below, this node included */
  Node *next;        /* hash chain */
};

/* ---- the parse tree (parser.y) ----------------------------------------- */

typedef enum ExprKind {
  EX_NUM,    /* num */
  EX_NAME,   /* name */
  EX_CALL,   /* name(args...) */
  EX_NORM,   /* ||a||, with sub = 0 (none), 'F', '2' or '1' */
  EX_NEG,    /* -a */
  EX_TRANS,  /* a' */
  EX_BINARY, /* a op b, op one of + - * / .* ./ ^ .^ */
} ExprKind;

typedef struct Expr Expr;
struct Expr {
  ExprKind kind;
  Op op;             /* EX_BINARY */
  Loc loc;           /* the operator, name or number; the whole call for EX_CALL */
  Expr *a, *b;
  Expr **args;       /* EX_CALL */
  int nargs;
  char *name;
  double num;
  int sub;           /* EX_NORM */
  int depth;         /* of the tree below, this node included */
  Expr *next, *last; /* argument lists while parsing */
};

typedef enum StmtKind { ST_DECL, ST_WRT, ST_ASSIGN } StmtKind;

typedef struct DimSpec {
  char *name;        /* NULL for a literal */
  long n;
  Loc loc;
} DimSpec;

typedef struct Stmt Stmt;
struct Stmt {
  StmtKind kind;
  Loc loc;           /* the name (DECL, ASSIGN) or the keyword (WRT) */
  char *name;        /* DECL, ASSIGN */
  char *type;        /* DECL: scalar, vector, matrix, symmetric or posdef */
  Loc typeloc;
  DimSpec dims[2];
  int ndims;
  char **names;      /* WRT */
  Loc *nameloc;
  int nnames, namecap;
  Expr *expr;        /* ASSIGN */
  Stmt *next;
};

/* ---- a compilation ----------------------------------------------------- */

/* Limits, each reported as an error at its place rather than met as a crash:
   every stage after the parser recurses over expressions. */
#define MD_MAX_SOURCE (1 << 26)  /* bytes of source: 64 MiB */
#define MD_MAX_DEPTH 10000       /* nesting of one expression */
#define MD_MAX_EXPRS 1000000     /* operations in one source */
#define MD_MAX_NODE_DEPTH 100000   /* of any DAG node, the simplifier's too */
#define MD_MAX_PRINT (1 << 20)   /* bytes of one printed formula, then "..." */
#define MD_MAX_PRINT_DEPTH 1000  /* nesting of one printed formula, then "..." */

typedef struct Var {
  char *name;
  Shape shape;
  bool vector;       /* declared vector(...), so printed and read as one */
  bool symmetric;    /* declared symmetric(n) or posdef(n): S' = S, and its
                        gradient is the symmetric one, (G + G')/2 */
  bool posdef;       /* declared posdef(n): symmetric positive definite,
                        factorised by Cholesky */
  bool wrt;
  Node *node;
  Loc loc;
} Var;

typedef struct Let {
  char *name;
  Node *node;
} Let;

/* Why the last ast_* call that returned NULL did. */
typedef enum AstFail {
  AST_NOMEM = 1,     /* the arena could not grow */
  AST_SHAPE,         /* ast_opk's operands do not fit the op: Ctx.astmsg says how */
} AstFail;

typedef struct Ctx {
  Arena arena;
  const char *file, *src;
  long len;
  md_error *err;
  bool failed;
  AstFail astfail;
  char astmsg[256];

  Node **table;      /* intern table, open hashing */
  int tabsize, nnodes;
  Node **nodes;      /* by id: every node made so far (ast.c keeps it) */
  int nodecap;

  Var *vars;
  int nvars, varcap;
  char **dims;       /* symbolic size names, order of first appearance */
  int ndims, dimcap;
  Let *lets;         /* named intermediates and the output */
  int nlets, letcap;
  Names varidx, dimidx, letidx; /* name -> index into vars, dims, lets */
  const char **letnames; /* by node id: the name an assignment gave it */
  int nletnames;
  const char *seedname;  /* how the printers write the seed (print_seed_name) */

  Stmt *stmts, *last_stmt;
  int lexpos;        /* the scanner's byte offset */
  int start_token;   /* when not 0, the scanner's first token */
  int nexprs;        /* parse-tree nodes made so far */
  char *outname;
  Node *out;
  Node **grads;      /* per variable: simplified d(out)/d(var), NULL if not wrt */
  char **dirnames;   /* per variable: the name its direction (OP_DIR) prints as;
                        NULL until forward mode names them (diff.c) */
  Node *jvp;         /* second.c, each NULL until asked for: the output's tangent */
  Node **hvps;       /* per variable: its gradient's tangent, NULL if not wrt */
  Node **hess;       /* nvars x nvars: Hessian blocks as matrices, or NULL */
  Node **jacs;       /* per variable: the Jacobian as a matrix, or NULL */

  bool implicit;     /* a one-line expression: its variables undeclared, typed by their first letter */
  struct Infer *infer; /* sizes being inferred (infer.c); NULL while there are none */
  struct Plan *plan[2]; /* the emitter's plan of the value and of the gradients,
                           made once when first asked for (plan.c) */
  struct Plan *plan2[4]; /* ... and of the second-order bodies (emit.h's
                            PLAN_JVP ...), made the same way */
  struct Plan **variants[6]; /* by emit.h's PlanKind: the body's plan and
                                its variants, made when first asked for */
  int nvariants[6];
} Ctx;

void ctx_init(Ctx *c, const char *src, long len, const char *file, md_error *err);
void ctx_free(Ctx *c);
bool ctx_error(Ctx *c, Loc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Append the symbolic size NAME (not copied) to c->dims: its index, or -1
   on allocation failure. Lowering makes the declared sizes, infer.c the
   inferred ones. */
int ctx_new_dim(Ctx *c, char *name);

/* ---- parser.y ---------------------------------------------------------- */

/* Parse the whole source into c->stmts. false with the error reported.
   With c->implicit, the source is one expression, and c->stmts one
   assignment to a NULL name, which the caller fills in. */
bool parse_program(Ctx *c);
Expr *expr_new(Ctx *c, ExprKind kind, Loc loc);

/* ---- ast.c ------------------------------------------------------------- */

Node *ast_num(Ctx *c, double v);
Node *ast_var(Ctx *c, int index);
Node *ast_fill(Ctx *c, Op op, Shape s);               /* an op with OPF_FILL */
Node *ast_dim(Ctx *c, Dim d);                         /* a size as a scalar */
Node *ast_seed(Ctx *c, Shape s);                      /* G, the adjoint of the output */
Node *ast_dir(Ctx *c, int index);                     /* dx, the direction of variable INDEX */
/* Any operation on well-shaped operands (the caller has checked with
   shape_check); NULL if they are not, or if A or B is NULL, or without
   memory: c->astfail says which. K is the op's integer attribute (an op
   with OPF_AXIS: the dimension). Every ast_* function returns NULL only
   for want of memory otherwise. */
Node *ast_op(Ctx *c, Op op, Node *a, Node *b);
Node *ast_opk(Ctx *c, Op op, Node *a, Node *b, long k);
/* For the linear maps of forward mode and second order, where NULL stands
   for zero: NULL if A, or B of a binary op, is NULL (the product with a
   zero); else ast_op, setting *FAILED when that fails. */
Node *ast_op_nz(Ctx *c, Op op, Node *a, Node *b, bool *failed);
/* Report at LOC why the last ast_* call returned NULL: "out of memory", or
   for ill-shaped operands, an internal error in WHAT (it built them) with
   the shape rule's message. Returns false. */
bool ast_error(Ctx *c, Loc loc, const char *what);
bool ast_is_num(const Node *n, double v);
/* Mark in SEEN (indexed by node id, at least ROOT->id + 1 long) ROOT and
   every node it depends on. Operands have smaller ids than their users, so
   this is one downward sweep. */
void ast_mark(Ctx *c, const Node *root, char *seen);

/* ---- shape.c ----------------------------------------------------------- */

char *shape_str(Ctx *c, Shape s);                    /* "(n×k)" or "scalar" */
char *dim_str(Ctx *c, Dim d);
/* The result shape of OP on A and B, or NULL and an error message in MSG. */
bool shape_check(Ctx *c, Op op, Shape a, Shape b, long k, Shape *out, char *msg, size_t n);

/* ---- lower.c ----------------------------------------------------------- */

/* Statements -> DAG: declarations, wrt, assignments, with every size
   checked. Sets c->vars, c->dims, c->lets, c->out. */
bool lower_program(Ctx *c);


/* ---- infer.c ----------------------------------------------------------- */

/* A free size for a constant WHAT ("vector", "matrix", "eye"; AXIS 0 its
   rows, 1 its columns, 2 its only size) or for a variable (WHAT NULL) made
   at LOC: into *OUT, the size as lowering sees it this round. */
bool infer_fresh(Ctx *c, Loc loc, const char *what, int axis, Dim *out);
/* S with every size read through the sizes equated so far. */
Shape infer_shape(Ctx *c, Shape s);
/* Equate the free sizes that OP needs equal to fit A and B (any fit needs
   them equal: these calls change nothing when OP fits already). true if
   all are equal now and some were not; a pair that cannot be equated stops
   it. infer_same: make A and B one shape. */
bool infer_fit(Ctx *c, Op op, Shape a, Shape b);
bool infer_same(Ctx *c, Shape a, Shape b);
/* After a round of lowering: true if it equated sizes, and then ready for
   the next round, which must start from scratch. */
bool infer_round(Ctx *c);
/* After the last round: an error at any constant whose size is still free. */
bool infer_finish(Ctx *c);
/* A name the source does not spell: FIRST[*COUNTER] while there are
   such, then STEM1, STEM2, ...; *COUNTER moves past it. */
char *infer_name(Ctx *c, const char *const *first, int nfirst, const char *stem, int *counter);

/* ---- diff.c ------------------------------------------------------------ */

/* Reverse mode: fills c->grads[i] for every wrt variable, with SEED the
   adjoint of the output (ast_num(1) for a scalar output). */
void diff_program(Ctx *c, Node *seed);
/* Forward mode: the tangents of the N nodes ROOTS (NULL entries skipped)
   into OUT, along the directions (ast_dir) of every wrt variable (ONLY < 0)
   or of variable ONLY alone: each root's directional derivative, a DAG in
   the roots' operands and the directions, linear in the directions. A zero
   tangent is a fill of zeros. false with the error reported. */
bool diff_tangents(Ctx *c, Node *const *roots, int n, int only, Node **out);
/* Name every variable's direction in c->dirnames (once): dx, or dx_1, dx_2,
   ... when the program has that name. false with the error reported. */
bool diff_name_directions(Ctx *c);

/* ---- second.c ---------------------------------------------------------- */

/* Second order and Jacobians, each on demand after the front half
   (md_front), simplified. false with the error reported.
   second_jvp       c->jvp: the output's tangent along every wrt direction;
   second_hvp       c->hvps[i]: gradient i's tangent along every direction,
                    H*v block row i (forward over reverse);
   second_hessian   c->hess[i*nvars + j]: d2(out)/dxi dxj as a matrix, for
                    wrt variables that are scalars or vectors (vec layout);
                    NULL where it is not one (a matrix variable) or where
                    the rules find none;
   second_jacobian  c->jacs[j]: d(out)/dxj as a matrix (vec layout), for a
                    scalar or vector output and variable; else NULL. */
bool second_jvp(Ctx *c);
bool second_hvp(Ctx *c);
bool second_hessian(Ctx *c);
bool second_jacobian(Ctx *c);

/* ---- simplify.c -------------------------------------------------------- */

/* Simplify every gradient in c->grads. */
void simp_program(Ctx *c);
/* N simplified, or NULL for want of memory: any expression of C's DAG
   (a Hessian, a tangent), by the rules simp_program uses. */
Node *simp_expr(Ctx *c, Node *n);

/* Is N known to be symmetric, N' = N: a scalar, a variable declared
   symmetric(n) or posdef(n), eye, diag(v), A*A', P*S*P', inv(S), f(S), sums
   and elementwise products of such, ...? And positive definite: a posdef
   variable, eye, inv(P), P', sums of them, a positive multiple? Both look
   a bounded number of nodes deep: false means "not known". */
bool simp_symmetric(const Ctx *c, const Node *n);
bool simp_posdef(const Ctx *c, const Node *n);
/* Is every element of N known to be >= 0 (or NaN) whatever the inputs:
   exp, sigmoid, sqrt, a square x.*x, 1 - sigmoid(z), and sums, products
   and quotients of such? A bounded look, as above. */
bool simp_nonneg(const Ctx *c, const Node *n);

/* ---- api.c ------------------------------------------------------------- */

/* The front half of the pipeline as a table of stages, in order, ended by
   a NULL name: parse, dag (lowering), adjoint (reverse mode), simplified,
   plan (how the emitter computes each body, plan.c).
   Each runs on the state the one before left (false with the error
   reported) and has a printer of the state it leaves, which
   `matdiff diff --dump=STAGE,...` shows. A stage is one line here. */
typedef struct Stage {
  const char *name;
  bool (*run)(Ctx *c);
  void (*dump)(Ctx *c, Buf *b);
} Stage;
extern const Stage md_stages[];

/* Every stage of md_stages. md_compile runs it before emitting C; the
   CLI's diff, graph and compile run it alone. */
bool md_front(Ctx *c);

/* ---- dump.c ------------------------------------------------------------ */

void dump_parse(Ctx *c, Buf *b);   /* the statements, as s-expressions */
void dump_dag(Ctx *c, Buf *b);     /* the value's DAG, one node a line */
void dump_grads(Ctx *c, Buf *b);   /* the gradients' DAG, the same way */
void dump_plan(Ctx *c, Buf *b);    /* each body's plan, one needed node a line */

/* ---- print.c ----------------------------------------------------------- */

char *print_str(Ctx *c, const Node *n);              /* arena string */
char *print_short(Ctx *c, const Node *n, size_t limit); /* at most about LIMIT bytes, then "..." */
char *print_num(char *buf, size_t n, double v);      /* shortest round-trip text */
void print_latex(Ctx *c, Buf *b, const Node *n);     /* the same, as LaTeX */
void latex_name(Buf *b, const char *name);           /* lambda -> \lambda, W1 -> W_{1} */
/* The name the seed prints as: G, unless the program has a name that
   prints as G (as text or as LaTeX); then d and the output's name (dY),
   unless that is taken too; then the first free of G1, G2, ... */
const char *print_seed_name(Ctx *c);
/* The name an assignment gave N (the first), NULL for none or the output:
   the printers write it in N's place, emit_numpy.c names N's value so. */
const char *print_let_name(Ctx *c, const Node *n);

/* ---- chain.c ----------------------------------------------------------- */

/* Rewrite the N ROOTS (NULL entries skipped) in place for cost, as the
   emitter computes them: product chains grouped by cost, structured
   matrices never dense, only what is read of a product computed. The
   nodes the roots had are left as they were (the printed formulas use
   them). false without memory. */
bool chain_rewrite(Ctx *c, Node **roots, int n);
/* The same with the symbolic sizes counted as AT says (by size index), or
   with AT NULL each as the same large number, CHAIN_SIZE; with VARY (by
   size index, all false) each size of a chain whose grouping depends on
   its sizes is set true: another grouping wins at a corner of them (each
   small or large). */
#define CHAIN_SIZE 1e4
bool chain_rewrite_at(Ctx *c, Node **roots, int n, const double *at, bool *vary);

/* ---- graph.c ----------------------------------------------------------- */

/* The DAG as Graphviz dot: the value's nodes, and with GRADS the adjoint
   DAG of every gradient too; a shared node is drawn once. */
void graph_dot(Ctx *c, Buf *b, bool grads);

/* ---- emit_c.c ---------------------------------------------------------- */

typedef struct EmitOpts {
  const char *name;  /* function name prefix P */
  bool jit;          /* prepend no #include; add array-form entry points */
  bool standalone;   /* the runtime's kernels inlined: needs only libm */
  bool flt;          /* single precision (not with jit: md_eval passes doubles) */
  bool second;       /* also P_jvp, P_hvp, P_hessian, P_jacobian (emit_second.c) */
} EmitOpts;

extern const char md_rt_standalone[];  /* runtime/standalone.c, built in */
/* The whole C file for the compilation; false with the reason reported
   (ctx_error) when it cannot be written. */
bool emit_c(Ctx *c, const EmitOpts *o, Buf *out);

/* ---- emit_numpy.c ------------------------------------------------------ */

/* The NumPy module for the compilation: NAME(inputs), NAME_grad(inputs)
   and, for an output that is not a scalar, NAME_vjp(G, inputs); with
   SECOND also NAME_jvp, and NAME_hvp and NAME_hessian (a scalar output) or
   NAME_jacobian (any other), as emit_c's second order; from the plans
   emit_c prints; false with the reason reported. */
bool emit_numpy(Ctx *c, const char *name, bool second, Buf *out);

/* ---- cost.c ------------------------------------------------------------ */

/* The arithmetic operations the emitted value (GRADS false) or value and
   gradients (GRADS true) perform at the sizes DIMS; -1 on failure. */
double emit_flops(Ctx *c, bool grads, const long *dims);
/* The same for one second-order body: the JVP (ORDER2_JVP) or the HVP of
   a scalar output (ORDER2_HVP) along every direction; -1 on failure. */
enum { ORDER2_JVP, ORDER2_HVP };
double emit_flops_second(Ctx *c, int what, const long *dims);

/* ---- record.c ---------------------------------------------------------- */

struct mdrt_tape;
/* Record the primal DAG on a runtime tape with one leaf per variable.
   Returns the output's handle, or -1 with the tape's error. LEAVES gets the
   leaf handle of each variable. */
int record_on_tape(Ctx *c, struct mdrt_tape *t, const long *dims, const double *const *inputs,
                int *leaves);
/* The same for every node the NROOTS ROOTS need (the output, gradients), in
   the order of their ids, in which operands come first: H (one more entry
   than the largest root id) gets each recorded node's handle, -1 for the
   others. A gradient's OP_SEED is SEED, or ones if NULL. 0, or -1 with the
   tape's error (or out of memory). */
int record_nodes(Ctx *c, struct mdrt_tape *t, const long *dims, const double *const *inputs,
                 Node *const *roots, int nroots, const double *seed, int *leaves, int *h);
/* Record ROOT, and whatever it depends on that H does not hold yet, on T:
   H, indexed by node id (ROOT->id + 1 long), holds a handle or -1, and the
   caller gives the inputs and the seed theirs. Returns ROOT's handle, or
   -1 (the tape's error, or an input or seed without one). */
int record_dag(Ctx *c, struct mdrt_tape *t, const Node *root, const long *dims, int *h);

/* ---- dims -------------------------------------------------------------- */

long dim_value(Dim d, const long *dims);

/* Every product and sum of sizes (rows*cols, elements*sizeof(double), a
   workspace's total) goes through these: A*B and A+B, or -1 when an operand
   is negative or the result does not fit a long. A chain such as
   size_mul(size_mul(r, c), sizeof(double)) is -1 if any step is. */
static inline long size_mul(long a, long b) {
  long p;
  return a < 0 || b < 0 || __builtin_mul_overflow(a, b, &p) ? -1 : p;
}
static inline long size_add(long a, long b) {
  long s;
  return a < 0 || b < 0 || __builtin_add_overflow(a, b, &s) ? -1 : s;
}

#endif
