"""The little synthpt needs from a process group, through Hugging Face Accelerate.

One code path serves one CPU process and ``accelerate launch`` on many GPUs: each stage
computes the *global* batch of a step, takes its own slice (``shard``), and sums
gradients with ``all_reduce_sum``; where a loss couples rows (a softmax over the batch,
triplets, a lookahead step), ``all_reduce_sum_grad`` and ``gather_rows`` carry the coupling
across processes.  Only the soft prompts (and DawGen's weight net) are trainable, so reducing
their gradients by hand is all DDP would do, and it lets gradient surgery act on the
all-reduced δ_real and δ_syn, which DDP's hooks would not allow.
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


def all_reduce_max(t: torch.Tensor) -> torch.Tensor:
    """Elementwise maximum over processes (not differentiable: used for shifts that cancel out)."""
    if world_size() == 1:
        return t
    import torch.distributed as dist

    t = t.detach().contiguous().clone()
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t


class _SumOverProcesses(torch.autograd.Function):
    """Σ_p t_p on every process, with Σ_p of the incoming gradients as its gradient.

    Why the backward sums too: each process's loss uses the sum, so the gradient that reaches
    process p's share is the sum of every process's gradient w.r.t. the sum.  The backward calls
    this Function again, so the sum stays differentiable to any order (the lookahead's meta-gradient
    differentiates through a gradient that was itself all-reduced)."""

    @staticmethod
    def forward(ctx: Any, t: torch.Tensor) -> torch.Tensor:
        return all_reduce_sum(t)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return _SumOverProcesses.apply(grad)


def all_reduce_sum_grad(t: torch.Tensor) -> torch.Tensor:
    """:func:`all_reduce_sum` that autograd can differentiate (any number of times); ``t`` itself in
    one process.  Every process must run the backward of the same graph (the backward is a
    collective too), which holds here: each builds the same graph on its own rows."""
    if world_size() == 1:
        return t
    return _SumOverProcesses.apply(t)


def shard_mask(n: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(n,) bool: which positions of a global list of ``n`` items :func:`shard` gives this process."""
    keep = torch.zeros(n, dtype=torch.bool, device=device)  # (n,)
    keep[rank() :: world_size()] = True
    return keep


def gather_rows(t: torch.Tensor, n: int) -> torch.Tensor:
    """(b, ...) this process's rows of a :func:`shard`-ed global batch of ``n`` rows -> (n, ...) every
    process's rows in the global order, differentiable: the gradient of a row comes back to the
    process that owns it, summed over every process that used it.  ``t`` itself in one process."""
    if world_size() == 1:
        return t
    pos = torch.arange(rank(), n, world_size(), device=t.device)  # (b,) global positions of our rows
    full = t.new_zeros((n, *t.shape[1:])).index_copy(0, pos, t)  # (n, ...): ours, zeros elsewhere
    return all_reduce_sum_grad(full)  # (n, ...): x + 0 = x, so the rows arrive exact


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


def shutdown() -> None:
    """Leave the process group together and tear it down before the interpreter does.

    A rank that exits while its gloo group is still alive can abort in the group's destructor
    ("terminate called without an active exception", SIGABRT), failing a run that finished its
    work; ``synthpt``'s commands call this once they return.  A no-op without a process group."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


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
