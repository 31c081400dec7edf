"""Layer 1: a CUDA image, system packages, and Python in a virtual environment.

The image's own chain starts from the CUDA base image (no toolkit: several GB less
for every pod to pull); the builders that compile CUDA code start from the devel
image of the same CUDA, with the same packages and Python, so their wheels fit.
"""

from __future__ import annotations

import dagger
from dagger import dag

from ci import caches, paths, pins
from ci.installs import Installer

APT_PACKAGES = (
    "build-essential",  # gcc for mmcv/flash-attn builds and for Triton at run time
    "ca-certificates",
    "curl",
    "ffmpeg",  # VideoHelperSuite encodes and decodes through it
    "git",
    "libgl1",  # opencv-python (not headless) links libGL
    "libglib2.0-0",
    "ninja-build",
    "openssh-server",  # RunPod's SSH access, started only when PUBLIC_KEY is set
    "tini",  # PID 1: reaps orphans and passes signals on to the entrypoint
)


def build_tool_roots() -> list[str]:
    """What the base layer installs into the venv: the tools the builds need."""
    return [pins.SETUPTOOLS.requirement, *(pin.requirement for pin in pins.BUILD_TOOLS)]


NVIDIA_WHEEL_LIBRARIES = (
    "cublas",
    "cuda_cupti",
    "cuda_nvrtc",
    "cuda_runtime",
    "cudnn",
    "cufft",
    "curand",
    "cusolver",
    "cusparse",
    "nccl",
    "nvjitlink",
)


def nvidia_library_path() -> str:
    site = f"{paths.VENV}/lib/python{'.'.join(pins.PYTHON_VERSION.split('.')[:2])}/site-packages"
    return ":".join(f"{site}/nvidia/{name}/lib" for name in NVIDIA_WHEEL_LIBRARIES)


def uv_binary() -> dagger.File:
    return dag.container().from_(pins.UV_IMAGE).file("/uv")


def base(installer: Installer, builder: bool = False) -> dagger.Container:
    profile = installer.profile
    ctr = (
        dag.container()
        .from_(profile.devel_image if builder else profile.runtime_image)
        .with_env_variable("DEBIAN_FRONTEND", "noninteractive")
        # The base image deletes downloaded packages; keep them on the cache volume instead.
        .with_exec(["rm", "-f", "/etc/apt/apt.conf.d/docker-clean"])
    )
    ctr = caches.with_apt_cache(ctr, profile.name)
    ctr = ctr.with_exec(["apt-get", "update"]).with_exec(
        ["apt-get", "install", "-y", "--no-install-recommends", *APT_PACKAGES]
    )
    # openssh-server made host keys at install; every container would share them.
    ctr = caches.without_apt_cache(ctr).with_exec(
        ["find", "/etc/ssh", "-name", "ssh_host_*", "-delete"]
    )
    ctr = caches.with_uv_cache(ctr.with_file("/usr/local/bin/uv", uv_binary()))
    ctr = (
        ctr.with_env_variable("UV_PYTHON_INSTALL_DIR", paths.PYTHON_INSTALL_DIR)
        .with_env_variable("UV_PYTHON_PREFERENCE", "only-managed")
        .with_exec(["uv", "python", "install", pins.PYTHON_VERSION])
        .with_exec(["uv", "venv", "--seed", "--python", pins.PYTHON_VERSION, paths.VENV])
        .with_env_variable("VIRTUAL_ENV", paths.VENV)
        .with_env_variable("PATH", f"{paths.VENV}/bin:${{PATH}}", expand=True)
        .with_env_variable("PYTHONUNBUFFERED", "1")
    )
    if not builder:
        # torch's nvidia-* wheels hold cuBLAS, cuDNN and the rest; onnxruntime-gpu looks for
        # them by name, so they are found here as the toolkit would have been.
        ctr = ctr.with_env_variable(
            "LD_LIBRARY_PATH", f"{nvidia_library_path()}:${{LD_LIBRARY_PATH}}", expand=True
        )
    return installer.install(ctr, build_tool_roots())
