"""The one place that knows the kinds of feed-forward network, and loads any of them from any file.

Every network the toolkit runs is one of ``KINDS``, each with a spec class that says what the network
takes and builds it (the *spec protocol*): ``kind``, ``value_range`` (what it takes and returns),
``multiple`` and ``min_side`` (the sides it takes; the caller pads and crops), ``width`` (its channels at
full resolution, for memory estimates), ``exact_tiles`` (whether tiles with whole-image statistics give
the untiled output), ``build()``, ``describe()``, ``to_dict()``/``from_dict()``.

- ``generator``: the CycleGAN ResNet and U-Net generators (``models/generator.py``), [-1, 1].
- ``fast_style``: Johnson et al.'s transformer network, with conditional instance norm for several
  styles (``style/fast.py``), 0..255.
- ``adain``: Huang & Belongie's encoder, AdaIN and decoder (``style/adain.py``), [0, 1]; its files hold
  the decoder, and the encoder is the published VGG19.

``checkpoint.save_network`` writes a network with ``{"kind": ..., **spec}`` under one metadata key;
``load_network`` reads it back, and reads what earlier releases and other projects wrote: run folders,
the metadata keys of earlier releases, ``.pth`` files of the original CycleGAN release, of pytorch/examples'
fast_neural_style and of the AdaIN release (recognised by their tensors' names). Every number a file
states is bounded and every shape checked against the spec on the ``meta`` device before the real
network is allocated, so a forged file is refused without costing memory.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from torch import nn

from .catalog import adain_weights
from .checkpoint import NETWORK_KEY, read_safetensors, read_state_dict, safetensors_header
from .errors import UserError
from .models import GeneratorSpec
from .models.legacy import infer_plausible_spec, reconcile
from .style import adain, fast
from .style.adain import AdaINSpec
from .style.fast import FastStyleSpec
from .style.images import read_image, resize_long_side, to_tensor

log = logging.getLogger(__name__)

KINDS = {spec.kind: spec for spec in (GeneratorSpec, FastStyleSpec, AdaINSpec)}
# What earlier releases wrote instead of NETWORK_KEY: a key per kind (a JSON spec), or cyclegan.kind.
OLD_SPEC_KEYS = {"cyclegan.generator": "generator", "cyclegan.style_net": "fast_style"}
OLD_KIND_KEY, OLD_DECODER_KIND = "cyclegan.kind", "adain_decoder"
DIRECTIONS = ("AtoB", "BtoA")
# A run folder's networks, ours first, then those of the original release's runs: (file, directions).
RUN_FILES = (("G_AB.safetensors", ("AtoB",)), ("G_BA.safetensors", ("BtoA",)), (fast.EXPORT, ("AtoB",)),
             (adain.DECODER_FILE, ("AtoB",)), ("latest_net_G_A.pth", ("AtoB",)), ("latest_net_G_B.pth", ("BtoA",)),
             ("latest_net_G.pth", ("AtoB",)))


def network_file(source: str | Path, direction: str = "AtoB") -> Path:
    """The weights file that ``source`` (a run folder or a network file) names for ``direction``."""
    path = Path(source)
    if direction not in DIRECTIONS:
        raise UserError(f"unknown direction {direction!r}: use AtoB or BtoA")
    if not path.exists():
        raise UserError(f"checkpoint {str(path)!r} does not exist (give a run folder, .safetensors or .pth)")
    if path.is_file():
        if direction != "AtoB":
            raise UserError(f"{path} is a single network, which translates one way only: "
                            "--direction applies to run folders holding G_AB and G_BA")
        return path
    present = [(name, ways) for name, ways in RUN_FILES if (path / name).is_file()]
    for name, ways in present:
        if direction in ways:
            return path / name
    if present:
        raise UserError(f"{path} holds {present[0][0]}, which translates one way only")
    raise UserError(f"{path} holds no G_AB.safetensors: has the run saved a checkpoint yet? "
                    "(generators are exported at the end of every epoch)")


def spec_from_metadata(meta: dict[str, str], where: str):
    """The spec a safetensors file's metadata states, or None when it states none (checked, bounded)."""
    if NETWORK_KEY in meta:
        key, kind = NETWORK_KEY, None
    elif old := [k for k in OLD_SPEC_KEYS if k in meta]:
        key, kind = old[0], OLD_SPEC_KEYS[old[0]]
    elif meta.get(OLD_KIND_KEY) == OLD_DECODER_KIND:
        return AdaINSpec()
    else:
        return None
    try:
        data = json.loads(meta[key])
        if kind is None:
            kind = data.pop("kind", None) if isinstance(data, dict) else None
        elif isinstance(data, dict):
            data = {k: v for k, v in data.items() if k not in ("kind", "multiple")}  # written by earlier releases
        if kind not in KINDS:
            raise ValueError(f"unknown network kind {kind!r}; this version reads {', '.join(KINDS)}")
        return KINDS[kind].from_dict(data)
    except json.JSONDecodeError as e:
        raise UserError(f"{where}: its '{key}' metadata is not JSON ({e})") from None
    except (TypeError, ValueError) as e:
        raise UserError(f"{where}: its '{key}' metadata is not a network this version builds ({e})") from None


def spec_from_state(state: dict[str, torch.Tensor], where: str) -> tuple[object, dict[str, torch.Tensor]]:
    """The spec a state dict without metadata implies, by its tensors' names, and the state as the network
    takes it (stale buffers of old PyTorch dropped, biases the original release left out filled in)."""
    try:
        if fast.is_transformer_state(state):
            return fast.spec_from_state(state)
        if adain.is_decoder_state(state):
            return AdaINSpec(), state
        spec = infer_plausible_spec(state)
        with torch.device("meta"):
            blueprint = spec.build()
        return spec, reconcile(state, blueprint, spec)
    except UserError as e:
        raise UserError(f"{where}: {e}") from None


def check_shapes(spec, shapes: dict[str, tuple[int, ...]], where: str) -> None:
    """The file's tensor names and shapes must be exactly those of the network ``spec`` describes.

    Compared on the ``meta`` device, which builds the network without memory, so a spec that does not
    fit its tensors is refused before the real network is allocated.
    """
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in spec.build().state_dict().items()}
    missing, extra = sorted(set(expected) - set(shapes)), sorted(set(shapes) - set(expected))
    wrong = [f"{k} {list(shapes[k])} (expected {list(v)})" for k, v in expected.items()
             if k in shapes and tuple(shapes[k]) != v]
    if missing or extra or wrong:
        problems = [f"missing {missing[:3]}" if missing else "", f"unexpected {extra[:3]}" if extra else "",
                    f"shapes {', '.join(wrong[:2])}" if wrong else ""]
        raise UserError(f"{where} does not hold the {spec.describe()} it describes: "
                        f"{'; '.join(p for p in problems if p)}")


def read_network(path: Path) -> tuple[object, dict[str, torch.Tensor]]:
    """``(spec, state dict)`` of a network file: its metadata's spec, or the one its tensors imply."""
    where = str(path)
    if path.suffix.lower() == ".safetensors":
        shapes, meta = safetensors_header(path, "network file")
        spec = spec_from_metadata(meta, where)
        if spec is not None:
            check_shapes(spec, shapes, where)  # before the tensors are read
            return spec, read_safetensors(path, "network file")[0]
        state = read_safetensors(path, "network file")[0]
    else:
        state = read_state_dict(path, "network file")
    spec, state = spec_from_state(state, f"{where} (no '{NETWORK_KEY}' metadata)")
    check_shapes(spec, {k: tuple(v.shape) for k, v in state.items()}, where)
    return spec, state


def load_network(source: str | Path, direction: str = "AtoB", device: str | torch.device = "cpu",
                 encoder: str | Path | None = None) -> tuple[nn.Module, object]:
    """The network for ``direction`` in ``source`` (a run folder or a file of any kind above), in eval mode
    on ``device``, and its spec. An AdaIN decoder gets the ``encoder`` file's encoder (by default the one
    its run trained with, or the published one, downloaded once); its style is set with ``choose_style``."""
    return build_network(*read_network(network_file(source, direction)), device, encoder or run_encoder(source))


def run_encoder(source: str | Path) -> str | None:
    """The ``--vgg-weights`` an AdaIN decoder's run folder trained with (None: the published encoder)."""
    config = Path(source) / "config.json"
    try:
        weights = json.loads(config.read_text()).get("vgg_weights") if config.is_file() else None
    except (OSError, ValueError, AttributeError):
        return None
    return weights if weights and Path(weights).is_file() else None  # a run moved elsewhere: the published one


def build_network(spec, state: dict[str, torch.Tensor], device: str | torch.device = "cpu",
                  encoder: str | Path | None = None) -> tuple[nn.Module, object]:
    """The network ``spec`` describes, holding ``state`` (checked by ``read_network``)."""
    net = spec.build()
    net.load_state_dict({k: v.float() for k, v in state.items()})
    if isinstance(spec, AdaINSpec):
        net = adain.AdaIN(adain.load_encoder(encoder or adain_weights("vgg")), net)
    return net.to(device).eval().requires_grad_(False), spec


def load_adain(decoder: str | Path | None, encoder: str | Path | None = None,
               device: str | torch.device = "cpu") -> tuple[nn.Module, AdaINSpec]:
    """AdaIN with the ``decoder`` file's decoder (a run folder, ours, or the published ``decoder.pth``;
    by default the published one) and the ``encoder`` file's encoder (``load_network``); anything else in
    the file is refused."""
    decoder = decoder or adain_weights("decoder")
    try:
        spec, state = read_network(network_file(decoder))
        if not isinstance(spec, AdaINSpec):
            raise UserError(f"it holds a {spec.describe()}")
    except UserError as e:
        raise UserError(f"--decoder-weights {str(decoder)!r} is not an AdaIN decoder in the layout of the "
                        f"published AdaIN files: {e}") from None
    return build_network(spec, state, device, encoder)


def style_names(source: str | Path) -> list[str]:
    """The names of a multi-style network's styles (none for a network of one style or of another kind)."""
    spec, _ = read_network(network_file(source))
    return list(spec.styles) if isinstance(spec, FastStyleSpec) and spec.n_styles > 1 else []


def style_choice(style: str | None, style_mix: str | None) -> tuple[str, list[tuple[str, float]]] | None:
    """``--style X`` or ``--style-mix X:w,Y:w`` as ``(the option, [(X, weight), ...])``; None for neither."""
    if style and style_mix:
        raise UserError("give --style or --style-mix, not both")
    if style:
        return "--style", [(style, 1.0)]
    if not style_mix:
        return None
    pairs = []
    for part in style_mix.split(","):
        name, sep, weight = part.strip().rpartition(":")
        try:
            w = float(weight)
        except ValueError:
            w = -1.0
        if not sep or not name or not (0 <= w < float("inf")):
            raise UserError(f"--style-mix {style_mix}: write STYLE:WEIGHT pairs such as 0:0.5,2:0.5")
        pairs.append((name, w))
    if sum(w for _, w in pairs) <= 0:  # one rule for every network that mixes styles (fast ones, AdaIN)
        raise UserError(f"--style-mix {style_mix}: the weights add up to 0: give at least one style some weight")
    return "--style-mix", pairs


def choose_style(net: nn.Module, spec, style: str | None = None, style_mix: str | None = None,
                 style_side: int = adain.DEFAULT_STYLE_SIDE) -> str:
    """Apply ``--style``/``--style-mix`` to a network; returns what it paints, for the log.

    A multi-style network takes its styles by index or name; AdaIN takes style images (scaled to a long
    side of ``style_side``); a generator takes none.
    """
    choice = style_choice(style, style_mix)
    if isinstance(spec, FastStyleSpec):
        mix = fast.style_mixture(spec, *choice) if choice else fast.one_hot(0, spec.n_styles)
        net.set_style(mix)
        return " + ".join(f"{w:g}·{name}" if w < 1 else name for name, w in zip(spec.styles, mix.tolist(), strict=True)
                          if w)
    if isinstance(spec, AdaINSpec):
        if choice is None:
            raise UserError("an AdaIN decoder paints in the style of an image: give --style IMAGE")
        images = [to_tensor(resize_long_side(read_image(path, "style image"), style_side)) for path, _ in choice[1]]
        net.set_style(images, [w for _, w in choice[1]])
        total = sum(w for _, w in choice[1])
        return " + ".join(f"{w / total:g}·{Path(path).name}" if w < total else Path(path).name
                          for path, w in choice[1])
    if choice:
        raise UserError(f"{choice[0]} picks a style of a style network (cyclegan train-style) or AdaIN; this is a "
                        f"{spec.describe()}")
    return ""
