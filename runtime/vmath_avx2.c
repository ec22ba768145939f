/*
 * vmath_avx2.c - the elementwise functions on blocks for CPUs with AVX2
 * and FMA, compiled with -mavx2 -mfma; vmath.c calls them only where the
 * CPU has both. The functions of libm are glibc's vector math library,
 * libmvec; those libm lacks (sigmoid, softplus, relu, sign) and fabs and
 * sqrt are arithmetic on the lanes, the formulas of standalone.c. The
 * last partial block is loaded and stored through a mask.
 *
 * vmath_lanes.h is the code, read once for four doubles and once for
 * eight floats.
 */
#include <immintrin.h>
#include "vmath.h"

/* libmvec's functions as the x86-64 vector ABI names them: _ZGVdN4v_exp
   is exp on AVX2's ('d') four lanes (N4) of a vector argument (v). glibc
   declares them only to gcc's vectoriser, and only under -ffast-math. */
#define LIBMVEC(fn) __m256d _ZGVdN4v_##fn(__m256d); __m256 _ZGVdN8v_##fn##f(__m256);
LIBMVEC(exp) LIBMVEC(log) LIBMVEC(log1p) LIBMVEC(sin) LIBMVEC(cos) LIBMVEC(tan) LIBMVEC(tanh)
LIBMVEC(asin) LIBMVEC(acos) LIBMVEC(atan) LIBMVEC(erf)

#define REAL double
#define V __m256d
#define W 4
#define NAME(name) name
#define MVEC(f) _ZGVdN4v_##f
#define OP(op) _mm256_##op##_pd
#define MASK(r) _mm256_cmpgt_epi64(_mm256_set1_epi64x(r), _mm256_set_epi64x(3, 2, 1, 0))
#include "vmath_lanes.h"
#undef REAL
#undef V
#undef W
#undef NAME
#undef MVEC
#undef OP
#undef MASK

#define REAL float
#define V __m256
#define W 8
#define NAME(name) name##_f
#define MVEC(fn) _ZGVdN8v_##fn##f
#define OP(op) _mm256_##op##_ps
#define MASK(r) \
  _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(r)), _mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0))
#include "vmath_lanes.h"
