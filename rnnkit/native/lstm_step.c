/* One generation step of a stacked LSTM for a single stream, and a sampling loop over it.
 *
 * Built by rnnkit.native at first use (gcc/clang, -O3 -mavx2 -mfma -fopenmp) and driven
 * through ctypes by rnnkit.lm.fastgen. Why C: at a batch of one each step is ~3M
 * multiply-adds over weights that stream from cache; done from Python (numpy's gemv plus a
 * dozen in-place ufuncs per layer and the sampling) about 40% of the time goes to calls
 * into numpy rather than to arithmetic (benchmarks/README.md). Here a whole step is one
 * OpenMP region: each thread owns a block of hidden units, computes their four gate rows
 * and their cell update, and the threads meet once per layer.
 *
 * Layout (PyTorch's, gate order i, f, g, o; rows of 4H):
 *   table  (tokens, 4H)  embedding @ W_ih0^T + b_ih0 + b_hh0: layer 0's input part, per token
 *   w[0]   (4H, H)       W_hh of layer 0
 *   w[l]   (4H, 2H)      [W_ih | W_hh] of layer l > 0, with bias b[l] (4H)
 *   head_w (V, H), head_b (V)
 *   h[0], h[1]  (layers * H) each: the step reads h[cur] and writes h[1 - cur], then flips cur,
 *               so no thread overwrites a state another thread still reads.
 *   c      (layers * H), updated in place (each thread touches only its own units).
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include <omp.h>

#include "sample_cdf.h"
#include "simd_math.h"

#define RNNKIT_MAX_LAYERS 16

typedef struct {
    int32_t layers, hidden, vocab, threads;
    const float *table;
    const float *w[RNNKIT_MAX_LAYERS];
    const float *b[RNNKIT_MAX_LAYERS];
    const float *head_w, *head_b;
    float *h[2];
    float *c;
    float *logits;
    int32_t cur;
} rnnkit_lstm;

/* acc[q] += row q . x over n columns for the four rows w, w + stride, w + 2 stride, w + 3 stride
 * (one unit's gates): two accumulators per row so the multiply-adds do not wait on each other. */
static inline void dot4(const float *w, size_t stride, const float *x, int n, __m256 acc[8], float tail[4]) {
    int k = 0;
    for (; k + 16 <= n; k += 16) {
        __m256 x0 = _mm256_loadu_ps(x + k), x1 = _mm256_loadu_ps(x + k + 8);
        for (int q = 0; q < 4; q++) {
            acc[q] = _mm256_fmadd_ps(_mm256_loadu_ps(w + q * stride + k), x0, acc[q]);
            acc[q + 4] = _mm256_fmadd_ps(_mm256_loadu_ps(w + q * stride + k + 8), x1, acc[q + 4]);
        }
    }
    for (; k < n; k++)
        for (int q = 0; q < 4; q++) tail[q] += w[q * stride + k] * x[k];
}

static void layer_units(const rnnkit_lstm *m, int l, const float *add, int a, int z) {
    const int H = m->hidden;
    const float *w = m->w[l];
    const float *own = m->h[m->cur] + (size_t)l * H;
    const float *below = l ? m->h[1 - m->cur] + (size_t)(l - 1) * H : NULL;
    float *c = m->c + (size_t)l * H, *h = m->h[1 - m->cur] + (size_t)l * H;
    const size_t n = l ? 2 * (size_t)H : (size_t)H, stride = (size_t)H * n;
    for (int j0 = a; j0 < z; j0 += 8) {
        const int width = z - j0 < 8 ? z - j0 : 8;
        float pre[4][8] = {{0}}, cv[8] = {0}, out[8];
        for (int u = 0; u < width; u++) {
            const int j = j0 + u;
            __m256 acc[8];
            float tail[4] = {0, 0, 0, 0};
            for (int q = 0; q < 8; q++) acc[q] = _mm256_setzero_ps();
            const float *row = w + (size_t)j * n;
            if (l) {
                dot4(row, stride, below, H, acc, tail);
                dot4(row + H, stride, own, H, acc, tail);
            } else {
                dot4(row, stride, own, H, acc, tail);
            }
            for (int q = 0; q < 4; q++) pre[q][u] = hsum(_mm256_add_ps(acc[q], acc[q + 4])) + tail[q] + add[q * H + j];
            cv[u] = c[j];
        }
        __m256 i = sigmoid8(_mm256_loadu_ps(pre[0])), f = sigmoid8(_mm256_loadu_ps(pre[1]));
        __m256 g = tanh8(_mm256_loadu_ps(pre[2])), o = sigmoid8(_mm256_loadu_ps(pre[3]));
        __m256 cn = _mm256_fmadd_ps(f, _mm256_loadu_ps(cv), _mm256_mul_ps(i, g));
        _mm256_storeu_ps(cv, cn);
        _mm256_storeu_ps(out, _mm256_mul_ps(o, tanh8(cn)));
        for (int u = 0; u < width; u++) {
            c[j0 + u] = cv[u];
            h[j0 + u] = out[u];
        }
    }
}

/* Feed `token`: every layer steps once, then logits = head_w h_top + head_b. */
void rnnkit_lstm_step(rnnkit_lstm *m, int32_t token) {
    const int H = m->hidden, L = m->layers, V = m->vocab;
    const float *row = m->table + (size_t)token * 4 * H;
#pragma omp parallel num_threads(m->threads)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        const int blocks = (H + 7) / 8;
        int a = 8 * (int)((long)blocks * t / nt), z = 8 * (int)((long)blocks * (t + 1) / nt);
        if (z > H) z = H;
        for (int l = 0; l < L; l++) {
            layer_units(m, l, l ? m->b[l] : row, a, z);
#pragma omp barrier
        }
        const float *top = m->h[1 - m->cur] + (size_t)(L - 1) * H;
        const int va = (int)((long)V * t / nt), vz = (int)((long)V * (t + 1) / nt);
        for (int v = va; v < vz; v++) {
            const float *wv = m->head_w + (size_t)v * H;
            __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
            int k = 0;
            for (; k + 16 <= H; k += 16) {
                s0 = _mm256_fmadd_ps(_mm256_loadu_ps(wv + k), _mm256_loadu_ps(top + k), s0);
                s1 = _mm256_fmadd_ps(_mm256_loadu_ps(wv + k + 8), _mm256_loadu_ps(top + k + 8), s1);
            }
            float tail = 0;
            for (; k < H; k++) tail += wv[k] * top[k];
            m->logits[v] = hsum(_mm256_add_ps(s0, s1)) + tail + m->head_b[v];
        }
    }
    m->cur = 1 - m->cur;
}

/* n tokens sampled from the logits in m->logits, each fed back with a step: out[k] is
 * rnnkit_sample_cdf of uniforms[k] (sample_cdf.h). cdf: scratch of `vocab` doubles. */
void rnnkit_lstm_sample(rnnkit_lstm *m, const double *uniforms, int32_t n, double temperature, double shift,
                        double *cdf, int32_t *out) {
    const int V = m->vocab;
    for (int k = 0; k < n; k++) {
        out[k] = rnnkit_sample_cdf(m->logits, V, temperature, shift, uniforms[k], cdf);
        rnnkit_lstm_step(m, out[k]);
    }
}
