"""Checks for notebook 09 (conditional VAEs)."""
import torch

from ._feedback import (_as_tensor, _by_class, _close, _seeded, _small_vae, answer, diagnose, exercise_check, expect,
                        one_number, unpack)

__all__ = ['check_style_grid', 'check_elbo_scores', 'check_nearest_centroid_accuracy']


@exercise_check("correct for 3 grid sizes")
def check_style_grid(fn) -> bool:
    """``fn(z_rows, digits)``: the batch to decode for a grid with one row per latent code and one column
    per digit, ``(R, D), (C,) -> (z (R*C, D), y (R*C,))``, row by row: image r*C + c pairs z_rows[r]
    with digits[c]."""
    for g, (rows, cols) in _seeded(11, ((4, 3), (2, 5), (3, 2))):
        z_rows = torch.randn(rows, 2, generator=g)
        digits = torch.randperm(10, generator=g)[:cols]
        z, y = unpack(answer(fn, z_rows, digits), 2, "expected two tensors, (z, y). Hint: return z, y",
                      convert=_as_tensor)
        want_z, want_y = z_rows.repeat_interleave(cols, 0), digits.repeat(rows)
        if y.shape != want_y.shape:
            return (f"{tuple(y.shape)} labels for {rows} x {cols} = {rows * cols} images. "
                    "Hint: one label per decoded image")
        if z.shape != want_z.shape:
            return (f"z has shape {tuple(z.shape)}, expected {tuple(want_z.shape)}. Hint: one latent code per decoded "
                    "image, each row's code repeated for every digit")
        if y.dtype != torch.long:
            return (f"the labels are {y.dtype}. Hint: labels are integer class indices, torch.long "
                    "(the one-hot encoding needs them)")
        z_ok, y_ok = _close(z, want_z), torch.equal(y, want_y)
        if z_ok and y_ok:
            continue
        z_cycles, y_repeats = _close(z, z_rows.repeat(cols, 1)), torch.equal(y, digits.repeat_interleave(rows))
        return diagnose(None, [
            (z_cycles and y_repeats, "the right pairs in column order: the grid is filled row by row. Hint: all the "
             "images of row 0 (its code with every digit) come first"),
            (not z_ok and z_cycles, "the codes cycle through the rows: z_rows[0], z_rows[1], ... Hint: each row needs "
             "its own code C times in a row (repeat_interleave, not repeat)"),
            (not y_ok and y_repeats, "each digit is repeated R times in a row. Hint: the labels cycle through the "
             "digits in every row (repeat, not repeat_interleave)"),
            (z_ok, "the codes are right, the labels are not. Hint: image r*C + c has the label digits[c]"),
        ], otherwise="the codes are wrong. Hint: image r*C + c has the code z_rows[r]")


@exercise_check("correct on a small CVAE (5 images, 10 labels)")
def check_elbo_scores(fn) -> bool:
    """``fn(model, x, n_samples)``: for a conditional VAE and images ``x`` ``(B, 1, 28, 28)``, the ``(B, 10)``
    matrix whose column k is the conditional ELBO of each image with the label k, averaged over
    ``n_samples`` draws of z."""
    # a small CVAE whose posteriors are almost points (logvar = -40), so that a one-sample ELBO hardly depends on
    # the z drawn and a learner's scores can be compared with ours exactly
    model = _small_vae(num_classes=10)
    with torch.no_grad():
        model.encoder.logvar.weight.zero_()
        model.encoder.logvar.bias.fill_(-40.0)
    g = torch.Generator().manual_seed(12)
    x = torch.bernoulli(torch.full((5, 1, 28, 28), 0.3), generator=g)
    with torch.random.fork_rng(), torch.no_grad():   # the check leaves your random state alone
        out = answer(fn, model, x, 3)
        parts = [model.elbo_terms(x, y=torch.full((5,), k)) for k in range(10)]
    out = _as_tensor(out).detach()
    expected = torch.stack([p.value for p in parts], 1)
    # tolerance in nats: the z noise moves these ELBOs by 1e-4, the labels' scores differ by tenths of a nat
    expect(out, expected, [
        (expected.T, f"shape {tuple(out.shape)}: transposed. Hint: one row per image, one column per label, (B, 10)"),
        (out.shape != expected.shape, f"shape {tuple(out.shape)}, expected {tuple(expected.shape)}: "
         "one score per image and label"),
        (-expected, "that is minus the ELBO, the loss. Hint: the best label has the *highest* "
         "ELBO, the highest log p(x|y)"),
        (torch.stack([p.reconstruction for p in parts], 1), "the KL term is missing. Hint: score with the whole ELBO "
         "(.value), reconstruction minus KL"),
        (3 * expected, "three times too large: you sum over the samples. Hint: average them"),
        (lambda: torch.allclose(out, out[:, :1].expand_as(out)), "every column is the same. Hint: column k scores the "
         "images with the label k: y = torch.full((B,), k)"),
    ], otherwise="wrong values. Hint: column k = model.elbo_terms(x, y=labels k).value, averaged over n_samples calls",
       tol=0, atol=1e-2)


@exercise_check("correct on 3 random sets of codes")
def check_nearest_centroid_accuracy(fn) -> bool:
    """``fn(z_train, y_train, z_test, y_test)``: the fraction of test codes (N, D) whose nearest class
    centroid (Euclidean distance; centroid k = mean of the *training* codes with label k) is their own
    label: a number in [0, 1]."""
    for g, _ in _seeded(13):
        centres = 1.5 * torch.randn(10, 2, generator=g)
        y_train = torch.cat([torch.arange(10), torch.randint(0, 10, (190,), generator=g)])
        y_test = torch.randint(0, 10, (120,), generator=g)
        z_train = centres[y_train] + torch.randn(200, 2, generator=g)
        z_test = centres[y_test] + 0.5 + torch.randn(120, 2, generator=g)   # shifted: test centroids differ
        out = answer(fn, z_train, y_train, z_test, y_test)
        value = one_number(out, ". Hint: the mean over the test codes of (predicted == y_test)")

        def accuracy(centroids, far=False):
            d = torch.cdist(z_test, centroids)
            return ((d.argmax(1) if far else d.argmin(1)) == y_test).float().mean().item()

        expected = accuracy(_by_class(z_train, y_train))
        nearest_code = y_train[torch.cdist(z_test, z_train).argmin(1)]
        expect(value, expected, [
            (100 * expected, "that is a percentage. Hint: return a fraction in [0, 1]"),
            (expected * len(y_test), "that is the number of correct test codes. Hint: divide by how many there are"),
            (1 - expected, "that is the error rate. Hint: count the codes classified *correctly*"),
            (accuracy(_by_class(z_test, y_test)), "your centroids come from the test codes. Hint: compute them from "
             "the training codes, then classify the test codes"),
            (accuracy(_by_class(z_train, y_train), far=True), "you pick the farthest centroid. Hint: the nearest one "
             "has the smallest distance (argmin)"),
            ((nearest_code == y_test).float().mean().item(), "that is the label of the nearest training *code* "
             "(1-nearest neighbour). Hint: compare with the ten class centroids instead"),
        ], otherwise="wrong value. Hint: centroid k = mean of the training codes with label k; predict the label of "
                     "the nearest centroid; the accuracy is the fraction right",
           near=lambda a, b: abs(a - b) < 1e-6 + 1e-4 * abs(b))
