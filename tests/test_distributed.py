"""Training with several processes (torchrun, gloo on 2 CPU processes), checked against one process.

With the same seed and the same effective batch (2 processes x 32 = 1 x 64), the two runs take the
same number of steps over the same images, but each process shuffles its own shard and draws its
own binarization and samples of z, so their numbers agree only up to that noise. Measured on the
first epoch (2,000 images, MLP 784-64-4, seeds 0-3): the two runs were at most 1.8 nats apart in
train ELBO and 1.4 in test ELBO, while single-process runs with different seeds spread over 13
nats of test ELBO (-282 to -295). The tests allow 3 nats.
"""
import csv
import os
import subprocess
import sys
import textwrap

import torch

from vaelib import load

from .conftest import needs_mnist

TOLERANCE = 3.0  # nats
COMMON = ["--subset", "2000", "--num_epochs", "1", "--arch", "mlp", "--hidden_units", "64", "--hidden_dim", "4",
          "--quiet", "--seed", "0"]


def torchrun(*args, cwd, timeout=300):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


def first_epoch(path):
    with open(path) as f:
        return next(csv.DictReader(f))


@needs_mnist
def test_two_processes_train_like_one_with_the_same_effective_batch(tmp_path):
    runs = tmp_path / "runs"
    result = torchrun("-m", "vaelib", "train", "two", "--runs_dir", runs, "--batch_size", "32", *COMMON, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 processes x batch 32 = effective batch 64, 1,000 images per process" in result.stdout
    assert result.stdout.count("done:") == 1  # only rank 0 speaks
    from vaelib.cli import main
    assert main(["train", "one", "--runs_dir", str(runs), "--batch_size", "64", *COMMON]) == 0
    two, one = first_epoch(runs / "two" / "history.csv"), first_epoch(runs / "one" / "history.csv")
    assert two["step"] == one["step"] == "32"
    for key in ("train_elbo", "test_elbo", "test_kl"):
        assert abs(float(two[key]) - float(one[key])) < TOLERANCE, (key, two[key], one[key])
    model = load(runs / "two" / "checkpoint_last.pth")
    args = model.checkpoint["train_args"]
    assert args["world_size"] == 2 and args["effective_batch_size"] == 64
    assert sorted(p.name for p in (runs / "two").iterdir()) == ["checkpoint_best.pth", "checkpoint_last.pth",
                                                                "history.csv", "samples.png"]
    # resuming a distributed run continues it
    result = torchrun("-m", "vaelib", "train", "two", "--runs_dir", runs, "--batch_size", "32", *COMMON[:2],
                      "--num_epochs", "2", "--resume_if_exists", *COMMON[4:], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert load(runs / "two" / "checkpoint_last.pth").checkpoint["epoch"] == 2


SCRIPT = textwrap.dedent("""
    import sys, torch, vaelib
    from vaelib import distributed
    device = distributed.start()
    torch.manual_seed(0)
    model = vaelib.build_vae("mlp", latent_dim=2, hidden=16, image_shape=(1, 8, 8))
    images = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    history = vaelib.fit(model, images, images[:32], epochs=2, batch_size=8, device=device, progress=False,
                         run_dir=sys.argv[1])
    # the weights are the same on every process, and the history covers all images
    weights = torch.cat([p.detach().flatten() for p in model.parameters()])
    gathered = [torch.zeros_like(weights) for _ in range(distributed.world_size())]
    torch.distributed.all_gather(gathered, weights)
    assert all(torch.equal(gathered[0], w) for w in gathered)
    # one file per rank: two processes printing to one pipe can interleave their bytes
    with open(f"rank{distributed.rank()}.txt", "w") as f:
        f.write(f"rank {distributed.rank()} of {distributed.world_size()} steps {history[-1]['step']}")
    distributed.stop()
""")


def test_a_script_of_ones_own_runs_under_torchrun(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    result = torchrun(script, tmp_path / "run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    for rank in (0, 1):
        assert (tmp_path / f"rank{rank}.txt").read_text() == f"rank {rank} of 2 steps 8"
    assert torch.load(tmp_path / "run" / "checkpoint_last.pth", weights_only=True)["epoch"] == 2
