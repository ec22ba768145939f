/*
 * hand.h - the benchmark's baseline: each case written by hand against
 * CBLAS, the way an expert writes it (see hand.c). Same calling convention
 * as the emitted P_grad_ws: row-major doubles, the value returned, each
 * gradient ADDED into its buffer, scratch in a caller's workspace.
 */
#ifndef BENCH_HAND_H
#define BENCH_HAND_H

/* ||X*W + b||_F^2, X n x k, W k x m, b n x m. WS: n*m doubles. */
double hand_seed(long n, long k, long m, const double *X, const double *W, const double *b,
                 double *dX, double *dW, double *db, double *ws);
long hand_seed_ws(long n, long k, long m);

/* sum(softplus(z) - y.*z)/n with z = X*w + b; X n x d, w d x 1, b 1 x 1,
   y n x 1 in {0, 1}. Gradients for w and b. WS: n doubles. */
double hand_logistic(long n, long d, const double *X, const double *w, const double *b,
                     const double *y, double *dw, double *db, double *ws);
long hand_logistic_ws(long n, long d);

/* (sum(logsumexp(Z, 2)) - sum(Y.*Z))/n with H = tanh(X*W1 + b1'),
   Z = H*W2 + b2'; X n x d, W1 d x h, b1 h x 1, W2 h x k, b2 k x 1, Y n x k.
   Gradients for W1, b1, W2, b2. WS: 2*n*h + n*k doubles. */
double hand_mlp(long n, long d, long h, long k, const double *X, const double *W1,
                const double *b1, const double *W2, const double *b2, const double *Y,
                double *dW1, double *db1, double *dW2, double *db2, double *ws);
long hand_mlp_ws(long n, long d, long h, long k);

/* Second order of the logistic loss above, wrt w only: the Hessian ADDED
   into H (d x d), and the Hessian times V ADDED into HV. */
void hand_logistic_hessian(long n, long d, const double *X, const double *w, const double *b,
                           double *H, double *ws);
long hand_logistic_hessian_ws(long n, long d);
void hand_logistic_hvp(long n, long d, const double *X, const double *w, const double *b,
                       const double *v, double *hv, double *ws);
long hand_logistic_hvp_ws(long n, long d);

/* examples/factorisation.expr's loss, R m x n, U m x k, V n x k: its
   Hessian wrt U ADDED into H (mk x mk, U's row-major vec layout). */
void hand_factor_hessian(long m, long n, long k, const double *R, const double *U,
                         const double *V, const double *lambda, double *H, double *ws);
long hand_factor_hessian_ws(long m, long n, long k);

#endif
