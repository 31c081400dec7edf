"""Pose frames drawn as SteadyDancer's preprocessing draws the ones its model was trained on.

As MCG-NJU/SteadyDancer's preprocess/pose/script/util.py and pose_align.py do it (at
866a721), with the same OpenCV calls: on a black BGR canvas twice the reference's working
size, each of 17 limbs whose two body points are shown is a filled ellipse 4 px across in
its palette colour, the whole canvas is then dimmed to 60 %, each shown body point is a
disc of radius 4; hand edges are 2 px lines coloured around the hue circle and hand
points red discs of radius 4, drawn where both pixel coordinates are at least 1; the face
is not drawn. Limbs run off the canvas where their points lie outside it (OpenCV clips).
The canvas is turned to RGB, and generate_dancer.py's bicubic resize (Pillow) brings it
to the picture's size.
"""

from __future__ import annotations

import colorsys
import math

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from steadydancer.official_pose.keypoints import Pose
from steadydancer.official_pose.wholebody import working_size

LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)  # fmt: skip
"""OpenPose's 17 limbs, as pairs of body points; limb i takes colour i."""
COLORS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)  # fmt: skip
"""The official palette, written on a BGR canvas: (255, 0, 0) is blue in the RGB frames."""
HAND_EDGES = (
    (0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (0, 9), (9, 10),
    (10, 11), (11, 12), (0, 13), (13, 14), (14, 15), (15, 16), (0, 17), (17, 18), (18, 19),
    (19, 20),
)  # fmt: skip
HAND_POINT = (0, 0, 255)
"""BGR red."""
STICK_WIDTH = 4
JOINT_RADIUS = 4
HAND_POINT_RADIUS = 4
HAND_EDGE_WIDTH = 2
LIMB_DIMMING = 0.6
EPS = 0.01
DRAW_SCALE = 2
"""pose_align.py draws at twice the reference's working size."""


def _bodies(canvas: NDArray[np.uint8], pose: Pose) -> NDArray[np.uint8]:
    height, width = canvas.shape[:2]
    for index, (a, b) in enumerate(LIMBS):
        if not (pose.seen[a] and pose.seen[b]):
            continue
        ys = pose.body[[a, b], 0] * float(width)
        xs = pose.body[[a, b], 1] * float(height)
        mid_x, mid_y = np.mean(xs), np.mean(ys)
        length = ((xs[0] - xs[1]) ** 2 + (ys[0] - ys[1]) ** 2) ** 0.5
        angle = math.degrees(math.atan2(xs[0] - xs[1], ys[0] - ys[1]))
        polygon = cv2.ellipse2Poly(
            (int(mid_y), int(mid_x)), (int(length / 2), STICK_WIDTH), int(angle), 0, 360, 1
        )
        cv2.fillConvexPoly(canvas, np.asarray(polygon), COLORS[index])
    canvas = (canvas * LIMB_DIMMING).astype(np.uint8)
    for index in range(len(pose.body)):
        if pose.seen[index]:
            x, y = pose.body[index]
            centre = (int(x * width), int(y * height))
            cv2.circle(canvas, centre, JOINT_RADIUS, COLORS[index], thickness=-1)
    return canvas


def _hands(canvas: NDArray[np.uint8], pose: Pose) -> None:
    height, width = canvas.shape[:2]
    for peaks in pose.hands:
        pixels = [(int(x * width), int(y * height)) for x, y in peaks]
        for index, (a, b) in enumerate(HAND_EDGES):
            (x1, y1), (x2, y2) = pixels[a], pixels[b]
            if x1 > EPS and y1 > EPS and x2 > EPS and y2 > EPS:
                colour = [c * 255 for c in colorsys.hsv_to_rgb(index / len(HAND_EDGES), 1.0, 1.0)]
                cv2.line(canvas, (x1, y1), (x2, y2), colour, thickness=HAND_EDGE_WIDTH)
        for x, y in pixels:
            if x > EPS and y > EPS:
                cv2.circle(canvas, (x, y), HAND_POINT_RADIUS, HAND_POINT, thickness=-1)


def canvas(pose: Pose, width: int, height: int) -> NDArray[np.uint8]:
    """The pose drawn on a `width` x `height` RGB canvas, as draw_pose draws it."""
    bgr = _bodies(np.zeros((height, width, 3), dtype=np.uint8), pose)
    _hands(bgr, pose)
    return np.ascontiguousarray(bgr[..., ::-1])


def draw_pose(pose: Pose, width: int, height: int) -> NDArray[np.uint8]:
    """One RGB frame (height, width, 3) for a reference picture of `width` x `height`:
    drawn at twice its working size and resized to its size."""
    work_width, work_height = working_size(width, height)
    big = canvas(pose, DRAW_SCALE * work_width, DRAW_SCALE * work_height)
    small = Image.fromarray(big).resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(small, dtype=np.uint8)


def draw_poses(poses: list[Pose], width: int, height: int) -> NDArray[np.uint8]:
    """Frames (count, height, width, 3)."""
    return np.stack([draw_pose(pose, width, height) for pose in poses])
