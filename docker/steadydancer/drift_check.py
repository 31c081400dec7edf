"""Fail when an installed package is not at its pinned version, or an excluded one is present.

Usage: drift_check.py NAME==VERSION... [--absent NAME]...

Run after every layer that installs Python packages, so a node pack that
upgrades torch (or brings a second OpenCV) fails the layer that did it.
Standard library only.
"""

from __future__ import annotations

import argparse
import sys
from importlib import metadata


def installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def problems(expected: list[str], absent: list[str]) -> list[str]:
    found = []
    for spec in expected:
        name, _, version = spec.partition("==")
        have = installed(name)
        if have is None:
            found.append(f"{name} is pinned to {version} but is not installed")
        elif have != version:
            found.append(f"{name} is pinned to {version} but {have} is installed")
    for name in absent:
        have = installed(name)
        if have is not None:
            found.append(f"{name} {have} is installed but must not be (ci/pins.py says why)")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("expected", nargs="*", help="NAME==VERSION")
    parser.add_argument("--absent", action="append", default=[])
    args = parser.parse_args(argv)
    bad = [spec for spec in args.expected if "==" not in spec]
    if bad:
        parser.error(f"expected NAME==VERSION, got {', '.join(bad)}")
    found = problems(args.expected, args.absent)
    if found:
        print("drift: this layer changed pinned packages:", file=sys.stderr)
        for line in found:
            print(f"  {line}", file=sys.stderr)
        print("  pin what moved them in ci/pins.py and relock (python -m ci.lock)", file=sys.stderr)
        return 1
    print(f"drift check: {len(args.expected)} pinned packages unchanged", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
