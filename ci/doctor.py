"""The engine's GPU check: nvidia-smi and torch in a GPU container of the torch layer."""

from __future__ import annotations

import dagger

from ci import pins, source
from ci.image import torch_layer

GPU_SUPPORT_OFF = "GPU support is not enabled"


def doctor_container(profile: pins.Profile, run_id: str) -> dagger.Container:
    """The check, run afresh for each `run_id`: a cached answer would hide today's GPU."""
    ctr = source.with_tool(torch_layer(profile), "gpu_check")
    return (
        ctr.experimental_with_all_gp_us()
        # The CUDA images refuse to start on an older driver; let gpu_check explain instead.
        .with_env_variable("NVIDIA_DISABLE_REQUIRE", "1")
        .with_env_variable("STEADYDANCER_DOCTOR_RUN", run_id)
        .with_exec(["python", source.tool_path("gpu_check"), "--image-cuda", profile.cuda_version])
    )


def explain(error: dagger.QueryError) -> str:
    """Turn the engine's answer into what the user should do."""
    if GPU_SUPPORT_OFF in str(error):
        return (
            "this Dagger engine has no GPU support. Start a GPU engine: export "
            "_EXPERIMENTAL_DAGGER_GPU_SUPPORT=1 on a host with the NVIDIA Container Toolkit "
            "(the CLI then runs the -gpu engine image with --gpus all), or point "
            "_EXPERIMENTAL_DAGGER_RUNNER_HOST at a GPU engine"
        )
    if isinstance(error, dagger.ExecError):
        return (error.stderr or error.stdout or error.message).strip()
    return str(error)
