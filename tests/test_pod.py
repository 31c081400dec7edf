"""The pod in a real container: the runtime layer booted by a Docker engine (tests/pod_image.py).

Each test runs the test pod image with `docker run` and looks at it from the outside: the
published port, `docker inspect`, `docker logs`, `docker exec`, an SSH client. What the pod
image stands in for (the CUDA base, the GPU, ComfyUI itself) is listed in tests/pod_image.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from steadydancer import smoke

from tests import pod_image
from tests.dagger_offline import REPO
from tests.hub_server import Hub, serve
from tests.pod_image import CPU, compose_healthcheck, docker, host_port, wait

# The pod image is made from Debian's and PyPI's packages on its first run.
pytestmark = [pytest.mark.docker, pytest.mark.network]


@pytest.fixture(scope="module")
def pod() -> str:
    reason = pod_image.docker_unavailable()
    if reason:
        pytest.skip(reason)
    return pod_image.pod_image()


@pytest.fixture
def names() -> Iterator[list[str]]:
    """Containers and volumes a test makes, removed afterwards whatever happened."""
    made: list[str] = []
    yield made
    for name in made:  # containers first: a volume in use cannot be removed
        docker("rm", "-f", "-v", name, check=False)
    for name in made:
        docker("volume", "rm", "-f", name, check=False)


def start(pod: str, names: list[str], *args: str) -> str:
    name = f"steadydancer-test-{uuid.uuid4().hex[:8]}"
    names.append(name)
    docker(
        "run", "-d", "--name", name,
        "--health-cmd", " ".join(compose_healthcheck()), "--health-interval", "1s",
        *args, pod,
    )  # fmt: skip
    return name


def volume_tree(pod: str, volume: str) -> str:
    """Every path on the volume with its modification time and size."""
    return docker(
        "run", "--rm", "-v", f"{volume}:/workspace", "--entrypoint", "find", pod,
        "/workspace", "-printf", "%p %T@ %s\\n",
    ).stdout  # fmt: skip


def test_a_first_boot_lays_out_the_volume_serves_and_is_healthy(
    pod: str, names: list[str], tmp_path: Path
) -> None:
    volume = f"steadydancer-test-volume-{uuid.uuid4().hex[:8]}"
    names.append(volume)
    name = start(pod, names, "-p", "127.0.0.1::8188", "-v", f"{volume}:/workspace", *CPU)
    wait(name, "healthy")
    url = f"http://127.0.0.1:{host_port(name, 8188)}"
    report = smoke.run(url, "cpu-smoke", "generate", "fp8", None, [], tmp_path, 30, 60)
    assert report.status == "passed" and report.outputs[0]["frames"] == 8
    listed = docker("exec", name, "ls", "/workspace/steadydancer").stdout.split()
    assert listed == ["input", "models", "output", "user"]
    argv = json.loads(docker("exec", name, "cat", "/tmp/comfyui-argv.json").stdout)
    assert argv[argv.index("--port") + 1] == "8188" and "--cpu" in argv
    assert "--input-directory" in argv and "/workspace/steadydancer/input" in argv
    docker("stop", name)
    first = volume_tree(pod, volume)
    docker("start", name)
    wait(name, "healthy")
    docker("stop", name)
    assert volume_tree(pod, volume) == first  # a second boot on the same volume changes nothing


def test_docker_stop_reaches_comfyui_through_tini(pod: str, names: list[str]) -> None:
    name = start(pod, names, *CPU)
    wait(name, "healthy")
    started = time.monotonic()
    docker("stop", "-t", "20", name)
    assert time.monotonic() - started < 15
    state = wait(name, "exited")
    assert state["ExitCode"] == 0
    logs = docker("logs", name).stdout
    assert "signal SIGTERM: stopping ComfyUI" in logs
    assert "stand-in ComfyUI: stopped by SIGTERM" in logs
    assert "comfyui: exited with 0" in logs


def test_ssh_takes_the_key_and_refuses_passwords(
    pod: str, names: list[str], tmp_path: Path
) -> None:
    key = tmp_path / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    public = key.with_suffix(".pub").read_text().strip()
    name = start(pod, names, "-p", "127.0.0.1::22", "-e", f"PUBLIC_KEY={public}", *CPU)
    wait(name, "healthy")
    port = str(host_port(name, 22))
    options = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
    options += ["-o", "ConnectTimeout=10", "-p", port]
    logged_in = subprocess.run(
        ["ssh", *options, "-o", "BatchMode=yes", "-i", str(key), "root@127.0.0.1", "echo in"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert logged_in.returncode == 0 and logged_in.stdout.strip() == "in", logged_in.stderr
    password = subprocess.run(
        [
            *("ssh", *options, "-o", "BatchMode=yes", "-o", "PubkeyAuthentication=no"),
            *("-o", "PreferredAuthentications=password,keyboard-interactive", "root@127.0.0.1"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert password.returncode != 0 and "Permission denied" in password.stderr
    environment = docker("exec", name, "stat", "-c", "%a", "/etc/rp_environment").stdout
    assert environment.strip() == "600"


def test_without_a_public_key_no_sshd_runs(pod: str, names: list[str]) -> None:
    name = start(pod, names, *CPU)
    wait(name, "healthy")
    assert docker("exec", name, "pgrep", "-x", "sshd", check=False).returncode == 1


def test_a_read_only_volume_stops_the_boot_before_anything_is_written(
    pod: str, names: list[str]
) -> None:
    volume = f"steadydancer-test-volume-{uuid.uuid4().hex[:8]}"
    names.append(volume)
    name = start(pod, names, "-v", f"{volume}:/workspace:ro", *CPU)
    state = wait(name, "exited")
    assert state["ExitCode"] == 1
    assert "cannot start: storage:" in docker("logs", name).stdout


def test_a_start_command_runs_instead_of_the_boot(pod: str) -> None:
    result = docker("run", "--rm", pod, "bash", "-c", "echo started-by-hand; exit 3", check=False)
    assert result.returncode == 3
    assert "started-by-hand" in result.stdout
    assert "running the given command instead of the boot: bash -c" in result.stdout


def compose_command() -> list[str] | None:
    """The machine's Compose tool: the docker plugin, else docker-compose."""
    if docker("compose", "version", check=False).returncode == 0:
        return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


def test_the_compose_file_is_valid_for_the_machines_compose_tool(pod: str) -> None:
    compose = compose_command()
    if compose is None:
        pytest.skip("no Compose tool on this machine")
    result = subprocess.run(
        [*compose, "-f", str(REPO / "docker" / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "STEADYDANCER_IMAGE": pod},
    )
    assert result.returncode == 0, result.stderr


def compose_for_this_machine(compose: list[str], directory: Path) -> list[str]:
    """The shipped compose file, less its GPU reservation, as `-f` arguments.

    Compose v2 drops the reservation with an override file (`!reset`); docker-compose 1.x
    appends override lists and has no `!reset`, so there a copy is made with only the
    reservation removed. Either way the shipped file is left as users get it.
    """
    shipped = REPO / "docker" / "docker-compose.yml"
    settings = {
        "environment": {"STEADYDANCER_ALLOW_CPU": "true"},
        "healthcheck": {"interval": "1s", "start_period": "0s"},
    }
    if compose[0] == "docker":
        override = directory / "cpu.override.yml"
        service = yaml.safe_dump({"services": {"steadydancer": settings}})
        override.write_text(service + "    deploy: !reset {}\n")
        return ["-f", str(shipped), "-f", str(override)]
    config = yaml.safe_load(shipped.read_text())
    service = config["services"]["steadydancer"]
    devices = service["deploy"]["resources"]["reservations"].pop("devices")
    assert devices[0]["capabilities"] == ["gpu"]
    # A name without a value is passed from compose's own environment when set there.
    service["environment"] = {**dict.fromkeys(service["environment"]), **settings["environment"]}
    service["healthcheck"].update(settings["healthcheck"])
    copy = directory / "docker-compose.cpu.yml"
    copy.write_text(yaml.safe_dump(config))
    return ["-f", str(copy)]


def test_compose_brings_the_pod_up_to_healthy(pod: str, tmp_path: Path) -> None:
    """`up` with the shipped service (its volume, port, variables and healthcheck) on CPU."""
    compose = compose_command()
    if compose is None:
        pytest.skip("no Compose tool on this machine")
    project = f"steadydancer-test-{uuid.uuid4().hex[:8]}"
    files = compose_for_this_machine(compose, tmp_path)
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "STEADYDANCER_IMAGE": pod,
        "ENABLE_STEADYDANCER": "false",
    }
    command = [*compose, "-p", project, *files]
    try:
        up = subprocess.run(
            [*command, "up", "-d"], capture_output=True, text=True, check=False, env=env
        )
        assert up.returncode == 0, up.stderr
        ids = subprocess.run(
            [*command, "ps", "-q"], capture_output=True, text=True, check=True, env=env
        ).stdout.split()
        assert len(ids) == 1
        wait(ids[0], "healthy")
        mounts = json.loads(docker("inspect", "--format", "{{json .Mounts}}", ids[0]).stdout)
        assert [(m["Name"], m["Destination"]) for m in mounts] == [
            (f"{project}_workspace", "/workspace")
        ]
        assert host_port(ids[0], 8188) == 8188
        assert "--output-directory /workspace/steadydancer/output" in docker("logs", ids[0]).stdout
    finally:
        subprocess.run(
            [*command, "down", "-v", "--timeout", "15"], capture_output=True, check=False, env=env
        )


def test_a_full_volume_stops_the_boot_naming_it(pod: str, names: list[str]) -> None:
    """A 1 MiB tmpfs at /workspace: under the 64 MiB the boot needs free."""
    mount = "type=tmpfs,destination=/workspace,tmpfs-size=1m"
    name = start(pod, names, "--mount", mount, *CPU)
    state = wait(name, "exited")
    assert state["ExitCode"] == 1
    logs = docker("logs", name).stdout
    assert "cannot start: storage:" in logs and "is full" in logs


def test_without_a_volume_everything_stays_in_the_container(pod: str, names: list[str]) -> None:
    name = start(pod, names, *CPU)
    wait(name, "healthy")
    logs = docker("logs", name).stdout
    assert "storage: no volume mounted; models, inputs and outputs stay in the container" in logs
    argv = json.loads(docker("exec", name, "cat", "/tmp/comfyui-argv.json").stdout)
    assert not any(arg.startswith("/workspace") for arg in argv)


def test_sigterm_during_the_model_step_keeps_the_partial_and_the_next_boot_resumes(
    pod: str, names: list[str], tmp_path: Path
) -> None:
    """The tests' Hub server on the host's loopback (the pod on the host's network), one 40 MB
    file held to 4 MB/s: the pod is stopped mid-download, then started again."""
    hub = Hub(rate=4_000_000)
    content = os.urandom(40_000_000)
    digest = hub.add("test/models", "big.bin", content)
    catalog_file = tmp_path / "catalog.json"
    catalog_file.write_text(
        json.dumps(
            {
                "default_variant": "fp8",
                "files": {
                    "big": {
                        "repo": "test/models", "path": "big.bin", "revision": "main",
                        "folder": "diffusion_models", "size": len(content), "sha256": digest,
                        "source": "test",
                    }
                },
                "variants": {"fp8": {"description": "test", "files": ["big"]}},
            }
        )
    )  # fmt: skip
    volume = f"steadydancer-test-volume-{uuid.uuid4().hex[:8]}"
    names.append(volume)
    with serve(hub) as endpoint:
        name = start(
            pod, names, "--network", "host", "-v", f"{volume}:/workspace",
            "-v", f"{catalog_file}:/catalog.json:ro", "-e", "STEADYDANCER_CATALOG=/catalog.json",
            "-e", f"HF_ENDPOINT={endpoint}", "-e", "STEADYDANCER_ALLOW_CPU=true",
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while hub.sent.get("big.bin", 0) < 8_000_000 and time.monotonic() < deadline:
            time.sleep(0.2)
        docker("kill", "-s", "TERM", name)
        state = wait(name, "exited")
        assert state["ExitCode"] == 143
        assert "SIGTERM: stopped before ComfyUI started" in docker("logs", name).stdout
        kept = docker(
            "run", "--rm", "-v", f"{volume}:/workspace", "--entrypoint", "stat", pod,
            "-c", "%s", "/workspace/steadydancer/models/diffusion_models/.big.bin.partial",
        ).stdout  # fmt: skip
        assert 0 < int(kept) < len(content)
        docker("start", name)
        wait(name, "healthy", seconds=120)
    ranges = [h.get("range") for m, p, h in hub.requests if p.startswith("/cdn/")]
    assert ranges[0] is None and ranges[-1] is not None  # the second boot resumed
    assert int(ranges[-1].removeprefix("bytes=").rstrip("-")) >= int(kept) - (1 << 20)
    landed = docker(
        "run", "--rm", "-v", f"{volume}:/workspace", "--entrypoint", "sha256sum", pod,
        "/workspace/steadydancer/models/diffusion_models/big.bin",
    ).stdout  # fmt: skip
    assert landed.split()[0] == digest
