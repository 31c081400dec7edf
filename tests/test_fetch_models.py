"""The model fetcher, run for real (with huggingface_hub) against a local Hub-protocol server.

The Hub cannot be reached from here, so tests/hub_server.py answers as it does
(resolve redirects with X-Linked-Size and X-Linked-Etag, a CDN honouring Range,
the Hub's error codes) and injects the faults users meet.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from steadydancer import catalog

from tests.dagger_offline import REPO
from tests.hub_server import COMMIT, Hub, serve

FETCHER = REPO / "docker" / "steadydancer" / "fetch_models.py"
MiB = 1 << 20


def entry(
    repo: str, path: str, folder: str, content: bytes | None = None, **extra: object
) -> dict[str, object]:
    item = catalog.ModelFile(repo, path, folder).to_manifest()
    if content is not None:
        item["size"] = len(content)
    item.update(extra)
    return item


def run(
    endpoint: str,
    tmp_path: Path,
    entries: list[dict[str, object]],
    *args: str,
    env: dict[str, str | None] | None = None,
    dest: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """The fetcher as a command; `env` values of None remove a variable."""
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps(entries))
    given = {"HF_ENDPOINT": endpoint, "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": None, **(env or {})}
    environment = {**os.environ, **{k: v for k, v in given.items() if v is not None}}
    for name in (name for name, value in given.items() if value is None):
        environment.pop(name, None)
    where = [] if "--check" in args else ["--dest", str(dest or tmp_path / "models")]
    return subprocess.run(
        [
            sys.executable,
            str(FETCHER),
            "--manifest",
            str(manifest),
            *where,
            "--progress-interval",
            "0.2",
            *args,
        ],
        capture_output=True,
        text=True,
        check=False,
        env=environment,
        timeout=120,
    )


def vae(hub: Hub, content: bytes) -> list[dict[str, object]]:
    """The Wan VAE served by `hub` with `content`, and its manifest entry."""
    hub.add("Kijai/WanVideo_comfy", "Wan2_1_VAE_bf16.safetensors", content)
    return [entry("Kijai/WanVideo_comfy", "Wan2_1_VAE_bf16.safetensors", "vae", content)]


def three_files(hub: Hub) -> list[dict[str, object]]:
    onnx = os.urandom(3 * MiB)
    data = os.urandom(5 * MiB)
    vae = os.urandom(2 * MiB)
    hub.add("Kijai/vitpose_comfy", "onnx/vitpose_h_wholebody_model.onnx", onnx)
    hub.add("Kijai/vitpose_comfy", "onnx/vitpose_h_wholebody_data.bin", data)
    hub.add("Kijai/WanVideo_comfy", "Wan2_1_VAE_bf16.safetensors", vae)
    return [
        entry("Kijai/vitpose_comfy", "onnx/vitpose_h_wholebody_model.onnx", "detection/onnx", onnx),
        entry("Kijai/vitpose_comfy", "onnx/vitpose_h_wholebody_data.bin", "detection/onnx", data),
        entry("Kijai/WanVideo_comfy", "Wan2_1_VAE_bf16.safetensors", "vae/wanvideo", vae),
    ]


def test_files_land_verified_and_a_second_run_needs_no_network(tmp_path: Path) -> None:
    hub = Hub()
    entries = three_files(hub)
    with serve(hub) as endpoint:
        first = run(endpoint, tmp_path, entries, "--jobs", "3")
    assert first.returncode == 0, first.stderr
    models = tmp_path / "models"
    for (_, path), content in hub.files.items():
        target = next(e["target"] for e in entries if e["path"] == path)
        assert (models / str(target)).read_bytes() == content
    onnx = models / "detection" / "onnx"
    assert sorted(p.name for p in onnx.iterdir()) == [
        "vitpose_h_wholebody_data.bin",
        "vitpose_h_wholebody_model.onnx",
    ]
    marker = json.loads(
        (
            models / ".steadydancer-verified" / "vae/wanvideo/Wan2_1_VAE_bf16.safetensors.json"
        ).read_text()
    )
    assert marker["commit"] == COMMIT and marker["size"] == 2 * MiB
    assert "progress:" in first.stdout and "MB/s, ETA" in first.stdout
    # The server is gone: present files are trusted by size and marker, not fetched or hashed.
    second = run(endpoint, tmp_path, entries)
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("present and verified, skipped") == 3


def test_server_errors_are_retried(tmp_path: Path) -> None:
    hub = Hub()
    content = os.urandom(MiB)
    entries = vae(hub, content)
    hub.errors["Wan2_1_VAE_bf16.safetensors"] = [503, 500]
    with serve(hub) as endpoint:
        result = run(
            endpoint,
            tmp_path,
            entries,
        )
    assert result.returncode == 0, result.stderr
    assert "HTTP 503 at 0.0 kB; retry 1/5" in result.stdout
    assert "HTTP 500 at 0.0 kB; retry 2/5" in result.stdout
    assert (tmp_path / "models" / "vae" / "Wan2_1_VAE_bf16.safetensors").read_bytes() == content


def test_a_cut_transfer_resumes_where_it_stopped(tmp_path: Path) -> None:
    hub = Hub()
    content = os.urandom(8 * MiB)
    hub.add("Kijai/WanVideo_comfy", "umt5-xxl-enc-bf16.safetensors", content)
    hub.cut_after["umt5-xxl-enc-bf16.safetensors"] = 5 * MiB
    with serve(hub) as endpoint:
        result = run(
            endpoint,
            tmp_path,
            [
                entry(
                    "Kijai/WanVideo_comfy",
                    "umt5-xxl-enc-bf16.safetensors",
                    "text_encoders",
                    content,
                )
            ],
        )
    assert result.returncode == 0, result.stderr
    assert (
        tmp_path / "models" / "text_encoders" / "umt5-xxl-enc-bf16.safetensors"
    ).read_bytes() == content
    assert hub.sent["umt5-xxl-enc-bf16.safetensors"] == len(content)  # no byte sent twice
    ranges = [h.get("range") for m, p, h in hub.requests if p.startswith("/cdn/")]
    assert ranges == [None, f"bytes={5 * MiB}-"]


def test_a_partial_file_left_by_a_killed_run_is_resumed(tmp_path: Path) -> None:
    hub = Hub()
    content = os.urandom(4 * MiB)
    entries = vae(hub, content)
    folder = tmp_path / "models" / "vae"
    folder.mkdir(parents=True)
    (folder / ".Wan2_1_VAE_bf16.safetensors.partial").write_bytes(content[: 3 * MiB])
    with serve(hub) as endpoint:
        result = run(
            endpoint,
            tmp_path,
            entries,
        )
    assert result.returncode == 0, result.stderr
    assert "resuming at 0.00 GB" in result.stdout or "resuming at" in result.stdout
    assert hub.sent["Wan2_1_VAE_bf16.safetensors"] == MiB
    assert (folder / "Wan2_1_VAE_bf16.safetensors").read_bytes() == content


def test_wrong_bytes_are_removed_and_both_digests_shown(tmp_path: Path) -> None:
    hub = Hub()
    content = os.urandom(MiB)
    entries = vae(hub, content)
    digest = hashlib.sha256(content).hexdigest()
    hub.corrupt["Wan2_1_VAE_bf16.safetensors"] = bytes(MiB)
    with serve(hub) as endpoint:
        result = run(
            endpoint,
            tmp_path,
            entries,
        )
    assert result.returncode == 1
    zeros = "30e14955ebf1352266dc2ff8067e68104607e750abb9d3b36582b8af909fcb58"
    assert (
        f"expected {MiB} bytes with sha256 {digest}, got {MiB} bytes with sha256 {zeros}"
        in result.stderr
    )
    assert "checksum mismatch, the file was removed" in result.stderr
    assert list((tmp_path / "models" / "vae").iterdir()) == []


def test_a_stalled_server_times_out_and_is_retried(tmp_path: Path) -> None:
    hub = Hub()
    content = os.urandom(MiB)
    entries = vae(hub, content)
    hub.stall["Wan2_1_VAE_bf16.safetensors"] = 3.0
    with serve(hub) as endpoint:
        result = run(
            endpoint,
            tmp_path,
            entries,
            "--timeout",
            "1",
        )
    assert result.returncode == 0, result.stderr
    # huggingface_hub itself asks again after the stall, within the same call.
    assert hub.count("GET", "/cdn/") == 2
    assert hub.sent["Wan2_1_VAE_bf16.safetensors"] == len(content)
    assert (tmp_path / "models" / "vae" / "Wan2_1_VAE_bf16.safetensors").read_bytes() == content


def test_gated_and_missing_files_are_all_named_before_any_download(tmp_path: Path) -> None:
    hub = Hub(gated={"Wan-AI/Wan2.2-Animate-14B": "manual"}, locked={"Wan-AI/Wan2.2-Animate-14B"})
    entries = three_files(hub)
    entries += [
        catalog.FILES["yolov10m"].to_manifest(),
        entry("Kijai/WanVideo_comfy", "SteadyDancer-14B-pruned.safetensors", "diffusion_models"),
        entry("kijai/SteadyDancer-14B-pruned", "model.safetensors", "diffusion_models"),
    ]
    with serve(hub) as endpoint:
        result = run(endpoint, tmp_path, entries)
    assert result.returncode == 1
    assert "3 file(s) cannot be fetched" in result.stderr
    assert (
        "Wan-AI/Wan2.2-Animate-14B is gated: accept its licence at "
        f"{endpoint}/Wan-AI/Wan2.2-Animate-14B"  # HF_ENDPOINT's, where the user would go
    ) in result.stderr
    assert (
        "SteadyDancer-14B-pruned.safetensors does not exist in Kijai/WanVideo_comfy "
        "(catalog target diffusion_models/SteadyDancer-14B-pruned.safetensors)"
    ) in result.stderr
    assert (
        "repository kijai/SteadyDancer-14B-pruned is not found or private (without a token)"
        in result.stderr
    )
    assert hub.count("GET", "/cdn/") == 0
    assert "Traceback" not in result.stderr


def test_too_little_disk_fails_before_the_first_byte(tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(small)], check=False
    )
    assert mounted.returncode == 0, "this test mounts a 4 MiB tmpfs and needs root"
    try:
        hub = Hub()
        content = os.urandom(8 * MiB)
        entries = vae(hub, content)
        with serve(hub) as endpoint:
            result = run(
                endpoint,
                tmp_path,
                entries,
                dest=small,
            )
        assert result.returncode == 1
        assert "disk full: 8.4 MB still to fetch into" in result.stderr
        assert "plus 268.4 MB of headroom, but only 4.2 MB free" in result.stderr
        assert hub.count("GET", "/cdn/") == 0
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_the_token_reaches_the_hub_only_and_is_never_printed(tmp_path: Path) -> None:
    hub = Hub()
    content = os.urandom(MiB)
    entries = vae(hub, content)
    secret = "hf_not_a_real_token_0123456789"
    with serve(hub) as endpoint:
        result = run(
            endpoint,
            tmp_path,
            entries,
            env={"HF_TOKEN": secret},
        )
    assert result.returncode == 0, result.stderr
    hub_auth = [h.get("authorization") for m, p, h in hub.requests if "/resolve/" in p]
    cdn_auth = [h.get("authorization") for m, p, h in hub.requests if p.startswith("/cdn/")]
    assert hub_auth and all(value == f"Bearer {secret}" for value in hub_auth)
    assert cdn_auth == [None]
    assert secret not in result.stdout + result.stderr


def test_cache_dir_keeps_files_for_the_next_build(tmp_path: Path) -> None:
    hub = Hub()
    entries = three_files(hub)
    cache = tmp_path / "cache"
    with serve(hub) as endpoint:
        first = run(endpoint, tmp_path, entries, "--cache-dir", str(cache), dest=tmp_path / "out1")
        second = run(endpoint, tmp_path, entries, "--cache-dir", str(cache), dest=tmp_path / "out2")
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert hub.count("GET", "/cdn/") == 3  # the second build downloaded nothing
    for out in ("out1", "out2"):
        assert (
            tmp_path / out / "vae" / "wanvideo" / "Wan2_1_VAE_bf16.safetensors"
        ).stat().st_size == 2 * MiB


def test_check_reports_sizes_gating_and_every_problem_without_downloading(tmp_path: Path) -> None:
    hub = Hub(gated={"Kijai/vitpose_comfy": "auto"})
    entries = three_files(hub)
    entries.append(entry("Kijai/WanVideo_comfy", "missing.safetensors", "vae"))
    report = tmp_path / "report.json"
    with serve(hub) as endpoint:
        result = run(endpoint, tmp_path, entries, "--check", "--report", str(report))
    assert result.returncode == 1
    assert (
        "ok      auto        0.01  Kijai/vitpose_comfy/onnx/vitpose_h_wholebody_data.bin"
        in result.stdout
    )
    assert "MISSING no             ?  Kijai/WanVideo_comfy/missing.safetensors" in result.stdout
    assert "missing.safetensors does not exist in Kijai/WanVideo_comfy" in result.stderr
    rows = json.loads(report.read_text())
    assert rows[0]["commit"] == COMMIT and rows[0]["remote_sha256"] == hub_digest(
        hub, rows[0]["path"]
    )
    assert hub.count("GET", "/cdn/") == 0


def hub_digest(hub: Hub, path: str) -> str:
    return next(hashlib.sha256(c).hexdigest() for (_, p), c in hub.files.items() if p == path)


@pytest.mark.parametrize("jobs", ["0"])
def test_bad_arguments_are_refused(tmp_path: Path, jobs: str) -> None:
    with serve(Hub()) as endpoint:
        result = run(endpoint, tmp_path, [entry("a/b", "c", "d")], "--jobs", jobs)
    assert result.returncode == 2 and "--jobs must be at least 1" in result.stderr


@pytest.mark.network
def test_the_fetcher_also_runs_with_the_images_huggingface_hub(tmp_path: Path) -> None:
    """At boot the fetcher runs on the image's huggingface_hub (the lock's), not the build's:
    installed from the lock's entries, by version and hash, as the image installs it."""
    from ci import lock as locks
    from ci.lock import find_uv

    lock = locks.load("cu124")
    assert lock is not None
    uv = find_uv()
    assert uv is not None
    venv = tmp_path / "venv"
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    requirements = tmp_path / "hub-requirements.txt"
    requirements.write_text(lock.subset(["huggingface_hub"]))
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--require-hashes", "--no-deps",
         "--python", str(venv / "bin" / "python"), "-r", str(requirements)],
        check=True,
    )  # fmt: skip
    hub = Hub(gated={"Wan-AI/Wan2.2-Animate-14B": "manual"}, locked={"Wan-AI/Wan2.2-Animate-14B"})
    entries = three_files(hub)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps(entries))
    env = {**os.environ, "HF_TOKEN": ""}

    def fetch_with_image_hub(endpoint: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                str(venv / "bin" / "python"),
                str(FETCHER),
                "--manifest",
                str(manifest),
                "--dest",
                str(tmp_path / "models"),
            ],
            capture_output=True,
            text=True,
            check=False,
            env={**env, "HF_ENDPOINT": endpoint},
        )

    with serve(hub) as endpoint:
        fetched = fetch_with_image_hub(endpoint)
        manifest.write_text(json.dumps([catalog.FILES["yolov10m"].to_manifest()]))
        gated = fetch_with_image_hub(endpoint)
    assert fetched.returncode == 0, fetched.stderr
    assert hub.count("GET", "/cdn/") == 3
    assert gated.returncode == 1 and "Wan-AI/Wan2.2-Animate-14B is gated" in gated.stderr


def test_a_server_that_ignores_range_restarts_the_file_cleanly(tmp_path: Path) -> None:
    hub = Hub()
    content = os.urandom(24 * MiB)
    entries = vae(hub, content)
    hub.cut_after["Wan2_1_VAE_bf16.safetensors"] = 18 * MiB
    hub.ignore_range.add("Wan2_1_VAE_bf16.safetensors")
    with serve(hub) as endpoint:
        result = run(
            endpoint,
            tmp_path,
            entries,
        )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "models" / "vae" / "Wan2_1_VAE_bf16.safetensors").read_bytes() == content
    final = [line for line in result.stdout.splitlines() if line.startswith("progress:")][-1]
    done, total = final.removeprefix("progress: ").split(",")[0].split("/")
    assert done == total == "25.2 MB"  # the discarded bytes are not counted twice
    assert "ETA -" not in result.stdout


def test_two_fetchers_sharing_a_volume_take_turns(tmp_path: Path) -> None:
    """Pods or serverless workers on one network volume: each file is fetched once, intact."""
    hub = Hub(rate=8 * MiB)
    entries = three_files(hub)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps(entries))
    with serve(hub) as endpoint:
        env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_TOKEN": ""}
        command = [
            sys.executable,
            str(FETCHER),
            "--manifest",
            str(manifest),
            "--dest",
            str(tmp_path / "models"),
            "--progress-interval",
            "60",
        ]
        first = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        second = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        outputs = [process.communicate(timeout=120) for process in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    assert hub.count("GET", "/cdn/") == 3
    for (_, path), content in hub.files.items():
        target = next(e["target"] for e in entries if e["path"] == path)
        assert (tmp_path / "models" / str(target)).read_bytes() == content
    assert "fetched meanwhile by another process" in outputs[0][0] + outputs[1][0]
