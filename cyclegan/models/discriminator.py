"""The PatchGAN discriminator: a grid of real/fake logits, one per overlapping image patch."""

from __future__ import annotations

from torch import nn

from .layers import conv_bias, init_weights, norm_layer

DISCRIMINATOR_NAMES = ("basic", "n_layers")


class NLayerDiscriminator(nn.Module):
    """``n_layers=3`` gives the paper's 70×70 PatchGAN (each output sees a 70×70 receptive field)."""

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "instance"):
        super().__init__()
        norm_fn, bias = norm_layer(norm), conv_bias(norm)
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1  # the last hidden layer keeps the resolution
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1, bias=bias),
                norm_fn(ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


def build_discriminator(name: str = "basic", ndf: int = 64, n_layers: int = 3, norm: str = "instance",
                        in_channels: int = 3, init_type: str = "normal", init_gain: float = 0.02) -> nn.Module:
    """``basic`` is the 70×70 PatchGAN; ``n_layers`` uses ``n_layers`` strided layers."""
    if name == "basic":
        n_layers = 3
    elif name != "n_layers":
        raise ValueError(f"unknown discriminator {name!r}; choose one of {', '.join(DISCRIMINATOR_NAMES)}")
    net = NLayerDiscriminator(in_channels, ndf, n_layers, norm)
    return init_weights(net, init_type, init_gain)
