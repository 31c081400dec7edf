"""The model catalog: every variant complete, placed where the workflows look; lock_models."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from steadydancer import catalog

from ci.layers import models as models_layer
from tests.dagger_offline import execs, ops, render
from tests.hub_server import COMMIT, Hub, serve
from tests.test_fetch_models import run

HEX64 = re.compile(r"^[0-9a-f]{64}$")
HEX40 = re.compile(r"^[0-9a-f]{40}$")
FOLDERS = {
    "diffusion_models",
    "text_encoders",
    "vae",
    "clip_vision",
    "loras",
    "detection",
    "dwpose",
}


@pytest.mark.parametrize("variant", sorted(catalog.VARIANTS))
def test_each_variant_has_one_of_each_model_the_workflow_loads(variant: str) -> None:
    files = catalog.files_for(variant)
    assert {entry.target.split("/")[0] for entry in files} == FOLDERS
    assert len({entry.target for entry in files}) == len(files)
    targets = {entry.target for entry in files}
    # ViTPose-H's weights live in a side file the .onnx loads from its own folder.
    assert {
        "detection/onnx/vitpose_h_wholebody_model.onnx",
        "detection/onnx/vitpose_h_wholebody_data.bin",
        "detection/onnx/yolov10m.onnx",
        # The official pose route's mmpose and mmdet checkpoints, one of them off the Hub.
        "dwpose/dw-ll_ucoco_384.pth",
        "dwpose/yolox_l_8x8_300e_coco_20211126_140236-d3bd2b23.pth",
    } <= targets
    assert files[0].target.startswith("diffusion_models/WanVideo/SteadyDancer/")


def test_recorded_facts_are_well_formed_and_sourced() -> None:
    for entry in catalog.all_files():
        assert entry.source, entry.key
        assert entry.sha256 is None or HEX64.match(entry.sha256), entry.key
        if entry.url:
            assert entry.url.startswith("https://") and entry.revision == "", entry.key
            assert entry.url == f"https://{entry.repo}/{entry.path}", entry.key
        else:
            assert entry.revision == "main" or HEX40.match(entry.revision), entry.key
        # Sizes read from the Hub's file lists without a digest beside them.
        sized_only = {"steadydancer-fp16", "dwpose-l"}
        assert (entry.size is None) == (entry.sha256 is None) or entry.key in sized_only
    assert "kijai/SteadyDancer-14B-pruned" not in {entry.repo for entry in catalog.all_files()}


def test_the_fp8_variant_is_fully_recorded_and_smaller_than_fp16() -> None:
    fp8 = catalog.CATALOG_VARIANTS["fp8"]
    # OpenMMLab's site publishes no size and no digest: yolox-l is never placed (nor counted)
    # until the catalog records them.
    assert catalog.refused("fp8") == (catalog.FILES["yolox-l"],)
    assert fp8.unsized == ()
    assert fp8.recorded_size == 28_008_601_599 + 406_878_486
    assert "umt5-xxl-enc-fp8_e4m3fn.safetensors" in {entry.filename for entry in fp8.files}


def test_models_are_fetched_through_the_cache_volume() -> None:
    tree = models_layer.model_file(catalog.FILES["wan-vae-bf16"])
    (fetch,) = [args for args in execs(tree) if "--dest" in args]
    assert fetch[fetch.index("--cache-dir") + 1] == "/cache/huggingface/steadydancer"
    assert ("withMountedCache", "/cache/huggingface") in [(n, a.get("path")) for n, a in ops(tree)]


def test_check_models_asks_afresh_and_renders_to_valid_graphql() -> None:
    first = models_layer.check(catalog.files_for("fp8"), None, "1")
    second = models_layer.check(catalog.files_for("fp8"), None, "2")
    assert execs(first)[-1][-3:] == ["--check", "--report", models_layer.REPORT]
    assert ops(first) != ops(second)  # a new run id: the engine cannot answer from cache
    assert render(first)[-1].startswith("{\n  container {")


def test_lock_models_pins_revisions_sizes_and_digests(tmp_path: Path) -> None:
    """The report of a real --check run against the local Hub becomes a locked catalog."""
    hub = Hub()
    content = b"vae weights"
    digest = hub.add("Kijai/WanVideo_comfy", "Wan2_1_VAE_bf16.safetensors", content)
    source = tmp_path / "catalog.json"
    source.write_text(
        json.dumps(
            {
                "default_variant": "v",
                "files": {
                    "vae": {
                        "repo": "Kijai/WanVideo_comfy",
                        "path": "Wan2_1_VAE_bf16.safetensors",
                        "revision": "main",
                        "folder": "vae/wanvideo",
                        "size": None,
                        "sha256": None,
                        "source": "test",
                    }
                },
                "variants": {"v": {"description": "d", "files": ["vae"]}},
            }
        )
    )
    _, variants, _ = catalog.load(source)
    report = tmp_path / "report.json"
    with serve(hub) as endpoint:
        result = run(
            endpoint,
            tmp_path,
            [entry.to_manifest() for entry in variants["v"].files],
            "--check",
            "--report",
            str(report),
        )
    assert result.returncode == 0, result.stderr
    locked = json.loads(catalog.locked(json.loads(report.read_text()), source))
    assert locked["files"]["vae"] == {
        "repo": "Kijai/WanVideo_comfy",
        "path": "Wan2_1_VAE_bf16.safetensors",
        "revision": COMMIT,
        "folder": "vae/wanvideo",
        "size": len(content),
        "sha256": digest,
        "source": "test",
    }


def test_lock_models_sizes_a_url_file_and_keeps_its_url(tmp_path: Path) -> None:
    """A --check run against a plain download address (the local server's /cdn/ path)."""
    hub = Hub()
    content = b"yolox weights"
    digest = hub.add("openmmlab", "yolox.pth", content)
    source = tmp_path / "catalog.json"
    with serve(hub) as endpoint:
        url = f"{endpoint.replace('http://', 'https://')}/cdn/{digest}"
        item = {"url": url, "folder": "dwpose", "size": None, "sha256": None, "source": "test"}
        source.write_text(
            json.dumps(
                {
                    "default_variant": "v",
                    "files": {"yolox": item},
                    "variants": {"v": {"description": "d", "files": ["yolox"]}},
                }
            )
        )
        _, variants, _ = catalog.load(source)
        (entry,) = variants["v"].files
        assert (entry.repo, entry.path, entry.filename) == (
            endpoint.removeprefix("http://"),
            f"cdn/{digest}",
            digest,
        )
        manifest = {**entry.to_manifest(), "url": f"{endpoint}/cdn/{digest}"}
        report = tmp_path / "report.json"
        result = run(endpoint, tmp_path, [manifest], "--check", "--report", str(report))
    assert result.returncode == 0, result.stderr
    assert "n/a" in result.stdout
    locked = json.loads(catalog.locked(json.loads(report.read_text()), source))
    assert locked["files"]["yolox"] == {**item, "size": len(content)}


def test_a_catalog_url_must_be_an_https_file_address(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"'ftp://example\.org/x\.pth' is not an https:// address"):
        catalog.located({"url": "ftp://example.org/x.pth", "folder": "x"})


class AddressedToken:
    """Stands in for the engine's answer to Secret.uri for a token given as env://HF_TOKEN."""

    def __init__(self, uri: str = "env://HF_TOKEN") -> None:
        self.address = uri

    async def uri(self) -> str:
        return self.address


def test_the_token_is_keyed_so_a_rotated_one_changes_no_layer() -> None:
    import anyio

    from tests.dagger_offline import describe, render

    entry = catalog.FILES["wan-vae-bf16"]
    first = anyio.run(models_layer.keyed_token, AddressedToken())
    rotated = anyio.run(models_layer.keyed_token, AddressedToken())
    layer = models_layer.model_file(entry, first)
    assert describe(layer) == describe(models_layer.model_file(entry, rotated))
    assert f"cacheKey='{models_layer.TOKEN_CACHE_KEY}'" in describe(layer)
    from_file = anyio.run(models_layer.keyed_token, AddressedToken("file:///run/hf-token"))
    assert f"cacheKey='{models_layer.TOKEN_CACHE_KEY}'" in describe(
        models_layer.model_file(entry, from_file)
    )
    assert anyio.run(models_layer.keyed_token, None) is None
    documents = render(layer)  # validated against the engine's schema
    assert any(
        f'secret(uri: "env://HF_TOKEN", cacheKey: "{models_layer.TOKEN_CACHE_KEY}")' in document
        for document in documents
    )
