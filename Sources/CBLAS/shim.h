#include <cblas.h>
// OpenBLAS extensions: thread control (not part of the reference CBLAS header on every build).
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);

// LAPACK's Cholesky solve of A X = B for symmetric positive definite A, from the LAPACK that
// Debian's libopenblas ships inside the same library (no lapack.h is installed with it). The
// Fortran calling convention: every argument by pointer, column-major storage, and a hidden
// length after the arguments for each CHARACTER argument (gfortran passes it as size_t; leaving
// it out is undefined behaviour that has broken callers built with newer compilers).
void dposv_(const char *uplo, const int *n, const int *nrhs, double *a, const int *lda,
            double *b, const int *ldb, int *info, size_t uplo_length);
