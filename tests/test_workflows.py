"""Shipped workflows use only nodes and inputs a real ComfyUI with the pinned packs offers.

tests/data/object_info.json is GET /object_info of ComfyUI and the four node
packs at the commits in ci/pins.py, on torch 2.5.1 with the constraints of
ci/pins.py, run on CPU, with this repository's pack's classes from the replayed
image's boot (README, "Capturing object_info"). Every workflow is checked as
rendered, for each variant and attention branch.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest
from steadydancer import catalog, speed, workflows

from tests.dagger_offline import REPO

OBJECT_INFO = REPO / "tests" / "data" / "object_info.json"
INPUTS = {
    "reference_image": "ref.png",
    "driving_video": "drive.mp4",
    "pose_video": "pose.mp4",
    "video": "in.mp4",
}


@functools.cache
def object_info() -> dict[str, Any]:
    info: dict[str, Any] = json.loads(OBJECT_INFO.read_text())
    return info


def declared_inputs(spec: dict[str, Any]) -> dict[str, Any]:
    declared = {**spec["input"].get("required", {}), **spec["input"].get("optional", {})}
    # VHS_VideoCombine declares its per-format options inside the format combo.
    for value in list(declared.values()):
        if isinstance(value, list) and len(value) > 1 and isinstance(value[1], dict):
            for options in value[1].get("formats", {}).values():
                for option in options:
                    declared.setdefault(option[0], option[1:])
    return declared


def combo_options(declared: Any) -> list[Any] | None:
    """A combo's static options; None where the list is files on the server (uploads, models)."""
    extra = declared[1] if len(declared) > 1 and isinstance(declared[1], dict) else {}
    if any(flag in extra for flag in ("image_upload", "video_upload", "upload")):
        return None
    if declared and isinstance(declared[0], list):
        return declared[0] or None
    if declared and declared[0] == "COMBO":
        return declared[1].get("options") or None
    return None


def problems(prompt: dict[str, Any]) -> list[str]:
    found = []
    for node_id, node in prompt.items():
        spec = object_info().get(node["class_type"])
        if spec is None:
            found.append(f"{node_id}: unknown node {node['class_type']}")
            continue
        declared = declared_inputs(spec)
        for name in spec["input"].get("required", {}):
            if name not in node["inputs"]:
                found.append(f"{node_id}: missing required input {name}")
        for name, value in node["inputs"].items():
            if name not in declared:
                found.append(f"{node_id}: unknown input {name}")
            elif isinstance(value, list):
                source, output = value
                produced = object_info()[prompt[source]["class_type"]]["output"][output]
                wanted = declared[name][0]
                if isinstance(wanted, str) and produced != wanted:
                    found.append(f"{node_id}.{name}: {produced} linked to {wanted}")
            elif (options := combo_options(declared[name])) is not None and value not in options:
                found.append(f"{node_id}.{name}: {value!r} is not an option")
    return found


def rendered(
    name: str,
    variant: str = "fp8",
    attention: str = "xformers",
    values: dict[str, Any] | None = None,
) -> dict[str, Any]:
    workflow = workflows.load(name)
    files = {key: value for key, value in INPUTS.items() if key in workflow.parameters}
    return workflows.render(workflow, {**files, **(values or {})}, variant, attention)


@pytest.mark.parametrize("attention", ["flash_attn_2", "xformers"])
@pytest.mark.parametrize("variant", sorted(catalog.VARIANTS))
@pytest.mark.parametrize("name", workflows.names())
def test_every_shipped_workflow_validates_as_rendered(
    name: str, variant: str, attention: str
) -> None:
    assert problems(rendered(name, variant, attention)) == []


def test_the_four_workflows_are_shipped_with_manifests() -> None:
    assert workflows.names() == [
        "cpu-smoke",
        "steadydancer-dance",
        "steadydancer-official",
        "steadydancer-pose",
    ]
    no_frontend = {"SetNode", "GetNode", "PrimitiveNode", "Note", "MarkdownNote", "Reroute"}
    for name in workflows.names():
        workflow = workflows.load(name)
        assert not workflow.class_types & no_frontend
        assert workflow.outputs and all(node in workflow.prompt for node in workflow.outputs)
        for parameter in workflow.parameters.values():
            for node, input_name in parameter.targets:
                assert input_name in workflow.prompt[node]["inputs"], (name, parameter.name)


def test_steadydancer_workflows_take_the_parameters_users_set() -> None:
    official = {"cfg", "lora_strength", "pose_scale", "pose_start", "pose_end", "pose_seed"}
    for name, video, extra in (
        ("steadydancer-dance", "driving_video", set()),
        ("steadydancer-official", "driving_video", official),
        ("steadydancer-pose", "pose_video", set()),
    ):
        workflow = workflows.load(name)
        assert set(workflow.parameters) - extra == {
            "reference_image",
            video,
            "prompt",
            "negative_prompt",
            "seed",
            "steps",
            "width",
            "height",
            "frames",
            "fps",
            "block_swap",
            *speed.PARAMETERS,
        }
    dance = rendered("steadydancer-dance")
    assert {node["class_type"] for node in dance.values()} >= {
        "PoseDetectionOneToAllAnimation",
        "WanVideoAddSteadyDancerEmbeds",
        "VHS_VideoCombine",
    }
    detector = next(
        n for n in dance.values() if n["class_type"] == "PoseDetectionOneToAllAnimation"
    )
    assert detector["inputs"]["align_to"] == "ref"
    pose = rendered("steadydancer-pose")
    assert "PoseDetectionOneToAllAnimation" not in {node["class_type"] for node in pose.values()}


def by_class(prompt: dict[str, Any], class_type: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (key, node["inputs"]) for key, node in prompt.items() if node["class_type"] == class_type
    ]


def test_the_official_workflow_runs_steadydancers_own_pose_path() -> None:
    """Both pictures go through the official detector; the aligned poses drive the model, their
    augmented copy is the negative pose, and the guidance node sits between embeds and sampler."""
    prompt = rendered(
        "steadydancer-official", values={"pose_scale": 1.0, "pose_end": 0.5, "pose_seed": 7}
    )
    assert not by_class(prompt, "PoseDetectionOneToAllAnimation")
    detectors = dict(by_class(prompt, "SteadyDancerDWPose"))
    ((align_id, align),) = by_class(prompt, "SteadyDancerPoseAlign")
    ((negative_id, negative),) = by_class(prompt, "SteadyDancerNegativePose")
    assert {align["reference_pose"][0], align["driving_poses"][0]} == set(detectors)
    reference = detectors[align["reference_pose"][0]]["images"][0]
    assert prompt[reference]["inputs"]["image"][0] == "1"  # the reference image, resized
    assert negative["poses"] == [align_id, 0] and negative["seed"] == 7
    ((embeds_id, embeds),) = by_class(prompt, "WanVideoAddSteadyDancerEmbeds")
    encoded = {key: inputs["image"] for key, inputs in by_class(prompt, "WanVideoEncode")}
    assert encoded[embeds["pose_latents_positive"][0]] == [align_id, 1]
    assert encoded[embeds["pose_latents_negative"][0]] == [negative_id, 1]
    ((guidance_id, guidance),) = by_class(prompt, "SteadyDancerPoseGuidance")
    assert guidance == {"image_embeds": [embeds_id, 0], "pose_scale": 1.0, "start": 0.1, "end": 0.5}
    ((_, sampler),) = by_class(prompt, "WanVideoSampler")
    assert sampler["image_embeds"] == [guidance_id, 0]
    # The patched sampler refuses the three passes with batched cfg.
    assert sampler["batched_cfg"] is False


@pytest.mark.parametrize("variant", sorted(catalog.VARIANTS))
def test_model_inputs_name_the_variants_catalog_files(variant: str) -> None:
    prompt = rendered("steadydancer-dance", variant)
    values = {
        value
        for node in prompt.values()
        for value in node["inputs"].values()
        if isinstance(value, str)
    }
    # The data file sits beside its graph; DWPose-L and YOLOX-L serve the official pose pack.
    for entry in catalog.files_for(variant):
        if entry.key not in ("vitpose-h-data", "dwpose-l", "yolox-l"):
            assert workflows.model_value(entry) in values, entry.key


def test_attention_mode_follows_the_image_and_never_needs_missing_kernels() -> None:
    def loader(prompt: dict[str, Any]) -> dict[str, Any]:
        return next(n for n in prompt.values() if n["class_type"] == "WanVideoModelLoader")

    assert (
        loader(rendered("steadydancer-pose", attention="flash_attn_2"))["inputs"]["attention_mode"]
        == "flash_attn_2"
    )
    assert (
        loader(rendered("steadydancer-pose", attention="xformers"))["inputs"]["attention_mode"]
        == "sdpa"
    )
    for name in ("steadydancer-dance", "steadydancer-official", "steadydancer-pose"):
        inputs = loader(rendered(name))["inputs"]
        assert inputs["base_precision"] != "fp16_fast" and "sage" not in inputs["attention_mode"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"resolution": 720},
            "unknown parameter(s) resolution for steadydancer-pose; accepted: attention, block_",
        ),
        ({"steps": 0}, "parameter steps=0 is below its minimum 1"),
        ({"frames": 1000}, "parameter frames=1000 is above its maximum 321"),
        ({"seed": "42"}, "parameter seed must be int, got '42'"),
        ({"width": True}, "parameter width must be int, got True"),
    ],
)
def test_bad_parameters_are_named(values: dict[str, Any], message: str) -> None:
    workflow = workflows.load("steadydancer-pose")
    full = {"reference_image": "r.png", "pose_video": "p.mp4", **values}
    with pytest.raises(workflows.WorkflowError) as raised:
        workflows.render(workflow, full)
    assert str(raised.value).startswith(message)


def test_missing_inputs_unknown_variant_and_branch_are_named() -> None:
    workflow = workflows.load("steadydancer-pose")
    with pytest.raises(workflows.WorkflowError, match="parameter reference_image is required"):
        workflows.render(workflow, {"pose_video": "p.mp4"})
    inputs = {"reference_image": "r.png", "pose_video": "p.mp4"}
    with pytest.raises(workflows.WorkflowError, match="unknown variant 'bf16'"):
        workflows.render(workflow, inputs, variant="bf16")
    with pytest.raises(workflows.WorkflowError, match="unknown attention branch 'sageattn'"):
        workflows.render(workflow, inputs, attention="sageattn")


def test_a_broken_workflow_is_caught() -> None:
    broken = {
        "1": {"class_type": "LoadVideo", "inputs": {"file": "in.mp4"}},
        "2": {
            "class_type": "SaveVideo",
            "inputs": {
                "video": ["3", 0],
                "filename_prefix": "x",
                "format": "webm",
                "codec": "h264",
            },
        },
        "3": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 8}},
        "4": {"class_type": "NoSuchNode", "inputs": {}},
    }
    assert problems(broken) == [
        "2.video: IMAGE linked to VIDEO",
        "2.format: 'webm' is not an option",
        "3: missing required input color",
        "4: unknown node NoSuchNode",
    ]
