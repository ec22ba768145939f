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
 * (md_eval, md_grad) and the tape in this process to 1e-12 relative. For
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
#include "api.h"
#include "cases.h"
#include "matdiff_rt.h"

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
  };
  return cr_make_param_array(AotCase, cases, sizeof cases / sizeof cases[0]);
}

/* ---- helpers -------------------------------------------------------------- */

typedef struct {
  uint64_t s;
} Rng;

static double uniform(Rng *g, double lo, double hi) {
  uint64_t z = (g->s += 0x9E3779B97F4A7C15u);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
  z ^= z >> 31;
  return lo + (hi - lo) * (double)(z >> 11) * 0x1.0p-53;
}

static double rel_err(const double *a, const double *b, long n) {
  double diff = 0, scale = 0;
  for (long i = 0; i < n; i++) {
    double d = fabs(a[i] - b[i]);
    diff = d > diff || isnan(d) ? d : diff;
    scale = fmax(scale, fabs(b[i]));
  }
  return diff / (scale > 0 ? scale : 1);
}

static char dir[64];
static char made[16][128];
static int nmade;

static void setup(void) {
  snprintf(dir, sizeof dir, "/tmp/test_aot.XXXXXX");
  cr_assert_not_null(mkdtemp(dir), "mkdtemp failed");
  nmade = 0;
}

// MD_TEST_KEEP=1 keeps the directories, to look at a failing driver.
static void teardown(void) {
  if (getenv("MD_TEST_KEEP"))
    return;
  for (int i = 0; i < nmade; i++)
    unlink(made[i]);
  rmdir(dir);
}

// The path of NAME in this test's directory, removed at teardown.
static const char *path(const char *name) {
  static char p[16][128];
  static int next;
  char *s = p[next++ % 16];
  snprintf(s, 128, "%s/%s", dir, name);
  for (int i = 0; i < nmade; i++)
    if (!strcmp(made[i], s))
      return s;
  if (nmade < 16)
    strcpy(made[nmade++], s);
  return s;
}

static void put(const char *file, const char *text) {
  FILE *f = fopen(file, "w");
  cr_assert_not_null(f, "cannot write %s", file);
  fputs(text, f);
  fclose(f);
}

static char *slurp(const char *file) {
  char *s = cases_slurp(file);
  return s ? s : strdup("");
}

// Run CMD through the shell with its output in LOG; the exit status.
static int run(const char *cmd, const char *log) {
  char full[4096];
  snprintf(full, sizeof full, "%s >%s 2>&1", cmd, log);
  int rc = system(full);
  return rc == -1 ? -1 : WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

// The numbers after "TAG " on the line of OUT that starts with it.
static int numbers(const char *out, const char *tag, double *v, long n) {
  size_t tl = strlen(tag);
  for (const char *p = out; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
    if (strncmp(p, tag, tl) || p[tl] != ' ')
      continue;
    const char *q = p + tl;
    for (long i = 0; i < n; i++) {
      char *end;
      v[i] = strtod(q, &end);
      if (end == q)
        return -1;
      q = end;
    }
    return 0;
  }
  return -1;
}

/* ---- the driver ----------------------------------------------------------- */

typedef struct Prob {
  Ctx *c;
  long dims[8];
  long len[MAXV];
  double *in[MAXV];
  long olen;       /* the output's element count */
  bool matrix;     /* a non-scalar output: f writes OUT, f_vjp takes a seed */
  double *seed;    /* olen numbers: the seed of f_vjp (unused for a scalar) */
} Prob;

// An argument list: sizes, inputs, MID (if any), gradients (the NULL_GRAD-th
// wrt one as NULL), WS (if any). Each FMT takes the index.
static void list(Buf *b, const Prob *p, const char *fmt_dim, const char *fmt_in, const char *mid,
                 const char *fmt_grad, int null_grad, const char *ws) {
  const Ctx *c = p->c;
  bool first = true;
  for (int d = 0; d < c->ndims; d++, first = false)
    buf_printf(b, "%s", first ? "" : ", "), buf_printf(b, fmt_dim, d);
  for (int i = 0; i < c->nvars; i++, first = false)
    buf_printf(b, "%s", first ? "" : ", "), buf_printf(b, fmt_in, i);
  if (mid)
    buf_printf(b, "%s%s", first ? "" : ", ", mid), first = false;
  if (fmt_grad)
    for (int i = 0; i < c->nvars; i++)
      if (c->vars[i].wrt) {
        buf_printf(b, "%s", first ? "" : ", ");
        if (i == null_grad)
          buf_puts(b, "NULL");
        else
          buf_printf(b, fmt_grad, i);
        first = false;
      }
  if (ws)
    buf_printf(b, "%s%s", first ? "" : ", ", ws), first = false;
  if (first)
    buf_puts(b, "void");
}

static void array(Buf *b, const char *name, const double *v, long n) {
  buf_printf(b, "static const double %s[%ld] = {", name, n);
  for (long e = 0; e < n; e++)
    buf_printf(b, "%s%.17g", e ? ", " : "", v[e]);
  buf_puts(b, "};\n");
}

// C for a main() that calls f in every way and prints what it gets: for a
// scalar output f, f_grad (all buffers, then the FIRST_WRT-th NULL),
// f_grad_ws, f_ws; for a matrix output f, f_vjp, f_vjp_ws, f_ws.
static char *driver_source(const Prob *p, int first_wrt) {
  const Ctx *c = p->c;
  bool m = p->matrix;
  const char *g = m ? "f_vjp" : "f_grad", *ret = m ? "int" : "double";
  const char *pout = m ? "double *out" : NULL, *pseed = m ? "const double *seed" : NULL;
  const char *aout = m ? "out" : NULL, *aseed = m ? "seed" : NULL;
  Buf b = {0};
  buf_puts(&b, "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n\n");
  // The documented signatures: sizes, inputs, [out | seed,] gradient buffers [, workspace].
  buf_puts(&b, "long f_workspace_size(");
  bool any = false;
  for (int d = 0; d < c->ndims; d++, any = true)
    buf_printf(&b, "%slong n%d", d ? ", " : "", d);
  buf_puts(&b, any ? ");\n" : "void);\n");
  buf_printf(&b, "%s f(", ret);
  list(&b, p, "long n%d", "const double *a%d", pout, NULL, -1, NULL);
  buf_printf(&b, ");\n%s f_ws(", ret);
  list(&b, p, "long n%d", "const double *a%d", pout, NULL, -1, "void *ws");
  buf_printf(&b, ");\n%s %s(", ret, g);
  list(&b, p, "long n%d", "const double *a%d", pseed, "double *g%d", -1, NULL);
  buf_printf(&b, ");\n%s %s_ws(", ret, g);
  list(&b, p, "long n%d", "const double *a%d", pseed, "double *g%d", -1, "void *ws");
  buf_puts(&b, ");\n\n");
  for (int i = 0; i < c->nvars; i++) {
    char name[16];
    snprintf(name, sizeof name, "in%d", i);
    array(&b, name, p->in[i], p->len[i]);
  }
  if (m)
    array(&b, "seed", p->seed, p->olen);
  buf_puts(&b, "\nstatic void show(const char *tag, const double *v, long n) {\n"
               "  printf(\"%s\", tag);\n"
               "  for (long i = 0; i < n; i++)\n"
               "    printf(\" %.17g\", v[i]);\n"
               "  printf(\"\\n\");\n"
               "}\n\nint main(void) {\n");
  for (int d = 0; d < c->ndims; d++)
    buf_printf(&b, "  const long d%d = %ld;\n", d, p->dims[d]);
  for (int i = 0; i < c->nvars; i++)
    if (c->vars[i].wrt)
      buf_printf(&b, "  static double g%d[%ld], n%d[%ld], w%d[%ld];\n", i, p->len[i], i, p->len[i],
                 i, p->len[i]);
  if (m) {
    buf_printf(&b, "  static double out[%ld];\n  int rc = 0;\n  rc |= f(", p->olen);
    list(&b, p, "d%d", "in%d", aout, NULL, -1, NULL);
    buf_printf(&b, ");\n  show(\"value\", out, %ldL);\n", p->olen);
  } else {
    buf_puts(&b, "  int rc = 0;\n  double y = f(");
    list(&b, p, "d%d", "in%d", NULL, NULL, -1, NULL);
    buf_puts(&b, ");\n  show(\"value\", &y, 1);\n");
  }
  buf_printf(&b, "  %s%s(", m ? "rc |= " : "y = ", g);
  list(&b, p, "d%d", "in%d", aseed, "g%d", -1, NULL);
  buf_printf(&b, ");\n%s  %s%s(", m ? "" : "  show(\"grad_value\", &y, 1);\n", m ? "rc |= " : "y = ", g);
  list(&b, p, "d%d", "in%d", aseed, "n%d", first_wrt, NULL);
  buf_printf(&b, ");\n%s", m ? "" : "  show(\"null_value\", &y, 1);\n");
  buf_puts(&b, "  long bytes = f_workspace_size(");
  for (int d = 0; d < c->ndims; d++)
    buf_printf(&b, "%sd%d", d ? ", " : "", d);
  // The workspace starts as NaNs: the code may not count on zeros.
  buf_printf(&b, ");\n  void *ws = malloc(bytes > 0 ? (size_t)bytes : 1);\n"
                 "  if (!ws)\n    return 1;\n  memset(ws, 0xff, bytes > 0 ? (size_t)bytes : 1);\n"
                 "  %s%s_ws(", m ? "rc |= " : "y = ", g);
  list(&b, p, "d%d", "in%d", aseed, "w%d", -1, "ws");
  if (m) {
    buf_puts(&b, ");\n  memset(out, 0, sizeof out);\n  rc |= f_ws(");
    list(&b, p, "d%d", "in%d", aout, NULL, -1, "ws");
    buf_printf(&b, ");\n  show(\"ws_value\", out, %ldL);\n", p->olen);
  } else {
    buf_puts(&b, ");\n  show(\"ws_grad_value\", &y, 1);\n  y = f_ws(");
    list(&b, p, "d%d", "in%d", NULL, NULL, -1, "ws");
    buf_puts(&b, ");\n  show(\"ws_value\", &y, 1);\n");
  }
  buf_puts(&b, "  free(ws);\n");
  for (int i = 0; i < c->nvars; i++)
    if (c->vars[i].wrt)
      buf_printf(&b, "  show(\"grad%d\", g%d, %ldL);\n  show(\"null%d\", n%d, %ldL);\n"
                     "  show(\"ws%d\", w%d, %ldL);\n",
                 i, i, p->len[i], i, i, p->len[i], i, i, p->len[i]);
  buf_puts(&b, "  return rc != 0;\n}\n");
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
  int rc = run(cmd, log);
  char *out = slurp(log);
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
  cr_assert_eq(numbers(out, tag, v, n), 0, "%s: no '%s' in\n%s", name, tag, out);
  double e = rel_err(v, want, n);
  cr_expect(e <= TOL, "%s: %s is off the %s by %.3g (first: %.17g, %s %.17g)", name, tag, oracle, e,
            v[0], oracle, want[0]);
  free(v);
}

// The driver's output OUT against the tape and the JIT (md_eval, md_vjp with
// the driver's seed), in this process.
static void check_numbers(const char *name, const char *src, const Prob *p, int first_wrt,
                          const char *out) {
  md_error err;
  // The oracles: the tape, and the JIT, with the driver's seed.
  mdrt_tape *t = mdrt_tape_new();
  int leaves[MAXV];
  int h = record_on_tape(p->c, t, p->dims, (const double *const *)p->in, leaves);
  cr_assert_geq(h, 0, "%s", mdrt_tape_error(t));
  cr_assert_eq(mdrt_tape_backward(t, h, p->seed), 0, "%s", mdrt_tape_error(t));
  const double *ty = mdrt_tape_value(t, h);
  md_function *f = md_compile(src, "f.expr", &err);
  cr_expect_not_null(f, "%s: md_compile: %s", name, err.diag);
  double *jy = calloc((size_t)p->olen, sizeof(double)), *jg[MAXV] = {0};
  for (int i = 0; i < p->c->nvars; i++)
    if (p->c->vars[i].wrt)
      jg[i] = calloc((size_t)p->len[i], sizeof(double));
  if (f) {
    cr_assert_eq(md_eval(f, p->dims, (const double *const *)p->in, jy, &err), 0, "%s", err.message);
    cr_assert_eq(md_vjp(f, p->dims, (const double *const *)p->in, p->seed, NULL, jg, &err), 0, "%s",
                 err.message);
  }

  static const char *const values[] = {"value", "ws_value", "grad_value", "null_value", "ws_grad_value"};
  for (int k = 0; k < (p->matrix ? 2 : 5); k++) {
    expect_line(name, out, values[k], ty, p->olen, "tape");
    if (f)
      expect_line(name, out, values[k], jy, p->olen, "JIT");
  }
  for (int i = 0; i < p->c->nvars; i++) {
    if (!p->c->vars[i].wrt)
      continue;
    static const char *const kinds[] = {"grad", "null", "ws"};
    for (int k = 0; k < 3; k++) {
      char tag[32];
      snprintf(tag, sizeof tag, "%s%d", kinds[k], i);
      if (k == 1 && i == first_wrt) {
        // The call was given NULL here: the driver's buffer stays all zeros.
        double *v = malloc(sizeof(double) * (size_t)p->len[i]);
        cr_assert_eq(numbers(out, tag, v, p->len[i]), 0, "%s: no '%s' in\n%s", name, tag, out);
        for (long e = 0; e < p->len[i]; e++)
          cr_expect_eq(v[e], 0, "%s: NULL buffer, yet %s[%ld] = %g", name, tag, e, v[e]);
        free(v);
        continue;
      }
      expect_line(name, out, tag, mdrt_tape_grad(t, leaves[i]), p->len[i], "tape");
      if (f)
        expect_line(name, out, tag, jg[i], p->len[i], "JIT");
    }
  }
  free(jy);
  for (int i = 0; i < p->c->nvars; i++)
    free(jg[i]);
  mdrt_tape_free(t);
  md_free(f);
}

ParameterizedTest(AotCase *a, aot, driver, .init = setup, .fini = teardown, .timeout = 60) {
  char *src;
  Case opts;
  source_of(a, &src, &opts);
  put(path("f.expr"), src);

  // matdiff compile FILE -o f.c --name f
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "%s compile %s -o %s --name f", MATDIFF, path("f.expr"), path("f.c"));
  int rc = run(cmd, path("compile.log"));
  char *log = slurp(path("compile.log"));
  cr_assert_eq(rc, 0, "%s: matdiff compile failed:\n%s", a->name, log);
  free(log);

  // The same source in process: the front end for shapes, the JIT and tape
  // for the expected numbers.
  md_error err;
  Ctx c;
  ctx_init(&c, src, (long)strlen(src), "f.expr", &err);
  cr_assert(md_front(&c), "%s", err.diag);
  Prob p = {.c = &c};
  cr_assert_leq(c.nvars, MAXV);
  for (int d = 0; d < c.ndims; d++)
    p.dims[d] = cases_opt(&opts, c.dims[d], 3 + d % 3);
  Rng g = {12345};
  int first_wrt = -1;
  for (int i = 0; i < c.nvars; i++) {
    p.len[i] = dim_value(c.vars[i].shape.r, p.dims) * dim_value(c.vars[i].shape.c, p.dims);
    p.in[i] = malloc(sizeof(double) * (size_t)p.len[i]);
    for (long e = 0; e < p.len[i]; e++)
      p.in[i][e] = uniform(&g, -1, 1);
    if (c.vars[i].wrt && first_wrt < 0)
      first_wrt = i;
  }
  p.olen = dim_value(c.out->shape.r, p.dims) * dim_value(c.out->shape.c, p.dims);
  p.matrix = !shape_is_scalar(c.out->shape);
  p.seed = malloc(sizeof(double) * (size_t)p.olen);
  for (long e = 0; e < p.olen; e++)
    p.seed[e] = p.matrix ? uniform(&g, -1, 1) : 1;
  char *drv = driver_source(&p, first_wrt);
  put(path("driver.c"), drv);
  free(drv);

  if (build(path("prog"), "")) {
    rc = run(path("prog"), path("prog.out"));
    char *out = slurp(path("prog.out"));
    cr_expect_eq(rc, 0, "%s: the driver exited %d:\n%s", a->name, rc, out);
    if (rc == 0)
      check_numbers(a->name, src, &p, first_wrt, out);
    free(out);
  }

  // Again with AddressSanitizer (for the cases with the most temporaries,
  // to keep the suite fast): the workspace of f_workspace_size bytes must be
  // enough, and no input may be read past its end.
  if (a->asan && build(path("prog_asan"), "-g -fsanitize=address,undefined -fno-sanitize-recover=all")) {
    char asan[512];
    snprintf(asan, sizeof asan, "ASAN_OPTIONS=detect_leaks=1 %s", path("prog_asan"));
    rc = run(asan, path("asan.out"));
    char *aout = slurp(path("asan.out"));
    cr_expect_eq(rc, 0, "%s: the sanitized driver failed:\n%s", a->name, aout);
    free(aout);
  }

  for (int i = 0; i < c.nvars; i++)
    free(p.in[i]);
  free(p.seed);
  ctx_free(&c);
  free(src);
}

/* ---- the command line ----------------------------------------------------- */

// `matdiff diff` on the seed prints exactly the three gradients.
Test(cli, diff_of_the_seed, .init = setup, .fini = teardown) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "%s diff %s/examples/seed.expr", MATDIFF, MD_SRC_DIR);
  int rc = run(cmd, path("diff.out"));
  char *out = slurp(path("diff.out"));
  cr_expect_eq(rc, 0);
  cr_expect_str_eq(out, "dy/dX = 2*(X*W + b)*W'\ndy/dW = 2*X'*(X*W + b)\ndy/db = 2*(X*W + b)\n");
  free(out);
}

// A source error: exit 1, nothing written, the GCC-style diagnostic on stderr.
Test(cli, compile_error_is_a_diagnostic, .init = setup, .fini = teardown) {
  put(path("bad.expr"), "x : scalar\ny = x*q\n");
  char cmd[512];
  snprintf(cmd, sizeof cmd, "%s compile %s -o %s", MATDIFF, path("bad.expr"), path("bad.c"));
  int rc = run(cmd, path("bad.log"));
  char *out = slurp(path("bad.log"));
  char want[512];
  snprintf(want, sizeof want, "%s:2:7: error: undeclared variable 'q'\ny = x*q\n      ^\n", path("bad.expr"));
  cr_expect_eq(rc, 1);
  cr_expect_str_eq(out, want);
  cr_expect_neq(access(path("bad.c"), F_OK), 0, "bad.c was written");
  free(out);
}

// The flags `matdiff config` prints point at headers and libraries that exist.
Test(cli, config_flags, .init = setup, .fini = teardown) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "%s config --cflags --libs --jit-libs", MATDIFF);
  cr_assert_eq(run(cmd, path("config.out")), 0);
  char *out = slurp(path("config.out"));
  cr_expect(strstr(out, "-I"), "no -I in %s", out);
  cr_expect(strstr(out, "-lmatdiff_rt"), "no -lmatdiff_rt in %s", out);
  cr_expect(strstr(out, "-lmatdiff "), "no -lmatdiff in %s", out);
  cr_expect(strstr(out, "-ltcc"), "no -ltcc in %s", out);
  free(out);
}

// `matdiff check` agrees on the seed, and says so.
Test(cli, check_the_seed, .init = setup, .fini = teardown) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "%s check %s/examples/seed.expr --trials 3", MATDIFF, MD_SRC_DIR);
  int rc = run(cmd, path("check.out"));
  char *out = slurp(path("check.out"));
  cr_expect_eq(rc, 0, "matdiff check failed:\n%s", out);
  cr_expect(strstr(out, "ok: symbolic, tape and finite differences agree"), "%s", out);
  free(out);
}

// A square input of a function with a bounded domain: arcsin(A/2) is
// finite for |a| < 2, so `check` must find inputs where it can compare.
// (Shifting the diagonal by n to make square inputs well conditioned puts
// them out of that domain at every input distribution it tries.)
Test(cli, check_square_input_with_bounded_domain, .init = setup, .fini = teardown) {
  put(path("asin.expr"), "A : matrix(n, n)\ny = sum(arcsin(A/2))\n");
  char cmd[512];
  snprintf(cmd, sizeof cmd, "%s check %s --dim n=2", MATDIFF, path("asin.expr"));
  int rc = run(cmd, path("check.out"));
  char *out = slurp(path("check.out"));
  cr_expect_eq(rc, 0, "matdiff check failed:\n%s", out);
  cr_expect(!strstr(out, "nan"), "check compared NaNs:\n%s", out);
  free(out);
}
