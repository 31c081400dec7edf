"""The entrypoint run for real in a temporary root: real files, folders, permissions and signals.

What only a GPU host has is stood in for: nvidia-smi replays a real H200's output,
the attention probe is a script that succeeds for the backends a test names,
and ComfyUI's main.py records its arguments and the signals it gets. Model files
are sparse files with their markers; missing ones come from the tests' local
Hub-protocol server.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from steadydancer import fetch_models, runpod

from tests.dagger_offline import REPO
from tests.hub_server import Hub, serve
from tests.stand_ins import executable, nvidia_smi, public_key

MAIN = """\
import json, os, signal, sys, time
record = {"argv": sys.argv, "cwd": os.getcwd(),
          "pre_start_ran": os.path.exists(os.environ.get("PRE_START_MARK", "/nonexistent")),
          "environment": sorted(os.environ)}
path = os.environ["RECORD"]
def save():
    with open(path + ".tmp", "w") as out:
        json.dump(record, out)
    os.replace(path + ".tmp", path)
def stop(signum, frame):
    record["signal"] = signal.Signals(signum).name
    save()
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
record["state"] = "running"
save()
if os.environ.get("STAND_IN_WAIT"):
    time.sleep(60)
"""

PROBE = """\
import os, sys
ok = os.environ.get("PROBE_OK", "").split()
print(sys.argv[1] + (" ok (stand-in)" if sys.argv[1] in ok else " failed (stand-in)"))
sys.exit(0 if sys.argv[1] in ok else 1)
"""


def small_catalog(root: Path, hub: Hub) -> Path:
    """A two-variant catalog of small files the local Hub serves, in the real catalog's shape."""
    files = {}
    for key, folder, size in (
        ("steadydancer-fp8", "diffusion_models/WanVideo/SteadyDancer", 300_000),
        ("umt5-xxl-fp8", "text_encoders", 200_000),
        ("wan-vae-bf16", "vae/wanvideo", 100_000),
        ("yolov10m", "detection/onnx", 50_000),
    ):
        content = hashlib.sha256(key.encode()).digest() * (size // 32)
        path = f"{key}.bin"
        digest = hub.add("test/models", path, content)
        files[key] = {
            "repo": "test/models", "path": path, "revision": "main", "folder": folder,
            "size": len(content), "sha256": digest, "source": "test",
        }  # fmt: skip
    catalog = root / "catalog.json"
    catalog.write_text(
        json.dumps(
            {
                "default_variant": "fp8",
                "files": files,
                "variants": {"fp8": {"description": "test", "files": list(files)}},
            }
        )
    )
    return catalog


class Root:
    """A pod's filesystem in a temporary folder, and the environment that points there."""

    def __init__(self, tmp_path: Path, hub: Hub) -> None:
        self.path = tmp_path
        self.comfyui = tmp_path / "opt" / "ComfyUI"
        self.comfyui.mkdir(parents=True)
        (self.comfyui / "main.py").write_text(MAIN)
        self.workspace = tmp_path / "workspace"
        self.record = tmp_path / "record.json"
        self.catalog = small_catalog(tmp_path, hub)
        probe = executable(tmp_path / "probe.py", PROBE)
        sshd = executable(
            tmp_path / "sshd", f'#!/bin/sh\necho "$@" > {tmp_path}/sshd.args\nexec sleep 60\n'
        )
        self.env = {
            **nvidia_smi(tmp_path / "bin"),
            "PYTHONPATH": str(REPO / "docker"),
            "COMFYUI_DIR": str(self.comfyui),
            "STEADYDANCER_VOLUMES": f"{self.workspace}:{tmp_path / 'runpod-volume'}",
            "STEADYDANCER_RUN_DIR": str(tmp_path / "run"),
            "STEADYDANCER_CATALOG": str(self.catalog),
            "STEADYDANCER_PROBE": f"{sys.executable} {probe}",
            "STEADYDANCER_SSH_DIR": str(tmp_path / "root" / ".ssh"),
            "STEADYDANCER_SSH_ROOT": str(tmp_path),
            "STEADYDANCER_SSHD": str(sshd),
            "STEADYDANCER_ENV_FILE": str(tmp_path / "etc" / "rp_environment"),
            "STEADYDANCER_BASHRC": str(tmp_path / "root" / ".bashrc"),
            "STEADYDANCER_HOOKS_DIR": str(tmp_path / "hooks"),
            "STEADYDANCER_ATTENTION": "flash_attn_2",
            "STEADYDANCER_VARIANT": "fp8",
            "CUDA_VERSION": "12.4.1",
            "PROBE_OK": "flash_attn_2 xformers sdpa",
            "RECORD": str(self.record),
            # The stand-in main.py reads these; ComfyUI sees only listed names.
            "STEADYDANCER_PASS_ENV": "RECORD PRE_START_MARK STAND_IN_WAIT",
            "HF_TOKEN": "hf_not_a_real_token_for_tests",
        }
        self.env.pop("STEADYDANCER_WORKFLOWS", None)

    def bake(self, *keys: str) -> None:
        """Put files in the image's models folder with the markers the build writes."""
        catalog = json.loads(self.catalog.read_text())["files"]
        for key in keys:
            spec = catalog[key]
            entry = fetch_models.Entry.from_manifest(
                {**spec, "target": f"{spec['folder']}/{spec['path']}"}
            )
            target = self.comfyui / "models" / entry.target
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("wb") as out:
                out.truncate(spec["size"])
            fetch_models.write_marker(
                self.comfyui / "models", entry, spec["size"], spec["sha256"], "c" * 40
            )

    def boot(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "steadydancer.entrypoint", *args],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def recorded(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.record.read_text())
        return data


@pytest.fixture
def hub() -> Hub:
    return Hub()


@pytest.fixture
def root(tmp_path: Path, hub: Hub) -> Root:
    return Root(tmp_path, hub)


ALL = ("steadydancer-fp8", "umt5-xxl-fp8", "wan-vae-bf16", "yolov10m")


def start(env: dict[str, str]) -> subprocess.Popen[str]:
    """The entrypoint in the background, its output collected, for tests that signal it."""
    return subprocess.Popen(
        [sys.executable, "-m", "steadydancer.entrypoint"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def tree(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(path.relative_to(folder)): (path.stat().st_mtime_ns, path.stat().st_size)
        for path in sorted(folder.rglob("*"))
    }


def test_first_boot_puts_the_pods_data_on_the_volume(root: Root) -> None:
    root.workspace.mkdir()
    root.bake(*ALL)
    result = root.boot()
    assert result.returncode == 0, result.stdout + result.stderr
    argv = root.recorded()["argv"]
    data = root.workspace / "steadydancer"
    assert argv[1:] == [
        "--listen", "0.0.0.0", "--port", "8188", "--max-upload-size", "2048",
        "--input-directory", str(data / "input"),
        "--output-directory", str(data / "output"),
        "--user-directory", str(data / "user"),
        "--use-flash-attention",
    ]  # fmt: skip
    yaml = (root.comfyui / "extra_model_paths.yaml").read_text()
    for folder in ("diffusion_models", "text_encoders", "clip_vision", "vae", "loras", "detection"):
        assert f"    {folder}: {folder}/" in yaml
        assert (data / "models" / folder).is_dir()
    assert (
        f"base_path: {root.comfyui / 'models'}" in yaml and f"base_path: {data / 'models'}" in yaml
    )
    assert "models: variant fp8, 4 of 4 present" in result.stdout
    assert (root.path / "run" / "attention").read_text() == "flash_attn_2\n"
    for name in ("preflight", "storage", "models", "attention", "services"):
        assert f"[steadydancer] {name}: done in " in result.stdout
    exported = Path(root.env["STEADYDANCER_ENV_FILE"]).read_text()
    assert "export STEADYDANCER_VARIANT=fp8" in exported and "HF_TOKEN" not in exported
    assert (
        Path(root.env["STEADYDANCER_BASHRC"]).read_text()
        == f"source {root.env['STEADYDANCER_ENV_FILE']}\n"
    )


def test_a_second_boot_changes_nothing(root: Root) -> None:
    root.workspace.mkdir()
    root.bake(*ALL)
    assert root.boot().returncode == 0
    before = {**tree(root.workspace), **tree(root.comfyui / "models")}
    yaml_before = (root.comfyui / "extra_model_paths.yaml").stat().st_mtime_ns
    time.sleep(0.01)
    second = root.boot()
    assert second.returncode == 0, second.stderr
    assert {**tree(root.workspace), **tree(root.comfyui / "models")} == before
    assert (root.comfyui / "extra_model_paths.yaml").stat().st_mtime_ns == yaml_before
    assert "storage: created" not in second.stdout and "storage: wrote" not in second.stdout
    assert Path(root.env["STEADYDANCER_BASHRC"]).read_text().count("source ") == 1


def test_without_a_volume_everything_stays_in_the_container(root: Root) -> None:
    root.bake(*ALL)
    result = root.boot()
    assert result.returncode == 0, result.stderr
    assert "no volume mounted" in result.stdout
    argv = root.recorded()["argv"]
    assert "--input-directory" not in argv and "--use-flash-attention" in argv
    assert "steadydancer_volume" not in (root.comfyui / "extra_model_paths.yaml").read_text()


def test_a_read_only_volume_stops_the_boot_with_nothing_half_done(root: Root) -> None:
    root.workspace.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(root.workspace)], check=False
    )
    assert mounted.returncode == 0, "this test mounts a read-only tmpfs and needs root"
    try:
        root.bake(*ALL)
        result = root.boot()
    finally:
        subprocess.run(["umount", str(root.workspace)], check=True)
    assert result.returncode == 1
    assert f"the volume at {root.workspace} is read-only" in result.stdout
    assert "Mount it read-write with free space, or start without it" in result.stdout
    assert not root.record.exists()  # ComfyUI never started
    assert list(root.workspace.iterdir()) == []


def test_missing_models_are_fetched_to_the_volume_and_present_ones_left_alone(
    root: Root, hub: Hub
) -> None:
    root.workspace.mkdir()
    root.bake("steadydancer-fp8", "umt5-xxl-fp8")
    with serve(hub) as endpoint:
        result = root.boot(HF_ENDPOINT=endpoint)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "models: variant fp8, 2 of 4 present" in result.stdout
    assert hub.count("GET", "/cdn/") == 2
    models = root.workspace / "steadydancer" / "models"
    assert (models / "vae" / "wanvideo" / "wan-vae-bf16.bin").stat().st_size == 100_000
    assert (models / "detection" / "onnx" / "yolov10m.bin").is_file()
    assert not (
        models / "diffusion_models" / "WanVideo" / "SteadyDancer" / "steadydancer-fp8.bin"
    ).exists()
    assert "hf_not_a_real_token_for_tests" not in result.stdout + result.stderr
    again = root.boot()  # no server now: everything is present and verified by its marker
    assert again.returncode == 0 and "4 of 4 present" in again.stdout


def test_a_file_nothing_can_check_is_named_and_never_fetched(root: Root, hub: Hub) -> None:
    """A plain-URL checkpoint with no sha256 in the catalog (as yolox-l is): the boot names it
    with the way out, fetches the rest, and asks that server nothing."""
    data = json.loads(root.catalog.read_text())
    data["files"]["pickle"] = {
        "url": "https://127.0.0.1:9/checkpoint.pth", "folder": "dwpose",
        "size": None, "sha256": None, "source": "test",
    }  # fmt: skip
    data["variants"]["fp8"]["files"].append("pickle")
    root.catalog.write_text(json.dumps(data))
    root.workspace.mkdir()
    root.bake("steadydancer-fp8", "umt5-xxl-fp8")
    with serve(hub) as endpoint:
        result = root.boot(HF_ENDPOINT=endpoint)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        "models: pickle (models/dwpose/checkpoint.pth) is not placed: no sha256 is recorded"
        in result.stdout
    )
    assert "STEADYDANCER_CATALOG" in result.stdout
    assert "models: variant fp8, 2 of 4 present" in result.stdout
    assert not (root.workspace / "steadydancer" / "models" / "dwpose").exists()


@pytest.mark.parametrize(
    ("working", "enable_flash", "chosen", "flag"),
    [
        ("xformers sdpa", "true", "xformers", []),
        ("sdpa", "true", "sdpa", ["--use-pytorch-cross-attention"]),
        ("flash_attn_2 sdpa", "false", "sdpa", ["--use-pytorch-cross-attention"]),
    ],
)
def test_the_attention_probe_falls_back_to_what_runs(
    root: Root, working: str, enable_flash: str, chosen: str, flag: list[str]
) -> None:
    root.bake(*ALL)
    result = root.boot(PROBE_OK=working, ENABLE_FLASH_ATTN=enable_flash)
    assert result.returncode == 0, result.stderr
    assert (root.path / "run" / "attention").read_text() == f"{chosen}\n"
    argv = root.recorded()["argv"]
    assert [arg for arg in argv if arg.startswith("--use-")] == flag
    assert (
        f"export STEADYDANCER_ATTENTION={chosen}"
        in Path(root.env["STEADYDANCER_ENV_FILE"]).read_text()
    )


def test_sigterm_reaches_comfyui_and_its_exit_code_is_kept(root: Root) -> None:
    root.bake(*ALL)
    key = public_key("user@test")
    env = {**root.env, "STAND_IN_WAIT": "1", "PUBLIC_KEY": key}
    process = start(env)
    deadline = time.monotonic() + 30
    while not root.record.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert root.recorded()["state"] == "running"
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert root.recorded()["signal"] == "SIGTERM"
    assert "signal SIGTERM: stopping ComfyUI" in output
    sshd_args = (root.path / "sshd.args").read_text().split()
    assert sshd_args[:2] == ["-D", "-e"]
    assert "PasswordAuthentication=no" in sshd_args
    assert "KbdInteractiveAuthentication=no" in sshd_args
    assert "PermitRootLogin=prohibit-password" in sshd_args
    keys = Path(env["STEADYDANCER_SSH_DIR"]) / "authorized_keys"
    assert keys.read_text() == f"{runpod.SECTION_START}\n{key}\n{runpod.SECTION_END}\n"
    assert oct(keys.stat().st_mode & 0o777) == "0o600"
    assert (root.path / "etc" / "ssh" / "ssh_host_ed25519_key").is_file()


def test_hooks_run_around_comfyui(root: Root) -> None:
    root.bake(*ALL)
    hooks = root.path / "hooks"
    hooks.mkdir()
    (hooks / "pre_start.sh").write_text(f"touch {root.path}/pre_started\n")
    (hooks / "post_start.sh").write_text(f"touch {root.path}/post_started\n")
    result = root.boot(PRE_START_MARK=str(root.path / "pre_started"))
    assert result.returncode == 0, result.stderr
    assert root.recorded()["pre_start_ran"] is True
    deadline = time.monotonic() + 10
    while not (root.path / "post_started").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (root.path / "post_started").exists()


def test_a_host_without_a_gpu_is_refused_unless_cpu_is_allowed(root: Root) -> None:
    root.bake(*ALL)
    no_gpu = {"PATH": "/usr/bin:/bin"}
    refused = root.boot(**no_gpu)
    assert refused.returncode == 1
    assert "cannot start: preflight: nvidia-smi is not in this container" in refused.stdout
    allowed = root.boot(**no_gpu, STEADYDANCER_ALLOW_CPU="true")
    assert allowed.returncode == 0, allowed.stdout
    assert root.recorded()["argv"][-1] == "--cpu"


def test_an_old_driver_is_named_with_both_versions(root: Root) -> None:
    banner = (
        (REPO / "tests" / "data" / "nvidia-smi-h200.txt")
        .read_text()
        .replace(
            "Driver Version: 580.159.04     CUDA Version: 13.0",
            "Driver Version: 535.183.01     CUDA Version: 12.2",
        )
    )
    env = nvidia_smi(root.path / "old", banner)
    result = root.boot(PATH=env["PATH"])
    assert result.returncode == 1
    assert "supports CUDA up to 12.2, but this image is built for CUDA 12.4" in result.stdout


def test_steadydancer_disabled_skips_models_and_a_bad_variant_is_named(root: Root) -> None:
    skipped = root.boot(ENABLE_STEADYDANCER="false")
    assert skipped.returncode == 0, skipped.stdout
    assert "models: ENABLE_STEADYDANCER=false, skipped" in skipped.stdout
    bad = root.boot(STEADYDANCER_VARIANT="fp32")
    assert bad.returncode == 1
    assert "cannot start: STEADYDANCER_VARIANT: unknown variant 'fp32'; choose one of: fp8" in (
        bad.stdout
    )


def test_check_mode_runs_only_preflight_and_the_probe(root: Root) -> None:
    result = root.boot("--check", PROBE_OK="sdpa")
    assert result.returncode == 0, result.stdout
    assert "attention: sdpa" in result.stdout and not root.record.exists()
    assert not (root.comfyui / "extra_model_paths.yaml").exists()


def test_the_readiness_command_answers_for_a_real_server(tmp_path: Path) -> None:
    from tests.comfy_cassette import load, replaying

    with replaying(load("comfyui-cpu-smoke.json")) as (url, _):
        port = url.rsplit(":", 1)[1]
        env = {**os.environ, "PYTHONPATH": str(REPO / "docker")}
        ready = subprocess.run(
            [sys.executable, "-m", "steadydancer.ready", "--port", port, "--nodes"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    assert ready.returncode == 0 and ready.stdout.strip() == "ready"
    down = subprocess.run(
        [sys.executable, "-m", "steadydancer.ready", "--port", "9"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert down.returncode == 1 and down.stderr.startswith("not ready:")


def wait_for(path: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert path.exists(), f"{path} never appeared"


def test_sigterm_during_the_boot_stops_it_before_comfyui(root: Root) -> None:
    root.bake(*ALL)
    hooks = root.path / "hooks"
    hooks.mkdir()
    (hooks / "pre_start.sh").write_text(f"touch {root.path}/in_pre_start\nsleep 30\n")
    process = start(root.env)
    wait_for(root.path / "in_pre_start")
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    assert time.monotonic() - started < 5
    assert process.returncode == 143, output
    assert "SIGTERM: stopped before ComfyUI started" in output
    assert not root.record.exists()


def test_a_failed_boot_keeps_sshd_up_until_the_pod_is_stopped(root: Root) -> None:
    one, two = public_key("a"), public_key("b")
    env = {**root.env, "STEADYDANCER_VARIANT": "fp32", "PUBLIC_KEY": f"{one}\n{two}"}
    process = start(env)
    wait_for(root.path / "sshd.args")
    time.sleep(1.5)
    assert process.poll() is None, "the entrypoint should wait on sshd"
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 1, output
    assert "cannot start: STEADYDANCER_VARIANT: unknown variant 'fp32'" in output
    assert "sshd stays up so the pod can be entered" in output
    keys = Path(env["STEADYDANCER_SSH_DIR"]) / "authorized_keys"
    assert keys.read_text() == f"{runpod.SECTION_START}\n{one}\n{two}\n{runpod.SECTION_END}\n"
    assert (root.path / "run" / "sshd").is_dir()


def test_an_sshd_that_cannot_start_is_reported_and_comfyui_still_starts(root: Root) -> None:
    root.bake(*ALL)
    broken = executable(
        root.path / "broken-sshd",
        "#!/bin/sh\necho 'Missing privilege separation directory' >&2\nexit 255\n",
    )
    result = root.boot(PUBLIC_KEY=public_key("a"), STEADYDANCER_SSHD=str(broken))
    assert result.returncode == 0, result.stdout
    assert "services: sshd exited at once with 255" in result.stdout
    assert root.recorded()["state"] == "running"


def test_comfyui_killed_by_a_signal_gives_the_shells_exit_code(root: Root) -> None:
    root.bake(*ALL)
    (root.comfyui / "main.py").write_text(
        "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n"
    )
    result = root.boot()
    assert result.returncode == 137, result.stdout
    assert "comfyui: exited with 137" in result.stdout


def test_hostile_public_key_lines_are_not_authorised_and_logged_by_number(root: Root) -> None:
    root.bake(*ALL)
    good = public_key("good")
    hostile = f'{good}\ncommand="sh -c evil" {public_key("x")}\nfrom="*" {public_key("y")}\ngarbage'
    result = root.boot(PUBLIC_KEY=hostile)
    assert result.returncode == 0, result.stdout
    keys = Path(root.env["STEADYDANCER_SSH_DIR"]) / "authorized_keys"
    assert keys.read_text() == f"{runpod.SECTION_START}\n{good}\n{runpod.SECTION_END}\n"
    assert "services: PUBLIC_KEY line 2 has options before the key type" in result.stdout
    assert "services: PUBLIC_KEY line 3 has options before the key type" in result.stdout
    assert "services: PUBLIC_KEY line 4 is not a public key of a known type" in result.stdout
    assert "evil" not in result.stdout
    assert "services: sshd started for 1 key(s), password logins off" in result.stdout


def test_a_public_key_with_nothing_acceptable_starts_no_sshd(root: Root) -> None:
    root.bake(*ALL)
    result = root.boot(PUBLIC_KEY="x" * 100_000)
    assert result.returncode == 0, result.stdout
    assert "PUBLIC_KEY is 100000 bytes, over the 16384 accepted" in result.stdout
    assert "services: PUBLIC_KEY holds no acceptable key; SSH not started" in result.stdout
    assert not (root.path / "sshd.args").exists()
    assert not (Path(root.env["STEADYDANCER_SSH_DIR"]) / "authorized_keys").exists()


def test_comfyui_and_the_hooks_never_see_the_hub_token(root: Root, hub: Hub) -> None:
    """The token fetches the missing models, then leaves the environment of every child."""
    root.bake("umt5-xxl-fp8", "wan-vae-bf16", "yolov10m")
    hooks = root.path / "hooks"
    hooks.mkdir()
    (hooks / "pre_start.sh").write_text(f"env > {root.path}/pre_start.env\n")
    with serve(hub) as url:
        result = root.boot(HF_ENDPOINT=url, RUNPOD_API_KEY="rpa_secret")
    assert result.returncode == 0, result.stdout
    assert "steadydancer-fp8.bin: verified" in result.stdout
    environment = root.recorded()["environment"]
    assert "HF_TOKEN" not in environment and "HF_ENDPOINT" in environment
    assert "HF_TOKEN" not in (root.path / "pre_start.env").read_text()
    exported = Path(root.env["STEADYDANCER_ENV_FILE"])
    assert "rpa_secret" not in exported.read_text()
    assert oct(exported.stat().st_mode & 0o777) == "0o600"


def test_every_bad_variable_is_named_before_the_volume_is_touched(root: Root) -> None:
    root.workspace.mkdir()
    result = root.boot(
        STEADYDANCER_VARIANT="fp32",
        STEADYDANCER_ATTENTION="sage",
        ENABLE_FLASH_ATTN="maybe",
        COMFYUI_PORT="80a",
        COMFYUI_ARGS='--preview-method "auto',
    )
    assert result.returncode == 1
    line = next(line for line in result.stdout.splitlines() if "cannot start:" in line)
    for expected in (
        "STEADYDANCER_VARIANT: unknown variant 'fp32'",
        "STEADYDANCER_ATTENTION: unknown branch 'sage'; accepted: flash_attn_2, xformers, sdpa",
        "ENABLE_FLASH_ATTN: 'maybe' is not true or false",
        "COMFYUI_PORT: '80a' is not a port number (1-65535)",
        "COMFYUI_ARGS: cannot be split like a shell would",
    ):
        assert expected in line
    assert list(root.workspace.iterdir()) == []
    assert "storage: start" not in result.stdout


def test_a_start_command_runs_instead_of_the_boot(root: Root) -> None:
    """RunPod's Container Start Command, or `docker run IMAGE bash`, arrives as arguments."""
    result = root.boot("sh", "-c", "echo started-by-hand; exit 3")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "running the given command instead of the boot: sh -c" in result.stdout
    assert "started-by-hand" in result.stdout
    assert not root.record.exists() and not root.workspace.exists()
    missing = root.boot("no-such-program")
    assert missing.returncode == 127
    assert "cannot run 'no-such-program': No such file or directory" in missing.stdout


def test_a_serverless_worker_starts_the_job_handler_beside_comfyui(root: Root) -> None:
    root.bake(*ALL)
    worker = executable(
        root.path / "worker",
        f'#!/bin/sh\necho "$COMFYUI_URL ${{HF_TOKEN:-no-token}}" > {root.path}/worker.ran\n',
    )
    result = root.boot(
        RUNPOD_WEBHOOK_GET_JOB="https://api.runpod.example/job-take/endpoint-1",
        STEADYDANCER_WORKER=str(worker),
    )
    assert result.returncode == 0, result.stdout
    assert "services: serverless worker started beside ComfyUI" in result.stdout
    wait_for(root.path / "worker.ran")
    assert (root.path / "worker.ran").read_text() == "http://127.0.0.1:8188 no-token\n"
    pod = root.boot()
    assert "serverless worker" not in pod.stdout


SECRETS = {
    "BUCKET_SECRET_ACCESS_KEY": "bucket-secret-value",
    "RUNPOD_API_KEY": "rpa-secret-value",
    "RUNPOD_AI_API_KEY": "rpai-secret-value",
    "DB_PASS": "db-secret-value",
    "GITHUB_PAT": "ghp-secret-value",
    "SERVICE_AUTH": "auth-secret-value",
    "GOOGLE_APPLICATION_CREDENTIALS_JSON": '{"private_key": "creds-secret-value"}',
}


def test_comfyui_hooks_and_ssh_sessions_get_only_the_listed_variables(root: Root) -> None:
    """Secrets under any name stay out of ComfyUI (every custom node), the hooks and SSH."""
    root.bake(*ALL)
    hooks = root.path / "hooks"
    hooks.mkdir()
    (hooks / "pre_start.sh").write_text(f"env > {root.path}/pre_start.env\n")
    worker = executable(root.path / "worker", f"#!/bin/sh\nenv > {root.path}/worker.env\n")
    result = root.boot(
        **SECRETS,
        RUNPOD_POD_ID="pod-1",
        RUNPOD_TCP_PORT_22="40022",
        MY_NODE_SETTING="visible",
        RUNPOD_WEBHOOK_GET_JOB="https://api.runpod.example/job-take/endpoint-1",
        STEADYDANCER_WORKER=str(worker),
    )
    assert result.returncode == 0, result.stdout
    seen = {
        "comfyui": "\n".join(root.recorded()["environment"]),
        "hook": (root.path / "pre_start.env").read_text(),
        "ssh": Path(root.env["STEADYDANCER_ENV_FILE"]).read_text(),
    }
    for who, text in seen.items():
        for name, value in SECRETS.items():
            assert name not in text and value not in text, (who, name)
        assert "MY_NODE_SETTING" not in text, who
    assert {"RUNPOD_POD_ID", "RUNPOD_TCP_PORT_22", "PATH"} <= set(root.recorded()["environment"])
    # The worker delivers to the bucket and speaks to RunPod: it keeps their keys, not the Hub's.
    wait_for(root.path / "worker.env")
    worker_env = (root.path / "worker.env").read_text()
    assert "bucket-secret-value" in worker_env and "rpai-secret-value" in worker_env
    assert "hf_not_a_real_token" not in worker_env


def test_a_named_variable_is_passed_on_request(root: Root) -> None:
    root.bake(*ALL)
    result = root.boot(
        MY_NODE_SETTING="visible",
        STEADYDANCER_PASS_ENV="RECORD PRE_START_MARK STAND_IN_WAIT MY_NODE_SETTING",
    )
    assert result.returncode == 0, result.stdout
    assert "MY_NODE_SETTING" in root.recorded()["environment"]


def test_comfyui_on_a_serverless_worker_listens_on_loopback_with_its_own_folders(
    root: Root,
) -> None:
    root.bake(*ALL)
    (root.path / "runpod-volume").mkdir()
    worker = executable(root.path / "worker", f"#!/bin/sh\nenv > {root.path}/worker.env\n")
    result = root.boot(
        RUNPOD_WEBHOOK_GET_JOB="https://api.runpod.example/job-take/endpoint-1",
        STEADYDANCER_WORKER=str(worker),
    )
    assert result.returncode == 0, result.stdout
    argv = root.recorded()["argv"]
    assert argv[argv.index("--listen") + 1] == "127.0.0.1"
    # The volume is shared by the endpoint's workers: a job's files stay on this container.
    assert argv[argv.index("--input-directory") + 1] == str(root.comfyui / "input")
    assert argv[argv.index("--output-directory") + 1] == str(root.comfyui / "output")
    wait_for(root.path / "worker.env")
    worker_env = (root.path / "worker.env").read_text()
    assert f"COMFYUI_INPUT_DIR={root.comfyui / 'input'}" in worker_env
    assert f"COMFYUI_OUTPUT_DIR={root.comfyui / 'output'}" in worker_env
    pod = root.boot()
    argv = root.recorded()["argv"]
    assert pod.returncode == 0 and argv[argv.index("--listen") + 1] == "0.0.0.0"


def test_a_key_taken_out_of_public_key_is_revoked_at_the_next_boot(root: Root) -> None:
    root.bake(*ALL)
    keys_file = Path(root.env["STEADYDANCER_SSH_DIR"]) / "authorized_keys"
    one, two, three = public_key("one"), public_key("two"), public_key("three")
    # What an earlier image left: PUBLIC_KEY's keys appended, no section.
    keys_file.parent.mkdir(parents=True)
    keys_file.write_text(f"{one}\n{two}\n")
    first = root.boot(PUBLIC_KEY=f"{two}\n{three}")
    assert "sshd started for 2 key(s)" in first.stdout
    assert keys_file.read_text().split("\n")[1:3] == [two, three]
    assert one not in keys_file.read_text()
    # A user's own line outside the section is kept; the section follows PUBLIC_KEY.
    mine = public_key("added-by-hand")
    keys_file.write_text(f"{mine}\n{keys_file.read_text()}")
    second = root.boot(PUBLIC_KEY=three)
    assert "sshd started for 1 key(s)" in second.stdout
    assert keys_file.read_text() == (
        f"{mine}\n{runpod.SECTION_START}\n{three}\n{runpod.SECTION_END}\n"
    )
    root.boot()
    assert keys_file.read_text() == f"{mine}\n"


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85", "\x1c", "\u200e", "\r"])
def test_a_line_separator_in_a_key_comment_is_refused(root: Root, separator: str) -> None:
    """Python's splitlines() breaks on these; a key smuggling one is never written."""
    root.bake(*ALL)
    good = public_key("good")
    smuggled = public_key(f'me{separator}command="sh -c evil" ssh-ed25519 AAAA')
    result = root.boot(PUBLIC_KEY=f"{good}\n{smuggled}")
    assert "PUBLIC_KEY line 2 holds a control or line-separator character" in result.stdout
    keys_file = Path(root.env["STEADYDANCER_SSH_DIR"]) / "authorized_keys"
    assert "evil" not in keys_file.read_text()
    assert "sshd started for 1 key(s)" in result.stdout
    again = root.boot(PUBLIC_KEY=f"{good}\n{smuggled}")
    assert keys_file.read_text().count("\n") == 3 and "evil" not in keys_file.read_text()
    assert "sshd started for 1 key(s)" in again.stdout
