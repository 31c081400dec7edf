"""ComfyUI node pack: SteadyDancer's official pose path (the nodes layer installs it as
custom_nodes/ComfyUI-SteadyDancer-Official).

- SteadyDancerDWPose: the official detector (mmdet YOLOX-L + mmpose DWPose-L) on frames;
- SteadyDancerPoseAlign: driving poses aligned to the reference image's body;
- SteadyDancerNegativePose: the seeded augmented negative pose;
- SteadyDancerPoseGuidance: the three-pass pose guidance, its scale and its step window,
  for WanVideoWrapper's sampler (patched at build time to read it:
  steadydancer/build/wanvideo.patch).
Poses travel between them as POSE_KEYPOINTS: {"poses": [Pose, ...], "width", "height"}.
"""

from __future__ import annotations

from steadydancer.nodes.pack import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
