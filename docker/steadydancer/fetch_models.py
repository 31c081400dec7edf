"""Fetch the model files of a manifest from Hugging Face, verified, into ComfyUI's models folder.

Usage:
  fetch_models.py --manifest FILE --dest DIR [--cache-dir DIR] [--jobs 4]
  fetch_models.py --manifest FILE --check [--report FILE]

The manifest is a JSON list of catalog entries (repo, path, revision, target,
size, sha256). Every file is asked about first (existence, access, size), so a
missing or gated file fails the run before the first byte, as does too little
free disk. Files then download in parallel (--jobs), resuming a partial file
with an HTTP Range request, retrying server errors and timeouts with backoff,
hashing while they stream. A file whose size or sha256 differs is deleted; a
good one is renamed into place, so no partial file is ever visible under its
final name, and a marker records it: a later run skips it by size and marker,
without re-hashing. With --cache-dir (a cache volume at build time) files are
kept there and copied to --dest. The Hugging Face token comes from $HF_TOKEN
and is never printed. Needs huggingface_hub (any release from 0.26 on).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import errno
import fcntl
import hashlib
import http.client
import json
import os
import random
import shutil
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

HUB = "https://huggingface.co"
MARKERS = ".steadydancer-verified"
"""Beside the model folders, not inside them, so ComfyUI never lists a marker as a model."""
CHUNK = 1 << 20
FREE_SPACE_MARGIN = 256 << 20
RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}
STOP = threading.Event()
"""Set (by the entrypoint on SIGTERM) to end every download at its next chunk, partials kept."""


_PRINT = threading.Lock()


def say(line: str) -> None:
    """Print one whole line; download threads print concurrently."""
    with _PRINT:
        print(line, flush=True)


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
        size, sha256 = item.get("size"), item.get("sha256")
        return cls(
            repo=str(item["repo"]),
            path=str(item["path"]),
            revision=str(item.get("revision") or "main"),
            target=str(item["target"]),
            size=size if isinstance(size, int) else None,
            sha256=str(sha256).lower() if sha256 else None,
        )

    @property
    def page(self) -> str:
        return f"{HUB}/{self.repo}/blob/{self.revision}/{self.path}"

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Remote:
    """What the Hub says of a file, before any download."""

    url: str
    size: int
    commit: str
    sha256: str | None
    """The LFS object id, which is the file's sha256; None for files kept in git."""


def load_manifest(path: Path) -> list[Entry]:
    try:
        items = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise FetchError(f"cannot read the manifest {path}: {exc}") from None
    if not isinstance(items, list) or not items:
        raise FetchError(f"manifest {path} holds no file entries")
    return [Entry.from_manifest(item) for item in items]


def token() -> str | None:
    return os.environ.get("HF_TOKEN") or None


def describe_remote(entry: Entry, retries: int = 3) -> Remote:
    """Ask the Hub about one file (a HEAD request, retried on server errors)."""
    for attempt in range(retries + 1):
        try:
            return _describe_remote(entry)
        except TransientError as exc:
            if attempt == retries:
                raise FetchError(f"{entry.page}: {exc} (after {attempt + 1} attempts)") from None
            time.sleep(min(2**attempt, 30) * (0.5 + random.random() / 2))
    raise AssertionError("unreachable")


class TransientError(Exception):
    """A server error or lost connection worth asking again about."""


def _describe_remote(entry: Entry) -> Remote:
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    url = hf_hub_url(entry.repo, entry.path, revision=entry.revision)
    try:
        meta = get_hf_file_metadata(url, token=token())
    except GatedRepoError:
        raise FetchError(
            f"{entry.repo} is gated: accept its licence at {HUB}/{entry.repo} with the account "
            "whose token you pass as HF_TOKEN"
        ) from None
    except RepositoryNotFoundError:
        given = "with the HF_TOKEN given" if token() else "without a token"
        raise FetchError(
            f"repository {entry.repo} is not found or private ({given}): {HUB}/{entry.repo}"
        ) from None
    except RevisionNotFoundError:
        raise FetchError(f"revision {entry.revision} does not exist in {entry.repo}") from None
    except EntryNotFoundError:
        raise FetchError(
            f"{entry.path} does not exist in {entry.repo} (catalog target {entry.target}): "
            f"{entry.page}"
        ) from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status in RETRYABLE_STATUS:
            raise TransientError(f"HTTP {status}") from None
        raise FetchError(f"{entry.page}: {exc}") from None
    except OSError as exc:
        raise TransientError(f"cannot reach the Hub: {exc}") from None
    etag = (meta.etag or "").strip('"').lower()
    sha256 = etag if len(etag) == 64 and all(c in "0123456789abcdef" for c in etag) else None
    if meta.size is None:
        raise FetchError(f"{entry.page}: the Hub gave no size for it")
    commit = meta.commit_hash or entry.revision
    # Download the commit this answer describes, so a resumed file is never two versions.
    return Remote(hf_hub_url(entry.repo, entry.path, revision=commit), meta.size, commit, sha256)


def expected_sha256(entry: Entry, remote: Remote) -> str | None:
    return entry.sha256 or remote.sha256


def marker_path(root: Path, entry: Entry) -> Path:
    return root / MARKERS / f"{entry.target}.json"


def read_marker(root: Path, entry: Entry) -> dict[str, object] | None:
    try:
        data = json.loads(marker_path(root, entry).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def write_marker(root: Path, entry: Entry, size: int, sha256: str, commit: str) -> None:
    path = marker_path(root, entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "repo": entry.repo,
        "path": entry.path,
        "commit": commit,
        "size": size,
        "sha256": sha256,
    }
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(partial, path)


def verified(root: Path, entry: Entry, size: int | None = None) -> bool:
    """True when root holds the file at its target with a marker that vouches for it.

    Only sizes are compared: a 30 GB tree is never re-hashed to be trusted.
    """
    final = root / entry.target
    marker = read_marker(root, entry)
    if marker is None or not final.is_file():
        return False
    wanted = size if size is not None else entry.size
    if marker.get("repo") != entry.repo or marker.get("path") != entry.path:
        return False
    if entry.sha256 and marker.get("sha256") != entry.sha256:
        return False
    actual = final.stat().st_size
    return actual == marker.get("size") and (wanted is None or actual == wanted)


@contextlib.contextmanager
def target_lock(folder: Path, entry: Entry) -> Iterator[None]:
    """One downloader per file: pods or workers sharing a volume take turns, never interleave."""
    path = folder / MARKERS / f"{entry.target}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def partial_path(folder: Path, entry: Entry) -> Path:
    final = folder / entry.target
    return final.with_name(f".{final.name}.partial")


class Progress:
    """Per-file and overall bytes, printed every few seconds with rate and ETA."""

    def __init__(self, total: int, interval: float) -> None:
        self.total = total
        self.done = 0
        self.files: dict[str, tuple[int, int]] = {}
        self.started = time.monotonic()
        self.interval = interval
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def add(self, name: str, count: int, have: int, size: int) -> None:
        with self.lock:
            self.done += count
            self.files[name] = (have, size)

    def finish(self, name: str) -> None:
        with self.lock:
            self.files.pop(name, None)

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            say(self.line())

    def line(self) -> str:
        with self.lock:
            elapsed = max(time.monotonic() - self.started, 1e-6)
            rate = self.done / elapsed
            left = self.total - self.done
            parts = [
                f"{name} {have / 1e9:.2f}/{size / 1e9:.2f} GB"
                for name, (have, size) in sorted(self.files.items())
            ]
        eta = f"{left / rate:.0f} s" if rate > 0 else "?"
        return (
            f"progress: {self.done / 1e9:.2f}/{self.total / 1e9:.2f} GB, "
            f"{rate / 1e6:.1f} MB/s, ETA {eta}" + (f" | {'; '.join(parts)}" if parts else "")
        )

    def __enter__(self) -> Progress:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        say(self.line())


@dataclass
class Download:
    entry: Entry
    remote: Remote
    folder: Path
    retries: int
    timeout: float
    progress: Progress

    @property
    def final(self) -> Path:
        return self.folder / self.entry.target

    @property
    def partial(self) -> Path:
        return partial_path(self.folder, self.entry)

    def request(self, offset: int) -> urllib.request.Request:
        request = urllib.request.Request(self.remote.url)
        request.add_header("User-Agent", "steadydancer-fetch")
        if offset:
            request.add_header("Range", f"bytes={offset}-")
        if token():
            # Unredirected: the Hub redirects to a CDN that must never see the token.
            request.add_unredirected_header("Authorization", f"Bearer {token()}")
        return request

    def resume_state(self) -> tuple[int, hashlib._Hash]:
        digest = hashlib.sha256()
        if not self.partial.exists():
            return 0, digest
        have = self.partial.stat().st_size
        if have > self.remote.size:
            self.partial.unlink()
            return 0, digest
        with self.partial.open("rb") as kept:
            while chunk := kept.read(CHUNK):
                digest.update(chunk)
        return have, digest

    def attempt(self, have: int, digest: hashlib._Hash) -> tuple[int, hashlib._Hash]:
        """One GET from `have` on; returns how far it got."""
        size = self.remote.size
        if have >= size:
            return have, digest
        with urllib.request.urlopen(self.request(have), timeout=self.timeout) as response:
            if have and response.status != 206:
                # The server ignored the range: start over rather than append a second copy.
                self.progress.add(self.entry.name, -have, 0, size)
                have, digest = 0, hashlib.sha256()
                self.partial.unlink(missing_ok=True)
            mode = "ab" if have else "wb"
            with self.partial.open(mode) as out:
                while chunk := response.read(CHUNK):
                    if STOP.is_set():
                        raise FetchError(
                            f"{self.entry.name}: stopped; {have / 1e9:.2f} GB kept for the next run"
                        )
                    out.write(chunk)
                    digest.update(chunk)
                    have += len(chunk)
                    self.progress.add(self.entry.name, len(chunk), have, size)
        if have > size:
            # More bytes than the Hub announced: nothing to resume from, start over.
            self.progress.add(self.entry.name, -have, 0, size)
            self.partial.unlink(missing_ok=True)
            return 0, hashlib.sha256()
        return have, digest

    def run(self) -> tuple[int, str]:
        """Download with resume and retries; returns (size, sha256) of the completed partial."""
        self.final.parent.mkdir(parents=True, exist_ok=True)
        have, digest = self.resume_state()
        if have:
            say(f"{self.entry.name}: resuming at {have / 1e9:.2f} GB")
            self.progress.add(self.entry.name, 0, have, self.remote.size)
        for attempt in range(1, self.retries + 2):
            try:
                have, digest = self.attempt(have, digest)
                if have == self.remote.size:
                    break
                problem = f"connection closed at {have} of {self.remote.size} bytes"
            except urllib.error.HTTPError as exc:
                if exc.code not in RETRYABLE_STATUS:
                    raise FetchError(f"{self.entry.page}: HTTP {exc.code} {exc.reason}") from None
                problem = f"HTTP {exc.code}"
            except http.client.HTTPException as exc:
                problem = f"{type(exc).__name__}: {exc}"
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    raise FetchError(
                        f"disk full while writing {self.partial}: free space and run again; "
                        f"the {have / 1e9:.2f} GB already fetched are kept and resumed"
                    ) from None
                problem = f"{type(exc).__name__}: {exc}"
            if attempt > self.retries:
                raise FetchError(
                    f"{self.entry.page}: gave up after {attempt} attempts ({problem}); "
                    f"{have / 1e9:.2f} GB are kept in {self.partial} and resumed next time"
                )
            pause = min(2 ** (attempt - 1), 30) * (0.5 + random.random() / 2)
            say(f"{self.entry.name}: {problem}; retry {attempt}/{self.retries} in {pause:.1f} s")
            time.sleep(pause)
        return have, digest.hexdigest()

    def complete(self) -> None:
        size, sha256 = self.run()
        wanted = expected_sha256(self.entry, self.remote)
        expected_size = self.entry.size or self.remote.size
        if size != expected_size or (wanted and sha256 != wanted):
            self.partial.unlink(missing_ok=True)
            raise FetchError(
                f"{self.entry.page}: checksum mismatch, the file was removed: expected "
                f"{expected_size} bytes with sha256 {wanted or '(unknown)'}, got {size} bytes with "
                f"sha256 {sha256}"
            )
        os.replace(self.partial, self.final)
        write_marker(self.folder, self.entry, size, sha256, self.remote.commit)
        self.progress.finish(self.entry.name)


def place(source_root: Path, dest: Path, entry: Entry) -> None:
    """Copy a verified file from the cache to dest, through a temporary name."""
    source = source_root / entry.target
    final = dest / entry.target
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.with_name(f".{final.name}.partial")
    shutil.copyfile(source, partial)
    os.replace(partial, final)
    marker = read_marker(source_root, entry)
    assert marker is not None
    write_marker(
        dest, entry, int(str(marker["size"])), str(marker["sha256"]), str(marker["commit"])
    )


def check_space(folder: Path, needed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if needed + FREE_SPACE_MARGIN > free:
        raise FetchError(
            f"disk full: {needed / 1e9:.2f} GB still to fetch into {folder}, only "
            f"{free / 1e9:.2f} GB free; free space, or mount a larger volume there"
        )


def describe_all(entries: list[Entry], jobs: int, retries: int) -> dict[Entry, Remote]:
    """Ask the Hub about every file; fail naming every missing or forbidden one."""
    problems: list[str] = []
    remotes: dict[Entry, Remote] = {}

    def ask(entry: Entry) -> None:
        try:
            remotes[entry] = describe_remote(entry, retries)
        except FetchError as exc:
            problems.append(str(exc))

    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(ask, entries))
    if problems:
        raise FetchError("\n  ".join([f"{len(problems)} file(s) cannot be fetched:", *problems]))
    for entry, remote in remotes.items():
        if entry.size is not None and entry.size != remote.size:
            problems.append(
                f"{entry.page}: the Hub has {remote.size} bytes, the catalog {entry.size}: "
                "the file changed upstream; pin its revision (lock_models) or update the catalog"
            )
    if problems:
        raise FetchError("\n  ".join(problems))
    return remotes


def fetch(
    entries: list[Entry],
    dest: Path,
    cache: Path | None,
    jobs: int,
    retries: int,
    timeout: float,
    interval: float,
) -> None:
    pending = [entry for entry in entries if not verified(dest, entry)]
    for entry in entries:
        if entry not in pending:
            say(f"{entry.target}: present and verified, skipped")
    if not pending:
        say(f"all {len(entries)} files present")
        return
    folder = cache or dest
    remotes = describe_all(pending, jobs, retries)
    to_download = [entry for entry in pending if not verified(folder, entry, remotes[entry].size)]
    needed = 0
    for entry in to_download:
        partial = partial_path(folder, entry)
        needed += remotes[entry].size - (partial.stat().st_size if partial.exists() else 0)
    check_space(folder, needed)
    if cache is not None:
        check_space(dest, sum(remotes[entry].size for entry in pending))
    say(
        f"fetching {len(to_download)} of {len(entries)} files, {needed / 1e9:.2f} GB, "
        f"{jobs} at a time"
    )
    started = time.monotonic()
    errors: list[str] = []
    with Progress(needed, interval) as progress:

        def one(entry: Entry) -> None:
            with target_lock(folder, entry):
                if verified(folder, entry, remotes[entry].size):
                    say(f"{entry.target}: fetched meanwhile by another process")
                    return
                Download(entry, remotes[entry], folder, retries, timeout, progress).complete()
            say(f"{entry.target}: verified")

        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(one, entry): entry for entry in to_download}
            for future in concurrent.futures.as_completed(futures):
                error = future.exception()
                if isinstance(error, FetchError):
                    errors.append(str(error))
                elif error is not None:
                    for queued in futures:
                        queued.cancel()
                    raise error
    if errors:
        raise FetchError("\n  ".join([f"{len(errors)} file(s) failed:", *errors]))
    if cache is not None:
        for entry in pending:
            place(cache, dest, entry)
    elapsed = time.monotonic() - started
    say(f"fetched {needed / 1e9:.2f} GB in {elapsed:.0f} s")


def gated(repo: str) -> str:
    """The repository's gating ("no", "auto" or "manual"), or why it could not be read."""
    from huggingface_hub import model_info
    from huggingface_hub.errors import HfHubHTTPError

    try:
        value = model_info(repo, token=token()).gated
    except HfHubHTTPError as exc:
        return f"unknown ({exc.__class__.__name__})"
    return "no" if not value else str(value)


def check(entries: list[Entry], jobs: int, report: Path | None) -> None:
    """Ask the Hub about every file without downloading; print a table, fail on any problem."""
    rows: list[dict[str, object]] = []
    problems: list[str] = []
    gating = {repo: gated(repo) for repo in sorted({entry.repo for entry in entries})}
    for entry in entries:
        try:
            remote = describe_remote(entry)
        except FetchError as exc:
            problems.append(str(exc))
            rows.append({**asdict(entry), "status": "MISSING", "gated": gating[entry.repo]})
            continue
        status = "ok"
        if entry.size is not None and entry.size != remote.size:
            status = "SIZE"
            problems.append(
                f"{entry.page}: the Hub has {remote.size} bytes, the catalog {entry.size}"
            )
        if entry.sha256 and remote.sha256 and entry.sha256 != remote.sha256:
            status = "SHA256"
            problems.append(
                f"{entry.page}: the Hub has sha256 {remote.sha256}, the catalog {entry.sha256}"
            )
        rows.append(
            {
                **asdict(entry),
                "status": status,
                "gated": gating[entry.repo],
                "commit": remote.commit,
                "remote_size": remote.size,
                "remote_sha256": remote.sha256,
            }
        )
    print(f"{'status':7} {'gated':7} {'size GB':>8}  file")
    for row in rows:
        size = row.get("remote_size")
        shown = f"{int(str(size)) / 1e9:8.2f}" if size is not None else "       ?"
        print(f"{row['status']!s:7} {row['gated']!s:7} {shown}  {row['repo']}/{row['path']}")
    total = sum(int(str(row.get("remote_size") or 0)) for row in rows)
    print(f"{len(rows)} files, {total / 1e9:.2f} GB")
    if report is not None:
        report.write_text(json.dumps(rows, indent=1) + "\n")
    if problems:
        raise FetchError("\n  ".join([f"{len(problems)} problem(s):", *problems]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--dest", type=Path)
    parser.add_argument("--cache-dir", type=Path)
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--retries", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds without data")
    parser.add_argument("--progress-interval", type=float, default=10.0)
    parser.add_argument("--check", action="store_true", help="ask the Hub, download nothing")
    parser.add_argument("--report", type=Path, help="with --check: write the table as JSON")
    args = parser.parse_args(argv)
    if not args.check and args.dest is None:
        parser.error("--dest is required unless --check is given")
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    try:
        entries = load_manifest(args.manifest)
        if args.check:
            check(entries, args.jobs, args.report)
        else:
            fetch(
                entries,
                args.dest,
                args.cache_dir,
                args.jobs,
                args.retries,
                args.timeout,
                args.progress_interval,
            )
    except FetchError as exc:
        print(f"model fetch failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
