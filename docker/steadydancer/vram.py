"""How many of the DiT's 40 blocks to keep in CPU memory so a render fits a GPU.

The sampler's peak (torch's max reserved memory, as WanVideoWrapper logs it) was
measured on an H200 with weights of the real shapes (bench/results/, `python -m
bench.gpu_render`), at 480x832 with 4 steps:

  fp8,  33 frames, no swap: 18.28 GiB   fp8, 33 frames, 35 swapped:  5.19 GiB
  fp8,  81 frames, no swap: 20.75 GiB   fp8, 81 frames, 20 swapped: 12.81 GiB
  fp16, 33 frames, no swap: 33.44 GiB

They fit, within 0.3 GiB, peak = DiT bytes + 1.15 GiB + 1.32e-4 GiB per token (latent
frames x height/16 x width/16), less a 40th of the DiT for each swapped block. The
GPU's memory must also hold the CUDA context and what the other nodes keep (about
1.2 GiB on the H200: nvidia-smi's peak less torch's); HEADROOM_GIB covers that and a
desktop or a second process. Swapping trades speed for memory, so the fewest blocks
that fit are chosen: on the H200, 35 swapped blocks took the 33-frame fp8 step from
1.75 s to 7.0 s, 20 blocks the 81-frame one from 3.75 s to 5.25 s.
"""

from __future__ import annotations

import math
from typing import Any

from steadydancer import catalog

BLOCKS = 40
DIT_PARAMETERS = 16_396_718_736
"""SteadyDancer's DiT (Wan 2.1 I2V 14B and its pose modules), counted on the meta device."""
BYTES_PER_WEIGHT = {"fp8": 1.0, "fp16": 2.0, "gguf-q5_k_m": 5.5 / 8, "gguf-q6_k": 6.5625 / 8}
"""For files whose size the catalog does not record: GGUF K-quants' bits per weight."""
FIXED_GIB = 1.15
PER_TOKEN_GIB = 1.32e-4
HEADROOM_GIB = 2.0
GIB = 2**30


def tokens(width: int, height: int, frames: int) -> int:
    """The video's tokens: Wan's VAE packs 4 frames a latent after the first, 8x8 pixels a
    latent cell, and the DiT patches 2x2 cells. (The memory fit above counts these.)"""
    return ((frames - 1) // 4 + 1) * (height // 16) * (width // 16)


REFERENCE_LATENT_FRAMES = 2
"""Latent frames SteadyDancer appends to the video's before its DiT: the reference image's and
the reference pose's (WanVideoWrapper's SteadyDancer branch concatenates them along time)."""


def sequence(width: int, height: int, frames: int) -> int:
    """The DiT's whole sequence in a SteadyDancer render: the video's tokens and the
    reference frames'. Attention's work grows with its square."""
    return tokens(width, height, frames) + REFERENCE_LATENT_FRAMES * (height // 16) * (width // 16)


def dit_gib(variant: str) -> float:
    entry = next(e for e in catalog.files_for(variant) if e.key.startswith("steadydancer-"))
    size = entry.size or DIT_PARAMETERS * BYTES_PER_WEIGHT.get(variant, 2.0)
    return size / GIB


def peak_gib(variant: str, width: int, height: int, frames: int, swapped: int = 0) -> float:
    """The sampler's expected peak (torch reserved) with `swapped` blocks in CPU memory."""
    dit = dit_gib(variant)
    return dit * (1 - swapped / BLOCKS) + FIXED_GIB + PER_TOKEN_GIB * tokens(width, height, frames)


def blocks_to_swap(vram_bytes: int, variant: str, width: int, height: int, frames: int) -> int:
    """The fewest blocks to swap so the peak and the headroom fit in `vram_bytes`; all 40 when
    even that does not fit (the render may then still run out, at a size no swap can save)."""
    over = peak_gib(variant, width, height, frames) + HEADROOM_GIB - vram_bytes / GIB
    if over <= 0:
        return 0
    return min(BLOCKS, math.ceil(over / (dit_gib(variant) / BLOCKS)))


def choose_block_swap(
    parameters: dict[str, Any], values: dict[str, Any], variant: str, device: dict[str, Any]
) -> int | None:
    """The block_swap to render with when the workflow has one and the caller left it unset,
    from the served GPU's memory; None when there is nothing to choose."""
    if "block_swap" not in parameters or "block_swap" in values:
        return None
    if device.get("type") != "cuda" or not device.get("vram_total"):
        return None

    def value(name: str) -> int:
        return int(values.get(name, parameters[name].default))

    return blocks_to_swap(
        int(device["vram_total"]), variant, value("width"), value("height"), value("frames")
    )
