"""SteadyDancer's pose alignment: the driving poses re-proportioned to the reference person.

As MCG-NJU/SteadyDancer's preprocess/pose_align.py does it: bone-length ratios between the
reference image's pose and one driving frame (default the first) are measured once, in
coordinates where x and y share a unit (x times the frame's width over height); every
driving frame's bones are then rescaled outward from its neck, each child point placed at
its moved parent plus the scaled original bone, the hands following the wrists and the
face points only moved; one constant shift (reference neck minus that frame's neck)
finally puts every frame where the reference stands, in the reference's normalised
coordinates. Body points the detector was unsure of take part with their coordinates
(they are only hidden when drawn); hand and face points it gave as -1 stay -1.
"""

from __future__ import annotations

import itertools
import math

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

    A ratio of two zero lengths is 1, as the official code sets NaN ratios; a bone of zero
    length only in the driving frame gives an infinite ratio (see finite_scales).
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


def finite_scales(scales: dict[str, float]) -> float:
    """The mean the official code computes for infinite ratios - and then never applies: its
    rescaling reads the ratios as they were, so an infinite one turns the bones it moves into
    NaN, later -1. Only when every ratio is infinite does the mean fail (a division by zero
    there), which is refused here in words."""
    finite = [scales[name] for name in SCALE_ORDER if not np.isinf(scales[name])]
    if not finite:
        raise ValueError(
            "every bone of the alignment frame has length zero while the reference's do not "
            f"(ratios {scales}): the driving person was not found there; choose another "
            "align_frame"
        )
    return sum(finite) / len(finite)


def _scaled(points: Array, centre: Array, scale: float) -> Array:
    """`points` scaled by `scale` about `centre`, through the matrix OpenCV's
    getRotationMatrix2D builds for angle 0 (so an infinite scale gives NaN, as there)."""
    alpha = math.cos(0.0) * scale
    beta = math.sin(0.0) * scale
    cx, cy = centre
    matrix = np.array(
        [
            [alpha, beta, (1 - alpha) * cx - beta * cy],
            [-beta, alpha, beta * cx + (1 - alpha) * cy],
        ]
    )
    scaled: Array = np.dot(points, matrix[:, :2].T) + matrix[:, 2]
    return scaled


def rescale(pose: Pose, scales: dict[str, float]) -> Pose:
    """One frame's bones rescaled from its neck; `pose` with x and y in one unit."""
    if any(np.isinf(value) for value in scales.values()):
        finite_scales(scales)
    s = scales
    body, hands = pose.body.copy(), pose.hands.copy()
    original = pose.body

    def child(point: int, parent: int, scale: float) -> None:
        moved = original[point] - original[parent] + body[parent]
        body[point] = _scaled(moved, body[parent], scale)

    # The neck point (1) stays; the nose and the shoulders move from it.
    body[0] = _scaled(original[0], body[1], s["neck"])
    for points, scale in (((14, 16), s["face_left"]), ((15, 17), s["face_right"])):
        moved = original[list(points)] - original[0] + body[0]
        body[list(points)] = _scaled(moved, body[0], scale)
    body[[2, 5]] = _scaled(original[[2, 5]], body[1], s["shoulder"])
    child(3, 2, s["arm_upper"])
    child(4, 3, s["arm_lower"])
    hands[1] = _scaled(pose.hands[1] - original[4] + body[4], body[4], s["hand"])
    child(6, 5, s["arm_upper"])
    child(7, 6, s["arm_lower"])
    hands[0] = _scaled(pose.hands[0] - original[7] + body[7], body[7], s["hand"])
    body[[8, 11]] = _scaled(original[[8, 11]], body[1], s["body_len"])
    child(9, 8, s["leg_upper"])
    child(10, 9, s["leg_lower"])
    child(12, 11, s["leg_upper"])
    child(13, 12, s["leg_lower"])
    return Pose(body, pose.seen.copy(), hands, pose.face.copy())


def keep_missing(aligned: Pose, detected: Pose) -> Pose:
    """Coordinates the detector gave as -1 are -1 again (each coordinate on its own), and
    NaN becomes -1, as the official code does (infinities become the largest floats there,
    numpy's nan_to_num)."""
    out = aligned.copy()
    for part, source in (
        (out.body, detected.body),
        (out.hands, detected.hands),
        (out.face, detected.face),
    ):
        part[source == -1.0] = -1.0
        part[...] = np.nan_to_num(part, nan=-1.0)
    return out


def align(
    reference: Pose,
    reference_ratio: float,
    frames: list[Pose],
    video_ratio: float,
    align_frame: int = 0,
) -> list[Pose]:
    """The driving `frames` aligned to `reference`, in the reference's normalised coordinates.

    `reference_ratio` is the width over height of the reference at its working size
    (wholebody.working_size), `video_ratio` the driving frames'; `align_frame` is the driving
    frame whose bones are measured against the reference; the frames before it are dropped,
    as the official code drops them. Unseen points count with the coordinates the detector
    gave them, as there.
    """
    if not frames:
        raise ValueError("no driving frames to align")
    if not 0 <= align_frame < len(frames):
        raise ValueError(f"align_frame {align_frame} is outside the {len(frames)} driving frames")
    ref = reference.stretched(reference_ratio)
    first = frames[align_frame].stretched(video_ratio)
    scales = bone_scales(ref, first)
    offset = ref.body[1] - first.body[1]
    out = []
    for detected in frames[align_frame:]:
        aligned = keep_missing(rescale(detected.stretched(video_ratio), scales), detected)
        out.append(aligned.shifted(offset).stretched(1.0 / reference_ratio))
    return out
