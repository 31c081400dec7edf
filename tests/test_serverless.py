"""The RunPod serverless worker against a real ComfyUI's recorded answers and a local S3 server.

ComfyUI's exchanges are the recordings of tests/comfy_cassette.py (cpu-smoke made a real mp4 on
a real server); S3 is moto's server mode, a local S3-protocol server started by the tests, whose
objects are read back to check the upload.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from steadydancer import synthetic
from steadydancer.serve import handler

from tests.comfy_cassette import body_of, load, replaying
from tests.dagger_offline import REPO

RECORDED_VIDEO = body_of(load("comfyui-cpu-smoke.json")["GET /view"][0])


def driving() -> str:
    return base64.b64encode(synthetic.pose_video(64, 112, 8, 8)).decode()


def job(**request: Any) -> dict[str, Any]:
    return {"id": "job-1", "input": {"workflow": "cpu-smoke", "driving": driving(), **request}}


@pytest.fixture(autouse=True)
def no_delivery_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (*handler.BUCKET_VARIABLES, "STEADYDANCER_INLINE_LIMIT_BYTES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STEADYDANCER_VOLUMES", str(tmp_path / "no-volume"))


def test_a_job_returns_the_clip_inline_when_it_fits() -> None:
    progress: list[str] = []
    with replaying(load("comfyui-cpu-smoke.json")) as (url, seen):
        result = handler.handle(job(), url, progress.append)
    assert "error" not in result, result
    (video,) = result["videos"]
    assert base64.b64decode(video["base64"]) == RECORDED_VIDEO
    assert seen[:4] == [
        "GET /system_stats",
        "GET /object_info",
        "POST /upload/image",
        "POST /prompt",
    ]
    assert progress[0] == "waiting for ComfyUI" and progress[-1] == "delivering 1 video(s)"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    settings = {
        "BUCKET_ENDPOINT_URL": endpoint,
        "BUCKET_ACCESS_KEY_ID": "test-key",
        "BUCKET_SECRET_ACCESS_KEY": "test-secret",
        "BUCKET_NAME": "clips",
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="test-key",
        aws_secret_access_key="test-secret",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket="clips")
    try:
        yield client
    finally:
        server.stop()


def test_a_clip_over_the_inline_limit_goes_through_s3(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEADYDANCER_INLINE_LIMIT_BYTES", "1000")
    assert len(base64.b64encode(RECORDED_VIDEO)) > 1000
    with replaying(load("comfyui-cpu-smoke.json")) as (url, _):
        result = handler.handle(job(), url, lambda message: None)
    assert "error" not in result, result
    (video,) = result["videos"]
    assert video["key"] == "steadydancer/job-1/cpu_00002_.mp4"
    stored = s3.get_object(Bucket="clips", Key=video["key"])["Body"].read()
    assert stored == RECORDED_VIDEO
    assert httpx.get(video["url"]).content == RECORDED_VIDEO  # the presigned URL works


def test_a_clip_over_the_limit_without_a_bucket_or_volume_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STEADYDANCER_INLINE_LIMIT_BYTES", "1000")
    with replaying(load("comfyui-cpu-smoke.json")) as (url, _):
        result = handler.handle(job(), url, lambda message: None)
    assert result["error"].startswith("the output is 0.0 MB as base64, over the 0.0 MB")
    assert "BUCKET_ENDPOINT_URL" in result["error"] and "network volume" in result["error"]


def test_a_network_volume_receives_the_clip(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    volume = tmp_path / "runpod-volume"
    volume.mkdir()
    monkeypatch.setenv("STEADYDANCER_VOLUMES", str(volume))
    with replaying(load("comfyui-cpu-smoke.json")) as (url, _):
        result = handler.handle(job(), url, lambda message: None)
    (video,) = result["videos"]
    assert video["path"] == str(volume / "steadydancer" / "output" / "job-1" / "cpu_00002_.mp4")
    assert Path(video["path"]).read_bytes() == RECORDED_VIDEO


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({"prompt": "x"}, "unknown input(s) prompt; accepted: driving, parameters, reference"),
        ({"driving": "not base64!"}, "input driving: neither an http(s) URL nor valid base64"),
        ({"parameters": {"frames": 0}}, "parameter frames=0 is below its minimum 2"),
        ({"workflow": "dance"}, "unknown workflow 'dance'"),
        ({"reference": driving()}, "cpu-smoke takes no image: drop input reference"),
        (
            {"driving": base64.b64encode(b"text").decode()},
            "input driving: not an MP4, MOV, WebM or Matroska video",
        ),
    ],
)
def test_bad_jobs_are_refused_before_anything_is_sent(
    request_: dict[str, Any], message: str
) -> None:
    with replaying(load("comfyui-cpu-smoke.json")) as (url, seen):
        result = handler.handle(job(**request_), url, lambda line: None)
    assert message in result["error"]
    assert seen == []


def test_the_dance_workflow_needs_both_inputs() -> None:
    with replaying({}) as (url, seen):
        result = handler.handle({"id": "j", "input": {"driving": driving()}}, url)
    assert result == {"error": "input reference is required by steadydancer-dance"}
    assert seen == []


def test_the_sdks_local_test_mode_runs_one_job(tmp_path: Path) -> None:
    """`python -m steadydancer.serve.handler --test_input ...`, as the README shows it."""
    with replaying(load("comfyui-cpu-smoke.json")) as (url, _):
        result = subprocess.run(
            [
                *(sys.executable, "-m", "steadydancer.serve.handler"),
                *("--test_input", json.dumps(job())),
            ],
            env={
                **os.environ,
                "COMFYUI_URL": url,
                "PYTHONPATH": str(REPO / "docker"),
                "STEADYDANCER_VOLUMES": str(tmp_path / "none"),
            },
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert "cpu_00002_.mp4" in output and "base64" in output
    assert "Local testing complete" in output
