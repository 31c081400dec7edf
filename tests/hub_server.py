"""A local server that answers like the Hugging Face Hub, with faults to inject, for fetcher tests.

It speaks what huggingface_hub and the fetcher use of the Hub's protocol:
- HEAD and GET /{repo}/resolve/{revision}/{path}: a 302 to a CDN address with
  X-Repo-Commit, X-Linked-Size and X-Linked-Etag (the file's sha256), as the Hub
  answers for LFS files; the Hub's X-Error-Code values for missing repositories,
  revisions and files, and for gated repositories;
- GET /cdn/{sha256}: the bytes, honouring `Range: bytes=N-` with 206 (HEAD: their size,
  as a plain download site answers, for catalog entries with a url);
- GET /api/models/{repo}: the repository's `gated` setting.
- HEAD of a file in `xet`: the Xet headers (X-Xet-Hash, X-Xet-Refresh-Route),
  which make huggingface_hub ask the refresh route for a Xet read token; that
  route is recorded and refused, as a Hub whose Xet service is down would.
Faults are set per file path: HTTP errors to answer first (with Retry-After),
a connection closed cleanly or reset (RST) after N bytes, wrong bytes, a stall
before the first byte, errors and stalls on the resolve request; a renamed
repository answers with a redirect on the Hub's own host; a private one needs
the token; `rate` caps each connection's throughput.
"""

from __future__ import annotations

import hashlib
import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from tests.local_http import loopback

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class Hub:
    files: dict[tuple[str, str], bytes] = field(default_factory=dict)
    gated: dict[str, str] = field(default_factory=dict)
    """repo -> "manual"/"auto": gated; with `locked` also set, access is refused."""
    locked: set[str] = field(default_factory=set)
    errors: dict[str, list[int]] = field(default_factory=dict)
    cut_after: dict[str, int] = field(default_factory=dict)
    corrupt: dict[str, bytes] = field(default_factory=dict)
    stall: dict[str, float] = field(default_factory=dict)
    reset_after: dict[str, int] = field(default_factory=dict)
    """Paths whose next CDN answer is cut by a TCP reset (RST) after N bytes."""
    retry_after: dict[str, str] = field(default_factory=dict)
    """Retry-After sent with the queued HTTP errors of a path."""
    resolve_errors: dict[str, list[int]] = field(default_factory=dict)
    resolve_stall: dict[str, float] = field(default_factory=dict)
    renamed: dict[str, str] = field(default_factory=dict)
    """old repository name -> new: the Hub redirects on its own host."""
    private: set[str] = field(default_factory=set)
    """Repositories that answer only to a request carrying a token."""
    xet: set[str] = field(default_factory=set)
    ignore_range: set[str] = field(default_factory=set)
    """Paths whose CDN answers every Range request with the whole file (200), as some proxies do."""
    rate: float | None = None
    """Bytes per second each CDN connection is held to, as the Hub's CDN holds each one."""
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    """(method, path, headers with lower-case names) of every request."""
    sent: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, repo: str, path: str, content: bytes) -> str:
        self.files[(repo, path)] = content
        return hashlib.sha256(content).hexdigest()

    @property
    def repos(self) -> set[str]:
        return {repo for repo, _ in self.files} | set(self.gated)

    def by_digest(self, digest: str) -> tuple[str, bytes] | None:
        for (_, path), content in self.files.items():
            if hashlib.sha256(content).hexdigest() == digest:
                return path, content
        return None

    def count(self, method: str, fragment: str) -> int:
        return sum(1 for m, p, _ in self.requests if m == method and fragment in p)


@contextmanager
def serve(hub: Hub) -> Iterator[str]:
    """Serve `hub` on 127.0.0.1 until the block ends; yields the endpoint URL."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _send(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _error(self, status: int, code: str) -> None:
            self._send(status, {"X-Error-Code": code})

        def _resolve(self, path: str) -> None:
            repo, _, rest = path.partition("/resolve/")
            repo = repo.lstrip("/")
            revision, _, file_path = rest.partition("/")
            if repo in hub.renamed:
                # Relative, on the Hub's own host, as the Hub answers for a renamed repository.
                return self._send(307, {"Location": f"/{hub.renamed[repo]}/resolve/{rest}"})
            with hub.lock:
                queued = hub.resolve_errors.get(file_path, [])
                status = queued.pop(0) if queued else None
                pause = hub.resolve_stall.pop(file_path, 0.0)
            time.sleep(pause)
            if status is not None:
                headers = {}
                if file_path in hub.retry_after:
                    headers["Retry-After"] = hub.retry_after[file_path]
                return self._send(status, headers)
            if repo not in hub.repos or (
                repo in hub.private and "authorization" not in map(str.lower, self.headers)
            ):
                return self._error(401, "RepoNotFound")
            if repo in hub.locked:
                return self._error(403, "GatedRepo")
            if revision not in ("main", COMMIT):
                return self._error(404, "RevisionNotFound")
            content = hub.files.get((repo, file_path))
            if content is None:
                return self._error(404, "EntryNotFound")
            digest = hashlib.sha256(content).hexdigest()
            port = self.server.server_address[1]
            headers = {
                # Another host name, as the Hub's CDN is: clients stop there and keep the
                # metadata of this response, and must not forward the token.
                "Location": f"http://localhost:{port}/cdn/{digest}",
                "X-Repo-Commit": COMMIT,
                "X-Linked-Size": str(len(content)),
                "X-Linked-Etag": f'"{digest}"',
                "ETag": '"git-blob-id"',
            }
            if file_path in hub.xet:
                headers["X-Xet-Hash"] = digest
                route = f"/api/models/{repo}/xet-read-token/{COMMIT}"
                headers["X-Xet-Refresh-Route"] = route
                headers["Link"] = f'<http://127.0.0.1:{port}{route}>; rel="xet-auth"'
            self._send(302, headers)

        def _cdn(self, digest: str) -> None:
            found = hub.by_digest(digest)
            if found is None:
                return self._send(404, {})
            path, content = found
            if self.command == "HEAD":  # a plain download site's answer about the file
                self.send_response(200)
                self.send_header("Content-Length", str(len(content)))
                return self.end_headers()
            with hub.lock:
                queued = hub.errors.get(path, [])
                status = queued.pop(0) if queued else None
                cut = hub.cut_after.pop(path, None)
                reset = hub.reset_after.pop(path, None)
                pause = hub.stall.pop(path, 0.0)
            if status is not None:
                headers = {}
                if path in hub.retry_after:
                    headers["Retry-After"] = hub.retry_after[path]
                return self._send(status, headers)
            body = hub.corrupt.get(path, content)
            start = 0
            if (ranged := self.headers.get("Range")) and path not in hub.ignore_range:
                start = int(ranged.removeprefix("bytes=").split("-")[0])
            part = body[start:]
            self.send_response(206 if start else 200)
            self.send_header("Content-Length", str(len(part)))
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.end_headers()
            time.sleep(pause)
            if cut is not None:
                part = part[:cut]
                self.close_connection = True
            if reset is not None:
                part = part[:reset]
            started = time.monotonic()
            for offset in range(0, len(part), 1 << 20):
                piece = part[offset : offset + (1 << 20)]
                try:
                    self.wfile.write(piece)
                except (BrokenPipeError, ConnectionResetError):
                    return  # the client gave up on this answer (a stall past its timeout)
                with hub.lock:
                    hub.sent[path] = hub.sent.get(path, 0) + len(piece)
                if hub.rate:
                    ahead = (offset + len(piece)) / hub.rate - (time.monotonic() - started)
                    time.sleep(max(ahead, 0))
            if reset is not None:
                # SO_LINGER 0: close() sends a RST, as a dropped connection does mid-transfer.
                self.wfile.flush()
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.connection.close()
                self.close_connection = True

        def _api(self, repo: str) -> None:
            if repo not in hub.repos:
                return self._error(401, "RepoNotFound")
            body = json.dumps({"id": repo, "gated": hub.gated.get(repo, False)}).encode()
            self._send(200, {"Content-Type": "application/json"}, body)

        def _answer(self) -> None:
            headers = {name.lower(): value for name, value in self.headers.items()}
            hub.requests.append((self.command, self.path, headers))
            if self.path.startswith("/cdn/"):
                return self._cdn(self.path.removeprefix("/cdn/"))
            if "/xet-read-token/" in self.path:
                return self._send(503, {})  # recorded above; the Xet service is down
            if self.path.startswith("/api/models/"):
                return self._api(self.path.removeprefix("/api/models/").split("/revision/")[0])
            if "/resolve/" in self.path:
                return self._resolve(self.path)
            self._send(404, {})

        do_HEAD = _answer
        do_GET = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    with loopback(Handler) as url:
        yield url
