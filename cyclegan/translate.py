"""Translating images with a generator: read → batch → infer → write, at every image's own size.

The pipeline is built to keep the accelerator busy. DataLoader workers decode (and resize) images while
the GPU runs the previous batch; a batch holds images of one size, so nothing is resized to fit, and
travels as uint8 from pinned memory with a non-blocking copy. The output comes back as uint8 too and is
encoded and written by a thread pool (PIL releases the GIL while it encodes), so inference never waits on
the disk. Every output is written to a temporary file and renamed, so an interrupted run leaves no
half-written image and the next run skips exactly the finished ones.

Sizes are kept: a batch is padded to the generator's size multiple (reflect, so the border looks like
image) and the output cropped back.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import ExifTags, Image
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .checkpoint import load_any_generator
from .config import TranslateConfig, validate
from .data import image_folder, load_image, mirror_path
from .errors import UserError
from .files import atomic_write
from .models import GeneratorSpec, build_generator, size_multiple
from .models.legacy import describe
from .runtime import autocast, resolve_device, resolve_precision
from .summary import Summary

log = logging.getLogger(__name__)

FORMATS = {"same": None, "png": ".png", "jpg": ".jpg", "jpeg": ".jpg", "webp": ".webp"}
ALPHA_FORMATS = ("PNG", "WEBP", "TIFF")  # output formats that keep the input's transparency
QUALITY_FORMATS = ("JPEG", "WEBP")


# --------------------------------------------------------------------------------------------- model


def pad_to_multiple(x: torch.Tensor, multiple: int,
                    min_side: int = 1) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad ``[N, C, H, W]`` so H and W are multiples of ``multiple`` (and at least ``min_side``).

    Returns the padded batch and the (top, left) offset of the image in it. Reflect padding needs the
    pad to be smaller than the side it mirrors; tiny images (and the large multiples of a U-Net) fall
    back to repeating the edge pixels.
    """
    h, w = x.shape[-2:]
    ph, pw = max(-h % multiple, min_side - h), max(-w % multiple, min_side - w)
    ph, pw = ph + -(h + ph) % multiple, pw + -(w + pw) % multiple
    top, left = ph // 2, pw // 2
    for padding, side in (((left, pw - left, 0, 0), w), ((0, 0, top, ph - top), h)):
        if any(padding):
            x = F.pad(x, padding, mode="reflect" if max(padding) < side else "replicate")
    return x, (top, left)


class Translator:
    """A generator ready for inference: ``translator(images)`` returns images of the same size.

    Input ``[N, 3, H, W]``, uint8 (0..255) or float in [-1, 1], on any device; output float32 in
    [-1, 1] on ``device``. Out of GPU memory, a batch is split into smaller ones (and later batches of
    that size are split up front); an image that does not fit alone is translated on the CPU.
    """

    def __init__(self, net: nn.Module, spec: GeneratorSpec, device: torch.device, precision: str = "fp32",
                 channels_last: bool = False, compile: bool = False):
        self.spec, self.device, self.precision = spec, device, precision
        self.multiple = size_multiple(spec)
        # The ResNet's instance norms need more than one pixel after its two 2× downsamplings.
        self.min_side = 2 * self.multiple if spec.arch == "resnet" else self.multiple
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        net = net.to(device).eval().requires_grad_(False).to(memory_format=self.memory_format)
        self.base = net
        self.net = torch.compile(net) if compile else net
        self._cpu_net: nn.Module | None = None
        self._max_pixels: int | None = None  # per forward pass, learned from out-of-memory errors
        self._cpu_pixels: int | None = None  # images this large go straight to the CPU
        self._warned: set[str] = set()

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        if x.dtype == torch.uint8:
            x = x.float().div_(127.5).sub_(1.0)  # the same arithmetic as data.to_tensor
        n, _, h, w = x.shape
        step = n if self._max_pixels is None else max(1, min(n, self._max_pixels // (h * w)))
        parts = [self._run(x[i:i + step]) for i in range(0, n, step)]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def _forward(self, net: nn.Module, x: torch.Tensor, device: torch.device, precision: str) -> torch.Tensor:
        h, w = x.shape[-2:]
        padded, (top, left) = pad_to_multiple(x, self.multiple, self.min_side)
        with autocast(device, precision):
            y = net(padded.contiguous(memory_format=self.memory_format))
        return y[..., top:top + h, left:left + w].float()

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        if self._cpu_pixels is None or h * w < self._cpu_pixels:
            try:
                return self._forward(self.net, x, self.device, self.precision)
            except torch.OutOfMemoryError:
                pass  # recover outside the except block, so the failed attempt's tensors are freed first
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            if n > 1:
                half = (n + 1) // 2
                self._max_pixels = min(self._max_pixels or half * h * w, half * h * w)
                self._warn("split", f"out of memory on a batch of {n} {w}×{h} images: "
                                    f"retrying in batches of {half} (and fewer for larger images)")
                return torch.cat([self._run(x[:half]), self._run(x[half:])])
            self._cpu_pixels = min(self._cpu_pixels or h * w, h * w)
            self._warn("cpu", f"out of memory on one {w}×{h} image on {self.device}: translating images "
                              "this large on the CPU (slow; --max-side makes them smaller)")
        return self._forward(self.cpu_net, x.cpu(), torch.device("cpu"), "fp32").to(self.device)

    @property
    def cpu_net(self) -> nn.Module:
        if self._cpu_net is None:
            net = build_generator(self.spec, init_type=None)
            net.load_state_dict({k: v.cpu() for k, v in self.base.state_dict().items()})
            self._cpu_net = net.eval().requires_grad_(False).to(memory_format=self.memory_format)
        return self._cpu_net

    def _warn(self, kind: str, message: str) -> None:
        (log.debug if kind in self._warned else log.warning)(message)
        self._warned.add(kind)


def load_translator(checkpoint: str | Path, direction: str = "AtoB", device: str | torch.device = "auto",
                    precision: str = "auto", channels_last: bool = True, compile: bool = False) -> Translator:
    """A ``Translator`` for any generator: a run folder (``G_AB``/``G_BA`` by ``direction``), a
    ``.safetensors`` export, or a ``.pth`` of the original release."""
    device = device if isinstance(device, torch.device) else resolve_device(device)
    precision = resolve_precision(precision, device)
    net, spec = load_any_generator(checkpoint, direction, device)
    log.info("generator %s on %s, %s", describe(spec), device, precision)
    return Translator(net, spec, device, precision, channels_last=channels_last, compile=compile)


# ---------------------------------------------------------------------------------------------- data


def target_size(size: tuple[int, int], resize: int | None, max_side: int | None) -> tuple[int, int]:
    """(width, height) after ``--resize`` (short side) and then ``--max-side`` (long side, only down)."""
    w, h = size
    if resize:
        s = resize / min(w, h)
        w, h = max(1, round(w * s)), max(1, round(h * s))
    if max_side and max(w, h) > max_side:
        s = max_side / max(w, h)
        w, h = max(1, round(w * s)), max(1, round(h * s))
    return w, h


def peek_size(path: Path, resize: int | None, max_side: int | None) -> tuple[int, int]:
    """The size an image will have, from its header alone (no decoding); (0, 0) when unreadable."""
    try:
        with Image.open(path) as img:
            w, h = img.size
            if img.getexif().get(ExifTags.Base.Orientation, 1) in (5, 6, 7, 8):  # rotated by 90°
                w, h = h, w
        return target_size((w, h), resize, max_side)
    except Exception:
        return 0, 0  # the worker reports why when it tries to decode it


class ImageFiles(Dataset):
    """Decodes one image per item: ``(index, uint8 [H, W, 3] tensor, alpha [H, W] or None, error)``."""

    def __init__(self, paths: list[Path], keep_alpha: list[bool], resize: int | None, max_side: int | None):
        self.paths, self.keep_alpha, self.resize, self.max_side = paths, keep_alpha, resize, max_side

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        try:
            rgb, alpha = load_image(self.paths[i], keep_alpha=self.keep_alpha[i])
            size = target_size(rgb.size, self.resize, self.max_side)
            if size != rgb.size:
                rgb = rgb.resize(size, Image.BICUBIC)
                alpha = alpha.resize(size, Image.BICUBIC) if alpha is not None else None
            # HWC as decoded: permuted to NCHW on the device, where it is a channels-last view for free.
            image = torch.from_numpy(np.array(rgb, dtype=np.uint8))
            return i, image, (np.array(alpha) if alpha is not None else None), None
        except Exception as e:  # a broken file must not stop the others
            return i, None, None, f"{type(e).__name__}: {e}"


def collate_by_size(items):
    """Stack the decoded images of a batch by size (sizes read from headers can lie; decoding cannot).

    Returns ``(groups, failures)``: groups of ``(indices, uint8 [N, H, W, 3], alphas)`` and
    ``(index, error)`` pairs.
    """
    groups: dict[tuple, tuple[list, list, list]] = {}
    failures = []
    for i, image, alpha, error in items:
        if error is not None:
            failures.append((i, error))
            continue
        indices, images, alphas = groups.setdefault(tuple(image.shape), ([], [], []))
        indices.append(i)
        images.append(image)
        alphas.append(alpha)
    return [(indices, torch.stack(images), alphas) for indices, images, alphas in groups.values()], failures


def size_batches(sizes: list[tuple[int, int]], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of equal image size (sorted by size, then by input order)."""
    order = sorted(range(len(sizes)), key=lambda i: (sizes[i], i))
    batches: list[list[int]] = []
    for i in order:
        if batches and len(batches[-1]) < batch_size and sizes[batches[-1][0]] == sizes[i]:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def pil_format(path: Path) -> str:
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise UserError(f"cannot write {path}: unknown image format {path.suffix!r}")
    return fmt


def write_output(path: Path, rgb: np.ndarray, alpha: np.ndarray | None, quality: int) -> Path:
    """Encode ``rgb`` (uint8 [H, W, 3]) and write it atomically, with ``alpha`` where the format has one."""
    img = Image.fromarray(rgb, "RGB")
    fmt = pil_format(path)
    if alpha is not None and fmt in ALPHA_FORMATS:
        img.putalpha(Image.fromarray(alpha, "L"))
    options = {"quality": quality} if fmt in QUALITY_FORMATS else {}
    return atomic_write(path, lambda tmp: img.save(tmp, format=fmt, **options))


# ------------------------------------------------------------------------------------------ workflow


class RateColumn(ProgressColumn):
    def render(self, task) -> Text:
        return Text(f"{task.speed:.1f} images/s" if task.speed else "… images/s", style="progress.data.speed")


def plan(cfg: TranslateConfig, summary: Summary) -> list[tuple[Path, Path]]:
    """(input, output) pairs still to do; existing outputs go to ``summary.skipped`` unless overwriting."""
    validate(cfg)  # each option against its declaration in config.py
    src_root, out_root = Path(cfg.input), Path(cfg.output)
    suffix = FORMATS[cfg.format.lower()]
    out_resolved = out_root.resolve()
    jobs = []
    for src in image_folder(src_root, "input"):
        if src_root.is_dir() and src.resolve().is_relative_to(out_resolved):
            continue  # the output folder inside the input folder: earlier outputs are not inputs
        out = mirror_path(src, src_root, out_root, suffix)
        pil_format(out)
        if out.resolve() == src.resolve():
            raise UserError(f"the output {out} would overwrite its input: choose another output folder")
        if out.exists() and not cfg.overwrite:
            summary.skipped.append(src)
        else:
            jobs.append((src, out))
    return jobs


def translate_folder(cfg: TranslateConfig, translator: Translator | None = None) -> Summary:
    """Translate ``cfg.input`` (an image or a folder, recursively) into ``cfg.output``.

    Returns the ``Summary`` (converted / skipped / failed); printing it is up to the caller. Pass a
    ``translator`` to reuse a loaded generator across calls.
    """
    summary = Summary()
    jobs = plan(cfg, summary)
    if summary.skipped:
        log.info("%d outputs exist already and are skipped (--overwrite to redo them)", len(summary.skipped))
    if not jobs:
        return summary
    if translator is None:
        translator = load_translator(cfg.checkpoint, cfg.direction, cfg.device, cfg.precision,
                                     channels_last=cfg.channels_last, compile=cfg.compile)
    run_jobs(translator, jobs, cfg, summary)
    return summary


def run_jobs(translator: Translator, jobs: list[tuple[Path, Path]], cfg: TranslateConfig,
             summary: Summary) -> None:
    """Translate ``(input, output)`` pairs, recording each in ``summary``."""
    device = translator.device
    sources = [src for src, _ in jobs]
    keep_alpha = [pil_format(out) in ALPHA_FORMATS for _, out in jobs]
    sizes = [peek_size(src, cfg.resize, cfg.max_side) for src in sources]
    batches = size_batches(sizes, cfg.batch_size)
    workers = min(cfg.workers, len(batches))
    loader = DataLoader(
        ImageFiles(sources, keep_alpha, cfg.resize, cfg.max_side),
        batch_sampler=batches,
        collate_fn=collate_by_size,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        prefetch_factor=2 if workers > 0 else None,
    )
    writers = cfg.writers or min(8, os.cpu_count() or 1)
    max_in_flight = 4 * writers + cfg.batch_size  # outputs waiting for a writer (they hold memory)
    writes: deque[tuple[int, Future]] = deque()
    progress = Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                        MofNCompleteColumn(), RateColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                        console=Console(stderr=True), disable=not cfg.progress)

    def finish_writes(block_above: int) -> None:
        while writes and (writes[0][1].done() or len(writes) > block_above):
            i, future = writes.popleft()
            try:
                future.result()
                summary.converted.append(sources[i])
            except Exception as e:
                log.warning("could not write %s (%s: %s)", jobs[i][1], type(e).__name__, e)
                summary.failed.append((sources[i], f"writing {jobs[i][1]}: {type(e).__name__}: {e}"))
            progress.advance(task)

    def submit(indices, alphas, out, event) -> None:
        if event is not None:
            event.synchronize()
        out = out.numpy()
        for k, i in enumerate(indices):
            writes.append((i, pool.submit(write_output, jobs[i][1], out[k], alphas[k], cfg.quality)))
        finish_writes(max_in_flight)

    batches_in = iter(loader)  # starts the workers before any other thread (progress, writers) exists
    with ThreadPoolExecutor(writers, thread_name_prefix="write") as pool, progress, torch.inference_mode():
        task = progress.add_task("translating", total=len(jobs))
        pending = None  # the previous batch: handed to the writers while the device runs the next one
        for groups, failures in batches_in:
            for i, error in failures:
                log.warning("skipping unreadable image %s (%s)", sources[i], error)
                summary.failed.append((sources[i], error))
                progress.advance(task)
            for indices, images, alphas in groups:
                try:
                    y = translator(images.permute(0, 3, 1, 2))
                except Exception as e:  # one odd batch must not end the run
                    names = ", ".join(str(sources[i]) for i in indices)
                    log.warning("could not translate %s (%s: %s)", names, type(e).__name__, e)
                    summary.failed.extend((sources[i], f"{type(e).__name__}: {e}") for i in indices)
                    progress.advance(task, len(indices))
                    continue
                # uint8 HWC on the device: a quarter of the bytes to copy back, ready for PIL.
                out = y.clamp_(-1, 1).add_(1).mul_(127.5).round_().to(torch.uint8).permute(0, 2, 3, 1)
                out = out.contiguous().to("cpu", non_blocking=True)
                event = None
                if device.type == "cuda":
                    event = torch.cuda.Event()
                    event.record()
                if pending is not None:
                    submit(*pending)
                pending = (indices, alphas, out, event)
        if pending is not None:
            submit(*pending)
        finish_writes(0)
