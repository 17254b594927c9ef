"""vaelib train --model hierarchical|vqvae|code_prior and evaluate on their checkpoints (vaelib.train_models)."""
import pytest
import torch

import vaelib
from vaelib.cli import main
from vaelib.hierarchical import HierarchicalVAE
from vaelib.vqvae import VQVAE

from .conftest import needs_mnist

SMALL = ["--subset", "300", "--num_epochs", "1", "--quiet"]


@needs_mnist
def test_a_hierarchy_trains_resumes_and_evaluates_from_the_command_line(tmp_path, capsys):
    runs = str(tmp_path / "runs")
    assert main(["train", "h", "--runs_dir", runs, "--model", "hierarchical", "--latent_dims", "8", "4",
                 "--hidden_units", "32", "--channels", "8", "--beta_annealing_period", "3", "--free_bits", "0.5",
                 *SMALL]) == 0
    best = tmp_path / "runs" / "h" / "checkpoint_best.pth"
    model = vaelib.load(best)                                 # rebuilt from the file, no model= needed
    assert isinstance(model, HierarchicalVAE) and model.latent_dims == (8, 4) and model.hidden == 32
    args = torch.load(best, weights_only=True)["train_args"]
    assert args["model"] == "hierarchical" and args["warmup_epochs"] == 3 and args["free_bits"] == 0.5
    # continued: its warm-up goes on from the stored one (beta keeps rising), its model from the checkpoint
    assert main(["train", "h", "--runs_dir", runs, "--model", "hierarchical", "--resume_if_exists", "--subset", "300",
                 "--num_epochs", "2", "--quiet"]) == 0
    history = torch.load(tmp_path / "runs" / "h" / "checkpoint_last.pth", weights_only=True)["history"]
    assert len(history) == 2 and 0 < history[0]["beta"] < history[1]["beta"] < 1
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint_path", str(best), "--k", "5", "--subset", "40"]) == 0
    out = capsys.readouterr().out
    assert "(HierarchicalVAE) on 40 mnist test images" in out and "z_1 (8) KL" in out and "z_2 (4) KL" in out
    assert "test NLL (IWAE, k=5)" in out
    # generate: the record of the run, and a grid of samples; a digit is refused (the model is not conditional)
    assert vaelib.load(best).checkpoint["train_args"]["model"] == "hierarchical"
    assert main(["generate", "--checkpoint_path", str(best), "--info_only"]) == 0
    out = capsys.readouterr().out
    assert "model: HierarchicalVAE, latent_dims=[8, 4], hidden=32" in out and "warmup_epochs: 3" in out
    assert main(["generate", "--checkpoint_path", str(best), "--output_path", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").stat().st_size > 0
    assert main(["generate", "--checkpoint_path", str(best), "--output_path", str(tmp_path / "d.png"),
                 "--digit", "3"]) == 2
    assert "this HierarchicalVAE is not conditional: drop it" in capsys.readouterr().err
    # a model setting that contradicts the run, and another kind on the same run, are refused in one line
    assert main(["train", "h", "--runs_dir", runs, "--model", "hierarchical", "--latent_dims", "8", "5",
                 "--resume_if_exists", "--num_epochs", "3"]) == 2
    assert "latent_dims=[8, 5] contradict the run being continued" in capsys.readouterr().err
    assert main(["train", "h", "--runs_dir", runs, "--model", "vqvae", "--resume_if_exists", "--num_epochs", "3"]) == 2
    assert "holds a HierarchicalVAE, not a vqvae model" in capsys.readouterr().err


@needs_mnist
def test_a_vq_vae_trains_and_reports_its_codebook(tmp_path, capsys):
    runs = str(tmp_path / "runs")
    assert main(["train", "v", "--runs_dir", runs, "--model", "vqvae", "--quantizer", "ema_restart",
                 "--num_codes", "32", "--code_dim", "8", "--channels", "8", *SMALL]) == 0
    best = tmp_path / "runs" / "v" / "checkpoint_best.pth"
    model = vaelib.load(best)
    assert isinstance(model, VQVAE) and model.num_codes == 32
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint_path", str(best), "--subset", "100"]) == 0
    out = capsys.readouterr().out
    assert "test MSE" in out and "codes used" in out and "of 32" in out and "no likelihood" in out
    with pytest.raises(ValueError, match="no prior over its codes"):
        model.sample(4)
    assert main(["generate", "--checkpoint_path", str(best), "--output_path", str(tmp_path / "g.png")]) == 2
    err = capsys.readouterr().err
    assert "no prior over its codes" in err and "--model code_prior --codes_of" in err and "--prior" in err
    assert not (tmp_path / "g.png").exists()


@needs_mnist
def test_a_prior_over_a_vq_vaes_codes_trains_generates_and_is_scored(tmp_path, capsys):
    from vaelib.code_prior import CodePixelCNN
    runs = str(tmp_path / "runs")
    assert main(["train", "v", "--runs_dir", runs, "--model", "vqvae", "--num_codes", "32", "--code_dim", "8",
                 "--channels", "8", *SMALL]) == 0
    vq = str(tmp_path / "runs" / "v" / "checkpoint_last.pth")
    assert main(["train", "p", "--runs_dir", runs, "--model", "code_prior", "--codes_of", vq, "--pixelcnn_layers", "1",
                 "--hidden_units", "16", *SMALL]) == 0
    last = tmp_path / "runs" / "p" / "checkpoint_last.pth"
    prior = vaelib.load(last)
    assert isinstance(prior, CodePixelCNN) and prior.num_codes == 32 and prior.config["layers"] == 1
    assert prior.config["features"] == 16 and prior.checkpoint["train_args"]["codes_of"] == vq
    assert "test_bits" in prior.checkpoint["history"][-1]
    # continued without --codes_of: the run recorded it
    assert main(["train", "p", "--runs_dir", runs, "--model", "code_prior", "--resume_if_exists", "--subset", "300",
                 "--num_epochs", "2", "--quiet"]) == 0
    assert len(vaelib.load(last).checkpoint["history"]) == 2
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint_path", vq, "--prior", str(last), "--subset", "100"]) == 0
    out = capsys.readouterr().out
    assert "bits per test image" in out and "uniform codes: 245" in out     # 49 log2(32)
    assert main(["generate", "--checkpoint_path", vq, "--prior", str(last), "--output_path", str(tmp_path / "g.png"),
                 "--num_samples", "4", "--grid_size", "2"]) == 0
    assert (tmp_path / "g.png").stat().st_size > 0
    assert main(["generate", "--checkpoint_path", str(last), "--info_only"]) == 0
    assert f"trained on: the codes of the VQ-VAE {vq}" in capsys.readouterr().out
    # the prior alone, a prior given to a VAE, a VAE given as the prior: one line each, naming the fix
    assert main(["generate", "--checkpoint_path", str(last), "--output_path", str(tmp_path / "h.png")]) == 2
    assert f"pass the VQ-VAE with the prior, --checkpoint_path {vq} --prior {last}" in capsys.readouterr().err
    conv = str(vaelib.course.pretrained_path("conv_vae"))
    assert main(["generate", "--checkpoint_path", conv, "--prior", str(last),
                 "--output_path", str(tmp_path / "h.png")]) == 2
    assert "holds a VAE: drop --prior" in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint_path", vq, "--prior", conv, "--subset", "10"]) == 2
    assert "holds a VAE, not a prior over codes" in capsys.readouterr().err
    assert main(["train", "q", "--runs_dir", runs, "--model", "code_prior", "--codes_of", conv, *SMALL]) == 2
    assert "holds a VAE, not a VQ-VAE" in capsys.readouterr().err and not (tmp_path / "runs" / "q").exists()
    assert not (tmp_path / "h.png").exists()


@pytest.mark.parametrize("argv, message", [
    (["--model", "code_prior"], "--codes_of is missing: a code prior models the codes of a trained VQ-VAE"),
    (["--model", "code_prior", "--free_bits", "1"], "--free_bits does not apply to --model code_prior"),
    (["--model", "vqvae", "--codes_of", "v.pth"], "--codes_of does not apply to --model vqvae"),
    (["--codes_of", "v.pth"], "--codes_of names the VQ-VAE whose codes a code prior learns: add --model code_prior"),
    (["--model", "vqvae", "--likelihood_type", "mse"], "--likelihood_type does not apply to --model vqvae"),
    (["--model", "vqvae", "--free_bits", "1"], "--free_bits does not apply to --model vqvae"),
    (["--model", "hierarchical", "--quantizer", "fsq"], "--quantizer does not apply to --model hierarchical"),
    (["--model", "hierarchical", "--binarize", "none"], "drop --binarize and --image_size"),
    (["--quantizer", "fsq"], "--quantizer shapes a hierarchical VAE or a VQ-VAE: add --model"),
    (["--latent_dims", "8", "4"], "--latent_dims shapes a hierarchical VAE or a VQ-VAE"),
])
def test_flags_that_do_not_apply_to_the_model_are_refused_before_anything_runs(tmp_path, capsys, argv, message):
    assert main(["train", "x", "--runs_dir", str(tmp_path / "runs"), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
