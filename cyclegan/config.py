"""Typed configurations for each workflow: every option is declared here once, with a JSON round-trip.

A field's declaration is the whole option: its type (``Literal[...]`` for a choice), default, bounds and
help. The CLI builds each command's options from these fields and ``validate`` checks a config against
them, so a new option is one line and its check sits beside it. Defaults reproduce the CycleGAN paper.
Its 600-odd lines are every option of every command with its help text: one place to look for any of them.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import math
import re
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from PIL import Image

from .errors import UserError

T = TypeVar("T")


def opt(default: Any, help: str = "", *, min: float | None = None, max: float | None = None,
        check: Callable[[Any], str | None] | None = None, flags: tuple[str, ...] = (), cli: bool = True,
        resumable: bool = False) -> Any:
    """A config field that is also a command-line option.

    ``min``/``max`` bound numbers (inclusive; ``None`` values are not checked), ``check`` returns why a
    value is wrong (or None), ``flags`` are the option's names when not ``--field-name``. ``cli=False``
    marks a field that is not an option (it is filled from a command's arguments). ``resumable`` marks a
    training option that a ``--resume`` may change: how a run runs, not what it learns.
    """
    meta = {"help": help, "min": min, "max": max, "check": check, "flags": flags, "cli": cli,
            "resumable": resumable}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


# --- checks that bounds cannot say ----------------------------------------------------------------------


def positive(value: float) -> str | None:
    return "must be more than 0" if value <= 0 else None


def below_one(value: float) -> str | None:
    return None if 0 <= value < 1 else "must be at least 0 and below 1"


def device_name(value: str) -> str | None:
    """The spellings ``runtime.resolve_device`` understands; whether the device is present is checked there."""
    if re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
        return None
    return "choose auto, cpu, cuda, cuda:N or mps"


def pixel_limit(reader: Literal["translate", "style"]) -> int | None:
    """The most pixels an image may have, the same for what is read and what is made: PIL's
    decompression-bomb limit for the style commands' images, twice it for translate's (which tiles large
    images); None when a Python caller switched PIL's limit off."""
    if Image.MAX_IMAGE_PIXELS is None:  # read at each call: a Python caller may change it
        return None
    return Image.MAX_IMAGE_PIXELS * (2 if reader == "translate" else 1)


def side_problem(option: str, side: int | None, limit: int | None, shortest: bool = False) -> str | None:
    """Why images ``side`` pixels a side would be more than ``limit`` pixels (``shortest``: the short side,
    so every output is at least side²; else the long side, so a square one is side²), or None. ``option``
    is the option as written, e.g. ``--size 9000``."""
    if side is None or limit is None or side * side <= limit:
        return None
    return (f"{option}: {'every' if shortest else 'a square'} image would have {side * side / 1e6:,.0f} megapixels, "
            f"more than the {limit / 1e6:.0f} this tool reads and writes: at most {math.isqrt(limit)} a side")


# --- reading the declarations ---------------------------------------------------------------------------


def option_flags(f: dataclasses.Field) -> tuple[str, ...]:
    """The option names of field ``f``: its ``flags``, or ``--field-name``."""
    return f.metadata.get("flags") or ("--" + f.name.replace("_", "-"),)


def option_fields(cls: type) -> list[tuple[dataclasses.Field, Any]]:
    """(field, resolved type) of each field of ``cls`` that is a command-line option: the command's own
    first, then those of a shared group it extends (``RunOptions``), so ``--help`` starts with what is
    particular to the command."""
    hints = typing.get_type_hints(cls)
    own = set(vars(cls).get("__annotations__", {}))
    fields = [f for f in dataclasses.fields(cls) if f.metadata.get("cli", False)]
    return [(f, hints[f.name]) for f in sorted(fields, key=lambda f: f.name not in own)]


def resumable(cls: type) -> list[str]:
    """The options of a training config that ``--resume`` may change (``opt(..., resumable=True)``)."""
    return [f.name for f in dataclasses.fields(cls) if f.metadata.get("resumable")]


def strip_none(hint: Any) -> Any:
    """``X | None`` → ``X``; any other type unchanged."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0] if len(args) == 1 else hint
    return hint


def choices(hint: Any) -> tuple[str, ...] | None:
    """The values of a ``Literal[...]`` type (or ``Literal[...] | None``), else None."""
    hint = strip_none(hint)
    return typing.get_args(hint) if typing.get_origin(hint) is Literal else None


def list_item(hint: Any) -> type | None:
    """``float`` for ``list[float]`` (or ``list[float] | None``); None for a type that is not a list."""
    hint = strip_none(hint)
    return typing.get_args(hint)[0] if typing.get_origin(hint) is list else None


def parse_list(text: str | None, item: type, flag: str) -> list | None:
    """A list option's command-line text, ``"a,b"`` or ``"a b"``, as a list of ``item``; None for none."""
    if text is None:
        return None
    try:
        return [item(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise UserError(f"{flag} {text}: give {item.__name__} values separated by commas, e.g. "
                        f"{'0.7,0.3' if item is float else 'a,b'}") from None


def _type_problem(value: Any, hint: Any) -> str | None:
    """Why ``value`` is not of type ``hint`` (for Python callers; the CLI converts types itself)."""
    if value is None:
        return None if strip_none(hint) is not hint or hint is type(None) else "must be given"
    hint = strip_none(hint)
    if typing.get_origin(hint) is Literal:
        return None  # the choice check says which values are allowed
    if typing.get_origin(hint) is list:
        item = typing.get_args(hint)[0]
        ok = isinstance(value, list) and all(_type_problem(v, item) is None for v in value)
        return None if ok else f"must be a list of {item.__name__} values"
    expected = {float: (int, float), int: (int,), bool: (bool,), str: (str,)}.get(hint, (object,))
    if not isinstance(value, expected) or (hint in (int, float) and isinstance(value, bool)):
        return f"must be {'a number' if hint is float else 'an integer' if hint is int else f'a {hint.__name__}'}"
    return None


def _field_problem(f: dataclasses.Field, hint: Any, value: Any) -> str | None:
    """Why ``value`` is wrong for field ``f``, or None."""
    if problem := _type_problem(value, hint):
        return problem
    if value is None:
        return None
    if (allowed := choices(hint)) and value not in allowed:
        return f"choose one of {', '.join(allowed)}"
    # nan passes every comparison with a bound (all are False) and inf is no setting: numbers are finite
    if any(isinstance(v, float) and not math.isfinite(v) for v in (value if isinstance(value, list) else [value])):
        return "must be a finite number"
    low, high = f.metadata.get("min"), f.metadata.get("max")
    if low is not None and value < low:
        return f"must be at least {low}" if high is None else f"must be from {low} to {high}"
    if high is not None and value > high:
        return f"must be at most {high}" if low is None else f"must be from {low} to {high}"
    check = f.metadata.get("check")
    return check(value) if check else None


def shown(value: Any) -> str:
    """An option value as it is written on the command line."""
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


def problem(flag: str, value: Any, why: str) -> str:
    """The one format of an option error: ``--load-size 0: must be at least 1``."""
    return f"{flag} {shown(value)}: {why}" if shown(value) else f"{flag}: {why}"


def check_options(cfg: Any) -> None:
    """Check every option of a config against its declaration; a one-line ``UserError`` names the first
    wrong one. The command line does this as it parses, before the command's arguments are known."""
    for f, hint in option_fields(type(cfg)):
        value = getattr(cfg, f.name)
        if why := _field_problem(f, hint, value):
            raise UserError(problem(option_flags(f)[0], value, why))


def validate(cfg: Any) -> None:
    """Check every option of a config against its declaration, then the config's cross-option rules.

    Raises a one-line ``UserError`` naming the first wrong option. Cheap and free of side effects, so
    every workflow calls it before any work.
    """
    check_options(cfg)
    for message in cfg.problems() if hasattr(cfg, "problems") else ():
        raise UserError(message)


def given_options(cfg: Any) -> list[str]:
    """The options of ``cfg`` its caller gave: ``cfg.given`` when the command line said, else the option
    fields whose value differs from their default."""
    if getattr(cfg, "given", None) is not None:
        return list(cfg.given)
    defaults = type(cfg)()
    return [f.name for f, _ in option_fields(type(cfg)) if getattr(cfg, f.name) != getattr(defaults, f.name)]


RUN_PLACE = ("name", "checkpoints_dir", "resume", "overwrite")  # where a run is, not what it is


def apply_resumed(saved: Any, cfg: Any, handled: tuple[str, ...] = ()) -> list[str]:
    """Give the saved config of a resumed run the options ``cfg`` gave that are ``resumable`` (how it runs,
    not what it learns); every other option keeps its saved value, and one given with another value is
    refused. Returns what changed, as ``--flag old → new``."""
    flags = {f.name: option_flags(f)[0] for f, _ in option_fields(type(cfg))}
    changed = []
    for key in sorted(set(given_options(cfg)) - set(RUN_PLACE) - set(handled)):
        new, old = getattr(cfg, key), getattr(saved, key)
        if new == old:
            continue
        if key not in resumable(type(cfg)):
            raise UserError(f"--resume: {flags[key]} {shown(new)}: the run at {cfg.run_dir} learns with "
                            f"{flags[key]} {shown(old)}, and a resumed run keeps it: start a new run (another "
                            "--name) to change it")
        setattr(saved, key, new)
        changed.append(f"{flags[key]} {shown(old)} → {shown(new)}")
    return changed


def to_dict(cfg: Any) -> dict:
    """A JSON-ready dict of a config dataclass (paths become strings)."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(cfg).items()}


def from_dict(cls: type[T], data: dict) -> T:
    """Rebuild a config from ``to_dict`` output; unknown keys (from newer versions) are ignored."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


def load_json(cls: type[T], path: str | Path) -> T:
    return from_dict(cls, json.loads(Path(path).read_text()))


# --- the options ----------------------------------------------------------------------------------------

GanMode = Literal["lsgan", "vanilla", "hinge"]
Norm = Literal["instance", "batch", "none"]
InitType = Literal["normal", "xavier", "kaiming", "orthogonal"]
Discriminator = Literal["basic", "n_layers"]
Upsample = Literal["transposed", "resize"]
Preprocess = Literal["resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
WandbMode = Literal["auto", "online", "offline", "disabled"]
Direction = Literal["AtoB", "BtoA"]
ImageFormat = Literal["same", "png", "jpg", "jpeg", "webp"]

DEVICE_HELP = "auto, cpu, cuda, cuda:N or mps."
INCEPTION_HELP = ("FID Inception TorchScript file (default: downloaded once into the torch cache). TorchScript "
                  "is code that runs when loaded: only use files you trust.")
PRECISION_HELP = ("auto, fp32, bf16 or fp16 (auto: bf16 on a GPU or CPU that runs it natively, such as CPUs with "
                  "AVX512-BF16 or AMX; fp32 otherwise).")


@dataclass
class RunOptions:
    """What every training command (``train``, ``train-style``) shares: where its run lives, how it runs and
    reports. ``resumable`` options may change when a run is resumed: how it runs, not what it learns."""

    name: str = opt("run", "Run name: the run lives in CHECKPOINTS_DIR/NAME.")
    checkpoints_dir: str = opt("checkpoints", "Root folder of runs.")
    resume: bool = opt(False, "Continue the run in CHECKPOINTS_DIR/NAME exactly where it stopped.")
    overwrite: bool = opt(False, "Replace an existing run of this name (its checkpoints are deleted).")
    max_steps: int | None = opt(None, "Stop after this many steps in total (smoke runs).", min=1, resumable=True)
    seed: int = opt(0, "Random seed: same seed, same run.")
    workers: int = opt(4, "Data loading processes (at most one per CPU).", min=0, resumable=True)
    device: str = opt("auto", DEVICE_HELP, check=device_name, resumable=True)
    precision: Precision = opt("auto", PRECISION_HELP, resumable=True)
    save_every: int = opt(1000, "Save a checkpoint every N steps.", min=1, resumable=True)
    sample_every: int = opt(500, "Save and log a sample grid every N steps.", min=1, resumable=True)
    log_every: int = opt(10, "Read losses back and log them every N steps.", min=1, resumable=True)
    wandb_mode: WandbMode = opt("auto", "auto (online when logged in, else offline), online, offline or disabled.",
                                resumable=True)
    wandb_project: str = opt("cyclegan", "W&B project name.", resumable=True)
    # the options this invocation gave (the command line fills it in); None: those that differ from their
    # defaults (Python callers). A resumed run takes every other option from its config.json.
    given: list[str] | None = opt(None, cli=False)

    @property
    def run_dir(self) -> Path:
        return Path(self.checkpoints_dir) / self.name

    def problems(self) -> Iterator[str]:
        if self.resume and self.overwrite:
            yield "--resume --overwrite: choose one (continue the run, or replace it)"


@dataclass
class TrainConfig(RunOptions):
    """Options of ``cyclegan train``; the defaults are the paper's."""

    domain_a: str = opt("", "Domain A: a folder of images, DATASET/trainA under --root, or a domain name such "
                        "as photos (see `cyclegan datasets list`).", flags=("--domainA", "--domain-a"))
    domain_b: str = opt("", "Domain B: a folder of images, DATASET/trainB under --root, or a domain name such "
                        "as monet.", flags=("--domainB", "--domain-b"))
    name: str = opt("cyclegan", "Run name: the run lives in CHECKPOINTS_DIR/NAME.")
    # networks
    net_g: str = opt("resnet_9blocks", "Generator: resnet_9blocks, resnet_6blocks, unet_256, unet_128.")
    net_d: Discriminator = opt("basic", "Discriminator: basic (70×70 PatchGAN) or n_layers.")
    n_layers_d: int = opt(3, "Strided layers of the n_layers discriminator.", min=1)
    ngf: int = opt(64, "Generator filters in the first layer.", min=1)
    ndf: int = opt(64, "Discriminator filters in the first layer.", min=1)
    norm: Norm = opt("instance", "Normalisation: instance, batch or none.")
    init_type: InitType = opt("normal", "Weight init: normal, xavier, kaiming, orthogonal.")
    init_gain: float = opt(0.02, "Scale of the weight init.", min=0)
    dropout: bool = opt(False, "Dropout in the generator (off in the paper's CycleGAN).")
    upsample: Upsample = opt("transposed", "The ResNet generator's two 2× upsamplings: transposed (the paper's "
                             "stride-2 transposed convolutions) or resize (nearest-neighbour 2× then a 3×3 "
                             "convolution: no checkerboard pattern to unlearn, which short runs do not manage fully).")
    # losses
    gan_mode: GanMode = opt("lsgan", "Adversarial loss: lsgan (paper), vanilla or hinge.")
    lambda_cycle: float = opt(10.0, "Weight of the cycle-consistency loss.", min=0)
    lambda_identity: float = opt(0.5, "Identity loss weight as a fraction of --lambda-cycle; 0 disables it.", min=0)
    pool_size: int = opt(50, "Image pool of past fakes shown to the discriminators; 0 disables it.", min=0)
    # optimisation
    lr: float = opt(2e-4, "Adam learning rate.", check=positive)
    beta1: float = opt(0.5, "Adam beta1.", check=below_one)
    beta2: float = opt(0.999, "Adam beta2.", check=below_one)
    epochs: int = opt(100, "Epochs at the initial learning rate.", min=0)
    epochs_decay: int = opt(100, "Further epochs with the learning rate decaying linearly to zero.", min=0)
    batch_size: int = opt(1, "Images per step from each domain.", min=1)
    # data
    load_size: int = opt(286, "Resize images to this size before cropping.", min=1)
    image_size: int = opt(256, "Training crop size.", min=16)
    preprocess: Preprocess = opt("resize_and_crop", "resize_and_crop, crop, scale_width, scale_width_and_crop "
                                 "or none.")
    flip: bool = opt(True, "Random horizontal flips.")
    # runtime and output
    channels_last: bool | None = opt(None, "Channels-last memory format (default: the faster one, measured: "
                                     "channels-last on a CUDA GPU and for a compiled run on a CPU, NCHW for an "
                                     "eager one).", resumable=True)
    compile: bool | None = opt(None, "torch.compile the networks (default: for runs of 1,000 steps or more, which "
                               "repay its minute or two of compiling).", resumable=True)
    save_every: int = opt(5, "Keep a snapshot every N epochs.", min=1, resumable=True)
    # evaluation during training
    eval_every: int = opt(0, "FID/KID on the test split every N epochs; 0: off.", min=0, resumable=True)
    test_dir: str | None = opt(None, "Dataset folder with testA/ and testB/ for --eval-every (default: beside "
                               "the training folders).", resumable=True)
    inception: str | None = opt(None, INCEPTION_HELP, resumable=True)

    @property
    def total_epochs(self) -> int:
        return self.epochs + self.epochs_decay

    def problems(self) -> Iterator[str]:
        """Rules that involve more than one option."""
        if self.preprocess in ("resize_and_crop", "scale_width_and_crop") and self.load_size < self.image_size:
            yield problem("--load-size", self.load_size, f"must be at least --image-size ({self.image_size}) "
                          f"with --preprocess {self.preprocess}")
        if self.upsample != "transposed" and not self.net_g.startswith("resnet"):
            yield problem("--upsample", self.upsample, "is for the ResNet generators; the U-Net has only transposed")
        if self.total_epochs == 0:
            yield "--epochs 0 --epochs-decay 0: train for at least one epoch"
        if self.preprocess == "none" and self.batch_size > 1:
            yield problem("--batch-size", self.batch_size, "--preprocess none keeps every image's own size, so "
                          "images cannot be stacked into batches: use --batch-size 1 or a mode that crops")
        yield from super().problems()


@dataclass
class TranslateConfig:
    """Options of ``cyclegan translate``: run a generator over an image or a folder of images."""

    # from the command's arguments
    checkpoint: str = opt("", cli=False)  # run folder, .safetensors export, or a .pth of the original release
    input: str = opt("", cli=False)  # an image or a folder (searched recursively)
    output: str = opt("", cli=False)  # folder mirroring the input's relative paths (or a file for one image)
    direction: Direction = opt("AtoB", "For a run folder: AtoB (G_AB) or BtoA (G_BA); with --preset or "
                               "--pretrained: BtoA picks the reverse model.")
    # output files
    format: ImageFormat = opt("same", "Output format: same (as each input; a still .gif becomes .png), png, jpg "
                              "or webp; png and webp keep alpha.")
    quality: int = opt(95, "JPEG/WebP quality, 1-100.", min=1, max=100)
    overwrite: bool = opt(False, "Redo existing outputs (by default they are skipped, so an interrupted run "
                          "resumes).")
    # sizes: by default none is changed
    resize: int | None = opt(None, "Scale each image so its short side has this many pixels (by default sizes "
                             "are kept).", min=1)
    size: int | None = opt(None, "Scale each image so its long side has this many pixels.", min=1)
    max_side: int | None = opt(None, "Scale images down so their long side is at most this many pixels.", min=1)
    # speed
    batch_size: int = opt(8, "Images of the same size per forward pass (split automatically when out of GPU "
                          "memory).", min=1)
    workers: int = opt(4, "Decoding processes (at most one per CPU); 0 decodes in the main process.", min=0)
    writers: int = opt(0, "Encoding/writing threads; 0: one per core, at most 8.", min=0)
    device: str = opt("auto", DEVICE_HELP, check=device_name)
    precision: Precision = opt("auto", PRECISION_HELP)
    channels_last: bool | None = opt(None, "Channels-last memory format (default: the faster one, measured: "
                                     "channels-last on a CUDA GPU, NCHW on a CPU).")
    compile: bool | None = opt(None, "torch.compile the network: 25-40 s per image size, then 2-3× faster on a CPU "
                               "(default: on a CPU for 50 images or more, or a video).")
    progress: bool = opt(True, "Show a progress bar.")
    # big images and video
    tile: int | None = opt(None, "Translate images larger than N×N pixels in tiles of N (at least 64), keeping "
                           "whole-image statistics: exact for ResNet generators (about 12× the compute for a "
                           "ResNet-9), approximate for U-Nets. Images too large for memory are tiled "
                           "automatically.", min=64)
    temporal_smoothing: float = opt(0.0, "Video: damp flicker by carrying each instance norm's statistics over "
                                    "from earlier frames (an exponential moving average): the weight of the past, "
                                    "0 (off) to below 1.", check=below_one)
    # style: every network, and the styles of a multi-style network (cyclegan train-style)
    strength: float = opt(1.0, "Blend the output with the input: 1 = the network's output, 0 = the input.",
                          min=0, max=1)
    preserve_color: bool = opt(False, "Keep the output's luminance with the input's colours (as stylize "
                               "--preserve-color).")
    style_mix: str | None = opt(None, "A multi-style network: mix its styles, e.g. 0:0.5,2:0.5 (by index or "
                                "name; weights are normalised). AdaIN: mix style images, e.g. a.jpg:0.6,b.jpg:0.4.")
    style: str | None = opt(None, cli=False)  # --style: a multi-style network's style, or AdaIN's style image
    vgg_weights: str | None = opt(None, "AdaIN: its encoder, vgg_normalised.pth (default: the one its run trained "
                                  "with, else the published file, downloaded once).")

    def problems(self) -> Iterator[str]:
        limit = pixel_limit("translate")
        for flag, side, shortest in (("--resize", self.resize, True), ("--size", self.size, False)):
            if why := side_problem(f"{flag} {side}", side, limit, shortest):
                yield why

@dataclass
class EvalConfig:
    """Options of ``cyclegan evaluate``: two image folders, or a run folder on its test split."""

    # from the command's arguments
    target: str = opt("", cli=False)  # a folder of generated images, or a run folder
    real_dir: str | None = opt(None, cli=False)  # the real images to compare a folder of generated ones with
    json_path: str | None = opt(None, "FAKE_DIR REAL_DIR: also write the scores to this JSON file.",
                                flags=("--json",))
    # a run
    test_dir: str | None = opt(None, "RUN: dataset folder with testA/ and testB/ (default: beside the run's "
                               "training folders).")
    direction: Literal["AtoB", "BtoA", "both"] = opt("both", "RUN: AtoB, BtoA or both.")
    max_images: int | None = opt(None, "RUN: score a fixed random sample of this many test inputs (NST is "
                                 "slow); FID and KID need at least 2.", min=2)
    baseline: Literal["nst"] | None = opt(None, "RUN: nst also scores neural style transfer of the same inputs.")
    style: str | None = opt(None, "NST: one style image for every input.")
    style_dir: str | None = opt(None, "NST: style images taken in turn, one per input (default: the run's "
                                "training images of the target domain).")
    nst_steps: int = opt(300, "NST: optimisation steps per image.", min=1)
    nst_size: int | None = opt(None, "NST: long side of the outputs (default: that of the test images); at "
                               "least 16 for VGG19's deepest style layer.", min=16)
    vgg_weights: str | None = opt(None, "NST: VGG19 weights file (default: torchvision's download).")
    wandb_mode: WandbMode = opt("auto", "RUN: log the table to the run's W&B run: auto (only when the run "
                                "trained with W&B), online, offline or disabled.")
    # both
    inception: str | None = opt(None, INCEPTION_HELP)
    device: str = opt("auto", DEVICE_HELP, check=device_name)
    batch_size: int = opt(50, "Images per Inception batch.", min=1)
    workers: int = opt(4, "Image decoding processes (at most one per CPU).", min=0)


@dataclass
class ExportConfig:
    """Options of ``cyclegan export``: a generator as ONNX or a torch.export program, checked against PyTorch."""

    # from the command's arguments
    checkpoint: str = opt("", cli=False)  # anything translate loads: run folder, .safetensors, .pth
    output: str = opt("", cli=False)  # .onnx or .pt2
    direction: Direction = opt("AtoB", "For a run folder: AtoB (G_AB) or BtoA (G_BA); with --pretrained: BtoA "
                               "picks the reverse model.")
    opset: int = opt(18, "ONNX opset (18 runs on ONNX Runtime 1.14 and later).", min=18, max=23)
    tolerance: float = opt(1.0, "Largest difference from the PyTorch model allowed, in 0-255 levels, on the "
                           "check images; beyond it nothing is written.", check=positive)
    overwrite: bool = opt(False, "Replace OUTPUT if it exists.")
    style: str | None = opt(None, "The style the export paints: a multi-style network's, by index or name; "
                            "AdaIN's, a style image.")
    style_mix: str | None = opt(None, "A mixture of styles to export, as translate --style-mix.")
    vgg_weights: str | None = opt(None, "AdaIN: its encoder, as translate --vgg-weights.")

    def problems(self) -> Iterator[str]:
        if self.output and Path(self.output).suffix.lower() not in (".onnx", ".pt2"):
            yield f"{self.output}: name the output .onnx (ONNX) or .pt2 (torch.export)"


# The layers of VGG19's ``features`` by name, in order: ``convB_N`` is the rectified output of the N-th
# convolution of block B (the ReLU after it, as in the Caffe model, where ReLUs run in place), ``poolB`` the
# pooling that ends block B. One naming scheme for every loss network of the toolkit (``style/vgg.py``).
VGG19_DEPTHS = (2, 2, 4, 4, 4)  # convolutions per block
VGG19_LAYERS = tuple(name for block, depth in enumerate(VGG19_DEPTHS, start=1)
                     for name in (*(f"conv{block}_{n}" for n in range(1, depth + 1)), f"pool{block}"))


def vgg_min_size(layers: list[str]) -> int:
    """The smallest image side that leaves the deepest of ``layers`` a non-empty feature map (1×1).

    VGG19 halves the image at each pooling, rounding down: ``convB_N`` comes after B-1 poolings, ``poolB``
    after B, so a layer after n poolings needs 2ⁿ pixels (the default style layers, up to conv5_1: 16).
    """
    poolings = [int(m[2]) - (m[1] == "conv") for n in layers if (m := re.fullmatch(r"(conv|pool)(\d)(_\d)?", n))]
    return 2 ** max(poolings, default=0)


def vgg_layers(value: list[str]) -> str | None:
    if not value:
        return "name at least one layer"
    if unknown := [n for n in value if n not in VGG19_LAYERS]:
        return f"unknown layer(s) {', '.join(unknown)}; choose from {', '.join(VGG19_LAYERS)}"
    return None


ADAIN_MIN_SIZE = 16  # the smallest image side AdaIN's encoder and decoder take


@dataclass
class StylizeConfig:
    """Options of ``cyclegan stylize``; the defaults follow Gatys et al. (2016)."""

    # from the command's arguments
    content: str = opt("", cli=False)  # an image or a folder of images
    styles: list[str] = opt([], cli=False)
    output: str = opt("", cli=False)  # an image path, or a folder mirroring the content folder
    style_blend: list[float] | None = opt(None, "Weights of the style images, e.g. 0.7,0.3 (default: equal).")
    method: Literal["gatys", "adain"] = opt("gatys", "gatys: optimise each image (Gatys et al.; minutes on a CPU); "
                                            "adain: one forward pass of an encoder and decoder for any style (Huang "
                                            "& Belongie; the published weights download once).")
    # images
    size: int | None = opt(None, "Long side of the output in pixels (default: 512 for gatys; each image's own "
                           "size for adain).", min=1)
    style_scale: float = opt(1.0, "Long side of the style images relative to --size (smaller: finer strokes).",
                             check=positive)
    init: Literal["content", "noise", "style"] = opt("content", "Start from the content image, noise, or the "
                                                     "(first) style image.")
    preserve_color: bool = opt(False, "Transfer style on luminance only; keep the content's colours.")
    # losses: VGG19 layers convB_N (rectified) or poolB
    content_layers: list[str] = opt(["conv4_2"], "VGG19 layers of the content loss (convB_N or poolB).",
                                    check=vgg_layers)
    style_layers: list[str] = opt(["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"],
                                  "VGG19 layers of the style loss.", check=vgg_layers)
    content_weight: float = opt(1.0, "Weight of the content loss (relative to the content's features: the same "
                                "for any VGG19 file).", min=0)
    style_weight: float = opt(0.5, "Weight of the style (Gram matrix) loss, relative to the style's Gram "
                              "matrices as the content loss is: more for more style, less to keep more of the "
                              "photo.", min=0)
    tv_weight: float = opt(0.0, "Weight of the total-variation loss (smooths noise); 0 disables it.", min=0)
    pooling: Literal["max", "avg"] = opt("max", "VGG pooling: max, or avg (smoother, as Gatys et al. suggest).")
    # optimisation
    optimizer: Literal["lbfgs", "adam"] = opt("lbfgs", "lbfgs (the paper's) or adam.")
    lr: float = opt(0.02, "Adam learning rate (pixels are in [0, 1]).", min=0)
    steps: int = opt(300, "Optimisation steps (one forward and backward pass through VGG19 each).", min=1)
    seed: int = opt(0, "Random seed (for --init noise).")
    # runtime
    device: str = opt("auto", DEVICE_HELP, check=device_name)
    vgg_weights: str | None = opt(None, "VGG19 features state dict in torchvision's layout (default: "
                                  "torchvision's ImageNet weights, downloaded once); adain: the published "
                                  "vgg_normalised.pth.")
    overwrite: bool = opt(False, "Redo outputs that already exist (default: skip them).")
    # adain
    alpha: float = opt(1.0, "adain: content-style trade-off in feature space, from 0 (the content, decoded) to 1 "
                       "(full style).", min=0, max=1)
    temporal_smoothing: float = opt(0.0, "adain, videos: damp flicker by carrying the content features' per-channel "
                                    "mean and variance over from earlier frames (an exponential moving average): "
                                    "the weight of the past, 0 (off) to below 1.", check=below_one)
    decoder_weights: str | None = opt(None, "adain: the decoder: the published decoder.pth, a decoder .safetensors "
                                      "or a `train-style --method adain` run folder (default: the published file, "
                                      "downloaded once).")
    batch_size: int = opt(4, "adain: content images of the same size per forward pass.", min=1)
    precision: Precision = opt("auto", "adain: " + PRECISION_HELP)
    # photorealistic and guided transfer (gatys)
    photoreal: bool = opt(False, "Photographic style (Luan et al.'s Deep Photo Style Transfer): the output stays "
                          "locally an affine recolouring of the content.")
    photoreal_weight: float = opt(3e-3, "Weight λ of the photorealism regulariser (--photoreal): λ/2·Σ VᵀLV with V "
                                  "in [0, 1], beside the relative content and style terms (more: cleaner and closer "
                                  "to the photo's colours; less: more of the reference's look).", min=0)
    content_mask: str | None = opt(None, "Colour-coded segmentation of the content image (each flat colour a "
                                   "region; PNG); with --style-mask, each region takes the style of the same colour.")
    style_mask: str | None = opt(None, "Colour-coded segmentation of the style image, colours as in --content-mask.")
    auto_masks: bool = opt(False, "Make both masks with a segmentation net (torchvision's DeepLabV3, VOC classes "
                           "merged into coarse regions; weights downloaded once).")
    seg_weights: str | None = opt(None, "--auto-masks: DeepLabV3 MobileNetV3-Large weights file (torchvision's "
                                  "deeplabv3_mobilenet_v3_large COCO/VOC file), for offline use.")
    histogram_weight: float = opt(0.0, "Weight of the histogram loss (Risser et al.) at the style layers: matches "
                                  "each feature's distribution, not just Gram matrices; 0 disables it.", min=0)

    def __post_init__(self) -> None:
        if self.size is None and self.method == "gatys":  # adain keeps None: each image's own size
            self.size = 512

    def problems(self) -> Iterator[str]:
        if not self.styles:
            yield "give at least one style image"
        elif self.style_blend and len(self.style_blend) != len(self.styles):
            yield f"--style-blend has {len(self.style_blend)} weights for {len(self.styles)} style images"
        if self.style_blend and (any(w < 0 for w in self.style_blend) or sum(self.style_blend) <= 0):
            yield "--style-blend weights must be non-negative and not all zero"
        guided = {"--photoreal": self.photoreal, "--content-mask": self.content_mask, "--auto-masks": self.auto_masks,
                  "--histogram-weight": self.histogram_weight}
        if self.method != "gatys" and (given := [flag for flag, value in guided.items() if value]):
            yield f"{', '.join(given)}: optimisation options, for --method gatys"
        style_side = round(self.size * self.style_scale) if self.size else None
        if why := (side_problem(f"--size {self.size}", self.size, pixel_limit("style")) or side_problem(
                f"--style-scale {self.style_scale:g} (style images {style_side} a side)", style_side,
                pixel_limit("style"))):
            yield why
        if self.method == "adain":
            if self.size is not None and self.size < ADAIN_MIN_SIZE:
                yield problem("--size", self.size, f"must be at least {ADAIN_MIN_SIZE} for adain (its encoder "
                              "halves the image three times)")
            return
        need = vgg_min_size([*self.content_layers, *self.style_layers])
        if self.size < need:
            yield problem("--size", self.size, f"must be at least {need} for the layers chosen (VGG19 halves the "
                          "image at each pooling)")
        if (self.content_mask is None) != (self.style_mask is None):
            yield "--content-mask and --style-mask go together: give both"
        if self.auto_masks and self.content_mask is not None:
            yield "--auto-masks makes the masks: give it or --content-mask/--style-mask, not both"
        if (self.auto_masks or self.style_mask is not None) and len(self.styles) > 1:
            yield "masks work with one style image"


@dataclass
class StyleTrainConfig(RunOptions):
    """Options of ``cyclegan train-style``: a feed-forward style network (Johnson et al. 2016; conditional
    instance norm when several styles are given) or an AdaIN decoder (Huang & Belongie 2017).

    Loss weights left at None take the method's default (johnson: relative terms, see ``style/vgg.py``;
    adain: the published weights).
    """

    method: Literal["johnson", "adain"] = opt("johnson", "johnson: one network per style (several --style "
                                              "images: one network with conditional instance norm); adain: a "
                                              "decoder for arbitrary styles (needs --style-dir).")
    # from the command's arguments / repeatable options
    styles: list[str] = opt([], cli=False)  # style images (johnson); several: one CIN network
    content: str = opt("", "Folder of content images (searched recursively), e.g. photos.", flags=("--content",))
    style_dir: str | None = opt(None, "adain: folder of style images (paintings) to train the decoder on.")
    arch: Literal["full", "slim"] = opt("full", "johnson: full (pytorch/examples' network, 161 GMAC at 1024²) or "
                                       "slim (a tenth of it, for CPUs: 32 channels at ¼ resolution).")
    name: str = opt("style", "Run name: the run lives in CHECKPOINTS_DIR/NAME.")
    add_style: bool = opt(False, "johnson, with --resume: add the --style images to the trained network, "
                          "training only their instance-norm (γ, β) for --steps more steps.")
    # data and losses
    image_size: int = opt(256, "Random crop size of the training images.", min=32)
    style_size: int | None = opt(None, "Long side of the style images (default: --image-size).", min=32)
    batch_size: int = opt(4, "Images per step.", min=1)
    content_weight: float | None = opt(None, "Weight of the content loss (default: the method's: 1).", min=0)
    style_weight: float | None = opt(None, "Weight of the style loss (default: the method's: johnson 0.3, "
                                      "on losses relative to their targets; adain 10).", min=0)
    tv_weight: float | None = opt(None, "Weight of the total-variation loss (default: the method's).", min=0)
    vgg_weights: str | None = opt(None, "VGG19 weights: johnson: a features state dict in torchvision's layout "
                                  "(default: torchvision's, downloaded once); adain: vgg_normalised.pth "
                                  "(default: the published file, downloaded once).")
    # optimisation
    lr: float | None = opt(None, "Adam learning rate (default: the method's: johnson 1e-3, adain 1e-4).",
                           check=positive)
    steps: int = opt(40000, "Training steps.", min=1)
    wandb_project: str = opt("cyclegan-style", "W&B project name.", resumable=True)

    def loss_weights(self, defaults: dict[str, float]) -> dict[str, float]:
        """The weights of the loss terms: those given, the method's ``defaults`` for the others."""
        given = {"content": self.content_weight, "style": self.style_weight, "tv": self.tv_weight}
        return {k: default if given[k] is None else given[k] for k, default in defaults.items()}

    def problems(self) -> Iterator[str]:
        yield from super().problems()
        if self.resume and not self.add_style:
            return  # the saved run's own options were checked when it started
        if self.method == "adain":
            if self.arch != "full":
                yield "--arch chooses the size of a johnson network; --method adain trains the published decoder"
            if not self.content or not self.style_dir:
                yield ("--method adain trains on --content (a folder of photos) and --style-dir (a folder of "
                       "paintings): give both")
            return
        if self.add_style and not self.resume:
            yield "--add-style adds styles to a trained network: give --resume and the --name of its run"
        elif self.add_style and not self.styles:
            yield "--add-style: give the new style images with --style"
        elif not self.styles:
            yield "give at least one --style image (several: one network for all of them)"
        elif not self.content and not self.add_style:
            yield "--content: give a folder of content photos"


@dataclass
class SmoothConfig:
    """Options of ``cyclegan smooth``: Li et al.'s closed-form photorealistic smoothing (ECCV 2018)."""

    stylized: str = opt("", cli=False)
    content: str = opt("", cli=False)
    output: str = opt("", cli=False)
    strength: float = opt(1e4, "λ of (I + λ·L̃)·R = S: how strongly the result is pulled onto a locally affine "
                          "function of the content (Li et al.'s β = λ/(1 + λ); 1e4 is their 0.9999).", check=positive)
    eps: float = opt(1e-7, "ε of the matting windows: larger smooths more across edges of faint contrast, and "
                     "flattens the contrast a little.", check=positive)
    size: int | None = opt(None, "Long side in pixels to work at (default: STYLIZED's size).", min=3)
    device: str = opt("auto", DEVICE_HELP, check=device_name)


@dataclass
class UiConfig:
    """Options of ``cyclegan ui``: the local web page."""

    root: str = opt(".", "The folder the page may read and write: every folder and model path typed into it is "
                    "taken inside ROOT (relative to it) and refused outside it, links included.")
    host: str = opt("127.0.0.1", "Address to listen on: 127.0.0.1 keeps the page on this machine; any other (0.0.0.0: "
                    "the network) needs --auth or --trusted-network.")
    port: int = opt(7860, "Port of the page.", min=1, max=65535)
    share: bool = opt(False, "Also publish the page through a temporary public gradio.live link; needs --auth or "
                      "--trusted-network.")
    auth: str | None = opt(None, "USER:PASSWORD a visitor must give to use the page (for --host or --share).",
                           check=lambda v: None if re.fullmatch(r"[^:]+:.+", v) else "write it as USER:PASSWORD")
    trusted_network: bool = opt(False, "Serve --host or --share without a password: everybody who can reach the "
                                "page may read and write the images in --root and use this machine's GPU.")
    max_upload_mb: int = opt(200, "Largest file a visitor may upload, in MB.", min=1)
    device: str = opt("auto", DEVICE_HELP, check=device_name)
    precision: Precision = opt("auto", PRECISION_HELP)

    @property
    def exposed(self) -> bool:
        """Whether others than this machine's users can reach the page."""
        return self.share or not is_loopback(self.host)

    def problems(self) -> Iterator[str]:
        if not Path(self.root).is_dir():
            yield f"--root {self.root}: no such folder"
        if self.exposed and not (self.auth or self.trusted_network):
            where = "--share publishes the page on the internet" if self.share else \
                f"--host {self.host} opens the page to the network"
            yield (f"{where}, with read and write access to {self.root}: give --auth USER:PASSWORD, or "
                   "--trusted-network if everybody who can reach it may use them")


def is_loopback(host: str) -> bool:
    """Whether ``host`` is an address of this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False
