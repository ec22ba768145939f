/*
 * harness.c - the C half of `make bench` (build/bench/libharness.so),
 * which bench/bench.py loads with ctypes: the timing loop, and the calls it
 * times for the JIT (md_grad, md_eval) and the hand-written baselines
 * (hand.c). The AOT code's calls are generated next to each compiled file
 * (bench.py writes them). Every call takes one array of pointers, laid out
 * by bench.py, so that one loop times them all.
 *
 * Python only starts the loop: a batch of calls runs here, back to back,
 * as a C program would call them, so that no interpreter overhead enters a
 * C implementation's time.
 */
#include <time.h>
#include "hand.h"
#include "matdiff.h"

typedef double (*Call)(void **a);

double mdb_time(Call call, void **a, long reps, double *wall);
double mdb_jit_grad(void **a);
double mdb_jit_eval(void **a);
double mdb_hand_seed(void **a);
double mdb_hand_logistic(void **a);
double mdb_hand_mlp(void **a);
double mdb_jit_hessian(void **a);
double mdb_jit_hvp(void **a);
double mdb_hand_logistic_hessian(void **a);
double mdb_hand_logistic_hvp(void **a);
double mdb_hand_factor_hessian(void **a);

static double now(clockid_t clock) {
  struct timespec t;
  clock_gettime(clock, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static volatile double sink;

// REPS calls: the calling thread's CPU time, and the wall time into *WALL.
// The machine may be shared, so CPU time is what the tables report; with
// one BLAS thread the work runs in the calling thread.
double mdb_time(Call call, void **a, long reps, double *wall) {
  double w0 = now(CLOCK_MONOTONIC), t0 = now(CLOCK_THREAD_CPUTIME_ID), s = 0;
  for (long i = 0; i < reps; i++)
    s += call(a);
  double t = now(CLOCK_THREAD_CPUTIME_ID) - t0;
  *wall = now(CLOCK_MONOTONIC) - w0;
  sink = s;
  return t;
}

/* a: the md_function, its sizes (long *), its inputs (const double **),
   OUT, and for md_grad the gradient buffers (double **). bench.py calls
   from one thread. */
static md_error err;

double mdb_jit_grad(void **a) {
  double *out = a[3];
  md_grad(a[0], a[1], (const double *const *)a[2], out, (double *const *)a[4], &err);
  return out[0];
}

double mdb_jit_eval(void **a) {
  double *out = a[3];
  md_eval(a[0], a[1], (const double *const *)a[2], out, &err);
  return out[0];
}

/* a: the md_function, its sizes, its inputs, H (md_hessian); or for
   md_hvp the directions (const double **) and the products (double **),
   then the first product's buffer, whose first element is returned. */
double mdb_jit_hessian(void **a) {
  double *H = a[3];
  md_hessian(a[0], a[1], (const double *const *)a[2], H, &err);
  return H[0];
}

double mdb_jit_hvp(void **a) {
  double *hv = a[5];
  md_hvp(a[0], a[1], (const double *const *)a[2], (const double *const *)a[3],
         (double *const *)a[4], &err);
  return hv[0];
}

/* a: the sizes (long *), the inputs, OUT, the gradients, the workspace, in
   the order hand.h declares them. */
double mdb_hand_seed(void **a) {
  const long *d = a[0];
  double *out = a[4];
  return out[0] = hand_seed(d[0], d[1], d[2], a[1], a[2], a[3], a[5], a[6], a[7], a[8]);
}

double mdb_hand_logistic(void **a) {
  const long *d = a[0];
  double *out = a[5];
  return out[0] = hand_logistic(d[0], d[1], a[1], a[2], a[3], a[4], a[6], a[7], a[8]);
}

double mdb_hand_mlp(void **a) {
  const long *d = a[0];
  double *out = a[7];
  return out[0] = hand_mlp(d[0], d[1], d[2], d[3], a[1], a[2], a[3], a[4], a[5], a[6], a[8],
                           a[9], a[10], a[11], a[12]);
}

/* a: the sizes, the inputs, (for the HVP the direction), the result, the
   workspace. */
double mdb_hand_logistic_hessian(void **a) {
  const long *d = a[0];
  double *H = a[5];
  hand_logistic_hessian(d[0], d[1], a[1], a[2], a[3], H, a[6]);
  return H[0];
}

double mdb_hand_logistic_hvp(void **a) {
  const long *d = a[0];
  double *hv = a[6];
  hand_logistic_hvp(d[0], d[1], a[1], a[2], a[3], a[5], hv, a[7]);
  return hv[0];
}

double mdb_hand_factor_hessian(void **a) {
  const long *d = a[0];
  double *H = a[5];
  hand_factor_hessian(d[0], d[1], d[2], a[1], a[2], a[3], a[4], H, a[6]);
  return H[0];
}
