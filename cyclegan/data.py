"""Finding and decoding images, augmentation, and the unpaired two-domain dataset.

Every command reads images through ``load_image`` so that EXIF orientation, odd colour modes and
corrupt files are handled the same way everywhere.
"""

from __future__ import annotations

import logging
import math
import signal
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import UserError
from .runtime import data_workers

log = logging.getLogger(__name__)

# .gif counts as an image: an animated one is read as its first frame (with a note in the log).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def find_images(root: str | Path) -> list[Path]:
    """All image files below ``root`` (recursive, any letter case), sorted; ``root`` may be one image."""
    root = Path(root)
    if root.is_file():
        return [root] if is_image(root) else []
    return sorted(p for p in root.rglob("*") if p.is_file() and is_image(p) and not p.name.startswith("."))


def image_folder(path: str | Path, what: str = "image folder") -> list[Path]:
    """The images of a folder that must exist and hold images; otherwise a ``UserError`` naming the path."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{what} {str(path)!r} does not exist")
    images = find_images(path)
    if not images:
        raise UserError(f"{what} {str(path)!r} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return images


def domain_folder(path: str | Path, what: str) -> list[Path]:
    """The images of one training domain; a whole dataset folder (trainA/, trainB/, ...) is refused."""
    path = Path(path)
    if (path / "trainA").is_dir() and (path / "trainB").is_dir():
        raise UserError(f"{what} {str(path)!r} is a dataset folder: pass {path / 'trainA'} as --domainA "
                        f"and {path / 'trainB'} as --domainB")
    return image_folder(path, what)


def _to_8bit(img: Image.Image) -> Image.Image:
    """Scale 16/32-bit integer and float greyscale images into 8 bits instead of clipping them."""
    arr = np.asarray(img)
    if img.mode == "F":
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo or 1.0) * 255.0
    else:
        # I;16 images hold 0..65535; mode I may hold anything, so scale by its actual range when it exceeds 16 bits.
        top = 65535.0 if arr.max() <= 65535 else float(arr.max())
        arr = arr.astype(np.float64) / top * 255.0
    return Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8), mode="L")


_noted: set[str] = set()  # files already logged about (large, animated): once per file and process


def _note_once(path: str | Path, message: str) -> None:
    key = f"{path}: {message}"
    if key not in _noted:
        _noted.add(key)
        log.warning("%s %s", path, message)


class ImageTooLarge(ValueError):
    """An image above the size a caller reads (``load_image``'s ``max_pixels``)."""


def load_image(path: str | Path, keep_alpha: bool = False, max_side: int | None = None,
               max_pixels: int | None = None) -> tuple[Image.Image, Image.Image | None]:
    """Decode an image as 8-bit RGB with its EXIF orientation applied: the one reader of every image file.

    Returns ``(rgb, alpha)``; ``alpha`` is the transparency channel (mode ``L``) when ``keep_alpha`` is
    set and the image has one, else ``None``. Raises ``OSError``/``ValueError`` for unreadable files.

    The size policy: ``max_side`` says the caller will scale the long side down to at most that: a JPEG is
    then decoded at a reduced scale (never below it), which bounds the time and memory of very large
    photos. Images above PIL's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``, 89 megapixels) are
    logged (translate and train tile or crop them) and refused above twice that; a caller that cannot
    bound the work (a mask, the style commands' images) refuses them above ``max_pixels`` from the header
    alone, before decoding. An animated GIF/WebP gives its first frame, with a note.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", Image.DecompressionBombWarning)
        with Image.open(path) as img:
            full = img.size
            if max_side and max(img.size) > 2 * max_side and img.format == "JPEG":
                scale = max_side / max(img.size)
                img.draft(None, (math.ceil(img.width * scale), math.ceil(img.height * scale)))
            w, h = img.size  # what will be decoded (a JPEG's reduced scale)
            if max_pixels and w * h > max_pixels:
                raise ImageTooLarge(f"{w}×{h} pixels ({w * h / 1e6:.0f} megapixels), more than the "
                                    f"{max_pixels / 1e6:.0f} this command reads: scale it down first")
            if getattr(img, "n_frames", 1) > 1:
                _note_once(path, f"is animated ({img.n_frames} frames): using its first frame")
            if any(issubclass(wr.category, Image.DecompressionBombWarning) for wr in caught):
                _note_once(path, f"is very large ({full[0]}×{full[1]} pixels): decoding it takes a lot of memory "
                                 "and time")
            img.load()
            img = ImageOps.exif_transpose(img)
    alpha = None
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        img = _to_8bit(img)
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA") and keep_alpha:
        alpha = img.getchannel("A")
    if img.mode != "RGB":
        img = img.convert("RGB")  # handles L, LA, RGBA (alpha dropped), CMYK, YCbCr, 1
    return img, alpha


def unreadable(error: Exception) -> str:
    """Why an image file could not be decoded, in words: PIL raises a zoo of types for broken files, and
    their names (``UnidentifiedImageError``, the ``KeyError`` of a damaged header) mean nothing to a user."""
    if isinstance(error, UnidentifiedImageError):
        return "not an image file this tool reads, or damaged beyond recognition"
    if isinstance(error, ImageTooLarge | Image.DecompressionBombError):
        return str(error)
    if isinstance(error, OSError) and str(error):  # PIL's words: "image file is truncated", ...
        return f"damaged or cut short ({error})"
    return "its data is damaged"


def try_load_image(path: Path, keep_alpha: bool = False) -> tuple[Image.Image, Image.Image | None] | None:
    """``load_image``, but a corrupt or unreadable file logs one warning naming it and returns ``None``."""
    try:
        return load_image(path, keep_alpha)
    except Exception as e:
        log.warning("skipping unreadable image %s (%s)", path, unreadable(e))
        return None


def from_uint8(x: torch.Tensor) -> torch.Tensor:
    """uint8 pixels (0..255, any shape, any device) → float32 in [-1, 1], the range the generators work in.

    The one place that maps pixels to the generators' range; ``to_uint8`` is its inverse.
    """
    return x.float().div(127.5).sub_(1.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Float in [-1, 1] (any shape, any device) → uint8 pixels, clamped and rounded as an image file would be."""
    return x.detach().float().clamp(-1, 1).add_(1).mul_(127.5).round_().to(torch.uint8)


def uint8_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB → uint8 tensor ``[3, H, W]``: the pixels as they are, for any range a network works in."""
    return torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1)


def to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB → float tensor ``[3, H, W]`` in [-1, 1]."""
    return from_uint8(uint8_tensor(img))


def to_image(t: torch.Tensor) -> Image.Image:
    """Float tensor ``[3, H, W]`` in [-1, 1] → PIL RGB."""
    return Image.fromarray(to_uint8(t).permute(1, 2, 0).cpu().numpy(), mode="RGB")


def mirror_path(src: Path, input_root: Path, output_root: Path, suffix: str | None = None) -> Path:
    """Where the output for ``src`` goes: same relative path below ``output_root``, optionally new suffix.

    ``input_root`` may be a single file, in which case ``output_root`` is a file path when it has an image
    suffix, else the folder to put it in.
    """
    if input_root.is_file():
        out = output_root if is_image(output_root) else output_root / src.name
    else:
        out = output_root / src.relative_to(input_root)
    return out.with_suffix(suffix) if suffix else out


# --------------------------------------------------------------------------------------------------
# Training data: augmentation and the unpaired dataset

PREPROCESS_MODES = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")


def _scale_width(img: Image.Image, width: int, min_height: int) -> Image.Image:
    w, h = img.size
    if w == width and h >= min_height:
        return img
    return img.resize((width, int(max(width * h / w, min_height))), Image.BICUBIC)


def _multiple_of_4(img: Image.Image) -> Image.Image:
    w, h = img.size
    nw, nh = max(4, round(w / 4) * 4), max(4, round(h / 4) * 4)
    return img if (nw, nh) == (w, h) else img.resize((nw, nh), Image.BICUBIC)


class Augment:
    """The paper's training augmentation: resize (bicubic), random crop, random horizontal flip.

    Randomness comes only from ``seed`` in ``__call__``, so a sample's augmentation is a pure function of
    the run seed, the epoch and its index: identical across data workers and after ``--resume``.
    """

    def __init__(self, preprocess: str = "resize_and_crop", load_size: int = 286, image_size: int = 256,
                 flip: bool = True, min_side: int = 1):
        # here, not at the top: albumentations (and OpenCV) take a second to import, which only training needs
        import albumentations as A
        import cv2
        from albumentations.pytorch import ToTensorV2

        if preprocess not in PREPROCESS_MODES:
            raise UserError(f"unknown --preprocess {preprocess!r}; choose one of {', '.join(PREPROCESS_MODES)}")
        self.preprocess, self.load_size, self.image_size = preprocess, load_size, image_size
        self.min_side = min_side  # the smallest side the network takes
        steps: list = []
        if preprocess == "resize_and_crop":
            steps.append(A.Resize(load_size, load_size, interpolation=cv2.INTER_CUBIC))
        if "crop" in preprocess:
            steps.append(A.RandomCrop(image_size, image_size, pad_if_needed=True, border_mode=cv2.BORDER_REFLECT_101))
        if flip:
            steps.append(A.HorizontalFlip(p=0.5))
        steps += [A.Normalize(mean=(0.5,) * 3, std=(0.5,) * 3, max_pixel_value=255.0), ToTensorV2()]
        self.transform = A.Compose(steps)

    def unusable(self, img: Image.Image) -> str | None:
        """Why the network cannot train on ``img`` (only ``--preprocess none`` keeps sizes: a 1×1 image
        reaches the network as it is), or None."""
        if self.preprocess == "none" and min(_multiple_of_4(img).size) < self.min_side:
            return (f"{img.width}×{img.height} pixels, smaller than the {self.min_side} a side the generator takes "
                    "with --preprocess none")
        return None

    def pads(self, img: Image.Image) -> bool:
        """Whether the random crop is larger than ``img`` and pads it (``--preprocess crop`` of a small image)."""
        return self.preprocess == "crop" and min(img.size) < self.image_size

    def __call__(self, img: Image.Image, seed: int) -> torch.Tensor:
        if "scale_width" in self.preprocess:
            img = _scale_width(img, self.load_size, self.image_size)
        elif self.preprocess == "none":
            img = _multiple_of_4(img)
        self.transform.set_random_seed(seed)
        return self.transform(image=np.asarray(img))["image"]


def sample_seed(seed: int, epoch: int, index: int, stream: int) -> int:
    """A well-mixed 32-bit seed for one sample of one epoch (``stream`` separates independent uses)."""
    return int(np.random.SeedSequence([seed, epoch, index, stream]).generate_state(1)[0])


class UnpairedDataset(torch.utils.data.Dataset):
    """Items are keyed by ``(epoch, index)``: A is ``index mod |A|``, B is drawn at random, as in the paper.

    An unreadable file is replaced by the next readable one and reported in the item's ``bad`` list, so
    the training loop can warn once per file and go on. A folder with no readable image at all makes an
    item with an ``error`` message instead, which the training loop raises in the main process (raised in
    a data worker, it would arrive wrapped in the worker's traceback).
    """

    def __init__(self, files_a: list[Path], files_b: list[Path], augment: Augment, seed: int = 0):
        self.files_a, self.files_b, self.augment, self.seed = files_a, files_b, augment, seed

    def __len__(self) -> int:
        return max(len(self.files_a), len(self.files_b))

    def _load(self, files: list[Path], index: int, bad: list[str]) -> Image.Image:
        for k in range(len(files)):
            path = files[(index + k) % len(files)]
            try:
                img = load_image(path)[0]
            except Exception as e:
                bad.append(f"{path} ({unreadable(e)})")
                continue
            if (why := self.augment.unusable(img)) is None:
                return img
            bad.append(f"{path} ({why})")
        raise UserError(f"no usable image in the folder of {files[0]} (tried all {len(files)})")

    def __getitem__(self, key: tuple[int, int]) -> dict:
        epoch, index = key
        bad: list[str] = []
        b_index = int(np.random.default_rng(sample_seed(self.seed, epoch, index, 0)).integers(len(self.files_b)))
        try:
            img_a = self._load(self.files_a, index % len(self.files_a), bad)
            img_b = self._load(self.files_b, b_index, bad)
        except UserError as e:
            return {"error": str(e), "bad": bad}
        return {
            "A": self.augment(img_a, sample_seed(self.seed, epoch, index, 1)),
            "B": self.augment(img_b, sample_seed(self.seed, epoch, index, 2)),
            "bad": bad,
            "padded": [f"{img.width}×{img.height}" for img in (img_a, img_b) if self.augment.pads(img)],
        }


def collate(items: list[dict]) -> dict:
    """Stack a batch; a batch with a failed item carries only its ``error`` (and the ``bad`` files)."""
    bad = [b for it in items for b in it["bad"]]
    errors = [it["error"] for it in items if "error" in it]
    if errors:
        return {"error": errors[0], "bad": bad}
    return {"A": torch.stack([it["A"] for it in items]), "B": torch.stack([it["B"] for it in items]), "bad": bad,
            "padded": [p for it in items for p in it.get("padded", [])]}


def first_usable(files: list[Path], what: str, unusable=lambda img: None) -> None:
    """Fail now, before a run folder is made, when no image of ``files`` can be trained on (all unreadable,
    or all refused by ``unusable``), saying why for the first few. Decodes until one is usable."""
    reasons = []
    for path in files:
        try:
            why = unusable(load_image(path)[0])
        except Exception as e:
            why = unreadable(e)
        if why is None:
            return
        reasons.append(f"{path.name}: {why}")
    more = f"; and {len(reasons) - 3} more" if len(reasons) > 3 else ""
    raise UserError(f"no image of the {what} can be trained on ({'; '.join(reasons[:3])}{more})")


class EpochBatches(torch.utils.data.Sampler):
    """Batches of ``(epoch, index)`` keys from ``start_epoch`` to ``end_epoch``, one shuffled order per epoch.

    Each epoch's order depends only on the seed and the epoch, so a run resumed at ``(epoch, batch)``
    sees exactly the batches it would have seen. With ``world_size > 1`` every rank takes its own
    strided share (padded so all ranks take the same number of steps).
    """

    def __init__(self, n: int, batch_size: int, seed: int, start_epoch: int, end_epoch: int,
                 start_batch: int = 0, rank: int = 0, world_size: int = 1):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start_epoch, self.end_epoch, self.start_batch = start_epoch, end_epoch, start_batch
        self.rank, self.world_size = rank, world_size

    @property
    def batches_per_epoch(self) -> int:
        per_rank = -(-self.n // self.world_size)
        return -(-per_rank // self.batch_size)

    def epoch_order(self, epoch: int) -> list[int]:
        g = torch.Generator().manual_seed(sample_seed(self.seed, epoch, 0, 3))
        order = torch.randperm(self.n, generator=g).tolist()
        order += order[: (-len(order)) % self.world_size]  # pad so every rank has the same length
        return order[self.rank :: self.world_size]

    def __iter__(self):
        for epoch in range(self.start_epoch, self.end_epoch):
            order = self.epoch_order(epoch)
            first = self.start_batch if epoch == self.start_epoch else 0
            for b in range(first, self.batches_per_epoch):
                yield [(epoch, i) for i in order[b * self.batch_size : (b + 1) * self.batch_size]]

    def __len__(self) -> int:
        return (self.end_epoch - self.start_epoch) * self.batches_per_epoch - self.start_batch


# --------------------------------------------------------------------------------------------------
# Loading training batches


def _ignore_stop_signals(_worker_id: int) -> None:
    # Data workers share the process group that Ctrl-C (and schedulers' group-wide SIGTERM) reach; let the
    # main process handle the signal and shut the workers down after saving (``batches`` below).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def data_loader(dataset, batch_sampler, workers: int, collate_fn, pin_memory: bool) -> torch.utils.data.DataLoader:
    """A DataLoader whose worker processes (at most one per CPU) leave stop signals to the main process."""
    workers = data_workers(workers)
    return torch.utils.data.DataLoader(
        dataset, batch_sampler=batch_sampler, num_workers=workers, collate_fn=collate_fn, pin_memory=pin_memory,
        worker_init_fn=_ignore_stop_signals if workers else None, persistent_workers=workers > 0,
        prefetch_factor=4 if workers else None,
    )


@contextmanager
def batches(loader: torch.utils.data.DataLoader) -> Iterator[Iterator]:
    """Iterate ``loader``, and stop its worker processes on the way out, error or not.

    Left to themselves they would be stopped at interpreter exit by SIGTERM, which they ignore (above):
    an error whose traceback still holds the iterator would then hang the process for good.
    """
    it = iter(loader)
    try:
        yield it
    finally:
        shutdown = getattr(it, "_shutdown_workers", None)  # present when there are worker processes
        if shutdown is not None:
            shutdown()
