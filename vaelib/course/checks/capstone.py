"""Checks for the capstone projects (notebooks/README.md, "Capstone projects").

Part 1 (notebooks 00-09): a VAE on binarized Fashion-MNIST whose test log-likelihood is reported with its
protocol. :func:`check_capstone_report` re-derives the reported numbers from the model and the stated
protocol; it cannot judge the samples, the nearest neighbours or the write-up, which the rubric covers.
"""
import math

import torch

from ._feedback import correct, diagnose, exercise_check

__all__ = ['check_capstone_report']

_REQUIRED = ("dataset", "binarize", "seed", "n_images", "k", "elbo", "nll", "nll_per_image", "bits_per_dim")
_DISCRETE = ("bernoulli", "bce", "pixelcnn")      # likelihoods that give a probability of binary images


def _dataset(name: str, binarize: str, n_images: int):
    import vaelib
    cls = {"fashion_mnist": vaelib.FashionMNIST, "mnist": vaelib.MNIST}[name]
    return cls("test", binarize=binarize, subset=n_images)


@exercise_check()
def check_capstone_report(model, report: dict, spot_checks: int = 8, max_k: int = 2000) -> bool:
    """Check a capstone report against the model it describes.

    ``report`` is a dict with the protocol and the numbers, all on the first ``n_images`` test images:

    - ``dataset``: ``"fashion_mnist"`` (or ``"mnist"``); ``binarize``: ``"dynamic"`` or ``"static"``;
      ``seed``: the seed of the binarization (and of the samples of z); ``n_images``; ``k``;
    - ``elbo``: the mean test ELBO, as ``vaelib.evaluation.evaluate_elbo(model, data, seed=seed)`` returns it
      (default batch size);
    - ``nll``: minus the mean L_k, ``nll_per_image``: the ``(n_images,)`` values it averages, as
      ``vaelib.evaluation.iwae_nll(model, data, k=k, seed=seed, per_image=True)`` returns them;
    - ``bits_per_dim``: the NLL in bits per pixel.

    The check reproduces the ELBO, recomputes L_k on ``spot_checks`` of the images (with k capped at ``max_k``
    to keep it quick), and checks that the numbers agree with each other.
    """
    if not isinstance(report, dict):
        return f"expected a dict, got {type(report).__name__}. Hint: the keys are " + ", ".join(_REQUIRED)
    missing = [key for key in _REQUIRED if key not in report]
    if missing:
        return ("missing " + ", ".join(missing) + ". A number needs its protocol: say which data, which binarization "
                "and seed, how many images and which k")
    dataset, binarize = report["dataset"], report["binarize"]
    if dataset not in ("fashion_mnist", "mnist"):
        return f"dataset {dataset!r}: this check knows 'fashion_mnist' and 'mnist'"
    if binarize not in ("dynamic", "static"):
        return (f"binarize={binarize!r}. A Bernoulli likelihood is a probability of *binary* images (notebook 00): "
                "evaluate on a binarized test set, 'dynamic' or 'static'")
    likelihood = getattr(getattr(model, "config", None), "likelihood", "")
    if likelihood not in _DISCRETE:
        return (f"the model's likelihood is {likelihood!r}, a density: its log-likelihood depends on the units and "
                "cannot be compared as nats per image (notebook 05). Hint: a Bernoulli likelihood on binarized images")
    if getattr(model, "num_classes", 0):
        return ("a conditional model bounds log p(x|y), not log p(x) (notebook 09). Hint: report an unconditional "
                "model")
    try:
        seed, n, k = int(report["seed"]), int(report["n_images"]), int(report["k"])
        elbo, nll, bpd = float(report["elbo"]), float(report["nll"]), float(report["bits_per_dim"])
        per_image = torch.as_tensor(report["nll_per_image"], dtype=torch.float64).flatten()
    except (TypeError, ValueError, RuntimeError) as err:
        return f"a value of the report is not a number: {err}"
    bits = diagnose(None, [
        (abs(bpd - nll / math.log(2)) < 1e-3 * nll, "that is bits per image. Hint: divide by the 784 pixels too"),
        (abs(bpd - nll / 784) < 1e-3 * nll, "that is nats per pixel. Hint: divide by ln 2 too"),
    ], otherwise="Hint: bits/dim = NLL in nats / (784 ln 2)")
    numbers = diagnose(None, [
        (not 1 <= n <= 10_000 or k < 1, f"n_images = {n}, k = {k}: expected 1 to 10,000 test images and k >= 1"),
        (len(per_image) != n, f"nll_per_image holds {len(per_image)} values for n_images = {n}. Hint: "
         "one value per evaluated image"),
        (nll < 0 or elbo > 0, "a sign is off: the ELBO of binary images is <= 0 nats and the NLL, minus the bound, is "
         f">= 0 (you report elbo = {elbo:.2f}, nll = {nll:.2f})"),
        (abs(per_image.mean().item() - nll) > 1e-3 * max(1.0, nll), "the mean of nll_per_image is "
         f"{per_image.mean().item():.2f}, not your nll {nll:.2f}. Hint: report the mean of the very values you list"),
        (abs(bpd - nll / (784 * math.log(2))) > 1e-4 * max(1.0, bpd), f"bits_per_dim = {bpd:.4f} does not "
         f"match nll = {nll:.2f}: {bits}"),
        (nll > -elbo + 0.5, f"your NLL ({nll:.2f}) is worse than minus your ELBO ({-elbo:.2f}), but L_k >= ELBO, so "
         "-L_k <= -ELBO. Hint: evaluate both on the same images, and check which is minus which"),
    ], otherwise=None)
    if numbers:
        return numbers

    import vaelib.evaluation
    with torch.no_grad():
        data = _dataset(dataset, binarize, n)
        reproduced = vaelib.evaluation.evaluate_elbo(model, data, seed=seed)["elbo"]
        if abs(reproduced - elbo) > 0.05:
            other = "static" if binarize == "dynamic" else "dynamic"
            other_elbo = vaelib.evaluation.evaluate_elbo(model, _dataset(dataset, other, n), seed=seed)["elbo"]
            if abs(other_elbo - elbo) <= 0.05:
                return (f"your ELBO is the one of the {other} binarization, but the report says {binarize!r}. Hint: "
                        "state the protocol you evaluated with")
            return (f"the ELBO does not reproduce: {reproduced:.2f} nats for {dataset}, {binarize}, seed {seed}, the "
                    f"first {n} test images, against your {elbo:.2f}. Hint: report what evaluate_elbo(model, data, "
                    "seed=seed) returns, with its default batch size, for exactly the protocol you state")
        # L_k on a few of the images, exactly as iwae_nll computes them: the same binarization (drawn at once
        # from seed) and, per image, the same samples of z (vaelib.evaluation.iwae_bounds)
        idx = torch.linspace(0, n - 1, min(spot_checks, n)).round().long().unique()
        k_check = min(k, max_k)
        was_training = model.training
        bounds = torch.cat([b for _, b in vaelib.evaluation.iwae_bounds(model, data, k_check, seed, indices=idx)])
        model.train(was_training)
    differences = (-bounds.double().cpu()) - per_image[idx]     # recomputed minus reported NLL, per image
    typical = differences.abs().median().item()
    if k_check == k and typical > 2.0 or k_check < k and (differences.median().item() < -2.0 or typical > 4.0):
        return (f"on {len(idx)} spot-checked images your per-image NLLs differ from -L_{k_check} recomputed under the "
                f"stated protocol by {typical:.1f} nats (median). Hint: evaluate the images of the protocol you state, "
                "in their order (same binarization seed, the first n_images test images)")
    notes = [f"{dataset}, {binarize} binarization, seed {seed}"]
    standard_error = per_image.std().item() / math.sqrt(n) if n > 1 else float("nan")
    notes.append(f"{n} test images" + (f" (not all 10,000: the standard error is {standard_error:.2f} nats, say so)"
                                       if n < 10_000 else f", standard error {standard_error:.2f} nats"))
    notes.append(f"k = {k}" + (" (papers use 5000: say so)" if k < 5000 else ""))
    return correct(f"ELBO reproduced, NLL consistent on {len(idx)} spot-checked images, "
                   "bits/dim consistent; protocol: " + "; ".join(notes))
