"""TensorBoard logs, read back with TensorBoard's own event reader (skipped without the package)."""
import pytest
import torch

from vaelib import build_vae, fit
from vaelib.cli import main

from .conftest import needs_mnist

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator",
                                        reason="tensorboard is not installed: pip install -e '.[tensorboard]'")


def read(log_dir):
    events = event_accumulator.EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return events


def test_the_callback_writes_scalars_and_sample_grids_per_epoch(tmp_path):
    from vaelib.callbacks import TensorBoard
    torch.manual_seed(0)
    model = build_vae("mlp", latent_dim=2, hidden=16, image_shape=(1, 8, 8))
    images = torch.rand(64, 1, 8, 8)
    history = fit(model, images, images[:16], epochs=3, batch_size=16, progress=False,
                  callbacks=[TensorBoard(tmp_path / "tb", n=4)])
    events = read(tmp_path / "tb")
    tags = set(events.Tags()["scalars"])
    assert {"train/elbo", "train/reconstruction", "train/kl", "test/elbo", "test/kl", "beta", "active_units"} <= tags
    elbo = events.Scalars("test/elbo")
    assert [e.step for e in elbo] == [1, 2, 3]
    assert [e.value for e in elbo] == pytest.approx(history["test_elbo"], rel=1e-6)
    grids = events.Images("samples")
    assert [g.step for g in grids] == [1, 2, 3] and grids[0].width > 8


@needs_mnist
def test_train_with_tensorboard_logs_the_run(tmp_path):
    runs = tmp_path / "runs"
    assert main(["train", "tb", "--runs_dir", str(runs), "--subset", "200", "--num_epochs", "2", "--arch", "mlp",
                 "--hidden_units", "16", "--quiet", "--tensorboard"]) == 0
    events = read(runs / "tb" / "tensorboard")
    assert [e.step for e in events.Scalars("train/elbo")] == [1, 2]
    assert len(events.Images("samples")) == 2
