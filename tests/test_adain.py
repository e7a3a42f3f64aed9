"""AdaIN: the published layouts and algorithm, stylize --method adain (the translate pipeline: batches, tiles,
export, videos), its downloads, and decoder training."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from torch import nn
from typer.testing import CliRunner

from cyclegan import download
from cyclegan.catalog import adain_weights
from cyclegan.checkpoint import load_state
from cyclegan.cli import app
from cyclegan.config import StyleTrainConfig, StylizeConfig, validate
from cyclegan.errors import UserError
from cyclegan.networks import load_network
from cyclegan.style import adain
from cyclegan.style.images import preserve_color
from cyclegan.video import smoothed_norms
from tests.conftest import make_folder, write_image
from tests.fileserver import FileServer

runner = CliRunner()


# --- the published implementation, written out (naoto0804/pytorch-AdaIN net.py, function.py, test.py) ----


def published_vgg_up_to_relu4_1() -> nn.Sequential:
    """``net.vgg`` as published, cut where the published test.py cuts it (``vgg.children()[:31]``)."""
    def conv(i, o):
        return [nn.ReflectionPad2d((1, 1, 1, 1)), nn.Conv2d(i, o, (3, 3)), nn.ReLU()]

    def pool():
        return [nn.MaxPool2d((2, 2), (2, 2), (0, 0), ceil_mode=True)]

    return nn.Sequential(nn.Conv2d(3, 3, (1, 1)), *conv(3, 64), *conv(64, 64), *pool(), *conv(64, 128),
                         *conv(128, 128), *pool(), *conv(128, 256), *conv(256, 256), *conv(256, 256),
                         *conv(256, 256), *pool(), *conv(256, 512))


def published_decoder() -> nn.Sequential:
    def conv(i, o):
        return [nn.ReflectionPad2d((1, 1, 1, 1)), nn.Conv2d(i, o, (3, 3)), nn.ReLU()]

    up = nn.UpsamplingNearest2d(scale_factor=2)
    return nn.Sequential(*conv(512, 256), up, *conv(256, 256), *conv(256, 256), *conv(256, 256),
                         *conv(256, 128), up, *conv(128, 128), *conv(128, 64), up, *conv(64, 64),
                         nn.ReflectionPad2d((1, 1, 1, 1)), nn.Conv2d(64, 3, (3, 3)))


def calc_mean_std(feat, eps=1e-5):
    n, c = feat.size()[:2]
    feat_var = feat.view(n, c, -1).var(dim=2) + eps
    return feat.view(n, c, -1).mean(dim=2).view(n, c, 1, 1), feat_var.sqrt().view(n, c, 1, 1)


def adaptive_instance_normalization(content_feat, style_feat):
    size = content_feat.size()
    style_mean, style_std = calc_mean_std(style_feat)
    content_mean, content_std = calc_mean_std(content_feat)
    normalized = (content_feat - content_mean.expand(size)) / content_std.expand(size)
    return normalized * style_std.expand(size) + style_mean.expand(size)


def published_style_transfer(vgg, decoder, content, styles, alpha=1.0, weights=None):
    """test.py's style_transfer (one content image; several styles mix with ``weights``), outputs clipped."""
    with torch.no_grad():
        content_f = vgg(content)
        feat = sum(w * adaptive_instance_normalization(content_f, vgg(s))
                   for w, s in zip(weights or [1.0], styles, strict=True))
        feat = feat * alpha + content_f * (1 - alpha)
        return decoder(feat).clamp(0, 1)


def image_in_01(path: Path) -> torch.Tensor:
    """torchvision's ToTensor of an RGB file: ``[1, 3, H, W]`` in [0, 1]."""
    return torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1).float().div(255)[None]


# --- weight files in the published layouts, served from 127.0.0.1 ---------------------------------------


def published_files(folder: Path, seed: int = 0) -> tuple[nn.Sequential, nn.Sequential]:
    """Random weights saved as vgg_normalised.pth and decoder.pth; the decoder's output is centred on grey
    with a spread (random weights alone give ~0 everywhere, all clipped: a comparison that cannot fail)."""
    torch.manual_seed(seed)
    vgg, dec = published_vgg_up_to_relu4_1(), published_decoder()
    with torch.no_grad():
        for conv in [m for m in [*vgg, *dec] if isinstance(m, nn.Conv2d)]:  # variance-keeping, as trained nets are
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            conv.bias.zero_()
        out = dec(vgg(torch.rand(2, 3, 32, 32))).transpose(0, 1).flatten(1)  # each channel: mean 0.5, std 0.15
        scale = 0.15 / out.std(1)
        dec[28].weight.mul_(scale.view(3, 1, 1, 1))
        dec[28].bias.copy_(0.5 - out.mean(1) * scale)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(vgg.state_dict(), folder / "vgg_normalised.pth")
    torch.save(dec.state_dict(), folder / "decoder.pth")
    return vgg.eval(), dec.eval()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("adain_release")
    vgg, dec = published_files(folder)
    with FileServer(folder) as server:
        yield server, vgg, dec


@pytest.fixture
def adain_url(served, tmp_path, monkeypatch):
    server, vgg, dec = served
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.setenv("CYCLEGAN_ADAIN_URL", f"{server.url}/")
    monkeypatch.setenv("CYCLEGAN_MODELS_DIR", str(tmp_path / "model-cache"))
    return server, vgg, dec


def stylize_cli(*args):
    return runner.invoke(app, ["stylize", *map(str, args), "--method", "adain", "--device", "cpu"])


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def as_pixels(x: torch.Tensor) -> np.ndarray:
    return x[0].mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy().astype(int)


# --- tests --------------------------------------------------------------------------------------------


def test_layouts_are_the_published_ones():
    ours, theirs = adain.encoder().state_dict(), published_vgg_up_to_relu4_1().state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}
    ours, theirs = adain.decoder().state_dict(), published_decoder().state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}
    enc = adain.encoder()
    for name, i in adain.STYLE_LAYERS.items():
        assert isinstance(enc[i], nn.ReLU) and isinstance(enc[i - 1], nn.Conv2d), name


def test_adain_statistics_as_published():
    torch.manual_seed(0)
    content, style = torch.randn(2, 5, 6, 7) * 3 + 1, torch.randn(1, 5, 4, 9) * 0.5 - 2
    mean, std = adain.calc_mean_std(style)
    out = adain.adain(content, mean, std)
    assert torch.allclose(out, adaptive_instance_normalization(content, style.expand(2, -1, -1, -1)), atol=1e-5)
    # the output's channels carry the style's mean and (unbiased, eps-regularised) std
    out_mean, out_std = adain.calc_mean_std(out, eps=0)
    assert torch.allclose(out_mean, mean.expand_as(out_mean), atol=1e-5)
    assert torch.allclose(out_std, std.expand_as(out_std), rtol=1e-3)
    assert torch.allclose(std.flatten(), (style.flatten(2).var(2, unbiased=True) + 1e-5).sqrt().flatten())


def test_stylize_equals_the_published_algorithm(adain_url, tmp_path):
    server, vgg, dec = adain_url
    photo = write_image(tmp_path / "photo.png", size=(48, 40), seed=1)
    style = write_image(tmp_path / "style.png", size=(32, 32), seed=2)
    out = tmp_path / "out.png"
    result = stylize_cli(photo, style, out, "--size", "48", "--style-scale", "0.6667")  # style: 32, as it is
    assert result.exit_code == 0, result.output
    assert sorted(path for path, _ in server.requests) == ["decoder.pth", "vgg_normalised.pth"]
    expected = published_style_transfer(vgg, dec, image_in_01(photo), [image_in_01(style)])
    assert expected.flatten(2).std(2).min() > 0.02  # a real image, not a clipped constant
    assert np.abs(pixels(out) - as_pixels(expected)).max() <= 1  # one rounding level in the file

    model, spec = load_network(adain_weights("decoder"))  # now from the cache: no further request
    assert len(server.requests) == 2 and isinstance(spec, adain.AdaINSpec)
    model.set_style([image_in_01(style)], [1.0])
    with torch.no_grad():
        assert torch.allclose(model(image_in_01(photo)), expected, atol=1e-4)
        # alpha 0 is the content decoded; alpha 0.5 mixes in feature space
        decoded = dec(vgg(image_in_01(photo))).clamp(0, 1)
        model.alpha = 0.0
        assert torch.allclose(model(image_in_01(photo)), decoded, atol=1e-4)
        half = published_style_transfer(vgg, dec, image_in_01(photo), [image_in_01(style)], alpha=0.5)
        model.alpha = 0.5
        assert torch.allclose(model(image_in_01(photo)), half, atol=1e-4)
    assert not torch.allclose(half, expected, atol=1e-2)


def test_alpha_0_and_a_size_not_a_multiple_of_8(adain_url, tmp_path):
    _, vgg, dec = adain_url
    photo = write_image(tmp_path / "photo.png", size=(37, 21), seed=3)  # decoded at 40×24, then cropped
    style = write_image(tmp_path / "style.png", size=(24, 24), seed=4)
    out = tmp_path / "out.png"
    result = stylize_cli(photo, style, out, "--alpha", "0")
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (37, 21)
    decoded = dec(vgg(image_in_01(photo))).clamp(0, 1).detach()[..., :21, :37]
    assert np.abs(pixels(out) - as_pixels(decoded)).max() <= 1


def test_style_blend_mixes_the_adained_features(adain_url, tmp_path):
    _, vgg, dec = adain_url
    photo = write_image(tmp_path / "photo.png", size=(32, 32), seed=5)
    a = write_image(tmp_path / "a.png", size=(24, 24), seed=6)
    b = write_image(tmp_path / "b.png", size=(24, 24), seed=7)
    out = tmp_path / "out.png"
    result = stylize_cli(photo, a, b, out, "--style-blend", "3,2", "--size", "32", "--style-scale", "0.75")
    assert result.exit_code == 0, result.output
    expected = published_style_transfer(vgg, dec, image_in_01(photo), [image_in_01(a), image_in_01(b)],
                                        weights=[0.6, 0.4])
    only_a = published_style_transfer(vgg, dec, image_in_01(photo), [image_in_01(a)])
    assert np.abs(pixels(out) - as_pixels(expected)).max() <= 1
    assert np.abs(pixels(out) - as_pixels(only_a)).max() > 3  # the second style does count


def test_folders_batches_sizes_failures_and_preserve_color(adain_url, tmp_path, monkeypatch):
    photos = make_folder(tmp_path / "photos", 3, size=(32, 24))
    write_image(photos / "sub" / "tall.jpg", size=(20, 36), seed=9)
    write_image(photos / "tiny.png", size=(8, 8), seed=10)  # below the 16 px the encoder takes: padded, cropped
    (photos / "broken.png").write_bytes(b"not an image")
    style = write_image(tmp_path / "style.png", size=(24, 24), seed=2)
    out = tmp_path / "out"
    batch_sizes = []
    real_forward = adain.AdaIN.forward
    monkeypatch.setattr(adain.AdaIN, "forward", lambda self, x: batch_sizes.append(len(x)) or real_forward(self, x))

    result = stylize_cli(photos, style, out, "--batch-size", "2", "--preserve-color")
    assert result.exit_code == 1, result.output  # one input failed, named in the report
    assert "broken.png" in result.output
    written = {p.relative_to(out).as_posix(): Image.open(p).size for p in out.rglob("*") if p.is_file()}
    assert written == {"img_000.png": (32, 24), "img_001.png": (32, 24), "img_002.png": (32, 24),
                       "sub/tall.jpg": (20, 36), "tiny.png": (8, 8)}
    assert sorted(batch_sizes) == [1, 1, 1, 2]  # same-size images share a batch
    mtime = (out / "img_000.png").stat().st_mtime_ns
    result = stylize_cli(photos, style, out)
    assert "skipped" in result.output and (out / "img_000.png").stat().st_mtime_ns == mtime

    # --preserve-color is the luminance step of `stylize --preserve-color`, on the AdaIN output
    result = stylize_cli(photos / "img_000.png", style, tmp_path / "plain.png")
    assert result.exit_code == 0, result.output
    expected = preserve_color(Image.open(tmp_path / "plain.png"), Image.open(photos / "img_000.png"))
    # PIL rounds its YCbCr planes to 8 bits and the plain output was rounded before: a level or two apart
    assert np.abs(pixels(out / "img_000.png") - np.asarray(expected).astype(int)).mean() < 2.0
    assert np.abs(pixels(out / "img_000.png") - pixels(tmp_path / "plain.png")).mean() > 3


def test_offline_names_both_weight_options(tmp_path, monkeypatch):
    monkeypatch.setenv("CYCLEGAN_ADAIN_URL", "http://127.0.0.1:9/")  # nothing listens there
    monkeypatch.setenv("CYCLEGAN_MODELS_DIR", str(tmp_path / "model-cache"))
    monkeypatch.setattr(download.time, "sleep", lambda s: None)
    photo = write_image(tmp_path / "photo.png", seed=1)
    style = write_image(tmp_path / "style.png", seed=2)
    result = stylize_cli(photo, style, tmp_path / "out.png")
    assert result.exit_code == 2, result.output
    assert "--vgg-weights" in result.output and "--decoder-weights" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out.png").exists()


def test_given_files_need_no_network_and_wrong_files_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("CYCLEGAN_ADAIN_URL", "http://127.0.0.1:9/")
    vgg, dec = published_files(tmp_path / "files", seed=1)
    photo = write_image(tmp_path / "photo.png", size=(24, 24), seed=1)
    style = write_image(tmp_path / "style.png", size=(24, 24), seed=2)
    files = ["--vgg-weights", tmp_path / "files" / "vgg_normalised.pth",
             "--decoder-weights", tmp_path / "files" / "decoder.pth"]
    result = stylize_cli(photo, style, tmp_path / "out.png", *files)
    assert result.exit_code == 0, result.output
    # the encoder file given as the decoder: refused in one line
    result = stylize_cli(photo, style, tmp_path / "out2.png", *files[:2], "--decoder-weights", files[1])
    assert result.exit_code == 2 and "layout of the published AdaIN files" in result.output
    with pytest.raises(UserError, match="--alpha 1.5"):
        validate(StylizeConfig(method="adain", alpha=1.5))
    assert StylizeConfig().size == 512 and StylizeConfig(method="adain").size is None  # gatys keeps its default


# --- training a decoder --------------------------------------------------------------------------------


def train_cfg(tmp_path: Path, name: str, **kw) -> StyleTrainConfig:
    return StyleTrainConfig(method="adain", content=str(tmp_path / "photos"), style_dir=str(tmp_path / "paintings"),
                            name=name, checkpoints_dir=str(tmp_path / "runs"), image_size=32, batch_size=2,
                            vgg_weights=str(tmp_path / "files" / "vgg_normalised.pth"), steps=6, workers=0,
                            device="cpu", wandb_mode="disabled", sample_every=2, **kw)


def test_train_decoder_smoke_run_and_exact_resume(tmp_path):
    published_files(tmp_path / "files")
    make_folder(tmp_path / "photos", 3, size=(40, 36))
    make_folder(tmp_path / "paintings", 2, size=(36, 40), seed=50)

    full = adain.DecoderRun.launch(train_cfg(tmp_path, "full"))
    assert full.step == 6 and not full.interrupted
    run = tmp_path / "runs" / "full"
    assert {"config.json", "latest.pt", "decoder.safetensors", "samples"} <= {p.name for p in run.iterdir()}
    assert load_state(run / "latest.pt")["step"] == 6

    adain.DecoderRun.launch(train_cfg(tmp_path, "resumed", max_steps=3))
    assert load_state(tmp_path / "runs" / "resumed" / "latest.pt")["step"] == 3
    adain.DecoderRun.launch(train_cfg(tmp_path, "resumed", max_steps=3, resume=True))
    assert load_state(tmp_path / "runs" / "resumed" / "latest.pt")["step"] == 3  # --max-steps counts all steps
    adain.DecoderRun.launch(train_cfg(tmp_path, "resumed", max_steps=6, resume=True))
    a, b = load_file(run / "decoder.safetensors"), load_file(tmp_path / "runs" / "resumed" / "decoder.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    start = adain.decoder().state_dict()  # it did learn: not the initial weights of any seed
    assert not torch.equal(a["28.weight"], start["28.weight"])

    # the trained decoder is a --decoder-weights for stylize (the run folder, or its file)
    photo = write_image(tmp_path / "photo.png", size=(24, 24), seed=1)
    style = write_image(tmp_path / "style.png", size=(24, 24), seed=2)
    result = stylize_cli(photo, style, tmp_path / "out.png", "--vgg-weights", tmp_path / "files" / "vgg_normalised.pth",
                         "--decoder-weights", run)
    assert result.exit_code == 0, result.output

    with pytest.raises(UserError, match="already holds a run"):
        adain.DecoderRun.launch(train_cfg(tmp_path, "full"))
    with pytest.raises(UserError, match="--style-dir"):
        adain.DecoderRun.launch(StyleTrainConfig(method="adain", content=str(tmp_path / "photos"),
                                             checkpoints_dir=str(tmp_path / "runs"), name="x"))


def test_models_list_shows_the_adain_files(adain_url, tmp_path):
    result = runner.invoke(app, ["models", "list"])
    assert result.exit_code == 0 and "adain_vgg" in result.output and "adain_decoder" in result.output
    assert "✓" not in result.output  # nothing in the (empty) cache yet
    load_network(adain_weights("decoder"))  # downloads both files
    result = runner.invoke(app, ["models", "list"])
    assert [line for line in result.output.splitlines() if "adain_" in line and "✓" in line]


# --- videos (stylize --method adain on mp4, mov, mkv, webm, gif) ----------------------------------------


def test_a_video_is_stylised_frame_by_frame_with_its_audio(adain_url, tmp_path, monkeypatch):
    av = pytest.importorskip("av")
    from tests.test_video import probe, write_clip

    clip = write_clip(tmp_path / "clip.mp4", frames=6, size=(41, 33), fps=12)
    style = write_image(tmp_path / "style.png", size=(24, 24), seed=2)
    out = tmp_path / "out" / "clip_styled.mp4"
    encoded = []  # what goes into the encoder, before its (lossy) compression
    real_from_ndarray = av.VideoFrame.from_ndarray
    monkeypatch.setattr(av.VideoFrame, "from_ndarray",
                        lambda a, **k: encoded.append(a.copy()) or real_from_ndarray(a, **k))
    options = ["--alpha", "0.7", "--preserve-color", "--batch-size", "4"]
    result = stylize_cli(clip, style, out, *options)
    assert result.exit_code == 0, result.output
    before, after = probe(clip), probe(out)
    assert after["frames"] == 6 and after["size"] == (41, 33) and after["rate"] == Fraction(12)
    assert after["audio_bytes"] == before["audio_bytes"] > 0  # remuxed, not re-encoded
    assert len(encoded) == 6 and not list(out.parent.glob(".*"))

    # the first frame, decoded and stylised as an image (PNG: lossless), is what was encoded
    Image.fromarray(before["pixels"][0]).save(tmp_path / "frame0.png")
    result = stylize_cli(tmp_path / "frame0.png", style, tmp_path / "frame0_styled.png", *options)
    assert result.exit_code == 0, result.output
    image = pixels(tmp_path / "frame0_styled.png")
    assert np.abs(encoded[0].astype(int) - image).max() <= 1  # a batch of 4 vs 1: float rounding at most
    assert np.abs(encoded[0].astype(int) - before["pixels"][0]).mean() > 5  # stylised, not copied
    assert np.abs(after["pixels"][0].astype(int) - image).mean() < 6  # and decoded: H.264's loss only
    assert np.abs(encoded[1].astype(int) - image).mean() > 1  # each frame its own (the bars move)

    mtime = out.stat().st_mtime_ns
    result = stylize_cli(clip, style, out)
    assert result.exit_code == 0 and "skipped" in result.output and out.stat().st_mtime_ns == mtime


def test_a_corrupt_video_is_reported_and_skipped(adain_url, tmp_path):
    pytest.importorskip("av")
    from tests.test_video import probe, write_clip

    folder = tmp_path / "in"
    write_clip(folder / "good.mkv", frames=3, size=(32, 24), audio=False)
    write_image(folder / "photo.png", size=(32, 24), seed=3)
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    style = write_image(tmp_path / "style.png", size=(24, 24), seed=2)
    result = stylize_cli(folder, style, tmp_path / "out")
    assert result.exit_code == 1 and "broken.mp4" in result.output
    assert probe(tmp_path / "out" / "good.mkv")["frames"] == 3
    assert (tmp_path / "out" / "photo.png").is_file() and not (tmp_path / "out" / "broken.mp4").exists()


def test_gatys_refuses_videos(tmp_path):
    pytest.importorskip("av")
    from tests.test_video import write_clip

    clip = write_clip(tmp_path / "in" / "clip.mp4", frames=2, size=(32, 24), audio=False)
    style = write_image(tmp_path / "style.png", size=(24, 24), seed=2)
    for content in (clip, clip.parent):
        result = runner.invoke(app, ["stylize", str(content), str(style), str(tmp_path / "out"), "--device", "cpu"])
        assert result.exit_code == 2, result.output
        assert "minutes per frame" in result.output and "--method adain" in result.output
    assert not (tmp_path / "out").exists()


def test_temporal_smoothing_of_the_content_statistics_damps_flicker(adain_url):
    """A bright patch blinking in a corner moves the content statistics, so the whole stylised frame
    flickers, beyond the networks' reach of the patch too; smoothed statistics keep that far region steady.
    AdaIN's content normalisation is an instance norm, smoothed as every instance norm is (``video.py``)."""
    model, _ = load_network(adain_weights("decoder"))
    torch.manual_seed(0)
    model.set_style([torch.rand(1, 3, 32, 32)], [1.0])
    frames = (torch.rand(1, 3, 144, 144) * 0.5).repeat(6, 1, 1, 1)
    frames[1::2, :, :8, :8] = 1.0
    with torch.no_grad():
        plain = model(frames)
        with smoothed_norms(model, 0.9):  # carried from batch to batch
            smoothed = torch.cat([model(frames[:4]), model(frames[4:])])
    assert torch.allclose(smoothed[0], plain[0], atol=1e-5)  # the first frame has no past

    def flicker(y):  # the encoder and decoder see about 64 pixels around: 80 from the patch is out of reach
        far = y[:, :, 80:, 80:]
        return (far[1:] - far[:-1]).abs().mean()

    assert flicker(plain) > 1e-3
    assert flicker(smoothed) < 0.3 * flicker(plain)


# --- AdaIN is a network like any other: translate, tiles, export --------------------------------------------


def translate_cli(*args):
    return runner.invoke(app, ["translate", *map(str, args), "--device", "cpu", "--workers", "0", "--no-progress",
                               "--precision", "fp32"])


def test_translate_runs_adain_with_a_style_image_and_in_exact_tiles(adain_url, tmp_path):
    """An AdaIN decoder is a network ``translate`` runs: ``--style`` is the style image, and tiles hold the
    whole image's statistics of the content features, so the tiled output is the untiled one."""
    published_files(tmp_path / "files")
    photo = write_image(tmp_path / "in" / "photo.png", size=(150, 110), seed=3)
    style = write_image(tmp_path / "style.png", size=(40, 40), seed=2)
    decoder = tmp_path / "files" / "decoder.pth"
    result = translate_cli(decoder, photo, tmp_path / "whole.png", "--style", style)
    assert result.exit_code == 0, result.output
    result = translate_cli(decoder, photo, tmp_path / "tiled.png", "--style", style, "--tile", "64")
    assert result.exit_code == 0, result.output
    whole, tiled = pixels(tmp_path / "whole.png"), pixels(tmp_path / "tiled.png")
    assert whole.shape == (110, 150, 3) and whole.std() > 5  # a real image, not a clipped constant
    assert np.abs(whole - tiled).max() <= 1
    result = translate_cli(decoder, photo, tmp_path / "none.png")
    assert result.exit_code == 2 and "--style IMAGE" in result.output


@pytest.mark.parametrize("suffix", [".pt2", ".onnx"])
def test_adain_exports_with_its_style(adain_url, tmp_path, suffix):
    if suffix == ".onnx":
        pytest.importorskip("onnxruntime")
    published_files(tmp_path / "files")
    style = write_image(tmp_path / "style.png", size=(40, 40), seed=2)
    out = tmp_path / f"adain{suffix}"
    result = runner.invoke(app, ["export", str(tmp_path / "files" / "decoder.pth"), str(out), "--style", str(style)])
    assert result.exit_code == 0, result.output
    assert out.is_file() and "values in [0, 1]" in result.output


def test_a_decoder_with_nan_weights_writes_no_black_image(adain_url, tmp_path):
    """A non-finite output is a failure of that image, for every network: one check, in translate."""
    vgg, dec = published_files(tmp_path / "files")
    state = dec.state_dict()
    state["28.bias"] = torch.full_like(state["28.bias"], float("nan"))
    torch.save(state, tmp_path / "files" / "nan_decoder.pth")
    photo = write_image(tmp_path / "photo.png", size=(32, 32), seed=1)
    style = write_image(tmp_path / "style.png", size=(24, 24), seed=2)
    result = stylize_cli(photo, style, tmp_path / "out.png", "--vgg-weights", tmp_path / "files" / "vgg_normalised.pth",
                         "--decoder-weights", tmp_path / "files" / "nan_decoder.pth")
    assert result.exit_code == 1 and "not finite" in result.output
    assert not (tmp_path / "out.png").exists()
