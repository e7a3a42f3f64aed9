"""CycleGAN training: the image pool, the learning-rate schedule, one training step, and the loop.

One step, as in the paper: both generators are updated on adversarial + cycle (+ identity) losses with
the discriminators frozen, then both discriminators on real images and on fakes drawn from a pool of
past generator outputs.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import nn

from . import config, distributed, run
from .checkpoint import save_generator
from .config import TrainConfig, to_dict
from .data import Augment, EpochBatches, UnpairedDataset, collate, domain_folder, sample_seed
from .errors import UserError
from .files import atomic_write
from .losses import discriminator_adv_loss, generator_adv_loss, l1
from .models import GeneratorSpec, build_discriminator, build_generator
from .run import Progress, RunFolder, StepRun, check_run_folder, data_loader, log_losses, open_tracker
from .runtime import autocast, compile_problem, resolve_device, resolve_precision

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
        """The fakes to show the discriminator, detached: its loss must not reach the generators."""
        if self.size == 0:
            return images.detach()
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

    Follows the paper's text and the original release's training loop up to 2019 (the scheduler steps at
    the end of each epoch): decay starts after epoch ``epochs``, and epoch ``epochs + k`` trains at
    ``1 - k / (epochs_decay + 1)``, so the rate reaches zero just after the last epoch. (The release's loop
    since 2020 steps the scheduler at the start of each epoch instead: decay starts at epoch ``epochs``
    and the last epoch trains at rate 0.)
    """
    return 1.0 - max(0, epoch - epochs) / float(epochs_decay + 1)


@dataclass
class Nets:
    """The four networks, named after the domains they produce or judge.

    This is the reverse of the original release's names for the discriminators and identity losses:
    our ``D_A`` judges domain A (its ``netD_A`` judges domain B, the output of ``netG_A``), and our
    ``idt_A`` is ``G_BA(real_A)`` (its ``idt_A`` is ``netG_A(real_B)``). ``G_AB``/``G_BA`` are its
    ``netG_A``/``netG_B``.
    """

    G_AB: nn.Module  # translates A to B
    G_BA: nn.Module  # translates B to A
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
        if self.identity:  # a generator fed an image of its target domain should leave it be (see Nets)
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
        if cfg.channels_last:  # the networks are channels-last (``__init__``): so are their inputs
            real_A, real_B = (x.contiguous(memory_format=torch.channels_last) for x in (real_A, real_B))
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


def sample_grid(images: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Rows: real A | fake B | reconstructed A, and real B | fake A | reconstructed B (first image).

    Untouched by cropping (``--preprocess none``) A and B may differ in size: smaller tiles are padded
    with black at the right and bottom to the largest.
    """
    from torchvision.utils import make_grid

    tiles = [t[0].detach().float().cpu() for t in images]
    h, w = max(t.shape[1] for t in tiles), max(t.shape[2] for t in tiles)
    tiles = [F.pad(t, (0, w - t.shape[2], 0, h - t.shape[1]), value=-1.0) for t in tiles]
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


# The generator exports in a run folder, beside latest.pt: file, network, direction.
EXPORTS = (("G_AB.safetensors", "G_AB", "AtoB"), ("G_BA.safetensors", "G_BA", "BtoA"))


def train(cfg: TrainConfig) -> TrainResult:
    """Train (or with ``cfg.resume`` continue) a CycleGAN run in ``cfg.run_dir``.

    Under ``torchrun`` every process runs this: each trains on its share of every epoch's batches, and
    rank 0 alone locks and writes the run folder and logs.
    """
    main = distributed.is_main_process()
    if main:  # before reading config.json or any folder: the clearest message comes first
        check_run_folder(cfg.run_dir, cfg.resume, cfg.overwrite)
    if cfg.resume:
        cfg = run.resume_config(cfg, RESUMABLE_OVERRIDES)
    elif not cfg.domain_a or not cfg.domain_b:
        raise UserError("--domainA and --domainB are required (or --resume with the --name of a run)")
    validate(cfg)
    files_a = domain_folder(cfg.domain_a, "domain A folder")
    files_b = domain_folder(cfg.domain_b, "domain B folder")
    world, device = distributed.setup(cfg.device)
    try:
        precision = resolve_precision(cfg.precision, device)
        # First: a missing test split or FID network stops before the run folder is made.
        evaluator = training_eval(cfg, device, precision) if cfg.eval_every and main else None
        exports = tuple(file for file, _, _ in EXPORTS)
        with RunFolder(cfg.run_dir, cfg.resume, cfg.overwrite, main, exports) as folder:
            training = CycleGANRun(cfg, folder, files_a, files_b, world, device, precision, evaluator)
            interrupted = training.train()
            # torchrun stops all ranks when one exits with an error (130 here): not before rank 0 saved
            world.barrier()
            return TrainResult(folder.path, training.step, training.epoch, interrupted)
    finally:
        distributed.shutdown(world)


def training_eval(cfg: TrainConfig, device: torch.device, precision: str):
    """FID/KID on the test split every ``--eval-every`` epochs (see ``metrics.TrainingEval``)."""
    from .metrics import TrainingEval, find_test_split

    test_a, test_b = find_test_split(cfg.test_dir, cfg.domain_a, cfg.domain_b)
    return TrainingEval(test_a, test_b, cfg.image_size, cfg.run_dir, device, precision, cfg.inception,
                        resume=cfg.resume)


class CycleGANRun(StepRun):
    """One training run: the trainer, its data, where it stands (step, epoch) and saving; the loop is
    ``StepRun``'s, with the epoch's end (learning-rate decay, snapshots, evaluation) after its last step."""

    def __init__(self, cfg: TrainConfig, folder: RunFolder, files_a: list[Path], files_b: list[Path],
                 world: distributed.World, device: torch.device, precision: str, evaluator=None):
        self.cfg, self.folder, self.world, self.device = cfg, folder, world, device
        self.main, self.precision, self.evaluator = world.is_main, precision, evaluator
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick the fastest kernels

        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        self.trainer = Trainer(cfg, device, self.precision, distributed=world.enabled)
        self.step = self.epoch = self.batch_in_epoch = 0
        self.saved_step: int | None = None  # the step latest.pt holds
        wandb_id = self.restore() if cfg.resume else None
        if world.rank:  # latest.pt holds rank 0's random streams; the other ranks derive theirs
            seed_rank(self.trainer, sample_seed(cfg.seed, self.step, world.rank, 4))

        dataset = UnpairedDataset(files_a, files_b, Augment(cfg.preprocess, cfg.load_size, cfg.image_size, cfg.flip),
                                  seed=cfg.seed)
        sampler = EpochBatches(len(dataset), cfg.batch_size, cfg.seed, self.epoch, cfg.total_epochs,
                               self.batch_in_epoch, rank=world.rank, world_size=world.world_size)
        self.steps_per_epoch = sampler.batches_per_epoch
        self.total_steps = min(cfg.total_epochs * self.steps_per_epoch, cfg.max_steps or math.inf)
        self.stop_at = self.total_steps
        self.loader = data_loader(dataset, sampler, cfg.workers, collate, pin_memory=device.type == "cuda")
        self.warned: set[str] = set()
        self.in_step = False  # between the start and the end of an update the state is not worth saving

        self.config = to_dict(cfg)
        folder.write_config({**self.config, "versions": run.versions(), "world_size": world.world_size,
                             "files": {"domain_a": str(Path(cfg.domain_a).resolve()),
                                       "domain_b": str(Path(cfg.domain_b).resolve()),
                                       "n_a": len(files_a), "n_b": len(files_b)}})
        self.tracker = open_tracker(folder.path, cfg.wandb_mode, cfg.wandb_project, cfg.name, self.config,
                                    self.main, run_id=wandb_id)
        self.wandb_id = self.tracker.run_id  # kept for the saves after the tracker has finished
        if self.main:
            log.info("training %s: %d A / %d B images, %d steps per epoch, %d epochs, device %s, %s%s",
                     cfg.name, len(files_a), len(files_b), self.steps_per_epoch, cfg.total_epochs, device,
                     self.precision, f", {world.world_size} processes" if world.enabled else "")

    def end_of_step(self, progress: Progress) -> None:
        if self.batch_in_epoch == self.steps_per_epoch:
            self.end_epoch()
            progress.describe(f"{self.cfg.name} epoch {min(self.epoch + 1, self.cfg.total_epochs)}")

    def agree(self, stop: bool) -> bool:
        # A signal may reach one rank only, or the ranks at different steps: all stop at the same one.
        return self.world.any(stop)

    def outputs(self) -> str:
        return f"generators in {self.folder.path}"

    def train_step(self, batch: dict) -> dict[str, torch.Tensor]:
        self.check_batch(batch)
        real_A = batch["A"].to(self.device, non_blocking=True)
        real_B = batch["B"].to(self.device, non_blocking=True)
        self.in_step = True
        losses = self.trainer.step(real_A, real_B)
        self.step += 1
        self.batch_in_epoch += 1
        self.in_step = False
        return losses

    def end_epoch(self) -> None:
        """Decay the learning rate, save, and keep a snapshot or evaluate when one is due."""
        cfg = self.cfg
        self.trainer.end_epoch()
        self.epoch += 1
        self.batch_in_epoch = 0
        self.save()
        if self.main and (self.epoch % cfg.save_every == 0 or self.epoch == cfg.total_epochs):
            snap = self.folder.path / f"epoch_{self.epoch:03d}"
            for file, net, _ in EXPORTS:
                save_generator(snap / file, getattr(self.trainer.nets, net), self.trainer.spec, {"epoch": self.epoch})
        if self.evaluator and (self.epoch % cfg.eval_every == 0 or self.epoch == cfg.total_epochs):
            nets = self.trainer.nets
            self.tracker.log(self.evaluator(nets.G_AB, nets.G_BA, self.trainer.spec, self.epoch, self.step), self.step)

    def log(self, losses: dict[str, torch.Tensor], progress: Progress) -> None:
        extra = {"lr": self.trainer.lr, "epoch": self.epoch + 1}
        log_losses(self, losses, progress, f"epoch {self.epoch + 1}  ", extra)

    def save_sample(self) -> None:
        from torchvision.utils import save_image

        grid = sample_grid(self.trainer.last_images)
        path = atomic_write(self.folder.path / "samples" / f"step_{self.step:07d}.png",
                            lambda tmp: save_image(grid, tmp, format="png"))
        self.tracker.log_image("samples", path, self.step,
                               caption="real A | fake B | rec A / real B | fake A | rec B")

    # ---- saving and restoring: the generators first, then latest.pt, the commit point

    def state_dict(self) -> dict:
        return {"trainer": self.trainer.state_dict(), "rng": run.rng_state(self.device), "step": self.step,
                "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "world_size": self.world.world_size,
                "wandb_id": self.wandb_id, "config": self.config, "run_dir": str(self.folder.path.resolve())}

    def save(self) -> None:
        if not self.main or self.saved_step == self.step:
            return
        self.export_generators()
        self.folder.save(self.state_dict())
        self.saved_step = self.step

    def export_generators(self, only_stale: bool = False) -> None:
        """Write G_AB/G_BA with this step in their metadata (``only_stale``: those holding another step)."""
        meta = {"step": self.step, "epoch": self.epoch, "name": self.cfg.name}
        for file, net, direction in EXPORTS:
            path = self.folder.path / file
            if only_stale and _export_step(path) == str(self.step):
                continue
            save_generator(path, getattr(self.trainer.nets, net), self.trainer.spec, {**meta, "direction": direction})

    def restore(self) -> str | None:
        """Continue from latest.pt; returns the W&B run id to continue."""
        state = self.folder.load()
        self.trainer.load_state_dict(state["trainer"])
        run.set_rng_state(state["rng"], self.device)
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        self.saved_step = self.step
        if self.main:
            log.info("resuming %s at epoch %d, step %d", self.folder.path, self.epoch + 1, self.step)
            self.export_generators(only_stale=True)  # a process killed mid-save may have left them at another step
        wandb_id = state.get("wandb_id")
        origin = Path(state.get("run_dir") or self.folder.path)
        if origin.resolve() != self.folder.path.resolve() and (origin / "latest.pt").is_file():
            log.info("%s is a copy of %s: it gets a W&B run of its own", self.folder.path, origin)
            wandb_id = None
        saved_world = state.get("world_size", 1)
        if saved_world != self.world.world_size:  # each process's batches are a different share now
            self.batch_in_epoch = self.batch_in_epoch * saved_world // self.world.world_size
            if self.main and self.batch_in_epoch:
                log.warning("resuming %d-process training with %d processes: the rest of this epoch is "
                            "approximate (the next epochs are exact)", saved_world, self.world.world_size)
        return wandb_id


def _export_step(path: Path) -> str | None:
    """The step a generator export was written at, from its metadata (None when unreadable)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return (f.metadata() or {}).get("step")
    except Exception:  # missing or damaged: export again
        return None
