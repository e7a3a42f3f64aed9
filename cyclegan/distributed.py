"""Training with several processes: one per GPU, on one machine or many, started by PyTorch's ``torchrun``.

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in each process's environment; ``setup``
reads them and joins the process group (NCCL on GPUs, gloo on CPUs). Without them training runs in a
single process as usual. ``launch`` is the ``cyclegan train --gpus N`` shortcut that starts ``torchrun``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .errors import UserError
from .runtime import resolve_device


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (rank 0 of 1 when training alone)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    control: dist.ProcessGroup | None = None  # a gloo group: agreements between ranks without a GPU sync

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone logs, writes samples and checkpoints."""
        return self.rank == 0

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on any rank: how all ranks agree to stop at one step."""
        if not self.enabled:
            return flag
        t = torch.tensor([int(flag)])
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.control)  # on CPU tensors: the GPUs are not synced
        return bool(t.item())

    def barrier(self) -> None:
        """Wait for every rank, e.g. for rank 0 to finish writing a checkpoint before the others exit."""
        if self.enabled:
            dist.barrier(group=self.control)


def is_main_process() -> bool:
    """True on rank 0 or when not started by ``torchrun``; known before the process group is joined."""
    return int(os.environ.get("RANK", "0")) == 0


def setup(device_name: str = "auto") -> tuple[World, torch.device]:
    """Join the process group when started by ``torchrun``; returns this process's place and device.

    Each process uses ``cuda:LOCAL_RANK`` when CUDA is chosen (``--device auto`` on a GPU machine, or
    ``--device cuda``), else the CPU with the gloo backend.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return World(), resolve_device(device_name)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    device = _rank_device(device_name, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
        control = dist.new_group(backend="gloo")
    else:
        dist.init_process_group("gloo")
        control = None  # the default group is gloo already
    return World(rank, world_size, local_rank, control), device


def _rank_device(device_name: str, local_rank: int) -> torch.device:
    if device_name == "auto":
        device_name = "cuda" if torch.cuda.is_available() else "cpu"
    device = resolve_device(device_name)
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise UserError(f"--device {device_name}: several training processes need CUDA GPUs or the CPU")
    if device.index is not None:
        raise UserError(f"--device {device_name}: with torchrun each process uses cuda:LOCAL_RANK; pass --device cuda")
    if local_rank >= torch.cuda.device_count():
        raise UserError(f"local rank {local_rank} has no GPU: this machine has {torch.cuda.device_count()}")
    return torch.device("cuda", local_rank)


def shutdown(d: World) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()


def launch(nproc: int, args: list[str]) -> int:
    """Run ``cyclegan <args>`` as ``nproc`` processes on this machine under ``torchrun``; its exit status.

    ``torchrun`` runs in its own session and this process passes SIGINT/SIGTERM on to it once, so that a
    Ctrl-C reaches every rank exactly once: they finish the step, agree to stop and save a checkpoint.
    """
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
           "-m", "cyclegan", *args]
    proc = subprocess.Popen(cmd, start_new_session=True)
    received = []

    def forward(signum, _frame):
        received.append(signum)
        proc.send_signal(signum)

    old = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        status = proc.wait()
        return 130 if received and status else status  # torchrun fails when signalled; say "interrupted"
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
