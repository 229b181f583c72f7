/* MinGRU / MinLSTM training over whole sequences: the gates and the recurrence
 *     h_t = (1 - z_t) h_{t-1} + z_t g(k_t)
 * in one pass over memory forward, and the reverse recurrence with every logit's gradient
 * in one pass backward.
 *
 * Built by rnnkit.native at first use and driven through ctypes by rnnkit.layers.minrnn,
 * which does the input projection (one matrix product per block of batch rows) around
 * these calls. Why C: the recurrence is elementwise over a (batch, units) state, a few
 * nanoseconds of arithmetic per step that PyTorch or numpy can only issue as separate calls
 * per step (microseconds each) and separate passes over memory per operation.
 *
 * Layout, batch-major as the layer's inputs and outputs (each sequence is walked with
 * contiguous reads; threads take whole sequences):
 *   P      (rows, time, C), C = blocks * units: the projection x W^T, without bias. Gate
 *          blocks in a row: MinGRU [d | k], MinLSTM [f | i | k] (logits). The forward
 *          overwrites them with what the backward needs: MinGRU [z | g'(k)], MinLSTM
 *          [1 - f | 1 - i | g'(k)].
 *   z      (rows, time, units): MinLSTM's update gate z = i / (f + i) (MinGRU's stays in P).
 *   bias   (C) or NULL; keep (rows, time) or NULL: 1 at real steps, 0 at masked steps
 *          (z = 0 there, so the state is kept).
 *   h0     (rows, units); h (rows, time, units): every step's state.
 * g(k) = max(k, 0) + sigmoid(min(k, 0)); MinGRU: z = sigmoid(d); MinLSTM: z = i / (f + i)
 * with f, i the sigmoids of the gate logits, computed so that it holds for any logits (below).
 */
#include <stddef.h>
#include <stdint.h>

#include <omp.h>

#include "simd_math.h"

/* Lanes [0, n) of 8, for the last, partial vector of a row of units. */
static inline __m256i lanes(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

static inline __m256 load(const float *p, int n) {
    return n >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, lanes(n));
}

static inline void store(float *p, __m256 v, int n) {
    if (n >= 8)
        _mm256_storeu_ps(p, v);
    else
        _mm256_maskstore_ps(p, lanes(n), v);
}

/* g(k) and g'(k): for k > 0, k and 1; else s = sigmoid(k) and s (1 - s). */
static inline void candidate(__m256 k, __m256 *g, __m256 *dg) {
    const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
    /* min and max return their second operand when either is NaN: k second, so NaN propagates */
    __m256 s = sigmoid8(_mm256_min_ps(zero, k));
    __m256 positive = _mm256_cmp_ps(k, zero, _CMP_GT_OQ);
    *g = _mm256_add_ps(_mm256_max_ps(zero, k), s);
    *dg = _mm256_blendv_ps(_mm256_fnmadd_ps(s, s, s), one, positive);
}

void rnnkit_minrnn_forward(int32_t blocks, int64_t rows, int64_t time, int32_t units, float *P, float *z,
                           const float *bias, const float *keep, const float *h0, float *h, int32_t threads) {
    const int64_t C = (int64_t)blocks * units;
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float *prev = h0 + r * units;
        for (int64_t t = 0; t < time; t++) {
            float *p = P + (r * time + t) * C, *ht = h + (r * time + t) * units;
            float *zt = blocks == 3 ? z + (r * time + t) * units : p;
            __m256 kept = keep ? _mm256_set1_ps(keep[r * time + t]) : one;
            for (int u = 0; u < units; u += 8) {
                int n = units - u;
                __m256 k = load(p + (blocks - 1) * units + u, n), gate, g, dg;
                if (bias) k = _mm256_add_ps(k, load(bias + (blocks - 1) * units + u, n));
                if (blocks == 2) {
                    __m256 d = load(p + u, n);
                    if (bias) d = _mm256_add_ps(d, load(bias + u, n));
                    gate = sigmoid8(d);
                } else {
                    __m256 f = load(p + u, n), i = load(p + units + u, n);
                    if (bias) {
                        f = _mm256_add_ps(f, load(bias + u, n));
                        i = _mm256_add_ps(i, load(bias + units + u, n));
                    }
                    /* z = i / (f + i) = (1 + e^-f) / ((1 + e^-f) + (1 + e^-i)), numerator and
                     * denominator multiplied by e^c, c = min(f, i, 0): every exponent is <= 0 and one
                     * of the terms is 1, so nothing overflows and the sum cannot vanish, however
                     * negative the logits (sigmoids of logits below -87 would underflow) */
                    __m256 c = _mm256_min_ps(zero, _mm256_min_ps(f, i));
                    __m256 ec = exp8(c);
                    __m256 num = _mm256_add_ps(ec, exp8(_mm256_sub_ps(c, f)));
                    __m256 other = _mm256_add_ps(ec, exp8(_mm256_sub_ps(c, i)));
                    gate = _mm256_div_ps(num, _mm256_add_ps(num, other));
                    /* 1 - sigmoid(x) = 1 / (1 + e^x): the derivatives of d = log i - log f */
                    store(p + u, _mm256_div_ps(one, _mm256_add_ps(one, exp8(f))), n);
                    store(p + units + u, _mm256_div_ps(one, _mm256_add_ps(one, exp8(i))), n);
                }
                gate = _mm256_mul_ps(gate, kept);
                candidate(k, &g, &dg);
                __m256 hp = load(prev + u, n);
                /* (1 - z) h + z g, as the numpy path computes it */
                __m256 hn = _mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(one, gate), hp), _mm256_mul_ps(gate, g));
                store(zt + u, gate, n);
                store(p + (blocks - 1) * units + u, dg, n);
                store(ht + u, hn, n);
            }
            prev = ht;
        }
    }
}

/* The gradients of P's logits (into gP, same layout; the bias gradient is their sum over rows
 * and time) and of h0, from the gradients of every step's state (grad_h, or NULL) and of the
 * last state (grad_last, or NULL). Backward through time: G_t = dL/dh_t + (1 - z_{t+1}) G_{t+1};
 * dL/dk_t = G_t z_t g'(k_t); for the update logit, dL/dd_t = G_t (1 - z_t)(h_t - h_{t-1}), since
 * z_t (g(k_t) - h_{t-1}) = h_t - h_{t-1}; MinLSTM's d = log i - log f then gives
 * dL/d(f logit) = -(1 - f) dL/dd and dL/d(i logit) = (1 - i) dL/dd. grad_h0 = (1 - z_0) G_0,
 * and its row holds G's carry while a sequence is walked. */
void rnnkit_minrnn_backward(int32_t blocks, int64_t rows, int64_t time, int32_t units, const float *P, const float *z,
                            const float *h, const float *h0, const float *grad_h, const float *grad_last, float *gP,
                            float *grad_h0, int32_t threads) {
    const int64_t C = (int64_t)blocks * units;
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        float *carry = grad_h0 + r * units;
        for (int u = 0; u < units; u += 8) {
            int n = units - u;
            store(carry + u, grad_last ? load(grad_last + r * units + u, n) : zero, n);
        }
        for (int64_t t = time - 1; t >= 0; t--) {
            const float *p = P + (r * time + t) * C, *ht = h + (r * time + t) * units;
            const float *zt = blocks == 3 ? z + (r * time + t) * units : p;
            const float *hp = t ? ht - units : h0 + r * units;
            float *gp = gP + (r * time + t) * C;
            for (int u = 0; u < units; u += 8) {
                int n = units - u;
                __m256 G = load(carry + u, n);
                if (grad_h) G = _mm256_add_ps(G, load(grad_h + (r * time + t) * units + u, n));
                __m256 gate = load(zt + u, n), a = _mm256_sub_ps(one, gate);
                __m256 dk = _mm256_mul_ps(_mm256_mul_ps(G, gate), load(p + (blocks - 1) * units + u, n));
                __m256 dd = _mm256_mul_ps(_mm256_mul_ps(G, a), _mm256_sub_ps(load(ht + u, n), load(hp + u, n)));
                store(gp + (blocks - 1) * units + u, dk, n);
                if (blocks == 2) {
                    store(gp + u, dd, n);
                } else {
                    store(gp + u, _mm256_sub_ps(zero, _mm256_mul_ps(dd, load(p + u, n))), n);
                    store(gp + units + u, _mm256_mul_ps(dd, load(p + units + u, n)), n);
                }
                store(carry + u, _mm256_mul_ps(a, G), n);
            }
        }
    }
}
