"""The model files each variant needs, where they come from and where ComfyUI finds them.

The data is catalog.json beside this file, read by the build (to fetch and bake the
models) and inside the image at boot. Sizes and sha256 digests are recorded only
where they were read from the Hub's pages or pinned downloads; `source` says which.
`lock_models` pins every revision to a commit and fills in sizes and digests.
A file that is not on the Hub (OpenMMLab's YOLOX-L checkpoint) has a `url` instead of a
repository and path; its host and URL path stand in for them in markers and messages.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CATALOG_FILE = Path(
    os.environ.get("STEADYDANCER_CATALOG") or Path(__file__).with_name("catalog.json")
)
"""STEADYDANCER_CATALOG points at another catalog (a private mirror's, or a test's)."""


@dataclass(frozen=True)
class ModelFile:
    """One file in a Hugging Face repository (or at a URL) and its place under ComfyUI's models/."""

    repo: str
    path: str
    folder: str
    revision: str = "main"
    size: int | None = None
    sha256: str | None = None
    key: str = ""
    source: str = ""
    url: str | None = None
    """A direct HTTPS download for a file the Hub does not hold."""

    @property
    def filename(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def checkable(self) -> bool:
        """Whether its bytes can be checked: a recorded sha256, or the Hub, which states one."""
        return self.sha256 is not None or self.url is None

    @property
    def refusal(self) -> str:
        """Why an uncheckable file is not placed, and the way out."""
        return (
            f"{self.key} (models/{self.target}) is not placed: no sha256 is recorded for it and "
            f"its server states none, and a checkpoint is code to whoever loads it; record its "
            "published sha256 and size in a catalog copy given as STEADYDANCER_CATALOG "
            "(the steadydancer-official workflow needs it)"
        )

    @property
    def target(self) -> str:
        """Path relative to ComfyUI's models/ directory."""
        return f"{self.folder}/{self.filename}"

    def to_manifest(self) -> dict[str, object]:
        """What the fetcher needs of the entry."""
        manifest: dict[str, object] = {
            "repo": self.repo,
            "path": self.path,
            "revision": self.revision,
            "size": self.size,
            "sha256": self.sha256,
            "target": self.target,
        }
        if self.url:
            manifest["url"] = self.url
        return manifest


def located(entry: dict[str, Any]) -> dict[str, Any]:
    """A URL entry with its host and URL path as repo and path."""
    if not entry.get("url"):
        return entry
    parts = urllib.parse.urlsplit(entry["url"])
    if parts.scheme != "https" or not parts.netloc or not parts.path.strip("/"):
        raise ValueError(f"catalog url {entry['url']!r} is not an https:// address of a file")
    return {"repo": parts.netloc, "path": parts.path.lstrip("/"), "revision": "", **entry}


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    files: tuple[ModelFile, ...]

    @property
    def recorded_size(self) -> int:
        """Bytes of the files that are placed (refused ones never are)."""
        return sum(entry.size or 0 for entry in self.files if entry.checkable)

    @property
    def unsized(self) -> tuple[ModelFile, ...]:
        return tuple(entry for entry in self.files if entry.size is None and entry.checkable)


def load(path: Path = CATALOG_FILE) -> tuple[dict[str, ModelFile], dict[str, Variant], str]:
    data = json.loads(path.read_text())
    files = {key: ModelFile(key=key, **located(entry)) for key, entry in data["files"].items()}
    variants = {
        name: Variant(name, spec["description"], tuple(files[key] for key in spec["files"]))
        for name, spec in data["variants"].items()
    }
    return files, variants, data["default_variant"]


FILES, CATALOG_VARIANTS, DEFAULT_VARIANT = load()
VARIANTS: dict[str, tuple[ModelFile, ...]] = {
    name: variant.files for name, variant in CATALOG_VARIANTS.items()
}


def files_for(variant: str) -> tuple[ModelFile, ...]:
    """The files of a variant; an unknown name is a ValueError naming the known ones."""
    try:
        return VARIANTS[variant]
    except KeyError:
        known = ", ".join(sorted(VARIANTS))
        raise ValueError(f"unknown variant {variant!r}; choose one of: {known}") from None


def placeable(variant: str) -> tuple[ModelFile, ...]:
    """The variant's files whose bytes can be checked: those the build bakes and a boot fetches."""
    return tuple(entry for entry in files_for(variant) if entry.checkable)


def refused(variant: str) -> tuple[ModelFile, ...]:
    """The variant's files that are never placed until a sha256 is recorded for them."""
    return tuple(entry for entry in files_for(variant) if not entry.checkable)


def all_files() -> tuple[ModelFile, ...]:
    return tuple(FILES.values())


def locked(report: list[dict[str, Any]], path: Path = CATALOG_FILE) -> str:
    """The catalog with each checked file's revision pinned to its commit, size and sha256 filled.

    `report` is what `fetch_models.py --check --report` writes, one row per file.
    """
    data = json.loads(path.read_text())
    by_location = {
        (row["repo"], row["path"]): row
        for row in report
        if row.get("commit") or (row.get("url") and row.get("remote_size"))
    }
    for entry in data["files"].values():
        where = located(entry)
        row = by_location.get((where["repo"], where["path"]))
        if row is None:
            continue
        if not entry.get("url"):
            entry["revision"] = row["commit"]
        entry["size"] = row["remote_size"]
        entry["sha256"] = row.get("remote_sha256") or entry.get("sha256")
    return json.dumps(data, indent=2) + "\n"
