"""How large each layer of the image is, estimated before anything is built.

Model layers are the catalog's recorded sizes. Python layers add up the wheels each
layer installs that an earlier layer did not, at the lock's versions: the size of
the exact wheel the lock's hashes name for the image's platform, as PyPI lists it,
recorded beside the lock (ci/locks/<profile>.sizes.json) when the lock is made.
Wheels are compressed as image layers are, so their sizes approximate what a pod
pulls; unpacked on disk the packages take more. The CUDA base image and the apt
packages are not estimated: their sizes live in a registry this cannot reach.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import parse_wheel_filename

from ci import lock as locks
from ci import pins
from ci.layers.base import build_tool_roots
from ci.layers.openmmlab import openmmlab_roots
from ci.layers.torch_stack import torch_roots

GOAL_BYTES = 50 * 10**9
"""The image this project promises: under 50 GB."""
SIMPLE_INDEX = "https://pypi.org/simple"
MANYLINUX = [f"manylinux_2_{minor}_x86_64" for minor in range(35, 4, -1)]


def sizes_path(profile: str) -> Path:
    return locks.LOCKS_DIR / f"{profile}.sizes.json"


def target_tags() -> list[Tag]:
    """The wheel tags the image's Python takes, best first (as an installer ranks them)."""
    platforms = [
        *MANYLINUX,
        "manylinux2014_x86_64",
        "manylinux2010_x86_64",
        "manylinux1_x86_64",
        "linux_x86_64",
    ]
    version = (3, 11)
    return [
        *cpython_tags(version, abis=["cp311"], platforms=platforms),
        *compatible_tags(version, "cp311", platforms),
    ]


def chosen_wheel(files: Iterable[dict[str, Any]], hashes: set[str]) -> dict[str, Any] | None:
    """Among an index's files, the locked wheel the image installs (best tag), if any."""
    rank = {tag: position for position, tag in enumerate(target_tags())}
    best: tuple[int, dict[str, Any]] | None = None
    for item in files:
        name = str(item.get("filename", ""))
        digest = (item.get("hashes") or {}).get("sha256")
        if not name.endswith(".whl") or digest not in hashes:
            continue
        tags = parse_wheel_filename(name)[3]
        position = min((rank[tag] for tag in tags if tag in rank), default=None)
        if position is not None and (best is None or position < best[0]):
            best = (position, item)
    return best[1] if best else None


def record(lock: locks.Lock) -> dict[str, int]:
    """Each locked package's wheel size, from PyPI's simple index (needs the network)."""
    import httpx

    found: dict[str, int] = {}
    headers = {"Accept": "application/vnd.pypi.simple.v1+json"}
    with httpx.Client(timeout=60, headers=headers, follow_redirects=True) as client:
        for name, entry in sorted(lock.entries.items()):
            hashes = {part.split("sha256:", 1)[1].split()[0] for part in entry.split("--hash=")[1:]}
            response = client.get(f"{SIMPLE_INDEX}/{name}/")
            response.raise_for_status()
            wheel = chosen_wheel(response.json().get("files", []), hashes)
            if wheel is not None:
                found[name] = int(str(wheel["size"]))
    return found


def write(profile: str, sizes: dict[str, int]) -> None:
    sizes_path(profile).write_text(json.dumps(dict(sorted(sizes.items())), indent=1) + "\n")


def load(profile: str) -> dict[str, int]:
    path = sizes_path(profile)
    return (
        {str(k): int(v) for k, v in json.loads(path.read_text()).items()} if path.is_file() else {}
    )


@dataclass(frozen=True)
class LayerSize:
    name: str
    size: int
    unknown: tuple[str, ...] = ()
    """What the estimate leaves out, named."""


def python_layers(profile: pins.Profile, attention: str) -> list[LayerSize]:
    """Each installing layer's new packages, at their wheel sizes."""
    lock = locks.load(profile.name)
    if lock is None:
        return []
    sizes = load(profile.name)
    attention_roots = (
        [pins.XFORMERS.requirement] if attention == "xformers" else [*locks.FLASH_ATTN_RUNTIME]
    )
    layers = [
        ("base", build_tool_roots()),
        ("torch", torch_roots(profile)),
        ("openmmlab", openmmlab_roots()),
        ("attention", attention_roots),
        ("comfyui", locks.tree_roots(lock, pins.COMFYUI)),
        (
            "nodes",
            [
                *(root for pack in pins.NODE_PACKS for root in locks.tree_roots(lock, pack)),
                pins.RUNPOD.requirement,
            ],
        ),
    ]
    seen: set[str] = set()
    result = []
    for name, roots in layers:
        new = lock.closure(Requirement(root).name for root in roots)
        new -= seen
        seen |= new
        missing = tuple(sorted(package for package in new if package not in sizes))
        extra = {"openmmlab": ("mmcv (compiled here)",)}.get(name, ())
        if name == "attention" and attention != "xformers":
            extra = ("the flash-attn wheel (GitHub release)",)
        result.append(
            LayerSize(name, sum(sizes.get(package, 0) for package in new), (*extra, *missing))
        )
    return result


def model_layers(variant: str) -> list[LayerSize]:
    from ci.layers.models import layer_order

    return [
        LayerSize(f"model {entry.filename}", entry.size or 0, () if entry.size else ("size",))
        for entry in layer_order(variant)
    ]


def summary(profile: pins.Profile, variant: str, attention: str, baked: bool) -> list[str]:
    """plan's size lines: each layer, the total, and the promise it is held to."""
    python = python_layers(profile, attention)
    models = model_layers(variant) if baked else []
    # In the image's order: the models sit between the attention layer and ComfyUI.
    split = next((i for i, layer in enumerate(python) if layer.name == "comfyui"), len(python))
    layers = [*python[:split], *models, *python[split:]]
    lines = []
    for layer in layers:
        note = f" (not counted: {', '.join(layer.unknown)})" if layer.unknown else ""
        lines.append(f"{layer.size / 1e9:6.2f} GB  {layer.name}{note}")
    total = sum(layer.size for layer in layers)
    unsized = [layer.name.removeprefix("model ") for layer in models if "size" in layer.unknown]
    goal = f"the {GOAL_BYTES / 1e9:.0f} GB goal"
    if total >= GOAL_BYTES:
        verdict = f"in all, OVER {goal}"
    elif unsized:
        # A file of unknown size may hold anything: the total is a floor, the verdict unknown.
        verdict = (
            f"in all and more: {len(unsized)} model file(s) of unknown size ({', '.join(unsized)}),"
            f" so whether it is within {goal} is unknown"
        )
    else:
        verdict = f"in all, within {goal}"
    lines.append(
        f"{total / 1e9:6.2f} GB  {verdict}, plus the {profile.runtime_image} image and the apt "
        "packages (not estimated here)"
    )
    if not load(profile.name):
        lines.insert(0, f"no {sizes_path(profile.name).name} yet: Python layers count 0")
    return lines
