"""The GPU bench's own machinery, run here for real: step times read off real tqdm output, the
watchdog ending a run whose server died, the patch step of the tree layout inside another
checkout, and the quality gate on real latent files and real encoded videos."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from steadydancer import smoke

from bench import gpu_render, quality, step_profile, trees

TQDM_PROGRAM = """
import sys, time
from tqdm import tqdm
for _ in tqdm(range(242), desc="Loading parameters"):
    pass
for seconds in tqdm((0.30, 0.10, 0.10, 0.10)):
    time.sleep(seconds)
"""


def test_step_times_come_from_the_samplers_own_tqdm_clock_to_the_millisecond() -> None:
    done = subprocess.run(
        [sys.executable, "-c", TQDM_PROGRAM],
        capture_output=True,
        text=True,
        env={**os.environ, **gpu_render.TQDM_ENV},
        check=True,
    )
    figures = gpu_render.log_figures(done.stderr, 4)
    steps = figures["step_s"]
    assert steps is not None and len(steps) == 4
    # tqdm's clock starts before the first step and counts to the millisecond.
    assert 0.29 <= steps[0] < 0.5 and all(0.095 <= s < 0.25 for s in steps[1:])
    assert figures["steady_s_per_step"] == pytest.approx(sum(steps[1:]) / 3, abs=0.002)
    assert figures["sampling_s"] == pytest.approx(sum(steps), abs=0.004)


def test_the_watchdog_ends_a_run_as_soon_as_its_server_exits(tmp_path: Path) -> None:
    """The 'server' is a real process that dies after half a second; nothing listens on the
    port, so without the watchdog the client would wait out its ready timeout."""
    server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
    watchdog = gpu_render.Watchdog(server)
    started = time.monotonic()
    with pytest.raises(smoke.Stopped):
        smoke.run(
            f"http://127.0.0.1:{gpu_render.free_port()}",
            "steadydancer-pose",
            "generate",
            "fp8",
            "sdpa",
            [],
            tmp_path,
            ready_timeout=120,
            run_timeout=120,
        )
    watchdog.done.set()
    assert watchdog.died_with == 0
    assert time.monotonic() - started < 20


def git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_a_patch_applies_to_a_pack_laid_out_inside_another_checkout(tmp_path: Path) -> None:
    outer = tmp_path / "checkout"
    pack = outer / "trees" / "ComfyUI-Pack"
    pack.mkdir(parents=True)
    git("init", "-q", cwd=outer)
    (pack / "sampler.py").write_text("steps = 4\n")
    patch = tmp_path / "fix.patch"
    patch.write_text("--- a/sampler.py\n+++ b/sampler.py\n@@ -1 +1 @@\n-steps = 4\n+steps = 8\n")
    trees.apply_patch(pack, patch)
    assert (pack / "sampler.py").read_text() == "steps = 8\n"
    (pack / "sampler.py").write_text("steps = 6\n")
    with pytest.raises(trees.TreeError, match="does not apply to ComfyUI-Pack"):
        trees.apply_patch(pack, patch)


def test_an_archive_that_is_missing_is_named_with_its_pack(tmp_path: Path) -> None:
    code = trees.main(["--into", str(tmp_path), "--archive", "ComfyUI=/nonexistent.tar.gz"])
    assert code == 1
    assert trees.main(["--into", str(tmp_path), "--archive", "NotAPack=x.tgz"]) == 2


def write_outputs(
    folder: Path, latent: np.ndarray, frames: np.ndarray, name: str
) -> dict[str, str]:
    import av
    from safetensors.numpy import save_file

    latent_path = folder / f"{name}.latent"
    save_file({"latent_tensor": latent}, str(latent_path))
    video = folder / f"{name}.mp4"
    with av.open(str(video), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(16))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": "0"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return {"latent": str(latent_path), "video": str(video)}


def result_file(folder: Path, name: str, jobs: list[dict[str, str]]) -> Path:
    path = folder / f"{name}.json"
    record = {
        "variant": "fp8",
        "workflow": "steadydancer-pose",
        "weights": "synthetic (random values, real shapes)",
        "parameters": {"width": 64, "height": 64, "frames": 9},
        "jobs": [
            {"latent": job["latent"], "outputs": [{"path": job["video"], "frames": 9}]}
            for job in jobs
        ],
    }
    path.write_text(json.dumps(record))
    return path


def test_the_quality_gate_passes_rounding_and_fails_a_degraded_render(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    latent = rng.standard_normal((1, 16, 3, 8, 8)).astype(np.float32)
    frames = rng.integers(0, 256, (9, 64, 64, 3), dtype=np.uint8)
    frames = np.repeat(np.repeat(frames[:, ::8, ::8], 8, axis=1), 8, axis=2)
    reference = write_outputs(tmp_path, latent, frames, "ref")
    rounded = write_outputs(
        tmp_path,
        latent * (1 + 1e-3 * rng.standard_normal(latent.shape)).astype(np.float32),
        frames,
        "rounded",
    )
    noisy = np.clip(frames + rng.normal(0, 40, frames.shape), 0, 255).astype(np.uint8)
    degraded = write_outputs(
        tmp_path,
        latent + 0.3 * rng.standard_normal(latent.shape).astype(np.float32),
        noisy,
        "degraded",
    )
    ref_json = result_file(tmp_path, "ref", [reference])
    good = result_file(tmp_path, "good", [rounded])
    bad = result_file(tmp_path, "bad", [degraded])
    assert quality.main(["--reference", str(ref_json), "--candidate", str(good)]) == 0
    gate = json.loads(good.read_text())["quality"]
    assert gate["passed"] and gate["jobs"][0]["latent_relative_error"] < 0.01
    assert gate["jobs"][0]["frames_psnr_db"] > 40
    assert quality.main(["--reference", str(ref_json), "--candidate", str(bad)]) == 1
    failed = json.loads(bad.read_text())["quality"]["jobs"][0]
    assert failed["latent_relative_error"] > 0.2 and failed["frames_psnr_db"] < 30


def test_psnr_and_relative_error_are_the_textbook_ones() -> None:
    reference = np.array([0.0, 255.0, 0.0, 255.0])
    assert quality.psnr(reference, reference, 255) == float("inf")
    assert quality.psnr(reference + 1, reference, 255) == pytest.approx(48.13, abs=0.01)
    assert quality.relative_error(reference * 1.1, reference) == pytest.approx(0.1)
    assert np.isnan(quality.psnr(np.array([np.nan]), np.array([1.0]), 1.0))
    with pytest.raises(ValueError, match="all zeros"):
        quality.relative_error(reference, np.zeros(4))


PROFILER = Path(gpu_render.PROFILER_NODES) / "step_profiler.py"
BAR_PROGRAM = """
class ProgressBar:
    '''ComfyUI 3cd7b32's contract: update(n) advances through update_absolute(current + n).'''

    def __init__(self, total):
        self.total, self.current = total, 0

    def update_absolute(self, value, total=None, preview=None):
        self.current = min(value, self.total)

    def update(self, value):
        self.update_absolute(self.current + value)
"""
SAMPLER_PROGRAM = """
from comfy.utils import ProgressBar

def sample(steps, work):
    bar = ProgressBar(steps)
    for step in range(1, steps + 1):
        work.append(("sampler", step))
        bar.update(1)
"""


class Recorder:
    """Stands in for torch's profiler, which is not installed here: it notes when the window
    opens and closes. The profiler itself ran on the GPU (bench/results/*-profile.json)."""

    def __init__(self, work: list[tuple[str, int]]) -> None:
        self.work = work

    def start(self, caller: str) -> None:
        self.work.append(("start", int(caller.rsplit(":", 1)[1])))

    def stop(self) -> None:
        self.work.append(("stop", 0))


def load_profiler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recorder: Recorder, run: str
) -> tuple[Any, Any, Any]:
    """step_profiler.py loaded as ComfyUI loads a custom-node file, beside a comfy.utils whose
    bar class keeps ComfyUI's contract and a sampler file that advances one bar a step."""
    import importlib.util

    (tmp_path / "comfy").mkdir()
    (tmp_path / "comfy" / "__init__.py").write_text("")
    (tmp_path / "comfy" / "utils.py").write_text(BAR_PROGRAM)
    (tmp_path / "nodes_sampler.py").write_text(SAMPLER_PROGRAM)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("comfy", "comfy.utils", "nodes_sampler"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    import comfy.utils  # type: ignore[import-not-found]

    spec = importlib.util.spec_from_file_location("step_profiler", PROFILER)
    assert spec is not None and spec.loader is not None
    profiler = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(profiler)
    original = comfy.utils.ProgressBar.update_absolute
    for name, value in {"STEPS": "4", "STEP": "3", "RUN": run, "TRACE": "unused"}.items():
        monkeypatch.setenv(f"STEADYDANCER_PROFILE_{name}", value)
    monkeypatch.setattr(profiler, "TorchRecorder", lambda *_: recorder)
    profiler.install()
    assert comfy.utils.ProgressBar.update_absolute is not original
    import nodes_sampler  # type: ignore[import-not-found]

    return profiler, nodes_sampler, comfy.utils


def test_the_step_profiler_records_step_k_of_the_samplers_run_n(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bars advanced from other files (the VAE's, the resize nodes') and the sampler's first
    run are passed over; the window holds exactly the sampler's step 3 of its second run."""
    work: list[tuple[str, int]] = []
    _, nodes_sampler, comfy_utils = load_profiler(tmp_path, monkeypatch, Recorder(work), "2")
    other = comfy_utils.ProgressBar(4)
    for _ in range(4):
        other.update(1)
    nodes_sampler.sample(4, work)
    assert work == [("sampler", step) for step in range(1, 5)]
    work.clear()
    nodes_sampler.sample(4, work)
    line = next(
        number
        for number, text in enumerate(SAMPLER_PROGRAM.splitlines(), 1)
        if "bar.update(1)" in text
    )
    assert work == [
        ("sampler", 1),
        ("sampler", 2),
        ("start", line),
        ("sampler", 3),
        ("stop", 0),
        ("sampler", 4),
    ]
    nodes_sampler.sample(4, work)
    assert ("start", line) in work and work.count(("start", line)) == 1


def test_comfyui_finds_the_profiler_as_an_extra_custom_node_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ComfyUI's --extra-model-paths-config file is YAML whose sections map folder kinds to
    paths; `custom_nodes` there is scanned like custom_nodes/ (utils/extra_config.py)."""
    import yaml

    (tmp_path / "bench").mkdir()
    monkeypatch.chdir(tmp_path)
    # A relative --out: ComfyUI runs in its own folder, so every path it gets is absolute.
    flags, env = gpu_render.profiler_setup(Path("bench"), steps=4, step=3, run=2)
    assert flags[0] == "--extra-model-paths-config" and Path(flags[1]).is_absolute()
    assert Path(env["STEADYDANCER_PROFILE_TRACE"]).is_absolute()
    (section,) = yaml.safe_load(Path(flags[1]).read_text()).values()
    assert (Path(section["custom_nodes"]) / "step_profiler.py").is_file()
    assert env["STEADYDANCER_PROFILE_TRACE"].startswith(str(tmp_path))
    assert (env["STEADYDANCER_PROFILE_STEP"], env["STEADYDANCER_PROFILE_RUN"]) == ("3", "2")


class FailingRecorder(Recorder):
    """A recorder whose start fails, as torch's profiler can (no CUPTI, say)."""

    def start(self, caller: str) -> None:
        raise RuntimeError("CUPTI is not available")

    def close(self) -> None:
        self.work.append(("closed", 0))


def test_a_failing_profiler_leaves_the_job_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    noted: list[tuple[str, int]] = []
    _, nodes_sampler, _ = load_profiler(tmp_path, monkeypatch, FailingRecorder(noted), "1")
    work: list[tuple[str, int]] = []
    nodes_sampler.sample(4, work)
    nodes_sampler.sample(4, work)
    assert work == [("sampler", step) for step in range(1, 5)] * 2
    assert noted == [("closed", 0)]
    assert "step profiler: failed: RuntimeError: CUPTI is not available" in capsys.readouterr().out


def test_the_profiled_step_must_not_be_the_warm_up_step(capsys: pytest.CaptureFixture[str]) -> None:
    assert gpu_render.main(["--comfyui", "nowhere", "--profile-step", "1"]) == 2
    assert "--profile-step 1: give a step from 2 to 4" in capsys.readouterr().err


STEP_EXCERPT = Path(__file__).parent / "data" / "step_profile" / "bf16-step-excerpt.json"


def test_a_steps_gpu_time_is_split_by_what_its_kernels_do() -> None:
    """On a stretch of a real trace (one Wan block's kernels in the wrapper's sampler on the
    H200): every kernel and memset is counted once, host events are not, and each kernel
    family lands in its kind."""
    trace = json.loads(STEP_EXCERPT.read_text())
    device = [e for e in trace["traceEvents"] if e["cat"] != "cuda_runtime"]
    wall_ms = (max(e["ts"] + e["dur"] for e in device) - min(e["ts"] for e in device)) / 1000
    summary = step_profile.summarize(trace, wall_ms, top=100)
    assert summary["kernels"] == len(device)
    total_ms = sum(e["dur"] for e in device) / 1000
    assert summary["kernel_ms"] == pytest.approx(total_ms, abs=0.002)
    categories = summary["categories"]
    assert sum(c["ms"] for c in categories.values()) == pytest.approx(total_ms, abs=0.01)
    assert summary["gpu_idle_ms"] == pytest.approx(wall_ms - summary["gpu_busy_ms"], abs=0.002)
    by_name = {k["name"]: k["category"] for k in summary["top_kernels"]}

    def kinds(part: str) -> set[str]:
        return {kind for name, kind in by_name.items() if part in name}

    assert kinds("cudnn_generated_fort_native_sdpa") == {"attention"}
    assert kinds("nvjet_sm90") == {"matmul"}
    assert kinds("Memset (Device)") == kinds("direct_copy_kernel") == {"copy and cast"}
    assert kinds("layer_norm") == {"normalization"}
    assert kinds("MulFunctor") == {"elementwise and reductions"}
    assert categories["attention"]["ms"] > 10 * categories["normalization"]["ms"]


def test_overlapping_kernels_keep_the_gpu_busy_once() -> None:
    events = [("a", 0.0, 10.0), ("b", 5.0, 10.0), ("c", 30.0, 5.0), ("d", 31.0, 1.0)]
    assert step_profile.busy_us(events) == 20.0


def test_a_trace_without_kernels_is_refused_in_words() -> None:
    with pytest.raises(ValueError, match="no CUDA kernel"):
        step_profile.summarize({"traceEvents": [{"ph": "X", "cat": "cpu_op"}]}, 1.0)
