"""Saving and loading: generator exports (safetensors) and full training state (``latest.pt``).

Every write goes to a temporary file in the same folder and is renamed into place, so a crash or
Ctrl-C mid-write never leaves a truncated checkpoint. Every read is safe: safetensors, or
``torch.load(weights_only=True)``, which refuses to unpickle code.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes
from torch import nn

from .errors import UserError
from .files import atomic_write
from .models import GeneratorSpec, build_generator
from .models.legacy import generator_from_state_dict

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


DIRECTIONS = ("AtoB", "BtoA")
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
    """
    path = generator_file(checkpoint, direction)
    if path.suffix.lower() != ".safetensors":
        return load_pth_generator(path, device)
    try:
        state, meta = read_safetensors(path)
    except Exception as e:
        raise UserError(f"{path} is not a readable safetensors file ({e})") from e
    if SPEC_KEY in meta:
        return load_generator(path, device)
    try:  # weights converted from the original release without our metadata: infer as for a .pth
        net, spec = generator_from_state_dict(state)
    except UserError as e:
        raise UserError(f"{path} (no '{SPEC_KEY}' metadata): {e}") from None
    return net.to(device).eval(), spec


def load_pth_generator(path: str | Path,
                       device: str | torch.device = "cpu") -> tuple[nn.Module, GeneratorSpec]:
    """Load a generator ``.pth`` of the original release: ``(net in eval mode, inferred spec)``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"generator file {str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"{path} cannot be read as a PyTorch state dict ({type(e).__name__}: {e})") from e
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path} is not a generator state dict (a dict of tensor names to tensors)")
    try:
        net, spec = generator_from_state_dict(state)
    except UserError as e:
        raise UserError(f"{path}: {e}") from None
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
    """Read a training state safely (no code is unpickled); tensors land on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no training state at {str(path)!r}: nothing to resume")
    return torch.load(path, map_location="cpu", weights_only=True)
