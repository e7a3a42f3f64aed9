"""Networks: ResNet/U-Net generators and the PatchGAN discriminator."""

from .discriminator import DISCRIMINATOR_NAMES, build_discriminator
from .generator import GENERATOR_NAMES, GeneratorSpec, build_generator
from .layers import INIT_TYPES, NORMS

__all__ = [
    "DISCRIMINATOR_NAMES", "GENERATOR_NAMES", "INIT_TYPES", "NORMS",
    "GeneratorSpec", "build_discriminator", "build_generator",
]
