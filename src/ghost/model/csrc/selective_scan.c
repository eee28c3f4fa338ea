/* Fused selective scan for CPU, forward and backward, in fp32.
 *
 * The maths is `selective_scan_ref` in ../scan.py; for one batch element b and channel d:
 *
 *     dt_t = softplus(delta_t + bias)          (or delta_t + bias without softplus)
 *     h_t  = exp(dt_t * A) * h_{t-1} + dt_t * u_t * B_t        h, A, B_t, C_t: N floats
 *     y_t  = (<h_t, C_t> + D * u_t) * silu(z_t)
 *
 * Layouts (row-major): u, delta, z, y: (B, L, ED); A: (ED, NP); B, C: (B, L, NP);
 * D, bias: (ED,); states: (B, ED, NP); z may also be a view with rows z_row_stride apart.
 * NP is N rounded up by the caller to a multiple of 16 (so of LANES below), padded with
 * zeros: a zero in A and B keeps the padded states at exactly zero. The activations (u,
 * delta, z, y and their gradients) are fp32 or bf16 (io_load / io_store); the rest is fp32.
 *
 * Map of this file:
 *   1. vec helpers (vec.h, shared with rows.c): a vector of LANES floats (16 with AVX-512:
 *      one register, and all of h for N = 16), exp, softplus, sigmoid, sum_lanes.
 *   2. Work split: a tile is one batch element x LANES consecutive channels (contiguous in
 *      memory). Element-wise work (softplus, D skip, silu gate and their gradients) is
 *      vectorised across the tile's channels. The recurrence is vectorised across the
 *      state: each channel's LANES-state slice of h is one vec, and the tile's channels
 *      step through t together (tile_step), so B_t and C_t are loaded once per step and the
 *      tile's dot products <h_t, C_t> come out of one sum_lanes, already in its layout.
 *   3. forward_tile: prologue (dt), the scan, epilogue (y). It saves the state entering
 *      each chunk of `chunk` steps after the first: N floats per channel per chunk.
 *   4. backward_tile: prologue, then per state slice a reverse sweep over the chunks, last
 *      first, each chunk's states recomputed from its saved start state; then the epilogue.
 *      No (B, L, ED, N) tensor ever exists.
 *   5. Entry points ghost_scan_forward / ghost_scan_backward: OpenMP over tiles with a
 *      static schedule. dA, dB, dC, dD and dbias sum over channels or batch, so every
 *      thread accumulates into its own partial buffer and a second loop adds them in
 *      thread order: deterministic for a fixed thread count, no atomics.
 *   6. The mixer's causal depthwise convolution + SiLU, forward and backward (its own
 *      entry points, ghost_conv_silu_*): one pass each way over rows of channels.
 */
#include "vec.h"

/* ---- 2. Problem description and per-thread scratch ----------------------------------- */

/* Mirrored by ctypes in scan_fused.py: keep the field order in step. Optional inputs are
 * NULL when absent. */
struct ghost_scan_problem {
    int64_t batch, length, channels, nstate; /* nstate = NP, a multiple of LANES */
    int64_t chunk;                           /* steps between saved states */
    int64_t z_row_stride; /* floats between z's rows: ED, or 2 ED for a view of in_proj's output */
    int32_t softplus, n_threads;
    int32_t bf16; /* u, delta, z, y, dy, du, ddelta and dz are bf16 (else fp32) */
    const void *u, *delta;
    const float *A, *B, *C, *D;
    const void *z;
    const float *delta_bias, *h0;
};

struct ghost_scan_grads {
    void *du, *ddelta; /* activations, in the problem's dtype */
    float *dA, *dB, *dC, *dD;
    void *dz;
    float *ddelta_bias, *dh0; /* dD, dz, dbias, dh0 optional */
};

static inline int64_t n_chunks(const struct ghost_scan_problem *p)
{
    return (p->length + p->chunk - 1) / p->chunk;
}

/* One tile: batch element b, channels d0 .. d0 + width - 1. The per-step arrays hold one
 * vec (LANES channels) per step, row t at [t * LANES]; lanes past width stay zero and
 * are never stored. */
struct tile {
    int64_t b, d0;
    int width;
    float *dt, *dtu, *y0;                    /* per step; dt * u; <h, C> */
    float *dts; /* per step: dt * DECAY_SCALE, what the decays' exponent is A times */
    float *u, *dy0, *dgate, *ddx, *du, *ddt; /* per step, backward only */
    vec *H, *E; /* backward chunk: states h_{t0-1}..h_{t1-1} and decays, LANES channels each */
};

#define STEP_ARRAYS 10

/* Scratch floats per thread: see struct tile. */
static int64_t scratch_floats(const struct ghost_scan_problem *p)
{
    return (STEP_ARRAYS * p->length + (2 * p->chunk + 1) * LANES) * LANES;
}

static struct tile tile_at(const struct ghost_scan_problem *p, float *scratch, int64_t item)
{
    const int64_t tiles_per_row = (p->channels + LANES - 1) / LANES, rows = p->length * LANES;
    struct tile tl = {.b = item / tiles_per_row, .d0 = item % tiles_per_row * LANES};
    tl.width = (int)min64(p->channels - tl.d0, LANES);
    float **steps[STEP_ARRAYS] = {&tl.dt, &tl.dts, &tl.dtu, &tl.y0, &tl.u, &tl.dy0,
                                  &tl.dgate, &tl.ddx, &tl.du, &tl.ddt};
    for (int i = 0; i < STEP_ARRAYS; i++)
        *steps[i] = scratch + i * rows;
    tl.H = (vec *)(scratch + STEP_ARRAYS * rows);
    tl.E = tl.H + (p->chunk + 1) * LANES;
    return tl;
}

/* Prologue shared by both passes: dt = softplus(delta + bias) and dt * u for the tile;
 * for the backward also u and d dt / d delta. */
static void tile_dt(const struct ghost_scan_problem *p, struct tile *tl, int backward)
{
    const int64_t L = p->length, ED = p->channels;
    vec bias = p->delta_bias ? load_n(p->delta_bias + tl->d0, tl->width) : splat(0.0f);
    for (int64_t t = 0; t < L; t++) {
        int64_t at = (tl->b * L + t) * ED + tl->d0;
        if (t + 8 < L) { /* rows are ED values apart, each a new cache line: ask early */
            __builtin_prefetch((const char *)p->delta + (at + 8 * ED) * io_size(p->bf16));
            __builtin_prefetch((const char *)p->u + (at + 8 * ED) * io_size(p->bf16));
        }
        vec x = io_load(p->delta, at, tl->width, p->bf16) + bias;
        vec u = io_load(p->u, at, tl->width, p->bf16);
        vec dt = p->softplus ? vsoftplus(x) : x;
        store(tl->dt + t * LANES, dt);
        store(tl->dts + t * LANES, dt * DECAY_SCALE);
        store(tl->dtu + t * LANES, dt * u);
        store(tl->y0 + t * LANES, splat(0.0f));
        if (backward) {
            store(tl->u + t * LANES, u);
            store(tl->ddx + t * LANES, p->softplus ? vsigmoid(x) : splat(1.0f));
        }
    }
}

/* The tile's A slices k .. k + LANES - 1 (zero for lanes past the tile's width). */
static void tile_load_A(const struct ghost_scan_problem *p, const struct tile *tl, int64_t k,
                        vec a[LANES])
{
    for (int j = 0; j < LANES; j++)
        a[j] = j < tl->width ? load(p->A + (tl->d0 + j) * p->nstate + k) : splat(0.0f);
}

/* Offset of channel d0 + j's state slice k in a (B, ED, NP) state tensor. */
static inline int64_t state_at(const struct ghost_scan_problem *p, const struct tile *tl, int j, int64_t k)
{
    return (tl->b * p->channels + tl->d0 + j) * p->nstate + k;
}

/* Offset of channel d0 + j's slice k of the state entering chunk c >= 1 in ckpt,
 * (B, ED, chunks - 1, NP): the first chunk starts from h0, which the caller keeps. */
static inline int64_t ckpt_at(const struct ghost_scan_problem *p, const struct tile *tl, int j,
                              int64_t c, int64_t k)
{
    return ((tl->b * p->channels + tl->d0 + j) * (n_chunks(p) - 1) + c - 1) * p->nstate + k;
}

/* The state entering chunk c for channel d0 + j, slice k (zero past the tile's width). */
static inline vec chunk_start(const struct ghost_scan_problem *p, const struct tile *tl,
                              const float *ckpt, int j, int64_t c, int64_t k)
{
    if (j >= tl->width)
        return splat(0.0f);
    if (c > 0)
        return load(ckpt + ckpt_at(p, tl, j, c, k));
    return p->h0 ? load(p->h0 + state_at(p, tl, j, k)) : splat(0.0f);
}

/* One step of the tile's recurrences for one state slice: h = decay * h_prev + ...,
 * with the decays exp(dt A) left in decay; the outputs <h_t, C_t> are added to y0 at row t
 * when y0 is non-NULL. */
static inline void tile_step(const struct tile *tl, const vec a[LANES], int64_t t, vec Bv, vec Cv,
                             vec *h, const vec *h_prev, vec *decay, float *y0)
{
    vec out[LANES];
#pragma GCC unroll 16
    for (int j = 0; j < LANES; j++) {
        decay[j] = vdecay(a[j] * tl->dts[t * LANES + j]);
        h[j] = decay[j] * h_prev[j] + tl->dtu[t * LANES + j] * Bv;
        out[j] = h[j] * Cv;
    }
    if (y0)
        add_to(y0 + t * LANES, sum_lanes(out));
}

/* ---- 3. Forward ---------------------------------------------------------------------- */

/* The channels of a tile run in lock step: at each t, B_t and C_t are loaded once for all
 * of them and their outputs come out of one sum_lanes, already in the tile's layout.
 * ckpt gets the state entering each chunk after the first (for the backward) and last the
 * final state, when non-NULL. */
static void forward_tile(const struct ghost_scan_problem *p, struct tile *tl, void *y,
                         float *last, float *ckpt, float *y0_out)
{
    const int64_t L = p->length, ED = p->channels, NP = p->nstate, w = tl->width;
    tile_dt(p, tl, 0);
    for (int64_t k = 0; k < NP; k += LANES) {
        const float *Bt = p->B + tl->b * L * NP + k, *Ct = p->C + tl->b * L * NP + k;
        vec a[LANES], h[LANES], decay[LANES]; /* the forward has no use for decay */
        tile_load_A(p, tl, k, a);
        for (int j = 0; j < LANES; j++)
            h[j] = chunk_start(p, tl, NULL, j, 0, k);
        for (int64_t c = 0; c < n_chunks(p); c++) {
            for (int j = 0; ckpt && c > 0 && j < w; j++)
                store(ckpt + ckpt_at(p, tl, j, c, k), h[j]);
            for (int64_t t = c * p->chunk; t < min64(L, (c + 1) * p->chunk); t++)
                tile_step(tl, a, t, load(Bt + t * NP), load(Ct + t * NP), h, h, decay, tl->y0);
        }
        for (int j = 0; last && j < w; j++)
            store(last + state_at(p, tl, j, k), h[j]);
    }
    vec D = p->D ? load_n(p->D + tl->d0, w) : splat(0.0f);
    for (int64_t t = 0; t < L; t++) {
        int64_t at = (tl->b * L + t) * ED + tl->d0;
        vec out = load(tl->y0 + t * LANES) + D * io_load(p->u, at, w, p->bf16);
        if (y0_out)
            store_n(y0_out + at, load(tl->y0 + t * LANES), w);
        if (p->z) {
            vec z = io_load(p->z, (tl->b * L + t) * p->z_row_stride + tl->d0, w, p->bf16);
            out *= z * vsigmoid(z);
        }
        io_store(y, at, out, w, p->bf16);
    }
}

/* ---- 4. Backward --------------------------------------------------------------------- */

/* Per-thread sums over channels (dA, dD, dbias) and over the batch's channels (dB, dC). */
struct partials {
    float *dA, *dB, *dC, *dD, *dbias;
};

/* The reverse sweep over one chunk [t0, t1) for one state slice of the tile's channels.
 * With g_t = dLoss/dh_t and e_t = exp(dt_t A), per channel:
 *     g_t = e_{t+1} g_{t+1} + dy0_t C_t          (the carry g holds e_{t+1} g_{t+1})
 *     dC_t += dy0_t h_t        dB_t += g_t dt_t u_t        dA += g_t h_{t-1} e_t dt_t
 *     du_t += dt_t <g_t, B_t>  ddt_t += <g_t h_{t-1} e_t, A> + u_t <g_t, B_t>
 * dB_t and dC_t sum over channels lane by lane; the <.,.> come out of sum_lanes per step. */
static inline void tile_reverse_chunk(const struct tile *tl, const vec a[LANES], vec g[LANES],
                                      vec da[LANES], int64_t t0, int64_t t1, const float *Bt,
                                      const float *Ct, float *dBt, float *dCt, int64_t NP)
{
    for (int64_t t = t1 - 1; t >= t0; t--) {
        const vec *H = tl->H + (t - t0) * LANES, *E = tl->E + (t - t0) * LANES;
        const float *dy0 = tl->dy0 + t * LANES, *dt = tl->dt + t * LANES;
        vec Bv = load(Bt + t * NP), Cv = load(Ct + t * NP);
        vec dB = splat(0.0f), dC = splat(0.0f), gB[LANES], qA[LANES];
#pragma GCC unroll 16
        for (int j = 0; j < LANES; j++) {
            vec g_t = g[j] + dy0[j] * Cv;
            dC += dy0[j] * H[LANES + j]; /* h_t */
            dB += g_t * tl->dtu[t * LANES + j];
            vec q = g_t * H[j] * E[j]; /* g_t h_{t-1} e_t */
            da[j] += q * dt[j];
            gB[j] = g_t * Bv;
            qA[j] = q * a[j];
            g[j] = E[j] * g_t;
        }
        add_to(dCt + t * NP, dC);
        add_to(dBt + t * NP, dB);
        vec sum_gB = sum_lanes(gB), u = load(tl->u + t * LANES);
        add_to(tl->du + t * LANES, load(dt) * sum_gB);
        add_to(tl->ddt + t * LANES, sum_lanes(qA) + u * sum_gB);
    }
}

/* Slice k of the tile: chunks last to first, each one's states recomputed forward from
 * the state the forward saved at its start into H and E, then swept in reverse. */
static void backward_slice(const struct ghost_scan_problem *p, struct tile *tl, int64_t k,
                           const float *ckpt, const float *dlast, struct partials *part, float *dh0,
                           int want_y0)
{
    const int64_t L = p->length, NP = p->nstate, K = p->chunk, w = tl->width;
    const int64_t bt0 = tl->b * L * NP + k; /* (b, t=0, k) in B, C, dB, dC */
    vec a[LANES], g[LANES], da[LANES];       /* per channel: A, the carry, the dA sum */
    tile_load_A(p, tl, k, a);
    for (int j = 0; j < LANES; j++) {
        g[j] = dlast && j < w ? load(dlast + state_at(p, tl, j, k)) : splat(0.0f);
        da[j] = splat(0.0f);
    }
    for (int64_t c = n_chunks(p) - 1; c >= 0; c--) {
        int64_t t0 = c * K, t1 = min64(L, t0 + K);
        for (int j = 0; j < LANES; j++)
            tl->H[j] = chunk_start(p, tl, ckpt, j, c, k);
        for (int64_t t = t0; t < t1; t++) { /* the gate's gradient needs y0 = <h, C> */
            vec *H = tl->H + (t - t0) * LANES;
            tile_step(tl, a, t, load(p->B + bt0 + t * NP), load(p->C + bt0 + t * NP), H + LANES,
                      H, tl->E + (t - t0) * LANES, want_y0 ? tl->y0 : NULL);
        }
        tile_reverse_chunk(tl, a, g, da, t0, t1, p->B + bt0, p->C + bt0, part->dB + bt0,
                           part->dC + bt0, NP);
    }
    for (int j = 0; j < w; j++) {
        add_to(part->dA + (tl->d0 + j) * NP + k, da[j]);
        if (dh0) /* the carry is now e_0 g_0 = dLoss/dh_{-1} */
            store(dh0 + state_at(p, tl, j, k), g[j]);
    }
}

static void backward_tile(const struct ghost_scan_problem *p, struct tile *tl, const float *ckpt,
                          const float *y0_saved, const void *dy, const float *dlast,
                          const struct ghost_scan_grads *gr, struct partials *part)
{
    const int64_t L = p->length, ED = p->channels;
    const int w = tl->width;
    tile_dt(p, tl, 1);
    /* Prologue: dy0 = dLoss/d(pre-gate output); dgate = dy * silu'(z), times y0 later. */
    for (int64_t t = 0; t < L; t++) {
        int64_t at = (tl->b * L + t) * ED + tl->d0;
        vec dout = io_load(dy, at, w, p->bf16);
        if (p->z) {
            vec z = io_load(p->z, (tl->b * L + t) * p->z_row_stride + tl->d0, w, p->bf16);
            vec s = vsigmoid(z);
            store(tl->dy0 + t * LANES, dout * z * s);
            store(tl->dgate + t * LANES, dout * s * (1.0f + z * (1.0f - s)));
        } else {
            store(tl->dy0 + t * LANES, dout);
        }
        store(tl->du + t * LANES, splat(0.0f));
        store(tl->ddt + t * LANES, splat(0.0f));
        if (p->z && y0_saved)
            store(tl->y0 + t * LANES, load_n(y0_saved + at, w));
    }
    for (int64_t k = 0; k < p->nstate; k += LANES)
        backward_slice(p, tl, k, ckpt, dlast, part, gr->dh0, p->z && !y0_saved);
    /* Epilogue: the D skip, the gate and the softplus, back in channel vectors. */
    vec D = p->D ? load_n(p->D + tl->d0, w) : splat(0.0f);
    vec dD = splat(0.0f), dbias = splat(0.0f);
    for (int64_t t = 0; t < L; t++) {
        int64_t at = (tl->b * L + t) * ED + tl->d0;
        vec u = load(tl->u + t * LANES), dy0 = load(tl->dy0 + t * LANES);
        io_store(gr->du, at, load(tl->du + t * LANES) + dy0 * D, w, p->bf16);
        vec dx = load(tl->ddt + t * LANES) * load(tl->ddx + t * LANES);
        io_store(gr->ddelta, at, dx, w, p->bf16);
        dbias += dx;
        dD += dy0 * u;
        if (p->z)
            io_store(gr->dz, at, load(tl->dgate + t * LANES) * (load(tl->y0 + t * LANES) + D * u), w,
                     p->bf16);
    }
    float *dD_row = part->dD + tl->d0, *dbias_row = part->dbias + tl->d0;
    store_n(dD_row, load_n(dD_row, w) + dD, w);
    store_n(dbias_row, load_n(dbias_row, w) + dbias, w);
}

/* ---- 5. Entry points ------------------------------------------------------------------- */

static int64_t n_tiles(const struct ghost_scan_problem *p)
{
    return p->batch * ((p->channels + LANES - 1) / LANES);
}

/* y: (B, L, ED); last: (B, ED, NP) or NULL; ckpt: (B, ED, chunks - 1, NP) or NULL, filled
 * with the state entering each chunk after the first, for the backward; y0 (B, L, ED) or
 * NULL gets <h_t, C_t>, which spares the backward's recompute those sums when there is a
 * gate. Returns 0, or -1 if out of memory. */
int ghost_scan_forward(const struct ghost_scan_problem *p, void *y, float *last, float *ckpt,
                       float *y0)
{
    const int64_t per_thread = scratch_floats(p);
    float *scratch = thread_scratch(per_thread * p->n_threads);
    if (!scratch)
        return -1;
#pragma omp parallel num_threads(p->n_threads)
    {
        float *mine = scratch + per_thread * omp_get_thread_num();
#pragma omp for schedule(static)
        for (int64_t item = 0; item < n_tiles(p); item++) {
            struct tile tl = tile_at(p, mine, item);
            forward_tile(p, &tl, y, last, ckpt, y0);
        }
    }
    return 0;
}

/* dy: (B, L, ED); dlast: (B, ED, NP) or NULL; ckpt and y0 (or NULL: recomputed) from
 * ghost_scan_forward. Fills every
 * gradient in gr (shapes as the inputs; dA (ED, NP), dB and dC (B, L, NP)); dD, dz,
 * ddelta_bias and dh0 may be NULL. Returns 0, or -1 if out of memory. */
int ghost_scan_backward(const struct ghost_scan_problem *p, const float *ckpt, const float *y0,
                        const void *dy, const float *dlast, const struct ghost_scan_grads *gr)
{
    const int64_t ED = p->channels, NP = p->nstate, BLN = p->batch * p->length * NP;
    /* rounded up to whole vectors, so the scratch after the partials stays 64-byte aligned */
    const int64_t part_size = (ED * NP + 2 * BLN + 2 * ED + LANES - 1) / LANES * LANES;
    const int64_t per_thread = scratch_floats(p);
    const int threads = p->n_threads;
    float *parts = thread_scratch((part_size + per_thread) * threads);
    if (!parts)
        return -1;
    float *scratch = parts + part_size * threads;
#pragma omp parallel num_threads(threads)
    {
        int me = omp_get_thread_num();
        float *base = parts + part_size * me, *mine = scratch + per_thread * me;
        struct partials part = {.dA = base, .dB = base + ED * NP, .dC = base + ED * NP + BLN,
                                .dD = base + ED * NP + 2 * BLN, .dbias = base + ED * NP + 2 * BLN + ED};
#pragma omp for schedule(static)
        for (int64_t i = 0; i < part_size * threads; i++)
            parts[i] = 0.0f;
#pragma omp for schedule(static)
        for (int64_t item = 0; item < n_tiles(p); item++) {
            struct tile tl = tile_at(p, mine, item);
            backward_tile(p, &tl, ckpt, y0, dy, dlast, gr, &part);
        }
        reduce_partials(gr->dA, parts, ED * NP, part_size, threads);
        reduce_partials(gr->dB, parts + ED * NP, BLN, part_size, threads);
        reduce_partials(gr->dC, parts + ED * NP + BLN, BLN, part_size, threads);
        if (gr->dD)
            reduce_partials(gr->dD, parts + ED * NP + 2 * BLN, ED, part_size, threads);
        if (gr->ddelta_bias)
            reduce_partials(gr->ddelta_bias, parts + ED * NP + 2 * BLN + ED, ED, part_size, threads);
    }
    return 0;
}

/* ---- 6. Causal depthwise convolution + SiLU (the mixer's step before the scan) --------- */

/* For batch element b, channel d and the K taps w[0..K-1][d] (the last tap sees x_t):
 *
 *     pre_t = bias[d] + sum_i w[i][d] * xp_{t+i}        u_t = silu(pre_t)
 *
 * where xp is x with K - 1 rows in front: the history (B, K-1, ED) when given, else zeros.
 * x may be a view with unit channel stride (the mixer passes its half of in_proj's output
 * without a copy); u, dx: (B, L, ED); dhistory: (B, K-1, ED); taps, dtaps: (K, ED).
 *
 * Both passes walk rows (b, t) and, within a row, the channels in order: memory is read
 * sequentially. (A tile of channels stepping through t reads one cache line per 4 KB row,
 * a new page each time, and ran 5x slower.) The forward keeps silu'(pre) for the backward
 * (one more stream of writes, but no exp or division in the backward). The backward goes
 * from t = L-1 down, keeping the last K rows of d pre in a ring, and sums dtaps and dbias
 * per batch element into a (B, K+1, ED) buffer that a last loop adds up in batch order:
 * the same bits for any thread count. */
struct ghost_conv_problem {
    int64_t batch, length, channels, width; /* width = K */
    int64_t x_batch_stride, x_row_stride;   /* in values */
    int32_t n_threads;
    int32_t bf16; /* x, u, du and dx are bf16 (else fp32); then there is no history */
    const void *x;
    const float *history, *taps, *bias; /* history may be NULL */
};

/* Row P of xp for batch b (P < K - 1: the history, or NULL for zeros); its values are in
 * the problem's dtype (a history comes only with fp32). */
static inline const void *conv_row(const struct ghost_conv_problem *p, int64_t b, int64_t P)
{
    const int64_t before = p->width - 1;
    if (P >= before) {
        int64_t at = b * p->x_batch_stride + (P - before) * p->x_row_stride;
        return (const char *)p->x + at * io_size(p->bf16);
    }
    return p->history ? p->history + (b * before + P) * p->channels : NULL;
}

/* pre_t for channels d .. d + n - 1, from the K rows of xp it reads (NULL rows are zeros). */
static inline vec conv_pre(const struct ghost_conv_problem *p, const void *const *rows,
                           int64_t d, int n)
{
    vec pre = load_n(p->bias + d, n);
    for (int64_t i = 0; i < p->width; i++)
        if (rows[i])
            pre += load_n(p->taps + i * p->channels + d, n) * io_load(rows[i], d, n, p->bf16);
    return pre;
}

static inline void conv_rows(const struct ghost_conv_problem *p, int64_t b, int64_t t,
                             const void **rows)
{
    for (int64_t i = 0; i < p->width; i++)
        rows[i] = conv_row(p, b, t + i);
}

/* u: (B, L, ED) in the problem's dtype; dsilu (B, L, ED) fp32 or NULL: silu'(pre), kept for
 * the backward. Returns 0. */
int ghost_conv_silu_forward(const struct ghost_conv_problem *p, void *u, float *dsilu)
{
    const int64_t L = p->length, ED = p->channels;
#pragma omp parallel for schedule(static) num_threads(p->n_threads)
    for (int64_t row = 0; row < p->batch * L; row++) {
        const void *rows[p->width];
        conv_rows(p, row / L, row % L, rows);
        for (int64_t d = 0; d < ED; d += LANES) {
            int n = (int)min64(ED - d, LANES);
            vec pre = conv_pre(p, rows, d, n), s = vsigmoid(pre);
            io_store(u, row * ED + d, pre * s, n, p->bf16);
            if (dsilu)
                store_n(dsilu + row * ED + d, s * (1.0f + pre * (1.0f - s)), n);
        }
    }
    return 0;
}

/* du: (B, L, ED), dsilu from the forward -> dx (B, L, ED), dhistory (B, K-1, ED) when the
 * problem has a history, dtaps (K, ED), dbias (ED); du and dx in the problem's dtype.
 * Returns 0, or -1 if out of memory. */
int ghost_conv_silu_backward(const struct ghost_conv_problem *p, const float *dsilu,
                             const void *du, void *dx, float *dhistory, float *dtaps,
                             float *dbias)
{
    const int64_t L = p->length, ED = p->channels, K = p->width;
    const int64_t ring_size = K * ED, sums_size = (K + 1) * ED; /* per thread; per b */
    float *scratch = thread_scratch(ring_size * p->n_threads + sums_size * p->batch);
    if (!scratch)
        return -1;
    float *sums = scratch + ring_size * p->n_threads; /* (B, K+1, ED): dtaps, then dbias */
#pragma omp parallel num_threads(p->n_threads)
    {
        float *ring = scratch + ring_size * omp_get_thread_num(); /* d pre_t at row t % K */
#pragma omp for schedule(static)
        for (int64_t b = 0; b < p->batch; b++) {
            float *dw = sums + b * sums_size, *db = dw + K * ED;
            memset(ring, 0, sizeof(float) * (size_t)ring_size); /* d pre_t = 0 for t >= L */
            memset(dw, 0, sizeof(float) * (size_t)sums_size);
            for (int64_t t = L - 1; t >= 0; t--) {
                const void *rows[K];
                const float *later[K]; /* later[i]: d pre_{t+K-1-i} */
                conv_rows(p, b, t, rows);
                for (int64_t i = 0; i < K; i++)
                    later[i] = ring + (t + K - 1 - i) % K * ED;
                const int64_t at = (b * L + t) * ED;
                const float *slope = dsilu + at;
                float *now = ring + t % K * ED;
                for (int64_t d = 0; d < ED; d += LANES) {
                    int n = (int)min64(ED - d, LANES);
                    vec dpre = io_load(du, at + d, n, p->bf16) * load_n(slope + d, n);
                    store_n(now + d, dpre, n);
                    /* x_t is row t + K - 1 of xp; it feeds pre_{t+K-1-i} through tap i */
                    vec g = splat(0.0f);
                    for (int64_t i = 0; i < K; i++) {
                        g += load_n(p->taps + i * ED + d, n) * load_n(later[i] + d, n);
                        if (rows[i]) {
                            vec x = io_load(rows[i], d, n, p->bf16);
                            vec dw_i = load_n(dw + i * ED + d, n) + dpre * x;
                            store_n(dw + i * ED + d, dw_i, n);
                        }
                    }
                    io_store(dx, at + d, g, n, p->bf16);
                    store_n(db + d, load_n(db + d, n) + dpre, n);
                }
            }
            /* History row P < K - 1 feeds pre_{P-i} through tap i <= P. */
            for (int64_t P = 0; dhistory && P < K - 1; P++)
                for (int64_t d = 0; d < ED; d += LANES) {
                    int n = (int)min64(ED - d, LANES);
                    vec g = splat(0.0f);
                    for (int64_t i = 0; i <= P; i++)
                        g += load_n(p->taps + i * ED + d, n) * load_n(ring + (P - i) * ED + d, n);
                    store_n(dhistory + (b * (K - 1) + P) * ED + d, g, n);
                }
        }
        /* The per-batch-element sums, added in batch order. */
        reduce_partials(dtaps, sums, K * ED, sums_size, (int)p->batch);
        reduce_partials(dbias, sums + K * ED, ED, sums_size, (int)p->batch);
    }
    return 0;
}

/* The instruction set the compiler targeted, for `ghost info`. */
const char *ghost_scan_isa(void)
{
#if defined(__AVX512F__)
    return "avx512";
#elif defined(__AVX2__)
    return "avx2";
#elif defined(__SSE4_2__)
    return "sse4.2";
#elif defined(__ARM_NEON)
    return "neon";
#else
    return "generic";
#endif
}
