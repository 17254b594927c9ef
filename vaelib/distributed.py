"""Training on several GPUs (or CPU processes, or machines) with torch's DistributedDataParallel.

    torchrun --standalone --nproc_per_node 4 -m vaelib train my_run --batch_size 128

``torchrun`` starts one process per device and tells each its ``RANK`` and the ``WORLD_SIZE``;
``vaelib.fit`` notices an initialized process group (``start()`` makes one from torchrun's
environment: NCCL on GPUs, gloo on CPUs) and then

* gives each process its shard of the data (every ``world_size``-th image, held on its device)
  and reshuffles that shard every epoch;
* averages the gradients of every step across processes (DistributedDataParallel), so one step
  sees ``world_size x batch_size`` images: the *effective* batch size;
* sums the epoch's training and test numbers across processes (one history, for all images);
* runs the callbacks that write files (checkpoints, ``history.csv``, samples, TensorBoard) and the
  progress bar on rank 0 only.

From your own script: call ``vaelib.distributed.start()`` first, then ``vaelib.fit`` as usual, and
``vaelib.distributed.stop()`` at the end; launch the script with ``torchrun``.
"""
from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["start", "stop", "active", "rank", "world_size", "is_main", "shard", "barrier", "all_sum",
           "DistributedObjective"]


def active() -> bool:
    """True inside an initialized process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def start(device: str | torch.device | None = None) -> torch.device | None:
    """Join the process group that ``torchrun`` describes (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``).

    Returns this process's device (``cuda:LOCAL_RANK`` on GPUs; ``device`` or the CPU otherwise),
    or ``None`` when the script was not started by torchrun with more than one process.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    local = int(os.environ.get("LOCAL_RANK", "0"))
    wanted = None if device in (None, "auto") else torch.device(device)
    use_cuda = torch.cuda.is_available() and (wanted is None or wanted.type == "cuda")
    if use_cuda:
        if local >= torch.cuda.device_count():
            raise ValueError(f"process {local} of this machine has no GPU: this machine has "
                             f"{torch.cuda.device_count()}; start torchrun with --nproc_per_node <= that")
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", timeout=timedelta(minutes=30))
    return torch.device("cuda", local) if use_cuda else (wanted or torch.device("cpu"))


def stop() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def shard(data):
    """This process's share of ``data``: every ``world_size``-th image from ``rank`` on, all shards of
    equal length (up to ``world_size - 1`` images are left out) so every process takes the same steps."""
    n = len(data) // world_size() * world_size()
    return data[rank():n:world_size()]


def barrier() -> None:
    """Wait until every process gets here (nothing to wait for outside a process group)."""
    if active():
        dist.barrier()


def all_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of ``tensor`` over all processes (``tensor`` itself outside a process group)."""
    if active():
        tensor = tensor.clone()
        dist.all_reduce(tensor)
    return tensor


class _ObjectiveModule(nn.Module):
    """The model and the objective as one module, so that DistributedDataParallel runs the whole
    objective as its forward pass (its gradient hooks see every parameter the objective uses)."""

    def __init__(self, model, objective):
        super().__init__()
        self.model, self.objective = model, objective

    def forward(self, x, y, step):
        return self.objective(self.model, x, y, step)


class DistributedObjective:
    """``objective`` whose gradients are averaged across processes (DistributedDataParallel)."""

    def __init__(self, model, objective):
        device_ids = [model.device.index] if model.device.type == "cuda" else None
        self.objective = objective
        self.ddp = nn.parallel.DistributedDataParallel(_ObjectiveModule(model, objective), device_ids=device_ids)

    def __call__(self, model, x, y, step):
        return self.ddp(x, y, step)

    def __repr__(self) -> str:
        return f"{self.objective!r} on {world_size()} processes"
