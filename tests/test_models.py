import pytest
import torch

from cyclegan.models import GeneratorSpec, build_discriminator, build_generator


def n_params(net):
    return sum(p.numel() for p in net.parameters())


def test_paper_parameter_counts():
    # The counts of the original release's resnet_9blocks generator and 70x70 PatchGAN (ngf=ndf=64).
    assert n_params(build_generator(GeneratorSpec())) == 11_378_179
    assert n_params(build_discriminator()) == 2_764_737


@pytest.mark.parametrize("name,size", [("resnet_9blocks", 64), ("resnet_6blocks", 36), ("unet_128", 128),
                                       ("unet_256", 256)])
def test_generator_keeps_shape_and_range(name, size):
    spec = GeneratorSpec.from_name(name, ngf=4)
    assert size % spec.multiple == 0
    y = build_generator(spec)(torch.randn(2, 3, size, size))
    assert y.shape == (2, 3, size, size)
    assert y.abs().max() <= 1.0  # tanh output


def test_resnet_keys_follow_original_release_layout():
    keys = build_generator(GeneratorSpec(n_blocks=9)).state_dict().keys()
    for key in ("model.1.weight", "model.4.weight", "model.10.conv_block.1.weight", "model.18.conv_block.5.bias",
                "model.19.weight", "model.22.weight", "model.26.weight"):
        assert key in keys
    # instance norm without affine parameters or running statistics: nothing but convolutions is saved
    assert not any("running" in k for k in keys)


def test_patchgan_output_grid():
    # 70x70 PatchGAN on a 256x256 image scores a 30x30 grid of patches.
    assert build_discriminator()(torch.randn(1, 3, 256, 256)).shape == (1, 1, 30, 30)
    assert build_discriminator("n_layers", ndf=8, n_layers=2)(torch.randn(1, 3, 64, 64)).shape == (1, 1, 14, 14)


@pytest.mark.parametrize("norm", ["instance", "batch", "none"])
def test_norms(norm):
    net = build_generator(GeneratorSpec(ngf=4, n_blocks=1, norm=norm))
    has_bn = any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    assert has_bn == (norm == "batch")
    assert net(torch.randn(2, 3, 16, 16)).shape == (2, 3, 16, 16)


@pytest.mark.parametrize("init", ["normal", "xavier", "kaiming", "orthogonal"])
def test_init_types(init):
    torch.manual_seed(0)
    net = build_generator(GeneratorSpec(ngf=8, n_blocks=1), init_type=init, init_gain=0.02)
    w = net.model[1].weight
    assert torch.isfinite(w).all() and w.std() > 0
    assert (net.model[1].bias == 0).all()
    if init == "normal":
        assert abs(w.std().item() - 0.02) < 0.005


def test_spec_round_trip_and_errors():
    spec = GeneratorSpec.from_name("unet_128", ngf=32, norm="batch")
    assert GeneratorSpec.from_dict(spec.to_dict()) == spec
    assert spec.num_downs == 7
    with pytest.raises(ValueError, match="unknown generator"):
        GeneratorSpec.from_name("resnet_blocks")
    with pytest.raises(ValueError, match="unknown discriminator"):
        build_discriminator("pixelish")


def test_resize_upsampling_is_a_resnet_option_with_the_same_parameters():
    # nearest-neighbour 2× + 3×3 conv has as many weights as the 3×3 transposed conv it replaces
    paper, resize = GeneratorSpec(), GeneratorSpec(upsample="resize")
    assert n_params(build_generator(resize)) == n_params(build_generator(paper))
    assert "resize upsampling" in resize.describe() and "resize" not in paper.describe()
    y = build_generator(GeneratorSpec(ngf=4, n_blocks=1, upsample="resize"))(torch.randn(1, 3, 36, 44))
    assert y.shape == (1, 3, 36, 44)
    assert GeneratorSpec.from_dict(resize.to_dict()) == resize
    # files written before the option existed describe the paper's generator
    old = {k: v for k, v in paper.to_dict().items() if k != "upsample"}
    assert GeneratorSpec.from_dict(old).upsample == "transposed"
    with pytest.raises(ValueError, match="unknown upsampling 'bilinear'"):
        GeneratorSpec(upsample="bilinear").check()
    with pytest.raises(ValueError, match="for the ResNet generators"):
        GeneratorSpec.from_name("unet_128", upsample="resize").check()
