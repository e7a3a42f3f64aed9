"""The CycleGAN objective: adversarial terms (LSGAN, vanilla, hinge), cycle and identity terms."""

from __future__ import annotations

import torch
import torch.nn.functional as F

GAN_MODES = ("lsgan", "vanilla", "hinge")


def _check(mode: str) -> None:
    if mode not in GAN_MODES:
        raise ValueError(f"unknown GAN mode {mode!r}; choose one of {', '.join(GAN_MODES)}")


def generator_adv_loss(pred_fake: torch.Tensor, mode: str = "lsgan") -> torch.Tensor:
    """Adversarial loss of a generator whose fakes the discriminator scored ``pred_fake`` (raw logits)."""
    _check(mode)
    pred_fake = pred_fake.float()  # losses in fp32 even under autocast
    if mode == "lsgan":
        return F.mse_loss(pred_fake, torch.ones_like(pred_fake))
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(pred_fake, torch.ones_like(pred_fake))
    return -pred_fake.mean()


def discriminator_adv_loss(pred_real: torch.Tensor, pred_fake: torch.Tensor, mode: str = "lsgan") -> torch.Tensor:
    """Discriminator loss on a real and a fake batch, halved as in the paper to slow D relative to G."""
    _check(mode)
    pred_real, pred_fake = pred_real.float(), pred_fake.float()
    if mode == "lsgan":
        real = F.mse_loss(pred_real, torch.ones_like(pred_real))
        fake = F.mse_loss(pred_fake, torch.zeros_like(pred_fake))
    elif mode == "vanilla":
        real = F.binary_cross_entropy_with_logits(pred_real, torch.ones_like(pred_real))
        fake = F.binary_cross_entropy_with_logits(pred_fake, torch.zeros_like(pred_fake))
    else:
        real = F.relu(1.0 - pred_real).mean()
        fake = F.relu(1.0 + pred_fake).mean()
    return 0.5 * (real + fake)


def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The L1 distance used by the cycle and identity terms."""
    return F.l1_loss(a.float(), b.float())
