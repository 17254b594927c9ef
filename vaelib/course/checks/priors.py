"""Checks for notebook 13 (better priors)."""
import math

import torch

from ._feedback import (_as_tensor, _kl_per_dim, _log_normal_coords, _log_normal_diag, _seeded, answer, diagnose,
                        either, exercise_check, expect, one_number, unpack)

__all__ = ['check_prior_parameters', 'check_mutual_information', 'check_best_gaussian_prior', 'check_vamp_log_prior']


def _prior_module(kind, latent_dim, components, image_shape):
    """The vaelib prior itself (its ``parameters()`` are what the check counts)."""
    from vaelib.networks import MLPEncoder
    from vaelib.priors import MixtureOfGaussiansPrior, StandardNormalPrior, VampPrior
    if kind == "standard":
        return StandardNormalPrior(latent_dim)
    if kind == "mog":
        return MixtureOfGaussiansPrior(latent_dim, components)
    return VampPrior(latent_dim, MLPEncoder(latent_dim, 8, image_shape=image_shape), image_shape, components)


@exercise_check("right for the standard, mixture and VampPrior, in 6 configurations")
def check_prior_parameters(fn) -> bool:
    """``fn(kind, latent_dim, components, image_shape)``: the number of learned numbers that the prior ``kind``
    (``"standard"``, ``"mog"`` or ``"vamp"``) adds to a VAE, as vaelib builds it (its ``parameters()``; the
    VampPrior's encoder is the VAE's own and is not counted again). ``image_shape`` is ``(C, H, W)``."""
    for kind, d, k, shape in [("mog", 20, 10, (1, 28, 28)), ("vamp", 20, 500, (1, 28, 28)),
                              ("standard", 20, 0, (1, 28, 28)), ("mog", 3, 7, (1, 6, 6)), ("vamp", 5, 4, (3, 8, 8)),
                              ("mog", 32, 1, (3, 32, 32))]:
        out = answer(fn, kind, d, k, tuple(shape))
        value = one_number(out, ". Hint: return one whole number, the count of learned numbers")
        if value == sum(p.numel() for p in _prior_module(kind, d, k, shape).parameters()):
            continue
        case = f"for kind={kind!r}, latent_dim={d}, components={k}, image_shape={shape}"
        pixels = math.prod(shape)
        mog, vamp = kind == "mog", kind == "vamp"
        return diagnose(None, [
            (kind == "standard", f"{value:g} {case}. Hint: N(0, I) learns nothing; its mean and scale are fixed "
             "numbers (buffers), not parameters"),
            (mog and value == 2 * k * d, f"{value:g} {case}: the means and log-variances, but not the weights. Hint: "
             "the mixture weights are learned too, through one logit per component"),
            (mog and value == 2 * k * d + k - 1, f"{value:g} {case}: K - 1 weights. Hint: vaelib learns all K logits "
             "(the softmax makes one of them redundant, but all K are parameters)"),
            (mog and value in (k * d + k, k * d), f"{value:g} {case}. Hint: every component has its own mean *and* its "
             "own variance in each of the D dimensions"),
            (mog and value in (k * (d + 2), k * 3, 2 * d + 1), f"{value:g} {case}. Hint: the components are diagonal "
             "Gaussians in D dimensions: D means and D log-variances each, not one"),
            (vamp and value in (2 * k * d, k * d, 2 * k * d + k), f"{value:g} {case}: that counts latent means and "
             "variances. Hint: the VampPrior learns pseudo-images; the means and variances of its "
             "components come from the encoder"),
            (vamp and value == k * shape[-1] * shape[-2] and shape[0] > 1, f"{value:g} {case}: the channels are "
             "missing. Hint: each pseudo-image has the shape of an image, C x H x W"),
            (vamp and value > k * pixels, f"{value:g} {case}: more than the pseudo-images. Hint: the encoder is the "
             "VAE's own, shared with the prior, so it adds nothing"),
            (vamp and value == pixels, f"{value:g} {case}: one pseudo-image. Hint: there are K of them"),
        ], otherwise=f"{value:g} {case}, expected another number. Hint: list the prior's learned tensors and their "
                     "shapes (MixtureOfGaussiansPrior: means, logvars, logits; VampPrior: pseudo_inputs)")


def _mi_parts(mu, logvar, eps, leave_out=False):
    """(log q(z|x_n), log q(z) terms, z) for z = mu + sigma * eps, ``eps`` (S, N, D)."""
    z = mu + torch.exp(0.5 * logvar) * eps                                      # (S, N, D)
    pairs = _log_normal_diag(z[:, :, None, :], mu, logvar)                      # (S, N, M)
    own = pairs.diagonal(dim1=1, dim2=2)                                        # (S, N)
    n = mu.shape[0]
    if leave_out:     # each x_n's own posterior left out of q(z): the mean of the N - 1 others
        pairs = pairs.masked_fill(torch.eye(n, dtype=torch.bool), float("-inf"))
    return own, torch.logsumexp(pairs, -1) - math.log(n - 1 if leave_out else n), z


@exercise_check("correct on 3 sets of posteriors, overlapping and apart")
def check_mutual_information(fn) -> bool:
    """``fn(mu, logvar, eps)``: the Monte-Carlo estimate of I(x; z) for N posteriors q(z|x_n) = N(mu_n, diag
    exp(logvar_n)) (``mu``, ``logvar`` (N, D)), with samples z_sn = mu_n + exp(logvar_n / 2) * eps_sn (``eps``
    (S, N, D)): the average over s and n of log q(z_sn|x_n) - log q(z_sn), where q(z) = (1/N) sum_m q(z|x_m) is
    the aggregate posterior. One number, in nats."""
    g = torch.Generator().manual_seed(13)
    f64 = dict(generator=g, dtype=torch.float64)
    for n, d, s, spread in ((40, 2, 3, 0.5), (25, 3, 4, 3.0), (60, 5, 2, 1.0)):
        mu, logvar = spread * torch.randn(n, d, **f64), 0.4 * torch.randn(n, d, **f64) - 0.5
        eps = torch.randn(s, n, d, **f64)
        out = answer(fn, mu, logvar, eps)
        if isinstance(out, torch.Tensor) and out.numel() > 1:
            return (f"shape {tuple(out.shape)}: one value per sample or posterior. Hint: average over the samples and "
                    "over the N posteriors, to one number")
        value = one_number(out)
        own, log_qz, z = _mi_parts(mu, logvar, eps)
        expected = (own - log_qz).mean().item()
        rate = _kl_per_dim(mu, logvar).sum(-1).mean().item()
        rate_mc = (own - _log_normal_diag(z, 0 * mu, 0 * logvar)).mean().item()
        own_lo, log_qz_lo, _ = _mi_parts(mu, logvar, eps, leave_out=True)
        per_coord = torch.logsumexp(_log_normal_coords(z[:, :, None, :], mu, logvar), -2).sum(-1) - d * math.log(n)
        own_mu, log_qz_mu, _ = _mi_parts(mu, logvar, 0 * eps)
        expect(value, expected, [
            (-expected, "the sign is flipped: that is the average of log q(z) - log q(z|x). Hint: I(x; z) = E[log "
             "q(z|x) - log q(z)] is never negative"),
            (expected - math.log(n), "log N too small: your log q(z) is a log of a sum over the N posteriors. Hint: "
             "q(z) is their average: logsumexp minus log N"),
            (either(rate, rate_mc), "that is the average KL to N(0, I) (the rate). Hint: I(x; z) compares q(z|x) with "
             "the aggregate posterior q(z), not with the prior"),
            ((own_lo - log_qz_lo).mean().item(), "you left each x_n's own posterior out of q(z). Hint: q(z) is the "
             "average of all N posteriors, x_n's own included"),
            ((own - per_coord).mean().item(), "you mixed every coordinate separately. Hint: the posteriors are "
             "D-dimensional: sum each log-density over the dimensions first, then take the "
             "log-mean-exp over the N posteriors"),
            ((own_mu - log_qz_mu).mean().item(), "you evaluated the densities at the means, not at samples. Hint: z "
             "= mu + exp(logvar / 2) * eps"),
            (value > math.log(n) + 1e-6, f"{value:.3f} nats, more than log N = {math.log(n):.3f}, which I(x; z) can "
             "never exceed when x is one of N images. Hint: check log q(z), the log-mean-exp over all N posteriors"),
        ], otherwise="wrong value. Hint: evaluate each sample z_sn under its own posterior q(z|x_n) and under the "
                     "aggregate posterior q(z), and average the difference of the two log-densities",
           near=lambda a, b: abs(a - b) < 1e-3)


@exercise_check("correct on 3 sets of posteriors")
def check_best_gaussian_prior(fn) -> bool:
    """``fn(mu, logvar)``: the diagonal Gaussian N(m, diag exp(log_s2)) closest to the aggregate posterior of
    the N posteriors N(mu_n, diag exp(logvar_n)) (``(N, D)`` each), the one that maximizes E_q(z)[log p(z)]:
    returns ``(m, log_s2)``, each ``(D,)``."""
    for g, (n, d) in _seeded(21, ((30, 2), (12, 4), (50, 3))):
        mu = 1.5 * torch.randn(n, d, generator=g, dtype=torch.float64)
        mu = mu + torch.randn(d, generator=g, dtype=torch.float64)      # a common shift: m is not 0
        logvar = torch.randn(n, d, generator=g, dtype=torch.float64) - 1
        out = answer(fn, mu, logvar)
        message = f"you returned {type(out).__name__}. Hint: return two tensors, (m, log_s2)"
        if not isinstance(out, (tuple, list)):
            return message
        m, log_s2 = unpack(out, 2, message, convert=lambda v: _as_tensor(v).detach().double(),
                           errors=(TypeError, ValueError))
        var_of_means, mean_of_vars = mu.var(0, unbiased=False), logvar.exp().mean(0)
        s2 = var_of_means + mean_of_vars
        if m.shape != (d,) or log_s2.shape != (d,):
            return (f"shapes {tuple(m.shape)} and {tuple(log_s2.shape)}; expected ({d},) each. Hint: one mean and one "
                    "log-variance per latent dimension")
        expect(m, mu.mean(0), [
            (torch.zeros(d, dtype=torch.float64), "your mean is 0: that is N(0, I)'s. Hint: the best mean is the mean "
             "of q(z), the average of the posterior means"),
        ], otherwise="wrong mean. Hint: the best mean is the mean of q(z), an equal mixture of the N posteriors",
           tol=1e-6)
        expect(log_s2, s2.log(), [
            (var_of_means.log(), "your variance is only the spread of the posterior means. Hint: the law of total "
             "variance adds the average posterior variance"),
            (mean_of_vars.log(), "your variance is only the average posterior variance. Hint: the law of total "
             "variance adds the spread of the posterior means"),
            ((mu.var(0) + mean_of_vars).log(), "you divided by N - 1. Hint: q(z) is exactly the average of these N "
             "posteriors, so its variance divides by N"),
            (s2, "you return the variance. Hint: return its logarithm, log_s2"),
            (either(s2.sqrt(), s2.sqrt().log()), "that is a standard deviation (or its log). Hint: return "
             "the log of the variance"),
            (logvar.mean(0), "you averaged the log-variances. Hint: average variances (exp(logvar)) and add the spread "
             "of the means, then take the log"),
        ], otherwise="wrong log-variance. Hint: the best variance is the variance of q(z) in each dimension (the law "
                     "of total variance, notebook 07); return its log", tol=1e-6)


@exercise_check("correct on 3 mixtures (K = 1, 5, 50), far-away points included")
def check_vamp_log_prior(fn) -> bool:
    """``fn(z, mu_k, logvar_k)``: log p(z) of the VampPrior, the mixture (1/K) sum_k N(z; mu_k, diag exp(logvar_k)) of
    the encoder's posteriors at the K pseudo-inputs, for each row of ``z`` ``(N, D)``; ``mu_k`` and ``logvar_k``
    ``(K, D)``. Returns ``(N,)``."""
    g = torch.Generator().manual_seed(13)
    for n, k, d, far in ((6, 1, 2, 0.0), (5, 5, 4, 0.0), (4, 50, 20, 60.0)):
        z = torch.randn(n, d, generator=g)
        z[0] += far                        # a point far from every component: its density underflows in float32
        mu_k, logvar_k = torch.randn(k, d, generator=g), -2 + torch.rand(k, d, generator=g)
        out = _as_tensor(answer(fn, z, mu_k, logvar_k)).detach()
        per_component = _log_normal_diag(z[:, None], mu_k, logvar_k)               # (N, K)
        right = torch.logsumexp(per_component, 1) - math.log(k)
        if out.shape != right.shape:
            return (f"shape {tuple(out.shape)}; expected one log-density per row of z, {tuple(right.shape)}. Hint: "
                    "sum over the D latent dimensions, log-sum-exp over the K components")
        expect(out, right, [
            (bool(torch.isinf(out).any() | torch.isnan(out).any()),
             "a log-density is infinite or NaN: for a z far from every component, each N(z; mu_k, sigma_k^2) rounds "
             "to 0 in float32 and its log is -inf. Hint: stay in logs, torch.logsumexp(log N, dim=1) - log K"),
            (torch.logsumexp(per_component, 1), "the mixture's weights are missing: (1/K) sum_k. Hint: subtract log K"),
            (per_component.mean(1), "that is the mean of the log-densities, not the log of the mean density. Hint: "
                                    "torch.logsumexp over the components, minus log K"),
            (per_component.max(1).values, "that is the nearest component's log-density alone. Hint: every component "
                                          "counts: logsumexp over k, minus log K"),
            (either(torch.logsumexp(_log_normal_diag(z[:, None], mu_k, 2 * logvar_k), 1) - math.log(k),
                    torch.logsumexp(_log_normal_diag(z[:, None], mu_k, 0.5 * logvar_k), 1) - math.log(k)),
             "the variances are off: logvar_k is the log of the variance, sigma_k^2 = exp(logvar_k). Hint: "
             "N(z; mu, sigma^2) has -(z - mu)^2 / (2 exp(logvar)) - logvar / 2 - log(2 pi) / 2 per dimension"),
        ], otherwise="wrong values. Hint: log p(z) = logsumexp_k [sum_d log N(z_d; mu_kd, exp(logvar_kd))] - log K",
            tol=1e-3)
