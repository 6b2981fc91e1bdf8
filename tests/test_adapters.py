"""Adapters for Hugging Face ``transformers`` and ``mambapy`` models (optional extras).

Tiny randomly initialised models built here (no downloads): the adapter's step-by-step outputs
equal the library's own forward, and states carry over between calls.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap

import pytest
import torch

from rnnmem import cells
from rnnmem.cells.protocol import as_model
from rnnmem.errors import ConfigError


def _check_against(unit, full, width, T=14, B=2, tol=1e-5):
    """Adapter outputs == ``full(x)``; continuing from a returned state == one long run."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(T, B, width, generator=gen)
    with torch.no_grad():
        y, st = unit(x)
        ref = full(x)
        y1, s1 = unit(x[:5])
        y2, s2 = unit(x[5:], s1)
        yt, sts = unit.step(x[0], None)
    assert y.shape == (T, B, width)
    assert (y - ref).abs().max() < tol
    assert (torch.cat([y1, y2]) - ref).abs().max() < tol
    assert (yt - ref[0]).abs().max() < tol
    assert all((a - b).abs().max() < tol for a, b in zip(s2, st) if torch.isfinite(a).all())
    for s in st:  # the model protocol's layout: [layers, B, F]
        assert s.dim() == 3 and s.shape[0] == unit.num_layers and s.shape[1] == B
    assert as_model(unit) is unit
    z = unit.state_vector(st)
    assert z.shape[0] == B and all(torch.equal(a, b) for a, b in zip(unit.state_from_vector(z), st))
    return st


def test_hf_mamba():
    tr = pytest.importorskip("transformers", reason="transformers is not installed (pip install 'rnnmem[hf]')")
    torch.manual_seed(0)
    model = tr.MambaModel(tr.MambaConfig(hidden_size=16, state_size=4, num_hidden_layers=2, expand=2,
                                         conv_kernel=4, vocab_size=10)).eval()
    unit = cells.from_hf(model)
    st = _check_against(unit, lambda x: model(inputs_embeds=x.transpose(0, 1)).last_hidden_state.transpose(0, 1), 16)
    assert unit.state_names == ("conv", "ssm")
    assert st[0].shape == (2, 2, 32 * 3) and st[1].shape == (2, 2, 32 * 4)
    # the LM wrapper: its backbone is probed
    lm = tr.MambaForCausalLM(model.config)
    assert cells.from_hf(lm).model is lm.backbone


def test_hf_mamba2():
    tr = pytest.importorskip("transformers", reason="transformers is not installed (pip install 'rnnmem[hf]')")
    torch.manual_seed(1)
    model = tr.Mamba2Model(tr.Mamba2Config(hidden_size=16, state_size=8, num_hidden_layers=2, expand=2,
                                           conv_kernel=4, vocab_size=10, num_heads=4, head_dim=8, n_groups=1,
                                           chunk_size=4)).eval()
    unit = cells.from_hf(model)
    _check_against(unit, lambda x: model(inputs_embeds=x.transpose(0, 1)).last_hidden_state.transpose(0, 1), 16)


def test_hf_rwkv_matches_its_own_token_by_token_state():
    tr = pytest.importorskip("transformers", reason="transformers is not installed (pip install 'rnnmem[hf]')")
    torch.manual_seed(2)
    model = tr.RwkvModel(tr.RwkvConfig(hidden_size=16, num_hidden_layers=2, attention_hidden_size=16,
                                       intermediate_size=32, vocab_size=10, context_length=64)).eval()

    def own_steps(x):   # the library's generation path: one token at a time, passing `state`
        state, ys = None, []
        for t in range(x.shape[0]):
            out = model(inputs_embeds=x[t].unsqueeze(1), state=state, use_cache=True)
            state = out.state
            ys.append(out.last_hidden_state[:, 0])
        return torch.stack(ys)

    unit = cells.from_hf(model)
    st = _check_against(unit, own_steps, 16)
    assert unit.state_names == ("ffn_shift", "att_shift", "num", "den", "max")
    assert all(s.shape == (2, 2, 16) for s in st)


_XLSTM = textwrap.dedent("""
    import torch, transformers.utils as tu, transformers.utils.import_utils as iu
    # the stand-alone `xlstm` package, when installed without mlstm_kernels, breaks transformers'
    # xLSTM import: use transformers' own native kernels
    tu.is_xlstm_available = iu.is_xlstm_available = lambda: False
    from transformers import xLSTMConfig, xLSTMModel
    from rnnmem import cells
    torch.manual_seed(3)
    model = xLSTMModel(xLSTMConfig(hidden_size=128, num_heads=2, num_hidden_layers=2, vocab_size=10,
                                   mode="inference", chunk_size=4)).eval()
    unit = cells.from_hf(model)
    x = torch.randn(9, 2, 128)
    with torch.no_grad():
        y, st = unit(x)
        ref = model(inputs_embeds=x.transpose(0, 1)).last_hidden_state.transpose(0, 1)
        y1, s1 = unit(x[:4]); y2, _ = unit(x[4:], s1)
    assert unit.state_names == ("C", "n", "m") and st[0].shape == (2, 2, 2 * 32 * 64), [s.shape for s in st]
    err = max((y - ref).abs().max().item(), (torch.cat([y1, y2]) - ref).abs().max().item())
    assert err < 1e-5, err
    print("ok", err)
""")


def test_hf_xlstm():
    tr = pytest.importorskip("transformers", reason="transformers is not installed (pip install 'rnnmem[hf]')")
    if importlib.util.find_spec("transformers.models.xlstm") is None:   # (no import: see _XLSTM)
        pytest.skip(f"transformers {tr.__version__} has no xLSTMModel")
    # a fresh interpreter: the import-time switch above must not leak into other tests
    run = subprocess.run([sys.executable, "-c", _XLSTM], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and "ok" in run.stdout, run.stderr[-2000:]


def test_mambapy():
    mp = pytest.importorskip("mambapy.mamba", reason="mambapy is not installed (pip install 'rnnmem[mambapy]')")
    torch.manual_seed(4)
    model = mp.Mamba(mp.MambaConfig(d_model=16, n_layers=2, d_state=4))
    unit = cells.from_mambapy(model)
    st = _check_against(unit, lambda x: model(x.transpose(0, 1)).transpose(0, 1), 16)
    assert st[0].shape == (2, 2, 32 * 3) and st[1].shape == (2, 2, 32 * 4)


def test_wrong_models_say_what_to_do():
    with pytest.raises(ConfigError, match="from_mambapy needs"):
        pytest.importorskip("mambapy.mamba", reason="mambapy is not installed")
        cells.from_mambapy(torch.nn.Linear(2, 2))
    tr = pytest.importorskip("transformers", reason="transformers is not installed")
    with pytest.raises(ConfigError, match="does not know"):
        cells.from_hf(tr.BertModel(tr.BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                                 intermediate_size=8, vocab_size=10)))
