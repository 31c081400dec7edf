"""SteadyDancer's pose detector on OpenMMLab: mmdet YOLOX-L person boxes, mmpose DWPose-L.

As the official preprocessing runs it: each frame resized so its short side is 1024,
person boxes (COCO class 0) above 0.5 after NMS at 0.7, whole-body keypoints (133 COCO
points) for the first person, converted to OpenPose's layout (18 body points with the
neck between the shoulders, 2 x 21 hand points, 68 face points; feet dropped) and
points scored under 0.35 marked missing. The models are built from the configs mmdet
and mmpose ship (DWPose-L is RTMPose-L at 384x288 with distilled weights) and the
catalog's checkpoints; torch, mmdet and mmpose are imported only when a detector is made.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from steadydancer.official_pose.keypoints import Pose

SHORT_SIDE = 1024
BOX_SCORE = 0.5
NMS_THRESHOLD = 0.7
POINT_SCORE = 0.35
NECK_SCORE = 0.3
DETECTOR_CONFIG = ("mmdet", ".mim/configs/yolox/yolox_l_8xb8-300e_coco.py")
POSE_CONFIG = (
    "mmpose",
    ".mim/configs/wholebody_2d_keypoint/rtmpose/ubody/"
    "rtmpose-l_8xb32-270e_coco-ubody-wholebody-384x288.py",
)
DETECTOR_CHECKPOINT = "dwpose/yolox_l_8x8_300e_coco_20211126_140236-d3bd2b23.pth"
POSE_CHECKPOINT = "dwpose/dw-ll_ucoco_384.pth"
"""Under ComfyUI's models folder, where the catalog puts them."""
COCO_TO_OPENPOSE = (0, None, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3)
"""OpenPose body point i is COCO point COCO_TO_OPENPOSE[i]; the neck (None) is computed."""
FACE = slice(23, 91)
LEFT_HAND = slice(91, 112)
RIGHT_HAND = slice(112, 133)


def config_path(package: str, relative: str) -> str:
    return str(resources.files(package).joinpath(relative))


def to_openpose(points: NDArray[Any], scores: NDArray[Any], width: int, height: int) -> Pose:
    """133 whole-body points (pixels) and their scores -> one normalised OpenPose Pose."""
    if points.shape != (133, 2) or scores.shape != (133,):
        raise ValueError(f"expected 133 whole-body points, got {points.shape} and {scores.shape}")
    xy = points.astype(np.float64) / (width, height)
    seen = (scores >= POINT_SCORE) & np.isfinite(xy).all(axis=1)
    body = np.full((18, 2), -1.0)
    for index, coco in enumerate(COCO_TO_OPENPOSE):
        if coco is None:
            if scores[5] > NECK_SCORE and scores[6] > NECK_SCORE and seen[5] and seen[6]:
                body[index] = (xy[5] + xy[6]) / 2
        elif seen[coco]:
            body[index] = xy[coco]

    def part(indices: slice) -> NDArray[np.float64]:
        out = xy[indices].copy()
        out[~seen[indices]] = -1.0
        return out

    hands = np.stack([part(LEFT_HAND), part(RIGHT_HAND)])
    return Pose(body, hands, part(FACE)[None])


def resized(frame: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """The frame with its short side at SHORT_SIDE, as the official detector sees it."""
    from PIL import Image

    height, width = frame.shape[:2]
    factor = SHORT_SIDE / min(height, width)
    size = (round(width * factor), round(height * factor))
    return np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.LANCZOS))


@contextmanager
def readable(checkpoint: Path, catalog_key: str) -> Iterator[None]:
    """A checkpoint that is truncated or not one (torch.load fails deep inside) named, with
    the way out."""
    try:
        yield
    except (EOFError, RuntimeError, pickle.UnpicklingError, KeyError) as exc:
        raise RuntimeError(
            f"{checkpoint} ({checkpoint.stat().st_size} bytes) is not a readable checkpoint "
            f"({type(exc).__name__}: {exc}): delete it and fetch it again (catalog file "
            f"{catalog_key})"
        ) from exc


@dataclass
class Detector:
    detector: Any
    pose_model: Any

    @classmethod
    def load(cls, models_dir: Path, device: str) -> Detector:
        from mmdet.apis import init_detector
        from mmpose.apis import init_model
        from mmpose.utils import adapt_mmdet_pipeline

        checkpoints = [models_dir / DETECTOR_CHECKPOINT, models_dir / POSE_CHECKPOINT]
        missing = [str(path) for path in checkpoints if not path.is_file()]
        if missing:
            raise FileNotFoundError(
                f"the official pose detector needs {', '.join(missing)}: build the image with "
                "its models or let the entrypoint fetch them (catalog files yolox-l, dwpose-l)"
            )
        with readable(checkpoints[0], "yolox-l"):
            detector = init_detector(
                config_path(*DETECTOR_CONFIG), str(checkpoints[0]), device=device
            )
        # mmdet's test pipeline named in mmdet's scope, as mmpose's own demos do.
        detector.cfg = adapt_mmdet_pipeline(detector.cfg)
        with readable(checkpoints[1], "dwpose-l"):
            pose_model = init_model(config_path(*POSE_CONFIG), str(checkpoints[1]), device=device)
        return cls(detector, pose_model)

    def people(self, frame: NDArray[np.uint8]) -> NDArray[np.float32]:
        """Person boxes (x1, y1, x2, y2) in the frame, best first."""
        from mmdet.apis import inference_detector
        from mmpose.evaluation.functional import nms

        found = inference_detector(self.detector, frame[..., ::-1]).pred_instances.cpu().numpy()
        keep = (found.labels == 0) & (found.scores > BOX_SCORE)
        boxes = np.concatenate([found.bboxes[keep], found.scores[keep, None]], axis=1)
        return np.asarray(boxes[nms(boxes, NMS_THRESHOLD), :4], dtype=np.float32)

    def __call__(self, frame: NDArray[np.uint8]) -> Pose:
        """The first person's pose in one RGB frame; every point missing when nobody is found."""
        from mmpose.apis import inference_topdown
        from mmpose.structures import merge_data_samples

        image = resized(frame)
        height, width = image.shape[:2]
        boxes = self.people(image)
        if len(boxes) == 0:
            return to_openpose(np.zeros((133, 2)), np.zeros(133), width, height)
        result = merge_data_samples(inference_topdown(self.pose_model, image[..., ::-1], boxes))
        points = result.pred_instances.keypoints[0]
        scores = result.pred_instances.keypoint_scores[0]
        return to_openpose(np.asarray(points), np.asarray(scores), width, height)
