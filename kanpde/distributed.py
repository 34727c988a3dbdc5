"""Data-parallel training with ``torch.distributed`` (launched by ``torchrun``).

Every rank draws the same full set of collocation points (same seeds) and keeps a contiguous
shard of each term's points. Loss terms are computed as ``Σ r² / N_global`` on every shard and
summed across ranks together with the gradients, so each rank holds the global loss and
gradient and takes the same optimizer step: the parameters stay identical on all ranks, which
also makes L-BFGS's line-search decisions identical. Grid extension and grid updates use the
full (unsharded) point set, which every rank has, so every rank builds the same grid. Only
rank 0 writes results and checkpoints.

Launch: ``torchrun --nproc-per-node 2 -m kanpde solve problems/poisson2d.py`` (gloo on CPU,
NCCL on GPUs, one GPU per rank); see the README's "Scaling out".
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import Tensor


def launched() -> bool:
    """Started by ``torchrun`` (or any launcher that sets ``WORLD_SIZE`` > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world() -> int:
    return dist.get_world_size() if active() else 1


def setup(device: str | torch.device) -> str | torch.device:
    """Join the process group started by the launcher; return this rank's device."""
    if not launched() or active():
        return device
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda"):
        # one GPU per rank, by LOCAL_RANK: a device index given would be overridden unseen,
        # and a rank without a GPU of its own would fail inside CUDA
        try:
            index = torch.device(device).index
        except RuntimeError as e:
            raise ValueError(f"device {device!r}: {str(e).splitlines()[0]}") from None
        if torch.cuda.device_count() == 0:
            raise ValueError(f"--device {device}: no CUDA GPU is available to this process")
        if index is not None:
            raise ValueError(
                f"--device {device}: under torchrun each rank takes the GPU of its local rank; "
                "give --device cuda (or auto), and CUDA_VISIBLE_DEVICES to choose the GPUs"
            )
        if local >= torch.cuda.device_count():
            raise ValueError(
                f"--device {device}: torchrun started local rank {local} on a machine with "
                f"{torch.cuda.device_count()} GPU(s); give --nproc-per-node "
                f"{torch.cuda.device_count()} or fewer, or --device cpu"
            )
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
        backend = "nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend=backend, timeout=timedelta(minutes=30))
    return device


def shard(n: int, pairs: bool = False) -> slice | tuple[slice, slice]:
    """This rank's contiguous part of ``n`` points (of both halves when ``pairs``)."""
    r, w = rank(), world()
    if pairs:
        half = n // 2
        s = slice(half * r // w, half * (r + 1) // w)
        return s, slice(half + s.start, half + s.stop)
    return slice(n * r // w, n * (r + 1) // w)


def all_reduce_(tensors: list[Tensor]) -> None:
    """Sum ``tensors`` over all ranks, in place (one flat buffer, one collective)."""
    if not active() or not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    i = 0
    for t in tensors:
        t.copy_(flat[i : i + t.numel()].view_as(t))
        i += t.numel()


def max_over_ranks(value: float) -> float:
    """The largest ``value`` over all ranks (itself in a single process)."""
    if not active():
        return value
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"  # NCCL reduces device memory only
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def broadcast(obj):
    """Rank 0's ``obj`` on every rank (e.g. the run directory it created)."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if active():
        dist.barrier()


def shared_failure(message: str | None) -> str | None:
    """Rank 0's error ``message`` (None: no error) on every rank, so that all of them raise
    it rather than wait in a collective for the one that did."""
    message = broadcast(message)
    if message is not None:
        barrier()  # no rank leaves while another still reads the answer
    return message


def leave() -> None:
    """Leave the process group at a command's end: its threads then stop before the
    interpreter exits, where another rank's exit could abort them ("terminate called
    without an active exception")."""
    if active():
        dist.destroy_process_group()
