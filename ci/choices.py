"""The module's arguments that take one of a fixed set of values, as Dagger enums.

The CLI matches an enum by member name (case-insensitively), so each member is
named exactly as users type it and `dagger call build --help` lists the choices.
GraphQL enum names hold only letters, digits and underscores: variants such as
`gguf-q5_k_m` and workflows such as `steadydancer-pose` cannot be members, so those
arguments stay strings whose Doc lists the choices, checked by ci/options.py. (A member
`gguf_q5_k_m` standing for `gguf-q5_k_m` would make the CLI's spelling differ from the
catalog's, the smoke client's and STEADYDANCER_VARIANT's: one name for each thing wins.)
The sets themselves live with their data (pins.PROFILES, attention.MODES,
smoke_test.TIERS); tests/test_registration.py holds these enums equal to them.
"""

from __future__ import annotations

import enum

import dagger


@dagger.enum_type
class ProfileName(enum.Enum):
    """CUDA profile of the image."""

    cu124 = "cu124"
    """CUDA 12.4.1 (default; PyPI's torch 2.5.1 build)"""

    cu121 = "cu121"
    """CUDA 12.1.1, for older drivers (torch from the PyTorch cu121 index)"""


@dagger.enum_type
class AttentionMode(enum.Enum):
    """Which attention library the image gets."""

    auto = "auto"
    """flash-attn (release wheel, else source build), else xformers"""

    flash_attn_2 = "flash_attn_2"
    """flash-attn only; the build fails if it cannot be had"""

    xformers = "xformers"
    """xformers only"""


@dagger.enum_type
class Tier(enum.Enum):
    """How far the smoke test goes."""

    boot = "boot"
    """CUDA, the attention backend and the SteadyDancer nodes are up"""

    generate = "generate"
    """boot, then render a clip and verify it"""
