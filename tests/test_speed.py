"""The speed parameters render prompts the real ComfyUI accepts, and their defaults follow the GPU.

Rendered prompts are checked against tests/data/object_info.json (the real ComfyUI with
the pinned packs, test_workflows.problems); the defaults against the quality gate the
bench recorded in bench/results/.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from steadydancer import speed, workflows

from tests.dagger_offline import REPO
from tests.test_workflows import problems, rendered

SD_WORKFLOWS = ["steadydancer-dance", "steadydancer-official", "steadydancer-pose"]
H200 = {"name": "cuda:0 NVIDIA H200 : cudaMallocAsync", "type": "cuda", "vram_total": 150 * 2**30}
RTX_4090 = {"name": "cuda:0 NVIDIA GeForce RTX 4090 : cudaMallocAsync", "type": "cuda"}
A100 = {"name": "cuda:0 NVIDIA A100-SXM4-80GB : cudaMallocAsync", "type": "cuda"}


def of_class(prompt: dict[str, Any], class_type: str) -> list[dict[str, Any]]:
    return [node for node in prompt.values() if node["class_type"] == class_type]


@pytest.mark.parametrize("variant", ["fp8", "fp16"])
@pytest.mark.parametrize("name", SD_WORKFLOWS)
def test_every_speed_setting_renders_a_prompt_comfyui_accepts(name: str, variant: str) -> None:
    settings = {"compute": "fp8", "resident": "on", "compile": "on", "attention": "sageattn"}
    assert problems(rendered(name, variant, "xformers", settings)) == []


@pytest.mark.parametrize("name", SD_WORKFLOWS)
def test_fp8_compute_merges_the_lora_at_load_in_place_of_applying_it_on_the_fly(name: str) -> None:
    shipped = rendered(name, "fp8", "xformers", {"compute": "bf16"})
    fast = rendered(name, "fp8", "xformers", {"compute": "fp8"})
    assert of_class(shipped, "WanVideoSetLoRAs") and not of_class(fast, "WanVideoSetLoRAs")
    (loader,) = of_class(fast, "WanVideoModelLoader")
    assert loader["inputs"]["quantization"] == "fp8_e4m3fn_scaled_fast"
    lora_node = fast[loader["inputs"]["lora"][0]]
    assert lora_node["class_type"] == "WanVideoLoraSelect"
    assert lora_node["inputs"]["merge_loras"] is True
    (sampler,) = of_class(fast, "WanVideoSampler")
    assert fast[sampler["inputs"]["model"][0]] is loader
    # The fp16 checkpoint is not scaled: it is cast to fp8 at load.
    (fp16_loader,) = of_class(
        rendered(name, "fp16", "xformers", {"compute": "fp8"}), "WanVideoModelLoader"
    )
    assert fp16_loader["inputs"]["quantization"] == "fp8_e4m3fn_fast"
    # The shipped path is today's: stored weights, LoRA applied on the fly.
    (shipped_loader,) = of_class(shipped, "WanVideoModelLoader")
    assert shipped_loader["inputs"]["quantization"] == "disabled"
    assert "lora" not in shipped_loader["inputs"]


def test_resident_keeps_every_model_on_the_gpu_and_caches_the_text_encoding() -> None:
    prompt = rendered("steadydancer-pose", "fp8", "xformers", {"resident": "on"})
    offloading = [n for n in prompt.values() if "force_offload" in n["inputs"]]
    assert offloading and all(n["inputs"]["force_offload"] is False for n in offloading)
    assert {c["class_type"] for c in offloading} == set(speed.OFFLOADING)
    (loader,) = of_class(prompt, "WanVideoModelLoader")
    assert loader["inputs"]["load_device"] == "main_device"
    (text,) = of_class(prompt, "WanVideoTextEncodeCached")
    assert text["inputs"]["use_disk_cache"] is True
    shipped = rendered("steadydancer-pose", "fp8", "xformers", {"resident": "off"})
    assert all(
        n["inputs"]["force_offload"] for n in shipped.values() if "force_offload" in n["inputs"]
    )


def test_compile_and_attention_reach_the_loader() -> None:
    prompt = rendered(
        "steadydancer-pose", "fp8", "flash_attn_2", {"compile": "on", "attention": "sdpa"}
    )
    (loader,) = of_class(prompt, "WanVideoModelLoader")
    assert loader["inputs"]["attention_mode"] == "sdpa"
    assert (
        prompt[loader["inputs"]["compile_args"][0]]["class_type"] == "WanVideoTorchCompileSettings"
    )
    auto = rendered("steadydancer-pose", "fp8", "flash_attn_2", {})
    (auto_loader,) = of_class(auto, "WanVideoModelLoader")
    assert auto_loader["inputs"]["attention_mode"] == "flash_attn_2"
    assert "compile_args" not in auto_loader["inputs"]


def test_bad_speed_values_are_named_with_what_is_accepted() -> None:
    with pytest.raises(
        workflows.WorkflowError, match="compute='fp4' is not one of auto, bf16, fp8"
    ):
        rendered("steadydancer-pose", "fp8", "sdpa", {"compute": "fp4"})
    with pytest.raises(
        workflows.WorkflowError, match="variant gguf-q6_k has none: use compute=bf16"
    ):
        rendered("steadydancer-pose", "gguf-q6_k", "sdpa", {"compute": "fp8"})
    # GGUF keeps today's path unasked.
    assert problems(rendered("steadydancer-pose", "gguf-q6_k", "sdpa", {})) == []


def test_fp8_capable_gpus_are_ada_hopper_and_blackwell_only() -> None:
    for name in (
        "NVIDIA H100 80GB HBM3",
        "NVIDIA H200",
        "NVIDIA L40S",
        "NVIDIA L4",
        "NVIDIA GeForce RTX 4090",
        "NVIDIA GeForce RTX 5090",
        "NVIDIA RTX 6000 Ada Generation",
    ):
        assert speed.fp8_capable(name), name
    for name in (
        "NVIDIA A100-SXM4-80GB",
        "NVIDIA GeForce RTX 3090",
        "NVIDIA A10G",
        "Tesla T4",
        "Tesla V100-SXM2-16GB",
        "NVIDIA RTX A6000",
        "cpu",
    ):
        assert not speed.fp8_capable(name), name


def test_auto_keeps_bf16_until_fp8_passed_its_gate_and_never_picks_it_on_older_cards() -> None:
    parameters = workflows.load("steadydancer-pose").parameters
    # FP8_GATE is empty: the fp8 path failed the gate in every recorded run (test below).
    for device in (H200, RTX_4090, A100, {"type": "cpu"}):
        assert speed.choose(parameters, {}, "fp8", device)["compute"] == "bf16"
    assert speed.choose(parameters, {"compute": "fp8"}, "fp8", H200).get("compute") is None


def test_resident_is_chosen_only_when_everything_fits_without_block_swap() -> None:
    parameters = workflows.load("steadydancer-pose").parameters
    big = speed.choose(parameters, {"frames": 81, "block_swap": 0}, "fp8", H200)
    assert big["resident"] == "on"
    card_24gb = {**RTX_4090, "vram_total": 24 * 2**30}
    assert (
        speed.choose(parameters, {"frames": 81, "block_swap": 0}, "fp8", card_24gb)["resident"]
        == "off"
    )
    assert (
        speed.choose(parameters, {"frames": 81, "block_swap": 4}, "fp8", H200)["resident"] == "off"
    )
    assert speed.choose(parameters, {}, "fp8", {"type": "cpu"})["resident"] == "off"


def results() -> dict[str, dict[str, Any]]:
    folder = REPO / "bench" / "results"
    return {path.stem: json.loads(path.read_text()) for path in folder.glob("*-480x832x*.json")}


def test_defaults_only_take_paths_that_passed_the_quality_gate() -> None:
    gated = {name: r["quality"] for name, r in results().items() if "quality" in r}
    assert gated, "no result carries a quality gate"
    fp8_paths = {name: q for name, q in gated.items() if "-fp8-" in name}
    assert fp8_paths and not any(q["passed"] for q in fp8_paths.values())
    for variant, result_name in speed.FP8_GATE.items():
        assert gated[result_name]["passed"], (variant, result_name)
    # Resident, the warm worker's default, computes what the shipped path computes.
    assert gated["fp8-480x832x81-bf16-resident"]["passed"]


def test_the_page_files_run_todays_path_and_the_docs_name_the_warm_workers_edits() -> None:
    """docs/serving.md tells a pod's page user the edits resident=on makes: every node and
    input that differs between the rendered resident and shipped prompts is named there."""
    import re

    doc = re.sub(r"\s+", " ", (REPO / "docs" / "serving.md").read_text())
    paragraph = doc[doc.index("A page file cannot see the GPU") :][:800]
    warm = rendered("steadydancer-pose", "fp8", "xformers", {"resident": "on"})
    shipped = rendered("steadydancer-pose", "fp8", "xformers", {"resident": "off"})
    changed = {
        (warm[key]["class_type"], name, value)
        for key in warm
        for name, value in warm[key]["inputs"].items()
        if shipped[key]["inputs"].get(name) != value
    }
    assert len(changed) == 5
    for class_type, name, value in changed:
        assert class_type in paragraph and f"`{name}`" in paragraph, (class_type, name)
        if isinstance(value, str):
            assert f"`{value}`" in paragraph
    for path in sorted((REPO / "workflows" / "ui").glob("*/*.json")):
        loaders = [
            n for n in json.loads(path.read_text())["nodes"] if n["type"] == "WanVideoModelLoader"
        ]
        assert loaders, path
        for loader in loaders:
            assert "offload_device" in loader["widgets_values"], path
