#include <cblas.h>
// OpenBLAS extensions: thread control (not part of the reference CBLAS header on every build).
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
