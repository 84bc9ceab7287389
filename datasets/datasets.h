/* datasets/: readers for the datasets of the DRSCH paper (Zhang et al., IEEE TIP 2015) and the
 * embedded Fashion-MNIST default, their evaluation protocols (seeded index splits), and the
 * training input pipeline (class-balanced sampling, random crop / mirror, normalised float
 * batches).
 *
 * Formats: IDX (MNIST, Fashion-MNIST; gzip or raw), CIFAR-10 binary batches, NUS-WIDE image
 * lists (relative path + 21 or 81 0/1 labels; JPEG via libjpeg(-turbo), PNG via libpng),
 * CUHK03 cuhk-03.mat (MATLAB v7.3 = HDF5, read with the HDF5 C API).
 *
 * Conventions: images are uint8, N x C x H x W (planar, row-major) and stay uint8 until a batch
 * is built. Library code never prints and never exits: every call returns a drsch_status (0 ok,
 * negative failure) and fills a drsch_error naming the file, the record and what was expected.
 * Ownership is explicit: ds_load* / ds_dataset_free, ds_split_* / ds_split_free,
 * ds_sampler_create / ds_sampler_free. What this module deliberately does not do: networks,
 * metrics, report writing (harness/), or caching decoded images on disk.
 */
#ifndef DRSCH_DATASETS_H
#define DRSCH_DATASETS_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------ */
/* Datasets                                                                                   */

typedef enum {
    DS_LABELS_SINGLE = 0,  /* labels[i] in [0, n_classes) */
    DS_LABELS_MULTI = 1,   /* multi[i * n_classes + l] in {0, 1} (multi-hot, NUS-WIDE) */
    DS_LABELS_IDENTITY = 2 /* labels[i] = person identity in [0, n_classes), cams[i] = camera */
} ds_label_kind;

typedef enum { DS_KIND_IDX = 0, DS_KIND_CIFAR10, DS_KIND_NUSWIDE, DS_KIND_CUHK03 } ds_kind;

/* A loaded dataset. All arrays are owned by the dataset and released by ds_dataset_free. */
typedef struct {
    ds_kind kind;
    char name[64]; /* "fashion-mnist", "mnist", "cifar10", "nuswide", "cuhk03-labeled" ... */
    char source[DRSCH_PATH_MAX]; /* where it was read from (directory, list file or .mat file) */
    int64_t n;                   /* number of images */
    int c, h, w;                 /* image shape */
    uint8_t *images;             /* n x c x h x w */
    ds_label_kind label_kind;
    int n_classes;      /* classes, multi-label width L, or identities */
    int32_t *labels;    /* n, NULL for DS_LABELS_MULTI */
    uint8_t *multi;     /* n x n_classes, only for DS_LABELS_MULTI */
    int32_t *subset;    /* n: 0 = official training file, 1 = official test file; NULL if none */
    char **class_names; /* n_classes names or NULL (CIFAR-10 batches.meta.txt, built-in names) */
    int64_t n_skipped;  /* images skipped while loading (NUS-WIDE with skip_bad_images) */

    /* CUHK03 only (NULL / 0 otherwise). */
    int32_t *cams;   /* n: camera id 2 * (pair - 1) + (slot >= 5), so cameras differ per pair */
    int32_t *pair;   /* n: camera pair 1..5 */
    int32_t *person; /* n: person index inside the pair, 1-based as in 'testsets' */
    int32_t *slot;   /* n: image slot 0..9 (0-4 first camera of the pair, 5-9 second) */
    int n_pairs;     /* 5 */
    int32_t
        *pair_persons; /* n_pairs: persons per pair (identity = offset of its pair + person - 1) */
    int n_testsets;    /* 20 for the real file */
    int testset_rows;  /* 100 for the real file */
    int32_t *testsets; /* n_testsets x testset_rows x 2: (pair, person), 1-based */
} ds_dataset;

DRSCH_API void ds_dataset_free(ds_dataset *d);

/* CRC-32 (zlib) over the images, then labels (int32 little-endian) or the multi-hot matrix,
 * then cams when present: identifies the exact data a report was computed on. */
DRSCH_API uint32_t ds_checksum(const ds_dataset *d);

/* Count of images per class (single-label and identity: counts[n_classes]; multi-label: images
 * having each concept). counts must hold n_classes entries. */
DRSCH_API void ds_class_counts(const ds_dataset *d, int64_t *counts);

/* ------------------------------------------------------------------------------------------ */
/* Loading                                                                                    */

typedef struct {
    int out_h, out_w;    /* resize target for decoded images (NUS-WIDE default 32 x 32, CUHK03 160 x
                            60);    0 = the reader's default */
    int skip_bad_images; /* NUS-WIDE: skip missing / undecodable images (counted in n_skipped)
                            instead of failing */
} ds_load_opts;

/* Defaults: all zero (reader defaults, fail on bad images). */
DRSCH_API void ds_load_opts_default(ds_load_opts *o);

/* IDX pair (images idx3 + labels idx1), gzip or raw. Appends nothing: returns a new dataset. */
DRSCH_API drsch_status ds_load_idx_pair(const char *images_path, const char *labels_path,
                                        ds_dataset **out, drsch_error *err);
/* A directory with train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-images-...,
 * t10k-labels-... (also the "train-images.idx3-ubyte" spelling). subset marks train / t10k. */
DRSCH_API drsch_status ds_load_idx_dir(const char *dir, const char *name, ds_dataset **out,
                                       drsch_error *err);
/* CIFAR-10 binary version: dir holds data_batch_1..5.bin and test_batch.bin (each record:
 * 1 label byte + 3072 bytes, 3 x 32 x 32 planar RGB) and optionally batches.meta.txt. */
DRSCH_API drsch_status ds_load_cifar10(const char *dir, ds_dataset **out, drsch_error *err);
/* NUS-WIDE list: each non-empty line "relative/path.jpg l_1 ... l_L" with L = 21 or 81 labels
 * (0/1), images under imgroot, decoded to RGB and resized to opts->out_h x out_w. */
DRSCH_API drsch_status ds_load_nuswide(const char *list, const char *imgroot,
                                       const ds_load_opts *opts, ds_dataset **out,
                                       drsch_error *err);
/* CUHK03 cuhk-03.mat (v7.3): detected = 0 reads 'labeled', 1 reads 'detected'; images resized
 * to opts->out_h x out_w (default 160 x 60); 'testsets' read when present. */
DRSCH_API drsch_status ds_load_cuhk03(const char *mat, int detected, const ds_load_opts *opts,
                                      ds_dataset **out, drsch_error *err);

/* Keep only the k concepts with the most images (ties: lower concept index), in their original
 * order, and drop images left without any label (NUS-WIDE-21 from the 81-concept list). */
DRSCH_API drsch_status ds_select_top_concepts(ds_dataset *d, int k, drsch_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Dataset specs (command line)                                                               */
/*   fashion-mnist | mnist[:DIR] | cifar10[:DIR] | nuswide[:LIST:IMGROOT] |                   */
/*   cuhk03[:FILE.mat][:labeled|detected]                                                     */
/* Bare names resolve under $DRSCH_DATA: fashion-mnist/, mnist/, cifar10/ (or                  */
/* cifar-10-batches-bin/), nuswide/list.txt + nuswide/images/, cuhk03/cuhk-03.mat.             */
/* fashion-mnist falls back to /usr/share/datasets/fashion-mnist (Debian dataset-fashion-mnist). */

#define DS_FASHION_MNIST_SYSTEM_DIR "/usr/share/datasets/fashion-mnist"

typedef struct {
    ds_kind kind;
    char name[64];              /* canonical name for reports */
    char path[DRSCH_PATH_MAX];  /* directory, list file, or .mat file */
    char path2[DRSCH_PATH_MAX]; /* NUS-WIDE image root */
    int detected;               /* CUHK03: 0 labeled (default), 1 detected */
} ds_spec;

DRSCH_API drsch_status ds_spec_parse(const char *spec, ds_spec *out, drsch_error *err);
DRSCH_API drsch_status ds_load_spec(const ds_spec *spec, const ds_load_opts *opts, ds_dataset **out,
                                    drsch_error *err);
/* Parse + load in one call; opts may be NULL. */
DRSCH_API drsch_status ds_load(const char *spec, const ds_load_opts *opts, ds_dataset **out,
                               drsch_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Protocols: index lists into a dataset. Every list is sorted ascending. For re-id, db is the  */
/* gallery. The name describes the protocol and its seed for reports.                          */

typedef struct {
    char name[256];
    int64_t n_query, n_train, n_db;
    int64_t *query; /* n_query */
    int64_t *train; /* n_train */
    int64_t *db;    /* n_db */
} ds_split;

DRSCH_API void ds_split_free(ds_split *s);

typedef struct {
    int query_per_class;   /* 100 (paper, CIFAR-10 protocol) */
    int train_per_class;   /* 500 */
    int db_includes_train; /* 0 (paper: database = the rest); 1 = database = everything but queries
                            */
} ds_paper_opts;

DRSCH_API void ds_paper_opts_default(ds_paper_opts *o);

/* Single-label sets: per class query_per_class queries, train_per_class training images, the
 * rest database; the whole dataset (official train + test) is the pool. */
DRSCH_API drsch_status ds_split_paper(const ds_dataset *d, const ds_paper_opts *o, uint64_t seed,
                                      ds_split *out, drsch_error *err);
/* The official split: query = test file, train = database = training file. */
DRSCH_API drsch_status ds_split_full(const ds_dataset *d, ds_split *out, drsch_error *err);
/* Multi-label (NUS-WIDE-21): for each concept in turn, query_per_class queries and
 * train_per_class training images drawn from the images having it and not yet chosen; the rest
 * (images with at least one label) is the database. Relevance = at least one shared label. */
DRSCH_API drsch_status ds_split_multilabel(const ds_dataset *d, const ds_paper_opts *o,
                                           uint64_t seed, ds_split *out, drsch_error *err);

typedef struct {
    double train_fraction; /* 0.75: floor(train_fraction x n_classes) classes train */
    int query_per_class;   /* 100 queries per held-out class */
} ds_transfer_opts;

DRSCH_API void ds_transfer_opts_default(ds_transfer_opts *o);

/* Transfer to unseen classes (Sablayrolles, Douze, Usunier, Jegou, "How should we evaluate
 * supervised hashing?", ICASSP 2017): floor(train_fraction x C) of the C classes, chosen by a
 * seeded permutation, are the training classes and every image of them trains; the other classes
 * are held out: per held-out class query_per_class seeded queries, the rest of its images the
 * database. No training class is ever queried or retrieved (10 classes: 7 train, 3 held out,
 * 300 queries). Single-label datasets only (DRSCH_ERR_ARG for multi-label and re-id ones);
 * DRSCH_ERR_RANGE when a class has at most query_per_class images (any class may be held out)
 * or the fraction leaves no training or no held-out class. The name lists the held-out classes. */
DRSCH_API drsch_status ds_split_transfer(const ds_dataset *d, const ds_transfer_opts *o,
                                         uint64_t seed, ds_split *out, drsch_error *err);

typedef struct {
    int testset;     /* 0-based index into 'testsets' (classic protocol: 0..19) */
    int single_shot; /* 1: the gallery keeps one seeded random image per test identity from the
                        second camera of its pair; 0: all second-camera images */
} ds_cuhk03_opts;

/* CUHK03 classic protocol (Li et al., CVPR 2014): the testset's 100 identities are the test
 * identities, all others train. Queries: test images from the first camera of each pair;
 * gallery: test images from the second camera. Test identities seen by only one camera give
 * no query (they could never be matched); the name says how many were dropped. */
DRSCH_API drsch_status ds_split_cuhk03_classic(const ds_dataset *d, const ds_cuhk03_opts *o,
                                               uint64_t seed, ds_split *out, drsch_error *err);

/* CUHK03 767/700 protocol (Zhong et al., CVPR 2017): 767 training and 700 test identities,
 * query and gallery as listed in cuhk03_new_protocol_config_{labeled,detected}.mat (a MATLAB v5
 * file: train_idx, query_idx, gallery_idx 1-based into filelist, whose names
 * "P_QQQ_V_SS.png" give camera pair, person, view and slot). Every listed image must exist in
 * the loaded dataset (use the config that matches labeled / detected). */
DRSCH_API drsch_status ds_split_cuhk03_new(const ds_dataset *d, const char *config_mat,
                                           ds_split *out, drsch_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Training input: augmentation and batches                                                   */

#define DS_MAX_CHANNELS 4

typedef struct {
    int out_h, out_w;   /* crop size (0 = image size) */
    int pad;            /* zero padding on every side before cropping (pad-and-crop) */
    int random_crop;    /* 1: uniform random crop offset; 0: centre crop */
    int mirror;         /* 1: horizontal flip with probability 1/2 */
    float rotate;       /* > 0: random rotation, uniform in [-rotate, +rotate] degrees */
    float scale_jitter; /* > 0: random zoom, uniform in [1 - scale_jitter, 1 + scale_jitter] */
    float mean[DS_MAX_CHANNELS];  /* subtracted from the uint8 value, per channel */
    float scale[DS_MAX_CHANNELS]; /* then multiplied, per channel */
} ds_augment;

/* No crop, no mirror, mean 0, scale 1/255 (values in [0, 1]). */
DRSCH_API void ds_augment_default(ds_augment *a);
/* Evaluation variant of a training augmentation: centre crop of the same size, no mirror. */
DRSCH_API ds_augment ds_augment_eval(const ds_augment *train);

/* Builds a float32 batch out[n x c x out_h x out_w] (NCHW) from images idx[0..n), OpenMP over
 * images. Image i draws its crop and flip (then rotation and zoom, when asked for) from a
 * generator seeded with (seed, i), so the batch is identical for any thread count. Rotation and
 * zoom turn the crop window about its centre and sample the image bilinearly, with the padding
 * value outside it; without them the crop is an exact pixel copy. */
DRSCH_API drsch_status ds_batch_build(const ds_dataset *d, const int64_t *idx, int64_t n,
                                      const ds_augment *a, uint64_t seed, float *out,
                                      drsch_error *err);

/* Per-channel mean and standard deviation of the uint8 pixel values over images idx[0..n)
 * (all images when idx is NULL); mean and std hold d->c entries. */
DRSCH_API void ds_channel_stats(const ds_dataset *d, const int64_t *idx, int64_t n, double *mean,
                                double *std);

/* Class-balanced sampler: each batch holds classes_per_batch distinct classes (identities for
 * re-id, concepts for multi-label) x images_per_class images of each. Classes are drawn from
 * a reshuffled cycle over all eligible classes, images from a reshuffled cycle per class, so
 * every training image is seen about equally often. Classes with fewer than 2 images in the
 * pool are not eligible (a batch needs positives for triplets). */
typedef struct ds_sampler ds_sampler;

DRSCH_API drsch_status ds_sampler_create(const ds_dataset *d, const int64_t *pool, int64_t n_pool,
                                         int classes_per_batch, int images_per_class, uint64_t seed,
                                         ds_sampler **out, drsch_error *err);
DRSCH_API void ds_sampler_free(ds_sampler *s);
/* The classes of the pool a sampler can draw (2 images or more each); -1 when out of memory or
 * an index is out of range (ds_sampler_create says which). */
DRSCH_API int ds_pool_classes(const ds_dataset *d, const int64_t *pool, int64_t n_pool);
DRSCH_API int64_t ds_sampler_batch_size(const ds_sampler *s);
DRSCH_API int ds_sampler_classes(const ds_sampler *s); /* eligible classes */
/* Fills idx[batch_size] with dataset indices and cls[batch_size] with the class each image was
 * drawn for (cls may be NULL), grouped class by class. */
DRSCH_API void ds_sampler_next(ds_sampler *s, int64_t *idx, int32_t *cls);

/* ------------------------------------------------------------------------------------------ */
/* Image utilities (used by the NUS-WIDE and CUHK03 readers; public for tests and tools)      */

/* Bilinear resize with half-pixel centres (the OpenCV INTER_LINEAR convention, no antialias).
 * src: sh x sw x c interleaved (HWC); dst: c x dh x dw planar (CHW). */
DRSCH_API void ds_resize_bilinear_hwc_to_chw(const uint8_t *src, int sh, int sw, int c,
                                             uint8_t *dst, int dh, int dw);

/* Decodes a JPEG or PNG file (detected by its signature) to 8-bit RGB, HWC. *pixels is
 * malloc'd and owned by the caller. */
DRSCH_API drsch_status ds_image_decode_file(const char *path, uint8_t **pixels, int *h, int *w,
                                            drsch_error *err);

#ifdef __cplusplus
}
#endif

#endif
