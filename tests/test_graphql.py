"""Every query the module would send, rendered and validated against the engine schema v0.21.8."""

from __future__ import annotations

import pytest
from steadydancer import catalog

from ci import image, pins
from ci.doctor import doctor_container
from ci.layers.models import models
from ci.options import BuildOptions
from tests.conftest import PLANS
from tests.dagger_offline import render


@pytest.mark.parametrize("plan", sorted(PLANS))
@pytest.mark.parametrize("profile", sorted(pins.PROFILES))
@pytest.mark.parametrize("variant", sorted(catalog.VARIANTS))
def test_build_renders_to_valid_graphql(variant: str, profile: str, plan: str) -> None:
    ctr = image.image(BuildOptions.parse(variant, profile, "auto"), PLANS[plan])
    documents = render(ctr)
    assert documents[-1].startswith("{\n  container {")
    assert len(documents) > 5  # nested files, directories and cache volumes validated too


def test_doctor_and_models_render_to_valid_graphql() -> None:
    doctor = render(doctor_container(pins.PROFILES["cu124"], "1"))
    assert "experimentalWithAllGPUs" in doctor[-1]
    assert any('directory(path: "/models")' in document for document in render(models("fp8")))
