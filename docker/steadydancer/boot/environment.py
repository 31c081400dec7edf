"""What ComfyUI, the start hooks and SSH sessions may see of the pod's environment: a list.

A pod's environment holds secrets under any name (BUCKET_SECRET_ACCESS_KEY,
RUNPOD_AI_API_KEY, DB_PASS, GITHUB_PAT, an *_AUTH, a credentials JSON), so nothing is
passed by "everything but what looks secret": ComfyUI (and so every custom node), the
hooks and SSH sessions get the names below and nothing else. A deployment that wants a
hook or a node to see more names them in STEADYDANCER_PASS_ENV (space or comma
separated); the serverless worker, which delivers to the bucket and speaks to RunPod,
keeps the whole environment except the Hub token. docs/security.md lists the names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

PASSED = frozenset(
    {
        # The process and its locale.
        "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TERM", "TMPDIR",
        # The image's Python and package tools.
        "PYTHONPATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "VIRTUAL_ENV",
        "PIP_CONSTRAINT", "PIP_CACHE_DIR", "UV_CONSTRAINT", "UV_OVERRIDE", "UV_CACHE_DIR",
        "UV_PYTHON_INSTALL_DIR", "UV_PYTHON_PREFERENCE", "UV_SYSTEM_PYTHON",
        # CUDA, the driver and PyTorch.
        "LD_LIBRARY_PATH", "CUDA_HOME", "CUDA_VERSION", "CUDA_VISIBLE_DEVICES",
        "NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES", "NVIDIA_REQUIRE_CUDA",
        "NVIDIA_DISABLE_REQUIRE", "PYTORCH_CUDA_ALLOC_CONF", "TORCH_HOME", "TRITON_CACHE_DIR",
        "OMP_NUM_THREADS", "MKL_NUM_THREADS", "XDG_CACHE_HOME",
        # Hugging Face caches and settings, never its token.
        "HF_HOME", "HF_HUB_CACHE", "HF_ENDPOINT", "HF_HUB_OFFLINE", "HF_HUB_DISABLE_TELEMETRY",
        "HF_HUB_ENABLE_HF_TRANSFER", "HF_XET_HIGH_PERFORMANCE",
        # ComfyUI's and this image's settings.
        "COMFYUI_DIR", "COMFYUI_PORT", "COMFYUI_ARGS", "STEADYDANCER_VARIANT",
        "STEADYDANCER_ATTENTION", "STEADYDANCER_WORKFLOWS", "STEADYDANCER_MODELS_BAKED",
        "ENABLE_STEADYDANCER", "ENABLE_FLASH_ATTN", "STEADYDANCER_ALLOW_CPU",
        # What RunPod says about the pod (no key among them).
        "RUNPOD_POD_ID", "RUNPOD_POD_HOSTNAME", "RUNPOD_GPU_COUNT", "RUNPOD_CPU_COUNT",
        "RUNPOD_PUBLIC_IP", "RUNPOD_DC_ID", "RUNPOD_VOLUME_ID",
    }
)  # fmt: skip
PASSED_PATTERNS = (re.compile(r"LC_[A-Z]+"), re.compile(r"RUNPOD_TCP_PORT_\d+"))
EXTRA = "STEADYDANCER_PASS_ENV"
WORKER_WITHHELD = frozenset({"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "PUBLIC_KEY"})
"""The worker keeps everything else: the bucket's keys and RunPod's are its to use."""


def passed(name: str, extra: frozenset[str] = frozenset()) -> bool:
    return (
        name in PASSED
        or name in extra
        or any(pattern.fullmatch(name) for pattern in PASSED_PATTERNS)
    )


def extra_names(env: Mapping[str, str]) -> frozenset[str]:
    return frozenset(re.split(r"[\s,]+", env.get(EXTRA, "").strip())) - {""}


def for_children(env: Mapping[str, str]) -> dict[str, str]:
    """The environment of ComfyUI, the hooks and SSH sessions."""
    extra = extra_names(env)
    return {name: value for name, value in env.items() if passed(name, extra)}


def for_worker(env: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in env.items() if name not in WORKER_WITHHELD}
