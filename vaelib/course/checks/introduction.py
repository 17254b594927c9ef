"""Checks for notebook 00 (images as data, the Bernoulli likelihood)."""
import math

import torch
import torch.nn.functional as F

from ._feedback import (_as_tensor, _binary_images, _by_class, _close, _labels, _seeded, answer, correct, diagnose,
                        exercise_check, expect, wrong_shape)

__all__ = ['check_bernoulli_log_likelihood', 'check_class_means', 'check_closest_pair',
           'check_expected_log_likelihood_mc', 'check_mixture_log_likelihood']


@exercise_check("correct on 3 random batches")
def check_bernoulli_log_likelihood(fn) -> bool:
    """``fn(logits, x)``: log p(x|z) under a Bernoulli per pixel, summed over pixels: ``(B,1,28,28) -> (B,)``."""
    for g, _ in _seeded(2):
        logits = torch.randn(4, 1, 28, 28, generator=g) * 3
        x = _binary_images(g, 4)
        out = _as_tensor(answer(fn, logits, x))
        per_pixel = -F.binary_cross_entropy_with_logits(logits, x, reduction="none")
        expected = per_pixel.sum((1, 2, 3))
        expect(out, expected, [
            (-expected, "the sign is flipped: that is the binary cross-entropy, minus the log-likelihood. Hint: a "
             "log-probability of 0/1 data is <= 0"),
            (per_pixel.mean((1, 2, 3)), "you average over pixels. Hint: the pixels are independent given z, so their "
             "log-probabilities add up: sum over them"),
            (out.dim() == 0, "a single number for the whole batch. Hint: one log-likelihood per image, summed over "
             "its pixels (dims 1, 2, 3)"),
            wrong_shape(out, expected, "one value per image"),
        ], otherwise="wrong values. Hint: with p = sigmoid(logits), log p(x) = x log p + (1 - x) "
                     "log(1 - p), summed over pixels", tol=1e-3)


@exercise_check("correct on 3 random labelled sets")
def check_class_means(fn) -> bool:
    """``fn(images, labels)``: the mean image of each digit class, ``(N, 1, 28, 28), (N,) -> (10, 1, 28, 28)``;
    row ``c`` is the average of the images whose label is ``c``."""
    for g, _ in _seeded(7):
        labels = _labels(g, 50)       # every class present, in unequal numbers
        images = torch.rand(50, 1, 28, 28, generator=g)
        out = _as_tensor(answer(fn, images, labels))
        expected = _by_class(images, labels)
        same = out.shape == expected.shape
        expect(out, expected, [
            (same and not torch.isfinite(out).all(), "NaN in your result: the mean of an empty selection. Hint: the "
             "labels are 0 to 9, and row c holds the images with label c"),
            (images.mean(0).expand_as(expected), "every row is the mean of all the images. Hint: average only the "
             "images of class c (select them with the labels)"),
            (_by_class(images, labels, torch.sum), "those are sums, not means: classes with more images look brighter. "
             "Hint: divide by the number of images in the class"),
            (lambda: same and all(any(_close(row, r) for r in expected.flatten(1)) for row in out.flatten(1)),
             "the right mean images in the wrong order. Hint: row c must be the mean of the images "
             "with label c, for c = 0, 1, ..., 9"),
            (out.numel() == 10, "one number per class: you also averaged over the pixels. Hint: average over the "
             "images only, so that each class keeps a 28x28 image"),
            wrong_shape(out, expected, "one 1x28x28 image per digit 0-9"),
        ], otherwise="wrong values. Hint: row c = the sum of the images with label c, divided by how many there are")


def _pair_case(seed):
    """Ten random 'class means' with three planted pairs: ``(means, l2, l1, grey)``, where ``l2`` is the
    closest pair in Euclidean distance, ``l1`` in summed absolute difference (a few large differences), and
    ``grey`` the pair with equal average grey levels (same pixels, shuffled): three different answers."""
    g = torch.Generator().manual_seed(seed)
    flat = 0.2 + 0.6 * torch.rand(10, 784, generator=g)
    a0, a1, b0, b1, c0, c1 = torch.randperm(10, generator=g)[:6].tolist()
    few, many = torch.zeros(784), torch.zeros(784)
    few[torch.randperm(784, generator=g)[:4]] = 0.5           # 4 pixels far apart: L2 = 1.0, L1 = 2
    many[torch.randperm(784, generator=g)[:400]] = 0.045      # 400 pixels a little apart: L2 = 0.9, L1 = 18
    flat[a1] = flat[a0] + few
    flat[b1] = flat[b0] + many
    flat[c1] = flat[c0][torch.randperm(784, generator=g)]
    return flat.view(10, 1, 28, 28), {b0, b1}, {a0, a1}, {c0, c1}


@exercise_check("correct on 3 sets of means")
def check_closest_pair(fn) -> bool:
    """``fn(means)``: the two *different* classes whose mean images ``(10, 1, 28, 28)`` are closest in Euclidean
    distance (over all 784 pixels), returned as a pair of class labels ``(a, b)`` in either order."""
    for seed in (0, 1, 2):
        means, l2, l1, grey = _pair_case(seed)
        out = answer(fn, means)
        try:
            pair = [int(v) for v in (out.tolist() if isinstance(out, torch.Tensor) else out)]
        except (TypeError, ValueError):
            pair = []
        if len(pair) != 2:
            return (f"you returned {out!r}. Hint: return the two class labels, a pair (a, b) (an index into the "
                    "flattened 10x10 matrix needs unravelling)")
        if pair[0] == pair[1]:
            return (f"({pair[0]}, {pair[1]}) is a class paired with itself, at distance 0. Hint: leave out the "
                    "diagonal of the distance matrix")
        if set(pair) == l2:
            continue
        flat = means.flatten(1)
        return diagnose(lambda wrong: set(pair) == wrong, [
            (set(divmod(torch.cdist(flat, flat).argmax().item(), 10)), "that is the pair that is farthest apart. "
             "Hint: the smallest distance"),
            (l1, "that pair is closest in summed absolute differences, not in Euclidean distance. Hint: the square "
             "root of the summed squared differences"),
            (grey, "those two have the same average grey level, but different images. Hint: compare the images pixel "
             "by pixel (Euclidean distance over 784 pixels)"),
        ], otherwise="not the closest pair. Hint: compute the 10x10 matrix of Euclidean distances between the "
                     "flattened means and take its smallest off-diagonal entry")


@exercise_check()
def check_expected_log_likelihood_mc(fn) -> bool:
    """``fn(grey, logits, n, generator)``: the Monte-Carlo estimate of E[log p(x_bin)] for one image: draw ``n``
    dynamic binarizations x_bin ~ Bernoulli(grey) of the grey levels ``grey`` (1, 28, 28) with ``generator``,
    score each under independent Bernoulli(sigmoid(logits)) pixels (``logits`` (1, 28, 28)), summed over pixels,
    and return their average: one number."""
    g = torch.Generator().manual_seed(8)
    grey = torch.rand(1, 28, 28, generator=g)
    grey[torch.rand(1, 28, 28, generator=g) < 0.6] = 0.0          # mostly background, as in MNIST
    logits = 2 * torch.randn(1, 28, 28, generator=g)
    n = 2000
    runs = []
    for seed in (0, 0, 1):   # the same seed twice: reproducible; another seed: a different draw
        out = _as_tensor(answer(fn, grey, logits, n, torch.Generator().manual_seed(seed))).detach().double()
        if out.numel() == n:
            return f"{n} values, one per draw. Hint: average them into one estimate"
        if out.numel() != 1:
            return f"shape {tuple(out.shape)}; expected one number, the average over the draws"
        runs.append(out.item())
    value = runs[0]
    l, p, gr = logits.double(), torch.sigmoid(logits.double()), grey.double()
    exact = (gr * l - F.softplus(l)).sum().item()                   # linear in x, so E[.] puts grey in for x
    tol = 5 * math.sqrt((gr * (1 - gr) * l ** 2).sum().item() / n)  # 5 standard errors of the average
    near = lambda a: abs(value - a) < tol  # noqa: E731
    return diagnose(near, [
        (not math.isfinite(value), f"your estimate is {value}. Hint: with logits, use x * logits - softplus(logits), "
         "which never takes the log of 0"),
        (-exact, "the sign is flipped: that is the binary cross-entropy. Hint: a log-probability "
         "of binary data is <= 0"),
        (abs(value - n * exact) < n * tol, "you sum over the draws. Hint: average over them"),
        (runs[0] != runs[1], "two calls with the same seed gave different estimates. Hint: draw with the generator you "
         "are given (torch.bernoulli(..., generator=generator))"),
        (runs[0] == runs[2] and abs(value - exact) < 1e-3 * abs(exact), "nothing is random here: you put the grey "
         "levels into the formula, which is the formula you are checking. Hint: draw n binary images x_bin, each pixel "
         "on with probability its grey level, and average their log p"),
        (runs[0] == runs[2], "your estimate does not change with the seed: rounding or thresholding the grey levels is "
         "not sampling. Hint: each pixel is on with probability equal to its grey level"),
        (all(abs(v - exact) < tol for v in runs), correct(f"within Monte-Carlo error of the expectation ({n} draws, 2 "
                                                          "seeds), and reproducible")),
        ((p * l - F.softplus(l)).sum().item(), "you drew the pixels from the model, sigmoid(logits). Hint: dynamic "
         "binarization draws them from the image's grey levels"),
        ((l * gr - gr * F.softplus(torch.ones(())) - (1 - gr) * math.log(2)).sum().item(), "the arguments of the "
         "log-likelihood are swapped: your images are scored as logits. Hint: the notebook's "
         "bernoulli_log_likelihood takes (x, logits)"),
    ], otherwise="wrong value. Hint: the average over the n draws of sum_j [x_j log pi_j + (1 - x_j) log(1 - "
                 "pi_j)], with pi = sigmoid(logits)")


@exercise_check("correct on 3 mixtures, and stable where the probabilities underflow")
def check_mixture_log_likelihood(fn) -> bool:
    """``fn(x, logits, weights)``: the log-likelihood of binary images ``x`` (B, 1, 28, 28) under a mixture of K
    independent-pixel Bernoulli models: component k has pixel logits ``logits[k]`` ((K, 1, 28, 28)) and weight
    ``weights[k]`` ((K,), summing to 1). One number per image, ``(B,)``: log sum_k w_k p_k(x)."""
    # three mixtures: random components; four copies of one component (the mixture *is* that component); two
    # near-identical components with unequal weights. The last two catch 'keep only the best component'
    g = torch.Generator().manual_seed(12)
    x = _binary_images(g, 4)
    random = 3 * torch.randn(3, 1, 28, 28, generator=g)
    copies = (3 * torch.randn(1, 1, 28, 28, generator=g)).expand(4, 1, 28, 28).clone()
    near = 3 * torch.randn(1, 1, 28, 28, generator=g) + 0.01 * torch.randn(2, 1, 28, 28, generator=g)
    for logits, weights in ((random, torch.tensor([0.2, 0.5, 0.3])), (copies, torch.full((4,), 0.25)),
                            (near, torch.tensor([0.3, 0.7]))):
        out = _as_tensor(answer(fn, x, logits, weights)).detach().float()
        per_pixel = x[:, None] * logits[None] - F.softplus(logits)[None]     # (B, K, 1, 28, 28)
        per_component = per_pixel.sum((2, 3, 4))                             # (B, K), around -1000 nats
        expected = torch.logsumexp(per_component + weights.log(), 1)
        expect(out, expected, [
            (out.shape == per_component.shape, f"shape {tuple(out.shape)}: one value per image and component. Hint: "
             "combine the components into one log-likelihood per image"),
            wrong_shape(out, expected, "one value per image"),
            (lambda: not torch.isfinite(out).all(), "you get -inf or NaN: each component's probability of an image is "
             "about e^-1000, which underflows to 0. Hint: stay in log space and combine "
             "the components with torch.logsumexp"),
            (-expected, "the sign is flipped. Hint: a log-probability of binary images is <= 0"),
            ((per_component * weights).sum(1), "you averaged the components' log-likelihoods, sum_k w_k log p_k(x). By "
             "Jensen that is below log sum_k w_k p_k(x). Hint: a mixture adds probabilities, not log-probabilities"),
            (torch.logsumexp(per_component, 1), "the mixture weights are missing. Hint: add log w_k to each "
             "component's log-likelihood before combining"),
            (torch.logsumexp(per_component + weights, 1), "you added the weights themselves. Hint: in log space a "
             "product w_k p_k(x) becomes log w_k + log p_k(x)"),
            ((per_component + weights.log()).amax(1), "you kept only the most likely component (right when one "
             "component dominates, wrong when several explain the image equally well). Hint: sum over all "
             "components, with torch.logsumexp"),
            (torch.logsumexp(per_pixel.mean((2, 3, 4)) + weights.log(), 1), "you averaged over pixels. Hint: given the "
             "component, the pixels are independent, so their log-probabilities add up"),
        ], otherwise="wrong values. Hint: log p_k(x) = sum_j [x_j l_kj - softplus(l_kj)] for each component, then log "
                     "sum_k exp(log w_k + log p_k(x))",
           # log-likelihoods near -1000 nats need an absolute, not a relative, tolerance
           near=lambda a, b: a.shape == b.shape and torch.allclose(a.double(), b.double(), rtol=0, atol=1e-2))
