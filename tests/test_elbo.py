import torch

from vaelib import build_vae
from vaelib.bounds import iwae_bound
from vaelib.kl import gaussian_kl

from .conftest import needs_mnist


def test_elbo_parts_have_batch_shape_and_add_up():
    torch.manual_seed(0)
    model = build_vae("mlp", latent_dim=4, hidden=32)
    x = torch.bernoulli(torch.rand(6, 1, 28, 28))
    terms = model.elbo_terms(x, beta=0.5)
    assert terms.reconstruction.shape == terms.kl.shape == terms.value.shape == (6,)
    torch.testing.assert_close(terms.value, terms.reconstruction - terms.kl)
    torch.testing.assert_close(terms.objective, terms.reconstruction - 0.5 * terms.kl)
    torch.testing.assert_close(terms.loss, -(terms.reconstruction - 0.5 * terms.kl).mean())
    mu, logvar = model.encoder(x)
    torch.testing.assert_close(terms.kl, gaussian_kl(mu, logvar))
    # summed over 784 pixels: an untrained Bernoulli decoder is near 784 * log 2 nats from the data
    assert -terms.reconstruction.mean() > 300


def test_loss_backpropagates_to_encoder_and_decoder():
    model = build_vae("conv", latent_dim=3, channels=4, hidden=16)
    model.elbo_terms(torch.rand(2, 1, 28, 28)).loss.backward()
    assert model.encoder.mu.weight.grad.abs().sum() > 0
    assert model.decoder.deconv[-1].weight.grad.abs().sum() > 0


def test_iwae_chunking_does_not_change_the_estimate():
    torch.manual_seed(0)
    model = build_vae("mlp", latent_dim=2, hidden=16)
    x = torch.bernoulli(torch.rand(8, 1, 28, 28))
    with torch.no_grad():
        torch.manual_seed(1)
        whole = torch.stack([iwae_bound(model, x, k=64) for _ in range(20)]).mean()
        torch.manual_seed(2)
        chunked = torch.stack([iwae_bound(model, x, k=64, chunk_size=5) for _ in range(20)]).mean()
    assert abs(whole - chunked) < 0.5


@needs_mnist
def test_elbo_below_iwae_which_grows_with_k(trained_mlp, small_test):
    x, _ = small_test.first(200)
    with torch.no_grad():
        torch.manual_seed(0)
        elbo = torch.stack([trained_mlp.elbo_terms(x).value for _ in range(10)]).mean()
        bounds = []
        for k in (1, 10, 100):
            torch.manual_seed(0)
            bounds.append(iwae_bound(trained_mlp, x, k=k).mean())
    assert abs(bounds[0] - elbo) < 1.0  # L_1 is the ELBO
    assert elbo < bounds[1] < bounds[2]
