/*
 * gen.h - random well-shaped matdiff programs, Csmith-style, for
 * tests/test_random.c: a generator, a printer, a reference interpreter and
 * a shrinker, all over one small typed tree.
 *
 * gen_program(p, seed) builds the same program for the same 64-bit seed,
 * always: declarations with symbolic and literal sizes, a wrt subset
 * sometimes, named intermediates, and an output of any shape, with every
 * operator and function of docs/LANGUAGE.md. It is type-directed: gen_any
 * builds an expression of a requested shape by choosing operations whose
 * shape rules produce it.
 *
 * Values stay in the domain of every function by construction, and that is
 * checked, not hoped for: each node carries an interval that holds for
 * every element at every input in [-1, 1] and every size from 1 to
 * GEN_MAX_SIZE, and gen_valid() holds a program to the domain rules (log of
 * at least 0.2, arcsin of at most 0.9, inv of a well-conditioned matrix,
 * ...). The shrinker keeps only candidates that pass it, so shrinking never
 * walks out of the domain into a spurious failure.
 */
#ifndef MD_TEST_GEN_H
#define MD_TEST_GEN_H

#include <stdbool.h>
#include <stdint.h>

/* Symbolic sizes are bound to 1..GEN_MAX_SIZE when a program is called. */
#define GEN_MAX_SIZE 5
#define GEN_MAX_DIMS 4
#define GEN_MAX_INPUTS 16
#define GEN_MAX_LETS 6
#define GEN_NAME 16

/* A size: a literal (sym < 0) or the symbolic size dimname[sym]. */
typedef struct GDim {
  int sym;
  long n;
} GDim;

typedef enum GKind {
  G_NUM,      /* num >= 0 (a negative number is G_NEG of one) */
  G_VAR,      /* k = input */
  G_LET,      /* k = intermediate */
  G_SIZE,     /* k = symbolic size, as a scalar */
  G_ZEROS,    /* zeros(r, c), zeros(r) */
  G_ONES,     /* ones(r, c), ones(r) */
  G_EYE,      /* eye(r) */
  G_NEG,      /* -a */
  G_TRANS,    /* a' */
  G_FUNC,     /* k = GF_*: exp(a), ... */
  G_SUM,      /* k = 0, 1, 2: sum(a), sum(a, k) */
  G_MEAN,     /* k as for sum */
  G_LSE,      /* k = 0, 1, 2: logsumexp(a), logsumexp(a, k) */
  G_SOFTMAX,  /* k = 0, 1, 2: softmax(a), softmax(a, k) */
  G_NORM,     /* k = spelling: ||a||, ||a||_F, norm2(a), ||a||_2 */
  G_NORMSQ,   /* k = spelling: ||a||^2, ||a||_F^2, norm2(a)^2, ||a||.^2 */
  G_NORM1,    /* k = spelling: ||a||_1, norm1(a) */
  G_TR,       /* tr(a) */
  G_DET,      /* det(a) */
  G_LOGDET,   /* logdet(a) */
  G_INV,      /* inv(a) */
  G_DIAGM,    /* diag(v): a column to a diagonal matrix */
  G_DIAGV,    /* diag(A): a square matrix's diagonal */
  G_MPOW,     /* a^k, a square matrix, k a whole literal */
  G_ADD,      /* a + b, broadcasting */
  G_SUB,      /* a - b */
  G_MUL,      /* a*b: a matrix product, or scaling by a scalar */
  G_DIV,      /* a/b, b a scalar */
  G_EMUL,     /* a .* b */
  G_EDIV,     /* a ./ b */
  G_POW,      /* a^b, scalars */
  G_EPOW,     /* a .^ b */
  G_DOT,      /* dot(a, b) */
  G_KINDS
} GKind;

typedef enum GFunc {
  GF_EXP, GF_LOG, GF_SQRT, GF_SIN, GF_COS, GF_TAN, GF_TANH, GF_SIGMOID, GF_RELU,
  GF_SOFTPLUS, GF_ABS, GF_SIGN, GF_ASIN, GF_ACOS, GF_ATAN, GF_COUNT
} GFunc;

typedef struct GNode {
  GKind kind;
  int kid[2];        /* operands, indices into GProg.node; -1 past the arity */
  int k;             /* see GKind */
  double num;        /* G_NUM */
  GDim r, c;         /* the shape */
  unsigned style;    /* printing variants: parentheses, spacing, number forms */
  double lo, hi;     /* every element lies in [lo, hi] (gen_valid computes them) */
} GNode;

typedef struct GInput {
  char name[GEN_NAME];
  GDim r, c;
  int type;          /* 0 scalar, 1 vector(r), 2 matrix(r, c) */
  bool wrt;
} GInput;

typedef struct GLet {
  char name[GEN_NAME];
  int root;
} GLet;

typedef struct GProg {
  uint64_t seed;
  int ndims;
  char dimname[GEN_MAX_DIMS][GEN_NAME];
  int ninputs;
  GInput in[GEN_MAX_INPUTS];
  int nlets;
  GLet let[GEN_MAX_LETS];  /* the last one is the output */
  bool use_wrt;      /* print wrt lines (else every input is a target) */
  bool plain;        /* print without the random variants (the shrinker's last step) */
  unsigned style;    /* statement separators, comments, continuations */
  int nnodes, cap;
  GNode *node;
} GProg;

/* The program of SEED. Free with gen_free. */
void gen_program(GProg *p, uint64_t seed);
void gen_free(GProg *p);
void gen_copy(GProg *dst, const GProg *src);
/* The .expr source, malloc'd. */
char *gen_source(const GProg *p);
/* Computes every node's interval and checks the domain rules; false with a
   reason in WHY (if not NULL) when the program could leave the domain. */
bool gen_valid(GProg *p, const char **why);
/* Reachable nodes, intermediates, inputs and wrt names: what shrinking lowers. */
int gen_size(const GProg *p);

/* The reference interpreter: the output's value at DIMS (one per
   p->dimname) and INPUTS (one row-major buffer per p->in), computed from the
   tree with plain loops, independently of matdiff. OUT gets rows*cols
   doubles (malloc'd). 0, or -1 if a matrix is singular. */
int gen_eval(const GProg *p, const long *dims, const double *const *inputs, double **out,
             long *rows, long *cols);

/* Shrink P in place: keep replacing subtrees by smaller well-shaped,
   in-domain ones (an input or a constant of the same shape, or one of their
   own descendants), dropping intermediates, inputs and wrt names, while
   STILL_FAILS says the failure persists. At most MAX_TRIES calls. Returns
   the number of calls made. */
int gen_shrink(GProg *p, bool (*still_fails)(const GProg *, void *), void *arg, int max_tries);

/* A hash of a seed and a tag: the seed of the test's data, as an Rng of
   util.h, so that a program and its shrunk forms see the same numbers. */
uint64_t gen_hash(uint64_t seed, const char *tag);

#endif
