/*
 * test_emit2.c - the emitted second-order functions (emit_second.c) through
 * the JIT: md_jvp, md_hvp, md_hessian and md_jacobian for every example
 * and for the table, against the tape's forward mode and
 * forward-over-reverse (exact to rounding) and the HVP also against
 * central differences of the gradient (md_check2); and what they refuse.
 */
#include <criterion/criterion.h>
#include <glob.h>
#include <string.h>
#include "util.h"

// Everything emitted second order about SRC at sizes 3, 4, 5, ...
static void check_source(const char *name, const char *src) {
  md_error err;
  md_function *f = md_compile(src, name, &err);
  cr_assert_not_null(f, "%s: %s", name, err.diag);
  int n = md_num_inputs(f);
  long dims[8] = {0};
  for (int d = 0; d < md_num_dims(f); d++)
    dims[d] = 3 + d;
  double **in = calloc((size_t)n + 1, sizeof *in), **dir = calloc((size_t)n + 1, sizeof *dir);
  md_rng g;
  md_rng_seed(&g, fnv1a(name));
  for (int i = 0; i < n; i++) {
    long len = md_input_rows(f, i, dims) * md_input_cols(f, i, dims);
    in[i] = malloc(sizeof(double) * (size_t)len);
    dir[i] = malloc(sizeof(double) * (size_t)len);
    for (long e = 0; e < len; e++) {
      in[i][e] = md_rng_normal(&g);
      dir[i][e] = md_rng_normal(&g);
    }
  }
  md_check2_result r;
  cr_assert_eq(md_check2(f, dims, (const double *const *)in, (const double *const *)dir, 1, &r, &err),
               0, "%s: %s", name, err.message);
  cr_expect(r.jvp <= MD_CHECK_TOL_TAPE, "%s: md_jvp is off the tape's by %.3g", name, r.jvp);
  for (int i = 0; i < n; i++) {
    const char *x = md_input_name(f, i);
    cr_expect(r.hvp_tape[i] <= MD_CHECK_TOL_TAPE, "%s: md_hvp of %s is off the tape's by %.3g", name,
              x, r.hvp_tape[i]);
    cr_expect(r.hvp_fd[i] <= MD_CHECK_TOL_FD, "%s: md_hvp of %s is off differences of the gradient "
              "by %.3g", name, x, r.hvp_fd[i]);
    cr_expect(r.hessian[i] <= MD_CHECK_TOL_TAPE, "%s: md_hessian's rows of %s are off the tape's by "
              "%.3g", name, x, r.hessian[i]);
    cr_expect(r.jacobian[i] <= MD_CHECK_TOL_TAPE, "%s: md_jacobian's columns of %s are off the "
              "tape's by %.3g", name, x, r.jacobian[i]);
  }
  cr_expect(r.ok, "%s: md_check2 says not ok", name);
  md_check2_result_free(&r);
  for (int i = 0; i < n; i++) {
    free(in[i]);
    free(dir[i]);
  }
  free(in);
  free(dir);
  md_free(f);
}

Test(emit2, examples) {
  cr_assert(each_example(check_source), "the examples cannot be read");
}

// The table (each a matrix formula for one wrt vector), and
// programs whose Hessian or Jacobian is filled by HVPs or JVPs: a matrix
// variable, two variables, a matrix output.
static const char *const sources[] = {
    "x : vector(n)\nA : matrix(n, n)\nwrt x\nf = x'*A*x\n",
    "A : matrix(m, n)\nx : vector(n)\nb : vector(m)\nwrt x\nf = ||A*x - b||^2\n",
    "X : matrix(n, d)\nw : vector(d)\ny : vector(n)\nwrt w\nf = sum(softplus(X*w)) - y'*X*w\n",
    "x : vector(n)\nf = sum(exp(x))\n",
    "w : vector(n)\nlambda : scalar\nwrt w\nf = lambda*||w||^2\n",
    "x : vector(n)\nf = logsumexp(x)\n",
    "A : matrix(m, n)\nx : vector(n)\nwrt x\nF = A*x\n",
    "x : vector(n)\nF = exp(x)\n",
    "p : vector(n)\nq : vector(n)\nl : scalar\nwrt p\nF = (1 - l/norm2(p - q))*(p - q)\n",
    "U : matrix(m, k)\nV : matrix(k, n)\nwrt U, V\nf = sum(log(1 + exp(U*V)))\n",
    "X : matrix(n, k)\nW : matrix(k, m)\nwrt W, X\nY = tanh(X*W)\n",
    "x : scalar\ny : vector(n)\nf = x^3*sum(y.*y)\n",
};

Test(emit2, sources) {
  for (size_t i = 0; i < sizeof sources / sizeof *sources; i++)
    check_source("sources", sources[i]);
}

// Each refuses what it has no meaning for, and a result that overlaps an
// input is computed as if after reading it.
Test(emit2, refusals_and_overlap) {
  md_error err;
  md_function *f = md_compile("A : matrix(n, n)\nY = A*A\n", "t.expr", &err);
  cr_assert_not_null(f, "%s", err.diag);
  long dims[1] = {2};
  double A[4] = {1, 2, 3, 4}, H[16] = {0}, J[16] = {0};
  const double *in[1] = {A};
  cr_expect_eq(md_hessian(f, dims, in, H, &err), -1);
  cr_expect(strstr(err.message, "scalar output"), "%s", err.message);
  cr_expect_eq(md_hvp(f, dims, in, NULL, NULL, &err), -1);
  cr_expect_eq(md_jacobian(f, dims, in, NULL, &err), -1);
  cr_expect(strstr(err.message, "no buffer"), "%s", err.message);
  // d vec(A*A) = dA*A + A*dA: row (i,j), column (k,l) is
  // [i==k]*A(l,j) + A(i,k)*[l==j].
  cr_assert_eq(md_jacobian(f, dims, in, J, &err), 0, "%s", err.message);
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 2; j++)
      for (int k = 0; k < 2; k++)
        for (int l = 0; l < 2; l++)
          cr_expect_float_eq(J[(i * 2 + j) * 4 + k * 2 + l],
                             (i == k) * A[l * 2 + j] + A[i * 2 + k] * (l == j), 1e-15);
  md_free(f);
  // An in-place HVP: hv == the input, added at the old value.
  f = md_compile("x : vector(n)\nf = sum(x.^3)\n", "t.expr", &err);
  cr_assert_not_null(f, "%s", err.diag);
  double x[2] = {1, 2}, d[2] = {1, 1};
  const double *xi[1] = {x}, *di[1] = {d};
  double *hv[1] = {x};
  cr_assert_eq(md_hvp(f, dims, xi, di, hv, &err), 0, "%s", err.message);
  cr_expect_float_eq(x[0], 1 + 6 * 1, 1e-15);
  cr_expect_float_eq(x[1], 2 + 6 * 2, 1e-15);
  cr_expect_eq(md_jacobian(f, dims, xi, J, &err), -1);
  cr_expect(strstr(err.message, "md_grad"), "%s", err.message);
  md_free(f);
}
