"""Reference numbers for vaelib.course.sample_quality: real digits, the pretrained VAEs, noise and blank images.

    python benchmarks/sample_quality.py          # writes benchmarks/results/sample_quality-cpu.json, prints a table
    python benchmarks/sample_quality.py --table  # prints the table of the JSON file again

Every row is scored against the 10,000 MNIST test images in grey levels (column ``FD grey``) and
against one dynamic binarization of them (seed 0, column ``FD bin``), with the shipped classifier
``pretrained/mnist_classifier.pth``. Samples: ``model.sample(n, generator=Generator().manual_seed(0))``
(the decoder's mean image, grey) and one Bernoulli draw of those means (seed 1; for the PixelCNN
decoder, the image drawn pixel by pixel itself, with the global seed set to 0). The floor rows
score real images (training images, disjoint from the test set) at the same ``n``, because FD is
biased upward at small ``n``.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import vaelib  # noqa: E402
from vaelib.course import sample_quality as sq  # noqa: E402


def main() -> None:
    torch.manual_seed(0)
    start = time.perf_counter()
    classifier = sq.load_classifier()
    test, test_bin = sq.mnist_test_reference(), sq.mnist_test_reference(binarized=True, seed=0)
    train = vaelib.MNIST("train").images.float() / 255
    ref_grey = sq.classifier_outputs(classifier, test)[0]
    ref_bin = sq.classifier_outputs(classifier, test_bin)[0]
    rows = []

    def score(name: str, images: torch.Tensor, what: str) -> None:
        features, probs = sq.classifier_outputs(classifier, images)
        row = {"name": name, "images": what, "n": len(images),
               "fd_grey": sq.frechet_distance(features, ref_grey), "fd_bin": sq.frechet_distance(features, ref_bin),
               **sq._scores_from_probabilities(probs)}
        rows.append(row)
        print(f"{name:<28} {what:<10} n={row['n']:>6}  FD grey {row['fd_grey']:8.2f}  FD bin {row['fd_bin']:8.2f}  "
              f"conf {row['confidence']:.3f}  label H {row['label_entropy']:.3f}  mean H {row['mean_entropy']:.3f}  "
              f"({time.perf_counter() - start:.0f} s)", flush=True)

    g = torch.Generator().manual_seed(1)
    for n in (10_000, 2_000, 1_000):
        real = train[:n]
        score("floor: MNIST train images", real, "grey")
        score("floor: MNIST train images", torch.bernoulli(real, generator=g), "binarized")
    score("floor: MNIST train images 1,000-1,999", train[1000:2000], "grey")
    score("the reference itself", test, "grey")
    half = sq.frechet_distance(ref_grey[:5000], ref_grey[5000:])
    print(f"the two halves of the test set, first 5,000 vs last 5,000 (grey): FD {half:.2f}")
    for name in ("conv_vae", "mlp_vae", "conv_iwae"):
        model = vaelib.load(ROOT / "pretrained" / f"{name}.pth")
        for n in (10_000, 2_000):
            means = model.sample(n, generator=torch.Generator().manual_seed(0))
            score(name, means, "mean")
            score(name, torch.bernoulli(means, generator=torch.Generator().manual_seed(1)), "binarized")
    model = vaelib.load(ROOT / "pretrained" / "conv_pixelcnn.pth")
    n = 2_000
    torch.manual_seed(0)
    with torch.no_grad():
        z = torch.randn(n, model.latent_dim, generator=torch.Generator().manual_seed(0))
        drawn, probs = model.likelihood.sample(model.decoder(z), generator=torch.Generator().manual_seed(1))
    score("conv_pixelcnn", probs, "mean")
    score("conv_pixelcnn", drawn, "binarized")
    for n in (10_000, 2_000):
        score("noise: torch.rand", torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0)), "uniform")
    score("noise: Bernoulli(0.13)", torch.bernoulli(torch.full((10_000, 1, 28, 28), float(test.mean())),
                                                    generator=torch.Generator().manual_seed(0)), "binary")
    score("blank (all 0)", torch.zeros(10_000, 1, 28, 28), "blank")
    score("one test digit, repeated", test[:1].expand(10_000, -1, -1, -1), "grey")
    out = ROOT / "benchmarks" / "results" / "sample_quality-cpu.json"
    out.parent.mkdir(exist_ok=True)
    meta = {k: v for k, v in classifier.meta.items() if k != "history"}
    out.write_text(json.dumps({"classifier": meta, "torch": torch.__version__, "threads": torch.get_num_threads(),
                               "seconds": round(time.perf_counter() - start, 1), "test_halves_fd": half,
                               "rows": rows}, indent=1) + "\n")
    print(f"\nwrote {out}\n")
    table(rows)


def table(rows) -> None:
    print("| samples | images | n | FD (grey test) | FD (binarized test) | confidence | label entropy | "
          "mean entropy | classifier score |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['name']} | {r['images']} | {r['n']:,} | {r['fd_grey']:.2f} | {r['fd_bin']:.2f} | "
              f"{r['confidence']:.3f} | {r['label_entropy']:.3f} | {r['mean_entropy']:.3f} | "
              f"{r['classifier_score']:.2f} |")


if __name__ == "__main__":
    if sys.argv[1:] == ["--table"]:
        table(json.loads((ROOT / "benchmarks" / "results" / "sample_quality-cpu.json").read_text())["rows"])
    else:
        main()
