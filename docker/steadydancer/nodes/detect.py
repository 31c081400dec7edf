"""SteadyDancer's pose detector on OpenMMLab: mmdet YOLOX-L person boxes, mmpose DWPose-L.

As the official preprocessing (dwpose.py, wholebody.py at 866a721) runs it: a reference
picture first resized (bicubic) to its working size; every picture then resized with
OpenCV so its short side is 1024 and each side a multiple of 64 (bicubic when enlarging,
area when shrinking); the RGB picture handed to both models; person boxes (COCO class 0)
above 0.5 after NMS at 0.7, or, when there is none, the pose model run on the whole
picture; the 133 whole-body points of every person converted by
official_pose.wholebody.to_openpose. The models are built from the configs mmdet and
mmpose ship (DWPose-L is RTMPose-L at 384x288 with distilled weights) and the catalog's
checkpoints; torch, mmdet and mmpose are imported only when a detector is made.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from steadydancer.official_pose import wholebody
from steadydancer.official_pose.keypoints import Pose

BOX_SCORE = 0.5
NMS_THRESHOLD = 0.7
DETECTOR_CONFIG = ("mmdet", ".mim/configs/yolox/yolox_l_8xb8-300e_coco.py")
POSE_CONFIG = (
    "mmpose",
    ".mim/configs/wholebody_2d_keypoint/rtmpose/ubody/"
    "rtmpose-l_8xb32-270e_coco-ubody-wholebody-384x288.py",
)
DETECTOR_CHECKPOINT = "dwpose/yolox_l_8x8_300e_coco_20211126_140236-d3bd2b23.pth"
POSE_CHECKPOINT = "dwpose/dw-ll_ucoco_384.pth"
"""Under ComfyUI's models folder, where the catalog puts them."""


def config_path(package: str, relative: str) -> str:
    return str(resources.files(package).joinpath(relative))


def at_working_size(frame: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """A reference picture at the size pose_align.py measures it (bicubic)."""
    height, width = frame.shape[:2]
    size = wholebody.working_size(width, height)
    return np.asarray(cv2.resize(frame, size, interpolation=cv2.INTER_CUBIC), dtype=np.uint8)


def resized(frame: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """The picture as the official detector sees it (dwpose.py's resize_image)."""
    height, width = frame.shape[:2]
    size = wholebody.detect_size(width, height)
    method = cv2.INTER_CUBIC if wholebody.upscales(width, height) else cv2.INTER_AREA
    return np.asarray(cv2.resize(frame, size, interpolation=method), dtype=np.uint8)


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
                "its models or let the entrypoint fetch them (catalog files yolox-l, dwpose-l); "
                "a file whose sha256 the catalog does not record is never placed (see the boot "
                "log's `models:` lines)"
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

    def people(self, image: NDArray[np.uint8]) -> NDArray[np.float32]:
        """Person boxes (x1, y1, x2, y2) in an RGB picture, best first."""
        from mmdet.apis import inference_detector
        from mmpose.evaluation.functional import nms

        found = inference_detector(self.detector, image).pred_instances.cpu().numpy()
        boxes = np.concatenate([found.bboxes, found.scores[:, None]], axis=1)
        boxes = boxes[(found.labels == 0) & (found.scores > BOX_SCORE)]
        return np.asarray(boxes[nms(boxes, NMS_THRESHOLD), :4], dtype=np.float32)

    def raw(self, image: NDArray[np.uint8]) -> tuple[NDArray[Any], NDArray[Any]]:
        """Every person's 133 points (people, 133, 2) and scores in an RGB picture already
        at the detector's size; the whole picture is one person when no box is found."""
        from mmpose.apis import inference_topdown
        from mmpose.structures import merge_data_samples

        boxes = self.people(image)
        if len(boxes) == 0:
            found = inference_topdown(self.pose_model, image)
        else:
            found = inference_topdown(self.pose_model, image, boxes)
        instances = merge_data_samples(found).pred_instances
        points = instances.get("transformed_keypoints", instances.keypoints)
        return np.asarray(points), np.asarray(instances.keypoint_scores)

    def __call__(self, frame: NDArray[np.uint8], reference: bool = False) -> Pose:
        """The pose in one RGB frame; a `reference` picture is measured at its working size."""
        image = resized(at_working_size(frame) if reference else frame)
        height, width = image.shape[:2]
        points, scores = self.raw(image)
        return wholebody.to_openpose(points, scores, width, height)
