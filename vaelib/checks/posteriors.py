"""Checks for notebook 12 (better posteriors: the gaps, normalizing flows, IAF)."""
from __future__ import annotations

import math

import torch
from torch.autograd.functional import jacobian

from ._feedback import _report, _call, _as_tensor

__all__ = ['check_affine_flow_log_prob', 'check_planar_log_det', 'check_full_gaussian_elbo']


def _std_normal_log_prob(v: torch.Tensor) -> torch.Tensor:
    """log N(v; 0, I) summed over the last dimension."""
    return (-0.5 * v ** 2 - 0.5 * math.log(2 * math.pi)).sum(-1)


def _near(out, expected, tol=1e-4) -> bool:
    return (out.shape == expected.shape and bool(torch.isfinite(out).all())
            and torch.allclose(out.double(), expected.double(), rtol=tol, atol=tol))


def _tensor_output(name, out, expected_shape, what):
    """``(tensor, None)`` or ``(None, message)`` for a learner's output that should have ``expected_shape``."""
    try:
        out = _as_tensor(out).detach()
    except (TypeError, ValueError, RuntimeError):
        return None, f"expected a tensor of shape {tuple(expected_shape)}, got {type(out).__name__}"
    if out.shape != torch.Size(expected_shape):
        return None, (f"expected shape {tuple(expected_shape)} ({what}), got {tuple(out.shape)}. "
                      "Hint: sum over the latent dimensions (the last one), one value per row of z")
    return out, None


def _affine_cases():
    g = torch.Generator().manual_seed(12)
    cases = []
    for d, n, negative in ((3, 6, False), (2, 5, True), (4, 4, True)):
        L = torch.tril(0.6 * torch.randn(d, d, generator=g, dtype=torch.float64), -1)
        diag = 0.5 + torch.rand(d, generator=g, dtype=torch.float64) * 1.5
        if negative:
            diag[0] = -diag[0]            # a negative diagonal entry: the map flips that axis
        L = L + torch.diag(diag)
        b = torch.randn(d, generator=g, dtype=torch.float64)
        z = b + torch.randn(n, d, generator=g, dtype=torch.float64) @ L.T
        cases.append((z, L, b))
    return cases


def check_affine_flow_log_prob(fn) -> bool:
    """``fn(z, L, b)``: log q(z) for each row of ``z`` ``(N, D)``, where z = b + L eps, eps ~ N(0, I), L lower
    triangular with a non-zero diagonal (possibly negative entries), b ``(D,)``. Returns ``(N,)``."""
    name = "check_affine_flow_log_prob"
    for z, L, b in _affine_cases():
        out, error = _call(name, fn, z.float().clone(), L.float().clone(), b.float().clone())
        if error:
            return _report(name, False, error)
        out, error = _tensor_output(name, out, (len(z),), "one log-density per row of z")
        if error:
            return _report(name, False, error)
        eps = torch.linalg.solve_triangular(L, (z - b).T, upper=False).T
        log_det = torch.log(torch.diagonal(L).abs()).sum()
        expected = _std_normal_log_prob(eps) - log_det
        if _near(out, expected):
            continue
        negative = bool((torch.diagonal(L) < 0).any())
        if negative and torch.isnan(out).any():
            return _report(name, False, "you get NaN where L has a negative diagonal entry: the log of a negative "
                                        "number. Hint: the change of variables uses |det J|, the absolute value")
        if _near(out, _std_normal_log_prob(eps) + log_det):
            return _report(name, False, "the log-determinant has the wrong sign. Where the map stretches space "
                                        "(|det L| > 1) the same probability is spread thinner, so log q goes down. "
                                        "Hint: log q(z) = log N(eps) - log|det L|")
        if _near(out, _std_normal_log_prob(eps)):
            return _report(name, False, "that is log N(eps; 0, I) alone: the volume change is missing. "
                                        "Hint: subtract log|det J| of the map")
        wrong_eps = {
            "forward": ((z - b) @ L.T, "you applied L to z - b instead of undoing it. Hint: eps solves L eps = z - b"),
            "transpose": (torch.linalg.solve_triangular(L.T, (z - b).T, upper=True).T,
                          "you solved with L transposed. Hint: z = b + L eps, so eps solves L eps = z - b "
                          "(solve_triangular(L, (z - b).T, upper=False).T for rows)"),
            "no inverse": (z - b, "you evaluated the Gaussian at z - b without undoing L. Hint: eps solves "
                                  "L eps = z - b"),
            "at z": (z, "you evaluated the base density at z itself. Hint: first recover eps from z, then "
                        "evaluate N(eps; 0, I)"),
        }
        for wrong, hint in wrong_eps.values():
            if any(_near(out, _std_normal_log_prob(wrong) + s * log_det) for s in (-1, 0, 1)):
                return _report(name, False, hint)
        return _report(name, False, "wrong values. Hint: eps from L eps = z - b, then log N(eps; 0, I) - "
                                    "sum_i log|L_ii| (the determinant of a triangular matrix is the product of "
                                    "its diagonal)")
    return _report(name, True, "correct on 3 affine flows, including ones that flip an axis")


def _planar_cases():
    g = torch.Generator().manual_seed(13)
    cases = []
    for d, n in ((2, 6), (3, 5), (5, 4)):
        u = 1.5 * torch.randn(d, generator=g, dtype=torch.float64)
        w = 1.5 * torch.randn(d, generator=g, dtype=torch.float64)
        if w @ u < -1:                   # keep the map invertible (Rezende and Mohamed's condition w.u >= -1)
            u = -u
        b = float(torch.randn((), generator=g))
        z = 0.7 * torch.randn(n, d, generator=g, dtype=torch.float64)
        cases.append((z, u, w, b))
    return cases


def check_planar_log_det(fn) -> bool:
    """``fn(z, u, w, b)``: log|det J| of the planar flow f(z) = z + u tanh(w.z + b) at each row of ``z``
    ``(N, D)``; ``u``, ``w`` ``(D,)``, ``b`` a number. Returns ``(N,)``. Compared with autograd's Jacobian."""
    name = "check_planar_log_det"
    for z, u, w, b in _planar_cases():
        out, error = _call(name, fn, z.float().clone(), u.float().clone(), w.float().clone(), b)
        if error:
            return _report(name, False, error)
        out, error = _tensor_output(name, out, (len(z),), "one log-determinant per row of z")
        if error:
            return _report(name, False, error)

        def f(v):
            return v + u * torch.tanh(v @ w + b)

        expected = torch.stack([torch.linalg.slogdet(jacobian(f, row))[1] for row in z])
        if _near(out, expected):
            continue
        a = z @ w + b
        lemma = lambda psi: psi @ u  # noqa: E731   psi (N, D): det(I + u psi^T) = 1 + psi.u
        derivative = ((1 - torch.tanh(a) ** 2)[:, None] * w)
        if _near(out, -expected):
            return _report(name, False, "the sign is flipped: that is minus log|det J|. Hint: return log|det J| "
                                        "itself; the density subtracts it later")
        if _near(out, torch.exp(expected)):
            return _report(name, False, "that is det J itself. Hint: return its logarithm, log|1 + psi.u|")
        if _near(out, torch.log(torch.abs(lemma(torch.tanh(a)[:, None] * w) + 1))):
            return _report(name, False, "you used tanh where its derivative belongs. Hint: the Jacobian of "
                                        "u tanh(w.z + b) is u tanh'(w.z + b) w^T, and tanh'(a) = 1 - tanh(a)^2")
        if _near(out, torch.log(torch.abs(lemma(w.expand_as(z)) + 1))):
            return _report(name, False, "your psi is w alone. Hint: chain rule: the derivative of tanh(w.z + b) "
                                        "with respect to z is tanh'(w.z + b) w")
        if _near(out, torch.log(torch.abs(lemma(((1 - torch.tanh(a))[:, None] * w)) + 1))):
            return _report(name, False, "tanh'(a) is 1 - tanh(a)^2, not 1 - tanh(a). Hint: square the tanh")
        if _near(out, torch.log(torch.abs(lemma(derivative)))):
            return _report(name, False, "the identity's share is missing: the Jacobian is I + u psi^T, and the "
                                        "matrix determinant lemma gives det(I + u psi^T) = 1 + psi.u. Hint: add the 1")
        return _report(name, False, "wrong values. Hint: psi = (1 - tanh(w.z + b)^2) w, then log|1 + psi.u| per row")
    return _report(name, True, "correct on 3 planar flows (D = 2, 3, 5), against autograd's Jacobian")


def _banana_log_joint(z):
    """An unnormalized, non-Gaussian log-density on R^D (a banana in the first two coordinates)."""
    bent = z[..., 1] - 0.8 * (z[..., 0] ** 2 - 1)
    return 3.0 - 0.5 * z[..., 0] ** 2 - bent ** 2 / (2 * 0.3 ** 2) - 0.5 * (z[..., 2:] ** 2).sum(-1)


def _elbo_cases():
    g = torch.Generator().manual_seed(14)
    # (1) a Gaussian "posterior" times a constant: q = that Gaussian gives ELBO = log Z for every eps
    m = torch.tensor([0.5, -1.0], dtype=torch.float64)
    C = torch.tensor([[0.8, 0.0], [0.6, 0.3]], dtype=torch.float64)
    log_z = -4.2

    def gaussian_joint(z):
        eps = torch.linalg.solve_triangular(C, (z - m).T, upper=False).T
        return log_z + _std_normal_log_prob(eps) - torch.log(torch.diagonal(C)).sum()

    cases = [(gaussian_joint, m, C, torch.randn(16, 2, generator=g, dtype=torch.float64))]
    # (2), (3) a non-Gaussian joint with other q's
    for d, s in ((2, 12), (3, 8)):
        mu = 0.3 * torch.randn(d, generator=g, dtype=torch.float64)
        L = torch.tril(0.4 * torch.randn(d, d, generator=g, dtype=torch.float64), -1) + torch.diag(
            0.3 + torch.rand(d, generator=g, dtype=torch.float64))
        cases.append((_banana_log_joint, mu, L, torch.randn(s, d, generator=g, dtype=torch.float64)))
    return cases


def check_full_gaussian_elbo(fn) -> bool:
    """``fn(log_joint, mu, L, eps)``: the Monte-Carlo ELBO of q = N(mu, L L^T) (L lower triangular, positive
    diagonal) for the log-joint ``log_joint`` ``(S, D) -> (S,)``, from the noise ``eps`` ``(S, D)``: with
    z_s = mu + L eps_s, the mean over s of log_joint(z_s) - log q(z_s). Returns one number."""
    name = "check_full_gaussian_elbo"
    for i, (log_joint, mu, L, eps) in enumerate(_elbo_cases()):
        out, error = _call(name, fn, log_joint, mu.clone(), L.clone(), eps.clone())
        if error:
            return _report(name, False, error)
        try:
            out = _as_tensor(out).detach().double()
        except (TypeError, ValueError, RuntimeError):
            return _report(name, False, f"expected one number, got {type(out).__name__}")
        z = mu + eps @ L.T
        log_det = torch.log(torch.diagonal(L)).sum()
        per_sample = log_joint(z) - (_std_normal_log_prob(eps) - log_det)
        expected = per_sample.mean()
        if out.numel() != 1:
            if out.shape == per_sample.shape:
                return _report(name, False, "you return one value per sample. Hint: the ELBO is their mean")
            return _report(name, False, f"expected one number, got shape {tuple(out.shape)}")
        value = out.reshape(()).item()
        near = lambda a: abs(value - a) < 1e-4 * max(1.0, abs(a))  # noqa: E731
        if near(expected.item()):
            continue
        if near(per_sample.sum().item()):
            return _report(name, False, "that is the sum over samples. Hint: the ELBO is their mean")
        if near((log_joint(z) - _std_normal_log_prob(eps)).mean().item()):
            return _report(name, False, "log q(z) is missing the volume term. Hint: z = mu + L eps is an affine "
                                        "flow: log q(z) = log N(eps; 0, I) - sum_i log L_ii")
        if near((log_joint(z) - _std_normal_log_prob(eps) - log_det).mean().item()):
            return _report(name, False, "the log-determinant has the wrong sign in log q. Hint: log q(z) = "
                                        "log N(eps; 0, I) - sum_i log L_ii")
        z_t = mu + eps @ L
        if near((log_joint(z_t) - _std_normal_log_prob(eps) + log_det).mean().item()):
            return _report(name, False, "your samples have covariance L^T L, not L L^T. Hint: z = mu + L eps, "
                                        "which for rows of eps is mu + eps @ L.T")
        if near((log_joint(z) - _std_normal_log_prob(z) + log_det).mean().item()):
            return _report(name, False, "you evaluated the standard normal at z. Hint: log q(z) uses the noise "
                                        "eps that made z: log N(eps; 0, I) - sum_i log L_ii")
        if i == 0:
            return _report(name, False, f"got {value:.4f}, but when q is exactly the normalized posterior every "
                                        f"sample gives log Z = {expected.item():.4f}. Hint: z = mu + L eps, then the "
                                        "mean of log_joint(z) - log q(z)")
        return _report(name, False, "wrong value. Hint: z = mu + L eps; log q(z) = log N(eps; 0, I) - "
                                    "sum_i log L_ii; average log_joint(z) - log q(z) over the samples")
    return _report(name, True, "correct on 3 cases; with q equal to a Gaussian posterior it returns log Z exactly")
