"""The offline plan: the layers of a build, their pins and their cache keys."""

from __future__ import annotations

import subprocess
import sys

import anyio
from dagger.mod import default_module
from steadydancer import catalog

import ci.main  # noqa: F401
from ci import pins
from ci.layers import models as models_layer
from ci.options import BuildOptions
from ci.plan import layers, render
from tests.dagger_offline import REPO


def test_layers_are_listed_in_build_order() -> None:
    names = [layer.name for layer in layers(BuildOptions.parse())]
    assert names == [
        "base",
        "torch",
        "openmmlab",
        "attention",
        "models",
        "comfyui",
        "nodes",
        "runtime",
    ]
    unbaked = [layer.name for layer in layers(BuildOptions.parse(bake_models=False))]
    assert "models" not in unbaked


def test_plan_names_every_pin() -> None:
    text = render(BuildOptions.parse("fp16", "cu121", "auto"))
    for needle in (
        pins.PROFILES["cu121"].runtime_image,
        pins.PROFILES["cu121"].devel_image,
        "torch==2.5.1+cu121",
        "mmcv==2.1.0",
        "TORCH_CUDA_ARCH_LIST=8.0;8.6;8.9;9.0+PTX",
        pins.XFORMERS.requirement,
        pins.COMFYUI.commit,
        *(pack.commit for pack in pins.NODE_PACKS),
        *(entry.path for entry in catalog.placeable("fp16")),
    ):
        assert needle in text, needle


def test_a_file_whose_bytes_cannot_be_checked_is_named_and_not_baked() -> None:
    """yolox-l comes from a plain URL that states no digest and the catalog records none."""
    (refused,) = catalog.refused("fp8")
    assert refused.key == "yolox-l" and refused.sha256 is None and refused.url
    assert refused not in models_layer.layer_order("fp8")
    text = render(BuildOptions.parse("fp8"))
    assert f"not baked: {refused.refusal}" in text
    assert "STEADYDANCER_CATALOG" in refused.refusal


def test_forced_branches_show_only_what_they_install() -> None:
    assert "flash-attn wheel" not in render(BuildOptions.parse(attention_mode="xformers"))
    assert "else the build fails" in render(BuildOptions.parse(attention_mode="flash_attn_2"))


def test_plan_runs_as_a_command_and_as_a_dagger_function() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ci.plan", "--variant", "fp8"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.startswith("steady-dancer build: variant fp8, profile cu124")
    assert result.stderr == ""
    via_module, _ = anyio.run(
        default_module().get_structured_result, "SteadyDancer", {}, "plan", {"variant": "fp8"}
    )
    assert via_module == result.stdout.rstrip("\n")
