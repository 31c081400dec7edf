"""One person's keypoints in DWPose's OpenPose layout, kept as SteadyDancer's pipeline keeps them.

Coordinates are (x, y), normalised to the picture the detector saw: x by its width, y by
its height. Body: 18 OpenPose points (0 nose, 1 neck, 2-4 right arm, 5-7 left arm, 8-10
right leg, 11-13 left leg, 14-17 eyes and ears), always with the detector's coordinates -
a point it is unsure of keeps them and is only marked unseen, as the official code hides
it through its subset list; hands: 2 x 21 points and face: 68 points, -1 in both
coordinates where unseen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]
BODY_POINTS, HAND_POINTS, FACE_POINTS = 18, 21, 68


@dataclass
class Pose:
    body: Array
    """(18, 2)"""
    seen: NDArray[np.bool_]
    """(18,): which body points are drawn."""
    hands: Array
    """(2, 21, 2): the first two hands of the official list - one person's left then right
    hand; with several people, the first and second person's left hands."""
    face: Array
    """(1, 68, 2)"""

    def __post_init__(self) -> None:
        shapes = {
            "body": (self.body.shape, (BODY_POINTS, 2)),
            "seen": (self.seen.shape, (BODY_POINTS,)),
            "hands": (self.hands.shape, (2, HAND_POINTS, 2)),
            "face": (self.face.shape, (1, FACE_POINTS, 2)),
        }
        for name, (given, wanted) in shapes.items():
            if given != wanted:
                raise ValueError(f"pose {name} has shape {given}; expected {wanted}")

    def copy(self) -> Pose:
        return Pose(self.body.copy(), self.seen.copy(), self.hands.copy(), self.face.copy())

    def stretched(self, x_factor: float) -> Pose:
        """x multiplied by `x_factor` (to or from coordinates where x and y share a unit)."""
        out = self.copy()
        for part in (out.body, out.hands, out.face):
            part[..., 0] *= x_factor
        return out

    def shifted(self, offset: Array) -> Pose:
        return Pose(self.body + offset, self.seen.copy(), self.hands + offset, self.face + offset)
