"""Gatys style transfer never writes a NaN image, and rejects images too small for VGG before any work."""

from __future__ import annotations

import logging
import math

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from cyclegan.cli import app
from cyclegan.config import StylizeConfig, validate
from cyclegan.data import load_image
from cyclegan.errors import UserError
from cyclegan.style import gatys, vgg
from tests.conftest import make_folder, shared_path, write_image
from tests.test_gatys import STYLE_LAYERS, random_vgg_file, smooth_image, tiny_extractor

runner = CliRunner()


class NaNAt(gatys.Objective):
    """An objective whose losses are NaN at the given evaluations (counted from 1)."""

    def __init__(self, *args, nan_at: range, **kwargs):
        super().__init__(*args, **kwargs)
        self.nan_at, self.calls = nan_at, 0

    def forward(self, x):
        losses = super().forward(x)
        self.calls += 1
        return {k: v * math.nan for k, v in losses.items()} if self.calls in self.nan_at else losses


def nan_objective(nan_at: range) -> tuple[NaNAt, torch.Tensor]:
    ex = tiny_extractor()
    content, style = smooth_image(1), smooth_image(2)
    grams = gatys.style_targets(ex, [style], [1.0], STYLE_LAYERS)
    return NaNAt(ex, content, grams, ["conv4_2"], style_weight=1e3, nan_at=nan_at), content


def test_lbfgs_going_non_finite_hands_over_to_adam_from_the_best_image(caplog):
    objective, content = nan_objective(nan_at=range(7, 8))  # the 7th evaluation only
    seen = []
    with caplog.at_level(logging.WARNING, logger="cyclegan.style.gatys"):
        out, start, end = gatys.optimize(objective, content, steps=12, on_step=seen.append)
    assert "going on with Adam" in caplog.text
    assert len(seen) == 12  # the budget counts every evaluation, the failed one included
    assert math.isnan(seen[6]["total"]) and all(math.isfinite(s["total"]) for s in seen[:6] + seen[7:])
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    assert math.isfinite(end["total"]) and end["total"] < start["total"]


def test_a_loss_that_stays_non_finite_fails_instead_of_returning_nan():
    for optimizer in ("lbfgs", "adam"):
        objective, content = nan_objective(nan_at=range(4, 100))
        with pytest.raises(RuntimeError, match="NaN or infinite at step"):
            gatys.optimize(objective, content, steps=10, optimizer=optimizer)
    objective, content = nan_objective(nan_at=range(1, 100))  # not even the start is finite
    with pytest.raises(RuntimeError, match="NaN or infinite at step 1 of 10"):
        gatys.optimize(objective, content, steps=10)


def stylize_folder(tmp_path, content, style, weights, layers: tuple[str, str], steps: str):
    """``cyclegan stylize`` of a folder at 32 px on CPU with (content, style) ``layers``: the result, its
    output folder, and its words unwrapped from the summary table, which wraps long messages."""
    out = tmp_path / "out"
    result = runner.invoke(app, ["stylize", str(content), str(style), str(out), "--vgg-weights", str(weights),
                                 "--content-layers", layers[0], "--style-layers", layers[1], "--size", "32",
                                 "--steps", steps, "--device", "cpu"])  # fmt: skip
    return result, out, " ".join(result.output.split())


def test_stylize_reports_a_non_finite_image_as_failed_and_writes_nothing(tmp_path, monkeypatch):
    weights = random_vgg_file(tmp_path / "vgg.pth", depth=vgg.LAYER_INDEX["conv2_1"] + 1)
    content = make_folder(tmp_path / "photos", 2, size=(32, 32))
    style = write_image(tmp_path / "style.png", size=(32, 32), seed=10)
    forward, made = gatys.Objective.forward, []

    def nan_for_the_second_image(self, x):  # each image gets its own Objective
        if self not in made:
            made.append(self)
        losses = forward(self, x)
        return {k: v * math.nan for k, v in losses.items()} if made.index(self) == 1 else losses

    monkeypatch.setattr(gatys.Objective, "forward", nan_for_the_second_image)
    result, out, text = stylize_folder(tmp_path, content, style, weights, ("conv2_1", "conv1_1,conv2_1"), "4")
    assert result.exit_code == 1, result.output
    assert "img_001" in text and "NaN or infinite" in text
    assert sorted(p.name for p in out.iterdir()) == ["img_000.png"]


# --- sizes too small for the VGG layers -----------------------------------------------------------------


def test_min_side_counts_the_poolings_before_the_deepest_layer():
    assert vgg.min_side(["conv1_1"]) == 1
    assert vgg.min_side(["conv1_1", "conv2_1"]) == 2  # one pooling before conv2_1
    assert vgg.min_side(["conv4_2", *STYLE_LAYERS]) == 16  # the defaults: conv5_1 after 4 poolings
    assert vgg.min_side(["pool5"]) == 32
    # the minimum is exact: at that side the deepest map is 1x1, one pixel less leaves it empty
    ex = vgg.VGGFeatures(vgg.vgg19_features(widths=(4, 8, 8, 8, 8)), STYLE_LAYERS)
    assert ex(torch.rand(1, 3, 16, 16))["conv5_1"].shape[-2:] == (1, 1)
    with pytest.raises(RuntimeError):
        ex(torch.rand(1, 3, 15, 15))


def test_size_below_the_minimum_is_rejected_naming_it():
    cfg = StylizeConfig(content="c.png", styles=["s.png"], output="o.png", size=15)
    with pytest.raises(UserError, match="--size 15: must be at least 16"):
        validate(cfg)
    cfg.style_layers = ["conv1_1", "conv2_1"]
    cfg.content_layers = ["conv2_1"]
    validate(cfg)  # shallow layers need only 2 px


def test_a_style_image_too_narrow_fails_before_any_optimisation(tmp_path, monkeypatch):
    wide = write_image(tmp_path / "wide.png", size=(200, 20), seed=3)  # at --size 64: 64x6
    cfg = StylizeConfig(styles=[str(wide)], size=64)
    monkeypatch.setattr(gatys, "optimize", lambda *a, **k: pytest.fail("optimised anyway"))
    with pytest.raises(UserError, match=r"style image '.*wide.png' is 64x6 px .* 16 px minimum side"):
        gatys.Stylizer(cfg, torch.device("cpu"), features=vgg.vgg19_features(widths=(4, 8, 8, 8, 8)))


def test_a_content_image_too_narrow_fails_alone(tmp_path):
    weights = random_vgg_file(tmp_path / "vgg.pth", depth=vgg.LAYER_INDEX["conv3_1"] + 1)
    content = make_folder(tmp_path / "photos", 1, size=(32, 32))
    write_image(content / "strip.png", size=(64, 4), seed=5)  # at --size 32: 32x2, conv3_1 needs 4
    style = write_image(tmp_path / "style.png", size=(32, 32), seed=10)
    result, out, text = stylize_folder(tmp_path, content, style, weights, ("conv3_1", "conv1_1"), "2")
    assert result.exit_code == 1, result.output
    assert "strip.png" in text and "4 px minimum side" in text
    assert "Traceback" not in result.output
    assert sorted(p.name for p in out.iterdir()) == ["img_000.png"]


# --- the real case: a 64 px photo whose style loss starts at 1e12 ---------------------------------------


def test_real_case_that_went_to_nan_at_64_px_stays_finite(caplog):
    weights = shared_path("weights", "vgg19_features.pth")
    photo = shared_path("datasets", "monet2photo_mini", "testB", "2014-09-18 14_23_57.jpg")
    painting = shared_path("datasets", "monet2photo_mini", "trainA", "00200.jpg")
    cfg = StylizeConfig(styles=[str(painting)], size=64, steps=8, vgg_weights=str(weights))
    stylizer = gatys.Stylizer(cfg, torch.device("cpu"))
    with caplog.at_level(logging.WARNING, logger="cyclegan.style.gatys"):
        image, start, end = stylizer(load_image(photo)[0])
    assert "Adam" not in caplog.text  # fixed at the root, not by the fallback
    # the raw Gram loss whose gradient step used to overflow is 1e11 here; the relative one is not
    feats = stylizer.extractor(stylizer.style_tensors[0])
    raw = sum(vgg.gram_matrix(feats[n]).pow(2).mean() for n in cfg.style_layers)
    assert raw > 1e5 and start["style"] / cfg.style_weight < 100  # raw × the old default weight 1e6: 1e11
    assert math.isfinite(end["total"]) and end["total"] < start["total"]
    colours = image.getcolors(maxcolors=4096) or range(4097)  # None: more than 4096
    assert isinstance(image, Image.Image) and len(colours) > 100  # not a flat black image


def test_lbfgs_does_not_depend_on_the_loss_units():
    # Weights a million times larger change the units of the loss, not the problem. L-BFGS takes
    # raw gradient steps until it knows the curvature, so without normalisation its steps grew with
    # the loss; at the style losses of real images (1e12) they threw pixels out to 1e10.
    ex = tiny_extractor()
    content, style = smooth_image(1), smooth_image(2)
    grams = gatys.style_targets(ex, [style], [1.0], STYLE_LAYERS)
    images = []
    for unit in (1.0, 1e6):
        weights = {"content_weight": unit, "style_weight": 1e3 * unit, "tv_weight": unit}
        objective = gatys.Objective(ex, content, grams, ["conv4_2"], **weights)
        images.append(gatys.optimize(objective, content, steps=10, optimizer="lbfgs")[0])
    assert not torch.equal(images[0], content)  # it did move
    assert torch.allclose(images[0], images[1], atol=1e-3)
