import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import ContinuousBernoulli, Normal

from vaelib.likelihoods import canonical_name, make_likelihood


@pytest.fixture
def batch():
    torch.manual_seed(0)
    params = torch.randn(4, 1, 28, 28)
    x = torch.rand(4, 1, 28, 28)
    return params, x


def test_bernoulli_is_minus_summed_bce(batch):
    params, x = batch
    lp = make_likelihood("bce")(params).log_prob(x)
    expected = -F.binary_cross_entropy_with_logits(params, x, reduction="none").sum((1, 2, 3))
    assert lp.shape == (4,)
    torch.testing.assert_close(lp, expected)


def test_continuous_bernoulli_matches_torch(batch):
    params, x = batch
    lp = make_likelihood("continuous_bernoulli")(params).log_prob(x)
    expected = ContinuousBernoulli(logits=params).log_prob(x).sum((1, 2, 3))
    torch.testing.assert_close(lp, expected)


def test_gaussian_matches_torch_and_mse_alias_is_summed_mse(batch):
    params, x = batch
    lik = make_likelihood("gaussian", sigma=0.3)
    expected = Normal(torch.sigmoid(params), 0.3).log_prob(x).sum((1, 2, 3))
    torch.testing.assert_close(lik(params).log_prob(x), expected)
    # default sigma^2 = 1/2: -log p = sum (x - mean)^2 + 784/2 * log(pi)
    mse = make_likelihood("mse")
    sq = (x - torch.sigmoid(params)).pow(2).sum((1, 2, 3))
    torch.testing.assert_close(-mse(params).log_prob(x), sq + 392 * math.log(math.pi))


def test_learned_gaussian_learns_sigma(batch):
    params, x = batch
    lik = make_likelihood("learned_gaussian")
    expected = Normal(torch.sigmoid(params), 1.0).log_prob(x).sum((1, 2, 3))
    torch.testing.assert_close(lik(params).log_prob(x), expected)
    lik(params).log_prob(x).sum().backward()
    # residuals are < 1 in [0, 1]: the likelihood rises as sigma shrinks
    assert lik.log_sigma.grad < 0


def test_mean_images_are_in_unit_interval(batch):
    params, _ = batch
    for name in ("bernoulli", "continuous_bernoulli", "gaussian", "learned_gaussian"):
        m = make_likelihood(name).mean(params)
        assert m.min() >= 0 and m.max() <= 1


def test_aliases_and_unknown_names():
    assert canonical_name("bce") == "bernoulli"
    assert canonical_name("mse") == "gaussian"
    with pytest.raises(ValueError, match="unknown likelihood 'poisson'"):
        make_likelihood("poisson")
