"""SteadyDancer's pose guidance: text guidance plus a separate push away from a bad pose.

As MCG-NJU/SteadyDancer's wan/image2video_dancer.py combines its three predictions - cond
(positive text, positive pose), uncond_context (negative text, positive pose) and
uncond_condition (positive text, the augmented negative pose) - at step `index` of `steps`:
inside the window (start < index/steps < end, both strict) the noise is
uncond_context + g * (cond - uncond_context) + c * (cond - uncond_condition); outside it,
plain text guidance uncond_context + g * (cond - uncond_context), and the third
prediction is not needed. Defaults are the official command line's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PoseGuidance:
    text_scale: float = 5.0
    pose_scale: float = 1.5
    start: float = 0.1
    end: float = 0.4

    def __post_init__(self) -> None:
        if not 0.0 <= self.start <= self.end <= 1.0:
            raise ValueError(
                f"pose guidance window {self.start}..{self.end} must satisfy 0 <= start <= end <= 1"
            )

    def in_window(self, index: int, steps: int) -> bool:
        """Whether step `index` (0-based) of `steps` takes the negative-pose pass."""
        return self.start < index / steps < self.end

    def combine(
        self, cond: Any, uncond_context: Any, uncond_condition: Any | None, index: int, steps: int
    ) -> Any:
        """The guided prediction; works on tensors or numbers alike."""
        guided = uncond_context + self.text_scale * (cond - uncond_context)
        if not self.in_window(index, steps):
            return guided
        if uncond_condition is None:
            raise ValueError(
                f"step {index} of {steps} is in the pose window: "
                "it needs the negative-pose prediction"
            )
        return guided + self.pose_scale * (cond - uncond_condition)
