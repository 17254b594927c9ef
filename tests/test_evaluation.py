import math
import warnings
from pathlib import Path

import torch

from vaelib import MNIST, build_vae
from vaelib.evaluation import bits_per_dim, evaluate_elbo, iwae_nll, reconstruction_error

from .conftest import needs_mnist

pytestmark = needs_mnist


def test_iwae_nll_is_finite_within_the_elbo_bound_and_deterministic(trained_mlp, small_test):
    ev = evaluate_elbo(trained_mlp, small_test, seed=0)
    a = iwae_nll(trained_mlp, small_test, k=50, seed=0, progress=False)
    b = iwae_nll(trained_mlp, small_test, k=50, seed=0, progress=False)
    assert math.isfinite(a["nll"]) and a == b
    assert a["nll"] < -ev["elbo"]  # the k=50 bound is tighter than the ELBO
    assert a["nll"] > 50  # and no MNIST model is that good
    assert a["bits_per_dim"] == bits_per_dim(a["nll"])
    c = iwae_nll(trained_mlp, small_test, k=50, seed=1, progress=False)
    assert c["nll"] != a["nll"]


def test_evaluate_elbo_parts(trained_mlp, small_test):
    ev = evaluate_elbo(trained_mlp, small_test, seed=0)
    assert abs(ev["elbo"] - (ev["reconstruction"] - ev["kl"])) < 1e-3
    assert len(ev["kl_per_dim"]) == 8 and abs(sum(ev["kl_per_dim"]) - ev["kl"]) < 1e-3
    assert 0 < ev["active_units"] <= 8 and ev["n"] == 500


def test_bits_per_dim_and_reconstruction_error(trained_mlp, small_test):
    assert abs(bits_per_dim(784 * math.log(2)) - 1.0) < 1e-12
    err = reconstruction_error(trained_mlp, small_test)
    assert 0 < err["mse"] < 0.1 and abs(err["mse_sum"] - 784 * err["mse"]) < 1e-6


def test_evaluation_leaves_the_callers_rng_alone(trained_mlp, small_test):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    evaluate_elbo(trained_mlp, small_test, seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_the_evaluated_images_do_not_depend_on_k_or_batch_size(trained_mlp, small_test):
    from vaelib.evaluation import fixed_batches as _fixed_batches
    small = torch.cat([x for x, _ in _fixed_batches(small_test, 7, seed=5, device="cpu")])
    large = torch.cat([x for x, _ in _fixed_batches(small_test, 500, seed=5, device="cpu")])
    assert torch.equal(small, large) and set(small.unique().tolist()) == {0.0, 1.0}
    a = iwae_nll(trained_mlp, small_test, k=20, batch_size=7, seed=5, progress=False, per_image=True)
    b = iwae_nll(trained_mlp, small_test, k=20, batch_size=500, seed=5, progress=False, per_image=True)
    assert a["per_image"].shape == (500,) and a["std_error"] > 0
    assert abs(a["nll"] - a["per_image"].double().mean().item()) < 1e-3
    # same images, other draws of z: the estimates agree far within their standard error
    assert abs(a["nll"] - b["nll"]) < a["std_error"]


@needs_mnist
def test_a_resumed_or_sharded_evaluation_gives_the_same_bounds(tmp_path, capsys, monkeypatch):
    import json

    import vaelib.evaluation
    from vaelib.cli import main
    model = str(Path(__file__).resolve().parent.parent / "pretrained" / "mlp_vae.pth")
    common = ["evaluate", "--checkpoint_path", model, "--k", "20", "--subset", "40", "--batch_size", "8"]
    assert main(common) == 0
    whole = capsys.readouterr().out.strip().splitlines()[-1]
    # interrupted after two batches: exit 130, the bounds so far kept; the same command continues
    real = vaelib.evaluation.iwae_bounds

    def stops(*args, **kwargs):
        for n, batch in enumerate(real(*args, **kwargs)):
            if n == 2:
                raise KeyboardInterrupt
            yield batch
    monkeypatch.setattr(vaelib.evaluation, "iwae_bounds", stops)
    bounds = tmp_path / "b.json"
    assert main(common + ["--bounds", str(bounds)]) == 130
    assert len(json.loads(bounds.read_text())["bounds"]) == 16
    monkeypatch.undo()
    capsys.readouterr()
    assert main(common + ["--bounds", str(bounds)]) == 0
    out = capsys.readouterr().out
    assert "16 of 40 images already done" in out and out.strip().splitlines()[-1] == whole
    # two shards, then combined
    for i in (0, 1):
        assert main(common + ["--shard", f"{i}/2", "--bounds", str(tmp_path / f"s{i}.json")]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--combine", str(tmp_path / "s0.json"), str(tmp_path / "s1.json")]) == 0
    combined = capsys.readouterr().out.strip()
    assert combined.split(" over ")[0] == whole.split(" over ")[0]  # the same NLL and standard error
    assert main(["evaluate", "--combine", str(tmp_path / "s0.json")]) == 2
    assert "cover 20 of 40 images" in capsys.readouterr().err
    # a shard computed in bf16 combines with an fp32 one (precision is how, not what) and the line says so
    with warnings.catch_warnings():  # bf16 on a CPU without it warns that it is slow: true, not the point here
        warnings.simplefilter("ignore")
        assert main(common + ["--shard", "1/2", "--precision", "bf16", "--bounds", str(tmp_path / "b1.json")]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--combine", str(tmp_path / "s0.json"), str(tmp_path / "b1.json")]) == 0
    mixed = capsys.readouterr().out.strip()
    nats = lambda line: float(line.split("k=20): ")[1].split(" nats")[0])  # noqa: E731
    assert "2 files, bf16+fp32)" in mixed and abs(nats(mixed) - nats(combined)) < 0.05
    # but not a shard of another k
    assert main(common[:3] + ["--k", "30", "--subset", "40", "--shard", "1/2", "--bounds", str(tmp_path / "k30.json")]) == 0
    assert main(["evaluate", "--combine", str(tmp_path / "s0.json"), str(tmp_path / "k30.json")]) == 2
    assert "measured something else" in capsys.readouterr().err
    assert main(common[:3] + ["--k", "30", "--subset", "40", "--bounds", str(bounds)]) == 1
    assert "holds bounds of another evaluation (k 20 in the file vs 30 now)" in capsys.readouterr().err


def test_iwae_nll_runs_a_conv_model_channels_last_on_the_cpu_and_gives_it_back():
    torch.manual_seed(0)
    model = build_vae("conv", latent_dim=4, channels=8, hidden=32)
    layer = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1)
    seen = []
    layer.register_forward_hook(lambda module, inputs, output: seen.append(
        module.weight.is_contiguous(memory_format=torch.channels_last)))
    result = iwae_nll(model, MNIST("test", binarize="dynamic", subset=20), k=8, progress=False)
    assert seen and all(seen) and math.isfinite(result["nll"])
    assert all(p.is_contiguous() for p in model.parameters())
