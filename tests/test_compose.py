"""docker/docker-compose.yml runs the image the way the entrypoint expects."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from ci import docs
from tests.dagger_offline import REPO


def test_compose_reserves_the_gpus_and_keeps_data_on_a_volume() -> None:
    compose = yaml.safe_load((REPO / "docker" / "docker-compose.yml").read_text())
    service = compose["services"]["steadydancer"]
    assert service["ports"] == ["8188:8188"]
    (device,) = service["deploy"]["resources"]["reservations"]["devices"]
    assert device == {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}
    assert service["volumes"] == ["workspace:/workspace"] and "workspace" in compose["volumes"]
    assert service["healthcheck"]["test"] == [
        "CMD",
        "python",
        "-m",
        "steadydancer.ready",
        "--nodes",
    ]


def documented_variables() -> set[str]:
    """The entrypoint's documented variables a person may set (not the image's own branch or
    the variable RunPod sets on serverless workers)."""
    table = docs.environment_table().splitlines()[2:]
    names = {row.split("`")[1] for row in table}
    return names - {"STEADYDANCER_ATTENTION", "RUNPOD_WEBHOOK_GET_JOB"}


def test_compose_passes_every_documented_variable_and_sets_none_itself() -> None:
    compose = yaml.safe_load((REPO / "docker" / "docker-compose.yml").read_text())
    environment = compose["services"]["steadydancer"]["environment"]
    assert isinstance(environment, list) and all("=" not in name for name in environment)
    assert set(environment) == documented_variables()


def compose_tool() -> list[str] | None:
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


def resolved(tool: list[str], env: dict[str, str]) -> dict[str, str]:
    out = subprocess.run(
        [*tool, "-f", str(REPO / "docker" / "docker-compose.yml"), "config"],
        capture_output=True, text=True, check=True,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", **env},
    )  # fmt: skip
    service = yaml.safe_load(out.stdout)["services"]["steadydancer"]
    found = service.get("environment") or {}
    pairs = found.items() if isinstance(found, dict) else (v.partition("=")[::2] for v in found)
    # A name without a value is one compose leaves unset in the container.
    return {name: value for name, value in pairs if value is not None}


@pytest.mark.skipif(
    shutil.which("docker") is None and shutil.which("docker-compose") is None,
    reason="no Compose tool on this machine",
)
def test_an_image_keeps_its_own_variant_unless_one_is_set() -> None:
    """The machine's real Compose tool resolves the file: with the shell setting nothing, no
    variable reaches the container (an fp16 image is not told fp8); what is set passes."""
    tool = compose_tool()
    if tool is None:
        pytest.skip("no Compose tool on this machine")
    assert resolved(tool, {}) == {}
    given = {"STEADYDANCER_VARIANT": "fp16", "COMFYUI_ARGS": "--lowvram", "HF_TOKEN": "hf_x"}
    assert resolved(tool, given) == given
