/*
 * abi.c - what is around the bodies emit_c.c prints: the C names of
 * everything (claimed so that no user name clashes with C, libm, the
 * runtime or another name), the parameter lists, the public wrappers that
 * allocate or take a workspace, the JIT's array-form entry points, and the
 * file's header comment and includes. This is the interface a user's code
 * (or md_eval through the JIT) calls, so it is written in one place.
 */
#include <string.h>
#include "emit.h"

#define HEADER_FORMULA_MAX 2000  /* bytes of a formula in the header comment */
#define NAMESET_MIN 64           /* slots of a name set's first table */

/* ---- names ------------------------------------------------------------- */

static const char *const reserved[] = {
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else",
    "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register",
    "restrict", "return", "short", "signed", "sizeof", "static", "struct", "switch", "typedef",
    "union", "unsigned", "void", "volatile", "while", "_Bool", "_Complex", "_Imaginary",
    "i", "j", "v", "y", "ws", "ws_", "NULL", "main", "NAN",
};

static size_t name_hash(const char *s) {  // djb2
  size_t h = 5381;
  while (*s)
    h = h * 33 + (unsigned char)*s++;
  return h;
}

static bool set_has(const NameSet *t, const char *s) {
  if (!t->cap)
    return false;
  for (size_t i = name_hash(s) & (t->cap - 1); t->slot[i]; i = (i + 1) & (t->cap - 1))
    if (!strcmp(t->slot[i], s))
      return true;
  return false;
}

static bool set_add(Arena *a, NameSet *t, char *s) {
  if (2 * (t->n + 1) > t->cap) {
    NameSet bigger = {.cap = t->cap ? 2 * t->cap : NAMESET_MIN};
    if (!(bigger.slot = arena_alloc(a, sizeof(char *) * bigger.cap)))
      return false;
    for (size_t i = 0; i < t->cap; i++)
      if (t->slot[i])
        set_add(a, &bigger, t->slot[i]);
    *t = bigger;
  }
  size_t i = name_hash(s) & (t->cap - 1);
  while (t->slot[i])
    i = (i + 1) & (t->cap - 1);
  t->slot[i] = s;
  t->n++;
  return true;
}

static bool is_taken(Emit *e, const char *s) {
  for (size_t i = 0; i < sizeof reserved / sizeof *reserved; i++)
    if (!strcmp(reserved[i], s))
      return true;
  return runtime_name(s) || optab_is_libm(s, strlen(s), true) || set_has(&e->fixed, s) ||
         set_has(&e->temps, s);
}

// A C name for WANT that clashes with nothing so far: WANT, else WANT_,
// WANT__, ... Names taken before the bodies are printed (functions,
// parameters) stay; a body's temporaries are forgotten when the next body
// is named. Out of memory, "" with e->oom set.
static const char *claim(Emit *e, const char *want) {
  Arena *A = &e->c->arena;
  // The runtime owns every mdrt_ name: a user's mdrt_x becomes u_mdrt_x.
  char *s = !want ? NULL : !runtime_name(want) ? arena_strdup(A, want) : arena_printf(A, "u_%s", want);
  while (s && is_taken(e, s))
    s = arena_printf(A, "%s_", s);
  if (!s || !set_add(A, e->sealed ? &e->temps : &e->fixed, s)) {
    e->oom = true;
    return "";
  }
  return s;
}

// C names for the body's buffers and scalars: t1, t2, ... in id order.
// Each body names its own: the other body's temporaries are forgotten.
void abi_name_temps(Emit *e) {
  Ctx *c = e->c;
  const Plan *p = e->p;
  if (e->temps.cap)
    memset(e->temps.slot, 0, sizeof(char *) * e->temps.cap);
  e->temps.n = 0;
  int ntemps = 0;
  for (int i = 0; i < p->n; i++) {
    Node *n = c->nodes[i];
    e->cname[i] = NULL;
    if (n->op == OP_VAR)
      e->cname[i] = e->pname[n->k];
    else if (n->op == OP_SEED)
      e->cname[i] = e->seedp;
    else if (p->form[i] == F_BUFFER || p->form[i] == F_SCALAR)
      e->cname[i] = claim(e, arena_printf(&c->arena, "t%d", ++ntemps));
  }
  for (int k = 1; k <= p->nlu; k++)  // the LU factorisations
    e->luname[k] = claim(e, arena_printf(&c->arena, "lu%d", k));
}

bool abi_setup(Emit *e, Ctx *c, const EmitOpts *o, Buf *out) {
  memset(e, 0, sizeof *e);
  e->c = c;
  e->o = out;
  e->opts = o;
  e->matrix_out = !shape_is_scalar(c->out->shape);
  // The emitter prints either precision directly: the types, literals and
  // function names it writes are these.
  e->real = o->flt ? "float" : "double";
  e->lit = e->libm = o->flt ? "f" : "";
  e->kern = o->flt ? "_f" : "";
  e->zero = o->flt ? "0.0f" : "0.0";
  e->one = o->flt ? "1.0f" : "1.0";
  static const char *const suffixes[] = {"", "_ws", "_grad", "_grad_ws", "_vjp", "_vjp_ws",
                                         "_workspace_size", "_forward", "_backward",
                                         "_entry_ws", "_entry_eval", "_entry_grad"};
  for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++)
    claim(e, arena_printf(&c->arena, "%s%s", o->name, suffixes[i]));
  e->dname = arena_alloc(&c->arena, sizeof(char *) * (size_t)(c->ndims + 1));
  e->pname = arena_alloc(&c->arena, sizeof(char *) * (size_t)(c->nvars + 1));
  e->gname = arena_alloc(&c->arena, sizeof(char *) * (size_t)(c->nvars + 1));
  if (!e->dname || !e->pname || !e->gname)
    return false;
  for (int i = 0; i < c->ndims; i++)
    e->dname[i] = claim(e, c->dims[i]);
  for (int i = 0; i < c->nvars; i++)
    e->pname[i] = claim(e, c->vars[i].name);
  e->seedp = e->matrix_out || o->jit ? claim(e, "seed") : NULL;
  e->outp = claim(e, "out");
  if (o->jit) {
    e->arr_d = claim(e, "dims");
    e->arr_in = claim(e, "inputs");
    e->arr_g = claim(e, "grads");
  }
  for (int i = 0; i < c->nvars; i++)
    if (c->vars[i].wrt)
      e->gname[i] = claim(e, arena_printf(&c->arena, "d%s", c->vars[i].name));
  e->cname = arena_alloc(&c->arena, sizeof(char *) * (size_t)(c->nnodes + 1));
  e->sealed = true;
  return e->cname != NULL;
}

/* ---- functions ---------------------------------------------------------- */

typedef enum Sig {
  SIG_VALUE,     /* the value: dims, inputs, out */
  SIG_GRAD,      /* the gradients: dims, inputs, [seed,] out, grads */
} Sig;

static void sep(Buf *o, bool *first) {
  if (!*first)
    buf_puts(o, ", ");
  *first = false;
}

// The parameter list of the generated functions. PUBLIC drops the out
// parameter where the public API has none (a scalar output is returned;
// the VJP does not give the value).
static void params(Emit *e, Sig sig, bool public, bool ws) {
  Ctx *c = e->c;
  bool first = true;
  for (int i = 0; i < c->ndims; i++)
    sep(e->o, &first), buf_printf(e->o, "long %s", e->dname[i]);
  for (int i = 0; i < c->nvars; i++)
    sep(e->o, &first), buf_printf(e->o, "const %s *%s", e->real, e->pname[i]);
  if (sig == SIG_GRAD && e->matrix_out)
    sep(e->o, &first), buf_printf(e->o, "const %s *%s", e->real, e->seedp);
  if (!public || (sig == SIG_VALUE && e->matrix_out))
    sep(e->o, &first), buf_printf(e->o, "%s *%s", e->real, e->outp);
  if (sig == SIG_GRAD)
    for (int i = 0; i < c->nvars; i++)
      if (c->vars[i].wrt)
        sep(e->o, &first), buf_printf(e->o, "%s *%s", e->real, e->gname[i]);
  if (ws)
    sep(e->o, &first), buf_puts(e->o, "void *ws_");
  if (first)
    buf_puts(e->o, "void");
}

// The arguments matching params(e, sig, ...) and the workspace, from the
// names used inside a public wrapper; OUT is left out when NULL.
static void call_args(Emit *e, Sig sig, const char *out) {
  Ctx *c = e->c;
  bool first = true;
  for (int i = 0; i < c->ndims; i++)
    sep(e->o, &first), buf_puts(e->o, e->dname[i]);
  for (int i = 0; i < c->nvars; i++)
    sep(e->o, &first), buf_puts(e->o, e->pname[i]);
  if (sig == SIG_GRAD && e->matrix_out)
    sep(e->o, &first), buf_puts(e->o, e->seedp);
  if (out)
    sep(e->o, &first), buf_puts(e->o, out);
  if (sig == SIG_GRAD)
    for (int i = 0; i < c->nvars; i++)
      if (c->vars[i].wrt)
        sep(e->o, &first), buf_puts(e->o, e->gname[i]);
  sep(e->o, &first), buf_puts(e->o, "ws");
}

// For the JIT, the function that does the work is the entry point itself:
// it takes its sizes, inputs and gradient buffers as arrays (libtcc cannot
// pass a hundred arguments), and names them as the AOT code does.
static void jit_prologue(Emit *e, bool grads) {
  Ctx *c = e->c;
  const char *P = e->opts->name;
  if (grads)
    buf_printf(e->o, "const char *%s_entry_grad(const long *%s, const double *const *%s, "
                     "const double *%s, double *%s, double *const *%s, void *ws_) {\n",
               P, e->arr_d, e->arr_in, e->seedp, e->outp, e->arr_g);
  else
    buf_printf(e->o, "const char *%s_entry_eval(const long *%s, const double *const *%s, double *%s, "
                     "void *ws_) {\n", P, e->arr_d, e->arr_in, e->outp);
  buf_printf(e->o, "  double *ws = ws_;\n  (void)%s; (void)%s;\n", e->arr_d, e->arr_in);
  if (grads)
    buf_printf(e->o, "  (void)%s; (void)%s;\n", e->seedp, e->arr_g);
  for (int i = 0; i < c->ndims; i++)
    buf_printf(e->o, "  long %s = %s[%d];\n", e->dname[i], e->arr_d, i);
  for (int i = 0; i < c->nvars; i++)
    buf_printf(e->o, "  const double *%s = %s[%d];\n", e->pname[i], e->arr_in, i);
  for (int i = 0; grads && i < c->nvars; i++)
    if (c->vars[i].wrt)
      buf_printf(e->o, "  double *%s = %s[%d];\n", e->gname[i], e->arr_g, i);
}

// The opening of the function that does the work, up to its body: the
// static P_forward or P_backward, or for the JIT the entry point itself.
// The parameters the body leaves unused are cast to void, so that the file
// compiles with -Wall -Wextra -Werror; the plan knows which. (Each
// gradient buffer is read, by its `if (dX)`.)
void abi_open(Emit *e) {
  Ctx *c = e->c;
  const Plan *p = e->p;
  if (e->opts->jit)
    jit_prologue(e, p->grads);
  else {
    buf_printf(e->o, "static const char *%s_%s(", e->opts->name, p->grads ? "backward" : "forward");
    params(e, p->grads ? SIG_GRAD : SIG_VALUE, false, true);
    buf_printf(e->o, ") {\n  %s *ws = ws_;\n", e->real);
  }
  for (int i = 0; i < c->ndims; i++)
    if (!p->dim_read[i])
      buf_printf(e->o, "  (void)%s;\n", e->dname[i]);
  for (int i = 0; i < c->nvars; i++)
    if (!p->var_read[i])
      buf_printf(e->o, "  (void)%s;\n", e->pname[i]);
  if (p->grads && e->matrix_out && !p->seed_read)
    buf_printf(e->o, "  (void)%s;\n", e->seedp);
}

static void dims_args(Emit *e) {
  for (int i = 0; i < e->c->ndims; i++)
    buf_printf(e->o, "%s%s", i ? ", " : "", e->dname[i]);
}

// The public functions around one impl: P_ws / P_grad_ws (or P_vjp_ws) in
// a caller's workspace, and P / P_grad (P_vjp) allocating it.
void abi_wrappers(Emit *e, bool grads) {
  const char *P = e->opts->name;
  Sig sig = grads ? SIG_GRAD : SIG_VALUE;
  const char *suffix = !grads ? "" : e->matrix_out ? "_vjp" : "_grad";
  const char *impl_name = grads ? "backward" : "forward";
  // A scalar output is returned (NaN on error); otherwise 0 or -1.
  const char *type = e->matrix_out ? "int" : e->real;
  const char *out = !e->matrix_out ? "&y" : grads ? "0" : e->outp;
  buf_printf(e->o, "%s %s%s_ws(", type, P, suffix);
  params(e, sig, true, true);
  buf_printf(e->o, ") {\n  %s *ws = ws_;\n", e->real);
  if (!e->matrix_out)
    buf_printf(e->o, "  %s y;\n  if (%s_%s(", e->real, P, impl_name), call_args(e, sig, out),
        buf_printf(e->o, "))\n    return %s/%s;\n  return y;\n}\n\n", e->zero, e->zero);
  else
    buf_printf(e->o, "  return %s_%s(", P, impl_name), call_args(e, sig, out),
        buf_puts(e->o, ") ? -1 : 0;\n}\n\n");
  buf_printf(e->o, "%s %s%s(", type, P, suffix);
  params(e, sig, true, false);
  buf_printf(e->o, ") {\n  void *ws = mdrt_alloc(%s_workspace_size(", P);
  dims_args(e);
  buf_printf(e->o, "));\n  if (!ws)\n    return %s%s%s;\n  %s y = %s%s_ws(", e->matrix_out ? "-1" : e->zero,
             e->matrix_out ? "" : "/", e->matrix_out ? "" : e->zero, type, P, suffix);
  call_args(e, sig, !grads && e->matrix_out ? e->outp : NULL);
  buf_puts(e->o, ");\n  mdrt_free(ws);\n  return y;\n}\n\n");
}

// Array-form entry points for md_eval and md_grad, which call any arity.
void abi_jit_entries(Emit *e) {
  Ctx *c = e->c;
  const char *P = e->opts->name;
  buf_printf(e->o, "long %s_entry_ws(const long *d) {\n  (void)d;\n  return %s_workspace_size(", P, P);
  for (int i = 0; i < c->ndims; i++)
    buf_printf(e->o, "%sd[%d]", i ? ", " : "", i);
  buf_puts(e->o, ");\n}\n\n");
}

// The kernels standalone.c defines that have a single-precision twin
// mdrt_X_f (kernels.def), which float code calls.
static const char *const float_twins[] = {
#define mdrt_real double
#define MDRT_KERNEL(ret, name, params, args, dbl, flt) TWIN_##flt(name)
#define TWIN_LOOP(name) #name,
#define TWIN_OWN(name) #name,
#define TWIN_BLAS(name) #name,
#define TWIN_NONE(name)
#define MDRT_LIBM(name, fname, arity, who)
#include "kernels.def"
#undef mdrt_real
#undef MDRT_KERNEL
#undef TWIN_LOOP
#undef TWIN_OWN
#undef TWIN_BLAS
#undef TWIN_NONE
#undef MDRT_LIBM
};

// --standalone --float: standalone.c read in single precision, as
// runtime/float.c reads it for the library, by the preprocessor: double is
// float, <tgmath.h> makes exp expf, and each kernel takes its twin's name.
static void standalone_float(Emit *e) {
  buf_puts(e->o, "#include <stdlib.h>\n#include <tgmath.h>\n\n"
                 "/* The runtime's kernels, as plain loops (matdiff's runtime/standalone.c), in\n"
                 "   single precision: double is float, <tgmath.h> makes exp expf, and each\n"
                 "   kernel mdrt_X is mdrt_X_f. */\n#define double float\n");
  for (size_t i = 0; i < sizeof float_twins / sizeof *float_twins; i++)
    buf_printf(e->o, "#define mdrt_%s mdrt_%s_f\n", float_twins[i], float_twins[i]);
  buf_printf(e->o, "%s#undef double\n\n", md_rt_standalone);
}

// The file's header comment, which says what the functions compute and
// how to call them, and its includes (for the JIT, declarations).
void abi_header(Emit *e) {
  Ctx *c = e->c;
  const char *P = e->opts->name;
  buf_printf(e->o, "/*\n * Generated by matdiff %s from %s. Do not edit.\n *\n", MATDIFF_VERSION, c->file);
  char *out = print_short(c, c->out, HEADER_FORMULA_MAX);
  buf_printf(e->o, " *   %s = %s\n", c->outname, out ? out : "?");
  for (int i = 0; i < c->nvars; i++)
    if (c->vars[i].wrt) {
      char *g = print_short(c, c->grads[i], HEADER_FORMULA_MAX);
      buf_printf(e->o, " *   %s%s/d%s = %s\n", e->matrix_out ? "G'*d" : "d", c->outname,
                 c->vars[i].name, g ? g : "?");
    }
  buf_printf(e->o, " *\n * Matrices are row-major %ss; a scalar is passed as a pointer to one %s.\n",
             e->real, e->real);
  if (e->matrix_out)
    buf_printf(e->o, " * %s writes the output into out and returns 0, or -1 on error (a singular\n"
                     " * matrix). %s_vjp ADDS seed'*J, the vector-Jacobian product, into each\n"
                     " * gradient buffer; a NULL buffer skips that gradient and the work only it needs.\n */\n",
               P, P);
  else
    buf_printf(e->o, " * %s returns the value, NaN on error (a singular matrix). %s_grad returns\n"
                     " * the value and ADDS each gradient into its buffer; a NULL buffer skips that\n"
                     " * gradient and the work only it needs.\n */\n", P, P);
  // The JIT has no C library: libm's functions are declared here, and
  // jit.c hands libtcc their addresses.
  if (e->opts->jit)
    buf_puts(e->o, optab_libm_prototypes);
  else if (e->opts->standalone && !e->opts->flt)
    buf_printf(e->o, "#include <math.h>\n#include <stdlib.h>\n\n"
                    "/* The runtime's kernels, as plain loops (matdiff's runtime/standalone.c). */\n"
                    "%s\n", md_rt_standalone);
  else if (e->opts->standalone)
    standalone_float(e);
  else
    buf_puts(e->o, "#include <math.h>\n#include \"matdiff_rt.h\"\n\n");
}

// P_workspace_size: the workspace holds the temporaries of the larger of
// the two bodies, VALUE and GRADS doubles (as C).
void abi_workspace_size(Emit *e, const char *value, const char *grads) {
  Ctx *c = e->c;
  buf_printf(e->o, "long %s_workspace_size(", e->opts->name);
  for (int i = 0; i < c->ndims; i++)
    buf_printf(e->o, "%slong %s", i ? ", " : "", e->dname[i]);
  if (!c->ndims)
    buf_puts(e->o, "void");
  buf_printf(e->o, ") {\n");
  for (int i = 0; i < c->ndims; i++)
    buf_printf(e->o, "  (void)%s;\n", e->dname[i]);
  buf_printf(e->o, "  long v = %s, g = %s;\n  return (long)sizeof(%s) * (v > g ? v : g);\n}\n\n",
             value ? value : "0", grads ? grads : "0", e->real);
}
