/*
 * float.c - the runtime's single-precision kernels, for the C that
 * `matdiff compile --float` writes: each mdrt_X_f of kernels.def means what
 * mdrt_X means. Those kernels.def marks LOOP are the loops of standalone.c
 * read in float (<tgmath.h> picks expf for exp), wrapped; those marked
 * BLAS are linalg.c compiled in float (linalg_f.c), or without BLAS
 * standalone.c's loops too.
 *
 * matdiff_rt.h is not included: standalone.c's loops keep their double
 * names here, in float. The prototypes come from kernels.def instead.
 */
#include <stdlib.h>
#include <tgmath.h>
#ifdef MDRT_VMATH_AVX2
#include "vmath.h"
#define MDRT_VECTOR(name, args) MDRT_AVX2(name##_f, args)
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
#define MDRT_TWIN_BLAS(ret, name, params, args) ret mdrt_##name##_f params;
#define MDRT_TWIN_NONE(ret, name, params, args)
#include "kernels.def"
#undef MDRT_TWIN_LOOP
#undef MDRT_TWIN_OWN
#undef MDRT_TWIN_BLAS

// With BLAS, the loops that standalone.c builds on a BLAS kernel call it by
// its double name: that name forwards to the float kernel here.
#ifndef MDRT_NO_BLAS
#define MDRT_HAVE_BLAS
#define MDRT_TWIN_LOOP(ret, name, params, args)
#define MDRT_TWIN_OWN(ret, name, params, args)
#define MDRT_TWIN_BLAS(ret, name, params, args) \
  static inline ret mdrt_##name params { MDRT_RETURN_##ret mdrt_##name##_f args; }
#include "kernels.def"
#undef MDRT_TWIN_LOOP
#undef MDRT_TWIN_OWN
#undef MDRT_TWIN_BLAS
#endif

#define MDRT_BLOCK_SUMS
#define double float
#include "standalone.c"
#undef double

// A wrapper for each twin that is a loop of standalone.c.
#define MDRT_TWIN_LOOP(ret, name, params, args) \
  ret mdrt_##name##_f params { MDRT_RETURN_##ret mdrt_##name args; }
#define MDRT_TWIN_OWN(ret, name, params, args)
#ifdef MDRT_HAVE_BLAS
#define MDRT_TWIN_BLAS(ret, name, params, args)
#else
#define MDRT_TWIN_BLAS MDRT_TWIN_LOOP
#endif
#include "kernels.def"
