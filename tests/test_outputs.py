"""Planning outputs (never over an input, never two to one path), writing images, progress, the summary."""

from __future__ import annotations

import errno
import io
import logging

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

from cyclegan import progress
from cyclegan.errors import UserError
from cyclegan.files import DiskError
from cyclegan.outputs import plan_outputs, write_image
from cyclegan.summary import Summary
from tests.conftest import make_folder
from tests.conftest import write_image as make_image


def test_plan_mirrors_changes_format_and_skips_existing(tmp_path):
    src = make_folder(tmp_path / "in", 2, ext=".jpg")
    make_image(src / "sub" / "anim.gif", fmt="GIF")
    out = tmp_path / "out"
    make_image(out / "img_000.png")
    summary = Summary()
    jobs = plan_outputs(src, out, summary, suffix=".png")
    assert [(s.relative_to(src).as_posix(), o.relative_to(out).as_posix()) for s, o in jobs] == [
        ("img_001.jpg", "img_001.png"), ("sub/anim.gif", "sub/anim.png")]
    assert summary.skipped == [src / "img_000.jpg"]
    jobs = plan_outputs(src, out, Summary(), overwrite=True)  # each input's own format; a GIF becomes a PNG
    assert [o.name for _, o in jobs] == ["img_000.jpg", "img_001.jpg", "anim.png"]


def test_plan_refuses_outputs_over_inputs(tmp_path):
    src = make_folder(tmp_path / "in", 2)
    photo = src / "img_000.png"
    with pytest.raises(UserError, match="would overwrite its input"):
        plan_outputs(photo, photo, Summary(), overwrite=True)
    with pytest.raises(UserError, match="would overwrite its input"):
        plan_outputs(photo, photo, Summary())  # even where the existing output would be skipped
    out = tmp_path / "out"
    out.mkdir()
    (out / "img_001.png").symlink_to(photo)  # an output path that leads to another input
    with pytest.raises(UserError, match=f"would overwrite the input {photo}"):
        plan_outputs(src, out, Summary(), overwrite=True)
    with pytest.raises(UserError, match="must be a folder too"):
        plan_outputs(src, tmp_path / "out.png", Summary())


def test_write_image_keeps_alpha_and_reports_a_full_disk(tmp_path, monkeypatch):
    rgb = np.full((4, 6, 3), 200, np.uint8)
    alpha = np.full((4, 6), 7, np.uint8)
    img = write_image(tmp_path / "a.png", rgb, alpha)
    assert Image.open(img).mode == "RGBA" and np.asarray(Image.open(img))[0, 0, 3] == 7
    assert Image.open(write_image(tmp_path / "a.jpg", rgb, alpha)).mode == "RGB"  # no alpha in JPEG
    pil = Image.fromarray(rgb)
    write_image(tmp_path / "b.webp", pil, Image.fromarray(alpha))
    assert pil.mode == "RGB"  # the caller's image is left as it was

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full)
    with pytest.raises(DiskError, match="no space left"):
        write_image(tmp_path / "c.png", rgb)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg", "a.png", "b.webp"]


def test_progress_writes_log_lines_without_a_terminal(monkeypatch, caplog):
    monkeypatch.setattr(progress, "LOG_EVERY", 0.0)
    console = Console(file=io.StringIO(), force_terminal=False)
    with caplog.at_level(logging.INFO), progress.progress_bar("info", console=console) as bar:
        task = bar.add_task("translating [bold]x", total=2, info="")
        bar.advance(task)
        bar.update(task, advance=1, info="loss 0.5")
        bar.advance(task, 0)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["translating [bold]x: 1/2 images ", "translating [bold]x: 2/2 images loss 0.5"]
    assert console.file.getvalue() == ""  # no live bar drawn into a log file


def test_summary_prints_paths_as_text(tmp_path):
    summary = Summary(failed=[(tmp_path / "x[/]y" / "[bold]a.jpg", "unreadable [red]"),
                              (tmp_path / "b.jpg", "broken")])
    summary.stopped, summary.not_done = f"cannot write {tmp_path / '[/]c.png'}: no space left on the device", 3
    console = Console(file=io.StringIO(), width=1000)
    summary.print(console)
    text = console.file.getvalue()
    assert f"failed: {tmp_path / 'x[/]y' / '[bold]a.jpg'}: unreadable [red]" in text
    assert f"failed: {tmp_path / 'b.jpg'}: broken" in text
    assert f"stopped: cannot write {tmp_path / '[/]c.png'}" in text
    assert summary.exit_code == 2
