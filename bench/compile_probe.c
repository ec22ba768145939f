/*
 * compile_probe.c - one md_compile of a generated program, for the
 * compile-time families of `make bench` (bench/bench.py runs one probe per
 * process, under a time limit, so that each peak of memory is its own).
 *
 *   compile_probe FAMILY K          one line: nodes, seconds, MB, outcome
 *   compile_probe FAMILY K --print  the program itself
 *   compile_probe file PATH N       PATH's md_compile, the median of N
 *
 * The families, every layer a few DAG nodes:
 *   layers    K layers of a network, h_i = tanh(W*h_{i-1} + b), from x;
 *             y = sum(h_K). Gradients for x, W and b.
 *   horner    a polynomial in the scalar x by K Horner steps,
 *             p_i = p_{i-1}*x + c_i, with literal coefficients.
 *   parallel  100 such layer chains side by side, K layers each, the
 *             first layer of chain c adding c*b so that no two are equal;
 *             y sums their last layers.
 *
 * Nodes are the primal DAG's, hash-consed, before any derivative (the
 * front of the pipeline, run apart); seconds are md_compile's, thread CPU
 * time, gradients and libtcc included; MB is the growth of the process's
 * peak resident memory during md_compile.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "matdiff.h"
#include "md.h"

enum { CHAINS = 100 };

// Layer I of chain C (counted from 1) into BUF: h5, or h3_5 among chains.
static const char *layer(char *buf, size_t size, int chains, int c, int i) {
  if (chains > 1)
    snprintf(buf, size, "h%d_%d", c, i);
  else
    snprintf(buf, size, "h%d", i);
  return buf;
}

static void layers(FILE *f, int K, int chains) {
  char h[32], prev[32];
  fprintf(f, "x : vector(n)\nW : matrix(n, n)\nb : vector(n)\n");
  for (int c = 1; c <= chains; c++)
    for (int i = 1; i <= K; i++) {
      fprintf(f, "%s = tanh(W*%s + ", layer(h, sizeof h, chains, c, i),
              i > 1 ? layer(prev, sizeof prev, chains, c, i - 1) : "x");
      if (i == 1 && chains > 1)
        fprintf(f, "%d*b)\n", c);
      else
        fprintf(f, "b)\n");
    }
  fprintf(f, "y = ");
  for (int c = 1; c <= chains; c++)
    fprintf(f, "%ssum(%s)", c > 1 ? " + " : "", layer(h, sizeof h, chains, c, K));
  fprintf(f, "\n");
}

static void horner(FILE *f, int K) {
  fprintf(f, "x : scalar\np0 = 0.5*x + 1\n");
  for (int i = 1; i <= K; i++)
    fprintf(f, "p%d = p%d*x + %.6g\n", i, i - 1, 1.0 / (i + 1));
  fprintf(f, "y = p%d\n", K);
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  char *s = NULL;
  size_t n = 0;
  FILE *m = open_memstream(&s, &n);
  int ch;
  while (f && m && (ch = fgetc(f)) != EOF)
    fputc(ch, m);
  if (m)
    fclose(m);
  if (f)
    fclose(f);
  return f ? s : (free(s), NULL);
}

static char *program(const char *family, int K) {
  char *s = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&s, &n);
  if (!f)
    return NULL;
  if (!strcmp(family, "layers"))
    layers(f, K, 1);
  else if (!strcmp(family, "parallel"))
    layers(f, K, CHAINS);
  else if (!strcmp(family, "horner"))
    horner(f, K);
  else {
    fclose(f);
    free(s);
    return NULL;
  }
  fclose(f);
  return s;
}

static double cpu_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

// A line of /proc/self/status, in kB: VmHWM is the peak resident memory.
static long status_kb(const char *key) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  size_t n = strlen(key);
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, key, n) && line[n] == ':')
      kb = strtol(line + n + 1, NULL, 10);
  if (f)
    fclose(f);
  return kb;
}

// Nodes of the primal DAG: what the source says, hash-consed.
static int primal_nodes(const char *src) {
  md_error err;
  Ctx c;
  ctx_init(&c, src, (long)strlen(src), "probe", &err);
  int n = parse_program(&c) && lower_program(&c) ? c.nnodes : -1;
  ctx_free(&c);
  return n;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

// The median of N md_compile of one file, in one process.
static int median_of(const char *path, int n) {
  char *src = slurp(path);
  double *t = calloc((size_t)(n > 0 ? n : 1), sizeof *t);
  md_error err;
  for (int i = 0; src && t && i < n; i++) {
    double t0 = cpu_now();
    md_function *f = md_compile(src, path, &err);
    t[i] = cpu_now() - t0;
    if (!f) {
      fprintf(stderr, "%s\n", err.diag);
      n = 0;
    }
    md_free(f);
  }
  if (n > 0) {
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    printf("%d\t%.9f\n", primal_nodes(src), t[n / 2]);
  }
  free(t);
  free(src);
  return n > 0 ? 0 : 1;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: compile_probe layers|horner|parallel K [--print]\n"
                    "       compile_probe file PATH N\n");
    return 2;
  }
  if (!strcmp(argv[1], "file"))
    return median_of(argv[2], argc > 3 ? atoi(argv[3]) : 1);
  char *src = program(argv[1], atoi(argv[2]));
  if (!src) {
    fprintf(stderr, "compile_probe: no family %s\n", argv[1]);
    return 2;
  }
  if (argc > 3 && !strcmp(argv[3], "--print")) {
    fputs(src, stdout);
    free(src);
    return 0;
  }
  int nodes = primal_nodes(src);
  long before = status_kb("VmRSS");
  md_error err;
  double t0 = cpu_now();
  md_function *f = md_compile(src, "probe", &err);
  double t = cpu_now() - t0;
  double mb = (double)(status_kb("VmHWM") - before) / 1024.0;
  if (f)
    printf("%d\t%.6f\t%.1f\tok\n", nodes, t, mb);
  else
    printf("%d\t%.6f\t%.1f\t%s\n", nodes, t, mb, err.message);
  md_free(f);
  free(src);
  return 0;
}
