"""vaelib.runs from Python: a run's folder and what its checkpoints hold (what ``vaelib train`` and
``vaelib generate`` call), and vaelib.evaluation's resumable evaluation (what ``vaelib evaluate`` calls).

Every case runs on a tiny model and random images: no data set needed.
"""
import matplotlib.pyplot as plt
import pytest
import torch

import vaelib
from vaelib import runs
from vaelib.evaluation import (NonFiniteBounds, bounds_record, combine_bounds, iwae_nll, recorded_nll,
                               shard_indices)
from vaelib.plotting import image_grid


def tiny(**kwargs):
    torch.manual_seed(0)
    return vaelib.build_vae(config=vaelib.VAEConfig(arch="mlp", latent_dim=2, hidden=8, **kwargs))


def images(n=12):
    return vaelib.ImageData(torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0)), binarize="dynamic")


# a run's folder ----------------------------------------------------------------------------------------

def test_a_run_claim_is_a_with_block_that_leaves_no_empty_folder(tmp_path):
    folder = tmp_path / "runs" / "new"
    with runs.RunClaim(folder) as resume:
        assert resume is None and (folder / runs.LOCK_NAME).exists()
    assert not (tmp_path / "runs").exists()  # nothing was written: nothing is left
    folder.mkdir(parents=True)
    (folder / "checkpoint_last.pth").write_bytes(b"")
    with pytest.raises(runs.RunFolderError, match=r"already exists .*\(resume_if_exists=True\)"):
        with runs.RunClaim(folder):
            pass
    with runs.RunClaim(folder, resume_if_exists=True) as resume:
        assert resume == folder / "checkpoint_last.pth"
    assert not (folder / runs.LOCK_NAME).exists()


# what a checkpoint holds --------------------------------------------------------------------------------

def test_stored_data_of_a_version_1_checkpoint_is_mnist_binarized_as_its_flags_said():
    assert runs.stored_data({"format_version": 1, "train_args": {"binarize": "dynamic"}}) == \
        {"dataset": "mnist", "image_shape": [1, 28, 28], "binarize": "dynamic"}
    assert runs.stored_data({"format_version": 1, "train_args": {"binarize": "none"}})["binarize"] is None
    assert runs.stored_data({"format_version": 1})["binarize"] is None


def test_stored_data_reads_a_path_a_loaded_model_or_a_dict(tmp_path):
    path = vaelib.save(tiny(), tmp_path / "m.pth", data=images())
    expected = {"dataset": "images", "image_shape": [1, 28, 28], "binarize": "dynamic"}
    assert runs.stored_data(path) == runs.stored_data(vaelib.load(path)) == expected
    assert runs.stored_data(vaelib.checkpoints.load_checkpoint(path))["dataset"] == "images"
    other = vaelib.save(torch.nn.Linear(784, 2), tmp_path / "other.pth", data=images())  # a module vaelib can't build
    assert runs.stored_data(other) == expected
    with pytest.raises(ValueError, match="not loaded from a checkpoint"):
        runs.stored_data(tiny())


def test_own_images_are_not_loaded_by_name(tmp_path):
    path = vaelib.save(tiny(), tmp_path / "m.pth", data=images())
    with pytest.raises(ValueError, match=r"your own images \('images'\).*dataset=NAME") as caught:
        runs.stored_split(path, "test")
    assert "--" not in str(caught.value)


def test_a_model_rebuilt_to_train_has_the_weights_and_the_record_of_its_run(tmp_path):
    model = tiny(num_classes=10)
    path = vaelib.save(model, tmp_path / "m.pth", epoch=3, train_args={"run_name": "r"})
    rebuilt = runs.model_to_train(path)
    assert rebuilt.training and rebuilt.device.type == "cpu" and rebuilt.num_classes == 10
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), rebuilt.state_dict().values()))
    assert rebuilt.checkpoint["epoch"] == 3 and rebuilt.checkpoint["train_args"] == {"run_name": "r"}


def test_describe_escapes_control_characters_read_from_the_file(tmp_path):
    path = vaelib.save(tiny(), tmp_path / "m.pth", train_args={"run_name": "\x1b]0;owned\x07\x1b[2J", "note": "a\nb"})
    text = runs.describe(path)
    assert text.startswith(f"checkpoint: {path}\n") and "latent size 2" in text and "encoder.fc.weight" in text
    assert "\x1b" not in text and "\x07" not in text and "a\nb" not in text
    assert "run_name: \\x1b]0;owned\\x07\\x1b[2J" in text and "note: a\\nb" in text
    loaded = runs.describe(vaelib.load(path))  # a model: no path to name, the rest the same
    assert loaded == text.split("\n", 1)[1]
    assert runs.printable("ok\tno\x9b") == "ok\\tno\\x9b"


# samples ------------------------------------------------------------------------------------------------

def read_grid(path) -> torch.Tensor:
    """The grid a PNG holds, at the size image_grid makes it (save_image_grid scales it up 4x)."""
    pixels = plt.imread(path)  # (H, W) for a greyscale PNG
    return torch.from_numpy(pixels[::4, ::4] if pixels.ndim == 2 else pixels[::4, ::4, 0]).float()


def test_the_sample_grid_is_model_sample_with_the_same_seed(tmp_path):
    model = tiny().eval()
    path = runs.sample_grid(model, tmp_path / "grid.png", n=6, nrow=3, seed=5, temperature=0.7)
    expected = model.sample(6, temperature=0.7, generator=torch.Generator().manual_seed(5))
    assert (read_grid(path) - image_grid(expected, 3)).abs().max() < 0.01  # up to 8-bit PNG rounding
    saved = vaelib.save(model, tmp_path / "m.pth")  # from the checkpoint's path: the same grid
    again = runs.sample_grid(saved, tmp_path / "again.png", n=6, nrow=3, seed=5, temperature=0.7)
    assert again.read_bytes() == path.read_bytes()


def test_a_conditional_grid_draws_one_digit_or_rows_of_labels(tmp_path):
    model = tiny(num_classes=10).eval()
    assert runs.grid_labels(model, 6, nrow=2).tolist() == [0, 0, 1, 1, 2, 2]
    assert runs.grid_labels(model, 3, digit=7).tolist() == [7, 7, 7]
    assert runs.grid_labels(tiny(), 4) is None
    path = runs.sample_grid(model, tmp_path / "sevens.png", n=4, nrow=2, digit=7)
    expected = model.sample(4, y=torch.full((4,), 7), generator=torch.Generator().manual_seed(0))
    assert (read_grid(path) - image_grid(expected, 2)).abs().max() < 0.01


@pytest.mark.parametrize("kwargs, message", [
    ({"digit": 3}, "digit=3 needs a conditional model"),
    ({"digit": 12, "num_classes": 10}, "digit=12: this model knows labels 0 to 9"),
    ({"temperature": 0.5, "prior_kind": "mog", "prior_components": 2}, "temperature"),
    ({"path": "grid.xyz"}, "unknown image extension"),
])
def test_wrong_sampling_arguments_are_named_before_anything_is_written(kwargs, message, tmp_path):
    model = tiny(**{k: kwargs.pop(k) for k in ("num_classes", "prior_kind", "prior_components") if k in kwargs})
    path = tmp_path / kwargs.pop("path", "grid.png")
    with pytest.raises(ValueError, match=message) as caught:
        runs.sample_grid(model, path, n=4, nrow=2, **kwargs)
    assert "--" not in str(caught.value) and not path.exists()


# the resumable evaluation -------------------------------------------------------------------------------

def test_a_recorded_evaluation_resumes_and_its_shards_combine_to_the_whole(tmp_path):
    model, data, checkpoint = tiny(), images(), tmp_path / "m.pth"
    vaelib.save(model, checkpoint)
    whole = iwae_nll(model, data, k=3, progress=False)
    record = bounds_record(tmp_path / "b.json", checkpoint, data, k=3)
    assert recorded_nll(model, data, 3, record=record, progress=False)["nll"] == pytest.approx(whole["nll"])
    again = bounds_record(tmp_path / "b.json", checkpoint, data, k=3)  # all done: nothing is computed again
    assert len(again.bounds) == len(data)
    assert recorded_nll(model, data, 3, record=again, progress=False)["nll"] == pytest.approx(whole["nll"])
    files = []
    for i in range(2):
        files.append(tmp_path / f"s{i}.json")
        shard = bounds_record(files[-1], checkpoint, data, k=3, shard=(i, 2))
        recorded_nll(model, data, 3, shard_indices(len(data), (i, 2)), shard, progress=False)
    combined = combine_bounds(files)
    assert combined["nll"] == pytest.approx(whole["nll"]) and combined["files"] == 2 and combined["n"] == len(data)
    with pytest.raises(ValueError, match="cover 6 of 12 images"):
        combine_bounds(files[:1])
    with pytest.raises(ValueError, match="holds bounds of another evaluation"):
        bounds_record(tmp_path / "b.json", checkpoint, data, k=4)


def test_an_empty_shard_and_bounds_that_are_not_finite_are_refused(tmp_path, monkeypatch):
    assert shard_indices(5, (1, 2)) == [1, 3]
    with pytest.raises(ValueError, match="shard 7/10 of 5 images holds no image"):
        shard_indices(5, (7, 10))

    def nan_bounds(model, data, k, seed=0, batch_size=None, indices=None, precision="fp32"):
        yield torch.tensor(indices), torch.full((len(indices),), float("nan"))
    monkeypatch.setattr(vaelib.evaluation, "iwae_bounds", nan_bounds)
    with pytest.raises(NonFiniteBounds, match="12 of 12 per-image bounds from the model are not finite"):
        recorded_nll(tiny(), images(), 2, progress=False)
