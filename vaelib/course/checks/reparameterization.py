"""Checks for notebook 04 (the reparameterization trick)."""
import torch

from ._feedback import (_as_tensor, _cases, _close, _seeded, answer, exercise_check, expect, fail, gradients,
                        near_number, wrong_shape)

__all__ = ['check_reparameterize', 'check_reinforce_baseline', 'check_sigma_gradients', 'check_exponential_rsample',
           'check_full_covariance_rsample', 'check_gumbel_softmax']


@exercise_check("correct, and gradients reach mu and logvar")
def check_reparameterize(fn) -> bool:
    """``fn(mu, logvar, eps)``, each ``(B, D)``: the reparameterized sample z = mu + exp(logvar / 2) * eps, (B, D)."""
    for mu, logvar in _cases(1):
        eps = torch.randn_like(mu)
        mu_, logvar_ = mu.clone().requires_grad_(), logvar.clone().requires_grad_()
        out = _as_tensor(answer(fn, mu_, logvar_, eps, copy=False))
        expect(out.detach(), mu + torch.exp(0.5 * logvar) * eps, [
            (mu + torch.exp(logvar) * eps, "you scale eps by the variance. Hint: the standard "
             "deviation is exp(logvar / 2)"),
            (mu + logvar * eps, "you scale eps by logvar itself. Hint: sigma = exp(logvar / 2)"),
            (torch.exp(0.5 * logvar) * eps, "the mean is missing. Hint: shift the scaled noise by mu"),
        ], otherwise="wrong values. Hint: z = mu + sigma * eps with sigma = exp(logvar / "
                     "2), using the eps you are given")
        if out.grad_fn is None or not out.requires_grad:
            return ("the values are right but no gradient flows to mu and logvar. Hint: build z from mu and logvar "
                    "with torch operations, no .detach()/.item()")


def _score_cases():
    """Three small problems (f, mu, sigma, z ~ N(mu, sigma^2)); sigma != 1 in two, so sigma and sigma^2 differ."""
    g = torch.Generator().manual_seed(11)
    problems = [(lambda z: z ** 2, 2.0, 1.0), (lambda z: torch.sin(3 * z) + z, -0.5, 1.5), (lambda z: z ** 3, 1.0, 0.5)]
    return [(f, mu, sigma, mu + sigma * torch.randn(8, generator=g)) for f, mu, sigma in problems]


@exercise_check("correct on 3 test problems, each with its own baseline")
def check_reinforce_baseline(fn) -> bool:
    """``fn(f, z, mu, sigma, b)``: the one-sample score-function estimates of d/dmu E[f(z)], z ~ N(mu, sigma^2),
    with baseline ``b``: ``(f(z) - b) * (z - mu) / sigma**2``, one per sample, ``(n,) -> (n,)``."""
    for (f, mu, sigma, z), b in zip(_score_cases(), (5.0, 0.3, -2.0)):
        out = _as_tensor(answer(fn, f, z, mu, sigma, b)).detach()
        score = (z - mu) / sigma ** 2
        expected = (f(z) - b) * score
        expect(out, expected, [
            (out.dim() == 0, "a single number. Hint: return one term per sample, shape (n,): the notebook averages "
             "them and measures their variance"),
            (f(z) * score, "the baseline is ignored. Hint: subtract b from f(z) before multiplying by the score"),
            ((f(z) + b) * score, "you add the baseline. Hint: subtract it: (f(z) - b)"),
            (f(z) * score - b, "you subtract b from the product, which moves the estimate's mean by b (biased). Hint: "
             "subtract b from f(z), then multiply by the score"),
            ((f(z) - b) * (z - mu) / sigma, "you divide by sigma instead of sigma^2. Hint: d/dmu log N(z; mu, "
             "sigma^2) = (z - mu) / sigma^2"),
            (-expected, "the sign is flipped. Hint: the score is (z - mu) / sigma^2, positive "
             "when z is above the mean"),
        ], otherwise=f"wrong values (shape {tuple(out.shape)}, expected {tuple(expected.shape)}). Hint: (f(z) - b) * "
                     "(z - mu) / sigma^2, one term per sample")


def _estimate(fn, which, f, mu, sigma, data):
    """The learner's estimator ``fn(f, mu, sigma, data)`` as a float; the check fails, naming ``which`` estimator,
    when it raises or returns more than one number."""
    def explain(error):
        if "does not require grad" in error or "does not have a grad_fn" in error:
            error = ("no gradient reaches sigma. Hint: sigma = torch.tensor(sigma, "
                     "requires_grad=True), then build the graph from it")
        return f"{which}: {error}"
    out = _as_tensor(answer(fn, f, mu, sigma, data, on_error=explain)).detach()
    if out.numel() != 1:
        fail(f"{which}: shape {tuple(out.shape)}: the estimate is one number. Hint: average over the samples")
    return out.item()


@exercise_check("both estimators are correct on 3 test problems")
def check_sigma_gradients(pathwise_fn, score_fn) -> bool:
    """Both estimators of d/dsigma E[f(z)], z ~ N(mu, sigma^2), each returning one number:

    ``pathwise_fn(f, mu, sigma, eps)``: autograd through z = mu + sigma * eps for the given noise ``eps`` (n,);
    ``score_fn(f, mu, sigma, z)``: autograd through the surrogate mean(f(z) * log N(z; mu, sigma^2)) for the
    given samples ``z`` (n,). ``mu`` and ``sigma`` are floats."""
    near = near_number(1e-4)
    for f, mu, sigma, z in _score_cases():
        eps = (z - mu) / sigma
        s = torch.tensor(sigma, requires_grad=True)
        expected = torch.autograd.grad(f(mu + s * eps).mean(), s)[0].item()     # mean of f'(z) * eps
        value = _estimate(pathwise_fn, "pathwise", f, mu, sigma, eps)
        zz = z.clone().requires_grad_()
        expect(value, expected, [
            (lambda: near(value, torch.autograd.grad(f(zz).mean(), zz)[0].sum().item()),   # mean of f'(z)
             "pathwise: that is the gradient with respect to mu. Hint: differentiate with "
             "respect to sigma (dz/dsigma = eps)"),
            (len(z) * expected, "pathwise: you sum over the samples. Hint: the estimate is their average"),
        ], otherwise="pathwise: wrong value. Hint: z = mu + sigma * eps with the eps you are "
                     "given, then autograd of f(z).mean()", near=near)
        score_sigma = (z - mu) ** 2 / sigma ** 3 - 1 / sigma                    # d/dsigma log N(z; mu, sigma^2)
        expected = (f(z) * score_sigma).mean().item()
        value = _estimate(score_fn, "score function", f, mu, sigma, z)
        expect(value, expected, [
            ((f(z) * (z - mu) / sigma ** 2).mean().item(), "score function: that is the gradient with respect to mu. "
             "Hint: differentiate the surrogate with respect to sigma"),
            (-expected, "score function: the sign is flipped. Hint: the surrogate is + f(z) * log q(z)"),
            (len(z) * expected, "score function: you sum over the samples. Hint: average the surrogate over them"),
            ((f(z) * (z - mu) ** 2 / sigma ** 3).mean().item(), "score function: the -1/sigma from the density's "
             "normalization -log sigma is missing. Hint: use Normal(mu, sigma).log_prob(z), which includes it"),
        ], otherwise="score function: wrong value. Hint: autograd of mean(f(z) * Normal(mu, sigma).log_prob(z)) with "
                     "respect to sigma, on the z you are given", near=near)


@exercise_check("correct, and gradients reach the rate")
def check_exponential_rsample(fn) -> bool:
    """``fn(rate, u)``: the reparameterized exponential sample z = -log(u) / rate, for a rate (a 0-d tensor
    that requires grad) and uniform numbers ``u`` in (0, 1), shape ``(n,)`` -> ``(n,)``."""
    for g, lam in _seeded(12, (2.0, 0.5, 3.0)):
        u = torch.rand(8, generator=g).clamp_min(1e-6)
        rate = torch.tensor(lam, requires_grad=True)
        out = _as_tensor(answer(fn, rate, u))
        expected = -torch.log(u) / lam
        expect(out.detach(), expected, [
            (-torch.log(u) * lam, "you multiply by the rate: the mean would be lambda, not 1/lambda. "
             "Hint: divide by the rate"),
            (-expected, "negative samples: log(u) < 0 for u in (0, 1). Hint: an exponential variable is "
             "positive, z = -log(u) / rate"),
            (-torch.log1p(-u) / lam, "-log(1 - u) / rate is also exponential (1 - u is uniform too), but use z = "
             "-log(u) / rate so that the check can compare values"),
        ], otherwise="wrong values. Hint: z = -log(u) / rate, with the u you are given")
        grad, = gradients(out, rate, "the values are right but no gradient reaches the rate. Hint: build z from rate "
                                     "with torch operations, no .detach()/.item()/torch.tensor(...)")
        wanted = (torch.log(u).sum() / lam ** 2).item()                   # d/drate of sum(-log(u) / rate)
        if grad is None or abs(grad.item() - wanted) > 1e-4 * max(1.0, abs(wanted)):
            return ("the values are right but the gradient with respect to the rate is not. Hint: let the rate "
                    "enter z only through the division")


def _scale_tril(raw):
    """The lower-triangular scale matrix of the exercise: raw entries below the diagonal, exp of the raw diagonal."""
    return torch.tril(raw, -1) + torch.diag_embed(torch.exp(torch.diagonal(raw, dim1=-2, dim2=-1)))


@exercise_check("correct on 3 random batches, and gradients reach mu and raw_scale")
def check_full_covariance_rsample(fn) -> bool:
    """``fn(mu, raw_scale, eps)``: a reparameterized sample of a full-covariance Gaussian, z = mu + L eps, with
    ``mu`` (B, D), ``raw_scale`` (B, D, D) unconstrained, ``eps`` (B, D) standard normal, and L lower triangular:
    the entries of raw_scale below the diagonal, exp of its diagonal, zeros above. Returns z, (B, D), with
    gradients reaching mu and raw_scale."""
    for g, _ in _seeded(16):
        mu, raw, eps = torch.randn(4, 3, generator=g), torch.randn(4, 3, 3, generator=g), torch.randn(4, 3, generator=g)
        weights = torch.randn(4, 3, generator=g)                       # a random linear function of z, for gradients
        mu_, raw_ = mu.clone().requires_grad_(), raw.clone().requires_grad_()
        out = _as_tensor(answer(fn, mu_, raw_, eps))
        L = _scale_tril(raw)
        z_of = lambda scale: mu + (scale @ eps[..., None])[..., 0]  # noqa: E731   one matrix-vector product per example
        expected = z_of(L)
        expect(out.detach(), expected, [
            wrong_shape(out, expected, "one sample per row of mu"),
            (z_of(raw), "you used raw_scale itself as L. Hint: keep only its lower triangle, and take exp of the "
             "diagonal so that it is positive, as a log-variance is"),
            (z_of(L.transpose(-1, -2)), "you multiplied by the transpose of L (eps @ L is L^T eps): the covariance "
             "would be L^T L, not L L^T. Hint: z = mu + L @ eps, one matrix-vector product per example"),
            (z_of(torch.tril(raw)), "the diagonal of L is raw_scale's diagonal, which can be negative. Hint: "
             "exponentiate the diagonal (and only the diagonal)"),
            (z_of(torch.tril(torch.exp(raw))), "you exponentiated the whole lower triangle. Hint: only the diagonal "
             "must be positive; the entries below it stay as they are, of either sign"),
            (mu + torch.exp(torch.diagonal(raw, dim1=-2, dim2=-1)) * eps, "you used only the diagonal: that is the "
             "diagonal Gaussian of section 5, with independent coordinates. Hint: the entries below "
             "the diagonal of L correlate them"),
            ((L @ eps[..., None])[..., 0], "the mean is missing. Hint: shift L eps by mu"),
            (z_of(L @ L.transpose(-1, -2)), "you multiplied eps by the covariance L L^T. Hint: a sample needs a square "
             "root of the covariance, the scale L itself"),
        ], otherwise="wrong values. Hint: build L as defined (raw_scale's entries below the diagonal, exp of its "
                     "diagonal, zeros above), then z = mu + L eps per example")
        grads = gradients(out * weights, (mu_, raw_), "the values are right but no gradient flows. Hint: build z "
                          "from mu and raw_scale with torch operations, no .detach()/.item()/.numpy()")
        ref_mu, ref_raw = mu.clone().requires_grad_(), raw.clone().requires_grad_()
        ref = ref_mu + (_scale_tril(ref_raw) @ eps[..., None])[..., 0]
        ref_grads = torch.autograd.grad((ref * weights).sum(), (ref_mu, ref_raw))
        if any(gr is None or not _close(gr, rg) for gr, rg in zip(grads, ref_grads)):
            return ("right values, wrong gradients. Hint: compute L from raw_scale with differentiable operations "
                    "(torch.tril, torch.diagonal, torch.exp, torch.diag_embed), not by writing into a tensor in place")


@exercise_check("correct for 3 temperatures, and gradients reach the logits")
def check_gumbel_softmax(fn) -> bool:
    """``fn(logits, tau, u)``: the Gumbel-softmax sample softmax((logits - log(-log u)) / tau) over the last
    dimension, for logits and uniform noise u of shape ``(B, K)``."""
    for g, tau in _seeded(21, (0.5, 1.0, 2.0)):
        logits = torch.randn(4, 5, generator=g)
        u = torch.rand(4, 5, generator=g).clamp(1e-4, 1 - 1e-4)
        logits_ = logits.clone().requires_grad_()
        out = _as_tensor(answer(fn, logits_, tau, u))
        gumbel = -torch.log(-torch.log(u))
        expected = torch.softmax((logits + gumbel) / tau, -1)
        expect(out.detach(), expected, [
            wrong_shape(out, expected, "one probability vector per row"),
            (torch.nn.functional.one_hot((logits + gumbel).argmax(-1), 5).float(), "a one-hot vector: that is the "
             "Gumbel-max sample, exact but flat (no gradient). Hint: replace the "
             "argmax by a softmax at temperature tau"),
            (torch.softmax(logits / tau, -1), "the noise is missing: this is the same vector for every draw. Hint: add "
             "the Gumbel noise -log(-log u) to the logits first"),
            (torch.softmax((logits - gumbel) / tau, -1), "the Gumbel noise has the wrong sign. Hint: g = -log(-log "
             "u), added to the logits"),
            (torch.softmax((logits - torch.log(u)) / tau, -1), "you added -log u, an exponential variable. Hint: the "
             "Gumbel noise is -log(-log u)"),
            (torch.softmax(logits / tau + gumbel, -1), "only the logits are divided by tau. Hint: divide the noisy "
             "logits, logits + g, by tau"),
            (torch.softmax((logits + gumbel) * tau, -1), "you multiply by tau. Hint: divide by it: a small tau makes "
             "the sample nearly one-hot"),
            (torch.softmax((logits + gumbel) / tau, 0), "the softmax runs over the batch. Hint: over the last "
             "dimension, the K categories (dim=-1)"),
        ], otherwise="wrong values. Hint: y = softmax((logits + g) / tau) over the last dimension, g = -log(-log u)")
        if not out.requires_grad:
            return ("the values are right but no gradient flows to the logits. Hint: build y from the logits with "
                    "torch operations, no .detach()/.item()/argmax")
