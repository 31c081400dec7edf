"""The smoke test on an engine: the image served with every GPU, the smoke client beside it.

The client is the image's own steadydancer.smoke, run in a second container of
the same image bound to the service as `comfyui`; it writes the videos and
report.json to a folder that is returned.
"""

from __future__ import annotations

import dagger

from ci import paths

ALIAS = "comfyui"
OUT = "/smoke"
TIERS = ("boot", "generate")


READY_TIMEOUT_S = {True: 900, False: 3 * 3600}
"""The client's wait for ComfyUI: with models baked it only boots; without, it first fetches
28 GB to the volume. The client, not the engine, owns readiness: see service()."""


def service(image: dagger.Container) -> dagger.Service:
    """ComfyUI started by the image's entrypoint, with all of the engine's GPUs.

    The engine's own health check of an exposed port gives up after its backoff (15 minutes
    at most), which a boot that fetches the models outlasts; the smoke client waits instead.
    """
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
    for pair in sets:
        command += ["--set", pair]
    return (
        image.with_service_binding(ALIAS, comfyui)
        # A new run id each call: a smoke test answered from cache proves nothing.
        .with_env_variable("STEADYDANCER_SMOKE_RUN", run_id)
        .with_exec(command, expect=dagger.ReturnType.ANY)
    )
