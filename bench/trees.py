"""Lay out the pinned ComfyUI tree with its node packs as the image's nodes layer does.

Usage:
  python -m bench.trees --into DIR [--archive NAME=FILE.tar.gz]...

DIR/ComfyUI gets ComfyUI at the commit in ci/pins.py, each node pack under
custom_nodes/ at its commit, the packs' build-time patches applied and verified, and
this repository's official pose pack beside them. Each tree is cloned from its pinned
URL and checked out at its commit; on a host that cannot reach GitHub, --archive gives a
tree as `git archive <commit>` wrote it. A patch is applied with git discovery stopped at
the pack (GIT_CEILING_DIRECTORIES): run inside another checkout, `git apply` would
otherwise take that checkout's root for its own and skip every path silently. It is then
verified by checking that the patch reverses cleanly.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from ci import pins  # noqa: E402


class TreeError(RuntimeError):
    """A tree that could not be laid out, named with what to do."""


def git(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(cwd.parent)}
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)


def fetch(pin: pins.GitPin, into: Path, archive: Path | None) -> None:
    """The pin's tree at `into`, from its archive or a clone at its commit; no .git kept."""
    if into.exists():
        shutil.rmtree(into)
    into.mkdir(parents=True)
    if archive is not None:
        if not archive.is_file():
            raise TreeError(f"--archive {pin.name}={archive}: no such file")
        with tarfile.open(archive) as tar:
            tar.extractall(into, filter="data")
        return
    cloned = subprocess.run(
        ["git", "clone", "--quiet", "--filter=blob:none", "--no-checkout", pin.url, str(into)],
        capture_output=True,
        text=True,
    )
    if cloned.returncode:
        raise TreeError(
            f"cloning {pin.url} failed: {cloned.stderr.strip()}; without network, give "
            f"--archive {pin.name}=FILE (git archive {pin.commit})"
        )
    checkout = git("checkout", "--quiet", pin.commit, cwd=into)
    if checkout.returncode:
        raise TreeError(f"{pin.name}: commit {pin.commit} not found: {checkout.stderr.strip()}")
    shutil.rmtree(into / ".git")


def apply_patch(pack: Path, patch: Path) -> None:
    """Apply `patch` inside `pack` and prove it took: its reverse must now apply."""
    applied = git("apply", "--verbose", str(patch), cwd=pack)
    if applied.returncode:
        raise TreeError(
            f"{patch.name} does not apply to {pack.name}: {applied.stderr.strip()} "
            "(the pack moved off the commit the patch was made for)"
        )
    verified = git("apply", "--check", "--reverse", str(patch), cwd=pack)
    if verified.returncode or "Applied patch" not in applied.stderr:
        raise TreeError(f"{patch.name}: applied to {pack.name} but not found there afterwards")


def lay_out(into: Path, archives: dict[str, Path]) -> Path:
    """DIR/ComfyUI with the packs, patched; returns the ComfyUI directory."""
    comfyui = into / "ComfyUI"
    fetch(pins.COMFYUI, comfyui, archives.get(pins.COMFYUI.name))
    for pack in pins.NODE_PACKS:
        fetch(pack, comfyui / "custom_nodes" / pack.name, archives.get(pack.name))
    for name, patch in pins.PATCHES.items():
        apply_patch(comfyui / "custom_nodes" / name, REPO / patch)
    shutil.copytree(
        REPO / "docker" / "steadydancer" / "nodes",
        comfyui / "custom_nodes" / pins.OFFICIAL_POSE_PACK,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return comfyui


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--into", type=Path, required=True)
    parser.add_argument("--archive", action="append", default=[], metavar="NAME=FILE")
    args = parser.parse_args(argv)
    known = {pins.COMFYUI.name, *(pack.name for pack in pins.NODE_PACKS)}
    archives: dict[str, Path] = {}
    for pair in args.archive:
        name, sep, path = pair.partition("=")
        if not sep or name not in known:
            print(
                f"--archive {pair!r}: expected NAME=FILE, NAME one of {', '.join(sorted(known))}",
                file=sys.stderr,
            )
            return 2
        archives[name] = Path(path)
    try:
        comfyui = lay_out(args.into, archives)
    except TreeError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(
        f"{comfyui}: ComfyUI {pins.COMFYUI.commit[:7]}, "
        + ", ".join(f"{p.name} {p.commit[:7]}" for p in pins.NODE_PACKS)
        + f"; patched: {', '.join(pins.PATCHES)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
