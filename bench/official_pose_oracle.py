"""Records what SteadyDancer's own preprocessing makes of raw detector outputs: the oracle
that tests/test_official_pose.py holds the port to.

Usage (numpy 1.26, opencv-python-headless 4.11, matplotlib; no torch, mmdet or mmpose):
  python -m bench.official_pose_oracle --official DIR [--out tests/data/official_pose]
  python -m bench.official_pose_oracle --side-by-side docs/pose-official-vs-port.png

DIR is a checkout of MCG-NJU/SteadyDancer at 866a721 (it is run, never copied here). For
each case below this writes a reference picture and a driving video (MJPG) of the case's
sizes, makes up raw whole-body outputs (133 points and scores per person, per detector
call) and runs preprocess/pose_align_withdiffaug.py's run_align_video_with_filterPose_
translate_smooth on them. Only what needs the network or a GPU is replaced: mmdet's
detector and mmpose's pose model answer the made-up outputs (person boxes, or none for a
frame without a person, whereupon the official code runs the pose model on the whole
frame), torch only says there is no GPU, and moviepy's writer keeps the frames instead of
encoding them. Recorded per case, in CASE.npz: the raw outputs and the picture size each
call saw, what the official detector wrapper returned for each call, the aligned and the
augmented keypoints it drew, and the random draws; in CASE-FRAME-positive.png /
-negative.png the official single.mp4 / single_aug.mp4 frames (RGB, twice the reference's
working size) for a few frames. cases.json lists the cases and how they were made.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import random
import sys
import tempfile
import types
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

COMMIT = "866a7219e74923d9486ab611cd981b15e5d959e5"
SEED = 7
"""Python's random is seeded with this before each run: the official augmentation draws from
the global generator."""


@dataclass
class Case:
    name: str
    about: str
    reference_size: tuple[int, int]
    """(width, height) of the reference picture as given."""
    video_size: tuple[int, int]
    frames: int
    align_frame: int = 0
    people: int = 1
    pictures: tuple[int, ...] = (0, 1)
    """Output frames whose pictures are recorded (indices after align_frame)."""
    edits: dict[str, Any] = field(default_factory=dict)


CASES = (
    Case(
        "scores",
        "low-score body, hand and face points; a point at exactly 0.35; the reference's right "
        "shoulder at 0.31 (neck shown, shoulder not); frame 0's left shoulder at 0.32; frame 1 "
        "with a shoulder at 0.29 (no neck)",
        (480, 832),
        (480, 832),
        4,
        pictures=(0, 1, 3),
        edits={"low": True, "ref_shoulder": 0.31, "frame0_shoulder": 0.32, "frame1_neck": 0.29},
    ),
    Case(
        "missing-arm",
        "the alignment frame (2) has its left arm scored 0.1 (coordinates kept, as detectors "
        "give them); a landscape video for a portrait reference",
        (576, 1024),
        (1280, 720),
        6,
        align_frame=2,
        pictures=(0, 3),
        edits={"missing_arm_in": [2]},
    ),
    Case(
        "empty-first-frame",
        "nobody in driving frame 0: no person box, so the official code runs the pose model on "
        "the whole frame and aligns to what it says (all scores low)",
        (640, 640),
        (720, 1280),
        4,
        pictures=(0, 1, 3),
        edits={"empty": [0]},
    ),
    Case(
        "borders",
        "a reference person standing at the right edge and cut by the bottom: the aligned "
        "hands, legs and limbs run off the picture; a landscape reference",
        (832, 480),
        (832, 480),
        4,
        pictures=(0, 1, 2, 3),
        edits={"reference_at": (0.93, 0.62), "reference_size": 0.6},
    ),
    Case(
        "two-people",
        "two people in every frame: the official code keeps the first person's body and "
        "the first two hands of its list (both left hands)",
        (480, 832),
        (832, 480),
        3,
        people=2,
        pictures=(0, 2),
    ),
    Case(
        "infinite-ratio",
        "in the alignment frame the right elbow sits exactly on the right shoulder: the upper "
        "arm ratio is infinite",
        (480, 832),
        (480, 832),
        3,
        pictures=(0, 1),
        edits={"elbow_on_shoulder": 0},
    ),
    Case(
        "many-frames",
        "48 frames of motion, square video, a reference of odd size",
        (517, 911),
        (512, 512),
        48,
        pictures=(0, 23, 47),
        edits={"low": True},
    ),
)

BODY_TEMPLATE = {
    0: (0.0, -0.78), 1: (-0.04, -0.82), 2: (0.04, -0.82), 3: (-0.09, -0.8), 4: (0.09, -0.8),
    5: (-0.2, -0.6), 6: (0.2, -0.6), 7: (-0.28, -0.35), 8: (0.28, -0.35), 9: (-0.3, -0.12),
    10: (0.3, -0.12), 11: (-0.12, 0.0), 12: (0.12, 0.0), 13: (-0.13, 0.4), 14: (0.13, 0.4),
    15: (-0.14, 0.78), 16: (0.14, 0.78),
}  # fmt: skip
"""COCO body points of a standing person, in units of half its height, hips at 0 (left is
the person's left, on the picture's left here: COCO's left points are odd)."""


def person(
    rng: np.random.Generator, centre: tuple[float, float], size: float, t: float, build: float
) -> NDArray[np.float64]:
    """133 whole-body points (x, y, score) in normalised picture units, scores high."""
    points = np.zeros((133, 3))
    points[:, 2] = rng.uniform(0.6, 0.98, 133)
    for index, (x, y) in BODY_TEMPLATE.items():
        width = build if index in (5, 6, 11, 12) else 1.0
        points[index, :2] = (x * width, y)
    wave = np.sin(2 * np.pi * t)
    for wrist, elbow, sign in ((9, 7, -1), (10, 8, 1)):
        points[wrist, :2] = points[elbow, :2] + (sign * 0.15 * (1 + wave), -0.2 * wave)
    for index, ankle in zip(range(17, 23), (15, 15, 15, 16, 16, 16), strict=True):
        points[index, :2] = points[ankle, :2] + (((index % 3) - 1) * 0.04, 0.04)
    angle = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    points[23:91, 0] = points[0, 0] + 0.06 * np.cos(angle)
    points[23:91, 1] = points[0, 1] + 0.07 * np.sin(angle)
    for start, wrist in ((91, 9), (112, 10)):
        points[start, :2] = points[wrist, :2]
        for finger in range(5):
            direction = np.radians(-60 + 30 * finger) + np.pi / 2
            for joint in range(1, 5):
                reach = 0.025 * joint
                points[start + 4 * finger + joint, :2] = points[wrist, :2] + reach * np.array(
                    [np.cos(direction), np.sin(direction)]
                )
    points[:, :2] += rng.normal(0, 0.004, (133, 2))
    points[:, :2] = points[:, :2] * size + centre
    return points


def make_calls(case: Case, rng: np.random.Generator) -> list[list[NDArray[np.float64]]]:
    """People (133 x (x, y, score), normalised) per detector call, in the official order:
    the reference, the alignment frame (twice: once for the bone ratios, once for its pose),
    every later frame."""
    vid_w, vid_h = case.video_size
    at = case.edits.get("reference_at", (0.5, 0.55))
    reference = [person(rng, at, case.edits.get("reference_size", 0.42), 0.0, 1.3)]
    if case.people == 2:
        reference.append(person(rng, (0.8, 0.6), 0.3, 0.3, 1.0))
    frames = []
    for index in range(case.frames):
        t = index / max(case.frames - 1, 1)
        # The driving person: a narrower build, standing elsewhere, scaled to its own frame.
        x_scale = vid_h / vid_w
        people = [person(rng, (0.4 + 0.1 * t, 0.5), 0.4, t, 0.85)]
        people[0][:, 0] = 0.4 + 0.1 * t + (people[0][:, 0] - 0.4 - 0.1 * t) * x_scale
        if case.people == 2:
            people.append(person(rng, (0.75, 0.55), 0.3, 1 - t, 1.0))
        frames.append(people)
    if case.edits.get("low"):
        for people in [reference, *frames]:
            main = people[0]
            low = rng.choice(133, 20, replace=False)
            main[low, 2] = rng.uniform(0.05, 0.349, 20)
            main[rng.choice(133, 3, replace=False), 2] = 0.35
    if "ref_shoulder" in case.edits:
        reference[0][6, 2] = case.edits["ref_shoulder"]
        reference[0][5, 2] = 0.9
    if "frame0_shoulder" in case.edits:
        frames[0][0][5, 2] = case.edits["frame0_shoulder"]
        frames[0][0][6, 2] = 0.9
    if "frame1_neck" in case.edits:
        frames[1][0][6, 2] = case.edits["frame1_neck"]
    for index in case.edits.get("missing_arm_in", []):
        frames[index][0][[5, 7, 9], 2] = 0.1
        frames[index][0][91:112, 2] = 0.1
    if "elbow_on_shoulder" in case.edits:
        frame = frames[case.edits["elbow_on_shoulder"]][0]
        frame[8, :2] = frame[6, :2]
    for index in case.edits.get("empty", []):
        # What a pose model answers for a whole frame without a person: scattered, unsure.
        garbage = rng.uniform(0.0, 1.0, (133, 3))
        garbage[:, 2] *= 0.3
        frames[index] = [garbage]
    order = [reference]
    order += [frames[case.align_frame]] * 2
    order += frames[case.align_frame + 1 :]
    # Frames before the alignment frame are read but never detected.
    return [[p.copy() for p in people] for people in order]


class Instances:
    """The parts of mmengine's InstanceData the official code reads."""

    def __init__(self, **values: Any) -> None:
        self.values = values
        for key, value in values.items():
            setattr(self, key, value)

    def __contains__(self, key: str) -> bool:
        return key in self.values

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def cpu(self) -> Instances:
        return self

    def numpy(self) -> Instances:
        return self


class Models:
    """mmdet's detector and mmpose's pose model, answering the case's outputs in call order."""

    def __init__(self, calls: list[list[NDArray[np.float64]]]) -> None:
        self.calls = calls
        self.index = -1
        self.seen: list[dict[str, Any]] = []

    def detect(self, model: Any, image: NDArray[np.uint8]) -> Any:
        self.index += 1
        height, width = image.shape[:2]
        people = self.calls[self.index]
        empty = people[0][:, 2].max() < 0.35 and len(people) == 1
        boxes = []
        if not empty:
            for p in people:
                xy = p[:, :2] * (width, height)
                boxes.append([*xy.min(axis=0), *xy.max(axis=0)])
        scores = np.linspace(0.9, 0.8, len(boxes))
        self.seen.append(
            {
                "size": (width, height),
                "channel_means": image.reshape(-1, 3).mean(axis=0).tolist(),
                "boxes": len(boxes),
            }
        )
        return types.SimpleNamespace(
            pred_instances=Instances(
                bboxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
                scores=scores.astype(np.float32),
                labels=np.zeros(len(boxes), dtype=np.int64),
            )
        )

    def topdown(self, model: Any, image: NDArray[np.uint8], bboxes: Any = None) -> list[Any]:
        height, width = image.shape[:2]
        people = self.calls[self.index]
        if bboxes is None:
            people = people[:1]
        else:
            assert len(bboxes) == len(people), (len(bboxes), len(people))
        out = []
        for p in people:
            keypoints = (p[None, :, :2] * (width, height)).astype(np.float32)
            scores = p[None, :, 2].astype(np.float32)
            out.append(Instances(pred_instances=Instances(keypoints=keypoints,
                                                          keypoint_scores=scores)))  # fmt: skip
        return out


def merge(samples: list[Any]) -> Any:
    return Instances(
        pred_instances=Instances(
            keypoints=np.concatenate([s.pred_instances.keypoints for s in samples]),
            keypoint_scores=np.concatenate([s.pred_instances.keypoint_scores for s in samples]),
        )
    )


def nms(boxes: NDArray[Any], threshold: float) -> list[int]:
    """mmpose.evaluation.functional.nms: greedy, best score first."""
    x1, y1, x2, y2, scores = boxes.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = scores.argsort()[::-1]
    keep = []
    while len(order):
        best = order[0]
        keep.append(int(best))
        xx1 = np.maximum(x1[best], x1[order[1:]])
        yy1 = np.maximum(y1[best], y1[order[1:]])
        xx2 = np.minimum(x2[best], x2[order[1:]])
        yy2 = np.minimum(y2[best], y2[order[1:]])
        inter = np.maximum(0.0, xx2 - xx1 + 1) * np.maximum(0.0, yy2 - yy1 + 1)
        overlap = inter / (areas[best] + areas[order[1:]] - inter)
        order = order[1:][overlap <= threshold]
    return keep


def install_stand_ins(models: Models, clips: dict[str, list[NDArray[np.uint8]]]) -> None:
    def module(name: str, **attributes: Any) -> None:
        value = types.ModuleType(name)
        value.__dict__.update(attributes)
        sys.modules[name] = value

    class NoGrad:
        def __enter__(self) -> None:
            return None

        def __exit__(self, *args: object) -> None:
            return None

    module("torch", device=lambda name: name, no_grad=NoGrad,
           cuda=types.SimpleNamespace(is_available=lambda: False))  # fmt: skip

    class Model:
        cfg = None

        def to(self, device: Any) -> Model:
            return self

    module("mmdet")
    module("mmdet.apis", init_detector=lambda *a, **k: Model(), inference_detector=models.detect)
    module("mmpose")
    module("mmpose.apis", init_model=lambda *a, **k: Model(), inference_topdown=models.topdown)
    module("mmpose.evaluation")
    module("mmpose.evaluation.functional", nms=nms)
    module("mmpose.utils", adapt_mmdet_pipeline=lambda cfg: cfg)
    module("mmpose.structures", merge_data_samples=merge)

    class Clip:
        def __init__(self, frames: list[NDArray[np.uint8]], fps: float) -> None:
            self.frames = frames

        def write_videofile(self, path: str, **kwargs: Any) -> None:
            clips[Path(path).name] = [np.array(f) for f in self.frames]

    for name in ("moviepy", "moviepy.video", "moviepy.video.io"):
        module(name)
    module("moviepy.video.io.ImageSequenceClip", ImageSequenceClip=Clip)
    sys.modules["moviepy"].video = sys.modules["moviepy.video"]  # type: ignore[attr-defined]
    sys.modules["moviepy.video"].io = sys.modules["moviepy.video.io"]  # type: ignore[attr-defined]
    sys.modules["moviepy.video.io"].ImageSequenceClip = sys.modules[  # type: ignore[attr-defined]
        "moviepy.video.io.ImageSequenceClip"
    ]


def write_inputs(case: Case, folder: Path) -> tuple[Path, Path]:
    import cv2

    ref_w, ref_h = case.reference_size
    reference = folder / "reference.png"
    picture = np.zeros((ref_h, ref_w, 3), np.uint8)
    picture[:] = (10, 100, 200)  # BGR: the detector must see 200 first (RGB)
    cv2.imwrite(str(reference), picture)
    vid_w, vid_h = case.video_size
    video = folder / "driving.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 16, (vid_w, vid_h))
    frame = np.zeros((vid_h, vid_w, 3), np.uint8)
    frame[:] = (10, 100, 200)
    for _ in range(case.frames):
        writer.write(frame)
    writer.release()
    return reference, video


def run_case(official: Path, case: Case, out: Path) -> dict[str, Any]:
    rng = np.random.default_rng(zlib.crc32(case.name.encode()))
    calls = make_calls(case, rng)
    models = Models(calls)
    clips: dict[str, list[NDArray[np.uint8]]] = {}
    install_stand_ins(models, clips)
    sys.path.insert(0, str(official / "preprocess"))
    for name in [n for n in sys.modules if n.startswith("pose") or n == "utils_aug"]:
        del sys.modules[name]
    aligner = importlib.import_module("pose_align_withdiffaug")
    dwpose = importlib.import_module("pose.script.dwpose")

    detected: list[dict[str, Any]] = []
    call = dwpose.DWposeDetector.__call__

    def recording_call(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = call(self, *args, **kwargs)
        detected.append(copy.deepcopy(result[1]))
        return result

    dwpose.DWposeDetector.__call__ = recording_call
    drawn: list[tuple[int, int, dict[str, Any]]] = []
    draw = aligner.draw_pose

    def recording_draw(pose: dict[str, Any], height: int, width: int, draw_face: bool) -> Any:
        drawn.append((height, width, copy.deepcopy(pose)))
        return draw(pose, height, width, draw_face)

    aligner.draw_pose = recording_draw
    draws: list[float] = []
    uniform = random.uniform

    def recording_uniform(a: float, b: float) -> float:
        value = uniform(a, b)
        draws.append(value)
        return value

    with tempfile.TemporaryDirectory() as scratch:
        reference, video = write_inputs(case, Path(scratch))
        args = argparse.Namespace(
            detect_resolution=1024, image_resolution=720, yolox_config=None, dwpose_config=None,
            yolox_ckpt=None, dwpose_ckpt=None, align_frame=case.align_frame, max_frame=300,
            imgfn_refer=str(reference), vidfn=str(video),
            outfn=str(Path(scratch) / "all.mp4"),
            outfn_align_pose_video=str(Path(scratch) / "single.mp4"),
        )  # fmt: skip
        random.seed(SEED)
        random.uniform = recording_uniform  # type: ignore[assignment]
        try:
            aligner.run_align_video_with_filterPose_translate_smooth(args)
        finally:
            random.uniform = uniform  # type: ignore[assignment]
    assert models.index == len(calls) - 1, (models.index, len(calls))
    ref_h2, ref_w2 = clips["single.mp4"][0].shape[:2]
    positive = [pose for h, w, pose in drawn if (h, w) == (ref_h2, ref_w2)][0::2]
    negative = [pose for h, w, pose in drawn if (h, w) == (ref_h2, ref_w2)][1::2]
    arrays: dict[str, NDArray[Any]] = {}
    for index, people in enumerate(calls):
        seen = models.seen[index]
        width, height = seen["size"]
        used = people[:1] if seen["boxes"] == 0 else people
        stacked = np.stack(used)
        arrays[f"raw{index}_keypoints"] = (stacked[:, :, :2] * (width, height)).astype(np.float32)
        arrays[f"raw{index}_scores"] = stacked[:, :, 2].astype(np.float32)
        arrays[f"raw{index}_size"] = np.array([width, height])
        found = detected[index]
        arrays[f"detected{index}_body"] = found["bodies"]["candidate"]
        arrays[f"detected{index}_subset"] = found["bodies"]["subset"]
        arrays[f"detected{index}_hands"] = found["hands"]
        arrays[f"detected{index}_faces"] = found["faces"]
    for kind, poses in (("positive", positive), ("negative", negative)):
        arrays[f"{kind}_body"] = np.stack([p["bodies"]["candidate"] for p in poses])
        arrays[f"{kind}_subset"] = np.stack([p["bodies"]["subset"] for p in poses])
        arrays[f"{kind}_hands"] = np.stack([p["hands"] for p in poses])
        arrays[f"{kind}_faces"] = np.stack([p["faces"] for p in poses])
    arrays["draws"] = np.array(draws)
    np.savez_compressed(out / f"{case.name}.npz", **arrays)
    from PIL import Image

    for index in case.pictures:
        for kind, clip in (("positive", "single.mp4"), ("negative", "single_aug.mp4")):
            Image.fromarray(clips[clip][index]).save(out / f"{case.name}-{index:03d}-{kind}.png")
    return {
        "name": case.name,
        "about": case.about,
        "reference_size": case.reference_size,
        "video_size": case.video_size,
        "frames": case.frames,
        "align_frame": case.align_frame,
        "detector_calls": len(calls),
        "boxes_per_call": [s["boxes"] for s in models.seen],
        "detector_input_channel_means": models.seen[0]["channel_means"],
        "drawn_size": [ref_w2, ref_h2],
        "pictures": list(case.pictures),
        "seed": SEED,
    }


def side_by_side(recordings: Path, out: Path, name: str = "many-frames", index: int = 23) -> None:
    """A recorded official frame (left) beside this port's frame from the same raw outputs
    (right), both at the reference's size, for docs/pose.md."""
    from PIL import Image
    from steadydancer.nodes import draw
    from steadydancer.official_pose import pose_align, wholebody

    case = next(c for c in json.loads((recordings / "cases.json").read_text())["cases"]
                if c["name"] == name)  # fmt: skip
    recorded = np.load(recordings / f"{name}.npz")
    poses = [
        wholebody.to_openpose(
            recorded[f"raw{call}_keypoints"],
            recorded[f"raw{call}_scores"],
            *(int(v) for v in recorded[f"raw{call}_size"]),
        )
        for call in range(case["detector_calls"])
    ]
    width, height = case["reference_size"]
    work_width, work_height = wholebody.working_size(width, height)
    video_width, video_height = case["video_size"]
    aligned = pose_align.align(
        poses[0], work_width / work_height, poses[2:], video_width / video_height
    )
    official = Image.open(recordings / f"{name}-{index:03d}-positive.png")
    official = official.resize((width, height), Image.Resampling.BICUBIC)
    ours = Image.fromarray(draw.draw_pose(aligned[index], width, height))
    picture = Image.new("RGB", (2 * width + 8, height), (255, 255, 255))
    picture.paste(official, (0, 0))
    picture.paste(ours, (width + 8, 0))
    picture.save(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", type=Path)
    parser.add_argument("--out", type=Path, default=Path("tests/data/official_pose"))
    parser.add_argument("--side-by-side", type=Path, help="only draw this picture from --out")
    args = parser.parse_args()
    if args.side_by_side:
        side_by_side(args.out, args.side_by_side)
        return
    if args.official is None:
        parser.error("--official DIR (a SteadyDancer checkout at 866a721) is needed to record")
    args.out.mkdir(parents=True, exist_ok=True)
    cases = [run_case(args.official, case, args.out) for case in CASES]
    listing = {
        "source": f"MCG-NJU/SteadyDancer {COMMIT}: preprocess/pose_align_withdiffaug.py "
        "run_align_video_with_filterPose_translate_smooth, its detector's models answering "
        "made-up raw outputs",
        "command": "python -m bench.official_pose_oracle --official DIR",
        "cases": cases,
    }
    (args.out / "cases.json").write_text(json.dumps(listing, indent=1) + "\n")


if __name__ == "__main__":
    main()
