"""Benchmark the model fetcher against the local Hub-protocol server of the tests.

Usage: python -m bench.fetch_models [--variant fp8] [--scale 0.02] [--rate-mb 50] [--faults]

Serves the variant's files from the catalog, each scaled down by --scale (so the
one large DiT and the seven small files keep the catalog's proportions), with
each CDN connection held to --rate-mb MB/s, as the Hub's CDN holds each
connection. Measures the whole set fetched end to end one file at a time
(--jobs 1) and four at a time (--jobs 4), then a TCP reset at 60 % of the
largest file: the bytes sent in all, against a restart from zero. With --faults,
each fault the fetcher survives, on the largest file: bytes sent and seconds taken.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from steadydancer import catalog

from tests.hub_server import Hub, serve

FETCHER = Path(__file__).resolve().parents[1] / "docker" / "steadydancer" / "fetch_models.py"


def fetch(
    endpoint: str,
    work: Path,
    entries: list[dict[str, object]],
    dest: Path,
    jobs: int,
    *extra: str,
) -> float:
    manifest = work / "manifest.json"
    manifest.write_text(json.dumps(entries))
    env = {**os.environ, "HF_ENDPOINT": endpoint}
    env.pop("HF_TOKEN", None)
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            str(FETCHER),
            "--manifest",
            str(manifest),
            "--dest",
            str(dest),
            "--jobs",
            str(jobs),
            "--progress-interval",
            "3600",
            *extra,
        ],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--variant",
        default=catalog.DEFAULT_VARIANT,
        help=f"catalog variant whose files are served, one of {', '.join(catalog.VARIANTS)}",
    )
    parser.add_argument("--scale", type=float, default=0.02, help="each file's size factor")
    parser.add_argument(
        "--rate-mb", type=float, default=50, help="each connection's limit, in MB/s (like a CDN)"
    )
    parser.add_argument(
        "--faults", action="store_true", help="also time each fault on the largest file"
    )
    args = parser.parse_args(argv)
    hub = Hub(rate=args.rate_mb * 1_000_000)
    entries = []
    # A file from another site (catalog `url`) would be fetched from there, not from the
    # local Hub: the bench leaves it out and says so.
    elsewhere = [model.filename for model in catalog.files_for(args.variant) if model.url]
    if elsewhere:
        print(f"left out, not on the Hub: {', '.join(elsewhere)}")
    for model in (m for m in catalog.files_for(args.variant) if not m.url):
        size = max(int((model.size or 0) * args.scale), 1)
        hub.add(model.repo, model.path, os.urandom(size))
        entries.append({**model.to_manifest(), "revision": "main", "size": size, "sha256": None})
    sizes = sorted((int(str(e["size"])) for e in entries), reverse=True)
    total = sum(sizes)
    with tempfile.TemporaryDirectory(prefix="bench-fetch-") as tmp, serve(hub) as endpoint:
        work = Path(tmp)
        one_by_one = fetch(endpoint, work, entries, work / "serial", jobs=1)
        parallel = fetch(endpoint, work, entries, work / "parallel", jobs=4)
        print(
            f"{args.variant} scaled by {args.scale}: {len(entries)} files, {total / 1e6:.0f} MB "
            f"(largest {sizes[0] / 1e6:.0f} MB), each connection held to {args.rate_mb:.0f} MB/s:"
        )
        for label, seconds in (
            ("one after another (--jobs 1)", one_by_one),
            ("four at a time    (--jobs 4)", parallel),
        ):
            print(f"  {label}: {seconds:6.1f} s, {total / seconds / 1e6:6.1f} MB/s")
        print(f"  floor for one connection on the largest file: {sizes[0] / hub.rate:.1f} s")

        largest = max(entries, key=lambda e: int(str(e["size"])))
        size, path = int(str(largest["size"])), str(largest["path"])
        hub.sent.clear()
        hub.reset_after[path] = int(size * 0.6)
        fetch(endpoint, work, [largest], work / "reset", jobs=1)
        sent = hub.sent[path]
        print(
            f"TCP reset at 60 % of {size / 1e6:.0f} MB: {sent / 1e6:.1f} MB sent in all, "
            f"{(sent - size) / 1e6:.1f} MB of it again; a restart from zero sends "
            f"{size * 1.6 / 1e6:.0f} MB"
        )
        if args.faults:
            faults(hub, endpoint, work, largest)
    return 0


def faults(hub: Hub, endpoint: str, work: Path, largest: dict[str, object]) -> None:
    """Each fault once on the largest file: what it cost in bytes and seconds."""
    size, path = int(str(largest["size"])), str(largest["path"])
    cases: list[tuple[str, Callable[[], None], tuple[str, ...]]] = [
        ("none", lambda: None, ()),
        ("TCP reset at 60 %", lambda: hub.reset_after.__setitem__(path, int(size * 0.6)), ()),
        ("clean close at 60 %", lambda: hub.cut_after.__setitem__(path, int(size * 0.6)), ()),
        ("stall of 3 s, timeout 1 s", lambda: hub.stall.__setitem__(path, 3.0), ("--timeout", "1")),
        (
            "503 with Retry-After: 2",
            lambda: (hub.errors.__setitem__(path, [503]), hub.retry_after.__setitem__(path, "2")),
            (),
        ),
    ]
    print(f"faults on {size / 1e6:.0f} MB:")
    for number, (label, inject, extra) in enumerate(cases):
        hub.sent.clear()
        inject()
        seconds = fetch(endpoint, work, [largest], work / f"fault-{number}", 1, *extra)
        print(f"  {label:28} {hub.sent.get(path, 0) / 1e6:7.1f} MB sent, {seconds:5.1f} s")


if __name__ == "__main__":
    sys.exit(main())
