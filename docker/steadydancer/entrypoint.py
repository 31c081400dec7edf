"""The image's entrypoint: start ComfyUI on 0.0.0.0:8188 with the image's attention branch.

Environment:
  COMFYUI_DIR             where ComfyUI lives (set by the image)
  COMFYUI_PORT            listening port, 8188 by default
  STEADYDANCER_ATTENTION  the branch recorded at build time: flash_attn_2 or xformers
  ENABLE_FLASH_ATTN       "false" keeps core ComfyUI on PyTorch SDPA even in a flash-attn image
  COMFYUI_ARGS            extra ComfyUI arguments, split like a shell would
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping

DEFAULT_COMFYUI_DIR = "/opt/ComfyUI"
DEFAULT_PORT = "8188"
# Driving videos are uploaded through /upload/image, whose default limit is 100 MB.
MAX_UPLOAD_MB = "2048"


def attention_flags(env: Mapping[str, str]) -> list[str]:
    """ComfyUI's core attention flag for the recorded branch.

    With xformers installed ComfyUI picks it up by itself; in a flash-attn image
    core models use flash-attn unless ENABLE_FLASH_ATTN=false asks for SDPA.
    """
    if env.get("STEADYDANCER_ATTENTION") != "flash_attn_2":
        return []
    if env.get("ENABLE_FLASH_ATTN", "true").strip().lower() in {"0", "false", "no", "off"}:
        return ["--use-pytorch-cross-attention"]
    return ["--use-flash-attention"]


def comfyui_argv(env: Mapping[str, str], python: str = sys.executable) -> list[str]:
    comfyui_dir = env.get("COMFYUI_DIR", DEFAULT_COMFYUI_DIR)
    return [
        python,
        os.path.join(comfyui_dir, "main.py"),
        "--listen",
        "0.0.0.0",
        "--port",
        env.get("COMFYUI_PORT", DEFAULT_PORT),
        "--max-upload-size",
        MAX_UPLOAD_MB,
        *attention_flags(env),
        *shlex.split(env.get("COMFYUI_ARGS", "")),
    ]


def main() -> None:
    argv = comfyui_argv(os.environ)
    print(f"steadydancer: starting {shlex.join(argv)}", flush=True)
    os.chdir(os.path.dirname(argv[1]))
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
