"""Photorealistic and guided style transfer: the Matting Laplacian, the photorealism regulariser,
semantic masks, the histogram loss, closed-form smoothing, and their options."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from cyclegan.cli import app
from cyclegan.config import StylizeConfig, validate
from cyclegan.errors import UserError
from cyclegan.style import gatys, images, vgg
from cyclegan.style import histogram as H
from cyclegan.style import masks as M
from cyclegan.style import photoreal as P
from tests.conftest import shared_path, write_image
from tests.test_gatys import random_vgg_file, smooth_image, tiny_extractor

runner = CliRunner()
YOSEMITE = ("datasets", "summer2winter_yosemite_mini")


def dense_matting_laplacian(image: torch.Tensor, eps: float = P.EPS) -> torch.Tensor:
    """Levin et al.'s definition, window by window (Python loops: tiny images only)."""
    _, h, w = image.shape
    img = image.permute(1, 2, 0).double()
    lap = torch.zeros(h * w, h * w, dtype=torch.float64)
    for ty in range(h - 2):
        for tx in range(w - 2):
            idx = torch.tensor([(ty + a) * w + tx + b for a in range(3) for b in range(3)])
            x = img[ty:ty + 3, tx:tx + 3].reshape(9, 3)
            x = x - x.mean(0)
            inv = torch.linalg.inv(x.t() @ x / 9 + eps / 9 * torch.eye(3, dtype=torch.float64))
            lap[idx[:, None], idx[None]] += torch.eye(9, dtype=torch.float64) - (1 + x @ inv @ x.t()) / 9
    return lap


def two_tone(size: int = 14) -> torch.Tensor:
    """A [3, size, size] image with a sharp edge and gentle noise: flat windows and edge windows both."""
    gen = torch.Generator().manual_seed(1)
    img = torch.full((3, size, size), 0.2)
    img[:, :, size // 2:] = torch.tensor([0.9, 0.5, 0.1]).view(3, 1, 1)
    return (img + 0.02 * torch.rand(3, size, size, generator=gen)).clamp(0, 1)


# --- the Matting Laplacian -----------------------------------------------------------------------------


@pytest.mark.parametrize("image", [torch.rand(3, 9, 13, generator=torch.Generator().manual_seed(0)), two_tone()],
                         ids=["noise", "edge"])
def test_matting_laplacian_equals_the_dense_definition(image):
    lap = P.matting_laplacian(image, dtype=torch.float64)
    assert lap.layout == torch.sparse_csr and lap.shape == (image[0].numel(),) * 2
    assert torch.allclose(lap.to_dense(), dense_matting_laplacian(image), rtol=0, atol=1e-6)
    # the float32 matrix the loss uses holds the same values, rounded
    assert torch.allclose(P.matting_laplacian(image).to_dense().double(), lap.to_dense(), rtol=1e-5, atol=1e-4)


def test_matting_laplacian_rows_sum_to_zero_and_it_is_symmetric():
    lap = P.matting_laplacian(smooth_image(3, 24)[0], dtype=torch.float64).to_dense()
    assert lap.abs().max() > 1  # not trivially zero
    assert lap.sum(1).abs().max() < 1e-8
    assert torch.allclose(lap, lap.t(), atol=1e-8)
    assert (lap != 0).sum(1).max() <= 25  # a pixel shares 3x3 windows with its 5x5 neighbourhood only


def test_locally_affine_recolouring_has_near_zero_energy_and_noise_does_not():
    content = smooth_image(4, 32)
    lap = P.matting_laplacian(content)
    # a different affine colour map on each half: still locally affine, except where the halves meet
    a = torch.tensor([[0.5, 0.3, 0.1], [0.0, 0.8, 0.1], [0.2, 0.2, 0.4]])
    b = torch.tensor([[0.9, -0.2, 0.0], [0.1, 0.3, 0.3], [0.0, 0.1, 1.0]])
    recoloured = torch.einsum("dc,bchw->bdhw", a, content) + 0.1
    recoloured[..., 16:] = torch.einsum("dc,bchw->bdhw", b, content[..., 16:])
    global_affine = torch.einsum("dc,bchw->bdhw", a, content) + 0.1
    noise = torch.rand(content.shape, generator=torch.Generator().manual_seed(5))
    e_noise = float(P.affine_energy(noise, lap))
    assert float(P.affine_energy(global_affine, lap)) < 1e-4 * e_noise
    assert float(P.affine_energy(recoloured, lap)) < 0.05 * e_noise  # the seam costs a little
    assert float(P.affine_energy(content, lap)) < 1e-4 * e_noise


def test_photorealism_loss_gradient_is_2_lambda_L_V():
    content = two_tone(8)
    lap = P.matting_laplacian(content, dtype=torch.float64)
    v = torch.rand(1, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: P.affine_energy(x, lap), (v,))
    loss = P.PhotorealismLoss(content, weight=3.0)
    x = v.detach().float().requires_grad_(True)
    loss(x).backward()
    expected = 3.0 * (P.matting_laplacian(content) @ x.detach()[0].reshape(3, -1).t()).t().reshape(1, 3, 8, 8)
    assert torch.allclose(x.grad, expected, atol=1e-4)


# --- closed-form smoothing -----------------------------------------------------------------------------


def test_smoothing_keeps_a_locally_affine_image_and_removes_noise():
    content = smooth_image(6, 32)
    target = torch.einsum("dc,bchw->bdhw", torch.tensor([[0.6, 0.2, 0.1], [0.1, 0.5, 0.1], [0.3, 0.1, 0.2]]),
                          content) + 0.1
    assert torch.allclose(P.smooth(target, content), target, atol=2e-3)  # already photographic: unchanged
    noisy = (target + 0.1 * torch.randn(target.shape, generator=torch.Generator().manual_seed(7))).clamp(0, 1)
    smoothed = P.smooth(noisy, content)
    assert (smoothed - target).abs().mean() < 0.5 * (noisy - target).abs().mean()


def test_smooth_command_writes_a_photographic_image(tmp_path):
    content = write_image(tmp_path / "content.png", size=(24, 16), seed=1)
    stylized = write_image(tmp_path / "stylized.png", size=(48, 32), seed=2)
    out = tmp_path / "out.png"
    result = runner.invoke(app, ["smooth", str(stylized), str(content), str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (48, 32)
    result = runner.invoke(app, ["smooth", str(stylized), str(content), str(stylized), "--device", "cpu"])
    assert result.exit_code != 0 and "choose another output" in result.output
    result = runner.invoke(app, ["smooth", str(tmp_path / "nope.png"), str(content), str(out)])
    assert result.exit_code != 0 and "does not exist" in result.output


# --- histogram loss ------------------------------------------------------------------------------------


def one_style(values: torch.Tensor) -> H.Histogram:
    """The histogram of ``[C, N]`` style values alone."""
    return H.style_histogram([values], [1.0])


def test_histogram_loss_is_zero_for_identical_features_and_positive_otherwise():
    gen = torch.Generator().manual_seed(0)
    feats = torch.rand(1, 4, 6, 5, generator=gen)
    style = one_style(feats[0].reshape(4, -1))
    different = float(H.histogram_loss(torch.rand(1, 4, 6, 5, generator=gen), style))
    assert different > 0
    assert float(H.histogram_loss(feats * 2, style)) > 0
    # identical features: both CDFs are the same piecewise-linear function, the remap is the identity
    assert float(H.histogram_loss(feats, style)) < 1e-6 * different
    # a permutation of the values within each channel has the same histogram: still zero
    shuffled = feats.reshape(1, 4, -1)[..., torch.randperm(30, generator=gen)].reshape(1, 4, 6, 5)
    assert float(H.histogram_loss(shuffled, style)) < 1e-6 * different
    # through the module, with a constant (dead ReLU) channel among them
    feats[0, 1] = 0
    loss = H.HistogramLoss([{"conv1_1": feats}], [1.0])
    assert float(loss({"conv1_1": feats})) < 1e-6 * different


def test_histogram_loss_gradient_is_the_papers_and_checks_numerically():
    gen = torch.Generator().manual_seed(1)
    feats = torch.rand(1, 3, 4, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    style = one_style(torch.randn(3, 16, dtype=torch.float64, generator=gen))
    H.histogram_loss(feats, style).backward()
    f = feats.detach()[0].reshape(3, -1)
    expected = 2 * (f - H.remap(f, style)) / f.numel()
    assert torch.allclose(feats.grad[0].reshape(3, -1), expected)
    # the remap is detached (a fixed target for the step, as in the paper): numerically, the loss's
    # gradient is that of the distance to that target
    target = H.remap(f, style)
    assert torch.autograd.gradcheck(lambda x: torch.nn.functional.mse_loss(H.channels(x), target), (feats,))


def test_histogram_loss_of_diverged_features_is_not_finite_and_not_an_error():
    # L-BFGS can diverge; the optimiser's non-finite check must see it, not an out-of-range index
    gen = torch.Generator().manual_seed(4)
    style = one_style(torch.rand(3, 64, generator=gen))
    for bad in (float("nan"), float("inf"), -float("inf")):
        feats = torch.rand(1, 3, 8, 8, generator=gen)
        feats[0, 1, 2, 3] = bad
        assert not torch.isfinite(H.histogram_loss(feats, style))


def test_scratch_buffers_give_the_same_remap_and_loss_as_fresh_ones():
    gen = torch.Generator().manual_seed(5)
    styles = {"big": torch.randn(1, 4, 40, 40, generator=gen), "small": torch.rand(1, 8, 10, 10, generator=gen)}
    loss = H.HistogramLoss([styles], [1.0])
    for _ in range(2):  # the second call reuses the buffers of the first
        feats = {k: torch.rand_like(v).contiguous(memory_format=torch.channels_last).requires_grad_(True)
                 for k, v in styles.items()}
        total = loss(feats)
        total.backward()
        for name, f in feats.items():
            plain = f.detach().clone().requires_grad_(True)
            expected = H.histogram_loss(plain, loss.targets[name]) / loss.units[name]  # relative (vgg.py)
            expected.backward()
            assert torch.equal(f.grad, plain.grad)
        assert torch.allclose(total, sum(H.histogram_loss(f.detach(), loss.targets[k]) / loss.units[k]
                                         for k, f in feats.items()))


def test_remap_moves_a_channel_onto_the_style_histogram_within_its_range():
    gen = torch.Generator().manual_seed(2)
    style_values = torch.randn(3, 20000, generator=gen) * 2 + 3
    out = H.remap(torch.rand(3, 20000, generator=gen), one_style(style_values))  # uniform → Gaussian
    assert torch.allclose(out.mean(1), style_values.mean(1), rtol=0.01)
    assert torch.allclose(out.std(1), style_values.std(1), rtol=0.01)
    assert out.min() >= style_values.min() - 1e-5 and out.max() <= style_values.max() + 1e-5
    # monotone: the order of the output's values is kept
    x = torch.linspace(-50, 50, 1000).repeat(3, 1)
    y = H.remap(x, one_style(style_values))
    assert bool((y[:, 1:] >= y[:, :-1]).all())
    # far outside the style's range: the extremes go to the style's, nothing lands outside it
    assert torch.allclose(y[:, 0], style_values.amin(1)) and torch.allclose(y[:, -1], style_values.amax(1))


def test_histogram_loss_mixes_several_styles_by_their_weights():
    gen = torch.Generator().manual_seed(3)
    low = {"conv1_1": torch.randn(1, 2, 100, 100, generator=gen)}  # around 0
    high = {"conv1_1": torch.randn(1, 2, 50, 50, generator=gen) + 10}  # around 10, a smaller image
    loss = H.HistogramLoss([low, high], [3.0, 1.0])
    out = H.remap(torch.rand(2, 30000, generator=gen), loss.targets["conv1_1"])
    high_share = (out > 5).double().mean(1)
    assert torch.allclose(high_share, torch.full_like(high_share, 0.25), atol=0.01)
    # a style of weight 0 does not count, not even its range
    only_low = H.HistogramLoss([low, high], [1.0, 0.0]).targets["conv1_1"]
    assert float(H.remap(torch.rand(2, 1000, generator=gen), only_low).max()) < 6


# --- masks ---------------------------------------------------------------------------------------------


def halves_mask(path: Path, size, left=(0, 0, 255), right=(255, 0, 0)) -> Path:
    w, h = size
    arr = np.zeros((h, w, 3), np.uint8)
    arr[:, : w // 2] = left
    arr[:, w // 2:] = right
    Image.fromarray(arr).save(path)
    return path


def test_masks_are_read_by_colour_resized_nearest_and_paired(tmp_path, caplog):
    content = halves_mask(tmp_path / "c.png", (20, 10), left=(0, 0, 255), right=(0, 255, 0))
    style = halves_mask(tmp_path / "s.png", (8, 8), left=(0, 255, 0), right=(255, 255, 255))
    c = M.load_mask(content, (10, 5), "--content-mask")  # resized (nearest): still two flat colours
    s = M.load_mask(style, (16, 16), "--style-mask")
    assert c[0].shape == (5, 10) and sorted(c[1]) == [(0, 0, 255), (0, 255, 0)]
    with caplog.at_level(logging.WARNING):
        c_masks, s_masks = M.pair_regions(c, s)
    assert "#0000ff matches no region of the style mask" in caplog.text
    assert "#ffffff matches no region of the content mask" in caplog.text
    green = c[1].index((0, 255, 0))
    assert c_masks[green, :, 5:].all() and not c_masks[green, :, :5].any()
    assert s_masks[green, :, :8].all() and not s_masks[green, :, 8:].any()
    assert not s_masks[c[1].index((0, 0, 255))].any()  # no style region: follows the whole style


def test_a_photo_is_not_taken_for_a_mask(tmp_path):
    photo = write_image(tmp_path / "photo.png", size=(32, 32))
    with pytest.raises(UserError, match="not a colour-coded mask"):
        M.load_mask(photo, (32, 32), "--content-mask")
    with pytest.raises(UserError, match="does not exist"):
        M.load_mask(tmp_path / "nope.png", (32, 32), "--content-mask")


def test_masked_gram_of_a_full_mask_is_the_gram_matrix():
    feats = torch.rand(1, 4, 6, 6)
    assert torch.allclose(M.masked_gram(feats, torch.ones(6, 6)), vgg.gram_matrix(feats)[0])
    half = torch.zeros(6, 6)
    half[:, :3] = 1
    assert torch.allclose(M.masked_gram(feats, half), vgg.gram_matrix(feats[..., :3])[0])  # not shrunk by area


def test_masks_style_each_half_toward_its_own_region(tmp_path):
    size = 64
    weights = shared_path("weights", "vgg19_features.pth")  # a random VGG carries no colour: the real one
    photo = Image.open(shared_path(*YOSEMITE, "testA", "inputA_0_60.jpg")).convert("RGB").resize((size, size))
    # the reference: the same photo tinted red on the left, blue on the right
    arr = np.asarray(photo).astype(np.float32) / 255
    tinted = arr.copy()
    tinted[:, : size // 2] = tinted[:, : size // 2] * [1.0, 0.2, 0.2] + [0.3, 0, 0]
    tinted[:, size // 2:] = tinted[:, size // 2:] * [0.2, 0.2, 1.0] + [0, 0, 0.3]
    style = tmp_path / "style.png"
    Image.fromarray((tinted.clip(0, 1) * 255).astype(np.uint8)).save(style)
    content = tmp_path / "content.png"
    photo.save(content)
    # crossed over: the content's left half is the style's (blue) right region, and the other way round
    style_mask = halves_mask(tmp_path / "sm.png", (size, size), left=(255, 0, 0), right=(0, 0, 255))
    content_mask = halves_mask(tmp_path / "cm.png", (size, size), left=(0, 0, 255), right=(255, 0, 0))
    cfg = StylizeConfig(content=str(content), styles=[str(style)], output=str(tmp_path / "out.png"), size=size,
                        steps=40, vgg_weights=str(weights), device="cpu", content_mask=str(content_mask),
                        style_mask=str(style_mask), style_layers=["conv1_1", "conv2_1", "conv3_1"],
                        style_weight=10.0)  # the colours of the regions, no more of the photo than needed
    image, _, _ = gatys.Stylizer(cfg, torch.device("cpu"))(photo)
    out = np.asarray(image).astype(np.float32)
    left, right = out[:, : size // 2].mean((0, 1)), out[:, size // 2:].mean((0, 1))
    assert left[2] - left[0] > 20  # bluer than red: its region's colour
    assert right[0] - right[2] > 20


# --- --photoreal ----------------------------------------------------------------------------------------


def gradient_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM (global, one window) of the luminance gradient magnitudes of two RGB images."""
    def grad(img):
        y = img.astype(np.float64) @ np.array(images.LUMA)
        gy, gx = np.gradient(y)
        return np.hypot(gx, gy)

    x, y = grad(a), grad(b)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    cov = ((x - x.mean()) * (y - y.mean())).mean()
    means = (2 * x.mean() * y.mean() + c1) / (x.mean() ** 2 + y.mean() ** 2 + c1)
    return means * (2 * cov + c2) / (x.var() + y.var() + c2)


@pytest.mark.slow
def test_photoreal_keeps_the_content_edges_and_takes_the_reference_colours(tmp_path):
    weights = shared_path("weights", "vgg19_features.pth")
    content = Image.open(shared_path(*YOSEMITE, "testA", "inputA_0_60.jpg")).convert("RGB").resize((128, 128))
    ref = shared_path(*YOSEMITE, "testB", "inputB_0_60.jpg")  # a dusk-lit winter cliff
    outs = {}
    for photoreal in (False, True):
        cfg = StylizeConfig(content="", styles=[str(ref)], output="", size=128, steps=60, vgg_weights=str(weights),
                            device="cpu", photoreal=photoreal)
        outs[photoreal] = np.asarray(gatys.Stylizer(cfg, torch.device("cpu"))(content)[0])
    c = np.asarray(content)
    assert gradient_ssim(outs[True], c) > gradient_ssim(outs[False], c) + 0.1
    # colours: each channel's share of the mean colour (chromaticity, free of the brightness)
    def shares(img):
        mean = np.asarray(img, np.float64).reshape(-1, 3).mean(0)
        return mean / mean.sum()

    reference = shares(Image.open(ref).convert("RGB"))
    assert np.abs(shares(outs[True]) - reference).sum() < 0.85 * np.abs(shares(c) - reference).sum()


def test_photoreal_adds_the_regulariser(tmp_path):
    torch.manual_seed(0)
    style = write_image(tmp_path / "style.png", size=(32, 32), seed=1)
    cfg = StylizeConfig(content="", styles=[str(style)], output="", size=32, steps=3, device="cpu", photoreal=True,
                        histogram_weight=1.0, photoreal_weight=1e4)
    stylizer = gatys.Stylizer(cfg, torch.device("cpu"), features=tiny_extractor().net)
    seen = []
    content = Image.open(write_image(tmp_path / "c.png", seed=2))
    image, start, end = stylizer(content, seen.append)
    assert len(seen) == 3 and {"photoreal", "histogram"} <= set(start)
    # it starts from the content, which is locally affine in itself: a small term next to noise's
    regularizer = P.PhotorealismLoss(images.to_tensor(content), 1e4)
    assert start["photoreal"] == pytest.approx(float(regularizer(images.to_tensor(content))), rel=1e-4)
    assert start["photoreal"] < 1e-3 * float(regularizer(torch.rand(1, 3, 32, 32)))


# --- options and automatic masks -----------------------------------------------------------------------


@pytest.mark.parametrize("changes, message", [
    ({"content_mask": "c.png"}, "go together"),
    ({"auto_masks": True, "content_mask": "c.png", "style_mask": "s.png"}, "not both"),
    ({"auto_masks": True, "styles": ["a.png", "b.png"]}, "one style image"),
    ({"method": "adain", "photoreal": True}, "--photoreal"),
    ({"method": "adain", "histogram_weight": 1.0}, "--histogram-weight"),
    ({"histogram_weight": -1.0}, "--histogram-weight"),
])
def test_bad_guided_options_are_refused_before_any_work(changes, message):
    with pytest.raises(UserError, match=message):
        validate(StylizeConfig(**{"styles": ["a.png"], **changes}))


def test_stylize_command_takes_masks(tmp_path):
    weights = random_vgg_file(tmp_path / "vgg.pth", 30)
    content = write_image(tmp_path / "content.png", size=(32, 32), seed=1)
    style = write_image(tmp_path / "style.png", size=(32, 32), seed=2)
    cm = halves_mask(tmp_path / "cm.png", (16, 16))  # another size than the content: resized
    sm = halves_mask(tmp_path / "sm.png", (32, 32))
    out = tmp_path / "out.png"
    result = runner.invoke(app, ["stylize", str(content), str(style), str(out), "--size", "32", "--steps", "2",
                                 "--vgg-weights", str(weights), "--device", "cpu", "--content-mask", str(cm),
                                 "--style-mask", str(sm), "--histogram-weight", "1", "--photoreal"])
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (32, 32)


def test_auto_masks_label_regions_with_a_deeplabv3_file(tmp_path, monkeypatch):
    from torchvision.models.segmentation import deeplabv3_mobilenet_v3_large

    torch.manual_seed(0)
    net = deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21, aux_loss=True)
    weights = tmp_path / "seg.pth"
    torch.save(net.state_dict(), weights)
    segmenter = M.load_segmenter(weights)
    index, colors = M.auto_mask(segmenter, Image.open(write_image(tmp_path / "a.png", size=(40, 24))))
    assert index.shape == (24, 40) and 1 <= len(colors) <= len(M.COARSE)
    assert set(colors) <= set(M.COARSE_COLORS.values()) and int(index.max()) == len(colors) - 1
    assert M.coarse_lookup()[M.VOC_CLASSES.index("cat")] == list(M.COARSE).index("animal")

    # the whole run, with a segmenter that marks the left half a person and the right half background
    class Halves(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            logits = torch.zeros(1, 21, *x.shape[-2:])
            logits[:, M.VOC_CLASSES.index("person"), :, : x.shape[-1] // 2] = 1
            return {"out": logits}

    monkeypatch.setattr(M, "load_segmenter", lambda weights, device="cpu": Halves())
    style = write_image(tmp_path / "style.png", size=(32, 32), seed=2)
    cfg = StylizeConfig(content="", styles=[str(style)], output="", size=32, steps=2, device="cpu", auto_masks=True)
    stylizer = gatys.Stylizer(cfg, torch.device("cpu"), features=tiny_extractor().net)
    assert sorted(stylizer.style_mask[1]) == [(0, 0, 0), (255, 0, 0)]
    image, start, _ = stylizer(Image.open(write_image(tmp_path / "c.png", seed=3)))
    assert image.size == (32, 32) and start["style"] > 0


def test_images_above_the_pixel_limit_are_refused_before_decoding(tmp_path, monkeypatch):
    """A 97 KB PNG of 100 megapixels given as a mask or to `smooth` was decoded in full, then failed with a
    traceback allocating gigabytes: the style commands refuse such images from their header."""
    big = write_image(tmp_path / "big.png", size=(40, 40), seed=1)  # over the limit set below, under twice it
    small = write_image(tmp_path / "small.png", size=(16, 16), seed=2)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    monkeypatch.setattr(Image.Image, "load", lambda self: pytest.fail("decoded"))
    with pytest.raises(UserError, match=r"--content-mask '.*big.png' is too large: 40×40 pixels .* scale it down"):
        M.load_mask(big, None, "--content-mask")
    monkeypatch.undo()
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    result = runner.invoke(app, ["smooth", str(big), str(small), str(tmp_path / "out.png"), "--device", "cpu"])
    assert result.exit_code == 2 and "scale it down" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out.png").exists()


def test_seg_weights_that_are_not_deeplabv3_are_refused(tmp_path):
    """Any PyTorch file passed as --seg-weights loaded with strict=False: DeepLabV3 then ran on random
    weights, silently. The VGG19 file and a generator are refused, naming what does not fit."""
    torch.save(vgg.vgg19_features(widths=(4, 8, 8, 8, 8)).state_dict(), tmp_path / "vgg.pth")
    from cyclegan.models import GeneratorSpec, build_generator

    torch.save(build_generator(GeneratorSpec(ngf=4, n_blocks=1)).state_dict(), tmp_path / "generator.pth")
    for name in ("vgg.pth", "generator.pth"):
        with pytest.raises(UserError, match=f"--seg-weights .*{name}' is not torchvision's DeepLabV3 .* lacks"):
            M.load_segmenter(tmp_path / name)
