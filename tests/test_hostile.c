/*
 * test_hostile.c - reproducers of what hostile testing found (issue #10):
 * inputs that are legal but huge or odd, each of which once crashed,
 * exhausted memory or misreported. Every test here failed before its fix.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include "util.h"

#define MATDIFF MD_BUILD_DIR "/matdiff"

// ASan's shadow memory and quarantine multiply what a program keeps.
#if defined(__SANITIZE_ADDRESS__)
#define MEM_FACTOR 4
#else
#define MEM_FACTOR 1
#endif

static long peak_kib(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

// 50,000 one-line declarations once took memory quadratic in their number
// (8,000 took 2 GB): each copied the whole array of variables. The timeout
// only guards against a hang; the memory bound is the assertion.
Test(hostile, fifty_thousand_declarations, .timeout = 120) {
  enum { N = 50000 };
  size_t cap = (size_t)N * 24 + 64, len = 0;
  char *src = malloc(cap);
  cr_assert_not_null(src);
  for (int i = 0; i < N; i++)
    len += (size_t)snprintf(src + len, cap - len, "x%d : scalar\n", i);
  snprintf(src + len, cap - len, "wrt x0\ny = x0*x%d\n", N - 1);
  long before = peak_kib();
  md_error err;
  md_function *f = md_compile(src, "decl.expr", &err);
  free(src);
  cr_assert_not_null(f, "%s", err.diag);
  long grown = peak_kib() - before;
  cr_expect_lt(grown, 200L * 1024 * MEM_FACTOR, "md_compile grew the peak by %ld KiB", grown);
  cr_assert_eq(md_num_inputs(f), N);
  double *x = calloc(N, sizeof *x), *g = calloc(N, sizeof *g);
  const double **in = malloc(sizeof *in * N);
  double **grads = calloc(N, sizeof *grads);
  cr_assert(x && g && in && grads);
  for (int i = 0; i < N; i++)
    in[i] = &x[i], grads[i] = &g[i];
  x[0] = 3, x[N - 1] = 5;
  double y = 0;
  cr_assert_eq(md_grad(f, NULL, in, &y, grads, &err), 0, "%s", err.diag);
  cr_expect_eq(y, 15);     /* x0*x49999 = 3*5 */
  cr_expect_eq(g[0], 5);   /* d/dx0 = x49999 */
  cr_expect_eq(g[1], 0);   /* not in wrt: untouched */
  free(x), free(g), free(in), free(grads);
  md_free(f);
}

// A flat sum of 1,001 terms, x + 2*x + ... + 1001*x, once was "nested too
// deeply": its parse tree leans left one level a term, and the limit was
// 1,000 levels. 5,000 terms compile and give, by hand, y = x*N(N+1)/2 and
// dy/dx = N(N+1)/2; a nesting past the limit (now 10,000) is still an error.
Test(hostile, long_flat_sum) {
  enum { N = 5000 };
  size_t cap = (size_t)N * 12 + 64, len = 0;
  char *src = malloc(cap);
  cr_assert_not_null(src);
  len += (size_t)snprintf(src + len, cap - len, "x : scalar\ny = x");
  for (int i = 2; i <= N; i++)
    len += (size_t)snprintf(src + len, cap - len, " + %d*x", i);
  snprintf(src + len, cap - len, "\n");
  md_error err;
  md_function *f = md_compile(src, "sum.expr", &err);
  cr_assert(f, "%s", err.diag);
  double x = 0.5, y = 0, g = 0, *gs[] = {&g};
  const double *in[] = {&x};
  cr_assert_eq(md_grad(f, NULL, in, &y, gs, &err), 0, "%s", err.message);
  double k = (double)N * (N + 1) / 2;
  cr_expect(fabs(y - 0.5 * k) <= 1e-12 * k && fabs(g - k) <= 1e-12 * k, "y = %.17g, dy/dx = %.17g", y, g);
  md_free(f);
  free(src);

  size_t deep = 20000;  /* past MD_MAX_DEPTH, 10,000 */
  char *nest = malloc(2 * deep + 32);
  cr_assert_not_null(nest);
  len = (size_t)sprintf(nest, "x : scalar\ny = ");
  for (size_t i = 0; i < deep; i++)
    nest[len++] = '(';
  nest[len++] = 'x';
  for (size_t i = 0; i < deep; i++)
    nest[len++] = ')';
  strcpy(nest + len, "\n");
  cr_expect_null(md_compile(nest, "deep.expr", &err));
  cr_expect(strstr(err.message, "nested too deeply"), "%s", err.message);
  free(nest);
}

// A source past the size limit is refused before the scanner sees it:
// flex takes the length as an int, and once parsed only its first 2^31
// bytes or called exit(2) inside the library.
Test(hostile, source_too_large) {
  size_t n = (size_t)(1 << 26) + 1;
  char *src = malloc(n + 1);
  cr_assert_not_null(src);
  memset(src, ' ', n);
  memcpy(src, "y = 1\n", 6);
  src[n] = 0;
  md_error err;
  md_function *f = md_compile(src, "big.expr", &err);
  free(src);
  cr_assert_null(f);
  cr_expect(strstr(err.message, "the source is too large") != NULL, "%s", err.message);
}

// The value and gradient of SRC at the scalar inputs X (one per declared
// variable, all scalars), gradients into G.
static double grad_at(const char *src, const double *x, double *g) {
  md_error err;
  md_function *f = md_compile(src, "nonfinite.expr", &err);
  cr_assert_not_null(f, "%s", err.diag);
  int n = md_num_inputs(f);
  const double *in[4];
  double *gs[4];
  for (int i = 0; i < n; i++)
    in[i] = &x[i], gs[i] = &g[i], g[i] = 0;
  double y;
  cr_assert_eq(md_grad(f, NULL, in, &y, gs, &err), 0, "%s", err.diag);
  md_free(f);
  return y;
}

// The simplifier rewrote 0*A and 0/c to 0, dropping the NaN that IEEE
// arithmetic (and PyTorch) gives when A is infinite or c is zero. By
// hand: d/dx 0*exp(x) = 0*exp(x), NaN at x = 1000 where exp overflows;
// d/dc 0/c = -0/c^2, NaN at c = 0.
Test(hostile, zero_times_infinity_is_nan) {
  double g[2];
  grad_at("x : scalar\ny = 0*exp(x)\n", (double[]){1000}, g);
  cr_expect(isnan(g[0]), "d/dx 0*exp(x) at 1000: %g, expected NaN", g[0]);
  grad_at("c : scalar\nx : scalar\ny = 0/c + x\n", (double[]){0, 1}, g);
  cr_expect(isnan(g[0]), "d/dc 0/c at 0: %g, expected NaN", g[0]);
  cr_expect_eq(g[1], 1);
}

// Constant folding kept no -0.0: 0*(-1) folded to -0.0, which interned as
// 0.0. By hand, d/dx x/(0*(-1)) = 1/(-0.0) = -Inf, as in PyTorch.
Test(hostile, negative_zero_survives) {
  double g[1];
  grad_at("x : scalar\ny = x/(0*(-1))\n", (double[]){2}, g);
  cr_expect(isinf(g[0]) && g[0] < 0, "d/dx x/(0*(-1)) = %g, expected -inf", g[0]);
}

/* ---- aliasing (issue #10, item 8) ---------------------------------------- */

// Calls whose buffers share memory: an output or a gradient buffer that is
// also an input or the seed, as an in-place optimiser step has it. They
// behave as if every output were written after all the inputs were read.
// The oracle is md_tape_vjp on separate copies.

static md_function *compiled(const char *src) {
  md_error err;
  md_function *f = md_compile(src, "alias.expr", &err);
  cr_assert_not_null(f, "%s", err.diag);
  return f;
}

// md_tape_vjp at copies of the N inputs IN (lengths LEN), SEED as given:
// the value into Y and the gradients into fresh arrays G[i] (zeroed first).
static void oracle(md_function *f, const long *dims, int n, double **in, const long *len,
                   const double *seed, double *y, double **g) {
  const double *copies[4];
  for (int i = 0; i < n; i++) {
    double *c = malloc(sizeof *c * (size_t)len[i]);
    g[i] = calloc((size_t)len[i], sizeof *g[i]);
    cr_assert(c && g[i]);
    memcpy(c, in[i], sizeof *c * (size_t)len[i]);
    copies[i] = c;
  }
  md_error err;
  cr_assert_eq(md_tape_vjp(f, dims, copies, seed, y, g, &err), 0, "%s", err.message);
  for (int i = 0; i < n; i++)
    free((void *)copies[i]);
}

static void expect_near(const double *got, const double *want, long n, const char *what) {
  cr_expect_leq(md_rel_err(got, want, n), 1e-12, "%s: off by %g", what, md_rel_err(got, want, n));
}

// md_eval with out equal to an input gave zeros for A*B (the product's
// kernel cleared its output, its own left factor, before reading it), and
// a wrong transpose for A' (transposed in place, element by element).
Test(alias, eval_into_an_input) {
  const char *outputs[] = {"A*B", "A'", "A*B + A"};
  for (int t = 0; t < 3; t++) {
    char src[128];
    snprintf(src, sizeof src, "A : matrix(3, 3)\nB : matrix(3, 3)\ny = %s\n", outputs[t]);
    md_function *f = compiled(src);
    double A[9], B[9], want[9], *in[] = {A, B}, *g[2];
    for (int k = 0; k < 9; k++)
      A[k] = 1 + k, B[k] = 2 - 0.5 * k;
    oracle(f, NULL, 2, in, (const long[]){9, 9}, NULL, want, g);
    md_error err;
    cr_assert_eq(md_eval(f, NULL, (const double *const[]){A, B}, A, &err), 0, "%s", err.message);
    expect_near(A, want, 9, outputs[t]);
    free(g[0]), free(g[1]);
    md_free(f);
  }
}

// The notebook's loss, one step of W += dW, X += dX, b += db with every
// gradient buffer its own input, as an optimiser step in place has it. The
// gradient of one input read another input already stepped.
Test(alias, grad_in_place_step) {
  md_function *f = compiled("X : matrix(n, k)\nW : matrix(k, m)\nb : matrix(n, m)\n"
                            "y = ||X*W + b||_F^2\n");
  const long dims[] = {5, 3, 4}, len[] = {15, 12, 20};
  double X[15], W[12], b[20], *in[] = {X, W, b}, *g[3], y, ty;
  for (int k = 0; k < 20; k++) {
    if (k < 15)
      X[k] = sin(k);
    if (k < 12)
      W[k] = cos(k);
    b[k] = 0.1 * k - 1;
  }
  oracle(f, dims, 3, in, len, NULL, &ty, g);
  md_error err;
  cr_assert_eq(md_grad(f, dims, (const double *const *)in, &y, in, &err), 0, "%s", err.message);
  cr_expect_eq(y, ty);
  const char *names[] = {"X", "W", "b"};
  for (int i = 0; i < 3; i++) {
    double want[20];  // the old value plus its gradient
    for (int k = 0; k < len[i]; k++)
      want[k] = (i == 0 ? sin(k) : i == 1 ? cos(k) : 0.1 * k - 1) + g[i][k];
    expect_near(in[i], want, len[i], names[i]);
    free(g[i]);
  }
  md_free(f);
}

// Two inputs whose gradient buffers are one buffer (tied parameters): it
// gets both gradients.
Test(alias, tied_gradients_add_up) {
  md_function *f = compiled("A : matrix(2, 2)\nB : matrix(2, 2)\ny = ||A*B + B*A||_F^2\n");
  double A[4] = {1, 2, 3, 4}, B[4] = {-1, 0.5, 2, 1}, *in[] = {A, B}, *g[2], y;
  oracle(f, NULL, 2, in, (const long[]){4, 4}, NULL, &y, g);
  double both[4] = {0}, want[4];
  for (int k = 0; k < 4; k++)
    want[k] = g[0][k] + g[1][k];
  md_error err;
  cr_assert_eq(md_grad(f, NULL, (const double *const *)in, NULL, (double *const[]){both, both}, &err),
               0, "%s", err.message);
  expect_near(both, want, 4, "dA + dB in one buffer");
  free(g[0]), free(g[1]);
  md_free(f);
}

// md_vjp with the seed, the input and the gradient all one buffer, for a
// matrix output (the seed is read throughout) and a scalar one (it scales).
Test(alias, vjp_seed_is_the_gradient) {
  md_function *f = compiled("A : matrix(2, 2)\ny = A*A + tanh(A)\n");
  double A[4] = {0.5, -1, 2, 0.25}, seed[4] = {1, -2, 0.5, 3}, *in[] = {A}, *g[1], y[4];
  oracle(f, NULL, 1, in, (const long[]){4}, seed, y, g);
  double want[4], buf[4];
  for (int k = 0; k < 4; k++)
    want[k] = seed[k] + g[0][k], buf[k] = seed[k];
  md_error err;
  cr_assert_eq(md_vjp(f, NULL, (const double *const[]){A}, buf, NULL, (double *const[]){buf}, &err),
               0, "%s", err.message);
  expect_near(buf, want, 4, "seed + seed'*J into the seed");
  free(g[0]);
  md_free(f);

  f = compiled("x : vector(3)\ny = sum(exp(x))*x'*x\n");
  double x[3] = {0.5, -1, 0.25}, s = 3, *xin[] = {x}, ys, *gx[1];
  oracle(f, NULL, 1, xin, (const long[]){3}, &s, &ys, gx);
  double xw[3];
  for (int k = 0; k < 3; k++)
    xw[k] = x[k] + gx[0][k];
  cr_assert_eq(md_vjp(f, NULL, (const double *const *)xin, &s, &x[0], xin, &err), -1,
               "out inside a gradient buffer was accepted");
  cr_assert_eq(md_vjp(f, NULL, (const double *const *)xin, &s, NULL, xin, &err), 0, "%s",
               err.message);
  expect_near(x, xw, 3, "x += 3*d/dx");
  free(gx[0]);
  md_free(f);
}

// An output buffer that is also a gradient buffer has no meaning: an error,
// and nothing written.
Test(alias, out_overlapping_a_gradient_is_an_error) {
  md_function *f = compiled("A : matrix(2, 2)\ny = A*A\n");
  double A[4] = {1, 2, 3, 4}, buf[8] = {0};
  md_error err;
  cr_expect_eq(md_grad(f, NULL, (const double *const[]){A}, buf + 2, (double *const[]){buf}, &err),
               -1);
  cr_expect(strstr(err.message, "overlap") != NULL, "%s", err.message);
  for (int k = 0; k < 8; k++)
    cr_expect_eq(buf[k], 0, "buf[%d] was written", k);
  md_free(f);
}

// Past 16 inputs the buffers are sorted to find those that overlap, not
// compared pair by pair: an in-place step on 24 scalars, y = sum x_i x_{i+1}.
Test(alias, many_inputs_in_place) {
  enum { N = 24 };
  char src[2048];
  size_t len = 0;
  for (int i = 0; i < N; i++)
    len += (size_t)snprintf(src + len, sizeof src - len, "x%d : scalar\n", i);
  len += (size_t)snprintf(src + len, sizeof src - len, "y = x0*x1");
  for (int i = 1; i + 1 < N; i++)
    len += (size_t)snprintf(src + len, sizeof src - len, " + x%d*x%d", i, i + 1);
  snprintf(src + len, sizeof src - len, "\n");
  md_function *f = compiled(src);
  double x[N], want[N];
  for (int i = 0; i < N; i++)
    x[i] = 1 + 0.5 * i;
  for (int i = 0; i < N; i++)  // by hand: x_i + x_{i-1} + x_{i+1}
    want[i] = x[i] + (i > 0 ? x[i - 1] : 0) + (i + 1 < N ? x[i + 1] : 0);
  const double *in[N];
  double *g[N];
  for (int i = 0; i < N; i++)
    in[i] = g[i] = &x[i];
  md_error err;
  cr_assert_eq(md_grad(f, NULL, in, NULL, g, &err), 0, "%s", err.message);
  expect_near(x, want, N, "x += dy/dx");
  md_free(f);
}

/* ---- where a value stops being finite (issue #10, item 11) ------------------ */

// md_first_nonfinite names the first operation, in the order they are
// computed, whose value holds a NaN or an infinity: in the value, or with
// GRAD in the gradients. Worked by hand for each.
static int first_nonfinite(const char *src, const double *const *in, int grad, char *op,
                           double *bad) {
  md_function *f = compiled(src);
  md_error err;
  int rc = md_first_nonfinite(f, NULL, in, grad, op, 128, bad, &err);
  cr_assert_geq(rc, 0, "%s", err.message);
  md_free(f);
  return rc;
}

Test(nonfinite, first_operation_is_named) {
  char op[128];
  double bad, x = 0.5, zero = 0, v[2] = {0, 4};
  // log(0.5 - 1) is NaN; the product after it is not the first.
  cr_expect_eq(first_nonfinite("x : scalar\ny = exp(log(x - 1)*x)\n", (const double *[]){&x}, 0,
                               op, &bad), 1);
  cr_expect_str_eq(op, "log(x - 1)");
  cr_expect(isnan(bad));
  // The value is finite, sqrt(0) = 0; its derivative 1/(2 sqrt(x)) is not.
  cr_expect_eq(first_nonfinite("x : scalar\ny = sqrt(x)\n", (const double *[]){&zero}, 0, op,
                               &bad), 0);
  cr_expect_eq(first_nonfinite("x : scalar\ny = sqrt(x)\n", (const double *[]){&zero}, 1, op,
                               &bad), 1);
  cr_expect_str_eq(op, "0.5/sqrt(x)");
  cr_expect(isinf(bad) && bad > 0);
  // A matrix output: the gradient is seeded with ones, here 0.5*G./sqrt(v).
  cr_expect_eq(first_nonfinite("v : vector(2)\ny = sqrt(v)\n", (const double *[]){v}, 1, op,
                               &bad), 1);
  cr_expect(isinf(bad), "%s: %g", op, bad);
  cr_expect_str_eq(op, "0.5*G./sqrt(v)");
  // An input that is not finite is where it starts.
  double nan_x = NAN;
  cr_expect_eq(first_nonfinite("x : scalar\ny = 2*x\n", (const double *[]){&nan_x}, 0, op, &bad),
               1);
  cr_expect_str_eq(op, "x");
}

/* ---- user text in the emitted C (issue #10, item 2) ------------------------ */

// A path whose directories close the header comment, define a constructor
// that prints "pwned" at load time, and open a comment again for the rest
// of the header. Pasted into the C as it was, it ran in every program
// built from `matdiff compile` and broke md_compile's C.
static const char *const hostile_dirs[] = {
    "a*",
    "\nint puts(const char *);\n__attribute__((constructor)) static void pwn(void) { puts(\"pwned\"); }\n",
    "*b",
};

// The hostile path under the test's directory, made, with F.EXPR in it.
static const char *hostile_path(const char *src) {
  static char path[1024];
  snprintf(path, sizeof path, "%s", tmpdir());
  for (size_t i = 0; i < sizeof hostile_dirs / sizeof *hostile_dirs; i++) {
    size_t n = strlen(path);
    snprintf(path + n, sizeof path - n, "/%s", hostile_dirs[i]);
    cr_assert(mkdir(path, 0700) == 0 || access(path, F_OK) == 0, "cannot make %s", path);
  }
  size_t n = strlen(path);
  snprintf(path + n, sizeof path - n, "/f.expr");
  cr_assert(spit(path, src), "cannot write %s", path);
  return path;
}

// ARGV run without a shell (the path holds quotes and newlines), its
// output and errors in LOG; the exit status.
static int exec_log(char *const argv[], const char *log) {
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
      _exit(127);
    execv(argv[0], argv);
    _exit(127);
  }
  int st;
  return pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// The C's header comment is one comment: the text up to its first "*/" is
// the header, and its "Generated by" line is one line.
static void expect_one_header(const char *c, const char *what) {
  const char *end = strstr(c, "*/"), *gen = strstr(c, "Generated by matdiff");
  cr_assert(end && gen && gen < end, "%s: no header comment", what);
  cr_expect(strstr(c, "Do not edit.") && strstr(c, "Do not edit.") < end,
            "%s: the path closed the header comment:\n%.400s", what, c);
  cr_expect(strchr(gen, '\n') > strstr(gen, "Do not edit."),
            "%s: the path began a new line in the header:\n%.400s", what, c);
}

// ARGS to matdiff through the shell, its output and errors in the test
// directory's "log"; the exit status, and the log in *LOG (malloc'd).
static int matdiff_log(const char *args, char **log) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "cd %s && %s %s > log 2>&1", tmpdir(), MATDIFF, args);
  int rc = run(cmd);
  *log = slurp(tmpdir_path("log"));
  cr_assert_not_null(*log);
  return rc;
}

// In the test's directory, FILES and driver.c built warning-free (with the
// runtime, or with libm alone for STANDALONE C) and run: the exit status,
// and in *OUT (malloc'd) what the program printed, or what the compiler
// said when it failed or printed anything.
static int build_and_run(const char *files, bool standalone, char **out) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd,
           "cd %s && cc -std=c99 -Wall -Wextra -Werror -pedantic %s %s driver.c %s -o prog > cc.log "
           "2>&1 && test ! -s cc.log && ./prog > out.txt",
           tmpdir(), standalone ? "" : "$(" MATDIFF " config --cflags)", files,
           standalone ? "-lm" : "$(" MATDIFF " config --libs)");
  int rc = run(cmd);
  *out = slurp(tmpdir_path(rc ? "cc.log" : "out.txt"));
  cr_assert_not_null(*out);
  return rc;
}

static void remove_tree(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir());
  run(cmd);
}

// md_compile's filename, which only diagnostics were to use.
Test(names, md_compile_filename_stays_in_its_comment) {
  char file[512];
  snprintf(file, sizeof file, "%s/%s/%s/f.expr", hostile_dirs[0], hostile_dirs[1], hostile_dirs[2]);
  md_error err;
  md_function *f = md_compile("x : scalar\ny = x*2\n", file, &err);
  cr_assert_not_null(f, "%s", err.diag);
  expect_one_header(md_c_source(f), "md_compile");
  double x = 3, dx = 0, y = 0;
  cr_assert_eq(md_grad(f, NULL, (const double *[]){&x}, &y, (double *[]){&dx}, &err), 0, "%s",
               err.message);
  cr_expect_eq(y, 6);
  cr_expect_eq(dx, 2);
  md_free(f);
}

// The CLI's path, through eval (the JIT) and through compile and cc.
Test(names, cli_path_stays_in_its_comment, .timeout = 60) {
  tmpdir_setup("hostile_path");
  const char *expr = hostile_path("x : scalar\nwrt x\ny = x*2\n");
  const char *x = tmpdir_text("x.txt", "3\n"), *log = tmpdir_path("log");
  char xarg[256];
  snprintf(xarg, sizeof xarg, "x=%s", x);
  cr_expect_eq(exec_log((char *[]){MATDIFF, "eval", (char *)expr, xarg, "--grad", NULL}, log), 0);
  char *out = slurp(log);
  cr_assert_not_null(out);
  cr_expect(strstr(out, "y = 6") && strstr(out, "dy/dx = 2") && !strstr(out, "pwned"), "eval:\n%s",
            out);
  free(out);

  const char *c = tmpdir_path("f.c");
  cr_assert_eq(exec_log((char *[]){MATDIFF, "compile", (char *)expr, "--name", "f", "-o", (char *)c,
                                   NULL}, log), 0);
  char *code = slurp(c);
  cr_assert_not_null(code);
  expect_one_header(code, "compile");
  free(code);
  tmpdir_text("driver.c", "#include <stdio.h>\n"
                          "double f_grad(const double *x, double *dx);\n"
                          "int main(void) {\n"
                          "  double x = 3, dx = 0, y = f_grad(&x, &dx);\n"
                          "  printf(\"%g %g\\n\", y, dx);\n"
                          "  return 0;\n"
                          "}\n");
  int rc = build_and_run("f.c", false, &out);
  cr_expect_eq(rc, 0, "the C does not build or run:\n%s", out);
  cr_expect_str_eq(out, "6 2\n", "the program printed:\n%s", out);
  free(out);
  remove_tree();
}

/* ---- names that C's headers own (issue #10, item 3) ------------------------ */

// Names the emitted C could meet: C's keywords (GNU's too), the emitter's
// own locals, the runtime's prefix; the rest come from the headers.
static const char *const c_words[] = {
    "asm", "typeof", "auto", "int", "double", "float", "long", "return", "inline", "restrict",
    "main", "free", "printf", "I", "complex", "imaginary", "unix", "linux", "i", "j", "v", "y",
    "ws", "ws_", "seed", "out", "dims", "inputs", "grads", "t1", "t2", "d_x", "v_x", "mdrt_sum",
    "mdrt_gemm", "u_mdrt_sum", "x",
};

static int by_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

// Every identifier the C's headers (<math.h>, <stdlib.h> and the
// <tgmath.h> of --standalone --float) declare or define, as the system's
// compiler preprocesses them, with c_words; those the language has as
// names ([A-Za-z][A-Za-z0-9_]*), sorted, each once. Their number.
static int header_names(char ***names) {
  char *all = NULL;
  size_t cap = 0, len = 0;
  const char *cmds[] = {
      "printf '#include <math.h>\\n#include <stdlib.h>\\n#include <tgmath.h>\\n' | cc -E -dM -x c - "
      "| cut -d' ' -f2 | cut -d'(' -f1",
      "printf '#include <math.h>\\n#include <stdlib.h>\\n#include <tgmath.h>\\n' | cc -E -P -x c - "
      "| tr -c 'A-Za-z0-9_' '\\n'"};
  for (int k = 0; k < 2; k++) {
    FILE *p = popen(cmds[k], "r");
    cr_assert_not_null(p);
    char buf[4096];
    for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0; len += n) {
      if (len + n + 2 > cap)
        cr_assert_not_null(all = realloc(all, cap = 2 * (len + n) + 2));
      memcpy(all + len, buf, n);
    }
    cr_assert_eq(pclose(p), 0, "%s failed", cmds[k]);
    all[len++] = '\n';
  }
  all[len] = '\0';
  int n = 0, cap_n = 64;
  char **v = malloc(sizeof *v * (size_t)cap_n);
  for (size_t i = 0; i < sizeof c_words / sizeof *c_words; i++)
    v[n++] = strdup(c_words[i]);
  for (char *tok = strtok(all, "\n"); tok; tok = strtok(NULL, "\n")) {
    bool ident = (*tok >= 'A' && *tok <= 'Z') || (*tok >= 'a' && *tok <= 'z');
    for (const char *q = tok; *q && ident; q++)
      ident = (*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') ||
              *q == '_';
    if (!ident)
      continue;
    if (n == cap_n)
      cr_assert_not_null(v = realloc(v, sizeof *v * (size_t)(cap_n *= 2)));
    v[n++] = strdup(tok);
  }
  free(all);
  qsort(v, (size_t)n, sizeof *v, by_str);
  int u = 0;
  for (int i = 0; i < n; i++)
    if (!u || strcmp(v[u - 1], v[i]))
      v[u++] = v[i];
    else
      free(v[i]);
  *names = v;
  return u;
}

// Does the language take NAME as an input's name? ("wrt" is its keyword.)
static bool language_name(const char *name) {
  char src[256];
  snprintf(src, sizeof src, "%s : scalar\ny = %s\n", name, name);
  md_error err;
  md_function *f = md_compile(src, "name.expr", &err);
  md_free(f);
  return f != NULL;
}

#define NAMES_PER_PROGRAM 150

// A program of the names N[0..k): N[0] is a size, N[1] a vector of that
// size, the others scalars; y = sum(N1.*N1) + 1*N2*N2 + 2*N3*N3 + ...
static char *names_program(char **nm, int k) {
  Out o = {0};
  put(&o, "%s : vector(%s)\n", nm[1], nm[0]);
  for (int i = 2; i < k; i++)
    put(&o, "%s : scalar\n", nm[i]);
  put(&o, "out_y = sum(%s.*%s)", nm[1], nm[1]);
  for (int i = 2; i < k; i++)
    put(&o, " + %d*%s*%s", i - 1, nm[i], nm[i]);
  put(&o, "\n");
  return o.s;
}

enum { VEC = 3 };
static const double vec[VEC] = {0.5, -0.25, 1};
static double scal(int i) { return 0.1 + 0.01 * i; }

// The value and the gradients, by hand: y as above, dN1 = 2 N1,
// dNi = 2 (i-1) Ni.
static double hand_value(int k) {
  double y = 0;
  for (int j = 0; j < VEC; j++)
    y += vec[j] * vec[j];
  for (int i = 2; i < k; i++)
    y += (i - 1) * scal(i) * scal(i);
  return y;
}

// The driver of f_grad for K names in precision T ("double" or "float"):
// it prints the value, then the gradients, one number a line.
static char *names_driver(int k, const char *T) {
  Out o = {0};
  put(&o, "#include <stdio.h>\n%s f_grad(long", T);
  for (int i = 1; i < k; i++)
    put(&o, ", const %s *", T);
  for (int i = 1; i < k; i++)
    put(&o, ", %s *", T);
  put(&o, ");\nint main(void) {\n  %s a[%d] = {%.17g, %.17g, %.17g}, g[%d] = {0}", T, VEC, vec[0],
      vec[1], vec[2], VEC);
  for (int i = 2; i < k; i++)
    put(&o, ", x%d = %.17g, d%d = 0", i, scal(i), i);
  put(&o, ";\n  %s y = f_grad(%d, a", T, VEC);
  for (int i = 2; i < k; i++)
    put(&o, ", &x%d", i);
  put(&o, ", g");
  for (int i = 2; i < k; i++)
    put(&o, ", &d%d", i);
  put(&o, ");\n  printf(\"%%.17g\\n%%.17g\\n%%.17g\\n%%.17g\\n\", (double)y, (double)g[0], "
          "(double)g[1], (double)g[2]);\n");
  for (int i = 2; i < k; i++)
    put(&o, "  printf(\"%%.17g\\n\", (double)d%d);\n", i);
  put(&o, "  return 0;\n}\n");
  return o.s;
}

// The numbers OUT holds, against the hand's, to TOL relative.
static void expect_names_numbers(const char *out, int k, double tol, const char *what) {
  const char *s = out;
  char *end;
  double y = strtod(s, &end);
  cr_assert(end != s, "%s: no value in\n%s", what, out);
  cr_expect_leq(fabs(y - hand_value(k)), tol * hand_value(k), "%s: y = %.17g", what, y);
  for (int j = 0; j < VEC; j++) {
    double g = strtod(s = end, &end);
    cr_expect_leq(fabs(g - 2 * vec[j]), tol, "%s: d%d = %.17g", what, j, g);
  }
  for (int i = 2; i < k; i++) {
    double g = strtod(s = end, &end);
    cr_assert(end != s, "%s: %d numbers only", what, i + 2);
    cr_expect_leq(fabs(g - 2 * (i - 1) * scal(i)), tol * 2 * (i - 1) * scal(i), "%s: name %d: %.17g",
                  what, i, g);
  }
}

// The program of the K names NM through the JIT.
static void names_jit(char **nm, int k) {
  char *src = names_program(nm, k);
  md_error err;
  md_function *f = md_compile(src, "names.expr", &err);
  free(src);
  cr_assert_not_null(f, "%s (from %s)", err.diag, nm[0]);
  long dims[1] = {VEC};
  double a[VEC], g[VEC] = {0}, *x = malloc(sizeof *x * (size_t)k), *d = calloc((size_t)k, sizeof *d);
  const double **in = malloc(sizeof *in * (size_t)k);
  double **grads = malloc(sizeof *grads * (size_t)k);
  memcpy(a, vec, sizeof a);
  in[0] = a, grads[0] = g;
  for (int i = 2; i < k; i++)
    x[i] = scal(i), in[i - 1] = &x[i], grads[i - 1] = &d[i];
  double y = 0;
  cr_assert_eq(md_grad(f, dims, in, &y, grads, &err), 0, "%s", err.message);
  Out o = {0};
  put(&o, "%.17g %.17g %.17g %.17g", y, g[0], g[1], g[2]);
  for (int i = 2; i < k; i++)
    put(&o, " %.17g", d[i]);
  expect_names_numbers(o.s, k, 1e-12, "JIT");
  free(o.s), free(x), free(d), free(in), free(grads);
  md_free(f);
}

// The same through `matdiff compile` in each form, cc and a driver.
static void names_aot(char **nm, int k) {
  char *src = names_program(nm, k);
  const char *expr = tmpdir_text("names.expr", src);
  free(src);
  static const char *const modes[] = {"", "--float", "--standalone", "--standalone --float"};
  for (int m = 0; m < 4; m++) {
    bool flt = strstr(modes[m], "float"), sa = strstr(modes[m], "standalone");
    char *drv = names_driver(k, flt ? "float" : "double");
    tmpdir_text("driver.c", drv);
    free(drv);
    char args[1024], *out;
    snprintf(args, sizeof args, "compile %s --name f %s -o f.c", expr, modes[m]);
    cr_assert_eq(matdiff_log(args, &out), 0, "%s: %s", args, out);
    free(out);
    int rc = build_and_run("f.c", sa, &out);
    cr_expect_eq(rc, 0, "compile %s of names %s..%s: %.2000s", modes[m], nm[0], nm[k - 1], out);
    if (rc) {
      free(out);
      continue;
    }
    char what[64];
    snprintf(what, sizeof what, "compile %s", modes[m]);
    expect_names_numbers(out, k, flt ? 1e-5 : 1e-12, what);
    free(out);
  }
}

// Every identifier of the headers the C includes, and C's keywords, as the
// names of sizes and inputs: the C compiles warning-free in each form and
// gives the hand's numbers. INFINITY, HUGE_VAL, EXIT_SUCCESS as inputs
// once gave C that built with warnings and crashed; unix, asm and typeof
// made md_compile fail with an internal error.
Test(names, header_identifiers_as_inputs, .timeout = 300) {
  char **all;
  int n = header_names(&all), k = 0;
  char **nm = malloc(sizeof *nm * (size_t)n);
  for (int i = 0; i < n; i++)
    if (language_name(all[i]))
      nm[k++] = all[i];
  cr_assert_gt(k, 300, "only %d names of %d", k, n);
  tmpdir_setup("names");
  for (int first = 0; first < k; first += NAMES_PER_PROGRAM) {
    int m = k - first < NAMES_PER_PROGRAM ? k - first : NAMES_PER_PROGRAM;
    if (m < 3)  /* a size, a vector and a scalar at least */
      first = k - 3, m = 3;
    names_jit(nm + first, m);
    names_aot(nm + first, m);
  }
  for (int i = 0; i < n; i++)
    free(all[i]);
  free(all), free(nm);
  remove_tree();
}

/* ---- the function's name (issue #10, item 4) ------------------------------- */

// Names C or its library has: from the file name (NAME.expr) and from
// --name, compile refuses them with a message that says to use --name,
// and writes no C. (exp, log, sin, int, main, free, abs and mdrt_sum gave
// C that did not compile; printf's replaced libc's printf and crashed.)
// eval of the same file is not concerned: the JIT names its functions.
Test(names, function_names_c_has_are_refused, .timeout = 120) {
  static const char *const taken[] = {"exp", "log", "sin", "int", "main", "free", "abs",
                                      "mdrt_sum", "printf", "read", "time", "unix", "INFINITY",
                                      "div_t", "_f", "exit", "puts",
#ifndef MDRT_NO_BLAS
                                      // a symbol of the process's libraries, which
                                      // BLAS=none does not link
                                      "cblas_dgemm"
#endif
  };
  tmpdir_setup("fnames");
  tmpdir_text("x.txt", "3\n");
  for (size_t i = 0; i < sizeof taken / sizeof *taken; i++) {
    char file[64], args[256], *log;
    snprintf(file, sizeof file, "%s.expr", taken[i]);
    tmpdir_text(file, "x : scalar\ny = x*x\n");
    for (int named = 0; named < 2; named++) {
      snprintf(args, sizeof args, named ? "compile ok.expr --name %s -o %s.c" : "compile %s -o %s.c",
               named ? taken[i] : file, taken[i]);
      if (named)
        tmpdir_text("ok.expr", "x : scalar\ny = x*x\n");
      cr_expect_eq(matdiff_log(args, &log), 1, "%s", args);
      char want[128];
      snprintf(want, sizeof want, "the function name '%s' is taken", taken[i]);
      cr_expect(strstr(log, want) && strstr(log, "--name"), "%s:\n%s", args, log);
      char cfile[32];
      snprintf(cfile, sizeof cfile, "%s.c", taken[i]);
      cr_expect_neq(access(tmpdir_path(cfile), F_OK), 0, "%s wrote C", args);
      free(log);
    }
    snprintf(args, sizeof args, "eval %s x=x.txt --grad", file);
    cr_expect_eq(matdiff_log(args, &log), 0, "%s", args);
    cr_expect(strstr(log, "y = 9") && strstr(log, "dy/dx = 6"), "%s:\n%s", args, log);
    free(log);
  }
  remove_tree();
}

// Names C does not have are kept as they are: several files, each named
// after its own, linked into one program with a driver that uses printf
// and free, built warning-free and run.
Test(names, other_function_names_build_together, .timeout = 120) {
  static const char *const fine[] = {"loss", "mlp_2", "f", "seed", "Grad", "v_x", "d", "x1"};
  enum { N = sizeof fine / sizeof *fine };
  tmpdir_setup("fnames_ok");
  Out files = {0}, drv = {0};
  put(&files, "%s", "");
  put(&drv, "#include <stdio.h>\n#include <stdlib.h>\n");
  for (int i = 0; i < N; i++) {
    char file[64], args[256], *log;
    snprintf(file, sizeof file, "%s.expr", fine[i]);
    tmpdir_text(file, "x : scalar\ny = x*x\n");
    snprintf(args, sizeof args, "compile %s -o %s.c", file, fine[i]);
    cr_assert_eq(matdiff_log(args, &log), 0, "%s: %s", args, log);
    free(log);
    put(&files, " %s.c", fine[i]);
    put(&drv, "double %s_grad(const double *x, double *dx);\n", fine[i]);
  }
  put(&drv, "int main(void) {\n  double *x = malloc(sizeof *x), dx = 0;\n");
  for (int i = 0; i < N; i++)
    put(&drv, "  *x = %d;\n  printf(\"%%g \", %s_grad(x, &dx));\n", i + 1, fine[i]);
  put(&drv, "  printf(\"%%g\\n\", dx);\n  free(x);\n  return 0;\n}\n");
  tmpdir_text("driver.c", drv.s);
  char *log;
  cr_assert_eq(build_and_run(files.s, false, &log), 0, "%s", log);
  Out want = {0};
  double dx = 0;
  for (int i = 0; i < N; i++)
    put(&want, "%g ", (double)(i + 1) * (i + 1)), dx += 2.0 * (i + 1);
  put(&want, "%g\n", dx);
  cr_expect_str_eq(log, want.s);
  free(log), free(want.s), free(files.s), free(drv.s);
  remove_tree();
}

/* ---- --float and constants out of its range (issue #10, item 12) ----------- */

// A constant single precision cannot hold was written as 1e+39f or
// 1e-50f: inf or 0 in the formula, and an error in the documented -Werror
// build. It is an error naming the constant; in double it is fine.
Test(float_literals, out_of_range_is_an_error, .timeout = 60) {
  static const char *const outside[] = {"x*1e39", "x - 1e39", "1e-50*x", "x/1e300", "x*3.5e38"};
  tmpdir_setup("float_lits");
  for (size_t i = 0; i < sizeof outside / sizeof *outside; i++) {
    char src[128], *log;
    snprintf(src, sizeof src, "x : scalar\ny = %s\n", outside[i]);
    tmpdir_text("f.expr", src);
    cr_expect_eq(matdiff_log("compile f.expr --float -o f.c", &log), 1, "%s", outside[i]);
    cr_expect(strstr(log, "outside single precision's range"), "%s: %s", outside[i], log);
    free(log);
    cr_expect_eq(matdiff_log("compile f.expr --float --standalone -o f.c", &log), 1, "%s", outside[i]);
    free(log);
    cr_expect_eq(matdiff_log("compile f.expr -o f.c", &log), 0, "%s in double: %s", outside[i], log);
    free(log);
  }
  remove_tree();
}

// Constants inside the range, a subnormal one too, build warning-free in
// single precision and give float's numbers.
Test(float_literals, in_range_builds, .timeout = 60) {
  tmpdir_setup("float_lits_ok");
  tmpdir_text("f.expr", "x : scalar\ny = x*3e38 + 1e-40*x - 1e-44\n");
  char *log;
  cr_assert_eq(matdiff_log("compile f.expr --float --name f -o f.c", &log), 0, "%s", log);
  free(log);
  tmpdir_text("driver.c", "#include <stdio.h>\n"
                          "float f_grad(const float *x, float *dx);\n"
                          "int main(void) {\n"
                          "  float x = 0.5f, dx = 0, y = f_grad(&x, &dx);\n"
                          "  printf(\"%.9g %.9g\\n\", (double)y, (double)dx);\n"
                          "  return 0;\n"
                          "}\n");
  char *out;
  cr_assert_eq(build_and_run("f.c", false, &out), 0, "%s", out);
  double y, dx;
  cr_assert_eq(sscanf(out, "%lf %lf", &y, &dx), 2, "%s", out);
  cr_expect_leq(fabs(y - 1.5e38) / 1.5e38, 1e-6, "y = %g", y);
  cr_expect_leq(fabs(dx - 3e38) / 3e38, 1e-6, "dy/dx = %g", dx);
  free(out);
  remove_tree();
}
