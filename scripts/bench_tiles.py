"""Tiled translation on the CPU: time and peak memory against the image and the tile size.

Each row runs in a fresh process, so its peak resident memory (VmHWM) is its own: the input and output
images (3 channels each) plus the network's working memory. The network is a random ResNet generator
(--ngf, --blocks; weights do not change time or memory). Rows whose image also runs untiled give the
tiled-vs-untiled difference in 0–255 levels.

    python scripts/bench_tiles.py                                   # 12000×9000, tiles 512/1024/2048
    python scripts/bench_tiles.py --sizes 3000x2250 12000x9000 --tiles 0 1024
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def run_one(w: int, h: int, tile: int, ngf: int, blocks: int, compare: bool) -> dict:
    import torch

    from cyclegan.data import to_uint8
    from cyclegan.models import GeneratorSpec, build_generator
    from cyclegan.translate import Translator

    torch.manual_seed(0)
    spec = GeneratorSpec(ngf=ngf, n_blocks=blocks)
    net = build_generator(spec)
    # a smooth random "photo", so that regions differ in their statistics
    coarse = torch.rand(1, 3, h // 100, w // 100)
    x = (torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear") * 255).to(torch.uint8)
    start = time.perf_counter()
    y = Translator(net, spec, torch.device("cpu"), tile=tile or None)(x)
    seconds = time.perf_counter() - start
    row = {"seconds": seconds}
    if compare:
        diff = (to_uint8(y).int() - to_uint8(Translator(net, spec, torch.device("cpu"))(x)).int()).abs()
        row.update(max_levels=int(diff.max()), mean_levels=float(diff.float().mean()))
    with open("/proc/self/status") as f:
        peak = next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))
    row["peak_gib"] = peak / 2**20
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", nargs="+", default=["12000x9000"], help="WxH images")
    p.add_argument("--tiles", nargs="+", type=int, default=[512, 1024, 2048], help="tile sides; 0: untiled")
    p.add_argument("--ngf", type=int, default=8)
    p.add_argument("--blocks", type=int, default=2)
    p.add_argument("--compare-below", type=int, default=10_000_000,
                   help="also run untiled and compare when an image has fewer pixels than this")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(run_one(**json.loads(args.one))))
        return
    import torch

    print(f"random ResNet generator, ngf={args.ngf}, {args.blocks} blocks; CPU, {torch.get_num_threads()} threads, "
          "fp32")
    print(f"{'image':>12} {'tile':>6} {'seconds':>8} {'peak GiB':>9} {'max lvl':>8} {'mean lvl':>9}")
    for size in args.sizes:
        w, h = map(int, size.split("x"))
        for tile in args.tiles:
            job = {"w": w, "h": h, "tile": tile, "ngf": args.ngf, "blocks": args.blocks,
                   "compare": bool(tile) and w * h < args.compare_below}
            out = subprocess.run([sys.executable, __file__, "--one", json.dumps(job)], capture_output=True, text=True)
            if out.returncode != 0:
                print(f"{size:>12} {tile or '-':>6} failed: {out.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            lv = (f"{r['max_levels']:>8} {r['mean_levels']:>9.5f}" if "max_levels" in r else f"{'':>8} {'':>9}")
            print(f"{size:>12} {tile or '-':>6} {r['seconds']:>8.1f} {r['peak_gib']:>9.2f} {lv}", flush=True)


if __name__ == "__main__":
    main()
