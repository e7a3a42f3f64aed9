"""Fast neural style (Johnson, Alahi & Fei-Fei 2016) and conditional instance norm (Dumoulin et al. 2017).

A feed-forward *transformer network* learns to paint photos in the style of one painting by minimising
the perceptual loss that Gatys et al. optimise per image (VGG content + Gram style + total variation);
afterwards it paints any photo in one pass. The network is pytorch/examples' ``fast_neural_style``
TransformerNet, module for module (reflection-padded convolutions, instance norm with affine
parameters (Ulyanov et al. 2016), five residual blocks, nearest-neighbour upsampling followed by a
convolution instead of transposed convolutions, which avoids checkerboard artefacts), so its published
``.pth`` files load unchanged. Like those, it takes and returns RGB in 0..255 (not the [-1, 1] of our
CycleGAN generators) and has no output activation.

With N styles the instance norms are conditional: every convolution is shared and each norm holds one
(γ, β) pair per style (``weight``/``bias`` of shape ``[N, C]``; ``[C]`` for one style, exactly the
pytorch/examples layout). A mixture of styles mixes their (γ, β).

The loss network is our VGG19 (``nst.py``), where Johnson et al. and pytorch/examples use VGG16. We take
the layers that play the same part: content at ``conv2_2`` (VGG16's relu2_2 is the same layer), style at
the last ReLU of each of the first four blocks, ``conv1_2, conv2_2, conv3_4, conv4_4`` (VGG16's relu3_3
and relu4_3 end their blocks; in VGG19 a fourth convolution ends them). Grams are ``nst.gram_matrix``
(divided by C·H·W) and VGG sees [0, 1] images normalised as for ImageNet, as in pytorch/examples.

Where we differ: each term is *relative*, divided by the mean square of its target (the photo's content
features, each layer's Gram of the painting). pytorch/examples' raw weights (content 1e5, style 1e10) hold
for the activation scale of one VGG: a Gram loss grows with the 4th power of the activations and a content
loss with the 2nd, and VGG19 files differ by orders of magnitude in scale (torchvision's, the original
Caffe weights) and between layers (in Caffe's VGG19 the raw ``conv3_4`` term is over 10× the others).
Relative terms are the same for all of them, so one set of defaults holds for any ``--vgg-weights``.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from .. import config, run
from ..checkpoint import load_state
from ..config import StyleTrainConfig, to_dict
from ..data import EpochBatches, image_folder, load_image, sample_seed
from ..errors import UserError
from ..files import atomic_write
from ..nst import VGGFeatures, gram_matrix, load_vgg19, resize_long_side, total_variation
from ..run import Progress, RunFolder, StepRun, check_run_folder, data_loader, log_losses, open_tracker
from ..runtime import autocast, resolve_device, resolve_precision

log = logging.getLogger(__name__)

CONTENT_LAYER = "conv2_2"
STYLE_LAYERS = ("conv1_2", "conv2_2", "conv3_4", "conv4_4")
# Weights of the relative terms (see the module docstring and the README for how they were chosen). No TV
# term, as in pytorch/examples: the upsampling convolutions leave no checkerboard for it to remove.
DEFAULT_WEIGHTS = {"content": 1.0, "style": 0.3, "tv": 0.0}
LR = 1e-3  # Adam, as pytorch/examples (and Johnson et al.)
SPEC_KEY = "cyclegan.style_net"  # safetensors metadata: the StyleNetSpec (checkpoint.STYLE_SPEC_KEY)
EXPORT = "style.safetensors"


# --------------------------------------------------------------------------------------------- network


@dataclass
class StyleNetSpec:
    """What a style network file needs besides its tensors: the number and names of its styles."""

    kind: str = "fast_style"
    n_styles: int = 1
    styles: list[str] = field(default_factory=list)  # the style images' file stems, one per style
    value_range: tuple[float, float] = (0.0, 255.0)  # what the network takes and returns
    multiple: int = 4  # two stride-2 convolutions, two 2× upsamplings: sides must be multiples of 4

    @property
    def arch(self) -> str:
        return self.kind

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> StyleNetSpec:
        if not isinstance(d, dict) or d.get("kind") != "fast_style":
            raise ValueError("not a fast style network")
        n = int(d.get("n_styles", 1))
        styles = [str(s) for s in d.get("styles") or []] or [str(i) for i in range(n)]
        if n < 1 or len(styles) != n:
            raise ValueError(f"{n} styles but {len(styles)} style names")
        return cls(n_styles=n, styles=styles, value_range=tuple(d.get("value_range", (0.0, 255.0))))


class CondInstanceNorm2d(nn.Module):
    """Instance norm with one (γ, β) per style; a style mixture mixes them (Dumoulin et al. 2017).

    One style: ``weight``/``bias`` are ``[C]``, which is ``nn.InstanceNorm2d(C, affine=True)``'s layout.
    """

    def __init__(self, channels: int, n_styles: int = 1):
        super().__init__()
        shape = (channels,) if n_styles == 1 else (n_styles, channels)
        self.weight = nn.Parameter(torch.ones(shape))
        self.bias = nn.Parameter(torch.zeros(shape))

    def forward(self, x: torch.Tensor, mix: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        gamma = mix @ self.weight.view(-1, c)  # [n_styles] @ [n_styles, C]
        beta = mix @ self.bias.view(-1, c)
        return F.instance_norm(x, weight=gamma.to(x.dtype), bias=beta.to(x.dtype), eps=1e-5)


class ConvLayer(nn.Module):
    """Reflection padding and a convolution (names as in pytorch/examples: ``conv2d``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int):
        super().__init__()
        self.reflection_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2d(self.reflection_pad(x))


class UpsampleConvLayer(ConvLayer):
    """Nearest-neighbour 2× upsampling, then a ConvLayer: no checkerboard, unlike a transposed conv."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.interpolate(x, scale_factor=2, mode="nearest"))


class ResidualBlock(nn.Module):
    """conv-norm-ReLU-conv-norm plus the input (He et al. 2016, as Johnson et al. use it)."""

    def __init__(self, channels: int, n_styles: int):
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3, 1)
        self.in1 = CondInstanceNorm2d(channels, n_styles)
        self.conv2 = ConvLayer(channels, channels, 3, 1)
        self.in2 = CondInstanceNorm2d(channels, n_styles)

    def forward(self, x: torch.Tensor, mix: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.in1(self.conv1(x), mix))
        return x + self.in2(self.conv2(y), mix)


class TransformerNet(nn.Module):
    """pytorch/examples' fast_neural_style TransformerNet, with conditional instance norm for N styles.

    ``net(x)`` paints RGB 0..255 ``[B, 3, H, W]`` (H, W multiples of 4) in ``net.mix``, the style
    mixture set by ``set_style`` (style 0 at first); ``net(x, mix)`` uses ``mix`` ([n_styles] weights).
    """

    def __init__(self, n_styles: int = 1):
        super().__init__()
        self.n_styles = n_styles
        self.conv1, self.in1 = ConvLayer(3, 32, 9, 1), CondInstanceNorm2d(32, n_styles)
        self.conv2, self.in2 = ConvLayer(32, 64, 3, 2), CondInstanceNorm2d(64, n_styles)
        self.conv3, self.in3 = ConvLayer(64, 128, 3, 2), CondInstanceNorm2d(128, n_styles)
        self.res1, self.res2, self.res3, self.res4, self.res5 = (ResidualBlock(128, n_styles) for _ in range(5))
        self.deconv1, self.in4 = UpsampleConvLayer(128, 64, 3, 1), CondInstanceNorm2d(64, n_styles)
        self.deconv2, self.in5 = UpsampleConvLayer(64, 32, 3, 1), CondInstanceNorm2d(32, n_styles)
        self.deconv3 = ConvLayer(32, 3, 9, 1)
        # Not saved: which style ``forward`` paints is a choice at inference, not a weight.
        self.register_buffer("mix", one_hot(0, n_styles), persistent=False)

    def set_style(self, mix: torch.Tensor) -> None:
        self.mix = mix.to(self.mix)

    def forward(self, x: torch.Tensor, mix: torch.Tensor | None = None) -> torch.Tensor:
        mix = self.mix if mix is None else mix
        y = F.relu(self.in1(self.conv1(x), mix))
        y = F.relu(self.in2(self.conv2(y), mix))
        y = F.relu(self.in3(self.conv3(y), mix))
        for block in (self.res1, self.res2, self.res3, self.res4, self.res5):
            y = block(y, mix)
        y = F.relu(self.in4(self.deconv1(y), mix))
        y = F.relu(self.in5(self.deconv2(y), mix))
        return self.deconv3(y)


def one_hot(i: int, n: int) -> torch.Tensor:
    return F.one_hot(torch.tensor(i), n).float()


# Old PyTorch saved running statistics for InstanceNorm2d(affine=True) although it never uses them; the
# published pytorch/examples files carry them (their own loader deletes them the same way).
STALE_KEY = re.compile(r"(^|\.)in\d+\.(running_mean|running_var|num_batches_tracked)$")


def is_transformer_state(state: dict) -> bool:
    """Whether a state dict has the TransformerNet layout (pytorch/examples' files, ours)."""
    return "conv1.conv2d.weight" in state and "deconv3.conv2d.weight" in state and "res5.in2.weight" in state


def transformer_from_state_dict(state: dict[str, torch.Tensor], spec: StyleNetSpec | None = None,
                                where: str = "style network") -> tuple[TransformerNet, StyleNetSpec]:
    """A TransformerNet holding ``state`` (stale running-stat keys dropped): ``(net.eval(), spec)``."""
    state = {k: v for k, v in state.items() if not STALE_KEY.search(k)}
    n = state_styles(state) if "in1.weight" in state else 1
    spec = spec or StyleNetSpec(n_styles=n, styles=[str(i) for i in range(n)])
    if spec.n_styles != n:
        raise UserError(f"{where}: its metadata names {spec.n_styles} styles but its weights hold {n}")
    net = TransformerNet(n)
    try:
        net.load_state_dict({k: v.float() for k, v in state.items()})
    except RuntimeError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        raise UserError(f"{where} is not a fast style network: {lines[-1][:300]}") from None
    return net.eval(), spec


def style_mixture(spec: StyleNetSpec, style: str | None, style_mix: str | None) -> torch.Tensor:
    """``--style I`` (index or name) or ``--style-mix I:w,J:w`` (weights normalised) → [n_styles] weights."""
    if style and style_mix:
        raise UserError("give --style or --style-mix, not both")
    if not style and not style_mix:
        return one_hot(0, spec.n_styles)
    if spec.n_styles == 1:
        flag = "--style" if style else "--style-mix"
        raise UserError(f"{flag}: this network has one style ({spec.styles[0]}); several need a network "
                        "trained with several --style images")
    if style:
        return one_hot(_style_index(spec, style), spec.n_styles)
    mix = torch.zeros(spec.n_styles)
    for part in style_mix.split(","):
        name, sep, weight = part.strip().rpartition(":")
        try:
            w = float(weight)
        except ValueError:
            w = -1.0
        if not sep or not math.isfinite(w) or w < 0:
            raise UserError(f"--style-mix {style_mix}: write STYLE:WEIGHT pairs such as 0:0.5,2:0.5")
        mix[_style_index(spec, name)] += w
    if mix.sum() <= 0:
        raise UserError(f"--style-mix {style_mix}: the weights add up to 0")
    return mix / mix.sum()


def _style_index(spec: StyleNetSpec, name: str) -> int:
    if name in spec.styles:
        return spec.styles.index(name)
    if name.isdigit() and int(name) < spec.n_styles:
        return int(name)
    names = ", ".join(f"{i} ({s})" for i, s in enumerate(spec.styles))
    raise UserError(f"--style {name!r}: this network's styles are {names}")


# ------------------------------------------------------------------------------------------------ loss


def relative_mse(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error in units of the target's mean square: the same for any scale of VGG activations."""
    # Only exact zeros are kept off: a floor above the smallest float would break the scale invariance.
    return F.mse_loss(x, target) / target.pow(2).mean().clamp_min(torch.finfo(torch.float32).tiny)


class PerceptualLoss(nn.Module):
    """Johnson et al.'s loss of a batch painted in style ``s``: VGG content + Gram style + TV, the VGG terms
    relative to their targets (see the module docstring)."""

    def __init__(self, vgg: nn.Sequential, styles: list[torch.Tensor | None], weights: dict[str, float]):
        super().__init__()
        self.extractor = VGGFeatures(vgg, [CONTENT_LAYER, *STYLE_LAYERS])
        self.weights = weights
        # The Gram targets: one set per style image ([1, 3, H, W] in [0, 1]; None: a style not trained here)
        self.grams = [None if img is None else self.style_grams(img) for img in styles]

    @torch.no_grad()
    def style_grams(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.extractor(img)
        return {n: gram_matrix(feats[n]) for n in STYLE_LAYERS}

    def forward(self, y: torch.Tensor, x: torch.Tensor, s: int) -> dict[str, torch.Tensor]:
        """``y``: the network's output, ``x``: its input, both RGB 0..255."""
        y = y / 255
        with torch.no_grad():
            target = self.extractor(x / 255)[CONTENT_LAYER]
        feats = self.extractor(y)
        style = sum(relative_mse(gram_matrix(feats[n].float()), self.grams[s][n].expand(len(y), -1, -1))
                    for n in STYLE_LAYERS)
        losses = {"content": self.weights["content"] * relative_mse(feats[CONTENT_LAYER].float(), target.float()),
                  "style": self.weights["style"] * style,
                  "tv": self.weights["tv"] * total_variation(y.float())}
        losses["total"] = losses["content"] + losses["style"] + losses["tv"]
        return losses


def loss_weights(cfg: StyleTrainConfig) -> dict[str, float]:
    given = {"content": cfg.content_weight, "style": cfg.style_weight, "tv": cfg.tv_weight}
    return {k: DEFAULT_WEIGHTS[k] if v is None else v for k, v in given.items()}


# ------------------------------------------------------------------------------------------------ data


class ContentImages(torch.utils.data.Dataset):
    """Content photos, keyed ``(epoch, index)``: the short side scaled to ``size``, then a random square
    crop, drawn from the run seed, the epoch and the index (so a resumed run sees the same crops).
    Unreadable files are replaced by the next readable one and reported, as in ``data.UnpairedDataset``."""

    def __init__(self, files: list[Path], size: int, seed: int):
        self.files, self.size, self.seed = files, size, seed

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        epoch, index = key
        bad: list[str] = []
        for k in range(len(self.files)):
            path = self.files[(index + k) % len(self.files)]
            try:
                img = load_image(path)[0]
                break
            except Exception as e:
                bad.append(f"{path} ({type(e).__name__}: {e})")
        else:
            return {"error": f"no readable image in the content folder (tried all {len(self.files)})", "bad": bad}
        w, h = img.size
        s = self.size / min(w, h)
        img = img.resize((max(self.size, round(w * s)), max(self.size, round(h * s))), Image.BICUBIC)
        rng = np.random.default_rng(sample_seed(self.seed, epoch, index, 5))
        left = int(rng.integers(img.width - self.size + 1))
        top = int(rng.integers(img.height - self.size + 1))
        img = img.crop((left, top, left + self.size, top + self.size))
        return {"content": torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1), "bad": bad}


def collate(items: list[dict]) -> dict:
    bad = [b for it in items for b in it["bad"]]
    errors = [it["error"] for it in items if "error" in it]
    if errors:
        return {"error": errors[0], "bad": bad}
    return {"content": torch.stack([it["content"] for it in items]), "bad": bad}


def load_styles(paths: list[str], size: int, device: torch.device) -> list[torch.Tensor]:
    """Style images as ``[1, 3, H, W]`` in [0, 1], long side ``size``."""
    out = []
    for p in paths:
        try:
            img = load_image(p)[0]
        except FileNotFoundError:
            raise UserError(f"--style {p}: no such file") from None
        except Exception as e:
            raise UserError(f"--style {p}: not a readable image ({type(e).__name__}: {e})") from None
        img = resize_long_side(img, size)
        out.append(torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1)[None].to(device))
    return out


# -------------------------------------------------------------------------------------------- the run


def save_style_net(path: Path, net: TransformerNet, spec: StyleNetSpec, metadata: dict | None = None) -> Path:
    """Export the network with its spec in the safetensors metadata (``translate`` needs no flags)."""
    from safetensors.torch import save

    tensors = {k: v.detach().float().contiguous().cpu() for k, v in net.state_dict().items()}
    meta = {SPEC_KEY: json.dumps(spec.to_dict()), **{k: str(v) for k, v in (metadata or {}).items()}}
    data = save(tensors, metadata=meta)
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


# Options that may change when a run is resumed: how it runs, not what it learns.
RESUMABLE = ("max_steps", "workers", "device", "precision", "save_every", "sample_every", "log_every",
             "wandb_mode", "wandb_project")


@dataclass
class StyleTrainResult:
    run_dir: Path
    step: int
    interrupted: bool


def train(cfg: StyleTrainConfig) -> StyleTrainResult:
    """Train (or with ``cfg.resume`` continue) a fast style network in ``cfg.run_dir``."""
    check_run_folder(cfg.run_dir, cfg.resume, cfg.overwrite)  # the clearest message first
    if cfg.add_style:
        cfg = grown_config(cfg)
    elif cfg.resume:
        cfg = run.resume_config(cfg, RESUMABLE)
    config.validate(cfg)
    if not cfg.styles:
        raise UserError("give at least one --style image (several: one network for all of them)")
    if not cfg.content:
        raise UserError("--content: give a folder of content photos")
    files = image_folder(cfg.content, "content folder")
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    with RunFolder(cfg.run_dir, cfg.resume, cfg.overwrite, exports=(EXPORT,)) as folder:
        training = FastStyleRun(cfg, folder, files, device, precision)
        interrupted = training.train()
        return StyleTrainResult(folder.path, training.step, interrupted)


def grown_config(cfg: StyleTrainConfig) -> StyleTrainConfig:
    """``--add-style``: the run's saved configuration with this invocation's --style images after its own
    styles (which stay as they were trained: see ``frozen_styles``), and ``--steps`` more steps."""
    if not cfg.resume:
        raise UserError("--add-style adds styles to a trained network: give --resume and the --name of its run")
    if not cfg.styles:
        raise UserError("--add-style: give the new style images with --style")
    saved = run.resume_config(cfg, RESUMABLE)
    if saved.method != "johnson":
        raise UserError(f"--add-style: {cfg.run_dir} trains an AdaIN decoder, which paints any style untrained")
    step = load_state(cfg.run_dir / run.STATE_FILE)["step"]
    return replace(saved, styles=saved.styles + cfg.styles, steps=step + cfg.steps)


class FastStyleRun(StepRun):
    """One training run of a (conditional) transformer network: data, loss, saving (the loop: ``StepRun``)."""

    command = "train-style"

    def __init__(self, cfg: StyleTrainConfig, folder: RunFolder, files: list[Path], device: torch.device,
                 precision: str):
        self.cfg, self.folder, self.device, self.precision = cfg, folder, device, precision
        state = folder.load() if cfg.resume else None
        self.spec = StyleNetSpec(n_styles=len(cfg.styles), styles=_style_names(cfg.styles))
        self.frozen = frozen_styles(state, self.spec.n_styles)  # styles trained before --add-style
        styles = load_styles(cfg.styles[self.frozen:], cfg.style_size or cfg.image_size, device)
        vgg = load_vgg19(cfg.vgg_weights, [CONTENT_LAYER, *STYLE_LAYERS], device=device)
        self.loss = PerceptualLoss(vgg, [None] * self.frozen + styles, loss_weights(cfg)).to(device)
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        self.net = TransformerNet(self.spec.n_styles).to(device)
        self.opt = torch.optim.Adam(self.trained_parameters(), lr=cfg.lr or LR)
        self.step = self.epoch = self.batch_in_epoch = 0
        self.saved_step: int | None = None
        self.in_step = False  # between the start and the end of an update the state is not worth saving
        wandb_id = self.restore(state) if state else None

        dataset = ContentImages(files, cfg.image_size, cfg.seed)
        per_epoch = -(-len(files) // cfg.batch_size)
        sampler = EpochBatches(len(files), cfg.batch_size, cfg.seed, self.epoch, -(-cfg.steps // per_epoch),
                               self.batch_in_epoch)
        self.steps_per_epoch = sampler.batches_per_epoch
        self.total_steps = self.stop_at = min(cfg.steps, cfg.max_steps or math.inf)
        self.loader = data_loader(dataset, sampler, cfg.workers, collate, pin_memory=device.type == "cuda")
        self.warned: set[str] = set()
        self.config = to_dict(cfg)
        folder.write_config({**self.config, "versions": run.versions(), "method_defaults": DEFAULT_WEIGHTS,
                             "files": {"content": str(Path(cfg.content).resolve()), "n_content": len(files)}})
        self.tracker = open_tracker(folder.path, cfg.wandb_mode, cfg.wandb_project, cfg.name, self.config, True,
                                    run_id=wandb_id)
        self.wandb_id = self.tracker.run_id
        log.info("training %s: %d content images, %d style(s) (%s), %d steps, device %s, %s", cfg.name,
                 len(files), len(styles), ", ".join(self.spec.styles), cfg.steps, device, precision)

    def outputs(self) -> str:
        return f"network in {self.folder.path / EXPORT}"

    def train_step(self, batch: dict) -> dict[str, torch.Tensor]:
        self.check_batch(batch)
        x = batch["content"].to(self.device, non_blocking=True).float()
        # one style per batch, in turn (Dumoulin et al.); after --add-style the new styles only
        s = self.frozen + self.step % (self.spec.n_styles - self.frozen)
        self.in_step = True
        self.opt.zero_grad(set_to_none=True)
        with autocast(self.device, self.precision):
            y = self.net(x, one_hot(s, self.spec.n_styles).to(self.device))
            losses = self.loss(y, x, s)
        losses["total"].backward()
        self.opt.step()
        self.last = (x[:1].detach(), s)
        self.step += 1
        self.batch_in_epoch += 1
        if self.batch_in_epoch == self.steps_per_epoch:
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
        self.in_step = False
        return {k: v.detach() for k, v in losses.items()}

    def log(self, losses: dict[str, torch.Tensor], progress: Progress) -> None:
        log_losses(self, losses, progress)

    @torch.no_grad()
    def save_sample(self) -> None:
        """One row per style: the content crop | the network's painting of it."""
        from torchvision.utils import make_grid, save_image

        x = self.last[0]
        tiles = []
        self.net.eval()
        for s in range(self.spec.n_styles):
            y = self.net(x, one_hot(s, self.spec.n_styles).to(self.device))
            tiles += [x[0], y[0].float().clamp(0, 255)]
        self.net.train()
        grid = make_grid(torch.stack(tiles).cpu() / 255, nrow=2, padding=2)
        path = atomic_write(self.folder.path / "samples" / f"step_{self.step:07d}.png",
                            lambda tmp: save_image(grid, tmp, format="png"))
        self.tracker.log_image("samples", path, self.step, caption="content | stylised, one row per style: "
                               + ", ".join(self.spec.styles))

    # ---- saving and restoring: the export first, then latest.pt, the commit point

    def save(self) -> None:
        if self.saved_step == self.step:
            return
        save_style_net(self.folder.path / EXPORT, self.net, self.spec, {"step": self.step, "name": self.cfg.name})
        self.folder.save({"trainer": {"net": self.net.state_dict(), "opt": self.opt.state_dict()},
                          "rng": run.rng_state(self.device), "step": self.step, "epoch": self.epoch,
                          "batch_in_epoch": self.batch_in_epoch, "frozen_styles": self.frozen,
                          "wandb_id": self.wandb_id, "config": self.config})
        self.saved_step = self.step

    def trained_parameters(self) -> list[nn.Parameter]:
        """Every parameter; after --add-style the (γ, β) tables only, whose rows of the styles trained
        before get no gradient (Adam then leaves them exactly as they are)."""
        if not self.frozen:
            return list(self.net.parameters())
        self.net.requires_grad_(False)
        keep = torch.arange(self.spec.n_styles, device=self.device)[:, None] >= self.frozen
        tables = [p for name, p in self.net.named_parameters() if NORM_PARAM.search(name)]
        for p in tables:
            p.requires_grad_(True)
            p.register_hook(lambda grad: torch.where(keep, grad, 0.0))
        return tables

    def restore(self, state: dict) -> str | None:
        grow = state_styles(state["trainer"]["net"]) < self.spec.n_styles  # the start of --add-style
        if grow:
            self.grow(state["trainer"]["net"])  # and a new optimiser, over the new styles' (γ, β) only
        else:
            self.net.load_state_dict(state["trainer"]["net"])
            self.opt.load_state_dict(state["trainer"]["opt"])
        run.set_rng_state(state["rng"], self.device)
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        self.saved_step = None if grow else self.step
        log.info("resuming %s at step %d", self.folder.path, self.step)
        save_style_net(self.folder.path / EXPORT, self.net, self.spec, {"step": self.step, "name": self.cfg.name})
        return state.get("wandb_id")

    def grow(self, state: dict[str, torch.Tensor]) -> None:
        """Load the trained network and give each new style the (γ, β) of the nearest trained style."""
        sources = self.nearest_styles()
        grown = {}
        for name, v in state.items():
            if NORM_PARAM.search(name):
                table = v.reshape(self.frozen, -1)
                new = [table.mean(0) if j is None else table[j] for j in sources]
                v = torch.cat([table, torch.stack(new)])
            grown[name] = v
        self.net.load_state_dict(grown)

    def nearest_styles(self) -> list[int | None]:
        """For each new style, the trained style whose image is nearest in Gram distance at the style layers
        (None: their images are gone, start from the mean of the trained styles)."""
        old = self.cfg.styles[:self.frozen]
        gone = [p for p in old if not Path(p).is_file()]
        new_names = self.spec.styles[self.frozen:]
        if gone:
            log.warning("--add-style: the images of the trained styles are gone (%s): the new styles start from "
                        "the mean of their (γ, β)", ", ".join(gone))
            return [None] * len(new_names)
        images = load_styles(old, self.cfg.style_size or self.cfg.image_size, self.device)
        old_grams = [self.loss.style_grams(img) for img in images]
        sources = []
        for name, grams in zip(new_names, self.loss.grams[self.frozen:], strict=True):
            distance = [sum(F.mse_loss(grams[n], g[n]).item() for n in STYLE_LAYERS) for g in old_grams]
            j = int(np.argmin(distance))
            log.info("--add-style: %s starts from the (γ, β) of %s, the nearest trained style", name,
                     self.spec.styles[j])
            sources.append(j)
        return sources


# The per-style instance-norm parameters, (γ, β): ``weight``/``bias`` of the ``in*`` modules.
NORM_PARAM = re.compile(r"(^|\.)in\d+\.(weight|bias)$")


def frozen_styles(state: dict | None, n_styles: int) -> int:
    """How many of a run's ``n_styles`` stay as they were trained: when --add-style grows the saved network,
    its styles; afterwards, what the state says."""
    if state is None:
        return 0
    saved = state_styles(state["trainer"]["net"])
    return saved if saved < n_styles else state.get("frozen_styles", 0)


def state_styles(state: dict[str, torch.Tensor]) -> int:
    """The number of styles of a TransformerNet state dict."""
    w = state["in1.weight"]
    return 1 if w.dim() == 1 else w.shape[0]


def _style_names(paths: list[str]) -> list[str]:
    """Each style's name: its image's file stem (``starry_night.jpg`` → ``starry_night``), made unique."""
    names: list[str] = []
    for p in paths:
        name, k = Path(p).stem, 2
        while name in names:
            name, k = f"{Path(p).stem}_{k}", k + 1
        names.append(name)
    return names
