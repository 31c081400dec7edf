"""Layer 8: this repository's docker/ programs and workflows, the port and the entrypoint.

Last, because it changes with every edit and costs seconds to rebuild.
"""

from __future__ import annotations

import dagger
from dagger import dag

from ci import paths, pins, source
from ci.layers.attention import AttentionPlan

LABEL_PREFIX = "org.steadydancer"


def pin_files(profile: pins.Profile) -> dagger.Directory:
    """The constraints and overrides later installs in the running image are held to."""
    return (
        dag.directory()
        .with_new_file("constraints.txt", pins.constraints_text(profile))
        .with_new_file("overrides.txt", pins.overrides_text())
    )


OFFICIAL_POSE_IMPORTS = (
    "steadydancer.nodes",
    "steadydancer.nodes.detect",
    "mmdet.apis",
    "mmpose.apis",
)


def runtime(
    ctr: dagger.Container,
    profile: pins.Profile,
    variant: str,
    plan: AttentionPlan,
    baked: bool,
) -> dagger.Container:
    project = source.project()
    ctr = (
        ctr.without_mount(paths.UV_CACHE)
        .with_directory(paths.APP_DIR, project.directory("docker"))
        .with_directory(paths.WORKFLOWS_DIR, project.directory("workflows"))
        .with_directory(paths.PINS_DIR, pin_files(profile))
        # Later pip or uv installs (ComfyUI-Manager, a user's node pack) keep the pins too.
        .with_env_variable("PIP_CONSTRAINT", paths.CONSTRAINTS_FILE)
        .with_env_variable("UV_CONSTRAINT", paths.CONSTRAINTS_FILE)
        .with_env_variable("UV_OVERRIDE", paths.OVERRIDES_FILE)
        .with_env_variable("PYTHONPATH", paths.APP_DIR)
        .with_env_variable("STEADYDANCER_WORKFLOWS", paths.WORKFLOWS_DIR)
        .with_env_variable("STEADYDANCER_VARIANT", variant)
        .with_env_variable("STEADYDANCER_MODELS_BAKED", "true" if baked else "false")
        .with_env_variable("COMFYUI_PORT", str(paths.COMFYUI_PORT))
        # The CUDA image's NVIDIA_REQUIRE_CUDA makes the container toolkit refuse an older
        # driver before anything runs; the entrypoint's preflight refuses it in words instead.
        .with_env_variable("NVIDIA_DISABLE_REQUIRE", "1")
        .with_workdir(paths.COMFYUI_DIR)
        .with_exposed_port(paths.COMFYUI_PORT, description="ComfyUI web UI and API")
        .with_entrypoint(["tini", "--", "python", "-m", "steadydancer.entrypoint"])
        # The official pose pack imports with the image's Python path and OpenMMLab.
        .with_exec(["python", "-m", "steadydancer.import_check", *OFFICIAL_POSE_IMPORTS])
    )
    labels = {
        "variant": variant,
        "profile": profile.name,
        "cuda": profile.cuda_version,
        "torch": pins.TORCH.version,
        "attention": plan.backend,
        "attention.origin": plan.origin,
        "models.baked": "true" if baked else "false",
        "comfyui.commit": pins.COMFYUI.commit,
        **{f"nodes.{pack.name}": pack.commit for pack in pins.NODE_PACKS},
    }
    for name, value in labels.items():
        ctr = ctr.with_label(f"{LABEL_PREFIX}.{name}", value)
    return ctr
