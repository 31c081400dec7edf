"""Render a shipped workflow on this machine's GPU through the smoke client, timed.

Usage:
  python -m bench.gpu_render --comfyui DIR [--synthetic] [--variant fp8]
      [--workflow steadydancer-pose] [--set NAME=VALUE]... [--jobs 2] [--profile-step K]
      [--out FILE.json]

DIR is the pinned ComfyUI with the pinned node packs (python -m bench.trees lays it
out). The bench puts this repository's docker/ on its own path and its children's, runs
the image's GPU check and attention probes, times the bf16 forward floor of the render's
shape (bench.floor, same machine, before the server takes the GPU), then starts ComfyUI
on a free port and sends --jobs jobs through the smoke client: the first, then warm ones
with a new seed and new inputs on the same server. Each job records its stages, every
sampling step on the sampler's own tqdm clock to the millisecond (TQDM_ENV), the steady
s/step (steps after the first), the sampler's peak memory, the speed settings chosen for
the GPU and the path of its final latents (ComfyUI's SaveLatent, for bench.quality). With
--profile-step K, step K of the last job is recorded with torch's profiler and its GPU time
is split by kernel kind (bench.step_profile); with two jobs or more the first job's timings
stay unprofiled. A
watchdog ends the run as soon as the server process dies. With --synthetic, the
variant's missing files are first written with random values of the real shapes
(bench.synthetic_weights, in a process of its own); without it, the real files must be
there and the same command runs unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DOCKER = str(REPO / "docker")
"""The image's programs (the steadydancer package), on this process's path and its children's."""
for entry in (DOCKER, str(REPO)):
    if entry not in sys.path:
        sys.path.insert(0, entry)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [DOCKER, os.environ.get("PYTHONPATH")]))

from steadydancer import catalog, smoke, synthetic, workflows  # noqa: E402

from bench import step_profile  # noqa: E402

TQDM_ENV = {"TQDM_MININTERVAL": "0", "TQDM_BAR_FORMAT": "tqdm {n}/{total} {elapsed_s:.3f}s"}
"""Every tqdm bar in the server prints each update with its own clock to the millisecond
(tqdm reads TQDM_* variables as its defaults); the sampler's bar counts its steps."""
STEP_BAR = re.compile(r"tqdm (\d+)/(\d+) ([\d.]+)s")
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


def log_figures(log: str, steps: int) -> dict[str, Any]:
    """What one job's slice of the ComfyUI log says of its sampling of `steps` steps: each
    step's seconds on tqdm's clock (TQDM_ENV), their sum, the steady mean (steps after the
    first, which carries warm-up), and the sampler's peak memory."""
    figures: dict[str, Any] = {
        "step_s": None,
        "sampling_s": None,
        "seconds_per_step": None,
        "steady_s_per_step": None,
        "max_allocated_gib": None,
        "max_reserved_gib": None,
    }
    current: dict[int, float] = {}
    elapsed: dict[int, float] = {}
    for match in STEP_BAR.finditer(log):
        done, total = int(match.group(1)), int(match.group(2))
        if total != steps:
            continue
        if done == 0:
            current = {0: 0.0}
        elif current:
            current[done] = float(match.group(3))
            if done == steps and all(k in current for k in range(steps)):
                elapsed = current
    if elapsed:
        step_s = [round(elapsed[k] - elapsed[k - 1], 3) for k in range(1, steps + 1)]
        figures["step_s"] = step_s
        figures["sampling_s"] = round(elapsed[steps], 3)
        figures["seconds_per_step"] = round(elapsed[steps] / steps, 3)
        steady = step_s[1:] or step_s
        figures["steady_s_per_step"] = round(sum(steady) / len(steady), 3)
    for kind, gib in SAMPLER_MEMORY.findall(log):
        key = f"max_{kind}_gib"
        figures[key] = max(figures[key] or 0.0, float(gib))
    return figures


def probe(python: str, module: str, env: dict[str, str], *args: str) -> dict[str, Any]:
    """One of the image's own checks, run with the ComfyUI interpreter; its output kept."""
    result = subprocess.run(
        [python, "-m", f"steadydancer.{module}", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
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
    comfyui: Path,
    python: str,
    port: int,
    log_path: Path,
    extra: list[str],
    env: dict[str, str] | None = None,
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
        env={**os.environ, "PYTHONUNBUFFERED": "1", **TQDM_ENV, **(env or {})},
    )


PROFILER_NODES = REPO / "bench" / "comfyui_nodes"


def profiler_setup(work: Path, steps: int, step: int, run: int) -> tuple[list[str], dict[str, str]]:
    """ComfyUI's flags and environment that load bench/comfyui_nodes/step_profiler.py (as an
    extra custom-node folder, leaving the tree untouched) to record step `step` of the
    sampler's run `run`."""
    work = work.resolve()  # ComfyUI runs in its own folder: it needs absolute paths
    paths = work / "profiler-paths.yaml"
    paths.write_text(json.dumps({"bench_profiler": {"custom_nodes": str(PROFILER_NODES)}}) + "\n")
    env = {
        "STEADYDANCER_PROFILE_TRACE": str(work / f"step{step}-run{run}.trace.json"),
        "STEADYDANCER_PROFILE_STEPS": str(steps),
        "STEADYDANCER_PROFILE_STEP": str(step),
        "STEADYDANCER_PROFILE_RUN": str(run),
    }
    return ["--extra-model-paths-config", str(paths)], env


class Watchdog:
    """Ends the run (SIGUSR1, which the smoke client turns into a stopped run) as soon as the
    server process exits, instead of waiting out the ready or run timeout."""

    def __init__(self, server: subprocess.Popen[bytes]) -> None:
        self.server = server
        self.died_with: int | None = None
        self.done = threading.Event()
        signal.signal(signal.SIGUSR1, smoke.stop_run)
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        while not self.done.wait(0.5):
            code = self.server.poll()
            if code is not None:
                self.died_with = code
                os.kill(os.getpid(), signal.SIGUSR1)
                return


def floor(python: str, width: int, height: int, frames: int) -> dict[str, Any]:
    """bench.floor at the render's shape, on this machine, before the server takes the GPU."""
    done = subprocess.run(
        [
            python,
            "-m",
            "bench.floor",
            "--width",
            str(width),
            "--height",
            str(height),
            "--frames",
            str(frames),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    if done.returncode:
        return {"error": (done.stdout + done.stderr).strip().splitlines()[-5:]}
    figures: dict[str, Any] = json.loads(done.stdout)
    return figures


def new_inputs(work: Path, width: int, height: int, frames: int, fps: int) -> list[str]:
    """A warm job's inputs, unlike the first's: the reference mirrored, a longer pose video."""
    import io

    from PIL import Image, ImageOps

    image = ImageOps.mirror(Image.open(io.BytesIO(synthetic.reference_image(width, height))))
    reference = work / "warm-reference.png"
    image.save(reference)
    pose = work / "warm-pose.mp4"
    pose.write_bytes(synthetic.pose_video(width, height, frames + 8, fps))
    return [f"reference_image={reference}", f"pose_video={pose}"]


def latent_saver(prefix: str) -> Any:
    """A prompt hook adding ComfyUI's SaveLatent on the sampler's output."""

    def hook(prompt: dict[str, Any]) -> None:
        sampler = next(k for k, n in prompt.items() if n["class_type"] == "WanVideoSampler")
        prompt["bench-latent"] = {
            "class_type": "SaveLatent",
            "inputs": {"samples": [sampler, 0], "filename_prefix": prefix},
        }

    return hook


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
        "--jobs", type=int, default=2, help="jobs on the one server: the first, then warm ones"
    )
    parser.add_argument("--no-floor", action="store_true", help="skip the bf16 forward floor")
    parser.add_argument(
        "--comfyui-arg",
        dest="comfy_args",
        action="append",
        default=[],
        help="an extra ComfyUI flag (repeatable)",
    )
    parser.add_argument(
        "--profile-step",
        type=int,
        metavar="K",
        help="record sampling step K (2 or more) of the last job with torch's profiler",
    )
    parser.add_argument("--ready-timeout", type=float, default=600)
    parser.add_argument("--out", type=Path, default=Path("bench/results/gpu-render.json"))
    args = parser.parse_args(argv)

    result: dict[str, Any] = {
        "command": "python -m bench.gpu_render "
        + shlex.join(argv if argv is not None else sys.argv[1:]),
        "workflow": args.workflow,
        "variant": args.variant,
        "attention": args.attention,
        "weights": "synthetic (random values, real shapes)" if args.synthetic else "as found",
    }
    workflow = workflows.load(args.workflow)
    try:
        values = smoke.parse_sets(args.sets, workflow)
        workflows.check_values(workflow, values)
    except (smoke.SmokeError, workflows.WorkflowError) as exc:
        print(exc, file=sys.stderr)
        return 2

    def setting(name: str) -> int:
        return int(values.get(name, workflow.parameters[name].default))

    steps, width, height = setting("steps"), setting("width"), setting("height")
    frames, fps, seed = setting("frames"), setting("fps"), setting("seed")
    result["parameters"] = values
    if args.profile_step is not None and not 2 <= args.profile_step <= steps:
        print(
            f"--profile-step {args.profile_step}: give a step from 2 to {steps} (the first "
            "step carries warm-up)",
            file=sys.stderr,
        )
        return 2
    result.update(versions(args.python))
    env = dict(os.environ)
    if args.synthetic:
        # In a process of its own: the CUDA memory that drawing the values took is given back
        # before the server starts, so nvidia-smi's device-wide peak is the server's alone.
        writer = subprocess.run(
            [
                args.python,
                "-m",
                "bench.synthetic_weights",
                "write",
                "--models",
                str(args.comfyui.resolve() / "models"),
                "--variant",
                args.variant,
            ],
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        if writer.returncode:
            print(writer.stderr.strip() or writer.stdout.strip(), file=sys.stderr)
            return 2
        written = writer.stdout.strip().splitlines()
        from bench import synthetic_weights

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
    if not args.no_floor:
        result["floor"] = floor(args.python, width, height, frames)
        print(json.dumps({"floor": result["floor"]}), flush=True)

    work = args.out.with_suffix("")
    work.mkdir(parents=True, exist_ok=True)
    log_path = work.with_name(work.name + ".comfyui.log")
    port = free_port()
    vram = VramSampler().start()
    started = time.monotonic()
    comfy_args, comfy_env = list(args.comfy_args), dict[str, str]()
    if args.profile_step is not None:
        flags, comfy_env = profiler_setup(work, steps, args.profile_step, args.jobs)
        comfy_args += flags
    server = start_comfyui(args.comfyui, args.python, port, log_path, comfy_args, comfy_env)
    watchdog = Watchdog(server)
    jobs: list[dict[str, Any]] = []
    try:
        for index in range(args.jobs):
            sets = list(args.sets)
            if index:
                sets += [f"seed={seed + index}", *new_inputs(work, width, height, frames, fps)]
            offset = log_path.stat().st_size
            job_started = time.monotonic()
            job: dict[str, Any] = {"job": index + 1, "kind": "first" if index == 0 else "warm"}
            latent_prefix = f"bench/{work.name}-job{index + 1}"
            try:
                report = smoke.run(
                    f"http://127.0.0.1:{port}",
                    args.workflow,
                    "generate",
                    args.variant,
                    args.attention,
                    sets,
                    work / f"job{index + 1}",
                    ready_timeout=args.ready_timeout,
                    run_timeout=3600,
                    prompt_hook=latent_saver(latent_prefix),
                )
                job["status"] = report.status
            except smoke.SmokeError as exc:
                job["status"] = "failed"
                job["error"] = str(exc)
                if watchdog.died_with is not None:
                    job["error"] = f"ComfyUI exited with {watchdog.died_with}: {exc}"
                report = None
            if index == 0:
                result["server_start_to_video_s"] = round(time.monotonic() - started, 3)
            job["wall_s"] = round(time.monotonic() - job_started, 3)
            with log_path.open("rb") as log_file:
                log_file.seek(offset)
                job.update(log_figures(log_file.read().decode(errors="replace"), steps))
            if report is not None:
                job["timings_s"] = report.timings_s
                job["outputs"] = report.outputs
                job["speed_chosen"] = report.speed
                job["block_swap_chosen"] = report.block_swap
                result["device"] = report.device
                latents = sorted(
                    (args.comfyui / "output" / "bench").glob(f"{work.name}-job{index + 1}_*.latent")
                )
                job["latent"] = str(latents[-1]) if latents else None
            jobs.append(job)
            if job["status"] != "passed":
                break
    finally:
        watchdog.done.set()
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
        result["vram_peak_nvidia_smi_mib"] = vram.stop()
    result["jobs"] = jobs
    result["status"] = (
        "passed"
        if len(jobs) == args.jobs and all(j["status"] == "passed" for j in jobs)
        else "failed"
    )
    if args.profile_step is not None:
        trace = Path(comfy_env["STEADYDANCER_PROFILE_TRACE"])
        try:
            result["step_profile"] = {"job": args.jobs, **step_profile.read(trace)}
        except (OSError, ValueError, KeyError) as exc:
            result["step_profile"] = {"error": f"{trace}: {exc}"}
            result["status"] = "failed"
    first = jobs[0] if jobs else {}
    floor_s = (result.get("floor") or {}).get("bf16_forward_s")
    if first.get("steady_s_per_step") and floor_s:
        result["steady_over_bf16_floor"] = round(first["steady_s_per_step"] / floor_s, 3)
    log = log_path.read_text(errors="replace")
    result["log_tail"] = [line[-300:] for line in log.strip().splitlines()[-25:]]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print(
        json.dumps(
            {
                k: v
                for k, v in result.items()
                if k not in ("log_tail", "gpu_check", "attention_probe", "synthetic_files")
            },
            indent=1,
            ensure_ascii=False,
        )
    )
    return 0 if result["status"] == "passed" else 1


if __name__ == "__main__":
    sys.exit(main())
