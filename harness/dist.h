/* A command run as several processes by mpirun (drsch search with its database in slices, drsch
 * train with each batch shared): the ranks, and the few collectives the commands need, behind an
 * interface free of MPI. Built without MPI (-DDRSCH_MPI=OFF, or no MPI found) or started without
 * mpirun, it is one process of rank 0 and every function is the single-process case: nothing is
 * sent, nothing waits.
 *
 * Failures never hang a run and are reported once: a command brackets every fallible step with
 * dist_hold / dist_release, which every rank reaches whether its step went well or not. The
 * messages a step prints to stderr are held back; dist_release tells every rank whether any
 * failed, and rank 0 alone prints the message of the first rank that failed, naming it
 * ("drsch search: rank 1: db.1.npy: ..."). Only the command line uses it (it prints). */
#ifndef DRSCH_DIST_H
#define DRSCH_DIST_H

#include <stddef.h>
#include <stdint.h>

/* Whether this process was started by mpirun (Open MPI's, or a PMI / PMIx launcher's,
 * environment) in a build with MPI: then the command calls dist_init. */
int dist_launched(void);
/* MPI_Init (when dist_launched(), else nothing): returns 0, or -1 after printing
 * "drsch <cmd>: ..." if MPI cannot start. Ranks other than 0 write nothing to stdout from here on
 * (their standard output goes to /dev/null). */
int dist_init(const char *cmd);
/* MPI_Finalize after dist_init; nothing otherwise. */
void dist_finalize(void);
/* A command whose ranks all run the same fn: fn(argc, argv) between dist_init and
 * dist_finalize under mpirun, alone otherwise. Returns fn's status, or 1 if MPI cannot start. */
int dist_main(const char *cmd, int (*fn)(int, char **), int argc, char **argv);
int dist_rank(void); /* 0 .. dist_size() - 1 */
int dist_size(void); /* processes, 1 without mpirun */

/* Holds back what this process prints to stderr until dist_release (a temporary file stands in
 * for stderr; when none can be made, messages go straight through). */
void dist_hold(void);
/* Ends the step begun by dist_hold, on every rank (a collective): rc is this rank's exit status
 * for the step (0 went well). Returns the highest rc over the ranks. When that is 0, rank 0
 * prints what it held (notes, warnings) and the others drop theirs; otherwise rank 0 prints the
 * held text of the lowest failing rank, each "drsch <cmd>: " line of it prefixed with
 * "rank R: " (unless every rank held the same text: then that text as it is). */
int dist_release(const char *cmd, int rc);

/* A step whose only failure is an allocation, agreed on like dist_hold / dist_release when ranks
 * is nonzero: failed is this process's outcome, reported as "drsch <cmd>: out of memory".
 * Returns nonzero when this process or (with ranks) any rank failed. */
int dist_agree_alloc(const char *cmd, int ranks, int failed);

/* Every rank's v, in rank order, in all[dist_size()] on every rank (a collective). */
void dist_allgather_u64(uint64_t v, uint64_t *all);
/* The largest v over the ranks, at rank 0 (others get their own v) (a collective). */
double dist_max(double v);
/* Rank 0 receives every rank's n bytes at send, in rank order, into recv; counts[r] is rank r's
 * n, known to every rank, each and their sum below 2^31 (a collective). */
void dist_gather(const void *send, size_t n, void *recv, const size_t *counts);

/* The collectives of data-parallel training (tr_parallel, train.h). */
/* Every rank's counts[r] floats, in rank order, into recv on every rank (each count and their sum
 * below 2^31). */
void dist_allgather_f32(const float *send, float *recv, const int32_t *counts);
/* buf[0..n) becomes the sum over the ranks, the same bits on every rank. */
void dist_sum_f32(float *buf, size_t n);
/* Rank root's bytes at buf to every rank. */
void dist_broadcast_root(void *buf, size_t bytes, int root);
/* The largest v over the ranks, on every rank. */
int32_t dist_max_i32(int32_t v);

/* The same collectives as callbacks with a context (ignored), the form the library's
 * tr_parallel (train.h) and xp_parallel (reproduce.h) take them in. */
void dist_cb_allgather(void *ctx, const float *send, float *recv, const int32_t *counts);
void dist_cb_sum(void *ctx, float *buf, size_t n);
void dist_cb_broadcast(void *ctx, void *buf, size_t bytes);
void dist_cb_broadcast_root(void *ctx, void *buf, size_t bytes, int32_t root);
int32_t dist_cb_max(void *ctx, int32_t v);

#endif
