/*
 * api.c - the public API (matdiff.h): md_compile runs the whole pipeline,
 *   parse -> shapes -> reverse mode -> simplify -> emit C -> libtcc,
 * and md_eval / md_grad call the result. The compilation's context (its
 * DAG) stays alive with the function, for the tape oracle and for names.
 */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "api.h"
#include "emit.h"

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

// Plan both bodies now, so that a failure is the front's and --dump can
// show the plan; the emitter and the cost model read the same plans.
static bool plan(Ctx *c) {
  return plan_body(c, false) && plan_body(c, true);
}

const Stage md_stages[] = {
    {"parse", parse_program, dump_parse},
    {"dag", lower_program, dump_dag},
    {"adjoint", adjoint, dump_grads},
    {"simplified", simplify, dump_grads},
    {"plan", plan, dump_plan},
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

// A buffer of a call, for finding those that share memory (see Call).
enum { SPAN_READ, SPAN_OUT, SPAN_GRAD };

typedef struct Span {
  uintptr_t lo, hi;       /* the bytes [lo, hi) */
  int kind, i;            /* SPAN_*; the input, for a gradient */
  bool shared;            /* overlaps another span */
} Span;

// What a call needs besides the caller's buffers: the emitted code's
// workspace, the gradient pointers it is passed, and md_grad's seed of ones
// for a non-scalar output. Each call borrows one from its function's pool
// and gives it back, so that concurrent calls never share one, and calls
// that follow one another reuse it: a steady state allocates nothing.
typedef struct Workspace {
  struct Workspace *next;   /* in the pool */
  long *dims;               /* the sizes it was checked and sized for ... */
  bool sized;               /* ... if this is set */
  int checked;              /* the DAG's nodes whose sizes were checked at DIMS */
  void *mem;                /* the emitted code's workspace */
  long cap;                 /* its bytes */
  long *len, outlen;        /* each input's elements and the output's, at DIMS */
  double **g;               /* one gradient pointer per input */
  double *ones;             /* md_grad's seed of ones, NONES of them */
  long nones;
  Span *span;               /* the call's buffers, 2 per input + 2 (see redirect) */
  double **tmp, *tmp_out;   /* scratch for the gradients and the output, in a call */
  /* The second order's (second_call): its workspace, which only grows (a
     Hessian's and an HVP's, called in turn, need not take turns to
     allocate); the directions it passes; zeros for a missing direction. */
  void *mem2;
  long cap2;
  const double **dirs;
  double *zeros;
  long nzeros;
} Workspace;

static void ws_free(Workspace *w) {
  free(w->dims);
  free(w->len);
  free(w->mem);
  free(w->mem2);
  free(w->dirs);
  free(w->zeros);
  free(w->g);
  free(w->ones);
  free(w->span);
  free(w->tmp);
  free(w);
}

static bool same_dims(const md_function *f, const Workspace *w, const long *dims) {
  int nd = f->ctx.ndims;
  return w->sized && (nd == 0 || !memcmp(w->dims, dims, sizeof *dims * (size_t)nd));
}

// A workspace goes to the idle slot if it is empty, else to the pool.
static void give_back(md_function *f, Workspace *w) {
  Workspace *none = NULL;
  if (atomic_compare_exchange_strong(&f->idle, &none, w))
    return;
  pthread_mutex_lock(&f->pool_lock);
  w->next = f->pool;
  f->pool = w;
  pthread_mutex_unlock(&f->pool_lock);
}

// The emitted code's workspace *MEM (*CAP bytes) made at least BYTES: a
// new block where it is smaller, or with SHRINK far larger; false, saying
// so, without memory.
static bool workspace_mem(void **mem, long *cap, long bytes, bool shrink, md_error *err) {
  if (*mem && bytes <= *cap && !(shrink && bytes < *cap / 4))
    return true;
  void *m = malloc(bytes > 0 ? (size_t)bytes : 1);
  if (!m) {
    diag_plain(err, "out of memory: the workspace needs %ld bytes", bytes);
    return false;
  }
  free(*mem);
  *mem = m;
  *cap = bytes;
  return true;
}

// Check DIMS and size W's workspace for them. It grows as needed and
// shrinks when a quarter of it would do.
static bool fit(md_function *f, Workspace *w, const long *dims, md_error *err) {
  w->sized = false;
  if (!api_sizes_ok(f, dims, err))
    return false;
  w->checked = f->ctx.nnodes;
  long bytes = f->jit.ws_size(dims);
  if (bytes < 0) {
    diag_plain(err, "internal error: the workspace size is %ld", bytes);
    return false;
  }
  if (!workspace_mem(&w->mem, &w->cap, bytes, true, err))
    return false;
  if (f->ctx.ndims)
    memcpy(w->dims, dims, sizeof *dims * (size_t)f->ctx.ndims);
  for (int i = 0; i < f->ctx.nvars; i++)
    w->len[i] = api_len(f->ctx.vars[i].shape, dims);
  w->outlen = api_len(f->ctx.out->shape, dims);
  w->sized = true;
  return true;
}

// A workspace for a call at DIMS: the idle one if it is sized for them
// (calls one after another take no lock), else one from the pool that is,
// else any, else a new one. NULL with *ERR filled.
static Workspace *borrow(md_function *f, const long *dims, md_error *err) {
  Workspace *w = atomic_exchange(&f->idle, NULL);
  if (!w || !same_dims(f, w, dims)) {
    pthread_mutex_lock(&f->pool_lock);
    Workspace **pick = NULL;
    for (Workspace **p = &f->pool; *p && !pick; p = &(*p)->next)
      if (same_dims(f, *p, dims))
        pick = p;
    if (!pick && !w && f->pool)
      pick = &f->pool;
    if (pick) {
      Workspace *found = *pick;
      *pick = found->next;
      if (w) {  // the idle one goes to the pool instead
        w->next = f->pool;
        f->pool = w;
      }
      w = found;
    }
    pthread_mutex_unlock(&f->pool_lock);
  }
  if (!w) {
    size_t nd = (size_t)f->ctx.ndims + 1, nv = (size_t)f->ctx.nvars + 1;
    w = calloc(1, sizeof *w);
    if (!w || !(w->dims = calloc(nd, sizeof *w->dims)) || !(w->len = calloc(nv, sizeof *w->len)) ||
        !(w->g = calloc(nv, sizeof *w->g)) || !(w->dirs = calloc(nv, sizeof *w->dirs)) ||
        !(w->tmp = calloc(nv, sizeof *w->tmp)) || !(w->span = calloc(2 * nv + 2, sizeof(Span)))) {
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

// W's seed of ones, for md_grad on a non-scalar output, at W's sizes.
static const double *ones(Workspace *w, md_error *err) {
  long n = w->outlen;
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

const char *md_version(void) { return MATDIFF_VERSION; }

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
  if (!f->formulas || !emit_c(c, &o, &code)) {  // emit_c reports why it failed
    buf_free(&code);
    if (!f->formulas)
      diag_plain(err, "out of memory");
    md_free(f);
    return NULL;
  }
  f->csrc = code.s;
  f->scalar = shape_is_scalar(c->out->shape);
  if (!jit_compile(&f->jit, f->csrc, o.name, err)) {
    md_free(f);
    return NULL;
  }
  diag_clear(err);
  c->err = NULL;  // the caller's md_error is not ours to keep
  return f;
}

static void second_free(struct Second2 *s);

void md_free(md_function *f) {
  if (!f)
    return;
  jit_free(&f->jit);
  second_free(f->code2);
  ctx_free(&f->ctx);
  free(f->csrc);
  if (f->idle)
    ws_free(f->idle);
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

char *api_print(md_function *f, const Node *n, size_t limit) {
  pthread_mutex_lock(&f->arena_lock);
  char *s = print_short(&f->ctx, n, limit);
  pthread_mutex_unlock(&f->arena_lock);
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
  double n = grad == MD_FLOPS_JVP || grad == MD_FLOPS_HVP
                 ? emit_flops_second(&f->ctx, grad == MD_FLOPS_HVP ? ORDER2_HVP : ORDER2_JVP, dims)
                 : emit_flops(&f->ctx, grad != 0, dims);
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

int md_input_is_symmetric(const md_function *f, int i) {
  return f && i >= 0 && i < f->ctx.nvars ? f->ctx.vars[i].symmetric : 0;
}

int md_input_is_posdef(const md_function *f, int i) {
  return f && i >= 0 && i < f->ctx.nvars ? f->ctx.vars[i].posdef : 0;
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

// The code reads a symmetric input as if it were (S' is S), so data that is
// not would give the value and gradients of some other matrix.
int md_check_input(const md_function *f, int i, const double *x, long rows, long cols,
                   md_error *err) {
  diag_clear(err);
  if (!f || i < 0 || i >= f->ctx.nvars || !x) {
    diag_plain(err, !f ? "no function" : !x ? "no data" : "no input %d", i);
    return -1;
  }
  const Var *v = &f->ctx.vars[i];
  if (!v->symmetric)
    return 0;
  if (rows != cols) {
    diag_plain(err, "input '%s' is declared %s but is %ld×%ld, not square", v->name,
               v->posdef ? "posdef" : "symmetric", rows, cols);
    return -1;
  }
  long n = rows;
  double big = 0;
  for (long k = 0; k < n * n; k++)
    big = fmax(big, fabs(x[k]));
  for (long r = 0; r < n; r++)
    for (long c = r + 1; c < n; c++) {
      double d = fabs(x[r * n + c] - x[c * n + r]);
      if (d > MD_SYMMETRIC_TOL * big || isnan(d)) {
        diag_plain(err, "input '%s' is declared %s but is not symmetric: %s(%ld,%ld) = %.17g and "
                   "%s(%ld,%ld) = %.17g differ by more than %g times max|%s| = %g",
                   v->name, v->posdef ? "posdef" : "symmetric", v->name, r + 1, c + 1,
                   x[r * n + c], v->name, c + 1, r + 1, x[c * n + r], MD_SYMMETRIC_TOL, v->name,
                   big);
        return -1;
      }
    }
  return 0;
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
  for (int i = 0; i < f->ctx.nvars; i++) {
    if (!f->ctx.vars[i].symmetric)
      continue;
    if (!api_sizes_ok(f, dims, err))
      return false;
    long n = dim_value(f->ctx.vars[i].shape.r, dims);
    if (md_check_input(f, i, inputs[i], n, n, err) != 0)
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

/* ---- calls ------------------------------------------------------------------ */

// One call: the caller's buffers, and the ones the emitted code gets. The
// code reads the inputs and the seed while it writes the output and the
// gradients, so a buffer it writes that shares memory with another buffer
// of the call is replaced by scratch, and the result copied (the output)
// or added (a gradient) into the caller's buffer once everything is read.
// That is what an in-place step (grads[i] == inputs[i]) expects. Gradient
// buffers may share memory (tied parameters get the sum); the output may
// not share memory with a gradient, which means nothing: an error.
typedef struct Call {
  md_function *f;
  const long *dims;
  const double *const *inputs;
  const double *seed;     /* the caller's seed, or md_grad's ones; NULL for a scalar */
  double *out;            /* the caller's (NULL: md_grad without the value) */
  double *const *grads;   /* the caller's (NULL: none) */
  double scale;           /* the gradients are added times this */
  bool all;               /* every gradient through scratch (md_vjp, scalar output) */
  bool scratch;           /* some gradient went through scratch */
  Workspace *w;
  double *code_out;       /* what the code writes: OUT, scratch, or a local */
  double y;               /* the local, for a scalar output without OUT */
} Call;

static int by_start(const void *a, const void *b) {
  uintptr_t x = ((const Span *)a)->lo, y = ((const Span *)b)->lo;
  return (x > y) - (x < y);
}

static bool overlap(const Span *a, const Span *b) { return a->lo < b->hi && b->lo < a->hi; }

// Mark every span of S[0, N) that overlaps another, where the first NW are
// written; true if any does. A few are compared pair by pair, but never two
// that are only read: that costs a call next to nothing. Many are sorted by
// start, and then a span overlaps an earlier one exactly when it starts
// before the furthest end so far, and it overlaps the span that end
// belongs to.
static bool mark_shared(Span *s, int nw, int n) {
  bool any = false;
  if (n <= 32) {
    for (int a = 0; a < nw; a++)
      for (int b = a + 1; b < n; b++)
        if (overlap(&s[a], &s[b]))
          s[a].shared = s[b].shared = any = true;
    return any;
  }
  qsort(s, (size_t)n, sizeof *s, by_start);
  int far = -1;
  for (int k = 0; k < n; k++) {
    if (far >= 0 && s[k].lo < s[far].hi)
      s[k].shared = s[far].shared = any = true;
    if (far < 0 || s[k].hi > s[far].hi)
      far = k;
  }
  return any;
}

static Span span(const void *p, long len, int kind, int i) {
  uintptr_t lo = (uintptr_t)p;
  return (Span){lo, lo + sizeof(double) * (size_t)len, kind, i, false};
}

// The code's buffers for K: W->g[i] and K->code_out, each the caller's
// buffer or scratch (W->tmp[i], W->tmp_out). false with *ERR filled.
static bool redirect(Call *k, md_error *err) {
  md_function *f = k->f;
  Ctx *c = &f->ctx;
  Workspace *w = k->w;
  long outlen = w->outlen;
  int n = 0;
  for (int i = 0; k->grads && i < c->nvars; i++) {  // first what the code writes ...
    w->g[i] = c->vars[i].wrt ? k->grads[i] : NULL;
    if (w->g[i])
      w->span[n++] = span(w->g[i], w->len[i], SPAN_GRAD, i);
  }
  if (k->out)
    w->span[n++] = span(k->out, outlen, SPAN_OUT, -1);
  int nw = n;
  for (int i = 0; i < c->nvars; i++)  // ... then what it reads
    w->span[n++] = span(k->inputs[i], w->len[i], SPAN_READ, i);
  if (k->seed)
    w->span[n++] = span(k->seed, outlen, SPAN_READ, -1);
  // The code writes a scalar value always, a matrix only where asked to.
  k->code_out = k->out ? k->out : f->scalar ? &k->y : NULL;
  if (!mark_shared(w->span, nw, n) && !k->all)
    return true;
  for (int s = 0; s < n; s++) {
    Span *p = &w->span[s];
    if (p->kind == SPAN_OUT && p->shared) {
      for (int t = 0; t < n; t++)
        if (w->span[t].kind == SPAN_GRAD && overlap(&w->span[t], p)) {
          diag_plain(err, "out and the gradient of '%s' overlap", c->vars[w->span[t].i].name);
          return false;
        }
      if (!(k->code_out = w->tmp_out = malloc(sizeof(double) * (size_t)outlen)))
        goto oom;
    }
    if (p->kind == SPAN_GRAD && (p->shared || k->all)) {
      if (!(w->g[p->i] = w->tmp[p->i] = calloc((size_t)w->len[p->i], sizeof(double))))
        goto oom;
      k->scratch = true;
    }
  }
  return true;
oom:
  diag_plain(err, "out of memory");
  return false;
}

// After a successful call: the scratch copied or added into the caller's
// buffers. Then the scratch is freed and W goes back to the pool.
static void finish(Call *k, bool ok) {
  Ctx *c = &k->f->ctx;
  Workspace *w = k->w;
  if (ok && w->tmp_out)
    memcpy(k->out, w->tmp_out, sizeof(double) * (size_t)w->outlen);
  for (int i = 0; k->scratch && i < c->nvars; i++) {
    if (!w->tmp[i])
      continue;
    for (long e = 0; ok && e < w->len[i]; e++)
      k->grads[i][e] += k->scale * w->tmp[i][e];
    free(w->tmp[i]);
    w->tmp[i] = NULL;
  }
  if (w->tmp_out) {
    free(w->tmp_out);
    w->tmp_out = NULL;
  }
  give_back(k->f, w);
}

// Run K: md_eval (GRAD false) or one of the gradient entries.
static int call(Call *k, bool grad, md_error *err) {
  md_function *f = k->f;
  if (!(k->w = borrow(f, k->dims, err)))
    return -1;
  bool scalar = f->scalar;
  if (grad && !scalar && !k->seed && !(k->seed = ones(k->w, err))) {
    give_back(f, k->w);
    return -1;
  }
  const char *why = NULL;
  bool ok = redirect(k, err);
  if (ok)
    why = grad ? f->jit.grad(k->dims, k->inputs, scalar ? NULL : k->seed, k->code_out, k->w->g,
                             k->w->mem)
               : f->jit.eval(k->dims, k->inputs, k->code_out, k->w->mem);
  if (why) {
    diag_plain(err, "%s", why);
    ok = false;
  }
  finish(k, ok);
  return ok ? 0 : -1;
}

int md_eval(md_function *f, const long *dims, const double *const *inputs, double *out,
            md_error *err) {
  if (!api_call_ok(f, dims, inputs, err))
    return -1;
  if (!out) {
    diag_plain(err, "no buffer for the output");
    return -1;
  }
  Call k = {.f = f, .dims = dims, .inputs = inputs, .out = out};
  return call(&k, false, err);
}

int md_grad(md_function *f, const long *dims, const double *const *inputs, double *out,
            double *const *grads, md_error *err) {
  if (!api_call_ok(f, dims, inputs, err))
    return -1;
  Call k = {.f = f, .dims = dims, .inputs = inputs, .out = out, .grads = grads, .scale = 1};
  return call(&k, true, err);
}

// For a scalar output the seed scales the gradient: the emitted code
// computes it into scratch, and it is added times the seed (read first,
// since a gradient buffer may hold it).
int md_vjp(md_function *f, const long *dims, const double *const *inputs, const double *seed,
           double *out, double *const *grads, md_error *err) {
  if (!api_call_ok(f, dims, inputs, err))
    return -1;
  if (!seed) {
    diag_plain(err, "no seed");
    return -1;
  }
  bool scalar = f->scalar;
  Call k = {.f = f, .dims = dims, .inputs = inputs, .seed = seed, .out = out, .grads = grads,
            .scale = scalar ? seed[0] : 1, .all = scalar};
  return call(&k, true, err);
}

/* ---- NumPy --------------------------------------------------------------- */

const char *md_numpy_source(md_function *f, md_error *err) {
  diag_clear(err);
  if (!f) {
    diag_plain(err, "no function");
    return NULL;
  }
  Ctx *c = &f->ctx;
  pthread_mutex_lock(&f->arena_lock);
  if (!f->numpy) {
    Buf b = {0};
    c->err = err;  // emit_numpy reports through the caller's md_error
    c->failed = false;
    if (emit_numpy(c, "f", true, &b) && !(f->numpy = arena_strdup(&c->arena, b.s)))
      diag_plain(err, "out of memory");
    c->err = NULL;
    buf_free(&b);
  }
  const char *s = f->numpy;
  pthread_mutex_unlock(&f->arena_lock);
  return s;
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

/* ---- second order: calls --------------------------------------------------- */

// The second-order functions (emit_second.c), JIT-compiled on the first
// call that needs them: a compilation most programs never pay for.
typedef const char *(*JvpBody)(const long *, const double *const *, const double *const *,
                               double *, void *);
typedef const char *(*HvpBody)(const long *, const double *const *, const double *const *,
                               double *const *, void *);
typedef const char *(*MatrixBody)(const long *, const double *const *, double *, void *);

struct Second2 {
  Jit jit;
  long (*ws)(const long *dims, int what);  /* bytes: what is an ORDER2-like index below */
  JvpBody jvp;
  HvpBody hvp;          /* NULL for a matrix output */
  MatrixBody hessian;   /* NULL for a matrix output */
  MatrixBody jacobian;  /* NULL for a scalar output */
};

enum { CALL_JVP, CALL_HVP, CALL_HESSIAN, CALL_JACOBIAN };  /* as md_fn_entry_ws2 takes them */

static void second_free(struct Second2 *s) {
  if (s) {
    jit_free(&s->jit);
    free(s);
  }
}

static struct Second2 *second_code(md_function *f, md_error *err) {
  pthread_mutex_lock(&f->arena_lock);
  struct Second2 *s = f->code2;
  if (!s) {
    Ctx *c = &f->ctx;
    Buf code = {0};
    EmitOpts o = {.name = "md_fn", .jit = true, .second = true};
    c->err = err;  // the derivation reports through the caller's md_error
    c->failed = false;
    s = calloc(1, sizeof *s);
    bool ok = s && emit_c(c, &o, &code) && !code.oom && jit_compile(&s->jit, code.s, o.name, err);
    c->err = NULL;
    if (!s)
      diag_plain(err, "out of memory");
    if (ok) {
      s->ws = (long (*)(const long *, int))jit_symbol(&s->jit, "md_fn_entry_ws2");
      s->jvp = (JvpBody)jit_symbol(&s->jit, "md_fn_jvp_body");
      s->hvp = (HvpBody)jit_symbol(&s->jit, "md_fn_hvp_body");
      s->hessian = (MatrixBody)jit_symbol(&s->jit, "md_fn_hessian_body");
      s->jacobian = (MatrixBody)jit_symbol(&s->jit, "md_fn_jacobian_body");
      if (!(ok = s->ws && s->jvp))
        diag_plain(err, "internal error: the second-order code has no entry points");
    }
    buf_free(&code);
    if (ok)
      f->code2 = s;
    else {
      second_free(s);
      s = NULL;
    }
  }
  pthread_mutex_unlock(&f->arena_lock);
  return s;
}

long md_wrt_size(const md_function *f, const long *dims) {
  long n = 0;
  for (int i = 0; f && i < f->ctx.nvars; i++)
    if (f->ctx.vars[i].wrt)
      n = size_add(n, api_len(f->ctx.vars[i].shape, dims));
  return f ? n : -1;
}

// Does [p, p + n) share memory with an input or a direction?
static bool reads_overlap(const md_function *f, const long *dims, const double *const *inputs,
                          const double *const *dirs, const double *p, long n) {
  Span s = span(p, n, SPAN_OUT, -1);
  for (int i = 0; i < f->ctx.nvars; i++) {
    long len = api_len(f->ctx.vars[i].shape, dims);
    Span a = span(inputs[i], len, SPAN_READ, i), b = span(dirs[i], len, SPAN_READ, i);
    if (overlap(&s, &a) || (dirs[i] && overlap(&s, &b)))
      return true;
  }
  return false;
}

// One second-order call WHAT (CALL_*): DIRS and HV for the JVP and HVP,
// RES the tangent, the Hessian or the Jacobian. A result that shares
// memory with what is read is computed in scratch and then written (the
// tangent) or added.
static int second_call(md_function *f, int what, const long *dims, const double *const *inputs,
                       const double *const *dirs, double *const *hv, double *res, md_error *err) {
  static const char *const names[] = {"the JVP", "the HVP", "the Hessian", "the Jacobian"};
  if (!api_call_ok(f, dims, inputs, err) || !dims_ok(f, dims, err))
    return -1;
  Ctx *c = &f->ctx;
  bool scalar = f->scalar;
  if ((what == CALL_HVP || what == CALL_HESSIAN) && !scalar) {
    diag_plain(err, "%s needs a scalar output; %s is %ld×%ld", names[what], c->outname,
               md_output_rows(f, dims), md_output_cols(f, dims));
    return -1;
  }
  if (what == CALL_JACOBIAN && scalar) {
    diag_plain(err, "the Jacobian of a scalar output is its gradient: call md_grad");
    return -1;
  }
  if (what != CALL_HVP && !res) {
    diag_plain(err, "no buffer for %s", names[what]);
    return -1;
  }
  long N = md_wrt_size(f, dims), outlen = api_len(c->out->shape, dims);
  long reslen = what == CALL_JVP ? outlen : what == CALL_HESSIAN ? size_mul(N, N) : size_mul(outlen, N);
  if (reslen < 0 || size_mul(reslen, sizeof(double)) < 0) {
    diag_plain(err, "the sizes are too large: %s overflows", names[what]);
    return -1;
  }
  struct Second2 *s = second_code(f, err);
  if (!s)
    return -1;
  int nv = c->nvars;
  long maxlen = 1;
  for (int i = 0; i < nv; i++)
    if (api_len(c->vars[i].shape, dims) > maxlen)
      maxlen = api_len(c->vars[i].shape, dims);
  long wsbytes = s->ws(dims, what);
  // The buffers come from the function's pool, as md_grad's: calls that
  // follow one another allocate nothing (a Hessian's workspace can be
  // n*k doubles, whose pages a fresh malloc would fault in every call).
  Workspace *w = borrow(f, dims, err);
  if (!w)
    return -1;
  // Every size checked once per workspace and sizes, not every call (a
  // walk over the whole DAG, second order included: a quarter of a small
  // HVP's time); again when the second order's derivation grew the DAG.
  if (w->checked < c->nnodes) {
    if (!api_sizes_ok(f, dims, err)) {
      give_back(f, w);
      return -1;
    }
    w->checked = c->nnodes;
  }
  const double **d = w->dirs;
  double **h = w->g, **tmp = w->tmp, *scratch = NULL;
  for (int i = 0; i < nv; i++)
    h[i] = tmp[i] = NULL;
  int rc = -1;
  if (wsbytes < 0) {
    diag_plain(err, "internal error: the workspace size is %ld", wsbytes);
    goto done;
  }
  if (!workspace_mem(&w->mem2, &w->cap2, wsbytes, false, err))
    goto done;
  if (maxlen > w->nzeros) {
    free(w->zeros);
    w->nzeros = maxlen;
    if (!(w->zeros = calloc((size_t)maxlen, sizeof *w->zeros))) {
      w->nzeros = 0;
      diag_plain(err, "out of memory");
      goto done;
    }
  }
  void *ws = w->mem2;
  const double *zero = w->zeros;
  // A missing direction moves nothing: zeros.
  for (int i = 0; i < nv; i++)
    d[i] = c->vars[i].wrt ? (dirs && dirs[i] ? dirs[i] : zero) : NULL;
  double *into = res;
  if (res && reads_overlap(f, dims, inputs, d, res, reslen)) {
    if (!(scratch = calloc((size_t)reslen, sizeof *scratch))) {
      diag_plain(err, "out of memory");
      goto done;
    }
    into = scratch;
  }
  for (int i = 0; what == CALL_HVP && hv && i < nv; i++) {
    long len = api_len(c->vars[i].shape, dims);
    h[i] = c->vars[i].wrt ? hv[i] : NULL;
    if (h[i] && reads_overlap(f, dims, inputs, d, h[i], len)) {
      if (!(tmp[i] = calloc((size_t)len, sizeof(double)))) {
        diag_plain(err, "out of memory");
        goto done;
      }
      h[i] = tmp[i];
    }
  }
  const char *why = what == CALL_JVP ? s->jvp(dims, inputs, d, into, ws)
                    : what == CALL_HVP ? s->hvp(dims, inputs, d, h, ws)
                    : what == CALL_HESSIAN ? s->hessian(dims, inputs, into, ws)
                                           : s->jacobian(dims, inputs, into, ws);
  if (why) {
    diag_plain(err, "%s", why);
    goto done;
  }
  rc = 0;
  for (long e = 0; scratch && e < reslen; e++)
    res[e] = what == CALL_JVP ? scratch[e] : res[e] + scratch[e];
  for (int i = 0; i < nv; i++)
    for (long e = 0; tmp[i] && e < api_len(c->vars[i].shape, dims); e++)
      hv[i][e] += tmp[i][e];
done:
  for (int i = 0; i < nv; i++) {
    free(tmp[i]);
    tmp[i] = NULL;
  }
  free(scratch);
  give_back(f, w);
  return rc;
}

int md_jvp(md_function *f, const long *dims, const double *const *inputs, const double *const *dirs,
           double *tangent, md_error *err) {
  return second_call(f, CALL_JVP, dims, inputs, dirs, NULL, tangent, err);
}

int md_hvp(md_function *f, const long *dims, const double *const *inputs, const double *const *dirs,
           double *const *hv, md_error *err) {
  return second_call(f, CALL_HVP, dims, inputs, dirs, hv, NULL, err);
}

int md_hessian(md_function *f, const long *dims, const double *const *inputs, double *H,
               md_error *err) {
  return second_call(f, CALL_HESSIAN, dims, inputs, NULL, NULL, H, err);
}

int md_jacobian(md_function *f, const long *dims, const double *const *inputs, double *J,
                md_error *err) {
  return second_call(f, CALL_JACOBIAN, dims, inputs, NULL, NULL, J, err);
}
