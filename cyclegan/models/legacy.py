"""Generators saved by the original PyTorch CycleGAN/pix2pix release (``latest_net_G_A.pth`` and the
official pretrained models): infer the architecture from the state dict alone and load it.

Those files hold a bare state dict and nothing else, so the architecture is read off the keys and
shapes: ``model.1.weight`` is the ResNet stem ([ngf, in, 7, 7]), ``model.K.conv_block...`` the residual
blocks, and ``model.model.0...`` the outermost U-Net level with the inner levels nested under
``.model.1.`` and then ``.model.3.``. The norm shows in the parameters: batch norm has weights and
running statistics, instance norm has none (the release builds it without affine parameters and gives
its convolutions a bias), and ``none`` has neither norm parameters nor convolution biases.

Checkpoints written with PyTorch 0.3 carry ``running_mean``/``running_var`` buffers for instance norm
layers that never used them (0.4 added ``num_batches_tracked``); they are dropped, as the release itself
does when it loads them. Reading the file is ``networks.load_network``'s job.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from ..errors import UserError
from .generator import GeneratorSpec

STALE_NORM_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")
WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DataParallel / DDP and torch.compile wrappers


def strip_wrappers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for prefix in WRAPPER_PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def _norm_of(state: dict[str, torch.Tensor], norm_prefix: str, conv_prefix: str) -> str:
    """The norm of a layer, from its parameters and from whether the convolution before it has a bias."""
    if f"{norm_prefix}weight" in state:
        return "batch"
    if f"{conv_prefix}bias" in state:
        return "instance"  # instance norm without affine parameters: only the stale buffers, if anything
    return "none"


def _infer_resnet(state: dict[str, torch.Tensor]) -> GeneratorSpec:
    stem = state["model.1.weight"]
    blocks = sorted({int(m.group(1)) for k in state if (m := re.match(r"model\.(\d+)\.conv_block\.", k))})
    if blocks != list(range(10, 10 + len(blocks))):
        raise UserError(f"residual blocks at unexpected positions {blocks} (expected model.10, model.11 ...)")
    # A block with dropout has [pad, conv, norm, relu, dropout, pad, conv, norm]: its second conv moves to 6.
    # (Without dropout, a batch norm sits at 6: its weight is 1-D.)
    second = state.get("model.10.conv_block.6.weight")
    dropout = second is not None and second.ndim == 4
    last = f"model.{10 + len(blocks) + 7}.weight"
    if last not in state:
        raise UserError(f"no output convolution {last!r} after {len(blocks)} residual blocks")
    return GeneratorSpec(
        arch="resnet", ngf=stem.shape[0], n_blocks=len(blocks), norm=_norm_of(state, "model.2.", "model.1."),
        dropout=dropout, in_channels=stem.shape[1], out_channels=state[last].shape[0],
    )


def _infer_unet(state: dict[str, torch.Tensor]) -> GeneratorSpec:
    stem, head = state["model.model.0.weight"], state["model.model.3.weight"]  # head: [2*ngf, out, 4, 4]
    depth, prefix = 1, "model.model.1."
    # Each inner level has its down-convolution at .model.1 and its own inner level at .model.3.
    while f"{prefix}model.1.weight" in state:
        depth += 1
        prefix += "model.3."
    if depth < 5:
        raise UserError(f"a U-Net with {depth} levels; the release builds at least 5")
    norm = _norm_of(state, "model.model.1.model.2.", "model.model.1.model.1.")
    # Dropout in the U-Net comes after every parameterised layer, so it leaves no trace in the keys;
    # it is inactive at inference anyway.
    return GeneratorSpec(arch="unet", ngf=stem.shape[0], num_downs=depth, norm=norm,
                         in_channels=stem.shape[1], out_channels=head.shape[1])


def infer_spec(state: dict[str, torch.Tensor]) -> GeneratorSpec:
    """The ``GeneratorSpec`` of a state dict in the original release's key layout."""
    state = strip_wrappers(state)
    stem = state.get("model.1.weight")
    if stem is not None and stem.ndim == 4 and tuple(stem.shape[2:]) == (7, 7):
        return _infer_resnet(state)
    if "model.model.0.weight" in state and "model.model.3.weight" in state:
        return _infer_unet(state)
    sample = ", ".join(list(state)[:4])
    raise UserError(f"not a ResNet or U-Net generator state dict of the CycleGAN release (keys: {sample}...)")


def infer_plausible_spec(state: dict[str, torch.Tensor]) -> GeneratorSpec:
    """``infer_spec``, refusing sizes no real generator has (shapes are cheap to forge; memory is not)."""
    spec = infer_spec(state)
    try:
        return spec.check()
    except ValueError as e:
        raise UserError(f"the tensors describe an implausible generator: {e}") from None


def reconcile(state: dict[str, torch.Tensor], net: nn.Module, spec: GeneratorSpec) -> dict[str, torch.Tensor]:
    """Adapt an original-release state dict to ``net``: drop stale norm buffers, fill what it left out.

    Filled in: zero biases where the release built a convolution without one (``norm=none``), and
    ``num_batches_tracked`` of batch norm layers saved before PyTorch 0.4. Both leave outputs unchanged.
    """
    expected = net.state_dict()  # ``net`` may live on the meta device: only names and shapes are used
    state = {k: v for k, v in strip_wrappers(state).items()
             if k in expected or k.rsplit(".", 1)[-1] not in STALE_NORM_BUFFERS}
    for key, value in expected.items():
        if key in state:
            continue
        if key.endswith(".num_batches_tracked") or (key.endswith(".bias") and spec.norm == "none"):
            state[key] = torch.zeros(value.shape, dtype=value.dtype)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise UserError(
            f"the weights do not fit the inferred {spec.describe()}: "
            f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}"
        )
    return state
