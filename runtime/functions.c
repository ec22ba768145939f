/*
 * functions.c - the kernels whose one definition is a loop of
 * standalone.c (kernels.def marks them LOOP), exported by the library:
 * the elementwise functions libm lacks, the stable row-wise logsumexp and
 * softmax, the vector loops, the workspace allocator, what is read off a
 * factorisation (det, logdet), and, without BLAS, the matrix products,
 * factorisations and solves (kernels.def marks them BLAS). Compiled C,
 * the tape and the C that --standalone writes thus run the same code.
 *
 * matdiff_rt.h is not included: it declares kernels that standalone.c
 * keeps static. The prototypes of the exported ones come from kernels.def
 * here instead.
 */
#include <math.h>
#include <stdlib.h>

#define mdrt_real double
#define MDRT_KERNEL(ret, name, params, args, dbl, flt) MDRT_EXPORT_##dbl(ret, name, params)
#define MDRT_EXPORT_LOOP(ret, name, params) ret mdrt_##name params;
#define MDRT_EXPORT_OWN(ret, name, params)
#define MDRT_EXPORT_BLAS(ret, name, params) ret mdrt_##name params;
#define MDRT_LIBM(name, fname, arity, who)
#include "kernels.def"
#undef mdrt_real
#undef MDRT_KERNEL
#undef MDRT_LIBM

// With BLAS, linalg.c defines the BLAS kernels: standalone.c's loops for
// them are left out, and the loops built on them call linalg.c's.
#ifndef MDRT_NO_BLAS
#define MDRT_HAVE_BLAS
#endif
#ifdef MDRT_VMATH_AVX2
#include "vmath.h"
#define MDRT_VECTOR(name, args) MDRT_AVX2(name, args)
#endif
#define MDRT_INLINE
#include "standalone.c"
