/*
 * matdiff.h - the public C API of matdiff: compile a matrix-calculus
 * expression in process (parse, differentiate, emit C, libtcc) and call
 * the value and gradient functions it yields.
 *
 * Every call reports failure through an md_error and never prints or exits.
 * An md_function is independent of every other one: several may live at
 * once and several threads may compile at once.
 */
#ifndef MATDIFF_H
#define MATDIFF_H

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
/* The arithmetic operations md_eval (GRAD 0) or md_grad (GRAD 1) performs at
   the sizes DIMS, as counted from the emitted code; -1 on error. */
double md_flops(md_function *f, const long *dims, int grad);

long md_output_rows(const md_function *f, const long *dims);  /* -1 if a dim is unbound */
long md_output_cols(const md_function *f, const long *dims);

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
