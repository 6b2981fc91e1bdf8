"""One contract for every probe.

Every probe is called the same way::

    result = PROBES["forgetting"](model, settings=None, seed=0, device=None, dtype=None, progress=None)

- ``model``: anything the model protocol accepts (``rnnmem.cells.protocol.as_model``): a built-in
  unit (an ensemble too), ``torch.nn.RNN/LSTM/GRU``, or a user's ``nn.Module`` with the minimal
  protocol. :func:`prepare` works on a copy: the caller's model is never moved, cast nor mutated.
- ``settings``: that probe's one pydantic schema (``PROBES[name].settings``), a dict of its fields,
  or ``None`` for the defaults; validated once, before anything is computed (a bad field is one
  ``ConfigError`` naming it and the allowed fields).
- ``seed``: the seed of every random draw the probe makes (inputs, readouts, bootstrap).
- ``device`` / ``dtype``: where and in which precision to compute (default: the model's own).
- ``progress``: ``progress(done, total)`` called as work completes (``total`` may be None).

and returns a :class:`Result` with ``.frame`` (tidy DataFrame), ``.summary()`` (JSON-able headline
numbers), ``.config`` (everything needed to rerun it), ``.wall_s``, ``.plot(ax=None)`` and
``.to_json()``. An ensemble of E networks gives one result whose frame has a ``member`` column and
whose summary lists the members' summaries (probes that batch an ensemble natively do so).

Adding a probe is one function and one :func:`register_probe` call (see docs/api.md).
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict

from ..cells.base import RecurrentUnit, resolve_dtype
from ..cells.protocol import as_model
from ..devices import resolve_device
from ..errors import ConfigError, config_error_from
from .common import check_finite, native_device_dtype


class ProbeSettings(BaseModel):
    """Base of every probe's settings schema: unknown fields are an error, values are checked once."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def clean(value):
    """JSON-safe copy: numpy scalars and arrays to Python, NaN/inf to None (JSON has no NaN).

    Parameters
    ----------
    value : object
        Any value; dicts (keys made ``str``), lists, tuples, numpy arrays and torch tensors are cleaned
        recursively.

    Returns
    -------
    object
        The same structure with numpy/torch numbers as Python ``float``/``int``/``bool``, arrays and
        tensors as lists, non-finite floats as ``None``; other values unchanged.
    """
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [clean(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, torch.Tensor):
        return clean(value.detach().cpu().numpy())
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    return value


@dataclass
class Result:
    """What every probe returns.

    Attributes
    ----------
    probe : str
        The probe's registry name.
    frame : pandas.DataFrame
        The tidy table of what was measured (one row per run, lag, exponent...).
    headline : dict
        Headline numbers (see :meth:`summary`).
    config : dict
        The model's ``describe()``, the validated settings, seed, device and dtype: enough to rerun.
    wall_s : float
        Seconds the probe computed.
    details : dict
        Curves behind the headline (lags, profiles) for plots and the memory card, JSON-able.
    raw : object
        The probe's own detailed result object, when it has one (e.g. ``ForgettingResult``).
    """

    probe: str
    frame: pd.DataFrame
    headline: dict
    config: dict
    wall_s: float
    details: dict = field(default_factory=dict)
    raw: object = None
    plotter: Callable | None = field(default=None, repr=False)

    def summary(self) -> dict:
        """Headline numbers, JSON-serialisable (NaN and inf become None).

        Returns
        -------
        dict
            ``clean(self.headline)``.
        """
        return clean(self.headline)

    def section(self) -> dict:
        """The summary and the curves behind it: the probe's section of the memory card.

        Returns
        -------
        dict
            ``clean({**headline, **details})`` (a details key overrides a headline key of the same name).
        """
        return clean({**self.headline, **self.details})

    def plot(self, ax=None):
        """Draw the probe's main figure on ``ax`` (a new figure when None); returns the axes.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Axes to draw on; None makes a new 5 x 3.2 inch figure (Agg backend unless one is set).

        Returns
        -------
        matplotlib.axes.Axes
            The axes drawn on.

        Raises
        ------
        ConfigError
            The probe registered no plotter.
        """
        import matplotlib

        if ax is None:
            matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt

            _, ax = plt.subplots(figsize=(5, 3.2), constrained_layout=True)
        if self.plotter is None:
            raise ConfigError(f"probe {self.probe!r} has no figure")
        self.plotter(self, ax)
        return ax

    def to_json(self) -> str:
        """The whole result as JSON: probe, config, summary, details, wall time and the frame's records.

        Returns
        -------
        str
            A JSON object with keys ``probe``, ``config``, ``summary``, ``details``, ``wall_s`` and ``frame``
            (the frame as ``{column: [values]}``); NaN/inf written as ``null``.
        """
        return json.dumps(clean({"probe": self.probe, "config": self.config, "summary": self.headline,
                                 "details": self.details, "wall_s": self.wall_s,
                                 "frame": self.frame.to_dict(orient="list")}))


@dataclass(frozen=True)
class Probe:
    """A registered probe: its name, settings schema, the function computing it on one prepared model,
    and whether it batches an ensemble itself.

    ``run(model, settings, *, seed, device, dtype, progress) -> (frame, headline, details, raw)``
    receives a prepared copy of one network (or, with ``ensemble=True``, the whole ensemble).
    """

    name: str
    settings: type
    run: Callable
    doc: str
    plotter: Callable | None = None
    ensemble: bool = False
    in_card: bool = True

    def __call__(self, model, *, settings=None, seed: int = 0, device=None, dtype=None, progress=None) -> Result:
        s = validate_settings(self, settings)
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
        unit, dev, dt = prepare(model, device, dtype)
        check_finite(unit)
        report = _progress(progress)
        start = time.perf_counter()
        members = member_units(unit) if getattr(unit, "ensemble", None) and not self.ensemble else None
        if members is None:
            frame, headline, details, raw = self.run(unit, s, seed=seed, device=dev, dtype=dt, progress=report)
        else:
            frames, heads, dets = [], [], []
            for e, (member_seed, member) in enumerate(members):
                f, h, d, _ = self.run(member, s, seed=seed, device=dev, dtype=dt, progress=report)
                frames.append(f.assign(member=e, network_seed=member_seed))
                heads.append({"member": e, "network_seed": member_seed, **h})
                dets.append(d)
            frame, headline, details, raw = (pd.concat(frames, ignore_index=True), {"members": heads},
                                             {"members": dets}, None)
        wall = time.perf_counter() - start
        describe = unit.describe() if hasattr(unit, "describe") else {"cell": type(unit).__name__}
        config = {"probe": self.name, "model": describe, "settings": s.model_dump(mode="json"), "seed": seed,
                  "device": str(dev), "dtype": str(dt).replace("torch.", "")}
        return Result(self.name, frame, headline, clean(config), wall, details, raw, self.plotter)


PROBES: dict[str, Probe] = {}


def register_probe(name: str, settings: type, run: Callable, doc: str, *, plotter: Callable | None = None,
                   ensemble: bool = False, in_card: bool = True) -> Probe:
    """Add a probe to :data:`PROBES` (the memory card then computes it too, unless ``in_card=False``).

    Parameters
    ----------
    name : str
        Registry name (the card's section name).
    settings : subclass of :class:`ProbeSettings`
        Its settings schema; defaults are what the card uses.
    run : callable
        ``run(model, settings, *, seed, device, dtype, progress) -> (frame, headline, details, raw)``.
    doc : str
        One line: what it measures and its source.
    plotter : callable, optional
        ``plotter(result, ax)`` draws the main figure.
    ensemble : bool
        True when ``run`` batches an ensemble itself (else the contract runs it per member).
    in_card : bool
        Whether ``rnnmem card`` computes it by default.

    Returns
    -------
    The registered :class:`Probe` (callable with the contract's signature).
    """
    if not (isinstance(settings, type) and issubclass(settings, BaseModel)):
        raise ConfigError(f"probe {name!r}: settings must be a pydantic model class (subclass ProbeSettings)")
    probe = Probe(name, settings, run, doc, plotter, ensemble, in_card)
    PROBES[name] = probe
    return probe


def validate_settings(probe: Probe, settings) -> ProbeSettings:
    """``settings`` (None, a dict, or the schema's instance) as a validated instance of the probe's schema.

    Parameters
    ----------
    probe : Probe
        The registered probe whose ``settings`` schema validates.
    settings : None, dict, or pydantic BaseModel
        None gives the schema's defaults; an instance of the schema is returned as is; another pydantic
        model is dumped to a dict first; a dict is validated field by field.

    Returns
    -------
    ProbeSettings
        An instance of ``probe.settings``.

    Raises
    ------
    ConfigError
        Naming each bad field (and the allowed ones for an unknown field).
    """
    schema = probe.settings
    if settings is None:
        return schema()
    if isinstance(settings, schema):
        return settings
    if isinstance(settings, BaseModel):
        settings = settings.model_dump()
    if not isinstance(settings, dict):
        raise ConfigError(f"{probe.name} settings must be a dict or {schema.__name__}, got {type(settings).__name__}")
    try:
        return schema(**settings)
    except Exception as exc:  # noqa: BLE001 - pydantic's ValidationError and the schema's own checks
        raise config_error_from(exc, f"{probe.name} settings", allowed=list(schema.model_fields)) from None


def prepare(model, device=None, dtype=None):
    """A probe-ready copy of ``model`` on ``device`` in ``dtype``; the caller's model is never moved,
    cast nor mutated (its parameters, device and attributes stay as they were).

    Parameters
    ----------
    model : anything :func:`rnnmem.cells.protocol.as_model` accepts.
    device : str or torch.device, optional (default: the model's).
    dtype : "float32", "float64" or torch dtype, optional (default: the model's).

    Returns
    -------
    (unit, device, dtype)
    """
    unit = as_model(model)
    have_dev, have_dt = native_device_dtype(unit)
    dev = resolve_device(device) if device is not None else have_dev
    dt = resolve_dtype(dtype) if dtype is not None else have_dt
    unit = copy.deepcopy(unit)
    if dev != have_dev or dt != have_dt:
        unit = unit.to(device=dev, dtype=dt)
        if hasattr(unit, "dtype"):
            unit.dtype = dt
    return unit, dev, dt


def member_units(unit) -> list[tuple[int, object]]:
    """The E networks of an ensemble unit as single units: ``[(seed_e, unit_e), ...]``; member e
    computes exactly what the ensemble's member e computes (its parameters are slice e).

    Parameters
    ----------
    unit : RecurrentUnit
        An ensemble unit (built with ``seeds=[...]``).

    Returns
    -------
    list of (int, RecurrentUnit)
        One ``(seed, unit.member(e))`` pair per member, in member order.

    Raises
    ------
    ConfigError
        ``unit`` is not an ensemble ``RecurrentUnit``.
    """
    if not isinstance(unit, RecurrentUnit) or not unit.ensemble:
        raise ConfigError("member_units takes an ensemble unit (built with seeds=[...])")
    return [(s, unit.member(e)) for e, s in enumerate(unit.seeds)]


def _progress(progress):
    """Every probe reports ``progress(done, total)``; None stays None."""
    if progress is None:
        return None
    if not callable(progress):
        raise ConfigError("progress must be a callable progress(done, total)")
    return progress


__all__ = ["PROBES", "Probe", "ProbeSettings", "Result", "clean", "member_units", "prepare", "register_probe",
           "validate_settings"]
