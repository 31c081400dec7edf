"""Publishing is checked against the registry's per-layer limit before anything is built."""

from __future__ import annotations

import subprocess
import sys

import anyio
import pytest
from dagger.mod import default_module
from dagger.mod._exceptions import FunctionError

import ci.main
from ci import registries
from tests.dagger_offline import REPO

DIT = "Wan21_SteadyDancer_fp8_e4m3fn_scaled_KJ.safetensors"


@pytest.mark.parametrize(
    ("address", "host", "limit_gb"),
    [
        ("ghcr.io/me/steadydancer:fp8", "ghcr.io", 10.0),
        ("registry.gitlab.com/group/project:fp8", "registry.gitlab.com", 10.0),
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com/sd:fp8", None, 54.525952),
        ("me/steadydancer:fp8", "docker.io", 10.0),
        ("localhost:5000/sd", "localhost:5000", 10.0),
        # A bare host names the registry, not an image called "ghcr.io" on docker.io.
        ("ghcr.io", "ghcr.io", 10.0),
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com", None, 54.525952),
        ("ubuntu:22.04", "docker.io", 10.0),
    ],
)
def test_each_address_finds_its_registry_and_limit(
    address: str, host: str | None, limit_gb: float
) -> None:
    if host:
        assert registries.host_of(address) == host
    assert registries.registry_for(address).layer_limit == int(limit_gb * registries.GB)


def test_a_baked_fp8_image_for_ghcr_is_refused_naming_the_dit() -> None:
    registry = registries.registry_for("ghcr.io/me/sd:fp8")
    assert [entry.filename for entry in registries.oversized("fp8", registry)] == [DIT]
    reason = registries.refusal("ghcr.io/me/sd:fp8", "fp8", registry)
    assert reason is not None
    assert f"{DIT} (16.4 GB) cannot go" in reason and "--bake-models=false" in reason


def test_ecr_and_a_given_limit_take_the_dit() -> None:
    ecr = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sd:fp8"
    assert registries.refusal(ecr, "fp8", registries.registry_for(ecr)) is None
    given = registries.registry_for("harbor.example.com/sd:fp8", layer_limit_gb=20)
    assert registries.refusal("harbor.example.com/sd:fp8", "fp8", given) is None


def test_publish_refuses_before_building_anything() -> None:
    with pytest.raises(FunctionError) as raised:
        anyio.run(
            default_module().get_structured_result,
            "SteadyDancer",
            {},
            "publish",
            {"address": "ghcr.io/me/steadydancer:fp8"},
        )
    assert f"{DIT} (16.4 GB) cannot go" in str(raised.value)
    assert raised.value.__cause__ is None


def test_plan_says_which_layers_fit_a_registry() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ci.plan", "--registry", "ghcr.io/me/sd:fp8"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"16.41 GB  {DIT}: TOO LARGE for one layer" in result.stdout
    assert "6.73 GB  umt5-xxl-enc-fp8_e4m3fn.safetensors: fits" in result.stdout
    assert "publish would be refused before pushing" in result.stdout
    unbaked = subprocess.run(
        [sys.executable, "-m", "ci.plan", "--registry", "ghcr.io/me/sd", "--no-bake-models"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "models are not baked: no model layer to push" in unbaked.stdout
    # Each command speaks its own spelling of leaving the models out.
    assert "use --no-bake-models or ECR" in result.stdout and "=false" not in result.stdout
    dagger_plan = ci.main.SteadyDancer().plan(registry="ghcr.io")
    assert "GitHub Container registry" in dagger_plan and "use --bake-models=false" in dagger_plan


def test_publish_refuses_a_bare_registry_host() -> None:
    with pytest.raises(FunctionError, match=r"^'ghcr.io' is not an image address: .*ghcr.io/OWNER"):
        anyio.run(
            default_module().get_structured_result,
            "SteadyDancer", {}, "publish", {"address": "ghcr.io", "bake_models": False},
        )  # fmt: skip
