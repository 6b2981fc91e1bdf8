"""Recurrent units with exact, selectable conventions.

>>> from rnnmem import cells
>>> unit = cells.build("lstm", input_size=8, hidden_size=32, convention="keras", seed=0)
>>> y, state = unit(torch.randn(100, 2, 8))

See ``base.py`` for the interface, ``conventions.py`` for the conventions and their options.
"""

from __future__ import annotations

from ..errors import ConfigError
from .base import RecurrentUnit, State, hard_sigmoid, resolve_dtype
from .conventions import CONVENTION_DOCS, CONVENTIONS, OPTION_DOCS, Convention, resolve
from .custom import CallableUnit
from .gated import GRU, LSTM, RNN
from .nlstm import NestedLSTM
from .wrap import from_module, load_keras, load_tf1

UNITS: dict[str, type] = {"rnn": RNN, "lstm": LSTM, "gru": GRU, "nlstm": NestedLSTM}

UNIT_DOCS: dict[str, str] = {
    "rnn": "Elman RNN; option nonlinearity = tanh | relu",
    "lstm": "LSTM with forget gate (gate order i,f,g,o)",
    "gru": "GRU; option gru_reset = before | after",
    "nlstm": "Nested LSTM (Moniz & Krueger 2018); option depth >= 2",
}

_UNIT_OPTIONS = {"rnn": {"nonlinearity"}, "nlstm": {"depth"}}


def register(name: str, cls: type, doc: str = "", options: set[str] | None = None) -> None:
    """Make a unit class buildable by name: the one registry of units.

    Parameters
    ----------
    name : str, the name ``build`` and ``rnnmem cells`` use (also the class's ``kind``).
    cls : a ``RecurrentUnit`` subclass (see docs/api.md, "a new unit in one file").
    doc : str, one line for ``rnnmem cells``.
    options : set of str, the keyword options ``build`` passes to ``cls`` (e.g. ``{"depth"}``).

    Returns
    -------
    None
        ``UNITS``, ``UNIT_DOCS`` and the option table are updated in place; registering an existing
        name replaces it.
    """
    UNITS[name] = cls
    UNIT_DOCS[name] = doc
    _UNIT_OPTIONS[name] = set(options or ())


#: capability -> unit kind -> kernel: faster implementations that other layers provide for a unit
#: (e.g. ``train.fastseq`` registers its hand-differentiated training kernels as "fast_forward");
#: found here by the unit's kind, so the unit itself never imports them.
KERNELS: dict[str, dict[str, object]] = {}


def register_kernel(capability: str, kind: str, kernel) -> None:
    """Register ``kernel`` as the ``capability`` implementation for units of ``kind``.

    Parameters
    ----------
    capability : str, e.g. ``"fast_forward"`` (``train.fastseq``'s training kernels).
    kind : str, a registered unit name.
    kernel : callable, the implementation (its signature is the capability's).

    Returns
    -------
    None
        ``KERNELS[capability][kind]`` is set (replacing an earlier kernel); units of ``kind`` then
        list ``capability`` in ``capabilities()``.
    """
    KERNELS.setdefault(capability, {})[kind] = kernel


def kernel_for(capability: str, kind: str):
    """The registered ``capability`` kernel for units of ``kind``, or None.

    Parameters
    ----------
    capability : str
        E.g. ``"fast_forward"``.
    kind : str
        A unit's ``kind`` (its registered name).

    Returns
    -------
    object or None
        What :func:`register_kernel` registered for the pair; None when nothing was.
    """
    return KERNELS.get(capability, {}).get(kind)


def build(name: str, input_size: int, hidden_size: int, layers: int = 1, convention: str = "torch",
          dtype="float32", seed: int | None = None, seeds: list[int] | None = None, device=None,
          **options) -> RecurrentUnit:
    """Build unit ``name``; ``options`` are unit options (e.g. ``depth``) and convention overrides
    (``gate_activation``, ``gru_reset``, ``init``, ``forget_bias``, ``forget_shift``, ``chrono_tmax``).

    Parameters
    ----------
    name : str
        A registered unit (``list_units()``: ``rnn``, ``lstm``, ``gru``, ``nlstm``, ``mamba``, ...).
    input_size : int
        I, the width of x_t (positive).
    hidden_size : int
        H, the hidden width of every layer (positive).
    layers : int
        Number of stacked layers (default 1); layer l + 1 reads layer l's output.
    convention : str or Convention
        ``"torch"`` (default), ``"keras"``, ``"keras2"`` or ``"tf1"`` (see ``conventions.py``).
    dtype : str or torch.dtype
        ``"float32"`` (default) or ``"float64"``.
    seed : int, optional
        Seed of the initialisation (default: a random one, recorded by ``describe()``).
    seeds : list of int, optional
        Build an ensemble of ``len(seeds)`` networks, member e initialised as ``seed=seeds[e]``
        would; not together with ``seed``.
    device : torch.device or str, optional
        ``"cpu"`` (default), ``"cuda"`` or ``"cuda:N"``.
    **options
        The unit's own options (those it was registered with) and convention overrides (None
        values of the latter are ignored).

    Returns
    -------
    RecurrentUnit
        A new ``UNITS[name]`` instance.

    Raises
    ------
    ConfigError
        For an unknown unit, convention or option, an option that belongs to another unit, or a
        value the unit or the convention rejects.
    """
    if not isinstance(name, str) or name not in UNITS:
        raise ConfigError(f"unknown cell {name!r}; choose one of {', '.join(UNITS)}")
    own = {k: options.pop(k) for k in list(options) if k in _UNIT_OPTIONS.get(name, set())}
    for key in options:
        owners = [u for u, opts in _UNIT_OPTIONS.items() if key in opts]
        if owners:
            raise ConfigError(
                f"option {key!r} does not apply to cell {name!r}; it is an option of {', '.join(owners)}"
            )
    conv = resolve(convention, **options)
    return UNITS[name](input_size, hidden_size, layers=layers, convention=conv, dtype=dtype,
                       seed=seed, seeds=seeds, device=device, **own)


def check_unit_names(names) -> None:
    """One clear ``ConfigError`` unless ``names`` is a non-empty list of registered unit names.

    Parameters
    ----------
    names : sequence of str.

    Returns
    -------
    None

    Raises
    ------
    ConfigError
        When ``names`` is empty or names an unregistered unit.
    """
    if not names:
        raise ConfigError("give at least one unit")
    for name in names:
        if name not in UNITS:
            raise ConfigError(f"unknown unit {name!r}; choose from {', '.join(UNITS)}")


def list_units() -> dict[str, str]:
    """The registered units with their one-line descriptions (what ``rnnmem cells`` lists).

    Returns
    -------
    dict of str to str
        A copy of ``UNIT_DOCS``: unit name -> description.
    """
    return dict(UNIT_DOCS)


__all__ = [
    "build", "check_unit_names", "register_kernel", "kernel_for", "KERNELS", "from_module", "load_keras", "load_tf1", "list_units", "register", "resolve",
    "RecurrentUnit", "CallableUnit", "State", "Convention", "CONVENTIONS", "CONVENTION_DOCS",
    "OPTION_DOCS", "UNITS", "RNN", "LSTM", "GRU", "NestedLSTM", "hard_sigmoid", "resolve_dtype",
]
from . import memory  # noqa: E402,F401  (registers mrnnf, mrnn, mlstmf, mlstm, rnn2, rwa)
from . import mamba  # noqa: E402,F401  (registers mamba)
from . import xlstm  # noqa: E402,F401  (registers xlstm_s, xlstm_m)
from . import minrnn  # noqa: E402,F401  (registers mingru, minlstm)
from . import lru  # noqa: E402,F401  (registers lru)
from . import s4d  # noqa: E402,F401  (registers s4d)


def from_hf(model):
    """Wrap a Hugging Face recurrent model (Mamba, Mamba2, RWKV, xLSTM) as a unit; needs the
    ``hf`` extra. See ``rnnmem.cells.adapters`` (imported only when called).

    Parameters
    ----------
    model : nn.Module
        ``MambaModel``, ``Mamba2Model``, ``FalconMambaModel``, ``RwkvModel``, ``xLSTMModel`` or their
        ``*ForCausalLM`` (the backbone is used).

    Returns
    -------
    CallableUnit
        Input embeddings ``[T, B, d_model]``, output the last hidden state ``[T, B, d_model]``, state
        components ``[layers, B, F]``.

    Raises
    ------
    ConfigError
        Without ``transformers``, or for a model the adapter does not know.
    """
    from .adapters import from_hf as _from_hf

    return _from_hf(model)


def from_mambapy(model):
    """Wrap a ``mambapy.mamba.Mamba`` as a unit; needs the ``mambapy`` extra. See
    ``rnnmem.cells.adapters`` (imported only when called).

    Parameters
    ----------
    model : nn.Module
        A ``mambapy.mamba.Mamba``, or a ``mambapy.lm.LM`` (its ``mamba`` attribute is used).

    Returns
    -------
    CallableUnit
        Stepping ``model.step``: input ``[T, B, d_model]``, state ``conv`` / ``ssm`` laid out as
        rnnmem's ``mamba`` unit lays them out.

    Raises
    ------
    ConfigError
        Without ``mambapy``, or for another kind of model.
    """
    from .adapters import from_mambapy as _from_mambapy

    return _from_mambapy(model)
