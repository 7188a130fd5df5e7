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
from pathlib import Path
from typing import Any, TypeVar

import torch

T = TypeVar("T")


@lru_cache(maxsize=1)
def state() -> Any:
    """Accelerate's process state, created only under a multi-process launch."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    from accelerate import PartialState

    return PartialState(cpu=use_cpu())


def env_flag(name: str) -> bool:
    """An on/off environment switch (1 / true / yes, any case)."""
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def use_cpu() -> bool:
    """CPU when no GPU is visible or the launcher asked for it (``accelerate launch --cpu`` sets
    ACCELERATE_USE_CPU): N CPU processes on a one-GPU machine must not all open that GPU."""
    return env_flag("ACCELERATE_USE_CPU") or not torch.cuda.is_available()


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
    return torch.device("cpu" if use_cpu() else "cuda")


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


def _parent_num_processes() -> int:
    """``--num_processes N`` of the ``accelerate launch`` command that started us (Linux /proc)."""
    try:
        raw = Path(f"/proc/{os.getppid()}/cmdline").read_bytes()
    except OSError:
        return 1
    args = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
    for i, a in enumerate(args):
        if a in ("--num_processes", "--num-processes") and i + 1 < len(args):
            return int(args[i + 1]) if args[i + 1].isdigit() else 1
        if a.startswith(("--num_processes=", "--num-processes=")):
            v = a.split("=", 1)[1]
            return int(v) if v.isdigit() else 1
    return 1


def maybe_relaunch_multi_cpu(module_args: list[str]) -> None:
    """Make ``accelerate launch --cpu --num_processes N -m synthpt ...`` start N processes.

    Without MPI, Accelerate's CPU launcher starts a single process (it expects ``mpirun``
    to fan out).  We detect that case — Accelerate's CPU flag and rendezvous address set,
    no WORLD_SIZE — and re-execute under ``torch.distributed.run`` with N local processes
    and the gloo backend, which is what the user asked for.
    """
    env = os.environ
    if env.get("ACCELERATE_USE_CPU", "").lower() != "true" or "WORLD_SIZE" in env or "MASTER_ADDR" not in env:
        return
    if env.get("SYNTHPT_RELAUNCHED"):
        return
    n = _parent_num_processes()
    if n <= 1:
        return
    import sys

    env["SYNTHPT_RELAUNCHED"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={n}",
           f"--master_addr={env['MASTER_ADDR']}", f"--master_port={env.get('MASTER_PORT', '29500')}",
           "-m", "synthpt", *module_args]
    os.execvpe(sys.executable, cmd, env)
