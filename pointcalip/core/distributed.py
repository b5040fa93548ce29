"""Several processes filling one feature store: `torchrun ... -m pointcalip extract`.

torchrun starts one process per GPU (or per CPU worker) and tells each its place through the
environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``).
:func:`start` reads it, joins the process group (NCCL when this rank encodes on a GPU, gloo on
the CPU) and picks this rank's device; a plain ``pointcalip extract`` is the one-rank case and
joins nothing. The work itself is split without talking: every rank computes the same list of
blocks and takes every ``world_size``-th one (:meth:`Shard.take`); the only collective calls
are barriers (:func:`barrier`, :func:`main_first`).
"""
from __future__ import annotations

import contextlib
import datetime
import logging
import os
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence, TypeVar

import torch

log = logging.getLogger(__name__)

T = TypeVar("T")

#: how long a rank waits at a barrier for the others (a slow rank may still be encoding its
#: last blocks, or downloading the dataset or the CLIP weights for everyone)
BARRIER_TIMEOUT = datetime.timedelta(hours=2)


@dataclass(frozen=True)
class Shard:
    """This process's place among ``world_size`` ranks (``local_rank``: its place on its
    machine, which picks its GPU)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def take(self, items: Sequence[T]) -> Sequence[T]:
        """This rank's share of ``items``: every ``world_size``-th one from ``rank`` on, so
        shares differ in size by at most one and together hold each item once."""
        return items[self.rank::self.world_size]


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"environment variable {name}={text!r} is not an integer (set by "
                         f"torchrun)") from None


def shard_from_env() -> Shard:
    """The shard torchrun's environment describes (one rank when not launched by torchrun)."""
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local = _env_int("LOCAL_RANK", rank)
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"RANK={rank} and WORLD_SIZE={world} do not describe a rank")
    return Shard(rank, world, local)


def rank_device(device: Optional[str], shard: Shard) -> Optional[str]:
    """The device this rank encodes on: ``device`` as configured, except that ``cuda`` (or
    no device on a machine with GPUs) means this rank's own GPU, ``cuda:LOCAL_RANK``."""
    if shard.world_size == 1:
        return device
    if (device is None and torch.cuda.is_available()) or device == "cuda":
        count = torch.cuda.device_count()
        if shard.local_rank >= count:
            raise ValueError(f"rank {shard.rank} is local rank {shard.local_rank} but this "
                             f"machine has {count} CUDA device(s): start at most {count} "
                             f"processes per machine (torchrun --nproc_per_node)")
        return f"cuda:{shard.local_rank}"
    return device


def start(device: Optional[str]) -> tuple[Shard, Optional[str]]:
    """Join torchrun's process group, if launched by torchrun: -> (this rank's shard, the
    device it encodes on; see :func:`rank_device`)."""
    shard = shard_from_env()
    device = rank_device(device, shard)
    if shard.world_size == 1 or torch.distributed.is_initialized():
        return shard, device
    if not torch.distributed.is_available():
        raise RuntimeError("this torch build has no torch.distributed: run without torchrun")
    on_gpu = device is not None and torch.device(device).type == "cuda"
    if on_gpu:
        torch.cuda.set_device(torch.device(device))
    backend = "nccl" if on_gpu else "gloo"
    torch.distributed.init_process_group(backend=backend, timeout=BARRIER_TIMEOUT,
                                         **({"device_id": torch.device(device)} if on_gpu else {}))
    log.debug("rank %d of %d (local %d) joined the %s group on %s", shard.rank,
              shard.world_size, shard.local_rank, backend, device or "the default device")
    return shard, device


def barrier() -> None:
    """Wait until every rank gets here (nothing to wait for in a one-rank run)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


@contextlib.contextmanager
def main_first(shard: Shard) -> Iterator[None]:
    """Rank 0 runs the block first (downloads, creating folders), the others after it."""
    if not shard.is_main:
        barrier()
    yield
    if shard.is_main:
        barrier()


def stop() -> None:
    """Leave the process group (if this process joined one)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
