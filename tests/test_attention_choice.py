"""The attention branch, decided in Python before the layer is composed.

Whether the release wheel exists is asked over real HTTP of a local server that
answers like GitHub's release downloads (a redirect, then the file). Whether a
source build succeeds can only be known from a GPU-capable engine; that one
answer is given by the test probe, which records what it was asked to build.
"""

from __future__ import annotations

import inspect
import subprocess
import sys

import anyio
import pytest
from dagger.mod import default_module

import ci.main
from ci import pins
from ci.layers import attention
from tests.dagger_offline import describe, execs, ops
from tests.local_http import Reply, Routes, serve

PROFILE = pins.PROFILES["cu124"]


class LocalProbe(attention.EngineProbe):
    def __init__(self, build_succeeds: bool) -> None:
        self.build_succeeds = build_succeeds
        self.asked_to_build: list[str] = []

    async def builds(self, wheels) -> bool:  # type: ignore[no-untyped-def]
        self.asked_to_build.append(describe(wheels))
        return self.build_succeeds


def test_wheel_name_follows_cuda_torch_python_and_abi() -> None:
    for profile in pins.PROFILES.values():
        assert attention.flash_attn_wheel_name(profile) == (
            "flash_attn-2.7.4.post1+cu12torch2.5cxx11abiFALSE-cp311-cp311-linux_x86_64.whl"
        )
    assert attention.flash_attn_wheel_url(PROFILE) == (
        "https://github.com/Dao-AILab/flash-attention/releases/download/v2.7.4.post1/"
        "flash_attn-2.7.4.post1+cu12torch2.5cxx11abiFALSE-cp311-cp311-linux_x86_64.whl"
    )


def releases_with_wheel(present: bool) -> Routes:
    name = attention.flash_attn_wheel_name(PROFILE)
    routes = Routes()
    if present:
        routes.replies[f"/releases/v2.7.4.post1/{name}"] = Reply(
            302, headers={"Location": "/objects/wheel"}
        )
        routes.replies["/objects/wheel"] = Reply(200, b"wheel bytes")
    return routes


def choose(mode: str, probe: attention.Probe) -> attention.AttentionPlan:
    from ci.image import torch_layer

    return anyio.run(attention.choose, mode, PROFILE, torch_layer(PROFILE), probe)


@pytest.mark.parametrize("mode", ["auto", "flash_attn_2"])
def test_existing_wheel_is_taken(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    routes = releases_with_wheel(present=True)
    with serve(routes) as url:
        monkeypatch.setattr(pins, "FLASH_ATTN_RELEASES", f"{url}/releases")
        probe = LocalProbe(build_succeeds=True)
        plan = choose(mode, probe)
    assert (plan.backend, plan.origin) == ("flash_attn_2", "wheel")
    assert plan.wheel_url and plan.wheel_url.startswith(url)
    assert routes.requests[0][0] == "HEAD" and probe.asked_to_build == []


def test_missing_wheel_falls_back_to_a_source_build(monkeypatch: pytest.MonkeyPatch) -> None:
    with serve(releases_with_wheel(present=False)) as url:
        monkeypatch.setattr(pins, "FLASH_ATTN_RELEASES", f"{url}/releases")
        probe = LocalProbe(build_succeeds=True)
        plan = choose("auto", probe)
    assert (plan.backend, plan.origin) == ("flash_attn_2", "source")
    assert "flash-attn==2.7.4.post1" in probe.asked_to_build[0]


def test_failed_source_build_falls_back_to_xformers(monkeypatch: pytest.MonkeyPatch) -> None:
    with serve(releases_with_wheel(present=False)) as url:
        monkeypatch.setattr(pins, "FLASH_ATTN_RELEASES", f"{url}/releases")
        plan = choose("auto", LocalProbe(build_succeeds=False))
    assert (plan.backend, plan.origin) == ("xformers", "pypi")
    assert "source build failed" in plan.reason


def test_forced_flash_never_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    with serve(releases_with_wheel(present=False)) as url:
        monkeypatch.setattr(pins, "FLASH_ATTN_RELEASES", f"{url}/releases")
        with pytest.raises(
            attention.AttentionUnavailable, match="--attention flash_attn_2: no flash-attn wheel"
        ):
            choose("flash_attn_2", LocalProbe(build_succeeds=False))


def test_unreachable_release_host_counts_as_no_wheel(monkeypatch: pytest.MonkeyPatch) -> None:
    with serve(Routes()) as url:
        dead = url  # the port is closed once the block ends
    monkeypatch.setattr(pins, "FLASH_ATTN_RELEASES", f"{dead}/releases")
    plan = choose("auto", LocalProbe(build_succeeds=False))
    assert plan.backend == "xformers"


def test_xformers_asked_for_asks_nothing() -> None:
    probe = LocalProbe(build_succeeds=True)
    plan = choose("xformers", probe)
    assert plan.backend == "xformers" and probe.asked_to_build == []


def test_one_attention_option_one_spelling_everywhere() -> None:
    """The module's --attention names the branches as the image records them and the smoke
    client takes them; the seed's ENABLE_FLASH_ATTN=false is --attention xformers."""
    from steadydancer import entrypoint, workflows

    from ci.choices import AttentionMode

    branches = [mode for mode in attention.MODES if mode != "auto"]
    assert [member.name for member in AttentionMode] == list(attention.MODES)
    assert set(branches) <= set(workflows.ATTENTION_MODE) == set(entrypoint.ATTENTION_FLAGS)
    assert {attention.FLASH, attention.XFORMERS} == set(branches)
    signatures = [inspect.signature(f) for f in vars(ci.main.SteadyDancer).values() if callable(f)]
    assert not any("enable_flash_attn" in s.parameters for s in signatures)
    refused = subprocess.run(
        [sys.executable, "-m", "ci.plan", "--attention", "flash"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert refused.returncode == 2
    assert "unknown attention mode 'flash'; accepted: auto, flash_attn_2, xformers" in (
        refused.stderr
    )


def call(function: str, **inputs: object):
    result, _ = anyio.run(
        default_module().get_structured_result, "SteadyDancer", {}, function, inputs
    )
    return result


def test_build_through_the_module_records_the_branch_it_chose(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with serve(releases_with_wheel(present=False)) as url:
        monkeypatch.setattr(pins, "FLASH_ATTN_RELEASES", f"{url}/releases")
        monkeypatch.setattr(ci.main, "attention_probe", lambda: LocalProbe(build_succeeds=False))
        ctr = call("build", variant="fp16", attention="auto")
    assert ("withLabel", {"name": "org.steadydancer.attention", "value": "xformers"}) in ops(ctr)
    assert any("xformers==0.0.29.post1" in args for args in execs(ctr))


def test_a_profile_without_a_lock_says_it_resolves_at_build_time(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(ci.main, "attention_probe", lambda: LocalProbe(build_succeeds=False))
    call("build", profile="cu121", attention="xformers")
    printed = capsys.readouterr().out
    assert "profile cu121 has no lock yet" in printed and "resolved at build time" in printed
