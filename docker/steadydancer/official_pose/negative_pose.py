"""SteadyDancer's augmented negative pose: the aligned poses, each frame distorted on its own.

As MCG-NJU/SteadyDancer's preprocess/utils_aug.py (pose_aug_diff) does it, in the aligned
poses' normalised coordinates: body and hand x multiplied by a horizontal stretch drawn
from U(0.6, 1.4), body and hands scaled by a factor drawn from U(0.7, 1.3), then body,
hands and face moved so the neck is where it was (the face is only moved). A fresh draw
for every frame; a seed makes a run reproducible.
"""

from __future__ import annotations

import random

from steadydancer.official_pose.keypoints import Pose

STRETCH = (0.6, 1.4)
SCALE = (0.7, 1.3)
OFFSET = (-0.2, 0.2)
"""Drawn by the official code before the scale and never applied; drawn here too, so a seed
gives the official sequence of distortions."""


def distort(pose: Pose, stretch: float, scale: float) -> Pose:
    out = pose.copy()
    out.body[:, 0] *= stretch
    out.hands[..., 0] *= stretch
    out.hands *= scale
    out.body *= scale
    return out.shifted(pose.body[1] - out.body[1])


def draws(frames: int, seed: int) -> list[tuple[float, float]]:
    """(stretch, scale) for each frame, in the official order of draws from Python's random."""
    rng = random.Random(seed)
    out = []
    for _ in range(frames):
        rng.uniform(*OFFSET)
        rng.uniform(*OFFSET)
        scale = rng.uniform(*SCALE)
        stretch = rng.uniform(*STRETCH)
        out.append((stretch, scale))
    return out


def negative_poses(aligned: list[Pose], seed: int) -> list[Pose]:
    return [
        distort(p, stretch, scale)
        for p, (stretch, scale) in zip(aligned, draws(len(aligned), seed), strict=True)
    ]
