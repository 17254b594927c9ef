"""Checks for notebook 12 (better posteriors: the gaps, normalizing flows, IAF)."""
import math

import torch
from torch.autograd.functional import jacobian

from ._feedback import _as_tensor, answer, either, exercise_check, expect, fail

__all__ = ['check_affine_flow_log_prob', 'check_planar_log_det', 'check_full_gaussian_elbo', 'check_iaf_step']


def _std_normal_log_prob(v: torch.Tensor) -> torch.Tensor:
    """log N(v; 0, I) summed over the last dimension."""
    return (-0.5 * v ** 2 - 0.5 * math.log(2 * math.pi)).sum(-1)


def _near(out, expected, tol=1e-4) -> bool:
    """Close and finite, compared in float64."""
    return (out.shape == expected.shape and bool(torch.isfinite(out).all())
            and torch.allclose(out.double(), expected.double(), rtol=tol, atol=tol))


def _tensor_output(out, expected_shape, what):
    """The learner's output as a tensor of ``expected_shape``; the check fails when it is not one."""
    try:
        out = _as_tensor(out).detach()
    except (TypeError, ValueError, RuntimeError):
        fail(f"expected a tensor of shape {tuple(expected_shape)}, got {type(out).__name__}")
    if out.shape != torch.Size(expected_shape):
        fail(f"expected shape {tuple(expected_shape)} ({what}), got {tuple(out.shape)}. Hint: sum over the latent "
             "dimensions (the last one), one value per row of z")
    return out


@exercise_check("correct on 3 affine flows, including ones that flip an axis")
def check_affine_flow_log_prob(fn) -> bool:
    """``fn(z, L, b)``: log q(z) for each row of ``z`` ``(N, D)``, where z = b + L eps, eps ~ N(0, I), L lower
    triangular with a non-zero diagonal (possibly negative entries), b ``(D,)``. Returns ``(N,)``."""
    g = torch.Generator().manual_seed(12)
    f64 = dict(generator=g, dtype=torch.float64)
    for d, n, negative in ((3, 6, False), (2, 5, True), (4, 4, True)):
        L = torch.tril(0.6 * torch.randn(d, d, **f64), -1)
        diag = 0.5 + torch.rand(d, **f64) * 1.5
        if negative:
            diag[0] = -diag[0]            # a negative diagonal entry: the map flips that axis
        L = L + torch.diag(diag)
        b = torch.randn(d, **f64)
        z = b + torch.randn(n, d, **f64) @ L.T
        out = _tensor_output(answer(fn, z.float(), L.float(), b.float()), (len(z),), "one log-density per row of z")
        eps = torch.linalg.solve_triangular(L, (z - b).T, upper=False).T
        log_det = torch.log(torch.diagonal(L).abs()).sum()
        base = _std_normal_log_prob

        def at(wrong_eps):   # the base density at a wrong eps, with or without (either sign of) the volume term
            return either(*(base(wrong_eps) + s * log_det for s in (-1, 0, 1)))

        expect(out, base(eps) - log_det, [
            (bool((torch.diagonal(L) < 0).any()) and bool(torch.isnan(out).any()), "you get NaN where L has a negative "
             "diagonal entry: the log of a negative number. Hint: the change of variables "
             "uses |det J|, the absolute value"),
            (base(eps) + log_det, "the log-determinant has the wrong sign. Where the map stretches space (|det L| > 1) "
             "the same probability is spread thinner, so log q goes down. Hint: log q(z) = log N(eps) - log|det L|"),
            (base(eps), "that is log N(eps; 0, I) alone: the volume change is missing. Hint: subtract "
             "log|det J| of the map"),
            (at((z - b) @ L.T), "you applied L to z - b instead of undoing it. Hint: eps solves L eps = z - b"),
            (at(torch.linalg.solve_triangular(L.T, (z - b).T, upper=True).T), "you solved with L transposed. Hint: z = "
             "b + L eps, so eps solves L eps = z - b (solve_triangular(L, (z - b).T, upper=False).T for rows)"),
            (at(z - b), "you evaluated the Gaussian at z - b without undoing L. Hint: eps solves L eps = z - b"),
            (at(z), "you evaluated the base density at z itself. Hint: first recover eps from "
             "z, then evaluate N(eps; 0, I)"),
        ], otherwise="wrong values. Hint: eps from L eps = z - b, then log N(eps; 0, I) - sum_i log|L_ii| (the "
                     "determinant of a triangular matrix is the product of its diagonal)", near=_near)


@exercise_check("correct on 3 planar flows (D = 2, 3, 5), against autograd's Jacobian")
def check_planar_log_det(fn) -> bool:
    """``fn(z, u, w, b)``: log|det J| of the planar flow f(z) = z + u tanh(w.z + b) at each row of ``z``
    ``(N, D)``; ``u``, ``w`` ``(D,)``, ``b`` a number. Returns ``(N,)``. Compared with autograd's Jacobian."""
    g = torch.Generator().manual_seed(13)
    f64 = dict(generator=g, dtype=torch.float64)
    for d, n in ((2, 6), (3, 5), (5, 4)):
        u, w = 1.5 * torch.randn(d, **f64), 1.5 * torch.randn(d, **f64)
        if w @ u < -1:                   # keep the map invertible (Rezende and Mohamed's condition w.u >= -1)
            u = -u
        b = float(torch.randn((), generator=g))
        z = 0.7 * torch.randn(n, d, **f64)
        out = answer(fn, z.float(), u.float(), w.float(), b)
        out = _tensor_output(out, (len(z),), "one log-determinant per row of z")

        def f(v):
            return v + u * torch.tanh(v @ w + b)

        expected = torch.stack([torch.linalg.slogdet(jacobian(f, row))[1] for row in z])
        a = z @ w + b
        log_det_of = lambda psi: torch.log(torch.abs(psi @ u + 1))  # noqa: E731   det(I + u psi^T) = 1 + psi.u
        expect(out, expected, [
            (-expected, "the sign is flipped: that is minus log|det J|. Hint: return log|det J| itself; the "
             "density subtracts it later"),
            (torch.exp(expected), "that is det J itself. Hint: return its logarithm, log|1 + psi.u|"),
            (log_det_of(torch.tanh(a)[:, None] * w), "you used tanh where its derivative belongs. Hint: the Jacobian "
             "of u tanh(w.z + b) is u tanh'(w.z + b) w^T, and tanh'(a) = 1 - tanh(a)^2"),
            (log_det_of(w.expand_as(z)), "your psi is w alone. Hint: chain rule: the derivative of tanh(w.z + b) with "
             "respect to z is tanh'(w.z + b) w"),
            (log_det_of((1 - torch.tanh(a))[:, None] * w), "tanh'(a) is 1 - tanh(a)^2, not 1 - tanh(a). "
             "Hint: square the tanh"),
            (torch.log(torch.abs(((1 - torch.tanh(a) ** 2)[:, None] * w) @ u)), "the identity's share is missing: the "
             "Jacobian is I + u psi^T, and the matrix determinant lemma gives det(I + u "
             "psi^T) = 1 + psi.u. Hint: add the 1"),
        ], otherwise="wrong values. Hint: psi = (1 - tanh(w.z + b)^2) w, then log|1 + psi.u| per row", near=_near)


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


@exercise_check("correct on 3 cases; with q equal to a Gaussian posterior it returns log Z exactly")
def check_full_gaussian_elbo(fn) -> bool:
    """``fn(log_joint, mu, L, eps)``: the Monte-Carlo ELBO of q = N(mu, L L^T) (L lower triangular, positive
    diagonal) for the log-joint ``log_joint`` ``(S, D) -> (S,)``, from the noise ``eps`` ``(S, D)``: with
    z_s = mu + L eps_s, the mean over s of log_joint(z_s) - log q(z_s). Returns one number."""
    for i, (log_joint, mu, L, eps) in enumerate(_elbo_cases()):
        out = answer(fn, log_joint, mu, L, eps)
        try:
            out = _as_tensor(out).detach().double()
        except (TypeError, ValueError, RuntimeError):
            return f"expected one number, got {type(out).__name__}"
        z = mu + eps @ L.T
        log_det = torch.log(torch.diagonal(L)).sum()
        base = _std_normal_log_prob
        per_sample = log_joint(z) - (base(eps) - log_det)
        expected = per_sample.mean()
        if out.numel() != 1:
            if out.shape == per_sample.shape:
                return "you return one value per sample. Hint: the ELBO is their mean"
            return f"expected one number, got shape {tuple(out.shape)}"
        value = out.reshape(()).item()
        z_t = mu + eps @ L
        expect(value, expected.item(), [
            (per_sample.sum().item(), "that is the sum over samples. Hint: the ELBO is their mean"),
            ((log_joint(z) - base(eps)).mean().item(), "log q(z) is missing the volume term. Hint: z = mu + L eps is "
             "an affine flow: log q(z) = log N(eps; 0, I) - sum_i log L_ii"),
            ((log_joint(z) - base(eps) - log_det).mean().item(), "the log-determinant has the wrong sign in log q. "
             "Hint: log q(z) = log N(eps; 0, I) - sum_i log L_ii"),
            ((log_joint(z_t) - base(eps) + log_det).mean().item(), "your samples have covariance L^T L, not L L^T. "
             "Hint: z = mu + L eps, which for rows of eps is mu + eps @ L.T"),
            ((log_joint(z) - base(z) + log_det).mean().item(), "you evaluated the standard normal at z. Hint: log q(z) "
             "uses the noise eps that made z: log N(eps; 0, I) - sum_i log L_ii"),
            (i == 0, f"got {value:.4f}, but when q is exactly the normalized posterior every sample gives log Z = "
             f"{expected.item():.4f}. Hint: z = mu + L eps, then the mean of log_joint(z) - log q(z)"),
        ], otherwise="wrong value. Hint: z = mu + L eps; log q(z) = log N(eps; 0, I) - sum_i log L_ii; average "
                     "log_joint(z) - log q(z) over the samples", near=lambda a, b: abs(a - b) < 1e-4 * max(1.0, abs(b)))


@exercise_check("correct on 3 batches (D = 2, 5, 20), gates near 0 and 1 included")
def check_iaf_step(fn) -> bool:
    """``fn(z, m, s)``: one IAF step, z' = sigma * z + (1 - sigma) * m with sigma = sigmoid(s), and
    log|det dz'/dz| = sum_i log sigma_i (the Jacobian is triangular when m and s come from an autoregressive
    network). ``z``, ``m``, ``s`` ``(N, D)``. Returns ``(z_new, log_det)``, ``(N, D)`` and ``(N,)``."""
    g = torch.Generator().manual_seed(13)
    for n, d, scale in ((6, 2, 1.0), (5, 5, 4.0), (4, 20, 8.0)):
        z, m, s = (torch.randn(n, d, generator=g) for _ in range(3))
        s = s * scale
        if d == 20:
            s[0, 0] = -120.0          # a gate that rounds to 0 in float32: its log must stay finite
        out = answer(fn, z, m, s)
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            fail(f"expected a pair (z_new, log_det), got {type(out).__name__}. Hint: return z_new, log_det")
        z_new, log_det = (_as_tensor(part).detach() for part in out)
        sigma = torch.sigmoid(s)
        expect(z_new, sigma * z + (1 - sigma) * m, [
            ((1 - sigma) * z + sigma * m, "z and m are swapped. Hint: z' = sigma * z + (1 - sigma) * m: a gate near 1 "
                                          "keeps z, a gate near 0 replaces it by m"),
            (s * z + (1 - s) * m, "s is used as the gate itself. Hint: sigma = sigmoid(s), a number between 0 and 1"),
            (either(sigma * z + m, z + (1 - sigma) * m), "one of the two weights is missing. Hint: z' = sigma * z + "
                                                          "(1 - sigma) * m"),
        ], otherwise="wrong z_new. Hint: sigma = torch.sigmoid(s), then sigma * z + (1 - sigma) * m", near=_near)
        right = torch.nn.functional.logsigmoid(s).sum(-1)
        expect(log_det, right, [
            (log_det.shape == s.shape, "one log-determinant per dimension. Hint: the determinant of a triangular "
                                       "Jacobian is the product of its diagonal: sum the log sigma_i over the last "
                                       "dimension"),
            (bool((~torch.isfinite(log_det)).any()),
             "a log-determinant is infinite or NaN: torch.log(torch.sigmoid(s)) underflows when s is very negative "
             "(here s = -120). Hint: torch.nn.functional.logsigmoid(s) computes log sigma stably"),
            (-right, "the log-determinant has the wrong sign. Hint: each dz'_i/dz_i = sigma_i < 1 shrinks space: "
                     "log|det| = sum_i log sigma_i is negative"),
            (sigma.sum(-1), "that is the sum of the gates, not of their logs. Hint: log|det| = sum_i log sigma_i"),
            (torch.log1p(-sigma).sum(-1), "log(1 - sigma) is the weight of m, not the derivative with respect to z. "
                                          "Hint: dz'_i/dz_i = sigma_i"),
        ], otherwise="wrong log_det. Hint: log|det| = sum over dimensions of log sigmoid(s)", near=_near)
