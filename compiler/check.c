/*
 * check.c - the gradient checker and the oracles it holds a compiled
 * function against, in the library so that `matdiff check`, the tests and
 * the benchmark share one version of each:
 *
 *   md_tape_vjp  the runtime's tape (record.c records the value's DAG on
 *                it, mdrt_tape_backward differentiates numerically)
 *   md_tape_jvp  the same tape's forward mode, and its forward-over-reverse
 *   md_tape_hvp  (mdrt_tape_forward, mdrt_tape_backward2): second order
 *   md_rel_err   the one measure of disagreement, with md_check's tolerances
 *   md_rng       the seeded generator md_check draws inputs from
 *   md_check     the JIT's gradients against both oracles and against
 *                central differences, at inputs it is given or draws
 *
 * The rules for drawing inputs and the tolerances live here and nowhere else.
 */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "api.h"
#include "matdiff_rt.h"

double md_rel_err(const double *a, const double *b, long n) {
  double diff = 0, scale = 1;
  for (long i = 0; i < n; i++) {
    double d = fabs(a[i] - b[i]);
    diff = d > diff || isnan(d) ? d : diff;
    scale = fmax(scale, fabs(b[i]));
  }
  return diff / scale;
}

/* ---- the tape ----------------------------------------------------------- */

// Add the tape's gradient G of input I into OUT: G itself, or for a
// symmetric input the gradient in the space of symmetric matrices,
// (G + G')/2, which the symbolic one is (diff.c).
static void add_grad(double *out, const double *g, const Ctx *c, int i, const long *dims) {
  long len = api_len(c->vars[i].shape, dims), n = dim_value(c->vars[i].shape.r, dims);
  for (long k = 0; k < len; k++)
    out[k] += c->vars[i].symmetric ? (g[k] + g[k % n * n + k / n]) / 2 : g[k];
}

int md_tape_vjp(md_function *f, const long *dims, const double *const *inputs, const double *seed,
                double *out, double *const *grads, md_error *err) {
  if (!api_call_ok(f, dims, inputs, err) || !api_sizes_ok(f, dims, err))
    return -1;
  Ctx *c = &f->ctx;
  mdrt_tape *t = mdrt_tape_new();
  int *leaves = calloc((size_t)c->nvars + 1, sizeof *leaves);
  int rc = -1;
  if (!t || !leaves) {
    diag_plain(err, "out of memory");
    goto done;
  }
  int h = record_on_tape(c, t, dims, inputs, leaves);
  if (h < 0 || mdrt_tape_backward(t, h, seed) != 0) {
    const char *why = mdrt_tape_error(t);
    diag_plain(err, "the tape failed: %s", *why ? why : "out of memory");
    goto done;
  }
  long r = md_output_rows(f, dims), cols = md_output_cols(f, dims);
  if (mdrt_tape_rows(t, h) != r || mdrt_tape_cols(t, h) != cols) {
    diag_plain(err, "internal error: the tape's output is %ld×%ld, not %ld×%ld",
               mdrt_tape_rows(t, h), mdrt_tape_cols(t, h), r, cols);
    goto done;
  }
  if (out)
    memcpy(out, mdrt_tape_value(t, h), sizeof *out * (size_t)api_len(c->out->shape, dims));
  for (int i = 0; grads && i < c->nvars; i++) {
    if (!grads[i] || !c->vars[i].wrt)
      continue;
    add_grad(grads[i], mdrt_tape_grad(t, leaves[i]), c, i, dims);
  }
  rc = 0;
done:
  mdrt_tape_free(t);
  free(leaves);
  return rc;
}

/* ---- the tape: forward mode and second order ------------------------------ */

// The value's operations on a new tape *T, each wrt input's leaf with its
// direction DIRS[i] (NULL entries and DIRS NULL: none). The output's handle,
// or -1 with *ERR filled.
static int record_with_directions(md_function *f, const long *dims, const double *const *inputs,
                                  const double *const *dirs, mdrt_tape **t, int **leaves,
                                  md_error *err) {
  Ctx *c = &f->ctx;
  *t = mdrt_tape_new();
  *leaves = calloc((size_t)c->nvars + 1, sizeof **leaves);
  if (!*t || !*leaves) {
    diag_plain(err, "out of memory");
    return -1;
  }
  int h = record_on_tape(c, *t, dims, inputs, *leaves);
  for (int i = 0; h >= 0 && dirs && i < c->nvars; i++)
    if (dirs[i] && c->vars[i].wrt && mdrt_tape_direction(*t, (*leaves)[i], dirs[i]) != 0)
      h = -1;
  if (h < 0) {
    const char *why = mdrt_tape_error(*t);
    diag_plain(err, "the tape failed: %s", *why ? why : "out of memory");
  }
  return h;
}

static long numel_of(md_function *f, int i, const long *dims) {
  return i < 0 ? md_output_rows(f, dims) * md_output_cols(f, dims)
               : md_input_rows(f, i, dims) * md_input_cols(f, i, dims);
}

int md_tape_jvp(md_function *f, const long *dims, const double *const *inputs,
                const double *const *dirs, double *out, double *tangent, md_error *err) {
  if (!api_call_ok(f, dims, inputs, err) || !api_sizes_ok(f, dims, err))
    return -1;
  if (!tangent) {
    diag_plain(err, "no buffer for the tangent");
    return -1;
  }
  mdrt_tape *t;
  int *leaves, rc = -1;
  int h = record_with_directions(f, dims, inputs, dirs, &t, &leaves, err);
  if (h >= 0 && mdrt_tape_forward(t) != 0)
    diag_plain(err, "the tape failed: %s", mdrt_tape_error(t));
  else if (h >= 0) {
    long len = numel_of(f, -1, dims);
    if (out)
      memcpy(out, mdrt_tape_value(t, h), sizeof *out * (size_t)len);
    memcpy(tangent, mdrt_tape_tangent(t, h), sizeof *tangent * (size_t)len);
    rc = 0;
  }
  mdrt_tape_free(t);
  free(leaves);
  return rc;
}

int md_tape_hvp(md_function *f, const long *dims, const double *const *inputs,
                const double *const *dirs, const double *seed, double *out, double *const *grads,
                double *const *hv, md_error *err) {
  if (!api_call_ok(f, dims, inputs, err) || !api_sizes_ok(f, dims, err))
    return -1;
  mdrt_tape *t;
  int *leaves, rc = -1;
  int h = record_with_directions(f, dims, inputs, dirs, &t, &leaves, err);
  if (h >= 0 && mdrt_tape_backward2(t, h, seed) != 0)
    diag_plain(err, "the tape failed: %s", mdrt_tape_error(t));
  else if (h >= 0) {
    if (out)
      memcpy(out, mdrt_tape_value(t, h), sizeof *out * (size_t)numel_of(f, -1, dims));
    for (int i = 0; i < f->ctx.nvars; i++) {
      if (!f->ctx.vars[i].wrt)
        continue;
      if (grads && grads[i])
        add_grad(grads[i], mdrt_tape_grad(t, leaves[i]), &f->ctx, i, dims);
      if (hv && hv[i])
        add_grad(hv[i], mdrt_tape_hvp(t, leaves[i]), &f->ctx, i, dims);
    }
    rc = 0;
  }
  mdrt_tape_free(t);
  free(leaves);
  return rc;
}

// The first non-finite element of the tape's value H, or 0 with *AT -1.
static double nonfinite(const mdrt_tape *t, int h, long *at) {
  const double *v = mdrt_tape_value(t, h);
  long len = size_mul(mdrt_tape_rows(t, h), mdrt_tape_cols(t, h));
  for (long e = 0; v && e < len; e++)
    if (!isfinite(v[e]))
      return *at = e, v[e];
  return *at = -1, 0;
}

int md_first_nonfinite(md_function *f, const long *dims, const double *const *inputs, int grad,
                       char *op, size_t n, double *bad, md_error *err) {
  if (!api_call_ok(f, dims, inputs, err) || !api_sizes_ok(f, dims, err))
    return -1;
  if (!op || n < 4) {
    diag_plain(err, "no room for the operation");
    return -1;
  }
  Ctx *c = &f->ctx;
  mdrt_tape *t = mdrt_tape_new();
  Node **roots = calloc((size_t)c->nvars + 1, sizeof *roots);
  int *leaves = calloc((size_t)c->nvars + 1, sizeof *leaves);
  int *h = malloc(sizeof *h * (size_t)c->nnodes), nroots = 0, rc = -1;
  if (!t || !roots || !leaves || !h) {
    diag_plain(err, "out of memory");
    goto done;
  }
  roots[nroots++] = c->out;
  for (int i = 0; grad && i < c->nvars; i++)
    if (c->vars[i].wrt)
      roots[nroots++] = c->grads[i];
  if (record_nodes(c, t, dims, inputs, roots, nroots, NULL, leaves, h) != 0) {
    const char *why = mdrt_tape_error(t);
    diag_plain(err, "the tape failed: %s", *why ? why : "out of memory");
    goto done;
  }
  int last = 0;  // the nodes recorded are those up to the last root
  for (int r = 0; r < nroots; r++)
    last = roots[r]->id > last ? roots[r]->id : last;
  rc = 0;
  for (int i = 0; rc == 0 && i <= last; i++) {
    long at = -1;
    double v = h[i] >= 0 ? nonfinite(t, h[i], &at) : 0;
    if (at < 0)
      continue;
    char *s = api_print(f, c->nodes[i], n - 4);
    snprintf(op, n, "%s", s ? s : "an operation matdiff cannot print (out of memory)");
    if (bad)
      *bad = v;
    rc = 1;
  }
done:
  mdrt_tape_free(t);
  free(roots);
  free(leaves);
  free(h);
  return rc;
}

/* ---- random numbers ----------------------------------------------------- */

_Static_assert(ULLONG_MAX == 0xFFFFFFFFFFFFFFFFULL, "md_rng needs a 64-bit unsigned long long");

// The normal sampler must round the same on every platform: no fused
// multiply-add. GCC in ISO mode (-std=c11) does not contract; clang must be told.
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

static unsigned long long splitmix64(unsigned long long *x) {
  unsigned long long z = (*x += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

static unsigned long long rotl(unsigned long long x, int k) {
  return (x << k) | (x >> (64 - k));
}

static unsigned long long xoshiro_next(md_rng *r) {
  unsigned long long *s = r->s;
  unsigned long long result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

// splitmix64 is a bijection of its counter, so the four words are never all zero.
void md_rng_seed(md_rng *r, unsigned long long seed) {
  for (int i = 0; i < 4; i++)
    r->s[i] = splitmix64(&seed);
}

double md_rng_uniform(md_rng *r) {
  return (double)(xoshiro_next(r) >> 11) * 0x1.0p-53;
}

// ln x for a finite x > 0 from frexp, +, -, *, / only, which IEEE-754 rounds
// the same everywhere (libm's log may differ in the last bit between systems).
// x = m*2^e with m in [sqrt(1/2), sqrt(2)); ln m = 2 atanh(t), t = (m-1)/(m+1),
// |t| < 0.172, and atanh(t)/t = 1 + t^2/3 + t^4/5 + ... is below an ulp by t^22.
// It is within 3 ulps of glibc's log, plenty for sampling.
static double portable_log(double x) {
  const double ln2_hi = 0x1.62e42feep-1, ln2_lo = 0x1.a39ef35793c76p-33;  // fdlibm's split
  int e;
  double m = frexp(x, &e);
  if (m < 0.70710678118654752440) {
    m *= 2;
    e--;
  }
  double t = (m - 1) / (m + 1), t2 = t * t, p = 1.0 / 23;
  for (int k = 21; k >= 1; k -= 2)
    p = p * t2 + 1.0 / k;
  return e * ln2_hi + (2 * t * p + e * ln2_lo);
}

// Marsaglia's polar method. It yields two deviates; md_rng has no room to
// keep the second, so it is dropped.
double md_rng_normal(md_rng *r) {
  for (;;) {
    double u = 2 * md_rng_uniform(r) - 1, v = 2 * md_rng_uniform(r) - 1;
    double s = u * u + v * v;
    if (s > 0 && s < 1)
      return u * sqrt(-2 * portable_log(s) / s);
  }
}

/* ---- the checker -------------------------------------------------------- */

// Gershgorin: every eigenvalue lies within the sum of the magnitudes of
// the other elements of some row of its diagonal element.
void md_symmetrize(double *A, long n, int posdef) {
  for (long i = 0; i < n; i++)
    for (long j = 0; j < i; j++)
      A[i * n + j] = A[j * n + i] = (A[i * n + j] + A[j * n + i]) / 2;
  for (long i = 0; posdef && i < n; i++) {
    double off = 0;
    for (long j = 0; j < n; j++)
      off += j == i ? 0 : fabs(A[i * n + j]);
    A[i * n + i] = fabs(A[i * n + i]) + off + 0.5;
  }
}

static const char *const dist_names[] = {"given", "standard normal", "uniform in [-0.5, 0.5]",
                                         "uniform in [0.1, 0.9]"};

static double draw(md_rng *rng, md_dist d) {
  switch (d) {
  case MD_DIST_SMALL: return md_rng_uniform(rng) - 0.5;
  case MD_DIST_POSITIVE: return 0.1 + 0.8 * md_rng_uniform(rng);
  default: return md_rng_normal(rng);
  }
}

// Does the function invert a matrix (inv, det, logdet: OPF_INVERTS)? Its
// square inputs are then best made well conditioned.
static bool inverts(const Ctx *c) {
  for (int i = 0; i < c->nnodes; i++)
    if (op_flags[c->nodes[i]->op] & OPF_INVERTS)
      return true;
  return false;
}

// One check: the inputs (given ones copied, since differences move them),
// their element counts, the seed, and the JIT's and the tape's results.
typedef struct Check {
  md_function *f;
  const long *dims;
  int n;
  long outlen;
  long *len;
  bool *drawn;
  double **in, **g, **tg;
  const double *seed;  /* the caller's, or drawn into drawn_seed */
  double *drawn_seed, *value, *tvalue, *scratch;
} Check;

static void check_free(Check *k) {
  for (int i = 0; i < k->n; i++) {
    free(k->in ? k->in[i] : NULL);
    free(k->g ? k->g[i] : NULL);
    free(k->tg ? k->tg[i] : NULL);
  }
  free(k->in);
  free(k->g);
  free(k->tg);
  free(k->len);
  free(k->drawn);
  free(k->drawn_seed);
  free(k->value);
  free(k->tvalue);
  free(k->scratch);
}

static bool check_init(Check *k, md_function *f, const long *dims, const md_check_opts *o,
                       md_error *err) {
  int n = md_num_inputs(f);
  *k = (Check){.f = f, .dims = dims, .n = n};
  k->outlen = api_len(f->ctx.out->shape, dims);
  size_t m = (size_t)n + 1, ol = (size_t)k->outlen;
  k->len = calloc(m, sizeof *k->len);
  k->drawn = calloc(m, sizeof *k->drawn);
  k->in = calloc(m, sizeof *k->in);
  k->g = calloc(m, sizeof *k->g);
  k->tg = calloc(m, sizeof *k->tg);
  k->value = calloc(ol, sizeof *k->value);
  k->tvalue = calloc(ol, sizeof *k->tvalue);
  k->scratch = calloc(ol, sizeof *k->scratch);
  if (!k->len || !k->drawn || !k->in || !k->g || !k->tg || !k->value || !k->tvalue || !k->scratch) {
    diag_plain(err, "out of memory");
    return false;
  }
  for (int i = 0; i < n; i++) {
    k->len[i] = api_len(f->ctx.vars[i].shape, dims);
    size_t bytes = sizeof(double) * (size_t)k->len[i];
    k->in[i] = malloc(bytes);
    if (!k->in[i]) {
      diag_plain(err, "input %s is too large", md_input_name(f, i));
      return false;
    }
    const double *given = o->inputs ? o->inputs[i] : NULL;
    k->drawn[i] = !given;
    if (given)
      memcpy(k->in[i], given, bytes);
    if (md_input_is_wrt(f, i) && (!(k->g[i] = calloc((size_t)k->len[i], sizeof(double))) ||
                                  !(k->tg[i] = calloc((size_t)k->len[i], sizeof(double))))) {
      diag_plain(err, "out of memory");
      return false;
    }
  }
  return true;
}

static const double *const *inputs(const Check *k) { return (const double *const *)k->in; }

// The drawn inputs at distribution D; with WELL, square matrices get their
// size added to the diagonal.
static void fill(Check *k, md_rng *rng, md_dist d, bool well) {
  for (int i = 0; i < k->n; i++) {
    if (!k->drawn[i])
      continue;
    for (long e = 0; e < k->len[i]; e++)
      k->in[i][e] = draw(rng, d);
    long r = md_input_rows(k->f, i, k->dims), c = md_input_cols(k->f, i, k->dims);
    if (md_input_is_symmetric(k->f, i))
      md_symmetrize(k->in[i], r, md_input_is_posdef(k->f, i));
    for (long e = 0; well && r == c && r > 1 && e < r; e++)
      k->in[i][e * c + e] += (double)r;
  }
}

// The first distribution at which the function is finite (or the last one
// tried); square matrices well conditioned first if the function inverts
// one, else last.
static void choose_inputs(Check *k, md_rng *rng, md_check_result *res) {
  bool any = false;
  for (int i = 0; i < k->n; i++)
    any |= k->drawn[i];
  if (!any)
    return;
  enum { NDIST = 3 };
  bool well_first = inverts(&k->f->ctx);
  for (int attempt = 0; attempt < 2 * NDIST; attempt++) {
    md_dist d = (md_dist)(MD_DIST_NORMAL + attempt % NDIST);
    bool well = attempt < NDIST ? well_first : !well_first;
    fill(k, rng, d, well);
    md_error ignored;
    bool finite = md_eval(k->f, k->dims, inputs(k), k->scratch, &ignored) == 0;
    for (long e = 0; finite && e < k->outlen; e++)
      finite = isfinite(k->scratch[e]);
    if (finite || attempt == 2 * NDIST - 1) {
      res->dist = d;
      res->well = well;
      return;
    }
  }
}

// The scalar the gradients differentiate: the output, or <seed, output>.
static bool scalarize(Check *k, double *v, md_error *err) {
  if (md_eval(k->f, k->dims, inputs(k), k->scratch, err) != 0)
    return false;
  *v = 0;
  for (long e = 0; e < k->outlen; e++)
    *v += (k->seed ? k->seed[e] : 1) * k->scratch[e];
  return true;
}

// Central differences of input I, one element at a time, with the step
// H times the element's magnitude; md_rel_err of the gradient against them.
static bool finite_diff_at(Check *k, int i, double scale, double *e, md_error *err) {
  double *fd = malloc(sizeof *fd * (size_t)k->len[i]);
  if (!fd) {
    diag_plain(err, "out of memory");
    return false;
  }
  bool ok = true;
  // A symmetric input moves symmetrically, along S + h*(E_jt + E_tj)/2
  // (element j and its mirror t, each by h/2): the derivative there is
  // (G(j) + G(t))/2, element j of the symmetric gradient.
  long n = md_input_is_symmetric(k->f, i) ? md_input_rows(k->f, i, k->dims) : 0;
  for (long j = 0; ok && j < k->len[i]; j++) {
    long t = n ? j % n * n + j / n : j;
    double x = k->in[i][j], y = k->in[i][t], h = scale * fmax(1, fabs(x)), fp = 0, fm = 0;
    double step = t == j ? h : h / 2;
    k->in[i][j] = x + step;
    k->in[i][t] = y + step;
    ok = scalarize(k, &fp, err);
    k->in[i][j] = x - step;
    k->in[i][t] = y - step;
    ok = ok && scalarize(k, &fm, err);
    k->in[i][j] = x;
    k->in[i][t] = y;
    fd[j] = (fp - fm) / (2 * h);
  }
  if (ok)
    *e = md_rel_err(k->g[i], fd, k->len[i]);
  free(fd);
  return ok;
}

// The step 1e-6 of the magnitude, and while the gradient disagrees, 1e-4
// and 1e-2 too, the best of them: rounding costs eps*|f|/h, which passes
// the tolerance where f is large and this gradient small (f = sum(inv(A))
// + ||B'*B'*B*B'||_F^2, d/dA), and a wrong gradient disagrees at each.
static bool finite_diff(Check *k, int i, double *e, md_error *err) {
  static const double wider[] = {1e-4, 1e-2};
  double wide;
  if (!finite_diff_at(k, i, 1e-6, e, err))
    return false;
  for (int s = 0; s < 2 && *e > MD_CHECK_TOL_FD; s++) {
    if (!finite_diff_at(k, i, wider[s], &wide, err))
      return false;
    *e = fmin(*e, wide);
  }
  return true;
}

static int run(Check *k, const md_check_opts *o, md_rng *rng, md_check_result *res, md_error *err) {
  md_function *f = k->f;
  choose_inputs(k, rng, res);
  bool scalar = md_output_rows(f, NULL) == 1 && md_output_cols(f, NULL) == 1;
  k->seed = o->seed;
  if (!o->seed && (k->outlen > 1 || !scalar)) {
    if (!(k->drawn_seed = malloc(sizeof *k->drawn_seed * (size_t)k->outlen))) {
      diag_plain(err, "out of memory");
      return -1;
    }
    for (long e = 0; e < k->outlen; e++)
      k->drawn_seed[e] = md_rng_normal(rng);
    k->seed = k->drawn_seed;
  }
  if ((k->seed ? md_vjp(f, k->dims, inputs(k), k->seed, k->value, k->g, err)
               : md_grad(f, k->dims, inputs(k), k->value, k->g, err)) != 0 ||
      md_tape_vjp(f, k->dims, inputs(k), k->seed, k->tvalue, k->tg, err) != 0)
    return -1;
  res->value = md_rel_err(k->value, k->tvalue, k->outlen);
  res->ok = res->value <= MD_CHECK_TOL_TAPE;
  for (int i = 0; i < k->n; i++) {
    if (!k->g[i])
      continue;
    res->tape[i] = md_rel_err(k->g[i], k->tg[i], k->len[i]);
    if (!o->skip_fd && !finite_diff(k, i, &res->fd[i], err))
      return -1;
    res->ok &= res->tape[i] <= MD_CHECK_TOL_TAPE && res->fd[i] <= MD_CHECK_TOL_FD;
  }
  return 0;
}

int md_check(md_function *f, const long *dims, const md_check_opts *opts, md_check_result *res,
             md_error *err) {
  static const md_check_opts none;
  const md_check_opts *o = opts ? opts : &none;
  diag_clear(err);
  if (!res) {
    diag_plain(err, "no result to fill");
    return -1;
  }
  *res = (md_check_result){.dist = MD_DIST_GIVEN};
  md_rng own;
  md_rng *rng = o->rng;
  if (!rng) {
    md_rng_seed(&own, 1);
    rng = &own;
  }
  int n = md_num_inputs(f), rc = -1;
  Check k = {0};
  if (!f) {
    diag_plain(err, "no function");
    goto done;
  }
  if ((f->ctx.ndims && !dims) || !api_sizes_ok(f, dims, err)) {
    if (!dims)
      diag_plain(err, "the sizes are missing: %s needs %d", f->ctx.outname, f->ctx.ndims);
    goto done;
  }
  res->tape = calloc((size_t)n + 1, sizeof *res->tape);
  res->fd = calloc((size_t)n + 1, sizeof *res->fd);
  if (!res->tape || !res->fd) {
    diag_plain(err, "out of memory");
    goto done;
  }
  if (check_init(&k, f, dims, o, err))
    rc = run(&k, o, rng, res, err);
done:
  res->dist_name = dist_names[res->dist];
  check_free(&k);
  if (rc != 0) {
    res->ok = 0;
    md_check_result_free(res);
  }
  return rc;
}

void md_check_result_free(md_check_result *res) {
  if (!res)
    return;
  free(res->tape);
  free(res->fd);
  res->tape = res->fd = NULL;
}
