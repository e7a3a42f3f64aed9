"""Video translation: frames, size, frame rate and audio kept; broken videos skipped; flicker damped."""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan.config import TranslateConfig
from cyclegan.errors import UserError
from cyclegan.models import GeneratorSpec, build_generator
from cyclegan.summary import Summary
from cyclegan.translate import Translator, plan, translate_folder
from cyclegan.video import smoothed_norms

av = pytest.importorskip("av")

SPEC = GeneratorSpec(ngf=4, n_blocks=1)


def translator() -> Translator:
    torch.manual_seed(0)
    return Translator(build_generator(SPEC), SPEC, torch.device("cpu"))


def write_clip(path: Path, frames: int = 12, size=(65, 49), fps: int = 12, audio: bool = True) -> Path:
    """A clip of moving colour bars with a sine tone (AAC), written with PyAV."""
    w, h = size
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = w, h, "yuv444p"  # odd sides: 4:2:0 needs even ones
        sound = out.add_stream("aac", rate=44100, layout="mono") if audio else None
        x = np.arange(w)[None, :, None]
        for i in range(frames):
            rgb = ((x * 4 + i * 20 + np.array([0, 85, 170])) % 256 * np.ones((h, 1, 1))).astype(np.uint8)
            out.mux(video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        out.mux(video.encode(None))
        if sound is not None:
            t = np.arange(44100 * frames // fps) / 44100
            tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(tone, format="flt", layout="mono")
            frame.sample_rate = 44100
            out.mux(sound.encode(frame))
            out.mux(sound.encode(None))
    return path


def probe(path: Path) -> dict:
    with av.open(str(path)) as f:
        v = f.streams.video[0]
        rate = v.average_rate  # read while the file is open: the stream object dies with it
        frames = [fr.to_ndarray(format="rgb24") for fr in f.decode(v)]
    with av.open(str(path)) as f:
        audio = [p.size for p in f.demux(f.streams.audio[0]) if p.size] if f.streams.audio else []
    return {"frames": len(frames), "size": (frames[0].shape[1], frames[0].shape[0]), "rate": rate,
            "audio_bytes": sum(audio), "pixels": np.stack(frames)}


def test_a_clip_keeps_its_frames_size_rate_and_audio(tmp_path):
    src = write_clip(tmp_path / "clip.mp4")
    out = tmp_path / "out" / "clip_winter.mp4"
    cfg = TranslateConfig(input=str(src), output=str(out), batch_size=5, workers=0, progress=False)
    summary = translate_folder(cfg, translator=translator())
    assert summary.exit_code == 0 and summary.converted == [src]
    before, after = probe(src), probe(out)
    assert after["frames"] == 12 and after["size"] == (65, 49) and after["rate"] == Fraction(12)
    assert after["audio_bytes"] == before["audio_bytes"] > 0  # remuxed, not re-encoded
    assert np.abs(after["pixels"].astype(int) - before["pixels"]).mean() > 10  # translated, not copied
    assert not list(out.parent.glob(".*"))  # no temporary left
    again = translate_folder(cfg, translator=translator())  # the output exists: skipped
    assert again.skipped == [src] and not again.converted


def test_a_corrupt_video_is_reported_and_skipped(tmp_path):
    folder = tmp_path / "in"
    write_clip(folder / "good.mkv", frames=3, audio=False)
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    cfg = TranslateConfig(input=str(folder), output=str(tmp_path / "out"), workers=0, progress=False)
    summary = translate_folder(cfg, translator=translator())
    assert summary.exit_code == 1 and summary.converted == [folder / "good.mkv"]
    assert [p for p, _ in summary.failed] == [folder / "broken.mp4"]
    assert probe(tmp_path / "out" / "good.mkv")["frames"] == 3
    assert not (tmp_path / "out" / "broken.mp4").exists()


def test_an_animated_gif_is_a_video_and_a_still_one_an_image(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    frames = [Image.new("RGB", (33, 21), c) for c in ("red", "green", "blue")]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    frames[0].save(folder / "still.gif")
    cfg = TranslateConfig(input=str(folder), output=str(tmp_path / "out"), workers=0, progress=False)
    summary = translate_folder(cfg, translator=translator())
    assert summary.exit_code == 0
    with Image.open(tmp_path / "out" / "anim.gif") as gif:
        assert gif.n_frames == 3 and gif.size == (33, 21)
    assert Image.open(tmp_path / "out" / "still.png").size == (33, 21)


def test_temporal_smoothing_damps_flicker():
    """A bright patch blinking in a corner moves every instance norm's statistics, so the whole frame
    flickers, far from the patch too; smoothed statistics keep that far region steady."""
    t = translator()
    base = torch.rand(1, 3, 64, 64) * 0.5
    frames = base.repeat(10, 1, 1, 1)
    frames[1::2, :, :16, :16] = 1.0
    x = (frames * 255).to(torch.uint8)
    plain = t(x)
    with smoothed_norms(t.base, 0.9):
        smooth = t(x)
    assert torch.equal(t(x), plain)  # the original norms are back
    assert torch.allclose(smooth[0], plain[0], atol=1e-5)  # the first frame has no past

    def flicker(y):  # frame-to-frame change beyond the tiny generator's receptive field of the patch
        far = y[4:, :, 40:, 40:]
        return (far[1:] - far[:-1]).abs().mean()

    assert flicker(plain) > 1e-3
    assert flicker(smooth) < 0.3 * flicker(plain)


def test_without_pyav_a_video_is_a_one_line_error(tmp_path, monkeypatch):
    src = write_clip(tmp_path / "clip.mp4", frames=2, audio=False)
    monkeypatch.setitem(sys.modules, "av", None)  # import av now fails as when it is not installed
    cfg = TranslateConfig(input=str(src), output=str(tmp_path / "out.mp4"))
    with pytest.raises(UserError, match=r"pip install 'cyclegan\[video\]'"):
        plan(cfg, Summary())
