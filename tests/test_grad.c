/*
 * test_grad.c - the derivatives, as text and as numbers.
 *
 *   diff::printed       tests/cases/diff.txt: what `matdiff diff` prints,
 *                       through the same pipeline as cli.c's cmd_diff
 *   diff::reparses      each printed formula, fed back in as an expression,
 *                       evaluates to the tape's gradient
 *   grad::oracles       tests/cases/grad.txt: md_eval, md_grad and md_vjp
 *                       against the runtime's tape; md_vjp, and md_grad for
 *                       scalar outputs, against central differences of
 *                       md_eval (md_check, with its tolerances)
 *   grad::ops           the same for tests/cases/ops.txt, one case per operation
 *   grad::expr          tests/cases/expr.txt: the program md_expr_source infers
 *                       from a one-line expression, then the same oracles
 *
 * The data files run a chunk of cases per test process (see cases_chunks in
 * cases.h); each failure names its case.
 *
 * and the API's semantics around them: md_grad ADDS (as PyTorch's .grad),
 * NULL buffers are skipped, several functions live at once, threads compile
 * at once, sizes change between calls, and bad calls fail cleanly.
 *
 * The tape (md_tape_vjp: runtime/tape.c, fed from the primal DAG alone) and
 * finite differences are the oracles; a gradient is never checked against
 * another symbolic gradient.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cases.h"
#include "util.h"

#define DIFF_FILE MD_SRC_DIR "/tests/cases/diff.txt"
#define GRAD_FILE MD_SRC_DIR "/tests/cases/grad.txt"
#define OPS_FILE MD_SRC_DIR "/tests/cases/ops.txt"
#define EXPR_FILE MD_SRC_DIR "/tests/cases/expr.txt"
#define FORMS_FILE MD_SRC_DIR "/tests/cases/forms.txt"

/* The tape computes the same numbers in another order: md_check's tolerance. */
#define TOL_TAPE MD_CHECK_TOL_TAPE
#define MAXV 32

/* ---- helpers -------------------------------------------------------------- */

// One problem instance: sizes bound, inputs filled, one buffer per variable.
typedef struct Inst {
  md_function *f;
  long dims[16];
  long rows[MAXV], cols[MAXV], len[MAXV];
  double *in[MAXV];
  long olen;         /* the output's element count */
} Inst;

static const long default_dims[] = {3, 2, 4, 5};

// Bind F's sizes (from the case's options, else 3, 2, 4, 5, ...) and fill
// its inputs from [LO, HI] with a stream seeded by SEED (symmetric inputs
// symmetric, posdef ones positive definite), plus the case's diag=V on the
// diagonal of every square matrix.
static void inst_init(Inst *p, md_function *f, const Case *k, uint64_t seed, double lo, double hi) {
  memset(p, 0, sizeof *p);
  p->f = f;
  cr_assert_leq(md_num_inputs(f), MAXV);
  cr_assert_leq(md_num_dims(f), 16);
  for (int d = 0; d < md_num_dims(f); d++)
    p->dims[d] = k ? cases_opt(k, md_dim_name(f, d), default_dims[d % 4]) : default_dims[d % 4];
  p->olen = md_output_rows(f, p->dims) * md_output_cols(f, p->dims);
  Rng g = {seed};
  for (int i = 0; i < md_num_inputs(f); i++) {
    p->rows[i] = md_input_rows(f, i, p->dims);
    p->cols[i] = md_input_cols(f, i, p->dims);
    p->len[i] = p->rows[i] * p->cols[i];
    p->in[i] = malloc(sizeof(double) * (size_t)p->len[i]);
    cr_assert_not_null(p->in[i]);
    for (long e = 0; e < p->len[i]; e++)
      p->in[i][e] = uniform(&g, lo, hi);
    if (md_input_is_symmetric(f, i))  // symmetric(n), posdef(n): as declared
      md_symmetrize(p->in[i], p->rows[i], md_input_is_posdef(f, i));
    long shift = k ? cases_opt(k, "diag", 0) : 0;
    for (long e = 0; p->rows[i] == p->cols[i] && p->rows[i] > 1 && e < p->rows[i]; e++)
      p->in[i][e * p->cols[i] + e] += (double)shift;
  }
}

static void inst_free(Inst *p) {
  for (int i = 0; i < MAXV; i++)
    free(p->in[i]);
}

static const double *const *inputs(Inst *p) { return (const double *const *)p->in; }

// The tape at P's inputs (md_tape_vjp): the output's value into VALUE (if
// not NULL) and the gradients from SEED (NULL: all ones) into TG, one
// malloc'd buffer per wrt variable (NULL for the others, and all NULL on
// failure). false if the tape fails.
static bool tape_grads(Inst *p, const double *seed, double *value, double **tg) {
  int n = md_num_inputs(p->f);
  for (int i = 0; i < n; i++)
    tg[i] = md_input_is_wrt(p->f, i) ? calloc((size_t)p->len[i], sizeof(double)) : NULL;
  md_error err;
  bool ok = md_tape_vjp(p->f, p->dims, inputs(p), seed, value, tg, &err) == 0;
  cr_expect(ok, "the tape failed: %s", err.message);
  for (int i = 0; !ok && i < n; i++) {
    free(tg[i]);
    tg[i] = NULL;
  }
  return ok;
}

static void free_all(double **v, int n) {
  for (int i = 0; i < n; i++)
    free(v[i]);
}

static md_function *compile_ok(const char *src, const char *name) {
  md_error err;
  md_function *f = md_compile(src, name, &err);
  cr_assert_not_null(f, "%s does not compile:\n%s", name, err.diag);
  return f;
}

static Case *load_cases(const char *path, int *n) {
  Case *cs;
  *n = cases_load(path, &cs);
  cr_assert_geq(*n, 0, "cannot read %s", path);
  return cs;
}

// The data files' cases run a chunk per test process (see cases_chunks);
// the checks below use only cr_expect, so that one bad case does not hide
// the rest of its chunk.
#define DATA_TEST(suite, name, file, chunk, check)                       \
  ParameterizedTestParameters(suite, name) {                              \
    static int starts[CASES_MAX];                                         \
    size_t n = cases_chunks(file, chunk, starts);                         \
    return cr_make_param_array(int, starts, n);                           \
  }                                                                       \
  ParameterizedTest(int *k, suite, name) {                                \
    int n;                                                                \
    Case *cs = load_cases(file, &n);                                      \
    for (int i = *k; i < n && i < *k + (chunk); i++)                      \
      check(&cs[i]);                                                      \
    cases_free(cs, n);                                                    \
  }

/* ---- diff.txt: the printed derivative ------------------------------------- */

// What `matdiff diff` prints, as md_grad_formula gives it.
static void check_printed(const Case *t) {
  if (strcmp(t->sect, "diff")) {
    cr_expect(0, "%s (diff.txt:%d) has no '--- diff'", t->name, t->line);
    return;
  }
  md_error err;
  md_function *f = md_compile(t->src, "case.expr", &err);
  if (!f) {
    cr_expect(0, "%s: %s", t->name, err.diag);
    return;
  }
  Out out = {0};
  put(&out, "%s", "");
  for (int i = 0; i < md_num_inputs(f); i++)
    if (md_input_is_wrt(f, i)) {
      const char *s = md_grad_formula(f, i);
      put(&out, "%sd%s/d%s = %s", out.len ? "\n" : "", md_output_name(f), md_input_name(f, i),
          s ? s : "?");
    }
  cr_expect_str_eq(out.s, t->expect, "%s (diff.txt:%d)\n--- got:\n%s\n--- expected:\n%s", t->name,
                   t->line, out.s, t->expect);
  free(out.s);
  md_free(f);
}

DATA_TEST(diff, printed, DIFF_FILE, 64, check_printed)

// Is NAME one of F's inputs, sizes or its output?
static bool has_name(md_function *f, const char *name) {
  for (int i = 0; i < md_num_inputs(f); i++)
    if (!strcmp(md_input_name(f, i), name))
      return true;
  for (int i = 0; i < md_num_dims(f); i++)
    if (!strcmp(md_dim_name(f, i), name))
      return true;
  return !strcmp(md_output_name(f), name);
}

// The name the seed prints as, by docs/LANGUAGE.md's rule: G, else d and the
// output's name, else G1, G2, ... (No case here names an intermediate so.)
static void seed_name(md_function *f, char *out, size_t n) {
  snprintf(out, n, "G");
  if (has_name(f, out))
    snprintf(out, n, "d%s", md_output_name(f));
  for (int k = 1; has_name(f, out); k++)
    snprintf(out, n, "G%d", k);
}

// Each printed formula D for variable v is source text: with V a new input
// of v's type, sum(D .* V) must be the tape's gradient dotted with V. A
// non-scalar output's formulas hold its seed G: the test declares G and
// gives it, and the tape, the same values. The inputs are drawn from
// [0.5, 1.5], where every case's log and 1/x are fine.
static void check_reparse(const Case *t) {
  md_error err;
  md_function *c = md_compile(t->src, "case.expr", &err);
  if (!c) {
    cr_expect(0, "%s: %s", t->name, err.diag);
    return;
  }
  int nvars = md_num_inputs(c);
  Inst p;
  inst_init(&p, c, t, fnv1a(t->name), 0.5, 1.5);
  Rng g = {fnv1a(t->name) + 1};
  bool seeded = md_output_rows(c, NULL) != 1 || md_output_cols(c, NULL) != 1;
  Out gdecl = {0};
  put(&gdecl, "%s", "");
  double *G = malloc(sizeof(double) * (size_t)p.olen);
  for (long e = 0; e < p.olen; e++)
    G[e] = uniform(&g, -1, 1);
  if (seeded) {
    char seed[64];
    seed_name(c, seed, sizeof seed);
    put(&gdecl, "%s : ", seed);
    put_type(&gdecl, c, -1);
    put(&gdecl, "\n");
  }
  double *tg[MAXV] = {0};
  bool ok = tape_grads(&p, seeded ? G : NULL, NULL, tg);
  for (int i = 0; ok && i < nvars; i++) {
    if (!md_input_is_wrt(c, i))
      continue;
    const char *formula = md_grad_formula(c, i);
    Out src = {0};
    put(&src, "%s\n%sV__ : ", t->src, gdecl.s);
    put_type(&src, c, i);
    put(&src, "\ng__ = %s\nz__ = sum(g__ .* V__)\n", formula);
    md_function *f = md_compile(src.s, "reparse.expr", &err);
    cr_expect_not_null(f, "%s: d%s/d%s = %s does not parse back:\n%s", t->name, md_output_name(c),
                       md_input_name(c, i), formula, err.diag);
    int extra = seeded ? 2 : 1;
    if (f && md_num_inputs(f) == nvars + extra && md_num_dims(f) == md_num_dims(c)) {
      double *V = malloc(sizeof(double) * (size_t)p.len[i]), want = 0, scale = 0, z = NAN;
      for (long e = 0; e < p.len[i]; e++) {
        V[e] = uniform(&g, -1, 1);
        want += tg[i][e] * V[e];
        scale += fabs(tg[i][e] * V[e]);
      }
      const double *in2[MAXV + 2];
      for (int j = 0; j < nvars; j++)
        in2[j] = p.in[j];
      if (seeded)
        in2[nvars] = G;
      in2[nvars + extra - 1] = V;
      cr_expect_eq(md_eval(f, p.dims, in2, &z, &err), 0, "%s: %s", t->name, err.message);
      cr_expect(fabs(z - want) <= TOL_TAPE * fmax(1, scale),
                "%s: sum((%s) .* V) = %.17g, the tape's gradient gives %.17g", t->name, formula, z,
                want);
      free(V);
    } else if (f) {
      cr_expect(0, "%s: the re-parsed source has %d inputs and %d sizes", t->name, md_num_inputs(f),
                md_num_dims(f));
    }
    md_free(f);
    free(src.s);
  }
  free(G);
  free(gdecl.s);
  free_all(tg, nvars);
  inst_free(&p);
  md_free(c);
}

DATA_TEST(diff, reparses, DIFF_FILE, 8, check_reparse)

/* ---- forms.txt: the forms a person writes ---------------------------------- */

// The text after "KEY:" on its line of T's expected text, or NULL.
static char *form_line(const Case *t, const char *key) {
  size_t n = strlen(key);
  for (const char *q = t->expect; q && *q; q = strchr(q, '\n') ? strchr(q, '\n') + 1 : NULL)
    if (!strncmp(q, key, n) && q[n] == ':') {
      const char *v = q + n + 1;
      v += strspn(v, " ");
      return strndup(v, strcspn(v, "\n"));
    }
  return NULL;
}

// Characters without spaces: the length the issue measures forms by.
static size_t ink(const char *s) {
  size_t n = 0;
  for (; s && *s; s++)
    n += *s != ' ';
  return n;
}

// The one gradient of T's program, as matdiff prints it, is the after
// line; where it is not the wanted form a note says why.
static void check_forms(const Case *t) {
  char *want = form_line(t, "want"), *before = form_line(t, "before"), *after = form_line(t, "after"),
       *note = form_line(t, "note");
  cr_expect(!strcmp(t->sect, "forms") && want && before && after,
            "%s (forms.txt:%d) needs a '--- forms' with want, before and after", t->name, t->line);
  md_error err;
  md_function *f = md_compile(t->src, "case.expr", &err);
  cr_expect_not_null(f, "%s: %s", t->name, err.diag);
  const char *got = NULL;
  for (int i = 0; f && i < md_num_inputs(f); i++)
    if (md_input_is_wrt(f, i)) {
      cr_expect_null(got, "%s (forms.txt:%d) has more than one wrt variable", t->name, t->line);
      got = md_grad_formula(f, i);
    }
  if (got && after)
    cr_expect_str_eq(got, after, "%s (forms.txt:%d)\n--- got:\n%s\n--- after:\n%s", t->name, t->line,
                     got, after);
  if (want && after && strcmp(want, after))
    cr_expect_not_null(note, "%s (forms.txt:%d): after is not want, and no note says why", t->name,
                       t->line);
  md_free(f);
  free(want), free(before), free(after), free(note);
}

DATA_TEST(forms, printed, FORMS_FILE, 64, check_forms)
DATA_TEST(forms, reparses, FORMS_FILE, 8, check_reparse)

// Over the whole table, what matdiff prints now is shorter than what it
// printed before, and the totals are the ones the issue asks for.
Test(forms, length) {
  int n;
  Case *cs = load_cases(FORMS_FILE, &n);
  size_t before = 0, after = 0, want = 0;
  for (int i = 0; i < n; i++) {
    char *b = form_line(&cs[i], "before"), *a = form_line(&cs[i], "after"), *w = form_line(&cs[i], "want");
    before += ink(b), after += ink(a), want += ink(w);
    free(b), free(a), free(w);
  }
  cr_log_info("forms.txt: %d cases, printed length (characters without spaces) %zu before, %zu after, "
              "%zu wanted", n, before, after, want);
  cr_expect_geq(n, 40);
  cr_expect_lt(after, before, "the table prints %zu characters now, %zu before", after, before);
  cases_free(cs, n);
}

// md_grad_formula holds what `matdiff diff` prints.
Test(diff, md_grad_formula) {
  md_function *f = compile_ok("X : matrix(10, 4)\nW : matrix(4, 4)\nb : matrix(10, 4)\n"
                              "y = ||X*W + b||_F^2\n",
                              "seed.expr");
  cr_expect_str_eq(md_grad_formula(f, 0), "2*(X*W + b)*W'");
  cr_expect_str_eq(md_grad_formula(f, 1), "2*X'*(X*W + b)");
  cr_expect_str_eq(md_grad_formula(f, 2), "2*(X*W + b)");
  cr_expect_null(md_grad_formula(f, 3));
  cr_expect_str_eq(md_output_name(f), "y");
  md_free(f);
}

/* ---- grad.txt and ops.txt: against the tape and finite differences ------- */

// md_check at P's inputs with SEED (NULL: md_grad's gradients, for a scalar
// output): every gradient against the tape and finite differences. WHAT
// names the call checked, in messages.
static void expect_check(const Case *t, Inst *p, const double *seed, const char *what) {
  md_function *f = p->f;
  md_check_opts o = {.inputs = inputs(p), .seed = seed};
  md_check_result r;
  md_error err;
  if (md_check(f, p->dims, &o, &r, &err) != 0) {
    cr_expect(0, "%s: md_check of %s: %s", t->name, what, err.message);
    return;
  }
  cr_expect(r.value <= MD_CHECK_TOL_TAPE, "%s: %s's value is off the tape's by %.3g", t->name, what,
            r.value);
  for (int i = 0; i < md_num_inputs(f); i++) {
    if (!md_input_is_wrt(f, i))
      continue;
    const char *y = md_output_name(f), *x = md_input_name(f, i);
    cr_expect(r.tape[i] <= MD_CHECK_TOL_TAPE, "%s: d%s/d%s (%s) differs from the tape by %.3g", t->name,
              y, x, what, r.tape[i]);
    cr_expect(r.fd[i] <= MD_CHECK_TOL_FD, "%s: d%s/d%s (%s) differs from finite differences by %.3g",
              t->name, y, x, what, r.fd[i]);
  }
  cr_expect(r.ok, "%s: md_check of %s fails", t->name, what);
  md_check_result_free(&r);
}

// One case: md_vjp with a random seed S against the tape with that seed and
// against central differences of sum(S .* output) (a random S, since with
// all ones some outputs, like softmax's, have a zero gradient that
// differences cannot resolve); for a scalar output, md_grad the same way;
// for any output, md_grad (whose seed is all ones) and the values of
// md_grad and md_eval against the tape. Inputs are uniform in [-1, 1], or
// [0.5, 1.5] for a case flagged "positive".
static void check_oracles(const Case *t) {
  md_error err;
  md_function *f = md_compile(t->src, t->name, &err);
  if (!f) {
    cr_expect(0, "%s does not compile:\n%s", t->name, err.diag);
    return;
  }
  int n = md_num_inputs(f);
  Inst p;
  bool pos = cases_flag(t, "positive");
  inst_init(&p, f, t, fnv1a(t->name), pos ? 0.5 : -1, pos ? 1.5 : 1);
  double *seed = calloc((size_t)p.olen, sizeof(double));
  cr_assert(seed);
  Rng sg = {fnv1a(t->name) ^ 0x5eed};
  for (long e = 0; e < p.olen; e++)
    seed[e] = uniform(&sg, -1, 1);
  expect_check(t, &p, seed, "md_vjp");
  if (p.olen == 1)
    expect_check(t, &p, NULL, "md_grad");

  double *g[MAXV] = {0}, *tg[MAXV] = {0};
  for (int i = 0; i < n; i++)
    if (md_input_is_wrt(f, i))
      g[i] = calloc((size_t)p.len[i], sizeof(double));
  double *y = calloc((size_t)p.olen, sizeof(double)), *ye = calloc((size_t)p.olen, sizeof(double));
  double *ty = calloc((size_t)p.olen, sizeof(double));
  cr_assert(y && ye && ty);
  bool ok = md_grad(f, p.dims, inputs(&p), y, g, &err) == 0;
  cr_expect(ok, "%s: md_grad: %s", t->name, err.message);
  ok = ok && md_eval(f, p.dims, inputs(&p), ye, &err) == 0;
  cr_expect(ok, "%s: md_eval: %s", t->name, err.message);
  ok = ok && tape_grads(&p, NULL, ty, tg);
  if (ok) {
    double ev = md_rel_err(y, ty, p.olen), ee = md_rel_err(ye, ty, p.olen);
    cr_expect(ev <= TOL_TAPE, "%s: md_grad's value is off the tape's by %.3g (first: %.17g, tape %.17g)",
              t->name, ev, y[0], ty[0]);
    cr_expect(ee <= TOL_TAPE, "%s: md_eval's value is off the tape's by %.3g (first: %.17g, tape %.17g)",
              t->name, ee, ye[0], ty[0]);
  }
  int checked = 0;
  for (int i = 0; ok && i < n; i++) {
    if (!g[i])
      continue;
    checked++;
    double et = md_rel_err(g[i], tg[i], p.len[i]);
    cr_expect(et <= TOL_TAPE, "%s: d%s/d%s (md_grad) differs from the tape by %.3g", t->name,
              md_output_name(f), md_input_name(f, i), et);
  }
  // A variable outside wrt has no gradient; every case differentiates something.
  if (ok) {
    cr_expect_gt(checked, 0, "%s: no wrt variable", t->name);
    if (strstr(t->src, "wrt "))
      cr_expect_lt(checked, n, "%s: wrt did not restrict the gradients", t->name);
  }
  free_all(g, MAXV);
  free_all(tg, MAXV);
  free(y);
  free(ye);
  free(ty);
  free(seed);
  inst_free(&p);
  md_free(f);
}

DATA_TEST(grad, oracles, GRAD_FILE, 4, check_oracles)
DATA_TEST(grad, ops, OPS_FILE, 4, check_oracles)

// One expr.txt case: md_expr_source's program is the expected one, and
// its gradients pass check_oracles.
static void check_expr(const Case *t) {
  char wrt[96];
  md_error err;
  char *src = md_expr_source(t->src, cases_opt_str(t, "wrt", wrt, sizeof wrt), &err);
  if (!src) {
    cr_expect(0, "%s (expr.txt:%d): %s", t->name, t->line, err.diag);
    return;
  }
  // The case's text has lost its last newline, which the program ends with.
  size_t n = strlen(src);
  cr_expect(n > 0 && src[n - 1] == '\n' && strlen(t->expect) == n - 1 && !strncmp(src, t->expect, n - 1),
            "%s (expr.txt:%d)\n--- got:\n%s--- expected:\n%s", t->name, t->line, src, t->expect);
  Case program = *t;
  program.src = src;
  check_oracles(&program);
  free(src);
}

DATA_TEST(grad, expr, EXPR_FILE, 4, check_expr)

Test(grad, data_files_are_complete) {
  Case *cs;
  int n = cases_load(GRAD_FILE, &cs);
  cr_expect_geq(n, 18, "grad.txt has %d cases", n);
  for (int i = 0; i < n; i++)
    for (int j = 0; j < i; j++)
      cr_expect_str_neq(cs[i].name, cs[j].name, "grad.txt: two cases are named %s", cs[i].name);
  cases_free(cs, n);
  n = cases_load(DIFF_FILE, &cs);
  cr_expect_geq(n, 15, "diff.txt has %d cases", n);
  cases_free(cs, n);
  // matrixcalculus.org's nine examples and more, each with its program.
  n = cases_load(EXPR_FILE, &cs);
  cr_expect_geq(n, 9, "expr.txt has %d cases", n);
  for (int i = 0; i < n; i++) {
    cr_expect_str_eq(cs[i].sect, "source", "expr.txt: %s has no '--- source'", cs[i].name);
    for (int j = 0; j < i; j++)
      cr_expect_str_neq(cs[i].name, cs[j].name, "expr.txt: two cases are named %s", cs[i].name);
  }
  cases_free(cs, n);
}

/* ---- accumulation: the notebook's .grad ----------------------------------- */

static const char seed_src[] = "X : matrix(n, k)\nW : matrix(k, m)\nb : matrix(n, m)\n"
                               "y = ||X*W + b||_F^2\n";
static const char practice_src[] = "w : scalar\nx : scalar\nb : scalar\ny = (w*x + b)^2\n";
static const char linear_src[] = "w : scalar\nx : scalar\nb : scalar\ny = w*x + b\n";

// The seed, compiled, at sizes n=5, k=3, m=2, with its tape gradients.
typedef struct Seed {
  md_function *f;
  Inst p;
  double *tg[3];
  double ty;   /* the tape's value */
} Seed;

static void seed_init(Seed *s) {
  s->f = compile_ok(seed_src, "seed.expr");
  Case k = {.opts = "n=5 k=3 m=2"};
  inst_init(&s->p, s->f, &k, 42, -1, 1);
  cr_assert(tape_grads(&s->p, NULL, &s->ty, s->tg));
}

static void seed_free(Seed *s) {
  free_all(s->tg, 3);
  inst_free(&s->p);
  md_free(s->f);
}

static double *zeros(long n) {
  double *v = calloc((size_t)n, sizeof(double));
  cr_assert_not_null(v);
  return v;
}

static void expect_tape(const Seed *s, double **g, const char *what) {
  for (int i = 0; i < 3; i++)
    if (g[i])
      cr_expect(md_rel_err(g[i], s->tg[i], s->p.len[i]) <= TOL_TAPE, "%s: gradient %d is off the tape",
                what, i);
}

// md_grad twice into the same buffers gives exactly twice the gradient;
// zeroing them and calling once gives it once.
Test(accumulate, twice_is_double_and_zeroing_resets) {
  Seed s;
  seed_init(&s);
  md_error err;
  double *g[3], *once[3], y;
  for (int i = 0; i < 3; i++)
    g[i] = zeros(s.p.len[i]), once[i] = zeros(s.p.len[i]);
  cr_assert_eq(md_grad(s.f, s.p.dims, inputs(&s.p), &y, once, &err), 0, "%s", err.message);
  expect_tape(&s, once, "one call");
  cr_assert_eq(md_grad(s.f, s.p.dims, inputs(&s.p), &y, g, &err), 0);
  cr_assert_eq(md_grad(s.f, s.p.dims, inputs(&s.p), &y, g, &err), 0);
  for (int i = 0; i < 3; i++)
    for (long e = 0; e < s.p.len[i]; e++)
      cr_expect_eq(g[i][e], 2 * once[i][e], "twice: d%d[%ld] = %.17g, expected 2*%.17g", i, e,
                   g[i][e], once[i][e]);
  for (int i = 0; i < 3; i++)
    memset(g[i], 0, sizeof(double) * (size_t)s.p.len[i]);
  cr_assert_eq(md_grad(s.f, s.p.dims, inputs(&s.p), &y, g, &err), 0);
  for (int i = 0; i < 3; i++)
    for (long e = 0; e < s.p.len[i]; e++)
      cr_expect_eq(g[i][e], once[i][e], "after zeroing: d%d[%ld] = %.17g, expected %.17g", i, e,
                   g[i][e], once[i][e]);
  // A buffer that starts at B ends at B + gradient.
  for (int i = 0; i < 3; i++)
    for (long e = 0; e < s.p.len[i]; e++)
      g[i][e] = 100.0 + (double)e;
  cr_assert_eq(md_grad(s.f, s.p.dims, inputs(&s.p), &y, g, &err), 0);
  for (int i = 0; i < 3; i++)
    for (long e = 0; e < s.p.len[i]; e++)
      cr_expect(fabs(g[i][e] - (100.0 + (double)e + once[i][e])) <= 1e-12 * (100 + (double)e),
                "from a nonzero start: d%d[%ld] = %.17g", i, e, g[i][e]);
  free_all(g, 3);
  free_all(once, 3);
  seed_free(&s);
}

// The notebook's Practice cells, by hand at w = 2, x = 1, b = 3 (u = 5):
// (w*x + b)^2 gives 10, 20, 10; then w*x + b adds 1, 2, 1: 11, 22, 11;
// after zeroing, w*x + b alone gives 1, 2, 1.
Test(accumulate, practice_notebook) {
  md_function *sq = compile_ok(practice_src, "In[3]"), *lin = compile_ok(linear_src, "In[4]");
  double w = 2, x = 1, b = 3, gw = 0, gx = 0, gb = 0, y;
  const double *in[] = {&w, &x, &b};
  double *g[] = {&gw, &gx, &gb};
  md_error err;
  cr_assert_eq(md_grad(sq, NULL, in, &y, g, &err), 0, "%s", err.message);
  cr_expect_eq(y, 25);
  cr_expect(gw == 10 && gx == 20 && gb == 10, "In[3]: %g %g %g", gw, gx, gb);
  cr_assert_eq(md_grad(lin, NULL, in, &y, g, &err), 0, "%s", err.message);
  cr_expect_eq(y, 5);
  cr_expect(gw == 11 && gx == 22 && gb == 11, "In[4]: %g %g %g", gw, gx, gb);
  gw = gx = gb = 0;
  cr_assert_eq(md_grad(lin, NULL, in, &y, g, &err), 0);
  cr_expect(gw == 1 && gx == 2 && gb == 1, "In[5]: %g %g %g", gw, gx, gb);
  md_free(sq);
  md_free(lin);
}

/* ---- NULL buffers ---------------------------------------------------------- */

// A NULL entry skips that gradient and leaves the others right.
Test(null_buffers, one_entry_null) {
  Seed s;
  seed_init(&s);
  md_error err;
  for (int skip = 0; skip < 3; skip++) {
    double *g[3], y = NAN;
    for (int i = 0; i < 3; i++)
      g[i] = i == skip ? NULL : zeros(s.p.len[i]);
    cr_assert_eq(md_grad(s.f, s.p.dims, inputs(&s.p), &y, g, &err), 0, "%s", err.message);
    cr_expect(fabs(y - s.ty) <= TOL_TAPE * fmax(1, fabs(s.ty)), "skip %d: value %.17g, tape %.17g", skip,
              y, s.ty);
    expect_tape(&s, g, "one NULL entry");
    free_all(g, 3);
  }
  seed_free(&s);
}

Test(null_buffers, all_entries_null_and_no_array) {
  Seed s;
  seed_init(&s);
  md_error err;
  double *g[3] = {NULL, NULL, NULL}, y = NAN;
  cr_assert_eq(md_grad(s.f, s.p.dims, inputs(&s.p), &y, g, &err), 0, "%s", err.message);
  cr_expect(fabs(y - s.ty) <= TOL_TAPE * fmax(1, fabs(s.ty)), "all NULL: %.17g vs %.17g", y, s.ty);
  y = NAN;
  cr_assert_eq(md_grad(s.f, s.p.dims, inputs(&s.p), &y, NULL, &err), 0, "%s", err.message);
  cr_expect(fabs(y - s.ty) <= TOL_TAPE * fmax(1, fabs(s.ty)), "no array: %.17g vs %.17g", y, s.ty);
  // and a NULL out: the gradients still arrive
  double *h[3];
  for (int i = 0; i < 3; i++)
    h[i] = zeros(s.p.len[i]);
  cr_assert_eq(md_grad(s.f, s.p.dims, inputs(&s.p), NULL, h, &err), 0, "%s", err.message);
  expect_tape(&s, h, "NULL out");
  free_all(h, 3);
  seed_free(&s);
}

// The entry of a variable outside wrt is never written, even when given.
Test(null_buffers, non_wrt_entry_is_untouched) {
  md_function *f = compile_ok("X : matrix(3, 2)\nW : matrix(2, 2)\nwrt W\ny = ||X*W||_F^2\n", "wrt.expr");
  double X[6] = {1, 2, 3, 4, 5, 6}, W[4] = {1, 0, 0, 1};
  double dX[6], dW[4] = {0};
  for (int i = 0; i < 6; i++)
    dX[i] = -7;
  const double *in[] = {X, W};
  double *g[] = {dX, dW};
  md_error err;
  double y;
  cr_assert_eq(md_grad(f, NULL, in, &y, g, &err), 0, "%s", err.message);
  for (int i = 0; i < 6; i++)
    cr_expect_eq(dX[i], -7, "dX[%d] written: %g", i, dX[i]);
  // y = ||X||_F^2 = 91 at W = I; dW = 2*X'*X*W = 2*X'*X = 2*[35 44; 44 56].
  cr_expect_eq(y, 91);
  const double want[] = {70, 88, 88, 112};
  for (int i = 0; i < 4; i++)
    cr_expect(fabs(dW[i] - want[i]) < 1e-12, "dW[%d] = %.17g, expected %g", i, dW[i], want[i]);
  md_free(f);
}

/* ---- lifetimes, sizes and threads ---------------------------------------- */

// Two functions alive at once, called in turn, freed in creation order.
Test(lifetime, two_functions_interleaved) {
  Seed s;
  seed_init(&s);
  md_function *p = compile_ok(practice_src, "practice.expr");
  double w = 2, x = 1, b = 3, y = NAN;
  const double *pin[] = {&w, &x, &b};
  md_error err;
  for (int round = 0; round < 3; round++) {
    double *g[3];
    for (int i = 0; i < 3; i++)
      g[i] = zeros(s.p.len[i]);
    cr_assert_eq(md_eval(p, NULL, pin, &y, &err), 0, "%s", err.message);
    cr_expect_eq(y, 25);
    cr_assert_eq(md_grad(s.f, s.p.dims, inputs(&s.p), &y, g, &err), 0, "%s", err.message);
    expect_tape(&s, g, "interleaved");
    double gw = 0, gx = 0, gb = 0;
    double *pg[] = {&gw, &gx, &gb};
    cr_assert_eq(md_grad(p, NULL, pin, &y, pg, &err), 0, "%s", err.message);
    cr_expect(gw == 10 && gx == 20 && gb == 10, "practice: %g %g %g", gw, gx, gb);
    free_all(g, 3);
  }
  md_function *first = s.f;
  s.f = NULL;
  md_free(first);  // the older one first: the other must not notice
  cr_assert_eq(md_eval(p, NULL, pin, &y, &err), 0, "%s", err.message);
  cr_expect_eq(y, 25);
  md_free(p);
  free_all(s.tg, 3);
  inst_free(&s.p);
}

// The workspace is kept between calls: new sizes must resize it, and the
// old sizes must still work after.
Test(lifetime, sizes_change_between_calls) {
  md_function *f = compile_ok(seed_src, "seed.expr");
  static const char *const opts[] = {"n=2 k=2 m=2", "n=7 k=5 m=6", "n=2 k=2 m=2", "n=1 k=9 m=1",
                                     "n=7 k=5 m=6"};
  for (int r = 0; r < 5; r++) {
    Case k;
    memset(&k, 0, sizeof k);
    snprintf(k.opts, sizeof k.opts, "%s", opts[r]);
    Inst p;
    inst_init(&p, f, &k, 100 + (uint64_t)r, -1, 1);
    double *tg[3], *g[3], y = NAN;
    double ty = NAN;
    cr_assert(tape_grads(&p, NULL, &ty, tg));
    for (int i = 0; i < 3; i++)
      g[i] = zeros(p.len[i]);
    md_error err;
    cr_assert_eq(md_grad(f, p.dims, inputs(&p), &y, g, &err), 0, "%s", err.message);
    cr_expect(fabs(y - ty) <= TOL_TAPE * fmax(1, fabs(ty)), "%s: %.17g vs tape %.17g", opts[r], y, ty);
    for (int i = 0; i < 3; i++)
      cr_expect(md_rel_err(g[i], tg[i], p.len[i]) <= TOL_TAPE, "%s: gradient %d", opts[r], i);
    free_all(g, 3);
    free_all(tg, 3);
    inst_free(&p);
  }
  md_free(f);
}

typedef struct Job {
  const char *src, *opts;
  uint64_t seed;
  int rounds;
  char failure[1200]; /* empty if every round agreed with the tape */
} Job;

// Compile, run and check against the tape ROUNDS times; no Criterion
// assertions off the main thread, so failures are reported back as text.
static void *job_run(void *arg) {
  Job *j = arg;
  for (int r = 0; r < j->rounds && !j->failure[0]; r++) {
    md_error err;
    md_function *f = md_compile(j->src, "thread.expr", &err);
    if (!f) {
      snprintf(j->failure, sizeof j->failure, "round %d: %s", r, err.diag);
      break;
    }
    long dims[8];
    Case k;
    memset(&k, 0, sizeof k);
    snprintf(k.opts, sizeof k.opts, "%s", j->opts);
    for (int d = 0; d < md_num_dims(f); d++)
      dims[d] = cases_opt(&k, md_dim_name(f, d), 3);
    Rng g = {j->seed + (uint64_t)r};
    int n = md_num_inputs(f);
    double *in[MAXV] = {0};
    for (int i = 0; i < n; i++) {
      long len = md_input_rows(f, i, dims) * md_input_cols(f, i, dims);
      in[i] = malloc(sizeof(double) * (size_t)len);
      for (long e = 0; e < len; e++)
        in[i][e] = uniform(&g, -1, 1);
    }
    md_check_opts o = {.inputs = (const double *const *)in, .skip_fd = 1};
    md_check_result c;
    if (md_check(f, dims, &o, &c, &err) != 0) {
      snprintf(j->failure, sizeof j->failure, "round %d: md_check: %s", r, err.message);
    } else {
      if (!c.ok)
        snprintf(j->failure, sizeof j->failure, "round %d: off the tape by %.3g (value)", r, c.value);
      for (int i = 0; i < n && !c.ok; i++)
        snprintf(j->failure + strlen(j->failure), sizeof j->failure - strlen(j->failure),
                 ", %.3g (%s)", c.tape[i], md_input_name(f, i));
      md_check_result_free(&c);
    }
    free_all(in, n);
    md_free(f);
  }
  return NULL;
}

Test(threads, two_threads_compile_and_evaluate) {
  Job jobs[2] = {
      {.src = seed_src, .opts = "n=6 k=4 m=3", .seed = 1, .rounds = 6},
      {.src = "X : matrix(n, k)\nW : matrix(k, m)\nY : matrix(n, m)\nlambda : scalar\n"
              "r = X*W - Y\ny = ||r||_F^2 + lambda*||W||_F^2 + sum(log(exp(r) + 1))\n",
       .opts = "n=5 k=3 m=2", .seed = 2, .rounds = 6},
  };
  pthread_t th[2];
  for (int i = 0; i < 2; i++)
    cr_assert_eq(pthread_create(&th[i], NULL, job_run, &jobs[i]), 0);
  for (int i = 0; i < 2; i++)
    pthread_join(th[i], NULL);
  for (int i = 0; i < 2; i++)
    cr_expect_eq(jobs[i].failure[0], '\0', "thread %d: %s", i, jobs[i].failure);
}

/* ---- bad calls ----------------------------------------------------------- */

// Every bad call returns -1 with a message, and leaves the function usable.
static void expect_fails(int rc, const md_error *err, const char *what, const char *needle) {
  cr_expect_eq(rc, -1, "%s: returned %d", what, rc);
  cr_expect(err->message[0], "%s: no message", what);
  cr_expect(strstr(err->message, needle), "%s: message \"%s\" lacks \"%s\"", what, err->message, needle);
  cr_expect_eq(err->line, 0, "%s: a call error has no source line", what);
}

Test(bad_calls, eval_and_grad_fail_cleanly) {
  Seed s;
  seed_init(&s);
  md_error err;
  double y = 12345, *g[3];
  const double y0 = y;
  for (int i = 0; i < 3; i++)
    g[i] = zeros(s.p.len[i]);
  expect_fails(md_eval(s.f, NULL, inputs(&s.p), &y, &err), &err, "eval without sizes", "size");
  expect_fails(md_grad(s.f, NULL, inputs(&s.p), &y, g, &err), &err, "grad without sizes", "size");
  const long zero[] = {5, 0, 2}, negative[] = {-1, 3, 2};
  expect_fails(md_eval(s.f, zero, inputs(&s.p), &y, &err), &err, "size 0", "k");
  expect_fails(md_grad(s.f, zero, inputs(&s.p), &y, g, &err), &err, "grad size 0", "k");
  expect_fails(md_eval(s.f, negative, inputs(&s.p), &y, &err), &err, "size -1", "n");
  expect_fails(md_eval(s.f, s.p.dims, NULL, &y, &err), &err, "no inputs", "missing");
  const double *partial[] = {s.p.in[0], NULL, s.p.in[2]};
  expect_fails(md_eval(s.f, s.p.dims, partial, &y, &err), &err, "NULL input W", "'W'");
  expect_fails(md_grad(s.f, s.p.dims, partial, &y, g, &err), &err, "grad NULL input W", "'W'");
  expect_fails(md_eval(NULL, s.p.dims, inputs(&s.p), &y, &err), &err, "NULL function", "function");
  expect_fails(md_grad(NULL, s.p.dims, inputs(&s.p), &y, g, &err), &err, "grad NULL function", "function");
  expect_fails(md_vjp(s.f, s.p.dims, inputs(&s.p), NULL, &y, g, &err), &err, "md_vjp without a seed", "seed");
  const double one = 1;
  expect_fails(md_vjp(s.f, zero, inputs(&s.p), &one, &y, g, &err), &err, "md_vjp size 0", "k");
  // No md_error to fill: still -1, no crash.
  cr_expect_eq(md_eval(s.f, NULL, inputs(&s.p), &y, NULL), -1);
  cr_expect_eq(md_eval(s.f, zero, inputs(&s.p), &y, NULL), -1);
  cr_expect_eq(y, y0, "a failed call wrote the output");
  for (int i = 0; i < 3; i++)
    for (long e = 0; e < s.p.len[i]; e++)
      cr_expect_eq(g[i][e], 0, "a failed md_grad wrote gradient %d", i);
  // The function still works, at the sizes it failed with before.
  cr_assert_eq(md_grad(s.f, s.p.dims, inputs(&s.p), &y, g, &err), 0, "%s", err.message);
  cr_expect(fabs(y - s.ty) <= TOL_TAPE * fmax(1, fabs(s.ty)), "after errors: %.17g vs %.17g", y, s.ty);
  cr_expect_eq(err.message[0], '\0', "success left a message: %s", err.message);
  expect_tape(&s, g, "after errors");
  free_all(g, 3);
  seed_free(&s);
}

// Without symbolic sizes, dims may be NULL.
Test(bad_calls, literal_sizes_need_no_dims) {
  md_function *f = compile_ok("X : matrix(2, 2)\ny = sum(X .* X)\n", "lit.expr");
  double X[4] = {1, 2, 3, 4}, y = 0;
  const double *in[] = {X};
  md_error err;
  cr_assert_eq(md_eval(f, NULL, in, &y, &err), 0, "%s", err.message);
  cr_expect_eq(y, 30);
  md_free(f);
}
