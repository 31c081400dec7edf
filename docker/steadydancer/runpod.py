"""RunPod's conventions: SSH when PUBLIC_KEY is set, the environment for SSH sessions, start hooks.

Everything here is a no-op on a host that does not use it (no PUBLIC_KEY, no
hooks), so the same image boots the same way under Docker or compose.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

EXPORTED_PREFIXES = ("RUNPOD_", "STEADYDANCER_", "COMFYUI_", "CUDA_", "NVIDIA_")
EXPORTED_NAMES = (
    "PATH",
    "VIRTUAL_ENV",
    "PYTHONPATH",
    "PIP_CONSTRAINT",
    "UV_CONSTRAINT",
    "UV_OVERRIDE",
)
NEVER_EXPORTED = ("HF_TOKEN", "PUBLIC_KEY")


@dataclass(frozen=True)
class Paths:
    ssh_dir: Path = Path("/root/.ssh")
    ssh_root: Path = Path("/")
    """Host keys go to ssh_root/etc/ssh."""
    sshd: str = "/usr/sbin/sshd"
    environment: Path = Path("/etc/rp_environment")
    bashrc: Path = Path("/root/.bashrc")
    hooks: Path = Path("/")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Paths:
        """Paths can be moved by STEADYDANCER_*_PATH variables (the tests use a temporary root)."""
        default = cls()
        return cls(
            ssh_dir=Path(env.get("STEADYDANCER_SSH_DIR", default.ssh_dir)),
            ssh_root=Path(env.get("STEADYDANCER_SSH_ROOT", default.ssh_root)),
            sshd=env.get("STEADYDANCER_SSHD", default.sshd),
            environment=Path(env.get("STEADYDANCER_ENV_FILE", default.environment)),
            bashrc=Path(env.get("STEADYDANCER_BASHRC", default.bashrc)),
            hooks=Path(env.get("STEADYDANCER_HOOKS_DIR", default.hooks)),
        )


def exported(env: Mapping[str, str]) -> str:
    """`export` lines for SSH sessions: the pod's and the image's settings, never a secret."""
    lines = [
        f"export {name}={shlex.quote(value)}"
        for name, value in sorted(env.items())
        if name not in NEVER_EXPORTED
        and (name in EXPORTED_NAMES or name.startswith(EXPORTED_PREFIXES))
    ]
    return "\n".join(lines) + "\n"


def export_environment(paths: Paths, env: Mapping[str, str]) -> None:
    paths.environment.parent.mkdir(parents=True, exist_ok=True)
    paths.environment.write_text(exported(env))
    source_line = f"source {paths.environment}"
    rc = paths.bashrc.read_text() if paths.bashrc.is_file() else ""
    if source_line not in rc.splitlines():
        paths.bashrc.parent.mkdir(parents=True, exist_ok=True)
        paths.bashrc.write_text(
            rc + ("" if rc.endswith("\n") or not rc else "\n") + source_line + "\n"
        )


def start_sshd(paths: Paths, public_key: str) -> subprocess.Popen[bytes] | int:
    """Authorise the keys, make this container's own host keys, start sshd.

    Returns the running sshd, or its exit code when it stopped at once.
    """
    paths.ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(paths.ssh_dir, 0o700)
    authorized = paths.ssh_dir / "authorized_keys"
    keys = authorized.read_text().splitlines() if authorized.is_file() else []
    new = [
        key.strip() for key in public_key.splitlines() if key.strip() and key.strip() not in keys
    ]
    if new or not authorized.is_file():
        authorized.write_text("\n".join([*keys, *new]) + "\n")
    os.chmod(authorized, 0o600)
    # The image ships no host keys (each container would share them): make them now.
    (paths.ssh_root / "etc" / "ssh").mkdir(parents=True, exist_ok=True)
    subprocess.run(["ssh-keygen", "-A", "-f", str(paths.ssh_root)], check=True, capture_output=True)
    # sshd's privilege separation folder; Ubuntu makes it only when the service starts.
    (paths.ssh_root / "run" / "sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
    sshd = subprocess.Popen([paths.sshd, "-D", "-e"], start_new_session=True)
    try:
        return sshd.wait(timeout=1)  # exited at once: its exit code
    except subprocess.TimeoutExpired:
        return sshd


def hook(paths: Paths, name: str) -> Path | None:
    script = paths.hooks / name
    return script if script.is_file() else None


def start_hook(script: Path) -> subprocess.Popen[bytes]:
    """A hook in a process group of its own, so stopping it stops what it started too."""
    return subprocess.Popen(["bash", str(script)], start_new_session=True)


def stop(process: subprocess.Popen[bytes]) -> None:
    """End a child the entrypoint started in its own process group, and the group with it."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        process.terminate()
