"""Translating images in tiles, with the instance-norm statistics of the whole image.

Instance norm normalises each channel by its mean and variance over the whole image. Tiles translated
on their own each get their own statistics, which is why hand-made tiles show seams and colour jumps.

Exact mode (networks of convolutions, poolings, upsamplings and instance norms: the ResNet generators,
the fast style networks, AdaIN): the network is run tile by tile once per instance norm. Pass k runs
every tile up to norm k, with norms 1..k-1 already holding whole-image statistics, and sums norm k's
input over each tile's core (the tile without its halo); the sums give norm k's whole-image mean and
variance. A last pass translates every tile with all statistics known. Tiles overlap by a halo as wide
as the network's receptive field, so a core pixel sees exactly what it sees in one pass (reflection
padding at the image border included, since a border tile ends where the image ends), and only cores
are kept. The result equals the untiled one up to float rounding; memory grows with the tile, not the
image; the cost is the recomputation: a ResNet-9 has 23 instance norms, so about 12 forward passes
over the image (plus the halo's share). Tiles start on the network's downsampling grid, so each layer
sees its pixels where the untiled pass has them (AdaIN's poolings round up at the image border, and a
border tile does too).

Approximate mode (any other generator, e.g. the U-Net, whose receptive field is the whole image): the
statistics come from one pass over the image scaled down to the tile size; overlapping tiles are then
translated with them and blended with linear ramps, so no seam is visible, but pixels differ from the
untiled pass.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn


class _Gathered(Exception):
    """Ends a pass at the norm whose statistics it gathers: nothing after it is needed yet."""


class WholeImageNorm(nn.Module):
    """Stands in for an ``InstanceNorm2d`` (no affine, as in our networks): normalises with the statistics
    it is given, gathers them over tile cores, or records them from the image it sees. ``correction`` is
    the variance's, as the norm it replaces computes it (1: AdaIN's unbiased variance)."""

    def __init__(self, eps: float, correction: int = 0):
        super().__init__()
        self.eps, self.correction = eps, correction
        self.mode = "record"  # "record" | "gather" | "fixed"
        self.mean: torch.Tensor | None = None  # [N, C, 1, 1]
        self.var: torch.Tensor | None = None
        self.core: tuple[int, int, int, int, int] = (1, 0, 0, 0, 0)  # tile height, y0, y1, x0, x1
        self.sums: list[torch.Tensor] = []  # [Σ n·mean, Σ n·(var + mean²)] per sample and channel, float64
        self.count = 0  # pixels summed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "gather":
            th, y0, y1, x0, x1 = self.core
            s = -(-th // x.shape[-2])  # this layer's downsampling (a pooling that rounds up adds a partial row)
            core = x[..., y0 // s:-(-y1 // s), x0 // s:-(-x1 // s)].float()
            var, mean = torch.var_mean(core, dim=(2, 3), correction=0)
            n = core.shape[-2] * core.shape[-1]
            moments = [n * mean.double(), n * (var.double() + mean.double() ** 2)]
            self.sums = [a + b for a, b in zip(self.sums, moments, strict=True)] if self.sums else moments
            self.count += n
            raise _Gathered
        if self.mode == "record":
            var, mean = torch.var_mean(x.float(), dim=(2, 3), correction=self.correction, keepdim=True)
            self.mean, self.var = mean, var
        # fp32 like instance_norm under autocast; the next convolution casts back
        return (x.float() - self.mean) * torch.rsqrt(self.var + self.eps)

    def finish_gathering(self) -> None:
        total, squares = self.sums
        mean = total / self.count
        self.mean = mean.float()[..., None, None]
        var = (squares / self.count - mean**2).clamp_min(0) * (self.count / (self.count - self.correction))
        self.var = var.float()[..., None, None]
        self.mode, self.sums, self.count = "fixed", [], 0


@contextlib.contextmanager
def whole_image_norms(net: nn.Module) -> Iterator[list[WholeImageNorm]]:
    """Swap every ``InstanceNorm2d`` of ``net`` for a ``WholeImageNorm`` (in forward order for our
    generators, which register modules in the order they run), and put the originals back after."""
    swapped = []
    for name, module in list(net.named_modules()):
        if isinstance(module, nn.InstanceNorm2d):
            parent, _, child = name.rpartition(".")
            owner = net.get_submodule(parent)
            norm = WholeImageNorm(module.eps, getattr(module, "correction", 0))
            setattr(owner, child, norm)
            swapped.append((owner, child, module, norm))
    try:
        yield [norm for *_, norm in swapped]
    finally:
        for owner, child, module, _ in swapped:
            setattr(owner, child, module)


def halo(net: nn.Module) -> tuple[int, int]:
    """The receptive-field radius of a network in input pixels and its total downsampling, the radius
    rounded up to a multiple of the downsampling (a ResNet-9: 88 and 4; AdaIN: 80 and 8).

    Each convolution adds its kernel radius times the current downsampling, a pooling its window, an
    upsampling the difference of the scales around it; modules are read in the order they are registered,
    which is the order they run in every network here.
    """
    radius, scale, most = 0, 1, 1
    # every use of a module: AdaIN's published layout reuses one pooling module, and one upsampling, thrice
    for _, m in net.named_modules(remove_duplicate=False):
        if isinstance(m, nn.Conv2d):
            radius += (m.kernel_size[0] - 1) // 2 * m.dilation[0] * scale
            scale *= m.stride[0]
        elif isinstance(m, nn.ConvTranspose2d):
            radius += math.ceil((m.kernel_size[0] - 1) / m.stride[0]) * scale
            scale //= m.stride[0]
        elif isinstance(m, nn.MaxPool2d | nn.AvgPool2d):
            kernel = m.kernel_size if isinstance(m.kernel_size, int) else m.kernel_size[0]
            radius += (kernel - 1) * scale
            scale *= m.stride if isinstance(m.stride, int) else m.stride[0]
        elif isinstance(m, nn.Upsample):
            before, scale = scale, max(1, int(scale / m.scale_factor))
            # nearest-neighbour: the next kernel's edge pixel may copy the neighbouring source pixel, a
            # whole source pixel (`before` input pixels) away rather than the `scale` its radius counts
            radius += before - scale
        most = max(most, scale)
    return -(-radius // most) * most, most


def tiles(h: int, w: int, tile: int, margin: int) -> Iterator[tuple[slice, slice, tuple[int, int, int, int]]]:
    """Cores of ``tile`` pixels covering ``h × w``: (rows, columns) read with ``margin`` around the core,
    and the core's box (y0, y1, x0, x1) inside what is read."""
    for top in range(0, h, tile):
        for left in range(0, w, tile):
            r0, c0 = max(0, top - margin), max(0, left - margin)
            r1, c1 = min(h, top + tile + margin), min(w, left + tile + margin)
            box = (top - r0, min(h, top + tile) - r0, left - c0, min(w, left + tile) - c0)
            yield slice(r0, r1), slice(c0, c1), box


def exact(net: nn.Module, x: torch.Tensor, tile: int) -> torch.Tensor:
    """``net(x)`` computed tile by tile with whole-image norm statistics (see the module docstring).

    ``x`` is ``[N, C, H, W]`` of a size the network takes; ``tile`` is rounded up to a multiple of the
    network's downsampling.
    """
    margin, grid = halo(net)
    tile = -(-tile // grid) * grid
    h, w = x.shape[-2:]
    with whole_image_norms(net) as norms:
        for norm in norms:  # pass k gathers norm k's statistics, norms 1..k-1 knowing theirs
            norm.mode = "gather"
            for rows, cols, box in tiles(h, w, tile, margin):
                norm.core = (rows.stop - rows.start, *box)
                try:
                    net(x[..., rows, cols])
                except _Gathered:
                    pass
            norm.finish_gathering()
        out = None
        for rows, cols, (y0, y1, x0, x1) in tiles(h, w, tile, margin):
            y = net(x[..., rows, cols])[..., y0:y1, x0:x1]
            if out is None:
                out = y.new_empty(*y.shape[:2], h, w)
            out[..., rows.start + y0:rows.start + y1, cols.start + x0:cols.start + x1] = y
    return out


def approximate(net: nn.Module, x: torch.Tensor, tile: int, pad) -> torch.Tensor:
    """``net(x)`` from overlapping tiles blended with linear ramps, every instance norm using the
    statistics of one pass over ``x`` scaled down so its long side is ``tile``.

    ``pad(x)`` pads a batch to the network's size multiple, returning it and the image's (top, left).
    """
    h, w = x.shape[-2:]
    overlap = tile // 4
    step = tile - overlap
    with whole_image_norms(net) as norms:
        if norms:
            scale = min(1.0, tile / max(h, w))
            small = F.interpolate(x, size=(max(1, round(h * scale)), max(1, round(w * scale))),
                                  mode="bilinear", antialias=True, align_corners=False)
            net(pad(small)[0])  # each norm records the statistics of the small image
            for norm in norms:
                norm.mode = "fixed"
        out = weight = None
        for top in range(0, max(1, h - overlap), step):
            for left in range(0, max(1, w - overlap), step):
                part = x[..., top:top + tile, left:left + tile]
                th, tw = part.shape[-2:]
                padded, (pt, pl) = pad(part)
                y = net(padded)[..., pt:pt + th, pl:pl + tw].float()
                ramp = _ramp(th, top > 0, top + th < h, overlap, y) [:, None] * _ramp(tw, left > 0, left + tw < w,
                                                                                       overlap, y)[None]
                if out is None:
                    out = y.new_zeros(*y.shape[:2], h, w)
                    weight = y.new_zeros(h, w)
                out[..., top:top + th, left:left + tw] += y * ramp
                weight[top:top + th, left:left + tw] += ramp
    return out / weight


def _ramp(n: int, rise: bool, fall: bool, overlap: int, like: torch.Tensor) -> torch.Tensor:
    """Blending weights along one side of a tile: rising over the overlap with the previous tile,
    falling over the overlap with the next, 1 elsewhere (and never 0, so every pixel has weight)."""
    r = torch.ones(n, device=like.device)
    ramp = (torch.arange(overlap, device=like.device) + 1) / (overlap + 1)
    k = min(overlap, n)
    if rise:
        r[:k] = torch.minimum(r[:k], ramp[:k])
    if fall:
        r[-k:] = torch.minimum(r[-k:], ramp[:k].flip(0))
    return r
