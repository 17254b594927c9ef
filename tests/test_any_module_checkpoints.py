"""Any torch.nn.Module saves and loads through vaelib (the "one model contract").

A VQ-VAE and a two-latent hierarchical VAE, neither built on vaelib.VAE, go through ``vaelib.save`` and
``vaelib.load(path, model=...)`` with their training state (optimizer, a history with their own keys,
the run's configuration, what "best" means for them); vaelib reads nothing from such a module but what
every nn.Module has, and sets nothing on it. Older files (format versions 1 and 2) load as before.
"""
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import vaelib
from vaelib.checkpoints import FORMAT_VERSION, CheckpointError, load_checkpoint

PRETRAINED = Path(__file__).resolve().parent.parent / "pretrained"


class TinyVQVAE(nn.Module):
    """A VQ-VAE: a codebook (nn.Embedding), nearest-code quantization, a straight-through gradient."""

    def __init__(self, codes=16, dim=4):
        super().__init__()
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 2 * dim))
        self.codebook = nn.Embedding(codes, dim)
        self.decoder = nn.Sequential(nn.Linear(2 * dim, 32), nn.ReLU(), nn.Linear(32, 64))
        self.dim = dim

    def forward(self, x):
        z_e = self.encoder(x).view(-1, 2, self.dim)
        codes = torch.cdist(z_e, self.codebook.weight.expand(len(x), -1, -1)).argmin(-1)
        z_q = self.codebook(codes)
        loss = F.mse_loss(z_q, z_e.detach()) + 0.25 * F.mse_loss(z_e, z_q.detach())
        z = z_e + (z_q - z_e).detach()
        return self.decoder(z.flatten(1)).view(-1, 1, 8, 8), loss


class TwoLatentVAE(nn.Module):
    """A hierarchical VAE, z2 -> z1 -> x, with a learned Gaussian prior p(z1 | z2)."""

    def __init__(self, z1=3, z2=2, hidden=16):
        super().__init__()
        self.q1 = nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 2 * z1))
        self.q2 = nn.Sequential(nn.Linear(z1, hidden), nn.ReLU(), nn.Linear(hidden, 2 * z2))
        self.p1 = nn.Sequential(nn.Linear(z2, hidden), nn.ReLU(), nn.Linear(hidden, 2 * z1))
        self.px = nn.Sequential(nn.Linear(z1, hidden), nn.ReLU(), nn.Linear(hidden, 64))

    def forward(self, x):
        """The negative ELBO per image, and its two KL terms."""
        mu1, log_var1 = self.q1(x).chunk(2, -1)
        z1 = mu1 + torch.randn_like(mu1) * (0.5 * log_var1).exp()
        mu2, log_var2 = self.q2(z1).chunk(2, -1)
        z2 = mu2 + torch.randn_like(mu2) * (0.5 * log_var2).exp()
        prior_mu1, prior_log_var1 = self.p1(z2).chunk(2, -1)
        kl_2 = 0.5 * (mu2 ** 2 + log_var2.exp() - 1 - log_var2).sum(-1)
        q1 = torch.distributions.Normal(mu1, (0.5 * log_var1).exp())
        p1 = torch.distributions.Normal(prior_mu1, (0.5 * prior_log_var1).exp())
        kl_1 = (q1.log_prob(z1) - p1.log_prob(z1)).sum(-1)
        rec = F.binary_cross_entropy_with_logits(self.px(z1), x.flatten(1), reduction="none").sum(-1)
        return (rec + kl_1 + kl_2).mean(), kl_1.mean(), kl_2.mean()


def _x(n=8):
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(1)).round()


def _train(model, steps=3):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        optimizer.zero_grad()
        out = model(_x())
        (out[0].mean() + out[1] if isinstance(model, TinyVQVAE) else out[0]).backward()
        optimizer.step()
    return optimizer


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def _one_line(err):
    message = str(err.value)
    assert len(message.splitlines()) == 1, message
    return message


def test_a_vq_vae_round_trips_with_its_training_state(tmp_path):
    torch.manual_seed(0)
    model = TinyVQVAE()
    optimizer = _train(model)
    history = [{"epoch": 1, "train_loss": 0.9, "test_loss": 0.8, "codebook_usage": 11, "test_kl_1": 0.0}]
    run_config = {"epochs": 1, "lr": 1e-2, "batch_size": 8, "seed": 0, "device": "cpu", "betas": (0.9, 0.999)}
    best = {"metric": "test_loss", "value": 0.8, "higher_is_better": False}
    path = vaelib.save(model, tmp_path / "vq.pth", optimizer=optimizer, epoch=1, history=history,
                       run_config=run_config, best=best)

    torch.manual_seed(1)  # other initial weights
    mine = TinyVQVAE()
    before = set(vars(mine))
    loaded = vaelib.load(path, model=mine)
    assert loaded is mine and not loaded.training
    assert set(vars(mine)) == before  # nothing set on a module vaelib does not own
    assert not hasattr(mine, "checkpoint") and not hasattr(mine, "data_info")
    _same_weights(model, loaded)
    model.eval()
    x = _x()
    for a, b in zip(model(x), loaded(x)):
        assert torch.equal(a, b)

    ckpt = load_checkpoint(path)
    assert ckpt["format_version"] == FORMAT_VERSION == 3
    assert ckpt["model"] == {"module": __name__, "class": "TinyVQVAE",
                             "parameters": sum(p.numel() for p in model.parameters())}
    assert ckpt["config"] is None and ckpt["data"] is None
    assert ckpt["history"] == history and ckpt["epoch"] == 1
    assert ckpt["run_config"] == run_config and ckpt["best"] == best
    assert ckpt["best_test_elbo"] is None  # the best is not a test ELBO

    # the optimizer state resumes: one more step from the file is the step the original would take
    resumed = torch.optim.Adam(loaded.parameters(), lr=1e-2)
    resumed.load_state_dict(ckpt["optimizer"])
    for m, opt in ((model, optimizer), (loaded, resumed)):
        m.train()
        opt.zero_grad()
        out = m(x)
        (out[0].mean() + out[1]).backward()
        opt.step()
    _same_weights(model, loaded)


def test_a_two_latent_vae_round_trips_and_its_best_test_elbo_is_kept_for_older_readers(tmp_path):
    torch.manual_seed(0)
    model = TwoLatentVAE()
    optimizer = _train(model)
    history = [{"epoch": e, "test_elbo": -40.0 - e, "test_kl_1": 1.5, "test_kl_2": 0.25} for e in (1, 2)]
    best = {"metric": "test_elbo", "value": -41.0, "higher_is_better": True}
    path = vaelib.save(model, tmp_path / "hvae.pth", optimizer=optimizer, epoch=2, history=history,
                       run_config={"epochs": 2, "lr": 1e-2}, best=best)
    loaded = vaelib.load(path, model=TwoLatentVAE())
    _same_weights(model, loaded)
    model.eval()
    torch.manual_seed(5)
    expected = model(_x())
    torch.manual_seed(5)
    got = loaded(_x())
    for a, b in zip(expected, got):
        assert torch.equal(a, b)
    ckpt = load_checkpoint(path)
    assert ckpt["history"] == history and ckpt["best"] == best and ckpt["best_test_elbo"] == -41.0
    assert ckpt["model"]["class"] == "TwoLatentVAE" and ckpt["optimizer"]["state"]


def test_loading_a_foreign_module_without_model_says_how_in_one_line(tmp_path):
    path = vaelib.save(TinyVQVAE(), tmp_path / "vq.pth")
    with pytest.raises(CheckpointError) as err:
        vaelib.load(path)
    message = _one_line(err)
    assert f"{path} holds a {__name__}.TinyVQVAE" in message
    assert "vaelib.load(path, model=TinyVQVAE(...))" in message


def test_a_wrong_architecture_is_refused_by_name_in_one_line(tmp_path):
    path = vaelib.save(TinyVQVAE(codes=16), tmp_path / "vq.pth")
    with pytest.raises(CheckpointError) as err:
        vaelib.load(path, model=TinyVQVAE(codes=8))
    message = _one_line(err)
    assert "its weights do not fit the model you passed" in message
    assert "codebook.weight (16, 4) in the file vs (8, 4) in the model" in message
    with pytest.raises(CheckpointError, match="missing q1.1.weight"):
        vaelib.load(path, model=TwoLatentVAE())


def test_another_class_loads_silently_when_the_weights_fit(tmp_path):
    class Renamed(TinyVQVAE):
        pass

    torch.manual_seed(0)
    model = TinyVQVAE()
    path = vaelib.save(model, tmp_path / "vq.pth")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = vaelib.load(path, model=Renamed())
    _same_weights(model, loaded)
    assert type(loaded) is Renamed


def test_a_vaes_weights_load_into_a_plain_module_and_set_nothing_on_it(tmp_path):
    vae = vaelib.build_vae("mlp", latent_dim=2, hidden=8)
    path = vaelib.save(vae, tmp_path / "vae.pth")
    plain = nn.Module()
    for name, child in vae.named_children():  # the same layers, in a module that is not a VAE
        setattr(plain, name, child)
    loaded = vaelib.load(path, model=plain)
    assert loaded is plain and set(vars(plain)) == set(vars(nn.Module()))
    assert not hasattr(plain, "image_shape") and not hasattr(plain, "checkpoint")


def test_load_moves_a_foreign_module_to_the_device(tmp_path):
    path = vaelib.save(TinyVQVAE(), tmp_path / "vq.pth")
    loaded = vaelib.load(path, model=TinyVQVAE(), device="meta")  # a device every machine has
    assert {p.device.type for p in loaded.parameters()} == {"meta"}


class Watched(nn.Module):
    """Records every attribute looked up that a plain nn.Module lacks."""

    def __init__(self):
        super().__init__()
        self.net = nn.Linear(2, 2)
        object.__setattr__(self, "looked_up", [])

    def __getattr__(self, name):
        if name not in ("_parameters", "_buffers", "_modules"):
            self.looked_up.append(name)
        return super().__getattr__(name)


def test_save_reads_nothing_a_plain_module_lacks(tmp_path):
    model = Watched()
    vaelib.save(model, tmp_path / "w.pth")
    assert model.looked_up == []


def test_a_modules_own_config_and_data_info_are_not_taken_for_vaelibs(tmp_path):
    model = TinyVQVAE()
    model.config = vaelib.VAEConfig(latent_dim=2)  # the user's attributes, whatever they mean to them
    model.data_info = "my notes"
    ckpt = load_checkpoint(vaelib.save(model, tmp_path / "vq.pth"))
    assert ckpt["config"] is None and ckpt["data"] is None
    with pytest.raises(CheckpointError, match="model=TinyVQVAE"):
        vaelib.load(tmp_path / "vq.pth")


def test_what_cannot_be_saved_is_one_line(tmp_path):
    with pytest.raises(TypeError) as err:
        vaelib.save(nn.LazyLinear(3), tmp_path / "lazy.pth")
    assert "lazy layers are not initialized yet (weight, bias): run one batch through it" in _one_line(err)
    with pytest.raises(TypeError) as err:
        vaelib.save({"weight": torch.zeros(2)}, tmp_path / "dict.pth")
    assert "model is a dict, not a torch.nn.Module" in _one_line(err)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name, version", [("grey_gaussian", 2), ("conv_vae", 1)])
def test_older_files_load_with_no_run_config_and_no_best(name, version):
    path = PRETRAINED / f"{name}.pth"
    ckpt = load_checkpoint(path)
    assert ckpt["format_version"] == version
    assert ckpt["run_config"] is None and ckpt["best"] is None
    model = vaelib.load(path)
    assert isinstance(model, vaelib.VAE)
    assert model.checkpoint["run_config"] is None and model.checkpoint["best"] is None
    assert model.checkpoint["best_test_elbo"] == torch.load(path, weights_only=True)["best_test_elbo"]
