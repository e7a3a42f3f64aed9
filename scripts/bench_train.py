"""Time the CycleGAN training step: the original implementation's setup against the fast configurations.

    python scripts/bench_train.py                     # a GPU: 256², every configuration
    python scripts/bench_train.py --device cpu --iters 3 --warmup 1   # a CPU: fp32 against bf16 and compile

All configurations run in this one process, one after another, each with a fresh ``Trainer`` stepping on
synthetic images; timing starts after the warm-up steps (which also absorb torch.compile's compilation
and cuDNN's autotuning). The baseline (a) is the original release's setup: fp32, eager, batch 1, NCHW,
no cuDNN autotuning. A configuration name joins tokens with '-': a precision (fp32, bf16, fp16), 'cl'
(channels-last), 'compile', and 'bN' (batch size N, default 1); e.g. ``bf16-cl-compile-b8``.
Images/s counts training pairs (one image of each domain) per second. The FLOPs of one iteration (both
generators and discriminators, forward and backward, identity loss included) are counted once by
``torch.utils.flop_counter``; on a GPU each configuration's TFLOP/s is also given as a fraction of the
GPU's dense bf16 tensor-core peak (``--peak-tflops`` for a GPU not in ``BF16_PEAK_TFLOPS``).
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cyclegan.config import TrainConfig  # noqa: E402
from cyclegan.runtime import PRECISIONS, cpu_has_native_bf16, resolve_device  # noqa: E402
from cyclegan.train import Trainer  # noqa: E402

BASELINE = "fp32"
FAST = "bf16,bf16-cl,bf16-cl-compile,bf16-cl-compile-b4,bf16-cl-compile-b8"
# On a CPU with native bf16 (AVX512-BF16, AMX) bf16 autocast is the large gain; compile is measured on both.
CPU_FAST = "bf16,bf16-cl,fp32-compile,bf16-cl-compile"
# Dense (no sparsity) bf16 tensor-core peaks in TFLOP/s from NVIDIA's datasheets, by a part of the device name;
# the first match wins, so the specific names come before "H100".
BF16_PEAK_TFLOPS = (("H200", 989.0), ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0), ("A100", 312.0),
                    ("L40S", 362.0), ("L4", 121.0))


@dataclass
class Setup:
    name: str
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    batch: int = 1


def parse(name: str) -> Setup:
    setup = Setup(name)
    for token in name.split("-"):
        if token in PRECISIONS:
            setup.precision = token
        elif token == "cl":
            setup.channels_last = True
        elif token == "compile":
            setup.compile = True
        elif token[:1] == "b" and token[1:].isdigit():
            setup.batch = int(token[1:])
        else:
            raise SystemExit(f"unknown token {token!r} in configuration {name!r} "
                             f"(use {', '.join(PRECISIONS)}, cl, compile, bN)")
    return setup


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bf16_peak_tflops(device_name: str) -> float | None:
    return next((peak for part, peak in BF16_PEAK_TFLOPS if part in device_name), None)


def iteration_flops(args, device: torch.device) -> float:
    """FLOPs of one training iteration at batch 1 (the second one: the first fills the image pool)."""
    cfg = TrainConfig(net_g=args.net_g, ngf=args.ngf, ndf=args.ndf, image_size=args.size)
    torch.manual_seed(0)
    trainer = Trainer(cfg, device, "fp32")
    real_A, real_B = (torch.rand(1, 3, args.size, args.size, device=device) * 2 - 1 for _ in range(2))
    trainer.step(real_A, real_B)
    with FlopCounterMode(display=False) as counter:
        trainer.step(real_A, real_B)
    return float(counter.get_total_flops())


def run(setup: Setup, args, device: torch.device) -> dict:
    """Warm up, then time ``args.iters`` steps; seconds per step, warm-up time and peak memory."""
    torch._dynamo.reset()  # compile each configuration afresh, for its own shapes
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        # the original release leaves cuDNN autotuning off; training turns it on
        torch.backends.cudnn.benchmark = setup.name != BASELINE
    cfg = TrainConfig(net_g=args.net_g, ngf=args.ngf, ndf=args.ndf, image_size=args.size, batch_size=setup.batch,
                      channels_last=setup.channels_last, compile=setup.compile)
    torch.manual_seed(0)
    trainer = Trainer(cfg, device, setup.precision)
    real_A, real_B = (torch.rand(setup.batch, 3, args.size, args.size, device=device).mul(2).sub(1)
                      for _ in range(2))
    t0 = time.perf_counter()
    for _ in range(args.warmup):
        trainer.step(real_A, real_B)
    sync(device)
    t1 = time.perf_counter()
    for _ in range(args.iters):
        losses = trainer.step(real_A, real_B)
    sync(device)
    t2 = time.perf_counter()
    if not all(torch.isfinite(v).item() for v in losses.values()):
        print(f"warning: {setup.name} produced non-finite losses", file=sys.stderr)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return {"s_per_it": (t2 - t1) / args.iters, "warmup_s": t1 - t0, "peak_gib": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--size", type=int, default=256, help="image size (the paper: 256)")
    parser.add_argument("--configs", default=None, help=f"fast configurations to compare (default on a GPU: "
                        f"{FAST}; on a CPU: {CPU_FAST})")
    parser.add_argument("--iters", type=int, default=20, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (compilation happens here)")
    parser.add_argument("--net-g", default="resnet_9blocks")
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--ndf", type=int, default=64)
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the GPU's dense bf16 peak in TFLOP/s (default: from its name, for the GPUs listed)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    configs = args.configs or (FAST if device.type == "cuda" else CPU_FAST)
    setups = [parse(BASELINE)] + [parse(n) for n in configs.split(",") if n and n != BASELINE]

    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        bf16 = "native bf16" if cpu_has_native_bf16() else "no native bf16"
        name = f"CPU ({torch.get_num_threads()} threads, {torch.backends.cpu.get_cpu_capability()}, {bf16})"
    flops = iteration_flops(args, device)
    peak = args.peak_tflops or (bf16_peak_tflops(name) if device.type == "cuda" else None)
    print(f"# {args.net_g} ngf={args.ngf} ndf={args.ndf}, {args.size}x{args.size}, {name}, torch {torch.__version__}, "
          f"{args.warmup} warm-up + {args.iters} timed steps; (a) = {BASELINE} (eager, batch 1, NCHW)")
    print(f"# one iteration (batch 1): {flops / 1e12:.2f} TFLOP; bf16 peak: "
          f"{f'{peak:g} TFLOP/s' if peak else 'unknown (--peak-tflops)'}\n")
    header = f"| {'configuration':<24} | {'images/s':>8} | {'s/iteration':>11} | {'peak memory':>11} | " \
             f"{'speed-up':>8} | {'warm-up s':>9} | {'TFLOP/s':>7} | {'of peak':>7} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    base_ips = None
    for setup in setups:
        try:
            r = run(setup, args, device)
        except Exception as e:  # e.g. out of memory at a large batch: report it and go on
            print(f"| {setup.name:<24} | failed: {type(e).__name__}: {str(e).splitlines()[0][:80]}")
            continue
        ips = setup.batch / r["s_per_it"]
        base_ips = base_ips or (ips if setup.name == BASELINE else None)
        mem = f"{r['peak_gib']:.2f} GiB" if r["peak_gib"] is not None else "n/a"
        speedup = f"{ips / base_ips:.2f}x" if base_ips else "n/a"
        label = setup.name + (" (a)" if setup.name == BASELINE else "")
        tflops = ips * flops / 1e12  # FLOPs grow with the batch as images/s counts it
        of_peak = f"{tflops / peak:.1%}" if peak else "n/a"
        print(f"| {label:<24} | {ips:>8.2f} | {r['s_per_it']:>11.4f} | {mem:>11} | {speedup:>8} | "
              f"{r['warmup_s']:>9.1f} | {tflops:>7.3f} | {of_peak:>7} |", flush=True)
    if device.type != "cuda":
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
        print(f"\npeak memory per configuration is measured on CUDA only; this process peaked at {rss:.2f} GiB RSS")


if __name__ == "__main__":
    main()
