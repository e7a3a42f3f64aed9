"""Histogram loss (Risser, Wilmot & Barnes 2017, "Stable and Controllable Neural Texture Synthesis and
Style Transfer Using Histogram Losses").

Gram matrices match only the second-order statistics of the style's features, so an output can have
the right correlations with the wrong distribution of values: washed-out or flickering results. This
loss remaps each output feature channel onto the style's histogram of that channel and penalises the
distance to the remapped features, ‖F − remap(F)‖².

The remapping is Risser et al.'s binned histogram match (their implementation also uses 256 bins). Per
style layer and channel, the style's bin edges (its min..max) and cumulative histogram are computed
once per image (:func:`style_histogram`). Per step, the output channel is counted into as many bins
over its own min..max (a bucket index and a scatter-add: linear in the values, no sort); a value's
quantile is read off this piecewise-linear CDF, and the style's inverse CDF (also piecewise linear)
turns the quantile into the remapped value, within the style's range. That composition is evaluated
exactly at 16 points per bin (fewer for small feature maps; a few thousand per channel, through
``searchsorted``) and linearly between them, so that each feature costs a bucket index and a table
look-up. With identical features both CDFs are the same function, so the remap is the identity up to
rounding. As in the paper, the remap is a fixed target for the step (it is detached), so the gradient
of the loss is 2·(F − remap(F))/n.

The loss runs at every style layer in every step, so its cost is its passes over memory: the remap
works in scratch buffers kept from step to step (:class:`Scratch`), and the loss's forward and backward
are written out (:class:`_HistogramLoss`). ``scripts/bench_stylize.py`` times it against a plain step.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .vgg import mean_square

BINS = 256
FINE = 16  # cells per bin at which the remap is evaluated exactly (linear in between)


class Histogram(NamedTuple):
    """Per channel of a style layer: bin edges ``lo`` + k·``width`` (``[C, 1]`` each) and the CDF at the
    K+1 edges (``[C, K+1]``, from 0 to 1)."""

    lo: torch.Tensor
    width: torch.Tensor
    cdf: torch.Tensor


def bin_counts(
    values: torch.Tensor, lo: torch.Tensor, width: torch.Tensor, bins: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``[C, N]`` values (within the range of the bins) → (their bin, ``[C, N]`` long; the
    fraction of each channel's values per bin, ``[C, bins]``). One bincount for all channels."""
    c, n = values.shape
    index = ((values - lo) / width).long().clamp_(0, bins - 1)  # the maximum falls in the last bin
    offset = torch.arange(c, device=values.device).unsqueeze(1) * bins
    counts = torch.bincount((index + offset).flatten(), minlength=c * bins).view(c, bins)
    return index, counts.to(values.dtype) / n


def cumulative(fractions: torch.Tensor) -> torch.Tensor:
    """``[C, K]`` fractions per bin → ``[C, K+1]`` CDF at the bin edges."""
    return F.pad(fractions.cumsum(dim=1), (1, 0)).clamp_(max=1)


def edges(lo: torch.Tensor, hi: torch.Tensor, bins: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``[C]`` minima and maxima → the bins' first edge and width, ``[C, 1]`` each. A constant channel
    (a ReLU that never fires) gets a tiny width, not zero."""
    return lo.unsqueeze(1), ((hi - lo) / bins).clamp_min(torch.finfo(lo.dtype).tiny).unsqueeze(1)


def style_histogram(values: list[torch.Tensor], weights: list[float], bins: int = BINS) -> Histogram:
    """The histogram of each channel of several styles' ``[C, N_i]`` values, mixed by ``weights``.

    The bins span the union of the styles' ranges (styles of weight 0 are left out); each style
    contributes its fractions of values per bin in proportion to its weight, whatever its size.
    """
    used = [(v, w) for v, w in zip(values, weights, strict=True) if w > 0]
    lo = torch.stack([v.amin(dim=1) for v, _ in used]).amin(dim=0)
    hi = torch.stack([v.amax(dim=1) for v, _ in used]).amax(dim=0)
    lo, width = edges(lo, hi, bins)
    total = sum(w for _, w in used)
    fractions = sum(bin_counts(v, lo, width, bins)[1] * (w / total) for v, w in used)
    return Histogram(lo, width, cumulative(fractions))


def channels(features: torch.Tensor) -> torch.Tensor:
    """``[1, C, h, w]`` → ``[C, h·w]``."""
    return features[0].reshape(features.shape[1], -1)


def inverse_cdf(style: Histogram, quantile: torch.Tensor, right: bool) -> torch.Tensor:
    """The style's value at each ``[C, M]`` quantile: the bin whose CDF interval holds it, linear inside.

    Where the CDF is flat (empty bins) the inverse jumps: ``right`` picks the value past the jump (the
    limit from above), otherwise the one before it (the limit from below).
    """
    cdf = style.cdf
    bins = cdf.shape[1] - 1
    j = (torch.searchsorted(cdf, quantile.contiguous(), right=right) - 1).clamp_(0, bins - 1)
    below = cdf.gather(1, j)
    mass = (cdf.gather(1, j + 1) - below).clamp_min(torch.finfo(cdf.dtype).tiny)
    return style.lo + (j + ((quantile - below) / mass).clamp_(0, 1)) * style.width


class Scratch:
    """Feature-sized scratch tensors, kept from one call to the next and shared by the layers.

    A step remaps every style layer; fresh feature-sized temporaries each time cost more than the
    arithmetic on a CPU, where each large allocation is new memory from the system, zero-filled page by
    page on first touch. One buffer per role, grown to the largest layer, avoids that.
    """

    def __init__(self) -> None:
        self.buffers: dict[str, torch.Tensor] = {}

    def __call__(self, role: str, like: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        dtype = dtype or like.dtype
        buf = self.buffers.get(role)
        if buf is None or buf.numel() < like.numel() or buf.dtype != dtype or buf.device != like.device:
            buf = self.buffers[role] = torch.empty(like.numel(), dtype=dtype, device=like.device)
        return buf[: like.numel()].view(like.shape)


def remap(features: torch.Tensor, style: Histogram, scratch: Scratch | None = None) -> torch.Tensor:
    """``[C, N]`` features with each channel mapped onto the style's histogram of it (see the module).

    The result is written into ``scratch("remap", features)``: with a ``scratch`` given, it is only valid
    until its next use."""
    scratch = scratch or Scratch()
    c, n = features.shape
    bins = style.cdf.shape[1] - 1
    # Up to FINE cells per bin, fewer for small maps: the tables stay under a sixteenth of the features.
    fine = max(1, min(FINE, n // (16 * bins)))
    cells = bins * fine
    # The output's histogram over its own range (on the style's edges instead, an output narrower than
    # a few style bins would have its tails squeezed, and one outside the style's range would collapse
    # onto one value), counted per cell. (amin and amax: on CPU, several times faster than aminmax.)
    lo, width = edges(features.amin(dim=1), features.amax(dim=1), cells)
    # as in bin_counts, so that identical features fall in the same bins
    pos = torch.sub(features, lo, out=scratch("pos", features)).div_(width)
    # A diverged step (NaN or infinite features) must give a non-finite loss, not out-of-range indices.
    pos.nan_to_num_(nan=0.0, posinf=cells, neginf=0.0)
    # pos ≥ 0, so truncation (the cast) is the floor. The maximum (pos = cells) gets a cell of its own,
    # number `cells`, counted with the last one and remapped to the style's maximum: no clamping pass.
    cell = scratch("cell", features, torch.long).copy_(pos)
    ones = torch.ones((), dtype=torch.long, device=features.device).expand(c, n)  # exact counts at any size
    counts = cell.new_zeros(c, cells + 1).scatter_add_(1, cell, ones)
    counts[:, -2] += counts[:, -1]
    cdf = cumulative(counts[:, :-1].reshape(c, bins, fine).sum(dim=2).to(features.dtype) / n)
    # The output's CDF (linear inside a bin) at the cell edges, then the style's inverse CDF there: the
    # remap at the start and end of each cell, linear in between. Only [C, cells] values go through
    # searchsorted, not every feature.
    k = torch.arange(cells + 1, device=features.device)
    b = (k // fine).clamp_(max=bins - 1)
    quantile = torch.lerp(cdf[:, b], cdf[:, b + 1], ((k - b * fine) / fine).to(features.dtype))
    start = inverse_cdf(style, quantile, right=True)  # at k = cells: the style's value at quantile 1
    end = torch.cat([inverse_cdf(style, quantile[:, 1:], right=False), start[:, -1:]], dim=1)
    at_end = torch.gather(end, 1, cell, out=scratch("end", features))
    return torch.gather(start, 1, cell, out=scratch("remap", features)).lerp_(at_end, pos.frac_())


class _HistogramLoss(torch.autograd.Function):
    """mean((F − remap(F))²) of a ``[1, C, H, W]`` map, the remap a fixed target: the gradient is
    2·(F − remap(F))/n.

    Written out rather than left to autograd: the loss runs at every style layer in every step, and what
    it costs is its passes over memory; this way a step keeps one feature-sized tensor for the backward
    pass and makes no zero-filled gradient or extra copies."""

    @staticmethod
    def forward(ctx, features: torch.Tensor, style: Histogram, scratch: Scratch) -> torch.Tensor:
        # VGG's maps are often channels-last: one copy makes each channel's values contiguous for the remap
        # (the remap only reads its input, so a contiguous map is used as it is)
        f = channels(features.detach())
        f = f if f.is_contiguous() else scratch("features", f).copy_(f)
        residual = torch.sub(f, remap(f, style, scratch))  # F − remap(F): kept for the backward pass
        ctx.save_for_backward(residual)
        ctx.shape = features.shape
        flat = residual.view(-1)
        return torch.dot(flat, flat) / flat.numel()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (residual,) = ctx.saved_tensors
        return (residual * (grad * 2 / residual.numel())).view(ctx.shape), None, None


def histogram_loss(features: torch.Tensor, style: Histogram, scratch: Scratch | None = None) -> torch.Tensor:
    """Mean of (F − remap(F))² over a ``[1, C, H, W]`` feature map; the remap is a fixed target."""
    return _HistogramLoss.apply(features, style, scratch or Scratch())


class HistogramLoss(nn.Module):
    """Σ over style layers of :func:`histogram_loss` against the style images' features, each layer's in
    units of the style features' mean square there: relative, as every VGG term of the toolkit (``vgg.py``).

    ``styles`` holds each style image's features (layer → ``[1, C, h, w]``) and ``blend`` their weights:
    several styles give the mixture of their histograms, each in proportion to its weight. The style
    histograms are computed here, once per image; the output may have any size.
    """

    def __init__(self, styles: list[dict[str, torch.Tensor]], blend: list[float], bins: int = BINS):
        super().__init__()
        self.targets = {
            name: style_histogram([channels(feats[name]) for feats in styles], blend, bins) for name in styles[0]
        }
        total = sum(blend)
        self.units = {name: sum(w / total * mean_square(feats[name]) for feats, w in zip(styles, blend, strict=True))
                      for name in styles[0]}
        self.scratch = Scratch()

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum(histogram_loss(feats[name], target, self.scratch) / self.units[name]
                   for name, target in self.targets.items())
