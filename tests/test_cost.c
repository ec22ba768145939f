/*
 * test_cost.c - the cheap-gradient bound of reverse mode: computing the
 * value and every gradient costs at most about 4 times the value alone
 * (Griewank and Walther, "Evaluating Derivatives", ch. 4). It holds for
 * every example at several sizes, counting the operations of the emitted
 * code (md_flops). Its second-order counterpart: the Hessian-vector
 * product along every direction (forward over reverse) costs at most 10
 * times the value.
 */
#include <criterion/criterion.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include "util.h"

static void check_file(const char *path) {
  char *src = slurp(path);
  cr_assert(src, "cannot read %s", path);
  md_error err;
  md_function *f = md_compile(src, path, &err);
  cr_assert(f, "%s", err.diag);
  static const long sizes[] = {3, 20, 200};
  for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
    long dims[16];
    for (int d = 0; d < md_num_dims(f) && d < 16; d++)
      dims[d] = sizes[s] + d;  // distinct sizes, so that no product is square by accident
    double v = md_flops(f, dims, 0), g = md_flops(f, dims, 1);
    cr_assert(v > 0 && g >= v, "%s: value %g, gradients %g", path, v, g);
    cr_expect(g <= 4 * v, "%s at size %ld: gradients cost %.2f times the value", path, sizes[s], g / v);
    double h = md_flops(f, dims, MD_FLOPS_HVP);
    cr_assert(h > 0, "%s: the HVP costs %g", path, h);
    cr_expect(h <= 10 * v, "%s at size %ld: the HVP costs %.2f times the value", path, sizes[s], h / v);
    cr_log_info("%s at size %ld: HVP %.2f times the value", path, sizes[s], h / v);
  }
  md_free(f);
  free(src);
}

Test(cost, every_example_within_the_cheap_gradient_bound) {
  glob_t g;
  cr_assert_eq(glob(MD_SRC_DIR "/examples/*.expr", 0, NULL, &g), 0);
  cr_assert(g.gl_pathc >= 8);
  for (size_t i = 0; i < g.gl_pathc; i++)
    check_file(g.gl_pathv[i]);
  globfree(&g);
}

Test(cost, a_product_costs_2mnk) {
  md_error err;
  md_function *f = md_compile("A : matrix(m, k); B : matrix(k, n)\ny = ||A*B||_F^2\n", "p", &err);
  cr_assert(f, "%s", err.diag);
  long dims[] = {7, 5, 3};  // m, k, n: first appearance
  // A*B: 2*m*k*n; the squares and their sum: 2*m*n.
  cr_assert_float_eq(md_flops(f, dims, 0), 2.0 * 7 * 5 * 3 + 2 * 7 * 3, 1e-9);
  md_free(f);
}

// A'*A written fresh is one syrk: one triangle of the k x k result,
// k*(k+1)*m operations, not gemm's 2*k*k*m.
Test(cost, a_symmetric_product_costs_one_triangle) {
  md_error err;
  md_function *f = md_compile("A : matrix(m, k)\nY = A'*A\n", "s", &err);
  cr_assert(f, "%s", err.diag);
  long dims[] = {7, 5};
  cr_assert_float_eq(md_flops(f, dims, 0), 5.0 * 6 * 7, 1e-9);
  md_free(f);
}

// sum(A*B) never forms A*B: it is 1'*A*B*1 grouped from an end, a sum
// over one factor and a matrix-vector product with the other, at most
// 2*(m*k + k*n) + m + k operations (the product alone is 2*m*k*n = 210).
Test(cost, the_sum_of_a_product_costs_no_product) {
  md_error err;
  md_function *f = md_compile("A : matrix(m, k); B : matrix(k, n)\ny = sum(A*B)\n", "p", &err);
  cr_assert(f, "%s", err.diag);
  long dims[] = {7, 5, 3};
  double flops = md_flops(f, dims, 0);
  cr_assert(flops > 0 && flops <= 2.0 * (7 * 5 + 5 * 3) + 7 + 5, "%g operations", flops);
  md_free(f);
}
