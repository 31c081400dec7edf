"""Build a wheel once per key and keep it in a cache folder, so later builds compile nothing.

Usage: wheel_cache.py --cache DIR --key KEY --out DIR [--timeout S] -- COMMAND...

COMMAND writes its wheels into the folder named by the `{wheel_dir}` placeholder.
On success the wheels are moved into DIR/KEY in one rename (a build cut short
never leaves a half-filled entry) and copied to --out. Standard library only:
it runs in builder containers before the project's own packages exist.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

MARKER = ".complete"
PLACEHOLDER = "{wheel_dir}"


def cached_wheels(entry: Path) -> list[Path]:
    if not (entry / MARKER).is_file():
        return []
    return sorted(entry.glob("*.whl"))


def copy_out(wheels: list[Path], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for wheel in wheels:
        shutil.copy2(wheel, out / wheel.name)
        print(f"wheel-cache: {wheel.name} -> {out}", flush=True)


def build(command: list[str], cache: Path, key: str, timeout: float | None) -> list[Path]:
    """Run COMMAND into a scratch folder and publish its wheels under cache/key."""
    scratch = cache / f".building-{key}-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    argv = [arg.replace(PLACEHOLDER, str(scratch)) for arg in command]
    print(f"wheel-cache: building {key}: {' '.join(argv)}", flush=True)
    started = time.monotonic()
    try:
        result = subprocess.run(argv, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        shutil.rmtree(scratch, ignore_errors=True)
        raise SystemExit(
            f"wheel-cache: building {key} did not finish within {timeout:.0f} s; stopped"
        ) from None
    if result.returncode != 0:
        shutil.rmtree(scratch, ignore_errors=True)
        raise SystemExit(f"wheel-cache: building {key} failed with exit code {result.returncode}")
    wheels = sorted(scratch.glob("*.whl"))
    if not wheels:
        shutil.rmtree(scratch, ignore_errors=True)
        raise SystemExit(f"wheel-cache: building {key} succeeded but wrote no .whl file")
    (scratch / MARKER).write_text(f"built in {time.monotonic() - started:.0f} s\n")
    entry = cache / key
    try:
        scratch.rename(entry)
    except OSError:
        # Another build published the same key first; its wheels are as good as ours.
        shutil.rmtree(scratch, ignore_errors=True)
        if not cached_wheels(entry):
            raise
    print(f"wheel-cache: built {key} in {time.monotonic() - started:.0f} s", flush=True)
    return cached_wheels(entry)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--timeout", type=float, default=None)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("a build COMMAND is required after --")
    if not any(PLACEHOLDER in arg for arg in command):
        parser.error(f"the build command must write to {PLACEHOLDER}")
    if "/" in args.key or args.key.startswith("."):
        parser.error(f"--key {args.key!r} must be a plain name (no '/', no leading '.')")

    entry = args.cache / args.key
    wheels = cached_wheels(entry)
    if wheels:
        print(f"wheel-cache: reusing {args.key} from {args.cache}", flush=True)
    else:
        args.cache.mkdir(parents=True, exist_ok=True)
        wheels = build(command, args.cache, args.key, args.timeout)
    copy_out(wheels, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
