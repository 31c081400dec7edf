"""Layer 3: mmengine, mmcv 2.1.0 compiled with CUDA ops, mmdet, mmpose and DWPose."""

from __future__ import annotations

import hashlib

import dagger

from ci import caches, pins, source
from ci.installs import Installer
from ci.lock import MMCV_RUNTIME

WHEEL_CACHE = "/wheel-cache"
WHEEL_OUT = "/dist"
WHEEL_MOUNT = "/tmp/steadydancer-wheels"


def builder(torch_layer: dagger.Container) -> dagger.Container:
    """The devel torch layer with the wheel cache mounted: where CUDA extensions compile."""
    return source.with_tool(torch_layer, "wheel_cache").with_mounted_cache(
        WHEEL_CACHE, caches.volume("wheels")
    )


def wheel_key(package: pins.Pin, profile: pins.Profile, *build_inputs: str) -> str:
    """Cache key of a compiled wheel: everything the compiled bytes depend on."""
    inputs = "|".join(
        (
            package.requirement,
            profile.cuda_version,
            pins.TORCH.version,
            pins.PYTHON_VERSION,
            *build_inputs,
        )
    )
    digest = hashlib.sha256(inputs.encode()).hexdigest()[:16]
    return f"{package.name}-{package.version}-{profile.name}-{digest}"


def compile_wheel(
    builder_ctr: dagger.Container,
    package: pins.Pin,
    key: str,
    env: dict[str, str],
    timeout_s: int | None = None,
) -> dagger.Directory:
    """Build `package` from its sdist without isolation (so it sees torch), once per key."""
    for name, value in sorted(env.items()):
        builder_ctr = builder_ctr.with_env_variable(name, value)
    timeout = ["--timeout", str(timeout_s)] if timeout_s else []
    return builder_ctr.with_exec(
        [
            "python",
            source.tool_path("wheel_cache"),
            "--cache",
            WHEEL_CACHE,
            "--key",
            key,
            "--out",
            WHEEL_OUT,
            *timeout,
            "--",
            "python",
            "-m",
            "pip",
            "wheel",
            "--no-build-isolation",
            "--no-deps",
            "--no-binary",
            package.name,
            "--wheel-dir",
            "{wheel_dir}",
            package.requirement,
        ]
    ).directory(WHEEL_OUT)


def openmmlab_roots() -> list[str]:
    """What the layer installs from the index beside the compiled mmcv wheel (read from the
    pins at each call, so a changed pin is seen)."""
    return [
        *MMCV_RUNTIME,
        pins.OPENCV.requirement,
        pins.CHUMPY.requirement,
        *(pin.requirement for pin in pins.OPENMMLAB_PACKAGES),
    ]


MMCV_BUILD_ENV = {
    "MMCV_WITH_OPS": "1",
    # No GPU is visible while building: without this mmcv silently builds CPU-only ops.
    "FORCE_CUDA": "1",
    "TORCH_CUDA_ARCH_LIST": pins.MMCV_CUDA_ARCHS,
    "MAX_JOBS": str(pins.MMCV_MAX_JOBS),
}


def mmcv_wheel(torch_layer: dagger.Container, profile: pins.Profile) -> dagger.Directory:
    key = wheel_key(pins.MMCV, profile, *(f"{k}={v}" for k, v in sorted(MMCV_BUILD_ENV.items())))
    return compile_wheel(builder(torch_layer), pins.MMCV, key, MMCV_BUILD_ENV)


def install_local_wheel(
    ctr: dagger.Container, wheels: dagger.Directory, package: pins.Pin
) -> dagger.Container:
    """Install a wheel this build compiled, alone: its dependencies come from the lock."""
    return (
        ctr.with_mounted_directory(WHEEL_MOUNT, wheels)
        .with_exec(
            [
                "uv",
                "pip",
                "install",
                "--no-deps",
                "--no-index",
                "--find-links",
                WHEEL_MOUNT,
                package.requirement,
            ]
        )
        .without_mount(WHEEL_MOUNT)
    )


def openmmlab(
    torch_layer: dagger.Container, torch_builder: dagger.Container, installer: Installer
) -> dagger.Container:
    """mmcv compiled in the devel builder, its wheel alone installed over the image's torch."""
    wheel = mmcv_wheel(torch_builder, installer.profile)
    ctr = install_local_wheel(torch_layer, wheel, pins.MMCV)
    ctr = installer.install(
        ctr,
        openmmlab_roots(),
        # chumpy's setup.py imports pip, which an isolated build does not have.
        extra=["--no-build-isolation-package", pins.CHUMPY.name],
    )
    ctr = source.with_tool(ctr, "import_check")
    return ctr.with_exec(["python", source.tool_path("import_check"), *pins.OPENMMLAB_IMPORTS])
