/*
 * npy.c - NumPy's .npy files in and out (npy.h shows the layout). Reading
 * takes the whole file (io_read_file), checks the preamble, parses the
 * header (a Python dict literal) with a small recursive-descent parser that
 * knows the three keys, checks the data's length against the shape, then
 * converts the data to row-major doubles. Each element is put together from
 * its bytes in the file's byte order, so the host's byte order never matters.
 *
 * A diagnostic shows the file up to the end of the header as one line, the
 * preamble's binary bytes and anything unprintable as '?', so every column
 * is a byte offset + 1 and the caret sits under the header text at fault.
 * Errors about the data point at the shape and name the bytes.
 *
 * Writing gives byte for byte what np.save writes for a float64 C-order
 * array, so that files from matdiff and from NumPy compare equal.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "diag.h"
#include "npy.h"

_Static_assert(sizeof(double) == 8 && sizeof(float) == 4, "npy.c needs binary64 and binary32");

#define MAGIC "\x93NUMPY"
enum {
  MAGIC_LEN = 6,
  ALIGN = 64,              /* np.save pads the preamble and header to a multiple of this */
  GROWTH_DIGITS = 21,      /* ... after room for a first dimension of this many digits */
  MAX_HEADER = 100000,     /* a float array's header is ~120 bytes; NumPy refuses > 10000 */
  MAX_QUOTE = 40,          /* quote at most this many bytes of the header in a message */
};

// The most entries a shape may claim, so that counts and byte sizes never
// overflow. Any shape near it is rejected anyway: its data would not fit in
// a file io_read_file reads (2 GiB).
#define MAX_COUNT (1ULL << 59)

/* ---- reading: the file and its diagnostics ------------------------------ */

typedef struct Reader {
  const char *file;           /* the path, for diagnostics */
  const unsigned char *buf;   /* the whole file */
  long len;
  md_error *err;
  long head;                  /* bytes [0, head) are the binary preamble */
  long end;                   /* the header text is [head, end); the data follows */
  long show;                  /* a diagnostic shows bytes [0, show) */
  long pos;                   /* the parser's place in the header */
  unsigned seen;              /* the keys met so far, 1 << KEY_... */
  int size;                   /* bytes per element: 8 or 4 */
  bool big;                   /* big-endian elements */
  bool fortran;               /* column-major data */
  int ndim;                   /* 0, 1 or 2 */
  unsigned long long dim[2];
  char descr[8];              /* '<f8', '>f8', '<f4' or '>f4' */
  Loc shape;                  /* the shape's text, where errors about the data point */
} Reader;

// Byte I of the file as a diagnostic shows it: the preamble's binary bytes
// (all but "NUMPY") and whatever is not printable ASCII as '?', whitespace
// as ' ', so the header stays on one line and a column is a byte offset + 1.
static char shown(const Reader *R, long i) {
  unsigned char c = R->buf[i];
  bool binary = i < R->head && (i == 0 || i >= MAGIC_LEN);
  if (binary)
    return '?';
  if (c >= 0x20 && c < 0x7F)
    return (char)c;
  return c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r' ? ' ' : '?';
}

__attribute__((format(printf, 4, 5)))
static int fail(Reader *R, long begin, long end, const char *fmt, ...) {
  char *text = malloc((size_t)R->show + 1);
  if (text) {
    for (long i = 0; i < R->show; i++)
      text[i] = shown(R, i);
    text[R->show] = '\0';
  }
  // Without memory for the line, the message still goes out, unlocated.
  va_list ap;
  va_start(ap, fmt);
  diag_verror(R->err, R->file, text, R->show, (Loc){text ? (int)begin : -1, (int)end}, fmt, ap);
  va_end(ap);
  free(text);
  return -1;
}

// An error about the binary data at byte OFFSET: file:1:OFFSET+1, with no
// source line to show.
__attribute__((format(printf, 3, 4)))
static int fail_at_byte(Reader *R, long offset, const char *fmt, ...) {
  md_error *err = R->err;
  if (!err || err->message[0])
    return -1;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof err->message, fmt, ap);
  va_end(ap);
  err->line = 1;
  err->col = (int)offset + 1;
  // A diagnostic longer than diag[] is cut, as in diag.c.
  snprintf(err->diag, sizeof err->diag, "%s:1:%d: error: %s", R->file, err->col, err->message);
  return -1;
}

// The header's bytes [begin, end) for a message, as a diagnostic shows them,
// cut to MAX_QUOTE with "...".
static const char *quote(const Reader *R, long begin, long end, char *buf, size_t n) {
  long len = end - begin, cut = len > MAX_QUOTE ? MAX_QUOTE - 3 : len;
  size_t k = 0;
  for (long i = 0; i < cut && k + 1 < n; i++)
    buf[k++] = shown(R, begin + i);
  if (cut < len && k + 4 <= n)
    memcpy(buf + k, "...", 3), k += 3;
  buf[k] = '\0';
  return buf;
}

/* ---- reading: the preamble ---------------------------------------------- */

static unsigned long little_endian(const unsigned char *p, int n) {
  unsigned long v = 0;
  for (int i = n - 1; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

// "\x93NUMPY", major and minor version, the header's length (2 bytes in 1.0,
// 4 in 2.0 and 3.0). Sets head and end, and the part a diagnostic shows.
static int read_preamble(Reader *R) {
  long n = R->len, m = n < MAGIC_LEN ? n : MAGIC_LEN;
  const unsigned char *nl = memchr(R->buf, '\n', (size_t)(n < 200 ? n : 200));
  R->show = nl ? nl - R->buf : n < 200 ? n : 200;   // the first line of what is not .npy
  if (memcmp(R->buf, MAGIC, (size_t)m) != 0)
    return fail(R, 0, m, "not a .npy file: it does not start with \\x93NUMPY");
  R->head = R->show = n < 12 ? n : 12;
  if (n == 0)
    return fail(R, 0, 0, "empty file: not a .npy file");
  if (n < MAGIC_LEN + 2)
    return fail(R, n, n, "truncated .npy file: it ends at byte %ld, inside the preamble", n);
  int major = R->buf[6], minor = R->buf[7];
  if (major < 1 || major > 3 || minor != 0)
    return fail(R, 6, 8, "unsupported .npy format version %d.%d: matdiff reads 1.0, 2.0 and 3.0",
                major, minor);
  int width = major == 1 ? 2 : 4;
  R->head = R->show = n < 8 + width ? n : 8 + width;
  if (n < 8 + width)
    return fail(R, n, n, "truncated .npy file: it ends at byte %ld, inside the preamble", n);
  unsigned long hlen = little_endian(R->buf + 8, width);
  if (hlen > MAX_HEADER)
    return fail(R, 8, 8 + width, "the header length says %lu bytes: too long for the header "
                "of a float array (%d at most)", hlen, MAX_HEADER);
  R->end = R->head + (long)hlen;
  if (R->end > n) {
    R->show = n;
    return fail(R, 8, 8 + width, "truncated .npy file: the header length says %lu bytes, "
                "the file ends after %ld of them", hlen, n - R->head);
  }
  // Show the header without NumPy's padding, so a caret at the end of the
  // text lands just after it.
  R->show = R->end;
  while (R->show > R->head && shown(R, R->show - 1) == ' ')
    R->show--;
  return 0;
}

/* ---- reading: the header ------------------------------------------------ */

// header = "{" (entry ("," entry)* ","?)? "}"
// entry  = "'descr'" ":" string | "'fortran_order'" ":" ("True" | "False")
//        | "'shape'" ":" "(" (dim "," | dim ("," dim)+ ","?)? ")"
// Whitespace anywhere between tokens, strings in '' or "". NumPy writes the
// keys sorted, but any order is a valid dict.

enum { KEY_DESCR, KEY_FORTRAN, KEY_SHAPE, NKEYS };
static const char *const key_names[NKEYS] = {"descr", "fortran_order", "shape"};

static bool at(const Reader *R, char c) {
  return R->pos < R->end && R->buf[R->pos] == c;
}

static void skip_space(Reader *R) {
  while (R->pos < R->end && strchr(" \t\n\v\f\r", R->buf[R->pos]) && R->buf[R->pos])
    R->pos++;
}

static bool is_word(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

// The end of the token at POS: a word, or a single other byte.
static long token_end(const Reader *R, long pos) {
  long e = pos;
  while (e < R->end && is_word(R->buf[e]))
    e++;
  return e > pos ? e : pos < R->end ? pos + 1 : pos;
}

// Report "expected WHAT, found <the token at pos>", pointing at that token.
// A string is quoted as it is written, anything else in ''.
static int expected(Reader *R, const char *what) {
  long p = R->pos, e = token_end(R, p);
  if (e == p)
    return fail(R, p, e, "expected %s, found the end of the header", what);
  unsigned char c = R->buf[p];
  bool str = c == '\'' || c == '"';
  if (str) {
    const unsigned char *close = memchr(R->buf + p + 1, c, (size_t)(R->end - p - 1));
    e = close ? close - R->buf + 1 : R->end;
  }
  char q[MAX_QUOTE + 1];
  return fail(R, p, e, "expected %s, found %s%s%s", what, str ? "" : "'",
              quote(R, p, e, q, sizeof q), str ? "" : "'");
}

// A string literal without escapes (NumPy's keys and dtypes need none):
// sets [*b, *e) to its contents.
static int string(Reader *R, const char *what, long *b, long *e) {
  if (!at(R, '\'') && !at(R, '"'))
    return expected(R, what);
  long open = R->pos;
  unsigned char q = R->buf[open];
  long p = open + 1;
  while (p < R->end && R->buf[p] != q && R->buf[p] != '\\' && R->buf[p] != '\n')
    p++;
  if (p < R->end && R->buf[p] == '\\')
    return fail(R, p, p + 1, "escape sequences are not supported in a .npy header");
  if (p == R->end || R->buf[p] != q)
    return fail(R, open, p, "unterminated string");
  *b = open + 1;
  *e = p;
  R->pos = p + 1;
  return 0;
}

// What a rejected dtype such as '<i8' holds, e.g. "64-bit integers".
static void dtype_kind(const char *s, char *buf, size_t n) {
  static const char kinds[] = "?bciufmMOSaUV";
  static const char *const names[] = {
      "booleans", "booleans", "complex numbers", "integers", "unsigned integers", "floats",
      "timedeltas", "datetimes", "Python objects", "byte strings", "byte strings",
      "unicode strings", "raw bytes"};
  s += *s && strchr("<>|=", *s);
  const char *k = *s ? strchr(kinds, *s) : NULL;
  if (!k) {
    snprintf(buf, n, "not a NumPy type");
    return;
  }
  long bytes = strchr("ciuf", *s) ? strtol(s + 1, NULL, 10) : 0;
  if (bytes > 0 && bytes <= 64)
    snprintf(buf, n, "%ld-bit %s", 8 * bytes, names[k - kinds]);
  else
    snprintf(buf, n, "%s", names[k - kinds]);
}

// descr: one of '<f8' '>f8' '<f4' '>f4'.
static int descr(Reader *R) {
  if (at(R, '['))
    return fail(R, R->pos, R->pos + 1, "structured dtypes are not supported: matdiff reads "
                "float64 and float32 arrays");
  long b, e;
  if (string(R, "a dtype string such as '<f8'", &b, &e) < 0)
    return -1;
  char q[MAX_QUOTE + 1];
  quote(R, b, e, q, sizeof q);
  static const char *const ok[] = {"<f8", ">f8", "<f4", ">f4"};
  for (int i = 0; i < 4; i++)
    if (!strcmp(q, ok[i])) {
      strcpy(R->descr, q);
      R->big = q[0] == '>';
      R->size = q[2] - '0';
      return 0;
    }
  if (!strcmp(q, "f8") || !strcmp(q, "f4") || !strcmp(q, "=f8") || !strcmp(q, "=f4"))
    return fail(R, b - 1, e + 1, "dtype '%s' does not say its byte order: a .npy file says "
                "'<%s' or '>%s'", q, q + strlen(q) - 2, q + strlen(q) - 2);
  char kind[64];
  dtype_kind(q, kind, sizeof kind);
  return fail(R, b - 1, e + 1, "dtype '%s' (%s) is not supported: matdiff reads float64 and "
              "float32; save a.astype(np.float64)", q, kind);
}

static int fortran_order(Reader *R) {
  long e = token_end(R, R->pos);
  if (e - R->pos == 4 && !memcmp(R->buf + R->pos, "True", 4))
    R->fortran = true;
  else if (e - R->pos == 5 && !memcmp(R->buf + R->pos, "False", 5))
    R->fortran = false;
  else
    return expected(R, "True or False for 'fortran_order'");
  R->pos = e;
  return 0;
}

// A dimension: decimal digits, with the 'L' of a Python 2 long.
static int dimension(Reader *R, unsigned long long *d) {
  long begin = R->pos;
  if (!(R->pos < R->end && R->buf[R->pos] >= '0' && R->buf[R->pos] <= '9'))
    return expected(R, "a dimension (a whole number >= 0)");
  *d = 0;
  for (; R->pos < R->end && R->buf[R->pos] >= '0' && R->buf[R->pos] <= '9'; R->pos++) {
    *d = 10 * *d + (unsigned)(R->buf[R->pos] - '0');
    if (*d > MAX_COUNT) {
      long e = token_end(R, begin);
      char q[MAX_QUOTE + 1];
      return fail(R, begin, e, "dimension %s is too large", quote(R, begin, e, q, sizeof q));
    }
  }
  if (at(R, 'L') || at(R, 'l'))
    R->pos++;
  return 0;
}

static int shape(Reader *R) {
  long begin = R->pos;
  if (!at(R, '('))
    return expected(R, "a tuple such as (2, 3) for 'shape'");
  R->pos++;
  skip_space(R);
  int n = 0;
  bool comma = false;
  unsigned long long d = 0;
  while (!at(R, ')')) {
    if (dimension(R, &d) < 0)
      return -1;
    if (n < 2)
      R->dim[n] = d;
    n++;
    skip_space(R);
    comma = at(R, ',');
    if (comma) {
      R->pos++;
      skip_space(R);
    } else if (!at(R, ')')) {
      return expected(R, "',' or ')' in the shape");
    }
  }
  R->pos++;
  R->shape = (Loc){(int)begin, (int)R->pos};
  char q[MAX_QUOTE + 1];
  if (n == 1 && !comma)
    return fail(R, begin, R->pos, "'shape' must be a tuple: (%llu) is a number, a 1-d shape "
                "is written (%llu,)", d, d);
  if (n > 2)
    return fail(R, begin, R->pos, "a %d-d array, shape %s: matdiff reads 0-d, 1-d and 2-d "
                "arrays", n, quote(R, begin, R->pos, q, sizeof q));
  R->ndim = n;
  return 0;
}

// entry = key ":" value. The keys are checked here; the value by its key.
static int entry(Reader *R) {
  long b, e;
  if (string(R, "a key string such as 'shape'", &b, &e) < 0)
    return -1;
  int key = 0;
  while (key < NKEYS && !(e - b == (long)strlen(key_names[key]) &&
                          !memcmp(R->buf + b, key_names[key], (size_t)(e - b))))
    key++;
  char q[MAX_QUOTE + 1];
  if (key == NKEYS)
    return fail(R, b - 1, e + 1, "unknown key '%s': a .npy header has 'descr', "
                "'fortran_order' and 'shape'", quote(R, b, e, q, sizeof q));
  if (R->seen & 1u << key)
    return fail(R, b - 1, e + 1, "the key '%s' appears twice", key_names[key]);
  R->seen |= 1u << key;
  skip_space(R);
  if (!at(R, ':'))
    return expected(R, "':' after the key");
  R->pos++;
  skip_space(R);
  return key == KEY_DESCR ? descr(R) : key == KEY_FORTRAN ? fortran_order(R) : shape(R);
}

static int read_header(Reader *R) {
  R->pos = R->head;
  skip_space(R);
  if (!at(R, '{'))
    return expected(R, "'{' to open the header's dictionary");
  R->pos++;
  skip_space(R);
  while (!at(R, '}')) {
    if (entry(R) < 0)
      return -1;
    skip_space(R);
    if (at(R, ','))
      R->pos++, skip_space(R);
    else if (!at(R, '}'))
      return expected(R, "',' or '}' after the value");
  }
  long close = R->pos++;
  skip_space(R);
  if (R->pos < R->end)
    return expected(R, "the end of the header after '}'");
  for (int key = 0; key < NKEYS; key++)
    if (!(R->seen & 1u << key))
      return fail(R, close, close + 1, "the header has no '%s' key", key_names[key]);
  return 0;
}

/* ---- reading: the data -------------------------------------------------- */

static void format_shape(const Reader *R, char *buf, size_t n) {
  if (R->ndim == 0)
    snprintf(buf, n, "()");
  else if (R->ndim == 1)
    snprintf(buf, n, "(%llu,)", R->dim[0]);
  else
    snprintf(buf, n, "(%llu, %llu)", R->dim[0], R->dim[1]);
}

// The shape must have entries, and the data after the header must be
// exactly their bytes.
static int check_data(Reader *R, unsigned long long *count) {
  char s[64];
  format_shape(R, s, sizeof s);
  *count = 1;
  for (int i = 0; i < R->ndim; i++) {
    if (R->dim[i] && *count > MAX_COUNT / R->dim[i])
      return fail(R, R->shape.begin, R->shape.end, "shape %s is too large", s);
    *count *= R->dim[i];
  }
  if (*count == 0)
    return fail(R, R->shape.begin, R->shape.end, "shape %s has no entries: matdiff needs at "
                "least one number", s);
  unsigned long long need = *count * (unsigned)R->size, have = (unsigned long long)(R->len - R->end);
  if (have != need)
    return fail(R, R->shape.begin, R->shape.end, "shape %s of '%s' needs %llu bytes of data "
                "after the header (byte %ld on), the file has %llu", s, R->descr, need, R->end,
                have);
  return 0;
}

// The element at P, in the file's byte order.
static double element(const unsigned char *p, int size, bool big) {
  uint64_t u = 0;
  for (int i = 0; i < size; i++)
    u |= (uint64_t)p[i] << 8 * (big ? size - 1 - i : i);
  if (size == 8) {
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
  }
  uint32_t w = (uint32_t)u;
  float f;
  memcpy(&f, &w, sizeof f);
  return f;
}

// COUNT elements into row-major doubles; Fortran order is transposed on the way.
static double *convert(Reader *R, unsigned long long count, long rows, long cols) {
  double *out = malloc((size_t)count * sizeof *out);
  if (!out) {
    diag_plain(R->err, "out of memory reading '%s'", R->file);
    return NULL;
  }
  for (long k = 0; k < (long)count; k++) {
    long byte = R->end + k * R->size;
    double v = element(R->buf + byte, R->size, R->big);
    long i = R->fortran ? k % rows : k / cols, j = R->fortran ? k / rows : k % cols;
    if (!isfinite(v)) {
      free(out);
      // Named as NumPy indexes it: a[i, j], a[i] or the scalar a[()].
      char index[64];
      if (R->ndim == 2)
        snprintf(index, sizeof index, "entry [%ld, %ld]", i, j);
      else if (R->ndim == 1)
        snprintf(index, sizeof index, "entry [%ld]", i);
      else
        snprintf(index, sizeof index, "the scalar");
      fail_at_byte(R, byte, "%s (byte %ld) is %s: matdiff reads finite numbers only", index,
                   byte, isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
      return NULL;
    }
    out[i * cols + j] = v;
  }
  return out;
}

int npy_read(const char *path, io_matrix *m, md_error *err) {
  diag_clear(err);
  *m = (io_matrix){NULL, 0, 0};
  Reader R = {.file = path, .err = err};
  unsigned char *buf = (unsigned char *)io_read_file(path, &R.len, err);
  if (!buf)
    return -1;
  R.buf = buf;
  unsigned long long count;
  if (read_preamble(&R) < 0 || read_header(&R) < 0 || check_data(&R, &count) < 0) {
    free(buf);
    return -1;
  }
  long rows = R.ndim == 0 ? 1 : (long)R.dim[0], cols = R.ndim == 2 ? (long)R.dim[1] : 1;
  double *data = convert(&R, count, rows, cols);
  free(buf);
  if (!data)
    return -1;
  *m = (io_matrix){data, rows, cols};
  return 0;
}

bool npy_is_npy(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return false;
  char magic[MAGIC_LEN];
  bool yes = fread(magic, 1, MAGIC_LEN, f) == MAGIC_LEN && !memcmp(magic, MAGIC, MAGIC_LEN);
  fclose(f);
  return yes;
}

/* ---- writing ------------------------------------------------------------ */

// The preamble and header np.save writes for a '<f8' C-order array of SHAPE
// whose first dimension is FIRST (numpy/lib/format.py, _write_array_header
// and _wrap_header): the dict with its keys sorted, spaces to leave room for
// a first dimension of GROWTH_DIGITS digits (none for a scalar), then at
// least one more space and a '\n', up to a multiple of ALIGN bytes.
static int header(char *out, const char *shape, long first) {
  char dict[128];
  int len = snprintf(dict, sizeof dict, "{'descr': '<f8', 'fortran_order': False, 'shape': %s, }",
                     shape);
  int growth = first < 0 ? 0 : GROWTH_DIGITS - snprintf(NULL, 0, "%ld", first);
  int hlen = len + growth + 1;
  int pad = ALIGN - (10 + hlen) % ALIGN;
  int total = 10 + hlen + pad;
  memcpy(out, MAGIC "\x01", 7);
  out[7] = 0;   // version 1.0
  out[8] = (char)((hlen + pad) & 0xFF);
  out[9] = (char)((hlen + pad) >> 8);
  memcpy(out + 10, dict, (size_t)len);
  memset(out + 10 + len, ' ', (size_t)(growth + pad));
  out[total - 1] = '\n';
  return total;
}

static int write_data(FILE *f, const double *data, long count) {
  unsigned char chunk[8 * 512];
  for (long k = 0; k < count;) {
    size_t n = 0;
    for (; k < count && n < sizeof chunk; k++) {
      uint64_t u;
      memcpy(&u, &data[k], sizeof u);
      for (int i = 0; i < 8; i++)
        chunk[n++] = (unsigned char)(u >> 8 * i);
    }
    if (fwrite(chunk, 1, n, f) != n)
      return -1;
  }
  return 0;
}

int npy_write(const char *path, const double *data, long rows, long cols, int vector,
              md_error *err) {
  diag_clear(err);
  if (rows < 1 || cols < 1) {
    diag_plain(err, "cannot write an empty %ld x %ld matrix to '%s'", rows, cols, path);
    return -1;
  }
  if (vector && cols != 1) {
    diag_plain(err, "cannot write a %ld x %ld matrix to '%s' as a vector (one column)", rows,
               cols, path);
    return -1;
  }
  if (rows > LONG_MAX / 8 / cols) {
    diag_plain(err, "cannot write a %ld x %ld matrix to '%s': too large", rows, cols, path);
    return -1;
  }
  char shape[64];
  long first = rows;
  if (vector)
    snprintf(shape, sizeof shape, "(%ld,)", rows);
  else if (rows == 1 && cols == 1)
    snprintf(shape, sizeof shape, "()"), first = -1;
  else
    snprintf(shape, sizeof shape, "(%ld, %ld)", rows, cols);
  char head[256];
  int n = header(head, shape, first);

  FILE *f = io_create(path, err);
  if (!f)
    return -1;
  int rc = fwrite(head, 1, (size_t)n, f) == (size_t)n ? write_data(f, data, rows * cols) : -1;
  return io_close(f, rc, path, err);
}
