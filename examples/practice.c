/*
 * practice.c - the seed notebook's "Practice" cells, In [3] to In [5],
 * replayed through the public API (matdiff.h) alone. It shows that md_grad
 * ADDS into the gradient buffers as PyTorch's .backward() adds into .grad,
 * and that zeroing them is the caller's job, as .grad.zero_() is. It prints
 * each cell like the notebook, checks every number and exits 1 on a mismatch.
 * Build it against the matdiff library (see the Makefile).
 *
 * The expected numbers, by hand, with w = 2, x = 1, b = 3:
 *   In [3]  y = (w*x + b)^2.  Let u = w*x + b = 5, so y = 25 and
 *           dy/dw = 2u*x = 10,  dy/dx = 2u*w = 20,  dy/db = 2u = 10.
 *   In [4]  y = w*x + b = 5:  dy/dw = x = 1,  dy/dx = w = 2,  dy/db = 1,
 *           added to what In [3] left: 10+1, 20+2, 10+1 = 11, 22, 11.
 *   In [5]  the same y after zeroing the buffers: 1, 2, 1.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "matdiff.h"

// The notebook's leaves, in its print order. A scalar is one double.
enum { W, X, B, NLEAF };
static const char *const leaf_name[NLEAF] = {"w", "x", "b"};
static double leaf[NLEAF] = {2, 1, 3};
static double grad[NLEAF];   /* starts at 0, like a fresh .grad */

static const char square_src[] = "w : scalar\nx : scalar\nb : scalar\ny = (w*x + b)^2\n";
static const char linear_src[] = "w : scalar\nx : scalar\nb : scalar\ny = w*x + b\n";

static md_function *compile(const char *source, const char *name) {
  md_error err;
  md_function *f = md_compile(source, name, &err);
  if (!f)
    fprintf(stderr, "%s\n", err.diag);
  return f;
}

// Which leaf an input of a compiled function is, by name; -1 if none.
static int leaf_of(const char *name) {
  for (int i = 0; i < NLEAF; i++)
    if (name && !strcmp(name, leaf_name[i]))
      return i;
  return -1;
}

// y.backward(): evaluate F and add its gradients into grad[].
static int backward(md_function *f, double *y) {
  const double *inputs[NLEAF];
  double *grads[NLEAF];
  if (md_num_inputs(f) != NLEAF) {
    fprintf(stderr, "practice: expected %d inputs, got %d\n", NLEAF, md_num_inputs(f));
    return -1;
  }
  for (int i = 0; i < NLEAF; i++) {
    int k = leaf_of(md_input_name(f, i));
    if (k < 0) {
      fprintf(stderr, "practice: unexpected input '%s'\n", md_input_name(f, i));
      return -1;
    }
    inputs[i] = &leaf[k];
    grads[i] = &grad[k];
  }
  md_error err;
  if (md_grad(f, NULL, inputs, y, grads, &err) != 0) {   // no symbolic sizes: dims unused
    fprintf(stderr, "%s\n", err.diag);
    return -1;
  }
  return 0;
}

// PyTorch's spelling of a one-element tensor: tensor([10.]).
static void print_tensor(const char *what, double v, const char *suffix) {
  if (v == floor(v) && fabs(v) < 1e15)
    printf("%-7s tensor([%.0f.]%s)\n", what, v, suffix);
  else
    printf("%-7s tensor([%.4f]%s)\n", what, v, suffix);
}

static int check(const char *cell, const char *what, double got, double want) {
  if (fabs(got - want) <= 1e-12 * fmax(1, fabs(want)))
    return 0;
  fprintf(stderr, "practice: %s: %s is %.17g, expected %.17g\n", cell, what, got, want);
  return 1;
}

// One cell: backward() of F, print, check y and the three .grad values
// against WANT. Returns the number of mismatches, or -1 on an error.
static int cell(const char *title, const char *code, md_function *f, int show_leaves,
                double want_y, const double want[NLEAF]) {
  printf("%s:\n%s", title, code);
  double y;
  if (backward(f, &y) < 0)
    return -1;
  if (show_leaves)
    for (int i = 0; i < NLEAF; i++)
      print_tensor(leaf_name[i], leaf[i], ", requires_grad=True");
  int bad = check(title, "y", y, want_y);
  for (int i = 0; i < NLEAF; i++) {
    char what[16];
    snprintf(what, sizeof what, "%s.grad", leaf_name[i]);
    print_tensor(what, grad[i], "");
    bad += check(title, what, grad[i], want[i]);
  }
  printf("\n");
  return bad;
}

static int run(md_function *square, md_function *linear) {
  int r3 = cell("In [3]", "  y = (w*x + b).pow(2); y.backward()\n", square, 1, 25,
                (const double[]){10, 20, 10});
  if (r3 < 0)
    return -1;
  int r4 = cell("In [4]", "  y = w*x + b; y.backward()\n", linear, 0, 5,
                (const double[]){11, 22, 11});
  if (r4 < 0)
    return -1;
  memset(grad, 0, sizeof grad);   // w.grad.zero_(); x.grad.zero_(); b.grad.zero_()
  int r5 = cell("In [5]", "  w.grad.zero_(); x.grad.zero_(); b.grad.zero_(); y.backward()\n",
                linear, 0, 5, (const double[]){1, 2, 1});
  return r5 < 0 ? -1 : r3 + r4 + r5;
}

int main(void) {
  md_function *square = compile(square_src, "practice:In[3]");
  md_function *linear = compile(linear_src, "practice:In[4]");
  int bad = square && linear ? run(square, linear) : -1;
  if (square)
    md_free(square);
  if (linear)
    md_free(linear);
  if (bad < 0)
    return 1;
  if (bad > 0) {
    fprintf(stderr, "practice: %d number%s differ from the notebook\n", bad, bad == 1 ? "" : "s");
    return 1;
  }
  printf("practice: all numbers match the notebook\n");
  return 0;
}
