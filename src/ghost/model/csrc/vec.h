/* Vector helpers shared by Ghost's CPU kernels (selective_scan.c, rows.c).
 *
 * A vec is LANES floats in GCC's vector extension: the compiler emits the ISA that -march
 * allows, with no intrinsics except in x86's exp (AVX-512, AVX2). Here: loads and stores
 * (whole or partial vectors, fp32 or bf16 activations), select / min / max / abs, exp,
 * log1p, softplus and sigmoid written as polynomials so that they vectorise without
 * -ffast-math or a vector maths library, sum_lanes (LANES horizontal sums at once),
 * per-thread scratch memory and the ordered sum of per-thread partials that keeps every
 * kernel deterministic.
 */
#ifndef GHOST_VEC_H
#define GHOST_VEC_H

#include <omp.h>
#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The vector width is the hardware's: 16 floats with AVX-512 (N = 16 states are then one
 * register), 8 with AVX, else 4 (SSE, NEON). A wider vector would be split by GCC, and the
 * lock step of LANES channels below would need more registers than exist: 16 lanes on
 * AVX2 measured 6x slower than 8. */
#if defined(__AVX512F__)
#define LANES 16
#elif defined(__AVX__)
#define LANES 8
#else
#define LANES 4
#endif

typedef float vec __attribute__((vector_size(4 * LANES)));
typedef int32_t veci __attribute__((vector_size(4 * LANES)));

static inline vec splat(float x) { return (vec){0} + x; }

/* memcpy keeps the loads and stores unaligned-safe; the compiler emits one vmovups. */
static inline vec load(const float *p)
{
    vec v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void store(float *p, vec v) { memcpy(p, &v, sizeof v); }

/* The last tile of a row may hold fewer than LANES channels: missing lanes read as 0. */
static inline vec load_n(const float *p, int n)
{
    if (n == LANES)
        return load(p);
    vec v = {0};
    memcpy(&v, p, sizeof(float) * (size_t)n);
    return v;
}

static inline void store_n(float *p, vec v, int n)
{
    if (n == LANES)
        store(p, v);
    else
        memcpy(p, &v, sizeof(float) * (size_t)n);
}

static inline void add_to(float *p, vec v) { store(p, load(p) + v); }

/* Activations (the streams of B x L x ED values: u, delta, z, y and their gradients) come
 * in fp32 or bf16, the top half of an fp32: io_load widens in registers and io_store rounds
 * to nearest even (NaN stays NaN), so a bf16 model needs no cast passes around the kernels.
 * Everything inside (states, sums, the saved tensors) is fp32. */
typedef uint32_t vecu __attribute__((vector_size(4 * LANES)));
typedef uint16_t halves __attribute__((vector_size(2 * LANES)));

/* A whole vector of bf16 values: widened, or rounded to nearest even (NaN stays NaN). x86
 * has an instruction or two for each: AVX-512 BF16's vcvtneps2bf16 rounds by itself (and
 * flushes fp32 denormals, below 1.2e-38, to zero: its one difference from the spelled-out
 * rounding); elsewhere GCC's vector extension spells the rounding out. Measured on Zen 4,
 * the SwiGLU gate's bf16 pass took 1.8x its fp32 time with the portable code, 1.1x with
 * these. */
#if defined(__AVX512F__)
static inline vec bf16_load(const uint16_t *p)
{
    __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p));
    return (vec)_mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
}
#elif defined(__AVX2__)
static inline vec bf16_load(const uint16_t *p)
{
    __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return (vec)_mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}
#else
static inline vec bf16_load(const uint16_t *p)
{
    halves h;
    memcpy(&h, p, sizeof h);
    return (vec)(__builtin_convertvector(h, vecu) << 16);
}
#endif

/* The upper 16 bits of v rounded to nearest even, in the low half of each lane; a NaN
 * keeps its sign and top mantissa bits and is made quiet. */
static inline vecu bf16_round(vec v)
{
    vecu bits = (vecu)v, nan = (vecu)((bits & 0x7fffffffu) > 0x7f800000u);
    vecu rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
    return (rounded & ~nan) | (((bits >> 16) | 0x40u) & nan);
}

#if defined(__AVX512BF16__) && defined(__AVX512VL__)
static inline void bf16_store(uint16_t *p, vec v)
{
    _mm256_storeu_si256((__m256i *)p, (__m256i)_mm512_cvtneps_pbh((__m512)v));
}
#elif defined(__AVX512F__)
static inline void bf16_store(uint16_t *p, vec v)
{
    _mm256_storeu_si256((__m256i *)p, _mm512_cvtepi32_epi16((__m512i)bf16_round(v)));
}
#elif defined(__AVX2__)
static inline void bf16_store(uint16_t *p, vec v)
{
    __m256i r = (__m256i)bf16_round(v); /* each lane <= 0xffff: packus is exact */
    _mm_storeu_si128((__m128i *)p, _mm_packus_epi32(_mm256_castsi256_si128(r),
                                                    _mm256_extracti128_si256(r, 1)));
}
#else
static inline void bf16_store(uint16_t *p, vec v)
{
    halves h = __builtin_convertvector(bf16_round(v), halves);
    memcpy(p, &h, sizeof h);
}
#endif

static inline vec io_load(const void *p, int64_t at, int n, int bf16)
{
    if (!bf16)
        return load_n((const float *)p + at, n);
    if (n == LANES)
        return bf16_load((const uint16_t *)p + at);
    uint16_t part[LANES] = {0};
    memcpy(part, (const uint16_t *)p + at, sizeof(uint16_t) * (size_t)n);
    return bf16_load(part);
}

static inline void io_store(void *p, int64_t at, vec v, int n, int bf16)
{
    if (!bf16) {
        store_n((float *)p + at, v, n);
        return;
    }
    if (n == LANES) {
        bf16_store((uint16_t *)p + at, v);
        return;
    }
    uint16_t part[LANES]; /* a partial vector rounds as a whole one does */
    bf16_store(part, v);
    memcpy((uint16_t *)p + at, part, sizeof(uint16_t) * (size_t)n);
}

/* Bytes per activation value. */
static inline int64_t io_size(int bf16) { return bf16 ? 2 : 4; }

/* mask ? a : b, lane by lane (the ?: operator on vectors is C++-only). */
static inline vec vselect(veci mask, vec a, vec b)
{
    return (vec)(((veci)a & mask) | ((veci)b & ~mask));
}

/* A NaN in a comes through both, so a NaN input still poisons the output as in PyTorch. */
static inline vec vmin(vec a, vec b) { return vselect(a > b, b, a); }
static inline vec vmax(vec a, vec b) { return vselect(a < b, b, a); }
static inline vec vabs(vec a) { return (vec)((veci)a & 0x7fffffff); }

/* exp(x) = 2^n * exp(r) with n = round(x / ln 2), |r| <= ln(2) / 2, and exp(r) from Cephes'
 * degree-5 expf polynomial (about 1 ulp); ln 2 in two parts keeps r exact. */
static inline vec exp_poly(vec r)
{
    vec p = splat(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    return p * (r * r) + r + 1.0f;
}

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#define X86_EXP 1
/* x86 rounds to an integer in one instruction (roundscale, round) and needs no clamp soup:
 * max(lo, x) and min(hi, x) return x when it is NaN, so a NaN input stays NaN. */
#if defined(__AVX512F__)
static inline vec vfloor_at(vec x, float lo)
{
    return (vec)_mm512_max_ps((__m512)splat(lo), (__m512)x);
}
static inline vec vround(vec x)
{
    return (vec)_mm512_roundscale_ps((__m512)x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
/* p * 2^n for an integer-valued n: scalef, which saturates to infinity and to zero. */
static inline vec vscale2(vec p, vec n) { return (vec)_mm512_scalef_ps((__m512)p, (__m512)n); }
#else
static inline vec vfloor_at(vec x, float lo)
{
    return (vec)_mm256_max_ps((__m256)splat(lo), (__m256)x);
}
static inline vec vround(vec x)
{
    return (vec)_mm256_round_ps((__m256)x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
/* p * 2^n for an integer-valued n >= -126, 2^n built in the exponent bits; n is capped at
 * 127, so results stay finite (~2.4e38 at most) where scalef would give infinity. */
static inline vec vscale2(vec p, vec n)
{
    __m256i e = _mm256_cvtps_epi32(_mm256_min_ps((__m256)splat(127.0f), (__m256)n));
    return p * (vec)_mm256_slli_epi32(_mm256_add_epi32(e, _mm256_set1_epi32(127)), 23);
}
#endif

/* Below -87.3, x is clamped: results stay normal floats (~1.2e-38 instead of a denormal or
 * zero, harmless for a decay factor), because denormal operands would slow the recurrence's
 * products. */
static inline vec vexp(vec x)
{
    x = vfloor_at(x, -87.33654f);
    vec n = vround(x * 1.44269504088896341f);
    vec r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    return vscale2(exp_poly(r), n);
}
#else
/* The same with portable vector code: n is rounded by adding 1.5 * 2^23 and read from the
 * mantissa, 2^n built in the exponent bits. x is clamped so that 2^n stays a normal float:
 * results below 2^-126 come out as ~1.2e-38 instead of a denormal or zero, and the top
 * saturates at ~2.6e38. */
static inline vec vexp(vec x)
{
    const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    x = vmin(vmax(x, splat(-87.33654f)), splat(88.37626f));
    vec t = x * 1.44269504088896341f + magic;
    vec n = t - magic;
    veci ni = (veci)t - (veci)splat(magic); /* the integer n, read from t's mantissa */
    vec r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    return exp_poly(r) * (vec)((ni + 127) << 23);
}
#endif

/* The scan's decays exp(dt A), as vdecay(dt * DECAY_SCALE * A). On x86 (AVX-512, or AVX2
 * with FMA) the scale is log2(e) and vdecay is 2^x: n = round(x) and f = x - n (exact) need
 * no two-part ln 2 reduction, 2^f is a degree-6 polynomial on [-1/2, 1/2] (fitted here for
 * relative error: at most 1e-7 evaluated in fp32, about 1 ulp), and vscale2 applies 2^n; 4
 * vector operations fewer than vexp, once per state and step in each direction. x is clamped
 * at -126 so that results stay normal floats (denormal operands would slow the recurrence's
 * products). Elsewhere the scale is 1 and vdecay is vexp. */
#if defined(X86_EXP)
#define DECAY_SCALE 1.44269504088896341f
static inline vec vdecay(vec x)
{
    x = vfloor_at(x, -126.0f);
    vec n = vround(x);
    vec f = x - n;
    vec p = splat(1.5345794963650405e-4f);
    p = p * f + 1.3399932067841291e-3f;
    p = p * f + 9.618489071726799e-3f;
    p = p * f + 5.550328642129898e-2f;
    p = p * f + 2.4022646248340607e-1f;
    p = p * f + 6.931471824645996e-1f;
    p = p * f + 1.0f;
    return vscale2(p, n);
}
#else
#define DECAY_SCALE 1.0f
static inline vec vdecay(vec x) { return vexp(x); }
#endif

/* log1p(s) for s in [0, 1], the only range softplus needs (s = exp(-|x|)). Cephes' logf
 * polynomial on f in [sqrt(.5) - 1, sqrt(2) - 1]: for s above sqrt(2) - 1 we use
 * log1p(s) = ln 2 + log1p((s - 1) / 2). Taking f from s rather than from 1 + s keeps
 * full relative accuracy for tiny s (softplus of very negative inputs). */
static inline vec vlog1p_unit(vec s)
{
    veci big = s > 0.41421356f;
    vec f = vselect(big, (s - 1.0f) * 0.5f, s);
    vec e = vselect(big, splat(1.0f), splat(0.0f));
    vec f2 = f * f;
    vec p = splat(7.0376836292e-2f);
    p = p * f - 1.1514610310e-1f;
    p = p * f + 1.1676998740e-1f;
    p = p * f - 1.2420140846e-1f;
    p = p * f + 1.4249322787e-1f;
    p = p * f - 1.6668057665e-1f;
    p = p * f + 2.0000714765e-1f;
    p = p * f - 2.4999993993e-1f;
    p = p * f + 3.3333331174e-1f;
    vec y = p * f * f2 - e * 2.12194440e-4f - 0.5f * f2;
    return f + y + e * 0.693359375f;
}

/* softplus(x) = max(x, 0) + log1p(exp(-|x|)): no overflow for large x, and equal in fp32
 * to torch's (which returns x itself above 20). */
static inline vec vsoftplus(vec x) { return vmax(x, splat(0.0f)) + vlog1p_unit(vexp(-vabs(x))); }

/* sigmoid(x) from e = exp(-|x|), which never overflows: 1/(1+e) for x >= 0, e/(1+e) below. */
static inline vec vsigmoid(vec x)
{
    vec e = vexp(-vabs(x));
    vec r = 1.0f / (1.0f + e);
    return vselect(x >= 0.0f, r, e * r);
}

/* LANES horizontal sums at once: lane j of the result is the sum of v[j]'s lanes. Each
 * level adds pairs of vectors, folding every group of lanes in half (LANES - 1 pairs of
 * two-source shuffles in all): about 3 instructions per sum instead of 8 one at a time. */
static inline vec sum_lanes(const vec v[LANES])
{
#if LANES == 16
    vec q[8], r[4], s[2];
    for (int j = 0; j < 8; j++) /* halves of 8: low = output j, high = output j + 8 */
        q[j] = __builtin_shuffle(v[j], v[j + 8], (veci){0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23})
             + __builtin_shuffle(v[j], v[j + 8], (veci){8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31});
    for (int j = 0; j < 4; j++) /* quarters: outputs j, j + 4, j + 8, j + 12 */
        r[j] = __builtin_shuffle(q[j], q[j + 4], (veci){0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27})
             + __builtin_shuffle(q[j], q[j + 4], (veci){4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31});
    for (int j = 0; j < 2; j++) /* pairs: outputs j, j + 2, ..., j + 14 */
        s[j] = __builtin_shuffle(r[j], r[j + 2], (veci){0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29})
             + __builtin_shuffle(r[j], r[j + 2], (veci){2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31});
    return __builtin_shuffle(s[0], s[1], (veci){0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30})
         + __builtin_shuffle(s[0], s[1], (veci){1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31});
#elif LANES == 8
    vec q[4], r[2];
    for (int j = 0; j < 4; j++) /* halves: low = output j, high = output j + 4 */
        q[j] = __builtin_shuffle(v[j], v[j + 4], (veci){0, 1, 2, 3, 8, 9, 10, 11})
             + __builtin_shuffle(v[j], v[j + 4], (veci){4, 5, 6, 7, 12, 13, 14, 15});
    for (int j = 0; j < 2; j++) /* pairs: outputs j, j + 2, j + 4, j + 6 */
        r[j] = __builtin_shuffle(q[j], q[j + 2], (veci){0, 1, 8, 9, 4, 5, 12, 13})
             + __builtin_shuffle(q[j], q[j + 2], (veci){2, 3, 10, 11, 6, 7, 14, 15});
    return __builtin_shuffle(r[0], r[1], (veci){0, 8, 2, 10, 4, 12, 6, 14})
         + __builtin_shuffle(r[0], r[1], (veci){1, 9, 3, 11, 5, 13, 7, 15});
#else
    vec q[2];
    for (int j = 0; j < 2; j++) /* pairs: outputs j, j + 2 */
        q[j] = __builtin_shuffle(v[j], v[j + 2], (veci){0, 1, 4, 5})
             + __builtin_shuffle(v[j], v[j + 2], (veci){2, 3, 6, 7});
    return __builtin_shuffle(q[0], q[1], (veci){0, 4, 2, 6})
         + __builtin_shuffle(q[0], q[1], (veci){1, 5, 3, 7});
#endif
}

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* Scratch memory of at least n floats, kept between calls (one buffer per calling thread,
 * so concurrent callers never share): a fresh block of this size from malloc would be new
 * pages, zeroed by the kernel on first touch, on every call. NULL if out of memory. */
static float *thread_scratch(int64_t n)
{
    static _Thread_local float *buffer;
    static _Thread_local int64_t capacity;
    if (n > capacity) {
        free(buffer);
        size_t bytes = ((size_t)n * sizeof(float) + 63) / 64 * 64; /* aligned_alloc wants a multiple */
        buffer = aligned_alloc(64, bytes);
        capacity = buffer ? n : 0;
    }
    return buffer;
}

/* out[i] = sum over the `count` partials of parts[k * stride + i], in order k = 0, 1, ...
 * (per thread, or per batch element). Called inside the parallel region: the loop is
 * shared among its threads. */
static void reduce_partials(float *out, const float *parts, int64_t n, int64_t stride, int count)
{
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float s = 0.0f;
        for (int t = 0; t < count; t++)
            s += parts[t * stride + i];
        out[i] = s;
    }
}

#endif /* GHOST_VEC_H */
