"""Replay the build's own commands without an engine, in a temporary root.

Usage:
  python -m ci.replay [--variant fp8] [--profile cu124] [--attention xformers]
      [--root DIR] [--trees DIR] [--boot] [--write-object-info FILE] [--in-place]

Takes the Container that `build` sends for a variant, profile and attention branch (the
same lazy query objects the offline tests inspect) and executes its fields in order:
environment variables, mounted and copied files, caches and every command, with the
image's paths (/opt/venv, /opt/ComfyUI, /opt/steadydancer-tools, the mounted lock subsets
and wheels, the cache volumes) mapped under a temporary root and `uv` standing for the
module's pinned uv. Nested containers (the builder that compiles mmcv) are replayed the
same way in roots of their own. What cannot run here is listed as skipped with the
reason: base image pulls, apt, the exact-patch Python (the host's 3.11 stands in), CUDA
(mmcv compiles its CPU ops, in the replay's own wheel cache), GitHub and Hugging Face
downloads (a folder of trees at the pinned commits, --trees, stands in for GitHub).

With --in-place, inside a throwaway container from a Debian base (tests/test_replay.py
makes one), nothing is mapped: the image's paths and user are the container's own, and
apt-get and the other system commands run for real (Debian's packages standing in for
Ubuntu's); only the builders that compile wheels keep roots of their own, as the build
gives them containers of their own.

With --boot (and --trees), ComfyUI from the replayed environment then starts on CPU;
the replay fails on any IMPORT FAILED, on a missing SteadyDancer node, and where
/object_info differs from the committed snapshot for an input a shipped workflow sets.
An engine-free executor of the SDK's query chain exists nowhere else; it is written here.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from steadydancer.ready import NODES

from ci import paths, pins
from ci.lock import LockError

REPO = Path(__file__).resolve().parents[1]
CACHE_HOME = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "steadydancer-replay"
OBJECT_INFO = REPO / "tests" / "data" / "object_info.json"
NETWORK_SETTINGS = re.compile(r"SSL|CERT|CA_BUNDLE|PROXY", re.IGNORECASE)
"""Variables naming the host's certificates and proxies, which stand in for the engine's."""
CONTAINER_MARK = Path("/.dockerenv")
"""Docker's mark of a container's root: --in-place runs only where it is."""
MAPPED = ("/opt", "/tmp/steadydancer-", "/wheel-cache", "/dist", "/usr/local/bin/uv")
"""Image paths the replay moves under its root; every other path is the host's."""
CUDA_ONLY_ENV = ("FORCE_CUDA", "TORCH_CUDA_ARCH_LIST", "FLASH_ATTENTION_FORCE_BUILD")
"""Build flags that ask for CUDA kernels: dropped, so the CPU parts compile."""
CONFIG_OPS = {"withLabel", "withExposedPort", "withEntrypoint", "withDefaultArgs", "withUser"}
"""Fields that only set the image's config: nothing to run (the pod tests check them)."""
SKIPPED_COMMANDS = {
    "apt-get": "system packages come from the base image's apt, which the host stands in for",
    "rm": "edits the base image's apt configuration",
    "find": "edits the base image's ssh host keys",
}


class ReplayError(RuntimeError):
    """A command of the chain failed: the command and the end of its output."""


@dataclass
class Step:
    op: str
    detail: str
    outcome: str
    """ran, adapted (ran with a host stand-in), skipped or failed."""
    reason: str = ""
    seconds: float = 0.0


@dataclass
class Report:
    steps: list[Step] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(step.outcome == outcome for step in self.steps)

    def summary(self) -> str:
        ran = self.count("ran") + self.count("adapted")
        skipped = self.count("skipped")
        seconds = sum(step.seconds for step in self.steps)
        adapted = self.count("adapted")
        return f"{ran} command(s) run ({adapted} adapted), {skipped} skipped, {seconds:.0f} s"


def expanded(value: str, env: Mapping[str, str]) -> str:
    """${NAME} replaced by its value in `env` (empty when unset), as the engine expands."""
    return re.sub(r"\$\{(\w+)\}", lambda m: env.get(m.group(1), ""), value)


def selections(obj: Any) -> list[Any]:
    return list(obj._ctx.selections)


def short(args: list[str], limit: int = 160) -> str:
    text = " ".join(args)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Replay:
    """Execute one Container's chain under `root`."""

    def __init__(
        self, root: Path, report: Report, trees: Path | None, uv: str, logs: Path | None = None
    ) -> None:
        self.root = root
        self.report = report
        self.trees = trees
        self.uv = uv
        # The host's network settings (certificates, proxies) stand in for the engine's.
        self.env: dict[str, str] = {
            name: value for name, value in os.environ.items() if NETWORK_SETTINGS.search(name)
        }
        self.env.update(
            PATH=os.environ.get("PATH", "/usr/bin:/bin"),
            HOME=os.environ.get("HOME", "/root"),
            MAX_JOBS=str(os.cpu_count() or 1),
            # pip keeps built wheels too: in the replay's cache, so one folder holds its state.
            PIP_CACHE_DIR=str(CACHE_HOME / "pip"),
        )
        self.workdir = root
        self.python = f"{sys.version_info.major}.{sys.version_info.minor}"
        self.nested = 0
        self.in_place = root == Path("/")
        """At the image's own paths, in a throwaway container: system commands run too."""
        self.logs = logs or root
        """Where the boot writes ComfyUI's log."""
        self.mounted: set[str] = set()
        """Image paths this replay mounted: the only ones withoutMount may remove."""

    # paths
    def local(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def map_text(self, text: str) -> str:
        """Every mapped image path in `text` (an argument or a variable) moved under the root."""
        if self.in_place:
            return text
        # One pass over all prefixes, so a mapped path (the root may itself be under
        # /tmp/steadydancer-...) is never mapped again.
        alternatives = "|".join(
            re.escape(prefix) + ("" if prefix.endswith("-") else r"(?![\w.-])") for prefix in MAPPED
        )
        root = str(self.root)
        return re.sub(rf"(?<![\w/.-])(?:{alternatives})", lambda m: root + m.group(0), text)

    # sources
    def materialize(self, obj: Any, target: Path) -> str | None:
        """Write a File or Directory object's contents at `target`; a reason when it cannot."""
        chain = selections(obj)
        first = chain[0].name
        if first == "currentModule":
            relative = chain[-1].args.get("path", ".")
            source = REPO / relative
            copy(source, target)
            return None
        if first == "directory":
            target.mkdir(parents=True, exist_ok=True)
            for sel in chain[1:]:
                if sel.name == "withNewFile":
                    path = target / sel.args["path"]
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(sel.args["contents"])
                elif sel.name in ("withFile", "withDirectory"):
                    reason = self.materialize(sel.args["source"], target / sel.args["path"])
                    if reason:
                        return reason
                else:
                    return f"a directory built with {sel.name}"
            return None
        if first == "git":
            url = chain[0].args["url"]
            commit = next(s.args["id"] for s in chain if s.name == "commit")
            name = url.rstrip("/").rsplit("/", 1)[-1]
            tree = self.trees / name if self.trees else None
            if tree is None or not tree.is_dir():
                return f"{url} @ {commit[:8]} is on GitHub (give --trees DIR with DIR/{name})"
            copy(tree, target)
            return None
        if first == "container":
            base = chain[1].args.get("address", "") if len(chain) > 1 else ""
            if chain[-1].name == "file" and chain[-1].args.get("path") == "/uv":
                copy(Path(self.uv), target)
                self.record(
                    "withFile",
                    "/usr/local/bin/uv",
                    "adapted",
                    f"uv {pins.UV_VERSION} of the dev environment",
                )
                return None
            if base == pins.FETCH_IMAGE:
                return "models come from the Hugging Face Hub"
            out = chain[-1].args["path"]
            # A builder is a container of its own: its paths are mapped, also in place.
            sub = (
                Path(tempfile.gettempdir()) / f"replay-builder{self.nested}"
                if self.in_place
                else self.root.parent / f"{self.root.name}-builder{self.nested}"
            )
            self.nested += 1
            inner = Replay(sub, self.report, self.trees, self.uv)
            inner.run(chain[:-1], f"builder {self.nested}")
            copy(inner.local(out), target)
            return None
        if first == "http":
            return f"{chain[0].args['url']} is a GitHub release download"
        return f"a {first} source"

    # the chain
    def run(self, chain: list[Any], label: str = "image") -> None:
        """Execute a Container's fields (`selections(container)`) in order."""
        self.root.mkdir(parents=True, exist_ok=True)
        for sel in chain:
            handler = getattr(self, f"op_{sel.name}", None)
            if handler is not None:
                handler(sel.args, label)
            elif sel.name not in CONFIG_OPS:
                self.record(sel.name, label, "skipped", "not replayed: no engine-free meaning")

    def record(
        self, op: str, detail: str, outcome: str, reason: str = "", seconds: float = 0.0
    ) -> None:
        self.report.steps.append(Step(op, detail, outcome, reason, seconds))

    def op_container(self, args: dict[str, Any], label: str) -> None:
        return None

    def op_from(self, args: dict[str, Any], label: str) -> None:
        self.record("from", args["address"], "skipped", "no registry here: the host stands in")

    def op_withEnvVariable(self, args: dict[str, Any], label: str) -> None:
        value = self.map_text(str(args["value"]))
        if args.get("expand"):
            value = expanded(value, self.env)
        self.env[args["name"]] = value

    def op_withWorkdir(self, args: dict[str, Any], label: str) -> None:
        self.workdir = Path(self.map_text(args["path"]))
        self.workdir.mkdir(parents=True, exist_ok=True)

    def op_withMountedCache(self, args: dict[str, Any], label: str) -> None:
        path = args["path"]
        if path.startswith("/var/"):
            return
        self.mounted.add(path)
        name = selections(args["cache"])[0].args["key"]
        cache = CACHE_HOME / name
        cache.mkdir(parents=True, exist_ok=True)
        if path == "/root/.cache/uv":
            self.env["UV_CACHE_DIR"] = str(cache)
            return
        link = self.local(path)
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(cache)

    def place(self, args: dict[str, Any], op: str) -> None:
        path = args["path"]
        target = self.local(path)
        reason = self.materialize(args["source"], target)
        if reason:
            self.record(op, path, "skipped", reason)

    def op_withMountedDirectory(self, args: dict[str, Any], label: str) -> None:
        self.mounted.add(args["path"])
        self.place(args, "withMountedDirectory")

    def op_withDirectory(self, args: dict[str, Any], label: str) -> None:
        self.place(args, "withDirectory")

    def op_withFile(self, args: dict[str, Any], label: str) -> None:
        self.place(args, "withFile")

    def op_withMountedFile(self, args: dict[str, Any], label: str) -> None:
        self.mounted.add(args["path"])
        self.place(args, "withMountedFile")

    def op_withoutMount(self, args: dict[str, Any], label: str) -> None:
        # apt's cache mounts are never made here: the system's own folders stay.
        if args["path"] not in self.mounted:
            return
        self.mounted.discard(args["path"])
        target = Path(self.map_text(args["path"]))
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.is_file():
            target.unlink()

    def op_withExec(self, args: dict[str, Any], label: str) -> None:
        argv = [str(a) for a in args["args"]]
        if argv[0] in SKIPPED_COMMANDS and not self.in_place:
            self.record("withExec", " ".join(argv), "skipped", SKIPPED_COMMANDS[argv[0]])
            return
        outcome, reason = "ran", ""
        if argv[:3] == ["uv", "python", "install"]:
            self.record(
                "withExec",
                " ".join(argv),
                "skipped",
                f"the exact patch release; the host's Python {self.python} stands in",
            )
            return
        if argv[:2] == ["git", "-C"] and not Path(self.map_text(argv[2])).is_dir():
            self.record("withExec", " ".join(argv), "skipped", f"{argv[2]} is a tree from GitHub")
            return
        if argv[:2] == ["uv", "venv"] and "--python" in argv:
            at = argv.index("--python") + 1
            argv[at] = sys.executable
            outcome, reason = "adapted", f"the host's Python {self.python}"
        env = dict(self.env)
        dropped = [name for name in CUDA_ONLY_ENV if env.pop(name, None) is not None]
        if dropped:
            outcome, reason = "adapted", f"without {', '.join(dropped)}: CPU ops only"
            if "--key" in argv:
                at = argv.index("--key") + 1
                argv[at] += "-cpu"
        if argv[0] == "uv":
            argv[0] = self.uv
        mapped = [self.map_text(a) for a in argv]
        started = time.monotonic()
        result = subprocess.run(mapped, cwd=self.workdir, env=env, capture_output=True, text=True)
        took = time.monotonic() - started
        if result.returncode:
            self.record("withExec", " ".join(argv), "failed", f"exit {result.returncode}", took)
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-40:])
            raise ReplayError(
                f"{label}: `{' '.join(argv)}` failed (exit {result.returncode}):\n{tail}"
            )
        self.record("withExec", " ".join(argv), outcome, reason, took)
        print(f"replay: {outcome:8} {took:7.1f} s  {short(argv, 110)}", flush=True)


def copy(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True, symlinks=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def pinned_uv() -> str:
    """The uv of the dev environment, at the module's pin (checked, not assumed)."""
    found = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if found is None:
        raise ReplayError(f"no uv on PATH: install uv=={pins.UV_VERSION}")
    version = subprocess.run([found, "--version"], capture_output=True, text=True).stdout.split()
    if len(version) < 2 or version[1] != pins.UV_VERSION:
        raise ReplayError(f"{found} is uv {version[1:2]}, the module pins {pins.UV_VERSION}")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def boot(replay: Replay, timeout_s: float = 600.0) -> dict[str, Any]:
    """Start the replayed ComfyUI on CPU; /object_info once it answers, the log checked."""
    import httpx

    comfyui = replay.local(paths.COMFYUI_DIR)
    port = free_port()
    log_path = replay.logs / "comfyui.log"
    env = {**replay.env, "PYTHONUNBUFFERED": "1"}
    with log_path.open("w") as log:
        server = subprocess.Popen(
            ["python", "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port)],
            cwd=comfyui,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if server.poll() is not None:
                raise ReplayError(f"ComfyUI exited ({server.returncode}):\n{tail(log_path)}")
            try:
                info: dict[str, Any] = httpx.get(
                    f"http://127.0.0.1:{port}/object_info", timeout=60
                ).json()
                break
            except (httpx.HTTPError, ValueError):
                if time.monotonic() > deadline:
                    raise ReplayError(
                        f"ComfyUI did not answer in {timeout_s:.0f} s:\n{tail(log_path)}"
                    ) from None
                time.sleep(2)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    text = log_path.read_text(errors="replace")
    failed = [line for line in text.splitlines() if "IMPORT FAILED" in line]
    if failed:
        raise ReplayError("node pack(s) failed to import:\n" + "\n".join(failed))
    return info


def tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def workflow_inputs() -> dict[str, set[str]]:
    """Each node class the shipped workflows use, with the inputs they set."""
    used: dict[str, set[str]] = {}
    for path in sorted((REPO / "workflows").glob("*.json")):
        if path.name.endswith(".params.json"):
            continue
        for node in json.loads(path.read_text()).values():
            used.setdefault(node["class_type"], set()).update(node["inputs"])
    return used


def input_spec(info: dict[str, Any], class_type: str, name: str) -> Any:
    node = info.get(class_type, {}).get("input", {})
    for group in ("required", "optional"):
        if name in node.get(group, {}):
            spec = node[group][name]
            # A list of choices is the files or options present: its type is what matters.
            return "COMBO" if isinstance(spec[0], list) else spec[0]
    return None


def differences(served: dict[str, Any], snapshot: dict[str, Any]) -> list[str]:
    """Where the served /object_info and the snapshot disagree for the shipped workflows."""
    out = []
    for class_type, inputs in sorted(workflow_inputs().items()):
        if class_type not in served:
            out.append(f"{class_type}: not served")
            continue
        for name in sorted(inputs):
            now, then = input_spec(served, class_type, name), input_spec(snapshot, class_type, name)
            if now != then:
                out.append(f"{class_type}.{name}: {then} in the snapshot, {now} served")
    return out


def build_container(variant: str, profile: str, attention: str) -> Any:
    os.environ.setdefault("DAGGER_MAIN_OBJECT", "SteadyDancer")
    from ci import image
    from ci.layers.attention import AttentionPlan
    from ci.options import BuildOptions

    options = BuildOptions.parse(variant, profile, attention)
    if attention == "xformers":
        plan = AttentionPlan("xformers", "pypi", "the replay's branch: xformers from PyPI")
    else:
        plan = AttentionPlan("flash_attn_2", "source", "the replay's branch: built from source")
    return image.image(options, plan)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="fp8")
    parser.add_argument("--profile", default=pins.DEFAULT_PROFILE)
    parser.add_argument("--attention", default="xformers", choices=("xformers", "flash_attn_2"))
    parser.add_argument("--root", type=Path, help="replay root (default: a temporary folder)")
    parser.add_argument(
        "--trees", type=Path, help="folder of ComfyUI and node-pack trees at the pins"
    )
    parser.add_argument("--boot", action="store_true", help="start the replayed ComfyUI on CPU")
    parser.add_argument("--write-object-info", type=Path, help="save the served /object_info")
    parser.add_argument("--report", type=Path, help="write the steps as JSON")
    parser.add_argument(
        "--in-place",
        action="store_true",
        help="replay at the image's own paths, system packages included: only inside a "
        "throwaway container (--root then holds only the logs)",
    )
    args = parser.parse_args(argv)
    if args.in_place and not CONTAINER_MARK.exists():
        parser.error(
            "--in-place writes /opt, /usr/local/bin and the system's packages: run it inside a "
            f"throwaway container (no {CONTAINER_MARK} here), or leave it out to replay under "
            "--root"
        )
    root = args.root or Path(tempfile.mkdtemp(prefix="steadydancer-replay-"))
    report = Report()
    image_root = Path("/") if args.in_place else root / "image"
    replay = Replay(image_root, report, args.trees, pinned_uv(), logs=root)
    status = 0
    try:
        replay.run(selections(build_container(args.variant, args.profile, args.attention)))
        if args.boot:
            served = boot(replay)
            missing = [n for n in NODES if n not in served]
            if missing:
                raise ReplayError(f"SteadyDancer node(s) missing from /object_info: {missing}")
            if args.write_object_info:
                args.write_object_info.write_text(
                    json.dumps(served, indent=1, sort_keys=True) + "\n"
                )
            diff = differences(served, json.loads(OBJECT_INFO.read_text()))
            if diff:
                raise ReplayError(
                    "/object_info differs from the snapshot for the shipped workflows:\n  "
                    + "\n  ".join(diff)
                )
            print(
                f"replay: ComfyUI served {len(served)} node classes; "
                "the shipped workflows' inputs match the snapshot"
            )
    except (ReplayError, LockError, ValueError) as exc:
        # A stale lock or an impossible pin stops the chain before any command runs.
        print(f"replay failed: {exc}", file=sys.stderr)
        status = 1
    for step in report.steps:
        if step.outcome == "skipped":
            print(f"replay: skipped  {step.op} {step.detail[:90]}: {step.reason}")
    print(f"replay: {report.summary()} (root {root})")
    if args.report:
        args.report.write_text(json.dumps([vars(s) for s in report.steps], indent=1) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
