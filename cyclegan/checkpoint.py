"""Saving and loading: generator exports (safetensors) and full training state (``latest.pt``).

Every write goes to a temporary file in the same folder and is renamed into place, so a crash or
Ctrl-C mid-write never leaves a truncated checkpoint. Every read is safe: safetensors, or
``read_torch_file`` (``torch.load(weights_only=True)``, which refuses to unpickle code, with the sizes
of a forged or damaged file checked before anything is allocated).
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes
from torch import nn

from .errors import UserError
from .files import atomic_write
from .models import GeneratorSpec, build_generator
from .models.legacy import describe, generator_from_state_dict

SPEC_KEY = "cyclegan.generator"


def save_generator(path: str | Path, net: nn.Module, spec: GeneratorSpec, metadata: dict | None = None) -> Path:
    """Export generator weights with the architecture in the file's metadata, so loading needs no flags."""
    net = getattr(net, "_orig_mod", net)  # torch.compile wrapper
    net = getattr(net, "module", net)  # DistributedDataParallel wrapper
    tensors = {k: v.detach().float().contiguous().cpu() for k, v in net.state_dict().items()}
    meta = {SPEC_KEY: json.dumps(spec.to_dict())}
    meta.update({k: str(v) for k, v in (metadata or {}).items()})
    data = safetensors_bytes(tensors, metadata=meta)
    return atomic_write(path, lambda tmp: _write_bytes(tmp, data))


def _write_bytes(path: Path, data: bytes) -> None:
    # Written from Python (not by a library's native code) so that a full disk surfaces as an OSError.
    with open(path, "wb") as f:
        f.write(data)


# -- reading files safely ----------------------------------------------------------------------------
#
# Model files come from the internet and from other people, so every read assumes a forged file: torch.load
# runs with weights_only (no code is unpickled), sizes are checked against the file before anything is
# allocated, and every problem becomes a one-line UserError naming the file.

MAX_FILE_BYTES = 4 << 30  # far above any file this project reads (VGG19 with its classifier: 548 MB)
TRAINING_STATE_KEYS = ("trainer", "rng", "step", "epoch", "batch_in_epoch")


def _existing_file(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} {str(path)!r} does not exist")
    size = path.stat().st_size
    if size == 0:
        raise UserError(f"{what} {str(path)!r} is empty: it was damaged (an interrupted copy?)")
    if size > MAX_FILE_BYTES:
        raise UserError(f"{what} {str(path)!r} is {size / 2**30:.1f} GiB, too big to be one of the model files "
                        f"read here (at most {MAX_FILE_BYTES >> 30} GiB)")
    return path


def _check_zip(path: Path, what: str) -> None:
    """A torch.save zip must hold no more bytes than the file: its records are stored, not compressed,
    and a truncated file has no central directory. Checked before torch's own reader sees the file."""
    try:
        with zipfile.ZipFile(path) as zf:
            unpacked = sum(info.file_size for info in zf.infolist())
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise UserError(f"{what} {str(path)!r} is damaged or truncated ({e})") from None
    if unpacked > path.stat().st_size:
        raise UserError(f"{what} {str(path)!r} unpacks to {unpacked} bytes from {path.stat().st_size}: "
                        "not a file torch.save wrote")


def _tensors(obj) -> Iterator[torch.Tensor]:
    """Every tensor in a loaded object (state dicts nest dicts, lists and tuples)."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _tensors(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from _tensors(value)


def check_tensor_sizes(obj, where: str) -> None:
    """Refuse tensors that claim more elements than the bytes behind them.

    A view with a zero stride (``torch.zeros(1).expand(10**6, 10**6)``) saves as a few bytes and turns
    into terabytes once copied, and so does one storage shared by many views. Each tensor must lie inside
    its own storage without overlapping itself, and all of them together must fit in the storages.
    """
    storages: dict[tuple[int, int], int] = {}
    claimed = 0
    for t in _tensors(obj):
        storage = t.untyped_storage()
        have = storage.nbytes()
        storages[(storage.data_ptr(), have)] = have
        if t.numel() == 0:
            continue
        dims = [(n, st) for n, st in zip(t.shape, t.stride(), strict=True) if n > 1]
        if any(st <= 0 for _, st in dims) or len({st for _, st in dims}) < len(dims):
            raise UserError(f"{where} holds a tensor of shape {list(t.shape)} with strides {list(t.stride())}: "
                            "its elements overlap, as in a forged file")
        last = t.storage_offset() + sum((n - 1) * st for n, st in dims)
        nbytes = t.numel() * t.element_size()
        if (last + 1) * t.element_size() > have or nbytes > have:
            raise UserError(f"{where} holds a tensor of shape {list(t.shape)} ({nbytes} bytes) backed by "
                            f"{have} bytes: the file is damaged or forged")
        claimed += nbytes
    if claimed > sum(storages.values()):
        raise UserError(f"{where}: its tensors claim {claimed} bytes from {sum(storages.values())} bytes of "
                        "data (views sharing storage): the file is damaged or forged")


def read_torch_file(path: str | Path, what: str = "weights file"):
    """``torch.load`` made safe for files from anywhere: no code unpickled, sizes checked, one-line errors.

    The one reader of ``.pth``/``.pt`` weights and training states. Zip files (everything torch.save
    wrote since PyTorch 1.6) are memory-mapped, so their tensors cost no memory until used.
    """
    path = _existing_file(path, what)
    is_zip = zipfile.is_zipfile(path)
    if is_zip:
        _check_zip(path, what)
    try:
        # Old files (the original release's pretrained models) predate the zip format and cannot be mapped.
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except Exception as e:
        message = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise UserError(f"{what} {str(path)!r} cannot be read as a PyTorch file ({type(e).__name__}: "
                        f"{message[:200]})") from None
    check_tensor_sizes(obj, f"{what} {str(path)!r}")
    return obj


def read_state_dict(path: str | Path, what: str = "weights file") -> dict[str, torch.Tensor]:
    """A state dict (tensor names → tensors) read by ``read_torch_file``; other entries are dropped."""
    state = read_torch_file(path, what)
    if not isinstance(state, dict) or not any(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{what} {str(path)!r} holds a {type(state).__name__} without tensors, not a state dict")
    return {k: v for k, v in state.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}


def _spec_from_metadata(meta: dict[str, str], path: Path) -> GeneratorSpec:
    try:
        return GeneratorSpec.from_dict(json.loads(meta[SPEC_KEY]))
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: its '{SPEC_KEY}' metadata is not JSON ({e})") from None
    except (TypeError, ValueError) as e:
        raise UserError(f"{path}: its '{SPEC_KEY}' metadata is not a generator this version builds ({e})") from None


def check_shapes(spec: GeneratorSpec, shapes: dict[str, tuple[int, ...]], where: str) -> None:
    """The file's tensor names and shapes must be exactly those of the generator ``spec`` describes.

    Compared on the ``meta`` device, which builds the network without memory, so a spec that does not
    fit its tensors is refused before the real network is allocated.
    """
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in build_generator(spec, init_type=None).state_dict().items()}
    missing, extra = sorted(set(expected) - set(shapes)), sorted(set(shapes) - set(expected))
    wrong = [f"{k} {list(shapes[k])} (expected {list(v)})" for k, v in expected.items()
             if k in shapes and tuple(shapes[k]) != v]
    if missing or extra or wrong:
        problems = [f"missing {missing[:3]}" if missing else "", f"unexpected {extra[:3]}" if extra else "",
                    f"shapes {', '.join(wrong[:2])}" if wrong else ""]
        raise UserError(f"{where} does not hold the generator {describe(spec)} its metadata describes: "
                        f"{'; '.join(p for p in problems if p)}")


def _open_safetensors(path: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """Tensor shapes and metadata of a safetensors file, reading no tensor data."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}, dict(f.metadata() or {})
    except Exception as e:
        raise UserError(f"{path} is not a readable safetensors file ({e})") from None


def read_safetensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    path = _existing_file(path, "generator file")
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    except Exception as e:
        raise UserError(f"{path} is not a readable safetensors file ({e})") from None


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, GeneratorSpec]:
    """Load a generator exported by ``save_generator``: returns ``(net in eval mode, spec)``."""
    path = _existing_file(path, "generator file")
    shapes, meta = _open_safetensors(path)
    if SPEC_KEY not in meta:
        raise UserError(f"{path} has no '{SPEC_KEY}' metadata: it was not written by cyclegan")
    spec = _spec_from_metadata(meta, path)
    check_shapes(spec, shapes, str(path))
    state, _ = read_safetensors(path)
    net = build_generator(spec, init_type=None)
    net.load_state_dict(state)
    return net.to(device).eval(), spec


DIRECTIONS = ("AtoB", "BtoA")
STYLE_NET_FILE = "style.safetensors"  # the export of a `cyclegan train-style` run
# The weights for each direction in a run folder: ours first, then those of the original release's runs.
RUN_GENERATORS = {
    "AtoB": ("G_AB.safetensors", "latest_net_G_A.pth"),
    "BtoA": ("G_BA.safetensors", "latest_net_G_B.pth"),
}


def generator_file(checkpoint: str | Path, direction: str = "AtoB") -> Path:
    """The weights file that ``checkpoint`` (a run folder or a generator file) names for ``direction``."""
    path = Path(checkpoint)
    if direction not in DIRECTIONS:
        raise UserError(f"unknown direction {direction!r}: use AtoB or BtoA")
    if not path.exists():
        raise UserError(f"checkpoint {str(path)!r} does not exist (give a run folder, .safetensors or .pth)")
    if path.is_file():
        if direction != "AtoB":
            raise UserError(f"{path} is a single generator, which translates one way only: "
                            "--direction applies to run folders holding G_AB and G_BA")
        return path
    if (path / STYLE_NET_FILE).is_file():  # a train-style run: one network, one way
        if direction != "AtoB":
            raise UserError(f"{path} holds a style network ({STYLE_NET_FILE}), which translates one way only")
        return path / STYLE_NET_FILE
    for name in RUN_GENERATORS[direction]:
        if (path / name).is_file():
            return path / name
    if (path / "latest_net_G.pth").is_file():  # an official pretrained model: one direction only
        if direction != "AtoB":
            raise UserError(f"{path} holds one generator (latest_net_G.pth), which translates one way only")
        return path / "latest_net_G.pth"
    raise UserError(f"{path} holds no {RUN_GENERATORS[direction][0]}: has the run saved a checkpoint yet? "
                    "(generators are exported at the end of every epoch)")


def load_any_generator(checkpoint: str | Path, direction: str = "AtoB",
                       device: str | torch.device = "cpu") -> tuple[nn.Module, GeneratorSpec]:
    """Load the generator for ``direction`` from a run folder, a ``.safetensors`` export, or a ``.pth``
    of the original PyTorch CycleGAN release (architecture inferred from its keys): ``(net.eval(), spec)``.

    Style networks load here too (``spec`` is then a ``StyleNetSpec``): ``train-style`` runs and exports,
    and pytorch/examples' fast_neural_style ``.pth`` files, recognised by their keys.
    """
    path = generator_file(checkpoint, direction)
    if path.suffix.lower() != ".safetensors":
        return load_pth_generator(path, device)
    _, meta = _open_safetensors(_existing_file(path, "generator file"))
    if SPEC_KEY in meta:
        return load_generator(path, device)
    state, _ = read_safetensors(path)
    if STYLE_SPEC_KEY in meta or _is_style_state(state):
        return _style_net(state, meta.get(STYLE_SPEC_KEY), path, device)
    try:  # weights converted from the original release without our metadata: infer as for a .pth
        net, spec = generator_from_state_dict(state)
    except UserError as e:
        raise UserError(f"{path} (no '{SPEC_KEY}' metadata): {e}") from None
    return net.to(device).eval(), spec


def load_pth_generator(path: str | Path,
                       device: str | torch.device = "cpu") -> tuple[nn.Module, GeneratorSpec]:
    """Load a generator ``.pth`` of the original release: ``(net in eval mode, inferred spec)``."""
    state = read_torch_file(path, "generator file")
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path} is not a generator state dict (a dict of tensor names to tensors)")
    if _is_style_state(state):  # pytorch/examples' fast_neural_style networks
        return _style_net(state, None, Path(path), device)
    try:
        net, spec = generator_from_state_dict(state)
    except UserError as e:
        raise UserError(f"{path}: {e}") from None
    return net.to(device).eval(), spec


STYLE_SPEC_KEY = "cyclegan.style_net"


def _is_style_state(state: dict) -> bool:
    from .style.fast import is_transformer_state

    return is_transformer_state(state)


def _style_net(state: dict, spec_json: str | None, path: Path, device):
    """A fast style network (``style.fast.TransformerNet``) from its tensors and its metadata's spec."""
    from .style.fast import StyleNetSpec, transformer_from_state_dict

    spec = None
    if spec_json is not None:
        try:
            spec = StyleNetSpec.from_dict(json.loads(spec_json))
        except (json.JSONDecodeError, TypeError, ValueError) as e:
            raise UserError(f"{path}: its '{STYLE_SPEC_KEY}' metadata is not a style network ({e})") from None
    net, spec = transformer_from_state_dict(state, spec, where=str(path))
    return net.to(device).eval(), spec


def save_state(path: str | Path, state: dict) -> Path:
    """Write a training state dict (tensors, numbers, strings, lists, dicts) atomically.

    ``torch.save`` writes into a Python file object, so a full or read-only disk raises a plain
    ``OSError``, which ``atomic_write`` turns into a one-line ``DiskError`` naming ``path``.
    """

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            torch.save(state, f)

    return atomic_write(path, write)


def load_state(path: str | Path) -> dict:
    """Read a training state safely (see ``read_torch_file``); tensors land on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no training state at {str(path)!r}: nothing to resume")
    state = read_torch_file(path, "training state")
    missing = [k for k in TRAINING_STATE_KEYS if k not in state] if isinstance(state, dict) else None
    if missing is None or missing or not isinstance(state["trainer"], dict):
        what = f"lacks {', '.join(missing)}" if missing else "is not a training state"
        raise UserError(f"training state {str(path)!r} {what}: it was not written by `cyclegan train` or is "
                        "damaged; delete it to start the run afresh")
    return state
