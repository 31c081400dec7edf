"""The build-time programs in docker/steadydancer/, run for real as the image runs them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.dagger_offline import REPO
from tests.stand_ins import nvidia_smi

TOOLS = REPO / "docker" / "steadydancer"
DATA = Path(__file__).parent / "data"


def run_tool(
    name: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TOOLS / f"{name}.py"), *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )


# wheel_cache -----------------------------------------------------------------


def make_wheel_command(counter: Path, exit_code: int = 0) -> list[str]:
    """A build that counts its runs and writes one wheel (or fails)."""
    script = textwrap.dedent(
        f"""
        import pathlib, sys
        counter = pathlib.Path({str(counter)!r})
        counter.write_text(str(int(counter.read_text() or 0) + 1) if counter.exists() else "1")
        pathlib.Path(sys.argv[1], "demo-1.0-cp311-cp311-linux_x86_64.whl").write_bytes(b"wheel")
        sys.exit({exit_code})
        """
    )
    return ["--", sys.executable, "-c", script, "{wheel_dir}"]


def test_wheel_is_built_once_then_reused(tmp_path: Path) -> None:
    counter = tmp_path / "runs"
    args = ["--cache", str(tmp_path / "cache"), "--key", "demo-k1"]
    first = run_tool(
        "wheel_cache", *args, "--out", str(tmp_path / "out1"), *make_wheel_command(counter)
    )
    second = run_tool(
        "wheel_cache", *args, "--out", str(tmp_path / "out2"), *make_wheel_command(counter)
    )
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert counter.read_text() == "1"
    assert "reusing demo-k1" in second.stdout
    for out in ("out1", "out2"):
        assert (tmp_path / out / "demo-1.0-cp311-cp311-linux_x86_64.whl").read_bytes() == b"wheel"


def test_failed_build_leaves_nothing_cached(tmp_path: Path) -> None:
    counter = tmp_path / "runs"
    cache = tmp_path / "cache"
    args = ["--cache", str(cache), "--key", "demo-k2", "--out", str(tmp_path / "out")]
    failed = run_tool("wheel_cache", *args, *make_wheel_command(counter, exit_code=3))
    assert failed.returncode != 0
    assert "building demo-k2 failed with exit code 3" in failed.stderr
    assert list(cache.iterdir()) == []
    retried = run_tool("wheel_cache", *args, *make_wheel_command(counter))
    assert retried.returncode == 0 and counter.read_text() == "2"


def test_build_past_its_timeout_is_stopped(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    slow = ["--", sys.executable, "-c", "import time; time.sleep(30)", "{wheel_dir}"]
    result = run_tool(
        "wheel_cache",
        "--cache",
        str(cache),
        "--key",
        "slow",
        "--out",
        str(tmp_path / "out"),
        "--timeout",
        "1",
        *slow,
    )
    assert result.returncode != 0
    assert "did not finish within 1 s" in result.stderr
    assert list(cache.iterdir()) == []


def test_build_command_must_write_to_the_placeholder(tmp_path: Path) -> None:
    result = run_tool(
        "wheel_cache", "--cache", str(tmp_path), "--key", "k", "--out", str(tmp_path), "--", "true"
    )
    assert result.returncode == 2 and "{wheel_dir}" in result.stderr


# import_check ----------------------------------------------------------------


def test_import_check_names_every_failure() -> None:
    result = run_tool(
        "import_check", "json", "no_such_module_a", "email.parser", "no_such_module_b"
    )
    assert result.returncode == 1
    assert "import ok: json" in result.stdout and "import ok: email.parser" in result.stdout
    assert "2 of 4 imports failed" in result.stderr
    assert "no_such_module_a: ModuleNotFoundError" in result.stderr
    assert "no_such_module_b: ModuleNotFoundError" in result.stderr


def test_import_check_explains_mmcv_without_ops(tmp_path: Path) -> None:
    package = tmp_path / "mmcv"
    (package / "ops").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "ops" / "__init__.py").write_text("import mmcv._ext\n")
    result = run_tool(
        "import_check", "mmcv", "mmcv.ops", env={**os.environ, "PYTHONPATH": str(tmp_path)}
    )
    assert result.returncode == 1
    assert "No module named 'mmcv._ext'" in result.stderr
    assert "MMCV_WITH_OPS=1, FORCE_CUDA=1 and --no-build-isolation" in result.stderr


# gpu_check -------------------------------------------------------------------


def test_gpu_check_reads_the_real_h200_output(tmp_path: Path) -> None:
    env = nvidia_smi(tmp_path)
    result = run_tool("gpu_check", "--image-cuda", "12.4.1", "--skip-torch", env=env)
    assert result.returncode == 0, result.stderr
    assert "driver 580.159.04, supports CUDA up to 13.0" in result.stdout
    assert "gpu 0: NVIDIA H200, sm_90, 143771 MiB, flash-attn: yes" in result.stdout


def test_gpu_check_names_both_versions_when_the_driver_is_too_old(tmp_path: Path) -> None:
    banner = (
        (DATA / "nvidia-smi-h200.txt")
        .read_text()
        .replace(
            "Driver Version: 580.159.04     CUDA Version: 13.0",
            "Driver Version: 535.183.01     CUDA Version: 12.2",
        )
    )
    query = "0, NVIDIA A10G, 23028, 8.6\n"
    result = run_tool(
        "gpu_check", "--image-cuda", "12.4.1", env=nvidia_smi(tmp_path, banner, query)
    )
    assert result.returncode == 1
    assert (
        "the driver (535.183.01) supports CUDA up to 12.2, but this image is built for CUDA 12.4: "
        "use a driver >= 550.54.14, or an image built for CUDA 12.1 (profile cu121)"
    ) in result.stderr


def test_gpu_check_without_a_gpu_says_how_to_give_one(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, str(TOOLS / "gpu_check.py"), "--image-cuda", "12.4.1"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert result.returncode == 1
    assert "nvidia-smi is not in this container" in result.stderr
    assert "_EXPERIMENTAL_DAGGER_GPU_SUPPORT=1" in result.stderr


@pytest.mark.parametrize("cuda", ["", "twelve"])
def test_gpu_check_needs_a_readable_image_cuda(cuda: str) -> None:
    env = {key: value for key, value in os.environ.items() if key != "CUDA_VERSION"}
    result = run_tool("gpu_check", "--image-cuda", cuda, "--skip-torch", env=env)
    assert result.returncode == 1
    assert "CUDA version" in result.stderr
