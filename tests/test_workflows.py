"""Shipped workflows use only nodes and inputs a real ComfyUI with the pinned packs offers.

tests/data/object_info.json is GET /object_info of ComfyUI and the four node
packs at the commits in ci/pins.py, on torch 2.5.1 with the constraints of
ci/pins.py, run on CPU (README, "Capturing object_info").
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest

from tests.dagger_offline import REPO

OBJECT_INFO = REPO / "tests" / "data" / "object_info.json"
WORKFLOWS = sorted((REPO / "workflows").glob("*.json"))


@functools.cache
def object_info() -> dict[str, Any]:
    return json.loads(OBJECT_INFO.read_text())


def problems(workflow: dict[str, Any]) -> list[str]:
    found = []
    for node_id, node in workflow.items():
        spec = object_info().get(node["class_type"])
        if spec is None:
            found.append(f"{node_id}: unknown node {node['class_type']}")
            continue
        declared = {**spec["input"].get("required", {}), **spec["input"].get("optional", {})}
        for name in spec["input"].get("required", {}):
            if name not in node["inputs"]:
                found.append(f"{node_id}: missing required input {name}")
        for name, value in node["inputs"].items():
            if name not in declared:
                found.append(f"{node_id}: unknown input {name}")
            elif isinstance(value, list):
                source, output = value
                produced = object_info()[workflow[source]["class_type"]]["output"][output]
                if produced != declared[name][0]:
                    found.append(f"{node_id}.{name}: {produced} linked to {declared[name][0]}")
            elif declared[name][0] == "COMBO" and value not in declared[name][1]["options"]:
                found.append(f"{node_id}.{name}: {value!r} is not an option")
    return found


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_workflow_validates_against_object_info(path: Path) -> None:
    assert problems(json.loads(path.read_text())) == []


def test_a_broken_workflow_is_caught() -> None:
    broken = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 8}},
        "2": {
            "class_type": "SaveVideo",
            "inputs": {
                "video": ["1", 0],
                "filename_prefix": "x",
                "format": "webm",
                "codec": "h264",
            },
        },
        "3": {"class_type": "NoSuchNode", "inputs": {}},
    }
    assert problems(broken) == [
        "1: missing required input color",
        "2.video: IMAGE linked to VIDEO",
        "2.format: 'webm' is not an option",
        "3: unknown node NoSuchNode",
    ]
