"""Record a real ComfyUI's answers to the smoke client, and replay them from a local server.

Record (a real ComfyUI listening on UPSTREAM):
  python -m tests.comfy_cassette --upstream http://127.0.0.1:8192 --workflow cpu-smoke \
      --out tests/data/comfyui-cpu-smoke.json
Zero-byte model files of a variant's catalog names, so the SteadyDancer
workflows pass validation on a server without the real models:
  python -m tests.comfy_cassette --placeholders /path/to/ComfyUI/models --variant fp8

The recording proxy sits between the smoke client and the server and keeps every
answer. /object_info is kept as a reference to tests/data/object_info.json, the
same server's 1.3 MB answer, rather than a second copy. The replay server answers
each request with the recorded answer for its method and path (query dropped);
tests change a copy of the recording to inject failures.
"""

from __future__ import annotations

import argparse
import base64
import json
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"
OBJECT_INFO_REF = "@object_info.json"
KEPT_HEADERS = ("content-type",)


def key(method: str, path: str) -> str:
    """Requests are matched by method and path; ids that change per run are normalised."""
    path = path.split("?", 1)[0]
    if path.startswith("/history/"):
        path = "/history/{prompt_id}"
    return f"{method} {path}"


def _serve(
    handler: type[BaseHTTPRequestHandler], host: str = "127.0.0.1", port: int = 0
) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://{host}:{server.server_address[1]}"


@contextmanager
def recording(upstream: str, cassette: dict[str, list[dict[str, Any]]]) -> Iterator[str]:
    """A proxy to `upstream` that appends every answer to `cassette`; yields its URL."""

    class Proxy(BaseHTTPRequestHandler):
        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            request = urllib.request.Request(upstream + self.path, data=body, method=self.command)
            for name in ("Content-Type",):
                if self.headers.get(name):
                    request.add_header(name, self.headers[name])
            try:
                with urllib.request.urlopen(request, timeout=300) as response:
                    status, headers, content = response.status, response.headers, response.read()
            except urllib.error.HTTPError as exc:
                status, headers, content = exc.code, exc.headers, exc.read()
            kept = {name: headers[name] for name in headers if name.lower() in KEPT_HEADERS}
            entry: dict[str, Any] = {"status": status, "headers": kept}
            if self.path.startswith("/object_info"):
                entry["body_ref"] = OBJECT_INFO_REF
            elif "json" in kept.get("Content-Type", kept.get("content-type", "")):
                entry["json"] = json.loads(content or b"null")
            else:
                entry["base64"] = base64.b64encode(content).decode()
            cassette.setdefault(key(self.command, self.path), []).append(entry)
            self.send_response(status)
            for name, value in kept.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = _forward
        do_POST = _forward

        def log_message(self, format: str, *args: object) -> None:
            pass

    server, url = _serve(Proxy)
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()


def body_of(entry: dict[str, Any]) -> bytes:
    if "body_ref" in entry:
        return (DATA / entry["body_ref"].removeprefix("@")).read_bytes()
    if "json" in entry:
        return json.dumps(entry["json"]).encode()
    return base64.b64decode(entry.get("base64", ""))


@contextmanager
def replaying(
    cassette: dict[str, list[dict[str, Any]]], host: str = "127.0.0.1", port: int = 0
) -> Iterator[tuple[str, list[str]]]:
    """Serve a cassette; yields (URL, the request keys seen, in order).

    A key recorded several times answers with its recordings in turn, then keeps
    answering with the last one (so polling /history converges on the final answer).
    """
    seen: list[str] = []
    served: dict[str, int] = {}
    lock = threading.Lock()

    class Replay(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            request_key = key(self.command, self.path)
            with lock:
                seen.append(request_key)
                answers = cassette.get(request_key)
                index = served.get(request_key, 0)
                served[request_key] = index + 1
            if not answers:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            entry = answers[min(index, len(answers) - 1)]
            content = body_of(entry)
            self.send_response(entry["status"])
            for name, value in entry.get("headers", {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = _answer
        do_POST = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    server, url = _serve(Replay, host, port)
    try:
        yield url, seen
    finally:
        server.shutdown()
        server.server_close()


def load(name: str) -> dict[str, list[dict[str, Any]]]:
    cassette: dict[str, list[dict[str, Any]]] = json.loads((DATA / name).read_text())
    return cassette


def main() -> int:
    from steadydancer import smoke

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--placeholders", type=Path, help="a ComfyUI models folder")
    parser.add_argument("--variant", default="fp8")
    parser.add_argument("--upstream")
    parser.add_argument("--workflow", default="cpu-smoke")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--set", dest="sets", action="append", default=[])
    args = parser.parse_args()
    if args.placeholders:
        from steadydancer import catalog

        for entry in catalog.files_for(args.variant):
            path = args.placeholders / entry.target
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
            print(f"placeholder {path}")
        return 0
    if not args.upstream or not args.out:
        parser.error("--upstream and --out are required to record")
    cassette: dict[str, list[dict[str, Any]]] = {}
    outcome = "passed"
    with recording(args.upstream, cassette) as url:
        try:
            smoke.run(
                url,
                args.workflow,
                "generate",
                "fp8",
                None,
                args.sets,
                Path(tempfile.mkdtemp(prefix="smoke-record-")),
                300,
                600,
            )
        except smoke.SmokeError as exc:
            outcome = f"failed: {exc}"
    args.out.write_text(json.dumps(cassette, indent=1, ensure_ascii=False) + "\n")
    print(f"recorded {sum(len(v) for v in cassette.values())} answers; smoke {outcome}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
