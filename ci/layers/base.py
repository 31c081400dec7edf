"""Layer 1: the CUDA devel image, system packages, and Python in a virtual environment."""

from __future__ import annotations

import dagger
from dagger import dag

from ci import caches, paths, pins

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
)
PIN_MOUNT = "/tmp/steadydancer-pins"


def pin_files(profile: pins.Profile) -> dagger.Directory:
    """The constraints and overrides every install is held to, as files."""
    return (
        dag.directory()
        .with_new_file("constraints.txt", "\n".join(pins.constraints(profile)) + "\n")
        .with_new_file("overrides.txt", "\n".join(pins.overrides()) + "\n")
    )


def uv_pip_install(
    ctr: dagger.Container, profile: pins.Profile, args: list[str]
) -> dagger.Container:
    """`uv pip install` held to the pins, dropping the distributions the image excludes."""
    return (
        ctr.with_mounted_directory(PIN_MOUNT, pin_files(profile))
        .with_exec(
            [
                "uv",
                "pip",
                "install",
                "--constraint",
                f"{PIN_MOUNT}/constraints.txt",
                "--override",
                f"{PIN_MOUNT}/overrides.txt",
                *args,
            ]
        )
        .without_mount(PIN_MOUNT)
    )


def uv_binary() -> dagger.File:
    return dag.container().from_(pins.UV_IMAGE).file("/uv")


def base(profile: pins.Profile) -> dagger.Container:
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
    ctr = caches.without_apt_cache(ctr)
    ctr = caches.with_uv_cache(ctr.with_file("/usr/local/bin/uv", uv_binary()))
    return (
        ctr.with_env_variable("UV_PYTHON_INSTALL_DIR", paths.PYTHON_INSTALL_DIR)
        .with_env_variable("UV_PYTHON_PREFERENCE", "only-managed")
        .with_exec(["uv", "python", "install", pins.PYTHON_VERSION])
        .with_exec(["uv", "venv", "--seed", "--python", pins.PYTHON_VERSION, paths.VENV])
        .with_env_variable("VIRTUAL_ENV", paths.VENV)
        .with_env_variable("PATH", f"{paths.VENV}/bin:${{PATH}}", expand=True)
        .with_env_variable("PYTHONUNBUFFERED", "1")
        .with_exec(
            [
                "uv",
                "pip",
                "install",
                pins.SETUPTOOLS.requirement,
                *(pin.requirement for pin in pins.BUILD_TOOLS),
            ]
        )
    )
