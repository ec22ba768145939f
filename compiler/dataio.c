/*
 * dataio.c - the CLI's data layer. Every file the CLI reads is read whole by
 * io_read_file. A text matrix is kept as the "source" of every diagnostic, so a bad number is reported like
 * a bad token in an .expr file: file:line:col, the line, a caret under the
 * token. Writing uses %.17g, which strtod reads back to the same double.
 * Printing follows the seed notebook's PyTorch output so the two can be
 * compared by eye.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "dataio.h"
#include "diag.h"

/* ---- files ------------------------------------------------------------- */

// Loc offsets are ints, so a file the CLI reads must be shorter than
// INT_MAX bytes, its NUL included.
#define MAX_FILE ((size_t)INT_MAX)

// A regular file's size is known before reading: one too large is refused
// at once, and the buffer is made large enough for it in one go. A pipe's is
// not, and it is refused when it has sent too much.
char *io_read_file(const char *path, long *len, md_error *err) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    diag_plain(err, "cannot read '%s': %s", path, strerror(errno));
    return NULL;
  }
  char *buf = NULL;
  size_t n = 0, cap = 0, got, first = 4096;
  struct stat st;
  if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode)) {
    if ((unsigned long long)st.st_size >= MAX_FILE) {
      diag_plain(err, "'%s' is too large (2 GiB at most)", path);
      goto error;
    }
    first = (size_t)st.st_size + 2;  // and a byte to see the end of the file
    if (first > MAX_FILE)
      first = MAX_FILE;
  }
  do {
    if (cap - n < 2) {  // room for one more byte and the NUL
      if (cap == MAX_FILE) {
        diag_plain(err, "'%s' is too large (2 GiB at most)", path);
        goto error;
      }
      size_t want = !cap ? first : cap > MAX_FILE / 2 ? MAX_FILE : 2 * cap;
      char *p = realloc(buf, want);
      if (!p) {
        diag_plain(err, "out of memory reading '%s'", path);
        goto error;
      }
      buf = p;
      cap = want;
    }
    got = fread(buf + n, 1, cap - n - 1, f);
    n += got;
  } while (got > 0);
  if (ferror(f)) {
    diag_plain(err, "cannot read '%s': %s", path, strerror(errno));
    goto error;
  }
  fclose(f);
  buf[n] = '\0';
  *len = (long)n;
  return buf;
error:
  fclose(f);
  free(buf);
  return NULL;
}

FILE *io_create(const char *path, md_error *err) {
  FILE *f = fopen(path, "wb");
  if (!f)
    diag_plain(err, "cannot write '%s': %s", path, strerror(errno));
  return f;
}

int io_close(FILE *f, int rc, const char *path, md_error *err) {
  int saved = errno;
  if (fclose(f) != 0 && rc == 0) {
    rc = -1;
    saved = errno;
  }
  if (rc < 0)
    diag_plain(err, "cannot write '%s': %s", path, strerror(saved));
  return rc;
}

/* ---- reading ------------------------------------------------------------ */

// Quote at most this many bytes of a bad token in a message.
#define MAX_QUOTE 40

typedef struct Reader {
  const char *file;   /* the path, for diagnostics */
  const char *src;    /* the whole file, NUL-terminated, no NUL inside */
  long len;
  md_error *err;
  double *data;       /* the numbers read so far, row-major */
  long n, cap;
  long rows, cols;    /* cols is set by the first row; the others must match */
} Reader;

__attribute__((format(printf, 4, 5)))
static int fail(Reader *R, long begin, long end, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  diag_verror(R->err, R->file, R->src, R->len, (Loc){(int)begin, (int)end}, fmt, ap);
  va_end(ap);
  return -1;
}

static int is_sep(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f' || c == ',';
}

static int ends_token(char c) {
  return is_sep(c) || c == '#' || c == '\n' || c == '\0';
}

static int push(Reader *R, double v) {
  if (R->n == R->cap) {
    long cap = R->cap ? 2 * R->cap : 64;
    double *p = (size_t)cap <= SIZE_MAX / sizeof *p ? realloc(R->data, cap * sizeof *p) : NULL;
    if (!p) {
      diag_plain(R->err, "out of memory reading '%s'", R->file);
      return -1;
    }
    R->data = p;
    R->cap = cap;
  }
  R->data[R->n++] = v;
  return 0;
}

// The token src[begin, end) as one number. strtod stops at every separator,
// so a token is a number exactly when strtod consumes all of it. Hexadecimal
// (which strtod reads, "0x10" as 16) is refused, as NumPy's loadtxt refuses
// it: no tool writes it, and where it shows up it is rarely a number.
static int read_number(Reader *R, long begin, long end) {
  const char *tok = R->src + begin;
  char q[MAX_QUOTE + 1];
  diag_quote(q, sizeof q, tok, end - begin, MAX_QUOTE);
  const char *digits = tok + (*tok == '+' || *tok == '-');
  if (digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X'))
    return fail(R, begin, end, "'%s' is hexadecimal: matdiff reads decimal numbers only", q);
  char *stop;
  errno = 0;
  double v = strtod(tok, &stop);
  if (stop != R->src + end)
    return fail(R, begin, end, "'%s' is not a number", q);
  if (isnan(v) || (isinf(v) && errno != ERANGE))
    return fail(R, begin, end, "'%s' is not a finite number", q);
  // Overflow, or underflow all the way to zero. A subnormal result is kept:
  // it is exact enough, and %.17g of a subnormal must read back.
  if (errno == ERANGE && (isinf(v) || v == 0))
    return fail(R, begin, end, "'%s' is out of range for a double", q);
  return push(R, v);
}

static int end_row(Reader *R, long count, long begin, long end) {
  if (R->rows == 0)
    R->cols = count;
  else if (count != R->cols)
    return fail(R, begin, end, "row %ld has %ld number%s, expected %ld", R->rows + 1, count,
                count == 1 ? "" : "s", R->cols);
  R->rows++;
  return 0;
}

// One line from *POS, which is left at the start of the next line. A line
// with no numbers (blank, or only a comma) is not a row. A comma ends a
// number; a comma with no number before it ("1,,3", ",1") is an empty entry,
// an error, but one at the end of a line is allowed, as PyTorch prints rows.
static int read_line(Reader *R, long *pos) {
  const char *s = R->src;
  long p = *pos, first = -1, last = -1, count = 0;
  bool entry = false;  // a number since the last comma
  while (p < R->len && s[p] != '\n' && s[p] != '#') {
    if (s[p] == ',') {
      if (!entry)
        return fail(R, p, p + 1, count ? "empty entry: two commas with no number between them"
                                       : "empty entry: a comma before the first number");
      entry = false;
      p++;
      continue;
    }
    if (is_sep(s[p])) {
      p++;
      continue;
    }
    long begin = p;
    while (!ends_token(s[p]))
      p++;
    if (read_number(R, begin, p) < 0)
      return -1;
    if (first < 0)
      first = begin;
    last = p;
    count++;
    entry = true;
  }
  while (p < R->len && s[p] != '\n')
    p++;
  *pos = p + 1;
  return count ? end_row(R, count, first, last) : 0;
}

static int read_text(Reader *R) {
  const char *nul = memchr(R->src, '\0', R->len);
  if (nul)
    return fail(R, nul - R->src, nul - R->src + 1, "NUL byte: this is not a text file");
  long pos = R->len >= 3 && !memcmp(R->src, "\xEF\xBB\xBF", 3) ? 3 : 0;   // UTF-8 BOM
  while (pos < R->len)
    if (read_line(R, &pos) < 0)
      return -1;
  if (R->rows == 0)
    return fail(R, 0, 0, "the file has no numbers");
  return 0;
}

int io_read_matrix(const char *path, io_matrix *m, md_error *err) {
  diag_clear(err);
  *m = (io_matrix){NULL, 0, 0};
  Reader R = {.file = path, .err = err};
  char *text = io_read_file(path, &R.len, err);
  if (!text)
    return -1;
  R.src = text;
  int rc = read_text(&R);
  free(text);
  if (rc < 0) {
    free(R.data);
    return -1;
  }
  *m = (io_matrix){R.data, R.rows, R.cols};
  return 0;
}

/* ---- writing ------------------------------------------------------------ */

static int write_rows(FILE *f, const double *data, long rows, long cols) {
  for (long i = 0; i < rows; i++)
    for (long j = 0; j < cols; j++)
      if (fprintf(f, "%.17g%c", data[i * cols + j], j + 1 < cols ? ' ' : '\n') < 0)
        return -1;
  return 0;
}

int io_write_matrix(const char *path, const double *data, long rows, long cols, md_error *err) {
  diag_clear(err);
  if (rows < 1 || cols < 1) {
    diag_plain(err, "cannot write an empty %ld x %ld matrix to '%s'", rows, cols, path);
    return -1;
  }
  FILE *f = io_create(path, err);
  return f ? io_close(f, write_rows(f, data, rows, cols), path, err) : -1;
}

/* ---- printing ----------------------------------------------------------- */

// PyTorch's layout: every entry right-aligned to the widest one,
//   [[ -5.5354,   2.2788],
//    [  7.0786, -20.8719]]
void io_print_matrix(FILE *f, const char *label, const double *data, long rows, long cols) {
  if (label)
    fprintf(f, "%s =%s", label, rows == 1 && cols == 1 ? " " : "\n");
  if (rows < 1 || cols < 1) {
    fprintf(f, "[]\n");
    return;
  }
  if (rows == 1 && cols == 1) {
    fprintf(f, "%.4f\n", data[0]);
    return;
  }
  int width = 0;
  for (long k = 0; k < rows * cols; k++) {
    int w = snprintf(NULL, 0, "%.4f", data[k]);
    if (w > width)
      width = w;
  }
  for (long i = 0; i < rows; i++) {
    fputs(i == 0 ? "[[" : " [", f);
    for (long j = 0; j < cols; j++)
      fprintf(f, "%s%*.4f", j ? ", " : "", width, data[i * cols + j]);
    fputs(i + 1 < rows ? "],\n" : "]]\n", f);
  }
}
