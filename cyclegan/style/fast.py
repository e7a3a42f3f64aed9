"""Fast neural style (Johnson, Alahi & Fei-Fei 2016) and conditional instance norm (Dumoulin et al. 2017).

A feed-forward *transformer network* learns to paint photos in the style of one painting by minimising
the perceptual loss that Gatys et al. optimise per image (VGG content + Gram style + total variation);
afterwards it paints any photo in one pass. The network is pytorch/examples' ``fast_neural_style``
TransformerNet, module for module (reflection-padded convolutions, instance norm with affine
parameters (Ulyanov et al. 2016), five residual blocks, nearest-neighbour upsampling followed by a
convolution instead of transposed convolutions, which avoids checkerboard artefacts), so its published
``.pth`` files load unchanged. Like those, it takes and returns RGB in 0..255 (not the [-1, 1] of our
CycleGAN generators) and has no output activation.

``--arch slim`` is the same design at about a tenth of the compute (16 GMAC against 161 at 1024²): 32
channels at quarter resolution and thin upsampling (16 and 8 channels), about the size of Magenta's
multi-style networks (Dumoulin et al.'s code), for CPUs; its files are ours only.

With N styles the instance norms are conditional: every convolution is shared and each norm holds one
(γ, β) pair per style (``weight``/``bias`` of shape ``[N, C]``; ``[C]`` for one style, exactly the
pytorch/examples layout). A mixture of styles mixes their (γ, β).

The loss network is our VGG19 (``vgg.py``), where Johnson et al. and pytorch/examples use VGG16. We take
the layers that play the same part: content at ``conv2_2`` (VGG16's relu2_2 is the same layer), style at
the last ReLU of each of the first four blocks, ``conv1_2, conv2_2, conv3_4, conv4_4`` (VGG16's relu3_3
and relu4_3 end their blocks; in VGG19 a fourth convolution ends them). The terms are ``vgg.py``'s
relative ones, so pytorch/examples' raw weights (content 1e5, style 1e10) do not apply.

Its 500-odd lines are the method whole: the network in its two sizes, its files, loss, data and run.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torchvision.utils import make_grid

from ..checkpoint import load_state
from ..config import StyleTrainConfig
from ..data import (
    EpochBatches,
    data_loader,
    first_usable,
    image_folder,
    load_image,
    sample_seed,
    uint8_tensor,
    unreadable,
)
from ..errors import UserError
from ..run import STATE_FILE, StepRun, resume_config
from ..runtime import memory_format
from .images import read_image, resize_long_side, to_tensor
from .vgg import VGGFeatures, content_loss, gram_matrix, load_vgg19, style_loss, total_variation

log = logging.getLogger(__name__)

CONTENT_LAYER = "conv2_2"
STYLE_LAYERS = ("conv1_2", "conv2_2", "conv3_4", "conv4_4")
# Weights of the relative terms (the README says how they were chosen). No TV term, as in pytorch/examples:
# the upsampling convolutions leave no checkerboard for it to remove.
DEFAULT_WEIGHTS = {"content": 1.0, "style": 0.3, "tv": 0.0}
LR = 1e-3  # Adam, as pytorch/examples (and Johnson et al.)
EXPORT = "style.safetensors"
# Channels of each stage: conv1 (full resolution), conv2 (½), conv3 and the residual blocks (¼), then the
# two upsampling convolutions (½, full). full: pytorch/examples' TransformerNet; slim: for CPUs.
ARCHS = {"full": (32, 64, 128, 64, 32), "slim": (16, 32, 32, 16, 8)}
MAX_STYLES = 1024  # what a file may claim: far beyond any trained network, far below a memory bomb
MAX_NAME = 256


# --------------------------------------------------------------------------------------------- network


@dataclass
class FastStyleSpec:
    """A style network file's spec: the number and names of its styles (the network's own spec protocol:
    see ``networks.py``)."""

    kind: ClassVar[str] = "fast_style"
    value_range: ClassVar[tuple[float, float]] = (0.0, 255.0)  # what the network takes and returns
    multiple: ClassVar[int] = 4  # two stride-2 convolutions, two 2× upsamplings
    min_side: ClassVar[int] = 8  # the instance norms need more than one pixel at ¼ resolution
    exact_tiles: ClassVar[bool] = True

    n_styles: int = 1
    styles: list[str] = field(default_factory=list)  # the style images' file stems, one per style
    arch: str = "full"  # a key of ARCHS

    @property
    def width(self) -> int:
        """Channels at full resolution."""
        return max(ARCHS[self.arch][0], ARCHS[self.arch][-1])

    def build(self) -> TransformerNet:
        return TransformerNet(self.n_styles, self.arch)

    def describe(self) -> str:
        slim = "slim " if self.arch == "slim" else ""
        return f"{slim}style network ({self.n_styles} style{'s' if self.n_styles > 1 else ''})"

    def to_dict(self) -> dict:
        return {"n_styles": self.n_styles, "styles": list(self.styles), "arch": self.arch}

    @classmethod
    def from_dict(cls, d: dict) -> FastStyleSpec:
        """The spec a file describes, every value checked before it is used (a forged file costs nothing)."""
        if not isinstance(d, dict):
            raise ValueError(f"the spec is a {type(d).__name__}, not a JSON object")
        n = d.get("n_styles", 1)
        if type(n) is not int or not 1 <= n <= MAX_STYLES:
            raise ValueError(f"n_styles={n!r} is not a whole number from 1 to {MAX_STYLES}")
        styles = d.get("styles") or [str(i) for i in range(n)]
        if not isinstance(styles, list) or len(styles) != n or not all(
                isinstance(s, str) and 0 < len(s) <= MAX_NAME for s in styles):
            raise ValueError(f"{n} styles need {n} style names (strings of up to {MAX_NAME} characters)")
        if tuple(d.get("value_range", cls.value_range)) != cls.value_range:  # written by earlier releases
            raise ValueError(f"value_range {d['value_range']!r}: a style network works in 0..255")
        arch = d.get("arch", "full")  # files of earlier releases: the full network
        if arch not in ARCHS:
            raise ValueError(f"arch={arch!r} is not one of {', '.join(ARCHS)}")
        return cls(n_styles=n, styles=styles, arch=arch)


class CondInstanceNorm2d(nn.Module):
    """Instance norm with one (γ, β) per style; a style mixture mixes them (Dumoulin et al. 2017).

    One style: ``weight``/``bias`` are ``[C]``, which is ``nn.InstanceNorm2d(C, affine=True)``'s layout.
    The normalisation itself is a plain ``nn.InstanceNorm2d`` (no parameters), so tiles and videos can give
    it whole-image or smoothed statistics as they do for every instance norm (``tiles.py``, ``video.py``).
    """

    def __init__(self, channels: int, n_styles: int = 1):
        super().__init__()
        shape = (channels,) if n_styles == 1 else (n_styles, channels)
        self.weight = nn.Parameter(torch.ones(shape))
        self.bias = nn.Parameter(torch.zeros(shape))
        self.norm = nn.InstanceNorm2d(channels)

    def forward(self, x: torch.Tensor, mix: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        gamma = mix @ self.weight.view(-1, c)  # [n_styles] @ [n_styles, C]
        beta = mix @ self.bias.view(-1, c)
        if type(self.norm) is nn.InstanceNorm2d:  # its own statistics: one fused kernel, as pytorch/examples
            return F.instance_norm(x, weight=gamma.to(x.dtype), bias=beta.to(x.dtype), eps=self.norm.eps)
        return torch.addcmul(beta.view(1, c, 1, 1), self.norm(x), gamma.view(1, c, 1, 1))  # given statistics


class ConvLayer(nn.Module):
    """Reflection padding and a convolution (names as in pytorch/examples: ``conv2d``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int):
        super().__init__()
        self.reflection_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2d(self.reflection_pad(x))


class UpsampleConvLayer(nn.Module):
    """Nearest-neighbour 2× upsampling, then a ConvLayer: no checkerboard, unlike a transposed conv.

    The modules are registered in the order they run (``tiles.halo`` reads them in that order)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int):
        super().__init__()
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.reflection_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2d(self.reflection_pad(self.upsample(x)))


class ResidualBlock(nn.Module):
    """conv-norm-ReLU-conv-norm plus the input (He et al. 2016, as Johnson et al. use it)."""

    def __init__(self, channels: int, n_styles: int):
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3, 1)
        self.in1 = CondInstanceNorm2d(channels, n_styles)
        self.conv2 = ConvLayer(channels, channels, 3, 1)
        self.in2 = CondInstanceNorm2d(channels, n_styles)

    def forward(self, x: torch.Tensor, mix: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.in1(self.conv1(x), mix))
        return x + self.in2(self.conv2(y), mix)


class TransformerNet(nn.Module):
    """pytorch/examples' fast_neural_style TransformerNet, with conditional instance norm for N styles
    (``arch``: the channels of its stages, ``ARCHS``).

    ``net(x)`` paints RGB 0..255 ``[B, 3, H, W]`` (H, W multiples of 4) in ``net.mix``, the style
    mixture set by ``set_style`` (style 0 at first); ``net(x, mix)`` uses ``mix`` ([n_styles] weights).
    """

    def __init__(self, n_styles: int = 1, arch: str = "full"):
        super().__init__()
        self.n_styles = n_styles
        c1, c2, c3, u1, u2 = ARCHS[arch]
        self.conv1, self.in1 = ConvLayer(3, c1, 9, 1), CondInstanceNorm2d(c1, n_styles)
        self.conv2, self.in2 = ConvLayer(c1, c2, 3, 2), CondInstanceNorm2d(c2, n_styles)
        self.conv3, self.in3 = ConvLayer(c2, c3, 3, 2), CondInstanceNorm2d(c3, n_styles)
        self.res1, self.res2, self.res3, self.res4, self.res5 = (ResidualBlock(c3, n_styles) for _ in range(5))
        self.deconv1, self.in4 = UpsampleConvLayer(c3, u1, 3, 1), CondInstanceNorm2d(u1, n_styles)
        self.deconv2, self.in5 = UpsampleConvLayer(u1, u2, 3, 1), CondInstanceNorm2d(u2, n_styles)
        self.deconv3 = ConvLayer(u2, 3, 9, 1)
        # Not saved: which style ``forward`` paints is a choice at inference, not a weight.
        self.register_buffer("mix", one_hot(0, n_styles), persistent=False)

    def set_style(self, mix: torch.Tensor) -> None:
        self.mix = mix.to(self.mix)

    def forward(self, x: torch.Tensor, mix: torch.Tensor | None = None) -> torch.Tensor:
        mix = self.mix if mix is None else mix
        y = F.relu(self.in1(self.conv1(x), mix))
        y = F.relu(self.in2(self.conv2(y), mix))
        y = F.relu(self.in3(self.conv3(y), mix))
        for block in (self.res1, self.res2, self.res3, self.res4, self.res5):
            y = block(y, mix)
        y = F.relu(self.in4(self.deconv1(y), mix))
        y = F.relu(self.in5(self.deconv2(y), mix))
        return self.deconv3(y)


def one_hot(i: int, n: int) -> torch.Tensor:
    return F.one_hot(torch.tensor(i), n).float()


# Old PyTorch saved running statistics for InstanceNorm2d(affine=True) although it never uses them; the
# published pytorch/examples files carry them (their own loader deletes them the same way).
STALE_KEY = re.compile(r"(^|\.)in\d+\.(running_mean|running_var|num_batches_tracked)$")
# The per-style instance-norm parameters, (γ, β): ``weight``/``bias`` of the ``in*`` modules.
NORM_PARAM = re.compile(r"(^|\.)in\d+\.(weight|bias)$")


def is_transformer_state(state: dict) -> bool:
    """Whether a state dict has the TransformerNet layout (pytorch/examples' files, ours)."""
    return "conv1.conv2d.weight" in state and "deconv3.conv2d.weight" in state and "res5.in2.weight" in state


def spec_from_state(state: dict[str, torch.Tensor]) -> tuple[FastStyleSpec, dict[str, torch.Tensor]]:
    """The spec a TransformerNet state dict implies (its number of styles, bounded), and the state without
    the stale keys."""
    state = {k: v for k, v in state.items() if not STALE_KEY.search(k)}
    # the two tensors read to build the spec; every other one is checked against the spec's network after
    _require(state, "conv1.conv2d.weight", dims=(4,))
    _require(state, "in1.weight", dims=(1, 2))  # [C]: one style; [n_styles, C]: conditional instance norm
    n = state_styles(state)
    if not 1 <= n <= MAX_STYLES:
        raise UserError(f"a style network of {n} styles: at most {MAX_STYLES} are read")
    # the architecture whose first convolution has this many channels (the shapes are checked after)
    first = state["conv1.conv2d.weight"].shape[0]
    arch = next((a for a, channels in ARCHS.items() if channels[0] == first), "full")
    return FastStyleSpec(n_styles=n, styles=[str(i) for i in range(n)], arch=arch), state


def _require(state: dict, key: str, dims: tuple[int, ...]) -> None:
    """A forged or damaged file is refused in words, not with the ``KeyError``/``IndexError`` of reading it."""
    t = state.get(key)
    if not isinstance(t, torch.Tensor):
        raise UserError(f"it has no {key} tensor: not a style network this tool reads")
    if t.dim() not in dims or 0 in t.shape:
        raise UserError(f"its {key} has shape {list(t.shape)}: not a style network this tool reads")


def state_styles(state: dict[str, torch.Tensor]) -> int:
    """The number of styles of a TransformerNet state dict."""
    w = state["in1.weight"]
    return 1 if w.dim() == 1 else w.shape[0]


def style_mixture(spec: FastStyleSpec, flag: str, pairs: list[tuple[str, float]]) -> torch.Tensor:
    """``--style I`` or ``--style-mix I:w,J:w`` (by index or name; weights normalised) → [n_styles] weights."""
    if spec.n_styles == 1:
        raise UserError(f"{flag}: this network has one style ({spec.styles[0]}); several need a network "
                        "trained with several --style images")
    mix = torch.zeros(spec.n_styles)
    for name, weight in pairs:
        mix[_style_index(spec, name)] += weight
    return mix / mix.sum()  # style_choice refused weights that add up to 0


def _style_index(spec: FastStyleSpec, name: str) -> int:
    if name in spec.styles:
        return spec.styles.index(name)
    if name.isdigit() and int(name) < spec.n_styles:
        return int(name)
    names = ", ".join(f"{i} ({s})" for i, s in enumerate(spec.styles))
    raise UserError(f"--style {name!r}: this network's styles are {names}")


# ------------------------------------------------------------------------------------------------ loss


class PerceptualLoss(nn.Module):
    """Johnson et al.'s loss of a batch painted in style ``s``: VGG content + Gram style + TV, the VGG terms
    relative to their targets (``vgg.py``)."""

    def __init__(self, vgg: nn.Sequential, styles: list[torch.Tensor | None], weights: dict[str, float]):
        super().__init__()
        self.extractor = VGGFeatures(vgg, [CONTENT_LAYER, *STYLE_LAYERS])
        self.weights = weights
        # The Gram targets: one set per style image ([1, 3, H, W] in [0, 1]; None: a style not trained here)
        self.grams = [None if img is None else self.style_grams(img) for img in styles]

    @torch.no_grad()
    def style_grams(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.extractor(img)
        return {n: gram_matrix(feats[n]) for n in STYLE_LAYERS}

    def forward(self, y: torch.Tensor, x: torch.Tensor, s: int) -> dict[str, torch.Tensor]:
        """``y``: the network's output, ``x``: its input, both RGB 0..255."""
        y = y / 255
        with torch.no_grad():
            target = self.extractor(x / 255)[CONTENT_LAYER]
        feats = self.extractor(y)
        losses = {"content": self.weights["content"] * content_loss(feats, {CONTENT_LAYER: target}),
                  "style": self.weights["style"] * style_loss(feats, self.grams[s]),
                  "tv": self.weights["tv"] * total_variation(y.float())}
        losses["total"] = losses["content"] + losses["style"] + losses["tv"]
        return losses


# ------------------------------------------------------------------------------------------------ data


class ContentImages(torch.utils.data.Dataset):
    """Content photos, keyed ``(epoch, index)``: the short side scaled to ``size``, then a random square
    crop, drawn from the run seed, the epoch and the index (so a resumed run sees the same crops).
    Unreadable files are replaced by the next readable one and reported, as in ``data.UnpairedDataset``."""

    def __init__(self, files: list[Path], size: int, seed: int):
        self.files, self.size, self.seed = files, size, seed

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        epoch, index = key
        bad: list[str] = []
        for k in range(len(self.files)):
            path = self.files[(index + k) % len(self.files)]
            try:
                img = load_image(path)[0]
                break
            except Exception as e:
                bad.append(f"{path} ({unreadable(e)})")
        else:
            return {"error": f"no readable image in the content folder (tried all {len(self.files)})", "bad": bad}
        w, h = img.size
        s = self.size / min(w, h)
        img = img.resize((max(self.size, round(w * s)), max(self.size, round(h * s))), Image.BICUBIC)
        rng = np.random.default_rng(sample_seed(self.seed, epoch, index, 5))
        left = int(rng.integers(img.width - self.size + 1))
        top = int(rng.integers(img.height - self.size + 1))
        img = img.crop((left, top, left + self.size, top + self.size))
        return {"content": uint8_tensor(img), "bad": bad}


def collate(items: list[dict]) -> dict:
    bad = [b for it in items for b in it["bad"]]
    errors = [it["error"] for it in items if "error" in it]
    if errors:
        return {"error": errors[0], "bad": bad}
    return {"content": torch.stack([it["content"] for it in items]), "bad": bad}


def load_styles(paths: list[str], size: int, device: torch.device) -> list[torch.Tensor]:
    """Style images as ``[1, 3, H, W]`` in [0, 1], long side ``size``."""
    return [to_tensor(resize_long_side(read_image(p, "--style"), size), device) for p in paths]


# -------------------------------------------------------------------------------------------- the run


class FastStyleRun(StepRun):
    """One training run of a (conditional) transformer network: its network, loss and data (the run's life
    is ``StepRun``'s). ``--add-style`` grows a trained network by new styles and trains only their (γ, β)."""

    command = "train-style"
    enough_steps = 500  # scripts/proof.py's style networks pass its checks from 600 steps (README: Results)
    exports = (EXPORT,)

    @classmethod
    def resumed(cls, cfg: StyleTrainConfig) -> StyleTrainConfig:
        """The saved options; with ``--add-style`` this invocation's --style images go after the run's own
        styles (which stay as they were trained: ``frozen_styles``), for ``--steps`` more steps."""
        if not cfg.add_style:
            return super().resumed(cfg)
        saved = resume_config(cfg, handled=("add_style", "steps"))
        if saved.method != "johnson":
            raise UserError(f"--add-style: {cfg.run_dir} trains an AdaIN decoder, which paints any style untrained")
        step = load_state(cfg.run_dir / STATE_FILE)["step"]
        return replace(saved, styles=saved.styles + cfg.styles, steps=step + cfg.steps)

    @classmethod
    def inputs(cls, cfg: StyleTrainConfig, device, precision, main) -> list[Path]:
        files = image_folder(cfg.content, "content folder")
        first_usable(files, "content folder")
        return files

    def __init__(self, cfg: StyleTrainConfig, folder, files: list[Path], world, device: torch.device,
                 precision: str):
        super().__init__(cfg, folder, world, device, precision)
        self.spec = FastStyleSpec(n_styles=len(cfg.styles), styles=_style_names(cfg.styles), arch=cfg.arch)
        self.frozen = frozen_styles(self.saved, self.spec.n_styles)  # styles trained before --add-style
        styles = load_styles(cfg.styles[self.frozen:], cfg.style_size or cfg.image_size, device)
        vgg = load_vgg19(cfg.vgg_weights, [CONTENT_LAYER, *STYLE_LAYERS], device=device)
        self.loss = PerceptualLoss(vgg, [None] * self.frozen + styles, cfg.loss_weights(DEFAULT_WEIGHTS)).to(device)
        self.memory_format = memory_format(None, device)  # the device's faster layout (runtime.memory_format)
        self.net = self.spec.build().to(device, memory_format=self.memory_format)
        self.opt = torch.optim.Adam(self.trained_parameters(), lr=cfg.lr or LR)
        self.objects = {"net": self.net, "opt": self.opt, "scaler": self.amp}
        self.networks = {EXPORT: (self.net, self.spec)}
        self.restore()

        per_epoch = -(-len(files) // cfg.batch_size)
        sampler = EpochBatches(len(files), cfg.batch_size, cfg.seed, self.epoch, -(-cfg.steps // per_epoch),
                               self.batch_in_epoch)
        self.steps_per_epoch = sampler.batches_per_epoch
        self.total_steps = self.stop_at = min(cfg.steps, cfg.max_steps or math.inf)
        self.loader = data_loader(ContentImages(files, cfg.image_size, cfg.seed), sampler, cfg.workers, collate,
                                  pin_memory=device.type == "cuda")
        self.start({"method_defaults": DEFAULT_WEIGHTS,
                    "files": {"content": str(Path(cfg.content).resolve()), "n_content": len(files)}},
                   f"{len(files)} content images, {len(styles)} style(s) ({', '.join(self.spec.styles)}), "
                   f"{cfg.steps} steps")

    def train_step(self, batch: dict) -> dict[str, torch.Tensor]:
        self.check_batch(batch)
        x = batch["content"].to(self.device, non_blocking=True).float().contiguous(memory_format=self.memory_format)
        # one style per batch, in turn (Dumoulin et al.); after --add-style the new styles only
        s = self.frozen + self.step % (self.spec.n_styles - self.frozen)
        self.in_step = True
        self.opt.zero_grad(set_to_none=True)
        with self.amp.autocast():
            y = self.net(x, one_hot(s, self.spec.n_styles).to(self.device))
            losses = self.loss(y, x, s)
        self.amp.backward(losses["total"], self.opt)
        self.amp.update()
        self.last = x[:1].detach()
        self.advance()
        return {k: v.detach() for k, v in losses.items()}

    @torch.no_grad()
    def sample(self) -> tuple[torch.Tensor, str]:
        """One row per style: the content crop | the network's painting of it."""
        tiles = []
        self.net.eval()
        for s in range(self.spec.n_styles):
            y = self.net(self.last, one_hot(s, self.spec.n_styles).to(self.device))
            tiles += [self.last[0], y[0].float().clamp(0, 255)]
        self.net.train()
        grid = make_grid(torch.stack(tiles).cpu() / 255, nrow=2, padding=2)
        return grid, "content | stylised, one row per style: " + ", ".join(self.spec.styles)

    def state(self) -> dict:
        return {**super().state(), "frozen_styles": self.frozen}

    def trained_parameters(self) -> list[nn.Parameter]:
        """Every parameter; after --add-style the (γ, β) tables only, whose rows of the styles trained
        before get no gradient (Adam then leaves them exactly as they are)."""
        if not self.frozen:
            return list(self.net.parameters())
        self.net.requires_grad_(False)
        keep = torch.arange(self.spec.n_styles, device=self.device)[:, None] >= self.frozen
        tables = [p for name, p in self.net.named_parameters() if NORM_PARAM.search(name)]
        for p in tables:
            p.requires_grad_(True)
            p.register_hook(lambda grad: torch.where(keep, grad, 0.0))
        return tables

    def restore(self) -> None:
        """Continue from latest.pt; at the start of --add-style, from the trained network grown by the new
        styles (with a new optimiser, over the new styles' (γ, β) only)."""
        if self.saved is None or state_styles(self.saved["trainer"]["net"]) == self.spec.n_styles:
            return super().restore()
        self.saved = {**self.saved, "trainer": {"net": self.grown(self.saved["trainer"]["net"])}}
        super().restore(only=("net",))
        self.saved_step = None  # the grown network is not saved yet

    def grown(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The trained network's state with each new style given the (γ, β) of the nearest trained style."""
        sources = self.nearest_styles()
        grown = {}
        for name, v in state.items():
            if NORM_PARAM.search(name):
                table = v.reshape(self.frozen, -1)
                new = [table.mean(0) if j is None else table[j] for j in sources]
                v = torch.cat([table, torch.stack(new)])
            grown[name] = v
        return grown

    def nearest_styles(self) -> list[int | None]:
        """For each new style, the trained style whose image is nearest in Gram distance at the style layers
        (None: their images are gone, start from the mean of the trained styles)."""
        old = self.cfg.styles[:self.frozen]
        gone = [p for p in old if not Path(p).is_file()]
        new_names = self.spec.styles[self.frozen:]
        if gone:
            log.warning("--add-style: the images of the trained styles are gone (%s): the new styles start from "
                        "the mean of their (γ, β)", ", ".join(gone))
            return [None] * len(new_names)
        images = load_styles(old, self.cfg.style_size or self.cfg.image_size, self.device)
        old_grams = [self.loss.style_grams(img) for img in images]
        sources = []
        for name, grams in zip(new_names, self.loss.grams[self.frozen:], strict=True):
            distance = [sum(F.mse_loss(grams[n], g[n]).item() for n in STYLE_LAYERS) for g in old_grams]
            j = int(np.argmin(distance))
            log.info("--add-style: %s starts from the (γ, β) of %s, the nearest trained style", name,
                     self.spec.styles[j])
            sources.append(j)
        return sources


def frozen_styles(state: dict | None, n_styles: int) -> int:
    """How many of a run's ``n_styles`` stay as they were trained: when --add-style grows the saved network,
    its styles; afterwards, what the state says."""
    if state is None:
        return 0
    saved = state_styles(state["trainer"]["net"])
    return saved if saved < n_styles else state.get("frozen_styles", 0)


def _style_names(paths: list[str]) -> list[str]:
    """Each style's name: its image's file stem (``starry_night.jpg`` → ``starry_night``), made unique."""
    names: list[str] = []
    for p in paths:
        name, k = Path(p).stem, 2
        while name in names:
            name, k = f"{Path(p).stem}_{k}", k + 1
        names.append(name)
    return names
