"""fp8 linear recipes on a Wan-14B-shaped forward: how far each lands from bf16, what it costs.

Usage:
  python -m bench.fp8_linear [--frames 81 ...] [--spreads 0.5 2 8] [--compile] [--out FILE.json]

WanVideoWrapper's fp8 matmul (quantization `*_fast`, compute=fp8 here) merges the LoRA into
the checkpoint's weights in fp32 and rounds the merged weight back to float8_e4m3fn with
stochastic rounding at unit scale, so the fp8-scaled checkpoint's per-tensor scale is lost;
activations are cast to fp8 at unit scale too (clamped at +-448). A weight whose values sit
below e4m3's normal range (2**-6) keeps one to three bits there. This bench builds the 40
blocks of Wan 2.1 14B (bench.floor's block) with random weights of a given spread (standard
deviation `spread / sqrt(fan_in)`; the bench's synthetic checkpoints use 0.5), stores them as
the fp8-scaled checkpoint does (e4m3 with one scale per tensor), merges a rank-32 LoRA whose
Frobenius norm is `LORA_SHARE` of the weight's, and runs the forward with each recipe:

  bf16    the merged weight in bf16, SDPA: what the shipped path computes (the reference)
  unit    the wrapper's fp8 path: merged weight stochastically rounded to e4m3 at unit scale,
          activations cast at unit scale
  tensor  the same with the merged weight brought into e4m3's range by one scale per tensor,
          kept for the matmul: the wrapper's path with the checkpoint's scale not dropped
  token   per-channel weight scales and per-token activation scales (torch._scaled_mm rowwise)

For each spread it records the relative error (Frobenius) of the last hidden state against
bf16, and at the first spread the forward's time, eager and with `--compile` under
torch.compile (mode default, one graph for the 40 blocks, as the workflows' compile setting).
It is a proxy for the render's quality gate (bench.quality compares the sampler's latents after
four steps), run without ComfyUI in seconds. Written by hand because the question is the
wrapper's own rounding: no library reproduces it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.floor import BLOCKS, WEIGHTS, block, emit, inputs, timed, tokens

E4M3_MAX = 448.0
LORA_RANK = 32
LORA_SHARE = 0.05
"""The LoRA's Frobenius norm over the weight's: a small correction, as a distillation LoRA is."""
RECIPES = ("unit", "tensor", "token")
WIDTH, HEIGHT = 480, 832
Forward = Callable[[Any, Any, Any, list[dict[str, Any]]], Any]
"""(hidden states, text tokens, image tokens, each block's weights) -> last hidden states."""


def stochastic_e4m3(x: Any, generator: Any) -> Any:
    """x rounded to float8_e4m3fn stochastically (up with the probability of its distance from
    the value below), as the wrapper's merge does; no scale, clamped to e4m3's range."""
    import torch

    x = x.float().clamp(-E4M3_MAX, E4M3_MAX)
    exponent = torch.floor(torch.log2(x.abs().clamp(min=2.0**-9))).clamp(min=-6)
    ulp = torch.exp2(exponent - 3)
    steps = x / ulp
    below = torch.floor(steps)
    up = torch.rand(x.shape, generator=generator, device=x.device) < (steps - below)
    return ((below + up) * ulp).clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn)


def merged_weights(spread: float, seed: int) -> list[dict[str, Any]]:
    """Each block's merged weights in bf16: a random weight stored as the fp8-scaled checkpoint
    stores it, dequantized, plus a rank-32 LoRA."""
    import torch

    generator = torch.Generator(device="cuda").manual_seed(seed)
    blocks = []
    for _ in range(BLOCKS):
        weights = {}
        for name, (rows, cols) in WEIGHTS.items():
            w = torch.randn(rows, cols, device="cuda", generator=generator) * (spread / cols**0.5)
            scale = w.abs().amax() / E4M3_MAX
            w = (w / scale).to(torch.float8_e4m3fn).float() * scale
            a = torch.randn(LORA_RANK, cols, device="cuda", generator=generator)
            b = torch.randn(rows, LORA_RANK, device="cuda", generator=generator)
            delta = b @ a
            delta *= LORA_SHARE * w.norm() / delta.norm()
            weights[name] = (w + delta).to(torch.bfloat16)
            del w, a, b, delta
        blocks.append(weights)
    return blocks


def quantized(blocks: list[dict[str, Any]], recipe: str, seed: int) -> list[dict[str, Any]]:
    """The blocks' weights as `recipe` holds them: (e4m3 weight, its scale for _scaled_mm)."""
    import torch

    generator = torch.Generator(device="cuda").manual_seed(seed)
    out = []
    for weights in blocks:
        held = {}
        for name, w in weights.items():
            if recipe == "unit":
                held[name] = (stochastic_e4m3(w, generator), torch.ones((), device="cuda"))
            elif recipe == "tensor":
                scale = w.float().abs().amax() / E4M3_MAX
                held[name] = (stochastic_e4m3(w.float() / scale, generator), scale)
            else:
                scale = w.float().abs().amax(dim=1, keepdim=True) / E4M3_MAX
                held[name] = ((w.float() / scale).to(torch.float8_e4m3fn), scale.t().contiguous())
        out.append(held)
    return out


def fp8_linear(recipe: str) -> Callable[[Any, tuple[Any, Any]], Any]:
    """x @ W.T for a weight held by `recipe`, with that recipe's activation scaling."""
    import torch

    def linear(x: Any, held: tuple[Any, Any]) -> Any:
        weight, scale_w = held
        flat = x.reshape(-1, x.shape[-1])
        if recipe == "token":
            scale_x = flat.abs().amax(dim=1, keepdim=True).float().clamp(min=1e-12) / E4M3_MAX
            x8 = (flat / scale_x).to(torch.float8_e4m3fn)
        else:
            scale_x = torch.ones((), device=x.device)
            x8 = flat.clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn)
        out = torch._scaled_mm(
            x8, weight.t(), scale_a=scale_x, scale_b=scale_w, out_dtype=torch.bfloat16
        )
        return out.reshape(*x.shape[:-1], -1)

    return linear


def bf16_linear(x: Any, weight: Any) -> Any:
    import torch.nn.functional as F

    return F.linear(x, weight)


def forward_of(linear: Callable[[Any, Any], Any], compiled: bool) -> Forward:
    """The 40-block forward with `linear`; the block under torch.compile when `compiled`."""
    import torch

    def one(x: Any, ctx: Any, img: Any, weights: dict[str, Any]) -> Any:
        return block(x, ctx, img, lambda t, name: linear(t, weights[name]))

    step = torch.compile(one, dynamic=False) if compiled else one

    @torch.inference_mode()
    def forward(x: Any, ctx: Any, img: Any, blocks: list[dict[str, Any]]) -> Any:
        for weights in blocks:
            x = step(x, ctx, img, weights)
        return x

    return forward


def seconds(
    forward: Forward, x: Any, ctx: Any, img: Any, blocks: list[dict[str, Any]]
) -> float | str:
    """The forward's time, or why torch.compile could not run it (recorded, not fatal: the
    eager figures stand on their own)."""
    try:
        return round(timed(lambda: forward(x, ctx, img, blocks)), 3)
    except RuntimeError as exc:
        return f"unavailable: {str(exc).splitlines()[0][:160]}"


def relative_error(out: Any, ref: Any) -> float:
    return float((out.float() - ref.float()).norm() / ref.float().norm())


def measure(frames: int, spreads: list[float], compiled: bool, seed: int = 0) -> dict[str, Any]:
    import torch

    n = tokens(WIDTH, HEIGHT, frames)
    torch.manual_seed(seed)
    x, ctx, img = inputs(n)
    result: dict[str, Any] = {
        "shape": {"width": WIDTH, "height": HEIGHT, "frames": frames, "tokens": n},
        "error": {},
        "forward_s": {},
    }
    bf16 = forward_of(bf16_linear, False)
    for index, spread in enumerate(spreads):
        timing = index == 0
        blocks = merged_weights(spread, seed)
        reference = bf16(x, ctx, img, blocks)
        if timing:
            result["forward_s"]["bf16"] = seconds(bf16, x, ctx, img, blocks)
            if compiled:
                run = forward_of(bf16_linear, True)
                result["forward_s"]["bf16+compile"] = seconds(run, x, ctx, img, blocks)
        errors: dict[str, float] = {}
        for recipe in RECIPES:
            held = quantized(blocks, recipe, seed + 1)
            eager = forward_of(fp8_linear(recipe), False)
            errors[recipe] = round(relative_error(eager(x, ctx, img, held), reference), 5)
            if timing:
                result["forward_s"][recipe] = seconds(eager, x, ctx, img, held)
                if compiled:
                    run = forward_of(fp8_linear(recipe), True)
                    result["forward_s"][f"{recipe}+compile"] = seconds(run, x, ctx, img, held)
            held.clear()
            torch.cuda.empty_cache()
        result["error"][str(spread)] = errors
        print(json.dumps({"frames": frames, "spread": spread, "error": errors}), flush=True)
        blocks.clear()
        torch.cuda.empty_cache()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[81])
    parser.add_argument("--spreads", type=float, nargs="+", default=[0.5, 2.0, 8.0])
    parser.add_argument("--compile", action="store_true", help="also time under torch.compile")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    bad = [f for f in args.frames if f < 1 or f % 4 != 1]
    if bad:
        parser.error(f"--frames {bad[0]}: frame counts are 4n+1 (33, 81)")
    if any(s <= 0 for s in args.spreads):
        parser.error("--spreads: each spread is a positive number (0.5 is the bench's weights)")
    import torch

    started = time.perf_counter()
    result: dict[str, Any] = {
        "command": " ".join(["python -m bench.fp8_linear", *(argv or sys.argv[1:])]),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0),
        "lora": {"rank": LORA_RANK, "share": LORA_SHARE},
        "runs": [measure(frames, args.spreads, args.compile) for frames in args.frames],
    }
    result["wall_s"] = round(time.perf_counter() - started, 1)
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
