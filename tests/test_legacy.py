"""Loading any generator: original-release .pth files (architecture inferred), exports and run folders."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from cyclegan.checkpoint import save_network
from cyclegan.data import load_image, to_tensor
from cyclegan.errors import UserError
from cyclegan.models import GeneratorSpec, build_discriminator, build_generator
from cyclegan.models.legacy import infer_spec
from cyclegan.networks import load_network
from tests.conftest import shared_path


def random_generator(spec: GeneratorSpec, seed: int = 0) -> nn.Module:
    """A generator with random weights of a healthy scale and random batch-norm statistics."""
    torch.manual_seed(seed)
    net = build_generator(spec, init_type="kaiming")
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.bias.data.uniform_(-0.5, 0.5)
    return net.eval()


def original_layout(net: nn.Module, spec: GeneratorSpec, stale: bool = True) -> dict[str, torch.Tensor]:
    """The state dict the original release would have saved for ``net``.

    Old (PyTorch 0.3/0.4) checkpoints carry running statistics for instance norm layers that never used
    them; the release builds convolutions without a bias for ``norm=none`` (ours get a zero bias).
    """
    state = dict(net.state_dict())
    for name, m in net.named_modules():
        if isinstance(m, nn.InstanceNorm2d) and stale:
            state[f"{name}.running_mean"] = torch.randn(m.num_features)
            state[f"{name}.running_var"] = torch.rand(m.num_features) + 2
            state[f"{name}.num_batches_tracked"] = torch.tensor(7)
        if spec.norm == "none" and isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and m.bias is not None:
            is_output = m.out_channels == spec.out_channels and name != "model.model.0"
            if not is_output:
                m.bias.data.zero_()  # the reference: a convolution without bias
                del state[f"{name}.bias"]
    return state


def outputs(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return net(x)


@pytest.mark.parametrize("spec", [
    GeneratorSpec(ngf=8, n_blocks=3),
    GeneratorSpec(ngf=12, n_blocks=2, dropout=True),
    GeneratorSpec(ngf=8, n_blocks=1, norm="batch"),
    GeneratorSpec(ngf=8, n_blocks=2, norm="none"),
    GeneratorSpec(ngf=4, n_blocks=9, in_channels=1, out_channels=3),
], ids=["instance", "dropout", "batch", "none", "1to3channels"])
def test_resnet_pth_architecture_inferred_and_outputs_equal(tmp_path, spec):
    net = random_generator(spec)
    path = tmp_path / "latest_net_G_A.pth"
    torch.save(original_layout(net, spec), path)

    loaded, inferred = load_network(path)
    assert inferred == spec
    x = torch.rand(2, spec.in_channels, 36, 44) * 2 - 1
    torch.testing.assert_close(outputs(loaded, x), outputs(net, x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("spec", [
    GeneratorSpec(arch="unet", ngf=8, num_downs=5, norm="batch"),
    GeneratorSpec(arch="unet", ngf=4, num_downs=6, norm="instance"),
    GeneratorSpec(arch="unet", ngf=4, num_downs=5, norm="none"),
], ids=["batch", "instance", "none"])
def test_unet_pth_architecture_inferred_and_outputs_equal(tmp_path, spec):
    net = random_generator(spec)
    path = tmp_path / "latest_net_G.pth"
    torch.save(original_layout(net, spec), path)

    loaded, inferred = load_network(path)
    assert inferred == spec
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    torch.testing.assert_close(outputs(loaded, x), outputs(net, x), rtol=0, atol=1e-6)


def test_batchnorm_checkpoint_from_before_pytorch_0_4_loads(tmp_path):
    spec = GeneratorSpec(ngf=8, n_blocks=1, norm="batch")
    net = random_generator(spec)
    state = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert infer_spec(state) == spec
    torch.save(state, tmp_path / "old.pth")
    loaded, _ = load_network(tmp_path / "old.pth")
    x = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(outputs(loaded, x), outputs(net, x), rtol=0, atol=1e-6)


def test_data_parallel_prefix_is_stripped(tmp_path):
    spec = GeneratorSpec(ngf=8, n_blocks=2)
    net = random_generator(spec)
    torch.save({f"module.{k}": v for k, v in net.state_dict().items()}, tmp_path / "dp.pth")
    loaded, inferred = load_network(tmp_path / "dp.pth")
    assert inferred == spec
    x = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(outputs(loaded, x), outputs(net, x), rtol=0, atol=1e-6)


def test_unusable_files_give_clear_errors(tmp_path):
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint at all")
    with pytest.raises(UserError, match="garbage.pth' is not a weights file this tool reads"):
        load_network(tmp_path / "garbage.pth")
    torch.save(build_discriminator(ndf=8).state_dict(), tmp_path / "latest_net_D_A.pth")
    with pytest.raises(UserError, match="not a ResNet or U-Net generator"):
        load_network(tmp_path / "latest_net_D_A.pth")
    state = random_generator(GeneratorSpec(ngf=8, n_blocks=2)).state_dict()
    del state["model.11.conv_block.5.weight"]
    torch.save(state, tmp_path / "damaged.pth")
    with pytest.raises(UserError, match=r"missing \['model.11.conv_block.5.weight'\]"):
        load_network(tmp_path / "damaged.pth")
    with pytest.raises(UserError, match="does not exist"):
        load_network(tmp_path / "absent.pth")


def test_reference_fixture_reproduced():
    """The original implementation's outputs for its own checkpoint, without being told ngf or blocks."""
    folder = shared_path("fixtures", "reference_generator")
    meta = json.loads((folder / "meta.json").read_text())
    net, spec = load_network(folder / "latest_net_G.pth")
    assert (spec.arch, spec.ngf, spec.n_blocks) == ("resnet", meta["ngf"], meta["n_blocks"])
    assert spec.norm == meta["norm"]
    for i, name in enumerate(meta["outputs"]):
        expected = torch.from_numpy(np.load(folder / f"out_{i}.npy"))
        rgb, _ = load_image(folder / name)
        assert list(expected.shape) == meta["outputs"][name]
        x = to_tensor(rgb)[None]  # x / 127.5 - 1, no resizing
        assert (outputs(net, x) - expected).abs().max() <= 1e-4


# --------------------------------------------------------------------------- load_any_generator


def test_run_folder_picks_the_direction(tmp_path):
    spec_ab, spec_ba = GeneratorSpec(ngf=8, n_blocks=1), GeneratorSpec(ngf=4, n_blocks=2)
    save_network(tmp_path / "run" / "G_AB.safetensors", random_generator(spec_ab), spec_ab)
    save_network(tmp_path / "run" / "G_BA.safetensors", random_generator(spec_ba), spec_ba)
    assert load_network(tmp_path / "run", "AtoB")[1] == spec_ab
    assert load_network(tmp_path / "run", "BtoA")[1] == spec_ba
    assert load_network(tmp_path / "run" / "G_BA.safetensors")[1] == spec_ba
    with pytest.raises(UserError, match="unknown direction"):
        load_network(tmp_path / "run", "sideways")
    with pytest.raises(UserError, match="one way only"):
        load_network(tmp_path / "run" / "G_AB.safetensors", "BtoA")
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(UserError, match="no G_AB.safetensors"):
        load_network(tmp_path / "empty_run")
    with pytest.raises(UserError, match="does not exist"):
        load_network(tmp_path / "nowhere")


def test_original_release_run_folder(tmp_path):
    spec_a, spec_b = GeneratorSpec(ngf=8, n_blocks=1), GeneratorSpec(ngf=8, n_blocks=2)
    torch.save(original_layout(random_generator(spec_a), spec_a), tmp_path / "latest_net_G_A.pth")
    torch.save(original_layout(random_generator(spec_b), spec_b), tmp_path / "latest_net_G_B.pth")
    assert load_network(tmp_path, "AtoB")[1] == spec_a
    assert load_network(tmp_path, "BtoA")[1] == spec_b


def test_safetensors_without_metadata_is_inferred(tmp_path):
    spec = GeneratorSpec(ngf=8, n_blocks=2)
    net = random_generator(spec)
    tensors = {k: v.contiguous() for k, v in net.state_dict().items()}
    save_file(tensors, str(tmp_path / "converted.safetensors"))
    loaded, inferred = load_network(tmp_path / "converted.safetensors")
    assert inferred == spec
    x = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(outputs(loaded, x), outputs(net, x), rtol=0, atol=1e-6)
