import torch

from vaelib.reparameterization import reparameterize


def test_gradients_flow_through_the_sample():
    mu = torch.zeros(5, 3, requires_grad=True)
    logvar = torch.zeros(5, 3, requires_grad=True)
    z = reparameterize(mu, logvar)
    (z ** 2).sum().backward()
    assert mu.grad is not None and logvar.grad is not None
    assert mu.grad.abs().sum() > 0 and logvar.grad.abs().sum() > 0
    # d/dmu of sum z^2 = 2 z
    torch.testing.assert_close(mu.grad, 2 * z.detach())


def test_sample_has_the_right_moments():
    torch.manual_seed(0)
    mu = torch.full((200_000, 1), 2.0)
    logvar = torch.full((200_000, 1), torch.log(torch.tensor(0.25)).item())
    z = reparameterize(mu, logvar)
    assert abs(z.mean().item() - 2.0) < 0.01
    assert abs(z.std().item() - 0.5) < 0.01


def test_given_noise_is_used():
    z = reparameterize(torch.tensor([1.0]), torch.tensor([0.0]), eps=torch.tensor([2.0]))
    assert z.item() == 3.0
