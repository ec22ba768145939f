/*
 * optab.c - the op table of ops.h, column by column, and the libm functions
 * emitted code may call (those of ops.h's elementwise functions and of
 * runtime/kernels.def). Nothing here is written out by hand: a new line in
 * either file is a new entry in every table below.
 */
#include <string.h>
#include "md.h"

const char *const op_spelling[OP_COUNT] = {
#define OP(name, spelling, ...) [OP_##name] = spelling,
#include "ops.h"
};

const int op_arity[OP_COUNT] = {
#define OP(name, spelling, arity, ...) [OP_##name] = arity,
#include "ops.h"
};

const int op_prec[OP_COUNT] = {
#define OP(name, spelling, arity, prec, ...) [OP_##name] = prec,
#include "ops.h"
};

const OpClass op_class[OP_COUNT] = {
#define OP(name, spelling, arity, prec, class, ...) [OP_##name] = SC_##class,
#include "ops.h"
};

const char *const op_latex[OP_COUNT] = {
#define OP(name, spelling, arity, prec, class, tape, latex, ...) [OP_##name] = latex,
#include "ops.h"
};

const Domain op_domain[OP_COUNT][2] = {
#define OP(name, spelling, arity, prec, class, tape, latex, flags, dom_a, dom_b, ...) \
  [OP_##name] = {DOM_##dom_a, DOM_##dom_b},
#include "ops.h"
};

const char *const op_numpy[OP_COUNT] = {
#define OP(name, spelling, arity, prec, class, tape, latex, flags, dom_a, dom_b, numpy) \
  [OP_##name] = numpy,
#include "ops.h"
};

// An elementwise function's flags say whether its C function is a kernel.
const unsigned op_flags[OP_COUNT] = {
#define OP(name, spelling, arity, prec, class, tape, latex, flags, ...) [OP_##name] = flags,
#define MAP(name, spelling, cfn, ...) [OP_##name] = cfn,
#define LIBM(d, f) 0
#define RT(n) OPF_KERNEL
#include "ops.h"
#undef LIBM
#undef RT
};

const char *const op_cfunc[OP_COUNT] = {
#define OP(...)
#define MAP(name, spelling, cfn, ...) [OP_##name] = cfn,
#define LIBM(d, f) #d
#define RT(n) "mdrt_" #n
#include "ops.h"
#undef LIBM
#undef RT
};

const char *const op_cfunc_f[OP_COUNT] = {
#define OP(...)
#define MAP(name, spelling, cfn, ...) [OP_##name] = cfn,
#define LIBM(d, f) #f
#define RT(n) "mdrt_" #n "_f"
#include "ops.h"
#undef LIBM
#undef RT
};

/* ---- libm --------------------------------------------------------------- */

static const struct {
  const char *name, *fname;
} libm[] = {
#define OP(...)
#define MAP(name, spelling, cfn, ...) cfn
#define LIBM(d, f) {#d, #f},
#define RT(n)
#include "ops.h"
#undef LIBM
#undef RT
#define MDRT_KERNEL(...)
#define MDRT_LIBM(d, f, arity, who) {#d, #f},
#include "kernels.def"
#undef MDRT_KERNEL
#undef MDRT_LIBM
};

bool optab_is_libm(const char *s, size_t n, bool flt) {
  for (size_t i = 0; i < sizeof libm / sizeof *libm; i++)
    if ((strlen(libm[i].name) == n && !strncmp(libm[i].name, s, n)) ||
        (flt && strlen(libm[i].fname) == n && !strncmp(libm[i].fname, s, n)))
      return true;
  return false;
}

// Those the emitter writes: the elementwise functions' and kernels.def's
// EMIT lines (a few twice: a repeated prototype is harmless).
#define PARAMS_1 "(double)"
#define PARAMS_2 "(double, double)"
const char optab_libm_prototypes[] =
#define OP(...)
#define MAP(name, spelling, cfn, ...) cfn
#define LIBM(d, f) "double " #d PARAMS_1 ";\n"
#define RT(n)
#include "ops.h"
#undef LIBM
#undef RT
#define MDRT_KERNEL(...)
#define MDRT_LIBM(d, f, arity, who) PROTO_##who(d, arity)
#define PROTO_EMIT(d, arity) "double " #d PARAMS_##arity ";\n"
#define PROTO_LOOPS(d, arity)
#include "kernels.def"
#undef MDRT_KERNEL
#undef MDRT_LIBM
    "\n";
