/* Row-wise kernels around the mixer: RMSNorm and SwiGLU's gate product, forward and
 * backward, in one pass each instead of PyTorch's chain of element-wise operators (CPU
 * autograd runs rms_norm as pow, mean, add, rsqrt and two products, and each of them again
 * in the backward).
 *
 *     RMSNorm:  y = x * r * w,  r = 1 / sqrt(mean(x^2) + eps)     per row of D values
 *     gate:     h = silu(g) * u                                    element by element
 *
 * Activations (x, y, g, u, h and their gradients) are fp32 or bf16, each with its own flag,
 * read and written by io_load / io_store (vec.h); everything is computed in fp32. Rows are
 * contiguous. The weight's gradient sums over rows: each block of BLOCK_ROWS rows sums into
 * its own partial, and a last loop adds the partials in block order, so the result has the
 * same bits for any thread count.
 */
#include <math.h>

#include "vec.h"

#define BLOCK_ROWS 64

struct ghost_rms_problem {
    int64_t rows, dim;
    float eps;
    int32_t x_bf16, y_bf16; /* y and dy share a dtype; x and dx share one */
    int32_t n_threads;
    const void *x;
    const float *weight;
};

/* Sum of a vector's lanes. */
static inline float hsum(vec v)
{
    float s = 0.0f;
    for (int j = 0; j < LANES; j++)
        s += v[j];
    return s;
}

/* y (rows, dim) in y's dtype; rstd (rows) the 1 / RMS of each row, kept for the backward. */
int ghost_rms_forward(const struct ghost_rms_problem *p, void *y, float *rstd)
{
    const int64_t D = p->dim;
#pragma omp parallel for schedule(static) num_threads(p->n_threads)
    for (int64_t row = 0; row < p->rows; row++) {
        const int64_t at = row * D;
        vec squares = splat(0.0f);
        for (int64_t d = 0; d < D; d += LANES) {
            vec x = io_load(p->x, at + d, (int)min64(D - d, LANES), p->x_bf16);
            squares += x * x;
        }
        const float r = 1.0f / sqrtf(hsum(squares) / (float)D + p->eps);
        rstd[row] = r;
        for (int64_t d = 0; d < D; d += LANES) {
            int n = (int)min64(D - d, LANES);
            vec x = io_load(p->x, at + d, n, p->x_bf16);
            io_store(y, at + d, x * r * load_n(p->weight + d, n), n, p->y_bf16);
        }
    }
    return 0;
}

/* dy (rows, dim) -> dx (rows, dim) and dweight (dim), with xhat = x r and g = dy w:
 *     dx = r (g - xhat mean(g xhat))        dweight = sum over rows of dy xhat
 * Returns 0, or -1 if out of memory. */
int ghost_rms_backward(const struct ghost_rms_problem *p, const float *rstd, const void *dy,
                       void *dx, float *dweight)
{
    const int64_t D = p->dim, blocks = (p->rows + BLOCK_ROWS - 1) / BLOCK_ROWS;
    float *parts = thread_scratch(blocks * D); /* (blocks, D): each block's dweight */
    if (!parts)
        return -1;
#pragma omp parallel num_threads(p->n_threads)
    {
#pragma omp for schedule(static)
        for (int64_t block = 0; block < blocks; block++) {
            float *dw = parts + block * D;
            memset(dw, 0, sizeof(float) * (size_t)D);
            for (int64_t row = block * BLOCK_ROWS; row < min64(p->rows, (block + 1) * BLOCK_ROWS); row++) {
                const int64_t at = row * D;
                const float r = rstd[row];
                vec dots = splat(0.0f);
                for (int64_t d = 0; d < D; d += LANES) {
                    int n = (int)min64(D - d, LANES);
                    vec xhat = io_load(p->x, at + d, n, p->x_bf16) * r;
                    vec g = io_load(dy, at + d, n, p->y_bf16);
                    store_n(dw + d, load_n(dw + d, n) + g * xhat, n);
                    dots += g * load_n(p->weight + d, n) * xhat;
                }
                const float mean = hsum(dots) / (float)D;
                for (int64_t d = 0; d < D; d += LANES) {
                    int n = (int)min64(D - d, LANES);
                    vec xhat = io_load(p->x, at + d, n, p->x_bf16) * r;
                    vec g = io_load(dy, at + d, n, p->y_bf16) * load_n(p->weight + d, n);
                    io_store(dx, at + d, (g - xhat * mean) * r, n, p->x_bf16);
                }
            }
        }
        reduce_partials(dweight, parts, D, D, (int)blocks);
    }
    return 0;
}

struct ghost_gate_problem {
    int64_t size; /* values in g, u, h */
    int32_t bf16; /* g, u, h and their gradients */
    int32_t n_threads;
    const void *g, *u;
};

/* h = silu(g) * u. */
int ghost_gate_forward(const struct ghost_gate_problem *p, void *h)
{
#pragma omp parallel for schedule(static) num_threads(p->n_threads)
    for (int64_t i = 0; i < p->size; i += LANES) {
        int n = (int)min64(p->size - i, LANES);
        vec g = io_load(p->g, i, n, p->bf16);
        io_store(h, i, g * vsigmoid(g) * io_load(p->u, i, n, p->bf16), n, p->bf16);
    }
    return 0;
}

/* dh -> dg = dh u silu'(g), du = dh silu(g), with silu'(g) = s (1 + g (1 - s)), s = sigmoid(g). */
int ghost_gate_backward(const struct ghost_gate_problem *p, const void *dh, void *dg, void *du)
{
#pragma omp parallel for schedule(static) num_threads(p->n_threads)
    for (int64_t i = 0; i < p->size; i += LANES) {
        int n = (int)min64(p->size - i, LANES);
        vec g = io_load(p->g, i, n, p->bf16), s = vsigmoid(g);
        vec grad = io_load(dh, i, n, p->bf16);
        io_store(dg, i, grad * io_load(p->u, i, n, p->bf16) * s * (1.0f + g * (1.0f - s)), n, p->bf16);
        io_store(du, i, grad * g * s, n, p->bf16);
    }
    return 0;
}
