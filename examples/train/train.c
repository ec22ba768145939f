/*
 * train.c - logistic regression fitted by gradient descent, with the loss
 * and its gradients written by `matdiff compile` from examples/logistic.expr:
 *
 *   loss     = sum(softplus(X*w + b) - y.*(X*w + b))/n
 *   dloss/dw = X'*(sigmoid(X*w + b) - y)/n
 *   dloss/db = sum(sigmoid(X*w + b) - y)/n
 *
 * The Makefile here turns the .expr into logistic.c and links it with this
 * file and the runtime. The data are two Gaussian blobs in the plane, drawn
 * from a fixed seed: label 0 around (-1, -1), label 1 around (1, 1), each
 * coordinate with standard deviation 1. Training starts at w = 0, b = 0,
 * where every prediction is 1/2 and the loss is log 2 = 0.6931 whatever the
 * data. It prints the loss every few steps and exits 1 unless the final loss
 * is below the first one.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* What `matdiff compile logistic.expr` defines: the symbolic sizes first (n,
   d, in order of appearance), then the inputs X, w, b, y as row-major
   doubles, then one gradient buffer per wrt input (w, b), which the call
   ADDS into. The _ws form works in a caller's workspace of
   logistic_workspace_size(n, d) bytes, so the loop allocates nothing. */
long logistic_workspace_size(long n, long d);
double logistic_grad_ws(long n, long d, const double *X, const double *w, const double *b,
                        const double *y, double *dw, double *db, void *ws);

enum { N = 200, D = 2, STEPS = 100, EVERY = 10 };
static const double rate = 0.2;

// splitmix64: a small generator with the same stream on every machine.
static uint64_t rng_state = 20251125;
static double uniform(void) {
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  z ^= z >> 31;
  return ((z >> 11) + 0.5) / 9007199254740992.0;  // in (0, 1)
}

// A standard normal, by Box-Muller.
static double normal(void) {
  double u = uniform(), v = uniform();
  return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

int main(void) {
  static double X[N * D], y[N];
  for (int i = 0; i < N; i++) {
    y[i] = i % 2;                      /* alternate the classes */
    double centre = y[i] ? 1.0 : -1.0;
    for (int j = 0; j < D; j++)
      X[i * D + j] = centre + normal();
  }

  double w[D] = {0}, b = 0, dw[D], db;
  void *ws = malloc((size_t)logistic_workspace_size(N, D));
  if (!ws)
    return fprintf(stderr, "train: out of memory\n"), 1;
  double first = NAN, loss = NAN;
  printf("logistic regression, %d points in %d dimensions, step %.2f\n", N, D, rate);
  for (int step = 0; step <= STEPS; step++) {
    for (int j = 0; j < D; j++)
      dw[j] = 0;                       /* the gradients accumulate: zero them */
    db = 0;
    loss = logistic_grad_ws(N, D, X, w, &b, y, dw, &db, ws);
    if (step == 0)
      first = loss;
    if (step % EVERY == 0)
      printf("step %3d  loss %.4f\n", step, loss);
    if (step == STEPS)
      break;                           /* report the loss at the final weights */
    for (int j = 0; j < D; j++)
      w[j] -= rate * dw[j];
    b -= rate * db;
  }
  free(ws);

  int right = 0;
  for (int i = 0; i < N; i++) {
    double z = b;
    for (int j = 0; j < D; j++)
      z += X[i * D + j] * w[j];
    right += (z > 0) == (y[i] > 0.5);
  }
  printf("w = (%.3f, %.3f), b = %.3f, %d of %d points on the right side\n", w[0], w[1], b, right,
         N);
  if (!(loss < first)) {
    fprintf(stderr, "train: the loss did not go down: %.4f, then %.4f\n", first, loss);
    return 1;
  }
  return 0;
}
