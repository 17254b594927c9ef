"""Better posteriors (IAF) and better priors (mixture of Gaussians, VampPrior), and free bits."""
import math

import pytest
import torch
from torch.autograd.functional import jacobian

import vaelib
from vaelib import build_vae, fit, load, save
from vaelib.objectives import ELBOObjective
from vaelib.posteriors import MADE, IAFPosterior
from vaelib.priors import MixtureOfGaussiansPrior, StandardNormalPrior, VampPrior
from vaelib.vae import VAEConfig


def test_made_outputs_depend_only_on_earlier_inputs_in_its_order():
    for reverse in (False, True):
        made = MADE(5, 16, reverse=reverse)
        x = torch.randn(1, 5, requires_grad=True)
        m, s = made(x)
        for out in (m, s):
            jac = torch.stack([torch.autograd.grad(out[0, i], x, retain_graph=True)[0][0] for i in range(5)])
            allowed = torch.tril(torch.ones(5, 5), -1) if not reverse else torch.triu(torch.ones(5, 5), 1)
            assert torch.all(jac[allowed == 0] == 0)   # no path from a later (or the same) input
            assert torch.all(jac[allowed == 1] != 0)   # every earlier input is seen


@pytest.mark.parametrize("steps", [1, 3])
def test_the_flow_log_density_agrees_with_autograd_jacobian(steps):
    torch.manual_seed(0)
    with torch.no_grad():
        pass
    dtype = torch.float64
    post = IAFPosterior(4, steps=steps, hidden=12, context_dim=3).to(dtype)
    for _ in range(3):
        mu, logvar, h = torch.randn(1, 4, dtype=dtype), 0.3 * torch.randn(1, 4, dtype=dtype), torch.randn(1, 3, dtype=dtype)
        q = post(mu, logvar, h)
        z0 = q.base_dist.rsample()

        def flow(z):
            x = z.unsqueeze(0)
            for made in post.steps:  # the IAF step written out: z' = sigma z + (1 - sigma) m
                m, s = made(x, h)
                sigma = torch.sigmoid(s + 1.0)
                x = sigma * x + (1 - sigma) * m
            return x[0]
        z = flow(z0[0])
        exact = q.base_dist.log_prob(z0) - torch.linalg.slogdet(jacobian(flow, z0[0]))[1]
        torch.testing.assert_close(post(mu, logvar, h).log_prob(z.detach().unsqueeze(0)), exact)  # by inversion
        drawn = q.rsample()
        torch.testing.assert_close(q.log_prob(drawn), post(mu, logvar, h).log_prob(drawn.detach().clone()))


def _grid_mass(prior, extent=8.0, n=401):
    axis = torch.linspace(-extent, extent, n, dtype=torch.float64)
    zy, zx = torch.meshgrid(axis, axis, indexing="ij")
    z = torch.stack([zx.flatten(), zy.flatten()], 1)
    with torch.no_grad():
        density = prior().log_prob(z.float()).double().exp()
    return float(density.sum() * (axis[1] - axis[0]) ** 2)


@pytest.mark.parametrize("make", [
    lambda: StandardNormalPrior(2),
    lambda: MixtureOfGaussiansPrior(2, components=5),
    lambda: VampPrior(2, vaelib.networks.MLPEncoder(2, 16, image_shape=(1, 6, 6)), (1, 6, 6), components=7),
], ids=["standard", "mog", "vamp"])
def test_each_prior_is_a_normalized_density(make):
    torch.manual_seed(0)
    prior = make()
    if isinstance(prior, MixtureOfGaussiansPrior):  # not just the initial values
        with torch.no_grad():
            prior.logits.copy_(torch.tensor([0.0, 1.0, -1.0, 2.0, 0.5]))
            prior.logvars.fill_(-1.0)
    assert _grid_mass(prior) == pytest.approx(1.0, abs=2e-3)
    z = prior.sample(20000, torch.Generator().manual_seed(0))
    assert z.shape == (20000, 2)
    with torch.no_grad():  # samples follow the density: their mean is the distribution's mean
        torch.testing.assert_close(z.mean(0), prior().mean.float(), atol=0.04, rtol=0)


def test_the_vampprior_pseudo_inputs_receive_gradients_and_share_the_encoder():
    torch.manual_seed(0)
    model = build_vae(config=VAEConfig(arch="mlp", latent_dim=3, hidden=16, prior_kind="vamp", prior_components=4))
    assert model.prior.encoder is model.encoder
    assert not any(k.startswith("prior.encoder") for k in model.state_dict())  # the encoder is stored once
    model.elbo_terms(torch.bernoulli(torch.rand(8, 1, 28, 28))).loss.backward()
    grad = model.prior.pseudo_inputs.grad
    assert grad is not None and grad.abs().sum() > 0


@pytest.mark.parametrize("posterior, prior", [("iaf", "standard"), ("gaussian", "mog"), ("gaussian", "vamp"),
                                              ("iaf", "vamp")])
def test_flow_posteriors_and_learned_priors_train_save_load_and_evaluate(posterior, prior, tmp_path):
    torch.manual_seed(0)
    config = VAEConfig(arch="mlp", latent_dim=4, hidden=32, posterior_kind=posterior, iaf_hidden=16, prior_kind=prior,
                       prior_components=6)
    model = build_vae(config=config)
    x = torch.bernoulli(torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 0.3)
    history = fit(model, x, x[:32], epochs=3, batch_size=16, progress=False)
    assert history[-1]["test_elbo"] > history[0]["test_elbo"] and history[0]["test_kl"] > 0
    loaded = load(save(model, tmp_path / "m.pth"))
    assert loaded.config == model.config
    result = vaelib.evaluation.iwae_nll(loaded, x[:8], k=20, progress=False)
    again = vaelib.evaluation.iwae_nll(model.eval(), x[:8], k=20, progress=False)
    assert result["nll"] == pytest.approx(again["nll"], abs=1e-4) and math.isfinite(result["nll"])
    elbo = vaelib.evaluation.evaluate_elbo(loaded, x[:8])["elbo"]
    assert -result["nll"] > elbo - 2  # L_20 is above the ELBO, up to the noise of one z per image
    assert loaded.sample(5, generator=torch.Generator().manual_seed(0)).shape == (5, 1, 28, 28)
    with pytest.raises(ValueError, match="temperature"):
        if prior != "standard":
            loaded.sample(2, temperature=0.5)
        else:
            raise ValueError("temperature: a standard prior takes any; nothing to refuse")


def test_free_bits_stop_pushing_a_dimension_below_lambda():
    torch.manual_seed(0)
    model = build_vae("mlp", latent_dim=3, hidden=16)
    x = torch.bernoulli(torch.rand(32, 1, 28, 28))
    for lam, expect_grad in ((0.0, True), (100.0, False)):
        model.zero_grad()
        torch.manual_seed(1)
        ELBOObjective(free_bits=lam)(model, x, None, 0).loss.backward()
        # the KL term's gradient reaches the encoder's log-variance head only while the KL counts
        enc = model.encoder.logvar.weight.grad
        torch.manual_seed(1)
        model.zero_grad()
        terms = model.elbo_terms(x)
        (-terms.reconstruction.mean()).backward()
        rec_only = model.encoder.logvar.weight.grad
        assert (not torch.allclose(enc, rec_only)) is expect_grad
    with pytest.raises(ValueError, match="free bits .* IWAE"):
        vaelib.objectives.make_objective(iwae_k=5, free_bits=0.5)


def test_an_iaf_model_trains_through_the_command_line(tmp_path, capsys):
    import os
    from pathlib import Path
    if not (Path(os.environ.get("VAELIB_DATA", "")) / "MNIST" / "raw").is_dir():
        pytest.skip("MNIST not found: set VAELIB_DATA")
    from vaelib.cli import main
    runs = tmp_path / "runs"
    assert main(["train", "f", "--runs_dir", str(runs), "--subset", "200", "--num_epochs", "1", "--arch", "mlp",
                 "--hidden_units", "32", "--posterior", "iaf", "--iaf_hidden", "16", "--prior", "mog",
                 "--prior_components", "3", "--free_bits", "0.05", "--quiet"]) == 0
    model = load(runs / "f" / "checkpoint_last.pth")
    assert (model.config.posterior_kind, model.config.prior_kind, model.config.prior_components) == ("iaf", "mog", 3)
    assert model.checkpoint["train_args"]["free_bits"] == 0.05
    assert main(["train", "f", "--runs_dir", str(runs), "--num_epochs", "2", "--resume_if_exists", "--subset", "200",
                 "--prior", "vamp", "--quiet"]) == 2
    assert "--prior vamp (the checkpoint has mog)" in capsys.readouterr().err
