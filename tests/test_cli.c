/*
 * test_cli.c - the matdiff command as a user runs it: what it prints, its
 * diagnostics and exit status, and its options, parsed from one table
 * (cli.c's options[]): each verb's own, "--opt VALUE" and "--opt=VALUE",
 * and an error that names the option at fault. Each test runs in its own
 * temporary directory.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "util.h"

#define MATDIFF MD_BUILD_DIR "/matdiff"
#define SEED MD_SRC_DIR "/examples/seed.expr"

static void setup(void) { tmpdir_setup("test_cli"); }

TestSuite(cli, .init = setup, .fini = tmpdir_remove);

// One run of matdiff: its exit status, stdout and stderr.
typedef struct Run {
  int status;
  char *out, *err;
} Run;

// matdiff ARGS (shell words, paths in the test's directory spelled as they
// are); free with run_free.
static Run matdiff(const char *args) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "%s %s >%s 2>%s", MATDIFF, args, tmpdir_path("stdout"),
           tmpdir_path("stderr"));
  Run r = {run(cmd), slurp(tmpdir_path("stdout")), slurp(tmpdir_path("stderr"))};
  cr_assert(r.out && r.err, "no output from: %s", cmd);
  return r;
}

static void run_free(Run *r) {
  free(r->out);
  free(r->err);
}

// matdiff ARGS fails with exactly the message WANT (and the usage after it,
// if USAGE).
static void expect_error(const char *args, const char *want, bool usage) {
  Run r = matdiff(args);
  cr_expect_eq(r.status, 1, "matdiff %s: exit %d", args, r.status);
  cr_expect_str_eq(r.out, "", "matdiff %s printed:\n%s", args, r.out);
  size_t n = strlen(want);
  cr_expect(!strncmp(r.err, want, n), "matdiff %s:\n%s\nexpected:\n%s", args, r.err, want);
  if (!strncmp(r.err, want, n))
    cr_expect(usage ? !strncmp(r.err + n, "usage: matdiff ", 15) : !r.err[n],
              "matdiff %s: after the message:\n%s", args, r.err + n);
  run_free(&r);
}

/* ---- verbs ---------------------------------------------------------------- */

// `matdiff diff` on the seed prints exactly the three gradients.
Test(cli, diff_of_the_seed) {
  Run r = matdiff("diff " SEED);
  cr_expect_eq(r.status, 0);
  cr_expect_str_eq(r.out, "dy/dX = 2*(X*W + b)*W'\ndy/dW = 2*X'*(X*W + b)\ndy/db = 2*(X*W + b)\n");
  run_free(&r);
}

// Second order: the logistic example's Hessian blocks and HVPs, a matrix
// variable's row as its HVP under a comment, a Jacobian, and the misuses.
Test(cli, diff_second_order) {
  Run r = matdiff("diff --hessian " MD_SRC_DIR "/examples/logistic.expr");
  cr_expect_eq(r.status, 0, "%s", r.err);
  cr_expect_str_eq(r.out, "d2loss/dw2 = X'*diag(sigmoid(z).*(1 - sigmoid(z)))*X/n\n"
                          "d2loss/dwdb = X'*(sigmoid(z).*(1 - sigmoid(z)))/n\n"
                          "d2loss/db2 = (1 - sigmoid(z)')*sigmoid(z)/n\n");
  run_free(&r);
  r = matdiff("diff --hvp " MD_SRC_DIR "/examples/logistic.expr");
  cr_expect_str_eq(r.out, "d(dloss/dw) = X'*(sigmoid(z).*(1 - sigmoid(z)).*(X*dw + db))/n\n"
                          "d(dloss/db) = (X*dw + db)'*(sigmoid(z).*(1 - sigmoid(z)))/n\n");
  run_free(&r);
  r = matdiff("diff --jvp -e \"x'*A*x\" --wrt x");
  cr_expect(strstr(r.out, "\ndf = dx'*A*x + x'*A*dx\n"), "%s", r.out);
  run_free(&r);
  r = matdiff("diff --hessian -e \"sum(U*v)^2\"");
  cr_expect_eq(r.status, 0, "%s", r.err);
  cr_expect(strstr(r.out, "# U is a matrix: its Hessian is a fourth-order tensor; its row of "
                          "blocks times the directions is\nd(df/dU) = "), "%s", r.out);
  cr_expect(strstr(r.out, "\nd2f/dv2 = 2*sum(U', 2)*sum(U, 1)\n"), "%s", r.out);
  run_free(&r);
  r = matdiff("diff --jacobian -e \"exp(A*x)\" --wrt x");
  cr_expect(strstr(r.out, "\ndf/dx = diag(exp(A*x))*A\n"), "%s", r.out);
  run_free(&r);
  expect_error("diff --hvp --hessian " SEED, "matdiff: error: diff: give one of --jvp, --hvp, "
               "--hessian and --jacobian\n", false);
  char args[512];
  snprintf(args, sizeof args, "diff --hessian %s",
           tmpdir_text("ax.expr", "A : matrix(n, m)\nx : vector(m)\nF = A*x\n"));
  expect_error(args, "matdiff: error: diff: --hessian needs a scalar output; F is (n×1) "
               "(--jacobian or --jvp take any)\n", false);
  snprintf(args, sizeof args, "diff --jacobian %s",
           tmpdir_text("ab.expr", "A : matrix(n, m)\nB : matrix(m, k)\nF = A*B\n"));
  expect_error(args, "matdiff: error: diff: --jacobian needs a scalar or vector output; F is "
               "(n×k), and --jvp prints its tangent\n", false);
}

// eval's second order on x'*A*x, by hand: the Hessian is A + A', the HVP
// along v is (A + A')*v, the JVP v'*(A + A')*x; the files --out writes.
Test(cli, eval_second_order) {
  char args[1024];
  tmpdir_text("A.txt", "1 2\n3 4\n");
  tmpdir_text("x.txt", "1\n1\n");
  tmpdir_text("v.txt", "1\n-1\n");
  snprintf(args, sizeof args, "eval -e \"x'*A*x\" --wrt x A=%s x=%s --hessian --hvp dx=%s --jvp "
           "--out %s", tmpdir_path("A.txt"), tmpdir_path("x.txt"), tmpdir_path("v.txt"),
           tmpdir_path("o"));
  Run r = matdiff(args);
  cr_expect_eq(r.status, 0, "%s", r.err);
  run_free(&r);
  const char *files[][2] = {{"o/d2f_dx2.txt", "2 5\n5 8\n"}, {"o/hvp_x.txt", "-3\n-3\n"},
                            {"o/jvp_f.txt", "-6\n"}};
  for (size_t k = 0; k < sizeof files / sizeof *files; k++) {
    char *got = slurp(tmpdir_path(files[k][0]));
    cr_expect(got && !strcmp(got, files[k][1]), "%s: %s", files[k][0], got ? got : "missing");
    free(got);
  }
  // A*x: the Jacobian is A.
  snprintf(args, sizeof args, "eval -e \"A*x\" --wrt x A=%s x=%s --jacobian --out %s",
           tmpdir_path("A.txt"), tmpdir_path("x.txt"), tmpdir_path("o"));
  r = matdiff(args);
  cr_expect_eq(r.status, 0, "%s", r.err);
  run_free(&r);
  char *got = slurp(tmpdir_path("o/J_f_x.txt"));
  cr_expect(got && !strcmp(got, "1 2\n3 4\n"), "J_f_x.txt: %s", got ? got : "missing");
  free(got);
  snprintf(args, sizeof args, "eval -e \"x'*A*x\" A=%s x=%s --hvp", tmpdir_path("A.txt"),
           tmpdir_path("x.txt"));
  expect_error(args, "matdiff: error: eval: --jvp and --hvp need a direction: give dx=PATH (the "
               "direction of a wrt input is d and its name)\n", false);
}

// check --order 2: every example's second order agrees, per variable.
Test(cli, check_order_2) {
  Run r = matdiff("check --order 2 --trials 2 " MD_SRC_DIR "/examples/logistic.expr");
  cr_expect_eq(r.status, 0, "%s%s", r.out, r.err);
  cr_expect(strstr(r.out, "  d(dloss/dw): HVP tape "), "%s", r.out);
  cr_expect(strstr(r.out, "  d(dloss/db): HVP tape "), "%s", r.out);
  cr_expect(strstr(r.out, "\nok: "), "%s", r.out);
  run_free(&r);
  r = matdiff("check --order 2 -e \"exp(A*x)\"");
  cr_expect_eq(r.status, 0, "%s%s", r.out, r.err);
  cr_expect(strstr(r.out, "  df/dx: Jacobian columns tape "), "%s", r.out);
  run_free(&r);
  expect_error("check --order 3 " SEED, "matdiff: error: check: --order takes a whole number from "
               "1 to 2, not '3'\n", false);
}

// A source error: exit 1, nothing written, the GCC-style diagnostic on stderr.
Test(cli, compile_error_is_a_diagnostic) {
  const char *bad = tmpdir_text("bad.expr", "x : scalar\ny = x*q\n");
  char args[512], want[512];
  snprintf(args, sizeof args, "compile %s -o %s", bad, tmpdir_path("bad.c"));
  snprintf(want, sizeof want, "%s:2:7: error: undeclared variable 'q'\ny = x*q\n      ^\n", bad);
  expect_error(args, want, false);
  cr_expect_neq(access(tmpdir_path("bad.c"), F_OK), 0, "bad.c was written");
}

// The flags `matdiff config` prints point at headers and libraries that
// exist, in the order they were asked for.
Test(cli, config_flags) {
  Run r = matdiff("config --jit-libs --cflags --libs");
  cr_assert_eq(r.status, 0, "%s", r.err);
  char *second = strchr(r.out, '\n') + 1, *third = strchr(second, '\n') + 1;
  cr_expect(!strncmp(r.out, "-L", 2) && strstr(r.out, "-lmatdiff ") && strstr(r.out, "-ltcc"),
            "--jit-libs first:\n%s", r.out);
  cr_expect(!strncmp(second, "-I", 2), "then --cflags:\n%s", r.out);
  cr_expect(strstr(third, "-lmatdiff_rt") && !strstr(third, "-ltcc"), "then --libs:\n%s", r.out);
  run_free(&r);
}

// `matdiff check` agrees on the seed, and says so.
Test(cli, check_the_seed) {
  Run r = matdiff("check " SEED " --trials 3");
  cr_expect_eq(r.status, 0, "matdiff check failed:\n%s%s", r.out, r.err);
  cr_expect(strstr(r.out, "check " SEED ": 3 trials, seed 1\n"), "%s", r.out);
  cr_expect(strstr(r.out, "ok: symbolic, tape and finite differences agree"), "%s", r.out);
  run_free(&r);
}

// A square input of a function with a bounded domain: arcsin(A/2) is
// finite for |a| < 2, so `check` must find inputs where it can compare.
// (Shifting the diagonal by n to make square inputs well conditioned puts
// them out of that domain at every input distribution it tries.)
Test(cli, check_square_input_with_bounded_domain) {
  char args[512];
  snprintf(args, sizeof args, "check %s --dim n=2",
           tmpdir_text("asin.expr", "A : matrix(n, n)\ny = sum(arcsin(A/2))\n"));
  Run r = matdiff(args);
  cr_expect_eq(r.status, 0, "matdiff check failed:\n%s%s", r.out, r.err);
  cr_expect(!strstr(r.out, "nan"), "check compared NaNs:\n%s", r.out);
  run_free(&r);
}

// Sizes bound by two inputs that disagree: the message names both.
Test(cli, eval_names_both_sources_of_a_size) {
  char args[1024];
  const char *src = tmpdir_text("f.expr", "X : matrix(n, k)\nW : matrix(n, k)\ny = sum(X .* W)\n");
  const char *x = tmpdir_text("X.txt", "1 2\n3 4\n5 6\n"), *w = tmpdir_text("W.txt", "1 2\n3 4\n");
  snprintf(args, sizeof args, "eval %s X=%s W=%s", src, x, w);
  char want[1024];
  snprintf(want, sizeof want, "matdiff: error: size n is 3 from %s (X, 3×2) but 2 from %s (W, 2×2)\n",
           x, w);
  expect_error(args, want, false);
}

// A symmetric input from a file that is not symmetric: the message names
// the file, the input and the elements; one that is, with drawn inputs
// besides, evaluates, and a posdef one that is not positive definite fails
// by name.
Test(cli, eval_symmetric_data) {
  char args[1024], want[1024];
  const char *src = tmpdir_text("s.expr", "S : symmetric(n)\nx : vector(n)\nf = x'*S*x\n");
  const char *bad = tmpdir_text("bad.txt", "1 2\n2.5 1\n");
  snprintf(args, sizeof args, "eval %s S=%s", src, bad);
  snprintf(want, sizeof want, "matdiff: error: %s: input 'S' is declared symmetric but is not "
           "symmetric: S(1,2) = 2 and S(2,1) = 2.5 differ by more than 1e-12 times max|S| = 2.5\n",
           bad);
  expect_error(args, want, false);
  snprintf(args, sizeof args, "eval %s S=%s x=%s --grad", src, tmpdir_text("ok.txt", "1 2\n2 1\n"),
           tmpdir_text("x.txt", "1\n1\n"));
  Run r = matdiff(args);
  cr_expect_eq(r.status, 0, "%s%s", r.out, r.err);
  cr_expect(strstr(r.out, "f = 6") && strstr(r.out, "df/dx =\n[[6.0000],\n [6.0000]]"), "%s", r.out);
  run_free(&r);
  // Drawn: symmetric, and positive definite for posdef.
  src = tmpdir_text("p.expr", "P : posdef(n)\nf = logdet(P)\n");
  snprintf(args, sizeof args, "eval %s --dim n=6 --seed 3", src);
  r = matdiff(args);
  cr_expect_eq(r.status, 0, "%s%s", r.out, r.err);
  run_free(&r);
  snprintf(args, sizeof args, "eval %s P=%s", src, tmpdir_text("ind.txt", "1 2\n2 1\n"));
  expect_error(args, "error: logdet(P): P is not positive definite\n", false);
}

/* ---- options -------------------------------------------------------------- */

Test(cli, numbers_are_whole_numbers) {
  expect_error("eval " SEED " --seed -1", "matdiff: error: eval: --seed takes a whole number, not '-1'\n",
               false);
  expect_error("eval " SEED " --seed ' 7'",
               "matdiff: error: eval: --seed takes a whole number, not ' 7'\n", false);
  expect_error("eval " SEED " --seed 18446744073709551616",
               "matdiff: error: eval: --seed takes a whole number, not '18446744073709551616'\n", false);
  // --trials is not --seed, and says its range.
  expect_error("check " SEED " --trials 1x",
               "matdiff: error: check: --trials takes a whole number from 1 to 1000000, not '1x'\n",
               false);
  expect_error("check " SEED " --trials 0",
               "matdiff: error: check: --trials takes a whole number from 1 to 1000000, not '0'\n",
               false);
}

Test(cli, unknown_missing_and_misplaced_options) {
  expect_error("diff " SEED " --bogus", "matdiff: error: diff: unknown option '--bogus'\n", true);
  expect_error("eval " SEED " --seed", "matdiff: error: eval: --seed needs a value: --seed S\n", true);
  expect_error("compile " SEED " -o", "matdiff: error: compile: -o needs a value: -o OUT.c\n", true);
  expect_error("eval " SEED " --trials 3", "matdiff: error: eval: --trials is not an option of eval\n",
               true);
  expect_error("diff " SEED " --latex=yes", "matdiff: error: diff: --latex takes no value\n", true);
  expect_error("eval " SEED " --format=csv", "matdiff: error: eval: --format takes txt or npy, not 'csv'\n",
               false);
  expect_error("config --cflags --grad", "matdiff: error: config: --grad is not an option of config\n",
               true);
}

Test(cli, files) {
  expect_error("diff", "matdiff: error: diff needs a FILE or -e EXPR\n", true);
  expect_error("diff " SEED " more.expr", "matdiff: error: diff takes one FILE, not also 'more.expr'\n",
               true);
  expect_error("eval " SEED " more.expr",
               "matdiff: error: eval takes one FILE; 'more.expr' is not NAME=PATH\n", true);
  expect_error("config x", "matdiff: error: config: unexpected 'x'\n", true);
  expect_error("config", "matdiff: error: config needs an option\n", true);
}

// "--opt=VALUE" is "--opt VALUE"; the same seed gives the same numbers, and
// another seed others.
Test(cli, equals_form_and_seeds) {
  Run a = matdiff("eval " SEED " --seed 7 --grad"), b = matdiff("eval " SEED " --seed=7 --grad");
  Run c = matdiff("eval " SEED " --grad --seed 8");
  cr_assert_eq(a.status, 0, "%s", a.err);
  cr_expect_str_eq(a.out, b.out);
  cr_expect_str_neq(a.out, c.out);
  run_free(&a);
  run_free(&b);
  run_free(&c);
}

/* ---- diff --dump ------------------------------------------------------------ */

static const char square_src[] = "x : scalar\nw : scalar\ny = (w*x)^2\n";

// The section of OUT after the line "# after STAGE", up to the empty line
// that ends it (malloc'd); NULL if there is none.
static char *section(const char *out, const char *stage) {
  char head[64];
  snprintf(head, sizeof head, "# after %s\n", stage);
  const char *p = strstr(out, head);
  if (!p)
    return NULL;
  p += strlen(head);
  const char *end = strstr(p, "\n\n");
  return end ? strndup(p, (size_t)(end - p) + 1) : NULL;
}

// Every line of a DAG section is "%ID = OP [%OPERAND...] ... : SHAPE" with
// its operands defined on earlier lines, or "NAME = %ID" of a defined node.
static void expect_well_formed(const char *sec, const char *stage) {
  static char defined[100000];
  memset(defined, 0, sizeof defined);
  int nodes = 0;
  for (const char *next = sec; *next;) {
    size_t len = strcspn(next, "\n");
    char *line = strndup(next, len);
    next += len + (next[len] == '\n');
    int id, n;
    if (sscanf(line, "%%%d = %n", &id, &n) == 1) {
      cr_expect(id >= 0 && id < 100000 && !defined[id], "%s: node %d twice or out of range", stage, id);
      cr_expect(strstr(line, " : "), "%s: no shape in %s", stage, line);
      for (const char *q = line + n; (q = strchr(q, '%')); q++)
        cr_expect(defined[atoi(q + 1)], "%s: %s uses a node not defined above", stage, line);
      if (id >= 0 && id < 100000)
        defined[id] = 1;
      nodes++;
    } else {
      const char *eq = strstr(line, " = %");
      cr_expect(eq && defined[atoi(eq + 4)], "%s: %s names no node above", stage, line);
    }
    free(line);
  }
  cr_expect_gt(nodes, 0, "%s: no nodes", stage);
}

// The parse tree and the DAG of (w*x)^2, derived by hand: the inputs are
// lowered at their declarations, then the expression bottom-up.
Test(cli, dump_parse_and_dag) {
  char args[512];
  snprintf(args, sizeof args, "diff %s --dump=dag,parse", tmpdir_text("sq.expr", square_src));
  Run r = matdiff(args);
  snprintf(args, sizeof args, "diff %s", tmpdir_path("sq.expr"));
  Run plain = matdiff(args);
  cr_assert_eq(r.status, 0, "%s", r.err);
  const char *want = "# after parse\n"
                     "(decl x scalar)\n"
                     "(decl w scalar)\n"
                     "(= y (^ (* w x) 2))\n"
                     "\n"
                     "# after dag\n"
                     "%0 = var x : scalar\n"
                     "%1 = var w : scalar\n"
                     "%2 = * %1 %0 : scalar\n"
                     "%3 = num 2 : scalar\n"
                     "%4 = ^ %2 %3 : scalar\n"
                     "y = %4\n"
                     "\n";
  cr_expect(!strncmp(r.out, want, strlen(want)), "got:\n%s\nexpected:\n%s", r.out, want);
  // Then what diff prints without --dump.
  cr_expect_str_eq(r.out + strlen(want), plain.out);
  run_free(&r);
  run_free(&plain);
}

// The adjoint DAG is reverse mode's output before the simplifier: it still
// multiplies by the seed 1, which the simplified one no longer does. Each
// section is a well-formed DAG, and the simplified one names the gradients
// diff prints, in its order.
Test(cli, dump_adjoint_before_simplification) {
  char args[512];
  snprintf(args, sizeof args, "diff %s --dump=parse,dag,adjoint,simplified",
           tmpdir_text("sq.expr", square_src));
  Run r = matdiff(args);
  cr_assert_eq(r.status, 0, "%s", r.err);
  char *dag = section(r.out, "dag"), *adj = section(r.out, "adjoint"), *simp = section(r.out, "simplified");
  cr_assert(dag && adj && simp, "%s", r.out);
  expect_well_formed(dag, "dag");
  expect_well_formed(adj, "adjoint");
  expect_well_formed(simp, "simplified");
  cr_expect(strstr(adj, "= num 1 : scalar\n"), "no seed in the adjoint DAG:\n%s", adj);
  cr_expect(!strstr(simp, "= num 1 : scalar\n"), "the seed survived simplification:\n%s", simp);
  const char *dx = strstr(simp, "dy/dx = %"), *dw = strstr(simp, "dy/dw = %");
  cr_expect(dx && dw && dx < dw, "%s", simp);
  cr_expect(strstr(r.out, "\ndy/dx = 2*w^2*x\ndy/dw = 2*w*x^2\n"), "%s", r.out);
  free(dag);
  free(adj);
  free(simp);
  run_free(&r);
}

// The plan says how each body is computed: in the seed's gradients, X*W + b
// is a buffer that every gradient reads, and each gradient is written
// straight into its root by gemm, needed by its own variable only.
Test(cli, dump_plan) {
  Run r = matdiff("diff " SEED " --dump=plan");
  cr_assert_eq(r.status, 0, "%s", r.err);
  char *plan = section(r.out, "plan");
  cr_assert(plan, "%s", r.out);
  const char *grads = strstr(plan, "gradients:\n");
  cr_assert(!strncmp(plan, "value:\n", 7) && grads, "%s", plan);
  cr_expect(strstr(grads, "= + %3 %2 : (10×4)  -- buffer, 4 uses for all  terms +gemm %3 +%2\n"),
            "%s", grads);
  const char *dw = strstr(grads, "dy/dW = %");
  cr_assert(dw, "%s", grads);
  char line[64];
  snprintf(line, sizeof line, "\n%%%d = * ", atoi(dw + 9));
  const char *root = strstr(grads, line);
  cr_expect(root && strstr(root + 1, "  -- root, 1 use for dW  terms +gemm ") < strchr(root + 1, '\n'),
            "%s", grads);
  free(plan);
  run_free(&r);
}

Test(cli, dump_errors) {
  expect_error("diff " SEED " --dump=parse,plans",
               "matdiff: error: diff: --dump: there is no stage 'plans'; the stages are parse, dag, "
               "adjoint, simplified, plan\n",
               false);
  // A stage that fails: the states before it, then its error.
  char args[512];
  const char *bad = tmpdir_text("bad.expr", "A : matrix(n, k)\ny = sum(A*A)\n");
  snprintf(args, sizeof args, "diff %s --dump=parse,dag", bad);
  Run r = matdiff(args);
  cr_expect_eq(r.status, 1);
  cr_expect_str_eq(r.out, "# after parse\n(decl A matrix n k)\n(= y (sum (* A A)))\n\n");
  cr_expect(strstr(r.err, "bad.expr:2:10: error: "), "%s", r.err);
  run_free(&r);
}

/* ---- one-line expressions (-e) -------------------------------------------- */

// diff -e prints the program it inferred, then the gradients: by hand,
// d(x'*A*x)/dx = (A' + A)*x and d/dA = x*x'.
Test(cli, expression_diff) {
  Run r = matdiff("diff -e \"x'*A*x\"");
  cr_expect_eq(r.status, 0, "%s", r.err);
  cr_expect_str_eq(r.out, "x : vector(n)\nA : matrix(n, n)\nf = x'*A*x\n"
                          "df/dx = (A' + A)*x\ndf/dA = x*x'\n");
  run_free(&r);
  r = matdiff("diff -e \"a*x'*y\" --wrt y");
  cr_expect_eq(r.status, 0, "%s", r.err);
  cr_expect_str_eq(r.out, "a : scalar\nx : vector(n)\ny : vector(n)\nwrt y\nf = a*x'*y\n"
                          "df/dy = a*x\n");
  run_free(&r);
}

// eval, check, compile and cost take -e as they take FILE; compile names
// its functions after the output, f.
Test(cli, expression_verbs) {
  Run r = matdiff("eval -e \"a*b\" a=" MD_SRC_DIR "/examples/seed/W.txt");
  cr_expect_eq(r.status, 1, "a is a scalar, W.txt a 4x4 matrix");
  run_free(&r);
  const char *two = tmpdir_text("two.txt", "2\n"), *three = tmpdir_text("three.txt", "3\n");
  char args[512];
  snprintf(args, sizeof args, "eval -e \"a^b\" a=%s b=%s --grad", two, three);
  r = matdiff(args);
  cr_expect_eq(r.status, 0, "%s", r.err);
  // 2^3 = 8; d/da = b*a^(b-1) = 12; d/db = log(a)*a^b = 8*log(2) = 5.5452
  cr_expect(strstr(r.out, "f = 8") && strstr(r.out, "df/da = 12") && strstr(r.out, "df/db = 5.5452"),
            "%s", r.out);
  run_free(&r);
  r = matdiff("check -e \"norm2(A*x - y)^2\"");
  cr_expect_eq(r.status, 0, "%s%s", r.out, r.err);
  run_free(&r);
  r = matdiff("compile -e \"x'*x\"");
  cr_expect_eq(r.status, 0, "%s", r.err);
  cr_expect(strstr(r.out, "double f_grad(long v_n, const double *v_x, double *d_x)") != NULL, "%s", r.out);
  run_free(&r);
  r = matdiff("cost -e \"sum(exp(x))\" --dim n=10");
  cr_expect_eq(r.status, 0, "%s", r.err);
  run_free(&r);
}

// An error in the expression points into it; -e and FILE exclude each
// other, and --wrt needs -e.
Test(cli, expression_errors) {
  expect_error("diff -e \"x'*A*\"",
               "<expr>:1:6: error: unexpected end of input, expected a number, a name, '||', '(' "
               "or an operator\nx'*A*\n     ^\n", false);
  expect_error("diff -e \"x'*A\" " SEED,
               "matdiff: error: diff: -e EXPR takes the place of FILE: give one, not both\n", false);
  expect_error("diff " SEED " --wrt X",
               "matdiff: error: diff: --wrt goes with -e; in a FILE, say 'wrt NAME ...'\n", false);
}

/* ---- files written (issue #10) -------------------------------------------- */

// --out's paths were built in a PATH_MAX buffer without a check, and eval
// exited 0 whatever was cut: under a directory 4090 bytes long, dy_dX, dy_dW
// and dy_db were all cut to "dy_d", one file that each overwrote; under one
// of 4088, to "dy_dX." and so on. A path too long to write is an error now:
// here y.txt fits and dy_dX.txt does not.
Test(cli, eval_out_under_a_deep_directory) {
  enum { LEN = 4088 };
  char deep[4200];
  size_t n = (size_t)snprintf(deep, sizeof deep, "%s", tmpdir());
  while (n < LEN) {
    size_t k = LEN - n - 1 < 200 ? LEN - n - 1 : 200;
    deep[n++] = '/';
    memset(deep + n, 'd', k);
    n += k;
  }
  deep[n] = '\0';
  cr_assert_eq(strlen(deep), LEN);
  setenv("DEEP", deep, 1);
  cr_assert_eq(run("mkdir -p \"$DEEP\""), 0);
  Run r = matdiff("eval " SEED " --grad --out \"$DEEP\"");
  cr_expect_eq(r.status, 1, "exit %d:\n%s", r.status, r.err);
  cr_expect_str_eq(r.err, "matdiff: error: --out: the path of dy_dX.txt is 4098 bytes long, "
                   "longer than the system allows (4095)\n");
  run_free(&r);
  char rm[128];
  snprintf(rm, sizeof rm, "rm -rf %s/dd*", tmpdir());
  run(rm);
}

// --out created one directory; it creates its parents too, as mkdir -p.
Test(cli, eval_out_makes_parents) {
  char args[1024], path[512], want[1024];
  snprintf(args, sizeof args, "eval " SEED " --grad --out %s/a/b/c", tmpdir());
  Run r = matdiff(args);
  cr_expect_eq(r.status, 0, "exit %d:\n%s", r.status, r.err);
  run_free(&r);
  const char *files[] = {"y.txt", "dy_dX.txt", "dy_dW.txt", "dy_db.txt"};
  for (int i = 0; i < 4; i++) {
    snprintf(path, sizeof path, "%s/a/b/c/%s", tmpdir(), files[i]);
    cr_expect_eq(access(path, R_OK), 0, "%s was not written", path);
  }
  // A file where a directory should be is an error that names it.
  snprintf(path, sizeof path, "%s/a/b/c/y.txt/d", tmpdir());
  snprintf(args, sizeof args, "eval " SEED " --out %s", path);
  snprintf(want, sizeof want, "matdiff: error: cannot create the directory '%s/a/b/c/y.txt': "
           "a file is in the way\n", tmpdir());
  expect_error(args, want, false);
  snprintf(args, sizeof args, "rm -rf %s/a", tmpdir());
  run(args);
}

// compile -o onto its own input replaced the .expr with the C. The same
// file by another name (a hard link, ./) is refused too: files are compared
// by device and inode.
Test(cli, compile_onto_its_input_is_refused) {
  char *seed = slurp(SEED);
  cr_assert_not_null(seed);
  const char *src = tmpdir_text("s.expr", seed);
  char other[512], args[1200], want[1200];
  snprintf(other, sizeof other, "%s/s.c", tmpdir());
  cr_assert_eq(link(src, other), 0);
  const char *outs[] = {src, other};
  for (int i = 0; i < 2; i++) {
    snprintf(args, sizeof args, "compile %s -o %s", src, outs[i]);
    snprintf(want, sizeof want, "matdiff: error: compile: -o '%s' is the input file '%s'; the C "
             "would replace it\n", outs[i], src);
    expect_error(args, want, false);
  }
  char *after = slurp(src);
  cr_expect_str_eq(after, seed, "the input was changed");
  free(after);
  free(seed);
}

/* ---- results that are not finite (issue #10) ------------------------------ */

// eval printed -nan and exited 0, saying nothing. It warns now, naming the
// first operation computed whose value is not finite, and exits 0, or 3
// with --strict. By hand: log(0.5 - 1) is NaN; sqrt at 0 is 0, finite, but
// its derivative 1/(2 sqrt(x)) is infinite.
Test(cli, eval_warns_of_a_result_that_is_not_finite) {
  char args[1024];
  const char *f = tmpdir_text("nf.expr", "x : scalar\ny = exp(log(x - 1)*x)\n");
  const char *x = tmpdir_text("x.txt", "0.5\n");
  snprintf(args, sizeof args, "eval %s x=%s --grad", f, x);
  Run r = matdiff(args);
  cr_expect_eq(r.status, 0);
  cr_expect(strstr(r.out, "y = -nan\n") || strstr(r.out, "y = nan\n"), "%s", r.out);
  cr_expect_str_eq(r.err, "matdiff: warning: y is not finite: log(x - 1) is the first operation "
                   "computed that is not (-nan)\n");
  run_free(&r);
  snprintf(args, sizeof args, "eval %s x=%s --strict", f, x);
  r = matdiff(args);
  cr_expect_eq(r.status, 3, "--strict: exit %d", r.status);
  run_free(&r);

  f = tmpdir_text("sqrt.expr", "x : vector(n)\ny = sum(sqrt(x))\n");
  x = tmpdir_text("x2.txt", "0\n4\n");
  snprintf(args, sizeof args, "eval %s x=%s --grad --strict", f, x);
  r = matdiff(args);
  cr_expect_eq(r.status, 3, "exit %d", r.status);
  cr_expect_str_eq(r.err, "matdiff: warning: dy/dx is not finite: 0.5./sqrt(x) is the first "
                   "operation computed that is not (inf)\n");
  run_free(&r);
  // Finite: no warning, and --strict changes nothing.
  x = tmpdir_text("x3.txt", "1\n4\n");
  snprintf(args, sizeof args, "eval %s x=%s --grad --strict", f, x);
  r = matdiff(args);
  cr_expect_eq(r.status, 0);
  cr_expect_str_eq(r.err, "");
  run_free(&r);
}
