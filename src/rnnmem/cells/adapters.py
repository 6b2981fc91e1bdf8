"""Adapters: pretrained recurrent models of Hugging Face ``transformers`` and ``mambapy`` as units.

Optional extras (``pip install "rnnmem[hf]"`` / ``"rnnmem[mambapy]"``); nothing in rnnmem imports
this module at import time, and it imports those packages only when called. Each adapter is a
:class:`~rnnmem.cells.custom.CallableUnit`, so every probe takes it as it is::

    from transformers import MambaModel
    unit = rnnmem.cells.from_hf(MambaModel.from_pretrained(path))     # or Mamba2Model, RwkvModel, xLSTMModel
    unit = rnnmem.cells.from_mambapy(mambapy_model)                   # mambapy.mamba.Mamba

Input: embeddings ``x[T, B, d_model]`` (what ``inputs_embeds`` takes; for a token model embed the
tokens first with ``model.get_input_embeddings()``). Output: the model's last hidden state (HF: after
the final norm, ``last_hidden_state``; mambapy: the last residual block's output). Every step runs
the library's own recurrent (cached) path, one token at a time:

- HF ``MambaModel`` / ``Mamba2Model`` (and other models with the linear-attention cache):
  ``model(inputs_embeds=x_t, cache=cache, use_cache=True)``; the state is read with the cache's
  ``get_conv_state`` / ``get_recurrent_state`` and written into a fresh ``DynamicCache`` with
  ``update_conv_state`` / ``update_recurrent_state``. Components ``conv [layers, B, C (K-1)]``
  (the last K-1 convolution inputs per channel; the cache's oldest column never reaches an output)
  and ``ssm [layers, B, F]`` (the recurrent state flattened).
- HF ``RwkvModel``: ``model(inputs_embeds=x_t, state=[...], use_cache=True)``; components
  ``ffn_shift``, ``att_shift``, ``num``, ``den``, ``max`` (``[layers, B, hidden]``; the initial
  ``max`` is RWKV's -1e30).
- HF ``xLSTMModel``: ``cache=xLSTMCache``; components ``C``, ``n``, ``m`` (the mLSTM matrix memory,
  normaliser and stabiliser of every head, flattened).
- ``mambapy.mamba.Mamba``: ``model.step(x_t, caches)``; components ``conv`` (the block's
  ``inputs``, ``[d_inner, K-1]``) and ``ssm`` (``h``, ``[d_inner, N]``), flattened as in rnnmem's
  own ``mamba`` unit.

The whole-sequence ``forward`` of an adapter is this step loop (the library's full-sequence form
does not start from a given state in every version); tests/test_adapters.py checks it against the
library's own full-sequence forward on tiny random models, to 1e-5.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError, InputError
from .custom import CallableUnit


def _flat(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1)


class _AdapterUnit(CallableUnit):
    """A library model stepped through its own recurrent API; subclasses give the state codec."""

    kind = "adapter"
    library = ""

    def __init__(self, model: nn.Module, width: int, names: tuple[str, ...]):
        super().__init__(model, width, width, init_state=self._zero_state, state_names=names)
        self.model = model

    # codec: subclasses
    def _zero_state(self, batch: int) -> tuple:
        raise NotImplementedError

    def _step(self, x_t: torch.Tensor, state: tuple) -> tuple[torch.Tensor, tuple]:
        raise NotImplementedError

    def _call(self, x, state):
        if state is None:
            state = self._zero_state(x.shape[1])
        state = state if isinstance(state, tuple) else tuple(state)
        x = x.to(self.dtype)
        ys = []
        for t in range(x.shape[0]):
            y, state = self._step(x[t], state)
            ys.append(y)
        return torch.stack(ys), state

    def forward(self, x, state=None, return_all_states: bool = False):
        """See ``CallableUnit.forward``: the model stepped one token embedding at a time.

        Parameters
        ----------
        x : Tensor
            Input embeddings ``[T, B, d_model]`` (cast to the model's dtype).
        state : tuple of Tensor, optional
            The state to start from, shaped as the zero state (``[layers, B, F]`` per component);
            None: the zero state (an empty cache).
        return_all_states : bool
            Also return every step's state (default False).

        Returns
        -------
        tuple
            ``(y[T, B, d_model], state)``, or ``(y, state, states)`` with ``return_all_states``.

        Raises
        ------
        InputError
            When ``x`` is not ``[T, B, d_model]`` or contains NaN, or ``state`` does not match the zero state's
            components and shapes.
        """
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[-1] != self.input_size:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise InputError(f"input must have shape [T, B, {self.input_size}] (embeddings), got {got}")
        if state is not None:
            want = self._zero_state(x.shape[1])
            if len(state) != len(want) or any(tuple(s.shape) != tuple(w.shape) for s, w in zip(state, want)):
                raise InputError(
                    f"state must be {len(want)} tensors {self.state_names} shaped "
                    f"{[tuple(w.shape) for w in want]}, got {[tuple(s.shape) for s in state]}")
        return super().forward(x, state, return_all_states)

    def describe(self) -> dict:
        """See ``CallableUnit.describe``.

        Returns
        -------
        dict
            ``cell`` (the adapter's kind), ``library``, ``model`` (class name), ``input_size``,
            ``hidden_size``, ``layers``, ``state_names``, ``dtype``.
        """
        return {"cell": self.kind, "library": self.library, "model": type(self.model).__name__,
                "input_size": self.input_size, "hidden_size": self.hidden_size,
                "layers": self.num_layers, "state_names": list(self.state_names),
                "dtype": str(self.dtype).replace("torch.", "")}


# --------------------------------------------------------------------------------------------
# Hugging Face transformers
# --------------------------------------------------------------------------------------------
def _hf_base(model: nn.Module) -> nn.Module:
    """The backbone of a ``*ForCausalLM`` (``backbone``, ``rwkv``, ``model``...), or the model itself."""
    for attr in ("backbone", "rwkv", "model"):
        inner = getattr(model, attr, None)
        if isinstance(inner, nn.Module) and hasattr(inner, "config"):
            return inner
    return model


class HFLinearAttentionUnit(_AdapterUnit):
    """HF models whose cache is the linear-attention ``DynamicCache`` (Mamba, Mamba2, ...)."""

    kind = "hf-ssm"
    library = "transformers"

    def __init__(self, model: nn.Module):
        from transformers import DynamicCache

        self._cache_cls = DynamicCache
        cfg = model.config
        width = int(cfg.hidden_size)
        self.num_layers = int(cfg.num_hidden_layers)
        p = next(model.parameters())
        with torch.no_grad():   # learn the state shapes from one step of a fresh cache
            out = model(inputs_embeds=torch.zeros(1, 1, width, dtype=p.dtype, device=p.device), use_cache=True)
        cache = out.cache
        self._conv_shape = tuple(cache.get_conv_state(0).shape[1:])        # (C, K)
        self._ssm_shape = tuple(cache.get_recurrent_state(0).shape[1:])
        super().__init__(model, width, ("conv", "ssm"))
        self.num_layers = int(cfg.num_hidden_layers)

    def _zero_state(self, batch: int) -> tuple:
        p = next(self.model.parameters())
        C, K = self._conv_shape
        L = self.num_layers
        return (torch.zeros(L, batch, C * (K - 1), dtype=p.dtype, device=p.device),
                torch.zeros(L, batch, math.prod(self._ssm_shape), dtype=p.dtype, device=p.device))

    def _step(self, x_t, state):
        conv, ssm = state
        B = x_t.shape[0]
        C, K = self._conv_shape
        cache = self._cache_cls(config=self.model.config)
        for i in range(self.num_layers):
            window = conv[i].reshape(B, C, K - 1)
            full = torch.cat([window.new_zeros(B, C, 1), window], -1)   # the cache keeps K columns
            cache.update_conv_state(full, i, conv_kernel_size=K)
            cache.update_recurrent_state(ssm[i].reshape((B,) + self._ssm_shape).clone(), i)
        out = self.model(inputs_embeds=x_t.unsqueeze(1), cache=cache, use_cache=True)
        c = out.cache
        new_conv = torch.stack([_flat(c.get_conv_state(i)[..., 1:]) for i in range(self.num_layers)])
        new_ssm = torch.stack([_flat(c.get_recurrent_state(i)) for i in range(self.num_layers)])
        return out.last_hidden_state[:, 0], (new_conv.to(conv.dtype), new_ssm.to(ssm.dtype))


class HFRwkvUnit(_AdapterUnit):
    """HF ``RwkvModel``: its ``state`` list of five ``[B, hidden, layers]`` tensors."""

    kind = "hf-rwkv"
    library = "transformers"
    NAMES = ("ffn_shift", "att_shift", "num", "den", "max")

    def __init__(self, model: nn.Module):
        cfg = model.config
        super().__init__(model, int(cfg.hidden_size), self.NAMES)
        self.num_layers = int(cfg.num_hidden_layers)

    def _zero_state(self, batch: int) -> tuple:
        p = next(self.model.parameters())
        shape = (self.num_layers, batch, self.hidden_size)
        st = [torch.zeros(shape, dtype=p.dtype if i <= 1 else torch.float32, device=p.device) for i in range(5)]
        st[4] -= 1e30                                   # RwkvModel's initial running maximum
        return tuple(st)

    def _step(self, x_t, state):
        hf_state = [s.permute(1, 2, 0).clone() for s in state]        # [B, hidden, layers], mutated in place
        out = self.model(inputs_embeds=x_t.unsqueeze(1), state=hf_state, use_cache=True)
        return out.last_hidden_state[:, 0], tuple(s.permute(2, 0, 1) for s in out.state)


class HFxLSTMUnit(_AdapterUnit):
    """HF ``xLSTMModel``: its ``xLSTMCache.rnn_state`` (C, n, m per layer)."""

    kind = "hf-xlstm"
    library = "transformers"

    def __init__(self, model: nn.Module):
        from transformers.models.xlstm.modeling_xlstm import xLSTMCache

        self._cache_cls = xLSTMCache
        cfg = model.config
        self._shapes = ((cfg.num_heads, cfg.qk_head_dim, cfg.v_head_dim), (cfg.num_heads, cfg.qk_head_dim),
                        (cfg.num_heads, 1))
        super().__init__(model, int(cfg.hidden_size), ("C", "n", "m"))
        self.num_layers = int(cfg.num_hidden_layers)

    def _zero_state(self, batch: int) -> tuple:
        p = next(self.model.parameters())
        return tuple(torch.zeros(self.num_layers, batch, math.prod(s), dtype=p.dtype, device=p.device)
                     for s in self._shapes)

    def _step(self, x_t, state):
        B = x_t.shape[0]
        p = next(self.model.parameters())
        cache = self._cache_cls(config=self.model.config, max_batch_size=B, dtype=p.dtype, device=p.device)
        cache.rnn_state = {i: tuple(s[i].reshape((B,) + shp).clone() for s, shp in zip(state, self._shapes))
                           for i in range(self.num_layers)}
        cache.rnn_state_initial = False
        out = self.model(inputs_embeds=x_t.unsqueeze(1), cache=cache, use_cache=True)
        rs = out.cache.rnn_state
        return out.last_hidden_state[:, 0], tuple(
            torch.stack([_flat(rs[i][k]) for i in range(self.num_layers)]) for k in range(3))


def from_hf(model: nn.Module) -> _AdapterUnit:
    """Wrap a Hugging Face recurrent model so every probe runs on it (see the module docstring).

    Parameters
    ----------
    model : ``MambaModel``, ``Mamba2Model``, ``RwkvModel``, ``xLSTMModel`` or their ``*ForCausalLM``
        (the backbone is used; the LM head is not part of the state dynamics).

    Returns
    -------
    A :class:`~rnnmem.cells.custom.CallableUnit`: input embeddings ``[T, B, d_model]``, output the
    last hidden state ``[T, B, d_model]``, state components ``[layers, B, F]``.

    Raises
    ------
    ConfigError
        Without ``transformers``, or for a model this adapter does not know.
    """
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise ConfigError("from_hf needs Hugging Face transformers: pip install 'rnnmem[hf]'") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"from_hf needs a transformers model (an nn.Module), got {type(model).__name__}")
    base = _hf_base(model)
    name = type(base).__name__
    model_type = getattr(getattr(base, "config", None), "model_type", "")
    if model_type == "rwkv":
        return HFRwkvUnit(base)
    if model_type == "xlstm":
        return HFxLSTMUnit(base)
    if model_type in ("mamba", "mamba2", "falcon_mamba"):
        return HFLinearAttentionUnit(base)
    raise ConfigError(
        f"from_hf does not know {name} (model_type {model_type!r}); supported: MambaModel, Mamba2Model, "
        "FalconMambaModel, RwkvModel, xLSTMModel (or their *ForCausalLM). Other modules: wrap them as "
        "rnnmem.cells.CallableUnit(module, input_size, hidden_size)")


# --------------------------------------------------------------------------------------------
# mambapy
# --------------------------------------------------------------------------------------------
class MambapyUnit(_AdapterUnit):
    """``mambapy.mamba.Mamba`` (residual blocks of RMSNorm + MambaBlock) stepped with ``step``."""

    kind = "mambapy"
    library = "mambapy"

    def __init__(self, model: nn.Module):
        cfg = model.config
        self._di, self._N, self._K = int(cfg.d_inner), int(cfg.d_state), int(cfg.d_conv)
        super().__init__(model, int(cfg.d_model), ("conv", "ssm"))
        self.num_layers = int(cfg.n_layers)

    def _zero_state(self, batch: int) -> tuple:
        p = next(self.model.parameters())
        L = self.num_layers
        return (torch.zeros(L, batch, self._di * (self._K - 1), dtype=p.dtype, device=p.device),
                torch.zeros(L, batch, self._di * self._N, dtype=p.dtype, device=p.device))

    def _step(self, x_t, state):
        conv, ssm = state
        B = x_t.shape[0]
        caches = [(ssm[i].reshape(B, self._di, self._N), conv[i].reshape(B, self._di, self._K - 1))
                  for i in range(self.num_layers)]
        y, caches = self.model.step(x_t, caches)
        return y, (torch.stack([_flat(c[1]) for c in caches]), torch.stack([_flat(c[0]) for c in caches]))


def from_mambapy(model: nn.Module) -> MambapyUnit:
    """Wrap a ``mambapy.mamba.Mamba`` so every probe runs on it (see the module docstring).

    Parameters
    ----------
    model : ``mambapy.mamba.Mamba`` (a ``mambapy.lm.LM``: its ``mamba`` attribute is used).

    Returns
    -------
    A :class:`~rnnmem.cells.custom.CallableUnit` over ``model.step``: input ``[T, B, d_model]``,
    output the last block's output, state ``conv``/``ssm`` as rnnmem's ``mamba`` unit lays them out.

    Raises
    ------
    ConfigError
        Without ``mambapy``, or for another kind of model.
    """
    try:
        from mambapy.mamba import Mamba
    except ImportError:
        raise ConfigError("from_mambapy needs mambapy: pip install 'rnnmem[mambapy]'") from None
    inner = getattr(model, "mamba", None)
    if isinstance(inner, Mamba):
        model = inner
    if not isinstance(model, Mamba):
        raise ConfigError(f"from_mambapy needs a mambapy.mamba.Mamba (or mambapy.lm.LM), got {type(model).__name__}")
    return MambapyUnit(model)


__all__ = ["from_hf", "from_mambapy", "HFLinearAttentionUnit", "HFRwkvUnit", "HFxLSTMUnit", "MambapyUnit"]
