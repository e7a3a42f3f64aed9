"""AdaIN: any painting as the style, in one forward pass (``cyclegan stylize --method adain``).

Huang & Belongie, "Arbitrary Style Transfer in Real-time with Adaptive Instance Normalization" (ICCV
2017). An encoder (VGG19 up to relu4_1) turns the content and the style image into features; adaptive
instance normalisation gives each channel of the content features the mean and standard deviation of
that channel in the style features; a decoder trained for the purpose turns the result into an image.
One decoder serves every painting: nothing is trained per style.

The networks are laid out exactly as in the PyTorch port of the authors' release (naoto0804/pytorch-AdaIN,
``net.py``), whose state dict keys are the ``nn.Sequential`` indices, so its ``vgg_normalised.pth`` and
``decoder.pth`` load unchanged and give its output. Its ``vgg`` is VGG19 with a leading 1×1 convolution
that folds in the Caffe preprocessing, so images go in as RGB in [0, 1]; the encoder is its first 31
layers. Our ``encoder``/``decoder`` are its ``vgg[:31]``/``decoder``; our ``adain`` is its
``adaptive_instance_normalization``, taking the style's statistics (computed once per style) instead of
its features.

``train_decoder`` trains a decoder on a content folder and a style folder with the paper's losses
(``cyclegan train-style --method adain``), with the run folder, resume and Ctrl-C handling of ``train``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from rich.console import Console
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes
from torch import nn

from .. import run
from ..checkpoint import read_state_dict
from ..config import ADAIN_MIN_SIZE, StyleTrainConfig, StylizeConfig, to_dict, validate
from ..data import Augment, EpochBatches, UnpairedDataset, collate, image_folder, load_image, sample_seed
from ..errors import UserError
from ..files import DiskError, atomic_write
from ..outputs import plan_outputs, write_image
from ..progress import progress_bar
from ..run import Progress, RunFolder, StepRun, check_run_folder, data_loader, log_losses, open_tracker
from ..runtime import autocast, resolve_device, resolve_precision
from ..summary import Summary

log = logging.getLogger(__name__)

EPS = 1e-5  # added to the variance before the square root, as published
ENCODER_DEPTH = 31  # layers of the published ``vgg`` up to relu4_1
# The rectified outputs the style loss compares (index in the encoder), as in the paper.
STYLE_LAYERS = {"relu1_1": 3, "relu2_1": 10, "relu3_1": 17, "relu4_1": 30}
DEFAULT_STYLE_SIDE = 512  # long side of the style images when --size is not given
KIND_KEY = "cyclegan.kind"  # the safetensors metadata entry that says what a file holds
DECODER_KIND = "adain_decoder"
DECODER_FILE = "decoder.safetensors"  # a decoder's file in its training run folder
# The published training (naoto0804/pytorch-AdaIN train.py): Adam at 1e-4, decayed as lr / (1 + 5e-5·step),
# content weight 1, style weight 10, crops of 256 from images resized to 512×512.
LR, LR_DECAY, CONTENT_WEIGHT, STYLE_WEIGHT = 1e-4, 5e-5, 1.0, 10.0


# --- the networks -------------------------------------------------------------------------------------


def _conv(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.ReflectionPad2d(1), nn.Conv2d(c_in, c_out, 3), nn.ReLU()]


def encoder() -> nn.Sequential:
    """The published ``vgg`` up to relu4_1 (its first 31 layers), with its indices and so its keys."""
    pool = [nn.MaxPool2d(2, 2, ceil_mode=True)]
    layers: list[nn.Module] = [nn.Conv2d(3, 3, 1)]  # RGB in [0, 1] → the Caffe VGG's BGR, ×255, minus the mean
    layers += _conv(3, 64) + _conv(64, 64) + pool  # relu1_1 at 3
    layers += _conv(64, 128) + _conv(128, 128) + pool  # relu2_1 at 10
    layers += _conv(128, 256) + _conv(256, 256) + _conv(256, 256) + _conv(256, 256) + pool  # relu3_1 at 17
    layers += _conv(256, 512)  # relu4_1 at 30
    return nn.Sequential(*layers)


def decoder() -> nn.Sequential:
    """The published decoder: the encoder mirrored, with nearest-neighbour upsampling instead of pooling."""
    up = [nn.Upsample(scale_factor=2, mode="nearest")]
    layers = _conv(512, 256) + up
    layers += _conv(256, 256) + _conv(256, 256) + _conv(256, 256) + _conv(256, 128) + up
    layers += _conv(128, 128) + _conv(128, 64) + up
    layers += _conv(64, 64) + [nn.ReflectionPad2d(1), nn.Conv2d(64, 3, 3)]  # no ReLU: outputs are clipped
    return nn.Sequential(*layers)


def _load_layout(net: nn.Sequential, state: dict[str, torch.Tensor], what: str) -> nn.Sequential:
    """Load the keys ``net`` has from ``state`` (a file may hold more layers, as vgg_normalised.pth does)."""
    want = net.state_dict()
    missing = [k for k in want if k not in state]
    wrong = [f"{k} {list(state[k].shape)} (expected {list(want[k].shape)})"
             for k in want if k in state and state[k].shape != want[k].shape]
    if missing or wrong:
        why = f"lacks {', '.join(missing[:3])}" if missing else f"has shapes {', '.join(wrong[:2])}"
        raise UserError(f"{what} is not in the layout of the published AdaIN files: it {why}")
    net.load_state_dict({k: state[k].float() for k in want})
    return net.eval()


def load_encoder(path: str | Path) -> nn.Sequential:
    """The encoder from a ``vgg_normalised.pth`` (the published file, or any in its layout)."""
    return _load_layout(encoder(), read_state_dict(path, "--vgg-weights"), f"--vgg-weights {str(path)!r}")


def load_decoder(path: str | Path) -> nn.Sequential:
    """The decoder from the published ``decoder.pth``, one of ours (``.safetensors``), or a run folder."""
    path = Path(path)
    if path.is_dir():
        if not (path / DECODER_FILE).is_file():
            raise UserError(f"--decoder-weights {str(path)!r}: the folder holds no {DECODER_FILE} (has the run "
                            "saved one yet?)")
        path = path / DECODER_FILE
    what = f"--decoder-weights {str(path)!r}"
    if path.suffix.lower() != ".safetensors":
        return _load_layout(decoder(), read_state_dict(path, "--decoder-weights"), what)
    if not path.is_file():
        raise UserError(f"{what} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta, state = dict(f.metadata() or {}), {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:
        raise UserError(f"{what} is not a readable safetensors file ({e})") from None
    if meta.get(KIND_KEY) != DECODER_KIND:
        raise UserError(f"{what} is not an AdaIN decoder (its metadata says {meta.get(KIND_KEY)!r})")
    return _load_layout(decoder(), state, what)


def save_decoder(path: Path, net: nn.Module, metadata: dict) -> Path:
    """Write the decoder as safetensors, saying in its metadata what it is (the layout is fixed)."""
    tensors = {k: v.detach().float().contiguous().cpu() for k, v in net.state_dict().items()}
    meta = {KIND_KEY: DECODER_KIND, **{k: str(v) for k, v in metadata.items()}}
    data = safetensors_bytes(tensors, metadata=meta)

    def write(tmp: Path) -> None:  # from Python, so that a full disk surfaces as an OSError
        with open(tmp, "wb") as f:
            f.write(data)

    return atomic_write(path, write)


# --- adaptive instance normalisation ------------------------------------------------------------------


def calc_mean_std(feat: torch.Tensor, eps: float = EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Each channel's mean and standard deviation over H×W, ``[N, C, 1, 1]`` each.

    As published: the standard deviation is ``sqrt(var + eps)`` with the unbiased variance.
    """
    n, c = feat.shape[:2]
    flat = feat.reshape(n, c, -1)
    return flat.mean(2).view(n, c, 1, 1), (flat.var(2) + eps).sqrt().view(n, c, 1, 1)


def adain(content: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor,
          content_stats: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Content features normalised per channel, then given the style's mean and standard deviation.

    ``content_stats`` replaces the content's own ``calc_mean_std`` (smoothed over video frames).
    """
    mean, std = content_stats or calc_mean_std(content)
    return (content - mean) / std * style_std + style_mean


class SmoothedContentStats:
    """The content features' statistics of consecutive video frames, smoothed: an exponential moving
    average of each channel's mean and variance, as ``--temporal-smoothing`` does for instance norms.

    Every frame is normalised by statistics that move slowly, so a change in one part of the frame (a
    light switched on, someone walking in) no longer shifts the colours of the whole frame. Not in the
    paper; one fresh instance per video.
    """

    def __init__(self, alpha: float):
        from ..video import MovingAverage

        self.mean, self.var = MovingAverage(alpha), MovingAverage(alpha)

    def __call__(self, mean: torch.Tensor, std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mean(mean), self.var(std.square()).sqrt()


class AdaIN:
    """The encoder and decoder on their device: style statistics, and stylised images from content images."""

    def __init__(self, enc: nn.Sequential, dec: nn.Sequential, device: torch.device, precision: str = "fp32"):
        self.encoder = enc.to(device).eval().requires_grad_(False)
        self.decoder = dec.to(device).eval().requires_grad_(False)
        self.device, self.precision = device, precision

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        with autocast(self.device, self.precision):
            return self.encoder(images.to(self.device)).float()  # statistics in float32 at any precision

    @torch.no_grad()
    def style_stats(self, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of a style image's relu4_1 features (``[1, 3, H, W]`` in [0, 1])."""
        return calc_mean_std(self.encode(style))

    @torch.no_grad()
    def __call__(self, content: torch.Tensor, stats: list[tuple[torch.Tensor, torch.Tensor]],
                 weights: list[float], alpha: float = 1.0,
                 smooth: SmoothedContentStats | None = None) -> torch.Tensor:
        """Stylise a batch ``[B, 3, H, W]`` in [0, 1]: ``t = α·Σ wᵢ·AdaIN(f_c, sᵢ) + (1 − α)·f_c``, decoded.

        The weights mix the AdaIN'd features of several styles (they should sum to 1). Any size: the
        decoder's output (H and W rounded up to multiples of 8 by the encoder's pooling) is cropped to the
        input's, which it matches pixel for pixel. ``smooth``: the batch is consecutive video frames whose
        content statistics are smoothed.
        """
        h, w = content.shape[-2:]
        fc = self.encode(content)
        content_stats = smooth(*calc_mean_std(fc)) if smooth is not None else None
        t = sum(wi * adain(fc, mean, std, content_stats) for wi, (mean, std) in zip(weights, stats, strict=True))
        t = alpha * t + (1 - alpha) * fc
        with autocast(self.device, self.precision):
            out = self.decoder(t)
        return out.float()[..., :h, :w].clamp(0, 1)


def load_adain(vgg_weights: str | None, decoder_weights: str | None, device: torch.device,
               precision: str = "fp32") -> AdaIN:
    """The given files, or the published ones (downloaded into the model cache on first use)."""
    from ..catalog import adain_weights

    enc = load_encoder(vgg_weights or adain_weights("vgg"))
    dec = load_decoder(decoder_weights or adain_weights("decoder"))
    return AdaIN(enc, dec, device, precision)


# --- stylize --method adain ---------------------------------------------------------------------------


def to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB → ``[3, H, W]`` float in [0, 1], the range the published networks take."""
    from torchvision.transforms.functional import pil_to_tensor

    return pil_to_tensor(img.convert("RGB")).float().div_(255)


def to_pil(x: torch.Tensor) -> Image.Image:
    """``[3, H, W]`` in [0, 1] → PIL RGB, rounded to the nearest level (as torchvision's save_image does)."""
    return Image.fromarray(x.mul(255).round_().to(torch.uint8).permute(1, 2, 0).cpu().numpy(), "RGB")


def _resize(img: Image.Image, long_side: int | None) -> Image.Image:
    from ..nst import resize_long_side

    return img if long_side is None else resize_long_side(img, long_side)


def _read_style(path: str, long_side: int) -> torch.Tensor:
    if not Path(path).is_file():
        raise UserError(f"style image {path!r} does not exist")
    try:
        img = load_image(path, max_side=long_side)[0]
    except Exception as e:
        raise UserError(f"style image {path!r} is unreadable ({e})") from None
    return to_tensor(_resize(img, long_side)).unsqueeze(0)


def _same_size_batches(todo: list[tuple[Path, Path]], size: int | None, batch_size: int,
                       failed) -> Iterator[list[tuple[Path, Path, Image.Image]]]:
    """``(src, dst, image)`` groups of one image size, up to ``batch_size``; ``failed(src, why)`` for the rest.

    Images are read in order; a group goes as soon as it is full. At most four batches' worth wait, so a
    folder of all different sizes does not sit in memory: then the largest group goes.
    """
    pending: dict[tuple[int, int], list] = {}
    waiting = 0
    for src, dst in todo:
        try:
            img = _resize(load_image(src, max_side=size)[0], size)
        except Exception as e:  # PIL raises a zoo of types for broken files
            failed(src, f"unreadable image ({type(e).__name__}: {e})")
            continue
        if min(img.size) < ADAIN_MIN_SIZE:
            failed(src, f"{img.width}×{img.height} pixels: AdaIN needs at least {ADAIN_MIN_SIZE} on each side")
            continue
        pending.setdefault(img.size, []).append((src, dst, img))
        waiting += 1
        full = img.size if len(pending[img.size]) == batch_size else None
        if full or waiting >= 4 * batch_size:
            group = pending.pop(full or max(pending, key=lambda k: len(pending[k])))
            waiting -= len(group)
            yield group
    yield from pending.values()


def stylize(cfg: StylizeConfig, console: Console | None = None) -> Summary:
    """``cyclegan stylize --method adain``: one content image or video, or a folder of them, in the style of
    ``cfg.styles``.

    Style images are scaled to a long side of ``--size × --style-scale`` (512 × --style-scale without
    --size); content images to ``--size``, or kept at their own size; videos keep their size. The style
    statistics are computed once, for every image and frame. ``--preserve-color`` gives each output (each
    frame) the colours of its content (the luminance step of ``stylize --preserve-color``).
    """
    from ..nst import check_config
    from ..video import VIDEO_SUFFIXES, is_video, require_av

    blend = check_config(cfg)  # the options, the style images and their weights, as for gatys
    summary = Summary()
    todo = plan_outputs(cfg.content, cfg.output, summary, overwrite=cfg.overwrite, what="content",
                        is_video=is_video, video_suffixes=VIDEO_SUFFIXES)
    video = [is_video(src) for src, _ in todo]
    videos = [job for job, v in zip(todo, video, strict=True) if v]
    images = [job for job, v in zip(todo, video, strict=True) if not v]
    if videos:
        require_av()  # a missing extra is said before any download
        if cfg.size is not None:
            log.warning("--size scales images only: videos keep their size")
    if not todo:
        return summary
    device = resolve_device(cfg.device)
    style_side = max(ADAIN_MIN_SIZE, round((cfg.size or DEFAULT_STYLE_SIDE) * cfg.style_scale))
    styles = [_read_style(path, style_side) for path in cfg.styles]  # before any download
    model = load_adain(cfg.vgg_weights, cfg.decoder_weights, device, resolve_precision(cfg.precision, device))
    stats = [model.style_stats(style) for style in styles]
    weights = [w / sum(blend) for w in blend]
    if images:
        _stylize_images(model, images, cfg, stats, weights, summary, console)
    if videos and not summary.stopped:
        _stylize_videos(model, videos, cfg, stats, weights, summary, console)
    return summary


def _stylize_images(model: AdaIN, todo: list[tuple[Path, Path]], cfg: StylizeConfig, stats, weights,
                    summary: Summary, console: Console | None) -> None:
    from ..nst import preserve_color

    with progress_bar(console=console) as progress:
        task = progress.add_task("adain", total=len(todo))

        def failed(src: Path, why: str) -> None:
            log.warning("failed on %s: %s", src, why)
            summary.failed.append((src, why))
            progress.advance(task)

        done = 0
        for group in _same_size_batches(todo, cfg.size, cfg.batch_size, failed):
            try:
                outputs = _run(model, [img for _, _, img in group], stats, weights, cfg.alpha)
            except RuntimeError as e:  # out of memory even one image at a time
                for src, _, _ in group:
                    failed(src, f"{type(e).__name__}: {e}")
                continue
            for (src, dst, img), out in zip(group, outputs, strict=True):
                image = preserve_color(out, img) if cfg.preserve_color else out
                try:
                    write_image(dst, image, quality=95)
                except DiskError as e:  # every later write would fail too: stop, keep what was written
                    summary.stopped, summary.not_done = str(e), len(todo) - done - len(summary.failed)
                    return
                summary.converted.append(src)
                done += 1
                progress.advance(task)


def _stylize_videos(model: AdaIN, todo: list[tuple[Path, Path]], cfg: StylizeConfig, stats, weights,
                    summary: Summary, console: Console | None) -> None:
    """Every frame as an image of its own, with the same style statistics; ``--temporal-smoothing``
    smooths the content statistics from frame to frame (``SmoothedContentStats``), fresh for each video."""
    from ..nst import preserve_color
    from ..video import convert_videos

    smooth: list[SmoothedContentStats | None] = [None]

    def each_video():
        smooth[0] = SmoothedContentStats(cfg.temporal_smoothing) if cfg.temporal_smoothing > 0 else None
        return contextlib.nullcontext()

    def convert(frames: list[np.ndarray]) -> np.ndarray:
        h, w = frames[0].shape[:2]
        if min(h, w) < ADAIN_MIN_SIZE:
            raise ValueError(f"{w}×{h} pixels: AdaIN needs at least {ADAIN_MIN_SIZE} on each side")
        content = [Image.fromarray(f) for f in frames]
        outputs = _run(model, content, stats, weights, cfg.alpha, smooth[0])
        if cfg.preserve_color:
            outputs = [preserve_color(out, img) for out, img in zip(outputs, content, strict=True)]
        return np.stack([np.asarray(out) for out in outputs])

    convert_videos(todo, convert, cfg.batch_size, summary, each_video=each_video, console=console)


def _run(model: AdaIN, images: list[Image.Image], stats, weights, alpha: float,
         smooth: SmoothedContentStats | None = None) -> list[Image.Image]:
    """Stylise images of one size as one batch; out of GPU memory, one at a time."""
    before = (smooth.mean.state, smooth.var.state) if smooth is not None else None
    try:
        out = model(torch.stack([to_tensor(img) for img in images]), stats, weights, alpha, smooth)
    except torch.OutOfMemoryError:
        if len(images) == 1:
            raise
        if model.device.type == "cuda":
            torch.cuda.empty_cache()
        if smooth is not None:  # the frames go again, one at a time: take back what the batch averaged in
            smooth.mean.state, smooth.var.state = before
        return [o for img in images for o in _run(model, [img], stats, weights, alpha, smooth)]
    return [to_pil(o) for o in out]


# --- training a decoder (train-style --method adain) --------------------------------------------------


def encode_with_intermediate(enc: nn.Sequential, x: torch.Tensor) -> list[torch.Tensor]:
    """relu1_1, relu2_1, relu3_1 and relu4_1 of ``x`` (the published ``encode_with_intermediate``)."""
    feats = []
    for i, layer in enumerate(enc):
        x = layer(x)
        if i in STYLE_LAYERS.values():
            feats.append(x)
    return feats


def losses(enc: nn.Sequential, dec: nn.Sequential, content: torch.Tensor,
           style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The paper's losses of the decoder on one batch: ``(content loss, style loss, decoded images)``.

    Content: the decoded image's relu4_1 features against the AdaIN target ``t`` they were decoded from.
    Style: the mean and standard deviation of each of relu1_1…relu4_1 against the style image's.
    """
    with torch.no_grad():
        style_feats = encode_with_intermediate(enc, style)
        t = adain(enc(content), *calc_mean_std(style_feats[-1]))
    g = dec(t)
    g_feats = encode_with_intermediate(enc, g)
    loss_c = F.mse_loss(g_feats[-1], t)
    loss_s = sum(F.mse_loss(a, b) for gf, sf in zip(g_feats, style_feats, strict=True)
                 for a, b in zip(calc_mean_std(gf), calc_mean_std(sf), strict=True))
    return loss_c, loss_s, g


class ContentStyleCrops(UnpairedDataset):
    """Item ``(epoch, i)``: content image ``i`` with a painting drawn at random, each cropped as published
    (resized to twice the crop size, square, then a random crop), returned in [0, 1] as ``A`` and ``B``."""

    def __init__(self, content: list[Path], styles: list[Path], content_size: int, style_size: int, seed: int):
        super().__init__(content, styles, _crops(content_size), seed)
        self.style_augment = _crops(style_size)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        epoch, index = key
        bad: list[str] = []
        style_index = int(torch.randint(len(self.files_b), (), generator=torch.Generator().manual_seed(
            sample_seed(self.seed, epoch, index, 0))))
        try:
            content = self._load(self.files_a, index % len(self.files_a), bad)
            style = self._load(self.files_b, style_index, bad)
        except UserError as e:
            return {"error": str(e), "bad": bad}
        # Augment gives [-1, 1]; the published networks take [0, 1]
        return {"A": self.augment(content, sample_seed(self.seed, epoch, index, 1)).add(1).div(2),
                "B": self.style_augment(style, sample_seed(self.seed, epoch, index, 2)).add(1).div(2), "bad": bad}


def _crops(size: int) -> Augment:
    return Augment("resize_and_crop", load_size=2 * size, image_size=size, flip=False)


# Options that may change when a run is resumed: how it runs, not what it learns.
RESUMABLE = ("max_steps", "workers", "device", "precision", "save_every", "sample_every", "log_every",
             "wandb_mode", "wandb_project")


def check_train_config(cfg: StyleTrainConfig) -> None:
    validate(cfg)
    if not cfg.content or not cfg.style_dir:
        raise UserError("--method adain trains on --content (a folder of photos) and --style-dir (a folder of "
                        "paintings): give both")
    resolve_device(cfg.device)


@dataclass
class DecoderResult:
    run_dir: Path
    step: int
    interrupted: bool


def train_decoder(cfg: StyleTrainConfig) -> DecoderResult:
    """Train (or with ``cfg.resume`` continue) an AdaIN decoder in ``cfg.run_dir``.

    The encoder is frozen (``--vgg-weights``, default the published ``vgg_normalised.pth``); the decoder
    starts from random weights. The run folder holds ``config.json``, ``latest.pt`` (the exact state) and
    ``decoder.safetensors``, which ``stylize --method adain --decoder-weights RUN`` uses.
    """
    check_run_folder(cfg.run_dir, cfg.resume, cfg.overwrite)  # the clearest message first
    if cfg.resume:
        cfg = run.resume_config(cfg, RESUMABLE)
    check_train_config(cfg)
    content = image_folder(cfg.content, "content folder")
    styles = image_folder(cfg.style_dir, "style folder")
    device = resolve_device(cfg.device)
    enc = load_encoder(cfg.vgg_weights) if cfg.vgg_weights else None
    if enc is None:
        from ..catalog import adain_weights

        enc = load_encoder(adain_weights("vgg"))
    with RunFolder(cfg.run_dir, cfg.resume, cfg.overwrite, exports=(DECODER_FILE,)) as folder:
        training = DecoderRun(cfg, folder, content, styles, enc, device)
        interrupted = training.train()
        return DecoderResult(folder.path, training.step, interrupted)


class DecoderRun(StepRun):
    """One decoder training run: networks, optimiser, data, where it stands, saving (the loop: ``StepRun``)."""

    command = "train-style --method adain"

    def __init__(self, cfg: StyleTrainConfig, folder, content: list[Path], styles: list[Path],
                 enc: nn.Sequential, device: torch.device):
        self.cfg, self.folder, self.device = cfg, folder, device
        self.precision = resolve_precision(cfg.precision, device)
        self.weights = (CONTENT_WEIGHT if cfg.content_weight is None else cfg.content_weight,
                        STYLE_WEIGHT if cfg.style_weight is None else cfg.style_weight)
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        self.encoder = enc.to(device).eval().requires_grad_(False)
        self.decoder = decoder().to(device)
        self.opt = torch.optim.Adam(self.decoder.parameters(), lr=cfg.lr or LR)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda step: 1 / (1 + LR_DECAY * step))
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.precision == "fp16")
        self.step = 0
        self.saved_step: int | None = None
        self.in_step = False  # between the start and the end of an update the state is not worth saving
        wandb_id = self.restore() if cfg.resume else None

        dataset = ContentStyleCrops(content, styles, cfg.image_size, cfg.style_size or cfg.image_size, cfg.seed)
        # The data of a step is a function of the seed and the step alone: a resumed run sees what it would have.
        self.per_epoch = math.ceil(len(dataset) / cfg.batch_size)
        epoch, batch = divmod(self.step, self.per_epoch)
        sampler = EpochBatches(len(dataset), cfg.batch_size, cfg.seed, epoch, math.ceil(cfg.steps / self.per_epoch),
                               batch)
        self.loader = data_loader(dataset, sampler, cfg.workers, collate, pin_memory=device.type == "cuda")
        self.total_steps = cfg.steps
        self.stop_at = min(cfg.steps, cfg.max_steps or cfg.steps)  # --max-steps counts all steps, as in train
        self.config = to_dict(cfg)
        folder.write_config({**self.config, "files": {"content": len(content), "styles": len(styles)}})
        self.tracker = open_tracker(folder.path, cfg.wandb_mode, cfg.wandb_project, cfg.name, self.config, True,
                                    run_id=wandb_id)
        self.wandb_id = self.tracker.run_id
        self.warned: set[str] = set()
        log.info("training AdaIN decoder %s: %d content / %d style images, steps %d to %d, device %s, %s",
                 cfg.name, len(content), len(styles), self.step, self.stop_at, device, self.precision)

    def train_step(self, batch: dict) -> dict[str, torch.Tensor]:
        self.check_batch(batch)
        content, style = batch["A"].to(self.device), batch["B"].to(self.device)
        self.in_step = True
        self.opt.zero_grad(set_to_none=True)
        with autocast(self.device, self.precision):
            loss_c, loss_s, self.last = losses(self.encoder, self.decoder, content, style)
        loss_c, loss_s = self.weights[0] * loss_c.float(), self.weights[1] * loss_s.float()
        self.scaler.scale(loss_c + loss_s).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        self.sched.step()  # the published schedule: lr / (1 + 5e-5 · step)
        self.step += 1
        self.in_step = False
        self.last_batch = (content, style)
        return {"content": loss_c.detach(), "style": loss_s.detach()}

    def log(self, losses: dict[str, torch.Tensor], progress: Progress) -> None:
        log_losses(self, losses, progress, extra={"lr": self.opt.param_groups[0]["lr"]})

    def outputs(self) -> str:
        return f"decoder in {self.folder.path / DECODER_FILE}"

    def save_sample(self) -> None:
        """Rows: content | style | decoded, for up to four images of the last batch."""
        from torchvision.utils import make_grid, save_image

        content, style = self.last_batch
        n = min(4, len(content))
        style = F.interpolate(style[:n], size=content.shape[-2:], mode="bilinear", align_corners=False)
        tiles = torch.stack([t for i in range(n) for t in (content[i], style[i], self.last[i].detach())])
        grid = make_grid(tiles.float().clamp(0, 1).cpu(), nrow=3, padding=2)
        path = atomic_write(self.folder.path / "samples" / f"step_{self.step:07d}.png",
                            lambda tmp: save_image(grid, tmp, format="png"))
        self.tracker.log_image("samples", path, self.step, caption="content | style | decoded")

    def save(self) -> None:
        """The decoder, then latest.pt (the commit point)."""
        if self.saved_step == self.step:
            return
        save_decoder(self.folder.path / DECODER_FILE, self.decoder, {"step": self.step, "name": self.cfg.name})
        state = {"trainer": {"decoder": self.decoder.state_dict(), "opt": self.opt.state_dict(),
                             "sched": self.sched.state_dict(), "scaler": self.scaler.state_dict()},
                 "rng": run.rng_state(self.device), "step": self.step, "epoch": self.step // self.per_epoch,
                 "batch_in_epoch": self.step % self.per_epoch,
                 "wandb_id": self.wandb_id, "config": self.config}
        self.folder.save(state)
        self.saved_step = self.step

    def restore(self) -> str | None:
        state = self.folder.load()
        trainer = state["trainer"]
        self.decoder.load_state_dict(trainer["decoder"])
        self.opt.load_state_dict(trainer["opt"])
        self.sched.load_state_dict(trainer["sched"])
        if trainer.get("scaler"):
            self.scaler.load_state_dict(trainer["scaler"])
        run.set_rng_state(state["rng"], self.device)
        self.step = self.saved_step = state["step"]
        log.info("resuming %s at step %d", self.folder.path, self.step)
        return state.get("wandb_id")
