/* One generation step of a stacked LSTM for a batch of streams, and plain sampling for each.
 *
 * Built by rnnkit.native at first use and driven through ctypes by rnnkit.lm.fastgen
 * (`BatchLSTM`). Why a kernel of its own: a batch of B streams multiplies each weight by B
 * inputs, so the products are matrix-matrix products bound by arithmetic, and only a
 * register-blocked product (each weight loaded once for several streams, each input value
 * broadcast to 8 gate rows at a time) reaches the CPU's multiply-add rate. The gates, the
 * cell, the head and the sampling run in the same OpenMP team.
 *
 * Every output is one chain of fused multiply-adds over its inputs in increasing order,
 * from zero, in float32: its value depends on that stream's inputs alone, never on the
 * batch size, the stream's row in the batch, the blocking or the thread count. So a stream
 * generated alone and the same stream generated in any batch give the same bits, and with
 * the same uniforms the same text.
 *
 * Layout (PyTorch's gate order i, f, g, o):
 *   table   (tokens, 4H)          embedding @ W_ih0^T + b_ih0 + b_hh0: layer 0's input part, per token
 *   wp[l]   (panels, K, 24)       layer l's (4H, K) weights packed in panels of 24 rows, each panel
 *                                 column after column (K = H for layer 0: W_hh; K = 2H after:
 *                                 [W_ih | W_hh]); rows past 4H are zero
 *   b[l]    (4H)                  biases of layer l > 0
 *   head_wp (panels, H, 24), head_b (V)
 *   h, c    (capacity, L*H)       per stream, every layer's state end to end: layer l > 0 reads
 *                                 [h_{l-1} | h_l], one contiguous slice, after layer l-1 has
 *                                 written its new h in place
 *   gates   (capacity, ldg)       pre-activations, ldg >= panels * 24 + 8 (slack read by the last
 *                                 vector of a row)
 *   logits  (capacity, ldv)       ldv >= panels of the head * 24
 *   xp      (groups of 4, 2H, 4)  scratch: a layer's inputs, the 4 streams of a group interleaved
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include <omp.h>

#include "sample_cdf.h"
#include "simd_math.h"

#define RNNKIT_MAX_LAYERS 16
#define ROWS 24   /* rows per packed panel: three AVX2 registers of float32 */
#define GROUP 4   /* streams per packed group of inputs */
#define KBLOCK 256 /* inputs per block: a panel's block (24 KB) stays in L1 while every stream passes */

typedef struct {
    int32_t layers, hidden, vocab, threads, ldg, ldv;
    const float *table;
    const float *wp[RNNKIT_MAX_LAYERS];
    const float *b[RNNKIT_MAX_LAYERS];
    const float *head_wp, *head_b;
    float *h, *c, *gates, *logits;
    float *xp; /* (groups, 2H, GROUP): the current layer's inputs, interleaved by group */
} rnnkit_lstm_batch;

/* out[s][ROWS p + q] (+)= sum over k in [k0, k1) of wp[p][k][q] * xp[k][s], for P panels and S
 * streams of a group, in increasing k: the partial sums of earlier blocks are read back from out
 * (exact in float32). One contiguous stream of weights per panel and one of inputs. */
static inline __attribute__((always_inline)) void tile(const float *wp, size_t pstride, const int P,
                                                      const float *xp, const int S, float *out, size_t ldo,
                                                      int k0, int k1) {
    __m256 acc[12][GROUP];
    for (int r = 0; r < 3 * P; r++)
        for (int s = 0; s < S; s++)
            acc[r][s] = k0 ? _mm256_loadu_ps(out + s * ldo + (r / 3) * ROWS + 8 * (r % 3)) : _mm256_setzero_ps();
    for (int k = k0; k < k1; k++) {
        __m256 w[12];
        for (int r = 0; r < 3 * P; r++) w[r] = _mm256_loadu_ps(wp + (r / 3) * pstride + (size_t)k * ROWS + 8 * (r % 3));
        for (int s = 0; s < S; s++) {
            const __m256 xv = _mm256_broadcast_ss(xp + (size_t)k * GROUP + s);
            for (int r = 0; r < 3 * P; r++) acc[r][s] = _mm256_fmadd_ps(w[r], xv, acc[r][s]);
        }
    }
    for (int r = 0; r < 3 * P; r++)
        for (int s = 0; s < S; s++) _mm256_storeu_ps(out + s * ldo + (r / 3) * ROWS + 8 * (r % 3), acc[r][s]);
}

/* Panels [p0, p1) of a (panels, K, ROWS) matrix times the streams of groups [g0, g1) of xp
 * (n streams in all) into out (stride ldo). */
static void product(const float *wp, int K, int p0, int p1, const float *xp, int g0, int g1, int n, float *out,
                    size_t ldo) {
    const size_t ps = (size_t)K * ROWS, gs = (size_t)K * GROUP;
    for (int k0 = 0; k0 < K; k0 += KBLOCK) {
        const int k1 = K - k0 < KBLOCK ? K : k0 + KBLOCK;
        if (n == 1) { /* one stream: four panels at a time keep twelve chains of multiply-adds in flight */
            int p = p0;
            for (; p + 4 <= p1; p += 4) tile(wp + p * ps, ps, 4, xp, 1, out + ROWS * p, ldo, k0, k1);
            for (; p < p1; p++) tile(wp + p * ps, ps, 1, xp, 1, out + ROWS * p, ldo, k0, k1);
            continue;
        }
        for (int p = p0; p < p1; p++) {
            const float *w = wp + p * ps;
            for (int g = g0; g < g1; g++) {
                const int S = n - g * GROUP < GROUP ? n - g * GROUP : GROUP;
                const float *x = xp + g * gs;
                float *o = out + (size_t)g * GROUP * ldo + ROWS * p;
                if (S == 4) tile(w, ps, 1, x, 4, o, ldo, k0, k1);
                else if (S == 3) tile(w, ps, 1, x, 3, o, ldo, k0, k1);
                else if (S == 2) tile(w, ps, 1, x, 2, o, ldo, k0, k1);
                else tile(w, ps, 1, x, 1, o, ldo, k0, k1);
            }
        }
    }
}

/* Streams [s0, s1) of x (K inputs each, stride ldx) into their groups of xp. */
static void pack_inputs(const float *x, size_t ldx, int K, int s0, int s1, float *xp) {
    for (int s = s0; s < s1; s++) {
        float *dst = xp + (size_t)(s / GROUP) * K * GROUP + s % GROUP;
        const float *src = x + s * ldx;
        for (int k = 0; k < K; k++) dst[(size_t)k * GROUP] = src[k];
    }
}

/* The cell update of units [0, H) of layer l for stream s, from its pre-activations + add. */
static void cell(const rnnkit_lstm_batch *m, int l, int s, const float *add) {
    const int H = m->hidden;
    const size_t LH = (size_t)m->layers * H;
    const float *pre = m->gates + (size_t)s * m->ldg;
    float *c = m->c + s * LH + (size_t)l * H, *h = m->h + s * LH + (size_t)l * H;
    for (int j0 = 0; j0 < H; j0 += 8) {
        const int width = H - j0 < 8 ? H - j0 : 8;
        float cv[8] = {0}, out[8];
        for (int u = 0; u < width; u++) cv[u] = c[j0 + u];
        __m256 v[4];
        for (int q = 0; q < 4; q++) {
            float a[8] = {0};
            for (int u = 0; u < width; u++) a[u] = add[q * H + j0 + u];
            v[q] = _mm256_add_ps(_mm256_loadu_ps(pre + q * H + j0), _mm256_loadu_ps(a));
        }
        __m256 i = sigmoid8(v[0]), f = sigmoid8(v[1]), g = tanh8(v[2]), o = sigmoid8(v[3]);
        __m256 cn = _mm256_fmadd_ps(f, _mm256_loadu_ps(cv), _mm256_mul_ps(i, g));
        _mm256_storeu_ps(cv, cn);
        _mm256_storeu_ps(out, _mm256_mul_ps(o, tanh8(cn)));
        for (int u = 0; u < width; u++) {
            c[j0 + u] = cv[u];
            h[j0 + u] = out[u];
        }
    }
}

static void range(int total, int t, int nt, int *a, int *z) {
    *a = (int)((long)total * t / nt);
    *z = (int)((long)total * (t + 1) / nt);
}

/* One product of the step: the inputs of every stream (K each, at x + s * ldx) packed, then
 * out = W x for all n streams, the threads splitting the panels when there are few groups of
 * streams and the groups when there are many. Called by every thread of the team. */
static void team_product(const float *wp, int K, int panels, const float *x, size_t ldx, int n, float *xp,
                         float *out, size_t ldo, int t, int nt) {
    const int groups = (n + GROUP - 1) / GROUP;
    int a, z;
    range(groups, t, nt, &a, &z);
#pragma omp barrier
    pack_inputs(x, ldx, K, a * GROUP, z * GROUP < n ? z * GROUP : n, xp);
#pragma omp barrier
    if (groups < 2 * nt) {
        range(panels, t, nt, &a, &z);
        product(wp, K, a, z, xp, 0, groups, n, out, ldo);
    } else {
        product(wp, K, 0, panels, xp, a, z, n, out, ldo);
    }
#pragma omp barrier
}

/* Feed tokens[s] to streams s < n: every layer steps once, then logits[s] = head_w h_top[s] + head_b. */
void rnnkit_lstm_batch_step(rnnkit_lstm_batch *m, int32_t n, const int32_t *tokens) {
    const int H = m->hidden, L = m->layers, V = m->vocab;
    const int gate_panels = (4 * H + ROWS - 1) / ROWS, head_panels = (V + ROWS - 1) / ROWS;
    const size_t LH = (size_t)L * H;
#pragma omp parallel num_threads(m->threads)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        int sa, sz;
        range(n, t, nt, &sa, &sz);
        for (int l = 0; l < L; l++) {
            team_product(m->wp[l], l ? 2 * H : H, gate_panels, m->h + (size_t)(l ? l - 1 : 0) * H, LH, n, m->xp,
                         m->gates, m->ldg, t, nt);
            for (int s = sa; s < sz; s++) cell(m, l, s, l ? m->b[l] : m->table + (size_t)tokens[s] * 4 * H);
        }
        team_product(m->head_wp, H, head_panels, m->h + (size_t)(L - 1) * H, LH, n, m->xp, m->logits, m->ldv, t,
                     nt);
        for (int s = sa; s < sz; s++) {
            float *row = m->logits + (size_t)s * m->ldv;
            for (int v = 0; v < V; v++) row[v] += m->head_b[v];
        }
    }
}

/* For each stream s < n with plain[s]: out[s] = rnnkit_sample_cdf of uniforms[s] at
 * temperature[s] and shift[s] (sample_cdf.h). cdf: scratch of threads * vocab doubles.
 * Streams without plain[s] are left alone. */
void rnnkit_lstm_batch_sample(const rnnkit_lstm_batch *m, int32_t n, const uint8_t *plain, const double *uniforms,
                              const double *temperature, const double *shift, double *cdf_all, int32_t *out) {
    const int V = m->vocab;
#pragma omp parallel num_threads(m->threads)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        int sa, sz;
        range(n, t, nt, &sa, &sz);
        double *cdf = cdf_all + (size_t)t * V;
        for (int s = sa; s < sz; s++) {
            if (!plain[s]) continue;
            out[s] = rnnkit_sample_cdf(m->logits + (size_t)s * m->ldv, V, temperature[s], shift[s],
                                       uniforms[s], cdf);
        }
    }
}
