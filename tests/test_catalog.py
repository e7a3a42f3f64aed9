"""The catalog: names, domain resolution, translate presets, and the list/download commands."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_folder, shared_path
from fileserver import FileServer, dataset_zip
from PIL import Image
from typer.testing import CliRunner

from cyclegan import catalog
from cyclegan.catalog import (
    DATASETS,
    DOMAINS,
    PRETRAINED,
    domain_name,
    pretrained_path,
    resolve_domains,
    resolve_preset,
    reverse_model,
)
from cyclegan.cli import app
from cyclegan.data import load_image, to_image, to_tensor
from cyclegan.download import CHECKSUMS, LAYOUT
from cyclegan.errors import UserError
from cyclegan.models import GeneratorSpec, build_generator

runner = CliRunner()


@pytest.fixture(autouse=True)
def offline(tmp_path: Path, monkeypatch):
    """Nothing reaches the real servers: unless a test serves files, downloads go to a closed port."""
    monkeypatch.setenv("CYCLEGAN_DATASETS_URL", "http://127.0.0.1:9/datasets")
    monkeypatch.setenv("CYCLEGAN_MODELS_URL", "http://127.0.0.1:9/pretrained_models")
    monkeypatch.setenv("CYCLEGAN_MODELS_DIR", str(tmp_path / "model-cache"))


@pytest.fixture
def server(tmp_path: Path, monkeypatch):
    """A local server with datasets/ and pretrained_models/, which the catalog's URLs point to."""
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    with FileServer(tmp_path / "served") as s:
        monkeypatch.setenv("CYCLEGAN_DATASETS_URL", f"{s.url}/datasets")
        monkeypatch.setenv("CYCLEGAN_MODELS_URL", f"{s.url}/pretrained_models/")
        yield s


@pytest.fixture
def root(tmp_path: Path, monkeypatch) -> Path:
    """An empty data root, also set as $CYCLEGAN_DATA_DIR."""
    root = tmp_path / "data"
    monkeypatch.setenv("CYCLEGAN_DATA_DIR", str(root))
    return root


def fake_dataset(root: Path, name: str) -> Path:
    for sub in LAYOUT:
        (root / name / sub).mkdir(parents=True)
    return root / name


# -- the catalog itself ----------------------------------------------------------------------------


def test_catalog_holds_the_official_datasets_and_models():
    assert set(DATASETS) == {
        "apple2orange", "summer2winter_yosemite", "horse2zebra", "monet2photo", "cezanne2photo",
        "ukiyoe2photo", "vangogh2photo", "maps", "facades", "iphone2dslr_flower",
    }
    assert set(PRETRAINED) == {
        "apple2orange", "orange2apple", "summer2winter_yosemite", "winter2summer_yosemite", "horse2zebra",
        "zebra2horse", "monet2photo", "style_monet", "style_cezanne", "style_ukiyoe", "style_vangogh",
        "sat2map", "map2sat", "cityscapes_photo2label", "cityscapes_label2photo", "facades_photo2label",
        "facades_label2photo", "iphone2dslr_flower",
    }
    for d in DATASETS.values():
        assert d.a in DOMAINS and d.b in DOMAINS
    for m in PRETRAINED.values():
        if m.dataset:  # a model goes between the two halves of the dataset it was trained on
            d = DATASETS[m.dataset]
            assert {m.source, m.target} == {d.a, d.b}


def test_domain_names_and_aliases_of_the_issue():
    names = "photo photos monet cezanne ukiyoe vangogh summer winter horse zebra apple orange map satellite"
    for name in (names + " aerial facade label iphone dslr").split():
        assert domain_name(name) in DOMAINS
    assert domain_name("Photos") == "photo" and domain_name("aerial") == "satellite"
    assert domain_name("giraffe") is None


def test_urls_follow_the_environment(monkeypatch):
    monkeypatch.delenv("CYCLEGAN_DATASETS_URL")
    monkeypatch.delenv("CYCLEGAN_MODELS_URL")
    assert catalog.dataset_url("horse2zebra") == (
        "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/horse2zebra.zip")
    assert catalog.model_url("style_monet") == (
        "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/style_monet.pth")
    monkeypatch.setenv("CYCLEGAN_DATASETS_URL", "https://mirror.example/cg/")
    monkeypatch.setenv("CYCLEGAN_MODELS_URL", "file:///srv/models")
    monkeypatch.setenv("CYCLEGAN_DATA_DIR", "/data/cg")
    monkeypatch.setenv("CYCLEGAN_MODELS_DIR", "/cache/cg")
    assert catalog.dataset_url("maps") == "https://mirror.example/cg/maps.zip"
    assert catalog.model_url("sat2map") == "file:///srv/models/sat2map.pth"
    assert catalog.data_root() == Path("/data/cg") and catalog.data_root("here") == Path("here")
    assert catalog.models_dir() == Path("/cache/cg")


# -- domains → folders -----------------------------------------------------------------------------


@pytest.mark.parametrize("a, b, dataset, half_a, half_b", [
    ("photos", "monet", "monet2photo", "trainB", "trainA"),
    ("monet", "photos", "monet2photo", "trainA", "trainB"),
    ("summer", "winter", "summer2winter_yosemite", "trainA", "trainB"),
    ("horse", "zebra", "horse2zebra", "trainA", "trainB"),
    ("Zebras", "horses", "horse2zebra", "trainB", "trainA"),
    ("van gogh", "photo", "vangogh2photo", "trainA", "trainB"),
    ("aerial", "map", "maps", "trainA", "trainB"),
])
def test_domain_pairs_resolve_to_the_dataset_holding_both(root, a, b, dataset, half_a, half_b):
    fake_dataset(root, dataset)
    assert resolve_domains(a, b, download=False) == (root / dataset / half_a, root / dataset / half_b)


@pytest.mark.parametrize("a, b, message", [
    ("photos", "monett", r"unknown domain 'monett' \(did you mean 'monet'\?\)"),
    ("horse", "zebar", "did you mean 'zebra'"),
    ("giraffe", "zebra", "choose one of: photo, monet, .*horse.*dslr"),
    ("phtos", "monet", "did you mean 'photos'"),
    ("horse", "monet", "no dataset holds both 'horse' and 'monet'"),
    ("photo", "photos", "both 'photo'"),
    ("photo", "{folder}", "'photo' is in several datasets"),
    ("./missing", "zebra", "no folder './missing' .*, and unknown domain './missing'"),
    ("missing/", "zebra", "no folder 'missing/' .*, and unknown domain 'missing/'"),  # both say both
    ("monett", "zebra", r"no folder 'monett' .*, and unknown domain 'monett' \(did you mean 'monet'\?\)"),
])
def test_bad_domains_fail_before_any_download(root, tmp_path, a, b, message):
    folder = tmp_path / "mine"
    folder.mkdir()
    with pytest.raises(UserError, match=message):
        resolve_domains(a, b.format(folder=folder), download=True)  # no server: a download would fail
    assert not root.exists()


def test_folders_and_dataset_paths_come_first(root, tmp_path, monkeypatch):
    mine = tmp_path / "monet"  # a folder named like a domain wins over the name
    mine.mkdir()
    fake_dataset(root, "monet2photo")
    monkeypatch.chdir(tmp_path)
    assert resolve_domains("monet", "monet2photo/trainB", download=False) == (
        Path("monet"), root / "monet2photo" / "trainB")
    # One folder and one name: the name must belong to a single dataset.
    fake_dataset(root, "horse2zebra")
    assert resolve_domains(str(mine), "zebra", download=False) == (mine, root / "horse2zebra" / "trainB")


def test_no_download_names_the_command_to_run(root):
    with pytest.raises(UserError, match="cyclegan datasets download monet2photo"):
        resolve_domains("photos", "monet", download=False)


def test_missing_dataset_is_downloaded(server, root):
    dataset_zip(server.folder / "datasets" / "monet2photo.zip", "monet2photo", n=2)
    a, b = resolve_domains("photos", "monet")
    assert (a, b) == (root / "monet2photo" / "trainB", root / "monet2photo" / "trainA")
    assert len(list(a.iterdir())) == 2 and len(list(b.iterdir())) == 2
    assert server.requests == [("datasets/monet2photo.zip", None)]
    # DATASET/trainA paths download too.
    dataset_zip(server.folder / "datasets" / "horse2zebra.zip", "horse2zebra", n=1)
    assert resolve_domains("horse2zebra/trainA", "zebra") == (root / "horse2zebra" / "trainA",
                                                              root / "horse2zebra" / "trainB")
    assert server.requests[1:] == [("datasets/horse2zebra.zip", None)]  # once, for both sides


# -- presets → pretrained models -------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, model", [
    (dict(preset="season"), "summer2winter_yosemite"),
    (dict(preset="season", direction="BtoA"), "winter2summer_yosemite"),
    (dict(preset="season", to="summer"), "winter2summer_yosemite"),
    (dict(preset="season", to="winter"), "summer2winter_yosemite"),
    (dict(preset="painting"), "style_monet"),
    (dict(preset="painting", style="vangogh"), "style_vangogh"),
    (dict(preset="painting", style="Ukiyo-e"), "style_ukiyoe"),
    (dict(preset="painting", style="monet", to="photo"), "monet2photo"),
    (dict(preset="photo"), "monet2photo"),
    (dict(preset="photo", direction="BtoA"), "style_monet"),
])
def test_presets(kwargs, model):
    assert resolve_preset(**kwargs) == model


@pytest.mark.parametrize("kwargs, message", [
    (dict(preset="seasons"), "did you mean 'season'"),
    (dict(preset="painting", style="picasso"), "unknown style 'picasso'"),
    (dict(preset="painting", style="cezanne", direction="BtoA"), "no official cezanne2photo"),
    (dict(preset="photo", style="vangogh"), "no official vangogh2photo"),
    (dict(preset="season", to="autumn"), "choose winter or summer"),
    (dict(preset="season", to="winter", direction="BtoA"), "contradict"),
    (dict(preset="season", style="monet"), "--style goes with"),
])
def test_bad_presets(kwargs, message):
    with pytest.raises(UserError, match=message):
        resolve_preset(**kwargs)


def test_translate_model_options():
    assert catalog.translate_model() is None
    assert catalog.translate_model(preset="season", to="summer") == "winter2summer_yosemite"
    assert catalog.translate_model(pretrained="horse2zebra") == "horse2zebra"
    assert catalog.translate_model(pretrained="horse2zebra", direction="BtoA") == "zebra2horse"
    with pytest.raises(UserError, match="not both"):
        catalog.translate_model(preset="season", pretrained="horse2zebra")
    with pytest.raises(UserError, match="go with --preset"):
        catalog.translate_model(style="monet")


def test_reverse_models():
    assert reverse_model("horse2zebra") == "zebra2horse"
    assert reverse_model("style_monet") == "monet2photo"
    assert reverse_model("sat2map") == "map2sat"
    with pytest.raises(UserError, match="no official reverse"):
        reverse_model("style_vangogh")


def test_pretrained_model_downloads_once_into_the_cache(server, tmp_path):
    served = server.folder / "pretrained_models" / "style_monet.pth"
    served.parent.mkdir()
    served.write_bytes(b"weights" * 1000)
    path = pretrained_path("style_monet")
    assert path == tmp_path / "model-cache" / "style_monet.pth"
    assert path.read_bytes() == served.read_bytes()
    assert pretrained_path("style_monet") == path
    assert server.requests == [("pretrained_models/style_monet.pth", None)]
    # A damaged cache file is noticed (its hash was recorded) and fetched again.
    path.write_bytes(b"damaged")
    assert pretrained_path("style_monet").read_bytes() == served.read_bytes()
    assert len(server.requests) == 2
    assert (path.parent / CHECKSUMS).is_file()
    with pytest.raises(UserError, match="did you mean 'style_monet'"):
        pretrained_path("style_monnet")


# -- commands --------------------------------------------------------------------------------------


def test_list_commands(root):
    fake_dataset(root, "horse2zebra")
    result = runner.invoke(app, ["datasets", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in DATASETS:
        assert name in result.output
    line = next(line for line in result.output.splitlines() if "horse2zebra" in line)
    assert "✓" in line and "✓" not in next(line for line in result.output.splitlines() if "maps " in line)
    result = runner.invoke(app, ["models", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in PRETRAINED:
        assert name in result.output


def test_download_commands(server, root, tmp_path):
    dataset_zip(server.folder / "datasets" / "horse2zebra.zip", "horse2zebra", n=1)
    elsewhere = tmp_path / "elsewhere"
    result = runner.invoke(app, ["datasets", "download", "horse2zebra", "--root", str(elsewhere)])
    assert result.exit_code == 0, result.output
    assert (elsewhere / "horse2zebra" / "testB").is_dir() and not root.exists()

    model = server.folder / "pretrained_models" / "style_vangogh.pth"
    model.parent.mkdir()
    model.write_bytes(b"vangogh weights")
    result = runner.invoke(app, ["models", "download", "style_vangogh"])
    assert result.exit_code == 0, result.output
    cached = tmp_path / "model-cache" / "style_vangogh.pth"
    assert hashlib.sha256(cached.read_bytes()).digest() == hashlib.sha256(model.read_bytes()).digest()

    result = runner.invoke(app, ["models", "download", "style_vangogh", "style_picasso"])
    assert result.exit_code == 2 and "style_picasso" in result.output
    result = runner.invoke(app, ["datasets", "download", "horse2zebar"])
    assert result.exit_code == 2 and "did you mean 'horse2zebra'" in result.output


def test_train_on_named_domains_downloads_the_dataset(server, root, tmp_path):
    archive = dataset_zip(server.folder / "datasets" / "monet2photo.zip", "monet2photo", n=2)
    runs = tmp_path / "runs"
    tiny = ["--image-size", "32", "--load-size", "36", "--ngf", "8", "--ndf", "8", "--net-g", "resnet_6blocks",
            "--workers", "0", "--wandb-mode", "disabled"]
    result = runner.invoke(app, ["train", "--domainA", "photos", "--domainB", "monet", "--max-steps", "2",
                                 "--checkpoints-dir", str(runs), "--name", "p2m", *tiny])
    assert result.exit_code == 0, result.output + repr(result.exception)
    config = json.loads((runs / "p2m" / "config.json").read_text())
    assert Path(config["domain_a"]) == (root / "monet2photo" / "trainB").resolve()  # photos
    assert Path(config["domain_b"]) == (root / "monet2photo" / "trainA").resolve()  # monet
    assert (runs / "p2m" / "G_AB.safetensors").is_file()
    assert server.requests == [("datasets/monet2photo.zip", None)]

    # With the dataset gone and downloads off, nothing is fetched and the error says what to run.
    archive.unlink()
    result = runner.invoke(app, ["train", "--domainA", "horse", "--domainB", "zebra", "--no-download",
                                 "--checkpoints-dir", str(runs), *tiny])
    assert result.exit_code == 2 and "cyclegan datasets download horse2zebra" in result.output
    result = runner.invoke(app, ["train", "--domainA", "photos", "--domainB", "monett", *tiny])
    assert result.exit_code == 2 and "did you mean 'monet'" in result.output
    assert len(server.requests) == 1


def original_generator(path: Path, seed: int):
    """A small generator saved as a bare state dict, the layout of the official .pth files."""
    torch.manual_seed(seed)
    net = build_generator(GeneratorSpec(ngf=8, n_blocks=2), init_type="kaiming").eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    return net


def test_translate_with_a_preset_downloads_and_uses_the_pretrained_generator(server, tmp_path):
    models = server.folder / "pretrained_models"
    monet = original_generator(models / "style_monet.pth", seed=0)
    original_generator(models / "style_vangogh.pth", seed=1)
    src = make_folder(tmp_path / "photos", 2, size=(32, 24))
    fast = ["--device", "cpu", "--workers", "0", "--no-progress"]

    result = runner.invoke(app, ["translate", "--preset", "painting", "--style", "monet", str(src),
                                 str(tmp_path / "out"), *fast])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert server.requests == [("pretrained_models/style_monet.pth", None)]
    assert (tmp_path / "model-cache" / "style_monet.pth").is_file()
    for image in sorted(src.iterdir()):
        with torch.no_grad():
            expected = np.asarray(to_image(monet(to_tensor(load_image(image)[0])[None])[0]), dtype=int)
        got = np.asarray(Image.open(tmp_path / "out" / image.name), dtype=int)
        assert np.abs(got - expected).max() <= 1

    # The second run finds the model in the cache; --pretrained takes any catalog name.
    result = runner.invoke(app, ["translate", "--pretrained", "style_vangogh", str(src), str(tmp_path / "vg"),
                                 *fast])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert len(server.requests) == 2
    name = sorted(src.iterdir())[0].name
    assert not np.array_equal(np.asarray(Image.open(tmp_path / "out" / name)),
                              np.asarray(Image.open(tmp_path / "vg" / name)))

    for args, message in [
        (["--preset", "painting", "--style", "picasso", str(src), str(tmp_path / "x")], "unknown style"),
        (["--preset", "season", "ckpt", str(src), str(tmp_path / "x")], "no CHECKPOINT"),
        ([str(src), str(tmp_path / "x")], "give CHECKPOINT INPUT OUTPUT"),
        # a bad output plan stops before the (not yet cached) model is downloaded
        (["--preset", "season", str(src), str(src)], "is the input folder"),
    ]:
        result = runner.invoke(app, ["translate", *args, *fast])
        assert result.exit_code == 2 and message in result.output, result.output
    assert len(server.requests) == 2


def test_preset_reproduces_the_original_implementation(server, tmp_path):
    """The shared reference generator, served as style_monet, gives the original release's outputs."""
    ref = shared_path("fixtures", "reference_generator")
    (server.folder / "pretrained_models").mkdir()
    shutil.copy(ref / "latest_net_G.pth", server.folder / "pretrained_models" / "style_monet.pth")
    src = tmp_path / "in"
    src.mkdir()
    for name in ("in_0.png", "in_1.png"):
        shutil.copy(ref / name, src / name)
    result = runner.invoke(app, ["translate", "--preset", "painting", str(src), str(tmp_path / "out"),
                                 "--device", "cpu", "--workers", "0", "--no-progress"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    for i in (0, 1):
        expected = (np.load(ref / f"out_{i}.npy")[0].transpose(1, 2, 0) + 1) * 127.5
        got = np.asarray(Image.open(tmp_path / "out" / f"in_{i}.png"), dtype=float)
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() <= 1.0
