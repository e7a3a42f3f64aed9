"""The ``cyclegan`` command line. Thin: options → a config dataclass → one workflow call."""

from __future__ import annotations

import functools
import logging
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler

from .errors import UserError

app = typer.Typer(
    help="Unpaired image-to-image translation with CycleGAN: train, translate, stylize, evaluate.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
err_console = Console(stderr=True)


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show debug messages.")] = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_time=False, show_path=False)],
    )


def user_errors(fn):
    """Turn a ``UserError`` into a one-line message and exit status 2 instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            err_console.print(f"[bold red]error:[/] {e}", soft_wrap=True, highlight=False)
            raise typer.Exit(2) from None

    return wrapper


@app.command()
@user_errors
def train(
    ctx: typer.Context,
    domain_a: Annotated[str | None, typer.Option("--domainA", "--domain-a", help=(
        "Domain A: a folder of images, DATASET/trainA under --root, or a domain name such as photos "
        "(see `cyclegan datasets list`)."))] = None,
    domain_b: Annotated[str | None, typer.Option("--domainB", "--domain-b", help=(
        "Domain B: a folder of images, DATASET/trainB under --root, or a domain name such as monet."))] = None,
    root: Annotated[str | None, typer.Option(help=(
        "Where named datasets live and download to (default: $CYCLEGAN_DATA_DIR or datasets/)."))] = None,
    no_download: Annotated[bool, typer.Option(
        "--no-download", help="Fail instead of downloading a dataset that is not there.")] = False,
    name: Annotated[str, typer.Option(help="Run name: the run lives in CHECKPOINTS_DIR/NAME.")] = "cyclegan",
    checkpoints_dir: Annotated[str, typer.Option(help="Root folder of runs.")] = "checkpoints",
    net_g: Annotated[str, typer.Option("--net-g", help="Generator: resnet_9blocks, resnet_6blocks, unet_256, unet_128.")] = "resnet_9blocks",
    net_d: Annotated[str, typer.Option("--net-d", help="Discriminator: basic (70×70 PatchGAN) or n_layers.")] = "basic",
    n_layers_d: Annotated[int, typer.Option("--n-layers-d", help="Strided layers of the n_layers discriminator.")] = 3,
    ngf: Annotated[int, typer.Option(help="Generator filters in the first layer.")] = 64,
    ndf: Annotated[int, typer.Option(help="Discriminator filters in the first layer.")] = 64,
    norm: Annotated[str, typer.Option(help="Normalisation: instance, batch or none.")] = "instance",
    init_type: Annotated[str, typer.Option(help="Weight init: normal, xavier, kaiming, orthogonal.")] = "normal",
    init_gain: Annotated[float, typer.Option(help="Scale of the weight init.")] = 0.02,
    dropout: Annotated[bool, typer.Option(help="Dropout in the generator (off in the paper's CycleGAN).")] = False,
    gan_mode: Annotated[str, typer.Option(help="Adversarial loss: lsgan (paper), vanilla or hinge.")] = "lsgan",
    lambda_cycle: Annotated[float, typer.Option(help="Weight of the cycle-consistency loss.")] = 10.0,
    lambda_identity: Annotated[float, typer.Option(help="Identity loss weight as a fraction of --lambda-cycle; 0 disables it.")] = 0.5,
    pool_size: Annotated[int, typer.Option(help="Image pool of past fakes shown to the discriminators; 0 disables it.")] = 50,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 2e-4,
    beta1: Annotated[float, typer.Option(help="Adam beta1.")] = 0.5,
    beta2: Annotated[float, typer.Option(help="Adam beta2.")] = 0.999,
    epochs: Annotated[int, typer.Option(help="Epochs at the initial learning rate.")] = 100,
    epochs_decay: Annotated[int, typer.Option(help="Further epochs with the learning rate decaying linearly to zero.")] = 100,
    batch_size: Annotated[int, typer.Option(help="Images per step from each domain.")] = 1,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many steps in total (smoke runs).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same run.")] = 0,
    load_size: Annotated[int, typer.Option(help="Resize images to this size before cropping.")] = 286,
    image_size: Annotated[int, typer.Option(help="Training crop size.")] = 256,
    preprocess: Annotated[str, typer.Option(help="resize_and_crop, crop, scale_width, scale_width_and_crop or none.")] = "resize_and_crop",
    flip: Annotated[bool, typer.Option(help="Random horizontal flips.")] = True,
    workers: Annotated[int, typer.Option(help="Data loading processes.")] = 4,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    precision: Annotated[str, typer.Option(help="auto, fp32, bf16 or fp16 (auto: bf16 on a GPU that supports it).")] = "auto",
    channels_last: Annotated[bool, typer.Option(help="Channels-last memory format (faster convolutions on GPUs).")] = False,
    compile: Annotated[bool, typer.Option(help="torch.compile the networks.")] = False,
    save_every: Annotated[int, typer.Option(help="Keep a snapshot every N epochs.")] = 5,
    sample_every: Annotated[int, typer.Option(help="Save and log a sample grid every N steps.")] = 500,
    log_every: Annotated[int, typer.Option(help="Read losses back and log them every N steps.")] = 10,
    wandb_mode: Annotated[str, typer.Option(help="auto (online when logged in, else offline), online, offline or disabled.")] = "auto",
    wandb_project: Annotated[str, typer.Option(help="W&B project name.")] = "cyclegan",
    resume: Annotated[bool, typer.Option(help="Continue the run NAME exactly where it stopped.")] = False,
    gpus: Annotated[int, typer.Option(help="Train on N GPUs of this machine: runs this command under `torchrun --nproc-per-node N` (with --device cpu: N CPU processes).")] = 1,
    eval_every: Annotated[int, typer.Option(help="FID/KID on the test split every N epochs; 0: off.")] = 0,
    test_dir: Annotated[str | None, typer.Option(help="Dataset folder with testA/ and testB/ for --eval-every (default: beside the training folders).")] = None,
    inception: Annotated[str | None, typer.Option(help="FID Inception TorchScript file (default: downloaded once into the torch cache).")] = None,
) -> None:
    """Train a CycleGAN on two unpaired image folders.

    Named domains pick an official dataset: --domainA photos --domainB monet trains on monet2photo,
    downloaded on first use.

    Checkpoints, samples and the W&B run go to CHECKPOINTS_DIR/NAME. Ctrl-C saves a checkpoint;
    `cyclegan train --name NAME --resume` continues from it exactly. Several GPUs or machines:
    `torchrun --nproc-per-node N -m cyclegan train ...` (or --gpus N on one machine).
    """
    from .catalog import resolve_domains
    from .config import TrainConfig
    from .train import train as run_training

    if domain_a and domain_b and not resume:  # a resumed run keeps the folders it was started with
        domain_a, domain_b = map(str, resolve_domains(domain_a, domain_b, root, download=not no_download))
    if gpus != 1:
        # the processes get the folders found above (a named dataset is downloaded once, here)
        raise typer.Exit(_launch_on_gpus(ctx, gpus, device, {"domain_a": domain_a, "domain_b": domain_b}))

    options = {k: v for k, v in locals().items() if k in TrainConfig.__dataclass_fields__}
    cfg = TrainConfig(**{**options, "domain_a": domain_a or "", "domain_b": domain_b or ""})
    result = run_training(cfg)
    if result.interrupted:
        raise typer.Exit(130)


@app.command()
@user_errors
def translate(
    paths: Annotated[list[str], typer.Argument(metavar="[CHECKPOINT] INPUT OUTPUT", help=(
        "CHECKPOINT: a run folder (checkpoints/NAME), a generator .safetensors, or a generator .pth of the "
        "original PyTorch CycleGAN release (its architecture is inferred); left out with --preset or "
        "--pretrained. INPUT: an image, or a folder of images (searched recursively). OUTPUT: a folder "
        "mirroring the input's sub-folders and file names (a file name for one image)."))],
    preset: Annotated[str | None, typer.Option(help=(
        "An official pretrained generator instead of CHECKPOINT: season (summer → winter), painting "
        "(photo → --style) or photo (Monet painting → photo). Downloaded on first use."))] = None,
    style: Annotated[str | None, typer.Option(
        help="The painter of --preset painting: monet (default), cezanne, ukiyoe or vangogh.")] = None,
    to: Annotated[str | None, typer.Option(
        help="The domain to translate into, to reverse a preset: e.g. --preset season --to summer.")] = None,
    pretrained: Annotated[str | None, typer.Option(
        help="Any official pretrained generator by name (see `cyclegan models list`).")] = None,
    direction: Annotated[str, typer.Option(help=(
        "For a run folder: AtoB (G_AB) or BtoA (G_BA); with --preset or --pretrained: BtoA picks the "
        "reverse model."))] = "AtoB",
    format: Annotated[str, typer.Option(
        help="Output format: same (as each input), png, jpg or webp; png and webp keep alpha.")] = "same",
    quality: Annotated[int, typer.Option(help="JPEG/WebP quality, 1-100.")] = 95,
    overwrite: Annotated[bool, typer.Option(
        help="Redo existing outputs (by default they are skipped, so an interrupted run resumes).")] = False,
    resize: Annotated[int | None, typer.Option(
        help="Scale each image so its short side has this many pixels (by default sizes are kept).")] = None,
    max_side: Annotated[int | None, typer.Option(
        help="Scale images down so their long side is at most this many pixels.")] = None,
    batch_size: Annotated[int, typer.Option(
        help="Images of the same size per forward pass (split automatically when out of GPU memory).")] = 8,
    workers: Annotated[int, typer.Option(help="Decoding processes; 0 decodes in the main process.")] = 4,
    writers: Annotated[int, typer.Option(help="Encoding/writing threads; 0: one per core, at most 8.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    precision: Annotated[str, typer.Option(
        help="auto, fp32, bf16 or fp16 (auto: bf16 on a GPU that supports it, else fp32).")] = "auto",
    channels_last: Annotated[bool, typer.Option(
        help="Channels-last memory format (faster convolutions on GPUs).")] = True,
    compile: Annotated[bool, typer.Option(
        help="torch.compile the generator (pays off on many images of one size).")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Translate an image or a folder of images with a trained generator, at full resolution.

    With a run of yours: cyclegan translate checkpoints/NAME in/ out/

    Pretrained (downloaded on first use): cyclegan translate --preset painting --style monet in/ out/

    Outputs keep each input's size (unless --resize or --max-side) and its path relative to INPUT.

    Unreadable files are reported and skipped; the exit status is then 1.
    """
    from .catalog import pretrained_path, translate_model
    from .config import TranslateConfig
    from .translate import translate_folder

    model = translate_model(preset, style, to, pretrained, direction)
    wanted = 2 if model else 3
    if len(paths) != wanted:
        raise UserError(
            "give INPUT and OUTPUT after --preset/--pretrained (no CHECKPOINT)" if model
            else "give CHECKPOINT INPUT OUTPUT, or INPUT OUTPUT with --preset or --pretrained"
        )
    checkpoint, input, output = (str(pretrained_path(model)), *paths) if model else paths
    if model:
        direction = "AtoB"  # an official generator translates one way; the reverse is another model
        logging.getLogger(__name__).info("pretrained generator: %s", model)
    cfg = TranslateConfig(**{k: v for k, v in locals().items() if k in TranslateConfig.__dataclass_fields__})
    summary = translate_folder(cfg)
    summary.print(err_console)
    raise typer.Exit(summary.exit_code)


datasets_app = typer.Typer(help="The official CycleGAN datasets: list, download.", no_args_is_help=True)
models_app = typer.Typer(help="The official pretrained generators: list, download.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")
app.add_typer(models_app, name="models")
RootOption = Annotated[str | None, typer.Option(
    help="Folder of the datasets (default: $CYCLEGAN_DATA_DIR or datasets/).")]


@datasets_app.command("list")
@user_errors
def datasets_list(root: RootOption = None) -> None:
    """The official datasets, what their A and B halves are, and which are downloaded."""
    from rich.table import Table

    from .catalog import ALIASES, DATASETS, DOMAINS, data_root
    from .download import is_dataset

    table = Table(title=f"Datasets (in {data_root(root)}/)")
    for column in ("name", "A (trainA)", "B (trainB)", "what", "here"):
        table.add_column(column)
    for d in DATASETS.values():
        table.add_row(d.name, d.a, d.b, d.about, "✓" if is_dataset(data_root(root) / d.name) else "")
    out = Console()
    out.print(table)
    aliases = {name: [a for a, target in ALIASES.items() if target == name] for name in DOMAINS}
    names = ", ".join(f"{n} ({'/'.join(aliases[n])})" if aliases[n] else n for n in DOMAINS)
    out.print(f"Domain names for --domainA/--domainB: {names}.")
    out.print("Two names pick the dataset holding both: cyclegan train --domainA photos --domainB monet")


@datasets_app.command("download")
@user_errors
def datasets_download(
    names: Annotated[list[str], typer.Argument(help="Dataset names, e.g. horse2zebra.", show_default=False)],
    root: RootOption = None,
) -> None:
    """Download and extract datasets into the data root (an interrupted download resumes)."""
    from .catalog import ensure_dataset, get_dataset

    for name in names:
        get_dataset(name)  # every name is checked before the first download starts
    for name in names:
        Console().print(f"{name}: {ensure_dataset(name, root)}")


@models_app.command("list")
@user_errors
def models_list() -> None:
    """The official pretrained generators, what they translate, and which are downloaded."""
    from rich.table import Table

    from .catalog import PRETRAINED, models_dir

    table = Table(title=f"Pretrained generators (cache: {models_dir()}/)")
    for column in ("name", "translates", "trained on", "here"):
        table.add_column(column)
    for m in PRETRAINED.values():
        here = "✓" if (models_dir() / f"{m.name}.pth").is_file() else ""
        table.add_row(m.name, f"{m.source} → {m.target}", m.dataset or "cityscapes", here)
    out = Console()
    out.print(table)
    out.print("Use one with `cyclegan translate --pretrained NAME INPUT OUTPUT`; they download on first use.")


@models_app.command("download")
@user_errors
def models_download(
    names: Annotated[list[str], typer.Argument(help="Model names, e.g. style_vangogh.", show_default=False)],
) -> None:
    """Download pretrained generators into the cache ($CYCLEGAN_MODELS_DIR or checkpoints/pretrained/)."""
    from .catalog import get_pretrained, pretrained_path

    for name in names:
        get_pretrained(name)
    for name in names:
        Console().print(f"{name}: {pretrained_path(name)}")


def _launch_on_gpus(ctx: typer.Context, gpus: int, device: str, values: dict) -> int:
    """``cyclegan train --gpus N``: the same command, without --gpus and with ``values`` for the options
    they name, as N processes under torchrun."""
    import os

    import torch

    from .distributed import launch

    if gpus < 1:
        raise UserError("--gpus must be at least 1")
    if "WORLD_SIZE" in os.environ:
        raise UserError("--gpus starts torchrun itself; under torchrun leave it out")
    if device != "cpu" and torch.cuda.device_count() < gpus:
        raise UserError(f"--gpus {gpus}: this machine has {torch.cuda.device_count()} CUDA GPU(s) "
                        "(--device cpu runs that many CPU processes instead)")
    args = ["-v"] if ctx.parent and ctx.parent.params.get("verbose") else []
    return launch(gpus, [*args, ctx.info_name or "train", *_given_options(ctx, {"gpus"}, values)])


def _given_options(ctx: typer.Context, skip: set[str], values: dict) -> list[str]:
    """The options given on this command line, written back as arguments (``values`` replacing theirs)."""
    args = []
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name)
        if param.name in skip or source is None or source.name != "COMMANDLINE":
            continue
        value = values.get(param.name, ctx.params[param.name])
        if getattr(param, "is_flag", False):
            if value or param.secondary_opts:
                args.append(param.opts[0] if value else param.secondary_opts[0])
        else:
            args += [param.opts[0], str(value)]
    return args


def _split(text: str | None) -> list[str]:
    """``"a,b c"`` → ``["a", "b", "c"]``: list options take commas or spaces."""
    return (text or "").replace(",", " ").split()


def _floats(text: str | None, option: str) -> list[float] | None:
    if not text:
        return None
    try:
        return [float(v) for v in _split(text)]
    except ValueError:
        raise UserError(f"{option} takes numbers separated by commas, e.g. 0.7,0.3 (got {text!r})") from None


@app.command()
@user_errors
def stylize(
    paths: Annotated[
        list[str],
        typer.Argument(
            metavar="CONTENT STYLE... OUTPUT",
            help="A content image or folder, one or more style images, and the output image or folder.",
            show_default=False,
        ),
    ],
    style_blend: Annotated[str | None, typer.Option(help="Weights of the style images, e.g. 0.7,0.3 (default: equal).")] = None,
    size: Annotated[int, typer.Option(help="Long side of the output in pixels.")] = 512,
    style_scale: Annotated[float, typer.Option(help="Long side of the style images relative to --size (smaller: finer strokes).")] = 1.0,
    steps: Annotated[int, typer.Option(help="Optimisation steps (one forward and backward pass through VGG19 each).")] = 300,
    optimizer: Annotated[str, typer.Option(help="lbfgs (the paper's) or adam.")] = "lbfgs",
    lr: Annotated[float, typer.Option(help="Adam learning rate (pixels are in [0, 1]).")] = 0.02,
    content_weight: Annotated[float, typer.Option(help="Weight of the content loss.")] = 1.0,
    style_weight: Annotated[float, typer.Option(help="Weight of the style (Gram matrix) loss.")] = 1e6,
    tv_weight: Annotated[float, typer.Option(help="Weight of the total-variation loss (smooths noise); 0 disables it.")] = 0.0,
    content_layers: Annotated[str, typer.Option(help="VGG19 layers of the content loss (convB_N or poolB).")] = "conv4_2",
    style_layers: Annotated[str, typer.Option(help="VGG19 layers of the style loss.")] = "conv1_1,conv2_1,conv3_1,conv4_1,conv5_1",
    pooling: Annotated[str, typer.Option(help="VGG pooling: max, or avg (smoother, as Gatys et al. suggest).")] = "max",
    init: Annotated[str, typer.Option(help="Start from the content image, noise, or the (first) style image.")] = "content",
    preserve_color: Annotated[bool, typer.Option(help="Transfer style on luminance only; keep the content's colours.")] = False,
    seed: Annotated[int, typer.Option(help="Random seed (for --init noise).")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    vgg_weights: Annotated[
        str | None,
        typer.Option(help="VGG19 features state dict in torchvision's layout (default: torchvision's ImageNet weights, downloaded once)."),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Redo outputs that already exist (default: skip them).")] = False,
) -> None:
    """Neural style transfer (Gatys et al.): paint CONTENT in the style of one or more paintings.

    A baseline to compare a trained CycleGAN with. CONTENT may be a folder: the outputs then mirror it
    below OUTPUT, existing outputs are skipped, and failures are reported at the end (exit status 1).
    To give any image the colours of its content afterwards, see `cyclegan recolor`.
    """
    from .config import StylizeConfig
    from .nst import stylize as run_stylize

    if len(paths) < 3:
        raise UserError("stylize needs CONTENT, at least one STYLE image, and OUTPUT")
    cfg = StylizeConfig(
        content=paths[0],
        styles=paths[1:-1],
        output=paths[-1],
        style_blend=_floats(style_blend, "--style-blend"),
        content_layers=_split(content_layers),
        style_layers=_split(style_layers),
        **{k: v for k, v in locals().items() if k in StylizeConfig.__dataclass_fields__ and k not in (
            "style_blend", "content_layers", "style_layers")},
    )
    summary = run_stylize(cfg)
    summary.print(err_console, title="stylize")
    if summary.exit_code:
        raise typer.Exit(summary.exit_code)


@app.command()
@user_errors
def evaluate(
    target: Annotated[str, typer.Argument(metavar="FAKE_DIR|RUN", help="A folder of generated images, or a run folder (checkpoints/NAME) to evaluate on its test split.")],
    real_dir: Annotated[str | None, typer.Argument(metavar="REAL_DIR", help="The real images to compare FAKE_DIR with.")] = None,
    json_path: Annotated[str | None, typer.Option("--json", help="FAKE_DIR REAL_DIR: also write the scores to this JSON file.")] = None,
    test_dir: Annotated[str | None, typer.Option(help="RUN: dataset folder with testA/ and testB/ (default: beside the run's training folders).")] = None,
    direction: Annotated[str, typer.Option(help="RUN: AtoB, BtoA or both.")] = "both",
    max_images: Annotated[int | None, typer.Option(help="RUN: score a fixed random sample of this many test inputs (NST is slow).")] = None,
    baseline: Annotated[str | None, typer.Option(help="RUN: nst also scores neural style transfer of the same inputs.")] = None,
    style: Annotated[str | None, typer.Option(help="NST: one style image for every input.")] = None,
    style_dir: Annotated[str | None, typer.Option(help="NST: style images taken in turn, one per input (default: the run's training images of the target domain).")] = None,
    nst_steps: Annotated[int, typer.Option(help="NST: optimisation steps per image.")] = 300,
    nst_size: Annotated[int | None, typer.Option(help="NST: long side of the outputs (default: that of the test images).")] = None,
    vgg_weights: Annotated[str | None, typer.Option(help="NST: VGG19 weights file (default: torchvision's download).")] = None,
    wandb_mode: Annotated[str, typer.Option(help="RUN: log the table to the run's W&B run: auto, online, offline or disabled.")] = "auto",
    inception: Annotated[str | None, typer.Option(help="FID Inception TorchScript file (default: downloaded once into the torch cache).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    batch_size: Annotated[int, typer.Option(help="Images per Inception batch.")] = 50,
    workers: Annotated[int, typer.Option(help="Image decoding processes.")] = 4,
) -> None:
    """FID and KID (lower is better) on the standard FID Inception network.

    FAKE_DIR REAL_DIR: score a folder of generated images against real ones.

    RUN: translate the test split with the run's generators and score each direction against the real
    test images of the other domain, beside the untranslated inputs and, with --baseline nst, neural
    style transfer. Writes RUN/metrics.json and RUN/eval.html (input | CycleGAN | NST).

    KID (mean ± std over subsets) is the one to trust on small test sets.
    """
    from .config import EvalConfig
    from .evaluate import evaluate as run_evaluation

    cfg = EvalConfig(**{k: v for k, v in locals().items() if k in EvalConfig.__dataclass_fields__})
    run_evaluation(cfg)


@app.command()
@user_errors
def recolor(
    image: Annotated[str, typer.Argument(metavar="IMAGE", help="Any output image: a style transfer result, a CycleGAN translation.")],
    content: Annotated[str, typer.Argument(metavar="CONTENT", help="The image whose colours to keep (resized to IMAGE's size).")],
    output: Annotated[str, typer.Argument(metavar="OUTPUT", help="Where to write the result.")],
) -> None:
    """Keep IMAGE's luminance but take the colours of CONTENT (the colour-preserving post-step of Gatys et al.)."""
    from .nst import recolor as run_recolor

    err_console.print(f"wrote {run_recolor(image, content, output)}")


if __name__ == "__main__":
    app()
