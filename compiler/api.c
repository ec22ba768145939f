/*
 * api.c - the public API (matdiff.h): md_compile runs the whole pipeline,
 *   parse -> shapes -> reverse mode -> simplify -> emit C -> libtcc,
 * and md_eval / md_grad call the result. The compilation's context (its
 * DAG) stays alive with the function, for the tape oracle and for names.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include "api.h"

// Reverse mode from the output's seed: 1 for a scalar, else G.
static bool adjoint(Ctx *c) {
  Shape out = c->out->shape;
  diff_program(c, shape_is_scalar(out) ? ast_num(c, 1) : ast_seed(c, out));
  if (c->failed)
    return ctx_error(c, (Loc){-1, -1}, "internal error: differentiation failed");
  return true;
}

static bool simplify(Ctx *c) {
  simp_program(c);
  for (int i = 0; i < c->nvars; i++)
    if (c->vars[i].wrt && !c->grads[i])
      return ctx_error(c, (Loc){-1, -1}, "internal error: no gradient for '%s'", c->vars[i].name);
  return !c->failed;
}

const Stage md_stages[] = {
    {"parse", parse_program, dump_parse},
    {"dag", lower_program, dump_dag},
    {"adjoint", adjoint, dump_grads},
    {"simplified", simplify, dump_grads},
    {NULL, NULL, NULL},
};

// The front half of the pipeline, shared by md_compile and the CLI.
bool md_front(Ctx *c) {
  for (const Stage *s = md_stages; s->name; s++)
    if (!s->run(c))
      return false;
  return true;
}

md_function *md_compile(const char *source, const char *filename, md_error *err) {
  diag_clear(err);
  if (!source) {
    diag_plain(err, "no source");
    return NULL;
  }
  md_function *f = calloc(1, sizeof *f);
  char *src = f ? strdup(source) : NULL;
  if (!src) {
    free(f);
    diag_plain(err, "out of memory");
    return NULL;
  }
  f->src = src;
  f->file = filename ? strdup(filename) : NULL;
  if (filename && !f->file) {
    diag_plain(err, "out of memory");
    md_free(f);
    return NULL;
  }
  Ctx *c = &f->ctx;
  ctx_init(c, src, (long)strlen(src), f->file, err);
  if (!md_front(c)) {
    md_free(f);
    return NULL;
  }
  // Formulas are printed when asked for: a printed tree may be far larger
  // than its DAG.
  f->formulas = arena_alloc(&c->arena, sizeof(char *) * (size_t)(c->nvars + 1));
  Buf code = {0};
  EmitOpts o = {.name = "md_fn", .jit = true};
  if (!f->formulas || !emit_c(c, &o, &code)) {
    buf_free(&code);
    diag_plain(err, "out of memory");
    md_free(f);
    return NULL;
  }
  f->csrc = code.s;
  if (!jit_compile(&f->jit, f->csrc, o.name, err)) {
    md_free(f);
    return NULL;
  }
  diag_clear(err);
  c->err = NULL;  // the caller's md_error is not ours to keep
  return f;
}

void md_free(md_function *f) {
  if (!f)
    return;
  jit_free(&f->jit);
  ctx_free(&f->ctx);
  free(f->csrc);
  free(f->ws);
  free(f->wsdims);
  free(f->file);
  free(f->src);
  free(f);
}

int md_num_inputs(const md_function *f) { return f ? f->ctx.nvars : 0; }
int md_num_dims(const md_function *f) { return f ? f->ctx.ndims : 0; }

const char *md_input_name(const md_function *f, int i) {
  return f && i >= 0 && i < f->ctx.nvars ? f->ctx.vars[i].name : NULL;
}

const char *md_dim_name(const md_function *f, int i) {
  return f && i >= 0 && i < f->ctx.ndims ? f->ctx.dims[i] : NULL;
}

const char *md_output_name(const md_function *f) { return f ? f->ctx.outname : NULL; }

int md_input_is_wrt(const md_function *f, int i) {
  return f && i >= 0 && i < f->ctx.nvars && f->ctx.vars[i].wrt;
}

const char *md_grad_formula(const md_function *f, int i) {
  if (!md_input_is_wrt(f, i))
    return NULL;
  md_function *m = (md_function *)f;  // the cache is not part of the value
  if (!m->formulas[i])
    m->formulas[i] = print_str(&m->ctx, m->ctx.grads[i]);
  return m->formulas[i];
}

const char *md_c_source(const md_function *f) { return f ? f->csrc : NULL; }

double md_flops(md_function *f, const long *dims, int grad) {
  if (!f || (f->ctx.ndims && !dims))
    return -1;
  for (int i = 0; i < f->ctx.ndims; i++)
    if (dims[i] < 1)
      return -1;
  return emit_flops(&f->ctx, grad != 0, dims);
}

static long size_of(Dim d, const long *dims) {
  if (d.sym < 0)
    return d.n;
  return dims ? dims[d.sym] : -1;
}

long md_input_rows(const md_function *f, int i, const long *dims) {
  return f && i >= 0 && i < f->ctx.nvars ? size_of(f->ctx.vars[i].shape.r, dims) : -1;
}

long md_input_cols(const md_function *f, int i, const long *dims) {
  return f && i >= 0 && i < f->ctx.nvars ? size_of(f->ctx.vars[i].shape.c, dims) : -1;
}

static int dim_index(Dim d) { return d.sym >= 0 ? d.sym : -1; }

int md_input_dim(const md_function *f, int i, int axis) {
  if (!f || i < 0 || i >= f->ctx.nvars || axis < 0 || axis > 1)
    return -2;
  return dim_index(axis ? f->ctx.vars[i].shape.c : f->ctx.vars[i].shape.r);
}

int md_output_dim(const md_function *f, int axis) {
  if (!f || axis < 0 || axis > 1)
    return -2;
  return dim_index(axis ? f->ctx.out->shape.c : f->ctx.out->shape.r);
}

int md_input_is_vector(const md_function *f, int i) {
  return f && i >= 0 && i < f->ctx.nvars && f->ctx.vars[i].vector;
}

static bool dims_ok(md_function *f, const long *dims, md_error *err) {
  for (int i = 0; i < f->ctx.ndims; i++)
    if (dims[i] < 1) {
      diag_plain(err, "size %s must be positive, not %ld", f->ctx.dims[i], dims[i]);
      return false;
    }
  return true;
}

// Would any value's size, or the workspace (a sum of them, in bytes),
// overflow a long? The emitted code computes them without checking, so
// the sizes are checked here first, for every node of the DAG.
static bool sizes_fit(md_function *f, const long *dims, md_error *err) {
  const long limit = LONG_MAX / 16;
  long total = 0;
  for (int i = 0; i < f->ctx.nnodes; i++) {
    const Node *p = f->ctx.nodes[i];
    long r = dim_value(p->shape.r, dims), c = dim_value(p->shape.c, dims);
    if (r > limit / c || (total += r * c) > limit / (long)sizeof(double)) {
      diag_plain(err, "the sizes are too large: a %ld×%ld value (%s×%s) and the workspace overflow",
                 r, c, dim_str(&f->ctx, p->shape.r), dim_str(&f->ctx, p->shape.c));
      return false;
    }
  }
  return true;
}

bool api_sizes_ok(md_function *f, const long *dims, md_error *err) {
  return dims_ok(f, dims, err) && sizes_fit(f, dims, err);
}

// The workspace is kept between calls and sized again only when the sizes
// change.
static void *workspace(md_function *f, const long *dims, md_error *err) {
  int nd = f->ctx.ndims;
  if (f->ws && (nd == 0 || !memcmp(f->wsdims, dims, sizeof *dims * (size_t)nd)))
    return f->ws;
  if (!api_sizes_ok(f, dims, err))
    return NULL;
  long bytes = f->jit.ws_size(dims);
  void *ws = malloc(bytes > 0 ? (size_t)bytes : 1);
  long *d = malloc(sizeof *d * (size_t)(nd ? nd : 1));
  if (!ws || !d || bytes < 0) {
    free(ws);
    free(d);
    diag_plain(err, "out of memory: the workspace needs %ld bytes", bytes);
    return NULL;
  }
  if (nd)
    memcpy(d, dims, sizeof *d * (size_t)nd);
  free(f->ws);
  free(f->wsdims);
  f->ws = ws;
  f->wsdims = d;
  return ws;
}

bool api_call_ok(md_function *f, const long *dims, const double *const *inputs, md_error *err) {
  diag_clear(err);
  if (!f) {
    diag_plain(err, "no function");
    return false;
  }
  if (f->ctx.ndims && !dims) {
    diag_plain(err, "the sizes are missing: %s needs %d", f->ctx.outname, f->ctx.ndims);
    return false;
  }
  for (int i = 0; i < f->ctx.nvars; i++)
    if (!inputs || !inputs[i]) {
      diag_plain(err, "input '%s' is missing", f->ctx.vars[i].name);
      return false;
    }
  return true;
}

long md_output_rows(const md_function *f, const long *dims) {
  return f ? size_of(f->ctx.out->shape.r, dims) : -1;
}

long md_output_cols(const md_function *f, const long *dims) {
  return f ? size_of(f->ctx.out->shape.c, dims) : -1;
}

int md_eval(md_function *f, const long *dims, const double *const *inputs, double *out,
            md_error *err) {
  if (!api_call_ok(f, dims, inputs, err))
    return -1;
  if (!out) {
    diag_plain(err, "no buffer for the output");
    return -1;
  }
  void *ws = workspace(f, dims, err);
  if (!ws)
    return -1;
  const char *why = f->jit.eval(dims, inputs, out, ws);
  if (why) {
    diag_plain(err, "%s", why);
    return -1;
  }
  return 0;
}

// The gradient entry takes an array with one entry per input; inputs
// without a gradient are never read, and an absent array means none.
static int backward(md_function *f, const long *dims, const double *const *inputs,
                    const double *seed, double *out, double *const *grads, md_error *err) {
  void *ws = workspace(f, dims, err);
  if (!ws)
    return -1;
  double **g = calloc((size_t)f->ctx.nvars + 1, sizeof *g);
  if (!g) {
    diag_plain(err, "out of memory");
    return -1;
  }
  for (int i = 0; grads && i < f->ctx.nvars; i++)
    g[i] = grads[i];
  double y;
  bool scalar = shape_is_scalar(f->ctx.out->shape);
  const char *why = f->jit.grad(dims, inputs, seed, out ? out : scalar ? &y : NULL, g, ws);
  free(g);
  if (why) {
    diag_plain(err, "%s", why);
    return -1;
  }
  return 0;
}

// A seed of all ones, for md_grad on a non-scalar output.
static double *ones(md_function *f, const long *dims, md_error *err) {
  long r = md_output_rows(f, dims), c = md_output_cols(f, dims);
  double *s = r > 0 && c > 0 ? malloc(sizeof *s * (size_t)(r * c)) : NULL;
  if (!s)
    diag_plain(err, "out of memory");
  for (long i = 0; s && i < r * c; i++)
    s[i] = 1;
  return s;
}


int md_grad(md_function *f, const long *dims, const double *const *inputs, double *out,
            double *const *grads, md_error *err) {
  if (!api_call_ok(f, dims, inputs, err))
    return -1;
  if (shape_is_scalar(f->ctx.out->shape))
    return backward(f, dims, inputs, NULL, out, grads, err);
  if (!dims_ok(f, dims, err))
    return -1;
  double *seed = ones(f, dims, err);
  int rc = seed ? backward(f, dims, inputs, seed, out, grads, err) : -1;
  free(seed);
  return rc;
}

int md_vjp(md_function *f, const long *dims, const double *const *inputs, const double *seed,
           double *out, double *const *grads, md_error *err) {
  if (!api_call_ok(f, dims, inputs, err))
    return -1;
  if (!seed) {
    diag_plain(err, "no seed");
    return -1;
  }
  if (!shape_is_scalar(f->ctx.out->shape))
    return backward(f, dims, inputs, seed, out, grads, err);
  if (!dims_ok(f, dims, err))
    return -1;
  // A scalar output's gradient scaled by the seed: computed into scratch
  // buffers, then added.
  int n = f->ctx.nvars, rc = 0;
  double **g = calloc((size_t)n + 1, sizeof *g);
  long *len = calloc((size_t)n + 1, sizeof *len);
  rc = g && len ? 0 : -1;
  for (int i = 0; rc == 0 && grads && i < n; i++) {
    len[i] = md_input_rows(f, i, dims) * md_input_cols(f, i, dims);
    if (grads[i] && f->ctx.vars[i].wrt && !(g[i] = calloc((size_t)len[i], sizeof(double))))
      rc = -1;
  }
  if (rc)
    diag_plain(err, "out of memory");
  else
    rc = backward(f, dims, inputs, NULL, out, g, err);
  for (int i = 0; rc == 0 && grads && i < n; i++)
    for (long k = 0; g[i] && k < len[i]; k++)
      grads[i][k] += seed[0] * g[i][k];
  for (int i = 0; g && i < n; i++)
    free(g[i]);
  free(g);
  free(len);
  return rc;
}

/* ---- one-line expressions ------------------------------------------------ */

// md_expr_source (expr.c) finds every error about the expression, located
// in it; what md_compile meets after that is not about the source.
md_function *md_compile_expr(const char *expr, const char *wrt, md_error *err) {
  char *src = md_expr_source(expr, wrt, err);
  md_function *f = src ? md_compile(src, "<expr>", err) : NULL;
  free(src);
  return f;
}

/* ---- second order --------------------------------------------------------- */

const char *md_direction_name(md_function *f, int i) {
  if (!md_input_is_wrt(f, i) || !diff_name_directions(&f->ctx))
    return NULL;
  return f->ctx.dirnames[i];
}

enum { SO_JVP, SO_HVP, SO_HESSIAN, SO_JACOBIAN };

// The printed formula WHAT (SO_*) for variables I and J, derived on the
// first call (second.c) and kept. NULL with *ERR filled.
static const char *second_formula(md_function *f, int what, int i, int j, md_error *err) {
  diag_clear(err);
  if (!f) {
    diag_plain(err, "no function");
    return NULL;
  }
  Ctx *c = &f->ctx;
  int n = c->nvars;
  if (what != SO_JVP && !(md_input_is_wrt(f, i) && (what != SO_HESSIAN || md_input_is_wrt(f, j)))) {
    diag_plain(err, "input %d is not differentiated (not in wrt)", what == SO_HESSIAN &&
               md_input_is_wrt(f, i) ? j : i);
    return NULL;
  }
  if (what == SO_HESSIAN && !shape_is_scalar(c->out->shape)) {
    diag_plain(err, "the Hessian needs a scalar output; %s is %s", c->outname,
               shape_str(c, c->out->shape));
    return NULL;
  }
  if (!f->second && !(f->second = arena_alloc(&c->arena, sizeof(char *) * (size_t)(1 + 2 * n + n * n))))
    return diag_plain(err, "out of memory"), NULL;
  char **slot = &f->second[what == SO_JVP ? 0 : what == SO_HVP ? 1 + i
                          : what == SO_HESSIAN ? 1 + n + i * n + j : 1 + n + n * n + j];
  if (*slot)
    return *slot;
  // The derivation reports through the caller's md_error for the call.
  c->err = err;
  c->failed = false;
  bool ok = what == SO_JVP ? c->jvp || second_jvp(c)
            : what == SO_HVP ? c->hvps || second_hvp(c)
            : what == SO_HESSIAN ? (c->hvps || second_hvp(c)) && (c->hess || second_hessian(c))
                                 : c->jacs || second_jacobian(c);
  c->err = NULL;
  if (!ok)
    return NULL;
  Node *node = what == SO_JVP ? c->jvp : what == SO_HVP ? c->hvps[i]
               : what == SO_HESSIAN ? c->hess[i * n + j] : c->jacs[j];
  if (!node) {
    bool vec_out = shape_is_column(c->out->shape) || shape_is_row(c->out->shape);
    bool vec_in = (shape_is_column(c->vars[i].shape) || shape_is_row(c->vars[i].shape)) &&
                  (shape_is_column(c->vars[j].shape) || shape_is_row(c->vars[j].shape));
    diag_plain(err, "d%s%s/d%s%s%s is not a matrix formula: %s", what == SO_HESSIAN ? "2" : "",
               c->outname, c->vars[i].name, what == SO_HESSIAN ? "d" : "",
               what == SO_HESSIAN ? c->vars[j].name : "",
               !vec_out ? "the output is a matrix" : !vec_in ? "a variable is a matrix"
               : "matdiff finds none (one that is, for instance, a sum over samples of matrices "
                 "that differ per sample has no matrix product); the HVP stands for it");
    return NULL;
  }
  if (!(*slot = print_str(c, node)))
    diag_plain(err, "out of memory");
  return *slot;
}

const char *md_jvp_formula(md_function *f, md_error *err) {
  return second_formula(f, SO_JVP, 0, 0, err);
}

const char *md_hvp_formula(md_function *f, int i, md_error *err) {
  return second_formula(f, SO_HVP, i, i, err);
}

const char *md_hessian_formula(md_function *f, int i, int j, md_error *err) {
  return second_formula(f, SO_HESSIAN, i, j, err);
}

const char *md_jacobian_formula(md_function *f, int j, md_error *err) {
  return second_formula(f, SO_JACOBIAN, j, j, err);
}
