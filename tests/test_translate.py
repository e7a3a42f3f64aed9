"""``cyclegan translate``: folders in, same-size translations out, whatever the input throws at it."""

import errno
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from cyclegan import translate
from cyclegan.checkpoint import save_network
from cyclegan.cli import app
from cyclegan.config import TranslateConfig
from cyclegan.data import load_image, to_image, to_tensor
from cyclegan.errors import UserError
from cyclegan.models import GeneratorSpec, build_generator
from cyclegan.networks import load_network
from cyclegan.translate import (
    COMPILE_FROM_IMAGES,
    Translator,
    compile_by_default,
    load_translator,
    pad_to_multiple,
    size_batches,
    translate_folder,
)
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
    (src / "notes.png").write_bytes(b"not an image at all")
    result = translate_cli(pth, src, tmp_path / "out", code=1)
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["img_000.png", "img_001.png", "img_002.png"]
    assert "broken.jpg" in result.output and "truncated.png" in result.output
    assert "failed" in result.output
    text = " ".join(result.output.split())  # the summary wraps long lines
    assert "unreadable image: not an image file this tool reads" in text and "damaged or cut short" in text
    assert "Error" not in text  # no decoder's exception names


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
    save_network(run / "G_AB.safetensors", g_ab, SPEC)
    save_network(run / "G_BA.safetensors", g_ba, GeneratorSpec(ngf=8, n_blocks=2))
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
    g_ab, g_ba = load_network(run / "G_AB.safetensors")[0], load_network(run / "G_BA.safetensors")[0]
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


def test_out_of_memory_falls_back_to_smaller_batches_then_cpu(tmp_path, caplog, monkeypatch):
    """A forward pass that runs out of memory on the device for batches of more than one image, and for any
    image larger than 32×32 even alone: the batch is split, and the large image goes to the CPU (a copy of
    the network there, which has the memory)."""
    src = make_folder(tmp_path / "in", 4, size=(32, 32))
    write_image(src / "large.png", size=(48, 48), seed=9)
    net = tiny_generator()
    translator = Translator(net, SPEC, torch.device("cpu"))
    real_forward = type(net).forward
    calls = []

    def forward(self, x):
        calls.append(tuple(x.shape))
        if self is net and (x.shape[0] > 1 or x.shape[-1] * x.shape[-2] > 32 * 32):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_forward(self, x)

    monkeypatch.setattr(type(net), "forward", forward)
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


# --- outputs: collisions, inputs never overwritten, full disks, bad images, odd names ---------------------


def test_two_inputs_for_one_output_are_refused_before_the_network_loads(tmp_path):
    src = tmp_path / "in"
    write_image(src / "x.jpg", seed=1)
    write_image(src / "x.png", seed=2)
    cfg = TranslateConfig(checkpoint=str(tmp_path / "no-such-model.pth"), input=str(src),
                          output=str(tmp_path / "out"), format="png")
    with pytest.raises(UserError) as e:
        translate_folder(cfg)  # a network load would fail on the missing checkpoint instead
    message = str(e.value)
    assert str(src / "x.jpg") in message and str(src / "x.png") in message
    assert str(tmp_path / "out" / "x.png") in message and "--format same" in message
    assert not (tmp_path / "out").exists()


def test_output_folder_equal_to_the_input_folder_is_an_error(tmp_path, pth):
    src = make_folder(tmp_path / "in", 2)
    result = translate_cli(pth, src, src, code=2)
    assert "is the input folder" in result.output
    result = translate_cli(pth, src, tmp_path, code=2)  # the input folder inside the output folder
    assert "no images outside the output folder" in result.output
    assert sorted(p.name for p in src.iterdir()) == ["img_000.png", "img_001.png"]


def test_full_disk_stops_the_run_and_keeps_what_was_written(tmp_path, pth, monkeypatch):
    src = make_folder(tmp_path / "in", 20, size=(16, 16))
    out = tmp_path / "out"
    real_save, saves = Image.Image.save, []

    def save(self, fp, *args, **kwargs):
        saves.append(fp)
        if len(saves) > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save)
    cfg = TranslateConfig(input=str(src), output=str(out), batch_size=1, workers=0, writers=1, progress=False)
    summary = translate_folder(cfg, translator=Translator(tiny_generator(), SPEC, torch.device("cpu")))
    assert summary.exit_code != 0
    assert "no space left" in summary.stopped and str(out) in summary.stopped
    assert len(summary.converted) == 3 and summary.failed == [] and summary.not_done == 17
    assert len(saves) < 12  # stopped early, not one failed write per image
    assert sorted(p.name for p in out.iterdir()) == [f"img_{i:03d}.png" for i in range(3)]  # no temporaries

    result = translate_cli(pth, src, tmp_path / "out2", code=2)
    assert "no space left" in result.output and "stopped" in result.output


def test_non_finite_generator_output_is_a_failure_not_a_black_image(tmp_path):
    src = make_folder(tmp_path / "in", 2, size=(32, 32))
    write_image(src / "odd.png", size=(48, 48), seed=5)
    net = tiny_generator()
    real_forward = net.forward
    net.forward = lambda x: real_forward(x) * (float("nan") if x.shape[-1] == 48 else 1.0)
    cfg = TranslateConfig(input=str(src), output=str(tmp_path / "out"), workers=0, progress=False)
    summary = translate_folder(cfg, translator=Translator(net, SPEC, torch.device("cpu")))
    assert summary.exit_code == 1 and len(summary.converted) == 2
    assert [(p.name, "not finite" in why) for p, why in summary.failed] == [("odd.png", True)]
    assert not (tmp_path / "out" / "odd.png").exists()


def test_decompression_bombs_warn_and_max_side_bounds_the_decode(tmp_path, monkeypatch, caplog):
    src = tmp_path / "in"
    write_image(src / "large.jpg", size=(128, 64), seed=1)  # 8192 pixels: above the limit, below twice it
    write_image(src / "huge.png", size=(128, 128), seed=2)  # 16384: above twice the limit
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 6000)
    cfg = TranslateConfig(input=str(src), output=str(tmp_path / "out"), max_side=16, workers=0, progress=False)
    decoded = []
    real_load = translate.load_image

    def load_image(*args, **kwargs):
        decoded.append(real_load(*args, **kwargs))
        return decoded[-1]

    monkeypatch.setattr(translate, "load_image", load_image)
    with caplog.at_level(logging.WARNING):
        summary = translate_folder(cfg, translator=Translator(tiny_generator(), SPEC, torch.device("cpu")))
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "large.jpg" in messages and "128×64" in messages
    assert [p.name for p in summary.converted] == ["large.jpg"]
    assert [(p.name, "could be decompression bomb" in why) for p, why in summary.failed] == [("huge.png", True)]
    assert [rgb.size for rgb, _ in decoded] == [(16, 8)]  # decoded at an eighth of the scale, not in full
    assert Image.open(tmp_path / "out" / "large.jpg").size == (16, 8)


def test_still_gif_is_written_as_png(tmp_path, pth):
    src = tmp_path / "in"
    src.mkdir()
    Image.new("RGB", (32, 32), "red").save(src / "still.gif")
    translate_cli(pth, src, tmp_path / "out")
    assert Image.open(tmp_path / "out" / "still.png").size == (32, 32)
    write_image(src / "still.png", seed=3)  # now two inputs would both be written to still.png
    result = translate_cli(pth, src, tmp_path / "out2", code=2)
    assert "still.gif" in result.output and "still.png" in result.output


def test_odd_file_names_are_printed_as_they_are(tmp_path, pth):
    src = tmp_path / "x[/]y"
    make_folder(src, 1)
    (src / "[bold]x.jpg").write_bytes(b"not an image")
    (src / "[red]b.png").write_bytes(b"not an image either")
    result = translate_cli(pth, src, tmp_path / "out", code=1)
    flat = result.output.replace("\n", "")
    assert f"failed: {src / '[bold]x.jpg'}" in flat and f"failed: {src / '[red]b.png'}" in flat


def test_a_cpu_compiles_long_jobs_by_default(monkeypatch):
    jobs = [(Path(f"{i}.jpg"), Path(f"out/{i}.jpg")) for i in range(COMPILE_FROM_IMAGES)]
    video = [(Path("clip.mp4"), Path("out/clip.mp4"))]
    cpu = TranslateConfig(device="cpu")
    monkeypatch.setattr("cyclegan.translate.compile_problem", lambda device: None)
    assert compile_by_default(cpu, jobs) and compile_by_default(cpu, video)
    assert not compile_by_default(cpu, jobs[1:])
    assert not compile_by_default(TranslateConfig(device="cpu", compile=False), jobs)
    assert compile_by_default(TranslateConfig(device="cpu", compile=True), jobs[:1])
    monkeypatch.setattr("cyclegan.translate.compile_problem", lambda device: "no C++ compiler found")
    assert not compile_by_default(cpu, jobs)
