"""The checks of notebook 11 accept a right answer and reject known wrong ones with the intended hint."""
import pytest
import torch
import torch.nn.functional as F

from vaelib.course import checks

from .conftest import assert_catches


def _count(row, col, k, height, width, centre=False, right=False, below=False, clip=True):
    r, n = k // 2, 0
    for i in range(row - r, row + r + 1):
        for j in range(col - r, col + r + 1):
            if clip and not (0 <= i < height and 0 <= j < width):
                continue
            if i < row or (i == row and j < col) or (centre and (i, j) == (row, col)) \
                    or (right and i == row and j > col) or (below and i > row):
                n += 1
    return n


def right_pixels_seen(row, col, kernel_size, height, width):
    return _count(row, col, kernel_size, height, width)


def right_pixels_seen_with_a_mask(row, col, kernel_size, height, width):
    """The same through a mask and a padded image, as a learner would compute it."""
    r = kernel_size // 2
    mask = torch.ones(kernel_size, kernel_size)
    mask[r, r:] = 0
    mask[r + 1:] = 0
    inside = F.pad(torch.ones(height, width), (r, r, r, r))[row:row + kernel_size, col:col + kernel_size]
    return int((mask * inside).sum())


@pytest.mark.parametrize("fn, hint", [
    (lambda r, c, k, h, w: (k * k - 1) // 2, "outside the image"),
    (lambda r, c, k, h, w: _count(r, c, k, h, w, centre=True), "you count the pixel itself"),
    (lambda r, c, k, h, w: _count(r, c, k, h, w, right=True), "pixels to the right in the same row"),
    (lambda r, c, k, h, w: _count(r, c, k, h, w, centre=True, right=True, below=True), "you count the whole window"),
    (lambda r, c, k, h, w: _count(c, r, k, w, h), "column by column"),
    (lambda r, c, k, h, w: _count(r, c, k, h, w) - min(c, k // 2), "Hint: for each pixel of the k x k window"),
])
def test_pixels_seen(fn, hint):
    assert_catches(checks.check_pixels_seen, right_pixels_seen, fn, hint,
                   passed="correct in the middle of the image, at its borders and for other window sizes",
                   also_right=[right_pixels_seen_with_a_mask])


def right_sampler(logits_fn, shape, generator):
    x = torch.zeros(shape)
    for r in range(shape[2]):
        for c in range(shape[3]):
            p = torch.sigmoid(logits_fn(x)[:, :, r, c])
            x[:, :, r, c] = torch.bernoulli(p, generator=generator)
    return x


def all_at_once(logits_fn, shape, generator):
    return torch.bernoulli(torch.sigmoid(logits_fn(torch.zeros(shape))), generator=generator)


def never_written_back(logits_fn, shape, generator):
    x, out = torch.zeros(shape), torch.zeros(shape)
    for r in range(shape[2]):
        for c in range(shape[3]):
            out[:, :, r, c] = torch.bernoulli(torch.sigmoid(logits_fn(x)[:, :, r, c]), generator=generator)
    return out


def column_by_column(logits_fn, shape, generator):
    x = torch.zeros(shape)
    for c in range(shape[3]):
        for r in range(shape[2]):
            x[:, :, r, c] = torch.bernoulli(torch.sigmoid(logits_fn(x)[:, :, r, c]), generator=generator)
    return x


def most_likely(logits_fn, shape, generator):
    x = torch.zeros(shape)
    for r in range(shape[2]):
        for c in range(shape[3]):
            x[:, :, r, c] = (logits_fn(x)[:, :, r, c] > 0).float()
    return x


def image_by_image(logits_fn, shape, generator):
    x = torch.zeros(shape)
    for b in range(shape[0]):
        for r in range(shape[2]):
            for c in range(shape[3]):
                x[b, :, r, c] = torch.bernoulli(torch.sigmoid(logits_fn(x)[b, :, r, c]), generator=generator)
    return x


def no_generator(logits_fn, shape, generator):
    x = torch.zeros(shape)
    for r in range(shape[2]):
        for c in range(shape[3]):
            x[:, :, r, c] = torch.bernoulli(torch.sigmoid(logits_fn(x)[:, :, r, c]))
    return x


def stores_probabilities(logits_fn, shape, generator):
    x = torch.zeros(shape)
    for r in range(shape[2]):
        for c in range(shape[3]):
            p = torch.sigmoid(logits_fn(x)[:, :, r, c])
            x[:, :, r, c] = torch.where((p > 0.99) | (p < 0.01), p.round(), p)
    return x


@pytest.mark.parametrize("fn, hint", [
    (all_at_once, "you called logits_fn once"),
    (never_written_back, "write each drawn pixel into x"),
    (column_by_column, "you go column by column"),
    (most_likely, "you take the most likely value"),
    (image_by_image, "once per pixel *and image*"),
    (no_generator, "pass generator=generator"),
    (stores_probabilities, "values other than 0 and 1"),
])
def test_autoregressive_sampler(fn, hint):
    assert_catches(checks.check_autoregressive_sampler, right_sampler, fn, hint,
                   passed="raster order, 20 calls for 4x5 images, and random, reproducible draws")


def _logits(model, z, x):
    params = model.decoder(z)
    return model.likelihood.logits(params, x) if model.likelihood.name == "pixelcnn" else params


def right_per_pixel_nll(model, z, x):
    return F.binary_cross_entropy_with_logits(_logits(model, z, x), x, reduction="none")


def right_per_pixel_nll_from_probabilities(model, z, x):
    return F.binary_cross_entropy(torch.sigmoid(_logits(model, z, x)), x, reduction="none")


@pytest.mark.parametrize("fn, hint", [
    (lambda m, z, x: -right_per_pixel_nll(m, z, x), "that is log p, not -log p"),
    (lambda m, z, x: right_per_pixel_nll(m, z, x).sum(dim=(1, 2, 3)), "one value per image"),
    (lambda m, z, x: F.binary_cross_entropy_with_logits(m.likelihood.logits(m.decoder(z), torch.zeros_like(x))
                                                        if m.likelihood.name == "pixelcnn" else m.decoder(z), x,
                                                        reduction="none"), "teacher forcing"),
    (lambda m, z, x: F.binary_cross_entropy_with_logits(m.decoder(z), x.expand_as(m.decoder(z)), reduction="none"),
     "it is a feature map"),
    (lambda m, z, x: F.binary_cross_entropy_with_logits(m.likelihood.logits(m.decoder(z), x), x, reduction="none"),
     "its decoder's output *is* the logits"),
    (lambda m, z, x: right_per_pixel_nll(m, z, x).flip(-1), "the sums per image are right"),
])
def test_per_pixel_nll(fn, hint):
    assert_catches(checks.check_per_pixel_nll, right_per_pixel_nll, fn, hint,
                   passed="correct for the pixelcnn and the factorized Bernoulli decoder; each map sums to -log p(x|z)",
                   also_right=[right_per_pixel_nll_from_probabilities])


def test_the_map_sums_to_the_likelihood():
    """The reference map is what the library's log_prob sums up: the check asks for the right thing."""
    from vaelib.course.checks.autoregressive import _reference_nll, _small_models
    models, x, z = _small_models()
    with torch.no_grad():
        for model in models.values():
            total = _reference_nll(model, z, x).sum(dim=(1, 2, 3))
            assert torch.allclose(total, -model.decode(z).log_prob(x), atol=1e-3)


def test_unsolved_stubs_stop_the_notebook():
    def todo(*args):
        raise NotImplementedError()
    for check in (checks.check_pixels_seen, checks.check_autoregressive_sampler, checks.check_per_pixel_nll):
        with pytest.raises(NotImplementedError):
            check(todo)



def _gated_stack(first_centre=False, masked_gates=True, use_layers=True, use_params=True):
    """A gated stack as notebook 11's exercise 5 asks for, or one with a usual slip."""
    from torch import nn

    from vaelib.autoregressive import MaskedConv2d

    class Gate(nn.Module):
        def __init__(self, features):
            super().__init__()
            self.conv = (MaskedConv2d(features, 2 * features, 3, include_centre=True) if masked_gates
                         else nn.Conv2d(features, 2 * features, 3, padding=1))
            self.condition = nn.Conv2d(features, 2 * features, 1)
            self.out = nn.Conv2d(features, features, 1)

        def forward(self, h, params):
            a, b = (self.conv(h) + (self.condition(params) if use_params else 0)).chunk(2, dim=1)
            return h + self.out(torch.tanh(a) * torch.sigmoid(b))

    class Stack(nn.Module):
        def __init__(self, features, layers):
            super().__init__()
            self.window = MaskedConv2d(1, features, 7, include_centre=first_centre)
            self.gates = nn.ModuleList(Gate(features) for _ in range(layers - 1 if use_layers else 0))

        def forward(self, x, params):
            h = self.window(x) + (params if use_params else 0)
            for gate in self.gates:
                h = gate(h, params)
            return h

    return Stack


@pytest.mark.parametrize("fn, hint", [
    (_gated_stack(first_centre=True), "depends on that pixel itself"),
    (_gated_stack(masked_gates=False), "pixels after it in raster order"),
    (_gated_stack(use_layers=False), "no further up than the 7x7 window"),
    (_gated_stack(use_params=False), "ignores z's feature map"),
    (lambda features, layers: (lambda x, params: params[:, :, :-1]), "expected h of shape"),
])
def test_gated_stack(fn, hint):
    assert_catches(checks.check_gated_stack, _gated_stack(), fn, hint,
                   passed="causal, deeper than the window with 3 layers, and z's features read at every pixel")


def test_gated_stack_accepts_vaelibs_own_layers_and_leaves_the_random_generator():
    from torch import nn

    from vaelib.autoregressive import GatedMaskedLayer, MaskedConv2d

    class WithVaelib(nn.Module):
        def __init__(self, features, layers):
            super().__init__()
            self.window = MaskedConv2d(1, features, 7)
            self.gates = nn.ModuleList(GatedMaskedLayer(features) for _ in range(layers - 1))

        def forward(self, x, params):
            h = self.window(x) + params
            for gate in self.gates:
                h = gate(h, params)
            return h

    state = torch.random.get_rng_state()
    assert_catches(checks.check_gated_stack, WithVaelib, _gated_stack(first_centre=True), "itself")
    assert torch.equal(state, torch.random.get_rng_state())
