"""The model contract: any nn.Module with an objective of its own trains, evaluates, saves and loads
through vaelib, without a vaelib base class and without library edits. A VQ-VAE and a two-layer
hierarchical VAE are written here the way a practitioner would write them."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Normal, kl_divergence

import vaelib
from vaelib.objectives import Estimate


def _digits(n, seed=0):
    """Blurry random blobs in [0, 1] (no download, no MNIST needed): enough to train on for a few steps."""
    g = torch.Generator().manual_seed(seed)
    return F.avg_pool2d(torch.rand(n, 1, 28, 28, generator=g), 5, 1, 2).clamp(0, 1)


class TinyVQVAE(nn.Module):
    """van den Oord et al. (2017) at toy scale: a 7x7 grid of codes from a 16-entry codebook."""

    def __init__(self, codes: int = 16, dim: int = 8):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(1, 16, 4, 2, 1), nn.ReLU(), nn.Conv2d(16, dim, 4, 2, 1))
        self.codebook = nn.Embedding(codes, dim)
        self.decoder = nn.Sequential(nn.ConvTranspose2d(dim, 16, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(16, 1, 4, 2, 1))

    def forward(self, x):
        z_e = self.encoder(x)                                              # (B, D, 7, 7)
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, z_e.shape[1])
        codes = torch.cdist(flat, self.codebook.weight).argmin(1)
        z_q = self.codebook(codes).view(len(x), 7, 7, -1).permute(0, 3, 1, 2)
        return self.decoder(z_e + (z_q - z_e).detach()), z_e, z_q        # straight-through


def vq_objective(model, x, y, step):
    logits, z_e, z_q = model(x)
    rec = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
    codebook = (z_q - z_e.detach()).pow(2).flatten(1).sum(1)
    commitment = (z_e - z_q.detach()).pow(2).flatten(1).sum(1)
    loss = (rec + codebook + 0.25 * commitment).mean()
    return Estimate(loss, {"reconstruction": -rec.sum(), "codebook": codebook.sum(), "commitment": commitment.sum()})


class TwoLayerVAE(nn.Module):
    """p(z2) p(z1 | z2) p(x | z1), inferred top-down: q(z2 | x) q(z1 | x, z2)."""

    def __init__(self, z1: int = 8, z2: int = 4):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 8, 4, 2, 1), nn.ReLU())  # (B, 8, 14, 14)
        self.q2 = nn.Linear(8 * 14 * 14, 2 * z2)
        self.q1 = nn.Linear(8 * 14 * 14 + z2, 2 * z1)
        self.p1 = nn.Linear(z2, 2 * z1)                                     # the conditional prior p(z1 | z2)
        self.decoder = nn.Sequential(nn.Linear(z1, 200), nn.ReLU(), nn.Linear(200, 784))
        self.z2 = z2

    def forward(self, x):
        h = self.features(x).view(len(x), -1)  # a user's view: it needs the layout the user built
        mu2, logvar2 = self.q2(h).chunk(2, 1)
        q2 = Normal(mu2, (0.5 * logvar2).exp())
        z2 = q2.rsample()
        mu1, logvar1 = self.q1(torch.cat([h, z2], 1)).chunk(2, 1)
        q1 = Normal(mu1, (0.5 * logvar1).exp())
        pm, plogvar = self.p1(z2).chunk(2, 1)
        p1 = Normal(pm, (0.5 * plogvar).exp())
        z1 = q1.rsample()
        return self.decoder(z1).view(-1, 1, 28, 28), q1, p1, q2, z2


def hvae_objective(model, x, y, step):
    logits, q1, p1, q2, z2 = model(x)
    rec = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
    kl_1 = kl_divergence(q1, p1).sum(1)                                   # inside the expectation over z2
    kl_2 = kl_divergence(q2, Normal(torch.zeros_like(q2.loc), 1.0)).sum(1)
    elbo = rec - kl_1 - kl_2
    return Estimate(-elbo.mean(), {"elbo": elbo.sum(), "reconstruction": rec.sum(), "kl_1": kl_1.sum(),
                                   "kl_2": kl_2.sum()})


@pytest.mark.parametrize("make, objective, reported, best", [
    (TinyVQVAE, vq_objective, ["reconstruction", "codebook", "commitment", "loss"], ("test_loss", False)),
    (TwoLayerVAE, hvae_objective, ["elbo", "reconstruction", "kl_1", "kl_2"], ("test_elbo", True)),
], ids=["vq_vae", "two_layer_vae"])
def test_a_model_of_ones_own_trains_reports_its_terms_and_round_trips(make, objective, reported, best, tmp_path):
    torch.manual_seed(0)
    model = make()
    history = vaelib.fit(model, _digits(256), _digits(64, seed=1), epochs=3, batch_size=64, lr=3e-3,
                         objective=objective, run_dir=tmp_path / "run", progress=False)
    last = history[-1]
    for name in reported:
        assert math.isfinite(last[f"train_{name}"]), name
        assert math.isfinite(last[f"test_{name}"]), name
    assert math.isfinite(last["test_loss"])
    metric, higher = best
    assert (history[-1][metric] > history[0][metric]) == higher  # it learned: the metric moved the right way
    ckpt = vaelib.load_checkpoint(tmp_path / "run" / "checkpoint_best.pth")
    values = [row[metric] for row in history]
    assert ckpt["best"] == {"metric": metric, "value": (max if higher else min)(values), "higher_is_better": higher}
    assert ckpt["run_config"]["epochs"] == 3 and ckpt["run_config"]["lr"] == 3e-3
    assert (tmp_path / "run" / "history.csv").read_text().splitlines()[0].count(f"test_{reported[-1]}") == 1

    vaelib.save(model, tmp_path / "mine.pth")
    again = vaelib.load(tmp_path / "mine.pth", model=make())
    x = _digits(4, seed=2)
    torch.manual_seed(5)
    expected = model.eval()(x)[0]
    torch.manual_seed(5)
    assert torch.equal(again.eval()(x)[0], expected)


def test_resume_from_a_checkpoint_restores_the_run_without_its_settings(tmp_path):
    def fresh():
        torch.manual_seed(0)
        return TwoLayerVAE()

    straight = vaelib.fit(fresh(), _digits(128), epochs=2, batch_size=32, lr=2e-3, seed=4, objective=hvae_objective,
                          progress=False)
    vaelib.fit(fresh(), _digits(128), epochs=1, batch_size=32, lr=2e-3, seed=4, objective=hvae_objective,
               run_dir=tmp_path, progress=False)
    # resumed with nothing but the run's length: lr, batch size and seed come from the checkpoint
    resumed = vaelib.fit(fresh(), _digits(128), epochs=2, objective=hvae_objective,
                         resume_from=tmp_path / "checkpoint_last.pth", progress=False)
    assert resumed[-1]["train_elbo"] == pytest.approx(straight[-1]["train_elbo"], abs=1e-4)


def test_a_model_without_an_objective_is_refused_in_one_line():
    with pytest.raises(ValueError, match="TinyVQVAE is not a vaelib.VAE.*pass objective="):
        vaelib.fit(TinyVQVAE(), _digits(8), epochs=1, progress=False)
    with pytest.raises(ValueError, match="unknown run setting epoch: the settings are epochs"):
        vaelib.fit(TinyVQVAE(), _digits(8), epoch=1, objective=vq_objective, progress=False)


def test_fit_leaves_the_callers_random_generator_as_it_was():
    draws = []
    for seed in (1, 2):
        model = vaelib.build_vae("mlp", latent_dim=2, hidden=16)
        torch.manual_seed(seed)
        vaelib.fit(model, _digits(32), epochs=1, progress=False)
        draws.append(torch.rand(3))
    torch.manual_seed(1)
    assert torch.equal(draws[0], torch.rand(3))  # as if fit had not run
    assert not torch.equal(draws[0], draws[1])


def test_fit_keeps_the_memory_format_of_a_network_it_did_not_build():
    seen = []

    class Layout(vaelib.callbacks.Callback):
        def on_batch_end(self, run, estimate):
            seen.append(all(p.is_contiguous() for p in run.model.parameters()))

    vaelib.fit(TwoLayerVAE(), _digits(64), epochs=1, batch_size=32, objective=hvae_objective, device="cpu",
               callbacks=[Layout()], progress=False)  # its h.view(B, -1) fails on channels-last tensors
    assert seen == [True, True]
    own = []

    class OwnLayout(vaelib.callbacks.Callback):
        def on_batch_end(self, run, estimate):
            own.append(any(p.dim() == 4 and p.shape[1] > 1 and not p.is_contiguous() for p in run.model.parameters()))

    vaelib.fit(vaelib.build_vae("conv", latent_dim=2, channels=8, hidden=16), _digits(32), epochs=1, device="cpu",
               callbacks=[OwnLayout()], progress=False)
    assert own == [True]  # vaelib's own conv networks still train channels-last on the CPU


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_fit_hands_the_model_back_in_the_mode_it_found(mode):
    model = TwoLayerVAE()
    model.train(mode == "train")
    vaelib.fit(model, _digits(32), epochs=1, objective=hvae_objective, progress=False)
    assert model.training == (mode == "train")


def test_the_old_keyword_arguments_still_work_and_name_their_replacement(tmp_path):
    model = vaelib.build_vae("mlp", latent_dim=2, hidden=16)
    seen = []
    with pytest.warns(DeprecationWarning, match=r"fit\(on_epoch_end=...\) is deprecated .*EpochEnd"):
        vaelib.fit(model, _digits(32), epochs=1, progress=False, on_epoch_end=lambda r, m: seen.append(r["epoch"]))
    assert seen == [1]
    with pytest.warns(DeprecationWarning, match=r"fit\(iwae_k=...\) is deprecated .*IWAEObjective"):
        history = vaelib.fit(model, _digits(32), epochs=1, progress=False, iwae_k=3)
    assert "train_iwae_bound" in history[-1]


@pytest.mark.parametrize("kind", ["dataset", "loader"])
def test_fit_streams_a_dataset_or_a_dataloader(kind, tmp_path):
    """The first thing a PyTorch user passes: a Dataset of (image, label) pairs, or a DataLoader of them."""
    from torch.utils.data import DataLoader, TensorDataset
    images = _digits(96)
    pairs = TensorDataset(images, torch.arange(96) % 10)
    train = pairs if kind == "dataset" else DataLoader(pairs, batch_size=32, shuffle=True)
    torch.manual_seed(0)
    model = vaelib.build_vae("mlp", latent_dim=2, hidden=16, likelihood="continuous_bernoulli")
    history = vaelib.fit(model, train, TensorDataset(_digits(32, seed=1)), epochs=2, batch_size=32,
                         run_dir=tmp_path, progress=False)
    assert history[-1]["step"] == 6 and math.isfinite(history[-1]["test_elbo"])
    assert vaelib.load(tmp_path / "checkpoint_best.pth").image_shape == (1, 28, 28)
    # the same run from tensors agrees: streaming changes how images arrive, not what is learned
    if kind == "dataset":
        torch.manual_seed(0)
        same = vaelib.build_vae("mlp", latent_dim=2, hidden=16, likelihood="continuous_bernoulli")
        tensors = vaelib.fit(same, (images, torch.arange(96) % 10), _digits(32, seed=1), epochs=2, batch_size=32,
                             progress=False)
        assert tensors[-1]["test_elbo"] == pytest.approx(history[-1]["test_elbo"], abs=1.0)


def test_a_dataset_of_pictures_that_are_not_tensors_is_refused_in_one_line():
    from PIL import Image

    class Pictures(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return Image.new("L", (28, 28)), 0

    with pytest.raises(vaelib.DataError, match="train: its items cannot be batched as tensors.*ToTensor"):
        vaelib.fit(vaelib.build_vae("mlp", latent_dim=2, hidden=16), Pictures(), epochs=1, progress=False)
