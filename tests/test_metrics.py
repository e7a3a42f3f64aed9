"""FID/KID: the feature network's contract, the scores, the command, and getting the network."""

from __future__ import annotations

import json

import pytest
import torch
from fileserver import FileServer
from typer.testing import CliRunner

from cyclegan import download, metrics
from cyclegan.cli import app
from cyclegan.errors import UserError
from cyclegan.metrics import (
    Scores,
    fid_kid,
    folder_features,
    frechet_distance,
    kid_subset_size,
    load_inception,
)
from tests.conftest import TinyInception, make_folder, save_torchscript, shared_path, write_image

runner = CliRunner()


def output(result) -> str:
    """The command's output with rich's line wrapping undone."""
    return " ".join(result.output.split())


def constant_images(value: int, n: int = 2, size: int = 32) -> torch.Tensor:
    return torch.full((n, 3, size, size), value, dtype=torch.uint8)


def test_extractor_resizes_to_299_and_scales_like_fid(tiny_inception):
    extractor = load_inception(tiny_inception)
    assert extractor.num_features == 16
    net = load_inception(tiny_inception).net
    for value in (0, 128, 200):
        # A constant image stays constant under resizing, so the network must see exactly (v - 128) / 128.
        expected = net(torch.full((1, 3, 299, 299), (value - 128) / 128))
        got = extractor(constant_images(value, n=3, size=37))
        assert got.shape == (3, 16) and got.dtype == torch.float64
        torch.testing.assert_close(got, expected.double().expand(3, -1), atol=1e-6, rtol=1e-5)


def test_extractor_plugs_into_torchmetrics_and_fid_agrees(tiny_inception):
    from torchmetrics.image.fid import FrechetInceptionDistance

    extractor = load_inception(tiny_inception)
    g = torch.Generator().manual_seed(0)
    real = torch.randint(0, 256, (6, 3, 40, 40), dtype=torch.uint8, generator=g)
    fake = torch.randint(0, 128, (5, 3, 40, 40), dtype=torch.uint8, generator=g)
    fid = FrechetInceptionDistance(feature=extractor)  # uses num_features: no probe image
    fid.update(real, real=True)
    fid.update(fake, real=False)
    ours = fid_kid(extractor(real), extractor(fake))
    assert ours.fid == pytest.approx(float(fid.compute()), rel=1e-6)
    assert (ours.n_real, ours.n_fake) == (6, 5)


class Given(torch.nn.Module):
    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, x):
        return x


@pytest.mark.parametrize("n_real, n_fake, dim", [(7, 5, 12), (60, 45, 12), (40, 9, 12)])
def test_frechet_distance_matches_torchmetrics(n_real, n_fake, dim):
    from torchmetrics.image.fid import FrechetInceptionDistance

    g = torch.Generator().manual_seed(n_real)
    mix = torch.randn(dim, dim, generator=g, dtype=torch.float64)
    real = torch.randn(n_real, dim, generator=g, dtype=torch.float64) @ mix
    fake = torch.randn(n_fake, dim, generator=g, dtype=torch.float64) * 0.7 + 0.3
    fid = FrechetInceptionDistance(feature=Given(dim))
    fid.update(real, real=True)
    fid.update(fake, real=False)
    assert frechet_distance(real, fake) == pytest.approx(float(fid.compute()), rel=1e-6)
    assert frechet_distance(real, real) == pytest.approx(0.0, abs=1e-6)


def test_scores_separate_distributions_and_are_reproducible():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(40, 8, generator=g, dtype=torch.float64)
    same = torch.randn(40, 8, generator=g, dtype=torch.float64)
    shifted = torch.randn(40, 8, generator=g, dtype=torch.float64) + 1.0
    near, far = fid_kid(real, same), fid_kid(real, shifted)
    assert near.fid < far.fid and near.kid_mean < far.kid_mean
    assert abs(near.kid_mean) < far.kid_mean / 10
    assert near.kid_std > 0 and far.kid_std > 0  # subsets differ even on a small set

    state = torch.random.get_rng_state()
    assert fid_kid(real, shifted) == far  # KID's subsets come from a fixed seed...
    assert torch.equal(torch.random.get_rng_state(), state)  # ...without touching the caller's random state


def test_kid_subset_size():
    assert [kid_subset_size(n) for n in (2, 3, 50, 751, 2000, 10_000)] == [2, 2, 25, 375, 1000, 1000]
    s = fid_kid(torch.randn(2, 4, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64))
    assert s.n_fake == s.n_real == 2
    with pytest.raises(UserError, match="at least 2 images"):
        fid_kid(torch.randn(5, 4), torch.randn(1, 4))


def test_folder_features_mixed_sizes_and_unreadable_files(tmp_path, tiny_inception):
    folder = make_folder(tmp_path / "imgs", 3, size=(32, 32))
    write_image(folder / "wide.png", size=(48, 24))
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    paths = sorted(folder.iterdir())
    feats = folder_features(paths, load_inception(tiny_inception), batch_size=3)
    assert feats.shape == (4, 16)


def test_evaluate_command_writes_json(tmp_path, tiny_inception):
    fake = make_folder(tmp_path / "fake", 5, seed=0)
    real = make_folder(tmp_path / "real", 4, seed=50, ext=".jpg")
    out = tmp_path / "out" / "scores.json"
    args = ["evaluate", str(fake), str(real), "--inception", str(tiny_inception), "--json", str(out),
            "--device", "cpu", "--workers", "0"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert set(data) == {"fid", "kid_mean", "kid_std", "n_fake", "n_real"}
    assert (data["n_fake"], data["n_real"]) == (5, 4)
    assert all(isinstance(data[k], float) for k in ("fid", "kid_mean", "kid_std"))
    assert "FID" in output(result) and "KID" in output(result)


def test_evaluate_command_errors(tmp_path, tiny_inception):
    real = make_folder(tmp_path / "real", 3)

    def run(*args):
        return runner.invoke(app, ["evaluate", *map(str, args), "--workers", "0"])

    result = run(tmp_path / "nope", real, "--inception", tiny_inception)
    assert result.exit_code == 2 and "does not exist" in output(result)
    result = run(real, real, "--inception", tmp_path / "missing.pt")
    assert result.exit_code == 2 and "--inception" in output(result)
    (tmp_path / "junk.pt").write_bytes(b"junk")
    result = run(real, real, "--inception", tmp_path / "junk.pt")
    assert result.exit_code == 2 and "TorchScript" in output(result)
    one = make_folder(tmp_path / "one", 1)
    result = run(one, real, "--inception", tiny_inception)
    assert result.exit_code == 2 and "at least 2 images" in output(result)


def test_offline_without_weights_names_inception_option(tmp_path, monkeypatch):
    calls = []

    def no_network(url, dest, **kwargs):
        calls.append(url)
        raise UserError(f"could not download {url} (no route to host) after 5 attempts")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(download, "download", no_network)
    folder = make_folder(tmp_path / "imgs", 3)
    result = runner.invoke(app, ["evaluate", str(folder), str(folder), "--device", "cpu", "--workers", "0"])
    assert result.exit_code == 2
    assert "--inception" in output(result) and "no route to host" in output(result)
    assert calls == [metrics.INCEPTION_URL]
    assert not list((tmp_path / "hub").rglob("*.pt"))


class StyleGANLikeInception(torch.nn.Module):
    """The interface of the downloadable StyleGAN file: preprocessing inside ``forward``, logits unless
    ``return_features``, and the bare feature network as ``layers``."""

    def __init__(self):
        super().__init__()
        self.layers = TinyInception(16)

    def forward(self, img: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        x = torch.nn.functional.interpolate((img - 128) / 128, size=(299, 299), mode="bilinear")
        features = self.layers(x)
        return features if return_features else features[:, :8] * 100


def test_downloads_once_into_the_torch_cache_and_uses_the_feature_layers(tmp_path, monkeypatch):
    torch.manual_seed(0)
    net = StyleGANLikeInception().eval()
    save_torchscript(net, tmp_path / "served" / "inception.pt")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with FileServer(tmp_path / "served") as server:
        monkeypatch.setattr(metrics, "INCEPTION_URL", f"{server.url}/inception.pt")
        monkeypatch.setattr(metrics, "INCEPTION_SHA256", download.sha256_file(tmp_path / "served" / "inception.pt"))
        extractor = load_inception(None)
        assert metrics.default_inception_path().is_file()
        assert load_inception(None).num_features == 16  # the second use reads the cache
        assert [path for path, _ in server.requests] == ["inception.pt"]
    assert extractor.num_features == 16
    expected = net.layers(torch.full((1, 3, 299, 299), (77 - 128) / 128))
    torch.testing.assert_close(extractor(constant_images(77, n=1)), expected.double(), atol=1e-6, rtol=1e-5)


# --- with the real FID Inception network and real photos and paintings (../shared) ---------------------

MINI = "datasets/monet2photo_mini"


@pytest.fixture(scope="module")
def fid_inception():
    return load_inception(shared_path("weights/inception-2015-12-05-fid.pt"))


@pytest.mark.slow
def test_kid_sees_photos_closer_to_photos_than_to_monet(fid_inception):
    from cyclegan.data import find_images

    n = 12
    feats = {split: folder_features(find_images(shared_path(MINI, split))[:n], fid_inception)
             for split in ("testB", "trainB", "trainA")}
    photos = fid_kid(feats["trainB"], feats["testB"])
    monet = fid_kid(feats["trainA"], feats["testB"])
    assert isinstance(photos, Scores) and photos.n_fake == n
    assert photos.kid_mean < monet.kid_mean


@pytest.mark.slow
def test_evaluate_command_on_real_images(tmp_path):
    from cyclegan.data import find_images

    dirs = {}
    for split in ("testB", "trainA"):
        dirs[split] = tmp_path / split
        dirs[split].mkdir()
        for src in find_images(shared_path(MINI, split))[:3]:
            (dirs[split] / src.name).symlink_to(src)
    out = tmp_path / "scores.json"
    inception = shared_path("weights/inception-2015-12-05-fid.pt")
    args = ["evaluate", dirs["testB"], dirs["trainA"], "--inception", inception, "--json", out]
    result = runner.invoke(app, [*map(str, args), "--workers", "0"])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert set(data) == {"fid", "kid_mean", "kid_std", "n_fake", "n_real"}
    assert data["n_fake"] == data["n_real"] == 3 and data["fid"] > 0
