"""Optional compiled step loops for small units without autograd (the forgetting probe's case).

At small sizes (the forgetting probe runs 8 inputs, 32 units, a batch of 2 for 100,000 steps)
a step of the Python loop costs tens of microseconds of per-operation dispatch while the
arithmetic takes well under one. This module compiles, at first use, a few plain-C loops (LSTM,
GRU reset-before / reset-after, Elman RNN, Nested LSTM; sigmoid or hard-sigmoid gates; float32 and float64;
ensembles) that run a whole block of steps per call, given the input projection
``x W_x + b (+ folded biases)`` that the Python path computes for the block anyway.

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
``tanh``/``exp`` are this module's (float32: evaluated in double and rounded once, within half an
ulp; float64: libm) rather than torch's vectorised ones. Results agree with the Python loop to
float rounding (a few ulp per step), not bit for bit; tests/test_native.py checks them within
1e-5 (float32) / 1e-12 (float64). Used only when no gradient is needed (see
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
    """``$RNNMEM_CACHE/native`` or ``~/.cache/rnnmem/native``."""
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
    return lib


def library() -> ctypes.CDLL | None:
    """The compiled step loops, built and cached at first call; None when unavailable."""
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
