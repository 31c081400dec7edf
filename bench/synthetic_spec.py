"""Derive the synthetic checkpoints' spec from the pinned node packs' model classes.

Each model is built on the meta device with the classes its loader builds (no memory, no
weights), and its parameter names and shapes are read off; dtypes follow each published
file's format. Needs a ComfyUI tree with WanVideoWrapper in custom_nodes and torch and
accelerate importable; the bench's `spec` command calls this.
"""

from __future__ import annotations

import importlib
import json
import sys
import types
from pathlib import Path
from typing import Any

from ci import pins

WAN_14B = {
    "model_type": "i2v",
    "in_dim": 36,
    "dim": 5120,
    "in_features": 5120,
    "out_features": 5120,
    "ffn_dim": 13824,
    "ffn2_dim": 13824,
    "num_heads": 40,
    "num_layers": 40,
    "out_dim": 16,
}
"""Wan 2.1 I2V 14B as WanVideoWrapper's loader configures it for a 5120-wide checkpoint."""
POSE_CHANNELS = 16
"""SteadyDancer's pose latents, as the loader adds its modules."""


def wrapper_package(comfyui: Path) -> str:
    """Make ComfyUI and WanVideoWrapper's modules importable without running the pack's
    node registration; returns the package name to import them under."""
    sys.path.insert(0, str(comfyui))
    import comfy.cli_args

    comfy.cli_args.args.cpu = True  # model_management must not look for a GPU at import
    name = "wanvideowrapper_spec"
    package = types.ModuleType(name)
    package.__path__ = [str(comfyui / "custom_nodes" / "ComfyUI-WanVideoWrapper")]
    sys.modules[name] = package
    return name


def steadydancer_dit(package: str) -> dict[str, tuple[int, ...]]:
    import torch
    from accelerate import init_empty_weights
    from torch import nn

    model = importlib.import_module(f"{package}.wanvideo.modules.model")
    dcd = importlib.import_module(f"{package}.steadydancer.mobilenetv2_dcd")
    archs = importlib.import_module(f"{package}.steadydancer.small_archs")
    c, patch = POSE_CHANNELS, (1, 2, 2)
    with init_empty_weights():
        dit = model.WanModel(**WAN_14B, main_device=torch.device("cpu"), dtype=torch.bfloat16)
        dim, in_dim = WAN_14B["dim"], WAN_14B["in_dim"]
        dit.patch_embedding_fuse = nn.Conv3d(in_dim + 2 * c, dim, kernel_size=patch, stride=patch)
        dit.patch_embedding_ref_c = nn.Conv3d(c, dim, kernel_size=patch, stride=patch)
        dit.condition_embedding_spatial = dcd.DYModule(inp=c, oup=c)
        dit.condition_embedding_temporal = nn.Sequential(
            *[
                layer
                for _ in range(3)
                for layer in (
                    archs.FactorConv3d(
                        in_channels=c, out_channels=c, kernel_size=(3, 3, 3), stride=1
                    ),
                    nn.SiLU(),
                )
            ]
        )
        dit.condition_embedding_align = archs.PoseRefNetNoBNV3(
            in_channels_x=16, in_channels_c=16, hidden_dim=128, num_heads=8
        )
    # named_parameters, not state_dict: the loader assigns exactly these (aliases once).
    return {name: tuple(p.shape) for name, p in dit.named_parameters()}


def umt5_encoder(package: str) -> dict[str, tuple[int, ...]]:
    import torch
    from accelerate import init_empty_weights

    t5 = importlib.import_module(f"{package}.wanvideo.modules.t5")
    with init_empty_weights():
        encoder = t5.umt5_xxl(
            encoder_only=True, return_tokenizer=False, dtype=torch.bfloat16, device="cpu"
        )
    return {name: tuple(p.shape) for name, p in encoder.named_parameters()}


def wan_vae(package: str) -> dict[str, tuple[int, ...]]:
    import torch
    from accelerate import init_empty_weights

    vae = importlib.import_module(f"{package}.wanvideo.wan_video_vae")
    with init_empty_weights():
        model = vae.WanVideoVAE(dtype=torch.bfloat16)
    # The loader's load_state_dict is strict: buffers count too.
    return {name: tuple(t.shape) for name, t in model.model.state_dict().items()}


def clip_vision_h(comfyui: Path) -> dict[str, tuple[int, ...]]:
    import comfy.clip_model
    import comfy.ops
    import torch

    config = json.loads((comfyui / "comfy" / "clip_vision_config_h.json").read_text())
    model = comfy.clip_model.CLIPVisionModelProjection(
        config, torch.float16, "meta", comfy.ops.manual_cast
    )
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


def fp8_scaled(shapes: dict[str, tuple[int, ...]]) -> list[list[Any]]:
    """Kijai's fp8-scaled format: each 2-D weight in float8_e4m3fn with a float32 scale."""
    out: list[list[Any]] = []
    for name, shape in shapes.items():
        if len(shape) == 2 and name.endswith(".weight"):
            out.append([name, "F8_E4M3", list(shape)])
            out.append([name.removesuffix("weight") + "scale_weight", "F32", []])
        else:
            out.append([name, "BF16", list(shape)])
    return out


def fp8_t5(shapes: dict[str, tuple[int, ...]]) -> list[list[Any]]:
    """The fp8 umT5 file: 2-D weights in float8_e4m3fn, unscaled, the token table in bf16."""
    return [
        [
            name,
            "F8_E4M3" if len(shape) == 2 and name != "token_embedding.weight" else "BF16",
            list(shape),
        ]
        for name, shape in shapes.items()
    ]


def plain(shapes: dict[str, tuple[int, ...]], dtype: str) -> list[list[Any]]:
    return [[name, dtype, list(shape)] for name, shape in shapes.items()]


def derive(comfyui: Path) -> dict[str, Any]:
    package = wrapper_package(comfyui)
    dit, t5 = steadydancer_dit(package), umt5_encoder(package)
    return {
        "derived_from": {pin.name: pin.commit for pin in (pins.COMFYUI, *pins.NODE_PACKS)},
        "files": {
            "steadydancer-fp8": fp8_scaled(dit),
            "steadydancer-fp16": plain(dit, "F16"),
            "umt5-xxl-fp8": fp8_t5(t5),
            "umt5-xxl-bf16": plain(t5, "BF16"),
            "wan-vae-bf16": plain(wan_vae(package), "BF16"),
            "clip-vision-h": plain(clip_vision_h(comfyui), "F16"),
        },
    }


def dumps(spec: dict[str, Any]) -> str:
    """One tensor a line, so a pin bump's diff reads as the tensors that changed."""
    lines = ["{", f' "derived_from": {json.dumps(spec["derived_from"])},', ' "files": {']
    files = list(spec["files"].items())
    for index, (key, items) in enumerate(files):
        lines.append(f"  {json.dumps(key)}: [")
        lines.extend(
            f"   {json.dumps(item)}" + ("," if i < len(items) - 1 else "")
            for i, item in enumerate(items)
        )
        lines.append("  ]" + ("," if index < len(files) - 1 else ""))
    lines += [" }", "}"]
    return "\n".join(lines) + "\n"
