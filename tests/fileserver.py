"""A local HTTP file server for download tests: Range requests, and faults on demand.

Serves files under a folder on 127.0.0.1 (a free port) from a thread. Each file has an ETag (from its
content) and a Last-Modified date, and ``If-Range`` works as in RFC 9110: a Range whose validator no
longer matches gets the whole file. It records every request and can be told to cut a response
half-way (``cut``), to answer with server errors (``fail``), to ignore Range headers
(``ignore_range``) or only If-Range (``ignore_if_range``), which is what flaky mirrors do, to send no
validators (``validators``) or no Content-Length (``send_length``).
"""

from __future__ import annotations

import email.utils
import hashlib
import re
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from conftest import make_folder


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        owner = self.server.owner
        name = self.path.lstrip("/")
        owner.requests.append((name, self.headers.get("Range")))
        owner.if_ranges.append(self.headers.get("If-Range"))
        if owner.fail.get(name):
            self.send_error(owner.fail[name].pop(0))
            return
        path = owner.folder / name
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        etag = f'"{hashlib.sha256(data).hexdigest()[:16]}"'
        modified = email.utils.formatdate(path.stat().st_mtime, usegmt=True)
        validators = {"ETag": etag, "Last-Modified": modified} if owner.validators else {}
        start = 0
        wanted = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if_range = None if owner.ignore_if_range else self.headers.get("If-Range")
        if if_range is not None and if_range not in validators.values():
            wanted = None  # another version of the file: send all of it
        if wanted and not owner.ignore_range:
            start = int(wanted.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                for key, value in validators.items():
                    self.send_header(key, value)
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        for key, value in validators.items():
            self.send_header(key, value)
        if owner.send_length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = owner.cut.pop(name, None)
        # HTTP/1.0: the connection closes when the handler returns, so a cut body arrives short.
        self.wfile.write(body if cut is None else body[:cut])

    def log_message(self, *args) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: FileServer


class FileServer:
    """``with FileServer(folder) as s:`` serves ``folder`` at ``s.url``."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.cut: dict[str, int] = {}  # path → bytes to send before dropping the connection (once)
        self.fail: dict[str, list[int]] = {}  # path → HTTP errors to answer first, one per request
        self.ignore_range = False
        self.ignore_if_range = False  # honour Range whatever version the client had: the rest of this one
        self.if_ranges: list[str | None] = []  # the If-Range header of each request
        self.validators = True  # send ETag and Last-Modified
        self.send_length = True  # send Content-Length
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> FileServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.01,), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


def dataset_zip(path: Path, name: str, n: int = 2, layout=("trainA", "trainB", "testA", "testB"),
                top_folder: bool = True) -> Path:
    """Write a zip laid out like an official dataset (``name/trainA/…``) holding small PNGs."""
    staging = path.parent / f"{path.stem}-staging"
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for i, sub in enumerate(layout):
            for image in sorted(make_folder(staging / sub, n, seed=10 * i).iterdir()):
                zf.write(image, f"{name}/{sub}/{image.name}" if top_folder else f"{sub}/{image.name}")
    return path
