/*
 * test_threads.c - one md_function called from 8 threads at once gives
 * what it gives called from one thread: md_eval, md_grad, md_vjp and
 * md_tape_vjp, at one size in every thread and at different sizes, with
 * md_grad_formula and md_flops asked for meanwhile. Before calls were
 * reentrant, the function's one cached workspace was shared (and resized)
 * by concurrent calls: wrong values, or a heap overflow.
 *
 * `make test SAN=thread` runs this under ThreadSanitizer (build/tsan), which
 * also reports a race inside the runtime's kernels that the emitted code
 * calls; the comparison with one thread's results catches the rest.
 *
 * A plain program, not a Criterion suite: Criterion cannot start under
 * ThreadSanitizer (its arena's fixed mapping collides with TSan's). It
 * prints a line per case and exits 1 if any failed.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "matdiff.h"

// The assertions: a failed one ends the program.
#define require(cond, ...) \
  do {                     \
    if (!(cond)) {         \
      fprintf(stderr, "test_threads: " __VA_ARGS__); \
      fputc('\n', stderr); \
      exit(1);             \
    }                      \
  } while (0)

enum { THREADS = 8, PROBLEMS = 8 };

#if defined(__SANITIZE_THREAD__)
enum { CALLS = 40 };
#else
enum { CALLS = 400 };
#endif

// The notebook's loss at symbolic sizes, and a matrix output for md_vjp.
static const char *const sources[] = {
    "X : matrix(n, k)\nW : matrix(k, m)\nb : matrix(n, m)\ny = ||X*W + b||_F^2\n",
    "X : matrix(n, k)\nW : matrix(k, m)\nb : matrix(n, m)\ny = tanh(X*W + b)\n",
};

// One problem: its sizes, inputs, seed, and one thread's results.
typedef struct Problem {
  long dims[3];             /* n, k, m */
  long len[3], outlen;
  double *in[3], *seed;
  double *value, *grad[3];  /* md_grad's (md_vjp's for a matrix output) */
  double *tvalue, *tgrad[3]; /* md_tape_vjp's */
} Problem;

typedef struct Shared {
  md_function *f;
  bool matrix;              /* the output is a matrix: md_vjp with the seed */
  Problem p[PROBLEMS];
  bool same;                /* every thread on problem 0 */
  pthread_barrier_t start;
  int wrong;                /* under lock */
  char first[1024];
  pthread_mutex_t lock;
} Shared;

static double *filled(long n, unsigned *state) {
  double *x = malloc(sizeof *x * (size_t)n);
  require(x, "out of memory");
  for (long i = 0; i < n; i++)
    x[i] = (double)(rand_r(state) % 2001 - 1000) / 500;
  return x;
}

static double *zeros(long n) {
  double *x = calloc((size_t)n, sizeof *x);
  require(x, "out of memory");
  return x;
}

// One call of each entry point on problem P into fresh buffers: value, the
// gradients, the tape's value and gradients. 0, or -1 with *ERR filled.
static int compute(Shared *s, Problem *p, double *value, double **grad, double *tvalue,
                   double **tgrad, md_error *err) {
  const double *const *in = (const double *const *)p->in;
  double y[1];
  if (md_eval(s->f, p->dims, in, s->matrix ? value : y, err) != 0)
    return -1;
  int rc = s->matrix ? md_vjp(s->f, p->dims, in, p->seed, value, grad, err)
                     : md_grad(s->f, p->dims, in, value, grad, err);
  if (rc == 0 && !s->matrix && y[0] != value[0]) {
    snprintf(err->message, sizeof err->message, "md_eval gave %.17g, md_grad %.17g", y[0], value[0]);
    return -1;
  }
  return rc ? -1 : md_tape_vjp(s->f, p->dims, in, s->matrix ? p->seed : NULL, tvalue, tgrad, err);
}

static void problem_init(Shared *s, Problem *p, int t) {
  unsigned state = 17u + (unsigned)t;
  p->dims[0] = 3 + 5 * t;        /* n */
  p->dims[1] = 2 + t % 5;        /* k */
  p->dims[2] = 1 + (3 * t) % 7;  /* m */
  long n = p->dims[0], k = p->dims[1], m = p->dims[2];
  p->len[0] = n * k, p->len[1] = k * m, p->len[2] = n * m;
  p->outlen = s->matrix ? n * m : 1;
  for (int i = 0; i < 3; i++) {
    p->in[i] = filled(p->len[i], &state);
    p->grad[i] = zeros(p->len[i]);
    p->tgrad[i] = zeros(p->len[i]);
  }
  p->seed = filled(p->outlen, &state);
  p->value = zeros(p->outlen);
  p->tvalue = zeros(p->outlen);
  md_error err;
  require(compute(s, p, p->value, p->grad, p->tvalue, p->tgrad, &err) == 0, "%s", err.message);
}

static void problem_free(Problem *p) {
  for (int i = 0; i < 3; i++)
    free(p->in[i]), free(p->grad[i]), free(p->tgrad[i]);
  free(p->seed), free(p->value), free(p->tvalue);
}

static bool equal(const double *a, const double *b, long n) {
  return !memcmp(a, b, sizeof *a * (size_t)n);
}

typedef struct Worker {
  Shared *s;
  int t;
} Worker;

static void *worker(void *arg) {
  Worker *w = arg;
  Shared *s = w->s;
  pthread_barrier_wait(&s->start);
  for (int call = 0; call < CALLS; call++) {
    Problem *p = &s->p[s->same ? 0 : (w->t + call) % PROBLEMS];
    double *value = zeros(p->outlen), *tvalue = zeros(p->outlen), *g[3], *tg[3];
    for (int i = 0; i < 3; i++)
      g[i] = zeros(p->len[i]), tg[i] = zeros(p->len[i]);
    md_error err;
    int rc = compute(s, p, value, g, tvalue, tg, &err);
    bool ok = rc == 0 && equal(value, p->value, p->outlen) && equal(tvalue, p->tvalue, p->outlen);
    for (int i = 0; i < 3; i++)
      ok = ok && equal(g[i], p->grad[i], p->len[i]) && equal(tg[i], p->tgrad[i], p->len[i]);
    // The queries that fill the function's caches, meanwhile.
    if (call % 8 == w->t)
      ok = ok && md_grad_formula(s->f, 1 + call % 2) && md_flops(s->f, p->dims, call % 2) > 0;
    if (!ok) {
      pthread_mutex_lock(&s->lock);
      if (!s->wrong++)
        snprintf(s->first, sizeof s->first, "thread %d, call %d, sizes %ldx%ldx%ld: %s", w->t,
                 call, p->dims[0], p->dims[1], p->dims[2],
                 rc ? err.message : "not what one thread computes");
      pthread_mutex_unlock(&s->lock);
    }
    free(value), free(tvalue);
    for (int i = 0; i < 3; i++)
      free(g[i]), free(tg[i]);
  }
  return NULL;
}

// 8 threads calling SRC's function, all on one problem (SAME) or each on
// all of them in turn. true if every call gave one thread's results.
static bool eight_threads(const char *name, const char *src, bool same) {
  Shared *s = calloc(1, sizeof *s);
  require(s, "out of memory");
  md_error err;
  s->f = md_compile(src, "threads.expr", &err);
  require(s->f, "%s", err.diag);
  s->matrix = md_output_rows(s->f, (long[]){2, 2, 2}) > 1;
  s->same = same;
  for (int t = 0; t < PROBLEMS; t++)
    problem_init(s, &s->p[t], t);
  pthread_mutex_init(&s->lock, NULL);
  pthread_barrier_init(&s->start, NULL, THREADS);
  pthread_t th[THREADS];
  Worker w[THREADS];
  for (int t = 0; t < THREADS; t++) {
    w[t] = (Worker){s, t};
    require(pthread_create(&th[t], NULL, worker, &w[t]) == 0, "cannot start a thread");
  }
  for (int t = 0; t < THREADS; t++)
    pthread_join(th[t], NULL);
  bool ok = s->wrong == 0;
  if (ok)
    printf("ok      %s: %d calls\n", name, THREADS * CALLS);
  else
    printf("FAILED  %s: %d of %d calls went wrong; the first: %s\n", name, s->wrong,
           THREADS * CALLS, s->first);
  pthread_barrier_destroy(&s->start);
  pthread_mutex_destroy(&s->lock);
  for (int t = 0; t < PROBLEMS; t++)
    problem_free(&s->p[t]);
  md_free(s->f);
  free(s);
  return ok;
}

int main(void) {
  bool ok = eight_threads("scalar output, same sizes", sources[0], true);
  ok &= eight_threads("scalar output, different sizes", sources[0], false);
  ok &= eight_threads("matrix output, same sizes", sources[1], true);
  ok &= eight_threads("matrix output, different sizes", sources[1], false);
  return ok ? 0 : 1;
}
