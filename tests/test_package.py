"""A plain `pip install .` gives a working smoke client: its dependencies and workflows ship."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.dagger_offline import REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(out),
            str(REPO),
        ],
        check=True,
        timeout=300,
    )
    (built,) = out.glob("steady_dancer-*.whl")
    return built


def test_the_wheel_declares_what_the_smoke_client_imports(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [name for name in archive.namelist() if name.endswith(".dist-info/METADATA")]
        message = Parser().parsestr(archive.read(metadata).decode())
    required = {
        Requirement(line).name.lower()
        for line in message.get_all("Requires-Dist") or []
        if "extra ==" not in line
    }
    assert {"httpx", "av", "pillow"} <= required


def test_the_installed_smoke_client_finds_its_workflows(wheel: Path, tmp_path: Path) -> None:
    """Unpacked away from the source tree, the package lists and loads every workflow."""
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(tmp_path)
    shipped = sorted(path.name for path in (REPO / "workflows").iterdir())
    assert sorted(path.name for path in (tmp_path / "steadydancer" / "workflows").iterdir()) == (
        shipped
    )
    probe = (
        "from steadydancer import workflows; "
        "print(workflows.WORKFLOWS_DIR); "
        "print(','.join(workflows.names())); "
        "workflows.load('steadydancer-dance')"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    directory, names = result.stdout.split()
    assert Path(directory) == tmp_path / "steadydancer" / "workflows"
    assert names == "cpu-smoke,steadydancer-dance,steadydancer-official,steadydancer-pose"
    help_text = subprocess.run(
        [sys.executable, "-m", "steadydancer.smoke", "--help"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin", "COLUMNS": "300"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert (
        "one of cpu-smoke, steadydancer-dance, steadydancer-official, steadydancer-pose"
        in help_text
    )
