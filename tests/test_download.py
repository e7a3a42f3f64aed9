"""Downloads against a local HTTP server: resume, retries, checksums, and safe dataset extraction."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import zipfile
from pathlib import Path

import pytest
from fileserver import FileServer, dataset_zip

from cyclegan.download import CHECKSUMS, download, install_dataset, is_dataset
from cyclegan.errors import UserError


@pytest.fixture
def server(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    with FileServer(tmp_path / "served") as s:
        yield s


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def test_download_and_extract_dataset(server, tmp_path):
    archive = dataset_zip(server.folder / "tiny.zip", "tiny", n=2)
    root = tmp_path / "data"
    folder = install_dataset(f"{server.url}/tiny.zip", root, "tiny", backoff=0)
    assert folder == root / "tiny" and is_dataset(folder)
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            assert (root / info.filename).read_bytes() == zf.read(info)
    # The archive is gone once extracted, no temporary folder is left, and the hash is on record.
    assert sorted(p.name for p in root.iterdir()) == [CHECKSUMS, "tiny"]
    assert json.loads((root / CHECKSUMS).read_text())["tiny.zip"]["sha256"] == sha256(archive)
    # A second call finds the dataset and makes no request.
    before = len(server.requests)
    assert install_dataset(f"{server.url}/tiny.zip", root, "tiny") == folder
    assert len(server.requests) == before


def test_archive_without_top_folder(server, tmp_path):
    dataset_zip(server.folder / "flat.zip", "flat", top_folder=False)
    folder = install_dataset(f"{server.url}/flat.zip", tmp_path / "data", "flat", backoff=0)
    assert is_dataset(folder) and len(list((folder / "testB").iterdir())) == 2


def test_resume_after_connection_cut(server, tmp_path):
    served = server.folder / "big.bin"
    served.write_bytes(os.urandom(300_000))
    server.cut["big.bin"] = 120_000
    dest = tmp_path / "cache" / "big.bin"
    sha = download(f"{server.url}/big.bin", dest, backoff=0)
    assert dest.read_bytes() == served.read_bytes()
    assert sha == sha256(served)
    # The first attempt asked for everything, the second only for what was missing.
    assert server.requests == [("big.bin", None), ("big.bin", "bytes=120000-")]
    assert not dest.with_name("big.bin.part").exists()


def interrupted(server, name: str, dest: Path, at: int) -> None:
    """Leave ``dest.part`` (and its record) as a run that lost its connection after ``at`` bytes does."""
    server.cut[name] = at
    with pytest.raises(UserError):
        download(f"{server.url}/{name}", dest, retries=0, backoff=0)
    assert dest.with_name(dest.name + ".part").stat().st_size == at
    server.requests.clear()
    server.if_ranges.clear()


def test_resume_a_partial_file_from_an_earlier_run(server, tmp_path):
    served = server.folder / "big.bin"
    served.write_bytes(os.urandom(50_000))
    dest = tmp_path / "big.bin"
    interrupted(server, "big.bin", dest, 20_000)
    download(f"{server.url}/big.bin", dest, backoff=0)
    assert dest.read_bytes() == served.read_bytes()
    assert server.requests == [("big.bin", "bytes=20000-")]
    assert server.if_ranges[0] is not None  # the resume names the version it continues
    assert not list(tmp_path.glob("big.bin.part*"))  # neither the .part nor its record is left


def test_a_part_of_another_version_is_never_spliced(server, tmp_path):
    served = server.folder / "model.bin"
    served.write_bytes(os.urandom(50_000))
    dest = tmp_path / "model.bin"
    interrupted(server, "model.bin", dest, 20_000)
    served.write_bytes(os.urandom(50_000))  # the server now has a new version of the same length
    sha = download(f"{server.url}/model.bin", dest, backoff=0)
    assert dest.read_bytes() == served.read_bytes() and sha == sha256(served)
    assert json.loads((tmp_path / CHECKSUMS).read_text())["model.bin"]["sha256"] == sha256(served)


def test_a_server_that_ignores_if_range_never_splices_two_versions(server, tmp_path):
    """It answers a range of the new version to a resume of the old one (206, not 200): the validators it
    sends with it show the version changed, and the download starts over."""
    served = server.folder / "model.bin"
    served.write_bytes(os.urandom(50_000))
    dest = tmp_path / "model.bin"
    interrupted(server, "model.bin", dest, 20_000)
    served.write_bytes(os.urandom(50_000))
    server.ignore_if_range = True
    download(f"{server.url}/model.bin", dest, backoff=0)
    assert dest.read_bytes() == served.read_bytes()


@pytest.mark.parametrize("how", ["no record", "another url", "no validators"])
def test_a_part_of_unknown_origin_starts_over(server, tmp_path, how):
    served = server.folder / "big.bin"
    served.write_bytes(os.urandom(30_000))
    (server.folder / "mirror").mkdir()
    (server.folder / "mirror" / "big.bin").write_bytes(served.read_bytes())
    dest = tmp_path / "big.bin"
    part = dest.with_name("big.bin.part")
    if how == "no record":  # left by an earlier version of this tool, which kept no record
        part.write_bytes(os.urandom(10_000))
    elif how == "another url":
        interrupted(server, "mirror/big.bin", dest, 10_000)
        part.write_bytes(os.urandom(10_000))
    else:
        server.validators = False
        interrupted(server, "big.bin", dest, 10_000)
    download(f"{server.url}/big.bin", dest, backoff=0)
    assert dest.read_bytes() == served.read_bytes()
    assert server.requests == [("big.bin", None)]


def test_a_download_of_unknown_length_is_not_recorded(server, tmp_path):
    served = server.folder / "model.pth"
    served.write_bytes(os.urandom(10_000))
    server.send_length = False
    server.cut["model.pth"] = 4_000  # the connection closes early, and nothing tells it apart from the end
    dest = tmp_path / "model.pth"
    download(f"{server.url}/model.pth", dest, backoff=0)
    assert dest.stat().st_size == 4_000
    assert not (tmp_path / CHECKSUMS).exists()  # a later, whole download is not refused as "changed"
    dest.unlink()
    server.send_length = True
    download(f"{server.url}/model.pth", dest, backoff=0)
    assert json.loads((tmp_path / CHECKSUMS).read_text())["model.pth"]["sha256"] == sha256(served)


def test_a_download_shorter_than_the_copy_it_replaces_is_not_recorded(server, tmp_path):
    (server.folder / "model.pth").write_bytes(os.urandom(4_000))
    dest = tmp_path / "model.pth"
    dest.write_bytes(os.urandom(10_000))  # a good copy, put there by hand
    download(f"{server.url}/model.pth", dest, backoff=0)
    assert not (tmp_path / CHECKSUMS).exists()


def test_pinned_sha256_is_enforced(server, tmp_path):
    served = server.folder / "net.pt"
    served.write_bytes(b"the published file")
    download(f"{server.url}/net.pt", tmp_path / "a.pt", sha256=sha256(served), backoff=0)
    with pytest.raises(UserError, match="not the published file"):
        download(f"{server.url}/net.pt", tmp_path / "b.pt", sha256="0" * 64, backoff=0)
    assert not list(tmp_path.glob("b.pt*"))


def test_server_that_ignores_range_starts_over(server, tmp_path):
    served = server.folder / "big.bin"
    served.write_bytes(os.urandom(50_000))
    server.ignore_range = True
    dest = tmp_path / "big.bin"
    dest.with_name("big.bin.part").write_bytes(b"x" * 20_000)
    download(f"{server.url}/big.bin", dest, backoff=0)
    assert dest.read_bytes() == served.read_bytes()


def test_server_errors_are_retried_and_give_up_with_a_clear_error(server, tmp_path):
    (server.folder / "f.bin").write_bytes(b"payload")
    server.fail["f.bin"] = [503, 500]
    download(f"{server.url}/f.bin", tmp_path / "f.bin", backoff=0)
    assert (tmp_path / "f.bin").read_bytes() == b"payload"
    assert len(server.requests) == 3

    server.fail["f.bin"] = [503] * 3
    with pytest.raises(UserError, match="after 3 attempts") as error:
        download(f"{server.url}/f.bin", tmp_path / "g.bin", retries=2, backoff=0)
    assert "to try again" in str(error.value) and "0 bytes" not in str(error.value)  # no .part was written
    assert not (tmp_path / "g.bin.part").exists()


def test_missing_file_fails_at_once(server, tmp_path):
    with pytest.raises(UserError, match="HTTP 404"):
        download(f"{server.url}/nothing.zip", tmp_path / "nothing.zip", backoff=0)
    assert len(server.requests) == 1
    assert not list(tmp_path.glob("nothing.zip*"))


def test_always_short_download_keeps_the_part_for_later(server, tmp_path):
    served = server.folder / "big.bin"
    served.write_bytes(os.urandom(10_000))
    dest = tmp_path / "big.bin"
    server.cut["big.bin"] = 4_000
    with pytest.raises(UserError, match="4000 bytes"):
        download(f"{server.url}/big.bin", dest, retries=0, backoff=0)
    assert not dest.exists()
    assert dest.with_name("big.bin.part").stat().st_size == 4_000


def test_checksum_recorded_then_verified(server, tmp_path):
    served = server.folder / "model.pth"
    served.write_bytes(b"first version")
    dest = tmp_path / "models" / "model.pth"
    download(f"{server.url}/model.pth", dest, backoff=0)
    record = json.loads((dest.parent / CHECKSUMS).read_text())
    assert record["model.pth"]["sha256"] == sha256(served)

    # The same name downloaded again must be the same file.
    dest.unlink()
    served.write_bytes(b"a different file")
    with pytest.raises(UserError, match="SHA-256"):
        download(f"{server.url}/model.pth", dest, backoff=0)
    assert not dest.exists() and not dest.with_name("model.pth.part").exists()


# -- refusing bad archives -------------------------------------------------------------------------


def assert_nothing_left(root: Path, outside: Path, outside_before: set[str]) -> None:
    """No dataset folder, temporary folder or archive in the root, and nothing new outside it."""
    left = [p.name for p in root.iterdir()] if root.exists() else []
    assert [n for n in left if n != CHECKSUMS] == []
    assert tree(outside) == outside_before


def test_corrupt_zip_is_refused(server, tmp_path):
    (server.folder / "broken.zip").write_bytes(b"PK\x03\x04 this is not really a zip archive" * 50)
    before = tree(tmp_path)
    root = tmp_path / "data"
    with pytest.raises(UserError, match="not a readable zip"):
        install_dataset(f"{server.url}/broken.zip", root, "broken", backoff=0)
    assert_nothing_left(root, tmp_path, before | {"data"})
    assert not (root / CHECKSUMS).exists()  # a bad archive is not remembered as the right one


def test_damaged_member_mid_extraction_leaves_no_half_dataset(server, tmp_path):
    archive = dataset_zip(server.folder / "crc.zip", "crc", n=3)
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:  # flip a byte inside the last member's data: a CRC error
        last = zf.infolist()[-1]
        offset = last.header_offset + 30 + len(last.filename.encode()) + len(last.extra) + 10
    data[offset] ^= 0xFF
    archive.write_bytes(bytes(data))
    before = tree(tmp_path)
    root = tmp_path / "data"
    with pytest.raises(UserError, match="damaged"):
        install_dataset(f"{server.url}/crc.zip", root, "crc", backoff=0)
    assert_nothing_left(root, tmp_path, before | {"data"})


def evil_zip(path: Path, entry: str, symlink: bool = False) -> Path:
    """A valid dataset archive plus one entry that points outside the folder it is extracted into."""
    dataset_zip(path, "evil")
    with zipfile.ZipFile(path, "a") as zf:
        info = zipfile.ZipInfo(entry)
        if symlink:
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc")
        else:
            zf.writestr(info, "escaped")
    return path


@pytest.mark.parametrize("entry, symlink, why", [
    ("../escaped.txt", False, "'..'"),
    ("evil/trainA/../../../escaped.txt", False, "'..'"),
    ("{tmp}/escaped.txt", False, "absolute"),
    ("evil/trainA/link", True, "symbolic link"),
])
def test_unsafe_entries_are_refused(server, tmp_path, entry, symlink, why):
    evil_zip(server.folder / "evil.zip", entry.format(tmp=tmp_path), symlink)
    before = tree(tmp_path)
    root = tmp_path / "data"
    with pytest.raises(UserError, match=why):
        install_dataset(f"{server.url}/evil.zip", root, "evil", backoff=0)
    assert_nothing_left(root, tmp_path, before | {"data"})


def test_archive_without_the_layout_is_refused(server, tmp_path):
    dataset_zip(server.folder / "half.zip", "half", layout=("trainA", "trainB"))
    root = tmp_path / "data"
    with pytest.raises(UserError, match="testA testB"):
        install_dataset(f"{server.url}/half.zip", root, "half", backoff=0)
    assert not (root / "half").exists()
    assert not list(root.glob(".half*"))


def test_incomplete_existing_folder_is_not_taken_for_a_dataset(server, tmp_path):
    dataset_zip(server.folder / "tiny.zip", "tiny")
    root = tmp_path / "data"
    (root / "tiny" / "trainA").mkdir(parents=True)
    with pytest.raises(UserError, match="not a complete dataset"):
        install_dataset(f"{server.url}/tiny.zip", root, "tiny", backoff=0)
    assert server.requests == [] and tree(root / "tiny") == {"trainA"}


def test_archive_placed_by_hand_is_used_offline(tmp_path):
    root = tmp_path / "data"
    dataset_zip(root / "tiny.zip", "tiny")
    folder = install_dataset("http://127.0.0.1:9/unreachable.zip", root, "tiny", retries=0)
    assert is_dataset(folder) and not (root / "tiny.zip").exists()


def test_stale_extraction_folder_is_cleaned_up(tmp_path):
    root = tmp_path / "data"
    stale = root / ".tiny.abc123.extracting" / "tiny" / "trainA"
    stale.mkdir(parents=True)
    dataset_zip(root / "tiny.zip", "tiny")
    install_dataset("http://127.0.0.1:9/unreachable.zip", root, "tiny", retries=0)
    assert not stale.parent.exists() and is_dataset(root / "tiny")


def test_file_url_mirror(tmp_path):
    served = tmp_path / "mirror" / "model.pth"
    served.parent.mkdir()
    served.write_bytes(os.urandom(5_000))
    dest = tmp_path / "cache" / "model.pth"
    dest.parent.mkdir()
    dest.with_name("model.pth.part").write_bytes(b"junk")  # file:// cannot resume: it starts over
    download(served.as_uri(), dest, backoff=0)
    assert dest.read_bytes() == served.read_bytes()


def test_partial_file_that_is_already_whole(server, tmp_path):
    served = server.folder / "big.bin"
    served.write_bytes(os.urandom(8_000))
    dest = tmp_path / "big.bin"
    interrupted(server, "big.bin", dest, 3_000)
    dest.with_name("big.bin.part").write_bytes(served.read_bytes())  # killed just before the rename
    download(f"{server.url}/big.bin", dest, backoff=0)
    assert dest.read_bytes() == served.read_bytes()
    assert server.requests == [("big.bin", "bytes=8000-")]  # answered 416: nothing more to send


def test_missing_file_in_a_file_url_mirror_fails_at_once(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        download((tmp_path / "absent.pth").as_uri(), tmp_path / "cache" / "absent.pth", backoff=10)


def test_an_archive_that_unpacks_to_far_more_than_it_holds_is_refused_before_extracting(tmp_path, monkeypatch):
    """A zip bomb: a few KB that would unpack to gigabytes. Its declared sizes are checked first."""
    root = tmp_path / "data"
    root.mkdir()
    with zipfile.ZipFile(root / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        for sub in ("trainA", "trainB", "testA", "testB"):
            zf.writestr(f"bomb/{sub}/zeros.png", bytes(4 << 20))  # 4 MB of zeros: a few KB packed
    with pytest.raises(UserError, match="more than images compress") as error:
        install_dataset("http://127.0.0.1:9/unused", root, "bomb")
    assert re.search(r"\(\d+:1\)", str(error.value)) and not (root / "bomb").exists() and not list(root.glob(".bomb.*"))
    dataset_zip(root / "small.zip", "small")
    monkeypatch.setenv("CYCLEGAN_MAX_EXTRACT_GB", "1e-6")  # a kilobyte
    with pytest.raises(UserError, match="more than the 1e-06 GB allowed .*CYCLEGAN_MAX_EXTRACT_GB"):
        install_dataset("http://127.0.0.1:9/unused", root, "small")
    monkeypatch.delenv("CYCLEGAN_MAX_EXTRACT_GB")
    assert is_dataset(install_dataset("http://127.0.0.1:9/unused", root, "small"))


def test_a_keep_alive_response_shorter_than_its_content_length_is_not_accepted(tmp_path):
    """HTTP/1.1 with Content-Length, closed early (http.client then reads b"" instead of raising): the file
    is not taken, its hash not recorded, and the part kept to resume from."""
    import socket
    import threading

    body = os.urandom(10_000)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        for _ in range(2):
            conn, _ = listener.accept()
            conn.recv(4096)
            conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 10000\r\nETag: "v1"\r\n\r\n' + body[:4_000])
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    dest = tmp_path / "f.bin"
    with pytest.raises(UserError, match="closed after 4000 of 10000 bytes"):
        download(f"http://127.0.0.1:{listener.getsockname()[1]}/f.bin", dest, retries=1, backoff=0)
    listener.close()
    assert not dest.exists() and not (tmp_path / CHECKSUMS).exists()
    assert dest.with_name("f.bin.part").stat().st_size == 4_000


def test_offline_fails_at_once_instead_of_retrying(tmp_path, monkeypatch):
    import socket
    import time

    with socket.socket() as s:  # a port nobody listens on: the connection is refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(UserError, match="the server refused the connection"):
        download(f"http://127.0.0.1:{port}/model.pth", tmp_path / "model.pth", retries=3, backoff=5)
    assert time.monotonic() - start < 4  # the first back-off alone would be 5 s

    def no_dns(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    with pytest.raises(UserError, match="its host name does not resolve"):
        download("http://models.example/model.pth", tmp_path / "model.pth", retries=3, backoff=5)
    assert time.monotonic() - start < 8
