"""SteadyDancer's pose path (official_pose/, nodes/draw.py) against its official code.

tests/data/official_pose/ holds what MCG-NJU/SteadyDancer's preprocessing at 866a721 made of
raw whole-body detector outputs (bench/official_pose_oracle.py ran
pose_align_withdiffaug.py's run_align_video_with_filterPose_translate_smooth with its
detector's models answering those outputs; cases.json lists the cases: low scores, the
neck threshold, a missing arm in the alignment frame, nobody in the first frame, limbs
off the border, two people, an infinite bone ratio, 48 frames, several aspect ratios).
Each case's CASE.npz holds the raw outputs per detector call (pixels of the picture the
detector saw, and its size), what the official detector wrapper returned, the aligned and
augmented keypoints it drew and its random draws; the PNGs are its single.mp4 and
single_aug.mp4 frames before encoding. The port starts from the same raw outputs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from steadydancer.nodes import draw
from steadydancer.official_pose import guidance, negative_pose, pose_align, wholebody
from steadydancer.official_pose.keypoints import Pose

DATA = Path(__file__).parent / "data" / "official_pose"
CASES = json.loads((DATA / "cases.json").read_text())["cases"]
NAMES = [case["name"] for case in CASES]
ARRAYS = 1e-6
"""Normalised units (a millionth of the picture): the official arrays are float32."""
PIXELS = 0.999
"""Share of a frame's pixels that must be identical."""


@dataclass
class Run:
    case: dict[str, Any]
    recorded: Any
    detected: list[Pose]
    aligned: list[Pose]
    negative: list[Pose]


@cache
def run(name: str) -> Run:
    case = next(c for c in CASES if c["name"] == name)
    recorded = np.load(DATA / f"{name}.npz")
    detected = []
    for call in range(case["detector_calls"]):
        width, height = (int(v) for v in recorded[f"raw{call}_size"])
        detected.append(
            wholebody.to_openpose(
                recorded[f"raw{call}_keypoints"], recorded[f"raw{call}_scores"], width, height
            )
        )
    # Calls: the reference, the alignment frame for its bones, then it and every later frame.
    reference, first, *frames = detected
    # Frames before the alignment frame are dropped unmeasured: any pose stands in for them.
    frames = [first] * case["align_frame"] + frames
    work_width, work_height = wholebody.working_size(*case["reference_size"])
    video_width, video_height = case["video_size"]
    aligned = pose_align.align(
        reference, work_width / work_height, frames, video_width / video_height,
        case["align_frame"],
    )  # fmt: skip
    negative = negative_pose.negative_poses(aligned, case["seed"])
    return Run(case, recorded, detected, aligned, negative)


def assert_close(ours: list[Pose], recorded: Any, kind: str) -> None:
    assert len(ours) == len(recorded[f"{kind}_body"])
    for index, pose in enumerate(ours):
        for part, theirs in (
            ("body", recorded[f"{kind}_body"][index]),
            ("hands", recorded[f"{kind}_hands"][index][:2]),
            ("face", recorded[f"{kind}_faces"][index][:1]),
        ):
            np.testing.assert_allclose(
                getattr(pose, part), theirs, atol=ARRAYS, rtol=0, err_msg=f"{kind} {index} {part}"
            )
        np.testing.assert_array_equal(pose.seen, recorded[f"{kind}_subset"][index][0, :18] >= 0)


@pytest.mark.parametrize("name", NAMES)
def test_raw_detector_output_becomes_the_official_keypoints(name: str) -> None:
    """Neck, body order, visibility (body > 0.35, neck: both shoulders > 0.3, hands and face
    >= 0.35), normalisation, the hands' list - from the same 133 points and scores."""
    result = run(name)
    for call, pose in enumerate(result.detected):
        body = result.recorded[f"detected{call}_body"][:18]
        np.testing.assert_allclose(pose.body, body, atol=ARRAYS, rtol=0, err_msg=f"call {call}")
        subset = result.recorded[f"detected{call}_subset"][0, :18]
        np.testing.assert_array_equal(pose.seen, subset >= 0, err_msg=f"call {call}")
        hands = result.recorded[f"detected{call}_hands"][:2]
        np.testing.assert_allclose(pose.hands, hands, atol=ARRAYS, rtol=0)
        faces = result.recorded[f"detected{call}_faces"][:1]
        np.testing.assert_allclose(pose.face, faces, atol=ARRAYS, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_the_detector_sees_the_official_sizes(name: str) -> None:
    """The reference at its working size, then every picture short side 1024 in multiples
    of 64; frames drawn at twice the reference's working size."""
    result = run(name)
    case = result.case
    work = wholebody.working_size(*case["reference_size"])
    calls = range(len(result.detected))
    sizes = [tuple(int(v) for v in result.recorded[f"raw{c}_size"]) for c in calls]
    assert sizes[0] == wholebody.detect_size(*work)
    assert set(sizes[1:]) == {wholebody.detect_size(*case["video_size"])}
    assert case["drawn_size"] == [2 * work[0], 2 * work[1]]
    # The official code hands the detector RGB: the pictures were (B, G, R) = (10, 100, 200).
    assert case["detector_input_channel_means"] == [200.0, 100.0, 10.0]


@pytest.mark.parametrize("name", NAMES)
def test_alignment_gives_the_official_numbers(name: str) -> None:
    result = run(name)
    assert_close(result.aligned, result.recorded, "positive")


@pytest.mark.parametrize("name", NAMES)
def test_negative_pose_gives_the_official_numbers_for_a_seed(name: str) -> None:
    result = run(name)
    draws = negative_pose.draws(len(result.aligned), result.case["seed"])
    recorded = result.recorded["draws"].reshape(-1, 4)
    assert [(stretch, scale) for stretch, scale in draws] == [(d[3], d[2]) for d in recorded]
    assert_close(result.negative, result.recorded, "negative")


PICTURES = [
    (case["name"], index, kind)
    for case in CASES
    for index in case["pictures"]
    for kind in ("positive", "negative")
]


@pytest.mark.parametrize(("name", "index", "kind"), PICTURES)
def test_frames_are_the_official_pixels(name: str, index: int, kind: str) -> None:
    """Twice the working size, as single.mp4 / single_aug.mp4 hold them, and at the
    reference's size after generate_dancer.py's bicubic resize."""
    result = run(name)
    pose = (result.aligned if kind == "positive" else result.negative)[index]
    official = np.asarray(Image.open(DATA / f"{name}-{index:03d}-{kind}.png"))
    width, height = result.case["drawn_size"]
    ours = draw.canvas(pose, width, height)
    assert ours.shape == official.shape
    assert (ours == official).all(axis=-1).mean() >= PIXELS
    ref_width, ref_height = result.case["reference_size"]
    resized = Image.fromarray(official).resize((ref_width, ref_height), Image.Resampling.BICUBIC)
    small = draw.draw_pose(pose, ref_width, ref_height)
    assert (small == np.asarray(resized)).all(axis=-1).mean() >= PIXELS


def test_the_cases_cover_what_the_official_code_does_differently() -> None:
    """The recordings hold the situations the port used to get wrong."""
    scores = run("scores")
    reference = scores.detected[0]
    assert reference.seen[1] and not reference.seen[2]  # right shoulder at 0.31: neck, no shoulder
    assert scores.detected[1].seen[1] and not scores.detected[1].seen[5]  # left shoulder 0.32
    assert not scores.detected[3].seen[1]  # a shoulder at 0.29: no neck
    assert run("empty-first-frame").case["boxes_per_call"][1:3] == [0, 0]
    assert not run("empty-first-frame").detected[1].seen.any()
    assert not run("missing-arm").detected[1].seen[[5, 6, 7]].any()
    elbow, wrist = run("infinite-ratio").aligned[0].body[3:5]  # NaN, then -1 before the shift
    assert (elbow == wrist).all() and (elbow < 0).all()
    borders = run("borders").aligned
    assert max(p.body[p.seen, 0].max() for p in borders) > 1.0  # drawn off the right edge
    assert run("many-frames").case["frames"] == len(run("many-frames").aligned) == 48


def test_every_bone_of_zero_length_in_the_alignment_frame_is_refused_in_words() -> None:
    """Where the official code divides by zero, the port names the cause and the way out."""
    reference = run("scores").detected[0]
    flat = reference.copy()
    flat.body[:] = flat.body[1]
    with pytest.raises(ValueError, match="every bone of the alignment frame has length zero"):
        pose_align.align(reference, 0.5, [flat], 0.5)


def test_missing_bones_turn_into_missing_points_as_in_the_official_code() -> None:
    """An infinite ratio is used as it is (the official mean of the finite ones is computed
    and never applied): the bones it moves become NaN, then -1."""
    reference = run("scores").detected[0]
    driving = reference.copy()
    driving.body[9] = driving.body[8]
    scales = pose_align.bone_scales(reference, driving)
    assert np.isinf(scales["leg_upper"])
    aligned = pose_align.align(reference, 0.5, [driving], 0.5)[0]
    # -1 before the common shift (none here) and x back over the reference's 0.5.
    assert aligned.body[[9, 10, 12, 13]].tolist() == [[-2.0, -1.0]] * 4
    assert (aligned.body[[8, 11]] > 0).all()
    assert pose_align.bone_scales(driving, driving)["leg_upper"] == 1.0  # 0/0 counts as 1


def test_the_negative_pose_keeps_the_neck_and_differs_by_seed() -> None:
    aligned = run("many-frames").aligned[:5]
    one = negative_pose.negative_poses(aligned, 1)
    again = negative_pose.negative_poses(aligned, 1)
    other = negative_pose.negative_poses(aligned, 2)
    for a, b, c, base in zip(one, again, other, aligned, strict=True):
        np.testing.assert_array_equal(a.body, b.body)
        np.testing.assert_allclose(a.body[1], base.body[1], atol=1e-12)
        assert not np.allclose(a.body, c.body)


def test_guidance_is_the_official_formula_inside_its_window_only() -> None:
    rng = np.random.default_rng(0)
    cond, uncond_context, uncond_condition = (rng.standard_normal((16, 9, 8, 8)) for _ in range(3))
    g = guidance.PoseGuidance(text_scale=5.0, pose_scale=1.5, start=0.1, end=0.4)
    text_only = uncond_context + 5.0 * (cond - uncond_context)
    with_pose = text_only + 1.5 * (cond - uncond_condition)
    windows = [g.in_window(i, 10) for i in range(10)]
    # Strict on both ends: 1/10 and 4/10 are outside, as in the official loop.
    assert windows == [False, False, True, True, False, False, False, False, False, False]
    for index in range(10):
        got = g.combine(cond, uncond_context, uncond_condition, index, 10)
        np.testing.assert_allclose(got, with_pose if windows[index] else text_only)
    assert np.allclose(g.combine(cond, uncond_context, None, 0, 10), text_only)
    with pytest.raises(ValueError, match="step 2 of 10 is in the pose window"):
        g.combine(cond, uncond_context, None, 2, 10)
    with pytest.raises(ValueError, match=r"window 0\.5\.\.0\.2"):
        guidance.PoseGuidance(start=0.5, end=0.2)


def test_a_pose_of_the_wrong_shape_is_named() -> None:
    with pytest.raises(
        ValueError, match=r"pose hands has shape \(1, 21, 2\); expected \(2, 21, 2\)"
    ):
        Pose(np.zeros((18, 2)), np.ones(18, bool), np.zeros((1, 21, 2)), np.zeros((1, 68, 2)))


@pytest.mark.parametrize(
    ("points", "scores", "message"),
    [
        (np.zeros((1, 17, 2)), np.zeros((1, 17)), r"shape \(people, 133, 2\).*\(1, 17, 2\)"),
        (np.zeros((0, 133, 2)), np.zeros((0, 133)), r"one person or more, got \(0, 133, 2\)"),
        (np.zeros((1, 133, 2)), np.zeros((2, 133)), r"scores of shape \(1, 133\), got \(2, 133\)"),
        (np.full((1, 133, 2), np.nan), np.ones((1, 133)), "not finite numbers"),
    ],
)
def test_bad_detector_output_is_named(points: Any, scores: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        wholebody.to_openpose(points, scores, 64, 64)


def test_the_docs_picture_is_current_and_its_halves_agree(tmp_path: Path) -> None:
    """docs/pose.md's side-by-side picture: remade from the recordings, the same file; the
    official frame (left) and the port's (right) identical pixel for pixel."""
    from bench import official_pose_oracle

    picture = DATA.parents[2] / "docs" / "pose-official-vs-port.png"
    remade = tmp_path / "side.png"
    official_pose_oracle.side_by_side(DATA, remade)
    committed = np.asarray(Image.open(picture))
    assert np.array_equal(np.asarray(Image.open(remade)), committed)
    width = (committed.shape[1] - 8) // 2
    assert np.array_equal(committed[:, :width], committed[:, width + 8 :])
