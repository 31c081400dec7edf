"""The layers composed in order: each function extends the one before it.

The order follows what a change costs. Models come right after the heavy
compiled layers and before ComfyUI, so bumping a ComfyUI or node pin re-copies
no model bytes, switching variant recompiles nothing, and editing docker/ or
workflows/ touches only the runtime layer. Every layer that installs Python
packages ends with the drift guard over all the pins installed so far.
"""

from __future__ import annotations

import dagger

from ci import pins
from ci.installs import Installer, guard
from ci.layers.attention import AttentionPlan, Probe, attention, choose, pinned
from ci.layers.base import base
from ci.layers.comfyui import comfyui, nodes
from ci.layers.models import with_models
from ci.layers.openmmlab import openmmlab
from ci.layers.runtime import runtime
from ci.layers.torch_stack import torch_stack
from ci.options import BuildOptions

OPENMMLAB_PINS = (pins.OPENCV, pins.MMCV, pins.MMENGINE, pins.MMDET, pins.MMPOSE)
COMFYUI_PINS = (pins.COMFY_KITCHEN, pins.TRANSFORMERS)
NODES_PINS = (pins.DIFFUSERS, pins.ONNXRUNTIME_GPU)


def torch_pins(profile: pins.Profile) -> list[str]:
    return [*profile.torch_requirements(), pins.NUMPY.requirement, pins.SETUPTOOLS.requirement]


def guarded(
    profile: pins.Profile, plan: AttentionPlan | None, *groups: tuple[pins.Pin, ...]
) -> list[str]:
    attention_pin = [pinned(plan)] if plan else []
    return [
        *torch_pins(profile),
        *(pin.requirement for group in groups for pin in group),
        *attention_pin,
    ]


def base_layer(profile: pins.Profile) -> dagger.Container:
    return base(Installer.for_profile(profile))


def torch_layer(profile: pins.Profile, builder: bool = False) -> dagger.Container:
    """The torch trio over the image's base, or over the devel base for a builder."""
    installer = Installer.for_profile(profile)
    return guard(torch_stack(base(installer, builder), installer), torch_pins(profile))


def openmmlab_layer(profile: pins.Profile) -> dagger.Container:
    ctr = openmmlab(
        torch_layer(profile), torch_layer(profile, builder=True), Installer.for_profile(profile)
    )
    return guard(ctr, guarded(profile, None, OPENMMLAB_PINS))


async def plan_attention(options: BuildOptions, probe: Probe) -> AttentionPlan:
    return await choose(
        options.attention,
        options.profile,
        torch_layer(options.profile, builder=True),
        probe,
    )


def attention_layer(profile: pins.Profile, plan: AttentionPlan) -> dagger.Container:
    installer = Installer.for_profile(profile)
    ctr = attention(openmmlab_layer(profile), torch_layer(profile, builder=True), installer, plan)
    return guard(ctr, guarded(profile, plan, OPENMMLAB_PINS))


def comfyui_layer(
    profile: pins.Profile,
    plan: AttentionPlan,
    variant: str | None = None,
    hf_token: dagger.Secret | None = None,
) -> dagger.Container:
    """ComfyUI over the attention layer, with a variant's models between them when baked."""
    ctr = attention_layer(profile, plan)
    if variant is not None:
        ctr = with_models(ctr, variant, hf_token)
    ctr = comfyui(ctr, Installer.for_profile(profile))
    return guard(ctr, guarded(profile, plan, OPENMMLAB_PINS, COMFYUI_PINS))


def nodes_layer(
    profile: pins.Profile,
    plan: AttentionPlan,
    variant: str | None = None,
    hf_token: dagger.Secret | None = None,
) -> dagger.Container:
    installer = Installer.for_profile(profile)
    ctr = nodes(comfyui_layer(profile, plan, variant, hf_token), installer)
    # The serverless worker's SDK, on its own: a node pin bump keeps this install.
    ctr = installer.install(ctr, [pins.RUNPOD.requirement])
    return guard(ctr, guarded(profile, plan, OPENMMLAB_PINS, COMFYUI_PINS, NODES_PINS))


def image(
    options: BuildOptions, plan: AttentionPlan, hf_token: dagger.Secret | None = None
) -> dagger.Container:
    baked = options.variant if options.bake_models else None
    return runtime(
        nodes_layer(options.profile, plan, baked, hf_token),
        options.profile,
        options.variant,
        plan,
        options.bake_models,
    )
