"""What a change costs, measured on the offline chain: where two builds first differ.

The engine reuses every layer up to the first differing field, so the index of
that field says which layers a change rebuilds.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from steadydancer import catalog

from ci import image, paths, pins
from ci import lock as locks
from ci.options import BuildOptions
from tests.conftest import PLANS
from tests.dagger_offline import describe, fields, first_difference, index_of, ops


def build(variant: str = "fp8"):
    return image.image(BuildOptions.parse(variant, "cu124", "auto"), PLANS["wheel"])


def models_position(ctr) -> int:
    return index_of(ctr, "withDirectory", path=paths.MODELS_DIR)


def last_attention_op(ctr) -> int:
    return index_of(ctr, "withEnvVariable", name="STEADYDANCER_ATTENTION")


def test_switching_variant_recompiles_nothing_and_keeps_the_shared_model_layers() -> None:
    fp8, fp16 = build("fp8"), build("fp16")
    diff = first_difference(fp8, fp16)
    shared = sum(
        entry in catalog.placeable("fp16") for entry in catalog.placeable("fp8")
    )  # VAE, CLIP vision, LoRA, YOLO, ViTPose model and data
    assert diff == models_position(fp8) + shared
    assert diff > last_attention_op(fp8)
    mmcv_mount = index_of(fp8, "withMountedDirectory", path="/tmp/steadydancer-wheels")
    assert mmcv_mount < diff


def relock_requirements(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Requirement copies as `dagger call lock` writes them for the pins now in force."""
    for pin in locks.sources():
        text = (locks.REQUIREMENTS_DIR / f"{pin.name}.txt").read_text().split("\n", 1)[1]
        (tmp_path / f"{pin.name}.txt").write_text(locks.requirements_copy(pin, text))
    monkeypatch.setattr(locks, "REQUIREMENTS_DIR", tmp_path)


@pytest.mark.parametrize("pin_name", ["COMFYUI", "NODE_PACKS"])
def test_bumping_a_comfyui_or_node_pin_copies_no_model_bytes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pin_name: str
) -> None:
    before = build()
    if pin_name == "COMFYUI":
        bumped = dataclasses.replace(pins.COMFYUI, commit="0" * 40)
    else:
        first, *rest = pins.NODE_PACKS
        bumped = (dataclasses.replace(first, commit="0" * 40), *rest)
    monkeypatch.setattr(pins, pin_name, bumped)
    relock_requirements(tmp_path, monkeypatch)
    after = build()
    diff = first_difference(before, after)
    assert diff > models_position(before), "the bump reaches the models layer"
    assert describe(fields(before)[models_position(before)].args["source"]) == describe(
        fields(after)[models_position(after)].args["source"]
    )
    # Requirements unchanged: the install is reused and only the source tree differs.
    assert ops(after)[diff][0] == "withDirectory"


def test_a_lock_change_in_a_node_dependency_rebuilds_from_that_layer_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = build()
    lock = locks.load("cu124")
    assert lock is not None
    moved = lock.text.replace("aiohttp==3.14.5", "aiohttp==3.14.4")
    monkeypatch.setattr(locks, "load", lambda profile: locks.Lock.parse(profile, moved))
    after = build()
    diff = first_difference(before, after)
    assert diff > models_position(before)
    assert "comfy-kitchen==0.2.27" in ops(after)[diff + 1][1]["args"]


def test_stale_lock_is_refused_with_the_command_that_fixes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pins, "MMDET", dataclasses.replace(pins.MMDET, version="3.2.0"))
    monkeypatch.setattr(
        pins,
        "OPENMMLAB_PACKAGES",
        (pins.MMENGINE, pins.MMDET, pins.MMPOSE, pins.XTCOCOTOOLS, pins.DWPOSE),
    )
    with pytest.raises(
        locks.LockError, match=r"has mmdet 3.3.0, but mmdet==3.2.0 is required.*python -m ci.lock"
    ):
        build()


def project_references(ctr) -> list[tuple[int, str]]:
    """(position, description) of every use of this repository's files in the chain."""
    found = []
    for position, field in enumerate(fields(ctr)):
        text = "".join(describe(v) for v in field.args.values() if hasattr(v, "_ctx"))
        if "currentModule()" in text:
            found.append((position, text))
    return found


def test_editing_docker_or_workflows_touches_only_the_runtime_layer() -> None:
    ctr = build()
    runtime_start = index_of(ctr, "withoutMount", path=paths.UV_CACHE)
    last_node = max(
        position
        for position, (name, args) in enumerate(ops(ctr))
        if name == "withDirectory" and str(args.get("path", "")).startswith(paths.CUSTOM_NODES_DIR)
    )
    assert runtime_start > last_node
    for position, text in project_references(ctr):
        if position < runtime_start:
            # Before the runtime layer only single build tools (file by file), the nodes
            # layer's patches and its node pack are copied.
            assert (
                ".file(path='docker/steadydancer/" in text
                or "directory(path='docker/steadydancer/nodes')" in text
            ), text
            assert "entrypoint" not in text and "workflows" not in text
    late = [text for position, text in project_references(ctr) if position >= runtime_start]
    assert any("directory(path='docker')" in text for text in late)
    assert any("directory(path='workflows')" in text for text in late)
