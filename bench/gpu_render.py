"""Render a shipped workflow on this machine's GPU through the smoke client, timed.

Usage:
  python -m bench.gpu_render --comfyui DIR [--synthetic] [--variant fp8]
      [--workflow steadydancer-pose] [--set NAME=VALUE]... [--out FILE.json]

Starts the ComfyUI tree DIR (the pinned ComfyUI with the pinned node packs in
custom_nodes) on a free port, runs the image's GPU check and attention probe, then
the project's smoke client with the workflow and parameters, and writes one JSON
result: GPU, driver, torch and CUDA, attention backend, variant, size, steps, seconds
per sampling step, time from server start to the verified video, peak VRAM (the
sampler's own torch.cuda.max_memory_allocated, and nvidia-smi's device-wide peak),
and the client's verification of the video. With --synthetic, the variant's files
missing under DIR/models are first written with random values of the real shapes
(bench.synthetic_weights), which renders at the real speed but shows noise; without
it, the real files must be there.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from steadydancer import catalog, smoke, workflows

STEP_BAR = re.compile(r"(\d+)/(\d+) \[(\d+):(\d+)<[^,\]]*,\s*([\d.]+)s/it\]")
"""tqdm's progress line: done/total [mm:ss<left, rate s/it]."""
SAMPLER_MEMORY = re.compile(r"Max (allocated|reserved) memory: max_\w+=([\d.]+) GB")
"""WanVideoWrapper's report of torch.cuda.max_memory_allocated/reserved (GiB) after sampling."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class VramSampler:
    """nvidia-smi's memory.used of GPU 0, sampled every 200 ms; the peak in MiB."""

    def __init__(self) -> None:
        self.peak_mib = 0
        self.process: subprocess.Popen[str] | None = None
        self.thread = threading.Thread(target=self._read, daemon=True)

    def start(self) -> VramSampler:
        try:
            self.process = subprocess.Popen(
                [
                    "nvidia-smi",
                    "--query-gpu=memory.used",
                    "--format=csv,noheader,nounits",
                    "-i",
                    "0",
                    "-lms",
                    "200",
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
        except FileNotFoundError:
            return self
        self.thread.start()
        return self

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            if line.strip().isdigit():
                self.peak_mib = max(self.peak_mib, int(line))

    def stop(self) -> int:
        if self.process is not None:
            self.process.terminate()
            self.process.wait()
        return self.peak_mib


def log_figures(log: str, steps: int) -> dict[str, float | None]:
    """What the ComfyUI log says of the last sampling of `steps` steps: its seconds (tqdm's
    elapsed, whole seconds), tqdm's last smoothed rate, and the sampler's peak memory."""
    figures: dict[str, float | None] = {
        "sampling_s": None,
        "tqdm_s_per_step": None,
        "max_allocated_gib": None,
        "max_reserved_gib": None,
    }
    for match in STEP_BAR.finditer(log):
        done, total, minutes, seconds = (int(g) for g in match.groups()[:4])
        if done == total == steps:
            figures["sampling_s"] = float(minutes * 60 + seconds)
            figures["tqdm_s_per_step"] = float(match.group(5))
    for kind, gib in SAMPLER_MEMORY.findall(log):
        key = f"max_{kind}_gib"
        figures[key] = max(figures[key] or 0.0, float(gib))
    sampling = figures["sampling_s"]
    figures["seconds_per_step"] = round(sampling / steps, 2) if sampling is not None else None
    return figures


def probe(python: str, module: str, env: dict[str, str], *args: str) -> dict[str, Any]:
    """One of the image's own checks, run with the ComfyUI interpreter; its output kept."""
    docker = str(Path(__file__).resolve().parents[1] / "docker")
    result = subprocess.run(
        [python, "-m", f"steadydancer.{module}", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**env, "PYTHONPATH": os.pathsep.join(filter(None, [docker, env.get("PYTHONPATH")]))},
    )
    return {
        "command": shlex.join(["python", "-m", f"steadydancer.{module}", *args]),
        "exit": result.returncode,
        "output": (result.stdout + result.stderr).strip().splitlines()[-20:],
    }


def versions(python: str) -> dict[str, Any]:
    code = (
        "import json, torch; print(json.dumps({'torch': torch.__version__, "
        "'cuda': torch.version.cuda, 'gpu': torch.cuda.get_device_name(0) "
        "if torch.cuda.is_available() else None, 'vram_gib': round(torch.cuda."
        "get_device_properties(0).total_memory / 2**30, 1) if torch.cuda.is_available() "
        "else None}))"
    )
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout
    info: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        info["driver"] = smi or None
    except FileNotFoundError:
        info["driver"] = None
    return info


def start_comfyui(
    comfyui: Path, python: str, port: int, log_path: Path, extra: list[str]
) -> subprocess.Popen[bytes]:
    log = log_path.open("wb")
    return subprocess.Popen(
        [
            python,
            "main.py",
            "--listen",
            "127.0.0.1",
            "--port",
            str(port),
            "--disable-auto-launch",
            *extra,
        ],
        cwd=comfyui,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comfyui", type=Path, required=True, help="ComfyUI tree with the packs")
    parser.add_argument("--python", default=sys.executable, help="the interpreter ComfyUI runs on")
    parser.add_argument("--synthetic", action="store_true", help="write missing weights first")
    parser.add_argument("--variant", default=catalog.DEFAULT_VARIANT)
    parser.add_argument("--workflow", default="steadydancer-pose")
    parser.add_argument("--attention", default="sdpa", help="flash_attn_2, xformers or sdpa")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument(
        "--comfyui-arg",
        dest="comfy_args",
        action="append",
        default=[],
        help="an extra ComfyUI flag (repeatable)",
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results/gpu-render.json"))
    parser.add_argument("--keep-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    result: dict[str, Any] = {
        "command": "python -m bench.gpu_render "
        + shlex.join(argv if argv is not None else sys.argv[1:]),
        "workflow": args.workflow,
        "variant": args.variant,
        "attention": args.attention,
        "weights": "synthetic (random values, real shapes)" if args.synthetic else "as found",
    }
    result.update(versions(args.python))
    env = dict(os.environ)
    if args.synthetic:
        from bench import synthetic_weights

        try:
            written = list(
                synthetic_weights.write_variant(
                    args.comfyui / "models", args.variant, "cuda", synthetic_weights.load_spec()
                )
            )
        except ValueError as exc:
            print(exc, file=sys.stderr)
            return 2
        tokenizer = (
            args.comfyui / "custom_nodes" / "ComfyUI-WanVideoWrapper" / "configs" / "T5_tokenizer"
        )
        if synthetic_weights.write_tokenizer(tokenizer):
            written.append(f"{tokenizer}/tokenizer.json: synthetic (the tree lacked the real one)")
        result["synthetic_files"] = written
        for line in written:
            print(line, flush=True)
    # The image's checks, told the CUDA this torch was built for (the image's own is set there).
    env.setdefault("CUDA_VERSION", str(result.get("cuda") or ""))
    result["gpu_check"] = probe(args.python, "gpu_check", env)
    result["attention_probe"] = {
        branch: probe(args.python, "attention_probe", env, branch)
        for branch in ("flash_attn_2", "xformers", "sdpa")
    }

    work = args.out.with_suffix("")
    work.mkdir(parents=True, exist_ok=True)
    log_path = work.with_name(work.name + ".comfyui.log")
    port = free_port()
    vram = VramSampler().start()
    started = time.monotonic()
    server = start_comfyui(args.comfyui, args.python, port, log_path, args.comfy_args)
    try:
        report = smoke.run(
            f"http://127.0.0.1:{port}",
            args.workflow,
            "generate",
            args.variant,
            args.attention,
            args.sets,
            work,
            ready_timeout=600,
            run_timeout=3600,
        )
        result["status"] = report.status
    except smoke.SmokeError as exc:
        result["status"] = "failed"
        result["error"] = str(exc)
        report = None
    finally:
        result["server_start_to_video_s"] = round(time.monotonic() - started, 1)
        if not args.keep_server:
            server.terminate()
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
        result["vram_peak_nvidia_smi_mib"] = vram.stop()
    log = log_path.read_text(errors="replace")
    if report is not None:
        result["timings_s"] = report.timings_s
        result["outputs"] = report.outputs
        result["device"] = report.device
        result["block_swap_chosen"] = report.block_swap
    workflow = workflows.load(args.workflow)
    values = smoke.parse_sets(args.sets, workflow)
    steps = int(values.get("steps", workflow.parameters["steps"].default))
    result["parameters"] = values
    result.update(log_figures(log, steps))
    result["log_tail"] = log.strip().splitlines()[-25:]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print(
        json.dumps(
            {k: v for k, v in result.items() if k != "log_tail"}, indent=1, ensure_ascii=False
        )
    )
    return 0 if result.get("status") == "passed" else 1


if __name__ == "__main__":
    sys.exit(main())
