"""Videos: decode → convert frames in batches → encode, the audio copied as it is.

Every network the translate pipeline runs (a CycleGAN generator, a style network, AdaIN for ``stylize
--method adain``) converts videos here, through the same ``Translator`` as images.

Frames are decoded with PyAV (FFmpeg; the optional extra ``cyclegan[video]``), converted in batches of
``--batch-size``, and encoded into the input's container: H.264 for mp4/mov/mkv, VP9 for webm, GIF for
gif. The audio stream is remuxed, not re-encoded. The frame rate and the size are kept; H.264 in
yuv420p needs even sides, so a video with an odd side is encoded in yuv444p (same size, full colour;
some players, browsers among them, cannot play 4:4:4 H.264). Frames are numbered at the input's
average frame rate, so a variable-rate input comes out at a constant rate. The output is written to a
temporary file and renamed, like every output.

``--temporal-smoothing A`` damps flicker: each instance norm normalises frame t with an exponential
moving average of the frames' statistics, ``m_t = A·m_(t-1) + (1-A)·mean_t`` (and the same for the
variance), instead of frame t's own. Most flicker of CycleGAN generators is global (colour and
brightness jumping as the statistics move); this removes it without the ghosting that averaging the
output frames leaves on moving objects. It costs almost nothing (a few channel vectors per norm) but
does not touch local texture flicker, and with tiling (``--tile``) frames are not smoothed. AdaIN's
normalisation of the content features is an instance norm too, and is smoothed the same way.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from .config import TranslateConfig
from .data import to_uint8
from .errors import UserError
from .files import DiskError, atomic_write
from .progress import progress_bar
from .summary import Summary

log = logging.getLogger(__name__)

CONTAINERS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".gif": "gif"}
VIDEO_SUFFIXES = tuple(CONTAINERS)
CODECS = {"mp4": "libx264", "mov": "libx264", "matroska": "libx264", "webm": "libvpx-vp9", "gif": "gif"}


def is_video(path: Path) -> bool:
    """A video file by its suffix; a .gif only when it holds more than one frame (else it is an image)."""
    suffix = path.suffix.lower()
    if suffix != ".gif":
        return suffix in VIDEO_SUFFIXES
    try:
        with Image.open(path) as img:
            return getattr(img, "n_frames", 1) > 1
    except Exception:
        return False  # the image reader reports why


def require_av():
    """The ``av`` module, or a one-line ``UserError`` saying how to install it."""
    try:
        import av  # the optional video extra
    except ImportError:
        raise UserError("videos need PyAV: pip install 'cyclegan[video]' (or pip install av)") from None
    return av


class _BadInput(Exception):
    """The input video could not be decoded (kept apart from errors writing the output)."""


def translate_videos(translator, jobs: list[tuple[Path, Path]], cfg: TranslateConfig, summary: Summary) -> None:
    """Each ``(video, output)`` pair through the translator, one after the other, recorded in ``summary``;
    each video with a fresh smoothing state (``--temporal-smoothing``). A broken video is reported and
    skipped; a full or read-only disk stops the run."""
    bar = progress_bar(unit="frames", disable=not cfg.progress)
    with bar:
        for i, (src, dst) in enumerate(jobs):
            task = bar.add_task(src.name, total=None)
            try:
                with smoothed_norms(translator.base, cfg.temporal_smoothing):
                    frames = convert_video(lambda batch: _translate(translator, batch), src, dst, cfg.batch_size,
                                           lambda n, task=task: bar.advance(task, n))
                summary.converted.append(src)
                log.debug("%s: %d frames", src, frames)
            except DiskError as e:
                summary.stopped, summary.not_done = str(e), len(jobs) - i
                return
            except Exception as e:  # a broken video must not stop the others
                why = str(e) if isinstance(e, _BadInput) else f"{type(e).__name__}: {e}"
                log.warning("could not convert %s (%s)", src, why)
                summary.failed.append((src, why))


def convert_video(convert, src: Path, dst: Path, batch_size: int, advance=lambda n: None) -> int:
    """Convert one video file into ``dst`` (container from its suffix); returns the number of frames."""
    av = require_av()
    try:
        inp = av.open(str(src))
        video = inp.streams.video[0] if inp.streams.video else None
        if video is None:
            raise ValueError("no video stream")
    except Exception as e:
        raise _BadInput(f"unreadable video: {type(e).__name__}: {e}") from e
    with inp:
        fmt = CONTAINERS[dst.suffix.lower()]
        audio = inp.streams.audio[0] if inp.streams.audio and fmt != "gif" else None
        done = [0]

        def encode(tmp: Path) -> None:
            with av.open(str(tmp), "w", format=fmt) as out:
                v_out = _video_stream(out, fmt, video)
                a_out = out.add_stream_from_template(audio) if audio is not None else None
                for frames in _batches(inp, video, audio, a_out, out, batch_size):
                    for pixels in convert(frames):
                        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
                        frame.pts, frame.time_base = done[0], v_out.codec_context.time_base
                        out.mux(v_out.encode(frame))
                        done[0] += 1
                    advance(len(frames))
                out.mux(v_out.encode(None))  # flush the encoder

        atomic_write(dst, encode)
    return done[0]


def find_videos(path: str | Path) -> list[Path]:
    """The videos among ``path`` (a file, or a folder searched recursively)."""
    path = Path(path)
    found = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else []
    return [p for p in found if is_video(p)]


def _video_stream(out, fmt: str, video):
    """An encoder keeping the input's size and average frame rate."""
    rate = video.average_rate or video.guessed_rate or Fraction(25)
    stream = out.add_stream(CODECS[fmt], rate=Fraction(rate).limit_denominator(100_000))
    w, h = video.codec_context.width, video.codec_context.height
    stream.width, stream.height = w, h
    if fmt == "gif":
        stream.pix_fmt = "rgb8"  # the GIF encoder's fixed 256-colour palette
    else:
        stream.pix_fmt = "yuv444p" if CODECS[fmt] == "libx264" and (w % 2 or h % 2) else "yuv420p"
    stream.codec_context.time_base = 1 / Fraction(stream.codec_context.framerate)
    return stream


def _batches(inp, video, audio, a_out, out, batch_size: int) -> Iterator[list[np.ndarray]]:
    """Decoded frames (uint8 [H, W, 3]) in batches; audio packets are muxed into ``out`` on the way."""
    frames: list[np.ndarray] = []
    decoded = 0
    streams = [video] + ([audio] if audio is not None else [])
    try:
        for packet in inp.demux(*streams):
            if packet.stream is audio:
                if packet.dts is not None:  # the demuxer's flush packets carry nothing
                    packet.stream = a_out
                    out.mux(packet)
                continue
            for frame in packet.decode():
                frames.append(frame.to_ndarray(format="rgb24"))
                decoded += 1
                if len(frames) == batch_size:
                    yield frames
                    frames = []
    except require_av().FFmpegError as e:
        if isinstance(e, OSError) and not isinstance(e, FileNotFoundError):
            raise  # writing the output failed: a disk error, reported as such
        raise _BadInput(f"corrupt video: {e}") from e
    if frames:
        yield frames
    if not decoded:
        raise _BadInput("the video holds no frames")


@torch.inference_mode()
def _translate(translator, frames: list[np.ndarray]) -> np.ndarray:
    x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)
    y = translator(x)
    if not torch.isfinite(y).all():
        raise ValueError("the generator's output is not finite (NaN or infinity)")
    return to_uint8(y).permute(0, 2, 3, 1).contiguous().cpu().numpy()


class MovingAverage:
    """``s_t = A·s_(t-1) + (1-A)·x_t`` over the first dimension (frames in order), carried from call to call."""

    def __init__(self, alpha: float):
        self.alpha = alpha
        self.state: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = []
        for x_t in x:  # the batch is a run of consecutive frames
            self.state = x_t if self.state is None else self.alpha * self.state + (1 - self.alpha) * x_t
            out.append(self.state)
        return torch.stack(out)


class SmoothedInstanceNorm(nn.Module):
    """Instance norm with statistics carried over from earlier frames: ``s_t = A·s_(t-1) + (1-A)·s(frame t)``.

    ``correction`` is the variance's, as the norm it replaces computes it (1: AdaIN's unbiased variance)."""

    def __init__(self, eps: float, alpha: float, correction: int = 0):
        super().__init__()
        self.eps, self.correction = eps, correction
        self.mean, self.var = MovingAverage(alpha), MovingAverage(alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var, mean = torch.var_mean(x.float(), dim=(2, 3), correction=self.correction, keepdim=True)
        return (x.float() - self.mean(mean)) * torch.rsqrt(self.var(var) + self.eps)


@contextlib.contextmanager
def smoothed_norms(net: nn.Module, alpha: float):
    """With ``alpha`` > 0, swap the instance norms of ``net`` for ``SmoothedInstanceNorm`` (fresh state for
    each video) and put the originals back after; with 0, or without instance norms, change nothing."""
    swapped = []
    if alpha > 0:
        for name, module in list(net.named_modules()):
            if isinstance(module, nn.InstanceNorm2d):
                parent, _, child = name.rpartition(".")
                owner = net.get_submodule(parent)
                setattr(owner, child, SmoothedInstanceNorm(module.eps, alpha, getattr(module, "correction", 0)))
                swapped.append((owner, child, module))
        if not swapped:
            log.warning("--temporal-smoothing: this network has no instance norm; frames are not smoothed")
    try:
        yield
    finally:
        for owner, child, module in swapped:
            setattr(owner, child, module)
