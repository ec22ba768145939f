/*
 * linalg_f.c - linalg.c in single precision: the mdrt_X_f twins of the
 * LAPACK kernels of kernels.def, through sgetrf, spotrf and their kin.
 */
#define MDRT_LINALG_FLOAT
#include "linalg.c"
