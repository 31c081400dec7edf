"""Smoke-test a ComfyUI server: ready, the workflow accepted, a real video out and verified.

Usage:
  python -m steadydancer.smoke --url URL [--workflow steadydancer-pose] [--tier generate]
      [--variant fp8] [--attention flash_attn_2] [--set NAME=VALUE]... [--out DIR]

Works against the Dagger service of the smoke test, a local container or a RunPod
proxy URL. Image and video parameters left unset are generated (a reference image
and a drawn pose video); set one to a local file path to upload that file instead.
Writes DIR/report.json (timings per stage, GPU, attention branch, outputs) and
the videos, also when the run fails.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import json
import os
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from steadydancer import catalog, speed, synthetic, vram, workflows
from steadydancer.ready import NODES as STEADYDANCER_NODES

VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv")
MODEL_SUFFIXES = (".safetensors", ".gguf", ".onnx", ".pth", ".pt", ".ckpt", ".bin", ".sft")
OOM_MARKERS = ("OutOfMemoryError", "out of memory", "CUDA error: out of memory")
SIDES = (64, 8192)
"""Pixels an input image or video may have on each side."""
MAX_VIDEO_S = 300.0
"""A driving video longer than this is refused: only its first frames are used anyway."""
MAX_VIDEO_FRAMES = 9000
"""300 s at 30 frames a second: counted, so a container that states no duration is held too."""


class SmokeError(Exception):
    """A failed stage, with what the person running it should know."""

    def __init__(self, stage: str, message: str, log_tail: str | None = None) -> None:
        super().__init__(message)
        self.stage = stage
        self.message = message
        self.log_tail = log_tail

    def __str__(self) -> str:
        text = f"{self.stage}: {self.message}"
        if self.log_tail:
            text += f"\n--- last lines of the ComfyUI log ---\n{self.log_tail}"
        return text


class Stopped(SmokeError):
    """SIGTERM or SIGINT: the run ends, its report still written."""

    def __init__(self, signum: int) -> None:
        super().__init__("stopped", f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


def stop_run(signum: int, frame: object) -> None:
    raise Stopped(signum)


@dataclass
class VideoStats:
    path: str
    frames: int
    fps: float
    width: int
    height: int
    duration_s: float
    distinct_frames: int


@dataclass
class Report:
    url: str
    workflow: str
    tier: str
    variant: str
    attention: str | None
    status: str = "running"
    error: str | None = None
    comfyui_version: str | None = None
    device: dict[str, Any] | None = None
    prompt_id: str | None = None
    block_swap: int | None = None
    """DiT blocks swapped to CPU memory, when chosen from the GPU's memory (vram.py)."""
    speed: dict[str, str] = field(default_factory=dict)
    """The speed settings left at auto, as chosen for the served GPU (speed.py)."""
    timings_s: dict[str, float] = field(default_factory=dict)
    outputs: list[dict[str, Any]] = field(default_factory=list)


class Comfy:
    """The parts of ComfyUI's HTTP API the smoke test speaks."""

    silent_after_s = 60.0
    """A run whose server gives no answer for this long has lost its server, not a packet."""
    log_every_s = 15.0

    def __init__(self, url: str, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, timeout=timeout, follow_redirects=True)
        self.silent_since: float | None = None
        self.last_log: str | None = None

    def close(self) -> None:
        self.http.close()

    def log_tail(self, lines: int = 30) -> str | None:
        try:
            response = self.http.get("/internal/logs", timeout=10)
            text = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None
        if not isinstance(text, str):
            return None
        return "\n".join(text.rstrip().splitlines()[-lines:])

    def wait_ready(
        self, deadline_s: float, nodes: set[str], sleep: Callable[[float], None] = time.sleep
    ) -> tuple[dict[str, Any], set[str]]:
        """Poll /system_stats, then check /object_info lists every node the test needs."""
        started = time.monotonic()
        last = "no answer yet"
        while True:
            try:
                response = self.http.get("/system_stats", timeout=10)
                if response.status_code == 200:
                    stats = response.json()
                    info = self.http.get("/object_info", timeout=120).json()
                    break
                last = f"HTTP {response.status_code}"
            except (httpx.HTTPError, ValueError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            if time.monotonic() - started > deadline_s:
                raise SmokeError(
                    "ready",
                    f"{self.url} was not ready within {deadline_s:.0f} s (last: {last})",
                    self.log_tail(),
                )
            sleep(2.0)
        missing = sorted(nodes - set(info))
        if missing:
            raise SmokeError(
                "ready",
                f"node(s) {', '.join(missing)} missing from /object_info: their node pack failed "
                "to import (look for IMPORT FAILED in the log)",
                self.log_tail(),
            )
        return stats, set(info)

    def upload(
        self, name: str, data: bytes | BinaryIO, content_type: str, subfolder: str = ""
    ) -> str:
        """Upload to ComfyUI's input folder (a file object streams); returns the name to use."""
        form = {"overwrite": "true", **({"subfolder": subfolder} if subfolder else {})}
        response = self.http.post(
            "/upload/image", files={"image": (name, data, content_type)}, data=form
        )
        if response.status_code != 200:
            raise SmokeError(
                "upload", f"uploading {name} failed: HTTP {response.status_code} {response.text}"
            )
        body = response.json()
        return f"{body['subfolder']}/{body['name']}" if body.get("subfolder") else str(body["name"])

    def queue(self, prompt: dict[str, Any]) -> str:
        response = self.http.post("/prompt", json={"prompt": prompt, "client_id": uuid.uuid4().hex})
        body = response.json()
        errors = readable_node_errors(body.get("node_errors") or {}, prompt)
        if response.status_code != 200 or errors:
            error = body.get("error") or {}
            headline = error.get("message") or f"HTTP {response.status_code}"
            raise SmokeError(
                "queue", "\n  ".join([f"ComfyUI rejected the workflow: {headline}", *errors])
            )
        return str(body["prompt_id"])

    def cancel(self, prompt_id: str) -> None:
        """Take a prompt out of the queue and stop it if it runs (ComfyUI interrupts only that
        prompt when given its id, and whatever runs on versions that ignore the id)."""
        for path, body in (
            ("/queue", {"delete": [prompt_id]}),
            ("/interrupt", {"prompt_id": prompt_id}),
        ):
            with contextlib.suppress(httpx.HTTPError):
                self.http.post(path, json=body, timeout=10)

    def forget(self, prompt_id: str) -> None:
        """Drop the prompt from ComfyUI's history (which names its files and parameters)."""
        with contextlib.suppress(httpx.HTTPError):
            self.http.post("/history", json={"delete": [prompt_id]}, timeout=10)

    def history(self, prompt_id: str) -> dict[str, Any] | None:
        """The prompt's history entry; None while it runs, or while the server cannot be read
        (a proxy hiccup during a long generation is not a failure; a silence past
        silent_after_s is: see follow)."""
        try:
            response = self.http.get(f"/history/{prompt_id}")
            body = response.json() if response.status_code == 200 else {}
        except (httpx.HTTPError, ValueError):
            body, response = {}, None
        if response is None or response.status_code >= 500:
            # RunPod's proxy answers 502 for a pod whose server is gone: no answer either.
            self.silent_since = self.silent_since or time.monotonic()
        else:
            self.silent_since = None
        entry = body.get(prompt_id) if isinstance(body, dict) else None
        return entry if isinstance(entry, dict) else None

    def stopped_answering(self) -> SmokeError | None:
        if self.silent_since is None:
            return None
        silent = time.monotonic() - self.silent_since
        if silent < self.silent_after_s:
            return None
        return SmokeError(
            "generate",
            f"the ComfyUI server at {self.url} stopped answering ({silent:.0f} s without an "
            "answer during the run); the log below is the last it gave",
            self.last_log,
        )

    def follow(
        self,
        prompt_id: str,
        deadline_s: float,
        sleep: Callable[[float], None] = time.sleep,
        say: Callable[[str], None] = print,
    ) -> dict[str, Any]:
        """Wait for the prompt to finish; an execution error is raised with its node."""
        started = time.monotonic()
        reported = 0.0
        logged: float | None = None
        while True:
            entry = self.history(prompt_id)
            if (dead := self.stopped_answering()) is not None:
                raise dead
            if self.silent_since is None and (
                logged is None or time.monotonic() - logged >= self.log_every_s
            ):
                logged = time.monotonic()
                self.last_log = self.log_tail() or self.last_log
            status = (entry or {}).get("status") or {}
            if entry is not None and status.get("completed") is not None:
                if status.get("status_str") == "success":
                    return entry
                raise SmokeError("generate", execution_failure(status), self.log_tail())
            elapsed = time.monotonic() - started
            if elapsed > deadline_s:
                raise SmokeError(
                    "generate",
                    f"prompt {prompt_id} did not finish within {deadline_s:.0f} s",
                    self.log_tail(),
                )
            if elapsed - reported >= 15:
                reported = elapsed
                say(f"smoke: generating, {elapsed:.0f} s")
            sleep(1.0)

    def download(self, item: dict[str, Any], out: Path) -> Path:
        params = {
            "filename": item["filename"],
            "subfolder": item.get("subfolder", ""),
            "type": item.get("type", "output"),
        }
        response = self.http.get("/view", params=params, timeout=600)
        if response.status_code != 200:
            raise SmokeError(
                "collect", f"/view of {item['filename']} answered HTTP {response.status_code}"
            )
        path = out / Path(item["filename"]).name
        path.write_bytes(response.content)
        return path


def served_attention(stats: dict[str, Any]) -> str:
    """The attention backend the server runs with, read from the flags it was started with.

    The entrypoint passes --use-flash-attention only when flash-attn ran on this GPU; without
    it WanVideoWrapper's mode is SDPA, whatever the image was built with.
    """
    argv = stats.get("system", {}).get("argv") or []
    return "flash_attn_2" if "--use-flash-attention" in argv else "sdpa"


def readable_node_errors(node_errors: dict[str, Any], prompt: dict[str, Any]) -> list[str]:
    lines = []
    for node_id, failure in sorted(node_errors.items()):
        class_type = failure.get("class_type") or prompt.get(node_id, {}).get("class_type", "?")
        for error in failure.get("errors", []):
            text = f"node {node_id} ({class_type}): {error.get('message', '')}"
            if error.get("details"):
                text += f": {error['details']}"
            if error.get("type") == "value_not_in_list" and names_a_model(error, class_type):
                text += " (the model file is not in ComfyUI's models folder: fetch the models)"
            lines.append(text)
    return lines


def names_a_model(error: dict[str, Any], class_type: str) -> bool:
    """A loader's input, or any input whose value is a model file (WanVideoTextEncodeCached)."""
    received = str((error.get("extra_info") or {}).get("received_value", ""))
    return "Loader" in class_type or received.lower().endswith(MODEL_SUFFIXES)


def execution_failure(status: dict[str, Any]) -> str:
    for event, data in status.get("messages", []):
        if event == "execution_error":
            message = (
                f"{data.get('exception_type')}: {str(data.get('exception_message', '')).strip()}"
            )
            where = f"node {data.get('node_id')} ({data.get('node_type')})"
            if any(marker in message for marker in OOM_MARKERS):
                return (
                    f"out of memory in {where}: {message}; try fewer frames, a smaller size, "
                    "or the fp8 or GGUF variant"
                )
            return f"{where} failed: {message}"
        if event == "execution_interrupted":
            node = f"{data.get('node_id')} ({data.get('node_type')})"
            return f"the prompt was interrupted at node {node}"
    return f"the prompt ended with status {status.get('status_str')!r}"


def output_files(entry: dict[str, Any], nodes: tuple[str, ...]) -> list[dict[str, Any]]:
    """Every file the output nodes reported, whatever key holds it (images, gifs, videos).

    Files of type temp (a VideoCombine with save_output off) count too: /view serves them.
    """
    files = []
    for node in nodes or tuple(entry.get("outputs", {})):
        produced = entry.get("outputs", {}).get(node, {})
        for key in ("images", "gifs", "videos"):
            files += list(produced.get(key, []))
    return files


def verify_video(path: Path) -> VideoStats:
    """Decode the whole video: frames, rate, size, duration, and that it is not one still frame."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            digests = set()
            frames = 0
            for frame in container.decode(stream):
                frames += 1
                digests.add(hashlib.sha256(bytes(frame.planes[0])).hexdigest())
            fps = float(stream.average_rate or stream.guessed_rate or 0)
            width, height = stream.codec_context.width, stream.codec_context.height
    except (av.FFmpegError, IndexError) as exc:
        raise SmokeError("verify", f"{path.name} is not a readable video: {exc}") from None
    stats = VideoStats(
        str(path), frames, fps, width, height, frames / fps if fps else 0.0, len(digests)
    )
    if frames < 2:
        raise SmokeError("verify", f"{path.name} has {frames} frame(s)")
    if len(digests) < 2:
        raise SmokeError("verify", f"all {frames} frames of {path.name} are identical")
    return stats


def check_media(name: str, path: Path, kind: str, label: str | None = None) -> None:
    """A file given for an image or video parameter exists, is not empty and decodes as one.

    Refusals start with `label`, by default as the command line gave it (--set NAME=PATH).
    """
    label = label or f"--set {name}={path}"
    if not path.is_file():
        raise SmokeError("inputs", f"{label}: no such file")
    if path.stat().st_size == 0:
        raise SmokeError("inputs", f"{label}: the file is empty")
    try:
        if kind == "image":
            from PIL import Image, UnidentifiedImageError

            try:
                with Image.open(path) as image:
                    size = image.size
                    image.verify()
            except Image.DecompressionBombError:
                raise ValueError(
                    f"its header declares more pixels than accepted; each side must be "
                    f"{SIDES[0]} to {SIDES[1]}"
                ) from None
            except (UnidentifiedImageError, OSError, SyntaxError) as exc:
                raise ValueError(f"not an image ({exc})") from None
        else:
            import av

            try:
                with av.open(str(path)) as container:
                    if not container.streams.video:
                        raise ValueError("no video stream in it")
                    stream = container.streams.video[0]
                    size = (stream.codec_context.width, stream.codec_context.height)
                    # The stated size, refused before a frame is decoded at that size.
                    if all(size) and not all(SIDES[0] <= side <= SIDES[1] for side in size):
                        raise ValueError(
                            f"{size[0]}x{size[1]} pixels; each side must be {SIDES[0]} to "
                            f"{SIDES[1]}"
                        )
                    frame = next(container.decode(video=0))
                    size = (frame.width, frame.height)
                    seconds = (container.duration or 0) / 1_000_000
                with av.open(str(path)) as container:
                    # Packets, not decoded frames: a stated duration may be absent or false.
                    packets = (p for p in container.demux(video=0) if p.size)
                    frames = sum(1 for _ in itertools.islice(packets, MAX_VIDEO_FRAMES + 1))
            except (av.FFmpegError, StopIteration) as exc:
                reason = getattr(exc, "strerror", None) or "no frame"
                raise ValueError(f"not a video ({reason})") from None
            if frames > MAX_VIDEO_FRAMES:
                raise ValueError(
                    f"the video has over {MAX_VIDEO_FRAMES} frames (only its first frames are "
                    "used): trim it"
                )
            if seconds > MAX_VIDEO_S:
                raise ValueError(
                    f"the video lasts {seconds:.0f} s, over the {MAX_VIDEO_S:.0f} s accepted "
                    "(only its first frames are used): trim it"
                )
        if not all(SIDES[0] <= side <= SIDES[1] for side in size):
            raise ValueError(
                f"{size[0]}x{size[1]} pixels; each side must be {SIDES[0]} to {SIDES[1]}"
            )
    except ValueError as exc:
        raise SmokeError("inputs", f"{label}: {exc}") from None


def media_inputs(
    workflow: workflows.Workflow, values: dict[str, Any]
) -> dict[str, tuple[str, bytes, str]]:
    """The files to upload for image and video parameters: given paths, else generated ones."""

    def setting(name: str, fallback: int) -> int:
        parameter = workflow.parameters.get(name)
        return int(values.get(name, parameter.default if parameter else fallback))

    width, height = setting("width", 480), setting("height", 832)
    frames, fps = setting("frames", 33), setting("fps", 16)
    uploads = {}
    for name, parameter in workflow.parameters.items():
        if parameter.type not in ("image", "video"):
            continue
        given = values.get(name)
        if given is not None:
            path = Path(str(given))
            check_media(name, path, parameter.type)
            kind = "image/png" if parameter.type == "image" else "video/mp4"
            uploads[name] = (path.name, path.read_bytes(), kind)
        elif parameter.type == "image":
            uploads[name] = (
                "smoke-reference.png",
                synthetic.reference_image(width, height),
                "image/png",
            )
        else:
            uploads[name] = (
                "smoke-pose.mp4",
                synthetic.pose_video(width, height, frames, fps),
                "video/mp4",
            )
    return uploads


def parse_sets(pairs: list[str], workflow: workflows.Workflow) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep:
            raise SmokeError("inputs", f"--set {pair!r}: expected NAME=VALUE")
        parameter = workflow.parameters.get(name)
        if parameter is None:
            raise SmokeError(
                "inputs",
                f"unknown parameter {name!r} for {workflow.name}; accepted: "
                + ", ".join(sorted(workflow.parameters)),
            )
        try:
            values[name] = (
                int(raw)
                if parameter.type == "int"
                else float(raw)
                if parameter.type == "float"
                else raw
            )
        except ValueError:
            raise SmokeError(
                "inputs", f"--set {name}={raw}: {name} must be {parameter.type}"
            ) from None
    return values


def run(
    url: str,
    workflow_name: str,
    tier: str,
    variant: str,
    attention: str | None,
    sets: list[str],
    out: Path | None,
    ready_timeout: float,
    run_timeout: float,
    check_only: bool = False,
    prompt_hook: Callable[[dict[str, Any]], None] | None = None,
) -> Report:
    """The smoke test against `url`; with check_only, the checks made before the first request
    alone (parameters, variant, inputs), and nothing sent. The report goes to `out` (None:
    only a check, which writes nothing). prompt_hook may add nodes to the rendered prompt (the
    bench saves the sampler's latents so)."""
    report = Report(url, workflow_name, tier, variant, attention)
    comfy = Comfy(url)
    clock = time.monotonic()

    def lap(stage: str) -> None:
        nonlocal clock
        report.timings_s[stage] = round(time.monotonic() - clock, 2)
        clock = time.monotonic()

    try:
        try:
            workflow = workflows.load(workflow_name)
        except workflows.WorkflowError as exc:
            raise SmokeError("inputs", str(exc)) from None
        values = parse_sets(sets, workflow)
        # Everything the user gave is checked before the first request.
        try:
            workflows.check_values(workflow, values)
            if workflow.models:
                catalog.files_for(variant)
        except (workflows.WorkflowError, ValueError) as exc:
            raise SmokeError("inputs", str(exc)) from None
        if attention is not None and attention not in workflows.ATTENTION_MODE:
            raise SmokeError(
                "inputs",
                f"unknown attention backend {attention!r}; accepted: "
                + ", ".join(workflows.ATTENTION_MODE),
            )
        uploads = media_inputs(workflow, values) if tier == "generate" else {}
        if check_only:
            report.status = "checked"
            return report
        if out is None:
            raise SmokeError("inputs", "a run needs --out, the folder for its videos")
        out.mkdir(parents=True, exist_ok=True)
        needed = set(STEADYDANCER_NODES) if tier == "boot" else workflow.class_types
        stats, _ = comfy.wait_ready(ready_timeout, needed)
        lap("ready")
        report.comfyui_version = stats.get("system", {}).get("comfyui_version")
        report.attention = attention or served_attention(stats)
        devices = stats.get("devices") or [{}]
        report.device = devices[0]
        if tier == "boot":
            if devices[0].get("type") != "cuda":
                raise SmokeError(
                    "ready", f"ComfyUI runs on {devices[0].get('type')!r}, not a CUDA device"
                )
            report.status = "passed"
            return report
        report.block_swap = vram.choose_block_swap(workflow.parameters, values, variant, devices[0])
        if report.block_swap is not None:
            values["block_swap"] = report.block_swap
        report.speed = speed.choose(workflow.parameters, values, variant, devices[0])
        values.update(report.speed)
        for name, (filename, data, kind) in uploads.items():
            values[name] = comfy.upload(filename, data, kind)
        lap("upload")
        try:
            prompt = workflows.render(workflow, values, variant, report.attention)
        except workflows.WorkflowError as exc:
            raise SmokeError("inputs", str(exc)) from None
        if prompt_hook is not None:
            prompt_hook(prompt)
        report.prompt_id = comfy.queue(prompt)
        lap("queue")
        entry = comfy.follow(report.prompt_id, run_timeout)
        lap("generate")
        files = output_files(entry, workflow.outputs)
        if not files:
            raise SmokeError(
                "collect",
                "the prompt succeeded but no output node reported a file",
                comfy.log_tail(),
            )
        for item in files:
            path = comfy.download(item, out)
            record: dict[str, Any] = {"path": str(path), "bytes": path.stat().st_size}
            if path.suffix.lower() in VIDEO_SUFFIXES:
                record.update(asdict(verify_video(path)))
            report.outputs.append(record)
        if not any("frames" in record for record in report.outputs):
            raise SmokeError(
                "collect", f"no video among the outputs: {[r['path'] for r in report.outputs]}"
            )
        lap("collect")
        report.status = "passed"
        return report
    except SmokeError as exc:
        report.status = "failed"
        report.error = str(exc)
        raise
    finally:
        comfy.close()
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            (out / "report.json").write_text(json.dumps(asdict(report), indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("COMFYUI_URL", "http://127.0.0.1:8188"),
        help="ComfyUI's address, a RunPod proxy URL too (env COMFYUI_URL)",
    )
    parser.add_argument(
        "--workflow",
        default="steadydancer-pose",
        help=f"shipped workflow, one of {', '.join(workflows.names())}",
    )
    parser.add_argument(
        "--tier",
        choices=("boot", "generate"),
        default="generate",
        help="boot: server, device and nodes only; generate: also render and verify a clip",
    )
    parser.add_argument(
        "--variant",
        default=os.environ.get("STEADYDANCER_VARIANT", catalog.DEFAULT_VARIANT),
        help=f"model variant whose files the workflow names, one of "
        f"{', '.join(sorted(catalog.VARIANTS))} (env STEADYDANCER_VARIANT)",
    )
    parser.add_argument(
        "--attention",
        help="attention backend to render for (flash_attn_2, xformers or sdpa); default: what "
        "the server was started with, read from its flags",
    )
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a workflow parameter (repeatable), e.g. frames=49 or reference_image=me.png; "
        "the workflow's .params.json lists them with their bounds",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="folder for videos and report.json (default: a new folder under the system's "
        "temporary directory, named at the end; with --check-only, none: nothing is written)",
    )
    parser.add_argument(
        "--ready-timeout",
        type=float,
        default=900.0,
        help="seconds to wait for the server and its nodes",
    )
    parser.add_argument(
        "--run-timeout", type=float, default=3600.0, help="seconds to wait for the run to finish"
    )
    parser.add_argument(
        "--check-only",
        action="store_true",
        help="check the parameters and the given inputs, then stop: no request is sent",
    )
    args = parser.parse_args(argv)
    if args.out is None and not args.check_only:
        # Not the working directory: run from a checkout, it would land in the repository.
        args.out = Path(tempfile.mkdtemp(prefix="steadydancer-smoke-"))
    signal.signal(signal.SIGTERM, stop_run)
    signal.signal(signal.SIGINT, stop_run)
    try:
        report = run(
            args.url,
            args.workflow,
            args.tier,
            args.variant,
            args.attention,
            args.sets,
            args.out,
            args.ready_timeout,
            args.run_timeout,
            args.check_only,
        )
    except Stopped as exc:
        print(f"smoke test {exc.message}; {args.out / 'report.json'} written", file=sys.stderr)
        return 128 + exc.signum
    except SmokeError as exc:
        written = f"; {args.out / 'report.json'} written" if args.out else ""
        print(f"smoke test failed at {exc}{written}", file=sys.stderr)
        return 1
    print(json.dumps(asdict(report), indent=1))
    if args.check_only:
        print("inputs and parameters checked; nothing sent")
        return 0
    print(f"smoke test passed: {len(report.outputs)} output(s) in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
