"""Gatys style transfer: Gram matrices, relative losses, optimisation, colour preservation, the CLI."""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from typer.testing import CliRunner

from cyclegan import download
from cyclegan.cli import app
from cyclegan.config import StylizeConfig
from cyclegan.data import load_image
from cyclegan.errors import UserError
from cyclegan.style import gatys, images, vgg
from tests.conftest import make_folder, shared_path, write_image
from tests.fileserver import FileServer

runner = CliRunner()
TINY_WIDTHS = (4, 8, 8, 8, 8)  # a VGG19-shaped net small enough for exhaustive CPU tests
STYLE_LAYERS = ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]


def tiny_extractor(seed: int = 0) -> vgg.VGGFeatures:
    torch.manual_seed(seed)
    return vgg.VGGFeatures(vgg.vgg19_features(widths=TINY_WIDTHS), ["conv4_2", *STYLE_LAYERS])


def smooth_image(seed: int, size: int = 32) -> torch.Tensor:
    """A [1, 3, size, size] image in [0, 1] with structure at several scales (not white noise)."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, size // 8, size // 8, generator=gen)
    fine = torch.rand(1, 3, size, size, generator=gen)
    return (0.7 * nn.functional.interpolate(coarse, size=(size, size), mode="bilinear") + 0.3 * fine).clamp(0, 1)


def random_vgg_file(path: Path, depth: int) -> Path:
    """Random VGG19 features weights in torchvision's layout and float16, for the first ``depth`` layers."""
    torch.manual_seed(0)
    state = {f"features.{k}": v.half() for k, v in vgg.vgg19_features()[:depth].state_dict().items()}
    torch.save(state, path)
    return path


# --- building blocks ------------------------------------------------------------------------------------


def test_gram_matrix_matches_hand_computation():
    # two channels over a 2x2 map: f0 = (1, 2, 3, 4), f1 = (0, 1, 0, 1)
    feats = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [0.0, 1.0]]]])
    # f0·f0 = 30, f0·f1 = 6, f1·f1 = 2, each divided by C·H·W = 8
    expected = torch.tensor([[[30.0, 6.0], [6.0, 2.0]]]) / 8
    assert torch.allclose(vgg.gram_matrix(feats), expected)
    # each image of a batch gets its own Gram matrix
    batch = torch.cat([feats, 2 * feats])
    assert torch.allclose(vgg.gram_matrix(batch), torch.cat([expected, 4 * expected]))


def test_layer_names_point_at_torchvision_vgg19_layers():
    net = vgg.vgg19_features()
    assert len(net) == 37  # torchvision's vgg19().features
    for name, i in vgg.LAYER_INDEX.items():
        if name.startswith("conv"):  # the rectified output of the named convolution
            assert isinstance(net[i], nn.ReLU) and isinstance(net[i - 1], nn.Conv2d)
        else:
            assert isinstance(net[i], nn.MaxPool2d)
    assert (vgg.LAYER_INDEX["conv1_1"], vgg.LAYER_INDEX["conv4_2"], vgg.LAYER_INDEX["conv5_1"]) == (1, 22, 29)
    assert sum(isinstance(m, nn.Conv2d) for m in net) == 16
    avg = vgg.vgg19_features("avg")
    assert not any(isinstance(m, nn.MaxPool2d) for m in avg)
    assert sum(isinstance(m, nn.AvgPool2d) for m in avg) == 5


def test_extractor_is_frozen_and_truncated():
    ex = vgg.VGGFeatures(vgg.vgg19_features(widths=TINY_WIDTHS), ["conv1_1", "conv2_1"])
    assert len(ex.net) == vgg.LAYER_INDEX["conv2_1"] + 1
    assert not any(p.requires_grad for p in ex.parameters())
    feats = ex(torch.rand(1, 3, 16, 16))
    assert set(feats) == {"conv1_1", "conv2_1"}
    assert feats["conv2_1"].shape == (1, 8, 8, 8)
    grey = torch.rand(1, 1, 16, 16)  # luminance images are seen as grey RGB
    assert torch.allclose(ex(grey)["conv2_1"], ex(grey.expand(-1, 3, -1, -1))["conv2_1"])


@pytest.mark.parametrize("term", ["content", "style", "tv"])
def test_a_gradient_step_lowers_each_loss_term(term):
    ex = tiny_extractor()
    content, style = smooth_image(1), smooth_image(2)
    grams = gatys.style_targets(ex, [style], [1.0], STYLE_LAYERS)
    weights = {"content_weight": 0.0, "style_weight": 0.0, "tv_weight": 0.0, f"{term}_weight": 1.0}
    objective = gatys.Objective(ex, content, grams, ["conv4_2"], **weights)
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(3)).requires_grad_(True)
    losses = objective(x)
    assert losses[term] > 0
    for other in {"content", "style", "tv"} - {term}:
        assert losses[other] == 0  # the weights switch terms off
    losses[term].backward()
    with torch.no_grad():
        step = x - 1e-3 * x.grad / x.grad.abs().max()
        after = objective(step)[term]
    assert after < losses[term]


def test_style_blend_targets_are_the_weighted_mean_of_grams():
    ex = tiny_extractor()
    a, b = smooth_image(1), smooth_image(2, size=48)  # style images need not share a size
    ga, gb = (gatys.style_targets(ex, [s], [1.0], STYLE_LAYERS) for s in (a, b))
    blended = gatys.style_targets(ex, [a, b], [3.0, 1.0], STYLE_LAYERS)  # weights are normalised
    for name in STYLE_LAYERS:
        assert torch.allclose(blended[name], 0.75 * ga[name] + 0.25 * gb[name], atol=1e-7)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_optimize_runs_the_steps_and_lowers_the_loss(optimizer):
    ex = tiny_extractor()
    content, style = smooth_image(1), smooth_image(2)
    grams = gatys.style_targets(ex, [style], [1.0], STYLE_LAYERS)
    objective = gatys.Objective(ex, content, grams, ["conv4_2"], style_weight=1e3, tv_weight=1.0)
    seen = []
    out, start, end = gatys.optimize(objective, content, steps=15, optimizer=optimizer, lr=0.02, on_step=seen.append)
    assert len(seen) == 15  # one progress update per loss evaluation
    assert seen[0] == start
    assert end["total"] < start["total"]
    assert out.shape == content.shape and out.min() >= 0 and out.max() <= 1


def test_preserve_color_keeps_content_chroma_and_stylized_luminance():
    h = w = 24
    yy, xx = np.mgrid[0:h, 0:w]
    # content: moderate colours (a hue gradient); stylised: a grey texture of mid luminance
    content = np.stack([100 + 3 * xx, 120 + 2 * yy, 140 - 2 * xx], axis=-1).astype(np.uint8)
    texture = (128 + 50 * np.sin(xx / 2.0) * np.cos(yy / 3.0)).astype(np.uint8)
    stylized = Image.fromarray(np.stack([texture] * 3, axis=-1))
    content_img = Image.fromarray(content).resize((2 * w, 2 * h))  # a different size gets resized
    out = images.preserve_color(stylized, content_img)
    assert out.size == stylized.size and out.mode == "RGB"
    out_ycc = np.asarray(out.convert("YCbCr"), dtype=float)
    content_ycc = np.asarray(content_img.resize((w, h), Image.Resampling.LANCZOS).convert("YCbCr"), dtype=float)
    assert np.abs(out_ycc[..., 0] - texture).max() <= 2  # luminance from the stylised image
    assert np.abs(out_ycc[..., 1:] - content_ycc[..., 1:]).max() <= 3  # colour from the content


# --- command line ---------------------------------------------------------------------------------------


def test_folder_mode_mirrors_skips_and_reports_failures(tmp_path, monkeypatch):
    weights = random_vgg_file(tmp_path / "vgg.pth", depth=vgg.LAYER_INDEX["conv2_1"] + 1)
    content = make_folder(tmp_path / "photos", 2, size=(48, 32))
    write_image(content / "sub" / "deep.jpg", size=(20, 40), seed=7)
    (content / "broken.png").write_bytes(b"not an image")
    s1 = write_image(tmp_path / "style1.png", size=(40, 40), seed=10)
    s2 = write_image(tmp_path / "style2.jpg", size=(30, 50), seed=11)
    out = tmp_path / "out"
    calls = []
    real_targets = gatys.style_targets
    monkeypatch.setattr(gatys, "style_targets", lambda *a, **k: calls.append(1) or real_targets(*a, **k))
    args = ["stylize", str(content), str(s1), str(s2), str(out), "--vgg-weights", str(weights),
            "--content-layers", "conv2_1", "--style-layers", "conv1_1,conv2_1", "--size", "32", "--steps", "3",
            "--style-blend", "0.7,0.3", "--device", "cpu"]  # fmt: skip

    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output  # one input failed
    assert "broken.png" in result.output
    assert calls == [1]  # style targets computed once for the folder
    expected = {"img_000.png": (32, 21), "img_001.png": (32, 21), "sub/deep.jpg": (16, 32)}  # long side 32
    written = {p.relative_to(out).as_posix(): Image.open(p).size for p in out.rglob("*") if p.is_file()}
    assert written == expected

    mtime = (out / "img_000.png").stat().st_mtime_ns
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert (out / "img_000.png").stat().st_mtime_ns == mtime  # existing outputs are skipped
    assert "skipped" in result.output

    (content / "broken.png").unlink()
    result = runner.invoke(app, [*args, "--overwrite"])
    assert result.exit_code == 0, result.output
    assert (out / "img_000.png").stat().st_mtime_ns != mtime


def test_single_image_with_adam_noise_init_and_recolor(tmp_path):
    weights = random_vgg_file(tmp_path / "vgg.pth", depth=vgg.LAYER_INDEX["conv2_1"] + 1)
    photo = write_image(tmp_path / "photo.jpg", size=(40, 24), seed=1)
    style = write_image(tmp_path / "style.png", size=(24, 24), seed=2)
    out = tmp_path / "result" / "out.png"
    result = runner.invoke(app, ["stylize", str(photo), str(style), str(out), "--vgg-weights", str(weights),
                                 "--content-layers", "conv2_1", "--style-layers", "conv1_1", "--size", "20",
                                 "--steps", "2", "--optimizer", "adam", "--init", "noise"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (20, 12)

    recolored = tmp_path / "recolored.png"
    result = runner.invoke(app, ["recolor", str(out), str(photo), str(recolored)])
    assert result.exit_code == 0, result.output
    expected = images.preserve_color(load_image(out)[0], load_image(photo)[0])
    assert np.array_equal(np.asarray(Image.open(recolored)), np.asarray(expected))


def test_missing_default_weights_fail_at_once_naming_the_option(tmp_path, monkeypatch):
    calls = []

    def offline(url, dest, **kwargs):
        calls.append(url)
        raise UserError(f"could not download {url} (no route to host) after 2 attempts")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    monkeypatch.setattr(download, "download", offline)
    photo = write_image(tmp_path / "photo.png", seed=1)
    style = write_image(tmp_path / "style.png", seed=2)
    result = runner.invoke(app, ["stylize", str(photo), str(style), str(tmp_path / "out.png"), "--device", "cpu"])
    assert result.exit_code == 2
    assert "--vgg-weights" in result.output and "no route to host" in result.output
    assert "Traceback" not in result.output
    assert calls == [vgg.VGG19_URL]
    assert not (tmp_path / "out.png").exists()


def test_default_weights_download_once_into_the_torch_cache(tmp_path, monkeypatch):
    layers = ["conv1_1", "conv2_1"]
    served = random_vgg_file(tmp_path / "vgg.pth", depth=vgg.LAYER_INDEX["conv2_1"] + 1)
    sha = hashlib.sha256(served.read_bytes()).hexdigest()
    good, bad = f"vgg19-{sha[:8]}.pth", "vgg19-00000000.pth"  # torchvision's NAME-<SHA-256 prefix> naming
    (tmp_path / "served").mkdir()
    for name in (good, bad):
        shutil.copy(served, tmp_path / "served" / name)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    with FileServer(tmp_path / "served") as server:
        monkeypatch.setattr(vgg, "VGG19_URL", f"{server.url}/{bad}")
        with pytest.raises(UserError, match="damaged"):
            vgg.load_vgg19(None, layers)
        assert not vgg.default_vgg19_path().exists()  # a damaged file is not kept

        monkeypatch.setattr(vgg, "VGG19_URL", f"{server.url}/{good}")
        net = vgg.load_vgg19(None, layers)
        assert vgg.default_vgg19_path() == tmp_path / "torch_home" / "hub" / "checkpoints" / good
        vgg.load_vgg19(None, layers)  # the second use reads the cache
        assert [path for path, _ in server.requests] == [bad, good]
    expected = torch.load(served, weights_only=True)["features.5.weight"].float()
    assert torch.equal(net[5].weight, expected)


def test_bad_weights_and_options_give_clear_errors(tmp_path):
    photo = write_image(tmp_path / "photo.png", seed=1)
    style = write_image(tmp_path / "style.png", seed=2)
    partial = random_vgg_file(tmp_path / "vgg.pth", depth=7)  # up to conv2_1 only
    base = ["stylize", str(photo), str(style), str(tmp_path / "out.png"), "--device", "cpu"]
    cases = {
        "does not exist": ["--vgg-weights", str(tmp_path / "nope.pth")],
        "features.10.weight": ["--vgg-weights", str(partial)],  # default layers need deeper weights
        "--style-blend has 2 weights": ["--vgg-weights", str(partial), "--style-blend", "1,2"],
        "unknown layer": ["--vgg-weights", str(partial), "--style-layers", "conv9_1"],
    }
    for message, extra in cases.items():
        result = runner.invoke(app, [*base, *extra])
        assert result.exit_code == 2, (extra, result.output)
        assert message in result.output, (extra, result.output)
    result = runner.invoke(app, ["stylize", str(photo), str(tmp_path / "out.png")])
    assert result.exit_code == 2 and "at least one STYLE" in result.output


# --- with the real VGG19 weights from ../shared ---------------------------------------------------------


@pytest.fixture(scope="module")
def real_vgg():
    path = shared_path("weights", "vgg19_features.pth")
    return vgg.load_vgg19(path, ["conv4_2", *STYLE_LAYERS])


@pytest.fixture(scope="module")
def photo_and_painting():
    photo = shared_path("datasets", "monet2photo_mini", "testB", "2014-09-14 14_27_52.jpg")
    painting = shared_path("datasets", "monet2photo_mini", "trainA", "00010.jpg")
    return photo, painting


@pytest.mark.slow
def test_real_vgg_lowers_style_loss_and_keeps_content(real_vgg, photo_and_painting):
    photo, painting = photo_and_painting
    cfg = StylizeConfig(content=str(photo), styles=[str(painting)], size=128, steps=60)
    stylizer = gatys.Stylizer(cfg, torch.device("cpu"), features=real_vgg)
    image, start, end = stylizer(load_image(photo)[0])
    assert image.size == (128, 128)
    assert start["content"] == 0  # started from the photo itself
    assert end["style"] < 0.5 * start["style"]
    # Content stays bounded: the result is still nearer the photo, in VGG content features, than the
    # painting itself is.
    content = images.to_tensor(images.resize_long_side(load_image(photo)[0], 128))
    painting_t = images.to_tensor(images.resize_long_side(load_image(painting)[0], 128))
    objective = gatys.Objective(stylizer.extractor, content, stylizer.grams, cfg.content_layers)
    with torch.no_grad():
        painting_content = float(objective(painting_t)["content"])
    assert 0 < end["content"] < painting_content


@pytest.mark.slow
def test_real_vgg_preserve_color_keeps_mean_chroma(real_vgg, photo_and_painting):
    photo, painting = photo_and_painting
    cfg = StylizeConfig(content=str(photo), styles=[str(painting)], size=128, steps=10, preserve_color=True)
    stylizer = gatys.Stylizer(cfg, torch.device("cpu"), features=real_vgg)
    image, start, end = stylizer(load_image(photo)[0])
    assert end["style"] < start["style"]
    out = np.asarray(image.convert("YCbCr"), dtype=float)
    ref = np.asarray(images.resize_long_side(load_image(photo)[0], 128).convert("YCbCr"), dtype=float)
    assert np.abs(out[..., 0] - ref[..., 0]).mean() > 2  # the luminance did change
    assert np.abs(out[..., 1:].mean((0, 1)) - ref[..., 1:].mean((0, 1))).max() < 1.5  # the colour did not


# --- stylize and recolor outputs: never over an input; a full disk stops the run ---------------------------


def _stylize_args(tmp_path, content, output, *extra):
    weights = random_vgg_file(tmp_path / "vgg.pth", depth=vgg.LAYER_INDEX["conv2_1"] + 1)
    style = write_image(tmp_path / "style.png", size=(24, 24), seed=2)
    return ["stylize", str(content), str(style), str(output), "--vgg-weights", str(weights),
            "--content-layers", "conv2_1", "--style-layers", "conv1_1", "--size", "16", "--steps", "1",
            "--device", "cpu", *extra]  # fmt: skip


def test_stylize_never_writes_over_its_content(tmp_path):
    photo = write_image(tmp_path / "photo.png", size=(24, 24), seed=1)
    before = photo.read_bytes()
    result = runner.invoke(app, _stylize_args(tmp_path, photo, photo, "--overwrite"))
    assert result.exit_code == 2 and "would overwrite its input" in result.output
    assert photo.read_bytes() == before
    folder = make_folder(tmp_path / "photos", 2)
    result = runner.invoke(app, _stylize_args(tmp_path, folder, folder))
    assert result.exit_code == 2 and "is the content folder" in result.output
    stylized = write_image(tmp_path / "stylized.png", seed=3)
    result = runner.invoke(app, ["recolor", str(stylized), str(photo), str(photo)])
    assert result.exit_code == 2 and "is the content image" in result.output
    assert photo.read_bytes() == before


def test_stylize_stops_at_a_full_disk(tmp_path, monkeypatch):
    folder = make_folder(tmp_path / "photos [x]", 3)
    out = tmp_path / "out"
    args = _stylize_args(tmp_path, folder, out)
    real_save, saves = Image.Image.save, []

    def save(self, fp, *args, **kwargs):
        saves.append(fp)
        if len(saves) > 1:
            raise OSError(errno.EROFS, "Read-only file system")
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save)
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "read-only" in result.output and "stopped" in result.output
    assert len(saves) == 2 and [p.name for p in out.iterdir()] == ["img_000.png"]


# --- one normalisation of the loss terms, for every VGG19 file -------------------------------------------


def test_every_vgg_term_is_the_same_for_any_scale_of_the_activations():
    """VGG19 files differ by orders of magnitude in activation scale (torchvision's, Caffe's). Dividing the
    first weights and every bias by k divides every ReLU output by k: raw terms would shrink by k² (content,
    histogram) and k⁴ (Gram), so their default weights would hold for one file only. The relative terms of
    ``vgg.py``, which Gatys' content, style, per-region and histogram terms share with the fast networks', do
    not move."""
    from cyclegan.style import masks
    from cyclegan.style.histogram import HistogramLoss

    torch.manual_seed(0)
    net = vgg.vgg19_features(widths=TINY_WIDTHS)
    for m in net:
        if isinstance(m, nn.Conv2d):
            nn.init.uniform_(m.bias, -0.1, 0.1)
    scaled = vgg.vgg19_features(widths=TINY_WIDTHS)
    scaled.load_state_dict(net.state_dict())
    with torch.no_grad():
        scaled[0].weight.div_(200.0)
        for m in scaled:
            if isinstance(m, nn.Conv2d):
                m.bias.div_(200.0)
    content, style, x = smooth_image(1), smooth_image(2), torch.rand(1, 3, 32, 32)
    left = torch.zeros(2, 32, 32)
    left[0, :, :16], left[1, :, 16:] = 1, 1
    losses = []
    for features in (net, scaled):
        ex = vgg.VGGFeatures(features, ["conv4_2", *STYLE_LAYERS])
        grams = gatys.style_targets(ex, [style], [1.0], STYLE_LAYERS)
        style_feats = {n: f for n, f in ex(style).items() if n in STYLE_LAYERS}
        sizes = {n: f.shape[-2:] for n, f in style_feats.items()}
        objective = gatys.Objective(ex, content, grams, ["conv4_2"], histogram=HistogramLoss([style_feats], [1.0]),
                                    histogram_weight=1.0)
        guided = masks.SemanticStyleLoss(style_feats, left, left, sizes)
        with torch.no_grad():
            losses.append({**objective(x), "regions": guided(ex(x))})
    plain, other = losses
    assert min(plain[t] for t in ("content", "style", "histogram", "regions")) > 0
    for term in ("content", "style", "histogram", "regions"):
        torch.testing.assert_close(other[term], plain[term], rtol=2e-3, atol=0)


# --- the default weights keep the photo's layout and move its colours (real images, the real VGG19) ----------


def yosemite_pair(size: int) -> tuple[StylizeConfig, Image.Image]:
    """A misty forest with a waterfall (content) and a lake below snowy peaks (style): photographs of very
    different layouts, where too much style puts the lake into the forest."""
    root = shared_path("datasets", "summer2winter_yosemite_mini")
    cfg = StylizeConfig(content="", styles=[str(root / "testB" / "inputB_0_56.jpg")], output="", size=size,
                        vgg_weights=str(shared_path("weights", "vgg19_features.pth")), device="cpu")
    return cfg, load_image(root / "testA" / "inputA_0_6.jpg")[0]


def content_and_colour(cfg: StylizeConfig, photo: Image.Image, image: Image.Image) -> tuple[float, float]:
    """The output's conv4_2 distance to its photo over its distance to the style image (below 1: the photo's
    layout), and the distance of its mean colour to the style's over the photo's (below 1: towards it)."""
    style = images.resize_long_side(load_image(cfg.styles[0])[0], cfg.size)
    photo = images.resize_long_side(photo, cfg.size)
    ex = vgg.VGGFeatures(vgg.load_vgg19(cfg.vgg_weights, ["conv4_2"]), ["conv4_2"])
    with torch.no_grad():
        out, own = ex(images.to_tensor(image))["conv4_2"], ex(images.to_tensor(photo))["conv4_2"]
        other = ex(images.to_tensor(style.resize(photo.size)))["conv4_2"]
    layout = (vgg.relative_mse(out, own) / vgg.relative_mse(out, other)).item()
    mean = {k: np.asarray(img, np.float64).reshape(-1, 3).mean(0) for k, img in
            {"out": image, "photo": photo, "style": style}.items()}
    colour = np.linalg.norm(mean["out"] - mean["style"]) / np.linalg.norm(mean["photo"] - mean["style"])
    return layout, float(colour)


@pytest.mark.slow  # about 30 s on a 2-core CPU
def test_the_defaults_keep_the_photos_layout():
    """With the raw weights of the PyTorch tutorial on this VGG19 (Caffe-scale activations) the content
    term did not count: at 96 px the output took the style photo's layout after 30 steps, and at 256 px
    it was nearly as close to the style photo as to its own (0.83)."""
    cfg, photo = yosemite_pair(96)
    image, start, end = gatys.Stylizer(dataclasses.replace(cfg, steps=30), torch.device("cpu"))(photo)
    layout, _ = content_and_colour(cfg, photo, image)
    assert end["style"] < 0.6 * start["style"]  # the style did move
    assert layout < 0.5, layout


@pytest.mark.slow  # about a minute on a 2-core CPU
def test_photoreal_moves_the_colours_towards_the_reference():
    """Before the terms were relative, --photoreal's output ended farther from the reference's mean colour
    than the photo itself (1.18 of its distance at 256 px), the regulariser outweighing the style."""
    cfg, photo = yosemite_pair(96)
    image, _, _ = gatys.Stylizer(dataclasses.replace(cfg, steps=120, photoreal=True), torch.device("cpu"))(photo)
    layout, colour = content_and_colour(cfg, photo, image)
    assert colour < 0.85 and layout < 0.5, (colour, layout)
