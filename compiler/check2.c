/*
 * check2.c - md_check2, the second-order checker: the emitted JVP, HVPs,
 * Hessian and Jacobian (md_jvp ..., emit_second.c) against the runtime's
 * tape, whose forward mode and forward-over-reverse share nothing with the
 * symbolic derivatives (a whole matrix column by column along unit
 * directions), and the HVPs also against central differences of the
 * JIT's gradient. `matdiff check --order 2` and the tests call it.
 */
#include <stdlib.h>
#include <string.h>
#include "api.h"

static double worst(double a, double b) { return a > b || a != a ? a : b; }

void md_check2_result_free(md_check2_result *r) {
  if (!r)
    return;
  free(r->hvp_tape);
  free(r->hvp_fd);
  free(r->hessian);
  free(r->jacobian);
  r->hvp_tape = r->hvp_fd = r->hessian = r->jacobian = NULL;
}

// The buffers of one check, freed together.
typedef struct Bufs {
  int n;
  double **a, **b, **gp, **gm, **u; /* one per input (NULL if not wrt) */
  double *t1, *t2, *m1, *m2, *col;
  long *len, *at;
  long *side;        /* a symmetric(n) input's n, else 0 */
} Bufs;

static void bufs_free(Bufs *k) {
  for (int i = 0; i < k->n; i++) {
    if (k->a)
      free(k->a[i]);
    if (k->b)
      free(k->b[i]);
    if (k->gp)
      free(k->gp[i]);
    if (k->gm)
      free(k->gm[i]);
    if (k->u)
      free(k->u[i]);
  }
  free(k->a), free(k->b), free(k->gp), free(k->gm), free(k->u);
  free(k->t1), free(k->t2), free(k->m1), free(k->m2), free(k->col);
  free(k->len), free(k->at), free(k->side);
}

static bool bufs_init(Bufs *k, md_function *f, const long *dims, long outlen, long N, long mlen) {
  int n = k->n = f->ctx.nvars;
  size_t np = (size_t)n + 1;
  if (!(k->a = calloc(np, sizeof(double *))) || !(k->b = calloc(np, sizeof(double *))) ||
      !(k->gp = calloc(np, sizeof(double *))) || !(k->gm = calloc(np, sizeof(double *))) ||
      !(k->u = calloc(np, sizeof(double *))) || !(k->len = calloc(np, sizeof(long))) ||
      !(k->at = calloc(np, sizeof(long))) || !(k->side = calloc(np, sizeof(long))) || !(k->t1 = calloc((size_t)outlen, sizeof(double))) ||
      !(k->t2 = calloc((size_t)outlen, sizeof(double))) ||
      !(k->m1 = calloc((size_t)mlen + 1, sizeof(double))) ||
      !(k->m2 = calloc((size_t)mlen + 1, sizeof(double))) ||
      !(k->col = calloc((size_t)(N > outlen ? N : outlen) + 1, sizeof(double))))
    return false;
  long at = 0;
  for (int i = 0; i < n; i++) {
    k->len[i] = api_len(f->ctx.vars[i].shape, dims);
    k->at[i] = at;
    if (f->ctx.vars[i].symmetric)
      k->side[i] = api_len((Shape){f->ctx.vars[i].shape.r, dim_lit(1)}, dims);
    if (!f->ctx.vars[i].wrt)
      continue;
    at += k->len[i];
    size_t l = (size_t)k->len[i];
    if (!(k->a[i] = calloc(l, sizeof(double))) || !(k->b[i] = calloc(l, sizeof(double))) ||
        !(k->gp[i] = calloc(l, sizeof(double))) || !(k->gm[i] = calloc(l, sizeof(double))) ||
        !(k->u[i] = calloc(l, sizeof(double))))
      return false;
  }
  return true;
}

// Directions along stacked element E alone; in a symmetric(n) input's
// block, whose perturbations are symmetric, (E_rc + E_cr)/2 for E at (r,c),
// as P_hessian and P_jacobian take them (emit_second.c).
static void unit(Bufs *k, long e) {
  for (int i = 0; i < k->n; i++) {
    if (!k->u[i])
      continue;
    memset(k->u[i], 0, sizeof(double) * (size_t)k->len[i]);
    if (e >= k->at[i] && e < k->at[i] + k->len[i]) {
      long j = e - k->at[i], n = k->side[i], mirror = n ? j % n * n + j / n : j;
      k->u[i][j] += 0.5;
      k->u[i][mirror] += 0.5;
    }
  }
}

// Central differences of md_grad along DIRS into K->gp: the step is scaled
// to the inputs and the directions, 1e-5 of the largest input (or 1) over
// the largest direction, which balances truncation and rounding for
// well-scaled inputs as md_check's steps do.
static bool gradient_fd(md_function *f, const long *dims, const double *const *inputs,
                        const double *const *dirs, Bufs *k, md_error *err) {
  int n = k->n;
  double big = 1, dbig = 0;
  for (int i = 0; i < n; i++)
    for (long e = 0; e < k->len[i]; e++) {
      big = worst(big, inputs[i][e] < 0 ? -inputs[i][e] : inputs[i][e]);
      if (k->a[i] && dirs[i])
        dbig = worst(dbig, dirs[i][e] < 0 ? -dirs[i][e] : dirs[i][e]);
    }
  double t = 1e-5 * big / (dbig > 0 ? dbig : 1);
  double **moved = calloc((size_t)n + 1, sizeof *moved);
  bool ok = moved != NULL;
  for (int i = 0; ok && i < n; i++)
    ok = (moved[i] = malloc(sizeof(double) * (size_t)(k->len[i] ? k->len[i] : 1))) != NULL;
  for (int s = 0; ok && s < 2; s++) {
    for (int i = 0; i < n; i++)
      for (long e = 0; e < k->len[i]; e++)
        moved[i][e] = inputs[i][e] + (k->a[i] && dirs[i] ? (s ? -t : t) * dirs[i][e] : 0);
    ok = md_grad(f, dims, (const double *const *)moved, NULL, s ? k->gm : k->gp, err) == 0;
  }
  for (int i = 0; ok && i < n; i++)
    for (long e = 0; k->a[i] && e < k->len[i]; e++)
      k->gp[i][e] = (k->gp[i][e] - k->gm[i][e]) / (2 * t);
  for (int i = 0; moved && i < n; i++)
    free(moved[i]);
  free(moved);
  if (!moved)
    diag_plain(err, "out of memory");
  return ok;
}

int md_check2(md_function *f, const long *dims, const double *const *inputs,
              const double *const *dirs, int full, md_check2_result *res, md_error *err) {
  memset(res, 0, sizeof *res);
  if (!api_call_ok(f, dims, inputs, err) || !api_sizes_ok(f, dims, err))
    return -1;
  if (!dirs) {
    diag_plain(err, "no directions");
    return -1;
  }
  Ctx *c = &f->ctx;
  int n = c->nvars;
  long outlen = api_len(c->out->shape, dims), N = md_wrt_size(f, dims);
  bool scalar = f->scalar;
  long mlen = !full ? 0 : scalar ? size_mul(N, N) : size_mul(outlen, N);
  if (mlen < 0) {
    diag_plain(err, "the sizes are too large for a whole Hessian or Jacobian");
    return -1;
  }
  Bufs k = {0};
  res->hvp_tape = calloc((size_t)n + 1, sizeof(double));
  res->hvp_fd = calloc((size_t)n + 1, sizeof(double));
  res->hessian = calloc((size_t)n + 1, sizeof(double));
  res->jacobian = calloc((size_t)n + 1, sizeof(double));
  int rc = -1;
  if (!res->hvp_tape || !res->hvp_fd || !res->hessian || !res->jacobian ||
      !bufs_init(&k, f, dims, outlen, N, mlen)) {
    diag_plain(err, "out of memory");
    goto done;
  }
  if (md_jvp(f, dims, inputs, dirs, k.t1, err) || md_tape_jvp(f, dims, inputs, dirs, NULL, k.t2, err))
    goto done;
  res->jvp = md_rel_err(k.t1, k.t2, outlen);
  bool ok = res->jvp <= MD_CHECK_TOL_TAPE;
  if (scalar) {
    if (md_hvp(f, dims, inputs, dirs, k.a, err) ||
        md_tape_hvp(f, dims, inputs, dirs, NULL, NULL, NULL, k.b, err) ||
        !gradient_fd(f, dims, inputs, dirs, &k, err))
      goto done;
    for (int i = 0; i < n; i++)
      if (k.a[i]) {
        res->hvp_tape[i] = md_rel_err(k.a[i], k.b[i], k.len[i]);
        res->hvp_fd[i] = md_rel_err(k.a[i], k.gp[i], k.len[i]);
        ok &= res->hvp_tape[i] <= MD_CHECK_TOL_TAPE && res->hvp_fd[i] <= MD_CHECK_TOL_FD;
      }
  }
  if (full && N > 0) {
    if (scalar ? md_hessian(f, dims, inputs, k.m1, err) : md_jacobian(f, dims, inputs, k.m1, err))
      goto done;
    long rows = scalar ? N : outlen;
    // Column E of the whole matrix: the tape's HVP (JVP) along e_E.
    for (long e = 0; e < N; e++) {
      unit(&k, e);
      const double *const *u = (const double *const *)k.u;
      if (scalar) {
        for (int i = 0; i < n; i++)
          if (k.b[i])
            memset(k.b[i], 0, sizeof(double) * (size_t)k.len[i]);
        if (md_tape_hvp(f, dims, inputs, u, NULL, NULL, NULL, k.b, err))
          goto done;
        for (int i = 0; i < n; i++)
          if (k.b[i])
            memcpy(k.col + k.at[i], k.b[i], sizeof(double) * (size_t)k.len[i]);
      } else if (md_tape_jvp(f, dims, inputs, u, NULL, k.col, err)) {
        goto done;
      }
      for (long r = 0; r < rows; r++)
        k.m2[r * N + e] = k.col[r];
    }
    // Per variable: its block row of the Hessian, its block column of the
    // Jacobian.
    for (int i = 0; i < n; i++) {
      if (!k.a[i])
        continue;
      if (scalar)
        res->hessian[i] = md_rel_err(k.m1 + k.at[i] * N, k.m2 + k.at[i] * N, k.len[i] * N);
      else
        for (long r = 0; r < rows; r++)
          res->jacobian[i] = worst(res->jacobian[i], md_rel_err(k.m1 + r * N + k.at[i],
                                                                k.m2 + r * N + k.at[i], k.len[i]));
      ok &= res->hessian[i] <= MD_CHECK_TOL_TAPE && res->jacobian[i] <= MD_CHECK_TOL_TAPE;
    }
  }
  res->ok = ok;
  rc = 0;
done:
  bufs_free(&k);
  return rc;
}
