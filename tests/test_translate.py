"""``cyclegan translate``: folders in, same-size translations out, whatever the input throws at it."""

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from cyclegan.checkpoint import load_generator, save_generator
from cyclegan.cli import app
from cyclegan.config import TranslateConfig
from cyclegan.data import load_image, to_image, to_tensor
from cyclegan.models import GeneratorSpec, build_generator
from cyclegan.translate import Translator, load_translator, pad_to_multiple, size_batches, translate_folder
from tests.conftest import make_folder, shared_path, write_image

runner = CliRunner()
SPEC = GeneratorSpec(ngf=8, n_blocks=1)
FAST = ["--device", "cpu", "--workers", "0", "--writers", "2", "--no-progress"]


def tiny_generator(seed: int = 0, spec: GeneratorSpec = SPEC):
    torch.manual_seed(seed)
    return build_generator(spec, init_type="kaiming").eval()  # kaiming: outputs that depend on the input


@pytest.fixture
def pth(tmp_path) -> Path:
    """A generator .pth in the original release's layout."""
    path = tmp_path / "latest_net_G.pth"
    torch.save(tiny_generator().state_dict(), path)
    return path


def translate_cli(*args, code=0):
    result = runner.invoke(app, ["translate", *map(str, args), *FAST])
    assert result.exit_code == code, result.output + repr(result.exception)
    return result


def direct(net, path: Path) -> np.ndarray:
    """What the generator makes of an image, with no pipeline in between (sides multiples of 4)."""
    rgb, _ = load_image(path)
    with torch.no_grad():
        return np.asarray(to_image(net(to_tensor(rgb)[None])[0]), dtype=int)


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path), dtype=int)


def test_pad_to_multiple_keeps_the_image_at_its_offset():
    x = torch.rand(1, 3, 5, 6)
    padded, (top, left) = pad_to_multiple(x, 4)
    assert padded.shape == (1, 3, 8, 8)
    assert torch.equal(padded[..., top:top + 5, left:left + 6], x)
    tiny = torch.rand(1, 3, 2, 3)  # smaller than the pad: reflect is impossible, edges are repeated
    padded, (top, left) = pad_to_multiple(tiny, 32)
    assert padded.shape == (1, 3, 32, 32) and torch.equal(padded[..., top:top + 2, left:left + 3], tiny)
    padded, (top, left) = pad_to_multiple(tiny, 4, min_side=8)
    assert padded.shape == (1, 3, 8, 8) and torch.equal(padded[..., top:top + 2, left:left + 3], tiny)
    assert pad_to_multiple(torch.rand(1, 3, 9, 13), 4, min_side=8)[0].shape == (1, 3, 12, 16)


def test_batches_hold_one_size():
    sizes = [(4, 4), (8, 4), (4, 4), (4, 4), (8, 4)]
    assert size_batches(sizes, batch_size=2) == [[0, 2], [3], [1, 4]]


def test_reference_fixture_through_the_translator(tmp_path):
    """The original implementation's outputs, through the translator (uint8 in, pad, crop) and the CLI."""
    folder = shared_path("fixtures", "reference_generator")
    translator = load_translator(folder / "latest_net_G.pth", device="cpu", precision="fp32")
    names = ["in_0.png", "in_1.png"]
    for i, name in enumerate(names):
        expected = torch.from_numpy(np.load(folder / f"out_{i}.npy"))
        u8 = torch.from_numpy(np.asarray(Image.open(folder / name).convert("RGB")).copy()).permute(2, 0, 1)
        assert (translator(u8[None]) - expected).abs().max() <= 1e-4
    src = tmp_path / "in"
    src.mkdir()
    for name in names:
        (src / name).write_bytes((folder / name).read_bytes())
    translate_cli(folder / "latest_net_G.pth", src, tmp_path / "out")
    for i, name in enumerate(names):
        expected = np.asarray(to_image(torch.from_numpy(np.load(folder / f"out_{i}.npy"))[0]), dtype=int)
        assert np.abs(pixels(tmp_path / "out" / name) - expected).max() <= 1  # 8-bit rounding


def test_output_size_equals_input_size(tmp_path, pth):
    src = tmp_path / "in"
    write_image(src / "odd.png", size=(201, 317), seed=1)
    write_image(src / "square.png", size=(64, 64), seed=2)
    write_image(src / "speck.png", size=(3, 2), seed=3)
    translate_cli(pth, src, tmp_path / "out")
    for name, size in [("odd.png", (201, 317)), ("square.png", (64, 64)), ("speck.png", (3, 2))]:
        assert Image.open(tmp_path / "out" / name).size == size
    # A side that is already a multiple of 4 goes through untouched: exactly the generator's output.
    diff = np.abs(pixels(tmp_path / "out" / "square.png") - direct(tiny_generator(), src / "square.png"))
    assert diff.max() <= 1


def test_nested_folders_mirrored_with_workers(tmp_path, pth):
    src = tmp_path / "photos"
    for rel, size in [("a.jpg", (40, 32)), ("trip/b.PNG", (32, 32)), ("trip/day 2/c.jpeg", (40, 32)),
                      ("trip/day 2/d.webp", (36, 28))]:
        write_image(src / rel, size=size, seed=len(rel))
    (src / "notes.txt").write_text("not an image")
    result = runner.invoke(app, ["translate", str(pth), str(src), str(tmp_path / "out"), "--device", "cpu",
                                 "--workers", "2", "--batch-size", "2", "--no-progress"])
    assert result.exit_code == 0, result.output
    found = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert found == ["a.jpg", "trip/b.PNG", "trip/day 2/c.jpeg", "trip/day 2/d.webp"]
    assert Image.open(tmp_path / "out" / "trip/day 2/c.jpeg").format == "JPEG"
    assert Image.open(tmp_path / "out" / "trip/day 2/d.webp").size == (36, 28)

    translate_cli(pth, src, tmp_path / "as_png", "--format", "png")
    found = sorted(str(p.relative_to(tmp_path / "as_png")) for p in (tmp_path / "as_png").rglob("*.png"))
    assert found == ["a.png", "trip/b.png", "trip/day 2/c.png", "trip/day 2/d.png"]


def test_corrupt_file_skipped_reported_and_exit_status_1(tmp_path, pth):
    src = make_folder(tmp_path / "in", 3, size=(32, 32))
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    good = write_image(tmp_path / "full.png", size=(32, 32))
    (src / "truncated.png").write_bytes(good.read_bytes()[:200])
    result = translate_cli(pth, src, tmp_path / "out", code=1)
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["img_000.png", "img_001.png", "img_002.png"]
    assert "broken.jpg" in result.output and "truncated.png" in result.output
    assert "failed" in result.output


def test_grayscale_palette_and_rgba_inputs(tmp_path, pth):
    src = tmp_path / "in"
    write_image(src / "gray.png", size=(32, 24), mode="L")
    write_image(src / "palette.png", size=(32, 24), mode="P")
    rgba = write_image(src / "rgba.png", size=(32, 24), mode="RGBA", seed=5)
    translate_cli(pth, src, tmp_path / "out")
    assert Image.open(tmp_path / "out" / "gray.png").mode == "RGB"
    assert Image.open(tmp_path / "out" / "palette.png").mode == "RGB"
    out = Image.open(tmp_path / "out" / "rgba.png")
    assert out.mode == "RGBA" and out.size == (32, 24)
    assert np.array_equal(np.asarray(out.getchannel("A")), np.asarray(Image.open(rgba).getchannel("A")))
    assert np.abs(np.asarray(out.convert("RGB"), dtype=int) - direct(tiny_generator(), rgba)).max() <= 1

    translate_cli(pth, src, tmp_path / "jpg", "--format", "jpg", "--quality", "90")
    assert Image.open(tmp_path / "jpg" / "rgba.jpg").mode == "RGB"  # JPEG has no alpha


def test_run_folder_translates_both_directions(tmp_path):
    run = tmp_path / "checkpoints" / "photo2monet"
    g_ab, g_ba = tiny_generator(1), tiny_generator(2, GeneratorSpec(ngf=8, n_blocks=2))
    save_generator(run / "G_AB.safetensors", g_ab, SPEC)
    save_generator(run / "G_BA.safetensors", g_ba, GeneratorSpec(ngf=8, n_blocks=2))
    src = make_folder(tmp_path / "in", 2, size=(32, 32))
    translate_cli(run, src, tmp_path / "ab")
    translate_cli(run, src, tmp_path / "ba", "--direction", "BtoA")
    for name in ("img_000.png", "img_001.png"):
        assert np.abs(pixels(tmp_path / "ab" / name) - direct(g_ab, src / name)).max() <= 1
        assert np.abs(pixels(tmp_path / "ba" / name) - direct(g_ba, src / name)).max() <= 1
        assert not np.array_equal(pixels(tmp_path / "ab" / name), pixels(tmp_path / "ba" / name))


def test_smoke_training_run_translates_both_directions(image_dirs, tmp_path):
    a, b = image_dirs
    result = runner.invoke(app, ["train", "--domainA", str(a), "--domainB", str(b), "--name", "smoke",
                                 "--checkpoints-dir", str(tmp_path / "runs"), "--max-steps", "2",
                                 "--image-size", "32", "--load-size", "36", "--ngf", "8", "--ndf", "8",
                                 "--net-g", "resnet_6blocks", "--wandb-mode", "disabled", "--workers", "0"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    run = tmp_path / "runs" / "smoke"
    src = tmp_path / "photos"
    write_image(src / "wide.png", size=(48, 40), seed=3)
    write_image(src / "odd.jpg", size=(37, 29), seed=4)
    translate_cli(run, src, tmp_path / "ab")
    translate_cli(run, src, tmp_path / "ba", "--direction", "BtoA")
    for name, size in [("wide.png", (48, 40)), ("odd.jpg", (37, 29))]:
        assert Image.open(tmp_path / "ab" / name).size == size == Image.open(tmp_path / "ba" / name).size
    g_ab, g_ba = load_generator(run / "G_AB.safetensors")[0], load_generator(run / "G_BA.safetensors")[0]
    assert np.abs(pixels(tmp_path / "ab" / "wide.png") - direct(g_ab, src / "wide.png")).max() <= 1
    assert np.abs(pixels(tmp_path / "ba" / "wide.png") - direct(g_ba, src / "wide.png")).max() <= 1


def test_existing_outputs_skipped_unless_overwrite(tmp_path, pth):
    src = make_folder(tmp_path / "in", 2, size=(32, 32))
    out = tmp_path / "out"
    translate_cli(pth, src, out)
    first = pixels(out / "img_000.png")
    Image.new("RGB", (32, 32)).save(out / "img_000.png")  # stands in for an output from an earlier run
    (out / "img_001.png").unlink()  # as if interrupted before this one

    result = translate_cli(pth, src, out)
    assert np.all(pixels(out / "img_000.png") == 0)  # untouched
    assert np.array_equal(pixels(out / "img_001.png"), direct(tiny_generator(), src / "img_001.png"))
    assert "skipped" in result.output

    translate_cli(pth, src, out, "--overwrite")
    assert np.array_equal(pixels(out / "img_000.png"), first)


def test_single_file_and_resize_options(tmp_path, pth):
    image = write_image(tmp_path / "wide.jpg", size=(64, 32))
    translate_cli(pth, image, tmp_path / "result.png")
    assert Image.open(tmp_path / "result.png").size == (64, 32)
    translate_cli(pth, image, tmp_path / "small", "--resize", "16")
    assert Image.open(tmp_path / "small" / "wide.jpg").size == (32, 16)
    translate_cli(pth, image, tmp_path / "capped", "--max-side", "40")
    assert Image.open(tmp_path / "capped" / "wide.jpg").size == (40, 20)
    result = translate_cli(pth, image, tmp_path / "x", "--direction", "BtoA", code=2)
    assert "one way only" in result.output


def test_output_folder_inside_input_is_not_read_back(tmp_path, pth):
    src = make_folder(tmp_path / "in", 2, size=(32, 32))
    translate_cli(pth, src, src / "out")
    result = translate_cli(pth, src, src / "out")
    assert not (src / "out" / "out").exists()
    assert "skipped" in result.output
    translate_cli(pth, src / "img_000.png", src / "img_000.png", code=2)  # would overwrite its input


def test_bf16_autocast_close_to_fp32(tmp_path, pth):
    src = make_folder(tmp_path / "in", 1, size=(32, 32))
    translate_cli(pth, src, tmp_path / "fp32", "--precision", "fp32")
    translate_cli(pth, src, tmp_path / "bf16", "--precision", "bf16")
    diff = np.abs(pixels(tmp_path / "fp32" / "img_000.png") - pixels(tmp_path / "bf16" / "img_000.png"))
    assert diff.mean() < 3


def test_out_of_memory_falls_back_to_smaller_batches_then_cpu(tmp_path, caplog):
    """A forward pass that runs out of memory for batches of more than one image, and for any image
    larger than 32×32 even alone: the batch is split, and the large image goes to the CPU."""
    src = make_folder(tmp_path / "in", 4, size=(32, 32))
    write_image(src / "large.png", size=(48, 48), seed=9)
    net = tiny_generator()
    translator = Translator(net, SPEC, torch.device("cpu"))
    real_forward = net.forward
    calls = []

    def forward(x):
        calls.append(tuple(x.shape))
        if x.shape[0] > 1 or x.shape[-1] * x.shape[-2] > 32 * 32:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_forward(x)

    net.forward = forward
    cfg = TranslateConfig(input=str(src), output=str(tmp_path / "out"), batch_size=4, workers=0,
                          progress=False)
    with caplog.at_level(logging.WARNING):
        summary = translate_folder(cfg, translator=translator)
    assert summary.exit_code == 0 and len(summary.converted) == 5
    assert (4, 3, 32, 32) in calls and (2, 3, 32, 32) in calls and (1, 3, 48, 48) in calls
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "retrying in batches of 2" in messages and "on the CPU" in messages
    reference = tiny_generator()
    for path in sorted(src.iterdir()):
        assert np.abs(pixels(tmp_path / "out" / path.name) - direct(reference, path)).max() <= 1
