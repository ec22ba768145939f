/*
 * emit_second.c - the second-order functions of `matdiff compile --second`
 * and of the JIT's md_jvp, md_hvp, md_hessian and md_jacobian, from the
 * formulas second.c derives, through the same plan (plan.c) and printer
 * (emit_c.c) as the value and the gradients:
 *
 *   P_jvp       the output's tangent along a direction per wrt variable;
 *   P_hvp       for a scalar output, each gradient's tangent along them,
 *               H*v block row by block row, ADDED like P_grad (NULL skips);
 *   P_hessian   for a scalar output, the full Hessian over the wrt
 *               variables stacked in declaration order (row-major vec
 *               layout), ADDED into H: the printed matrix formula when
 *               there is one wrt variable, a scalar or vector, and
 *               second.c finds one; else row by row, one HVP per unit
 *               direction (H is symmetric: H*e_k is row k);
 *   P_jacobian  for a non-scalar output, d vec(out)/d(wrt stacked), ADDED
 *               into J: the matrix formula for one vector-like wrt
 *               variable and a vector output, else column by column, one
 *               JVP per unit direction.
 *
 * Each body takes its sizes, inputs, directions and buffers as arrays (the
 * JIT calls them so, and a Hessian's rows call the HVP so); the public
 * wrappers pass their parameters in arrays, and each has a _ws form and a
 * _workspace_size. The second-order bodies are planned after the chain
 * rewrites (chain.c): a diag(v) that is multiplied becomes a scaling, so
 * X'*diag(s)*X is one scaling pass and one gemm; and where the sizes
 * decide a chain's grouping, a body (P_jvp_body, ...) chooses among its
 * variants at run time (plan_variants), as P_forward does.
 */
#include "emit.h"

static bool vector_like(Shape s) { return shape_is_column(s) || shape_is_row(s); }

// The one wrt variable, or -1 if there are none or several.
static int only_wrt(const Ctx *c) {
  int v = -1;
  for (int i = 0; i < c->nvars; i++)
    if (c->vars[i].wrt) {
      if (v >= 0)
        return -1;
      v = i;
    }
  return v;
}

bool emit_second_formula(const Ctx *c, bool hessian) {
  int v = only_wrt(c);
  if (hessian)
    return v >= 0 && c->hess && c->hess[v * c->nvars + v];
  return v >= 0 && c->jacs && c->jacs[v];
}

static bool hessian_formula(const Ctx *c) { return emit_second_formula(c, true); }
static bool jacobian_formula(const Ctx *c) { return emit_second_formula(c, false); }

// The bodies' plans and their variants (plan_variants), all made before
// the emitter names the nodes.
static bool planned(Ctx *c, PlanKind kind) {
  const Plan *const *v;
  return plan_second(c, kind) && plan_variants(c, kind, &v);
}

bool emit_second_prepare(Ctx *c) {
  if ((!c->jvp && !second_jvp(c)) || !planned(c, PLAN_JVP))
    return false;
  int v = only_wrt(c);
  if (shape_is_scalar(c->out->shape)) {
    if ((!c->hvps && !second_hvp(c)) || !planned(c, PLAN_HVP))
      return false;
    if (v >= 0 && vector_like(c->vars[v].shape) && !c->hess && !second_hessian(c))
      return false;
    return !hessian_formula(c) || planned(c, PLAN_HESSIAN);
  }
  if (v >= 0 && vector_like(c->vars[v].shape) && vector_like(c->out->shape) && !c->jacs &&
      !second_jacobian(c))
    return false;
  return !jacobian_formula(c) || planned(c, PLAN_JACOBIAN);
}

/* ---- C text --------------------------------------------------------------- */

#define say(e, ...) buf_printf((e)->o, __VA_ARGS__)

static const char *fmt(Emit *e, const char *f, const char *a, const char *b) {
  const char *s = arena_printf(&e->c->arena, f, a, b);
  if (!s)
    e->oom = true;
  return s ? s : "";
}

// The wrt variables' elements, stacked: N, and variable I's offset, as C.
static const char *stacked(Emit *e, int upto) {
  const char *s = "0";
  for (int i = 0; i < upto && i < e->c->nvars; i++)
    if (e->c->vars[i].wrt)
      s = !strcmp(s, "0") ? emit_len(e, e->c->vars[i].shape)
                          : fmt(e, "%s + %s", s, emit_len(e, e->c->vars[i].shape));
  return s;
}

static const char *total(Emit *e) { return stacked(e, e->c->nvars); }

/* ---- bodies ----------------------------------------------------------------- */

enum { HAS_DIRS = 1, HAS_HV = 2 };

// The opening of body NAME (P_NAME_body) up to its code: the arrays it
// takes, each element named as the formulas name it, every name cast to
// void (the code may not read them all). RESULT is its last parameter, or
// NULL where it takes the HVP array.
static void signature(Emit *e, const char *name, int has, const char *result) {
  const char *R = e->real;
  say(e, "%sconst char *%s_%s_body%s(const long *%s, const %s *const *%s",
      e->opts->jit ? "" : "static ", e->opts->name, name, e->variant, e->arr_d, R, e->arr_in);
  if (has & HAS_DIRS)
    say(e, ", const %s *const *%s", R, e->arr_dir);
  if (has & HAS_HV)
    say(e, ", %s *const *%s", R, e->arr_hv);
  if (result)
    say(e, ", %s *%s", R, result);
  say(e, ", void *ws_) {\n");
}

// The arguments after the sizes and inputs in a call of a body: the
// directions, the HVP array and RESULT, as HAS says.
static void call_args(Emit *e, int has, const char *result) {
  if (has & HAS_DIRS)
    say(e, ", %s", e->arr_dir);
  if (has & HAS_HV)
    say(e, ", %s", e->arr_hv);
  if (result)
    say(e, ", %s", result);
}

static void open_body(Emit *e, const char *name, int has, const char *result) {
  Ctx *c = e->c;
  const char *R = e->real;
  signature(e, name, has, result);
  say(e, "  %s *ws = ws_;\n  (void)ws;\n  (void)%s; (void)%s;\n", R, e->arr_d, e->arr_in);
  // A body may read none of them: a linear function's Hessian is zero,
  // and without wrt variables there are no directions.
  if (has & HAS_DIRS)
    say(e, "  (void)%s;\n", e->arr_dir);
  if (has & HAS_HV)
    say(e, "  (void)%s;\n", e->arr_hv);
  if (result)
    say(e, "  (void)%s;\n", result);
  for (int i = 0; i < c->ndims; i++)
    say(e, "  long %s = %s[%d];\n  (void)%s;\n", e->dname[i], e->arr_d, i, e->dname[i]);
  for (int i = 0; i < c->nvars; i++)
    say(e, "  const %s *%s = %s[%d];\n  (void)%s;\n", R, e->pname[i], e->arr_in, i, e->pname[i]);
  for (int i = 0; i < c->nvars; i++) {
    if (!c->vars[i].wrt)
      continue;
    if (has & HAS_DIRS)
      say(e, "  const %s *%s = %s[%d];\n  (void)%s;\n", R, e->dirp[i], e->arr_dir, i, e->dirp[i]);
    if (has & HAS_HV)
      say(e, "  %s *%s = %s[%d];\n", R, e->hvp[i], e->arr_hv, i);
  }
}

// Root R of body P written (or with ADD, added) into DST at DEPTH.
static void write_root(Emit *e, const Plan *p, Node *g, const char *dst, bool add, int depth) {
  if (add && (g->op == OP_ZEROS || ast_is_num(g, 0)))
    say(e, "%*s/* nothing to add */\n", 2 * depth, "");
  else if (shape_is_scalar(g->shape))
    say(e, "%*s%s[0] %s %s;\n", 2 * depth, "", dst, add ? "+=" : "=", emit_scalar(e, g));
  else if (!add && in_memory(p, g))
    say(e, "%*smdrt_copy%s(%s, %s, %s);\n", 2 * depth, "", e->kern, emit_len(e, g->shape),
        e->cname[g->id], dst);
  else
    emit_matrix(e, depth, dst, g, add);
}

// The JVP: the output's tangent written into tangent.
static void body_jvp(Emit *e) {
  const Plan *p = e->p;
  abi_name_temps(e);
  open_body(e, "jvp", HAS_DIRS, e->tangentp);
  emit_temps(e);
  emit_comment(e, 1, fmt(e, "d%s%s", e->c->outname, ""), p->roots[0]);
  write_root(e, p, p->roots[0], e->tangentp, false, 1);
  say(e, "  return 0;\n}\n\n");
}

// The HVP: each gradient's tangent added into its buffer; the guards of
// the shared work name the HVP buffers.
static void body_hvp(Emit *e) {
  Ctx *c = e->c;
  const Plan *p = e->p;
  const char **gname = e->gname;
  e->gname = e->hvp;
  abi_name_temps(e);
  open_body(e, "hvp", HAS_DIRS | HAS_HV, NULL);
  emit_temps(e);
  for (int r = 0; r < p->nroots; r++) {
    int i = p->rootvar[r];
    say(e, "  if (%s) {\n", e->hvp[i]);
    emit_comment(e, 2, fmt(e, "d(d%s/d%s)", c->outname, c->vars[i].name), p->roots[r]);
    write_root(e, p, p->roots[r], e->hvp[i], true, 2);
    say(e, "  }\n");
  }
  say(e, "  return 0;\n}\n\n");
  e->gname = gname;
}

// The Hessian or the Jacobian from its formula, added into DST.
static void body_formula(Emit *e, const char *name, const char *dst) {
  const Plan *p = e->p;
  abi_name_temps(e);
  open_body(e, name, 0, dst);
  emit_temps(e);
  emit_comment(e, 1, name, p->roots[0]);
  write_root(e, p, p->roots[0], dst, true, 1);
  say(e, "  return 0;\n}\n\n");
}

// Body NAME of KIND (its arrays HAS, its result RESULT), each of its
// variants (plan_variants) printed as P_NAME_body_v0 ..., and P_NAME_body
// the choice among them: the one whose count of operations is the least
// at the sizes it is called with runs (as abi_dispatch chooses).
static void body_variants(Emit *e, PlanKind kind, const char *name, int has, const char *result) {
  Ctx *c = e->c;
  const Plan *const *v;
  int n = plan_variants(c, kind, &v);
  const char *cost[MAX_VARIANTS];
  for (int i = 0; i < n; i++) {
    e->p = v[i];
    e->variant = n > 1 ? arena_printf(&c->arena, "_v%d", i) : "";
    if (!e->variant) {
      e->oom = true;
      e->variant = "";
    }
    if (kind == PLAN_JVP)
      body_jvp(e);
    else if (kind == PLAN_HVP)
      body_hvp(e);
    else
      body_formula(e, name, result);
    cost[i] = cost_plan_c(e, v[i]);
  }
  e->variant = "";
  if (n == 1)
    return;
  signature(e, name, has, result);
  for (int i = 0; i < c->ndims; i++)
    say(e, "  long %s = %s[%d];\n  (void)%s;\n", e->dname[i], e->arr_d, i, e->dname[i]);
  say(e, "  /* The product chains grouped for other sizes: the variant that does the\n"
         "     fewest operations at these sizes runs. */\n  double cost[%d];\n", n);
  for (int i = 0; i < n; i++)
    say(e, "  cost[%d] = %s;\n", i, cost[i]);
  say(e, "  int v = 0;\n  for (int i = 1; i < %d; i++)\n    if (cost[i] < cost[v])\n      v = i;\n"
         "  switch (v) {\n", n);
  for (int i = 0; i < n; i++) {
    say(e, i + 1 < n ? "  case %d:\n" : "  default:\n", i);
    say(e, "    return %s_%s_body_v%d(%s, %s", e->opts->name, name, i, e->arr_d, e->arr_in);
    call_args(e, has, result);
    say(e, ", ws_);\n");
  }
  say(e, "  }\n}\n\n");
}

// The workspace of body KIND, the largest of its variants', in doubles.
static void variants_workspace(Emit *e, PlanKind kind, const char **size, int *n) {
  const Plan *const *v;
  *n = plan_variants(e->c, kind, &v);
  for (int i = 0; i < *n; i++)
    size[i] = emit_workspace(e, v[i]);
}

// The Hessian (HESSIAN) or the Jacobian, filled by one HVP (JVP) per unit
// direction: a row of H (H is symmetric, so H*e_k is its row k), or a
// column of J through a tangent in the workspace. In the block of a
// symmetric(n) variable, whose perturbations are symmetric, the unit
// direction of element (r,c) is (E_rc + E_cr)/2: half at k, half at its
// mirror m (all of it on the diagonal, where m = k); elsewhere m = k.
static void body_fill(Emit *e, bool hessian) {
  Ctx *c = e->c;
  const char *R = e->real, *P = e->opts->name, *dst = hessian ? e->hessp : e->jacp;
  const char *N = abi_claim(e, "N_"), *M = abi_claim(e, "M_"), *d = abi_claim(e, "d_"),
             *t = abi_claim(e, "t_"), *k = abi_claim(e, "k_"), *dirs = abi_claim(e, "dirs_"),
             *hvs = abi_claim(e, "hvs_"), *why = abi_claim(e, "why_"), *m = abi_claim(e, "m_");
  open_body(e, hessian ? "hessian" : "jacobian", 0, dst);
  say(e, "  long %s = %s, %s = %s;\n  (void)%s;\n", N, total(e), M, emit_len(e, c->out->shape), M);
  say(e, "  %s *%s = ws, *%s = ws + %s;\n  (void)%s;\n", R, d, t, N, t);
  // No initializer: libtcc would call memset, which the JIT does not link.
  say(e, "  const %s *%s[%d];\n  %s *%s[%d];\n  (void)%s;\n", R, dirs, c->nvars + 1, R, hvs,
      c->nvars + 1, hvs);
  for (int i = 0; i <= c->nvars; i++) {
    if (i < c->nvars && c->vars[i].wrt)
      say(e, "  %s[%d] = %s + %s;\n", dirs, i, d, stacked(e, i));
    else
      say(e, "  %s[%d] = 0;\n", dirs, i);
    say(e, "  %s[%d] = 0;\n", hvs, i);
  }
  say(e, "  for (long %s = 0; %s < %s; %s++)\n    %s[%s] = 0;\n", k, k, N, k, d, k);
  say(e, "  for (long %s = 0; %s < %s; %s++) {\n    long %s = %s;\n", k, k, N, k, m, k);
  for (int i = 0; i < c->nvars; i++)
    if (c->vars[i].wrt && c->vars[i].symmetric) {
      const char *at = stacked(e, i), *len = emit_len(e, c->vars[i].shape),
                 *n = emit_len(e, (Shape){c->vars[i].shape.r, dim_lit(1)});
      say(e, "    if (%s >= %s && %s < %s + %s)\n      %s = %s + (%s - (%s)) %% %s * %s + (%s - (%s)) / %s;\n",
          k, at, k, at, len, m, at, k, at, n, n, k, at, n);
    }
  say(e, "    %s[%s] += 0.5;\n    %s[%s] += 0.5;\n", d, k, d, m);
  if (hessian) {
    for (int i = 0; i < c->nvars; i++)
      if (c->vars[i].wrt)
        say(e, "    %s[%d] = %s + %s*%s + %s;\n", hvs, i, dst, k, N, stacked(e, i));
    say(e, "    const char *%s = %s_hvp_body(%s, %s, %s, %s, ws + %s);\n", why, P, e->arr_d,
        e->arr_in, dirs, hvs, N);
  } else {
    say(e, "    const char *%s = %s_jvp_body(%s, %s, %s, %s, ws + %s + %s);\n", why, P, e->arr_d,
        e->arr_in, dirs, t, N, M);
  }
  say(e, "    %s[%s] = 0;\n    %s[%s] = 0;\n    if (%s)\n      return %s;\n", d, k, d, m, why, why);
  if (!hessian)
    say(e, "    for (long i = 0; i < %s; i++)\n      %s[i*%s + %s] += %s[i];\n", M, dst, N, k, t);
  say(e, "  }\n  return 0;\n}\n\n");
}

/* ---- sizes, wrappers, entries ------------------------------------------------ */

static void dims_params(Emit *e) {
  for (int i = 0; i < e->c->ndims; i++)
    say(e, "%slong %s", i ? ", " : "", e->dname[i]);
  if (!e->c->ndims)
    say(e, "void");
}

static void dims_args(Emit *e) {
  for (int i = 0; i < e->c->ndims; i++)
    say(e, "%s%s", i ? ", " : "", e->dname[i]);
}

// P_NAME_workspace_size: bytes, for the largest of the N sizes DOUBLES
// (one per variant of the body).
static void workspace_size(Emit *e, const char *name, const char *const *doubles, int n) {
  say(e, "long %s_%s_workspace_size(", e->opts->name, name);
  dims_params(e);
  say(e, ") {\n");
  for (int i = 0; i < e->c->ndims; i++)
    say(e, "  (void)%s;\n", e->dname[i]);
  say(e, "  long w = %s;\n", doubles[0]);
  for (int i = 1; i < n; i++)
    say(e, "  long w%d = %s;\n  if (w%d > w)\n    w = w%d;\n", i, doubles[i], i, i);
  say(e, "  return (long)sizeof(%s) * w;\n}\n\n", e->real);
}

// The same for the variants of body KIND.
static void kind_workspace_size(Emit *e, const char *name, PlanKind kind) {
  const char *size[MAX_VARIANTS];
  int n;
  variants_workspace(e, kind, size, &n);
  workspace_size(e, name, size, n);
}

// The size of a body that fills by another's: its own doubles, then the
// other's workspace.
static const char *fill_size(Emit *e, const char *own, const char *other) {
  Buf b = {0};
  buf_printf(&b, "%s + (%s_%s_workspace_size(", own, e->opts->name, other);
  Buf *o = e->o;
  e->o = &b;
  dims_args(e);
  e->o = o;
  buf_printf(&b, ") + (long)sizeof(%s) - 1)/(long)sizeof(%s)", e->real, e->real);
  const char *s = b.oom ? NULL : arena_strdup(&e->c->arena, b.s);
  buf_free(&b);
  if (!s)
    e->oom = true;
  return s ? s : "0";
}

// The public P_NAME_ws and P_NAME: the parameters in arrays for the body.
static void wrappers(Emit *e, const char *name, int has, const char *result) {
  Ctx *c = e->c;
  const char *R = e->real, *P = e->opts->name;
  for (int ws = 1; ws >= 0; ws--) {
    say(e, "int %s_%s%s(", P, name, ws ? "_ws" : "");
    bool first = true;
#define SEP() (first ? (void)(first = false) : (void)say(e, ", "))
    for (int i = 0; i < c->ndims; i++)
      SEP(), say(e, "long %s", e->dname[i]);
    for (int i = 0; i < c->nvars; i++)
      SEP(), say(e, "const %s *%s", R, e->pname[i]);
    for (int i = 0; (has & HAS_DIRS) && i < c->nvars; i++)
      if (c->vars[i].wrt)
        SEP(), say(e, "const %s *%s", R, e->dirp[i]);
    for (int i = 0; (has & HAS_HV) && i < c->nvars; i++)
      if (c->vars[i].wrt)
        SEP(), say(e, "%s *%s", R, e->hvp[i]);
    if (result)
      SEP(), say(e, "%s *%s", R, result);
    if (ws)
      SEP(), say(e, "void *ws_");
#undef SEP
    say(e, ") {\n");
    if (!ws) {
      say(e, "  void *ws_ = mdrt_alloc(%s_%s_workspace_size(", P, name);
      dims_args(e);
      say(e, "));\n  if (!ws_)\n    return -1;\n  int y = %s_%s_ws(", P, name);
      for (int i = 0; i < c->ndims; i++)
        say(e, "%s, ", e->dname[i]);
      for (int i = 0; i < c->nvars; i++)
        say(e, "%s, ", e->pname[i]);
      for (int i = 0; (has & HAS_DIRS) && i < c->nvars; i++)
        if (c->vars[i].wrt)
          say(e, "%s, ", e->dirp[i]);
      for (int i = 0; (has & HAS_HV) && i < c->nvars; i++)
        if (c->vars[i].wrt)
          say(e, "%s, ", e->hvp[i]);
      if (result)
        say(e, "%s, ", result);
      say(e, "ws_);\n  mdrt_free(ws_);\n  return y;\n}\n\n");
      continue;
    }
    say(e, "  const long %s[%d] = {", e->arr_d, c->ndims + 1);
    dims_args(e);
    say(e, "%s};\n  const %s *const %s[%d] = {", c->ndims ? "" : "0", R, e->arr_in, c->nvars + 1);
    for (int i = 0; i < c->nvars; i++)
      say(e, "%s%s", i ? ", " : "", e->pname[i]);
    say(e, "%s};\n", c->nvars ? "" : "0");
    const char *arrays[2] = {e->arr_dir, e->arr_hv};
    for (int a = 0; a < 2; a++) {
      if (!(has & (a ? HAS_HV : HAS_DIRS)))
        continue;
      say(e, "  %s%s *const %s[%d] = {", a ? "" : "const ", R, arrays[a], c->nvars + 1);
      for (int i = 0; i < c->nvars; i++)
        say(e, "%s%s", i ? ", " : "", c->vars[i].wrt ? (a ? e->hvp[i] : e->dirp[i]) : "0");
      say(e, "%s};\n", c->nvars ? "" : "0");
    }
    say(e, "  return %s_%s_body(%s, %s", P, name, e->arr_d, e->arr_in);
    call_args(e, has, result);
    say(e, ", ws_) ? -1 : 0;\n}\n\n");
  }
}

void emit_second_header(Emit *e) {
  Ctx *c = e->c;
  const char *P = e->opts->name;
  say(e, " *\n * Second order. The direction of each wrt variable x, of its shape, is dx\n"
         " * (the C names:");
  for (int i = 0; i < c->nvars; i++)
    if (c->vars[i].wrt)
      say(e, " %s", e->dirp[i]);
  say(e, "). Each function returns 0, or -1 on error; the _ws\n"
         " * forms take a workspace of P_..._workspace_size(sizes) bytes.\n"
         " *   %s_jvp(sizes, inputs, directions, tangent) writes the output's\n"
         " *     directional derivative (the Jacobian-vector product).\n", P);
  if (shape_is_scalar(c->out->shape))
    say(e, " *   %s_hvp(sizes, inputs, directions, hv buffers) ADDS H*v, block row by\n"
           " *     block row, into the buffer of each variable (hv_x); NULL skips one.\n"
           " *   %s_hessian(sizes, inputs, H) ADDS the full Hessian over the wrt\n"
           " *     variables stacked in declaration order, N x N in row-major vec\n"
           " *     layout (a k x m variable is km elements, row by row), into H:\n"
           " *     %s.\n", P, P,
        hessian_formula(c) ? "from its matrix formula" : "row by row, one HVP per unit direction");
  else
    say(e, " *   %s_jacobian(sizes, inputs, J) ADDS d vec(out)/d(wrt variables\n"
           " *     stacked in declaration order) into J, rows for the output's\n"
           " *     elements, row-major: %s.\n", P,
        jacobian_formula(c) ? "from its matrix formula" : "column by column, one JVP per unit direction");
}

bool emit_second(Emit *e) {
  Ctx *c = e->c;
  bool scalar_out = shape_is_scalar(c->out->shape);
  kind_workspace_size(e, "jvp", PLAN_JVP);
  body_variants(e, PLAN_JVP, "jvp", HAS_DIRS, e->tangentp);
  if (scalar_out) {
    kind_workspace_size(e, "hvp", PLAN_HVP);
    body_variants(e, PLAN_HVP, "hvp", HAS_DIRS | HAS_HV, NULL);
    if (hessian_formula(c)) {
      kind_workspace_size(e, "hessian", PLAN_HESSIAN);
      body_variants(e, PLAN_HESSIAN, "hessian", 0, e->hessp);
    } else {
      const char *size = fill_size(e, total(e), "hvp");
      workspace_size(e, "hessian", &size, 1);
      body_fill(e, true);
    }
  } else if (jacobian_formula(c)) {
    kind_workspace_size(e, "jacobian", PLAN_JACOBIAN);
    body_variants(e, PLAN_JACOBIAN, "jacobian", 0, e->jacp);
  } else {
    const char *size =
        fill_size(e, fmt(e, "%s + %s", total(e), emit_len(e, c->out->shape)), "jvp");
    workspace_size(e, "jacobian", &size, 1);
    body_fill(e, false);
  }
  if (e->opts->jit) {
    // The JIT's one entry for the sizes: what 0 jvp, 1 hvp, 2 hessian, 3 jacobian.
    const char *P = e->opts->name;
    say(e, "long %s_entry_ws2(const long *d, int what) {\n  (void)d;\n", P);
    const char *names[] = {"jvp", "hvp", "hessian", "jacobian"};
    for (int w = 0; w < 4; w++) {
      if ((w == 1 || w == 2) != scalar_out && w)
        continue;
      say(e, "  if (what == %d)\n    return %s_%s_workspace_size(", w, P, names[w]);
      for (int i = 0; i < c->ndims; i++)
        say(e, "%sd[%d]", i ? ", " : "", i);
      say(e, ");\n");
    }
    say(e, "  return -1;\n}\n\n");
  } else {
    wrappers(e, "jvp", HAS_DIRS, e->tangentp);
    if (scalar_out) {
      wrappers(e, "hvp", HAS_DIRS | HAS_HV, NULL);
      wrappers(e, "hessian", 0, e->hessp);
    } else {
      wrappers(e, "jacobian", 0, e->jacp);
    }
  }
  return !e->oom;
}
