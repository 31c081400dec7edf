"""Where one sampling step's GPU time goes, from the Chrome trace torch's profiler wrote
(bench/comfyui_nodes/step_profiler.py, run by bench.gpu_render --profile-step).

Kernels are grouped by name into what they do; the GPU's busy time is the union of the
kernel and copy intervals, and what is left of the step's wall time is the GPU waiting on
the host (kernel launches, Python, synchronisation).

Usage:
  python -m bench.step_profile TRACE.json

TRACE.facts.json beside the trace holds the step and its wall time on the host's clock.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

CATEGORIES: tuple[tuple[str, re.Pattern[str]], ...] = (
    # First match wins. Attention first: cuDNN's and FlashAttention's names can hold "gemm".
    # torch.compile names a fused kernel after every op it fused, so one fused around an fp8
    # matmul's input quantization or attention's input (norm, RoPE) counts with that op;
    # SageAttention's own quantization kernels fall in "other".
    ("attention", re.compile(r"flash|fmha|attention|sdpa|_attn|sageattn|\bmha", re.I)),
    ("matmul", re.compile(r"gemm|nvjet|cutlass|xmma|cublas|scaled_mm|wgmma|\bmm\b", re.I)),
    ("copy and cast", re.compile(r"^Memcpy|^Memset|copy_kernel|CatArrayBatched", re.I)),
    ("normalization", re.compile(r"norm", re.I)),
    ("fused by torch.compile", re.compile(r"^triton_")),
    ("elementwise and reductions", re.compile(r"elementwise|vectorized|reduce|softmax", re.I)),
)
DEVICE_CATEGORIES = frozenset({"kernel", "gpu_memcpy", "gpu_memset"})


def category(name: str) -> str:
    for label, pattern in CATEGORIES:
        if pattern.search(name):
            return label
    return "other"


def device_events(trace: dict[str, Any]) -> list[tuple[str, float, float]]:
    """(name, start us, duration us) of every kernel, copy and memset in the trace."""
    return [
        (str(e["name"]), float(e["ts"]), float(e["dur"]))
        for e in trace.get("traceEvents", [])
        if e.get("ph") == "X" and e.get("cat") in DEVICE_CATEGORIES
    ]


def busy_us(events: list[tuple[str, float, float]]) -> float:
    """The union of the events' intervals: streams that overlap count once."""
    total, end = 0.0, float("-inf")
    for _, start, duration in sorted(events, key=lambda e: e[1]):
        stop = start + duration
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total


def summarize(trace: dict[str, Any], wall_ms: float, top: int = 12) -> dict[str, Any]:
    events = device_events(trace)
    if not events:
        raise ValueError("the trace holds no CUDA kernel: was the step run on the GPU?")
    by_kernel: dict[str, list[float]] = {}
    for name, _, duration in events:
        entry = by_kernel.setdefault(name, [0, 0.0])
        entry[0] += 1
        entry[1] += duration
    # Categorised once per kernel name, not per launch: a step launches thousands.
    by_category: dict[str, float] = {}
    for name, (_, us) in by_kernel.items():
        by_category[category(name)] = by_category.get(category(name), 0.0) + us
    kernel_ms = sum(by_category.values()) / 1000
    busy_ms = busy_us(events) / 1000
    return {
        "wall_ms": round(wall_ms, 3),
        "gpu_busy_ms": round(busy_ms, 3),
        "gpu_idle_ms": round(max(wall_ms - busy_ms, 0.0), 3),
        "kernel_ms": round(kernel_ms, 3),
        "kernels": len(events),
        "categories": {
            label: {"ms": round(us / 1000, 3), "share_of_step": round(us / 1000 / wall_ms, 4)}
            for label, us in sorted(by_category.items(), key=lambda item: -item[1])
        },
        "top_kernels": [
            {
                "name": name[:200],
                "category": category(name),
                "count": int(count),
                "ms": round(us / 1000, 3),
            }
            for name, (count, us) in sorted(by_kernel.items(), key=lambda item: -item[1][1])[:top]
        ],
    }


def read(trace_path: Path) -> dict[str, Any]:
    """The summary of a trace the step profiler wrote, with its facts (step, wall time)."""
    facts = json.loads(trace_path.with_suffix(".facts.json").read_text())
    summary = summarize(json.loads(trace_path.read_text()), float(facts["wall_ms"]))
    return {"step": facts["step"], "caller": facts["caller"], **summary}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace", type=Path)
    args = parser.parse_args(argv)
    try:
        print(json.dumps(read(args.trace), indent=1))
    except (OSError, ValueError, KeyError) as exc:
        print(f"{args.trace}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
