/*
 * test_ops.c - every line of the op table (compiler/ops.h), through every
 * path, with no test written per op: a new line is tested by being there.
 *
 *   ops::each             each op but the leaves, alone in a one-op program
 *                         Y = op(A, B). The program is found by building
 *                         the op's node on candidate operand shapes and
 *                         printing it (the printer is the parser's inverse);
 *                         the first that reads back to the op is taken. The
 *                         inputs come from the op's domain columns (and are
 *                         made well conditioned for an op with OPF_INVERTS);
 *                         an elementwise function's operand is named after
 *                         its C function, and an unused input after the
 *                         float twin, as a user may name them. Then:
 *                         - md_check: the JIT's value and vjp against the
 *                           tape and central differences (diff.c's rule,
 *                           and ops.h's derivative column, which the tape
 *                           uses);
 *                         - compiled C, as `matdiff compile` writes it, in
 *                           double, --float, --standalone and --standalone
 *                           --float, built by cc with every warning an error
 *                           and run: against the JIT; single precision must
 *                           call the float twin;
 *                         - the NumPy module (`compile --lang numpy`,
 *                           emit_numpy), imported and run by python3
 *                           with NumPy (warnings are errors): against the
 *                           JIT, and it writes ops.h's numpy template;
 *                           its second order, f_jvp, f_hvp and f_hessian
 *                           or f_jacobian, against the JIT's (which
 *                           md_check2 holds to the tape);
 *                         - second order: the op's tangent rule three ways
 *                           (the symbolic JVP, printed and compiled again;
 *                           the tape's forward mode; central differences),
 *                           and its HVP the same way (the tape's forward-
 *                           over-reverse, differences of the gradient);
 *                           and the emitted second order, md_jvp, md_hvp
 *                           and md_hessian or md_jacobian, through
 *                           md_check2;
 *                         - LaTeX: the value printed as `diff --latex` does
 *                           names the op's LaTeX, and every gradient prints,
 *                           with its braces and \left...\right balanced.
 *   ops::table            the columns agree with one another
 *   ast::failure_reason   a NULL from ast_opk says whether the operands did
 *                         not fit or memory ran out
 *
 * The front half (the table, printing, emitting) is white-box (md.h); the
 * compiled function is used through matdiff.h. Seeds are fixed, so a
 * failure is the same on every run.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "md.h"
#include "util.h"

#define MATDIFF MD_BUILD_DIR "/matdiff"
#define TOL_C 1e-12     /* compiled C is the JIT's C, built by another compiler */
#define TOL_FLOAT 1e-4  /* single precision */
#define MAXV 3          /* inputs of a program: a one-op program has 2 at most */
#define MAXN 16         /* the most elements of an input or output */

static const char *const op_names[OP_COUNT] = {
#define OP(name, ...) [OP_##name] = #name,
#include "ops.h"
};

static double draw(md_rng *g, Domain d) {
  double u = md_rng_uniform(g);
  switch (d) {
  case DOM_POS: return 0.5 + 1.5 * u;
  case DOM_UNIT: return -0.9 + 1.8 * u;
  case DOM_AWAY: return (md_rng_uniform(g) < 0.5 ? -1 : 1) * (0.25 + 0.75 * u);
  default: return 2 * u - 1;
  }
}

/* ---- the one-op program ----------------------------------------------------- */

// An operand's shape by its sizes' names: n, m, k, or 1.
typedef struct Form {
  char r, c;
} Form;
static const Form M = {'n', 'm'}, S = {'n', 'n'}, V = {'n', '1'}, ONE = {'1', '1'};
static const Form K1 = {'n', 'k'}, K2 = {'k', 'm'};

static void declare(Buf *b, const char *name, Form f) {
  if (f.r == '1' && f.c == '1')
    buf_printf(b, "%s : scalar\n", name);
  else if (f.c == '1')
    buf_printf(b, "%s : vector(%c)\n", name, f.r);
  else
    buf_printf(b, "%s : matrix(%c, %c)\n", name, f.r, f.c);
}

typedef struct Prog {
  Op op;
  char src[512];
  const char *names[MAXV];
} Prog;

// The source declaring the operands (and, for an elementwise function, an
// unused input named after the float twin), then Y = EXPR.
static void source(Prog *p, Form a, Form b, const char *expr) {
  Buf s = {0};
  declare(&s, p->names[0], a);
  if (op_arity[p->op] == 2 || op_class[p->op] == SC_MAP)
    declare(&s, p->names[1], op_arity[p->op] == 2 ? b : ONE);
  buf_printf(&s, "Y = %s\n", expr);
  snprintf(p->src, sizeof p->src, "%s", s.s);
  buf_free(&s);
}

// The front half of P's source on C; false with ERR filled if it fails.
static bool front(Ctx *c, const Prog *p, md_error *err) {
  ctx_init(c, p->src, (long)strlen(p->src), "op.expr", err);
  return md_front(c);
}

// The printed node OP(A, B) with K on operands of shapes A and B, or NULL
// if they do not fit.
static char *printed(Prog *p, Form a, Form b, long k) {
  source(p, a, b, p->names[0]);
  md_error err;
  Ctx c;
  cr_assert(front(&c, p, &err), "%s: %s", op_names[p->op], err.diag);
  Node *n = ast_opk(&c, p->op, c.vars[0].node, op_arity[p->op] == 2 ? c.vars[1].node : NULL, k);
  char *s = n ? strdup(print_str(&c, n)) : NULL;
  ctx_free(&c);
  return s;
}

// The first candidate whose printed form reads back to the op itself.
static void find_program(Prog *p, Op op) {
  static const Form unary[][2] = {{M, ONE}, {S, ONE}, {V, ONE}, {ONE, ONE}};
  static const Form binary[][2] = {{M, M}, {K1, K2}, {M, ONE}, {ONE, ONE}};
  static const long ks[] = {0, 2, 1};
  p->op = op;
  p->names[0] = op_class[op] == SC_MAP ? op_cfunc[op] : "A";
  p->names[1] = op_class[op] == SC_MAP ? op_cfunc_f[op] : "B";
  const Form(*cands)[2] = op_arity[op] == 2 ? binary : unary;
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < ((op_flags[op] & OPF_AXIS) ? 3 : 1); j++) {
      char *e = printed(p, cands[i][0], cands[i][1], ks[j]);
      if (!e)
        continue;
      source(p, cands[i][0], cands[i][1], e);
      free(e);
      md_error err;
      Ctx c;
      bool ok = front(&c, p, &err) && c.out->op == op;
      ctx_free(&c);
      if (ok)
        return;
    }
  cr_assert_fail("%s: no one-op program: no operand shapes print to a form that reads back to it",
                 op_names[op]);
}

/* ---- one instance: sizes, inputs, seed, and the JIT's numbers ------------------ */

typedef struct Inst {
  md_function *f;
  bool scalar;       /* the output is a scalar: f_grad, not f_vjp */
  long dims[3];
  long len[MAXV], olen;
  double in[MAXV][MAXN], seed[MAXN];
  double value[MAXN], grads[MAXV][MAXN];  /* the JIT's */
} Inst;

static const double *const *inputs(const Inst *p) {
  static const double *v[MAXV];
  for (int i = 0; i < MAXV; i++)
    v[i] = p->in[i];
  return v;
}

static void inst_init(Inst *p, const Prog *prog) {
  const char *op = op_names[prog->op];
  md_error err;
  memset(p, 0, sizeof *p);
  p->f = md_compile(prog->src, "op.expr", &err);
  cr_assert_not_null(p->f, "%s: md_compile:\n%s\n%s", op, prog->src, err.diag);
  for (int d = 0; d < md_num_dims(p->f); d++)
    p->dims[d] = !strcmp(md_dim_name(p->f, d), "n") ? 3 : !strcmp(md_dim_name(p->f, d), "m") ? 2 : 4;
  md_rng g;
  md_rng_seed(&g, 1000 + (unsigned long long)prog->op);
  for (int i = 0; i < md_num_inputs(p->f); i++) {
    long r = md_input_rows(p->f, i, p->dims), cols = md_input_cols(p->f, i, p->dims);
    p->len[i] = r * cols;
    cr_assert_leq(p->len[i], MAXN);
    for (long e = 0; e < p->len[i]; e++)  // an op has two operands' domains; a third input any
      p->in[i][e] = draw(&g, i < 2 ? op_domain[prog->op][i] : DOM_ANY);
    // Well conditioned where the op factors its operand.
    for (long e = 0; (op_flags[prog->op] & OPF_INVERTS) && r == cols && e < r; e++)
      p->in[i][e * cols + e] += (double)r;
  }
  Ctx c;
  cr_assert(front(&c, prog, &err), "%s", err.diag);
  p->scalar = shape_is_scalar(c.out->shape);
  ctx_free(&c);
  p->olen = md_output_rows(p->f, p->dims) * md_output_cols(p->f, p->dims);
  cr_assert_leq(p->olen, MAXN);
  for (long e = 0; e < p->olen; e++)
    p->seed[e] = p->scalar ? 1 : 2 * md_rng_uniform(&g) - 1;
  double *g0[MAXV] = {p->grads[0], p->grads[1], p->grads[2]};
  cr_assert_eq(md_eval(p->f, p->dims, inputs(p), p->value, &err), 0, "%s: md_eval: %s", op,
               err.message);
  cr_assert_eq(md_vjp(p->f, p->dims, inputs(p), p->seed, NULL, g0, &err), 0, "%s: md_vjp: %s", op,
               err.message);
}

/* ---- the numbers: the JIT against the tape and central differences ----------- */

// md_check at the inputs drawn from the op's domains: the JIT's gradient
// against the tape (whose elementwise derivatives are ops.h's column) and
// against central differences (which check diff.c's rule).
static void check_numbers(const char *op, Inst *p) {
  md_error err;
  md_check_opts o = {.inputs = inputs(p), .seed = p->seed};
  md_check_result r;
  cr_assert_eq(md_check(p->f, p->dims, &o, &r, &err), 0, "%s: md_check: %s", op, err.message);
  cr_expect(r.value <= MD_CHECK_TOL_TAPE, "%s: the JIT's value is off the tape's by %.3g", op,
            r.value);
  for (int i = 0; i < md_num_inputs(p->f); i++) {
    const char *x = md_input_name(p->f, i);
    bool fd = r.fd[i] <= MD_CHECK_TOL_FD, tape = r.tape[i] <= MD_CHECK_TOL_TAPE;
    cr_expect(fd, "%s: the JIT's d/d%s is off central differences by %.3g (diff.c's rule?)", op, x,
              r.fd[i]);
    cr_expect(tape || !fd, "%s: the JIT's d/d%s agrees with central differences, the tape's is "
              "off by %.3g (ops.h's derivative column?)", op, x, r.tape[i]);
  }
  md_check_result_free(&r);
}

/* ---- second order: the tangent rules ----------------------------------------- */

// Directions for the second order, uniform in [-1, 1], the same on every
// run for an op.
static void draw_directions(const Prog *prog, const Inst *p, double v[MAXV][MAXN]) {
  md_rng g;
  md_rng_seed(&g, 2000 + (unsigned long long)prog->op);
  for (int i = 0; i < MAXV; i++)
    for (long e = 0; e < p->len[i]; e++)
      v[i][e] = 2 * md_rng_uniform(&g) - 1;
}

static const double *const *dirs_of(double v[MAXV][MAXN]) {
  static const double *d[MAXV];
  for (int i = 0; i < MAXV; i++)
    d[i] = v[i];
  return d;
}

// FORMULA, printed from P's function, compiled again and evaluated at P's
// inputs and the directions V: LEN numbers into OUT.
static void eval_formula(const char *op, const Prog *prog, Inst *p, const char *formula,
                         double v[MAXV][MAXN], double *out, long len) {
  char *src = formula_program(p->f, prog->src, formula);
  md_error err;
  md_function *h = md_compile(src, "formula.expr", &err);
  cr_assert_not_null(h, "%s: the formula does not compile again:\n%s\n%s", op, src, err.diag);
  const double *in[2 * MAXV + 2];
  long dims[3] = {0};
  formula_inputs(h, p->f, p->dims, inputs(p), dirs_of(v), p->seed, dims, in);
  cr_assert_eq(md_output_rows(h, dims) * md_output_cols(h, dims), len);
  cr_assert_eq(md_eval(h, dims, in, out, &err), 0, "%s: %s", op, err.message);
  md_free(h);
  free(src);
}

// P's inputs moved by T along V.
static void move(Inst *p, double v[MAXV][MAXN], double t) {
  for (int i = 0; i < MAXV; i++)
    for (long e = 0; e < p->len[i]; e++)
      p->in[i][e] += t * v[i][e];
}

// The op's tangent rule three ways: diff.c's (the symbolic JVP, printed and
// compiled again), the tape's forward mode, and central differences of
// md_eval along random directions. Then its HVP, the tangent rules over the
// reverse rules, three ways: the symbolic HVP of each input, the tape's
// forward-over-reverse, and central differences of md_vjp (seeded as in
// check_numbers).
static void check_second(const char *op, const Prog *prog, Inst *p) {
  double v[MAXV][MAXN] = {{0}}, sym[MAXN], tape[MAXN], fd[MAXN], fp[MAXN], fm[MAXN];
  draw_directions(prog, p, v);
  md_error err;
  const char *jvp = md_jvp_formula(p->f, &err);
  cr_assert_not_null(jvp, "%s: %s", op, err.message);
  eval_formula(op, prog, p, jvp, v, sym, p->olen);
  cr_assert_eq(md_tape_jvp(p->f, p->dims, inputs(p), dirs_of(v), NULL, tape, &err), 0, "%s: %s", op,
               err.message);
  const double t = 1e-5;
  move(p, v, t);
  cr_assert_eq(md_eval(p->f, p->dims, inputs(p), fp, &err), 0);
  move(p, v, -2 * t);
  cr_assert_eq(md_eval(p->f, p->dims, inputs(p), fm, &err), 0);
  move(p, v, t);
  for (long e = 0; e < p->olen; e++)
    fd[e] = (fp[e] - fm[e]) / (2 * t);
  double e1 = md_rel_err(sym, tape, p->olen), e2 = md_rel_err(sym, fd, p->olen);
  cr_expect(e1 <= MD_CHECK_TOL_TAPE, "%s: the JVP %s is off the tape's by %.3g (diff.c's tangent "
            "rule, or the tape's?)", op, jvp, e1);
  cr_expect(e2 <= MD_CHECK_TOL_FD, "%s: the JVP %s is off central differences by %.3g", op, jvp, e2);
  for (int i = 0; i < md_num_inputs(p->f); i++) {
    const char *x = md_input_name(p->f, i);
    const char *hvp = md_hvp_formula(p->f, i, &err);
    cr_assert_not_null(hvp, "%s: %s", op, err.message);
    eval_formula(op, prog, p, hvp, v, sym, p->len[i]);
    double *hv[MAXV] = {0}, *gp[MAXV] = {0}, *gm[MAXV] = {0};
    memset(tape, 0, sizeof tape);
    memset(fp, 0, sizeof fp);
    memset(fm, 0, sizeof fm);
    hv[i] = tape, gp[i] = fp, gm[i] = fm;
    cr_assert_eq(md_tape_hvp(p->f, p->dims, inputs(p), dirs_of(v), p->seed, NULL, NULL, hv, &err),
                 0, "%s: %s", op, err.message);
    move(p, v, t);
    cr_assert_eq(md_vjp(p->f, p->dims, inputs(p), p->seed, NULL, gp, &err), 0);
    move(p, v, -2 * t);
    cr_assert_eq(md_vjp(p->f, p->dims, inputs(p), p->seed, NULL, gm, &err), 0);
    move(p, v, t);
    for (long e = 0; e < p->len[i]; e++)
      fd[e] = (fp[e] - fm[e]) / (2 * t);
    e1 = md_rel_err(sym, tape, p->len[i]);
    e2 = md_rel_err(sym, fd, p->len[i]);
    cr_expect(e1 <= MD_CHECK_TOL_TAPE, "%s: the HVP d(d/d%s) = %s is off the tape's by %.3g", op, x,
              hvp, e1);
    cr_expect(e2 <= MD_CHECK_TOL_FD, "%s: the HVP d(d/d%s) = %s is off differences of the gradient "
              "by %.3g", op, x, hvp, e2);
  }
  // The emitted second order (md_jvp, md_hvp, md_hessian or md_jacobian)
  // against the tape and differences of the gradient, per input.
  md_check2_result r;
  cr_assert_eq(md_check2(p->f, p->dims, inputs(p), dirs_of(v), 1, &r, &err), 0, "%s: md_check2: %s",
               op, err.message);
  cr_expect(r.jvp <= MD_CHECK_TOL_TAPE, "%s: md_jvp is off the tape's by %.3g", op, r.jvp);
  for (int i = 0; i < md_num_inputs(p->f); i++)
    cr_expect(r.ok, "%s: the emitted second order of %s: HVP off the tape by %.3g, off differences "
              "by %.3g; Hessian rows by %.3g; Jacobian columns by %.3g", op, md_input_name(p->f, i),
              r.hvp_tape[i], r.hvp_fd[i], r.hessian[i], r.jacobian[i]);
  md_check2_result_free(&r);
}

/* ---- compiled C ------------------------------------------------------------- */

static const struct Variant {
  const char *prefix, *type;
  bool standalone, flt;
  double tol;
} variants[] = {
    {"c_double", "double", false, false, TOL_C},
    {"c_float", "float", false, true, TOL_FLOAT},
    {"sa_double", "double", true, false, TOL_C},
    {"sa_float", "float", true, true, TOL_FLOAT},
};
#define NVARIANTS (sizeof variants / sizeof *variants)

// The parameter list of a variant's function: sizes, inputs, then EXTRA.
static void params(Buf *b, const Inst *p, const char *T, const char *extra) {
  int nd = md_num_dims(p->f);
  for (int d = 0; d < nd; d++)
    buf_printf(b, "%slong n%d", d ? ", " : "", d);
  for (int i = 0; i < md_num_inputs(p->f); i++)
    buf_printf(b, "%sconst %s *x%d", nd || i ? ", " : "", T, i);
  if (extra)
    buf_printf(b, ", %s", extra);
}

static void args(Buf *b, const Inst *p, const char *extra) {
  int nd = md_num_dims(p->f);
  for (int d = 0; d < nd; d++)
    buf_printf(b, "%s%ldL", d ? ", " : "", p->dims[d]);
  for (int i = 0; i < md_num_inputs(p->f); i++)
    buf_printf(b, "%sa%d", nd || i ? ", " : "", i);
  if (extra)
    buf_printf(b, ", %s", extra);
}

static void c_array(Buf *b, const char *name, const double *v, long n) {
  buf_printf(b, "static const double %s[] = {", name);
  for (long e = 0; e < n; e++)
    buf_printf(b, "%s%.17g", e ? ", " : "", v[e]);
  buf_puts(b, "};\n");
}

static void show(Buf *b, const char *tag, const char *array, long n) {
  buf_printf(b, "  printf(\"%s\");\n  for (int e = 0; e < %ld; e++)\n"
                "    printf(\" %%.17g\", (double)%s[e]);\n  puts(\"\");\n", tag, n, array);
}

// A main() that calls each variant's value and gradient (f_grad for a
// scalar output, f_vjp with the seed otherwise) and prints the numbers on
// lines tagged "PREFIX value", "PREFIX grad0", ...
static char *driver(const Inst *p) {
  int n = md_num_inputs(p->f);
  bool scalar = p->scalar;
  Buf b = {0};
  buf_puts(&b, "#include <stdio.h>\n\n");
  for (size_t v = 0; v < NVARIANTS; v++) {
    const char *P = variants[v].prefix, *T = variants[v].type;
    char out[32];
    snprintf(out, sizeof out, "%s *out", T);
    buf_printf(&b, "%s %s(", scalar ? T : "int", P);
    params(&b, p, T, scalar ? NULL : out);
    buf_printf(&b, ");\n%s %s_%s(", scalar ? T : "int", P, scalar ? "grad" : "vjp");
    Buf g = {0};
    if (!scalar)
      buf_printf(&g, "const %s *seed", T);
    for (int i = 0; i < n; i++)
      buf_printf(&g, "%s%s *g%d", g.len ? ", " : "", T, i);
    params(&b, p, T, g.s);
    buf_free(&g);
    buf_puts(&b, ");\n");
  }
  for (int i = 0; i < n; i++) {
    char name[16];
    snprintf(name, sizeof name, "in%d", i);
    c_array(&b, name, p->in[i], p->len[i]);
  }
  c_array(&b, "seed", p->seed, p->olen);
  buf_puts(&b, "\n");
  for (size_t v = 0; v < NVARIANTS; v++) {
    const char *P = variants[v].prefix, *T = variants[v].type;
    buf_printf(&b, "static void run_%s(void) {\n  static %s out[%ld], sd[%ld];\n", P, T, p->olen,
               p->olen);
    for (int i = 0; i < n; i++)
      buf_printf(&b, "  static %s a%d[%ld], g%d[%ld];\n  for (int e = 0; e < %ld; e++)\n"
                     "    a%d[e] = (%s)in%d[e];\n", T, i, p->len[i], i, p->len[i], p->len[i], i, T, i);
    buf_printf(&b, "  for (int e = 0; e < %ld; e++)\n    sd[e] = (%s)seed[e];\n  (void)sd;\n", p->olen, T);
    Buf g = {0};
    if (!scalar)
      buf_puts(&g, "sd");
    for (int i = 0; i < n; i++)
      buf_printf(&g, "%sg%d", g.len ? ", " : "", i);
    if (scalar) {
      buf_printf(&b, "  out[0] = %s(", P);
      args(&b, p, NULL);
      buf_printf(&b, ");\n  %s_grad(", P);
    } else {
      buf_printf(&b, "  if (%s(", P);
      args(&b, p, "out");
      buf_printf(&b, "))\n    puts(\"%s failed\");\n  if (%s_vjp(", P, P);
    }
    args(&b, p, g.s);
    buf_free(&g);
    buf_printf(&b, scalar ? ");\n" : "))\n    puts(\"%s_vjp failed\");\n", P);
    char tag[64];
    snprintf(tag, sizeof tag, "%s value", P);
    show(&b, tag, "out", p->olen);
    for (int i = 0; i < n; i++) {
      char array[16];
      snprintf(tag, sizeof tag, "%s grad%d", P, i);
      snprintf(array, sizeof array, "g%d", i);
      show(&b, tag, array, p->len[i]);
    }
    buf_puts(&b, "}\n\n");
  }
  buf_puts(&b, "int main(void) {\n");
  for (size_t v = 0; v < NVARIANTS; v++)
    buf_printf(&b, "  run_%s();\n", variants[v].prefix);
  buf_puts(&b, "  return 0;\n}\n");
  return b.s;
}

static bool is_ident(char ch) {
  return ch == '_' || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

// Does C code CODE call FN, outside its comments (which quote the source)?
static bool calls(const char *code, const char *fn) {
  size_t n = strlen(fn);
  for (const char *q = code; *q; q++) {
    if (q[0] == '/' && q[1] == '*') {
      const char *end = strstr(q + 2, "*/");
      if (!end)
        break;
      q = end + 1;
    } else if (q[0] == '/' && q[1] == '/') {
      q += strcspn(q, "\n");
      if (!*q)
        break;
    } else if (!strncmp(q, fn, n) && q[n] == '(' && (q == code || !is_ident(q[-1]))) {
      return true;
    }
  }
  return false;
}

// Each variant's C as `matdiff compile` writes it (its front half and
// emit_c), built with the driver in a directory of its own and run.
static void check_compiled(const char *op, const Prog *prog, const Inst *p) {
  tmpdir_setup("test_ops");
  for (size_t v = 0; v < NVARIANTS; v++) {
    md_error err;
    Ctx c;
    cr_assert(front(&c, prog, &err), "%s", err.diag);
    Buf code = {0};
    EmitOpts o = {.name = variants[v].prefix, .standalone = variants[v].standalone,
                  .flt = variants[v].flt};
    cr_assert(emit_c(&c, &o, &code), "%s: emit_c", op);
    // Single precision calls the float twin, which the numbers cannot tell.
    // Only matdiff's code counts: --standalone --float reads the kernels
    // ahead of it in double spelling, made float by the preprocessor.
    if (op_class[prog->op] == SC_MAP) {
      const char *want = o.flt ? op_cfunc_f[prog->op] : op_cfunc[prog->op];
      const char *shun = o.flt ? op_cfunc[prog->op] : op_cfunc_f[prog->op];
      const char *ours = strstr(code.s, "_workspace_size(");
      // Or the runtime's kernel of it on blocks (mdrt_vtanh, mdrt_vtanh_f).
      const char *dbl = op_cfunc[prog->op];
      dbl += strncmp(dbl, "mdrt_", 5) ? 0 : 5;
      char vwant[64], vshun[64];
      snprintf(vwant, sizeof vwant, "mdrt_v%s%s", dbl, o.flt ? "_f" : "");
      snprintf(vshun, sizeof vshun, "mdrt_v%s%s", dbl, o.flt ? "" : "_f");
      cr_expect(ours && (calls(ours, want) || calls(ours, vwant)) && !calls(ours, shun) &&
                    !calls(ours, vshun),
                "%s: %s calls %s, not %s", op, variants[v].prefix, shun, want);
    }
    char name[32];
    snprintf(name, sizeof name, "%s.c", variants[v].prefix);
    tmpdir_text(name, code.s);
    buf_free(&code);
    ctx_free(&c);
  }
  char *drv = driver(p);
  tmpdir_text("driver.c", drv);
  free(drv);
  char cmd[1024];
  snprintf(cmd, sizeof cmd,
           "cd %s && cc -std=c99 -Wall -Wextra -Werror -pedantic $(%s config --cflags) *.c "
           "$(%s config --libs) -o prog > cc.log 2>&1 && ./prog > out.txt 2>&1",
           tmpdir(), MATDIFF, MATDIFF);
  int rc = run(cmd);
  char *log = slurp(tmpdir_path("cc.log")), *out = slurp(tmpdir_path("out.txt"));
  cr_expect_eq(rc, 0, "%s: the compiled C does not build warning-free, or fails:\n%s%s\n%s", op,
               log ? log : "", out ? out : "", prog->src);
  cr_expect(!log || !*log, "%s: cc printed:\n%s", op, log);
  for (size_t v = 0; rc == 0 && v < NVARIANTS; v++) {
    const char *P = variants[v].prefix;
    char tag[64];
    double got[MAXN];
    snprintf(tag, sizeof tag, "%s value", P);
    cr_assert(numbers(out, tag, got, p->olen), "%s: no '%s' in\n%s", op, tag, out);
    double e = md_rel_err(got, p->value, p->olen);
    cr_expect(e <= variants[v].tol, "%s: %s is off the JIT's by %.3g", op, tag, e);
    for (int i = 0; i < md_num_inputs(p->f); i++) {
      snprintf(tag, sizeof tag, "%s grad%d", P, i);
      cr_assert(numbers(out, tag, got, p->len[i]), "%s: no '%s' in\n%s", op, tag, out);
      e = md_rel_err(got, p->grads[i], p->len[i]);
      cr_expect(e <= variants[v].tol, "%s: %s (d/d%s) is off the JIT's by %.3g", op, tag,
                md_input_name(p->f, i), e);
    }
  }
  free(log);
  free(out);
  tmpdir_remove();
}

/* ---- NumPy -------------------------------------------------------------------- */

// The Python with NumPy that runs the exported module: $PYTHON, else
// Debian's, as the Makefile's PYTHON.
static const char *python(void) {
  const char *p = getenv("PYTHON");
  return p && *p ? p : "/usr/bin/python3";
}

static void py_array(Buf *b, const double *v, long r, long c) {
  buf_puts(b, "np.array([");
  for (long e = 0; e < r * c; e++)
    buf_printf(b, "%s%.17g", e ? ", " : "", v[e]);
  buf_printf(b, "]).reshape(%ld, %ld)", r, c);
}

// The longest text of template T between its $ parameters, into BUF.
static const char *longest_piece(const char *t, char *buf, size_t n) {
  buf[0] = '\0';
  for (const char *q = t; *q;) {
    size_t len = strcspn(q, "$");
    if (len > strlen(buf) && len < n)
      snprintf(buf, n, "%.*s", (int)len, q);
    q += len;
    q += *q ? 2 : 0;
  }
  return buf;
}

// The second order of the module against the JIT's, on the lines the
// driver printed (OUT), along the directions V: the JVP, and the HVP of
// each input and the Hessian (a scalar output) or the Jacobian.
static void check_numpy_second(const char *op, const Inst *p, const char *out,
                               double v[MAXV][MAXN]) {
  md_error err;
  int n = md_num_inputs(p->f);
  long N = md_wrt_size(p->f, p->dims), len = p->scalar ? N * N : p->olen * N;
  double *got = calloc((size_t)len + MAXN, sizeof *got);
  double *want = calloc((size_t)len + MAXN, sizeof *want);
  cr_assert(got && want);
  cr_assert_eq(md_jvp(p->f, p->dims, inputs(p), dirs_of(v), want, &err), 0, "%s: %s", op,
               err.message);
  cr_assert(numbers(out, "jvp", got, p->olen), "%s: no 'jvp' in\n%s", op, out);
  double e = md_rel_err(got, want, p->olen);
  cr_expect(e <= TOL_C, "%s: NumPy's f_jvp is off the JIT's by %.3g", op, e);
  double hv[MAXV][MAXN] = {{0}}, *bufs[MAXV] = {hv[0], hv[1], hv[2]};
  if (p->scalar)
    cr_assert_eq(md_hvp(p->f, p->dims, inputs(p), dirs_of(v), bufs, &err), 0, "%s: %s", op,
                 err.message);
  for (int i = 0; p->scalar && i < n; i++) {
    if (!md_input_is_wrt(p->f, i))
      continue;
    char tag[16];
    snprintf(tag, sizeof tag, "hvp%d", i);
    cr_assert(numbers(out, tag, got, p->len[i]), "%s: no '%s' in\n%s", op, tag, out);
    e = md_rel_err(got, hv[i], p->len[i]);
    cr_expect(e <= TOL_C, "%s: NumPy's f_hvp of %s is off the JIT's by %.3g", op,
              md_input_name(p->f, i), e);
  }
  const char *what = p->scalar ? "hessian" : "jacobian";
  memset(want, 0, sizeof *want * (size_t)len);  // they add into it
  cr_assert_eq((p->scalar ? md_hessian : md_jacobian)(p->f, p->dims, inputs(p), want, &err), 0,
               "%s: %s", op, err.message);
  cr_assert(numbers(out, what, got, len), "%s: no '%s' in\n%s", op, what, out);
  e = md_rel_err(got, want, len);
  cr_expect(e <= TOL_C, "%s: NumPy's f_%s is off the JIT's by %.3g", op, what, e);
  free(got);
  free(want);
}

// The module `matdiff compile --lang numpy` writes (emit_numpy), imported
// by a driver that calls f and f_grad (f_vjp with the seed for a matrix
// output) at the instance's inputs, against the JIT's numbers; then, with
// SECOND, its second order along the directions check_second takes.
static void check_numpy(const char *op, const Prog *prog, const Inst *p, bool second) {
  tmpdir_setup("test_ops_numpy");
  md_error err;
  Ctx c;
  cr_assert(front(&c, prog, &err), "%s", err.diag);
  Buf code = {0};
  cr_assert(emit_numpy(&c, "f", true, &code), "%s: emit_numpy: %s", op, err.message);
  char piece[64];
  cr_expect(strstr(code.s, longest_piece(op_numpy[prog->op], piece, sizeof piece)),
            "%s: the module does not write ops.h's NumPy, %s:\n%s", op, op_numpy[prog->op], code.s);
  tmpdir_text("f.py", code.s);
  buf_free(&code);
  ctx_free(&c);
  int n = md_num_inputs(p->f);
  Buf d = {0};
  buf_puts(&d, "import sys\nsys.path.insert(0, '.')\nimport numpy as np\nimport f as m\n\n"
               "def show(tag, v):\n    print(tag, ' '.join('%.17g' % x for x in np.ravel(v)))\n\n");
  for (int i = 0; i < n; i++) {
    buf_printf(&d, "a%d = ", i);
    py_array(&d, p->in[i], md_input_rows(p->f, i, p->dims), md_input_cols(p->f, i, p->dims));
    buf_puts(&d, "\n");
  }
  buf_puts(&d, "args = (");
  for (int i = 0; i < n; i++)
    buf_printf(&d, "a%d, ", i);
  buf_puts(&d, ")\nshow('value', m.f(*args))\n");
  if (p->scalar) {
    buf_puts(&d, "y, g = m.f_grad(*args)\n");
  } else {
    buf_puts(&d, "y, g = m.f_vjp(");
    py_array(&d, p->seed, md_output_rows(p->f, p->dims), md_output_cols(p->f, p->dims));
    buf_puts(&d, ", *args)\n");
  }
  buf_puts(&d, "show('grad_value', y)\n");
  for (int i = 0; i < n; i++)
    buf_printf(&d, "show('grad%d', g['%s'])\n", i, md_input_name(p->f, i));
  double v[MAXV][MAXN] = {{0}};
  draw_directions(prog, p, v);
  if (second) {
    buf_puts(&d, "dirs = (");
    for (int i = 0; i < n; i++)
      if (md_input_is_wrt(p->f, i)) {
        py_array(&d, v[i], md_input_rows(p->f, i, p->dims), md_input_cols(p->f, i, p->dims));
        buf_puts(&d, ", ");
      }
    buf_puts(&d, ")\nshow('jvp', m.f_jvp(*args, *dirs))\n");
  }
  if (second && p->scalar) {
    buf_puts(&d, "hv = m.f_hvp(*args, *dirs)\n");
    for (int i = 0; i < n; i++)
      if (md_input_is_wrt(p->f, i))
        buf_printf(&d, "show('hvp%d', hv['%s'])\n", i, md_input_name(p->f, i));
    buf_puts(&d, "show('hessian', m.f_hessian(*args))\n");
  } else if (second) {
    buf_puts(&d, "show('jacobian', m.f_jacobian(*args))\n");
  }
  tmpdir_text("driver.py", d.s);
  buf_free(&d);
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "cd %s && %s -W error driver.py > out.txt 2>&1", tmpdir(), python());
  int rc = run(cmd);
  char *out = slurp(tmpdir_path("out.txt"));
  cr_expect_eq(rc, 0, "%s: the NumPy module fails:\n%s\n%s", op, out ? out : "", prog->src);
  double got[MAXN];
  const char *tags[] = {"value", "grad_value"};
  for (int t = 0; rc == 0 && t < 2; t++) {
    cr_assert(numbers(out, tags[t], got, p->olen), "%s: no '%s' in\n%s", op, tags[t], out);
    double e = md_rel_err(got, p->value, p->olen);
    cr_expect(e <= TOL_C, "%s: NumPy's %s is off the JIT's by %.3g", op, tags[t], e);
  }
  for (int i = 0; rc == 0 && i < n; i++) {
    char tag[16];
    snprintf(tag, sizeof tag, "grad%d", i);
    cr_assert(numbers(out, tag, got, p->len[i]), "%s: no '%s' in\n%s", op, tag, out);
    double e = md_rel_err(got, p->grads[i], p->len[i]);
    cr_expect(e <= TOL_C, "%s: NumPy's d/d%s is off the JIT's by %.3g", op, md_input_name(p->f, i), e);
  }
  if (rc == 0 && second)
    check_numpy_second(op, p, out, v);
  free(out);
  tmpdir_remove();
}

/* ---- LaTeX -------------------------------------------------------------------- */

// Braces and \left...\right pairs match.
static bool balanced(const char *s) {
  int braces = 0, lr = 0;
  for (const char *q = s; *q; q++) {
    if (*q == '\\' && (q[1] == '{' || q[1] == '}')) {
      q++;
      continue;
    }
    braces += *q == '{' ? 1 : *q == '}' ? -1 : 0;
    lr += !strncmp(q, "\\left", 5) ? 1 : !strncmp(q, "\\right", 6) ? -1 : 0;
    if (braces < 0 || lr < 0)
      return false;
  }
  return braces == 0 && lr == 0;
}

static void check_latex(const char *op, Op o, Ctx *c) {
  Buf b = {0};
  print_latex(c, &b, c->out);
  char want[128];
  if (op_latex[o])
    snprintf(want, sizeof want, "%s", op_latex[o]);
  else
    snprintf(want, sizeof want, "\\operatorname{%s}", op_spelling[o]);
  cr_expect(b.s && strstr(b.s, want), "%s: its LaTeX, '%s', lacks '%s'", op, b.s ? b.s : "", want);
  cr_expect(b.s && balanced(b.s), "%s: unbalanced LaTeX '%s'", op, b.s ? b.s : "");
  buf_free(&b);
  for (int i = 0; i < c->nvars; i++) {
    Buf g = {0};
    print_latex(c, &g, c->grads[i]);
    cr_expect(g.len > 0 && balanced(g.s), "%s: the LaTeX of d/d%s is '%s'", op, c->vars[i].name,
              g.s ? g.s : "");
    buf_free(&g);
  }
}

/* ---- the test ------------------------------------------------------------------ */

// Every op a program can use: all but the leaves, which every program has
// (numbers, inputs, sizes) or which the simplifier folds (zeros, ones, eye).
ParameterizedTestParameters(ops, each) {
  static int ops[OP_COUNT];
  size_t n = 0;
  for (int op = 0; op < OP_COUNT; op++)
    if (!op_is_leaf((Op)op))
      ops[n++] = op;
  return cr_make_param_array(int, ops, n);
}

ParameterizedTest(int *o, ops, each, .timeout = 60) {
  Op op = (Op)*o;
  const char *name = op_names[op];
  Prog prog;
  find_program(&prog, op);
  cr_log_info("%s:\n%s", name, prog.src);
  Inst p;
  inst_init(&p, &prog);
  check_numbers(name, &p);
  check_second(name, &prog, &p);
  check_compiled(name, &prog, &p);
  check_numpy(name, &prog, &p, true);
  md_error err;
  Ctx c;
  cr_assert(front(&c, &prog, &err), "%s", err.diag);
  check_latex(name, op, &c);
  ctx_free(&c);
  md_free(p.f);
}

/* ---- the norm at 0: the subgradient 0 ------------------------------------------ */

// Programs whose norm's argument is 0 at the inputs ZERO sets: their value
// is 0 and, matdiff taking the subgradient 0 there (docs/LANGUAGE.md), so
// is every gradient, which is the hand derivation the JIT, the tape,
// compiled C in double, float and --standalone, and NumPy are held to. At
// random inputs, where the norm is smooth, the first and second order go
// through the same checks as each op's.
typedef struct NormCase {
  char name[16];
  char src[160];
} NormCase;

ParameterizedTestParameters(ops, norm_at_zero) {
  static NormCase cases[] = {
      {"vector", "x : vector(n)\ny = ||x||\n"},
      {"frobenius", "A : matrix(n, m)\ny = ||A||_F\n"},
      {"norm2", "x : vector(n)\ny = norm2(x)\n"},
      {"scalar", "s : scalar\ny = ||s||\n"},
      {"residual", "A : matrix(n, m)\nx : vector(m)\nb : vector(n)\ny = ||A*x - b||\n"},
      {"scaled", "x : vector(n)\nc : scalar\ny = c*||x|| + sum(x)\n"},
  };
  return cr_make_param_array(NormCase, cases, sizeof cases / sizeof cases[0]);
}

// The inputs at which the norm's argument is 0: all zeros, but for the
// residual, where b = A*x, of small whole numbers so that every way of
// summing A*x gives b exactly; and for "scaled", c = 3, where the gradient
// d/dx is the ones of sum(x).
static void zero(Inst *p, const char *name) {
  for (int i = 0; i < md_num_inputs(p->f); i++)
    memset(p->in[i], 0, sizeof p->in[i]);
  long n = p->dims[0], m = p->dims[1];
  for (long r = 0; !strcmp(name, "residual") && r < n; r++)
    for (long k = 0; k < m; k++) {
      p->in[0][r * m + k] = (double)((r + 2 * k) % 3) - 1;
      p->in[1][k] = (double)k + 1;
      p->in[2][r] += p->in[0][r * m + k] * p->in[1][k];
    }
  if (!strcmp(name, "scaled"))
    p->in[1][0] = 3;
  md_error err;
  double *g[MAXV] = {p->grads[0], p->grads[1], p->grads[2]};
  memset(p->grads, 0, sizeof p->grads);  // md_vjp adds into them
  cr_assert_eq(md_eval(p->f, p->dims, inputs(p), p->value, &err), 0, "%s", err.message);
  cr_assert_eq(md_vjp(p->f, p->dims, inputs(p), p->seed, NULL, g, &err), 0, "%s", err.message);
}

ParameterizedTest(NormCase *nc, ops, norm_at_zero, .timeout = 60) {
  Prog prog = {.op = OP_NORM};
  snprintf(prog.src, sizeof prog.src, "%s", nc->src);
  Inst p;
  inst_init(&p, &prog);
  check_numbers(nc->name, &p);        // smooth here: the JIT, the tape, differences
  check_second(nc->name, &prog, &p);  // and the second order, --order 2's code too
  check_numpy(nc->name, &prog, &p, true);
  zero(&p, nc->name);
  double tape[MAXV][MAXN] = {{0}}, *tg[MAXV] = {tape[0], tape[1], tape[2]};
  md_error err;
  cr_assert_eq(md_tape_vjp(p.f, p.dims, inputs(&p), p.seed, NULL, tg, &err), 0, "%s", err.message);
  cr_expect_eq(p.value[0], 0, "%s: the value at 0 is %g", nc->name, p.value[0]);
  for (int i = 0; i < md_num_inputs(p.f); i++)
    for (long e = 0; e < p.len[i]; e++) {
      double want = !strcmp(nc->name, "scaled") && i == 0 ? 1 : 0;
      cr_expect_eq(p.grads[i][e], want, "%s: the JIT's d/d%s[%ld] at 0 is %g, not %g", nc->name,
                   md_input_name(p.f, i), e, p.grads[i][e], want);
      cr_expect_eq(tape[i][e], want, "%s: the tape's d/d%s[%ld] at 0 is %g, not %g", nc->name,
                   md_input_name(p.f, i), e, tape[i][e], want);
    }
  check_compiled(nc->name, &prog, &p);  // against the JIT's numbers: 0, not NaN
  // The norm's tangent is <x, dx>/||x||, NaN at 0, in the JIT as in NumPy
  // (whose warning the driver makes an error): the first order only.
  check_numpy(nc->name, &prog, &p, false);
  md_free(p.f);
}

// The columns that must agree do.
Test(ops, table) {
  for (int i = 0; i < OP_COUNT; i++) {
    Op op = (Op)i;
    const char *name = op_names[op];
    cr_expect_eq(op_is_leaf(op), op_arity[op] == 0, "%s: a leaf has no operands", name);
    cr_expect_eq(op_is_leaf(op), op_class[op] == SC_LEAF, "%s: a leaf is of class LEAF", name);
    cr_expect(!op_is_fill(op) || op_is_leaf(op), "%s: a fill is a leaf", name);
    bool map = op_class[op] == SC_MAP;
    cr_expect_eq(map, op_cfunc[op] != NULL, "%s: a C function iff elementwise", name);
    cr_expect_eq(map, op_cfunc_f[op] != NULL, "%s: a float twin iff elementwise", name);
    if (map) {
      bool kernel = !strncmp(op_cfunc[op], "mdrt_", 5);
      cr_expect_eq(kernel, (op_flags[op] & OPF_KERNEL) != 0, "%s: OPF_KERNEL", name);
      cr_expect(kernel || optab_is_libm(op_cfunc[op], strlen(op_cfunc[op]), false),
                "%s: %s is a libm function of the table", name, op_cfunc[op]);
      cr_expect(kernel || optab_is_libm(op_cfunc_f[op], strlen(op_cfunc_f[op]), true),
                "%s: %s is a float twin of the table", name, op_cfunc_f[op]);
      cr_expect_eq(op_arity[op], 1);
      cr_expect_eq(op_prec[op], PREC_ATOM);
    }
  }
}

/* ---- ast_opk's failures ----------------------------------------------------- */

Test(ast, failure_reason) {
  md_error err;
  Ctx c;
  const char *src = "A : matrix(n, m)\nB : matrix(n, m)\ny = sum(A .* B)\n";
  ctx_init(&c, src, (long)strlen(src), "t.expr", &err);
  cr_assert(md_front(&c), "%s", err.diag);
  Node *a = c.vars[0].node, *b = c.vars[1].node;
  cr_expect_null(ast_op(&c, OP_MUL, a, b));
  cr_expect_eq(c.astfail, AST_SHAPE);
  cr_expect_str_eq(c.astmsg, "cannot multiply (n×m) by (n×m): inner sizes m and n differ");
  cr_expect_null(ast_opk(&c, OP_LSE, a, NULL, 1));
  cr_expect_str_eq(c.astmsg, "logsumexp has no dimension 1");
  // A NULL operand keeps the reason it failed with.
  cr_expect_null(ast_op(&c, OP_ADD, NULL, b));
  cr_expect_eq(c.astfail, AST_SHAPE);
  ast_error(&c, (Loc){-1, -1}, "a test");
  cr_expect_str_eq(err.message, "internal error: a test built an ill-shaped node: logsumexp has "
                                "no dimension 1");
  ctx_free(&c);
}
