"""The module's own lock (uv.lock): what the engine's Python runtime installs the module from.

With a uv.lock beside pyproject.toml, Dagger's Python runtime runs `uv lock` and then
`uv sync --no-dev` with its own uv (pins.ENGINE_UV_VERSION), against the SDK it vendors into
sdk/; without one it resolves the module's dependencies afresh with `uv pip install -e` each
time the module's source changes. uv.lock is resolved as of the cutoff in pyproject.toml's
[tool.uv] exclude-newer, which the engine's `uv lock` reads as well, so every resolution asks
PyPI the same question whatever has been published since; `environments` limits it to the
Python the module runs on (.python-version).

`--check` asks no index: the engine's uv confirms offline (`uv lock --locked --offline`) that
uv.lock answers pyproject.toml as it is, and the lock's cutoff, declared dependencies and hashes
are read against the repository. `--drift` resolves afresh at the cutoff and at now and reports
what would move, without failing (an index shows files late, so a resolution at a fixed cutoff
still changes where the lock is read).

Locking needs sdk/ as the engine vendors it. `dagger develop` writes it; without an engine it is
made here from the dagger-io release's sdist (same pyproject and sources as the engine's copy,
which is versioned 0.0.0) and the SDK workspace's `codegen` member, which the lock records by
path only. uv has no command that fetches one sdist by hash, hence the few lines below that do.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from pathlib import Path

import httpx
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ci import pins

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "uv.lock"
PYPROJECT = REPO / "pyproject.toml"
NAME = "steady-dancer"
SIMPLE_INDEX = "https://pypi.org/simple"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "steadydancer-module-lock"
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


def _project(work: Path, sdk: Path | None) -> Path:
    """A copy of the module's project in `work`, with sdk/ as the engine vendors it."""
    shutil.copy2(PYPROJECT, work / "pyproject.toml")
    if LOCK.exists():
        shutil.copy2(LOCK, work / "uv.lock")
    if sdk is None:
        vendored_sdk(sdist(), work / "sdk")
    else:
        shutil.copytree(sdk, work / "sdk")
    return work


def resolve(sdk: Path | None = None, exclude_newer: str | None = None, keep: bool = False) -> str:
    """A uv.lock for pyproject.toml, made as the engine's runtime makes it.

    `keep` starts from the committed uv.lock, so uv moves only what pyproject's change needs
    (as the engine's `uv lock` does); otherwise the resolution is fresh, as the drift report
    wants. `exclude_newer` replaces pyproject's cutoff (the drift report's "at now").
    """
    uv = engine_uv()
    with tempfile.TemporaryDirectory() as work:
        project = _project(Path(work), sdk)
        if not keep:
            (project / "uv.lock").unlink(missing_ok=True)
        moved = ["--exclude-newer", exclude_newer] if exclude_newer else []
        result = subprocess.run(
            [uv, "lock", "--quiet", "--directory", str(project), *moved],
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        if result.returncode != 0:
            raise ModuleLockError(f"uv {pins.ENGINE_UV_VERSION} lock failed:\n{result.stderr}")
        return (project / "uv.lock").read_text()


def declared_differences(lock_text: str) -> list[str]:
    """Dependencies pyproject.toml declares that uv.lock does not hold, and the reverse."""
    config = tomllib.loads(PYPROJECT.read_text())["project"]
    declared = {(str(canonicalize_name(Requirement(r).name)), "") for r in config["dependencies"]}
    declared |= {
        (str(canonicalize_name(Requirement(r).name)), f"extra == '{extra}'")
        for extra, requirements in config.get("optional-dependencies", {}).items()
        for r in requirements
    }
    root = [p for p in tomllib.loads(lock_text).get("package", []) if p["name"] == NAME]
    metadata = root[0].get("metadata", {}) if root else {}
    locked = {
        (str(canonicalize_name(r["name"])), r.get("marker", ""))
        for r in metadata.get("requires-dist", [])
    }

    def named(pair: tuple[str, str]) -> str:
        return pair[0] + (f" ({pair[1]})" if pair[1] else "")

    return [
        *(
            f"{named(p)} is declared in pyproject.toml but not in uv.lock"
            for p in sorted(declared - locked)
        ),
        *(f"{named(p)} is in uv.lock but no longer declared" for p in sorted(locked - declared)),
    ]


def unhashed(lock_text: str) -> list[str]:
    """Registry packages whose files the lock records without a hash."""
    found = []
    for package in tomllib.loads(lock_text).get("package", []):
        if "registry" not in package.get("source", {}):
            continue
        files = [package.get("sdist"), *package.get("wheels", [])]
        if any(not f or "hash" not in f for f in files if f is not None) or not any(files):
            found.append(str(package["name"]))
    return found


def engine_environment() -> dict[str, str]:
    """This environment less the index settings a user's uv may carry: the engine's runtime
    locks against its default index, which uv.lock records."""
    indexes = {"UV_DEFAULT_INDEX", "UV_INDEX", "UV_INDEX_URL", "UV_EXTRA_INDEX_URL"}
    return {key: value for key, value in os.environ.items() if key not in indexes}


def problems(sdk: Path | None = None) -> list[str]:
    """Why uv.lock does not serve pyproject.toml as it is now; empty when it does. No index."""
    if not LOCK.exists():
        return [f"{LOCK.name} is missing"]
    text = LOCK.read_text()
    found = []
    recorded = tomllib.loads(text).get("options", {}).get("exclude-newer")
    if recorded != cutoff():
        found.append(f"uv.lock was resolved at {recorded}; pyproject.toml gives {cutoff()}")
    found += declared_differences(text)
    found += [f"{name} is locked without hashes" for name in unhashed(text)]
    uv = engine_uv()
    with tempfile.TemporaryDirectory() as work:
        project = _project(Path(work), sdk)
        result = subprocess.run(
            [uv, "lock", "--locked", "--offline", "--directory", str(project)],
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
            env=engine_environment(),
        )
    if result.returncode != 0:
        why = [line.strip() for line in result.stderr.splitlines() if line.strip()]
        # uv heads its error with a multiplication sign.
        told = [line for line in why if line.startswith(("\u00d7", "error"))] or why[-1:]
        found.append(
            f"uv {pins.ENGINE_UV_VERSION} would rewrite uv.lock (`uv lock --locked --offline`): "
            + (told[0] if told else f"exit {result.returncode}")
        )
    return found


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


def drift(sdk: Path | None, strict: bool) -> int:
    """Print what `uv lock` at the cutoff, and at now, would change; 0 unless `strict` and moved."""
    current = LOCK.read_text() if LOCK.exists() else ""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    moved = False
    for label, when in (("at the cutoff", cutoff()), ("at now", now)):
        try:
            fresh = resolve(sdk, None if label == "at the cutoff" else when)
        except (ModuleLockError, httpx.HTTPError) as exc:
            print(
                f"error: cannot resolve the module's lock {label} ({when}): {exc}", file=sys.stderr
            )
            return 2
        lines = [line for line in changes(current, fresh) if "->" in line]
        moved = moved or bool(lines)
        print(f"{label} ({when}): " + (f"{len(lines)} move" if lines else "no version moves"))
        print(*(f"  {line}" for line in lines), sep="\n", end="\n" if lines else "")
    if moved:
        print(
            "to take these: move [tool.uv] exclude-newer in pyproject.toml, then "
            "`python -m ci.module_lock`, and commit both"
        )
    return 1 if strict and moved else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Check or resolve the module's own uv.lock as the engine's Python runtime "
        f"would (uv {pins.ENGINE_UV_VERSION}), at the cutoff in pyproject.toml's [tool.uv] "
        "exclude-newer. To move the cutoff, edit that line and run this again.",
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument(
        "--check",
        action="store_true",
        help="offline: fail, naming each cause, unless uv.lock answers pyproject.toml as it is "
        "(uv lock --locked --offline), at its cutoff, with every file hashed",
    )
    action.add_argument(
        "--drift",
        action="store_true",
        help="report what a fresh resolution at the cutoff, and at now, would change; "
        "exits 0 whatever moved (see --strict)",
    )
    parser.add_argument(
        "--strict", action="store_true", help="with --drift: exit 1 when a version would move"
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
    if args.strict and not args.drift:
        parser.error("--strict is for --drift")
    try:
        when = cutoff()
        if args.check:
            found = problems(args.sdk)
            if not found:
                print(
                    f"{LOCK.name} answers pyproject.toml (uv {pins.ENGINE_UV_VERSION}, "
                    f"exclude-newer {when})"
                )
                return 0
            print(
                f"{LOCK.name} does not answer pyproject.toml as it is:",
                *found,
                sep="\n  ",
                file=sys.stderr,
            )
            print("run `python -m ci.module_lock` and commit uv.lock", file=sys.stderr)
            return 1
        if args.drift:
            return drift(args.sdk, args.strict)
        fresh = resolve(args.sdk, keep=True)
    except (ModuleLockError, httpx.HTTPError) as exc:
        print(f"error: cannot resolve the module's lock: {exc}", file=sys.stderr)
        return 1
    current = LOCK.read_text() if LOCK.exists() else ""
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
