"""Fast sequence kernels for training: rnnmem's recurrences with hand-written backward passes.

Training a hidden-size-1 network on a 2,500-step series is all per-step overhead: each step is a
handful of operations on tensors of a few hundred numbers. Autograd would record every one of
them and replay it backwards (about 15 us per operation). Here each recurrence is one
``torch.autograd.Function`` whose forward is a plain loop with few operations per step (results
written into preallocated buffers) and whose backward is a second loop that carries only the
gradient of the state; every per-step coefficient of the backward recurrence is precomputed for
all steps at once, and parameter gradients are reduced over time afterwards in one product
(back-propagation through time, Werbos 1990, written out per unit). Nothing is approximated:
the gradients are those of the equations in ``rnnmem.cells.memory`` / ``rnnmem.cells.gated``
(tests compare them with autograd through the reference step loop).

Every weight carries the ensemble dimension E (a single unit is E = 1), so S seeds are one
computation. Filter histories use time-reversed buffers: the K past cell states c_{t-1..t-K} are
one contiguous slice, so the history sum is one vectorised product over the stored window, and
the backward pass pushes lambda_t * a_j into the K earlier accumulators with one in-place op.

``fast_forward(unit, x, state)`` returns what ``unit(x, state)`` returns (y and the final state,
same layouts). It supports rnn (tanh), lstm (sigmoid gates, any biases/forget shift), mrnnf,
mrnn, rnn2, mlstmf, mlstm (sigmoid gates) and rwa, any number of layers, on any device, with
gradients for parameters, inputs and initial states; anything else runs the unit's own step loop.
These Functions define reverse mode only: forward-mode AD and double backward need ``unit(x)``.
"""

from __future__ import annotations

import torch
from torch import _VF
from torch.autograd import Function

from ..cells import kernel_for, register_kernel
from ..fractional import frac_weights

SUPPORTED = ("rnn", "lstm", "mrnnf", "rnn2", "mrnn", "mlstmf", "mlstm", "rwa")
#: largest buffer (elements) the dynamic-d kernels may allocate for per-step filter weights
MAX_BUFFER = 200_000_000
FUSED_MAX_UNITS = 512  # lstm ensembles up to E*H units run as one block-diagonal fused LSTM
CHUNK = 32  # time steps per chunk of the vectorised filter-derivative precomputations (fits in cache)


# ============================================================================================
# tanh recurrence  h_t = tanh(P_t + h_{t-1} W)
# ============================================================================================
class _TanhRNN(Function):
    """h_t = tanh(P_t + h_{t-1} W);  P [T, E, B, G], W [E, G, G], h0 [E, B, G] -> H [T, E, B, G].

    Backward: A_t = (dL/dh_t + A_{t+1} W^T) * (1 - h_t^2);  dP = A, dW = sum_t h_{t-1}^T A_t.
    """

    @staticmethod
    def forward(ctx, P, W, h0):
        T = P.shape[0]
        Hs = torch.empty_like(P)
        h = h0
        for t in range(T):
            h = torch.baddbmm(P[t], h, W, out=Hs[t])
            h.tanh_()
        ctx.save_for_backward(Hs, W, h0)
        return Hs

    @staticmethod
    def backward(ctx, gH):
        Hs, W, h0 = ctx.saved_tensors
        D = 1 - Hs * Hs
        GD = gH * D
        A = torch.empty_like(Hs)
        WT = W.transpose(1, 2)
        g = torch.zeros_like(h0)
        for t in range(Hs.shape[0] - 1, -1, -1):
            a = torch.addcmul(GD[t], g, D[t], out=A[t])
            g = torch.bmm(a, WT)
        Hprev = torch.cat([h0.unsqueeze(0), Hs[:-1]])
        dW = torch.einsum("tebi,tebj->eij", Hprev, A)
        return A, dW, g


# ============================================================================================
# LSTM (gate order i, f, g, o; sigmoid gates)
# ============================================================================================
class _LSTM(Function):
    """[i, f, g, o] = P_t + h_{t-1} W;  c_t = s(f) c_{t-1} + s(i) tanh(g);  h_t = s(o) tanh(c_t).

    P [T, E, B, 4H] holds x W_x + all biases (and any forget shift). Returns (H, C) [T, E, B, H].
    """

    @staticmethod
    def forward(ctx, P, W, h0, c0):
        T = P.shape[0]
        H = h0.shape[-1]
        Hs = torch.empty(P.shape[:-1] + (H,), dtype=P.dtype, device=P.device)
        Cs = torch.empty_like(Hs)
        h, c = h0, c0
        for t in range(T):
            pre = torch.baddbmm(P[t], h, W)
            s = torch.sigmoid(pre)
            g = torch.tanh(pre[..., 2 * H:3 * H])
            c = torch.addcmul(s[..., H:2 * H] * c, s[..., :H], g, out=Cs[t])
            h = torch.mul(s[..., 3 * H:], torch.tanh(c), out=Hs[t])
        ctx.save_for_backward(P, W, h0, c0, Hs, Cs)
        return Hs, Cs

    @staticmethod
    def backward(ctx, gH, gC):
        P, W, h0, c0, Hs, Cs = ctx.saved_tensors
        T, E, B, H = Hs.shape
        Hprev = torch.cat([h0.unsqueeze(0), Hs[:-1]])
        Cprev = torch.cat([c0.unsqueeze(0), Cs[:-1]])
        pre = P + torch.einsum("tebh,ehg->tebg", Hprev, W)
        s = torch.sigmoid(pre)
        i, f, o = s[..., :H], s[..., H:2 * H], s[..., 3 * H:]
        g = torch.tanh(pre[..., 2 * H:3 * H])
        tc = torch.tanh(Cs)
        A1 = o * (1 - tc * tc)                       # dh_t -> dc_t
        Ao = tc * o * (1 - o)                        # dh_t -> d pre_o
        Bc = torch.stack([g * i * (1 - i), Cprev * f * (1 - f), i * (1 - g * g), torch.zeros_like(g)], -2)
        f = f.contiguous()
        DP = torch.empty(T, E, B, 4, H, dtype=P.dtype, device=P.device)
        WT = W.transpose(1, 2)
        dh_rec = torch.zeros_like(h0)
        dcc = torch.zeros_like(c0)
        use_gC = bool(gC.any())
        for t in range(T - 1, -1, -1):
            dh = gH[t] + dh_rec
            if use_gC:
                dcc = dcc + gC[t]
            dc = torch.addcmul(dcc, dh, A1[t])
            dp = torch.mul(Bc[t], dc.unsqueeze(-2), out=DP[t])
            torch.mul(dh, Ao[t], out=dp[..., 3, :])
            dh_rec = torch.bmm(dp.view(E, B, 4 * H), WT)
            dcc = dc * f[t]
        dP = DP.view(T, E, B, 4 * H)
        dW = torch.einsum("tebh,tebg->ehg", Hprev, dP)
        return dP, dW, dh_rec, dcc


# ============================================================================================
# fractional-filter helpers
# ============================================================================================
def _ratio_consts(K: int, ref: torch.Tensor, negated: bool):
    """Constants so that ``cumprod(c1 + d * sv)`` over lags gives w_j(d) (or -w_j(d) when
    ``negated``): ratio_0 = -d (or +d), ratio_i = i/(i+1) - d/(i+1). Shaped [K, 1, 1, 1]."""
    i = torch.arange(K, dtype=ref.dtype, device=ref.device)
    c1 = i / (i + 1)
    sv = -1 / (i + 1)
    if negated:
        sv[0] = 1.0
    return c1.view(K, 1, 1, 1), sv.view(K, 1, 1, 1)


def _filter_dd(d: torch.Tensor, win: torch.Tensor) -> torch.Tensor:
    """sum_j (d a_j / d d) win_j for a_j(d) = -w_j(d) = d v_j, v_j = prod_{i=1}^{j-1} (i - d)/(i + 1):

        d a_j / d d = v_j (1 + d sum_{i=1}^{j-1} 1/(d - i))      (= 1 for j = 1)

    finite for every d in [0, 0.5] (no division by d). ``d`` [..., n]; ``win`` [..., n, K]
    lag-ascending (``win[..., 0]`` is lag 1). Returns [..., n]."""
    K = win.shape[-1]
    if K == 1:
        return win[..., 0].clone()
    i = torch.arange(1, K, dtype=d.dtype, device=d.device)
    dd = d.unsqueeze(-1)
    v = torch.cumprod(torch.addcmul(i / (i + 1), dd, -1 / (i + 1)), -1)      # v_2 .. v_K
    coef = torch.cumsum(torch.reciprocal(dd - i), -1).mul_(dd).add_(1).mul_(v)
    return win[..., 0] + torch.linalg.vecdot(coef, win[..., 1:])


# ============================================================================================
# mRNN with dynamic d: the (m, d) recurrence
# ============================================================================================
class _MRNNDyn(Function):
    """State s_t = [m_t, d_t] ([E, B, H + I]); u_t = QB_t + s_{t-1} Ws with QB_t = [b_m, q_t];

        d_t = 0.5 sigmoid(u_t[H:]),   F_t = sum_j w_j(d_t) x_{t-j+1},   m_t = tanh(u_t[:H] + F_t W_f)

    q_t = x_t W_xd + h_{t-1} W_hd + b_d comes from outside (autograd routes its gradient to the
    h track). XR: the inputs with the K-1 stored ones, time-reversed ([T+K-1, E, B, I]; no
    gradient). Returns S [T+1, E, B, H+I] (S[0] = s_0).
    """

    @staticmethod
    def forward(ctx, QB, Ws, Wf, S0, XR, K):
        T = QB.shape[0]
        H = Wf.shape[-1]
        S = torch.empty((T + 1,) + S0.shape, dtype=QB.dtype, device=QB.device)
        S[0] = S0
        Fb = torch.empty(QB.shape[:-1] + (Wf.shape[1],), dtype=QB.dtype, device=QB.device)
        c1, sv = _ratio_consts(K, QB, negated=False)
        for t in range(T):
            u = torch.baddbmm(QB[t], S[t], Ws)
            nxt = S[t + 1]
            d = torch.mul(torch.sigmoid(u[..., H:]), 0.5, out=nxt[..., H:])
            w = torch.cumprod(torch.addcmul(c1, d.unsqueeze(0), sv), 0)
            n = T - 1 - t
            Fx = torch.sum(w * XR[n:n + K], 0, out=Fb[t])
            torch.tanh(torch.baddbmm(u[..., :H], Fx, Wf), out=nxt[..., :H])
        ctx.save_for_backward(S, Fb, XR, Ws, Wf)
        ctx.K = K
        return S

    @staticmethod
    def backward(ctx, gS):
        S, Fb, XR, Ws, Wf = ctx.saved_tensors
        K = ctx.K
        T = S.shape[0] - 1
        H = Wf.shape[-1]
        Sn = S[1:]
        M, D = Sn[..., :H], Sn[..., H:]
        Dm = 1 - M * M
        Dd = D * (1 - 2 * D)
        # G_t = dF_t/dd_t = sum_j (dw_j/dd)(d_t) x_{t-j+1}, vectorised over chunks of steps
        G = torch.empty_like(D)
        XRu = XR.unfold(0, K, 1)                      # [T, E, B, I, K]: XRu[n][..., k] = XR[n + k]
        for t0 in range(0, T, CHUNK):                 # window of step t is XRu[T-1-t]: reversed rows
            t1 = min(T, t0 + CHUNK)
            G[t0:t1] = _filter_dd(D[t0:t1].flip(0), XRu[T - t1:T - t0]).flip(0).neg_()   # dw = -da
        gSn = gS[1:]
        gM, gD = gSn[..., :H], gSn[..., H:]
        GMD = gM * Dm
        GU = torch.empty_like(Sn)
        GF = torch.empty_like(D)
        WfT = Wf.transpose(1, 2)
        WsT = Ws.transpose(1, 2)
        gs = torch.zeros_like(S[0])
        use_gD = bool(gD.any())
        for t in range(T - 1, -1, -1):
            gu = GU[t]
            ga = torch.addcmul(GMD[t], gs[..., :H], Dm[t], out=gu[..., :H])
            gF = torch.bmm(ga, WfT, out=GF[t])
            gd = torch.addcmul(gs[..., H:] + gD[t] if use_gD else gs[..., H:], gF, G[t])
            torch.mul(gd, Dd[t], out=gu[..., H:])
            gs = torch.bmm(gu, WsT)
        dWs = torch.einsum("tebi,tebj->eij", S[:-1], GU)
        dWf = torch.einsum("tebi,tebh->eih", Fb, GU[..., :H])
        dXR = None
        if ctx.needs_input_grad[4]:  # x_{t-j+1} = XR[T-1-t+j-1] receives w_j(d_t) dL/dF_t
            dXR = torch.zeros_like(XR)
            c1, sv = _ratio_consts(K, D, negated=False)
            lag = torch.arange(K, device=D.device).view(K, 1)
            for t0 in range(0, T, CHUNK):
                t1 = min(T, t0 + CHUNK)
                w = torch.cumprod(torch.addcmul(c1.view(-1), D[t0:t1].unsqueeze(-1), sv.view(-1)), -1)
                contrib = (w * GF[t0:t1].unsqueeze(-1)).movedim(-1, 0)       # [K, Tc, E, B, I]
                idx = (T - 1 - torch.arange(t0, t1, device=D.device)).view(1, -1) + lag
                dXR.index_add_(0, idx.reshape(-1), contrib.reshape((-1,) + tuple(D.shape[1:])))
        return GU, dWs, dWf, gs + gS[0], dXR, None


# ============================================================================================
# mLSTM: fixed and dynamic d
# ============================================================================================
class _MLSTMFixed(Function):
    """[i, o, g] = P_t + h_{t-1} W;  c_t = sum_j a_j c_{t-j} + s(i) tanh(g);  h_t = s(o) tanh(c_t).

    a [K, E, 1, H] (a_j = -w_j(d)); CW0 [K, E, B, H] = c_{-1}, ..., c_{-K}. Returns H [T, E, B, H]
    and the time-reversed cell buffer CB [T+K, E, B, H] (CB[T-1-t] = c_t, CB[T+k] = c_{-1-k}).
    """

    @staticmethod
    def forward(ctx, P, W, h0, CW0, A):
        T = P.shape[0]
        K, H = A.shape[0], h0.shape[-1]
        Hs = torch.empty(P.shape[:-1] + (H,), dtype=P.dtype, device=P.device)
        CB = torch.empty((T + K,) + h0.shape, dtype=P.dtype, device=P.device)
        CB[T:] = CW0
        h = h0
        for t in range(T):
            n = T - 1 - t
            pre = torch.baddbmm(P[t], h, W)
            sg = torch.sigmoid(pre[..., :2 * H])
            g = torch.tanh(pre[..., 2 * H:])
            filt = (CB[n + 1:n + 1 + K] * A).sum(0)
            c = torch.addcmul(filt, sg[..., :H], g, out=CB[n])
            h = torch.mul(sg[..., H:], torch.tanh(c), out=Hs[t])
        ctx.save_for_backward(P, W, h0, A, Hs, CB)
        return Hs, CB

    @staticmethod
    def backward(ctx, gH, gCB):
        P, W, h0, A, Hs, CB = ctx.saved_tensors
        T, E, B, H = Hs.shape
        K = A.shape[0]
        Hprev = torch.cat([h0.unsqueeze(0), Hs[:-1]])
        pre = P + torch.einsum("tebh,ehg->tebg", Hprev, W)
        sg = torch.sigmoid(pre[..., :2 * H])
        i, o = sg[..., :H], sg[..., H:]
        g = torch.tanh(pre[..., 2 * H:])
        tc = torch.tanh(CB[:T].flip(0))
        A1 = o * (1 - tc * tc)
        Ho = tc * o * (1 - o)
        Lc = torch.stack([g * i * (1 - i), torch.zeros_like(g), i * (1 - g * g)], -2)   # [T, E, B, 3, H]
        ACC = gCB.clone()
        LAM = torch.empty_like(Hs)
        DP = torch.empty(T, E, B, 3, H, dtype=P.dtype, device=P.device)
        WT = W.transpose(1, 2)
        dh_rec = torch.zeros_like(h0)
        for t in range(T - 1, -1, -1):
            n = T - 1 - t
            dh = gH[t] + dh_rec
            lam = torch.addcmul(ACC[n], dh, A1[t], out=LAM[t])
            ACC[n + 1:n + 1 + K].addcmul_(A, lam)
            dp = torch.mul(Lc[t], lam.unsqueeze(-2), out=DP[t])
            torch.mul(dh, Ho[t], out=dp[..., 1, :])
            dh_rec = torch.bmm(dp.view(E, B, 3 * H), WT)
        dP = DP.view(T, E, B, 3 * H)
        dW = torch.einsum("tebh,tebg->ehg", Hprev, dP)
        CBu = CB.unfold(0, K, 1)                              # [T+1, E, B, H, K]: CBu[m][..., k] = CB[m + k]
        dA = torch.einsum("mebhk,mebh->keh", CBu[1:T + 1], LAM.flip(0)).unsqueeze(2)
        return dP, dW, dh_rec, ACC[T:], dA


class _MLSTMDyn(Function):
    """[i, o, p, g] = P_t + [h_{t-1}, d_{t-1}] W;  d_t = 0.5 s(p);  c_t = sum_j a_j(d_t) c_{t-j} + s(i) tanh(g);
    h_t = s(o) tanh(c_t), a_j(d) = -w_j(d). Returns S [T+1, E, B, 2H] ([h_t, d_t]) and CB as in
    ``_MLSTMFixed``."""

    @staticmethod
    def forward(ctx, P, W, S0, CW0, K):
        T = P.shape[0]
        H = S0.shape[-1] // 2
        S = torch.empty((T + 1,) + S0.shape, dtype=P.dtype, device=P.device)
        S[0] = S0
        CB = torch.empty((T + K,) + S0.shape[:-1] + (H,), dtype=P.dtype, device=P.device)
        CB[T:] = CW0
        AB = torch.empty((T, K) + CB.shape[1:], dtype=P.dtype, device=P.device)
        c1, sv = _ratio_consts(K, P, negated=True)
        for t in range(T):
            n = T - 1 - t
            nxt = S[t + 1]
            pre = torch.baddbmm(P[t], S[t], W)
            sg = torch.sigmoid(pre[..., :3 * H])
            g = torch.tanh(pre[..., 3 * H:])
            d = torch.mul(sg[..., 2 * H:], 0.5, out=nxt[..., H:])
            a = torch.cumprod(torch.addcmul(c1, d.unsqueeze(0), sv), 0, out=AB[t])
            filt = (a * CB[n + 1:n + 1 + K]).sum(0)
            c = torch.addcmul(filt, sg[..., :H], g, out=CB[n])
            torch.mul(sg[..., H:2 * H], torch.tanh(c), out=nxt[..., :H])
        ctx.save_for_backward(P, W, S, CB, AB)
        return S, CB

    @staticmethod
    def backward(ctx, gS, gCB):
        P, W, S, CB, AB = ctx.saved_tensors
        T = P.shape[0]
        K = AB.shape[1]
        E, B, H = CB.shape[1], CB.shape[2], CB.shape[3]
        Sp = S[:-1]
        pre = P + torch.einsum("tebs,esg->tebg", Sp, W)
        sg = torch.sigmoid(pre[..., :3 * H])
        i, o = sg[..., :H], sg[..., H:2 * H]
        g = torch.tanh(pre[..., 3 * H:])
        D = S[1:, ..., H:]
        Dd = D * (1 - 2 * D)
        tc = torch.tanh(CB[:T].flip(0))
        A1 = o * (1 - tc * tc)
        Ho = tc * o * (1 - o)
        # Gd_t = dc_t/dd_t = sum_j (da_j/dd)(d_t) c_{t-j}
        Gd = torch.empty_like(D)
        CBu = CB.unfold(0, K, 1)                      # [T+1, E, B, H, K]
        for t0 in range(0, T, CHUNK):                 # step t: CBu[T-t] = c_{t-1..t-K}, reversed rows
            t1 = min(T, t0 + CHUNK)
            Gd[t0:t1] = _filter_dd(D[t0:t1].flip(0), CBu[T - t1 + 1:T - t0 + 1]).flip(0)
        Lc = torch.stack([g * i * (1 - i), torch.zeros_like(g), Gd * Dd, i * (1 - g * g)], -2)
        gSn = gS[1:]
        gH, gDo = gSn[..., :H], gSn[..., H:]
        ACC = gCB.clone()
        DP = torch.empty(T, E, B, 4, H, dtype=P.dtype, device=P.device)
        WT = W.transpose(1, 2)
        gs = torch.zeros_like(S[0])
        use_gD = bool(gDo.any())
        for t in range(T - 1, -1, -1):
            n = T - 1 - t
            dh = gH[t] + gs[..., :H]
            lam = torch.addcmul(ACC[n], dh, A1[t])
            ACC[n + 1:n + 1 + K].addcmul_(AB[t], lam)
            dp = torch.mul(Lc[t], lam.unsqueeze(-2), out=DP[t])
            torch.mul(dh, Ho[t], out=dp[..., 1, :])
            dp[..., 2, :].addcmul_(gs[..., H:] + gDo[t] if use_gD else gs[..., H:], Dd[t])
            gs = torch.bmm(dp.view(E, B, 4 * H), WT)
        dP = DP.view(T, E, B, 4 * H)
        dW = torch.einsum("tebs,tebg->esg", Sp, dP)
        return dP, dW, gs + gS[0], ACC[T:], None


# ============================================================================================
# recurrent weighted average
# ============================================================================================
class _RWA(Function):
    """[g, a] = PGA_t + h_{t-1} W;  z = PU_t tanh(g);  l_t = logaddexp(l_{t-1}, a);
    alpha = exp(a - l_t);  r_t = r_{t-1} + alpha (z - r_{t-1});  h_t = tanh(r_t).
    Returns (H, R, L) [T, E, B, H]."""

    @staticmethod
    def forward(ctx, PU, PGA, W, h0, r0, l0):
        T, H = PU.shape[0], PU.shape[-1]
        Hs, Rs, Ls = torch.empty_like(PU), torch.empty_like(PU), torch.empty_like(PU)
        h, r, lg = h0, r0, l0
        for t in range(T):
            ga = torch.baddbmm(PGA[t], h, W)
            a = ga[..., H:]
            z = PU[t] * torch.tanh(ga[..., :H])
            lg = torch.logaddexp(lg, a, out=Ls[t])
            r = torch.lerp(r, z, torch.exp(a - lg), out=Rs[t])
            h = torch.tanh(r, out=Hs[t])
        ctx.save_for_backward(PU, PGA, W, h0, r0, l0, Hs, Rs, Ls)
        return Hs, Rs, Ls

    @staticmethod
    def backward(ctx, gH, gR, gL):
        PU, PGA, W, h0, r0, l0, Hs, Rs, Ls = ctx.saved_tensors
        T, E, B, H = Hs.shape
        Hp = torch.cat([h0.unsqueeze(0), Hs[:-1]])
        Rp = torch.cat([r0.unsqueeze(0), Rs[:-1]])
        ga = PGA + torch.einsum("tebh,ehg->tebg", Hp, W)
        tg = torch.tanh(ga[..., :H])
        alpha = torch.exp(ga[..., H:] - Ls)
        beta = 1 - alpha
        ab = alpha * beta
        Zr = PU * tg - Rp
        Dh = 1 - Hs * Hs
        Cg = alpha * PU * (1 - tg * tg)
        use_gR, use_gL = bool(gR.any()), bool(gL.any())
        DG = torch.empty(T, E, B, 2 * H, dtype=PU.dtype, device=PU.device)
        GR = torch.empty_like(Hs)
        WT = W.transpose(1, 2)
        gh_rec = torch.zeros_like(h0)
        gr_c = torch.zeros_like(h0)
        gl_c = torch.zeros_like(h0)
        for t in range(T - 1, -1, -1):
            dh = gH[t] + gh_rec
            if use_gR:
                gr_c = gr_c + gR[t]
            gl = gl_c + gL[t] if use_gL else gl_c
            gr = torch.addcmul(gr_c, dh, Dh[t], out=GR[t])
            galpha = gr * Zr[t]
            dg = DG[t]
            torch.addcmul(gl * alpha[t], galpha, ab[t], out=dg[..., H:])
            torch.mul(gr, Cg[t], out=dg[..., :H])
            gl_c = torch.addcmul(gl * beta[t], galpha, ab[t], value=-1)
            gr_c = gr * beta[t]
            gh_rec = torch.bmm(dg, WT)
        dW = torch.einsum("tebh,tebg->ehg", Hp, DG)
        dPU = GR * alpha * tg
        return dPU, DG, dW, gh_rec, gr_c, gl_c


# ============================================================================================
# dispatch
# ============================================================================================
def unsupported_reason(unit, x: torch.Tensor | None = None) -> str | None:
    """Why ``fast_forward`` would fall back to the unit's step loop (None: it will not).

    Parameters
    ----------
    unit : rnnmem unit
        The recurrent unit.
    x : torch.Tensor, optional
        The input [T, (E), B, I]; with it the mlstm buffer size is checked too (``MAX_BUFFER``).

    Returns
    -------
    str or None
        The reason in words, or None when the fast kernels apply.
    """
    kind = getattr(unit, "kind", None)
    if kernel_for("fast_forward", kind) is None:
        return f"no fast kernel for cell {kind!r}"
    conv = getattr(unit, "convention", None)
    if kind == "rnn" and getattr(unit, "nonlinearity", "tanh") != "tanh":
        return "fast rnn kernel is tanh only"
    if kind in ("lstm", "mlstmf", "mlstm") and conv is not None and conv.gate_activation != "sigmoid":
        return "fast kernels use sigmoid gates"
    if x is not None:
        if kind == "mlstm":
            E = unit.ensemble or 1
            n = x.shape[0] * unit.K * E * x.shape[-2] * unit.hidden_size
            if n > MAX_BUFFER:
                return f"mlstm filter buffer of {n:,} elements exceeds {MAX_BUFFER:,}"
    return None


def _prm(unit, p, name: str) -> torch.Tensor:
    """Parameter ``name`` with a leading ensemble dim (biases [E, 1, n], weights [E, a, b])."""
    t = getattr(p, name)
    if unit.ensemble:
        return t
    if name.startswith("b"):
        return t.reshape(1, 1, -1)
    return t.unsqueeze(0)


def _mm(x: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """[T, E, B, n] x [E, n, m] -> [T, E, B, m]."""
    return torch.einsum("tebi,eih->tebh", x, W)


def _blockdiag(A: torch.Tensor, B_: torch.Tensor) -> torch.Tensor:
    """[[A, 0], [0, B]] per ensemble member (differentiable; the zeros are not parameters)."""
    E, a1, a2 = A.shape
    _, b1, b2 = B_.shape
    top = torch.cat([A, A.new_zeros(E, a1, b2)], 2)
    bot = torch.cat([B_.new_zeros(E, b1, a2), B_], 2)
    return torch.cat([top, bot], 1)


def _layer_rnn(unit, layer, x, st):
    p = unit.layer_params[layer]
    P = _mm(x, _prm(unit, p, "W_x")) + _prm(unit, p, "b")
    if "b_h" in p._parameters:
        P = P + _prm(unit, p, "b_h")
    Hs = _TanhRNN.apply(P, _prm(unit, p, "W_h"), st[0])
    return Hs, (Hs[-1],)


def _blockdiag_gates(W: torch.Tensor, gates: int) -> torch.Tensor:
    """Per-member kernels W [E, n, G*H] -> one block-diagonal kernel [G*E*H, E*n] in torch's RNN
    layout (gate-major rows, unit index e*H + h; input column e*n + i)."""
    E, n, GH = W.shape
    H = GH // gates
    Wg = W.view(E, n, gates, H).permute(2, 0, 3, 1)                     # [G, E, H, n]
    eye = torch.eye(E, dtype=W.dtype, device=W.device)
    return torch.einsum("gehi,ef->gehfi", Wg, eye).reshape(gates * E * H, E * n)


def _gate_bias(b: torch.Tensor, gates: int) -> torch.Tensor:
    """[E, 1, G*H] -> [G*E*H] in the block-diagonal layout."""
    E = b.shape[0]
    return b.reshape(E, gates, -1).transpose(0, 1).reshape(-1)


def _layer_lstm(unit, layer, x, st):
    p = unit.layer_params[layer]
    H = unit.hidden_size
    W_x, W_h, b = _prm(unit, p, "W_x"), _prm(unit, p, "W_h"), _prm(unit, p, "b")
    if "b_h" in p._parameters:
        b = b + _prm(unit, p, "b_h")
    shift = unit.convention.forget_shift if unit.convention is not None else 0.0
    if shift:
        bump = torch.zeros(4 * H, dtype=b.dtype, device=b.device)
        bump[H:2 * H] = shift
        b = b + bump
    T, E, B, I = x.shape
    if E * H <= FUSED_MAX_UNITS:
        # all members as one LSTM with block-diagonal kernels: torch's fused kernel (mkldnn/cuDNN)
        # computes exactly these equations; the off-diagonal zeros add nothing
        w = [_blockdiag_gates(W_x, 4), _blockdiag_gates(W_h, 4), _gate_bias(b, 4), torch.zeros_like(_gate_bias(b, 4))]
        xf = x.permute(0, 2, 1, 3).reshape(T, B, E * I)
        h0, c0 = (s.permute(1, 0, 2).reshape(1, B, E * H) for s in st)
        y, hT, cT = _VF.lstm(xf, (h0, c0), w, True, 1, 0.0, torch.is_grad_enabled(), False, False)
        Hs = y.view(T, B, E, H).permute(0, 2, 1, 3)
        return Hs, (hT.view(B, E, H).transpose(0, 1), cT.view(B, E, H).transpose(0, 1))
    Hs, Cs = _LSTM.apply(_mm(x, W_x) + b, W_h, st[0], st[1])
    return Hs, (Hs[-1], Cs[-1])


def _window_state(unit, xext):
    """Last K-1 inputs as [E, B, K-1, I]."""
    keep = unit.K - 1
    return xext[xext.shape[0] - keep:].movedim(0, -2)


def _layer_mrnnf(unit, layer, x, st):
    from ..cells.memory import fir_filter

    p = unit.layer_params[layer]
    h0, m0, xw = st
    H = unit.hidden_size
    xext = torch.cat([xw.movedim(-2, 0), x], 0)
    w = unit.filter_weights(layer)
    if not unit.ensemble:
        w = w.reshape((1, 1) + tuple(w.shape))
    Fx = fir_filter(xext, w)
    P = torch.cat([_mm(x, _prm(unit, p, "W_x")) + _prm(unit, p, "b"),
                   _mm(Fx, _prm(unit, p, "W_f")) + _prm(unit, p, "b_m")], -1)
    Wb = _blockdiag(_prm(unit, p, "W_h"), _prm(unit, p, "W_m"))
    HM = _TanhRNN.apply(P, Wb, torch.cat([h0, m0], -1))
    Hs, Ms = HM[..., :H], HM[..., H:]
    z = _mm(Hs, _prm(unit, p, "W_zh")) + _mm(Ms, _prm(unit, p, "W_zm")) + _prm(unit, p, "b_z")
    if unit.output_tanh:
        z = torch.tanh(z)
    return z, (HM[-1, ..., :H], HM[-1, ..., H:], _window_state(unit, xext))


def _layer_mrnn(unit, layer, x, st):
    p = unit.layer_params[layer]
    h0, m0, d0, xw = st
    H, K = unit.hidden_size, unit.K
    T = x.shape[0]
    xext = torch.cat([xw.movedim(-2, 0), x], 0)
    Hs = _TanhRNN.apply(_mm(x, _prm(unit, p, "W_x")) + _prm(unit, p, "b"), _prm(unit, p, "W_h"), h0)
    Hprev = torch.cat([h0.unsqueeze(0), Hs[:-1]])
    Q = _mm(x, _prm(unit, p, "W_xd")) + _mm(Hprev, _prm(unit, p, "W_hd")) + _prm(unit, p, "b_d")
    bm = _prm(unit, p, "b_m")
    QB = torch.cat([bm.expand(T, bm.shape[0], x.shape[2], H), Q], -1)
    W_m, W_md, W_dd = _prm(unit, p, "W_m"), _prm(unit, p, "W_md"), _prm(unit, p, "W_dd")
    zeros = W_dd.new_zeros(W_dd.shape[0], W_dd.shape[1], H)
    Ws = torch.cat([torch.cat([W_m, W_md], 2), torch.cat([zeros, W_dd], 2)], 1)   # rows [m; d] -> cols [a, p]
    XR = xext.flip(0).contiguous()
    S = _MRNNDyn.apply(QB, Ws, _prm(unit, p, "W_f"), torch.cat([m0, d0], -1), XR, K)
    Ms = S[1:, ..., :H]
    z = _mm(Hs, _prm(unit, p, "W_zh")) + _mm(Ms, _prm(unit, p, "W_zm")) + _prm(unit, p, "b_z")
    return z, (Hs[-1], S[-1, ..., :H], S[-1, ..., H:], _window_state(unit, xext))


def _layer_mlstmf(unit, layer, x, st):
    p = unit.layer_params[layer]
    h0, cw = st
    H = unit.hidden_size
    a = -unit.filter_weights(layer)                     # [(E, 1,) H, K]
    a = a.reshape(a.shape[0] if unit.ensemble else 1, 1, H, unit.K).permute(3, 0, 1, 2)  # [K, E, 1, H]
    P = _mm(x, _prm(unit, p, "W_x")) + _prm(unit, p, "b")
    Hs, CB = _MLSTMFixed.apply(P, _prm(unit, p, "W_h"), h0, cw.permute(3, 0, 1, 2), a)
    return Hs, (Hs[-1], CB[:unit.K].permute(1, 2, 3, 0))


def _layer_mlstm(unit, layer, x, st):
    p = unit.layer_params[layer]
    h0, cw, d0 = st
    H = unit.hidden_size
    P = _mm(x, _prm(unit, p, "W_x")) + _prm(unit, p, "b")
    W_h, W_d = _prm(unit, p, "W_h"), _prm(unit, p, "W_d")
    E = W_h.shape[0]
    W_drow = torch.cat([W_d.new_zeros(E, H, 2 * H), W_d, W_d.new_zeros(E, H, H)], 2)
    W = torch.cat([W_h, W_drow], 1)                    # rows [h; d] -> [i, o, p, g]
    S, CB = _MLSTMDyn.apply(P, W, torch.cat([h0, d0], -1), cw.permute(3, 0, 1, 2), unit.K)
    return S[1:, ..., :H], (S[-1, ..., :H], CB[:unit.K].permute(1, 2, 3, 0), S[-1, ..., H:])


def _layer_rwa(unit, layer, x, st):
    p = unit.layer_params[layer]
    h0, r0, l0 = st
    H = unit.hidden_size
    xp = _mm(x, _prm(unit, p, "W_x"))
    b = _prm(unit, p, "b")
    PU = xp[..., :H] + b[..., :H]
    PGA = torch.cat([xp[..., H:2 * H] + b[..., H:], xp[..., 2 * H:]], -1)
    Hs, Rs, Ls = _RWA.apply(PU, PGA, _prm(unit, p, "W_h"), h0, r0, l0)
    return Hs, (Hs[-1], Rs[-1], Ls[-1])


_LAYERS = {"rnn": _layer_rnn, "lstm": _layer_lstm, "mrnnf": _layer_mrnnf, "rnn2": _layer_mrnnf,
           "mrnn": _layer_mrnn, "mlstmf": _layer_mlstmf, "mlstm": _layer_mlstm, "rwa": _layer_rwa}


def fast_forward(unit, x: torch.Tensor, state=None):
    """``unit(x, state)`` computed with the fast kernels: returns ``(y, state)`` in the unit's
    layouts (x [T, (E), B, I]). Falls back to the unit's own step loop where unsupported.

    Parameters
    ----------
    unit : rnnmem unit
        rnn (tanh), lstm, mrnnf, mrnn, rnn2, mlstmf, mlstm (sigmoid gates) or rwa; any other unit
        runs its own step loop.
    x : torch.Tensor
        Input [T, B, I] (single unit) or [T, E, B, I] (ensemble of E seeds); moved to the unit's
        device and dtype.
    state : tuple of torch.Tensor, optional
        Initial state in the unit's layout (None: ``unit.init_state``).

    Returns
    -------
    tuple
        ``(y, state)``: top-layer outputs [T, (E), B, H] (or the unit's output size) and the final
        state, as ``unit(x, state)`` returns them.

    Raises
    ------
    InputError
        If ``x`` does not fit the unit (not a floating tensor of the unit's layout and sizes).
    """
    if unsupported_reason(unit, x) is not None:
        return unit(x, state)
    unit._check_input(x, state)
    ref = unit.layer_params[0].W_x
    x = x.to(device=ref.device, dtype=ref.dtype)
    if state is None:
        state = unit.init_state(x.shape[-2])
    else:
        state = tuple(s.to(device=ref.device, dtype=ref.dtype) for s in state)
    single = not unit.ensemble
    if single:
        x = x.unsqueeze(1)
        state = tuple(s.unsqueeze(1) for s in state)
    names = unit.state_names
    memory = hasattr(unit, "_unpad")
    layer_fn = kernel_for("fast_forward", unit.kind)
    finals = [[] for _ in names]
    inputs = x
    for layer in range(unit.num_layers):
        st = tuple(s[layer] for s in state)
        if memory:
            st = tuple(unit._unpad(s, n, layer) for s, n in zip(st, names))
        inputs, st = layer_fn(unit, layer, inputs, st)
        for k, n in enumerate(names):
            finals[k].append(unit._pad(st[k], n) if memory else st[k])
    final = tuple(torch.stack(f) for f in finals)
    if single:
        inputs = inputs.squeeze(1)
        final = tuple(s.squeeze(1) for s in final)
    return inputs, final


# found through the cell registry (``rnnmem.cells.kernel_for("fast_forward", kind)``)
for _kind, _fn in _LAYERS.items():
    register_kernel("fast_forward", _kind, _fn)

__all__ = ["fast_forward", "unsupported_reason", "SUPPORTED", "frac_weights"]
