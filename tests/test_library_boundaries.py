"""vaelib's public functions check their arguments once, at the boundary, before any work: a wrong one is a
one-line ValueError that names the argument, what was given and the fix, never a raw torch error later
(after a whole epoch of training), nor a run that trains silently on nonsense.

Each case runs on 32 random images in MNIST's shape: no data set needed.
"""
import pytest
import torch

from vaelib import build_vae, fit
from vaelib.callbacks import Callback
from vaelib.data import ImageData
from vaelib.evaluation import active_units, evaluate_elbo, iwae_bounds, iwae_nll, reconstruction_error
from vaelib.objectives import ELBOObjective, IWAEObjective
from vaelib.schedules import Constant, LinearWarmup, WarmupCosine


@pytest.fixture
def images():
    """32 random 'images' in the shape of MNIST."""
    return ImageData(torch.rand(32, 1, 28, 28, generator=torch.Generator().manual_seed(0)))


class Steps(Callback):
    """Counts the optimizer steps that fit took."""

    def __init__(self):
        self.steps = 0

    def on_batch_end(self, run, estimate):
        self.steps += 1


def model():
    torch.manual_seed(0)
    return build_vae("mlp", latent_dim=2, hidden=8)


def refused_before_the_first_step(match, **kwargs):
    """fit(**kwargs) is a one-line ValueError matching ``match``, raised before any optimizer step."""
    m, steps = model(), Steps()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    with pytest.raises(ValueError, match=match) as caught:
        fit(m, epochs=1, batch_size=8, device="cpu", progress=False, callbacks=[steps], **kwargs)
    assert "\n" not in str(caught.value)
    assert steps.steps == 0 and all(torch.equal(v, before[k]) for k, v in m.state_dict().items())
    return str(caught.value)


# Images of the wrong shape ---------------------------------------------------------------------------

WRONG = {"channels": (3, 28, 28), "size": (1, 32, 32)}
EVALUATIONS = {
    "evaluate_elbo": lambda m, d: evaluate_elbo(m, d),
    "iwae_nll": lambda m, d: iwae_nll(m, d, k=2, progress=False),
    "iwae_bounds": lambda m, d: next(iwae_bounds(m, d, k=2)),
    "reconstruction_error": lambda m, d: reconstruction_error(m, d),
    "active_units": lambda m, d: active_units(m, d),
}


@pytest.mark.parametrize("wrong", WRONG)
@pytest.mark.parametrize("call", EVALUATIONS)
def test_an_evaluation_of_images_of_the_wrong_shape_names_both_shapes(call, wrong):
    data = torch.rand(8, *WRONG[wrong])
    with pytest.raises(ValueError) as caught:
        EVALUATIONS[call](model(), data)
    assert str(caught.value) == (f"data holds images of shape {WRONG[wrong]} (C, H, W), the model takes (1, 28, 28): "
                                 f"pass images of the model's shape (same channels; resize with image_size=)")


@pytest.mark.parametrize("shape, fix", [((4, 3, 28, 28), "pass images of the model's shape"),
                                        ((4, 1, 32, 32), "pass images of the model's shape"),
                                        ((1, 28, 28), "add the batch dimension, x[None]")],
                         ids=["channels", "size", "one image"])
def test_reconstruct_of_images_of_the_wrong_shape_names_both_shapes(shape, fix):
    with pytest.raises(ValueError) as caught:
        model().reconstruct(torch.rand(*shape))
    assert str(caught.value) == f"x must be a batch of images (B, 1, 28, 28) for this model, got shape {shape}: {fix}"


def test_reconstruct_and_evaluation_of_the_right_shape_still_work(images):
    m = model()
    assert m.reconstruct(images.images[:4]).shape == (4, 1, 28, 28)
    assert evaluate_elbo(m, images)["n"] == 32


@pytest.mark.parametrize("wrong", WRONG)
def test_fit_checks_its_test_set_before_the_first_step(wrong, images):
    message = refused_before_the_first_step("^test holds images", train=images, test=torch.rand(8, *WRONG[wrong]))
    assert f"of shape {WRONG[wrong]}" in message and "the model takes (1, 28, 28)" in message


# fit's other arguments ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    (dict(lr_schedule="linear"),
     r"^lr_schedule must be 'constant', 'cosine' or a function f\(step\) .*WarmupCosine\(total_steps\).*got 'linear'$"),
    (dict(lr_schedule=WarmupCosine),
     r"^lr_schedule=WarmupCosine is a class: pass an instance .*\.WarmupCosine\(total_steps\)$"),
    (dict(objective="iwae"),
     r"^objective must be an objective: a function objective\(model, x, y, step\) .*IWAEObjective\(k=5\).*got 'iwae'$"),
    (dict(objective=IWAEObjective), r"^objective=IWAEObjective is a class: pass an instance"),
    (dict(beta=-1), r"^beta must be a number >= 0 .* got -1$"),
    (dict(beta=float("nan")), r"^beta must be a number >= 0"),
    (dict(beta="linear"),
     r"^beta must be a number >= 0 .* or a schedule beta\(step\) from vaelib\.schedules, got 'linear'$"),
    (dict(beta=Constant(-1)),
     r"^beta's schedule Constant\(beta=-1\) starts at beta\(0\) = -1\.0: a schedule must give numbers >= 0"),
    (dict(beta=LinearWarmup(-1.0, 100)), r"^beta's schedule LinearWarmup\(beta_max=-1.* starts at beta\(0\) = -1\.0"),
    (dict(beta=LinearWarmup), r"^beta=LinearWarmup is a class: pass a schedule made from it"),
], ids=lambda v: ",".join(f"{k}={getattr(x, '__name__', x)!r}" for k, x in v.items()) if isinstance(v, dict) else "")
def test_a_wrong_fit_argument_is_refused_before_the_first_step(kwargs, match, images):
    refused_before_the_first_step(match, train=images, **kwargs)


def test_beta_zero_and_the_right_functions_still_train(images):
    for kwargs in (dict(beta=0.0), dict(lr_schedule=WarmupCosine(4, 1), objective=ELBOObjective(LinearWarmup(1.0, 2)))):
        steps = Steps()
        fit(model(), images, epochs=1, batch_size=8, device="cpu", progress=False, callbacks=[steps], **kwargs)
        assert steps.steps == 4, kwargs


def test_an_objective_whose_beta_turns_negative_later_stops_there(images):
    """A schedule whose first value is fine cannot be checked further in advance: its first negative value stops it."""
    steps = Steps()
    with pytest.raises(ValueError, match=r"^beta's schedule .* gives beta = -1.0 at step 2: beta must stay >= 0$"):
        fit(model(), images, epochs=1, batch_size=8, device="cpu", progress=False, callbacks=[steps],
            beta=lambda step: 1.0 if step < 2 else -1.0)
    assert steps.steps == 2


@pytest.mark.parametrize("below", [False, True], ids=["a file", "below a file"])
def test_a_run_dir_that_is_a_file_is_refused_before_the_first_step(below, images, tmp_path):
    file = tmp_path / "notes.txt"
    file.write_text("mine")
    run_dir = file / "run" if below else file
    where = f"lies below the file {file}" if below else "is a file"
    refused_before_the_first_step(f"^run_dir {run_dir} {where}, not a folder: pass a folder", train=images,
                                  run_dir=run_dir)
    assert file.read_text() == "mine" and sorted(tmp_path.iterdir()) == [file]
