"""The module's own uv.lock: what the engine's Python runtime syncs, reproducible at its cutoff."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ci import module_lock, pins
from tests.dagger_offline import REPO

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


@pytest.mark.network
def test_the_committed_module_lock_is_reproduced_byte_for_byte() -> None:
    """Resolves against PyPI with the engine's uv and an SDK made from dagger-io's release sdist."""
    result = subprocess.run(
        [sys.executable, "-m", "ci.module_lock", "--check"],
        cwd=REPO, capture_output=True, text=True, check=False, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"uv {pins.ENGINE_UV_VERSION}" in result.stdout


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
    assert "tomli-w (none) -> 1.0.0" in capsys.readouterr().err
    assert (tmp_path / "uv.lock").read_text() == (REPO / "uv.lock").read_text()
