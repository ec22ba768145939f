/*
 * test_second.c - second order and Jacobians as formulas (issue #12):
 *
 *   second::table       the printed Hessians and Jacobians of the issue's
 *                       table, to the letter;
 *   second::formulas    every example's and every table entry's JVP, HVPs,
 *                       Hessian blocks and Jacobians, printed, compiled
 *                       again as the output of a program of their own and
 *                       evaluated: against the tape's forward mode and
 *                       forward-over-reverse (a matrix column by column,
 *                       along unit directions), exact to rounding, and the
 *                       HVPs also against central differences of the JIT's
 *                       gradient;
 *   second::directions  how directions are named, and what has no matrix.
 *
 * Inputs are standard normal from a fixed seed, sizes 3, 4, 5, ...
 */
#include <criterion/criterion.h>
#include <glob.h>
#include <math.h>
#include <string.h>
#include "util.h"

#define TOL MD_CHECK_TOL_TAPE
#define TOL_FD MD_CHECK_TOL_FD

/* ---- a formula, compiled again ------------------------------------------------- */

// The program whose output is FORMULA, compiled.
static md_function *compile_formula(md_function *f, const char *src, const char *formula) {
  char *prog = formula_program(f, src, formula);
  md_error err;
  md_function *h = md_compile(prog, "formula.expr", &err);
  cr_assert_not_null(h, "the formula does not compile again:\n%s\n%s", prog, err.diag);
  free(prog);
  return h;
}

typedef struct Point {
  md_function *f;
  int n;
  long dims[8];
  double *in[8], *dir[8];
  long len[8], outlen;
  double *G;         /* a seed of the output's shape, which the formulas of a matrix output name */
} Point;

static const double *const *inputs(const Point *p) { return (const double *const *)p->in; }

// H's value at P: OUT gets LEN numbers.
static void eval_formula(md_function *h, const Point *p, double *out, long len) {
  const double *in[20];
  long dims[8] = {0};
  cr_assert_leq(md_num_inputs(h), 20);
  formula_inputs(h, p->f, p->dims, inputs(p), (const double *const *)p->dir, p->G, dims, in);
  cr_assert_eq(md_output_rows(h, dims) * md_output_cols(h, dims), len, "the formula has %ld "
               "elements, not %ld", md_output_rows(h, dims) * md_output_cols(h, dims), len);
  md_error err;
  cr_assert_eq(md_eval(h, dims, in, out, &err), 0, "%s", err.message);
}

static void point_init(Point *p, md_function *f, unsigned long long seed) {
  memset(p, 0, sizeof *p);
  p->f = f;
  p->n = md_num_inputs(f);
  cr_assert_leq(p->n, 8);
  for (int d = 0; d < md_num_dims(f); d++)
    p->dims[d] = 3 + d;
  md_rng g;
  md_rng_seed(&g, seed);
  for (int i = 0; i < p->n; i++) {
    p->len[i] = md_input_rows(f, i, p->dims) * md_input_cols(f, i, p->dims);
    p->in[i] = malloc(sizeof(double) * (size_t)p->len[i]);
    p->dir[i] = calloc((size_t)p->len[i], sizeof(double));
    for (long k = 0; k < p->len[i]; k++) {
      p->in[i][k] = md_rng_normal(&g);
      p->dir[i][k] = md_input_is_wrt(f, i) ? md_rng_normal(&g) : 0;
    }
    // A symmetric input, and the direction it moves in, are symmetric.
    if (md_input_is_symmetric(f, i)) {
      long r = md_input_rows(f, i, p->dims);
      md_symmetrize(p->in[i], r, md_input_is_posdef(f, i));
      md_symmetrize(p->dir[i], r, 0);
    }
  }
  p->outlen = md_output_rows(f, p->dims) * md_output_cols(f, p->dims);
  p->G = malloc(sizeof(double) * (size_t)p->outlen);
  for (long k = 0; k < p->outlen; k++)
    p->G[k] = md_rng_normal(&g);
}

static void point_free(Point *p) {
  for (int i = 0; i < p->n; i++) {
    free(p->in[i]);
    free(p->dir[i]);
  }
  free(p->G);
}

/* ---- the checks ---------------------------------------------------------------- */

static void check_jvp(Point *p, const char *src, const char *name) {
  md_error err;
  const char *jvp = md_jvp_formula(p->f, &err);
  cr_assert_not_null(jvp, "%s: %s", name, err.message);
  md_function *h = compile_formula(p->f, src, jvp);
  double *sym = malloc(sizeof(double) * (size_t)p->outlen), *tape = malloc(sizeof(double) * (size_t)p->outlen);
  eval_formula(h, p, sym, p->outlen);
  cr_assert_eq(md_tape_jvp(p->f, p->dims, inputs(p), (const double *const *)p->dir, NULL, tape, &err),
               0, "%s", err.message);
  double e = md_rel_err(sym, tape, p->outlen);
  cr_expect(e <= TOL, "%s: the JVP %s is off the tape's by %.3g", name, jvp, e);
  md_free(h);
  free(sym);
  free(tape);
}

// Central differences of the JIT's gradient along the directions.
static void gradient_fd(Point *p, int i, double *fd) {
  const double t = 1e-5;
  double *g[2][8] = {{0}};
  for (int s = 0; s < 2; s++) {
    for (int k = 0; k < p->n; k++) {
      for (long e = 0; e < p->len[k]; e++)
        p->in[k][e] += (s ? -t : t) * p->dir[k][e];
      g[s][k] = md_input_is_wrt(p->f, k) ? calloc((size_t)p->len[k], sizeof(double)) : NULL;
    }
    md_error err;
    cr_assert_eq(md_grad(p->f, p->dims, inputs(p), NULL, g[s], &err), 0, "%s", err.message);
    for (int k = 0; k < p->n; k++)
      for (long e = 0; e < p->len[k]; e++)
        p->in[k][e] -= (s ? -t : t) * p->dir[k][e];
  }
  for (long e = 0; e < p->len[i]; e++)
    fd[e] = (g[0][i][e] - g[1][i][e]) / (2 * t);
  for (int s = 0; s < 2; s++)
    for (int k = 0; k < p->n; k++)
      free(g[s][k]);
}

static void check_hvp(Point *p, const char *src, const char *name, int i) {
  md_error err;
  const char *hvp = md_hvp_formula(p->f, i, &err);
  cr_assert_not_null(hvp, "%s: %s", name, err.message);
  md_function *h = compile_formula(p->f, src, hvp);
  long len = p->len[i];
  double *sym = malloc(sizeof(double) * (size_t)len), *tape = calloc((size_t)len, sizeof(double));
  double *fd = malloc(sizeof(double) * (size_t)len);
  double *hv[8] = {0};
  hv[i] = tape;
  eval_formula(h, p, sym, len);
  cr_assert_eq(md_tape_hvp(p->f, p->dims, inputs(p), (const double *const *)p->dir, NULL, NULL, NULL,
                           hv, &err), 0, "%s", err.message);
  double e = md_rel_err(sym, tape, len);
  cr_expect(e <= TOL, "%s: the HVP d(d/d%s) = %s is off the tape's by %.3g", name,
            md_input_name(p->f, i), hvp, e);
  gradient_fd(p, i, fd);
  e = md_rel_err(sym, fd, len);
  cr_expect(e <= TOL_FD, "%s: the HVP d(d/d%s) is off differences of the gradient by %.3g", name,
            md_input_name(p->f, i), e);
  md_free(h);
  free(sym);
  free(tape);
  free(fd);
}

// The matrix formula M (ROWS x COLS, vec layout) against the tape, column k
// along the unit direction e_k of input J: a tangent of the output
// (JACOBIAN), or of input I's gradient.
static void check_matrix(Point *p, const char *src, const char *name, const char *m, int i, int j,
                         bool jacobian) {
  long rows = jacobian ? p->outlen : p->len[i], cols = p->len[j];
  md_function *h = compile_formula(p->f, src, m);
  double *sym = malloc(sizeof(double) * (size_t)(rows * cols));
  double *col = malloc(sizeof(double) * (size_t)rows), *want = malloc(sizeof(double) * (size_t)(rows * cols));
  eval_formula(h, p, sym, rows * cols);
  double *saved[8];
  for (int k = 0; k < p->n; k++) {
    saved[k] = p->dir[k];
    p->dir[k] = calloc((size_t)p->len[k], sizeof(double));
  }
  md_error err;
  for (long k = 0; k < cols; k++) {
    p->dir[j][k] = 1;
    if (jacobian) {
      cr_assert_eq(md_tape_jvp(p->f, p->dims, inputs(p), (const double *const *)p->dir, NULL, col, &err),
                   0, "%s", err.message);
    } else {
      double *hv[8] = {0};
      memset(col, 0, sizeof(double) * (size_t)rows);
      hv[i] = col;
      cr_assert_eq(md_tape_hvp(p->f, p->dims, inputs(p), (const double *const *)p->dir, NULL, NULL,
                               NULL, hv, &err), 0, "%s", err.message);
    }
    for (long r = 0; r < rows; r++)
      want[r * cols + k] = col[r];
    p->dir[j][k] = 0;
  }
  for (int k = 0; k < p->n; k++) {
    free(p->dir[k]);
    p->dir[k] = saved[k];
  }
  double e = md_rel_err(sym, want, rows * cols);
  cr_expect(e <= TOL, "%s: %s = %s is off the tape's by %.3g", name, jacobian ? "a Jacobian" : "a Hessian",
            m, e);
  md_free(h);
  free(sym);
  free(col);
  free(want);
}

/* The blocks no matrix formula says: MLP's d2/db1 is a sum over samples
   of matrices that differ per sample (through tanh), which no matrix
   product spells; the HVP stands for them. */
static bool known_gap(const char *name, md_function *f, int i, int j) {
  return strstr(name, "mlp.expr") &&
         (!strcmp(md_input_name(f, i), "b1") || !strcmp(md_input_name(f, j), "b1"));
}

static bool vector_like(md_function *f, int i) {
  return i < 0 ? md_output_rows(f, NULL) == 1 || md_output_cols(f, NULL) == 1
               : md_input_rows(f, i, NULL) == 1 || md_input_cols(f, i, NULL) == 1;
}

// Everything second order about SRC, through the tape.
static void check_source(const char *name, const char *src) {
  md_error err;
  md_function *f = md_compile(src, name, &err);
  cr_assert_not_null(f, "%s: %s", name, err.diag);
  Point p;
  point_init(&p, f, fnv1a(name));
  bool scalar = md_output_rows(f, NULL) == 1 && md_output_cols(f, NULL) == 1;
  check_jvp(&p, src, name);
  for (int i = 0; i < p.n; i++) {
    if (!md_input_is_wrt(f, i))
      continue;
    if (scalar)
      check_hvp(&p, src, name, i);
    for (int j = 0; scalar && j < p.n; j++) {
      if (!md_input_is_wrt(f, j))
        continue;
      const char *m = md_hessian_formula(f, i, j, &err);
      cr_expect(m || !vector_like(f, i) || !vector_like(f, j) || known_gap(name, f, i, j),
                "%s: no Hessian d2/d%sd%s: %s", name, md_input_name(f, i), md_input_name(f, j),
                err.message);
      if (m)
        check_matrix(&p, src, name, m, i, j, false);
    }
    const char *jac = vector_like(f, -1) ? md_jacobian_formula(f, i, &err) : NULL;
    cr_expect(jac || !vector_like(f, -1) || !vector_like(f, i), "%s: no Jacobian d/d%s: %s", name,
              md_input_name(f, i), err.message);
    if (jac)
      check_matrix(&p, src, name, jac, -1, i, true);
  }
  point_free(&p);
  md_free(f);
}

/* ---- the table --------------------------------------------------------- */

typedef struct Row {
  const char *src;
  bool jacobian;
  const char *printed;  /* as matdiff prints it now */
} Row;

/* Where the printed form is not the to the letter, the comment says
   how it differs. */
static const Row table[] = {
    // the A + A', the terms in the other order
    {"x : vector(n)\nA : matrix(n, n)\nwrt x\nf = x'*A*x\n", false, "A' + A"},
    {"A : matrix(m, n)\nx : vector(n)\nb : vector(m)\nwrt x\nf = ||A*x - b||^2\n", false, "2*A'*A"},
    {"X : matrix(n, d)\nw : vector(d)\ny : vector(n)\nwrt w\nf = sum(softplus(X*w)) - y'*X*w\n", false,
     "X'*diag(sigmoid(X*w).*(1 - sigmoid(X*w)))*X"},
    {"x : vector(n)\nf = sum(exp(x))\n", false, "diag(exp(x))"},
    {"w : vector(n)\nlambda : scalar\nwrt w\nf = lambda*||w||^2\n", false, "2*lambda*eye(n)"},
    {"x : vector(n)\nf = logsumexp(x)\n", false, "diag(softmax(x)) - softmax(x)*softmax(x)'"},
    {"A : matrix(m, n)\nx : vector(n)\nwrt x\nF = A*x\n", true, "A"},
    {"x : vector(n)\nF = exp(x)\n", true, "diag(exp(x))"},
    // the l/norm2(p - q)^3*(p - q)*(p - q)' + (1 - l/norm2(p - q))*eye(n), with
    // ||p - q|| for norm2(p - q) as matdiff prints it
    {"p : vector(n)\nq : vector(n)\nl : scalar\nwrt p\nF = (1 - l/norm2(p - q))*(p - q)\n", true,
     "l*(p - q)*(p - q)'/||p - q||^3 + (1 - l/||p - q||)*eye(n)"},
};

Test(second, table) {
  for (size_t r = 0; r < sizeof table / sizeof *table; r++) {
    md_error err;
    md_function *f = md_compile(table[r].src, "table.expr", &err);
    cr_assert_not_null(f, "%s", err.diag);
    int x = 0;
    while (!md_input_is_wrt(f, x))
      x++;
    const char *got = table[r].jacobian ? md_jacobian_formula(f, x, &err)
                                        : md_hessian_formula(f, x, x, &err);
    cr_expect(got && !strcmp(got, table[r].printed), "%sprinted %s, not %s", table[r].src,
              got ? got : err.message, table[r].printed);
    md_free(f);
  }
}

Test(second, table_numbers) {
  for (size_t r = 0; r < sizeof table / sizeof *table; r++)
    check_source("table.expr", table[r].src);
}

Test(second, examples) {
  cr_assert(each_example(check_source), "the examples cannot be read");
}

/* ---- ones, eye and minus signs that a person would not write ------------------ */

// Second derivatives bring diag(ones), ones(m, n).*v and -(-a - b) where a
// gradient had none, and diagonals that add up: each is printed as a person
// writes it, and its numbers are held against the tape (check_source). Was:
// inv(Sigma)*diag(n*ones(d, 1)), softmax(Z, 2)'*diag(ones(n, 1))*softmax(Z,
// 2), -(-A - B), inv(Sigma)*sum(ones(n, d).*dmu', 1)', (ones(d, n).*dmu)*R,
// 2*diag(a) - diag(b.*exp(x)).
static const Row plain[] = {
    {"X : matrix(n, d)\nmu : vector(d)\nSigma : posdef(d)\nwrt mu\nR = X - mu'\n"
     "f = tr(R*inv(Sigma)*R')/2\n",
     false, "n*inv(Sigma)"},
    {"X : matrix(n, d)\nm : vector(d)\nwrt m\nf = sum(sum((X - m').^2))\n", false, "2*n*eye(d)"},
    {"x : vector(n)\nwrt x\nf = sum(x.^3)\n", false, "6*diag(x)"},
    {"x : vector(n)\nf = sum(exp(x)) + sum(sin(x))\n", false, "diag(exp(x) - sin(x))"},
    {"x : vector(n)\na : vector(n)\nb : vector(n)\nwrt x\nf = sum(a.*x.^2) - sum(b.*exp(x))\n", false,
     "diag(2*a - b.*exp(x))"},
    {"X : matrix(n, d)\nW : matrix(d, c)\nb : vector(c)\nwrt b\nf = sum(logsumexp(X*W + b', 2))\n",
     false, "diag(sum(softmax(X*W + b', 2)', 2)) - softmax(X*W + b', 2)'*softmax(X*W + b', 2)"},
};

Test(second, ones_and_signs) {
  for (size_t r = 0; r < sizeof plain / sizeof *plain; r++) {
    md_error err;
    md_function *f = md_compile(plain[r].src, "plain.expr", &err);
    cr_assert_not_null(f, "%s", err.diag);
    int x = 0;
    while (!md_input_is_wrt(f, x))
      x++;
    const char *got = md_hessian_formula(f, x, x, &err);
    cr_expect(got && !strcmp(got, plain[r].printed), "%sprinted %s, not %s", plain[r].src,
              got ? got : err.message, plain[r].printed);
    md_free(f);
    check_source("plain.expr", plain[r].src);
  }
}

// The gaussian example's HVP along mu: no -(-a - b), no ones(n, d).*dmu',
// and the product with a repeated column is an outer product.
Test(second, gaussian_hvp) {
  const char *src = "X : matrix(n, d)\nmu : vector(d)\nSigma : posdef(d)\nwrt mu, Sigma\n"
                    "R = X - mu'\nnll = n/2*logdet(Sigma) + tr(R*inv(Sigma)*R')/2\n";
  md_error err;
  md_function *f = md_compile(src, "gaussian.expr", &err);
  cr_assert_not_null(f, "%s", err.diag);
  const char *mu = md_hvp_formula(f, 1, &err);
  cr_assert_not_null(mu, "%s", err.message);
  cr_expect_str_eq(mu, "inv(Sigma)*dSigma*inv(Sigma)*sum(R, 1)' + n*inv(Sigma)*dmu");
  const char *sigma = md_hvp_formula(f, 2, &err);
  cr_assert_not_null(sigma, "%s", err.message);
  cr_expect(!strstr(sigma, "ones("), "%s", sigma);
  cr_expect(strstr(sigma, "dmu*sum(R, 1)"), "%s", sigma);
  md_free(f);
  check_source("gaussian.expr", src);
}

/* ---- names, and what has no matrix ------------------------------------------------ */

Test(second, directions) {
  md_error err;
  // dx is a size and dx_1 an input: x's direction is dx_2; y's is dy.
  const char *src = "x : vector(dx)\ndx_1 : scalar\ny : scalar\nwrt x, y\nf = y*sum(x)*dx_1\n";
  md_function *f = md_compile(src, "t.expr", &err);
  cr_assert_not_null(f, "%s", err.diag);
  cr_expect_str_eq(md_direction_name(f, 0), "dx_2");
  cr_expect_null(md_direction_name(f, 1), "dx_1 is not in wrt");
  cr_expect_str_eq(md_direction_name(f, 2), "dy");
  cr_expect_str_eq(md_jvp_formula(f, &err), "(dy*sum(x) + y*sum(dx_2))*dx_1");
  check_source("directions", src);
  cr_expect_null(md_hvp_formula(f, 1, &err));
  cr_expect(strstr(err.message, "not differentiated"), "%s", err.message);
  md_free(f);
}

// A sum on the right keeps its parentheses where the text, read left to
// right, would add shapes that do not broadcast: dL = dz2 + dA - ... reads
// dz2 + dA first, 1×2 + 3×1 (tests/regress/20268872.expr). Where every
// term has the sum's shape, a hundred of them nested to the right print flat.
Test(second, sums_read_as_printed) {
  md_error err;
  const char *src = "theta : matrix(2, 2)\nA : vector(3)\nz2 : matrix(1, 2)\nz1 : matrix(3, 2)\n"
                    "L = z2 - -(A - z1 * theta)\n";
  md_function *f = md_compile(src, "t.expr", &err);
  cr_assert_not_null(f, "%s", err.diag);
  // dL = dz2 + dA - dz1*theta - z1*dtheta, by the product rule; the
  // negation of -(dA - ...) is taken into its terms, and the terms come in
  // an order that reads left to right, 1×2 - 3×2 first.
  cr_expect_str_eq(md_jvp_formula(f, &err), "dz2 - dz1*theta + dA - z1*dtheta");
  md_free(f);
  check_source("broadcast sum", src);
  Out o = {0};
  put(&o, "a : vector(3)\n");
  for (int i = 0; i < 100; i++)  // past what the simplifier flattens
    put(&o, "x%d : vector(3)\n", i);
  put(&o, "f = sum(a .* (");
  for (int i = 0; i < 99; i++)
    put(&o, "x%d + (", i);
  put(&o, "x99");
  for (int i = 0; i < 100; i++)
    put(&o, ")");
  put(&o, ")\n");
  f = md_compile(o.s, "t.expr", &err);
  cr_assert_not_null(f, "%s", err.diag);
  const char *jvp = md_jvp_formula(f, &err);
  cr_assert_not_null(jvp, "%s", err.message);
  cr_expect(strstr(jvp, "(x0 + x1 + x2") && !strstr(jvp, "+ ("), "%s", jvp);
  md_free(f);
  free(o.s);
}

// With no inputs there is no direction: every tangent is 0.
Test(second, constant) {
  md_error err;
  md_function *f = md_compile("L = 0.25\n", "t.expr", &err);
  cr_assert_not_null(f, "%s", err.diag);
  cr_expect_str_eq(md_jvp_formula(f, &err), "0");
  md_free(f);
}

// y_k = y_(k-1) + A*y_(k-1), sixty deep: each y is shared by both terms of
// the next, so a matrix read off without remembering what it read takes
// 2^60 steps. (The printed formula is cut at a mebibyte.)
Test(second, shared_subexpressions) {
  // A regression would not end: SIGALRM ends the test's process instead.
  // (Criterion's .timeout leaks in its runner under LeakSanitizer.)
  alarm(30);
  Out o = {0};
  put(&o, "x : vector(n)\nA : matrix(n, n)\ny0 = x\n");
  for (int k = 1; k <= 60; k++)
    put(&o, "y%d = y%d + A*y%d\n", k, k - 1, k - 1);
  put(&o, "F = exp(y60)\n");
  md_error err;
  md_function *f = md_compile(o.s, "deep.expr", &err);
  cr_assert_not_null(f, "%s", err.diag);
  const char *j = md_jacobian_formula(f, 0, &err);
  cr_expect(j && !strncmp(j, "diag(exp(y60)) + diag(exp(y60))*A*(", 35), "%s", j ? j : err.message);
  md_free(f);
  free(o.s);
}

Test(second, no_matrix) {
  md_error err;
  md_function *f = md_compile("U : matrix(m, k)\nv : vector(k)\ny = sum(U*v)^2\n", "t.expr", &err);
  cr_assert_not_null(f, "%s", err.diag);
  cr_expect_null(md_hessian_formula(f, 0, 0, &err));
  cr_expect(strstr(err.message, "a variable is a matrix"), "%s", err.message);
  cr_expect_not_null(md_hessian_formula(f, 1, 1, &err), "%s", err.message);
  cr_expect_null(md_jacobian_formula(f, 0, &err));
  md_free(f);
  f = md_compile("A : matrix(n, n)\nY = A*A\n", "t.expr", &err);
  cr_assert_not_null(f, "%s", err.diag);
  cr_expect_null(md_hessian_formula(f, 0, 0, &err));
  cr_expect(strstr(err.message, "scalar output"), "%s", err.message);
  cr_expect_not_null(md_hvp_formula(f, 0, &err), "a matrix output's HVP names G: %s", err.message);
  md_free(f);
}
