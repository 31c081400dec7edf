"""Where a pod keeps what must outlive it: models, inputs, outputs and user data on the volume.

ComfyUI's code stays on the container disk. When a volume is mounted (/workspace
on a pod, /runpod-volume on serverless) its steadydancer/ folder holds models,
input, output and user; ComfyUI is pointed there by its own flags and by
extra_model_paths.yaml, so nothing is linked and nothing is half-moved. Every
step is idempotent: a second boot finds everything in place and changes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

MODEL_FOLDERS = ("diffusion_models", "text_encoders", "clip_vision", "vae", "loras", "detection")
"""Every folder the shipped workflows load from."""
DATA_FOLDERS = ("models", "input", "output", "user")


class StorageError(Exception):
    """A volume that cannot hold the pod's data, worded for the person reading the log."""


@dataclass(frozen=True)
class Layout:
    comfyui: Path
    volume: Path | None

    @property
    def baked_models(self) -> Path:
        return self.comfyui / "models"

    @property
    def data(self) -> Path | None:
        return self.volume / "steadydancer" if self.volume else None

    @property
    def models(self) -> Path:
        """Where missing models are fetched to: the volume when there is one."""
        return self.data / "models" if self.data else self.baked_models

    @property
    def user(self) -> Path:
        """ComfyUI's user directory: settings, and the workflows its browser lists."""
        return self.data / "user" if self.data else self.comfyui / "user"

    def job_folders(self, serverless: bool = False) -> dict[str, Path]:
        """ComfyUI's input, output and temp folders: the volume's on a pod (its user keeps
        them), the container's own on a serverless worker (workers share a volume, never
        their jobs' files)."""
        base = self.comfyui if serverless or self.data is None else self.data
        return {"input": base / "input", "output": base / "output", "temp": self.comfyui / "temp"}

    def comfyui_args(self, serverless: bool = False) -> list[str]:
        if self.data is None and not serverless:
            return []
        folders = self.job_folders(serverless)
        args = ["--input-directory", str(folders["input"])]
        args += ["--output-directory", str(folders["output"])]
        return args + (["--user-directory", str(self.user)] if self.data else [])


def volume_candidates(env: Mapping[str, str], default: str) -> list[Path]:
    """Where a volume may be mounted: STEADYDANCER_VOLUMES (colon-separated), else `default`."""
    return [Path(p) for p in env.get("STEADYDANCER_VOLUMES", default).split(":") if p]


def find_volume(candidates: list[Path]) -> Path | None:
    """The first candidate that is a mount point (or, failing that, an existing folder)."""
    existing = [path for path in candidates if path.is_dir()]
    mounted = [path for path in existing if os.path.ismount(path)]
    chosen = mounted or existing
    return chosen[0] if chosen else None


MIN_FREE_BYTES = 64 << 20
"""Less than this on the volume cannot even hold ComfyUI's user data."""


def check_writable(volume: Path) -> None:
    """Refuse a read-only, full or forbidden volume, without writing to it (no boot changes it)."""
    stats = os.statvfs(volume)
    if stats.f_flag & os.ST_RDONLY:
        reason = "is read-only"
    elif stats.f_bavail * stats.f_frsize < MIN_FREE_BYTES:
        reason = "is full"
    elif not os.access(volume, os.W_OK | os.X_OK):
        reason = "refuses writes"
    else:
        return
    raise StorageError(
        f"the volume at {volume} {reason}: models, inputs and outputs cannot be kept there. "
        "Mount it read-write with free space, or start without it"
    )


def prepare(layout: Layout) -> list[str]:
    """Create the volume's folders (nothing when they exist); returns what was created."""
    if layout.volume is None or layout.data is None:
        return []
    check_writable(layout.volume)
    created = []
    for name in DATA_FOLDERS:
        folder = layout.data / name
        if not folder.is_dir():
            folder.mkdir(parents=True)
            created.append(str(folder))
    for name in MODEL_FOLDERS:
        folder = layout.data / "models" / name
        if not folder.is_dir():
            folder.mkdir(parents=True)
            created.append(str(folder))
    return created


def extra_model_paths(layout: Layout) -> str:
    """ComfyUI's extra_model_paths.yaml: the baked tree and, when mounted, the volume's."""
    roots = [("steadydancer_baked", layout.baked_models)]
    if layout.data is not None:
        roots.append(("steadydancer_volume", layout.data / "models"))
    lines = []
    for name, base in roots:
        lines.append(f"{name}:")
        lines.append(f"    base_path: {base}")
        lines += [f"    {folder}: {folder}/" for folder in MODEL_FOLDERS]
    return "\n".join(lines) + "\n"


def write_if_changed(path: Path, text: str) -> bool:
    """Write through a temporary name, only when the content differs; True when written."""
    if path.is_file() and path.read_text() == text:
        return False
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    os.replace(partial, path)
    return True


def install_workflows(layout: Layout, source: Path) -> list[Path]:
    """The editor-format workflows in `source` into the list of ComfyUI's workflow browser
    (user/default/workflows), each only where no file of that name is: a person's edits stay.
    Returns what was written."""
    if not source.is_dir():
        return []
    target = layout.user / "default" / "workflows"
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(source.glob("*.json")):
        destination = target / path.name
        if not destination.exists():
            write_if_changed(destination, path.read_text())
            written.append(destination)
    return written
