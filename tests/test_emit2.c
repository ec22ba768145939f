/*
 * test_emit2.c - the emitted second-order functions (emit_second.c) through
 * the JIT: md_jvp, md_hvp, md_hessian and md_jacobian for every example
 * and for the table, against the tape's forward mode and
 * forward-over-reverse (exact to rounding) and the HVP also against
 * central differences of the gradient (md_check2); and what they refuse.
 * The AOT path: `matdiff compile --second` of every example builds
 * warning-free in double, float and standalone, and a generated driver's
 * P_jvp, P_hvp (with a NULL buffer) and P_hessian or P_jacobian give the
 * JIT's numbers to 1e-12.
 */
#include <criterion/criterion.h>
#include <glob.h>
#include <stdio.h>
#include <string.h>
#include "util.h"

// SRC compiled, and its sizes in DIMS: 3, 4, 5, ...
// A symmetric(n) or posdef(n) input takes data of its kind, as every call
// requires, and a symmetric direction (a perturbation that keeps it so).
static void symmetric_draw(md_function *f, int i, const long *dims, double *in, double *dir) {
  if (!md_input_is_symmetric(f, i))
    return;
  long n = md_input_rows(f, i, dims);
  md_symmetrize(in, n, md_input_is_posdef(f, i));
  md_symmetrize(dir, n, 0);
}

static md_function *compile_at(const char *name, const char *src, long *dims) {
  md_error err;
  md_function *f = md_compile(src, name, &err);
  cr_assert_not_null(f, "%s: %s", name, err.diag);
  cr_assert_leq(md_num_dims(f), 8);
  for (int d = 0; d < md_num_dims(f); d++)
    dims[d] = 3 + d;
  return f;
}

// Everything emitted second order about SRC at sizes 3, 4, 5, ...
static void check_source(const char *name, const char *src) {
  md_error err;
  long dims[8] = {0};
  md_function *f = compile_at(name, src, dims);
  int n = md_num_inputs(f);
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
    symmetric_draw(f, i, dims, in[i], dir[i]);
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

static void aot_setup(void) { tmpdir_setup("test_emit2"); }

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
    // X'*diag(s)*X: by syrk with s >= 0 (exp), by gemm where s may be < 0
    "X : matrix(n, d)\nw : vector(d)\nwrt w\nf = sum(exp(X*w))\n",
    "X : matrix(n, d)\nw : vector(d)\nwrt w\nf = sum(cos(X*w))\n",
    // make soak's seed 20334164: a Jacobian (added into J) of inv(A)*B was
    // planned as a solve written fresh, and gemm read a nameless inverse.
    "z : vector(m)\nu : vector(m)\nY : matrix(m, m)\nwrt z\n"
    "value = inv((Y + eye(m) * (m + 2))) * diag(cos(u.*z))*z\n",
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

/* ---- the AOT path -------------------------------------------------------------- */

#define MATDIFF MD_BUILD_DIR "/matdiff"
#define TOL_AOT 1e-12

static void c_array(Out *o, const char *name, const double *v, long n) {
  put(o, "static const double %s[%ld] = {", name, n > 0 ? n : 1);
  for (long k = 0; k < n; k++)
    put(o, "%s%.17g", k ? ", " : "", v[k]);
  put(o, "};\n");
}

static void c_print(Out *o, const char *tag, const char *array, long n) {
  put(o, "  printf(\"%s\");\n  for (long k = 0; k < %ld; k++)\n    printf(\" %%.17g\", %s[k]);\n"
         "  printf(\"\\n\");\n", tag, n, array);
}

// One example through compile --second: built in three variants, the
// double one run by a driver and held against the JIT.
static void check_aot(const char *name, const char *src) {
  md_error err;
  long dims[8] = {0};
  md_function *f = compile_at(name, src, dims);
  int n = md_num_inputs(f);
  bool scalar = md_output_rows(f, NULL) == 1 && md_output_cols(f, NULL) == 1;
  long outlen = md_output_rows(f, dims) * md_output_cols(f, dims), N = md_wrt_size(f, dims);
  double *in[8] = {0}, *dir[8] = {0}, *hv[8] = {0};
  long len[8];
  md_rng g;
  md_rng_seed(&g, fnv1a(name));
  Out o = {0};
  put(&o, "#include <stdio.h>\n#include \"f.c\"\n\n");
  cr_assert_leq(n, 8);
  int first = -1;
  for (int i = 0; i < n; i++) {
    len[i] = md_input_rows(f, i, dims) * md_input_cols(f, i, dims);
    in[i] = malloc(sizeof(double) * (size_t)len[i]);
    dir[i] = malloc(sizeof(double) * (size_t)len[i]);
    for (long k = 0; k < len[i]; k++)
      in[i][k] = md_rng_normal(&g), dir[i][k] = md_rng_normal(&g);
    symmetric_draw(f, i, dims, in[i], dir[i]);
    char nm[16];
    snprintf(nm, sizeof nm, "in%d", i);
    c_array(&o, nm, in[i], len[i]);
    if (md_input_is_wrt(f, i)) {
      snprintf(nm, sizeof nm, "dir%d", i);
      c_array(&o, nm, dir[i], len[i]);
      hv[i] = calloc((size_t)len[i], sizeof(double));
      if (scalar)
        put(&o, "static double hv%d[%ld];\n", i, len[i]);
      if (first < 0)
        first = i;
    }
  }
  put(&o, "static double tangent[%ld], M[%ld];\n\nint main(void) {\n", outlen,
      (scalar ? N * N : outlen * N) + 1);
  Out args = {0};
  for (int d = 0; d < md_num_dims(f); d++)
    put(&args, "%ld, ", dims[d]);
  for (int i = 0; i < n; i++)
    put(&args, "in%d, ", i);
  Out dirs = {0}, hvs = {0};
  for (int i = 0; i < n; i++)
    if (md_input_is_wrt(f, i)) {
      put(&dirs, "dir%d, ", i);
      // The first HVP buffer NULL: it is skipped, the others are not.
      put(&hvs, i == first && N > len[i] ? "NULL, " : "hv%d, ", i);
    }
  put(&o, "  if (f_jvp(%s%stangent))\n    return 1;\n", args.s, dirs.s ? dirs.s : "");
  c_print(&o, "jvp", "tangent", outlen);
  if (scalar) {
    put(&o, "  if (f_hvp(%s%s%s))\n    return 1;\n", args.s, dirs.s ? dirs.s : "", hvs.s ? hvs.s : "");
    for (int i = 0; i < n; i++)
      if (md_input_is_wrt(f, i)) {
        char tag[16], arr[16];
        snprintf(tag, sizeof tag, "hv%d", i);
        snprintf(arr, sizeof arr, "hv%d", i);
        c_print(&o, tag, arr, len[i]);
      }
    put(&o, "  if (f_hessian(%sM))\n    return 1;\n", args.s);
    c_print(&o, "whole", "M", N * N);
  } else {
    put(&o, "  if (f_jacobian(%sM))\n    return 1;\n", args.s);
    c_print(&o, "whole", "M", outlen * N);
  }
  put(&o, "  return 0;\n}\n");
  // "f_hvp(..., hv1, )": the buffer list's last separator goes.
  char *bad = strstr(o.s, ", ))");
  while (bad) {
    memmove(bad, bad + 2, strlen(bad + 2) + 1);
    bad = strstr(o.s, ", ))");
  }
  char *dir_path = tmpdir();
  cr_assert_not_null(dir_path);
  char cmd[4096], file[1024];
  snprintf(file, sizeof file, "%s/driver.c", dir_path);
  cr_assert(spit(file, o.s));
  snprintf(file, sizeof file, "%s/f.c", dir_path);
  cr_assert(spit(file, src));
  static const char *const variants[] = {"", "--float", "--standalone"};
  for (int v = 0; v < 3; v++) {
    snprintf(cmd, sizeof cmd, "cd %s && %s compile --second %s --name f f.c.expr -o f.c 2>&1 >/dev/null "
             "| head -5 && cc -std=c99 -Wall -Wextra -Werror -pedantic $(%s config --cflags) -c f.c "
             "-o f.o", dir_path, MATDIFF, variants[v], MATDIFF);
    snprintf(file, sizeof file, "%s/f.c.expr", dir_path);
    cr_assert(spit(file, src));
    cr_expect_eq(run(cmd), 0, "%s: compile --second %s does not build warning-free", name,
                 variants[v]);
  }
  snprintf(cmd, sizeof cmd, "cd %s && %s compile --second --name f f.c.expr -o f.c && "
           "cc -std=c99 -Wall -Wextra -Werror -pedantic $(%s config --cflags) driver.c "
           "$(%s config --libs) -o driver && ./driver > out.txt", dir_path, MATDIFF, MATDIFF, MATDIFF);
  cr_assert_eq(run(cmd), 0, "%s: the driver does not build or run:\n%s", name, o.s);
  snprintf(file, sizeof file, "%s/out.txt", dir_path);
  char *out = slurp(file);
  cr_assert_not_null(out);
  double *got = malloc(sizeof(double) * (size_t)((scalar ? N * N : outlen * N) + outlen + 1));
  double *want = calloc((size_t)((scalar ? N * N : outlen * N) + outlen + 1), sizeof(double));
  const double *const *ci = (const double *const *)in, *const *cd = (const double *const *)dir;
  cr_assert_eq(md_jvp(f, dims, ci, cd, want, &err), 0, "%s", err.message);
  cr_assert(numbers(out, "jvp", got, outlen), "%s", out);
  cr_expect(md_rel_err(got, want, outlen) <= TOL_AOT, "%s: P_jvp is off md_jvp", name);
  if (scalar) {
    if (N > len[first]) {
      free(hv[first]);
      hv[first] = NULL;
    }
    cr_assert_eq(md_hvp(f, dims, ci, cd, hv, &err), 0, "%s", err.message);
    for (int i = 0; i < n; i++)
      if (md_input_is_wrt(f, i)) {
        char tag[16];
        snprintf(tag, sizeof tag, "hv%d", i);
        cr_assert(numbers(out, tag, got, len[i]), "%s", out);
        double *zero = calloc((size_t)len[i], sizeof *zero);
        cr_expect(md_rel_err(got, hv[i] ? hv[i] : zero, len[i]) <= TOL_AOT,
                  "%s: P_hvp's %s is off md_hvp's%s", name, md_input_name(f, i),
                  hv[i] ? "" : " (a NULL buffer must leave it 0)");
        free(zero);
      }
  }
  long m = scalar ? N * N : outlen * N;
  memset(want, 0, sizeof(double) * (size_t)m);  // md_hessian adds; want held the JVP
  cr_assert_eq(scalar ? md_hessian(f, dims, ci, want, &err) : md_jacobian(f, dims, ci, want, &err), 0,
               "%s", err.message);
  cr_assert(numbers(out, "whole", got, m), "%s", out);
  cr_expect(md_rel_err(got, want, m) <= TOL_AOT, "%s: P_%s is off the JIT's", name,
            scalar ? "hessian" : "jacobian");
  free(out), free(got), free(want), free(o.s), free(args.s), free(dirs.s), free(hvs.s);
  for (int i = 0; i < n; i++)
    free(in[i]), free(dir[i]), free(hv[i]);
  md_free(f);
}

Test(emit2, aot, .init = aot_setup, .fini = tmpdir_remove) {
  cr_assert(each_example(check_aot), "the examples cannot be read");
  check_aot("matrix output", "X : matrix(n, k)\nW : matrix(k, m)\nwrt W\nY = tanh(X*W)\n");
  check_aot("vector output", "A : matrix(m, n)\nx : vector(n)\nwrt x\nF = exp(A*x)\n");
}

// WHAT in the code of TEXT, not in its comments (each a line's tail).
static int count(const char *text, const char *what) {
  int k = 0;
  for (const char *s = text; (s = strstr(s, what)); s++) {
    const char *line = s;
    while (line > text && line[-1] != '\n')
      line--;
    const char *comment = strstr(line, "/*");
    k += !comment || comment > s;
  }
  return k;
}

// The body of the Hessian `matdiff compile --second` writes for SRC.
static char *hessian_body(const char *src) {
  const char *path = tmpdir_text("h.expr", src);
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "%s compile --second %s --name h -o %s", MATDIFF, path,
           tmpdir_path("h.c"));
  cr_assert_eq(run(cmd), 0);
  char *c = slurp(tmpdir_path("h.c"));
  cr_assert_not_null(c);
  const char *body = strstr(c, "h_hessian_body(const long");
  cr_assert_not_null(body, "%s", c);
  const char *end = strstr(body, "\n}\n");
  cr_assert_not_null(end);
  char *text = strndup(body, (size_t)(end - body));
  free(c);
  return text;
}

// A multiplied diag(v) is never dense: logistic regression's Hessian
// X'*diag(s)*X/n, s = sigmoid(z).*(1 - sigmoid(z)) >= 0, is one scaling
// pass by sqrt(s) and one syrk (half gemm's work), with no n x n buffer.
// Where s may be negative (cos(z)), one scaling pass and one gemm. The
// numbers are held against the tape by the sources above.
Test(emit2, diag_is_a_scaling, .init = aot_setup, .fini = tmpdir_remove) {
  char *text = hessian_body("X : matrix(n, d)\nw : vector(d)\ny : vector(n)\n"
                            "wrt w\nloss = sum(softplus(X*w) - y.*(X*w))/n\n");
  cr_expect_null(strstr(text, "n*v_n"), "an n x n buffer:\n%s", text);
  cr_expect_null(strstr(text, "i == j"), "a dense diagonal:\n%s", text);
  cr_expect_eq(count(text, "mdrt_gemm("), 1, "X*w, and no gemm for the Hessian:\n%s", text);
  cr_expect_eq(count(text, "mdrt_syrk("), 1, "one syrk for the Hessian:\n%s", text);
  cr_expect_eq(count(text, "sqrt("), 1, "sqrt(s) once, not per element:\n%s", text);
  free(text);
  text = hessian_body("X : matrix(n, d)\nw : vector(d)\nwrt w\nf = sum(cos(X*w))\n");
  cr_expect_null(strstr(text, "n*v_n"), "an n x n buffer:\n%s", text);
  cr_expect_eq(count(text, "mdrt_syrk("), 0, "syrk, with s = -cos(z) maybe < 0:\n%s", text);
  cr_expect_eq(count(text, "mdrt_gemm("), 2, "X*w and one gemm for the Hessian:\n%s", text);
  free(text);
}
