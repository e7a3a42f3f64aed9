"""The official CycleGAN datasets and pretrained generators, the domain names they hold, and presets.

This module is the catalog (data) plus the lookups that turn names into folders and files:
``--domainA photos --domainB monet`` → the two halves of monet2photo, ``--preset painting --style
vangogh`` → the ``style_vangogh`` generator. Fetching is left to ``download.py``, which is the only
module that touches the network.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .download import cached_download, install_dataset, is_dataset, verify_sha256
from .errors import UserError
from .files import atomic_write

# Where the authors of the paper publish the data and weights; mirrors (or a local folder served over
# HTTP, or a file:// URL) replace them through the environment.
DATASETS_URL = "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets"
MODELS_URL = "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models"
DEFAULT_DATA_DIR = "datasets"
DEFAULT_MODELS_DIR = "checkpoints/pretrained"

# The folders of an extracted dataset; A and B are the two domains.
LAYOUT = ("trainA", "trainB", "testA", "testB")


@dataclass(frozen=True)
class Dataset:
    """An official dataset: ``a`` and ``b`` are the domain names of its ``trainA/`` and ``trainB/``."""

    name: str
    a: str
    b: str
    about: str


@dataclass(frozen=True)
class Pretrained:
    """An official pretrained generator: one network that turns ``source`` images into ``target`` ones."""

    name: str
    source: str
    target: str
    dataset: str | None  # what it was trained on (cityscapes is not downloadable without registration)


DATASETS: dict[str, Dataset] = {d.name: d for d in (
    Dataset("apple2orange", "apple", "orange", "apples ↔ oranges (ImageNet)"),
    Dataset("summer2winter_yosemite", "summer", "winter", "Yosemite in summer ↔ in winter (Flickr)"),
    Dataset("horse2zebra", "horse", "zebra", "horses ↔ zebras (ImageNet)"),
    Dataset("monet2photo", "monet", "photo", "Monet paintings ↔ landscape photos (Flickr)"),
    Dataset("cezanne2photo", "cezanne", "photo", "Cézanne paintings ↔ landscape photos (Flickr)"),
    Dataset("ukiyoe2photo", "ukiyoe", "photo", "ukiyo-e prints ↔ landscape photos (Flickr)"),
    Dataset("vangogh2photo", "vangogh", "photo", "Van Gogh paintings ↔ landscape photos (Flickr)"),
    Dataset("maps", "satellite", "map", "aerial photos ↔ Google Maps tiles"),
    Dataset("facades", "facade", "label", "building facades ↔ their label maps (CMP Facades)"),
    Dataset("iphone2dslr_flower", "iphone", "dslr", "flower photos: iPhone ↔ DSLR (shallow depth of field)"),
)}

PRETRAINED: dict[str, Pretrained] = {m.name: m for m in (
    Pretrained("apple2orange", "apple", "orange", "apple2orange"),
    Pretrained("orange2apple", "orange", "apple", "apple2orange"),
    Pretrained("summer2winter_yosemite", "summer", "winter", "summer2winter_yosemite"),
    Pretrained("winter2summer_yosemite", "winter", "summer", "summer2winter_yosemite"),
    Pretrained("horse2zebra", "horse", "zebra", "horse2zebra"),
    Pretrained("zebra2horse", "zebra", "horse", "horse2zebra"),
    Pretrained("monet2photo", "monet", "photo", "monet2photo"),
    Pretrained("style_monet", "photo", "monet", "monet2photo"),
    Pretrained("style_cezanne", "photo", "cezanne", "cezanne2photo"),
    Pretrained("style_ukiyoe", "photo", "ukiyoe", "ukiyoe2photo"),
    Pretrained("style_vangogh", "photo", "vangogh", "vangogh2photo"),
    Pretrained("sat2map", "satellite", "map", "maps"),
    Pretrained("map2sat", "map", "satellite", "maps"),
    Pretrained("cityscapes_photo2label", "street photo", "label", None),
    Pretrained("cityscapes_label2photo", "label", "street photo", None),
    Pretrained("facades_photo2label", "facade", "label", "facades"),
    Pretrained("facades_label2photo", "label", "facade", "facades"),
    Pretrained("iphone2dslr_flower", "iphone", "dslr", "iphone2dslr_flower"),
)}

DOMAINS: dict[str, str] = {
    "photo": "landscape photographs",
    "monet": "paintings by Claude Monet",
    "cezanne": "paintings by Paul Cézanne",
    "ukiyoe": "Japanese ukiyo-e woodblock prints",
    "vangogh": "paintings by Vincent van Gogh",
    "summer": "Yosemite in summer",
    "winter": "Yosemite in winter",
    "horse": "photos of horses",
    "zebra": "photos of zebras",
    "apple": "photos of apples",
    "orange": "photos of oranges",
    "map": "Google Maps tiles",
    "satellite": "aerial photos",
    "facade": "photos of building facades",
    "label": "facade label maps",
    "iphone": "flower photos taken with an iPhone",
    "dslr": "flower photos taken with a DSLR",
}

ALIASES: dict[str, str] = {
    "photos": "photo", "photograph": "photo", "photographs": "photo",
    "van_gogh": "vangogh", "van-gogh": "vangogh", "van gogh": "vangogh",
    "ukiyo-e": "ukiyoe", "ukiyo_e": "ukiyoe",
    "horses": "horse", "zebras": "zebra", "apples": "apple", "oranges": "orange",
    "maps": "map", "aerial": "satellite", "sat": "satellite",
    "facades": "facade", "labels": "label",
}

# Presets of ``cyclegan translate``: each is a pair of opposite pretrained generators, the forward one
# (AtoB) first. ``painting`` takes the painter from --style, ``photo`` goes the other way.
PRESETS = ("season", "painting", "photo")
STYLES = ("monet", "cezanne", "ukiyoe", "vangogh")


# -- where things live ---------------------------------------------------------------------------


def data_root(root: str | Path | None = None) -> Path:
    """The folder that holds downloaded datasets: ``root``, else $CYCLEGAN_DATA_DIR, else ``datasets/``."""
    return Path(root or os.environ.get("CYCLEGAN_DATA_DIR") or DEFAULT_DATA_DIR).expanduser()


def models_dir() -> Path:
    """The cache of pretrained generators: $CYCLEGAN_MODELS_DIR, else ``checkpoints/pretrained/``."""
    return Path(os.environ.get("CYCLEGAN_MODELS_DIR") or DEFAULT_MODELS_DIR).expanduser()


def dataset_url(name: str) -> str:
    base = os.environ.get("CYCLEGAN_DATASETS_URL") or DATASETS_URL
    return f"{base.rstrip('/')}/{get_dataset(name).name}.zip"


def model_url(name: str) -> str:
    base = os.environ.get("CYCLEGAN_MODELS_URL") or MODELS_URL
    return f"{base.rstrip('/')}/{get_pretrained(name).name}.pth"


# -- names -----------------------------------------------------------------------------------------


def _unknown(what: str, value: str, choices: list[str], hint: str = "", also: list[str] = (),
             before: str = "") -> UserError:
    """An error naming the valid choices, with the closest ones (among choices and ``also``) first."""
    close = difflib.get_close_matches(value.lower(), [*choices, *also], n=3, cutoff=0.6)
    guess = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
    return UserError(f"{before}unknown {what} {value!r}{guess}; choose one of: {', '.join(choices)}{hint}")


def get_dataset(name: str) -> Dataset:
    if name in DATASETS:
        return DATASETS[name]
    raise _unknown("dataset", name, list(DATASETS))


def get_pretrained(name: str) -> Pretrained:
    if name in PRETRAINED:
        return PRETRAINED[name]
    raise _unknown("pretrained model", name, list(PRETRAINED), " (see `cyclegan models list`)")


def domain_name(value: str) -> str | None:
    """The canonical domain name for ``value`` (``"Photos"`` → ``"photo"``), or None."""
    key = value.strip().lower()
    return key if key in DOMAINS else ALIASES.get(key)


def datasets_with(domain: str) -> list[Dataset]:
    return [d for d in DATASETS.values() if domain in (d.a, d.b)]


def pair_dataset(domain_a: str, domain_b: str) -> tuple[Dataset, str, str]:
    """The one dataset holding both domains, with the folder (trainA/trainB) of each, in the order given."""
    if domain_a == domain_b:
        raise UserError(f"--domainA and --domainB are both {domain_a!r}: give two different domains")
    for d in DATASETS.values():
        if (d.a, d.b) == (domain_a, domain_b):
            return d, "trainA", "trainB"
        if (d.b, d.a) == (domain_a, domain_b):
            return d, "trainB", "trainA"
    pairs = ", ".join(f"{d.a}+{d.b}" for d in DATASETS.values())
    raise UserError(
        f"no dataset holds both {domain_a!r} and {domain_b!r}; the pairs of the catalog are: {pairs}. "
        "To train on other domains, pass two folders of images."
    )


def single_dataset(domain: str) -> tuple[Dataset, str]:
    """The dataset half holding ``domain`` when only one dataset has it (the other side is a folder)."""
    found = datasets_with(domain)
    if len(found) > 1:
        raise UserError(
            f"{domain!r} is in several datasets ({', '.join(d.name for d in found)}): give a path such as "
            f"{found[0].name}/{'trainA' if found[0].a == domain else 'trainB'} instead, or name both domains "
            f"(e.g. {found[0].a} + {found[0].b})"
        )
    d = found[0]
    return d, "trainA" if d.a == domain else "trainB"


# -- domains → folders ---------------------------------------------------------------------------


def ensure_dataset(name: str, root: str | Path | None = None, download: bool = True) -> Path:
    """The folder of an official dataset under the data root, downloading it first when it is missing."""
    dataset = get_dataset(name)
    folder = data_root(root) / dataset.name
    if is_dataset(folder):
        return folder
    if not download:
        raise UserError(
            f"dataset {dataset.name} is not in {data_root(root)}/ and downloads are off (--no-download): "
            f"run `cyclegan datasets download {dataset.name}` first, or drop --no-download"
        )
    # Several processes may want it at once (every rank under torchrun): one downloads, the others wait.
    with _exclusive(data_root(root) / f".{dataset.name}.lock"):
        if is_dataset(folder):
            return folder
        return install_dataset(dataset_url(dataset.name), data_root(root), dataset.name)


@contextlib.contextmanager
def _exclusive(path: Path):
    """Hold an exclusive lock on the file ``path`` (on POSIX systems; elsewhere this does nothing)."""
    try:
        import fcntl  # POSIX only
    except ImportError:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _classify(value: str, root: Path) -> Path | tuple[str, str] | str:
    """An existing folder (Path), a half of a catalog dataset (name, trainA…), or a domain name (str)."""
    if not value.strip():
        raise UserError("a domain is empty: give a folder of images or a domain name")
    path = Path(value).expanduser()
    if path.is_dir():
        return path
    if (root / value).is_dir():
        return root / value
    parts = Path(value).parts
    if len(parts) == 2 and parts[0] in DATASETS and parts[1] in LAYOUT:
        return parts[0], parts[1]  # e.g. horse2zebra/trainA before horse2zebra is downloaded
    if name := domain_name(value):
        return name
    if Path(value).is_absolute() or value.startswith("~"):
        raise UserError(f"folder {value!r} does not exist")
    # a typo may be in a folder's name or a domain's: say both
    raise _unknown("domain", value, list(DOMAINS), " (or a folder of images)", also=list(ALIASES),
                   before=f"no folder {value!r} (nor {str(root / value)!r}), and ")


def resolve_domains(
    domain_a: str, domain_b: str, root: str | Path | None = None, download: bool = True
) -> tuple[Path, Path]:
    """The two image folders meant by ``--domainA``/``--domainB``.

    Each value is, in this order: an existing folder; a ``DATASET/trainA``-style path under the data
    root; a domain name. Two names resolve to the one dataset holding both (photos + monet → monet2photo,
    A = its trainB, B = its trainA). A dataset that is not there yet is downloaded unless ``download`` is
    False. Every name is checked before anything is downloaded.
    """
    root = data_root(root)
    a, b = _classify(domain_a, root), _classify(domain_b, root)
    if isinstance(a, str) and isinstance(b, str):
        dataset, half_a, half_b = pair_dataset(a, b)
        a, b = (dataset.name, half_a), (dataset.name, half_b)
    elif isinstance(a, str):
        dataset, half = single_dataset(a)
        a = (dataset.name, half)
    elif isinstance(b, str):
        dataset, half = single_dataset(b)
        b = (dataset.name, half)
    folders = []
    for side in (a, b):
        if isinstance(side, tuple):
            name, half = side
            side = ensure_dataset(name, root, download) / half
        folders.append(side)
    return folders[0], folders[1]


# -- presets → pretrained generators ---------------------------------------------------------------


def resolve_preset(
    preset: str, style: str | None = None, direction: str = "AtoB", to: str | None = None
) -> str:
    """The name of the pretrained generator that a ``translate`` preset stands for.

    ``season``: summer → winter (``summer2winter_yosemite``); ``direction="BtoA"`` or ``to="summer"`` for
    winter → summer. ``painting``: photo → the painter in ``style`` (``style_monet`` by default).
    ``photo``: Monet painting → photo (``monet2photo``). The official generators translate one way
    only, so the reverse direction is a different model.
    """
    preset = preset.strip().lower()
    if preset not in PRESETS:
        raise _unknown("preset", preset, list(PRESETS))
    if direction not in ("AtoB", "BtoA"):
        raise UserError(f"--direction must be AtoB or BtoA, not {direction!r}")
    style_name = domain_name(style) if style else None
    if style and style_name not in STYLES:
        raise _unknown("style", style, list(STYLES))
    if preset == "season":
        if style:
            raise UserError("--style goes with --preset painting or photo, not --preset season")
        forward, backward, ends = "summer2winter_yosemite", "winter2summer_yosemite", ("winter", "summer")
    elif preset == "painting":
        painter = style_name or "monet"
        forward, backward, ends = f"style_{painter}", f"{painter}2photo", (painter, "photo")
    else:
        painter = style_name or "monet"
        forward, backward, ends = f"{painter}2photo", f"style_{painter}", ("photo", painter)
    if to is not None:
        target = domain_name(to)
        if target not in ends:
            raise UserError(f"--to {to!r} does not fit --preset {preset}: choose {ends[0]} or {ends[1]}")
        wanted = "AtoB" if target == ends[0] else "BtoA"
        if direction == "BtoA" and wanted == "AtoB":
            raise UserError(f"--to {to} and --direction BtoA contradict each other: give only one of them")
        direction = wanted
    name = forward if direction == "AtoB" else backward
    if name not in PRETRAINED:
        have = [m.name for m in PRETRAINED.values() if m.target == "photo"]
        raise UserError(f"there is no official {name} model; painting → photo is only {' and '.join(have)}")
    return name


def reverse_model(name: str) -> str:
    """The official generator that undoes ``name`` (horse2zebra → zebra2horse), for ``--direction BtoA``."""
    model = get_pretrained(name)
    for other in PRETRAINED.values():
        if (other.source, other.target, other.dataset) == (model.target, model.source, model.dataset):
            return other.name
    raise UserError(f"{name} has no official reverse: it only translates {model.source} → {model.target}")


def translate_model(
    preset: str | None = None, style: str | None = None, to: str | None = None,
    pretrained: str | None = None, direction: str = "AtoB",
) -> str | None:
    """The pretrained generator that ``translate``'s --preset/--style/--to/--pretrained name, or None.

    ``--pretrained NAME --direction BtoA`` means NAME's official reverse (horse2zebra → zebra2horse).
    """
    if preset and pretrained:
        raise UserError("give --preset or --pretrained, not both")
    if preset:
        return resolve_preset(preset, style, direction, to)
    if style or to:
        raise UserError("--style and --to go with --preset (e.g. --preset painting --style vangogh)")
    if pretrained in FAST_STYLE_MODELS:
        if direction == "BtoA":
            raise UserError(f"{pretrained} is a style network: it paints photos one way only (no --direction BtoA)")
        return pretrained
    if pretrained:
        return reverse_model(pretrained) if direction == "BtoA" else get_pretrained(pretrained).name
    return None


def pretrained_path(name: str, download: bool = True) -> Path:
    """The local file of an official pretrained generator, downloaded into the model cache on first use."""
    if name in FAST_STYLE_MODELS:
        return fast_style_path(name, download)
    model = get_pretrained(name)
    path = models_dir() / f"{model.name}.pth"
    if not download and not (path.is_file() and verify_sha256(path)):
        raise UserError(f"pretrained model {model.name} is not in {models_dir()}/ and downloads are off")
    return cached_download(
        path, model_url(model.name), what=f"pretrained model {model.name}",
        offline=f"copy {path.name} from a machine that has it into {path.parent}/ (or set CYCLEGAN_MODELS_DIR "
                "to a folder holding it), or set CYCLEGAN_MODELS_URL to a reachable mirror",
    )


# -- AdaIN: the published encoder and decoder (stylize --method adain) ---------------------------------

# The release of Huang & Belongie's AdaIN ported to PyTorch (naoto0804/pytorch-AdaIN): the normalised VGG19
# (its first 31 layers, up to relu4_1, are the encoder) and the decoder trained on MS-COCO + WikiArt.
# CYCLEGAN_ADAIN_URL points at a mirror (the folder holding both files).
ADAIN_URL = "https://github.com/naoto0804/pytorch-AdaIN/releases/download/v0.0.0/"
ADAIN_FILES = {"vgg": "vgg_normalised.pth", "decoder": "decoder.pth"}
ADAIN_ABOUT = "any photo → any painting (stylize --method adain), trained on MS-COCO + WikiArt"


def adain_path(part: str) -> Path:
    """Where the published AdaIN file ``part`` ("vgg" or "decoder") lives in the model cache."""
    return models_dir() / "adain" / ADAIN_FILES[part]


def adain_weights(part: str) -> Path:
    """The published AdaIN file ``part`` ("vgg" or "decoder"), downloaded into the model cache on first use."""
    base = os.environ.get("CYCLEGAN_ADAIN_URL") or ADAIN_URL
    path = adain_path(part)
    return cached_download(
        path, f"{base.rstrip('/')}/{path.name}", what=f"AdaIN's {path.name}",
        offline="pass --vgg-weights vgg_normalised.pth and --decoder-weights decoder.pth (the files of the "
                f"pytorch-AdaIN release), copy them into {path.parent}/, or set CYCLEGAN_ADAIN_URL to a reachable "
                "mirror",
    )

# -- the fast style networks of pytorch/examples (fast_neural_style) --------------------------------------

# Johnson et al.'s transformer network trained on COCO for four paintings, published as one zip holding
# saved_models/NAME.pth. They take and return RGB 0..255; `cyclegan translate --pretrained candy` runs them.
FAST_STYLE_URL = "https://www.dropbox.com/s/lrvwfehqdcxoza8/saved_models.zip?dl=1"
FAST_STYLE_MODELS: dict[str, str] = {
    "candy": "Candy (a colourful abstract print)",
    "mosaic": "a mosaic",
    "rain_princess": "Rain Princess (Leonid Afremov)",
    "udnie": "Udnie (Francis Picabia)",
}


def fast_style_url() -> str:
    return os.environ.get("CYCLEGAN_FAST_STYLE_URL") or FAST_STYLE_URL


def fast_style_path(name: str, download: bool = True) -> Path:
    """The ``.pth`` of a pytorch/examples style network, taken from their zip (downloaded once) on first use.

    Only the four network files are extracted, each by its exact name in the archive, with its size
    checked against the archive's and written atomically; nothing else in the zip is touched.
    """
    if name not in FAST_STYLE_MODELS:
        raise _unknown("style network", name, list(FAST_STYLE_MODELS))
    folder = models_dir() / "fast_style"
    path = folder / f"{name}.pth"
    if path.is_file():
        return path
    if not download:
        raise UserError(f"pretrained style network {name} is not in {folder}/ and downloads are off")
    archive = cached_download(
        folder / "saved_models.zip", fast_style_url(), what="pytorch/examples' fast style networks (zip)",
        offline=f"copy saved_models.zip into {folder}/, or set CYCLEGAN_FAST_STYLE_URL to a reachable mirror",
    )
    try:
        with zipfile.ZipFile(archive) as zf:
            for other in FAST_STYLE_MODELS:
                member = f"saved_models/{other}.pth"
                try:
                    info = zf.getinfo(member)
                except KeyError:
                    raise UserError(f"{archive} holds no {member}: not pytorch/examples' saved_models.zip") from None
                if info.file_size > 64 << 20:  # the networks are 6.7 MB each
                    raise UserError(f"{archive}: {member} claims {info.file_size} bytes, not a style network")
                data = zf.read(member)
                atomic_write(folder / f"{other}.pth", lambda tmp, data=data: tmp.write_bytes(data))
    except zipfile.BadZipFile as e:
        archive.unlink(missing_ok=True)  # damaged: the next run downloads it again
        raise UserError(f"{archive} is not a readable zip ({e}); run again to download it anew") from None
    return path
