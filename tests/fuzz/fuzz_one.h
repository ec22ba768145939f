/*
 * fuzz_one.h - one source text through every stage of matdiff. The libFuzzer
 * harness (tests/fuzz/fuzz_md.c) and the regression test that replays what it
 * found (tests/test_fuzz_regress.c) both call fuzz_one(), so a saved input is
 * replayed exactly as the fuzzer ran it.
 *
 *   1. the front half on a Ctx of its own: parse, shapes, reverse mode,
 *      simplify (md_front), then every gradient printed and the C emitted in
 *      both forms, the file `matdiff compile` writes and the JIT's;
 *   2. with FUZZ_JIT, md_compile, which runs it all again and hands the C to
 *      libtcc; where that compiles and every value in the DAG is small at the
 *      chosen sizes, md_eval, md_grad and md_vjp on deterministic inputs, and
 *      the tape oracle on the same DAG, twice: at sizes taken from the source
 *      text (1 to 3) and with every size 1.
 *
 * Nothing here judges the numbers. What is checked is what the library
 * promises on every input: no crash, no leak, no hang, no sanitizer report
 * (the harness's build sees those), and every failure reported through
 * md_error with a message that is not an "internal error" (the library's
 * word for its own bugs). A broken promise calls abort(), which both the
 * fuzzer and Criterion see.
 *
 * Everything is static: each includer uses the whole of it, once.
 */
#ifndef MD_FUZZ_ONE_H
#define MD_FUZZ_ONE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "api.h"
#include "matdiff_rt.h"

/* fuzz_one's flags */
enum {
  FUZZ_JIT = 1,       /* also md_compile (libtcc) and the calls */
  FUZZ_STRICT = 2,    /* no workaround for open bugs (below) */
};

/* The calls are made only when every value in the DAG, at the chosen sizes,
   has at most this many rows or columns and elements: the point is to run
   each path, not to multiply large matrices. */
#define FUZZ_MAX_SIDE 64
#define FUZZ_MAX_ELEMS 4096

// A broken promise: say which and stop, so the input is kept.
static void fuzz_fail(const char *what, const char *detail) {
  fprintf(stderr, "fuzz_one: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  abort();
}

// An md_error after a failure: a message, both strings terminated within
// their arrays, and no "internal error", which the library reserves for
// its own bugs (libtcc refusing the emitted C, a gradient missing).
static int fuzz_known_internal(const char *message, int flags);

static void fuzz_check_error(const md_error *err, const char *where, int flags) {
  if (!memchr(err->message, '\0', sizeof err->message) || !memchr(err->diag, '\0', sizeof err->diag))
    fuzz_fail("md_error holds an unterminated string after", where);
  if (!err->message[0])
    fuzz_fail("failed with no message in md_error:", where);
  if (err->line < 0 || err->col < 0 || (err->line > 0) != (err->col > 0))
    fuzz_fail("md_error has an impossible position after", where);
  if (strstr(err->message, "internal error") && !fuzz_known_internal(err->message, flags))
    fuzz_fail(where, err->message);
}

/* ---- workarounds for open bugs ------------------------------------------- */

/* Known bugs that would otherwise stop the fuzzer at every input reaching
   them are stepped around here, each with the regression input that holds
   it (tests/fuzz/regress/). Delete a workaround when its bug is fixed.
   FUZZ_STRICT runs everything regardless, as the regression test does. */

/* regress/print_exponential.expr: print.c prints the DAG as a tree, so a
   value used twice is printed twice and `t1 = x*x; t2 = t1*t1; ...` or
   `A^1000000` prints in exponential time and memory, from print_str in
   md_compile (the formulas) and in emit_c (the comments). The front half
   is fine, so this measures what printing would expand to and skips the
   printers, the emitter and the JIT beyond FUZZ_MAX_TREE nodes. */
#define FUZZ_MAX_TREE 100000

/* regress/tcc_vstack.expr: emit_c fuses a chain of elementwise calls into
   one C expression however deep it is, and from about 256 levels, as in
   sum(sin(sin(...(A)...))), libtcc stops with "memory full (vstack)", so
   md_compile fails with an internal error on a valid program. */
static int fuzz_known_internal(const char *message, int flags) {
  (void)message;
  (void)flags;
  return 0;  /* fixed: emit_c bounds the depth of a fused loop's expression */
}

/* regress/emit_mdrt_name.expr: emit_c's claim() loops forever on a name
   that starts with "mdrt_" (it appends '_' to a name is_taken() always
   takes), so the emitter and the JIT are skipped for such a source. */
static int fuzz_hangs_emit(const char *src, int flags) {
  (void)src;
  (void)flags;
  return 0;  /* fixed: claim() renames mdrt_x to u_mdrt_x */
}

static long fuzz_tree(const Node *n, long *memo) {
  if (!n)
    return 0;
  if (!memo[n->id]) {
    long t = 1 + fuzz_tree(n->a, memo) + fuzz_tree(n->b, memo);
    memo[n->id] = t < FUZZ_MAX_TREE ? t : FUZZ_MAX_TREE;
  }
  return memo[n->id];
}

static int fuzz_prints_too_much(const Ctx *c) {
  long *memo = calloc((size_t)c->nnodes + 1, sizeof *memo);
  if (!memo)
    fuzz_fail("out of memory in the harness", NULL);
  long t = fuzz_tree(c->out, memo);
  for (int i = 0; i < c->nvars; i++)
    if (c->vars[i].wrt)
      t += fuzz_tree(c->grads[i], memo);
  free(memo);
  return t >= FUZZ_MAX_TREE;
}

/* ---- 1. the front half --------------------------------------------------- */

// Returns whether to go on to the JIT.
static int fuzz_front(const char *src, int flags) {
  md_error err;
  Ctx c;
  int go_on = 1;
  ctx_init(&c, src, (long)strlen(src), "fuzz.expr", &err);
  if (!md_front(&c)) {
    fuzz_check_error(&err, "md_front", flags);
  } else if (fuzz_hangs_emit(src, flags) || (!(flags & FUZZ_STRICT) && fuzz_prints_too_much(&c))) {
    go_on = 0;
  } else {
    for (int i = 0; i < c.nvars; i++)
      if (c.vars[i].wrt && !print_str(&c, c.grads[i]))
        fuzz_fail("print_str returned NULL", c.vars[i].name);
    // The file `matdiff compile` writes; the JIT's form too when md_compile
    // will not make it.
    for (int jit = 0; jit <= !(flags & FUZZ_JIT); jit++) {
      Buf code = {0};
      EmitOpts o = {.name = "fz", .jit = jit};
      if (!emit_c(&c, &o, &code) || !code.s)
        fuzz_fail("emit_c failed", jit ? "the JIT's form" : "the file form");
      buf_free(&code);
    }
  }
  ctx_free(&c);
  return go_on;
}

/* ---- 2. the JIT and the calls -------------------------------------------- */

// Every node of the DAG (the value's, the gradients' and whatever the
// stages made) is at least 1x1 and, for the calls to be made, small.
static int fuzz_small(const md_function *f, const long *dims) {
  const Ctx *c = &f->ctx;
  int small = 1;
  for (int i = 0; i < c->tabsize; i++)
    for (const Node *n = c->table[i]; n; n = n->next) {
      long r = dim_value(n->shape.r, dims), k = dim_value(n->shape.c, dims);
      if (r < 1 || k < 1)
        fuzz_fail("a node of the DAG has a size below 1", op_spelling[n->op]);
      if (r > FUZZ_MAX_SIDE || k > FUZZ_MAX_SIDE || r * k > FUZZ_MAX_ELEMS)
        small = 0;
    }
  return small;
}

// A small deterministic generator (splitmix64), for inputs and seeds.
static double fuzz_rand(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return (double)(z >> 11) / 9007199254740992.0 * 2 - 1;  // [-1, 1)
}

// md_eval, md_grad and md_vjp, then the tape, at sizes DIMS. Errors at run
// time (a singular matrix) are fine as long as they are reported.
static void fuzz_calls(md_function *f, const long *dims, uint64_t seed, int flags) {
  int n = md_num_inputs(f);
  long outlen = md_output_rows(f, dims) * md_output_cols(f, dims);
  double **in = calloc((size_t)n + 1, sizeof *in), **g = calloc((size_t)n + 1, sizeof *g);
  double *out = calloc((size_t)outlen, sizeof *out), *vseed = calloc((size_t)outlen, sizeof *vseed);
  int *leaves = calloc((size_t)n + 1, sizeof *leaves);
  mdrt_tape *t = mdrt_tape_new();
  if (!in || !g || !out || !vseed || !leaves || !t)
    fuzz_fail("out of memory in the harness", NULL);
  for (int i = 0; i < n; i++) {
    long len = md_input_rows(f, i, dims) * md_input_cols(f, i, dims);
    if (len < 1)
      fuzz_fail("an input has no elements", md_input_name(f, i));
    if (!(in[i] = malloc(sizeof(double) * (size_t)len)) ||
        !(g[i] = calloc((size_t)len, sizeof(double))))
      fuzz_fail("out of memory in the harness", NULL);
    for (long k = 0; k < len; k++)
      in[i][k] = fuzz_rand(&seed);
    if (!md_input_name(f, i) || (md_input_is_wrt(f, i) && !md_grad_formula(f, i)))
      fuzz_fail("an input has no name or no formula", NULL);
  }
  for (long k = 0; k < outlen; k++)
    vseed[k] = fuzz_rand(&seed);
  const double *const *inputs = (const double *const *)in;
  md_error err;
  if (md_eval(f, dims, inputs, out, &err))
    fuzz_check_error(&err, "md_eval", flags);
  if (md_grad(f, dims, inputs, out, g, &err))
    fuzz_check_error(&err, "md_grad", flags);
  if (md_grad(f, dims, inputs, NULL, g, &err))  // again: gradients add up; no output
    fuzz_check_error(&err, "md_grad", flags);
  if (md_vjp(f, dims, inputs, vseed, out, g, &err))
    fuzz_check_error(&err, "md_vjp", flags);

  // The oracle `matdiff check` holds the JIT against: the primal DAG on the
  // runtime's tape.
  int h = tape_record(&f->ctx, t, dims, inputs, leaves);
  if (h >= 0 && mdrt_tape_backward(t, h, vseed) == 0)
    for (int i = 0; i < n; i++)
      if (!mdrt_tape_grad(t, leaves[i]))
        fuzz_fail("a tape leaf has no gradient", md_input_name(f, i));

  for (int i = 0; i < n; i++) {
    free(in[i]);
    free(g[i]);
  }
  free(in);
  free(g);
  free(out);
  free(vseed);
  free(leaves);
  mdrt_tape_free(t);
}

static void fuzz_jit(const char *src, uint64_t hash, int flags) {
  md_error err;
  md_function *f = md_compile(src, "fuzz.expr", &err);
  if (!f) {
    fuzz_check_error(&err, "md_compile", flags);
    return;
  }
  if (!md_c_source(f) || !md_output_name(f))
    fuzz_fail("a compiled function has no C source or no output name", NULL);
  int nd = md_num_dims(f);
  long *dims = calloc((size_t)nd + 1, sizeof *dims), *ones = calloc((size_t)nd + 1, sizeof *ones);
  if (!dims || !ones)
    fuzz_fail("out of memory in the harness", NULL);
  int differ = 0;
  for (int i = 0; i < nd; i++) {
    if (!md_dim_name(f, i))
      fuzz_fail("a size has no name", NULL);
    dims[i] = 1 + (long)((hash >> (2 * (i % 32))) % 3);
    ones[i] = 1;
    differ |= dims[i] != 1;
  }
  if (fuzz_small(f, dims))
    fuzz_calls(f, dims, hash, flags);
  if (differ && fuzz_small(f, ones))
    fuzz_calls(f, ones, hash + 1, flags);  // the workspace is sized again
  free(dims);
  free(ones);
  md_free(f);
}

/* ---- both ---------------------------------------------------------------- */

// SRC is a NUL-terminated source text.
static void fuzz_one(const char *src, int flags) {
  uint64_t hash = 1469598103934665603ull;  // FNV-1a: the sizes follow the text
  for (const char *p = src; *p; p++)
    hash = (hash ^ (unsigned char)*p) * 1099511628211ull;
  if (fuzz_front(src, flags) && (flags & FUZZ_JIT))
    fuzz_jit(src, hash, flags);
}

#endif
