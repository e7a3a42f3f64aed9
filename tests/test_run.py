"""Run folders: never clobbered, locked while in use, resumed where they are, saved consistently, and
training that always exits with its error."""

import errno
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from typer.testing import CliRunner

from cyclegan import checkpoint
from cyclegan.checkpoint import load_state
from cyclegan.cli import app
from cyclegan.config import TrainConfig
from cyclegan.distributed import World
from cyclegan.errors import UserError
from cyclegan.files import DiskError
from cyclegan.run import RunFolder, StepRun, check_run_folder
from cyclegan.tracking import Tracker
from cyclegan.train import train
from tests.conftest import REPO, make_folder
from tests.test_train import TINY, train_cli

runner = CliRunner()


def tiny(a, b, root, name="run", **kw) -> TrainConfig:
    options = dict(domain_a=str(a), domain_b=str(b), checkpoints_dir=str(root), name=name, image_size=32,
                   load_size=36, ngf=8, ndf=8, workers=0, net_g="resnet_6blocks", wandb_mode="disabled",
                   max_steps=2)
    return TrainConfig(**{**options, **kw})


def file_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def export_step(path: Path) -> str:
    with safe_open(str(path), framework="pt") as f:
        return f.metadata()["step"]


def test_a_new_run_never_overwrites_an_existing_one(image_dirs, tmp_path):
    a, b = image_dirs
    args = ["--domainA", str(a), "--domainB", str(b), "--checkpoints-dir", str(tmp_path), "--name", "x",
            "--max-steps", "2", "--wandb-mode", "disabled", *TINY]
    train_cli(*args)
    before = file_bytes(tmp_path / "x")
    result = train_cli(*args, ok=False)
    assert result.exit_code == 2
    assert "--resume" in result.output and "--name" in result.output and "--overwrite" in result.output
    assert file_bytes(tmp_path / "x") == before
    with pytest.raises(UserError, match="already holds a run"):
        check_run_folder(tmp_path / "x", resume=False)
    check_run_folder(tmp_path / "x", resume=True)  # there is one to resume
    with pytest.raises(UserError, match="no run to resume"):
        check_run_folder(tmp_path / "y", resume=True)


def test_overwrite_replaces_an_existing_run(image_dirs, tmp_path):
    a, b = image_dirs
    train(tiny(a, b, tmp_path, max_steps=3, sample_every=3))
    run = tmp_path / "run"
    (run / "epoch_005").mkdir()
    (run / "notes.txt").write_text("the user's own file")
    assert (run / "samples" / "step_0000003.png").is_file()
    result = train(tiny(a, b, tmp_path, overwrite=True, seed=1))
    assert result.step == 2 and load_state(run / "latest.pt")["step"] == 2
    # nothing of the old run is mixed into the new one; what is not a run's is left alone
    assert not (run / "samples" / "step_0000003.png").exists() and not (run / "epoch_005").exists()
    assert (run / "notes.txt").read_text() == "the user's own file"


def test_run_folder_problems_stop_the_cli_before_a_dataset_downloads(image_dirs, tmp_path, monkeypatch):
    monkeypatch.setenv("CYCLEGAN_DATASETS_URL", "http://127.0.0.1:9/datasets")  # never the real server
    a, b = image_dirs
    train(tiny(a, b, tmp_path))
    common = ["--checkpoints-dir", str(tmp_path), "--name", "run", "--root", str(tmp_path / "data")]
    result = runner.invoke(app, ["train", "--domainA", "horse", "--domainB", "zebra", *common])
    assert result.exit_code == 2 and "already holds a run" in result.output, result.output
    assert not (tmp_path / "data").exists()  # no download was started
    result = runner.invoke(app, ["train", "--resume", "--overwrite", *common])
    assert result.exit_code == 2 and "--resume --overwrite: choose one" in result.output, result.output


def test_two_processes_never_train_in_one_folder_and_a_dead_ones_lock_does_not_block(image_dirs, tmp_path):
    a, b = image_dirs
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from cyclegan.run import RunFolder; "
         "RunFolder(sys.argv[1], resume=False).open(); print('locked', flush=True); time.sleep(120)",
         str(tmp_path / "run")], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(UserError, match=f"in use by another training process \\(pid {holder.pid}\\)"):
            train(tiny(a, b, tmp_path))
        with pytest.raises(UserError, match="in use"):
            train(tiny(a, b, tmp_path, overwrite=True))
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (tmp_path / "run" / ".lock").exists()  # left behind by the killed process: no obstacle
    assert train(tiny(a, b, tmp_path)).step == 2


def test_resume_continues_a_copied_run_and_leaves_the_original_alone(image_dirs, tmp_path):
    a, b = image_dirs
    train(tiny(a, b, tmp_path, name="orig", wandb_mode="offline"))
    shutil.copytree(tmp_path / "orig", tmp_path / "copy")
    before = file_bytes(tmp_path / "orig")
    train(TrainConfig(name="copy", checkpoints_dir=str(tmp_path), resume=True, max_steps=4, workers=0,
                      wandb_mode="offline"))
    after = file_bytes(tmp_path / "orig")
    quiet = [k for k in before if "/logs/" not in k]  # the W&B service appends to its logs after a run ends
    assert sorted(after) == sorted(before) and all(after[k] == before[k] for k in quiet)
    original, copy = load_state(tmp_path / "orig" / "latest.pt"), load_state(tmp_path / "copy" / "latest.pt")
    assert copy["step"] == 4 and export_step(tmp_path / "copy" / "G_AB.safetensors") == "4"
    assert copy["wandb_id"] and copy["wandb_id"] != original["wandb_id"]  # its own W&B run, not the original's


def test_resume_continues_a_renamed_run(image_dirs, tmp_path):
    a, b = image_dirs
    train(tiny(a, b, tmp_path, name="before", wandb_mode="offline"))  # stops mid-epoch, saved after the loop
    wandb_id = load_state(tmp_path / "before" / "latest.pt")["wandb_id"]
    assert wandb_id
    (tmp_path / "before").rename(tmp_path / "after")
    result = train(TrainConfig(name="after", checkpoints_dir=str(tmp_path), resume=True, max_steps=3, workers=0,
                               wandb_mode="offline"))
    state = load_state(tmp_path / "after" / "latest.pt")
    assert result.step == 3 and state["step"] == 3 and state["wandb_id"] == wandb_id  # the same W&B run goes on
    assert not (tmp_path / "before").exists()


def test_stale_temporaries_are_removed_when_a_run_starts_again(image_dirs, tmp_path):
    a, b = image_dirs
    train(tiny(a, b, tmp_path))
    run = tmp_path / "run"
    stale = [run / ".latest.pt.k1ll3d.cyclegan-tmp", run / "samples" / ".x.png.ab.cyclegan-tmp"]
    for p in stale:
        p.write_bytes(b"half a checkpoint")
    other = tmp_path / "run" / "notes.txt"
    other.write_text("mine")
    train(TrainConfig(name="run", checkpoints_dir=str(tmp_path), resume=True, max_steps=3, workers=0,
                      wandb_mode="disabled"))
    assert not any(p.exists() for p in stale) and other.read_text() == "mine"


def test_latest_pt_is_written_last_and_a_restart_reexports_generators(image_dirs, tmp_path, monkeypatch):
    a, b = image_dirs
    train(tiny(a, b, tmp_path, max_steps=2))
    real_save = checkpoint.atomic_write

    def killed_while_writing_G_BA(path, write):
        if Path(path).name == "G_BA.safetensors":
            raise KeyboardInterrupt  # the process dies here
        return real_save(path, write)

    monkeypatch.setattr(checkpoint, "atomic_write", killed_while_writing_G_BA)
    resume = TrainConfig(name="run", checkpoints_dir=str(tmp_path), resume=True, max_steps=3, workers=0,
                         wandb_mode="disabled")
    with pytest.raises(KeyboardInterrupt):
        train(resume)
    monkeypatch.undo()
    run = tmp_path / "run"
    # the commit point still names the last complete save; G_AB went ahead of it
    assert load_state(run / "latest.pt")["step"] == 2
    assert export_step(run / "G_AB.safetensors") == "3" and export_step(run / "G_BA.safetensors") == "2"
    resume.max_steps = 2  # restart without training: the exports are brought back to latest.pt's step
    train(resume)
    state = load_state(run / "latest.pt")
    for g in ("G_AB", "G_BA"):
        assert export_step(run / f"{g}.safetensors") == "2"
        saved = load_file(run / f"{g}.safetensors")
        assert all(torch.equal(saved[k], state["trainer"][g][k].float()) for k in saved)


def test_a_full_disk_while_saving_is_one_clear_error_and_keeps_the_last_checkpoint(image_dirs, tmp_path,
                                                                                   monkeypatch):
    a, b = image_dirs
    train(tiny(a, b, tmp_path, max_steps=4))  # 4 A images: one epoch, saved at its end
    before = file_bytes(tmp_path / "run")

    class FullDisk(io.BytesIO):
        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    def full_open(path, mode="r", *args, **kwargs):
        return FullDisk() if "w" in mode else open(path, mode, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "open", full_open, raising=False)
    with pytest.raises(DiskError) as e:
        train(TrainConfig(name="run", checkpoints_dir=str(tmp_path), resume=True, max_steps=8, workers=0,
                          wandb_mode="disabled"))
    message = str(e.value)
    assert "no space left" in message and str(tmp_path / "run") in message and "\n" not in message
    monkeypatch.undo()
    after = file_bytes(tmp_path / "run")
    saved = ("latest.pt", "G_AB.safetensors", "G_BA.safetensors")
    assert all(after[k] == before[k] for k in saved)
    assert not [k for k in after if k.endswith(".cyclegan-tmp")]
    assert load_state(tmp_path / "run" / "latest.pt")["step"] == 4


class FillingDisk(io.BytesIO):
    """A disk with room for ``ROOM`` bytes: the write that crosses it fails, and smaller ones after it still
    fit, as on a real disk (torch's zip writer then fails to close the archive, over the ``OSError``)."""

    ROOM = 100_000

    def write(self, data):
        if self.tell() + len(data) > self.ROOM:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(data)


def test_a_disk_that_fills_part_way_through_a_checkpoint_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint, "open", lambda path, mode="r", *a, **k: FillingDisk(), raising=False)
    with pytest.raises(DiskError) as e:
        checkpoint.save_state(tmp_path / "latest.pt", {"trainer": {"w": torch.zeros(100_000)}})
    assert str(e.value) == f"cannot write {tmp_path / 'latest.pt'}: no space left on the device"
    assert e.value.__cause__ is None or isinstance(e.value.__cause__, OSError)
    assert not list(tmp_path.iterdir())  # no temporary left behind


def test_the_train_command_says_a_full_disk_in_one_line(image_dirs, tmp_path):
    a, b = image_dirs
    prelude = ("import cyclegan.checkpoint as c; from tests.test_run import FillingDisk\n"
               "c.open = lambda p, m='r', *a, **k: FillingDisk() if 'latest' in p.name else open(p, m, *a, **k)")
    result = run_cli("--domainA", str(a), "--domainB", str(b), "--checkpoints-dir", str(tmp_path), "--name", "run",
                     "--max-steps", "2", "--image-size", "32", "--load-size", "36", "--ngf", "8", "--ndf", "8",
                     "--workers", "0", "--wandb-mode", "disabled", prelude=prelude)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"cannot write {tmp_path / 'run' / 'latest.pt'}: no space left on the device" in result.stderr


def run_cli(*args, timeout=90, prelude="") -> subprocess.CompletedProcess:
    """``cyclegan train ARGS`` in a fresh process; ``prelude`` is Python run first (to patch something)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    main = "import runpy; runpy.run_module('cyclegan', run_name='__main__')"
    command = [sys.executable, "-c", f"{prelude}; {main}"] if prelude else [sys.executable, "-m", "cyclegan"]
    start = time.time()
    proc = subprocess.run([*command, "train", *args], env=env, capture_output=True, text=True, timeout=timeout)
    proc.seconds = time.time() - start
    return proc


def test_an_error_with_data_workers_exits_with_its_message(tmp_path):
    # A folder that turns unreadable after the start-up check (first_usable, switched off here to get
    # there) is found by a data worker: its message must reach the user as one line, without a hang.
    a = tmp_path / "A"
    a.mkdir()
    for i in range(3):
        (a / f"broken_{i}.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    b = make_folder(tmp_path / "B", 2)
    skip_check = "import cyclegan.data as d; d.first_usable = lambda *a, **k: None"
    proc = run_cli("--domainA", str(a), "--domainB", str(b), "--checkpoints-dir", str(tmp_path / "runs"),
                   "--wandb-mode", "disabled", *TINY[:-4], "--workers", "2", prelude=skip_check)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no usable image" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_crash_in_the_model_with_data_workers_exits(image_dirs, tmp_path):
    a, b = image_dirs  # unet_256 cannot take 32-pixel images: a shape error in the first step
    proc = run_cli("--domainA", str(a), "--domainB", str(b), "--checkpoints-dir", str(tmp_path / "runs"),
                   "--wandb-mode", "disabled", *TINY[:-4], "--net-g", "unet_256", "--workers", "2")
    assert proc.returncode not in (0, 130), proc.stdout + proc.stderr


def test_run_folder_writes_nothing_on_other_ranks(tmp_path):
    with RunFolder(tmp_path / "r", resume=False, main=False) as folder:
        folder.write_config({"a": 1})
        folder.save({"step": 1})
    assert not (tmp_path / "r").exists()


class CountingRun(StepRun):
    """The smallest StepRun: each batch is one step; it records what the loop asked of it."""

    def __init__(self, tmp_path, stop_at, fail_at=None, fail_in_step=False, error=RuntimeError("boom")):
        self.cfg = TrainConfig(name="count", checkpoints_dir=str(tmp_path), log_every=2, sample_every=3,
                               save_every=4)
        self.folder = RunFolder(tmp_path / "count", resume=False)
        self.loader, self.tracker = list(range(100)), Tracker(tmp_path, "disabled", "p", "count", {})
        self.step, self.total_steps, self.stop_at, self.saved_step, self.in_step = 0, stop_at, stop_at, None, False
        self.batch_in_epoch, self.steps_per_epoch, self.world = 0, 1000, World()
        self.fail_at, self.fail_in_step, self.error = fail_at, fail_in_step, error
        self.calls: list[tuple[str, int]] = []

    def train_step(self, batch):
        if self.step + 1 == self.fail_at:
            self.in_step = self.fail_in_step
            raise self.error
        self.step += 1
        return {"loss": torch.tensor(1.0)}

    def log(self, losses, progress):
        self.calls.append(("log", self.step))

    def save_sample(self):
        self.calls.append(("sample", self.step))

    def save(self):
        self.calls.append(("save", self.step))
        self.saved_step = self.step


def test_step_run_logs_samples_and_saves_on_its_intervals_and_at_the_end(tmp_path):
    run = CountingRun(tmp_path, stop_at=9)
    assert run.train() is False and run.step == 9
    assert [s for c, s in run.calls if c == "log"] == [2, 4, 6, 8, 9]
    assert [s for c, s in run.calls if c == "sample"] == [1, 3, 6, 9]
    assert [s for c, s in run.calls if c == "save"] == [4, 8, 9]


@pytest.mark.parametrize(("error", "in_step", "saved"), [(RuntimeError("boom"), False, True),
                                                        (RuntimeError("boom"), True, False),
                                                        (DiskError("disk full"), False, False)])
def test_step_run_saves_after_an_error_only_between_steps_and_not_when_the_disk_failed(tmp_path, error, in_step,
                                                                                       saved):
    run = CountingRun(tmp_path, stop_at=9, fail_at=6, fail_in_step=in_step, error=error)
    with pytest.raises(type(error)):
        run.train()
    assert (("save", 5) in run.calls) is saved


def test_data_workers_are_capped_at_the_cpus_this_process_may_use(monkeypatch):
    """More loader processes than CPUs only compete for them, and PyTorch warns that the loader may freeze:
    the default --workers 4 on a 2-CPU machine starts 2."""
    import warnings

    from cyclegan.data import data_loader

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    loader = data_loader(list(range(8)), [[0, 1], [2, 3]], 4, list, pin_memory=False)
    assert loader.num_workers == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the "excessive worker creation" UserWarning would fail here
        assert list(loader) == [[0, 1], [2, 3]]
    assert data_loader(list(range(4)), [[0]], 0, list, pin_memory=False).num_workers == 0


def cli_train(*args):
    return runner.invoke(app, ["train", *map(str, args)])


def test_a_resumed_run_keeps_its_options_and_a_flag_changes_only_a_resumable_one(image_dirs, tmp_path, caplog):
    a, b = image_dirs
    small = ["--image-size", "32", "--load-size", "36", "--ngf", "8", "--ndf", "8", "--net-g", "resnet_6blocks"]
    result = cli_train("--domainA", a, "--domainB", b, "--checkpoints-dir", tmp_path, "--name", "run", *small,
                       "--max-steps", "2", "--wandb-mode", "disabled", "--workers", "0", "--save-every", "1")
    assert result.exit_code == 0, result.output
    result = cli_train("--checkpoints-dir", tmp_path, "--name", "run", "--resume")  # as Ctrl-C's hint says
    assert result.exit_code == 0, result.output
    state = load_state(tmp_path / "run" / "latest.pt")
    assert state["step"] == 2  # --max-steps 2 kept: not the paper's 200 epochs
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["wandb_mode"] == "disabled" and saved["workers"] == 0 and saved["save_every"] == 1
    with caplog.at_level("INFO"):
        result = cli_train("--checkpoints-dir", tmp_path, "--name", "run", "--resume", "--max-steps", "3")
    assert result.exit_code == 0, result.output
    assert load_state(tmp_path / "run" / "latest.pt")["step"] == 3
    assert "except --max-steps 2 → 3" in caplog.text
    for flag, value, saved_value in (("--upsample", "resize", "transposed"), ("--ngf", "16", "8"),
                                     ("--lambda-cycle", "5.0", "10.0")):
        result = cli_train("--checkpoints-dir", tmp_path, "--name", "run", "--resume", flag, value)
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert f"{flag} {value}: the run at {tmp_path / 'run'} learns with {flag} {saved_value}" in result.output
    assert load_state(tmp_path / "run" / "latest.pt")["step"] == 3
