"""The smoke client against a real ComfyUI's recorded answers (replayed by tests/comfy_cassette.py).

The recordings were made by running this client through a recording proxy in
front of ComfyUI 0.8.0 with the four node packs at our pins, on CPU, with
zero-byte model files of the catalog's names (README, "Recording ComfyUI"):
cpu-smoke produced a real mp4; the SteadyDancer workflows were accepted and then
failed at the first loader; a variant whose file was absent was rejected.
Failures a CPU server cannot produce (out of memory, a missing node pack, a CUDA
device) are injected by editing a copy of a real recording.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from steadydancer import smoke, vram

from tests.comfy_cassette import DATA, body_of, load, replaying
from tests.dagger_offline import REPO
from tests.local_http import Reply, Routes, serve


def run(
    url: str, out: Path, workflow: str = "cpu-smoke", tier: str = "generate", **kwargs: Any
) -> smoke.Report:
    return smoke.run(
        url,
        workflow,
        tier,
        kwargs.pop("variant", "fp8"),
        kwargs.pop("attention", None),
        kwargs.pop("sets", []),
        out,
        kwargs.pop("ready_timeout", 5.0),
        kwargs.pop("run_timeout", 30.0),
    )


def test_cpu_smoke_downloads_and_verifies_a_real_video(tmp_path: Path) -> None:
    with replaying(load("comfyui-cpu-smoke.json")) as (url, seen):
        report = run(url, tmp_path)
    assert report.status == "passed"
    (video,) = report.outputs
    assert (video["frames"], video["fps"], video["width"], video["height"]) == (8, 8.0, 64, 112)
    assert video["distinct_frames"] == 8 and video["duration_s"] == 1.0
    assert Path(video["path"]).name == "cpu_00002_.mp4"
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["status"] == "passed" and saved["comfyui_version"] == "0.8.0"
    assert set(saved["timings_s"]) == {"ready", "upload", "queue", "generate", "collect"}
    assert seen[:4] == [
        "GET /system_stats",
        "GET /object_info",
        "POST /upload/image",
        "POST /prompt",
    ]
    assert seen[-1] == "GET /view"


def test_an_execution_error_names_the_node_and_shows_the_log(tmp_path: Path) -> None:
    with replaying(load("comfyui-steadydancer-pose-placeholders.json")) as (url, _):
        with pytest.raises(smoke.SmokeError) as raised:
            run(url, tmp_path, "steadydancer-pose", sets=["frames=9"])
    error = raised.value
    assert error.stage == "generate"
    assert error.message == (
        "node 10 (WanVideoVAELoader) failed: safetensors._safetensors_rust.SafetensorError: "
        "Error while deserializing header: header too small"
    )
    assert error.log_tail and "!!! Exception during processing !!!" in error.log_tail
    assert json.loads((tmp_path / "report.json").read_text())["status"] == "failed"


def test_a_missing_model_file_is_named_with_its_folder(tmp_path: Path) -> None:
    with replaying(load("comfyui-steadydancer-pose-missing-model.json")) as (url, _):
        with pytest.raises(smoke.SmokeError) as raised:
            run(url, tmp_path, "steadydancer-pose", variant="gguf-q6_k", sets=["frames=9"])
    assert raised.value.stage == "queue"
    assert "node 16 (WanVideoModelLoader): Value not in list: model: " in raised.value.message
    assert "Q6_K_fix_5d_tensor_from_fp8_e4m3fn_scaled_KJ.gguf" in raised.value.message
    assert "the model file is not in ComfyUI's models folder" in raised.value.message


@pytest.mark.parametrize("workflow", ["dance", "official", "pose"])
def test_the_steadydancer_workflows_were_accepted_by_the_real_server(workflow: str) -> None:
    """The official workflow's recording is of the replayed image's ComfyUI (ci.replay --boot),
    with this repository's pack and the patched wrapper."""
    cassette = load(f"comfyui-steadydancer-{workflow}-placeholders.json")
    (accepted,) = cassette["POST /prompt"]
    assert accepted["status"] == 200 and accepted["json"]["node_errors"] == {}


def test_the_official_workflow_fails_at_the_first_placeholder_model(tmp_path: Path) -> None:
    with replaying(load("comfyui-steadydancer-official-placeholders.json")) as (url, _):
        with pytest.raises(smoke.SmokeError) as raised:
            run(url, tmp_path, "steadydancer-official", sets=["frames=9"])
    assert raised.value.stage == "generate"
    assert "WanVideoVAELoader" in raised.value.message
    assert "header too small" in raised.value.message


def test_a_server_that_never_answers_fails_at_the_deadline(tmp_path: Path) -> None:
    with replaying({}) as (url, seen):
        with pytest.raises(smoke.SmokeError) as raised:
            run(url, tmp_path, ready_timeout=1.0)
    assert raised.value.stage == "ready"
    assert raised.value.message.startswith(f"{url} was not ready within 1 s (last: HTTP 404)")
    assert seen.count("GET /system_stats") >= 1


def without_node(cassette: dict[str, Any], node: str) -> dict[str, Any]:
    info = json.loads(body_of(cassette["GET /object_info"][0]))
    info.pop(node)
    changed = copy.deepcopy(cassette)
    changed["GET /object_info"] = [
        {"status": 200, "headers": {"Content-Type": "application/json"}, "json": info}
    ]
    return changed


def test_a_node_pack_that_failed_to_import_is_named(tmp_path: Path) -> None:
    cassette = without_node(
        load("comfyui-steadydancer-pose-placeholders.json"), "WanVideoAddSteadyDancerEmbeds"
    )
    with replaying(cassette) as (url, _):
        with pytest.raises(smoke.SmokeError) as raised:
            run(url, tmp_path, "steadydancer-pose", tier="boot")
    assert raised.value.message.startswith(
        "node(s) WanVideoAddSteadyDancerEmbeds missing from /object_info: "
        "their node pack failed to import"
    )
    assert raised.value.log_tail is not None


def with_device(cassette: dict[str, Any], kind: str) -> dict[str, Any]:
    changed = copy.deepcopy(cassette)
    stats = changed["GET /system_stats"][0]["json"]
    stats["devices"][0].update({"type": kind, "name": "cuda:0 NVIDIA H200 : cudaMallocAsync"})
    return changed


def test_boot_tier_needs_a_cuda_device_and_the_steadydancer_nodes(tmp_path: Path) -> None:
    recorded = load("comfyui-steadydancer-pose-placeholders.json")
    with replaying(recorded) as (url, _):
        with pytest.raises(smoke.SmokeError, match="ComfyUI runs on 'cpu', not a CUDA device"):
            run(url, tmp_path, "steadydancer-pose", tier="boot")
    with replaying(with_device(recorded, "cuda")) as (url, seen):
        report = run(url, tmp_path, "steadydancer-pose", tier="boot")
    assert report.status == "passed" and report.device and report.device["type"] == "cuda"
    assert "POST /prompt" not in seen


def test_out_of_memory_says_what_to_lower(tmp_path: Path) -> None:
    cassette = copy.deepcopy(load("comfyui-steadydancer-pose-placeholders.json"))
    final = cassette["GET /history/{prompt_id}"][-1]["json"]
    status = next(iter(final.values()))["status"]
    for event, data in status["messages"]:
        if event == "execution_error":
            data.update(
                node_id="20",
                node_type="WanVideoSampler",
                exception_type="torch.OutOfMemoryError",
                exception_message="CUDA out of memory. Tried to allocate 20.00 GiB.",
            )
    with replaying(cassette) as (url, _):
        with pytest.raises(smoke.SmokeError) as raised:
            run(url, tmp_path, "steadydancer-pose", sets=["frames=9"])
    assert raised.value.message.startswith("out of memory in node 20 (WanVideoSampler)")
    assert "try fewer frames, a smaller size, or the fp8 or GGUF variant" in raised.value.message


def test_a_prompt_that_produced_nothing_is_a_failure(tmp_path: Path) -> None:
    cassette = copy.deepcopy(load("comfyui-cpu-smoke.json"))
    for entry in cassette["GET /history/{prompt_id}"]:
        for history in entry["json"].values():
            history["outputs"] = {}
    with replaying(cassette) as (url, _):
        with pytest.raises(smoke.SmokeError, match="no output node reported a file"):
            run(url, tmp_path)


def still_video(frames: int = 8) -> bytes:
    import av
    from PIL import Image

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(8))
        stream.width, stream.height, stream.pix_fmt = 64, 112, "yuv420p"
        for _ in range(frames):
            for packet in stream.encode(
                av.VideoFrame.from_image(Image.new("RGB", (64, 112), (9, 9, 9)))
            ):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def test_a_video_of_one_still_frame_is_refused(tmp_path: Path) -> None:
    import base64

    cassette = copy.deepcopy(load("comfyui-cpu-smoke.json"))
    cassette["GET /view"] = [
        {"status": 200, "headers": {}, "base64": base64.b64encode(still_video()).decode()}
    ]
    with replaying(cassette) as (url, _):
        with pytest.raises(
            smoke.SmokeError, match=r"all 8 frames of cpu_00002_\.mp4 are identical"
        ):
            run(url, tmp_path)


def test_unknown_parameters_are_refused_by_name(tmp_path: Path) -> None:
    with replaying(load("comfyui-cpu-smoke.json")) as (url, seen):
        with pytest.raises(
            smoke.SmokeError,
            match=r"unknown parameter 'resolution' for cpu-smoke; accepted: fps, frames, height",
        ):
            run(url, tmp_path, sets=["resolution=720"])
        with pytest.raises(smoke.SmokeError, match="unknown workflow 'dance'"):
            run(url, tmp_path, "dance")
    assert seen == []


def test_the_command_line_prints_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with replaying(load("comfyui-cpu-smoke.json")) as (url, _):
        code = smoke.main(["--url", url, "--workflow", "cpu-smoke", "--out", str(tmp_path)])
    assert code == 0
    printed = capsys.readouterr().out
    assert '"status": "passed"' in printed and "smoke test passed: 1 output(s)" in printed


def test_recordings_are_real_answers() -> None:
    """The recordings hold what the real server said, not hand-written answers."""
    cassette = load("comfyui-cpu-smoke.json")
    stats = cassette["GET /system_stats"][0]["json"]
    assert stats["system"]["comfyui_version"] == "0.8.0"
    assert stats["system"]["pytorch_version"].startswith("2.5.1")
    assert (DATA / "object_info.json").stat().st_size > 1_000_000


def test_the_attention_backend_is_read_from_the_servers_flags(tmp_path: Path) -> None:
    cassette = with_device(load("comfyui-steadydancer-pose-placeholders.json"), "cuda")
    argv = cassette["GET /system_stats"][0]["json"]["system"]["argv"]
    argv.append("--use-pytorch-cross-attention")
    with replaying(cassette) as (url, _):
        report = run(url, tmp_path, "steadydancer-pose", tier="boot")
    assert report.attention == "sdpa"
    argv[-1] = "--use-flash-attention"
    with replaying(cassette) as (url, _):
        assert run(url, tmp_path, "steadydancer-pose", tier="boot").attention == "flash_attn_2"


def test_a_history_answer_lost_on_the_way_is_polled_again(tmp_path: Path) -> None:
    cassette = copy.deepcopy(load("comfyui-cpu-smoke.json"))
    broken = {"status": 502, "headers": {"Content-Type": "text/html"}, "base64": ""}
    cassette["GET /history/{prompt_id}"] = [broken, broken, *cassette["GET /history/{prompt_id}"]]
    with replaying(cassette) as (url, seen):
        report = run(url, tmp_path)
    assert report.status == "passed"
    assert seen.count("GET /history/{prompt_id}") >= 3


def test_temp_outputs_are_collected_too() -> None:
    entry = {
        "outputs": {"22": {"gifs": [{"filename": "p_00001.mp4", "subfolder": "", "type": "temp"}]}}
    }
    assert smoke.output_files(entry, ("22",)) == entry["outputs"]["22"]["gifs"]


@pytest.mark.parametrize(
    ("sets", "variant", "message"),
    [
        (["frames=-5"], "fp8", "parameter frames=-5 is below its minimum 5"),
        (
            ["width=500"],
            "fp8",
            "parameter width=500 must be a multiple of 16 (496 or 512 would do)",
        ),
        (["frames=32"], "fp8", "parameter frames=32 must be 4n+1 (29 or 33 would do)"),
        ([], "int8", "unknown variant 'int8'"),
    ],
)
def test_bad_values_are_refused_before_the_first_request(
    tmp_path: Path, sets: list[str], variant: str, message: str
) -> None:
    """Against a server that never answers: the refusal comes at once, not after the wait."""
    with replaying({}) as (url, seen):
        started = time.monotonic()
        with pytest.raises(smoke.SmokeError) as raised:
            run(url, tmp_path, "steadydancer-pose", sets=sets, variant=variant, ready_timeout=900)
        elapsed = time.monotonic() - started
    assert raised.value.stage == "inputs" and message in raised.value.message
    assert elapsed < 5 and seen == []
    assert json.loads((tmp_path / "report.json").read_text())["status"] == "failed"


def test_given_inputs_must_exist_and_decode_before_anything_is_sent(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    still = tmp_path / "still.mp4"
    still.write_bytes(still_video())
    cases = [
        ([f"pose_video={empty}"], "the file is empty"),
        ([f"pose_video={tmp_path / 'absent.mp4'}"], "no such file"),
        ([f"reference_image={text}"], "not an image"),
        ([f"reference_image={still}"], "not an image"),
        ([f"pose_video={text}"], "not a video"),
    ]
    with replaying({}) as (url, seen):
        for sets, message in cases:
            with pytest.raises(smoke.SmokeError) as raised:
                run(url, tmp_path / "out", "steadydancer-pose", sets=sets)
            assert raised.value.stage == "inputs" and message in raised.value.message, sets
    assert seen == []


def test_a_server_that_dies_during_the_run_is_named_with_its_last_log(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A local server answers /history (still running) and its log, then goes away."""
    monkeypatch.setattr(smoke.Comfy, "silent_after_s", 0.5)
    routes = Routes(
        {
            "/history/p1": Reply(200, b"{}"),
            "/internal/logs": Reply(200, json.dumps("step 1/4\nsampling...").encode()),
        }
    )
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(serve(routes))
        comfy = smoke.Comfy(url)
        polls = 0

        def sleep(seconds: float) -> None:
            nonlocal polls
            polls += 1
            if polls == 2:
                stack.close()  # the server is gone
            time.sleep(0.1)

        started = time.monotonic()
        with pytest.raises(smoke.SmokeError) as raised:
            comfy.follow("p1", deadline_s=600, sleep=sleep, say=lambda line: None)
    assert time.monotonic() - started < 10
    assert raised.value.message.startswith(f"the ComfyUI server at {url} stopped answering")
    assert raised.value.log_tail == "step 1/4\nsampling..."


def test_sigterm_still_writes_the_report(tmp_path: Path) -> None:
    with replaying({}) as (url, _):
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "steadydancer.smoke", "--url", url),
                *("--workflow", "cpu-smoke", "--out", str(tmp_path), "--ready-timeout", "120"),
            ],
            env={**os.environ, "PYTHONPATH": str(REPO / "docker")},
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(2)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 143, stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["status"] == "failed"
    assert report["error"] == "stopped: stopped by SIGTERM"


def test_a_missing_model_hint_for_any_node_that_names_a_model_file() -> None:
    failure = {
        "class_type": "WanVideoTextEncodeCached",
        "errors": [
            {
                "type": "value_not_in_list",
                "message": "Value not in list",
                "details": "model_name: 'umt5-xxl-enc-fp8_e4m3fn.safetensors' not in []",
                "extra_info": {"received_value": "umt5-xxl-enc-fp8_e4m3fn.safetensors"},
            }
        ],
    }
    (line,) = smoke.readable_node_errors({"19": failure}, {})
    assert line.endswith("(the model file is not in ComfyUI's models folder: fetch the models)")
    failure["errors"][0]["extra_info"] = {"received_value": "dpm++_sde"}
    (line,) = smoke.readable_node_errors({"19": failure}, {})
    assert "fetch the models" not in line


def test_the_attention_rendered_is_what_the_server_runs_not_what_the_image_was_built_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In the image STEADYDANCER_ATTENTION says flash_attn_2; a server that fell back to SDPA
    was started without --use-flash-attention, and the client renders SDPA."""
    monkeypatch.setenv("STEADYDANCER_ATTENTION", "flash_attn_2")
    cassette = with_device(load("comfyui-steadydancer-pose-placeholders.json"), "cuda")
    with replaying(cassette) as (url, _):
        report = run(url, tmp_path, "steadydancer-pose", tier="boot")
    assert report.attention == "sdpa"


def test_block_swap_is_chosen_from_the_served_gpus_memory_unless_set(tmp_path: Path) -> None:
    """A 16 GiB CUDA device in /system_stats: the client renders the blocks vram.py picks for
    it and reports them; a block_swap the user set is left alone. (The recorded run then
    stops at the first loader, its weights being placeholders.)"""
    cassette = with_device(load("comfyui-steadydancer-pose-placeholders.json"), "cuda")
    cassette["GET /system_stats"][0]["json"]["devices"][0]["vram_total"] = 16 * 2**30
    with replaying(cassette) as (url, _):
        with pytest.raises(smoke.SmokeError):
            run(url, tmp_path / "auto", "steadydancer-pose")
        with pytest.raises(smoke.SmokeError):
            run(url, tmp_path / "set", "steadydancer-pose", sets=["block_swap=2"])
    chosen = json.loads((tmp_path / "auto" / "report.json").read_text())["block_swap"]
    assert chosen == vram.blocks_to_swap(16 * 2**30, "fp8", 480, 832, 33) > 0
    assert json.loads((tmp_path / "set" / "report.json").read_text())["block_swap"] is None


def test_speed_settings_are_chosen_for_the_served_gpu_unless_set(tmp_path: Path) -> None:
    """An H200 with room for everything: the client keeps the models resident and computes in
    bf16 (fp8 failed its quality gate); a 16 GiB card keeps today's offloading path; a user's
    own setting is left alone. (The recorded run stops at the first loader.)"""
    cassette = with_device(load("comfyui-steadydancer-pose-placeholders.json"), "cuda")
    cassette["GET /system_stats"][0]["json"]["devices"][0]["vram_total"] = 140 * 2**30
    small = copy.deepcopy(cassette)
    small["GET /system_stats"][0]["json"]["devices"][0]["vram_total"] = 16 * 2**30
    for served, out, sets in (
        (cassette, "big", []),
        (small, "small", []),
        (cassette, "set", ["resident=off", "compute=fp8"]),
    ):
        with replaying(served) as (url, _):
            with pytest.raises(smoke.SmokeError):
                run(url, tmp_path / out, "steadydancer-pose", sets=sets)
    chosen = {
        out: json.loads((tmp_path / out / "report.json").read_text())["speed"]
        for out in ("big", "small", "set")
    }
    assert chosen["big"] == {"compute": "bf16", "resident": "on", "compile": "off"}
    assert chosen["small"] == {"compute": "bf16", "resident": "off", "compile": "off"}
    assert chosen["set"] == {"compile": "off"}
