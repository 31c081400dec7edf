"""The test pod: the image's runtime layer in a real container, on a Debian base made here.

No registry can be reached, so the base is made with debootstrap from Debian's packages
(cached as a tarball and imported with `docker import`), and the pod image is built on it with
exactly the runtime layer's files, environment, entrypoint, working folder, port and labels,
read from the build's chain rather than re-typed.

How it differs from the real image, and so what these tests cannot show: Debian 12 instead of
the CUDA Ubuntu 22.04 base; Debian's Python 3.11 with only the model fetcher's packages from the
lock (huggingface_hub and what it needs, at the lock's versions and hashes) where the image has
the whole venv (the boot, SSH and the readiness check need only the standard library); no CUDA
and no GPU (the tests set
STEADYDANCER_ALLOW_CPU); no models (ENABLE_STEADYDANCER=false); and ComfyUI is the recorded
answers of a real ComfyUI to the smoke client (tests/pod/comfyui_main.py), since the pinned
ComfyUI can only be fetched from GitHub.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from ci import image, paths, pins
from ci import lock as locks
from ci.options import BuildOptions
from tests.conftest import PLANS
from tests.dagger_offline import REPO, ops

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = ("python3", "python-is-python3", "tini", "openssh-server", "procps", "bash")
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "steadydancer-tests"
STAND_IN = REPO / "tests" / "pod"
SITE = "/opt/test-site-packages"
"""The fetcher's packages, installed for the pod's Python from the lock."""
CPU = ["-e", "STEADYDANCER_ALLOW_CPU=true", "-e", "ENABLE_STEADYDANCER=false"]
"""A pod on a machine without a GPU, and without models."""


def fetcher_packages(target: Path) -> None:
    """huggingface_hub and what it needs, at the lock's versions and hashes, for Python 3.11."""
    lock = locks.load(pins.DEFAULT_PROFILE)
    assert lock is not None
    requirements = target.parent / "fetcher-requirements.txt"
    requirements.write_text(lock.subset(["huggingface_hub"]))
    uv = locks.find_uv()
    assert uv is not None
    subprocess.run(
        [
            uv, "pip", "install", "--quiet", "--require-hashes", "--no-deps",
            "--target", str(target), "--python-version", "3.11",
            "--python-platform", locks.PLATFORM, "-r", str(requirements),
        ],
        check=True,
        timeout=600,
    )  # fmt: skip
    requirements.unlink()


def docker_unavailable() -> str | None:
    """Why the container tests cannot run here, or None when a Docker engine answers."""
    if shutil.which("docker") is None:
        return "no docker command on this machine"
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, check=False)
    if info.returncode != 0:
        return f"the Docker engine does not answer: {info.stderr.strip()[:200]}"
    if shutil.which("debootstrap") is None:
        return "debootstrap is not installed (apt-get install debootstrap)"
    return None


def docker(
    *args: str, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=check, timeout=timeout
    )


def has_image(tag: str) -> bool:
    return docker("image", "inspect", tag, check=False).returncode == 0


def base_image() -> str:
    """A Debian base with the image's system packages that Debian has, made once and cached."""
    digest = hashlib.sha256(f"{SUITE} {' '.join(BASE_PACKAGES)}".encode()).hexdigest()[:12]
    tag = f"steadydancer-test-base:{digest}"
    if has_image(tag):
        return tag
    tarball = CACHE / f"debian-{SUITE}-{digest}.tar"
    if not tarball.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="steadydancer-rootfs-") as root:
            subprocess.run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    f"--include={','.join(BASE_PACKAGES)}",
                    SUITE,
                    root,
                    MIRROR,
                ],
                check=True,
                capture_output=True,
                timeout=1200,
            )
            partial = tarball.with_suffix(".partial")
            subprocess.run(["tar", "-C", root, "-cf", str(partial), "."], check=True)
            partial.rename(tarball)
    subprocess.run(["docker", "import", str(tarball), tag], check=True, capture_output=True)
    return tag


def runtime_spec() -> dict[str, Any]:
    """What the runtime layer sets, read from the build's chain."""
    ctr = image.image(BuildOptions.parse("fp8", pins.DEFAULT_PROFILE, "auto"), PLANS["xformers"])
    chain = ops(ctr)
    start = next(
        i for i, (name, args) in enumerate(chain)
        if name == "withDirectory" and args["path"] == paths.APP_DIR
    )  # fmt: skip
    runtime = chain[start:]
    return {
        "env": {a["name"]: a["value"] for n, a in runtime if n == "withEnvVariable"},
        "labels": {a["name"]: a["value"] for n, a in runtime if n == "withLabel"},
        "entrypoint": next(a["args"] for n, a in runtime if n == "withEntrypoint"),
        "workdir": next(a["path"] for n, a in runtime if n == "withWorkdir"),
        "ports": [a["port"] for n, a in runtime if n == "withExposedPort"],
        "directories": [a["path"] for n, a in runtime if n == "withDirectory"],
    }


def pod_image() -> str:
    """The test pod image: the base, this repository's docker/ and workflows/ where the runtime
    layer puts them, the pin files, the ComfyUI stand-in, and the layer's settings."""
    spec = runtime_spec()
    assert spec["directories"] == [paths.APP_DIR, paths.WORKFLOWS_DIR, paths.PINS_DIR]
    base = base_image()
    with tempfile.TemporaryDirectory(prefix="steadydancer-pod-") as tmp:
        context = Path(tmp)
        shutil.copytree(
            REPO / "docker", context / "app", ignore=shutil.ignore_patterns("__pycache__")
        )
        shutil.copytree(REPO / "workflows", context / "workflows")
        (context / "pins").mkdir()
        profile = pins.PROFILES[pins.DEFAULT_PROFILE]
        (context / "pins" / "constraints.txt").write_text(pins.constraints_text(profile))
        (context / "pins" / "overrides.txt").write_text(pins.overrides_text())
        comfy = context / "comfyui"
        (comfy / "data").mkdir(parents=True)
        shutil.copy(STAND_IN / "comfyui_main.py", comfy / "main.py")
        shutil.copy(REPO / "tests" / "comfy_cassette.py", comfy / "comfy_cassette.py")
        for name in ("comfyui-cpu-smoke.json", "object_info.json"):
            shutil.copy(REPO / "tests" / "data" / name, comfy / "data" / name)
        fetcher_packages(context / "site")
        lines = [
            f"FROM {base}",
            f"COPY app/ {paths.APP_DIR}/",
            f"COPY workflows/ {paths.WORKFLOWS_DIR}/",
            f"COPY pins/ {paths.PINS_DIR}/",
            f"COPY comfyui/ {paths.COMFYUI_DIR}/",
            f"COPY site/ {SITE}/",
            *(f"ENV {name}={json.dumps(value)}" for name, value in spec["env"].items()),
            f"ENV PYTHONPATH={json.dumps(spec['env']['PYTHONPATH'] + ':' + SITE)}",
            *(f"LABEL {name}={json.dumps(value)}" for name, value in spec["labels"].items()),
            *(f"EXPOSE {port}" for port in spec["ports"]),
            f"WORKDIR {spec['workdir']}",
            f"ENTRYPOINT {json.dumps(spec['entrypoint'])}",
        ]
        (context / "Dockerfile").write_text("\n".join(lines) + "\n")
        digest = hashlib.sha256()
        for path in sorted(context.rglob("*")):
            if path.is_file():
                digest.update(str(path.relative_to(context)).encode() + path.read_bytes())
        tag = f"steadydancer-test-pod:{digest.hexdigest()[:12]}"
        if not has_image(tag):
            docker("build", "-q", "-t", tag, str(context), timeout=900)
    return tag


def compose_healthcheck() -> list[str]:
    """The healthcheck the shipped compose file gives the image."""
    compose = yaml.safe_load((REPO / "docker" / "docker-compose.yml").read_text())
    test = compose["services"]["steadydancer"]["healthcheck"]["test"]
    assert test[0] == "CMD"
    return list(test[1:])


def wait(name: str, predicate: str, seconds: float = 60) -> dict[str, object]:
    """Wait until `docker inspect`'s State matches: "healthy" or "exited"."""
    deadline = time.monotonic() + seconds
    while True:
        state = json.loads(docker("inspect", "--format", "{{json .State}}", name).stdout)
        health = (state.get("Health") or {}).get("Status")
        if (predicate == "healthy" and health == "healthy") or (
            predicate == "exited" and state["Status"] == "exited"
        ):
            return dict(state)
        if time.monotonic() > deadline:
            logs = docker("logs", name, check=False)
            raise AssertionError(f"{name} not {predicate}: {state}\n{logs.stdout}{logs.stderr}")
        time.sleep(0.5)


def host_port(name: str, port: int) -> int:
    return int(docker("port", name, f"{port}/tcp").stdout.split(":")[-1])
