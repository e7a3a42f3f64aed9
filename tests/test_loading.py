"""Loading files from anywhere: damaged or forged model files give one-line errors and never exhaust
memory; downloads and the modules that only list things stay free of torch."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import warnings
import zipfile
from pathlib import Path

import pytest
import torch
from fileserver import FileServer
from safetensors.torch import save_file

from cyclegan import catalog, checkpoint, metrics
from cyclegan.checkpoint import NETWORK_KEY, load_state
from cyclegan.download import sha256_file
from cyclegan.errors import UserError
from cyclegan.models import GeneratorSpec, build_generator
from cyclegan.networks import load_network
from cyclegan.style import vgg
from tests.conftest import REPO, shared_path

SMALL = GeneratorSpec(ngf=4, n_blocks=1)
OLD_KEY = "cyclegan.generator"  # what earlier releases wrote; their files keep loading


def small_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return build_generator(SMALL, init_type="normal").state_dict()


def export(path: Path, state: dict[str, torch.Tensor], spec_json: str, key: str = OLD_KEY) -> Path:
    save_file({k: v.contiguous() for k, v in state.items()}, str(path), metadata={key: spec_json})
    return path


def one_line(error: pytest.ExceptionInfo, path: Path) -> str:
    message = str(error.value)
    assert "\n" not in message and str(path) in message, message
    return message


# -- training states (--resume) ------------------------------------------------------------------------


def training_state() -> dict:
    return {"trainer": {"G_AB": small_state()}, "rng": {"torch": torch.get_rng_state()}, "step": 3, "epoch": 1,
            "batch_in_epoch": 0, "world_size": 1, "wandb_id": None, "config": {}}


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage", "a list", "no trainer", "a bare state dict"])
def test_damaged_training_state_is_a_one_line_error(tmp_path, damage):
    path = tmp_path / "latest.pt"
    torch.save(training_state(), path)
    whole = path.read_bytes()
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "truncated":
        path.write_bytes(whole[: len(whole) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x00junk" * 1000)
    elif damage == "a list":
        torch.save([1, 2, 3], path)
    elif damage == "no trainer":
        torch.save({k: v for k, v in training_state().items() if k != "trainer"}, path)
    else:
        torch.save(small_state(), path)
    with pytest.raises(UserError) as error:
        load_state(path)
    one_line(error, path)


def test_whole_training_state_loads(tmp_path):
    torch.save(training_state(), tmp_path / "latest.pt")
    state = load_state(tmp_path / "latest.pt")
    assert state["step"] == 3
    torch.testing.assert_close(state["trainer"]["G_AB"], small_state())


# -- safetensors exports -------------------------------------------------------------------------------


def spec_json(**changes) -> str:
    return json.dumps({**SMALL.to_dict(), **changes})


@pytest.mark.parametrize("meta, message", [
    ("{not json", "not JSON"),
    (spec_json(arch="transformer"), "unknown generator architecture"),
    (json.dumps({k: v for k, v in SMALL.to_dict().items() if k != "ngf"}), "lacks ngf"),
    (spec_json(colour="blue"), "unknown fields colour"),
    (spec_json(ngf="4"), "ngf='4'"),
    (spec_json(dropout="yes"), "dropout"),
    (spec_json(norm="group"), "unknown norm"),
    (json.dumps([1, 2]), "not a JSON object"),
    (spec_json(ngf=8), r"shapes model.1.weight \[4, 3, 7, 7\] \(expected \[8, 3, 7, 7\]\)"),
    (spec_json(n_blocks=2), r"missing \['model.11"),
    (spec_json(n_blocks=0), r"unexpected \['model.10"),
])
def test_bad_export_metadata_is_a_one_line_error(tmp_path, meta, message):
    path = export(tmp_path / "G.safetensors", small_state(), meta)
    with pytest.raises(UserError, match=message) as error:
        load_network(path)
    one_line(error, path)
    if meta.startswith("{\""):  # the same spec under today's key, with its kind
        path = export(tmp_path / "N.safetensors", small_state(), json.dumps({"kind": "generator", **json.loads(meta)}),
                      NETWORK_KEY)
        with pytest.raises(UserError, match=message) as error:
            load_network(path)
        one_line(error, path)


@pytest.mark.parametrize("change", ["extra", "missing"])
def test_export_with_extra_or_missing_tensors(tmp_path, change):
    state = small_state()
    if change == "extra":
        state["model.99.weight"] = torch.zeros(2)
    else:
        del state["model.1.bias"]
    path = export(tmp_path / "G.safetensors", state, spec_json())
    with pytest.raises(UserError, match="unexpected" if change == "extra" else "missing") as error:
        load_network(path)
    one_line(error, path)


def test_metadata_bomb_is_refused_before_building(tmp_path, monkeypatch):
    """ngf=10**6 would ask for terabytes: refused from the metadata alone, nothing built."""
    path = export(tmp_path / "G.safetensors", small_state(), spec_json(ngf=10**6, n_blocks=10**4))

    def no_build(*args, **kwargs):
        raise AssertionError("a network was built for an implausible spec")

    monkeypatch.setattr("cyclegan.models.generator.build_generator", no_build)
    with pytest.raises(UserError, match="ngf=1000000") as error:
        load_network(path)
    one_line(error, path)


# -- forged files under a memory limit -------------------------------------------------------------------

LIMITED = """
import resource, sys
import torch  # before the limit: importing maps large libraries
from cyclegan.errors import UserError
with open("/proc/self/status") as f:
    used = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize"))
limit = used + (1 << 30)  # 1 GiB beyond what the interpreter holds now
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
path = sys.argv[1]
try:
{body}
except UserError as e:
    print("UserError:", e)
    sys.exit(3)
"""


def run_with_memory_limit(body: str, path: Path) -> subprocess.CompletedProcess:
    code = LIMITED.format(body=textwrap.indent(textwrap.dedent(body), "    "))
    return subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120,
                          cwd=REPO)


def assert_refused(result: subprocess.CompletedProcess, path: Path) -> None:
    assert result.returncode == 3, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0], result.stdout


def stride_bomb(stem_channels: int = 10**5) -> dict[str, torch.Tensor]:
    """A release-layout state dict whose stem claims 10**5 channels from one stored float."""
    state = dict(small_state())
    state["model.1.weight"] = torch.zeros(1).expand(stem_channels, 3, 7, 7)
    return state


@pytest.mark.parametrize("loader", ["pth", "vgg", "resume"])
def test_stride_zero_bomb_under_a_memory_limit(tmp_path, loader):
    path = tmp_path / "forged.pth"
    state = stride_bomb()
    if loader == "vgg":  # float16, as VGG weights often are: reading them as float32 would copy
        state = {"features.0.weight": torch.zeros(1, dtype=torch.float16).expand(10**5, 3, 7, 7)}
    if loader == "resume":
        state = {**training_state(), "trainer": {"G_AB": state}}
    torch.save(state, path)
    assert path.stat().st_size < 200_000  # a few bytes of data claiming 58 GB
    body = {
        "pth": "from cyclegan.networks import load_network; load_network(path)",
        "vgg": "from cyclegan.style.vgg import load_vgg19; load_vgg19(path, ['conv1_1'])",
        "resume": "from cyclegan.checkpoint import load_state; s = load_state(path)\n"
                  "torch.nn.Module.load_state_dict  # what training would do next\n"
                  "[t.clone() for t in s['trainer']['G_AB'].values()]",
    }[loader]
    assert_refused(run_with_memory_limit(body, path), path)


def test_metadata_that_fits_bounds_but_not_tensors_under_a_memory_limit(tmp_path):
    """ngf=1024 and 64 blocks is within bounds (~50 GB of weights) but not what the file holds."""
    path = export(tmp_path / "G.safetensors", small_state(), spec_json(ngf=1024, n_blocks=64))
    body = "from cyclegan.networks import load_network; load_network(path)"
    assert_refused(run_with_memory_limit(body, path), path)


def test_real_tensors_of_an_implausible_size_are_refused(tmp_path, monkeypatch):
    state = dict(small_state())
    state["model.1.weight"] = torch.zeros(2000, 3, 7, 7)  # a real 1 MB stem: ngf=2000
    torch.save(state, tmp_path / "wide.pth")
    monkeypatch.setattr("cyclegan.models.generator.build_generator", lambda *a, **k: pytest.fail("built"))
    with pytest.raises(UserError, match="implausible generator: ngf=2000") as error:
        load_network(tmp_path / "wide.pth")
    one_line(error, tmp_path / "wide.pth")


def test_many_views_of_one_storage_are_refused(tmp_path):
    base = torch.zeros(100_000)
    torch.save({f"features.{i}.weight": base[: 90_000 + i] for i in range(50)}, tmp_path / "views.pth")
    with pytest.raises(UserError, match="views sharing storage") as error:
        vgg.load_vgg19(tmp_path / "views.pth", ["conv1_1"])
    one_line(error, tmp_path / "views.pth")


def test_overlapping_view_is_refused(tmp_path):
    state = dict(small_state())
    state["model.1.weight"] = torch.zeros(4 * 3 * 7 * 7).as_strided((4, 3, 7, 7), (1, 1, 1, 1))
    torch.save(state, tmp_path / "overlap.pth")
    with pytest.raises(UserError, match="overlap"):
        load_network(tmp_path / "overlap.pth")


def test_zip_that_unpacks_to_more_than_the_file_is_refused(tmp_path):
    path = tmp_path / "bomb.pth"
    torch.save(small_state(), path)
    packed = tmp_path / "packed.pth"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info) + (b"\0" * 1_000_000 if "/data/" in info.filename else b""))
    with pytest.raises(UserError, match="unpacks to"):
        load_network(packed)


def test_huge_file_is_refused_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "huge.pth"
    torch.save(small_state(), path)
    monkeypatch.setattr(checkpoint, "MAX_FILE_BYTES", path.stat().st_size - 1)
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("read"))
    with pytest.raises(UserError, match="too big"):
        load_network(path)


# -- downloads: one helper, torch-free --------------------------------------------------------------------


def test_download_and_catalog_import_no_torch():
    code = "import sys, cyclegan.download, cyclegan.catalog; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.stdout.strip() == "False", result.stderr


def test_pretrained_offline_names_the_way_around(tmp_path, monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.setenv("CYCLEGAN_MODELS_DIR", str(tmp_path / "cache"))
    with FileServer(tmp_path / "served") as server:  # serves nothing: every model is missing
        monkeypatch.setenv("CYCLEGAN_MODELS_URL", server.url)
        with pytest.raises(UserError, match="HTTP 404") as error:
            catalog.pretrained_path("style_monet")
    message = one_line(error, tmp_path / "cache" / "style_monet.pth")
    assert "CYCLEGAN_MODELS_URL" in message and "CYCLEGAN_MODELS_DIR" in message


def test_inception_download_is_checked_against_the_pinned_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    served = tmp_path / "served" / "inception.pt"
    served.parent.mkdir()
    served.write_bytes(b"not the published network")
    with FileServer(served.parent) as server:
        monkeypatch.setattr(metrics, "INCEPTION_URL", f"{server.url}/inception.pt")
        monkeypatch.setattr(metrics, "INCEPTION_SHA256", "0" * 64)
        with pytest.raises(UserError, match="not the published file") as error:
            metrics.load_inception(None)
    assert "--inception" in one_line(error, metrics.default_inception_path())
    assert not metrics.default_inception_path().exists()


def test_a_different_inception_file_is_warned_about(tmp_path, monkeypatch, caplog):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script's nudge towards torch.compile
        net = torch.jit.script(torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()))
    net.save(str(tmp_path / "mine.pt"))
    monkeypatch.setattr(metrics, "INCEPTION_SHA256", "0" * 64)
    with caplog.at_level(logging.WARNING, logger="cyclegan.metrics"):
        metrics.load_inception(tmp_path / "mine.pt")
    assert "not the standard FID Inception file" in caplog.text
    caplog.clear()
    monkeypatch.setattr(metrics, "INCEPTION_SHA256", sha256_file(tmp_path / "mine.pt"))
    with caplog.at_level(logging.WARNING, logger="cyclegan.metrics"):
        metrics.load_inception(tmp_path / "mine.pt")
    assert "not the standard" not in caplog.text


def test_the_published_inception_hash_is_pinned(tmp_path, caplog):
    """The standard file's published SHA-256 is checked: the copy in ../shared (a re-export of the same
    network, another file) is named as one whose FID is not comparable with published figures."""
    other = shared_path("weights", "inception-2015-12-05-fid.pt")
    with caplog.at_level(logging.WARNING, logger="cyclegan.metrics"):
        metrics.load_inception(other)
    assert "not the standard FID Inception file" in caplog.text and "f58cb9b6ec32" in caplog.text


def test_a_cached_copy_that_is_not_the_published_file_is_downloaded_again(tmp_path, monkeypatch):
    from cyclegan.download import cached_download

    monkeypatch.setenv("no_proxy", "127.0.0.1")
    (tmp_path / "served").mkdir()
    (tmp_path / "served" / "net.pt").write_bytes(b"the published network")
    cached = tmp_path / "cache" / "net.pt"
    cached.parent.mkdir()
    cached.write_bytes(b"something else")
    with FileServer(tmp_path / "served") as server:
        cached_download(cached, f"{server.url}/net.pt", what="net", offline="", sha256=sha256_file(
            tmp_path / "served" / "net.pt"))
    assert cached.read_bytes() == b"the published network"


def test_a_pickle_that_is_not_weights_is_refused_without_advice_to_run_it(tmp_path):
    torch.save({"net": small_state(), "extra": Path("x")}, tmp_path / "pickle.pth")  # a Python object inside
    with pytest.raises(UserError) as error:
        load_network(tmp_path / "pickle.pth")
    message = one_line(error, tmp_path / "pickle.pth")
    assert "not a weights file this tool reads (Unsupported global" in message and "weights_only" not in message


class RunsCode:
    def __reduce__(self):
        import os

        return (os.system, ("true",))


def test_a_pickle_that_would_run_code_is_refused_without_advice_to_run_it(tmp_path):
    torch.save({"net": small_state(), "payload": RunsCode()}, tmp_path / "evil.pth")
    with pytest.raises(UserError) as error:
        load_network(tmp_path / "evil.pth")
    message = one_line(error, tmp_path / "evil.pth")
    assert "not a weights file this tool reads (Trying to load unsupported GLOBAL" in message
    assert "weights_only" not in message and "Re-running" not in message


def style_state(n_styles: int = 1) -> dict[str, torch.Tensor]:
    from cyclegan.style.fast import TransformerNet

    torch.manual_seed(0)
    return TransformerNet(n_styles).state_dict()


def test_forged_style_network_metadata_is_bounded_before_it_is_used(tmp_path):
    """n_styles 10**10 made the loader build 10**10 style names (a MemoryError traceback at 3 GB)."""
    path = tmp_path / "style.safetensors"
    save_file({k: v.contiguous() for k, v in style_state().items()}, str(path),
              metadata={"cyclegan.style_net": json.dumps({"kind": "fast_style", "n_styles": 10**10})})
    assert_refused(run_with_memory_limit("from cyclegan.networks import load_network; load_network(path)", path),
                   path)
    for key, spec, message in [
        (NETWORK_KEY, {"kind": "fast_style", "n_styles": 10**10}, "n_styles=10000000000 is not a whole number"),
        ("cyclegan.style_net", {"kind": "fast_style", "value_range": "ab"}, "value_range 'ab'"),
        ("cyclegan.style_net", {"kind": "fast_style", "value_range": [0, 0]}, r"value_range \[0, 0\]"),
        (NETWORK_KEY, {"kind": "fast_style", "styles": ["x" * 10**6]}, "style names"),
        (NETWORK_KEY, {"kind": "teapot"}, "unknown network kind 'teapot'"),
    ]:
        save_file({k: v.contiguous() for k, v in style_state().items()}, str(path), metadata={key: json.dumps(spec)})
        with pytest.raises(UserError, match=message) as error:
            load_network(path)
        one_line(error, path)


def test_a_style_pth_claiming_more_styles_than_any_network_is_refused_before_building(tmp_path, monkeypatch):
    """A 32 MB .pth whose first layer claims 100000 styles built a 2 GB network before refusing it."""
    from cyclegan.style import fast

    state = style_state()
    state["in1.weight"] = torch.zeros(100_000, 32)  # 13 MB of real data
    torch.save(state, tmp_path / "forged.pth")
    monkeypatch.setattr(fast.TransformerNet, "__init__", lambda *a, **k: pytest.fail("built"))
    with pytest.raises(UserError, match="100000 styles") as error:
        load_network(tmp_path / "forged.pth")
    one_line(error, tmp_path / "forged.pth")
