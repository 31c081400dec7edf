"""The lock resolved on the engine: requirements read from the pinned git trees, any index.

`dagger call lock --profile cu121 export --path ci/locks` writes the lock and the
requirement copies it was made from, resolved at the cutoff the committed locks
record (`--upgrade` moves it to now); the flash-attn release wheel's sha256 is
recorded in the lock's header.
"""

from __future__ import annotations

import dagger
from dagger import dag

from ci import lock as locks
from ci import pins
from ci.layers.attention import flash_attn_wheel_name, flash_attn_wheel_url
from ci.layers.comfyui import tree
from ci.layers.models import python_container

WORK = "/lock"
BUILD_ENV = "/build-env"


def resolver(profile: pins.Profile, cutoff: str) -> dagger.Container:
    inputs = dag.directory()
    for name, text in locks.input_files(profile).items():
        inputs = inputs.with_new_file(name, text)
    for pin in locks.sources():
        inputs = inputs.with_file(
            f"requirements/{pin.name}.txt", tree(pin).file("requirements.txt")
        )
    ctr = python_container()
    return (
        ctr.with_exec(["uv", "venv", "--seed", "--python", "3.11", BUILD_ENV])
        .with_exec(
            [
                "uv",
                "pip",
                "install",
                "--python",
                f"{BUILD_ENV}/bin/python",
                pins.SETUPTOOLS.requirement,
            ]
        )
        .with_directory(WORK, inputs)
        .with_workdir(WORK)
        .with_exec(locks.compile_command(profile, f"{BUILD_ENV}/bin/python", "lock.txt", cutoff))
    )


def wheel_digest(profile: pins.Profile) -> dagger.Container:
    name = flash_attn_wheel_name(profile)
    wheel = dag.http(flash_attn_wheel_url(profile), name=name)
    return (
        dag.container()
        .from_(pins.FETCH_IMAGE)
        .with_file(f"/wheel/{name}", wheel)
        .with_exec(["sha256sum", f"/wheel/{name}"])
    )


async def lock_directory(profile: pins.Profile, cutoff: str) -> dagger.Directory:
    body = await resolver(profile, cutoff).file(f"{WORK}/lock.txt").contents()
    digest = (await wheel_digest(profile).stdout()).split()[0]
    copies = {
        pin.name: locks.requirements_copy(pin, await tree(pin).file("requirements.txt").contents())
        for pin in locks.sources()
    }
    text = locks.header(profile, cutoff, digest, copies) + body
    print(
        *(
            locks.changes(locks.load(profile.name), locks.Lock.parse(profile.name, text))
            or ["no package changed"]
        ),
        sep="\n",
    )
    out = dag.directory().with_new_file(f"{profile.name}.txt", text)
    for name, copy in copies.items():
        out = out.with_new_file(f"requirements/{name}.txt", copy)
    return out
