/*
 * check.c - the oracles a compiled function is held against, in the
 * library so that `matdiff check`, the tests and the benchmark use one
 * version of each: the runtime's tape (md_tape_vjp, through record.c) and
 * the one measure of disagreement (md_rel_err).
 */
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
  if (out)
    memcpy(out, mdrt_tape_value(t, h),
           sizeof *out * (size_t)(mdrt_tape_rows(t, h) * mdrt_tape_cols(t, h)));
  for (int i = 0; grads && i < c->nvars; i++) {
    if (!grads[i] || !c->vars[i].wrt)
      continue;
    const double *g = mdrt_tape_grad(t, leaves[i]);
    long len = md_input_rows(f, i, dims) * md_input_cols(f, i, dims);
    for (long k = 0; k < len; k++)
      grads[i][k] += g[k];
  }
  rc = 0;
done:
  mdrt_tape_free(t);
  free(leaves);
  return rc;
}
