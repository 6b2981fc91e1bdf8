"""The one interface every recurrent unit in rnnmem implements.

A unit maps an input sequence ``x[T, B, I]`` and a state to outputs ``y[T, B, H]`` (the top layer's
h) and the final state. A *state* is a tuple of tensors, one per named component
(``unit.state_names``, e.g. ``("h", "c")``), each shaped ``[layers, B, H]``.

Ensembles: a unit built with ``seeds=[s1, ..., sE]`` holds E independently initialised copies
whose weights carry a leading ensemble dimension; inputs are then ``x[T, E, B, I]``, outputs
``y[T, E, B, H]`` and state components ``[layers, E, B, H]``. Member e computes exactly what the
unit built with ``seed=s_e`` computes. One batched computation serves all seeds.

Parameters use the ``x @ W`` layout: ``W_x[I, G*H]``, ``W_h[H, G*H]``, one bias ``b[G*H]`` and,
for conventions with two biases, ``b_h[G*H]``. Gate order is PyTorch's (LSTM i,f,g,o; GRU r,z,n).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import threading
import numbers
from typing import Callable, Iterable

import torch
from torch import nn

from ..errors import ConfigError, InputError
from ..devices import resolve_device
from . import init as winit
from .conventions import Convention

State = tuple[torch.Tensor, ...]

_LOCAL = threading.local()


@contextlib.contextmanager
def python_loop():
    """Force the Python step loop: a context manager for tracing a unit with ``torch.func``.

    Within this block units run their Python step loop (never the fused kernel nor the compiled
    loop): what ``torch.func`` transforms (``jacrev``, ``vmap``) need to trace a step. Units' own
    fast paths that check it are off too (S4D's FFT path, mamba's compiled loops, the minGRU /
    minLSTM scans), and ``forward`` skips its NaN test of the input (a value test cannot be traced).
    The setting is thread-local; blocks nest (leaving one restores the setting it found).

    Yields
    ------
    None
        Control passes to the body of the ``with`` block.
    """
    before = getattr(_LOCAL, "python_only", False)
    _LOCAL.python_only = True
    try:
        yield
    finally:
        _LOCAL.python_only = before

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def resolve_dtype(dtype) -> torch.dtype:
    """The floating dtype a unit computes in, from its name or a torch dtype.

    Parameters
    ----------
    dtype : str or torch.dtype
        ``"float32"`` or ``"float64"``, or ``torch.float32`` / ``torch.float64``.

    Returns
    -------
    torch.dtype
        ``torch.float32`` or ``torch.float64``.

    Raises
    ------
    ConfigError
        For any other dtype or name (float16, bfloat16, integer types, ...).
    """
    if isinstance(dtype, torch.dtype):
        if dtype not in (torch.float32, torch.float64):
            raise ConfigError(f"dtype must be float32 or float64, got {dtype}")
        return dtype
    if dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return DTYPES[dtype]


def _check_seed(value, name: str) -> None:
    """Seeds are non-negative integers (Python or NumPy ints, or integral floats)."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    ok = ok or (isinstance(value, float) and math.isfinite(value) and value == int(value))
    if not ok:
        raise ConfigError(f"{name} must be non-negative integers, got {value!r}")
    if value < 0:
        raise ConfigError(f"{name} must be non-negative integers, got {value!r}")


def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """Keras 2.2.4's hard sigmoid: clip(0.2 x + 0.5, 0, 1).

    Parameters
    ----------
    x : Tensor
        Pre-activations, any shape.

    Returns
    -------
    Tensor
        Same shape and dtype as ``x``, values in [0, 1] (0 for x <= -2.5, 1 for x >= 2.5).
    """
    return torch.clamp(0.2 * x + 0.5, 0.0, 1.0)


class RecurrentUnit(nn.Module):
    """Base class: stacked layers, a step loop, and (where exact) a fused PyTorch kernel."""

    kind = "base"
    gates = 1
    state_names: tuple[str, ...] = ("h",)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        layers: int = 1,
        convention: Convention | None = None,
        dtype=torch.float32,
        seed: int | None = None,
        seeds: list[int] | None = None,
        device=None,
    ):
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size), ("layers", layers)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = layers
        self.convention = convention
        self.dtype = resolve_dtype(dtype)
        if seeds is not None and seed is not None:
            raise ConfigError("give either seed or seeds, not both")
        if seeds is not None:
            seeds = list(seeds)
            if not seeds:
                raise ConfigError("seeds must not be empty")
            for s in seeds:
                _check_seed(s, "seeds")
            seeds = [int(s) for s in seeds]
        if seed is not None:
            _check_seed(seed, "seed")
            seed = int(seed)
        self.seeds = seeds
        self.ensemble = len(seeds) if seeds is not None else None
        if seed is None and seeds is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
        self.seed = seed
        self.use_fused = True
        self.layer_params = nn.ModuleList()
        member_seeds = seeds if seeds is not None else [seed]
        member_params = [self._init_member(torch.Generator().manual_seed(s)) for s in member_seeds]
        for layer in range(layers):
            holder = nn.Module()
            for name in member_params[0][layer]:
                tensors = [m[layer][name] for m in member_params]
                if self.ensemble is None:
                    value = tensors[0]
                else:
                    value = torch.stack(tensors)
                    if name.startswith("b"):
                        value = value.unsqueeze(-2)  # [E, 1, G*H] broadcasts over the batch
                holder.register_parameter(name, nn.Parameter(value.contiguous()))
            self.layer_params.append(holder)
        if device is not None:
            self.to(resolve_device(device))

    # ----------------------------------------------------------------- construction
    def layer_input_size(self, layer: int) -> int:
        """Width of the inputs layer ``layer`` reads: ``input_size`` for layer 0, ``hidden_size`` above.

        Parameters
        ----------
        layer : int
            Layer index, 0 for the first layer.

        Returns
        -------
        int
            I_l, the number of rows of that layer's ``W_x``.
        """
        return self.input_size if layer == 0 else self.hidden_size

    def _init_member(self, gen: torch.Generator) -> list[dict[str, torch.Tensor]]:
        """Parameters of one ensemble member: a dict per layer, tensors without ensemble dim."""
        out = []
        for layer in range(self.num_layers):
            out.append(self._init_layer(layer, gen))
        return out

    def _init_layer(self, layer: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        conv = self.convention
        I, H, G, dt = self.layer_input_size(layer), self.hidden_size, self.gates, self.dtype
        p: dict[str, torch.Tensor] = {}
        if conv.init == "torch":
            bound = 1.0 / H**0.5
            p["W_x"] = winit.uniform((G * H, I), bound, gen, dt).T
            p["W_h"] = winit.uniform((G * H, H), bound, gen, dt).T
            p["b"] = winit.uniform((G * H,), bound, gen, dt)
            b_h = winit.uniform((G * H,), bound, gen, dt)
        elif conv.init == "tf1":
            # TF1 cells keep one kernel over [x, h] per block (GRUCell: gates and candidate),
            # each glorot_uniform over its own (fan_in, fan_out).
            kernel = torch.cat(
                [winit.glorot_uniform((I + H, k * H), gen, dt) for k in self._tf1_kernel_blocks()], dim=1
            )
            p["W_x"], p["W_h"] = kernel[:I], kernel[I:]
            p["b"] = torch.zeros(G * H, dtype=dt)
            b_h = torch.zeros(G * H, dtype=dt)
        else:  # keras and chrono: glorot kernel, orthogonal recurrent kernel (glorot: glorot recurrent kernel)
            p["W_x"] = winit.glorot_uniform((I, G * H), gen, dt)
            rec = winit.glorot_uniform if conv.init == "glorot" else winit.orthogonal
            p["W_h"] = rec((H, G * H), gen, dt)
            p["b"] = torch.zeros(G * H, dtype=dt)
            b_h = torch.zeros(G * H, dtype=dt)
        self._adjust_biases(p, b_h, gen)
        if self._has_second_bias():
            p["b_h"] = b_h
        return {k: v.contiguous() for k, v in p.items()}

    def _tf1_kernel_blocks(self) -> tuple[int, ...]:
        """Gate counts of the separately initialised TF1 kernels (one kernel by default)."""
        return (self.gates,)

    def _has_second_bias(self) -> bool:
        return self.convention.two_biases

    def _adjust_biases(self, p, b_h, gen) -> None:
        """Unit-specific bias rules (forget bias, chrono, TF1 GRU gate bias)."""

    # ----------------------------------------------------------------- state
    def state_width(self, name: str) -> int:
        """Trailing width F of state component ``name`` (default: the hidden size). A unit whose
        state is laid out differently overrides this (or :meth:`state_shape`); ``init_state`` and
        the input checks then follow.

        Parameters
        ----------
        name : str
            A state component, one of ``state_names``.

        Returns
        -------
        int
            F, the last dimension of that component.
        """
        return self.hidden_size

    def state_shape(self, name: str, batch: int) -> tuple[int, ...]:
        """Shape of state component ``name`` for ``batch`` sequences: ``[layers, (E,) B, F]``.

        Parameters
        ----------
        name : str
            A state component, one of ``state_names``.
        batch : int
            B, the number of sequences.

        Returns
        -------
        tuple of int
            ``(layers, B, F)``, or ``(layers, E, B, F)`` for an ensemble, with F = ``state_width(name)``.
        """
        ens = (self.ensemble,) if self.ensemble else ()
        return (self.num_layers,) + ens + (batch, self.state_width(name))

    def init_state(self, batch: int, device=None, dtype=None) -> State:
        """Zero state: a tuple of ``state_shape(name, batch)`` tensors, one per ``state_names``.

        Units whose state does not start at zero override this (``rwa``: h_0 = tanh(s), l_0 = -1e30;
        ``xlstm_m``: m_0 = -1e30).

        Parameters
        ----------
        batch : int
            B, the number of sequences (positive).
        device : torch.device or str, optional
            Where to allocate the state (default: the parameters' device).
        dtype : torch.dtype, optional
            Its dtype (default: the parameters' dtype).

        Returns
        -------
        State
            Tuple of zero tensors in ``state_names`` order, component ``name`` shaped
            ``state_shape(name, batch)`` = ``[layers, (E,) B, F]``.

        Raises
        ------
        ConfigError
            When ``batch`` is not a positive integer.
        """
        if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
            raise ConfigError(f"batch must be a positive integer, got {batch!r}")
        ref = self.layer_params[0].W_x
        return tuple(torch.zeros(self.state_shape(name, batch), device=device or ref.device, dtype=dtype or ref.dtype)
                     for name in self.state_names)

    # ----------------------------------------------------------------- protocol: flat state
    def _state_batch_dim(self) -> int:
        """Index of the batch dimension in every state component: ``[layers, (E,) B, ...]``."""
        return 2 if self.ensemble else 1

    def state_vector(self, state: State) -> torch.Tensor:
        """The full state flattened per sequence: ``[(E,) B, D]``.

        Components in ``state_names`` order, each laid out as (layer, features); the inverse is
        :meth:`state_from_vector`. Probes that need the whole state as one vector (divergence,
        Jacobians of the step map) use this pair, never the components' layout.

        Parameters
        ----------
        state : tuple of tensors, each ``[layers, (E,) B, *features]``.

        Returns
        -------
        Tensor ``[(E,) B, D]`` with ``D = sum_k layers * prod(features_k)``.
        """
        b = self._state_batch_dim()
        parts = []
        for s in state:
            moved = s.movedim(0, b)  # [(E,) B, layers, *features]
            parts.append(moved.reshape(*moved.shape[: b], -1))
        return torch.cat(parts, dim=-1)

    def state_from_vector(self, z: torch.Tensor) -> State:
        """Inverse of :meth:`state_vector`: ``z[(E,) B, D]`` back to the component tuple.

        Parameters
        ----------
        z : Tensor ``[(E,) B, D]``.

        Returns
        -------
        tuple of tensors shaped like ``init_state(B)``'s components.

        Raises
        ------
        InputError
            When D is not this unit's state length (:meth:`state_size`).
        """
        b = self._state_batch_dim()
        batch = z.shape[b - 1]
        out, off = [], 0
        for name in self.state_names:  # shapes only: no template state is allocated (a hot path)
            shape = self.state_shape(name, batch)
            moved_shape = shape[1: b + 1] + shape[:1] + shape[b + 1:]  # [(E,) B, layers, *features]
            size = math.prod(moved_shape[b:])
            out.append(z[..., off: off + size].reshape(moved_shape).movedim(b, 0))
            off += size
        if off != z.shape[-1]:
            raise InputError(f"state vector has {z.shape[-1]} entries, this unit's state has {off}")
        return tuple(out)

    def state_size(self) -> int:
        """``D``, the length of :meth:`state_vector` for one sequence.

        Returns
        -------
        int
            ``D = sum_k layers * prod(features_k)`` over the state components.
        """
        z = self.state_vector(self.init_state(1))
        return int(z.shape[-1])

    def member(self, e: int) -> "RecurrentUnit":
        """Network ``e`` of an ensemble as a single unit (a copy): its parameters are slice ``e`` of
        the ensemble's, so it computes exactly what member ``e`` computes. Units whose ensemble
        parameters are not stacked the way ``__init__`` stacks them (a leading E dimension, biases
        named ``b*`` with a broadcast dimension before the last) override this.

        Parameters
        ----------
        e : int, 0 <= e < ensemble.

        Returns
        -------
        RecurrentUnit with ``ensemble=None`` and ``seed = seeds[e]``.

        Raises
        ------
        ConfigError
            When this unit is not an ensemble, or ``e`` is not an int in 0..E-1.
        """
        if not self.ensemble:
            raise ConfigError("member() takes an ensemble unit (built with seeds=[...])")
        if not isinstance(e, int) or not 0 <= e < self.ensemble:
            raise ConfigError(f"member index must be 0..{self.ensemble - 1}, got {e!r}")
        one = copy.deepcopy(self)
        for holder in one.layer_params:
            for name, p in list(holder._parameters.items()):
                value = p.detach()[e]
                if name.startswith("b") and value.dim() >= 2 and value.shape[-2] == 1:
                    value = value.squeeze(-2)
                holder._parameters[name] = nn.Parameter(value.clone().contiguous(), requires_grad=p.requires_grad)
        one.ensemble, one.seed, one.seeds = None, self.seeds[e], None
        return one

    def capabilities(self) -> frozenset:
        """What this unit can do beyond the protocol, for probes to query instead of testing
        ``kind`` strings: ``"ensemble"`` (built with ``seeds=``: inputs carry an E dimension),
        ``"fused"`` (torch's fused kernel computes it), ``"native"`` (a compiled step loop),
        ``"cell_step"`` (one layer's step on ``[layers, B, H]`` states via ``_cell_step``),
        ``"scan"`` (an exact parallel scan for the sequence form), and every capability another layer
        registered a kernel for (``cells.register_kernel``; e.g. ``"fast_forward"``, the training
        kernels of ``train.fastseq``, once that module is imported).

        Returns
        -------
        frozenset of str
            The capability names that apply to this unit.
        """
        caps = set()
        if self.ensemble:
            caps.add("ensemble")
        try:
            if self.fusable():
                caps.add("fused")
        except Exception:  # noqa: BLE001 - a unit whose convention cannot fuse
            pass
        if type(self)._native_layer is not RecurrentUnit._native_layer:
            caps.add("native")
        if type(self)._cell_step is not RecurrentUnit._cell_step:
            caps.add("cell_step")
        if getattr(self, "has_scan", False):
            caps.add("scan")
        from . import KERNELS

        caps.update(cap for cap, kinds in KERNELS.items() if self.kind in kinds)
        return frozenset(caps)

    def describe(self) -> dict:
        """Full configuration of this unit, JSON-serialisable (recorded with every run).

        Returns
        -------
        dict
            ``cell`` (the kind), ``input_size``, ``hidden_size``, ``layers``, ``dtype`` (``"float32"`` or
            ``"float64"``), ``seed`` (None for an ensemble; the drawn seed when none was given),
            ``seeds`` (None unless an ensemble), ``convention`` (its options as a dict, or None), then
            the unit's own options (e.g. ``nonlinearity``, ``depth``, ``K``, ``state_size``).
        """
        return {
            "cell": self.kind,
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "layers": self.num_layers,
            "dtype": str(self.dtype).replace("torch.", ""),
            "seed": self.seed,
            "seeds": self.seeds,
            "convention": self.convention.as_dict() if self.convention else None,
            **self._extra_describe(),
        }

    def _extra_describe(self) -> dict:
        return {}

    # ----------------------------------------------------------------- validation
    def _check_input(self, x: torch.Tensor, state: State | None) -> None:
        want = 4 if self.ensemble else 3
        if not isinstance(x, torch.Tensor):
            raise InputError(f"input must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != want:
            layout = "[T, E, B, I]" if self.ensemble else "[T, B, I]"
            raise InputError(f"input must have shape {layout}, got {tuple(x.shape)}")
        if x.shape[-1] != self.input_size:
            raise InputError(
                f"input width {x.shape[-1]} does not match the unit's input_size {self.input_size}"
            )
        if self.ensemble and x.shape[1] != self.ensemble:
            raise InputError(f"input ensemble dim {x.shape[1]} != ensemble size {self.ensemble}")
        if not torch.is_floating_point(x):
            raise InputError(f"input must be floating point, got {x.dtype}")
        if x.numel() == 0:
            raise InputError(f"input is empty (shape {tuple(x.shape)}); give at least one step and one sequence")
        # one reduction when all is well; skipped inside ``python_loop`` (the probes' torch.func
        # transforms, whose inputs were checked at the probe's entry: a value test cannot be traced)
        if not getattr(_LOCAL, "python_only", False) and not torch.isfinite(x.sum()) and torch.isnan(x).any():
            raise InputError("input contains NaN values; clean or impute the data first")
        if state is not None:
            if not isinstance(state, (tuple, list)) or len(state) != len(self.state_names):
                got = len(state) if isinstance(state, (tuple, list)) else type(state).__name__
                raise InputError(
                    f"state must be a tuple of {len(self.state_names)} tensors {self.state_names}, got {got}"
                )
            for name, s in zip(self.state_names, state):
                want_shape = self.state_shape(name, x.shape[-2])
                if not isinstance(s, torch.Tensor) or tuple(s.shape) != want_shape:
                    got = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
                    raise InputError(
                        f"state component {name!r} must have shape {want_shape} "
                        f"([layers, {'E, ' if self.ensemble else ''}B, F]), got {got}"
                    )

    # ----------------------------------------------------------------- compute
    def fusable(self) -> bool:
        """True when torch's fused RNN kernel computes exactly this configuration.

        :meth:`forward` then runs that kernel, unless ``use_fused`` is False, per-step states are
        asked for or a :func:`python_loop` block is active.

        Returns
        -------
        bool
            False here (no fused kernel); ``rnn``, ``lstm`` and ``gru`` override it.
        """
        return False

    def forward(self, x: torch.Tensor, state: State | None = None, return_all_states: bool = False):
        """Run the sequence. Returns ``(y, state)`` or, with ``return_all_states``,
        ``(y, state, states)`` where ``states`` holds every component at every step,
        each ``[T, layers, (E,) B, H]``.

        ``x`` and ``state`` are moved to the parameters' device and dtype. ``self.last_path`` records
        which arithmetic ran: ``"fused"`` (torch's kernel, see :meth:`fusable`), ``"compiled"``
        (``_native.py``), ``"python"`` (the step loop), a ``+``-joined mix of them across layers, or
        a unit's own sequence form (``"scan"``, ``"fft"``, ``"parallel"``, ...).

        Parameters
        ----------
        x : Tensor
            Inputs ``[T, B, I]``, or ``[T, E, B, I]`` for an ensemble; floating point, no NaN.
        state : State, optional
            The state to start from: a tuple of ``state_shape(name, B)`` tensors in ``state_names``
            order. None: :meth:`init_state`.
        return_all_states : bool
            Also return every step's state (default False; never runs the fused kernel).

        Returns
        -------
        y : Tensor
            Outputs of the top layer, ``[T, (E,) B, H]`` (H the output width: ``hidden_size``, or
            ``out_features`` for the memory units with ``output_size``).
        state : State
            The final state, shaped like the initial one.
        states : tuple of Tensor
            Only with ``return_all_states``: component k at every step, ``[T, layers, (E,) B, F_k]``
            (the component's shape with a leading T).

        Raises
        ------
        InputError
            When ``x`` is not a floating-point tensor of the right rank, width and ensemble size, is
            empty or contains NaN, or when ``state`` does not have the components and shapes above.
        """
        self._check_input(x, state)
        ref = self.layer_params[0].W_x  # the device and dtype follow the parameters
        x = x.to(device=ref.device, dtype=ref.dtype)
        if state is None:
            state = self.init_state(x.shape[-2])
        else:
            state = tuple(s.to(device=ref.device, dtype=ref.dtype) for s in state)
        if self.use_fused and not return_all_states and not getattr(_LOCAL, "python_only", False) \
                and self.fusable():
            self.last_path = "fused"
            return self._forward_fused(x, state)
        return self._forward_loop(x, state, return_all_states)

    def step(self, x_t: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """One time step: ``x_t[(E,) B, I] -> (h_t[(E,) B, H], state)``.

        :meth:`forward` on a one-step sequence.

        Parameters
        ----------
        x_t : Tensor
            Input of one step, ``[B, I]``, or ``[E, B, I]`` for an ensemble.
        state : State, optional
            The state before the step (as for :meth:`forward`); None: :meth:`init_state`.

        Returns
        -------
        h_t : Tensor
            Output of the top layer, ``[(E,) B, H]``.
        state : State
            The state after the step.

        Raises
        ------
        InputError
            As :meth:`forward`.
        """
        y, st = self.forward(x_t.unsqueeze(0), state)
        return y[0], st

    def _forward_loop(self, x, state, return_all_states):
        inputs = x
        new_state = [[] for _ in self.state_names]
        all_states = [[] for _ in self.state_names] if return_all_states else None
        native = self._native_ok(inputs, state)
        paths = set()
        for layer in range(self.num_layers):
            st = tuple(s[layer] for s in state)
            block = self._native_layer(layer, inputs, st, return_all_states) if native else None
            paths.add("compiled" if block is not None else "python")
            if block is not None:  # the compiled loop ran all steps of this layer (see _native.py)
                inputs, st, seq = block
                for k, s in enumerate(st):
                    new_state[k].append(s)
                if all_states is not None:
                    for k in range(len(self.state_names)):
                        all_states[k].append(seq[k])
                continue
            steps, step = self._layer_stepper(layer, inputs)  # input projection for all steps at once
            outs = []
            per_step = [] if return_all_states else None
            if per_step is None:
                for xp_t in steps:
                    h, st = step(xp_t, st)
                    outs.append(h)
            else:
                for xp_t in steps:
                    h, st = step(xp_t, st)
                    outs.append(h)
                    per_step.append(st)
            inputs = torch.stack(outs)
            for k, s in enumerate(st):
                new_state[k].append(s)
            if all_states is not None:
                for k in range(len(self.state_names)):
                    all_states[k].append(torch.stack([s[k] for s in per_step]))
        # which arithmetic ran (results at exact tolerance depend on it): fused | compiled | python
        self.last_path = paths.pop() if len(paths) == 1 else "+".join(sorted(paths))
        final = tuple(torch.stack(s) for s in new_state)
        if all_states is not None:
            return inputs, final, tuple(torch.stack(s, dim=1) for s in all_states)
        return inputs, final

    # Above about this many recurrent multiply-adds per step (gates * H * H * rows, rows = E * B) the
    # compiled loop's plain-C product loses to BLAS. Measured (CPU time, 1 thread, keras convention):
    # compiled faster at LSTM H = 32 B = 32 (131k: 23 vs 43 us/step), GRU H = 192 B = 2 (221k: 25 vs
    # 31); slower at GRU H = 32 B = 128 (393k: 94 vs 71), GRU H = 256 B = 2 (393k: 43 vs 39).
    native_max_work = 2**18
    # Ensembles with at most 2 rows per member (the forgetting probe's pair of streams) batch one
    # tiny product per member (``baddbmm``), where BLAS gains little: there the compiled loop wins up
    # to this many multiply-adds per member and step. Measured (wall, 1 thread, keras convention,
    # E = 10, B = 2): LSTM H = 64 54 vs 67 us/step, H = 128 176 vs 293; GRU H = 128 114 vs 151;
    # E = 3, H = 256: LSTM 168 vs 305, GRU 133 vs 168. With 8 or more rows per member BLAS wins
    # (E = 10, B = 8, H = 64: LSTM 202 vs 185, GRU 208 vs 123), so those keep ``native_max_work``.
    native_ensemble_max_work = 2**20
    native_ensemble_rows = 2

    def _native_ok(self, x: torch.Tensor, state: State) -> bool:
        """Whether the compiled step loops may run: ``use_native``, CPU, float32/64, no gradient
        needed (grad mode off, or neither parameters, inputs nor state require one), small
        enough (``native_max_work``; for ensembles with at most ``native_ensemble_rows`` rows per
        member, ``native_ensemble_max_work`` per member), the step not patched on the instance, and
        the library built
        (``_native.library()``)."""
        if not getattr(self, "use_native", True) or x.device.type != "cpu":
            return False
        if getattr(_LOCAL, "python_only", False):
            return False
        if "_layer_stepper" in self.__dict__ or "_cell_step" in self.__dict__:
            return False  # patched on the instance (e.g. float16 emulation): its own loop runs
        if x.dtype not in (torch.float32, torch.float64):
            return False
        rows = math.prod(x.shape[1:-1])
        per_row = self.gates * self.hidden_size * self.hidden_size
        if per_row * rows > self.native_max_work:
            member_rows = x.shape[-2]
            if not (getattr(self, "ensemble", None) and x.dim() == 4 and member_rows <= self.native_ensemble_rows
                    and per_row * member_rows <= self.native_ensemble_max_work):
                return False
        if torch.is_grad_enabled() and (
            x.requires_grad or any(s.requires_grad for s in state) or any(p.requires_grad for p in self.parameters())
        ):
            return False
        from . import _native

        return _native.library() is not None

    def _native_layer(self, layer: int, inputs: torch.Tensor, st: State, keep_all: bool):
        """All steps of layer ``layer`` in the compiled loop: ``(outputs[T, (E,) B, H], final
        state, per-step state components [T, (E,) B, H] each, or None)``; None when this unit
        has no compiled loop (the Python loop runs)."""
        return None

    def _project(self, x: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``x W + b`` for a whole sequence. Ensembles use one batched product over members
        (``torch.matmul`` would broadcast W across T, materialising T copies of it)."""
        if self.ensemble:
            return torch.einsum("tebi,eig->tebg", x, W) + b
        return torch.matmul(x, W) + b

    def _layer_stepper(self, layer: int, inputs: torch.Tensor) -> tuple[Iterable, Callable]:
        """``(steps, step)`` for one layer: ``steps`` yields, per time step, what ``step`` takes
        (by default ``xp_t`` of ``xp = inputs W_x + b``, projected for all steps at once) and
        ``step(xp_t, st) -> (h, st)``. The default steps with ``_cell_step``; built-in units
        return a faster closure (parameters fetched once, constant biases folded into the
        projection, gates pre-split) computing the same equations, unless a subclass overrides
        ``_cell_step`` (then this default is used, so overriding ``_cell_step`` is enough)."""
        p = self.layer_params[layer]
        return self._project(inputs, p.W_x, p.b).unbind(0), functools.partial(self._cell_step, layer)

    def _cell_step(self, layer: int, xp_t: torch.Tensor, st: State) -> tuple[torch.Tensor, State]:
        """One step of layer ``layer``; ``xp_t = x_t W_x + b`` is already computed."""
        raise NotImplementedError

    def _forward_fused(self, x, state):
        raise NotImplementedError

    def _gate(self, x: torch.Tensor) -> torch.Tensor:
        if self.convention.gate_activation == "hard_sigmoid":
            return hard_sigmoid(x)
        return torch.sigmoid(x)

    def extra_repr(self) -> str:
        """The one-line summary ``print(unit)`` shows (``nn.Module.extra_repr``).

        Returns
        -------
        str
            ``"<kind>: input_size=I, hidden_size=H, layers=L, convention=<name>, dtype=<dtype>"``, then
            ``", ensemble=E"`` for an ensemble (convention ``-`` when the unit has none).
        """
        conv = self.convention.name if self.convention else "-"
        ens = f", ensemble={self.ensemble}" if self.ensemble else ""
        return (
            f"{self.kind}: input_size={self.input_size}, hidden_size={self.hidden_size}, "
            f"layers={self.num_layers}, convention={conv}, dtype={self.dtype}{ens}"
        )
