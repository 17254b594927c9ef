"""vaelib.diffusion: the forward process's marginals, the bound on a toy with a known density, training through fit."""
import math

import pytest
import torch
from torch import nn

import vaelib
from vaelib.data import DataError, TensorData
from vaelib.diffusion import DDPM, NoiseSchedule, ddpm_objective


def test_the_forward_process_has_the_closed_form_marginals_it_claims():
    s = NoiseSchedule(200)
    g = torch.Generator().manual_seed(0)
    x = torch.full((400_000,), 1.5)                       # x_0, simulated one step at a time
    for t in range(1, 201):
        x = (1 - s.betas[t]).sqrt() * x + s.betas[t].sqrt() * torch.randn(x.shape, generator=g)
        if t in (1, 10, 50, 120, 200):
            a = s.alpha_bar[t].item()
            mean, var = math.sqrt(a) * 1.5, 1 - a
            assert abs(x.mean().item() - mean) <= 0.01 * max(mean, math.sqrt(var)), (t, x.mean().item(), mean)
            assert abs(x.var().item() - var) <= 0.01 * var, (t, x.var().item(), var)
    # ...and q_sample draws the same marginal in one step
    t = torch.full((40_000,), 50)
    one_step = s.q_sample(torch.full((40_000, 1), 1.5), t, torch.randn(40_000, 1, generator=g))
    assert abs(one_step.var().item() - (1 - s.alpha_bar[50].item())) < 0.01
    assert s.snr(torch.tensor([1])) > 100 > 0.01 > s.snr(torch.tensor([200]))


class _Oracle(nn.Module):
    """The exact E[eps | x_t] for data N(0, s^2): sqrt(1 - abar) x_t / (abar s^2 + 1 - abar)."""

    def __init__(self, schedule, s):
        super().__init__()
        self.schedule, self.s = schedule, s

    def forward(self, x, t):
        a = self.schedule.alpha_bar[t][:, None]
        return (1 - a).sqrt() * x / (a * self.s ** 2 + 1 - a)


def _exact_gap(schedule, s: float) -> float:
    """E[-ELBO] - E[-log p(x_0)] for data N(0, s^2) and the exact noise predictor, in closed form: the true reverse
    transitions are Gaussian with the model's means but larger variances (beta_tilde + the spread of x_0 given
    x_t), so the gap is KL(q(x_T) || N(0, 1)) plus one Gaussian KL of variances per step."""
    ab, b, T = schedule.alpha_bar.double(), schedule.betas.double(), schedule.steps

    def kl(rv, pv):
        return 0.5 * (math.log(pv / rv) + rv / pv - 1)
    v_T = ab[T] * s ** 2 + 1 - ab[T]
    gap = 0.5 * (v_T - 1 - math.log(v_T))
    for t in range(1, T + 1):
        a, ap, beta = ab[t].item(), ab[t - 1].item(), b[t].item()
        spread = s ** 2 * (1 - a) / (a * s ** 2 + 1 - a)                 # Var(x_0 | x_t)
        if t == 1:
            gap += kl(spread, beta)
        else:
            tilde = beta * (1 - ap) / (1 - a)
            gap += kl(tilde + (math.sqrt(ap) * beta / (1 - a)) ** 2 * spread, tilde)
    return gap


def test_the_bound_lies_above_the_true_nll_by_exactly_its_gap_on_a_gaussian_toy():
    s = 0.7
    model = DDPM(1, steps=100)
    model.predictor = _Oracle(model.schedule, s)
    x0 = s * torch.randn(20_000, 1, generator=torch.Generator().manual_seed(1))
    terms = model.elbo_terms(x0, generator=torch.Generator().manual_seed(2))
    nll = -torch.distributions.Normal(0.0, s).log_prob(x0).sum(1)
    difference = terms["nll_bound"].double() - nll.double()
    gap, error = difference.mean().item(), difference.std().item() / math.sqrt(len(x0))
    expected = _exact_gap(model.schedule, s)
    assert expected > 0 and abs(gap - expected) < 4 * error + 0.01, (gap, expected, error)   # -ELBO >= -log p
    assert torch.allclose(terms["nll_bound"], terms["prior"] + terms["diffusion"].sum(0) + terms["decoder"])
    assert terms["diffusion"].shape == (99, 20_000) and terms["prior"].mean() < 0.01
    # a worse predictor gives a looser bound, never one below the true NLL
    model.predictor = _Oracle(model.schedule, 2 * s)
    worse = model.elbo_terms(x0, generator=torch.Generator().manual_seed(2))["nll_bound"].mean().item()
    assert worse > nll.mean().item() + gap + 0.05


def test_a_ddpm_trains_through_fit_on_tensor_data_and_samples():
    torch.manual_seed(0)
    x = torch.randn(2048, 2) * torch.tensor([2.0, 0.5]) + 1
    model = DDPM(2, steps=50, hidden=64, blocks=2)
    history = vaelib.fit(model, TensorData(x), objective=ddpm_objective, epochs=80, lr=2e-3, seed=0, progress=False)
    assert history[-1]["train_loss_simple"] < 0.8 * history[0]["train_loss_simple"]
    drawn, path = model.sample(2000, generator=torch.Generator().manual_seed(0), trajectory=True)
    assert drawn.shape == (2000, 2) and path.shape == (51, 2000, 2) and torch.equal(path[-1], drawn)
    assert torch.allclose(drawn.mean(0), torch.tensor([1.0, 1.0]), atol=0.3)
    assert torch.allclose(drawn.std(0), torch.tensor([2.0, 0.5]), rtol=0.3)


def test_wrong_vectors_are_refused_and_plain_tensors_stay_images():
    with pytest.raises(ValueError, match=r"expected vectors \(B, 3\), got \(4, 2\)"):
        DDPM(3, steps=10, hidden=8, blocks=1).loss_simple(torch.zeros(4, 2))
    with pytest.raises(DataError, match="NaN or infinite"):
        TensorData(torch.tensor([[float("nan")]]))
    with pytest.raises(DataError, match=r"images must be a tensor \(N, C, H, W\)"):   # unwrapped, it is images
        vaelib.fit(DDPM(2, steps=10, hidden=8, blocks=1), torch.randn(64, 2) * 5, objective=ddpm_objective,
                   epochs=1, progress=False)


def _twins(scale: float):
    """Two DDPMs with the same weights, one for data of std ``scale`` and one for unit-variance data."""
    torch.manual_seed(0)
    plain = DDPM(3, steps=20, hidden=16, blocks=1)
    scaled = DDPM(3, steps=20, hidden=16, blocks=1, scale=scale)
    scaled.load_state_dict(plain.state_dict())
    return plain, scaled


def test_a_scaled_ddpm_is_the_plain_one_on_the_data_divided_by_its_scale():
    plain, scaled = _twins(2.5)
    x = torch.randn(8, 3) * 2.5
    g = lambda: torch.Generator().manual_seed(0)   # noqa: E731
    assert torch.equal(scaled.loss_simple(x, generator=g()), plain.loss_simple(x / 2.5, generator=g()))
    assert torch.allclose(scaled.sample(4, generator=g()), plain.sample(4, generator=g()) * 2.5)
    # the bound is on the density of x itself: the change of variables adds D log(scale)
    a, b = scaled.elbo_terms(x, generator=g()), plain.elbo_terms(x / 2.5, generator=g())
    assert torch.allclose(a["nll_bound"], b["nll_bound"] + 3 * math.log(2.5))
    assert torch.equal(a["diffusion"], b["diffusion"]) and torch.equal(a["prior"], b["prior"])
    with pytest.raises(ValueError, match=r"scale=0: give the data's standard deviation"):
        DDPM(3, scale=0)


def test_the_weight_average_follows_the_optimizer_and_is_what_samples():
    from vaelib.diffusion import EMAUpdate
    torch.manual_seed(0)
    model = DDPM(2, steps=10, hidden=8, blocks=1, ema_decay=0.5)
    start = {k: v.clone() for k, v in model.predictor.state_dict().items()}
    assert all(torch.equal(v, model.ema.state_dict()[k]) for k, v in start.items())
    assert not any(p.requires_grad for p in model.ema.parameters())
    vaelib.fit(model, TensorData(torch.randn(64, 2)), objective=ddpm_objective, epochs=1, batch_size=32,
               callbacks=[EMAUpdate()], progress=False)
    # two steps: ema = 0.25 start + 0.25 w1 + 0.5 w2, so it lies strictly between the start and the end
    w = model.predictor.inp.weight
    assert not torch.equal(model.ema.inp.weight, w) and not torch.equal(model.ema.inp.weight, start["inp.weight"])
    averaged = model.averaged()
    assert averaged.ema is None and averaged.config["ema_decay"] is None
    assert all(torch.equal(v, model.ema.state_dict()[k]) for k, v in averaged.predictor.state_dict().items())
    g = lambda: torch.Generator().manual_seed(1)   # noqa: E731
    assert torch.equal(model.sample(3, generator=g()), averaged.sample(3, generator=g()))
    with pytest.raises(ValueError, match=r"ema_decay=1.5: give a number in \(0, 1\)"):
        DDPM(2, ema_decay=1.5)


def test_latent_diffusion_trains_on_fresh_draws_of_the_posterior():
    from vaelib.latent_diffusion import latent_ddpm_objective, latent_draws, latent_scale
    mu, std = torch.zeros(4096, 2), torch.full((4096, 2), 3.0)
    params = TensorData(torch.stack([mu, std], 1))
    assert latent_scale(params) == pytest.approx(3.0, rel=0.03)      # z ~ N(0, 9): std 3
    z1, z2 = latent_draws(params.tensor[:5]), latent_draws(params.tensor[:5])
    assert not torch.equal(z1, z2)                                     # a new draw each batch
    model = DDPM(2, steps=10, hidden=8, blocks=1, scale=3.0)
    assert latent_ddpm_objective(model, params.tensor[:8]).loss.shape == ()
    with pytest.raises(ValueError, match=r"expected posterior parameters \(B, 2, D\) or latents \(B, D\)"):
        latent_ddpm_objective(model, torch.zeros(8, 3, 2, 1))
