"""The lock: checked offline against what the repository holds; an index's changes are drift."""

from __future__ import annotations

import datetime
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ci import lock as locks
from ci import pins
from tests.dagger_offline import REPO
from tests.local_http import serve
from tests.local_index import PackageIndex

PROFILE = pins.PROFILES["cu124"]


def committed() -> locks.Lock:
    lock = locks.load("cu124")
    assert lock is not None
    return lock


def test_the_committed_lock_records_its_cutoff_and_uv() -> None:
    lock = committed()
    assert lock.uv_version == pins.UV_VERSION
    assert lock.cutoff is not None
    assert locks.parse_cutoff(lock.cutoff) == lock.cutoff
    assert locks.recorded_cutoff(PROFILE) == lock.cutoff
    # A profile without a lock of its own resolves at the default profile's cutoff.
    assert locks.recorded_cutoff(pins.PROFILES["cu121"]) == lock.cutoff


def test_the_cutoff_reaches_uv() -> None:
    command = locks.compile_command(PROFILE, "python", "out.txt", "2026-12-01T00:00:00Z")
    assert command[command.index("--exclude-newer") + 1] == "2026-12-01T00:00:00Z"


def test_header_and_parse_round_trip() -> None:
    text = (
        locks.header(PROFILE, "2026-11-30T12:00:00Z", "ab" * 32)
        + committed().text.split("# flash-attn wheel sha256:\n", 1)[1]
    )
    again = locks.Lock.parse("cu124", text)
    assert (again.cutoff, again.uv_version, again.flash_attn_sha256) == (
        "2026-11-30T12:00:00Z",
        pins.UV_VERSION,
        "ab" * 32,
    )
    assert again.versions == committed().versions


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2026-12-01", "2026-12-01T00:00:00Z"),
        ("2026-12-01T13:14:15Z", "2026-12-01T13:14:15Z"),
        ("2026-12-01T14:14:15+01:00", "2026-12-01T13:14:15Z"),
    ],
)
def test_cutoffs_are_normalised_to_utc(given: str, expected: str) -> None:
    assert locks.parse_cutoff(given) == expected


def test_a_bad_cutoff_is_named() -> None:
    with pytest.raises(locks.LockError, match=r"'yesterday' is not a cutoff: give a date"):
        locks.parse_cutoff("yesterday")


def test_now_cutoff_is_utc_to_the_second() -> None:
    moment = datetime.datetime(2026, 12, 1, 9, 8, 7, 654321, tzinfo=datetime.UTC)
    assert locks.now_cutoff(moment) == "2026-12-01T09:08:07Z"


def test_changes_name_every_moved_package() -> None:
    old = committed()
    text = (
        old.text.replace("imageio==", "imageio==0.0.1\n#", 1).replace(
            "addict==2.4.0", "addict==2.4.0\n    --hash=sha256:" + "0" * 64, 1
        )
        + "newpackage==1.0 \\\n    --hash=sha256:"
        + "1" * 64
        + "\n"
    )
    new = locks.Lock.parse("cu124", text)
    moved = locks.changes(old, new)
    assert f"imageio {old.versions['imageio']} -> 0.0.1" in moved
    assert "addict 2.4.0: other files (hashes changed)" in moved
    assert "newpackage (absent) -> 1.0" in moved
    assert locks.changes(old, old) == []


def run_lock(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ci.lock", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        env=env,
    )


def test_exclude_newer_without_upgrade_is_refused() -> None:
    result = run_lock("--exclude-newer", "2026-01-01")
    assert result.returncode == 2
    assert "--exclude-newer moves the cutoff: use it with --upgrade" in result.stderr


def test_the_committed_lock_serves_the_repository_offline() -> None:
    """The gate: pins, requirements copies, uv version, cutoff and hashes, read without an index.

    uv is pointed at a closed port for the run: had the check asked an index, it would fail.
    """
    result = run_lock("--check", env=confined("http://127.0.0.1:9/simple"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"--exclude-newer {committed().cutoff}" in result.stdout
    assert f"{len(committed().versions)} packages hashed" in result.stdout
    assert locks.problems(PROFILE) == []


def test_the_header_records_a_digest_of_every_input() -> None:
    digest = locks.inputs_digest(PROFILE)
    assert f"{locks.INPUTS_DIGEST}{digest}" in committed().header.splitlines()
    copies = {pin.name: locks.requirements_file(pin).read_text() for pin in locks.sources()}
    assert locks.inputs_digest(PROFILE, copies) == digest
    copies["ComfyUI"] += "einops\n"
    assert locks.inputs_digest(PROFILE, copies) != digest


def test_a_moved_pin_is_named_without_resolving(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pin edited without relocking: the digest no longer matches and the pin is unmet."""
    original = locks.root_requirements

    def with_new_pin(profile: pins.Profile) -> list[str]:
        return [*original(profile), "numpy==9.9.9"]

    monkeypatch.setattr(locks, "root_requirements", with_new_pin)
    found = locks.problems(PROFILE)
    assert any(line.startswith(f"the header has '{locks.INPUTS_DIGEST}") for line in found)
    assert any("numpy 1.26.4, but numpy==9.9.9 is required" in line for line in found), found


def test_an_unhashed_entry_or_another_uv_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = committed().text
    text = text.replace(f"uv {pins.UV_VERSION} with", "uv 0.0.1 with", 1)
    text = re.sub(r"(addict==2\.4\.0) \\\n(    --hash=sha256:\w+( \\)?\n)+", r"\1\n", text, count=1)
    (tmp_path / "cu124.txt").write_text(text)
    monkeypatch.setattr(locks, "LOCKS_DIR", tmp_path)
    found = locks.problems(PROFILE)
    assert "addict is pinned without hashes" in found
    assert any(
        "uv 0.0.1 with" in line and f"uv {pins.UV_VERSION} with" in line for line in found
    ), found
    result = locks.main(["--check"])
    assert result == 1


def stub_index(lock: locks.Lock, uploaded: str) -> PackageIndex:
    """Every locked package at its locked version, requiring what the lock says required it."""
    index = PackageIndex()
    requires: dict[str, list[str]] = {}
    for package, dependents in lock.via.items():
        for dependent in dependents:
            if not dependent.startswith("-"):
                requires.setdefault(locks.canonical(dependent), []).append(package)
    for name, version in lock.versions.items():
        index.add(name, version, uploaded, sorted(requires.get(name, [])))
    index.add("pip", "24.0", uploaded)  # uv venv --seed takes pip from the index
    return index


def confined(index_url: str) -> dict[str, str]:
    """uv asks `index_url` only; any other host goes to a closed proxy port and fails."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UV_") and "PROXY" not in k}
    closed = "http://127.0.0.1:9"
    return {
        **env,
        "UV_DEFAULT_INDEX": index_url,
        "UV_NO_CACHE": "1",
        "UV_PYTHON_DOWNLOADS": "never",
        "HTTP_PROXY": closed,
        "HTTPS_PROXY": closed,
        "ALL_PROXY": closed,
        "NO_PROXY": "127.0.0.1,localhost",
    }


def test_an_index_that_changes_under_the_lock_is_drift_not_a_red_gate() -> None:
    """A local index serving the lock's own graph, then a newer httpx whose upload time is
    backdated before the lock's cutoff (as a mirror filling in late shows it): the gate stays
    green, the drift report names httpx at the cutoff, and only --strict makes that a failure.
    A release after the cutoff shows only in the report's "at now" part.
    """
    lock = committed()
    index = stub_index(lock, "2026-11-01T00:00:00Z")
    with serve(index.routes) as base:
        env = confined(f"{base}/simple")
        before = run_lock("--drift", env=env)
        assert before.returncode == 0, before.stderr
        assert f"at the cutoff ({lock.cutoff}): no version moves" in before.stdout
        index.add("httpx", "0.99.0", "2026-11-26T00:00:00Z", lock_requires(lock, "httpx"))
        index.add("httpx", "1.0.0", "2026-12-01T06:00:00Z", lock_requires(lock, "httpx"))
        after = run_lock("--drift", "--strict", env=env)
        gate = run_lock("--check", env=env)
    assert after.returncode == 1, after.stderr
    moved = f"httpx {lock.versions['httpx']} -> 0.99.0"
    assert f"at the cutoff ({lock.cutoff}): 1 move\n  {moved}\n" in after.stdout
    # Published after the cutoff: no part of the lock's resolution, but an upgrade would take it.
    assert re.search(r"at now \(\S+\): 1 move\n  httpx \S+ -> 1\.0\.0\n", after.stdout)
    assert "--upgrade" in after.stdout
    assert gate.returncode == 0, gate.stderr
    assert any(path.startswith("/files/httpx-0.99.0") for _, path in index.routes.requests)


def lock_requires(lock: locks.Lock, name: str) -> list[str]:
    return sorted(p for p, dependents in lock.via.items() if name in dependents)


def test_drift_that_cannot_resolve_says_so_and_exits_2() -> None:
    result = run_lock("--drift", env=confined("http://127.0.0.1:9/simple"))
    assert result.returncode == 2
    assert "error: cannot resolve the cu124 lock at the cutoff" in result.stderr
