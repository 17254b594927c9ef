"""The benchmark scripts run (--quick), so they cannot rot. Their timings are printed, never asserted."""
import json
import subprocess
import sys
from pathlib import Path

from .conftest import needs_mnist, run_python

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def _stdout(*args):
    return run_python(*args, timeout=600).stdout


@needs_mnist
def test_throughput_quick(tmp_path):
    out = _stdout(BENCH / "throughput.py", "--quick", "--out", tmp_path / "t.json")
    assert "ratio" in out and "test ELBO after" in out
    record = json.loads((tmp_path / "t.json").read_text())
    assert record["quick"] is True and [r["arch"] for r in record["results"]] == ["mlp", "conv"]
    printed = [float(part.split("x")[0]) for part in out.split("ratio ")[1:]]
    recorded = []
    for row in record["results"]:
        assert row["reference_img_per_s"] > 0 and row["reference_test_elbo"] < 0
        assert set(row["vaelib"]) == {"fp32", "bf16"}
        for variant in row["vaelib"].values():
            assert variant["img_per_s"] > 0 and variant["test_elbo"] < 0
            recorded.append(round(variant["ratio"], 2))
    assert printed == recorded  # the table a reader sees is the record that RESULTS.md quotes


@needs_mnist
def test_race_sweep_quick_runs_every_recipe_of_the_grid(tmp_path):
    out = _stdout(BENCH / "race_sweep.py", "--quick", "--horizon", "2", "3", "--batch_size", "128",
               "--out", tmp_path / "s.json")
    rows = json.loads((tmp_path / "s.json").read_text())["rows"]
    assert [(r["recipe"]["horizon"], r["recipe"]["batch_size"]) for r in rows] == [(2, 128), (3, 128)]
    assert all(r["seconds"] and r["epochs"] >= 1 for r in rows) and out.count("s in 1 epochs") == 2


def test_compare_bounds_reports_the_per_image_difference(tmp_path):
    from vaelib.evaluation import BoundsRecord
    for name, shift in (("a", 0.0), ("b", 0.5)):
        record = BoundsRecord(tmp_path / f"{name}.json", {"k": 5})
        record.add(range(4), [-80.0 - shift, -82.0 - shift, -84.0, -86.0])  # b is worse on two images
        record.save()
    out = _stdout(BENCH / "compare_bounds.py", tmp_path / "a.json", tmp_path / "b.json")
    assert "NLL 83.000" in out and "and 83.250" in out and "+0.2500 +- 0.1443 nats" in out and "largest 0.50" in out


@needs_mnist
def test_widget_latency_quick():
    out = _stdout(BENCH / "widget_latency.py", "--quick")
    assert "latent slider" in out and "slowest p95" in out


def test_the_bf16_matmul_variant_sets_the_switch_only_while_it_trains(monkeypatch):
    import pytest
    import torch
    if not hasattr(torch.backends.mkldnn, "matmul"):
        pytest.skip("this torch has no torch.backends.mkldnn.matmul switch")
    monkeypatch.syspath_prepend(str(BENCH))
    import throughput
    before = torch.backends.mkldnn.matmul.fp32_precision
    with throughput.matmul_precision("fp32+bf16-matmul+compile"):
        assert torch.backends.mkldnn.matmul.fp32_precision == "bf16"
    assert torch.backends.mkldnn.matmul.fp32_precision == before
    with throughput.matmul_precision("fp32"):
        assert torch.backends.mkldnn.matmul.fp32_precision == before
    assert throughput.BF16_MATMUL <= set(throughput.VARIANTS)


@needs_mnist
def test_the_gpu_check_runs_on_the_cpu_in_quick_mode(tmp_path):
    out = _stdout(BENCH / "gpu_check.py", "--quick", "--out", tmp_path / "g.json")
    record = json.loads((tmp_path / "g.json").read_text())
    assert record["quick"] is True and [r["arch"] for r in record["throughput"]] == ["mlp", "conv"]
    for row in record["throughput"]:
        assert set(row["vaelib"]) == {"fp32, batch 128", "bf16, batch 128", "fp32, batch 1024", "bf16, batch 1024"}
        assert all(v["img_per_s"] > 0 for v in row["vaelib"].values())
    assert [r["arch"] for r in record["race"]] == ["mlp", "conv"] and "race mlp" in out and "the whole check took" in out


@needs_mnist
def test_the_notebook_benchmark_runs_a_notebook_and_reports_time_and_memory(tmp_path):
    out = _stdout(BENCH / "notebooks.py", "--quick", "--out", tmp_path / "n.json")
    record = json.loads((tmp_path / "n.json").read_text())
    (row,) = record["results"]
    assert record["mode"] == "fast" and row["notebook"].startswith("00_") and row["ok"], row
    assert row["seconds"] > 1 and 0.1 < row["peak_gb"] < 8
    assert row["notebook"] in out


def test_the_race_recipe_uses_bf16_only_where_the_hardware_computes_it(monkeypatch):
    import torch
    monkeypatch.syspath_prepend(str(BENCH))
    import throughput
    cpu = torch.device("cpu")
    for native, expected in ((True, "bf16"), (None, "bf16"), (False, "fp32")):
        monkeypatch.setattr(throughput, "native_bf16", lambda device, native=native: native)
        assert throughput.recipe("conv", cpu)["precision"] == expected
        assert throughput.recipe("mlp", cpu)["precision"] == "fp32"
    assert throughput.RECIPES["conv"]["precision"] == "bf16"  # the table itself is left as it was


def test_the_recorded_k5000_figure_is_the_shipped_models_on_every_test_image():
    """The record's shard files cover all 10,000 images of pretrained/conv_pixelcnn.pth, and the docs quote their mean."""
    from vaelib.evaluation import BoundsRecord, file_sha256, summarize_bounds

    root = BENCH.parent
    meta, bounds = BoundsRecord.combine(sorted((BENCH / "results" / "conv_pixelcnn-k5000").glob("shard-*.json")))
    assert meta["checkpoint_sha256"] == file_sha256(root / "pretrained" / "conv_pixelcnn.pth")
    assert (meta["k"], meta["binarize"], meta["dataset"]) == (5000, "dynamic", "mnist")
    assert sorted(bounds) == list(range(10_000))
    summary = summarize_bounds(list(bounds.values()), meta["image_shape"], meta["k"], meta["seed"])
    quoted = f"{summary['nll']:.2f} +- {summary['std_error']:.2f}"
    for doc in ("README.md", "pretrained/README.md", "benchmarks/RESULTS.md"):
        assert quoted in (root / doc).read_text().replace("**", ""), f"{doc} does not quote the recorded {quoted}"


def test_the_aggregate_posterior_prior_is_the_mixture_of_the_posteriors(monkeypatch):
    import torch
    from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal
    monkeypatch.syspath_prepend(str(BENCH))
    import prior_headroom
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(7, 3, generator=g), 0.5 * torch.randn(7, 3, generator=g)
    z = 2 * torch.randn(5, 4, 3, generator=g)
    mixture = MixtureSameFamily(Categorical(logits=torch.zeros(7)), Independent(Normal(mu, (0.5 * logvar).exp()), 1))
    prior = prior_headroom.AggregatePosterior(mu, logvar, chunk=6)  # 20 codes in chunks of 6
    assert prior() is prior
    assert torch.allclose(prior.log_prob(z), mixture.log_prob(z), atol=1e-4)


@needs_mnist
def test_prior_headroom_splits_the_kl_and_scores_both_priors_on_the_same_images(tmp_path, monkeypatch):
    import math
    monkeypatch.syspath_prepend(str(BENCH))
    import prior_headroom

    import vaelib
    checkpoint = BENCH.parent / "pretrained" / "mlp_vae.pth"
    result = prior_headroom.main([str(checkpoint), "--train-subset", "2000", "--shard", "0/1000", "--k", "20",
                                  "--kl-codes", "300", "--mog", "3", "--epochs", "1", "--prior-steps", "30",
                                  "--out", str(tmp_path / "mog.pth")])
    split = result["split"]
    # I(n; z) of 2,000 images lies between 0 and log 2000, and the two parts add up to the KL
    assert 0 < split["mutual_information"] <= math.log(2000) + 1e-3 and split["marginal_kl"] > 0
    assert abs(split["mutual_information"] + split["marginal_kl"] - split["kl"]) < 1e-3
    for name in ("aggregate", "mog"):  # each difference is the two NLLs' difference on the same 10 images
        assert abs(result[name]["nll"] - result["base"]["nll"] - result[name]["difference"]) < 1e-6
    tuned = vaelib.load(tmp_path / "mog.pth")
    assert tuned.config.prior_kind == "mog" and tuned.prior.components == 3


def _record_output(tmp_path, *args, env=None):
    """benchmarks/record.py's exit code, stdout and stderr (for the runs that are to fail)."""
    import os
    result = subprocess.run([sys.executable, str(BENCH / "record.py"), *map(str, args)], capture_output=True,
                            text=True, timeout=600, env={**os.environ, **(env or {})})
    return result.returncode, result.stdout, result.stderr


@needs_mnist
def test_the_record_command_quick_writes_the_model_the_bounds_and_the_summary(tmp_path):
    import math

    import vaelib
    from vaelib.evaluation import BoundsRecord, file_sha256

    out = tmp_path / "record"
    printed = _stdout(BENCH / "record.py", "--quick", "--out", out)
    assert "ESTIMATE training" in printed and "ESTIMATE all" in printed and "measured: 2 ELBO steps" in printed
    assert "gpu check: skipped" in printed and "test NLL (IWAE, k=10)" in printed
    summary = json.loads((out / "summary.json").read_text())
    stored = BoundsRecord.read(out / "bounds.json")
    assert sorted(stored["bounds"]) == list(range(20))
    assert stored["meta"]["checkpoint_sha256"] == summary["checkpoint_sha256"] == file_sha256(out / "model.pth")
    assert (stored["meta"]["k"], stored["meta"]["n_images"], stored["meta"]["binarize"]) == (10, 20, "dynamic")
    bounds = list(stored["bounds"].values())
    assert summary["n"] == summary["n_images"] == 20 and summary["complete"] and summary["k"] == 10
    assert math.isclose(summary["nll"], -sum(bounds) / 20, rel_tol=1e-9) and summary["std_error"] > 0
    assert math.isclose(summary["bits_per_dim"], summary["nll"] / (784 * math.log(2)), rel_tol=1e-9)
    assert "NOT the literature's protocol" in summary["protocol"]
    recipe = summary["recipe"]
    assert (recipe["pixelcnn_layers"], recipe["epochs"], recipe["iwae_epochs"], recipe["quick"]) == (3, 1, 1, True)
    assert json.loads((out / "recipe.json").read_text()) == recipe
    for phase in ("data", "estimate", "train", "finetune", "evaluate", "total"):
        assert summary["seconds"][phase] >= 0 and summary["cpu_seconds"][phase] >= 0
    assert summary["device"] == "cpu" and summary["torch"] and summary["vaelib"] == vaelib.__version__
    assert summary["gpu_check"]["ran"] is False and summary["runs"][0]["estimates"]["epoch_s"] > 0
    model = vaelib.load(out / "model.pth")
    assert model.config.pixelcnn_layers == 3 and model.config.likelihood == "pixelcnn"
    assert [row["phase"] for row in model.checkpoint["history"]] == ["elbo", "iwae2"]


@needs_mnist
def test_the_record_command_continues_where_it_stopped_without_training_again(tmp_path):
    from vaelib.evaluation import BoundsRecord, file_sha256

    out = tmp_path / "record"
    first = _stdout(BENCH / "record.py", "--quick", "--out", out, "--eval-limit", "8")
    assert "PARTIAL: 8 of 20 images" in first and "ELBO epoch 1/1" in first
    partial = json.loads((out / "summary.json").read_text())
    assert partial["complete"] is False and partial["n"] == 8
    sha, before = file_sha256(out / "model.pth"), BoundsRecord.read(out / "bounds.json")["bounds"]
    assert sorted(before) == list(range(8))

    second = _stdout(BENCH / "record.py", "--quick", "--out", out)
    assert "reusing" in second and "8 of 20 images already done" in second
    assert "ELBO epoch 1/1" not in second and "IWAE epoch 1/1" not in second and "ESTIMATE training" not in second
    assert file_sha256(out / "model.pth") == sha  # the checkpoint is the one the first run trained
    after = BoundsRecord.read(out / "bounds.json")["bounds"]
    assert sorted(after) == list(range(20)) and all(after[i] == before[i] for i in before)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and summary["n"] == 20
    assert [run["images_evaluated"] for run in summary["runs"]] == [8, 12]
    assert "train" in summary["seconds_all_runs"] and "train" not in summary["seconds"]


@needs_mnist
def test_the_record_command_refuses_bad_input_in_one_line(tmp_path, monkeypatch):
    import torch

    import vaelib
    monkeypatch.syspath_prepend(str(BENCH))
    import record

    def refused(code, *args, env=None):
        rc, stdout, stderr = _record_output(tmp_path, *args, env=env)
        assert rc == code and "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, (rc, stderr)
        return stderr

    if not torch.cuda.is_available():
        assert "no CUDA device here" in refused(2, "--out", tmp_path / "gpu")
    assert "VAELIB_DATA" in refused(1, "--quick", "--out", tmp_path / "nodata",
                                    env={"VAELIB_DATA": str(tmp_path / "missing")})
    # an output folder of a finished training whose bounds file is damaged
    out = tmp_path / "damaged"
    out.mkdir()
    args = record.parse(["--quick", "--out", str(out)])
    recipe = record.recipe_of(args, record.resolve_precision(args, torch.device("cpu")))
    (out / "recipe.json").write_text(json.dumps(recipe))
    vaelib.save(record.build(recipe, 0), out / "model.pth")
    (out / "bounds.json").write_text('{"format": "vaelib-iwae-bounds", "bou')
    assert "not a readable bounds file" in refused(1, "--quick", "--out", out)
    assert "another recipe (lr 0.002 there, 0.001 now)" in refused(2, "--quick", "--out", out, "--lr", "1e-3")
    (out / "recipe.json").write_text("{")
    assert "not a readable recipe" in refused(1, "--quick", "--out", out)


def test_the_record_runs_the_gpu_check_only_when_the_budget_has_room_for_it(tmp_path, monkeypatch):
    import torch
    monkeypatch.syspath_prepend(str(BENCH))
    import record

    calls = []
    cpu = torch.device("cpu")
    args = record.parse(["--out", str(tmp_path), "--gpu-check", "auto", "--gpu-check-minutes", "8"])
    skipped = record.gpu_check_phase(args, cpu, tmp_path, lambda: 120.0, main=calls.append)
    assert skipped["ran"] is False and "2.0 min of the 8-minute budget left" in skipped["why"] and not calls
    ran = record.gpu_check_phase(args, cpu, tmp_path, lambda: 600.0, main=calls.append)
    assert ran == {"ran": True, "ok": True, "argv": calls[0], "file": "gpu_check.json"}
    assert calls[0] == ["--quick", "--out", str(tmp_path / "gpu_check.json")]  # no CUDA: the check's own --quick

    def broken(argv):
        raise RuntimeError("CUDA out of memory\nmore")
    failed = record.gpu_check_phase(args, cpu, tmp_path, lambda: 600.0, main=broken)
    assert failed["ran"] and failed["ok"] is False and failed["error"] == "RuntimeError: CUDA out of memory"
    quick = record.parse(["--quick", "--out", str(tmp_path)])
    assert "--quick skips it" in record.gpu_check_phase(quick, cpu, tmp_path, lambda: 600.0, main=calls.append)["why"]


@needs_mnist
def test_the_part_2b_benchmarks_run_quick_and_write_nothing():
    import pytest

    from .test_checks_capstone import needs_fashion
    if needs_fashion.args[0]:
        pytest.skip(needs_fashion.kwargs["reason"])
    results = sorted((BENCH / "results").iterdir())
    printed = _stdout(BENCH / "vq_fashion.py", "--quick")
    assert "| ema_restart | 81,105 |" in printed and "| fsq | 68,676 |" in printed
    assert "bits per test image, against 392 for uniform codes" in printed
    printed = _stdout(BENCH / "hierarchical_mnist.py", "--quick")
    assert "at k = 10 on 200 images, conv_vae" in printed and "z_1 (32)" in printed and "z_2 (16)" in printed
    printed = _stdout(BENCH / "vq_mnist.py", "--quick")
    assert "of 256 codes, test-set perplexity" in printed and "bits per test image against 392 uniform" in printed
    for images in ("prior samples", "uniform codes", "test reconstructions", "real training images"):
        assert f"  {images}: FD " in printed, images
    printed = _stdout(BENCH / "capstone_reference.py", "--quick")
    for model in ("MLP VAE", "conv VAE", "IWAE training", "IAF posterior", "VampPrior", "pixelcnn decoder"):
        assert f"| {model}" in printed or model in printed, model
    assert printed.count(" nats (") == 4                        # a paired difference for each Part-2 lever
    assert sorted((BENCH / "results").iterdir()) == results


@needs_mnist
def test_the_vq_benchmarks_quick_train_every_quantizer_and_a_prior_and_write_nothing():
    written = {p: p.stat().st_mtime for p in (BENCH / "results").glob("vq_*-cpu.json")}
    out = _stdout(BENCH / "vq_fashion.py", "--quick")
    assert [line.split(":")[0] for line in out.splitlines() if line.endswith("}")][:4] == ["vq", "ema", "ema_restart",
                                                                                        "fsq"]
    assert "PixelCNN prior over the ema_restart codes" in out and "against 392 for uniform codes" in out
    out = _stdout(BENCH / "vq_mnist.py", "--quick")
    assert "prior samples: FD" in out and "uniform codes: FD" in out
    assert written == {p: p.stat().st_mtime for p in (BENCH / "results").glob("vq_*-cpu.json")}


@needs_mnist
def test_the_latent_diffusion_benchmark_quick_scores_the_ddpm_beside_both_baselines():
    before = (BENCH / "results" / "latent_diffusion-cpu.json").read_text()
    out = _stdout(BENCH / "latent_diffusion.py", "--quick")
    assert "conv_vae: scale" in out and "N(0, I) FD" in out and "aggregate posterior FD" in out
    row = [line for line in out.splitlines() if line.startswith("| `conv_vae` |")]
    assert len(row) == 1 and row[0].split("|")[7].strip() == "200"       # the DDPM's steps, scored
    assert (BENCH / "results" / "latent_diffusion-cpu.json").read_text() == before
