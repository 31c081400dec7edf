"""Layer 5: the model files of a variant, fetched from Hugging Face onto a cache volume.

The download runs in a small Python container of its own, so it depends on
nothing but the variant's manifest and the fetcher: the engine fetches models
while it compiles mmcv, and a change to any other layer never re-downloads.
The same container, with --check, asks the Hub about every file without
downloading (check_models, lock_models).
"""

from __future__ import annotations

import json

import dagger
from dagger import dag
from steadydancer import catalog

from ci import caches, pins, source
from ci.installs import Installer
from ci.layers.base import uv_binary

FETCHER_PACKAGES = ("huggingface_hub",)
"""What the fetcher imports beyond the standard library, installed from the lock."""
CACHE = "/cache/huggingface"
MANIFEST = "/tmp/steadydancer-manifest.json"
REPORT = "/tmp/steadydancer-report.json"
OUT = "/models"


def manifest(files: tuple[catalog.ModelFile, ...]) -> str:
    return json.dumps([entry.to_manifest() for entry in files], indent=1)


def python_container() -> dagger.Container:
    """A small Python with the module's uv, installing into its system Python."""
    return caches.with_uv_cache(
        dag.container()
        .from_(pins.FETCH_IMAGE)
        .with_file("/usr/local/bin/uv", uv_binary())
        .with_env_variable("UV_SYSTEM_PYTHON", "1")
    )


def fetcher(
    files: tuple[catalog.ModelFile, ...], hf_token: dagger.Secret | None
) -> dagger.Container:
    ctr = Installer.for_profile(pins.PROFILES[pins.DEFAULT_PROFILE]).install(
        python_container(), FETCHER_PACKAGES
    )
    ctr = source.with_tool(ctr, "fetch_models")
    ctr = ctr.with_env_variable("HF_HUB_DISABLE_TELEMETRY", "1").with_new_file(
        MANIFEST, manifest(files)
    )
    if hf_token is not None:
        ctr = ctr.with_secret_variable("HF_TOKEN", hf_token)
    return ctr


def fetch_command(*args: str) -> list[str]:
    return ["python", source.tool_path("fetch_models"), "--manifest", MANIFEST, *args]


def models(variant: str, hf_token: dagger.Secret | None = None) -> dagger.Directory:
    """The variant's files laid out as ComfyUI's models/ folder, with their markers."""
    ctr = fetcher(catalog.files_for(variant), hf_token).with_mounted_cache(
        CACHE, caches.volume("huggingface")
    )
    return ctr.with_exec(
        fetch_command("--dest", OUT, "--cache-dir", f"{CACHE}/steadydancer")
    ).directory(OUT)


def check(
    files: tuple[catalog.ModelFile, ...], hf_token: dagger.Secret | None, run_id: str
) -> dagger.Container:
    """Ask the Hub about every file, afresh for each run_id (the answer changes upstream)."""
    return (
        fetcher(files, hf_token)
        .with_env_variable("STEADYDANCER_CHECK_RUN", run_id)
        .with_exec(fetch_command("--check", "--report", REPORT))
    )
