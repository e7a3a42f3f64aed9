"""Tiled translation: whole-image instance-norm statistics, sizes kept, tiling when memory runs out."""

from __future__ import annotations

import pytest
import torch

from cyclegan.data import to_uint8
from cyclegan.models import GeneratorSpec, build_generator
from cyclegan.models.generator import ResnetGenerator
from cyclegan.tiles import exact, halo
from cyclegan.translate import Translator

TINY = GeneratorSpec(ngf=4, n_blocks=2)


def tiny_net(spec: GeneratorSpec = TINY, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_generator(spec)


def photo(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """A smooth random image (uint8 [1, 3, H, W]), so that tiles differ in their statistics."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, max(2, h // 50), max(2, w // 50), generator=g)
    x = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    return (x * 255).round().to(torch.uint8)


def levels(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Absolute differences in 0–255 levels of two outputs in [-1, 1], as they are written."""
    return (to_uint8(a).int() - to_uint8(b).int()).abs()


def counting(net: torch.nn.Module) -> list[int]:
    calls: list[int] = []
    net.register_forward_pre_hook(lambda m, args: calls.append(1))
    return calls


def plain_and_tiled(tile: int) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """A tiny net's translation of a 600×900 photo untiled and with ``tile``, and its passes in the latter."""
    net = tiny_net()
    x = photo(600, 900)
    plain = Translator(net, TINY, torch.device("cpu"))(x)
    tiled_translator = Translator(net, TINY, torch.device("cpu"), tile=tile)
    calls = counting(net)
    return plain, tiled_translator(x), calls


def test_tiled_equals_untiled_on_600x900_within_one_level():
    plain, tiled, calls = plain_and_tiled(128)
    assert len(calls) > 10  # it was tiled: a pass per norm over ~35 tiles
    diff = levels(tiled, plain)
    assert diff.max() <= 1 and diff.float().mean() < 0.01
    assert (tiled - plain).abs().max() < 1e-3  # float rounding, not a seam


def test_resize_upsampling_tiles_exactly_too():
    """Nearest-neighbour upsampling widens the receptive field of the convolution after it by a source
    pixel: a halo that missed it gave seams of about a level."""
    spec = GeneratorSpec(ngf=4, n_blocks=2, upsample="resize")
    net, x = tiny_net(spec), photo(600, 900)
    plain = Translator(net, spec, torch.device("cpu"))(x)
    tiled = Translator(net, spec, torch.device("cpu"), tile=128)(x)
    assert (tiled - plain).abs().max() < 1e-3


def test_independent_tiles_would_show_seams():
    """What exact tiling prevents: tiles normalised by their own statistics differ from the whole image."""
    net = tiny_net().eval()
    x = photo(256, 256).float() / 127.5 - 1
    with torch.inference_mode():
        whole = net(x)
        naive = torch.cat([net(x[..., :128]), net(x[..., 128:])], dim=-1)
        tiled = exact(net, x, 128)
    assert levels(naive, whole).max() > 5
    assert levels(tiled, whole).max() <= 1


def test_tile_larger_than_image_is_a_plain_run():
    plain, tiled, calls = plain_and_tiled(1024)
    assert torch.equal(tiled, plain)
    assert len(calls) == 1


def test_odd_sizes_keep_their_size():
    net = tiny_net()
    for h, w in ((301, 199), (97, 333)):
        x = photo(h, w, seed=h)
        plain = Translator(net, TINY, torch.device("cpu"))(x)
        tiled = Translator(net, TINY, torch.device("cpu"), tile=64)(x)
        assert tiled.shape == plain.shape == (1, 3, h, w)
        assert levels(tiled, plain).max() <= 1


def test_batches_keep_each_image_statistics():
    net = tiny_net()
    x = torch.cat([photo(200, 300, seed=1), photo(200, 300, seed=2)])
    plain = Translator(net, TINY, torch.device("cpu"))(x)
    tiled = Translator(net, TINY, torch.device("cpu"), tile=64)(x)
    assert levels(tiled, plain).max() <= 1


def test_halo_covers_the_receptive_field():
    # stem 3 + downsamplings 1 + 2 + blocks 9 × 2 × 4 + upsamplings 4 + 2 + last conv 3 = 87 → 88
    assert halo(build_generator(GeneratorSpec(), init_type=None)) == (88, 4)
    # the same with resize upsampling: each 3×3 conv after a 2× upsampling reaches a source pixel away
    assert halo(build_generator(GeneratorSpec(upsample="resize"), init_type=None)) == (88, 4)


class RunsOutOfMemory(ResnetGenerator):
    """A generator that, like a GPU, cannot take inputs above a number of pixels."""

    limit = 600 * 600
    error = torch.OutOfMemoryError("out of memory (simulated)")

    def forward(self, x):
        if x.shape[-2] * x.shape[-1] > self.limit:
            raise self.error
        return super().forward(x)


def test_out_of_memory_tiles_before_falling_back_to_the_cpu():
    net = RunsOutOfMemory(TINY)
    net.load_state_dict(tiny_net().state_dict())
    x = photo(600, 900)
    translator = Translator(net, TINY, torch.device("cpu"))
    y = translator(x)
    assert translator.tile == 450 and translator._cpu_pixels is None
    assert levels(y, Translator(tiny_net(), TINY, torch.device("cpu"))(x)).max() <= 1


def test_unet_tiles_are_blended_and_keep_the_size():
    spec = GeneratorSpec(arch="unet", ngf=4, num_downs=5)
    net = tiny_net(spec)
    x = photo(200, 300)
    plain = Translator(net, spec, torch.device("cpu"))(x)
    whole = Translator(net, spec, torch.device("cpu"), tile=512)(x)
    tiled = Translator(net, spec, torch.device("cpu"), tile=96)(x)
    assert torch.equal(whole, plain)
    assert tiled.shape == plain.shape and torch.isfinite(tiled).all()


class CpuAllocatorFails(RunsOutOfMemory):
    """The same on a CPU under a memory limit: its allocator raises a plain RuntimeError."""

    error = RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
                         "you tried to allocate 8000000000 bytes. Error code 12")


def test_the_cpu_allocator_running_out_tiles_and_then_says_what_to_do():
    from cyclegan.errors import UserError

    net = CpuAllocatorFails(TINY)
    net.load_state_dict(tiny_net().state_dict())
    x = photo(600, 900)
    translator = Translator(net, TINY, torch.device("cpu"))
    y = translator(x)
    assert translator.tile == 450
    assert levels(y, Translator(tiny_net(), TINY, torch.device("cpu"))(x)).max() <= 1
    net.limit = 8 * 8  # not even the smallest tile fits
    with pytest.raises(UserError, match="out of memory on one 900×600 image even in tiles of .*--max-side"):
        Translator(net, TINY, torch.device("cpu"))(x)
