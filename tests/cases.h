/*
 * cases.h - the reader of the data files under tests/cases/, shared by the
 * Criterion suites that are driven by them (test_front, test_grad, test_aot,
 * test_cookbook).
 *
 * A data file is a list of cases. Everything before the first case is a
 * comment for the reader. A case is
 *
 *   %% NAME [KEY=VALUE ...]      starts a case; the rest of the line is its
 *                                name and options (e.g. symbolic sizes)
 *   <source lines>               the .expr source, taken byte for byte
 *   --- SECTION [ARG]            optional: "error", "diff", ...
 *   <expected lines>             up to the next %%, trailing newlines dropped
 *
 * Both the source and the expected text decode two escapes, so that a case
 * can hold any byte and still be a plain ASCII file:
 *   \xHH     the byte 0xHH
 *   \        at the end of a line: no newline here (joins the next line)
 *   \\       a backslash (the language has no backslash, so these never clash)
 *
 * Everything is static inline: each suite uses only part of it.
 */
#ifndef MD_TEST_CASES_H
#define MD_TEST_CASES_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CASES_MAX 256   /* chunks of cases a suite can have (see cases_chunks) */

typedef struct Case {
  char name[128];   /* first word after %% */
  char opts[256];   /* the rest of the %% line */
  char *src;        /* the source, decoded */
  char sect[32];    /* the word after ---, "" if none */
  char arg[96];     /* the rest of the --- line */
  char *expect;     /* the text after the --- line, decoded; "" if none */
  int line;         /* line of the %% in the data file, for messages */
} Case;

// Decode the escapes of TEXT[0..N) into a new string.
static inline char *cases_decode(const char *text, size_t n) {
  char *out = malloc(n + 1), *o = out;
  if (!out)
    return NULL;
  for (size_t i = 0; i < n; i++) {
    if (text[i] != '\\' || i + 1 >= n) {
      *o++ = text[i];
    } else if (text[i + 1] == '\n') {
      i++;
    } else if (text[i + 1] == '\\') {
      *o++ = '\\';
      i++;
    } else if (text[i + 1] == 'x' && i + 3 < n) {
      char hex[3] = {text[i + 2], text[i + 3], 0};
      *o++ = (char)strtol(hex, NULL, 16);
      i += 3;
    } else {
      *o++ = text[i];
    }
  }
  *o = '\0';
  return out;
}

static inline char *cases_slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  size_t cap = 1 << 16, len = 0;
  char *s = malloc(cap);
  size_t got;
  while (s && (got = fread(s + len, 1, cap - len - 1, f)) > 0) {
    len += got;
    if (len + 1 == cap) {
      char *t = realloc(s, cap *= 2);
      if (!t)
        free(s);
      s = t;
    }
  }
  fclose(f);
  if (s)
    s[len] = '\0';
  return s;
}

static inline void cases_free(Case *cs, int n) {
  for (int i = 0; cs && i < n; i++) {
    free(cs[i].src);
    free(cs[i].expect);
  }
  free(cs);
}

// Fill C's source and expected text: the source runs from SRC to the
// "--- SECTION" line (or to END when there is none), the expected text from
// EXP (the line after it) to END.
static inline void cases_close(Case *c, const char *src, const char *exp, const char *end) {
  const char *send = end;
  if (exp) {
    send = exp - 1;  // back over the "--- SECTION" line
    while (send > src && send[-1] != '\n')
      send--;
  }
  c->src = cases_decode(src, (size_t)(send - src));
  const char *eb = exp ? exp : end, *ee = end;
  while (ee > eb && ee[-1] == '\n')
    ee--;
  c->expect = cases_decode(eb, (size_t)(ee - eb));
}

// Read PATH into *OUT; returns the number of cases, or -1 if the file
// cannot be read.
static inline int cases_load(const char *path, Case **out) {
  char *text = cases_slurp(path);
  int cap = 64;
  Case *cs = text ? calloc((size_t)cap, sizeof *cs) : NULL;
  *out = NULL;
  if (!cs) {
    free(text);
    return -1;
  }
  int n = -1, lineno = 0;
  const char *src = NULL, *exp = NULL;
  char *p = text;
  while (*p) {
    char *eol = strchr(p, '\n');
    char *next = eol ? eol + 1 : p + strlen(p);
    lineno++;
    if (!strncmp(p, "%%", 2)) {
      if (n >= 0)
        cases_close(&cs[n], src, exp, p);
      if (++n == cap) {
        Case *more = realloc(cs, sizeof *cs * (size_t)(cap *= 2));
        if (!more) {
          cases_free(cs, n);
          free(text);
          return -1;
        }
        cs = more;
        memset(cs + n, 0, sizeof *cs * (size_t)(cap - n));
      }
      int hl = (int)((eol ? eol : next) - (p + 2));
      char head[400];
      snprintf(head, sizeof head, "%.*s", hl, p + 2);
      char *h = head + strspn(head, " \t");
      int nl = (int)strcspn(h, " \t");
      snprintf(cs[n].name, sizeof cs[n].name, "%.*s", nl, h);
      snprintf(cs[n].opts, sizeof cs[n].opts, "%s", h + nl + strspn(h + nl, " \t"));
      cs[n].line = lineno;
      src = next;
      exp = NULL;
    } else if (n >= 0 && !exp && !strncmp(p, "--- ", 4)) {
      int wl = (int)strcspn(p + 4, " \t\n");
      snprintf(cs[n].sect, sizeof cs[n].sect, "%.*s", wl, p + 4);
      const char *a = p + 4 + wl + strspn(p + 4 + wl, " \t");
      snprintf(cs[n].arg, sizeof cs[n].arg, "%.*s", (int)strcspn(a, "\n"), a);
      exp = next;
    }
    p = next;
  }
  if (n >= 0)
    cases_close(&cs[n], src, exp, p);
  free(text);
  *out = cs;
  return n + 1;
}

// Criterion runs every test in a process of its own, at tens of
// milliseconds each, so a suite runs a data file's cases CHUNK at a time:
// one test process per chunk, its parameter the chunk's first case. STARTS
// (CASES_MAX ints) receives the parameters; returns how many. An unreadable
// file still gives one, so that the test itself reports it.
static inline size_t cases_chunks(const char *path, int chunk, int *starts) {
  Case *cs;
  int n = cases_load(path, &cs);
  cases_free(cs, n);
  size_t k = 0;
  for (int i = 0; (i < n || (i == 0 && k == 0)) && k < CASES_MAX; i += chunk)
    starts[k++] = i;
  return k;
}

// The value of KEY=VALUE in a case's options, or DEFAULT.
static inline long cases_opt(const Case *c, const char *key, long def) {
  size_t kl = strlen(key);
  for (const char *p = c->opts; (p = strstr(p, key)) != NULL; p += kl)
    if ((p == c->opts || p[-1] == ' ' || p[-1] == '\t') && p[kl] == '=')
      return strtol(p + kl + 1, NULL, 10);
  return def;
}

// The text of KEY=TEXT in a case's options (TEXT up to the next blank) into
// BUF, or "" if there is none; BUF itself.
static inline char *cases_opt_str(const Case *c, const char *key, char *buf, size_t n) {
  size_t kl = strlen(key);
  buf[0] = '\0';
  for (const char *p = c->opts; (p = strstr(p, key)) != NULL; p += kl)
    if ((p == c->opts || p[-1] == ' ' || p[-1] == '\t') && p[kl] == '=') {
      snprintf(buf, n, "%.*s", (int)strcspn(p + kl + 1, " \t"), p + kl + 1);
      break;
    }
  return buf;
}

// Does a case's option list hold the word WORD?
static inline int cases_flag(const Case *c, const char *word) {
  size_t wl = strlen(word);
  for (const char *p = c->opts; (p = strstr(p, word)) != NULL; p += wl)
    if ((p == c->opts || p[-1] == ' ') && (p[wl] == '\0' || p[wl] == ' '))
      return 1;
  return 0;
}

#endif
