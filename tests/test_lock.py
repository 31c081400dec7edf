"""The lock is reproducible: resolved at a recorded cutoff, checked at that same cutoff."""

from __future__ import annotations

import datetime
import subprocess
import sys

import pytest

from ci import lock as locks
from ci import pins
from tests.dagger_offline import REPO

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


def run_lock(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ci.lock", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def test_exclude_newer_without_upgrade_is_refused() -> None:
    result = run_lock("--exclude-newer", "2026-01-01")
    assert result.returncode == 2
    assert "--exclude-newer moves the cutoff: use it with --upgrade" in result.stderr


@pytest.mark.network
def test_the_committed_lock_is_reproduced_byte_for_byte_at_its_cutoff() -> None:
    """Resolves the cu124 lock for real against PyPI at the lock's recorded cutoff.

    Its answer does not change when PyPI publishes: releases after the cutoff take no part
    (the next test shows one such release being left out).
    """
    result = run_lock("--check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"--exclude-newer {committed().cutoff}" in result.stdout


@pytest.mark.network
def test_releases_after_the_cutoff_take_no_part() -> None:
    """platformdirs 4.14.9 was uploaded to PyPI at 2026-11-27T20:53:43Z; a cutoff an hour
    earlier resolves 4.14.8, as a lock made that day would have, and a later one 4.14.9."""
    uv = locks.find_uv()
    assert uv is not None
    before = locks.Lock.parse("cu124", locks.resolve_locally(PROFILE, uv, "2026-11-27T19:53:00Z"))
    after = locks.Lock.parse("cu124", locks.resolve_locally(PROFILE, uv, "2026-11-27T21:53:00Z"))
    assert before.versions["platformdirs"] == "4.14.8"
    assert after.versions["platformdirs"] == "4.14.9"
    assert before.cutoff == "2026-11-27T19:53:00Z"
