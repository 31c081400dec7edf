"""Layer 1: the CUDA devel image, system packages, and Python in a virtual environment."""

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


def uv_binary() -> dagger.File:
    return dag.container().from_(pins.UV_IMAGE).file("/uv")


def base(installer: Installer) -> dagger.Container:
    profile = installer.profile
    ctr = (
        dag.container()
        .from_(profile.base_image)
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
    return installer.install(
        ctr, [pins.SETUPTOOLS.requirement, *(pin.requirement for pin in pins.BUILD_TOOLS)]
    )
