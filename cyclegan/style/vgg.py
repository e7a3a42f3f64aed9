"""The VGG19 loss network of the optimisation and the fast networks: weights, named taps, and the loss terms.

Layers are named as in Gatys et al.'s papers (``config.VGG19_LAYERS``): ``convB_N`` is the rectified output
of the N-th convolution of block B, ``poolB`` a pooling output. VGG sees RGB in [0, 1] normalised with the
ImageNet mean and standard deviation, torchvision's convention (``VGGFeatures`` does it).

**One normalisation of the loss terms.** Every VGG term is *relative*: the mean squared error of the
features (content) or of their Gram matrices (style) divided by the mean square of the target
(``relative_mse``). Raw terms hold only for the activation scale of the VGG file they were tuned on: a Gram
loss grows with the 4th power of the activations and a content loss with the 2nd, and VGG19 files differ by
orders of magnitude (torchvision's ImageNet weights; the original Caffe weights, whose ``conv3_4`` alone
outweighs the other style layers tenfold). Relative terms are the same for every file and give every style
layer the same say, which is what Gatys et al. obtained by rescaling their network to a mean activation of
1 per filter; so one set of default weights holds for any ``--vgg-weights``. (The reference
implementations use raw terms: their weights, such as pytorch/examples' content 1e5 / style 1e10 or the
PyTorch tutorial's 1 / 1e6, do not carry over.)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import VGG19_Weights
from torchvision.models.vgg import make_layers

from ..checkpoint import read_state_dict
from ..config import VGG19_DEPTHS, VGG19_LAYERS, vgg_min_size
from ..download import cached_download, sha256_file
from ..errors import UserError

VGG19_WIDTHS = (64, 128, 256, 512, 512)  # channels of the five conv blocks
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VGG19_URL = VGG19_Weights.IMAGENET1K_V1.url  # the default weights, as torchvision downloads them
POOLINGS = ("max", "avg")


def _layer_index() -> dict[str, int]:
    """Layer name → index in torchvision's ``vgg19().features`` (a conv at i has its ReLU at i + 1)."""
    index, i = {}, 0
    for name in VGG19_LAYERS:
        index[name] = i + 1 if name.startswith("conv") else i
        i += 2 if name.startswith("conv") else 1
    return index


LAYER_INDEX = _layer_index()


def min_side(layers: Iterable[str]) -> int:
    """The smallest image side VGG19 can take for ``layers`` (each pooling halves it; conv5_1 needs 16)."""
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


def fetch_vgg19() -> Path:
    """torchvision's ImageNet VGG19 weights: from the torch cache, or downloaded into it once."""
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


def load_vgg19(weights: str | Path | None, layers: Iterable[str], pooling: str = "max",
               device: torch.device | str = "cpu") -> nn.Sequential:
    """Frozen VGG19 features up to the deepest of ``layers``, in eval mode, float32, on ``device``.

    ``weights`` is a state dict file in torchvision's layout (``features.N.weight``, or a bare ``N.weight``;
    float16 is fine), or ``None`` for torchvision's ``IMAGENET1K_V1`` weights.
    """
    if weights is None:
        state = read_state_dict(fetch_vgg19(), "the cached VGG19 weights")
    else:
        state = read_state_dict(weights, "--vgg-weights")
    state = {k.removeprefix("features."): v.float() for k, v in state.items()}
    net = vgg19_features(pooling)[:max(LAYER_INDEX[name] for name in layers) + 1]
    want = net.state_dict()
    what = "torchvision's VGG19" if weights is None else repr(str(weights))
    if missing := [k for k in want if k not in state]:
        names = ", ".join(f"features.{k}" for k in missing[:4])
        names += f" and {len(missing) - 4} more" if len(missing) > 4 else ""
        raise UserError(f"{what} lacks weights that the chosen layers need: {names}")
    if wrong := [f"features.{k} {list(state[k].shape)}" for k in want if state[k].shape != want[k].shape]:
        raise UserError(f"--vgg-weights: not VGG19 features weights ({', '.join(wrong[:2])})")
    # The layers past the deepest one needed are left out on purpose: only their keys are not loaded.
    net.load_state_dict({k: state[k] for k in want})
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


def mean_square(target: torch.Tensor) -> torch.Tensor:
    """The unit of a relative term. Only exact zeros are kept off: a larger floor would break the
    scale invariance."""
    return target.float().pow(2).mean().clamp_min(torch.finfo(torch.float32).tiny)


def relative_mse(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error in units of the target's mean square: the same for any scale of VGG activations."""
    return F.mse_loss(x.float(), target.float()) / mean_square(target)


def content_loss(feats: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> torch.Tensor:
    """Σ over the content layers of the relative distance of the features to the content's."""
    return sum(relative_mse(feats[name], target.expand_as(feats[name])) for name, target in targets.items())


def style_loss(feats: dict[str, torch.Tensor], grams: dict[str, torch.Tensor]) -> torch.Tensor:
    """Σ over the style layers of the relative distance of the Gram matrices to the style's (each target
    ``[1, C, C]``, shared by a batch)."""
    return sum(relative_mse(gram_matrix(feats[name].float()), g.expand(len(feats[name]), -1, -1))
               for name, g in grams.items())
