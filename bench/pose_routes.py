"""The two pose routes on the same synthetic people: ONNX (WanAnimatePreprocess) and official.

Usage (in the image's Python environment, or any with numpy, opencv and matplotlib):
  python -m bench.pose_routes --wananimate DIR [--frames 8] [--out FILE.json]

Both detectors return COCO-WholeBody's 133 points per person; without their weights
neither can find a person, so this starts from the points: a reference person and a
driving person of other proportions, standing elsewhere in the frame and waving. The
points go through what each route does after its detector - WanAnimatePreprocess's
PoseDetectionOneToAllAnimation as steadydancer-dance sets it (align_to ref, face points
weak, head full; its functions are imported from the pack's tree DIR, pinned in
ci/pins.py) and this image's SteadyDancerDWPose, SteadyDancerPoseAlign and drawing - and
the JSON reports, per route: where the aligned neck lands against the reference's, each
aligned bone's length over the reference's, what is drawn (painted share, face drawn or
not) and how much the two routes' drawings overlap. FILE.png beside the JSON shows the
reference and each route's frames.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import shlex
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from steadydancer.nodes.draw import draw_poses
from steadydancer.official_pose import pose_align, wholebody
from steadydancer.official_pose.keypoints import Pose

WIDTH, HEIGHT = 480, 832
SCORE = 0.95
"""A synthetic point's score: above both routes' thresholds (0.35 official, 0.9 ONNX)."""
UNSURE = 0.6
"""The driving person's left elbow, wrist and hand: a detector's doubtful points, kept by the
official threshold (0.35) and under the 0.9 the ONNX route's retargeting trusts."""
UNSURE_POINTS = [7, 9, *range(91, 112)]
BONES = {
    "shoulders": (2, 5),
    "right upper arm": (2, 3),
    "right forearm": (3, 4),
    "left upper arm": (5, 6),
    "left forearm": (6, 7),
    "right thigh": (8, 9),
    "right shin": (9, 10),
    "left thigh": (11, 12),
    "left shin": (12, 13),
    "neck to nose": (1, 0),
}
"""OpenPose body points; both routes hand their poses over in OpenPose's layout."""


def person(
    centre_x: float, top: float, height: float, build: float, wave: float
) -> NDArray[np.float64]:
    """133 whole-body points (x, y, score) in pixels: a standing person, arms raised by `wave`.

    `build` widens shoulders and hips and shortens the limbs relative to the height.
    """
    unit = height / 8.0
    points = np.zeros((133, 3))
    points[:, 2] = SCORE
    head = np.array([centre_x, top + 0.5 * unit])
    neck_y = top + 1.3 * unit
    shoulder = 1.0 * unit * build
    hip_y = neck_y + 2.9 * unit
    hip = 0.55 * unit * build
    limb = 1.45 * unit / build**0.5
    body = {
        0: head + np.array([0, 0.15 * unit]),
        1: head + np.array([0.2 * unit, 0]),
        2: head + np.array([-0.2 * unit, 0]),
        3: head + np.array([0.4 * unit, 0.1 * unit]),
        4: head + np.array([-0.4 * unit, 0.1 * unit]),
        5: (centre_x + shoulder, neck_y),
        6: (centre_x - shoulder, neck_y),
        11: (centre_x + hip, hip_y),
        12: (centre_x - hip, hip_y),
    }
    for side, sign in ((5, 1), (6, -1)):
        angle = math.radians(20 + 110 * wave)  # from straight down, out to the side and up
        elbow = np.asarray(body[side]) + limb * np.array([sign * math.sin(angle), math.cos(angle)])
        wrist = elbow + 0.9 * limb * np.array([sign * math.sin(angle + 0.4), math.cos(angle + 0.4)])
        body[side + 2], body[side + 4] = elbow, wrist
    for side in (11, 12):
        knee = np.asarray(body[side]) + np.array([0.0, 1.3 * limb])
        body[side + 2], body[side + 4] = knee, knee + np.array([0.0, 1.25 * limb])
    for index, xy in body.items():
        points[index, :2] = xy
    for index, ankle in zip(range(17, 23), (15, 15, 15, 16, 16, 16), strict=True):
        points[index, :2] = points[ankle, :2] + (((index % 3) - 1) * 0.2 * unit, 0.15 * unit)
    face = np.linspace(0, 2 * math.pi, 68, endpoint=False)
    points[23:91, 0] = head[0] + 0.32 * unit * np.cos(face) * (0.5 + 0.5 * (face % 1.3))
    points[23:91, 1] = head[1] + 0.4 * unit * np.sin(face) * (0.5 + 0.5 * (face % 0.7))
    for start, wrist_index in ((91, 9), (112, 10)):
        wrist = points[wrist_index, :2]
        points[start, :2] = wrist
        for finger in range(5):
            direction = math.radians(-60 + 30 * finger) + math.pi / 2
            for joint in range(1, 5):
                reach = 0.1 * unit * joint
                points[start + 1 + 4 * finger + joint - 1, :2] = wrist + reach * np.array(
                    [math.cos(direction), math.sin(direction)]
                )
    return points


def people(frames: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The reference person and the driving person's frames (count, 133, 3)."""
    reference = person(WIDTH * 0.5, HEIGHT * 0.12, HEIGHT * 0.8, 1.25, 0.0)
    driving = np.stack(
        [
            person(WIDTH * 0.35, HEIGHT * 0.05, HEIGHT * 0.7, 0.85, index / max(frames - 1, 1))
            for index in range(frames)
        ]
    )
    driving[:, UNSURE_POINTS, 2] = UNSURE
    return reference, driving


def openpose(points: NDArray[np.float64]) -> Pose:
    """One person's 133 points (x, y, score) in pixels as the official detector hands them on."""
    return wholebody.to_openpose(points[None, :, :2], points[None, :, 2], WIDTH, HEIGHT)


def load_pack(tree: Path) -> types.ModuleType:
    """The pack's folder as a package, without its __init__ (which needs a running ComfyUI)."""
    package = types.ModuleType("wananimate")
    package.__path__ = [str(tree)]
    sys.modules["wananimate"] = package
    return package


def onnx_route(
    tree: Path, reference: NDArray[np.float64], driving: NDArray[np.float64]
) -> tuple[list[NDArray[np.float64]], NDArray[np.uint8], NDArray[np.uint8]]:
    """What PoseDetectionOneToAllAnimation does with detected points: body points, frames, and
    the frames drawn without the face."""
    load_pack(tree)
    metas = importlib.import_module("wananimate.pose_utils.pose2d_utils")
    infer = importlib.import_module("wananimate.onetoall.infer_function")
    drawing = importlib.import_module("wananimate.onetoall.utils")
    reference_meta = metas.load_pose_metas_from_kp2ds_seq(reference[None], WIDTH, HEIGHT)[0]
    driving_metas = metas.load_pose_metas_from_kp2ds_seq(driving, WIDTH, HEIGHT)
    template = [infer.aaposemeta_to_dwpose(meta) for meta in driving_metas]
    aligned = infer.align_to_reference(reference_meta, driving_metas, template, anchor_idx=0)

    def draw(without_face: bool) -> NDArray[np.uint8]:
        return np.stack(
            [
                drawing.draw_pose_aligned(
                    pose,
                    HEIGHT,
                    WIDTH,
                    without_face=without_face,
                    face_change=True,
                    head_strength="full",
                )
                for pose in aligned
            ]
        )

    bodies = [np.asarray(pose["bodies"]["candidate"][:18], dtype=np.float64) for pose in aligned]
    return bodies, draw(without_face=False), draw(without_face=True)


def official_route(
    reference: NDArray[np.float64], driving: NDArray[np.float64]
) -> tuple[list[Pose], NDArray[np.uint8], NDArray[np.uint8]]:
    """This image's nodes: points to OpenPose, aligned to the reference, drawn; and drawn
    without the face."""
    work_width, work_height = wholebody.working_size(WIDTH, HEIGHT)
    aligned = pose_align.align(
        openpose(reference), work_width / work_height, [openpose(p) for p in driving],
        WIDTH / HEIGHT,
    )  # fmt: skip
    faceless = [
        Pose(pose.body, pose.seen, pose.hands, np.full_like(pose.face, -1.0)) for pose in aligned
    ]
    return aligned, draw_poses(aligned, WIDTH, HEIGHT), draw_poses(faceless, WIDTH, HEIGHT)


def bone_ratios(body: NDArray[np.float64], reference: NDArray[np.float64]) -> dict[str, float]:
    """Each bone's length in pixels over the reference person's."""

    def length(points: NDArray[np.float64], a: int, b: int) -> float:
        return float(np.linalg.norm((points[a] - points[b]) * (WIDTH, HEIGHT)))

    return {
        name: round(length(body, a, b) / length(reference, a, b), 4)
        for name, (a, b) in BONES.items()
    }


def drawn(frames: NDArray[np.uint8]) -> NDArray[np.bool_]:
    return np.asarray(frames.max(axis=-1) > 0)


def report(frames: int, tree: Path) -> tuple[dict[str, Any], NDArray[np.uint8]]:
    reference, driving = people(frames)
    reference_pose = openpose(reference)
    reference_body = reference_pose.body
    onnx_bodies, onnx_frames, onnx_faceless = onnx_route(tree, reference, driving)
    official_poses, official_frames, official_faceless = official_route(reference, driving)
    onnx_painted, official_painted = drawn(onnx_frames), drawn(official_frames)
    arm = [6, 7]  # OpenPose's left elbow and wrist: the doubtful points

    def route(
        bodies: list[NDArray[np.float64]],
        frames: NDArray[np.uint8],
        painted: NDArray[np.bool_],
        faceless: NDArray[np.uint8],
    ) -> dict[str, Any]:
        necks = [(body[1] - reference_body[1]) * (WIDTH, HEIGHT) for body in bodies]
        return {
            "neck_offset_px": [[round(float(v), 2) for v in neck] for neck in necks],
            "bone_ratio_frame0": bone_ratios(bodies[0], reference_body),
            "doubtful_left_arm_kept": [bool((body[arm] >= 0).all()) for body in bodies],
            "painted_share": [round(float(frame.mean()), 4) for frame in painted],
            "face_pixels": [
                int((a != b).any(axis=-1).sum()) for a, b in zip(frames, faceless, strict=True)
            ],
        }

    overlap = [
        round(float((a & b).sum() / max((a | b).sum(), 1)), 4)
        for a, b in zip(onnx_painted, official_painted, strict=True)
    ]
    result = {
        "command": shlex.join(["python", "-m", "bench.pose_routes", *sys.argv[1:]]),
        "size": [WIDTH, HEIGHT],
        "frames": frames,
        "reference_bone_over_driving_frame0": bone_ratios(
            reference_body, openpose(driving[0]).body
        ),
        "doubtful_score": UNSURE,
        "onnx": route(onnx_bodies, onnx_frames, onnx_painted, onnx_faceless),
        "official": route(
            [pose.body for pose in official_poses],
            official_frames,
            official_painted,
            official_faceless,
        ),
        "drawing_iou": overlap,
    }
    reference_frame = draw_poses([reference_pose], WIDTH, HEIGHT)[0]
    picked = sorted({0, frames // 2, frames - 1})
    rows_out = [
        np.concatenate([reference_frame, *(onnx_frames[i] for i in picked)], axis=1),
        np.concatenate([reference_frame, *(official_frames[i] for i in picked)], axis=1),
    ]
    return result, np.concatenate(rows_out, axis=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--wananimate", type=Path, required=True, help="ComfyUI-WanAnimatePreprocess's tree"
    )
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("pose-routes.json"))
    args = parser.parse_args(argv)
    if not (args.wananimate / "onetoall" / "infer_function.py").is_file():
        parser.error(f"{args.wananimate} is not a ComfyUI-WanAnimatePreprocess tree")
    if args.frames < 2:
        parser.error(f"--frames {args.frames}: at least 2")
    result, sheet = report(args.frames, args.wananimate)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    from PIL import Image

    Image.fromarray(sheet).save(args.out.with_suffix(".png"))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
