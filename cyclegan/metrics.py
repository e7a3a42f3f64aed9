"""FID and KID on the standard FID Inception network.

The network is the 2015-12-05 TensorFlow Inception-v3 graph that every published FID uses, as a
TorchScript file: either the one StyleGAN2-ADA/StyleGAN3 and clean-fid download (fetched once into the
torch hub cache) or any file given with ``--inception`` that takes ``[N, 3, 299, 299]`` float RGB scaled
``(x - 128) / 128`` and returns ``[N, 2048]`` pool features.

Features are extracted once per image set, so one real test split serves every row of a comparison
and each image goes through Inception once, not once per metric. KID is torchmetrics'
``KernelInceptionDistance``; FID is computed here by an exact route that takes milliseconds where the
usual eigendecomposition takes tens of seconds on a CPU (checked against torchmetrics in the tests).
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .checkpoint import save_network
from .data import from_uint8, image_folder, to_uint8, try_load_image, uint8_tensor
from .download import cached_download, sha256_file
from .errors import UserError
from .files import write_json
from .progress import progress_bar
from .runtime import autocast, data_workers

log = logging.getLogger(__name__)

# The TorchScript export of the TF Inception graph published with StyleGAN2-ADA, also used by clean-fid.
INCEPTION_URL = (
    "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"
)
# The SHA-256 of that file (95,607,719 bytes), as the evaluation code of k-diffusion and others pin it: a
# download (or a cached copy) with another hash is refused, and an --inception file with another hash is
# said to give scores that published ones cannot be compared with.
INCEPTION_SHA256 = "f58cb9b6ec323ed63459aa4fb441fe750cfe39fafad6da5cb504a16f19e958f4"
INCEPTION_SIZE = 299
KID_SUBSETS = 100
KID_MAX_SUBSET_SIZE = 1000


def default_inception_path() -> Path:
    """Where the downloaded network is cached (beside torchvision's weights)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / "inception-2015-12-05.pt"


class InceptionFeatures(nn.Module):
    """uint8 RGB images ``[N, 3, H, W]`` of any size → float64 features ``[N, num_features]``.

    Does the standard FID preprocessing: bilinear resize to 299×299 (``align_corners=False``, as in the
    StyleGAN/clean-fid network and pytorch-fid) of the 0..255 values, then ``(x - 128) / 128``. Usable
    directly as the ``feature`` module of torchmetrics' FID/KID (``num_features`` spares them a probe).
    """

    def __init__(self, net: nn.Module, num_features: int):
        super().__init__()
        self.net = net
        self.num_features = num_features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float()
        if x.shape[-2:] != (INCEPTION_SIZE, INCEPTION_SIZE):
            x = F.interpolate(x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False)
        x = (x - 128.0) / 128.0
        return self.net(x).reshape(len(x), -1).double()


def _fetch_inception() -> Path:
    return cached_download(
        default_inception_path(), INCEPTION_URL, what="the FID Inception network", sha256=INCEPTION_SHA256,
        offline=f"pass --inception PATH: a TorchScript FID Inception such as inception-2015-12-05.pt, copied "
                f"from a machine that has it ({INCEPTION_URL})",
    )


def _warn_if_not_standard(file: Path) -> None:
    """A --inception file other than the standard one gives scores that published ones cannot be compared to."""
    if sha256_file(file) != INCEPTION_SHA256:
        log.warning("%s is not the standard FID Inception file (SHA-256 differs from %s...): its FID and KID "
                    "are not comparable with published scores", file, INCEPTION_SHA256[:12])


def load_inception(path: str | Path | None = None, device: str | torch.device = "cpu") -> InceptionFeatures:
    """The FID feature network from ``path``, or from the cache, downloading it there on first use.

    The network is a TorchScript file, and TorchScript is code: loading one runs what its author wrote,
    and no check can make an untrusted file safe (unlike the weights-only files read everywhere else).
    Only pass files you trust; the downloaded one comes from the StyleGAN2-ADA release over HTTPS.
    """
    if path is not None and not Path(path).is_file():
        raise UserError(f"--inception {str(path)!r} does not exist")
    if path is not None:
        _warn_if_not_standard(Path(path))
    file = Path(path) if path is not None else _fetch_inception()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's nudge towards torch.export
            net = torch.jit.load(str(file), map_location=device)
    except Exception as e:
        raise UserError(f"{file} is not a TorchScript file ({e}); --inception needs one") from e
    net.eval()
    for p in net.parameters():  # inference only; ScriptModules lack requires_grad_()
        p.requires_grad_(False)
    # The StyleGAN file preprocesses inside and returns logits unless asked for features; its ``layers``
    # submodule is the bare network with the contract above (this is how clean-fid calls it too).
    if "return_features" in [a.name for a in net.forward.schema.arguments] and hasattr(net, "layers"):
        net = net.layers
    try:
        with torch.no_grad():
            probe = net(torch.zeros(1, 3, INCEPTION_SIZE, INCEPTION_SIZE, device=device))
    except Exception as e:
        raise UserError(f"{file} fails on a [1, 3, 299, 299] input: not a FID Inception network ({e})") from e
    if probe.dim() not in (2, 4) or probe.shape[0] != 1:
        raise UserError(f"{file} returns shape {list(probe.shape)}, not [N, D]: not a FID Inception network")
    return InceptionFeatures(net, probe[0].numel()).to(device)


class _Images(Dataset):
    def __init__(self, paths: Sequence[Path], size: int | None = None):
        self.paths, self.size = list(paths), size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor | None:
        loaded = try_load_image(self.paths[i])
        if loaded is None:
            return None
        img = loaded[0]
        if self.size:  # the test-time transform of the original release: a bicubic resize to a square
            img = img.resize((self.size, self.size), Image.BICUBIC)
        return uint8_tensor(img)


def _keep_loaded(batch: list) -> list[torch.Tensor]:
    return [t for t in batch if t is not None]


def _same_size_stacks(images: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
    """Stack images into batches of equal size (folders may mix sizes)."""
    groups: dict[tuple, list[torch.Tensor]] = defaultdict(list)
    for t in images:
        groups[tuple(t.shape)].append(t)
    for group in groups.values():
        yield torch.stack(group)


def image_batches(
    paths: Sequence[Path], size: int | None = None, batch_size: int = 50, workers: int = 0, label: str = "images"
) -> Iterator[torch.Tensor]:
    """uint8 ``[B, 3, H, W]`` batches of the readable images among ``paths`` (unreadable ones are skipped
    with a warning), at their own size or resized to ``size``×``size``, with a progress bar."""
    loader = DataLoader(_Images(paths, size), batch_size=batch_size, num_workers=data_workers(workers),
                        collate_fn=_keep_loaded)
    with progress_bar(transient=True) as progress:
        task = progress.add_task(label, total=len(paths))
        for batch in loader:
            yield from _same_size_stacks(batch)
            progress.advance(task, len(batch))


@torch.no_grad()
def translate_batches(
    batches: Iterable[torch.Tensor], generator: nn.Module, device: torch.device, precision: str = "fp32"
) -> Iterator[torch.Tensor]:
    """Run uint8 batches through a generator; its outputs come back as uint8, as if saved as PNG."""
    for batch in batches:
        x = from_uint8(batch.to(device, non_blocking=True))
        with autocast(device, precision):
            y = generator(x)
        yield to_uint8(y)


@torch.no_grad()
def extract_features(
    batches: Iterable[torch.Tensor], extractor: InceptionFeatures, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """Features ``[N, D]`` (float64, CPU) of an iterable of uint8 ``[B, 3, H, W]`` batches."""
    feats = [extractor(batch.to(device, non_blocking=True)).cpu() for batch in batches]
    if not feats:
        return torch.zeros(0, extractor.num_features, dtype=torch.float64)
    return torch.cat(feats)


def folder_features(
    paths: Sequence[Path],
    extractor: InceptionFeatures,
    device: str | torch.device = "cpu",
    batch_size: int = 50,
    workers: int = 0,
    label: str = "images",
) -> torch.Tensor:
    """Features of the readable images among ``paths``, each at its own size."""
    batches = image_batches(paths, batch_size=batch_size, workers=workers, label=f"Inception features: {label}")
    return extract_features(batches, extractor, device)


@dataclass
class Scores:
    """FID and KID of one fake image set against one real set (KID as mean ± std over subsets)."""

    fid: float
    kid_mean: float
    kid_std: float
    n_fake: int
    n_real: int

    def to_dict(self) -> dict:
        return asdict(self)


def kid_subset_size(n: int) -> int:
    """Images per KID subset: the standard 1000 on large sets; on smaller ones half the set, so that the
    100 subsets differ and their spread says how much to trust the mean (subsets of the whole set
    would all give the same value and a standard deviation of 0)."""
    return max(2, min(KID_MAX_SUBSET_SIZE, n // 2))


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """FID between two feature sets ``[N, D]``: ``|mu_r - mu_f|² + Tr(S_r + S_f - 2 sqrt(S_r S_f))``.

    Exact, but without the D×D non-symmetric eigendecomposition that torchmetrics and pytorch-fid do
    (about 20 s on a CPU for D = 2048): with ``S_r = AᵀA`` and ``S_f = BᵀB`` (A, B the centred features
    over sqrt(N - 1)), the eigenvalues of ``S_r S_f`` are the squared singular values of ``ABᵀ``, so
    ``Tr sqrt(S_r S_f)`` is the sum of those singular values; a QR step first keeps the matrix no larger
    than min(N, D) on a side.
    """
    a, b = real.double(), fake.double()
    mean_term = (a.mean(0) - b.mean(0)).square().sum()
    a = (a - a.mean(0)) / (len(a) - 1) ** 0.5
    b = (b - b.mean(0)) / (len(b) - 1) ** 0.5
    traces = a.square().sum() + b.square().sum()
    if a.shape[0] > a.shape[1]:
        a = torch.linalg.qr(a, mode="r").R
    if b.shape[0] > b.shape[1]:
        b = torch.linalg.qr(b, mode="r").R
    return float(mean_term + traces - 2 * torch.linalg.svdvals(a @ b.T).sum())


class _Given(nn.Module):
    """The features themselves, as torchmetrics' feature module: they were extracted already."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def kernel_distance(real: torch.Tensor, fake: torch.Tensor, subsets: int = KID_SUBSETS, seed: int = 0):
    """KID ``(mean, std)`` over ``subsets`` random subsets of ``kid_subset_size`` images (torchmetrics'
    polynomial-kernel MMD). The subsets come from a fixed seed, so the same images give the same score,
    and the caller's random state is left untouched."""
    from torchmetrics.image.kid import KernelInceptionDistance  # here: torchmetrics takes a second to import

    size = kid_subset_size(min(len(real), len(fake)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "KID keeps all features in memory": that is the point
        kid = KernelInceptionDistance(feature=_Given(real.shape[1]), subsets=subsets, subset_size=size)
    kid.update(real.detach().double(), real=True)
    kid.update(fake.detach().double(), real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = kid.compute()
    return float(mean), float(std)


def fid_kid(real: torch.Tensor, fake: torch.Tensor) -> Scores:
    """FID and KID between real and fake features ``[N, D]``."""
    n_real, n_fake = len(real), len(fake)
    if min(n_real, n_fake) < 2:
        raise UserError(f"FID and KID need at least 2 images on each side (got {n_fake} fake, {n_real} real)")
    real, fake = real.detach().double().cpu(), fake.detach().double().cpu()
    return Scores(frechet_distance(real, fake), *kernel_distance(real, fake), n_fake, n_real)


def find_test_split(
    test_dir: str | Path | None, domain_a: str | Path = "", domain_b: str | Path = ""
) -> tuple[Path, Path]:
    """The test folders of both domains: ``TEST_DIR/testA`` and ``testB``, or, without ``test_dir``, the
    ``testA``/``testB`` folders beside training folders named ``trainA``/``trainB``."""
    if test_dir:
        pair = Path(test_dir) / "testA", Path(test_dir) / "testB"
        if not all(p.is_dir() for p in pair):
            raise UserError(f"--test-dir {str(test_dir)!r} must hold testA/ and testB/ folders of test images")
        return pair
    guess = [Path(d).parent / Path(d).name.replace("train", "test", 1) for d in (domain_a, domain_b)]
    if all(Path(d).name.startswith("train") for d in (domain_a, domain_b)) and all(p.is_dir() for p in guess):
        return guess[0], guess[1]
    raise UserError("no test split found beside the training folders: pass --test-dir DATASET, a folder holding "
                    "testA/ and testB/")


class TrainingEval:
    """FID/KID of both generators on the test split during training; keeps the best generators in ``best/``.

    The real test images are read and their features extracted once. Test images go through the
    original release's test transform (a bicubic resize to the training crop size), the real ones too, so
    the generator is the only difference. "Best" is the lowest KID averaged over both directions.
    """

    def __init__(self, test_a: Path, test_b: Path, image_size: int, run_dir: Path, device: torch.device,
                 precision: str = "fp32", inception: str | None = None, resume: bool = False, batch_size: int = 16):
        self.files = {"A": image_folder(test_a, "test folder"), "B": image_folder(test_b, "test folder")}
        self.size, self.device, self.precision, self.batch_size = image_size, device, precision, batch_size
        self.best_dir = run_dir / "best"
        self.extractor = load_inception(inception, device)
        self.real = {d: extract_features(self._batches(d), self.extractor, device) for d in ("A", "B")}
        best = self.best_dir / "metrics.json"
        # A resumed run competes with its own best so far; a new run under an old name starts afresh.
        self.best_kid = json.loads(best.read_text())["kid"] if resume and best.is_file() else math.inf

    def _batches(self, domain: str) -> Iterator[torch.Tensor]:
        return image_batches(self.files[domain], self.size, self.batch_size, label=f"evaluating on test{domain}")

    def scores(self, G_AB: nn.Module, G_BA: nn.Module) -> dict[str, Scores]:
        out = {}
        for name, gen, src, dst in (("AtoB", G_AB, "A", "B"), ("BtoA", G_BA, "B", "A")):
            was_training = gen.training
            gen.eval()
            fake = translate_batches(self._batches(src), gen, self.device, self.precision)
            out[name] = fid_kid(self.real[dst], extract_features(fake, self.extractor, self.device))
            gen.train(was_training)
        return out

    def __call__(self, G_AB: nn.Module, G_BA: nn.Module, spec, epoch: int, step: int) -> dict[str, float]:
        """Score the generators; returns the numbers to log. Leaves every random stream as it was, so a
        run with evaluation trains exactly like one without."""
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            scores = self.scores(G_AB, G_BA)
        kid = sum(s.kid_mean for s in scores.values()) / len(scores)
        logged = {f"eval/{d}/{k}": v for d, s in scores.items() for k, v in s.to_dict().items()
                  if not k.startswith("n_")}
        logged["eval/kid"] = kid
        log.info("epoch %d: %s", epoch, "  ".join(
            f"{d} FID {s.fid:.1f} KID×10³ {1e3 * s.kid_mean:.2f}±{1e3 * s.kid_std:.2f}" for d, s in scores.items()))
        if kid < self.best_kid:
            self.best_kid = kid
            meta = {"epoch": epoch, "step": step}
            save_network(self.best_dir / "G_AB.safetensors", G_AB, spec, {**meta, "direction": "AtoB"})
            save_network(self.best_dir / "G_BA.safetensors", G_BA, spec, {**meta, "direction": "BtoA"})
            write_json(self.best_dir / "metrics.json",
                       {**meta, "kid": kid, **{d: s.to_dict() for d, s in scores.items()}})
            log.info("new best (mean KID×10³ %.2f): generators saved to %s", 1e3 * kid, self.best_dir)
        return logged
