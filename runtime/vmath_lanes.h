/*
 * vmath_lanes.h - vmath_avx2.c's code for one precision: REAL numbers, W
 * of them in a vector V; NAME(x) names its functions, MVEC(f) is libmvec's
 * f, OP(op) the intrinsic, MASK(r) the mask of the first r lanes.
 */

// The formulas of standalone.c, lane by lane: z = exp(-|x|).
static inline V NAME(v_fabs)(V v) {
  return OP(andnot)(OP(set1)(-0.0), v);
}

static inline V NAME(v_z)(V v) {
  return MVEC(exp)(OP(sub)(OP(setzero)(), NAME(v_fabs)(v)));
}

// x >= 0 ? 1/(1 + z) : z/(1 + z); NaN takes the second, which is NaN.
static inline V NAME(v_sigmoid_z)(V v, V z) {
  V d = OP(add)(OP(set1)(1), z);
  return OP(blendv)(OP(div)(OP(set1)(1), d), OP(div)(z, d),
                    OP(cmp)(v, OP(setzero)(), _CMP_NGE_UQ));
}

// max(x, 0) + log1p(z); maxpd gives its second operand, 0, for a NaN x.
static inline V NAME(v_softplus_z)(V v, V z) {
  return OP(add)(OP(max)(v, OP(setzero)()), MVEC(log1p)(z));
}

static inline V NAME(v_sigmoid)(V v) {
  return NAME(v_sigmoid_z)(v, NAME(v_z)(v));
}

static inline V NAME(v_softplus)(V v) {
  return NAME(v_softplus_z)(v, NAME(v_z)(v));
}

// x where x > 0 or x is NaN, else +0.
static inline V NAME(v_relu)(V v) {
  return OP(and)(v, OP(cmp)(v, OP(setzero)(), _CMP_NLE_UQ));
}

// 1, -1, +0 for either zero, and NaN for NaN.
static inline V NAME(v_sign)(V v) {
  V zero = OP(setzero)();
  return OP(or)(OP(or)(OP(and)(OP(cmp)(v, zero, _CMP_GT_OQ), OP(set1)(1)),
                       OP(and)(OP(cmp)(v, zero, _CMP_LT_OQ), OP(set1)(-1))),
                OP(and)(OP(cmp)(v, v, _CMP_UNORD_Q), v));
}

static inline V NAME(v_sqrt)(V v) {
  return OP(sqrt)(v);
}

#define MVEC_LANES(f) \
  static inline V NAME(v_##f)(V v) { return MVEC(f)(v); }
MVEC_LANES(exp)
MVEC_LANES(log)
MVEC_LANES(sin)
MVEC_LANES(cos)
MVEC_LANES(tan)
MVEC_LANES(tanh)
MVEC_LANES(asin)
MVEC_LANES(acos)
MVEC_LANES(atan)
MVEC_LANES(erf)
#undef MVEC_LANES

#define MDRT_KERNEL(...)
#define MDRT_LIBM(...)
#define MDRT_VMAP(f, from)                                             \
  void NAME(mdrt_avx2_v##f)(long n, const REAL *x, REAL *y) {          \
    long i = 0;                                                        \
    for (; i + W <= n; i += W)                                         \
      OP(storeu)(y + i, NAME(v_##f)(OP(loadu)(x + i)));                \
    if (i < n) {                                                       \
      __m256i m = MASK(n - i);                                         \
      OP(maskstore)(y + i, m, NAME(v_##f)(OP(maskload)(x + i, m)));    \
    }                                                                  \
  }
#include "kernels.def"
#undef MDRT_KERNEL
#undef MDRT_LIBM
#undef MDRT_VMAP

static inline void NAME(both)(V v, REAL *sp, REAL *sg, __m256i *m) {
  V z = NAME(v_z)(v);
  if (m) {
    OP(maskstore)(sp, *m, NAME(v_softplus_z)(v, z));
    OP(maskstore)(sg, *m, NAME(v_sigmoid_z)(v, z));
  } else {
    OP(storeu)(sp, NAME(v_softplus_z)(v, z));
    OP(storeu)(sg, NAME(v_sigmoid_z)(v, z));
  }
}

void NAME(mdrt_avx2_vsoftplus_sigmoid)(long n, const REAL *x, REAL *sp, REAL *sg) {
  long i = 0;
  for (; i + W <= n; i += W)
    NAME(both)(OP(loadu)(x + i), sp + i, sg + i, 0);
  if (i < n) {
    __m256i m = MASK(n - i);
    NAME(both)(OP(maskload)(x + i, m), sp + i, sg + i, &m);
  }
}
