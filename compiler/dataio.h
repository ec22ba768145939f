/*
 * dataio.h - the CLI's data layer: matrices in and out of text files,
 * and matrices printed the way the seed notebook's PyTorch prints tensors.
 *
 * The text format is one row per line, numbers separated by whitespace
 * and/or commas, '#' to end of line a comment, blank lines ignored. A file of
 * one number per line is an n x 1 column, all numbers on one line is 1 x n,
 * a scalar is one number. Numbers are read with strtod, so LC_NUMERIC must
 * be "C" (matdiff never calls setlocale), and must be finite decimals:
 * hexadecimal, which strtod also reads, is an error, as NumPy's loadtxt
 * has it. A comma with no number before it on its line ("1,,3") is an
 * empty entry, an error; one that ends a line is allowed.
 */
#ifndef MD_DATAIO_H
#define MD_DATAIO_H

#include <stdio.h>
#include "matdiff.h"

typedef struct io_matrix {
  double *data;     /* rows*cols doubles, row-major, malloc'd: release with free() */
  long rows, cols;
} io_matrix;

/* The whole file at PATH, NUL-terminated (it may hold NULs too), its length
   in *LEN, malloc'd; or NULL with *ERR filled ("cannot read 'PATH': ...").
   Reading to EOF rather than trusting a size also works for pipes such as
   /dev/stdin. The CLI reads sources, text matrices and .npy files with it;
   at most 2 GiB, since diagnostics locate bytes with ints: a regular file
   larger than that is refused before it is read. */
char *io_read_file(const char *path, long *len, md_error *err);

/* Writing a file: io_create opens PATH afresh (NULL with *ERR filled);
   io_close closes F after the writes, whose status RC is 0 or -1, and
   returns 0, or -1 with *ERR saying why ("cannot write 'PATH': ..."). */
FILE *io_create(const char *path, md_error *err);
int io_close(FILE *f, int rc, const char *path, md_error *err);

/* Read the text matrix at PATH into *M. Returns 0, or -1 with *ERR filled
   (file:line:col, the line and a caret for errors in the text) and *M
   empty ({NULL, 0, 0}). ERR is cleared first. */
int io_read_matrix(const char *path, io_matrix *m, md_error *err);

/* Write ROWS x COLS row-major doubles to PATH with %.17g, one row per line,
   numbers separated by one space, so that io_read_matrix gives back the same
   bits. Non-finite values are written as printf spells them ("nan", "inf"),
   which io_read_matrix then rejects. Returns 0, or -1 with *ERR filled. */
int io_write_matrix(const char *path, const double *data, long rows, long cols, md_error *err);

/* Print "LABEL =" and the matrix as PyTorch prints a tensor: 4 decimals,
   right-aligned to one common width. A 1x1 matrix prints as "LABEL = v". */
void io_print_matrix(FILE *f, const char *label, const double *data, long rows, long cols);

#endif
