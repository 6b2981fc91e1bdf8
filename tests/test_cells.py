"""Recurrent-unit zoo: fused kernel vs step loop, wrapping torch.nn modules, ensembles, bad input.

The conventions against independent NumPy equations are in test_conventions.py, the Nested LSTM
in test_cells_nlstm.py, the command line in test_cli_cells.py.
"""

from __future__ import annotations

import pytest
import torch

from rnnmem import cells
from rnnmem.errors import ConfigError, InputError

TOL = {"float32": 1e-5, "float64": 1e-12}
DT = {"float32": torch.float32, "float64": torch.float64}

# (cell, options, convention): every configuration torch's fused kernel computes exactly.
FUSABLE = [
    ("rnn", {"nonlinearity": "tanh"}, "torch"),
    ("rnn", {"nonlinearity": "tanh"}, "keras"),
    ("rnn", {"nonlinearity": "tanh"}, "keras2"),
    ("rnn", {"nonlinearity": "tanh"}, "tf1"),
    ("rnn", {"nonlinearity": "relu"}, "torch"),
    ("rnn", {"nonlinearity": "relu"}, "keras2"),
    ("rnn", {"nonlinearity": "relu"}, "tf1"),
    ("lstm", {}, "torch"),
    ("lstm", {}, "keras2"),
    ("lstm", {}, "tf1"),
    ("gru", {}, "torch"),
    ("gru", {}, "keras2"),
]
NOT_FUSABLE = [("lstm", {}, "keras"), ("gru", {}, "keras"), ("gru", {}, "tf1"), ("nlstm", {"depth": 2}, "keras")]


def _random_state(unit, batch, gen, scale=0.5):
    return tuple(scale * torch.randn(s.shape, generator=gen, dtype=s.dtype) for s in unit.init_state(batch))


def _max_diff(a, b):
    return (a - b).abs().max().item()


def _ids(value):
    return "-".join(map(str, value.values())) or "_" if isinstance(value, dict) else str(value)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("cell,opts,conv", FUSABLE, ids=_ids)
def test_step_loop_matches_fused_kernel(cell, opts, conv, layers, dtype):
    """use_fused=True (torch's kernel) and use_fused=False (step loop), same weights, 1,000 steps."""
    unit = cells.build(cell, 3, 8, layers=layers, convention=conv, dtype=dtype, seed=layers, **opts)
    assert unit.fusable()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1000, 2, 3, generator=gen, dtype=DT[dtype])
    state = _random_state(unit, 2, gen)
    with torch.no_grad():
        unit.use_fused = True
        y_f, s_f = unit(x, state)
        unit.use_fused = False
        y_l, s_l = unit(x, state)
    assert y_f.shape == (1000, 2, 8) and y_f.dtype == DT[dtype]
    assert y_f.abs().max() > 0.05  # the sequence carries signal, the comparison is not vacuous
    assert _max_diff(y_f, y_l) <= TOL[dtype]
    for a, b in zip(s_f, s_l):
        assert a.shape == (layers, 2, 8)
        assert _max_diff(a, b) <= TOL[dtype]


@pytest.mark.parametrize("cell,opts,conv", FUSABLE[::3] + NOT_FUSABLE + [("gru", {"gru_reset": "before"}, "torch")],
                         ids=_ids)
def test_fast_step_equals_generic_cell_step(cell, opts, conv):
    """The loop's fast closure and ``_cell_step`` (what subclasses build on) compute the same."""
    unit = cells.build(cell, 3, 6, layers=2, convention=conv, dtype="float64", seed=3, **opts)

    class Sub(type(unit)):  # overriding _cell_step switches the loop to the generic path
        def _cell_step(self, layer, xp_t, st):
            return super()._cell_step(layer, xp_t, st)

    generic = Sub.__new__(Sub)
    generic.__dict__.update(unit.__dict__)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(40, 2, 3, generator=gen, dtype=torch.float64)
    state = _random_state(unit, 2, gen)
    unit.use_fused = generic.use_fused = False
    with torch.no_grad():
        y1, s1 = unit(x, state)
        y2, s2 = generic(x, state)
        # one public step at a time equals the sequence
        st, ys = state, []
        for t in range(x.shape[0]):
            y_t, st = unit.step(x[t], st)
            ys.append(y_t)
    assert _max_diff(y1, y2) <= 1e-12
    assert _max_diff(y1, torch.stack(ys)) <= 1e-12
    for a, b, c in zip(s1, s2, st):
        assert _max_diff(a, b) <= 1e-12 and _max_diff(a, c) <= 1e-12


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "nlstm"])
def test_return_all_states_is_consistent(cell):
    unit = cells.build(cell, 3, 5, layers=2, convention="keras", dtype="float64", seed=0)
    x = torch.randn(30, 4, 3, dtype=torch.float64)
    with torch.no_grad():
        y, final, all_states = unit(x, return_all_states=True)
        y2, final2 = unit(x)
    assert len(all_states) == len(unit.state_names)
    for comp, fin, fin2 in zip(all_states, final, final2):
        assert comp.shape == (30, 2, 4, 5)
        assert _max_diff(comp[-1], fin) <= 1e-12
        assert _max_diff(fin, fin2) <= 1e-12
    assert _max_diff(all_states[0][:, -1], y) == 0.0  # h of the top layer is the output
    assert _max_diff(y, y2) <= 1e-12


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN_tanh", "RNN_relu"])
def test_from_module_equals_torch_module(kind, layers, batch_first):
    torch.manual_seed(layers + 2 * batch_first)
    name, _, nonlin = kind.partition("_")
    extra = {"nonlinearity": nonlin} if nonlin else {}
    module = getattr(torch.nn, name)(4, 7, num_layers=layers, batch_first=batch_first, **extra).double()
    module.eval()
    unit = cells.from_module(module)
    assert unit.describe()["convention"]["name"] == "torch" and unit.num_layers == layers
    x = torch.randn(60, 3, 4, dtype=torch.float64)  # time-major
    state = _random_state(unit, 3, torch.Generator().manual_seed(0))
    with torch.no_grad():
        mod_in = x.transpose(0, 1) if batch_first else x
        y_m, s_m = module(mod_in, state if name == "LSTM" else state[0])
        y_m = y_m.transpose(0, 1) if batch_first else y_m
        s_m = s_m if isinstance(s_m, tuple) else (s_m,)
        for fused in (True, False):
            unit.use_fused = fused
            y_u, s_u = unit(x, state)
            assert _max_diff(y_u, y_m) <= 1e-12
            for a, b in zip(s_u, s_m):
                assert _max_diff(a, b) <= 1e-12


def test_from_module_without_bias_and_float32():
    module = torch.nn.GRU(3, 5, num_layers=2, bias=False).eval()
    unit = cells.from_module(module)
    assert unit.dtype == torch.float32
    x = torch.randn(100, 2, 3)
    with torch.no_grad():
        assert _max_diff(unit(x)[0], module(x)[0]) <= 1e-6
        for p in unit.layer_params:
            assert p.b.abs().max() == 0 and p.b_h.abs().max() == 0


def test_from_module_rejects_other_modules():
    with pytest.raises(ConfigError, match="from_module takes torch.nn.RNN, LSTM or GRU, got Linear"):
        cells.from_module(torch.nn.Linear(2, 2))
    with pytest.raises(ConfigError, match="bidirectional"):
        cells.from_module(torch.nn.LSTM(2, 3, bidirectional=True))


# ------------------------------------------------------------------------------ ensembles
@pytest.mark.parametrize(
    "cell,opts,conv",
    [("rnn", {}, "torch"), ("lstm", {}, "keras"), ("lstm", {}, "tf1"), ("gru", {}, "torch"),
     ("gru", {}, "keras"), ("nlstm", {"depth": 3}, "tf1")],
)
def test_ensemble_member_equals_unit_built_with_its_seed(cell, opts, conv):
    seeds = [5, 11, 2]
    ens = cells.build(cell, 3, 6, layers=2, convention=conv, dtype="float64", seeds=seeds, **opts)
    x = torch.randn(25, 3, 4, 3, dtype=torch.float64)  # [T, E, B, I]: each member its own inputs
    with torch.no_grad():
        y, final, all_states = ens(x, return_all_states=True)
    assert y.shape == (25, 3, 4, 6)
    assert all(s.shape == (2, 3, 4, 6) for s in final)
    assert all(s.shape == (25, 2, 3, 4, 6) for s in all_states)
    for e, seed in enumerate(seeds):
        single = cells.build(cell, 3, 6, layers=2, convention=conv, dtype="float64", seed=seed, **opts)
        for pe, ps in zip(ens.layer_params, single.layer_params):
            for name, value in ps.named_parameters():
                assert torch.equal(getattr(pe, name)[e].reshape(value.shape), value)
        single.use_fused = False
        with torch.no_grad():
            y_s, final_s = single(x[:, e])
        assert _max_diff(y[:, e], y_s) <= 1e-12
        for a, b in zip(final, final_s):
            assert _max_diff(a[:, e], b) <= 1e-12


def test_seeds_reproduce_weights():
    a = cells.build("lstm", 3, 8, layers=2, convention="keras", seed=4)
    b = cells.build("lstm", 3, 8, layers=2, convention="keras", seed=4)
    c = cells.build("lstm", 3, 8, layers=2, convention="keras", seed=5)
    pa, pb, pc = (dict(u.named_parameters()) for u in (a, b, c))
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert all(not torch.equal(pa[k], pc[k]) for k in pa if "W" in k)
    assert a.describe() == b.describe() and a.describe()["seed"] == 4


def test_describe_records_full_config():
    unit = cells.build("gru", 2, 4, layers=2, convention="keras", dtype="float64", seed=1, gru_reset="after")
    d = unit.describe()
    assert d["cell"] == "gru" and d["dtype"] == "float64" and d["layers"] == 2
    assert d["convention"]["name"] == "keras" and d["convention"]["gru_reset"] == "after"
    assert d["convention"]["gate_activation"] == "hard_sigmoid"


def test_gradients_flow_through_loop_and_fused():
    for fused in (True, False):
        unit = cells.build("gru", 3, 4, layers=2, convention="torch", seed=0)
        unit.use_fused = fused
        y, _ = unit(torch.randn(20, 2, 3))
        y.sum().backward()
        for name, p in unit.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_input_follows_parameter_dtype_and_device():
    unit = cells.build("lstm", 3, 4, dtype="float64", seed=0)
    y, (h, c) = unit(torch.randn(5, 2, 3))  # float32 input into a float64 unit
    assert y.dtype == h.dtype == torch.float64 and y.device == unit.layer_params[0].W_x.device


@pytest.mark.cuda
@pytest.mark.parametrize("cell,conv", [("lstm", "torch"), ("lstm", "keras"), ("gru", "tf1"), ("nlstm", "torch")])
def test_cuda_matches_cpu(cell, conv):
    cpu = cells.build(cell, 3, 6, layers=2, convention=conv, dtype="float64", seed=0)
    gpu = cells.build(cell, 3, 6, layers=2, convention=conv, dtype="float64", seed=0, device="cuda")
    x = torch.randn(50, 2, 3, dtype=torch.float64)
    with torch.no_grad():
        y_c, _ = cpu(x)
        y_g, s_g = gpu(x.cuda())
        gpu.use_fused = False
        y_l, _, all_g = gpu(x.cuda(), return_all_states=True)
    assert y_g.is_cuda and all(s.is_cuda for s in s_g) and all(s.is_cuda for s in all_g)
    assert _max_diff(y_c, y_g.cpu()) <= 1e-10 and _max_diff(y_c, y_l.cpu()) <= 1e-10


# ------------------------------------------------------------------------------ bad input
def _one_error(exc_type, match, fn, *args, **kwargs):
    with pytest.raises(exc_type, match=match) as info:
        fn(*args, **kwargs)
    assert info.type is exc_type  # exactly the rnnmem error, not a wrapped torch/Python error
    return info


def test_bad_configuration_raises_one_clear_error():
    _one_error(ConfigError, r"unknown cell 'lstmm'; choose one of rnn, lstm, gru, nlstm", cells.build, "lstmm", 2, 3)
    _one_error(ConfigError, r"unknown convention 'keras3'; choose one of torch, keras, keras2, tf1",
               cells.build, "lstm", 2, 3, convention="keras3")
    _one_error(ConfigError, r"unknown cell option 'forget_gate_bias'; valid options: .*forget_bias",
               cells.build, "lstm", 2, 3, forget_gate_bias=1.0)
    _one_error(ConfigError, r"option 'depth' does not apply to cell 'lstm'; it is an option of nlstm",
               cells.build, "lstm", 2, 3, depth=2)
    _one_error(ConfigError, r"nlstm depth must be an integer >= 2, got 1", cells.build, "nlstm", 2, 3, depth=1)
    _one_error(ConfigError, r"dtype must be one of float32, float64, got 'float16'",
               cells.build, "gru", 2, 3, dtype="float16")
    _one_error(ConfigError, r"dtype must be one of float32, float64, got 'double'",
               cells.build, "gru", 2, 3, dtype="double")
    _one_error(ConfigError, r"gate_activation must be one of sigmoid, hard_sigmoid; got 'relu'",
               cells.build, "gru", 2, 3, gate_activation="relu")
    _one_error(ConfigError, r"hidden_size must be a positive integer, got 0", cells.build, "rnn", 2, 0)
    _one_error(ConfigError, r"nonlinearity must be 'tanh' or 'relu'", cells.build, "rnn", 2, 3, nonlinearity="sig")
    _one_error(ConfigError, r"seed must be non-negative integers, got 'a'", cells.build, "rnn", 2, 3, seed="a")


def test_bad_input_raises_one_clear_error():
    unit = cells.build("lstm", 3, 4, seed=0)
    _one_error(InputError, r"input width 5 does not match the unit's input_size 3", unit, torch.zeros(7, 2, 5))
    _one_error(InputError, r"input must have shape \[T, B, I\], got \(7, 3\)", unit, torch.zeros(7, 3))
    x = torch.zeros(7, 2, 3)
    x[3, 1, 2] = float("nan")
    _one_error(InputError, r"input contains NaN values", unit, x)
    _one_error(InputError, r"input must be floating point", unit, torch.zeros(7, 2, 3, dtype=torch.long))
    _one_error(InputError, r"input is empty \(shape \(0, 2, 3\)\)", unit, torch.zeros(0, 2, 3))
    bad_state = (torch.zeros(1, 3, 4), torch.zeros(1, 3, 4))
    _one_error(InputError, r"state component 'h' must have shape \(1, 2, 4\)", unit, torch.zeros(7, 2, 3), bad_state)
    _one_error(InputError, r"state must be a tuple of 2 tensors \('h', 'c'\), got 1",
               unit, torch.zeros(7, 2, 3), (torch.zeros(1, 2, 4),))
    ens = cells.build("gru", 3, 4, seeds=[0, 1])
    _one_error(InputError, r"input ensemble dim 3 != ensemble size 2", ens, torch.zeros(5, 3, 2, 3))


def test_fused_path_sees_every_parameter_change():
    """The LSTM's fused weights are refreshed at every call, however the parameters changed."""
    unit = cells.build("lstm", 3, 4, layers=2, seed=0)
    x = torch.randn(30, 2, 3)
    with torch.no_grad():
        y0 = unit(x)[0]
        unit.layer_params[1].W_h.data.copy_(torch.randn(4, 16))  # .data writes bump no version
        y1 = unit(x)[0]
        unit.layer_params[0].b.add_(0.3)
        y2 = unit(x)[0]
        unit.use_fused = False
        y2_loop = unit(x)[0]
    assert _max_diff(y0, y1) > 1e-3 and _max_diff(y1, y2) > 1e-3
    assert _max_diff(y2, y2_loop) <= 1e-5
    unit.use_fused = True
    y3, _ = unit(x)  # with autograd: gradients reach the parameters through the fused kernel
    y3.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in unit.parameters())


def test_loop_hard_sigmoid_is_bitwise_keras():
    unit = cells.build("gru", 3, 4, convention="keras", seed=0)
    z = torch.linspace(-4, 4, 1001)
    assert torch.equal(unit._gate_fn()(z), cells.hard_sigmoid(z))
    assert torch.equal(cells.hard_sigmoid(torch.tensor([-2.5, 0.0, 2.5, 3.0])), torch.tensor([0.0, 0.5, 1.0, 1.0]))
