"""The model fetcher run for real with huggingface_hub against a local Hub-protocol server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from steadydancer import catalog

from tests.dagger_offline import REPO
from tests.hub_server import Hub, serve

FETCHER = REPO / "docker" / "steadydancer" / "fetch_models.py"


def manifest(tmp_path: Path, entries: list[catalog.ModelFile]) -> Path:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps([entry.to_manifest() for entry in entries]))
    return path


def fetch(
    endpoint: str, tmp_path: Path, entries: list[catalog.ModelFile]
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HUB_DISABLE_XET": "1", "HF_HUB_OFFLINE": "0"}
    env.pop("HF_TOKEN", None)
    return subprocess.run(
        [
            sys.executable,
            str(FETCHER),
            "--manifest",
            str(manifest(tmp_path, entries)),
            "--dest",
            str(tmp_path / "models"),
            "--cache-dir",
            str(tmp_path / "hf-cache"),
        ],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )


def file_downloads(hub: Hub) -> int:
    return sum(1 for method, path in hub.requests if method == "GET" and "/resolve/" in path)


def test_files_land_at_their_catalog_targets_and_are_skipped_when_present(tmp_path: Path) -> None:
    hub = Hub()
    hub.add("Kijai/vitpose_comfy", "onnx/vitpose_h_wholebody_model.onnx", b"o" * 1000)
    hub.add("Kijai/vitpose_comfy", "onnx/vitpose_h_wholebody_data.bin", b"d" * 3000)
    entries = [
        catalog.ModelFile(
            "Kijai/vitpose_comfy",
            "onnx/vitpose_h_wholebody_model.onnx",
            "detection/onnx",
            size=1000,
        ),
        catalog.ModelFile(
            "Kijai/vitpose_comfy", "onnx/vitpose_h_wholebody_data.bin", "detection/onnx", size=3000
        ),
    ]
    with serve(hub) as endpoint:
        first = fetch(endpoint, tmp_path, entries)
        gets_after_first = file_downloads(hub)
        second = fetch(endpoint, tmp_path, entries)
    assert first.returncode == 0, first.stderr
    onnx = tmp_path / "models" / "detection" / "onnx"
    assert (onnx / "vitpose_h_wholebody_model.onnx").read_bytes() == b"o" * 1000
    assert (onnx / "vitpose_h_wholebody_data.bin").stat().st_size == 3000
    assert sorted(p.name for p in onnx.iterdir()) == [
        "vitpose_h_wholebody_data.bin",
        "vitpose_h_wholebody_model.onnx",
    ]
    assert gets_after_first == 2
    assert second.returncode == 0 and second.stdout.count("present, skipped") == 2
    assert file_downloads(hub) == 2


def test_missing_file_names_the_file_and_its_page(tmp_path: Path) -> None:
    hub = Hub()
    hub.add("Kijai/WanVideo_comfy", "Wan2_1_VAE_bf16.safetensors", b"v")
    entry = catalog.ModelFile(
        "Kijai/WanVideo_comfy", "SteadyDancer-14B-pruned.safetensors", "diffusion_models"
    )
    with serve(hub) as endpoint:
        result = fetch(endpoint, tmp_path, [entry])
    assert result.returncode == 1
    assert (
        "SteadyDancer-14B-pruned.safetensors does not exist in Kijai/WanVideo_comfy: "
        "https://huggingface.co/Kijai/WanVideo_comfy/blob/main/SteadyDancer-14B-pruned.safetensors"
    ) in result.stderr
    assert "Traceback" not in result.stderr


def test_gated_repository_says_where_to_accept_the_licence(tmp_path: Path) -> None:
    hub = Hub(gated={"Wan-AI/Wan2.2-Animate-14B"})
    with serve(hub) as endpoint:
        result = fetch(endpoint, tmp_path, [catalog.YOLOV10M])
    assert result.returncode == 1
    assert (
        "Wan-AI/Wan2.2-Animate-14B is gated: accept its licence at https://huggingface.co/Wan-AI/Wan2.2-Animate-14B"
        in result.stderr
    )


def test_unknown_repository_is_named(tmp_path: Path) -> None:
    entry = catalog.ModelFile(
        "kijai/SteadyDancer-14B-pruned", "model.safetensors", "diffusion_models"
    )
    with serve(Hub()) as endpoint:
        result = fetch(endpoint, tmp_path, [entry])
    assert result.returncode == 1
    assert (
        "repository kijai/SteadyDancer-14B-pruned is not found or private (without a token)"
        in result.stderr
    )


def test_size_differing_from_the_catalog_is_refused_and_nothing_is_placed(tmp_path: Path) -> None:
    hub = Hub()
    hub.add("Kijai/vitpose_comfy", "onnx/vitpose_h_wholebody_model.onnx", b"short")
    entry = catalog.ModelFile(
        "Kijai/vitpose_comfy", "onnx/vitpose_h_wholebody_model.onnx", "detection/onnx", size=420_252
    )
    with serve(hub) as endpoint:
        result = fetch(endpoint, tmp_path, [entry])
    assert result.returncode == 1
    assert "downloaded 5 bytes, the catalog expects 420252" in result.stderr
    assert not (
        tmp_path / "models" / "detection" / "onnx" / "vitpose_h_wholebody_model.onnx"
    ).exists()
