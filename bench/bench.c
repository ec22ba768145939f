/*
 * bench.c - `make bench` (issue #5): one process that times every way of
 * getting a value and its gradients out of matdiff, against a hand-written
 * CBLAS baseline, on the same inputs, one thread:
 *
 *   aot      the emitted C (matdiff compile, cc -O2), P_grad_ws with a
 *            workspace allocated once
 *   aot_alloc the same through P_grad, which allocates its workspace per call
 *   jit      md_compile once, then md_grad (its workspace is kept inside)
 *   tape     the runtime's tape: md_tape_vjp, which records the primal and
 *            runs backward every iteration (`matdiff check`'s oracle)
 *   hand     hand.c, the baseline
 *
 * and the latency of md_compile itself, by phase, on the notebook's loss and
 * on generated expressions of growing size.
 *
 * It writes the inputs (raw little-endian doubles) and the baseline's
 * results into OUT/inputs/, for bench/torch_bench.py to run PyTorch on the
 * very same numbers, and its own measurements to OUT/c.tsv, which
 * bench/report.py turns into bench/results.md.
 *
 *   bench [OUT] [--quick]      OUT defaults to build/bench; --quick times
 *                              briefly (for trying the harness, not results)
 *   bench --compile-only [OUT] only md_compile; --cases-only: only the cases
 *   bench --gen FAMILY K       print a generated program (see gen_wide)
 *   bench --compile FAMILY K [N]  md_compile it N times (to profile)
 */
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "hand.h"
#include "jit.h"       /* md_compile's phases, timed one by one */
#include "matdiff.h"
#include "md.h"

/* ---- the emitted code (build/bench/aot_*.c), as README documents it ---- */

long seed_sym_workspace_size(long n, long k, long m);
double seed_sym_grad_ws(long n, long k, long m, const double *X, const double *W,
                        const double *b, double *dX, double *dW, double *db, void *ws);
double seed_sym_grad(long n, long k, long m, const double *X, const double *W, const double *b,
                     double *dX, double *dW, double *db);
long logistic_workspace_size(long n, long d);
double logistic_grad_ws(long n, long d, const double *X, const double *w, const double *b,
                        const double *y, double *dw, double *db, void *ws);
double logistic_grad(long n, long d, const double *X, const double *w, const double *b,
                     const double *y, double *dw, double *db);
long mlp_workspace_size(long n, long d, long h, long k);
double mlp_grad_ws(long n, long d, long h, long k, const double *X, const double *W1,
                   const double *b1, const double *W2, const double *b2, const double *Y,
                   double *dW1, double *db1, double *dW2, double *db2, void *ws);
double mlp_grad(long n, long d, long h, long k, const double *X, const double *W1,
                const double *b1, const double *W2, const double *b2, const double *Y,
                double *dW1, double *db1, double *dW2, double *db2);

/* ---- small helpers ------------------------------------------------------ */

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

// The machine this may run on is shared (other builds and tests beside it),
// so every measurement is the calling thread's CPU time, which does not
// count the spells when the scheduler runs someone else; single-threaded
// BLAS runs in the calling thread. Case timings also keep the wall time.
static double cpu_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void die(const char *fmt, const char *arg) {
  fprintf(stderr, "bench: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\n");
  exit(1);
}

static void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size);
  if (!p)
    die("out of memory%s", "");
  return p;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static char *read_text(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f)
    die("cannot read %s", path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = xcalloc((size_t)n + 1, 1);
  if (fread(s, 1, (size_t)n, f) != (size_t)n)
    die("cannot read %s", path);
  fclose(f);
  return s;
}

static void write_doubles(const char *path, const double *x, long n) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(x, sizeof *x, (size_t)n, f) != (size_t)n || fclose(f))
    die("cannot write %s", path);
}

// The same numbers on every run and every machine: splitmix64, and
// Box-Muller for normals.
static uint64_t rng_state = 20240501;

static uint64_t rng_next(void) {
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static double rng_uniform(void) {  // in (0, 1)
  return ((double)(rng_next() >> 11) + 0.5) / 9007199254740992.0;
}

static double rng_normal(void) {
  return sqrt(-2 * log(rng_uniform())) * cos(6.283185307179586 * rng_uniform());
}

/* ---- the cases ---------------------------------------------------------- */

typedef enum Kind { SEED, LOGISTIC, MLP } Kind;

enum { MAXIN = 6 };

typedef struct Case {
  const char *id;        /* file and table key: seed10, seed100, ... */
  const char *label;     /* for people: "seed 10×4×4" */
  Kind kind;
  long dims[4];          /* in md_dim_name order */
  int ndims, nin;
  const char *names[MAXIN];
  long rows[MAXIN], cols[MAXIN];
  bool wrt[MAXIN];
  double *in[MAXIN];
  double *grad[MAXIN];   /* NULL when not wrt; every implementation adds here */
  double *ref[MAXIN];    /* the baseline's gradients from zero */
  double refval;
  void *ws_aot, *ws_hand;
  md_function *f;        /* the JIT-compiled function, shared by the cases of a kind */
} Case;

static long len(const Case *c, int i) {
  return c->rows[i] * c->cols[i];
}

static void add_input(Case *c, const char *name, long r, long cols, bool wrt, double scale) {
  int i = c->nin++;
  c->names[i] = name;
  c->rows[i] = r;
  c->cols[i] = cols;
  c->wrt[i] = wrt;
  c->in[i] = xcalloc((size_t)(r * cols), sizeof(double));
  for (long j = 0; j < r * cols; j++)
    c->in[i][j] = scale * rng_normal();
  if (wrt) {
    c->grad[i] = xcalloc((size_t)(r * cols), sizeof(double));
    c->ref[i] = xcalloc((size_t)(r * cols), sizeof(double));
  }
}

static Case seed_case(const char *id, const char *label, long n, long k, long m) {
  Case c = {.id = id, .label = label, .kind = SEED, .dims = {n, k, m}, .ndims = 3};
  add_input(&c, "X", n, k, true, 1);
  add_input(&c, "W", k, m, true, 1);
  add_input(&c, "b", n, m, true, 1);
  return c;
}

// Weights scaled by 1/sqrt(fan-in) so that the logits and tanh stay in their
// working range; labels are 0/1 for logistic, one-hot rows for the MLP.
static Case logistic_case(const char *id, const char *label, long n, long d) {
  Case c = {.id = id, .label = label, .kind = LOGISTIC, .dims = {n, d}, .ndims = 2};
  add_input(&c, "X", n, d, false, 1);
  add_input(&c, "w", d, 1, true, 1 / sqrt((double)d));
  add_input(&c, "b", 1, 1, true, 0.1);
  add_input(&c, "y", n, 1, false, 0);
  for (long i = 0; i < n; i++)
    c.in[3][i] = rng_uniform() < 0.5;
  return c;
}

static Case mlp_case(const char *id, const char *label, long n, long d, long h, long k) {
  Case c = {.id = id, .label = label, .kind = MLP, .dims = {n, d, h, k}, .ndims = 4};
  add_input(&c, "X", n, d, false, 1);
  add_input(&c, "W1", d, h, true, 1 / sqrt((double)d));
  add_input(&c, "b1", h, 1, true, 0.1);
  add_input(&c, "W2", h, k, true, 1 / sqrt((double)h));
  add_input(&c, "b2", k, 1, true, 0.1);
  add_input(&c, "Y", n, k, false, 0);
  for (long i = 0; i < n; i++)
    c.in[5][i * k + (long)(rng_next() % (uint64_t)k)] = 1;
  return c;
}

/* ---- the implementations ------------------------------------------------ */

#define IN(i) ((const double *)c->in[i])

static double run_aot(Case *c) {
  long *d = c->dims;
  double **g = c->grad;
  switch (c->kind) {
  case SEED: return seed_sym_grad_ws(d[0], d[1], d[2], IN(0), IN(1), IN(2), g[0], g[1], g[2], c->ws_aot);
  case LOGISTIC: return logistic_grad_ws(d[0], d[1], IN(0), IN(1), IN(2), IN(3), g[1], g[2], c->ws_aot);
  case MLP:
    return mlp_grad_ws(d[0], d[1], d[2], d[3], IN(0), IN(1), IN(2), IN(3), IN(4), IN(5), g[1], g[2],
                       g[3], g[4], c->ws_aot);
  }
  return NAN;
}

static double run_aot_alloc(Case *c) {
  long *d = c->dims;
  double **g = c->grad;
  switch (c->kind) {
  case SEED: return seed_sym_grad(d[0], d[1], d[2], IN(0), IN(1), IN(2), g[0], g[1], g[2]);
  case LOGISTIC: return logistic_grad(d[0], d[1], IN(0), IN(1), IN(2), IN(3), g[1], g[2]);
  case MLP:
    return mlp_grad(d[0], d[1], d[2], d[3], IN(0), IN(1), IN(2), IN(3), IN(4), IN(5), g[1], g[2], g[3],
                    g[4]);
  }
  return NAN;
}

static double run_hand(Case *c) {
  long *d = c->dims;
  double **g = c->grad;
  switch (c->kind) {
  case SEED: return hand_seed(d[0], d[1], d[2], IN(0), IN(1), IN(2), g[0], g[1], g[2], c->ws_hand);
  case LOGISTIC: return hand_logistic(d[0], d[1], IN(0), IN(1), IN(2), IN(3), g[1], g[2], c->ws_hand);
  case MLP:
    return hand_mlp(d[0], d[1], d[2], d[3], IN(0), IN(1), IN(2), IN(3), IN(4), IN(5), g[1], g[2], g[3],
                    g[4], c->ws_hand);
  }
  return NAN;
}

static double run_jit(Case *c) {
  md_error err;
  double y;
  if (md_grad(c->f, c->dims, (const double *const *)c->in, &y, c->grad, &err))
    die("md_grad: %s", err.message);
  return y;
}

// The tape as the oracle uses it: a new tape, the primal recorded from the
// JIT function's DAG (copying the inputs in as leaves), the reverse pass,
// and each leaf's gradient added into the caller's buffer.
static double run_tape(Case *c) {
  md_error err;
  double y;
  if (md_tape_vjp(c->f, c->dims, (const double *const *)c->in, NULL, &y, c->grad, &err))
    die("tape: %s", err.message);
  return y;
}

typedef struct Impl {
  const char *id;
  double (*run)(Case *c);
} Impl;

static const Impl impls[] = {
    {"aot", run_aot}, {"aot_alloc", run_aot_alloc}, {"jit", run_jit},
    {"tape", run_tape}, {"hand", run_hand},
};
enum { NIMPL = sizeof impls / sizeof *impls };

static void zero_grads(Case *c) {
  for (int i = 0; i < c->nin; i++)
    if (c->grad[i])
      memset(c->grad[i], 0, sizeof(double) * (size_t)len(c, i));
}

// max |a - b| / max |b| over the value and every gradient, from zeroed
// gradient buffers, against the baseline's results.
static double check(Case *c, const Impl *im) {
  zero_grads(c);
  double y = im->run(c);
  double err = fabs(y - c->refval) / fmax(fabs(c->refval), 1e-300);
  for (int i = 0; i < c->nin; i++) {
    if (!c->grad[i])
      continue;
    double dmax = 0, rmax = 0;
    for (long j = 0; j < len(c, i); j++) {
      dmax = fmax(dmax, fabs(c->grad[i][j] - c->ref[i][j]));
      rmax = fmax(rmax, fabs(c->ref[i][j]));
    }
    err = fmax(err, dmax / fmax(rmax, 1e-300));
  }
  return err;
}

static const char *expr_of(Kind k) {
  return k == SEED ? "bench/seed_sym.expr" : k == LOGISTIC ? "examples/logistic.expr" : "examples/mlp.expr";
}

static void setup(Case *c, md_function *f, const char *outdir, FILE *manifest) {
  c->f = f;
  if (md_num_dims(f) != c->ndims || md_num_inputs(f) != c->nin)
    die("%s does not declare what the benchmark expects", expr_of(c->kind));
  for (int i = 0; i < c->nin; i++)
    if (strcmp(md_input_name(f, i), c->names[i]) || md_input_rows(f, i, c->dims) != c->rows[i] ||
        md_input_cols(f, i, c->dims) != c->cols[i] || md_input_is_wrt(f, i) != c->wrt[i])
      die("%s does not declare its inputs as the benchmark expects", expr_of(c->kind));
  long *d = c->dims;
  long aot = c->kind == SEED ? seed_sym_workspace_size(d[0], d[1], d[2])
             : c->kind == LOGISTIC ? logistic_workspace_size(d[0], d[1])
                                   : mlp_workspace_size(d[0], d[1], d[2], d[3]);
  long hand = c->kind == SEED ? hand_seed_ws(d[0], d[1], d[2])
              : c->kind == LOGISTIC ? hand_logistic_ws(d[0], d[1])
                                    : hand_mlp_ws(d[0], d[1], d[2], d[3]);
  c->ws_aot = xcalloc((size_t)aot, 1);
  c->ws_hand = xcalloc((size_t)hand, 1);
  // The baseline from zero is the reference every implementation (and
  // PyTorch) is checked against.
  zero_grads(c);
  c->refval = run_hand(c);
  for (int i = 0; i < c->nin; i++)
    if (c->grad[i])
      memcpy(c->ref[i], c->grad[i], sizeof(double) * (size_t)len(c, i));
  char path[4096];
  fprintf(manifest, "case\t%s\t%s\t%s\t%.17g", c->id, c->label,
          c->kind == SEED ? "seed" : c->kind == LOGISTIC ? "logistic" : "mlp", c->refval);
  for (int i = 0; i < c->ndims; i++)
    fprintf(manifest, "\t%s=%ld", md_dim_name(f, i), d[i]);
  fprintf(manifest, "\n");
  for (int i = 0; i < c->nin; i++) {
    snprintf(path, sizeof path, "%s/inputs/%s_%s.bin", outdir, c->id, c->names[i]);
    write_doubles(path, c->in[i], len(c, i));
    fprintf(manifest, "input\t%s\t%s\t%ld\t%ld\t%d\t%s_%s.bin", c->id, c->names[i], c->rows[i],
            c->cols[i], c->wrt[i], c->id, c->names[i]);
    if (c->wrt[i]) {
      snprintf(path, sizeof path, "%s/inputs/%s_ref_d%s.bin", outdir, c->id, c->names[i]);
      write_doubles(path, c->ref[i], len(c, i));
      fprintf(manifest, "\t%s_ref_d%s.bin", c->id, c->names[i]);
    }
    fprintf(manifest, "\n");
  }
}

/* ---- timing ------------------------------------------------------------- */

static volatile double sink;

static double time_batch(Case *c, const Impl *im, long batch, double *cpu) {
  double w0 = now(), c0 = cpu_now();
  for (long i = 0; i < batch; i++)
    sink = im->run(c);
  *cpu = (cpu_now() - c0) / (double)batch;
  return (now() - w0) / (double)batch;
}

typedef struct Timing {
  long batch;
  int samples;
  double cpu, wall, err;  /* medians per call, in seconds; error against the baseline */
} Timing;

// Every implementation of a case is timed in the same rounds, one batch of
// each per round, so that a slow spell of the machine hits them alike. A
// sample is the mean over a batch of back-to-back calls (batches of one
// for calls of 20 ms and more, then 7 samples instead of 21); the result
// is the median over the samples. The gradient buffers are never zeroed
// while timing: each call adds into them, as P_grad's contract says.
static void time_case(Case *c, double target, Timing *t) {
  int samples = 21;
  double per[NIMPL], cpu;
  for (int k = 0; k < NIMPL; k++) {
    const Impl *im = &impls[k];
    t[k].err = check(c, im);
    im->run(c);  // warm: caches, first touches, the JIT's workspace
    for (long batch = 1;; batch *= 4) {
      per[k] = time_batch(c, im, batch, &cpu);
      if (per[k] * (double)batch >= 2e-3 || batch >= 1L << 24)
        break;
    }
    if (per[k] >= 20e-3)
      samples = 7;
  }
  for (int k = 0; k < NIMPL; k++) {
    long b = (long)(target / ((double)samples * per[k]));
    t[k].batch = b < 1 ? 1 : b;
    t[k].samples = samples;
  }
  double *wall = xcalloc((size_t)(samples * NIMPL), sizeof *wall);
  double *cpus = xcalloc((size_t)(samples * NIMPL), sizeof *cpus);
  for (int s = 0; s < samples; s++)
    for (int k = 0; k < NIMPL; k++)
      wall[k * samples + s] = time_batch(c, &impls[k], t[k].batch, &cpus[k * samples + s]);
  for (int k = 0; k < NIMPL; k++) {
    t[k].wall = median(wall + k * samples, samples);
    t[k].cpu = median(cpus + k * samples, samples);
  }
  free(wall);
  free(cpus);
}

/* ---- md_compile --------------------------------------------------------- */

typedef struct Phases {
  double front;  /* parse, shapes, reverse mode, simplify: md_front */
  double print;  /* the printed formulas md_grad_formula returns */
  double emit;   /* emit_c */
  double tcc;    /* libtcc: jit_compile */
  int nodes;     /* DAG nodes after md_front: primal and gradients */
  long csize;    /* bytes of emitted C */
} Phases;

// md_compile's steps one at a time, as api.c runs them, each timed.
static bool compile_phases(const char *src, Phases *p, md_error *err) {
  Ctx c;
  double t0 = cpu_now();
  ctx_init(&c, src, (long)strlen(src), "bench", err);
  bool ok = md_front(&c);
  double t1 = cpu_now();
  for (int i = 0; ok && i < c.nvars; i++)
    if (c.vars[i].wrt)
      ok = print_str(&c, c.grads[i]) != NULL;
  double t2 = cpu_now();
  Buf code = {0};
  EmitOpts o = {.name = "md_fn", .jit = true};
  ok = ok && emit_c(&c, &o, &code);
  double t3 = cpu_now();
  Jit j;
  ok = ok && jit_compile(&j, code.s, o.name, err);
  double t4 = cpu_now();
  if (ok)
    jit_free(&j);
  *p = (Phases){t1 - t0, t2 - t1, t3 - t2, t4 - t3, c.nnodes, (long)code.len};
  buf_free(&code);
  ctx_free(&c);
  return ok;
}

static double time_md_compile(const char *src) {
  md_error err;
  double t0 = cpu_now();
  md_function *f = md_compile(src, "bench", &err);
  double t = cpu_now() - t0;
  if (!f)
    die("md_compile: %s", err.diag);
  md_free(f);
  return t;
}

// Nodes of the primal DAG: what the source says, hash-consed, before any
// derivative is taken. -1 if the source does not compile.
static int primal_nodes(const char *src) {
  md_error err;
  Ctx c;
  ctx_init(&c, src, (long)strlen(src), "bench", &err);
  int n = parse_program(&c) && lower_program(&c) ? c.nnodes : -1;
  ctx_free(&c);
  return n;
}

// The notebook's loss: md_compile whole, then phase by phase, each the
// median of many runs.
static void compile_seed(FILE *tsv, double target) {
  char *src = read_text("examples/seed.expr");
  double first = time_md_compile(src);
  int n = (int)(target / 2 / first);
  n = n < 21 ? 21 : n > 1001 ? 1001 : n;
  double *total = xcalloc((size_t)n, sizeof *total), *ph[4];
  for (int i = 0; i < n; i++)
    total[i] = time_md_compile(src);
  for (int k = 0; k < 4; k++)
    ph[k] = xcalloc((size_t)n, sizeof(double));
  Phases p;
  md_error err;
  for (int i = 0; i < n; i++) {
    if (!compile_phases(src, &p, &err))
      die("compiling %s phase by phase failed", "examples/seed.expr");
    ph[0][i] = p.front, ph[1][i] = p.print, ph[2][i] = p.emit, ph[3][i] = p.tcc;
  }
  fprintf(tsv, "compile_seed\t%d\t%d\t%ld\t%.9g\t%.9g\t%.9g\t%.9g\t%.9g\n", n, p.nodes, p.csize,
          median(total, n), median(ph[0], n), median(ph[1], n), median(ph[2], n), median(ph[3], n));
  printf("  md_compile(examples/seed.expr): %.3f ms (median of %d)\n", 1e3 * median(total, n), n);
  for (int k = 0; k < 4; k++)
    free(ph[k]);
  free(total);
  free(src);
}

/* ---- generated expressions ---------------------------------------------- */

// Three shapes of program, every input an n x n matrix. No input is used
// more than 32 times, and there are at most about 75 inputs, which keeps
// clear of two limits of the compiler as it stands: a gradient that is a sum
// of more than 65 terms crashes the simplifier (flatten in simplify.c writes
// past its 64-term array), and libtcc 0.9.27 cannot compile a call with more
// than about 250 arguments (its value stack), which the emitted entry
// points are once there are some 125 inputs with gradients.
//
//   wide      independent terms of nesting depth 3 to 5, eight to a
//             statement, the statements summed: nothing is shared between
//             terms but the inputs.
//   deep      a chain: layer i is a small function of layer i-1 (used
//             once), with weights from a pool, like a deep network.
//   residual  the deep chain with a skip connection, h_i = h_{i-1} +
//             tanh(h_{i-1}*W + C): each layer is used twice, as in a ResNet.
static char *gen_wide(int K) {
  char *s = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&s, &n);
  int G = (K + 31) / 32, S = (K + 7) / 8;
  for (int g = 0; g < G; g++)
    fprintf(f, "X%d : matrix(n, n)\nW%d : matrix(n, n)\nC%d : matrix(n, n)\n", g, g, g);
  for (int st = 0; st < S; st++) {
    fprintf(f, "s%d =", st);
    for (int i = 8 * st; i < 8 * st + 8 && i < K; i++) {
      double k = 1 + i / 4096.0;
      int g = i / 32;
      fprintf(f, i > 8 * st ? " + " : " ");
      switch (i % 4) {
      case 0: fprintf(f, "sum(tanh(X%d*W%d + C%d*%.6f))", g, g, g, k); break;
      case 1: fprintf(f, "sum(sigmoid(X%d .* C%d - %.6f))", g, g, k); break;
      case 2: fprintf(f, "%.6f*sum(W%d'*X%d .* C%d)", k, g, g, g); break;
      case 3: fprintf(f, "sum(exp(-X%d/%.6f) .* sin(W%d))", g, k, g); break;
      }
    }
    fprintf(f, "\n");
  }
  fprintf(f, "y = s0");
  for (int st = 1; st < S; st++)
    fprintf(f, " + s%d", st);
  fprintf(f, "\n");
  fclose(f);
  return s;
}

static char *gen_chain(int K, bool residual) {
  char *s = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&s, &n);
  int P = (K + 31) / 32;
  fprintf(f, "X : matrix(n, n)\n");
  for (int j = 0; j < P; j++)
    fprintf(f, "W%d : matrix(n, n)\nC%d : matrix(n, n)\n", j, j);
  for (int i = 1; i <= K; i++) {
    char h[32];
    int j = i % P;
    snprintf(h, sizeof h, i == 1 ? "X" : "h%d", i - 1);
    if (residual) {
      fprintf(f, "h%d = %s + tanh(%s*W%d + C%d)\n", i, h, h, j, j);
      continue;
    }
    switch (i % 4) {
    case 0: fprintf(f, "h%d = tanh(%s*W%d + C%d)\n", i, h, j, j); break;
    case 1: fprintf(f, "h%d = sigmoid(%s) .* C%d\n", i, h, j); break;
    case 2: fprintf(f, "h%d = %s*W%d' - C%d/2\n", i, h, j, j); break;
    case 3: fprintf(f, "h%d = sin(%s) + C%d*0.5\n", i, h, j); break;
    }
  }
  fprintf(f, "y = sum(h%d)\n", K);
  fclose(f);
  return s;
}

static char *gen_deep(int K) { return gen_chain(K, false); }
static char *gen_residual(int K) { return gen_chain(K, true); }

typedef struct Family {
  const char *id;
  char *(*gen)(int K);
  int targets[8];  /* primal DAG nodes to aim for, 0-terminated */
} Family;

static const Family families[] = {
    {"wide", gen_wide, {125, 250, 500, 1000, 2000, 4000}},
    {"deep", gen_deep, {125, 250, 500, 1000, 2000, 4000}},
    {"residual", gen_residual, {20, 30, 40, 60, 125, 250, 500, 1000}},
};

// The K (terms or layers) whose program has about TARGET primal nodes: the
// count grows linearly in K, so two probes and one correction find it.
static int k_for(const Family *fam, int target) {
  char *s8 = fam->gen(8), *s16 = fam->gen(16);
  int n8 = primal_nodes(s8), n16 = primal_nodes(s16);
  free(s8);
  free(s16);
  double per = (n16 - n8) / 8.0;
  int K = (int)lround(8 + (target - n8) / per);
  K = K < 1 ? 1 : K;
  char *s = fam->gen(K);
  int n = primal_nodes(s);
  free(s);
  K += (int)lround((target - n) / per);
  return K < 1 ? 1 : K;
}

// One size of a family, in a child process with a time limit, so that a
// compiler that crashes or takes too long is a result, not the end of the
// benchmark. The child reports through a pipe, a line per finding; the
// parent writes them to the TSV with the child's fate.
static bool compile_size(FILE *tsv, const Family *fam, int target, int timeout) {
  int fd[2];
  if (pipe(fd))
    die("pipe: %s", strerror(errno));
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0)
    die("fork: %s", strerror(errno));
  if (pid == 0) {
    close(fd[0]);
    alarm((unsigned)timeout);
    int K = k_for(fam, target);
    char *src = fam->gen(K);
    dprintf(fd[1], "size\t%d\t%d\t%zu\n", K, primal_nodes(src), strlen(src));
    Phases p;
    md_error err;
    double t0 = cpu_now();
    if (!compile_phases(src, &p, &err)) {
      dprintf(fd[1], "error\t%s\n", err.message);
      _exit(3);
    }
    double phases = cpu_now() - t0;
    dprintf(fd[1], "phases\t%d\t%ld\t%.9g\t%.9g\t%.9g\t%.9g\n", p.nodes, p.csize, p.front, p.print,
            p.emit, p.tcc);
    double v[21];
    int n = 0;
    for (double spent = 0; n < (phases > 2 ? 1 : 21) && (n < 3 || spent < 1.0); n++)
      spent += v[n] = time_md_compile(src);
    dprintf(fd[1], "md_compile\t%d\t%.9g\n", n, median(v, n));
    _exit(0);
  }
  close(fd[1]);
  char buf[4096];
  size_t got = 0;
  for (ssize_t r; (r = read(fd[0], buf + got, sizeof buf - 1 - got)) > 0;)
    got += (size_t)r;
  buf[got] = 0;
  close(fd[0]);
  int status;
  waitpid(pid, &status, 0);
  char fate[64];
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
    snprintf(fate, sizeof fate, "ok");
  else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
    snprintf(fate, sizeof fate, "timeout %ds", timeout);
  else if (WIFSIGNALED(status))
    snprintf(fate, sizeof fate, "crashed: %s", strsignal(WTERMSIG(status)));
  else
    snprintf(fate, sizeof fate, "failed: exit %d", WEXITSTATUS(status));
  // One TSV line: family, target, fate, then the child's lines joined.
  for (char *p = buf; *p; p++)
    if (*p == '\n' && p[1])
      *p = '\t';
  size_t nl = strlen(buf);
  if (nl && buf[nl - 1] == '\n')
    buf[nl - 1] = 0;
  fprintf(tsv, "compile\t%s\t%d\t%s\t%s\n", fam->id, target, fate, buf);
  printf("  %-8s %5d nodes: %s  [%s]\n", fam->id, target, fate, buf);
  fflush(NULL);
  return !strcmp(fate, "ok");
}

/* ---- the machine -------------------------------------------------------- */

static void loadavg(FILE *tsv, const char *key) {
  char line[128] = "?";
  FILE *f = fopen("/proc/loadavg", "r");
  if (f && fgets(line, sizeof line, f))
    line[strcspn(line, "\n")] = 0;
  if (f)
    fclose(f);
  fprintf(tsv, "meta\t%s\t%s\n", key, line);
}

static void meta(FILE *tsv) {
  char line[512], cpu[256] = "unknown";
  FILE *f = fopen("/proc/cpuinfo", "r");
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
      snprintf(cpu, sizeof cpu, "%s", strchr(line, ':') + 2);
      cpu[strcspn(cpu, "\n")] = 0;
      break;
    }
  if (f)
    fclose(f);
  time_t t = time(NULL);
  char date[64];
  strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S UTC", gmtime(&t));
  const char *coretype = getenv("OPENBLAS_CORETYPE"), *nthreads = getenv("OPENBLAS_NUM_THREADS");
  fprintf(tsv, "meta\tcpu\t%s\n", cpu);
  fprintf(tsv, "meta\tcores\t%ld\n", sysconf(_SC_NPROCESSORS_ONLN));
  fprintf(tsv, "meta\tdate\t%s\n", date);
  fprintf(tsv, "meta\topenblas_config\t%s\n", openblas_get_config());
  fprintf(tsv, "meta\topenblas_corename\t%s\n", openblas_get_corename());
  fprintf(tsv, "meta\topenblas_threads\t%d\n", openblas_get_num_threads());
  fprintf(tsv, "meta\tOPENBLAS_CORETYPE\t%s\n", coretype ? coretype : "(unset)");
  fprintf(tsv, "meta\tOPENBLAS_NUM_THREADS\t%s\n", nthreads ? nthreads : "(unset)");
  fprintf(tsv, "meta\tmatdiff\t%s\n", MATDIFF_VERSION);
  fprintf(tsv, "meta\tharness_cc\tgcc %s\n", __VERSION__);
  loadavg(tsv, "loadavg_start");
}

/* ---- main --------------------------------------------------------------- */

// bench --gen FAMILY K: print the program of K terms or layers, to look at
// it or to profile `matdiff compile` on it.
static int gen_main(const char *family, int K) {
  for (size_t i = 0; i < sizeof families / sizeof *families; i++)
    if (!strcmp(families[i].id, family)) {
      char *s = families[i].gen(K < 1 ? 1 : K);
      fputs(s, stdout);
      free(s);
      return 0;
    }
  fprintf(stderr, "bench: no family '%s' (wide, deep, residual)\n", family);
  return 2;
}

// bench --compile FAMILY K [N]: md_compile the program N times (default 10)
// and print the median, e.g. under `perf record`.
static int compile_main(const char *family, int K, int n) {
  for (size_t i = 0; i < sizeof families / sizeof *families; i++)
    if (!strcmp(families[i].id, family)) {
      char *s = families[i].gen(K < 1 ? 1 : K);
      double v[101];
      n = n < 1 ? 1 : n > 101 ? 101 : n;
      for (int j = 0; j < n; j++)
        v[j] = time_md_compile(s);
      printf("%s K=%d: %d primal nodes, md_compile %.3f ms CPU (median of %d)\n", family, K,
             primal_nodes(s), 1e3 * median(v, n), n);
      free(s);
      return 0;
    }
  fprintf(stderr, "bench: no family '%s' (wide, deep, residual)\n", family);
  return 2;
}

int main(int argc, char **argv) {
  const char *out = "build/bench";
  bool quick = false, compile_only = false, cases_only = false;
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], "--quick"))
      quick = true;
    else if (!strcmp(argv[i], "--compile-only"))
      compile_only = true;
    else if (!strcmp(argv[i], "--cases-only"))
      cases_only = true;
    else if (!strcmp(argv[i], "--gen") && i + 2 < argc)
      return gen_main(argv[i + 1], atoi(argv[i + 2]));
    else if (!strcmp(argv[i], "--compile") && i + 2 < argc)
      return compile_main(argv[i + 1], atoi(argv[i + 2]), i + 3 < argc ? atoi(argv[i + 3]) : 10);
    else
      out = argv[i];
  double target = quick ? 0.02 : 0.25;  // seconds of timing per implementation and case
  int timeout = quick ? 5 : 25;         // seconds per generated size
  openblas_set_num_threads(1);

  char path[4096];
  snprintf(path, sizeof path, "%s/inputs", out);
  mkdir(out, 0777);
  mkdir(path, 0777);
  snprintf(path, sizeof path, "%s/c.tsv", out);
  FILE *tsv = fopen(path, "w");
  snprintf(path, sizeof path, "%s/inputs/manifest.tsv", out);
  FILE *manifest = fopen(path, "w");
  if (!tsv || !manifest)
    die("cannot write into %s", out);
  meta(tsv);

  md_function *fs[3];
  for (int k = SEED; k <= MLP; k++) {
    md_error err;
    char *src = read_text(expr_of((Kind)k));
    if (!(fs[k] = md_compile(src, expr_of((Kind)k), &err)))
      die("%s", err.diag);
    free(src);
  }
  Case cases[] = {
      seed_case("seed10", "seed 10×4×4", 10, 4, 4),
      seed_case("seed100", "seed 100×100×100", 100, 100, 100),
      seed_case("seed1000", "seed 1000×1000×1000", 1000, 1000, 1000),
      logistic_case("logistic", "logistic n=10000 d=100", 10000, 100),
      mlp_case("mlp", "MLP n=1000 d=100 h=100 k=10", 1000, 100, 100, 10),
  };
  int ncases = compile_only ? 0 : sizeof cases / sizeof *cases, bad = 0;
  printf("== value and gradients, one thread (OpenBLAS %s), CPU µs per call\n",
         openblas_get_corename());
  for (int i = 0; i < ncases; i++) {
    Case *c = &cases[i];
    setup(c, fs[c->kind], out, manifest);
    Timing t[NIMPL];
    time_case(c, target, t);
    printf("  %-30s", c->label);
    for (int k = 0; k < NIMPL; k++) {
      fprintf(tsv, "time\t%s\t%s\t%.9g\t%.9g\t%d\t%ld\t%.3g\n", c->id, impls[k].id, t[k].cpu,
              t[k].wall, t[k].samples, t[k].batch, t[k].err);
      printf(" %s %.3g", impls[k].id, 1e6 * t[k].cpu);
      if (t[k].err > 1e-8) {
        fprintf(stderr, "bench: %s: %s differs from the baseline by %.3g\n", c->label, impls[k].id,
                t[k].err);
        bad = 1;
      }
    }
    printf("\n");
    fflush(NULL);
  }
  fclose(manifest);

  if (!cases_only) {
    printf("== md_compile\n");
    compile_seed(tsv, quick ? 0.1 : 0.6);
    for (size_t i = 0; i < sizeof families / sizeof *families; i++)
      for (int j = 0; families[i].targets[j]; j++)
        if (!compile_size(tsv, &families[i], families[i].targets[j], timeout))
          break;  // larger sizes would fare no better
  }
  loadavg(tsv, "loadavg_end");
  fclose(tsv);
  for (int k = SEED; k <= MLP; k++)
    md_free(fs[k]);
  return bad;
}
