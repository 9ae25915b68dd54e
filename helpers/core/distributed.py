"""Training past one GPU on existing engines: ``torchrun`` and DistributedDataParallel for the torch models.

Under ``torchrun --nproc_per_node N python -m helpers train supervised ...`` every process runs the same
code; :func:`init_from_env` joins them (NCCL with CUDA, gloo on CPU). The shared training loop
(:func:`helpers.training.loop.fit`) then wraps the model in DDP, averages the logged losses over the processes,
and lets rank 0 alone write checkpoints (every rank resumes from them). The loaders split each *global*
batch over the processes (:func:`loader_sampler`, :func:`per_rank_batch`), so N processes take the same
optimisation steps as one process with the same global batch — the tests check it on CPU with gloo.
Without ``torchrun`` (one process) nothing here changes anything.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["init_from_env", "world", "is_main", "barrier", "wrap", "loader_sampler", "per_rank_batch",
           "mean_over_ranks", "gather", "cleanup"]


def init_from_env() -> bool:
    """Join the process group ``torchrun`` describes (``WORLD_SIZE`` > 1); True when distributed."""
    if dist.is_available() and dist.is_initialized():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return False
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo")
    return True


def world() -> tuple[int, int]:
    """(rank, number of processes); (0, 1) outside ``torchrun``."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """Whether this process writes files and prints (rank 0, or the only process)."""
    return world()[0] == 0


def barrier() -> None:
    if world()[1] > 1:
        dist.barrier()


def wrap(model: nn.Module) -> nn.Module:
    """``model`` in DistributedDataParallel when there are several processes (unchanged otherwise).

    On GPUs its BatchNorm layers become SyncBatchNorm (in place), so batch statistics are the global batch's,
    as with the recipe's one GPU; on CPU (gloo, the tests) SyncBatchNorm is not available and they stay per process.
    """
    if world()[1] == 1 or isinstance(model, nn.parallel.DistributedDataParallel):
        return model
    cuda = next(model.parameters()).is_cuda
    if cuda:
        nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return nn.parallel.DistributedDataParallel(model, device_ids=[torch.cuda.current_device()] if cuda else None)


def loader_sampler(dataset, shuffle: bool, seed: int, drop_last: bool = False):
    """A DistributedSampler over the processes (None with one process: the loader shuffles as before)."""
    rank, size = world()
    if size == 1:
        return None
    from torch.utils.data.distributed import DistributedSampler

    return DistributedSampler(dataset, num_replicas=size, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last)


def per_rank_batch(global_batch: int) -> int:
    """Each process's share of a global batch; refused when it does not divide (the recipe's batch is kept)."""
    size = world()[1]
    if global_batch % size:
        raise ValueError(f"The recipe's batch of {global_batch} cannot be split over {size} processes: use a number "
                         "of processes that divides it, so that the optimisation stays the recipe's.")
    return global_batch // size


def mean_over_ranks(value: float) -> float:
    """The mean of ``value`` over the processes (itself with one process): what the logs record."""
    if world()[1] == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item() / world()[1])


def gather(t: torch.Tensor) -> torch.Tensor:
    """Every process's ``t`` concatenated in rank order, with gradients flowing back to each process's own part
    (``torch.distributed.nn``); ``t`` itself with one process. SimCLR's NT-Xent needs the global batch's
    projections: each process's loss is then the global loss, and DDP's average of the gradients is its gradient."""
    if world()[1] == 1:
        return t
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(t), dim=0)


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
