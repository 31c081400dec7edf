"""The module's own lock (uv.lock): what the engine's Python runtime installs the module from.

With a uv.lock beside pyproject.toml, Dagger's Python runtime runs `uv lock` and then
`uv sync --no-dev` with its own uv (pins.ENGINE_UV_VERSION), against the SDK it vendors into
sdk/; without one it resolves the module's dependencies afresh with `uv pip install -e` each
time the module's source changes. uv.lock is resolved as of the cutoff in pyproject.toml's
[tool.uv] exclude-newer, which the engine's `uv lock` reads as well, so every resolution asks
PyPI the same question whatever has been published since; `environments` limits it to the
Python the module runs on (.python-version).

Locking needs sdk/ as the engine vendors it. `dagger develop` writes it; without an engine it is
made here from the dagger-io release's sdist (same pyproject and sources as the engine's copy,
which is versioned 0.0.0) and the SDK workspace's `codegen` member, which the lock records by
path only. uv has no command that fetches one sdist by hash, hence the few lines below that do.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from pathlib import Path

import httpx

from ci import pins

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "uv.lock"
PYPROJECT = REPO / "pyproject.toml"
SIMPLE_INDEX = "https://pypi.org/simple"
CACHE = Path.home() / ".cache" / "steadydancer-module-lock"
SDK_FILES = ("pyproject.toml", "README.md", "LICENSE", "src")
"""What the engine vendors into sdk/ from the SDK's tree (its runtime's sdkSourceDir filter)."""


class ModuleLockError(Exception):
    """The module's lock cannot be made or checked: named cause, no traceback."""


def cutoff() -> str:
    """The cutoff pyproject.toml gives uv (and so the engine's `uv lock`)."""
    config = tomllib.loads(PYPROJECT.read_text())
    try:
        return str(config["tool"]["uv"]["exclude-newer"])
    except KeyError as exc:
        raise ModuleLockError(
            "pyproject.toml has no [tool.uv] exclude-newer: the module's lock would move "
            "whenever PyPI publishes"
        ) from exc


def engine_uv() -> str:
    """The engine's uv, installed once from PyPI into the cache."""
    target = CACHE / f"uv-{pins.ENGINE_UV_VERSION}"
    binary = target / "bin" / "uv"
    if not binary.exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
             "--target", str(target), f"uv=={pins.ENGINE_UV_VERSION}"],
            check=True,
            timeout=600,
        )  # fmt: skip
    return str(binary)


def sdist() -> Path:
    """dagger-io's release sdist, checked against its pinned sha256."""
    name = f"dagger_io-{pins.DAGGER_IO_VERSION}.tar.gz"
    path = CACHE / name
    if path.exists() and _sha256(path) == pins.DAGGER_IO_SDIST_SHA256:
        return path
    page = httpx.get(f"{SIMPLE_INDEX}/dagger-io/", timeout=60, follow_redirects=True)
    page.raise_for_status()
    found = re.search(rf'href="([^"#]*/{re.escape(name)})(#[^"]*)?"', page.text)
    if found is None:
        raise ModuleLockError(f"{SIMPLE_INDEX}/dagger-io/ lists no {name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    with httpx.stream("GET", found.group(1), timeout=60, follow_redirects=True) as response:
        response.raise_for_status()
        with partial.open("wb") as out:
            for chunk in response.iter_bytes():
                out.write(chunk)
    digest = _sha256(partial)
    if digest != pins.DAGGER_IO_SDIST_SHA256:
        partial.unlink()
        raise ModuleLockError(
            f"{name} from PyPI has sha256 {digest}, not the pinned {pins.DAGGER_IO_SDIST_SHA256}"
        )
    partial.replace(path)
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def vendored_sdk(archive: Path, dest: Path) -> None:
    """sdk/ as the engine vendors it, from the release sdist."""
    with tempfile.TemporaryDirectory() as unpacked, tarfile.open(archive) as tar:
        tar.extractall(unpacked, filter="data")
        (root,) = Path(unpacked).iterdir()
        dest.mkdir(parents=True)
        for name in SDK_FILES:
            source = root / name
            if source.is_dir():
                shutil.copytree(source, dest / name)
            else:
                shutil.copy2(source, dest / name)
    pyproject = dest / "pyproject.toml"
    text, count = re.subn(
        rf'^version = "{re.escape(pins.DAGGER_IO_VERSION)}"$',
        'version = "0.0.0"',
        pyproject.read_text(),
        count=1,
        flags=re.MULTILINE,
    )
    if count != 1:
        raise ModuleLockError(f"dagger-io's sdist has no version {pins.DAGGER_IO_VERSION} line")
    pyproject.write_text(text)
    members = tomllib.loads(text)["tool"]["uv"]["workspace"]["members"]
    for member in members:
        (dest / member).mkdir(parents=True)
        (dest / member / "pyproject.toml").write_text(
            f'[project]\nname = "{member}"\nversion = "0.0.0"\n'
        )


def resolve(sdk: Path | None = None) -> str:
    """A fresh uv.lock for pyproject.toml, made as the engine's runtime makes it."""
    uv = engine_uv()
    with tempfile.TemporaryDirectory() as work:
        project = Path(work)
        shutil.copy2(PYPROJECT, project / "pyproject.toml")
        if sdk is None:
            vendored_sdk(sdist(), project / "sdk")
        else:
            shutil.copytree(sdk, project / "sdk")
        result = subprocess.run(
            [uv, "lock", "--quiet", "--directory", str(project)],
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        if result.returncode != 0:
            raise ModuleLockError(f"uv {pins.ENGINE_UV_VERSION} lock failed:\n{result.stderr}")
        return (project / "uv.lock").read_text()


def versions(text: str) -> dict[str, str]:
    return {
        package["name"]: str(package.get("version", ""))
        for package in tomllib.loads(text).get("package", [])
    }


def changes(old: str, new: str) -> list[str]:
    before, after = versions(old), versions(new)
    lines = []
    for name in sorted(before.keys() | after.keys()):
        if before.get(name) != after.get(name):
            lines.append(f"{name} {before.get(name, '(none)')} -> {after.get(name, '(none)')}")
    return lines or ["(same versions; hashes, markers or metadata differ)"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Resolve the module's own uv.lock as the engine's Python runtime would "
        f"(uv {pins.ENGINE_UV_VERSION}), at the cutoff in pyproject.toml's [tool.uv] "
        "exclude-newer. To move the cutoff, edit that line and run this again.",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="resolve afresh and fail unless uv.lock is reproduced byte for byte",
    )
    parser.add_argument(
        "--sdk",
        type=Path,
        metavar="DIR",
        help="the sdk/ that `dagger develop` vendored (default: made from dagger-io "
        f"{pins.DAGGER_IO_VERSION}'s sdist on PyPI)",
    )
    args = parser.parse_args(argv)
    if args.sdk is not None and not (args.sdk / "pyproject.toml").is_file():
        parser.error(f"--sdk {args.sdk}: no pyproject.toml there (run `dagger develop` first)")
    try:
        when = cutoff()
        fresh = resolve(args.sdk)
    except (ModuleLockError, httpx.HTTPError) as exc:
        print(f"error: cannot resolve the module's lock: {exc}", file=sys.stderr)
        return 1
    current = LOCK.read_text() if LOCK.exists() else ""
    if args.check:
        if current == fresh:
            print(f"{LOCK.name} is current (uv {pins.ENGINE_UV_VERSION}, exclude-newer {when})")
            return 0
        print(f"{LOCK.name} is stale: run python -m ci.module_lock", file=sys.stderr)
        for line in changes(current, fresh):
            print(f"  {line}", file=sys.stderr)
        return 1
    LOCK.write_text(fresh)
    if not current:
        print(f"wrote {LOCK.name}: {len(versions(fresh))} packages")
    for line in changes(current, fresh) if current and current != fresh else []:
        print(line)
    if current == fresh:
        print(f"{LOCK.name} unchanged")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
