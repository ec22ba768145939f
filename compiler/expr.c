/*
 * expr.c - one-line expressions, as matrixcalculus.org takes them:
 * "0.5*x'*A*x", with no declarations. A name is a scalar if it begins with
 * a-g, a vector if with h-z and a matrix if with A-Z, and its sizes are
 * inferred (infer.c). md_expr_source writes the program that says this in
 * the language, which md_compile and the CLI then take as they take a
 * file: the declarations the expression implies, the wrt line, the output.
 * Every error about the expression is found here, so that it points into
 * the expression as the user typed it.
 */
#include <stdlib.h>
#include <string.h>
#include "md.h"

static bool blank(char ch) { return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n'; }

// Mark the variables WRT names: names between commas or blanks. An empty
// list leaves them all marked, as without a wrt line.
static bool set_wrt(Ctx *c, const char *wrt, bool *given) {
  *given = false;
  for (const char *p = wrt; p && *p;) {
    if (blank(*p) || *p == ',') {
      p++;
      continue;
    }
    size_t n = strcspn(p, ", \t\r\n");
    char *name = arena_strndup(&c->arena, p, n);
    if (!name)
      return ctx_error(c, (Loc){-1, -1}, "out of memory");
    int v = names_get(&c->varidx, name);
    if (v < 0) {
      Buf vars = {0};
      for (int i = 0; i < c->nvars; i++)
        buf_printf(&vars, "%s%s", i == 0 ? "" : i == c->nvars - 1 ? " and " : ", ", c->vars[i].name);
      ctx_error(c, (Loc){-1, -1}, "'%s' in wrt is not a variable of the expression; %s %s",
                name, c->nvars == 1 ? "its variable is" : "its variables are", vars.s ? vars.s : "none");
      buf_free(&vars);
      return false;
    }
    if (!*given)
      for (int i = 0; i < c->nvars; i++)
        c->vars[i].wrt = false;
    *given = true;
    c->vars[v].wrt = true;
    p += n;
  }
  return true;
}

// The program: a declaration per variable in the order of first use, the
// wrt line if WRT named any, and the output.
static char *program(Ctx *c, bool wrt) {
  Buf b = {0};
  for (int i = 0; i < c->nvars; i++) {
    const Var *v = &c->vars[i];
    if (shape_is_scalar(v->shape))
      buf_printf(&b, "%s : scalar\n", v->name);
    else if (v->vector)
      buf_printf(&b, "%s : vector(%s)\n", v->name, dim_str(c, v->shape.r));
    else
      buf_printf(&b, "%s : matrix(%s, %s)\n", v->name, dim_str(c, v->shape.r), dim_str(c, v->shape.c));
  }
  for (int i = 0, n = 0; wrt && i < c->nvars; i++)
    if (c->vars[i].wrt)
      buf_printf(&b, "%s%s", n++ ? ", " : "wrt ", c->vars[i].name);
  if (wrt)
    buf_puts(&b, "\n");
  long from = 0, to = c->len;
  while (from < to && blank(c->src[from]))
    from++;
  while (to > from && blank(c->src[to - 1]))
    to--;
  buf_printf(&b, "%s = %.*s\n", c->outname, (int)(to - from), c->src + from);
  if (b.oom) {
    buf_free(&b);
    ctx_error(c, (Loc){-1, -1}, "out of memory");
    return NULL;
  }
  return b.s;
}

char *md_expr_source(const char *expr, const char *wrt, md_error *err) {
  diag_clear(err);
  if (!expr) {
    diag_plain(err, "no expression");
    return NULL;
  }
  Ctx c;
  ctx_init(&c, expr, (long)strlen(expr), "<expr>", err);
  c.implicit = true;
  char *out = NULL;
  bool given;
  if (parse_program(&c)) {
    // The output is f, or a name like it that the expression does not use.
    static const char *const f[] = {"f"};
    int counter = 0;
    c.stmts->name = infer_name(&c, f, 1, "f", &counter);
    if (!c.stmts->name)
      ctx_error(&c, (Loc){-1, -1}, "out of memory");
    else if (lower_program(&c) && set_wrt(&c, wrt, &given))
      out = program(&c, given);
  }
  ctx_free(&c);
  return out;
}
