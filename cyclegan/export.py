"""``cyclegan export``: a network as an ONNX model or a torch.export program, checked against PyTorch.

Any network ``translate`` loads (``networks.load_network``) can be exported, so a new kind of network
is exported with no change here.

What is exported is the network alone, for inputs ``[N, 3, H, W]`` with N, H and W free. H and W must
be multiples of the network's size multiple (4 for a ResNet, 2**num_downs for a U-Net) and at least its
smallest side: the caller pads and crops, as ``translate`` does (reflect padding, centred). The padding
stays outside the graph because its amounts depend on the input size, and neither exporter can prove
the arithmetic of padding-then-cropping for every size; the rule is short and written into the file.
Instance norm uses each image's own statistics in both formats (ONNX's ``InstanceNormalization``).

After writing, the export and the PyTorch model translate a few random images of sizes and batch sizes
not used at export time; the largest difference, in 0-255 levels, must stay within ``--tolerance`` or
nothing is written (an existing file is left as it was).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import NETWORK_KEY
from .config import ExportConfig, validate
from .errors import UserError
from .files import atomic_write
from .translate import Translator, load_translator, pad_to_multiple

log = logging.getLogger(__name__)

FORMATS = (".onnx", ".pt2")
# 18 runs on every ONNX Runtime since 1.14 (2023), TensorRT 8.6+ and OpenVINO 2023+, and is the oldest
# opset PyTorch's exporter writes; nothing in these generators needs a newer one.
ONNX_OPSET = 18
ONNX_PACKAGES = ("onnx", "onnxruntime", "onnxscript")
METADATA_FILE = "cyclegan.json"  # the conventions inside a .pt2 (ONNX keeps them in metadata_props)


@dataclass
class Check:
    """One parity check: the input's shape and the export's difference from PyTorch in 0-255 levels."""

    shape: tuple[int, ...]
    max_levels: float
    mean_levels: float


@dataclass
class Exported:
    path: Path
    conventions: dict[str, str]
    checks: list[Check]


def require_onnx() -> None:
    """One clear line when the optional packages that ONNX export needs are missing."""
    for name in ONNX_PACKAGES:
        try:
            __import__(name)
        except ImportError:
            raise UserError(f"exporting to ONNX needs {', '.join(ONNX_PACKAGES)} ({name} is missing): "
                            "pip install -e '.[export]'") from None


def value_range(translator: Translator) -> tuple[float, float]:
    """The range the network takes and returns (its spec's): [-1, 1], 0..255 or [0, 1]."""
    return translator.spec.value_range


def conventions(translator: Translator) -> dict[str, str]:
    """How to call the exported network: written into the file and printed."""
    m, s = translator.multiple, translator.min_side
    low, high = value_range(translator)
    scale = 255 / (high - low)
    if (low, high) == (-1.0, 1.0):
        values, back = "values in [-1, 1]: pixel / 127.5 - 1", "pixel = round((y + 1) * 127.5)"
    elif scale == 1:
        values, back = f"values in [{low:g}, {high:g}]: the pixel values themselves", "pixel = round(y)"
    else:
        values, back = f"values in [{low:g}, {high:g}]: pixel / {scale:g}", f"pixel = round(y * {scale:g})"
    spec = translator.spec
    return {
        NETWORK_KEY: json.dumps({"kind": spec.kind, **spec.to_dict()}),
        "input": f"float32 [N, 3, H, W], RGB, NCHW, {values}",
        "output": f"float32 [N, 3, H, W], RGB, NCHW, the same range: {back}, clamped to 0..255",
        "size_multiple": str(m),
        "min_side": str(s),
        "padding": f"H and W must be multiples of {m} and at least {s}: pad the image with reflect padding "
                   f"to the next multiple of {m} and to {s} (half the padding before, the rest after; edge "
                   "replication where the image is smaller than the padding) and crop the output back to the image",
    }


def check_inputs(translator: Translator) -> list[torch.Tensor]:
    """Smooth random images, in batch sizes and sizes other than the export example's (see ``example``)."""
    a = max(translator.min_side, 64)
    generator = torch.Generator().manual_seed(0)
    images = []
    for n, h, w in ((1, 2 * a + 37, a + 13), (3, a + 2, 3 * a - 5)):
        coarse = torch.rand(n, 3, h // 8 + 2, w // 8 + 2, generator=generator)
        image = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)
        image = image + 0.05 * torch.randn(n, 3, h, w, generator=generator)
        images.append(image.mul(2).sub(1).clamp(-1, 1))
    return images


def example(translator: Translator) -> tuple[torch.Tensor, dict]:
    """The input traced at export time, and the free dimensions of the exported graph.

    The example is twice the smallest side: at the smallest side a U-Net's innermost feature map is 1×1,
    and export would fix that dimension instead of leaving it free. The sizes are left for the exporter to
    bound (``Dim.AUTO``): it checks at run time what it cannot prove, such as the size a pooling that rounds
    up gives.
    """
    side = max(2 * translator.min_side, 64)
    low, high = value_range(translator)
    x = torch.zeros(2, 3, side, side).uniform_(low, high)
    auto = torch.export.Dim.AUTO
    return x, {"x": {0: auto, 2: auto, 3: auto}}


def run_padded(run, x: torch.Tensor, multiple: int, min_side: int) -> torch.Tensor:
    """What a caller of the export does: pad as the conventions say, run, crop."""
    h, w = x.shape[-2:]
    padded, (top, left) = pad_to_multiple(x, multiple, min_side)
    return run(padded)[..., top:top + h, left:left + w]


def write_onnx(net: nn.Module, translator: Translator, opset: int, path: Path) -> None:
    import onnx  # the optional export extra

    x, shapes = example(translator)
    quiet = log.getEffectiveLevel() > logging.DEBUG
    for name in ("onnxscript", "onnx_ir"):  # the graph optimiser logs every rewrite at INFO
        logging.getLogger(name).setLevel(logging.WARNING if quiet else logging.DEBUG)
    with contextlib.redirect_stdout(io.StringIO()) as chatter:  # the exporter prints its progress
        program = torch.onnx.export(net, (x,), dynamo=True, opset_version=opset, dynamic_shapes=shapes,
                                    input_names=["image"], output_names=["translated"], verbose=False)
    log.debug(chatter.getvalue())
    model = program.model_proto
    for key, value in conventions(translator).items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    with open(path, "wb") as f:  # from Python, so that a full disk is an OSError atomic_write reports
        f.write(model.SerializeToString())


def onnx_runner(path: Path):
    import onnxruntime  # the optional export extra

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: torch.from_numpy(session.run(None, {name: x.numpy()})[0])


def write_pt2(net: nn.Module, translator: Translator, path: Path) -> None:
    x, shapes = example(translator)
    program = torch.export.export(net, (x,), dynamic_shapes=shapes)
    with open(path, "wb") as f:
        torch.export.save(program, f, extra_files={METADATA_FILE: json.dumps(conventions(translator))})


def pt2_runner(path: Path):
    with open(path, "rb") as f:  # a file object: load() wants a name ending .pt2, and ours is a temporary
        module = torch.export.load(f).module()
    return lambda x: module(x)


def parity(run, translator: Translator) -> list[Check]:
    """The export (``run``, called as its conventions say) against ``translator`` on ``check_inputs``."""
    checks = []
    low, high = value_range(translator)
    scale = (high - low) / 2  # the export works in the network's range; the translator in [-1, 1]
    with torch.inference_mode():
        for x in check_inputs(translator):
            expected = translator(x)
            got = run_padded(run, (x + 1) * scale + low, translator.multiple, translator.min_side).float()
            got = (got - low) / scale - 1
            levels = (got.clamp(-1, 1) - expected.clamp(-1, 1)).abs() * 127.5
            checks.append(Check(tuple(x.shape), levels.max().item(), levels.mean().item()))
    return checks


def export_model(cfg: ExportConfig) -> Exported:
    """Export ``cfg.checkpoint`` to ``cfg.output`` (.onnx or .pt2) and check it against PyTorch."""
    validate(cfg)
    output = Path(cfg.output)
    if output.exists() and not cfg.overwrite:
        raise UserError(f"{output} exists: choose another name or add --overwrite")
    fmt = output.suffix.lower()
    if fmt == ".onnx":
        require_onnx()
    # fp32 on the CPU: the reference every runtime is compared with, and what exporters trace best
    translator = load_translator(cfg.checkpoint, cfg.direction, device="cpu", precision="fp32",
                                 channels_last=False, style=cfg.style, style_mix=cfg.style_mix, encoder=cfg.vgg_weights)
    net = translator.base
    checks: list[Check] = []

    def write(tmp: Path) -> None:
        if fmt == ".onnx":
            write_onnx(net, translator, cfg.opset, tmp)
            run = onnx_runner(tmp)
        else:
            write_pt2(net, translator, tmp)
            run = pt2_runner(tmp)
        checks.extend(parity(run, translator))
        worst = max(checks, key=lambda c: c.max_levels)
        if not worst.max_levels <= cfg.tolerance:  # also catches NaN
            raise UserError(f"the export differs from PyTorch by up to {worst.max_levels:.3g} levels (of 255) "
                            f"on a {'×'.join(map(str, worst.shape))} input, more than --tolerance "
                            f"{cfg.tolerance:g}: {output} not written")

    atomic_write(output, write)  # the file appears only once it has passed the checks
    return Exported(output, conventions(translator), checks)
