/*
 * test_chain.c - chain.c's rewrites for cost, each held against the form
 * it rewrote: the value and every gradient of a program, evaluated on the
 * runtime's tape as the front half leaves them and as chain_rewrite
 * leaves them, must agree. Then the point of each rewrite: what it leaves
 * has no product of two matrices where the program needs none (the issue's
 * probes), and a long chain is grouped by its sizes. The pipeline runs the
 * rewrite before planning: the compiled code's value and gradients are
 * held against the tape of the unrewritten DAG (md_check), and the C it
 * writes for diag(v)*A has no n x n buffer. A chain whose grouping its
 * symbolic sizes decide is grouped at run time: at sizes where each
 * grouping wins, the code runs it (the operations gemm does, counted in
 * the compiled C) and agrees with the tape and with the code for those
 * literal sizes, the second order too; the switch is emitted only where
 * the sizes decide.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>
#include "matdiff_rt.h"
#include "md.h"
#include "util.h"

enum { N = 7, MAXROOTS = 8, MAXVARS = 32 };

typedef struct Case {
  const char *src;
  bool dense_products;  /* the rewritten DAG may keep a matrix times a matrix */
} Case;

// Every size N, every input drawn from the case's own stream.
static void inputs(Ctx *c, const char *src, long *dims, double **in) {
  Rng g = {fnv1a(src)};
  for (int i = 0; i < c->ndims; i++)
    dims[i] = N;
  for (int i = 0; i < c->nvars; i++) {
    long len = dim_value(c->vars[i].shape.r, dims) * dim_value(c->vars[i].shape.c, dims);
    in[i] = malloc(sizeof(double) * (size_t)len);
    for (long k = 0; k < len; k++)
      in[i][k] = uniform(&g, -1, 1);
  }
}

// ROOT's value, recorded on a tape: into a fresh buffer, with its size.
static double *value(Ctx *c, Node *root, const long *dims, double **in, long *len) {
  mdrt_tape *t = mdrt_tape_new();
  int leaves[MAXVARS];
  Node *out = c->out;
  c->out = root;
  int h = record_on_tape(c, t, dims, (const double *const *)in, leaves);
  c->out = out;
  cr_assert_geq(h, 0, "tape: %s", mdrt_tape_error(t));
  *len = mdrt_tape_rows(t, h) * mdrt_tape_cols(t, h);
  double *v = malloc(sizeof(double) * (size_t)*len);
  memcpy(v, mdrt_tape_value(t, h), sizeof(double) * (size_t)*len);
  mdrt_tape_free(t);
  return v;
}

// Is there a product of two matrices (neither a vector nor a scalar) in
// the DAG below ROOT?
static bool dense_product(Ctx *c, Node *root) {
  char *seen = calloc((size_t)c->nnodes, 1);
  ast_mark(c, root, seen);
  bool found = false;
  for (int i = 0; i <= root->id; i++) {
    Node *x = c->nodes[i];
    if (seen[i] && x->op == OP_MUL) {
      Shape a = x->a->shape, b = x->b->shape;
      bool vec_a = (a.r.sym < 0 && a.r.n == 1) || (a.c.sym < 0 && a.c.n == 1);
      bool vec_b = (b.r.sym < 0 && b.r.n == 1) || (b.c.sym < 0 && b.c.n == 1);
      found |= !vec_a && !vec_b;
    }
  }
  free(seen);
  return found;
}

// The JIT's code, which computes the rewritten roots, against the tape of
// the DAG as written (md_check records c->out, which the rewrite leaves
// alone), and against finite differences.
static void check_compiled(const Case *k) {
  md_error err;
  md_function *f = md_compile(k->src, "chain.expr", &err);
  cr_assert(f, "%s%s", k->src, err.diag);
  long dims[8];
  for (int i = 0; i < md_num_dims(f) && i < 8; i++)
    dims[i] = N;
  md_check_result r;
  cr_assert_eq(md_check(f, dims, NULL, &r, &err), 0, "%s%s", k->src, err.message);
  cr_expect(r.value <= MD_CHECK_TOL_TAPE, "%scompiled value off the tape by %g", k->src, r.value);
  for (int i = 0; i < md_num_inputs(f); i++)
    if (md_input_is_wrt(f, i))
      cr_expect(r.tape[i] <= MD_CHECK_TOL_TAPE && r.fd[i] <= MD_CHECK_TOL_FD,
                "%scompiled d/d%s off the tape by %g, finite differences by %g", k->src,
                md_input_name(f, i), r.tape[i], r.fd[i]);
  md_check_result_free(&r);
  md_free(f);
}

static void check(const Case *k) {
  md_error err;
  Ctx c;
  ctx_init(&c, k->src, (long)strlen(k->src), "chain.expr", &err);
  cr_assert(md_front(&c), "%s", err.diag);
  Node *roots[MAXROOTS], *was[MAXROOTS];
  int n = 0;
  roots[n++] = c.out;
  for (int i = 0; i < c.nvars && n < MAXROOTS; i++)
    if (c.grads[i])
      roots[n++] = c.grads[i];
  memcpy(was, roots, sizeof roots);
  cr_assert(chain_rewrite(&c, roots, n), "%s", k->src);
  long dims[8];
  double *in[MAXVARS];
  inputs(&c, k->src, dims, in);
  for (int r = 0; r < n; r++) {
    long la, lb;
    double *a = value(&c, was[r], dims, in, &la), *b = value(&c, roots[r], dims, in, &lb);
    cr_assert_eq(la, lb);
    double d = 0, m = 1;
    for (long i = 0; i < la; i++)
      d = fmax(d, fabs(a[i] - b[i])), m = fmax(m, fabs(a[i]));
    cr_expect(d <= 1e-12 * m, "%sroot %d: rewritten differs by %g\n%s", k->src, r, d / m,
              print_str(&c, roots[r]));
    if (!k->dense_products)
      cr_expect(!dense_product(&c, roots[r]), "%sroot %d keeps a matrix product: %s", k->src, r,
                print_str(&c, roots[r]));
    free(a), free(b);
  }
  for (int i = 0; i < c.nvars; i++)
    free(in[i]);
  ctx_free(&c);
  check_compiled(k);
}

static const Case cases[] = {
    /* the six probes of issue #13 */
    {"A : matrix(n, n)\nB : matrix(n, n)\nx : vector(n)\ny = sum(A*B*x)\n", false},
    {"A : matrix(n, n)\nx : vector(n)\nwrt x\ny = x'*(A'*A)*x\n", false},
    {"A : matrix(n, n)\nv : vector(n)\ny = ||diag(v)*A||_F^2\n", false},
    {"A : matrix(n, n)\nv : vector(n)\ny = ||A*diag(v)||_F^2\n", false},
    {"A : matrix(n, n)\nB : matrix(n, n)\ny = sum(A*B)\n", false},
    {"A : matrix(n, n)\ny = ||eye(n)*A||_F^2\n", false},
    /* what is read of a product */
    {"M : matrix(n, n)\nP : matrix(n, n)\nv : vector(n)\ny = v'*diag(M*P)\n", false},
    {"M : matrix(n, n)\nP : matrix(n, n)\ny = tr(M*P)\n", false},
    {"M : matrix(n, n)\nP : matrix(n, n)\nQ : matrix(n, n)\ny = sum(2*M*P*Q)\n", false},
    {"M : matrix(n, n)\nP : matrix(n, n)\ny = sum(diag(M*P')/3)\n", false},
    /* ones, eye, transposes, sums */
    {"A : matrix(n, n)\nx : vector(n)\ny = ones(n,1)'*A*x\n", false},
    {"A : matrix(n, n)\nB : matrix(n, n)\ny = sum(ones(n,n)*A .* B)\n", false},
    {"A : matrix(n, n)\nx : vector(n)\ny = x'*A'*(A*x) + sum(x'*A')\n", false},
    {"A : matrix(n, n)\nx : vector(n)\ny = x'*(A + A')*x\n", false},
    {"A : matrix(n, n)\nx : vector(n)\ny = x'*A*x\n", false},
    {"A : matrix(n, n)\nv : vector(n)\nw : vector(n)\ny = w'*diag(v)*A*diag(w)*v\n", false},
    /* reductions taken through sums and products; a shared factor */
    {"A : matrix(n, n)\nB : matrix(n, n)\ny = sum(A*B - 2*B'*A) + tr(A*B + B'*A')\n", false},
    {"A : matrix(n, n)\nB : matrix(n, n)\nx : vector(n)\ny = diag(A*B + (B*A)')'*x\n", false},
    {"A : matrix(n, n)\nB : matrix(n, n)\nC : matrix(n, n)\nx : vector(n)\n"
     "y = sum(A*B*C*x)\n", false},
    {"A : matrix(n, n)\nB : matrix(n, n)\nx : vector(n)\nu : vector(n)\n"
     "y = sum(exp(A*(x*u' + B*x*u')))\n", false},
    /* a scaled buffer added into two gradients (axpby), whose operand's
       memory a later product reuses */
    {"A : matrix(n, n)\nB : matrix(n, n)\nD : matrix(n, n)\n"
     "f = ||B'*A*inv(D + 3*n*eye(n))||_F^2 + ||D + eye(n) + A||_F^2\n", true},
    /* a row x'*B as (B'*x)', f(v') as f(v)': one node for both */
    {"A : matrix(n, n)\nx : vector(n)\ny : vector(n)\n"
     "f = sum(exp(x'*inv(A + n*eye(n)))) + sum(tanh(y'*A)) + sum(tanh(A'*y).*x)\n", false},
    /* what a sum reads of a product scaled by vectors: u'*M*w, v'*M */
    {"A : matrix(n, 3)\nB : matrix(3, n)\nC : matrix(n, n)\nu : vector(n)\nv : vector(n)\n"
     "a : scalar\nf = u'*(a*(C*C))*v + sum(v.*(C*C), 1)*u + sum((C*C).*u', 2)'*v\n", false},
    /* sums of an inverse as solves with ones; a repeated vector as u*1' */
    {"X : matrix(n, n)\nY : matrix(n, n)\ny = sum(inv(X)) + sum(exp(sum(inv(Y), 2)))\n", false},
    {"X : matrix(n, n)\nv : vector(n)\ny = sum(exp(sum(inv(X), 1))) + sum(X*(ones(n, n).*v))\n",
     false},
    /* chains the sizes decide, scalars among the factors */
    {"A : matrix(n, 3)\nB : matrix(3, n)\nC : matrix(n, n)\ny = ||A*B*C||_F^2\n", true},
    {"A : matrix(n, 3)\nB : matrix(3, n)\nC : matrix(n, 2)\ny = ||2*A*(B*C)/5||_F^2\n", true},
    {"X : matrix(n, n)\nW : matrix(n, n)\nb : matrix(n, n)\ny = ||X*W + b||_F^2\n", true},
    {"A : matrix(n, n)\nB : matrix(n, n)\ny = logdet(A*B + eye(n)*3*n)\n", true},
    /* one factorisation shared by det, logdet, inv and their gradients */
    {"A : matrix(n, n)\nB : matrix(n, n)\ny = logdet(A) + det(A)/9 + sum(inv(A)*B') + logdet(B)\n",
     true},
    /* elementwise functions on blocks; softplus and sigmoid from one exp */
    {"X : matrix(n, 3)\nw : vector(3)\nt : vector(n)\ny = sum(softplus(X*w) - t.*(X*w))/n\n", true},
    {"X : matrix(n, n)\nW : matrix(n, n)\nH = tanh(X*W + 1)\ny = sum(H*W) + sum(exp(W/n).*W)\n",
     true},
    /* inv(A)*B and B*inv(A) as solves */
    {"A : matrix(n, n)\nB : matrix(n, 3)\nC : matrix(3, n)\ny = ||inv(A)*B||_F^2 + sum(C*inv(A)')\n",
     true},
    {"A : matrix(n, n)\nB : matrix(n, n)\ny = sum(exp(B*inv(A)/n)) + logdet(A)\n", true},
    /* symmetric products (syrk), a matrix output the gradients do not need */
    {"A : matrix(n, 3)\ny = sum(exp(A'*A/n)) + sum(tanh(A*A'))\n", true},
    {"A : matrix(n, n)\nB : matrix(n, n)\nY = (A*B)'\n", true},
    /* X'*diag(s)*X and X*diag(s)*X' with s >= 0 as B'*B and B*B' (syrk) */
    {"X : matrix(n, 3)\nv : vector(n)\ny = sum(exp(X'*diag(exp(v))*X))\n", true},
    {"X : matrix(3, n)\nv : vector(n)\ny = sum(exp(X*diag(v.*v)*X'))\n", true},
    {"X : matrix(n, 3)\nz : vector(n)\ny = sum(tanh(X'*(sigmoid(z).*(1 - sigmoid(z)).*X)))\n",
     true},
    {"X : matrix(3, n)\nv : vector(n)\ny = sum(tanh(X*(X'.*v.^2)))\n", true},
    /* ... and with an s that may be negative, as written */
    {"X : matrix(n, 3)\nv : vector(n)\ny = sum(exp(X'*diag(v)*X))\n", true},
    {"X : matrix(n, 3)\nz : vector(n)\ny = sum(tanh(X'*((1 - 2*sigmoid(z)).*X)))\n", true},
};

Test(chain, rewrites_agree_with_the_written_form) {
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
    check(&cases[i]);
}

// A long chain of (n x 2)(2 x n) pairs ending in a vector: from the right,
// every product is a matrix times a vector; as written, n x n products.
Test(chain, long_chains_are_grouped_by_cost) {
  char src[4096];
  int len = snprintf(src, sizeof src, "x : vector(n)\n");
  for (int i = 0; i < 10; i++)
    len += snprintf(src + len, sizeof src - (size_t)len, "A%d : matrix(n, 2)\nB%d : matrix(2, n)\n",
                    i, i);
  len += snprintf(src + len, sizeof src - (size_t)len, "y = sum(");
  for (int i = 0; i < 10; i++)
    len += snprintf(src + len, sizeof src - (size_t)len, "A%d*B%d*", i, i);
  snprintf(src + len, sizeof src - (size_t)len, "x)\n");
  Case k = {src, false};
  check(&k);
}

// Past MAX_CHAIN factors a chain keeps its grouping, and still agrees.
Test(chain, chains_past_the_limit_are_left_alone) {
  char src[8192];
  int len = snprintf(src, sizeof src, "A : matrix(n, n)\nx : vector(n)\ny = sum(");
  for (int i = 0; i < 70; i++)
    len += snprintf(src + len, sizeof src - (size_t)len, "A*");
  snprintf(src + len, sizeof src - (size_t)len, "x/%d)\n", 7);
  Case k = {src, true};
  check(&k);
}

// Is there a symmetric product B'*B or B*B', B = sqrt(s).*X (or
// X.*sqrt(s)'), in the DAG below ROOT?
static bool gram_product(Ctx *c, Node *root) {
  char *seen = calloc((size_t)c->nnodes, 1);
  ast_mark(c, root, seen);
  bool found = false;
  for (int i = 0; i <= root->id; i++) {
    Node *x = c->nodes[i];
    if (!seen[i] || x->op != OP_MUL)
      continue;
    Node *t = x->a->op == OP_TRANS ? x->a : x->b, *B = t == x->a ? x->b : x->a;
    found |= t->op == OP_TRANS && t->a == B && B->op == OP_EMUL &&
             (B->a->op == OP_SQRT || (B->b->op == OP_TRANS && B->b->a->op == OP_SQRT));
  }
  free(seen);
  return found;
}

// X'*diag(s)*X becomes B'*B, one scaling pass and syrk, only where s >= 0
// is known (exp, a square, sigmoid(z).*(1 - sigmoid(z))): with an s that
// may be negative, sqrt(s) would be NaN, and the product stays as written.
Test(chain, symmetric_products_need_a_sign) {
  static const struct {
    const char *src;
    bool gram;
  } progs[] = {
      {"X : matrix(n, 3)\nv : vector(n)\ny = sum(exp(X'*diag(exp(v))*X))\n", true},
      {"X : matrix(3, n)\nv : vector(n)\ny = sum(exp(X*diag(v.*v)*X'))\n", true},
      {"X : matrix(n, 3)\nz : vector(n)\ny = sum(tanh(X'*(sigmoid(z).*(1 - sigmoid(z)).*X)))\n",
       true},
      {"X : matrix(3, n)\nv : vector(n)\ny = sum(tanh(X*(X'.*v.^2)))\n", true},
      {"X : matrix(n, 3)\nv : vector(n)\ny = sum(exp(X'*diag(v)*X))\n", false},
      {"X : matrix(n, 3)\nz : vector(n)\ny = sum(tanh(X'*((1 - 2*sigmoid(z)).*X)))\n", false},
      {"X : matrix(n, 3)\nv : vector(n)\ny = sum(exp(X'*diag(v - 1)*X))\n", false},
  };
  for (size_t i = 0; i < sizeof progs / sizeof *progs; i++) {
    md_error err;
    Ctx c;
    ctx_init(&c, progs[i].src, (long)strlen(progs[i].src), "gram.expr", &err);
    cr_assert(md_front(&c), "%s", err.diag);
    Node *root = c.out;
    cr_assert(chain_rewrite(&c, &root, 1), "%s", progs[i].src);
    cr_expect_eq(gram_product(&c, root), progs[i].gram, "%s%s B'*B: %s", progs[i].src,
                 progs[i].gram ? "no" : "a", print_str(&c, root));
    ctx_free(&c);
  }
}

// The workspace line of F's C: "long v = ..., g = ...;".
static char *workspace_line(md_function *f) {
  const char *c = md_c_source(f), *s = strstr(c, "long v = ");
  cr_assert(s, "no workspace line:\n%s", c);
  return strndup(s, strcspn(s, ";"));
}

// The emitted C of diag(v)*A at n = 1000: the value needs no buffer of
// n*n = 1000000 doubles (no dense diag(v), no product), and the gradients
// the workspace of the hand rewrite ||v.*A||_F^2: one n x n, v.*A, which
// both gradients read, and no gemm anywhere.
Test(chain, diag_times_a_matrix_has_no_n_by_n_buffer) {
  md_error err;
  md_function *f = md_compile("A : matrix(1000, 1000)\nv : vector(1000)\ny = ||diag(v)*A||_F^2\n",
                              "diag.expr", &err);
  cr_assert(f, "%s", err.diag);
  md_function *h = md_compile("A : matrix(1000, 1000)\nv : vector(1000)\ny = ||v.*A||_F^2\n",
                              "hand.expr", &err);
  cr_assert(h, "%s", err.diag);
  char *ws = workspace_line(f), *hand = workspace_line(h);
  cr_expect(!strncmp(ws, "long v = 0,", 11), "the value has a workspace: %s", ws);
  cr_expect_str_eq(ws, hand, "the rewrite's workspace %s, the hand rewrite's %s", ws, hand);
  cr_expect(!strstr(md_c_source(f), "mdrt_gemm"), "a matrix product:\n%s", md_c_source(f));
  free(ws), free(hand);
  md_free(f), md_free(h);
}

// The gradients' body of a matrix output gets NULL for it from P_vjp_ws and
// md_vjp: what only the output needs (here A*B, which the gradients G'*B'
// and A'*G' do not read) is computed under `if (out)`.
Test(chain, what_only_the_output_needs_is_guarded) {
  md_error err;
  md_function *f =
      md_compile("A : matrix(n, n)\nB : matrix(n, n)\nY = (A*B)'\n", "out.expr", &err);
  cr_assert(f, "%s", err.diag);
  const char *c = strstr(md_c_source(f), "_entry_grad(");
  cr_assert(c);
  const char *gemm = strstr(c, "mdrt_gemm(0, 0, v_n, v_n, v_n, 1.0, v_A, v_B");
  cr_assert(gemm, "no A*B:\n%s", c);
  const char *guard = strstr(c, "if (out) {");
  cr_expect(guard && guard < gemm, "A*B computed unguarded:\n%s", c);
  md_free(f);
}

// The Hessian-vector product of a chain ending in a vector: forward mode
// writes its tangents as sums of products, (dA*B + A*dB)*C*x + ..., and
// what the HVP reads of them (sums, vectors) is taken through the sums, so
// the body has no n x n x n product, as the gradients have none; and it
// agrees with the tape.
Test(chain, a_hessian_vector_product_takes_the_vector_first) {
  static const char *const progs[] = {
      "A : matrix(n, n)\nB : matrix(n, n)\nC : matrix(n, n)\nx : vector(n)\ny = sum(A*B*C*x)\n",
      "A : matrix(n, n)\nB : matrix(n, n)\nx : vector(n)\ny = x'*A*B*x + sum(A*B)\n",
      "A : matrix(n, n)\nB : matrix(n, n)\nx : vector(n)\ny = ||A*B*x||^2 + tr(A*B)\n",
      "A : matrix(n, n)\nS : matrix(n, n)\nx : vector(n)\nu : vector(n)\nf = (A*u)'*(S*S)*(S*x)\n",
      "S : matrix(n, n)\nB : matrix(n, n)\nC : matrix(n, n)\nx : vector(n)\ny : vector(n)\n"
      "f = sum(diag((S' - 0.5*S)*((C'*B')*(y*x'))))\n",
  };
  for (size_t i = 0; i < sizeof progs / sizeof *progs; i++) {
    md_error err;
    Ctx c;  // the C that `matdiff compile` writes
    ctx_init(&c, progs[i], (long)strlen(progs[i]), "hvp.expr", &err);
    cr_assert(md_front(&c), "%s", err.diag);
    Buf code = {0};
    EmitOpts o = {.name = "hvp", .second = true};
    cr_assert(emit_c(&c, &o, &code), "%s", err.message);
    const char *body = strstr(code.s, "hvp_hvp_body(");
    cr_assert(body, "%s", code.s);
    char *text = strndup(body, (size_t)(strstr(body, "\n}\n") - body));
    cr_expect(!strstr(text, "v_n, v_n, v_n"), "%san n^3 product in the HVP:\n%s", progs[i], text);
    free(text);
    buf_free(&code);
    ctx_free(&c);
    md_function *f = md_compile(progs[i], "hvp.expr", &err);
    cr_assert(f, "%s", err.diag);
    long dims[] = {N};
    int n = md_num_inputs(f);
    double *in[8], *dir[8], *hv[8], *tape[8];
    cr_assert_leq(md_num_inputs(f), 8);
    Rng g = {fnv1a(progs[i])};
    for (int k = 0; k < n; k++) {
      long len = md_input_rows(f, k, dims) * md_input_cols(f, k, dims);
      in[k] = malloc(sizeof(double) * (size_t)len), dir[k] = malloc(sizeof(double) * (size_t)len);
      hv[k] = calloc((size_t)len, sizeof(double)), tape[k] = calloc((size_t)len, sizeof(double));
      for (long e = 0; e < len; e++)
        in[k][e] = uniform(&g, -1, 1), dir[k][e] = uniform(&g, -1, 1);
    }
    const double *const *x = (const double *const *)in, *const *d = (const double *const *)dir;
    cr_assert_eq(md_hvp(f, dims, x, d, hv, &err), 0, "%s", err.message);
    cr_assert_eq(md_tape_hvp(f, dims, x, d, NULL, NULL, NULL, tape, &err), 0, "%s", err.message);
    for (int k = 0; k < n; k++) {
      long len = md_input_rows(f, k, dims) * md_input_cols(f, k, dims);
      double e = md_rel_err(hv[k], tape[k], len);
      cr_expect(e <= 1e-12, "%sHVP for %s off the tape's by %g", progs[i], md_input_name(f, k), e);
      free(in[k]), free(dir[k]), free(hv[k]), free(tape[k]);
    }
    md_free(f);
  }
}

static int count(const char *s, const char *what) {
  int k = 0;
  for (; (s = strstr(s, what)); s++)
    k++;
  return k;
}

// det, logdet and inv of A, and the gradients (inv(A)' again), from one LU
// of A per call; a singular A is still an error that names it.
Test(chain, one_factorisation_per_matrix) {
  md_error err;
  md_function *f =
      md_compile("A : matrix(n, n)\ny = logdet(A) + det(A) + sum(inv(A))\n", "lu.expr", &err);
  cr_assert(f, "%s", err.diag);
  const char *c = md_c_source(f), *grad = strstr(c, "_entry_grad(");
  cr_assert(grad);
  cr_expect_eq(count(c, "mdrt_lu(") - count(grad, "mdrt_lu("), 1, "value:\n%s", c);
  cr_expect_eq(count(grad, "mdrt_lu("), 1, "gradients:\n%s", grad);
  long dims[] = {2};
  const double S[] = {1, 2, 2, 4};
  const double *in[] = {S};
  double y, g[4] = {0};
  double *gs[] = {g};
  cr_expect_neq(md_grad(f, dims, in, &y, gs, &err), 0);
  cr_expect(strstr(err.message, "logdet: the matrix is singular"), "%s", err.message);
  md_free(f);
}

// inv(A)*B is a solve from A's factors: the value forms no inverse.
Test(chain, an_inverse_times_a_matrix_is_a_solve) {
  md_error err;
  md_function *f = md_compile("A : matrix(n, n)\nB : matrix(n, 3)\nY = inv(A)*B\n", "s.expr", &err);
  cr_assert(f, "%s", err.diag);
  const char *c = md_c_source(f), *grad = strstr(c, "_entry_grad(");
  cr_assert(grad);
  char *value = strndup(c, (size_t)(grad - c));
  cr_expect(strstr(value, "mdrt_lu_solve(0, v_n, 3,") && !strstr(value, "mdrt_lu_inverse") &&
                !strstr(value, "mdrt_gemm"),
            "value:\n%s", value);
  free(value);
  long dims[] = {2};
  const double S[] = {1, 2, 2, 4}, B[] = {1, 2, 3, 4, 5, 6};
  const double *in[] = {S, B};
  double y[6];
  cr_expect_neq(md_eval(f, dims, in, y, &err), 0);
  cr_expect(strstr(err.message, "inv: the matrix is singular"), "%s", err.message);
  md_free(f);
}

// A vector's transpose times an inverse is a solve too (its memory is the
// vector's), and so is a gradient that is added into its buffer: solved
// into a buffer of its own, then added. No inverse is formed, and the
// gradients agree with the tape's.
Test(chain, a_vector_times_an_inverse_is_a_solve) {
  static const char src[] = "A : matrix(n, n)\nx : vector(n)\ny : vector(n)\n"
                            "f = x'*inv(A)*y + sum(exp(x'*inv(A)/n))\n";
  md_error err;
  md_function *f = md_compile(src, "v.expr", &err);
  cr_assert(f, "%s", err.diag);
  const char *c = md_c_source(f);
  cr_expect(!strstr(c, "mdrt_lu_inverse") && strstr(c, "mdrt_lu_solve"), "%s", c);
  cr_expect_eq(count(c, "mdrt_lu("), 2, "one LU in the value, one in the gradients:\n%s", c);
  long dims[] = {N};
  md_check_result r;
  cr_assert_eq(md_check(f, dims, NULL, &r, &err), 0, "%s", err.message);
  for (int i = 0; i < md_num_inputs(f); i++)
    cr_expect(r.tape[i] <= MD_CHECK_TOL_TAPE && r.fd[i] <= MD_CHECK_TOL_FD,
              "d/d%s off the tape by %g, finite differences by %g", md_input_name(f, i),
              r.tape[i], r.fd[i]);
  md_check_result_free(&r);
  md_free(f);
}

/* ---- chains the sizes decide at run time ----------------------------------- */

// ||A*B*C||_F^2, A n x k, B k x m, C m x p: at n, m >> k, p A*(B*C) is
// the cheaper, at n, m << k, p (A*B)*C. n, k, m, p are the sizes DIMS,
// or with DIMS NULL the sizes themselves: its source.
static char *abc_source(const long *dims) {
  char s[4][24];
  const char *names = "nkmp";
  for (int i = 0; i < 4; i++)
    if (dims)
      snprintf(s[i], sizeof s[i], "%ld", dims[i]);
    else
      snprintf(s[i], sizeof s[i], "%c", names[i]);
  Out src = {0};
  put(&src, "A : matrix(%s, %s)\nB : matrix(%s, %s)\nC : matrix(%s, %s)\ny = ||A*B*C||_F^2\n",
      s[0], s[1], s[1], s[2], s[2], s[3]);
  return src.s;
}

static const long tall[] = {30, 3, 30, 3}, wide[] = {3, 30, 3, 30};

// Definitions of a body's variants in F's C: P_entry_eval_v0(const long ...
static int variants(md_function *f, const char *body) {
  char def[64];
  snprintf(def, sizeof def, "_entry_%s_v", body);
  int k = 0;
  for (const char *s = md_c_source(f); (s = strstr(s, def)); s++)
    k += s[strlen(def)] >= '0' && s[strlen(def)] <= '9' && !strncmp(s + strlen(def) + 1, "(const long", 11);
  return k;
}

static md_function *compile(const char *src) {
  md_error err;
  md_function *f = md_compile(src, "chain.expr", &err);
  cr_assert(f, "%s%s", src, err.diag);
  return f;
}

// F's value and gradients at DIMS into Y and G[i] (malloc'd), the inputs
// drawn from SRC's stream.
static void grad_at(md_function *f, const long *dims, double **in, double *y, double **g) {
  md_error err;
  for (int i = 0; i < md_num_inputs(f); i++)
    g[i] = calloc((size_t)(md_input_rows(f, i, dims) * md_input_cols(f, i, dims)), sizeof(double));
  cr_assert_eq(md_grad(f, dims, (const double *const *)in, y, g, &err), 0, "%s", err.message);
}

// At sizes where each grouping wins, the code with symbolic sizes runs
// it: it does the operations the code for those literal sizes does (the
// grouping chosen at compile time), the value and gradients agree with
// that code's, and with the tape of the written order and differences.
Test(chain, symbolic_sizes_choose_the_grouping_at_run_time) {
  char *src = abc_source(NULL);
  md_function *f = compile(src);
  const long *at[] = {tall, wide};
  double flops[2];
  for (int a = 0; a < 2; a++) {
    const long *dims = at[a];
    md_error err;
    md_check_result r;
    cr_assert_eq(md_check(f, dims, NULL, &r, &err), 0, "%s", err.message);
    cr_expect(r.value <= MD_CHECK_TOL_TAPE, "value off the tape by %g at n = %ld", r.value, dims[0]);
    for (int i = 0; i < 3; i++)
      cr_expect(r.tape[i] <= MD_CHECK_TOL_TAPE && r.fd[i] <= MD_CHECK_TOL_FD,
                "d/d%s off the tape by %g, differences by %g at n = %ld", md_input_name(f, i),
                r.tape[i], r.fd[i], dims[0]);
    md_check_result_free(&r);

    char *lsrc = abc_source(dims);
    double *in[3], *dir[3], y, yl, *g[3], *gl[3];
    Rng rng = {fnv1a(lsrc)};
    for (int i = 0; i < 3; i++) {
      long len = md_input_rows(f, i, dims) * md_input_cols(f, i, dims);
      in[i] = malloc(sizeof(double) * (size_t)len);
      dir[i] = malloc(sizeof(double) * (size_t)len);
      for (long e = 0; e < len; e++)
        in[i][e] = uniform(&rng, -1, 1), dir[i][e] = uniform(&rng, -1, 1);
    }
    // The second order (JVP, HVPs, Hessian) chooses its grouping alike.
    md_check2_result r2;
    cr_assert_eq(md_check2(f, dims, (const double *const *)in, (const double *const *)dir, 1, &r2,
                           &err),
                 0, "%s", err.message);
    cr_expect(r2.ok, "second order off at n = %ld: jvp %g, hvp(A) %g %g", dims[0], r2.jvp,
              r2.hvp_tape[0], r2.hvp_fd[0]);
    md_check2_result_free(&r2);
    md_function *lit = compile(lsrc);
    flops[a] = md_flops(f, dims, 0);
    cr_expect_eq(flops[a], md_flops(lit, dims, 0), "value at n = %ld: %g operations, %g at literal sizes",
                 dims[0], flops[a], md_flops(lit, dims, 0));
    cr_expect_leq(md_flops(f, dims, 1), md_flops(lit, dims, 1), "gradients at n = %ld", dims[0]);
    cr_expect_leq(md_flops(f, dims, MD_FLOPS_JVP), md_flops(lit, dims, MD_FLOPS_JVP), "JVP at n = %ld",
                  dims[0]);
    cr_expect_leq(md_flops(f, dims, MD_FLOPS_HVP), md_flops(lit, dims, MD_FLOPS_HVP), "HVP at n = %ld",
                  dims[0]);
    grad_at(f, dims, in, &y, g);
    grad_at(lit, dims, in, &yl, gl);
    cr_expect_leq(md_rel_err(&y, &yl, 1), 1e-12, "value at n = %ld", dims[0]);
    for (int i = 0; i < 3; i++) {
      long len = md_input_rows(f, i, dims) * md_input_cols(f, i, dims);
      cr_expect_leq(md_rel_err(g[i], gl[i], len), 1e-12, "d/d%s at n = %ld", md_input_name(f, i),
                    dims[0]);
      free(in[i]), free(dir[i]), free(g[i]), free(gl[i]);
    }
    md_free(lit);
    free(lsrc);
  }
  // Each grouping did win somewhere: A*(B*C) at the tall sizes does a
  // tenth of the written order's 2nkm + 2nmp + 2np operations.
  cr_expect_lt(flops[0], 2.0 * 30 * 3 * 30 * 2 / 5, "tall: %g operations", flops[0]);
  md_free(f);
  free(src);
}

// The switch is there where the sizes decide the grouping, and not where
// one grouping wins whatever they are (all n x n: a tie, kept as written;
// a vector at the end; literal sizes); a long chain of many sizes has at
// most MAX_VARIANTS variants.
Test(chain, the_switch_is_emitted_only_where_the_sizes_decide) {
  char *src = abc_source(NULL), *lsrc = abc_source(tall);
  md_function *f = compile(src);
  cr_expect_eq(variants(f, "eval"), 2, "value:\n%s", md_c_source(f));
  cr_expect_eq(variants(f, "grad"), 2, "gradients:\n%s", md_c_source(f));
  md_free(f);
  const char *fixed[] = {
      "A : matrix(n, n)\nB : matrix(n, n)\nC : matrix(n, n)\ny = ||A*B*C||_F^2\n",
      "A : matrix(n, k)\nB : matrix(k, m)\nx : vector(m)\ny = ||A*B*x||^2\n",
      lsrc,
  };
  for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) {
    f = compile(fixed[i]);
    cr_expect(!variants(f, "eval") && !variants(f, "grad"), "%s\n%s", fixed[i], md_c_source(f));
    md_free(f);
  }
  f = compile("A : matrix(a, b)\nB : matrix(b, c)\nC : matrix(c, d)\nD : matrix(d, e)\n"
              "E : matrix(e, f)\nF : matrix(f, g)\ny = ||A*B*C*D*E*F||_F^2\n");
  cr_expect(variants(f, "eval") >= 2 && variants(f, "eval") <= 4, "%d", variants(f, "eval"));
  cr_expect(variants(f, "grad") >= 2 && variants(f, "grad") <= 4, "%d", variants(f, "grad"));
  md_free(f);
  free(src), free(lsrc);
}

/* ---- the compiled C ----------------------------------------------------- */

#define MATDIFF MD_BUILD_DIR "/matdiff"

// The driver of f.c (`matdiff compile` of abc_source(NULL), in precision
// REAL): at the tall and the wide sizes, the value and the gradients, and
// with COUNT the operations gemm did for each (the runtime's gemm renamed
// in f.c, counted, then called).
static const char abc_driver[] =
    "#include <math.h>\n#include <stdio.h>\n#include <stdlib.h>\n"
    "#ifdef COUNT\n#define mdrt_gemm counted_gemm\n#define mdrt_gemm_f counted_gemm_f\n#endif\n"
    "#include \"f.c\"\n"
    "#ifdef COUNT\n#undef mdrt_gemm\n#undef mdrt_gemm_f\n"
    "void mdrt_gemm(int, int, long, long, long, double, const double *, const double *, double,\n"
    "               double *);\n"
    "void mdrt_gemm_f(int, int, long, long, long, float, const float *, const float *, float,\n"
    "                 float *);\n"
    "static double ops;\n"
    "void counted_gemm(int ta, int tb, long m, long n, long k, double alpha, const double *A,\n"
    "                  const double *B, double beta, double *C) {\n"
    "  ops += 2.0 * m * n * k;\n  mdrt_gemm(ta, tb, m, n, k, alpha, A, B, beta, C);\n}\n"
    "void counted_gemm_f(int ta, int tb, long m, long n, long k, float alpha, const float *A,\n"
    "                    const float *B, float beta, float *C) {\n"
    "  ops += 2.0 * m * n * k;\n  mdrt_gemm_f(ta, tb, m, n, k, alpha, A, B, beta, C);\n}\n"
    "#endif\n"
    "static void show(const char *tag, int a, const REAL *x, long len) {\n"
    "  printf(\"%s%d\", tag, a);\n  for (long e = 0; e < len; e++)\n"
    "    printf(\" %.17g\", (double)x[e]);\n  printf(\"\\n\");\n}\n"
    "int main(void) {\n"
    "  static const long at[2][4] = {{30, 3, 30, 3}, {3, 30, 3, 30}};\n"
    "  for (int a = 0; a < 2; a++) {\n"
    "    long n = at[a][0], k = at[a][1], m = at[a][2], p = at[a][3];\n"
    "    long len[3] = {n * k, k * m, m * p};\n    REAL *in[3], *g[3];\n"
    "    for (int i = 0; i < 3; i++) {\n"
    "      in[i] = malloc(sizeof(REAL) * (size_t)len[i]);\n"
    "      g[i] = calloc((size_t)len[i], sizeof(REAL));\n"
    "      for (long e = 0; e < len[i]; e++)\n        in[i][e] = (REAL)sin(0.37 * (double)e + i);\n"
    "    }\n"
    "#ifdef COUNT\n    ops = 0;\n#endif\n"
    "    REAL y = f(n, k, m, p, in[0], in[1], in[2]);\n"
    "#ifdef COUNT\n    printf(\"value_ops%d %.17g\\n\", a, ops);\n    ops = 0;\n#endif\n"
    "    REAL yg = f_grad(n, k, m, p, in[0], in[1], in[2], g[0], g[1], g[2]);\n"
    "#ifdef COUNT\n    printf(\"grad_ops%d %.17g\\n\", a, ops);\n#endif\n"
    "    show(\"value\", a, &y, 1);\n    show(\"grad_value\", a, &yg, 1);\n"
    "    show(\"dA\", a, g[0], len[0]);\n    show(\"dB\", a, g[1], len[1]);\n"
    "    show(\"dC\", a, g[2], len[2]);\n"
    "    REAL t, *hv[3];\n"
    "    for (int i = 0; i < 3; i++)\n      hv[i] = calloc((size_t)len[i], sizeof(REAL));\n"
    "    if (f_jvp(n, k, m, p, in[0], in[1], in[2], in[0], in[1], in[2], &t) ||\n"
    "        f_hvp(n, k, m, p, in[0], in[1], in[2], in[0], in[1], in[2], hv[0], hv[1], hv[2]))\n"
    "      return 1;\n"
    "    show(\"jvp\", a, &t, 1);\n    show(\"hvA\", a, hv[0], len[0]);\n"
    "    show(\"hvB\", a, hv[1], len[1]);\n    show(\"hvC\", a, hv[2], len[2]);\n"
    "    for (int i = 0; i < 3; i++)\n      free(hv[i]);\n"
    "    for (int i = 0; i < 3; i++)\n      free(in[i]), free(g[i]);\n"
    "  }\n  return 0;\n}\n";

// `matdiff compile` of the chain at symbolic sizes, in double, --float,
// --standalone and --standalone --float, built by cc with every warning
// an error and run at the tall and the wide sizes: its value and
// gradients agree with the JIT's; and where gemm can be counted (linked
// to the runtime), it did the operations of the grouping that wins there
// and not those of the written order, A*B first: at both sizes, 2*(3*30*3
// + 30*3*3) = 1080 for the value (else 10800), 3*1080 = 3240 for the
// value and gradients (else 32400).
Test(chain, variants_in_the_compiled_c) {
  static const struct {
    const char *opts, *real;
    bool count;
    double tol;
  } builds[] = {{"", "double", true, 1e-12},
                {"--float", "float", true, 1e-4},
                {"--standalone", "double", false, 1e-12},
                {"--standalone --float", "float", false, 1e-4}};
  char *src = abc_source(NULL);
  md_function *f = compile(src);
  const long *at[] = {tall, wide};
  double y[2], *g[2][3], t[2], *hv[2][3];
  for (int a = 0; a < 2; a++) {
    double *in[3];
    for (int i = 0; i < 3; i++) {
      long len = md_input_rows(f, i, at[a]) * md_input_cols(f, i, at[a]);
      in[i] = malloc(sizeof(double) * (size_t)len);
      hv[a][i] = calloc((size_t)len, sizeof(double));
      for (long e = 0; e < len; e++)
        in[i][e] = sin(0.37 * (double)e + i);
    }
    grad_at(f, at[a], in, &y[a], g[a]);
    md_error err;
    const double *const *x = (const double *const *)in;
    cr_assert_eq(md_jvp(f, at[a], x, x, &t[a], &err), 0, "%s", err.message);
    cr_assert_eq(md_hvp(f, at[a], x, x, hv[a], &err), 0, "%s", err.message);
    for (int i = 0; i < 3; i++)
      free(in[i]);
  }
  for (size_t b = 0; b < sizeof builds / sizeof *builds; b++) {
    tmpdir_setup("test_chain");
    tmpdir_text("f.expr", src);
    tmpdir_text("driver.c", abc_driver);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd %s && %s compile f.expr -o f.c --name f %s && "
             "cc -std=c99 -Wall -Wextra -Werror -pedantic -DREAL=%s %s $(%s config --cflags) "
             "driver.c $(%s config --libs) -lm -o prog > cc.log 2>&1 && ./prog > out.txt 2>&1",
             tmpdir(), MATDIFF, builds[b].opts, builds[b].real, builds[b].count ? "-DCOUNT" : "",
             MATDIFF, MATDIFF);
    int rc = run(cmd);
    char *log = slurp(tmpdir_path("cc.log")), *out = slurp(tmpdir_path("out.txt"));
    cr_assert_eq(rc, 0, "%s: does not build warning-free, or fails:\n%s%s", builds[b].opts,
                 log ? log : "", out ? out : "");
    cr_expect(!log || !*log, "%s: cc printed:\n%s", builds[b].opts, log);
    for (int a = 0; a < 2; a++) {
      char tag[32];
      double got[900];
      const char *names[] = {"dA", "dB", "dC"};
      const char *values[] = {"value", "grad_value"};
      for (int v = 0; v < 2; v++) {
        snprintf(tag, sizeof tag, "%s%d", values[v], a);
        cr_assert(numbers(out, tag, got, 1), "%s: no %s in\n%s", builds[b].opts, tag, out);
        cr_expect_leq(md_rel_err(got, &y[a], 1), builds[b].tol, "%s: %s", builds[b].opts, tag);
      }
      for (int i = 0; i < 3; i++) {
        long len = md_input_rows(f, i, at[a]) * md_input_cols(f, i, at[a]);
        snprintf(tag, sizeof tag, "%s%d", names[i], a);
        cr_assert(numbers(out, tag, got, len), "%s: no %s in\n%s", builds[b].opts, tag, out);
        cr_expect_leq(md_rel_err(got, g[a][i], len), builds[b].tol, "%s: %s", builds[b].opts, tag);
      }
      snprintf(tag, sizeof tag, "jvp%d", a);
      cr_assert(numbers(out, tag, got, 1), "%s: no %s in\n%s", builds[b].opts, tag, out);
      cr_expect_leq(md_rel_err(got, &t[a], 1), builds[b].tol, "%s: %s", builds[b].opts, tag);
      for (int i = 0; i < 3; i++) {
        long len = md_input_rows(f, i, at[a]) * md_input_cols(f, i, at[a]);
        snprintf(tag, sizeof tag, "hv%c%d", "ABC"[i], a);
        cr_assert(numbers(out, tag, got, len), "%s: no %s in\n%s", builds[b].opts, tag, out);
        cr_expect_leq(md_rel_err(got, hv[a][i], len), builds[b].tol, "%s: %s", builds[b].opts, tag);
      }
      if (builds[b].count) {
        double ops;
        snprintf(tag, sizeof tag, "value_ops%d", a);
        cr_assert(numbers(out, tag, &ops, 1), "%s", out);
        cr_expect_eq(ops, 1080, "%s: the value did %g operations in gemm at n = %ld",
                     builds[b].opts, ops, at[a][0]);
        snprintf(tag, sizeof tag, "grad_ops%d", a);
        cr_assert(numbers(out, tag, &ops, 1), "%s", out);
        cr_expect_eq(ops, 3240, "%s: the gradients did %g operations in gemm at n = %ld",
                     builds[b].opts, ops, at[a][0]);
      }
    }
    free(log), free(out);
    tmpdir_remove();
  }
  for (int a = 0; a < 2; a++)
    for (int i = 0; i < 3; i++)
      free(g[a][i]), free(hv[a][i]);
  md_free(f);
  free(src);
}

// A matrix plus a repeated vector (X*W + b', v - A), a sum along an axis
// of a matrix in memory and a tanh layer's gradient G.*(1 - H.^2) are the
// runtime's loops, compiled by cc (the JIT's
// own are slower), in the value and the gradients: the C calls them, and
// the values and gradients hold to the tape and finite differences.
Test(chain, runtime_loops) {
  static const struct {
    const char *src, *calls[2];
  } loops[] = {
      {"X : matrix(n, d)\nW : matrix(d, h)\nb : vector(h)\nH = tanh(X*W + b')\n"
       "y = sum(sum(H, 1).^2)\n",
       {"mdrt_add_bcast(0, ", "mdrt_sum_axis(1, "}},
      {"A : matrix(n, m)\nv : vector(n)\nT = tanh(v - A)\ny = sum(sum(T', 1).^2)\n",
       {"mdrt_add_bcast(1, ", "mdrt_sum_axis(2, "}},
      {"X : matrix(n, d)\nW : matrix(d, h)\nb : vector(h)\nV : matrix(h, k)\n"
       "H = tanh(X*W + b')\ny = sum((H*V).^2)\n",
       {"mdrt_add_bcast(0, ", "mdrt_tanh_grad(v_n*v_h, "}},
  };
  for (size_t i = 0; i < sizeof loops / sizeof *loops; i++) {
    md_error err;
    md_function *f = md_compile(loops[i].src, "loops.expr", &err);
    cr_assert(f, "%s%s", loops[i].src, err.diag);
    for (int k = 0; k < 2; k++)
      cr_expect(strstr(md_c_source(f), loops[i].calls[k]), "%sno %s in\n%s", loops[i].src,
                loops[i].calls[k], md_c_source(f));
    md_free(f);
    check_compiled(&(Case){loops[i].src, true});
  }
}

// f(X*W + b') for a function the runtime maps on blocks: b' repeated into
// f's buffer, gemm adds X*W onto it (beta 1), f maps it in place; no
// buffer for X*W, none for the sum. A costly function fused into a loop
// (exp of softmax's gradient) gets a buffer and the block kernel instead
// of a libm call per element. Both agree with the tape.
Test(chain, a_repeated_bias_takes_the_product_and_the_function) {
  const char *src = "X : matrix(n, d)\nW : matrix(d, h)\nb : vector(h)\nV : matrix(h, k)\n"
                    "c : vector(k)\nZ = tanh(X*W - b')*V + c'\n"
                    "y = sum(logsumexp(Z, 2)) + sum(exp(Z - logsumexp(Z, 2)).*Z)\n";
  md_error err;
  md_function *f = md_compile(src, "bias.expr", &err);
  cr_assert(f, "%s", err.diag);
  const char *code = md_c_source(f);
  char *ws = workspace_line(f);
  // tanh's n x h, Z's n x k, the n row maxima of logsumexp, exp's n x k.
  const char *want = "long v = 0 + v_n*v_h + v_n*v_k + v_n + v_n*v_k,";
  cr_expect(!strncmp(ws, want, strlen(want)), "%s", ws);
  static const char *const calls[] = {
      "mdrt_add_bcast(0, v_n, v_h, 0.0, 0, -1.0, v_b, t1);\n"
      "  mdrt_gemm(0, 0, v_n, v_h, v_d, 1.0, v_X, v_W, 1.0, t1);\n"
      "  mdrt_vtanh(v_n*v_h, t1, t1);",
      "mdrt_add_bcast(0, v_n, v_k, 0.0, 0, 1.0, v_c, t2);\n"
      "  mdrt_gemm(0, 0, v_n, v_k, v_h, 1.0, t1, v_V, 1.0, t2);",
      "mdrt_vexp(v_n*v_k, ",
  };
  for (size_t i = 0; i < sizeof calls / sizeof *calls; i++)
    cr_expect(strstr(code, calls[i]), "no\n%s\nin\n%s", calls[i], code);
  cr_expect(!strstr(code, "exp(("), "a libm exp per element:\n%s", code);
  free(ws);
  md_free(f);
  check_compiled(&(Case){src, true});
}
