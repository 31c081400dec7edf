"""Download the model files of a manifest from Hugging Face and place them under a models folder.

Usage: fetch_models.py --manifest FILE --dest DIR [--cache-dir DIR]

The manifest is a JSON list of catalog entries (repo, path, revision, target,
size, sha256). Files go through the Hugging Face cache (a cache volume at build
time), then are copied to DEST/target under a temporary name and renamed, so no
partial file is ever visible under its final name. A file already at its target
with the catalog's size is skipped without re-hashing. The token, if any, comes
from $HF_TOKEN and is never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HUB = "https://huggingface.co"


class FetchError(Exception):
    """A file that could not be fetched, worded for the person reading the log."""


@dataclass(frozen=True)
class Entry:
    repo: str
    path: str
    revision: str
    target: str
    size: int | None
    sha256: str | None

    @classmethod
    def from_manifest(cls, item: dict[str, object]) -> Entry:
        size = item.get("size")
        sha256 = item.get("sha256")
        return cls(
            repo=str(item["repo"]),
            path=str(item["path"]),
            revision=str(item.get("revision") or "main"),
            target=str(item["target"]),
            size=int(size) if isinstance(size, int) else None,
            sha256=str(sha256) if sha256 else None,
        )

    @property
    def page(self) -> str:
        return f"{HUB}/{self.repo}/blob/{self.revision}/{self.path}"


def load_manifest(path: Path) -> list[Entry]:
    items = json.loads(path.read_text())
    if not isinstance(items, list) or not items:
        raise FetchError(f"manifest {path} holds no file entries")
    return [Entry.from_manifest(item) for item in items]


def already_placed(entry: Entry, dest: Path) -> bool:
    final = dest / entry.target
    return final.is_file() and entry.size is not None and final.stat().st_size == entry.size


def download(entry: Entry, cache_dir: Path | None) -> Path:
    """Fetch one file into the Hugging Face cache and return its cached path."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return Path(
            hf_hub_download(entry.repo, entry.path, revision=entry.revision, cache_dir=cache_dir)
        )
    except GatedRepoError:
        raise FetchError(
            f"{entry.repo} is gated: accept its licence at {HUB}/{entry.repo} with the account "
            "whose token you pass as HF_TOKEN"
        ) from None
    except RepositoryNotFoundError:
        token = "with the HF_TOKEN given" if os.environ.get("HF_TOKEN") else "without a token"
        raise FetchError(
            f"repository {entry.repo} is not found or private ({token}): {HUB}/{entry.repo}"
        ) from None
    except RevisionNotFoundError:
        raise FetchError(f"revision {entry.revision} does not exist in {entry.repo}") from None
    except EntryNotFoundError:
        raise FetchError(f"{entry.path} does not exist in {entry.repo}: {entry.page}") from None
    except HfHubHTTPError as exc:
        raise FetchError(f"{entry.page}: {exc}") from None


def place(source: Path, entry: Entry, dest: Path) -> Path:
    """Copy a downloaded file to its target through a temporary name."""
    size = source.stat().st_size
    if entry.size is not None and size != entry.size:
        raise FetchError(f"{entry.page}: downloaded {size} bytes, the catalog expects {entry.size}")
    final = dest / entry.target
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.with_name(f".{final.name}.partial")
    shutil.copyfile(source, partial)
    os.replace(partial, final)
    return final


def fetch(entries: list[Entry], dest: Path, cache_dir: Path | None) -> None:
    for number, entry in enumerate(entries, start=1):
        label = f"[{number}/{len(entries)}] {entry.repo}/{entry.path}"
        if already_placed(entry, dest):
            print(f"{label}: present, skipped", flush=True)
            continue
        started = time.monotonic()
        print(f"{label}: downloading", flush=True)
        final = place(download(entry, cache_dir), entry, dest)
        size_gb = final.stat().st_size / 1e9
        print(
            f"{label}: {size_gb:.2f} GB at {entry.target} in {time.monotonic() - started:.0f} s",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--dest", type=Path, required=True)
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        fetch(load_manifest(args.manifest), args.dest, args.cache_dir)
    except FetchError as exc:
        print(f"model fetch failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
