/*
 * api.c - the public API (matdiff.h): md_compile runs the whole pipeline,
 *   parse -> shapes -> reverse mode -> simplify -> emit C -> libtcc,
 * and md_eval / md_grad call the result. The compilation's context (its
 * DAG) stays alive with the function, for the tape oracle and for names.
 */
#include <limits.h>
#include <stdio.h>
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

long api_len(Shape s, const long *dims) {
  long n = size_mul(dim_value(s.r, dims), dim_value(s.c, dims));
  return size_mul(n, sizeof(double)) < 0 ? -1 : n;
}

// A size as the source writes it: its name, or its number in BUF. Not
// dim_str, which allocates in the compilation's arena: a call changes
// nothing in the function it calls.
static const char *dim_text(const Ctx *c, Dim d, char *buf, size_t n) {
  if (d.sym >= 0)
    return c->dims[d.sym];
  snprintf(buf, n, "%ld", d.n);
  return buf;
}

// Would any value's size, or the workspace (a sum of them, in bytes),
// overflow a long? The emitted code computes them without checking, so
// the sizes are checked here first, for every node of the DAG, with room
// to spare for what the emitted code adds to a sum (a factor of 16).
static bool sizes_fit(md_function *f, const long *dims, md_error *err) {
  long total = 0;
  for (int i = 0; i < f->ctx.nnodes; i++) {
    const Node *p = f->ctx.nodes[i];
    total = size_add(total, api_len(p->shape, dims));
    if (size_mul(total, 16 * sizeof(double)) < 0) {
      char r[32], c[32];
      diag_plain(err, "the sizes are too large: a %ld×%ld value (%s×%s) and the workspace overflow",
                 dim_value(p->shape.r, dims), dim_value(p->shape.c, dims),
                 dim_text(&f->ctx, p->shape.r, r, sizeof r),
                 dim_text(&f->ctx, p->shape.c, c, sizeof c));
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

// A seed of all ones, for md_grad on a non-scalar output; the sizes are
// checked.
static double *ones(md_function *f, const long *dims, md_error *err) {
  long n = api_len(f->ctx.out->shape, dims);
  double *s = n > 0 ? malloc(sizeof *s * (size_t)n) : NULL;
  if (!s)
    diag_plain(err, "out of memory: a seed of %ld ones", n);
  for (long i = 0; s && i < n; i++)
    s[i] = 1;
  return s;
}


int md_grad(md_function *f, const long *dims, const double *const *inputs, double *out,
            double *const *grads, md_error *err) {
  if (!api_call_ok(f, dims, inputs, err))
    return -1;
  if (shape_is_scalar(f->ctx.out->shape))
    return backward(f, dims, inputs, NULL, out, grads, err);
  if (!api_sizes_ok(f, dims, err))
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
  if (!api_sizes_ok(f, dims, err))
    return -1;
  // A scalar output's gradient scaled by the seed: computed into scratch
  // buffers, then added.
  int n = f->ctx.nvars, rc = 0;
  double **g = calloc((size_t)n + 1, sizeof *g);
  long *len = calloc((size_t)n + 1, sizeof *len);
  rc = g && len ? 0 : -1;
  for (int i = 0; rc == 0 && grads && i < n; i++) {
    len[i] = api_len(f->ctx.vars[i].shape, dims);
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
