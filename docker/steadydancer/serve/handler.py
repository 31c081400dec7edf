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
import math
import os
import re
import secrets
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from steadydancer import catalog, smoke, speed, storage, vram, workflows
from steadydancer.serve import inputs

DEFAULT_WORKFLOW = "steadydancer-dance"
INLINE_LIMIT = 10_000_000
"""Bytes of base64 a job's answer may carry (RunPod's /run payload limit; /runsync's is 20 MB)."""
INPUT_KEYS = {"workflow", "reference", "driving", "parameters"}
MEDIA_INPUTS = (("reference", "image"), ("driving", "video"))
BUCKET_VARIABLES = (
    "BUCKET_ENDPOINT_URL",
    "BUCKET_ACCESS_KEY_ID",
    "BUCKET_SECRET_ACCESS_KEY",
    "BUCKET_NAME",
)
COMFYUI_FOLDERS = {
    "input": "COMFYUI_INPUT_DIR",
    "output": "COMFYUI_OUTPUT_DIR",
    "temp": "COMFYUI_TEMP_DIR",
}
"""Where the ComfyUI beside the worker keeps files (set by the entrypoint): a job's are
removed from them once it is delivered."""
JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
CONTENT_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".webp": "image/webp"}


class JobError(ValueError):
    """A job that cannot be done, worded for the caller."""


def parameter_of_type(workflow: workflows.Workflow, kind: str) -> str | None:
    return next((p.name for p in workflow.parameters.values() if p.type == kind), None)


def non_finite(value: object, where: str = "") -> str | None:
    """The place of the first NaN or infinity in a JSON value (Python's json accepts them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return where or "the input"
    items: Any = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, item in items:
        found = non_finite(item, f"{where}.{key}" if where else str(key))
        if found:
            return found
    return None


# A URL's userinfo and query (a signed URL's signature) and absolute paths never reach a caller.
USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/\s@]*@")
QUERY = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^\s?#]*)[?#]\S*")
ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])/(?:[^/\s'\"]+/)+([^/\s'\"]*)")


def one_line(message: str) -> str:
    text = " ".join(message.split())
    text = USERINFO.sub(r"\1", text)
    text = QUERY.sub(r"\1", text)
    return ABSOLUTE_PATH.sub(r"\1", text)


def bucket_settings(env: Mapping[str, str]) -> dict[str, str] | None:
    """The bucket to deliver to: all four settings, none (no bucket), or a JobError."""
    given = [name for name in BUCKET_VARIABLES if env.get(name)]
    if not given:
        return None
    if len(given) < len(BUCKET_VARIABLES):
        missing = [name for name in BUCKET_VARIABLES if name not in given]
        raise JobError(
            f"the worker's bucket settings are incomplete: {', '.join(missing)} missing "
            f"({', '.join(BUCKET_VARIABLES)} are all needed for bucket delivery)"
        )
    return {name: env[name] for name in BUCKET_VARIABLES}


def deliver(
    videos: list[Path], job_id: str, env: Mapping[str, str] = os.environ
) -> list[dict[str, Any]]:
    """Each video as an S3 URL, a path on the volume, or base64; JobError when none fits."""
    bucket = bucket_settings(env)
    if bucket is not None:
        return [to_bucket(video, job_id, bucket, env.get("BUCKET_REGION")) for video in videos]
    volume = storage.find_volume(storage.volume_candidates(env, "/runpod-volume"))
    if volume is not None:
        folder = volume / "steadydancer" / "output" / job_id
        folder.mkdir(parents=True, exist_ok=True)
        return [
            {"name": video.name, "path": str(shutil.copy2(video, folder / video.name))}
            for video in videos
        ]
    encoded = [base64.b64encode(video.read_bytes()).decode() for video in videos]
    limit = int(env.get("STEADYDANCER_INLINE_LIMIT_BYTES", INLINE_LIMIT))
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


AWS_REGION_HOST = re.compile(r"(?:^|\.)s3[.-]([a-z]{2}(?:-[a-z]+)+-\d)\.amazonaws\.com$")


def bucket_region(endpoint: str, region: str | None) -> str:
    """BUCKET_REGION, else the region an AWS endpoint names, else us-east-1 (MinIO's, R2's)."""
    if region:
        return region
    import urllib.parse

    host = urllib.parse.urlsplit(endpoint).hostname or ""
    found = AWS_REGION_HOST.search(host)
    return found.group(1) if found else "us-east-1"


def to_bucket(
    video: Path, job_id: str, bucket: dict[str, str], region: str | None
) -> dict[str, Any]:
    import boto3
    from boto3.exceptions import Boto3Error
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    endpoint = bucket["BUCKET_ENDPOINT_URL"]
    name, key = bucket["BUCKET_NAME"], f"steadydancer/{job_id}/{video.name}"
    try:
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=bucket["BUCKET_ACCESS_KEY_ID"],
            aws_secret_access_key=bucket["BUCKET_SECRET_ACCESS_KEY"],
            region_name=bucket_region(endpoint, region),
            config=Config(signature_version="s3v4", retries={"max_attempts": 3}),
        )
        client.upload_file(str(video), name, key, ExtraArgs={"ContentType": "video/mp4"})
        url = client.generate_presigned_url(
            "get_object", Params={"Bucket": name, "Key": key}, ExpiresIn=7 * 24 * 3600
        )
    except (ClientError, BotoCoreError, Boto3Error, ValueError) as exc:
        print(f"[steadydancer] bucket delivery failed: {exc}", flush=True)
        # boto3's upload wraps the store's answer (a ClientError) in S3UploadFailedError.
        answer = next(
            (e for e in (exc, exc.__cause__, exc.__context__) if isinstance(e, ClientError)),
            None,
        )
        if answer is not None:
            code = answer.response.get("Error", {}).get("Code", "an error")
            raise JobError(f"delivery to the bucket failed: the store answered {code}") from None
        raise JobError(
            f"delivery to the bucket failed ({type(exc).__name__}): check BUCKET_ENDPOINT_URL "
            "and the store"
        ) from None
    return {"name": video.name, "url": url, "bucket": name, "key": key}


def private_prefixes(prompt: dict[str, Any], outputs: tuple[str, ...], folder: str) -> None:
    """Output nodes write under the job's own folder of ComfyUI's output (and temp) folder."""
    for node in outputs:
        node_inputs = prompt.get(node, {}).get("inputs", {})
        prefix = node_inputs.get("filename_prefix")
        if isinstance(prefix, str):
            node_inputs["filename_prefix"] = f"{folder}/{PurePosixPath(prefix).name or 'out'}"


def remove_from_comfyui(env: Mapping[str, str], folder: str, items: list[dict[str, Any]]) -> None:
    """Delete the job's folder and every file ComfyUI reported for it, inside ComfyUI's folders."""
    roots = {kind: Path(env[name]) for kind, name in COMFYUI_FOLDERS.items() if env.get(name)}
    for root in roots.values():
        shutil.rmtree(root / folder, ignore_errors=True)
    for item in items:
        where = roots.get(str(item.get("type", "output")))
        if where is None:
            continue
        path = (where / str(item.get("subfolder", "")) / str(item.get("filename", ""))).resolve()
        if path.is_relative_to(where.resolve()) and path.is_file():
            path.unlink(missing_ok=True)


def handle(
    job: object,
    url: str,
    progress: Callable[[str], None] = print,
    ready_timeout: float = 1800.0,
    run_timeout: float = 3600.0,
    budgets: inputs.Budgets = inputs.Budgets(),  # noqa: B008 (frozen)
    env: Mapping[str, str] = os.environ,
) -> dict[str, Any]:
    """One job against the ComfyUI at `url`: {"videos": [...]}, or {"error": "<one line>"}.

    Whatever fails, the caller gets one line naming the input and the rule; the worker's
    own log keeps what only the operator should see (ComfyUI's log, a traceback).
    """
    folder_name = f"job-{secrets.token_hex(16)}"
    try:
        return run_job(job, url, progress, ready_timeout, run_timeout, budgets, env, folder_name)
    except (JobError, inputs.InputError, workflows.WorkflowError) as exc:
        return {"error": one_line(str(exc))}
    except smoke.SmokeError as exc:
        if exc.log_tail:
            print(f"[steadydancer] {folder_name}: {exc}", flush=True)
        return {"error": one_line(f"{exc.stage}: {exc.message}")}
    except Exception:
        print(f"[steadydancer] {folder_name}: unexpected failure", flush=True)
        traceback.print_exc()
        return {"error": f"the worker failed unexpectedly (reference {folder_name} in its log)"}


def run_job(
    job: object,
    url: str,
    progress: Callable[[str], None],
    ready_timeout: float,
    run_timeout: float,
    budgets: inputs.Budgets,
    env: Mapping[str, str],
    folder_name: str,
) -> dict[str, Any]:
    deadline = time.monotonic() + budgets.job_s
    if not isinstance(job, dict):
        raise JobError("the job must be an object with an input object")
    job_id = str(job.get("id") or "local")
    if not JOB_ID.fullmatch(job_id):
        raise JobError("the job id must be letters, digits, '.', '_' or '-' (128 at most)")
    request = job.get("input")
    if not isinstance(request, dict):
        raise JobError("the job has no input object")
    unknown = sorted(str(key) for key in set(request) - INPUT_KEYS)
    if unknown:
        raise JobError(
            f"unknown input(s) {', '.join(unknown)[:200]}; accepted: "
            f"{', '.join(sorted(INPUT_KEYS))}"
        )
    if (where := non_finite(request)) is not None:
        raise JobError(f"input {where} is NaN or infinite: only finite numbers are accepted")
    workflow_name = request.get("workflow") or DEFAULT_WORKFLOW
    if not isinstance(workflow_name, str):
        raise JobError(f"input workflow must be a name, one of {', '.join(workflows.names())}")
    workflow = workflows.load(workflow_name)
    raw_values = request.get("parameters") or {}
    if not isinstance(raw_values, dict):
        raise JobError("input parameters must be an object of NAME: value")
    values = dict(raw_values)
    workflows.check_values(workflow, values)
    bucket_settings(env)
    variant = env.get("STEADYDANCER_VARIANT", catalog.DEFAULT_VARIANT)
    comfy = smoke.Comfy(url)
    items: list[dict[str, Any]] = []
    prompt_id: str | None = None
    finished = False
    try:
        with tempfile.TemporaryDirectory(prefix="steadydancer-job-") as tmp:
            folder = Path(tmp)
            media: dict[str, Path] = {}
            for key, kind in MEDIA_INPUTS:
                parameter = parameter_of_type(workflow, kind)
                if key not in request:
                    if parameter and workflow.parameters[parameter].default is None:
                        raise JobError(f"input {key} is required by {workflow.name}")
                    continue
                if parameter is None:
                    raise JobError(f"{workflow.name} takes no {kind}: drop input {key}")
                input_deadline = min(deadline, time.monotonic() + budgets.input_s)
                path = inputs.materialize(
                    key, kind, request[key], folder, budgets, input_deadline, env
                )
                smoke.check_media(key, path, kind, f"input {key}")
                media[parameter] = path
            progress("waiting for ComfyUI")
            stats, _ = comfy.wait_ready(left(deadline, ready_timeout), workflow.class_types)
            device = (stats.get("devices") or [{}])[0]
            chosen = vram.choose_block_swap(workflow.parameters, values, variant, device)
            if chosen is not None:
                values["block_swap"] = chosen
                progress(f"block_swap={chosen} for {device['vram_total'] / 2**30:.0f} GiB")
            values.update(speed.choose(workflow.parameters, values, variant, device))
            for parameter, path in media.items():
                content_type = CONTENT_TYPES.get(path.suffix, "video/mp4")
                with path.open("rb") as handle_:
                    values[parameter] = comfy.upload(
                        path.name, handle_, content_type, subfolder=folder_name
                    )
            prompt = workflows.render(workflow, values, variant, smoke.served_attention(stats))
            private_prefixes(prompt, workflow.outputs, folder_name)
            prompt_id = comfy.queue(prompt)
            progress(f"queued as {prompt_id}")
            entry = comfy.follow(prompt_id, left(deadline, run_timeout), say=progress)
            finished = True
            items = smoke.output_files(entry, workflow.outputs)
            out = folder / "out"
            out.mkdir()
            videos = []
            for item in items:
                path = comfy.download(item, out)
                if path.suffix.lower() in smoke.VIDEO_SUFFIXES:
                    smoke.verify_video(path)
                    videos.append(path)
            if not videos:
                raise JobError("the workflow finished without a video")
            progress(f"delivering {len(videos)} video(s)")
            return {"videos": deliver(videos, job_id, env)}
    finally:
        if prompt_id is not None:
            if not finished:
                comfy.cancel(prompt_id)
            comfy.forget(prompt_id)
        remove_from_comfyui(env, folder_name, items)
        comfy.close()


def left(deadline: float, stage_s: float) -> float:
    """A stage's wait: its own limit, or what is left of the job's, whichever is shorter."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise JobError("the job ran past its deadline")
    return min(stage_s, remaining)


def main() -> None:
    import runpod

    # The SDK reads the options it knows (--test_input, --rp_serve_api...) and ignores the rest;
    # an unknown one is a typo here, refused before the worker starts.
    _, unknown = runpod.serverless.parser.parse_known_args()
    if unknown:
        # The usage line argparse prints lists the SDK's own options.
        runpod.serverless.parser.error(f"unrecognized arguments: {' '.join(unknown)}")
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
