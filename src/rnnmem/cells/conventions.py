"""Conventions: the maths and initialisation each framework uses for the same unit name.

A convention is a named bundle of options; every option can be overridden one by one.

| option            | torch            | keras (2.2.4)          | keras2 (TF2 / Keras 3) | tf1 (GRUCell / BasicLSTMCell) |
|-------------------|------------------|------------------------|------------------------|-------------------------------|
| gate_activation   | sigmoid          | hard_sigmoid           | sigmoid                | sigmoid                       |
| gru_reset         | after            | before                 | after                  | before                        |
| init              | torch            | keras                  | keras                  | tf1                           |
| forget_bias       | 0 (init)         | 1 (init, unit_forget)  | 1 (init)               | 0 (init)                      |
| forget_shift      | 0                | 0                      | 0                      | 1 (added at every step)       |
| two_biases        | yes (b_ih, b_hh) | no                     | GRU yes, else no       | no                            |

``hard_sigmoid(x) = clip(0.2 x + 0.5, 0, 1)`` (Keras 2.2.4, ``keras/backend/tensorflow_backend.py``).

GRU ``reset='after'`` (PyTorch, cuDNN, Keras ``reset_after=True``)::

    n = tanh(x W_n + b_n + r * (h U_n + b_hn))

GRU ``reset='before'`` (Keras 2.2.4 default, TF1 ``GRUCell``)::

    n = tanh(x W_n + b_n + (r * h) U_n)

Both update ``h' = z * h + (1 - z) * n`` (TF1 calls z "u").
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, replace

from ..errors import ConfigError

GATE_ACTIVATIONS = ("sigmoid", "hard_sigmoid")
GRU_RESETS = ("before", "after")
INITS = ("torch", "keras", "glorot", "tf1", "chrono")


@dataclass(frozen=True)
class Convention:
    """The resolved options of one convention (see module docstring for the table)."""

    name: str
    gate_activation: str = "sigmoid"
    gru_reset: str = "after"
    init: str = "torch"
    forget_bias: float = 0.0
    forget_shift: float = 0.0
    two_biases: bool = True
    gru_two_biases: bool | None = None  # None: same as two_biases
    chrono_tmax: float = 100.0

    def as_dict(self) -> dict:
        """The options as a plain dict (JSON-serialisable; recorded by ``describe()``).

        Returns
        -------
        dict
            Field name -> value, ``name`` included.
        """
        return asdict(self)


CONVENTIONS: dict[str, Convention] = {
    "torch": Convention("torch", "sigmoid", "after", "torch", 0.0, 0.0, True),
    "keras": Convention("keras", "hard_sigmoid", "before", "keras", 1.0, 0.0, False),
    "keras2": Convention("keras2", "sigmoid", "after", "keras", 1.0, 0.0, False, gru_two_biases=True),
    "tf1": Convention("tf1", "sigmoid", "before", "tf1", 0.0, 1.0, False),
}

CONVENTION_DOCS = {
    "torch": "PyTorch's own maths and default init (U(-1/sqrt(H), 1/sqrt(H)), two biases, GRU reset-after).",
    "keras": "Keras 2.2.4 defaults: glorot_uniform kernel, orthogonal recurrent kernel, one bias, "
    "unit_forget_bias, hard_sigmoid gates, GRU reset-before.",
    "keras2": "TF2 / Keras 3 defaults: as keras with sigmoid gates and GRU reset-after (two GRU biases).",
    "tf1": "TF1 GRUCell / BasicLSTMCell: glorot_uniform on each [x, h] kernel (GRUCell: gates and "
    "candidate kernels), GRU gate bias 1, LSTM forget bias +1 added at every step.",
}

OPTION_DOCS = {
    "gate_activation": "sigmoid | hard_sigmoid (0.2x+0.5 clipped)",
    "gru_reset": "before | after: where the GRU reset gate is applied",
    "init": "torch | keras | glorot (keras with a glorot_uniform recurrent kernel instead of orthogonal) | tf1 | "
    "chrono (Tallec & Ollivier 2018; max timescale chrono_tmax)",
    "forget_bias": "initial value of the LSTM forget-gate bias (keras unit_forget_bias = 1)",
    "forget_shift": "constant added to the forget-gate pre-activation at every step (TF1 forget_bias)",
    "chrono_tmax": "max timescale for init=chrono (> 2; default 100)",
    "two_biases": "true | false: separate input and recurrent biases (PyTorch b_ih, b_hh)",
    "gru_two_biases": "true | false: as two_biases for the GRU only (keras2 reset_after bias (2, 3H))",
}


def resolve(name: str = "torch", **overrides) -> Convention:
    """Convention ``name`` with options overridden; unknown names or values raise ConfigError.

    Parameters
    ----------
    name : str or Convention
        ``"torch"`` (default), ``"keras"``, ``"keras2"``, ``"tf1"``, or a Convention to start from.
    **overrides
        Options to replace (see ``OPTION_DOCS``): ``gate_activation``, ``gru_reset``, ``init``,
        ``forget_bias``, ``forget_shift``, ``chrono_tmax``, ``two_biases``, ``gru_two_biases``; None
        values are ignored.

    Returns
    -------
    Convention
        A new frozen Convention (the base's ``name`` kept); numeric options as floats.

    Raises
    ------
    ConfigError
        For an unknown convention or option, a choice outside its list, a non-finite or non-numeric
        number, a non-bool for the ``*two_biases`` options, or ``chrono_tmax <= 2``.
    """
    if isinstance(name, Convention):
        base = name
    else:
        if not isinstance(name, str) or name not in CONVENTIONS:
            raise ConfigError(
                f"unknown convention {name!r}; choose one of {', '.join(CONVENTIONS)}"
            )
        base = CONVENTIONS[name]
    clean = {k: v for k, v in overrides.items() if v is not None}
    fields = set(base.__dataclass_fields__) - {"name"}
    for key in clean:
        if key not in fields:
            raise ConfigError(
                f"unknown cell option {key!r}; valid options: {', '.join(sorted(fields))}"
            )
    for key, choices in (("gate_activation", GATE_ACTIVATIONS), ("gru_reset", GRU_RESETS), ("init", INITS)):
        if key in clean and clean[key] not in choices:
            raise ConfigError(f"{key} must be one of {', '.join(choices)}; got {clean[key]!r}")
    for key in ("forget_bias", "forget_shift", "chrono_tmax"):
        if key in clean:
            value = clean[key]
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ConfigError(f"{key} must be a finite number, got {value!r}")
            clean[key] = float(value)
    for key in ("two_biases", "gru_two_biases"):
        if key in clean and not isinstance(clean[key], bool):
            raise ConfigError(f"{key} must be true or false, got {clean[key]!r}")
    if clean.get("chrono_tmax", base.chrono_tmax) <= 2:
        raise ConfigError(
            f"chrono_tmax must be > 2 (chrono draws b_f = log U[1, chrono_tmax - 1]), "
            f"got {clean.get('chrono_tmax')!r}"
        )
    return replace(base, **clean)
