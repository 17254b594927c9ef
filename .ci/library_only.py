"""The library without its extras (`pip install .`: torch, torchvision, tqdm): build, fit, save,
load, evaluate and write a sample grid, in a venv with no matplotlib, ipywidgets or nbgrader.
.ci/run runs it in such a venv; tests/test_open_library.py runs it with those packages hidden."""
import importlib.util
import sys
import tempfile
from pathlib import Path

import torch

import vaelib
from vaelib.evaluation import evaluate_elbo, iwae_nll
from vaelib.images import save_image_grid

for name in ("matplotlib", "ipywidgets", "nbgrader"):
    if name in sys.modules:
        sys.exit(f"FAIL: importing the library imported {name}")
images = torch.rand(256, 1, 28, 28, generator=torch.Generator().manual_seed(0)).round()
with tempfile.TemporaryDirectory() as tmp:
    model = vaelib.build_vae("mlp", latent_dim=4, hidden=32)
    history = vaelib.fit(model, images[:192], images[192:], epochs=2, batch_size=64, progress=False,
                         run_dir=Path(tmp) / "run")
    path = vaelib.save(model, Path(tmp) / "model.pth")
    loaded = vaelib.load(path)
    elbo = evaluate_elbo(loaded, images[192:])["elbo"]
    nll = iwae_nll(loaded, images[192:], k=10, progress=False)["nll"]
    grid = save_image_grid(loaded.sample(16), Path(tmp) / "grid.png", nrow=4)
    assert grid.read_bytes()[:4] == b"\x89PNG" and (Path(tmp) / "run" / "checkpoint_best.pth").exists()
for name in ("matplotlib", "ipywidgets", "nbgrader"):
    if name in sys.modules:
        sys.exit(f"FAIL: the library imported {name}")


def installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:  # hidden by the test that runs this script
        return False


print(f"library only: fit 2 epochs (test ELBO {history[-1]['test_elbo']:.1f}), saved, loaded, evaluated "
      f"(ELBO {elbo:.1f}, NLL {nll:.1f} nats at k = 10), grid written; "
      f"matplotlib {'installed' if installed('matplotlib') else 'not installed'}, never imported")
