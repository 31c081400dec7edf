"""A package index on 127.0.0.1 that speaks PyPI's simple API, serving stub wheels made here.

Paths as PEP 503 lays them out (`/simple/<name>/`), pages in PEP 691's JSON with PEP 700's
upload times, which uv reads for `--exclude-newer`. Each stub is a real wheel (METADATA,
WHEEL, RECORD) whose only content is its name, version and Requires-Dist, so a resolver
walks the same graph it would on the real index. Files can be added while it serves: an
index that changes under a lock.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field

from tests.local_http import Reply, Routes

JSON = "application/vnd.pypi.simple.v1+json"


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def stub_wheel(
    name: str, version: str, requires: Iterable[str] = (), extras: Iterable[str] = ()
) -> tuple[str, bytes]:
    """(file name, bytes) of a py3-none-any wheel carrying only metadata."""
    dist = normalized(name).replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    files = {
        f"{info}/METADATA": "Metadata-Version: 2.1\n"
        f"Name: {name}\nVersion: {version}\n"
        + "".join(f"Provides-Extra: {extra}\n" for extra in extras)
        + "".join(f"Requires-Dist: {requirement}\n" for requirement in requires),
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: steady-dancer-tests\n"
        "Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return f"{dist}-{version}-py3-none-any.whl", out.getvalue()


@dataclass
class PackageIndex:
    """Projects and their files with upload times; `routes` is what tests.local_http serves."""

    routes: Routes = field(default_factory=Routes)
    projects: dict[str, list[dict[str, object]]] = field(default_factory=dict)

    def add(
        self,
        name: str,
        version: str,
        uploaded: str,
        requires: Iterable[str] = (),
        extras: Iterable[str] = (),
    ) -> None:
        """Publish a stub of `name` `version` whose index entry says it was uploaded `uploaded`."""
        filename, data = stub_wheel(name, version, requires, extras)
        project = normalized(name)
        self.routes.replies[f"/files/{filename}"] = Reply(200, data)
        self.projects.setdefault(project, []).append(
            {
                "filename": filename,
                "url": f"/files/{filename}",
                "hashes": {"sha256": hashlib.sha256(data).hexdigest()},
                "upload-time": uploaded,
                "version": version,
            }
        )
        files = self.projects[project]
        page = {
            "meta": {"api-version": "1.1"},
            "name": project,
            "versions": sorted({str(f["version"]) for f in files}),
            "files": [{k: v for k, v in f.items() if k != "version"} for f in files],
        }
        self.routes.replies[f"/simple/{project}/"] = Reply(
            200, json.dumps(page).encode(), {"Content-Type": JSON, "Cache-Control": "no-store"}
        )
