"""Checks for the capstone projects (notebooks/README.md, "Capstone projects").

Part 1 (notebooks 00-09): a VAE on binarized Fashion-MNIST whose test log-likelihood is reported with its
protocol. :func:`check_capstone_report` re-derives the reported numbers from the model and the stated
protocol; it cannot judge the samples, the nearest neighbours or the write-up, which the rubric covers.

Part 2 (notebooks 11-13): the Part-1 model improved by one lever (a pixelcnn decoder, an IAF posterior, a
learned prior, IWAE training). :func:`check_capstone_gain` checks both reports as Part 1 does, then the paired
difference, its standard error and the sample scores of both models.
"""
import math

import torch

from ._feedback import correct, diagnose, exercise_check

__all__ = ['check_capstone_report', 'check_capstone_gain', 'capstone_report']

_REQUIRED = ("dataset", "binarize", "seed", "n_images", "k", "elbo", "nll", "nll_per_image", "bits_per_dim")
_DISCRETE = ("bernoulli", "bce", "pixelcnn")      # likelihoods that give a probability of binary images


def capstone_report(model, dataset: str = "fashion_mnist", binarize: str = "dynamic", seed: int = 0,
                    n_images: int = 10_000, k: int = 5000, progress: bool = True) -> dict:
    """The Part-1 report of ``model`` (the dict :func:`check_capstone_report` reads) under the stated protocol:
    the ELBO and -L_k on the first ``n_images`` test images of ``dataset``, binarized by ``seed``."""
    from vaelib.evaluation import evaluate_elbo, iwae_nll
    data = _dataset(dataset, binarize, n_images)
    nll = iwae_nll(model, data, k=k, seed=seed, per_image=True, progress=progress)
    return {"dataset": dataset, "binarize": binarize, "seed": seed, "n_images": len(data), "k": k,
            "elbo": evaluate_elbo(model, data, seed=seed)["elbo"], "nll": nll["nll"],
            "nll_per_image": nll["per_image"], "bits_per_dim": nll["bits_per_dim"]}


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
    return _verdict(model, report, spot_checks, max_k)


def _verdict(model, report, spot_checks: int, max_k: int):
    """check_capstone_report's verdict: a failure's message, or ``correct(message)``."""
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


_LEVERS = {  # the lever: (the VAEConfig field it changes, what the improved model must have there, its name)
    "pixelcnn": ("likelihood", ("pixelcnn",), "a pixelcnn decoder (notebook 11)"),
    "iaf": ("posterior_kind", ("iaf",), "an IAF posterior (notebook 12)"),
    "prior": ("prior_kind", ("vamp", "mog"), "a learned prior, VampPrior or mixture (notebook 13)"),
    "iwae": (None, (), "IWAE training, the same architecture (notebook 12)"),
}
_FREE = {"pixelcnn_layers", "iaf_steps", "iaf_hidden", "prior_components"}   # the levers' own settings


@exercise_check()
def check_capstone_gain(baseline, improved, report: dict, spot_checks: int = 4, max_k: int = 1000) -> bool:
    """Check a Part-2 capstone report: ``improved`` is ``baseline`` with one lever changed.

    ``report`` is a dict:

    - ``baseline``, ``improved``: each model's Part-1 report (see :func:`check_capstone_report`), on the same
      images, binarization, seed and k;
    - ``lever``: ``"pixelcnn"``, ``"iaf"``, ``"prior"`` (VampPrior or mixture) or ``"iwae"``;
    - ``nll_difference``: the mean over images of improved minus baseline NLL (nats; negative: improved is
      better), ``nll_difference_se``: its paired standard error, ``bits_per_dim_difference``: the same in bits/dim;
    - ``samples``: ``{"n", "seed", "fd_baseline", "fd_improved"}``, the Frechet distances that
      ``vaelib.course.sample_quality.model_scores(model, n, seed, dataset=...)`` gives each model.

    Both reports are checked as Part 1's are; the differences are recomputed from the per-image values; the
    sample scores are recomputed (``n`` samples of each model, a minute or two for a pixelcnn decoder).
    """
    if not isinstance(report, dict):
        return "expected a dict with baseline, improved, lever, nll_difference, nll_difference_se, samples"
    missing = [key for key in ("baseline", "improved", "lever", "nll_difference", "nll_difference_se",
                               "bits_per_dim_difference", "samples") if key not in report]
    if missing:
        return "missing " + ", ".join(missing) + ". Hint: the docstring lists the keys (help(check_capstone_gain))"
    for which, model in (("baseline", baseline), ("improved", improved)):
        verdict = _verdict(model, report[which], spot_checks, max_k)
        if not isinstance(verdict, correct):
            return f"{which}: {verdict}"
    a, b = report["baseline"], report["improved"]
    differs = [key for key in ("dataset", "binarize", "seed", "n_images", "k") if a[key] != b[key]]
    if differs:
        return (f"the two reports differ in {', '.join(differs)}: a paired difference needs the same images, "
                "binarization and k for both models. Hint: evaluate both under one protocol")
    lever = report["lever"]
    if lever not in _LEVERS:
        return f"lever={lever!r}: choose one of " + ", ".join(map(repr, _LEVERS))
    field, wanted, what = _LEVERS[lever]
    old, new = vars(baseline.config), vars(improved.config)
    if field is not None and new[field] not in wanted:
        return f"the improved model's {field} is {new[field]!r}, so it does not have {what}"
    changed = sorted(key for key in new if key not in _FREE | {field} and new[key] != old.get(key))
    if changed:
        return (f"the two models also differ in {', '.join(changed)}: then the difference is not the lever's alone. "
                f"Hint: change only what {what} needs, or report that change as a lever of its own")
    if field is not None and old[field] in wanted:
        return f"the baseline already has {what}: the improved model should add it to a Part-1 model"
    n = a["n_images"]
    d = (torch.as_tensor(b["nll_per_image"], dtype=torch.float64).flatten()
         - torch.as_tensor(a["nll_per_image"], dtype=torch.float64).flatten())
    mean, se = d.mean().item(), d.std().item() / math.sqrt(n) if n > 1 else float("nan")
    unpaired = math.hypot(torch.as_tensor(a["nll_per_image"]).double().std().item(),
                          torch.as_tensor(b["nll_per_image"]).double().std().item()) / math.sqrt(n)
    try:
        stated, stated_se = float(report["nll_difference"]), float(report["nll_difference_se"])
        stated_bits = float(report["bits_per_dim_difference"])
    except (TypeError, ValueError) as err:
        return f"a difference is not a number: {err}"
    near = lambda x, y: abs(x - y) <= 1e-3 * max(1.0, abs(y))                     # noqa: E731
    wrong = diagnose(None, [
        (near(stated, -mean) and not near(mean, 0.0), f"nll_difference has the wrong sign: improved minus baseline "
         f"is {mean:+.3f} nats. Hint: negative means the improved model is better"),
        (not near(stated, mean), f"nll_difference = {stated:.3f}, but the per-image NLLs give {mean:+.3f} nats. Hint: "
         "the mean of improved minus baseline over the same images"),
        (near(stated_se, unpaired) and not near(se, unpaired), f"nll_difference_se = {stated_se:.3f} treats the two "
         f"models as independent; on the same images the paired error is {se:.3f}. Hint: the standard deviation of "
         "the per-image differences / sqrt(n) (notebook 08, exercise 4)"),
        (near(stated_se, se * math.sqrt(n)), "that is the standard deviation of the differences, not the error of "
         "their mean. Hint: divide by sqrt(n)"),
        (not near(stated_se, se), f"nll_difference_se = {stated_se:.3f}, expected {se:.3f}. Hint: std of the "
         "per-image differences / sqrt(n)"),
        (near(stated_bits, mean / math.log(2)), "bits_per_dim_difference is in bits per image. Hint: divide by 784 "
         "too"),
        (not near(stated_bits, mean / (784 * math.log(2))), "bits_per_dim_difference does not match nll_difference. "
         "Hint: nats / (784 ln 2)"),
    ], otherwise=None)
    if wrong:
        return wrong
    samples = report["samples"]
    try:
        n_samples, seed = int(samples["n"]), int(samples["seed"])
        fds = float(samples["fd_baseline"]), float(samples["fd_improved"])
    except (TypeError, KeyError, ValueError) as err:
        return (f"samples: {type(err).__name__} {err}. Hint: {{'n': 10000, 'seed': 0, 'fd_baseline': ..., "
                "'fd_improved': ...}")
    if n_samples < 1000:
        return (f"samples: n = {n_samples}. The Frechet distance is biased upward at small n: score at least "
                "1,000 samples of each model (10,000 is the course's protocol)")
    from ..sample_quality import model_scores
    dataset = a["dataset"]
    for which, model, fd in (("baseline", baseline, fds[0]), ("improved", improved, fds[1])):
        recomputed = model_scores(model, n_samples, seed, dataset=dataset)["fd"]
        if abs(recomputed - fd) > 0.01 * recomputed + 0.05:
            return (f"samples: the {which} FD does not reproduce: {recomputed:.2f} for {n_samples} samples from seed "
                    f"{seed}, against your {fd:.2f}. Hint: model_scores(model, n, seed, dataset={dataset!r}), which "
                    "scores binary samples against the binarized test set under that data set's classifier")
    verdict = ("within two standard errors of zero at this number of images: say that the lever's effect is not "
               "resolved" if abs(mean) < 2 * se else ("better" if mean < 0 else "worse") + " by more than two "
               "standard errors")
    return correct(f"both reports consistent; improved - baseline = {mean:+.2f} +- {se:.2f} nats "
                   f"({mean / (784 * math.log(2)):+.4f} bits/dim) on {n} images at k = {a['k']}, {verdict}; FD "
                   f"{fds[0]:.1f} -> {fds[1]:.1f} ({n_samples} samples)")
