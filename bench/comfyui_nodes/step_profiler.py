"""A ComfyUI custom node module, loaded by bench.gpu_render --profile-step, that records one
sampling step of one sampler run with torch's profiler (CUDA kernels only, so the step's
work is what the GPU ran) and writes it as a Chrome trace for bench.step_profile.

It adds no node. It wraps comfy.utils.ProgressBar.update_absolute: WanVideoWrapper's sampler
advances a bar of `steps` after each step, so the step K is what runs between the bar's
values K-1 and K. Only bars advanced from the sampler's own file count, and only the sampler
run STEADYDANCER_PROFILE_RUN (1 = the server's first) is recorded, so the first job's
timings stay clean when the warm job is the one profiled.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

NODE_CLASS_MAPPINGS: dict[str, Any] = {}


class StepWindow:
    """Opens the recorder when the sampler's bar of `steps` reaches step-1 in run `run`, and
    closes it when that bar reaches `step`; each bar object is one sampler run."""

    def __init__(self, steps: int, step: int, run: int, recorder: Any) -> None:
        self.steps, self.step, self.run = steps, step, run
        self.recorder = recorder
        self.runs = 0
        # The bars themselves, not their ids: a finished run's bar is freed and its id reused.
        self.last_bar: object = None
        self.open_bar: object = None
        self.done = False

    def progress(self, bar: object, value: int, total: int, caller: str) -> None:
        if self.done or total != self.steps:
            return
        if bar is not self.last_bar:
            self.last_bar = bar
            self.runs += 1
        if self.runs != self.run:
            return
        if self.open_bar is None and value == self.step - 1:
            self.open_bar = bar
            self.recorder.start(caller)
        elif bar is self.open_bar and value == self.step:
            self.recorder.stop()
            self.done = True


class TorchRecorder:
    """torch.profiler over CUDA activity, synchronised at both ends; wall time on the host's
    monotonic clock; the trace and its facts written to `trace`."""

    def __init__(self, trace: Path, step: int) -> None:
        self.trace, self.step = trace, step
        self.profile: Any = None
        self.started = 0.0
        self.caller = ""

    def start(self, caller: str) -> None:
        import torch

        torch.cuda.synchronize()
        self.caller = caller
        self.profile = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA])
        self.profile.__enter__()
        self.started = time.perf_counter()

    def close(self) -> None:
        """Ends a recording left open by a failure, so the server runs on unprofiled."""
        if self.profile is not None:
            self.profile.__exit__(None, None, None)
            self.profile = None

    def stop(self) -> None:
        import torch

        torch.cuda.synchronize()
        wall_ms = (time.perf_counter() - self.started) * 1000
        self.profile.__exit__(None, None, None)
        self.profile.export_chrome_trace(str(self.trace))
        self.profile = None
        facts = {"step": self.step, "wall_ms": round(wall_ms, 3), "caller": self.caller}
        self.trace.with_suffix(".facts.json").write_text(json.dumps(facts) + "\n")
        print(f"step profiler: step {self.step} took {wall_ms:.3f} ms, trace {self.trace}")


def caller_in(file_name: str, depth: int = 5) -> str | None:
    """`file:line` of the nearest frame (within `depth` above the wrapper) in `file_name`."""
    frame = sys._getframe(2)
    for _ in range(depth):
        if frame is None:
            return None
        if os.path.basename(frame.f_code.co_filename) == file_name:
            return f"{file_name}:{frame.f_lineno}"
        frame = frame.f_back  # type: ignore[assignment]
    return None


def install() -> None:
    import comfy.utils  # type: ignore[import-not-found]

    window = StepWindow(
        steps=int(os.environ["STEADYDANCER_PROFILE_STEPS"]),
        step=int(os.environ["STEADYDANCER_PROFILE_STEP"]),
        run=int(os.environ.get("STEADYDANCER_PROFILE_RUN", "1")),
        recorder=TorchRecorder(
            Path(os.environ["STEADYDANCER_PROFILE_TRACE"]),
            int(os.environ["STEADYDANCER_PROFILE_STEP"]),
        ),
    )
    sampler_file = os.environ.get("STEADYDANCER_PROFILE_CALLER", "nodes_sampler.py")
    original = comfy.utils.ProgressBar.update_absolute

    def update_absolute(
        self: Any, value: int, total: int | None = None, preview: Any = None
    ) -> None:
        original(self, value, total, preview)
        caller = caller_in(sampler_file)
        if caller is None:
            return
        try:
            window.progress(self, self.current, self.total, caller)
        except Exception as exc:  # a profiler failure must not fail the job
            window.done = True
            print(f"step profiler: failed: {type(exc).__name__}: {exc}", flush=True)
            try:
                window.recorder.close()
            except Exception as again:
                print(f"step profiler: could not close: {again}", flush=True)

    comfy.utils.ProgressBar.update_absolute = update_absolute


if "STEADYDANCER_PROFILE_TRACE" in os.environ and "comfy" in sys.modules:
    install()
