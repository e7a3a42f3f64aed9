"""The Python API: the same networks and pipeline as the command line, so the same outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import cyclegan
from cyclegan.cli import app
from cyclegan.errors import UserError
from tests.conftest import shared_path, write_image
from tests.test_adain import published_files
from tests.test_fast_style import published_layout_file
from tests.test_gatys import random_vgg_file

runner = CliRunner()
CPU = ["--device", "cpu", "--precision", "fp32"]


def cli(*args):
    result = runner.invoke(app, [*map(str, args)])
    assert result.exit_code == 0, result.output
    return result


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_a_generator_gives_the_clis_output_for_every_image_type(tmp_path):
    folder = shared_path("fixtures", "reference_generator")
    photo = write_image(tmp_path / "photo.png", size=(45, 37), seed=1)
    cli("translate", folder, photo, tmp_path / "cli.png", *CPU, "--workers", "0", "--no-progress")
    want = pixels(tmp_path / "cli.png")
    net = cyclegan.load(folder, device="cpu", precision="fp32")
    assert "resnet_6blocks generator" in repr(net)
    out = net(Image.open(photo))
    assert isinstance(out, Image.Image) and np.array_equal(np.asarray(out), want)
    array = np.array(Image.open(photo).convert("RGB"))
    assert np.array_equal(net(array), want) and net(array).dtype == np.uint8
    floats = net(array.astype(np.float32) / 255)
    assert floats.dtype == np.float32 and np.abs(floats * 255 - want).max() < 1e-3
    tensor = torch.from_numpy(array).permute(2, 0, 1).float() / 255
    batch = net(torch.stack([tensor, tensor]))
    assert batch.shape == (2, 3, 37, 45) and torch.equal(batch[0], batch[1])
    # A batch of two is compared with the CLI's batch of two: a convolution may sum in another order for
    # another batch size (oneDNN on some CPUs), which can move a pixel across a rounding boundary.
    for name in ("a.png", "b.png"):
        write_image(tmp_path / "pair" / name, size=(45, 37), seed=1)
    cli("translate", folder, tmp_path / "pair", tmp_path / "pair_out", *CPU, "--workers", "0", "--no-progress")
    assert np.array_equal((batch[0] * 255).round().byte().permute(1, 2, 0).numpy(),
                          pixels(tmp_path / "pair_out" / "a.png"))
    cli("translate", folder, photo, tmp_path / "half.png", *CPU, "--workers", "0", "--no-progress",
        "--strength", "0.5")
    assert np.array_equal(np.asarray(net(Image.open(photo), strength=0.5)), pixels(tmp_path / "half.png"))


def test_a_style_network_paints_the_style_asked_for(tmp_path):
    published_layout_file(tmp_path / "mosaic.pth")
    photo = write_image(tmp_path / "photo.png", size=(32, 24), seed=2)
    cli("translate", tmp_path / "mosaic.pth", photo, tmp_path / "cli.png", *CPU, "--workers", "0", "--no-progress",
        "--preserve-color")
    net = cyclegan.load(tmp_path / "mosaic.pth", device="cpu", precision="fp32", preserve_color=True)
    assert np.array_equal(np.asarray(net(Image.open(photo))), pixels(tmp_path / "cli.png"))
    with pytest.raises(UserError, match="this network has one style"):
        net(Image.open(photo), style="1")


def test_stylize_gives_the_clis_output_and_reports_progress(tmp_path, monkeypatch):
    weights = random_vgg_file(tmp_path / "vgg.pth", depth=7)
    photo = write_image(tmp_path / "photo.png", size=(40, 24), seed=1)
    style = write_image(tmp_path / "style.png", size=(24, 24), seed=2)
    options = {"content_layers": ["conv2_1"], "style_layers": ["conv1_1"], "size": 20, "steps": 3,
               "vgg_weights": str(weights), "device": "cpu"}
    cli("stylize", photo, style, tmp_path / "cli.png", "--content-layers", "conv2_1", "--style-layers", "conv1_1",
        "--size", "20", "--steps", "3", "--vgg-weights", weights, "--device", "cpu")
    seen = []
    out = cyclegan.stylize(Image.open(photo), Image.open(style), progress=seen.append, **options)
    assert len(seen) == 3 and "style" in seen[0]
    assert out.size == (20, 12) and np.array_equal(np.asarray(out), pixels(tmp_path / "cli.png"))
    assert np.array_equal(cyclegan.stylize(np.asarray(Image.open(photo)), style, **options), np.asarray(out))


def test_stylize_with_adain_gives_the_clis_output(tmp_path, monkeypatch):
    published_files(tmp_path / "files")
    monkeypatch.setenv("CYCLEGAN_ADAIN_URL", "http://127.0.0.1:9/")  # the files below: no download
    files = {"vgg_weights": str(tmp_path / "files" / "vgg_normalised.pth"),
             "decoder_weights": str(tmp_path / "files" / "decoder.pth")}
    photo = write_image(tmp_path / "photo.png", size=(37, 21), seed=3)
    style = write_image(tmp_path / "style.png", size=(24, 24), seed=4)
    cli("stylize", photo, style, tmp_path / "cli.png", "--method", "adain", "--alpha", "0.7", "--vgg-weights",
        files["vgg_weights"], "--decoder-weights", files["decoder_weights"], *CPU)
    out = cyclegan.stylize(Image.open(photo), style, method="adain", alpha=0.7, device="cpu", precision="fp32",
                           **files)
    assert np.array_equal(np.asarray(out), pixels(tmp_path / "cli.png"))
    # the decoder as a network of its own, with its style image (alpha 1): translate's output
    cli("translate", files["decoder_weights"], photo, tmp_path / "translated.png", "--style", style, *CPU,
        "--workers", "0", "--no-progress", "--vgg-weights", files["vgg_weights"])
    net = cyclegan.load(files["decoder_weights"], style=str(style), vgg_weights=files["vgg_weights"], device="cpu",
                        precision="fp32")
    assert np.array_equal(np.asarray(net(Image.open(photo))), pixels(tmp_path / "translated.png"))


def test_bad_names_and_images_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match="neither a file or folder nor a pretrained model: one of .*style_monet"):
        cyclegan.load("no_such_model")
    with pytest.raises(UserError, match="--strength 2: must be from 0 to 1"):
        cyclegan.load(shared_path("fixtures", "reference_generator"), device="cpu", strength=2)
    net = cyclegan.load(shared_path("fixtures", "reference_generator"), device="cpu")
    with pytest.raises(UserError, match=r"\[H, W, 3\]"):
        net(np.zeros((4, 4)))
    with pytest.raises(UserError, match="not a str"):
        net("photo.png")


@pytest.mark.parametrize("image, words", [
    (np.random.default_rng(0).integers(0, 1000, (8, 8, 3)), "integer NumPy array holds values from 0 to 255"),
    (np.random.default_rng(0).random((8, 8, 3)) * 255, "divide it by 255"),
    (np.full((8, 8, 3), np.nan, np.float32), "NaN or infinite"),
    (torch.full((3, 8, 8), float("inf")), "NaN or infinite"),
    (np.ones((8, 8, 3), bool), "of bool values is no image"),
    (np.ones((8, 8, 3), complex), "of complex128 values is no image"),
    (np.empty((8, 8, 3), object), "of object values is no image"),
    (np.zeros((0, 8, 3), np.uint8), "empty NumPy array"),
    (torch.empty(3, 8, 8, device="meta"), "meta device holds no pixels"),
    (torch.randint(0, 1000, (3, 8, 8)), "integer tensor holds values from 0 to 255"),
])
def test_the_api_refuses_what_is_no_image_in_words(image, words):
    net = cyclegan.load(shared_path("fixtures", "reference_generator"), device="cpu", precision="fp32")
    with pytest.raises(UserError, match=words):
        net(image)


def test_the_api_reads_other_integer_types_as_0_to_255_and_stylize_refuses_a_nan_photo():
    net = cyclegan.load(shared_path("fixtures", "reference_generator"), device="cpu", precision="fp32")
    pixels = np.random.default_rng(1).integers(0, 256, (8, 8, 3))
    assert np.array_equal(net(pixels), net(pixels.astype(np.uint8)))
    with pytest.raises(UserError, match="NaN or infinite"):
        cyclegan.stylize(np.full((16, 16, 3), np.nan), np.zeros((16, 16, 3), np.uint8), steps=1, size=16)
