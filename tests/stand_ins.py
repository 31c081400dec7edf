"""Stand-ins for what only a GPU host has: nvidia-smi (replaying a real H200's output) and probes.

Each is a small executable written into a temporary folder put first on PATH.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import struct
from pathlib import Path

DATA = Path(__file__).parent / "data"


def executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def nvidia_smi(folder: Path, banner: str | None = None, query: str | None = None) -> dict[str, str]:
    """An nvidia-smi that prints what a real H200 printed (tests/data), or the given text."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "banner.txt").write_text(banner or (DATA / "nvidia-smi-h200.txt").read_text())
    (folder / "query.csv").write_text(query or (DATA / "nvidia-smi-h200-query.csv").read_text())
    executable(
        folder / "nvidia-smi",
        "#!/bin/sh\n"
        f'case "$1" in --query-gpu=*) cat {folder}/query.csv ;;\n'
        f"*) cat {folder}/banner.txt ;; esac\n",
    )
    return {**os.environ, "PATH": f"{folder}:{os.environ['PATH']}"}


def public_key(comment: str, kind: str = "ssh-ed25519") -> str:
    """A well-formed OpenSSH public key line (its key bytes derived from the comment)."""

    def part(data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + data

    blob = part(kind.encode()) + part(hashlib.sha256(comment.encode()).digest())
    return f"{kind} {base64.b64encode(blob).decode()} {comment}"
