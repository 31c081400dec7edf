"""SteadyDancer's pose path (docker/steadydancer/official_pose) against its official code.

tests/data/official_pose/steadydancer-866a721.json holds fixed keypoints (a reference and
four driving frames, with missing points) and what MCG-NJU/SteadyDancer's own functions
at commit 866a721 made of them: run_align_video_with_filterPose_translate_smooth (with
its detector replaced by one answering these keypoints and its video writer by a no-op)
and pose_aug_diff seeded with 7. The reimplementation must give the same numbers, to 1e-7
(the official path goes through OpenCV's affine helpers, which round differently).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from steadydancer.official_pose import guidance, negative_pose, pose_align
from steadydancer.official_pose.keypoints import Pose

DATA = json.loads(
    (Path(__file__).parent / "data" / "official_pose" / "steadydancer-866a721.json").read_text()
)


def pose(raw: dict[str, object]) -> Pose:
    return Pose.from_lists(raw["body"], raw["hands"], raw["face"])


def assert_same(ours: list[Pose], official: list[dict[str, object]]) -> None:
    assert len(ours) == len(official)
    for index, (mine, theirs) in enumerate(zip(ours, official, strict=True)):
        expected = pose(theirs)
        for part in ("body", "hands", "face"):
            np.testing.assert_allclose(
                getattr(mine, part),
                getattr(expected, part),
                atol=1e-7,
                err_msg=f"frame {index} {part}",
            )


def test_alignment_gives_the_official_numbers() -> None:
    ref_h, ref_w = DATA["reference_size"]
    video_h, video_w = DATA["video_size"]
    frames = [pose(raw) for raw in DATA["frames"]]
    aligned = pose_align.align(pose(DATA["reference"]), ref_w / ref_h, frames, video_w / video_h)
    assert_same(aligned, DATA["aligned"])


def test_alignment_moves_bones_not_the_neck_and_keeps_missing_points() -> None:
    ref_h, ref_w = DATA["reference_size"]
    video_h, video_w = DATA["video_size"]
    frames = [pose(raw) for raw in DATA["frames"]]
    reference = pose(DATA["reference"])
    aligned = pose_align.align(reference, ref_w / ref_h, frames, video_w / video_h)
    # The aligned first frame's neck is the reference's neck.
    np.testing.assert_allclose(aligned[0].body[1], reference.body[1], atol=1e-12)
    # Frame 2 lost its right ankle (body 10): it stays missing, before the common shift.
    assert frames[2].body[10].tolist() == [-1.0, -1.0]
    assert not np.allclose(aligned[2].body[10], aligned[1].body[10])


def test_alignment_without_a_neck_names_the_picture_that_shows_no_person() -> None:
    frames = [pose(raw) for raw in DATA["frames"]]
    reference = pose(DATA["reference"])
    nobody = reference.copy()
    nobody.body[1] = -1.0
    with pytest.raises(ValueError, match="no person found in the reference image"):
        pose_align.align(nobody, 0.5, frames, 0.5)
    lost = [frame.copy() for frame in frames]
    lost[1].body[1] = -1.0
    with pytest.raises(ValueError, match="no person found in driving frame 1"):
        pose_align.align(reference, 0.5, lost, 0.5, align_frame=1)
    assert len(pose_align.align(reference, 0.5, lost, 0.5)) == len(frames)


def test_missing_bones_fall_back_as_the_official_code_does() -> None:
    reference = pose(DATA["reference"])
    driving = pose(DATA["frames"][0]).copy()
    driving.body[[9, 10, 12, 13]] = reference.body[[9, 10, 12, 13]] * 0 + driving.body[8]
    scales = pose_align.bone_scales(reference, driving)
    assert np.isinf(scales["leg_upper"])
    finite = pose_align.finite_scales(scales)
    others = [v for k, v in scales.items() if not np.isinf(v)]
    assert finite["leg_upper"] == pytest.approx(sum(others) / len(others))
    both_missing = pose_align.bone_scales(driving, driving)
    assert both_missing["leg_upper"] == 1.0


def test_negative_pose_gives_the_official_numbers_for_a_seed() -> None:
    aligned = [pose(raw) for raw in DATA["aligned"]]
    assert negative_pose.draws(len(aligned), DATA["augment_seed"]) == [
        (d["stretch"], d["scale"]) for d in DATA["augment_draws"]
    ]
    assert_same(negative_pose.negative_poses(aligned, DATA["augment_seed"]), DATA["augmented"])


def test_negative_pose_keeps_the_neck_and_differs_by_seed() -> None:
    aligned = [pose(raw) for raw in DATA["aligned"]]
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
        Pose(np.zeros((18, 2)), np.zeros((1, 21, 2)), np.zeros((1, 68, 2)))
