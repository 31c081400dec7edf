"""Layer 2: the exact torch/torchvision/torchaudio trio of the profile."""

from __future__ import annotations

import dagger

from ci import pins


def torch_stack(ctr: dagger.Container, profile: pins.Profile) -> dagger.Container:
    index = ["--extra-index-url", profile.torch_index_url] if profile.torch_index_url else []
    return ctr.with_exec(
        ["uv", "pip", "install", *index, *profile.torch_requirements(), pins.NUMPY.requirement]
    )
