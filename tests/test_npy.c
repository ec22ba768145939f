/*
 * test_npy.c - unit tests of NumPy's .npy format (compiler/npy.c), with
 * NumPy itself as the oracle: Debian's /usr/bin/python3 writes files of
 * every kind matdiff reads (float64 and float32, both byte orders, C and
 * Fortran order, 0-d, 1-d and 2-d, format versions 1.0, 2.0 and 3.0), and
 * npy_read must give the values np.load gives, bit for bit; what npy_write
 * writes, np.load must read back exactly, and the bytes must be the ones
 * np.save writes. (The default python3 on PATH may lack NumPy; those tests
 * skip, saying so, when /usr/bin/python3 cannot import it.)
 *
 * Hand-made files cover the headers NumPy never writes but accepts, and
 * every malformed file: each gives its located error, down to the caret.
 * Every test works in its own mkdtemp directory.
 */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <dirent.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "npy.h"
#include "util.h"

#define PYTHON "/usr/bin/python3"

/* ---- fixture: a temporary directory per test ----------------------------- */

static void setup(void) { tmpdir_setup("test_npy"); }

TestSuite(npy, .init = setup, .fini = tmpdir_remove);

/* ---- NumPy, through /usr/bin/python3 ------------------------------------- */

// Every script starts with this: NumPy or a note that it is missing, the
// test's directory as D, and two ways to describe an array or a file.
static const char prelude[] =
    "import io, sys\n"
    "try:\n"
    "    import numpy as np\n"
    "except ImportError:\n"
    "    print('NO NUMPY'); sys.exit(0)\n"
    "D = sys.argv[1]\n"
    "# An array as matdiff reads it: rows cols, then row-major float64 in hex.\n"
    "def hexes(a):\n"
    "    v = np.asarray(a, dtype=np.float64)\n"
    "    r, c = (1, 1) if v.ndim == 0 else (v.shape[0], 1) if v.ndim == 1 else v.shape\n"
    "    return '%d %d %s' % (r, c, ' '.join(float(x).hex() for x in v.ravel()))\n"
    "# What a file's header says: version, dtype, order, shape.\n"
    "def header(p):\n"
    "    with open(p, 'rb') as f:\n"
    "        v = np.lib.format.read_magic(f)\n"
    "        read = np.lib.format.read_array_header_1_0 if v == (1, 0) else \\\n"
    "            np.lib.format.read_array_header_2_0   # 3.0 differs only in UTF-8\n"
    "        shape, fortran, dtype = read(f)\n"
    "    return '%d.%d %s %s %s' % (v[0], v[1], dtype.str, 'F' if fortran else 'C', shape)\n";

// Run SCRIPT after the prelude with /usr/bin/python3 and return what it
// prints (malloc'd). Skips the test when that Python or its NumPy is
// missing; fails it, showing the traceback, when the script fails.
static char *numpy(const char *script) {
  const char *py = tmpdir_path("script.py"), *errors = tmpdir_path("stderr.txt");
  FILE *f = fopen(py, "w");
  cr_assert_not_null(f);
  fputs(prelude, f);
  fputs(script, f);
  fclose(f);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "%s %s %s 2>%s", PYTHON, py, tmpdir(), errors);
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p, "popen failed");
  size_t len = 0, cap = 1 << 16;
  char *out = malloc(cap);
  cr_assert_not_null(out);
  for (size_t got; (got = fread(out + len, 1, cap - len - 1, p)) > 0;)
    if ((len += got) + 1 == cap)
      cr_assert_not_null(out = realloc(out, cap *= 2));
  out[len] = '\0';
  int status = pclose(p);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
    free(out);
    cr_skip_test("%s not found: the NumPy tests need Debian's python3-numpy", PYTHON);
  }
  if (!strncmp(out, "NO NUMPY", 8)) {
    free(out);
    cr_skip_test("%s cannot import numpy: apt-get install python3-numpy", PYTHON);
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    char *traceback = slurp(errors);
    cr_assert_fail("the script failed:\n%s\n%s%s", script, out, traceback ? traceback : "");
  }
  return out;
}

// Compare M with "rows cols hex..." from hexes() at *S, bit for bit;
// *S is left after it.
static void expect_hexes(const io_matrix *m, char **s, const char *what) {
  long rows = strtol(*s, s, 10), cols = strtol(*s, s, 10);
  cr_assert_eq(m->rows, rows, "%s: %ld rows, NumPy has %ld", what, m->rows, rows);
  cr_assert_eq(m->cols, cols, "%s: %ld cols, NumPy has %ld", what, m->cols, cols);
  for (long k = 0; k < rows * cols; k++) {
    double want = strtod(*s, s);
    cr_assert(!memcmp(&m->data[k], &want, sizeof want), "%s: entry %ld is %a, NumPy has %a",
              what, k, m->data[k], want);
  }
}

/* ---- reading what NumPy writes ------------------------------------------- */

// NumPy makes the array A (a Python expression; rng is seeded) and writes it
// to a.npy by SAVE (np.save(p, a) when NULL). Its header must say HEADER,
// "version dtype C|F shape", so that the file is the kind the test is
// about; npy_read must then give what np.load gives.
static void expect_numpy_read(const char *a, const char *save, const char *header) {
  char script[2048];
  snprintf(script, sizeof script,
           "rng = np.random.default_rng(6)\n"
           "a = %s\n"
           "p = D + '/a.npy'\n"
           "%s\n"
           "print(header(p))\n"
           "print(hexes(np.load(p)))\n",
           a, save ? save : "np.save(p, a)");
  char *out = numpy(script);
  char *nl = strchr(out, '\n');
  cr_assert_not_null(nl, "%s", out);
  *nl = '\0';
  cr_assert_str_eq(out, header, "NumPy wrote a different kind of file than the test wants");
  io_matrix m;
  md_error err;
  int rc = npy_read(tmpdir_path("a.npy"), &m, &err);
  cr_assert_eq(rc, 0, "%s: %s", header, err.diag);
  char *s = nl + 1;
  expect_hexes(&m, &s, header);
  free(m.data);
  free(out);
}

#define FORTRAN(x) "np.asfortranarray(" x ")"
#define VERSION(v) "with open(p, 'wb') as f: np.lib.format.write_array(f, a, version=" v ")"

Test(npy, f8_c_order) {
  expect_numpy_read("rng.standard_normal((3, 4))", NULL, "1.0 <f8 C (3, 4)");
}

Test(npy, f8_fortran_order) {
  expect_numpy_read(FORTRAN("rng.standard_normal((3, 4))"), NULL, "1.0 <f8 F (3, 4)");
}

Test(npy, f4_c_order) {
  expect_numpy_read("rng.standard_normal((5, 2)).astype('<f4')", NULL, "1.0 <f4 C (5, 2)");
}

Test(npy, f4_fortran_order) {
  expect_numpy_read(FORTRAN("rng.standard_normal((5, 2)).astype('<f4')"), NULL,
                    "1.0 <f4 F (5, 2)");
}

Test(npy, big_endian_f8) {
  expect_numpy_read("rng.standard_normal((2, 3)).astype('>f8')", NULL, "1.0 >f8 C (2, 3)");
  expect_numpy_read(FORTRAN("rng.standard_normal((2, 3)).astype('>f8')"), NULL,
                    "1.0 >f8 F (2, 3)");
}

Test(npy, big_endian_f4) {
  expect_numpy_read("rng.standard_normal((4, 3)).astype('>f4')", NULL, "1.0 >f4 C (4, 3)");
  expect_numpy_read(FORTRAN("rng.standard_normal((4, 3)).astype('>f4')"), NULL,
                    "1.0 >f4 F (4, 3)");
}

Test(npy, scalar_0d_is_1x1) {
  expect_numpy_read("np.array(np.pi)", NULL, "1.0 <f8 C ()");
  expect_numpy_read("np.array(-1.1, dtype='>f4')", NULL, "1.0 >f4 C ()");
}

Test(npy, vector_1d_is_a_column) {
  expect_numpy_read("rng.standard_normal(7)", NULL, "1.0 <f8 C (7,)");
  expect_numpy_read("rng.standard_normal(1).astype('>f4')", NULL, "1.0 >f4 C (1,)");
}

// NumPy never writes a 1-d array as Fortran order, but it reads one.
Test(npy, vector_1d_fortran_order) {
  expect_numpy_read("rng.standard_normal(3)",
                    "with open(p, 'wb') as f:\n"
                    "    np.lib.format.write_array_header_1_0(f, {'descr': '<f8', "
                    "'fortran_order': True, 'shape': (3,)})\n"
                    "    a.tofile(f)",
                    "1.0 <f8 F (3,)");
}

Test(npy, rows_columns_and_1x1) {
  expect_numpy_read("rng.standard_normal((1, 5))", NULL, "1.0 <f8 C (1, 5)");
  expect_numpy_read("rng.standard_normal((5, 1))", NULL, "1.0 <f8 C (5, 1)");
  expect_numpy_read("np.array([[2.5]])", NULL, "1.0 <f8 C (1, 1)");
}

Test(npy, format_version_2) {
  expect_numpy_read("rng.standard_normal((3, 2))", VERSION("(2, 0)"), "2.0 <f8 C (3, 2)");
}

Test(npy, format_version_3) {
  expect_numpy_read(FORTRAN("rng.standard_normal((2, 5)).astype('>f4')"), VERSION("(3, 0)"),
                    "3.0 >f4 F (2, 5)");
}

Test(npy, extreme_f8_values) {
  expect_numpy_read("np.array([[0.0, -0.0, 5e-324], [1.7976931348623157e308, "
                    "-2.2250738585072014e-308, 0.1]]).astype('>f8')",
                    NULL, "1.0 >f8 C (2, 3)");
}

Test(npy, extreme_f4_values) {
  expect_numpy_read("np.array([1e-45, -0.0, 3.4028235e38, -1.1754944e-38, 1/3], dtype='<f4')",
                    NULL, "1.0 <f4 C (5,)");
  expect_numpy_read("np.array([1e-45, -0.0, 3.4028235e38, -1.1754944e-38, 1/3], dtype='>f4')",
                    NULL, "1.0 >f4 C (5,)");
}

// Many entries across the whole exponent range, transposed on the way in.
Test(npy, large_fortran_big_endian) {
  expect_numpy_read(FORTRAN("(rng.standard_normal((37, 53)) * "
                            "10.0 ** rng.integers(-300, 300, (37, 53))).astype('>f8')"),
                    NULL, "1.0 >f8 F (37, 53)");
}

/* ---- writing what NumPy reads -------------------------------------------- */

typedef struct WriteCase {
  const char *name;
  long rows, cols;
  int vector;
  const char *shape;   /* the shape np.load must see, as Python writes it */
} WriteCase;

static const WriteCase write_cases[] = {
    {"matrix.npy", 3, 4, 0, "(3, 4)"},
    {"scalar.npy", 1, 1, 0, "()"},
    {"vector.npy", 5, 1, 1, "(5,)"},
    {"vector1.npy", 1, 1, 1, "(1,)"},
    {"column.npy", 5, 1, 0, "(5, 1)"},
    {"row.npy", 1, 5, 0, "(1, 5)"},
    {"tall.npy", 1234, 3, 0, "(1234, 3)"},
    {"long_vector.npy", 100000, 1, 1, "(100000,)"},
};
#define NWRITE (sizeof write_cases / sizeof write_cases[0])

// Doubles across the whole range, and the awkward ones first.
static void fill(double *a, long n, unsigned seed) {
  double special[] = {0.1,     -0.0,         DBL_MAX, -DBL_MIN, DBL_TRUE_MIN, 1.0 / 3,
                      nextafter(1, 2), 162.55115544756484};
  srand(seed);
  for (long k = 0; k < n; k++)
    a[k] = k < 8 && seed % 2 ? special[k]
                             : ldexp((double)rand() / RAND_MAX - 0.5, rand() % 2000 - 1000);
}

// npy_write every case; np.load must see the shape and the values, and the
// bytes must be what np.save writes for that array, header and all.
Test(npy, numpy_reads_what_npy_write_writes) {
  const char *want = tmpdir_path("want.txt");
  FILE *w = fopen(want, "w");
  cr_assert_not_null(w);
  for (size_t i = 0; i < NWRITE; i++) {
    const WriteCase *c = &write_cases[i];
    long n = c->rows * c->cols;
    double *a = malloc((size_t)n * sizeof *a);
    fill(a, n, (unsigned)i + 1);
    md_error err;
    cr_assert_eq(npy_write(tmpdir_path(c->name), a, c->rows, c->cols, c->vector, &err), 0, "%s",
                 err.diag);
    fprintf(w, "%s|%s|", c->name, c->shape);
    for (long k = 0; k < n; k++)
      fprintf(w, "%a ", a[k]);
    fputc('\n', w);
    free(a);
  }
  fclose(w);
  char *out = numpy(
      "for line in open(D + '/want.txt'):\n"
      "    name, shape, values = line.rstrip('\\n').split('|')\n"
      "    shape = eval(shape)\n"
      "    want = np.array([float.fromhex(x) for x in values.split()]).reshape(shape)\n"
      "    p = D + '/' + name\n"
      "    a = np.load(p)\n"
      "    saved = io.BytesIO()\n"
      "    np.save(saved, want)\n"
      "    raw = open(p, 'rb').read()\n"
      "    if a.dtype.str != '<f8': print('FAIL', name, 'dtype', a.dtype.str)\n"
      "    elif a.shape != shape: print('FAIL', name, 'shape', a.shape)\n"
      "    elif a.tobytes() != want.tobytes(): print('FAIL', name, 'values differ')\n"
      "    elif raw != saved.getvalue():\n"
      "        print('FAIL', name, 'np.save writes', saved.getvalue()[:128], 'not', raw[:128])\n"
      "    else: print('ok', name)\n");
  char expect[1024] = "";
  for (size_t i = 0; i < NWRITE; i++)
    snprintf(expect + strlen(expect), sizeof expect - strlen(expect), "ok %s\n",
             write_cases[i].name);
  cr_assert_str_eq(out, expect);
  free(out);
}

// The same cases back through npy_read, bit for bit: a scalar and a vector
// come back as 1 x 1 and n x 1.
Test(npy, round_trip_is_exact) {
  for (size_t i = 0; i < NWRITE; i++) {
    const WriteCase *c = &write_cases[i];
    long n = c->rows * c->cols;
    double *a = malloc((size_t)n * sizeof *a);
    fill(a, n, (unsigned)i + 1);
    md_error err;
    const char *path = tmpdir_path(c->name);
    cr_assert_eq(npy_write(path, a, c->rows, c->cols, c->vector, &err), 0, "%s", err.diag);
    io_matrix m;
    cr_assert_eq(npy_read(path, &m, &err), 0, "%s: %s", c->name, err.diag);
    cr_assert_eq(m.rows, c->rows, "%s", c->name);
    cr_assert_eq(m.cols, c->cols, "%s", c->name);
    cr_assert(!memcmp(m.data, a, (size_t)n * sizeof *a), "%s: values differ", c->name);
    free(m.data);
    free(a);
  }
}

// The header, byte for byte, as np.save writes it (numpy 1.24): sorted keys,
// 21 - len("3") spaces of room to grow, padding to 128 bytes, '\n'.
Test(npy, header_bytes) {
  md_error err;
  const char *path = tmpdir_path("h.npy");
  cr_assert_eq(npy_write(path, (double[]){1, 2, 3, 4, 5, 6}, 3, 2, 0, &err), 0, "%s", err.diag);
  unsigned char buf[256];
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f);
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  cr_assert_eq(n, 128 + 6 * 8);
  cr_assert(!memcmp(buf, "\x93NUMPY\x01\x00\x76\x00", 10));
  const char *dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }";
  cr_assert(!memcmp(buf + 10, dict, strlen(dict)));
  for (size_t i = 10 + strlen(dict); i < 127; i++)
    cr_assert_eq(buf[i], ' ', "byte %zu", i);
  cr_assert_eq(buf[127], '\n');
  // 2.0 is 0x4000000000000000, little-endian.
  cr_assert(!memcmp(buf + 136, "\0\0\0\0\0\0\0\x40", 8));
}

Test(npy, write_errors) {
  md_error err;
  char path[128], want[256];
  snprintf(path, sizeof path, "%s/no/such/dir.npy", tmpdir());
  cr_assert_eq(npy_write(path, (double[]){1}, 1, 1, 0, &err), -1);
  snprintf(want, sizeof want, "cannot write '%s': No such file or directory", path);
  cr_assert_str_eq(err.message, want);
  const char *e = tmpdir_path("e.npy");
  cr_assert_eq(npy_write(e, NULL, 0, 3, 0, &err), -1);
  snprintf(want, sizeof want, "cannot write an empty 0 x 3 matrix to '%s'", e);
  cr_assert_str_eq(err.message, want);
  cr_assert_eq(npy_write(e, (double[]){1, 2, 3, 4}, 2, 2, 1, &err), -1);
  snprintf(want, sizeof want, "cannot write a 2 x 2 matrix to '%s' as a vector (one column)", e);
  cr_assert_str_eq(err.message, want);
}

Test(npy, is_npy_by_the_magic) {
  md_error err;
  const char *npy = tmpdir_path("x.npy");
  cr_assert_eq(npy_write(npy, (double[]){1}, 1, 1, 0, &err), 0);
  cr_assert(npy_is_npy(npy));
  cr_assert_not(npy_is_npy(tmpdir_text("x.txt", "1 2\n3 4\n")));
  cr_assert_not(npy_is_npy(tmpdir_text("short.npy", "\x93NUM")));
  cr_assert_not(npy_is_npy(tmpdir_text("empty.npy", "")));
  cr_assert_not(npy_is_npy(tmpdir_path("missing.npy")));
  cr_assert_not(npy_is_npy(tmpdir()));
}

/* ---- headers NumPy does not write but reads ------------------------------ */

static unsigned char file[1 << 16];

// A .npy file, format version MAJOR.0, whose header is HEADER exactly (the
// length field says strlen(HEADER)), then NDATA bytes of DATA (zeros when
// NULL). Returns its length, in FILE.
static size_t craft(int major, const char *header, const void *data, size_t ndata) {
  size_t h = strlen(header), at = major == 1 ? 10 : 12;
  memcpy(file, "\x93NUMPY", 6);
  file[6] = (unsigned char)major;
  file[7] = 0;
  for (size_t i = 8; i < at; i++)
    file[i] = (unsigned char)(h >> 8 * (i - 8));
  memcpy(file + at, header, h);
  if (data)
    memcpy(file + at + h, data, ndata);
  else
    memset(file + at + h, 0, ndata);
  return at + h + ndata;
}

// HEADER padded as NumPy pads it, to 118 bytes: version 1.0 data at byte 128.
static const char *padded(const char *header) {
  static char buf[119];
  snprintf(buf, sizeof buf, "%-117s\n", header);
  return buf;
}

// Big-endian float32s, and doubles in either order.
static void put_f4_be(unsigned char *p, float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  for (int i = 0; i < 4; i++)
    p[i] = (unsigned char)(u >> 8 * (3 - i));
}

static void put_f8(unsigned char *p, double x, int big) {
  uint64_t u;
  memcpy(&u, &x, 8);
  for (int i = 0; i < 8; i++)
    p[i] = (unsigned char)(u >> 8 * (big ? 7 - i : i));
}

static io_matrix expect_read(const char *name, size_t len, long rows, long cols,
                             const double *want) {
  io_matrix m;
  md_error err;
  int rc = npy_read(tmpdir_file(name, file, len), &m, &err);
  cr_assert_eq(rc, 0, "%s: %s", name, err.diag);
  cr_assert_eq(m.rows, rows, "%s", name);
  cr_assert_eq(m.cols, cols, "%s", name);
  for (long k = 0; k < rows * cols; k++)
    cr_assert_eq(m.data[k], want[k], "%s: entry %ld is %a, expected %a", name, k, m.data[k],
                 want[k]);
  return m;
}

// Keys in any order, double quotes, no trailing comma, no padding and no
// '\n', spaces and tabs and newlines between tokens, Python 2's 2L: a dict
// is a dict. NumPy must agree on each file.
Test(npy, handmade_headers) {
  unsigned char d[32];
  float f[4] = {1.5f, -2.25f, 3.0f, 0.1f};
  for (int i = 0; i < 4; i++)
    put_f4_be(d + 4 * i, f[i]);
  size_t n = craft(1, "{\"shape\": (2, 2), \"fortran_order\": True, \"descr\": \">f4\"}", d, 16);
  io_matrix m = expect_read("order.npy", n, 2, 2, (double[]){1.5, 3.0, -2.25, (double)0.1f});
  free(m.data);

  for (int i = 0; i < 3; i++)
    put_f8(d + 8 * i, i + 0.5, 0);
  n = craft(2, "{\n 'descr' : '<f8' ,\t'fortran_order':False,'shape':( 3 , ) }\n", d, 24);
  m = expect_read("space.npy", n, 3, 1, (double[]){0.5, 1.5, 2.5});
  free(m.data);

  n = craft(1, padded("{'descr': '<f8', 'fortran_order': False, 'shape': (1L, 3L), }"), d, 24);
  m = expect_read("long.npy", n, 1, 3, (double[]){0.5, 1.5, 2.5});
  free(m.data);

  char *out = numpy("for name in ['order', 'space', 'long']:\n"
                    "    print(hexes(np.load(D + '/' + name + '.npy')))\n");
  char *s = out;
  const char *names[] = {"order.npy", "space.npy", "long.npy"};
  for (int i = 0; i < 3; i++) {
    cr_assert_eq(npy_read(tmpdir_path(names[i]), &m, &(md_error){0}), 0);
    expect_hexes(&m, &s, names[i]);
    free(m.data);
  }
  free(out);
}

/* ---- malformed files ----------------------------------------------------- */

// Read LEN bytes of FILE and expect the error MESSAGE at 1:COL, whose
// diagnostic shows SOURCE and a caret WIDTH wide at COL under it.
static void expect_error_shown(size_t len, int col, int width, const char *message,
                               const char *source) {
  const char *path = tmpdir_file("bad.npy", file, len);
  io_matrix m = {(double *)&m, 7, 7};
  md_error err;
  memset(&err, 'x', sizeof err);   // npy_read must clear it
  cr_assert_eq(npy_read(path, &m, &err), -1);
  cr_assert_null(m.data);
  cr_assert_eq(m.rows, 0);
  cr_assert_eq(m.cols, 0);
  cr_assert_eq(err.line, 1);
  cr_assert_eq(err.col, col, "col %d, expected %d (%s)", err.col, col, err.message);
  cr_assert_str_eq(err.message, message);
  char caret[256];
  memset(caret, ' ', (size_t)col - 1);
  caret[col - 1] = '^';
  memset(caret + col, '~', (size_t)width - 1);
  caret[col - 1 + width] = '\0';
  char want[1400];
  snprintf(want, sizeof want, "%s:1:%d: error: %s\n%s\n%s", path, col, message, source, caret);
  cr_assert_str_eq(err.diag, want);
}

// The same for a version 1.0 file with HEADER and NDATA zero bytes of data:
// the diagnostic shows the preamble as "?NUMPY????", then the header.
static void expect_error(const char *header, size_t ndata, int col, int width,
                         const char *message) {
  size_t len = craft(1, header, NULL, ndata);
  char source[512];
  snprintf(source, sizeof source, "?NUMPY????%s", header);
  for (size_t n = strlen(source); n > 0 && strchr(" \n", source[n - 1]); n--)
    source[n - 1] = '\0';
  expect_error_shown(len, col, width, message, source);
}

Test(npy, not_npy) {
  memcpy(file, "1 2\n3 4\n", 8);
  expect_error_shown(8, 1, 3, "not a .npy file: it does not start with \\x93NUMPY", "1 2");
  memcpy(file, "\x93NUMPX\x01\x00", 8);
  expect_error_shown(8, 1, 6, "not a .npy file: it does not start with \\x93NUMPY",
                     "?NUMPX??");
}

Test(npy, empty_and_truncated_preamble) {
  expect_error_shown(0, 1, 1, "empty file: not a .npy file", "");
  memcpy(file, "\x93NUM", 4);
  expect_error_shown(4, 5, 1, "truncated .npy file: it ends at byte 4, inside the preamble",
                     "?NUM");
  memcpy(file, "\x93NUMPY\x02\x00\x10", 9);
  expect_error_shown(9, 10, 1, "truncated .npy file: it ends at byte 9, inside the preamble",
                     "?NUMPY???");
}

Test(npy, unsupported_version) {
  size_t n = craft(4, "{}", NULL, 0);
  expect_error_shown(n, 7, 2, "unsupported .npy format version 4.0: matdiff reads 1.0, 2.0 and "
                     "3.0", "?NUMPY??????");
  file[6] = 1;
  file[7] = 1;
  expect_error_shown(n, 7, 2, "unsupported .npy format version 1.1: matdiff reads 1.0, 2.0 and "
                     "3.0", "?NUMPY??????");
}

Test(npy, truncated_header) {
  const char *h = padded("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }");
  craft(1, h, NULL, 0);
  expect_error_shown(30, 9, 2, "truncated .npy file: the header length says 118 bytes, the "
                     "file ends after 20 of them", "?NUMPY????{'descr': '<f8', 'fo");
}

Test(npy, header_too_long) {
  size_t n = craft(2, "{}", NULL, 0);
  file[10] = 0x20;   // 2 MiB
  expect_error_shown(n, 9, 4, "the header length says 2097154 bytes: too long for the header "
                     "of a float array (100000 at most)", "?NUMPY??????");
}

Test(npy, header_not_a_dict) {
  expect_error("['descr', 1]", 0, 11, 1,
               "expected '{' to open the header's dictionary, found '['");
  expect_error("", 0, 11, 1, "expected '{' to open the header's dictionary, found the end of "
               "the header");
}

Test(npy, header_syntax) {
  expect_error("{'descr' '<f8', 'fortran_order': False, 'shape': (2,), }", 16, 20, 5,
               "expected ':' after the key, found '<f8'");
  expect_error("{'descr': '<f8', 'fortran_order': False, 'shape': (2,)", 16, 65, 1,
               "expected ',' or '}' after the value, found the end of the header");
  expect_error("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), } x", 16, 69, 1,
               "expected the end of the header after '}', found 'x'");
  expect_error("{'descr': '<f8", 0, 21, 4, "unterminated string");
  expect_error("{'de\\scr': '<f8', 'fortran_order': False, 'shape': (2,), }", 16, 15, 1,
               "escape sequences are not supported in a .npy header");
  expect_error("{descr: '<f8'}", 0, 12, 5,
               "expected a key string such as 'shape', found 'descr'");
}

Test(npy, header_keys) {
  expect_error("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), 'dims': 2}", 16, 67, 6,
               "unknown key 'dims': a .npy header has 'descr', 'fortran_order' and 'shape'");
  expect_error("{'descr': '<f8', 'shape': (2,), 'descr': '<f8'}", 16, 43, 7,
               "the key 'descr' appears twice");
  expect_error("{'descr': '<f8', 'shape': (2,), }", 16, 43, 1,
               "the header has no 'fortran_order' key");
  expect_error("{}", 0, 12, 1, "the header has no 'descr' key");
}

Test(npy, unsupported_dtypes) {
  expect_error("{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", 16, 21, 5,
               "dtype '<i8' (64-bit integers) is not supported: matdiff reads float64 and "
               "float32; save a.astype(np.float64)");
  expect_error("{'descr': '<c16', 'fortran_order': False, 'shape': (2,), }", 32, 21, 6,
               "dtype '<c16' (128-bit complex numbers) is not supported: matdiff reads float64 "
               "and float32; save a.astype(np.float64)");
  expect_error("{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }", 4, 21, 5,
               "dtype '<f2' (16-bit floats) is not supported: matdiff reads float64 and "
               "float32; save a.astype(np.float64)");
  expect_error("{'descr': '|b1', 'fortran_order': False, 'shape': (2,), }", 2, 21, 5,
               "dtype '|b1' (booleans) is not supported: matdiff reads float64 and "
               "float32; save a.astype(np.float64)");
  expect_error("{'descr': '<U3', 'fortran_order': False, 'shape': (2,), }", 24, 21, 5,
               "dtype '<U3' (unicode strings) is not supported: matdiff reads float64 and "
               "float32; save a.astype(np.float64)");
  expect_error("{'descr': 'f8', 'fortran_order': False, 'shape': (2,), }", 16, 21, 4,
               "dtype 'f8' does not say its byte order: a .npy file says '<f8' or '>f8'");
  expect_error("{'descr': [('x', '<f8')], 'fortran_order': False, 'shape': (2,), }", 16, 21, 1,
               "structured dtypes are not supported: matdiff reads float64 and float32 arrays");
}

Test(npy, bad_fortran_order) {
  expect_error("{'descr': '<f8', 'fortran_order': 1, 'shape': (2,), }", 16, 45, 1,
               "expected True or False for 'fortran_order', found '1'");
  expect_error("{'descr': '<f8', 'fortran_order': true, 'shape': (2,), }", 16, 45, 4,
               "expected True or False for 'fortran_order', found 'true'");
}

Test(npy, bad_shapes) {
  expect_error("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3, 4), }", 192, 61, 9,
               "a 3-d array, shape (2, 3, 4): matdiff reads 0-d, 1-d and 2-d arrays");
  expect_error("{'descr': '<f8', 'fortran_order': False, 'shape': (3), }", 24, 61, 3,
               "'shape' must be a tuple: (3) is a number, a 1-d shape is written (3,)");
  expect_error("{'descr': '<f8', 'fortran_order': False, 'shape': [2, 3], }", 48, 61, 1,
               "expected a tuple such as (2, 3) for 'shape', found '['");
  expect_error("{'descr': '<f8', 'fortran_order': False, 'shape': (2, -3), }", 0, 65, 1,
               "expected a dimension (a whole number >= 0), found '-'");
  expect_error("{'descr': '<f8', 'fortran_order': False, 'shape': (2.5,), }", 0, 63, 1,
               "expected ',' or ')' in the shape, found '.'");
  expect_error("{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999,), }",
               0, 62, 20, "dimension 99999999999999999999 is too large");
  expect_error("{'descr': '<f8', 'fortran_order': False, 'shape': (1099511627776, "
               "1099511627776), }", 0, 61, 30,
               "shape (1099511627776, 1099511627776) is too large");
  expect_error("{'descr': '<f8', 'fortran_order': False, 'shape': (0, 3), }", 0, 61, 6,
               "shape (0, 3) has no entries: matdiff needs at least one number");
}

Test(npy, data_length_must_match_the_shape) {
  const char *h = padded("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }");
  expect_error(h, 40, 61, 6, "shape (2, 3) of '<f8' needs 48 bytes of data after the header "
               "(byte 128 on), the file has 40");
  expect_error(h, 56, 61, 6, "shape (2, 3) of '<f8' needs 48 bytes of data after the header "
               "(byte 128 on), the file has 56");
  expect_error(h, 0, 61, 6, "shape (2, 3) of '<f8' needs 48 bytes of data after the header "
               "(byte 128 on), the file has 0");
  h = padded("{'descr': '>f4', 'fortran_order': False, 'shape': (), }");
  expect_error(h, 8, 61, 2, "shape () of '>f4' needs 4 bytes of data after the header "
               "(byte 128 on), the file has 8");
}

// A version 2.0 header starts at byte 12, so its columns are 2 further on.
Test(npy, version_2_columns) {
  size_t n = craft(2, "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", NULL, 8);
  expect_error_shown(n, 23, 5, "dtype '<i4' (32-bit integers) is not supported: matdiff reads "
                     "float64 and float32; save a.astype(np.float64)",
                     "?NUMPY??????{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }");
}

// Bytes that are not printable show as '?', so columns stay byte offsets.
Test(npy, unprintable_header_bytes) {
  size_t n = craft(3, "{'descr': '<f8',\x01 'sh\xc3\xa9': (2,)}", NULL, 16);
  expect_error_shown(n, 29, 1, "expected a key string such as 'shape', found '?'",
                     "?NUMPY??????{'descr': '<f8',? 'sh?\?': (2,)}");
  n = craft(3, "{'descr': '<f8', 'sh\xc3\xa9': (2,)}", NULL, 16);
  expect_error_shown(n, 30, 6, "unknown key 'sh?\?': a .npy header has 'descr', "
                     "'fortran_order' and 'shape'", "?NUMPY??????{'descr': '<f8', 'sh?\?': (2,)}");
}

// A value that is not finite is an error, as in a text matrix. The data is
// binary, so the error is at 1:byte+1 and shows no line.
static void expect_data_error(const char *header, const unsigned char *data, size_t ndata,
                              int col, const char *message) {
  size_t len = craft(1, padded(header), data, ndata);
  const char *path = tmpdir_file("nan.npy", file, len);
  io_matrix m = {(double *)&m, 7, 7};
  md_error err;
  cr_assert_eq(npy_read(path, &m, &err), -1);
  cr_assert_null(m.data);
  cr_assert_eq(err.line, 1);
  cr_assert_eq(err.col, col);
  cr_assert_str_eq(err.message, message);
  char want[1024];
  snprintf(want, sizeof want, "%s:1:%d: error: %s", path, col, message);
  cr_assert_str_eq(err.diag, want);
}

Test(npy, non_finite_entries) {
  unsigned char d[32];
  for (int i = 0; i < 4; i++)
    put_f8(d + 8 * i, i == 2 ? NAN : i, 0);
  expect_data_error("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }", d, 32, 145,
                    "entry [1, 0] (byte 144) is nan: matdiff reads finite numbers only");
  // The same bytes in Fortran order are column 1 of row 0.
  expect_data_error("{'descr': '<f8', 'fortran_order': True, 'shape': (2, 2), }", d, 32, 145,
                    "entry [0, 1] (byte 144) is nan: matdiff reads finite numbers only");
  put_f4_be(d, 1);
  put_f4_be(d + 4, -INFINITY);
  expect_data_error("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", d, 8, 133,
                    "entry [1] (byte 132) is -inf: matdiff reads finite numbers only");
  put_f8(d, INFINITY, 1);
  expect_data_error("{'descr': '>f8', 'fortran_order': False, 'shape': (), }", d, 8, 129,
                    "the scalar (byte 128) is inf: matdiff reads finite numbers only");
}

Test(npy, missing_file_and_directory) {
  io_matrix m;
  md_error err;
  const char *path = tmpdir_path("nope.npy");
  cr_assert_eq(npy_read(path, &m, &err), -1);
  char want[256];
  snprintf(want, sizeof want, "cannot read '%s': No such file or directory", path);
  cr_assert_str_eq(err.message, want);
  cr_assert_eq(err.line, 0);
  cr_assert_null(m.data);
  cr_assert_eq(npy_read(tmpdir(), &m, &err), -1);
  snprintf(want, sizeof want, "cannot read '%s': Is a directory", tmpdir());
  cr_assert_str_eq(err.message, want);
}

/* ---- no file crashes it ------------------------------------------------- */

// Read the LEN bytes of FILE: an error must leave M empty and say where;
// success must give a whole matrix. (valgrind and SAN=1 watch the rest.)
static void expect_survives(size_t len, const char *what) {
  io_matrix m;
  md_error err;
  const char *path = tmpdir_file("fuzz.npy", file, len);
  if (npy_read(path, &m, &err) == 0) {
    cr_assert(m.data && m.rows >= 1 && m.cols >= 1, "%s", what);
    free(m.data);
  } else {
    cr_assert_null(m.data, "%s", what);
    cr_assert(err.message[0] && err.line == 1 && err.col >= 1, "%s: %s", what, err.diag);
  }
}

// Every prefix of a good file, and every byte of its preamble and header
// replaced by each of a few telling bytes.
Test(npy, truncations_and_byte_changes) {
  unsigned char d[48];
  for (int i = 0; i < 6; i++)
    put_f8(d + 8 * i, i, 0);
  const char *h = padded("{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }");
  size_t len = craft(1, h, d, 48);
  unsigned char good[256];
  memcpy(good, file, len);
  char what[64];
  for (size_t n = 0; n < len; n++) {
    snprintf(what, sizeof what, "the first %zu bytes", n);
    expect_survives(n, what);
  }
  const unsigned char bytes[] = {0, '\n', '\'', '"', '{', '}', '(', ')', ',', ':', '9', 'L',
                                 '\\', ' ', 0x80, 0xFF};
  for (size_t i = 0; i < 128; i++)
    for (size_t b = 0; b < sizeof bytes; b++) {
      memcpy(file, good, len);
      file[i] = bytes[b];
      snprintf(what, sizeof what, "byte %zu set to 0x%02x", i, bytes[b]);
      expect_survives(len, what);
    }
}
