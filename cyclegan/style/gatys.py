"""Neural style transfer by optimisation (Gatys et al.): ``cyclegan stylize`` and the evaluation baseline.

An image is optimised so that its VGG19 features match a content photo at one layer (content loss) and the
Gram matrices of its features match those of one or more paintings at several layers (style loss). No
training: each output costs a few hundred forward/backward passes through VGG19. The loss terms are the
relative ones of ``vgg.py``; the guided variants add terms from ``photoreal.py`` (Luan et al.'s
regulariser), ``masks.py`` (per-region Gram matrices) and ``histogram.py`` (Risser et al.).

References: Gatys, Ecker, Bethge, "Image Style Transfer Using Convolutional Neural Networks" (CVPR
2016); Gatys et al., "Preserving Color in Neural Artistic Style Transfer" (arXiv:1606.05897).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from rich.console import Console
from torch import nn

from ..config import StylizeConfig, validate
from ..errors import UserError
from ..files import DiskError
from ..outputs import plan_outputs
from ..progress import progress_bar
from ..runtime import resolve_device
from ..summary import Summary
from . import masks
from .histogram import HistogramLoss
from .images import (
    luminance,
    match_luminance,
    preserve_color,
    read_image,
    resize_long_side,
    save_image,
    to_image,
    to_tensor,
)
from .photoreal import PhotorealismLoss
from .vgg import VGGFeatures, content_loss, gram_matrix, load_vgg19, min_side, style_loss, total_variation

log = logging.getLogger(__name__)

OPTIMIZERS = ("lbfgs", "adam")
INITS = ("content", "noise", "style")


@torch.no_grad()
def style_targets(extractor: VGGFeatures, styles: Sequence[torch.Tensor], blend: Sequence[float],
                  layers: Sequence[str]) -> dict[str, torch.Tensor]:
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

    def __init__(self, extractor: VGGFeatures, content: torch.Tensor, grams: dict[str, torch.Tensor],
                 content_layers: Sequence[str], content_weight: float = 1.0, style_weight: float = 1.0,
                 tv_weight: float = 0.0, *, guide: nn.Module | None = None, histogram: nn.Module | None = None,
                 histogram_weight: float = 0.0, regularizer: nn.Module | None = None):
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
        style = self.guide(feats) if self.guide is not None else style_loss(feats, self.grams)
        losses = {
            "content": self.weights["content"] * content_loss(feats, self.content_targets),
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


class Stopped(_Stop):
    """Raised by an ``on_step`` or ``on_image`` callback to end the optimisation early (a stop button): the
    best image so far is the result."""


def optimize(objective: Objective, init: torch.Tensor, steps: int, optimizer: str = "lbfgs", lr: float = 0.02,
             on_step: Callable[[dict[str, float]], None] | None = None,
             on_image: Callable[[torch.Tensor], None] | None = None
             ) -> tuple[torch.Tensor, dict[str, float], dict[str, float]]:
    """Optimise the image from ``init`` for ``steps`` loss evaluations.

    Returns the best image seen, clamped to [0, 1], and the (weighted) losses at the start and at the
    end. ``on_step`` receives the losses after each evaluation, ``on_image`` the image evaluated (a live
    preview); either may raise ``Stopped`` to end early. Should the loss stop being finite,
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
        # along the raw gradient, so its steps scale with the loss: large raw losses threw pixels so far
        # out that the loss overflowed to inf and then NaN.
        scaled = losses["total"] / (start["total"] or 1.0)
        scaled.backward()
        finite = math.isfinite(values["total"]) and bool(torch.isfinite(x.grad).all())
        if finite and values["total"] < best["total"]:
            best.update(total=values["total"], x=x.detach().clone())
        if on_step:
            on_step(values)
        if not finite:
            raise _NonFinite
        if on_image:
            on_image(x.detach())
        return scaled

    def run(name: str) -> bool:
        """Optimise ``x`` with one optimiser until the budget is spent; False if the loss went non-finite."""
        nonlocal evals
        try:
            if name == "lbfgs":
                # One evaluation per iteration (no line search), as in the reference implementations.
                # The tolerances are off so that it runs all the steps, unless its direction points
                # uphill; the loop below then calls it again.
                opt = torch.optim.LBFGS([x], max_iter=steps, max_eval=steps, tolerance_grad=-1,
                                        tolerance_change=-1, history_size=50)
            else:
                opt = torch.optim.Adam([x], lr=lr)
            while evals < steps:
                opt.step(closure)
        except _NonFinite:
            return False
        except Stopped:
            evals = steps  # asked to stop: no second optimiser, the best image so far
        except _Stop:
            pass
        return True

    finite = run(optimizer)
    if not finite and optimizer == "lbfgs" and best["total"] < math.inf:
        log.warning("L-BFGS met a non-finite loss at step %d of %d; going on with Adam from the best image",
                    evals, steps)
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


class Stylizer:
    """What stays fixed across content images: the network, the style images and their Gram targets."""

    def __init__(self, cfg: StylizeConfig, device: torch.device, features: nn.Sequential | None = None,
                 style_images: list | None = None):
        validate(cfg)
        self.cfg, self.device = cfg, device
        self.blend = cfg.style_blend or [1.0] * len(cfg.styles)
        style_size = max(1, round(cfg.size * cfg.style_scale))
        if style_images is None:  # the files cfg.styles names (the API passes PIL images instead)
            style_images = [read_image(p, "style image") for p in cfg.styles]
        images = [resize_long_side(img, style_size) for img in style_images]
        self.style_tensors = [to_tensor(img, device) for img in images]
        for path, style in zip(cfg.styles, self.style_tensors, strict=True):
            self._check_side(style, f"style image {path!r}", "--style-scale or --size")
        self.segmenter = self.style_mask = None  # the mask: (region index, colours) at the style's size
        if cfg.style_mask is not None:  # a bad mask file stops the run here, not at each image
            self.style_mask = masks.load_mask(cfg.style_mask, images[0].size, "--style-mask")
            masks.load_mask(cfg.content_mask, None, "--content-mask")
        layers = [*cfg.content_layers, *cfg.style_layers]
        if features is None:
            features = load_vgg19(cfg.vgg_weights, layers, cfg.pooling, device)
        self.extractor = VGGFeatures(features, layers).to(device)
        if cfg.auto_masks:
            self.segmenter = masks.load_segmenter(cfg.seg_weights, device)
            self.style_mask = masks.auto_mask(self.segmenter, images[0])
        # Colour-preserving transfer matches style luminance to each content image, so its targets are
        # per image; otherwise they are computed once here for the whole folder.
        self.grams = None if cfg.preserve_color else self._grams(self.style_tensors)

    def _check_side(self, x: torch.Tensor, what: str, remedy: str) -> None:
        """Fail before any optimisation if the deepest layer would see an empty feature map."""
        need = min_side([*self.cfg.content_layers, *self.cfg.style_layers])
        h, w = x.shape[-2:]
        if min(h, w) < need:
            raise UserError(f"{what} is {w}x{h} px when resized, below the {need} px minimum side; raise {remedy}")

    def _grams(self, styles: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        return style_targets(self.extractor, styles, self.blend, self.cfg.style_layers)

    def __call__(self, content, on_step: Callable[[dict[str, float]], None] | None = None,
                 on_image: Callable[[torch.Tensor], None] | None = None):
        """Stylise one PIL image; returns ``(output PIL image, start losses, end losses)``. The callbacks
        are ``optimize``'s."""
        cfg = self.cfg
        content = resize_long_side(content.convert("RGB"), cfg.size)
        x = to_tensor(content, self.device)
        self._check_side(x, "the content image", "--size")
        grams, styles = self.grams, self.style_tensors
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
        out, start, end = optimize(self._objective(content, x, styles, grams), init, cfg.steps, cfg.optimizer,
                                   cfg.lr, on_step, on_image)
        image = to_image(out)
        return (preserve_color(image, content) if cfg.preserve_color else image), start, end

    def _objective(self, content, x: torch.Tensor, styles: list[torch.Tensor],
                   grams: dict[str, torch.Tensor]) -> Objective:
        """The loss of one content image ``x`` (its PIL ``content``): Gram or per-region Gram, and the
        histogram and photorealism terms that the options ask for."""
        cfg = self.cfg
        guide = histogram = regularizer = None
        if cfg.histogram_weight > 0 or self.style_mask is not None:
            with torch.no_grad():
                sizes = {n: f.shape[-2:] for n, f in self.extractor(x).items() if n in cfg.style_layers}
                style_feats = [{n: f for n, f in self.extractor(s).items() if n in cfg.style_layers} for s in styles]
        if cfg.histogram_weight > 0:
            histogram = HistogramLoss(style_feats, self.blend)
        if self.style_mask is not None:
            if self.segmenter is not None:
                content_mask = masks.auto_mask(self.segmenter, content)
            else:
                content_mask = masks.load_mask(cfg.content_mask, content.size, "--content-mask")
            c_masks, s_masks = masks.pair_regions(content_mask, self.style_mask)
            guide = masks.SemanticStyleLoss(style_feats[0], c_masks.to(self.device), s_masks.to(self.device), sizes)
        if cfg.photoreal:
            regularizer = PhotorealismLoss(to_tensor(content, self.device), cfg.photoreal_weight)
        return Objective(self.extractor, x, grams, cfg.content_layers, cfg.content_weight, cfg.style_weight,
                         cfg.tv_weight, guide=guide, histogram=histogram, histogram_weight=cfg.histogram_weight,
                         regularizer=regularizer)


def _format_losses(losses: dict[str, float]) -> str:
    keys = ("content", "style", "tv", "histogram", "photoreal", "total")
    return " ".join(f"{k} {losses[k]:.3g}" for k in keys if k in losses)


def stylize(cfg: StylizeConfig, console: Console | None = None) -> Summary:
    """``cyclegan stylize``: one content image or a folder of them, written to ``cfg.output``.

    A full or read-only disk stops the run (``summary.stopped``); what was written stays.
    """
    validate(cfg)
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
                image, _, _ = stylizer(read_image(src, "content image"), on_step)
                save_image(image, dst)
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
