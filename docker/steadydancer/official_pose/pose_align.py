"""SteadyDancer's pose alignment: the driving poses re-proportioned to the reference person.

As MCG-NJU/SteadyDancer's preprocess/pose_align.py does it: bone-length ratios between the
reference image's pose and one driving frame (default the first) are measured once, in
coordinates where x and y share a unit (x times the frame's width over height); every
driving frame's bones are then rescaled outward from its neck, each child point placed at
its moved parent plus the scaled original bone, the hands following the wrists and the
face points only moved; one constant shift (reference neck minus that frame's neck)
finally puts every frame where the reference stands, in the reference's normalised
coordinates. Points the detector missed stay missing.
"""

from __future__ import annotations

import itertools

import numpy as np

from steadydancer.official_pose.keypoints import Array, Pose

SCALE_ORDER = (
    "neck",
    "face_left",
    "face_right",
    "shoulder",
    "arm_upper",
    "arm_lower",
    "hand",
    "body_len",
    "leg_upper",
    "leg_lower",
)
"""The ratios, in the order the official code averages them to stand in for infinite ones."""


def _length(pose: Array, a: int, b: int) -> float:
    return float(np.linalg.norm(pose[a] - pose[b]))


def _ratio(reference: float, driving: float) -> float:
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.float64(reference) / np.float64(driving))


def bone_scales(reference: Pose, driving: Pose) -> dict[str, float]:
    """Reference-over-driving length of each bone group; both poses with x and y in one unit.

    A ratio of two zero lengths (a bone missing in both) is 1, as the official code sets
    NaN ratios; a bone missing only in the driving frame gives an infinite ratio, replaced
    at alignment time by the mean of the finite ones.
    """
    ref, drv = reference.body, driving.body

    def both(*pairs: tuple[int, int]) -> float:
        ratios = [_ratio(_length(ref, a, b), _length(drv, a, b)) for a, b in pairs]
        return sum(ratios) / len(ratios)

    def path(*points: int) -> float:
        def along(pose: Array) -> float:
            return sum(_length(pose, a, b) for a, b in itertools.pairwise(points))

        return _ratio(along(ref), along(drv))

    def torso(pose: Array) -> float:
        return float(np.linalg.norm(pose[1] - (pose[8] + pose[11]) / 2))

    scales = {
        "neck": both((0, 1)),
        "face_left": path(16, 14, 0),
        "face_right": path(17, 15, 0),
        "shoulder": both((2, 5)),
        "arm_upper": both((2, 3), (5, 6)),
        "arm_lower": both((3, 4), (6, 7)),
    }
    # The official hand ratio averages no finger (its loop runs zero times): the arms decide.
    scales["hand"] = (scales["arm_upper"] + scales["arm_lower"]) / 2
    scales["body_len"] = _ratio(torso(ref), torso(drv))
    scales["leg_upper"] = both((8, 9), (11, 12))
    scales["leg_lower"] = both((9, 10), (12, 13))
    return {name: 1.0 if np.isnan(value) else value for name, value in scales.items()}


def finite_scales(scales: dict[str, float]) -> dict[str, float]:
    finite = [scales[name] for name in SCALE_ORDER if not np.isinf(scales[name])]
    mean = sum(finite) / len(finite) if finite else 1.0
    return {name: mean if np.isinf(value) else value for name, value in scales.items()}


def rescale(pose: Pose, scales: dict[str, float]) -> Pose:
    """One frame's bones rescaled from its neck; `pose` with x and y in one unit."""
    s = finite_scales(scales)
    body, hands = pose.body.copy(), pose.hands.copy()
    original = pose.body

    def child(point: int, parent: int, scale: float) -> None:
        body[point] = body[parent] + scale * (original[point] - original[parent])

    # The neck point (1) stays; the nose and the shoulders move from it.
    body[0] = body[1] + s["neck"] * (original[0] - original[1])
    for point in (14, 16):
        body[point] = body[0] + s["face_left"] * (original[point] - original[0])
    for point in (15, 17):
        body[point] = body[0] + s["face_right"] * (original[point] - original[0])
    for point in (2, 5):
        body[point] = body[1] + s["shoulder"] * (original[point] - original[1])
    child(3, 2, s["arm_upper"])
    child(4, 3, s["arm_lower"])
    hands[1] = body[4] + s["hand"] * (pose.hands[1] - original[4])
    child(6, 5, s["arm_upper"])
    child(7, 6, s["arm_lower"])
    hands[0] = body[7] + s["hand"] * (pose.hands[0] - original[7])
    for point in (8, 11):
        body[point] = body[1] + s["body_len"] * (original[point] - original[1])
    child(9, 8, s["leg_upper"])
    child(10, 9, s["leg_lower"])
    child(12, 11, s["leg_upper"])
    child(13, 12, s["leg_lower"])
    return Pose(body, hands, pose.face.copy())


def keep_missing(aligned: Pose, detected: Pose) -> Pose:
    """Coordinates the detector gave as -1 are -1 again (each coordinate on its own)."""
    out = aligned.copy()
    for part, source in (
        (out.body, detected.body),
        (out.hands, detected.hands),
        (out.face, detected.face),
    ):
        part[source == -1.0] = -1.0
        np.nan_to_num(part, copy=False, nan=-1.0)
    return out


def align(
    reference: Pose,
    reference_ratio: float,
    frames: list[Pose],
    video_ratio: float,
    align_frame: int = 0,
) -> list[Pose]:
    """The driving `frames` aligned to `reference`, in the reference's normalised coordinates.

    `reference_ratio` and `video_ratio` are each picture's width over height;
    `align_frame` is the driving frame whose bones are measured against the reference.
    """
    if not frames:
        raise ValueError("no driving frames to align")
    if not 0 <= align_frame < len(frames):
        raise ValueError(f"align_frame {align_frame} is outside the {len(frames)} driving frames")
    # Everything is measured from the neck: without it the numbers would be noise.
    if (reference.body[1] == -1.0).any():
        raise ValueError(
            "no person found in the reference image (its neck is missing): give an image "
            "where one person's head and shoulders are in view"
        )
    if (frames[align_frame].body[1] == -1.0).any():
        raise ValueError(
            f"no person found in driving frame {align_frame} (its neck is missing): choose "
            "an align_frame where the person's head and shoulders are in view"
        )
    ref = reference.stretched(reference_ratio)
    first = frames[align_frame].stretched(video_ratio)
    scales = bone_scales(ref, first)
    offset = ref.body[1] - first.body[1]
    out = []
    for detected in frames[align_frame:]:
        aligned = keep_missing(rescale(detected.stretched(video_ratio), scales), detected)
        out.append(aligned.shifted(offset).stretched(1.0 / reference_ratio))
    return out
