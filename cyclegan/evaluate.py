"""``cyclegan evaluate``: FID/KID of one folder against another, or of a trained run on its test split.

A run is scored per direction: the test images of the source domain are translated by the run's
generator and compared with the real test images of the target domain. Beside it stand two references
scored the same way: the untranslated inputs ("do nothing": how far apart the domains are to begin with)
and, with ``--baseline nst``, the same inputs stylised by neural style transfer. The run folder gets
``metrics.json`` and ``eval.html``, a grid of input | CycleGAN | NST thumbnails linking to full images.
"""

from __future__ import annotations

import html
import json
import logging
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import torch
from PIL import Image
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .checkpoint import read_torch_file
from .config import EvalConfig, StylizeConfig, TranslateConfig, validate, vgg_min_size
from .data import image_folder, mirror_path, try_load_image
from .errors import UserError
from .files import DiskError, atomic_write, write_json
from .metrics import INCEPTION_URL, Scores, fid_kid, find_test_split, folder_features, load_inception
from .outputs import write_image
from .progress import progress_bar
from .runtime import resolve_device
from .style.gatys import Stylizer
from .style.images import save_image
from .style.vgg import load_vgg19
from .summary import Summary
from .tracking import Tracker
from .translate import load_translator, run_jobs

log = logging.getLogger(__name__)

DIRECTIONS = {"AtoB": ("A", "B"), "BtoA": ("B", "A")}
# "identity" is the paper's identity mapping: the generator on the "real" images, already in its target domain
METHODS = {"do_nothing": "do nothing", "real": "real images", "identity": "real images, translated",
           "cyclegan": "CycleGAN", "nst": "NST"}
THUMB_SIDE = 160


def evaluate(cfg: EvalConfig):
    """Dispatch: two folders, or a run folder."""
    validate(cfg)  # each option against its declaration in config.py, before any work
    if cfg.real_dir:
        run_only = {"--test-dir": cfg.test_dir, "--baseline": cfg.baseline, "--style": cfg.style,
                    "--style-dir": cfg.style_dir, "--max-images": cfg.max_images}
        given = [name for name, value in run_only.items() if value]
        if given:
            raise UserError(f"{', '.join(given)}: only for evaluating a run folder (give no REAL_DIR)")
        return evaluate_folders(cfg)
    return evaluate_run(cfg)


def evaluate_folders(cfg: EvalConfig) -> Scores:
    """``cyclegan evaluate FAKE_DIR REAL_DIR``: FID/KID of one folder against another."""
    fake_paths = image_folder(cfg.target, "fake image folder")
    real_paths = image_folder(cfg.real_dir, "real image folder")
    device = resolve_device(cfg.device)
    extractor = load_inception(cfg.inception, device)
    kw = dict(extractor=extractor, device=device, batch_size=cfg.batch_size, workers=cfg.workers)
    real = folder_features(real_paths, label=str(cfg.real_dir), **kw)
    fake = folder_features(fake_paths, label=str(cfg.target), **kw)
    scores = fid_kid(real, fake)
    Console().print(scores_table([(str(cfg.target), scores)], title=Text(f"FID / KID against {cfg.real_dir}")))
    if cfg.json_path:
        write_json(cfg.json_path, scores.to_dict())
        log.info("wrote %s", cfg.json_path)
    return scores


def scores_table(rows: list[tuple[str, Scores]], title: str | Text = "FID / KID") -> Table:
    """A rich table of scores; lower is better for all of them. KID is shown ×10³, as papers do."""
    table = Table(title=title, caption="lower is better · KID ×10³: mean ± std over subsets")
    table.add_column("images")
    for name in ("FID", "KID ×10³", "fake", "real"):
        table.add_column(name, justify="right")
    for name, s in rows:
        kid = f"{1e3 * s.kid_mean:.2f} ± {1e3 * s.kid_std:.2f}"
        table.add_row(Text(name), f"{s.fid:.2f}", kid, str(s.n_fake), str(s.n_real))  # names are paths: no markup
    return table


# --------------------------------------------------------------------------------------------------
# Evaluating a run


@dataclass
class DirectionResult:
    """One direction of a run: the inputs, each method's output per input (None: failed), the scores."""

    name: str
    source: Path  # test folder of the source domain
    target: Path  # test folder of the target domain (the real images)
    inputs: list[Path]
    references: list[Path] = field(default_factory=list)  # target-domain training images scored as "real"
    identity: dict[Path, Path | None] = field(default_factory=dict)  # the generator's outputs of the references
    outputs: dict[str, dict[Path, Path | None]] = field(default_factory=dict)
    scores: dict[str, Scores] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # wall time each method took for its outputs

    def images(self, method: str) -> list[Path]:
        """The images ``method`` is scored on (outputs that failed left out)."""
        if method == "do_nothing":
            return self.inputs
        if method == "real":
            return self.references
        outputs = self.identity if method == "identity" else self.outputs[method]
        return [p for p in outputs.values() if p is not None]


def run_config(folder: Path) -> dict:
    """The ``config.json`` of a run folder, or of the run a snapshot (``best/``, ``epoch_NNN/``) belongs to."""
    for d in (folder, folder.parent):
        if (d / "config.json").is_file():
            return json.loads((d / "config.json").read_text())
    return {}


def pick_inputs(paths: list[Path], max_images: int | None, seed: int = 0) -> list[Path]:
    """All inputs, or a fixed random sample of ``max_images`` (the same on every call)."""
    if max_images is None or max_images >= len(paths):
        return paths
    return sorted(random.Random(seed).sample(paths, max_images))


def real_references(folder: str, n: int) -> list[Path]:
    """A fixed sample of ``n`` training images of the target domain. Scored like the translations, they give
    what a perfect translation would reach on this test split (KID's floor; "do nothing" shows where the
    translation starts from). Translated by the generator as well ("identity": the paper's identity loss
    trains it to leave them as they are), they show what its own rendering costs, whatever it translates.
    Nothing when the run's training folder is no longer there (a run copied without its dataset)."""
    if not folder or not Path(folder).is_dir():
        log.info("no reference of real images: the training folder %r is not there", folder)
        return []
    return pick_inputs(image_folder(folder, "training folder"), n)


def check_run_options(cfg: EvalConfig) -> None:
    if (cfg.style or cfg.style_dir) and cfg.baseline != "nst":
        raise UserError("--style and --style-dir choose the style of the NST baseline: add --baseline nst")
    if cfg.style and cfg.style_dir:
        raise UserError("give --style (one image for all) or --style-dir (one per image), not both")


def evaluate_run(cfg: EvalConfig) -> dict[str, DirectionResult]:
    """``cyclegan evaluate RUN``: both generators of a run on the test split, with the references."""
    run = Path(cfg.target)
    if not run.is_dir() or not any((run / f"{g}.safetensors").is_file() for g in ("G_AB", "G_BA")):
        raise UserError(f"{str(run)!r} is not a run folder (no G_AB/G_BA.safetensors); "
                        "to compare two image folders give FAKE_DIR REAL_DIR")
    check_run_options(cfg)
    meta = run_config(run)
    files = meta.get("files", {})
    train = {"A": files.get("domain_a", meta.get("domain_a", "")), "B": files.get("domain_b", meta.get("domain_b", ""))}
    test = dict(zip("AB", find_test_split(cfg.test_dir, train["A"], train["B"]), strict=True))
    device = resolve_device(cfg.device)
    extractor = load_inception(cfg.inception, device)
    nst = NSTBaseline(cfg, device) if cfg.baseline == "nst" else None
    out_root = run / "eval"

    cache: dict[tuple[Path, ...], torch.Tensor] = {}  # testA is one direction's input, the other's reference

    def features(paths: list[Path], label: str) -> torch.Tensor:
        if tuple(paths) not in cache:
            cache[tuple(paths)] = folder_features(paths, extractor, device, cfg.batch_size, cfg.workers, label)
        return cache[tuple(paths)]

    results: dict[str, DirectionResult] = {}
    for name in DIRECTIONS if cfg.direction == "both" else [cfg.direction]:
        src, dst = DIRECTIONS[name]
        inputs = pick_inputs(image_folder(test[src], f"test folder of domain {src}"), cfg.max_images)
        res = DirectionResult(name, test[src], test[dst], inputs)
        start = time.perf_counter()
        res.outputs["cyclegan"] = translate_inputs(run, name, inputs, test[src], out_root / name / "cyclegan", cfg,
                                                   device)
        res.seconds["cyclegan"] = time.perf_counter() - start
        if nst:
            start = time.perf_counter()
            styles = nst.styles_for(train[dst], dst)
            res.outputs["nst"] = nst.stylize(inputs, test[src], out_root / name / "nst", styles)
            res.seconds["nst"] = time.perf_counter() - start  # reused outputs count as their reading only
        real = features(image_folder(test[dst], f"test folder of domain {dst}"), f"real test{dst}")
        res.scores["do_nothing"] = fid_kid(real, features(inputs, f"test{src} as it is"))
        res.references = real_references(train[dst], len(inputs))
        if res.references:
            res.scores["real"] = fid_kid(real, features(res.references, f"train{dst} (real images)"))
            res.identity = translate_inputs(run, name, res.references, Path(train[dst]),
                                            out_root / name / "identity", cfg, device)
            res.scores["identity"] = fid_kid(real, features(res.images("identity"), f"train{dst} translated"))
        for method in res.outputs:
            res.scores[method] = fid_kid(real, features(res.images(method), f"{METHODS[method]} {name}"))
        results[name] = res

    rows = [(f"{arrow(r.name)} {METHODS[m]}", s) for r in results.values() for m, s in r.scores.items()]
    Console().print(scores_table(rows, title=Text(f"{run}: FID / KID on the test split")))
    report = {
        "run": str(run),
        "test": {d: str(p) for d, p in test.items()},
        "inception": cfg.inception or INCEPTION_URL,
        **({"nst": nst.settings} if nst else {}),
        **{r.name: {m: {**s.to_dict(), **({"seconds": r.seconds[m]} if m in r.seconds else {})}
                    for m, s in r.scores.items()} for r in results.values()},
    }
    write_json(run / "metrics.json", report)
    write_html(run / "eval.html", run, results, out_root / "thumbs")
    log.info("wrote %s and %s", run / "metrics.json", run / "eval.html")
    log_to_wandb(run, meta, cfg.wandb_mode, results)
    return results


def arrow(direction: str) -> str:
    src, dst = DIRECTIONS[direction]
    return f"{src}→{dst}"


def translate_inputs(run: Path, direction: str, inputs: list[Path], root: Path, out_dir: Path, cfg: EvalConfig,
                     device: torch.device) -> dict[Path, Path | None]:
    """Translate ``inputs`` at their own size with the run's generator, as ``cyclegan translate`` would."""
    translator = load_translator(run, direction, device)
    jobs = [(src, mirror_path(src, root, out_dir, ".png")) for src in inputs]
    summary = Summary()
    run_jobs(translator, jobs, TranslateConfig(format="png", workers=cfg.workers, overwrite=True), summary)
    if summary.stopped:  # a full or read-only disk: nothing more can be written
        raise UserError(summary.stopped)
    failed = {src for src, _ in summary.failed}
    return {src: None if src in failed else out for src, out in jobs}


class NSTBaseline:
    """Gatys et al. style transfer of each input towards an image of the target domain.

    Style images: ``--style`` (one for every input), ``--style-dir`` or, by default, the target domain's
    training images, taken in turn. Outputs stay in the run folder and are reused while what they were
    made from (style, steps, size, VGG weights) is unchanged, since each costs hundreds of VGG passes.
    """

    def __init__(self, cfg: EvalConfig, device: torch.device):
        self.cfg, self.device = cfg, device
        self.features = None  # VGG19, loaded on first use and shared by every style
        self.stylizers: dict[tuple[Path, int], object] = {}
        if cfg.style:
            image_folder(cfg.style, "style image")  # a missing style stops before any work
        elif cfg.style_dir:
            image_folder(cfg.style_dir, "style folder")
        style = cfg.style or cfg.style_dir or "training images of the target domain"
        self.settings = {"style": style, "steps": cfg.nst_steps, "vgg_weights": cfg.vgg_weights}

    def styles_for(self, train_dir: str, domain: str) -> list[Path]:
        if self.cfg.style:
            return [Path(self.cfg.style)]
        if self.cfg.style_dir:
            return image_folder(self.cfg.style_dir, "style folder")
        if train_dir and Path(train_dir).is_dir():
            return image_folder(train_dir, f"training folder of domain {domain}")
        raise UserError("--baseline nst needs a style: --style IMAGE or --style-dir FOLDER (by default the run's "
                        f"training images of domain {domain}, which are not at {train_dir!r})")

    def _stylizer(self, style: Path, size: int):
        # Test images smaller than VGG19's deepest style layer needs are stylised at that size instead.
        size = max(size, vgg_min_size(StylizeConfig().style_layers))
        if (style, size) not in self.stylizers:
            scfg = StylizeConfig(styles=[str(style)], size=size, steps=self.cfg.nst_steps,
                                 vgg_weights=self.cfg.vgg_weights, device=str(self.device))
            if self.features is None:
                self.features = load_vgg19(scfg.vgg_weights, [*scfg.content_layers, *scfg.style_layers],
                                           scfg.pooling, self.device)
            self.stylizers[style, size] = Stylizer(scfg, self.device, self.features)
        return self.stylizers[style, size]

    def stylize(self, inputs: list[Path], root: Path, out_dir: Path, styles: list[Path]) -> dict[Path, Path | None]:
        """Stylise ``inputs`` (the i-th with ``styles[i % len(styles)]``) into ``out_dir``; returns the outputs."""
        record = out_dir / "nst.json"  # what each output was made from
        made = json.loads(record.read_text()) if record.is_file() else {}
        outputs: dict[Path, Path | None] = {}
        with progress_bar(transient=True) as progress:
            task = progress.add_task("NST baseline", total=len(inputs))
            for i, src in enumerate(inputs):
                dst = mirror_path(src, root, out_dir, ".png")
                loaded = try_load_image(src)
                if loaded is None:
                    outputs[src] = None
                    continue
                # The test images' own size (long side), unless --nst-size says otherwise.
                size = self.cfg.nst_size or max(loaded[0].size)
                recipe = {"style": str(styles[i % len(styles)]), "steps": self.cfg.nst_steps, "size": size,
                          "vgg_weights": self.cfg.vgg_weights}
                key = dst.relative_to(out_dir).as_posix()
                if not (dst.is_file() and made.get(key) == recipe):
                    outputs[src] = self._stylize_one(loaded[0], dst, Path(recipe["style"]), size)
                    made[key] = recipe
                    write_json(record, made)
                else:
                    outputs[src] = dst
                progress.advance(task)
        return outputs

    def _stylize_one(self, content: Image.Image, dst: Path, style: Path, size: int) -> Path | None:
        try:
            image, _, _ = self._stylizer(style, size)(content)
            save_image(image, dst)
            return dst
        except DiskError:
            raise  # every later write would fail too
        except (UserError, OSError, RuntimeError, ValueError) as e:  # too small, out of memory: score the others
            log.warning("NST failed on %s: %s", dst.name, e)
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            return None


# --------------------------------------------------------------------------------------------------
# The report


def _thumbnail(src: Path, dst: Path) -> Path | None:
    if not dst.is_file():
        loaded = try_load_image(src)
        if loaded is None:
            return None
        img = loaded[0]
        img.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.BICUBIC)
        write_image(dst, img, quality=85)
    return dst


def _href(path: Path, base: Path) -> str:
    return quote(Path(os.path.relpath(path.resolve(), base.resolve())).as_posix())


def write_html(path: Path, run: Path, results: dict[str, DirectionResult], thumbs: Path) -> Path:
    """A page per run: the scores, then one row per test image: input | CycleGAN | NST, thumbnails that link
    to the full images (relative links: the page works wherever the run folder goes, with the dataset)."""
    base = path.parent
    if thumbs.is_dir():
        shutil.rmtree(thumbs)  # thumbnails of an earlier evaluation may show other images
    parts = [f"<!doctype html><meta charset='utf-8'><title>{html.escape(run.name)}: evaluation</title>",
             "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
             "td,th{padding:4px 8px;text-align:center}.scores td{text-align:right;border-top:1px solid #ddd}"
             "img{display:block;width:160px;height:auto}</style>",
             f"<h1>{html.escape(str(run))}</h1>",
             "<p>FID and KID against the real test images of the target domain; lower is better. "
             "KID ×10³, mean ± std over subsets.</p>"]
    for res in results.values():
        parts.append(f"<h2>{arrow(res.name)}: test images of {html.escape(str(res.source))} → "
                     f"compared with {html.escape(str(res.target))}</h2>")
        parts.append("<table class='scores'><tr><th>images</th><th>FID</th><th>KID ×10³</th><th>fake</th>"
                     "<th>real</th></tr>")
        for method, s in res.scores.items():
            parts.append(f"<tr><td style='text-align:left'>{METHODS[method]}</td><td>{s.fid:.2f}</td>"
                         f"<td>{1e3 * s.kid_mean:.2f} ± {1e3 * s.kid_std:.2f}</td><td>{s.n_fake}</td>"
                         f"<td>{s.n_real}</td></tr>")
        parts.append("</table><table><tr><th>input</th>")
        parts += [f"<th>{METHODS[m]}</th>" for m in res.outputs]
        parts.append("</tr>")
        for src in res.inputs:
            cells = [(src, "input"), *((res.outputs[m].get(src), m) for m in res.outputs)]
            rel = src.relative_to(res.source) if src.is_relative_to(res.source) else Path(src.name)
            row = []
            for image, kind in cells:
                thumb = _thumbnail(image, thumbs / res.name / kind / rel.with_suffix(".jpg")) if image else None
                if thumb is None:
                    row.append("<td>failed</td>")
                else:
                    row.append(f"<td><a href='{_href(image, base)}'><img src='{_href(thumb, base)}' "
                               f"alt='{html.escape(kind)}' loading='lazy'></a></td>")
            parts.append(f"<tr>{''.join(row)}</tr><tr><td colspan='{len(cells)}'>{html.escape(str(rel))}</td></tr>")
        parts.append("</table>")
    atomic_write(path, lambda tmp: tmp.write_text("\n".join(parts) + "\n", encoding="utf-8"))
    return path


def log_to_wandb(run: Path, meta: dict, mode: str, results: dict[str, DirectionResult]) -> None:
    """Add the table to the run's W&B run (resumed by its id when the training state records one). With
    ``auto``, a run that trained without W&B gets none: its scores are in metrics.json."""
    if mode == "disabled":
        return
    run_id = None
    state = run / "latest.pt"
    if state.is_file():
        try:  # memory-mapped: only the id is read, not the whole training state
            run_id = read_torch_file(state, "training state").get("wandb_id")
        except (UserError, AttributeError) as e:
            log.debug("no W&B run id from %s: %s", state, e)
    if run_id is None and mode == "auto":
        log.info("the run has no W&B run: the scores are in %s (--wandb-mode offline or online logs them)",
                 run / "metrics.json")
        return
    tracker = Tracker(run, mode, meta.get("wandb_project", "cyclegan"), meta.get("name", run.name),
                      config={}, run_id=run_id)
    columns = ["direction", "method", "fid", "kid_mean", "kid_std", "n_fake", "n_real"]
    rows = [[arrow(r.name), METHODS[m], s.fid, s.kid_mean, s.kid_std, s.n_fake, s.n_real]
            for r in results.values() for m, s in r.scores.items()]
    tracker.log_table("eval/test_split", columns, rows)
    tracker.finish()
