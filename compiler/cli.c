/*
 * cli.c - the matdiff command. Each verb is the pipeline, or part of it:
 *
 *   diff     parse -> shapes -> reverse mode -> simplify -> print
 *            (--dump: the state after any of those stages)
 *   graph    ... -> simplify -> Graphviz dot
 *   compile  ... -> emit C to a file
 *   eval     ... -> emit C -> libtcc -> call it on data
 *   check    eval, held against the tape and finite differences (md_check)
 *   cost     ... -> emit C -> count its operations
 *   config   the flags a C program needs to build against matdiff
 *
 * Every verb's options come from one table (options[]). The CLI uses the
 * library through matdiff.h, and the stages through md.h; its file formats
 * (text matrices, .npy) are its own, in dataio.c and npy.c. Source errors
 * print as file:line:col: error: message, the source line and a caret;
 * every error exits 1.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "dataio.h"
#include "md.h"
#include "npy.h"

#ifndef MD_BLAS_LIBS
#define MD_BLAS_LIBS "-lopenblas"
#endif
// A SAN=1 build's libraries are instrumented: programs linking them need the
// sanitizers' runtimes too.
#ifndef MD_SAN_LIBS
#define MD_SAN_LIBS ""
#endif

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("matdiff: error: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return 1;
}

static int report(const md_error *err) {
  fprintf(stderr, "%s\n", err->diag[0] ? err->diag : err->message);
  return 1;
}

// The whole file; NUL bytes are an error at their position, since the
// rest of matdiff takes sources as C strings.
static char *read_file_source(const char *path, long *len, md_error *err) {
  diag_clear(err);
  char *s = io_read_file(path, len, err);
  char *nul = s ? memchr(s, '\0', (size_t)*len) : NULL;
  if (nul) {
    diag_error(err, path, s, *len, (Loc){(int)(nul - s), (int)(nul - s) + 1},
               "the source contains a NUL byte");
    free(s);
    return NULL;
  }
  return s;
}

/* ---- the command line ------------------------------------------------- */

/* What a verb's command line says. Every option is parsed from one table
   (options[] below), into one of these. */
typedef struct Bind {
  bool dim;          /* --dim D=N; else NAME=PATH */
  const char *text;
} Bind;

typedef struct Args {
  const char *file;  /* FILE, or "<expr>" with -e */
  const char *expr, *wrt; /* -e EXPR and --wrt NAMES */
  char *src;         /* -e: the program md_expr_source inferred (malloc'd) */
  Bind *binds;       /* --dim D=N and NAME=PATH, in command-line order */
  int nbinds;
  const char **words; /* config's options, in command-line order */
  int nwords;
  const char *out, *name, *format, *dump, *lang;
  bool latex, standalone, flt, grad, strict;
  bool jvp, hvp, hessian, jacobian; /* second order (second.c) */
  bool second;       /* compile: the second-order functions too (the default) */
  bool first;        /* compile --first-only: without them */
  unsigned long long seed, trials, order;
} Args;

enum { V_DIFF = 1, V_GRAPH = 2, V_COMPILE = 4, V_EVAL = 8, V_CHECK = 16, V_COST = 32, V_CONFIG = 64 };

typedef struct Verb {
  const char *name;
  unsigned bit;
  bool file;         /* takes a FILE */
  int (*run)(const Args *a);
  const char *help;
} Verb;

typedef enum ArgKind {
  FLAG,              /* a bool, set */
  TEXT,              /* a string: the value */
  NUMBER,            /* an unsigned long long from MIN to MAX */
  DIM,               /* D=N, appended to binds */
  WORD,              /* the option's own name, appended to words */
} ArgKind;

typedef struct Option {
  const char *name;
  unsigned verbs;    /* the verbs that take it */
  ArgKind kind;
  size_t field;      /* in Args: offsetof */
  const char *value; /* the value, as the usage names it */
  unsigned long long min, max;
} Option;

#define V_SOURCE (V_DIFF | V_GRAPH | V_COMPILE | V_EVAL | V_CHECK | V_COST)
#define F(f) offsetof(Args, f)
static const Option options[] = {
    {"-e", V_SOURCE, TEXT, F(expr), "EXPR", 0, 0},
    {"--wrt", V_SOURCE, TEXT, F(wrt), "NAMES", 0, 0},
    {"--latex", V_DIFF, FLAG, F(latex), NULL, 0, 0},
    {"--standalone", V_DIFF | V_COMPILE, FLAG, F(standalone), NULL, 0, 0},
    {"--dump", V_DIFF, TEXT, F(dump), "STAGE,...", 0, 0},
    {"--jvp", V_DIFF | V_EVAL, FLAG, F(jvp), NULL, 0, 0},
    {"--hvp", V_DIFF | V_EVAL, FLAG, F(hvp), NULL, 0, 0},
    {"--hessian", V_DIFF | V_EVAL, FLAG, F(hessian), NULL, 0, 0},
    {"--jacobian", V_DIFF | V_EVAL, FLAG, F(jacobian), NULL, 0, 0},
    {"--grad", V_GRAPH | V_EVAL, FLAG, F(grad), NULL, 0, 0},
    {"-o", V_COMPILE, TEXT, F(out), "OUT.c", 0, 0},
    {"--name", V_COMPILE, TEXT, F(name), "P", 0, 0},
    {"--float", V_COMPILE, FLAG, F(flt), NULL, 0, 0},
    {"--lang", V_COMPILE, TEXT, F(lang), "c|numpy", 0, 0},
    {"--second", V_COMPILE, FLAG, F(second), NULL, 0, 0},
    {"--first-only", V_COMPILE, FLAG, F(first), NULL, 0, 0},
    {"--dim", V_EVAL | V_CHECK | V_COST, DIM, 0, "D=N", 0, 0},
    {"--seed", V_EVAL | V_CHECK, NUMBER, F(seed), "S", 0, ULLONG_MAX},
    {"--trials", V_CHECK, NUMBER, F(trials), "T", 1, 1000000},
    {"--order", V_CHECK, NUMBER, F(order), "1|2", 1, 2},
    {"--out", V_EVAL, TEXT, F(out), "DIR", 0, 0},
    {"--format", V_EVAL, TEXT, F(format), "txt|npy", 0, 0},
    {"--strict", V_EVAL, FLAG, F(strict), NULL, 0, 0},
    {"--cflags", V_CONFIG, WORD, 0, NULL, 0, 0},
    {"--libs", V_CONFIG, WORD, 0, NULL, 0, 0},
    {"--jit-libs", V_CONFIG, WORD, 0, NULL, 0, 0},
};
#undef F

// A whole number from O->min to O->max, digits only: strtoull would take
// "-1" as 2^64 - 1, and leading spaces or a '+'.
static bool set_number(const Verb *v, const Option *o, const char *val, unsigned long long *n) {
  char *end;
  errno = 0;
  *n = strtoull(val, &end, 10);
  if (val[strspn(val, "0123456789")] == '\0' && *val && !errno && *n >= o->min && *n <= o->max)
    return true;
  if (o->min == 0 && o->max == ULLONG_MAX)
    fail("%s: %s takes a whole number, not '%s'", v->name, o->name, val);
  else
    fail("%s: %s takes a whole number from %llu to %llu, not '%s'", v->name, o->name, o->min, o->max,
         val);
  return false;
}

static bool set_option(const Verb *v, const Option *o, const char *val, Args *a) {
  char *field = (char *)a + o->field;
  switch (o->kind) {
  case FLAG: *(bool *)field = true; return true;
  case TEXT: *(const char **)field = val; return true;
  case NUMBER: return set_number(v, o, val, (unsigned long long *)field);
  case DIM: a->binds[a->nbinds++] = (Bind){true, val}; return true;
  case WORD: a->words[a->nwords++] = o->name; return true;
  }
  return false;
}

// A FILE, or for eval NAME=PATH.
static bool set_positional(const Verb *v, const char *arg, Args *a) {
  if (v->bit == V_EVAL && strchr(arg, '=')) {
    a->binds[a->nbinds++] = (Bind){false, arg};
    return true;
  }
  if (v->file && !a->file) {
    a->file = arg;
    return true;
  }
  if (v->bit == V_EVAL)
    fail("eval takes one FILE; '%s' is not NAME=PATH\n%s", arg, v->help);
  else if (v->file)
    fail("%s takes one FILE, not also '%s'\n%s", v->name, arg, v->help);
  else
    fail("%s: unexpected '%s'\n%s", v->name, arg, v->help);
  return false;
}

// ARGV, what follows the verb V, into *A: "--opt VALUE" or "--opt=VALUE"
// for an option with a value. false with the error printed.
static bool parse_args(const Verb *v, int argc, char **argv, Args *a) {
  *a = (Args){.seed = 1, .trials = 1, .order = 1};
  a->binds = calloc((size_t)argc + 1, sizeof *a->binds);
  a->words = calloc((size_t)argc + 1, sizeof *a->words);
  if (!a->binds || !a->words)
    return fail("out of memory"), false;
  for (int i = 0; i < argc; i++) {
    const char *arg = argv[i];
    if (arg[0] != '-' || !arg[1]) {  // "-" is a FILE too
      if (!set_positional(v, arg, a))
        return false;
      continue;
    }
    size_t n = strcspn(arg, "=");
    const Option *o = NULL;
    for (size_t k = 0; k < sizeof options / sizeof *options && !o; k++)
      if (!strncmp(options[k].name, arg, n) && !options[k].name[n])
        o = &options[k];
    if (!o)
      return fail("%s: unknown option '%.*s'\n%s", v->name, (int)n, arg, v->help), false;
    if (!(o->verbs & v->bit))
      return fail("%s: %s is not an option of %s\n%s", v->name, o->name, v->name, v->help), false;
    const char *val = NULL;
    if (o->kind == FLAG || o->kind == WORD) {
      if (arg[n])
        return fail("%s: %s takes no value\n%s", v->name, o->name, v->help), false;
    } else if (arg[n]) {
      val = arg + n + 1;
    } else if (i + 1 < argc) {
      val = argv[++i];
    } else {
      return fail("%s: %s needs a value: %s %s\n%s", v->name, o->name, o->name, o->value, v->help),
             false;
    }
    if (!set_option(v, o, val, a))
      return false;
  }
  if (a->expr && a->file)
    return fail("%s: -e EXPR takes the place of FILE: give one, not both", v->name), false;
  if (a->wrt && !a->expr)
    return fail("%s: --wrt goes with -e; in a FILE, say 'wrt NAME ...'", v->name), false;
  if (a->expr) {
    // The one-line expression becomes a program like a file's: its
    // declarations inferred, with "<expr>" in the place of the file name.
    md_error err;
    if (!(a->src = md_expr_source(a->expr, a->wrt, &err)))
      return report(&err), false;
    a->file = "<expr>";
  }
  if (v->file && !a->file)
    return fail("%s needs a FILE or -e EXPR\n%s", v->name, v->help), false;
  return true;
}

// The source A names: -e's program, or FILE's text (malloc'd).
static char *read_source(const Args *a, long *len, md_error *err) {
  if (!a->src)
    return read_file_source(a->file, len, err);
  char *s = strdup(a->src);
  if (!s)
    diag_plain(err, "out of memory");
  *len = s ? (long)strlen(s) : 0;
  return s;
}

static void args_free(Args *a) {
  free(a->src);
  free(a->binds);
  free(a->words);
}

/* ---- diff and compile --------------------------------------------------- */

static const char diff_help[] =
    "usage: matdiff diff FILE|-e EXPR [--wrt NAMES] [--latex [--standalone]] [--dump=STAGE,...]\n"
    "                    [--jvp | --hvp | --hessian | --jacobian]\n"
    "Print d(output)/d(var) for each wrt variable, in the input language (it parses\n"
    "again), or with --latex as LaTeX; --standalone wraps it in a document.\n"
    "  --jvp       instead, the output's tangent dy along the directions dx of the wrt\n"
    "              variables (the Jacobian-vector product)\n"
    "  --hvp       each gradient's tangent d(dy/dx) along them: the Hessian times the\n"
    "              directions (for a scalar output)\n"
    "  --hessian   d2y/dx2 and the mixed d2y/dxdb as matrices, for wrt variables that\n"
    "              are scalars or vectors; a matrix variable's row prints as its HVP\n"
    "  --jacobian  dF/dx as a matrix, for a scalar or vector output F and variable x;\n"
    "              for a matrix variable, F's tangent along dx\n"
    "  --dump=STAGE,...  first print the state after each STAGE named, under a line\n"
    "                    '# after STAGE' and followed by an empty one: parse (the\n"
    "                    parse tree), dag (the DAG after lowering), adjoint (the\n"
    "                    gradients' DAG straight out of reverse mode), simplified\n"
    "                    (the same, simplified), plan (how the C computes each\n"
    "                    body: each needed node's form, uses and buffer)\n";

// Is NAME in LIST, a comma-separated list?
static bool listed(const char *list, const char *name) {
  size_t n = strlen(name);
  for (const char *p = list; p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
    if (!strncmp(p, name, n) && (p[n] == ',' || !p[n]))
      return true;
  return false;
}

// Is every stage DUMP names one of md_stages? Else say which is not.
static bool dump_ok(const char *dump) {
  for (const char *p = dump; p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
    size_t n = strcspn(p, ",");
    bool found = false;
    for (const Stage *s = md_stages; s->name && !found; s++)
      found = strlen(s->name) == n && !strncmp(s->name, p, n);
    if (!found) {
      Buf names = {0};
      for (const Stage *s = md_stages; s->name; s++)
        buf_printf(&names, "%s%s", s == md_stages ? "" : ", ", s->name);
      fail("diff: --dump: there is no stage '%.*s'; the stages are %s", (int)n, p,
           names.s ? names.s : "");
      buf_free(&names);
      return false;
    }
  }
  return true;
}

// A file through the front half of the pipeline, for diff, graph and compile.
typedef struct Front {
  Ctx c;
  char *src;
  md_error err;
} Front;

static void front_free(Front *fr) {
  if (fr->src)
    ctx_free(&fr->c);
  free(fr->src);
}

// The front half on the file PATH, stage by stage; after each one DUMP (a
// comma-separated list, or NULL) names, the state it left, on stdout, and
// an empty line. false with the error printed; free with front_free.
static bool front_file(Front *fr, const Args *a, const char *dump) {
  const char *path = a->file;
  long len;
  Ctx *c = &fr->c;
  md_error *err = &fr->err;
  if (!(fr->src = read_source(a, &len, err)))
    return report(err), false;
  ctx_init(c, fr->src, len, path, err);
  for (const Stage *s = md_stages; s->name; s++) {
    if (!s->run(c))
      return fflush(stdout), report(err), false;
    if (!dump || !listed(dump, s->name))
      continue;
    Buf b = {0};
    s->dump(c, &b);
    printf("# after %s\n%s\n", s->name, b.s ? b.s : "");
    bool oom = b.oom;
    buf_free(&b);
    if (oom)
      return fail("out of memory"), false;
  }
  return true;
}

static void print_latex_diff(Ctx *c, bool standalone) {
  if (standalone)
    puts("\\documentclass{article}\n\\usepackage{amsmath,amssymb}\n\\begin{document}\n"
         "\\begin{align*}");
  bool first = true;
  for (int i = 0; i < c->nvars; i++) {
    if (!c->vars[i].wrt)
      continue;
    Buf b = {0};
    if (standalone && !first)
      buf_puts(&b, " \\\\\n");
    buf_puts(&b, "\\frac{\\partial ");
    latex_name(&b, c->outname);
    buf_puts(&b, "}{\\partial ");
    latex_name(&b, c->vars[i].name);
    buf_puts(&b, standalone ? "} &= " : "} = ");
    print_latex(c, &b, c->grads[i]);
    fputs(b.s ? b.s : "", stdout);
    if (!standalone)
      putchar('\n');
    buf_free(&b);
    first = false;
  }
  if (standalone)
    puts("\n\\end{align*}\n\\end{document}");
}

/* ---- diff: second order ---------------------------------------------------- */

/* One line "LHS = formula", in text or in LaTeX; LHS comes in both forms.
   A formula cut at MD_MAX_PRINT says so on stderr. */
typedef struct Line {
  Ctx *c;
  bool latex, standalone, first;
} Line;

static void formula_line(Line *l, const char *text, const char *tex, const Node *n) {
  if (l->latex) {
    Buf b = {0};
    if (l->standalone && !l->first)
      buf_puts(&b, " \\\\\n");
    buf_printf(&b, "%s%s", tex, l->standalone ? " &= " : " = ");
    print_latex(l->c, &b, n);
    fputs(b.s ? b.s : "", stdout);
    if (!l->standalone)
      putchar('\n');
    buf_free(&b);
  } else {
    char *f = print_str(l->c, n);
    printf("%s = %s\n", text, f ? f : "?");
    if (f && strlen(f) > MD_MAX_PRINT)
      fprintf(stderr, "matdiff: note: %s is longer than %d bytes written out and was cut\n", text,
              MD_MAX_PRINT);
  }
  l->first = false;
}

// A comment line in the text form (the output still parses).
static void comment_line(Line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void comment_line(Line *l, const char *fmt, ...) {
  if (l->latex)
    return;
  va_list ap;
  va_start(ap, fmt);
  fputs("# ", stdout);
  vprintf(fmt, ap);
  putchar('\n');
  va_end(ap);
}

// \partial^2 y / \partial x \partial b, and the like.
static char *tex_partial(Ctx *c, int order, int i, int j) {
  Buf b = {0};
  buf_puts(&b, order == 2 ? "\\frac{\\partial^2 " : "\\frac{\\partial ");
  latex_name(&b, c->outname);
  buf_puts(&b, "}{");
  if (order == 2 && i == j) {
    buf_puts(&b, "\\partial ");
    latex_name(&b, c->vars[i].name);
    buf_puts(&b, "^2}");
  } else {
    buf_puts(&b, "\\partial ");
    latex_name(&b, c->vars[i].name);
    if (order == 2) {
      buf_puts(&b, " \\partial ");
      latex_name(&b, c->vars[j].name);
    }
    buf_puts(&b, "}");
  }
  char *s = arena_strdup(&c->arena, b.s ? b.s : "");
  buf_free(&b);
  return s;
}

static bool vector_like(Shape s) { return shape_is_column(s) || shape_is_row(s); }

// d2y/dx2 and d2y/dxdb; d2y/dW1dW1 where a name ends in a digit.
static char *square_name(Ctx *c, int i, int j) {
  const char *x = c->vars[i].name;
  char last = x[strlen(x) - 1];
  if (i == j && !(last >= '0' && last <= '9'))
    return arena_printf(&c->arena, "d2%s/d%s2", c->outname, x);
  return arena_printf(&c->arena, "d2%s/d%sd%s", c->outname, x, c->vars[j].name);
}

// diff --jvp, --hvp, --hessian or --jacobian on the front half's C.
static bool print_second(Ctx *c, const Args *a) {
  Line l = {c, a->latex, a->standalone, true};
  const char *y = c->outname;
  bool scalar = shape_is_scalar(c->out->shape);
  if ((a->hessian || a->hvp) && !scalar)
    return fail("diff: %s needs a scalar output; %s is %s (--jacobian or --jvp take any)",
                a->hessian ? "--hessian" : "--hvp", y, shape_str(c, c->out->shape)), false;
  if (a->jacobian && !vector_like(c->out->shape))
    return fail("diff: --jacobian needs a scalar or vector output; %s is %s, and --jvp prints "
                "its tangent", y, shape_str(c, c->out->shape)), false;
  if (a->jvp) {
    if (!second_jvp(c))
      return false;
    char *tex = arena_printf(&c->arena, "\\mathrm{d}%s", y);
    formula_line(&l, arena_printf(&c->arena, "d%s", y), tex, c->jvp);
  }
  if (a->hvp || a->hessian) {
    if (!second_hvp(c) || (a->hessian && !second_hessian(c)))
      return false;
  }
  for (int i = 0; a->hvp && i < c->nvars; i++)
    if (c->vars[i].wrt)
      formula_line(&l, arena_printf(&c->arena, "d(d%s/d%s)", y, c->vars[i].name),
                   arena_printf(&c->arena, "\\mathrm{d}%s", tex_partial(c, 1, i, i)), c->hvps[i]);
  // The blocks that are matrices, and for a variable with a block that is
  // not, its row of blocks as the HVP.
  int n = c->nvars;
  for (int i = 0; a->hessian && i < n; i++) {
    if (!c->vars[i].wrt)
      continue;
    bool whole = true;
    for (int j = 0; j < n; j++)
      if (c->vars[j].wrt && !c->hess[i * n + j])
        whole = false;
    for (int j = i; j < n; j++)
      if (c->vars[j].wrt && c->hess[i * n + j])
        formula_line(&l, square_name(c, i, j),
                     tex_partial(c, 2, i, j), c->hess[i * n + j]);
    if (whole)
      continue;
    if (!vector_like(c->vars[i].shape))
      comment_line(&l, "%s is a matrix: its Hessian is a fourth-order tensor; its row of blocks "
                   "times the directions is", c->vars[i].name);
    else
      comment_line(&l, "not every block in %s's row is a matrix: the row times the directions is",
                   c->vars[i].name);
    formula_line(&l, arena_printf(&c->arena, "d(d%s/d%s)", y, c->vars[i].name),
                 arena_printf(&c->arena, "\\mathrm{d}%s", tex_partial(c, 1, i, i)), c->hvps[i]);
  }
  if (a->jacobian && !second_jacobian(c))
    return false;
  for (int j = 0; a->jacobian && j < n; j++) {
    if (!c->vars[j].wrt)
      continue;
    if (c->jacs[j]) {
      formula_line(&l, arena_printf(&c->arena, "d%s/d%s", y, c->vars[j].name),
                   tex_partial(c, 1, j, j), c->jacs[j]);
      continue;
    }
    // A matrix variable: its Jacobian is a matrix only in vec layout.
    Node *t;
    if (!diff_tangents(c, &c->out, 1, j, &t))
      return false;
    comment_line(&l, "d%s/d%s is not a matrix formula: %s's tangent along d%s alone is", y,
                 c->vars[j].name, y, c->vars[j].name);
    formula_line(&l, arena_printf(&c->arena, "d%s", y),
                 arena_printf(&c->arena, "\\mathrm{d}%s", y), t);
  }
  return true;
}

static int cmd_diff(const Args *a) {
  bool latex = a->latex, standalone = a->standalone;
  bool second = a->jvp || a->hvp || a->hessian || a->jacobian;
  if (standalone && !latex)
    return fail("diff: --standalone goes with --latex");
  if (a->jvp + a->hvp + a->hessian + a->jacobian > 1)
    return fail("diff: give one of --jvp, --hvp, --hessian and --jacobian");
  if (a->dump && !dump_ok(a->dump))
    return 1;
  Front fr;
  Ctx *c = &fr.c;
  bool ok = front_file(&fr, a, a->dump);
  if (ok && a->src && !latex)
    fputs(a->src, stdout);  // the declarations -e inferred, and the expression
  if (ok && second) {
    if (standalone)
      puts("\\documentclass{article}\n\\usepackage{amsmath,amssymb}\n\\begin{document}\n"
           "\\begin{align*}");
    ok = print_second(c, a);
    if (!ok && c->failed)
      report(&fr.err);
    if (standalone)
      puts("\n\\end{align*}\n\\end{document}");
    front_free(&fr);
    return ok ? 0 : 1;
  }
  if (ok && latex)
    print_latex_diff(c, standalone);
  for (int i = 0; ok && !latex && i < c->nvars; i++)
    if (c->vars[i].wrt) {
      char *g = print_str(c, c->grads[i]);
      printf("d%s/d%s = %s\n", c->outname, c->vars[i].name, g ? g : "?");
      if (g && strlen(g) > MD_MAX_PRINT)
        fprintf(stderr, "matdiff: note: d%s/d%s is longer than %d bytes written out and was cut; "
                "'matdiff graph --grad' shows it whole\n", c->outname, c->vars[i].name, MD_MAX_PRINT);
    }
  front_free(&fr);
  return ok ? 0 : 1;
}

static const char graph_help[] =
    "usage: matdiff graph FILE|-e EXPR [--wrt NAMES] [--grad]\n"
    "Print the expression DAG as Graphviz dot (render with: dot -Tsvg), with --grad\n"
    "also the gradients' adjoint DAG. Nodes show their operation and shape; a\n"
    "shared node is drawn once.\n";

static int cmd_graph(const Args *a) {
  Front fr;
  bool ok = front_file(&fr, a, NULL);
  if (ok) {
    Buf b = {0};
    graph_dot(&fr.c, &b, a->grad);
    ok = !b.oom;
    if (ok)
      fputs(b.s, stdout);
    else
      fail("out of memory");
    buf_free(&b);
  }
  front_free(&fr);
  return ok ? 0 : 1;
}

static const char compile_help[] =
    "usage: matdiff compile FILE|-e EXPR [--wrt NAMES] [-o OUT] [--name P] [--lang c|numpy]\n"
    "                       [--standalone] [--float] [--first-only]\n"
    "Write C99 for the value, P(...), and the gradients, P_grad(...), which ADDS\n"
    "each gradient into its buffer (NULL skips it). P defaults to FILE's base name;\n"
    "a name C or its library has (exp, printf, main) is an error.\n"
    "  --standalone  inline the kernels as plain loops: the file needs only libm\n"
    "  --float       single precision (runtime-linked: the runtime's _f kernels)\n"
    "  --lang numpy  a Python module instead, NumPy only: P(inputs) returns the value,\n"
    "                P_grad(inputs) (value, {input: gradient}); --lang c is the default\n"
    "The file (C or NumPy) also has the second order: P_jvp, P_hvp and P_hessian (a\n"
    "scalar output) or P_jacobian (a matrix one); see its header comment and README.\n"
    "  --first-only  leave the second-order functions out (--second: keep them, the default)\n";

// A C identifier from a file's base name: seed.expr -> seed.
static char *default_name(const char *path) {
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  size_t n = strcspn(base, ".");
  char *s = malloc(n + 2);
  if (!s)
    return NULL;
  size_t k = 0;
  if (n == 0 || (base[0] >= '0' && base[0] <= '9'))
    s[k++] = 'f';
  for (size_t i = 0; i < n; i++) {
    char ch = base[i];
    bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
    s[k++] = ok ? ch : '_';
  }
  s[k] = '\0';
  return s;
}

static bool is_ident(const char *s) {
  if (!*s || (*s >= '0' && *s <= '9'))
    return false;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
          *s == '_'))
      return false;
  return true;
}

// Are paths A and B one file (the same device and inode, whatever their
// names: a link, "./x", a symbolic link)? false if either is not there.
static bool same_file(const char *a, const char *b) {
  struct stat sa, sb;
  return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static int cmd_compile(const Args *a) {
  const char *file = a->file, *out = a->out, *name = a->name;
  if (name && !is_ident(name))
    return fail("--name '%s' is not a C identifier", name);
  bool numpy = a->lang && !strcmp(a->lang, "numpy");
  if (a->lang && !numpy && strcmp(a->lang, "c"))
    return fail("compile: --lang takes c or numpy, not '%s'", a->lang);
  if (numpy && (a->standalone || a->flt))
    return fail("compile: --%s is for C; --lang numpy computes in float64 with NumPy",
                a->standalone ? "standalone" : "float");
  if (out && file && same_file(file, out))
    return fail("compile: -o '%s' is the input file '%s'; the %s would replace it", out, file,
                numpy ? "module" : "C");
  Front fr;
  if (!front_file(&fr, a, NULL)) {
    front_free(&fr);
    return 1;
  }
  char *defname = name ? NULL : default_name(a->expr ? fr.c.outname : file);
  Buf code = {0};
  EmitOpts o = {.name = name ? name : defname, .standalone = a->standalone, .flt = a->flt,
                .second = !a->first || a->second};
  int rc = 0;
  if (!o.name)
    rc = fail("out of memory");
  else if (numpy && !emit_numpy(&fr.c, o.name, o.second, &code))
    rc = report(&fr.err);
  else if (!numpy && !emit_c(&fr.c, &o, &code))
    rc = report(&fr.err);  // a function name C has, or out of memory
  else if (!out)
    fputs(code.s, stdout);
  else {
    FILE *f = fopen(out, "w");
    if (!f || fputs(code.s, f) < 0 || fclose(f) != 0)
      rc = fail("cannot write %s: %s", out, strerror(errno));
  }
  buf_free(&code);
  front_free(&fr);
  free(defname);
  return rc;
}

/* ---- config ------------------------------------------------------------- */

static const char config_help[] =
    "usage: matdiff config --cflags | --libs | --jit-libs\n"
    "  --cflags    flags to compile C that includes matdiff.h or matdiff_rt.h\n"
    "  --libs      libraries for C emitted by 'matdiff compile' (the runtime)\n"
    "  --jit-libs  libraries for programs that call md_compile (the JIT)\n"
    "Installed as PREFIX/bin/matdiff, the paths are PREFIX/include and PREFIX/lib;\n"
    "run from a source tree's build/ (or build/san/...), they are that tree's\n"
    "compiler/ and runtime/, and the directory that holds the binary.\n";

// The directory holding the running binary (build/), and the source tree
// above it.
static bool self_dir(char *dir, size_t n) {
  ssize_t k = readlink("/proc/self/exe", dir, n - 1);
  if (k <= 0)
    return false;
  dir[k] = '\0';
  char *slash = strrchr(dir, '/');
  if (!slash)
    return false;
  *slash = '\0';
  return true;
}

static int cmd_config(const Args *a) {
  char dir[PATH_MAX], root[PATH_MAX + 8], probe[PATH_MAX + 32];
  char cflags[2 * PATH_MAX + 64], libdir[PATH_MAX + 16];
  if (!self_dir(dir, sizeof dir))
    return fail("cannot find where matdiff is installed");
  // Installed by `make install`: PREFIX/bin/matdiff, the headers in
  // PREFIX/include, the libraries in PREFIX/lib. In a source tree:
  // build/matdiff (or build/san/, build/noblas/...) with the libraries next
  // to it, and the headers in compiler/ and runtime/ of the nearest
  // directory above that has compiler/matdiff.h.
  strcpy(root, dir);
  char *slash = strrchr(root, '/');
  if (slash)
    *slash = '\0';
  snprintf(probe, sizeof probe, "%s/include/matdiff.h", root);
  if (access(probe, R_OK) == 0) {
    snprintf(cflags, sizeof cflags, "-I%s/include", root);
    snprintf(libdir, sizeof libdir, "%s/lib", root);
  } else {
    bool found = false;
    for (int up = 0; up < 3 && slash && !found; up++) {
      snprintf(probe, sizeof probe, "%s/compiler/matdiff.h", root);
      found = access(probe, R_OK) == 0;
      if (!found && (slash = strrchr(root, '/')))
        *slash = '\0';
    }
    if (!found)  // the layout build/ has always had
      snprintf(root, sizeof root, "%s/..", dir);
    snprintf(cflags, sizeof cflags, "-I%s/compiler -I%s/runtime", root, root);
    snprintf(libdir, sizeof libdir, "%s", dir);
  }
  if (!a->nwords)
    return fail("config needs an option\n%s", config_help);
  for (int i = 0; i < a->nwords; i++) {
    if (!strcmp(a->words[i], "--cflags"))
      printf("%s\n", cflags);
    else if (!strcmp(a->words[i], "--libs"))
      printf("-L%s -lmatdiff_rt %s -lm%s%s\n", libdir, MD_BLAS_LIBS, *MD_SAN_LIBS ? " " : "",
             MD_SAN_LIBS);
    else
      printf("-L%s -lmatdiff -lmatdiff_rt -ltcc %s -ldl -lm -lpthread%s%s\n", libdir, MD_BLAS_LIBS,
             *MD_SAN_LIBS ? " " : "", MD_SAN_LIBS);
  }
  return 0;
}

/* ---- eval and check: inputs -------------------------------------------- */

typedef struct Inputs {
  md_function *f;
  const char *file;  /* its source file, for messages */
  int n, nd;
  long *dims;        /* -1 while unbound */
  char **dimfrom;    /* what bound each size, for messages (malloc'd) */
  double **data;
  bool *given;
  double **dir;      /* eval --jvp/--hvp: each wrt input's direction, dx=PATH, or NULL */
} Inputs;

static void inputs_free(Inputs *in) {
  for (int i = 0; i < in->n; i++)
    free(in->data ? in->data[i] : NULL);
  free(in->data);
  free(in->given);
  for (int i = 0; in->dir && i < in->n; i++)
    free(in->dir[i]);
  free(in->dir);
  free(in->dims);
  for (int d = 0; in->dimfrom && d < in->nd; d++)
    free(in->dimfrom[d]);
  free(in->dimfrom);
}

static bool inputs_init(Inputs *in, md_function *f, const char *file) {
  memset(in, 0, sizeof *in);
  in->f = f;
  in->file = file;
  in->n = md_num_inputs(f);
  in->nd = md_num_dims(f);
  in->dims = malloc(sizeof *in->dims * (size_t)(in->nd + 1));
  in->dimfrom = calloc((size_t)in->nd + 1, sizeof *in->dimfrom);
  in->data = calloc((size_t)in->n + 1, sizeof *in->data);
  in->given = calloc((size_t)in->n + 1, sizeof *in->given);
  in->dir = calloc((size_t)in->n + 1, sizeof *in->dir);
  if (!in->dims || !in->dimfrom || !in->data || !in->given || !in->dir)
    return false;
  for (int i = 0; i < in->nd; i++)
    in->dims[i] = -1;
  return true;
}

static int find_dim(Inputs *in, const char *name) {
  for (int i = 0; i < in->nd; i++)
    if (!strcmp(md_dim_name(in->f, i), name))
      return i;
  return -1;
}

static int find_input(Inputs *in, const char *name) {
  for (int i = 0; i < in->n; i++)
    if (!strcmp(md_input_name(in->f, i), name))
      return i;
  return -1;
}

// A size is V, by FROM: the symbolic size SYM, or (SYM < 0) the literal LIT.
static bool bind(Inputs *in, int sym, long lit, long v, const char *from) {
  if (sym < 0) {
    if (lit != v) {
      fail("%s has %ld where %ld is declared", from, v, lit);
      return false;
    }
    return true;
  }
  if (in->dims[sym] >= 0 && in->dims[sym] != v) {
    fail("size %s is %ld from %s but %ld from %s", md_dim_name(in->f, sym), in->dims[sym],
         in->dimfrom[sym], v, from);
    return false;
  }
  char *copy = strdup(from);
  if (!copy) {
    fail("out of memory");
    return false;
  }
  free(in->dimfrom[sym]);
  in->dims[sym] = v;
  in->dimfrom[sym] = copy;
  return true;
}

// NAME=PATH: read it and bind the sizes its shape gives.
static bool load_input(Inputs *in, const char *arg) {
  const char *eq = strchr(arg, '=');
  char name[256];
  size_t n = (size_t)(eq - arg);
  if (n >= sizeof name) {
    fail("input name too long in '%s'", arg);
    return false;
  }
  memcpy(name, arg, n);
  name[n] = '\0';
  int i = find_input(in, name);
  // Else the direction of a wrt input, as the formulas name it: dx=PATH.
  bool dir = false;
  for (int k = 0; i < 0 && k < in->n; k++)
    if (md_input_is_wrt(in->f, k) && md_direction_name(in->f, k) &&
        !strcmp(md_direction_name(in->f, k), name))
      i = k, dir = true;
  if (i < 0) {
    fail("'%s' is not an input of %s, nor the direction of one", name, in->file);
    return false;
  }
  if (dir ? in->dir[i] != NULL : in->given[i]) {
    fail("%s '%s' is given twice", dir ? "direction" : "input", name);
    return false;
  }
  const char *path = eq + 1;
  io_matrix m;
  md_error err;
  // A .npy file is known by its magic bytes, whatever its name.
  if ((npy_is_npy(path) ? npy_read(path, &m, &err) : io_read_matrix(path, &m, &err)) != 0) {
    report(&err);
    return false;
  }
  // A vector may be written on one line.
  if (md_input_is_vector(in->f, i) && m.rows == 1) {
    m.rows = m.cols;
    m.cols = 1;
  }
  char what[300];
  snprintf(what, sizeof what, "%s (%s, %ld×%ld)", path, name, m.rows, m.cols);
  bool ok = bind(in, md_input_dim(in->f, i, 0), md_input_rows(in->f, i, NULL), m.rows, what) &&
            bind(in, md_input_dim(in->f, i, 1), md_input_cols(in->f, i, NULL), m.cols, what);
  if (ok && md_check_input(in->f, i, m.data, m.rows, m.cols, &err) != 0) {
    fail("%s: %s", path, err.message);
    ok = false;
  }
  if (!ok) {
    free(m.data);
    return false;
  }
  if (dir)
    in->dir[i] = m.data;
  else {
    in->data[i] = m.data;
    in->given[i] = true;
  }
  return true;
}

static bool parse_dim(Inputs *in, const char *arg) {
  const char *eq = strchr(arg, '=');
  char name[256];
  if (!eq || (size_t)(eq - arg) >= sizeof name) {
    fail("--dim takes D=N, not '%s'", arg);
    return false;
  }
  memcpy(name, arg, (size_t)(eq - arg));
  name[eq - arg] = '\0';
  int d = find_dim(in, name);
  if (d < 0) {
    fail("--dim %s: '%s' is not a size of %s", arg, name, in->file);
    return false;
  }
  char *end;
  errno = 0;
  long v = strtol(eq + 1, &end, 10);
  if (errno || *end || end == eq + 1 || v < 1 || v > 100000000) {
    fail("--dim %s: the size must be a whole number from 1 to 100000000", arg);
    return false;
  }
  return bind(in, d, 0, v, "--dim");
}

// Sizes of input I under the bound dims; false if its element count
// overflows.
static bool input_len(Inputs *in, int i, long *len) {
  long r = md_input_rows(in->f, i, in->dims), c = md_input_cols(in->f, i, in->dims);
  if (r < 1 || c < 1 || r > LONG_MAX / 8 / c)
    return false;
  *len = r * c;
  return true;
}

// Inputs not given come from the seeded generator, standard normal, in
// declaration order, so the same seed gives the same numbers. A symmetric
// input is symmetric, a posdef one positive definite.
static bool fill_random(Inputs *in, md_rng *rng) {
  for (int d = 0; d < in->nd; d++)
    if (in->dims[d] < 0) {
      fail("size %s is not bound: give an input that has it, or --dim %s=N",
           md_dim_name(in->f, d), md_dim_name(in->f, d));
      return false;
    }
  for (int i = 0; i < in->n; i++) {
    if (in->given[i])
      continue;
    long len;
    if (!input_len(in, i, &len) || !(in->data[i] = malloc(sizeof(double) * (size_t)len))) {
      fail("input %s is too large", md_input_name(in->f, i));
      return false;
    }
    for (long k = 0; k < len; k++)
      in->data[i][k] = md_rng_normal(rng);
    if (md_input_is_symmetric(in->f, i))
      md_symmetrize(in->data[i], md_input_rows(in->f, i, in->dims), md_input_is_posdef(in->f, i));
  }
  return true;
}

static md_function *compile_file(const Args *a) {
  const char *path = a->file;
  md_error err;
  long len;
  char *src = read_source(a, &len, &err);
  if (!src) {
    report(&err);
    return NULL;
  }
  md_function *f = md_compile(src, path, &err);
  free(src);
  if (!f)
    report(&err);
  return f;
}


/* ---- eval --------------------------------------------------------------- */

static const char eval_help[] =
    "usage: matdiff eval FILE|-e EXPR [--wrt NAMES] [NAME=PATH ...] [--dim D=N ...] [--seed S] [--grad]\n"
    "                   [--jvp dx=PATH ...] [--hvp dx=PATH ...] [--hessian] [--jacobian]\n"
    "                   [--out DIR [--format txt|npy]] [--strict]\n"
    "Evaluate FILE's output, and with --grad its gradients, through the JIT.\n"
    "  NAME=PATH     input NAME from a text matrix (one row per line) or a NumPy .npy\n"
    "                file (float64 or float32, C or Fortran order, 0-d, 1-d or 2-d)\n"
    "  --dim D=N     bind the symbolic size D\n"
    "  --seed S      seed for the standard-normal inputs not given (default 1)\n"
    "  --grad        also print each gradient\n"
    "  --jvp dx=PATH the output's directional derivative along the directions given\n"
    "                (dx for x, as `diff --jvp` names them; those not given are 0)\n"
    "  --hvp dx=PATH for a scalar output, each gradient's derivative along them: H*v\n"
    "  --hessian     for a scalar output, the Hessian's blocks d2y/dx2, d2y/dxdb (vec\n"
    "                layout: a k×m variable is km rows, row by row)\n"
    "  --jacobian    for a matrix output F, dF/dx: a row per element of F\n"
    "  --out DIR     also write DIR/OUT.txt and DIR/dOUT_dVAR.txt, 17 digits; and\n"
    "                jvp_y, hvp_x, d2y_dx2, d2y_dxdb, J_F_x\n"
    "  --format npy  write float64 .npy files there instead\n"
    "A result that is not finite (nan, inf) is printed, with a warning that names\n"
    "the first operation whose value is not finite; eval exits 0, or with --strict 3.\n"
    "  --strict      exit 3 when a result is not finite\n";

// printf into a new string; NULL, with the error printed, if out of memory.
__attribute__((format(printf, 1, 2)))
static char *str_printf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
  if (!s) {
    fail("out of memory");
    return NULL;
  }
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return s;
}

// DIR and every directory above it that is missing, as mkdir -p makes them.
static bool make_dirs(const char *dir) {
  char *p = str_printf("%s", dir);
  if (!p)
    return false;
  bool ok = true;
  // Each prefix that ends before a '/' (past a leading one), then the whole.
  for (char *q = p + (*p == '/'); ok; q++) {
    if (*q && *q != '/')
      continue;
    char saved = *q;
    *q = '\0';
    struct stat st;
    if (mkdir(p, 0777) != 0 && (errno != EEXIST || stat(p, &st) != 0 || !S_ISDIR(st.st_mode))) {
      fail("cannot create the directory '%s': %s", p,
           errno == EEXIST ? "a file is in the way" : strerror(errno));
      ok = false;
    }
    *q = saved;
    if (!saved)
      break;
  }
  free(p);
  return ok;
}

// DIR/NAME.txt or .npy, built to its full length: a name cut to fit a
// buffer could have made two gradients' files one. A path the system
// cannot open is said so, without the directory, which may be most of it.
static bool write_out(const char *dir, const char *name, const double *x, long r, long c,
                      bool npy, bool vector) {
  const char *ext = npy ? "npy" : "txt";
  char *path = str_printf("%s/%s.%s", dir, name, ext);
  if (!path)
    return false;
  if (strlen(path) >= PATH_MAX) {
    fail("--out: the path of %s.%s is %zu bytes long, longer than the system allows (%d)", name,
         ext, strlen(path), PATH_MAX - 1);
    free(path);
    return false;
  }
  md_error err;
  bool ok = (npy ? npy_write(path, x, r, c, vector, &err)
                 : io_write_matrix(path, x, r, c, &err)) == 0;
  if (!ok)
    report(&err);
  free(path);
  return ok;
}

// Does any of the N numbers at X hold a NaN or an infinity?
static bool any_nonfinite(const double *x, long n) {
  for (long k = 0; x && k < n; k++)
    if (!isfinite(x[k]))
      return true;
  return false;
}

// WHAT (the output, or a gradient: GRAD) is not finite: say so on stderr,
// naming the first operation whose value is not finite. md_first_nonfinite
// finds it on the tape, which costs an evaluation: only a result that is
// not finite pays it.
static void warn_nonfinite(Inputs *in, const char *what, bool grad) {
  char op[200];
  double bad = 0;
  md_error err;
  int found = md_first_nonfinite(in->f, in->dims, (const double *const *)in->data, grad, op,
                                 sizeof op, &bad, &err);
  if (found > 0)
    fprintf(stderr, "matdiff: warning: %s is not finite: %s is the first operation computed "
            "that is not (%g)\n", what, op, bad);
  else if (found == 0)
    fprintf(stderr, "matdiff: warning: %s is not finite, but every operation is when computed "
            "one at a time: the compiled code's order of operations made it\n", what);
  else
    fprintf(stderr, "matdiff: warning: %s is not finite (finding where failed: %s)\n", what,
            err.message);
}

static int run_eval(Inputs *in, bool grad, const char *out, bool npy, bool strict) {
  md_function *f = in->f;
  const char *y = md_output_name(f);
  long yr = md_output_rows(f, in->dims), yc = md_output_cols(f, in->dims);
  md_error err;
  double **g = calloc((size_t)in->n + 1, sizeof *g);
  double *value = calloc((size_t)(yr * yc), sizeof *value);
  int rc = g && value ? 0 : fail("out of memory");
  for (int i = 0; rc == 0 && grad && i < in->n; i++) {
    long len;
    if (md_input_is_wrt(f, i) && (!input_len(in, i, &len) || !(g[i] = calloc((size_t)len, sizeof(double)))))
      rc = fail("out of memory");
  }
  if (rc == 0 && (grad ? md_grad(f, in->dims, (const double *const *)in->data, value, g, &err)
                       : md_eval(f, in->dims, (const double *const *)in->data, value, &err)) != 0)
    rc = report(&err);
  if (rc == 0 && out && !make_dirs(out))
    rc = 1;
  if (rc == 0) {
    io_print_matrix(stdout, y, value, yr, yc);
    if (out && !write_out(out, y, value, yr, yc, npy, false))
      rc = 1;
  }
  if (rc == 0 && grad && yr * yc > 1)
    printf("# %s is %ld×%ld, not a scalar: each gradient below is the vector-Jacobian\n"
           "# product G'*J with a seed G of all ones, the gradient of sum(%s)\n", y, yr, yc, y);
  for (int i = 0; rc == 0 && grad && i < in->n; i++) {
    if (!g[i])
      continue;
    long r = md_input_rows(f, i, in->dims), c = md_input_cols(f, i, in->dims);
    const char *x = md_input_name(f, i);
    char *label = str_printf("d%s/d%s", y, x), *file = label ? str_printf("d%s_d%s", y, x) : NULL;
    if (!file)
      rc = 1;
    else
      io_print_matrix(stdout, label, g[i], r, c);
    if (file && out && !write_out(out, file, g[i], r, c, npy, md_input_is_vector(f, i)))
      rc = 1;
    free(label);
    free(file);
  }
  // Only the first result that is not finite is named: one cause makes many.
  bool warned = false;
  if (rc == 0 && any_nonfinite(value, size_mul(yr, yc))) {
    warn_nonfinite(in, y, false);
    warned = true;
  }
  for (int i = 0; rc == 0 && !warned && grad && i < in->n; i++) {
    long len;
    if (g[i] && input_len(in, i, &len) && any_nonfinite(g[i], len)) {
      char *what = str_printf("d%s/d%s", y, md_input_name(f, i));
      warn_nonfinite(in, what ? what : "a gradient", true);
      free(what);
      warned = true;
    }
  }
  if (warned && strict)
    rc = 3;
  for (int i = 0; g && i < in->n; i++)
    free(g[i]);
  free(g);
  free(value);
  return rc;
}

// LABEL's matrix X (R x C) printed, and written to DIR/FILE when DIR is set.
static bool show(const char *label, const char *file, const double *x, long r, long c,
                 const char *dir, bool npy, bool vector) {
  if (!label || !file)
    return false;
  io_print_matrix(stdout, label, x, r, c);
  return !dir || write_out(dir, file, x, r, c, npy, vector);
}

// What eval's second-order options need, before anything is computed.
static bool second_ok(Inputs *in, const Args *a) {
  md_function *f = in->f;
  int n = in->n;
  bool any = false;
  const char *first = NULL;
  for (int i = 0; i < n; i++) {
    any |= in->dir[i] != NULL;
    if (!first && md_input_is_wrt(f, i))
      first = md_direction_name(f, i);
  }
  if ((a->jvp || a->hvp) && !any)
    return !fail("eval: --jvp and --hvp need a direction: give %s=PATH (the direction of a wrt "
                 "input is d and its name)", first ? first : "dx");
  bool scalar = md_output_rows(f, NULL) == 1 && md_output_cols(f, NULL) == 1;
  if (a->jacobian && scalar)
    return !fail("eval: %s is a scalar: its Jacobian is its gradient, --grad", md_output_name(f));
  if ((a->hvp || a->hessian) && !scalar)
    return !fail("eval: --hvp and --hessian need a scalar output; %s is not (--jvp and --jacobian "
                 "take any)", md_output_name(f));
  return true;
}

// eval's second order (matdiff.h's md_jvp ...): the JVP and HVPs along the
// directions dx=PATH given (the others zero), the Hessian's blocks, the
// Jacobian's column blocks, each printed and written to DIR.
static int run_second(Inputs *in, const Args *a, const char *dir, bool npy) {
  md_function *f = in->f;
  const char *y = md_output_name(f);
  const double *const *x = (const double *const *)in->data, *const *d = (const double *const *)in->dir;
  long yr = md_output_rows(f, in->dims), yc = md_output_cols(f, in->dims), N = md_wrt_size(f, in->dims);
  int n = in->n, rc = 0;
  long big = a->hessian ? size_mul(N, N) : a->jacobian ? size_mul(yr * yc, N) : 1;
  double *t = calloc((size_t)(yr * yc), sizeof *t), *m = big > 0 ? calloc((size_t)big, sizeof *m) : NULL;
  double **hv = calloc((size_t)n + 1, sizeof *hv);
  long *at = calloc((size_t)n + 1, sizeof *at), *len = calloc((size_t)n + 1, sizeof *len);
  if (!t || !m || !hv || !at || !len)
    rc = fail("out of memory");
  for (int i = 0, k = 0; rc == 0 && i < n; i++) {
    len[i] = md_input_rows(f, i, in->dims) * md_input_cols(f, i, in->dims);
    at[i] = k;
    k += md_input_is_wrt(f, i) ? (int)len[i] : 0;
    if (md_input_is_wrt(f, i) && a->hvp && !(hv[i] = calloc((size_t)len[i], sizeof(double))))
      rc = fail("out of memory");
  }
  md_error err;
  if (rc == 0 && a->jvp) {
    if (md_jvp(f, in->dims, x, d, t, &err))
      rc = report(&err);
    else {
      char *label = str_printf("d%s", y), *file = str_printf("jvp_%s", y);
      rc = show(label, file, t, yr, yc, dir, npy, false) ? 0 : 1;
      free(label), free(file);
    }
  }
  if (rc == 0 && a->hvp && md_hvp(f, in->dims, x, d, hv, &err))
    rc = report(&err);
  for (int i = 0; rc == 0 && a->hvp && i < n; i++) {
    if (!hv[i])
      continue;
    const char *v = md_input_name(f, i);
    char *label = str_printf("d(d%s/d%s)", y, v), *file = str_printf("hvp_%s", v);
    rc = show(label, file, hv[i], md_input_rows(f, i, in->dims), md_input_cols(f, i, in->dims), dir,
              npy, md_input_is_vector(f, i)) ? 0 : 1;
    free(label), free(file);
  }
  if (rc == 0 && (a->hessian || a->jacobian) &&
      (a->hessian ? md_hessian(f, in->dims, x, m, &err) : md_jacobian(f, in->dims, x, m, &err)))
    rc = report(&err);
  // The blocks: rows of input I (or the output's elements), columns of J.
  for (int i = 0; rc == 0 && (a->hessian || a->jacobian) && i < n; i++) {
    for (int j = a->hessian ? i : 0; rc == 0 && j < n; j++) {
      if (!md_input_is_wrt(f, j) || (a->hessian && !md_input_is_wrt(f, i)) || (a->jacobian && i))
        continue;
      long rows = a->hessian ? len[i] : yr * yc, r0 = a->hessian ? at[i] : 0;
      double *b = malloc(sizeof *b * (size_t)(rows * len[j]));
      if (!b) {
        rc = fail("out of memory");
        break;
      }
      for (long r = 0; r < rows; r++)
        memcpy(b + r * len[j], m + (r0 + r) * N + at[j], sizeof *b * (size_t)len[j]);
      const char *u = md_input_name(f, i), *v = md_input_name(f, j);
      char *label = a->hessian ? i == j ? str_printf("d2%s/d%s2", y, u) : str_printf("d2%s/d%sd%s", y, u, v)
                               : str_printf("d%s/d%s", y, v);
      char *file = a->hessian ? i == j ? str_printf("d2%s_d%s2", y, u) : str_printf("d2%s_d%sd%s", y, u, v)
                              : str_printf("J_%s_%s", y, v);
      rc = show(label, file, b, rows, len[j], dir, npy, false) ? 0 : 1;
      free(label), free(file), free(b);
    }
  }
  for (int i = 0; hv && i < n; i++)
    free(hv[i]);
  free(hv), free(t), free(m), free(at), free(len);
  return rc;
}

// Apply the --dim and NAME=PATH of A, in their order, to IN.
static bool apply_binds(const Args *a, Inputs *in) {
  for (int i = 0; i < a->nbinds; i++)
    if (!(a->binds[i].dim ? parse_dim(in, a->binds[i].text) : load_input(in, a->binds[i].text)))
      return false;
  return true;
}

static int cmd_eval(const Args *a) {
  bool npy = a->format && !strcmp(a->format, "npy");
  if (a->format && !npy && strcmp(a->format, "txt"))
    return fail("eval: --format takes txt or npy, not '%s'", a->format);
  md_function *f = compile_file(a);
  if (!f)
    return 1;
  Inputs in;
  int rc = inputs_init(&in, f, a->file) ? 0 : fail("out of memory");
  if (rc == 0 && !apply_binds(a, &in))
    rc = 1;
  md_rng rng;
  md_rng_seed(&rng, a->seed);
  bool second = a->jvp || a->hvp || a->hessian || a->jacobian;
  if (rc == 0 && second && !second_ok(&in, a))
    rc = 1;
  if (rc == 0)
    rc = fill_random(&in, &rng) ? run_eval(&in, a->grad, a->out, npy, a->strict) : 1;
  if (rc == 0 && second)
    rc = run_second(&in, a, a->out, npy);
  inputs_free(&in);
  md_free(f);
  return rc;
}

/* ---- check -------------------------------------------------------------- */

static const char check_help[] =
    "usage: matdiff check FILE|-e EXPR [--wrt NAMES] [--seed S] [--trials T] [--dim D=N ...]\n"
    "                    [--order 1|2]\n"
    "Evaluate FILE at random inputs and compare the JIT-compiled symbolic gradient\n"
    "with the runtime's tape and with central finite differences. Prints the\n"
    "largest relative disagreement for each variable; exits 1 if any is too large.\n"
    "  --order 2  also the emitted JVP, HVPs and Hessian (or Jacobian): against the\n"
    "             tape's forward mode and forward-over-reverse, and the HVPs against\n"
    "             central differences of the gradient, along random directions\n";

// One trial of check --order 2 at IN's sizes: inputs standard normal, or
// where F is not finite there smaller, then positive, then with square
// inputs' size added to their diagonals (as md_check draws them);
// directions standard normal. The worst disagreements go into W (per input:
// HVP tape, HVP differences, Hessian rows, Jacobian columns; then the JVP).
// 0 if all agree, 1 if not, -1 on an error (printed).
static int check_second_trial(md_function *f, Inputs *in, md_rng *rng, double *w) {
  int n = in->n;
  long outlen = md_output_rows(f, in->dims) * md_output_cols(f, in->dims);
  double *out = malloc(sizeof *out * (size_t)(outlen > 0 ? outlen : 1));
  double **dir = calloc((size_t)n + 1, sizeof *dir);
  int rc = out && dir ? 0 : -1;
  for (int i = 0; rc == 0 && i < n; i++) {
    long len;
    if (!input_len(in, i, &len) || !(in->data[i] = malloc(sizeof(double) * (size_t)len)) ||
        !(dir[i] = malloc(sizeof(double) * (size_t)len)))
      rc = -1;
  }
  if (rc)
    fail("out of memory");
  md_error err;
  bool finite = false;
  for (int how = 0; rc == 0 && how < 4 && !finite; how++) {
    for (int i = 0; i < n; i++) {
      long r = md_input_rows(f, i, in->dims), c = md_input_cols(f, i, in->dims);
      for (long k = 0; k < r * c; k++) {
        double u = md_rng_uniform(rng);
        in->data[i][k] = how == 0 ? md_rng_normal(rng) : how == 1 ? u - 0.5 : 0.1 + 0.8 * u;
      }
      for (long k = 0; how == 3 && r == c && k < r; k++)
        in->data[i][k * c + k] += (double)r;
    }
    finite = md_eval(f, in->dims, (const double *const *)in->data, out, &err) == 0;
    for (long k = 0; finite && k < outlen; k++)
      finite = isfinite(out[k]);
  }
  for (int i = 0; rc == 0 && i < n; i++)
    for (long k = 0; k < md_input_rows(f, i, in->dims) * md_input_cols(f, i, in->dims); k++)
      dir[i][k] = md_rng_normal(rng);
  md_check2_result r;
  if (rc == 0 && md_check2(f, in->dims, (const double *const *)in->data, (const double *const *)dir,
                           1, &r, &err)) {
    rc = -1;
    report(&err);
  }
  if (rc == 0) {
    for (int i = 0; i < n; i++) {
      double v[4] = {r.hvp_tape[i], r.hvp_fd[i], r.hessian[i], r.jacobian[i]};
      for (int q = 0; q < 4; q++)
        w[q * n + i] = isnan(v[q]) || v[q] > w[q * n + i] ? v[q] : w[q * n + i];
    }
    w[4 * n] = isnan(r.jvp) || r.jvp > w[4 * n] ? r.jvp : w[4 * n];
    rc = r.ok ? 0 : 1;
  }
  md_check2_result_free(&r);
  for (int i = 0; dir && i < n; i++) {
    free(dir[i]);
    free(in->data[i]);
    in->data[i] = NULL;
  }
  free(dir);
  free(out);
  return rc;
}

static int cmd_check(const Args *a) {
  const char *file = a->file;
  unsigned long long seed = a->seed, trials = a->trials;
  md_function *f = compile_file(a);
  if (!f)
    return 1;
  int n = md_num_inputs(f);
  double *wt = calloc((size_t)n + 1, sizeof *wt), *wf = calloc((size_t)n + 1, sizeof *wf);
  double *w2 = calloc(4 * (size_t)n + 1, sizeof *w2);
  int rc = wt && wf && w2 ? 0 : fail("out of memory");
  md_rng rng;
  md_rng_seed(&rng, seed);
  for (unsigned long long k = 0; rc == 0 && k < trials; k++) {
    Inputs in;
    rc = inputs_init(&in, f, file) ? 0 : fail("out of memory");
    if (rc == 0 && !apply_binds(a, &in))
      rc = 1;
    // Free sizes get a random value from 1 to 6.
    for (int d = 0; rc == 0 && d < in.nd; d++)
      if (in.dims[d] < 0)
        in.dims[d] = 1 + (long)(md_rng_uniform(&rng) * 6);
    md_check_opts o = {.rng = &rng};
    md_check_result r;
    md_error err;
    int got = rc == 0 ? md_check(f, in.dims, &o, &r, &err) : -1;
    if (rc == 0 && (r.dist == MD_DIST_SMALL || r.dist == MD_DIST_POSITIVE))
      printf("  trial %llu: not finite at standard normal inputs; inputs %s\n", k + 1, r.dist_name);
    if (rc == 0 && got < 0)
      rc = report(&err);
    if (rc == 0 && !(r.value <= MD_CHECK_TOL_TAPE))
      printf("  value: JIT and tape differ by %.1e\n", r.value);
    for (int i = 0; rc == 0 && i < n; i++) {
      if (!md_input_is_wrt(f, i))
        continue;
      wt[i] = isnan(r.tape[i]) || r.tape[i] > wt[i] ? r.tape[i] : wt[i];
      wf[i] = isnan(r.fd[i]) || r.fd[i] > wf[i] ? r.fd[i] : wf[i];
    }
    if (rc == 0 && !r.ok)
      rc = 2;
    if (got == 0)
      md_check_result_free(&r);
    if ((rc == 0 || rc == 2) && a->order == 2) {
      int got2 = check_second_trial(f, &in, &rng, w2);
      rc = got2 < 0 ? 1 : got2 > 0 ? 2 : rc;
    }
    inputs_free(&in);
  }
  if (rc != 1) {
    bool scalar = md_output_rows(f, NULL) == 1 && md_output_cols(f, NULL) == 1;
    printf("check %s: %llu trial%s, seed %llu\n", file, trials, trials == 1 ? "" : "s", seed);
    for (int i = 0; i < n; i++)
      if (md_input_is_wrt(f, i))
        printf("  %sd%s/d%s: tape %.1e, finite differences %.1e\n", scalar ? "" : "G'*",
               md_output_name(f), md_input_name(f, i), wt[i], wf[i]);
    for (int i = 0; a->order == 2 && i < n; i++) {
      const char *y = md_output_name(f), *x = md_input_name(f, i);
      if (!md_input_is_wrt(f, i))
        continue;
      if (scalar)
        printf("  d(d%s/d%s): HVP tape %.1e, finite differences %.1e; Hessian rows tape %.1e\n", y,
               x, w2[i], w2[n + i], w2[2 * n + i]);
      else
        printf("  d%s/d%s: Jacobian columns tape %.1e\n", y, x, w2[3 * n + i]);
    }
    if (a->order == 2)
      printf("  d%s (JVP): tape %.1e\n", md_output_name(f), w2[4 * n]);
    printf(rc == 0 ? "ok: symbolic, tape and finite differences agree\n"
                   : "FAILED: the symbolic gradient disagrees (tolerances: tape %g, finite differences %g)\n",
           MD_CHECK_TOL_TAPE, MD_CHECK_TOL_FD);
  }
  free(w2);
  free(wt);
  free(wf);
  md_free(f);
  return rc ? 1 : 0;
}

/* ---- cost --------------------------------------------------------------- */

static const char cost_help[] =
    "usage: matdiff cost FILE|-e EXPR [--wrt NAMES] [--dim D=N ...]\n"
    "Count the arithmetic operations of the value and of the value with all its\n"
    "gradients, at the given sizes. Reverse mode promises the second is at most\n"
    "about 4 times the first. For a scalar output, also the Hessian-vector product\n"
    "(md_hvp along every direction), at most about 10 times the value.\n";

static int cmd_cost(const Args *a) {
  const char *file = a->file;
  md_function *f = compile_file(a);
  if (!f)
    return 1;
  Inputs in;
  int rc = inputs_init(&in, f, file) ? 0 : fail("out of memory");
  if (rc == 0 && !apply_binds(a, &in))
    rc = 1;
  for (int d = 0; rc == 0 && d < in.nd; d++)
    if (in.dims[d] < 0)
      rc = fail("size %s is not bound: give --dim %s=N", md_dim_name(f, d), md_dim_name(f, d));
  if (rc == 0) {
    double v = md_flops(f, in.dims, 0), g = md_flops(f, in.dims, 1);
    printf("%s: value %.6g operations, value and gradients %.6g (%.2f times the value)\n", file,
           v, g, v > 0 ? g / v : 0.0);
    // The HVP along every direction, where there is one (a scalar output).
    double h = md_flops(f, in.dims, MD_FLOPS_HVP);
    if (h >= 0)
      printf("%s: Hessian-vector product %.6g (%.2f times the value)\n", file, h, v > 0 ? h / v : 0.0);
  }
  inputs_free(&in);
  md_free(f);
  return rc;
}

/* ---- main --------------------------------------------------------------- */

static const char usage[] =
    "usage: matdiff VERB [ARGS]\n"
    "  diff FILE [--latex]       print the gradients as formulas (or as LaTeX)\n"
    "  graph FILE [--grad]       print the expression DAG as Graphviz dot\n"
    "  compile FILE [-o OUT.c]   write C (--lang numpy: NumPy) for the value and gradients\n"
    "  eval FILE [NAME=PATH...]  evaluate through the JIT (--grad for gradients)\n"
    "  check FILE                compare the gradients with the tape and finite differences\n"
    "  cost FILE --dim D=N ...   count the operations of the value and the gradients\n"
    "  config --cflags|--libs|--jit-libs\n"
    "  --version, --help; VERB --help for a verb's options\n"
    "Every verb that takes a FILE takes -e EXPR instead: a one-line expression, its\n"
    "names typed by their first letter (a-g scalars, h-z vectors, A-Z matrices) and\n"
    "its sizes inferred; --wrt NAMES picks the variables (default: all).\n";

static const Verb verbs[] = {
    {"diff", V_DIFF, true, cmd_diff, diff_help},
    {"compile", V_COMPILE, true, cmd_compile, compile_help},
    {"graph", V_GRAPH, true, cmd_graph, graph_help},
    {"eval", V_EVAL, true, cmd_eval, eval_help},
    {"check", V_CHECK, true, cmd_check, check_help},
    {"config", V_CONFIG, false, cmd_config, config_help},
    {"cost", V_COST, true, cmd_cost, cost_help},
};

int main(int argc, char **argv) {
  if (argc < 2)
    return fputs(usage, stderr), 1;
  if (!strcmp(argv[1], "--version"))
    return printf("matdiff %s\n", MATDIFF_VERSION), 0;
  if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
    return fputs(usage, stdout), 0;
  for (size_t i = 0; i < sizeof verbs / sizeof *verbs; i++) {
    if (strcmp(argv[1], verbs[i].name))
      continue;
    for (int k = 2; k < argc; k++)
      if (!strcmp(argv[k], "--help") || !strcmp(argv[k], "-h"))
        return fputs(verbs[i].help, stdout), 0;
    Args a;
    int rc = parse_args(&verbs[i], argc - 2, argv + 2, &a) ? verbs[i].run(&a) : 1;
    args_free(&a);
    return rc;
  }
  return fail("unknown verb '%s'\n%s", argv[1], usage);
}
