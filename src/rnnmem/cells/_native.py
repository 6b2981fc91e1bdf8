"""Optional compiled step loops for small units without autograd (the forgetting probe's case).

At small sizes (the forgetting probe runs 8 inputs, 32 units, a batch of 2 for 100,000 steps)
a step of the Python loop costs tens of microseconds of per-operation dispatch while the
arithmetic takes well under one. This module compiles, at first use, a few plain-C loops (LSTM,
GRU reset-before / reset-after, Elman RNN, Nested LSTM, memory.py's mrnn, mlstm(f) and rwa; sigmoid or hard-sigmoid gates; float32 and float64;
ensembles) that run a whole block of steps per call, given the input projection
``x W_x + b (+ folded biases)`` that the Python path computes for the block anyway.
Mamba's sequence form (mamba.py) has two more, ``dconv`` (its causal convolution and SiLU) and
``selscan`` (the selective recurrence, ``C h + D u`` and the gate, in one pass without forming
the [T, B, d_inner, N] decays), with their own vectorisable ``exp`` (within 1 ulp).

The library is built with the system C compiler (``$CC`` or ``cc``; ``-O3 -march=native``,
without ``-march=native`` where that fails) into ``$RNNMEM_CACHE/native`` (default
``~/.cache/rnnmem/native``), keyed by a hash of the source, the flags and the CPU's model and
feature flags, and loaded with :mod:`ctypes` (no torch headers: it builds in about 6 s on a
loaded 2-core machine, where ``torch.utils.cpp_extension.load_inline`` took 65 s for an empty
function). Everything is optional: without a compiler, when the build or the load fails, or with
``RNNMEM_NATIVE=0``, :func:`library` returns None (logged at debug level) and the units keep
their Python step loop.

The loops compute the same equations as the Python path in the same order of operations, except
that the recurrent product is summed in its own order, multiply-adds may fuse (FMA), and
``tanh``/``exp`` (and rwa's ``log1p``) are this module's (float32: evaluated in double and rounded
once, within half an ulp; float64: libm) rather than torch's vectorised ones. Results agree with
the Python loop to float rounding (a few ulp per step), not bit for bit; tests/test_native.py and
tests/test_native_memory.py check them within 1e-5 (float32) / 1e-12 (float64). Used only when no gradient is needed (see
``RecurrentUnit._native_ok``).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

_SOURCE = r"""
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* exp(x) in double without a libm call (so that loops over it vectorise): Cody-Waite reduction
   x = k ln2 + r (fdlibm's ln2_hi / ln2_lo), Taylor series of e^r to degree 11 on |r| <= 0.35
   (truncation < 1e-14 relative), times 2^k built from k's bits. x is clamped to [-700, 700]. */
static inline double exp_d(double x) {
    x = x < -700.0 ? -700.0 : x; x = x > 700.0 ? 700.0 : x; /* (written so that loops vectorise) */
    const double shifter = 6755399441055744.0; /* 1.5 * 2^52: adding it rounds to an integer */
    double kd = x * 1.4426950408889634; kd = kd + shifter;
    long long kb, sb; memcpy(&kb, &kd, 8);
    const double sh = shifter; memcpy(&sb, &sh, 8);
    const long long k = kb - sb;
    kd = kd - shifter;
    double r = x - kd * 6.93147180369123816490e-01; r = r - kd * 1.90821492927058770002e-10;
    double p = 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0; p = p * r + 1.0 / 362880.0; p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;    p = p * r + 1.0 / 720.0;    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;      p = p * r + 1.0 / 6.0;      p = p * r + 0.5;
    p = p * r + 1.0;             p = p * r + 1.0;
    const long long sbits = (k + 1023) << 52; double scale; memcpy(&scale, &sbits, 8);
    return p * scale;
}
/* float32 tanh and sigmoid evaluated in double and rounded once (error well below float32's half
   ulp, like torch's vectorised ones; glibc's tanhf costs several times more). tanh: x itself
   below 2^-12, where tanh(x) = x (1 - x^2/3 + ...) rounds to x. */
static inline float tanh32(float xf) {
    const double x = xf, a = fabs(x);
    const double t = exp_d(-2.0 * a);
    const float r = (float)copysign((1.0 - t) / (1.0 + t), x);
    const float s = fabsf(xf) < 0x1p-12f ? 1.0f : 0.0f; /* a blend, not a branch: vectorises */
    return s * xf + (1.0f - s) * r;
}
static inline float exp32(float x) { return (float)exp_d((double)x); }

#define DEFINE(T, SUF, EXP, TANH)                                                              \
static inline T sig_##SUF(T x, int hard) {                                                     \
    if (hard) { T v = x * (T)0.2; v = v + (T)0.5; return v < (T)0 ? (T)0 : (v > (T)1 ? (T)1 : v); } \
    return (T)1 / ((T)1 + EXP(-x));                                                            \
}                                                                                              \
static inline T lerp_##SUF(T a, T b, T w) { /* torch.lerp(a, b, w) */                          \
    return (w < (T)0.5 && w > (T)-0.5) ? a + w * (b - a) : b - (b - a) * ((T)1 - w);           \
}                                                                                              \
/* acc[b, j] = sum_k h[b, k] W[k, j] for b < B, j < n; h[B, H], acc[B, n], W row stride ld */    \
/* acc[b, j] += sum_k h[b, k] W[k, j] */                                                       \
static inline __attribute__((always_inline)) void mvadd_##SUF(const T *restrict h, long B,      \
                     const T *restrict W, long H, long ld, long n, T *restrict acc) {          \
    for (long k = 0; k < H; ++k) {                                                             \
        const T *w = W + k * ld;                                                               \
        for (long b = 0; b < B; ++b) {                                                         \
            const T hk = h[b * H + k]; T *a = acc + b * n;                                     \
            for (long j = 0; j < n; ++j) a[j] += hk * w[j];                                    \
        }                                                                                      \
    }                                                                                          \
}                                                                                              \
static inline __attribute__((always_inline)) void mv_##SUF(const T *restrict h, long B, const T *restrict W, long H,  \
                     long ld, long n, T *restrict acc) {                                                        \
    memset(acc, 0, sizeof(T) * B * n);                                                         \
    mvadd_##SUF(h, B, W, H, ld, n, acc);                                                       \
}                                                                                              \
/* xp[T,E,B,4H]; W[E,H,4H]; h,c[E,B,H] in/out; hs[T,E,B,H]; cs same or NULL */                 \
static inline __attribute__((always_inline)) int lstm_impl_##SUF(long Tn, long E, long B, long H, const T *xp,  \
               const T *W, T *h, T *c, T *hs, T *cs, int hard) {                                                       \
    const long G = 4 * H;                                                                      \
    T *acc = (T *)malloc(sizeof(T) * B * G);                                                   \
    if (!acc) return 1;                                                                        \
    for (long t = 0; t < Tn; ++t) {                                                            \
        for (long e = 0; e < E; ++e) {                                                         \
            mv_##SUF(h + e * B * H, B, W + e * H * G, H, G, G, acc);                           \
            for (long b = 0; b < B; ++b) {                                                     \
                const long row = e * B + b;                                                    \
                T *restrict hr = h + row * H, *restrict cr = c + row * H;                      \
                T *restrict a = acc + b * G;                                                   \
                const T *restrict x = xp + (t * E * B + row) * G;                              \
                /* simple loops, so that each vectorises */                                    \
                for (long j = 0; j < G; ++j) a[j] = x[j] + a[j];                               \
                if (hard) {                                                                    \
                    for (long j = 0; j < 2 * H; ++j) a[j] = sig_##SUF(a[j], 1);                \
                    for (long j = 3 * H; j < G; ++j) a[j] = sig_##SUF(a[j], 1);                \
                } else {                                                                       \
                    for (long j = 0; j < 2 * H; ++j) a[j] = sig_##SUF(a[j], 0);                \
                    for (long j = 3 * H; j < G; ++j) a[j] = sig_##SUF(a[j], 0);                \
                }                                                                              \
                for (long j = 2 * H; j < 3 * H; ++j) a[j] = TANH(a[j]);                        \
                for (long j = 0; j < H; ++j) {                                                 \
                    T cn = a[H + j] * cr[j]; cn = cn + a[j] * a[2 * H + j]; cr[j] = cn;        \
                }                                                                              \
                for (long j = 0; j < H; ++j) hr[j] = a[3 * H + j] * TANH(cr[j]);               \
                memcpy(hs + (t * E * B + row) * H, hr, sizeof(T) * H);                         \
                if (cs) memcpy(cs + (t * E * B + row) * H, cr, sizeof(T) * H);                 \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
    free(acc);                                                                                 \
    return 0;                                                                                  \
}                                                                                              \
/* xp[T,E,B,3H]; W[E,H,3H]; bhn: NULL or [E,H] with E-stride bstride (0: shared); h[E,B,H] */  \
static inline __attribute__((always_inline)) int gru_impl_##SUF(long Tn, long E, long B, long H, const T *xp,    \
              const T *W, const T *bhn, long bstride, T *h, T *hs, int hard, int after) {                                \
    const long G = 3 * H;                                                                      \
    T *acc = (T *)malloc(sizeof(T) * B * (G + 2 * H));                                         \
    if (!acc) return 1;                                                                        \
    T *r = acc + B * G, *rh = r + B * H, *an = acc + B * 2 * H;                                \
    for (long t = 0; t < Tn; ++t) {                                                            \
        for (long e = 0; e < E; ++e) {                                                         \
            const T *We = W + e * H * G, *be = bhn ? bhn + e * bstride : NULL;                 \
            T *he = h + e * B * H;                                                             \
            /* after: acc[B, 3H]; before: acc[B, 2H] then (r h) W_n into an[B, H] */          \
            mv_##SUF(he, B, We, H, G, after ? G : 2 * H, acc);                                 \
            const long ga = after ? G : 2 * H;                                                 \
            for (long b = 0; b < B; ++b) {                                                     \
                const T *x = xp + (t * E * B + e * B + b) * G;                                 \
                for (long j = 0; j < H; ++j) {                                                 \
                    r[b * H + j] = sig_##SUF(x[j] + acc[b * ga + j], hard);                    \
                    rh[b * H + j] = r[b * H + j] * he[b * H + j];                              \
                }                                                                              \
            }                                                                                  \
            if (!after) mv_##SUF(rh, B, We + 2 * H, H, G, H, an);                              \
            for (long b = 0; b < B; ++b) {                                                     \
                const long row = e * B + b;                                                    \
                const T *x = xp + (t * E * B + row) * G;                                       \
                T *hr = h + row * H;                                                           \
                for (long j = 0; j < H; ++j) {                                                 \
                    T z = sig_##SUF(x[H + j] + acc[b * ga + H + j], hard);                     \
                    T n;                                                                       \
                    if (after) {                                                               \
                        T u = acc[b * G + 2 * H + j]; if (be) u = u + be[j];                   \
                        n = TANH(x[2 * H + j] + r[b * H + j] * u);                             \
                    } else n = TANH(x[2 * H + j] + an[b * H + j]);                             \
                    hr[j] = lerp_##SUF(n, hr[j], z);                                           \
                }                                                                              \
                memcpy(hs + (t * E * B + row) * H, hr, sizeof(T) * H);                         \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
    free(acc);                                                                                 \
    return 0;                                                                                  \
}                                                                                              \
/* Nested LSTM of depth D (nlstm.py): xp[T,E,B,4H] (x W_x + b of level 0); W0[E,H,4H];          \
   Wx, Wh[D-1,E,H,4H] and bi[D-1,E,4H] of the inner levels; h[E,B,H], c[D,E,B,H] in/out;         \
   hs[T,E,B,H]; cs NULL or [D,T,E,B,H]; shift: TF1's forget shift (0 otherwise) */              \
int nlstm_##SUF(long Tn, long E, long B, long H, long D, const T *xp, const T *W0, const T *Wx, \
                const T *Wh, const T *bi, T *h, T *c, T *hs, T *cs, int hard, double shift) {   \
    const long G = 4 * H, R = E * B;                                                           \
    T *acc = (T *)malloc(sizeof(T) * (B * G + 2 * B * H + D * B * H));                         \
    if (!acc) return 1;                                                                        \
    T *xin = acc + B * G, *hin = xin + B * H, *os = hin + B * H;                               \
    const T sh = (T)shift;                                                                     \
    for (long t = 0; t < Tn; ++t) {                                                            \
        for (long e = 0; e < E; ++e) {                                                         \
            T *he = h + e * B * H;                                                             \
            for (long d = 0; d < D; ++d) {                                                     \
                if (d == 0) {                                                                  \
                    mv_##SUF(he, B, W0 + e * H * G, H, G, G, acc);                             \
                } else {                                                                       \
                    const long m = (d - 1) * E + e;                                            \
                    mv_##SUF(xin, B, Wx + m * H * G, H, G, G, acc);                            \
                    mvadd_##SUF(hin, B, Wh + m * H * G, H, G, G, acc);                         \
                }                                                                              \
                for (long b = 0; b < B; ++b) {                                                 \
                    T *a = acc + b * G;                                                        \
                    const T *add = d == 0 ? xp + (t * R + e * B + b) * G : bi + ((d - 1) * E + e) * G; \
                    const T *cd = c + (d * R + e * B + b) * H;                                 \
                    for (long j = 0; j < G; ++j) a[j] = a[j] + add[j];                         \
                    for (long j = 0; j < H; ++j) {                                             \
                        T g = d == 0 ? a[2 * H + j] : TANH(a[2 * H + j]);                      \
                        xin[b * H + j] = sig_##SUF(a[j], hard) * g;                            \
                        hin[b * H + j] = sig_##SUF(a[H + j] + sh, hard) * cd[j];               \
                        os[(d * B + b) * H + j] = a[3 * H + j];                                \
                    }                                                                          \
                }                                                                              \
            }                                                                                  \
            for (long b = 0; b < B; ++b) {                                                     \
                const long row = e * B + b;                                                    \
                T *cl = c + ((D - 1) * R + row) * H;                                           \
                for (long j = 0; j < H; ++j) cl[j] = hin[b * H + j] + xin[b * H + j];          \
                for (long d = D - 1; d > 0; --d) {                                             \
                    const T *ci = c + (d * R + row) * H; T *co = c + ((d - 1) * R + row) * H;  \
                    for (long j = 0; j < H; ++j)                                               \
                        co[j] = TANH(ci[j]) * sig_##SUF(os[(d * B + b) * H + j], hard);        \
                }                                                                              \
                T *hr = h + row * H; const T *c0 = c + row * H;                                \
                for (long j = 0; j < H; ++j) hr[j] = sig_##SUF(os[b * H + j], hard) * TANH(c0[j]); \
                memcpy(hs + (t * R + row) * H, hr, sizeof(T) * H);                             \
                if (cs)                                                                        \
                    for (long d = 0; d < D; ++d)                                               \
                        memcpy(cs + ((d * Tn + t) * R + row) * H, c + (d * R + row) * H, sizeof(T) * H); \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
    free(acc);                                                                                 \
    return 0;                                                                                  \
}                                                                                              \
/* Elman: h' = act(xp + h W); relu when relu != 0, else tanh */                                \
int rnn_##SUF(long Tn, long E, long B, long H, const T *xp, const T *W, T *h, T *hs, int relu) { \
    T *acc = (T *)malloc(sizeof(T) * H);                                                       \
    if (!acc) return 1;                                                                        \
    for (long t = 0; t < Tn; ++t) {                                                            \
        for (long e = 0; e < E; ++e) {                                                         \
            const T *We = W + e * H * H;                                                       \
            for (long b = 0; b < B; ++b) {                                                     \
                const long row = e * B + b;                                                    \
                T *hr = h + row * H;                                                           \
                const T *x = xp + (t * E * B + row) * H;                                       \
                mv_##SUF(hr, 1, We, H, H, H, acc);                                                \
                for (long j = 0; j < H; ++j) {                                                 \
                    T v = x[j] + acc[j];                                                       \
                    hr[j] = relu ? (v > (T)0 ? v : (T)0) : TANH(v);                            \
                }                                                                              \
                memcpy(hs + (t * E * B + row) * H, hr, sizeof(T) * H);                         \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
    free(acc);                                                                                 \
    return 0;                                                                                  \
}

/* exported entry points: the common widths get their own constant-H copy (fixed trip counts let
   the compiler drop the vector loops' remainder and alias checks: about 1.5x faster at H = 32) */
#define EXPORT(T, SUF)                                                                         \
int lstm_##SUF(long Tn, long E, long B, long H, const T *xp, const T *W, T *h, T *c,          \
               T *hs, T *cs, int hard) {                                                       \
    switch (H) {                                                                               \
    case 8: return lstm_impl_##SUF(Tn, E, B, 8, xp, W, h, c, hs, cs, hard);                    \
    case 16: return lstm_impl_##SUF(Tn, E, B, 16, xp, W, h, c, hs, cs, hard);                  \
    case 32: return lstm_impl_##SUF(Tn, E, B, 32, xp, W, h, c, hs, cs, hard);                  \
    case 64: return lstm_impl_##SUF(Tn, E, B, 64, xp, W, h, c, hs, cs, hard);                  \
    default: return lstm_impl_##SUF(Tn, E, B, H, xp, W, h, c, hs, cs, hard);                   \
    }                                                                                          \
}                                                                                              \
int gru_##SUF(long Tn, long E, long B, long H, const T *xp, const T *W, const T *bhn,         \
              long bstride, T *h, T *hs, int hard, int after) {                                \
    switch (H) {                                                                               \
    case 8: return gru_impl_##SUF(Tn, E, B, 8, xp, W, bhn, bstride, h, hs, hard, after);       \
    case 16: return gru_impl_##SUF(Tn, E, B, 16, xp, W, bhn, bstride, h, hs, hard, after);     \
    case 32: return gru_impl_##SUF(Tn, E, B, 32, xp, W, bhn, bstride, h, hs, hard, after);     \
    case 64: return gru_impl_##SUF(Tn, E, B, 64, xp, W, bhn, bstride, h, hs, hard, after);     \
    default: return gru_impl_##SUF(Tn, E, B, H, xp, W, bhn, bstride, h, hs, hard, after);      \
    }                                                                                          \
}

DEFINE(float, f32, exp32, tanh32)
DEFINE(double, f64, exp, tanh)
EXPORT(float, f32)
EXPORT(double, f64)

/* Memory-augmented units of Zhao et al. 2020 (memory.py): the recurrences of mrnn and of
   mlstm / mlstmf. Filter weights w_j(d) = w_{j-1} (j - 1 - d) / j, w_1 = -d (frac_weights: the
   same ratios and the same sequential product). */
#define MEMORY_LOOPS(T, SUF, TANH)                                                             \
/* mrnn: xh[T,E,B,H] = x W_x + b; xd[T,E,B,I] = x W_xd + b_d; xe[K-1+T,E,B,I] the stored window  \
   (oldest first) then the inputs; Wh, Wm[E,H,H]; Wdd[E,I,I]; Whd, Wmd[E,H,I]; Wf[E,I,H];       \
   bm[E,H]; h, m[E,B,H] and d[E,B,I] in/out; hs, ms[T,E,B,H]; ds[T,E,B,I] */                   \
int mrnn_##SUF(long Tn, long E, long B, long I, long H, long K, const T *xh, const T *xd,     \
               const T *xe, const T *Wh, const T *Wdd, const T *Whd, const T *Wmd,            \
               const T *Wf, const T *Wm, const T *bm, T *h, T *m, T *d, T *hs, T *ms, T *ds) { \
    const long R = E * B;                                                                      \
    T *buf = (T *)malloc(sizeof(T) * (3 * B * I + I + 3 * B * H));                             \
    if (!buf) return 1;                                                                        \
    T *ad = buf, *fx = ad + B * I, *dn = fx + B * I, *w = dn + B * I;                          \
    T *ah = w + I, *am = ah + B * H, *af = am + B * H;                                         \
    for (long t = 0; t < Tn; ++t) {                                                            \
        for (long e = 0; e < E; ++e) {                                                         \
            T *he = h + e * B * H, *me = m + e * B * H, *de = d + e * B * I;                   \
            /* d_t = 0.5 sigmoid(x W_xd + b_d + d W_dd + h W_hd + m W_md), from the old state */ \
            mv_##SUF(de, B, Wdd + e * I * I, I, I, I, ad);                                     \
            mvadd_##SUF(he, B, Whd + e * H * I, H, I, I, ad);                                  \
            mvadd_##SUF(me, B, Wmd + e * H * I, H, I, I, ad);                                  \
            mv_##SUF(he, B, Wh + e * H * H, H, H, H, ah);                                      \
            mv_##SUF(me, B, Wm + e * H * H, H, H, H, am);                                      \
            for (long b = 0; b < B; ++b) {                                                     \
                const long row = e * B + b;                                                    \
                const T *x = xd + (t * R + row) * I;                                           \
                T *dr = dn + b * I, *f = fx + b * I;                                           \
                for (long i = 0; i < I; ++i) dr[i] = (T)0.5 * sig_##SUF(x[i] + ad[b * I + i], 0); \
                /* F_t = sum_{j=1..K} w_j(d_t) x_{t-j+1} */                                    \
                const T *x1 = xe + ((t + K - 1) * R + row) * I;                                \
                for (long i = 0; i < I; ++i) { w[i] = (T)0 - dr[i]; f[i] = w[i] * x1[i]; }     \
                for (long j = 2; j <= K; ++j) {                                                \
                    const T jm = (T)(j - 1), jj = (T)j;                                        \
                    const T *xr = xe + ((t + K - j) * R + row) * I;                            \
                    for (long i = 0; i < I; ++i) {                                             \
                        w[i] = w[i] * ((jm - dr[i]) / jj);                                     \
                        f[i] = f[i] + w[i] * xr[i];                                            \
                    }                                                                          \
                }                                                                              \
            }                                                                                  \
            mv_##SUF(fx, B, Wf + e * I * H, I, H, H, af);                                      \
            for (long b = 0; b < B; ++b) {                                                     \
                const long row = e * B + b;                                                    \
                const T *x = xh + (t * R + row) * H;                                           \
                const T *be = bm + e * H;                                                      \
                T *hr = he + b * H, *mr = me + b * H;                                          \
                for (long j = 0; j < H; ++j) hr[j] = TANH(x[j] + ah[b * H + j]);               \
                for (long j = 0; j < H; ++j) mr[j] = TANH(af[b * H + j] + be[j] + am[b * H + j]); \
                memcpy(de + b * I, dn + b * I, sizeof(T) * I);                                 \
                memcpy(hs + (t * R + row) * H, hr, sizeof(T) * H);                             \
                memcpy(ms + (t * R + row) * H, mr, sizeof(T) * H);                             \
                memcpy(ds + (t * R + row) * I, de + b * I, sizeof(T) * I);                     \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
    free(buf);                                                                                 \
    return 0;                                                                                  \
}                                                                                              \
/* mlstm (Wd given: gates i, o, p, g; d_t = 0.5 gate(p + d W_d)) and mlstmf (Wd NULL: gates     \
   i, o, g; fixed weights wfix[E,K,H], lag-major): xp[T,E,B,G*H] = x W_x + b; W[E,H,G*H];        \
   Wd[E,H,H]; h[E,B,H], d[E,B,H] (mlstm) in/out; cw[E,B,H,K] in/out (c_t, c_{t-1}, ...: newest  \
   first); hs[T,E,B,H]; cws NULL or [T,E,B,H,K]; ds NULL or [T,E,B,H]. The window is kept as a   \
   ring [E*B, K, H] (lag j at slot (p + j - 1) mod K) so that a step writes one slot. */       \
int mlstm_##SUF(long Tn, long E, long B, long H, long K, const T *xp, const T *W, const T *Wd, \
                const T *wfix, T *h, T *d, T *cw, T *hs, T *cws, T *ds, int hard) {             \
    const int dyn = Wd != NULL;                                                                \
    const long G = (dyn ? 4 : 3) * H, R = E * B;                                               \
    T *buf = (T *)malloc(sizeof(T) * (B * G + B * H + 2 * H + R * K * H));                     \
    if (!buf) return 1;                                                                        \
    T *acc = buf, *ad = acc + B * G, *w = ad + B * H, *s = w + H, *ring = s + H;               \
    for (long row = 0; row < R; ++row)                                                         \
        for (long q = 0; q < H; ++q)                                                           \
            for (long j = 0; j < K; ++j) ring[(row * K + j) * H + q] = cw[(row * H + q) * K + j]; \
    long p = 0;                                                                                \
    for (long t = 0; t < Tn; ++t) {                                                            \
        const long pn = p == 0 ? K - 1 : p - 1; /* the slot of c_t: the oldest one leaves */   \
        for (long e = 0; e < E; ++e) {                                                         \
            T *he = h + e * B * H;                                                             \
            mv_##SUF(he, B, W + e * H * G, H, G, G, acc);                                      \
            if (dyn) mv_##SUF(d + e * B * H, B, Wd + e * H * H, H, H, H, ad);                  \
            for (long b = 0; b < B; ++b) {                                                     \
                const long row = e * B + b;                                                    \
                T *restrict a = acc + b * G;                                                   \
                const T *x = xp + (t * R + row) * G;                                           \
                T *rg = ring + row * K * H;                                                    \
                for (long j = 0; j < G; ++j) a[j] = x[j] + a[j];                               \
                for (long j = 0; j < 2 * H; ++j) a[j] = sig_##SUF(a[j], hard);                 \
                for (long j = G - H; j < G; ++j) a[j] = TANH(a[j]);                            \
                long sl = p;                                                                   \
                if (dyn) {                                                                     \
                    T *dr = d + row * H;                                                       \
                    for (long q = 0; q < H; ++q) dr[q] = (T)0.5 * sig_##SUF(a[2 * H + q] + ad[b * H + q], hard); \
                    const T *c1 = rg + sl * H;                                                 \
                    for (long q = 0; q < H; ++q) { w[q] = (T)0 - dr[q]; s[q] = w[q] * c1[q]; } \
                    for (long j = 2; j <= K; ++j) {                                            \
                        sl = sl + 1 == K ? 0 : sl + 1;                                         \
                        const T jm = (T)(j - 1), jj = (T)j;                                    \
                        const T *cj = rg + sl * H;                                             \
                        for (long q = 0; q < H; ++q) {                                         \
                            w[q] = w[q] * ((jm - dr[q]) / jj);                                 \
                            s[q] = s[q] + w[q] * cj[q];                                        \
                        }                                                                      \
                    }                                                                          \
                    if (ds) memcpy(ds + (t * R + row) * H, dr, sizeof(T) * H);                 \
                } else {                                                                       \
                    const T *wf = wfix + e * K * H;                                            \
                    for (long q = 0; q < H; ++q) s[q] = wf[q] * rg[sl * H + q];                \
                    for (long j = 1; j < K; ++j) {                                             \
                        sl = sl + 1 == K ? 0 : sl + 1;                                         \
                        const T *cj = rg + sl * H, *wj = wf + j * H;                           \
                        for (long q = 0; q < H; ++q) s[q] = s[q] + wj[q] * cj[q];              \
                    }                                                                          \
                }                                                                              \
                T *cn = rg + pn * H, *hr = he + b * H;                                         \
                for (long q = 0; q < H; ++q) cn[q] = a[q] * a[G - H + q] - s[q];               \
                for (long q = 0; q < H; ++q) hr[q] = a[H + q] * TANH(cn[q]);                   \
                memcpy(hs + (t * R + row) * H, hr, sizeof(T) * H);                             \
                if (cws) {                                                                     \
                    T *o = cws + (t * R + row) * H * K;                                        \
                    for (long j = 0, k = pn; j < K; ++j, k = k + 1 == K ? 0 : k + 1)           \
                        for (long q = 0; q < H; ++q) o[q * K + j] = rg[k * H + q];             \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
        p = pn;                                                                                \
    }                                                                                          \
    for (long row = 0; row < R; ++row)                                                         \
        for (long j = 0, k = p; j < K; ++j, k = k + 1 == K ? 0 : k + 1)                        \
            for (long q = 0; q < H; ++q) cw[(row * H + q) * K + j] = ring[(row * K + k) * H + q]; \
    free(buf);                                                                                 \
    return 0;                                                                                  \
}

MEMORY_LOOPS(float, f32, tanh32)
MEMORY_LOOPS(double, f64, tanh)

/* exp for Mamba's loops below, in the loop's own precision so that the loops vectorise (gcc 12
   leaves a float loop calling exp32, float -> double -> float, scalar): x = k ln2 + r with
   |r| <= ln2 / 2 (Cody-Waite, ln2 split in two), e^r by its Taylor series (float: degree 7,
   truncation < 2e-9 relative; double: degree 13, < 4e-18), times 2^k as two normal factors so
   that results in the subnormal range round as they should. Measured: within 1 ulp of
   correctly rounded (float: 0.91 ulp over [-120, 90]; double: 1 ulp against numpy's exp);
   e^x = 0 below the clamp and +inf above it, as in the target precision. */
static inline float exp_sel32(float x) {
    x = x < -110.0f ? -110.0f : x; x = x > 89.0f ? 89.0f : x;
    const float shifter = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float kf = x * 1.44269504088896341f; kf = kf + shifter;
    int kb, sb; memcpy(&kb, &kf, 4); const float sh = shifter; memcpy(&sb, &sh, 4);
    const int k = kb - sb;
    kf = kf - shifter;
    float r = x - kf * 0.693145751953125f; r = r - kf * 1.428606765330187045e-06f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f; p = p * r + 1.0f / 120.0f; p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;   p = p * r + 0.5f;          p = p * r + 1.0f;  p = p * r + 1.0f;
    const int k1 = k >> 1, k2 = k - k1, b1 = (k1 + 127) << 23, b2 = (k2 + 127) << 23;
    float s1, s2; memcpy(&s1, &b1, 4); memcpy(&s2, &b2, 4);
    return (p * s1) * s2;
}
static inline double exp_sel64(double x) {
    x = x < -746.0 ? -746.0 : x; x = x > 710.0 ? 710.0 : x;
    const double shifter = 6755399441055744.0; /* 1.5 * 2^52 */
    double kd = x * 1.4426950408889634; kd = kd + shifter;
    long long kb, sb; memcpy(&kb, &kd, 8); const double sh = shifter; memcpy(&sb, &sh, 8);
    const long long k = kb - sb;
    kd = kd - shifter;
    double r = x - kd * 6.93147180369123816490e-01; r = r - kd * 1.90821492927058770002e-10;
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0; p = p * r + 1.0 / 39916800.0; p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;    p = p * r + 1.0 / 40320.0;    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;       p = p * r + 1.0 / 120.0;      p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;         p = p * r + 0.5;              p = p * r + 1.0;
    p = p * r + 1.0;
    const long long k1 = k >> 1, k2 = k - k1, b1 = (k1 + 1023) << 52, b2 = (k2 + 1023) << 52;
    double s1, s2; memcpy(&s1, &b1, 8); memcpy(&s2, &b2, 8);
    return (p * s1) * s2;
}
/* Mamba's block without its matrix products (mamba.py, Mamba._layer_compiled), one pass over the
   steps each, never forming [T, B, d, N]. Rows o = (t, e, b) of R = E B rows per step.
   dconv: u_t = silu(sum_{j<K} w_j x_{t-K+1+j} + bias), the causal depthwise convolution; x_s at
   xi + (s R + row) ldx for s >= 0, else the stored window win[K-1+s][row] ([K-1,E,B,D]);
   Wt[E,K,D] (W_conv transposed), bias[E,D]; u[T,E,B,D] out.
   selscan: h_t[n, d] = exp(delta_t[d] A[n, d]) h_{t-1}[n, d] + (delta_t[d] u_t[d]) B_t[n],
   y_t[d] = (sum_n h_t[n, d] C_t[n] + Dv[d] u_t[d]) * silu(z_t[d]) (no gate when z is NULL);
   the sum runs n = 0..N-1. delta, u[T,E,B,D]; B_t at bc + o ldbc, C_t at bc + o ldbc + N;
   At[E,N,D] (A transposed: the loops run over d); Dv[E,D]; z_t at z + o ldz; h[E,B,N,D] in/out
   (transposed too); y[T,E,B,D] out; hs NULL or [T,E,B,D,N] (the unit's layout of every state). */
#define SSM_LOOPS(T, SUF, EXP)                                                                 \
static inline T silu_##SUF(T v) { return v / ((T)1 + EXP(-v)); }                             \
int dconv_##SUF(long Tn, long E, long B, long D, long K, const T *xi, long ldx, const T *win,  \
                const T *Wt, const T *bias, T *u) {                                            \
    const long R = E * B;                                                                      \
    for (long t = 0; t < Tn; ++t) {                                                            \
        for (long row = 0; row < R; ++row) {                                                   \
            const long e = row / B;                                                            \
            T *restrict ur = u + (t * R + row) * D;                                            \
            for (long j = 0; j < K; ++j) {                                                     \
                const long s = t - (K - 1) + j;                                                \
                const T *restrict xs = s >= 0 ? xi + (s * R + row) * ldx                       \
                                              : win + ((K - 1 + s) * R + row) * D;             \
                const T *restrict w = Wt + (e * K + j) * D;                                    \
                if (j == 0) for (long d = 0; d < D; ++d) ur[d] = xs[d] * w[d];                 \
                else for (long d = 0; d < D; ++d) ur[d] = ur[d] + xs[d] * w[d];                \
            }                                                                                  \
            const T *restrict be = bias + e * D;                                               \
            for (long d = 0; d < D; ++d) ur[d] = silu_##SUF(ur[d] + be[d]);                    \
        }                                                                                      \
    }                                                                                          \
    return 0;                                                                                  \
}                                                                                              \
int selscan_##SUF(long Tn, long E, long B, long D, long N, const T *restrict delta,            \
                  const T *restrict u, const T *bc, long ldbc, const T *restrict At,           \
                  const T *restrict Dv, const T *z, long ldz, T *restrict h, T *restrict y,    \
                  T *restrict hs) {                                                            \
    const long R = E * B;                                                                      \
    for (long t = 0; t < Tn; ++t) {                                                            \
        for (long e = 0; e < E; ++e) {                                                         \
            const T *Ae = At + e * N * D, *restrict De = Dv + e * D;                           \
            for (long b = 0; b < B; ++b) {                                                     \
                const long row = e * B + b, o = t * R + row;                                   \
                const T *restrict dl = delta + o * D, *restrict ut = u + o * D;                \
                const T *Bt = bc + o * ldbc, *Ct = Bt + N;                                     \
                T *restrict yr = y + o * D, *hr = h + row * N * D;                             \
                for (long d = 0; d < D; ++d) yr[d] = (T)0;                                     \
                for (long n = 0; n < N; ++n) {                                                 \
                    const T bn = Bt[n], cn = Ct[n];                                            \
                    T *restrict hn = hr + n * D; const T *restrict an = Ae + n * D;            \
                    for (long d = 0; d < D; ++d) {                                             \
                        const T a = EXP(dl[d] * an[d]);                                        \
                        const T v = a * hn[d] + (dl[d] * ut[d]) * bn;                          \
                        hn[d] = v;                                                             \
                        yr[d] = yr[d] + v * cn;                                                \
                    }                                                                          \
                }                                                                              \
                for (long d = 0; d < D; ++d) yr[d] = yr[d] + De[d] * ut[d];                    \
                if (z) {                                                                       \
                    const T *restrict zr = z + o * ldz;                                        \
                    for (long d = 0; d < D; ++d) yr[d] = yr[d] * silu_##SUF(zr[d]);            \
                }                                                                              \
                if (hs) {                                                                      \
                    T *o2 = hs + o * D * N;                                                    \
                    for (long d = 0; d < D; ++d)                                               \
                        for (long n = 0; n < N; ++n) o2[d * N + n] = hr[n * D + d];            \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
    return 0;                                                                                  \
}

SSM_LOOPS(float, f32, exp_sel32)
SSM_LOOPS(double, f64, exp_sel64)

/* log1p(y) in double for 0 <= y <= 1 without a libm call (so that loops over it vectorise):
   u = 1 + y rounded, plus the first-order correction (y - (u - 1)) / u of that rounding;
   u = 2^k f with f in [sqrt(2)/2, sqrt(2)], k in {0, 1}; log f = 2 atanh(s), s = (f-1)/(f+1),
   |s| <= 0.1716, by its series to s^23 (truncation < 1e-19). Within a few ulp of double. */
static inline double log1p_d(double y) {
    const double u = 1.0 + y;
    const double c = (y - (u - 1.0)) / u;
    const double big = u > 1.4142135623730951 ? 1.0 : 0.0; /* a blend, not a branch */
    const double f = u - 0.5 * big * u;
    const double s = (f - 1.0) / (f + 1.0), s2 = s * s;
    double p = 1.0 / 23.0;
    p = p * s2 + 1.0 / 21.0; p = p * s2 + 1.0 / 19.0; p = p * s2 + 1.0 / 17.0;
    p = p * s2 + 1.0 / 15.0; p = p * s2 + 1.0 / 13.0; p = p * s2 + 1.0 / 11.0;
    p = p * s2 + 1.0 / 9.0;  p = p * s2 + 1.0 / 7.0;  p = p * s2 + 1.0 / 5.0;
    p = p * s2 + 1.0 / 3.0;  p = p * s2 + 1.0;
    return big * 0.69314718055994530942 + (2.0 * s * p + c);
}
/* float32 log1p of y in [0, 1] (RWA's log1p(exp(-|l - a|))), in double and rounded once */
static inline float log1p32(float y) { return (float)log1p_d((double)y); }

/* Recurrent weighted average (memory.py, RWA._run_layer): xq[T,E,B,3H] = [x W_u + b_u,
   x W_g + b_g, x W_a]; W[E,H,2H] = [U_g, U_a]; h, r, l[E,B,H] in/out (r = n / d, l = log d);
   hs[T,E,B,H]; rs, ls NULL or [T,E,B,H]. Per unit, in the Python loop's order:
   z = u tanh(g); l' = logaddexp(l, a) as torch computes it (max(l, a) + log1p(exp(-|l - a|)),
   l itself when l and a are the same infinity); alpha = exp(a - l'); r' = r + alpha (z - r);
   h' = tanh(r'). No overflow: alpha <= 1 and the exponent of log1p's argument is <= 0.
   float32 uses exp_sel32 above (gcc leaves loops over exp32 scalar), so that both loops over j
   vectorise; float64 uses libm's exp, log1p and tanh. */
#define RWA_LOOPS(T, SUF, EXP, TANH, LOG1P, ABS)                                               \
int rwa_##SUF(long Tn, long E, long B, long H, const T *xq, const T *W, T *h, T *r, T *l,      \
              T *hs, T *rs, T *ls) {                                                           \
    const long G = 2 * H, R = E * B;                                                           \
    T *buf = (T *)malloc(sizeof(T) * (B * G + H));                                             \
    if (!buf) return 1;                                                                        \
    T *acc = buf, *z = acc + B * G;                                                            \
    for (long t = 0; t < Tn; ++t) {                                                            \
        for (long e = 0; e < E; ++e) {                                                         \
            mv_##SUF(h + e * B * H, B, W + e * H * G, H, G, G, acc);                           \
            for (long b = 0; b < B; ++b) {                                                     \
                const long row = e * B + b;                                                    \
                const T *restrict x = xq + (t * R + row) * 3 * H;                              \
                T *restrict a = acc + b * G, *restrict zr = z;                                 \
                T *restrict hr = h + row * H, *restrict rr = r + row * H, *restrict lr = l + row * H; \
                /* a[j] <- exp(-|l - a|), a[H + j] <- a (the pre-activation), z */             \
                for (long j = 0; j < H; ++j) {                                                 \
                    const T gv = x[H + j] + a[j], av = x[2 * H + j] + a[H + j];                \
                    zr[j] = x[j] * TANH(gv);                                                   \
                    a[H + j] = av;                                                             \
                    a[j] = EXP((T)0 - ABS(lr[j] - av));                                        \
                }                                                                              \
                for (long j = 0; j < H; ++j) {                                                 \
                    const T lo = lr[j], av = a[H + j];                                         \
                    const T mx = lo < av ? av : lo;                                            \
                    const T lp = LOG1P(a[j]); /* outside the select: no branch, vectorises */  \
                    const T ln = (lo == av && ABS(lo) == (T)INFINITY) ? lo : mx + lp;          \
                    const T al = EXP(av - ln);                                                 \
                    const T rn = rr[j] + al * (zr[j] - rr[j]);                                 \
                    lr[j] = ln; rr[j] = rn; hr[j] = TANH(rn);                                  \
                }                                                                              \
                memcpy(hs + (t * R + row) * H, hr, sizeof(T) * H);                             \
                if (rs) memcpy(rs + (t * R + row) * H, rr, sizeof(T) * H);                     \
                if (ls) memcpy(ls + (t * R + row) * H, lr, sizeof(T) * H);                     \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
    free(buf);                                                                                 \
    return 0;                                                                                  \
}

RWA_LOOPS(float, f32, exp_sel32, tanh32, log1p32, fabsf)
RWA_LOOPS(double, f64, exp, tanh, log1p, fabs)
"""

# -ffp-contract=fast: multiply-adds fuse where the CPU has FMA (25% faster LSTM steps at H = 32;
# one rounding instead of two, as BLAS does in the recurrent product)
_FLAGS = ["-O3", "-fPIC", "-shared", "-ffp-contract=fast", "-fno-math-errno"]
# tried first: the build host's vector units (AVX2 halves the LSTM step); the cache key holds the
# CPU's identity, so a cache shared between different machines never loads a foreign build
_NATIVE_ARCH = ["-march=native"]
_state: dict = {}


def _cpu_identity() -> str:
    """Model name and feature flags of this CPU (Linux ``/proc/cpuinfo``), else what platform says."""
    try:
        lines = Path("/proc/cpuinfo").read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    wanted = ("model name", "flags", "features", "cpu model", "isa")
    keep = {}
    for line in lines:
        k = line.split(":", 1)[0].strip().lower()
        if k in wanted and k not in keep:
            keep[k] = line
    return "\n".join(keep.values()) or f"{platform.machine()} {platform.processor()}"


def cache_dir() -> Path:
    """``$RNNMEM_CACHE/native`` or ``~/.cache/rnnmem/native``.

    Returns
    -------
    Path
        The folder the compiled library is built into and loaded from (not created here).
    """
    root = os.environ.get("RNNMEM_CACHE")
    return Path(root) / "native" if root else Path.home() / ".cache" / "rnnmem" / "native"


def _build(target: Path) -> None:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise OSError("no C compiler (cc / gcc, or $CC) found")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        src = Path(tmp) / "steploops.c"
        src.write_text(_SOURCE)
        out = Path(tmp) / target.name
        for arch in (_NATIVE_ARCH, []):  # a compiler without -march=native builds the portable one
            proc = subprocess.run([cc, *_FLAGS, *arch, "-o", str(out), str(src), "-lm"],
                                  capture_output=True, text=True, timeout=120)
            if proc.returncode == 0:
                break
        if proc.returncode != 0:
            raise OSError(f"{cc} failed: {proc.stderr.strip()[-2000:]}")
        os.replace(out, target)  # atomic: concurrent builders each install a complete file


def _bind(lib: ctypes.CDLL) -> ctypes.CDLL:
    L, P, I = ctypes.c_long, ctypes.c_void_p, ctypes.c_int
    for suf in ("f32", "f64"):
        getattr(lib, f"lstm_{suf}").argtypes = [L, L, L, L, P, P, P, P, P, P, I]
        getattr(lib, f"gru_{suf}").argtypes = [L, L, L, L, P, P, P, L, P, P, I, I]
        getattr(lib, f"rnn_{suf}").argtypes = [L, L, L, L, P, P, P, P, I]
        getattr(lib, f"nlstm_{suf}").argtypes = [L, L, L, L, L, P, P, P, P, P, P, P, P, P, I, ctypes.c_double]
        for name in ("lstm", "gru", "rnn", "nlstm"):
            getattr(lib, f"{name}_{suf}").restype = I
        # memory-augmented units (memory.py): mrnn, mlstm / mlstmf, rwa
        getattr(lib, f"mrnn_{suf}").argtypes = [L] * 6 + [P] * 16
        getattr(lib, f"mlstm_{suf}").argtypes = [L] * 5 + [P] * 10 + [I]
        getattr(lib, f"rwa_{suf}").argtypes = [L] * 4 + [P] * 8
        for name in ("mrnn", "mlstm", "rwa"):
            getattr(lib, f"{name}_{suf}").restype = I
        # mamba's selective scan (mamba.py)
        getattr(lib, f"dconv_{suf}").argtypes = [L] * 5 + [P, L, P, P, P, P]
        getattr(lib, f"selscan_{suf}").argtypes = [L] * 5 + [P, P, P, L, P, P, P, L, P, P, P]
        for name in ("dconv", "selscan"):
            getattr(lib, f"{name}_{suf}").restype = I
    return lib


def library() -> ctypes.CDLL | None:
    """The compiled step loops, built and cached at first call; None when unavailable.

    The library file is ``cache_dir() / "steploops-<key>.so"``, the key a hash of the C source, the
    compiler flags and the CPU's identity; the result (library or None) is kept for the process.

    Returns
    -------
    ctypes.CDLL or None
        The loaded library with argument types bound (``lstm_f32``, ``gru_f64``, ...); None with
        ``RNNMEM_NATIVE=0`` (or false / no / off), or when no compiler is found or the build or load
        fails (logged at debug level; never raised).
    """
    if "lib" in _state:
        return _state["lib"]
    lib = None
    if os.environ.get("RNNMEM_NATIVE", "1").strip().lower() in ("0", "false", "no", "off"):
        log.debug("native step loops disabled by RNNMEM_NATIVE")
    else:
        key = hashlib.sha256((_SOURCE + " ".join(_FLAGS + _NATIVE_ARCH) + platform.machine() + _cpu_identity()).encode()).hexdigest()[:16]
        target = cache_dir() / f"steploops-{key}.so"
        try:
            if not target.exists():
                _build(target)
            lib = _bind(ctypes.CDLL(str(target)))
        except Exception as exc:  # optional: any failure means the Python loop
            log.debug("native step loops unavailable, using the Python loop: %s", exc)
            lib = None
    _state["lib"] = lib
    return lib
