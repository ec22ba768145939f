/*
 * util.h - what the test programs share, written once:
 *
 *   Rng, next_u64, uniform    splitmix64: the same numbers on every platform
 *   fnv1a                     a string's hash, to give each case its own stream
 *   Out, put                  a growable string, printf-style
 *   slurp, spit               a whole file in, a whole file out
 *   run                       a shell command's exit status
 *   numbers                   the numbers on a tagged line of a program's output
 *   put_type                  a compiled function's input (or output) type as
 *                             the language spells it, for writing sources
 *   strip_wrt, formula_*      a printed derivative as the output of a program
 *                             of its own, and that program's inputs
 *   tmpdir_*                  a temporary directory per test, and files in it
 *
 * Plain C, so that the fuzz harness can use it too (with Criterion included
 * first, a few helpers fail the test themselves). The
 * numeric comparisons are md_rel_err and md_check, from the library.
 * Everything is static inline: each program uses only part of it.
 */
#ifndef MD_TEST_UTIL_H
#define MD_TEST_UTIL_H

#include <dirent.h>
#include <glob.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "matdiff.h"

/* ---- random numbers ------------------------------------------------------ */

typedef struct Rng {
  uint64_t s;
} Rng;

static inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static inline uint64_t next_u64(Rng *g) { return mix64(g->s += 0x9E3779B97F4A7C15ull); }

// Uniform in [LO, HI), 53 random bits.
static inline double uniform(Rng *g, double lo, double hi) {
  return lo + (hi - lo) * (double)(next_u64(g) >> 11) * 0x1.0p-53;
}

// FNV-1a.
static inline uint64_t fnv1a(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

/* ---- strings and files --------------------------------------------------- */

typedef struct Out {
  char *s;
  size_t len, cap;
} Out;

static inline void put(Out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void put(Out *o, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (o->len + (size_t)n + 1 > o->cap) {
    o->cap = (o->len + (size_t)n + 1) * 2;
    o->s = realloc(o->s, o->cap);
    if (!o->s)
      abort();
  }
  va_start(ap, fmt);
  vsnprintf(o->s + o->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  o->len += (size_t)n;
}

// The whole file, NUL-terminated and malloc'd; NULL if it cannot be read.
static inline char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  Out o = {0};
  put(&o, "%s", "");
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0)
    put(&o, "%.*s", (int)n, buf);
  fclose(f);
  return o.s;
}

static inline bool spit(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (!f)
    return false;
  fputs(text, f);
  return fclose(f) == 0;
}

// Run CMD through the shell: its exit status, 128 if a signal ended it.
static inline int run(const char *cmd) {
  int rc = system(cmd);
  return rc == -1 ? -1 : WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

// The N numbers after "TAG " on the line of OUT that starts with it.
static inline bool numbers(const char *out, const char *tag, double *v, long n) {
  size_t tl = strlen(tag);
  for (const char *q = out; q && *q; q = strchr(q, '\n') ? strchr(q, '\n') + 1 : NULL) {
    if (strncmp(q, tag, tl) || q[tl] != ' ')
      continue;
    const char *s = q + tl;
    for (long i = 0; i < n; i++) {
      char *end;
      v[i] = strtod(s, &end);
      if (end == s)
        return false;
      s = end;
    }
    return true;
  }
  return false;
}

/* ---- sources ------------------------------------------------------------- */

// The type of input I of F as a declaration says it ("scalar", "vector(n)",
// "matrix(n, 3)"); I = -1: the output's.
static inline void put_type(Out *o, const md_function *f, int i) {
  int d[2];
  long lit[2];
  for (int axis = 0; axis < 2; axis++) {
    d[axis] = i < 0 ? md_output_dim(f, axis) : md_input_dim(f, i, axis);
    lit[axis] = i < 0 ? (axis ? md_output_cols(f, NULL) : md_output_rows(f, NULL))
                      : (axis ? md_input_cols(f, i, NULL) : md_input_rows(f, i, NULL));
  }
  if (d[0] < 0 && d[1] < 0 && lit[0] == 1 && lit[1] == 1) {
    put(o, "scalar");
    return;
  }
  put(o, i >= 0 && md_input_is_vector(f, i) ? "vector(" : "matrix(");
  for (int axis = 0; axis < (i >= 0 && md_input_is_vector(f, i) ? 1 : 2); axis++) {
    if (d[axis] >= 0)
      put(o, "%s%s", axis ? ", " : "", md_dim_name(f, d[axis]));
    else
      put(o, "%s%ld", axis ? ", " : "", lit[axis]);
  }
  put(o, ")");
}

/* ---- printed formulas, compiled again -------------------------------------- */

// SRC without its wrt statements (a statement runs from a line start or a
// ';' to the next ';' or line end; '...' continues a line, '#' comments).
static inline char *strip_wrt(const char *src) {
  Out o = {0};
  put(&o, "%s", "");
  const char *s = src;
  while (*s) {
    const char *t = s;
    while (*t == ' ' || *t == '\t' || *t == '\r')
      t++;
    bool wrt = !strncmp(t, "wrt", 3) && (t[3] == ' ' || t[3] == '\t');
    const char *e = s;  // the end of this statement, separator excluded
    while (*e && *e != ';' && *e != '\n') {
      if (*e == '#')
        e += strcspn(e, "\n");
      else if (!strncmp(e, "...", 3))
        e += 3 + strcspn(e + 3, "\n") + (e[3 + strcspn(e + 3, "\n")] ? 1 : 0);
      else
        e++;
    }
    if (!wrt)
      put(&o, "%.*s", (int)(e - s), s);
    if (*e)
      put(&o, "%c", *e), e++;
    s = e;
  }
  return o.s;
}

// The program whose output is FORMULA, a derivative F printed: SRC's
// statements (the formula may name its intermediates) without its wrt
// lines, a declaration of every direction F's formulas name (md_direction_
// name), G of the output's shape if F's output is not a scalar, and one
// unused wrt input, which spares differentiating the rest (only the value
// is wanted). malloc'd.
static inline char *formula_program(md_function *f, const char *src, const char *formula) {
  char *body = strip_wrt(src);
  Out o = {0};
  put(&o, "%s\n", body);
  for (int i = 0; i < md_num_inputs(f); i++)
    if (md_input_is_wrt(f, i)) {
      put(&o, "%s : ", md_direction_name(f, i));
      put_type(&o, f, i);
      put(&o, "\n");
    }
  if (md_output_rows(f, NULL) != 1 || md_output_cols(f, NULL) != 1) {
    put(&o, "G : ");
    put_type(&o, f, -1);
    put(&o, "\n");
  }
  put(&o, "unused__ : scalar\nwrt unused__\nformula__ = %s\n", formula);
  free(body);
  return o.s;
}

// The sizes and inputs of H, a formula_program of F, at F's sizes FDIMS,
// inputs IN, directions DIRS (one per input of F) and seed G: each input
// of H by its name, and 0 for the unused one.
static inline void formula_inputs(md_function *h, md_function *f, const long *fdims,
                                  const double *const *in, const double *const *dirs,
                                  const double *G, long *hdims, const double **hin) {
  static const double zero = 0;
  for (int d = 0; d < md_num_dims(h); d++)
    for (int k = 0; k < md_num_dims(f); k++)
      if (!strcmp(md_dim_name(h, d), md_dim_name(f, k)))
        hdims[d] = fdims[k];
  for (int v = 0; v < md_num_inputs(h); v++) {
    const char *name = md_input_name(h, v);
    hin[v] = !strcmp(name, "G") ? G : &zero;
    for (int k = 0; k < md_num_inputs(f); k++) {
      if (!strcmp(name, md_input_name(f, k)))
        hin[v] = in[k];
      if (md_input_is_wrt(f, k) && !strcmp(name, md_direction_name(f, k)))
        hin[v] = dirs[k];
    }
  }
}

/* ---- a temporary directory ----------------------------------------------- */

static inline char *tmpdir(void) {
  static char dir[64];
  return dir;
}

// A new directory /tmp/NAME.XXXXXX; false if it cannot be made.
static inline bool tmpdir_make(const char *name) {
  snprintf(tmpdir(), 64, "/tmp/%s.XXXXXX", name);
  return mkdtemp(tmpdir()) != NULL;
}

// The path of NAME in the directory (the last 16 stay valid).
static inline const char *tmpdir_path(const char *name) {
  static char paths[16][128];
  static int next;
  char *p = paths[next++ % 16];
  snprintf(p, sizeof paths[0], "%s/%s", tmpdir(), name);
  return p;
}

// Write LEN bytes to NAME in the directory; its path, NULL on failure. The
// file is made afresh: ext4 flushes a file truncated over and over (its
// auto_da_alloc), which made thousands of small files slow.
static inline const char *tmpdir_put(const char *name, const void *bytes, size_t len) {
  const char *path = tmpdir_path(name);
  unlink(path);
  FILE *f = fopen(path, "wb");
  if (!f)
    return NULL;
  bool ok = fwrite(bytes, 1, len, f) == len;
  return fclose(f) == 0 && ok ? path : NULL;
}

// Remove every file in the directory, then the directory; MD_TEST_KEEP=1
// keeps them, to look at what a failing test wrote.
static inline void tmpdir_remove(void) {
  if (getenv("MD_TEST_KEEP"))
    return;
  DIR *d = opendir(tmpdir());
  if (!d)
    return;
  char path[512];
  for (struct dirent *e; (e = readdir(d));)
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
      snprintf(path, sizeof path, "%s/%s", tmpdir(), e->d_name);
      unlink(path);
    }
  closedir(d);
  rmdir(tmpdir());
}

/* With Criterion included first: the same, failing the test when the
   directory or a file cannot be made. */
#ifdef CRITERION_H_
static inline void tmpdir_setup(const char *name) {
  cr_assert(tmpdir_make(name), "cannot make a directory in /tmp");
}

static inline const char *tmpdir_file(const char *name, const void *bytes, size_t len) {
  const char *path = tmpdir_put(name, bytes, len);
  cr_assert_not_null(path, "cannot write %s in %s", name, tmpdir());
  return path;
}

static inline const char *tmpdir_text(const char *name, const char *text) {
  return tmpdir_file(name, text, strlen(text));
}
#endif

#ifdef MD_SRC_DIR
/* CHECK(path, source) for every example (examples/NAME.expr), in order; false if the
   examples cannot be listed or read. */
static inline bool each_example(void (*check)(const char *name, const char *src)) {
  glob_t g;
  if (glob(MD_SRC_DIR "/examples/*.expr", 0, NULL, &g))
    return false;
  bool ok = true;
  for (size_t i = 0; i < g.gl_pathc && ok; i++) {
    char *src = slurp(g.gl_pathv[i]);
    if ((ok = src != NULL))
      check(g.gl_pathv[i], src);
    free(src);
  }
  globfree(&g);
  return ok;
}
#endif

#endif
