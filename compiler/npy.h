/*
 * npy.h - NumPy's .npy format, the other way in and out of `matdiff eval`:
 * NAME=file.npy reads what np.save and torch's .numpy() users have, and
 * --format npy writes results that np.load reads.
 *
 * Read: float64 and float32, either byte order ('<f8' '>f8' '<f4' '>f4'),
 * C or Fortran order, 0-d, 1-d and 2-d, format versions 1.0, 2.0 and 3.0.
 * The layout is NEP 1 (numpy.lib.format):
 *
 *   "\x93NUMPY" major minor   header length: 2 bytes (1.0) or 4 (2.0, 3.0), little-endian
 *   {'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }   spaces, '\n'
 *   the data, rows*cols elements
 *
 * Every error in a file is located, file:1:col with col = byte offset + 1
 * (the header is one line of text; the binary bytes of the preamble show as
 * '?' under the caret). Errors about the data point at the header's shape,
 * and say which bytes.
 */
#ifndef MD_NPY_H
#define MD_NPY_H

#include <stdbool.h>
#include "dataio.h"

/* Read the .npy file at PATH into *M as row-major doubles: shape () is
   1 x 1, (n,) is n x 1, (r, c) is r x c. Every entry must be finite, as in
   a text matrix. Returns 0, or -1 with *ERR filled and *M empty
   ({NULL, 0, 0}). ERR is cleared first. */
int npy_read(const char *path, io_matrix *m, md_error *err);

/* Write ROWS x COLS row-major doubles to PATH as NumPy writes them:
   '<f8', C order, a version 1.0 header padded to 64 bytes, byte for byte
   what np.save gives for the same array. With VECTOR an n x 1 column is
   shape (n,), even for n = 1 (VECTOR with more than one column is an
   error); otherwise a 1 x 1 is a scalar, shape (), and the rest (rows, cols).
   Returns 0, or -1 with *ERR filled. */
int npy_write(const char *path, const double *data, long rows, long cols, int vector,
              md_error *err);

/* Whether PATH starts with the .npy magic string "\x93NUMPY"; false when it
   cannot be read. */
bool npy_is_npy(const char *path);

#endif
