/* Dropout masks for float32 on the CPU, drawn from a counter-based generator.
 *
 * Built by rnnkit.native at first use and driven through ctypes by rnnkit.layers._dropout.
 * Why C: PyTorch's CPU dropout draws every element from its locked Mersenne Twister
 * (bernoulli_), about 9 ns per element here, forty times the cost of multiplying by the
 * mask. Here element i's draw is an integer hash of (seed, i): every thread computes its own
 * share with no shared state, and the result does not depend on the number of threads. One
 * seed per call comes from PyTorch's generator, so torch.manual_seed and its saved states
 * still fix every mask.
 */
#include <stddef.h>
#include <stdint.h>

#include <omp.h>

/* y = x * (keep ? scale : 0) (so NaN and inf stay NaN where dropped, as x * mask in PyTorch).
 * The backward calls it again on the gradient with the same seed: the same elements are kept,
 * so no mask is stored. Element i is kept when hash(i) < threshold, hash being Chris Wellons's
 * "lowbias32" integer mixer (a bijection with near-ideal avalanche) of i's counter offset by the
 * seed: 32-bit lanes, so the loop vectorizes with AVX2. */
void rnnkit_dropout(int64_t n, uint64_t seed, uint32_t threshold, float scale, const float *x, float *y,
                    int32_t threads) {
    const uint32_t lo = (uint32_t)seed, hi = (uint32_t)(seed >> 32);
#pragma omp parallel for simd num_threads(threads) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        uint32_t h = ((uint32_t)i * 0x9e3779b9u + (uint32_t)(i >> 32) * 0x85ebca6bu + lo) ^ hi;
        h ^= h >> 16;
        h *= 0x7feb352du;
        h ^= h >> 15;
        h *= 0x846ca68bu;
        h ^= h >> 16;
        y[i] = x[i] * (h < threshold ? scale : 0.0f);
    }
}
