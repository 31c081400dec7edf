"""Pose frames drawn in the OpenPose style SteadyDancer's pipeline feeds its model.

Body limbs are filled ellipses (4 px wide, colour at 60 %) between joints with round
joints of radius 4, hands are 2 px edges coloured around the hue circle with points of
(0, 0, 255) (OpenCV's red, blue in these RGB frames), and the face is not drawn - as the
official preprocessing draws them. Drawn with Pillow on numpy arrays, so the same code
runs in the image and in the tests.
"""

from __future__ import annotations

import colorsys
import math

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw

from steadydancer.official_pose.keypoints import Pose

LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)  # fmt: skip
"""OpenPose's 17 limbs, as pairs of body points."""
COLORS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)  # fmt: skip
"""One colour per body point; limb i takes colour i."""
HAND_EDGES = (
    (0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (0, 9), (9, 10),
    (10, 11), (11, 12), (0, 13), (13, 14), (14, 15), (15, 16), (0, 17), (17, 18), (18, 19),
    (19, 20),
)  # fmt: skip
STICK_WIDTH = 4
JOINT_RADIUS = 4
HAND_POINT_RADIUS = 4


def _found(point: NDArray[np.float64]) -> bool:
    return bool(np.all(point >= 0))


def _limb(draw: ImageDraw.ImageDraw, a: tuple[float, float], b: tuple[float, float],
          color: tuple[int, int, int]) -> None:  # fmt: skip
    """A filled ellipse from a to b, STICK_WIDTH across: OpenPose's limb."""
    (x1, y1), (x2, y2) = a, b
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    half = math.hypot(x2 - x1, y2 - y1) / 2
    angle = math.atan2(y2 - y1, x2 - x1)
    cos, sin = math.cos(angle), math.sin(angle)
    outline = []
    for degrees in range(0, 360, 10):
        t = math.radians(degrees)
        ex, ey = half * math.cos(t), STICK_WIDTH * math.sin(t)
        outline.append((cx + ex * cos - ey * sin, cy + ex * sin + ey * cos))
    draw.polygon(outline, fill=tuple(int(c * 0.6) for c in color))


def _dot(draw: ImageDraw.ImageDraw, x: float, y: float, radius: int,
         color: tuple[int, int, int]) -> None:  # fmt: skip
    draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=color)


def draw_pose(pose: Pose, width: int, height: int) -> NDArray[np.uint8]:
    """One RGB frame (height, width, 3) with the pose drawn on black."""
    canvas = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(canvas)
    body = pose.body * (width, height)
    for index, (a, b) in enumerate(LIMBS):
        if _found(pose.body[a]) and _found(pose.body[b]):
            _limb(draw, tuple(body[a]), tuple(body[b]), COLORS[index])
    for index, point in enumerate(pose.body):
        if _found(point):
            _dot(draw, body[index][0], body[index][1], JOINT_RADIUS, COLORS[index])
    for hand in pose.hands:
        pixels = hand * (width, height)
        for index, (a, b) in enumerate(HAND_EDGES):
            if _found(hand[a]) and _found(hand[b]):
                red, green, blue = colorsys.hsv_to_rgb(index / len(HAND_EDGES), 1.0, 1.0)
                color = (int(red * 255), int(green * 255), int(blue * 255))
                draw.line([tuple(pixels[a]), tuple(pixels[b])], fill=color, width=2)
        for index, point in enumerate(hand):
            if _found(point):
                _dot(draw, pixels[index][0], pixels[index][1], HAND_POINT_RADIUS, (0, 0, 255))
    return np.asarray(canvas, dtype=np.uint8)


def draw_poses(poses: list[Pose], width: int, height: int) -> NDArray[np.uint8]:
    """Frames (count, height, width, 3)."""
    return np.stack([draw_pose(pose, width, height) for pose in poses])
