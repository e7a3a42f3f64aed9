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
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch import nn
from torchvision.utils import save_image

from . import __version__, config, distributed
from .checkpoint import load_state, safetensors_header, save_network, save_state
from .config import load_json, to_dict
from .data import batches
from .errors import UserError
from .files import DiskError, atomic_write, remove_stale_temporaries, write_json
from .progress import TrainingProgress
from .runtime import Amp, resolve_device, resolve_precision
from .tracking import Tracker

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


def resume_config(cfg, handled: tuple[str, ...] = ()):
    """The saved configuration of the run in ``cfg.run_dir`` (``cfg``: any training config), with the
    options this invocation gave that may change (``config.apply_resumed``); ``handled``: options the
    command applies itself.

    The run is the folder this invocation names, whatever name config.json holds: a copied or renamed run
    resumes where it now is, and never writes into the folder it was copied from.
    """
    path = cfg.run_dir / CONFIG_FILE
    if not path.is_file():
        raise UserError(f"--resume: no run to resume at {cfg.run_dir} ({CONFIG_FILE} missing)")
    saved = load_json(type(cfg), path)
    if changed := config.apply_resumed(saved, cfg, handled):
        log.info("resuming %s with its saved options, except %s", cfg.run_dir, ", ".join(changed))
    saved.name, saved.checkpoints_dir, saved.resume, saved.overwrite = cfg.name, cfg.checkpoints_dir, True, False
    saved.given = cfg.given
    return saved


def versions() -> dict:
    """What config.json records of the software that trained a run."""
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


@dataclass
class RunResult:
    """Where a training run stands when the command ends."""

    run_dir: Path
    step: int
    epoch: int
    interrupted: bool


class StepRun:
    """A training run's whole life, shared by every training command; a subclass is one command's run.

    ``launch(cfg)`` is the life: check the run folder, take the saved options on ``--resume``, validate,
    find the data, lock the folder, build the run, train, save. The loop (``train``) logs, samples and saves
    on the configured intervals, saves on Ctrl-C and after an error between steps. ``save`` writes the
    exports (``networks``: file → (network, spec)), then latest.pt: every object of ``objects`` (name → a
    thing with ``state_dict``/``load_state_dict``), the random streams, where the run stands and the config;
    ``restore`` reads it back into the same objects.

    A subclass sets ``command`` and ``exports``, finds its data in ``inputs`` and, in ``__init__`` after
    ``super().__init__``: builds its networks and optimisers, fills ``objects`` and ``networks``, calls
    ``restore()``, makes ``loader`` (its batches start where the run stands) and ``steps_per_epoch``, sets
    ``total_steps``/``stop_at`` and calls ``start``. It provides ``train_step(batch)`` (one update through
    ``amp``; sets ``in_step`` while the state is half updated and ends with ``advance()``) and ``sample()``.
    """

    command = "train"  # the CLI command that continues the run, for the message after Ctrl-C
    exports: tuple[str, ...] = ()  # the files ``networks`` writes beside latest.pt
    distributed = False  # whether several processes (torchrun) share the run
    optional_state = ("scaler",)  # objects a training state of an earlier release may lack
    main = True  # whether this process writes (rank 0)
    enough_steps: int | None = None  # a run that ends below this many steps is said to be undertrained

    # ---- the prologue -----------------------------------------------------------------------------

    @classmethod
    def launch(cls, cfg) -> RunResult:
        """Train (or with ``cfg.resume`` continue) the run ``cfg`` describes, in ``cfg.run_dir``."""
        config.validate(cfg)
        main = distributed.is_main_process() if cls.distributed else True
        if main:  # before reading config.json or any folder
            check_run_folder(cfg.run_dir, cfg.resume, cfg.overwrite)
        if cfg.resume:
            cfg = cls.resumed(cfg)
            config.validate(cfg)
        world, device = distributed.setup(cfg.device) if cls.distributed else (distributed.World(),
                                                                               resolve_device(cfg.device))
        try:
            precision = resolve_precision(cfg.precision, device)
            inputs = cls.inputs(cfg, device, precision, world.is_main)  # the data, before the folder is made
            with RunFolder(cfg.run_dir, cfg.resume, cfg.overwrite, world.is_main, cls.exports) as folder:
                run = cls(cfg, folder, inputs, world, device, precision)
                interrupted = run.train()
                # torchrun stops all ranks when one exits with an error (130 here): not before rank 0 saved
                world.barrier()
                return RunResult(folder.path, run.step, run.epoch, interrupted)
        finally:
            distributed.shutdown(world)

    @classmethod
    def resumed(cls, cfg):
        """The options of a resumed run: the saved ones, with this invocation's resumable ones."""
        return resume_config(cfg)

    @classmethod
    def inputs(cls, cfg, device: torch.device, precision: str, main: bool):
        """What the run trains on (image lists, ...), found before its folder is made."""
        raise NotImplementedError

    def __init__(self, cfg, folder: RunFolder, world: distributed.World, device: torch.device, precision: str):
        self.cfg, self.folder, self.world, self.device, self.precision = cfg, folder, world, device, precision
        self.main = world.is_main
        self.amp = Amp(device, precision)
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        self.step = self.epoch = self.batch_in_epoch = 0
        self.saved_step: int | None = None  # the step latest.pt holds
        self.in_step = False  # between the start and the end of an update the state is not worth saving
        self.warned: set[str] = set()
        self.saved = folder.load() if cfg.resume else None  # the state this run continues from
        self.objects: dict = {}
        self.networks: dict[str, tuple[nn.Module, object]] = {}
        self.wandb_id: str | None = None

    def restore(self, only: tuple[str, ...] | None = None) -> None:
        """Continue from latest.pt: every object (or those named ``only``), the random streams, where the run
        stands."""
        state = self.saved
        if state is None:
            return
        trainer = state["trainer"]
        objects = {k: v for k, v in self.objects.items() if only is None or k in only}
        lacking = [k for k in objects if k not in trainer and k not in self.optional_state]
        if lacking:
            raise UserError(f"training state {self.folder.path / STATE_FILE} lacks {', '.join(lacking)}: it was "
                            f"not written by `cyclegan {self.command}` or is damaged; delete it to start afresh")
        for name, obj in objects.items():
            if name in trainer:
                obj.load_state_dict(trainer[name])
        set_rng_state(state["rng"], self.device)
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        self.saved_step = self.step
        self.wandb_id = state.get("wandb_id")
        origin = Path(state.get("run_dir") or self.folder.path)
        if origin.resolve() != self.folder.path.resolve() and (origin / STATE_FILE).is_file():
            log.info("%s is a copy of %s: it gets a W&B run of its own", self.folder.path, origin)
            self.wandb_id = None
        if self.main:
            log.info("resuming %s at step %d", self.folder.path, self.step)
            self.export(only_stale=True)  # a process killed mid-save may have left them at another step

    def start(self, info: dict, message: str) -> None:
        """Write config.json (the options, ``info`` and the software's versions) and open the W&B run."""
        self.config = to_dict(self.cfg)
        self.folder.write_config({**self.config, "versions": versions(), **info})
        mode = self.cfg.wandb_mode if self.main else "disabled"  # rank 0 alone logs
        self.tracker = Tracker(self.folder.path, mode, self.cfg.wandb_project, self.cfg.name, self.config,
                               run_id=self.wandb_id)
        self.wandb_id = self.tracker.run_id  # kept for the saves after the tracker has finished
        if self.main:
            log.info("training %s: %s, device %s, %s", self.cfg.name, message, self.device, self.precision)

    # ---- the loop ---------------------------------------------------------------------------------

    def train(self) -> bool:
        """Train to ``stop_at`` or until a stop signal; save at the end. Returns whether it was interrupted."""
        cfg, interrupted = self.cfg, False
        progress = TrainingProgress(cfg.name, self.total_steps, self.step, enabled=self.main)
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
            if self.enough_steps and self.step < self.enough_steps:
                log.warning("%d steps is far too few for a usable network (at least %d; --steps %d by default): "
                            "expect dark or flat images", self.step, self.enough_steps,
                            type(cfg)().steps if hasattr(cfg, "steps") else self.total_steps)
        return interrupted

    def check_batch(self, batch: dict) -> None:
        """Warn once per unreadable image the data workers skipped; raise a worker's error here, in the main
        process, so that it reads as one line."""
        for msg in batch["bad"]:
            if msg not in self.warned:
                self.warned.add(msg)
                log.warning("skipping image %s", msg)
        if batch.get("padded") and "padded" not in self.warned:
            self.warned.add("padded")
            log.warning("some images are smaller than the --image-size %d crop (%s, ...): --preprocess crop pads "
                        "them by reflection", self.cfg.image_size, batch["padded"][0])
        if "error" in batch:
            raise UserError(batch["error"])

    def advance(self) -> None:
        """The end of an update: one step further (call it last in ``train_step``)."""
        self.step += 1
        self.batch_in_epoch += 1
        self.in_step = False

    def end_of_step(self, progress: TrainingProgress) -> None:
        """After each step: close an epoch after its last batch; save every ``save_every`` steps (an
        epoch-based run overrides this)."""
        if self.batch_in_epoch == self.steps_per_epoch:
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
        if self.step % self.cfg.save_every == 0:
            self.save()

    def agree(self, stop: bool) -> bool:
        """Whether to stop now: all processes stop at the same step, whichever received the signal."""
        return self.world.any(stop)

    def outputs(self) -> str:
        return f"{', '.join(self.exports)} in {self.folder.path}"

    def log(self, losses: dict[str, torch.Tensor], progress: TrainingProgress, prefix: str = "",
            extra: dict | None = None) -> None:
        log_losses(self, losses, progress, prefix, extra)

    def save_sample(self) -> None:
        """Write the sample grid of ``sample()`` to samples/ and log it."""
        grid, caption = self.sample()
        path = atomic_write(self.folder.path / "samples" / f"step_{self.step:07d}.png",
                            lambda tmp: save_image(grid, tmp, format="png"))
        self.tracker.log_image("samples", path, self.step, caption=caption)

    # ---- saving: the exports first, then latest.pt, the commit point -------------------------------

    def export(self, only_stale: bool = False) -> None:
        """Write ``networks`` with this step in their metadata (``only_stale``: those holding another step)."""
        meta = {"step": self.step, "epoch": self.epoch, "name": self.cfg.name}
        for file, (net, spec) in self.networks.items():
            path = self.folder.path / file
            if only_stale and _export_step(path) == str(self.step):
                continue
            save_network(path, net, spec, {**meta, **self.export_metadata(file)})

    def export_metadata(self, file: str) -> dict:
        return {}

    def state(self) -> dict:
        return {"trainer": {name: obj.state_dict() for name, obj in self.objects.items()},
                "rng": rng_state(self.device), "step": self.step, "epoch": self.epoch,
                "batch_in_epoch": self.batch_in_epoch, "wandb_id": self.wandb_id, "config": self.config,
                "run_dir": str(self.folder.path.resolve())}

    def save(self) -> None:
        if not self.main or self.saved_step == self.step:
            return
        self.export()
        self.folder.save(self.state())
        self.saved_step = self.step

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


def _export_step(path: Path) -> str | None:
    """The step an export was written at, from its metadata (None when missing or unreadable)."""
    try:
        return safetensors_header(path)[1].get("step")
    except UserError:  # missing or damaged: export again
        return None


def log_losses(run: StepRun, losses: dict[str, torch.Tensor], progress: TrainingProgress, prefix: str = "",
               extra: dict | None = None) -> dict[str, float]:
    """Show and log ``losses`` (one host sync per logging interval); warn when one is not finite."""
    values = dict(zip(losses, torch.stack(list(losses.values())).float().cpu().tolist(), strict=True))
    info = " ".join(f"{k} {v:.3f}" for k, v in values.items())
    rate = progress.report(run.step, run.total_steps, f"{prefix}{info}")
    run.tracker.log({**{f"loss/{k}": v for k, v in values.items()}, **(extra or {}), "it_per_s": rate}, run.step)
    if not all(math.isfinite(v) for v in values.values()):
        log.warning("non-finite loss at step %d: %s", run.step, values)
    return values
