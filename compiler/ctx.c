/*
 * ctx.c - one compilation's state: its arena, its source and where its
 * first error goes. Only the first error is reported; every stage stops
 * at it.
 */
#include <stdarg.h>
#include <string.h>
#include "md.h"

void ctx_init(Ctx *c, const char *src, long len, const char *file, md_error *err) {
  memset(c, 0, sizeof *c);
  c->src = src;
  c->len = len;
  c->file = file ? file : "<input>";
  c->err = err;
  diag_clear(err);
}

void ctx_free(Ctx *c) { arena_free(&c->arena); }

bool ctx_error(Ctx *c, Loc loc, const char *fmt, ...) {
  if (!c->failed) {
    va_list ap;
    va_start(ap, fmt);
    diag_verror(c->err, c->file, c->src, c->len, loc, fmt, ap);
    va_end(ap);
  }
  c->failed = true;
  return false;
}

int ctx_new_dim(Ctx *c, char *name) {
  char **dims = arena_grow(&c->arena, c->dims, c->ndims, &c->dimcap, sizeof *dims);
  if (!dims || !names_put(&c->arena, &c->dimidx, name, c->ndims))
    return -1;
  dims[c->ndims] = name;
  c->dims = dims;
  return c->ndims++;
}
