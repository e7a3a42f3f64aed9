"""Translating images with a generator: read → batch → infer → write, at every image's own size.

The pipeline is built to keep the accelerator busy. DataLoader workers decode (and resize) images while
the GPU runs the previous batch; a batch holds images of one size, so nothing is resized to fit, and
travels as uint8 from pinned memory with a non-blocking copy. The output comes back as uint8 too and is
encoded and written by a thread pool (PIL releases the GIL while it encodes), so inference never waits on
the disk. Every output is written to a temporary file and renamed, so an interrupted run leaves no
half-written image and the next run skips exactly the finished ones.

Sizes are kept: a batch is padded to the network's size multiple (reflect, so the border looks like
image) and the output cropped back.

Every kind of network runs here alike (``networks.py``): a CycleGAN generator, a fast style network, AdaIN.
The network's spec says the range it works in, the sides it takes and whether tiles are exact; nothing
here depends on which kind it is. ``--strength`` and ``--preserve-color`` apply to every network's output.
Its 500-odd lines are that one pipeline, from planning a job to its last write, read top to bottom.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import ExifTags, Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .config import ADAIN_MIN_SIZE, StylizeConfig, TranslateConfig, pixel_limit, validate
from .data import from_uint8, load_image, to_uint8, unreadable
from .errors import UserError
from .files import DiskError
from .networks import choose_style, load_adain, load_network
from .outputs import ALPHA_FORMATS, Writer, image_format, plan_outputs
from .progress import progress_bar
from .runtime import (
    autocast,
    compile_network,
    compile_problem,
    data_workers,
    memory_format,
    resolve_device,
    resolve_precision,
)
from .style.adain import DEFAULT_STYLE_SIDE
from .style.images import keep_colors, read_image, resize_long_side, to_tensor
from .summary import Summary
from .tiles import approximate, exact
from .video import VIDEO_SUFFIXES, is_video, require_av, translate_videos

log = logging.getLogger(__name__)

FORMATS = {"same": None, "png": ".png", "jpg": ".jpg", "jpeg": ".jpg", "webp": ".webp"}
AUTO_TILE = 1024  # the tile side used when an image would not fit in memory in one pass
MIN_TILE = 256  # below this, halving the tile after running out of memory stops: the CPU takes over


# --------------------------------------------------------------------------------------------- model


def out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` says memory ran out: a GPU's ``OutOfMemoryError``, or the ``RuntimeError`` of the
    CPU's allocator (under a memory limit, or beyond the machine's memory)."""
    return isinstance(error, torch.OutOfMemoryError) or "DefaultCPUAllocator: can't allocate memory" in str(error)


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
    """A network ready for inference: ``translator(images)`` returns images of the same size.

    Input ``[N, 3, H, W]``, uint8 (0..255) or float in [-1, 1], on any device; output float32 in
    [-1, 1] on ``device``. Out of GPU memory, a batch is split into smaller ones (and later batches of
    that size are split up front); an image that does not fit alone is translated in tiles (``tiles``),
    halved until they fit, and only below ``MIN_TILE`` on the CPU. Images larger than ``tile`` pixels a
    side, or too large for the device's memory in one pass, are tiled from the start.
    ``strength`` blends the output with the input (1: the network's output, 0: the input);
    ``preserve_color`` keeps the output's luminance and the input's colour.
    """

    def __init__(self, net: nn.Module, spec, device: torch.device, precision: str = "fp32",
                 channels_last: bool | None = None, compile: bool = False, tile: int | None = None,
                 strength: float = 1.0, preserve_color: bool = False):
        self.spec, self.device, self.precision = spec, device, resolve_precision(precision, device)
        self.strength, self.preserve_color = strength, preserve_color
        self.multiple, self.min_side = spec.multiple, spec.min_side
        self.memory_format = memory_format(channels_last, device)
        net = net.to(device).eval().requires_grad_(False).to(memory_format=self.memory_format)
        self.base = net
        self.net = compile_network(net, device, self.precision) if compile else net
        self._cpu_net: nn.Module | None = None
        self._max_pixels: int | None = None  # per forward pass, learned from out-of-memory errors
        self._cpu_pixels: int | None = None  # images this large go straight to the CPU
        self._warned: set[str] = set()
        self.tile = tile

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        if x.dtype == torch.uint8:
            x = from_uint8(x)
        n, _, h, w = x.shape
        step = n if self._max_pixels is None else max(1, min(n, self._max_pixels // (h * w)))
        parts = [self._run(x[i:i + step]) for i in range(0, n, step)]
        y = parts[0] if len(parts) == 1 else torch.cat(parts)
        if self.strength != 1:
            y = torch.lerp(x, y, self.strength)
        return keep_colors(y, x) if self.preserve_color else y

    def _forward(self, net: nn.Module, x: torch.Tensor, device: torch.device, precision: str) -> torch.Tensor:
        h, w = x.shape[-2:]
        padded, (top, left) = pad_to_multiple(x, self.multiple, self.min_side)
        low, high = self.spec.value_range  # the network's range
        padded = (padded + 1) * ((high - low) / 2) + low
        tile = self.tile or self._auto_tile(padded, device)
        with autocast(device, precision):
            if tile and max(padded.shape[-2:]) > tile:  # a tile as large as the image is a plain run
                y = self._tiled(getattr(net, "_orig_mod", net), padded, tile)
            else:
                y = net(padded.contiguous(memory_format=self.memory_format))
        return (y[..., top:top + h, left:left + w].float() - low) * (2 / (high - low)) - 1

    def _tiled(self, net: nn.Module, x: torch.Tensor, tile: int) -> torch.Tensor:
        if self.spec.exact_tiles:
            return exact(net, x, tile)
        self._warn("approximate", f"{self.spec.describe()}: tiles take their statistics from a downscaled pass and "
                                  "are blended (approximate: the network sees the whole image)")
        return approximate(net, x, max(tile, self.multiple), lambda t: pad_to_multiple(t, self.multiple,
                                                                                         self.min_side))

    def _auto_tile(self, x: torch.Tensor, device: torch.device) -> int | None:
        """``AUTO_TILE`` when one pass over ``x`` would plausibly not fit in the device's memory.

        A pass holds about four float32 feature maps of ``ngf`` channels at full size at once (a conv's
        input, its padded copy, its output and the norm's); half the memory is left for everything else.
        """
        if device.type == "cuda":
            memory = torch.cuda.get_device_properties(device).total_memory
        elif device.type == "cpu" and hasattr(os, "sysconf"):
            memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        else:
            return None
        need = 16 * self.spec.width * x.shape[0] * x.shape[-2] * x.shape[-1]
        if need <= memory / 2:
            return None
        self._warn("auto-tile", f"a {x.shape[-1]}×{x.shape[-2]} image needs about {need / 2**30:.0f} GiB in one "
                                f"pass: translating images this large in tiles of {AUTO_TILE} (--tile sets it)")
        return AUTO_TILE

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        if self._cpu_pixels is None or h * w < self._cpu_pixels:
            try:
                return self._forward(self.net, x, self.device, self.precision)
            except (torch.OutOfMemoryError, RuntimeError) as e:
                if not out_of_memory(e):
                    raise
                # recover outside the except block, so the failed attempt's tensors are freed first
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            if n > 1:
                half = (n + 1) // 2
                self._max_pixels = min(self._max_pixels or half * h * w, half * h * w)
                self._warn("split", f"out of memory on a batch of {n} {w}×{h} images: "
                                    f"retrying in batches of {half} (and fewer for larger images)")
                return torch.cat([self._run(x[:half]), self._run(x[half:])])
            side = self.tile or max(h, w)
            if side // 2 >= MIN_TILE:
                self.tile = side // 2
                self._warn("tile", f"out of memory on one {w}×{h} image on {self.device}: translating images "
                                   f"this large in tiles of {self.tile} (and smaller if needed)")
                return self._run(x)
            self._cpu_pixels = min(self._cpu_pixels or h * w, h * w)
            self._warn("cpu", f"out of memory on one {w}×{h} image on {self.device}: translating images "
                              "this large on the CPU (slow; --max-side makes them smaller)")
        try:
            return self._forward(self.cpu_net, x.cpu(), torch.device("cpu"), "fp32").to(self.device)
        except (torch.OutOfMemoryError, RuntimeError) as e:
            if not out_of_memory(e):
                raise
        raise UserError(f"out of memory on one {w}×{h} image even in tiles of {self.tile or max(h, w)}: give "
                        "--max-side (or scale it down) to translate it with the memory this process has")

    @property
    def cpu_net(self) -> nn.Module:
        if self._cpu_net is None:  # a copy, buffers (the chosen style) and all: the device keeps its own
            self._cpu_net = copy.deepcopy(self.base).cpu().to(memory_format=self.memory_format)
        return self._cpu_net

    def _warn(self, kind: str, message: str) -> None:
        (log.debug if kind in self._warned else log.warning)(message)
        self._warned.add(kind)


def load_translator(checkpoint: str | Path, direction: str = "AtoB", device: str | torch.device = "auto",
                    precision: str = "auto", channels_last: bool | None = None, compile: bool = False,
                    tile: int | None = None, strength: float = 1.0, preserve_color: bool = False,
                    style: str | None = None, style_mix: str | None = None, encoder: str | None = None) -> Translator:
    """A ``Translator`` for any network ``networks.load_network`` reads: a run folder (``G_AB``/``G_BA`` by
    ``direction``), an export, a ``.pth`` of the original release or of pytorch/examples, an AdaIN decoder;
    a multi-style network paints ``style`` or ``style_mix``, AdaIN the style image(s) they name (with the
    ``encoder`` file's encoder)."""
    device = device if isinstance(device, torch.device) else resolve_device(device)
    net, spec = load_network(checkpoint, direction, device, encoder)
    chosen = choose_style(net, spec, style, style_mix)
    translator = Translator(net, spec, device, precision, channels_last=channels_last, compile=compile, tile=tile,
                            strength=strength, preserve_color=preserve_color)
    log.info("%s%s on %s, %s", spec.describe(), f", painting {chosen}" if chosen else "", device, translator.precision)
    return translator


def stylize_adain(cfg: StylizeConfig) -> Summary:
    """``cyclegan stylize --method adain``: the AdaIN network of ``cfg``'s files and styles, run over the
    content images and videos as ``translate`` runs any network.

    Style images are scaled to a long side of ``--size × --style-scale`` (512 × --style-scale without
    --size); content images to ``--size``, or kept at their own size; videos keep their size.
    """
    validate(cfg)
    side = adain_style_side(cfg)
    styles = [read_image(p, "style image", max_side=side) for p in cfg.styles]  # before any download
    tcfg = TranslateConfig(checkpoint=cfg.decoder_weights or "", input=cfg.content, output=cfg.output,
                           overwrite=cfg.overwrite, size=cfg.size, batch_size=cfg.batch_size, device=cfg.device,
                           precision=cfg.precision, preserve_color=cfg.preserve_color,
                           temporal_smoothing=cfg.temporal_smoothing)
    return translate_folder(tcfg, lambda: adain_translator(cfg, styles))  # loaded after the plan: a clash of
    # outputs costs no download


def adain_style_side(cfg: StylizeConfig) -> int:
    return max(ADAIN_MIN_SIZE, round((cfg.size or DEFAULT_STYLE_SIDE) * cfg.style_scale))


def adain_translator(cfg: StylizeConfig, styles: list[Image.Image]) -> Translator:
    """The AdaIN network of ``cfg``'s files (``--decoder-weights``, ``--vgg-weights``), with its ``--alpha``,
    painting ``styles`` (PIL images, scaled to ``adain_style_side``) mixed by ``--style-blend``."""
    device = resolve_device(cfg.device)
    net, spec = load_adain(cfg.decoder_weights, cfg.vgg_weights, device)
    net.alpha = cfg.alpha
    side = adain_style_side(cfg)
    net.set_style([to_tensor(resize_long_side(img, side)) for img in styles], cfg.style_blend or [1.0] * len(styles))
    return Translator(net, spec, device, cfg.precision, preserve_color=cfg.preserve_color)


# ---------------------------------------------------------------------------------------------- data


def target_size(size: tuple[int, int], resize: int | None, max_side: int | None,
                long_side: int | None = None) -> tuple[int, int]:
    """(width, height) after ``--resize`` (short side), ``--size`` (long side) and then ``--max-side`` (long
    side, only down)."""
    w, h = size
    if resize:
        s = resize / min(w, h)
        w, h = max(1, round(w * s)), max(1, round(h * s))
    if long_side:
        s = long_side / max(w, h)
        w, h = max(1, round(w * s)), max(1, round(h * s))
    if max_side and max(w, h) > max_side:
        s = max_side / max(w, h)
        w, h = max(1, round(w * s)), max(1, round(h * s))
    return w, h


def sizing(cfg: TranslateConfig) -> tuple[int | None, int | None, int | None]:
    """The options that size the images: ``target_size``'s ``resize``, ``max_side`` and ``long_side``."""
    return cfg.resize, cfg.max_side, cfg.size


def peek_size(path: Path, resize: int | None, max_side: int | None, long_side: int | None = None) -> tuple[int, int]:
    """The size an image will have, from its header alone (no decoding); (0, 0) when unreadable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # load_image reports it
            img = Image.open(path)
        with img:
            w, h = img.size
            if img.getexif().get(ExifTags.Base.Orientation, 1) in (5, 6, 7, 8):  # rotated by 90°
                w, h = h, w
        return target_size((w, h), resize, max_side, long_side)
    except Exception:
        return 0, 0  # the worker reports why when it tries to decode it


class ImageFiles(Dataset):
    """Decodes one image per item: ``(index, uint8 [H, W, 3] tensor, alpha [H, W] or None, error)``.

    ``sizes`` are the sizes planned from the headers (``peek_size``). A large JPEG is decoded at a
    reduced scale when ``max_side`` allows it, and then resized to its planned size, as if decoded in full.
    """

    def __init__(self, paths: list[Path], keep_alpha: list[bool], resize: int | None, max_side: int | None,
                 sizes: list[tuple[int, int]] | None = None, long_side: int | None = None):
        self.paths, self.keep_alpha, self.resize, self.max_side = paths, keep_alpha, resize, max_side
        self.long_side = long_side
        # JPEGs are decoded at a reduced scale when they will be scaled down anyway
        self.decode_bound = min((v for v in (max_side, long_side) if v), default=None)
        self.sizes = sizes or [(0, 0)] * len(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        try:
            rgb, alpha = load_image(self.paths[i], keep_alpha=self.keep_alpha[i], max_side=self.decode_bound)
            size = target_size(rgb.size, self.resize, self.max_side, self.long_side)
            planned = self.sizes[i]
            if planned != (0, 0) and (planned[0] >= planned[1]) == (size[0] >= size[1]):
                size = planned  # the same up to a pixel of rounding, unless the header lied
            if (limit := pixel_limit("translate")) and size[0] * size[1] > limit:
                return i, None, None, (f"scaled to {size[0]}×{size[1]} it would have {size[0] * size[1] / 1e6:.0f} "
                                       f"megapixels, more than the {limit / 1e6:.0f} this tool writes: give a "
                                       "smaller --resize or --size")
            if size != rgb.size:
                rgb = rgb.resize(size, Image.BICUBIC)
                alpha = alpha.resize(size, Image.BICUBIC) if alpha is not None else None
            # HWC as decoded: permuted to NCHW on the device, where it is a channels-last view for free.
            image = torch.from_numpy(np.array(rgb, dtype=np.uint8))
            return i, image, (np.array(alpha) if alpha is not None else None), None
        except Exception as e:  # a broken file must not stop the others
            return i, None, None, f"unreadable image: {unreadable(e)}"


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


# ------------------------------------------------------------------------------------------ workflow


def plan(cfg: TranslateConfig, summary: Summary) -> list[tuple[Path, Path]]:
    """(input, output) pairs still to do; existing outputs go to ``summary.skipped`` unless overwriting."""
    validate(cfg)  # each option against its declaration in config.py
    jobs = plan_outputs(cfg.input, cfg.output, summary, suffix=FORMATS[cfg.format.lower()],
                        overwrite=cfg.overwrite, is_video=is_video, video_suffixes=VIDEO_SUFFIXES)
    if any(is_video(src) for src, _ in jobs):
        require_av()  # a missing extra is said before any work
    return jobs


# On a CPU, a job of this many images (or a video) compiles the network unless --compile/--no-compile says
# otherwise: compiling takes 25-40 s per image size, then saves about 0.8 s per 512² image and 4.5 s per
# 1024² one (bf16, ResNet-9: scripts/bench_cpu.py). A GPU translates an image in milliseconds, which
# seldom repays a compile.
COMPILE_FROM_IMAGES = 50


def compile_by_default(cfg: TranslateConfig, jobs: list[tuple[Path, Path]]) -> bool:
    """``--compile``/``--no-compile``, or whether this job on this device repays compiling."""
    if cfg.compile is not None:
        return cfg.compile
    device = resolve_device(cfg.device)
    long_job = len(jobs) >= COMPILE_FROM_IMAGES or any(is_video(src) for src, _ in jobs)
    return device.type == "cpu" and long_job and compile_problem(device) is None


STOPPED = "stopped on request"


def translate_folder(cfg: TranslateConfig, translator: Translator | Callable[[], Translator] | None = None,
                     stop: threading.Event | None = None) -> Summary:
    """Translate ``cfg.input`` (an image or a folder, recursively) into ``cfg.output``.

    Returns the ``Summary`` (converted / skipped / failed, and why a run stopped early); printing it
    is up to the caller. The network is ``translator`` (a loaded one, or a function that loads it, called
    only when there is work), by default the one ``cfg.checkpoint`` names. Setting ``stop`` (the web
    page's Stop) ends the run after the batch in hand: what was written stays, whole.
    """
    summary = Summary()
    jobs = plan(cfg, summary)  # refuses a plan that would lose an image before the network loads
    if summary.skipped:
        log.info("%d outputs exist already and are skipped (--overwrite to redo them)", len(summary.skipped))
    if not jobs:
        return summary
    if translator is None:
        translator = load_translator(cfg.checkpoint, cfg.direction, cfg.device, cfg.precision,
                                     channels_last=cfg.channels_last, compile=compile_by_default(cfg, jobs),
                                     tile=cfg.tile,
                                     strength=cfg.strength, preserve_color=cfg.preserve_color, style=cfg.style,
                                     style_mix=cfg.style_mix, encoder=cfg.vgg_weights)
    elif not isinstance(translator, Translator):
        translator = translator()
    video = [is_video(src) for src, _ in jobs]
    videos = [job for job, v in zip(jobs, video, strict=True) if v]
    images = [job for job, v in zip(jobs, video, strict=True) if not v]
    if images:
        run_jobs(translator, images, cfg, summary, stop)
    if videos and any(sizing(cfg)):
        log.warning("--resize, --size and --max-side scale images only: videos keep their size")
    if videos and stop is not None and stop.is_set():
        summary.stopped, summary.not_done = summary.stopped or STOPPED, summary.not_done + len(videos)
    if videos and not summary.stopped:
        translate_videos(translator, videos, cfg, summary)
    return summary


def run_jobs(translator: Translator, jobs: list[tuple[Path, Path]], cfg: TranslateConfig,
             summary: Summary, stop: threading.Event | None = None) -> None:
    """Translate ``(input, output)`` pairs, recording each in ``summary``.

    The device translates one batch while the writer threads encode the previous one. A full or
    read-only disk stops the run (``summary.stopped``); what was written stays.
    """
    sources = [src for src, _ in jobs]
    progress = progress_bar(disable=not cfg.progress)
    task = progress.add_task("translating", total=len(jobs))

    def fail(i: int, why: str) -> None:
        log.warning("could not translate %s (%s)", sources[i], why)
        summary.failed.append((sources[i], why))
        progress.advance(task)

    def written(i: int, error: Exception | None) -> None:
        if error is None:
            summary.converted.append(sources[i])
            progress.advance(task)
        elif not isinstance(error, DiskError):
            fail(i, f"writing {jobs[i][1]}: {type(error).__name__}: {error}")
        elif summary.stopped is None:  # the first of them says it all; the run stops
            summary.stopped = str(error)

    batches_in = decoded_batches(jobs, cfg, translator.device)  # worker processes start before any thread
    writer = Writer(written, threads=cfg.writers or min(8, os.cpu_count() or 1), backlog=cfg.batch_size)
    with progress, writer, torch.inference_mode():
        for batch in translated_batches(translator, batches_in, fail):
            for k, i in enumerate(batch.indices):
                if not batch.finite[k]:
                    fail(i, "the generator's output is not finite (NaN or infinity): no image written")
                else:
                    writer.submit(i, jobs[i][1], batch.pixels[k].numpy(), batch.alphas[k], cfg.quality)
            if stop is not None and stop.is_set() and summary.stopped is None:
                summary.stopped = STOPPED
            if summary.stopped:
                break
    summary.not_done = len(jobs) - len(summary.converted) - len(summary.failed) if summary.stopped else 0


def decoded_batches(jobs: list[tuple[Path, Path]], cfg: TranslateConfig, device: torch.device):
    """Batches of decoded inputs of one size each: ``(groups, failures)`` as ``collate_by_size`` makes them."""
    sources = [src for src, _ in jobs]
    keep_alpha = [image_format(out) in ALPHA_FORMATS for _, out in jobs]
    sizes = [peek_size(src, *sizing(cfg)) for src in sources]
    batches = size_batches(sizes, cfg.batch_size)
    workers = min(data_workers(cfg.workers), len(batches))
    return iter(DataLoader(
        ImageFiles(sources, keep_alpha, cfg.resize, cfg.max_side, sizes, cfg.size),
        batch_sampler=batches,
        collate_fn=collate_by_size,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        prefetch_factor=2 if workers > 0 else None,
    ))


@dataclass
class Translated:
    """One translated batch on its way to the CPU: usable once ``ready()`` returns."""

    indices: list[int]
    pixels: torch.Tensor  # uint8 [N, H, W, 3]
    finite: torch.Tensor  # bool [N]: False where the generator produced NaN or infinity
    alphas: list
    event: torch.cuda.Event | None

    def ready(self) -> Translated:
        if self.event is not None:
            self.event.synchronize()
        return self


def translated_batches(translator: Translator, batches_in, fail) -> Iterator[Translated]:
    """Decode → device → translate → uint8, one batch behind: a batch is handed on once the device
    has the next one queued, so the device never waits for the writers. Failures go to ``fail``."""
    device = translator.device
    pending = None
    for groups, failures in batches_in:
        for i, error in failures:
            fail(i, error)
        for indices, images, alphas in groups:
            try:
                y = translator(images.permute(0, 3, 1, 2))
            except Exception as e:  # one odd batch must not end the run
                for i in indices:
                    fail(i, f"{type(e).__name__}: {e}")
                continue
            finite = torch.isfinite(y).flatten(1).all(1)  # one reduction per batch, no sync
            # uint8 HWC on the device: a quarter of the bytes to copy back, ready for PIL.
            pixels = to_uint8(y).permute(0, 2, 3, 1).contiguous()
            event = torch.cuda.Event() if device.type == "cuda" else None
            batch = Translated(indices, pixels.to("cpu", non_blocking=True), finite.to("cpu", non_blocking=True),
                               alphas, event)
            if event is not None:
                event.record()
            if pending is not None:
                yield pending.ready()
            pending = batch
    if pending is not None:
        yield pending.ready()
