"""Checks for notebook 05 (training a VAE)."""
import math

import torch
import torch.nn.functional as F

from ._feedback import (_as_tensor, _binary_images, _kl_per_dim, _seeded, answer, diagnose, either, exercise_check,
                        expect, fail, one_value)

__all__ = ['check_vae_loss', 'check_gaussian_vae_loss', 'check_optimal_sigma', 'check_diversity',
           'check_effective_betas']


def _the_loss(out):
    """The loss as a 0-d tensor; the check fails when it holds one number per image."""
    if out.numel() > 1:
        fail(f"shape {tuple(out.shape)}: the loss is one number. Hint: average the per-image losses over the batch")
    return out.reshape(())


@exercise_check("correct on 3 random batches")
def check_vae_loss(fn) -> bool:
    """``fn(logits, x, mu, logvar)``: the VAE loss to minimize, minus the ELBO averaged over the batch
    (Bernoulli reconstruction summed over pixels, Gaussian KL summed over latent dimensions)."""
    for g, _ in _seeded(5):
        logits = torch.randn(6, 1, 28, 28, generator=g) * 2
        x = _binary_images(g, 6)
        mu, logvar = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
        out = _the_loss(_as_tensor(answer(fn, logits, x, mu, logvar)))
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum((1, 2, 3))
        kl = _kl_per_dim(mu, logvar).sum(-1)
        expected = (rec + kl).mean()
        bce_mean = F.binary_cross_entropy_with_logits(logits, x)
        expect(out, expected, [
            (-expected, "that is the ELBO itself. Hint: the loss to minimize is minus the ELBO"),
            (rec.mean(), "the KL term is missing. Hint: loss = reconstruction + KL"),
            ((rec - kl).mean(), "the KL has the wrong sign. Hint: the KL is a penalty, add it"),
            (either(bce_mean + kl.mean(), bce_mean + kl.sum()), "the reconstruction term is averaged over pixels: that "
             "weighs the KL 784 times too much. Hint: sum over pixels (reduction='sum', then / batch)"),
            (rec.sum() + kl.sum(), "you sum over the batch. Hint: average over the batch instead"),
        ], otherwise="wrong value. Hint: mean over the batch of [BCE summed over pixels + KL "
                     "summed over latent dimensions]", atol=1e-3)


def _grey_batch(g, batch=4, dims=5):
    """Grey-level images x in [0, 1], decoder means in (0, 1), and encoder outputs, all seeded."""
    x = torch.rand(batch, 1, 28, 28, generator=g)
    mean = torch.sigmoid(2 * torch.randn(batch, 1, 28, 28, generator=g))
    return x, mean, torch.randn(batch, dims, generator=g), torch.randn(batch, dims, generator=g)


@exercise_check("correct for 3 values of sigma and beta")
def check_gaussian_vae_loss(fn) -> bool:
    """``fn(x, mean, mu, logvar, sigma, beta)``: the loss of a VAE with a Gaussian likelihood N(x; mean, sigma^2)
    per pixel and weight ``beta`` on the KL: mean over the batch of [-log p(x|z) summed over the 784 pixels, with
    its normalizing constant, + beta * KL summed over latent dimensions]. ``x``, ``mean``: ``(B, 1, 28, 28)``;
    ``mu``, ``logvar``: ``(B, D)``; ``sigma``, ``beta``: floats. One number."""
    for g, (sigma, beta) in _seeded(6, ((0.1, 1.0), (math.sqrt(0.5), 0.02), (0.3, 4.0))):
        x, mean, mu, logvar = _grey_batch(g)
        out = _the_loss(_as_tensor(answer(fn, x, mean, mu, logvar, sigma, beta)).detach())
        sq = (x - mean).pow(2)
        const = 0.5 * math.log(2 * math.pi * sigma ** 2)                     # per pixel
        rec = (sq / (2 * sigma ** 2) + const).sum((1, 2, 3))                  # -log p(x|z) per image
        kl = _kl_per_dim(mu, logvar).sum(-1)
        expected = (rec + beta * kl).mean()
        rec_var = (sq / (2 * sigma) + 0.5 * math.log(2 * math.pi * sigma)).sum((1, 2, 3))
        expect(out, expected, [
            (-expected, "the sign is flipped: that is log p(x|z) - beta KL, the objective to maximize. Hint: "
             "the loss is its negative"),
            ((sq.sum((1, 2, 3)) / (2 * sigma ** 2) + beta * kl).mean(), "the normalizing constant is missing. Hint: "
             "-log N(x; m, sigma^2) = (x - m)^2 / (2 sigma^2) + 1/2 log(2 pi sigma^2) per pixel: the constant moves no "
             "network weight, but it depends on sigma"),
            ((rec_var + beta * kl).mean(), "you used sigma as the variance. Hint: the variance is sigma**2"),
            ((rec + 784 * const + beta * kl).mean(), "the constant is twice too large. Hint: it is 1/2 log(2 pi "
             "sigma^2) per pixel, 392 log(2 pi sigma^2) per image"),
            ((rec / 784 + beta * kl).mean(), "the reconstruction term is averaged over pixels, a beta of 784 in "
             "disguise (section 9). Hint: sum over the pixels"),
            ((rec + kl).mean(), "beta is ignored. Hint: multiply the KL by beta"),
            ((beta * rec + kl).mean(), "beta multiplies the reconstruction term. Hint: beta weighs the KL"),
            ((rec - beta * kl).mean(), "the KL has the wrong sign. Hint: the KL is a penalty, add it"),
            ((rec + beta * kl).sum(), "you sum over the batch. Hint: average over the batch instead"),
        ], otherwise="wrong value. Hint: mean over the batch of [sum over pixels of (x - m)^2 / (2 sigma^2) + 1/2 "
                     "log(2 pi sigma^2), + beta * KL summed over latent dimensions]", atol=1e-3)


@exercise_check("correct on 2 random batches")
def check_optimal_sigma(fn) -> bool:
    """``fn(x, mean)``: the closed-form sigma* = sqrt(mean over all B * 784 pixels of (x - mean)^2), one sigma
    shared by the batch. ``x``, ``mean``: ``(B, 1, 28, 28)``. One number (a float or a 0-d tensor)."""
    for g, batch in _seeded(7, (3, 5)):
        x, mean, _, _ = _grey_batch(g, batch)
        out = _as_tensor(answer(fn, x, mean)).detach()
        out = one_value(out, batch, "one sigma per image", "one sigma shared by the batch: average over the images too",
                        "sigma*")
        err = x - mean
        expected = err.pow(2).mean().sqrt()
        expect(out, expected, [
            (expected ** 2, "that is sigma*^2, the mean squared error. Hint: take the square root"),
            (either(err.pow(2).sum().sqrt(), err.pow(2).sum()), "you sum the squared errors. Hint: average them "
             "over the 784 B pixel values"),
            (either((err.pow(2).sum() / batch).sqrt(), (err.pow(2).sum() / 784).sqrt()), "wrong normalization. Hint: "
             "divide the summed squared error by 784 B, all the pixel values of the batch"),
            (err.abs().mean(), "that is the mean absolute error. Hint: the root of the mean squared error"),
            (either(err.std(), err.std(unbiased=False)), "std() subtracts the average error first. Hint: sigma* uses "
             "the errors themselves: the root of the mean of (x - mean)^2"),
        ], otherwise="wrong value. Hint: sigma* = sqrt(1 / (784 B) * sum over b, j of (x - m)^2)", atol=1e-6)


@exercise_check("correct on 2 random batches")
def check_diversity(fn) -> bool:
    """``fn(images)``: the diversity of a batch of images ``(n, 1, 28, 28)``: the mean over the n images of
    their squared Euclidean distance (summed over pixels) to the average image. One number."""
    for g, n in _seeded(8, (16, 5)):
        images = torch.rand(n, 1, 28, 28, generator=g) ** 2
        out = _as_tensor(answer(fn, images)).detach()
        out = one_value(out, n, "one value per image", "average over the images: the diversity is one number",
                        "the diversity")
        per_image = (images - images.mean(0)).pow(2).sum((1, 2, 3))
        expected = per_image.mean()
        expect(out, expected, [
            (expected / 784, "784 times too small: you average over pixels. Hint: a squared distance sums the squared "
             "differences over the pixels"),
            (images.pow(2).sum((1, 2, 3)).mean(), "that is the distance to a black image. Hint: subtract the average "
             "image, images.mean(0), first"),
            (per_image.sum() / (n - 1), "you divide by n - 1 (as torch.var does). Hint: average over the n images"),
            (per_image.sqrt().mean(), "a mean of distances. Hint: average the squared distances"),
            ((images - images.mean((1, 2, 3), keepdim=True)).pow(2).sum((1, 2, 3)).mean(), "you subtract each image's "
             "own mean brightness. Hint: the average image is the mean over the images (dim 0), itself a 28x28 image"),
            (per_image.sum(), "you sum over the images. Hint: average over them"),
        ], otherwise="wrong value. Hint: mean over images of the sum over "
                     "pixels of (image - average image)^2", atol=1e-6)


# The five losses of notebook 05's exercise 4 (D = 20 latent dimensions, 784 pixels): the beta each one trains
# with, and the answers that the usual slips give, with what to say about them.
_BETA_ANSWERS = [
    (1.0, [(lambda v: v > 1.5 or v < 0.67,
            "(a): a sum over the batch multiplies both terms by the batch size B; their ratio, and so beta, does not "
            "change (only the size of the gradient steps does)")]),
    (784.0, [(lambda v: abs(v - 1 / 784) < 1e-4,
              "(b): inverted. Averaging over the pixels shrinks the reconstruction term next to the KL: does that make "
              "the KL's relative weight smaller or larger?"),
             (lambda v: abs(v - 1) < 1e-6, "(b): F.binary_cross_entropy_with_logits averages over every element by "
              "default, the batch *and* the 784 pixels")]),
    (1 / 20, [(lambda v: abs(v - 20) < 1e-6,
               "(c): inverted. kl.mean() shrinks the KL term next to the reconstruction term: does "
               "its relative weight go up or down?"),
              (lambda v: abs(v - 1) < 1e-6, "(c): kl has one column per latent dimension; .mean() averages over them "
               "as well as over the batch")]),
    (784 / 20, [(lambda v: abs(v - 784 * 20) < 1e-3,
                 "(d): you multiplied the two factors. One mean divides the reconstruction term, the other divides the "
                 "KL: what is left of the KL's weight relative to the reconstruction's?"),
                (lambda v: abs(v - 20 / 784) < 1e-6, "(d): inverted: which of the two terms ends "
                 "up with the larger weight?"),
                (lambda v: abs(v - 784) < 1e-3 or abs(v - 1 / 20) < 1e-6, "(d): both terms are averaged, the "
                 "reconstruction over 784 pixels and the KL over 20 dimensions: combine the two factors")]),
    (50.0, [(lambda v: abs(v - 0.02) < 1e-6,
             "(e): inverted. 2 sigma^2 is the beta of a Gaussian with sigma written as summed MSE; here it goes the "
             "other way: the loss is summed MSE, and you read it as a Gaussian with sigma = 0.1. Which factor turns "
             "the summed MSE into -log N(x; m, 0.1^2) (up to a constant)?"),
            (lambda v: abs(v - 1) < 1e-6, "(e): summed MSE is the Gaussian with sigma^2 = 1/2, not sigma = 0.1. Write "
             "-log N(x; m, 0.1^2) per pixel and compare")]),
]


@exercise_check("all five right: every reduction is a hidden weight between the two terms")
def check_effective_betas(betas) -> bool:
    """``betas``: the beta that each of the five losses (a)-(e) of notebook 05's exercise 4 trains with, in order
    (a list of five numbers, or a dict with keys "a" to "e"). beta is the weight of the KL once the loss is
    written as a positive constant times the batch mean of [-log p(x|z) + beta KL], plus a constant."""
    if isinstance(betas, dict):
        betas = [betas.get(key) for key in "abcde"]
    try:
        values = [float(v) for v in betas]
    except (TypeError, ValueError):
        return f"you gave {betas!r}. Hint: five numbers, one beta per loss, (a) to (e)"
    if len(values) != 5:
        return f"{len(values)} numbers; expected five, one per loss (a) to (e)"
    for label, value, (right, slips) in zip("abcde", values, _BETA_ANSWERS):
        if abs(value - right) <= 1e-3 * right:
            continue
        return diagnose(None, [(matches(value), message) for matches, message in slips],
                        otherwise=f"({label}): {value:g} is not the beta of that loss. Hint: write the loss as c * "
                                  "mean over the batch of [sum over pixels of the per-pixel term + beta * sum "
                                  "over latent dimensions of the per-dimension KL]: which factor does each "
                                  "reduction put in front of each term?")
