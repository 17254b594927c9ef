"""vaelib train --model hierarchical|vqvae|code_prior|latent_ddpm and evaluate on their checkpoints
(vaelib.train_models)."""
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
    assert f"pass the model it was trained on with it, --checkpoint_path {vq} --prior {last}" in capsys.readouterr().err
    conv = str(vaelib.course.pretrained_path("conv_vae"))
    assert main(["generate", "--checkpoint_path", conv, "--prior", str(last),
                 "--output_path", str(tmp_path / "h.png")]) == 2
    assert "holds a CodePixelCNN, not a DDPM over latents" in capsys.readouterr().err
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
    (["--quantizer", "fsq"], "--quantizer shapes a VQ-VAE: add --model vqvae, or drop it"),
    (["--latent_dims", "8", "4"], "--latent_dims shapes a hierarchical VAE: add --model hierarchical"),
    (["--diffusion_steps", "50"], "--diffusion_steps shapes a latent DDPM: add --model latent_ddpm, or drop it"),
    (["--model", "latent_ddpm"], "--latents_of is missing: a latent DDPM models the latents of a trained VAE"),
    (["--model", "latent_ddpm", "--codes_of", "v.pth"], "--codes_of does not apply to --model latent_ddpm"),
    (["--model", "vqvae", "--latents_of", "v.pth"], "--latents_of does not apply to --model vqvae"),
    (["--latents_of", "v.pth"], "--latents_of names the VAE whose latents a latent DDPM learns: add --model "
                                "latent_ddpm"),
    (["--model", "latent_ddpm", "--latents_of", "pretrained/conv_vae.pth", "--ema_decay", "2"],
     "--ema_decay 2.0: give a number in (0, 1)"),
    (["--model", "latent_ddpm", "--latents_of", "pretrained/conv_vae.pth", "--binarize", "none"],
     "--model latent_ddpm takes its data as it is built for (as its VAE was trained): drop --binarize"),
])
def test_flags_that_do_not_apply_to_the_model_are_refused_before_anything_runs(tmp_path, capsys, argv, message):
    assert main(["train", "x", "--runs_dir", str(tmp_path / "runs"), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


@needs_mnist
def test_a_ddpm_over_a_vaes_latents_trains_generates_and_is_scored(tmp_path, capsys):
    from vaelib.diffusion import DDPM
    runs, conv = str(tmp_path / "runs"), str(vaelib.course.pretrained_path("conv_vae"))
    assert main(["train", "d", "--runs_dir", runs, "--model", "latent_ddpm", "--latents_of", conv,
                 "--diffusion_steps", "20", "--hidden_units", "32", "--ema_decay", "0.9", "--batch_size", "64",
                 *SMALL]) == 0
    last = tmp_path / "runs" / "d" / "checkpoint_last.pth"
    ddpm = vaelib.load(last)
    assert isinstance(ddpm, DDPM) and ddpm.dim == 20 and ddpm.steps == 20 and ddpm.config["hidden"] == 32
    assert ddpm.ema_decay == 0.9 and 0.9 < ddpm.scale < 1.1       # the std of conv_vae's z ~ q(z|x): about 1
    assert ddpm.checkpoint["train_args"]["latents_of"] == conv and ddpm.checkpoint["data"] is None
    assert "test_loss_simple" in ddpm.checkpoint["history"][-1]
    # the average moved away from the initial weights, and is not the trained weights themselves
    assert not torch.equal(ddpm.ema.inp.weight, ddpm.predictor.inp.weight)
    assert main(["train", "d", "--runs_dir", runs, "--model", "latent_ddpm", "--resume_if_exists", "--subset", "300",
                 "--num_epochs", "2", "--quiet"]) == 0           # continued without --latents_of: recorded
    assert len(vaelib.load(last).checkpoint["history"]) == 2
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint_path", conv, "--prior", str(last), "--subset", "50",
                 "--samples", "100"]) == 0
    out = capsys.readouterr().out
    assert "test negative ELBO, one z ~ q(z|x) per image" in out and "with the DDPM's bound on log p(z)" in out
    assert "100 decoded DDPM samples vs the 10,000 binarized test images" in out and "Frechet distance" in out
    assert main(["generate", "--checkpoint_path", conv, "--prior", str(last), "--output_path", str(tmp_path / "g.png"),
                 "--num_samples", "4", "--grid_size", "2"]) == 0
    assert (tmp_path / "g.png").stat().st_size > 0
    assert main(["generate", "--checkpoint_path", str(last), "--info_only"]) == 0
    assert f"trained on: the latents of the VAE {conv}" in capsys.readouterr().out
    # the DDPM alone, given to a VAE of another size, or to a VQ-VAE: one line each, naming the fix
    assert main(["generate", "--checkpoint_path", str(last), "--output_path", str(tmp_path / "h.png")]) == 2
    err = capsys.readouterr().err
    assert f"pass the model it was trained on with it, --checkpoint_path {conv} --prior {last}" in err
    two = str(vaelib.course.pretrained_path("vae_2d"))
    assert main(["generate", "--checkpoint_path", two, "--prior", str(last),
                 "--output_path", str(tmp_path / "h.png")]) == 2
    assert "models 20-dimensional latents" in capsys.readouterr().err
    vq = str(vaelib.course.pretrained_path("vq_mnist"))
    assert main(["evaluate", "--checkpoint_path", vq, "--prior", str(last), "--subset", "10"]) == 2
    assert "holds a DDPM, not a prior over codes" in capsys.readouterr().err
    assert main(["train", "q", "--runs_dir", runs, "--model", "latent_ddpm", "--latents_of", vq, *SMALL]) == 2
    assert "holds a VQVAE, not an unconditional VAE" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "q").exists()
    assert not (tmp_path / "h.png").exists()


@needs_mnist
def test_a_prior_whose_size_contradicts_its_model_is_refused(tmp_path):
    from vaelib.train_models import train_model
    conv, two = (str(vaelib.course.pretrained_path(name)) for name in ("conv_vae", "vae_2d"))
    with pytest.raises(ValueError, match=r"dim=5 contradicts latents_of=.*conv_vae.pth', which has 20 latent "
                                         r"dimensions: drop it \(the latent DDPM takes its model's\)"):
        train_model(tmp_path / "a", "latent_ddpm", {"dim": 5}, latents_of=conv, subset=300, epochs=1, progress=False)
    vq = str(vaelib.course.pretrained_path("vq_mnist"))
    with pytest.raises(ValueError, match=r"num_codes=16 contradicts codes_of=.*vq_mnist.pth', which has 256 codes"):
        train_model(tmp_path / "b", "code_prior", {"num_codes": 16}, codes_of=vq, subset=300, epochs=1, progress=False)
    train_model(tmp_path / "c", "latent_ddpm", {"hidden": 16, "blocks": 1, "steps": 10}, latents_of=conv, subset=300,
                epochs=1, batch_size=100, progress=False, log=lambda *_: None)
    with pytest.raises(ValueError, match=r"latents_of=.*vae_2d.pth' has 2 latent dimensions, and the latent DDPM "
                                         r"being continued models 20: give the model it was trained on"):
        train_model(tmp_path / "c", "latent_ddpm", latents_of=two, resume_if_exists=True, subset=300, epochs=2,
                    progress=False)
