"""Fetch the model files of a manifest from Hugging Face, verified, into ComfyUI's models folder.

Usage:
  fetch_models.py --manifest FILE --dest DIR [--cache-dir DIR] [--jobs 4]
  fetch_models.py --manifest FILE --check [--report FILE]

The manifest is a JSON list of catalog entries (repo, path, revision, target,
size, sha256, and url for a file the Hub does not hold); every target must be a
relative path inside the destination.
Every file is asked about first (existence, access, size), so a missing or
gated file fails the run before the first byte, as does too little free disk.

The bytes move through huggingface_hub: its Xet transfer where the Hub offers
it for a file and hf_xet is installed, else its HTTP download with Range
resumption. What the library does not do is done here: the up-front
description of every file, the free-space check, one progress line for the
whole set, retries across calls (a connection reset mid-file resumes from the
bytes on disk; Retry-After is honoured), the sha256 check against the catalog
(hashed while streaming), writing only inside the destination and never
through a symbolic link, markers (a later run skips a file by size and marker,
without re-hashing) and per-file locks between fetchers sharing a volume. A
file whose size or sha256 differs is deleted; a good one is renamed into
place, so no partial file is ever visible under its final name. With
--cache-dir (a cache volume at build time) files are kept there and copied to
--dest. The token comes from $HF_TOKEN, reaches the Hub's own host only, and
is never printed. Needs huggingface_hub 0.36 or later (the image's and the
build's releases are both tested).

A file at a plain URL (not on the Hub) is described by a HEAD request of its own
(urllib, following redirects: the library's metadata call reads the Hub's headers
and only follows the Hub's relative redirects), then downloaded, resumed,
retried and verified exactly as a Hub file, never with the token.
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
import stat
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

MARKERS = ".steadydancer-verified"
"""Beside the model folders, not inside them, so ComfyUI never lists a marker as a model."""
CHUNK = 1 << 20
FREE_SPACE_MARGIN = 256 << 20
RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}
XET_HIGH_PERFORMANCE_CORES = 8
MAX_RETRY_AFTER = 300.0
"""A server's Retry-After is honoured up to this many seconds."""
AGENT = "steadydancer-fetch-models"
STOP = threading.Event()
"""Set (by the entrypoint on SIGTERM) to end every download at its next chunk, partials kept."""


_PRINT = threading.Lock()


def say(line: str) -> None:
    """Print one whole line; download threads print concurrently."""
    with _PRINT:
        print(line, flush=True)


class FetchError(Exception):
    """A file that could not be fetched, worded for the person reading the log."""


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def human(size: float) -> str:
    """A size a person reads at a glance: 16.8 MB, 2.55 GB."""
    if abs(size) >= 1e9:
        return f"{size / 1e9:.2f} GB"
    if abs(size) >= 1e6:
        return f"{size / 1e6:.1f} MB"
    return f"{size / 1e3:.1f} kB"


@dataclass(frozen=True)
class Entry:
    repo: str
    path: str
    revision: str
    target: str
    size: int | None
    sha256: str | None
    url: str | None = None
    """Where a file the Hub does not hold is served; repo and path are then its host and path."""

    @classmethod
    def from_manifest(cls, item: dict[str, object]) -> Entry:
        size, sha256, url = item.get("size"), item.get("sha256"), item.get("url")
        return cls(
            repo=str(item["repo"]),
            path=str(item["path"]),
            revision=str(item.get("revision") or ("" if url else "main")),
            target=str(item["target"]),
            size=size if isinstance(size, int) else None,
            sha256=str(sha256).lower() if sha256 else None,
            url=str(url) if url else None,
        )

    @property
    def page(self) -> str:
        if self.url:
            return self.url
        return f"{endpoint()}/{self.repo}/blob/{self.revision}/{self.path}"

    @property
    def server(self) -> str:
        return urllib.parse.urlsplit(self.url).netloc if self.url else "the Hub"

    @property
    def server_at(self) -> str:
        return self.server if self.url else f"the Hub at {endpoint()}"

    @property
    def relative(self) -> PurePosixPath:
        """The target as a path that stays inside the destination, or FetchError naming it."""
        target = PurePosixPath(self.target)
        if (
            target.is_absolute()
            or "\\" in self.target
            or not target.parts
            or any(part in ("", ".", "..") for part in target.parts)
            or self.target != str(target)
        ):
            raise FetchError(
                f"{self.repo}/{self.path}: its target {self.target!r} is not a plain relative "
                "path inside the models folder (no '..', no absolute path)"
            )
        return target

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Remote:
    """What the Hub says of a file, before any download."""

    url: str
    """Where the bytes are: the CDN address the Hub redirected to, or the Hub itself."""
    size: int
    commit: str
    sha256: str | None
    """The LFS object id, which is the file's sha256; None for files kept in git."""
    xet: Any = None
    """huggingface_hub's XetFileData when the Hub offers the file through Xet."""


def load_manifest(path: Path) -> list[Entry]:
    try:
        items = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise FetchError(f"cannot read the manifest {path}: {exc}") from None
    if not isinstance(items, list) or not items:
        raise FetchError(f"manifest {path} holds no file entries")
    entries = [Entry.from_manifest(item) for item in items]
    for entry in entries:
        entry.relative  # noqa: B018  (refuses a target outside the destination, by name)
    return entries


def token() -> str | None:
    return os.environ.get("HF_TOKEN") or None


def same_host(url: str) -> bool:
    return urllib.parse.urlsplit(url).netloc == urllib.parse.urlsplit(endpoint()).netloc


def auth_headers(url: str) -> dict[str, str]:
    """The token for the Hub's own host only: its CDN and any other host never see it."""
    tok = token()
    return {"authorization": f"Bearer {tok}"} if tok and same_host(url) else {}


def retry_after(response: Any) -> float | None:
    """A server's Retry-After in seconds (capped), when it gave one."""
    value = getattr(response, "headers", {}).get("Retry-After") if response is not None else None
    try:
        return min(float(value), MAX_RETRY_AFTER) if value is not None else None
    except ValueError:
        return None


def backoff(attempt: int, asked: float | None) -> float:
    return asked if asked is not None else min(2 ** (attempt - 1), 30) * (0.5 + random.random() / 2)


class TransientError(Exception):
    """A server error or lost connection worth asking again about."""

    def __init__(self, message: str, wait: float | None = None) -> None:
        super().__init__(message)
        self.wait = wait


UNANSWERED = "cannot get an answer about"
HEAD_TIMEOUT = 10.0


def describe_remote(entry: Entry, retries: int = 3, timeout: float = HEAD_TIMEOUT) -> Remote:
    """Ask the Hub about one file (a HEAD request, retried on server errors and lost answers)."""
    for attempt in range(1, retries + 2):
        try:
            return _describe_remote(entry, timeout)
        except TransientError as exc:
            if attempt > retries:
                raise FetchError(
                    f"{UNANSWERED} {entry.repo}/{entry.path} from {entry.server_at} "
                    f"after {attempt} attempts: {exc}"
                ) from None
            pause = backoff(attempt, exc.wait)
            say(
                f"{entry.name}: {entry.server} did not answer ({exc}); retry {attempt}/"
                f"{retries} in {pause:.1f} s"
            )
            time.sleep(pause)
    raise AssertionError("unreachable")


class KeepHttps(urllib.request.HTTPRedirectHandler):
    """Redirects are followed, never from https to plain http (whose bytes anyone between
    could change, and a checkpoint is a pickle: its bytes run as code when loaded)."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        if req.full_url.startswith("https:") and not newurl.startswith("https:"):
            raise FetchError(
                f"{req.full_url}: redirected to a plain http address, which is not followed"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _describe_url(entry: Entry, timeout: float) -> Remote:
    assert entry.url is not None
    request = urllib.request.Request(entry.url, method="HEAD", headers={"user-agent": AGENT})
    opener = urllib.request.build_opener(KeepHttps)
    try:
        with opener.open(request, timeout=timeout) as response:
            length, location = response.headers.get("content-length"), response.geturl()
    except urllib.error.HTTPError as exc:
        if exc.code in RETRYABLE_STATUS:
            raise TransientError(f"HTTP {exc.code}", retry_after(exc)) from None
        raise FetchError(
            f"{entry.url}: HTTP {exc.code} {exc.reason} (catalog target {entry.target}): "
            "the file is no longer served there; fix its url in the catalog"
        ) from None
    except (OSError, http.client.HTTPException) as exc:
        raise TransientError(f"{type(exc).__name__}: {exc}") from None
    if length is None or not length.isdigit():
        raise FetchError(f"{entry.url}: the server gave no size for it")
    return Remote(location, int(length), entry.revision, None)


def _describe_remote(entry: Entry, timeout: float) -> Remote:
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    if entry.url:
        return _describe_url(entry, timeout)
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    url = hf_hub_url(entry.repo, entry.path, revision=entry.revision, endpoint=endpoint())
    try:
        meta = get_hf_file_metadata(url, token=token(), timeout=timeout)
    except GatedRepoError:
        raise FetchError(
            f"{entry.repo} is gated: accept its licence at {endpoint()}/{entry.repo} with the "
            "account whose token you pass as HF_TOKEN"
        ) from None
    except RepositoryNotFoundError:
        given = "with the HF_TOKEN given" if token() else "without a token"
        raise FetchError(
            f"repository {entry.repo} is not found or private ({given}): {endpoint()}/{entry.repo}"
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
            raise TransientError(f"HTTP {status}", retry_after(exc.response)) from None
        raise FetchError(f"{entry.page}: {exc}") from None
    except Exception as exc:  # the client library's network errors (requests or httpx)
        raise TransientError(f"{type(exc).__name__}: {exc}") from None
    etag = (meta.etag or "").strip('"').lower()
    sha256 = etag if len(etag) == 64 and all(c in "0123456789abcdef" for c in etag) else None
    if meta.size is None:
        raise FetchError(f"{entry.page}: the Hub gave no size for it")
    commit = meta.commit_hash or entry.revision
    # Where the HEAD ended after the Hub's own redirects (a renamed repository, say): a CDN
    # address is content-addressed, so a resumed file is never two versions.
    xet = getattr(meta, "xet_file_data", None)
    return Remote(meta.location, meta.size, commit, sha256, xet)


def expected_sha256(entry: Entry, remote: Remote) -> str | None:
    return entry.sha256 or remote.sha256


def inside(root: Path, relative: PurePosixPath) -> Path:
    """root/relative's parent folders made or checked one by one, none a symbolic link.

    The root itself may be a link (a volume mounted through one); nothing below it is
    followed, so a planted link cannot send a write outside the destination.
    """
    root.mkdir(parents=True, exist_ok=True)
    folder = root
    for part in relative.parts[:-1]:
        folder = folder / part
        with contextlib.suppress(FileExistsError):
            folder.mkdir()
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            raise FetchError(
                f"{folder} is a symbolic link or not a folder: nothing is written there"
            )
    return folder / relative.parts[-1]


def open_new(path: Path, mode: int = 0o644) -> int:
    """A fresh file at `path` (whatever stood there, a link included, is removed first)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)


def marker_path(root: Path, entry: Entry) -> Path:
    return root / MARKERS / f"{entry.target}.json"


def read_marker(root: Path, entry: Entry) -> dict[str, object] | None:
    try:
        data = json.loads(marker_path(root, entry).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def write_marker(root: Path, entry: Entry, size: int, sha256: str, commit: str) -> None:
    path = inside(root, PurePosixPath(MARKERS) / f"{entry.relative}.json")
    record = {
        "repo": entry.repo,
        "path": entry.path,
        "commit": commit,
        "size": size,
        "sha256": sha256,
    }
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
    with os.fdopen(open_new(partial), "w") as out:
        out.write(json.dumps(record, indent=1) + "\n")
    os.replace(partial, path)


def verified(root: Path, entry: Entry, size: int | None = None) -> bool:
    """True when root holds the file at its target with a marker that vouches for it.

    Only sizes are compared: a 30 GB tree is never re-hashed to be trusted.
    """
    final = root / entry.target
    marker = read_marker(root, entry)
    if marker is None or not final.is_file() or final.is_symlink():
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
    path = inside(folder, PurePosixPath(MARKERS) / f"{entry.relative}.lock")
    handle = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)


def partial_path(folder: Path, entry: Entry) -> Path:
    final = folder / entry.target
    return final.with_name(f".{final.name}.partial")


class Progress:
    """Per-file and overall bytes, printed every few seconds with rate and ETA."""

    def __init__(self, total: int, interval: float) -> None:
        self.total = total
        self.done = 0
        self.files: dict[str, tuple[int, int]] = {}
        self.waits: dict[str, float] = {}
        """Files waiting out a server's Retry-After, and for how long."""
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

    def wait(self, name: str, seconds: float | None) -> None:
        with self.lock:
            if seconds is None:
                self.waits.pop(name, None)
            else:
                self.waits[name] = seconds

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            say(self.line())

    def line(self) -> str:
        with self.lock:
            elapsed = max(time.monotonic() - self.started, 1e-6)
            rate = self.done / elapsed
            left = self.total - self.done
            parts = [
                f"{name} {human(have)}/{human(size)}"
                for name, (have, size) in sorted(self.files.items())
            ]
            waiting = [f"{name} waits {pause:.0f} s" for name, pause in sorted(self.waits.items())]
        eta = f"{left / rate:.0f} s" if rate > 0 else "?"
        return (
            f"progress: {human(self.done)}/{human(self.total)}, "
            f"{rate / 1e6:.1f} MB/s, ETA {eta}"
            + (f" | {'; '.join(parts + waiting)}" if parts or waiting else "")
        )

    def __enter__(self) -> Progress:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        say(self.line())


class HashingFile:
    """The partial file as huggingface_hub writes it: every byte hashed and counted as it lands.

    What is on disk, the running sha256 and the count always agree, so a download that breaks
    at any point resumes from `have` with nothing lost and nothing written twice.
    """

    def __init__(self, path: Path, name: str, size: int, progress: Progress) -> None:
        self.name, self.size, self.progress = name, size, progress
        self.digest = hashlib.sha256()
        self.have = 0
        if path.is_symlink():
            say(f"{name}: {path} is a symbolic link, not a partial download: removed")
            path.unlink()
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        self.file = os.fdopen(fd, "r+b")
        while chunk := self.file.read(CHUNK):
            self.digest.update(chunk)
            self.have += len(chunk)
        if self.have > size:
            self.truncate(0)

    def write(self, data: bytes) -> int:
        if STOP.is_set():
            raise FetchError(f"{self.name}: stopped; {human(self.have)} kept for the next run")
        self.file.write(data)
        self.digest.update(data)
        self.have += len(data)
        self.progress.add(self.name, len(data), self.have, self.size)
        return len(data)

    def tell(self) -> int:
        return self.file.tell()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self.file.seek(offset, whence)

    def truncate(self, size: int | None = None) -> int:
        """Called by the library when a server ignored the Range asked for: start over."""
        size = self.file.tell() if size is None else size
        self.file.seek(size)
        self.file.truncate(size)
        self.progress.add(self.name, size - self.have, size, self.size)
        self.digest = hashlib.sha256()
        self.file.seek(0)
        while size and (chunk := self.file.read(min(CHUNK, size - self.file.tell()))):
            self.digest.update(chunk)
        self.have = size
        return size

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:
        self.file.close()


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
        return inside(self.folder, self.entry.relative)

    @property
    def partial(self) -> Path:
        return self.final.with_name(f".{self.final.name}.partial")

    def by_xet(self) -> bool:
        """The file through Xet when the Hub offers it; False (partial removed) if that fails."""
        from huggingface_hub.file_download import xet_get
        from huggingface_hub.utils._runtime import is_xet_available

        if self.remote.xet is None or not is_xet_available():
            return False
        if self.partial.exists():
            return False  # bytes an earlier run fetched over HTTP are resumed, not thrown away
        try:
            xet_get(
                incomplete_path=self.partial,
                xet_file_data=self.remote.xet,
                headers=auth_headers(endpoint()),
                expected_size=self.remote.size,
                displayed_filename=self.entry.name,
            )
        except Exception as exc:  # hf_xet's errors are its own; the HTTP path still works
            say(
                f"{self.entry.name}: Xet transfer failed ({type(exc).__name__}: {exc}); "
                "downloading over HTTP instead"
            )
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.partial)
            return False
        self.progress.add(self.entry.name, self.remote.size, self.remote.size, self.remote.size)
        return True

    def over_http(self, out: HashingFile) -> None:
        """huggingface_hub's HTTP download from `out.have` on, retried across calls."""
        from huggingface_hub.errors import HfHubHTTPError
        from huggingface_hub.file_download import http_get

        for attempt in range(1, self.retries + 2):
            wait = None
            try:
                http_get(
                    self.remote.url,
                    out,  # type: ignore[arg-type]
                    resume_size=out.have,
                    headers=auth_headers(self.remote.url),
                    expected_size=self.remote.size,
                    displayed_filename=self.entry.name,
                )
                if out.have == self.remote.size:
                    return
                problem = f"the transfer ended at {out.have} of {self.remote.size} bytes"
            except FetchError:
                raise
            except HfHubHTTPError as exc:
                status = exc.response.status_code if exc.response is not None else None
                if status not in RETRYABLE_STATUS:
                    raise FetchError(f"{self.entry.page}: HTTP {status}: {exc}") from None
                problem, wait = f"HTTP {status}", retry_after(exc.response)
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    raise FetchError(
                        f"disk full while writing {self.partial}: free space and run again; "
                        f"the {human(out.have)} already fetched are kept and resumed"
                    ) from None
                problem = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # the client library's network errors (requests or httpx)
                problem = f"{type(exc).__name__}: {exc}"
            if out.have > self.remote.size:
                out.truncate(0)  # more bytes than the Hub announced: nothing to resume from
            if attempt > self.retries:
                kept = f"; {human(out.have)} kept in {self.partial}, resumed next time"
                raise FetchError(
                    f"{self.entry.page}: gave up after {attempt} attempts ({problem})"
                    + (kept if out.have else "")
                )
            pause = backoff(attempt, wait)
            said = "as the server asked" if wait is not None else "backing off"
            say(
                f"{self.entry.name}: {problem} at {human(out.have)}; retry {attempt}/"
                f"{self.retries} in {pause:.1f} s ({said})"
            )
            self.progress.wait(self.entry.name, pause)
            time.sleep(pause)
            self.progress.wait(self.entry.name, None)

    def run(self) -> tuple[int, str]:
        """The file complete in its partial; returns its (size, sha256)."""
        if self.by_xet():
            digest = hashlib.sha256()
            with self.partial.open("rb") as done:
                while chunk := done.read(CHUNK):
                    digest.update(chunk)
            return self.partial.stat().st_size, digest.hexdigest()
        out = HashingFile(self.partial, self.entry.name, self.remote.size, self.progress)
        try:
            if out.have:
                say(f"{self.entry.name}: resuming at {human(out.have)}")
            self.over_http(out)
        finally:
            out.close()
        return out.have, out.digest.hexdigest()

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
    final = inside(dest, entry.relative)
    partial = final.with_name(f".{final.name}.partial")
    with source.open("rb") as src, os.fdopen(open_new(partial), "wb") as out:
        while chunk := src.read(CHUNK):
            out.write(chunk)
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
            f"disk full: {human(needed)} still to fetch into {folder} plus "
            f"{human(FREE_SPACE_MARGIN)} of headroom, but only {human(free)} free; free space, "
            "or mount a larger volume there"
        )


def describe_all(
    entries: list[Entry], jobs: int, retries: int, timeout: float = HEAD_TIMEOUT
) -> dict[Entry, Remote]:
    """Ask the Hub about every file; fail naming every missing or forbidden one."""
    problems: list[str] = []
    remotes: dict[Entry, Remote] = {}

    def ask(entry: Entry) -> None:
        try:
            remotes[entry] = describe_remote(entry, retries, min(timeout, HEAD_TIMEOUT))
        except FetchError as exc:
            problems.append(str(exc))

    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(ask, entries))
    if problems and len(problems) == len(entries) and all(UNANSWERED in p for p in problems):
        raise FetchError(
            f"the Hub at {endpoint()} gave no answer about any of the {len(entries)} files "
            f"(the last: {problems[-1].rsplit(': ', 1)[-1]}); check the network and HF_ENDPOINT"
        )
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
    from huggingface_hub import constants

    # Read by the library at each call: seconds without data before it retries itself, and
    # the piece it hands over at a time (what a reset can lose before it reaches the disk).
    constants.HF_HUB_DOWNLOAD_TIMEOUT = max(1, round(timeout))
    constants.DOWNLOAD_CHUNK_SIZE = CHUNK
    if (
        os.cpu_count() or 1
    ) >= XET_HIGH_PERFORMANCE_CORES and "HF_XET_HIGH_PERFORMANCE" not in os.environ:
        # hf_xet's mode that uses every core and more memory: a build machine or GPU host has both.
        os.environ["HF_XET_HIGH_PERFORMANCE"] = "1"
        constants.HF_XET_HIGH_PERFORMANCE = True
    pending = [entry for entry in entries if not verified(dest, entry)]
    for entry in entries:
        if entry not in pending:
            say(f"{entry.target}: present and verified, skipped")
    if not pending:
        say(f"all {len(entries)} files present")
        return
    folder = cache or dest
    remotes = describe_all(pending, jobs, retries, timeout)
    errors: list[str] = []
    for entry in [entry for entry in pending if expected_sha256(entry, remotes[entry]) is None]:
        # Nothing to check its bytes against: a file (a pickle, maybe) is not placed unchecked.
        errors.append(
            f"{entry.target}: no sha256 is known for it (the catalog records none and "
            f"{entry.server} states none), so it was not fetched: record its published "
            "checksum in a catalog (STEADYDANCER_CATALOG), or `lock-models` it on a machine "
            "that reaches the host"
        )
        pending.remove(entry)
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
    hub_repos = sorted({entry.repo for entry in entries if not entry.url})
    gating = {repo: gated(repo) for repo in hub_repos}
    gating.update({entry.repo: "n/a" for entry in entries if entry.url})
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
