"""Every image the module pulls is listed, with where its existence was checked.

A tag that stops being published breaks a build at its first step, on every engine. The
chains of every function that pulls are walked (nested objects too) for their `from`
addresses, which must all be in pins.PULLED_IMAGES, and every listed image must be used.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from steadydancer import catalog

from ci import doctor, image, pins, relock
from ci import lock as locks
from ci.layers import models
from ci.options import BuildOptions
from tests.conftest import PLANS
from tests.dagger_offline import fields, is_object, render


def addresses(obj: Any) -> Iterator[str]:
    for field in fields(obj):
        if field.name == "from":
            yield field.args["address"]
        for value in field.args.values():
            for item in value if isinstance(value, list) else [value]:
                if is_object(item):
                    yield from addresses(item)


def every_pulling_chain() -> Iterator[Any]:
    for profile in pins.PROFILES:
        for plan in PLANS.values():
            yield image.image(BuildOptions.parse("fp8", profile, "auto"), plan)
        yield doctor.doctor_container(pins.PROFILES[profile], "run")
        yield relock.resolver(pins.PROFILES[profile], "2026-12-01T00:00:00Z")
        yield relock.wheel_digest(pins.PROFILES[profile])
    yield models.models(catalog.DEFAULT_VARIANT)
    yield models.check(catalog.all_files(), None, "run")


def test_every_pulled_image_is_listed_with_its_evidence_and_every_listed_one_is_pulled() -> None:
    pulled = {address for chain in every_pulling_chain() for address in addresses(chain)}
    assert pulled == set(pins.PULLED_IMAGES)
    assert all(evidence.strip() for evidence in pins.PULLED_IMAGES.values())


def test_no_uv_flavour_that_uv_stopped_publishing() -> None:
    assert not [address for address in pins.PULLED_IMAGES if "bookworm" in address]


@pytest.mark.parametrize("check", [False, True])
def test_the_fetcher_installs_the_hub_client_from_the_lock_with_hashes(check: bool) -> None:
    chain = (
        models.check(catalog.all_files(), None, "run")
        if check
        else models.model_file(catalog.files_for(catalog.DEFAULT_VARIANT)[0])
    )
    installs = [
        field.args["args"]
        for field in fields(chain)
        if field.name == "withExec" and field.args["args"][:3] == ["uv", "pip", "install"]
    ]
    (install,) = installs
    assert "--require-hashes" in install
    lock = locks.load(pins.DEFAULT_PROFILE)
    assert lock is not None
    hub = [arg for arg in install if arg.startswith("huggingface_hub==")]
    assert hub == [f"huggingface_hub=={lock.versions['huggingface-hub']}"]
    assert render(chain)
