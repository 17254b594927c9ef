"""Checks for notebook 03 (KL divergence)."""
import math

import torch

from ._feedback import (_as_tensor, _cases, _close, _kl_per_dim, _log_normal, _log_normal_coords, _log_normal_diag,
                        _seeded, answer, diagnose, exercise_check, expect, unpack, wrong_shape)

__all__ = ['check_gaussian_kl', 'check_kl_diag', 'check_best_reverse_fit', 'check_kl_to_mixture_mc']


@exercise_check("correct on 3 random batches")
def check_gaussian_kl(fn) -> bool:
    """``fn(mu, logvar)``: KL(N(mu, exp(logvar)) || N(0, I)) per example, ``(B, D) -> (B,)``."""
    for mu, logvar in _cases():
        out = _as_tensor(answer(fn, mu, logvar))
        per_dim = _kl_per_dim(mu, logvar)
        expected = per_dim.sum(-1)
        var_as_logvar = 0.5 * (mu.pow(2) + logvar - torch.log(logvar.abs().clamp_min(1e-12)) - 1).sum(-1)
        expect(out, expected, [
            (per_dim, "you return one KL per latent dimension, (B, D). Hint: the KL of the whole latent vector sums "
             "over the dimensions: .sum(-1)"),
            (-expected, "the sign is flipped. Hint: a KL divergence is never negative"),
            (per_dim.mean(-1), "you average over latent dimensions. Hint: sum over them instead"),
            (2 * expected, "twice the right value. Hint: the closed form has a factor 1/2"),
            (out.shape == expected.shape and (_close(out, var_as_logvar) or not torch.isfinite(out).all()), "you used "
             "logvar as if it were the variance. Hint: the variance is logvar.exp(), "
             "and log(variance) is logvar itself"),
            (out.dim() == 0, f"a single number; expected one KL per example, shape {tuple(expected.shape)}"),
        ], otherwise=f"wrong values (shape {tuple(out.shape)}, expected {tuple(expected.shape)}). Hint: write KL_j = "
                     "1/2 (mu_j^2 + sigma_j^2 - log sigma_j^2 - 1), then sum over j")


def _kl_diag_per_dim(mu_q, logvar_q, mu_p, logvar_p):
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p) ** 2) / logvar_p.exp() - 1)


@exercise_check("correct on 3 random batches")
def check_kl_diag(fn) -> bool:
    """``fn(mu_q, logvar_q, mu_p, logvar_p)``: KL(N(mu_q, diag e^logvar_q) || N(mu_p, diag e^logvar_p)) summed over
    the last dimension, ``4 x (B, D) -> (B,)``."""
    for g, _ in _seeded(11):
        mu_q, logvar_q, mu_p, logvar_p = (torch.randn(5, 4, generator=g) for _ in range(4))
        out = _as_tensor(answer(fn, mu_q, logvar_q, mu_p, logvar_p))
        per_dim = _kl_diag_per_dim(mu_q, logvar_q, mu_p, logvar_p)
        expected = per_dim.sum(-1)
        log_abs = lambda v: torch.log(v.abs().clamp_min(1e-12))  # noqa: E731
        as_variance = 0.5 * (log_abs(logvar_p) - log_abs(logvar_q) + (logvar_q + (mu_q - mu_p) ** 2) / logvar_p - 1)
        expect(out, expected, [
            (per_dim, "one KL per dimension, (B, D). Hint: the dimensions are independent, so their KLs add up: "
             "sum over the last dimension"),
            (-expected, "the sign is flipped. Hint: a KL divergence is never negative"),
            (_kl_diag_per_dim(mu_p, logvar_p, mu_q, logvar_q).sum(-1), "that is KL(p || q): the roles of q and p are "
             "swapped. Hint: the expectation is under q, the first distribution"),
            (per_dim.mean(-1), "you average over dimensions. Hint: sum over them instead"),
            (2 * expected, "twice the right value. Hint: the closed form has a factor 1/2"),
            ((0.5 * (logvar_p - logvar_q + logvar_q.exp() / logvar_p.exp() + (mu_q - mu_p) ** 2 - 1)).sum(-1),
             "the squared difference of the means is not divided by the variance of p. Hint: (sigma_q^2 + (mu_q - "
             "mu_p)^2) / sigma_p^2, both terms"),
            ((0.5 * (logvar_q - logvar_p + (logvar_q.exp() + (mu_q - mu_p) ** 2) / logvar_p.exp() - 1)).sum(-1),
             "the log term has the wrong sign. Hint: it is log(sigma_p / sigma_q)"),
            ((0.5 * (logvar_p - logvar_q + ((0.5 * logvar_q).exp() + (mu_q - mu_p) ** 2) / (0.5 * logvar_p).exp()
                     - 1)).sum(-1),
             "you used standard deviations where variances belong. Hint: the variance is exp(logvar), the "
             "standard deviation exp(logvar / 2)"),
            (_kl_diag_per_dim(mu_q, logvar_q, mu_p, torch.zeros_like(logvar_p)).sum(-1), "logvar_p is ignored: that is "
             "a KL to a unit-variance Gaussian. Hint: p's variance appears in the log term and in the denominator"),
            (_kl_diag_per_dim(mu_q, logvar_q, torch.zeros_like(mu_p), logvar_p).sum(-1), "mu_p is ignored. Hint: the "
             "means enter through (mu_q - mu_p)^2"),
            (out.shape == expected.shape and (_close(out, as_variance.sum(-1)) or not torch.isfinite(out).all()),
             "you used logvar as if it were the variance. Hint: the variance is logvar.exp(), "
             "and log(variance) is logvar itself"),
            (out.dim() == 0, f"a single number; expected one KL per example, shape {tuple(expected.shape)}"),
            wrong_shape(out, expected, "one KL per example"),
        ], otherwise="wrong values. Hint: per dimension, log(sigma_p / sigma_q) + (sigma_q^2 + (mu_q - mu_p)^2) / (2 "
                     "sigma_p^2) - 1/2, then sum over dimensions")


# The integration grid and the target of notebook 03, section 5: an equal mixture of N(-a, 1) and N(a, 1).
_Z = torch.linspace(-12, 12, 1201, dtype=torch.float64)


def _kl_tables(a, m_grid, log_s_grid):
    """Reverse KL(q || p) and forward KL(p || q), (len(m_grid), len(log_s_grid)), by the trapezoid rule."""
    zero = torch.zeros((), dtype=torch.float64)
    log_p = torch.logaddexp(_log_normal(_Z, -a, zero), _log_normal(_Z, a, zero)) - math.log(2)
    log_q = _log_normal(_Z, m_grid[:, None, None], log_s_grid[None, :, None])
    reverse = torch.trapezoid(log_q.exp() * (log_q - log_p), _Z)
    forward = torch.trapezoid(log_p.exp() * (log_p - log_q), _Z)
    return reverse, forward


@exercise_check("the global minimum for a = 1, 3 and 4")
def check_best_reverse_fit(fn) -> bool:
    """``fn(a, m_grid, log_s_grid)``: the global minimum over the grid of KL(q || p) for q = N(m, s^2), m in
    ``m_grid``, log s in ``log_s_grid`` (float64), p = the equal mixture of N(-a, 1) and N(a, 1). The KL is
    integrated by the trapezoid rule on section 5's ``grid = torch.linspace(-12, 12, 1201)``. Returns the
    best ``(m, s, kl)``: three numbers, s the standard deviation."""
    m_grid = torch.linspace(0, 6, 31, dtype=torch.float64)
    log_s_grid = torch.linspace(math.log(0.3), math.log(6.0), 40, dtype=torch.float64)
    for a in (1.0, 3.0, 4.0):
        out = answer(fn, a, m_grid, log_s_grid)
        m, s, kl = unpack(out, 3, f"you returned {out!r}. Hint: return three numbers, (m, s, kl)",
                          errors=(TypeError, ValueError))
        reverse, forward = _kl_tables(a, m_grid, log_s_grid)
        i, j = divmod(int(reverse.argmin()), len(log_s_grid))
        m_best, s_best, kl_best = m_grid[i].item(), log_s_grid[j].exp().item(), reverse[i, j].item()
        right_m, right_s = abs(abs(m) - m_best) < 1e-6, abs(s - s_best) < 1e-6 * s_best
        if right_m and right_s and abs(kl - kl_best) < 1e-4:
            continue
        fi, fj = divmod(int(forward.argmin()), len(log_s_grid))
        at_forward = (fi, fj) != (i, j) and abs(abs(m) - m_grid[fi].item()) < 1e-6 \
            and abs(s - log_s_grid[fj].exp().item()) < 1e-6 * s
        return diagnose(None, [
            (at_forward or abs(kl - forward[fi, fj].item()) < 1e-4, "that is the minimum of the forward KL(p || q), "
             "the mass-covering fit. Hint: the reverse KL averages log q - log p under q"),
            (right_m and right_s and abs(kl - (kl_best - math.log(2))) < 1e-4, "your KL is log 2 too small: the target "
             "is not normalized. Hint: an equal mixture gives each bump the weight 1/2"),
            (right_m and abs(s - log_s_grid[j].item()) < 1e-6, "you return log s. Hint: return the standard "
             "deviation s = exp(log s)"),
            (kl < 0, "a negative KL: the sign is flipped. Hint: the integrand is q (log q - log p)"),
            (abs(kl - kl_best) < 1e-4, "the right smallest KL, but not at your (m, s). Hint: check how you turn the "
             "position of the minimum into a row (m) and a column (s)"),
            (right_m and right_s, f"the right (m, s) for a = {a}, but your KL ({kl:.4f}) is not the reverse KL there. "
             "Hint: return the smallest KL itself, in nats"),
        ], otherwise=f"for a = {a}: not the global minimum of the reverse KL over the grid. Hint: evaluate KL(q || p) "
                     "for every (m, log s) pair of the two grids and take the smallest")


@exercise_check("correct on 3 random batches and mixture priors")
def check_kl_to_mixture_mc(fn) -> bool:
    """``fn(mu, logvar, eps, weights, means, logvars)``: the Monte-Carlo estimate of KL(q || p) per example, with
    q = N(mu, diag exp(logvar)) ((B, D) each) and the mixture prior p(z) = sum_k weights[k] N(z; means[k],
    diag exp(logvars[k])) (weights (K,), means and logvars (K, D)). The samples are z = mu + exp(logvar / 2) * eps,
    with ``eps`` (S, B, D) given; return the average over the S samples of log q(z) - log p(z): shape (B,)."""
    for g, _ in _seeded(15):
        mu, logvar = torch.randn(5, 3, generator=g), 0.5 * torch.randn(5, 3, generator=g) - 0.5
        eps = torch.randn(7, 5, 3, generator=g)
        weights = torch.softmax(torch.randn(4, generator=g), 0)
        means, logvars = 2 * torch.randn(4, 3, generator=g), 0.3 * torch.randn(4, 3, generator=g)
        out = _as_tensor(answer(fn, mu, logvar, eps, weights, means, logvars)).detach().float()
        z = mu + torch.exp(0.5 * logvar) * eps                                        # (S, B, D)
        log_q = _log_normal_diag(z, mu, logvar)                                       # (S, B)
        log_comp = _log_normal_diag(z[:, :, None, :], means, logvars)                 # (S, B, K)
        log_p = torch.logsumexp(log_comp + weights.log(), -1)
        expected = (log_q - log_p).mean(0)
        per_coord = torch.logsumexp(_log_normal_coords(z[:, :, None, :], means, logvars) + weights.log()[:, None],
                                    -2).sum(-1)
        log_p_of_eps = torch.logsumexp(_log_normal_diag(eps[:, :, None, :], means, logvars) + weights.log(), -1)
        expect(out, expected, [
            (out.shape == log_q.shape, f"shape {tuple(out.shape)}: one value per sample and example. Hint: average "
             "over the samples (dim 0)"),
            wrong_shape(out, expected, "one KL per example"),
            (-expected, "the sign is flipped: that is the average of log p(z) - log q(z). Hint: KL(q || "
             "p) = E_q[log q(z) - log p(z)]"),
            ((log_q - (log_comp * weights).sum(-1)).mean(0), "you used sum_k w_k log N_k(z) for log p(z): the mixture "
             "of the logs, which by Jensen is below the log of the mixture, so your KL is too large. Hint: log p(z) = "
             "log sum_k w_k N_k(z), computed with torch.logsumexp"),
            ((log_q - torch.logsumexp(log_comp, -1)).mean(0), "the mixture weights are missing. Hint: add log w_k to "
             "each component's log-density before the logsumexp"),
            ((log_q - per_coord).mean(0), "you mixed every coordinate separately. Hint: the components are "
             "D-dimensional Gaussians: sum each component's log-density over the dimensions "
             "first, then mix the K components"),
            ((_log_normal_diag(eps, mu, logvar) - log_p_of_eps).mean(0), "your samples are eps itself, not samples of "
             "q. Hint: z = mu + exp(logvar / 2) * eps"),
            ((log_q - log_p).mean(0) / mu.shape[-1], "you divided by the number of latent dimensions. Hint: the KL of "
             "the whole latent vector is a sum over dimensions"),
        ], otherwise="wrong values. Hint: z = mu + exp(logvar / 2) * eps; log q(z) and each component's "
                     "log N_k(z) sum over dimensions; log p(z) = logsumexp_k(log w_k + log N_k(z)); "
                     "average log q - log p over the samples", tol=1e-3)
