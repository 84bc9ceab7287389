/* drsch's MPI module (drsch-modules/dist_mpi.so): the MPI calls of the command line's dist.c, as
 * the table of dist_mpi.h. Loaded by dist.c only in a process mpirun started. */
#include "dist_mpi.h"

#include <mpi.h>

static int init(int *rank, int *size)
{
    int provided;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return -1;
    MPI_Comm_rank(MPI_COMM_WORLD, rank);
    MPI_Comm_size(MPI_COMM_WORLD, size);
    return 0;
}

static void finalize(void) { MPI_Finalize(); }

static void abort_all(void) { MPI_Abort(MPI_COMM_WORLD, 1); }

static void allgather_int(int v, int *all)
{
    MPI_Allgather(&v, 1, MPI_INT, all, 1, MPI_INT, MPI_COMM_WORLD);
}

static void gather_bytes(const void *send, int n, void *recv, int root)
{
    MPI_Gather(send, n, MPI_BYTE, recv, n, MPI_BYTE, root, MPI_COMM_WORLD);
}

static void gatherv_bytes(const void *send, int n, void *recv, const int *counts, const int *displs,
                          int root)
{
    MPI_Gatherv(send, n, MPI_BYTE, recv, counts, displs, MPI_BYTE, root, MPI_COMM_WORLD);
}

static void allgather_u64(uint64_t v, uint64_t *all)
{
    MPI_Allgather(&v, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, MPI_COMM_WORLD);
}

static double reduce_max_double(double v, int root)
{
    double m = v;
    MPI_Reduce(&v, &m, 1, MPI_DOUBLE, MPI_MAX, root, MPI_COMM_WORLD);
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    return rank == root ? m : v;
}

static void allgatherv_f32(const float *send, int n, float *recv, const int *counts,
                           const int *displs)
{
    MPI_Allgatherv(send, n, MPI_FLOAT, recv, counts, displs, MPI_FLOAT, MPI_COMM_WORLD);
}

static void reduce_sum_f32(float *buf, int n, int root, int rank)
{
    if (rank == root)
        MPI_Reduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, root, MPI_COMM_WORLD);
    else
        MPI_Reduce(buf, NULL, n, MPI_FLOAT, MPI_SUM, root, MPI_COMM_WORLD);
}

static void bcast_bytes(void *buf, int n, int root)
{
    MPI_Bcast(buf, n, MPI_BYTE, root, MPI_COMM_WORLD);
}

static int32_t allreduce_max_i32(int32_t v)
{
    int32_t m = v;
    MPI_Allreduce(&v, &m, 1, MPI_INT32_T, MPI_MAX, MPI_COMM_WORLD);
    return m;
}

__attribute__((visibility("default"))) const dist_mpi_ops *drsch_dist_mpi_ops(void)
{
    static const dist_mpi_ops ops = {
        .abi = DIST_MPI_ABI,
        .init = init,
        .finalize = finalize,
        .abort = abort_all,
        .allgather_int = allgather_int,
        .gather_bytes = gather_bytes,
        .gatherv_bytes = gatherv_bytes,
        .allgather_u64 = allgather_u64,
        .reduce_max_double = reduce_max_double,
        .allgatherv_f32 = allgatherv_f32,
        .reduce_sum_f32 = reduce_sum_f32,
        .bcast_bytes = bcast_bytes,
        .allreduce_max_i32 = allreduce_max_i32,
    };
    return &ops;
}
