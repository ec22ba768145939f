/*
 * vmath.h - the vector code of kernels.def's elementwise functions on
 * blocks, for the library's loops (functions.c, float.c): the prototypes
 * of vmath_avx2.c's mdrt_avx2_v<f> and mdrt_avx2_v<f>_f, hidden inside the
 * library, and MDRT_AVX2, which hands standalone.c's loop a block's worth
 * of them where the CPU has AVX2 and FMA. The CPU is asked on each call:
 * __builtin_cpu_supports reads a word libgcc fills in at startup, nothing
 * next to a block.
 */
#ifndef MDRT_VMATH_H
#define MDRT_VMATH_H

#define MDRT_HIDDEN __attribute__((visibility("hidden")))
#define MDRT_KERNEL(...)
#define MDRT_LIBM(...)
#define MDRT_VMAP(f, from)                                                      \
  MDRT_HIDDEN void mdrt_avx2_v##f(long n, const double *x, double *y);          \
  MDRT_HIDDEN void mdrt_avx2_v##f##_f(long n, const float *x, float *y);
#include "kernels.def"
#undef MDRT_KERNEL
#undef MDRT_LIBM
#undef MDRT_VMAP
MDRT_HIDDEN void mdrt_avx2_vsoftplus_sigmoid(long n, const double *x, double *sp, double *sg);
MDRT_HIDDEN void mdrt_avx2_vsoftplus_sigmoid_f(long n, const float *x, float *sp, float *sg);


#define MDRT_AVX2(name, args)                                                       \
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {            \
    mdrt_avx2_##name args;                                                          \
    return;                                                                         \
  } else                                                                            \
    (void)0

#endif
