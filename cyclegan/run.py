"""What every training command shares: its run folder, stop signals, data workers and progress display.

A run lives in one folder, CHECKPOINTS_DIR/NAME. While a process trains there it holds a lock on the
folder (``fcntl.flock`` on ``.lock``: the kernel drops it when the process dies, so a leftover file never
blocks). A new run never replaces an existing one unless asked to (``overwrite``), and ``resume`` needs a
run to resume. The training state is saved atomically with ``latest.pt`` written last: it is the commit
point, and whatever a command exports beside it (generators) carries its step, so a restart can tell
exports that missed the last commit.
"""

from __future__ import annotations

import fcntl
import logging
import math
import os
import platform
import random
import shutil
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from . import __version__
from .checkpoint import load_state, save_state
from .config import load_json
from .errors import UserError
from .files import DiskError, remove_stale_temporaries, write_json
from .runtime import data_workers
from .tracking import Tracker, progress_bar

log = logging.getLogger(__name__)

STATE_FILE = "latest.pt"
CONFIG_FILE = "config.json"
LOCK_FILE = ".lock"
# What training and evaluation write into a run folder besides the state and exports; --overwrite removes
# exactly these, so that the new run's samples, snapshots and scores are not mixed with the old run's.
OLD_RUN_FILES = ("metrics.json", "eval.html")
OLD_RUN_FOLDERS = ("samples", "wandb", "best", "eval", "epoch_*")


def check_run_folder(run_dir: str | Path, resume: bool, overwrite: bool = False) -> None:
    """Refuse to start when ``run_dir`` cannot be used: call it before any slow work (datasets).

    A new run needs a folder that holds no run (or ``overwrite``); ``resume`` needs one that holds a
    saved state. Either way no other process may be training there. Raises ``UserError`` saying what to do.
    """
    run_dir = Path(run_dir)
    if run_dir.is_dir() and _locked(run_dir / LOCK_FILE):
        raise UserError(f"{run_dir} is in use by another training process{_holder(run_dir)}")
    _check_contents(run_dir, resume, overwrite)


def _check_contents(run_dir: Path, resume: bool, overwrite: bool) -> None:
    if resume:
        if not (run_dir / CONFIG_FILE).is_file():
            raise UserError(f"--resume: no run to resume at {run_dir} ({CONFIG_FILE} missing)")
        if not (run_dir / STATE_FILE).is_file():
            raise UserError(f"--resume: the run at {run_dir} saved no checkpoint ({STATE_FILE}) yet: "
                            "start it again with --overwrite")
    elif not overwrite and any((run_dir / f).is_file() for f in (CONFIG_FILE, STATE_FILE)):
        raise UserError(f"{run_dir} already holds a run: continue it with --resume, choose another --name, "
                        "or replace it with --overwrite")


def _locked(lock: Path) -> bool:
    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the probe's own lock


def _holder(run_dir: Path) -> str:
    try:
        pid = (run_dir / LOCK_FILE).read_text().strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""


class RunFolder:
    """The folder of one run, locked for as long as this object is open (``with RunFolder(...) as run``).

    Only the main process (rank 0) locks and writes; on the other ranks every write is a no-op.
    """

    def __init__(self, path: str | Path, resume: bool, overwrite: bool = False, main: bool = True,
                 exports: tuple[str, ...] = ()):
        self.path, self.resume, self.overwrite, self.main = Path(path), resume, overwrite, main
        self.exports = exports  # files the command writes beside the state, removed too by ``overwrite``
        self._lock_fd: int | None = None

    def __enter__(self) -> RunFolder:
        if self.main:
            self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        """Lock the folder, check it may be used, and clear what a killed process left behind."""
        check_run_folder(self.path, self.resume, self.overwrite)  # before mkdir: a typo creates nothing
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserError(f"{self.path} is in use by another training process{_holder(self.path)}") from None
        self._lock_fd = fd
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        _check_contents(self.path, self.resume, self.overwrite)  # again, now that nobody else can start
        removed = remove_stale_temporaries(self.path, recursive=True)  # the lock rules out a live writer
        if removed:
            log.info("removed %d unfinished temporary file(s) left in %s", removed, self.path)
        if self.overwrite and not self.resume:  # a crash before the first save must not leave the old run
            self._remove_old_run()

    def _remove_old_run(self) -> None:
        """Delete what a run writes in its folder (and nothing else: the folder may hold the user's files)."""
        names = {STATE_FILE, CONFIG_FILE, *self.exports, *OLD_RUN_FILES}
        for path in sorted(self.path.iterdir()):
            if path.name in names or any(path.match(pattern) for pattern in OLD_RUN_FOLDERS):
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        log.info("--overwrite: removed the earlier run in %s", self.path)

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock; the file stays, harmlessly
            self._lock_fd = None

    def write_config(self, config: dict) -> None:
        if self.main:
            write_json(self.path / CONFIG_FILE, config)

    def save(self, state: dict) -> None:
        """Write the training state: the commit point, so call it after writing any exports."""
        if self.main:
            save_state(self.path / STATE_FILE, state)

    def load(self) -> dict:
        return load_state(self.path / STATE_FILE)


class StopSignal:
    """Turn SIGINT/SIGTERM into a flag the loop checks between steps, so a checkpoint is written first."""

    def __init__(self):
        self.received: int | None = None
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.received is not None:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.received = signum
        log.warning("%s received: finishing this step and saving a checkpoint (Ctrl-C again to abort)",
                    signal.Signals(signum).name)

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def _ignore_stop_signals(_worker_id: int) -> None:
    # Data workers share the process group that Ctrl-C (and schedulers' group-wide SIGTERM) reach; let the
    # main process handle the signal and shut the workers down after saving (``batches`` below).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def data_loader(dataset, batch_sampler, workers: int, collate_fn, pin_memory: bool) -> torch.utils.data.DataLoader:
    """A DataLoader whose worker processes (at most one per CPU) leave stop signals to the main process."""
    workers = data_workers(workers)
    return torch.utils.data.DataLoader(
        dataset, batch_sampler=batch_sampler, num_workers=workers, collate_fn=collate_fn, pin_memory=pin_memory,
        worker_init_fn=_ignore_stop_signals if workers else None, persistent_workers=workers > 0,
        prefetch_factor=4 if workers else None,
    )


@contextmanager
def batches(loader: torch.utils.data.DataLoader) -> Iterator[Iterator]:
    """Iterate ``loader``, and stop its worker processes on the way out, error or not.

    Left to themselves they would be stopped at interpreter exit by SIGTERM, which they ignore (above):
    an error whose traceback still holds the iterator would then hang the process for good.
    """
    it = iter(loader)
    try:
        yield it
    finally:
        shutdown = getattr(it, "_shutdown_workers", None)  # present when there are worker processes
        if shutdown is not None:
            shutdown()


class Progress:
    """The progress bar on a terminal, and a log line every 30 s elsewhere (logs, CI, batch jobs)."""

    def __init__(self, description: str, total: int, done: int, enabled: bool):
        self.enabled = enabled
        self.bar = progress_bar(disable=not enabled)
        self.task = self.bar.add_task(description, total=total, completed=done, rate="", info="")
        self.t_last, self.step_last, self.t_report = time.perf_counter(), done, 0.0

    def __enter__(self) -> Progress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)

    def advance(self) -> None:
        self.bar.update(self.task, advance=1)

    def describe(self, description: str) -> None:
        self.bar.update(self.task, description=description)

    def report(self, step: int, total: int, info: str) -> float:
        """Show ``info`` with the speed since the last report; returns that speed (steps per second)."""
        now = time.perf_counter()
        rate = (step - self.step_last) / max(now - self.t_last, 1e-9)
        self.t_last, self.step_last = now, step
        self.bar.update(self.task, rate=f"{rate:.2f} it/s", info=info)
        if self.enabled and not self.bar.console.is_terminal and now - self.t_report >= 30:
            self.t_report = now
            log.info("step %d/%d  %.2f it/s  %s", step, total, rate, info)
        return rate


def open_tracker(run_dir: Path, mode: str, project: str, name: str, config: dict, main: bool,
                 run_id: str | None = None) -> Tracker:
    """The W&B run inside the run folder (rank 0 only; the other ranks get a no-op tracker)."""
    return Tracker(run_dir, mode if main else "disabled", project, name, config, run_id=run_id)


def resume_config(cfg, resumable: tuple[str, ...]):
    """The saved configuration of the run in ``cfg.run_dir``, with this invocation's ``resumable`` options
    (how it runs, not what it learns) applied; ``cfg`` is any training config with a ``run_dir``.

    The run is the folder this invocation names, whatever name config.json holds: a copied or renamed run
    resumes where it now is, and never writes into the folder it was copied from.
    """
    path = cfg.run_dir / CONFIG_FILE
    if not path.is_file():
        raise UserError(f"--resume: no run to resume at {cfg.run_dir} ({CONFIG_FILE} missing)")
    saved = load_json(type(cfg), path)
    for key in resumable:
        setattr(saved, key, getattr(cfg, key))
    saved.name, saved.checkpoints_dir, saved.resume, saved.overwrite = cfg.name, cfg.checkpoints_dir, True, False
    return saved


def versions() -> dict:
    """What config.json records of the software that trained a run."""
    import torchvision

    return {"cyclegan": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "python": platform.python_version()}


def rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if device.type == "cuda":  # this process's GPU only: touching the others would start a context on each
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if "python" in state:
        random.setstate(_as_tuple(state["python"]))
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def _as_tuple(x):
    return tuple(_as_tuple(v) for v in x) if isinstance(x, list | tuple) else x


class StepRun:
    """The training loop every training command shares; a subclass is one command's run.

    The subclass sets ``cfg`` (with ``name``, ``checkpoints_dir``, ``log_every``, ``sample_every``,
    ``save_every``), ``folder``, ``loader``, ``tracker``, ``step``, ``total_steps`` (the progress bar's
    end) and ``stop_at`` (where this invocation stops), ``saved_step`` (the step latest.pt holds) and
    ``in_step``, and provides ``train_step(batch)`` (one update; returns the losses and sets ``in_step``
    while the state is half updated), ``log``, ``save_sample`` and ``save`` (exports, then latest.pt).
    """

    command = "train"  # the CLI command that continues the run, for the message after Ctrl-C
    main = True  # whether this process writes (rank 0)

    def train(self) -> bool:
        """Train to ``stop_at`` or until a stop signal; save at the end. Returns whether it was interrupted."""
        cfg, interrupted = self.cfg, False
        progress = Progress(cfg.name, self.total_steps, self.step, enabled=self.main)
        try:
            with StopSignal() as stop, progress, batches(self.loader) as data:
                for batch in data if self.step < self.stop_at else []:
                    losses = self.train_step(batch)
                    progress.advance()
                    if self.main and (self.step % cfg.log_every == 0 or self.step == self.stop_at):
                        self.log(losses, progress)
                    if self.main and (self.step == 1 or self.step % cfg.sample_every == 0
                                      or self.step == self.stop_at):
                        self.save_sample()
                    self.end_of_step(progress)
                    if self.agree(stop.received is not None):
                        interrupted = True
                        break
                    if self.step >= self.stop_at:
                        break
        except BaseException as e:
            self.save_after_error(e)
            raise
        finally:
            self.tracker.finish()
        self.save()
        if self.main and interrupted:
            log.warning("interrupted at step %d; continue with: cyclegan %s --name %s --checkpoints-dir %s "
                        "--resume", self.step, self.command, cfg.name, cfg.checkpoints_dir)
        elif self.main:
            log.info("done: %d steps; %s", self.step, self.outputs())
        return interrupted

    def check_batch(self, batch: dict) -> None:
        """Warn once per unreadable image the data workers skipped; raise a worker's error here, in the main
        process, so that it reads as one line (the subclass keeps ``warned``, a set)."""
        for msg in batch["bad"]:
            if msg not in self.warned:
                self.warned.add(msg)
                log.warning("skipping unreadable image %s", msg)
        if "error" in batch:
            raise UserError(batch["error"])

    def end_of_step(self, progress: Progress) -> None:
        """After each step: save every ``save_every`` steps (an epoch-based run overrides this)."""
        if self.step % self.cfg.save_every == 0:
            self.save()

    def agree(self, stop: bool) -> bool:
        """Whether to stop now (several processes must agree: see CycleGANRun)."""
        return stop

    def outputs(self) -> str:
        return f"run in {self.folder.path}"

    def save_after_error(self, error: BaseException) -> None:
        """Keep what was learned when training stops by an error between steps (the state is consistent):
        not in the middle of an update, and not when the disk is what failed."""
        if self.in_step or isinstance(error, DiskError) or self.saved_step == self.step:
            return
        try:
            self.save()
        except UserError as e:
            log.warning("could not save progress: %s", e)
            return
        if self.main:
            log.warning("stopped by an error; progress saved to %s (continue with --resume)",
                        self.folder.path / STATE_FILE)


def log_losses(run: StepRun, losses: dict[str, torch.Tensor], progress: Progress, prefix: str = "",
               extra: dict | None = None) -> dict[str, float]:
    """Show and log ``losses`` (one host sync per logging interval); warn when one is not finite."""
    values = dict(zip(losses, torch.stack(list(losses.values())).float().cpu().tolist(), strict=True))
    info = " ".join(f"{k} {v:.3f}" for k, v in values.items())
    rate = progress.report(run.step, run.total_steps, f"{prefix}{info}")
    run.tracker.log({**{f"loss/{k}": v for k, v in values.items()}, **(extra or {}), "it_per_s": rate}, run.step)
    if not all(math.isfinite(v) for v in values.values()):
        log.warning("non-finite loss at step %d: %s", run.step, values)
    return values
