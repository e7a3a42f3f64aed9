"""Semantic guidance: style per region of colour-coded masks (Luan et al. 2017; Gatys et al. 2017).

A mask is an image in which each distinct colour marks a region, as in the Deep Photo Style Transfer
release: the content's sky is painted blue, say, and so is the reference's sky. Gram matrices are then
computed per region, with the masks resized (nearest) to each layer, so that sky takes the reference's
sky and buildings its buildings (Luan et al.'s augmented style loss; Gatys et al.'s "Controlling
Perceptual Factors in Neural Style Transfer", spatial control). A content region with no counterpart in
the style follows the whole style image's Gram matrix, next to the content loss.

``--auto-masks`` makes both masks with torchvision's DeepLabV3 (21 PASCAL VOC classes), its classes
merged into a few coarse regions so that content and style regions pair up.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torchvision.models.segmentation import DeepLabV3_MobileNet_V3_Large_Weights, deeplabv3_mobilenet_v3_large
from torchvision.transforms.functional import pil_to_tensor

from ..checkpoint import read_state_dict
from ..download import cached_download
from ..errors import UserError
from .images import read_image, to_tensor
from .vgg import IMAGENET_MEAN, IMAGENET_STD, mean_square

log = logging.getLogger(__name__)

MAX_REGIONS = 32  # more distinct colours than this is a photo or a smoothed (JPEG, resized) mask


# --- colour-coded masks ---------------------------------------------------------------------------------


def mask_colors(mask: Image.Image, what: str) -> tuple[torch.Tensor, list[tuple[int, int, int]]]:
    """A colour-coded mask → ``([H, W] region index, the region colours)``."""
    rgb = pil_to_tensor(mask.convert("RGB")).long()
    codes = (rgb[0] << 16) | (rgb[1] << 8) | rgb[2]
    unique, index = torch.unique(codes, return_inverse=True)
    if len(unique) > MAX_REGIONS:
        raise UserError(f"{what} has {len(unique)} colours, not a colour-coded mask: paint each region in one "
                        f"flat colour (at most {MAX_REGIONS}) and save it as PNG, not JPEG")
    colors = [(int(c) >> 16, (int(c) >> 8) & 255, int(c) & 255) for c in unique]
    return index, colors


def _hex(color: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*color)


def load_mask(path: str | Path, size: tuple[int, int] | None, what: str) -> tuple[torch.Tensor, list]:
    """Read a mask file and resize it (nearest, so colours stay exact) to ``size`` = (width, height)."""
    mask = read_image(path, what)
    if size is not None and mask.size != size:
        mask = mask.resize(size, Image.Resampling.NEAREST)
    return mask_colors(mask, what)


def pair_regions(content: tuple[torch.Tensor, list], style: tuple[torch.Tensor, list]):
    """One-hot ``[R, H, W]`` masks of the content's regions and ``[R, h, w]`` of the style's same colours.

    A content colour absent from the style gets an empty style mask (that region then follows the whole
    style); a style colour absent from the content is unused. Both cases are logged as warnings.
    """
    (c_index, c_colors), (s_index, s_colors) = content, style
    for color in c_colors:
        if color not in s_colors:
            log.warning("content mask colour %s matches no region of the style mask: that region follows the "
                        "whole style image", _hex(color))
    for color in s_colors:
        if color not in c_colors:
            log.warning("style mask colour %s matches no region of the content mask: it is not used", _hex(color))
    c_masks = torch.stack([c_index == i for i in range(len(c_colors))]).float()
    s_masks = torch.stack([s_index == s_colors.index(c) if c in s_colors else torch.zeros_like(s_index, dtype=bool)
                           for c in c_colors]).float()
    return c_masks, s_masks


# --- the augmented style loss ---------------------------------------------------------------------------


def resize_masks(masks: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """``[R, H, W]`` → ``[R, h, w]``, nearest: each feature pixel belongs to exactly one region."""
    return F.interpolate(masks[None], size=tuple(size), mode="nearest")[0]


def masked_gram(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Gram matrix of ``[1, C, h, w]`` features within a ``[h, w]`` mask, divided by C·(pixels in the mask).

    Luan et al.'s normalisation (C·h·w·mean(mask)): a region's Gram matrix does not shrink with its area.
    """
    _, c, h, w = features.shape
    f = (features * mask).reshape(c, h * w)
    return f @ f.t() / (c * mask.sum().clamp_min(1))


class SemanticStyleLoss(nn.Module):
    """Σ_layers Σ_regions area_r · ‖Gram_r(output) − Gram_r(style)‖² (mean squared), area_r the region's
    share of the content at that layer, as in Luan et al.'s StyleLossWithSeg. Each layer's term is in
    units of the mean square of the style's whole-image Gram matrix there: relative, as every VGG term of
    the toolkit (``vgg.py``)."""

    def __init__(self, style_features: dict[str, torch.Tensor], content_masks: torch.Tensor,
                 style_masks: torch.Tensor, sizes: dict[str, tuple[int, int]]):
        super().__init__()
        self.masks, self.areas, self.targets = {}, {}, {}
        for name, feats in style_features.items():
            masks = resize_masks(content_masks.to(feats.device), sizes[name])
            s_masks = resize_masks(style_masks.to(feats.device), feats.shape[-2:])
            _, c, h, w = feats.shape
            whole = masked_gram(feats, torch.ones(h, w, device=feats.device))
            self.masks[name] = masks
            self.areas[name] = masks.mean((1, 2)) / mean_square(whole)
            # A region absent from the style (or too small to survive the resizing to this layer)
            # follows the whole style image.
            self.targets[name] = [masked_gram(feats, m) if m.sum() > 0 else whole for m in s_masks]

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        loss = 0
        for name, targets in self.targets.items():
            for mask, area, target in zip(self.masks[name], self.areas[name], targets, strict=True):
                if area > 0:
                    loss = loss + area * F.mse_loss(masked_gram(feats[name], mask), target)
        return loss


# --- automatic masks: DeepLabV3 --------------------------------------------------------------------------

# PASCAL VOC's 21 classes (index = DeepLabV3's output channel) merged into coarse regions that a
# photographer's content and reference share. VOC has no sky, vegetation, water, building or road class:
# those all fall in "background", which DeepLabV3 labels everything else; the region colours follow the
# Deep Photo Style Transfer release's palette.
VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")
COARSE = {
    "background": ("background",),
    "person": ("person",),
    "animal": ("bird", "cat", "cow", "dog", "horse", "sheep"),
    "vehicle": ("aeroplane", "bicycle", "boat", "bus", "car", "motorbike", "train"),
    "vegetation": ("pottedplant",),
    "object": ("bottle", "chair", "diningtable", "sofa", "tvmonitor"),
}
COARSE_COLORS = {"background": (0, 0, 0), "person": (255, 0, 0), "animal": (255, 255, 0), "vehicle": (0, 0, 255),
                 "vegetation": (0, 255, 0), "object": (128, 128, 128)}


def coarse_lookup() -> torch.Tensor:
    """``[21]`` VOC class → index into COARSE."""
    region = {cls: i for i, classes in enumerate(COARSE.values()) for cls in classes}
    return torch.tensor([region[c] for c in VOC_CLASSES])


def seg_weights_url() -> str:
    return DeepLabV3_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1.url


def load_segmenter(weights: str | Path | None, device: torch.device | str = "cpu") -> nn.Module:
    """torchvision's DeepLabV3 (MobileNetV3-Large) with VOC labels, frozen; weights downloaded once when None."""
    if weights is None:
        url = seg_weights_url()
        path = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name
        weights = cached_download(path, url, what="torchvision's DeepLabV3 weights (44 MB)", record=False,
                                  offline=f"pass --seg-weights PATH: the file {path.name} from a machine that has it")
    state = read_state_dict(weights, "--seg-weights")
    net = deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21, aux_loss=True)
    want = net.state_dict()
    missing = [k for k in want if k not in state]
    wrong = [k for k in want if k in state and state[k].shape != want[k].shape]
    if missing or wrong or len(state) != len(want):
        why = (f"it lacks {', '.join(missing[:3])}" if missing else f"{wrong[0]} is {list(state[wrong[0]].shape)}"
               if wrong else f"it holds {len(state) - len(want)} tensors the network does not have")
        raise UserError(f"--seg-weights {str(weights)!r} is not torchvision's DeepLabV3 MobileNetV3-Large (VOC "
                        f"labels) file: {why}")
    net.load_state_dict(state)
    return net.to(device).eval().requires_grad_(False)


@torch.no_grad()
def auto_mask(segmenter: nn.Module, image: Image.Image) -> tuple[torch.Tensor, list]:
    """A colour-coded mask of ``image`` (its own size): DeepLabV3's classes merged into COARSE regions."""
    device = next(segmenter.parameters()).device
    x = to_tensor(image, device)
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    out = segmenter((x - mean) / std)
    logits = out["out"] if isinstance(out, dict) else out
    classes = logits.argmax(1)[0].cpu()
    regions = coarse_lookup()[classes]
    colors = list(COARSE_COLORS.values())
    present = regions.unique()
    index = torch.searchsorted(present, regions)
    return index, [colors[int(i)] for i in present]
