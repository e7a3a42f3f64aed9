"""scripts/proof.py: the whole proof end to end at a tiny setting, and its verdicts."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan.data import to_uint8
from cyclegan.models import GeneratorSpec, build_generator
from cyclegan.style import vgg
from tests.conftest import make_folder, save_tiny_inception

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "proof.py"


def load_proof():
    spec = importlib.util.spec_from_file_location("proof", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["proof"] = module  # its dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


def tiny_datasets(root: Path) -> Path:
    """Both datasets the proof reads, as `_mini` folders of a few small random images."""
    for seed, name in enumerate(("summer2winter_yosemite_mini", "monet2photo_mini")):
        for j, split in enumerate(("trainA", "trainB", "testA", "testB")):
            make_folder(root / name / split, 4, size=(40, 40), ext=".jpg", seed=100 * seed + 10 * j)
    return root


def test_the_proof_runs_end_to_end_at_a_tiny_setting(tmp_path):
    torch.manual_seed(0)
    vgg_path = tmp_path / "vgg.pth"  # random weights, every layer (the NST baseline reads conv5_1)
    torch.save({f"features.{k}": v.half() for k, v in vgg.vgg19_features().state_dict().items()}, vgg_path)
    out = tmp_path / "proof"
    args = [sys.executable, str(SCRIPT), "--data", str(tiny_datasets(tmp_path / "data")), "--out", str(out),
            "--size", "32", "--max-steps", "2", "--nst-steps", "2", "--nst-images", "2", "--style-steps", "2",
            "--workers", "0", "--device", "cpu", "--vgg-weights", str(vgg_path),
            "--inception", str(save_tiny_inception(tmp_path / "inception.pt"))]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert done.returncode in (0, 1), done.stderr[-3000:]
    report = json.loads((out / "proof.json").read_text())
    assert done.returncode == (0 if report["passed"] else 1) and report["passed"] == (not report["failures"])
    assert "| summer2winter | winter → summer | NST |" in done.stdout  # the Markdown table
    cells = {(r["task"], r["direction"], r["method"]) for r in report["rows"]}
    assert len(cells) == 2 * 2 * 5  # two tasks, both directions, CycleGAN, two baselines, real images as they
    assert ("summer2winter", "summer → winter", "real images") in cells  # are and translated
    assert ("monet2photo", "Monet → photo", "real images, translated") in cells
    assert {r["images"] for r in report["rows"]} == {4, 2}  # every test input; NST's sample of them
    assert ("summer2winter", "winter → summer", "NST") in cells
    assert ("monet2photo", "photo → Monet", "CycleGAN") in cells
    assert report["cyclegan"]["monet2photo"]["steps"] == 2
    assert set(report["style"]) == {"style1", "style3"}
    assert set(report["style"]["style3"]["report"]) == {"0", "1", "2", "mix"}
    assert all(len(r["to_painting"]) == 3 for r in report["style"]["style3"]["report"].values())
    assert sorted(p.name for p in (out / "gallery").iterdir()) == [
        "monet2photo_AtoB.jpg", "monet2photo_BtoA.jpg", "style.jpg", "summer2winter_AtoB.jpg",
        "summer2winter_BtoA.jpg"]
    # A second call continues the finished runs instead of refusing their folders, and trains no further
    again = subprocess.run(args + ["--tasks", "monet2photo"], capture_output=True, text=True, timeout=600)
    assert again.returncode in (0, 1), again.stderr[-3000:]
    assert json.loads((out / "proof.json").read_text())["cyclegan"]["monet2photo"]["steps"] == 2


def test_a_usage_error_is_one_line_before_any_work(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--data", str(tmp_path), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "no summer2winter_yosemite (or summer2winter_yosemite_mini)" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()


def pair(direction, baseline, kid, cyclegan_kid):
    """CycleGAN and a baseline scored on the same inputs."""
    return [{"task": "t", "direction": direction, "against": baseline, "method": method, "kid": k}
            for method, k in ((baseline, kid), ("CycleGAN", cyclegan_kid))]


@pytest.mark.parametrize("on_all, on_sample, failed", [(0.010, 0.010, 0), (0.050, 0.010, 1), (0.010, 0.030, 1),
                                                       (0.050, 0.030, 2)])
def test_cyclegan_must_beat_both_baselines_in_every_direction(on_all, on_sample, failed):
    """Each baseline is compared with CycleGAN on the same inputs: "do nothing" on all, NST on its sample."""
    proof = load_proof()
    rows = [*pair("a → b", "do nothing", 0.040, on_all), *pair("a → b", "NST", 0.020, on_sample),
            *pair("b → a", "do nothing", 0.040, 0.010), *pair("b → a", "NST", 0.020, 0.010)]
    # the real images are KID's floor, shown beside "do nothing": a reference, not a baseline to beat
    rows += [{"task": "t", "direction": d, "against": "do nothing", "method": "real images", "kid": 0.001}
             for d in ("a → b", "b → a")]
    failures = proof.cyclegan_failures(rows)
    assert len(failures) == failed and all("a → b" in f for f in failures)


def test_a_failure_says_when_the_generators_rendering_alone_scores_no_better_than_the_baseline():
    """The generator on real images of its target domain: while that scores above a baseline, the run is
    too short for any translation of its to win, and the failure says so."""
    proof = load_proof()
    rows = [*pair("a → b", "do nothing", 0.010, 0.090), *pair("a → b", "NST", 0.070, 0.100)]
    rows.append({"task": "t", "direction": "a → b", "against": "do nothing", "method": "real images, translated",
                 "kid": 0.040})
    by_baseline = dict(zip(("do nothing", "NST"), proof.cyclegan_failures(rows), strict=True))
    assert "rendering of real b images alone scores 40.0: train longer" in by_baseline["do nothing"]
    assert "rendering" not in by_baseline["NST"]  # it renders well enough to beat NST: the translation does not


def test_style_networks_must_paint_keep_content_and_mix_in_between():
    proof = load_proof()
    good = {"0": {"to_painting": [0.4, 0.9, 1.0], "own_photo_nearest": 1.0},
            "1": {"to_painting": [0.9, 0.5, 1.0], "own_photo_nearest": 1.0},
            "2": {"to_painting": [0.9, 0.9, 0.6], "own_photo_nearest": 1.0},
            "mix": {"to_painting": [0.6, 0.7, 0.9], "own_photo_nearest": 1.0}}
    assert proof.style_failures("net", good) == []
    unmoved = {**good, "1": {"to_painting": [0.9, 1.1, 1.0], "own_photo_nearest": 1.0}}
    assert any("style 1" in f and "no nearer" in f for f in proof.style_failures("net", unmoved))
    same_texture = {**good, "2": {"to_painting": [0.9, 0.9, 0.6], "own_photo_nearest": 0.25}}
    assert any("25%" in f for f in proof.style_failures("net", same_texture))
    outside = {**good, "mix": {"to_painting": [0.3, 0.7, 0.9], "own_photo_nearest": 1.0}}
    assert any("painting 0" in f for f in proof.style_failures("net", outside))


def test_periodic_texture_sees_a_checkerboard_and_not_a_smooth_image(tmp_path):
    proof = load_proof()
    y, x = np.mgrid[:64, :64]
    smooth = (128 + 60 * np.sin(x / 9) * np.cos(y / 13)).astype(np.uint8)
    dotted = np.clip(smooth + 12.0 * ((x % 4 == 0) & (y % 4 == 0)), 0, 255).astype(np.uint8)
    for name, pixels in (("smooth", smooth), ("dotted", dotted)):
        Image.fromarray(np.stack([pixels] * 3, -1)).save(tmp_path / f"{name}.png")
    assert proof.periodic_texture(tmp_path / "smooth.png") < 2 < 5 < proof.periodic_texture(tmp_path / "dotted.png")


def test_resize_upsampling_starts_without_the_checkerboard(tmp_path):
    """What --upsample resize is for: an untrained paper generator already prints the 2-/4-pixel pattern on a
    smooth image; the resize-convolution one does not."""
    proof = load_proof()
    y, x = torch.meshgrid(torch.linspace(-1, 1, 64), torch.linspace(-1, 1, 64), indexing="ij")
    smooth = torch.stack([x, y, x * y]).unsqueeze(0) * 0.8
    texture = {}
    for upsample in ("transposed", "resize"):
        torch.manual_seed(0)
        net = build_generator(GeneratorSpec(ngf=8, n_blocks=2, upsample=upsample)).eval()
        with torch.no_grad():
            pixels = to_uint8(net(smooth))[0].permute(1, 2, 0).numpy()
        Image.fromarray(pixels).save(tmp_path / f"{upsample}.png")
        texture[upsample] = proof.periodic_texture(tmp_path / f"{upsample}.png")
    assert texture["resize"] < 2 < 4 < texture["transposed"], texture


def test_the_upsampling_option_reaches_the_training_configs(tmp_path):
    proof = load_proof()
    data = tiny_datasets(tmp_path / "data")
    for argv, expected in (([], "resize"), (["--upsample", "transposed"], "transposed"), (["--paper"], "transposed")):
        plan = proof.make_plan(proof.parse_args(["--data", str(data), "--tasks", "summer2winter", *argv]))
        assert plan.cyclegan["summer2winter"][0].upsample == expected


def test_a_proof_stopped_before_a_runs_first_checkpoint_continues(tmp_path):
    from cyclegan.run import CONFIG_FILE, check_run_folder
    from cyclegan.train import train

    proof = load_proof()
    argv = ["--data", str(tiny_datasets(tmp_path / "data")), "--out", str(tmp_path / "out"), "--tasks",
            "summer2winter", "--size", "32", "--max-steps", "1", "--workers", "0", "--device", "cpu"]
    cfg = proof.make_plan(proof.parse_args(argv)).cyclegan["summer2winter"][0]
    cfg.run_dir.mkdir(parents=True)
    (cfg.run_dir / CONFIG_FILE).write_text("{}")  # what a run killed before its first checkpoint leaves
    again = proof.continuing(cfg)
    check_run_folder(again.run_dir, again.resume, again.overwrite)  # refused before: "continue it with --resume"
    assert not again.resume and train(again).step == 1
    assert proof.continuing(cfg).resume  # now it has a checkpoint to continue from


def test_out_naming_a_file_is_one_line(tmp_path):
    (tmp_path / "out").write_text("a file")
    done = subprocess.run([sys.executable, str(SCRIPT), "--data", str(tiny_datasets(tmp_path / "data")), "--out",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert f"--out {tmp_path / 'out'} is a file" in done.stderr
