"""Checks for notebook 02 (latent-variable models, the ELBO, importance weighting)."""
import math

import torch

from ._feedback import _as_tensor, _log_normal, _seeded, answer, correct, diagnose, exercise_check, expect, wrong_shape

__all__ = ['check_iwae_from_log_weights', 'check_fixed_std_q', 'check_toy_iwae_prior', 'check_elbo_mc']


@exercise_check("correct for k = 1, 7 and 50, and numerically stable")
def check_iwae_from_log_weights(fn) -> bool:
    """``fn(log_w)``: the importance-weighted bound from log weights ``(k, B)``: log mean_k exp(log_w), ``(B,)``."""
    for g, k in _seeded(3, (1, 7, 50)):
        log_w = torch.randn(k, 6, generator=g) * 3 - 400  # realistic magnitudes: exp() underflows to 0
        out = _as_tensor(answer(fn, log_w))
        expected = torch.logsumexp(log_w, 0) - math.log(k)
        expect(out, expected, [
            (out.shape == expected.shape and not torch.isfinite(out).all(), "you get -inf: exp(-400) underflows. Hint: "
             "use torch.logsumexp, which subtracts the maximum before exponentiating"),
            (torch.logsumexp(log_w, 0), "that is log of the sum, not of the mean. Hint: subtract log k"),
            (log_w.mean(0), "that is the mean of the log weights: the ELBO, not the IWAE bound. Hint: average the "
             "weights, then take the log"),
        ], otherwise=f"wrong values for k={k}. Hint: log (1/k) sum_i exp(log_w_i), per example", tol=1e-3)


# The toy model of notebook 02: z ~ N(0, 1), x | z ~ N(W z + B, S^2), observed x = X0.
W, B, S, X0 = 1.0, 0.0, 0.2, 2.0


def _toy_gap(m, log_std):
    """log p(x0) - ELBO(q) = KL(N(m, e^(2 log_std)) || p(z|x0)) on the toy model (Gaussian KL, closed form)."""
    post_var = S ** 2 / (W ** 2 + S ** 2)
    post_mean = W * (X0 - B) / (W ** 2 + S ** 2)
    return (0.5 * math.log(post_var) - log_std
            + (math.exp(2 * log_std) + (m - post_mean) ** 2) / (2 * post_var) - 0.5)


@exercise_check()
def check_fixed_std_q(best_mean, smallest_gap) -> bool:
    """Your best mean ``m`` for q = N(m, 1) on the toy model, and the smallest gap log p(x) - ELBO it reaches
    (two numbers, from a grid search with ``toy_elbo(m, 0)``)."""
    try:
        m, gap = float(best_mean), float(smallest_gap)
    except (TypeError, ValueError) as err:
        return f"two numbers expected (a mean and a gap): {err}"
    m_star = W * (X0 - B) / (W ** 2 + S ** 2)       # the ELBO is quadratic in m, maximal at the posterior mean
    gap_star = _toy_gap(m_star, 0.0)
    if abs(m - m_star) < 0.01 and abs(gap - gap_star) < 0.01:
        return correct(f"best mean {m_star:.3f}, smallest gap {gap_star:.2f} nats")
    return diagnose(None, [
        (abs(gap + gap_star) < 0.05 or gap < 0, "your gap is negative. Hint: the gap is log "
         "p(x) - ELBO, which is >= 0"),
        (abs(gap - _toy_gap(m, 1.0)) < 0.05, "that gap is for a standard deviation of e, not 1. Hint: toy_elbo takes "
         "the log-std, and a std of 1 is a log-std of 0"),
        (abs(gap - _toy_gap(m, 0.0)) > 0.05, f"your gap is not log p(x) - ELBO at your mean m = {m:.3f}. Hint: "
         "evaluate log_px - toy_elbo(m, 0) at the mean you found"),
        (_toy_gap(m, 0.0) > gap_star + 1.0, f"m = {m:.3f} is far from the best mean: its gap is {gap:.1f} nats. Hint: "
         "take the mean with the smallest gap (the largest ELBO), over a grid that covers the posterior"),
    ], otherwise=f"close, but m = {m:.3f} is not the minimum yet. Hint: a finer grid of means (spacing 0.01 or less)")


@exercise_check("correct for k = 1, 10 and 100")
def check_toy_iwae_prior(fn) -> bool:
    """``fn(z)``: the importance-weighted bound L_k on the toy model with the prior as proposal. ``z`` (R, k)
    holds R independent sets of k draws from p(z) = N(0, 1) (float64); return one L_k per set, shape (R,):
    log (1/k) sum_i w_i with w_i = p(x0, z_i) / q(z_i) = p(x0 | z_i), in log space. (The toy model of section 2:
    w = 1, b = 0, s = 0.2, x0 = 2.)"""
    for g, (reps, k) in _seeded(10, ((6, 10), (5, 1), (4, 100))):
        z = torch.randn(reps, k, generator=g, dtype=torch.float64)
        out = _as_tensor(answer(fn, z)).detach().double()
        log_w = -0.5 * ((X0 - W * z - B) / S) ** 2 - math.log(S) - 0.5 * math.log(2 * math.pi)   # log p(x0 | z)
        expected = torch.logsumexp(log_w, 1) - math.log(k)
        log_prior = -0.5 * z ** 2 - 0.5 * math.log(2 * math.pi)
        log_w_var = -0.5 * ((X0 - W * z - B) / S ** 2) ** 2 - math.log(S ** 2) - 0.5 * math.log(2 * math.pi)
        expect(out, expected, [
            (out.dim() == 0 or out.numel() == 1 and reps > 1, "a single number. Hint: one bound per row of z, shape "
             "(R,); average the rows afterwards"),
            (out.shape == (k,) and k != reps, f"shape ({k},): you reduced over the R repetitions (dim 0). Hint: the k "
             "draws of one estimate lie along dim 1"),
            wrong_shape(out, expected, "one bound per row of z"),
            (torch.logsumexp(log_w, 1), "that is the log of the sum, not of the mean. Hint: subtract log k"),
            (log_w.mean(1), "that is the mean of the log weights, an ELBO estimate, not L_k. Hint: average the "
             "weights, then take the log"),
            (torch.logsumexp(log_w + log_prior, 1) - math.log(k), "you added log p(z) but did not subtract log q(z). "
             "Hint: with q = p(z) the two cancel, and the weight is p(x0 | z)"),
            (torch.logsumexp(log_w_var, 1) - math.log(k), "you used the variance s^2 as the scale. Hint: Normal(loc, "
             "scale) takes the standard deviation s"),
        ], otherwise=f"wrong values for k={k}. Hint: for each row, log (1/k) sum_i p(x0 "
                     "| z_i), computed in log space", tol=1e-6)


def _f64(value):
    return torch.tensor(value, dtype=torch.float64)


def _gaussian_log_joint(z):
    """A log-joint that is a Gaussian bump in z (times e^-3): the ELBO's integrand is smooth and unimodal."""
    return _log_normal(z, _f64(1.0), _f64(-0.5)) - 3.0


def _bimodal_log_joint(z):
    """log p(x0 = 1, z) for z ~ N(0, 1), x | z ~ N(z^2, 0.3^2): two bumps, at z = -1 and z = 1."""
    return _log_normal(_f64(1.0), z ** 2, _f64(math.log(0.3))) + _log_normal(z, _f64(0.0), _f64(0.0))


def _elbo_cases():
    """Three (log_joint, m, log_std, eps) cases, float64, each with its own fixed noise."""
    cases = ((_gaussian_log_joint, 0.3, -0.2), (_bimodal_log_joint, 0.9, -1.5), (_bimodal_log_joint, -0.2, 0.4))
    return [(log_joint, _f64(m), _f64(log_std), torch.randn(500, generator=g, dtype=torch.float64))
            for g, (log_joint, m, log_std) in _seeded(14, cases)]


@exercise_check("correct on 3 cases (a Gaussian and a bimodal log-joint)")
def check_elbo_mc(fn) -> bool:
    """``fn(log_joint, m, log_std, eps)``: the Monte-Carlo ELBO of q = N(m, exp(log_std)^2) for a model with a
    1-D latent, whose log p(x0, z) is the callable ``log_joint``: with z_i = m + exp(log_std) eps_i for the given
    standard-normal noise ``eps`` (n,), the average over the samples of log p(x0, z_i) - log q(z_i). One number."""
    for log_joint, m, log_std, eps in _elbo_cases():
        out = _as_tensor(answer(fn, log_joint, m, log_std, eps)).detach().double()
        if out.shape == eps.shape:
            return f"{len(eps)} values, one per sample. Hint: the ELBO is their average"
        if out.numel() != 1:
            return f"shape {tuple(out.shape)}; expected one number"
        value = out.item()
        near = lambda a: abs(value - float(a)) < 1e-6 * max(1.0, abs(float(a)))  # noqa: E731
        z = m + torch.exp(log_std) * eps
        log_q = _log_normal(z, m, log_std)
        expected = (log_joint(z) - log_q).mean()
        if near(expected):
            continue

        def samples_with_std(wrong_std):   # z drawn with the wrong scale, scored with log_std or with log |scale|
            z_wrong = m + wrong_std * eps
            scored = (_log_normal(z_wrong, m, log_std), _log_normal(z_wrong, m, torch.log(wrong_std.abs())))
            return any(near((log_joint(z_wrong) - lq).mean()) for lq in scored)

        return diagnose(near, [
            (log_joint(z).mean(), "you averaged log p(x0, z) alone. Hint: the ELBO also subtracts log q(z), so that a "
             "q spread over unlikely z is not rewarded for free"),
            ((log_joint(z) + log_q).mean(), "you added log q(z); the ELBO subtracts it. Hint: "
             "E_q[log p(x0, z) - log q(z)]"),
            ((log_joint(z) - _log_normal(z, torch.zeros_like(m), torch.zeros_like(log_std))).mean(), "you subtracted "
             "the prior's log-density, which leaves E_q[log p(x0 | z)], the reconstruction term. Hint: subtract log "
             "q(z), the density of the distribution you sampled from"),
            (torch.logsumexp(log_joint(z) - log_q, 0) - math.log(len(eps)), "that is the log of the average weight, "
             "the importance-weighted bound L_n (an estimate of log p(x0)), not the ELBO. "
             "Hint: average the log weights instead"),
            (lambda: samples_with_std(log_std), "your samples use log_std itself as the standard deviation. Hint: "
             "z = m + exp(log_std) * eps"),
            (lambda: samples_with_std(torch.exp(2 * log_std)), "your samples use the variance as the standard "
             "deviation. Hint: z = m + exp(log_std) * eps"),
            (abs(value - expected.item()) < 5 * ((log_joint(z) - log_q).std() / math.sqrt(len(eps))).item(),
             "close, but not computed from the noise you were given. Hint: build the samples from eps, z = m + "
             "exp(log_std) * eps, so that the answer is reproducible"),
        ], otherwise="wrong value. Hint: z_i = m + exp(log_std) eps_i, then the average of log_joint(z_i) "
                     "- log N(z_i; m, exp(log_std)^2)")
