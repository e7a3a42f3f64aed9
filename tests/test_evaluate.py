"""Evaluating runs: side by side with the references on the test split, and during training (--eval-every)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

import cyclegan
from cyclegan import evaluate as evaluation
from cyclegan import tracking
from cyclegan.cli import app
from cyclegan.networks import load_network
from cyclegan.style import vgg
from tests.conftest import make_folder, save_tiny_inception, write_image

runner = CliRunner()
TINY = ["--image-size", "32", "--load-size", "36", "--ngf", "8", "--ndf", "8", "--workers", "0",
        "--net-g", "resnet_6blocks", "--wandb-mode", "disabled"]


def output(result) -> str:
    return " ".join(result.output.split())


def make_dataset(root: Path) -> Path:
    """A dataset folder laid out like the official ones, with a test split."""
    for split, n, seed in (("trainA", 2, 0), ("trainB", 2, 100), ("testA", 3, 200), ("testB", 4, 300)):
        make_folder(root / split, n, seed=seed)
    return root


@pytest.fixture
def dataset(tmp_path):
    return make_dataset(tmp_path / "ds")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """A run trained for two steps, its dataset and a tiny FID network, shared by the report tests."""
    root = tmp_path_factory.mktemp("smoke")
    ds = make_dataset(root / "ds")
    train("--domainA", ds / "trainA", "--domainB", ds / "trainB", "--checkpoints-dir", root / "runs",
          "--name", "smoke", "--max-steps", "2", *TINY)
    return root / "runs" / "smoke", ds, save_tiny_inception(root / "tiny_inception.pt")


def evaluate(*args, ok=True):
    result = runner.invoke(app, ["evaluate", *map(str, args), "--workers", "0", "--wandb-mode", "disabled"])
    if ok:
        assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def links(page: Path) -> list[Path]:
    """Every image and link target of an HTML page, resolved against its folder."""
    return [page.parent / unquote(u) for u in re.findall(r"(?:src|href)='([^']+)'", page.read_text())]


def test_run_report_scores_translations_and_inputs(smoke_run):
    run, ds, inception = smoke_run
    evaluate(run, "--inception", inception)  # the test split is found beside the run's training folders

    metrics = json.loads((run / "metrics.json").read_text())
    for direction, n_in, n_real in (("AtoB", 3, 4), ("BtoA", 4, 3)):
        assert set(metrics[direction]) == {"do_nothing", "real", "identity", "cyclegan"}
        for method, scores in metrics[direction].items():
            # "real": the target domain's training images, as many as there are inputs (here only 2 exist);
            # "identity": the same images through the generator
            n_fake = 2 if method in ("real", "identity") else n_in
            assert (scores["n_fake"], scores["n_real"]) == (n_fake, n_real)
            assert scores["fid"] >= 0 and scores["kid_std"] >= 0
        assert metrics[direction]["cyclegan"] != metrics[direction]["do_nothing"]
        assert metrics[direction]["identity"] != metrics[direction]["real"]
    # the identity outputs are the generator's translations of the real images of its target domain
    references = evaluation.real_references(str(ds / "trainB"), 3)
    rendered = sorted((run / "eval" / "AtoB" / "identity").iterdir())
    assert [p.stem for p in rendered] == [p.stem for p in references]
    expected = np.asarray(cyclegan.load(run, direction="AtoB", device="cpu")(Image.open(references[0])), np.int16)
    assert np.abs(expected - np.asarray(Image.open(rendered[0]), np.int16)).max() <= 1  # uint8 rounding
    fakes = sorted((run / "eval" / "AtoB" / "cyclegan").iterdir())
    assert [p.stem for p in fakes] == sorted(p.stem for p in (ds / "testA").iterdir())
    assert all(Image.open(p).size == (32, 32) for p in fakes)

    page = run / "eval.html"
    targets = links(page)
    assert len(targets) == 2 * 2 * (3 + 4)  # thumbnail + full image, input and CycleGAN, every test image
    assert all(t.is_file() for t in targets)
    assert "CycleGAN" in page.read_text() and "NST" not in page.read_text()


def test_run_report_logs_the_table_to_the_runs_wandb_run(smoke_run, monkeypatch):
    run, _, inception = smoke_run
    calls = {}

    class FakeTracker:
        def __init__(self, run_dir, mode, project, name, config, run_id=None):
            calls["init"] = (run_dir, mode, project, name, run_id)

        def log_table(self, key, columns, rows, step=None):
            calls["table"] = (key, columns, rows)

        def finish(self):
            calls["finished"] = True

    monkeypatch.setattr(evaluation, "Tracker", FakeTracker)
    result = runner.invoke(app, ["evaluate", str(run), "--inception", str(inception), "--workers", "0",
                                 "--wandb-mode", "offline"])
    assert result.exit_code == 0, result.output
    assert calls["init"] == (run, "offline", "cyclegan", "smoke", None)  # the training run (no W&B id here)
    key, columns, rows = calls["table"]
    assert columns[:3] == ["direction", "method", "fid"] and len(rows) == 8 and calls["finished"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert ["B→A", "CycleGAN", metrics["BtoA"]["cyclegan"]["fid"]] == rows[7][:3]
    # by default, a run that trained without W&B gets no W&B run from its evaluation
    calls.clear()
    result = runner.invoke(app, ["evaluate", str(run), "--inception", str(inception), "--workers", "0"])
    assert result.exit_code == 0, result.output
    assert calls == {} and not (run / "wandb").exists()


def test_run_report_one_direction_on_a_sample(smoke_run, tmp_path):
    run, ds, inception = smoke_run
    evaluate(run, "--inception", inception, "--test-dir", ds, "--direction", "BtoA", "--max-images", "2")
    metrics = json.loads((run / "metrics.json").read_text())
    assert "AtoB" not in metrics and metrics["BtoA"]["cyclegan"]["n_fake"] == 2
    assert metrics["BtoA"]["do_nothing"]["n_fake"] == 2 and metrics["BtoA"]["cyclegan"]["n_real"] == 3


def test_real_references_are_a_fixed_sample_of_the_target_training_images(tmp_path):
    """KID's floor: as many real images of the target domain as there are inputs, the same on every call."""
    folder = make_folder(tmp_path / "trainB", 5)
    picked = evaluation.real_references(str(folder), 3)
    assert len(picked) == 3 and picked == evaluation.real_references(str(folder), 3)
    assert all(p.parent == folder for p in picked)
    assert len(evaluation.real_references(str(folder), 9)) == 5
    assert evaluation.real_references(str(tmp_path / "moved"), 3) == []  # a run copied without its dataset


def tiny_vgg19(weights, layers, pooling="max", device="cpu"):
    """A VGG19-shaped network with few channels and random weights, in place of the real one."""
    torch.manual_seed(0)
    depth = max(vgg.LAYER_INDEX[name] for name in layers) + 1
    return vgg.vgg19_features(pooling, widths=(4, 8, 8, 8, 8))[:depth].to(device).eval().requires_grad_(False)


def test_run_report_with_the_nst_baseline(smoke_run, tmp_path, monkeypatch):
    run, ds, inception = smoke_run
    monkeypatch.setattr(evaluation, "load_vgg19", tiny_vgg19)
    nst_args = ["--baseline", "nst", "--nst-steps", "2", "--max-images", "2"]
    evaluate(run, "--inception", inception, *nst_args)  # style: the run's training images of the target domain

    metrics = json.loads((run / "metrics.json").read_text())
    for direction in ("AtoB", "BtoA"):
        assert set(metrics[direction]) == {"do_nothing", "real", "identity", "cyclegan", "nst"}
        assert metrics[direction]["nst"]["n_fake"] == 2
        # how long each method took to make its outputs (the proof's wall-time column)
        assert metrics[direction]["nst"]["seconds"] > 0 and metrics[direction]["cyclegan"]["seconds"] > 0
        assert "seconds" not in metrics[direction]["do_nothing"]
    made = json.loads((run / "eval" / "BtoA" / "nst" / "nst.json").read_text())
    assert sorted(Path(r["style"]).name for r in made.values()) == sorted(p.name for p in (ds / "trainA").iterdir())
    outputs = sorted((run / "eval" / "BtoA" / "nst").glob("*.png"))
    assert len(outputs) == 2 and all(Image.open(p).size == (32, 32) for p in outputs)
    page = run / "eval.html"
    assert "NST" in page.read_text() and all(t.is_file() for t in links(page))
    assert len(links(page)) == 2 * 3 * (2 + 2)  # thumbnail + image; input, CycleGAN, NST; 2 inputs each way

    # NST outputs are reused while their recipe holds, and redone when it changes.
    stamp = {p: p.stat().st_mtime_ns for p in outputs}
    evaluate(run, "--inception", inception, *nst_args, "--direction", "BtoA")
    assert {p: p.stat().st_mtime_ns for p in outputs} == stamp
    style = write_image(tmp_path / "style.png", size=(40, 24), seed=7)
    evaluate(run, "--inception", inception, *nst_args, "--direction", "BtoA", "--style", style)
    assert all(p.stat().st_mtime_ns != stamp[p] for p in outputs)
    made = json.loads((run / "eval" / "BtoA" / "nst" / "nst.json").read_text())
    assert {r["style"] for r in made.values()} == {str(style)}


@pytest.mark.parametrize("args, message", [
    (["--style", "x.jpg"], "--baseline nst"),
    (["--baseline", "cyclegan"], "--baseline"),
    (["--direction", "sideways"], "--direction"),
    (["--max-images", "1"], "--max-images"),
    (["--test-dir", "nowhere"], "testA/ and testB/"),
])
def test_run_report_option_errors(smoke_run, args, message):
    run, _, inception = smoke_run
    result = evaluate(run, "--inception", inception, *args, ok=False)
    assert result.exit_code == 2 and message in output(result)


def test_folder_pair_refuses_run_options_and_run_needs_generators(tmp_path, tiny_inception):
    a, b = make_folder(tmp_path / "a", 2), make_folder(tmp_path / "b", 2)
    result = evaluate(a, b, "--baseline", "nst", "--inception", tiny_inception, ok=False)
    assert result.exit_code == 2 and "--baseline" in output(result)
    result = evaluate(a, "--inception", tiny_inception, ok=False)
    assert result.exit_code == 2 and "not a run folder" in output(result)


def train(*args):
    result = runner.invoke(app, ["train", *map(str, args)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def test_eval_every_logs_scores_keeps_best_and_leaves_training_unchanged(dataset, tmp_path, tiny_inception,
                                                                        monkeypatch):
    logged = []
    monkeypatch.setattr(tracking.Tracker, "log", lambda self, metrics, step: logged.append((step, metrics)))
    common = ["--domainA", dataset / "trainA", "--domainB", dataset / "trainB", "--checkpoints-dir", tmp_path,
              "--epochs", "1", "--epochs-decay", "1", *TINY]
    train(*common, "--name", "plain")
    train(*common, "--name", "evaluated", "--eval-every", "1", "--inception", tiny_inception)

    evals = [(step, m) for step, m in logged if "eval/kid" in m]
    assert [step for step, _ in evals] == [2, 4]  # after each of the two 2-step epochs
    for _, m in evals:
        assert {"eval/AtoB/fid", "eval/AtoB/kid_mean", "eval/AtoB/kid_std", "eval/BtoA/fid"} <= set(m)
        assert m["eval/kid"] == pytest.approx((m["eval/AtoB/kid_mean"] + m["eval/BtoA/kid_mean"]) / 2)

    best = tmp_path / "evaluated" / "best"
    meta = json.loads((best / "metrics.json").read_text())
    best_kid = min(m["eval/kid"] for _, m in evals)
    assert meta["kid"] == pytest.approx(best_kid)
    assert meta["epoch"] == 1 + [m["eval/kid"] for _, m in evals].index(best_kid)
    assert meta["AtoB"]["n_fake"] == 3 and meta["AtoB"]["n_real"] == 4  # testA translated, scored against testB
    net, spec = load_network(best / "G_BA.safetensors")
    assert spec.ngf == 8

    # Evaluation draws no random numbers from the training's streams: same seed, same weights.
    for g in ("G_AB", "G_BA"):
        x = load_file(tmp_path / "plain" / f"{g}.safetensors")
        y = load_file(tmp_path / "evaluated" / f"{g}.safetensors")
        assert all((x[k] == y[k]).all() for k in x)


def test_eval_every_needs_a_test_split_before_training(image_dirs, tmp_path, tiny_inception):
    a, b = image_dirs
    result = runner.invoke(app, ["train", "--domainA", str(a), "--domainB", str(b), "--checkpoints-dir",
                                 str(tmp_path / "runs"), "--eval-every", "1", "--inception", str(tiny_inception),
                                 *TINY])
    assert result.exit_code == 2 and "--test-dir" in output(result)
    assert not (tmp_path / "runs").exists()
