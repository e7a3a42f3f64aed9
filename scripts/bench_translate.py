"""Throughput of ``cyclegan translate``: model-only vs end-to-end, in images per second.

Model-only runs the generator (normalise, pad, forward, crop) on a batch already in device memory.
End-to-end is the whole command on a folder of JPEGs: read, decode, copy, infer, encode, write. Their
ratio says how much the pipeline around the model costs; on a GPU the target is ≥ 0.8 at 1024².

    python scripts/bench_translate.py                      # resnet_9blocks, ngf=64, random weights
    python scripts/bench_translate.py --sizes 256 --count 8 --batch-size 4 --precision fp32
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cyclegan.config import TranslateConfig  # noqa: E402
from cyclegan.models import GeneratorSpec, build_generator  # noqa: E402
from cyclegan.runtime import resolve_device, resolve_precision  # noqa: E402
from cyclegan.translate import Translator, translate_folder  # noqa: E402


def photo_like(size: int, seed: int) -> Image.Image:
    """Smooth colour fields with some grain: decodes and encodes like a photo, unlike pure noise."""
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8), "RGB")
    arr = np.asarray(small.resize((size, size), Image.BICUBIC), dtype=np.float32)
    arr += rng.normal(0, 6, arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def model_only(translator: Translator, size: int, count: int, batch_size: int, warmup: int) -> float:
    device = translator.device
    x = torch.randint(0, 256, (batch_size, 3, size, size), dtype=torch.uint8, device=device)
    x = x.contiguous(memory_format=translator.memory_format)
    for _ in range(warmup):
        translator(x)
    sync(device)
    batches = max(1, count // batch_size)
    start = time.perf_counter()
    for _ in range(batches):
        translator(x)
    sync(device)
    return batches * batch_size / (time.perf_counter() - start)


def end_to_end(translator: Translator, folder: Path, out: Path, args) -> float:
    cfg = TranslateConfig(input=str(folder), output=str(out), overwrite=True, batch_size=args.batch_size,
                          workers=args.workers, writers=args.writers, progress=False)
    start = time.perf_counter()
    summary = translate_folder(cfg, translator=translator)
    elapsed = time.perf_counter() - start
    assert len(summary.converted) == len(list(folder.iterdir())), summary.failed
    return len(summary.converted) / elapsed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--net-g", default="resnet_9blocks")
    p.add_argument("--ngf", type=int, default=64)
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 1024])
    p.add_argument("--count", type=int, default=64, help="images per size (end-to-end and model-only)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2, help="untimed batches before model-only timing")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--writers", type=int, default=0)
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality of the generated inputs")
    args = p.parse_args()

    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    spec = GeneratorSpec.from_name(args.net_g, ngf=args.ngf)
    torch.manual_seed(0)
    translator = Translator(build_generator(spec), spec, device, precision,
                            channels_last=args.channels_last, compile=args.compile)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"{torch.get_num_threads()} CPU threads"
    print(f"{args.net_g} ngf={args.ngf}, random weights | {device} ({name}) | {precision}"
          f" | batch {args.batch_size} | workers {args.workers} | channels_last {args.channels_last}"
          f" | compile {args.compile}")
    print(f"{'size':>6} {'images':>7} {'model-only img/s':>17} {'end-to-end img/s':>17} {'ratio':>6}")
    with tempfile.TemporaryDirectory(prefix="bench_translate_") as tmp:
        for size in args.sizes:
            folder = Path(tmp) / f"in_{size}"
            folder.mkdir()
            for i in range(args.count):
                photo_like(size, i).save(folder / f"{i:05d}.jpg", quality=args.quality)
            model = model_only(translator, size, args.count, args.batch_size, args.warmup)
            e2e = end_to_end(translator, folder, Path(tmp) / f"out_{size}", args)
            print(f"{size:>5}² {args.count:>7} {model:>17.3g} {e2e:>17.3g} {e2e / model:>6.2f}", flush=True)


if __name__ == "__main__":
    main()
