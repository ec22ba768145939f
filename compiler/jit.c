/*
 * jit.c - C source to machine code in memory with libtcc. The emitted code
 * is compiled after the runtime's header, with no C library: the runtime's
 * kernels and the few libm functions it calls are handed to libtcc as
 * symbols, so nothing is looked up on disk but libtcc's own. Both lists
 * come from runtime/kernels.def and compiler/ops.h.
 *
 * libtcc 0.9.27 keeps global state while it compiles, so every call into it
 * holds one lock: two threads may compile at once, one after the other
 * inside libtcc. That lock is the only static mutable state in matdiff.
 */
#include <libtcc.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "jit.h"
#include "matdiff_rt.h"

extern const char md_rt_header[];  /* runtime/matdiff_rt.h, built into the library */

static pthread_mutex_t tcc_lock = PTHREAD_MUTEX_INITIALIZER;

// What emitted code may call: the kernels of kernels.def, the libm
// functions of ops.h's elementwise functions and kernels.def's EMIT lines
// (a few twice, which libtcc takes).
static const struct {
  const char *name;
  const void *addr;
} symbols[] = {
#define mdrt_real double
#define MDRT_KERNEL(ret, name, ...) {"mdrt_" #name, (const void *)mdrt_##name},
#define MDRT_LIBM(name, fname, arity, who) SYMBOL_##who(name)
#define SYMBOL_EMIT(name) {#name, (const void *)name},
#define SYMBOL_LOOPS(name)
#include "kernels.def"
#undef mdrt_real
#undef MDRT_KERNEL
#undef MDRT_LIBM
#define OP(...)
#define MAP(name, spelling, cfn, ...) cfn
#define LIBM(d, f) {#d, (const void *)d},
#define RT(n)
#include "ops.h"
#undef LIBM
#undef RT
};

// libtcc reports through a callback; keep its first message.
static void on_error(void *opaque, const char *msg) {
  md_error *err = opaque;
  if (err && !err->message[0])
    diag_plain(err, "internal error: libtcc: %s", msg);
}

bool jit_compile(Jit *j, const char *csrc, const char *prefix, md_error *err) {
  memset(j, 0, sizeof *j);
  pthread_mutex_lock(&tcc_lock);
  TCCState *s = tcc_new();
  bool ok = s != NULL;
  if (ok) {
    tcc_set_error_func(s, err, on_error);
    tcc_set_options(s, "-nostdlib");
    ok = tcc_set_output_type(s, TCC_OUTPUT_MEMORY) == 0;
  }
  for (size_t i = 0; ok && i < sizeof symbols / sizeof *symbols; i++)
    ok = tcc_add_symbol(s, symbols[i].name, symbols[i].addr) == 0;
  // One translation unit: the runtime's prototypes, then the code.
  size_t nh = strlen(md_rt_header), nc = strlen(csrc);
  char *unit = ok ? malloc(nh + nc + 1) : NULL;
  if (unit) {
    memcpy(unit, md_rt_header, nh);
    memcpy(unit + nh, csrc, nc + 1);
  }
  ok = ok && unit && tcc_compile_string(s, unit) == 0;
  free(unit);
  ok = ok && tcc_relocate(s, TCC_RELOCATE_AUTO) >= 0;
  if (ok) {
    char name[300];
    snprintf(name, sizeof name, "%s_entry_ws", prefix);
    j->ws_size = (long (*)(const long *))tcc_get_symbol(s, name);
    snprintf(name, sizeof name, "%s_entry_eval", prefix);
    j->eval = (const char *(*)(const long *, const double *const *, double *, void *))
        tcc_get_symbol(s, name);
    snprintf(name, sizeof name, "%s_entry_grad", prefix);
    j->grad = (const char *(*)(const long *, const double *const *, const double *, double *,
                               double *const *, void *))tcc_get_symbol(s, name);
    ok = j->ws_size && j->eval && j->grad;
  }
  if (!ok) {
    if (!s)
      diag_plain(err, "out of memory");
    else
      diag_plain(err, "internal error: libtcc could not compile the emitted code");
    if (s)
      tcc_delete(s);
    s = NULL;
  }
  j->state = s;
  pthread_mutex_unlock(&tcc_lock);
  return ok;
}

void jit_free(Jit *j) {
  if (!j->state)
    return;
  pthread_mutex_lock(&tcc_lock);
  tcc_delete(j->state);
  pthread_mutex_unlock(&tcc_lock);
  j->state = NULL;
}

void *jit_symbol(Jit *j, const char *name) {
  if (!j->state)
    return NULL;
  pthread_mutex_lock(&tcc_lock);
  void *p = tcc_get_symbol(j->state, name);
  pthread_mutex_unlock(&tcc_lock);
  return p;
}
