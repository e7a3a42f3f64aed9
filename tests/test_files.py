"""Atomic writes: permissions from the umask, clear messages for full and read-only disks, no leftovers."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from cyclegan.errors import UserError
from cyclegan.files import DiskError, atomic_write, remove_stale_temporaries, write_json


def test_written_files_follow_the_umask(tmp_path: Path):
    # The umask is read when the module is imported, so check in a fresh process started under umask 022.
    code = ("from cyclegan.files import write_json; import sys; write_json(sys.argv[1], {'a': 1})")
    out = tmp_path / "sub" / "config.json"
    subprocess.run([sys.executable, "-c", code, str(out)], check=True, preexec_fn=lambda: os.umask(0o022))
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    out2 = tmp_path / "private.json"
    subprocess.run([sys.executable, "-c", code, str(out2)], check=True, preexec_fn=lambda: os.umask(0o077))
    assert stat.S_IMODE(out2.stat().st_mode) == 0o600


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "no space left"), (errno.EROFS, "read-only")])
def test_a_full_or_read_only_disk_is_one_clear_error(tmp_path: Path, code: int, words: str):
    target = tmp_path / "latest.pt"
    target.write_bytes(b"the last good checkpoint")

    def write(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise OSError(code, os.strerror(code))

    with pytest.raises(DiskError) as info:
        atomic_write(target, write)
    assert words in str(info.value) and str(target) in str(info.value)
    assert isinstance(info.value, UserError)
    assert target.read_bytes() == b"the last good checkpoint"  # kept
    assert [p.name for p in tmp_path.iterdir()] == ["latest.pt"]  # no temporary left behind


def test_other_write_errors_name_the_file(tmp_path: Path):
    def write(tmp: Path) -> None:
        raise OSError(errno.EIO, "Input/output error")

    with pytest.raises(UserError, match="cannot write .*x.json: Input/output error") as info:
        atomic_write(tmp_path / "x.json", write)
    assert not isinstance(info.value, DiskError)


def test_only_our_stale_temporaries_are_removed(tmp_path: Path):
    ours = tmp_path / ".latest.pt.abc123.cyclegan-tmp"
    nested = tmp_path / "epoch_005" / ".G_AB.safetensors.x1.cyclegan-tmp"
    theirs = [tmp_path / ".notes.tmp", tmp_path / "photo.cyclegan-tmp", tmp_path / "G_AB.safetensors"]
    for path in (ours, nested, *theirs):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path, older_than=3600) == 0  # a writer may still be busy with them
    assert remove_stale_temporaries(tmp_path) == 1
    assert not ours.exists() and nested.exists()
    assert remove_stale_temporaries(tmp_path, recursive=True) == 1
    assert not nested.exists() and all(p.exists() for p in theirs)


def test_write_json_round_trip(tmp_path: Path):
    path = write_json(tmp_path / "a" / "b.json", {"path": Path("x"), "n": 1})
    assert path.read_text() == '{\n  "path": "x",\n  "n": 1\n}\n'
