"""The command line: options come from the config declarations, bad ones stop everything before any work,
and what it prints is text (paths with [brackets] included), never markup."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
from conftest import REPO, make_folder, shared_path, write_image
from fileserver import FileServer, dataset_zip
from typer.testing import CliRunner

from cyclegan import config
from cyclegan.cli import app
from cyclegan.config import (
    EvalConfig,
    ExportConfig,
    StyleTrainConfig,
    StylizeConfig,
    TrainConfig,
    TranslateConfig,
)

runner = CliRunner()

# each command, its config, and what it takes besides the config's options (arguments, CLI-only options)
COMMANDS = {
    "train": (TrainConfig, {"root", "no_download", "gpus"}),
    "translate": (TranslateConfig, {"paths", "preset", "style", "to", "pretrained"}),
    "stylize": (StylizeConfig, {"paths"}),
    "evaluate": (EvalConfig, {"target", "real_dir"}),
    "train-style": (StyleTrainConfig, {"style"}),
    "export": (ExportConfig, {"paths", "pretrained"}),
}
# config fields filled from a command's arguments rather than options
FROM_ARGUMENTS = {"translate": {"checkpoint", "input", "output", "style"},
                  "stylize": {"content", "styles", "output"}, "evaluate": {"target", "real_dir"},
                  "train-style": {"styles", "given"}, "export": {"checkpoint", "output"},
                  "train": {"given"}}  # given: which options the command line gave (what a resume takes)


def command(name: str):
    return typer.main.get_command(app).commands[name]


def one_line_error(result, *expected: str) -> None:
    """The CLI's answer to a bad option: exit status 2 and one line naming it, no traceback."""
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, result.output + repr(result.exception)
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for text in expected:
        assert text in lines[0], (text, lines[0])


# --- every option is declared once -------------------------------------------------------------------------


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_is_a_config_field_and_every_field_an_option(name):
    cls, cli_only = COMMANDS[name]
    params = {p.name for p in command(name).params}
    fields = {f.name for f, _ in config.option_fields(cls)}
    assert params - cli_only == fields  # a renamed field cannot fall back to its default unnoticed
    not_options = {f.name for f in config.dataclasses.fields(cls)} - fields
    assert not_options == FROM_ARGUMENTS.get(name, set())


@pytest.mark.parametrize("name", COMMANDS)
def test_options_keep_their_names_help_and_defaults(name):
    cls, _ = COMMANDS[name]
    params = {p.name: p for p in command(name).params}
    for f, _ in config.option_fields(cls):
        param = params[f.name]
        assert set(config.option_flags(f)) <= set(param.opts), (f.name, param.opts)
        assert param.help == f.metadata["help"] and param.help
    train = {p.name: p for p in command("train").params}
    assert train["domain_a"].opts == ["--domainA", "--domain-a"] and train["net_g"].opts == ["--net-g"]
    assert train["flip"].secondary_opts == ["--no-flip"] and train["overwrite"].opts == ["--overwrite"]
    assert {p.name: p for p in command("evaluate").params}["json_path"].opts == ["--json"]
    assert {p.name: p for p in command("translate").params}["channels_last"].secondary_opts == ["--no-channels-last"]


def test_help_explains_every_option():
    for name, (cls, _) in COMMANDS.items():
        result = runner.invoke(app, [name, "--help"], env={"COLUMNS": "300"})
        assert result.exit_code == 0
        for f, _ in config.option_fields(cls):
            assert config.option_flags(f)[0] in result.output, (name, f.name)
        if "inception" in cls.__dataclass_fields__:  # TorchScript is code: say so where it is asked for
            assert "only use files you trust" in result.output


def test_options_reach_the_config(image_dirs, tmp_path, monkeypatch):
    import cyclegan.evaluate
    import cyclegan.style.gatys
    import cyclegan.train

    got = {}
    monkeypatch.setattr(cyclegan.train, "train", lambda cfg: got.setdefault("train", cfg))
    monkeypatch.setattr(cyclegan.style.gatys, "stylize", lambda cfg: got.setdefault("stylize", cfg))
    monkeypatch.setattr(cyclegan.evaluate, "evaluate", lambda cfg: got.setdefault("evaluate", cfg))
    a, b = image_dirs
    result = runner.invoke(app, ["train", "--domain-a", str(a), "--domainB", str(b), "--no-flip", "--channels-last",
                                 "--net-g", "unet_128", "--epochs", "3", "--overwrite", "--max-steps", "7"])
    assert got["train"] and result.exit_code != 2, result.output
    cfg = got["train"]
    assert (cfg.domain_a, cfg.flip, cfg.channels_last, cfg.net_g) == (str(a), False, True, "unet_128")
    assert (cfg.epochs, cfg.epochs_decay, cfg.overwrite, cfg.max_steps) == (3, 100, True, 7)
    runner.invoke(app, ["stylize", "c.png", "s1.png", "s2.png", "out.png", "--style-blend", "0.7,0.3",
                        "--style-layers", "conv1_1, conv2_1"])
    cfg = got["stylize"]
    assert (cfg.content, cfg.styles, cfg.output) == ("c.png", ["s1.png", "s2.png"], "out.png")
    assert (cfg.style_blend, cfg.style_layers, cfg.content_layers) == ([0.7, 0.3], ["conv1_1", "conv2_1"], ["conv4_2"])
    runner.invoke(app, ["evaluate", "fake", "real", "--json", "s.json", "--batch-size", "3"])
    cfg = got["evaluate"]
    assert (cfg.target, cfg.real_dir, cfg.json_path, cfg.batch_size) == ("fake", "real", "s.json", 3)


# --- bad options stop everything before any work --------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (["--workers", "-1"], "--workers -1: must be at least 0"),
    (["--load-size", "0"], "--load-size 0: must be at least 1"),
    (["--load-size", "200"], "--load-size 200: must be at least --image-size (256)"),
    (["--epochs", "-5"], "--epochs -5: must be at least 0"),
    (["--epochs-decay", "-1"], "--epochs-decay -1: must be at least 0"),
    (["--epochs", "0", "--epochs-decay", "0"], "--epochs 0 --epochs-decay 0"),
    (["--norm", "foo"], "--norm foo: choose one of instance, batch, none"),
    (["--device", "gpu"], "--device gpu: choose auto, cpu, cuda, cuda:N or mps"),
    (["--precision", "fp8"], "--precision fp8: choose one of auto, fp32, bf16, fp16"),
    (["--wandb-mode", "loud"], "--wandb-mode loud"),
    (["--net-g", "resnet_xblocks"], "--net-g resnet_xblocks: unknown generator"),
    (["--beta1", "1"], "--beta1 1.0: must be at least 0 and below 1"),
    (["--gpus", "0"], "--gpus 0: must be at least 1"),
    (["--device", "cuda:64"], "--device cuda:64"),  # a device this machine does not have
])
def test_bad_train_option_stops_before_download_and_run_folder(tmp_path, monkeypatch, args, message):
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    with FileServer(tmp_path / "served") as server:
        dataset_zip(server.folder / "datasets" / "monet2photo.zip", "monet2photo", n=2)
        monkeypatch.setenv("CYCLEGAN_DATASETS_URL", f"{server.url}/datasets")
        result = runner.invoke(app, ["train", "--domainA", "photos", "--domainB", "monet", "--root",
                                     str(tmp_path / "data"), "--checkpoints-dir", str(tmp_path / "runs"),
                                     "--wandb-mode", "disabled", "--max-steps", "1", *args])
    one_line_error(result, message)
    assert server.requests == [] and not (tmp_path / "data").exists() and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("args, message", [
    (["--writers", "-1"], "--writers -1: must be at least 0"),
    (["--workers", "-2"], "--workers -2: must be at least 0"),
    (["--batch-size", "0"], "--batch-size 0: must be at least 1"),
    (["--quality", "101"], "--quality 101: must be from 1 to 100"),
    (["--format", "tiff"], "--format tiff: choose one of same, png, jpg, jpeg, webp"),
    (["--max-side", "0"], "--max-side 0: must be at least 1"),
    (["--size", "100000"], "--size 100000: a square image would have 10,000 megapixels, more than the 179 this "
                           "tool reads and writes: at most 13377 a side"),
    (["--resize", "20000"], "--resize 20000: every image would have 400 megapixels"),
])
def test_bad_translate_option_stops_before_any_work(tmp_path, args, message):
    src = make_folder(tmp_path / "in", 1)
    result = runner.invoke(app, ["translate", str(tmp_path / "nowhere"), str(src), str(tmp_path / "out"), *args])
    one_line_error(result, message)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, message", [
    (["--batch-size", "0"], "--batch-size 0: must be at least 1"),
    (["--workers", "-1"], "--workers -1: must be at least 0"),
    (["--max-images", "1"], "--max-images 1: must be at least 2"),
    (["--nst-size", "8"], "--nst-size 8: must be at least 16"),
    (["--direction", "up"], "--direction up: choose one of AtoB, BtoA, both"),
])
def test_bad_evaluate_option_stops_before_any_work(tmp_path, args, message):
    fake, real = make_folder(tmp_path / "fake", 2), make_folder(tmp_path / "real", 2)
    result = runner.invoke(app, ["evaluate", str(fake), str(real), "--json", str(tmp_path / "s.json"),
                                 "--inception", str(tmp_path / "no-network.pt"), *args])
    one_line_error(result, message)
    assert not (tmp_path / "s.json").exists()


@pytest.mark.parametrize("args, message", [
    (["--size", "15"], "--size 15: must be at least 16"),
    (["--size", "0"], "--size 0: must be at least 1"),
    (["--steps", "0"], "--steps 0: must be at least 1"),
    (["--style-scale", "0"], "--style-scale 0.0: must be more than 0"),
    (["--tv-weight", "-1"], "--tv-weight -1.0: must be at least 0"),
    (["--optimizer", "sgd"], "--optimizer sgd: choose one of lbfgs, adam"),
    (["--style-blend", "a,b"], "--style-blend a,b: give float values separated by commas"),
    (["--size", "100000"], "--size 100000: a square image would have 10,000 megapixels, more than the 89 this "
                           "tool reads and writes: at most 9459 a side"),
    (["--size", "100000", "--method", "adain"], "--size 100000: a square image would have 10,000 megapixels"),
    (["--size", "5000", "--style-scale", "3"], "--style-scale 3 (style images 15000 a side): a square image"),
])
def test_bad_stylize_option_stops_before_any_work(tmp_path, args, message):
    photo, style = write_image(tmp_path / "photo.png"), write_image(tmp_path / "style.png", seed=1)
    result = runner.invoke(app, ["stylize", str(photo), str(style), str(tmp_path / "out" / "x.png"),
                                 "--vgg-weights", str(tmp_path / "no-weights.pth"), *args])
    one_line_error(result, message)
    assert not (tmp_path / "out").exists()


def test_an_image_whose_output_would_be_too_large_is_skipped_saying_so(tmp_path):
    write_image(tmp_path / "in" / "panorama.png", size=(100, 10))  # --resize 5000: 50000×5000 pixels
    result = runner.invoke(app, ["translate", str(shared_path("fixtures", "reference_generator")), str(tmp_path / "in"),
                                 str(tmp_path / "out"), "--resize", "5000", "--workers", "0", "--no-progress"])
    text = " ".join(result.output.split())  # the summary wraps long lines
    assert "Traceback" not in text and "unreadable" not in text
    assert "scaled to 50000×5000 it would have 250 megapixels, more than the 179 this tool writes" in text


def test_stylize_size_bound_follows_the_deepest_layer(tmp_path, monkeypatch):
    import cyclegan.style.gatys

    monkeypatch.setattr(cyclegan.style.gatys, "stylize", lambda cfg: pytest.fail("--size 8 is too small for conv5_1"))
    result = runner.invoke(app, ["stylize", "c.png", "s.png", "o.png", "--size", "8", "--style-layers", "conv5_1"])
    one_line_error(result, "--size 8: must be at least 16")
    got = []
    monkeypatch.setattr(cyclegan.style.gatys, "stylize", got.append)
    runner.invoke(app, ["stylize", "c.png", "s.png", "o.png", "--size", "8", "--style-layers", "conv1_1,conv2_1",
                        "--content-layers", "conv2_2"])
    assert got and got[0].size == 8  # shallow layers fit a small image


# --- output is text, never markup ------------------------------------------------------------------------


def test_error_messages_print_paths_with_brackets_as_written(tmp_path):
    for name in ("[bold]x.jpg", "x[/]y"):
        result = runner.invoke(app, ["recolor", str(tmp_path / name), str(tmp_path / "c.png"), str(tmp_path / "o.png")])
        one_line_error(result, str(tmp_path / name))


def test_recolor_prints_the_output_path_as_written(tmp_path):
    image, content = write_image(tmp_path / "a.png"), write_image(tmp_path / "b.png", seed=1)
    out = tmp_path / "x[/]y" / "[bold]out.png"
    out.parent.mkdir(parents=True)
    result = runner.invoke(app, ["recolor", str(image), str(content), str(out)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert f"wrote {out}" in result.output and out.is_file()


def test_lists_show_whole_names_and_paths_as_written(tmp_path, monkeypatch):
    monkeypatch.setenv("CYCLEGAN_MODELS_DIR", str(tmp_path / "[bold]models"))
    result = runner.invoke(app, ["datasets", "list", "--root", str(tmp_path / "x[/]y")])  # 80 columns
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "summer2winter_yosemite" in result.output and "x[/]y" in result.output.replace("\n", "")
    result = runner.invoke(app, ["models", "list"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "[bold]models" in result.output.replace("\n", "")
    for line in result.output.splitlines():
        if "winter2summer_yosemite" in line:
            assert line.count("summer2winter_yosemite") == 1  # the dataset column is whole too
    assert "winter2summer_yosemite" in result.output


# --- the README's examples use options that exist ---------------------------------------------------------

OTHER_PROGRAMS = {"--nproc-per-node", "--standalone", "--nnodes", "--rdzv-backend", "--rdzv-endpoint",  # torchrun
                  "--no-deps"}  # pip


def script_options() -> set[str]:
    """Every option the scripts/ programs declare (the README documents them beside the CLI's)."""
    sources = [p.read_text() for p in Path(REPO, "scripts").glob("*.py")]
    return {o for s in sources for o in re.findall(r"add_argument\(\s*\"(--[\w-]+)\"", s)}


def readme_commands() -> list[tuple[str, str]]:
    """(command, text) of every ``cyclegan COMMAND ...`` example in the README: code lines and inline code."""
    text = Path(REPO, "README.md").read_text().replace("\\\n", " ")
    blocks = re.findall(r"```.*?\n(.*?)```", text, re.S)
    lines = [line for block in blocks for line in block.splitlines()]
    inline = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    found = []
    for line in [*lines, *inline]:
        commands = r"\bcyclegan (train-style|train|translate|stylize|evaluate|recolor|export)(?![\w-])(.*)"
        if m := re.search(commands, line.split("#")[0]):
            found.append((m[1], m[2]))
    return found


def test_readme_examples_use_options_of_their_command():
    examples = readme_commands()
    assert len(examples) > 10
    for name, args in examples:
        options = {o for p in command(name).params for o in [*p.opts, *p.secondary_opts]} | {"--help"}
        for option in re.findall(r"(?<![\w-])--[a-zA-Z][\w-]*", args):
            assert option in options, f"README: `cyclegan {name} ... {option}`: no such option"


def test_readme_options_exist_on_some_command():
    text = Path(REPO, "README.md").read_text()
    cli = typer.main.get_command(app)
    commands = [c for c in cli.commands.values() if not isinstance(c, typer.core.TyperGroup)]
    commands += [c for g in cli.commands.values() if isinstance(g, typer.core.TyperGroup) for c in g.commands.values()]
    options = {o for c in commands for p in c.params for o in [*p.opts, *p.secondary_opts]} | {"--help"}
    mentioned = set(re.findall(r"(?<![\w-])--[a-zA-Z][\w-]*", text))
    assert mentioned - options - OTHER_PROGRAMS - script_options() == set()
