/* Inverse-CDF sampling from logits, shared by the one-stream (lstm_step.c) and batched
 * (lstm_batch.c) generation steps so that both draw the same token from the same numbers. */
#ifndef RNNKIT_SAMPLE_CDF_H
#define RNNKIT_SAMPLE_CDF_H

#include <math.h>
#include <stdint.h>

/* The first index whose cumulative softmax(logits / T) reaches u (scaled by the total), as
 * rnnkit.lm.fastgen.sample_stream computes it: exp(z - shift) with a shift no logit exceeds,
 * so nothing overflows; if everything underflows (very low temperature) the largest z is the
 * shift instead. cdf: scratch of V doubles. */
static inline int32_t rnnkit_sample_cdf(const float *logits, int V, double T, double shift, double u,
                                        double *cdf) {
    double total = 0;
    for (int v = 0; v < V; v++) {
        total += exp((double)logits[v] / T - shift);
        cdf[v] = total;
    }
    if (!(total > 1e-200)) {
        double top = (double)logits[0] / T;
        for (int v = 1; v < V; v++)
            if ((double)logits[v] / T > top) top = (double)logits[v] / T;
        total = 0;
        for (int v = 0; v < V; v++) {
            total += exp((double)logits[v] / T - top);
            cdf[v] = total;
        }
    }
    const double target = u * total;
    int lo = 0, hi = V - 1;
    while (lo < hi) {
        const int mid = lo + (hi - lo) / 2;
        if (cdf[mid] < target) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

#endif
