"""The smoke test and `dance` on an engine: the image served with every GPU, the client beside it.

The client is the image's own steadydancer.smoke, run in a second container of
the same image bound to the service as `comfyui`; it writes the videos and
report.json to a folder that is returned. `dance` runs the same client with the
user's reference image and driving video mounted, after the same client has
checked them in a small container of its own, before the image is built.
"""

from __future__ import annotations

from pathlib import PurePosixPath

import dagger

from ci import paths, pins, source
from ci.installs import Installer
from ci.layers.models import python_container

ALIAS = "comfyui"
OUT = "/smoke"
INPUTS = "/in"
CHECK_PACKAGES = ("httpx", "av", "pillow")
"""What the client's checks import, installed from the lock in the check container."""
Inputs = dict[str, tuple[str, dagger.File]]
"""Workflow parameter -> (the user's file name, the file)."""


def with_inputs(ctr: dagger.Container, inputs: Inputs) -> tuple[dagger.Container, list[str]]:
    """The user's files mounted under /in, keeping their suffix (VideoHelperSuite reads it),
    and the --set pairs that point the client at them."""
    sets = []
    for name, (filename, file) in sorted(inputs.items()):
        path = f"{INPUTS}/{name}{PurePosixPath(filename).suffix.lower()}"
        ctr = ctr.with_mounted_file(path, file)
        sets.append(f"{name}={path}")
    return ctr, sets


def input_check(workflow: str, variant: str, sets: list[str], inputs: Inputs) -> dagger.Container:
    """The client's own checks of the parameters and the user's files, in a small Python: a
    wrong file is refused before the image is built. Its exit code is kept for the caller."""
    installer = Installer.for_profile(pins.PROFILES[pins.DEFAULT_PROFILE])
    ctr = installer.install(python_container(), CHECK_PACKAGES)
    project = source.project()
    ctr = (
        ctr.with_directory(paths.APP_DIR, project.directory("docker"))
        .with_directory(paths.WORKFLOWS_DIR, project.directory("workflows"))
        .with_env_variable("PYTHONPATH", paths.APP_DIR)
        .with_env_variable("STEADYDANCER_WORKFLOWS", paths.WORKFLOWS_DIR)
    )
    ctr, input_sets = with_inputs(ctr, inputs)
    command = ["python", "-m", "steadydancer.smoke", "--check-only", "--workflow", workflow]
    command += ["--variant", variant, "--out", OUT]
    for pair in [*sets, *input_sets]:
        command += ["--set", pair]
    return ctr.with_exec(command, expect=dagger.ReturnType.ANY)


TIERS = ("boot", "generate")


READY_TIMEOUT_S = {True: 900, False: 3 * 3600}
"""The client's wait for ComfyUI: with models baked it only boots; without, it first fetches
28 GB to the volume. The client, not the engine, owns readiness: see service()."""


def service(image: dagger.Container, models: bool = True) -> dagger.Service:
    """ComfyUI started by the image's entrypoint, with all of the engine's GPUs; without
    `models`, its model step is off (the boot tier needs none).

    The engine's own health check of an exposed port gives up after its backoff (15 minutes
    at most), which a boot that fetches the models outlasts; the smoke client waits instead.
    """
    if not models:
        image = image.with_env_variable("ENABLE_STEADYDANCER", "false")
    return (
        image.without_exposed_port(paths.COMFYUI_PORT)
        .with_exposed_port(paths.COMFYUI_PORT, experimental_skip_healthcheck=True)
        .experimental_with_all_gp_us()
        .as_service(use_entrypoint=True)
    )


def client(
    image: dagger.Container,
    comfyui: dagger.Service,
    workflow: str,
    tier: str,
    variant: str,
    sets: list[str],
    run_id: str,
    baked: bool = True,
    inputs: Inputs | None = None,
) -> dagger.Container:
    """The smoke client's run; it may fail, so its report can still be read (exit code kept)."""
    command = [
        "python", "-m", "steadydancer.smoke",
        "--url", f"http://{ALIAS}:{paths.COMFYUI_PORT}",
        "--workflow", workflow,
        "--tier", tier,
        "--variant", variant,
        "--out", OUT,
        "--ready-timeout", str(READY_TIMEOUT_S[baked]),
    ]  # fmt: skip
    image, input_sets = with_inputs(image, inputs or {})
    for pair in [*sets, *input_sets]:
        command += ["--set", pair]
    return (
        image.with_service_binding(ALIAS, comfyui)
        # A new run id each call: a smoke test answered from cache proves nothing.
        .with_env_variable("STEADYDANCER_SMOKE_RUN", run_id)
        .with_exec(command, expect=dagger.ReturnType.ANY)
    )
