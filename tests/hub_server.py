"""A local server that answers like the Hugging Face Hub's file endpoint, for the fetcher's tests.

It speaks the part of the protocol huggingface_hub's hf_hub_download uses:
HEAD and GET on /{repo}/resolve/{revision}/{path}, with X-Repo-Commit, ETag
(the sha256 of the file, as the Hub sends for LFS files) and Content-Length,
and the Hub's X-Error-Code values for missing repositories, files and gated
repositories.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class Hub:
    files: dict[tuple[str, str], bytes] = field(default_factory=dict)
    gated: set[str] = field(default_factory=set)
    requests: list[tuple[str, str]] = field(default_factory=list)

    def add(self, repo: str, path: str, content: bytes) -> str:
        self.files[(repo, path)] = content
        return hashlib.sha256(content).hexdigest()

    @property
    def repos(self) -> set[str]:
        return {repo for repo, _ in self.files} | self.gated


@contextmanager
def serve(hub: Hub) -> Iterator[str]:
    """Serve `hub` on 127.0.0.1 until the block ends; yields the endpoint URL."""

    class Handler(BaseHTTPRequestHandler):
        def _error(self, status: int, code: str) -> None:
            self.send_response(status)
            self.send_header("X-Error-Code", code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _answer(self, with_body: bool) -> None:
            hub.requests.append((self.command, self.path))
            repo, sep, rest = self.path.partition("/resolve/")
            repo = repo.lstrip("/")
            revision, _, path = rest.partition("/")
            if not sep or repo not in hub.repos:
                return self._error(401, "RepoNotFound")
            if repo in hub.gated:
                return self._error(403, "GatedRepo")
            if revision != "main":
                return self._error(404, "RevisionNotFound")
            content = hub.files.get((repo, path))
            if content is None:
                return self._error(404, "EntryNotFound")
            self.send_response(200)
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("ETag", f'"{hashlib.sha256(content).hexdigest()}"')
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            if with_body:
                self.wfile.write(content)

        def do_HEAD(self) -> None:
            self._answer(with_body=False)

        def do_GET(self) -> None:
            self._answer(with_body=True)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
