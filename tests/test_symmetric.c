/*
 * test_symmetric.c - symmetric(n) and posdef(n) inputs (issue #11, section 3):
 *
 *   ops        across det, logdet, inv, quadratic forms, traces and
 *              products, the JIT's value and gradients against the tape
 *              (projected, (G + G')/2) and against central differences
 *              that move the matrix symmetrically, S + h*(E_ij + E_ji)/2,
 *              taken here, independently of md_check; and md_check itself
 *   hand       gradients derived by hand: d(x'*S*x)/dS = x*x',
 *              d(tr(S*B))/dS = (B + B')/2, d(logdet(P))/dP = inv(P)
 *   printed    the forms: S' is S, x'*S*x has the gradient 2*S*x
 *   data       every call rejects data that is not symmetric (naming the
 *              input), accepts rounding-level asymmetry, and a posdef input
 *              that is not positive definite fails where it is factorised,
 *              by Cholesky
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "matdiff.h"

static md_function *compile_ok(const char *src) {
  md_error err;
  md_function *f = md_compile(src, "sym.expr", &err);
  cr_assert_not_null(f, "%s\n%s", src, err.diag);
  return f;
}

enum { MAXIN = 6 };

// Inputs of F at sizes DIMS drawn from SEED: standard normal, symmetric
// inputs symmetric and posdef ones positive definite (md_symmetrize).
static void draw(md_function *f, const long *dims, unsigned long long seed, double **in, long *len) {
  md_rng g;
  md_rng_seed(&g, seed);
  cr_assert_leq(md_num_inputs(f), MAXIN);
  for (int i = 0; i < md_num_inputs(f); i++) {
    long r = md_input_rows(f, i, dims), c = md_input_cols(f, i, dims);
    len[i] = r * c;
    in[i] = malloc(sizeof(double) * (size_t)len[i]);
    for (long k = 0; k < len[i]; k++)
      in[i][k] = md_rng_normal(&g);
    if (md_input_is_symmetric(f, i))
      md_symmetrize(in[i], r, md_input_is_posdef(f, i));
  }
}

static void release(md_function *f, double **in) {
  for (int i = 0; i < md_num_inputs(f); i++)
    free(in[i]);
}

static double value(md_function *f, const long *dims, double **in) {
  double y;
  md_error err;
  cr_assert_eq(md_eval(f, dims, (const double *const *)in, &y, &err), 0, "%s", err.message);
  return y;
}

/* ---- ops: JIT, tape and symmetric differences ------------------------------ */

// Each a scalar function of S : symmetric(n) or P : posdef(n), with other
// inputs around it; every input is differentiated.
static const char *const sources[] = {
    "S : symmetric(n)\nx : vector(n)\nf = x'*S*x",
    "S : symmetric(n)\nx : vector(n)\ny : vector(n)\nf = x'*S'*y + y'*S*S*x",
    "S : symmetric(n)\nB : matrix(n, n)\nf = tr(S*B) + tr(S'*B*S)",
    "S : symmetric(n)\nf = det(S)",
    "S : symmetric(n)\nB : matrix(n, n)\nf = tr(inv(S)*B) + sum(inv(S)')",
    "S : symmetric(n)\nX : matrix(k, n)\nf = ||X*S*X'||_F^2 + sum(sin(S))",
    "P : posdef(n)\nf = logdet(P)",
    "P : posdef(n)\nf = det(P) + logdet(inv(P))",
    "P : posdef(n)\nx : vector(n)\nf = x'*inv(P)*x + logdet(P)",
    "P : posdef(n)\nS : symmetric(n)\nf = tr(inv(P)*S*inv(P)) + ||P - S||_F^2",
    "X : matrix(m, n)\nmu : vector(n)\nSigma : posdef(n)\nR = X - mu'\n"
    "nll = m/2*logdet(Sigma) + tr(R*inv(Sigma)*R')/2",
};

// Central differences of F's value along input I's element J, moved with
// its mirror when I is symmetric: (f(S + h*E) - f(S - h*E))/(2h) for
// E = (E_jt + E_tj)/2, which is element j of the symmetric gradient.
static double central(md_function *f, const long *dims, double **in, int i, long j) {
  long n = md_input_rows(f, i, dims);
  long t = md_input_is_symmetric(f, i) ? j % n * n + j / n : j;
  double x = in[i][j], y = in[i][t], h = 1e-6 * fmax(1, fabs(x)), step = t == j ? h : h / 2;
  in[i][j] = x + step, in[i][t] = y + step;
  double fp = value(f, dims, in);
  in[i][j] = x - step, in[i][t] = y - step;
  double fm = value(f, dims, in);
  in[i][j] = x, in[i][t] = y;
  return (fp - fm) / (2 * h);
}

static void check_source(const char *src, unsigned long long seed) {
  md_function *f = compile_ok(src);
  long dims[4] = {4, 3, 5, 2};
  double *in[MAXIN], *g[MAXIN], *tg[MAXIN], y, ty;
  long len[MAXIN];
  int n = md_num_inputs(f);
  draw(f, dims, seed, in, len);
  for (int i = 0; i < n; i++) {
    g[i] = calloc((size_t)len[i], sizeof(double));
    tg[i] = calloc((size_t)len[i], sizeof(double));
  }
  md_error err;
  cr_assert_eq(md_grad(f, dims, (const double *const *)in, &y, g, &err), 0, "%s", err.message);
  cr_assert_eq(md_tape_vjp(f, dims, (const double *const *)in, NULL, &ty, tg, &err), 0, "%s",
               err.message);
  cr_expect_leq(fabs(y - ty), 1e-9 * fmax(1, fabs(ty)), "%s\nvalue %.17g, tape %.17g", src, y, ty);
  for (int i = 0; i < n; i++) {
    double e = md_rel_err(g[i], tg[i], len[i]);
    cr_expect_leq(e, MD_CHECK_TOL_TAPE, "%s\nd/d%s off the tape by %.3g", src,
                  md_input_name(f, i), e);
    double *fd = malloc(sizeof(double) * (size_t)len[i]);
    for (long j = 0; j < len[i]; j++)
      fd[j] = central(f, dims, in, i, j);
    e = md_rel_err(g[i], fd, len[i]);
    cr_expect_leq(e, MD_CHECK_TOL_FD, "%s\nd/d%s off the differences by %.3g", src,
                  md_input_name(f, i), e);
    // The gradient of a symmetric input is symmetric.
    if (md_input_is_symmetric(f, i)) {
      long r = md_input_rows(f, i, dims);
      for (long a = 0; a < r; a++)
        for (long b = 0; b < a; b++)
          cr_expect_leq(fabs(g[i][a * r + b] - g[i][b * r + a]), 1e-12 * fmax(1, fabs(g[i][a * r + b])),
                        "%s\nd/d%s is not symmetric at (%ld,%ld)", src, md_input_name(f, i), a + 1, b + 1);
    }
    free(fd);
    free(g[i]);
    free(tg[i]);
  }
  // md_check draws its own symmetric inputs and moves them symmetrically.
  md_check_result res;
  cr_expect_eq(md_check(f, dims, NULL, &res, &err), 0, "%s", err.message);
  cr_expect(res.ok, "%s\nmd_check disagrees", src);
  md_check_result_free(&res);
  release(f, in);
  md_free(f);
}

Test(ops, jit_tape_and_symmetric_differences) {
  for (size_t s = 0; s < sizeof sources / sizeof *sources; s++)
    for (unsigned long long seed = 1; seed <= 3; seed++)
      check_source(sources[s], seed * 100 + s);
}

// A posdef input's inv, det and logdet go through Cholesky in the code.
Test(ops, posdef_by_cholesky) {
  md_function *f = compile_ok("P : posdef(n)\nx : vector(n)\nf = x'*inv(P)*x + logdet(P) + det(P)");
  cr_expect_not_null(strstr(md_c_source(f), "mdrt_chol_inv("), "%s", md_c_source(f));
  cr_expect_null(strstr(md_c_source(f), "mdrt_lu_inv("), "%s", md_c_source(f));
  cr_expect_null(strstr(md_c_source(f), "mdrt_logdet("), "%s", md_c_source(f));
  md_free(f);
  f = compile_ok("S : symmetric(n)\nf = logdet(S)");  // symmetric alone may be indefinite: LU
  cr_expect_null(strstr(md_c_source(f), "mdrt_chol_inv("), "%s", md_c_source(f));
  md_free(f);
}

/* ---- hand: gradients derived on paper -------------------------------------- */

Test(hand, quadratic_form) {
  md_function *f = compile_ok("S : symmetric(n)\nx : vector(n)\nf = x'*S*x");
  long dims[] = {3};
  double *in[MAXIN], gS[9] = {0}, gx[3] = {0}, *g[] = {gS, gx};
  long len[MAXIN];
  draw(f, dims, 7, in, len);
  md_error err;
  cr_assert_eq(md_grad(f, dims, (const double *const *)in, NULL, g, &err), 0, "%s", err.message);
  const double *S = in[0], *x = in[1];
  for (int i = 0; i < 3; i++) {
    double sx = 0;
    for (int j = 0; j < 3; j++) {
      sx += S[i * 3 + j] * x[j];
      cr_expect_float_eq(gS[i * 3 + j], x[i] * x[j], 1e-14);  // x*x', symmetric already
    }
    cr_expect_float_eq(gx[i], 2 * sx, 1e-13);                  // 2*S*x
  }
  release(f, in);
  md_free(f);
}

Test(hand, trace_of_product) {
  md_function *f = compile_ok("S : symmetric(n)\nB : matrix(n, n)\nwrt S\nf = tr(S*B)");
  long dims[] = {4};
  double *in[MAXIN], gS[16] = {0}, *g[] = {gS, NULL};
  long len[MAXIN];
  draw(f, dims, 8, in, len);
  md_error err;
  cr_assert_eq(md_grad(f, dims, (const double *const *)in, NULL, g, &err), 0, "%s", err.message);
  const double *B = in[1];
  for (int i = 0; i < 4; i++)  // PyTorch's B' projected: (B + B')/2
    for (int j = 0; j < 4; j++)
      cr_expect_float_eq(gS[i * 4 + j], (B[i * 4 + j] + B[j * 4 + i]) / 2, 1e-15);
  release(f, in);
  md_free(f);
}

Test(hand, logdet_is_inverse) {
  md_function *f = compile_ok("P : posdef(n)\nf = logdet(P)");
  long dims[] = {2};
  double P[] = {4, 1, 1, 3}, gP[4] = {0}, y;
  const double *in[] = {P};
  double *g[] = {gP};
  md_error err;
  cr_assert_eq(md_grad(f, dims, in, &y, g, &err), 0, "%s", err.message);
  cr_expect_float_eq(y, log(11), 1e-15);
  double want[] = {3.0 / 11, -1.0 / 11, -1.0 / 11, 4.0 / 11};  // inv(P)
  for (int k = 0; k < 4; k++)
    cr_expect_float_eq(gP[k], want[k], 1e-15);
  md_free(f);
}

/* ---- printed: what the simplifier knows ------------------------------------ */

static void expect_formula(const char *src, int i, const char *want) {
  md_function *f = compile_ok(src);
  cr_expect_str_eq(md_grad_formula(f, i), want, "%s", src);
  md_free(f);
}

Test(printed, forms) {
  expect_formula("S : symmetric(n)\nx : vector(n)\nf = x'*S*x", 1, "2*S*x");
  expect_formula("S : symmetric(n)\nx : vector(n)\nf = x'*S*x", 0, "x*x'");
  expect_formula("S : symmetric(n)\nx : vector(n)\ny : vector(n)\nf = x'*S'*y", 1, "S*y");
  expect_formula("P : posdef(n)\nf = logdet(P)", 0, "inv(P)");
  expect_formula("P : posdef(n)\nf = logdet(inv(P))", 0, "-inv(P)");
  expect_formula("S : symmetric(n)\nx : vector(n)\nf = x'*inv(S)*x", 1, "2*inv(S)*x");
  // Known symmetric from its structure: A*A' + eye, and its inverse.
  expect_formula("A : matrix(n, k)\nx : vector(n)\nwrt x\nf = x'*inv(A*A' + eye(n))*x", 1,
                 "2*inv(A*A' + eye(n))*x");
  // A gradient that is not symmetric is projected: (G + G')/2.
  expect_formula("S : symmetric(n)\nB : matrix(n, n)\nwrt S\nf = tr(S*B)", 0, "0.5*(B' + B)");
}

/* ---- data: what every call accepts ----------------------------------------- */

Test(data, not_symmetric_is_an_error) {
  md_function *f = compile_ok("x : vector(n)\nS : symmetric(n)\nf = x'*S*x");
  long dims[] = {2};
  double x[] = {1, 2}, S[] = {1, 2, 2.5, 1}, y, gS[4] = {0};
  const double *in[] = {x, S};
  double *g[] = {NULL, gS};
  md_error err;
  cr_expect_eq(md_eval(f, dims, in, &y, &err), -1);
  cr_expect_not_null(strstr(err.message, "input 'S' is declared symmetric but is not symmetric: "
                                         "S(1,2) = 2 and S(2,1) = 2.5"), "%s", err.message);
  cr_expect_not_null(strstr(err.message, "1e-12"), "%s", err.message);
  cr_expect_eq(md_grad(f, dims, in, &y, g, &err), -1);
  cr_expect_not_null(strstr(err.message, "'S'"), "%s", err.message);
  cr_expect_eq(md_tape_vjp(f, dims, in, NULL, &y, g, &err), -1);
  cr_expect_eq(md_check_input(f, 1, S, 2, 2, &err), -1);
  cr_expect_eq(md_check_input(f, 1, S, 1, 4, &err), -1);
  cr_expect_not_null(strstr(err.message, "not square"), "%s", err.message);
  // Asymmetry at rounding level, below 1e-12 of the largest element, is
  // accepted; just above it is not.
  S[2] = 2 * (1 + 0.5e-12);
  cr_expect_eq(md_eval(f, dims, in, &y, &err), 0, "%s", err.message);
  cr_expect_float_eq(y, 1 + 2 * (2 + S[2]) + 4, 1e-11);
  S[2] = 2 * (1 + 1e-11);
  cr_expect_eq(md_eval(f, dims, in, &y, &err), -1);
  S[2] = NAN;
  cr_expect_eq(md_eval(f, dims, in, &y, &err), -1);
  md_free(f);
}

Test(data, not_positive_definite_is_an_error) {
  md_function *f = compile_ok("P : posdef(n)\nx : vector(n)\nf = x'*inv(P)*x");
  long dims[] = {2};
  double P[] = {1, 2, 2, 1}, x[] = {1, 1}, y;  // eigenvalues 3 and -1
  const double *in[] = {P, x};
  md_error err;
  cr_expect_eq(md_eval(f, dims, in, &y, &err), -1);
  cr_expect_str_eq(err.message, "inv(P): P is not positive definite");
  md_free(f);
  f = compile_ok("P : posdef(n)\nf = logdet(P)");
  cr_expect_eq(md_eval(f, dims, in, &y, &err), -1);
  cr_expect_str_eq(err.message, "logdet(P): P is not positive definite");
  md_free(f);
  // The same matrix declared symmetric only goes through LU: log|det| = log 3.
  f = compile_ok("S : symmetric(n)\nf = logdet(S)");
  cr_expect_eq(md_eval(f, dims, in, &y, &err), 0, "%s", err.message);
  cr_expect_float_eq(y, log(3), 1e-15);
  md_free(f);
}

Test(data, queries) {
  md_function *f = compile_ok("A : matrix(n, n)\nS : symmetric(n)\nP : posdef(3)\nf = tr(A + S) + tr(P)");
  cr_expect_eq(md_input_is_symmetric(f, 0), 0);
  cr_expect_eq(md_input_is_symmetric(f, 1), 1);
  cr_expect_eq(md_input_is_symmetric(f, 2), 1);
  cr_expect_eq(md_input_is_posdef(f, 1), 0);
  cr_expect_eq(md_input_is_posdef(f, 2), 1);
  cr_expect_eq(md_input_is_posdef(f, 7), 0);
  cr_expect_eq(md_input_rows(f, 2, NULL), 3);
  cr_expect_eq(md_input_cols(f, 2, NULL), 3);
  cr_expect_eq(md_input_dim(f, 1, 0), md_input_dim(f, 1, 1));
  md_free(f);
}
