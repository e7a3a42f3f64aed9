"""Neural style transfer by optimisation (Gatys et al.), the baseline that ``cyclegan stylize`` runs.

An image is optimised so that its VGG19 features match a content photo at one layer (content loss)
and the Gram matrices of its features match those of one or more paintings at several layers (style
loss). No training: each output costs a few hundred forward/backward passes through VGG19.

References: Gatys, Ecker, Bethge, "Image Style Transfer Using Convolutional Neural Networks" (CVPR
2016); Gatys et al., "Preserving Color in Neural Artistic Style Transfer" (arXiv:1606.05897).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from PIL import Image
from rich.console import Console
from torch import nn
from torchvision.models import VGG19_Weights
from torchvision.models.vgg import make_layers
from torchvision.transforms.functional import pil_to_tensor, to_pil_image

from .config import StylizeConfig, validate, vgg_min_size
from .data import load_image
from .errors import UserError
from .files import DiskError
from .outputs import plan_outputs, write_image
from .progress import progress_bar
from .runtime import resolve_device
from .summary import Summary

log = logging.getLogger(__name__)

VGG19_WIDTHS = (64, 128, 256, 512, 512)  # channels of the five conv blocks
VGG19_DEPTHS = (2, 2, 4, 4, 4)  # convs per block
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, the Y of YIQ/YUV/YCbCr
OPTIMIZERS = ("lbfgs", "adam")
POOLINGS = ("max", "avg")
INITS = ("content", "noise", "style")
PHOTOREAL_CONTENT_WEIGHT, PHOTOREAL_STYLE_WEIGHT = 5.0, 100.0  # Luan et al.'s code (Caffe VGG19 feature units)
VGG19_URL = VGG19_Weights.IMAGENET1K_V1.url  # the default weights, as torchvision downloads them


def _layer_index() -> dict[str, int]:
    """Layer name → index in torchvision's ``vgg19().features``.

    ``convB_N`` names the rectified output of that convolution (the ReLU after it), which is what the
    name means in the Caffe model of the paper, where ReLUs run in place. ``poolB`` is a pooling output.
    """
    index, i = {}, 0
    for block, depth in enumerate(VGG19_DEPTHS, start=1):
        for n in range(1, depth + 1):
            index[f"conv{block}_{n}"] = i + 1  # conv at i, its ReLU at i + 1
            i += 2
        index[f"pool{block}"] = i
        i += 1
    return index


LAYER_INDEX = _layer_index()


def min_side(layers: Iterable[str]) -> int:
    """The smallest image side VGG19 can take for ``layers`` (``config.vgg_min_size``: each pooling halves
    the side, and the deepest layer needs at least one pixel; conv5_1, after 4 poolings: 16)."""
    return vgg_min_size(list(layers))


def vgg19_features(pooling: str = "max", widths: Sequence[int] = VGG19_WIDTHS) -> nn.Sequential:
    """torchvision's VGG19 ``features`` (randomly initialised), with max or average pooling.

    ``widths`` other than the default give a VGG19-shaped net with the same layer indices and fewer
    channels, which the tests use as a small random VGG.
    """
    cfg: list[int | str] = []
    for width, depth in zip(widths, VGG19_DEPTHS, strict=True):
        cfg += [width] * depth + ["M"]
    net = make_layers(cfg)
    if pooling == "avg":  # Gatys et al. found average pooling gives slightly smoother results
        for i, layer in enumerate(net):
            if isinstance(layer, nn.MaxPool2d):
                net[i] = nn.AvgPool2d(kernel_size=2, stride=2)
    return net


def default_vgg19_path() -> Path:
    """torchvision's own cache file for the weights, so a copy that torchvision downloaded is used too."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(VGG19_URL).path).name


def _fetch_vgg19() -> Path:
    """torchvision's ImageNet VGG19 weights: from the torch cache, or downloaded into it once."""
    from .download import cached_download, sha256_file

    path = default_vgg19_path()
    cached = path.is_file()
    # One retry: offline, fail within seconds; an interrupted transfer resumes on the next run.
    cached_download(
        path, VGG19_URL, what="torchvision's VGG19 ImageNet weights (548 MB)", record=False, retries=1,
        offline="pass --vgg-weights PATH: a VGG19 features state dict in torchvision's layout (keys "
                f"features.0.weight ... features.34.bias), such as {path.name} copied from a machine that has it.",
    )
    prefix = re.search(r"-([0-9a-f]{8,})\.", path.name)  # torchvision names files NAME-<SHA-256 prefix>.pth
    if not cached and prefix and not (sha := sha256_file(path)).startswith(prefix.group(1)):
        path.unlink()
        raise UserError(f"{VGG19_URL} arrived damaged (SHA-256 {sha[:12]}..., not {prefix.group(1)}...); run again")
    return path


def _read_state(path: str | Path, what: str = "--vgg-weights") -> dict[str, torch.Tensor]:
    from .checkpoint import read_state_dict  # the one safe reader of weights files

    return read_state_dict(path, what)


def load_vgg19(
    weights: str | Path | None, layers: Iterable[str], pooling: str = "max", device: torch.device | str = "cpu"
) -> nn.Sequential:
    """Frozen VGG19 features up to the deepest of ``layers``, in eval mode, float32, on ``device``.

    ``weights`` is a state dict file in torchvision's layout (``features.N.weight``; float16 is fine),
    or ``None`` for torchvision's ``IMAGENET1K_V1`` weights.
    """
    state = _read_state(_fetch_vgg19(), "the cached VGG19 weights") if weights is None else _read_state(weights)
    # Accept both a whole-model state dict (features.N.*) and a bare features one (N.*).
    state = {k.removeprefix("features."): v.float() for k, v in state.items() if torch.is_tensor(v)}
    depth = max(LAYER_INDEX[name] for name in layers) + 1
    net = vgg19_features(pooling)[:depth]
    try:
        missing = net.load_state_dict(state, strict=False).missing_keys
    except RuntimeError as e:  # shape mismatch: not VGG19
        raise UserError(f"--vgg-weights: not VGG19 features weights ({str(e).splitlines()[-1].strip()})") from None
    if missing:
        what = "torchvision's VGG19" if weights is None else repr(str(weights))
        names = ", ".join(f"features.{k}" for k in missing[:4])
        names += f" and {len(missing) - 4} more" if len(missing) > 4 else ""
        raise UserError(f"{what} lacks weights that the chosen layers need: {names}")
    return net.to(device).eval().requires_grad_(False)


class VGGFeatures(nn.Module):
    """Named VGG activations of an RGB image in [0, 1] (ImageNet normalisation happens here)."""

    def __init__(self, features: nn.Sequential, layers: Iterable[str]):
        super().__init__()
        self.at: dict[int, list[str]] = {}
        for name in dict.fromkeys(layers):
            self.at.setdefault(LAYER_INDEX[name], []).append(name)
        self.net = features[: max(self.at) + 1].eval().requires_grad_(False)
        # Channels-last convolutions are faster on CPUs (oneDNN) and on GPUs alike.
        self.net.to(memory_format=torch.channels_last)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.shape[1] == 1:  # a luminance image (--preserve-color) is seen as grey RGB
            x = x.expand(-1, 3, -1, -1)
        x = ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        out = {}
        for i, layer in enumerate(self.net):
            x = layer(x)
            for name in self.at.get(i, ()):
                out[name] = x
        return out


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """``[B, C, H, W]`` → ``[B, C, C]`` channel correlations, divided by C·H·W so image size matters little."""
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between neighbouring pixels: penalises high-frequency noise."""
    return (x[..., 1:, :] - x[..., :-1, :]).pow(2).mean() + (x[..., :, 1:] - x[..., :, :-1]).pow(2).mean()


@torch.no_grad()
def style_targets(
    extractor: VGGFeatures, styles: Sequence[torch.Tensor], blend: Sequence[float], layers: Iterable[str]
) -> dict[str, torch.Tensor]:
    """The blended Gram target of each style layer: Σ wᵢ·Gram(styleᵢ) with weights summing to 1.

    Matching the blend is the same optimisation problem as minimising Σ wᵢ‖G − Gram(styleᵢ)‖²: the two
    differ by a constant, so one target per layer is all the loop needs.
    """
    total = sum(blend)
    targets: dict[str, torch.Tensor] = {}
    for style, w in zip(styles, blend, strict=True):
        feats = extractor(style)
        for name in layers:
            g = gram_matrix(feats[name]) * (w / total)
            targets[name] = targets[name] + g if name in targets else g
    return targets


class Objective(nn.Module):
    """Weighted content, style and total-variation losses of an image against fixed targets.

    Optional terms: ``guide`` replaces the Gram loss by a loss of the features (the per-region Gram
    loss of semantic masks), ``histogram`` adds one weighted by ``histogram_weight`` (Risser et al.),
    and ``regularizer`` one of the image itself, already weighted (the photorealism regulariser).
    """

    def __init__(
        self,
        extractor: VGGFeatures,
        content: torch.Tensor,
        grams: dict[str, torch.Tensor],
        content_layers: Sequence[str],
        content_weight: float = 1.0,
        style_weight: float = 1e6,
        tv_weight: float = 0.0,
        *,
        guide: nn.Module | None = None,
        histogram: nn.Module | None = None,
        histogram_weight: float = 0.0,
        regularizer: nn.Module | None = None,
    ):
        super().__init__()
        self.extractor = extractor
        with torch.no_grad():
            feats = extractor(content)
        self.content_targets = {name: feats[name] for name in content_layers}
        self.grams = grams
        self.weights = {"content": content_weight, "style": style_weight, "tv": tv_weight,
                        "histogram": histogram_weight}
        self.guide, self.histogram, self.regularizer = guide, histogram, regularizer

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.extractor(x)
        content = sum(F.mse_loss(feats[n], t) for n, t in self.content_targets.items())
        if self.guide is not None:
            style = self.guide(feats)
        else:
            style = sum(F.mse_loss(gram_matrix(feats[n]), t) for n, t in self.grams.items())
        losses = {
            "content": self.weights["content"] * content,
            "style": self.weights["style"] * style,
            "tv": self.weights["tv"] * total_variation(x),
        }
        if self.histogram is not None:
            losses["histogram"] = self.weights["histogram"] * self.histogram(feats)
        if self.regularizer is not None:
            losses["photoreal"] = self.regularizer(x)
        losses["total"] = sum(losses.values())
        return losses


class _Stop(Exception):
    """Ends an optimiser's run from inside the loss closure, the one place torch optimisers let us act."""


class _NonFinite(_Stop):
    """The loss or its gradient is NaN or infinite at the current image."""


def optimize(
    objective: Objective,
    init: torch.Tensor,
    steps: int,
    optimizer: str = "lbfgs",
    lr: float = 0.02,
    on_step: Callable[[dict[str, float]], None] | None = None,
) -> tuple[torch.Tensor, dict[str, float], dict[str, float]]:
    """Optimise the image from ``init`` for ``steps`` loss evaluations.

    Returns the best image seen, clamped to [0, 1], and the (weighted) losses at the start and at the
    end. ``on_step`` receives the losses after each evaluation. Should the loss stop being finite,
    L-BFGS hands over to Adam from the best image so far; if Adam meets a non-finite loss too, a
    RuntimeError says so: a NaN image is never returned.
    """
    if optimizer not in OPTIMIZERS:
        raise UserError(f"unknown optimizer {optimizer!r}: use {' or '.join(OPTIMIZERS)}")
    x = init.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)
    start: dict[str, float] = {}
    best: dict = {"total": math.inf}  # and "x", the image of the lowest finite loss
    evals = 0

    def closure() -> torch.Tensor:
        nonlocal evals
        if evals == steps:  # a second L-BFGS step() would count its evaluations afresh
            raise _Stop
        evals += 1
        with torch.no_grad():
            x.clamp_(0, 1)  # evaluate valid images only: outside [0, 1] the style loss soon overflows
        x.grad = None
        losses = objective(x)
        values = {k: float(v.detach()) for k, v in losses.items()}  # L-BFGS syncs on the loss anyway
        if not start:
            start.update(values)
        # The optimiser sees the loss in units of its start. Until L-BFGS knows the curvature it steps
        # along the raw gradient, so its steps scaled with the loss: at a style loss of 1e12 (seen at
        # 64 px) they threw pixels out to 1e10, where the loss overflowed to inf and then NaN.
        scaled = losses["total"] / (start["total"] or 1.0)
        scaled.backward()
        if on_step:
            on_step(values)
        if not (math.isfinite(values["total"]) and bool(torch.isfinite(x.grad).all())):
            raise _NonFinite
        if values["total"] < best["total"]:
            best.update(total=values["total"], x=x.detach().clone())
        return scaled

    def run(name: str) -> bool:
        """Optimise ``x`` with one optimiser until the budget is spent; False if the loss went non-finite."""
        try:
            if name == "lbfgs":
                # One evaluation per iteration (no line search), as in the reference implementations.
                # The tolerances are off so that it runs all the steps, unless its direction points
                # uphill; the loop below then calls it again.
                opt = torch.optim.LBFGS(
                    [x], max_iter=steps, max_eval=steps, tolerance_grad=-1, tolerance_change=-1, history_size=50
                )
            else:
                opt = torch.optim.Adam([x], lr=lr)
            while evals < steps:
                opt.step(closure)
        except _NonFinite:
            return False
        except _Stop:
            pass
        return True

    finite = run(optimizer)
    if not finite and optimizer == "lbfgs" and best["total"] < math.inf:
        log.warning(
            "L-BFGS met a non-finite loss at step %d of %d; going on with Adam from the best image", evals, steps
        )
        with torch.no_grad():
            x.copy_(best["x"])
        finite = run("adam")
    if not finite:
        raise RuntimeError(f"the style transfer loss became NaN or infinite at step {evals} of {steps}")
    with torch.no_grad():
        x.copy_(best["x"])  # already in [0, 1]: the closure clamps before evaluating
        end = {k: float(v) for k, v in objective(x).items()}
    if not all(math.isfinite(v) for v in end.values()):
        raise RuntimeError("the style transfer result has a NaN or infinite loss")
    return x.detach(), start, end


# --- images -------------------------------------------------------------------------------------------


def resize_long_side(img: Image.Image, long_side: int) -> Image.Image:
    w, h = img.size
    scale = long_side / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return img if size == img.size else img.resize(size, Image.Resampling.LANCZOS)


def image_tensor(img: Image.Image, device: torch.device | str = "cpu") -> torch.Tensor:
    """PIL RGB → ``[1, 3, H, W]`` float in [0, 1] (VGG's range, unlike the generators' [-1, 1])."""
    return pil_to_tensor(img.convert("RGB")).float().div_(255).unsqueeze(0).to(device)


def luminance(x: torch.Tensor) -> torch.Tensor:
    """``[B, 3, H, W]`` RGB → ``[B, 1, H, W]`` luma Y."""
    return (x * torch.tensor(LUMA, device=x.device).view(1, 3, 1, 1)).sum(1, keepdim=True)


def match_luminance(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Shift and scale a style luminance to the content's mean and standard deviation (Gatys et al. 2016)."""
    return (style - style.mean()) / (style.std() + 1e-8) * content.std() + content.mean()


def preserve_color(stylized: Image.Image, content: Image.Image) -> Image.Image:
    """The luminance of ``stylized`` with the colour (chroma) of ``content``.

    Works on any output: a style transfer result, a CycleGAN translation. ``content`` is resized to the
    size of ``stylized``. YCbCr's Y is the same BT.601 luma as YIQ's, and its two chroma channels span the
    same plane as I and Q, so swapping Y here is the YIQ luminance transfer of Gatys et al. (2016).
    """
    content = content.convert("RGB")
    if content.size != stylized.size:
        content = content.resize(stylized.size, Image.Resampling.LANCZOS)
    y = stylized.convert("RGB").convert("YCbCr").getchannel("Y")
    _, cb, cr = content.convert("YCbCr").split()
    return Image.merge("YCbCr", (y, cb, cr)).convert("RGB")


def save_image(img: Image.Image, path: Path) -> None:
    """Write atomically, in the format the suffix names (so a Ctrl-C never leaves a truncated file)."""
    write_image(Path(path), img, quality=95)


# --- the workflow -------------------------------------------------------------------------------------


def check_config(cfg: StylizeConfig) -> list[float]:
    """Reject bad options before any work; returns the style blend weights (equal by default)."""
    validate(cfg)  # each option against its declaration in config.py
    for option, layers in (("--content-layers", cfg.content_layers), ("--style-layers", cfg.style_layers)):
        if not layers:
            raise UserError(f"{option}: name at least one layer")
        unknown = [n for n in layers if n not in LAYER_INDEX]
        if unknown:
            raise UserError(f"{option}: unknown layer(s) {', '.join(unknown)}; choose from {', '.join(LAYER_INDEX)}")
    if not cfg.styles:
        raise UserError("give at least one style image")
    blend = list(cfg.style_blend) if cfg.style_blend else [1.0] * len(cfg.styles)
    if len(blend) != len(cfg.styles):
        raise UserError(f"--style-blend has {len(blend)} weights for {len(cfg.styles)} style images")
    if any(w < 0 for w in blend) or sum(blend) <= 0:
        raise UserError("--style-blend weights must be non-negative and not all zero")
    return blend


class Stylizer:
    """What stays fixed across content images: the network, the style images and their Gram targets."""

    def __init__(self, cfg: StylizeConfig, device: torch.device, features: nn.Sequential | None = None):
        self.cfg = cfg
        self.device = device
        self.blend = check_config(cfg)
        self.styles = []
        for path in cfg.styles:
            if not Path(path).is_file():
                raise UserError(f"style image {path!r} does not exist")
            try:
                self.styles.append(load_image(path)[0])
            except Exception as e:
                raise UserError(f"style image {path!r} is unreadable ({e})") from None
        layers = [*cfg.content_layers, *cfg.style_layers]
        if features is None:
            features = load_vgg19(cfg.vgg_weights, layers, cfg.pooling, device)
        self.extractor = VGGFeatures(features, layers).to(device)
        style_size = max(1, round(cfg.size * cfg.style_scale))
        self.style_tensors = [image_tensor(resize_long_side(s, style_size), device) for s in self.styles]
        for path, style in zip(cfg.styles, self.style_tensors, strict=True):
            self._check_side(style, f"style image {path!r}", "--style-scale or --size")
        # Colour-preserving transfer matches style luminance to each content image, so its targets are
        # per image; otherwise they are computed once here for the whole folder.
        self.grams = None if cfg.preserve_color else self._grams(self.style_tensors)
        # Luan et al.'s weights, unless given: they hold in the Caffe VGG19's feature units (see README).
        defaults = StylizeConfig(method=cfg.method)
        self.content_weight, self.style_weight = cfg.content_weight, cfg.style_weight
        if cfg.photoreal and (cfg.content_weight, cfg.style_weight) == (defaults.content_weight, defaults.style_weight):
            self.content_weight, self.style_weight = PHOTOREAL_CONTENT_WEIGHT, PHOTOREAL_STYLE_WEIGHT
        self.segmenter = None
        self.style_mask = None  # (region index, colours) at the style tensor's size
        if cfg.auto_masks:
            from .style.masks import auto_mask, load_segmenter

            self.segmenter = load_segmenter(cfg.seg_weights, device)
            self.style_mask = auto_mask(self.segmenter, to_pil_image(self.style_tensors[0][0].cpu()))
        elif cfg.style_mask is not None:
            from .style.masks import load_mask

            h, w = self.style_tensors[0].shape[-2:]
            self.style_mask = load_mask(cfg.style_mask, (w, h), "--style-mask")
            load_mask(cfg.content_mask, None, "--content-mask")  # a bad file stops the run here, not per image

    def _check_side(self, x: torch.Tensor, what: str, remedy: str) -> None:
        """Fail before any optimisation if the deepest layer would see an empty feature map."""
        need = min_side([*self.cfg.content_layers, *self.cfg.style_layers])
        h, w = x.shape[-2:]
        if min(h, w) < need:
            raise UserError(f"{what} is {w}x{h} px when resized, below the {need} px minimum side; raise {remedy}")

    def _grams(self, styles: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        return style_targets(self.extractor, styles, self.blend, self.cfg.style_layers)

    def __call__(self, content: Image.Image, on_step: Callable[[dict[str, float]], None] | None = None):
        """Stylise one image; returns ``(output PIL image, start losses, end losses)``."""
        cfg = self.cfg
        content = resize_long_side(content.convert("RGB"), cfg.size)
        x = image_tensor(content, self.device)
        self._check_side(x, "the content image", "--size")
        grams = self.grams
        styles = self.style_tensors
        if cfg.preserve_color:  # luminance-only transfer (Gatys et al. 2016)
            x = luminance(x)
            styles = [match_luminance(luminance(s), x) for s in styles]
            grams = self._grams(styles)
        if cfg.init == "content":
            init = x
        elif cfg.init == "noise":
            gen = torch.Generator().manual_seed(cfg.seed)  # per image: same result whatever the folder order
            init = torch.rand(x.shape, generator=gen).to(self.device)
        else:
            init = F.interpolate(styles[0], size=x.shape[-2:], mode="bilinear", antialias=True, align_corners=False)
        # --photoreal runs one stage, the regulariser on from the first step. Luan et al. run 1000 steps
        # without it, then 1000 with it; at a few hundred steps the first stage's painterly texture
        # outlives the second, while the one stage stays clean.
        objective = self._objective(content, x, styles, grams, regularize=cfg.photoreal)
        out, start, end = optimize(objective, init, cfg.steps, cfg.optimizer, cfg.lr, on_step)
        image = to_pil_image(out[0].cpu())
        if cfg.preserve_color:
            image = preserve_color(image, content)
        return image, start, end


    def _objective(self, content: Image.Image, x: torch.Tensor, styles: list[torch.Tensor],
                   grams: dict[str, torch.Tensor], regularize: bool = False) -> Objective:
        """The loss of one content image ``x`` (its PIL ``content``): Gram or per-region Gram, and the
        histogram and photorealism terms that the options ask for."""
        cfg = self.cfg
        guide = histogram = regularizer = None
        if cfg.histogram_weight > 0 or self.style_mask is not None:
            with torch.no_grad():
                sizes = {n: f.shape[-2:] for n, f in self.extractor(x).items() if n in cfg.style_layers}
                style_feats = [{n: f for n, f in self.extractor(s).items() if n in cfg.style_layers} for s in styles]
        if cfg.histogram_weight > 0:
            from .style.histogram import HistogramLoss

            histogram = HistogramLoss(style_feats, self.blend)
        if self.style_mask is not None:
            from .style.masks import SemanticStyleLoss, auto_mask, load_mask, pair_regions

            if self.segmenter is not None:
                content_mask = auto_mask(self.segmenter, content)
            else:
                content_mask = load_mask(cfg.content_mask, content.size, "--content-mask")
            c_masks, s_masks = pair_regions(content_mask, self.style_mask)
            guide = SemanticStyleLoss(style_feats[0], c_masks.to(self.device), s_masks.to(self.device), sizes)
        if regularize:
            from .style.photoreal import PhotorealismLoss

            regularizer = PhotorealismLoss(image_tensor(content, self.device), cfg.photoreal_weight)
        return Objective(
            self.extractor, x, grams, cfg.content_layers, self.content_weight, self.style_weight, cfg.tv_weight,
            guide=guide, histogram=histogram, histogram_weight=cfg.histogram_weight, regularizer=regularizer,
        )


def _format_losses(losses: dict[str, float]) -> str:
    keys = ("content", "style", "tv", "histogram", "photoreal", "total")
    return " ".join(f"{k} {losses[k]:.3g}" for k in keys if k in losses)


def stylize(cfg: StylizeConfig, console: Console | None = None) -> Summary:
    """``cyclegan stylize``: one content image or a folder of them, written to ``cfg.output``.

    A full or read-only disk stops the run (``summary.stopped``); what was written stays.
    """
    console = console or Console(stderr=True)
    check_config(cfg)
    summary = Summary()
    todo = plan_outputs(cfg.content, cfg.output, summary, overwrite=cfg.overwrite, what="content")
    if not todo:
        return summary

    device = resolve_device(cfg.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    stylizer = Stylizer(cfg, device)
    with progress_bar("losses", unit="steps", console=console) as progress:
        images_task = None
        if len(todo) > 1:
            images_task = progress.add_task("images", total=len(todo), losses="", unit="images")
        steps_task = progress.add_task("steps", total=cfg.steps, losses="")

        def on_step(losses: dict[str, float]) -> None:
            progress.update(steps_task, advance=1, losses=_format_losses(losses))

        for n, (src, dst) in enumerate(todo):
            progress.reset(steps_task, total=cfg.steps, description=src.name, losses="")
            try:
                stylize_one(stylizer, src, dst, on_step)
                summary.converted.append(src)
            except DiskError as e:  # every later write would fail too: stop, keep what was written
                summary.stopped, summary.not_done = str(e), len(todo) - n
                break
            except (UserError, OSError, RuntimeError, ValueError) as e:  # unreadable, out of memory; go on
                log.warning("failed on %s: %s", src, e)
                summary.failed.append((src, str(e) if isinstance(e, UserError) else f"{type(e).__name__}: {e}"))
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            if images_task is not None:
                progress.advance(images_task)
    return summary


def stylize_one(stylizer: Stylizer, src: Path, dst: Path, on_step=None) -> None:
    try:
        content = load_image(src)[0]
    except Exception as e:  # PIL raises a zoo of types for broken files
        raise UserError(f"unreadable image ({type(e).__name__}: {e})") from None
    image, _, _ = stylizer(content, on_step)
    save_image(image, dst)


def recolor(stylized: str | Path, content: str | Path, output: str | Path) -> Path:
    """``cyclegan recolor``: give any output image the colours of its content image."""
    images = []
    for what, path in (("stylized image", stylized), ("content image", content)):
        if not Path(path).is_file():
            raise UserError(f"{what} {str(path)!r} does not exist")
        try:
            images.append(load_image(path)[0])
        except Exception as e:
            raise UserError(f"{what} {str(path)!r} is unreadable ({e})") from None
    output = Path(output)
    for what, path in (("stylized image", stylized), ("content image", content)):
        if output.resolve() == Path(path).resolve():
            raise UserError(f"the output {output} is the {what}: choose another output file")
    save_image(preserve_color(*images), output)
    return output
