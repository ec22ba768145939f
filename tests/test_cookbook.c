/*
 * test_cookbook.c - the Matrix Cookbook's identities (tests/cases/cookbook.txt)
 * against matdiff's symbolic gradients. Each case's gradient, from md_grad,
 * must equal three oracles at random, well-conditioned inputs:
 *   1. the Cookbook's closed form, compiled by matdiff as a plain
 *      expression and evaluated with md_eval (no differentiation involved);
 *   2. the runtime's tape, recording the function's value only, and
 *   3. central finite differences of md_eval, both through md_check.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cases.h"
#include "util.h"

#define CASES MD_SRC_DIR "/tests/cases/cookbook.txt"
#define SIZE_K 4
#define SIZE_M 6

// The closed form's source: the case's declarations, then g = EXPECT.
static char *expect_source(const Case *k) {
  const char *wrt = strstr(k->src, "wrt ");
  size_t decl = wrt ? (size_t)(wrt - k->src) : 0;
  size_t n = decl + strlen(k->expect) + 8;
  char *s = malloc(n);
  cr_assert(s);
  snprintf(s, n, "%.*sg = %s\n", (int)decl, k->src, k->expect);
  return s;
}

typedef struct Inputs {
  int n;
  long dims[8];
  double *in[16];
  long len[16];
} Inputs;

static void make_inputs(md_function *f, Rng *g, bool positive, Inputs *p) {
  memset(p, 0, sizeof *p);
  for (int d = 0; d < md_num_dims(f); d++)
    p->dims[d] = !strcmp(md_dim_name(f, d), "m") ? SIZE_M : SIZE_K;
  p->n = md_num_inputs(f);
  cr_assert(p->n <= 16);
  for (int i = 0; i < p->n; i++) {
    long r = md_input_rows(f, i, p->dims), c = md_input_cols(f, i, p->dims);
    p->len[i] = r * c;
    p->in[i] = malloc(sizeof(double) * (size_t)p->len[i]);
    for (long e = 0; e < r * c; e++)
      p->in[i][e] = positive ? uniform(g, 0.5, 1.5) : uniform(g, -1, 1);
    // Square matrices are made diagonally dominant: invertible, well conditioned.
    for (long e = 0; r == c && r > 1 && e < r; e++)
      p->in[i][e * c + e] += (double)r;
  }
}

static void free_inputs(Inputs *p) {
  for (int i = 0; i < p->n; i++)
    free(p->in[i]);
}

static int wrt_index(md_function *f) {
  for (int i = 0; i < md_num_inputs(f); i++)
    if (md_input_is_wrt(f, i))
      return i;
  return -1;
}

static void check_case(const Case *k) {
  md_error err;
  md_function *f = md_compile(k->src, k->name, &err);
  cr_assert(f, "%s: %s", k->name, err.diag);
  char *gsrc = expect_source(k);
  md_function *g = md_compile(gsrc, k->name, &err);
  cr_assert(g, "%s: the closed form does not compile: %s\n%s", k->name, err.diag, gsrc);

  Rng rng = {0x9e3779b97f4a7c15ull ^ (uint64_t)k->line};
  Inputs p;
  make_inputs(f, &rng, cases_flag(k, "positive"), &p);
  int v = wrt_index(f);
  cr_assert(v >= 0);
  long len = p.len[v];
  double *grads[16] = {0};
  grads[v] = calloc((size_t)len, sizeof(double));
  double y;
  cr_assert_eq(md_grad(f, p.dims, (const double *const *)p.in, &y, grads, &err), 0, "%s: %s",
               k->name, err.message);

  // 1. The closed form. Its inputs are the same, in its own order.
  Inputs q = {.n = md_num_inputs(g)};
  memcpy(q.dims, p.dims, sizeof q.dims);
  const double *gin[16];
  for (int i = 0; i < q.n; i++)
    for (int j = 0; j < p.n; j++)
      if (!strcmp(md_input_name(g, i), md_input_name(f, j)))
        gin[i] = p.in[j];
  for (int d = 0; d < md_num_dims(g); d++)
    q.dims[d] = !strcmp(md_dim_name(g, d), "m") ? SIZE_M : SIZE_K;
  double *closed = calloc((size_t)len, sizeof(double));
  cr_assert_eq(md_output_rows(g, q.dims) * md_output_cols(g, q.dims), len,
               "%s: the closed form has the wrong shape", k->name);
  cr_assert_eq(md_eval(g, q.dims, gin, closed, &err), 0, "%s: %s", k->name, err.message);
  double e1 = md_rel_err(grads[v], closed, len);
  cr_expect(e1 < 1e-9, "%s: matdiff and the Cookbook differ by %g\n  matdiff: %s\n  Cookbook: %s",
            k->name, e1, md_grad_formula(f, v), k->expect);

  // 2 and 3. The tape and central finite differences.
  md_check_opts o = {.inputs = (const double *const *)p.in};
  md_check_result r;
  cr_assert_eq(md_check(f, p.dims, &o, &r, &err), 0, "%s: %s", k->name, err.message);
  cr_expect(r.tape[v] <= MD_CHECK_TOL_TAPE, "%s: matdiff and the tape differ by %g", k->name, r.tape[v]);
  cr_expect(r.fd[v] <= MD_CHECK_TOL_FD, "%s: matdiff and finite differences differ by %g", k->name,
            r.fd[v]);
  cr_expect(r.ok, "%s: md_check fails (value off the tape by %g)", k->name, r.value);
  md_check_result_free(&r);

  free(closed);
  free(grads[v]);
  free_inputs(&p);
  free(gsrc);
  md_free(g);
  md_free(f);
}

Test(cookbook, every_identity) {
  Case *cs;
  int n = cases_load(CASES, &cs);
  cr_assert(n > 50, "expected the Cookbook's cases in %s, got %d", CASES, n);
  for (int i = 0; i < n; i++)
    check_case(&cs[i]);
  cases_free(cs, n);
}
