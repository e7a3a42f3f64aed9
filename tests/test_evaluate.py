"""Evaluating runs: FID/KID during training (--eval-every)."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file
from typer.testing import CliRunner

from cyclegan import tracking
from cyclegan.checkpoint import load_generator
from cyclegan.cli import app
from tests.conftest import make_folder

runner = CliRunner()
TINY = ["--image-size", "32", "--load-size", "36", "--ngf", "8", "--ndf", "8", "--workers", "0",
        "--net-g", "resnet_6blocks", "--wandb-mode", "disabled"]


def output(result) -> str:
    return " ".join(result.output.split())


@pytest.fixture
def dataset(tmp_path):
    """A dataset folder laid out like the official ones, with a test split."""
    root = tmp_path / "ds"
    for split, n, seed in (("trainA", 2, 0), ("trainB", 2, 100), ("testA", 3, 200), ("testB", 4, 300)):
        make_folder(root / split, n, seed=seed)
    return root


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
    net, spec = load_generator(best / "G_BA.safetensors")
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
    assert not list((tmp_path / "runs").rglob("latest.pt"))
