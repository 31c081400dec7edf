"""RunPod serverless worker: a job in, the clip out.

Input (the job's `input`):
  {"workflow": "steadydancer-dance",            optional, the default
   "reference": URL | data URL | base64,        the workflow's image parameter
   "driving": URL | data URL | base64,          its video parameter
   "parameters": {"frames": 49, "seed": 7, ...}} checked against the workflow's manifest

The runpod SDK runs the worker loop and carries progress; the smoke client's code
speaks to ComfyUI (readiness, upload, queue, follow, collect, video checks). Every
video the graph produced is returned: as a presigned S3 URL when BUCKET_ENDPOINT_URL,
BUCKET_ACCESS_KEY_ID, BUCKET_SECRET_ACCESS_KEY and BUCKET_NAME are set (through
boto3: the SDK's upload helper takes the bucket from the endpoint's host name, which
path-style stores such as MinIO or R2 do not have); else on the network volume,
with its path; else as base64 when it fits a job's answer, and an error naming the
way out when it does not. Local test: python -m steadydancer.serve.handler
--test_input '{"input": {...}}'.
"""

from __future__ import annotations

import base64
import binascii
import os
import shutil
import tempfile
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from steadydancer import catalog, smoke, speed, storage, vram, workflows

DEFAULT_WORKFLOW = "steadydancer-dance"
INLINE_LIMIT = 10_000_000
"""Bytes of base64 a job's answer may carry (RunPod's /run payload limit; /runsync's is 20 MB)."""
MAX_INPUT_BYTES = 2_000_000_000
INPUT_KEYS = {"workflow", "reference", "driving", "parameters"}
SUFFIXES = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "video/mp4": ".mp4",
    "video/webm": ".webm",
    "video/quicktime": ".mov",
}
BUCKET_VARIABLES = (
    "BUCKET_ENDPOINT_URL",
    "BUCKET_ACCESS_KEY_ID",
    "BUCKET_SECRET_ACCESS_KEY",
    "BUCKET_NAME",
)


class JobError(ValueError):
    """A job that cannot be done, worded for the caller."""


def sniffed_suffix(data: bytes) -> str:
    """A file's kind from its first bytes, for base64 inputs that carry no name."""
    if data.startswith(b"\x89PNG"):
        return ".png"
    if data.startswith(b"\xff\xd8"):
        return ".jpg"
    if data[4:8] == b"ftyp":
        return ".mp4"
    if data.startswith(b"\x1a\x45\xdf\xa3"):
        return ".webm"
    return ""


def materialize(name: str, value: object, folder: Path) -> Path:
    """An input given as a URL, a data URL or bare base64, written to `folder`."""
    if not isinstance(value, str) or not value:
        raise JobError(f"input {name} must be a URL, a data URL or base64 text")
    if value.startswith(("http://", "https://")):
        return download(name, value, folder)
    media = ""
    if value.startswith("data:"):
        header, _, value = value.partition(",")
        media = header.removeprefix("data:").split(";")[0]
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise JobError(f"input {name} is neither a URL nor valid base64") from None
    path = folder / f"{name}{SUFFIXES.get(media) or sniffed_suffix(data)}"
    path.write_bytes(data)
    return path


def download(name: str, url: str, folder: Path) -> Path:
    import httpx

    suffix = Path(urllib.parse.urlsplit(url).path).suffix.lower()
    path = folder / f"{name}{suffix}"
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=60) as response:
            if response.status_code != 200:
                raise JobError(f"input {name}: {url} answered HTTP {response.status_code}")
            if not suffix:
                kind = response.headers.get("content-type", "").split(";")[0]
                path = path.with_suffix(SUFFIXES.get(kind, ""))
            size = 0
            with path.open("wb") as out:
                for chunk in response.iter_bytes(1 << 20):
                    size += len(chunk)
                    if size > MAX_INPUT_BYTES:
                        raise JobError(f"input {name}: over {MAX_INPUT_BYTES / 1e9:.0f} GB")
                    out.write(chunk)
    except httpx.HTTPError as exc:
        raise JobError(f"input {name}: cannot download {url}: {exc}") from None
    return path


def parameter_of_type(workflow: workflows.Workflow, kind: str) -> str | None:
    return next((p.name for p in workflow.parameters.values() if p.type == kind), None)


def deliver(videos: list[Path], job_id: str) -> list[dict[str, Any]]:
    """Each video as an S3 URL, a path on the volume, or base64; JobError when none fits."""
    if all(os.environ.get(name) for name in BUCKET_VARIABLES):
        return [to_bucket(video, job_id) for video in videos]
    volume = storage.find_volume(storage.volume_candidates(os.environ, "/runpod-volume"))
    if volume is not None:
        folder = volume / "steadydancer" / "output" / job_id
        folder.mkdir(parents=True, exist_ok=True)
        return [
            {"name": video.name, "path": str(shutil.copy2(video, folder / video.name))}
            for video in videos
        ]
    encoded = [base64.b64encode(video.read_bytes()).decode() for video in videos]
    limit = int(os.environ.get("STEADYDANCER_INLINE_LIMIT_BYTES", INLINE_LIMIT))
    total = sum(len(text) for text in encoded)
    if total > limit:
        raise JobError(
            f"the output is {total / 1e6:.1f} MB as base64, over the {limit / 1e6:.1f} MB a "
            f"job's answer can carry: set {', '.join(BUCKET_VARIABLES)}, or attach a network "
            "volume"
        )
    return [
        {"name": video.name, "base64": text} for video, text in zip(videos, encoded, strict=True)
    ]


def to_bucket(video: Path, job_id: str) -> dict[str, Any]:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=os.environ["BUCKET_ENDPOINT_URL"],
        aws_access_key_id=os.environ["BUCKET_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["BUCKET_SECRET_ACCESS_KEY"],
        region_name=os.environ.get("BUCKET_REGION", "us-east-1"),
    )
    bucket, key = os.environ["BUCKET_NAME"], f"steadydancer/{job_id}/{video.name}"
    client.upload_file(str(video), bucket, key, ExtraArgs={"ContentType": "video/mp4"})
    url = client.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=7 * 24 * 3600
    )
    return {"name": video.name, "url": url, "bucket": bucket, "key": key}


def handle(
    job: dict[str, Any],
    url: str,
    progress: Callable[[str], None] = print,
    ready_timeout: float = 1800.0,
    run_timeout: float = 3600.0,
) -> dict[str, Any]:
    """One job against the ComfyUI at `url`; {"videos": [...]} or {"error": "..."}."""
    job_id = str(job.get("id") or "local")
    request = job.get("input")
    comfy = smoke.Comfy(url)
    try:
        if not isinstance(request, dict):
            raise JobError("the job has no input object")
        unknown = sorted(set(request) - INPUT_KEYS)
        if unknown:
            raise JobError(
                f"unknown input(s) {', '.join(unknown)}; accepted: {', '.join(sorted(INPUT_KEYS))}"
            )
        workflow = workflows.load(str(request.get("workflow") or DEFAULT_WORKFLOW))
        values = dict(request.get("parameters") or {})
        workflows.check_values(workflow, values)
        variant = os.environ.get("STEADYDANCER_VARIANT", catalog.DEFAULT_VARIANT)
        with tempfile.TemporaryDirectory(prefix="steadydancer-job-") as tmp:
            folder = Path(tmp)
            for key, kind in (("reference", "image"), ("driving", "video")):
                parameter = parameter_of_type(workflow, kind)
                if key not in request:
                    if parameter and workflow.parameters[parameter].default is None:
                        raise JobError(f"input {key} is required by {workflow.name}")
                    continue
                if parameter is None:
                    raise JobError(f"{workflow.name} takes no {kind}: drop input {key}")
                path = materialize(key, request[key], folder)
                smoke.check_media(key, path, kind, f"input {key}")
                values[parameter] = path
            progress("waiting for ComfyUI")
            stats, _ = comfy.wait_ready(ready_timeout, workflow.class_types)
            device = (stats.get("devices") or [{}])[0]
            chosen = vram.choose_block_swap(workflow.parameters, values, variant, device)
            if chosen is not None:
                values["block_swap"] = chosen
                progress(f"block_swap={chosen} for {device['vram_total'] / 2**30:.0f} GiB")
            values.update(speed.choose(workflow.parameters, values, variant, device))
            for name, (filename, data, kind) in smoke.media_inputs(workflow, values).items():
                values[name] = comfy.upload(filename, data, kind)
            prompt = workflows.render(workflow, values, variant, smoke.served_attention(stats))
            prompt_id = comfy.queue(prompt)
            progress(f"queued as {prompt_id}")
            entry = comfy.follow(prompt_id, run_timeout, say=progress)
            out = folder / "out"
            out.mkdir()
            videos = []
            for item in smoke.output_files(entry, workflow.outputs):
                path = comfy.download(item, out)
                if path.suffix.lower() in smoke.VIDEO_SUFFIXES:
                    smoke.verify_video(path)
                    videos.append(path)
            if not videos:
                raise JobError("the workflow finished without a video")
            progress(f"delivering {len(videos)} video(s)")
            return {"videos": deliver(videos, job_id)}
    except (JobError, workflows.WorkflowError) as exc:
        return {"error": str(exc)}
    except smoke.SmokeError as exc:
        return {"error": str(exc)}
    finally:
        comfy.close()


def main() -> None:
    import runpod

    url = os.environ.get(
        "COMFYUI_URL", f"http://127.0.0.1:{os.environ.get('COMFYUI_PORT', '8188')}"
    )
    # Progress reaches RunPod only from a real worker; locally it is printed.
    serverless = bool(os.environ.get("RUNPOD_WEBHOOK_POST_OUTPUT"))

    def run(job: dict[str, Any]) -> dict[str, Any]:
        def progress(message: str) -> None:
            print(f"[steadydancer] job {job.get('id')}: {message}", flush=True)
            if serverless:
                runpod.serverless.progress_update(job, message)

        return handle(job, url, progress)

    runpod.serverless.start({"handler": run})


if __name__ == "__main__":
    main()
