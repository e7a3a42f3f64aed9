"""Reading and writing weights and training states safely, for every network and training command.

Every write goes to a temporary file in the same folder and is renamed into place, so a crash or
Ctrl-C mid-write never leaves a truncated checkpoint. Every read is safe: safetensors, or
``read_torch_file`` (``torch.load(weights_only=True)``, which refuses to unpickle code, with the sizes
of a forged or damaged file checked before anything is allocated). What the files hold (which network,
built how) is ``networks.py``'s business: this module imports no model.
"""

from __future__ import annotations

import json
import pickle
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes

from .errors import UserError
from .files import atomic_write

NETWORK_KEY = "cyclegan.network"  # safetensors metadata: {"kind": ..., and the spec}; networks.py reads it


def save_network(path: str | Path, net: torch.nn.Module, spec, metadata: dict | None = None) -> Path:
    """Export a network's weights with what it is, ``spec.kind`` and ``spec.to_dict()``, in the file's
    metadata under one key, so loading it needs no flags (``networks.load_network``)."""
    net = getattr(net, "_orig_mod", net)  # torch.compile wrapper
    net = getattr(net, "module", net)  # DistributedDataParallel wrapper
    meta = {NETWORK_KEY: json.dumps({"kind": spec.kind, **spec.to_dict()})}
    meta.update({k: str(v) for k, v in (metadata or {}).items()})
    return save_tensors(path, net.state_dict(), meta)


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> Path:
    """Write tensors (as float32, on the CPU) and string metadata as a safetensors file, atomically."""
    data = safetensors_bytes({k: v.detach().float().contiguous().cpu() for k, v in tensors.items()},
                             metadata=metadata)

    def write(tmp: Path) -> None:  # from Python (not a library's native code): a full disk is an OSError
        with open(tmp, "wb") as f:
            f.write(data)

    return atomic_write(path, write)


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
        with warnings.catch_warnings():  # torch's notes on pickle protocols: the error below says it all
            warnings.simplefilter("ignore", UserWarning)
            # Old files (the original release's pretrained models) predate the zip format and cannot be mapped.
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except Exception as e:
        message = str(e).strip().splitlines()[0] if str(e).strip() else ""
        if isinstance(e, pickle.UnpicklingError) or "weights_only" in str(e):
            raise UserError(f"{what} {str(path)!r} is not a weights file this tool reads ({_refusal(str(e))}): "
                            "files are read without running any code they hold") from None
        raise UserError(f"{what} {str(path)!r} cannot be read as a PyTorch file ({type(e).__name__}: "
                        f"{message[:200]})") from None
    check_tensor_sizes(obj, f"{what} {str(path)!r}")
    return obj


def _refusal(text: str) -> str:
    """What torch's weights-only unpickler refused, without its advice to load with ``weights_only=False``
    (that would run whatever code the file holds) or its pointers to the documentation."""
    text = text.split("WeightsUnpickler error:", 1)[-1]
    lines = [line.strip() for line in text.splitlines() if line.strip() and "weights_only" not in line
             and not line.startswith(("Weights only load failed", "Check the documentation"))]
    detail = lines[0] if lines else "objects other than tensors"
    return detail.split(" was not an allowed global")[0].split(". ")[0].rstrip(".")[:160]


def read_state_dict(path: str | Path, what: str = "weights file") -> dict[str, torch.Tensor]:
    """A state dict (tensor names → tensors) read by ``read_torch_file``; other entries are dropped."""
    state = read_torch_file(path, what)
    if not isinstance(state, dict) or not any(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{what} {str(path)!r} holds a {type(state).__name__} without tensors, not a state dict")
    return {k: v for k, v in state.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}


def safetensors_header(path: str | Path, what: str = "weights file"
                       ) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """Tensor shapes and metadata of a safetensors file, reading no tensor data."""
    path = _existing_file(path, what)
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}, dict(f.metadata() or {})
    except Exception as e:
        raise UserError(f"{what} {str(path)!r} is not a readable safetensors file ({e})") from None


def read_safetensors(path: str | Path, what: str = "weights file") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and metadata of a safetensors file."""
    path = _existing_file(path, what)
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    except Exception as e:
        raise UserError(f"{what} {str(path)!r} is not a readable safetensors file ({e})") from None


def save_state(path: str | Path, state: dict) -> Path:
    """Write a training state dict (tensors, numbers, strings, lists, dicts) atomically.

    ``torch.save`` writes into a Python file object, so a full or read-only disk raises an ``OSError``,
    which ``atomic_write`` turns into a one-line ``DiskError`` naming ``path``. When the disk fills part way,
    torch's zip writer then fails to close the archive and raises a ``RuntimeError`` of its own over the
    ``OSError``: the ``OSError`` is what happened, so it is what goes on.
    """

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            try:
                torch.save(state, f)
            except RuntimeError as e:
                if isinstance(e.__context__, OSError):
                    raise e.__context__ from None
                raise

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
