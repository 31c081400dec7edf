"""The tables of docs/performance.md, made from the result files in bench/results/.

Usage:
  python -m bench.report [--table jobs|attention|profile]

One row for each first-and-warm-job result (bench.gpu_render --jobs 2): its speed
settings, the first job's steady s/step and its ratio to the bf16 forward floor measured
at the same shape on the same machine, the first step, server start to video, the first
and warm job's queue-to-video (ComfyUI's run, as the client saw it) and the warm job's wall
time with upload and download, the sampler's and nvidia-smi's peaks, and the quality gate
against the shipped path's result of the same checkpoint and shape. The attention table
holds one-job runs of one machine against the first of them (its floor and its gate's
reference); the profile table splits one sampling step's GPU time by kernel kind
(--profile-step). The docs carry this output verbatim; a test holds them to it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
ROWS = (
    "fp8-480x832x33-shipped",
    "fp8-480x832x33-fp8-resident",
    "fp8-480x832x33-bf16-resident-compile",
    "fp8-480x832x33-fp8-resident-compile",
    "fp16-480x832x33-shipped",
    "fp16-480x832x33-fp8-resident",
    "fp8-480x832x81-shipped",
    "fp8-480x832x81-bf16-resident",
    "fp8-480x832x81-fp8-resident",
    "fp16-480x832x81-shipped",
    "fp16-480x832x81-bf16-resident-compile",
    "fp8-480x832x81-shipped-b",
    "fp8-480x832x81-fp8-resident-b",
    "fp8-480x832x81-fp8-resident-compile-b",
)
ATTENTION_ROWS = (
    "fp8-480x832x81-bf16-resident-c",
    "fp8-480x832x81-bf16-resident-sageattn-c",
    "fp8-480x832x81-fp8-resident-compile-sageattn-c",
)
PROFILE_ROWS = (
    "fp8-480x832x81-bf16-resident-profile",
    "fp8-480x832x81-fp8-resident-compile-profile",
    "fp8-480x832x81-fp8-resident-compile-sageattn-c",
)
HEADER = (
    "| result (`bench/results/`) | compute | resident | compile | steady s/step | x floor "
    "| 1st step s | start to video s | 1st job queue to video s | warm job queue to video s "
    "| warm job wall s | sampler peak GiB | nvidia-smi peak GiB "
    "| gate: latent rel. error / frames PSNR |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def load(name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((RESULTS / f"{name}.json").read_text())
    return result


def floors() -> dict[int, float]:
    """The bf16 forward floor for each frame count, from the results that measured it."""
    found: dict[int, float] = {}
    for name in ROWS:
        result = load(name)
        if "floor" in result:
            found.setdefault(result["parameters"]["frames"], result["floor"]["bf16_forward_s"])
    return found


def gate_cell(result: dict[str, Any]) -> str:
    """The quality gate's verdict on a result's first job, or "reference" for the path the
    others were gated against."""
    gate = result.get("quality")
    if not gate:
        return "reference"
    job = gate["jobs"][0]
    verdict = "pass" if gate["passed"] else "FAIL"
    return f"{job['latent_relative_error']:.4f} / {job['frames_psnr_db']:.1f} dB, {verdict}"


def markdown_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def row(name: str, floor_s: float) -> str:
    result = load(name)
    values = result["parameters"]
    first, warm = result["jobs"]
    cells = [
        f"`{name}`",
        values.get("compute", "bf16"),
        values.get("resident", "off"),
        values.get("compile", "off"),
        f"{first['steady_s_per_step']:.3f}",
        f"{first['steady_s_per_step'] / floor_s:.2f}",
        f"{first['step_s'][0]:.2f}",
        f"{result['server_start_to_video_s']:.1f}",
        f"{first['timings_s']['generate']:.2f}",
        f"{warm['timings_s']['generate']:.2f}",
        f"{warm['wall_s']:.2f}",
        f"{first['max_reserved_gib']:.1f}",
        f"{result['vram_peak_nvidia_smi_mib'] / 1024:.1f}",
        gate_cell(result),
    ]
    return markdown_row(cells)


def table() -> str:
    by_frames = floors()
    rows = [row(name, by_frames[load(name)["parameters"]["frames"]]) for name in ROWS]
    return "\n".join([HEADER, *rows])


def attention_table() -> str:
    floor_s = load(ATTENTION_ROWS[0])["floor"]["bf16_forward_s"]
    lines = [
        "| result (`bench/results/`) | compute | attention | compile | steady s/step | x floor "
        "| queue to video s | sampler peak GiB | gate: latent rel. error / frames PSNR |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in ATTENTION_ROWS:
        result = load(name)
        values, (job,) = result["parameters"], result["jobs"]
        cells = [
            f"`{name}`",
            values.get("compute", "bf16"),
            values.get("attention", "sdpa"),
            values.get("compile", "off"),
            f"{job['steady_s_per_step']:.3f}",
            f"{job['steady_s_per_step'] / floor_s:.2f}",
            f"{job['timings_s']['generate']:.2f}",
            f"{job['max_reserved_gib']:.1f}",
            gate_cell(result),
        ]
        lines.append(markdown_row(cells))
    return "\n".join(lines)


PROFILE_COLUMNS = ("attention", "matmul", "elementwise and reductions", "copy and cast")


def profile_table() -> str:
    lines = [
        "| result (`bench/results/`) | step ms | attention ms | matmul ms "
        "| elementwise ms | copy and cast ms | the rest ms | GPU idle ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in PROFILE_ROWS:
        profile = load(name)["step_profile"]
        categories = profile["categories"]
        shown = [categories.get(label, {"ms": 0.0})["ms"] for label in PROFILE_COLUMNS]
        rest = sum(c["ms"] for label, c in categories.items() if label not in PROFILE_COLUMNS)
        wall = profile["wall_ms"]
        cells = [
            f"`{name}`",
            f"{wall:.0f}",
            *(f"{ms:.0f} ({ms / wall:.0%})" for ms in shown),
            f"{rest:.0f}",
            f"{profile['gpu_idle_ms']:.0f}",
        ]
        lines.append(markdown_row(cells))
    return "\n".join(lines)


TABLES = {"jobs": table, "attention": attention_table, "profile": profile_table}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Print docs/performance.md's tables from bench/results/*.json."
    )
    parser.add_argument("--table", choices=sorted(TABLES), default="jobs")
    args = parser.parse_args(argv)
    print(TABLES[args.table]())
    return 0


if __name__ == "__main__":
    sys.exit(main())
