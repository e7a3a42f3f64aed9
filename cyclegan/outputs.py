"""Where converted images go, and writing them: shared by translate, stylize and recolor.

``plan_outputs`` pairs each input image with its output path, mirroring the input folder below the
output folder, and refuses, before any work, a plan that would lose or destroy an image: an output that
is an input (its own or another's), two inputs that would be written to one output, an output folder
that is the input folder. Outputs that exist already are skipped (so an interrupted run resumes) unless
overwriting. ``write_image`` encodes one image and writes it atomically; ``Writer`` writes many on a thread
pool, so that a command never waits on the disk.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from .data import IMAGE_EXTENSIONS, image_folder, is_image, mirror_path
from .errors import UserError
from .files import DiskError, atomic_write
from .summary import Summary

ALPHA_FORMATS = ("PNG", "WEBP", "TIFF")  # output formats that keep the input's transparency
QUALITY_FORMATS = ("JPEG", "WEBP")
# Inputs whose own format is a poor output: a translated or stylised GIF would be cut down to 256
# colours, so with the input's format kept such an input gets a PNG (lossless, keeps transparency).
SAME_FORMAT_INSTEAD = {".gif": ".png"}


def image_format(path: Path) -> str:
    """The PIL format that ``path``'s suffix names; a ``UserError`` for an unknown one."""
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise UserError(f"cannot write {path}: unknown image format {path.suffix!r}")
    return fmt


def output_path(src: Path, input_root: Path, output_root: Path, suffix: str | None) -> Path:
    """The output of ``src``: mirrored below ``output_root``, with ``suffix`` or the input's own format."""
    out = mirror_path(src, input_root, output_root)
    if suffix:
        return out.with_suffix(suffix)
    if input_root.is_dir() or not is_image(output_root):  # a file name the user gave is taken as it is
        return out.with_suffix(SAME_FORMAT_INSTEAD.get(out.suffix.lower(), out.suffix))
    return out


def media_folder(path: Path, what: str, is_video: Callable[[Path], bool]) -> list[Path]:
    """The images and videos of ``path`` (one file, or a folder searched recursively); ``UserError`` when none."""
    if not path.exists():
        raise UserError(f"{what} {str(path)!r} does not exist")
    found = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    found = [p for p in found if (is_image(p) or is_video(p)) and (p == path or not p.name.startswith("."))]
    if not found:
        raise UserError(f"{what} {str(path)!r} holds no images ({', '.join(IMAGE_EXTENSIONS)}) or videos")
    return found


def video_output_path(src: Path, input_root: Path, output_root: Path, video_suffixes: tuple[str, ...]) -> Path:
    """The output of a video: mirrored, in the input's container (a file name the user gave is kept)."""
    if input_root.is_file() and output_root.suffix.lower() in video_suffixes:
        return output_root
    out = mirror_path(src, input_root, output_root) if not input_root.is_file() else output_root / src.name
    if out.suffix.lower() not in video_suffixes:
        raise UserError(f"cannot write {out}: a video is written as {', '.join(video_suffixes)}")
    return out


def plan_outputs(input_root: str | Path, output_root: str | Path, summary: Summary, *, suffix: str | None = None,
                 overwrite: bool = False, what: str = "input", is_video: Callable[[Path], bool] | None = None,
                 video_suffixes: tuple[str, ...] = ()) -> list[tuple[Path, Path]]:
    """``(input, output)`` pairs still to do; inputs whose output exists go to ``summary.skipped``.

    ``input_root`` is an image or a folder (searched recursively); ``suffix`` (e.g. ``".png"``) sets
    the output format, ``None`` keeps each input's. Raises ``UserError`` naming the paths when the plan
    would write an output over an input or two outputs to one path. With ``is_video`` (a test of a
    path), videos are planned too: each keeps its container (one of ``video_suffixes``).
    """
    src_root, out_root = Path(input_root), Path(output_root)
    sources = image_folder(src_root, what) if is_video is None else media_folder(src_root, what, is_video)
    out_abs = out_root.resolve()
    if src_root.is_dir():
        if out_abs == src_root.resolve():
            raise UserError(f"the output folder {out_root} is the {what} folder: the outputs would replace "
                            "the inputs; choose another output folder")
        if (is_image(out_root) or out_root.suffix.lower() in video_suffixes) and not out_root.is_dir():
            raise UserError(f"the {what} {src_root} is a folder, so the output {out_root} must be a folder too")
        # The output folder may be inside the input folder: earlier outputs are not inputs.
        sources = [src for src in sources if not src.resolve().is_relative_to(out_abs)]
        if not sources:
            raise UserError(f"the {what} folder {src_root} holds no images outside the output folder {out_root}")
    inputs = {src.resolve(): src for src in sources}
    writers: dict[Path, Path] = {}  # resolved output → the input it comes from
    jobs = []
    for src in sources:
        if is_video is not None and is_video(src):
            out = video_output_path(src, src_root, out_root, video_suffixes)
        else:
            out = output_path(src, src_root, out_root, suffix)
            image_format(out)
        key = out.resolve()
        if key in inputs:
            whose = "its input" if inputs[key] == src else f"the {what} {inputs[key]}"
            raise UserError(f"the output {out} of {src} would overwrite {whose}: choose another output folder")
        if key in writers:
            hint = " (or keep each input's format with --format same)" if suffix else ""
            raise UserError(f"{writers[key]} and {src} would both be written to {out}: rename one of them{hint}")
        writers[key] = src
        if out.exists() and not overwrite:
            summary.skipped.append(src)
        else:
            jobs.append((src, out))
    return jobs


def write_image(path: Path, image: Image.Image | np.ndarray, alpha: np.ndarray | Image.Image | None = None,
                quality: int = 95) -> Path:
    """Encode an RGB image (PIL, or uint8 ``[H, W, 3]``) in the format ``path``'s suffix names and write
    it atomically, with ``alpha`` where the format has transparency.

    A full or read-only disk raises ``files.DiskError`` (the caller stops: every later write would fail).
    """
    fmt = image_format(path)
    img = Image.fromarray(image, "RGB") if isinstance(image, np.ndarray) else image
    if alpha is not None and fmt in ALPHA_FORMATS:
        img = img.copy() if img is image else img  # the caller's image stays as it was
        img.putalpha(Image.fromarray(alpha, "L") if isinstance(alpha, np.ndarray) else alpha)
    options = {"quality": quality} if fmt in QUALITY_FORMATS else {}
    return atomic_write(path, lambda tmp: img.save(tmp, format=fmt, **options))


class Writer:
    """Encodes and writes images on a thread pool (PIL releases the GIL while it encodes).

    At most ``4 × threads + backlog`` images wait for a thread, since each holds memory. Each result,
    in submission order, goes to ``done(index, error or None)``. Leaving the ``with`` block waits for
    every write, unless one failed with a full or read-only disk: then the waiting ones are dropped.
    """

    def __init__(self, done, threads: int, backlog: int):
        self.done, self.max_waiting = done, 4 * threads + backlog
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="write")
        self.waiting: deque[tuple[int, Future]] = deque()
        self.disk_full = False

    def submit(self, i: int, path: Path, rgb: np.ndarray, alpha, quality: int) -> None:
        if self.disk_full:
            return
        self.waiting.append((i, self.pool.submit(write_image, path, rgb, alpha, quality)))
        self.collect(block_above=self.max_waiting)

    def collect(self, block_above: int) -> None:
        """Report finished writes; wait for the oldest while more than ``block_above`` are waiting."""
        while self.waiting and (self.waiting[0][1].done() or len(self.waiting) > block_above):
            i, future = self.waiting.popleft()
            if future.cancelled():
                continue
            error = future.exception()
            if isinstance(error, DiskError) and not self.disk_full:
                self.disk_full = True
                self.pool.shutdown(wait=False, cancel_futures=True)  # every later write would fail too
            self.done(i, error)

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc) -> None:
        self.collect(block_above=0)
        self.pool.shutdown()
