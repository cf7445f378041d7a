#include <dnnl.h>
#include <dnnl_debug.h>  // dnnl_cpu_isa2str: the ISA named in a refused --precision

// Debian's libdnnl runs on OpenMP (libgomp; DNNL_CPU_RUNTIME is DNNL_RUNTIME_OMP in dnnl_config.h).
// Declared here rather than through <omp.h>, which lives in GCC's private include directory.

// sgemm takes its thread count from the calling thread's OpenMP setting, which these read and set.
void omp_set_num_threads(int num_threads);
int omp_get_max_threads(void);
int omp_get_thread_num(void);

// libgomp's entry for `#pragma omp parallel num_threads(n)` (the ABI GCC compiles the pragma to):
// runs fn(data) on n threads of the calling thread's OpenMP pool, the caller included, and returns
// when all are done. prm's own parallel regions run on the pool oneDNN uses, so the two never
// compete for the cores.
void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned flags);
