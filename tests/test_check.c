/*
 * test_check.c - the checker and its oracles (compiler/check.c), as the
 * public API gives them:
 *
 *   rng        md_rng's stream, pinned to reference values, and its moments
 *   rel_err    md_rel_err's scale: relative above 1, absolute below, NaN kept
 *   tape       md_tape_vjp, md_tape_jvp and md_tape_hvp against derivatives
 *              derived by hand, with md_grad's conventions (adds, NULL
 *              entries, inputs not in wrt, a seed)
 *   check      md_check: agreement where the gradient is right, and a
 *              disagreement found where finite differences see a kink the
 *              symbolic subgradient does not; the fallback distributions;
 *              given inputs and seeds; errors
 */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>
#include "matdiff.h"

static md_function *compile_ok(const char *src) {
  md_error err;
  md_function *f = md_compile(src, "check.expr", &err);
  cr_assert_not_null(f, "%s", err.diag);
  return f;
}

/* ---- md_rng --------------------------------------------------------------- */

// splitmix64 from 0 gives 0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4, ...
// (the reference test vector), and xoshiro256** from there gives the
// uniforms and normals below on every IEEE-754 platform. If these change,
// every seeded random input changes with them.
Test(rng, reference_values) {
  md_rng r;
  md_rng_seed(&r, 0);
  cr_assert_eq(r.s[0], 0xe220a8397b1dcdafULL);
  cr_assert_eq(r.s[1], 0x6e789e6aa1b965f4ULL);
  cr_assert_eq(r.s[2], 0x06c45d188009454fULL);
  cr_assert_eq(r.s[3], 0xf88bb8a8724c81ecULL);
  md_rng_seed(&r, 42);
  cr_assert_eq(md_rng_uniform(&r), 0x1.5780b2e0c2ecp-4);
  cr_assert_eq(md_rng_uniform(&r), 0x1.84136619b444ep-2);
  cr_assert_eq(md_rng_uniform(&r), 0x1.5c2ea66473c93p-1);
  md_rng_seed(&r, 42);
  cr_assert_eq(md_rng_normal(&r), -0x1.73d2feb0fb377p-1);
  cr_assert_eq(md_rng_normal(&r), 0x1.c5e21f7812a4ep-3);
  cr_assert_eq(md_rng_normal(&r), 0x1.db514bfac5b4ep-2);
  cr_assert_eq(md_rng_normal(&r), 0x1.79eb7c13cfccdp+0);
}

Test(rng, same_seed_same_stream) {
  md_rng a, b, c;
  md_rng_seed(&a, 12345);
  md_rng_seed(&b, 12345);
  md_rng_seed(&c, 12346);
  int differ = 0;
  for (int i = 0; i < 10000; i++) {
    double x = md_rng_normal(&a), y = md_rng_normal(&b), z = md_rng_normal(&c);
    cr_assert(!memcmp(&x, &y, sizeof x), "draw %d: %a != %a", i, x, y);
    differ += x != z;
  }
  cr_assert_gt(differ, 9990, "seeds 12345 and 12346 give nearly the same stream");
}

Test(rng, uniform_range) {
  md_rng r;
  md_rng_seed(&r, 1);
  double sum = 0;
  for (int i = 0; i < 100000; i++) {
    double u = md_rng_uniform(&r);
    cr_assert(u >= 0 && u < 1, "%a out of [0, 1)", u);
    sum += u;
  }
  cr_assert(fabs(sum / 100000 - 0.5) < 0.01, "mean %g", sum / 100000);
}

// Loose bounds, many standard errors wide: mean 0 (se 0.003), variance 1
// (se 0.0045), P(|z| < 1) = 0.6827 (se 0.0015).
Test(rng, normal_moments) {
  enum { N = 100000 };
  md_rng r;
  md_rng_seed(&r, 2024);
  double sum = 0, sumsq = 0;
  long inside = 0;
  for (int i = 0; i < N; i++) {
    double z = md_rng_normal(&r);
    cr_assert(isfinite(z));
    sum += z;
    sumsq += z * z;
    inside += fabs(z) < 1;
  }
  double mean = sum / N, var = sumsq / N - mean * mean;
  cr_assert(fabs(mean) < 0.02, "mean %g", mean);
  cr_assert(fabs(var - 1) < 0.03, "variance %g", var);
  cr_assert(fabs((double)inside / N - 0.6827) < 0.01, "P(|z| < 1) = %g", (double)inside / N);
}

/* ---- md_rel_err ----------------------------------------------------------- */

Test(rel_err, relative_above_one_absolute_below) {
  // max|a - b| = 2 against max|b| = 100: 0.02.
  cr_expect_eq(md_rel_err((double[]){101, 3}, (double[]){100, 1}, 2), 0.02);
  // Against a reference below 1 the difference itself counts.
  cr_expect_eq(md_rel_err((double[]){0.25, 0}, (double[]){0.5, 0}, 2), 0.25);
  cr_expect_eq(md_rel_err((double[]){1e-20}, (double[]){0}, 1), 1e-20);
  cr_expect_eq(md_rel_err(NULL, NULL, 0), 0);
}

Test(rel_err, nan_is_never_hidden) {
  cr_expect(isnan(md_rel_err((double[]){NAN, 1}, (double[]){1, 1}, 2)));
  cr_expect(isnan(md_rel_err((double[]){1, NAN}, (double[]){1, 1}, 2)), "a later NaN is lost");
  cr_expect(isnan(md_rel_err((double[]){1, 5}, (double[]){NAN, 1}, 2)));
}

/* ---- md_tape_vjp ---------------------------------------------------------- */

// The notebook's Practice cell: y = (w*x + b)^2 at w = 2, x = 1, b = 3, so
// u = 5, y = 25, and by hand dy/dw = 2u*x = 10, dy/dx = 2u*w = 20, dy/db = 10.
Test(tape, hand_derivatives_and_conventions) {
  md_function *f = compile_ok("w : scalar\nx : scalar\nb : scalar\nwrt w, b\ny = (w*x + b)^2\n");
  double w = 2, x = 1, b = 3, gw = 100, gx = -7, gb = 0, y = 0;
  const double *in[] = {&w, &x, &b};
  double *g[] = {&gw, &gx, &gb};
  md_error err;
  cr_assert_eq(md_tape_vjp(f, NULL, in, NULL, &y, g, &err), 0, "%s", err.message);
  cr_expect_eq(y, 25);
  cr_expect_eq(gw, 110, "the gradient is added: %g", gw);
  cr_expect_eq(gx, -7, "x is not in wrt, yet its buffer changed: %g", gx);
  cr_expect_eq(gb, 10);
  // A seed scales a scalar output's gradient; a NULL entry is skipped.
  double s = 0.5, *h[] = {NULL, NULL, &gb};
  gb = 0;
  cr_assert_eq(md_tape_vjp(f, NULL, in, &s, NULL, h, &err), 0, "%s", err.message);
  cr_expect_eq(gb, 5);
  md_free(f);
}

// A matrix output: Y = A*x, so seed'*dY/dx = A'*seed and seed'*dY/dA = seed*x'.
Test(tape, matrix_output_vjp) {
  md_function *f = compile_ok("A : matrix(2, 2)\nx : vector(2)\nY = A*x\n");
  double A[] = {1, 2, 3, 4}, x[] = {5, 6}, S[] = {1, -1}, Y[2], gA[4] = {0}, gx[2] = {0};
  const double *in[] = {A, x};
  double *g[] = {gA, gx};
  md_error err;
  cr_assert_eq(md_tape_vjp(f, NULL, in, S, Y, g, &err), 0, "%s", err.message);
  cr_expect(Y[0] == 17 && Y[1] == 39, "Y = %g %g", Y[0], Y[1]);
  cr_expect(gx[0] == -2 && gx[1] == -2, "dx = %g %g", gx[0], gx[1]);
  const double want[] = {5, 6, -5, -6};
  for (int i = 0; i < 4; i++)
    cr_expect_eq(gA[i], want[i], "dA[%d] = %g", i, gA[i]);
  md_free(f);
}

// Forward mode and second order by hand: y = (w*x + b)^2 with u = w*x + b
// = 5 at w = 2, x = 1, b = 3. Along (dw, db) = (1, 2), x not in wrt:
//   dy = 2u*(x*dw + db) = 30;  d(dy/dw) = 2*x*(x*dw + db) = 6,
//   d(dy/db) = 2*(x*dw + db) = 6. The hvps add; x's direction moves nothing.
Test(tape, forward_and_second_order) {
  md_function *f = compile_ok("w : scalar\nx : scalar\nb : scalar\nwrt w, b\ny = (w*x + b)^2\n");
  double w = 2, x = 1, b = 3, dw = 1, dx = 100, db = 2, y = 0, t = 0;
  const double *in[] = {&w, &x, &b}, *dirs[] = {&dw, &dx, &db};
  md_error err;
  cr_assert_eq(md_tape_jvp(f, NULL, in, dirs, &y, &t, &err), 0, "%s", err.message);
  cr_expect(y == 25 && t == 30, "y = %g, dy = %g", y, t);
  double gw = 0, gb = 0, hw = 1, hb = 0, *g[] = {&gw, NULL, &gb}, *hv[] = {&hw, NULL, &hb};
  cr_assert_eq(md_tape_hvp(f, NULL, in, dirs, NULL, NULL, g, hv, &err), 0, "%s", err.message);
  cr_expect(gw == 10 && gb == 10, "gradients %g %g", gw, gb);
  cr_expect(hw == 7 && hb == 6, "hvps %g (added to 1) %g", hw, hb);
  cr_expect_eq(md_tape_jvp(f, NULL, in, dirs, NULL, NULL, &err), -1);
  cr_expect(strstr(err.message, "tangent"), "%s", err.message);
  md_free(f);
}

Test(tape, errors) {
  md_function *f = compile_ok("A : matrix(n, n)\ny = sum(inv(A))\n");
  double A[4] = {0}, g[4] = {0};
  const double *in[] = {A};
  double *gs[] = {g};
  md_error err;
  long n = 2, zero = 0;
  cr_expect_eq(md_tape_vjp(f, NULL, in, NULL, NULL, gs, &err), -1);
  cr_expect(strstr(err.message, "size"), "%s", err.message);
  cr_expect_eq(md_tape_vjp(f, &zero, in, NULL, NULL, gs, &err), -1);
  cr_expect(strstr(err.message, "positive"), "%s", err.message);
  cr_expect_eq(md_tape_vjp(f, &n, in, NULL, NULL, gs, &err), -1);
  cr_expect(strstr(err.message, "the tape failed") && strstr(err.message, "singular"), "%s",
            err.message);
  md_free(f);
}

/* ---- md_check ------------------------------------------------------------- */

Test(check, the_seed_agrees) {
  md_function *f = compile_ok("X : matrix(n, k)\nW : matrix(k, m)\nb : matrix(n, m)\n"
                              "y = ||X*W + b||_F^2\n");
  long dims[] = {4, 3, 2};
  md_check_result r;
  md_error err;
  cr_assert_eq(md_check(f, dims, NULL, &r, &err), 0, "%s", err.message);
  cr_expect(r.ok);
  cr_expect_eq(r.dist, MD_DIST_NORMAL);
  cr_expect_str_eq(r.dist_name, "standard normal");
  cr_expect(!r.well, "nothing is inverted, yet inputs were shifted");
  cr_expect(r.value <= MD_CHECK_TOL_TAPE, "value %g", r.value);
  for (int i = 0; i < 3; i++) {
    cr_expect(r.tape[i] <= MD_CHECK_TOL_TAPE, "%d: tape %g", i, r.tape[i]);
    cr_expect(r.fd[i] <= MD_CHECK_TOL_FD && r.fd[i] > 0, "%d: fd %g", i, r.fd[i]);
  }
  md_check_result_free(&r);
  md_free(f);
}

// relu's symbolic (and the tape's) derivative at 0 is the subgradient 0;
// central differences there see (h - 0)/2h = 1/2. md_check must say so.
Test(check, finds_a_disagreement) {
  md_function *f = compile_ok("x : scalar\nc : scalar\nwrt x\ny = relu(x) + c\n");
  double x = 0, c = 1;
  const double *in[] = {&x, &c};
  md_check_opts o = {.inputs = in};
  md_check_result r;
  md_error err;
  cr_assert_eq(md_check(f, NULL, &o, &r, &err), 0, "%s", err.message);
  cr_expect(!r.ok);
  cr_expect_eq(r.dist, MD_DIST_GIVEN);
  cr_expect_eq(r.tape[0], 0);
  cr_expect(fabs(r.fd[0] - 0.5) < 1e-9, "fd %.17g", r.fd[0]);
  cr_expect(r.tape[1] == 0 && r.fd[1] == 0, "c is not in wrt");
  cr_expect_eq(x, 0, "the given input moved");
  md_check_result_free(&r);
  // Without finite differences the tape alone agrees.
  o.skip_fd = 1;
  cr_assert_eq(md_check(f, NULL, &o, &r, &err), 0, "%s", err.message);
  cr_expect(r.ok);
  cr_expect_eq(r.fd[0], 0);
  md_check_result_free(&r);
  md_free(f);
}

// A large f beside a small gradient: the quartic term makes f about 1e5
// and d/dA is about 1/(3n)^2, so rounding at the step 1e-6 is 1e-5 of it.
// The wider steps agree with the tape, as a wrong gradient would not.
Test(check, a_small_gradient_beside_a_large_value) {
  md_function *f = compile_ok("A : matrix(n, n)\nB : matrix(n, n)\n"
                              "y = ||B'*B'*B*B'||_F^2 + sum(inv(A' + 3*n*eye(n)))\n");
  long n = 5;
  md_check_result r;
  md_error err;
  for (unsigned seed = 1; seed <= 4; seed++) {
    md_rng rng;
    md_rng_seed(&rng, seed);
    md_check_opts o = {.rng = &rng};
    cr_assert_eq(md_check(f, &n, &o, &r, &err), 0, "%s", err.message);
    cr_expect(r.ok && r.fd[0] <= MD_CHECK_TOL_FD, "seed %u: tape %g, fd %g", seed, r.tape[0],
              r.fd[0]);
    md_check_result_free(&r);
  }
  md_free(f);
}

// log of a 6-vector is NaN at almost any normal draw, and at a small one:
// the inputs must come out positive, and the same ones for the same seed.
Test(check, falls_back_to_positive_inputs) {
  md_function *f = compile_ok("x : vector(6)\ny = sum(log(x))\n");
  md_rng rng;
  md_rng_seed(&rng, 1);
  md_check_opts o = {.rng = &rng};
  md_check_result r;
  md_error err;
  cr_assert_eq(md_check(f, NULL, &o, &r, &err), 0, "%s", err.message);
  cr_expect(r.ok, "tape %g, fd %g", r.tape[0], r.fd[0]);
  cr_expect_eq(r.dist, MD_DIST_POSITIVE);
  cr_expect_str_eq(r.dist_name, "uniform in [0.1, 0.9]");
  md_check_result_free(&r);
  md_free(f);
}

// A function that inverts a matrix gets well-conditioned square inputs first.
Test(check, inverted_matrices_are_well_conditioned) {
  md_function *f = compile_ok("A : matrix(n, n)\nB : matrix(n, 2)\ny = sum(inv(A)*B)\n");
  long n = 4;
  md_check_result r;
  md_error err;
  cr_assert_eq(md_check(f, &n, NULL, &r, &err), 0, "%s", err.message);
  cr_expect(r.ok);
  cr_expect(r.well);
  cr_expect_eq(r.dist, MD_DIST_NORMAL);
  md_check_result_free(&r);
  md_free(f);
}

// A matrix output with a given seed: the seed and the inputs are the
// caller's; only nothing is drawn.
Test(check, given_seed_for_a_matrix_output) {
  md_function *f = compile_ok("X : matrix(3, 2)\nW : matrix(2, 2)\nY = tanh(X*W)\n");
  double X[6] = {0.1, -0.2, 0.3, 0.4, -0.5, 0.6}, W[4] = {1, 0.5, -0.5, 1};
  double S[6] = {1, 2, 3, -1, -2, -3};
  const double *in[] = {X, W};
  md_check_opts o = {.inputs = in, .seed = S};
  md_check_result r;
  md_error err;
  cr_assert_eq(md_check(f, NULL, &o, &r, &err), 0, "%s", err.message);
  cr_expect(r.ok, "tape %g %g, fd %g %g", r.tape[0], r.tape[1], r.fd[0], r.fd[1]);
  cr_expect_eq(r.dist, MD_DIST_GIVEN);
  md_check_result_free(&r);
  md_free(f);
}

Test(check, errors) {
  md_function *f = compile_ok("A : matrix(n, n)\ny = sum(inv(A))\n");
  double A[4] = {0};
  const double *in[] = {A};
  md_check_opts o = {.inputs = in};
  md_check_result r;
  md_error err;
  long n = 2, zero = 0;
  cr_expect_eq(md_check(f, NULL, &o, &r, &err), -1);
  cr_expect(strstr(err.message, "sizes are missing"), "%s", err.message);
  cr_expect_eq(md_check(f, &zero, &o, &r, &err), -1);
  cr_expect(strstr(err.message, "positive"), "%s", err.message);
  cr_expect_eq(md_check(f, &n, &o, &r, &err), -1);
  cr_expect(strstr(err.message, "singular"), "%s", err.message);
  cr_expect(!r.ok && !r.tape && !r.fd);
  md_check_result_free(&r);
  cr_expect_eq(md_check(NULL, &n, &o, &r, &err), -1);
  cr_expect_eq(md_check(f, &n, &o, NULL, &err), -1);
  md_free(f);
}
