"""ci.replay: the build's own commands executed without an engine.

The small chains here are built with the SDK as the module builds its layers; the last
test replays the whole fp8 image chain (xformers branch) from PyPI, compiling mmcv's CPU
ops into the replay's wheel cache on a machine's first run. The ComfyUI and node-pack
trees are on GitHub, which CI cannot reach: with STEADYDANCER_REPLAY_TREES naming a
folder of trees at the pins, the replay also boots ComfyUI on CPU and compares its
/object_info with the snapshot.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from dagger import dag

from ci import replay
from tests.dagger_offline import REPO


def run(chain, tmp_path: Path) -> replay.Report:
    report = replay.Report()
    replay.Replay(tmp_path / "image", report, None, replay.pinned_uv()).run(
        replay.selections(chain)
    )
    return report


def test_image_paths_are_mapped_under_the_root_and_files_materialized(tmp_path: Path) -> None:
    chain = (
        dag.container()
        .from_("nvidia/cuda:12.4.1-base-ubuntu22.04")
        .with_env_variable("TOOLS", "/opt/steadydancer-tools")
        .with_env_variable("PATH", "${TOOLS}:${PATH}", expand=True)
        .with_mounted_directory(
            "/tmp/steadydancer-install", dag.directory().with_new_file("lock.txt", "torch==2.5.1\n")
        )
        .with_workdir("/opt/ComfyUI")
        .with_exec(
            ["sh", "-c", 'cp /tmp/steadydancer-install/lock.txt "$TOOLS.txt" && pwd > where']
        )
        .without_mount("/tmp/steadydancer-install")
    )
    report = run(chain, tmp_path)
    root = tmp_path / "image"
    assert (root / "opt" / "steadydancer-tools.txt").read_text() == "torch==2.5.1\n"
    assert (root / "opt" / "ComfyUI" / "where").read_text().strip() == str(root / "opt" / "ComfyUI")
    assert not (root / "tmp" / "steadydancer-install").exists()
    assert [(s.op, s.outcome) for s in report.steps] == [("from", "skipped"), ("withExec", "ran")]


def test_a_root_under_tmp_steadydancer_is_not_mapped_twice() -> None:
    """The command line's default root is /tmp/steadydancer-replay-*, itself a mapped prefix."""
    root = Path("/tmp/steadydancer-replay-x/image")
    mapped = replay.Replay(root, replay.Report(), None, "uv").map_text(
        "python /opt/steadydancer-tools/check.py -r /tmp/steadydancer-install/lock.txt /opt"
    )
    assert mapped == (
        f"python {root}/opt/steadydancer-tools/check.py -r {root}/tmp/steadydancer-install/lock.txt"
        f" {root}/opt"
    )


def test_a_failing_command_is_named_with_its_output(tmp_path: Path) -> None:
    chain = dag.container().with_exec(
        ["python3", "-c", "import sys; print('torch>=2.7 is required'); sys.exit(3)"]
    )
    with pytest.raises(replay.ReplayError) as failure:
        run(chain, tmp_path)
    message = str(failure.value)
    assert "python3 -c import sys; print('torch>=2.7 is required'); sys.exit(3)" in message
    assert "exit 3" in message and "torch>=2.7 is required" in message


def test_what_cannot_run_here_is_skipped_with_its_reason(tmp_path: Path) -> None:
    chain = (
        dag.container()
        .with_exec(["apt-get", "install", "-y", "ffmpeg"])
        .with_exec(["uv", "python", "install", "3.11.18"])
        .with_directory(
            "/opt/ComfyUI",
            dag.git("https://github.com/comfyanonymous/ComfyUI").commit("3cd7b32f").tree(),
        )
        .with_file(
            "/tmp/flash_attn.whl",
            dag.http("https://github.com/Dao-AILab/flash-attention/releases/download/x.whl"),
        )
    )
    report = run(chain, tmp_path)
    reasons = {s.detail.split()[0]: s.reason for s in report.steps}
    assert "apt" in reasons["apt-get"]
    assert "exact patch release" in reasons["uv"]
    assert "GitHub (give --trees DIR with DIR/ComfyUI)" in reasons["/opt/ComfyUI"]
    assert "GitHub release download" in reasons["/tmp/flash_attn.whl"]
    assert {s.outcome for s in report.steps} == {"skipped"}


def test_cuda_build_flags_are_dropped_and_the_cache_key_marked(tmp_path: Path) -> None:
    chain = (
        dag.container()
        .with_env_variable("FORCE_CUDA", "1")
        .with_env_variable("TORCH_CUDA_ARCH_LIST", "9.0")
        .with_workdir("/opt")
        .with_exec(
            ["sh", "-c", "echo ${FORCE_CUDA:-none} > /opt/flags", "--key", "mmcv-2.1.0-cu124"]
        )
    )
    report = run(chain, tmp_path)
    assert (tmp_path / "image" / "opt" / "flags").read_text().strip() == "none"
    (step,) = [s for s in report.steps if s.op == "withExec"]
    assert step.outcome == "adapted" and "FORCE_CUDA" in step.reason
    assert "mmcv-2.1.0-cu124-cpu" in step.detail


def test_snapshot_differences_name_the_input(tmp_path: Path) -> None:
    snapshot = json.loads(replay.OBJECT_INFO.read_text())
    assert replay.differences(snapshot, snapshot) == []
    served = json.loads(json.dumps(snapshot))
    served["WanVideoSampler"]["input"]["required"]["steps"] = ["FLOAT", {}]
    del served["VHS_VideoCombine"]
    assert replay.differences(served, snapshot) == [
        "VHS_VideoCombine: not served",
        "WanVideoSampler.steps: INT in the snapshot, FLOAT served",
    ]


@pytest.mark.replay
@pytest.mark.network
def test_the_fp8_image_chain_replays(tmp_path: Path) -> None:
    trees = os.environ.get("STEADYDANCER_REPLAY_TREES")
    argv = ["--root", str(tmp_path), "--report", str(tmp_path / "steps.json")]
    if trees:
        argv += ["--trees", trees, "--boot"]
    try:
        assert replay.main(argv) == 0
        check_replayed(tmp_path)
    finally:
        # Two environments with torch (about 10 GB): not kept for pytest's later inspection.
        shutil.rmtree(tmp_path / "image", ignore_errors=True)
        shutil.rmtree(tmp_path / "image-builder0", ignore_errors=True)


def check_replayed(tmp_path: Path) -> None:
    steps = json.loads((tmp_path / "steps.json").read_text())
    ran = [s["detail"] for s in steps if s["outcome"] in ("ran", "adapted")]
    assert any("torch==2.5.1" in d for d in ran)
    assert any("import_check.py mmcv mmcv.ops mmdet mmpose" in d for d in ran)
    assert any("xformers==" in d for d in ran)
    assert any("wheel_cache.py" in d for d in ran)
    assert all(s["reason"] for s in steps if s["outcome"] == "skipped")
    site = next((tmp_path / "image" / "opt" / "venv" / "lib").glob("python3*/site-packages"))
    assert list((site / "mmcv").glob("_ext*.so")), "mmcv was installed without its compiled ops"
    assert any("steadydancer.import_check steadydancer.nodes" in d for d in ran)
    detector_runs_on_cpu(tmp_path / "image" / "opt" / "venv" / "bin" / "python")


DETECTOR_ON_CPU = """
import numpy as np
import torch
from mmdet.apis import init_detector
from mmpose.apis import init_model
from mmpose.utils import adapt_mmdet_pipeline
from steadydancer.nodes import detect

torch.manual_seed(0)
detector = init_detector(detect.config_path(*detect.DETECTOR_CONFIG), None, device="cpu")
detector.cfg = adapt_mmdet_pipeline(detector.cfg)
pose_model = init_model(detect.config_path(*detect.POSE_CONFIG), None, device="cpu")
found = detect.Detector(detector, pose_model)
frame = np.random.default_rng(0).integers(0, 255, (480, 320, 3), dtype=np.uint8)
boxes = found.people(detect.resized(frame))
pose = found(frame)
print("boxes", boxes.shape[1] if len(boxes) else 4, "pose", pose.body.shape, pose.hands.shape)
"""


def detector_runs_on_cpu(python: Path) -> None:
    """The official pack's detector, its models built from the configs mmdet and mmpose ship
    (weights random: the checkpoints are not fetched here), on a synthetic frame, CPU ops."""
    result = subprocess.run(
        [str(python), "-c", DETECTOR_ON_CPU],
        capture_output=True, text=True, check=False, timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO / "docker")},
    )  # fmt: skip
    errors = [line for line in result.stderr.splitlines() if "Error" in line]
    assert result.returncode == 0, (result.returncode, errors, result.stderr[-2000:])
    assert "boxes 4 pose (18, 2) (2, 21, 2)" in result.stdout
