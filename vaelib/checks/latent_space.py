"""Checks for notebook 07 (exploring the latent space)."""
from __future__ import annotations

import math

import torch

from ._feedback import _report, _call, _close, _as_tensor

__all__ = ['check_slerp', 'check_class_centroids', 'check_shell_probability', 'check_midpoint_norms',
           'check_aggregate_posterior']


def check_slerp(fn) -> bool:
    """``fn(z0, z1, t)``: spherical interpolation ``(D,), (D,), (T,) -> (T, D)`` (as vaelib.plotting.slerp)."""
    from vaelib.plotting import lerp, slerp
    name = "check_slerp"
    g = torch.Generator().manual_seed(4)
    t = torch.linspace(0, 1, 7)
    for _ in range(3):
        z0, z1 = torch.randn(16, generator=g), torch.randn(16, generator=g)
        out, error = _call(name, fn, z0.clone(), z1.clone(), t.clone())
        if error:
            return _report(name, False, error)
        out = _as_tensor(out)
        expected = slerp(z0, z1, t)
        if _close(out, expected, 1e-3):
            continue
        if out.shape == expected.shape and _close(out, lerp(z0, z1, t), 1e-3):
            return _report(name, False, "that is the straight line (lerp). Hint: rotate along the great circle: "
                                        "sin((1-t) omega)/sin(omega) and sin(t omega)/sin(omega)")
        if out.shape == expected.shape and not (_close(out[0], z0, 1e-3) and _close(out[-1], z1, 1e-3)):
            return _report(name, False, "the path does not start at z0 and end at z1. Hint: check t=0 and t=1")
        return _report(name, False, f"wrong values (shape {tuple(out.shape)}, expected {tuple(expected.shape)}). "
                                    "Hint: interpolate the directions on the sphere and the norms linearly")
    return _report(name, True, "correct on 3 random pairs")


def _class_means(codes, labels):
    return torch.stack([codes[labels == k].mean(0) for k in range(10)])


def check_class_centroids(fn) -> bool:
    """``fn(codes, labels)``: the centroid of each digit, ``(N, D), (N,) -> (10, D)``: row k is the mean
    of the codes whose label is k."""
    name = "check_class_centroids"
    g = torch.Generator().manual_seed(7)
    for dims in (2, 3, 4):
        # every class present, in unequal numbers, with its own centre, so that sums, orders and means differ
        labels = torch.cat([torch.arange(10), torch.randint(0, 10, (30,), generator=g)])
        labels = labels[torch.randperm(len(labels), generator=g)]
        codes = 3 * torch.randn(10, dims, generator=g)[labels] + torch.randn(len(labels), dims, generator=g)
        out, error = _call(name, fn, codes.clone(), labels.clone())
        if error:
            return _report(name, False, error)
        out = _as_tensor(out)
        expected = _class_means(codes, labels)
        if _close(out, expected):
            continue
        if _close(out, expected.T):
            return _report(name, False, f"shape {tuple(out.shape)}: transposed. Hint: one row per digit, (10, D)")
        if _close(out, codes.mean(0)) or _close(out, codes.mean(0).expand(10, -1)):
            return _report(name, False, "that is the mean of all the codes together. Hint: average separately "
                                        "over the codes of each digit, selected with labels == k")
        sums = torch.stack([codes[labels == k].sum(0) for k in range(10)])
        if _close(out, sums):
            return _report(name, False, "you sum the codes of each digit. Hint: divide by how many codes that "
                                        "digit has (the classes have different sizes): a mean")
        if _close(out, expected.norm(dim=1)):
            return _report(name, False, "those are the centroids' norms. Hint: return the centroids themselves, "
                                        "(10, D)")
        if out.shape == expected.shape and _close(out[out[:, 0].argsort()], expected[expected[:, 0].argsort()]):
            return _report(name, False, "the right centroids in the wrong order. Hint: row k must belong to the "
                                        "digit k, for k = 0, 1, ..., 9")
        return _report(name, False, f"wrong values (shape {tuple(out.shape)}, expected {tuple(expected.shape)}). "
                                    "Hint: row k = mean over n of codes[n] for the n with labels[n] == k")
    return _report(name, True, "correct on 3 random sets of codes (classes of unequal sizes)")


def check_shell_probability(fn) -> bool:
    """``fn(D)``: the probability that z ~ N(0, I_D) has a norm below the lerp midpoint norm sqrt(D/2),
    a number in [0, 1] (exact, from the chi-square distribution of ``|z|^2``)."""
    name = "check_shell_probability"
    dims = (1, 2, 7, 20, 100)

    def cdf(df, value):
        return torch.distributions.Chi2(torch.tensor(float(df))).cdf(torch.tensor(float(value))).item()

    values = []
    for d in dims:
        out, error = _call(name, fn, d)
        if error:
            return _report(name, False, error)
        try:
            values.append(float(out))
        except (TypeError, ValueError, RuntimeError):
            return _report(name, False, f"fn({d}) returned {type(out).__name__}; expected one number. Hint: "
                                        "return a float (or a tensor with one element)")
    expected = [cdf(d, d / 2) for d in dims]

    def near(candidate, tol=1e-4):
        return all(abs(v - c) <= tol + tol * abs(c) for v, c in zip(values, candidate))

    if near(expected):
        return _report(name, True, "correct for D = 1, 2, 7, 20, 100")
    if any(not 0 <= v <= 1 for v in values):
        return _report(name, False, "a probability lies between 0 and 1. Hint: P(|z| < r) = P(|z|^2 < r^2), "
                                    "a CDF of the chi-square distribution")
    if near([1 - e for e in expected]):
        return _report(name, False, "that is the probability of a norm *above* sqrt(D/2). Hint: a CDF gives "
                                    "P(X < x)")
    if near([cdf(d, (d / 2) ** 0.5) for d in dims]):
        return _report(name, False, "you compare with sqrt(D/2), but the chi-square distribution is that of "
                                    "the *squared* norm |z|^2. Hint: |z| < r exactly when |z|^2 < r^2")
    if near([cdf(d, d) for d in dims]):
        return _report(name, False, "that is the probability of a norm below sqrt(D), the shell's radius. "
                                    "Hint: the lerp midpoint has norm sqrt(D/2)")
    normal = [torch.distributions.Normal(float(d), (2.0 * d) ** 0.5).cdf(torch.tensor(d / 2)).item() for d in dims]
    if near(normal, 1e-3):
        return _report(name, False, "that is the normal approximation of |z|^2 (mean D, variance 2D): poor for "
                                    "small D. Hint: use the exact chi-square CDF, torch.distributions.Chi2")
    if near(expected, 0.03):
        return _report(name, False, "close, but not exact: a Monte-Carlo estimate? Hint: the chi-square CDF "
                                    "(torch.distributions.Chi2(D)) gives the exact value")
    return _report(name, False, "wrong values. Hint: |z|^2 follows a chi-square distribution with D degrees of "
                                "freedom, and |z| < sqrt(D/2) exactly when |z|^2 < D/2")


def check_midpoint_norms(fn) -> bool:
    """``fn(z0, z1)``: the norms of the midpoints (t = 1/2) of the linear and of the spherical path from
    z0 to z1, ``(D,), (D,) -> (lerp_norm, slerp_norm)``: two numbers, lerp first."""
    name = "check_midpoint_norms"
    g = torch.Generator().manual_seed(8)
    for scale in (1.0, 1.6, 0.5):
        # endpoints of *different* norms: there the equal-norm shortcut r cos(omega/2) is wrong
        z0, z1 = torch.randn(20, generator=g), scale * 1.5 * torch.randn(20, generator=g)
        out, error = _call(name, fn, z0.clone(), z1.clone())
        if error:
            return _report(name, False, error)
        try:
            lin, sph = (float(v) for v in out)
        except (TypeError, ValueError, RuntimeError):
            return _report(name, False, "expected two numbers, (lerp_norm, slerp_norm). Hint: return the "
                                        "norms of the two midpoints, not the midpoints themselves")
        r0, r1 = z0.norm().item(), z1.norm().item()
        want_lin, want_sph = ((z0 + z1) / 2).norm().item(), (r0 + r1) / 2
        near = lambda a, b: abs(a - b) < 1e-4 * max(1.0, abs(b))  # noqa: E731
        if near(lin, want_lin) and near(sph, want_sph):
            continue
        if near(lin, want_sph) and near(sph, want_lin):
            return _report(name, False, "the two are swapped. Hint: lerp first; its midpoint is the shorter one")
        if near(lin, want_lin) and near(sph, want_lin):
            return _report(name, False, "both numbers are the straight line's midpoint. Hint: use slerp for the "
                                        "second one")
        if near(lin, want_sph) and near(sph, want_sph):
            return _report(name, False, "both numbers are the great circle's midpoint. Hint: use lerp (the "
                                        "straight line) for the first one")
        if not near(lin, want_lin):
            cos_half = math.cos(math.acos(max(-1.0, min(1.0, (z0 @ z1).item() / (r0 * r1)))) / 2)
            if near(lin, (r0 + r1) / 2 * cos_half):
                return _report(name, False, "you used r cos(omega/2): it holds only when both norms are equal, "
                                            "and here they differ. Hint: take the norm of the midpoint itself")
            if near(lin, 2 * want_lin):
                return _report(name, False, "the lerp norm is twice too large: that is |z0 + z1|. Hint: the "
                                            "midpoint is (z0 + z1) / 2")
            return _report(name, False, "the lerp midpoint's norm is wrong. Hint: the point at t = 1/2 of "
                                        "(1 - t) z0 + t z1, then its norm")
        if near(sph, 1.0):
            return _report(name, False, "the slerp number is 1: the norm of the unit direction u(1/2). Hint: "
                                        "slerp also interpolates the norm, linearly from |z0| to |z1|")
        return _report(name, False, "the slerp midpoint's norm is wrong. Hint: evaluate slerp(z0, z1, t) at "
                                    "t = torch.tensor([0.5]) and take its norm")
    return _report(name, True, "correct on 3 random pairs of endpoints with different norms")


@torch.no_grad()
def check_aggregate_posterior(total, model, x, pretrained=None) -> bool:
    """``total``: the total variance of the aggregate posterior q(z) of the freshly trained 2-D ``model``,
    per latent dimension, ``(2,)``, computed on the images ``x``: Var over images of the posterior means
    plus the mean of the posterior variances. ``pretrained`` (optional): the pretrained model, to catch
    numbers computed with it instead."""
    name = "check_aggregate_posterior"
    if getattr(model, "latent_dim", None) != 2:
        return _report(name, False, f"this model has {getattr(model, 'latent_dim', '?')} latent dimensions. "
                                    "Hint: build the fresh model with latent_dim=2")
    if pretrained is not None and model is pretrained:
        return _report(name, False, "that is the pretrained model. Hint: build a fresh one and train it with "
                                    "vaelib.fit")
    try:
        total = _as_tensor(total).detach().float().cpu()
    except (TypeError, ValueError, RuntimeError):
        return _report(name, False, f"expected numbers, got {type(total).__name__}")
    mu, logvar = (t.float().cpu() for t in model.encoder(x.to(model.device)))
    var_of_means, mean_of_vars = mu.var(0, unbiased=False), logvar.exp().mean(0)
    if bool((mean_of_vars > 0.5).all()) and bool((var_of_means < 0.1).all()):
        return _report(name, False, "each posterior is about as wide as the prior and the means hardly move: "
                                    "the model looks untrained. Hint: train it with vaelib.fit before encoding")
    if total.shape != (2,):
        return _report(name, False, f"shape {tuple(total.shape)}: expected one number per latent dimension, (2,)")
    near = lambda a: torch.allclose(total, a, rtol=2e-3, atol=1e-4)  # noqa: E731
    if near(var_of_means + mean_of_vars) or near(mu.var(0) + mean_of_vars):   # n or n - 1: either is fine
        values = ", ".join(f"{v:.2f}" for v in total.tolist())
        return _report(name, True, f"right for your trained model: total variance {values} (the prior's is 1)")
    if pretrained is not None:
        mu_p, logvar_p = (t.float().cpu() for t in pretrained.encoder(x.to(pretrained.device)))
        if near(mu_p.var(0, unbiased=False) + logvar_p.exp().mean(0)):
            return _report(name, False, "these are the pretrained model's numbers. Hint: encode x with your "
                                        "fresh model")
    variances = (var_of_means, mu.var(0))                 # of the means, dividing by n or by n - 1
    stds = (mu.std(0, unbiased=False), mu.std(0))
    if any(near(v) for v in variances):
        return _report(name, False, "only the variance of the means. Hint: the law of total variance adds the "
                                    "mean of the posterior variances")
    if near(mean_of_vars):
        return _report(name, False, "only the mean posterior variance. Hint: the law of total variance adds the "
                                    "variance of the posterior means across images")
    if any(near(s + mean_of_vars) for s in stds):
        return _report(name, False, "you added the standard deviation of the means. Hint: variances add, "
                                    "standard deviations do not")
    if any(near(v + logvar.mean(0)) or near(v + logvar.mean(0).exp()) for v in variances):
        return _report(name, False, "the posterior-variance term is off. Hint: average the variances "
                                    "exp(logvar) over images, not the log-variances")
    return _report(name, False, "not the total variance of this model's codes of x. Hint: per dimension, "
                                "Var_n[mu_n] + mean_n sigma_n^2, from model.encoder(x)")
