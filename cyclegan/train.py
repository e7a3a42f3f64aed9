"""CycleGAN training: the image pool, the learning-rate schedule, one training step, and the loop.

One step, as in the paper: both generators are updated on adversarial + cycle (+ identity) losses with
the discriminators frozen, then both discriminators on real images and on fakes drawn from a pool of
past generator outputs.
"""

from __future__ import annotations

import logging
import math
import platform
import random
import signal
import time
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import torch
from torch import nn

from . import __version__, config, distributed
from .checkpoint import load_state, save_generator, save_state
from .config import TrainConfig, load_json, to_dict
from .data import Augment, EpochBatches, UnpairedDataset, collate, domain_folder, sample_seed
from .errors import UserError
from .files import write_json
from .losses import discriminator_adv_loss, generator_adv_loss, l1
from .models import GeneratorSpec, build_discriminator, build_generator
from .runtime import autocast, compile_problem, resolve_device, resolve_precision
from .tracking import Tracker, progress_bar

log = logging.getLogger(__name__)

LOSS_NAMES = ("G_AB", "G_BA", "D_A", "D_B", "cycle_A", "cycle_B", "idt_A", "idt_B")


class ImagePool:
    """A buffer of up to ``size`` past fakes (Shrivastava et al.): half the time the discriminator sees
    an older fake instead of the newest, which damps oscillation. Works per image, so any batch size."""

    def __init__(self, size: int = 50, seed: int = 0):
        self.size = size
        self.images: list[torch.Tensor] = []
        self.rng = torch.Generator().manual_seed(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for img in images.detach():
            img = img.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(img.clone())
                out.append(img)
            elif torch.rand((), generator=self.rng).item() > 0.5:
                i = int(torch.randint(0, self.size, (), generator=self.rng))
                out.append(self.images[i].clone())
                self.images[i] = img.clone()
            else:
                out.append(img)
        return torch.cat(out, 0)

    def state_dict(self) -> dict:
        return {"images": [t.cpu() for t in self.images], "rng": self.rng.get_state()}

    def load_state_dict(self, state: dict, device: torch.device) -> None:
        self.images = [t.to(device) for t in state["images"]]
        self.rng.set_state(state["rng"])


def lr_factor(epoch: int, epochs: int, epochs_decay: int) -> float:
    """Learning-rate multiplier for 1-based ``epoch``: 1 for the first ``epochs``, then linear decay.

    Matches the original release: epoch ``epochs + k`` trains at ``1 - k / (epochs_decay + 1)``, so the
    rate reaches zero just after the last epoch.
    """
    return 1.0 - max(0, epoch - epochs) / float(epochs_decay + 1)


@dataclass
class Nets:
    G_AB: nn.Module
    G_BA: nn.Module
    D_A: nn.Module  # judges domain A: real A vs G_BA(B)
    D_B: nn.Module  # judges domain B: real B vs G_AB(A)


def build_nets(cfg: TrainConfig) -> tuple[Nets, GeneratorSpec]:
    spec = GeneratorSpec.from_name(cfg.net_g, ngf=cfg.ngf, norm=cfg.norm, dropout=cfg.dropout)
    gens = [build_generator(spec, cfg.init_type, cfg.init_gain) for _ in range(2)]
    discs = [build_discriminator(cfg.net_d, cfg.ndf, cfg.n_layers_d, cfg.norm, 3, cfg.init_type, cfg.init_gain)
             for _ in range(2)]
    return Nets(gens[0], gens[1], discs[0], discs[1]), spec


def set_requires_grad(nets: list[nn.Module], flag: bool) -> None:
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


class Generators(nn.Module):
    """Both generators and every image the generator update needs, made in one forward pass.

    Each generator runs two or three times per step (translate, reconstruct, identity); doing it all in
    one call means one forward per backward, which is what DistributedDataParallel expects.
    """

    def __init__(self, G_AB: nn.Module, G_BA: nn.Module, identity: bool):
        super().__init__()
        self.G_AB, self.G_BA, self.identity = G_AB, G_BA, identity

    def forward(self, real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, torch.Tensor]:
        fake_B = self.G_AB(real_A)
        rec_A = self.G_BA(fake_B)
        fake_A = self.G_BA(real_B)
        rec_B = self.G_AB(fake_A)
        out = {"fake_B": fake_B, "rec_A": rec_A, "fake_A": fake_A, "rec_B": rec_B}
        if self.identity:  # a generator fed an image of its target domain should leave it be
            out["idt_A"] = self.G_BA(real_A)
            out["idt_B"] = self.G_AB(real_B)
        return out


class Discriminators(nn.Module):
    """Both discriminators in one call: D_A scores each batch of ``images_A``, D_B each of ``images_B``."""

    def __init__(self, D_A: nn.Module, D_B: nn.Module):
        super().__init__()
        self.D_A, self.D_B = D_A, D_B

    def forward(self, images_A: list[torch.Tensor],
                images_B: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        return [self.D_A(x) for x in images_A], [self.D_B(x) for x in images_B]


class Trainer:
    """Networks, optimisers, schedules and pools of one run, and the training step.

    With ``distributed`` (a process group is set up), the generator and discriminator updates run through
    DistributedDataParallel, which averages gradients over all ranks.
    """

    def __init__(self, cfg: TrainConfig, device: torch.device, precision: str, distributed: bool = False):
        self.cfg, self.device, self.precision = cfg, device, precision
        self.nets, self.spec = build_nets(cfg)
        for net in self.all_nets:
            net.to(device)
            if cfg.channels_last:
                net.to(memory_format=torch.channels_last)
        betas = (cfg.beta1, cfg.beta2)
        # One fused kernel (CUDA) or a few multi-tensor ops (elsewhere) instead of a loop over parameters.
        impl = {"fused": True} if device.type == "cuda" else {"foreach": True}
        self.opt_G = torch.optim.Adam(chain(self.nets.G_AB.parameters(), self.nets.G_BA.parameters()),
                                      lr=cfg.lr, betas=betas, **impl)
        self.opt_D = torch.optim.Adam(chain(self.nets.D_A.parameters(), self.nets.D_B.parameters()),
                                      lr=cfg.lr, betas=betas, **impl)

        def schedule(epoch_index: int) -> float:  # LambdaLR counts epochs from 0
            return lr_factor(epoch_index + 1, cfg.epochs, cfg.epochs_decay)

        self.sched_G = torch.optim.lr_scheduler.LambdaLR(self.opt_G, schedule)
        self.sched_D = torch.optim.lr_scheduler.LambdaLR(self.opt_D, schedule)
        self.pool_A = ImagePool(cfg.pool_size, seed=cfg.seed + 1)
        self.pool_B = ImagePool(cfg.pool_size, seed=cfg.seed + 2)
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

        G_AB, G_BA, D_A, D_B = self._maybe_compile(self.all_nets)
        self.generators = Generators(G_AB, G_BA, identity=cfg.lambda_identity * cfg.lambda_cycle > 0)
        self.discriminators = Discriminators(D_A, D_B)
        # What each update calls. The generator update calls the discriminators directly, not through DDP:
        # they are frozen then, so DDP has no gradients of theirs to wait for.
        self.train_G, self.train_D = self.generators, self.discriminators
        if distributed:
            ids = [device.index] if device.type == "cuda" else None
            self.train_G = nn.parallel.DistributedDataParallel(self.generators, ids, gradient_as_bucket_view=True)
            self.train_D = nn.parallel.DistributedDataParallel(self.discriminators, ids, gradient_as_bucket_view=True)

    @property
    def all_nets(self) -> list[nn.Module]:
        return [self.nets.G_AB, self.nets.G_BA, self.nets.D_A, self.nets.D_B]

    def _maybe_compile(self, nets: list[nn.Module]) -> list[nn.Module]:
        if not self.cfg.compile:
            return nets
        problem = compile_problem(self.device)
        if problem:
            log.warning("--compile: torch.compile cannot run here (%s); training without it", problem)
            return nets
        # Cropped training images have one size and at most two batch sizes occur (the full one and an
        # epoch's last): compile each shape as it is. Uncropped images vary in size: compile for any size.
        dynamic = None if "crop" not in self.cfg.preprocess else False
        return [torch.compile(net, dynamic=dynamic) for net in nets]

    def step(self, real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, torch.Tensor]:
        """One optimisation step of both generators and both discriminators; returns detached losses."""
        cfg = self.cfg
        lam, lam_idt = cfg.lambda_cycle, cfg.lambda_identity * cfg.lambda_cycle
        losses: dict[str, torch.Tensor] = {}

        # Generators, with the discriminators frozen so their weights get no gradient from this loss.
        set_requires_grad([self.discriminators], False)
        self.opt_G.zero_grad(set_to_none=True)
        with autocast(self.device, self.precision):
            out = self.train_G(real_A, real_B)
            (pred_A,), (pred_B,) = self.discriminators([out["fake_A"]], [out["fake_B"]])
            losses["G_AB"] = generator_adv_loss(pred_B, cfg.gan_mode)
            losses["G_BA"] = generator_adv_loss(pred_A, cfg.gan_mode)
            losses["cycle_A"] = l1(out["rec_A"], real_A) * lam
            losses["cycle_B"] = l1(out["rec_B"], real_B) * lam
            if "idt_A" in out:
                losses["idt_A"] = l1(out["idt_A"], real_A) * lam_idt
                losses["idt_B"] = l1(out["idt_B"], real_B) * lam_idt
        loss_G = sum(losses.values())
        self.scaler.scale(loss_G).backward()
        self.scaler.step(self.opt_G)

        # Discriminators, on real images and on (pooled, detached) fakes.
        set_requires_grad([self.discriminators], True)
        self.opt_D.zero_grad(set_to_none=True)
        pooled_A, pooled_B = self.pool_A.query(out["fake_A"]), self.pool_B.query(out["fake_B"])
        with autocast(self.device, self.precision):
            (real_A_pred, fake_A_pred), (real_B_pred, fake_B_pred) = self.train_D([real_A, pooled_A],
                                                                                  [real_B, pooled_B])
            losses["D_B"] = discriminator_adv_loss(real_B_pred, fake_B_pred, cfg.gan_mode)
            losses["D_A"] = discriminator_adv_loss(real_A_pred, fake_A_pred, cfg.gan_mode)
        self.scaler.scale(losses["D_A"] + losses["D_B"]).backward()
        self.scaler.step(self.opt_D)
        self.scaler.update()

        self.last_images = (real_A, out["fake_B"], out["rec_A"], real_B, out["fake_A"], out["rec_B"])
        return {k: v.detach() for k, v in losses.items()}

    def end_epoch(self) -> None:
        self.sched_G.step()
        self.sched_D.step()

    @property
    def lr(self) -> float:
        return self.opt_G.param_groups[0]["lr"]

    def state_dict(self) -> dict:
        return {
            **{name: net.state_dict() for name, net in vars(self.nets).items()},
            "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(),
            "sched_G": self.sched_G.state_dict(), "sched_D": self.sched_D.state_dict(),
            "pool_A": self.pool_A.state_dict(), "pool_B": self.pool_B.state_dict(),
            "scaler": self.scaler.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        for name, net in vars(self.nets).items():
            net.load_state_dict(state[name])
        self.opt_G.load_state_dict(state["opt_G"])
        self.opt_D.load_state_dict(state["opt_D"])
        self.sched_G.load_state_dict(state["sched_G"])
        self.sched_D.load_state_dict(state["sched_D"])
        self.pool_A.load_state_dict(state["pool_A"], self.device)
        self.pool_B.load_state_dict(state["pool_B"], self.device)
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])


def rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if device.type == "cuda":  # this process's GPU only: touching the others would start a context on each
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_as_tuple(state["python"]))
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def _as_tuple(x):
    return tuple(_as_tuple(v) for v in x) if isinstance(x, list | tuple) else x


def sample_grid(images: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Rows: real A | fake B | reconstructed A, and real B | fake A | reconstructed B (first image)."""
    from torchvision.utils import make_grid

    tiles = [t[0].detach().float().cpu() for t in images]
    return make_grid(torch.stack(tiles), nrow=3, normalize=True, value_range=(-1, 1), padding=2)


def validate(cfg: TrainConfig) -> None:
    """Reject bad options before any work is done: their declarations, the generator's name, the device."""
    config.validate(cfg)
    try:
        GeneratorSpec.from_name(cfg.net_g)
    except ValueError as e:
        raise UserError(config.problem("--net-g", cfg.net_g, str(e))) from None
    resolve_device(cfg.device)  # present on this machine


# Options that may change when a run is resumed: how it runs, not what it learns.
RESUMABLE_OVERRIDES = ("max_steps", "device", "workers", "wandb_mode", "log_every", "sample_every", "save_every",
                       "compile", "eval_every", "test_dir", "inception")


def resume_config(cfg: TrainConfig) -> TrainConfig:
    """The saved configuration of run ``cfg.name``, with this invocation's runtime options applied."""
    path = cfg.run_dir / "config.json"
    if not path.is_file():
        raise UserError(f"--resume: no run to resume at {cfg.run_dir} (config.json missing)")
    saved = load_json(TrainConfig, path)
    for key in RESUMABLE_OVERRIDES:
        setattr(saved, key, getattr(cfg, key))
    saved.checkpoints_dir, saved.resume = cfg.checkpoints_dir, True
    return saved


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
    # main process handle the signal and shut the workers down after saving.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def seed_rank(trainer: Trainer, seed: int) -> None:
    """Give this process its own random streams for dropout and the image pools."""
    torch.manual_seed(seed)
    random.seed(seed)
    trainer.pool_A.rng.manual_seed(seed + 1)
    trainer.pool_B.rng.manual_seed(seed + 2)


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    epoch: int
    interrupted: bool


def train(cfg: TrainConfig) -> TrainResult:
    """Train (or with ``cfg.resume`` continue) a CycleGAN run in ``cfg.run_dir``.

    Under ``torchrun`` every process runs this: each trains on its share of every epoch's batches, and
    rank 0 alone logs and writes the run folder.
    """
    if cfg.resume:
        cfg = resume_config(cfg)
    elif not cfg.domain_a or not cfg.domain_b:
        raise UserError("--domainA and --domainB are required (or --resume with the --name of a run)")
    validate(cfg)
    files_a = domain_folder(cfg.domain_a, "domain A folder")
    files_b = domain_folder(cfg.domain_b, "domain B folder")
    world, device = distributed.setup(cfg.device)
    try:
        return _train(cfg, files_a, files_b, world, device)
    finally:
        distributed.shutdown(world)


def _train(cfg: TrainConfig, files_a: list[Path], files_b: list[Path], world: distributed.World,
           device: torch.device) -> TrainResult:
    main = world.is_main
    precision = resolve_precision(cfg.precision, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick the fastest kernels
    run_dir = cfg.run_dir
    evaluator = None
    if cfg.eval_every and main:  # set up first: a missing test split or FID network stops before any training
        from .metrics import TrainingEval, find_test_split

        test_a, test_b = find_test_split(cfg.test_dir, cfg.domain_a, cfg.domain_b)
        evaluator = TrainingEval(test_a, test_b, cfg.image_size, run_dir, device, precision, cfg.inception,
                                 resume=cfg.resume)
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    trainer = Trainer(cfg, device, precision, distributed=world.enabled)
    step = epoch = batch_in_epoch = 0
    wandb_id = None
    if cfg.resume:
        state = load_state(run_dir / "latest.pt")
        trainer.load_state_dict(state["trainer"])
        set_rng_state(state["rng"], device)
        step, epoch, batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        wandb_id = state.get("wandb_id")
        if main:
            log.info("resuming %s at epoch %d, step %d", run_dir, epoch + 1, step)
        if state.get("world_size", 1) != world.world_size:  # each process's batches are a different share now
            batch_in_epoch = batch_in_epoch * state.get("world_size", 1) // world.world_size
            if main and batch_in_epoch:
                log.warning("resuming %d-process training with %d processes: the rest of this epoch is "
                            "approximate (the next epochs are exact)", state.get("world_size", 1), world.world_size)
    if world.rank:  # latest.pt holds rank 0's random streams; the other ranks derive theirs
        seed_rank(trainer, sample_seed(cfg.seed, step, world.rank, 4))

    dataset = UnpairedDataset(files_a, files_b, Augment(cfg.preprocess, cfg.load_size, cfg.image_size, cfg.flip),
                              seed=cfg.seed)
    batches = EpochBatches(len(dataset), cfg.batch_size, cfg.seed, epoch, cfg.total_epochs, batch_in_epoch,
                           rank=world.rank, world_size=world.world_size)
    steps_per_epoch = batches.batches_per_epoch
    total_steps = cfg.total_epochs * steps_per_epoch
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=batches, num_workers=cfg.workers, collate_fn=collate,
        pin_memory=device.type == "cuda", worker_init_fn=_ignore_stop_signals,
        persistent_workers=cfg.workers > 0, prefetch_factor=4 if cfg.workers > 0 else None,
    )

    config = to_dict(cfg)
    if main:
        write_json(run_dir / "config.json", {**config, "versions": _versions(), "world_size": world.world_size,
                                             "files": {"domain_a": str(Path(cfg.domain_a).resolve()),
                                                       "domain_b": str(Path(cfg.domain_b).resolve()),
                                                       "n_a": len(files_a), "n_b": len(files_b)}})
    tracker = Tracker(run_dir, cfg.wandb_mode if main else "disabled", cfg.wandb_project, cfg.name, config,
                      run_id=wandb_id)

    def save() -> None:
        if not main:
            return
        state = {"trainer": trainer.state_dict(), "rng": rng_state(device), "step": step, "epoch": epoch,
                 "batch_in_epoch": batch_in_epoch, "world_size": world.world_size, "wandb_id": tracker.run_id,
                 "config": config}
        save_state(run_dir / "latest.pt", state)
        meta = {"step": step, "epoch": epoch, "name": cfg.name}
        save_generator(run_dir / "G_AB.safetensors", trainer.nets.G_AB, trainer.spec, {**meta, "direction": "AtoB"})
        save_generator(run_dir / "G_BA.safetensors", trainer.nets.G_BA, trainer.spec, {**meta, "direction": "BtoA"})

    warned: set[str] = set()
    interrupted = False
    in_step = False
    t_last, step_last = time.perf_counter(), step
    t_report = 0.0  # last progress line written when stderr is not a terminal
    if main:
        log.info("training %s: %d A / %d B images, %d steps per epoch, %d epochs, device %s, %s%s",
                 cfg.name, len(files_a), len(files_b), steps_per_epoch, cfg.total_epochs, device, precision,
                 f", {world.world_size} processes" if world.enabled else "")
    try:
        with StopSignal() as stop, progress_bar(disable=not main) as bar:
            task = bar.add_task(cfg.name, total=total_steps, completed=step, rate="", info="")
            for batch in loader if step < total_steps else []:
                for msg in batch["bad"]:
                    if msg not in warned:
                        warned.add(msg)
                        log.warning("skipping unreadable image %s", msg)
                in_step = True
                real_A = batch["A"].to(device, non_blocking=True)
                real_B = batch["B"].to(device, non_blocking=True)
                if cfg.channels_last:
                    real_A = real_A.contiguous(memory_format=torch.channels_last)
                    real_B = real_B.contiguous(memory_format=torch.channels_last)
                losses = trainer.step(real_A, real_B)
                step += 1
                batch_in_epoch += 1
                in_step = False
                bar.update(task, advance=1)

                if main and (step % cfg.log_every == 0 or step == total_steps):
                    values = dict(zip(losses, torch.stack(list(losses.values())).float().cpu().tolist(),
                                      strict=True))  # one host sync per logging interval
                    now = time.perf_counter()
                    rate = (step - step_last) / max(now - t_last, 1e-9)
                    t_last, step_last = now, step
                    tracker.log({**{f"loss/{k}": v for k, v in values.items()}, "lr": trainer.lr,
                                 "epoch": epoch + 1, "it_per_s": rate}, step)
                    info = " ".join(f"{k} {v:.3f}" for k, v in values.items())
                    bar.update(task, rate=f"{rate:.2f} it/s", info=info)
                    if not bar.console.is_terminal and now - t_report >= 30:  # logs, CI, batch jobs
                        t_report = now
                        log.info("step %d/%d epoch %d  %.2f it/s  %s", step, total_steps, epoch + 1, rate, info)
                    if not all(math.isfinite(v) for v in values.values()):
                        log.warning("non-finite loss at step %d: %s", step, values)
                if main and (step == 1 or step % cfg.sample_every == 0 or step == total_steps):
                    _save_sample(trainer, run_dir, step, tracker)

                if batch_in_epoch == steps_per_epoch:  # epoch finished
                    trainer.end_epoch()
                    epoch += 1
                    batch_in_epoch = 0
                    bar.update(task, description=f"{cfg.name} epoch {min(epoch + 1, cfg.total_epochs)}")
                    save()
                    if main and (epoch % cfg.save_every == 0 or epoch == cfg.total_epochs):
                        _snapshot(trainer, run_dir, epoch)
                    if evaluator and (epoch % cfg.eval_every == 0 or epoch == cfg.total_epochs):
                        tracker.log(evaluator(trainer.nets.G_AB, trainer.nets.G_BA, trainer.spec, epoch, step), step)
                # A signal may reach one rank only, or the ranks at different steps: all stop at the same one.
                if world.any(stop.received is not None):
                    interrupted = True
                    break
                if step >= total_steps:
                    break
    except BaseException:
        if not in_step:  # the state is consistent between steps: keep what was learned
            save()
            if main:
                log.warning("stopped by an error; progress saved to %s (continue with --resume)",
                            run_dir / "latest.pt")
        raise
    finally:
        tracker.finish()
    save()
    if main and interrupted:
        log.warning("interrupted at step %d; continue with: cyclegan train --name %s --checkpoints-dir %s --resume",
                    step, cfg.name, cfg.checkpoints_dir)
    elif main:
        log.info("done: %d steps; generators in %s", step, run_dir)
    world.barrier()  # torchrun stops all ranks when one exits with an error (130 here): not before rank 0 saved
    return TrainResult(run_dir, step, epoch, interrupted)


def _save_sample(trainer: Trainer, run_dir: Path, step: int, tracker: Tracker) -> None:
    from torchvision.utils import save_image

    path = run_dir / "samples" / f"step_{step:07d}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(sample_grid(trainer.last_images), path)
    tracker.log_image("samples", path, step, caption="real A | fake B | rec A / real B | fake A | rec B")


def _snapshot(trainer: Trainer, run_dir: Path, epoch: int) -> None:
    snap = run_dir / f"epoch_{epoch:03d}"
    save_generator(snap / "G_AB.safetensors", trainer.nets.G_AB, trainer.spec, {"epoch": epoch})
    save_generator(snap / "G_BA.safetensors", trainer.nets.G_BA, trainer.spec, {"epoch": epoch})


def _versions() -> dict:
    import torchvision

    return {"cyclegan": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "python": platform.python_version()}
