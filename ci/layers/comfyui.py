"""Layers 5 and 6: ComfyUI and the SteadyDancer node packs at their pinned commits.

Each tree comes from the engine's git API. Requirements are installed before the
tree is copied (from the lock, or from the tree's requirements.txt alone), so a
pin bump that leaves the requirements unchanged reuses the install. Then the
packs' build-time patches are applied (each names the commit it was made for,
and `git apply` refuses one that no longer fits), and this repository's own
pack, the official pose path, is copied in beside them.
"""

from __future__ import annotations

import dagger
from dagger import dag

from ci import paths, pins, source
from ci.installs import Installer

PATCHES = pins.PATCHES
OFFICIAL_POSE_PACK = pins.OFFICIAL_POSE_PACK
PATCH_DIR = "/tmp/steadydancer-patches"


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
    for name, patch in PATCHES.items():
        mounted = f"{PATCH_DIR}/{patch.rsplit('/', 1)[-1]}"
        ctr = (
            ctr.with_mounted_file(mounted, source.project().file(patch))
            .with_exec(
                ["git", "-C", f"{paths.CUSTOM_NODES_DIR}/{name}", "apply", "--verbose", mounted]
            )
            .without_mount(mounted)
        )
    return ctr.with_directory(
        f"{paths.CUSTOM_NODES_DIR}/{OFFICIAL_POSE_PACK}",
        source.project().directory("docker/steadydancer/nodes"),
    )
