import pytest
import torch

from cyclegan.losses import discriminator_adv_loss, generator_adv_loss, l1

REAL = torch.tensor([0.5, 2.0])
FAKE = torch.tensor([-1.0, 0.25])


def bce(x, target):
    # -[t log s(x) + (1-t) log(1-s(x))], written out by hand
    s = 1 / (1 + torch.exp(-x))
    return -(target * torch.log(s) + (1 - target) * torch.log(1 - s)).mean()


def test_lsgan():
    # G: mean((d-1)^2) = ((-2)^2 + (-0.75)^2)/2 = 2.28125
    assert generator_adv_loss(FAKE, "lsgan").item() == pytest.approx(2.28125)
    # D: 0.5 * (mean((r-1)^2) + mean(f^2)) = 0.5 * ((0.25+1)/2 + (1+0.0625)/2) = 0.578125
    assert discriminator_adv_loss(REAL, FAKE, "lsgan").item() == pytest.approx(0.578125)


def test_vanilla():
    assert generator_adv_loss(FAKE, "vanilla").item() == pytest.approx(bce(FAKE, 1.0).item(), rel=1e-6)
    expected = 0.5 * (bce(REAL, 1.0) + bce(FAKE, 0.0))
    assert discriminator_adv_loss(REAL, FAKE, "vanilla").item() == pytest.approx(expected.item(), rel=1e-6)


def test_hinge():
    # G: -mean(f) = 0.375; D: 0.5 * (mean(relu(1-r)) + mean(relu(1+f))) = 0.5 * (0.25 + 0.625) = 0.4375
    assert generator_adv_loss(FAKE, "hinge").item() == pytest.approx(0.375)
    assert discriminator_adv_loss(REAL, FAKE, "hinge").item() == pytest.approx(0.4375)


def test_l1_and_bad_mode():
    assert l1(torch.zeros(2, 2), torch.tensor([[1.0, -1.0], [2.0, 0.0]])).item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="unknown GAN mode"):
        generator_adv_loss(FAKE, "wgan")
