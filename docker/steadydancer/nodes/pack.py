"""The node classes of the official pose pack; the work is in official_pose/, draw and detect."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from steadydancer.nodes.draw import draw_poses
from steadydancer.official_pose import negative_pose, pose_align, wholebody
from steadydancer.official_pose.guidance import PoseGuidance
from steadydancer.official_pose.keypoints import Pose

CATEGORY = "SteadyDancer/official pose"
DETECTORS: dict[str, Any] = {}
"""One detector per device, loaded on first use and kept for the server's life."""
POSES = "POSE_KEYPOINTS"
ROLES = ("driving", "reference")
"""A reference picture is measured at its working size (the official alignment's), driving
frames at their own."""


def keypoints(poses: list[Pose], width: int, height: int, role: str = "driving") -> dict[str, Any]:
    return {"poses": poses, "width": width, "height": height, "role": role}


def to_frames(images: Any) -> NDArray[np.uint8]:
    """ComfyUI's IMAGE (count, height, width, 3) floats in 0..1 -> uint8 RGB frames."""
    array = images.cpu().numpy() if hasattr(images, "cpu") else np.asarray(images)
    return np.clip(array * 255.0 + 0.5, 0, 255).astype(np.uint8)


def to_images(frames: NDArray[np.uint8]) -> Any:
    """uint8 RGB frames -> ComfyUI's IMAGE tensor."""
    import torch

    return torch.from_numpy(frames.astype(np.float32) / 255.0)


def drawn(value: dict[str, Any]) -> Any:
    return to_images(draw_poses(value["poses"], value["width"], value["height"]))


class SteadyDancerDWPose:
    """Whole-body poses of the first person in each frame, as SteadyDancer's pipeline finds them."""

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "images": ("IMAGE",),
                "device": (["cuda", "cpu"], {"default": "cuda"}),
                "role": (list(ROLES), {"default": "driving"}),
            }
        }

    RETURN_TYPES = (POSES, "IMAGE")
    RETURN_NAMES = ("poses", "pose_images")
    FUNCTION = "detect"
    CATEGORY = CATEGORY

    def detect(self, images: Any, device: str, role: str = "driving") -> tuple[dict[str, Any], Any]:
        import folder_paths

        from steadydancer.nodes.detect import Detector

        if role not in ROLES:
            raise ValueError(f"role {role!r}: expected one of {', '.join(ROLES)}")
        if device not in DETECTORS:
            DETECTORS[device] = Detector.load(Path(folder_paths.models_dir), device)
        detector = DETECTORS[device]
        frames = to_frames(images)
        if role == "reference" and len(frames) != 1:
            raise ValueError(f"role reference takes one picture, got {len(frames)}")
        poses = [detector(frame, reference=role == "reference") for frame in frames]
        value = keypoints(poses, frames.shape[2], frames.shape[1], role)
        return value, drawn(value)


class SteadyDancerPoseAlign:
    """The driving poses rescaled bone by bone to the reference body and moved onto it."""

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "reference_pose": (POSES,),
                "driving_poses": (POSES,),
                "align_frame": ("INT", {"default": 0, "min": 0, "max": 100000}),
            }
        }

    RETURN_TYPES = (POSES, "IMAGE")
    RETURN_NAMES = ("aligned_poses", "pose_images")
    FUNCTION = "align"
    CATEGORY = CATEGORY

    def align(
        self, reference_pose: dict[str, Any], driving_poses: dict[str, Any], align_frame: int
    ) -> tuple[dict[str, Any], Any]:
        value = align_keypoints(reference_pose, driving_poses, align_frame)
        return value, drawn(value)


def align_keypoints(
    reference: dict[str, Any], driving: dict[str, Any], align_frame: int
) -> dict[str, Any]:
    if len(reference["poses"]) != 1:
        raise ValueError(
            f"reference_pose holds {len(reference['poses'])} poses; give it the reference image's"
        )
    if reference.get("role") != "reference":
        raise ValueError(
            "reference_pose was detected as driving frames: set the reference image's "
            "SteadyDancerDWPose role to reference, so it is measured at its working size"
        )
    work_width, work_height = wholebody.working_size(reference["width"], reference["height"])
    aligned = pose_align.align(
        reference["poses"][0],
        work_width / work_height,
        driving["poses"],
        driving["width"] / driving["height"],
        align_frame,
    )
    return keypoints(aligned, reference["width"], reference["height"])


class SteadyDancerNegativePose:
    """The augmented negative pose: each frame stretched and scaled at random about the neck."""

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "poses": (POSES,),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFF}),
            }
        }

    RETURN_TYPES = (POSES, "IMAGE")
    RETURN_NAMES = ("negative_poses", "pose_images")
    FUNCTION = "negate"
    CATEGORY = CATEGORY

    def negate(self, poses: dict[str, Any], seed: int) -> tuple[dict[str, Any], Any]:
        value = negative_keypoints(poses, seed)
        return value, drawn(value)


def negative_keypoints(poses: dict[str, Any], seed: int) -> dict[str, Any]:
    negative = negative_pose.negative_poses(poses["poses"], seed)
    return keypoints(negative, poses["width"], poses["height"])


class SteadyDancerPoseGuidance:
    """Turns on the official three-pass guidance for embeds from WanVideoAddSteadyDancerEmbeds."""

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        defaults = PoseGuidance()
        window = {"min": 0.0, "max": 1.0, "step": 0.01}
        return {
            "required": {
                "image_embeds": ("WANVIDIMAGE_EMBEDS",),
                "pose_scale": ("FLOAT", {"default": defaults.pose_scale, "min": 0.0, "max": 20.0,
                                         "step": 0.05}),
                "start": ("FLOAT", {"default": defaults.start, **window}),
                "end": ("FLOAT", {"default": defaults.end, **window}),
            }
        }  # fmt: skip

    RETURN_TYPES = ("WANVIDIMAGE_EMBEDS",)
    RETURN_NAMES = ("image_embeds",)
    FUNCTION = "guide"
    CATEGORY = CATEGORY

    def guide(
        self, image_embeds: dict[str, Any], pose_scale: float, start: float, end: float
    ) -> tuple[dict[str, Any]]:
        return (with_pose_guidance(image_embeds, pose_scale, start, end),)


def with_pose_guidance(
    image_embeds: dict[str, Any], pose_scale: float, start: float, end: float
) -> dict[str, Any]:
    """A copy of the embeds whose SteadyDancer part asks the sampler for the three passes."""
    PoseGuidance(pose_scale=pose_scale, start=start, end=end)  # refuses a bad window in words
    sdancer = image_embeds.get("sdancer_embeds")
    if sdancer is None:
        raise ValueError(
            "image_embeds carry no SteadyDancer embeds: connect WanVideoAddSteadyDancerEmbeds' "
            "output here"
        )
    if start < end and sdancer.get("cond_neg") is None:
        raise ValueError(
            "pose guidance needs the negative pose: give WanVideoAddSteadyDancerEmbeds "
            "pose_latents_negative (SteadyDancerNegativePose, encoded)"
        )
    guided = {"pose_scale": pose_scale, "start": start, "end": end}
    return {**image_embeds, "sdancer_embeds": {**sdancer, "official_guidance": guided}}


NODE_CLASS_MAPPINGS = {
    "SteadyDancerDWPose": SteadyDancerDWPose,
    "SteadyDancerPoseAlign": SteadyDancerPoseAlign,
    "SteadyDancerNegativePose": SteadyDancerNegativePose,
    "SteadyDancerPoseGuidance": SteadyDancerPoseGuidance,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "SteadyDancerDWPose": "SteadyDancer DWPose (official)",
    "SteadyDancerPoseAlign": "SteadyDancer Pose Align (official)",
    "SteadyDancerNegativePose": "SteadyDancer Negative Pose (official)",
    "SteadyDancerPoseGuidance": "SteadyDancer Pose Guidance (official)",
}
