/*
 * emit2.h - the emitted second-order functions (md_jvp, md_hvp, md_hessian,
 * md_jacobian) held against the independent oracles, for any compiled
 * function: the tape's forward mode and forward-over-reverse (a matrix
 * column by column, along unit directions), and central differences of
 * md_grad for the HVP. No Criterion here: test_emit2.c, test_ops.c and
 * gen.c each assert on the worst disagreements it returns.
 */
#ifndef EMIT2_H
#define EMIT2_H

#include <stdlib.h>
#include <string.h>
#include "matdiff.h"

/* The worst md_rel_err of each, 0 where it does not apply. */
typedef struct Emit2Err {
  double jvp;      /* md_jvp against md_tape_jvp */
  double hvp;      /* md_hvp against md_tape_hvp, over the wrt inputs */
  double hvp_fd;   /* md_hvp against central differences of md_grad */
  double hessian;  /* md_hessian against the tape's HVPs along unit directions */
  double jacobian; /* md_jacobian against the tape's JVPs along unit directions */
} Emit2Err;

static inline double emit2_max(double a, double b) { return a > b || a != a ? a : b; }

static inline long emit2_len(md_function *f, int i, const long *dims) {
  return md_input_rows(f, i, dims) * md_input_cols(f, i, dims);
}

// Directions along stacked element K alone (K < 0: all zero), into D, one
// buffer per input (NULL for those not in wrt).
static inline void emit2_unit(md_function *f, const long *dims, double **d, long k) {
  long at = 0;
  for (int i = 0; i < md_num_inputs(f); i++) {
    if (!d[i])
      continue;
    long n = emit2_len(f, i, dims);
    memset(d[i], 0, sizeof(double) * (size_t)n);
    if (k >= at && k < at + n)
      d[i][k - at] = 1;
    at += n;
  }
}

/* Hold F's emitted second order against the oracles at DIMS, INPUTS and the
   directions DIRS (one per input; entries of inputs not in wrt unused).
   HESSIAN also checks the full Hessian or Jacobian (N tape calls). 0 with
   *R filled, or -1 with *ERR filled (a call failed). INPUTS are moved for
   the differences and put back. */
static inline int emit2_check(md_function *f, const long *dims, double *const *inputs,
                              const double *const *dirs, int hessian, Emit2Err *r, md_error *err) {
  memset(r, 0, sizeof *r);
  int nv = md_num_inputs(f), rc = -1;
  const double *const *in = (const double *const *)inputs;
  long outlen = md_output_rows(f, dims) * md_output_cols(f, dims), N = md_wrt_size(f, dims);
  int scalar = outlen == 1 && md_output_rows(f, NULL) == 1 && md_output_cols(f, NULL) == 1;
  double **a = calloc((size_t)nv + 1, sizeof *a), **b = calloc((size_t)nv + 1, sizeof *b);
  double **gp = calloc((size_t)nv + 1, sizeof *gp), **gm = calloc((size_t)nv + 1, sizeof *gm);
  double **u = calloc((size_t)nv + 1, sizeof *u);
  double *t1 = calloc((size_t)outlen, sizeof *t1), *t2 = calloc((size_t)outlen, sizeof *t2);
  long mlen = hessian ? (scalar ? N * N : outlen * N) : 1;
  double *m1 = calloc((size_t)(mlen ? mlen : 1), sizeof *m1), *m2 = calloc((size_t)(mlen ? mlen : 1), sizeof *m2);
  double *col = calloc((size_t)(N > outlen ? N : outlen) + 1, sizeof *col);
  for (int i = 0; i < nv; i++)
    if (md_input_is_wrt(f, i)) {
      long n = emit2_len(f, i, dims);
      a[i] = calloc((size_t)n, sizeof(double));
      b[i] = calloc((size_t)n, sizeof(double));
      gp[i] = calloc((size_t)n, sizeof(double));
      gm[i] = calloc((size_t)n, sizeof(double));
      u[i] = calloc((size_t)n, sizeof(double));
    }
  if (md_jvp(f, dims, in, dirs, t1, err) || md_tape_jvp(f, dims, in, dirs, NULL, t2, err))
    goto done;
  r->jvp = md_rel_err(t1, t2, outlen);
  if (scalar) {
    if (md_hvp(f, dims, in, dirs, a, err) || md_tape_hvp(f, dims, in, dirs, NULL, NULL, NULL, b, err))
      goto done;
    // Central differences of the gradient, the step scaled to the inputs.
    double big = 1, dbig = 0;
    for (int i = 0; i < nv; i++)
      for (long e = 0; e < emit2_len(f, i, dims); e++) {
        big = emit2_max(big, inputs[i][e] < 0 ? -inputs[i][e] : inputs[i][e]);
        if (a[i] && dirs[i])
          dbig = emit2_max(dbig, dirs[i][e] < 0 ? -dirs[i][e] : dirs[i][e]);
      }
    double t = 1e-5 * big / (dbig > 0 ? dbig : 1);
    for (int s = 0; s < 2; s++) {
      for (int i = 0; i < nv; i++)
        for (long e = 0; a[i] && dirs[i] && e < emit2_len(f, i, dims); e++)
          inputs[i][e] += (s ? -t : t) * dirs[i][e];
      int bad = md_grad(f, dims, in, NULL, s ? gm : gp, err);
      for (int i = 0; i < nv; i++)
        for (long e = 0; a[i] && dirs[i] && e < emit2_len(f, i, dims); e++)
          inputs[i][e] -= (s ? -t : t) * dirs[i][e];
      if (bad)
        goto done;
    }
    for (int i = 0; i < nv; i++) {
      long n = emit2_len(f, i, dims);
      if (!a[i])
        continue;
      r->hvp = emit2_max(r->hvp, md_rel_err(a[i], b[i], n));
      for (long e = 0; e < n; e++)
        gp[i][e] = (gp[i][e] - gm[i][e]) / (2 * t);
      r->hvp_fd = emit2_max(r->hvp_fd, md_rel_err(a[i], gp[i], n));
    }
  }
  if (hessian && N > 0) {
    if (scalar ? md_hessian(f, dims, in, m1, err) : md_jacobian(f, dims, in, m1, err))
      goto done;
    long rows = scalar ? N : outlen;
    for (long k = 0; k < N; k++) {
      emit2_unit(f, dims, u, k);
      if (scalar) {
        for (int i = 0; i < nv; i++)
          if (b[i])
            memset(b[i], 0, sizeof(double) * (size_t)emit2_len(f, i, dims));
        if (md_tape_hvp(f, dims, in, (const double *const *)u, NULL, NULL, NULL, b, err))
          goto done;
        long at = 0;
        for (int i = 0; i < nv; i++)
          for (long e = 0; b[i] && e < emit2_len(f, i, dims); e++)
            col[at++] = b[i][e];
      } else if (md_tape_jvp(f, dims, in, (const double *const *)u, NULL, col, err)) {
        goto done;
      }
      for (long row = 0; row < rows; row++)
        m2[row * N + k] = col[row];
    }
    if (scalar)
      r->hessian = md_rel_err(m1, m2, N * N);
    else
      r->jacobian = md_rel_err(m1, m2, outlen * N);
  }
  rc = 0;
done:
  for (int i = 0; i < nv; i++) {
    free(a[i]);
    free(b[i]);
    free(gp[i]);
    free(gm[i]);
    free(u[i]);
  }
  free(a);
  free(b);
  free(gp);
  free(gm);
  free(u);
  free(t1);
  free(t2);
  free(m1);
  free(m2);
  free(col);
  return rc;
}

#endif
