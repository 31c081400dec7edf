"""smoke_test on the engine: the GPU service, the client bound to it, the returned folder."""

from __future__ import annotations

import anyio
import pytest
from dagger.mod import default_module
from dagger.mod._exceptions import FunctionError
from steadydancer import catalog

import ci.main
from ci import image
from ci import smoke_test as on_engine
from ci.choices import AttentionMode, ProfileName, Tier
from ci.options import BuildOptions
from tests.conftest import PLANS
from tests.dagger_offline import describe, execs, fields, ops, render


def smoke_chain(tier: str = "generate"):
    built = image.image(BuildOptions.parse("fp8", "cu124", "auto"), PLANS["wheel"])
    service = on_engine.service(built)
    return (
        built,
        service,
        on_engine.client(
            built, service, "steadydancer-pose", tier, "fp8", ["frames=17", "steps=4"], "run-1"
        ),
    )


def test_comfyui_is_served_with_every_gpu_by_its_entrypoint() -> None:
    _, service, _ = smoke_chain()
    tail = ops(service)[-2:]
    assert tail == [("experimentalWithAllGPUs", {}), ("asService", {"useEntrypoint": True})]


def test_the_client_runs_beside_it_and_keeps_its_exit_code() -> None:
    _, service, run = smoke_chain()
    binding = next(f for f in fields(run) if f.name == "withServiceBinding")
    assert binding.args["alias"] == "comfyui"
    assert describe(binding.args["service"]) == describe(service)
    command = execs(run)[-1]
    assert command[:5] == ["python", "-m", "steadydancer.smoke", "--url", "http://comfyui:8188"]
    assert command[command.index("--workflow") + 1] == "steadydancer-pose"
    assert command[command.index("--out") + 1] == "/smoke"
    assert command[command.index("--set") : command.index("--set") + 2] == ["--set", "frames=17"]
    assert fields(run)[-1].args.get("expect") == "ANY"
    assert ("withEnvVariable", {"name": "STEADYDANCER_SMOKE_RUN", "value": "run-1"}) in ops(run)
    assert render(run.directory(on_engine.OUT))[-1].startswith("{\n  container {")


def call(**inputs: object):
    result, _ = anyio.run(
        default_module().get_structured_result, "SteadyDancer", {}, "smoke_test", inputs
    )
    return result


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (
            {"workflow": "dance"},
            "unknown workflow 'dance'; accepted: cpu-smoke, steadydancer-dance, "
            "steadydancer-official, steadydancer-pose",
        ),
        ({"variant": "int8"}, "unknown variant 'int8'"),
        ({"frames": -1}, "parameter frames=-1 is below its minimum 5"),
        ({"steps": 0}, "parameter steps=0 is below its minimum 1"),
        ({"width": 100}, r"parameter width=100 must be a multiple of 16 \(96 or 112 would do\)"),
        ({"frames": 32}, r"parameter frames=32 must be 4n\+1 \(29 or 33 would do\)"),
    ],
)
def test_bad_smoke_arguments_are_refused_before_building(
    inputs: dict[str, object], message: str
) -> None:
    with pytest.raises(FunctionError, match=message):
        call(**inputs)


def test_the_client_not_the_engine_owns_readiness() -> None:
    """The engine's port health check gives up after its backoff; a boot that fetches 28 GB
    outlasts it, so the port skips it and the client's deadline is sized to the boot."""
    built, service, run = smoke_chain()
    served = describe(service)
    skip = "withExposedPort(port=8188, experimentalSkipHealthcheck=True)"
    assert "withoutExposedPort(port=8188)" in served and skip in served
    assert served.index(skip) > served.index("withoutExposedPort(port=8188)")
    baked = execs(run)[-1]
    assert baked[baked.index("--ready-timeout") + 1] == "900"
    unbaked = on_engine.client(built, service, "cpu-smoke", "boot", "fp8", [], "run-2", False)
    command = execs(unbaked)[-1]
    assert command[command.index("--ready-timeout") + 1] == str(3 * 3600)
    assert render(service)[-1].startswith("{\n  container {")


def test_the_image_lets_its_preflight_explain_an_old_driver() -> None:
    built, _, _ = smoke_chain()
    assert ("withEnvVariable", {"name": "NVIDIA_DISABLE_REQUIRE", "value": "1"}) in ops(built)


def test_the_boot_tier_builds_and_boots_without_models() -> None:
    """`--tier boot` checks CUDA and the nodes: no 28 GB baked, none fetched at its boot."""
    boot = ci.main.smoke_options("fp8", ProfileName.cu124, AttentionMode.auto, True, Tier.boot)
    full = ci.main.smoke_options("fp8", ProfileName.cu124, AttentionMode.auto, True, Tier.generate)
    assert (boot.bake_models, full.bake_models) == (False, True)
    built = image.image(boot, PLANS["wheel"])
    baked = image.image(full, PLANS["wheel"])
    names = [entry.filename for entry in catalog.placeable("fp8")]
    assert all(name in describe(baked) for name in names)
    assert not any(name in describe(built) for name in names)
    off = ("withEnvVariable", {"name": "ENABLE_STEADYDANCER", "value": "false"})
    assert off in ops(on_engine.service(built, models=False))
    assert off not in ops(on_engine.service(baked))
