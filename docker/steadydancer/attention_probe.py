"""Run one small attention call on the GPU with a backend, checked against PyTorch's SDPA.

Usage: python -m steadydancer.attention_probe flash_attn_2|xformers|sdpa

Exit 0 when the backend runs on this GPU and agrees with SDPA; 1 with the reason
otherwise. The entrypoint runs it in a child process, so a kernel that crashes
the interpreter on an unsupported GPU only fails the probe.
"""

from __future__ import annotations

import sys
import time

from steadydancer.gpu_check import FLASH_ATTN_MIN_CAPABILITY

BACKENDS = ("flash_attn_2", "xformers", "sdpa")


def probe(backend: str) -> str:
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("torch sees no CUDA device")
    capability = torch.cuda.get_device_capability()
    if backend == "flash_attn_2" and capability < FLASH_ATTN_MIN_CAPABILITY:
        raise RuntimeError(f"flash-attn needs compute capability 8.0, this GPU has {capability}")
    torch.manual_seed(0)
    # (batch, sequence, heads, head_dim): the layout flash-attn and xformers take.
    q, k, v = (torch.randn(1, 256, 8, 64, device="cuda", dtype=torch.float16) for _ in range(3))
    reference = torch.nn.functional.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    ).transpose(1, 2)
    started = time.perf_counter()
    if backend == "flash_attn_2":
        from flash_attn import flash_attn_func

        out = flash_attn_func(q, k, v)
    elif backend == "xformers":
        import xformers.ops

        out = xformers.ops.memory_efficient_attention(q, k, v)
    else:
        out = reference
    torch.cuda.synchronize()
    elapsed = (time.perf_counter() - started) * 1000
    error = (out.float() - reference.float()).abs().max().item()
    if error > 1e-2:
        raise RuntimeError(f"{backend} disagrees with SDPA by {error:.4f}")
    gpu = f"{torch.cuda.get_device_name()} (sm_{capability[0]}{capability[1]})"
    return f"{backend} ok on {gpu}, {elapsed:.2f} ms, max error {error:.5f}"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in BACKENDS:
        print(f"usage: attention_probe {'|'.join(BACKENDS)}", file=sys.stderr)
        return 2
    try:
        print(probe(args[0]), flush=True)
    except Exception as exc:  # any failure, import or kernel, means: not this backend
        print(f"{args[0]} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
