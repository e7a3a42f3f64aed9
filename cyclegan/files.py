"""Writing files safely: atomic writes, the user's umask, clear messages for full or read-only disks.

Every file the toolkit writes (checkpoints, images, JSON) goes through ``atomic_write``: the bytes go to a
temporary file in the same folder, which is renamed onto the target only when complete, so a crash, a
kill or Ctrl-C never leaves a truncated file under the real name. The temporaries carry a name of our own
(``.NAME.XXXXXXXX.cyclegan-tmp``) so that ones left by a killed process can be recognised and removed
(``remove_stale_temporaries``) without touching anybody else's files.

This module imports no torch: the download code and the fast commands use it too.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from .errors import UserError

TMP_SUFFIX = ".cyclegan-tmp"

# mkstemp creates files readable by their owner only; the files we write are the user's outputs and
# should get the permissions any other program would give them. The umask can only be read by setting
# it, which is not thread-safe: read it once, at import, before any writer thread exists.
_UMASK = os.umask(0o022)
os.umask(_UMASK)

# errno → what to tell the user. Anything else is reported with the system's own words.
_DISK_ERRORS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}


class DiskError(UserError):
    """A write failed for a reason that will fail every later write too (full, read-only, no permission).

    Commands that write many files stop at the first one instead of failing each in turn.
    """


def disk_error(path: str | Path, error: OSError) -> UserError:
    """A one-line ``UserError`` naming ``path`` and why writing it failed."""
    why = _DISK_ERRORS.get(error.errno)
    if why is not None:
        return DiskError(f"cannot write {path}: {why}")
    return UserError(f"cannot write {path}: {error.strerror or error}")


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)``, then rename the finished file onto ``path``.

    The result has the permissions the user's umask gives new files. An ``OSError`` (full or read-only
    disk, no permission) becomes a one-line ``UserError`` naming ``path``; nothing is left behind.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
        tmp = Path(name)
        os.close(fd)
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except OSError as e:
        _remove(tmp)
        raise disk_error(path, e) from e
    except BaseException:
        _remove(tmp)
        raise
    return path


def _remove(tmp: Path | None) -> None:
    if tmp is not None:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # a read-only folder: nothing we can do, and the original error matters more
            pass


def write_json(path: str | Path, data: dict) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, default=str) + "\n"))


def remove_stale_temporaries(folder: str | Path, older_than: float = 0.0, recursive: bool = False) -> int:
    """Delete temporaries of our own naming left in ``folder`` by a process that was killed mid-write.

    Only files named ``.*.cyclegan-tmp`` are touched. ``older_than`` (seconds) spares the temporaries of
    a process that may still be writing (use 0 only where a lock rules that out). Returns how many went.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    now, removed = time.time(), 0
    for tmp in folder.rglob(f".*{TMP_SUFFIX}") if recursive else folder.glob(f".*{TMP_SUFFIX}"):
        try:
            if tmp.is_file() and now - tmp.stat().st_mtime >= older_than:
                tmp.unlink()
                removed += 1
        except OSError:
            pass
    return removed
