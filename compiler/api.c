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

/* ---- workspaces ---------------------------------------------------------- */

// What a call needs besides the caller's buffers: the emitted code's
// workspace, the gradient pointers it is passed, and md_grad's seed of ones
// for a non-scalar output. Each call borrows one from its function's pool
// and gives it back, so that concurrent calls never share one, and calls
// that follow one another reuse it: a steady state allocates nothing.
typedef struct Workspace {
  struct Workspace *next;   /* in the pool */
  long *dims;               /* the sizes it was checked and sized for ... */
  bool sized;               /* ... if this is set */
  void *mem;                /* the emitted code's workspace */
  long cap;                 /* its bytes */
  double **g;               /* one gradient pointer per input */
  double *ones;             /* md_grad's seed of ones, NONES of them */
  long nones;
} Workspace;

static void ws_free(Workspace *w) {
  free(w->dims);
  free(w->mem);
  free(w->g);
  free(w->ones);
  free(w);
}

static bool same_dims(const md_function *f, const Workspace *w, const long *dims) {
  return w->sized && !memcmp(w->dims, dims, sizeof *dims * (size_t)f->ctx.ndims);
}

static void give_back(md_function *f, Workspace *w) {
  pthread_mutex_lock(&f->pool_lock);
  w->next = f->pool;
  f->pool = w;
  pthread_mutex_unlock(&f->pool_lock);
}

// Check DIMS and size W's workspace for them. It grows as needed and
// shrinks when a quarter of it would do.
static bool fit(md_function *f, Workspace *w, const long *dims, md_error *err) {
  w->sized = false;
  if (!api_sizes_ok(f, dims, err))
    return false;
  long bytes = f->jit.ws_size(dims);
  if (bytes < 0) {
    diag_plain(err, "internal error: the workspace size is %ld", bytes);
    return false;
  }
  if (!w->mem || bytes > w->cap || bytes < w->cap / 4) {
    void *mem = malloc(bytes > 0 ? (size_t)bytes : 1);
    if (!mem) {
      diag_plain(err, "out of memory: the workspace needs %ld bytes", bytes);
      return false;
    }
    free(w->mem);
    w->mem = mem;
    w->cap = bytes;
  }
  memcpy(w->dims, dims, sizeof *dims * (size_t)f->ctx.ndims);
  w->sized = true;
  return true;
}

// A workspace for a call at DIMS: from the pool, preferably one already
// sized for them, else new. NULL with *ERR filled.
static Workspace *borrow(md_function *f, const long *dims, md_error *err) {
  pthread_mutex_lock(&f->pool_lock);
  Workspace **pick = &f->pool;
  for (Workspace **p = &f->pool; *p; p = &(*p)->next)
    if (same_dims(f, *p, dims)) {
      pick = p;
      break;
    }
  Workspace *w = *pick;
  if (w)
    *pick = w->next;
  pthread_mutex_unlock(&f->pool_lock);
  if (!w) {
    size_t nd = (size_t)f->ctx.ndims + 1, nv = (size_t)f->ctx.nvars + 1;
    w = calloc(1, sizeof *w);
    if (!w || !(w->dims = calloc(nd, sizeof *w->dims)) || !(w->g = calloc(nv, sizeof *w->g))) {
      if (w)
        ws_free(w);
      diag_plain(err, "out of memory");
      return NULL;
    }
  }
  if (!same_dims(f, w, dims) && !fit(f, w, dims, err)) {
    give_back(f, w);
    return NULL;
  }
  return w;
}

// W's seed of ones, for md_grad on a non-scalar output at the sizes W was
// fitted to.
static const double *ones(md_function *f, Workspace *w, const long *dims, md_error *err) {
  long n = api_len(f->ctx.out->shape, dims);
  if (n > w->nones) {
    double *s = malloc(sizeof *s * (size_t)n);
    if (!s) {
      diag_plain(err, "out of memory: a seed of %ld ones", n);
      return NULL;
    }
    for (long i = 0; i < n; i++)
      s[i] = 1;
    free(w->ones);
    w->ones = s;
    w->nones = n;
  }
  return w->ones;
}

/* ---- compiling ------------------------------------------------------------ */

md_function *md_compile(const char *source, const char *filename, md_error *err) {
  diag_clear(err);
  if (!source) {
    diag_plain(err, "no source");
    return NULL;
  }
  md_function *f = calloc(1, sizeof *f);
  if (!f) {
    diag_plain(err, "out of memory");
    return NULL;
  }
  pthread_mutex_init(&f->pool_lock, NULL);
  pthread_mutex_init(&f->arena_lock, NULL);
  if (!(f->src = strdup(source))) {
    diag_plain(err, "out of memory");
    md_free(f);
    return NULL;
  }
  char *src = f->src;
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
  for (Workspace *w = f->pool, *next; w; w = next) {
    next = w->next;
    ws_free(w);
  }
  pthread_mutex_destroy(&f->pool_lock);
  pthread_mutex_destroy(&f->arena_lock);
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
  pthread_mutex_lock(&m->arena_lock);
  if (!m->formulas[i])
    m->formulas[i] = print_str(&m->ctx, m->ctx.grads[i]);
  const char *s = m->formulas[i];
  pthread_mutex_unlock(&m->arena_lock);
  return s;
}

const char *md_c_source(const md_function *f) { return f ? f->csrc : NULL; }

double md_flops(md_function *f, const long *dims, int grad) {
  if (!f || (f->ctx.ndims && !dims))
    return -1;
  for (int i = 0; i < f->ctx.ndims; i++)
    if (dims[i] < 1)
      return -1;
  pthread_mutex_lock(&f->arena_lock);
  double n = emit_flops(&f->ctx, grad != 0, dims);
  pthread_mutex_unlock(&f->arena_lock);
  return n;
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
  Workspace *w = borrow(f, dims, err);
  if (!w)
    return -1;
  const char *why = f->jit.eval(dims, inputs, out, w->mem);
  give_back(f, w);
  if (why) {
    diag_plain(err, "%s", why);
    return -1;
  }
  return 0;
}

// The gradient entry takes an array with one entry per input; inputs
// without a gradient are never read, and an absent array means none. A
// NULL SEED is md_grad's: none for a scalar output, ones for another.
static int backward(md_function *f, const long *dims, const double *const *inputs,
                    const double *seed, double *out, double *const *grads, md_error *err) {
  Workspace *w = borrow(f, dims, err);
  if (!w)
    return -1;
  bool scalar = shape_is_scalar(f->ctx.out->shape);
  if (!seed && !scalar && !(seed = ones(f, w, dims, err))) {
    give_back(f, w);
    return -1;
  }
  for (int i = 0; i < f->ctx.nvars; i++)
    w->g[i] = grads ? grads[i] : NULL;
  double y;
  const char *why = f->jit.grad(dims, inputs, seed, out ? out : scalar ? &y : NULL, w->g, w->mem);
  give_back(f, w);
  if (why) {
    diag_plain(err, "%s", why);
    return -1;
  }
  return 0;
}

int md_grad(md_function *f, const long *dims, const double *const *inputs, double *out,
            double *const *grads, md_error *err) {
  if (!api_call_ok(f, dims, inputs, err))
    return -1;
  return backward(f, dims, inputs, NULL, out, grads, err);
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
