"""Data-parallel training across processes started by ``torchrun``.

``torchrun`` (``python -m torch.distributed.run``) starts one process per device and tells each
its place through the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
``MASTER_PORT``). Without those variables training is one process and nothing here talks to
another. Every process draws the same epoch order from (seed, epoch) and takes its own share,
so N processes with a per-process batch of B / N see, step by step, exactly the samples one
process with batch B sees.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import Dataset, DistributedSampler, Subset


@dataclass(frozen=True)
class Processes:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Whether this process writes the outputs (checkpoints, config, history, progress)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether there are other processes to talk to."""
        return self.world_size > 1

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over every process, in place; returns it."""
        if self.distributed:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def broadcast_from_main(self, tensors: Iterable[torch.Tensor]) -> None:
        """Overwrite ``tensors`` in place with rank 0's values."""
        if self.distributed:
            for tensor in tensors:
                dist.broadcast(tensor, src=0)

    def barrier(self) -> None:
        """Wait until every process has come here."""
        if self.distributed:
            dist.barrier()


def processes_from_environment() -> Processes:
    """Read this process's rank from the variables ``torchrun`` sets (none: one process)."""
    world_size = int(os.environ.get('WORLD_SIZE', '1'))
    if world_size <= 1:
        return Processes()
    return Processes(int(os.environ['RANK']), world_size, int(os.environ.get('LOCAL_RANK', '0')))


def start_process_group(processes: Processes, device: torch.device) -> None:
    """Join the other processes: NCCL between GPUs, gloo between CPU processes."""
    if processes.distributed and not dist.is_initialized():
        if device.type == 'cuda':
            torch.cuda.set_device(device)
            dist.init_process_group('nccl', device_id=device)
        else:
            dist.init_process_group('gloo')


def stop_process_group() -> None:
    """Leave the process group, where one was joined."""
    if dist.is_initialized():
        dist.destroy_process_group()


def process_device(spec: str, processes: Processes) -> str:
    """Return this process's device spec: under ``torchrun`` each one takes its local GPU."""
    if not processes.distributed or spec == 'cpu':
        return spec
    if spec == 'auto':
        return f'cuda:{processes.local_rank}' if torch.cuda.is_available() else 'cpu'
    if spec == 'cuda':
        return f'cuda:{processes.local_rank}'
    raise ValueError(f'device {spec!r}: with several processes each one uses the GPU of its '
                     "local rank; pass 'auto', 'cuda' or 'cpu'")


def per_process_batch(global_batch: int, processes: Processes) -> int:
    """Return the batch each process takes so that together they take ``global_batch``."""
    if global_batch % processes.world_size:
        raise ValueError(f'batch_size {global_batch} (the global batch) does not divide among '
                         f'{processes.world_size} processes; use a multiple of '
                         f'{processes.world_size}')
    return global_batch // processes.world_size


class WeightedDistributedSampler(DistributedSampler):
    """Draws len(dataset) indices with replacement by ``weights``, shared out among processes.

    Every process makes the same draw from (seed, epoch), as ``DistributedSampler`` does for
    its permutation, and keeps every ``world_size``-th index from its rank on.
    """

    def __init__(self, dataset: Dataset, weights: Sequence[float], *, num_replicas: int,
                 rank: int, seed: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, seed=seed,
                         drop_last=True)
        self.weights = torch.as_tensor(weights, dtype=torch.double)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        drawn = torch.multinomial(self.weights, len(self.weights), replacement=True,
                                  generator=generator)
        return iter(drawn[: self.total_size][self.rank:: self.num_replicas].tolist())


def training_sampler(dataset: Dataset, processes: Processes, *, seed: int,
                     weights: Sequence[float] | None = None) -> DistributedSampler:
    """Return the sampler of this process's training samples; ``set_epoch`` every epoch."""
    if weights is not None:
        return WeightedDistributedSampler(dataset, weights, num_replicas=processes.world_size,
                                          rank=processes.rank, seed=seed)
    return DistributedSampler(dataset, num_replicas=processes.world_size, rank=processes.rank,
                              shuffle=True, seed=seed, drop_last=True)


def validation_shard(dataset: Dataset, processes: Processes) -> Dataset:
    """Return this process's validation samples: each sample once over all processes.

    ``DistributedSampler`` would pad the last round with repeated samples (or drop samples)
    to give every process as many; a score must count each sample once, so shards may differ
    in length by one.
    """
    if not processes.distributed:
        return dataset
    return Subset(dataset, range(processes.rank, len(dataset), processes.world_size))

