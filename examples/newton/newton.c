/*
 * newton.c - the logistic regression of examples/train fitted by Newton's
 * method, with the gradient and the Hessian written by
 * `matdiff compile` from examples/logistic.expr:
 *
 *   loss          = sum(softplus(X*w + b) - y.*(X*w + b))/n
 *   d2loss/dw2    = X'*diag(sigmoid(z).*(1 - sigmoid(z)))*X/n, z = X*w + b
 *
 * Each step solves H*step = -g for (w, b) stacked, by LAPACK's Cholesky
 * (dposv, which OpenBLAS ships; H is symmetric positive definite here, so
 * its row-major layout is its column-major one). It stops when the
 * gradient's norm is below 1e-10, and does the same by gradient descent
 * (the step of examples/train) to compare. The data are examples/train's:
 * two Gaussian blobs in the plane from a fixed seed. It exits 1 unless
 * Newton's method converges in at most 10 iterations.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* What `matdiff compile logistic.expr` defines (the header
   comment of the file it writes says the same): sizes n, d; inputs X, w,
   b, y; the gradients ADDED into dw, db; the Hessian over w and b stacked,
   (d + 1) x (d + 1), ADDED into H. */
long logistic_workspace_size(long n, long d);
double logistic_grad_ws(long n, long d, const double *X, const double *w, const double *b,
                        const double *y, double *dw, double *db, void *ws);
long logistic_hessian_workspace_size(long n, long d);
int logistic_hessian_ws(long n, long d, const double *X, const double *w, const double *b,
                        const double *y, double *H, void *ws);

/* LAPACK's Cholesky solve, from OpenBLAS. */
void dposv_(const char *uplo, const int *n, const int *nrhs, double *a, const int *lda, double *b,
            const int *ldb, int *info);

enum { N = 200, D = 2, P = D + 1, MAX_NEWTON = 50, MAX_GD = 1000000 };
static const double rate = 0.2, tol = 1e-10;

// splitmix64 and Box-Muller, as examples/train draws its data.
static uint64_t rng_state = 20251125;
static double uniform(void) {
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  z ^= z >> 31;
  return ((z >> 11) + 0.5) / 9007199254740992.0;
}

static double normal(void) {
  double u = uniform(), v = uniform();
  return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

static double X[N * D], y[N];

// The loss at x = (w, b), and its gradient into g; the norm of g in *norm.
static double gradient(const double *x, double *g, double *norm, void *ws) {
  for (int j = 0; j < P; j++)
    g[j] = 0;
  double loss = logistic_grad_ws(N, D, X, x, x + D, y, g, g + D, ws);
  *norm = 0;
  for (int j = 0; j < P; j++)
    *norm += g[j] * g[j];
  *norm = sqrt(*norm);
  return loss;
}

int main(void) {
  for (int i = 0; i < N; i++) {
    y[i] = i % 2;
    double centre = y[i] ? 1.0 : -1.0;
    for (int j = 0; j < D; j++)
      X[i * D + j] = centre + normal();
  }
  long a = logistic_workspace_size(N, D), h = logistic_hessian_workspace_size(N, D);
  void *ws = malloc((size_t)(a > h ? a : h));
  if (!ws)
    return fprintf(stderr, "newton: out of memory\n"), 1;

  double x[P] = {0}, g[P], H[P * P], norm, loss = 0;
  int newton = -1;
  printf("logistic regression, %d points in %d dimensions\n", N, D);
  for (int it = 0; it <= MAX_NEWTON; it++) {
    loss = gradient(x, g, &norm, ws);
    printf("newton %2d  loss %.12f  |g| %.3g\n", it, loss, norm);
    if (norm < tol) {
      newton = it;
      break;
    }
    for (int k = 0; k < P * P; k++)
      H[k] = 0;                        /* the Hessian is added: zero it */
    if (logistic_hessian_ws(N, D, X, x, x + D, y, H, ws))
      return fprintf(stderr, "newton: the Hessian failed\n"), 1;
    double step[P];
    for (int j = 0; j < P; j++)
      step[j] = -g[j];
    int n = P, one = 1, info;
    dposv_("U", &n, &one, H, &n, step, &n, &info);
    if (info)
      return fprintf(stderr, "newton: the Hessian is not positive definite (dposv %d)\n", info), 1;
    for (int j = 0; j < P; j++)
      x[j] += step[j];
  }
  double at[P] = {x[0], x[1], x[2]};

  // Gradient descent from the same start, to the same gradient norm.
  double z[P] = {0};
  int gd = -1;
  for (int it = 0; it <= MAX_GD; it++) {
    gradient(z, g, &norm, ws);
    if (norm < tol) {
      gd = it;
      break;
    }
    for (int j = 0; j < P; j++)
      z[j] -= rate * g[j];
  }
  free(ws);
  printf("w = (%.6f, %.6f), b = %.6f\n", at[0], at[1], at[2]);
  printf("|g| < %g: Newton's method in %d iterations, gradient descent (step %.1f) in %d\n", tol,
         newton, rate, gd);
  if (newton < 0 || newton > 10) {
    fprintf(stderr, "newton: Newton's method took %s 10 iterations\n", newton < 0 ? "far more than"
                                                                                 : "more than");
    return 1;
  }
  return 0;
}
