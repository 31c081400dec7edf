"""What registries accept, checked before anything is pushed.

A registry that refuses a layer does so at the end of a long upload, after the
image was built. The largest layers of this image are its model files, one layer
each, whose sizes the catalog records: so a publish is checked against the
registry's per-layer limit first, and refused naming each file that cannot go.
"""

from __future__ import annotations

from dataclasses import dataclass

from steadydancer import catalog

GB = 1_000_000_000
MIB = 1 << 20


@dataclass(frozen=True)
class Registry:
    name: str
    layer_limit: int
    """Bytes one layer may hold."""
    source: str
    hosts: tuple[str, ...] = ()

    def matches(self, host: str) -> bool:
        return any(host == suffix or host.endswith("." + suffix) for suffix in self.hosts)


REGISTRIES = (
    Registry(
        "GitHub Container registry",
        10 * GB,
        "GitHub's documentation of the Container registry: 10 GB per layer, uploads of at "
        "most 10 minutes",
        ("ghcr.io",),
    ),
    Registry(
        "GitLab container registry",
        10 * GB,
        "GitLab's registry on object storage: 10 GB per layer",
        ("registry.gitlab.com",),
    ),
    Registry(
        "Amazon ECR",
        52_000 * MIB,
        "Amazon ECR service quotas: 52,000 MiB per layer",
        ("amazonaws.com",),
    ),
)
DEFAULT = Registry(
    "a registry without a known limit",
    10 * GB,
    "the common 10 GB per layer of registries on object storage (Harbor, GitLab, "
    "Docker Hub publishes none); --layer-limit-gb sets another",
)


DAGGER_NO_BAKE = "--bake-models=false"
"""How `dagger call` spells leaving the models out; `python -m ci.plan` says --no-bake-models."""


def bare_host(address: str) -> bool:
    """A registry's host alone (`ghcr.io`, `myregistry.local:5000`), not an image address."""
    return "/" not in address and ("." in address.split(":", 1)[0] or address == "localhost")


def host_of(address: str) -> str:
    """The registry host of an image address, as `docker push` reads it; a bare host is
    taken as the registry it names (plan --registry ghcr.io)."""
    first = address.split("/", 1)[0]
    if bare_host(address):
        return address
    if "/" not in address or ("." not in first and ":" not in first and first != "localhost"):
        return "docker.io"
    return first


def image_address(address: str) -> str:
    """An address `publish` can push to; a bare registry host is refused, naming the form."""
    if not address or bare_host(address):
        raise ValueError(
            f"{address!r} is not an image address: give the registry, repository and tag, "
            f"e.g. {address or 'ghcr.io'}/OWNER/steadydancer:fp8"
        )
    return address


def registry_for(address: str, layer_limit_gb: float = 0) -> Registry:
    """The registry an address pushes to; a positive layer_limit_gb replaces its limit."""
    host = host_of(address)
    found = next((registry for registry in REGISTRIES if registry.matches(host)), None)
    registry = found or Registry(f"{DEFAULT.name} ({host})", DEFAULT.layer_limit, DEFAULT.source)
    if layer_limit_gb > 0:
        return Registry(
            f"{registry.name}, limit given", int(layer_limit_gb * GB), "--layer-limit-gb", ()
        )
    return registry


def oversized(variant: str, registry: Registry) -> list[catalog.ModelFile]:
    """The variant's model files too large for one layer of the registry."""
    return [
        entry
        for entry in catalog.files_for(variant)
        if entry.size is not None and entry.size > registry.layer_limit
    ]


def unsized(variant: str) -> list[catalog.ModelFile]:
    return [entry for entry in catalog.files_for(variant) if entry.size is None]


def refusal(
    address: str, variant: str, registry: Registry, no_bake: str = DAGGER_NO_BAKE
) -> str | None:
    """Why a baked image of `variant` cannot go to `address`, with the ways out; None if it can."""
    too_large = oversized(variant, registry)
    if not too_large:
        return None
    files = "; ".join(
        f"{entry.filename} ({entry.size / GB:.1f} GB)" for entry in too_large if entry.size
    )
    return (
        f"{address}: {registry.name} takes at most {registry.layer_limit / GB:.1f} GB per layer "
        f"({registry.source}), and each model file is one layer: {files} cannot go. Publish "
        f"with {no_bake} (the pod fetches the models to its volume at its first boot), "
        "or to a registry that accepts the layer (Amazon ECR takes 54.5 GB)"
    )


def report(
    address: str,
    variant: str,
    baked: bool,
    layer_limit_gb: float = 0,
    no_bake: str = DAGGER_NO_BAKE,
) -> list[str]:
    """What plan says of a publish to `address`: the limit, and each model layer against it."""
    registry = registry_for(address, layer_limit_gb)
    lines = [
        f"registry: {registry.name}, at most {registry.layer_limit / GB:.1f} GB per layer "
        f"({registry.source})"
    ]
    if not baked:
        return [*lines, "models are not baked: no model layer to push"]
    for entry in catalog.files_for(variant):
        if entry.size is None:
            verdict = "size not recorded: cannot be checked (dagger call lock-models records it)"
        elif entry.size > registry.layer_limit:
            verdict = "TOO LARGE for one layer"
        else:
            verdict = "fits"
        shown = f"{entry.size / GB:6.2f} GB" if entry.size else "      ? GB"
        lines.append(f"  {shown}  {entry.filename}: {verdict}")
    if refusal(address, variant, registry, no_bake):
        lines.append(f"publish would be refused before pushing: use {no_bake} or ECR")
    return lines
