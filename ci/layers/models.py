"""Layer 7: the model files of a variant, fetched from Hugging Face onto a cache volume.

The download runs in a small Python container of its own, so it depends on
nothing but the variant's manifest and the fetcher: the engine fetches models
while it compiles mmcv, and a change to any other layer never re-downloads.
"""

from __future__ import annotations

import json

import dagger
from dagger import dag
from steadydancer import catalog

from ci import caches, pins, source

FETCH_IMAGE = f"{pins.UV_IMAGE}-python3.11-bookworm-slim"
HF_CACHE = "/cache/huggingface"
MANIFEST = "/tmp/steadydancer-manifest.json"
OUT = "/models"


def manifest(variant: str) -> str:
    return json.dumps([entry.to_manifest() for entry in catalog.files_for(variant)], indent=1)


def models(variant: str, hf_token: dagger.Secret | None = None) -> dagger.Directory:
    """The variant's files laid out as ComfyUI's models/ folder."""
    ctr = caches.with_uv_cache(dag.container().from_(FETCH_IMAGE))
    ctr = ctr.with_exec(["uv", "pip", "install", "--system", pins.HUGGINGFACE_HUB.requirement])
    ctr = source.with_tool(ctr, "fetch_models")
    ctr = (
        ctr.with_mounted_cache(HF_CACHE, caches.volume("huggingface"))
        # Xet's chunk cache lives under HF_HOME too, so it also survives on the volume.
        .with_env_variable("HF_HOME", HF_CACHE)
        .with_env_variable("HF_HUB_DISABLE_TELEMETRY", "1")
        .with_new_file(MANIFEST, manifest(variant))
    )
    if hf_token is not None:
        ctr = ctr.with_secret_variable("HF_TOKEN", hf_token)
    return ctr.with_exec(
        [
            "python",
            source.tool_path("fetch_models"),
            "--manifest",
            MANIFEST,
            "--dest",
            OUT,
            "--cache-dir",
            f"{HF_CACHE}/hub",
        ]
    ).directory(OUT)
