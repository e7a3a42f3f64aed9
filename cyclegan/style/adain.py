"""AdaIN: any painting as the style, in one forward pass (Huang & Belongie, ICCV 2017).

An encoder (VGG19 up to relu4_1) turns the content and the style image into features; adaptive instance
normalisation gives each channel of the content features the mean and standard deviation of that channel
in the style features; a decoder trained for the purpose turns the result into an image. One decoder
serves every painting: nothing is trained per style.

``AdaIN`` is the whole thing as one network with a spec (``AdaINSpec``), so it runs through the translate
pipeline like every other network (``stylize --method adain``, ``translate`` with ``--style IMAGE``):
batches, tiles, videos, compile, export. The style is set once (``set_style``); its statistics are buffers.

The networks are laid out exactly as in the PyTorch port of the authors' release (naoto0804/pytorch-AdaIN,
``net.py``), whose state dict keys are the ``nn.Sequential`` indices, so its ``vgg_normalised.pth`` and
``decoder.pth`` load unchanged and give its output. Its ``vgg`` is VGG19 with a leading 1×1 convolution
that folds in the Caffe preprocessing, so images go in as RGB in [0, 1]; the encoder is its first 31
layers. Our ``encoder``/``decoder`` are its ``vgg[:31]``/``decoder``; our ``ContentNorm`` and the style's
buffers are its ``adaptive_instance_normalization``, with the style's statistics computed once per style.
Several styles mix their AdaIN'd features with weights wᵢ, as published: Σ wᵢ·(n·σᵢ + μᵢ) = n·Σwᵢσᵢ + Σwᵢμᵢ
for the normalised content n, so the mixture is one mean and one standard deviation.

``DecoderRun`` trains a decoder on a content folder and a style folder with the paper's losses
(``cyclegan train-style --method adain``), on the run machinery every training command shares.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.utils import make_grid

from ..catalog import adain_weights
from ..checkpoint import read_state_dict
from ..config import StyleTrainConfig
from ..data import Augment, EpochBatches, UnpairedDataset, collate, data_loader, first_usable, image_folder, sample_seed
from ..errors import UserError
from ..run import StepRun

EPS = 1e-5  # added to the variance before the square root, as published
ENCODER_DEPTH = 31  # layers of the published ``vgg`` up to relu4_1
# The rectified outputs the style loss compares (index in the encoder), as in the paper; named as every
# VGG layer of the toolkit (``config.VGG19_LAYERS``): conv1_1 is the paper's relu1_1.
STYLE_LAYERS = {"conv1_1": 3, "conv2_1": 10, "conv3_1": 17, "conv4_1": 30}
DEFAULT_STYLE_SIDE = 512  # long side of the style images when --size is not given
DECODER_FILE = "decoder.safetensors"  # a decoder's file in its training run folder
# The published training (naoto0804/pytorch-AdaIN train.py): Adam at 1e-4, decayed as lr / (1 + 5e-5·step),
# content weight 1, style weight 10 (no TV term), crops of 256 from images resized to 512×512.
LR, LR_DECAY = 1e-4, 5e-5
DEFAULT_WEIGHTS = {"content": 1.0, "style": 10.0}


# --- the networks -------------------------------------------------------------------------------------


def _conv(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.ReflectionPad2d(1), nn.Conv2d(c_in, c_out, 3), nn.ReLU()]


def encoder() -> nn.Sequential:
    """The published ``vgg`` up to relu4_1 (its first 31 layers), with its indices and so its keys."""
    pool = [nn.MaxPool2d(2, 2, ceil_mode=True)]
    layers: list[nn.Module] = [nn.Conv2d(3, 3, 1)]  # RGB in [0, 1] → the Caffe VGG's BGR, ×255, minus the mean
    layers += _conv(3, 64) + _conv(64, 64) + pool  # conv1_1 at 3
    layers += _conv(64, 128) + _conv(128, 128) + pool  # conv2_1 at 10
    layers += _conv(128, 256) + _conv(256, 256) + _conv(256, 256) + _conv(256, 256) + pool  # conv3_1 at 17
    layers += _conv(256, 512)  # conv4_1 at 30
    return nn.Sequential(*layers)


def decoder() -> nn.Sequential:
    """The published decoder: the encoder mirrored, with nearest-neighbour upsampling instead of pooling."""
    up = [nn.Upsample(scale_factor=2, mode="nearest")]
    layers = _conv(512, 256) + up
    layers += _conv(256, 256) + _conv(256, 256) + _conv(256, 256) + _conv(256, 128) + up
    layers += _conv(128, 128) + _conv(128, 64) + up
    layers += _conv(64, 64) + [nn.ReflectionPad2d(1), nn.Conv2d(64, 3, 3)]  # no ReLU: outputs are clipped
    return nn.Sequential(*layers)


def calc_mean_std(feat: torch.Tensor, eps: float = EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Each channel's mean and standard deviation over H×W, ``[N, C, 1, 1]`` each.

    As published: the standard deviation is ``sqrt(var + eps)`` with the unbiased variance.
    """
    n, c = feat.shape[:2]
    flat = feat.reshape(n, c, -1)
    return flat.mean(2).view(n, c, 1, 1), (flat.var(2) + eps).sqrt().view(n, c, 1, 1)


def adain(content: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor) -> torch.Tensor:
    """Content features normalised per channel, then given the style's mean and standard deviation."""
    mean, std = calc_mean_std(content)
    return (content - mean) / std * style_std + style_mean


class ContentNorm(nn.InstanceNorm2d):
    """AdaIN's normalisation of the content features: instance norm with the published statistics (the
    unbiased variance, ``correction = 1``). An instance norm, so tiles and videos give it whole-image or
    smoothed statistics as they do every instance norm (``tiles.py``, ``video.py``)."""

    correction = 1

    def __init__(self, channels: int = 512):
        super().__init__(channels, eps=EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var, mean = torch.var_mean(x.float(), dim=(2, 3), correction=self.correction, keepdim=True)
        return (x.float() - mean) / (var + self.eps).sqrt()


@dataclass
class AdaINSpec:
    """What an AdaIN file needs besides its tensors: nothing (the published layout is fixed); the spec
    protocol of ``networks.py``. A file holds the decoder; the encoder is the published VGG19."""

    kind: ClassVar[str] = "adain"
    value_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    multiple: ClassVar[int] = 1  # any size: the encoder pools with ceil_mode and the output is cropped back
    min_side: ClassVar[int] = 16
    width: ClassVar[int] = 64
    exact_tiles: ClassVar[bool] = True

    def build(self) -> nn.Sequential:
        return decoder()

    def describe(self) -> str:
        return "AdaIN encoder and decoder"

    def to_dict(self) -> dict:
        return {}

    @classmethod
    def from_dict(cls, d: dict) -> AdaINSpec:
        if not isinstance(d, dict):
            raise ValueError(f"the spec is a {type(d).__name__}, not a JSON object")
        return cls()


class AdaIN(nn.Module):
    """Encoder, content normalisation with the style's statistics, decoder: ``net(x)`` stylises a batch
    ``[B, 3, H, W]`` in [0, 1] of any size (the decoder's output, H and W rounded up to multiples of 8 by
    the encoder's pooling, is cropped to the input's, which it matches pixel for pixel), clipped to [0, 1].

    ``alpha`` trades content for style in feature space: ``t = α·AdaIN(f_c, s) + (1 − α)·f_c``.
    """

    def __init__(self, enc: nn.Sequential | None = None, dec: nn.Sequential | None = None, alpha: float = 1.0):
        super().__init__()
        self.encoder = encoder() if enc is None else enc
        self.norm = ContentNorm()
        self.decoder = decoder() if dec is None else dec
        self.alpha = alpha
        # Not saved: the style is a choice at inference, not a weight.
        self.register_buffer("style_mean", torch.zeros(1, 512, 1, 1), persistent=False)
        self.register_buffer("style_std", torch.ones(1, 512, 1, 1), persistent=False)

    @torch.no_grad()
    def set_style(self, images: list[torch.Tensor], weights: list[float]) -> None:
        """Paint in the style of ``images`` (``[1, 3, H, W]`` in [0, 1] each), mixed by ``weights``."""
        device = self.style_mean.device
        stats = [calc_mean_std(self.encoder(img.to(device)).float()) for img in images]
        total = sum(weights)
        self.style_mean = sum(w / total * mean for w, (mean, _) in zip(weights, stats, strict=True))
        self.style_std = sum(w / total * std for w, (_, std) in zip(weights, stats, strict=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        f = self.encoder(x)
        t = self.norm(f) * self.style_std + self.style_mean
        if self.alpha != 1:
            t = self.alpha * t + (1 - self.alpha) * f.float()
        y = self.decoder(t.to(f.dtype))
        # the crop as a gather, not a slice: a slice makes torch.export branch on whether it cuts anything
        rows, cols = torch.arange(h, device=y.device), torch.arange(w, device=y.device)
        return y.index_select(-2, rows).index_select(-1, cols).clamp(0, 1)


def is_decoder_state(state: dict) -> bool:
    """Whether a state dict has the layout of the published decoder (its ``decoder.pth``, our exports)."""
    return set(state) == set(decoder().state_dict())


def load_encoder(path: str | Path) -> nn.Sequential:
    """The encoder from a ``vgg_normalised.pth`` (the published file, or any in its layout: it may hold more
    layers than the encoder's 31, as the published one does)."""
    state = read_state_dict(path, "--vgg-weights")
    net = encoder()
    want = net.state_dict()
    missing = [k for k in want if k not in state]
    wrong = [f"{k} {list(state[k].shape)} (expected {list(want[k].shape)})"
             for k in want if k in state and state[k].shape != want[k].shape]
    if missing or wrong:
        why = f"lacks {', '.join(missing[:3])}" if missing else f"has shapes {', '.join(wrong[:2])}"
        raise UserError(f"--vgg-weights {str(path)!r} is not in the layout of the published AdaIN files: it {why}")
    net.load_state_dict({k: state[k].float() for k in want})  # the layers after relu4_1 are not the encoder's
    return net.eval()


# --- training a decoder (train-style --method adain) --------------------------------------------------


def encode_with_intermediate(enc: nn.Sequential, x: torch.Tensor) -> list[torch.Tensor]:
    """conv1_1, conv2_1, conv3_1 and conv4_1 of ``x`` (the published ``encode_with_intermediate``)."""
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


class DecoderRun(StepRun):
    """One decoder training run: the frozen encoder (``--vgg-weights``, default the published file), a
    decoder from random weights, the paper's losses and schedule, its data (the run's life is ``StepRun``'s).
    The run folder holds ``decoder.safetensors``, which ``stylize --method adain --decoder-weights RUN`` uses."""

    command = "train-style --method adain"
    exports = (DECODER_FILE,)

    @classmethod
    def inputs(cls, cfg: StyleTrainConfig, device, precision, main) -> dict:
        content = image_folder(cfg.content, "content folder")
        styles = image_folder(cfg.style_dir, "style folder")
        first_usable(content, "content folder")
        first_usable(styles, "style folder")
        # the published encoder, downloaded once (after the folders are found: a typo costs no download)
        return {"content": content, "styles": styles, "encoder": load_encoder(cfg.vgg_weights or adain_weights("vgg"))}

    def __init__(self, cfg: StyleTrainConfig, folder, inputs: dict, world, device: torch.device, precision: str):
        super().__init__(cfg, folder, world, device, precision)
        self.weights = cfg.loss_weights(DEFAULT_WEIGHTS)
        self.encoder = inputs["encoder"].to(device).eval().requires_grad_(False)
        self.decoder = decoder().to(device)
        self.opt = torch.optim.Adam(self.decoder.parameters(), lr=cfg.lr or LR)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda step: 1 / (1 + LR_DECAY * step))
        self.objects = {"decoder": self.decoder, "opt": self.opt, "sched": self.sched, "scaler": self.amp}
        self.networks = {DECODER_FILE: (self.decoder, AdaINSpec())}
        self.restore()

        content, styles = inputs["content"], inputs["styles"]
        dataset = ContentStyleCrops(content, styles, cfg.image_size, cfg.style_size or cfg.image_size, cfg.seed)
        # The data of a step is a function of the seed and the step alone: a resumed run sees what it would have.
        self.steps_per_epoch = math.ceil(len(dataset) / cfg.batch_size)
        sampler = EpochBatches(len(dataset), cfg.batch_size, cfg.seed, self.epoch,
                               math.ceil(cfg.steps / self.steps_per_epoch), self.batch_in_epoch)
        self.loader = data_loader(dataset, sampler, cfg.workers, collate, pin_memory=device.type == "cuda")
        self.total_steps = cfg.steps
        self.stop_at = min(cfg.steps, cfg.max_steps or cfg.steps)  # --max-steps counts all steps, as in train
        self.start({"files": {"content": len(content), "styles": len(styles)}},
                   f"AdaIN decoder, {len(content)} content / {len(styles)} style images, steps {self.step} to "
                   f"{self.stop_at}")

    def train_step(self, batch: dict) -> dict[str, torch.Tensor]:
        self.check_batch(batch)
        content, style = batch["A"].to(self.device), batch["B"].to(self.device)
        self.in_step = True
        self.opt.zero_grad(set_to_none=True)
        with self.amp.autocast():
            loss_c, loss_s, decoded = losses(self.encoder, self.decoder, content, style)
        loss_c, loss_s = self.weights["content"] * loss_c.float(), self.weights["style"] * loss_s.float()
        self.amp.backward(loss_c + loss_s, self.opt)
        self.amp.update()
        self.sched.step()  # the published schedule: lr / (1 + 5e-5 · step)
        self.last = (content, style, decoded.detach())
        self.advance()
        return {"content": loss_c.detach(), "style": loss_s.detach()}

    def log(self, losses: dict[str, torch.Tensor], progress) -> None:
        super().log(losses, progress, extra={"lr": self.opt.param_groups[0]["lr"]})

    def sample(self) -> tuple[torch.Tensor, str]:
        """Rows: content | style | decoded, for up to four images of the last batch."""
        content, style, decoded = self.last
        n = min(4, len(content))
        style = F.interpolate(style[:n], size=content.shape[-2:], mode="bilinear", align_corners=False)
        tiles = torch.stack([t for i in range(n) for t in (content[i], style[i], decoded[i])])
        return make_grid(tiles.float().clamp(0, 1).cpu(), nrow=3, padding=2), "content | style | decoded"
