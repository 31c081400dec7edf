"""Checking what the user asked for, before any container is built."""

from __future__ import annotations

from dataclasses import dataclass

from steadydancer import catalog

from ci import pins
from ci.layers.attention import MODES


class InputError(ValueError):
    """A bad argument, named along with the values that would be accepted."""


def _choose(kind: str, value: str, accepted: list[str]) -> str:
    if value not in accepted:
        raise InputError(f"unknown {kind} {value!r}; accepted: {', '.join(accepted)}")
    return value


def profile(name: str) -> pins.Profile:
    return pins.PROFILES[_choose("profile", name, sorted(pins.PROFILES))]


def variant(name: str) -> str:
    return _choose("variant", name, sorted(catalog.VARIANTS))


def attention(mode: str) -> str:
    return _choose("attention mode", mode, list(MODES))


@dataclass(frozen=True)
class BuildOptions:
    variant: str
    profile: pins.Profile
    attention: str
    bake_models: bool

    @classmethod
    def parse(
        cls,
        variant_name: str = catalog.DEFAULT_VARIANT,
        profile_name: str = pins.DEFAULT_PROFILE,
        attention_mode: str = "auto",
        bake_models: bool = True,
    ) -> BuildOptions:
        """Check every argument; the first bad one raises InputError."""
        return cls(
            variant=variant(variant_name),
            profile=profile(profile_name),
            attention=attention(attention_mode),
            bake_models=bake_models,
        )
