"""Checks for notebook 16 (from VAEs to diffusion)."""
import torch

from ._feedback import _as_tensor, answer, either, exercise_check, expect, unpack, wrong_shape

__all__ = ["check_forward_marginal", "check_elbo_weight"]


def _schedule(steps: int, end: float) -> torch.Tensor:
    """beta_0 = 0 (unused), then beta_1 .. beta_T linear from 1e-4 * 1000 / T to ``end``, float64."""
    return torch.cat([torch.zeros(1), torch.linspace(0.1 / steps, end, steps)]).double()


@exercise_check("the mean and standard deviation of q(x_t | x_0) at every t of 3 schedules")
def check_forward_marginal(fn) -> bool:
    """``fn(x0, betas, t)``: the mean and standard deviation of q(x_t | x_0), ``(mean, std)``, for ``x0`` ``(B, D)``,
    ``betas`` ``(T + 1,)`` (``betas[0] = 0`` unused, ``betas[t]`` the noise added at step t) and one step ``t``
    (an int in [1, T]): the mean ``(B, D)`` and the standard deviation (a number or a tensor that broadcasts)."""
    g = torch.Generator().manual_seed(0)
    for steps, end in ((10, 0.3), (200, 0.1), (1000, 0.02)):
        betas = _schedule(steps, end)
        x0 = torch.randn(3, 4, generator=g, dtype=torch.float64)
        a = torch.cumprod(1 - betas, 0)
        for t in (1, steps // 2, steps):
            mean, std = unpack(answer(fn, x0, betas, t), 2, "expected two parts, (mean, std)", convert=_as_tensor)
            mean, std = mean.double(), std.double().expand_as(x0) if std.numel() == 1 else std.double()
            expect(mean, a[t].sqrt() * x0, [
                wrong_shape(mean, x0, "one mean per entry of x0"),
                (a[t] * x0, f"at t = {t}: abar_t x0. Hint: the mean is sqrt(abar_t) x0; each step scales by "
                            "sqrt(1 - beta_t)"),
                (either((1 - betas[t]).sqrt() * x0, (1 - betas[1:t + 1]).sum().sqrt() * x0),
                 f"at t = {t}: only one step's scaling, or a sum. Hint: the scalings multiply: abar_t = prod_s<=t "
                 "(1 - beta_s)"),
                (torch.cumprod(1 - betas, 0)[t - 1].sqrt() * x0, f"at t = {t}: off by one step. Hint: abar_t "
                                                                "includes beta_t itself (betas[1] .. betas[t])"),
            ], otherwise=f"wrong mean at t = {t}. Hint: sqrt(abar_t) x0 with abar_t = prod_s=1..t (1 - beta_s)",
                tol=1e-5)
            right, full = (1 - a[t]).sqrt().expand_as(x0), lambda v: v.expand_as(x0)   # noqa: E731
            expect(std, right, [
                (full(1 - a[t]), f"at t = {t}: that is the variance 1 - abar_t; the standard deviation is its square root"),
                (either(full(betas[1:t + 1].sum().sqrt()), full(betas[t].sqrt())), f"at t = {t}: the betas added up, or one step's."
                 " Hint: the variances do not add as they are, since each step also scales the noise before it"),
                (full(a[t].sqrt()), f"at t = {t}: sqrt(abar_t) is the signal's scale; the noise's is sqrt(1 - abar_t)"),
            ], otherwise=f"wrong standard deviation at t = {t}. Hint: sqrt(1 - abar_t)", tol=1e-5)


@exercise_check("w_t of L_t-1 = w_t ||eps - eps_theta||^2 at every t >= 2 of 3 schedules")
def check_elbo_weight(fn) -> bool:
    """``fn(betas)``: the weights ``w`` ``(T + 1,)`` that make the bound's step t a weighted L_simple,
    ``KL(q(x_t-1 | x_t, x_0) || p(x_t-1 | x_t)) = w_t ||eps - eps_theta(x_t, t)||^2``, with p's variance the
    posterior's, beta_tilde_t = beta_t (1 - abar_t-1) / (1 - abar_t). ``betas`` ``(T + 1,)`` as in
    ``check_forward_marginal``; entries 0 and 1 are not checked."""
    for steps, end in ((10, 0.3), (200, 0.1), (1000, 0.02)):
        betas = _schedule(steps, end)
        a = torch.cumprod(1 - betas, 0)
        tilde = betas[2:] * (1 - a[1:-1]) / (1 - a[2:])
        right = betas[2:] ** 2 / (2 * tilde * (1 - betas[2:]) * (1 - a[2:]))
        w = _as_tensor(answer(fn, betas)).double()
        if w.shape != betas.shape:
            expect(w, betas, [wrong_shape(w, betas, "one weight per entry of betas")], otherwise="")
        expect(w[2:], right, [
            (2 * right, "twice the weight. Hint: a Gaussian KL with equal variances is ||mu_q - mu_p||^2 / "
                        "(2 sigma^2): keep the 1/2"),
            (right * 2 * tilde / betas[2:], "that uses beta_t as p's variance; here p's variance is beta_tilde_t"),
            (right * (1 - betas[2:]), "sqrt(1 - beta_t) is missing from mu's denominator: mu_theta = (x_t - beta_t "
                                      "/ sqrt(1 - abar_t) eps_theta) / sqrt(1 - beta_t)"),
            (right * (1 - a[2:]), "sqrt(1 - abar_t) is missing: mu_theta - mu_q = beta_t / (sqrt(1 - beta_t) "
                                  "sqrt(1 - abar_t)) (eps - eps_theta)"),
            (torch.ones_like(right), "1 everywhere: that is L_simple itself, the weights the bound does not have"),
        ], otherwise=f"wrong weights (for T = {steps}, w_2 should be {right[0].item():.4g}). Hint: write mu_q - "
                     "mu_theta in terms of eps - eps_theta, square it, divide by 2 beta_tilde_t", tol=1e-4)
