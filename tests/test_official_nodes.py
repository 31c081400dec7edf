"""The official pose pack (docker/steadydancer/nodes) and the patch that lets WanVideoWrapper's
sampler run its guidance: nodes on the official numbers, drawing, detector output conversion,
the patch's pin, and how the build installs both."""

from __future__ import annotations

import os
import pickle
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from steadydancer.nodes import NODE_CLASS_MAPPINGS, detect, draw, pack
from steadydancer.official_pose.keypoints import Pose

from ci import paths, pins
from ci.layers import comfyui
from ci.layers.runtime import OFFICIAL_POSE_IMPORTS
from tests.dagger_offline import REPO, execs, ops
from tests.test_build_chain import build
from tests.test_official_pose import DATA, assert_same, pose

PATCH = REPO / comfyui.PATCHES["ComfyUI-WanVideoWrapper"]
WRAPPER = next(p for p in pins.NODE_PACKS if p.name == "ComfyUI-WanVideoWrapper")


def keypoints(raw: list[dict[str, object]], size: list[int]) -> dict[str, object]:
    height, width = size
    return pack.keypoints([pose(item) for item in raw], width, height)


def test_the_align_node_gives_the_official_numbers_in_the_reference_frame() -> None:
    reference = keypoints([DATA["reference"]], DATA["reference_size"])
    driving = keypoints(DATA["frames"], DATA["video_size"])
    aligned = pack.align_keypoints(reference, driving, 0)
    assert_same(aligned["poses"], DATA["aligned"])
    assert (aligned["height"], aligned["width"]) == tuple(DATA["reference_size"])


def test_the_align_node_wants_one_reference_pose() -> None:
    two = keypoints(DATA["frames"][:2], DATA["video_size"])
    with pytest.raises(ValueError, match="reference_pose holds 2 poses"):
        pack.align_keypoints(two, two, 0)


def test_the_negative_node_is_the_official_augmentation_and_its_seed_decides() -> None:
    aligned = keypoints(DATA["aligned"], DATA["reference_size"])
    value = pack.negative_keypoints(aligned, DATA["augment_seed"])
    assert_same(value["poses"], DATA["augmented"])
    assert (value["height"], value["width"]) == tuple(DATA["reference_size"])
    first = pack.negative_keypoints(aligned, 1)["poses"]
    again = pack.negative_keypoints(aligned, 1)["poses"]
    other = pack.negative_keypoints(aligned, 2)["poses"]
    assert all(np.array_equal(a.body, b.body) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0].body, other[0].body)
    assert pack.SteadyDancerNegativePose.RETURN_TYPES == (pack.POSES, "IMAGE")


def sdancer_embeds(negative: bool = True) -> dict[str, object]:
    return {
        "target_shape": (16, 9, 60, 104),
        "sdancer_embeds": {"cond_pos": "pose", "cond_neg": "negative" if negative else None},
    }


def test_the_guidance_node_asks_the_sampler_for_the_three_passes() -> None:
    embeds = sdancer_embeds()
    (guided,) = pack.SteadyDancerPoseGuidance().guide(embeds, 1.5, 0.1, 0.4)
    assert guided["sdancer_embeds"]["official_guidance"] == {
        "pose_scale": 1.5, "start": 0.1, "end": 0.4
    }  # fmt: skip
    assert guided["target_shape"] == embeds["target_shape"]
    assert "official_guidance" not in embeds["sdancer_embeds"]  # the input is left as it was


@pytest.mark.parametrize(
    ("embeds", "window", "message"),
    [
        ({"target_shape": 1}, (0.1, 0.4), "connect WanVideoAddSteadyDancerEmbeds"),
        (sdancer_embeds(negative=False), (0.1, 0.4), "needs the negative pose"),
        (sdancer_embeds(), (0.5, 0.2), "must satisfy 0 <= start <= end <= 1"),
    ],
)
def test_the_guidance_node_refuses_in_words(
    embeds: dict[str, object], window: tuple[float, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        pack.with_pose_guidance(embeds, 1.5, *window)


def test_every_node_declares_what_comfyui_reads() -> None:
    for name, node in NODE_CLASS_MAPPINGS.items():
        inputs = node.INPUT_TYPES()
        assert set(inputs) <= {"required", "optional"}, name
        assert len(node.RETURN_TYPES) == len(node.RETURN_NAMES), name
        assert callable(getattr(node, node.FUNCTION)), name
        assert node.CATEGORY.startswith("SteadyDancer"), name


def colour_at(frame: np.ndarray, x: float, y: float) -> tuple[int, ...]:
    return tuple(int(v) for v in frame[round(y), round(x)])


def test_limbs_are_drawn_at_sixty_percent_with_full_colour_joints() -> None:
    body = np.full((18, 2), -1.0)
    body[1] = (0.5, 0.2)  # neck
    body[2] = (0.3, 0.2)  # right shoulder: limb 0, neck -> right shoulder
    empty = Pose(body, np.full((2, 21, 2), -1.0), np.full((1, 68, 2), -1.0))
    frame = draw.draw_pose(empty, 200, 100)
    assert frame.shape == (100, 200, 3) and frame.dtype == np.uint8
    assert colour_at(frame, 80, 20) == tuple(int(c * 0.6) for c in draw.COLORS[0])
    assert colour_at(frame, 100, 20) == draw.COLORS[1]  # the neck joint
    assert colour_at(frame, 60, 20) == draw.COLORS[2]  # the shoulder joint
    assert colour_at(frame, 80, 60) == (0, 0, 0)
    # A limb with a missing end is not drawn; a point alone is.
    body[2] = (-1.0, -1.0)
    frame = draw.draw_pose(Pose(body, empty.hands, empty.face), 200, 100)
    assert colour_at(frame, 80, 20) == (0, 0, 0) and colour_at(frame, 100, 20) == draw.COLORS[1]


def test_hands_are_hue_coloured_edges_with_points_and_the_face_is_not_drawn() -> None:
    hands = np.full((2, 21, 2), -1.0)
    hands[0, 0] = (0.2, 0.5)
    hands[0, 1] = (0.6, 0.5)  # edge 0: hue 0, red
    face = np.full((1, 68, 2), 0.9)
    frame = draw.draw_pose(Pose(np.full((18, 2), -1.0), hands, face), 100, 100)
    assert colour_at(frame, 40, 50) == (255, 0, 0)
    assert colour_at(frame, 20, 50) == (0, 0, 255)
    assert colour_at(frame, 90, 90) == (0, 0, 0)
    assert draw.draw_poses([Pose(np.full((18, 2), -1.0), hands, face)] * 3, 100, 100).shape == (
        3, 100, 100, 3
    )  # fmt: skip


def test_detector_output_becomes_openpose_keypoints() -> None:
    """133 COCO whole-body points -> 18 body (neck added, feet dropped), 2 x 21 hands, 68 face."""
    width, height = 400, 200
    points = np.stack([np.arange(133) * 2.0, np.arange(133) * 1.0], axis=1)
    scores = np.full(133, 0.9)
    scores[9] = 0.34  # left wrist (OpenPose 7) under the official 0.35
    scores[95] = 0.2  # a left-hand point
    found = detect.to_openpose(points, scores, width, height)
    np.testing.assert_allclose(found.body[0], points[0] / (width, height))
    np.testing.assert_allclose(found.body[1], (points[5] + points[6]) / 2 / (width, height))
    np.testing.assert_allclose(found.body[2], points[6] / (width, height))  # right shoulder
    np.testing.assert_allclose(found.body[17], points[3] / (width, height))  # left ear
    assert found.body[7].tolist() == [-1.0, -1.0]
    np.testing.assert_allclose(found.hands[0, 0], points[91] / (width, height))
    np.testing.assert_allclose(found.hands[1, 0], points[112] / (width, height))
    assert found.hands[0, 4].tolist() == [-1.0, -1.0]
    np.testing.assert_allclose(found.face[0, 0], points[23] / (width, height))
    # The neck needs both shoulders above 0.3.
    scores[5] = 0.25
    assert detect.to_openpose(points, scores, width, height).body[1].tolist() == [-1.0, -1.0]
    with pytest.raises(ValueError, match="expected 133 whole-body points"):
        detect.to_openpose(points[:17], scores[:17], width, height)


def test_frames_are_resized_to_a_short_side_of_1024() -> None:
    assert detect.resized(np.zeros((480, 832, 3), np.uint8)).shape == (1024, 1775, 3)


def test_the_detector_configs_are_the_ones_mmdet_and_mmpose_ship() -> None:
    """Checked against the pinned wheels' file lists where they are installed (the image)."""
    assert detect.DETECTOR_CONFIG[1].endswith("yolox_l_8xb8-300e_coco.py")
    assert "384x288" in detect.POSE_CONFIG[1]
    try:
        found = [
            Path(detect.config_path(*config)).is_file()
            for config in (detect.DETECTOR_CONFIG, detect.POSE_CONFIG)
        ]
    except ModuleNotFoundError:
        pytest.skip("mmdet and mmpose are not installed here (they are in the image's lock)")
    assert found == [True, True]


def test_the_detector_checkpoints_are_where_the_catalog_puts_them() -> None:
    from steadydancer import catalog

    assert catalog.FILES["dwpose-l"].target == detect.POSE_CHECKPOINT
    assert catalog.FILES["yolox-l"].target == detect.DETECTOR_CHECKPOINT


def test_the_patch_names_the_wrapper_commit_it_was_made_for() -> None:
    """A pin bump fails here until the patch is remade (and checked) for the new commit."""
    header = PATCH.read_text().split("diff --git", 1)[0]
    assert re.findall(r"\b[0-9a-f]{40}\b", header) == [WRAPPER.commit]
    changed = re.findall(r"^diff --git a/(\S+)", PATCH.read_text(), re.MULTILINE)
    assert changed == ["nodes_sampler.py", "steadydancer/nodes.py"]


def test_the_patch_applies_to_the_pinned_wrapper() -> None:
    """Needs the pinned tree (GitHub only): STEADYDANCER_REPLAY_TREES/ComfyUI-WanVideoWrapper."""
    trees = os.environ.get("STEADYDANCER_REPLAY_TREES")
    tree = Path(trees) / WRAPPER.name if trees else None
    if tree is None or not tree.is_dir():
        pytest.skip("STEADYDANCER_REPLAY_TREES names no ComfyUI-WanVideoWrapper tree at its pin")
    result = subprocess.run(
        ["git", "-C", str(tree), "apply", "--check", "--verbose", str(PATCH)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Checking patch nodes_sampler.py" in result.stdout + result.stderr


def test_the_nodes_layer_patches_the_wrapper_and_installs_the_pack() -> None:
    chain = ops(build())
    wrapper_dir = f"{paths.CUSTOM_NODES_DIR}/{WRAPPER.name}"
    copied = [
        i for i, (n, a) in enumerate(chain) if n == "withDirectory" and a.get("path") == wrapper_dir
    ]
    applied = [
        i for i, (n, a) in enumerate(chain)
        if n == "withExec" and a["args"][:4] == ["git", "-C", wrapper_dir, "apply"]
    ]  # fmt: skip
    installed = [
        i for i, (n, a) in enumerate(chain)
        if n == "withDirectory"
        and a.get("path") == f"{paths.CUSTOM_NODES_DIR}/{comfyui.OFFICIAL_POSE_PACK}"
    ]  # fmt: skip
    assert len(copied) == len(applied) == len(installed) == 1
    assert copied[0] < applied[0] < installed[0]
    checks = [args for args in execs(build()) if "steadydancer.import_check" in args]
    assert checks[-1][-len(OFFICIAL_POSE_IMPORTS) :] == list(OFFICIAL_POSE_IMPORTS)


def test_the_pack_folder_holds_only_the_pack() -> None:
    names = sorted(p.name for p in (REPO / "docker/steadydancer/nodes").iterdir())
    assert [n for n in names if n != "__pycache__"] == [
        "__init__.py",
        "detect.py",
        "draw.py",
        "example_workflows",
        "pack.py",
    ]


def test_an_unreadable_checkpoint_is_named_with_the_way_out(tmp_path: Path) -> None:
    """An empty file fails inside torch.load as it fails inside pickle: EOFError."""
    checkpoint = tmp_path / "yolox.pth"
    checkpoint.write_bytes(b"")
    with pytest.raises(RuntimeError) as raised, detect.readable(checkpoint, "yolox-l"):
        pickle.load(checkpoint.open("rb"))
    assert str(raised.value) == (
        f"{checkpoint} (0 bytes) is not a readable checkpoint (EOFError: Ran out of input): "
        "delete it and fetch it again (catalog file yolox-l)"
    )
