import math
import subprocess
import sys

import pytest

from vaelib.cli import main

from .conftest import needs_mnist


@needs_mnist
def test_train_generate_info_evaluate_end_to_end(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["train", "demo", "--subset", "600", "--num_epochs", "1", "--runs-dir", str(runs),
                 "--arch", "mlp", "--quiet"]) == 0
    run = runs / "demo"
    for name in ("checkpoint_best.pth", "checkpoint_last.pth", "history.csv", "samples.png"):
        assert (run / name).exists(), name
    out = tmp_path / "samples.png"
    assert main(["generate", "--checkpoint_path", str(run / "checkpoint_best.pth"), "--num_samples", "64",
                 "--output_path", str(out), "--grid_size", "8"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    capsys.readouterr()
    assert main(["generate", "--checkpoint_path", str(run / "checkpoint_best.pth"), "--info_only"]) == 0
    info = capsys.readouterr().out
    for needle in ("latent size 20", "likelihood bernoulli", "epochs trained: 1", "best test ELBO: -",
                   "encoder.fc.weight", "(400, 784)", "313,600", "run_name: demo", "total"):
        assert needle in info, needle
    assert main(["evaluate", "--checkpoint_path", str(run / "checkpoint_best.pth"), "--k", "5",
                 "--subset", "50", "--device", "cpu"]) == 0
    assert "test NLL (IWAE, k=5)" in capsys.readouterr().out
    # a second run of the same name refuses to overwrite, --resume_if_exists continues it
    assert main(["train", "demo", "--subset", "600", "--num_epochs", "2", "--runs_dir", str(runs),
                 "--arch", "mlp"]) == 2
    assert "--resume_if_exists" in capsys.readouterr().err
    assert main(["train", "demo", "--subset", "600", "--num_epochs", "2", "--runs_dir", str(runs),
                 "--arch", "mlp", "--resume_if_exists", "--quiet"]) == 0
    assert (run / "history.csv").read_text().count("\n") == 3


def test_the_module_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "vaelib", "generate", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "--checkpoint_path" in result.stdout and "--info_only" in result.stdout


@pytest.mark.parametrize("argv, message", [
    (["train", "x", "--num_epochs", "-1"], "-1 is out of range"),
    (["train", "x", "--batch_size", "zero"], "'zero' is not a whole number"),
    (["train", "x", "--likelihood_type", "poisson"], "invalid choice: 'poisson'"),
    (["train", "x", "--beta_schedule", "cyclical"], "needs --beta_annealing_period"),
    (["train", "x", "--lr_schedule", "step"], "invalid choice: 'step'"),
    (["generate"], "--checkpoint_path"),
    (["generate", "--checkpoint_path", "missing.pth"], "checkpoint not found: missing.pth"),
])
def test_bad_arguments_exit_non_zero_with_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with_exit = None
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = with_exit = exit_.code
    assert code != 0
    err = capsys.readouterr().err.strip()
    assert message in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    del with_exit


def test_a_grid_too_small_for_the_samples_is_refused(tmp_path, capsys):
    from vaelib import build_vae, save
    path = save(build_vae("mlp", latent_dim=2, hidden=8), tmp_path / "m.pth")
    assert main(["generate", "--checkpoint_path", str(path), "--num_samples", "100", "--grid_size", "8"]) == 2
    assert "holds 64 images, not 100" in capsys.readouterr().err


def test_tensorboard_without_the_package_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if not installed
    assert main(["train", "x", "--tensorboard", "--runs_dir", str(tmp_path)]) == 2
    assert "pip install tensorboard" in capsys.readouterr().err


@needs_mnist
def test_a_cosine_learning_rate_decays_over_the_run_and_continues_when_resumed(tmp_path, capsys):
    from vaelib.checkpoints import load_checkpoint
    runs, common = tmp_path / "runs", ["--subset", "256", "--batch_size", "64", "--arch", "mlp", "--quiet"]
    last_lr = lambda name: load_checkpoint(runs / name / "checkpoint_last.pth")["optimizer"]["param_groups"][0]["lr"]  # noqa: E731
    assert main(["train", "flat", "--runs_dir", str(runs), "--num_epochs", "2", "--learning_rate", "3e-3", *common]) == 0
    assert last_lr("flat") == pytest.approx(3e-3)
    # 4 steps per epoch, 8 in all: the factor at the last step (7) is 0.5 * (1 + cos(pi * 5/6)) = 0.067
    assert main(["train", "cos", "--runs_dir", str(runs), "--num_epochs", "2", "--learning_rate", "3e-3",
                 "--lr_schedule", "cosine", "--warmup_steps", "2", *common]) == 0
    assert last_lr("cos") == pytest.approx(3e-3 * 0.0670, rel=1e-2)
    # resumed without the flags, the run keeps its rate and its cosine, now over 3 epochs (step 11 of 12)
    assert main(["train", "cos", "--runs_dir", str(runs), "--num_epochs", "3", "--resume_if_exists", *common]) == 0
    assert last_lr("cos") == pytest.approx(3e-3 * 0.5 * (1 + math.cos(math.pi * 9 / 10)), rel=1e-2)
    capsys.readouterr()
    assert main(["train", "long", "--runs_dir", str(runs), "--num_epochs", "1", "--warmup_steps", "4", *common]) == 2
    err = capsys.readouterr().err
    assert "--warmup_steps 4 is not shorter than the whole run" in err and len(err.strip().splitlines()) == 1
    # warm-up alone: the rate rises over 6 steps, then holds (8 steps in all; the last rate is the full one)
    assert main(["train", "warm", "--runs_dir", str(runs), "--num_epochs", "2", "--learning_rate", "3e-3",
                 "--warmup_steps", "6", *common]) == 0
    assert last_lr("warm") == pytest.approx(3e-3)
    from vaelib.runs import RunConfig
    from vaelib.training import _lr_factor  # the CLI's _lr_schedule, now fit's
    rise = _lr_factor(RunConfig(epochs=2, warmup_steps=4, lr_schedule="constant"), steps_per_epoch=4)
    assert [rise(step) for step in range(6)] == pytest.approx([0.25, 0.5, 0.75, 1, 1, 1])


@needs_mnist
def test_width_flags_reach_the_model(tmp_path):
    from vaelib import load
    runs = tmp_path / "runs"
    assert main(["train", "narrow", "--subset", "300", "--num_epochs", "1", "--runs_dir", str(runs),
                 "--arch", "mlp", "--hidden_units", "64", "--hidden_dim", "5", "--quiet"]) == 0
    model = load(runs / "narrow" / "checkpoint_last.pth")
    assert model.config.hidden == 64 and model.encoder.fc.weight.shape == (64, 784) and model.latent_dim == 5
    assert main(["train", "conv", "--subset", "300", "--num_epochs", "1", "--runs_dir", str(runs),
                 "--channels", "8", "--hidden_units", "32", "--quiet"]) == 0
    assert load(runs / "conv" / "checkpoint_last.pth").config.channels == 8


@needs_mnist
def test_a_pixelcnn_run_trains_on_binary_images_samples_reproducibly_and_evaluates(tmp_path, capsys):
    from vaelib import load
    runs = tmp_path / "runs"
    assert main(["train", "ar", "--subset", "300", "--num_epochs", "1", "--runs_dir", str(runs), "--channels", "8",
                 "--hidden_units", "32", "--likelihood_type", "pixelcnn", "--quiet"]) == 0
    ckpt = runs / "ar" / "checkpoint_last.pth"
    assert load(ckpt).config.likelihood == "pixelcnn"
    capsys.readouterr()
    assert main(["generate", "--checkpoint_path", str(ckpt), "--info_only"]) == 0
    assert "binarize: dynamic" in capsys.readouterr().out
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    for out in (first, second):
        assert main(["generate", "--checkpoint_path", str(ckpt), "--num_samples", "4", "--grid_size", "2",
                     "--output_path", str(out), "--seed", "7"]) == 0
    assert first.read_bytes() == second.read_bytes()  # pixels are drawn one by one, from the seed
    assert main(["evaluate", "--checkpoint_path", str(ckpt), "--k", "3", "--subset", "20"]) == 0
    assert "test NLL (IWAE, k=3)" in capsys.readouterr().out


@needs_mnist
def test_a_deeper_pixelcnn_decoder_is_one_flag(tmp_path, capsys):
    from vaelib import load
    runs = tmp_path / "runs"
    common = ["--subset", "200", "--runs_dir", str(runs), "--channels", "8", "--hidden_units", "32", "--quiet"]
    assert main(["train", "deep", "--num_epochs", "1", "--likelihood_type", "pixelcnn", "--pixelcnn_layers", "3",
                 *common]) == 0
    model = load(runs / "deep" / "checkpoint_last.pth")
    assert model.config.pixelcnn_layers == 3 and len(model.likelihood.gated) == 2
    capsys.readouterr()
    assert main(["generate", "--checkpoint_path", str(runs / "deep" / "checkpoint_last.pth"), "--info_only"]) == 0
    assert "likelihood pixelcnn (3 layers)" in capsys.readouterr().out
    # resuming with another depth is refused by name; the depth without the pixelcnn likelihood too
    assert main(["train", "deep", "--num_epochs", "2", "--likelihood_type", "pixelcnn", "--pixelcnn_layers", "2",
                 "--resume_if_exists", *common]) == 2
    assert "--pixelcnn_layers 2 (the checkpoint has 3)" in capsys.readouterr().err
    assert main(["train", "flat", "--num_epochs", "1", "--pixelcnn_layers", "2", *common]) == 2
    assert "add --likelihood_type pixelcnn" in capsys.readouterr().err


@pytest.mark.parametrize("flags, shape, dataset", [
    (["--dataset", "fashion_mnist", "--likelihood_type", "continuous_bernoulli"], (1, 28, 28), "fashion_mnist"),
    (["--image_size", "64", "--channels", "4"], (1, 64, 64), "mnist"),
])
def test_train_on_another_dataset_or_size_then_generate_and_evaluate(flags, shape, dataset, tmp_path, capsys):
    import os
    from pathlib import Path
    from vaelib import load
    if not (Path(os.environ.get("VAELIB_DATA", "")) / ("FashionMNIST" if dataset != "mnist" else "MNIST")).is_dir():
        pytest.skip(f"{dataset} not found: set VAELIB_DATA")
    runs = tmp_path / "runs"
    assert main(["train", "r", "--subset", "200", "--num_epochs", "1", "--runs_dir", str(runs), "--hidden_units", "32",
                 "--quiet", *flags]) == 0
    ckpt = runs / "r" / "checkpoint_last.pth"
    model = load(ckpt)
    assert model.image_shape == shape and model.checkpoint["data"]["dataset"] == dataset
    capsys.readouterr()
    assert main(["generate", "--checkpoint_path", str(ckpt), "--info_only"]) == 0
    assert f"trained on: {dataset}, images {shape}" in capsys.readouterr().out
    out = tmp_path / "s.png"
    assert main(["generate", "--checkpoint_path", str(ckpt), "--output_path", str(out), "--num_samples", "4",
                 "--grid_size", "2"]) == 0
    from PIL import Image
    assert Image.open(out).size == (4 * (2 * shape[2] + 6), 4 * (2 * shape[1] + 6))  # 2x2 grid, 4x upscaled
    assert main(["evaluate", "--checkpoint_path", str(ckpt), "--k", "2", "--subset", "10"]) == 0
    printed = capsys.readouterr().out
    assert f"10 {dataset} test images" in printed and "bits/dim" in printed
    # resuming keeps the run's data; a flag that says otherwise is refused
    assert main(["train", "r", "--num_epochs", "2", "--runs_dir", str(runs), "--resume_if_exists", "--quiet",
                 "--subset", "200", "--dataset", "kmnist"]) == 2
    assert "--dataset kmnist" in capsys.readouterr().err


@needs_mnist
def test_evaluate_scores_samples_with_the_mnist_classifier(tmp_path, capsys):
    from pathlib import Path
    pretrained = Path(__file__).resolve().parent.parent / "pretrained"
    assert main(["evaluate", "--checkpoint_path", str(pretrained / "mlp_vae.pth"), "--k", "2", "--subset", "20",
                 "--samples", "500"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("sample quality (500 binary samples vs the 10,000 binarized test images")
    fd = float(line.split("Frechet distance ")[1].split(",")[0])
    assert 60 < fd < 300  # mlp_vae: about 110 at 2,000 samples; noise scores about 530-745
    from vaelib import build_vae, save
    other = save(build_vae("mlp", latent_dim=2, hidden=8, likelihood="gaussian", image_shape=(3, 8, 8)),
                 tmp_path / "colour.pth", data={"dataset": "images", "image_shape": [3, 8, 8], "binarize": None})
    assert main(["evaluate", "--checkpoint_path", str(other), "--k", "2", "--samples", "100"]) == 2
    assert "needs a model trained on MNIST" in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint_path", str(other), "--k", "2"]) == 2
    assert "trained on your own images ('images')" in capsys.readouterr().err
