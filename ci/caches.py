"""Cache volumes shared across runs on one engine, and the mounts that use them."""

from __future__ import annotations

import dagger
from dagger import dag

from ci import paths

PREFIX = "steadydancer"


def volume(name: str) -> dagger.CacheVolume:
    return dag.cache_volume(f"{PREFIX}-{name}")


def with_apt_cache(ctr: dagger.Container, profile_name: str) -> dagger.Container:
    """apt's archives and lists, keyed by profile since each base image has its own lists.

    LOCKED because apt takes its own locks in both folders.
    """
    locked = dagger.CacheSharingMode.LOCKED
    return ctr.with_mounted_cache(
        "/var/cache/apt", volume(f"apt-archives-{profile_name}"), sharing=locked
    ).with_mounted_cache("/var/lib/apt/lists", volume(f"apt-lists-{profile_name}"), sharing=locked)


def without_apt_cache(ctr: dagger.Container) -> dagger.Container:
    return ctr.without_mount("/var/cache/apt").without_mount("/var/lib/apt/lists")


def with_uv_cache(ctr: dagger.Container) -> dagger.Container:
    # The volume is another filesystem, so uv must copy rather than hard-link from it.
    return ctr.with_mounted_cache(paths.UV_CACHE, volume("uv")).with_env_variable(
        "UV_LINK_MODE", "copy"
    )
