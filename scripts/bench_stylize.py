"""Time per image of every style method, one table: gatys (``stylize``), fast (Johnson), CIN and AdaIN.

    python scripts/bench_stylize.py                          # 256², 512², 1024² on the current device
    python scripts/bench_stylize.py --sizes 256 --steps 3    # a quick CPU run

gatys: seconds per L-BFGS step through VGG19 (one forward and backward pass), and per image at
--target-steps steps; with fewer --steps timed than that, the per-image figure is extrapolated from the
time per step (and labelled so). fast: the transformer net of Johnson et al. (pytorch/examples'
fast_neural_style), one forward pass; CIN: the same net with conditional instance norm for --cin-styles
styles; AdaIN: encoder (VGG19 to relu4_1), adaptive instance norm, decoder. The feed-forward methods run
under --precision (auto: bf16 on a GPU that supports it); gatys runs in fp32, as ``stylize`` does.

Timings do not depend on the weights' values or the images, so random weights and synthetic images are
used. Run from the repository root after ``pip install -e .`` (or with ``PYTHONPATH=.``).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from cyclegan.config import StylizeConfig
from cyclegan.runtime import autocast, resolve_device, resolve_precision
from cyclegan.style import adain, gatys, vgg
from cyclegan.style.fast import TransformerNet


def synthetic_image(size: int, seed: int, device: torch.device) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, 8, 8, generator=gen)
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic").clamp(0, 1).to(device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int = 2) -> float:
    """Mean seconds of one call of ``fn`` after ``warmup`` untimed calls (cuDNN autotuning, caches)."""
    for _ in range(warmup):
        fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync(device)
    return (time.perf_counter() - start) / repeats


def gatys_per_step(extractor: vgg.VGGFeatures, size: int, steps: int, device: torch.device) -> float:
    content, style = synthetic_image(size, 0, device), synthetic_image(size, 1, device)
    return interleaved_step_seconds([objective(extractor, content, style, None)], content, steps, 1, device)[0]


def objective(extractor, content, style, hist) -> gatys.Objective:
    """The Gatys loss of ``stylize``'s defaults, with the histogram loss added when ``hist`` is given."""
    cfg = StylizeConfig()
    grams = gatys.style_targets(extractor, [style], [1.0], cfg.style_layers)
    return gatys.Objective(extractor, content, grams, cfg.content_layers, histogram=hist,
                         histogram_weight=0.0 if hist is None else 1.0)


def interleaved_step_seconds(objectives: list[gatys.Objective], content: torch.Tensor, steps: int, rounds: int,
                             device: torch.device) -> list[float]:
    """Median seconds per L-BFGS step of each objective over ``rounds`` rounds of ``steps`` steps, the
    objectives taking turns in each round: a ratio of two of them is then measured under the same load
    (a shared machine's load drifts over a minute; alternating keeps it out of the ratio)."""
    for obj in objectives:
        gatys.optimize(obj, content, 2)  # warm-up
    times: list[list[float]] = [[] for _ in objectives]
    for _ in range(rounds):
        for obj, seen in zip(objectives, times, strict=True):
            count: list = []
            sync(device)
            start = time.perf_counter()
            gatys.optimize(obj, content, steps, on_step=count.append)
            sync(device)
            seen.append((time.perf_counter() - start) / len(count))
    return [statistics.median(seen) for seen in times]


def transformer_nets(device: torch.device, cin_styles: int) -> dict:
    """The fast and CIN networks, random weights."""
    nets = {"fast": TransformerNet(), "CIN": TransformerNet(n_styles=cin_styles)}
    return {k: v.to(device).eval() for k, v in nets.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024], help="image sizes (square)")
    parser.add_argument("--steps", type=int, default=10, help="gatys: L-BFGS steps to time per size")
    parser.add_argument("--rounds", type=int, default=3,
                        help="histogram loss: rounds of --steps steps, plain and +hist taking turns (medians)")
    parser.add_argument("--target-steps", type=int, default=300, help="gatys: steps per image the figure is for")
    parser.add_argument("--repeats", type=int, default=10, help="feed-forward methods: timed passes per size")
    parser.add_argument("--cin-styles", type=int, default=4, help="styles of the CIN network")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", help="feed-forward methods: auto, fp32, bf16 or fp16")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    cfg = StylizeConfig()
    layers = [*cfg.content_layers, *cfg.style_layers]
    features = vgg.vgg19_features()[: max(vgg.LAYER_INDEX[n] for n in layers) + 1].to(device).eval()
    extractor = vgg.VGGFeatures(features, layers).to(device)
    model = adain.AdaIN().to(device).eval()
    model.set_style([synthetic_image(512, 1, device)], [1.0])
    nets = transformer_nets(device, args.cin_styles)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} CPU threads"
    print(f"device: {device} ({name}), torch {torch.__version__}; feed-forward methods in {precision}, gatys in fp32")
    print(f"ms per image (batch 1; random weights); gatys: L-BFGS, {args.steps} steps timed per size\n")
    head = f"gatys ×{args.target_steps} (s)"
    print(f"{'size':>6} {'gatys/step (ms)':>16} {head:>16} {'fast (ms)':>10} {'CIN (ms)':>10} {'AdaIN (ms)':>11}")
    for size in args.sizes:
        per_step = gatys_per_step(extractor, size, args.steps, device)
        x = synthetic_image(size, 0, device)
        with torch.no_grad():
            ff = {}
            for key, net in nets.items():
                pixels = x * 255  # pytorch/examples' networks take 0-255 RGB
                with autocast(device, precision):
                    ff[key] = seconds(lambda net=net, pixels=pixels: net(pixels), device, args.repeats)
            with autocast(device, precision):
                ff["AdaIN"] = seconds(lambda x=x: model(x), device, args.repeats)
        shown = {k: f"{ff[k] * 1e3:.1f}" if k in ff else "n/a" for k in ("fast", "CIN", "AdaIN")}
        extrapolated = "*" if args.steps < args.target_steps else ""
        print(f"{size:>5}² {per_step * 1e3:>16.1f} {per_step * args.target_steps:>15.1f}{extrapolated or ' '} "
              f"{shown['fast']:>10} {shown['CIN']:>10} {shown['AdaIN']:>11}")
    if args.steps < args.target_steps:
        print(f"\n* extrapolated from the time per step ({args.steps} steps timed)")
    photoreal_section(extractor, args.sizes, args.steps, args.rounds, device)


# --- photorealistic and guided terms ------------------------------------------------------------------


def peak_memory_mib(device: torch.device) -> float:
    """Peak memory so far: CUDA's allocator on a GPU, the process's peak resident set on a CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def photoreal_section(extractor: vgg.VGGFeatures, sizes: list[int], steps: int, rounds: int,
                      device: torch.device) -> None:
    """The cost of --photoreal's Matting Laplacian and regulariser, and of --histogram-weight's loss.

    Build: seconds to build the Laplacian once per image, the CSR matrix's size, and the growth of the
    peak memory while building it (sizes run in increasing order, so each row's growth is its own).
    Per step: the regulariser's forward and backward (one sparse matrix product), the histogram loss's
    forward and backward at the style layers, and a whole L-BFGS step with the histogram loss against
    the plain one (taking turns for --rounds rounds of --steps steps; medians, and their ratio).
    """
    from cyclegan.style.histogram import HistogramLoss
    from cyclegan.style.photoreal import PhotorealismLoss

    cfg = StylizeConfig()
    print("\n--photoreal and --histogram-weight (fp32)\n")
    print(f"{'size':>6} {'L build (s)':>12} {'L (MiB)':>8} {'build peak +MiB':>16} {'reg/step (ms)':>14} "
          f"{'hist/step (ms)':>15} {'step (ms)':>10} {'+hist step (ms)':>16} {'+hist/plain':>12}")
    for size in sorted(sizes):
        content, style = synthetic_image(size, 0, device), synthetic_image(size, 1, device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        before = peak_memory_mib(device)
        sync(device)
        start = time.perf_counter()
        reg = PhotorealismLoss(content, 1e4)
        sync(device)
        build = time.perf_counter() - start
        # On a CPU the peak resident set only shows growth beyond the earlier rows' (and the VGG runs') peak.
        grown = peak_memory_mib(device) - (0 if device.type == "cuda" else before)
        lap = reg.laplacian
        mib = sum(t.numel() * t.element_size() for t in (lap.values(), lap.col_indices(), lap.crow_indices())) / 2**20
        x = content.clone().requires_grad_(True)
        per_reg = seconds(lambda x=x, reg=reg: reg(x).backward(), device, 5)
        with torch.no_grad():
            feats = {n: f for n, f in extractor(style).items() if n in cfg.style_layers}
        hist = HistogramLoss([feats], [1.0])
        live = {n: f.clone().requires_grad_(True) for n, f in feats.items()}
        per_hist = seconds(lambda hist=hist, live=live: hist(live).backward(), device, 5)
        plain, with_hist = interleaved_step_seconds(
            [objective(extractor, content, style, None), objective(extractor, content, style, hist)],
            content, steps, rounds, device)
        print(f"{size:>5}² {build:>12.2f} {mib:>8.0f} {grown:>16.0f} {per_reg * 1e3:>14.1f} {per_hist * 1e3:>15.1f} "
              f"{plain * 1e3:>10.1f} {with_hist * 1e3:>16.1f} {with_hist / plain:>12.2f}")


if __name__ == "__main__":
    main()
