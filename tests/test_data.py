import shutil

import pytest
import torch

from vaelib.data import MNIST, DataError, data_root

from .conftest import needs_mnist

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


@needs_mnist
def test_full_splits_load_as_uint8_tensors_with_the_known_label_counts():
    train = MNIST("train")
    assert train.images.shape == (60000, 1, 28, 28) and train.images.dtype == torch.uint8
    assert torch.bincount(train.labels).tolist() == TRAIN_COUNTS
    assert len(MNIST("test")) == 10000


@needs_mnist
def test_batches_shapes_and_ranges():
    data = MNIST("test", subset=300)
    batches = list(data.batches(128, shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert [len(x) for x, _ in batches] == [128, 128, 44]
    x, y = batches[0]
    assert x.shape == (128, 1, 28, 28) and x.dtype == torch.float32 and y.shape == (128,)
    assert 0 <= x.min() and x.max() <= 1 and len(torch.unique(x)) > 2  # grey levels
    seen = torch.cat([y for _, y in batches])
    assert sorted(seen.tolist()) == sorted(data.labels.tolist())  # every image once


@needs_mnist
def test_dynamic_binarization_redraws_and_static_is_fixed():
    dyn = MNIST("test", binarize="dynamic", subset=100)
    a, b = next(dyn.batches(100))[0], next(dyn.batches(100))[0]
    assert set(torch.unique(a).tolist()) <= {0.0, 1.0}
    assert not torch.equal(a, b)
    s1 = next(MNIST("test", binarize="static", subset=100).batches(100))[0]
    s2 = next(MNIST("test", binarize="static", subset=100).batches(100))[0]
    assert set(torch.unique(s1).tolist()) <= {0.0, 1.0}
    assert torch.equal(s1, s2)
    # the draw follows the grey levels: bright pixels are mostly 1
    grey = next(MNIST("test", subset=100).batches(100))[0]
    assert s1[grey > 0.9].mean() > 0.85 and s1[grey < 0.1].mean() < 0.15


def test_missing_data_offline_gives_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="MNIST not found under .*VAELIB_DATA"):
        MNIST("test", root=tmp_path, download=False)


@needs_mnist
def test_truncated_file_gives_a_clear_error(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    shutil.copytree(data_root() / "MNIST" / "raw", raw)
    victim = raw / "t10k-images-idx3-ubyte"
    victim.write_bytes(victim.read_bytes()[:100_000])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte has 100000 bytes, expected 7840016"):
        MNIST("test", root=tmp_path)


def test_bad_arguments():
    with pytest.raises(DataError, match="unknown binarization"):
        MNIST("test", binarize="yes")
    with pytest.raises(DataError, match="unknown MNIST split"):
        MNIST("validation")


def test_root_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("VAELIB_DATA", str(tmp_path))
    assert data_root() == tmp_path
