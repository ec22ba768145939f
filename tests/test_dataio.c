/*
 * test_dataio.c - unit tests of the CLI's data layer (compiler/dataio.c):
 * the text matrix format and each of its errors, down to the caret line,
 * the exact %.17g round trip and the PyTorch-style printing. Every test
 * writes its files into its own mkdtemp directory.
 */
#define _POSIX_C_SOURCE 200809L
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include "dataio.h"
#include "util.h"

/* ---- fixture: a temporary directory per test ----------------------------- */

static void setup(void) { tmpdir_setup("test_dataio"); }

TestSuite(dataio, .init = setup, .fini = tmpdir_remove);

// Read the whole file at PATH (for checking what io_write_matrix wrote).
static char *contents(const char *path) {
  static char buf[4096];
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f);
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  return buf;
}

/* ---- parsing ------------------------------------------------------------- */

// Parse TEXT and expect a ROWS x COLS matrix holding WANT.
static void expect_matrix(const char *text, long rows, long cols, const double *want) {
  io_matrix m;
  md_error err;
  int rc = io_read_matrix(tmpdir_text("m.txt", text), &m, &err);
  cr_assert_eq(rc, 0, "unexpected error: %s", err.diag);
  cr_assert_eq(m.rows, rows);
  cr_assert_eq(m.cols, cols);
  for (long k = 0; k < rows * cols; k++)
    cr_expect_eq(m.data[k], want[k], "entry %ld: %.17g, expected %.17g", k, m.data[k], want[k]);
  free(m.data);
}

Test(dataio, spaces_and_tabs) {
  expect_matrix("1 2 3\n4\t5   6\n", 2, 3, (double[]){1, 2, 3, 4, 5, 6});
}

Test(dataio, commas) {
  expect_matrix("1,2,3\n4, 5 ,6\n", 2, 3, (double[]){1, 2, 3, 4, 5, 6});
}

Test(dataio, trailing_commas_as_pytorch_prints_them) {
  expect_matrix(" 0.8487,  0.6920,\n-0.3160, -2.1152,\n", 2, 2,
                (double[]){0.8487, 0.6920, -0.3160, -2.1152});
}

Test(dataio, comments_and_blank_lines) {
  expect_matrix("# header\n\n1 2  # first row\n   \n# between\n3 4\n\n# end", 2, 2,
                (double[]){1, 2, 3, 4});
}

Test(dataio, crlf_and_no_final_newline) {
  expect_matrix("1 2\r\n3 4", 2, 2, (double[]){1, 2, 3, 4});
}

Test(dataio, utf8_bom) {
  expect_matrix("\xEF\xBB\xBF" "1 2\n", 1, 2, (double[]){1, 2});
}

Test(dataio, one_per_line_is_a_column) {
  expect_matrix("1\n2\n3\n", 3, 1, (double[]){1, 2, 3});
}

Test(dataio, one_line_is_a_row) {
  expect_matrix("1 2 3\n", 1, 3, (double[]){1, 2, 3});
}

Test(dataio, scalar) {
  expect_matrix("# just one\n  42.5  \n", 1, 1, (double[]){42.5});
}

Test(dataio, number_spellings) {
  expect_matrix("-1e-3 +2.5E2 .5 5. 1e308\n", 1, 5, (double[]){-1e-3, 250, 0.5, 5, 1e308});
}

Test(dataio, negative_zero_and_subnormal) {
  io_matrix m;
  md_error err;
  cr_assert_eq(io_read_matrix(tmpdir_text("z.txt", "-0 4.9406564584124654e-324\n"), &m, &err), 0,
               "%s", err.diag);
  cr_assert(signbit(m.data[0]) && m.data[0] == 0);
  cr_assert_eq(m.data[1], DBL_TRUE_MIN);
  free(m.data);
}

/* ---- errors -------------------------------------------------------------- */

// Read LEN bytes of TEXT and expect an error at LINE:COL with MESSAGE, whose
// diagnostic shows SOURCE (the line) and CARET below it.
static void expect_error_n(const char *text, size_t len, int line, int col, const char *message,
                           const char *source, const char *caret) {
  const char *path = tmpdir_file("bad.txt", text, len);
  io_matrix m = {(double *)&m, 7, 7};
  md_error err;
  memset(&err, 'x', sizeof err);   // io_read_matrix must clear it
  cr_assert_eq(io_read_matrix(path, &m, &err), -1);
  cr_assert_null(m.data);
  cr_assert_eq(m.rows, 0);
  cr_assert_eq(m.cols, 0);
  cr_assert_eq(err.line, line, "line %d, expected %d", err.line, line);
  cr_assert_eq(err.col, col, "col %d, expected %d", err.col, col);
  cr_assert_str_eq(err.message, message);
  char want[1200];
  snprintf(want, sizeof want, "%s:%d:%d: error: %s\n%s\n%s", path, line, col, message, source,
           caret);
  cr_assert_str_eq(err.diag, want);
}

static void expect_error(const char *text, int line, int col, const char *message,
                         const char *source, const char *caret) {
  expect_error_n(text, strlen(text), line, col, message, source, caret);
}

Test(dataio, missing_file) {
  io_matrix m;
  md_error err;
  const char *path = tmpdir_path("nope.txt");
  cr_assert_eq(io_read_matrix(path, &m, &err), -1);
  char want[256];
  snprintf(want, sizeof want, "cannot read '%s': No such file or directory", path);
  cr_assert_str_eq(err.message, want);
  cr_assert_eq(err.line, 0);
  cr_assert_eq(err.col, 0);
  char diag[300];
  snprintf(diag, sizeof diag, "error: %s", want);
  cr_assert_str_eq(err.diag, diag);
  cr_assert_null(m.data);
}

Test(dataio, directory) {
  io_matrix m;
  md_error err;
  cr_assert_eq(io_read_matrix(tmpdir(), &m, &err), -1);
  char want[256];
  snprintf(want, sizeof want, "cannot read '%s': Is a directory", tmpdir());
  cr_assert_str_eq(err.message, want);
  cr_assert_null(m.data);
}

Test(dataio, not_a_number) {
  expect_error("1 2\n3 abc\n", 2, 3, "'abc' is not a number", "3 abc", "  ^~~");
}

Test(dataio, not_a_number_after_comma) {
  expect_error("1.5,2.5x, 3\n", 1, 5, "'2.5x' is not a number", "1.5,2.5x, 3", "    ^~~~");
}

Test(dataio, brackets_are_not_numbers) {
  expect_error("[[1, 2],\n [3, 4]]\n", 1, 1, "'[[1' is not a number", "[[1, 2],", "^~~");
}

Test(dataio, long_bad_token_is_shortened) {
  const char *tok = "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz";   // 52 bytes
  char text[64];
  snprintf(text, sizeof text, "%s\n", tok);
  char caret[64];
  memset(caret, '~', 52);
  caret[0] = '^';
  caret[52] = '\0';
  expect_error(text, 1, 1, "'abcdefghijklmnopqrstuvwxyzabcdefghijk...' is not a number", tok,
               caret);
}

Test(dataio, nan) {
  expect_error("1 nan\n", 1, 3, "'nan' is not a finite number", "1 nan", "  ^~~");
}

Test(dataio, inf) {
  expect_error("1 2\n-inf 3\n", 2, 1, "'-inf' is not a finite number", "-inf 3", "^~~~");
}

Test(dataio, infinity_spelled_out) {
  expect_error("# x\n\tInfinity\n", 2, 2, "'Infinity' is not a finite number", " Infinity",
               " ^~~~~~~~");
}

Test(dataio, overflow) {
  expect_error("1 1e400 3\n", 1, 3, "'1e400' is out of range for a double", "1 1e400 3",
               "  ^~~~~");
}

Test(dataio, underflow_to_zero) {
  expect_error("-1e-400\n", 1, 1, "'-1e-400' is out of range for a double", "-1e-400",
               "^~~~~~~");
}

Test(dataio, ragged_long_row) {
  expect_error("1 2 3 4\n5 6 7 8\n  9 10 11 12 13\n", 3, 3, "row 3 has 5 numbers, expected 4",
               "  9 10 11 12 13", "  ^~~~~~~~~~~~~");
}

Test(dataio, ragged_short_row_counts_rows_not_lines) {
  expect_error("# c\n1, 2\n\n3   # short\n", 4, 1, "row 2 has 1 number, expected 2",
               "3   # short", "^");
}

Test(dataio, empty_file) {
  expect_error("", 1, 1, "the file has no numbers", "", "^");
}

Test(dataio, only_comments) {
  expect_error("# nothing here\n\n   \n", 1, 1, "the file has no numbers", "# nothing here",
               "^");
}

Test(dataio, nul_byte) {
  expect_error_n("1 2\n3\0 4\n", 9, 2, 2, "NUL byte: this is not a text file", "3  4", " ^");
}

// "1,,3" was two numbers, so that a 2x3 CSV with an empty cell silently
// became 2x2. An empty entry is an error, wherever a comma has no number
// before it; a comma at the end of a row is how PyTorch prints it.
Test(dataio, empty_entry_between_commas) {
  expect_error("1,2,3\n1,,3\n", 2, 3, "empty entry: two commas with no number between them",
               "1,,3", "  ^");
  expect_error("1, 2 ,\t, 3\n", 1, 8, "empty entry: two commas with no number between them",
               "1, 2 , , 3", "       ^");
  expect_error("1 2\n,3 4\n", 2, 1, "empty entry: a comma before the first number", ",3 4",
               "^");
  expect_error("1,2,,\n", 1, 5, "empty entry: two commas with no number between them", "1,2,,",
               "    ^");
}

// strtod reads hexadecimal, so "0x10" was 16, silently; NumPy's loadtxt
// refuses it, and so does matdiff.
Test(dataio, hexadecimal_is_refused) {
  expect_error("1 0x10\n", 1, 3, "'0x10' is hexadecimal: matdiff reads decimal numbers only",
               "1 0x10", "  ^~~~");
  expect_error("-0X1.8p1\n", 1, 1,
               "'-0X1.8p1' is hexadecimal: matdiff reads decimal numbers only", "-0X1.8p1",
               "^~~~~~~~");
}

// A bad token was quoted raw in the message, so a data file's ESC and BEL
// bytes reached the terminal. They show as '?', as in the source line.
Test(dataio, control_bytes_in_a_message) {
  expect_error("1 2\x1b[31m\a\n", 1, 3, "'2?[31m?' is not a number", "1 2 [31m ",
               "  ^~~~~~~");
}

// A file past the 2 GiB limit was read whole (2 GiB of memory) before being
// refused. Its size is checked first: under a 512 MiB address space, a
// sparse file of 2.2 GB is refused at once.
Test(dataio, too_large_is_refused_before_reading) {
  const char *path = tmpdir_path("big.txt");
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f);
  cr_assert_eq(ftruncate(fileno(f), 2200000000L), 0);
  fclose(f);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  struct rlimit lim = {512L << 20, 512L << 20};
  setrlimit(RLIMIT_AS, &lim);
#endif
  io_matrix m;
  md_error err;
  cr_assert_eq(io_read_matrix(path, &m, &err), -1);
  char want[600];
  snprintf(want, sizeof want, "'%s' is too large (2 GiB at most)", path);
  cr_expect_str_eq(err.message, want);
  unlink(path);
}

Test(dataio, error_after_many_rows_frees_them) {
  char text[8192] = "";
  for (int i = 0; i < 500; i++)
    strcat(text, "1 2 3\n");
  strcat(text, "1 2 x\n");
  expect_error(text, 501, 5, "'x' is not a number", "1 2 x", "    ^");
}

/* ---- writing ------------------------------------------------------------- */

Test(dataio, write_layouts) {
  md_error err;
  const char *path = tmpdir_path("w.txt");
  cr_assert_eq(io_write_matrix(path, (double[]){1, 2.5, -3, 4}, 2, 2, &err), 0, "%s", err.diag);
  cr_assert_str_eq(contents(path), "1 2.5\n-3 4\n");
  cr_assert_eq(io_write_matrix(path, (double[]){1, 2, 3}, 3, 1, &err), 0);
  cr_assert_str_eq(contents(path), "1\n2\n3\n");
  cr_assert_eq(io_write_matrix(path, (double[]){1, 2, 3}, 1, 3, &err), 0);
  cr_assert_str_eq(contents(path), "1 2 3\n");
  cr_assert_eq(io_write_matrix(path, (double[]){0.1}, 1, 1, &err), 0);
  cr_assert_str_eq(contents(path), "0.10000000000000001\n");
}

// Doubles across the whole range, written and read back bit for bit.
Test(dataio, round_trip_is_exact) {
  enum { R = 50, C = 7 };
  static double a[R * C];
  double special[] = {0.1, 1.0 / 3, -0.0, DBL_MAX, -DBL_MAX, DBL_MIN, DBL_TRUE_MIN,
                      nextafter(1, 2), 162.55115544756484, -2.2250738585072009e-308};
  md_rng r;
  md_rng_seed(&r, 7);
  for (int k = 0; k < R * C; k++)
    a[k] = k < 10 ? special[k] : ldexp(md_rng_normal(&r), (int)(md_rng_uniform(&r) * 2000) - 1000);
  md_error err;
  const char *path = tmpdir_path("rt.txt");
  cr_assert_eq(io_write_matrix(path, a, R, C, &err), 0, "%s", err.diag);
  io_matrix m;
  cr_assert_eq(io_read_matrix(path, &m, &err), 0, "%s", err.diag);
  cr_assert_eq(m.rows, R);
  cr_assert_eq(m.cols, C);
  for (int k = 0; k < R * C; k++)
    cr_expect(!memcmp(&m.data[k], &a[k], sizeof a[k]), "entry %d: wrote %a, read %a", k, a[k],
              m.data[k]);
  free(m.data);
}

Test(dataio, write_errors) {
  md_error err;
  char path[128];
  snprintf(path, sizeof path, "%s/no/such/dir.txt", tmpdir());
  cr_assert_eq(io_write_matrix(path, (double[]){1}, 1, 1, &err), -1);
  char want[256];
  snprintf(want, sizeof want, "cannot write '%s': No such file or directory", path);
  cr_assert_str_eq(err.message, want);
  cr_assert_eq(io_write_matrix(tmpdir_path("e.txt"), NULL, 0, 3, &err), -1);
  snprintf(want, sizeof want, "cannot write an empty 0 x 3 matrix to '%s'", tmpdir_path("e.txt"));
  cr_assert_str_eq(err.message, want);
}

/* ---- printing ------------------------------------------------------------ */

// Expect io_print_matrix to print WANT for these arguments.
static void expect_printed(const char *label, const double *data, long rows, long cols,
                           const char *want) {
  char *buf;
  size_t len;
  FILE *f = open_memstream(&buf, &len);
  cr_assert_not_null(f);
  io_print_matrix(f, label, data, rows, cols);
  fclose(f);
  cr_expect_str_eq(buf, want);
  free(buf);
}

// The first two rows of the notebook's x.grad, as torch 1.13 prints them.
Test(dataio, print_like_pytorch) {
  double g[] = {-5.5354, 2.2788, -7.2747, 4.9560, 7.0786, 7.9225, -3.9229, -20.8719};
  expect_printed("dy/dX", g, 2, 4,
                 "dy/dX =\n"
                 "[[ -5.5354,   2.2788,  -7.2747,   4.9560],\n"
                 " [  7.0786,   7.9225,  -3.9229, -20.8719]]\n");
}

Test(dataio, print_scalar) {
  expect_printed("y", (double[]){162.55115544756484}, 1, 1, "y = 162.5512\n");
}

Test(dataio, print_column_and_row) {
  expect_printed("v", (double[]){1, -10.25}, 2, 1, "v =\n[[  1.0000],\n [-10.2500]]\n");
  expect_printed("r", (double[]){0.5, 2}, 1, 2, "r =\n[[0.5000, 2.0000]]\n");
}

Test(dataio, print_without_label_and_empty) {
  expect_printed(NULL, (double[]){3}, 1, 1, "3.0000\n");
  expect_printed("e", NULL, 0, 4, "e =\n[]\n");
}
