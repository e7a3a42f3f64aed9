"""Histogram loss (Risser, Wilmot & Barnes 2017, "Stable and Controllable Neural Texture Synthesis and
Style Transfer Using Histogram Losses").

Gram matrices match only the second-order statistics of the style's features, so an output can have
the right correlations with the wrong distribution of values: washed-out or flickering results. This
loss remaps each output feature channel onto the style's histogram of that channel and penalises the
distance to the remapped features, ‖F − remap(F)‖².

The remapping is a histogram match by sorting (the exact version of Risser et al.'s binned one): the
k-th smallest value of a channel becomes the style's value at the same quantile. It depends on F only
through the order of its values, so its derivative is zero wherever the values are distinct, and the
gradient of the loss is 2·(F − remap(F)), as in the paper.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def quantiles(sorted_values: torch.Tensor, n: int) -> torch.Tensor:
    """``[C, M]`` values sorted along dim 1 → ``[C, n]``: the same distribution, linearly resampled to n."""
    m = sorted_values.shape[1]
    if m == n:
        return sorted_values
    pos = torch.linspace(0, m - 1, n, device=sorted_values.device, dtype=sorted_values.dtype)
    lo = pos.floor().long().clamp(max=m - 1)
    hi = (lo + 1).clamp(max=m - 1)
    t = pos - lo
    return sorted_values[:, lo] * (1 - t) + sorted_values[:, hi] * t


def remap(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``[C, N]`` features with each channel's values replaced by ``target``'s (``[C, N]``, sorted), rank for rank."""
    order = features.argsort(dim=1)
    return torch.empty_like(features).scatter_(1, order, target)


def histogram_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean of (F − remap(F))² over a ``[1, C, H, W]`` feature map; ``target`` ``[C, H·W]`` sorted per channel."""
    f = features[0].reshape(features.shape[1], -1)
    return F.mse_loss(f, remap(f.detach(), target))


class HistogramLoss(nn.Module):
    """Σ over style layers of :func:`histogram_loss` against the style images' features.

    ``styles`` holds each style image's features (layer → ``[1, C, h, w]``) and ``blend`` their weights:
    several styles give the mixture of their histograms, each in proportion to its weight. ``sizes`` maps
    a layer to the output's feature map size, so that the sorted targets are resampled once per image,
    not per step.
    """

    def __init__(self, styles: list[dict[str, torch.Tensor]], blend: list[float], sizes: dict[str, tuple[int, int]]):
        super().__init__()
        self.targets = {}
        total = sum(blend)
        for name, (h, w) in sizes.items():
            parts = []
            for feats, weight in zip(styles, blend, strict=True):
                values = feats[name][0].reshape(feats[name].shape[1], -1).sort(dim=1).values
                if weight > 0:
                    parts.append(quantiles(values, max(1, round(values.shape[1] * weight / total * len(styles)))))
            mixture = torch.cat(parts, dim=1).sort(dim=1).values
            self.targets[name] = quantiles(mixture, h * w)

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum(histogram_loss(feats[name], target) for name, target in self.targets.items())
