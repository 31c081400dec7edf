"""Layer 5: the model files of a variant, fetched from Hugging Face, one image layer per file.

Each file is fetched in a small Python container of its own, from a one-entry
manifest, so it depends on nothing but that file's catalog entry and the
fetcher: the same file is the same operation, and the same layer, in every
variant that uses it. Registries limit a layer's size (ghcr.io and GitLab to
10 GB), and a pod pulls layers in parallel, so no layer holds two files.
Timestamps are fixed, so a file fetched again elsewhere gives the same bytes.
The same container, with --check, asks the Hub about every file without
downloading (check_models, lock_models).
"""

from __future__ import annotations

import json

import dagger
from dagger import dag
from steadydancer import catalog

from ci import caches, paths, pins, source
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


TOKEN_CACHE_KEY = "steadydancer-hf-token"


async def keyed_token(token: dagger.Secret | None) -> dagger.Secret | None:
    """The token under a fixed cache key: which token (or a rotated one) fetched a file
    changes no layer; the engine keys a secret by its plaintext otherwise.

    Only a secret given by address (env://, file://, cmd://...) can be re-keyed; one made
    from a plain value keeps its own key.
    """
    if token is None:
        return None
    uri = await token.uri()
    return dag.secret(uri, cache_key=TOKEN_CACHE_KEY) if uri else token


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


def model_file(entry: catalog.ModelFile, hf_token: dagger.Secret | None = None) -> dagger.Directory:
    """One file and its marker, laid out as in ComfyUI's models/ folder."""
    ctr = fetcher((entry,), hf_token).with_mounted_cache(CACHE, caches.volume("huggingface"))
    return (
        ctr.with_exec(fetch_command("--dest", OUT, "--cache-dir", f"{CACHE}/steadydancer"))
        .directory(OUT)
        .with_timestamps(0)
    )


def layer_order(variant: str) -> list[catalog.ModelFile]:
    """Files shared by most variants first: a variant switch keeps the engine's cache for them.

    A file whose bytes cannot be checked is not baked (catalog.refused; plan names it).
    """
    users = {
        entry.key: sum(entry in catalog.files_for(name) for name in catalog.VARIANTS)
        for entry in catalog.placeable(variant)
    }
    return sorted(catalog.placeable(variant), key=lambda entry: (-users[entry.key], entry.key))


def with_models(
    ctr: dagger.Container, variant: str, hf_token: dagger.Secret | None = None
) -> dagger.Container:
    """The variant's files added one operation, and so one layer, per file."""
    for entry in layer_order(variant):
        ctr = ctr.with_directory(paths.MODELS_DIR, model_file(entry, hf_token))
    return ctr


def models(variant: str, hf_token: dagger.Secret | None = None) -> dagger.Directory:
    """The variant's files laid out as ComfyUI's models/ folder, with their markers."""
    tree = dag.directory()
    for entry in layer_order(variant):
        tree = tree.with_directory(".", model_file(entry, hf_token))
    return tree


def check(
    files: tuple[catalog.ModelFile, ...], hf_token: dagger.Secret | None, run_id: str
) -> dagger.Container:
    """Ask the Hub about every file, afresh for each run_id (the answer changes upstream)."""
    return (
        fetcher(files, hf_token)
        .with_env_variable("STEADYDANCER_CHECK_RUN", run_id)
        .with_exec(fetch_command("--check", "--report", REPORT))
    )
