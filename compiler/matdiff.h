/*
 * matdiff.h - the public C API of matdiff: compile a matrix-calculus
 * expression in process (parse, differentiate, emit C, libtcc), call the
 * value and gradient functions it yields, and check those gradients against
 * the runtime's tape and finite differences (md_check), as `matdiff check`
 * does.
 *
 * Every call reports failure through an md_error and never prints or exits.
 * An md_function is independent of every other one: several may live at
 * once and several threads may compile at once.
 *
 * Threads: calls are reentrant. Any number of threads may call one
 * md_function at once (md_eval, md_grad, md_vjp, md_tape_vjp, md_check,
 * md_flops and every query); only md_free must wait until no call is
 * running. Each call borrows a workspace from the function's pool and gives
 * it back, so concurrent calls never share one, and calls one after another
 * at the same sizes allocate nothing. The pool keeps as many workspaces as
 * calls ever ran at once, each as large as the sizes it last served.
 */
#ifndef MATDIFF_H
#define MATDIFF_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MATDIFF_VERSION "0.1.0"

typedef struct md_error {
  int line, col;          /* 1-based source position; 0 when not about the source */
  char message[512];      /* the message alone, e.g. "undeclared variable 'Q'" */
  char diag[1024];        /* the full diagnostic: file:line:col: error: message,
                             the source line and a caret (extension) */
} md_error;

typedef struct md_function md_function;

/* MATDIFF_VERSION of the library itself: a program, or a binding that loads
   the library at run time (the Python package does), can check it against
   the header it was written for. */
const char *md_version(void);

/* Parse, differentiate, emit and JIT-compile SOURCE. FILENAME is used only in
   diagnostics (NULL means "<input>"). Returns NULL with *ERR filled on error. */
md_function *md_compile(const char *source, const char *filename, md_error *err);
void md_free(md_function *f);

int md_num_inputs(const md_function *f);               /* declared variables, declaration order */
const char *md_input_name(const md_function *f, int i);
int md_num_dims(const md_function *f);                 /* symbolic sizes, order of first appearance */
const char *md_dim_name(const md_function *f, int i);

/* Extensions: shapes and differentiation targets. */
const char *md_output_name(const md_function *f);
long md_input_rows(const md_function *f, int i, const long *dims);  /* -1 if a dim is unbound */
long md_input_cols(const md_function *f, int i, const long *dims);
int md_input_is_wrt(const md_function *f, int i);     /* has a gradient */
const char *md_grad_formula(const md_function *f, int i); /* "2*(X*W + b)*W'", NULL if not wrt */
const char *md_c_source(const md_function *f);         /* the C that was JIT-compiled */
/* The same function as a Python module that needs only NumPy, as
   `matdiff compile --lang numpy` writes it, with its functions named f,
   f_grad and (for an output that is not a scalar) f_vjp, and the second
   order, f_jvp and f_hvp and f_hessian (a scalar output) or f_jacobian;
   made on the first call and kept with F. NULL with *ERR filled (out of
   memory, or the second order could not be derived). */
const char *md_numpy_source(md_function *f, md_error *err);
/* The arithmetic operations md_eval (GRAD 0) or md_grad (GRAD 1) performs at
   the sizes DIMS, as counted from the emitted code; -1 on error. GRAD
   MD_FLOPS_JVP counts md_jvp, MD_FLOPS_HVP md_hvp (a scalar output; -1
   otherwise), along every wrt input's direction. */
#define MD_FLOPS_JVP 2
#define MD_FLOPS_HVP 3
double md_flops(md_function *f, const long *dims, int grad);

long md_output_rows(const md_function *f, const long *dims);  /* -1 if a dim is unbound */
long md_output_cols(const md_function *f, const long *dims);

/* What a size is made of: input I's rows (AXIS 0) or columns (AXIS 1) are
   the symbolic size k = md_input_dim(f, i, axis) >= 0 (md_dim_name(f, k)),
   or -1 for a literal, which md_input_rows/cols give with DIMS NULL. -2 if I
   or AXIS is out of range. md_output_dim says the same of the output. */
int md_input_dim(const md_function *f, int i, int axis);
int md_output_dim(const md_function *f, int axis);
/* Declared vector(n): an n x 1 column that a file may hold as one row. */
int md_input_is_vector(const md_function *f, int i);
/* Declared symmetric(n) or posdef(n) (md_input_is_symmetric), or posdef(n)
   (md_input_is_posdef): an n x n matrix that every call requires to be
   symmetric, to MD_SYMMETRIC_TOL times its largest element, and whose
   gradient is the symmetric one, (G + G')/2 of the gradient G over all
   matrices (docs/LANGUAGE.md). A posdef input that is not positive
   definite fails where it is factorised (Cholesky), naming it. */
#define MD_SYMMETRIC_TOL 1e-12
int md_input_is_symmetric(const md_function *f, int i);
int md_input_is_posdef(const md_function *f, int i);
/* Is X (ROWS x COLS, row-major) data that input I takes? Every call checks
   this; a program that reads its inputs from files may check each as it
   is read, to say which file is wrong. 0, or -1 with *ERR saying why (a
   symmetric input's data is not square, or not symmetric, naming the
   first pair of elements that differ). */
int md_check_input(const md_function *f, int i, const double *x, long rows, long cols,
                   md_error *err);

/* The value of the output into OUT (one double for a scalar output, else
   rows*cols, row-major). DIMS holds one value per symbolic size, INPUTS one
   row-major buffer per declared variable (a scalar: a pointer to one
   double). 0 on success, -1 on error (a bad size, a singular matrix). */
int md_eval(md_function *f, const long *dims, const double *const *inputs, double *out,
            md_error *err);
/* The value into OUT (may be NULL) and the gradients: ADDS d(out)/d(input i)
   into grads[i], as PyTorch's .grad accumulates. NULL entries (and inputs
   not in wrt) are skipped, with the work only they need. For a non-scalar
   output this is the vector-Jacobian product with a seed of all ones. */
int md_grad(md_function *f, const long *dims, const double *const *inputs, double *out,
            double *const *grads, md_error *err);
/* The vector-Jacobian product: ADDS seed'*J into grads[i], where SEED has
   the output's shape (for a scalar output, one double scaling the gradient). */
int md_vjp(md_function *f, const long *dims, const double *const *inputs, const double *seed,
           double *out, double *const *grads, md_error *err);

/* ---- second order: formulas (second.c) ---- */

/* Second derivatives and Jacobians as formulas in the input language,
   derived when first asked for and kept with F; each parses again. The
   direction of input I, of its shape, is named md_direction_name(f, i):
   "dx" for x, or "dx_1", ... if the source has that name (NULL if I is not
   in wrt). NULL with *ERR filled when there is no such formula.
     md_jvp_formula      the output's tangent along the directions of every
                         wrt input: the Jacobian-vector product, "dy"
     md_hvp_formula      the tangent of input I's gradient along them: for a
                         scalar output, block row I of the Hessian times the
                         directions, "d(dy/dx)" (a matrix output's names G)
     md_hessian_formula  d2y/dxi dxj as a matrix, rows for input I's elements
                         and columns for J's, for a scalar output and inputs
                         that are scalars or vectors; "d2y/dxdb"
     md_jacobian_formula d(output)/d(input J) as a matrix, one row per element
                         of a scalar or vector output and one column per
                         element of a scalar or vector input J
   A matrix is in vec layout: a vector's elements in order. */
const char *md_direction_name(md_function *f, int i);
const char *md_jvp_formula(md_function *f, md_error *err);
const char *md_hvp_formula(md_function *f, int i, md_error *err);
const char *md_hessian_formula(md_function *f, int i, int j, md_error *err);
const char *md_jacobian_formula(md_function *f, int j, md_error *err);

/* ---- second order: calls (the JIT, emit_second.c) ---- */
/* The same derivatives as numbers, from C the first such call derives,
   emits and JIT-compiles (that call costs a compilation; later ones do
   not). DIMS and INPUTS are md_eval's. DIRS holds one direction per input,
   of its shape: NULL entries (or DIRS NULL), and inputs not in wrt, move
   nothing. 0, or -1 with *ERR filled.
     md_jvp       writes into TANGENT (the output's shape) the output's
                  directional derivative along DIRS: J*v.
     md_hvp       for a scalar output, ADDS into hv[i] block row i of the
                  Hessian times the directions, sum_j d2y/dxi dxj * dirs[j]
                  (forward over reverse); NULL entries are skipped with the
                  work only they need, as md_grad's gradients.
     md_hessian   for a scalar output, ADDS the full Hessian into H: N x N,
                  N = md_wrt_size(f, dims), the wrt inputs' elements
                  stacked in declaration order, each in row-major vec
                  layout (a k x m input is km elements, row by row).
     md_jacobian  for a non-scalar output, ADDS d vec(out)/d(wrt stacked)
                  into J: rows*cols of the output by N, row-major.
   A result that shares memory with an input or a direction is computed in
   scratch first, as md_grad's. */
int md_jvp(md_function *f, const long *dims, const double *const *inputs,
           const double *const *dirs, double *tangent, md_error *err);
int md_hvp(md_function *f, const long *dims, const double *const *inputs,
           const double *const *dirs, double *const *hv, md_error *err);
int md_hessian(md_function *f, const long *dims, const double *const *inputs, double *H,
               md_error *err);
int md_jacobian(md_function *f, const long *dims, const double *const *inputs, double *J,
                md_error *err);
/* N: the elements of the wrt inputs at DIMS, summed; -1 if F is NULL or a
   size does not fit. */
long md_wrt_size(const md_function *f, const long *dims);

/* Buffers may share memory. OUT and the gradient buffers may overlap the
   inputs and the seed: each call writes its results as if after reading
   everything, so an in-place step, grads[i] == inputs[i], adds the gradient
   at the old value. Gradient buffers may overlap one another (tied inputs
   get the sum of their gradients). OUT may not overlap a gradient buffer:
   that is an error (-1), with nothing written. A buffer that overlaps
   another is computed in scratch memory of its size, allocated for the
   call; buffers that overlap nothing cost nothing. */

/* ---- the oracle (check.c) ---- */

/* The value and gradients md_vjp (SEED given) or md_grad (SEED NULL) would
   give, with the same conventions (OUT may be NULL; ADDS into grads[i]; NULL
   entries and inputs not in wrt are skipped), but computed independently:
   the value's operations are recorded on the runtime's tape (matdiff_rt.h)
   and its reverse pass runs. No symbolic derivative and no emitted code is
   involved, which makes it the oracle the tests and `matdiff check` hold the
   JIT against. 0, or -1 with *ERR filled (a singular matrix, a bad size). */
int md_tape_vjp(md_function *f, const long *dims, const double *const *inputs, const double *seed,
                double *out, double *const *grads, md_error *err);

/* Forward mode and second order on the same tape, as independent of the
   symbolic derivatives. DIRS holds one direction per input, of its shape
   (NULL entries, and inputs not in wrt, move nothing); OUT may be NULL.
   md_tape_jvp writes into TANGENT (the output's shape) the output's
   directional derivative along DIRS, the Jacobian-vector product.
   md_tape_hvp ADDS into grads[i] what md_tape_vjp would, and into hv[i]
   that gradient's directional derivative along DIRS: for a scalar output,
   sum_j d2y/dxi dxj * dirs[j], block row i of the Hessian times the
   directions (forward-over-reverse). NULL entries of GRADS and HV, or
   either NULL, are skipped; SEED is md_tape_vjp's. 0, or -1 with *ERR
   filled. */
int md_tape_jvp(md_function *f, const long *dims, const double *const *inputs,
                const double *const *dirs, double *out, double *tangent, md_error *err);
int md_tape_hvp(md_function *f, const long *dims, const double *const *inputs,
                const double *const *dirs, const double *seed, double *out, double *const *grads,
                double *const *hv, md_error *err);

/* Where a value first stops being finite. The value of F at DIMS and INPUTS
   and, with GRAD, its gradients as md_grad computes them (a seed of ones)
   are evaluated operation by operation on the runtime's tape, operands
   before the operations that use them, and the first operation whose
   result holds a NaN or an infinity is written into OP (N bytes) as matdiff
   prints it ("log(x - 1)"; a long one cut, with "..."), with its first such
   element in *BAD (may be NULL). 1 if one is found, 0 if every value is
   finite, -1 with *ERR filled. `matdiff eval` calls it only when a result
   it computed is not finite: it costs a tape evaluation. */
int md_first_nonfinite(md_function *f, const long *dims, const double *const *inputs, int grad,
                       char *op, size_t n, double *bad, md_error *err);

/* A seeded generator: xoshiro256** through splitmix64. The stream depends
   on the seed alone (its normal deviates use no libm function, whose last
   bit may differ between systems), so a seed means the same numbers
   everywhere: md_check's inputs and `matdiff eval --seed`'s. */
typedef struct md_rng {
  unsigned long long s[4];
} md_rng;
void md_rng_seed(md_rng *r, unsigned long long seed);
double md_rng_uniform(md_rng *r);   /* [0, 1), 53 random bits */
double md_rng_normal(md_rng *r);    /* standard normal, Marsaglia's polar method */

/* A (N x N, row-major) made symmetric, each element and its mirror
   replaced by their mean; with POSDEF also positive definite, each diagonal
   element replaced by its magnitude plus those of the rest of its row plus
   0.5 (a strictly diagonally dominant symmetric matrix with a positive
   diagonal is positive definite). How md_check and `matdiff eval` draw a
   symmetric(n) or posdef(n) input. */
void md_symmetrize(double *A, long n, int posdef);

/* How far A is from the reference B (N numbers each): max|a - b| divided by
   max(1, max|b|), so relative where B is large and absolute where it is
   small (a quantity that is 0 in exact arithmetic is rounding noise in
   every method, and its relative error means nothing). NaN if any
   difference is NaN. Every disagreement md_check reports is this. */
double md_rel_err(const double *a, const double *b, long n);

/* ---- the gradient checker (check.c) ---- */

/* md_check's tolerances, for md_rel_err. The tape computes the same numbers
   in another order of operations: they agree to rounding, so 1e-9 is
   generous. Central differences with step h = 1e-6*max(1,|x|) carry an
   O(h^2) truncation and an O(eps/h) rounding error, about 1e-8 on
   well-scaled inputs: 1e-5 leaves room for curvature without hiding real
   mistakes, which are O(1). */
#define MD_CHECK_TOL_TAPE 1e-9
#define MD_CHECK_TOL_FD 1e-5

/* How md_check drew the inputs it was not given: standard normal first; if
   the function is not finite there (log or sqrt of a negative, arcsin
   beyond 1, a singular matrix), smaller numbers, then positive ones. */
typedef enum md_dist {
  MD_DIST_GIVEN,     /* nothing was drawn: every input was given */
  MD_DIST_NORMAL,    /* standard normal */
  MD_DIST_SMALL,     /* uniform in [-0.5, 0.5] */
  MD_DIST_POSITIVE,  /* uniform in [0.1, 0.9] */
} md_dist;

typedef struct md_check_opts {
  const double *const *inputs; /* NULL, or one buffer per input: NULL entries are drawn */
  const double *seed;          /* the output's shape (one double for a scalar): the
                                  gradients checked are md_vjp's with it. NULL: drawn
                                  standard normal for a non-scalar output; md_grad's
                                  for a scalar one */
  md_rng *rng;                 /* what is drawn comes from here; NULL: a generator
                                  seeded with 1 */
  int skip_fd;                 /* leave finite differences out */
} md_check_opts;

typedef struct md_check_result {
  int ok;             /* every disagreement within its tolerance */
  md_dist dist;       /* how the inputs not given were drawn */
  int well;           /* drawn square inputs had their size added to the diagonal */
  const char *dist_name; /* DIST in words, e.g. "uniform in [0.1, 0.9]" */
  double value;       /* md_rel_err of the value, the JIT's against the tape's */
  double *tape;       /* one per input: of the gradient against the tape's */
  double *fd;         /* one per input: against central differences */
} md_check_result;

/* Hold F's symbolic gradients, as the JIT computes them, against the tape
   (md_tape_vjp) and against central differences of md_eval, at the sizes
   DIMS (all bound) and at inputs that OPTS (NULL: all defaults) gives or
   that are drawn. Drawn inputs are standard normal, or smaller, or
   positive, the first at which F is finite; if F inverts a matrix (inv,
   det, logdet), its square inputs get their size added to the diagonal
   first, else last, so that they are well conditioned. A matrix output is
   checked through the vector-Jacobian product with a seed S, against
   differences of sum(S .* output).

   0 with *RES filled (RES->ok says whether all agree; tape and fd are 0 for
   an input not in wrt, fd also with skip_fd), or -1 with *ERR filled (a
   call failed: a singular matrix, a bad size) and RES->dist still set.
   Release RES's arrays with md_check_result_free, in either case. */
int md_check(md_function *f, const long *dims, const md_check_opts *opts, md_check_result *res,
             md_error *err);
void md_check_result_free(md_check_result *res);

/* ---- the second-order checker (check2.c) ---- */
typedef struct md_check2_result {
  int ok;             /* every disagreement within its tolerance */
  double jvp;         /* md_jvp against md_tape_jvp */
  /* One per input, 0 for an input not in wrt or where it does not apply: */
  double *hvp_tape;   /* md_hvp against md_tape_hvp (scalar output) */
  double *hvp_fd;     /* ... against central differences of md_grad */
  double *hessian;    /* the input's block row of md_hessian against the tape */
  double *jacobian;   /* the input's block column of md_jacobian against the tape */
} md_check2_result;
/* Hold F's second order, as the JIT computes it (md_jvp, md_hvp and, with
   FULL, md_hessian or md_jacobian), against the tape's forward mode and
   forward-over-reverse (a whole matrix column by column along unit
   directions: N tape calls) and the HVPs against central differences of
   md_grad along DIRS, the step 1e-5 of the largest input (at least 1)
   over the largest direction. INPUTS and DIRS are given, one per input
   (DIRS entries of inputs not in wrt unused). Tolerances as md_check's.
   0 with *RES filled, or -1 with *ERR filled; release RES's arrays with
   md_check2_result_free in either case. */
int md_check2(md_function *f, const long *dims, const double *const *inputs,
              const double *const *dirs, int full, md_check2_result *res, md_error *err);
void md_check2_result_free(md_check2_result *res);

/* One-line expressions, as matrixcalculus.org takes them (docs/LANGUAGE.md,
   "One-line expressions"): EXPR is an expression alone, such as
   "0.5*x'*A*x", with no declarations. A name is a scalar if it begins with
   a-g, a vector if with h-z, a matrix if with A-Z, whatever follows
   (lambda and x1 are vectors), and every size is inferred. WRT names the
   variables to differentiate, separated by commas or blanks; NULL or ""
   means all of them.

   md_expr_source returns the program the expression stands for, as source
   that md_compile takes: one declaration per variable in the order of
   first use, with sizes named n, m, k, p, ... (never a name the expression
   uses), "wrt ..." if WRT names any, and "f = EXPR" (f, or f1, f2, ... if
   the expression uses f). For "x'*A*x":
       x : vector(n)
       A : matrix(n, n)
       f = x'*A*x
   The string is malloc'd: release it with free(). On error, NULL with *ERR
   filled; an error in the expression is located in it, with "<expr>" as
   the file name. md_compile_expr compiles that program, as md_compile. */
char *md_expr_source(const char *expr, const char *wrt, md_error *err);
md_function *md_compile_expr(const char *expr, const char *wrt, md_error *err);

#ifdef __cplusplus
}
#endif
#endif
