/* api.h - private to the library: what md_function holds, shared by api.c
   (the compiled function and its calls) and check.c (the oracles). */
#ifndef MD_API_H
#define MD_API_H

#include <pthread.h>
#include <stdatomic.h>
#include "jit.h"
#include "md.h"

/* Once md_compile returns, calls only read what the function holds, but
   for two things: the workspaces that calls borrow (api.c), one in an
   atomic slot and the rest in a pool behind a lock, and the compilation's
   arena, which md_grad_formula's cache and md_flops's planning allocate
   in, behind another. */
struct md_function {
  Ctx ctx;           /* the compilation: DAG, names, gradients */
  char *src, *file;  /* copies of what md_compile was given */
  char **formulas;   /* per variable: the printed gradient, NULL if not wrt */
  char *csrc;        /* the emitted C */
  bool scalar;       /* the output is a scalar */
  Jit jit;
  _Atomic(struct Workspace *) idle; /* taken and given back without a lock */
  pthread_mutex_t pool_lock;
  struct Workspace *pool;      /* the other idle ones, the last given back first */
  pthread_mutex_t arena_lock;  /* for ctx.arena and formulas */
  char *numpy;       /* the NumPy module (emit_numpy), made when first asked for */
  char **second;     /* printed second-order formulas, made when first asked
                        for (api.c, "second order"): the JVP, then per
                        variable the HVP, the Hessian blocks, the Jacobians */
  struct Second2 *code2; /* the second-order functions, compiled when first
                            called (api.c), under arena_lock */
};

/* The checks every call of a compiled function starts with: F, DIMS (when
   it has sizes) and every input are there. false with *ERR filled. */
bool api_call_ok(md_function *f, const long *dims, const double *const *inputs, md_error *err);
/* Every size is positive and no value's size, nor the workspace, overflows. */
bool api_sizes_ok(md_function *f, const long *dims, md_error *err);
/* N printed, in F's arena (about LIMIT bytes at most, 0: no limit), under
   the lock that guards it; NULL if out of memory. */
char *api_print(md_function *f, const Node *n, size_t limit);
/* The elements of a value of shape S at DIMS: -1 if a size is not positive,
   or the count, or its bytes, does not fit a long. */
long api_len(Shape s, const long *dims);

#endif
