"""RunPod's conventions: SSH when PUBLIC_KEY is set, the environment for SSH sessions, start hooks.

Everything here is a no-op on a host that does not use it (no PUBLIC_KEY, no
hooks), so the same image boots the same way under Docker or compose.
"""

from __future__ import annotations

import base64
import binascii
import os
import shlex
import signal
import struct
import subprocess
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from steadydancer.boot import environment

PER_PROCESS = ("HOME", "PWD", "OLDPWD", "SHLVL", "_", "TERM", "HOSTNAME")
"""Variables every shell sets for itself: an SSH session keeps its own."""
KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)
MAX_PUBLIC_KEY_BYTES = 16 * 1024
"""Enough for a few dozen keys; more is not a list of keys."""
SSHD_OPTIONS = (
    "PasswordAuthentication=no",
    "KbdInteractiveAuthentication=no",
    "PermitEmptyPasswords=no",
    "PubkeyAuthentication=yes",
    "PermitRootLogin=prohibit-password",
)
"""Stated on sshd's command line, whatever the base image's sshd_config says."""


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
    """`export` lines for SSH sessions: the names boot.environment passes, nothing else."""
    lines = [
        f"export {name}={shlex.quote(value)}"
        for name, value in sorted(environment.for_children(env).items())
        if name not in PER_PROCESS and name.isidentifier()
    ]
    return "\n".join(lines) + "\n"


def export_environment(paths: Paths, env: Mapping[str, str]) -> None:
    paths.environment.parent.mkdir(parents=True, exist_ok=True)
    # Only root, whose SSH sessions source it, reads it.
    handle = os.open(paths.environment, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(handle, "w") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(exported(env))
    source_line = f"source {paths.environment}"
    rc = paths.bashrc.read_text() if paths.bashrc.is_file() else ""
    if source_line not in rc.splitlines():
        paths.bashrc.parent.mkdir(parents=True, exist_ok=True)
        paths.bashrc.write_text(
            rc + ("" if rc.endswith("\n") or not rc else "\n") + source_line + "\n"
        )


@dataclass
class PublicKeys:
    """The acceptable lines of PUBLIC_KEY, and why each other line was refused."""

    keys: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


def breaks_lines(char: str) -> bool:
    """A control, format or separator character: some reader of the file splits on it
    (Python's splitlines() on U+2028, U+0085, U+001C...), so none is written."""
    return unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp", "Cs")


def _key_problem(line: str) -> str | None:
    """Why a line is not a plain OpenSSH public key (type, base64 body, optional comment)."""
    if any(breaks_lines(char) for char in line):
        return "holds a control or line-separator character"
    fields = line.split(" ", 2)
    kind = fields[0]
    if kind not in KEY_TYPES:
        if any(known in line for known in KEY_TYPES):
            return "has options before the key type (command=, from=, ...), which are not accepted"
        return f"is not a public key of a known type ({', '.join(KEY_TYPES)})"
    if len(fields) < 2:
        return f"has a {kind} type but no key"
    try:
        blob = base64.b64decode(fields[1], validate=True)
        (length,) = struct.unpack(">I", blob[:4])
    except (binascii.Error, struct.error):
        return f"has a {kind} type but its key is not base64 of an SSH key"
    if blob[4 : 4 + length] != kind.encode():
        return f"has a {kind} type but its key is of another type"
    return None


def parse_public_keys(value: str) -> PublicKeys:
    """Each line of PUBLIC_KEY checked on its own; refusals name the line, never echo it."""
    parsed = PublicKeys()
    if len(value.encode()) > MAX_PUBLIC_KEY_BYTES:
        parsed.refused.append(
            f"PUBLIC_KEY is {len(value.encode())} bytes, over the {MAX_PUBLIC_KEY_BYTES} accepted: "
            "give one public key per line"
        )
        return parsed
    for number, raw in enumerate(value.split("\n"), start=1):
        line = raw.strip(" \r")
        if not line:
            continue
        problem = _key_problem(line)
        if problem:
            parsed.refused.append(f"PUBLIC_KEY line {number} {problem}: it was not authorised")
        elif line not in parsed.keys:
            parsed.keys.append(line)
    return parsed


SECTION_START = "# >>> steadydancer: the keys of PUBLIC_KEY, rewritten at every boot >>>"
SECTION_END = "# <<< steadydancer <<<"


def split_section(text: str) -> tuple[list[str], list[str]] | None:
    """(the user's lines, the section's keys) of an authorized_keys text; None without a
    section. Split on "\\n" only, as sshd reads the file."""
    lines = text.split("\n")
    if SECTION_START not in lines:
        return None
    start = lines.index(SECTION_START)
    if SECTION_END not in lines[start:]:
        return None
    end = lines.index(SECTION_END, start)
    own = [line for line in lines[:start] + lines[end + 1 :] if line.strip()]
    return own, [line for line in lines[start + 1 : end] if line.strip()]


def authorized_keys(existing: str | None, keys: list[str]) -> str:
    """authorized_keys with the image's section holding exactly `keys`.

    Lines outside the section are a user's own and kept. A file without the section was
    written by an earlier image, which appended PUBLIC_KEY's keys to it, so all of it is
    the image's and replaced: a key taken out of PUBLIC_KEY is revoked at the next boot.
    """
    parts = split_section(existing or "")
    own = parts[0] if parts else []
    section = [SECTION_START, *keys, SECTION_END] if keys else []
    return "\n".join([*own, *section]) + "\n" if own or section else ""


def write_authorized_keys(paths: Paths, keys: list[str]) -> int:
    """Rewrite the image's section of authorized_keys; returns the keys the file now holds
    in it, read back."""
    paths.ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(paths.ssh_dir, 0o700)
    path = paths.ssh_dir / "authorized_keys"
    existing = path.read_text() if path.is_file() else None
    if existing is None and not keys:
        return 0
    partial = path.with_name(".authorized_keys.partial")
    handle = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(handle, "w") as out:
        out.write(authorized_keys(existing, keys))
    os.replace(partial, path)
    parts = split_section(path.read_text())
    return len(parts[1]) if parts else 0


def start_sshd(paths: Paths) -> subprocess.Popen[bytes] | int:
    """Make this container's own host keys and start sshd (the keys are written before).

    Returns the running sshd, or its exit code when it stopped at once.
    """
    # The image ships no host keys (each container would share them): make them now.
    (paths.ssh_root / "etc" / "ssh").mkdir(parents=True, exist_ok=True)
    subprocess.run(["ssh-keygen", "-A", "-f", str(paths.ssh_root)], check=True, capture_output=True)
    # sshd's privilege separation folder; Ubuntu makes it only when the service starts.
    (paths.ssh_root / "run" / "sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
    options = [arg for option in SSHD_OPTIONS for arg in ("-o", option)]
    sshd = subprocess.Popen([paths.sshd, "-D", "-e", *options], start_new_session=True)
    try:
        return sshd.wait(timeout=1)  # exited at once: its exit code
    except subprocess.TimeoutExpired:
        return sshd


def hook(paths: Paths, name: str) -> Path | None:
    script = paths.hooks / name
    return script if script.is_file() else None


def start_hook(script: Path, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """A hook in a process group of its own, so stopping it stops what it started too; it
    sees the names boot.environment passes."""
    return subprocess.Popen(
        ["bash", str(script)], start_new_session=True, env=environment.for_children(env)
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    """End a child the entrypoint started in its own process group, and the group with it."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        process.terminate()
