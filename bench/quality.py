"""The quality gate of a speed path: its output against the bf16/SDPA path's, same seed and inputs.

Usage:
  python -m bench.quality --reference REF.json --candidate FAST.json

Both are bench.gpu_render results of the same checkpoint, workflow, size, seed and
inputs (every job of the candidate is compared with the reference's job of the same
number). For each job the sampler's final latents (ComfyUI's SaveLatent file) and the
decoded frames of the delivered video are compared: relative error ||x - ref|| / ||ref||
and PSNR (latents against the reference's peak-to-peak range, frames against 255). The
verdict and the numbers are written into the candidate's JSON under "quality".

Thresholds (GATE): the latents within 5 % relative error and the frames at 30 dB PSNR or
more. Two renders that differ only in rounding (bf16 operands give 1e-3 to 1e-2 per matmul,
compounded over 40 blocks and 4 steps) land well inside both; a different seed lands near
141 % relative error (two independent unit-variance draws), and 30 dB is where the
video-quantization literature reads an 8-bit frame difference as hard to see. With
synthetic weights (random values, real shapes) the gate measures the arithmetic alone:
real checkpoints have outlier activations that unit-scaled fp8 clamps, so a pass there is
necessary, not sufficient; with the real weights in place the same commands run unchanged.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

GATE = {"latent_relative_error_max": 0.05, "frames_psnr_db_min": 30.0}


def relative_error(candidate: np.ndarray, reference: np.ndarray) -> float:
    reference = reference.astype(np.float64)
    norm = float(np.linalg.norm(reference))
    if norm == 0:
        raise ValueError("the reference is all zeros: nothing to compare against")
    return float(np.linalg.norm(candidate.astype(np.float64) - reference)) / norm


def psnr(candidate: np.ndarray, reference: np.ndarray, peak: float) -> float:
    """Peak signal to noise ratio in dB; infinite for identical arrays, NaN never passes."""
    mse = float(np.mean((candidate.astype(np.float64) - reference.astype(np.float64)) ** 2))
    if math.isnan(mse):
        return math.nan
    return math.inf if mse == 0 else 10 * math.log10(peak**2 / mse)


def load_latent(path: Path) -> np.ndarray:
    from safetensors.numpy import load_file

    tensors = load_file(str(path))
    return np.asarray(tensors["latent_tensor"], dtype=np.float32)


def load_frames(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return np.stack(frames)


def compare(reference: dict[str, Any], candidate: dict[str, Any]) -> dict[str, Any]:
    """One job's figures and verdict, from the two jobs' latent and video paths."""
    if reference["shape"] != candidate["shape"]:
        raise ValueError(f"shapes differ: {reference['shape']} against {candidate['shape']}")
    figures: dict[str, Any] = {}
    ref_latent, cand_latent = (
        load_latent(Path(reference["latent"])),
        load_latent(Path(candidate["latent"])),
    )
    finite = bool(np.isfinite(cand_latent).all())
    figures["latent_finite"] = finite
    figures["latent_relative_error"] = round(relative_error(cand_latent, ref_latent), 5)
    span = float(ref_latent.max() - ref_latent.min())
    figures["latent_psnr_db"] = round(psnr(cand_latent, ref_latent, span), 2)
    ref_frames, cand_frames = (
        load_frames(Path(reference["video"])),
        load_frames(Path(candidate["video"])),
    )
    figures["frames_relative_error"] = round(relative_error(cand_frames, ref_frames), 5)
    figures["frames_psnr_db"] = round(psnr(cand_frames, ref_frames, 255.0), 2)
    figures["passed"] = bool(
        finite
        and figures["latent_relative_error"] <= GATE["latent_relative_error_max"]
        and figures["frames_psnr_db"] >= GATE["frames_psnr_db_min"]
    )
    return figures


def job_files(result: dict[str, Any]) -> list[dict[str, Any]]:
    shape = {key: result["parameters"].get(key) for key in ("width", "height", "frames")}
    files = []
    for job in result.get("jobs", []):
        video = next((o["path"] for o in job.get("outputs", []) if "frames" in o), None)
        files.append({"latent": job.get("latent"), "video": video, "shape": shape})
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, required=True)
    parser.add_argument("--candidate", type=Path, required=True)
    args = parser.parse_args(argv)
    reference = json.loads(args.reference.read_text())
    candidate = json.loads(args.candidate.read_text())
    for key in ("variant", "workflow"):
        if reference.get(key) != candidate.get(key):
            print(
                f"{key} differs: {reference.get(key)} against {candidate.get(key)}", file=sys.stderr
            )
            return 2
    jobs = []
    for ref, cand in zip(job_files(reference), job_files(candidate), strict=False):
        if not (ref["latent"] and cand["latent"] and ref["video"] and cand["video"]):
            jobs.append({"passed": False, "error": "a job lacks its latent or its video"})
            continue
        try:
            jobs.append(compare(ref, cand))
        except (ValueError, OSError, KeyError) as exc:
            jobs.append({"passed": False, "error": str(exc)})
    quality = {
        "reference": str(args.reference),
        "gate": GATE,
        "weights": candidate.get("weights"),
        "jobs": jobs,
        "passed": bool(jobs) and all(job["passed"] for job in jobs),
    }
    candidate["quality"] = quality
    args.candidate.write_text(json.dumps(candidate, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps(quality, indent=1))
    return 0 if quality["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
