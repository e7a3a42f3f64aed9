"""Normalisation layers and weight initialisation shared by generators and discriminators."""

from __future__ import annotations

import functools
from collections.abc import Callable

from torch import nn

NORMS = ("instance", "batch", "none")
INIT_TYPES = ("normal", "xavier", "kaiming", "orthogonal")


def norm_layer(norm: str) -> Callable[[int], nn.Module]:
    """Return a factory ``channels -> nn.Module`` for the named normalisation.

    ``instance`` has no affine parameters and no running statistics, as in the paper's release:
    every image is normalised by its own statistics at training and at test time.
    """
    if norm == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    if norm == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    if norm == "none":
        return lambda channels: nn.Identity()
    raise ValueError(f"unknown norm {norm!r}; choose one of {', '.join(NORMS)}")


def conv_bias(norm: str) -> bool:
    # A bias before batch norm is cancelled by its mean subtraction; instance norm here has no affine
    # shift, so the convolution keeps its bias (as in the original release).
    return norm != "batch"


def init_weights(net: nn.Module, init_type: str = "normal", gain: float = 0.02) -> nn.Module:
    """Initialise conv/linear weights as the paper's release does (N(0, 0.02) by default)."""
    if init_type not in INIT_TYPES:
        raise ValueError(f"unknown init type {init_type!r}; choose one of {', '.join(INIT_TYPES)}")

    def init(m: nn.Module) -> None:
        name = type(m).__name__
        if hasattr(m, "weight") and m.weight is not None and ("Conv" in name or "Linear" in name):
            if init_type == "normal":
                nn.init.normal_(m.weight, 0.0, gain)
            elif init_type == "xavier":
                nn.init.xavier_normal_(m.weight, gain=gain)
            elif init_type == "kaiming":
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            else:
                nn.init.orthogonal_(m.weight, gain=gain)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif "BatchNorm2d" in name:
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)

    return net.apply(init)
