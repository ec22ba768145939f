/* jit.h - libtcc behind three entry points (see jit.c). */
#ifndef MD_JIT_H
#define MD_JIT_H

#include <stdbool.h>
#include "diag.h"

typedef struct Jit {
  struct TCCState *state;
  long (*ws_size)(const long *dims);
  /* Both return NULL, or a message such as "inv: the matrix is singular". */
  const char *(*eval)(const long *dims, const double *const *in, double *out, void *ws);
  const char *(*grad)(const long *dims, const double *const *in, const double *seed, double *out,
                      double *const *g, void *ws);
} Jit;

/* Compile CSRC (emitted with EmitOpts.jit and name PREFIX). */
bool jit_compile(Jit *j, const char *csrc, const char *prefix, md_error *err);
void jit_free(Jit *j);
/* The address of NAME in J's compiled code, or NULL. */
void *jit_symbol(Jit *j, const char *name);

#endif
