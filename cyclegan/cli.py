"""The ``cyclegan`` command line. Thin: options → a config dataclass → one workflow call.

Each command imports its workflow inside its function: ``cyclegan --help`` and the listing commands then
start without loading PyTorch (a second or more). Nothing imports this module but ``__main__``. Its 500-odd
lines are one function per command, most of them the help texts of its arguments.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.text import Text

from . import config
from .config import EvalConfig, SmoothConfig, StyleTrainConfig, StylizeConfig, TrainConfig, TranslateConfig
from .errors import UserError

app = typer.Typer(
    help="Unpaired image-to-image translation with CycleGAN, and style transfer: train, translate, export, "
         "stylize, train-style, evaluate.",
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
            # as text, not markup: messages hold paths, and a path may contain [brackets]
            err_console.print(Text.assemble(("error:", "bold red"), f" {e}"), soft_wrap=True, highlight=False)
            raise typer.Exit(2) from None

    return wrapper


def config_options(cls: type):
    """Give a command one option per option field of the config class ``cls`` (see ``config.opt``).

    The command declares its arguments and CLI-only options as usual, plus ``cfg``: it is called with
    ``cfg`` built from the options, each already checked against its declaration, so a bad option stops it
    before any work; the workflow checks the rules between options once the arguments are in.
    """
    fields = config.option_fields(cls)

    def decorate(fn):
        own = [p for p in inspect.signature(fn, eval_str=True).parameters.values() if p.name != "cfg"]
        options = [_option_parameter(f, hint) for f, hint in fields]
        # Typer hands a command its context through one parameter: the command's own, else one added here
        theirs = next((p.name for p in own if p.annotation is typer.Context), None)
        context = [] if theirs else [inspect.Parameter(CONTEXT, inspect.Parameter.KEYWORD_ONLY,
                                                       annotation=typer.Context)]

        @functools.wraps(fn)
        def command(*args, **kwargs):
            values = {f.name: kwargs.pop(f.name) for f, _ in fields}
            for f, hint in fields:
                if item := config.list_item(hint):  # list options are written "a,b" on the command line
                    values[f.name] = config.parse_list(values[f.name], item, config.option_flags(f)[0])
            cfg = cls(**values)
            ctx = kwargs[theirs] if theirs else kwargs.pop(CONTEXT)
            if hasattr(cfg, "given"):  # a training command: what a resumed run takes from this invocation
                cfg.given = [f.name for f, _ in fields if given_on_command_line(ctx, f.name)]
            config.check_options(cfg)  # the rules between options wait for the arguments (workflows check them)
            return fn(*args, **kwargs, cfg=cfg)

        command.__signature__ = inspect.Signature([*own, *options, *context])
        return command

    return decorate


CONTEXT = "config_context"  # the parameter config_options adds to a command that takes no context itself


def given_on_command_line(ctx: typer.Context, name: str) -> bool:
    """Whether option ``name`` was given (not left at its default)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def _option_parameter(f: dataclasses.Field, hint) -> inspect.Parameter:
    """The ``typer.Option`` parameter of config field ``f`` (of type ``hint``)."""
    default = f.default
    if config.list_item(hint):
        hint = str | None
        default = None if f.default is None else config.shown(f.default_factory())
    elif config.choices(hint):  # choices are checked by config.validate, in its message format
        hint = str | None if f.default is None else str
    # no names given: typer derives --field-name, and --flag/--no-flag for a bool
    option = typer.Option(*f.metadata["flags"], help=f.metadata["help"], show_default=default != "")
    return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=Annotated[hint, option])


@app.command()
@user_errors
@config_options(TrainConfig)
def train(
    ctx: typer.Context,
    root: Annotated[str | None, typer.Option(help=(
        "Where named datasets live and download to (default: $CYCLEGAN_DATA_DIR or datasets/)."))] = None,
    no_download: Annotated[bool, typer.Option(
        "--no-download", help="Fail instead of downloading a dataset that is not there.")] = False,
    gpus: Annotated[int, typer.Option(help="Train on N GPUs of this machine: runs this command under `torchrun "
                                      "--nproc-per-node N` (with --device cpu: N CPU processes).")] = 1,
    *,
    cfg: TrainConfig,
) -> None:
    """Train a CycleGAN on two unpaired image folders.

    Named domains pick an official dataset: --domainA photos --domainB monet trains on monet2photo,
    downloaded on first use.

    Checkpoints, samples and the W&B run go to CHECKPOINTS_DIR/NAME. Ctrl-C saves a checkpoint;
    `cyclegan train --name NAME --resume` continues from it exactly. Several GPUs or machines:
    `torchrun --nproc-per-node N -m cyclegan train ...` (or --gpus N on one machine).
    """
    from .catalog import resolve_domains
    from .distributed import is_main_process
    from .run import check_run_folder
    from .train import check
    from .train import train as run_training

    if gpus < 1:
        raise UserError(config.problem("--gpus", gpus, "must be at least 1"))
    check(cfg)  # also what the options alone cannot say (generator names), before any download
    if is_main_process():  # a run folder that cannot be used stops us before a dataset downloads
        check_run_folder(cfg.run_dir, cfg.resume, cfg.overwrite)
    if cfg.domain_a and cfg.domain_b and not cfg.resume:  # a resumed run keeps the folders it started with
        found = resolve_domains(cfg.domain_a, cfg.domain_b, root, download=not no_download)
        cfg = dataclasses.replace(cfg, domain_a=str(found[0]), domain_b=str(found[1]))
    if gpus != 1:
        # the processes get the folders found above (a named dataset is downloaded once, here)
        values = {"domain_a": cfg.domain_a, "domain_b": cfg.domain_b}
        raise typer.Exit(_launch_on_gpus(ctx, gpus, cfg.device, values))
    result = run_training(cfg)
    if result.interrupted:
        raise typer.Exit(130)


@app.command()
@user_errors
@config_options(TranslateConfig)
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
        help="The painter of --preset painting: monet (default), cezanne, ukiyoe or vangogh. For a multi-style "
             "network of `cyclegan train-style`: the style to paint, by index or name (its image's file stem).")] = None,
    to: Annotated[str | None, typer.Option(
        help="The domain to translate into, to reverse a preset: e.g. --preset season --to summer.")] = None,
    pretrained: Annotated[str | None, typer.Option(
        help="Any official pretrained generator by name (see `cyclegan models list`).")] = None,
    *,
    cfg: TranslateConfig,
) -> None:
    """Translate an image or a folder of images with a trained generator, at full resolution.

    With a run of yours: cyclegan translate checkpoints/NAME in/ out/

    Pretrained (downloaded on first use): cyclegan translate --preset painting --style monet in/ out/

    Outputs keep each input's size (unless --resize or --max-side) and its path relative to INPUT.
    Videos (mp4, mov, mkv, webm, and animated GIFs) are translated frame by frame into the same
    container, audio copied (needs the video extra). Animated WebP inputs are read as their first
    frame; a still .gif input is written as .png.
    Two inputs that would be written to one output (x.jpg and x.png with --format png), or an output
    over an input, stop the run before any work.

    Unreadable files (and outputs that come out non-finite) are reported and skipped; the exit status
    is then 1. A full or read-only disk stops the run (exit status 2), keeping what was written.
    """
    from .catalog import pretrained_path, translate_model
    from .summary import Summary
    from .translate import plan, translate_folder

    model = translate_model(preset, style if preset else None, to, pretrained, cfg.direction)
    wanted = 2 if model else 3
    if len(paths) != wanted:
        raise UserError(
            "give INPUT and OUTPUT after --preset/--pretrained (no CHECKPOINT)" if model
            else "give CHECKPOINT INPUT OUTPUT, or INPUT OUTPUT with --preset or --pretrained"
        )
    checkpoint, input, output = ("", *paths) if model else paths
    # an official generator translates one way (AtoB); the reverse is another model
    cfg = dataclasses.replace(cfg, checkpoint=checkpoint, input=input, output=output,
                              direction="AtoB" if model else cfg.direction, style=None if preset else style)
    if model:
        plan(cfg, Summary())  # refuse outputs that would collide or overwrite inputs before downloading
        logging.getLogger(__name__).info("pretrained generator: %s", model)
        cfg = dataclasses.replace(cfg, checkpoint=str(pretrained_path(model)))
    summary = translate_folder(cfg)
    summary.print(err_console)
    raise typer.Exit(summary.exit_code)


@app.command()
@user_errors
@config_options(config.ExportConfig)
def export(
    paths: Annotated[list[str], typer.Argument(metavar="[MODEL] OUTPUT", help=(
        "MODEL: anything translate takes (a run folder, a generator .safetensors, a .pth of the original "
        "release); left out with --pretrained. OUTPUT: NAME.onnx (ONNX) or NAME.pt2 (torch.export)."))],
    pretrained: Annotated[str | None, typer.Option(
        help="An official pretrained generator by name instead of MODEL (see `cyclegan models list`).")] = None,
    *,
    cfg: config.ExportConfig,
) -> None:
    """Export a generator to ONNX or torch.export (.pt2), with free batch size, height and width.

    cyclegan export checkpoints/photo2monet monet.onnx

    The file holds the network alone: inputs [N, 3, H, W] RGB in [-1, 1], H and W padded to the size
    multiple it names (the conventions are printed, and kept in the ONNX metadata). After writing, the
    export and PyTorch translate a few images of sizes not used at export time; beyond --tolerance
    (0-255 levels) the export fails and no file is left. ONNX needs the export extra: pip install -e '.\\[export]'
    """
    from rich.table import Table

    from .catalog import pretrained_path, translate_model
    from .export import export_model

    model = translate_model(pretrained=pretrained, direction=cfg.direction)
    if len(paths) != (1 if model else 2):
        raise UserError("give OUTPUT after --pretrained (no MODEL)" if model else
                        "give MODEL OUTPUT, or OUTPUT with --pretrained")
    checkpoint, output = ("", *paths) if model else paths
    cfg = dataclasses.replace(cfg, checkpoint=checkpoint, output=output, direction="AtoB" if model else cfg.direction)
    config.validate(cfg)  # OUTPUT's name, before a download
    if model:
        cfg = dataclasses.replace(cfg, checkpoint=str(pretrained_path(model)))
    result = export_model(cfg)
    out = Console(markup=False)  # printed as written: paths may hold [brackets]
    out.print(f"wrote {result.path}")
    for key, value in result.conventions.items():
        out.print(f"  {key}: {value}", soft_wrap=True)
    table = Table(title="export against PyTorch (0-255 levels)")
    for column in ("input", "max difference", "mean difference"):
        table.add_column(column)
    for check in result.checks:
        table.add_row("×".join(map(str, check.shape)), f"{check.max_levels:.4f}", f"{check.mean_levels:.5f}")
    out.print(table)


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

    table = Table(title=Text(f"Datasets (in {data_root(root)}/)"))
    table.add_column("name", no_wrap=True, min_width=max(len(name) for name in DATASETS))  # names stay whole
    for column in ("A (trainA)", "B (trainB)", "what", "here"):
        table.add_column(column)
    for d in DATASETS.values():
        table.add_row(d.name, d.a, d.b, d.about, "✓" if is_dataset(data_root(root) / d.name) else "")
    out = Console(markup=False)  # printed as written: paths may hold [brackets]
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
        Console(markup=False).print(f"{name}: {ensure_dataset(name, root)}")


@models_app.command("list")
@user_errors
def models_list() -> None:
    """The official pretrained generators, what they translate, and which are downloaded."""
    from rich.table import Table

    from .catalog import DATASETS, PRETRAINED, models_dir

    table = Table(title=Text(f"Pretrained generators (cache: {models_dir()}/)"))
    widest = max(len(name) for name in [*PRETRAINED, *DATASETS])
    table.add_column("name", no_wrap=True, min_width=widest)  # names stay whole; the other columns wrap
    table.add_column("translates")
    table.add_column("trained on", no_wrap=True, min_width=widest)
    table.add_column("here")
    for m in PRETRAINED.values():
        here = "✓" if (models_dir() / f"{m.name}.pth").is_file() else ""
        table.add_row(m.name, f"{m.source} → {m.target}", m.dataset or "cityscapes", here)
    from .catalog import ADAIN_ABOUT, ADAIN_FILES, adain_path

    for part in ADAIN_FILES:  # the published AdaIN pair: encoder (normalised VGG19) and decoder
        about = ADAIN_ABOUT if part == "decoder" else "AdaIN's encoder: VGG19 up to relu4_1"
        here = "✓" if adain_path(part).is_file() else ""
        table.add_row(f"adain_{part}", about, "COCO + WikiArt" if part == "decoder" else "ImageNet", here)
    out = Console(markup=False)  # printed as written: paths may hold [brackets]
    out.print(table)
    out.print("Use a generator with `cyclegan translate --pretrained NAME INPUT OUTPUT`; the adain files are "
              "what `cyclegan stylize --method adain` uses. All download on first use.")
    from .catalog import FAST_STYLE_MODELS

    styles = Table(title=Text(f"Fast style networks of pytorch/examples (cache: {models_dir() / 'fast_style'}/)"))
    for column in ("name", "paints photos in the style of", "here"):
        styles.add_column(column)
    for name, about in FAST_STYLE_MODELS.items():
        styles.add_row(name, about, "✓" if (models_dir() / "fast_style" / f"{name}.pth").is_file() else "")
    out.print(styles)


@models_app.command("download")
@user_errors
def models_download(
    names: Annotated[list[str], typer.Argument(help="Model names, e.g. style_vangogh.", show_default=False)],
) -> None:
    """Download pretrained generators into the cache ($CYCLEGAN_MODELS_DIR or checkpoints/pretrained/)."""
    from .catalog import FAST_STYLE_MODELS, get_pretrained, pretrained_path

    for name in names:
        if name not in FAST_STYLE_MODELS:
            get_pretrained(name)
    for name in names:
        Console(markup=False).print(f"{name}: {pretrained_path(name)}")


def _launch_on_gpus(ctx: typer.Context, gpus: int, device: str, values: dict) -> int:
    """``cyclegan train --gpus N``: the same command, without --gpus and with ``values`` for the options
    they name, as N processes under torchrun."""
    import os

    import torch

    from .distributed import launch

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
        if param.name in skip or not given_on_command_line(ctx, param.name):
            continue
        value = values.get(param.name, ctx.params[param.name])
        if getattr(param, "is_flag", False):
            if value or param.secondary_opts:
                args.append(param.opts[0] if value else param.secondary_opts[0])
        else:
            args += [param.opts[0], str(value)]
    return args


@app.command()
@user_errors
@config_options(StylizeConfig)
def stylize(
    paths: Annotated[
        list[str],
        typer.Argument(
            metavar="CONTENT STYLE... OUTPUT",
            help="A content image or folder, one or more style images, and the output image or folder.",
            show_default=False,
        ),
    ],
    *,
    cfg: StylizeConfig,
) -> None:
    """Neural style transfer (Gatys et al.): paint CONTENT in the style of one or more paintings.

    --photoreal makes the output look like a photograph of the reference's look (Deep Photo Style
    Transfer; masks with --content-mask/--style-mask or --auto-masks; --histogram-weight for Risser et
    al.'s histogram loss). --method adain (Huang & Belongie) paints in one forward pass instead, with the
    published encoder and decoder (downloaded once; --alpha sets the strength); with adain CONTENT may
    also be a video (mp4, mov, mkv, webm, gif; audio copied; needs the video extra).

    CONTENT may be a folder: the outputs then mirror it below OUTPUT, existing outputs are skipped, and
    failures are reported at the end (exit status 1). To give any image the colours of its content
    afterwards, see `cyclegan recolor`; to make any stylised image photographic, `cyclegan smooth`.
    """
    from .style.gatys import stylize as gatys
    from .translate import stylize_adain
    from .video import find_videos

    if len(paths) < 3:
        raise UserError("stylize needs CONTENT, at least one STYLE image, and OUTPUT")
    cfg = dataclasses.replace(cfg, content=paths[0], styles=paths[1:-1], output=paths[-1])
    config.validate(cfg)
    if cfg.method == "gatys" and (videos := find_videos(cfg.content)):
        raise UserError(f"{videos[0]} is a video: --method gatys takes minutes per frame; use --method adain")
    summary = stylize_adain(cfg) if cfg.method == "adain" else gatys(cfg)
    summary.print(err_console, title="stylize")
    if summary.exit_code:
        raise typer.Exit(summary.exit_code)


@app.command("train-style")
@user_errors
@config_options(StyleTrainConfig)
def train_style(
    style: Annotated[list[str] | None, typer.Option(
        "--style", help="A style image (a painting); repeat it to train one network for several styles "
                        "(conditional instance norm).", show_default=False)] = None,
    *,
    cfg: StyleTrainConfig,
) -> None:
    """Train a feed-forward style network: it then paints any photo in one pass (`cyclegan translate`).

    johnson (default): Johnson et al.'s fast neural style, one network per --style image, or with several
    --style images one network for all of them (Dumoulin et al.'s conditional instance norm):

      cyclegan train-style --style starry_night.jpg --content photos/ --name starry

      cyclegan translate checkpoints/starry holiday/ holiday_starry/

    adain: a decoder for Huang & Belongie's AdaIN (any style, no training per style): --style-dir.

    The run lives in CHECKPOINTS_DIR/NAME (config.json, latest.pt, style.safetensors, samples/, W&B).
    Ctrl-C saves a checkpoint; --resume continues from it exactly.
    """
    from .style.adain import DecoderRun
    from .style.fast import FastStyleRun

    cfg = dataclasses.replace(cfg, styles=list(style or []))
    result = (DecoderRun if cfg.method == "adain" else FastStyleRun).launch(cfg)
    if result.interrupted:
        raise typer.Exit(130)


@app.command()
@user_errors
@config_options(EvalConfig)
def evaluate(
    target: Annotated[str, typer.Argument(metavar="FAKE_DIR|RUN", help=(
        "A folder of generated images, or a run folder (checkpoints/NAME) to evaluate on its test split."))],
    real_dir: Annotated[str | None, typer.Argument(
        metavar="REAL_DIR", help="The real images to compare FAKE_DIR with.")] = None,
    *,
    cfg: EvalConfig,
) -> None:
    """FID and KID (lower is better) on the standard FID Inception network.

    FAKE_DIR REAL_DIR: score a folder of generated images against real ones.

    RUN: translate the test split with the run's generators and score each direction against the real
    test images of the other domain, beside the untranslated inputs, real training images of the target
    domain (as they are, and through the generator: what its own rendering costs) and, with --baseline nst,
    neural style transfer. Writes RUN/metrics.json and RUN/eval.html (input | CycleGAN | NST).

    KID (mean ± std over subsets) is the one to trust on small test sets.
    """
    from .evaluate import evaluate as run_evaluation

    run_evaluation(dataclasses.replace(cfg, target=target, real_dir=real_dir))


@app.command()
@user_errors
def recolor(
    image: Annotated[str, typer.Argument(metavar="IMAGE", help="Any output image: a style transfer result, a CycleGAN translation.")],
    content: Annotated[str, typer.Argument(metavar="CONTENT", help="The image whose colours to keep (resized to IMAGE's size).")],
    output: Annotated[str, typer.Argument(metavar="OUTPUT", help="Where to write the result.")],
) -> None:
    """Keep IMAGE's luminance but take the colours of CONTENT (the colour-preserving post-step of Gatys et al.)."""
    from .style.post import recolor as run_recolor

    err_console.print(Text(f"wrote {run_recolor(image, content, output)}"), soft_wrap=True)


@app.command()
@user_errors
@config_options(SmoothConfig)
def smooth(
    stylized: Annotated[str, typer.Argument(metavar="STYLIZED", help="Any stylised image: Gatys, AdaIN, a "
                                            "CycleGAN translation.")],
    content: Annotated[str, typer.Argument(metavar="CONTENT", help="The photo it was made from (resized to "
                                           "STYLIZED's size).")],
    output: Annotated[str, typer.Argument(metavar="OUTPUT", help="Where to write the result.")],
    *,
    cfg: SmoothConfig,
) -> None:
    """Make a stylised image photographic: Li et al.'s closed-form smoothing with the content's matting affinity.

    One sparse linear solve (conjugate gradients, on the GPU when there is one) pulls STYLIZED onto a
    locally affine function of CONTENT's colours: edges and textures come from the photo, colours from
    STYLIZED. Seconds at 512 px.
    """
    from .style.post import smooth_file

    cfg = dataclasses.replace(cfg, stylized=stylized, content=content, output=output)
    err_console.print(Text(f"wrote {smooth_file(cfg)}"), soft_wrap=True)


@app.command()
@user_errors
@config_options(config.UiConfig)
def ui(*, cfg: config.UiConfig) -> None:
    """A local web page: translate images and videos, stylise photos (Gatys with a live preview, AdaIN, fast
    networks), convert folders, with progress and a stop button.

    Needs the ui extra: pip install -e '.\\[ui]' (Gradio). The page reads and writes only inside --root
    (default: this folder) and listens on 127.0.0.1 (this machine only); --host with another address or
    --share needs --auth or --trusted-network.
    """
    try:
        from .ui import serve  # the optional Gradio, only for this command
    except ImportError as e:
        raise UserError(f"cyclegan ui needs the ui extra ({e.name} is missing): pip install -e '.[ui]'") from None
    serve(cfg)


if __name__ == "__main__":
    app()
