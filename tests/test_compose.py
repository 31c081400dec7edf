"""docker/docker-compose.yml runs the image the way the entrypoint expects."""

from __future__ import annotations

import yaml

from tests.dagger_offline import REPO


def test_compose_reserves_the_gpus_and_keeps_data_on_a_volume() -> None:
    compose = yaml.safe_load((REPO / "docker" / "docker-compose.yml").read_text())
    service = compose["services"]["steadydancer"]
    assert service["ports"] == ["8188:8188"]
    (device,) = service["deploy"]["resources"]["reservations"]["devices"]
    assert device == {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}
    assert service["volumes"] == ["workspace:/workspace"] and "workspace" in compose["volumes"]
    assert set(service["environment"]) == {
        "STEADYDANCER_VARIANT",
        "ENABLE_STEADYDANCER",
        "ENABLE_FLASH_ATTN",
        "HF_TOKEN",
        "PUBLIC_KEY",
    }
    assert service["healthcheck"]["test"] == [
        "CMD",
        "python",
        "-m",
        "steadydancer.ready",
        "--nodes",
    ]
