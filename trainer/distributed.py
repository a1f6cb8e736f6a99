"""Several training processes on PyTorch's own engine: `torchrun` launches them and sets the
rendezvous environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT, or a c10d rendezvous
for several machines); this module joins the process group it describes (gloo on CPU, NCCL on
CUDA) and wraps the few collectives training needs.

One process (no WORLD_SIZE, or WORLD_SIZE=1) joins nothing: every helper then returns at once
and leaves its input as it was, so single-process runs compute exactly what they did before.

A collective that fails (another rank crashed, its connection dropped) raises `DistributedError`
with a one-line message, so the command ends like any other error (prp-train names the rank).
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterable

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from .errors import PRPError


class DistributedError(PRPError):
    """The process group could not be joined, or a collective failed (another rank stopped)."""


# The device collectives run on: the CPU for gloo, this rank's GPU for NCCL.
_comm_device = torch.device("cpu")


def env_world_size() -> int:
    """WORLD_SIZE as torchrun set it (1 when not launched by torchrun)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise DistributedError(
            f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not a number; launch with torchrun"
        ) from None


def local_device(device: torch.device) -> torch.device:
    """`device`, pinned to this rank's GPU (LOCAL_RANK) when it is an unnumbered CUDA device and
    the job has several processes: one GPU per process, as torchrun's `--nproc-per-node`."""
    if device.type == "cuda" and device.index is None and env_world_size() > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def init(device: torch.device) -> bool:
    """Join the process group torchrun's environment describes, with gloo for a CPU `device` and
    NCCL for a CUDA one; True if this call joined it. Nothing happens for one process or when a
    group is already joined (a caller, a test, set it up)."""
    global _comm_device
    if dist.is_initialized():  # NCCL collectives take tensors on this rank's GPU
        _comm_device = device if dist.get_backend() == "nccl" else torch.device("cpu")
        return False
    if env_world_size() <= 1:
        return False
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise DistributedError(
            f"WORLD_SIZE is {env_world_size()} but {', '.join(missing)} is not set; launch "
            f"several processes with torchrun (torchrun --nproc-per-node N prp-train ...)"
        )
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    try:
        dist.init_process_group(backend=backend)
    except (RuntimeError, ValueError) as e:
        raise DistributedError(
            f"could not join the {backend} process group of {env_world_size()} processes "
            f"({' '.join(str(e).split())[:200]}); check that every node can reach the "
            f"rendezvous endpoint and runs the same torchrun command"
        ) from None
    _comm_device = device if device.type == "cuda" else torch.device("cpu")
    atexit.register(cleanup)  # a group left open makes torch warn at exit
    return True


def cleanup() -> None:
    """Leave the process group (if one was joined); safe to call twice."""
    if dist.is_initialized():
        dist.destroy_process_group()


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def is_main() -> bool:
    """True on rank 0, the one process that writes files and prints progress."""
    return rank() == 0


def _failed(what: str, e: Exception) -> DistributedError:
    return DistributedError(
        f"{what} failed ({' '.join(str(e).split())[:160]}); "
        f"another rank has most likely stopped (see its error above). The run keeps its last "
        f"checkpoint: fix the cause and --resume, with any number of processes"
    )


def barrier() -> None:
    if world_size() > 1:
        try:
            dist.barrier()
        except RuntimeError as e:  # DistBackendError and DistNetworkError too
            raise _failed("a barrier", e) from None


def all_reduce_sum(t: Tensor) -> Tensor:
    """`t` summed over the ranks, in place (one collective)."""
    if world_size() > 1:
        try:
            moved = t.to(_comm_device)
            dist.all_reduce(moved, op=dist.ReduceOp.SUM)
        except RuntimeError as e:  # DistBackendError and DistNetworkError too
            raise _failed("the gradient all-reduce", e) from None
        if moved is not t:
            t.copy_(moved)
    return t


def broadcast(tensors: Iterable[Tensor], src: int = 0) -> None:
    """Every tensor of `tensors` replaced, in place, by rank `src`'s (one collective)."""
    if world_size() <= 1:
        return
    ts = list(tensors)
    if not ts:
        return
    flat = torch.cat([t.detach().reshape(-1).to(_comm_device, torch.float64) for t in ts])
    try:
        dist.broadcast(flat, src=src)
    except RuntimeError as e:  # DistBackendError and DistNetworkError too
        raise _failed("a broadcast", e) from None
    k = 0
    with torch.no_grad():
        for t in ts:
            n = t.numel()
            t.copy_(flat[k : k + n].view(t.shape).to(t.device, t.dtype))
            k += n


def shard_indices(n: int) -> range:
    """This rank's share of n items, strided (rank, rank + world, ...) as DistributedSampler
    splits a data set, so the ranks' shares differ in size by at most one."""
    return range(rank(), n, world_size())


def gather_shards(local: np.ndarray, n: int) -> np.ndarray:
    """The n values whose `shard_indices(n)` share each rank computed (`local`, in that order),
    put back in their places on every rank (one all-gather of float64)."""
    local = np.asarray(local, dtype=np.float64)
    world = world_size()
    if world <= 1:
        return local
    width = -(-n // world)
    padded = torch.zeros(width, dtype=torch.float64, device=_comm_device)
    padded[: len(local)] = torch.from_numpy(local).to(_comm_device)
    parts = [torch.empty_like(padded) for _ in range(world)]
    try:
        dist.all_gather(parts, padded)
    except RuntimeError as e:  # DistBackendError and DistNetworkError too
        raise _failed("gathering the estimates", e) from None
    out = np.empty(n, dtype=np.float64)
    for r, part in enumerate(parts):
        idx = np.arange(r, n, world)
        out[idx] = part.cpu().numpy()[: len(idx)]
    return out
