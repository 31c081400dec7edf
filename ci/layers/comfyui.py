"""Layers 5 and 6: ComfyUI and the SteadyDancer node packs at their pinned commits.

Each tree comes from the engine's git API. Requirements are installed from the
requirements file alone, before the tree is copied, so a pin bump that leaves
requirements.txt unchanged reuses the install.
"""

from __future__ import annotations

import dagger
from dagger import dag

from ci import paths, pins
from ci.layers.base import uv_pip_install

REQUIREMENTS_MOUNT = "/tmp/steadydancer-requirements"


def tree(pin: pins.GitPin) -> dagger.Directory:
    return dag.git(pin.url).commit(pin.commit).tree(discard_git_dir=True)


def install_requirements(
    ctr: dagger.Container, profile: pins.Profile, trees: dict[str, dagger.Directory]
) -> dagger.Container:
    """Resolve the requirements of all `trees` together, held to the image's pins."""
    args: list[str] = []
    for name, directory in trees.items():
        mounted = f"{REQUIREMENTS_MOUNT}/{name}.txt"
        ctr = ctr.with_mounted_file(mounted, directory.file("requirements.txt"))
        args += ["--requirement", mounted]
    ctr = uv_pip_install(ctr, profile, args)
    for name in trees:
        ctr = ctr.without_mount(f"{REQUIREMENTS_MOUNT}/{name}.txt")
    return ctr


def comfyui(ctr: dagger.Container, profile: pins.Profile) -> dagger.Container:
    comfy = tree(pins.COMFYUI)
    ctr = install_requirements(ctr, profile, {pins.COMFYUI.name: comfy})
    return ctr.with_directory(paths.COMFYUI_DIR, comfy).with_env_variable(
        "COMFYUI_DIR", paths.COMFYUI_DIR
    )


def nodes(ctr: dagger.Container, profile: pins.Profile) -> dagger.Container:
    trees = {pack.name: tree(pack) for pack in pins.NODE_PACKS}
    ctr = install_requirements(ctr, profile, trees)
    for name, directory in trees.items():
        ctr = ctr.with_directory(f"{paths.CUSTOM_NODES_DIR}/{name}", directory)
    return ctr
