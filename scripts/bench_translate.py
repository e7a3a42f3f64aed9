"""Throughput of ``cyclegan translate``: model-only vs end-to-end, in images per second.

Model-only runs the generator (normalise, pad, forward, crop) on a batch already in device memory.
End-to-end is the whole command on a folder of JPEGs: read, decode, copy, infer, encode, write. Their
ratio says how much the pipeline around the model costs; on a GPU the target is ≥ 0.8 at 1024².

    python scripts/bench_translate.py                      # resnet_9blocks, ngf=64, random weights
    python scripts/bench_translate.py --sizes 256 --count 8 --batch-size 4 --precision fp32

``--compare`` instead times the model alone in several configurations in one process, one after the
other, and prints each one's speed against the first and its difference from fp32 in 0-255 levels on a
photo-like image (random weights amplify rounding more than trained ones: ``--checkpoint`` measures a
trained generator). A configuration joins a precision (fp32, bf16, fp16) and 'compile' with '-'. On a CPU:

    python scripts/bench_translate.py --device cpu --compare fp32,bf16,fp32-compile,bf16-compile \
        --sizes 512 --count 6 --batch-size 1
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
from cyclegan.networks import load_network  # noqa: E402
from cyclegan.runtime import PRECISIONS, cpu_has_native_bf16, resolve_device, resolve_precision  # noqa: E402
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


def layout(args) -> str:
    return "auto" if args.channels_last is None else str(args.channels_last)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    bf16 = "native bf16" if cpu_has_native_bf16() else "no native bf16"
    return f"{torch.get_num_threads()} CPU threads, {torch.backends.cpu.get_cpu_capability()}, {bf16}"


def compare(net: torch.nn.Module, spec, device: torch.device, args) -> None:
    """Model-only images/s of each ``--compare`` configuration, its speed-up over the first, and its
    difference from fp32 on one photo-like image (max and mean over the pixels, 0-255 levels)."""
    names = args.compare.split(",")
    for name in names:
        tokens = name.split("-")
        if tokens[0] not in PRECISIONS or any(t != "compile" for t in tokens[1:]):
            raise SystemExit(f"unknown configuration {name!r}: a precision ({', '.join(PRECISIONS)}), "
                             "optionally followed by -compile")
    print(f"{args.net_g} ngf={args.ngf}, {'weights ' + args.checkpoint if args.checkpoint else 'random weights'}"
          f" | {device} ({device_name(device)}) | batch {args.batch_size} | channels_last {layout(args)}"
          f" | torch {torch.__version__} | {args.warmup} warm-up + {args.count // args.batch_size} timed batches")
    print(f"| {'size':>5} | {'configuration':<14} | {'img/s':>7} | {'s/img':>7} | {'speed-up':>8} | "
          f"{'max diff':>8} | {'mean diff':>9} |")
    print("|-------|----------------|---------|---------|----------|----------|-----------|")
    for size in args.sizes:
        photo = torch.from_numpy(np.array(photo_like(size, 0))).permute(2, 0, 1)[None]
        reference, first = None, None
        for name in names:
            precision, compiled = name.split("-")[0], name.endswith("-compile")
            torch._dynamo.reset()
            translator = Translator(net, spec, device, precision, channels_last=args.channels_last,
                                    compile=compiled)
            ips = model_only(translator, size, args.count, args.batch_size, args.warmup)
            y = translator(photo).cpu()
            reference = y if reference is None and precision == "fp32" else reference
            first = first or ips
            if reference is not None:
                diff = (y.clamp(-1, 1) - reference.clamp(-1, 1)).abs() * 127.5
                diffs = f"{diff.max().item():>8.2f} | {diff.mean().item():>9.3f}"
            else:
                diffs = f"{'n/a':>8} | {'n/a':>9}"
            print(f"| {size:>4}² | {name:<14} | {ips:>7.3g} | {1 / ips:>7.3f} | {ips / first:>7.2f}x | {diffs} |",
                  flush=True)


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
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="memory format (default: translate's choice for the device)")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality of the generated inputs")
    p.add_argument("--compare", help="configurations to time against each other, model only, e.g. "
                   "fp32,bf16,bf16-compile (fp32 first: the others' differences are taken from it)")
    p.add_argument("--checkpoint", help="a trained generator (run folder, .safetensors, .pth) instead of "
                   "random weights")
    args = p.parse_args()

    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    torch.manual_seed(0)
    if args.checkpoint:
        net, spec = load_network(args.checkpoint)
    else:
        spec = GeneratorSpec.from_name(args.net_g, ngf=args.ngf)
        net = build_generator(spec)
    if args.compare:
        return compare(net, spec, device, args)
    translator = Translator(net, spec, device, precision, channels_last=args.channels_last, compile=args.compile)
    name = device_name(device)
    print(f"{args.net_g} ngf={args.ngf}, random weights | {device} ({name}) | {precision}"
          f" | batch {args.batch_size} | workers {args.workers} | channels_last {layout(args)}"
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
