"""vaelib.course.sample_quality: the Frechet distance, the shipped MNIST classifier and the scores built on it.

The formula tests need neither MNIST nor the checkpoint; the others skip, with the reason, when
MNIST or ``pretrained/mnist_classifier.pth`` is absent. All run in a few seconds on a CPU.
"""
import math
from pathlib import Path

import pytest
import torch

from vaelib.course import sample_quality as sq

from .conftest import needs_mnist

PRETRAINED = Path(__file__).resolve().parent.parent / "pretrained"
CLASSIFIER = PRETRAINED / sq.CLASSIFIER_FILE
needs_classifier = pytest.mark.skipif(not CLASSIFIER.exists(), reason=f"{CLASSIFIER} not found: train it with "
                                                                       f"'{sq.TRAIN_COMMAND}'")
# The shipped classifier's accuracy on the first 1,000 test images must stay above this (it is 99+ %;
# an untrained or broken one is near 10 %).
MIN_ACCURACY = 0.98


# --- the formula ------------------------------------------------------------------------------------

def _gaussian(n, mean, std, seed):
    g = torch.Generator().manual_seed(seed)
    return mean + std * torch.randn(n, len(mean) if isinstance(mean, torch.Tensor) else 1, generator=g)


def test_frechet_distance_of_a_set_with_itself_is_zero():
    f = torch.rand(300, 16, generator=torch.Generator().manual_seed(0))
    assert sq.frechet_distance(f, f) == pytest.approx(0, abs=1e-9)


def test_frechet_distance_is_symmetric_and_ignores_order():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(400, 8, generator=g), 0.5 + 2 * torch.rand(300, 8, generator=g)
    d = sq.frechet_distance(a, b)
    assert d > 1
    assert sq.frechet_distance(b, a) == pytest.approx(d, rel=1e-9)
    assert sq.frechet_distance(a[torch.randperm(400, generator=g)], b.flip(0)) == pytest.approx(d, rel=1e-9)


def test_frechet_distance_of_1d_gaussians_is_the_squared_differences_of_mean_and_std():
    # FD(N(m1, s1^2), N(m2, s2^2)) = (m1 - m2)^2 + (s1 - s2)^2, exactly, for the fitted m and s
    a, b = _gaussian(5000, 1.0, 2.0, seed=2), _gaussian(4000, -0.5, 0.5, seed=3)
    m1, m2, s1, s2 = a.double().mean(), b.double().mean(), a.double().std(), b.double().std()
    expected = ((m1 - m2) ** 2 + (s1 - s2) ** 2).item()
    assert sq.frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
    assert expected == pytest.approx(1.5 ** 2 + 1.5 ** 2, rel=0.05)  # the true value from the generating laws


def test_frechet_distance_from_statistics_matches_a_hand_computed_2d_case():
    # Non-commuting covariances: S_a = diag(4, 1), S_b = [[2, 1], [1, 2]]. By hand:
    # Tr(S_a S_b)^(1/2) = sqrt(l1) + sqrt(l2) with l1 + l2 = Tr(S_a S_b) = 10, l1 l2 = det = 4 * 3 = 12,
    # so (sqrt(l1) + sqrt(l2))^2 = 10 + 2 sqrt(12); FD = |(1, -2)|^2 + 5 + 4 - 2 sqrt(10 + 2 sqrt(12)).
    mu_a, mu_b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])
    cov_a, cov_b = torch.tensor([[4.0, 0.0], [0.0, 1.0]]), torch.tensor([[2.0, 1.0], [1.0, 2.0]])
    expected = 5 + 9 - 2 * math.sqrt(10 + 2 * math.sqrt(12))
    assert sq.frechet_distance_from_statistics(mu_a, cov_a, mu_b, cov_b) == pytest.approx(expected, rel=1e-12)
    assert sq.frechet_distance_from_statistics(mu_b, cov_b, mu_a, cov_a) == pytest.approx(expected, rel=1e-12)


def test_frechet_distance_survives_singular_covariances():
    # fewer images than features and a dead feature: covariances of rank < D
    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(20, 64, generator=g), torch.randn(30, 64, generator=g)
    a[:, 0] = b[:, 0] = 0
    d = sq.frechet_distance(a, b)
    assert math.isfinite(d) and d > 0
    assert sq.frechet_distance(a, a) == pytest.approx(0, abs=1e-8)


def test_feature_statistics_uses_the_unbiased_covariance():
    f = torch.tensor([[0.0], [2.0]])
    mu, cov = sq.feature_statistics(f)
    assert mu.item() == 1 and cov.item() == 2  # divided by N - 1, as np.cov and pytorch-fid do
    assert mu.dtype == cov.dtype == torch.float64


def test_label_entropy_and_confidence_from_probabilities():
    one_hot = torch.eye(10)
    s = sq._scores_from_probabilities(one_hot)  # ten sure, different digits: the best possible set
    assert s["confidence"] == 1 and s["mean_entropy"] == pytest.approx(0) and s["n"] == 10
    assert s["label_entropy"] == pytest.approx(math.log(10)) and s["classifier_score"] == pytest.approx(10)
    s = sq._scores_from_probabilities(torch.full((5, 10), 0.1))  # no idea what any image is
    assert s["confidence"] == pytest.approx(0.1) and s["mean_entropy"] == pytest.approx(math.log(10))
    assert s["label_entropy"] == pytest.approx(math.log(10)) and s["classifier_score"] == pytest.approx(1)
    s = sq._scores_from_probabilities(one_hot[[3] * 7])  # always the same digit
    assert s["label_entropy"] == pytest.approx(0) and s["classifier_score"] == pytest.approx(1)


# --- the checkpoint -----------------------------------------------------------------------------------

def test_a_missing_classifier_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("VAELIB_PRETRAINED", str(tmp_path))
    with pytest.raises(ValueError) as err:
        sq.load_classifier()
    message = str(err.value)
    assert "\n" not in message and str(tmp_path / sq.CLASSIFIER_FILE) in message and "not found" in message
    assert sq.TRAIN_COMMAND in message
    assert isinstance(err.value, sq.CheckpointError)  # so the CLI reports it as one line


@pytest.mark.parametrize("damage, why", [
    ("truncated", "truncated"), ("garbage", "truncated or not a torch.save file"),
    ("bit flip", "fails its checksum"), ("zip, not torch", "cannot be read"),
    ("other pth", "not a vaelib MNIST classifier"), ("a VAE checkpoint", "not a vaelib MNIST classifier"),
    ("unsafe pickle", "refuses"), ("wrong shapes", "does not fit"), ("NaN weights", "non-finite"),
])
def test_a_corrupt_classifier_is_one_clear_error(tmp_path, damage, why):
    import zipfile

    import vaelib

    path = tmp_path / sq.CLASSIFIER_FILE
    sq.save_classifier(sq.MNISTClassifier(), path)
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a checkpoint at all")
    elif damage == "bit flip":  # inside the stored weights: only the archive's CRC can see it
        middle = len(data) // 2
        path.write_bytes(data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:])
    elif damage == "zip, not torch":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("notes.txt", "a zip file, but no torch.save inside")
    elif damage == "other pth":
        torch.save({"state_dict": {}}, path)
    elif damage == "a VAE checkpoint":
        vaelib.save(vaelib.build_vae("mlp", latent_dim=2, hidden=8), path)
    elif damage == "unsafe pickle":
        torch.save({"format": sq.FORMAT, "payload": Path("x")}, path)
    else:
        model = sq.MNISTClassifier(feature_dim=64) if damage == "wrong shapes" else sq.MNISTClassifier()
        if damage == "NaN weights":
            with torch.no_grad():
                model.head.bias[0] = float("nan")
        sq.save_classifier(model, path)
        if damage == "wrong shapes":  # a 64-feature file that claims the 128-feature config
            ckpt = torch.load(path, weights_only=True)
            ckpt["config"]["feature_dim"] = 128
            torch.save(ckpt, path)
    with pytest.raises(sq.ClassifierError) as err:
        sq.load_classifier(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message and sq.TRAIN_COMMAND in message and why in message


def test_save_and_load_round_trip(tmp_path):
    model = sq.MNISTClassifier().eval()
    model.meta = {"test_accuracy_grey": 0.5, "train_command": "x"}
    path = sq.save_classifier(model, tmp_path / "c.pth")
    loaded = sq.load_classifier(path)
    assert loaded.meta == model.meta and not loaded.training
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert torch.load(path, weights_only=True)["format"] == sq.FORMAT


def test_bad_images_are_refused_with_a_reason():
    model = sq.MNISTClassifier()
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        sq.classifier_outputs(model, torch.rand(3, 3, 32, 32))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        sq.classifier_outputs(model, torch.rand(3, 1, 28, 28) * 255)


# --- the shipped classifier and the scores --------------------------------------------------------------

@pytest.fixture(scope="module")
def classifier():
    return sq.load_classifier(CLASSIFIER)


@pytest.fixture(scope="module")
def test_images():
    from vaelib import MNIST
    return MNIST("test", subset=2000)


@needs_classifier
def test_the_shipped_classifier_is_small_and_records_its_accuracy(classifier):
    assert CLASSIFIER.stat().st_size < 2e6
    meta = classifier.meta
    assert meta["test_accuracy_grey"] > 0.99 and meta["test_accuracy_binarized"] > 0.98
    assert meta["feature_dim"] == classifier.feature_dim == 128 and meta["train_command"].replace(
        "vaelib.sample_quality", "vaelib.course.sample_quality").startswith(sq.TRAIN_COMMAND)  # trained before the move


@needs_mnist
@needs_classifier
@pytest.mark.parametrize("binarize", [False, True])
def test_the_shipped_classifier_reads_grey_and_binary_test_digits(classifier, test_images, binarize):
    accuracy = sq.classifier_accuracy(classifier, test_images[:1000], binarize=binarize, seed=0)
    assert accuracy > MIN_ACCURACY


@needs_mnist
@needs_classifier
def test_scores_tell_real_digits_from_a_model_from_noise_and_blanks(classifier, test_images):
    import vaelib

    reference, real = test_images.images[:1000], test_images.images[1000:2000]
    samples = vaelib.load(PRETRAINED / "conv_vae.pth").sample(1000, generator=torch.Generator().manual_seed(0))
    noise = torch.rand(1000, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    s_real, s_vae, s_noise, s_blank = (sq.sample_scores(x, reference, classifier)
                                       for x in (real, samples, noise, torch.zeros(1000, 1, 28, 28)))
    assert s_real["n"] == s_real["n_reference"] == 1000
    # the Frechet distance orders all four: real (about 6) < VAE (about 80) < noise and blanks (700+)
    assert s_real["fd"] < s_vae["fd"] / 5 and s_vae["fd"] < min(s_noise["fd"], s_blank["fd"]) / 5
    # the classifier's opinions: real digits are the most confident, least ambiguous, most varied
    for s in (s_vae, s_noise, s_blank):
        assert s_real["confidence"] > s["confidence"] and s_real["mean_entropy"] < s["mean_entropy"]
        assert s_real["classifier_score"] > s["classifier_score"]
    assert s_real["label_entropy"] > 2.28 and s_vae["label_entropy"] > 2.2  # all ten digits, about equally
    # ...but each statistic alone can be fooled: noise is read confidently as one digit (low label
    # entropy gives it away), blanks as an even spread (high label entropy, low confidence)
    assert s_noise["label_entropy"] < 1 and s_blank["confidence"] < 0.3
    assert s_vae["classifier_score"] > 5 > 2 > max(s_noise["classifier_score"], s_blank["classifier_score"])


@needs_mnist
@needs_classifier
def test_scores_are_deterministic_and_do_not_depend_on_the_batch_size(classifier, test_images):
    images = test_images.images[:600]
    a = sq.sample_scores(images, test_images.images[600:1200], classifier, batch_size=600)
    b = sq.sample_scores(images, test_images.images[600:1200], classifier, batch_size=128)
    assert a.keys() == b.keys() == {"fd", "confidence", "label_entropy", "mean_entropy", "classifier_score", "n",
                                    "n_reference"}
    for key in a:
        assert a[key] == pytest.approx(b[key], rel=1e-5)
    assert sq.sample_scores(images, test_images.images[600:1200], classifier) == a  # same call, same numbers
    # uint8 and float in [0, 1] are the same images
    assert sq.classifier_scores(images.float() / 255, classifier) == pytest.approx(sq.classifier_scores(images, classifier))


@needs_mnist
def test_the_reference_is_the_whole_test_set_in_grey_or_one_seeded_binarization():
    grey = sq.mnist_test_reference()
    binary = sq.mnist_test_reference(binarized=True, seed=0)
    assert grey.shape == binary.shape == (10000, 1, 28, 28) and grey.dtype == torch.float32
    assert 0 < grey.mean() < 0.2 and set(binary.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(binary, sq.mnist_test_reference(binarized=True, seed=0))
    assert not torch.equal(binary, sq.mnist_test_reference(binarized=True, seed=1))


# --- Fashion-MNIST's classifier (the capstones' sample scores) ------------------------------------------

FASHION = PRETRAINED / sq.CLASSIFIER_FILES["fashion_mnist"]
needs_fashion_classifier = pytest.mark.skipif(not FASHION.exists(), reason=f"{FASHION} not found")


def test_a_missing_fashion_classifier_names_its_own_command(tmp_path, monkeypatch):
    monkeypatch.setenv("VAELIB_PRETRAINED", str(tmp_path))
    with pytest.raises(sq.ClassifierError) as err:
        sq.load_classifier(dataset="fashion_mnist")
    message = str(err.value)
    assert message.startswith("Fashion-MNIST classifier") and str(tmp_path / "fashion_mnist_classifier.pth") in message
    assert f"'{sq.TRAIN_COMMAND} --dataset fashion_mnist'" in message
    with pytest.raises(ValueError, match="dataset='cifar10': the sample scores know 'mnist', 'fashion_mnist'"):
        sq.load_classifier(dataset="cifar10")


@needs_classifier
@needs_fashion_classifier
def test_one_data_sets_classifier_is_refused_for_the_other():
    with pytest.raises(sq.ClassifierError, match="was trained on 'fashion_mnist', not 'mnist'"):
        sq.load_classifier(FASHION)
    with pytest.raises(sq.ClassifierError, match="was trained on 'mnist', not 'fashion_mnist'"):
        sq.load_classifier(CLASSIFIER, dataset="fashion_mnist")


@needs_fashion_classifier
def test_the_shipped_fashion_classifier_reads_fashion_mnist():
    from .test_checks_capstone import needs_fashion
    if needs_fashion.args[0]:
        pytest.skip(needs_fashion.kwargs["reason"])
    from vaelib import FashionMNIST
    classifier = sq.load_classifier(dataset="fashion_mnist")
    assert classifier.meta["dataset"] == "fashion_mnist" and classifier.meta["test_accuracy_grey"] > 0.9
    assert classifier.meta["train_command"].startswith(f"{sq.TRAIN_COMMAND} --dataset fashion_mnist")
    test = FashionMNIST("test", subset=1000)
    assert sq.classifier_accuracy(classifier, test) > 0.88   # untrained: 10 %
    # its features tell clothes from digits: real Fashion-MNIST test images sit far closer to the reference
    reference = sq.test_reference("fashion_mnist")
    assert reference.shape == (10000, 1, 28, 28)
    fd_real = sq.sample_scores(FashionMNIST("train", subset=2000).images, reference, classifier)["fd"]
    fd_digits = sq.sample_scores(sq.mnist_test_reference()[:2000], reference, classifier)["fd"]
    assert fd_real * 10 < fd_digits, (fd_real, fd_digits)


def test_the_copying_ratio_tells_copies_from_new_draws():
    from vaelib.course.sample_quality import copying_ratio, nearest_distances
    g = torch.Generator().manual_seed(0)
    train, held_out = torch.rand(500, 1, 4, 4, generator=g), torch.rand(200, 1, 4, 4, generator=g)
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    assert torch.allclose(nearest_distances(x, torch.tensor([[0.0, 1.0], [3.0, 0.0]])), torch.tensor([1.0, 4.0]))
    copies = copying_ratio(train[:200] + 0.001, held_out, train)          # training rows, barely moved
    fresh = copying_ratio(torch.rand(200, 1, 4, 4, generator=g), held_out, train)
    assert copies["ratio"] < 0.01 and 0.8 < fresh["ratio"] < 1.25
    assert fresh["held_out"] == copies["held_out"] > 0
