/*
 * test_front.c - the front end through the public API: every diagnostic in
 * tests/cases/errors.txt, down to the caret line, then what the data file
 * cannot say: precedence and associativity, transposes, comments, `;`,
 * `...`, number spellings, and the names and sizes md_compile reports;
 * and one-line expressions through md_expr_source and md_compile_expr.
 *
 * The parse tests are numeric: each source is compiled, evaluated through
 * md_eval and held against a value worked out by hand (in the comment above
 * it), so a wrong parse shows up as a wrong number.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cases.h"
#include "matdiff.h"

#define ERRORS_FILE MD_SRC_DIR "/tests/cases/errors.txt"

/* ---- errors.txt --------------------------------------------------------- */

static Case *load_errors(int *n) {
  Case *cs;
  *n = cases_load(ERRORS_FILE, &cs);
  cr_assert_geq(*n, 0, "cannot read %s", ERRORS_FILE);
  return cs;
}

// One case: md_compile must fail with the expected diagnostic, or for a
// case flagged "expr" md_compile_expr, whose file is "<expr>". Only
// cr_expect here, so that one bad case does not hide the rest of its chunk.
static void check_error(const Case *c) {
  md_error err;
  memset(&err, 0x55, sizeof err);  // garbage, which md_compile must overwrite
  bool expr = cases_flag(c, "expr");
  const char *file = expr ? "<expr>" : "case.expr";
  md_function *f = expr ? md_compile_expr(c->src, NULL, &err) : md_compile(c->src, file, &err);
  if (f) {
    cr_expect_null(f, "%s (errors.txt:%d): compiled, but an error was expected", c->name, c->line);
    md_free(f);
    return;
  }
  int line = 0, col = 0;
  if (!strcmp(c->sect, "error")) {
    cr_expect_str_eq(err.diag, c->expect, "%s (errors.txt:%d): diagnostic\n--- got:\n%s\n--- expected:\n%s",
                     c->name, c->line, err.diag, c->expect);
    int used = 0;
    char form[64];
    snprintf(form, sizeof form, "%s:%%d:%%d: error: %%n", file);
    if (sscanf(c->expect, form, &line, &col, &used) != 2) {
      cr_expect(0, "%s (errors.txt:%d): the expected text has no %s:L:C", c->name, c->line, file);
      return;
    }
    char msg[512];
    snprintf(msg, sizeof msg, "%.*s", (int)strcspn(c->expect + used, "\n"), c->expect + used);
    cr_expect_str_eq(err.message, msg, "%s: err.message \"%s\", expected \"%s\"", c->name,
                     err.message, msg);
  } else if (!strcmp(c->sect, "error-at") && sscanf(c->arg, "%d:%d", &line, &col) == 2) {
    cr_expect(strstr(err.message, c->expect) != NULL, "%s: message \"%s\" lacks \"%s\"", c->name,
              err.message, c->expect);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%s:%d:%d: error: ", file, line, col);
    cr_expect(!strncmp(err.diag, prefix, strlen(prefix)), "%s: diag \"%s\" does not start with \"%s\"",
              c->name, err.diag, prefix);
  } else {
    cr_expect(0, "%s (errors.txt:%d): expected '--- error' or '--- error-at L:C', not '--- %s %s'",
              c->name, c->line, c->sect, c->arg);
    return;
  }
  cr_expect_eq(err.line, line, "%s: err.line %d, expected %d", c->name, err.line, line);
  cr_expect_eq(err.col, col, "%s: err.col %d, expected %d", c->name, err.col, col);
}

#define CHUNK 16

ParameterizedTestParameters(errors, diagnostics) {
  static int starts[CASES_MAX];
  size_t n = cases_chunks(ERRORS_FILE, CHUNK, starts);
  return cr_make_param_array(int, starts, n);
}

// Cases *K to *K + CHUNK - 1 of errors.txt.
ParameterizedTest(int *k, errors, diagnostics) {
  int n;
  Case *cs = load_errors(&n);
  for (int i = *k; i < n && i < *k + CHUNK; i++)
    check_error(&cs[i]);
  cases_free(cs, n);
}

// The file holds what the suite promises: enough cases, each complete.
Test(errors, data_file_is_complete) {
  int n;
  Case *cs = load_errors(&n);
  cr_expect_geq(n, 50, "errors.txt has only %d cases", n);
  for (int i = 0; i < n; i++) {
    cr_expect(!strcmp(cs[i].sect, "error") || !strcmp(cs[i].sect, "error-at"),
              "%s (errors.txt:%d) has no '--- error' section", cs[i].name, cs[i].line);
    cr_expect(cs[i].expect[0], "%s (errors.txt:%d) expects nothing", cs[i].name, cs[i].line);
    for (int j = 0; j < i; j++)
      cr_expect_str_neq(cs[i].name, cs[j].name, "two cases are named %s", cs[i].name);
  }
  cases_free(cs, n);
}

/* ---- compiling and evaluating small sources ----------------------------- */

static md_function *compile_ok(const char *src) {
  md_error err;
  md_function *f = md_compile(src, "unit.expr", &err);
  cr_assert_not_null(f, "does not compile:\n%s\n%s", src, err.diag);
  return f;
}

// The value of SRC at INPUTS (one buffer per declared variable).
static double eval_at(const char *src, const long *dims, const double *const *inputs) {
  md_function *f = compile_ok(src);
  md_error err;
  double y = NAN;
  int rc = md_eval(f, dims, inputs, &y, &err);
  cr_assert_eq(rc, 0, "md_eval failed on\n%s\n%s", src, err.message);
  md_free(f);
  return y;
}

// A source with the single scalar input x, at X.
static double eval_x(const char *src, double x) {
  const double *in[] = {&x};
  return eval_at(src, NULL, in);
}

static void expect_near(double got, double want, const char *what) {
  cr_expect(fabs(got - want) <= 1e-13 * fmax(1, fabs(want)), "%s: got %.17g, expected %.17g", what,
            got, want);
}

/* ---- precedence and associativity --------------------------------------- */

// -x^2 is -(x^2): at x = 3, -9, where (-x)^2 would be 9.
Test(parse, unary_minus_below_power) {
  expect_near(eval_x("x : scalar\ny = -x^2\n", 3), -9, "-x^2 at 3");
  expect_near(eval_x("x : scalar\ny = (-x)^2\n", 3), 9, "(-x)^2 at 3");
  expect_near(eval_x("x : scalar\ny = 1 - x^2\n", 3), -8, "1 - x^2 at 3");
  expect_near(eval_x("x : scalar\ny = -x*x + x\n", 3), -6, "-x*x + x at 3");
}

// The exponent may be a unary minus: 2^-1 = 0.5, x^-2 at 2 = 0.25, 2^-x at 3 = 1/8.
Test(parse, negative_exponent) {
  expect_near(eval_x("x : scalar\ny = x*2^-1\n", 3), 1.5, "x*2^-1 at 3");
  expect_near(eval_x("x : scalar\ny = x^-2\n", 2), 0.25, "x^-2 at 2");
  expect_near(eval_x("x : scalar\ny = 2^-x\n", 3), 0.125, "2^-x at 3");
  expect_near(eval_x("x : scalar\ny = x^-x\n", 2), 0.25, "x^-x at 2");
}

// ^ is right associative: 2^3^2 = 2^9 = 512, not 8^2 = 64; x^2^-1 at 4 is
// 4^0.5 = 2, not (4^2)^-1.
Test(parse, power_is_right_associative) {
  expect_near(eval_x("x : scalar\ny = x*2^3^2\n", 1), 512, "x*2^3^2");
  expect_near(eval_x("x : scalar\ny = x*(2^3)^2\n", 1), 64, "x*(2^3)^2");
  expect_near(eval_x("x : scalar\ny = x^2^-1\n", 4), 2, "x^2^-1 at 4");
}

// .^ too: 2 .^ x .^ 2 at x = [1, 2] is [2^1, 2^4], summing to 18; read left
// to right it would be [4, 16], 20.
Test(parse, elementwise_power_is_right_associative) {
  double x[] = {1, 2};
  const double *in[] = {x};
  expect_near(eval_at("x : vector(2)\ny = sum(2 .^ x .^ 2)\n", NULL, in), 18, "2 .^ x .^ 2");
}

// * and / are left associative: x/2/4 at 8 is 1, x/(2/4) would be 16.
Test(parse, division_is_left_associative) {
  expect_near(eval_x("x : scalar\ny = x/2/4\n", 8), 1, "x/2/4 at 8");
  expect_near(eval_x("x : scalar\ny = x - 2 - 4\n", 8), 2, "x - 2 - 4 at 8");
  expect_near(eval_x("x : scalar\ny = x/2*4\n", 8), 16, "x/2*4 at 8");
}

// A^-1 is inv(A) and A^-k is inv(A)^k: with A = [2 1; 1 1], inv(A) =
// [1 -1; -1 2] sums to 1, inv(A)^2 = [2 -3; -3 5] has trace 7, and
// inv(A)^3 = [5 -8; -8 13] sums to 2. The exponent may be parenthesised.
Test(parse, negative_matrix_power) {
  const double A[] = {2, 1, 1, 1};
  const double *in[] = {A};
  const char *decl = "A : matrix(2, 2)\n";
  char src[128];
  snprintf(src, sizeof src, "%sy = sum(A^-1)\n", decl);
  expect_near(eval_at(src, NULL, in), 1, "sum(A^-1)");
  snprintf(src, sizeof src, "%sy = tr(A^-2)\n", decl);
  expect_near(eval_at(src, NULL, in), 7, "tr(A^-2)");
  snprintf(src, sizeof src, "%sy = sum(A^(-3))\n", decl);
  expect_near(eval_at(src, NULL, in), 2, "sum(A^(-3))");
  snprintf(src, sizeof src, "%sy = sum(A^-1*A)\n", decl);
  expect_near(eval_at(src, NULL, in), 2, "sum(A^-1*A)");
}

// vector(v), matrix(v) and a bare eye take their size from where they
// stand: with x = [1 2 3] and A = [2 1; 1 1], x'*vector(1) = 6,
// sum(A + eye) = 5 + 2, sum(matrix(2) .* A) = 10, vector(x'*x)'*x = 14*6.
// A variable or an intermediate named eye is that, not the identity.
Test(parse, inferred_constants) {
  const double x[] = {1, 2, 3}, A[] = {2, 1, 1, 1};
  const double *in[] = {x, A};
  const char *decl = "x : vector(3)\nA : matrix(2, 2)\n";
  char src[160];
  snprintf(src, sizeof src, "%sy = x'*vector(1)\n", decl);
  expect_near(eval_at(src, NULL, in), 6, "x'*vector(1)");
  snprintf(src, sizeof src, "%sy = sum(A + eye)\n", decl);
  expect_near(eval_at(src, NULL, in), 7, "sum(A + eye)");
  snprintf(src, sizeof src, "%sy = sum(matrix(2) .* A)\n", decl);
  expect_near(eval_at(src, NULL, in), 10, "sum(matrix(2) .* A)");
  snprintf(src, sizeof src, "%sy = vector(x'*x)'*x\n", decl);
  expect_near(eval_at(src, NULL, in), 84, "vector(x'*x)'*x");
  snprintf(src, sizeof src, "%seye = A*A\ny = sum(eye)\n", decl);
  expect_near(eval_at(src, NULL, in), 5 + 3 + 3 + 2, "an intermediate named eye");
  const double *in2[] = {x, A, A};
  snprintf(src, sizeof src, "%seye : matrix(2, 2)\ny = sum(eye)\n", decl);
  expect_near(eval_at(src, NULL, in2), 5, "an input named eye");
}

/* ---- transposes ----------------------------------------------------------- */

// A = [1 2 3; 4 5 6], B = [1 0 2; -1 1 0].
static const double A23[] = {1, 2, 3, 4, 5, 6}, B23[] = {1, 0, 2, -1, 1, 0};
static const char AB_DECL[] = "A : matrix(2, 3)\nB : matrix(2, 3)\n";

static double eval_ab(const char *expr) {
  char src[256];
  snprintf(src, sizeof src, "%sy = %s\n", AB_DECL, expr);
  const double *in[] = {A23, B23};
  return eval_at(src, NULL, in);
}

// sum(A'*B) = sum_k rowsum(A)_k * rowsum(B)_k = 6*3 + 15*0 = 18;
// sum(A*B') = sum_k colsum(A)_k * colsum(B)_k = 5*0 + 7*1 + 9*2 = 25;
// sum(A .* B) = 1 + 6 - 4 + 5 = 8, however the transposes pair up;
// sum((A + B)') = sum(A) + sum(B) = 21 + 3.
Test(parse, transposes) {
  expect_near(eval_ab("sum(A'*B)"), 18, "sum(A'*B)");
  expect_near(eval_ab("sum(A*B')"), 25, "sum(A*B')");
  expect_near(eval_ab("sum((B*A')')"), 25, "sum((B*A')')");
  expect_near(eval_ab("sum(A .* B'')"), 8, "sum(A .* B'')");
  expect_near(eval_ab("sum(A' .* B')"), 8, "sum(A' .* B')");
  expect_near(eval_ab("sum((A + B)')"), 21 + 3, "sum((A + B)')");
  // A*B' = [7 1; 16 1]; times B: [6 1 14; 15 1 32], summing to 69.
  expect_near(eval_ab("sum(A*B'*B)"), 69, "sum(A*B'*B)");
}

// ' binds tighter than ^: x'^2 = x^2 = 9 at 3; a scalar's transpose is itself.
Test(parse, transpose_binds_tighter_than_power) {
  expect_near(eval_x("x : scalar\ny = x'^2\n", 3), 9, "x'^2 at 3");
  expect_near(eval_x("x : scalar\ny = -x''\n", 3), -3, "-x'' at 3");
}

/* ---- comments, statements, continuation --------------------------------- */

Test(parse, comments) {
  expect_near(eval_x("# a leading comment with * and ||\n"
                     "x : scalar   # after a declaration\n"
                     "\n"
                     "   # indented, between statements\n"
                     "y = x*x # x squared; not x*x*x\n",
                     3),
              9, "comments");
  expect_near(eval_x("x : scalar\ny = x # no final newline", 3), 3, "comment at the end");
}

Test(parse, semicolons) {
  double x = 3, b = 4;
  const double *in[] = {&x, &b};
  expect_near(eval_at("x : scalar; b : scalar; y = x*b\n", NULL, in), 12, "x*b");
  expect_near(eval_at("x : scalar;; b : scalar;\ny = x + b;\n", NULL, in), 7, "x + b");
  expect_near(eval_at("x : scalar; b : scalar; r = x*b; y = r - b\n", NULL, in), 8, "r - b");
}

Test(parse, line_continuation) {
  expect_near(eval_x("x : scalar\ny = x + ...\n    x*x\n", 3), 12, "x + ... x*x");
  expect_near(eval_x("x : scalar\ny = x ...   # a note\n  + 1\n", 3), 4, "with a comment");
  expect_near(eval_x("x : scalar\ny = (x + ...\n 1)*2\n", 3), 8, "inside parentheses");
  expect_near(eval_x("x : scalar\ny = x ...\r\n  * 2\r\n", 3), 6, "CRLF");
}

Test(parse, crlf_and_no_final_newline) {
  expect_near(eval_x("x : scalar\r\ny = 2*x\r\n", 3), 6, "CRLF");
  expect_near(eval_x("x : scalar\ny = 2*x", 3), 6, "no final newline");
  expect_near(eval_x("\n\nx : scalar\n\n\ny = 2*x\n\n\n", 3), 6, "blank lines");
}

Test(parse, number_spellings) {
  expect_near(eval_x("x : scalar\ny = x*.5 + 1e-3 + 2.5e+1 + 1E2 + 007\n", 2), 1 + 0.001 + 25 + 100 + 7,
              "numbers");
}

// A size name in an expression is its value: the mean of x = [1 2 3 4] is 2.5.
Test(parse, size_as_a_value) {
  double x[] = {1, 2, 3, 4};
  const double *in[] = {x};
  const long dims[] = {4};
  expect_near(eval_at("x : vector(n)\ny = sum(x)/n\n", dims, in), 2.5, "sum(x)/n");
  expect_near(eval_at("x : vector(n)\ny = n*sum(x) - n^2\n", dims, in), 24, "n*sum(x) - n^2");
}

// The last assignment is the output, and earlier ones are intermediates.
Test(parse, intermediates_and_output_name) {
  md_function *f = compile_ok("x : scalar\nr = x + 1\nloss = r*r\n");
  cr_expect_str_eq(md_output_name(f), "loss");
  double x = 2, y = 0;
  const double *in[] = {&x};
  md_error err;
  cr_assert_eq(md_eval(f, NULL, in, &y, &err), 0, "%s", err.message);
  expect_near(y, 9, "(x + 1)^2 at 2");
  md_free(f);
}

/* ---- declarations: sizes and inputs -------------------------------------- */

// Sizes are numbered in order of first appearance, across declarations and
// within one (k before n in 'matrix(k, n)').
Test(decl, symbolic_sizes_in_order_of_first_appearance) {
  md_function *f = compile_ok("A : matrix(n, k)\n"
                              "v : vector(m)\n"
                              "s : scalar\n"
                              "B : matrix(k, p)\n"
                              "C : matrix(q, n)\n"
                              "y = sum(A*B) + sum(v) + s + sum(C)\n");
  const char *want[] = {"n", "k", "m", "p", "q"};
  cr_assert_eq(md_num_dims(f), 5, "md_num_dims = %d", md_num_dims(f));
  for (int i = 0; i < 5; i++)
    cr_expect_str_eq(md_dim_name(f, i), want[i], "dim %d is %s, expected %s", i, md_dim_name(f, i),
                     want[i]);
  cr_expect_null(md_dim_name(f, 5));
  cr_expect_null(md_dim_name(f, -1));
  md_free(f);

  f = compile_ok("A : matrix(k, n)\nB : matrix(n, k)\ny = sum(A*B)\n");
  cr_assert_eq(md_num_dims(f), 2);
  cr_expect_str_eq(md_dim_name(f, 0), "k");
  cr_expect_str_eq(md_dim_name(f, 1), "n");
  md_free(f);

  f = compile_ok("A : matrix(2, 3)\ny = sum(A)\n");
  cr_expect_eq(md_num_dims(f), 0);
  md_free(f);
}

Test(decl, inputs_in_declaration_order_with_shapes) {
  md_function *f = compile_ok("A : matrix(n, k)\n"
                              "v : vector(m)\n"
                              "s : scalar\n"
                              "B : matrix(k, 4)\n"
                              "y = sum(A*B) + sum(v)*s\n");
  const char *name[] = {"A", "v", "s", "B"};
  const long dims[] = {2, 3, 5};  // n, k, m
  const long rows[] = {2, 5, 1, 3}, cols[] = {3, 1, 1, 4};
  cr_assert_eq(md_num_inputs(f), 4);
  for (int i = 0; i < 4; i++) {
    cr_expect_str_eq(md_input_name(f, i), name[i]);
    cr_expect_eq(md_input_rows(f, i, dims), rows[i], "%s rows %ld", name[i], md_input_rows(f, i, dims));
    cr_expect_eq(md_input_cols(f, i, dims), cols[i], "%s cols %ld", name[i], md_input_cols(f, i, dims));
    cr_expect(md_input_is_wrt(f, i), "%s: with no wrt, every input has a gradient", name[i]);
  }
  cr_expect_null(md_input_name(f, 4));
  // Without sizes, only the literal ones are known.
  cr_expect_eq(md_input_rows(f, 0, NULL), -1);
  cr_expect_eq(md_input_rows(f, 2, NULL), 1);
  cr_expect_eq(md_input_cols(f, 3, NULL), 4);
  // Which size each side is: n=0, k=1, m=2 symbolic, -1 literal, -2 no such.
  const int rdim[] = {0, 2, -1, 1}, cdim[] = {1, -1, -1, -1};
  for (int i = 0; i < 4; i++) {
    cr_expect_eq(md_input_dim(f, i, 0), rdim[i], "%s rows: size %d", name[i], md_input_dim(f, i, 0));
    cr_expect_eq(md_input_dim(f, i, 1), cdim[i], "%s cols: size %d", name[i], md_input_dim(f, i, 1));
    cr_expect_eq(md_input_is_vector(f, i), i == 1, "%s: vector %d", name[i], md_input_is_vector(f, i));
  }
  cr_expect_eq(md_input_dim(f, 4, 0), -2);
  cr_expect_eq(md_input_dim(f, 0, 2), -2);
  cr_expect_eq(md_output_dim(f, 0), -1);
  cr_expect_eq(md_output_dim(f, 1), -1);
  md_free(f);
  f = compile_ok("A : matrix(n, k)\nB : matrix(k, 3)\nY = A*B\n");
  cr_expect_eq(md_output_dim(f, 0), 0);
  cr_expect_eq(md_output_dim(f, 1), -1);
  cr_expect_eq(md_output_cols(f, NULL), 3);
  cr_expect_eq(md_output_dim(f, -1), -2);
  md_free(f);
}

Test(decl, wrt_selects_gradients) {
  md_function *f = compile_ok("X : matrix(2, 3)\nW : matrix(3, 2)\nc : scalar\nwrt W, c\n"
                              "y = c*||X*W||_F^2\n");
  cr_expect(!md_input_is_wrt(f, 0));
  cr_expect(md_input_is_wrt(f, 1));
  cr_expect(md_input_is_wrt(f, 2));
  cr_expect_null(md_grad_formula(f, 0), "X is not in wrt, yet has a formula");
  cr_expect_not_null(md_grad_formula(f, 1));
  cr_expect_not_null(md_grad_formula(f, 2));
  md_free(f);
}

/* ---- md_compile's contract ----------------------------------------------- */

Test(api, null_filename_is_input) {
  md_error err;
  cr_assert_null(md_compile("x : scalar\ny = q\n", NULL, &err));
  cr_expect_str_eq(err.diag, "<input>:2:5: error: undeclared variable 'q'\ny = q\n    ^");
}

Test(api, null_source) {
  md_error err;
  cr_assert_null(md_compile(NULL, "x.expr", &err));
  cr_expect(err.message[0], "no message for a NULL source");
  cr_expect_eq(err.line, 0);
  cr_expect_eq(err.col, 0);
  md_free(NULL);  // harmless
}

Test(api, success_clears_the_error) {
  md_error err;
  memset(&err, 'x', sizeof err);
  md_function *f = md_compile("x : scalar\ny = x\n", "ok.expr", &err);
  cr_assert_not_null(f);
  cr_expect_eq(err.message[0], '\0', "message left: %.40s", err.message);
  cr_expect_eq(err.diag[0], '\0');
  cr_expect_eq(err.line, 0);
  md_free(f);
}

// Only the first error is reported, and a NULL md_error is allowed.
Test(api, first_error_only_and_null_err) {
  md_error err;
  cr_assert_null(md_compile("x : scalar\ny = q\nz = p\n", "two.expr", &err));
  cr_expect_str_eq(err.message, "undeclared variable 'q'");
  cr_expect_null(md_compile("x : scalar\ny = q\n", "e.expr", NULL));
}

/* ---- one-line expressions: md_expr_source, md_compile_expr --------------- */

// x'*A*x at x = [1 2], A = [1 2; 3 4]: x'*A*x = [1 2]*[5; 11] = 27, and its
// gradient (A + A')*x = [2 5; 5 8]*[1; 2] = [12; 21], A's x*x' = [1 2; 2 4].
Test(expr, compile_and_evaluate) {
  md_error err;
  memset(&err, 0x55, sizeof err);
  md_function *f = md_compile_expr("x'*A*x", NULL, &err);
  cr_assert_not_null(f, "%s", err.diag);
  cr_expect_eq(err.message[0], '\0', "success left a message");
  cr_assert_eq(md_num_inputs(f), 2);
  cr_expect_str_eq(md_input_name(f, 0), "x");
  cr_expect_str_eq(md_input_name(f, 1), "A");
  cr_assert_eq(md_num_dims(f), 1);
  cr_expect_str_eq(md_dim_name(f, 0), "n");
  cr_expect_str_eq(md_output_name(f), "f");
  const long dims[] = {2};
  const double x[] = {1, 2}, A[] = {1, 2, 3, 4};
  const double *in[] = {x, A};
  double dx[2] = {0}, dA[4] = {0}, y = 0;
  double *g[] = {dx, dA};
  cr_assert_eq(md_grad(f, dims, in, &y, g, &err), 0, "%s", err.message);
  expect_near(y, 27, "x'*A*x");
  const double want_dx[] = {12, 21}, want_dA[] = {1, 2, 2, 4};
  for (int i = 0; i < 2; i++)
    expect_near(dx[i], want_dx[i], "d/dx");
  for (int i = 0; i < 4; i++)
    expect_near(dA[i], want_dA[i], "d/dA");
  md_free(f);
}

// wrt: names between commas or blanks, in any order; the program lists
// them in declaration order. An empty list is every variable.
Test(expr, wrt_lists) {
  const char *lists[] = {"A,x", " x , A ", "A x", "x\tA,"};
  for (int i = 0; i < 4; i++) {
    md_error err;
    char *src = md_expr_source("x'*A*x", lists[i], &err);
    cr_assert_not_null(src, "wrt \"%s\": %s", lists[i], err.diag);
    cr_expect_str_eq(src, "x : vector(n)\nA : matrix(n, n)\nwrt x, A\nf = x'*A*x\n", "wrt \"%s\"",
                     lists[i]);
    free(src);
  }
  md_error err;
  char *src = md_expr_source("  x'*A*x  \n", "", &err);
  cr_assert_not_null(src, "%s", err.diag);
  cr_expect_str_eq(src, "x : vector(n)\nA : matrix(n, n)\nf = x'*A*x\n");
  free(src);
  md_function *f = md_compile_expr("x'*A*x", "A", &err);
  cr_assert_not_null(f, "%s", err.diag);
  cr_expect(!md_input_is_wrt(f, 0), "x is not in wrt");
  cr_expect(md_input_is_wrt(f, 1), "A is in wrt");
  md_free(f);
}

Test(expr, bad_calls) {
  md_error err;
  cr_expect_null(md_expr_source("x'*A*x", "x, q", &err));
  cr_expect_str_eq(err.message, "'q' in wrt is not a variable of the expression; its variables are x and A");
  cr_expect_eq(err.line, 0);
  cr_expect_null(md_compile_expr("a*b", "c", &err));
  cr_expect_str_eq(err.message, "'c' in wrt is not a variable of the expression; its variables are a and b");
  cr_expect_null(md_expr_source(NULL, NULL, &err));
  cr_expect(err.message[0], "no message for a NULL expression");
  cr_expect_null(md_compile_expr(NULL, NULL, &err));
  cr_expect_null(md_expr_source("x*y", NULL, NULL), "a NULL md_error is allowed");
  // An error in the expression points into it.
  cr_expect_null(md_compile_expr("sum(x) + y*z", NULL, &err));
  cr_expect_eq(err.line, 1);
  cr_expect_eq(err.col, 11);
}

