/* api.h - private to the library: what md_function holds, shared by api.c
   (the compiled function and its calls) and check.c (the oracles). */
#ifndef MD_API_H
#define MD_API_H

#include "jit.h"
#include "md.h"

struct md_function {
  Ctx ctx;           /* the compilation: DAG, names, gradients */
  char *src, *file;  /* copies of what md_compile was given */
  char **formulas;   /* per variable: the printed gradient, NULL if not wrt */
  char *csrc;        /* the emitted C */
  Jit jit;
  void *ws;          /* the workspace of the last call ... */
  long *wsdims;      /* ... and the sizes it was made for */
  char **second;     /* printed second-order formulas, made when first asked
                        for (api.c, "second order"): the JVP, then per
                        variable the HVP, the Hessian blocks, the Jacobians */
};

/* The checks every call of a compiled function starts with: F, DIMS (when
   it has sizes) and every input are there. false with *ERR filled. */
bool api_call_ok(md_function *f, const long *dims, const double *const *inputs, md_error *err);
/* Every size is positive and no value's size, nor the workspace, overflows. */
bool api_sizes_ok(md_function *f, const long *dims, md_error *err);

#endif
