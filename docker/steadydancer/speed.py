"""The speed settings of the SteadyDancer workflows and the defaults chosen for the served GPU.

Four workflow parameters change how WanVideoWrapper computes, not what:

  compute    bf16: the weights are stored as the variant's file has them and every matmul
             runs in bf16 (today's path). fp8: the linears run through torch._scaled_mm in
             fp8 (the wrapper's *_fast quantization), each merged weight with a per-tensor
             scale of its own (build/wanvideo.patch); it needs a GPU of compute capability
             8.9 or newer (Ada, Hopper, Blackwell) and the LoRA merged at load, since the
             wrapper refuses fp8 matmul with a LoRA applied on the fly.
  attention  the loader's attention_mode; "auto" keeps the image's branch (workflows.py).
  compile    torch.compile of the DiT blocks (WanVideoTorchCompileSettings into the loader).
  resident   on: the models stay on the GPU between jobs (loaded to the GPU, never offloaded
             after a node) and text encodings are cached on disk, so a warm job reloads
             nothing and a repeated prompt skips the T5 encoder.

"auto" values are resolved by `choose` from the GPU ComfyUI reports (its name and memory),
the way vram.py chooses block_swap: fp8 only where the GPU computes in fp8 and the path
passed its quality gate (FP8_GATE), resident only where everything fits with no block swap.
The nodes are found by class type, so every SteadyDancer workflow takes the same settings.
"""

from __future__ import annotations

import re
from typing import Any

from steadydancer import catalog, vram

COMPUTE = ("auto", "bf16", "fp8")
ATTENTION = ("auto", "sdpa", "flash_attn_2", "flash_attn_3", "sageattn")
SWITCH = ("auto", "on", "off")
PARAMETERS = {"compute": COMPUTE, "attention": ATTENTION, "compile": SWITCH, "resident": SWITCH}

FP8_GATE: dict[str, str] = {}
"""Variant -> the bench result whose quality gate the fp8 path passed against bf16 on the same
seed and inputs (bench/results/). A variant missing here never gets fp8 by default."""

FP8_GPUS = re.compile(
    r"\b(H100|H200|H20|H800|GH200|B100|B200|GB200|L4|L40S?|RTX 40\d0|RTX 50\d0|"
    r"RTX 6000 Ada|RTX PRO \d+ Blackwell|RTX 2000 Ada|RTX 4000 Ada|RTX 4500 Ada|RTX 5000 Ada)\b"
)
"""NVIDIA GPUs of compute capability 8.9 or newer, by the name ComfyUI reports; the matmul
units of older cards (A100, A10, RTX 30xx, V100, T4) have no fp8."""

QUANTIZATION = {"fp8": "fp8_e4m3fn_scaled_fast", "fp16": "fp8_e4m3fn_fast"}
"""The wrapper's fp8-matmul quantization for each variant's checkpoint: the fp8 file is
scaled (per-tensor weight scales), the fp16 one is cast to fp8 at load."""

OFFLOADING = ("WanVideoClipVisionEncode", "WanVideoImageToVideoEncode", "WanVideoSampler")
"""Nodes with a force_offload input: each moves its model to the CPU when it is done."""
COMPILE_NODE = "speed-compile"


class SpeedError(ValueError):
    """A speed setting that cannot be rendered, named with what would be accepted."""


def fp8_capable(device_name: str) -> bool:
    return bool(FP8_GPUS.search(device_name))


def nodes_of(prompt: dict[str, Any], class_type: str) -> list[str]:
    return [key for key, node in prompt.items() if node["class_type"] == class_type]


def other_models_gib(variant: str) -> float:
    """What stays on the GPU beside the DiT when resident: T5, CLIP vision and the VAE."""
    return sum(
        (entry.size or 0) / vram.GIB
        for entry in catalog.files_for(variant)
        if entry.folder in ("text_encoders", "clip_vision", "vae")
    )


def choose(
    parameters: dict[str, Any], values: dict[str, Any], variant: str, device: dict[str, Any]
) -> dict[str, str]:
    """The speed settings left at "auto" (or unset), resolved for the served GPU; only those
    the workflow has. A CPU or unknown device keeps today's path."""
    chosen: dict[str, str] = {}
    name = str(device.get("name") or "")
    cuda = device.get("type") == "cuda"

    def value(key: str) -> Any:
        return values.get(key, parameters[key].default)

    if "compute" in parameters and value("compute") == "auto":
        chosen["compute"] = "fp8" if cuda and fp8_capable(name) and variant in FP8_GATE else "bf16"
    if "resident" in parameters and value("resident") == "auto":
        total = int(device.get("vram_total") or 0)
        size = [int(value(key)) for key in ("width", "height", "frames")]
        needed = vram.peak_gib(variant, *size) + other_models_gib(variant) + vram.HEADROOM_GIB
        swap = int(values.get("block_swap", 0) or 0)
        chosen["resident"] = "on" if cuda and swap == 0 and total / vram.GIB >= needed else "off"
    if "compile" in parameters and value("compile") == "auto":
        chosen["compile"] = "off"
    return chosen


def apply(prompt: dict[str, Any], settings: dict[str, Any], variant: str) -> None:
    """Set the prompt's nodes for `settings` (compute, attention, compile, resident), in place.
    "auto" left unresolved renders today's path."""
    loaders = nodes_of(prompt, "WanVideoModelLoader")
    if not loaders:
        return
    for key, value in settings.items():
        if value not in PARAMETERS[key]:
            raise SpeedError(f"{key}={value!r}; accepted: {', '.join(PARAMETERS[key])}")
    attention = settings.get("attention", "auto")
    if attention != "auto":
        for node in loaders:
            prompt[node]["inputs"]["attention_mode"] = attention
    if settings.get("compute") == "fp8":
        if variant not in QUANTIZATION:
            raise SpeedError(
                f"compute=fp8 needs a checkpoint the wrapper can run in fp8 "
                f"({', '.join(QUANTIZATION)}); variant {variant} has none: use compute=bf16"
            )
        merge_loras(prompt, loaders)
        for node in loaders:
            prompt[node]["inputs"]["quantization"] = QUANTIZATION[variant]
    if settings.get("compile") == "on":
        prompt[COMPILE_NODE] = {
            "class_type": "WanVideoTorchCompileSettings",
            "inputs": {
                "backend": "inductor",
                "fullgraph": False,
                "mode": "default",
                "dynamic": False,
                "dynamo_cache_size_limit": 64,
                "compile_transformer_blocks_only": True,
            },
        }
        for node in loaders:
            prompt[node]["inputs"]["compile_args"] = [COMPILE_NODE, 0]
    if settings.get("resident") == "on":
        for node in loaders:
            prompt[node]["inputs"]["load_device"] = "main_device"
        for class_type in OFFLOADING:
            for node in nodes_of(prompt, class_type):
                prompt[node]["inputs"]["force_offload"] = False
        for node in nodes_of(prompt, "WanVideoTextEncodeCached"):
            prompt[node]["inputs"]["use_disk_cache"] = True


def merge_loras(prompt: dict[str, Any], loaders: list[str]) -> None:
    """Give each LoRA to its model loader to merge at load, in place of WanVideoSetLoRAs, which
    applies it on the fly (the path fp8 matmul refuses)."""
    for setter in nodes_of(prompt, "WanVideoSetLoRAs"):
        model = prompt[setter]["inputs"]["model"]
        lora = prompt[setter]["inputs"]["lora"]
        if model[0] not in loaders:
            raise SpeedError(f"node {setter}: its model does not come from a model loader")
        prompt[model[0]]["inputs"]["lora"] = lora
        prompt[lora[0]]["inputs"]["merge_loras"] = True
        del prompt[setter]
        for node in prompt.values():
            for name, value in node["inputs"].items():
                if value == [setter, 0]:
                    node["inputs"][name] = model
