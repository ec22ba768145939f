/*
 * diag.h - diagnostics in the GCC format, for every stage.
 *
 *   file:line:col: error: message
 *   <the source line>
 *       ^~~~
 *
 * A location is a byte range in the source; line and column are computed
 * only when an error is reported.
 */
#ifndef MD_DIAG_H
#define MD_DIAG_H

#include <stdarg.h>
#include "matdiff.h"

typedef struct Loc {
  int begin, end;   /* byte offsets [begin, end) into the source; begin < 0: no location */
} Loc;

/* Fill ERR (when not NULL) with a located error. SRC/LEN is the whole source
   text, FILE its name for the message. Only the first error is kept: a
   later call does nothing when err->message is already set. */
void diag_error(md_error *err, const char *file, const char *src, long len, Loc loc,
                const char *fmt, ...) __attribute__((format(printf, 6, 7)));
void diag_verror(md_error *err, const char *file, const char *src, long len, Loc loc,
                 const char *fmt, va_list ap);
/* An error that is not about a place in a source (line = col = 0). */
void diag_plain(md_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void diag_clear(md_error *err);
/* The LEN bytes at P as a message quotes them, into BUF (N bytes): past MAX
   bytes, the first MAX-3 and "..."; control bytes and bytes that are not
   UTF-8 as '?', as the source line shows them, so that a file's bytes
   (ESC, BEL) never reach the terminal. Returns BUF. */
char *diag_quote(char *buf, size_t n, const char *p, long len, long max);

#endif
