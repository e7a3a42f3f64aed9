"""CycleGAN training: the image pool, the learning-rate schedule, one training step, and the loop.

One step, as in the paper: both generators are updated on adversarial + cycle (+ identity) losses with
the discriminators frozen, then both discriminators on real images and on fakes drawn from a pool of
past generator outputs.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass, replace
from itertools import chain
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.utils import make_grid

from . import config, distributed
from .checkpoint import save_network
from .config import TrainConfig
from .data import Augment, EpochBatches, UnpairedDataset, collate, data_loader, domain_folder, first_usable, sample_seed
from .errors import UserError
from .losses import discriminator_adv_loss, generator_adv_loss, l1
from .metrics import TrainingEval, find_test_split
from .models import GeneratorSpec, build_discriminator, build_generator
from .progress import TrainingProgress
from .run import RunFolder, RunResult, StepRun
from .runtime import Amp, compile_network, compile_problem, memory_format, resolve_device

log = logging.getLogger(__name__)

LOSS_NAMES = ("G_AB", "G_BA", "D_A", "D_B", "cycle_A", "cycle_B", "idt_A", "idt_B")


class ImagePool:
    """A buffer of up to ``size`` past fakes (Shrivastava et al.): half the time the discriminator sees
    an older fake instead of the newest, which damps oscillation. Works per image, so any batch size."""

    def __init__(self, size: int = 50, seed: int = 0, device: torch.device | str = "cpu"):
        self.size, self.device = size, torch.device(device)
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

    def load_state_dict(self, state: dict) -> None:
        self.images = [t.to(self.device) for t in state["images"]]
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
    spec = GeneratorSpec.from_name(cfg.net_g, ngf=cfg.ngf, norm=cfg.norm, dropout=cfg.dropout,
                                   upsample=cfg.upsample)
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
        self.compiled = self._can_compile()
        self.memory_format = memory_format(cfg.channels_last, device, compiled_training=self.compiled)
        for net in self.all_nets:
            net.to(device, memory_format=self.memory_format)
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
        self.pool_A = ImagePool(cfg.pool_size, seed=cfg.seed + 1, device=device)
        self.pool_B = ImagePool(cfg.pool_size, seed=cfg.seed + 2, device=device)
        self.amp = Amp(device, precision)

        G_AB, G_BA, D_A, D_B = self._compiled(self.all_nets) if self.compiled else self.all_nets
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

    def _can_compile(self) -> bool:
        """``cfg.compile`` (None: off; the run turns it on for long runs), where torch.compile can run."""
        if not self.cfg.compile:
            return False
        problem = compile_problem(self.device)
        if problem:
            log.warning("--compile: torch.compile cannot run here (%s); training without it", problem)
        return problem is None

    def _compiled(self, nets: list[nn.Module]) -> list[nn.Module]:
        # Cropped training images have one size and at most two batch sizes occur (the full one and an
        # epoch's last): compile each shape as it is. Uncropped images vary in size: compile for any size.
        dynamic = None if "crop" not in self.cfg.preprocess else False
        return [compile_network(net, self.device, self.precision, dynamic) for net in nets]

    def step(self, real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, torch.Tensor]:
        """One optimisation step of both generators and both discriminators; returns detached losses."""
        cfg = self.cfg
        # the inputs in the networks' memory format (``__init__``)
        real_A, real_B = (x.contiguous(memory_format=self.memory_format) for x in (real_A, real_B))
        lam, lam_idt = cfg.lambda_cycle, cfg.lambda_identity * cfg.lambda_cycle
        losses: dict[str, torch.Tensor] = {}

        # Generators, with the discriminators frozen so their weights get no gradient from this loss.
        set_requires_grad([self.discriminators], False)
        self.opt_G.zero_grad(set_to_none=True)
        with self.amp.autocast():
            out = self.train_G(real_A, real_B)
            (pred_A,), (pred_B,) = self.discriminators([out["fake_A"]], [out["fake_B"]])
            losses["G_AB"] = generator_adv_loss(pred_B, cfg.gan_mode)
            losses["G_BA"] = generator_adv_loss(pred_A, cfg.gan_mode)
            losses["cycle_A"] = l1(out["rec_A"], real_A) * lam
            losses["cycle_B"] = l1(out["rec_B"], real_B) * lam
            if "idt_A" in out:
                losses["idt_A"] = l1(out["idt_A"], real_A) * lam_idt
                losses["idt_B"] = l1(out["idt_B"], real_B) * lam_idt
        self.amp.backward(sum(losses.values()), self.opt_G)

        # Discriminators, on real images and on (pooled, detached) fakes.
        set_requires_grad([self.discriminators], True)
        self.opt_D.zero_grad(set_to_none=True)
        pooled_A, pooled_B = self.pool_A.query(out["fake_A"]), self.pool_B.query(out["fake_B"])
        with self.amp.autocast():
            (real_A_pred, fake_A_pred), (real_B_pred, fake_B_pred) = self.train_D([real_A, pooled_A],
                                                                                  [real_B, pooled_B])
            losses["D_B"] = discriminator_adv_loss(real_B_pred, fake_B_pred, cfg.gan_mode)
            losses["D_A"] = discriminator_adv_loss(real_A_pred, fake_A_pred, cfg.gan_mode)
        self.amp.backward(losses["D_A"] + losses["D_B"], self.opt_D)
        self.amp.update()

        self.last_images = (real_A, out["fake_B"], out["rec_A"], real_B, out["fake_A"], out["rec_B"])
        return {k: v.detach() for k, v in losses.items()}

    def end_epoch(self) -> None:
        self.sched_G.step()
        self.sched_D.step()

    @property
    def lr(self) -> float:
        return self.opt_G.param_groups[0]["lr"]

    def objects(self) -> dict:
        """What a training state holds of the trainer (``StepRun.objects``), under the names of earlier
        releases' files."""
        return {**vars(self.nets), "opt_G": self.opt_G, "opt_D": self.opt_D, "sched_G": self.sched_G,
                "sched_D": self.sched_D, "pool_A": self.pool_A, "pool_B": self.pool_B, "scaler": self.amp}


def sample_grid(images: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Rows: real A | fake B | reconstructed A, and real B | fake A | reconstructed B (first image).

    Untouched by cropping (``--preprocess none``) A and B may differ in size: smaller tiles are padded
    with black at the right and bottom to the largest.
    """
    tiles = [t[0].detach().float().cpu() for t in images]
    h, w = max(t.shape[1] for t in tiles), max(t.shape[2] for t in tiles)
    tiles = [F.pad(t, (0, w - t.shape[2], 0, h - t.shape[1]), value=-1.0) for t in tiles]
    return make_grid(torch.stack(tiles), nrow=3, normalize=True, value_range=(-1, 1), padding=2)


def seed_rank(trainer: Trainer, seed: int) -> None:
    """Give this process its own random streams for dropout and the image pools."""
    torch.manual_seed(seed)
    random.seed(seed)
    trainer.pool_A.rng.manual_seed(seed + 1)
    trainer.pool_B.rng.manual_seed(seed + 2)


# Runs of at least this many steps compile their networks unless --compile/--no-compile says otherwise:
# compiling takes one to two minutes on a CPU and then saves about 0.7 s per 128² step there (bf16,
# scripts/bench_cpu.py), so it has paid back after a few hundred steps.
COMPILE_FROM_STEPS = 1000

# The generator exports in a run folder, beside latest.pt: file, network, direction.
EXPORTS = (("G_AB.safetensors", "G_AB", "AtoB"), ("G_BA.safetensors", "G_BA", "BtoA"))


def train(cfg: TrainConfig) -> RunResult:
    """Train (or with ``cfg.resume`` continue) a CycleGAN run in ``cfg.run_dir``.

    Under ``torchrun`` every process runs this: each trains on its share of every epoch's batches, and
    rank 0 alone locks and writes the run folder and logs.
    """
    return CycleGANRun.launch(cfg)


def check(cfg: TrainConfig) -> None:
    """What the options alone cannot say (the generator's name, the device), before any work."""
    config.validate(cfg)
    try:
        GeneratorSpec.from_name(cfg.net_g)
    except ValueError as e:
        raise UserError(config.problem("--net-g", cfg.net_g, str(e))) from None
    resolve_device(cfg.device)  # present on this machine


class CycleGANRun(StepRun):
    """One training run: the trainer and its data (the run's life is ``StepRun``'s), with the epoch's end
    (learning-rate decay, snapshots, evaluation) after its last step."""

    exports = tuple(file for file, _, _ in EXPORTS)
    distributed = True

    @classmethod
    def inputs(cls, cfg: TrainConfig, device: torch.device, precision: str, main: bool) -> dict:
        check(cfg)
        if not cfg.domain_a or not cfg.domain_b:
            raise UserError("--domainA and --domainB are required (or --resume with the --name of a run)")
        augment = Augment(cfg.preprocess, cfg.load_size, cfg.image_size, cfg.flip,
                          GeneratorSpec.from_name(cfg.net_g).min_side)
        files = {"a": domain_folder(cfg.domain_a, "domain A folder"),
                 "b": domain_folder(cfg.domain_b, "domain B folder"), "augment": augment}
        for domain in "ab":  # a folder of nothing usable stops here, not after an untrained checkpoint
            first_usable(files[domain], f"domain {domain.upper()} folder", augment.unusable)
        # a missing test split or FID network stops before the run folder is made
        files["evaluator"] = training_eval(cfg, device, precision) if cfg.eval_every and main else None
        return files

    def __init__(self, cfg: TrainConfig, folder: RunFolder, inputs: dict, world: distributed.World,
                 device: torch.device, precision: str):
        super().__init__(cfg, folder, world, device, precision)
        self.evaluator = inputs["evaluator"]
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick the fastest kernels
        files_a, files_b = inputs["a"], inputs["b"]
        dataset = UnpairedDataset(files_a, files_b, inputs["augment"], seed=cfg.seed)
        self.steps_per_epoch = EpochBatches(len(dataset), cfg.batch_size, cfg.seed, 0, cfg.total_epochs,
                                            world_size=world.world_size).batches_per_epoch
        self.total_steps = self.stop_at = min(cfg.total_epochs * self.steps_per_epoch, cfg.max_steps or math.inf)
        compile = cfg.compile if cfg.compile is not None else self.total_steps >= COMPILE_FROM_STEPS
        self.trainer = Trainer(replace(cfg, compile=compile), device, precision, distributed=world.enabled)
        self.amp = self.trainer.amp
        self.objects = self.trainer.objects()
        nets, spec = self.trainer.nets, self.trainer.spec
        self.networks = {file: (getattr(nets, net), spec) for file, net, _ in EXPORTS}
        self.restore()
        if world.rank:  # latest.pt holds rank 0's random streams; the other ranks derive theirs
            seed_rank(self.trainer, sample_seed(cfg.seed, self.step, world.rank, 4))

        sampler = EpochBatches(len(dataset), cfg.batch_size, cfg.seed, self.epoch, cfg.total_epochs,
                               self.batch_in_epoch, rank=world.rank, world_size=world.world_size)
        self.loader = data_loader(dataset, sampler, cfg.workers, collate, pin_memory=device.type == "cuda")
        folders = {"domain_a": str(Path(cfg.domain_a).resolve()), "domain_b": str(Path(cfg.domain_b).resolve())}
        self.start({"world_size": world.world_size, "files": {**folders, "n_a": len(files_a), "n_b": len(files_b)}},
                   f"{len(files_a)} A / {len(files_b)} B images, {self.steps_per_epoch} steps per epoch, "
                   f"{cfg.total_epochs} epochs" + (f", {world.world_size} processes" if world.enabled else ""))

    def restore(self) -> None:
        super().restore()
        saved_world = self.saved.get("world_size", 1) if self.saved else self.world.world_size
        if saved_world != self.world.world_size:  # each process's batches are a different share now
            self.batch_in_epoch = self.batch_in_epoch * saved_world // self.world.world_size
            if self.main and self.batch_in_epoch:
                log.warning("resuming %d-process training with %d processes: the rest of this epoch is "
                            "approximate (the next epochs are exact)", saved_world, self.world.world_size)

    def end_of_step(self, progress: TrainingProgress) -> None:
        if self.batch_in_epoch == self.steps_per_epoch:
            self.end_epoch()
            progress.describe(f"{self.cfg.name} epoch {min(self.epoch + 1, self.cfg.total_epochs)}")

    def outputs(self) -> str:
        return f"generators in {self.folder.path}"

    def train_step(self, batch: dict) -> dict[str, torch.Tensor]:
        self.check_batch(batch)
        real_A = batch["A"].to(self.device, non_blocking=True)
        real_B = batch["B"].to(self.device, non_blocking=True)
        self.in_step = True
        losses = self.trainer.step(real_A, real_B)
        self.advance()
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
            for file, (net, spec) in self.networks.items():
                save_network(snap / file, net, spec, {"epoch": self.epoch})
        if self.evaluator and (self.epoch % cfg.eval_every == 0 or self.epoch == cfg.total_epochs):
            nets = self.trainer.nets
            self.tracker.log(self.evaluator(nets.G_AB, nets.G_BA, self.trainer.spec, self.epoch, self.step), self.step)

    def log(self, losses: dict[str, torch.Tensor], progress: TrainingProgress) -> None:
        super().log(losses, progress, f"epoch {self.epoch + 1}  ", {"lr": self.trainer.lr, "epoch": self.epoch + 1})

    def sample(self) -> tuple[torch.Tensor, str]:
        return sample_grid(self.trainer.last_images), "real A | fake B | rec A / real B | fake A | rec B"

    def export_metadata(self, file: str) -> dict:
        return {"direction": next(d for f, _, d in EXPORTS if f == file)}

    def state(self) -> dict:
        return {**super().state(), "world_size": self.world.world_size}


def training_eval(cfg: TrainConfig, device: torch.device, precision: str):
    """FID/KID on the test split every ``--eval-every`` epochs (see ``metrics.TrainingEval``)."""
    test_a, test_b = find_test_split(cfg.test_dir, cfg.domain_a, cfg.domain_b)
    return TrainingEval(test_a, test_b, cfg.image_size, cfg.run_dir, device, precision, cfg.inception,
                        resume=cfg.resume)
