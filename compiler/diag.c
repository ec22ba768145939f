/*
 * diag.c - turns a byte range into file:line:col, the source line and a
 * caret underline, the way GCC prints them, so editors can jump there.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include "diag.h"

void diag_clear(md_error *err) {
  if (!err)
    return;
  err->line = err->col = 0;
  err->message[0] = err->diag[0] = '\0';
}

// The length of the valid UTF-8 sequence at P (at most N bytes), or 0.
static int utf8_len(const unsigned char *p, long n) {
  int k = p[0] < 0x80 ? 1 : p[0] >= 0xC2 && p[0] <= 0xDF ? 2 : p[0] >= 0xE0 && p[0] <= 0xEF ? 3
          : p[0] >= 0xF0 && p[0] <= 0xF4 ? 4 : 0;
  if (k == 0 || k > n)
    return 0;
  for (int i = 1; i < k; i++)
    if ((p[i] & 0xC0) != 0x80)
      return 0;
  return k;
}

// Copy at most N-1 bytes of the line into BUF, replacing tabs and control
// bytes by spaces, so that the caret below lines up, and bytes that are not
// UTF-8 by '?', so that the terminal shows what the column counts.
static void copy_line(char *buf, size_t n, const char *p, long len) {
  size_t i = 0;
  while (i + 1 < n && i < (size_t)len && p[i] != '\n' &&
         !(p[i] == '\r' && (i + 1 == (size_t)len || p[i + 1] == '\n'))) {
    unsigned char c = p[i];
    int k = utf8_len((const unsigned char *)p + i, len - (long)i);
    if (k > 1 && i + (size_t)k < n) {
      memcpy(buf + i, p + i, (size_t)k);
      i += (size_t)k;
      continue;
    }
    buf[i++] = k == 0 ? '?' : (c < 32 || c == 127) ? ' ' : (char)c;
  }
  buf[i] = '\0';
}

char *diag_quote(char *buf, size_t n, const char *p, long len, long max) {
  long cut = len > max ? max - 3 : len;
  size_t k = 0;
  for (long i = 0; i < cut && k + 1 < n;) {
    int u = utf8_len((const unsigned char *)p + i, cut - i);
    unsigned char c = p[i];
    if (u > 1 && k + (size_t)u < n) {
      memcpy(buf + k, p + i, (size_t)u);
      k += (size_t)u, i += u;
      continue;
    }
    buf[k++] = u == 0 || c < 32 || c == 127 ? '?' : (char)c;
    i++;
  }
  if (cut < len && k + 4 <= n)
    memcpy(buf + k, "...", 3), k += 3;
  buf[k] = '\0';
  return buf;
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

  // A long line is shown as a window around the error, so the caret stays
  // under it: "..." and the 80 bytes before it, then what follows.
  long from = bol;
  bool cut = loc.begin - bol > 100;
  if (cut) {
    from = loc.begin - 80;
    while (from < loc.begin && ((unsigned char)src[from] & 0xC0) == 0x80)
      from++;
  }
  char text[256];
  size_t t = 0;
  if (cut)
    memcpy(text, "...", 3), t = 3;
  copy_line(text + t, sizeof text - t, src + from, len - from);
  char under[256];
  size_t u = 0;
  for (; u < t; u++)
    under[u] = ' ';
  for (long i = from; i < loc.begin && u + 1 < sizeof under; i++)
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
