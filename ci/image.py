"""The layers composed in order: each function extends the one before it.

The order follows what a change costs. Models come right after the heavy
compiled layers and before ComfyUI, so bumping a ComfyUI or node pin re-copies
no model bytes, switching variant recompiles nothing, and editing docker/ or
workflows/ touches only the runtime layer.
"""

from __future__ import annotations

import dagger

from ci import paths, pins
from ci.layers.attention import AttentionPlan, Probe, attention, choose
from ci.layers.base import base
from ci.layers.comfyui import comfyui, nodes
from ci.layers.models import models
from ci.layers.openmmlab import openmmlab
from ci.layers.runtime import runtime
from ci.layers.torch_stack import torch_stack
from ci.options import BuildOptions


def torch_layer(profile: pins.Profile) -> dagger.Container:
    return torch_stack(base(profile), profile)


def openmmlab_layer(profile: pins.Profile) -> dagger.Container:
    return openmmlab(torch_layer(profile), profile)


async def plan_attention(options: BuildOptions, probe: Probe) -> AttentionPlan:
    return await choose(
        options.attention,
        options.enable_flash_attn,
        options.profile,
        torch_layer(options.profile),
        probe,
    )


def attention_layer(profile: pins.Profile, plan: AttentionPlan) -> dagger.Container:
    return attention(openmmlab_layer(profile), torch_layer(profile), profile, plan)


def comfyui_layer(
    profile: pins.Profile, plan: AttentionPlan, model_tree: dagger.Directory | None = None
) -> dagger.Container:
    ctr = attention_layer(profile, plan)
    if model_tree is not None:
        ctr = ctr.with_directory(paths.MODELS_DIR, model_tree)
    return comfyui(ctr, profile)


def nodes_layer(
    profile: pins.Profile, plan: AttentionPlan, model_tree: dagger.Directory | None = None
) -> dagger.Container:
    return nodes(comfyui_layer(profile, plan, model_tree), profile)


def image(
    options: BuildOptions, plan: AttentionPlan, hf_token: dagger.Secret | None = None
) -> dagger.Container:
    model_tree = models(options.variant, hf_token) if options.bake_models else None
    return runtime(
        nodes_layer(options.profile, plan, model_tree),
        options.profile,
        options.variant,
        plan,
        options.bake_models,
    )
