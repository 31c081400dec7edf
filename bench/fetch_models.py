"""Benchmark the model fetcher against the local Hub-protocol server of the tests.

Usage: python -m bench.fetch_models [--files 4] [--mb 200] [--rate-mb 50]

Each CDN connection is held to --rate-mb MB/s, as the Hub's CDN holds each
connection, so what parallel downloads gain is visible on one machine. Measures
the same files fetched one after another (--jobs 1) and in parallel (--jobs 4),
then the bytes a resumed transfer saves after a cut at 60 %.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.hub_server import Hub, serve

FETCHER = Path(__file__).resolve().parents[1] / "docker" / "steadydancer" / "fetch_models.py"


def fetch(
    endpoint: str, work: Path, entries: list[dict[str, object]], dest: Path, jobs: int
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
        ],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--files", type=int, default=4, help="files served by the local Hub")
    parser.add_argument("--mb", type=int, default=200, help="size of each file, in MB")
    parser.add_argument(
        "--rate-mb", type=float, default=50, help="each connection's limit, in MB/s (like a CDN)"
    )
    args = parser.parse_args()
    size = args.mb * 1_000_000
    hub = Hub(rate=args.rate_mb * 1_000_000)
    entries = []
    for number in range(args.files):
        path = f"weights-{number}.safetensors"
        hub.add("bench/models", path, os.urandom(size))
        entries.append(
            {
                "repo": "bench/models",
                "path": path,
                "revision": "main",
                "target": f"diffusion_models/{path}",
                "size": size,
                "sha256": None,
            }
        )
    total = args.files * size
    with tempfile.TemporaryDirectory(prefix="bench-fetch-") as tmp, serve(hub) as endpoint:
        work = Path(tmp)
        one_by_one = fetch(endpoint, work, entries, work / "serial", jobs=1)
        parallel = fetch(endpoint, work, entries, work / "parallel", jobs=4)
        print(
            f"{args.files} files of {args.mb} MB, each connection held to {args.rate_mb:.0f} MB/s:"
        )
        for label, seconds in (
            ("one after another (--jobs 1)", one_by_one),
            ("in parallel      (--jobs 4)", parallel),
        ):
            print(f"  {label}: {seconds:6.1f} s, {total / seconds / 1e6:6.1f} MB/s")

        hub.sent.clear()
        path = str(entries[0]["path"])
        hub.cut_after[path] = int(size * 0.6)
        fetch(endpoint, work, entries[:1], work / "resumed", jobs=1)
        resumed = hub.sent[path]
        print(
            f"cut at 60 % of {args.mb} MB: {resumed / 1e6:.0f} MB sent in all with resume; "
            f"{(size * 0.6 + size) / 1e6:.0f} MB had it restarted; "
            f"{(size * 1.6 - resumed) / 1e6:.0f} MB saved"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
