import torch
from torch.distributions import Independent, Normal, kl_divergence

from vaelib.kl import gaussian_kl, gaussian_kl_per_dim, monte_carlo_kl


def _q(mu, logvar):
    return Independent(Normal(mu, (0.5 * logvar).exp()), 1)


def test_analytic_kl_equals_torch_distributions():
    torch.manual_seed(0)
    mu, logvar = torch.randn(16, 5), torch.randn(16, 5)
    p = Independent(Normal(torch.zeros(5), torch.ones(5)), 1)
    expected = kl_divergence(_q(mu, logvar), p)
    assert gaussian_kl(mu, logvar).shape == (16,)
    torch.testing.assert_close(gaussian_kl(mu, logvar), expected, rtol=1e-5, atol=1e-5)


def test_kl_is_zero_at_the_prior_and_positive_elsewhere():
    zeros = torch.zeros(3, 4)
    assert torch.allclose(gaussian_kl(zeros, zeros), torch.zeros(3))
    assert (gaussian_kl_per_dim(torch.tensor([[0.5, 0.0]]), torch.tensor([[0.0, 1.0]])) > 0).all()


def test_kl_closed_form_value():
    # mu = 1, sigma^2 = 1: KL = 1/2 * (1 + 1 - 0 - 1) = 0.5 per dimension
    assert gaussian_kl(torch.ones(1, 3), torch.zeros(1, 3)).item() == 1.5


def test_monte_carlo_kl_converges_to_analytic():
    torch.manual_seed(0)
    mu, logvar = torch.randn(4, 3), torch.randn(4, 3) * 0.5
    p = Independent(Normal(torch.zeros(3), torch.ones(3)), 1)
    mc = monte_carlo_kl(_q(mu, logvar), p, num_samples=200_000)
    torch.testing.assert_close(mc, gaussian_kl(mu, logvar), rtol=0.02, atol=0.02)
