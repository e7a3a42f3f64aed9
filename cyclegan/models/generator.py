"""Generators: the ResNet generator of the CycleGAN paper and the U-Net of pix2pix.

Module layouts follow the original PyTorch release exactly (an ``nn.Sequential`` called ``model``),
so its state dicts (``model.1.weight``, ``model.10.conv_block.1.weight``, ...) load unchanged.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from .layers import NORMS, conv_bias, init_weights, norm_layer

GENERATOR_NAMES = ("resnet_9blocks", "resnet_6blocks", "unet_256", "unet_128")
ARCHS = ("resnet", "unet")
UPSAMPLES = ("transposed", "resize")
# What a file may describe. A spec read from a file costs nothing to forge, and ngf=10**6 would ask
# for terabytes, so loading refuses anything outside these bounds before building a network.
# They are far beyond every published CycleGAN/pix2pix generator (ngf 64, 9 blocks, 8 levels).
SPEC_BOUNDS = {"ngf": (1, 1024), "n_blocks": (0, 64), "num_downs": (5, 12),
               "in_channels": (1, 64), "out_channels": (1, 64)}


@dataclass(frozen=True)
class GeneratorSpec:
    """Everything needed to rebuild a generator; stored beside its weights.

    Like every network spec (``networks.py``), it says what the network takes (``value_range``, sides a
    multiple of ``multiple`` and at least ``min_side``) and builds the network.
    """

    kind: ClassVar[str] = "generator"
    value_range: ClassVar[tuple[float, float]] = (-1.0, 1.0)

    arch: str = "resnet"  # "resnet" | "unet"
    ngf: int = 64
    n_blocks: int = 9  # resnet: residual blocks
    num_downs: int = 8  # unet: downsamplings (8 for 256 px, 7 for 128 px)
    norm: str = "instance"
    dropout: bool = False
    in_channels: int = 3
    out_channels: int = 3
    upsample: str = "transposed"  # resnet: "transposed" (the paper) or "resize"; see ResnetGenerator

    @classmethod
    def from_name(cls, name: str, **kwargs) -> GeneratorSpec:
        """``resnet_9blocks`` / ``resnet_6blocks`` / ``unet_256`` / ``unet_128`` → a spec."""
        if m := re.fullmatch(r"resnet_(\d+)blocks", name):
            return cls(arch="resnet", n_blocks=int(m.group(1)), **kwargs)
        if name == "unet_256":
            return cls(arch="unet", num_downs=8, **kwargs)
        if name == "unet_128":
            return cls(arch="unet", num_downs=7, **kwargs)
        raise ValueError(f"unknown generator {name!r}; choose one of {', '.join(GENERATOR_NAMES)}")

    @property
    def multiple(self) -> int:
        """Input sides must be multiples of this: the total downsampling."""
        return 4 if self.arch == "resnet" else 2**self.num_downs

    @property
    def min_side(self) -> int:
        """The ResNet's instance norms need more than one pixel after its two 2× downsamplings."""
        return 2 * self.multiple if self.arch == "resnet" else self.multiple

    @property
    def width(self) -> int:
        """Channels at full resolution (what a pass's memory grows with)."""
        return self.ngf

    @property
    def exact_tiles(self) -> bool:
        """Tiles with whole-image statistics are exact for ResNets; a U-Net sees the whole image."""
        return self.arch == "resnet"

    def build(self) -> nn.Module:
        return build_generator(self, init_type=None)

    def describe(self) -> str:
        """``resnet_9blocks generator (ngf=64, norm=instance)`` and the like, for messages."""
        name = f"resnet_{self.n_blocks}blocks" if self.arch == "resnet" else f"unet ({self.num_downs} levels)"
        extra = (", dropout" if self.dropout else "") + (", resize upsampling" if self.upsample == "resize" else "")
        return f"{name} generator (ngf={self.ngf}, norm={self.norm}{extra})"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> GeneratorSpec:
        """The spec ``to_dict`` wrote; ``ValueError`` naming the problem for anything else."""
        if not isinstance(d, dict):
            raise ValueError(f"the architecture is a {type(d).__name__}, not a JSON object")
        fields = {f.name for f in dataclasses.fields(cls)}
        # files written before `upsample` existed hold the paper's transposed convolutions
        if missing := sorted(fields - set(d) - {"upsample"}):
            raise ValueError(f"the architecture lacks {', '.join(missing)}")
        if extra := sorted(set(d) - fields):
            raise ValueError(f"the architecture has unknown fields {', '.join(extra)}")
        return cls(**d).check()

    def check(self) -> GeneratorSpec:
        """This spec if it is one ``build_generator`` can build at a plausible size, else ``ValueError``."""
        if self.arch not in ARCHS:
            raise ValueError(f"unknown generator architecture {self.arch!r}; choose one of {', '.join(ARCHS)}")
        if self.norm not in NORMS:
            raise ValueError(f"unknown norm {self.norm!r}; choose one of {', '.join(NORMS)}")
        if self.upsample not in UPSAMPLES:
            raise ValueError(f"unknown upsampling {self.upsample!r}; choose one of {', '.join(UPSAMPLES)}")
        if self.upsample != "transposed" and self.arch != "resnet":
            raise ValueError(f"{self.upsample} upsampling is for the ResNet generators; the U-Net has only transposed")
        if type(self.dropout) is not bool:
            raise ValueError(f"dropout must be true or false, not {self.dropout!r}")
        for name, (low, high) in SPEC_BOUNDS.items():
            value = getattr(self, name)
            if type(value) is not int or not low <= value <= high:  # bool is an int: excluded on purpose
                raise ValueError(f"{name}={value!r} is not a whole number from {low} to {high}")
        return self


class ResnetBlock(nn.Module):
    def __init__(self, dim: int, norm: str, dropout: bool):
        super().__init__()
        norm_fn, bias = norm_layer(norm), conv_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm_fn(dim), nn.ReLU(True),
        ]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm_fn(dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


def upsampling(mode: str, c_in: int, c_out: int, bias: bool) -> list[nn.Module]:
    """One 2× upsampling of the ResNet generator.

    ``transposed``: the paper's 3×3 stride-2 transposed convolution. Its kernel overlaps unevenly, so it
    prints a 2- (and, twice, 4-) pixel grid that training must learn to cancel (Odena et al. 2016,
    "Deconvolution and checkerboard artifacts"). ``resize``: their remedy, nearest-neighbour 2× then a 3×3
    convolution, which treats every output pixel alike (not in the paper; weights are not interchangeable).
    """
    if mode == "resize":
        return [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, padding=1, bias=bias)]
    return [nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1, bias=bias)]


class ResnetGenerator(nn.Module):
    """7×7 stem, two stride-2 downsamplings, residual blocks, two upsamplings, tanh."""

    def __init__(self, spec: GeneratorSpec):
        super().__init__()
        ngf, norm_fn, bias = spec.ngf, norm_layer(spec.norm), conv_bias(spec.norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3), nn.Conv2d(spec.in_channels, ngf, 7, bias=bias), norm_fn(ngf), nn.ReLU(True),
        ]
        for i in range(2):
            mult = 2**i
            layers += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=bias),
                norm_fn(ngf * mult * 2),
                nn.ReLU(True),
            ]
        layers += [ResnetBlock(ngf * 4, spec.norm, spec.dropout) for _ in range(spec.n_blocks)]
        for i in range(2):
            mult = 2 ** (2 - i)
            layers += [
                *upsampling(spec.upsample, ngf * mult, ngf * mult // 2, bias),
                norm_fn(ngf * mult // 2),
                nn.ReLU(True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, spec.out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class UnetSkipBlock(nn.Module):
    """One level of the U-Net: down, the inner levels, up, and the skip connection around them."""

    def __init__(self, outer: int, inner: int, in_channels: int | None = None, sub: nn.Module | None = None,
                 outermost: bool = False, innermost: bool = False, norm: str = "batch", dropout: bool = False):
        super().__init__()
        self.outermost = outermost
        norm_fn, bias = norm_layer(norm), conv_bias(norm)
        in_channels = outer if in_channels is None else in_channels
        down = nn.Conv2d(in_channels, inner, 4, stride=2, padding=1, bias=bias)
        if outermost:
            up = nn.ConvTranspose2d(inner * 2, outer, 4, stride=2, padding=1)
            layers = [down, sub, nn.ReLU(True), up, nn.Tanh()]
        elif innermost:
            up = nn.ConvTranspose2d(inner, outer, 4, stride=2, padding=1, bias=bias)
            layers = [nn.LeakyReLU(0.2, True), down, nn.ReLU(True), up, norm_fn(outer)]
        else:
            up = nn.ConvTranspose2d(inner * 2, outer, 4, stride=2, padding=1, bias=bias)
            layers = [nn.LeakyReLU(0.2, True), down, norm_fn(inner), sub, nn.ReLU(True), up, norm_fn(outer)]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """U-Net with ``num_downs`` stride-2 levels: input sides must be multiples of 2**num_downs."""

    def __init__(self, spec: GeneratorSpec):
        super().__init__()
        ngf, kw = spec.ngf, {"norm": spec.norm}
        block = UnetSkipBlock(ngf * 8, ngf * 8, innermost=True, **kw)
        for _ in range(spec.num_downs - 5):
            block = UnetSkipBlock(ngf * 8, ngf * 8, sub=block, dropout=spec.dropout, **kw)
        block = UnetSkipBlock(ngf * 4, ngf * 8, sub=block, **kw)
        block = UnetSkipBlock(ngf * 2, ngf * 4, sub=block, **kw)
        block = UnetSkipBlock(ngf, ngf * 2, sub=block, **kw)
        self.model = UnetSkipBlock(spec.out_channels, ngf, in_channels=spec.in_channels, sub=block,
                                   outermost=True, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def build_generator(spec: GeneratorSpec, init_type: str | None = "normal", init_gain: float = 0.02) -> nn.Module:
    """Build the generator a spec describes; ``init_type=None`` skips initialisation (weights to be loaded)."""
    if spec.arch == "resnet":
        net: nn.Module = ResnetGenerator(spec)
    elif spec.arch == "unet":
        net = UnetGenerator(spec)
    else:
        raise ValueError(f"unknown generator architecture {spec.arch!r}")
    return init_weights(net, init_type, init_gain) if init_type else net
