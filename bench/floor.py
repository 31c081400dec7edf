"""The forward floor of a Wan-14B-shaped DiT at a render's shape, and its attention kernels.

Usage:
  python -m bench.floor --width 480 --height 832 --frames 81 [--out FILE.json]

One DiT block of Wan 2.1 14B (dim 5120, 40 heads, FFN 13824, cross-attention to 512
text and 257 image tokens) is built with random bf16 weights and run 40 times, as the
40 blocks of a forward over SteadyDancer's whole sequence (the video's tokens and its two
reference frames', steadydancer.vram.sequence): the time of a sampling step with nothing
but the transformer's matmuls and attention in bf16 through SDPA. The same forward is
timed with the linears in fp8 (torch._scaled_mm, per-token activation scales and
per-channel weight scales) and SDPA's attention backends (and SageAttention, where
installed) are timed alone at the shape, so a step's time can be read against what each
kernel choice allows. Written by hand because the floor is this project's own yardstick:
no library times a bare Wan block at a given shape.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

DOCKER = str(Path(__file__).resolve().parents[1] / "docker")
if DOCKER not in sys.path:
    sys.path.insert(0, DOCKER)

from steadydancer.vram import sequence, tokens  # noqa: E402

DIM, HEADS, FFN, BLOCKS = 5120, 40, 13824, 40
TEXT_TOKENS, IMAGE_TOKENS = 512, 257


WEIGHTS = {
    "q": (DIM, DIM),
    "k": (DIM, DIM),
    "v": (DIM, DIM),
    "o": (DIM, DIM),
    "cq": (DIM, DIM),
    "ck": (DIM, DIM),
    "cv": (DIM, DIM),
    "cki": (DIM, DIM),
    "cvi": (DIM, DIM),
    "co": (DIM, DIM),
    "f1": (FFN, DIM),
    "f2": (DIM, FFN),
}
"""A Wan block's linears by name: (out, in)."""

Linear = Callable[[Any, str], Any]
"""A linear by the block's name for it: (activations, name) -> activations @ weight.T."""


def attend(q: Any, k: Any, v: Any) -> Any:
    import torch.nn.functional as F

    head = DIM // HEADS

    def split(t: Any) -> Any:
        return t.view(1, -1, HEADS, head).transpose(1, 2)

    out = F.scaled_dot_product_attention(split(q), split(k), split(v))
    return out.transpose(1, 2).reshape(1, -1, DIM)


def block(x: Any, ctx: Any, img: Any, linear: Linear) -> Any:
    """One Wan 2.1 block's matmuls and attention: self-attention, cross-attention to the text
    and image tokens, the FFN; norms without modulation."""
    import torch.nn.functional as F

    h = F.layer_norm(x, (DIM,))
    x = x + linear(attend(linear(h, "q"), linear(h, "k"), linear(h, "v")), "o")
    h = F.layer_norm(x, (DIM,))
    q = linear(h, "cq")
    cross = attend(q, linear(ctx, "ck"), linear(ctx, "cv"))
    cross = cross + attend(q, linear(img, "cki"), linear(img, "cvi"))
    x = x + linear(cross, "co")
    h = F.layer_norm(x, (DIM,))
    return x + linear(F.gelu(linear(h, "f1"), approximate="tanh"), "f2")


def timed(run: Callable[[], Any], repeats: int = 3) -> float:
    """The median of `repeats` runs after one warm-up, in seconds, by CUDA events."""
    import torch

    run()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        run()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1000)
    return sorted(times)[len(times) // 2]


def inputs(n: int) -> tuple[Any, Any, Any]:
    """The hidden states of n video tokens, the text and the image tokens, random bf16."""
    import torch

    dev, bf16 = torch.device("cuda"), torch.bfloat16
    return (
        torch.randn(1, n, DIM, device=dev, dtype=bf16),
        torch.randn(1, TEXT_TOKENS, DIM, device=dev, dtype=bf16),
        torch.randn(1, IMAGE_TOKENS, DIM, device=dev, dtype=bf16),
    )


def measure(width: int, height: int, frames: int, repeats: int = 3) -> dict[str, Any]:
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    torch.manual_seed(0)
    dev = torch.device("cuda")
    bf16 = torch.bfloat16
    n = sequence(width, height, frames)
    head = DIM // HEADS

    def weight(rows: int, cols: int) -> torch.Tensor:
        return torch.randn(rows, cols, device=dev, dtype=bf16) * cols**-0.5

    w = {name: weight(*shape) for name, shape in WEIGHTS.items()}
    from bench.fp8_linear import fp8_linear, quantized

    (held,) = quantized([w], "token", seed=0)
    per_token = fp8_linear("token")

    def linear_bf16(x: torch.Tensor, name: str) -> torch.Tensor:
        return F.linear(x, w[name])

    def linear_fp8(x: torch.Tensor, name: str) -> torch.Tensor:
        return per_token(x, held[name])

    x, ctx, img = inputs(n)

    @torch.inference_mode()
    def forward(linear: Linear) -> None:
        h = x
        for _ in range(BLOCKS):
            h = block(h, ctx, img, linear)

    result: dict[str, Any] = {
        "shape": {
            "width": width,
            "height": height,
            "frames": frames,
            "tokens": tokens(width, height, frames),
            "sequence_tokens": n,
        },
        "model": f"Wan 2.1 14B blocks: dim {DIM}, {HEADS} heads, FFN {FFN}, {BLOCKS} blocks",
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0),
        "bf16_forward_s": round(timed(lambda: forward(linear_bf16), repeats), 3),
    }
    try:
        result["fp8_rowwise_forward_s"] = round(timed(lambda: forward(linear_fp8), repeats), 3)
    except RuntimeError as exc:
        result["fp8_rowwise_forward_s"] = f"unavailable: {str(exc).splitlines()[0][:160]}"
    q = torch.randn(1, HEADS, n, head, device=dev, dtype=bf16)
    attention: dict[str, float | str] = {}
    for backend in ("FLASH_ATTENTION", "CUDNN_ATTENTION", "EFFICIENT_ATTENTION"):
        try:
            with sdpa_kernel(getattr(SDPBackend, backend)):
                seconds = timed(lambda: F.scaled_dot_product_attention(q, q, q), repeats)
            attention[backend.lower()] = round(seconds * 1000, 2)
        except (RuntimeError, AttributeError) as exc:
            attention[backend.lower()] = f"unavailable: {str(exc).splitlines()[0][:120]}"
    try:
        from sageattention import sageattn

        seconds = timed(lambda: sageattn(q, q, q, tensor_layout="HND"), repeats)
        attention["sageattn"] = round(seconds * 1000, 2)
    except ImportError:
        attention["sageattn"] = "unavailable: the sageattention package is not installed"
    except RuntimeError as exc:  # built for another GPU, say: the rest of the floor stands
        attention["sageattn"] = f"unavailable: {str(exc).splitlines()[0][:120]}"
    result["self_attention_ms_per_block"] = attention
    matmul = timed(lambda: F.linear(x, w["f1"]), repeats)
    result["ffn_up_matmul_ms"] = round(matmul * 1000, 2)
    result["ffn_up_matmul_tflops"] = round(2 * n * DIM * FFN / matmul / 1e12, 1)
    return result


def emit(result: dict[str, Any], out: Path | None) -> None:
    """A measurement as JSON on stdout, and into `out` when given."""
    text = json.dumps(result, indent=1)
    if out:
        out.write_text(text + "\n")
    print(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=480)
    parser.add_argument("--height", type=int, default=832)
    parser.add_argument("--frames", type=int, default=81)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.frames % 4 != 1 or args.width % 16 or args.height % 16:
        print("frames must be 4n+1 and width and height multiples of 16", file=sys.stderr)
        return 2
    command = " ".join(["python -m bench.floor", *(argv if argv is not None else sys.argv[1:])])
    emit({"command": command, **measure(args.width, args.height, args.frames)}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
