/*
 * fuzz_one.h - one source text through every stage of matdiff. The libFuzzer
 * harness (tests/fuzz/fuzz_md.c) and the regression test that replays what it
 * found (tests/test_fuzz_regress.c) both call fuzz_one(), so a saved input is
 * replayed exactly as the fuzzer ran it.
 *
 *   1. the front half on a Ctx of its own: parse, shapes, reverse mode,
 *      simplify (md_front), then what the CLI makes of it: every gradient
 *      printed as text and as LaTeX, the DAG as Graphviz dot, the C in each
 *      form `matdiff compile` writes (runtime-linked or standalone, double
 *      or float) and the JIT's, and the operation counts;
 *   1b. the text as a one-line expression: md_expr_source either fails
 *      with an error or writes a program that md_front takes;
 *   1c. the names the user chooses: the file name (the input's first line,
 *      any bytes, as a directory) and the function's (--name, drawn from
 *      names C or its library has and ordinary ones). Every C file written
 *      has well-formed comments and a header that is one line long; a
 *      sample of them (every one in the regression replays) is built by the
 *      system's cc with -Wall -Wextra -Werror -pedantic;
 *   2. with FUZZ_JIT, md_compile, which runs it all again and hands the C to
 *      libtcc; where that compiles and every value in the DAG (the same DAG
 *      as the front half's, which the sizes are read from) is small at the
 *      chosen sizes, md_eval, md_grad and md_vjp on deterministic inputs, and
 *      the tape oracle (md_tape_vjp), twice: at sizes taken from the source
 *      text (1 to 3) and with every size 1.
 *
 * The front half is white-box (md.h): the printers, the emitter's forms and
 * the DAG's sizes have no public API. md_function's insides are not used.
 *
 * Nothing here judges the numbers. What is checked is what the library
 * promises on every input: no crash, no leak, no hang, no sanitizer report
 * (the harness's build sees those), and every failure reported through
 * md_error with a message that is not an "internal error" (the library's
 * word for its own bugs). A broken promise calls abort(), which both the
 * fuzzer and Criterion see.
 *
 * A line "#repeat N" in the input is replaced by the line after it, N times
 * (each "{i}" in it the line's number, from 0): sources past the harness's
 * 4 KiB cap, for the bugs of size (many declarations, long sums).
 *
 * Everything is static: each includer uses the whole of it, once.
 */
#ifndef MD_FUZZ_ONE_H
#define MD_FUZZ_ONE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "../util.h"
#include "md.h"

/* fuzz_one's flags */
enum {
  FUZZ_JIT = 1,       /* also md_compile (libtcc) and the calls */
  FUZZ_STRICT = 2,    /* no workaround, no guard (below) */
};

/* The calls are made only when every value in the DAG, at the chosen sizes,
   has at most this many rows or columns and elements: the point is to run
   each path, not to multiply large matrices. */
/* One input in this many has its C built by cc (all of them with
   FUZZ_STRICT): a cc run costs as much as a hundred inputs. */
#define FUZZ_CC_EVERY 64
#define FUZZ_CC_MAX (64 << 10)  /* and only C shorter than this: cc is slow on more */

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
static void fuzz_check_error(const md_error *err, const char *where) {
  if (!memchr(err->message, '\0', sizeof err->message) || !memchr(err->diag, '\0', sizeof err->diag))
    fuzz_fail("md_error holds an unterminated string after", where);
  if (!err->message[0])
    fuzz_fail("failed with no message in md_error:", where);
  if (err->line < 0 || err->col < 0 || (err->line > 0) != (err->col > 0))
    fuzz_fail("md_error has an impossible position after", where);
  if (strstr(err->message, "internal error"))
    fuzz_fail(where, err->message);
}

/* ---- workarounds and guards --------------------------------------------- */

/* A known bug that would otherwise stop the fuzzer at every input reaching
   it is stepped around here (or in ubsan.supp), next to the name of the
   regression input that holds it (tests/fuzz/regress/), and the workaround
   is deleted when the bug is fixed. None is open: the bugs found so far,
   and how they were stepped around, are in the history of this file and in
   the comments of the regression inputs. FUZZ_STRICT runs everything
   regardless, as the regression replays do.

   One guard stays, for speed alone. A printed formula is the DAG written
   out as a tree, which can be far larger than the DAG (A^1000000), and
   print.c cuts it at MD_MAX_PRINT, a mebibyte; but writing a mebibyte in
   the fuzzer's build takes seconds, near the timeout. So a source whose
   value and gradients would print to more than FUZZ_MAX_TREE nodes skips
   the printers, the emitter and the JIT (FUZZ_STRICT does not skip them:
   regress/print_exponential.expr and deep_recursion.expr go through). */
#define FUZZ_MAX_TREE 100000

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

/* ---- 0. inputs past 4 KiB ------------------------------------------------- */

#define FUZZ_MAX_REPEAT 20000         /* lines a #repeat makes */
#define FUZZ_MAX_EXPANDED (1L << 20)  /* bytes of source it makes */

// SRC expanded at its first "#repeat N" line (malloc'd), or NULL if it has
// none or N is not a whole number from 1 to FUZZ_MAX_REPEAT.
static char *fuzz_expand(const char *src) {
  const char *at = !strncmp(src, "#repeat ", 8) ? src : strstr(src, "\n#repeat ");
  if (!at)
    return NULL;
  const char *count = at + (at == src ? 8 : 9);
  char *end;
  long n = strtol(count, &end, 10);
  if (end == count || *end != '\n' || n < 1 || n > FUZZ_MAX_REPEAT)
    return NULL;
  const char *line = end + 1, *rest = strchr(line, '\n');
  rest = rest ? rest + 1 : line + strlen(line);
  size_t len = (size_t)(rest - line);
  Out o = {0};
  put(&o, "%.*s", (int)(at - src + (at != src)), src);
  for (long i = 0; i < n && o.len < FUZZ_MAX_EXPANDED; i++)
    for (const char *q = line; q < rest;) {
      const char *mark = strstr(q, "{i}");
      if (!mark || mark >= rest) {
        put(&o, "%.*s", (int)(rest - q), q);
        break;
      }
      put(&o, "%.*s%ld", (int)(mark - q), q, i);
      q = mark + 3;
    }
  if (len && rest[-1] != '\n')
    put(&o, "\n");
  put(&o, "%s", rest);
  return o.s;
}

/* ---- 1c. names and the C they reach --------------------------------------- */

// Comments in C are well-formed: none opens inside another (cc's -Wcomment)
// or is left open; and the header comment's "Generated by" sentence, which
// holds the file name, ends on its line and before the comment closes.
static void fuzz_check_c(const char *code, const char *what) {
  const char *gen = strstr(code, "Generated by matdiff"), *end = strstr(code, "*/");
  const char *dne = gen ? strstr(gen, ". Do not edit.") : NULL;
  if (!gen || !end || !dne || dne > end || memchr(gen, '\n', (size_t)(dne - gen)))
    fuzz_fail("the header comment is not whole", what);
  int state = 0;  // 0 code, 1 comment, 2 string, 3 character
  for (const char *p = code; *p; p++) {
    if (state == 0 && p[0] == '/' && p[1] == '*')
      state = 1, p++;
    else if (state == 1 && p[0] == '/' && p[1] == '*')
      fuzz_fail("a comment opens inside a comment", what);
    else if (state == 1 && p[0] == '*' && p[1] == '/')
      state = 0, p++;
    else if ((state == 2 || state == 3) && p[0] == '\\' && p[1])
      p++;
    else if (state == 0 && (*p == '"' || *p == '\''))
      state = *p == '"' ? 2 : 3;
    else if ((state == 2 && *p == '"') || (state == 3 && *p == '\''))
      state = 0;
  }
  if (state)
    fuzz_fail("the C ends inside a comment or a string", what);
}

// CODE compiled by the system's cc as `matdiff compile`'s users do; it must
// build without a word. The include path is the source tree's runtime/.
static void fuzz_cc(const char *code, const char *what) {
  char dir[] = "/tmp/fuzz_cc.XXXXXX", c[64], log[64], cmd[512];
  if (!mkdtemp(dir))
    return;  // no /tmp: nothing to say about the C
  snprintf(c, sizeof c, "%s/f.c", dir);
  snprintf(log, sizeof log, "%s/cc.log", dir);
  bool written = spit(c, code);
  snprintf(cmd, sizeof cmd,
           "cc -std=c99 -Wall -Wextra -Werror -pedantic -I%s/runtime -c %s -o /dev/null > %s 2>&1",
           MD_SRC_DIR, c, log);
  int rc = written ? run(cmd) : 0;
  char *out = slurp(log);
  unlink(c);
  unlink(log);
  rmdir(dir);
  if (rc || (out && *out)) {
    fprintf(stderr, "%s\n", out ? out : "");
    fuzz_fail("the emitted C does not build warning-free", what);
  }
  free(out);
}

// Names for the function: C's and its library's, which emit_c refuses,
// the runtime's, the emitter's own, and ordinary ones, which it takes.
static const char *const fuzz_fnames[] = {
    "fz", "f", "loss", "exp", "printf", "main", "int", "free", "abs", "mdrt_sum", "unix",
    "INFINITY", "_x", "read", "v_x", "d_x", "t1", "seed", "out", "ws", "y", "v", "dims",
};

// The file name from the input's first line (any bytes), as a directory.
static char *fuzz_file_name(const char *src) {
  Out o = {0};
  put(&o, "%.*s/f.expr", (int)strcspn(src, "\n"), src);
  return o.s;
}

/* ---- 1. the front half --------------------------------------------------- */

// The front half on C, made for SRC. Returns whether to go on to the JIT.
static int fuzz_front(Ctx *c, const char *src, const char *file, int flags, md_error *err) {
  int go_on = 1;
  uint64_t hash = fnv1a(src);
  ctx_init(c, src, (long)strlen(src), file, err);
  if (!md_front(c)) {
    fuzz_check_error(err, "md_front");
  } else if (!(flags & FUZZ_STRICT) && fuzz_prints_too_much(c)) {
    go_on = 0;
  } else {
    for (int i = 0; i < c->nvars; i++)
      if (c->vars[i].wrt) {
        if (!print_str(c, c->grads[i]))
          fuzz_fail("print_str returned NULL", c->vars[i].name);
        Buf tex = {0};  // matdiff diff --latex
        print_latex(c, &tex, c->grads[i]);
        buf_free(&tex);
      }
    for (int grads = 0; grads <= 1; grads++) {
      Buf dot = {0};  // matdiff graph [--grad]
      graph_dot(c, &dot, grads);
      buf_free(&dot);
    }
    // Every form of C `matdiff compile` writes (runtime-linked or
    // standalone, double or float), and the JIT's too when md_compile will
    // not make it.
    // The function's name is one of fuzz_fnames; a sample of the C (all
    // of it in the replays) goes through cc.
    const char *fname = fuzz_fnames[(hash >> 8) % (sizeof fuzz_fnames / sizeof *fuzz_fnames)];
    bool cc = (flags & FUZZ_STRICT) || hash % FUZZ_CC_EVERY == 0;
    for (int form = 0; form < 4 + !(flags & FUZZ_JIT); form++) {
      Buf code = {0};
      EmitOpts o = {.name = form == 4 ? "fz" : fname, .standalone = form & 1, .flt = form & 2,
                    .jit = form == 4};
      // The one reason C is not written: a constant that single precision
      // cannot hold, reported. The error is cleared for the next form.
      // Two reasons C is not written: a constant that single precision
      // cannot hold, and a function name C has; both reported. The error is
      // cleared for the next form.
      if (!emit_c(c, &o, &code) || !code.s) {
        if (!c->failed || !((o.flt && strstr(err->message, "outside single precision")) ||
                            strstr(err->message, "is taken")))
          fuzz_fail("emit_c failed", err->message);
        fuzz_check_error(err, "emit_c");
        c->failed = false;
        diag_clear(err);
      } else {
        static const char *const forms[] = {"C", "C --standalone", "C --float",
                                            "C --standalone --float", "the JIT's C"};
        fuzz_check_c(code.s, forms[form]);
        if (cc && form < 4 && code.len < FUZZ_CC_MAX)
          fuzz_cc(code.s, forms[form]);
      }
      buf_free(&code);
    }
    // matdiff cost: the operation counts at every size 1.
    long *ones = calloc((size_t)c->ndims + 1, sizeof *ones);
    if (!ones)
      fuzz_fail("out of memory in the harness", NULL);
    for (int i = 0; i < c->ndims; i++)
      ones[i] = 1;
    emit_flops(c, false, ones);
    emit_flops(c, true, ones);
    free(ones);
  }
  return go_on;
}

// 1b. What md_expr_source writes is a program like any other, and one
// that compiles: every error about the expression is its to report.
static void fuzz_expr(const char *src) {
  md_error err;
  char *prog = md_expr_source(src, NULL, &err);
  if (!prog) {
    fuzz_check_error(&err, "md_expr_source");
    return;
  }
  Ctx c;
  ctx_init(&c, prog, (long)strlen(prog), "expr.expr", &err);
  if (!md_front(&c))
    fuzz_fail("md_front refuses the program md_expr_source wrote", err.diag);
  ctx_free(&c);
  free(prog);
}

/* ---- 2. the JIT and the calls -------------------------------------------- */

// Every node of the DAG (the value's, the gradients' and whatever the
// stages made) is at least 1x1 and, for the calls to be made, small. C is
// the front half's compilation of the same source: md_compile builds the
// same DAG, and the emitter adds no node.
static int fuzz_small(const Ctx *c, const long *dims) {
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

// md_eval, md_grad and md_vjp, then the tape, at sizes DIMS. Errors at run
// time (a singular matrix) are fine as long as they are reported.
static void fuzz_calls(md_function *f, const long *dims, uint64_t seed) {
  int n = md_num_inputs(f);
  long outlen = md_output_rows(f, dims) * md_output_cols(f, dims);
  double **in = calloc((size_t)n + 1, sizeof *in), **g = calloc((size_t)n + 1, sizeof *g);
  double *out = calloc((size_t)outlen, sizeof *out), *vseed = calloc((size_t)outlen, sizeof *vseed);
  Rng rng = {seed};
  if (!in || !g || !out || !vseed)
    fuzz_fail("out of memory in the harness", NULL);
  for (int i = 0; i < n; i++) {
    long len = md_input_rows(f, i, dims) * md_input_cols(f, i, dims);
    if (len < 1)
      fuzz_fail("an input has no elements", md_input_name(f, i));
    if (!(in[i] = malloc(sizeof(double) * (size_t)len)) ||
        !(g[i] = calloc((size_t)len, sizeof(double))))
      fuzz_fail("out of memory in the harness", NULL);
    for (long k = 0; k < len; k++)
      in[i][k] = uniform(&rng, -1, 1);
    if (!md_input_name(f, i) || (md_input_is_wrt(f, i) && !md_grad_formula(f, i)))
      fuzz_fail("an input has no name or no formula", NULL);
  }
  for (long k = 0; k < outlen; k++)
    vseed[k] = uniform(&rng, -1, 1);
  const double *const *inputs = (const double *const *)in;
  md_error err;
  if (md_eval(f, dims, inputs, out, &err))
    fuzz_check_error(&err, "md_eval");
  if (md_grad(f, dims, inputs, out, g, &err))
    fuzz_check_error(&err, "md_grad");
  if (md_grad(f, dims, inputs, NULL, g, &err))  // again: gradients add up; no output
    fuzz_check_error(&err, "md_grad");
  if (md_vjp(f, dims, inputs, vseed, out, g, &err))
    fuzz_check_error(&err, "md_vjp");
  // NULL buffers skip their gradient and the work only it needs: every
  // other one, then all of them.
  double **some = calloc((size_t)n + 1, sizeof *some);
  if (!some)
    fuzz_fail("out of memory in the harness", NULL);
  for (int i = (int)(seed & 1); i < n; i += 2)
    some[i] = g[i];
  if (md_grad(f, dims, inputs, out, some, &err))
    fuzz_check_error(&err, "md_grad");
  if (md_grad(f, dims, inputs, out, NULL, &err))
    fuzz_check_error(&err, "md_grad");
  free(some);

  // The oracle `matdiff check` holds the JIT against: the primal DAG on the
  // runtime's tape.
  if (md_tape_vjp(f, dims, inputs, vseed, out, g, &err))
    fuzz_check_error(&err, "md_tape_vjp");

  for (int i = 0; i < n; i++) {
    free(in[i]);
    free(g[i]);
  }
  free(in);
  free(g);
  free(out);
  free(vseed);
}

static void fuzz_jit(const char *src, const char *file, uint64_t hash, const Ctx *c) {
  md_error err;
  md_function *f = md_compile(src, file, &err);
  if (!f) {
    fuzz_check_error(&err, "md_compile");
    return;
  }
  if (!md_c_source(f) || !md_output_name(f))
    fuzz_fail("a compiled function has no C source or no output name", NULL);
  fuzz_check_c(md_c_source(f), "md_c_source");
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
  if (md_flops(f, dims, 0) < 0 || md_flops(f, dims, 1) < 0)
    fuzz_fail("md_flops failed at positive sizes", NULL);
  if (fuzz_small(c, dims))
    fuzz_calls(f, dims, hash);
  if (differ && fuzz_small(c, ones))
    fuzz_calls(f, ones, hash + 1);  // the workspace is sized again
  free(dims);
  free(ones);
  md_free(f);
}

/* ---- both ---------------------------------------------------------------- */

// SRC is a NUL-terminated source text.
static void fuzz_one(const char *input, int flags) {
  md_error err;
  Ctx c;
  char *expanded = fuzz_expand(input);
  const char *src = expanded ? expanded : input;
  char *file = fuzz_file_name(input);
  if (!file)
    fuzz_fail("out of memory in the harness", NULL);
  fuzz_expr(src);
  if (fuzz_front(&c, src, file, flags, &err) && (flags & FUZZ_JIT))
    fuzz_jit(src, file, fnv1a(src), &c);  // the sizes follow the text
  ctx_free(&c);
  free(file);
  free(expanded);
}

#endif
