"""The image's entrypoint: ready the pod, then run ComfyUI on port 8188 and stay its parent.

Steps, each logged with its duration:
  preflight   a GPU is visible and its driver runs the image's CUDA; free disk
  storage     a mounted volume (/workspace, /runpod-volume) holds models, input, output, user
  models      the variant's files are present (baked or on the volume), else fetched
  attention   a tiny attention call on this GPU picks flash-attn, xformers or PyTorch SDPA
  services    SSH keys from PUBLIC_KEY, the environment for SSH sessions, /pre_start.sh
  comfyui     started with --listen 0.0.0.0 --port 8188 (127.0.0.1 on a serverless worker,
              where only the job handler speaks to it); SIGTERM and SIGINT are forwarded

ComfyUI, the hooks and SSH sessions see only the variables boot/environment.py lists
(and those STEADYDANCER_PASS_ENV names); the serverless handler sees all but the Hub token.

Environment:
  STEADYDANCER_VARIANT      model variant (default: the image's)
  ENABLE_STEADYDANCER       "false" skips the model step (ComfyUI starts without SteadyDancer)
  ENABLE_FLASH_ATTN         "false" never uses flash-attn, whatever the image holds
  STEADYDANCER_ATTENTION    the branch recorded at build time: flash_attn_2 or xformers
  STEADYDANCER_ALLOW_CPU    "true" lets a host without a GPU start ComfyUI with --cpu
  RUNPOD_WEBHOOK_GET_JOB    set by RunPod on serverless workers: the job handler starts too
  COMFYUI_ARGS              extra ComfyUI arguments, split like a shell would
  HF_TOKEN                  for gated model repositories (never printed)
  PUBLIC_KEY                OpenSSH public key(s), one a line: sshd starts and takes them
  STEADYDANCER_PASS_ENV     more variable names ComfyUI, the hooks and SSH sessions may see

Usage: python -m steadydancer.entrypoint [--check] [COMMAND...]
  --check    preflight and probe only
  COMMAND    run instead of the boot (RunPod's Container Start Command, `docker run IMAGE bash`)
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from steadydancer import catalog, fetch_models, gpu_check, runpod, storage, workflows
from steadydancer.boot import environment

DEFAULT_COMFYUI_DIR = "/opt/ComfyUI"
DEFAULT_PORT = "8188"
# Driving videos are uploaded through /upload/image, whose default limit is 100 MB.
MAX_UPLOAD_MB = "2048"
VOLUMES = "/workspace:/runpod-volume"
ATTENTION_FLAGS = {
    "flash_attn_2": ["--use-flash-attention"],
    # ComfyUI uses xformers by itself whenever it imports.
    "xformers": [],
    "sdpa": ["--use-pytorch-cross-attention"],
}
RUN_DIR = "/run/steadydancer"
BOOLEANS = ("true", "false", "1", "0", "yes", "no", "on", "off")
FLAGS = ("ENABLE_STEADYDANCER", "ENABLE_FLASH_ATTN", "STEADYDANCER_ALLOW_CPU")
HUB_TOKENS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
"""Needed by the model step only; ComfyUI, its custom nodes and the hooks never see them."""


class BootError(Exception):
    """Why the pod cannot start, worded for the person reading the log."""


def log(message: str) -> None:
    print(f"[steadydancer] {message}", flush=True)


@contextmanager
def step(name: str) -> Iterator[None]:
    started = time.perf_counter()
    log(f"{name}: start")
    try:
        yield
    finally:
        log(f"{name}: done in {time.perf_counter() - started:.3f} s")


def disabled(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "true").strip().lower() in {"0", "false", "no", "off"}


def check_variables(env: Mapping[str, str]) -> list[str]:
    """Every variable the boot reads, checked before anything is written; one line a problem."""
    problems = []
    try:
        catalog.files_for(env.get("STEADYDANCER_VARIANT", catalog.DEFAULT_VARIANT))
    except ValueError as exc:
        problems.append(f"STEADYDANCER_VARIANT: {exc}")
    attention = env.get("STEADYDANCER_ATTENTION")
    if attention is not None and attention not in ATTENTION_FLAGS:
        problems.append(
            f"STEADYDANCER_ATTENTION: unknown branch {attention!r}; accepted: "
            + ", ".join(ATTENTION_FLAGS)
        )
    for name in FLAGS:
        value = env.get(name)
        if value is not None and value.strip().lower() not in BOOLEANS:
            problems.append(f"{name}: {value!r} is not true or false")
    port = env.get("COMFYUI_PORT", DEFAULT_PORT)
    if not port.isdigit() or not 0 < int(port) < 65536:
        problems.append(f"COMFYUI_PORT: {port!r} is not a port number (1-65535)")
    try:
        shlex.split(env.get("COMFYUI_ARGS", ""))
    except ValueError as exc:
        problems.append(f"COMFYUI_ARGS: cannot be split like a shell would: {exc}")
    return problems


@dataclass
class Boot:
    env: Mapping[str, str]

    @property
    def comfyui_dir(self) -> Path:
        return Path(self.env.get("COMFYUI_DIR", DEFAULT_COMFYUI_DIR))

    @property
    def serverless(self) -> bool:
        """RunPod sets RUNPOD_WEBHOOK_GET_JOB on serverless workers: jobs come through it."""
        return bool(self.env.get("RUNPOD_WEBHOOK_GET_JOB"))

    @property
    def run_dir(self) -> Path:
        return Path(self.env.get("STEADYDANCER_RUN_DIR", RUN_DIR))

    def preflight(self) -> bool:
        """True with a usable GPU; False on a CPU host that allows it; BootError otherwise."""
        image_cuda = self.env.get("CUDA_VERSION", "")
        try:
            lines = gpu_check.report(gpu_check.version_tuple(image_cuda), with_torch=False)
        except gpu_check.CheckError as exc:
            if self.env.get("STEADYDANCER_ALLOW_CPU", "").lower() == "true":
                log(f"preflight: {exc}; STEADYDANCER_ALLOW_CPU=true, starting on the CPU")
                return False
            raise BootError(f"preflight: {exc}") from None
        for line in lines:
            log(f"preflight: {line}")
        for folder in (self.comfyui_dir, *self.volume_candidates()):
            if folder.is_dir():
                free = shutil.disk_usage(folder).free
                log(f"preflight: {free / 1e9:.1f} GB free at {folder}")
        return True

    def volume_candidates(self) -> list[Path]:
        return storage.volume_candidates(self.env, VOLUMES)

    def prepare_storage(self) -> storage.Layout:
        layout = storage.Layout(self.comfyui_dir, storage.find_volume(self.volume_candidates()))
        if layout.volume is None:
            log("storage: no volume mounted; models, inputs and outputs stay in the container")
        try:
            created = storage.prepare(layout)
        except storage.StorageError as exc:
            raise BootError(f"storage: {exc}") from None
        for folder in created:
            log(f"storage: created {folder}")
        yaml = self.comfyui_dir / "extra_model_paths.yaml"
        if storage.write_if_changed(yaml, storage.extra_model_paths(layout)):
            log(f"storage: wrote {yaml}")
        variant = self.env.get("STEADYDANCER_VARIANT", catalog.DEFAULT_VARIANT)
        ui = Path(self.env.get("STEADYDANCER_WORKFLOWS") or workflows.WORKFLOWS_DIR, "ui")
        for path in storage.install_workflows(layout, ui / variant):
            log(f"storage: {path} in ComfyUI's workflow browser")
        return layout

    def models(self, layout: storage.Layout) -> None:
        variant = self.env.get("STEADYDANCER_VARIANT", catalog.DEFAULT_VARIANT)
        try:
            files = catalog.placeable(variant)
        except ValueError as exc:
            raise BootError(f"models: STEADYDANCER_VARIANT: {exc}") from None
        for entry in catalog.refused(variant):
            if (
                not (layout.baked_models / entry.target).is_file()
                and not (layout.models / entry.target).is_file()
            ):
                log(f"models: {entry.refusal}")
        entries = [fetch_models.Entry.from_manifest(entry.to_manifest()) for entry in files]
        missing = [
            entry
            for entry in entries
            if not fetch_models.verified(layout.baked_models, entry)
            and not fetch_models.verified(layout.models, entry)
        ]
        log(f"models: variant {variant}, {len(entries) - len(missing)} of {len(entries)} present")
        if not missing:
            return
        log(f"models: fetching {len(missing)} into {layout.models}")
        try:
            fetch_models.fetch(
                missing, layout.models, None, jobs=4, retries=5, timeout=60.0, interval=15.0
            )
        except fetch_models.FetchError as exc:
            raise BootError(f"models: {exc}") from None

    def attention(self, probe: Callable[[str], bool]) -> str:
        """The first backend that runs on this GPU, in the image's order; recorded for tools."""
        built = self.env.get("STEADYDANCER_ATTENTION", "xformers")
        order = (
            ["flash_attn_2", "xformers", "sdpa"]
            if built == "flash_attn_2"
            else ["xformers", "sdpa"]
        )
        if disabled(self.env, "ENABLE_FLASH_ATTN") and "flash_attn_2" in order:
            log("attention: ENABLE_FLASH_ATTN=false, flash-attn skipped")
            order.remove("flash_attn_2")
        chosen = next((backend for backend in order if probe(backend)), "sdpa")
        if chosen != order[0]:
            log(f"attention: {order[0]} does not run here, using {chosen}")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        storage.write_if_changed(self.run_dir / "attention", chosen + "\n")
        log(f"attention: {chosen}")
        return chosen

    def comfyui_argv(self, layout: storage.Layout, attention: str, gpu: bool) -> list[str]:
        return [
            self.env.get("STEADYDANCER_PYTHON", sys.executable),
            str(self.comfyui_dir / "main.py"),
            "--listen", "127.0.0.1" if self.serverless else "0.0.0.0",
            "--port", self.env.get("COMFYUI_PORT", DEFAULT_PORT),
            "--max-upload-size", MAX_UPLOAD_MB,
            *layout.comfyui_args(self.serverless),
            *(ATTENTION_FLAGS[attention] if gpu else ["--cpu"]),
            *shlex.split(self.env.get("COMFYUI_ARGS", "")),
        ]  # fmt: skip


PROBE_MODULES = {"flash_attn_2": "flash_attn", "xformers": "xformers"}


def run_probe(env: Mapping[str, str]) -> Callable[[str], bool]:
    """Each backend tried in a child process; STEADYDANCER_PROBE replaces the program (tests).

    A backend whose package is not installed is skipped without a child, which
    would spend seconds importing torch only to fail.
    """
    replaced = "STEADYDANCER_PROBE" in env
    command = shlex.split(
        env.get("STEADYDANCER_PROBE", f"{sys.executable} -m steadydancer.attention_probe")
    )

    def probe(backend: str) -> bool:
        module = PROBE_MODULES.get(backend)
        if not replaced and module and importlib.util.find_spec(module) is None:
            log(f"attention: {backend} is not installed")
            return False
        try:
            result = subprocess.run(
                [*command, backend], capture_output=True, text=True, timeout=120
            )
        except subprocess.TimeoutExpired:
            log(f"attention: {backend} probe hung for 120 s")
            return False
        log(f"attention: {(result.stdout or result.stderr).strip()}")
        return result.returncode == 0

    return probe


class Stopped(Exception):
    """SIGTERM or SIGINT arrived before ComfyUI started."""


def stop_early(signum: int, frame: FrameType | None) -> None:
    """Until ComfyUI runs, a stop request ends the boot: downloads stop, their partials kept."""
    fetch_models.STOP.set()
    raise Stopped(signal.Signals(signum).name)


def exit_code(code: int) -> int:
    """A child killed by signal N reports -N; a shell would say 128 + N."""
    return 128 - code if code < 0 else code


def supervise(
    argv: list[str], children: dict[str, subprocess.Popen[bytes]], env: Mapping[str, str]
) -> int:
    """Run ComfyUI as a child, forward SIGTERM/SIGINT to it, return its exit code."""
    comfyui = subprocess.Popen(
        argv, cwd=argv[1].rsplit("/", 1)[0], env=environment.for_children(env)
    )
    log(f"comfyui: started (pid {comfyui.pid}): {shlex.join(argv)}")

    def forward(signum: int, frame: FrameType | None) -> None:
        log(f"signal {signal.Signals(signum).name}: stopping ComfyUI")
        comfyui.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = exit_code(comfyui.wait())
    for child in children.values():
        runpod.stop(child)
    log(f"comfyui: exited with {code}")
    return code


def start_worker(env: Mapping[str, str], folders: dict[str, Path]) -> subprocess.Popen[bytes]:
    """The serverless handler, talking to the ComfyUI this entrypoint starts; its own group.

    It is told ComfyUI's folders so that it removes each job's files once delivered.
    """
    command = shlex.split(
        env.get("STEADYDANCER_WORKER", f"{sys.executable} -m steadydancer.serve.handler")
    )
    settings = {
        "COMFYUI_URL": f"http://127.0.0.1:{env.get('COMFYUI_PORT', DEFAULT_PORT)}",
        **{f"COMFYUI_{kind.upper()}_DIR": str(folder) for kind, folder in folders.items()},
    }
    return subprocess.Popen(
        command, env={**environment.for_worker(env), **settings}, start_new_session=True
    )


def start_ssh(
    paths: runpod.Paths, public_key: str, children: dict[str, subprocess.Popen[bytes]]
) -> None:
    """authorized_keys' image section rewritten from PUBLIC_KEY (emptied when it is unset),
    then sshd when it holds a key."""
    parsed = runpod.parse_public_keys(public_key)
    for refusal in parsed.refused:
        log(f"services: {refusal}")
    written = runpod.write_authorized_keys(paths, parsed.keys)
    if not public_key:
        return
    if not written:
        log("services: PUBLIC_KEY holds no acceptable key; SSH not started")
        return
    sshd = runpod.start_sshd(paths)
    if isinstance(sshd, int):
        log(f"services: sshd exited at once with {sshd} (see its messages above)")
    else:
        children["sshd"] = sshd
        log(f"services: sshd started for {written} key(s), password logins off")


def boot_and_run(
    args: argparse.Namespace, env: dict[str, str], children: dict[str, subprocess.Popen[bytes]]
) -> int:
    boot = Boot(env)
    with step("preflight"):
        gpu = boot.preflight()
    if args.check:
        if gpu:
            with step("attention"):
                boot.attention(run_probe(env))
        return 0
    paths = runpod.Paths.from_env(env)
    problems = check_variables(env)
    # SSH first: a pod whose models fail to arrive, or whose settings are wrong, can still be
    # entered and mended; nothing else is touched until every variable is right.
    with step("services"):
        runpod.export_environment(paths, env)
        start_ssh(paths, env.get("PUBLIC_KEY", ""), children)
    if problems:
        raise BootError("; ".join(problems))
    with step("storage"):
        layout = boot.prepare_storage()
    if disabled(env, "ENABLE_STEADYDANCER"):
        log("models: ENABLE_STEADYDANCER=false, skipped")
    else:
        with step("models"):
            boot.models(layout)
    for name in HUB_TOKENS:
        os.environ.pop(name, None)
    with step("attention"):
        attention = boot.attention(run_probe(env)) if gpu else "sdpa"
        runpod.export_environment(paths, {**env, "STEADYDANCER_ATTENTION": attention})
    if pre := runpod.hook(paths, "pre_start.sh"):
        with step("pre_start"):
            children["pre_start"] = hook_process = runpod.start_hook(pre, env)
            code = hook_process.wait()
            del children["pre_start"]
            if code != 0:
                raise BootError(f"{pre} exited with {code}")
    # /post_start.sh runs beside ComfyUI, as RunPod's images run it beside their services.
    if post := runpod.hook(paths, "post_start.sh"):
        children["post_start"] = runpod.start_hook(post, env)
    if boot.serverless:
        # RunPod hands this worker its jobs through RUNPOD_WEBHOOK_GET_JOB.
        children["worker"] = start_worker(env, layout.job_folders(serverless=True))
        log("services: serverless worker started beside ComfyUI")
    return supervise(boot.comfyui_argv(layout, attention, gpu), children, env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="preflight and attention probe only")
    parser.add_argument(
        "command",
        nargs=argparse.REMAINDER,
        help="a command to run instead of the boot (RunPod's Container Start Command, "
        "`docker run IMAGE bash`)",
    )
    args = parser.parse_args(argv)
    if args.command:
        # A pod's start command arrives here as arguments: run it, as a CMD would have run.
        log(f"running the given command instead of the boot: {shlex.join(args.command)}")
        try:
            os.execvp(args.command[0], args.command)
        except OSError as exc:
            log(f"cannot run {args.command[0]!r}: {exc.strerror}")
            return 127
    signal.signal(signal.SIGTERM, stop_early)
    signal.signal(signal.SIGINT, stop_early)
    children: dict[str, subprocess.Popen[bytes]] = {}
    try:
        return boot_and_run(args, dict(os.environ), children)
    except Stopped as exc:
        log(f"{exc}: stopped before ComfyUI started")
        code = 128 + signal.Signals[str(exc)].value
    except Exception as exc:  # whatever stops the boot is reported as one line, not a traceback
        message = str(exc) if isinstance(exc, BootError) else f"{type(exc).__name__}: {exc}"
        log(f"cannot start: {message}")
        code = 1
        sshd = children.get("sshd")
        if sshd is not None and sshd.poll() is None:
            log("cannot start: sshd stays up so the pod can be entered; stop the pod to end it")
            signal.signal(signal.SIGTERM, lambda signum, frame: sshd.terminate())
            sshd.wait()
    for child in children.values():
        runpod.stop(child)
    return code


if __name__ == "__main__":
    sys.exit(main())
