"""Layer 4: flash-attn from its release wheel, else built from source, else xformers.

The branch is decided here in Python, before the layer is composed, and
recorded in the image as STEADYDANCER_ATTENTION (flash_attn_2 or xformers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import dagger
from dagger import dag

from ci import pins, source
from ci.installs import Installer
from ci.layers.openmmlab import builder, compile_wheel, install_local_wheel, wheel_key
from ci.lock import FLASH_ATTN_RUNTIME

FLASH = "flash_attn_2"
XFORMERS = "xformers"
MODES = ("auto", FLASH, XFORMERS)
"""What --attention takes: the image's own names of the branches (STEADYDANCER_ATTENTION,
the smoke client's --attention), and auto."""
ENV_VAR = "STEADYDANCER_ATTENTION"


class AttentionUnavailable(Exception):
    """flash-attn was forced but neither its wheel nor a source build is available."""


@dataclass(frozen=True)
class AttentionPlan:
    """Which attention library goes into the image, from where, and why."""

    backend: str
    origin: str
    reason: str
    wheel_url: str | None = None


def flash_attn_wheel_name(profile: pins.Profile) -> str:
    """The release wheel's name for (CUDA major, torch minor, Python tag, C++ ABI)."""
    torch_minor = ".".join(pins.TORCH.version.split(".")[:2])
    abi = "TRUE" if pins.TORCH_CXX11_ABI else "FALSE"
    tag = pins.PYTHON_TAG
    return (
        f"flash_attn-{pins.FLASH_ATTN.version}+cu{profile.cuda_major}torch{torch_minor}"
        f"cxx11abi{abi}-{tag}-{tag}-linux_x86_64.whl"
    )


def flash_attn_wheel_url(profile: pins.Profile) -> str:
    releases = pins.FLASH_ATTN_RELEASES
    return f"{releases}/v{pins.FLASH_ATTN.version}/{flash_attn_wheel_name(profile)}"


FLASH_BUILD_ENV = {
    "FLASH_ATTENTION_FORCE_BUILD": "TRUE",
    "FLASH_ATTN_CUDA_ARCHS": pins.FLASH_ATTN_CUDA_ARCHS,
    "MAX_JOBS": str(pins.FLASH_ATTN_MAX_JOBS),
    "NVCC_THREADS": "2",
}


def flash_attn_source_wheel(
    torch_layer: dagger.Container, profile: pins.Profile
) -> dagger.Directory:
    key = wheel_key(
        pins.FLASH_ATTN, profile, *(f"{k}={v}" for k, v in sorted(FLASH_BUILD_ENV.items()))
    )
    return compile_wheel(
        builder(torch_layer),
        pins.FLASH_ATTN,
        key,
        FLASH_BUILD_ENV,
        timeout_s=pins.FLASH_ATTN_BUILD_TIMEOUT_S,
    )


class Probe(Protocol):
    """What the choice needs to know from the outside world."""

    async def wheel_available(self, url: str) -> bool: ...

    async def builds(self, wheels: dagger.Directory) -> bool: ...


class EngineProbe:
    """Asks GitHub whether the wheel exists, and the engine whether the source build succeeds."""

    async def wheel_available(self, url: str) -> bool:
        import httpx

        try:
            async with httpx.AsyncClient(follow_redirects=True, timeout=30) as client:
                response = await client.head(url)
        except httpx.HTTPError as exc:
            print(f"attention: cannot reach {url}: {exc}")
            return False
        print(f"attention: {url} answered {response.status_code}")
        return response.status_code == 200

    async def builds(self, wheels: dagger.Directory) -> bool:
        try:
            await wheels.sync()
        except (dagger.ExecError, dagger.QueryError) as exc:
            print(f"attention: flash-attn source build failed: {exc}")
            return False
        return True


async def choose(
    mode: str,
    profile: pins.Profile,
    torch_layer: dagger.Container,
    probe: Probe,
) -> AttentionPlan:
    """Decide the branch: `flash_attn_2` never falls back, `xformers` never tries flash-attn."""
    if mode == XFORMERS:
        return AttentionPlan(XFORMERS, "pypi", "--attention xformers asked for xformers")
    url = flash_attn_wheel_url(profile)
    if await probe.wheel_available(url):
        return AttentionPlan(FLASH, "wheel", "the release wheel for this tuple exists", url)
    if await probe.builds(flash_attn_source_wheel(torch_layer, profile)):
        return AttentionPlan(FLASH, "source", f"no release wheel at {url}; built from source")
    if mode == FLASH:
        raise AttentionUnavailable(
            f"--attention {FLASH}: no flash-attn wheel at {url} and the source build failed; "
            "use --attention auto to fall back to xformers, or --attention xformers"
        )
    return AttentionPlan(XFORMERS, "pypi", f"no release wheel at {url} and the source build failed")


def release_wheel(plan: AttentionPlan, sha256: str | None) -> dagger.Directory:
    """The release wheel in a folder of its own, checked against its sha256 when one is locked."""
    assert plan.wheel_url is not None
    name = plan.wheel_url.rsplit("/", 1)[-1]
    checksum = f"sha256:{sha256}" if sha256 else None
    return dag.directory().with_file(name, dag.http(plan.wheel_url, name=name, checksum=checksum))


def pinned(plan: AttentionPlan) -> str:
    """The requirement the branch installs, for the drift guard."""
    return pins.XFORMERS.requirement if plan.backend == XFORMERS else pins.FLASH_ATTN.requirement


def attention(
    openmmlab_layer: dagger.Container,
    torch_builder: dagger.Container,
    installer: Installer,
    plan: AttentionPlan,
) -> dagger.Container:
    if plan.backend == XFORMERS:
        ctr = installer.install(openmmlab_layer, [pins.XFORMERS.requirement])
        modules = ["xformers", "xformers.ops"]
    else:
        if plan.origin == "wheel":
            sha256 = installer.lock.flash_attn_sha256 if installer.lock else None
            wheels = release_wheel(plan, sha256)
        else:
            wheels = flash_attn_source_wheel(torch_builder, installer.profile)
        ctr = install_local_wheel(openmmlab_layer, wheels, pins.FLASH_ATTN)
        ctr = installer.install(ctr, list(FLASH_ATTN_RUNTIME))
        modules = ["flash_attn"]
    return ctr.with_exec(["python", source.tool_path("import_check"), *modules]).with_env_variable(
        ENV_VAR, plan.backend
    )
