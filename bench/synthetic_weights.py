"""Synthetic checkpoints with the real files' tensor names, shapes and dtypes, random values.

Usage:
  python -m bench.synthetic_weights write --models DIR [--variant fp8] [--device cuda]
  python -m bench.synthetic_weights spec --comfyui DIR [--out bench/synthetic_spec.json]

`write` lays out, under ComfyUI's models/ folder DIR, every file of the catalog that the
shipped SteadyDancer workflows load for a variant, each with the tensor names, shapes and
dtypes of the published file (from the committed spec) and random values scaled so that
activations stay finite, plus tiny ONNX detectors with the real input and output
signatures. Speed and memory of a render do not depend on the weight values, so these
files stand in for the 28 GB a machine without the Hub cannot download. They are for
benchmarks, never for an image.

`spec` derives the committed spec from the pinned node packs' own model classes on the
meta device (WanVideoWrapper's WanModel with the SteadyDancer modules its loader adds,
its umT5 encoder and VAE, ComfyUI's CLIP-vision ViT-H); the dtype of each tensor follows
the published formats (fp8-scaled: 2-D weights in float8_e4m3fn, each with a float32
`scale_weight`). Regenerate it when a pin moves; tests compare its byte totals with the
catalog's recorded sizes.

safetensors is written by hand here because the safetensors library only saves a
whole dictionary held in memory; streaming one tensor at a time keeps a 16 GB file
within any host's memory.
"""

from __future__ import annotations

import argparse
import json
import math
import struct
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steadydancer import catalog

SPEC_FILE = Path(__file__).with_name("synthetic_spec.json")
LORA_RANK = 64
"""The rank of the lightx2v distill LoRA the workflows load (its file name says rank64)."""
UMT5_VOCAB = 256000
"""umT5's sentencepiece vocabulary; its 300 <extra_id_N> tokens follow, as in its config."""
DTYPE_BYTES = {"F8_E4M3": 1, "BF16": 2, "F16": 2, "F32": 4}
ONNX_FILES = {
    "yolov10m": {"input": ("images", [1, 3, 640, 640]), "output": ("output0", [1, 300, 6])},
    "vitpose-h": {"input": ("input", [1, 3, 256, 192]), "output": ("output", [1, 133, 64, 48])},
}
"""The detectors' signatures as WanAnimatePreprocess reads them: YOLOv10 rows of
(x1, y1, x2, y2, score, class), ViTPose whole-body heatmaps at a quarter of the input."""
DATA_FILES = ("vitpose-h-data",)
"""External-data files of the real ONNX graphs; the synthetic graphs carry their weights inline."""
OFFICIAL_POSE_FILES = ("dwpose-l", "yolox-l")
"""mmpose/mmdet checkpoints of the official pose route (steadydancer-official), which the
GPU bench does not run: not written."""


@dataclass(frozen=True)
class Tensor:
    name: str
    dtype: str
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * DTYPE_BYTES[self.dtype]


def load_spec(path: Path = SPEC_FILE) -> dict[str, Any]:
    return json.loads(path.read_text())


def tensors(spec: dict[str, Any], key: str) -> list[Tensor]:
    """The tensors of catalog file `key`; the LoRA is derived from the DiT's linears."""
    if key == "lightx2v-lora":
        return lora_tensors(tensors(spec, "steadydancer-fp16"))
    return [Tensor(name, dtype, tuple(shape)) for name, dtype, shape in spec["files"][key]]


def lora_tensors(dit: list[Tensor]) -> list[Tensor]:
    """A rank-64 LoRA in ComfyUI's key format over every 2-D weight of the DiT, with bias
    differences for the blocks, as the distill LoRA carries them."""
    out = []
    for t in dit:
        stem = t.name.removesuffix(".weight")
        if len(t.shape) == 2 and t.name.endswith(".weight"):
            out.append(
                Tensor(f"diffusion_model.{stem}.lora_down.weight", "BF16", (LORA_RANK, t.shape[1]))
            )
            out.append(
                Tensor(f"diffusion_model.{stem}.lora_up.weight", "BF16", (t.shape[0], LORA_RANK))
            )
        elif t.name.startswith("blocks.") and t.name.endswith(".bias"):
            out.append(
                Tensor(f"diffusion_model.{t.name.removesuffix('.bias')}.diff_b", "BF16", t.shape)
            )
    return out


def safetensors_size(items: list[Tensor]) -> int:
    return 8 + len(header(items)) + sum(t.nbytes for t in items)


def header(items: list[Tensor]) -> bytes:
    entries: dict[str, Any] = {}
    offset = 0
    for t in items:
        entries[t.name] = {
            "dtype": t.dtype,
            "shape": list(t.shape),
            "data_offsets": [offset, offset + t.nbytes],
        }
        offset += t.nbytes
    raw = json.dumps(entries, separators=(",", ":")).encode()
    return raw + b" " * (-len(raw) % 8)


def scale_of(t: Tensor) -> float:
    """The size of a weight's random values: its fan-in's inverse square root, halved."""
    fan_in = math.prod(t.shape[1:]) if len(t.shape) > 1 else max(math.prod(t.shape), 1)
    return 0.5 / math.sqrt(fan_in)


def random_values(items: list[Tensor], device: str, seed: int) -> Callable[[Tensor], bytes]:
    """Each tensor's bytes, drawn with torch on `device`: norms at one, biases at zero,
    weights scaled by their fan-in; an fp8 weight with a scale_weight holds unit values and
    its scale carries the size, as in the published fp8-scaled files."""
    import torch

    dtypes = {
        "F8_E4M3": torch.float8_e4m3fn,
        "BF16": torch.bfloat16,
        "F16": torch.float16,
        "F32": torch.float32,
    }
    generator = torch.Generator(device=device).manual_seed(seed)
    by_name = {t.name: t for t in items}
    scaled = {
        n.removesuffix("scale_weight") + "weight" for n in by_name if n.endswith(".scale_weight")
    }

    def draw(t: Tensor) -> Any:
        dtype, leaf = dtypes[t.dtype], t.name.rsplit(".", 1)[-1]
        if t.name.endswith(".scale_weight"):
            weight = by_name[t.name.removesuffix("scale_weight") + "weight"]
            return torch.full(t.shape, scale_of(weight), dtype=dtype, device=device)
        if len(t.shape) <= 1 and ("norm" in t.name or leaf == "gamma"):
            return torch.ones(t.shape, dtype=dtype, device=device)
        if len(t.shape) <= 1 and leaf in ("bias", "diff_b"):
            return torch.zeros(t.shape, dtype=dtype, device=device)
        size = 1.0 if t.name in scaled else scale_of(t)
        sample = torch.randn(t.shape, generator=generator, device=device, dtype=torch.float32)
        return (sample.clamp_(-4, 4) * size).to(dtype)

    def to_bytes(t: Tensor) -> bytes:
        data = draw(t).contiguous().reshape(-1)
        return bytes(data.view(torch.uint8).cpu().numpy().tobytes())

    return to_bytes


def write_safetensors(path: Path, items: list[Tensor], values: Callable[[Tensor], bytes]) -> int:
    """Stream one tensor at a time into `path` (via a .partial); returns the bytes written."""
    raw = header(items)
    partial = path.with_name(path.name + ".partial")
    path.parent.mkdir(parents=True, exist_ok=True)
    with partial.open("wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for t in items:
            data = values(t)
            if len(data) != t.nbytes:
                raise ValueError(f"{t.name}: {len(data)} bytes for {t.dtype}{list(t.shape)}")
            f.write(data)
    partial.replace(path)
    return path.stat().st_size


def write_onnx(path: Path, key: str) -> None:
    """A graph with the detector's signature: YOLO finds nobody (the pack then takes the whole
    frame as the person), ViTPose answers the same 133 heatmap peaks for every crop."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    (in_name, in_shape), (out_name, out_shape) = ONNX_FILES[key]["input"], ONNX_FILES[key]["output"]
    rng = np.random.default_rng(0)
    const = np.zeros(out_shape[1:], dtype=np.float32)
    if key == "vitpose-h":
        _, h, w = out_shape[1:]
        for k in range(out_shape[1]):
            y, x = rng.integers(h // 8, h - h // 8), rng.integers(w // 4, w - w // 4)
            const[k, y, x] = 0.9
    nodes = [
        # The input's mean times zero ties the output to the input (so runtimes keep the
        # graph) and gives it the input's batch size.
        helper.make_node("ReduceMean", [in_name], ["mean"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Reshape", ["mean", "batch_shape"], ["per_item"]),
        helper.make_node("Mul", ["per_item", "zero"], ["tied"]),
        helper.make_node("Add", ["const", "tied"], [out_name]),
    ]
    graph = helper.make_graph(
        nodes,
        key,
        [helper.make_tensor_value_info(in_name, TensorProto.FLOAT, ["batch", *in_shape[1:]])],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, ["batch", *out_shape[1:]])],
        initializer=[
            numpy_helper.from_array(np.float32(0.0).reshape(()), "zero"),
            numpy_helper.from_array(np.array([-1] + [1] * (len(out_shape) - 1)), "batch_shape"),
            numpy_helper.from_array(const, "const"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def write_tokenizer(folder: Path) -> bool:
    """A umT5-shaped tokenizer.json (the real vocabulary's size and special ids, made-up
    pieces) for a WanVideoWrapper tree whose copy lacks the real file (git snapshots leave
    out files over a few MiB); the ids it yields index the synthetic encoder's table.
    Returns whether it wrote one."""
    target = folder / "tokenizer.json"
    if target.exists() or (folder / "spiece.model").exists():
        return False
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    specials = ["<pad>", "</s>", "<s>", "<unk>"]
    chars = [chr(c) for c in range(33, 127)] + ["\u2581" + chr(c) for c in range(33, 127)]
    pieces = specials + chars
    pieces += [f"\u2581w{i}" for i in range(UMT5_VOCAB - len(pieces))]
    vocab = [(p, 0.0 if p in specials else -10.0) for p in pieces]
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=3, byte_fallback=False))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    tokenizer.add_special_tokens(specials + [f"<extra_id_{i}>" for i in range(300)][::-1])
    tokenizer.save(str(target))
    return True


def uncovered(variant: str, spec: dict[str, Any]) -> list[str]:
    """The files of `variant` (unknown: a ValueError) that nothing here can stand in for."""
    return [
        entry.key
        for entry in catalog.files_for(variant)
        if entry.key not in ONNX_FILES
        and entry.key not in DATA_FILES
        and entry.key not in OFFICIAL_POSE_FILES
        and entry.key != "lightx2v-lora"
        and entry.key not in spec["files"]
    ]


def write_variant(models: Path, variant: str, device: str, spec: dict[str, Any]) -> Iterator[str]:
    """Write every file of `variant` that is missing under `models`; yields a line per file.
    A variant the spec does not cover is a ValueError naming its files, before anything is
    written."""
    missing = uncovered(variant, spec)
    if missing:
        raise ValueError(
            f"variant {variant!r} needs {', '.join(missing)}, which the spec lacks; "
            f"it covers {', '.join(sorted(spec['files']))}"
        )
    for index, entry in enumerate(catalog.files_for(variant)):
        target = models / entry.target
        if target.exists():
            yield f"{entry.target}: present, kept"
            continue
        if entry.key in OFFICIAL_POSE_FILES:
            yield f"{entry.target}: not written (official pose route only)"
            continue
        started = time.monotonic()
        if entry.key in ONNX_FILES:
            write_onnx(target, entry.key)
        elif entry.key in DATA_FILES:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(b"")
        else:
            items = tensors(spec, entry.key)
            write_safetensors(target, items, random_values(items, device, seed=index))
        took = time.monotonic() - started
        yield f"{entry.target}: {target.stat().st_size / 1e9:.2f} GB in {took:.1f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    write = sub.add_parser("write", help="lay out a variant's synthetic files")
    write.add_argument("--models", type=Path, required=True, help="ComfyUI's models/ folder")
    write.add_argument("--variant", default=catalog.DEFAULT_VARIANT)
    write.add_argument("--device", default="cuda", help="where random values are drawn")
    derive = sub.add_parser("spec", help="derive the spec from the pinned node packs")
    derive.add_argument("--comfyui", type=Path, required=True, help="ComfyUI tree with the packs")
    derive.add_argument("--out", type=Path, default=SPEC_FILE)
    args = parser.parse_args(argv)
    if args.command == "spec":
        from bench import synthetic_spec

        spec = synthetic_spec.derive(args.comfyui)
        args.out.write_text(synthetic_spec.dumps(spec))
        print(f"{args.out}: {sum(len(v) for v in spec['files'].values())} tensors")
        return 0
    try:
        for line in write_variant(args.models, args.variant, args.device, load_spec()):
            print(line, flush=True)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
