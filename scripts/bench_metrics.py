"""How long FID/KID take: the Fréchet distance here vs torchmetrics' on 2048-d features, KID, and
Inception throughput.

    python scripts/bench_metrics.py [--inception PATH] [--device cuda] [--sizes 50 500 2000]

Prints seconds per score for each set size and the FID difference between the two routes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cyclegan.metrics import frechet_distance, kernel_distance, load_inception  # noqa: E402


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def torchmetrics_fid(real: torch.Tensor, fake: torch.Tensor) -> float:
    from torchmetrics.image.fid import FrechetInceptionDistance

    class Given(torch.nn.Module):
        num_features = real.shape[1]

        def forward(self, x):
            return x

    fid = FrechetInceptionDistance(feature=Given())
    fid.update(real, real=True)
    fid.update(fake, real=False)
    return float(fid.compute())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 500, 2000])
    parser.add_argument("--inception", help="FID Inception TorchScript file: also measure images/s")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-torchmetrics", action="store_true", help="its FID takes long on a CPU")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    g = torch.Generator().manual_seed(0)
    for n in args.sizes:
        # Features shaped like Inception pool features: non-negative, correlated.
        mix = torch.randn(2048, 2048, generator=g, dtype=torch.float64) / 45
        real = torch.relu(torch.randn(n, 2048, generator=g, dtype=torch.float64) @ mix)
        fake = torch.relu(torch.randn(n, 2048, generator=g, dtype=torch.float64) @ mix + 0.05)
        ours, t_ours = timed(frechet_distance, real, fake)
        (_, _), t_kid = timed(kernel_distance, real, fake)
        line = f"n={n:5d}  FID here {t_ours:7.3f} s   KID (100 subsets) {t_kid:7.3f} s"
        if not args.skip_torchmetrics:
            theirs, t_theirs = timed(torchmetrics_fid, real, fake)
            line += f"   FID torchmetrics {t_theirs:7.3f} s   |difference| {abs(ours - theirs):.2e} (FID {ours:.3f})"
        print(line, flush=True)
    if args.inception:
        device = torch.device(args.device)
        extractor = load_inception(args.inception, device)
        images = torch.randint(0, 256, (32, 3, 256, 256), dtype=torch.uint8, device=device)
        with torch.no_grad():
            extractor(images)  # warm-up (TorchScript profiles its first runs)
            extractor(images)
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(3):
                extractor(images)
            if device.type == "cuda":
                torch.cuda.synchronize()
        print(f"Inception on {device}: {3 * len(images) / (time.perf_counter() - start):.1f} images/s (256² → 299²)")


if __name__ == "__main__":
    main()
