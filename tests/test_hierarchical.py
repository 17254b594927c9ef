"""vaelib.hierarchical: the top-down hierarchical VAE's ELBO, its per-layer KLs, its bounds and its training."""
import math

import pytest
import torch

import vaelib
from vaelib.bounds import iwae_bound
from vaelib.evaluation import iwae_nll
from vaelib.hierarchical import HierarchicalVAE, hierarchical_objective


@pytest.fixture(scope="module", params=["top_down", "bottom_up"])
def model(request):
    torch.manual_seed(0)
    m = HierarchicalVAE((8, 4, 2), hidden=32, channels=8, inference=request.param)
    heads = ((*(h[-1] for h in m.posterior_heads), m.top_posterior) if request.param == "top_down"
             else [h if isinstance(h, torch.nn.Linear) else h[-1] for h in m.bottom_up_heads])
    scale = 1.0 if request.param == "top_down" else 0.3    # bottom-up heads read samples: keep their KLs moderate
    with torch.no_grad():                       # posteriors away from their priors: every layer's KL a few nats
        for head in heads:
            head.weight.normal_(0, 0.3 * scale)
            head.bias.normal_(0, scale)
    return m.eval()


def _images(n=16, seed=0):
    return torch.bernoulli(torch.full((n, 1, 28, 28), 0.3), generator=torch.Generator().manual_seed(seed))


def test_the_elbo_is_the_reconstruction_minus_one_kl_per_layer(model):
    t = model.terms(_images(), generator=torch.Generator().manual_seed(0))
    assert len(t.kl) == 3 and all(kl.shape == (16,) for kl in t.kl) and all((kl > 0).all() for kl in t.kl)
    assert torch.allclose(t.value, t.reconstruction - t.kl[0] - t.kl[1] - t.kl[2])
    # one sample's log weight, log p(x|z) + log p(z) - log q(z|x), averages to the same ELBO over many samples
    x = _images(4)
    log_w, _ = model.log_importance_weights(x, 4000, generator=torch.Generator().manual_seed(1))
    many = model.terms(x.repeat(4000, 1, 1, 1), generator=torch.Generator().manual_seed(2)).value.view(4000, 4)
    assert torch.allclose(log_w.mean(0), many.mean(0), atol=0.5)


def test_each_layers_kl_is_to_its_conditional_prior_and_matches_monte_carlo(model):
    """Analytic KL(q(z_l | z_>l, x) || p(z_l | z_>l)) at one sample of the layers above, against 10^5 samples."""
    x = _images(1)
    g = torch.Generator().manual_seed(3)
    z, _, pairs = model._posterior(x, model._noise(1, g))
    for q, p in pairs:
        analytic = torch.distributions.kl_divergence(q, p).sum(-1).item()
        samples = q.sample((100_000,))
        mc = (q.log_prob(samples) - p.log_prob(samples)).sum(-1).mean().item()
        assert abs(mc - analytic) <= 0.01 * analytic, (analytic, mc)
    # the bottom layer's prior depends on the sample of the layers above: another z_2 moves it
    _, _, other = model._posterior(x, model._noise(1, torch.Generator().manual_seed(4)))
    assert not torch.allclose(pairs[0][1].loc, other[0][1].loc)


def test_the_elbo_lies_below_the_importance_weighted_bounds(model):
    x = _images(32)
    with torch.no_grad():
        elbo = torch.stack([model.terms(x, generator=torch.Generator().manual_seed(s)).value for s in range(64)]).mean()
        bounds = [iwae_bound(model, x, k, generator=torch.Generator().manual_seed(10 + k)).mean()
                  for k in (1, 4, 16, 64)]
    assert abs(bounds[0] - elbo) < 1.0                                   # L_1 is the ELBO in expectation
    assert all(b > elbo for b in bounds[1:]) and bounds[1] < bounds[2] < bounds[3]


def test_vaelibs_evaluation_scores_the_hierarchy_per_image(model):
    x = _images(6)
    from vaelib.evaluation import iwae_bounds
    together = iwae_nll(model, x, k=20, seed=0, per_image=True, progress=False)
    # image 2's samples come from its own generator: the same bound alone (a shard of one) or among others
    (_, alone), = iwae_bounds(model, x, k=20, seed=0, indices=[2])
    assert together["per_image"].shape == (6,)
    assert torch.allclose(-alone[0], together["per_image"][2], atol=1e-3)
    assert math.isfinite(together["nll"]) and together["nll"] > 0


def test_the_objective_warms_up_and_applies_free_bits_per_layer(model):
    x = _images(8)
    model.train()
    try:
        torch.manual_seed(0)
        at_start = hierarchical_objective(warmup_steps=100)(model, x, step=0)
        torch.manual_seed(0)
        t = model.terms(x)
        assert at_start.beta == 0.0 and torch.isclose(at_start.loss, -t.reconstruction.mean())
        torch.manual_seed(0)
        floored = hierarchical_objective(free_bits=50.0)(model, x)
        assert torch.isclose(floored.loss, -t.reconstruction.mean() + sum(kl.mean().clamp_min(50.0) for kl in t.kl))
        assert any(kl.mean() < 50 for kl in t.kl)                                  # the floor is used
        assert torch.isclose(floored.sums["elbo"], t.value.sum())                  # the report is the true ELBO
        assert set(floored.sums) == {"elbo", "reconstruction", "kl_1", "kl_2", "kl_3"}
    finally:
        model.eval()


def test_a_hierarchy_trains_through_fit_saves_loads_and_samples(tmp_path):
    torch.manual_seed(0)
    images = _images(256, seed=5)
    m = HierarchicalVAE((6, 3), hidden=32, channels=8)
    history = vaelib.fit(m, images[:192], images[192:], objective=hierarchical_objective(free_bits=0.1), epochs=3,
                         seed=0, progress=False)
    assert history[-1]["test_elbo"] > history[0]["test_elbo"] and "test_kl_2" in history[-1]
    path = vaelib.save(m, tmp_path / "h.pth")
    again = vaelib.load(path, model=HierarchicalVAE(**m.config))
    g = lambda: torch.Generator().manual_seed(0)                                  # noqa: E731
    assert torch.equal(again.sample(4, generator=g()), m.sample(4, generator=g()))
    drawn = m.sample(4, generator=g(), draw=True, temperature=(0.5, 1.0))
    assert drawn.shape == (4, 1, 28, 28) and set(drawn.unique().tolist()) <= {0.0, 1.0}
    kept = m.resample(images[:4], keep=[0, 1], generator=g())
    assert kept.shape == (4, 1, 28, 28) and m.training          # handed back in the mode it was found in


def test_a_wrong_layout_is_refused():
    with pytest.raises(ValueError, match="one positive size per layer"):
        HierarchicalVAE(())
    with pytest.raises(ValueError, match="inference='sideways'"):
        HierarchicalVAE(inference="sideways")


def test_both_inference_forms_share_the_generative_model():
    """The same prior and decoder parameters: only q(z | x) differs."""
    def generative(m):
        return {k: v.shape for k, v in m.state_dict().items() if k.split(".")[0] in ("down", "prior_heads", "decoder")}
    top, bottom = HierarchicalVAE((6, 3), hidden=16, channels=4), HierarchicalVAE((6, 3), 16, 4, inference="bottom_up")
    assert generative(top) == generative(bottom) and generative(top)
    assert not any(k.startswith("bottom_up_heads") for k in top.state_dict())
    assert not any(k.startswith(("posterior_heads", "top_posterior")) for k in bottom.state_dict())


def test_layer_statistics_reads_each_layers_kl_and_active_units(model):
    from vaelib.hierarchical import layer_statistics
    x = _images(64)
    stats = layer_statistics(model, x)
    assert [s["dims"] for s in stats] == [8, 4, 2] and not model.training
    t = model.terms(x, generator=torch.Generator().manual_seed(0))
    for s, kl in zip(stats, t.kl):
        assert 0 < s["kl"] and abs(s["kl"] - kl.mean().item()) < 0.5 * kl.mean().item() + 1
        assert 0 <= s["active_units"] <= s["dims"]
    # a layer whose posterior ignores x has no active unit: the bottom one of a fresh top-down model is its prior
    fresh = HierarchicalVAE((8, 4), hidden=32, channels=8).eval()
    assert layer_statistics(fresh, x)[0]["kl"] < 1e-6


def test_the_progress_lines_show_what_a_hierarchy_reports(capsys):
    """fit's epoch line for a model whose objective reports an ELBO but is no vaelib.VAE (no test_kl)."""
    m = HierarchicalVAE((6, 3), hidden=16, channels=4)
    images = _images(64, seed=6)
    vaelib.fit(m, images[:48], images[48:], objective=hierarchical_objective(), epochs=1, seed=0, progress=True)
    printed = capsys.readouterr()
    line = next(line for line in (printed.out + printed.err).splitlines() if line.startswith("epoch 1/1"))
    assert "test elbo" in line and "test kl 1" in line and "test kl 2" in line


@pytest.mark.parametrize("inference", ["top_down", "bottom_up"])
def test_k_samples_per_image_run_the_bottom_up_pass_once_and_match_k_copies_of_the_images(inference):
    torch.manual_seed(0)
    model = HierarchicalVAE((6, 4), hidden=32, channels=4, inference=inference)
    x = _images()
    k = 5
    copies = x.expand(k, *x.shape).reshape(k * len(x), *x.shape[1:])
    naive = model.terms(copies, generator=torch.Generator().manual_seed(3))      # k copies, one sample each
    log_w, z_1 = model.log_importance_weights(x, k, generator=torch.Generator().manual_seed(3))
    assert log_w.shape == (k, len(x)) and z_1.shape == (k, len(x), 6)
    assert torch.allclose(log_w, (naive.reconstruction + naive.log_p - naive.log_q).view(k, len(x)), atol=1e-4)
    calls = []
    model.encoder.register_forward_hook(lambda module, inputs, output: calls.append(len(inputs[0])))
    model.log_importance_weights(x, k)
    assert calls == [len(x)]                                                        # not k * len(x)
