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
import sysconfig
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from dagger import dag
from steadydancer import smoke

from ci import image, pins, replay
from ci.options import BuildOptions
from tests import pod_image
from tests.conftest import PLANS
from tests.dagger_offline import REPO, ops


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


def test_in_place_nothing_is_mapped_and_system_commands_are_not_skipped() -> None:
    at_home = replay.Replay(Path("/"), replay.Report(), None, "uv")
    text = "python /opt/steadydancer-tools/check.py -r /tmp/steadydancer-install/lock.txt"
    assert at_home.map_text(text) == text
    assert at_home.local("/opt/venv") == Path("/opt/venv")
    mapped = replay.Replay(Path("/tmp/r/image"), replay.Report(), None, "uv")
    assert mapped.map_text("/opt/venv") == "/tmp/r/image/opt/venv"
    assert at_home.in_place and not mapped.in_place


def test_without_mount_removes_only_what_the_replay_mounted(tmp_path: Path) -> None:
    """apt's cache folders are never mounted by the replay: unmounting them must not delete
    the system's (in place, /var/cache/apt is the container's own)."""
    kept = tmp_path / "image" / "var" / "cache" / "apt"
    kept.mkdir(parents=True)
    (kept / "pkgcache.bin").write_text("system")
    chain = dag.container().with_exec(["true"]).without_mount("/var/cache/apt")
    replay.Replay(tmp_path / "image", replay.Report(), None, replay.pinned_uv()).run(
        replay.selections(chain)
    )
    assert (kept / "pkgcache.bin").read_text() == "system"


def test_in_place_is_refused_outside_a_container(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(replay, "CONTAINER_MARK", tmp_path / ".dockerenv")
    with pytest.raises(SystemExit):
        replay.main(["--in-place"])
    assert "run it inside a throwaway container" in capsys.readouterr().err


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
    """Under a temporary root on the host, where no Docker engine answers; with one, the test
    below replays the same chain in a container, at the image's own paths."""
    if pod_image.docker_unavailable() is None:
        pytest.skip("a Docker engine answers: the chain is replayed in a container instead")
    trees = os.environ.get("STEADYDANCER_REPLAY_TREES")
    argv = ["--root", str(tmp_path), "--report", str(tmp_path / "steps.json")]
    if trees:
        argv += ["--trees", trees, "--boot"]
    try:
        assert replay.main(argv) == 0
        check_replayed(tmp_path / "steps.json", tmp_path / "image" / "opt" / "venv", run_host)
    finally:
        # Two environments with torch (about 10 GB): not kept for pytest's later inspection.
        shutil.rmtree(tmp_path / "image", ignore_errors=True)
        shutil.rmtree(tmp_path / "image-builder0", ignore_errors=True)


def run_host(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, check=False, timeout=1800,
        env={**os.environ, **env},
    )  # fmt: skip


@dataclass
class Replayed:
    """The container the chain was replayed in, and how to run commands there."""

    name: str
    out: Path
    trees: str | None

    def run(self, argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        settings = [f"--env={key}={value}" for key, value in env.items()]
        return subprocess.run(
            ["docker", "exec", *settings, self.name, *argv],
            capture_output=True, text=True, check=False, timeout=3600,
        )  # fmt: skip


def host_network() -> tuple[list[str], dict[str, str]]:
    """The host's certificate and proxy settings for the container, as the replay takes them
    for the engine's: files and folders they name mounted under /host-network (apt's own
    ca-certificates owns /etc/ssl in the container)."""
    mounts: dict[str, str] = {}
    env = {}
    for name, value in sorted(os.environ.items()):
        if not replay.NETWORK_SETTINGS.search(name):
            continue
        if value.startswith("/") and Path(value).exists():
            if value not in mounts:
                mounts[value] = f"/host-network/{len(mounts)}-{Path(value).name}"
            value = mounts[value]
        env[name] = value
    return [f"{host}:{inside}:ro" for host, inside in mounts.items()], env


@pytest.fixture(scope="module")
def replayed_in_container(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replayed]:
    """The fp8 chain (xformers branch) replayed with --in-place in a container from the pod
    tests' Debian base.

    Debian's Python 3.11 stands in for the image's exact-patch one (so its headers come from
    python3-dev, for the mmcv build on a cold cache); this repository, its dev environment
    and the replay's caches are mounted at their host paths, apt's archives on a cache of
    their own."""
    reason = pod_image.docker_unavailable()
    if reason:
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("replayed")
    base = pod_image.base_image()
    site = Path(sysconfig.get_paths()["purelib"])
    uv = Path(replay.pinned_uv()).resolve()
    caches = replay.CACHE_HOME
    apt_archives = pod_image.CACHE / "apt-archives"
    for folder in (caches, apt_archives / "partial"):
        folder.mkdir(parents=True, exist_ok=True)
    mounts = [
        f"{REPO}:{REPO}:ro",
        f"{site}:{site}:ro",
        f"{uv}:/host-tools/uv:ro",
        f"{caches}:{caches}",
        f"{apt_archives}:/var/cache/apt/archives",
        f"{out}:/out",
    ]
    argv = ["--in-place", "--root", "/out", "--report", "/out/steps.json"]
    trees = os.environ.get("STEADYDANCER_REPLAY_TREES")
    if trees:
        mounts.append(f"{trees}:{trees}:ro")
        argv += ["--trees", trees, "--boot"]
    network_mounts, network_env = host_network()
    replayed = Replayed(f"steadydancer-replay-{uuid.uuid4().hex[:8]}", out, trees)
    pod_image.docker(
        "run", "-d", "--name", replayed.name,
        *(f"--volume={m}" for m in [*mounts, *network_mounts]),
        *(f"--env={name}={value}" for name, value in network_env.items()),
        "-e", f"XDG_CACHE_HOME={caches.parent}", base, "sleep", "infinity",
    )  # fmt: skip
    try:
        headers = replayed.run(
            ["sh", "-c", "apt-get update -qq && apt-get install -y -qq python3-dev"], {}
        )
        assert headers.returncode == 0, headers.stderr[-2000:]
        tools_path = "/host-tools:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        result = replayed.run(
            ["python3", "-m", "ci.replay", *argv],
            {
                "PYTHONPATH": f"{site}:{REPO}:{REPO / 'docker'}",
                "PATH": tools_path,
                "HOME": "/root",
            },
        )
        (out / "replay.log").write_text(result.stdout + result.stderr)
        assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
        yield replayed
    finally:
        pod_image.docker("rm", "-f", replayed.name, check=False, timeout=300)


@pytest.mark.replay
@pytest.mark.network
@pytest.mark.docker
def test_the_fp8_image_chain_replays_in_a_container_at_the_images_own_paths(
    replayed_in_container: Replayed,
) -> None:
    """The chain's apt-get runs for real; the venv is /opt/venv, the tools
    /opt/steadydancer-tools, the user root, as in the image."""
    replayed = replayed_in_container
    check_replayed(replayed.out / "steps.json", Path("/opt/venv"), replayed.run)
    steps = json.loads((replayed.out / "steps.json").read_text())
    # The image's own system commands ran; the builder's container keeps skipping its apt.
    ran = [s["detail"] for s in steps if s["outcome"] == "ran"]
    for command in ("apt-get install", "find /etc/ssh", "rm -f /etc/apt"):
        assert any(detail.startswith(command) for detail in ran), command
    image_paths = replayed.run(
        ["sh", "-c", "id -un; readlink -f /opt/venv/bin/python; ls /opt/steadydancer-tools;"
         " /usr/local/bin/uv --version; for c in ffmpeg tini git; do command -v $c; done"],
        {},
    )  # fmt: skip
    lines = image_paths.stdout.split()
    assert lines[0] == "root"
    assert lines[1].startswith("/usr/bin/python3")
    assert "import_check.py" in lines
    assert f"uv {pins.UV_VERSION}" in image_paths.stdout
    assert {"/usr/bin/ffmpeg", "/usr/bin/tini", "/usr/bin/git"} <= set(lines)


def image_env(chain: list[tuple[str, dict[str, Any]]]) -> dict[str, str]:
    """The environment the chain leaves, ${NAME} expanded as the engine does."""
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    for name, args in chain:
        if name == "withEnvVariable":
            value = str(args["value"])
            if args.get("expand"):
                value = replay.expanded(value, env)
            env[args["name"]] = value
    return env


@pytest.mark.replay
@pytest.mark.network
@pytest.mark.docker
def test_the_replayed_image_serves_the_pinned_comfyui_as_a_pod(
    replayed_in_container: Replayed, tmp_path: Path
) -> None:
    """The replayed container committed with the chain's environment, entrypoint, working
    folder, port and labels, then run as the pod tests run theirs: healthy by the compose
    file's healthcheck, and the smoke client's cpu-smoke made through the published port by
    the pinned ComfyUI itself, on CPU. Needs the trees (GitHub only)."""
    replayed = replayed_in_container
    if not replayed.trees:
        pytest.skip("STEADYDANCER_REPLAY_TREES names no trees at the pins: ComfyUI is on GitHub")
    spec = pod_image.runtime_spec()
    ctr = image.image(BuildOptions.parse("fp8", pins.DEFAULT_PROFILE, "auto"), PLANS["xformers"])
    changes = [
        *(f"ENV {name}={json.dumps(value)}" for name, value in image_env(ops(ctr)).items()),
        *(f"LABEL {name}={json.dumps(value)}" for name, value in spec["labels"].items()),
        *(f"EXPOSE {port}" for port in spec["ports"]),
        f"WORKDIR {spec['workdir']}",
        f"ENTRYPOINT {json.dumps(spec['entrypoint'])}",
        "CMD []",
    ]
    tag = f"steadydancer-test-replayed:{uuid.uuid4().hex[:8]}"
    pod_image.docker(
        "commit", *(f"--change={change}" for change in changes), replayed.name, tag,
        timeout=1800,
    )  # fmt: skip
    pod = f"steadydancer-test-{uuid.uuid4().hex[:8]}"
    volume = f"steadydancer-test-volume-{uuid.uuid4().hex[:8]}"
    try:
        healthcheck = " ".join(pod_image.compose_healthcheck())
        pod_image.docker(
            "run", "-d", "--name", pod, "--health-cmd", healthcheck, "--health-interval", "2s",
            "-p", "127.0.0.1::8188", "-v", f"{volume}:/workspace", *pod_image.CPU, tag,
        )  # fmt: skip
        pod_image.wait(pod, "healthy", seconds=600)
        url = f"http://127.0.0.1:{pod_image.host_port(pod, 8188)}"
        report = smoke.run(url, "cpu-smoke", "generate", "fp8", None, [], tmp_path, 60, 300)
        assert report.status == "passed" and report.outputs[0]["frames"] == 8
        logs = pod_image.docker("logs", pod).stdout
        assert "IMPORT FAILED" not in logs
    finally:
        pod_image.docker("rm", "-f", "-v", pod, check=False, timeout=300)
        pod_image.docker("volume", "rm", "-f", volume, check=False)
        pod_image.docker("rmi", "-f", tag, check=False, timeout=600)


Runner = Callable[[list[str], dict[str, str]], subprocess.CompletedProcess[str]]


def check_replayed(steps_file: Path, venv: Path, run_in: Runner) -> None:
    """The steps that must have run, mmcv's compiled ops, and the detector on CPU; `run_in`
    runs a command where the replayed image is (the host or the container)."""
    steps = json.loads(steps_file.read_text())
    ran = [s["detail"] for s in steps if s["outcome"] in ("ran", "adapted")]
    assert any("torch==2.5.1" in d for d in ran)
    assert any("import_check.py mmcv mmcv.ops mmdet mmpose" in d for d in ran)
    assert any("xformers==" in d for d in ran)
    assert any("wheel_cache.py" in d for d in ran)
    assert all(s["reason"] for s in steps if s["outcome"] == "skipped")
    listed = run_in(["sh", "-c", f"ls {venv}/lib/python3*/site-packages/mmcv/"], {})
    assert "_ext" in listed.stdout, "mmcv was installed without its compiled ops"
    assert any("steadydancer.import_check steadydancer.nodes" in d for d in ran)
    detector_runs_on_cpu(venv / "bin" / "python", run_in)


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
print("boxes", boxes.shape[1] if len(boxes) else 4)
try:
    found(frame)
    print("first box: pose")
except ValueError as exc:
    # Random weights may box the frame at infinity: the pose model's answer is then refused.
    print("first box: refused" if "not finite numbers" in str(exc) else f"first box: {exc}")
# Nobody found: the pose model measures the whole frame, as the official code does.
found.people = lambda image: np.zeros((0, 4), dtype=np.float32)
pose = found(frame)
print("pose", pose.body.shape, pose.hands.shape)
"""


def detector_runs_on_cpu(python: Path, run_in: Runner) -> None:
    """The official pack's detector, its models built from the configs mmdet and mmpose ship
    (weights random: the checkpoints are not fetched here), on a synthetic frame, CPU ops: the
    box search, the pose model on the first box (or its non-finite answer refused by name) and
    on the whole frame when nobody is found."""
    result = run_in([str(python), "-c", DETECTOR_ON_CPU], {"PYTHONPATH": str(REPO / "docker")})
    errors = [line for line in result.stderr.splitlines() if "Error" in line]
    assert result.returncode == 0, (result.returncode, errors, result.stderr[-2000:])
    assert "boxes 4\n" in result.stdout
    assert "first box: pose\n" in result.stdout or "first box: refused\n" in result.stdout
    assert "pose (18, 2) (2, 21, 2)" in result.stdout
