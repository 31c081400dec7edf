"""bench.pose_routes: the synthetic people and the official route's side of the comparison.

The ONNX route's side runs WanAnimatePreprocess's own code from its pinned tree (GitHub only)
with opencv and matplotlib, which the image has and this test environment does not; its
measured output is bench/comparisons/pose-routes.json.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench import pose_routes


def test_the_driving_person_is_built_differently_and_waves() -> None:
    reference, driving = pose_routes.people(5)
    assert reference.shape == (133, 3) and driving.shape == (5, 133, 3)
    ratios = pose_routes.bone_ratios(
        pose_routes.official_route(reference, driving[:1])[0][0].body,
        pose_routes.openpose(driving[0]).body,
    )
    assert ratios["shoulders"] > 1.5  # the reference is broader
    left_wrist_height = driving[:, 9, 1]
    assert np.all(np.diff(left_wrist_height) < 0)  # raised frame by frame
    assert set(driving[0, pose_routes.UNSURE_POINTS, 2]) == {pose_routes.UNSURE}


def test_the_official_route_gives_every_frame_the_reference_body_and_draws_no_face() -> None:
    reference, driving = pose_routes.people(4)
    reference_body = pose_routes.openpose(reference).body
    poses, frames, faceless = pose_routes.official_route(reference, driving)
    assert len(poses) == 4 and frames.shape == (4, 832, 480, 3)
    assert pose_routes.bone_ratios(poses[0].body, reference_body) == pytest.approx(
        dict.fromkeys(pose_routes.BONES, 1.0)
    )
    for pose in poses:
        np.testing.assert_allclose(pose.body[1], reference_body[1], atol=1e-12)
    assert np.array_equal(frames, faceless)
    assert 0.01 < pose_routes.drawn(frames).mean() < 0.1
