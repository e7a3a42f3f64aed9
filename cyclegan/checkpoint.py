"""Saving and loading: generator exports (safetensors) and full training state (``latest.pt``).

Every write goes to a temporary file in the same folder and is renamed into place, so a crash or
Ctrl-C mid-write never leaves a truncated checkpoint. Every read is safe: safetensors, or
``torch.load(weights_only=True)``, which refuses to unpickle code.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from .errors import UserError
from .models import GeneratorSpec, build_generator

SPEC_KEY = "cyclegan.generator"


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and then rename the finished file onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | Path, data: dict) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, default=str) + "\n"))


def save_generator(path: str | Path, net: nn.Module, spec: GeneratorSpec, metadata: dict | None = None) -> Path:
    """Export generator weights with the architecture in the file's metadata, so loading needs no flags."""
    net = getattr(net, "_orig_mod", net)  # torch.compile wrapper
    net = getattr(net, "module", net)  # DistributedDataParallel wrapper
    tensors = {k: v.detach().float().contiguous().cpu() for k, v in net.state_dict().items()}
    meta = {SPEC_KEY: json.dumps(spec.to_dict())}
    meta.update({k: str(v) for k, v in (metadata or {}).items()})
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def read_safetensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, GeneratorSpec]:
    """Load a generator exported by ``save_generator``: returns ``(net in eval mode, spec)``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"generator file {str(path)!r} does not exist")
    try:
        state, meta = read_safetensors(path)
    except Exception as e:
        raise UserError(f"{path} is not a readable safetensors file ({e})") from e
    if SPEC_KEY not in meta:
        raise UserError(f"{path} has no '{SPEC_KEY}' metadata: it was not written by cyclegan")
    spec = GeneratorSpec.from_dict(json.loads(meta[SPEC_KEY]))
    net = build_generator(spec, init_type=None)
    net.load_state_dict(state)
    return net.to(device).eval(), spec


def save_state(path: str | Path, state: dict) -> Path:
    """Write a training state dict (tensors, numbers, strings, lists, dicts) atomically."""
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_state(path: str | Path) -> dict:
    """Read a training state safely (no code is unpickled); tensors land on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no training state at {str(path)!r}: nothing to resume")
    return torch.load(path, map_location="cpu", weights_only=True)
