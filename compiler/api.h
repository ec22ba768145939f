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
};

/* The checks every call of a compiled function starts with: F, DIMS (when
   it has sizes) and every input are there. false with *ERR filled. */
bool api_call_ok(md_function *f, const long *dims, const double *const *inputs, md_error *err);
/* Every size is positive and no value's size, nor the workspace, overflows. */
bool api_sizes_ok(md_function *f, const long *dims, md_error *err);
/* The elements of a value of shape S at DIMS: -1 if a size is not positive,
   or the count, or its bytes, does not fit a long. */
long api_len(Shape s, const long *dims);

#endif
