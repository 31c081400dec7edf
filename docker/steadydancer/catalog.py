"""The model files each variant needs, where they come from and where ComfyUI finds them.

Read by the build (to fetch and bake the models) and, inside the image, at boot.
Sizes and digests are recorded only where they were read from the Hub's file pages.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

HUB = "https://huggingface.co"


@dataclass(frozen=True)
class ModelFile:
    """One file in a Hugging Face repository and its place under ComfyUI's models/."""

    repo: str
    path: str
    folder: str
    revision: str = "main"
    size: int | None = None
    sha256: str | None = None

    @property
    def filename(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def target(self) -> str:
        """Path relative to ComfyUI's models/ directory."""
        return f"{self.folder}/{self.filename}"

    @property
    def url(self) -> str:
        return f"{HUB}/{self.repo}/blob/{self.revision}/{self.path}"

    def to_manifest(self) -> dict[str, object]:
        return {**asdict(self), "target": self.target}


WAN_VAE = ModelFile("Kijai/WanVideo_comfy", "Wan2_1_VAE_bf16.safetensors", "vae/wanvideo")
UMT5_BF16 = ModelFile("Kijai/WanVideo_comfy", "umt5-xxl-enc-bf16.safetensors", "text_encoders")
CLIP_VISION_H = ModelFile(
    "Comfy-Org/Wan_2.1_ComfyUI_repackaged",
    "split_files/clip_vision/clip_vision_h.safetensors",
    "clip_vision",
)
LIGHTX2V_LORA = ModelFile(
    "Kijai/WanVideo_comfy",
    "Lightx2v/lightx2v_I2V_14B_480p_cfg_step_distill_rank64_bf16.safetensors",
    "loras/WanVideo/Lightx2v",
)
YOLOV10M = ModelFile(
    "Wan-AI/Wan2.2-Animate-14B", "process_checkpoint/det/yolov10m.onnx", "detection/onnx"
)
# ViTPose-H keeps its weights in a side file that must sit beside the .onnx.
VITPOSE_H = ModelFile(
    "Kijai/vitpose_comfy", "onnx/vitpose_h_wholebody_model.onnx", "detection/onnx", size=420_252
)
VITPOSE_H_DATA = ModelFile(
    "Kijai/vitpose_comfy",
    "onnx/vitpose_h_wholebody_data.bin",
    "detection/onnx",
    size=2_548_958_740,
)
SHARED = (WAN_VAE, UMT5_BF16, CLIP_VISION_H, LIGHTX2V_LORA, YOLOV10M, VITPOSE_H, VITPOSE_H_DATA)

STEADYDANCER_FOLDER = "diffusion_models/WanVideo/SteadyDancer"

VARIANTS: dict[str, tuple[ModelFile, ...]] = {
    "fp8": (
        ModelFile(
            "Kijai/WanVideo_comfy_fp8_scaled",
            "SteadyDancer/Wan21_SteadyDancer_fp8_e4m3fn_scaled_KJ.safetensors",
            STEADYDANCER_FOLDER,
            size=16_410_198_058,
            sha256="4c712f84c994b4ead830d145c501e1065c75534a6bdb312dd695f907956ea97f",
        ),
        *SHARED,
    ),
    "fp16": (
        ModelFile(
            "Kijai/WanVideo_comfy",
            "SteadyDancer/Wan21_I2V_SteadyDancer_fp16.safetensors",
            STEADYDANCER_FOLDER,
        ),
        *SHARED,
    ),
}
DEFAULT_VARIANT = "fp8"


def files_for(variant: str) -> tuple[ModelFile, ...]:
    """The files of a variant; an unknown name is a ValueError naming the known ones."""
    try:
        return VARIANTS[variant]
    except KeyError:
        known = ", ".join(sorted(VARIANTS))
        raise ValueError(f"unknown variant {variant!r}; choose one of: {known}") from None
