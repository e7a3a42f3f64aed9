"""Typed configurations for each workflow, with a JSON round-trip.

The CLI turns options into one of these and hands it to a single workflow function; nothing else
reads options. Defaults reproduce the CycleGAN paper.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def to_dict(cfg: Any) -> dict:
    """A JSON-ready dict of a config dataclass (paths become strings)."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(cfg).items()}


def from_dict(cls: type[T], data: dict) -> T:
    """Rebuild a config from ``to_dict`` output; unknown keys (from newer versions) are ignored."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


def load_json(cls: type[T], path: str | Path) -> T:
    return from_dict(cls, json.loads(Path(path).read_text()))


@dataclass
class TrainConfig:
    """Options of ``cyclegan train``; the defaults are the paper's."""

    domain_a: str = ""
    domain_b: str = ""
    name: str = "cyclegan"
    checkpoints_dir: str = "checkpoints"
    # networks
    net_g: str = "resnet_9blocks"
    net_d: str = "basic"
    n_layers_d: int = 3
    ngf: int = 64
    ndf: int = 64
    norm: str = "instance"
    init_type: str = "normal"
    init_gain: float = 0.02
    dropout: bool = False
    # losses
    gan_mode: str = "lsgan"
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5  # a fraction of lambda_cycle; 0 disables the identity terms
    pool_size: int = 50
    # optimisation
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    epochs: int = 100
    epochs_decay: int = 100
    batch_size: int = 1
    max_steps: int | None = None
    seed: int = 0
    # data
    load_size: int = 286
    image_size: int = 256
    preprocess: str = "resize_and_crop"
    flip: bool = True
    workers: int = 4
    # runtime
    device: str = "auto"
    precision: str = "auto"  # auto: bf16 on a GPU that supports it, fp32 otherwise
    channels_last: bool = False
    compile: bool = False
    # output and logging
    save_every: int = 5
    sample_every: int = 500
    log_every: int = 10
    wandb_mode: str = "auto"  # auto: online when logged in to W&B, offline otherwise
    wandb_project: str = "cyclegan"
    resume: bool = False
    overwrite: bool = False  # replace an existing run of the same name (never implied)
    # evaluation during training
    eval_every: int = 0  # epochs between FID/KID evaluations on the test split; 0: never
    test_dir: str | None = None  # holds testA/ and testB/; None: beside trainA/ and trainB/
    inception: str | None = None  # FID Inception TorchScript; None: the cached download

    @property
    def run_dir(self) -> Path:
        return Path(self.checkpoints_dir) / self.name

    @property
    def total_epochs(self) -> int:
        return self.epochs + self.epochs_decay


@dataclass
class TranslateConfig:
    """Options of ``cyclegan translate``: run a generator over an image or a folder of images."""

    checkpoint: str = ""  # run folder, .safetensors export, or a .pth of the original release
    input: str = ""  # an image or a folder (searched recursively)
    output: str = ""  # folder mirroring the input's relative paths (or a file name for a single image)
    direction: str = "AtoB"  # which generator of a run folder: AtoB (G_AB) or BtoA (G_BA)
    # output files
    format: str = "same"  # same | png | jpg | webp
    quality: int = 95  # jpg / webp
    overwrite: bool = False  # otherwise existing outputs are skipped, so an interrupted run resumes
    # sizes: by default none is changed
    resize: int | None = None  # scale the short side to this many pixels first
    max_side: int | None = None  # then scale down so the long side is at most this
    # speed
    batch_size: int = 8  # images of the same size per forward pass
    workers: int = 4  # decoding processes
    writers: int = 0  # encoding/writing threads; 0: one per CPU core, at most 8
    device: str = "auto"
    precision: str = "auto"  # auto: bf16 on a GPU that supports it, fp32 otherwise
    channels_last: bool = True
    compile: bool = False
    progress: bool = True


@dataclass
class EvalConfig:
    """Options of ``cyclegan evaluate``: two image folders, or a run folder on its test split."""

    target: str = ""  # a folder of generated images, or a run folder
    real_dir: str | None = None  # the real images to compare a folder of generated ones with
    json_path: str | None = None  # where to write the scores of two folders (a run gets RUN/metrics.json)
    # a run
    test_dir: str | None = None  # holds testA/ and testB/; None: beside the run's training folders
    direction: str = "both"  # AtoB, BtoA or both
    max_images: int | None = None  # a fixed random sample of the test inputs (NST is slow); None: all
    baseline: str | None = None  # nst: also score neural style transfer of the same inputs
    style: str | None = None  # one style image for every input
    style_dir: str | None = None  # style images taken in turn; default: the run's target-domain training images
    nst_steps: int = 300
    nst_size: int | None = None  # long side of NST outputs; None: that of the test images
    vgg_weights: str | None = None  # VGG19 for NST; None: torchvision's download
    wandb_mode: str = "auto"
    # both
    inception: str | None = None  # FID Inception TorchScript; None: the cached download
    device: str = "auto"
    batch_size: int = 50
    workers: int = 4


@dataclass
class StylizeConfig:
    """Options of ``cyclegan stylize``; the defaults follow Gatys et al. (2016)."""

    content: str = ""  # an image or a folder of images
    styles: list[str] = dataclasses.field(default_factory=list)
    output: str = ""  # an image path, or a folder mirroring the content folder
    style_blend: list[float] | None = None  # one weight per style image; None: equal
    # images
    size: int = 512  # long side of the output
    style_scale: float = 1.0  # long side of the style images relative to --size
    init: str = "content"  # content, noise or style
    preserve_color: bool = False  # luminance-only transfer, the content keeps its colours
    # losses: VGG19 layers convB_N (rectified) or poolB
    content_layers: list[str] = dataclasses.field(default_factory=lambda: ["conv4_2"])
    style_layers: list[str] = dataclasses.field(
        default_factory=lambda: ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]
    )
    content_weight: float = 1.0
    style_weight: float = 1e6
    tv_weight: float = 0.0
    pooling: str = "max"  # max, or avg as suggested by Gatys et al.
    # optimisation
    optimizer: str = "lbfgs"  # lbfgs or adam
    lr: float = 0.02  # Adam only; pixels are in [0, 1]
    steps: int = 300  # loss evaluations (forward + backward passes)
    seed: int = 0
    # runtime
    device: str = "auto"
    vgg_weights: str | None = None  # None: torchvision's IMAGENET1K_V1
    overwrite: bool = False
