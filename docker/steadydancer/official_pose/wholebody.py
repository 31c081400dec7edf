"""From the whole-body detector's raw output to SteadyDancer's OpenPose keypoints, and the
picture sizes its preprocessing works at.

As MCG-NJU/SteadyDancer's preprocess/pose/script/wholebody.py and dwpose.py do it (at
866a721): the 133 COCO-WholeBody points of every person (pixels of the picture the
detector saw) get a neck, the mean of the two shoulders' coordinates, shown when both
shoulder scores exceed 0.3; the body is reordered to OpenPose's 18 points and keeps its
coordinates, a body point shown when its score exceeds 0.35; hand and face points scored
under 0.35 become -1; feet are dropped; x is divided by the picture's width and y by its
height. The body and face are the first person's; the hands are the first two of the
list of every person's left hand followed by every person's right hand.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from steadydancer.official_pose.keypoints import Pose

WHOLEBODY_POINTS = 133
NECK_SCORE = 0.3
POINT_SCORE = 0.35
DETECT_SHORT_SIDE = 1024
"""dwpose.py's detect_resolution default, which pose_align.py keeps."""
WORKING_AREA = 1024 * 576
"""pose_align.py's max_area: the reference is measured at this area."""
MMPOSE_ORDER = (17, 6, 8, 10, 7, 9, 12, 14, 16, 13, 15, 2, 1, 4, 3)
OPENPOSE_ORDER = (1, 2, 3, 4, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16, 17)
"""After the neck is inserted at 17, OpenPose point OPENPOSE_ORDER[i] is MMPOSE_ORDER[i]."""
FACE = slice(24, 92)
LEFT_HANDS = slice(92, 113)
RIGHT_HANDS = slice(113, 134)


def to_openpose(points: NDArray[np.floating[Any]], scores: NDArray[np.floating[Any]],
                width: int, height: int) -> Pose:  # fmt: skip
    """People's 133 whole-body points (people, 133, 2) in pixels of a `width` x `height`
    picture and their scores (people, 133) -> the Pose SteadyDancer's pipeline draws."""
    if points.ndim != 3 or points.shape[1:] != (WHOLEBODY_POINTS, 2) or len(points) == 0:
        raise ValueError(
            f"expected whole-body points of shape (people, 133, 2) with one person or more, "
            f"got {points.shape}"
        )
    if scores.shape != points.shape[:2]:
        raise ValueError(f"expected scores of shape {points.shape[:2]}, got {scores.shape}")
    if not (np.isfinite(points).all() and np.isfinite(scores).all()):
        raise ValueError(
            "the pose model returned coordinates or scores that are not finite numbers "
            "(the official code stops on them when it draws): check the detector's weights"
        )
    if width <= 0 or height <= 0:
        raise ValueError(f"picture size {width}x{height}: both sides must be positive")
    xy = points.astype(np.float64)
    score = scores.astype(np.float64)
    neck = xy[:, [5, 6]].mean(axis=1)
    neck_score = ((score[:, 5] > NECK_SCORE) & (score[:, 6] > NECK_SCORE)).astype(np.float64)
    xy = np.insert(xy, 17, neck, axis=1)
    score = np.insert(score, 17, neck_score, axis=1)
    xy[:, OPENPOSE_ORDER] = xy[:, MMPOSE_ORDER]
    score[:, OPENPOSE_ORDER] = score[:, MMPOSE_ORDER]
    xy[..., 0] /= float(width)
    xy[..., 1] /= float(height)
    body = xy[0, :18].copy()
    seen = score[0, :18] > POINT_SCORE
    xy[score < POINT_SCORE] = -1.0
    hands = np.vstack([xy[:, LEFT_HANDS], xy[:, RIGHT_HANDS]])[:2]
    return Pose(body, seen, hands, xy[:1, FACE].copy())


def detect_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) the detector sees: the short side scaled to 1024, then each side
    rounded to a multiple of 64 (dwpose.py's resize_image)."""
    k = float(DETECT_SHORT_SIDE) / min(float(height), float(width))
    return int(np.round(width * k / 64.0)) * 64, int(np.round(height * k / 64.0)) * 64


def upscales(width: int, height: int) -> bool:
    """Whether resize_image enlarges the picture (bicubic) rather than shrinks it (area)."""
    return float(DETECT_SHORT_SIDE) / min(float(height), float(width)) > 1


def working_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) at which pose_align.py measures a `width` x `height` reference: its
    aspect at an area of 1024 x 576, each side a multiple of 16."""
    if width <= 0 or height <= 0:
        raise ValueError(f"reference size {width}x{height}: both sides must be positive")
    aspect = height / width
    return (
        round(math.sqrt(WORKING_AREA / aspect) // 16) * 16,
        round(math.sqrt(WORKING_AREA * aspect) // 16) * 16,
    )
