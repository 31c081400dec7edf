"""How every layer installs Python packages: from the profile's hashed lock, else resolved live.

With a lock, each install names its packages at the locked versions and mounts
only the lock entries they draw on, hashes required: a change to one layer's
dependencies leaves the other layers' installs, and their cache, untouched.
Without one (a profile whose lock needs an index this repository cannot reach),
installs resolve at build time, held to the pins' constraints.
After every install the pinned packages are checked unchanged (drift guard).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import dagger
from dagger import dag

from ci import lock as locks
from ci import pins, source

MOUNT = "/tmp/steadydancer-install"


@dataclass(frozen=True)
class Installer:
    profile: pins.Profile
    lock: locks.Lock | None

    @classmethod
    def for_profile(cls, profile: pins.Profile) -> Installer:
        return cls(profile, locks.load(profile.name))

    @property
    def index_args(self) -> list[str]:
        url = self.profile.torch_index_url
        return ["--extra-index-url", url, "--index-strategy", "unsafe-best-match"] if url else []

    def describe(self) -> str:
        if self.lock is None:
            return (
                f"profile {self.profile.name} has no lock yet (make one with `dagger call lock "
                f"--profile {self.profile.name}`): its packages are resolved at build time, "
                "held to the pins' constraints"
            )
        return f"installs from ci/locks/{self.profile.name}.txt with hashes required"

    def install(
        self,
        ctr: dagger.Container,
        specs: Iterable[str] = (),
        trees: dict[pins.GitPin, dagger.Directory] | None = None,
        extra: Iterable[str] = (),
    ) -> dagger.Container:
        """Install `specs` and the requirements of `trees`, then check nothing pinned moved."""
        trees = trees or {}
        files = dag.directory().with_new_file("overrides.txt", pins.overrides_text())
        if self.lock is not None:
            roots = self.lock.pin_all(specs)
            for pin in trees:
                roots += locks.tree_roots(self.lock, pin)
            files = files.with_new_file("lock.txt", self.lock.subset(roots))
            args = ["--require-hashes", "--constraint", f"{MOUNT}/lock.txt", *roots]
        else:
            files = files.with_new_file("constraints.txt", pins.constraints_text(self.profile))
            args = ["--constraint", f"{MOUNT}/constraints.txt", *specs]
            for pin, tree in trees.items():
                files = files.with_file(f"{pin.name}.txt", tree.file("requirements.txt"))
                args += ["--requirement", f"{MOUNT}/{pin.name}.txt"]
        ctr = ctr.with_mounted_directory(MOUNT, files).with_exec(
            [
                "uv",
                "pip",
                "install",
                "--override",
                f"{MOUNT}/overrides.txt",
                *self.index_args,
                *extra,
                *args,
            ]
        )
        return ctr.without_mount(MOUNT)


def guard(ctr: dagger.Container, expected: Iterable[str]) -> dagger.Container:
    """Fail the layer if a pinned package moved or an excluded one slipped in."""
    absent = [arg for name in pins.EXCLUDED_DISTRIBUTIONS for arg in ("--absent", name)]
    ctr = source.with_tool(ctr, "drift_check")
    return ctr.with_exec(["python", source.tool_path("drift_check"), *expected, *absent])
