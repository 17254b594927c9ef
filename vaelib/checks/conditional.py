"""Checks for notebook 09 (conditional VAEs)."""
from __future__ import annotations

import torch

from ._feedback import _report, _call, _close, _as_tensor, _number

__all__ = ['check_style_grid', 'check_elbo_scores', 'check_nearest_centroid_accuracy']


def check_style_grid(fn) -> bool:
    """``fn(z_rows, digits)``: the batch to decode for a grid with one row per latent code and one column
    per digit, ``(R, D), (C,) -> (z (R*C, D), y (R*C,))``, row by row: image r*C + c pairs z_rows[r]
    with digits[c]."""
    name = "check_style_grid"
    g = torch.Generator().manual_seed(11)
    for rows, cols in ((4, 3), (2, 5), (3, 2)):
        z_rows = torch.randn(rows, 2, generator=g)
        digits = torch.randperm(10, generator=g)[:cols]
        out, error = _call(name, fn, z_rows.clone(), digits.clone())
        if error:
            return _report(name, False, error)
        try:
            z, y = (_as_tensor(t) for t in out)
        except (TypeError, ValueError, RuntimeError):
            return _report(name, False, "expected two tensors, (z, y). Hint: return z, y")
        want_z, want_y = z_rows.repeat_interleave(cols, 0), digits.repeat(rows)
        if y.shape != want_y.shape:
            return _report(name, False, f"{tuple(y.shape)} labels for {rows} x {cols} = {rows * cols} images. "
                                        "Hint: one label per decoded image")
        if z.shape != want_z.shape:
            return _report(name, False, f"z has shape {tuple(z.shape)}, expected {tuple(want_z.shape)}. Hint: one "
                                        "latent code per decoded image, each row's code repeated for every digit")
        if y.dtype != torch.long:
            return _report(name, False, f"the labels are {y.dtype}. Hint: labels are integer class indices, "
                                        "torch.long (the one-hot encoding needs them)")
        z_ok, y_ok = _close(z, want_z), torch.equal(y, want_y)
        if z_ok and y_ok:
            continue
        if _close(z, z_rows.repeat(cols, 1)) and torch.equal(y, digits.repeat_interleave(rows)):
            return _report(name, False, "the right pairs in column order: the grid is filled row by row. Hint: "
                                        "all the images of row 0 (its code with every digit) come first")
        if not z_ok and _close(z, z_rows.repeat(cols, 1)):
            return _report(name, False, "the codes cycle through the rows: z_rows[0], z_rows[1], ... Hint: each "
                                        "row needs its own code C times in a row (repeat_interleave, not repeat)")
        if not y_ok and torch.equal(y, digits.repeat_interleave(rows)):
            return _report(name, False, "each digit is repeated R times in a row. Hint: the labels cycle through "
                                        "the digits in every row (repeat, not repeat_interleave)")
        if z_ok:
            return _report(name, False, "the codes are right, the labels are not. Hint: image r*C + c has the "
                                        "label digits[c]")
        return _report(name, False, "the codes are wrong. Hint: image r*C + c has the code z_rows[r]")
    return _report(name, True, "correct for 3 grid sizes")


def _tiny_cvae():
    """A small untrained CVAE whose posteriors are almost points (logvar = -40), so that a one-sample
    ELBO hardly depends on the z drawn and a learner's scores can be compared with ours exactly."""
    import vaelib
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = vaelib.build_vae("mlp", latent_dim=2, hidden=16, num_classes=10).eval()
    with torch.no_grad():
        model.encoder.logvar.weight.zero_()
        model.encoder.logvar.bias.fill_(-40.0)
    return model


def check_elbo_scores(fn) -> bool:
    """``fn(model, x, n_samples)``: for a conditional VAE and images ``x`` ``(B, 1, 28, 28)``, the ``(B, 10)``
    matrix whose column k is the conditional ELBO of each image with the label k, averaged over
    ``n_samples`` draws of z."""
    name = "check_elbo_scores"
    model = _tiny_cvae()
    g = torch.Generator().manual_seed(12)
    x = torch.bernoulli(torch.full((5, 1, 28, 28), 0.3), generator=g)
    with torch.random.fork_rng(), torch.no_grad():   # the check leaves your random state alone
        out, error = _call(name, fn, model, x.clone(), 3)
        parts = [model.elbo(x, y=torch.full((5,), k)) for k in range(10)]
    if error:
        return _report(name, False, error)
    out = _as_tensor(out).detach()
    expected = torch.stack([p.elbo for p in parts], 1)
    tol = 1e-2   # nats: the z noise moves these ELBOs by 1e-4, the labels' scores differ by tenths of a nat
    near = lambda a: out.shape == a.shape and torch.allclose(out.float(), a, atol=tol, rtol=0)  # noqa: E731
    if near(expected):
        return _report(name, True, "correct on a small CVAE (5 images, 10 labels)")
    if near(expected.T):
        return _report(name, False, f"shape {tuple(out.shape)}: transposed. Hint: one row per image, one column "
                                    "per label, (B, 10)")
    if out.shape != expected.shape:
        return _report(name, False, f"shape {tuple(out.shape)}, expected {tuple(expected.shape)}: one score per "
                                    "image and label")
    if near(-expected):
        return _report(name, False, "that is minus the ELBO, the loss. Hint: the best label has the *highest* "
                                    "ELBO, the highest log p(x|y)")
    if near(torch.stack([p.reconstruction for p in parts], 1)):
        return _report(name, False, "the KL term is missing. Hint: score with the whole ELBO (.elbo), "
                                    "reconstruction minus KL")
    if near(3 * expected):
        return _report(name, False, "three times too large: you sum over the samples. Hint: average them")
    if torch.allclose(out, out[:, :1].expand_as(out)):
        return _report(name, False, "every column is the same. Hint: column k scores the images with the label "
                                    "k: y = torch.full((B,), k)")
    return _report(name, False, "wrong values. Hint: column k = model.elbo(x, y=labels k).elbo, averaged over "
                                "n_samples calls")


def check_nearest_centroid_accuracy(fn) -> bool:
    """``fn(z_train, y_train, z_test, y_test)``: the fraction of test codes (N, D) whose nearest class
    centroid (Euclidean distance; centroid k = mean of the *training* codes with label k) is their own
    label: a number in [0, 1]."""
    name = "check_nearest_centroid_accuracy"
    g = torch.Generator().manual_seed(13)
    for _ in range(3):
        centres = 1.5 * torch.randn(10, 2, generator=g)
        y_train = torch.cat([torch.arange(10), torch.randint(0, 10, (190,), generator=g)])
        y_test = torch.randint(0, 10, (120,), generator=g)
        z_train = centres[y_train] + torch.randn(200, 2, generator=g)
        z_test = centres[y_test] + 0.5 + torch.randn(120, 2, generator=g)   # shifted: test centroids differ
        out, error = _call(name, fn, z_train.clone(), y_train.clone(), z_test.clone(), y_test.clone())
        if error:
            return _report(name, False, error)
        value, error = _number(out)
        if error:
            return _report(name, False, f"{error}. Hint: the mean over the test codes of (predicted == y_test)")

        def accuracy(centroids, far=False):
            d = torch.cdist(z_test, centroids)
            return ((d.argmax(1) if far else d.argmin(1)) == y_test).float().mean().item()

        def means(z, y):
            return torch.stack([z[y == k].mean(0) for k in range(10)])

        expected = accuracy(means(z_train, y_train))
        near = lambda a: abs(value - a) < 1e-6 + 1e-4 * abs(a)  # noqa: E731
        if near(expected):
            continue
        if near(100 * expected):
            return _report(name, False, "that is a percentage. Hint: return a fraction in [0, 1]")
        if near(expected * len(y_test)):
            return _report(name, False, "that is the number of correct test codes. Hint: divide by how many there are")
        if near(1 - expected):
            return _report(name, False, "that is the error rate. Hint: count the codes classified *correctly*")
        if near(accuracy(means(z_test, y_test))):
            return _report(name, False, "your centroids come from the test codes. Hint: compute them from the "
                                        "training codes, then classify the test codes")
        if near(accuracy(means(z_train, y_train), far=True)):
            return _report(name, False, "you pick the farthest centroid. Hint: the nearest one has the smallest "
                                        "distance (argmin)")
        nearest_code = y_train[torch.cdist(z_test, z_train).argmin(1)]
        if near((nearest_code == y_test).float().mean().item()):
            return _report(name, False, "that is the label of the nearest training *code* (1-nearest neighbour). "
                                        "Hint: compare with the ten class centroids instead")
        return _report(name, False, "wrong value. Hint: centroid k = mean of the training codes with label k; "
                                    "predict the label of the nearest centroid; the accuracy is the fraction right")
    return _report(name, True, "correct on 3 random sets of codes")
