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

from dataclasses import asdict, dataclass, replace

from ..errors import ConfigError

GATE_ACTIVATIONS = ("sigmoid", "hard_sigmoid")
GRU_RESETS = ("before", "after")
INITS = ("torch", "keras", "tf1", "chrono")


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
    "tf1": "TF1 GRUCell / BasicLSTMCell: glorot_uniform on [x, h] kernels, GRU gate bias 1, "
    "LSTM forget bias +1 added at every step.",
}

OPTION_DOCS = {
    "gate_activation": "sigmoid | hard_sigmoid (0.2x+0.5 clipped)",
    "gru_reset": "before | after: where the GRU reset gate is applied",
    "init": "torch | keras | tf1 | chrono (Tallec & Ollivier 2018; max timescale chrono_tmax)",
    "forget_bias": "initial value of the LSTM forget-gate bias (keras unit_forget_bias = 1)",
    "forget_shift": "constant added to the forget-gate pre-activation at every step (TF1 forget_bias)",
    "chrono_tmax": "max timescale for init=chrono",
}


def resolve(name: str = "torch", **overrides) -> Convention:
    """Convention ``name`` with options overridden; unknown names or values raise ConfigError."""
    if isinstance(name, Convention):
        base = name
    else:
        if name not in CONVENTIONS:
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
    if clean.get("gate_activation", base.gate_activation) not in GATE_ACTIVATIONS:
        raise ConfigError(f"gate_activation must be one of {GATE_ACTIVATIONS}")
    if clean.get("gru_reset", base.gru_reset) not in GRU_RESETS:
        raise ConfigError(f"gru_reset must be one of {GRU_RESETS}")
    if clean.get("init", base.init) not in INITS:
        raise ConfigError(f"init must be one of {INITS}")
    if clean.get("chrono_tmax", base.chrono_tmax) <= 1:
        raise ConfigError("chrono_tmax must be > 1")
    return replace(base, **clean)
