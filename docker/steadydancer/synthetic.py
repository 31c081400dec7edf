"""Smoke-test inputs made by code, so nothing is downloaded: a reference image and a pose video.

The pose video draws an OpenPose-style skeleton (the limb colours pose models are
trained on) that waves its arms and sways, on black, encoded as h264 mp4.
"""

from __future__ import annotations

import io
import math
from fractions import Fraction

from PIL import Image, ImageDraw

# OpenPose body: (from, to) joint pairs and the colour of each limb.
LIMBS = [
    ((0, 1), (255, 0, 0)), ((1, 2), (255, 85, 0)), ((2, 3), (255, 170, 0)),
    ((3, 4), (255, 255, 0)), ((1, 5), (170, 255, 0)), ((5, 6), (85, 255, 0)),
    ((6, 7), (0, 255, 0)), ((1, 8), (0, 255, 85)), ((8, 9), (0, 255, 170)),
    ((9, 10), (0, 255, 255)), ((1, 11), (0, 170, 255)), ((11, 12), (0, 85, 255)),
    ((12, 13), (0, 0, 255)),
]  # fmt: skip


def joints(t: float, width: int, height: int) -> list[tuple[float, float]]:
    """Body joints at time t (0..1), in pixels: neck-centred, arms waving, hips swaying."""
    cx = width / 2 + math.sin(2 * math.pi * t) * width * 0.04
    unit = min(width, height * 0.6) / 6
    top = height * 0.18
    wave = math.sin(4 * math.pi * t)
    neck = (cx, top + unit)

    def arm(side: int) -> list[tuple[float, float]]:
        shoulder = (cx + side * unit * 0.9, neck[1])
        angle = math.pi / 2 - side * (0.3 + 0.9 * (wave if side > 0 else -wave))
        elbow = (
            shoulder[0] + side * unit * math.cos(angle) * 1.1,
            shoulder[1] + unit * math.sin(angle) * 1.1,
        )
        hand = (
            elbow[0] + side * unit * math.cos(angle - 0.4),
            elbow[1] + unit * math.sin(angle - 0.4),
        )
        return [shoulder, elbow, hand]

    def leg(side: int) -> list[tuple[float, float]]:
        hip = (cx + side * unit * 0.5, neck[1] + unit * 2.4)
        knee = (hip[0] + side * unit * 0.15, hip[1] + unit * 1.3)
        ankle = (knee[0], knee[1] + unit * 1.3)
        return [hip, knee, ankle]

    return [(cx, top), neck, *arm(-1), *arm(1), *leg(-1), *leg(1)]


def pose_frame(t: float, width: int, height: int) -> Image.Image:
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    points = joints(t, width, height)
    thickness = max(2, width // 60)
    for (a, b), colour in LIMBS:
        draw.line([points[a], points[b]], fill=colour, width=thickness)
    for x, y in points:
        draw.ellipse(
            [x - thickness, y - thickness, x + thickness, y + thickness], fill=(255, 255, 255)
        )
    return image


def pose_video(width: int = 480, height: int = 832, frames: int = 33, fps: int = 16) -> bytes:
    """An h264 mp4 of the skeleton moving through one cycle."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            frame = av.VideoFrame.from_image(pose_frame(index / frames, width, height))  # type: ignore[no-untyped-call]
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def reference_image(width: int = 480, height: int = 832) -> bytes:
    """A PNG of a plain figure standing where the skeleton's first frame stands."""
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    for y in range(height):
        shade = int(90 + 120 * y / height)
        draw.line([(0, y), (width, y)], fill=(shade, shade + 20, 200))
    points = joints(0.0, width, height)
    limb = max(6, width // 20)
    for (a, b), _ in LIMBS:
        draw.line([points[a], points[b]], fill=(60, 40, 120), width=limb)
    head = points[0]
    radius = min(width, height) / 14
    draw.ellipse(
        [head[0] - radius, head[1] - radius, head[0] + radius, head[1] + radius],
        fill=(235, 200, 170),
    )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
