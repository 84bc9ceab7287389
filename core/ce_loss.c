/* Softmax cross-entropy, the loss of the classifier baseline (Sablayrolles et al., "How should we
 * evaluate supervised hashing?", ICASSP 2017): see dh.h. Computed in double with the row's
 * maximum subtracted, so large logits neither overflow nor lose the small probabilities. */
#include <math.h>

#include "dh.h"

drsch_status ce_loss(const float *logits, const int32_t *labels, int32_t n, int32_t classes,
                     float *dlogits, double *loss, double *accuracy, drsch_error *err)
{
    if (!logits || !labels || n < 1 || classes < 1)
        return drsch_fail(err, DRSCH_ERR_ARG,
                          "softmax loss: %d items of %d classes (both must be positive)", n,
                          classes);
    for (int32_t i = 0; i < n; i++) {
        if (labels[i] < 0 || labels[i] >= classes)
            return drsch_fail(err, DRSCH_ERR_RANGE,
                              "softmax loss: item %d has label %d, outside 0..%d", i, labels[i],
                              classes - 1);
        for (int32_t k = 0; k < classes; k++)
            if (!isfinite(logits[(size_t)i * classes + k]))
                return drsch_fail(err, DRSCH_ERR_NUMERIC, "softmax loss: logit %d of item %d is %s",
                                  k, i, isnan(logits[(size_t)i * classes + k]) ? "NaN" : "inf");
    }
    double total = 0;
    int64_t right = 0;
    for (int32_t i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * classes;
        int32_t top = 0;
        for (int32_t k = 1; k < classes; k++)
            if (z[k] > z[top])
                top = k;
        right += top == labels[i];
        const double m = z[top];
        double sum = 0;
        for (int32_t k = 0; k < classes; k++)
            sum += exp((double)z[k] - m);
        const double log_sum = log(sum);
        total += log_sum - ((double)z[labels[i]] - m);
        if (dlogits)
            for (int32_t k = 0; k < classes; k++) {
                double p = exp((double)z[k] - m - log_sum);
                dlogits[(size_t)i * classes + k] = (float)((p - (k == labels[i])) / n);
            }
    }
    if (loss)
        *loss = total / n;
    if (accuracy)
        *accuracy = (double)right / n;
    return DRSCH_OK;
}
