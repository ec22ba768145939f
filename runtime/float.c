/*
 * float.c - the runtime's single-precision kernels, for the C that
 * `matdiff compile --float` writes: each mdrt_X_f of kernels.def means what
 * mdrt_X means. Those kernels.def marks LOOP are the loops of standalone.c
 * read in float (<tgmath.h> picks expf for exp), wrapped; the matrix
 * product goes to cblas_sgemm and cblas_sgemv, the LAPACK ones to
 * linalg.c compiled in float (linalg_f.c).
 *
 * matdiff_rt.h is not included: standalone.c's loops keep their double
 * names here, in float. The prototypes come from kernels.def instead.
 */
#include <stdlib.h>
#include <tgmath.h>
#ifndef MDRT_NO_BLAS
#include <cblas.h>
#endif

#define mdrt_real float
#define MDRT_KERNEL(ret, name, params, args, dbl, flt) MDRT_TWIN_##flt(ret, name, params, args)
#define MDRT_LIBM(name, fname, arity, who)
#define MDRT_RETURN_void
#define MDRT_RETURN_int return
#define MDRT_RETURN_float return

// The prototypes.
#define MDRT_TWIN_LOOP(ret, name, params, args) ret mdrt_##name##_f params;
#define MDRT_TWIN_OWN(ret, name, params, args) ret mdrt_##name##_f params;
#define MDRT_TWIN_LAPACK(ret, name, params, args) ret mdrt_##name##_f params;
#define MDRT_TWIN_NONE(ret, name, params, args)
#include "kernels.def"
#undef MDRT_TWIN_LOOP
#undef MDRT_TWIN_OWN
#undef MDRT_TWIN_LAPACK

// With LAPACK, the loops that standalone.c builds on a LAPACK kernel call
// it by its double name: that name forwards to the float kernel here.
#ifndef MDRT_NO_BLAS
#define MDRT_HAVE_LAPACK
#define MDRT_TWIN_LOOP(ret, name, params, args)
#define MDRT_TWIN_OWN(ret, name, params, args)
#define MDRT_TWIN_LAPACK(ret, name, params, args) \
  static inline ret mdrt_##name params { MDRT_RETURN_##ret mdrt_##name##_f args; }
#include "kernels.def"
#undef MDRT_TWIN_LOOP
#undef MDRT_TWIN_OWN
#undef MDRT_TWIN_LAPACK
#endif

#define double float
#include "standalone.c"
#undef double

// A wrapper for each twin that is a loop of standalone.c.
#define MDRT_TWIN_LOOP(ret, name, params, args) \
  ret mdrt_##name##_f params { MDRT_RETURN_##ret mdrt_##name args; }
#define MDRT_TWIN_OWN(ret, name, params, args)
#ifdef MDRT_HAVE_LAPACK
#define MDRT_TWIN_LAPACK(ret, name, params, args)
#else
#define MDRT_TWIN_LAPACK MDRT_TWIN_LOOP
#endif
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
