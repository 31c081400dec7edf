"""The image's entrypoint, run for real against a stand-in for ComfyUI's main.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from steadydancer.entrypoint import comfyui_argv

from tests.dagger_offline import REPO


@pytest.mark.parametrize(
    ("env", "flags"),
    [
        ({"STEADYDANCER_ATTENTION": "flash_attn_2"}, ["--use-flash-attention"]),
        (
            {"STEADYDANCER_ATTENTION": "flash_attn_2", "ENABLE_FLASH_ATTN": "false"},
            ["--use-pytorch-cross-attention"],
        ),
        ({"STEADYDANCER_ATTENTION": "xformers"}, []),
        ({}, []),
    ],
)
def test_attention_flag_follows_the_recorded_branch(env: dict[str, str], flags: list[str]) -> None:
    argv = comfyui_argv(env, python="python")
    assert argv[:8] == [
        "python",
        "/opt/ComfyUI/main.py",
        "--listen",
        "0.0.0.0",
        "--port",
        "8188",
        "--max-upload-size",
        "2048",
    ]
    assert argv[8:] == flags


def test_entrypoint_execs_comfyui_listening_on_all_interfaces(tmp_path: Path) -> None:
    record = tmp_path / "argv.json"
    (tmp_path / "main.py").write_text(
        "import json, os, sys\n"
        f"record = open({str(record)!r}, 'w')\n"
        "json.dump({'argv': sys.argv, 'cwd': os.getcwd()}, record)\n"
    )
    env = {
        **os.environ,
        "COMFYUI_DIR": str(tmp_path),
        "STEADYDANCER_ATTENTION": "flash_attn_2",
        "COMFYUI_ARGS": "--preview-method auto",
        "PYTHONPATH": str(REPO / "docker"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "steadydancer.entrypoint"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    seen = json.loads(record.read_text())
    assert seen["argv"] == [
        str(tmp_path / "main.py"),
        "--listen",
        "0.0.0.0",
        "--port",
        "8188",
        "--max-upload-size",
        "2048",
        "--use-flash-attention",
        "--preview-method",
        "auto",
    ]
    assert seen["cwd"] == str(tmp_path)
    assert "starting" in result.stdout
