"""Proof by number and picture: CycleGAN and the style networks, trained here and scored against baselines.

    python scripts/proof.py                            # reduced scale, on this CPU (see README: Results)
    python scripts/proof.py --data datasets --paper    # the official datasets at the paper's scale (a GPU)

1. CycleGAN on summer2winter_yosemite and on monet2photo: `cyclegan train` with the paper's losses and
   optimiser (LSGAN, λ_cycle 10, identity 0.5·λ, pool 50, Adam 2e-4 β1 0.5, constant then linearly decaying
   learning rate), then `cyclegan evaluate RUN --baseline nst` on the test split with the run's last
   checkpoint (never the best-on-test one): KID and FID of CycleGAN, of neural style transfer (Gatys et al.,
   each input painted after a training image of the target domain, taken in turn) and of "do nothing" (the
   inputs as they are) against the real test images of the target domain, in both directions; beside them,
   as many real training images of the target domain (what a perfect translation would score), and the same
   images through the run's generator (what its own rendering costs: a translation can hardly do better).
2. Fast style (Johnson et al.): a one-style network and a three-style one (conditional instance norm),
   trained with `cyclegan train-style` on the dataset's training photos with Monet paintings of its training
   split, measured on test photos they never saw: the style distance (Gram matrices of VGG19's style layers)
   of the outputs to each painting against that of the photos themselves, whether each output is nearer to
   its own photo than to any other (content kept), and an even `--style-mix` of two styles, whose distance to
   each painting must lie between those of the two pure styles.
3. One table, written with every figure to OUT/proof.json, and a gallery (OUT/gallery/*.jpg). The exit
   status is 1 when CycleGAN does not beat both baselines on mean KID in every direction, or a style network
   fails a check; 2 on a usage error.

Stopped, it continues where it was: runs resume from their last checkpoint and NST outputs are reused;
--overwrite starts afresh. Datasets: DATA/NAME or DATA/NAME_mini (`cyclegan datasets download NAME`).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rich.console import Console
from rich.logging import RichHandler

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cyclegan  # noqa: E402
from cyclegan.config import EvalConfig, StyleTrainConfig, TrainConfig, validate  # noqa: E402
from cyclegan.data import image_folder  # noqa: E402
from cyclegan.errors import UserError  # noqa: E402
from cyclegan.evaluate import DIRECTIONS, METHODS, evaluate_run  # noqa: E402
from cyclegan.files import write_json  # noqa: E402
from cyclegan.models.generator import UPSAMPLES  # noqa: E402
from cyclegan.outputs import write_image  # noqa: E402
from cyclegan.run import CONFIG_FILE, STATE_FILE  # noqa: E402
from cyclegan.style import fast, vgg  # noqa: E402
from cyclegan.style.fast import FastStyleRun  # noqa: E402
from cyclegan.style.images import resize_long_side, to_tensor  # noqa: E402
from cyclegan.train import train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CYCLEGAN_SHARED", ROOT.parent / "shared"))
console = Console()


@dataclass(frozen=True)
class Scale:
    """What the proof trains: the network sizes, schedules and baseline settings."""

    size: int  # training crop; load_size is the paper's ratio, 286/256
    net_g: str
    upsample: str  # the generator's upsampling layers: "transposed" (the paper) or "resize"
    ngf: int
    ndf: int
    epochs: int
    epochs_decay: int
    nst_steps: int
    nst_images: int | None  # NST is scored on a fixed sample of this many test inputs (None: all of them)
    nst_size: int | None  # long side of the NST outputs (None: the test images')
    style_steps: int
    style_arch: str


# The paper's settings, and the reduced ones that fit the CPU budget (README: Results). The reduced scale
# upsamples with resize-convolutions: in its few thousand steps the paper's transposed convolutions keep a
# checkerboard that doubles to triples the KID (README: Why CycleGAN loses here).
PAPER = Scale(size=256, net_g="resnet_9blocks", upsample="transposed", ngf=64, ndf=64, epochs=100,
              epochs_decay=100, nst_steps=300, nst_images=None, nst_size=None, style_steps=40000, style_arch="full")
REDUCED = Scale(size=128, net_g="resnet_6blocks", upsample="resize", ngf=32, ndf=32, epochs=8,
                epochs_decay=8, nst_steps=50, nst_images=20, nst_size=128, style_steps=600, style_arch="full")


@dataclass(frozen=True)
class Task:
    """A CycleGAN proof: a dataset and the names of its domains."""

    name: str
    dataset: str  # official name; a `_mini` subset of it is found too
    domains: tuple[str, str]


TASKS = (Task("summer2winter", "summer2winter_yosemite", ("summer", "winter")),
         Task("monet2photo", "monet2photo", ("Monet", "photo")))
STYLE_DATASET = "monet2photo"  # paintings: its trainA (public domain); photos: trainB to train, testB to measure
N_STYLES = 3
HELD_OUT = 12  # test photos the style networks are measured on
GALLERY_ROWS = 3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, help="folder holding the datasets (default: ../shared/datasets, else "
                   "datasets/)")
    p.add_argument("--out", type=Path, default=ROOT / "checkpoints" / "proof", help="runs, outputs, "
                   "proof.json and the gallery (default: checkpoints/proof)")
    p.add_argument("--paper", action="store_true", help="the paper's scale: 256² crops, ResNet-9, 64 filters, "
                   "100 + 100 epochs, NST 300 steps, style networks 40,000 steps (a GPU's work)")
    def default(field: str, none: str = "") -> str:
        reduced, paper = (none if v is None else v for v in (getattr(REDUCED, field), getattr(PAPER, field)))
        return f"(default: {reduced}, {paper} with --paper)"

    p.add_argument("--size", type=int, help=f"training crop size {default('size')}")
    p.add_argument("--epochs", type=int, help=f"CycleGAN epochs at the initial learning rate {default('epochs')}")
    p.add_argument("--epochs-decay", type=int, help=f"CycleGAN epochs of linear decay {default('epochs_decay')}")
    p.add_argument("--upsample", choices=UPSAMPLES, help="the generators' upsampling layers: "
                   f"the paper's transposed convolutions or resize-convolutions {default('upsample')}")
    p.add_argument("--max-steps", type=int, help="stop every training after this many steps (smoke runs)")
    p.add_argument("--max-images", type=int, help="score a fixed sample of this many test inputs per direction")
    p.add_argument("--nst-images", type=int, help="score NST (and CycleGAN beside it) on a fixed sample of this "
                   f"many test inputs per direction {default('nst_images', 'all')}")
    p.add_argument("--nst-steps", type=int, help=f"NST optimisation steps per image {default('nst_steps')}")
    own = "the test images' own"
    p.add_argument("--nst-size", type=int, help=f"long side of the NST outputs {default('nst_size', own)}")
    p.add_argument("--style-steps", type=int, help=f"training steps of each style network {default('style_steps')}")
    p.add_argument("--tasks", default="summer2winter,monet2photo,style",
                   help="which parts, comma-separated: summer2winter, monet2photo, style")
    p.add_argument("--vgg-weights", help="VGG19 features state dict (default: ../shared's, else torchvision's)")
    p.add_argument("--inception", help="FID Inception TorchScript (default: ../shared's, else downloaded)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="data loading processes")
    p.add_argument("--overwrite", action="store_true", help="start every run afresh instead of continuing it")
    return p.parse_args(argv)


def scale_of(args: argparse.Namespace) -> Scale:
    base = PAPER if args.paper else REDUCED
    given = {"size": args.size, "upsample": args.upsample, "epochs": args.epochs,
             "epochs_decay": args.epochs_decay, "nst_steps": args.nst_steps, "nst_images": args.nst_images,
             "nst_size": args.nst_size, "style_steps": args.style_steps}
    return replace(base, **{k: v for k, v in given.items() if v is not None})


def shared_file(given: str | None, *parts: str) -> str | None:
    """``given``, else the file in ../shared when it is there, else None (the product's download)."""
    if given:
        return given
    path = SHARED.joinpath(*parts)
    return str(path) if path.is_file() else None


def dataset_dir(data: Path, name: str) -> Path:
    for folder in (data / name, data / f"{name}_mini"):
        if all((folder / split).is_dir() for split in ("trainA", "trainB", "testA", "testB")):
            return folder
    raise UserError(f"no {name} (or {name}_mini) with trainA/ trainB/ testA/ testB/ in {data}: "
                    f"`cyclegan datasets download {name} --root {data}`, or give --data")


# --------------------------------------------------------------------------------------------------
# The plan: every configuration, validated before any work


@dataclass
class Plan:
    scale: Scale
    # task name → its training, its evaluation on the test inputs, and that of NST (on a sample of them)
    cyclegan: dict[str, tuple[TrainConfig, EvalConfig, EvalConfig]]
    styles: dict[str, StyleTrainConfig]  # "style1" / "style3" → its training
    held_out: list[Path]  # photos the style networks never saw


def make_plan(args: argparse.Namespace) -> Plan:
    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out {args.out} is a file: give a folder for the proof's runs, tables and gallery")
    scale = scale_of(args)
    data = args.data or next((d for d in (SHARED / "datasets", ROOT / "datasets") if d.is_dir()), ROOT / "datasets")
    parts = args.tasks.split(",")
    unknown = set(parts) - {t.name for t in TASKS} - {"style"}
    if unknown:
        raise UserError(f"--tasks: unknown {', '.join(sorted(unknown))} (summer2winter, monet2photo, style)")
    vgg_weights = shared_file(args.vgg_weights, "weights", "vgg19_features.pth")
    runs = args.out / "runs"
    common = dict(checkpoints_dir=str(runs), max_steps=args.max_steps, device=args.device, workers=args.workers,
                  wandb_mode="disabled", overwrite=args.overwrite)
    cyclegan_runs = {}
    for task in TASKS:
        if task.name not in parts:
            continue
        folder = dataset_dir(data, task.dataset)
        tcfg = TrainConfig(name=task.name, domain_a=str(folder / "trainA"), domain_b=str(folder / "trainB"),
                           image_size=scale.size, load_size=round(scale.size * 286 / 256), net_g=scale.net_g,
                           upsample=scale.upsample, ngf=scale.ngf, ndf=scale.ndf, epochs=scale.epochs,
                           epochs_decay=scale.epochs_decay, sample_every=500, **common)
        ecfg = EvalConfig(target=str(runs / task.name), max_images=args.max_images, device=args.device,
                          inception=shared_file(args.inception, "weights", "inception-2015-12-05-fid.pt"),
                          wandb_mode="disabled", workers=args.workers)
        nst_images = min([n for n in (args.max_images, scale.nst_images) if n is not None], default=None)
        nst = replace(ecfg, baseline="nst", nst_steps=scale.nst_steps, nst_size=scale.nst_size,
                      max_images=nst_images, vgg_weights=vgg_weights)
        cyclegan_runs[task.name] = (tcfg, ecfg, nst)
    styles, held_out = {}, []
    if "style" in parts:
        folder = dataset_dir(data, STYLE_DATASET)
        paintings = [str(p) for p in image_folder(folder / "trainA", "paintings")[:N_STYLES]]
        held_out = image_folder(folder / "testB", "test photos")[:HELD_OUT]
        for name, chosen in (("style1", paintings[:1]), (f"style{N_STYLES}", paintings)):
            styles[name] = StyleTrainConfig(name=name, styles=chosen, content=str(folder / "trainB"),
                                            image_size=scale.size, steps=scale.style_steps, arch=scale.style_arch,
                                            vgg_weights=vgg_weights, sample_every=max(scale.style_steps, 1),
                                            save_every=500, **common)
    for cfg in [c for pair in cyclegan_runs.values() for c in pair] + list(styles.values()):
        validate(cfg)
    return Plan(scale, cyclegan_runs, styles, held_out)


def continuing(cfg):
    """The config that continues a run already in its folder (a stopped proof goes on where it was). A run
    stopped before its first checkpoint saved nothing to continue: it starts again in its folder."""
    folder = Path(cfg.checkpoints_dir) / cfg.name
    saved, begun = (folder / STATE_FILE).is_file(), (folder / CONFIG_FILE).is_file()
    return replace(cfg, resume=saved and not cfg.overwrite, overwrite=cfg.overwrite or (begun and not saved))


# --------------------------------------------------------------------------------------------------
# CycleGAN


def prove_cyclegan(tcfg: TrainConfig, ecfg: EvalConfig, nst: EvalConfig, task: Task) -> dict:
    """Train (or continue) the run, then score it twice on its test split: beside "do nothing" on every test
    input, and beside NST on NST's sample of them (each comparison on the same inputs)."""
    start = time.perf_counter()
    result = train(continuing(tcfg))
    if result.interrupted:
        raise KeyboardInterrupt
    train_s = time.perf_counter() - start
    against_nothing = evaluate_run(ecfg)
    against_nst = evaluate_run(nst)  # its outputs make the gallery: input | CycleGAN | NST
    rows = (score_rows(task, against_nothing, ("do_nothing", "real", "identity", "cyclegan"), "do nothing", train_s)
            + score_rows(task, against_nst, ("cyclegan", "nst"), "NST", train_s))
    return {"rows": rows, "train_s": train_s, "steps": result.step, "results": against_nst}


def score_rows(task: Task, results: dict, methods: tuple[str, ...], against: str, train_s: float) -> list[dict]:
    """One table row per direction and method: its scores, the time its outputs took, their texture."""
    rows = []
    for name, res in results.items():
        src, dst = (task.domains["AB".index(d)] for d in DIRECTIONS[name])
        for method in (m for m in methods if m in res.scores):  # the references need the training folder
            s = res.scores[method]
            seconds = res.seconds.get(method, 0.0) + (train_s if method == "cyclegan" else 0.0)
            images = res.images(method)
            rows.append({"task": task.name, "direction": f"{src} → {dst}", "against": against,
                         "method": METHODS[method], "kid": s.kid_mean, "kid_std": s.kid_std, "fid": s.fid,
                         "images": s.n_fake, "seconds": seconds,
                         "texture": float(np.mean([periodic_texture(p) for p in images]))})
    return rows


def periodic_texture(path: Path) -> float:
    """How strongly an image repeats every 2 or 4 pixels, the imprint of two stride-2 upsampling layers
    (checkerboard artifacts, Odena et al. 2016): the magnitude of its spectrum at those frequencies over the
    median magnitude around each, averaged. 1-4 for JPEG photographs (their 8×8 blocks share these
    frequencies); a network's visible dot pattern gives 5 and more."""
    gray = np.asarray(Image.open(path).convert("L"), dtype=np.float64)
    spectrum = np.abs(np.fft.fft2(gray - gray.mean()))
    h, w = spectrum.shape
    ratios = []
    for fy in (0, h // 4, h // 2, 3 * h // 4):
        for fx in (0, w // 4, w // 2, 3 * w // 4):
            if fy or fx:
                ring = [spectrum[(fy + dy) % h, (fx + dx) % w] for dy in range(-3, 4) for dx in range(-3, 4)
                        if max(abs(dy), abs(dx)) >= 2]
                ratios.append(spectrum[fy, fx] / (np.median(ring) + 1e-9))
    return float(np.mean(ratios))


def cyclegan_failures(rows: list[dict]) -> list[str]:
    """Directions where CycleGAN's mean KID is not below a baseline's on the same inputs; where the
    generator's rendering of real target-domain images alone scores no better than the baseline, it says so
    (the run is too short for any translation of its to win)."""
    failures = []
    rendering = {(r["task"], r["direction"]): r["kid"] for r in rows if r["method"] == METHODS["identity"]}
    for key in dict.fromkeys((r["task"], r["direction"], r["against"]) for r in rows):
        kid = {r["method"]: r["kid"] for r in rows if (r["task"], r["direction"], r["against"]) == key}
        for baseline in (METHODS["do_nothing"], METHODS["nst"]):
            if baseline in kid and not kid[METHODS["cyclegan"]] < kid[baseline]:
                own = rendering.get(key[:2])
                why = (f"; its generator's rendering of real {key[1].split(' → ')[1]} images alone scores "
                       f"{1e3 * own:.1f}: train longer" if own is not None and own >= kid[baseline] else "")
                failures.append(f"{key[0]} {key[1]}: CycleGAN KID {1e3 * kid[METHODS['cyclegan']]:.1f} is not "
                                f"below {baseline}'s {1e3 * kid[baseline]:.1f} (×10³){why}")
    return failures


# --------------------------------------------------------------------------------------------------
# Fast style


class StyleMeter:
    """VGG19 distances as the style networks' losses define them (``style/fast.py``): Gram matrices of the
    style layers against a painting's, and the content layer against a photo's, each relative to the
    target's own magnitude."""

    def __init__(self, vgg_weights: str | None, size: int):
        layers = [fast.CONTENT_LAYER, *fast.STYLE_LAYERS]
        self.features = vgg.VGGFeatures(vgg.load_vgg19(vgg_weights, layers), layers)
        self.size = size

    def __call__(self, image: Image.Image) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return self.features(to_tensor(resize_long_side(image, self.size)))

    def style(self, feats: dict, painting: dict) -> float:
        return sum(vgg.relative_mse(vgg.gram_matrix(feats[n]), vgg.gram_matrix(painting[n])).item()
                   for n in fast.STYLE_LAYERS)

    def content(self, feats: dict, photo: dict) -> float:
        return vgg.relative_mse(feats[fast.CONTENT_LAYER], photo[fast.CONTENT_LAYER]).item()


def measure_style_network(run: Path, cfg: StyleTrainConfig, photos: list[Image.Image], meter: StyleMeter,
                          device: str) -> tuple[dict, dict[str, list[Image.Image]]]:
    """Per style ("0", "1", ...; "mix": an even mix of the first two): the outputs' style distance to each
    painting as a fraction of the photos' own (``to_painting``), and the share of outputs nearest to their
    own photo among all the photos (``own_photo_nearest``). Also returns the output images."""
    net = cyclegan.load(run, device=device)
    photo_f = [meter(p) for p in photos]
    paintings = [meter(Image.open(s).convert("RGB")) for s in cfg.styles]
    several = len(cfg.styles) > 1  # a one-style network takes no --style
    images = {str(i): [net(p, style=str(i) if several else None) for p in photos] for i in range(len(cfg.styles))}
    if several:
        images["mix"] = [net(p, style_mix="0:0.5,1:0.5") for p in photos]
    report = {}
    for key, outs in images.items():
        out_f = [meter(o) for o in outs]
        to_painting = [float(np.mean([meter.style(o, painting) for o in out_f])
                             / np.mean([meter.style(f, painting) for f in photo_f])) for painting in paintings]
        nearest = [int(np.argmin([meter.content(o, f) for f in photo_f])) == i for i, o in enumerate(out_f)]
        report[key] = {"to_painting": to_painting, "own_photo_nearest": float(np.mean(nearest))}
    return report, images


def style_failures(name: str, report: dict) -> list[str]:
    """Each style must move the photos toward its painting and keep each output nearest its own photo; the
    mix must lie between the two pure styles in its distance to both paintings."""
    failures = []
    for key, r in report.items():
        if key != "mix" and not r["to_painting"][int(key)] < 1:
            failures.append(f"{name} style {key}: its outputs are no nearer its painting than the photos are "
                            f"(ratio {r['to_painting'][int(key)]:.2f})")
        if r["own_photo_nearest"] < 1:
            failures.append(f"{name} style {key}: only {r['own_photo_nearest']:.0%} of the outputs are nearest "
                            "to their own photo")
    if "mix" in report:
        for j in (0, 1):
            low, high = sorted((report["0"]["to_painting"][j], report["1"]["to_painting"][j]))
            mixed = report["mix"]["to_painting"][j]
            if not low <= mixed <= high:
                failures.append(f"{name} mix: its distance to painting {j} ({mixed:.2f}) is not between the pure "
                                f"styles' ({low:.2f}, {high:.2f})")
    return failures


def prove_style(cfg: StyleTrainConfig, photos: list[Image.Image], meter: StyleMeter, device: str) -> dict:
    start = time.perf_counter()
    result = FastStyleRun.launch(continuing(cfg))
    if result.interrupted:
        raise KeyboardInterrupt
    train_s = time.perf_counter() - start
    report, images = measure_style_network(result.run_dir, cfg, photos, meter, device)
    return {"train_s": train_s, "steps": result.step, "styles": cfg.styles, "report": report, "images": images}


# --------------------------------------------------------------------------------------------------
# The table, the gallery, the verdict


def grid(rows: list[list[Image.Image | None]], side: int = 128) -> Image.Image:
    """Images in rows and columns, each scaled to ``side`` pixels square (a failed output stays grey)."""
    sheet = Image.new("RGB", (side * len(rows[0]), side * len(rows)), (128, 128, 128))
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            if img is not None:
                sheet.paste(img.convert("RGB").resize((side, side), Image.BICUBIC), (c * side, r * side))
    return sheet


def cyclegan_gallery(task: Task, results: dict, folder: Path) -> None:
    """Per direction: input | CycleGAN | NST for the first few test inputs."""
    for name, res in results.items():
        rows = [[Image.open(src)] + [Image.open(res.outputs[m][src]) if res.outputs[m].get(src) else None
                                     for m in ("cyclegan", "nst") if m in res.outputs]
                for src in res.inputs[:GALLERY_ROWS]]
        write_image(folder / f"{task.name}_{name}.jpg", grid(rows), quality=85)


def style_gallery(paintings: list[str], photos: list[Image.Image], images: dict, folder: Path) -> None:
    """First row: the paintings; then per photo: photo | each style | the mix."""
    keys = list(images)
    top = [None] + [Image.open(p) for p in paintings] + [None] * (len(keys) - len(paintings))
    rows = [top] + [[photos[i]] + [images[k][i] for k in keys] for i in range(min(GALLERY_ROWS, len(photos)))]
    write_image(folder / "style.jpg", grid(rows), quality=85)


def markdown_tables(rows: list[dict], styles: dict) -> str:
    """The results as Markdown tables: readable in a log at any width, and ready for a README."""
    lines = ["| task | direction | method | KID ×10³ | FID | images | seconds | periodic texture |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ours = r["method"] == "CycleGAN"
        kid = f"{1e3 * r['kid']:.1f} ± {1e3 * r['kid_std']:.1f}"
        lines.append(f"| {r['task']} | {r['direction']} | {'**CycleGAN**' if ours else r['method']} | {kid} | "
                     f"{r['fid']:.1f} | {r['images']} | {r['seconds']:.0f} | {r['texture']:.1f} |")
    if styles:
        lines += ["", "| network | style | distance to paintings 0, 1, 2 | content kept | training s |",
                  "|---|---|---|---|---|"]
        for name, s in styles.items():
            for key, r in s["report"].items():
                lines.append(f"| {name} | {key} | {', '.join(f'{v:.2f}' for v in r['to_painting'])} | "
                             f"{r['own_photo_nearest']:.0%} | {s['train_s']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s",
                        handlers=[RichHandler(console=Console(stderr=True), show_time=False, show_path=False)])
    try:
        plan = make_plan(args)
        return prove(plan, args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)  # one line, unwrapped: paths in it stay whole
        return 2
    except KeyboardInterrupt:
        Console(stderr=True).print("stopped: run the same command again to continue", highlight=False)
        return 130


def prove(plan: Plan, args: argparse.Namespace) -> int:
    start = time.perf_counter()
    gallery = args.out / "gallery"
    gallery.mkdir(parents=True, exist_ok=True)
    rows, failures, report = [], [], {"scale": asdict(plan.scale), "device": args.device, "cyclegan": {}}
    for task in TASKS:
        if task.name not in plan.cyclegan:
            continue
        done = prove_cyclegan(*plan.cyclegan[task.name], task)
        rows += done["rows"]
        cyclegan_gallery(task, done["results"], gallery)
        report["cyclegan"][task.name] = {"train_s": done["train_s"], "steps": done["steps"]}
    failures += cyclegan_failures(rows)
    styles = {}
    if plan.styles:
        photos = [Image.open(p).convert("RGB") for p in plan.held_out]
        meter = StyleMeter(next(iter(plan.styles.values())).vgg_weights, plan.scale.size)
        for name, cfg in plan.styles.items():
            styles[name] = prove_style(cfg, photos, meter, args.device)
            failures += style_failures(name, styles[name]["report"])
        last = styles[f"style{N_STYLES}"]
        style_gallery(last["styles"], photos, last["images"], gallery)
    print(markdown_tables(rows, styles), flush=True)
    report.update(rows=rows, style={k: {n: v for n, v in s.items() if n != "images"} for k, s in styles.items()},
                  failures=failures, passed=not failures, wall_s=time.perf_counter() - start)
    write_json(args.out / "proof.json", report)
    console.print(f"wrote {args.out / 'proof.json'} and {gallery}/ · {report['wall_s'] / 60:.1f} min")
    for f in failures:
        console.print(f"[red]FAILED[/red] {f}", highlight=False)
    console.print("[green]PASSED[/green]" if not failures else f"[red]{len(failures)} check(s) failed[/red]")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
