/* The cost of prm's one gradient allreduce a step, alone: MPI_Allreduce (SUM, in place) of
 * BYTES of floats, as `prm train` calls it on its flat gradient buffer, timed over ITERATIONS
 * after a warm-up call, each call after a barrier so that no rank's lateness is counted.
 *   mpicc -O2 -o allreduce bench/allreduce.c && mpirun -np 2 ./allreduce BYTES ITERATIONS
 * Rank 0 prints one JSON object: {"ranks", "bytes", "iterations", "mean_seconds", "min_seconds"}. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    if (argc != 3) {
        fprintf(stderr, "usage: allreduce BYTES ITERATIONS\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    long count = atol(argv[1]) / (long)sizeof(float);
    int iterations = atoi(argv[2]);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    float *buffer = calloc((size_t)count, sizeof(float));
    MPI_Allreduce(MPI_IN_PLACE, buffer, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    double total = 0, best = 1e30;
    for (int i = 0; i < iterations; i++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double start = MPI_Wtime();
        MPI_Allreduce(MPI_IN_PLACE, buffer, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        double seconds = MPI_Wtime() - start;
        total += seconds;
        if (seconds < best) best = seconds;
    }
    if (rank == 0) {
        printf("{\"ranks\": %d, \"bytes\": %ld, \"iterations\": %d, \"mean_seconds\": %.6f, \"min_seconds\": %.6f}\n",
               size, count * (long)sizeof(float), iterations, total / iterations, best);
    }
    free(buffer);
    MPI_Finalize();
    return 0;
}
