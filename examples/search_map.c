/* An example of libdrsch used from outside its build: loads query and database codes with their
 * labels (.npy files as `drsch encode` writes them), searches the K nearest database codes of
 * every query with the SIMD engine, prints the neighbours of the first query, and computes the
 * mAP over the whole ranking, the figure `drsch eval --codes` prints as mAP@all.
 *
 *   search_map QUERY.codes.npy DB.codes.npy QUERY.labels.npy DB.labels.npy [K]
 *
 * Labels are int32 (N,) class labels. Build it against an installed drsch with CMake
 * (find_package(drsch), target drsch::drsch; see CMakeLists.txt here) or with pkg-config:
 *   cc search_map.c $(pkg-config --cflags --libs drsch) -o search_map */
#include <stdio.h>
#include <stdlib.h>

#include <drsch/hamming.h>
#include <drsch/metrics.h>
#include <drsch/npy.h>

static int load_labels(const char *path, size_t n, npy_array *a)
{
    drsch_error err;
    if (npy_load(path, a, &err) != DRSCH_OK) {
        fprintf(stderr, "search_map: %s\n", err.msg);
        return -1;
    }
    if (a->dtype != NPY_I32 || a->ndim != 1 || a->shape[0] != n) {
        fprintf(stderr, "search_map: %s: expected int32 labels of shape (%zu,)\n", path, n);
        npy_free(a);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 5 || argc > 6) {
        fprintf(
            stderr,
            "usage: search_map QUERY.codes.npy DB.codes.npy QUERY.labels.npy DB.labels.npy [K]\n");
        return 2;
    }
    size_t k = argc == 6 ? (size_t)strtoull(argv[5], NULL, 10) : 10;
    drsch_error err;
    hm_codes q = {0}, db = {0};
    npy_array ql = {0}, dbl = {0};
    int64_t *idx = NULL;
    int32_t *dist = NULL;
    int rc = 1;
    if (hm_isa_init(&err) != DRSCH_OK || npy_load_codes(argv[1], 0, &q, &err) != DRSCH_OK ||
        npy_load_codes(argv[2], 0, &db, &err) != DRSCH_OK) {
        fprintf(stderr, "search_map: %s\n", err.msg);
        goto done;
    }
    if (load_labels(argv[3], q.n, &ql) || load_labels(argv[4], db.n, &dbl))
        goto done;
    if (k < 1 || k > db.n) {
        fprintf(stderr, "search_map: K must be 1..%zu\n", db.n);
        goto done;
    }
    idx = malloc(q.n * k * sizeof *idx);
    dist = malloc(q.n * k * sizeof *dist);
    if (!idx || !dist || hm_knn(&db, &q, k, idx, dist, &err) != DRSCH_OK) {
        fprintf(stderr, "search_map: %s\n", idx && dist ? err.msg : "out of memory");
        goto done;
    }
    printf("%zu queries x %zu codes of %u bits, kernels for %s\nquery 0, nearest %zu:", q.n, db.n,
           q.bits, hm_isa_name(hm_isa_active()), k);
    for (size_t j = 0; j < k; j++)
        printf(" %lld(d=%d)", (long long)idx[j], dist[j]);
    printf("\n");

    ev_labels qlab = {.n = q.n, .labels = ql.data}, dblab = {.n = db.n, .labels = dbl.data};
    ev_options opt = {.topk = 0, .radius = 2, .pr_curve = 0};
    ev_retrieval r;
    drsch_error eerr;
    if (ev_retrieval_eval(&q, &qlab, &db, &dblab, NULL, &opt, &r, &eerr) != DRSCH_OK) {
        fprintf(stderr, "search_map: %s\n", eerr.msg);
        goto done;
    }
    printf("mAP@all %.4f\n", r.map_all);
    ev_retrieval_free(&r);
    rc = 0;
done:
    free(idx);
    free(dist);
    npy_free(&ql);
    npy_free(&dbl);
    hm_codes_free(&q);
    hm_codes_free(&db);
    return rc;
}
