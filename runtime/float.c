/*
 * float.c - the runtime's single-precision kernels, for the C that
 * `matdiff compile --float` writes: each mdrt_X_f of kernels.def means what
 * mdrt_X means. Those kernels.def marks LOOP are the loops of standalone.c
 * read in float (<tgmath.h> picks expf for exp), wrapped; the matrix
 * product goes to cblas_sgemm.
 *
 * matdiff_rt.h is not included: standalone.c's loops keep their double
 * names here, in float. The prototypes come from kernels.def instead.
 */
#include <stdlib.h>
#include <tgmath.h>
#ifndef MDRT_NO_BLAS
#include <cblas.h>
#endif

#define double float
#include "standalone.c"
#undef double

#define mdrt_real float
#define MDRT_KERNEL(ret, name, params, args, dbl, flt) MDRT_TWIN_##flt(ret, name, params, args)
#define MDRT_LIBM(name, fname, arity, who)
// The prototypes, then a wrapper for each LOOP twin (void ones return nothing).
#define MDRT_TWIN_LOOP(ret, name, params, args) ret mdrt_##name##_f params;
#define MDRT_TWIN_OWN(ret, name, params, args) ret mdrt_##name##_f params;
#define MDRT_TWIN_NONE(ret, name, params, args)
#include "kernels.def"
#undef MDRT_TWIN_LOOP
#define MDRT_TWIN_LOOP(ret, name, params, args) \
  ret mdrt_##name##_f params { MDRT_RETURN_##ret mdrt_##name args; }
#define MDRT_RETURN_void
#define MDRT_RETURN_int return
#define MDRT_RETURN_float return
#undef MDRT_TWIN_OWN
#define MDRT_TWIN_OWN(ret, name, params, args)
#include "kernels.def"

void mdrt_gemm_f(int transa, int transb, long m, long n, long k, float alpha, const float *A,
                 const float *B, float beta, float *C) {
#ifdef MDRT_NO_BLAS
  mdrt_gemm(transa, transb, m, n, k, alpha, A, B, beta, C);
#else
  if (m <= 0 || n <= 0)
    return;
  if (k <= 0) {
    mdrt_gemm(transa, transb, m, n, 0, alpha, A, B, beta, C);
    return;
  }
  cblas_sgemm(CblasRowMajor, transa ? CblasTrans : CblasNoTrans, transb ? CblasTrans : CblasNoTrans,
              (int)m, (int)n, (int)k, alpha, A, transa ? (int)m : (int)k, B, transb ? (int)k : (int)n,
              beta, C, (int)n);
#endif
}
