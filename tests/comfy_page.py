"""ComfyUI's own page, served as a pod serves it, against recorded answers.

The static files are the lock's comfyui-frontend-package (from PyPI), exactly what the
pinned ComfyUI serves at `/`. The API routes the page calls while it starts and opens a
workflow are answered here: `/api/object_info` from tests/data/object_info.json (recorded
from the pinned ComfyUI and node packs), with each model loader's list holding the
variant's catalog files, as ComfyUI lists them on a pod whose volume has them; settings,
users, user data and the queue as an empty single-user ComfyUI answers them. The pinned
ComfyUI itself is on GitHub only, which the tests cannot reach; what the page needs of it
while opening a workflow is this. The page's websocket is not served: it reconnects,
which changes nothing about a graph it loads.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from steadydancer import catalog, workflows

from tests.dagger_offline import REPO
from tests.local_http import loopback

OBJECT_INFO = REPO / "tests" / "data" / "object_info.json"
EMPTY: dict[str, Any] = {
    "/api/users": {"storage": "server", "migrated": True},
    # A returning user: no first-run templates dialog over the graph.
    "/api/settings": {"Comfy.TutorialCompleted": True},
    "/api/userdata": [],
    "/api/extensions": [],
    "/api/embeddings": [],
    "/api/i18n": {},
    "/api/workflow_templates": {},
    "/api/global_subgraphs": {},
    "/api/experiment/models": [],
    "/api/queue": {"queue_running": [], "queue_pending": []},
    "/api/prompt": {"exec_info": {"queue_remaining": 0}},
    "/api/history": {},
    "/api/features": {},
}
SYSTEM_STATS = {
    "system": {
        "os": "posix", "ram_total": 0, "ram_free": 0, "comfyui_version": "recorded",
        "python_version": "3.11", "pytorch_version": "2.5.1", "embedded_python": False,
        "argv": ["main.py"],
    },
    "devices": [],
}  # fmt: skip


KV_RESTORE = """(graph) => {
  // VideoHelperSuite's page script (web/js/VHS.core.js, useKVState) restores the widget
  // values its nodes save as a map by widget name; that script is on GitHub only, so the
  // same by-name restore is applied here after loading.
  for (const saved of graph.nodes) {
    const values = saved.widgets_values;
    if (!values || Array.isArray(values)) continue;
    const node = window.app.graph.getNodeById(saved.id);
    for (const w of node?.widgets || []) if (w.name in values) w.value = values[w.name];
  }
}"""


def static_root() -> Path:
    import comfyui_frontend_package

    return Path(comfyui_frontend_package.__file__).parent / "static"


def object_info(variant: str) -> dict[str, Any]:
    """The recorded answer with the variant's model files in the lists of the loaders the
    shipped workflows load them with."""
    info: dict[str, Any] = json.loads(OBJECT_INFO.read_text())
    files = catalog.files_for(variant)
    by_role = {workflows.role_of(entry): entry for entry in files}
    for name in workflows.names(REPO / "workflows"):
        workflow = workflows.load(name, REPO / "workflows")
        for role, targets in workflow.models.items():
            for node, field in targets:
                class_type = workflow.prompt[node]["class_type"]
                inputs = info[class_type]["input"]
                spec = inputs.get("required", {}).get(field) or inputs["optional"][field]
                value = workflows.model_value(by_role[role])
                if isinstance(spec[0], list) and value not in spec[0]:
                    spec[0].append(value)
    return info


class Page:
    """The page's server; `requests` records every path asked for, for a failing test."""

    def __init__(self, variant: str) -> None:
        self.object_info = json.dumps(object_info(variant)).encode()
        self.requests: list[str] = []
        self.static = static_root()

    def answer(self, method: str, path: str) -> tuple[int, str, bytes]:
        self.requests.append(f"{method} {path}")
        if path == "/api/object_info":
            return 200, "application/json", self.object_info
        if path == "/api/system_stats":
            return 200, "application/json", json.dumps(SYSTEM_STATS).encode()
        if method != "GET" and path.startswith("/api/settings"):
            return 200, "application/json", b"{}"
        if path in EMPTY:
            return 200, "application/json", json.dumps(EMPTY[path]).encode()
        if path.startswith("/api/"):
            return 404, "text/plain", b"not recorded"
        file = (self.static / (path.lstrip("/") or "index.html")).resolve()
        if not file.is_relative_to(self.static) or not file.is_file():
            return 404, "text/plain", b"no such file"
        kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        return 200, kind, file.read_bytes()


@contextmanager
def serve(page: Page) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def respond(self) -> None:
            status, kind, body = page.answer(self.command, urlsplit(self.path).path)
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = respond

        def log_message(self, format: str, *args: object) -> None:
            pass

    with loopback(Handler) as url:
        yield url


def screenshot(graph_file: Path, out: Path, variant: str = catalog.DEFAULT_VARIANT) -> None:
    """The page with an editor-format workflow opened, as a PNG (for docs/)."""
    import shutil

    from playwright.sync_api import sync_playwright

    graph = json.loads(graph_file.read_text())
    with serve(Page(variant)) as url, sync_playwright() as playwright:
        chromium = shutil.which("chromium") or "chromium"
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1800, "height": 1100})
        page.goto(url)
        page.wait_for_function("() => window.app?.graph && window.LiteGraph")
        page.evaluate(
            """async (graph) => {
                await window.app.loadGraphData(graph);
                ("""
            + KV_RESTORE
            + """)(graph);
                window.app.canvas.ds.scale = 0.72;
                window.app.canvas.ds.offset = [20, 10];
                window.app.canvas.setDirty(true, true);
                await new Promise(done => setTimeout(done, 1500));
            }""",
            graph,
        )
        page.screenshot(path=str(out))
        browser.close()


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Screenshot ComfyUI's page with a workflow open.")
    parser.add_argument("graph", type=Path, help="an editor-format workflow (workflows/ui/...)")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    parser.add_argument(
        "--variant", default=catalog.DEFAULT_VARIANT, choices=sorted(catalog.VARIANTS)
    )
    args = parser.parse_args(argv)
    screenshot(args.graph, args.out, args.variant)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
