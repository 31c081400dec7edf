"""The block-swap choice: the memory model against the H200 runs committed under
bench/results (their ComfyUI logs hold the sampler's peak), and the choice it makes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from steadydancer import vram, workflows

from bench import gpu_render

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"
GIB = 2**30


def modelled(path: Path) -> bool:
    """Results of the paths the model describes: weights computed as stored (compute bf16),
    no torch.compile (compiled blocks keep more, unmodelled; their default is off)."""
    values = json.loads(path.read_text())["parameters"]
    return values.get("compute", "bf16") == "bf16" and values.get("compile", "off") != "on"


@pytest.mark.parametrize(
    "path", [p for p in sorted(RESULTS.glob("*.json")) if modelled(p)], ids=lambda p: p.stem
)
def test_model_is_within_a_third_of_a_gib_of_each_measured_peak(path: Path) -> None:
    result = json.loads(path.read_text())
    workflow = workflows.load(result["workflow"])
    values = {name: p.default for name, p in workflow.parameters.items()}
    values.update(result["parameters"])
    log = path.with_suffix(".comfyui.log").read_text()
    measured = gpu_render.log_figures(log, values["steps"])["max_reserved_gib"]
    assert measured is not None
    expected = vram.peak_gib(
        result["variant"],
        values["width"],
        values["height"],
        values["frames"],
        values["block_swap"],
    )
    assert abs(expected - measured) < 0.35, (expected, measured)


def test_a_big_card_swaps_nothing_and_a_small_one_swaps_enough() -> None:
    assert vram.blocks_to_swap(141 * GIB, "fp16", 480, 832, 81) == 0
    for gib in (12, 16, 24):
        for variant in ("fp8", "fp16"):
            swapped = vram.blocks_to_swap(gib * GIB, variant, 480, 832, 81)
            if swapped < vram.BLOCKS:
                peak = vram.peak_gib(variant, 480, 832, 81, swapped)
                assert peak + vram.HEADROOM_GIB <= gib
                assert swapped == 0 or (
                    vram.peak_gib(variant, 480, 832, 81, swapped - 1) + vram.HEADROOM_GIB > gib
                )


def test_less_memory_or_more_frames_never_swaps_fewer_blocks() -> None:
    by_memory = [vram.blocks_to_swap(g * GIB, "fp8", 480, 832, 81) for g in (80, 24, 16, 12, 8)]
    assert by_memory == sorted(by_memory)
    by_frames = [vram.blocks_to_swap(16 * GIB, "fp8", 480, 832, f) for f in (33, 81, 161)]
    assert by_frames == sorted(by_frames)
    assert vram.blocks_to_swap(4 * GIB, "fp16", 720, 1280, 81) == vram.BLOCKS


def test_the_choice_is_left_to_the_user_and_made_only_for_a_cuda_device() -> None:
    workflow = workflows.load("steadydancer-pose")
    card = {"type": "cuda", "vram_total": 16 * GIB}
    chosen = vram.choose_block_swap(workflow.parameters, {}, "fp8", card)
    assert chosen == vram.blocks_to_swap(16 * GIB, "fp8", 480, 832, 33) > 0
    assert vram.choose_block_swap(workflow.parameters, {"block_swap": 3}, "fp8", card) is None
    assert vram.choose_block_swap(workflow.parameters, {}, "fp8", {"type": "cpu"}) is None
    bigger = vram.choose_block_swap(workflow.parameters, {"frames": 161}, "fp8", card)
    assert bigger is not None and bigger > chosen
    media = {"reference_image": "me.png", "pose_video": "pose.mp4"}
    prompt = workflows.render(workflow, {**media, "block_swap": chosen}, "fp8", "sdpa")
    assert prompt["23"]["inputs"]["blocks_to_swap"] == chosen
    assert prompt["16"]["inputs"]["block_swap_args"] == ["23", 0]
    assert workflows.load("cpu-smoke").parameters.get("block_swap") is None


def test_steadydancers_sequence_is_the_video_and_its_two_reference_frames() -> None:
    """The wrapper's SteadyDancer branch concatenates the reference image's and the reference
    pose's latent frame after the video's 21 at 81 frames: 23 frames of 30 x 52 tokens."""
    assert vram.tokens(480, 832, 81) == 21 * 30 * 52 == 32_760
    assert vram.sequence(480, 832, 81) == 23 * 30 * 52 == 35_880
    assert vram.sequence(480, 832, 33) - vram.tokens(480, 832, 33) == 2 * 30 * 52
