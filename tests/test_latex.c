/*
 * test_latex.c - what `matdiff diff --latex` prints is read back, and must
 * denote the value it was printed from.
 *
 * A small reader of the LaTeX subset print.c writes parses a formula the
 * way a person reads it (juxtaposition binds tighter than \odot and
 * \oslash, which bind tighter than + and -; a unary minus takes the
 * product after it; TeX ignores spaces, so 2 3 is 23) and evaluates it on
 * the runtime's tape as it goes. The DAG the formula was printed from is
 * recorded on the same tape (record_dag), at the same inputs; the two
 * values must agree to rounding. A missing parenthesis, a product that
 * reads as a call, a name that reads as another: each gives another value,
 * another shape, or no reading at all.
 *
 *   latex::random      every formula of the random programs of tests/gen.c
 *                      (seeds 1..2000): each intermediate's and the output's
 *                      definition, and every gradient, at random sizes and
 *                      inputs
 *   latex::known       the forms that were printed wrong once
 *   latex::reader      the reader itself tells those wrong forms apart
 *
 * The front half is white-box (md.h): the formulas are print_latex's, the
 * values the tape's.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "matdiff_rt.h"
#include "md.h"
#include "util.h"
#include "gen.h"

/* The Makefile builds each test from its one .c file, so the generator is
   compiled in here, as in test_random.c. */
#include "gen.c"

#define PROGRAMS 2000     /* random programs, seeds 1..PROGRAMS */
#define CHUNK 250         /* programs per test process */
#define TOL MD_CHECK_TOL_TAPE
#define MAX_NAMES 64
#define MAX_NEST 2000     /* the reader's recursion, for its stack */

/* Each op's tape operation, as record.c has them from ops.h. */
#define MDRT_NONE (-1)
static const int tape_op[OP_COUNT] = {
#define OP(name, spelling, arity, prec, class, tape, ...) [OP_##name] = MDRT_##tape,
#include "ops.h"
};

/* ---- the reader ------------------------------------------------------------ */

typedef struct Binding {
  char tex[96];      /* the name as print.c writes it: x, W_{1}, \lambda, \mathrm{acc} */
  int h;             /* its value on the tape */
  long size;         /* for a size: its value, else -1 */
} Binding;

typedef struct Reader {
  const char *s, *p;
  mdrt_tape *t;
  Binding *env;
  int nenv;
  int nest;
  char err[200];
} Reader;

static int fail(Reader *r, const char *what) {
  if (!r->err[0])
    snprintf(r->err, sizeof r->err, "%s at '%.40s'", what, r->p);
  return -1;
}

static void space(Reader *r) {
  while (*r->p == ' ')
    r->p++;
}

// Is TOK next (after spaces)? A control word must end there: \left is not
// \leftarrow.
static bool peek(Reader *r, const char *tok) {
  space(r);
  size_t n = strlen(tok);
  if (strncmp(r->p, tok, n))
    return false;
  return !(tok[0] == '\\' && isalpha((unsigned char)tok[n - 1]) && isalpha((unsigned char)r->p[n]));
}

static bool accept(Reader *r, const char *tok) {
  if (!peek(r, tok))
    return false;
  r->p += strlen(tok);
  return true;
}

static bool expect(Reader *r, const char *tok) {
  if (accept(r, tok))
    return true;
  char what[64];
  snprintf(what, sizeof what, "expected '%s'", tok);
  fail(r, what);
  return false;
}

static long rows(Reader *r, int h) { return mdrt_tape_rows(r->t, h); }
static long cols(Reader *r, int h) { return mdrt_tape_cols(r->t, h); }
static bool one_by_one(Reader *r, int h) { return rows(r, h) == 1 && cols(r, h) == 1; }

static int tape(Reader *r, int h) {
  if (h < 0)
    fail(r, mdrt_tape_error(r->t));
  return h;
}
static int unary(Reader *r, mdrt_op op, int a, long k) {
  return a < 0 ? -1 : tape(r, mdrt_tape_unary(r->t, op, a, k));
}
static int binary(Reader *r, mdrt_op op, int a, int b) {
  return a < 0 || b < 0 ? -1 : tape(r, mdrt_tape_binary(r->t, op, a, b));
}
static int constant(Reader *r, double v) { return tape(r, mdrt_tape_const(r->t, 1, 1, &v)); }

static int sum(Reader *r);

// The text of a subscript's braces, from after "_{" to the matching "}".
static bool braces(Reader *r, char *out, size_t n) {
  const char *q = r->p;
  int depth = 1;
  while (*q && depth)
    depth += *q == '{' ? 1 : *q == '}' ? -1 : 0, q += depth > 0;
  if (!*q || (size_t)(q - r->p) >= n)
    return fail(r, "unclosed or overlong braces"), false;
  snprintf(out, n, "%.*s", (int)(q - r->p), r->p);
  r->p = q + 1;
  return true;
}

static const Binding *lookup(Reader *r, const char *tex) {
  for (int i = 0; i < r->nenv; i++)
    if (!strcmp(r->env[i].tex, tex))
      return &r->env[i];
  return NULL;
}

// A size inside a subscript: a number or a size's name.
static long size(Reader *r, const char *text) {
  char *end;
  long v = strtol(text, &end, 10);
  if (end != text && !*end)
    return v;
  const Binding *b = lookup(r, text);
  return b && b->size > 0 ? b->size : -1;
}

// \mathbf{1}_{n \times m}, I_{n}, 0_{n}: a constant of a shape.
static int fill(Reader *r, int kind) {
  char sub[96];
  if (!expect(r, "_{") || !braces(r, sub, sizeof sub))
    return -1;
  char *x = strstr(sub, " \\times ");
  long n, m;
  if (x) {
    *x = 0;
    n = size(r, sub), m = size(r, x + 8);
  } else {
    n = size(r, sub), m = kind == 'I' ? n : 1;
  }
  if (n < 1 || m < 1)
    return fail(r, "a shape that is not one");
  double *v = calloc((size_t)(n * m), sizeof *v);
  if (!v)
    abort();
  for (long i = 0; i < n * m; i++)
    v[i] = kind == '1' || (kind == 'I' && i / m == i % m);
  int h = tape(r, mdrt_tape_const(r->t, n, m, v));
  free(v);
  return h;
}

// A number; TeX joins digits across spaces, and so does this.
static int number(Reader *r) {
  char buf[64];
  size_t n = 0;
  const char *q = r->p;
  for (;;) {
    if (isdigit((unsigned char)*q) || *q == '.') {
      buf[n++] = *q++;
    } else if (*q == 'e' && n && (isdigit((unsigned char)q[1]) ||
                                  ((q[1] == '-' || q[1] == '+') && isdigit((unsigned char)q[2])))) {
      buf[n++] = *q++;
      buf[n++] = *q++;
    } else if (*q == ' ' && n) {
      const char *s = q;
      while (*s == ' ')
        s++;
      if (!isdigit((unsigned char)*s))
        break;
      q = s;
    } else {
      break;
    }
    if (n + 2 >= sizeof buf)
      return fail(r, "an overlong number");
  }
  buf[n] = 0;
  r->p = q;
  if (!strcmp(buf, "0") && peek(r, "_{"))
    return fill(r, '0');
  return constant(r, strtod(buf, NULL));
}

// The op whose LaTeX (when HAVE_LATEX) or spelling is WORD, of arity 1, or -1.
static int op_named(const char *word, bool have_latex) {
  for (int op = 0; op < OP_COUNT; op++)
    if (op_arity[op] == 1 && op_class[op] != SC_INDEX && op != OP_NORM && op != OP_NORMSQ &&
        op != OP_INV && op != OP_ABS && op != OP_SQRT &&
        (have_latex ? op_latex[op] && !strcmp(op_latex[op], word) : !strcmp(op_spelling[op], word)))
      return op;
  if (!strcmp(word, "diag"))
    return OP_DIAGV;
  return -1;
}

// f\left( a \right), with f's axis for sum_{2} and the like.
static int call(Reader *r, int op, long k) {
  if (!expect(r, "\\left("))
    return -1;
  int a = sum(r);
  if (a < 0 || !expect(r, "\\right)"))
    return -1;
  if (op_class[op] == SC_MAP)
    return tape(r, mdrt_tape_map(r->t, op_spelling[op], a));
  if (op == OP_SOFTMAX && k == 0) {  // over all elements: exp(A - logsumexp(A)), as lower.c has it
    int d = binary(r, MDRT_SUB, a, unary(r, MDRT_LOGSUMEXP, a, 0));
    return d < 0 ? -1 : tape(r, mdrt_tape_map(r->t, "exp", d));
  }
  return unary(r, (mdrt_op)tape_op[op], a, k);
}

// A name: a letter, \mathrm{word} or \greek, and a subscript _{...}.
static int name(Reader *r, const char *stem) {
  char tex[96], sub[80];
  snprintf(tex, sizeof tex, "%s", stem);
  if (peek(r, "_{")) {
    r->p += 2;
    if (!braces(r, sub, sizeof sub))
      return -1;
    snprintf(tex + strlen(tex), sizeof tex - strlen(tex), "_{%s}", sub);
  }
  const Binding *b = lookup(r, tex);
  if (b)
    return b->size > 0 ? constant(r, (double)b->size) : b->h;
  if (!strncmp(tex, "I_{", 3)) {  // the identity, not a name: read its size again
    r->p -= strlen(tex) - 1;
    return fill(r, 'I');
  }
  return fail(r, "an unknown name");
}

static int atom(Reader *r) {
  space(r);
  const char *q = r->p;
  if (isdigit((unsigned char)*q))
    return number(r);
  if (isalpha((unsigned char)*q)) {
    char stem[2] = {*q, 0};
    r->p++;
    return name(r, stem);
  }
  if (accept(r, "\\left(")) {
    int a = sum(r);
    return a < 0 || !expect(r, "\\right)") ? -1 : a;
  }
  if (accept(r, "\\left\\|")) {
    int a = sum(r);
    if (a < 0 || !expect(r, "\\right\\|"))
      return -1;
    accept(r, "_F");
    return unary(r, MDRT_NORM2, a, 0);
  }
  if (accept(r, "\\left|")) {
    int a = sum(r);
    return a < 0 || !expect(r, "\\right|") ? -1 : tape(r, mdrt_tape_map(r->t, "abs", a));
  }
  if (accept(r, "\\frac{")) {
    int a = sum(r);
    if (a < 0 || !expect(r, "}") || !expect(r, "{"))
      return -1;
    int b = sum(r);
    if (b < 0 || !expect(r, "}"))
      return -1;
    return one_by_one(r, b) ? binary(r, MDRT_EDIV, a, b) : fail(r, "a fraction over a matrix");
  }
  if (accept(r, "\\sqrt{")) {
    int a = sum(r);
    return a < 0 || !expect(r, "}") ? -1 : tape(r, mdrt_tape_map(r->t, "sqrt", a));
  }
  if (accept(r, "\\mathbf{1}"))
    return fill(r, '1');
  if (accept(r, "\\mathrm{")) {
    char word[80], tex[96];
    if (!braces(r, word, sizeof word))
      return -1;
    snprintf(tex, sizeof tex, "\\mathrm{%s}", word);
    return name(r, tex);
  }
  if (accept(r, "\\operatorname{")) {
    char word[80];
    if (!braces(r, word, sizeof word))
      return -1;
    int op = op_named(word, false);
    if (op < 0)
      return fail(r, "an unknown function");
    long k = 0;
    if (accept(r, "_{")) {
      char sub[16];
      if (!braces(r, sub, sizeof sub))
        return -1;
      k = strtol(sub, NULL, 10);
    }
    return call(r, op, k);
  }
  if (*q == '\\' && isalpha((unsigned char)q[1])) {
    size_t n = 1;
    while (isalpha((unsigned char)q[n]))
      n++;
    char word[40];
    snprintf(word, sizeof word, "%.*s", (int)n, q);
    r->p = q + n;
    if (!strcmp(word, "\\log") && accept(r, "\\det"))
      return call(r, OP_LOGDET, 0);
    int op = op_named(word, true);
    // A function's name is a call only when a group follows it: \sigma
    // alone is a name, \sigma \left( ... \right) the sigmoid, in TeX as on
    // paper.
    if (op >= 0 && peek(r, "\\left("))
      return call(r, op, 0);
    return name(r, word);
  }
  return fail(r, "no operand");
}

// An atom and its superscripts: ^\top, ^{-1}, ^{p}, ^{\circ p}, ^2.
static int postfix(Reader *r) {
  if (++r->nest > MAX_NEST)
    return fail(r, "too deep");
  int a = atom(r);
  while (a >= 0) {
    if (accept(r, "^\\top")) {
      a = unary(r, MDRT_TRANSPOSE, a, 0);
    } else if (accept(r, "^{")) {
      space(r);
      if (!strncmp(r->p, "-1}", 3) && !one_by_one(r, a)) {
        r->p += 3;
        a = unary(r, MDRT_INV, a, 0);
        continue;
      }
      bool elementwise = accept(r, "\\circ");
      int e = sum(r);
      if (e < 0 || !expect(r, "}"))
        return -1;
      if (!elementwise && !one_by_one(r, a))
        return fail(r, "a power of a matrix");
      a = binary(r, MDRT_EPOW, a, e);
    } else if (peek(r, "^") && isdigit((unsigned char)r->p[1])) {
      int e = constant(r, r->p[1] - '0');
      r->p += 2;
      a = binary(r, MDRT_EPOW, a, e);
    } else {
      break;
    }
  }
  r->nest--;
  return a;
}

// Does an operand of a product begin here?
static bool operand_next(Reader *r) {
  space(r);
  const char *q = r->p;
  if (isalnum((unsigned char)*q))
    return true;
  if (*q != '\\')
    return false;
  return !(peek(r, "\\right") || peek(r, "\\odot") || peek(r, "\\oslash") || peek(r, "\\cdot") ||
           peek(r, "\\times") || peek(r, "\\dots"));
}

// Juxtaposition and \cdot: a matrix product, or scaling when a side is 1x1.
static int product(Reader *r) {
  int a = postfix(r);
  while (a >= 0) {
    bool dot = accept(r, "\\cdot");
    if (!dot && !operand_next(r))
      break;
    int b = postfix(r);
    if (b < 0)
      return -1;
    a = binary(r, one_by_one(r, a) || one_by_one(r, b) ? MDRT_EMUL : MDRT_MATMUL, a, b);
  }
  return a;
}

static int negation(Reader *r) {
  if (accept(r, "-")) {
    if (++r->nest > MAX_NEST)
      return fail(r, "too deep");
    int a = negation(r);
    r->nest--;
    return unary(r, MDRT_NEG, a, 0);
  }
  return product(r);
}

static int elementwise(Reader *r) {
  int a = negation(r);
  while (a >= 0) {
    mdrt_op op;
    if (accept(r, "\\odot"))
      op = MDRT_EMUL;
    else if (accept(r, "\\oslash"))
      op = MDRT_EDIV;
    else
      break;
    a = binary(r, op, a, negation(r));
  }
  return a;
}

static int sum(Reader *r) {
  if (++r->nest > MAX_NEST)
    return fail(r, "too deep");
  int a = elementwise(r);
  while (a >= 0) {
    mdrt_op op;
    if (accept(r, "+"))
      op = MDRT_ADD;
    else if (accept(r, "-"))
      op = MDRT_SUB;
    else
      break;
    a = binary(r, op, a, elementwise(r));
  }
  r->nest--;
  return a;
}

// TEX's value on R's tape: a handle, or -1 with R->err.
static int read_latex(Reader *r, const char *tex) {
  r->s = r->p = tex;
  r->nest = 0;
  r->err[0] = 0;
  int h = sum(r);
  space(r);
  if (h >= 0 && *r->p)
    return fail(r, "text left over");
  return h;
}

/* ---- a compiled program, its values and its formulas ------------------------ */

typedef struct Prog {
  Ctx c;
  md_error err;
  mdrt_tape *t;
  long dims[GEN_MAX_DIMS + 8];
  int *h;            /* by node id: the DAG's values on the tape */
  Binding env[MAX_NAMES];
  int nenv;
  int formulas, skipped;
} Prog;

static void bind(Prog *p, const char *name, int h, long sz) {
  Buf b = {0};
  latex_name(&b, name);
  cr_assert(p->nenv < MAX_NAMES);
  snprintf(p->env[p->nenv].tex, sizeof p->env[p->nenv].tex, "%s", b.s);
  p->env[p->nenv].h = h;
  p->env[p->nenv++].size = sz;
  buf_free(&b);
}

// Does every name print as no other one? (latex_name writes W1 and W_1 the
// same; no program here has both, and one that did could not be read.)
static bool names_distinct(const Prog *p) {
  for (int i = 0; i < p->nenv; i++)
    for (int j = 0; j < i; j++)
      if (!strcmp(p->env[i].tex, p->env[j].tex))
        return false;
  return true;
}

// Compile SRC, bind its sizes to 1..GEN_MAX_SIZE and its inputs (and the
// seed) to numbers in [-1, 1], from SEED.
static bool prog_open(Prog *p, const char *src, uint64_t seed) {
  memset(p, 0, sizeof *p);
  ctx_init(&p->c, src, (long)strlen(src), "latex.expr", &p->err);
  if (!md_front(&p->c)) {
    cr_expect(0, "seed %llu does not compile: %s\n%s", (unsigned long long)seed, p->err.diag, src);
    return false;
  }
  Ctx *c = &p->c;
  p->t = mdrt_tape_new();
  p->h = malloc(sizeof *p->h * (size_t)c->nnodes);
  cr_assert(p->t && p->h);
  for (int i = 0; i < c->nnodes; i++)
    p->h[i] = -1;
  Rng g = {gen_hash(seed, "latex")};
  for (int d = 0; d < c->ndims; d++) {
    p->dims[d] = 1 + (long)(next_u64(&g) % GEN_MAX_SIZE);
    bind(p, c->dims[d], -1, p->dims[d]);
  }
  for (int i = 0; i < c->nnodes; i++) {
    Node *n = c->nodes[i];
    if (n->op != OP_VAR && n->op != OP_SEED)
      continue;
    long nr = dim_value(n->shape.r, p->dims), nc = dim_value(n->shape.c, p->dims);
    double *v = malloc(sizeof *v * (size_t)(nr * nc));
    cr_assert(v);
    for (long e = 0; e < nr * nc; e++)
      v[e] = uniform(&g, -1, 1);
    p->h[i] = mdrt_tape_leaf(p->t, nr, nc, v);
    free(v);
    bind(p, n->op == OP_VAR ? c->vars[n->k].name : print_seed_name(c), p->h[i], -1);
  }
  // The intermediates a formula may name, by their values.
  for (int i = 0; i < c->nlets; i++) {
    Node *n = c->lets[i].node;
    if (n != c->out && n->op != OP_VAR)
      bind(p, c->lets[i].name, record_dag(c, p->t, n, p->dims, p->h), -1);
  }
  return true;
}

static void prog_close(Prog *p) {
  if (p->t)
    mdrt_tape_free(p->t);
  free(p->h);
  ctx_free(&p->c);
}

// N's LaTeX, read back, against N's value. WHAT names it in a failure.
static void check_formula(Prog *p, const Node *n, const char *what, const char *src) {
  Buf b = {0};
  print_latex(&p->c, &b, n);
  cr_assert(!b.oom);
  int want = record_dag(&p->c, p->t, n, p->dims, p->h);
  const double *wv = want >= 0 ? mdrt_tape_value(p->t, want) : NULL;
  long len = want >= 0 ? mdrt_tape_rows(p->t, want) * mdrt_tape_cols(p->t, want) : 0;
  bool finite = wv != NULL;
  for (long i = 0; finite && i < len; i++)
    finite = isfinite(wv[i]);
  // A singular matrix or a value out of range at these inputs says nothing
  // of the printing; nor does a formula cut at its length limit.
  if (!finite || strstr(b.s, "\\dots")) {
    p->skipped++;
    buf_free(&b);
    return;
  }
  Reader r = {.t = p->t, .env = p->env, .nenv = p->nenv};
  int got = read_latex(&r, b.s);
  p->formulas++;
  if (got < 0) {
    cr_expect(0, "%s: the LaTeX does not read back (%s):\n  %s\nfrom\n%s", what, r.err, b.s, src);
  } else if (rows(&r, got) != mdrt_tape_rows(p->t, want) || cols(&r, got) != mdrt_tape_cols(p->t, want)) {
    cr_expect(0, "%s: the LaTeX reads as %ldx%ld, the formula is %ldx%ld:\n  %s\nfrom\n%s", what,
              rows(&r, got), cols(&r, got), mdrt_tape_rows(p->t, want), mdrt_tape_cols(p->t, want),
              b.s, src);
  } else {
    double e = md_rel_err(mdrt_tape_value(p->t, got), wv, len);
    cr_expect(e <= TOL, "%s: the LaTeX reads as another value (off by %.3g):\n  %s\nfrom\n%s", what,
              e, b.s, src);
  }
  buf_free(&b);
}

// Every formula of SRC: the definitions, as `diff --latex` would print the
// program, and the gradients.
static void check_program(Prog *p, const char *src, uint64_t seed) {
  if (!prog_open(p, src, seed))
    return;
  Ctx *c = &p->c;
  char what[160];
  if (names_distinct(p)) {
    for (int i = 0; i < c->nlets; i++) {
      snprintf(what, sizeof what, "seed %llu, %s", (unsigned long long)seed, c->lets[i].name);
      check_formula(p, c->lets[i].node, what, src);
    }
    for (int i = 0; i < c->nvars; i++)
      if (c->grads[i]) {
        snprintf(what, sizeof what, "seed %llu, d%s/d%s", (unsigned long long)seed, c->outname,
                 c->vars[i].name);
        check_formula(p, c->grads[i], what, src);
      }
  } else {
    p->skipped++;
  }
  prog_close(p);
}

/* ---- the tests -------------------------------------------------------------- */

ParameterizedTestParameters(latex, random) {
  static int starts[PROGRAMS / CHUNK];
  for (int i = 0; i < PROGRAMS / CHUNK; i++)
    starts[i] = 1 + i * CHUNK;
  return cr_make_param_array(int, starts, PROGRAMS / CHUNK);
}

ParameterizedTest(int *start, latex, random, .timeout = 120) {
  int formulas = 0, skipped = 0;
  for (int s = *start; s < *start + CHUNK; s++) {
    GProg g;
    gen_program(&g, (uint64_t)s);
    char *src = gen_source(&g);
    Prog p;
    check_program(&p, src, (uint64_t)s);
    formulas += p.formulas;
    skipped += p.skipped;
    free(src);
    gen_free(&g);
  }
  cr_log_info("seeds %d..%d: %d formulas read back, %d skipped", *start, *start + CHUNK - 1,
              formulas, skipped);
  // Each program has its output and a gradient at least: a run that read
  // fewer formulas than programs tested little.
  cr_expect_geq(formulas, 2 * CHUNK, "only %d formulas read back (%d skipped)", formulas, skipped);
}

// Programs whose LaTeX was wrong once, or could be: the elementwise product
// inside a matrix product (issue #11), a unary minus of one, a name that is
// also a function, numbers side by side, superscripts on superscripts.
static const char *const known[] = {
    "X : matrix(n, m)\nb : vector(n)\na : vector(n)\nw : vector(m)\n"
    "y = sum(X'*(b.*a)) + sum((b.*a)*w')\n",
    "X : matrix(n, d)\nW1 : matrix(d, h)\nb1 : vector(h)\nW2 : matrix(h, k)\nb2 : vector(k)\n"
    "Y : matrix(n, k)\nH = tanh(X*W1 + b1')\nZ = H*W2 + b2'\n"
    "loss = (sum(logsumexp(Z, 2)) - sum(Y.*Z))/n\n",
    "A : matrix(n, n)\nB : matrix(n, n)\nY = -(A.*B)*B - A*(-(A./B))\n",
    "sigma : scalar\nx : vector(n)\nexp : scalar\ny = sum(sigma*(x + 1)) + exp*(sigma + 1)\n",
    "x : scalar\nA : matrix(n, n)\ny = x*2*3 + x^2^3 + tr((A')')*(x^-1)^2 + tr(inv(A)^2)\n",
    "A : matrix(n, n)\nx : vector(n)\nY = A*(x*2)*(x'*3) - 2*(-A)\n",
    "x : vector(n)\nS : matrix(n, n)\nz = S*x\ny = sum(z.*z) + ||z||^2*||z||_F\n",
    "G : matrix(n, k)\nG_ : matrix(n, k)\nW : matrix(k, m)\nY = (G + G_)*W\n",
};

Test(latex, known) {
  for (size_t i = 0; i < sizeof known / sizeof *known; i++) {
    Prog p;
    check_program(&p, known[i], 1000 + i);
    cr_expect_gt(p.formulas, 0, "%s", known[i]);
  }
}

// The reader is the test: it must tell apart what print.c once confused.
Test(latex, reader) {
  Prog p;
  const char *src = "X : matrix(n, m)\nb : vector(n)\na : vector(n)\nsigma : scalar\n"
                    "y = sum(X'*(b.*a)) + sigma\n";
  cr_assert(prog_open(&p, src, 7));
  Reader r = {.t = p.t, .env = p.env, .nenv = p.nenv};
  // X^\top b \odot a is (X^\top b) \odot a: an n x 1 against an m x 1,
  // which fits only when n = m, and then is another value than
  // X^\top (b \odot a).
  int right = read_latex(&r, "X^\\top \\left( b \\odot a \\right)");
  cr_assert_geq(right, 0, "%s", r.err);
  cr_expect_eq(cols(&r, right), 1);
  int wrong = read_latex(&r, "X^\\top b \\odot a");
  cr_expect(wrong < 0 || md_rel_err(mdrt_tape_value(p.t, wrong), mdrt_tape_value(p.t, right), rows(&r, right)) > 0,
            "X^\\top b \\odot a reads as X^\\top (b \\odot a)");
  // 2 3 is 23, and \sigma \left( ... \right) a call.
  int n23 = read_latex(&r, "2 3");
  cr_assert_geq(n23, 0, "%s", r.err);
  cr_expect_eq(mdrt_tape_value(p.t, n23)[0], 23);
  int call = read_latex(&r, "\\sigma \\left( 0 \\right)");
  cr_assert_geq(call, 0, "%s", r.err);
  cr_expect_eq(mdrt_tape_value(p.t, call)[0], 0.5);
  int prod = read_latex(&r, "\\sigma \\cdot \\left( 0 \\right)");
  cr_assert_geq(prod, 0, "%s", r.err);
  cr_expect_eq(mdrt_tape_value(p.t, prod)[0], 0);
  prog_close(&p);
}
