"""Seconds per image of ``cyclegan stylize``: L-BFGS steps through VGG19 at square output sizes.

    python scripts/bench_stylize.py                        # 300 steps at 256² and 512², current device
    python scripts/bench_stylize.py --steps 20 --sizes 256 # a quick CPU run, extrapolated to 300 steps

Each step is one forward and backward pass (the loop's cost does not depend on the images or on the
weights' values, so synthetic images and, without --vgg-weights, random weights give the same timing).
The figure includes the final loss evaluation that ``stylize`` makes. With fewer --steps than
--target-steps it is extrapolated from the measured time per step, and labelled so. Run from the
repository root after ``pip install -e .`` (or with ``PYTHONPATH=.``).
"""

from __future__ import annotations

import argparse
import time

import torch

from cyclegan import nst
from cyclegan.config import StylizeConfig
from cyclegan.runtime import resolve_device


def synthetic_image(size: int, seed: int, device: torch.device) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, 8, 8, generator=gen)
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic").clamp(0, 1).to(device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512], help="output sizes (square)")
    parser.add_argument("--steps", type=int, default=300, help="L-BFGS steps to time per size")
    parser.add_argument("--target-steps", type=int, default=300, help="steps per image the figure is for")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (cuDNN autotuning, caches)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
    parser.add_argument("--vgg-weights", default=None, help="VGG19 features state dict (default: random weights)")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    cfg = StylizeConfig()
    layers = [*cfg.content_layers, *cfg.style_layers]
    if args.vgg_weights:
        features = nst.load_vgg19(args.vgg_weights, layers, device=device)
    else:
        features = nst.vgg19_features()[: max(nst.LAYER_INDEX[n] for n in layers) + 1].to(device).eval()
    extractor = nst.VGGFeatures(features, layers).to(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} CPU threads"
    print(f"device: {device} ({name}), torch {torch.__version__}, VGG19 weights: {args.vgg_weights or 'random'}")
    print(f"L-BFGS, content {cfg.content_layers}, style {cfg.style_layers}, fp32\n")
    print(f"{'size':>6} {'steps timed':>11} {'s/step':>8} {f's/image ({args.target_steps} steps)':>24}")

    for size in args.sizes:
        content, style = synthetic_image(size, 0, device), synthetic_image(size, 1, device)
        grams = nst.style_targets(extractor, [style], [1.0], cfg.style_layers)
        objective = nst.Objective(extractor, content, grams, cfg.content_layers)
        nst.optimize(objective, content, args.warmup)
        count = []
        sync(device)
        start = time.perf_counter()
        nst.optimize(objective, content, args.steps, on_step=count.append)
        sync(device)
        seconds = time.perf_counter() - start
        per_step = seconds / len(count)
        label = "" if len(count) >= args.target_steps else f"  (extrapolated from {len(count)} steps)"
        print(f"{size:>5}² {len(count):>11} {per_step:>8.3f} {per_step * args.target_steps:>24.1f}{label}")


if __name__ == "__main__":
    main()
