"""Layers 5 and 6: ComfyUI and the SteadyDancer node packs at their pinned commits.

Each tree comes from the engine's git API. Requirements are installed before the
tree is copied (from the lock, or from the tree's requirements.txt alone), so a
pin bump that leaves the requirements unchanged reuses the install.
"""

from __future__ import annotations

import dagger
from dagger import dag

from ci import paths, pins
from ci.installs import Installer


def tree(pin: pins.GitPin) -> dagger.Directory:
    return dag.git(pin.url).commit(pin.commit).tree(discard_git_dir=True)


def comfyui(ctr: dagger.Container, installer: Installer) -> dagger.Container:
    comfy = tree(pins.COMFYUI)
    ctr = installer.install(ctr, trees={pins.COMFYUI: comfy})
    return ctr.with_directory(paths.COMFYUI_DIR, comfy).with_env_variable(
        "COMFYUI_DIR", paths.COMFYUI_DIR
    )


def nodes(ctr: dagger.Container, installer: Installer) -> dagger.Container:
    trees = {pack: tree(pack) for pack in pins.NODE_PACKS}
    ctr = installer.install(ctr, trees=trees)
    for pack, directory in trees.items():
        ctr = ctr.with_directory(f"{paths.CUSTOM_NODES_DIR}/{pack.name}", directory)
    return ctr
