"""Several processes training one U-Net (`torchrun`): who is who, and what they must agree on.

Without torchrun's environment a run is one process and none of this communicates. With it, every
process synthesises its share of each batch on its own device, DistributedDataParallel averages the
gradients, and the main process (rank 0) alone evaluates and writes files.
"""

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from utils.errors import InputError


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


SINGLE_PROCESS = Ranks()


def ranks_from_environment() -> Ranks:
    """The process's place in a torchrun launch (RANK, WORLD_SIZE, LOCAL_RANK), or a single process."""
    environ = os.environ
    return Ranks(
        int(environ.get("RANK", 0)), int(environ.get("WORLD_SIZE", 1)), int(environ.get("LOCAL_RANK", 0))
    )


def rank_device(device: torch.device, ranks: Ranks) -> torch.device:
    """Each process of a multi-GPU launch takes the GPU of its local rank."""
    if device.type == "cuda" and ranks.distributed:
        return torch.device("cuda", ranks.local_rank)
    return device


def start(ranks: Ranks, device: torch.device) -> None:
    """Join the process group: NCCL between GPUs, gloo between CPU processes."""
    if ranks.distributed and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def finish(ranks: Ranks) -> None:
    if ranks.distributed and dist.is_initialized():
        dist.destroy_process_group()


def rank_seed(seed: int, rank: int) -> int:
    """The latent stream's seed of each process; rank 0 keeps `seed`, so one process runs as before."""
    return seed if rank == 0 else int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])


def sum_over_ranks(values: list[float], ranks: Ranks, device: torch.device) -> list[float]:
    """Element-wise sums of `values` over all processes (the values themselves for one process)."""
    if not ranks.distributed:
        return values
    total = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return total.tolist()


def gather(value, ranks: Ranks) -> list:
    """`value` of every process, in rank order."""
    if not ranks.distributed:
        return [value]
    values = [None] * ranks.world_size
    dist.all_gather_object(values, value)
    return values


def raise_if_any_failed(error: Exception | None, ranks: Ranks, device: torch.device) -> None:
    """Every process learns whether one failed, so that none waits forever for another; the failing
    process raises its own error, the others a short one."""
    (failures,) = sum_over_ranks([float(error is not None)], ranks, device)
    if error is not None:
        raise error
    if failures:
        raise InputError("another process of this run stopped with an error (its message is above)")


def barrier(ranks: Ranks) -> None:
    if ranks.distributed:
        dist.barrier()
