/* The interface between the command line's dist.c and drsch's MPI module,
 * drsch-modules/dist_mpi.so (built from dist_mpi.c, linked with MPI): every MPI call drsch makes,
 * so that the drsch command loads MPI (Open MPI and the 10 libraries it links) only when mpirun
 * started it. Not part of the public API. */
#ifndef DRSCH_DIST_MPI_H
#define DRSCH_DIST_MPI_H

#include <stdint.h>

#define DIST_MPI_MODULE "dist_mpi.so"
#define DIST_MPI_ENTRY "drsch_dist_mpi_ops"
/* Raised whenever a member below changes meaning: dist.c refuses a module of another version. */
#define DIST_MPI_ABI 1

/* Everything on MPI_COMM_WORLD; counts and displacements are MPI's ints. */
typedef struct {
    int abi;
    /* MPI_Init_thread (funneled: only the main thread calls MPI), then this rank and the size;
     * 0, or -1 when MPI could not start. */
    int (*init)(int *rank, int *size);
    void (*finalize)(void);
    void (*abort)(void); /* MPI_Abort with status 1 */
    void (*allgather_int)(int v, int *all);
    /* root receives every rank's n bytes at send, in rank order */
    void (*gather_bytes)(const void *send, int n, void *recv, int root);
    void (*gatherv_bytes)(const void *send, int n, void *recv, const int *counts, const int *displs,
                          int root);
    void (*allgather_u64)(uint64_t v, uint64_t *all);
    double (*reduce_max_double)(double v, int root); /* root gets the maximum, others v */
    void (*allgatherv_f32)(const float *send, int n, float *recv, const int *counts,
                           const int *displs);
    /* buf[0..n) summed at root (MPI_Reduce: in place there), not yet sent back */
    void (*reduce_sum_f32)(float *buf, int n, int root, int rank);
    void (*bcast_bytes)(void *buf, int n, int root);
    int32_t (*allreduce_max_i32)(int32_t v);
} dist_mpi_ops;

/* The module's entry: its table of operations. */
typedef const dist_mpi_ops *(*dist_mpi_entry_fn)(void);

#endif
