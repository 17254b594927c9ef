"""Checks for notebook 07 (exploring the latent space)."""
import math

import torch

from ._feedback import (_as_tensor, _by_class, _close, _labels, _seeded, answer, correct, diagnose, either,
                        exercise_check, expect, one_number, unpack)

__all__ = ['check_slerp', 'check_class_centroids', 'check_shell_probability', 'check_midpoint_norms',
           'check_aggregate_posterior']


@exercise_check("correct on 3 random pairs")
def check_slerp(fn) -> bool:
    """``fn(z0, z1, t)``: spherical interpolation ``(D,), (D,), (T,) -> (T, D)`` (as vaelib.plotting.slerp)."""
    from vaelib.plotting import lerp, slerp
    g = torch.Generator().manual_seed(4)
    t = torch.linspace(0, 1, 7)
    for _ in range(3):
        z0, z1 = torch.randn(16, generator=g), torch.randn(16, generator=g)
        out = _as_tensor(answer(fn, z0, z1, t))
        expected = slerp(z0, z1, t)
        expect(out, expected, [
            (lerp(z0, z1, t), "that is the straight line (lerp). Hint: rotate along the great circle: sin((1-t) "
             "omega)/sin(omega) and sin(t omega)/sin(omega)"),
            (out.shape == expected.shape and not (_close(out[0], z0, 1e-3) and _close(out[-1], z1, 1e-3)), "the path "
             "does not start at z0 and end at z1. Hint: check t=0 and t=1"),
        ], otherwise=f"wrong values (shape {tuple(out.shape)}, expected {tuple(expected.shape)}). Hint: interpolate "
                     "the directions on the sphere and the norms linearly", tol=1e-3)


@exercise_check("correct on 3 random sets of codes (classes of unequal sizes)")
def check_class_centroids(fn) -> bool:
    """``fn(codes, labels)``: the centroid of each digit, ``(N, D), (N,) -> (10, D)``: row k is the mean
    of the codes whose label is k."""
    for g, dims in _seeded(7, (2, 3, 4)):
        # every class present, in unequal numbers, with its own centre, so that sums, orders and means differ
        labels = _labels(g, 40)
        codes = 3 * torch.randn(10, dims, generator=g)[labels] + torch.randn(len(labels), dims, generator=g)
        out = _as_tensor(answer(fn, codes, labels))
        expected = _by_class(codes, labels)
        expect(out, expected, [
            (expected.T, f"shape {tuple(out.shape)}: transposed. Hint: one row per digit, (10, D)"),
            (either(codes.mean(0), codes.mean(0).expand(10, -1)), "that is the mean of all the codes together. Hint: "
             "average separately over the codes of each digit, selected with labels == k"),
            (_by_class(codes, labels, torch.sum), "you sum the codes of each digit. Hint: divide by how many codes "
             "that digit has (the classes have different sizes): a mean"),
            (expected.norm(dim=1), "those are the centroids' norms. Hint: return the centroids themselves, (10, D)"),
            (out.shape == expected.shape and _close(out[out[:, 0].argsort()], expected[expected[:, 0].argsort()]),
             "the right centroids in the wrong order. Hint: row k must belong to the digit k, for k = 0, 1, ..., 9"),
        ], otherwise=f"wrong values (shape {tuple(out.shape)}, expected {tuple(expected.shape)}). Hint: row k = mean "
                     "over n of codes[n] for the n with labels[n] == k")


@exercise_check("correct for D = 1, 2, 7, 20, 100")
def check_shell_probability(fn) -> bool:
    """``fn(D)``: the probability that z ~ N(0, I_D) has a norm below the lerp midpoint norm sqrt(D/2),
    a number in [0, 1] (exact, from the chi-square distribution of ``|z|^2``)."""
    dims = (1, 2, 7, 20, 100)

    def cdf(df, value):
        return torch.distributions.Chi2(torch.tensor(float(df))).cdf(torch.tensor(float(value))).item()

    values = []
    for d in dims:
        out = answer(fn, d)
        values.append(one_number(out, message=f"fn({d}) returned {type(out).__name__}; expected one number. Hint: "
                                              "return a float (or a tensor with one element)"))
    expected = [cdf(d, d / 2) for d in dims]
    near = lambda vs, cs, tol=1e-4: all(abs(v - c) <= tol + tol * abs(c) for v, c in zip(vs, cs))  # noqa: E731
    normal = [torch.distributions.Normal(float(d), (2.0 * d) ** 0.5).cdf(torch.tensor(d / 2)).item() for d in dims]
    expect(values, expected, [
        (any(not 0 <= v <= 1 for v in values), "a probability lies between 0 and 1. Hint: P(|z| < r) = P(|z|^2 < r^2), "
         "a CDF of the chi-square distribution"),
        ([1 - e for e in expected], "that is the probability of a norm *above* sqrt(D/2). Hint: a CDF gives P(X < x)"),
        ([cdf(d, (d / 2) ** 0.5) for d in dims], "you compare with sqrt(D/2), but the chi-square distribution is that "
         "of the *squared* norm |z|^2. Hint: |z| < r exactly when |z|^2 < r^2"),
        ([cdf(d, d) for d in dims], "that is the probability of a norm below sqrt(D), the shell's radius. Hint: the "
         "lerp midpoint has norm sqrt(D/2)"),
        (near(values, normal, 1e-3), "that is the normal approximation of |z|^2 (mean D, variance 2D): poor for small "
         "D. Hint: use the exact chi-square CDF, torch.distributions.Chi2"),
        (near(values, expected, 0.03), "close, but not exact: a Monte-Carlo estimate? Hint: the chi-square CDF "
         "(torch.distributions.Chi2(D)) gives the exact value"),
    ], otherwise="wrong values. Hint: |z|^2 follows a chi-square distribution with D degrees of freedom, and |z| < "
                 "sqrt(D/2) exactly when |z|^2 < D/2", near=near)


@exercise_check("correct on 3 random pairs of endpoints with different norms")
def check_midpoint_norms(fn) -> bool:
    """``fn(z0, z1)``: the norms of the midpoints (t = 1/2) of the linear and of the spherical path from
    z0 to z1, ``(D,), (D,) -> (lerp_norm, slerp_norm)``: two numbers, lerp first."""
    for g, scale in _seeded(8, (1.0, 1.6, 0.5)):
        # endpoints of *different* norms: there the equal-norm shortcut r cos(omega/2) is wrong
        z0, z1 = torch.randn(20, generator=g), scale * 1.5 * torch.randn(20, generator=g)
        lin, sph = unpack(answer(fn, z0, z1), 2, "expected two numbers, (lerp_norm, slerp_norm). Hint: return the "
                                                 "norms of the two midpoints, not the midpoints themselves")
        r0, r1 = z0.norm().item(), z1.norm().item()
        want_lin, want_sph = ((z0 + z1) / 2).norm().item(), (r0 + r1) / 2
        near = lambda a, b: abs(a - b) < 1e-4 * max(1.0, abs(b))  # noqa: E731
        cos_half = math.cos(math.acos(max(-1.0, min(1.0, (z0 @ z1).item() / (r0 * r1)))) / 2)
        lerp_wrong = not near(lin, want_lin)
        expect((lin, sph), (want_lin, want_sph), [
            ((want_sph, want_lin), "the two are swapped. Hint: lerp first; its midpoint is the shorter one"),
            ((want_lin, want_lin), "both numbers are the straight line's midpoint. Hint: use slerp for the second one"),
            ((want_sph, want_sph), "both numbers are the great circle's midpoint. Hint: use lerp (the straight "
             "line) for the first one"),
            (lerp_wrong and near(lin, (r0 + r1) / 2 * cos_half), "you used r cos(omega/2): it holds only when both "
             "norms are equal, and here they differ. Hint: take the norm of the midpoint itself"),
            (lerp_wrong and near(lin, 2 * want_lin), "the lerp norm is twice too large: that is |z0 + z1|. Hint: "
             "the midpoint is (z0 + z1) / 2"),
            (lerp_wrong, "the lerp midpoint's norm is wrong. Hint: the point at t = 1/2 of (1 - t) z0 + t z1, then "
             "its norm"),
            (near(sph, 1.0), "the slerp number is 1: the norm of the unit direction u(1/2). Hint: slerp also "
             "interpolates the norm, linearly from |z0| to |z1|"),
        ], otherwise="the slerp midpoint's norm is wrong. Hint: evaluate slerp(z0, z1, t) at t = torch.tensor([0.5]) "
                     "and take its norm", near=lambda a, b: near(a[0], b[0]) and near(a[1], b[1]))


def _total_variance(model, x):
    mu, logvar = (t.float().cpu() for t in model.encoder(x.to(model.device)))
    return mu.var(0, unbiased=False) + logvar.exp().mean(0)


@exercise_check()
@torch.no_grad()
def check_aggregate_posterior(total, model, x, pretrained=None) -> bool:
    """``total``: the total variance of the aggregate posterior q(z) of the freshly trained 2-D ``model``,
    per latent dimension, ``(2,)``, computed on the images ``x``: Var over images of the posterior means
    plus the mean of the posterior variances. ``pretrained`` (optional): the pretrained model, to catch
    numbers computed with it instead."""
    if getattr(model, "latent_dim", None) != 2:
        return (f"this model has {getattr(model, 'latent_dim', '?')} latent dimensions. Hint: build "
                "the fresh model with latent_dim=2")
    if pretrained is not None and model is pretrained:
        return "that is the pretrained model. Hint: build a fresh one and train it with vaelib.fit"
    try:
        total = _as_tensor(total).detach().float().cpu()
    except (TypeError, ValueError, RuntimeError):
        return f"expected numbers, got {type(total).__name__}"
    mu, logvar = (t.float().cpu() for t in model.encoder(x.to(model.device)))
    var_of_means, mean_of_vars = mu.var(0, unbiased=False), logvar.exp().mean(0)
    if bool((mean_of_vars > 0.5).all()) and bool((var_of_means < 0.1).all()):
        return ("each posterior is about as wide as the prior and the means hardly move: the model looks untrained. "
                "Hint: train it with vaelib.fit before encoding")
    if total.shape != (2,):
        return f"shape {tuple(total.shape)}: expected one number per latent dimension, (2,)"
    variances = (var_of_means, mu.var(0))                 # of the means, dividing by n or by n - 1
    stds = (mu.std(0, unbiased=False), mu.std(0))
    values = ", ".join(f"{v:.2f}" for v in total.tolist())
    return diagnose(lambda a: torch.allclose(total, a, rtol=2e-3, atol=1e-4), [
        (either(var_of_means + mean_of_vars, mu.var(0) + mean_of_vars),   # n or n - 1: either is fine
         correct(f"right for your trained model: total variance {values} (the prior's is 1)")),
        (lambda: pretrained is not None and torch.allclose(total, _total_variance(pretrained, x), rtol=2e-3,
                                                           atol=1e-4),
         "these are the pretrained model's numbers. Hint: encode x with your fresh model"),
        (either(*variances), "only the variance of the means. Hint: the law of total variance adds the mean "
         "of the posterior variances"),
        (mean_of_vars, "only the mean posterior variance. Hint: the law of total variance adds the variance of the "
         "posterior means across images"),
        (either(*(s + mean_of_vars for s in stds)), "you added the standard deviation of the means. Hint: variances "
         "add, standard deviations do not"),
        (either(*(v + lv for v in variances for lv in (logvar.mean(0), logvar.mean(0).exp()))),
         "the posterior-variance term is off. Hint: average the variances exp(logvar) over images, not the "
         "log-variances"),
    ], otherwise="not the total variance of this model's codes of x. Hint: per dimension, Var_n[mu_n] + mean_n "
                 "sigma_n^2, from model.encoder(x)")
