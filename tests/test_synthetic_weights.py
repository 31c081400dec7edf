"""The synthetic checkpoints of bench.synthetic_weights and the GPU runs made with them.

The spec (names, shapes, dtypes) is checked against the sizes the catalog recorded from
the Hub for the real files; files written from it are read back by the safetensors
library; the ONNX stand-ins run under onnxruntime with the detectors' signatures. The
spec's derivation from the pinned node packs needs their source tree and torch: it runs
where STEADYDANCER_COMFYUI_TREE names a ComfyUI tree with the packs at the pins.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from safetensors.numpy import load_file
from steadydancer import catalog, workflows

from bench import gpu_render
from bench import synthetic_weights as sw
from ci import pins

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"
SPEC = sw.load_spec()
CATALOG = {entry.key: entry for entry in catalog.all_files()}


PUBLISHED = [key for key in [*SPEC["files"], "lightx2v-lora"] if CATALOG[key].size is not None]


def test_every_published_size_but_the_fp16_dits_is_checked() -> None:
    assert set(SPEC["files"]) - set(PUBLISHED) == {"steadydancer-fp16"}


@pytest.mark.parametrize("key", PUBLISHED)
def test_spec_bytes_match_the_published_file_size(key: str) -> None:
    published = CATALOG[key].size
    assert published is not None
    written = sw.safetensors_size(sw.tensors(SPEC, key))
    # The LoRA's small difference tensors are not all known; everything else is exact
    # but for the header's spacing and the dtype of a few small fp8-file tensors.
    tolerance = 0.005 if key == "lightx2v-lora" else 0.0005
    assert abs(written - published) / published < tolerance, (key, written, published)


def test_spec_names_the_pins_it_was_derived_from() -> None:
    pinned = {pin.name: pin.commit for pin in (pins.COMFYUI, *pins.NODE_PACKS)}
    assert SPEC["derived_from"] == pinned, (
        "a pin moved: regenerate with `python -m bench.synthetic_weights spec --comfyui DIR`"
    )


@pytest.mark.parametrize("variant", ["fp8", "fp16"])
def test_every_file_a_variant_loads_has_a_stand_in(variant: str) -> None:
    assert sw.uncovered(variant, SPEC) == []


def test_a_variant_the_spec_does_not_cover_is_refused_before_writing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="variant 'gguf-q6_k' needs steadydancer-gguf-q6_k"):
        next(sw.write_variant(tmp_path, "gguf-q6_k", "cpu", SPEC))
    assert list(tmp_path.iterdir()) == []


def test_fp8_scaled_weights_each_have_a_scale() -> None:
    items = {t.name: t for t in sw.tensors(SPEC, "steadydancer-fp8")}
    fp8 = [t for t in items.values() if t.dtype == "F8_E4M3"]
    assert len(fp8) > 400
    for t in fp8:
        scale = items[t.name.removesuffix("weight") + "scale_weight"]
        assert (scale.dtype, scale.shape) == ("F32", ())


def test_a_streamed_file_reads_back_with_the_safetensors_library(tmp_path: Path) -> None:
    items = [
        sw.Tensor("blocks.0.ffn.0.weight", "F16", (6, 4)),
        sw.Tensor("blocks.0.ffn.0.bias", "F32", (6,)),
        sw.Tensor("head.scale", "F32", ()),
    ]
    rng = np.random.default_rng(3)
    arrays = {
        t.name: rng.standard_normal(t.shape).astype(np.float16 if t.dtype == "F16" else np.float32)
        for t in items
    }
    path = tmp_path / "m.safetensors"
    size = sw.write_safetensors(path, items, lambda t: arrays[t.name].tobytes())
    assert size == path.stat().st_size == sw.safetensors_size(items)
    loaded = load_file(str(path))
    for name, array in arrays.items():
        np.testing.assert_array_equal(loaded[name], array)
    assert not (tmp_path / "m.safetensors.partial").exists()


def test_header_lays_fp8_and_scalars_end_to_end() -> None:
    items = [
        sw.Tensor("a.weight", "F8_E4M3", (3, 5)),
        sw.Tensor("a.scale_weight", "F32", ()),
        sw.Tensor("b", "BF16", (7,)),
    ]
    raw = sw.header(items)
    assert len(raw) % 8 == 0
    entries = json.loads(raw)
    assert entries["a.weight"]["data_offsets"] == [0, 15]
    assert entries["a.scale_weight"] == {"dtype": "F32", "shape": [], "data_offsets": [15, 19]}
    assert entries["b"]["data_offsets"] == [19, 33]
    assert sw.safetensors_size(items) == 8 + len(raw) + 33


def test_a_tensor_of_the_wrong_size_is_refused(tmp_path: Path) -> None:
    items = [sw.Tensor("x", "BF16", (4,))]
    with pytest.raises(ValueError, match=r"x: 4 bytes for BF16\[4\]"):
        sw.write_safetensors(tmp_path / "x.safetensors", items, lambda t: b"\0" * 4)


@pytest.mark.parametrize("key", sorted(sw.ONNX_FILES))
def test_onnx_stand_ins_have_the_detectors_signature(tmp_path: Path, key: str) -> None:
    path = tmp_path / f"{key}.onnx"
    sw.write_onnx(path, key)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (in_name, in_shape), (_, out_shape) = sw.ONNX_FILES[key]["input"], sw.ONNX_FILES[key]["output"]
    (given,) = session.get_inputs()
    assert given.name == in_name and given.shape[1:] == in_shape[1:]
    batch = np.random.default_rng(0).random((2, *in_shape[1:]), dtype=np.float32)
    (out,) = session.run(None, {in_name: batch})
    assert out.shape == (2, *out_shape[1:])
    if key == "yolov10m":
        assert not out.any()  # nobody found: WanAnimatePreprocess then takes the whole frame
    else:
        peaks = out[0].reshape(out_shape[1], -1).max(axis=1)
        assert (peaks > 0.5).all()


def test_tokenizer_has_umt5s_size_and_special_ids(tmp_path: Path) -> None:
    tokenizers = pytest.importorskip(
        "tokenizers", reason="tokenizers needs huggingface_hub<2, which the fetcher's pin excludes"
    )
    assert sw.write_tokenizer(tmp_path)
    tokenizer = tokenizers.Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    assert tokenizer.get_vocab_size() == sw.UMT5_VOCAB + 300
    assert tokenizer.token_to_id("<pad>") == 0
    assert tokenizer.token_to_id("<extra_id_0>") == sw.UMT5_VOCAB + 299
    assert max(tokenizer.encode("a person dancing, 色调").ids) < sw.UMT5_VOCAB + 300
    assert not sw.write_tokenizer(tmp_path)


def test_spec_is_what_the_pinned_packs_build() -> None:
    tree = os.environ.get("STEADYDANCER_COMFYUI_TREE")
    if not tree:
        pytest.skip("STEADYDANCER_COMFYUI_TREE names no ComfyUI tree with the pinned packs")
    pytest.importorskip("torch")
    from bench import synthetic_spec

    assert synthetic_spec.derive(Path(tree)) == SPEC


def results() -> list[Path]:
    return sorted(RESULTS.glob("*.json"))


@pytest.mark.parametrize("path", results(), ids=lambda p: p.stem)
def test_committed_gpu_results_are_verified_videos_with_their_log(path: Path) -> None:
    result = json.loads(path.read_text())
    assert result["command"].startswith("python -m bench.gpu_render ")
    assert result["status"] == "passed"
    workflow = workflows.load(result["workflow"])
    frames = result["parameters"].get("frames", workflow.parameters["frames"].default)
    log = path.with_suffix(".comfyui.log").read_text()
    figures = gpu_render.log_figures(log, result["parameters"].get("steps", 4))
    # Results from before first and warm jobs hold one job's figures at the top level and
    # tqdm's whole seconds, which no longer parse; their video and peak still do.
    jobs = result.get("jobs") or [result]
    for job in jobs:
        (video,) = [o for o in job["outputs"] if "frames" in o]
        assert video["frames"] == frames == video["distinct_frames"]
    assert figures["max_allocated_gib"] == max(job["max_allocated_gib"] for job in jobs)
    if "jobs" in result:
        assert figures["step_s"] == jobs[-1]["step_s"]
    if "floor" in result:
        assert result["floor"]["bf16_forward_s"] > 0


def test_log_figures_read_each_step_of_the_last_complete_sampling() -> None:
    log = (
        "tqdm 0/242 0.000s\rtqdm 242/242 1.234s\n"
        "tqdm 0/4 0.000s\rtqdm 1/4 2.000s\rtqdm 2/4 3.500s\rtqdm 3/4 5.000s\rtqdm 4/4 6.501s\n"
        "[Sampling] Max allocated memory: max_memory=17.590 GB\n"
        "tqdm 0/4 0.000s\rtqdm 1/4 1.200s\rtqdm 2/4 2.300s\n"
        "[Sampling] Max reserved memory: max_reserved=18.281 GB\n"
    )
    figures = gpu_render.log_figures(log, 4)
    assert figures == {
        "step_s": [2.0, 1.5, 1.5, 1.501],
        "sampling_s": 6.501,
        "seconds_per_step": 1.625,
        "steady_s_per_step": 1.5,
        "max_allocated_gib": 17.59,
        "max_reserved_gib": 18.281,
    }
    assert gpu_render.log_figures(log, 8)["step_s"] is None


def test_safetensors_header_length_is_little_endian_u64(tmp_path: Path) -> None:
    items = [sw.Tensor("w", "F32", (2,))]
    path = tmp_path / "w.safetensors"
    sw.write_safetensors(path, items, lambda t: np.ones(2, np.float32).tobytes())
    (length,) = struct.unpack("<Q", path.read_bytes()[:8])
    assert length == len(sw.header(items))
