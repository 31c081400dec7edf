"""The module's own uv.lock: what the engine's Python runtime syncs, checked offline.

The tests marked network fetch the engine's uv and dagger-io's sdist (pinned by version and
sha256) once; the checks themselves run with uv confined to loopback.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ci import module_lock, pins
from tests.dagger_offline import REPO
from tests.local_http import serve
from tests.local_index import PackageIndex
from tests.test_lock import confined

LOCK = tomllib.loads((REPO / "uv.lock").read_text())
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def package(name: str) -> dict[str, object]:
    (found,) = [p for p in LOCK["package"] if p["name"] == name]
    return found


def test_the_lock_is_resolved_at_the_cutoff_pyproject_gives_the_engine() -> None:
    assert LOCK["options"]["exclude-newer"] == module_lock.cutoff()
    assert PYPROJECT["tool"]["uv"]["environments"] == ["python_version == '3.11'"]
    assert (REPO / ".python-version").read_text().strip() == "3.11"


def test_the_lock_holds_every_dependency_pyproject_declares() -> None:
    """An edited dependency list without a new lock is caught here, offline."""
    root = package("steady-dancer")
    metadata = root["metadata"]
    assert isinstance(metadata, dict)
    locked = {
        (canonicalize_name(r["name"]), r.get("marker", "")) for r in metadata["requires-dist"]
    }
    declared = {
        (canonicalize_name(Requirement(r).name), "") for r in PYPROJECT["project"]["dependencies"]
    }
    declared |= {
        (canonicalize_name(Requirement(r).name), f"extra == '{extra}'")
        for extra, requirements in PYPROJECT["project"]["optional-dependencies"].items()
        for r in requirements
    }
    assert locked == declared


def test_dagger_io_comes_from_the_sdk_the_engine_vendors() -> None:
    dagger_io = package("dagger-io")
    assert dagger_io["source"] == {
        "editable": PYPROJECT["tool"]["uv"]["sources"]["dagger-io"]["path"]
    }
    assert dagger_io["version"] == "0.0.0"
    # The vendored SDK is the engine's to write; uv.lock is the module's to ship.
    assert "/sdk/" in (REPO / ".gitignore").read_text().split()
    excluded = [e.lstrip("!") for e in json.loads((REPO / "dagger.json").read_text())["include"]]
    assert "uv.lock" not in excluded


def test_the_sdk_release_is_the_engines_version() -> None:
    engine = json.loads((REPO / "dagger.json").read_text())["engineVersion"]
    assert engine == f"v{pins.DAGGER_IO_VERSION}"
    assert (
        f"dagger-io=={pins.DAGGER_IO_VERSION}"
        in PYPROJECT["project"]["optional-dependencies"]["dev"]
    )


def run_module_lock(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # The engine's uv and dagger-io's sdist are files pinned by version and sha256, fetched
    # once into the cache before the run is confined to loopback.
    module_lock.engine_uv()
    module_lock.sdist()
    return subprocess.run(
        [sys.executable, "-m", "ci.module_lock", *args],
        cwd=REPO, capture_output=True, text=True, check=False, timeout=900, env=env,
    )  # fmt: skip


@pytest.mark.network
def test_the_committed_module_lock_answers_pyproject_offline() -> None:
    """The gate: the engine's uv confirms uv.lock without an index (it is pointed at a closed
    port), and the cutoff, declared dependencies and hashes are read from the repository."""
    result = run_module_lock("--check", env=confined("http://127.0.0.1:9/simple"))
    assert result.returncode == 0, result.stderr
    assert f"uv {pins.ENGINE_UV_VERSION}" in result.stdout
    assert module_lock.problems() == []


@pytest.mark.network
def test_a_dependency_added_without_relocking_fails_the_check_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The engine's `uv lock` would rewrite such a lock; the check says which package moved."""
    pyproject = tmp_path / "pyproject.toml"
    text = (REPO / "pyproject.toml").read_text()
    pyproject.write_text(
        text.replace('  "packaging>=24",\n', '  "packaging>=24",\n  "tomli-w==1.0.0",\n', 1)
    )
    shutil.copy2(REPO / "uv.lock", tmp_path / "uv.lock")
    monkeypatch.setattr(module_lock, "PYPROJECT", pyproject)
    monkeypatch.setattr(module_lock, "LOCK", tmp_path / "uv.lock")
    assert module_lock.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert "tomli-w is declared in pyproject.toml but not in uv.lock" in err
    assert f"uv {pins.ENGINE_UV_VERSION} would rewrite uv.lock" in err
    assert (tmp_path / "uv.lock").read_text() == (REPO / "uv.lock").read_text()


@pytest.mark.network
def test_another_cutoff_or_an_unhashed_file_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (REPO / "uv.lock").read_text()
    text = text.replace(
        f'exclude-newer = "{module_lock.cutoff()}"', 'exclude-newer = "2020-01-01T00:00:00Z"'
    )
    text = re.sub(r'(name = "agent-detector"(?:.|\n)*?), hash = "sha256:\w+"', r"\1", text, count=1)
    (tmp_path / "uv.lock").write_text(text)
    monkeypatch.setattr(module_lock, "LOCK", tmp_path / "uv.lock")
    found = module_lock.problems()
    assert (
        f"uv.lock was resolved at 2020-01-01T00:00:00Z; pyproject.toml gives {module_lock.cutoff()}"
        in found
    )
    assert "agent-detector is locked without hashes" in found


def requirement_line(dependency: dict[str, Any], extra: str | None = None) -> str:
    name = dependency["name"] + (
        f"[{','.join(dependency['extra'])}]" if "extra" in dependency else ""
    )
    markers = [f"({dependency['marker']})"] if "marker" in dependency else []
    markers += [f'extra == "{extra}"'] if extra else []
    return name + (f"; {' and '.join(markers)}" if markers else "")


def stub_index(uploaded: str) -> PackageIndex:
    """Every registry package of uv.lock at its locked version, with its locked dependencies."""
    index = PackageIndex()
    for found in LOCK["package"]:
        if "registry" not in found["source"]:
            continue
        optional = found.get("optional-dependencies", {})
        requires = [requirement_line(d) for d in found.get("dependencies", [])]
        requires += [requirement_line(d, extra) for extra, deps in optional.items() for d in deps]
        index.add(found["name"], found["version"], uploaded, requires, optional)
    return index


@pytest.mark.network
def test_an_index_that_changes_under_the_module_lock_is_drift_not_a_red_gate() -> None:
    """A local index serving uv.lock's own graph plus a newer httpx uploaded, by its index
    entry, before the cutoff: `--check` stays green and `--drift` names httpx at the cutoff."""
    index = stub_index("2026-11-01T00:00:00Z")
    httpx = package("httpx")
    requires = [requirement_line(d) for d in httpx.get("dependencies", [])]  # type: ignore[attr-defined]
    index.add("httpx", "0.99.0", "2026-11-26T00:00:00Z", requires)
    with serve(index.routes) as base:
        env = confined(f"{base}/simple")
        report = run_module_lock("--drift", env=env)
        gate = run_module_lock("--check", env=env)
    assert report.returncode == 0, report.stderr
    assert (
        f"at the cutoff ({module_lock.cutoff()}): 1 move\n  httpx {httpx['version']} -> 0.99.0\n"
        in report.stdout
    )
    assert gate.returncode == 0, gate.stderr
