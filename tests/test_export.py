"""cyclegan export: ONNX and .pt2 files that translate like PyTorch at sizes not seen at export time, a
failed parity check that leaves no file, and the precision the CPU gets (bf16 only where it is native)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cyclegan import export, runtime
from cyclegan.checkpoint import NETWORK_KEY, save_network
from cyclegan.cli import app
from cyclegan.config import ExportConfig
from cyclegan.errors import UserError
from cyclegan.models import GeneratorSpec, build_generator
from cyclegan.runtime import cpu_has_native_bf16, default_precision, resolve_precision
from cyclegan.translate import Translator, load_translator, pad_to_multiple

runner = CliRunner()
CPU = torch.device("cpu")
# tiny generators: a ResNet (multiple 4), the same with resize-convolutions, and a U-Net (multiple 32),
# all with instance norm
SPECS = {"resnet": GeneratorSpec(arch="resnet", ngf=4, n_blocks=1),
         "resnet_resize": GeneratorSpec(arch="resnet", ngf=4, n_blocks=1, upsample="resize"),
         "unet": GeneratorSpec(arch="unet", ngf=4, num_downs=5)}
# sizes the export never saw (its example is 2×3×64×64 and its own checks use others): odd sides too
SIZES = [(2, 3, 45, 91), (1, 3, 133, 70)]
TOLERANCE = 1.0  # levels of 0-255, the command's default (see cyclegan/export.py)


def generator_file(tmp_path: Path, arch: str) -> Path:
    torch.manual_seed(0)
    spec = SPECS[arch]
    return save_network(tmp_path / f"{arch}.safetensors", build_generator(spec, init_type="kaiming"), spec)


def levels(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.clamp(-1, 1) - b.clamp(-1, 1)).abs() * 127.5


def compare(run, translator: Translator) -> None:
    """``run`` (the export, called as its conventions say: pad, run, crop) against PyTorch at SIZES."""
    torch.manual_seed(1)
    for shape in SIZES:
        x = torch.rand(shape) * 2 - 1
        padded, (top, left) = pad_to_multiple(x, translator.multiple, translator.min_side)
        assert padded.shape != x.shape  # the sizes really need the padding the conventions describe
        got = run(padded)[..., top:top + shape[2], left:left + shape[3]]
        assert got.shape == x.shape
        assert levels(got, translator(x)).max() <= TOLERANCE


@pytest.mark.parametrize("arch", list(SPECS))
def test_onnx_round_trip(tmp_path, arch):
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    model = generator_file(tmp_path, arch)
    result = export.export_model(ExportConfig(checkpoint=str(model), output=str(tmp_path / "g.onnx")))
    assert result.path.is_file() and all(c.max_levels <= TOLERANCE for c in result.checks)

    props = {p.key: p.value for p in onnx.load(str(result.path)).metadata_props}
    translator = load_translator(model, device="cpu", precision="fp32", channels_last=False)
    assert props["size_multiple"] == str(translator.multiple) and props["min_side"] == str(translator.min_side)
    assert "[-1, 1]" in props["input"] and "reflect" in props["padding"]
    kind_and_spec = json.loads(props[NETWORK_KEY])
    assert kind_and_spec.pop("kind") == "generator" and GeneratorSpec.from_dict(kind_and_spec) == SPECS[arch]

    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    compare(lambda x: torch.from_numpy(session.run(None, {name: x.numpy()})[0]), translator)


@pytest.mark.parametrize("arch", list(SPECS))
def test_pt2_round_trip(tmp_path, arch):
    model = generator_file(tmp_path, arch)
    result = export.export_model(ExportConfig(checkpoint=str(model), output=str(tmp_path / "g.pt2")))
    extra = {export.METADATA_FILE: ""}
    program = torch.export.load(result.path, extra_files=extra)
    translator = load_translator(model, device="cpu", precision="fp32", channels_last=False)
    assert json.loads(extra[export.METADATA_FILE])["size_multiple"] == str(translator.multiple)
    module = program.module()
    with torch.inference_mode():
        compare(module, translator)


def test_missing_onnx_packages_give_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` raise ImportError
    model = generator_file(tmp_path, "resnet")
    result = runner.invoke(app, ["export", str(model), str(tmp_path / "g.onnx")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: exporting to ONNX needs onnx, onnxruntime, onnxscript (onnxruntime is missing): "
        "pip install -e '.[export]'"]
    assert list(tmp_path.iterdir()) == [model]


def test_export_beyond_tolerance_fails_and_writes_nothing(tmp_path, monkeypatch):
    model = generator_file(tmp_path, "resnet")
    output = tmp_path / "g.pt2"
    output.write_bytes(b"an earlier export")
    real_runner = export.pt2_runner
    # an exporter that shifts the output by 2 levels: exactly what the check must catch
    monkeypatch.setattr(export, "pt2_runner", lambda path: (lambda x, run=real_runner(path): run(x) + 2 / 127.5))
    result = runner.invoke(app, ["export", str(model), str(output), "--overwrite"])
    assert result.exit_code == 2, result.output
    assert "more than --tolerance 1: " in result.output and "not written" in result.output
    assert output.read_bytes() == b"an earlier export"  # left as it was, and no temporary beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.pt2", "resnet.safetensors"]
    # the same shift passes a tolerance above it
    result = runner.invoke(app, ["export", str(model), str(output), "--overwrite", "--tolerance", "3"])
    assert result.exit_code == 0, result.output
    assert "max difference" in result.output and "size_multiple: 4" in result.output


def test_export_refuses_bad_outputs_before_loading(tmp_path):
    model = generator_file(tmp_path, "resnet")
    result = runner.invoke(app, ["export", str(model), str(tmp_path / "g.tflite")])
    assert result.exit_code == 2 and "name the output .onnx (ONNX) or .pt2" in result.output
    (tmp_path / "g.pt2").write_bytes(b"x")
    with pytest.raises(UserError, match="exists: choose another name or add --overwrite"):
        export.export_model(ExportConfig(checkpoint=str(tmp_path / "missing"), output=str(tmp_path / "g.pt2")))


# --- the CPU's precision ----------------------------------------------------------------------------------


@pytest.mark.parametrize("capability, flags, expected", [
    ("AVX512", {"avx512f", "avx512_bf16"}, "bf16"),  # AMD Zen 4+, Intel Cooper Lake
    ("AVX512", {"avx512f", "amx_bf16", "amx_tile"}, "bf16"),  # Intel Sapphire Rapids+
    ("AVX512", {"avx512f"}, "fp32"),  # AVX-512 without bf16: emulated, slower
    ("AVX2", {"avx2", "avx512_bf16"}, "fp32"),  # PyTorch held to AVX2 kernels (ATEN_CPU_CAPABILITY)
    ("DEFAULT", set(), "fp32"),  # no /proc/cpuinfo (macOS) or another architecture
])
def test_auto_precision_picks_bf16_only_on_cpus_that_run_it(monkeypatch, capability, flags, expected):
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", cpu_has_native_bf16)  # conftest turns it off
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.setattr(runtime, "cpu_flags", lambda: flags)
    assert default_precision(CPU) == expected
    assert resolve_precision("auto", CPU) == expected
    assert resolve_precision("fp32", CPU) == "fp32"  # an explicit choice stays
    model = GeneratorSpec(arch="resnet", ngf=4, n_blocks=1)
    translator = Translator(build_generator(model), model, CPU, resolve_precision("auto", CPU))
    assert translator.precision == expected


def test_cpu_flags_are_read_from_cpuinfo():
    if not Path("/proc/cpuinfo").is_file():
        pytest.skip("no /proc/cpuinfo here")
    text = Path("/proc/cpuinfo").read_text()
    line = next((x for x in text.splitlines() if x.startswith("flags")), None)
    assert runtime.cpu_flags() == (set(line.split(":", 1)[1].split()) if line else set())


def test_bf16_on_cpu_is_close_to_fp32():
    """bf16 autocast keeps 8 bits of mantissa in the convolutions; instance norm and the output stay fp32.
    A small network with the paper's initialisation, on a smooth image, stays within 1 level on average
    and 6 at most (measured: 0.5 and 3.4)."""
    torch.manual_seed(0)
    spec = GeneratorSpec(arch="resnet", ngf=8, n_blocks=2)
    net = build_generator(spec)
    x = torch.nn.functional.interpolate(torch.rand(2, 3, 12, 12), size=(64, 96), mode="bicubic") * 2 - 1
    fp32 = Translator(net, spec, CPU, "fp32")(x)
    bf16 = Translator(net, spec, CPU, "bf16")(x)
    diff = levels(bf16, fp32)
    assert bf16.dtype == torch.float32 and bf16.shape == x.shape
    assert 0 < diff.max() < 6 and diff.mean() < 1  # 0: bf16 would not have run at all


def test_export_options_are_its_config_fields():
    import typer

    from cyclegan import config

    params = {p.name: p for p in typer.main.get_command(app).commands["export"].params}
    fields = {f.name: f for f, _ in config.option_fields(ExportConfig)}
    assert set(params) - {"paths", "pretrained"} == set(fields)
    assert all(params[name].help == f.metadata["help"] for name, f in fields.items())


def test_onnx_export_of_an_original_release_file_gives_its_outputs(tmp_path):
    """A .pth of the original release, exported, computes what the original implementation computed."""
    import numpy as np
    from conftest import shared_path

    from cyclegan.data import load_image, to_tensor

    ort = pytest.importorskip("onnxruntime")
    folder = shared_path("fixtures", "reference_generator")
    meta = json.loads((folder / "meta.json").read_text())
    result = export.export_model(ExportConfig(checkpoint=str(folder / "latest_net_G.pth"),
                                              output=str(tmp_path / "g.onnx")))
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    for i, name in enumerate(meta["outputs"]):
        x = to_tensor(load_image(folder / name)[0])[None]  # sides are multiples of 4: no padding needed
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
        assert np.abs(got - np.load(folder / f"out_{i}.npy")).max() * 127.5 < 0.05


@pytest.mark.parametrize("arch", ["full", "slim"])
@pytest.mark.parametrize("suffix", [".onnx", ".pt2"])
def test_style_network_export_takes_and_gives_its_own_range(tmp_path, suffix, arch):
    """A style network works in 0..255: the export says so, and passes its check in that range."""
    if suffix == ".onnx":
        pytest.importorskip("onnxruntime")
        onnx = pytest.importorskip("onnx")
    from cyclegan.style.fast import FastStyleSpec, TransformerNet

    torch.manual_seed(0)
    spec = FastStyleSpec(styles=["s"], arch=arch)
    model = save_network(tmp_path / "style.safetensors", TransformerNet(1, arch), spec)
    result = export.export_model(ExportConfig(checkpoint=str(model), output=str(tmp_path / f"s{suffix}")))
    assert all(c.max_levels <= TOLERANCE for c in result.checks)
    if suffix == ".onnx":
        props = {p.key: p.value for p in onnx.load(str(result.path)).metadata_props}
        assert "values in [0, 255]" in props["input"] and "pixel = round(y)" in props["output"]
