import math
import warnings

import pytest
import torch

from vaelib import TrainingDiverged, build_vae, fit, load, load_checkpoint, training
from vaelib.callbacks import CollapseWarning, EpochEnd
from vaelib.objectives import ELBOObjective, IWAEObjective
from vaelib.schedules import LinearWarmup

from .conftest import needs_mnist

pytestmark = needs_mnist


def test_training_improves_the_test_elbo_and_records_history(small_train, small_test):
    torch.manual_seed(0)
    model = build_vae("mlp", latent_dim=4, hidden=64)
    history = fit(model, small_train, small_test, epochs=3, device="cpu", progress=False,
                  beta=LinearWarmup(1.0, 20))
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert history[-1]["test_elbo"] > history[0]["test_elbo"] + 5
    assert history["beta"][0] < 1.0 == history["beta"][-1]
    for key in ("train_elbo", "train_kl", "test_reconstruction", "active_units", "seconds"):
        assert all(row[key] is not None and math.isfinite(row[key]) for row in history)


def test_resume_repeats_an_uninterrupted_run(small_train, small_test, tmp_path):
    def fresh():
        torch.manual_seed(0)
        return build_vae("mlp", latent_dim=4, hidden=32)

    straight = fresh()
    fit(straight, small_train, small_test, epochs=2, device="cpu", progress=False, seed=3)
    first = fresh()
    fit(first, small_train, small_test, epochs=1, device="cpu", progress=False, seed=3, run_dir=tmp_path)
    resumed = fresh()
    history = fit(resumed, small_train, small_test, epochs=2, device="cpu", progress=False, seed=3,
                  run_dir=tmp_path, resume_from=tmp_path / "checkpoint_last.pth")
    assert [row["epoch"] for row in history] == [1, 2]
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)
    assert load(tmp_path / "checkpoint_last.pth").checkpoint["epoch"] == 2
    assert (tmp_path / "history.csv").read_text().count("\n") == 3


def _strided_weights(model):
    """The convolution weights whose layout channels-last changes (those with more than one input channel)."""
    return [p for p in model.parameters() if p.dim() == 4 and p.shape[1] > 1]


def test_a_conv_model_trains_channels_last_on_the_cpu_and_comes_back_contiguous(small_train):
    torch.manual_seed(0)
    model = build_vae("conv", latent_dim=4, channels=8, hidden=32)
    during = []
    fit(model, small_train, epochs=1, device="cpu", progress=False, callbacks=[EpochEnd(lambda record, m: during.extend(
        p.is_contiguous(memory_format=torch.channels_last) for p in _strided_weights(m)))])
    assert during and all(during)
    assert all(p.is_contiguous() for p in model.parameters())


def test_resuming_a_checkpoint_saved_in_the_other_layout_repeats_the_run(small_train, small_test, tmp_path,
                                                                         monkeypatch):
    """Adam's moments saved contiguous (as on a GPU) meet channels-last weights: fused Adam needs them alike."""
    def fresh():
        torch.manual_seed(0)
        return build_vae("conv", latent_dim=4, channels=8, hidden=32)

    straight = fresh()
    fit(straight, small_train, small_test, epochs=2, device="cpu", progress=False, seed=3)
    with monkeypatch.context() as patch:
        patch.setattr(training, "training_layout", lambda model, device: torch.contiguous_format)
        fit(fresh(), small_train, small_test, epochs=1, device="cpu", progress=False, seed=3, run_dir=tmp_path)
    saved = load_checkpoint(tmp_path / "checkpoint_last.pth")["optimizer"]["state"]
    assert any(v.dim() == 4 and v.shape[1] > 1 and v.is_contiguous() for s in saved.values() for v in s.values()
               if torch.is_tensor(v))
    resumed = fresh()
    fit(resumed, small_train, small_test, epochs=2, device="cpu", progress=False, seed=3, run_dir=tmp_path,
        resume_from=tmp_path / "checkpoint_last.pth")
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4, msg=k)


def test_resuming_with_a_new_learning_rate_uses_it(small_train, small_test, tmp_path):
    torch.manual_seed(0)
    fit(build_vae("mlp", latent_dim=4, hidden=32), small_train, small_test, epochs=1, device="cpu",
        progress=False, run_dir=tmp_path, lr=1e-3)
    resumed = build_vae("mlp", latent_dim=4, hidden=32)
    fit(resumed, small_train, small_test, epochs=2, device="cpu", progress=False, run_dir=tmp_path, lr=1e-4,
        resume_from=tmp_path / "checkpoint_last.pth")
    saved = load_checkpoint(tmp_path / "checkpoint_last.pth")["optimizer"]["param_groups"]
    assert [group["lr"] for group in saved] == [1e-4]


def test_nan_guard_stops_and_keeps_the_last_good_checkpoint(small_train, small_test, tmp_path):
    torch.manual_seed(0)
    model = build_vae("mlp", latent_dim=4, hidden=32)
    fit(model, small_train, small_test, epochs=1, device="cpu", progress=False, run_dir=tmp_path)
    saved = (tmp_path / "checkpoint_last.pth").read_bytes()
    good = {k: v.clone() for k, v in model.state_dict().items()}

    def poison(module, inputs, output):  # the decoder starts producing NaN in epoch 2
        return output * float("nan")

    model.decoder.out.register_forward_hook(poison)
    with pytest.raises(TrainingDiverged, match="loss became nan at epoch 2"):
        fit(model, small_train, small_test, epochs=2, device="cpu", progress=False, run_dir=tmp_path,
            resume_from=tmp_path / "checkpoint_last.pth")
    assert (tmp_path / "checkpoint_last.pth").read_bytes() == saved
    for k, v in model.state_dict().items():
        assert torch.equal(v, good[k]), k


def test_posterior_collapse_is_detected(small_train, small_test, tmp_path):
    torch.manual_seed(0)
    model = build_vae("mlp", latent_dim=4, hidden=32)
    with pytest.warns(UserWarning, match="posterior collapse"):
        fit(model, small_train, small_test, epochs=1, beta=50.0, device="cpu", progress=False,
            run_dir=tmp_path, callbacks=[CollapseWarning(0.05)])
    assert (tmp_path / "checkpoint_posterior_collapse.pth").exists()


def test_gradient_clipping_shrinks_the_gradient_adam_sees(small_train):
    # Adam divides a gradient by its own running size, so its first step moves each weight by about lr
    # whatever the gradient's scale, unless the gradient is far below Adam's eps (1e-8). Clipping the
    # norm to 1e-12 makes it so: the step shrinks by about 1e-4. Without clipping it is about lr.
    def largest_move(clip):
        torch.manual_seed(0)
        model = build_vae("mlp", latent_dim=4, hidden=32)
        before = [p.detach().clone() for p in model.parameters()]
        fit(model, small_train[:64], epochs=1, lr=1e-2, clip_grad=clip, device="cpu", progress=False, batch_size=64)
        return max((a - b).abs().max().item() for a, b in zip(before, model.parameters()))

    assert largest_move(None) > 5e-3
    assert largest_move(1e-12) < 1e-5


def test_clipped_and_skipped_steps_are_counted_and_a_stalled_run_stops(small_train):
    def run(**settings):
        torch.manual_seed(0)
        model = build_vae("mlp", latent_dim=4, hidden=32)
        before = [p.detach().clone() for p in model.parameters()]
        history = fit(model, small_train[:256], epochs=2, device="cpu", progress=False, batch_size=64, **settings)
        return history, any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))

    history, moved = run(clip_grad=1e-6)                  # every step's norm is above it: 4 clipped per epoch
    assert [r["clipped_steps"] for r in history] == [4, 4] and "skipped_steps" not in history[-1] and moved
    history, moved = run(clip_grad=1e9, skip_grad=1e9)    # none above them
    assert [(r["clipped_steps"], r["skipped_steps"]) for r in history] == [(0, 0), (0, 0)] and moved
    history, _ = run()
    assert "clipped_steps" not in history[-1] and "skipped_steps" not in history[-1]
    # a threshold below every norm skips every update: the weights never move, and the run stops after one epoch
    torch.manual_seed(0)
    model = build_vae("mlp", latent_dim=4, hidden=32)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(TrainingDiverged, match=r"every one of epoch 1's 4 updates was skipped: their gradient norms "
                                               r"ran from .* above skip_grad=1e-06; training had stalled"):
        fit(model, small_train[:256], epochs=2, device="cpu", progress=False, batch_size=64, skip_grad=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_bf16_and_compile_options_train_and_fall_back(small_train, monkeypatch):
    torch.manual_seed(0)
    with warnings.catch_warnings():  # the emulated-bf16 warning is tested in test_precision.py
        warnings.filterwarnings("ignore", message="precision bf16")
        history = fit(build_vae("mlp", latent_dim=4, hidden=32), small_train, epochs=1, progress=False, device="cpu",
                      precision="bf16")
    assert math.isfinite(history[-1]["train_elbo"]) and history[-1]["train_elbo"] < 0
    with pytest.raises(ValueError, match="precision"):
        fit(build_vae("mlp", latent_dim=4, hidden=32), small_train, epochs=1, precision="fp16")

    def broken_compile(fn, **kwargs):
        def run(*args):
            raise RuntimeError("no C++ compiler found")
        return run
    monkeypatch.setattr(torch, "compile", broken_compile)
    torch.manual_seed(0)
    eager = fit(build_vae("mlp", latent_dim=4, hidden=32), small_train, epochs=1, progress=False, device="cpu")
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="torch.compile failed .*no C\\+\\+ compiler"):
        fallback = fit(build_vae("mlp", latent_dim=4, hidden=32), small_train, epochs=1, progress=False,
                       device="cpu", objective=ELBOObjective(compile=True))
    assert fallback[-1]["train_elbo"] == pytest.approx(eager[-1]["train_elbo"], abs=1e-4)


def test_compiled_training_matches_eager(small_train, monkeypatch):
    # Compiling takes a few seconds; where it cannot (no C++ compiler) fit warns and trains eagerly.
    # Compiled code draws its own random numbers unless told to use eager's: then the runs coincide.
    import torch._inductor.config
    monkeypatch.setattr(torch._inductor.config, "fallback_random", True)
    results = []
    for compile_ in (False, True):
        torch.manual_seed(0)
        history = fit(build_vae("mlp", latent_dim=4, hidden=32), small_train, epochs=2, progress=False,
                      device="cpu", objective=ELBOObjective(compile=compile_))
        results.append(history[-1]["train_elbo"])
    assert results[1] == pytest.approx(results[0], abs=0.01)


def test_iwae_training_maximizes_the_k_sample_bound(small_train, small_test):
    torch.manual_seed(0)
    history = fit(build_vae("mlp", latent_dim=4, hidden=32), small_train, small_test, epochs=2, progress=False,
                  device="cpu", objective=IWAEObjective(5))
    last = history[-1]
    # the record names what was trained: L_5, not an ELBO with a made-up zero KL
    assert "train_elbo" not in last and "train_kl" not in last and "beta" not in last
    assert math.isfinite(last["train_iwae_bound"]) and last["train_iwae_bound"] > history[0]["train_iwae_bound"]
    assert last["test_elbo"] > -545
    for bad in (dict(beta=2.0), dict(beta=LinearWarmup(1.0, 10))):  # L_k has no beta
        with pytest.raises(ValueError, match="objective= and beta="):
            fit(build_vae("mlp", latent_dim=4, hidden=32), small_train, epochs=1, objective=IWAEObjective(5), **bad)
    with pytest.raises(ValueError, match="k must be"):
        IWAEObjective(0)


@pytest.fixture
def torch_validates(monkeypatch):
    """torch's default: torch.distributions validates its arguments. torch.compile switches that off for the
    whole process (torch._dynamo's TorchPatcher), so after an earlier test compiled, these would test nothing."""
    monkeypatch.setattr(torch.distributions.Distribution, "_validate_args", True)


@pytest.mark.usefixtures("torch_validates")
@pytest.mark.parametrize("where", ["training step", "test evaluation"])
def test_a_step_torch_distributions_refuses_is_stopped_like_a_nan_loss(where, small_train, small_test, tmp_path):
    """A diverging encoder fails inside torch.distributions (Normal refuses a scale of 0) before any loss
    exists for the NaN guard to read: fit says so in the guard's one line and puts the good weights back."""
    torch.manual_seed(0)
    model = build_vae("mlp", latent_dim=4, hidden=32)
    fit(model, small_train[:256], small_test[:64], epochs=1, device="cpu", progress=False, run_dir=tmp_path)
    saved = (tmp_path / "checkpoint_last.pth").read_bytes()
    good = {k: v.clone() for k, v in model.state_dict().items()}

    def collapse_the_scale(module, inputs, output):  # logvar - 1e4: exp(logvar / 2) underflows to 0
        return output - 1e4 if (where == "training step") == module.training else output

    model.encoder.logvar.register_forward_hook(collapse_the_scale)
    with pytest.raises(TrainingDiverged) as caught:
        fit(model, small_train[:256], small_test[:64], epochs=2, device="cpu", progress=False, run_dir=tmp_path,
            resume_from=tmp_path / "checkpoint_last.pth")
    message = str(caught.value)
    # 256 images, 2 steps an epoch: the first step of epoch 2, or the evaluation after its last
    during, step = ("", 3) if where == "training step" else (" in the test evaluation", 4)
    assert message.startswith(f"Normal's scale became NaN, infinite or out of range{during} at epoch 2, step {step}: "
                              f"weights restored to the end of epoch 1; "
                              f"the checkpoints in {tmp_path} are the last good ones")
    assert "lower learning rate" in message and "\n" not in message
    assert caught.value.__suppress_context__  # Python's traceback shows this line, not torch's tensor dump
    assert (tmp_path / "checkpoint_last.pth").read_bytes() == saved
    for k, v in model.state_dict().items():
        assert torch.equal(v, good[k]), k


@pytest.mark.usefixtures("torch_validates")
def test_a_huge_learning_rate_ends_in_the_guards_one_line_from_the_command_line(tmp_path, capsys):
    """The issue's reproduction: `vaelib train x --learning_rate 1e6` printed torch's 8-line tensor dump."""
    from vaelib.cli import main
    capsys.readouterr()
    code = main(["train", "x", "--runs_dir", str(tmp_path), "--learning_rate", "1e6", "--arch", "mlp",
                 "--hidden_units", "16", "--hidden_dim", "2", "--subset", "200", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert "became NaN, infinite or out of range at epoch 1" in err and "weights restored" in err, err


@pytest.mark.usefixtures("torch_validates")
def test_other_value_errors_inside_a_step_are_left_alone(small_train):
    """Only torch's refusal of invalid values means divergence; its shape error is a bug, shown as it is."""
    def wrong_size(model, x, y, step):
        model.encode(x).log_prob(torch.zeros(len(x), model.latent_dim + 1))  # z one dimension too long

    with pytest.raises(ValueError, match="not broadcastable"):
        fit(build_vae("mlp", latent_dim=4, hidden=32), small_train[:64], epochs=1, device="cpu", progress=False,
            objective=wrong_size)


@pytest.mark.usefixtures("torch_validates")
def test_a_value_outside_a_distributions_support_is_named_in_the_guards_line(small_train):
    """z turned NaN reaches the prior's log_prob: torch's other refusal of invalid values, named as one."""
    def nan_z(model, x, y, step):
        model.prior().log_prob(torch.full((len(x), model.latent_dim), float("nan")))

    with pytest.raises(TrainingDiverged, match="^a value given to Normal became NaN, infinite or left its support at "
                                               "epoch 1, step 1: weights restored to the end of epoch 0. Try"):
        fit(build_vae("mlp", latent_dim=4, hidden=32), small_train[:64], epochs=1, device="cpu", progress=False,
            objective=nan_z)
