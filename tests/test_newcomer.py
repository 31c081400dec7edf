"""What a newcomer runs first, run as they would: every entry point refuses what it does not
know, the documented benchmarks run, and nothing lands in the working directory uninvited."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.dagger_offline import REPO

ENV = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{REPO}:{REPO / 'docker'}"}
STAND_INS = {"tests.pod.comfyui_main"}
"""ComfyUI's main.py as the container tests replay it: ComfyUI's own ignores unknown options."""


def entry_points() -> list[str]:
    found = []
    for top in ("ci", "bench", "docker/steadydancer", "tests"):
        for path in sorted((REPO / top).rglob("*.py")):
            if re.search(r'^if __name__ == "__main__":', path.read_text(), re.M):
                module = path.relative_to(REPO).with_suffix("").as_posix()
                found.append(module.removeprefix("docker/").replace("/", "."))
    return [name for name in found if name not in STAND_INS]


def run(*argv: str, cwd: Path = REPO, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv], cwd=cwd, env=ENV, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("module", entry_points())
def test_an_unknown_option_is_refused(module: str, tmp_path: Path) -> None:
    result = run("-m", module, "--bogus-option", cwd=tmp_path)
    assert result.returncode != 0, result.stdout[-500:]
    said = result.stderr + result.stdout
    assert "--bogus-option" in said or "required" in said or "usage:" in said, said[-500:]
    assert "Traceback" not in said
    assert list(tmp_path.iterdir()) == []


def test_the_entry_points_are_found() -> None:
    assert {"ci.plan", "ci.pins", "ci.docs", "steadydancer.smoke", "bench.entrypoint"} <= set(
        entry_points()
    )


def test_the_entrypoint_bench_runs_as_documented() -> None:
    """`python -m bench.entrypoint`: the catalog's file from another site and its unsized file
    are laid out too, and the boot finds every file present."""
    result = run("-m", "bench.entrypoint", "--runs", "1", "--gb", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "1 boots:" in result.stdout and "models: done in" in result.stdout


def test_the_fetch_bench_runs_as_documented_without_leaving_the_machine() -> None:
    """`python -m bench.fetch_models`, scaled small: every file it fetches comes from the
    local Hub server; the one the catalog fetches from another site is left out, named."""
    result = run("-m", "bench.fetch_models", "--scale", "0.0005", "--rate-mb", "500")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "left out, not on the Hub: yolox_l_8x8_300e_coco" in result.stdout
    assert "four at a time" in result.stdout and "TCP reset at 60 %" in result.stdout


def test_the_smoke_client_writes_nothing_where_it_is_run(tmp_path: Path) -> None:
    cwd = tmp_path / "checkout"
    cwd.mkdir()
    checked = run("-m", "steadydancer.smoke", "--check-only", "--workflow", "cpu-smoke", cwd=cwd)
    assert checked.returncode == 0, checked.stderr
    failed = run(
        "-m", "steadydancer.smoke", "--url", "http://127.0.0.1:9", "--workflow", "cpu-smoke",
        "--ready-timeout", "1", cwd=cwd,
    )  # fmt: skip
    assert failed.returncode == 1
    assert list(cwd.iterdir()) == []
    report = Path(failed.stderr.rsplit("; ", 1)[1].removesuffix(" written\n"))
    assert report.name == "report.json" and report.is_file()
    assert not report.is_relative_to(cwd)
    report.unlink()
    os.rmdir(report.parent)
