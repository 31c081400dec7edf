"""Report the GPUs, the driver's CUDA version and torch's view; fail when the image can't run.

Usage: gpu_check.py [--image-cuda 12.4.1] [--skip-torch]

The image's CUDA version defaults to $CUDA_VERSION, which the nvidia/cuda base
images set. Standard library only (torch is imported if present), so it runs in
any layer and at boot.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass

# The oldest Linux driver for each CUDA release (NVIDIA's CUDA Toolkit release notes, table 3).
MIN_DRIVER = {
    (12, 1): "530.30.02",
    (12, 4): "550.54.14",
}
FLASH_ATTN_MIN_CAPABILITY = (8, 0)


class CheckError(Exception):
    """A reason the image cannot run here, worded for the person reading the log."""


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    memory_mib: int
    compute_capability: tuple[int, int]


@dataclass(frozen=True)
class Driver:
    version: str
    cuda: tuple[int, int]


def version_tuple(text: str) -> tuple[int, int]:
    match = re.match(r"\s*(\d+)\.(\d+)", text)
    if not match:
        raise CheckError(f"cannot read a CUDA version from {text!r}")
    return int(match.group(1)), int(match.group(2))


def run_nvidia_smi(args: list[str]) -> str:
    if shutil.which("nvidia-smi") is None:
        raise CheckError(
            "nvidia-smi is not in this container: no GPU was given to it. On a Dagger engine, "
            "start the engine with GPU support (_EXPERIMENTAL_DAGGER_GPU_SUPPORT=1, the -gpu "
            "engine image); with Docker, run with --gpus all"
        )
    result = subprocess.run(["nvidia-smi", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()
        raise CheckError(f"nvidia-smi failed (exit {result.returncode}): {detail}")
    return result.stdout


def parse_driver(header: str) -> Driver:
    """Read the driver version and its CUDA version from nvidia-smi's banner."""
    driver = re.search(r"Driver Version:\s*([\d.]+)", header)
    cuda = re.search(r"CUDA Version:\s*([\d.]+)", header)
    if not driver or not cuda:
        raise CheckError("nvidia-smi printed no driver or CUDA version")
    return Driver(driver.group(1), version_tuple(cuda.group(1)))


def parse_gpus(csv: str) -> list[Gpu]:
    """Parse `--query-gpu=index,name,memory.total,compute_cap --format=csv,noheader,nounits`."""
    gpus = []
    for line in csv.strip().splitlines():
        index, name, memory, capability = (field.strip() for field in line.split(","))
        gpus.append(Gpu(int(index), name, int(float(memory)), version_tuple(capability)))
    if not gpus:
        raise CheckError("nvidia-smi lists no GPU")
    return gpus


def check_driver(driver: Driver, image_cuda: tuple[int, int]) -> None:
    """The driver must support the image's CUDA major.minor."""
    if driver.cuda >= image_cuda:
        return
    wanted = ".".join(map(str, image_cuda))
    have = ".".join(map(str, driver.cuda))
    need = MIN_DRIVER.get(image_cuda)
    advice = f"a driver >= {need}" if need else f"a driver that supports CUDA {wanted}"
    older = [
        f"CUDA {major}.{minor} (profile cu{major}{minor})"
        for (major, minor) in sorted(MIN_DRIVER)
        if (major, minor) <= driver.cuda
    ]
    choice = f", or an image built for {older[-1]}" if older else ""
    raise CheckError(
        f"the driver ({driver.version}) supports CUDA up to {have}, but this image is built "
        f"for CUDA {wanted}: use {advice}{choice}"
    )


def torch_report() -> list[str]:
    try:
        import torch
    except ImportError as exc:
        raise CheckError(f"torch does not import: {exc}") from None
    if not torch.cuda.is_available():
        raise CheckError(
            f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no CUDA device"
        )
    lines = [f"torch {torch.__version__}, built for CUDA {torch.version.cuda}"]
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        lines.append(
            f"torch device {index}: {props.name}, sm_{props.major}{props.minor}, "
            f"{props.total_memory // 2**20} MiB"
        )
    return lines


def report(image_cuda: tuple[int, int], with_torch: bool) -> list[str]:
    driver = parse_driver(run_nvidia_smi([]))
    gpus = parse_gpus(
        run_nvidia_smi(
            [
                "--query-gpu=index,name,memory.total,compute_cap",
                "--format=csv,noheader,nounits",
            ]
        )
    )
    lines = [f"driver {driver.version}, supports CUDA up to {driver.cuda[0]}.{driver.cuda[1]}"]
    for gpu in gpus:
        flash = "yes" if gpu.compute_capability >= FLASH_ATTN_MIN_CAPABILITY else "no (needs sm_80)"
        major, minor = gpu.compute_capability
        lines.append(
            f"gpu {gpu.index}: {gpu.name}, sm_{major}{minor}, {gpu.memory_mib} MiB, "
            f"flash-attn: {flash}"
        )
    check_driver(driver, image_cuda)
    lines.append(f"image CUDA {image_cuda[0]}.{image_cuda[1]}: supported by this driver")
    if with_torch:
        lines.extend(torch_report())
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-cuda", default=os.environ.get("CUDA_VERSION", ""))
    parser.add_argument("--skip-torch", action="store_true")
    args = parser.parse_args(argv)
    try:
        if not args.image_cuda:
            raise CheckError(
                "the image's CUDA version is unknown: pass --image-cuda or set CUDA_VERSION"
            )
        for line in report(version_tuple(args.image_cuda), not args.skip_torch):
            print(line, flush=True)
    except CheckError as exc:
        print(f"gpu check failed: {exc}", file=sys.stderr)
        return 1
    print("gpu check passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
