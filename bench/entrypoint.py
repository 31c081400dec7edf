"""Benchmark the entrypoint's own time to ready a pod with 35 GB of model files present.

Usage: python -m bench.entrypoint [--runs 5] [--gb 35]

The models are sparse files with their markers (what a baked image or a warm
volume holds), so nothing is hashed; ComfyUI's main.py is a stand-in that exits
at once, nvidia-smi replays a real H200, and the attention probe is a stand-in:
the time measured is the entrypoint's, from start until ComfyUI is launched.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from steadydancer import catalog, fetch_models

from tests.stand_ins import executable, nvidia_smi

REPO = Path(__file__).resolve().parents[1]


UNSIZED_BYTES = 10**6
"""A stand-in for a file whose size the catalog does not record (the bench's catalog says it)."""


def build_root(root: Path, gigabytes: float) -> tuple[dict[str, str], int]:
    spec = json.loads(catalog.CATALOG_FILE.read_text())
    for key in spec["variants"]["fp8"]["files"]:
        item = spec["files"][key]
        item["size"] = item.get("size") or UNSIZED_BYTES
        item["sha256"] = item.get("sha256") or "0" * 64
    missing = int(gigabytes * 1e9) - sum(
        spec["files"][key]["size"] for key in spec["variants"]["fp8"]["files"]
    )
    spec["files"]["padding"] = {
        "repo": "bench/padding", "path": "padding.safetensors", "revision": "main",
        "folder": "loras", "size": max(missing, 0), "sha256": "0" * 64, "source": "bench",
    }  # fmt: skip
    spec["variants"]["fp8"]["files"].append("padding")
    bench_catalog = root / "catalog.json"
    bench_catalog.write_text(json.dumps(spec))
    models = root / "ComfyUI" / "models"
    total = 0
    for entry in catalog.load(bench_catalog)[1]["fp8"].files:
        fetched = fetch_models.Entry.from_manifest(entry.to_manifest())
        size, sha256 = entry.size or 0, entry.sha256 or ""
        target = models / fetched.target
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as out:
            out.truncate(size)
        fetch_models.write_marker(models, fetched, size, sha256, "c" * 40)
        total += size
    (root / "ComfyUI" / "main.py").write_text("")
    probe = executable(root / "probe", '#!/bin/sh\necho "$1 ok (stand-in)"\n')
    (root / "workspace").mkdir()
    env = {
        **nvidia_smi(root / "bin"),
        "PYTHONPATH": str(REPO / "docker"),
        "COMFYUI_DIR": str(root / "ComfyUI"),
        "STEADYDANCER_VOLUMES": str(root / "workspace"),
        "STEADYDANCER_RUN_DIR": str(root / "run"),
        "STEADYDANCER_CATALOG": str(bench_catalog),
        "STEADYDANCER_PROBE": str(probe),
        "STEADYDANCER_ENV_FILE": str(root / "rp_environment"),
        "STEADYDANCER_BASHRC": str(root / "bashrc"),
        "STEADYDANCER_HOOKS_DIR": str(root / "hooks"),
        "STEADYDANCER_ATTENTION": "flash_attn_2",
        "CUDA_VERSION": "12.4.1",
    }
    return env, total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=5, help="boots to time")
    parser.add_argument(
        "--gb", type=float, default=35.0, help="size of the sparse model files, in GB"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-entrypoint-") as tmp:
        env, total = build_root(Path(tmp), args.gb)
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            result = subprocess.run(
                [sys.executable, "-m", "steadydancer.entrypoint"],
                env={**os.environ, **env},
                capture_output=True,
                text=True,
                check=True,
            )
            times.append(time.perf_counter() - started)
        steps = [line for line in result.stdout.splitlines() if ": done in " in line]
    print(f"{total / 1e9:.1f} GB of model files present (sparse, with markers), {args.runs} boots:")
    median = statistics.median(times)
    print(f"  entrypoint to ComfyUI exit: min {min(times):.3f} s, median {median:.3f} s")
    print("  last boot's steps:")
    for line in steps:
        print(f"    {line.removeprefix('[steadydancer] ')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
