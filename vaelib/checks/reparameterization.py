"""Checks for notebook 04 (the reparameterization trick)."""
from __future__ import annotations

import torch

from ._feedback import _report, _call, _close, _as_tensor, _cases

__all__ = ['check_reparameterize', 'check_reinforce_baseline', 'check_sigma_gradients', 'check_exponential_rsample',
           'check_full_covariance_rsample']


def check_reparameterize(fn) -> bool:
    """``fn(mu, logvar, eps)``: the reparameterized sample z = mu + exp(logvar / 2) * eps."""
    name = "check_reparameterize"
    for mu, logvar in _cases(1):
        eps = torch.randn_like(mu)
        mu_, logvar_ = mu.clone().requires_grad_(), logvar.clone().requires_grad_()
        out, error = _call(name, fn, mu_, logvar_, eps)
        if error:
            return _report(name, False, error)
        out = _as_tensor(out)
        expected = mu + torch.exp(0.5 * logvar) * eps
        if _close(out.detach(), expected):
            if out.grad_fn is None or not out.requires_grad:
                return _report(name, False, "the values are right but no gradient flows to mu and logvar. Hint: "
                                            "build z from mu and logvar with torch operations, no .detach()/.item()")
            continue
        if _close(out.detach(), mu + torch.exp(logvar) * eps):
            return _report(name, False, "you scale eps by the variance. Hint: the standard deviation is exp(logvar / 2)")
        if _close(out.detach(), mu + logvar * eps):
            return _report(name, False, "you scale eps by logvar itself. Hint: sigma = exp(logvar / 2)")
        if _close(out.detach(), torch.exp(0.5 * logvar) * eps):
            return _report(name, False, "the mean is missing. Hint: shift the scaled noise by mu")
        return _report(name, False, "wrong values. Hint: z = mu + sigma * eps with sigma = exp(logvar / 2), "
                                    "using the eps you are given")
    return _report(name, True, "correct, and gradients reach mu and logvar")


def _score_cases():
    """Three small problems (f, mu, sigma, z ~ N(mu, sigma^2)); sigma != 1 in two, so sigma and sigma^2 differ."""
    g = torch.Generator().manual_seed(11)
    problems = [(lambda z: z ** 2, 2.0, 1.0), (lambda z: torch.sin(3 * z) + z, -0.5, 1.5), (lambda z: z ** 3, 1.0, 0.5)]
    return [(f, mu, sigma, mu + sigma * torch.randn(8, generator=g)) for f, mu, sigma in problems]


def check_reinforce_baseline(fn) -> bool:
    """``fn(f, z, mu, sigma, b)``: the one-sample score-function estimates of d/dmu E[f(z)], z ~ N(mu, sigma^2),
    with baseline ``b``: ``(f(z) - b) * (z - mu) / sigma**2``, one per sample, ``(n,) -> (n,)``."""
    name = "check_reinforce_baseline"
    for (f, mu, sigma, z), b in zip(_score_cases(), (5.0, 0.3, -2.0)):
        out, error = _call(name, fn, f, z.clone(), mu, sigma, b)
        if error:
            return _report(name, False, error)
        out = _as_tensor(out).detach()
        score = (z - mu) / sigma ** 2
        expected = (f(z) - b) * score
        if _close(out, expected):
            continue
        if out.dim() == 0:
            return _report(name, False, "a single number. Hint: return one term per sample, shape (n,): the "
                                        "notebook averages them and measures their variance")
        if _close(out, f(z) * score):
            return _report(name, False, "the baseline is ignored. Hint: subtract b from f(z) before multiplying "
                                        "by the score")
        if _close(out, (f(z) + b) * score):
            return _report(name, False, "you add the baseline. Hint: subtract it: (f(z) - b)")
        if _close(out, f(z) * score - b):
            return _report(name, False, "you subtract b from the product, which moves the estimate's mean by b "
                                        "(biased). Hint: subtract b from f(z), then multiply by the score")
        if _close(out, (f(z) - b) * (z - mu) / sigma):
            return _report(name, False, "you divide by sigma instead of sigma^2. Hint: d/dmu log N(z; mu, sigma^2) = "
                                        "(z - mu) / sigma^2")
        if _close(out, -expected):
            return _report(name, False, "the sign is flipped. Hint: the score is (z - mu) / sigma^2, positive "
                                        "when z is above the mean")
        return _report(name, False, f"wrong values (shape {tuple(out.shape)}, expected {tuple(expected.shape)}). "
                                    "Hint: (f(z) - b) * (z - mu) / sigma^2, one term per sample")
    return _report(name, True, "correct on 3 test problems, each with its own baseline")


def _grad_sigma(fn, f, mu, sigma, data):
    """Run a learner's estimator ``fn(f, mu, sigma, data)`` and return (a float, or None and a message)."""
    out, error = _call("check_sigma_gradients", fn, f, mu, sigma, data.clone())
    if error:
        if "does not require grad" in error or "does not have a grad_fn" in error:
            return None, ("no gradient reaches sigma. Hint: sigma = torch.tensor(sigma, requires_grad=True), "
                          "then build the graph from it")
        return None, error
    out = _as_tensor(out).detach()
    if out.numel() != 1:
        return None, f"shape {tuple(out.shape)}: the estimate is one number. Hint: average over the samples"
    return out.item(), None


def check_sigma_gradients(pathwise_fn, score_fn) -> bool:
    """Both estimators of d/dsigma E[f(z)], z ~ N(mu, sigma^2), each returning one number:

    ``pathwise_fn(f, mu, sigma, eps)``: autograd through z = mu + sigma * eps for the given noise ``eps`` (n,);
    ``score_fn(f, mu, sigma, z)``: autograd through the surrogate mean(f(z) * log N(z; mu, sigma^2)) for the
    given samples ``z`` (n,). ``mu`` and ``sigma`` are floats."""
    name = "check_sigma_gradients"
    near = lambda a, b: abs(a - b) <= 1e-4 * max(1.0, abs(b))  # noqa: E731
    for f, mu, sigma, z in _score_cases():
        eps = (z - mu) / sigma
        s = torch.tensor(sigma, requires_grad=True)
        expected = torch.autograd.grad(f(mu + s * eps).mean(), s)[0].item()     # mean of f'(z) * eps
        value, error = _grad_sigma(pathwise_fn, f, mu, sigma, eps)
        if error:
            return _report(name, False, f"pathwise: {error}")
        if not near(value, expected):
            zz = z.clone().requires_grad_()
            grad_mu = torch.autograd.grad(f(zz).mean(), zz)[0].sum().item()     # mean of f'(z)
            if near(value, grad_mu):
                hint = ("that is the gradient with respect to mu. Hint: differentiate with respect to sigma "
                        "(dz/dsigma = eps)")
            elif near(value, len(z) * expected):
                hint = "you sum over the samples. Hint: the estimate is their average"
            else:
                hint = ("wrong value. Hint: z = mu + sigma * eps with the eps you are given, then autograd of "
                        "f(z).mean()")
            return _report(name, False, f"pathwise: {hint}")
        score_sigma = (z - mu) ** 2 / sigma ** 3 - 1 / sigma                    # d/dsigma log N(z; mu, sigma^2)
        expected = (f(z) * score_sigma).mean().item()
        value, error = _grad_sigma(score_fn, f, mu, sigma, z)
        if error:
            return _report(name, False, f"score function: {error}")
        if not near(value, expected):
            if near(value, (f(z) * (z - mu) / sigma ** 2).mean().item()):
                hint = ("that is the gradient with respect to mu. Hint: differentiate the surrogate with respect "
                        "to sigma")
            elif near(value, -expected):
                hint = "the sign is flipped. Hint: the surrogate is + f(z) * log q(z)"
            elif near(value, len(z) * expected):
                hint = "you sum over the samples. Hint: average the surrogate over them"
            elif near(value, (f(z) * (z - mu) ** 2 / sigma ** 3).mean().item()):
                hint = ("the -1/sigma from the density's normalization -log sigma is missing. Hint: use "
                        "Normal(mu, sigma).log_prob(z), which includes it")
            else:
                hint = ("wrong value. Hint: autograd of mean(f(z) * Normal(mu, sigma).log_prob(z)) with respect to "
                        "sigma, on the z you are given")
            return _report(name, False, f"score function: {hint}")
    return _report(name, True, "both estimators are correct on 3 test problems")


def check_exponential_rsample(fn) -> bool:
    """``fn(rate, u)``: the reparameterized exponential sample z = -log(u) / rate, for a rate (a 0-d tensor
    that requires grad) and uniform numbers ``u`` in (0, 1), shape ``(n,)`` -> ``(n,)``."""
    name = "check_exponential_rsample"
    g = torch.Generator().manual_seed(12)
    for lam in (2.0, 0.5, 3.0):
        u = torch.rand(8, generator=g).clamp_min(1e-6)
        rate = torch.tensor(lam, requires_grad=True)
        out, error = _call(name, fn, rate, u.clone())
        if error:
            return _report(name, False, error)
        out = _as_tensor(out)
        expected = -torch.log(u) / lam
        if _close(out.detach(), expected):
            if not out.requires_grad:
                return _report(name, False, "the values are right but no gradient reaches the rate. Hint: build z "
                                            "from rate with torch operations, no .detach()/.item()/torch.tensor(...)")
            grad = torch.autograd.grad(out.sum(), rate, allow_unused=True)[0]
            wanted = (torch.log(u).sum() / lam ** 2).item()                   # d/drate of sum(-log(u) / rate)
            if grad is None or abs(grad.item() - wanted) > 1e-4 * max(1.0, abs(wanted)):
                return _report(name, False, "the values are right but the gradient with respect to the rate is not. "
                                            "Hint: let the rate enter z only through the division")
            continue
        if _close(out.detach(), -torch.log(u) * lam):
            return _report(name, False, "you multiply by the rate: the mean would be lambda, not 1/lambda. "
                                        "Hint: divide by the rate")
        if _close(out.detach(), -expected):
            return _report(name, False, "negative samples: log(u) < 0 for u in (0, 1). Hint: an exponential "
                                        "variable is positive, z = -log(u) / rate")
        if _close(out.detach(), -torch.log1p(-u) / lam):
            return _report(name, False, "-log(1 - u) / rate is also exponential (1 - u is uniform too), but use "
                                        "z = -log(u) / rate so that the check can compare values")
        return _report(name, False, "wrong values. Hint: z = -log(u) / rate, with the u you are given")
    return _report(name, True, "correct, and gradients reach the rate")


def _scale_tril(raw):
    """The lower-triangular scale matrix of the exercise: raw entries below the diagonal, exp of the raw diagonal."""
    return torch.tril(raw, -1) + torch.diag_embed(torch.exp(torch.diagonal(raw, dim1=-2, dim2=-1)))


def check_full_covariance_rsample(fn) -> bool:
    """``fn(mu, raw_scale, eps)``: a reparameterized sample of a full-covariance Gaussian, z = mu + L eps, with
    ``mu`` (B, D), ``raw_scale`` (B, D, D) unconstrained, ``eps`` (B, D) standard normal, and L lower triangular:
    the entries of raw_scale below the diagonal, exp of its diagonal, zeros above. Returns z, (B, D), with
    gradients reaching mu and raw_scale."""
    name = "check_full_covariance_rsample"
    g = torch.Generator().manual_seed(16)
    for _ in range(3):
        mu = torch.randn(4, 3, generator=g)
        raw = torch.randn(4, 3, 3, generator=g)
        eps = torch.randn(4, 3, generator=g)
        weights = torch.randn(4, 3, generator=g)                       # a random linear function of z, for gradients
        mu_, raw_ = mu.clone().requires_grad_(), raw.clone().requires_grad_()
        out, error = _call(name, fn, mu_, raw_, eps.clone())
        if error:
            return _report(name, False, error)
        out = _as_tensor(out)
        L = _scale_tril(raw)
        expected = mu + (L @ eps[..., None])[..., 0]
        value = out.detach()
        if _close(value, expected):
            if not out.requires_grad:
                return _report(name, False, "the values are right but no gradient flows. Hint: build z from mu and "
                                            "raw_scale with torch operations, no .detach()/.item()/.numpy()")
            grads = torch.autograd.grad((out * weights).sum(), (mu_, raw_), allow_unused=True)
            ref_mu, ref_raw = mu.clone().requires_grad_(), raw.clone().requires_grad_()
            ref = ref_mu + (_scale_tril(ref_raw) @ eps[..., None])[..., 0]
            ref_grads = torch.autograd.grad((ref * weights).sum(), (ref_mu, ref_raw))
            if any(gr is None or not _close(gr, rg) for gr, rg in zip(grads, ref_grads)):
                return _report(name, False, "right values, wrong gradients. Hint: compute L from raw_scale with "
                                            "differentiable operations (torch.tril, torch.diagonal, torch.exp, "
                                            "torch.diag_embed), not by writing into a tensor in place")
            continue
        if out.shape != expected.shape:
            return _report(name, False, f"shape {tuple(out.shape)}; expected one sample per row of mu, "
                                        f"{tuple(expected.shape)}")
        if _close(value, mu + (raw @ eps[..., None])[..., 0]):
            return _report(name, False, "you used raw_scale itself as L. Hint: keep only its lower triangle, and "
                                        "take exp of the diagonal so that it is positive, as a log-variance is")
        if _close(value, mu + (L.transpose(-1, -2) @ eps[..., None])[..., 0]):
            return _report(name, False, "you multiplied by the transpose of L (eps @ L is L^T eps): the covariance "
                                        "would be L^T L, not L L^T. Hint: z = mu + L @ eps, one matrix-vector "
                                        "product per example")
        if _close(value, mu + (torch.tril(raw) @ eps[..., None])[..., 0]):
            return _report(name, False, "the diagonal of L is raw_scale's diagonal, which can be negative. Hint: "
                                        "exponentiate the diagonal (and only the diagonal)")
        if _close(value, mu + (torch.tril(torch.exp(raw)) @ eps[..., None])[..., 0]):
            return _report(name, False, "you exponentiated the whole lower triangle. Hint: only the diagonal must be "
                                        "positive; the entries below it stay as they are, of either sign")
        if _close(value, mu + torch.exp(torch.diagonal(raw, dim1=-2, dim2=-1)) * eps):
            return _report(name, False, "you used only the diagonal: that is the diagonal Gaussian of section 5, "
                                        "with independent coordinates. Hint: the entries below the diagonal of L "
                                        "correlate them")
        if _close(value, (L @ eps[..., None])[..., 0]):
            return _report(name, False, "the mean is missing. Hint: shift L eps by mu")
        cov = L @ L.transpose(-1, -2)
        if _close(value, mu + (cov @ eps[..., None])[..., 0]):
            return _report(name, False, "you multiplied eps by the covariance L L^T. Hint: a sample needs a "
                                        "square root of the covariance, the scale L itself")
        return _report(name, False, "wrong values. Hint: build L as defined (raw_scale's entries below the "
                                    "diagonal, exp of its diagonal, zeros above), then z = mu + L eps per example")
    return _report(name, True, "correct on 3 random batches, and gradients reach mu and raw_scale")
