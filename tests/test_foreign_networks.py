"""One model contract (issue "One model contract"): wrong data and wrong networks are refused before the
first step in one line naming the fix; labels come as an int, a sequence or a tensor everywhere; whatever
shows or measures a model runs it in eval mode and hands it back in the mode it found."""
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import vaelib  # noqa: E402
from vaelib import ImageData, build_vae, fit, vae  # noqa: E402
from vaelib.bounds import elbo_terms, iwae_bound, log_importance_weights  # noqa: E402
from vaelib.data import as_data  # noqa: E402
from vaelib.evaluation import active_units, evaluate_elbo, iwae_bounds, iwae_nll, reconstruction_error  # noqa: E402

from .conftest import needs_mnist  # noqa: E402

D = 4


def _weights(model) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _unchanged(model, before: dict) -> bool:
    return all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def _refused(model, data, match: str, **kwargs) -> str:
    """fit refuses ``data``/``model`` with one ValueError line matching ``match``, before any step."""
    before = _weights(model)
    with pytest.MonkeyPatch.context() as patch, pytest.raises(ValueError, match=match) as err:
        patch.setattr("vaelib.training.train_epoch", lambda *a, **k: pytest.fail("a training epoch began"))
        fit(model, data, epochs=1, batch_size=4, progress=False, **kwargs)
    message = str(err.value)
    assert "\n" not in message
    assert _unchanged(model, before), "an optimizer step happened before the refusal"
    return message


# Wrong data, at the boundary -----------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(8, 28, 28, 1), (8, 32, 32, 3)])
def test_channels_last_images_are_refused_with_the_permute(shape):
    images = torch.rand(shape)
    message = _refused(build_vae("mlp", latent_dim=2, hidden=8), images, r"x\.permute\(0, 3, 1, 2\)")
    assert "channels-last" in message and str(shape) in message and message.startswith("train: ")  # fit's argument
    with pytest.raises(ValueError, match=r"^data: .*channels-last.*x\.permute\(0, 3, 1, 2\)"):
        evaluate_elbo(build_vae("mlp", latent_dim=2, hidden=8), images)
    with pytest.raises(ValueError, match=r"^test: .*x\.permute\(0, 3, 1, 2\)"):
        as_data(images, name="test")
    with pytest.raises(vaelib.DataError, match=r"^images of shape .* x\.permute"):  # ImageData names its own argument
        ImageData(images)
    assert ImageData(images.permute(0, 3, 1, 2)).image_shape == (shape[3], *shape[1:3])


def test_float_images_outside_unit_interval_are_refused_with_the_scaling():
    images = torch.rand(8, 1, 28, 28) * 255
    message = _refused(build_vae("mlp", latent_dim=2, hidden=8), images, r"\[0, 1\].*by 255")
    assert message.startswith("train: float images must lie in [0, 1]")
    with pytest.raises(ValueError, match=r"^data: float images must lie in \[0, 1\].*by 255"):
        iwae_nll(build_vae("mlp", latent_dim=2, hidden=8), images, k=2, progress=False)
    with pytest.raises(ValueError, match=r"^test: .*nan"):  # NaN is outside [0, 1] too
        as_data(torch.full((2, 1, 4, 4), float("nan")), name="test")


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int64, torch.bool])
def test_integer_masks_of_zeros_and_ones_are_refused_with_float(dtype):
    masks = (torch.rand(8, 1, 28, 28) > 0.5).to(dtype)
    message = _refused(build_vae("mlp", latent_dim=2, hidden=8), masks, r"x\.float\(\)")
    assert message.startswith("train: ")
    with pytest.raises(ValueError, match=r"^data: .*x\.float\(\)"):
        reconstruction_error(build_vae("mlp", latent_dim=2, hidden=8), masks)
    # what is meant by it trains (a model's input is floats in [0, 1] either way)
    fit(build_vae("mlp", latent_dim=2, hidden=8), masks.float(), epochs=1, batch_size=4, progress=False)


@needs_mnist
def test_mnist_passes_unchanged():
    raw, labels = vaelib.data.load_mnist_tensors("test")
    test = vaelib.MNIST("test")
    assert torch.equal(test.images, raw) and torch.equal(test.labels, labels)
    assert as_data((raw[:10], labels[:10]), name="test").image_shape == (1, 28, 28)
    static = ImageData(raw, binarize="static", split="test").images
    assert torch.equal(vaelib.MNIST("test", binarize="static").images, static)


# Wrong networks, before the first step ---------------------------------------------------------------

class Encoder(nn.Module):
    """28x28 images -> (mu, logvar), each (B, size)."""

    def __init__(self, size: int = D):
        super().__init__()
        self.net = nn.Linear(784, 2 * size)

    def forward(self, x):
        return self.net(x.flatten(1)).chunk(2, dim=1)


class OneTensorEncoder(Encoder):
    def forward(self, x):
        return self.net(x.flatten(1))  # mu and logvar side by side: forgot the chunk


class Decoder(nn.Module):
    """z (B, D) -> logits (B, 1, 28, 28)."""

    def __init__(self, last: nn.Module | None = None, side: int = 28, flat: bool = False):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(D, side * side), *([last] if last is not None else []))
        self.side, self.flat = side, flat

    def forward(self, z):
        out = self.net(z)
        return out if self.flat else out.view(-1, 1, self.side, self.side)


class FlatDecoder(Decoder):
    def __init__(self):
        super().__init__(flat=True)


class BigDecoder(Decoder):
    def __init__(self):
        super().__init__(side=32)


class SigmoidDecoder(Decoder):
    def __init__(self):
        super().__init__(last=nn.Sigmoid())


def _images(n: int = 8) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def test_an_encoder_of_the_wrong_latent_size_is_refused_by_name():
    model = vaelib.VAE(Encoder(size=3), Decoder(), "bernoulli", latent_dim=D)
    message = _refused(model, _images(), r"encoder Encoder gave mu of shape \(2, 3\)")
    assert f"latent_dim={D}" in message and "latent_dim=3" in message  # the fix: either side
    model = vaelib.VAE(OneTensorEncoder(), Decoder(), "bernoulli", latent_dim=D)
    message = _refused(model, _images(), r"encoder OneTensorEncoder returned a tensor of shape \(2, 8\)")
    assert "(mu, logvar)" in message and "chunk(2, dim=1)" in message


def test_a_flat_decoder_output_is_refused_with_the_view():
    model = vaelib.VAE(Encoder(), FlatDecoder(), "bernoulli", latent_dim=D)
    message = _refused(model, _images(), r"decoder FlatDecoder gave shape \(2, 784\)")
    assert r".view(-1, 1, 28, 28)" in message and "(2, 1, 28, 28)" in message
    assert ".view(-1, C_out, H, W)" in vae.check_networks.__doc__


def test_a_decoder_output_of_another_shape_is_refused_with_both_shapes():
    model = vaelib.VAE(Encoder(), BigDecoder(), "gaussian", latent_dim=D)
    message = _refused(model, _images(), r"decoder BigDecoder gave shape \(2, 1, 32, 32\)")
    assert "gaussian likelihood reads (2, 1, 28, 28)" in message and "(B, 1, 28, 28)" in message


@pytest.mark.parametrize("likelihood", ["bernoulli", "continuous_bernoulli", "gaussian"])
def test_a_sigmoid_at_the_end_of_the_decoder_is_warned_about(likelihood):
    model = vaelib.VAE(Encoder(), SigmoidDecoder(), likelihood, latent_dim=D)
    with pytest.warns(UserWarning) as record:
        fit(model, _images(), epochs=1, batch_size=4, progress=False)
    sigmoid = [w for w in record if "Sigmoid" in str(w.message)]
    assert [str(w.message) for w in sigmoid] == [
        f"a Sigmoid at the end of SigmoidDecoder? the {likelihood} likelihood applies it itself: remove it"]
    assert sigmoid[0].filename == __file__  # pointed at the user's fit(...), not inside vaelib


@pytest.mark.parametrize("arch", ["mlp", "conv"])
@pytest.mark.parametrize("likelihood", sorted(vaelib.likelihoods.LIKELIHOODS))
def test_built_in_networks_pass_silently_and_the_check_leaves_everything_as_it_was(arch, likelihood):
    sizes = {"hidden": 16, **({"channels": 4} if arch == "conv" else {})}
    model = build_vae(arch, latent_dim=D, likelihood=likelihood, num_classes=3, **sizes)
    model.train()
    model.decoder.eval()  # a mode set by the user on one part stays as it was
    before, rng = _weights(model), torch.get_rng_state()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vae.check_networks(model, _images(2), [0, 2])
    assert torch.equal(torch.get_rng_state(), rng) and _unchanged(model, before)
    assert model.training and model.encoder.training and not model.decoder.training


def test_an_untrained_conv_decoder_whose_outputs_are_all_small_and_positive_is_not_taken_for_a_sigmoid():
    # at 64x64 the conv decoder's first outputs often all lie in (0, 1) near z ~ N(0, I) (12 seeds of 20)
    for seed in range(10):
        torch.manual_seed(seed)
        model = build_vae("conv", latent_dim=D, hidden=16, channels=4, image_shape=(1, 64, 64))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            vae.check_networks(model, torch.rand(2, 1, 64, 64))


def test_the_check_leaves_global_randomness_and_batchnorm_statistics_alone():
    class NoisyEncoder(BatchNormEncoder):  # randomness of the user's own, from the global generator
        def forward(self, x):
            return super().forward(x + 0.01 * torch.randn_like(x))

    model = vaelib.VAE(NoisyEncoder(), BatchNormDecoder(), "bernoulli", latent_dim=D).train()
    rng, before = torch.get_rng_state(), _weights(model)
    vae.check_networks(model, _images(2))
    assert torch.equal(torch.get_rng_state(), rng) and _unchanged(model, before)
    assert all(m.training for m in model.modules())



# Labels: an int, a sequence or a tensor, everywhere ----------------------------------------------------

def _cvae():
    torch.manual_seed(0)
    return build_vae("mlp", latent_dim=2, hidden=8, num_classes=10).eval()


# One label for all four images, as an int, a sequence or a tensor; the last, a tensor (B,), is the reference.
FORMS = [3, [3], [3, 3, 3, 3], (3, 3, 3, 3), torch.tensor(3), torch.tensor([3]), torch.full((4,), 3)]
DATA_FORMS = [3, [3, 3, 3, 3], torch.tensor(3), torch.full((4,), 3)]  # a data set's labels: one, or one per image


def _same_for_every_form(f, forms=FORMS) -> bool:
    outs = []
    for y in forms:
        torch.manual_seed(1)  # the one-sample ELBO draws from the global generator
        outs.append(torch.as_tensor(f(y)))
    return all(torch.equal(out, outs[-1]) for out in outs)


def test_labels_as_an_int_a_sequence_or_a_tensor_give_the_same_numbers():
    model, x = _cvae(), (_images(4) > 0.5).float()
    assert _same_for_every_form(lambda y: iwae_bound(model, x, 5, generator=torch.Generator().manual_seed(0), y=y))
    assert _same_for_every_form(lambda y: vaelib.iwae_bound(model, x, 5, y=y))
    assert _same_for_every_form(lambda y: log_importance_weights(model, x, 3, torch.Generator().manual_seed(0), y=y)[0])
    assert _same_for_every_form(lambda y: elbo_terms(model, x, y=y).value)
    assert _same_for_every_form(lambda y: model.elbo_terms(x, y=y).value)
    assert _same_for_every_form(lambda y: model.reconstruct(x, y=y))
    assert _same_for_every_form(lambda y: model.posterior_mean(x, y=y))
    assert _same_for_every_form(lambda y: model.decode_mean(torch.zeros(4, 2), y=y))
    assert _same_for_every_form(lambda y: model.sample(4, y=y, generator=torch.Generator().manual_seed(0)))
    for evaluate in (lambda d: evaluate_elbo(model, d)["elbo"], lambda d: reconstruction_error(model, d)["mse"],
                     lambda d: iwae_nll(model, d, k=3, progress=False)["nll"], lambda d: active_units(model, d)):
        assert _same_for_every_form(lambda y: evaluate((x, y)), DATA_FORMS)
    for plot in (lambda y: vaelib.plotting.plot_manifold(model, n=2, y=y),
                 lambda y: vaelib.plotting.plot_interpolation(model, torch.zeros(2), torch.ones(2), steps=4, y=y)):
        def shown(y):
            fig = plot(y)
            image = torch.as_tensor(fig.axes[0].images[0].get_array())
            plt.close(fig)
            return image
        assert _same_for_every_form(shown)
    with pytest.raises(ValueError, match=r"y must hold 4 labels in 0\.\.9"):
        iwae_bound(model, x, 2, y=[3, 3])


# Modes: eval inside, the mode found afterwards ---------------------------------------------------------

class BatchNormDecoder(Decoder):
    def __init__(self):
        super().__init__()
        self.norm = nn.BatchNorm2d(1)

    def forward(self, z):
        return self.norm(super().forward(z))


class BatchNormEncoder(Encoder):
    def __init__(self):
        super().__init__()
        self.norm = nn.BatchNorm1d(784)

    def forward(self, x):
        return self.net(self.norm(x.flatten(1))).chunk(2, dim=1)


def _bn_model():
    torch.manual_seed(0)
    return vaelib.VAE(BatchNormEncoder(), BatchNormDecoder(), "bernoulli", latent_dim=D, image_shape=(1, 28, 28))


def _stats(model) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}


def test_sample_and_friends_run_in_eval_mode_and_leave_the_mode_and_statistics_as_found():
    model = _bn_model().train()
    stats, x = _stats(model), _images(4)
    samples = model.sample(4, generator=torch.Generator().manual_seed(0))
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(v, stats[k]) for k, v in _stats(model).items())
    with vae.evaluating(model):
        assert torch.equal(samples, model.sample(4, generator=torch.Generator().manual_seed(0)))
    for use in (lambda: model.reconstruct(x), lambda: model.posterior_mean(x),
                lambda: model.decode_mean(torch.zeros(2, D))):
        use()
        assert model.training and all(torch.equal(v, stats[k]) for k, v in _stats(model).items())
    model.eval()
    model.sample(2)
    assert not model.training


@pytest.mark.parametrize("evaluate", [
    lambda m, x: iwae_nll(m, x, k=2, progress=False),
    lambda m, x: reconstruction_error(m, x),
    lambda m, x: evaluate_elbo(m, x),
    lambda m, x: active_units(m, x),
], ids=["iwae_nll", "reconstruction_error", "evaluate_elbo", "active_units"])
def test_evaluation_leaves_a_model_in_train_mode_in_train_mode(evaluate):
    model, x = _bn_model().train(), _images(8)
    model.decoder.norm.eval()  # a part the user froze stays frozen
    stats = _stats(model)
    first = evaluate(model, x)
    assert model.training and model.encoder.training and model.decoder.training and not model.decoder.norm.training
    assert all(torch.equal(v, stats[k]) for k, v in _stats(model).items())
    model.eval()
    assert evaluate(model, x) == first and not model.training  # the same numbers as in eval mode


def test_iwae_bounds_stopped_early_leaves_the_mode_as_found():
    model, x = _bn_model().train(), _images(8)
    batches = iwae_bounds(model, x, k=2, batch_size=2)
    next(batches)  # the caller takes one batch and walks away without closing the generator
    assert model.training and all(m.training for m in model.modules())
    for _ in batches:
        assert model.training
    batches = iwae_bounds(model, x, k=2, batch_size=2)
    next(batches)
    batches.close()
    assert model.training
