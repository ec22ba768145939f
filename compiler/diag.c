/*
 * diag.c - turns a byte range into file:line:col, the source line and a
 * caret underline, the way GCC prints them, so editors can jump there.
 */
#include <stdio.h>
#include <string.h>
#include "diag.h"

void diag_clear(md_error *err) {
  if (!err)
    return;
  err->line = err->col = 0;
  err->message[0] = err->diag[0] = '\0';
}

// Copy at most N-1 bytes of the line into BUF, replacing tabs and control
// bytes by spaces so that the caret below lines up.
static void copy_line(char *buf, size_t n, const char *p, long len) {
  size_t i = 0;
  for (; i + 1 < n && i < (size_t)len && p[i] != '\n'; i++) {
    unsigned char c = p[i];
    buf[i] = (c < 32 || c == 127) ? ' ' : (char)c;
  }
  buf[i] = '\0';
}

void diag_verror(md_error *err, const char *file, const char *src, long len, Loc loc,
                 const char *fmt, va_list ap) {
  if (!err || err->message[0])
    return;
  vsnprintf(err->message, sizeof err->message, fmt, ap);
  if (!file)
    file = "<input>";
  if (loc.begin < 0 || !src) {
    err->line = err->col = 0;
    snprintf(err->diag, sizeof err->diag, "%s: error: %s", file, err->message);
    return;
  }
  if (loc.begin > len)
    loc.begin = (int)len;
  if (loc.end < loc.begin + 1)
    loc.end = loc.begin + 1;

  int line = 1;
  long bol = 0;
  for (long i = 0; i < loc.begin; i++)
    if (src[i] == '\n')
      line++, bol = i + 1;
  // Columns count characters, not bytes: skip UTF-8 continuation bytes.
  int col = 1;
  for (long i = bol; i < loc.begin; i++)
    if (((unsigned char)src[i] & 0xC0) != 0x80)
      col++;
  err->line = line;
  err->col = col;

  char text[256];
  copy_line(text, sizeof text, src + bol, len - bol);
  char under[256];
  size_t u = 0;
  for (long i = bol; i < loc.begin && u + 1 < sizeof under; i++)
    if (((unsigned char)src[i] & 0xC0) != 0x80)
      under[u++] = ' ';
  if (u + 1 < sizeof under)
    under[u++] = '^';
  for (long i = loc.begin + 1; i < loc.end && i < len && src[i] != '\n' && u + 1 < sizeof under; i++)
    if (((unsigned char)src[i] & 0xC0) != 0x80)
      under[u++] = '~';
  under[u] = '\0';
  // A diagnostic longer than diag[] is cut, which is fine.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-truncation"
  snprintf(err->diag, sizeof err->diag, "%s:%d:%d: error: %s\n%s\n%s", file, line, col,
           err->message, text, under);
#pragma GCC diagnostic pop
}

void diag_error(md_error *err, const char *file, const char *src, long len, Loc loc,
                const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  diag_verror(err, file, src, len, loc, fmt, ap);
  va_end(ap);
}

void diag_plain(md_error *err, const char *fmt, ...) {
  if (!err || err->message[0])
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof err->message, fmt, ap);
  va_end(ap);
  err->line = err->col = 0;
  snprintf(err->diag, sizeof err->diag, "error: %s", err->message);
}
