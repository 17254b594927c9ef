"""bf16 where it pays: vaelib warns when the hardware would only emulate it."""
import warnings

import pytest
import torch

import vaelib.precision as precision
from vaelib.data import as_data
from vaelib.training import fit
from vaelib.vae import build_vae


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    return build_vae("mlp", latent_dim=2, hidden=8), as_data(torch.rand(16, 1, 28, 28).round())


@pytest.mark.parametrize("native", [False, True])
def test_bf16_on_a_cpu_that_emulates_it_warns_once_and_only_there(tiny, monkeypatch, native):
    model, data = tiny
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
    assert precision.native_bf16(torch.device("cpu")) is native
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(model, data, epochs=1, batch_size=8, device="cpu", precision="bf16", progress=False)
        fit(model, data, epochs=1, batch_size=8, device="cpu", precision="fp32", progress=False)
    slow = [w for w in caught if "emulates bfloat16" in str(w.message)]
    assert len(slow) == (0 if native else 1)  # fp32 never warns
    if slow:
        assert "use fp32 here" in str(slow[0].message) and slow[0].filename == __file__  # points at the caller


def test_unknown_hardware_and_nonsense_precision(monkeypatch):
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    assert precision.native_bf16(torch.device("cpu")) is None  # cannot tell: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        precision.warn_if_emulated(torch.device("cpu"), "bf16")
    with pytest.raises(ValueError, match="precision must be 'fp32' or 'bf16', got 'fp16'"):
        precision.checked_precision("fp16")
