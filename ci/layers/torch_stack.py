"""Layer 2: the exact torch/torchvision/torchaudio trio of the profile."""

from __future__ import annotations

import dagger

from ci import pins
from ci.installs import Installer


def torch_roots(profile: pins.Profile) -> list[str]:
    return [*profile.torch_requirements(), pins.NUMPY.requirement]


def torch_stack(ctr: dagger.Container, installer: Installer) -> dagger.Container:
    return installer.install(ctr, torch_roots(installer.profile))
