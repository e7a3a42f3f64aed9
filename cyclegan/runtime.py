"""Device, numeric-precision and data-worker choices, made once and in one place."""

from __future__ import annotations

import contextlib
import functools
import os

import torch

from .errors import UserError

PRECISIONS = ("fp32", "bf16", "fp16")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then CPU; an explicit device that is absent is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise UserError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps") from e
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) present")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError(f"--device {name}: Apple MPS is not available on this machine (use --device cpu)")
    return device


def data_workers(requested: int) -> int:
    """``--workers``, capped at the CPUs this process may run on: more decoding processes than CPUs only
    compete with the model for them (and PyTorch warns that the loader may slow down or freeze)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(requested, cpus)


# /proc/cpuinfo flags of x86 CPUs with bf16 matrix or dot-product instructions (Intel AMX, AVX-512 BF16 on
# Intel Cooper Lake and later and on AMD Zen 4 and later). Elsewhere bf16 is emulated and slower than fp32.
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware and PyTorch's kernels use it.

    PyTorch must run its AVX-512 kernels (``get_cpu_capability``; oneDNN then picks the bf16
    instructions) and the CPU must report AMX-BF16 or AVX512-BF16.
    """
    capability = torch.backends.cpu.get_cpu_capability()
    return capability.startswith("AVX512") and bool(cpu_flags() & set(CPU_BF16_FLAGS))


def default_precision(device: torch.device) -> str:
    """bf16 on a GPU or CPU that runs it natively, fp32 everywhere else.

    On a CPU with AVX512-BF16 a ResNet generator runs about twice as fast in bf16 autocast as in fp32,
    within a couple of 0-255 levels of it (``scripts/bench_translate.py --device cpu``).
    """
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    if device.type == "cpu" and cpu_has_native_bf16():
        return "bf16"
    return "fp32"


def resolve_precision(precision: str | None, device: torch.device) -> str:
    if precision in (None, "auto"):
        return default_precision(device)
    if precision not in PRECISIONS:
        raise UserError(f"--precision {precision}: choose one of auto, {', '.join(PRECISIONS)}")
    return precision


def autocast(device: torch.device, precision: str):
    """An autocast context for bf16/fp16, or a no-op for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


@functools.cache  # one answer per device for the process: the check itself compiles
def compile_problem(device: torch.device) -> str | None:
    """Why ``torch.compile`` cannot run on ``device`` here (no compiler, unsupported platform), or None.

    ``torch.compile`` fails only when a compiled function first runs, so compile a one-line function now
    instead of failing in the middle of the first training step.
    """
    try:
        torch.compile(lambda x: x * 2 + 1, dynamic=False)(torch.ones(2, device=device))
    except Exception as e:
        lines = str(e).strip().splitlines()
        return f"{type(e).__name__}: {lines[0] if lines else ''}"
    return None


def memory_format(channels_last: bool | None, device: torch.device,
                  compiled_training: bool = False) -> torch.memory_format:
    """``--channels-last``, or by default (None) the faster layout: channels-last on a CUDA GPU (tensor
    cores read NHWC) and for a compiled training step on a CPU, NCHW for the rest on a CPU.

    Measured with bf16 on a CPU with AVX512-BF16 and AMX, ResNet-9 (``scripts/bench_cpu.py``): in NCHW a
    generator's forward is 1.2× (eager) to 1.9× (compiled, 512²) as fast as in channels-last, and an eager
    training step 1.2×; a compiled training step is 1.6× as fast in channels-last."""
    if channels_last is None:
        channels_last = device.type == "cuda" or compiled_training
    return torch.channels_last if channels_last else torch.contiguous_format


def compile_network(net: torch.nn.Module, device: torch.device, precision: str,
                    dynamic: bool | None = None) -> torch.nn.Module:
    """``torch.compile(net)`` for running on ``device`` in ``precision``.

    On a CPU, inductor's AVX-512 bf16/fp16 kernels transpose 32×32 tiles wrongly when a tensor changes
    layout inside a fused kernel (seen with PyTorch 2.14: NaN gradients from a ResNet block's
    InstanceNorm → ReLU → ReflectionPad → conv under bf16 autocast; the 16×16 tiles of its 256-bit kernels
    are right). Reduced precision on a CPU therefore compiles 256-bit vector code.
    """
    options = {"cpp.simdlen": 256} if device.type == "cpu" and precision != "fp32" else None
    return torch.compile(net, dynamic=dynamic, options=options)


class Amp:
    """Mixed precision for a training run: the autocast context, and every update through one gradient
    scaler, which scales the loss with fp16 (whose gradients underflow otherwise) and does nothing else."""

    def __init__(self, device: torch.device, precision: str):
        self.device, self.precision = device, precision
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

    def autocast(self):
        return autocast(self.device, self.precision)

    def backward(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """Backpropagate ``loss`` (scaled) and step ``optimizer`` (skipped when the gradients overflowed)."""
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)

    def update(self) -> None:
        """Adjust the scale once per training step, after every optimiser of the step has stepped."""
        self.scaler.update()

    def state_dict(self) -> dict:
        return self.scaler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        if state:  # empty when the run trained without fp16
            self.scaler.load_state_dict(state)
