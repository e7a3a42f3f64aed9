"""Downloads and dataset archives: the only module that touches the network.

A file arrives as ``NAME.part``: an interrupted transfer is resumed from where it stopped (HTTP
Range), retried with back-off, checked against the announced Content-Length, and only then renamed to
``NAME``. A resume never splices two files: ``NAME.part.json`` keeps the URL and the ETag or
Last-Modified the ``.part`` came with, the request carries it in ``If-Range``, and a server with a
different version answers with the whole new file. A ``.part`` without that record, or from another
URL, starts over. Its SHA-256 is recorded in ``checksums.json`` beside it on the first complete
download and every later download of the same name must match it (or match the hash the caller pins),
so a changed or corrupted file never passes silently.

This module imports no torch, so commands that only list or fetch start at once.

A dataset archive is extracted into a hidden temporary folder inside the data root, checked for the
``trainA/ trainB/ testA/ testB/`` layout, and renamed into place at the end: a dataset folder that
exists is complete. Entries that would land outside the folder (absolute paths, ``..``, symbolic
links) make the whole archive refused before anything is written.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import re
import shutil
import socket
import stat
import tempfile
import time
import zipfile
import zlib
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from rich.console import Console
from rich.progress import Progress

from .errors import UserError
from .files import DiskError, write_json
from .progress import progress_bar

log = logging.getLogger(__name__)

CHECKSUMS = "checksums.json"
LAYOUT = ("trainA", "trainB", "testA", "testB")
CHUNK = 1 << 20
RETRIES = 4  # attempts after the first
BACKOFF = 2.0  # seconds before the first retry; doubles each time
TIMEOUT = 60.0  # seconds without a byte before an attempt counts as failed
MAX_RATIO = 50  # unpacked : packed of a dataset archive; JPEG datasets are about 1:1, PNG ones a few to 1

_console = Console(stderr=True)


class _Interrupted(Exception):
    """A failure worth retrying: a dropped connection, a timeout, a server error."""


def _progress() -> Progress:
    return progress_bar(transfer=True, console=_console)


# -- checksums -------------------------------------------------------------------------------------


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _read_checksums(folder: Path) -> dict:
    try:
        return json.loads((folder / CHECKSUMS).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise UserError(f"{folder / CHECKSUMS} is unreadable ({e}): fix or delete it") from e


def recorded_sha256(path: str | Path) -> str | None:
    """The SHA-256 recorded when ``path`` was first downloaded, if it was."""
    path = Path(path)
    return _read_checksums(path.parent).get(path.name, {}).get("sha256")


def record_sha256(path: str | Path, sha256: str, url: str) -> None:
    path = Path(path)
    records = _read_checksums(path.parent)
    records[path.name] = {"sha256": sha256, "url": url, "recorded": time.strftime("%Y-%m-%d %H:%M:%S")}
    write_json(path.parent / CHECKSUMS, records)


def verify_sha256(path: str | Path, published: str | None = None) -> bool:
    """False (with a warning) when ``path`` does not match the ``published`` SHA-256, or the one recorded at
    its download."""
    expected = published or recorded_sha256(path)
    if expected is None or sha256_file(path) == expected:
        return True
    how = "the published SHA-256" if published else "the SHA-256 recorded when it was downloaded"
    log.warning("%s does not match %s: it is damaged or another file, and is downloaded again", path, how)
    return False


# -- files -----------------------------------------------------------------------------------------


def download(
    url: str, dest: str | Path, *, record: bool = True, sha256: str | None = None, retries: int = RETRIES,
    backoff: float = BACKOFF, timeout: float = TIMEOUT,
) -> str:
    """Download ``url`` to ``dest`` (resuming ``dest.part`` when it is the same file); returns its SHA-256.

    The hash must equal ``sha256`` when given, and the one recorded for ``dest``'s name by an earlier
    download; with ``record`` the first complete download is recorded. Transient failures are retried
    ``retries`` times, waiting ``backoff`` seconds and twice as long each time after.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    with _progress() as progress:
        task = progress.add_task(dest.name, total=None)
        for attempt in range(retries + 1):
            try:
                total = _fetch(url, part, timeout, progress, task)
                break
            except _Interrupted as e:
                if attempt == retries:
                    have = part.stat().st_size if part.exists() else 0
                    again = f"resume from the {have} bytes already in {part}" if have else "try again"
                    raise UserError(f"could not download {url} ({e}) after {retries + 1} attempts; run the "
                                    f"command again to {again}") from None
                delay = backoff * 2**attempt
                log.warning("download of %s interrupted (%s); retrying in %.3g s", dest.name, e, delay)
                time.sleep(delay)
    sha, size = sha256_file(part), part.stat().st_size
    expected = recorded_sha256(dest)
    if sha256 is not None and sha != sha256:
        _discard(part)
        raise UserError(f"{url} is not the published file (SHA-256 {sha} ≠ {sha256}): it was damaged on the "
                        "way or the server holds another file. Run again to retry.")
    if expected is not None and sha != expected:
        _discard(part)
        raise UserError(
            f"{url} does not match the SHA-256 recorded in {dest.parent / CHECKSUMS} when it was first "
            f"downloaded ({sha} ≠ {expected}): the file on the server changed or was damaged on the way. "
            f"Run again to retry, or remove its entry from {CHECKSUMS} to accept the new file."
        )
    # Only a download known to be whole becomes the reference: its length was announced, and it is not
    # shorter than a copy already here (a server that closes early without a length looks complete).
    previous = dest.stat().st_size if dest.is_file() else 0
    whole = total is not None and size >= previous
    os.replace(part, dest)
    _sidecar(part).unlink(missing_ok=True)
    if record and expected is None:
        if whole:
            record_sha256(dest, sha, url)
        else:
            log.warning("%s: the server did not announce its length, so its SHA-256 is not recorded", dest.name)
    return sha


# -- resuming only the same file -------------------------------------------------------------------


def _sidecar(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def _discard(part: Path) -> None:
    part.unlink(missing_ok=True)
    _sidecar(part).unlink(missing_ok=True)


def _validator(info: dict) -> str | None:
    """What ``If-Range`` can carry: a strong ETag (weak ones are not allowed there), else Last-Modified."""
    etag = info.get("etag")
    if etag and not etag.startswith("W/"):
        return etag
    return info.get("last_modified")


def _resume_point(url: str, part: Path) -> tuple[int, str | None]:
    """The bytes of ``part`` worth resuming and the ``If-Range`` value that keeps the resume honest.

    (0, None) when nothing shows the ``.part`` came from this URL and a known version of its file (it
    was left by an older release of this tool, by another mirror, or by a server without validators).
    """
    if not part.exists():
        return 0, None
    try:
        info = json.loads(_sidecar(part).read_text())
    except (OSError, ValueError):
        info = {}
    validator = _validator(info) if isinstance(info, dict) else None
    if not isinstance(info, dict) or info.get("url") != url or not validator or part.stat().st_size == 0:
        log.info("starting %s over: nothing shows its %d bytes are from this version of %s",
                 part.name, part.stat().st_size, url)
        _discard(part)
        return 0, None
    return part.stat().st_size, validator


def _remember(url: str, part: Path, headers) -> None:
    """Record where a fresh ``.part`` comes from, before its first byte is written."""
    info = {"url": url, "etag": headers.get("ETag"), "last_modified": headers.get("Last-Modified")}
    write_json(_sidecar(part), info)


def cached_download(path: str | Path, url: str, *, what: str, offline: str, sha256: str | None = None,
                    record: bool = True, retries: int = RETRIES) -> Path:
    """``path`` when it is there (and still matches the hash recorded at its download), else ``url``
    downloaded to it by ``download`` (progress, resume, checksums).

    ``what`` names the file in messages; ``offline`` finishes the sentence "Offline, ..." that a failed
    download ends with: how to do without the network (an option or an environment variable).
    """
    path = Path(path)
    if path.is_file() and verify_sha256(path, sha256):
        return path
    log.info("downloading %s (%s) to %s", what, url, path)
    try:
        download(url, path, record=record, sha256=sha256, retries=retries)
    except DiskError:
        raise  # the disk, not the network: the offline advice would mislead
    except UserError as e:
        raise UserError(f"{what} is not in {path} and downloading it failed ({e}). Offline, {offline}") from None
    return path


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """``bytes 100-199/1000`` → (100, 1000); ``bytes */1000`` → (None, 1000); totals of ``*`` → None."""
    m = re.fullmatch(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*", value or "")
    if not m:
        return None, None
    start, total = m.groups()
    return (int(start) if start else None), (int(total) if total and total != "*" else None)


def _fetch(url: str, part: Path, timeout: float, progress: Progress, task) -> int | None:
    """One attempt: append to ``part`` from its current size to the end, or raise ``_Interrupted``.

    Returns the file's announced length (None when the server did not say).
    """
    offset, validator = _resume_point(url, part)
    request = Request(url, headers={"User-Agent": "cyclegan"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
        request.add_header("If-Range", validator)
    try:
        response = urlopen(request, timeout=timeout)
    except HTTPError as e:
        e.close()
        if e.code == 416 and offset:  # nothing left after offset: the part is whole, or stale
            same = validator in (e.headers.get("ETag"), e.headers.get("Last-Modified"))
            if same and _content_range(e.headers.get("Content-Range"))[1] == offset:
                return offset
            _discard(part)
            raise _Interrupted("the partial file does not fit the one on the server; starting over") from None
        if e.code in (408, 425, 429) or e.code >= 500:
            raise _Interrupted(f"HTTP {e.code} {e.reason}") from None
        raise UserError(f"could not download {url}: HTTP {e.code} {e.reason}") from None
    except (URLError, OSError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", e)
        if isinstance(reason, FileNotFoundError):  # a file:// mirror without the file: retrying will not help
            raise UserError(f"could not download {url}: no such file") from None
        if isinstance(reason, socket.gaierror | ConnectionRefusedError):  # offline: retries are for transfers
            why = "no network (its host name does not resolve)" if isinstance(reason, socket.gaierror) else \
                "the server refused the connection"
            raise UserError(f"could not download {url}: {why}") from None
        raise _Interrupted(str(reason)) from None

    with response:
        status = response.status or 200  # file:// URLs have no status
        length = response.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        if offset and status == 206:
            start, total = _content_range(response.headers.get("Content-Range"))
            if start != offset:
                _discard(part)
                raise _Interrupted("the server resumed at the wrong place; starting over")
            # A server that ignores If-Range sends the rest of whatever it holds now: only the same version
            # continues the part (the same ETag or Last-Modified), else two versions would be spliced.
            if validator not in (response.headers.get("ETag"), response.headers.get("Last-Modified")):
                _discard(part)
                raise _Interrupted("the server sent the rest of another version of the file; starting over")
            if total is None and length is not None:
                total = offset + length
        else:  # a full response: nothing to resume, a server without Range, or another version (If-Range)
            offset, total = 0, length
            _remember(url, part, response.headers)
        progress.update(task, completed=offset, total=total)
        with open(part, "ab" if offset else "wb") as f:
            while True:
                try:
                    block = response.read(CHUNK)
                except (OSError, http.client.HTTPException) as e:  # reset, timeout, truncated chunk
                    raise _Interrupted(str(e) or type(e).__name__) from None
                if not block:
                    break
                try:
                    f.write(block)
                except OSError as e:
                    raise UserError(f"could not write {part} ({e})") from None
                progress.advance(task, len(block))
    size = part.stat().st_size
    if total is not None and size < total:
        raise _Interrupted(f"the connection closed after {size} of {total} bytes")
    if total is not None and size > total:
        _discard(part)
        raise _Interrupted(f"received {size} bytes where {total} were announced; starting over")
    return total


# -- datasets --------------------------------------------------------------------------------------


def is_dataset(folder: str | Path) -> bool:
    """Whether ``folder`` holds an extracted dataset: ``trainA/ trainB/ testA/ testB/``."""
    return all((Path(folder) / sub).is_dir() for sub in LAYOUT)


def _unsafe(info: zipfile.ZipInfo) -> str | None:
    """Why an archive entry could write outside the extraction folder, or None when it cannot."""
    name = info.filename.replace("\\", "/")
    if name.startswith("/") or re.match(r"[A-Za-z]:", name):
        return "an absolute path"
    if ".." in name.split("/"):
        return "a '..' component"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "a symbolic link"
    return None


def _find_layout(folder: Path, name: str) -> Path | None:
    """The dataset inside an extracted archive: at its top, in NAME/, or in its only folder."""
    subdirs = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "__MACOSX"))]
    candidates = [folder / name, folder] + (subdirs if len(subdirs) == 1 else [])
    return next((c for c in candidates if is_dataset(c)), None)


def max_extract_bytes() -> int:
    """The most an archive may unpack to: ``$CYCLEGAN_MAX_EXTRACT_GB`` (default 32 GB, ten times the largest
    official dataset)."""
    try:
        return int(float(os.environ.get("CYCLEGAN_MAX_EXTRACT_GB", "32")) * 1e9)
    except ValueError:
        raise UserError("CYCLEGAN_MAX_EXTRACT_GB: give a number of gigabytes, e.g. 64") from None


def _check_sizes(archive: Path, entries: list[zipfile.ZipInfo]) -> None:
    """Refuse, before extracting anything, an archive that would unpack to more than the limit or that
    compresses more than image datasets do (a zip bomb: a few KB that unpack to gigabytes)."""
    total = sum(info.file_size for info in entries)  # zipfile never writes more than an entry declares
    if total > max_extract_bytes():
        raise UserError(f"refusing to extract {archive}: it unpacks to {total / 1e9:.1f} GB, more than the "
                        f"{max_extract_bytes() / 1e9:g} GB allowed (CYCLEGAN_MAX_EXTRACT_GB raises it)")
    packed = max(1, archive.stat().st_size)
    if total > MAX_RATIO * packed and total > 1 << 20:
        raise UserError(f"refusing to extract {archive}: {packed} bytes that unpack to {total} bytes "
                        f"({total / packed:.0f}:1), more than images compress: a damaged or forged archive")


def extract_dataset(archive: str | Path, root: str | Path, name: str) -> Path:
    """Extract a dataset zip into ``root/name`` all at once, or leave nothing behind and raise."""
    archive, root = Path(archive), Path(root)
    target = root / name
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as e:
        raise UserError(f"{archive} is not a readable zip archive ({e})") from None
    with zf:
        entries = zf.infolist()
        for info in entries:
            if why := _unsafe(info):
                raise UserError(
                    f"refusing to extract {archive}: its entry {info.filename!r} is {why}, which could "
                    f"write outside {target}"
                )
        _check_sizes(archive, entries)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".extracting", dir=root))
        try:
            with _progress() as progress:
                total = sum(i.file_size for i in entries)
                task = progress.add_task(f"extracting {archive.name}", total=total)
                for info in entries:
                    parts = info.filename.replace("\\", "/").split("/")
                    out = tmp.joinpath(*[p for p in parts if p not in ("", ".")])
                    if info.is_dir():
                        out.mkdir(parents=True, exist_ok=True)
                        continue
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, open(out, "wb") as dst:
                        shutil.copyfileobj(src, dst, CHUNK)
                    progress.advance(task, info.file_size)
            found = _find_layout(tmp, name)
            if found is None:
                raise UserError(
                    f"{archive} does not hold a dataset: expected the folders {' '.join(LAYOUT)} "
                    f"(at its top or in {name}/)"
                )
            os.replace(found, target)
        except (zipfile.BadZipFile, zlib.error, EOFError) as e:
            raise UserError(f"{archive} is damaged ({e})") from None
        except OSError as e:
            raise UserError(f"could not extract {archive} into {root} ({e})") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def install_dataset(url: str, root: str | Path, name: str, **download_options) -> Path:
    """Download the archive at ``url`` and extract it as ``root/name``; returns that folder.

    An archive ``root/name.zip`` already there (a finished earlier download, or one put there by hand
    for an offline machine) is extracted instead of downloading. The archive is deleted once extracted.
    """
    root = Path(root)
    target = root / name
    if is_dataset(target):
        return target
    if target.exists():
        missing = [sub for sub in LAYOUT if not (target / sub).is_dir()]
        raise UserError(
            f"{target} exists but is not a complete dataset (no {', '.join(missing)}): move or delete it, "
            "then run again"
        )
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(f".{name}.*.extracting"):  # left by an extraction that was killed
        shutil.rmtree(stale, ignore_errors=True)
    archive = root / f"{name}.zip"
    fresh = not archive.is_file()
    if fresh:
        log.info("downloading %s from %s", name, url)
        sha = download(url, archive, record=False, **download_options)
    elif not verify_sha256(archive):
        raise UserError(f"{archive} changed since it was downloaded (SHA-256): delete it and run again")
    try:
        extract_dataset(archive, root, name)
    except UserError as e:
        if fresh:  # a re-download is the only remedy; a hand-placed archive is the user's to delete
            archive.unlink(missing_ok=True)
            raise UserError(f"{e} (the archive was deleted; run again to download it afresh)") from None
        raise UserError(f"{e}; delete {archive} and run again to download it") from None
    if fresh and recorded_sha256(archive) is None:
        record_sha256(archive, sha, url)
    archive.unlink()
    log.info("%s is ready in %s", name, target)
    return target
