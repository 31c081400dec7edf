"""A stand-in ComfyUI with real folders, for tests of what a job leaves behind and who sees it.

The recorded answers (comfy_cassette.py) replay one real run; they cannot show which file a
prompt read, what stayed in ComfyUI's folders, or whether a prompt was interrupted. This
server speaks the same routes as ComfyUI with ComfyUI's file semantics:
- POST /upload/image (multipart image, subfolder, overwrite): the file lands in
  input/SUBFOLDER/NAME, kept from escaping the folder; without overwrite a taken name
  becomes "NAME (1).EXT", as ComfyUI renames;
- POST /prompt: a LoadVideo/LoadImage whose file is not in input is refused with ComfyUI's
  node_errors shape; otherwise the prompt "runs": each SaveVideo writes
  output/PREFIX_00001_.mp4, whose bytes are the loaded video's (the stand-in's render is a
  copy, so a test can tell whose clip came back); with `hold`, the prompt runs until
  interrupted;
- GET /history/{id}, POST /history {"delete": [...]}, POST /queue {"delete": [...]},
  POST /interrupt {"prompt_id"}, GET /view (filename, subfolder, type), GET /internal/logs
  (a log naming another caller's files), /system_stats and /object_info as recorded.
Two stand-ins given the same folders are two workers sharing a network volume; `barrier`
makes each prompt wait until every worker has queued, so both uploads precede both reads.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from tests.comfy_cassette import body_of, load
from tests.local_http import loopback

OTHER_CALLERS_LOG = (
    "got prompt\nPrompt executed in 3.1 s\n"
    "loading input/reference.png for the previous caller: secret-dance-of-alice\n"
)


@dataclass
class ComfyFolders:
    root: Path

    def __post_init__(self) -> None:
        for name in ("input", "output", "temp"):
            (self.root / name).mkdir(parents=True, exist_ok=True)

    def of(self, kind: str) -> Path:
        return self.root / kind

    def env(self) -> dict[str, str]:
        """The handler's settings naming these folders, as the entrypoint sets them."""
        return {
            "COMFYUI_INPUT_DIR": str(self.of("input")),
            "COMFYUI_OUTPUT_DIR": str(self.of("output")),
            "COMFYUI_TEMP_DIR": str(self.of("temp")),
        }

    def files(self) -> list[str]:
        return sorted(
            str(path.relative_to(self.root)) for path in self.root.rglob("*") if path.is_file()
        )


@dataclass
class StandIn:
    folders: ComfyFolders
    hold: bool = False
    barrier: threading.Barrier | None = None
    requests: list[str] = field(default_factory=list)
    subfolders: list[str] = field(default_factory=list)
    """The subfolder of each upload, in order."""
    interrupted: list[str] = field(default_factory=list)
    deleted_from_queue: list[str] = field(default_factory=list)
    deleted_from_history: list[str] = field(default_factory=list)
    history: dict[str, dict[str, Any]] = field(default_factory=dict)
    running: set[str] = field(default_factory=set)


def inside(root: Path, *parts: str) -> Path | None:
    path = root.joinpath(*parts).resolve()
    return path if path.is_relative_to(root.resolve()) else None


def multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        fields[str(name)] = (part.get_filename(), payload)
    return fields


def run_prompt(state: StandIn, prompt_id: str, prompt: dict[str, Any]) -> None:
    if state.barrier is not None:
        state.barrier.wait(timeout=30)
    loaded = b""
    for node in prompt.values():
        if node["class_type"] in ("LoadVideo", "LoadImage"):
            name = node["inputs"].get("file") or node["inputs"].get("image")
            path = inside(state.folders.of("input"), str(name))
            loaded = path.read_bytes() if path and path.is_file() else b""
    if state.hold:
        state.running.add(prompt_id)
        return
    outputs: dict[str, Any] = {}
    for node_id, node in prompt.items():
        if node["class_type"] == "SaveVideo":
            prefix = Path(node["inputs"]["filename_prefix"])
            folder = inside(state.folders.of("output"), str(prefix.parent))
            assert folder is not None
            folder.mkdir(parents=True, exist_ok=True)
            counter = len(list(folder.glob(f"{prefix.name}_*"))) + 1
            name = f"{prefix.name}_{counter:05}_.mp4"
            (folder / name).write_bytes(loaded)
            subfolder = "" if str(prefix.parent) == "." else str(prefix.parent)
            outputs[node_id] = {
                "images": [{"filename": name, "subfolder": subfolder, "type": "output"}],
                "animated": [True],
            }
    state.history[prompt_id] = {
        "prompt": [1, prompt_id, prompt, {}, list(outputs)],
        "outputs": outputs,
        "status": {"status_str": "success", "completed": True, "messages": []},
    }


@contextmanager
def serving(state: StandIn) -> Iterator[str]:
    """Serve the stand-in on 127.0.0.1; yields its URL."""
    recorded = load("comfyui-cpu-smoke.json")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def reply(self, status: int, body: object = None, raw: bytes | None = None) -> None:
            content = raw if raw is not None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        def body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def do_GET(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            state.requests.append(f"GET {parts.path}")
            query = dict(urllib.parse.parse_qsl(parts.query))
            if parts.path in ("/system_stats", "/object_info"):
                self.reply(200, raw=body_of(recorded[f"GET {parts.path}"][0]))
            elif parts.path == "/internal/logs":
                self.reply(200, OTHER_CALLERS_LOG)
            elif parts.path.startswith("/history/"):
                prompt_id = parts.path.removeprefix("/history/")
                with lock:
                    entry = state.history.get(prompt_id)
                self.reply(200, {prompt_id: entry} if entry else {})
            elif parts.path == "/view":
                root = state.folders.of(query.get("type", "output"))
                path = inside(root, query.get("subfolder", ""), query.get("filename", ""))
                if path is None or not path.is_file():
                    self.reply(404, raw=b"")
                else:
                    self.reply(200, raw=path.read_bytes())
            else:
                self.reply(404, raw=b"")

        def do_POST(self) -> None:
            state.requests.append(f"POST {self.path}")
            data = self.body()
            if self.path == "/upload/image":
                fields = multipart(self.headers["Content-Type"], data)
                filename, content = fields["image"]
                subfolder = fields.get("subfolder", (None, b""))[1].decode()
                overwrite = fields.get("overwrite", (None, b""))[1].decode() in ("true", "1")
                state.subfolders.append(subfolder)
                folder = inside(state.folders.of("input"), subfolder)
                if folder is None or not filename:
                    self.reply(400, raw=b"")
                    return
                folder.mkdir(parents=True, exist_ok=True)
                name, count = Path(filename).name, 1
                while (folder / name).exists() and not overwrite:
                    name = f"{Path(filename).stem} ({count}){Path(filename).suffix}"
                    count += 1
                (folder / name).write_bytes(content)
                self.reply(200, {"name": name, "subfolder": subfolder, "type": "input"})
            elif self.path == "/prompt":
                prompt = json.loads(data)["prompt"]
                for node_id, node in prompt.items():
                    if node["class_type"] in ("LoadVideo", "LoadImage"):
                        name = node["inputs"].get("file") or node["inputs"].get("image")
                        path = inside(state.folders.of("input"), str(name))
                        if path is None or not path.is_file():
                            self.reply(
                                400,
                                {
                                    "error": {"message": "Prompt outputs failed validation"},
                                    "node_errors": {
                                        node_id: {
                                            "class_type": node["class_type"],
                                            "errors": [
                                                {
                                                    "message": "Custom validation failed",
                                                    "details": f"Invalid file: {name}",
                                                }
                                            ],
                                        }
                                    },
                                },
                            )
                            return
                prompt_id = str(uuid.uuid4())
                self.reply(200, {"prompt_id": prompt_id, "number": 1, "node_errors": {}})
                threading.Thread(
                    target=run_prompt, args=(state, prompt_id, prompt), daemon=True
                ).start()
            elif self.path in ("/queue", "/history", "/interrupt"):
                request = json.loads(data or b"{}")
                with lock:
                    if self.path == "/queue":
                        state.deleted_from_queue += request.get("delete", [])
                    elif self.path == "/history":
                        state.deleted_from_history += request.get("delete", [])
                        for prompt_id in request.get("delete", []):
                            state.history.pop(prompt_id, None)
                    elif request.get("prompt_id") in state.running:
                        state.interrupted.append(request["prompt_id"])
                        state.running.discard(request["prompt_id"])
                self.reply(200, raw=b"")
            else:
                self.reply(404, raw=b"")

        def log_message(self, format: str, *args: object) -> None:
            pass

    with loopback(Handler) as url:
        yield url
