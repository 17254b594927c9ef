"""The checks of notebook 12 accept a right answer and reject known wrong ones with the intended hint."""
import pytest
import torch
from torch.distributions import MultivariateNormal, Normal

from vaelib.course import checks

from .conftest import assert_catches, run_check


def _log_n(v):
    return Normal(0.0, 1.0).log_prob(v).sum(-1)


def _eps(z, L, b):
    return torch.linalg.solve_triangular(L, (z - b).T, upper=False).T


def right_affine(z, L, b):
    return _log_n(_eps(z, L, b)) - torch.log(torch.diagonal(L).abs()).sum()


@pytest.mark.parametrize("fn, hint", [
    (lambda z, L, b: _log_n(_eps(z, L, b)) + torch.log(torch.diagonal(L).abs()).sum(), "wrong sign"),
    (lambda z, L, b: _log_n(_eps(z, L, b)) - torch.log(torch.diagonal(L)).sum(), "absolute value"),
    (lambda z, L, b: _log_n(_eps(z, L, b)), "volume change is missing"),
    (lambda z, L, b: _log_n((z - b) @ L.T) - torch.log(torch.diagonal(L).abs()).sum(), "instead of undoing it"),
    (lambda z, L, b: _log_n(torch.linalg.solve_triangular(L.T, (z - b).T, upper=True).T)
     - torch.log(torch.diagonal(L).abs()).sum(), "transposed"),
    (lambda z, L, b: _log_n(z - b) - torch.log(torch.diagonal(L).abs()).sum(), "without undoing L"),
    (lambda z, L, b: _log_n(z) - torch.log(torch.diagonal(L).abs()).sum(), "at z itself"),
    (lambda z, L, b: Normal(0.0, 1.0).log_prob(_eps(z, L, b)) - torch.log(torch.diagonal(L).abs()), "sum over the latent"),
])
def test_affine_flow_log_prob(fn, hint):
    assert_catches(checks.check_affine_flow_log_prob, right_affine, fn, hint,
                   passed="correct on 3 affine flows, including ones that flip an axis")


def test_affine_flow_log_prob_accepts_other_right_answers():
    def with_inverse(z, L, b):                      # the explicit inverse is fine too
        return _log_n((z - b) @ torch.linalg.inv(L).T) - torch.linalg.slogdet(L)[1]

    assert run_check(checks.check_affine_flow_log_prob, with_inverse)[0]


def _psi(z, w, b, derivative=lambda a: 1 - torch.tanh(a) ** 2):
    return derivative(z @ w + b)[:, None] * w


def right_planar(z, u, w, b):
    return torch.log(torch.abs(1 + _psi(z, w, b) @ u))


@pytest.mark.parametrize("fn, hint", [
    (lambda z, u, w, b: -right_planar(z, u, w, b), "sign is flipped"),
    (lambda z, u, w, b: torch.abs(1 + _psi(z, w, b) @ u), "det J itself"),
    (lambda z, u, w, b: torch.log(torch.abs(1 + _psi(z, w, b, torch.tanh) @ u)), "derivative belongs"),
    (lambda z, u, w, b: torch.log(torch.abs(1 + w.expand_as(z) @ u)), "chain rule"),
    (lambda z, u, w, b: torch.log(torch.abs(1 + _psi(z, w, b, lambda a: 1 - torch.tanh(a)) @ u)), "square the tanh"),
    (lambda z, u, w, b: torch.log(torch.abs(_psi(z, w, b) @ u)), "add the 1"),
    (lambda z, u, w, b: torch.log(torch.abs(1 + _psi(z, w, b) @ u)).sum(), "expected shape"),
])
def test_planar_log_det(fn, hint):
    assert_catches(checks.check_planar_log_det, right_planar, fn, hint,
                   passed="correct on 3 planar flows (D = 2, 3, 5), against autograd's Jacobian")


def test_planar_log_det_accepts_the_full_determinant():
    def brute_force(z, u, w, b):
        J = torch.eye(len(u)) + u[None, :, None] * _psi(z, w, b)[:, None, :]   # I + u psi^T, row by row
        return torch.linalg.slogdet(J)[1]

    assert run_check(checks.check_planar_log_det, brute_force)[0]


def right_elbo(log_joint, mu, L, eps):
    z = mu + eps @ L.T
    return (log_joint(z) - (_log_n(eps) - torch.log(torch.diagonal(L)).sum())).mean()


@pytest.mark.parametrize("fn, hint", [
    (lambda lj, mu, L, eps: lj(mu + eps @ L.T) - (_log_n(eps) - torch.log(torch.diagonal(L)).sum()), "one value per sample"),
    (lambda lj, mu, L, eps: (lj(mu + eps @ L.T) - (_log_n(eps) - torch.log(torch.diagonal(L)).sum())).sum(),
     "sum over samples"),
    (lambda lj, mu, L, eps: (lj(mu + eps @ L.T) - _log_n(eps)).mean(), "volume term"),
    (lambda lj, mu, L, eps: (lj(mu + eps @ L.T) - _log_n(eps) - torch.log(torch.diagonal(L)).sum()).mean(),
     "wrong sign"),
    (lambda lj, mu, L, eps: (lj(mu + eps @ L) - (_log_n(eps) - torch.log(torch.diagonal(L)).sum())).mean(),
     "covariance L^T L"),
    (lambda lj, mu, L, eps: (lj(mu + eps @ L.T) - (_log_n(mu + eps @ L.T) - torch.log(torch.diagonal(L)).sum())).mean(),
     "standard normal at z"),
    (lambda lj, mu, L, eps: lj(mu + eps @ L.T).mean(), "every sample gives log Z"),
])
def test_full_gaussian_elbo(fn, hint):
    assert_catches(checks.check_full_gaussian_elbo, right_elbo, fn, hint,
                   passed="correct on 3 cases; with q equal to a Gaussian posterior it returns log Z exactly")


def test_full_gaussian_elbo_accepts_torch_distributions():
    def with_mvn(log_joint, mu, L, eps):
        z = mu + eps @ L.T
        return (log_joint(z) - MultivariateNormal(mu, scale_tril=L).log_prob(z)).mean().item()

    assert run_check(checks.check_full_gaussian_elbo, with_mvn)[0]


def right_iaf(z, m, s):
    sigma = torch.sigmoid(s)
    return sigma * z + (1 - sigma) * m, torch.nn.functional.logsigmoid(s).sum(-1)


@pytest.mark.parametrize("fn, hint", [
    (lambda z, m, s: right_iaf(z, m, s)[0], "expected a pair"),
    (lambda z, m, s: (right_iaf(z, m, s)[0], torch.nn.functional.logsigmoid(s)), "one log-determinant per dimension"),
    (lambda z, m, s: (right_iaf(z, m, s)[0], torch.log(torch.sigmoid(s)).sum(-1)), "logsigmoid"),
    (lambda z, m, s: (right_iaf(z, m, s)[0], -right_iaf(z, m, s)[1]), "wrong sign"),
    (lambda z, m, s: (right_iaf(z, m, s)[0], torch.sigmoid(s).sum(-1)), "not of their logs"),
    (lambda z, m, s: (right_iaf(z, m, s)[0], torch.log1p(-torch.sigmoid(s)).sum(-1)), "weight of m"),
    (lambda z, m, s: ((1 - torch.sigmoid(s)) * z + torch.sigmoid(s) * m, right_iaf(z, m, s)[1]), "swapped"),
    (lambda z, m, s: (s * z + (1 - s) * m, right_iaf(z, m, s)[1]), "s is used as the gate"),
    (lambda z, m, s: (torch.sigmoid(s) * z + m, right_iaf(z, m, s)[1]), "weights is missing"),
    (lambda z, m, s: (z + m, right_iaf(z, m, s)[1]), "wrong z_new"),
])
def test_iaf_step(fn, hint):
    assert_catches(checks.check_iaf_step, right_iaf, fn, hint,
                   passed="correct on 3 batches (D = 2, 5, 20), gates near 0 and 1 included")


def test_iaf_step_agrees_with_vaelib():
    from vaelib.posteriors import MADE, IAFStep
    made = MADE(4, 16)
    z = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    step = IAFStep(made, None)
    m, s = made(z)
    z_new, log_det = right_iaf(z, m, s + 1.0)                 # vaelib's step adds 1 to s
    assert torch.allclose(step(z), z_new, atol=1e-6) and torch.allclose(step.log_abs_det_jacobian(z, z_new), log_det, atol=1e-6)


def test_the_checks_are_exported_and_strict_mode_raises(monkeypatch):
    from vaelib.course.checks import posteriors
    assert set(posteriors.__all__) <= set(checks.__all__)
    monkeypatch.setenv("VAELIB_CHECKS_STRICT", "1")
    with pytest.raises(AssertionError, match="check_planar_log_det"):
        checks.check_planar_log_det(lambda z, u, w, b: -right_planar(z, u, w, b))
