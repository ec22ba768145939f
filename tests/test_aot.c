/*
 * test_aot.c - ahead-of-time use: `matdiff compile FILE -o f.c --name f`,
 * built by the system compiler with every warning an error, linked against
 * the runtime only, and called from a small generated driver:
 *
 *   f, f_grad, f_grad with a NULL buffer, f_grad_ws and f_ws with a
 *   workspace of exactly f_workspace_size bytes (filled with NaNs first);
 *   for an output that is not a scalar, f, f_vjp, f_vjp_ws and f_ws
 *
 * The driver prints every number with %.17g; they are held against the JIT
 * (md_eval, md_vjp) and the tape (md_tape_vjp) in this process to 1e-12
 * (md_rel_err), and md_check holds the JIT against both oracles. For
 * some cases the same driver is built again with AddressSanitizer, so a
 * workspace smaller than the code uses, or a read past an input, fails.
 *
 * Each case runs in its own mkdtemp directory under /tmp, removed after
 * (unless MD_TEST_KEEP is set).
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cases.h"
#include "util.h"

#define GRAD_FILE MD_SRC_DIR "/tests/cases/grad.txt"
#define MATDIFF MD_BUILD_DIR "/matdiff"
#define TOL 1e-12
#define MAXV 16

/* ---- the cases ------------------------------------------------------------ */

// A case names a case of grad.txt (its sizes come from there too), or gives
// its own source.
typedef struct AotCase {
  char name[64];
  char src[512];   /* "" to take NAME's source from grad.txt */
  char opts[64];   /* sizes, as on a %% line */
  bool asan;       /* also build and run the driver with AddressSanitizer */
} AotCase;

ParameterizedTestParameters(aot, driver) {
  static AotCase cases[] = {
      {"seed_literal", "", "", false},
      {"seed_symbolic", "", "", true},
      {"practice", "", "", false},
      {"ridge_with_intermediate", "", "", true},
      {"least_squares_vector", "", "", false},
      {"sigmoid_layer", "", "", true},
      {"wrt_subset", "", "", false},
      // An input the loss does not use is still a parameter of f.
      {"unused_input", "X : matrix(n, k)\nc : scalar\ny = sum(X .* X)\n", "n=3 k=2", false},
      // Outputs that are not scalars: f writes OUT, f_vjp takes a seed.
      {"matrix_output", "X : matrix(n, k)\nW : matrix(k, m)\nb : vector(m)\nY = tanh(X*W + b')\n",
       "n=4 k=3 m=2", true},
      {"vector_output", "A : matrix(n, n)\nx : vector(n)\nwrt x\ny = softmax(A*x, 1) + A*x\n", "n=4",
       false},
      // A chain whose grouping the sizes choose at run time: each variant's
      // workspace fits in f_workspace_size (ASan), A*(B*C) here ...
      {"chain_tall", "A : matrix(n, k)\nB : matrix(k, m)\nC : matrix(m, p)\ny = ||A*B*C||_F^2\n",
       "n=9 k=2 m=9 p=2", true},
      // ... and (A*B)*C here.
      {"chain_wide", "A : matrix(n, k)\nB : matrix(k, m)\nC : matrix(m, p)\ny = ||A*B*C||_F^2\n",
       "n=2 k=9 m=2 p=9", true},
  };
  return cr_make_param_array(AotCase, cases, sizeof cases / sizeof cases[0]);
}

/* ---- helpers -------------------------------------------------------------- */

static void setup(void) { tmpdir_setup("test_aot"); }

// MD_TEST_KEEP=1 keeps the directories, to look at a failing driver.
static void teardown(void) { tmpdir_remove(); }

static const char *path(const char *name) { return tmpdir_path(name); }

// The whole of FILE, "" if it cannot be read.
static char *contents(const char *file) {
  char *s = slurp(file);
  return s ? s : strdup("");
}

// Run CMD through the shell with its output in LOG; the exit status.
static int run_log(const char *cmd, const char *log) {
  char full[4096];
  snprintf(full, sizeof full, "%s >%s 2>&1", cmd, log);
  return run(full);
}

/* ---- the driver ----------------------------------------------------------- */

typedef struct Prob {
  md_function *f;
  long dims[8];
  long len[MAXV];
  double *in[MAXV];
  long olen;       /* the output's element count */
  bool matrix;     /* a non-scalar output: f writes OUT, f_vjp takes a seed */
  double *seed;    /* olen numbers: the seed of f_vjp (unused for a scalar) */
} Prob;

// An argument list: sizes, inputs, MID (if any), gradients (the NULL_GRAD-th
// wrt one as NULL), WS (if any). Each FMT takes the index.
static void list(Out *b, const Prob *p, const char *fmt_dim, const char *fmt_in, const char *mid,
                 const char *fmt_grad, int null_grad, const char *ws) {
  const md_function *f = p->f;
  bool first = true;
  for (int d = 0; d < md_num_dims(f); d++, first = false)
    put(b, "%s", first ? "" : ", "), put(b, fmt_dim, d);
  for (int i = 0; i < md_num_inputs(f); i++, first = false)
    put(b, "%s", first ? "" : ", "), put(b, fmt_in, i);
  if (mid)
    put(b, "%s%s", first ? "" : ", ", mid), first = false;
  if (fmt_grad)
    for (int i = 0; i < md_num_inputs(f); i++)
      if (md_input_is_wrt(f, i)) {
        put(b, "%s", first ? "" : ", ");
        if (i == null_grad)
          put(b, "NULL");
        else
          put(b, fmt_grad, i);
        first = false;
      }
  if (ws)
    put(b, "%s%s", first ? "" : ", ", ws), first = false;
  if (first)
    put(b, "void");
}

static void array(Out *b, const char *name, const double *v, long n) {
  put(b, "static const double %s[%ld] = {", name, n);
  for (long e = 0; e < n; e++)
    put(b, "%s%.17g", e ? ", " : "", v[e]);
  put(b, "};\n");
}

// C for a main() that calls f in every way and prints what it gets: for a
// scalar output f, f_grad (all buffers, then the FIRST_WRT-th NULL),
// f_grad_ws, f_ws; for a matrix output f, f_vjp, f_vjp_ws, f_ws.
static char *driver_source(const Prob *p, int first_wrt) {
  const md_function *f = p->f;
  bool m = p->matrix;
  const char *g = m ? "f_vjp" : "f_grad", *ret = m ? "int" : "double";
  const char *pout = m ? "double *out" : NULL, *pseed = m ? "const double *seed" : NULL;
  const char *aout = m ? "out" : NULL, *aseed = m ? "seed" : NULL;
  Out b = {0};
  put(&b, "%s", "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n\n");
  // The documented signatures: sizes, inputs, [out | seed,] gradient buffers [, workspace].
  put(&b, "%s", "long f_workspace_size(");
  bool any = false;
  for (int d = 0; d < md_num_dims(f); d++, any = true)
    put(&b, "%slong n%d", d ? ", " : "", d);
  put(&b, "%s", any ? ");\n" : "void);\n");
  put(&b, "%s f(", ret);
  list(&b, p, "long n%d", "const double *a%d", pout, NULL, -1, NULL);
  put(&b, ");\n%s f_ws(", ret);
  list(&b, p, "long n%d", "const double *a%d", pout, NULL, -1, "void *ws");
  put(&b, ");\n%s %s(", ret, g);
  list(&b, p, "long n%d", "const double *a%d", pseed, "double *g%d", -1, NULL);
  put(&b, ");\n%s %s_ws(", ret, g);
  list(&b, p, "long n%d", "const double *a%d", pseed, "double *g%d", -1, "void *ws");
  put(&b, "%s", ");\n\n");
  for (int i = 0; i < md_num_inputs(f); i++) {
    char name[16];
    snprintf(name, sizeof name, "in%d", i);
    array(&b, name, p->in[i], p->len[i]);
  }
  if (m)
    array(&b, "seed", p->seed, p->olen);
  put(&b, "%s", "\nstatic void show(const char *tag, const double *v, long n) {\n"
               "  printf(\"%s\", tag);\n"
               "  for (long i = 0; i < n; i++)\n"
               "    printf(\" %.17g\", v[i]);\n"
               "  printf(\"\\n\");\n"
               "}\n\nint main(void) {\n");
  for (int d = 0; d < md_num_dims(f); d++)
    put(&b, "  const long d%d = %ld;\n", d, p->dims[d]);
  for (int i = 0; i < md_num_inputs(f); i++)
    if (md_input_is_wrt(f, i))
      put(&b, "  static double g%d[%ld], n%d[%ld], w%d[%ld];\n", i, p->len[i], i, p->len[i],
                 i, p->len[i]);
  if (m) {
    put(&b, "  static double out[%ld];\n  int rc = 0;\n  rc |= f(", p->olen);
    list(&b, p, "d%d", "in%d", aout, NULL, -1, NULL);
    put(&b, ");\n  show(\"value\", out, %ldL);\n", p->olen);
  } else {
    put(&b, "%s", "  int rc = 0;\n  double y = f(");
    list(&b, p, "d%d", "in%d", NULL, NULL, -1, NULL);
    put(&b, "%s", ");\n  show(\"value\", &y, 1);\n");
  }
  put(&b, "  %s%s(", m ? "rc |= " : "y = ", g);
  list(&b, p, "d%d", "in%d", aseed, "g%d", -1, NULL);
  put(&b, ");\n%s  %s%s(", m ? "" : "  show(\"grad_value\", &y, 1);\n", m ? "rc |= " : "y = ", g);
  list(&b, p, "d%d", "in%d", aseed, "n%d", first_wrt, NULL);
  put(&b, ");\n%s", m ? "" : "  show(\"null_value\", &y, 1);\n");
  put(&b, "%s", "  long bytes = f_workspace_size(");
  for (int d = 0; d < md_num_dims(f); d++)
    put(&b, "%sd%d", d ? ", " : "", d);
  // The workspace starts as NaNs: the code may not count on zeros.
  put(&b, ");\n  void *ws = malloc(bytes > 0 ? (size_t)bytes : 1);\n"
                 "  if (!ws)\n    return 1;\n  memset(ws, 0xff, bytes > 0 ? (size_t)bytes : 1);\n"
                 "  %s%s_ws(", m ? "rc |= " : "y = ", g);
  list(&b, p, "d%d", "in%d", aseed, "w%d", -1, "ws");
  if (m) {
    put(&b, "%s", ");\n  memset(out, 0, sizeof out);\n  rc |= f_ws(");
    list(&b, p, "d%d", "in%d", aout, NULL, -1, "ws");
    put(&b, ");\n  show(\"ws_value\", out, %ldL);\n", p->olen);
  } else {
    put(&b, "%s", ");\n  show(\"ws_grad_value\", &y, 1);\n  y = f_ws(");
    list(&b, p, "d%d", "in%d", NULL, NULL, -1, "ws");
    put(&b, "%s", ");\n  show(\"ws_value\", &y, 1);\n");
  }
  put(&b, "%s", "  free(ws);\n");
  for (int i = 0; i < md_num_inputs(f); i++)
    if (md_input_is_wrt(f, i))
      put(&b, "  show(\"grad%d\", g%d, %ldL);\n  show(\"null%d\", n%d, %ldL);\n"
                     "  show(\"ws%d\", w%d, %ldL);\n",
                 i, i, p->len[i], i, i, p->len[i], i, i, p->len[i]);
  put(&b, "%s", "  return rc != 0;\n}\n");
  return b.s;
}

/* ---- the test ------------------------------------------------------------- */

static void source_of(const AotCase *a, char **src, Case *opts) {
  memset(opts, 0, sizeof *opts);
  if (a->src[0]) {
    *src = strdup(a->src);
    snprintf(opts->opts, sizeof opts->opts, "%s", a->opts);
    return;
  }
  Case *cs;
  int n = cases_load(GRAD_FILE, &cs);
  cr_assert_geq(n, 0, "cannot read %s", GRAD_FILE);
  for (int i = 0; i < n; i++)
    if (!strcmp(cs[i].name, a->name)) {
      *src = strdup(cs[i].src);
      snprintf(opts->opts, sizeof opts->opts, "%s", cs[i].opts);
      cases_free(cs, n);
      return;
    }
  cases_free(cs, n);
  cr_assert_fail("grad.txt has no case %s", a->name);
}

// Build DRIVER.c and f.c into PROG with FLAGS; fail the test with the
// compiler's output if it says anything at all. false if there is no PROG.
static bool build(const char *prog, const char *flags) {
  char cmd[2048];
  const char *log = path("cc.log");
  snprintf(cmd, sizeof cmd,
           "cc -std=c99 -Wall -Wextra -Werror -pedantic %s $(%s config --cflags) %s %s "
           "$(%s config --libs) -o %s",
           flags, MATDIFF, path("f.c"), path("driver.c"), MATDIFF, prog);
  int rc = run_log(cmd, log);
  char *out = contents(log);
  cr_expect_eq(rc, 0, "the emitted C does not build warning-free (%s):\n%s", flags, out);
  if (rc == 0)
    cr_expect_str_eq(out, "", "the build printed:\n%s", out);
  free(out);
  return rc == 0;
}

// Expect the numbers after TAG in OUT to be WANT (N of them) within TOL.
static void expect_line(const char *name, const char *out, const char *tag, const double *want, long n,
                        const char *oracle) {
  double *v = malloc(sizeof(double) * (size_t)n);
  cr_assert(numbers(out, tag, v, n), "%s: no '%s' in\n%s", name, tag, out);
  double e = md_rel_err(v, want, n);
  cr_expect(e <= TOL, "%s: %s is off the %s by %.3g (first: %.17g, %s %.17g)", name, tag, oracle, e,
            v[0], oracle, want[0]);
  free(v);
}

// The driver's output OUT against the tape (md_tape_vjp) and the JIT
// (md_eval, md_vjp) with the driver's seed, in this process; and md_check
// of the JIT against the tape and finite differences at those inputs.
static void check_numbers(const char *name, const Prob *p, int first_wrt, const char *out) {
  md_function *f = p->f;
  int n = md_num_inputs(f);
  const double *const *in = (const double *const *)p->in;
  md_error err;
  double *ty = calloc((size_t)p->olen, sizeof(double)), *jy = calloc((size_t)p->olen, sizeof(double));
  double *tg[MAXV] = {0}, *jg[MAXV] = {0};
  for (int i = 0; i < n; i++)
    if (md_input_is_wrt(f, i)) {
      tg[i] = calloc((size_t)p->len[i], sizeof(double));
      jg[i] = calloc((size_t)p->len[i], sizeof(double));
    }
  cr_assert_eq(md_tape_vjp(f, p->dims, in, p->seed, ty, tg, &err), 0, "%s", err.message);
  cr_assert_eq(md_eval(f, p->dims, in, jy, &err), 0, "%s", err.message);
  cr_assert_eq(md_vjp(f, p->dims, in, p->seed, NULL, jg, &err), 0, "%s", err.message);
  md_check_opts o = {.inputs = in, .seed = p->seed};
  md_check_result r;
  cr_assert_eq(md_check(f, p->dims, &o, &r, &err), 0, "%s", err.message);
  cr_expect(r.ok, "%s: md_check: the JIT is off the tape by %.3g (value), or a gradient is off", name,
            r.value);
  md_check_result_free(&r);

  static const char *const values[] = {"value", "ws_value", "grad_value", "null_value", "ws_grad_value"};
  for (int k = 0; k < (p->matrix ? 2 : 5); k++) {
    expect_line(name, out, values[k], ty, p->olen, "tape");
    expect_line(name, out, values[k], jy, p->olen, "JIT");
  }
  for (int i = 0; i < n; i++) {
    if (!md_input_is_wrt(f, i))
      continue;
    static const char *const kinds[] = {"grad", "null", "ws"};
    for (int k = 0; k < 3; k++) {
      char tag[32];
      snprintf(tag, sizeof tag, "%s%d", kinds[k], i);
      if (k == 1 && i == first_wrt) {
        // The call was given NULL here: the driver's buffer stays all zeros.
        double *v = malloc(sizeof(double) * (size_t)p->len[i]);
        cr_assert(numbers(out, tag, v, p->len[i]), "%s: no '%s' in\n%s", name, tag, out);
        for (long e = 0; e < p->len[i]; e++)
          cr_expect_eq(v[e], 0, "%s: NULL buffer, yet %s[%ld] = %g", name, tag, e, v[e]);
        free(v);
        continue;
      }
      expect_line(name, out, tag, tg[i], p->len[i], "tape");
      expect_line(name, out, tag, jg[i], p->len[i], "JIT");
    }
  }
  for (int i = 0; i < n; i++) {
    free(tg[i]);
    free(jg[i]);
  }
  free(ty);
  free(jy);
}

ParameterizedTest(AotCase *a, aot, driver, .init = setup, .fini = teardown, .timeout = 60) {
  char *src;
  Case opts;
  source_of(a, &src, &opts);
  tmpdir_text("f.expr", src);

  // matdiff compile FILE -o f.c --name f
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "%s compile %s -o %s --name f", MATDIFF, path("f.expr"), path("f.c"));
  int rc = run_log(cmd, path("compile.log"));
  char *log = contents(path("compile.log"));
  cr_assert_eq(rc, 0, "%s: matdiff compile failed:\n%s", a->name, log);
  free(log);

  // The same source in process: its shapes, and the JIT and the tape for
  // the expected numbers.
  md_error err;
  md_function *f = md_compile(src, "f.expr", &err);
  cr_assert_not_null(f, "%s: md_compile: %s", a->name, err.diag);
  Prob p = {.f = f};
  cr_assert_leq(md_num_inputs(f), MAXV);
  for (int d = 0; d < md_num_dims(f); d++)
    p.dims[d] = cases_opt(&opts, md_dim_name(f, d), 3 + d % 3);
  Rng g = {12345};
  int first_wrt = -1;
  for (int i = 0; i < md_num_inputs(f); i++) {
    p.len[i] = md_input_rows(f, i, p.dims) * md_input_cols(f, i, p.dims);
    p.in[i] = malloc(sizeof(double) * (size_t)p.len[i]);
    for (long e = 0; e < p.len[i]; e++)
      p.in[i][e] = uniform(&g, -1, 1);
    if (md_input_is_wrt(f, i) && first_wrt < 0)
      first_wrt = i;
  }
  p.olen = md_output_rows(f, p.dims) * md_output_cols(f, p.dims);
  p.matrix = md_output_rows(f, NULL) != 1 || md_output_cols(f, NULL) != 1;
  p.seed = malloc(sizeof(double) * (size_t)p.olen);
  for (long e = 0; e < p.olen; e++)
    p.seed[e] = p.matrix ? uniform(&g, -1, 1) : 1;
  char *drv = driver_source(&p, first_wrt);
  tmpdir_text("driver.c", drv);
  free(drv);

  if (build(path("prog"), "")) {
    rc = run_log(path("prog"), path("prog.out"));
    char *out = contents(path("prog.out"));
    cr_expect_eq(rc, 0, "%s: the driver exited %d:\n%s", a->name, rc, out);
    if (rc == 0)
      check_numbers(a->name, &p, first_wrt, out);
    free(out);
  }

  // Again with AddressSanitizer (for the cases with the most temporaries,
  // to keep the suite fast): the workspace of f_workspace_size bytes must be
  // enough, and no input may be read past its end.
  if (a->asan && build(path("prog_asan"), "-g -fsanitize=address,undefined -fno-sanitize-recover=all")) {
    char asan[512];
    snprintf(asan, sizeof asan, "ASAN_OPTIONS=detect_leaks=1 %s", path("prog_asan"));
    rc = run_log(asan, path("asan.out"));
    char *aout = contents(path("asan.out"));
    cr_expect_eq(rc, 0, "%s: the sanitized driver failed:\n%s", a->name, aout);
    free(aout);
  }

  for (int i = 0; i < md_num_inputs(f); i++)
    free(p.in[i]);
  free(p.seed);
  md_free(f);
  free(src);
}
