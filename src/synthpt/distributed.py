"""The little synthpt needs from a process group, through Hugging Face Accelerate.

One code path serves one CPU process and ``accelerate launch`` on many GPUs: each stage
computes the *global* batch of a step, takes its own slice (``shard``), and sums
gradients with ``all_reduce_sum``.  Only the soft prompts (and DawGen's weight net) are
trainable, so reducing their gradients by hand is all DDP would do, and it lets gradient
surgery act on the all-reduced δ_real and δ_syn, which DDP's hooks would not allow.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any, TypeVar

import torch

T = TypeVar("T")


@lru_cache(maxsize=1)
def state() -> Any:
    """Accelerate's process state, created only under a multi-process launch."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    from accelerate import PartialState

    return PartialState()


def world_size() -> int:
    s = state()
    return 1 if s is None else s.num_processes


def rank() -> int:
    s = state()
    return 0 if s is None else s.process_index


def is_main() -> bool:
    return rank() == 0


def device(default: str | None = None) -> torch.device:
    s = state()
    if s is not None:
        return s.device
    if default:
        return torch.device(default)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def shard(items: list[T]) -> list[T]:
    """This process's slice of a global list (strided, so sizes differ by at most one)."""
    return items[rank() :: world_size()]


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    if world_size() == 1:
        return t
    import torch.distributed as dist

    t = t.contiguous().clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def gather_objects(obj: Any) -> list[Any]:
    """Every process's ``obj``, in rank order (a list of one in a single process)."""
    if world_size() == 1:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if world_size() > 1:
        import torch.distributed as dist

        dist.barrier()
