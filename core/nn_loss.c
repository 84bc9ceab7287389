/* The in-batch triplet term of the DRSCH objective (DESIGN.md): for anchor a, positive p (same
 * label, p != a) and negative n (other label), l = |y_a - y_p|^2 - |y_a - y_n|^2, active while
 * l >= C. It is the training stand-in until the full DRSCH loss (issue 5) builds on it, and the
 * loss the speed benchmark uses. Pairwise squared distances are computed once (O(n^2 d)), the
 * triplet scan is O(n^3) on scalars, and the gradient is assembled from per-pair coefficients:
 * dl/dy_a = 2(y_n - y_p), dl/dy_p = 2(y_p - y_a), dl/dy_n = 2(y_a - y_n). */
#include <stdlib.h>
#include <string.h>

#include "nn_internal.h"

double nn_triplet_loss(const float *y, const int32_t *labels, int32_t n, int32_t d, float margin,
                       float *dy, int64_t *active_out)
{
    double *dist = malloc(sizeof(double) * (size_t)n * n);
    double *coef = calloc((size_t)n * n, sizeof(double));
    if (dy)
        memset(dy, 0, sizeof(float) * (size_t)n * d);
    if (!dist || !coef) {
        free(dist);
        free(coef);
        if (active_out)
            *active_out = -1;
        return 0.0;
    }
    for (int32_t i = 0; i < n; i++)
        for (int32_t j = 0; j < n; j++) {
            double s = 0;
            for (int32_t k = 0; k < d; k++) {
                double t = (double)y[(size_t)i * d + k] - y[(size_t)j * d + k];
                s += t * t;
            }
            dist[(size_t)i * n + j] = s;
        }
    int64_t triplets = 0, active = 0;
    double loss = 0;
    for (int32_t a = 0; a < n; a++)
        for (int32_t p = 0; p < n; p++) {
            if (p == a || labels[p] != labels[a])
                continue;
            for (int32_t q = 0; q < n; q++) {
                if (labels[q] == labels[a])
                    continue;
                triplets++;
                double l = dist[(size_t)a * n + p] - dist[(size_t)a * n + q];
                if (l >= margin) {
                    active++;
                    loss += l - margin;
                    coef[(size_t)a * n + p] += 1.0; /* d l / d dist(a,p) */
                    coef[(size_t)a * n + q] -= 1.0;
                }
            }
        }
    if (triplets > 0 && dy) {
        const double inv = 1.0 / (double)triplets;
        /* d dist(i,j) / d y_i = 2 (y_i - y_j), d / d y_j = -2 (y_i - y_j). */
        for (int32_t i = 0; i < n; i++)
            for (int32_t j = 0; j < n; j++) {
                double c = coef[(size_t)i * n + j];
                if (c == 0.0)
                    continue;
                float f = (float)(2.0 * c * inv);
                for (int32_t k = 0; k < d; k++) {
                    float diff = y[(size_t)i * d + k] - y[(size_t)j * d + k];
                    dy[(size_t)i * d + k] += f * diff;
                    dy[(size_t)j * d + k] -= f * diff;
                }
            }
    }
    free(dist);
    free(coef);
    if (active_out)
        *active_out = active;
    return triplets > 0 ? loss / (double)triplets : 0.0;
}
