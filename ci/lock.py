"""The hashed lock of each profile's Python environment: how it is made and how installs read it.

ci/locks/<profile>.txt is every Python package of the image (torch stack, OpenMMLab,
attention, ComfyUI and the node packs' requirements) resolved together by uv, with
hashes. ci/locks/requirements/ holds each pinned tree's requirements.txt, the inputs
of that resolution. mmcv (compiled in the build) and the flash-attn release wheel
are not on the index; they are pinned by version, the wheel also by its sha256.

A lock is checked against what the repository holds, never against an index: its header
records the uv version, the cutoff, the platform, each pinned tree's commit and a digest
of every input of the resolution (the pinned roots, constraints, overrides and the
requirements copies), and `--check` compares those with what the repository gives now,
that every entry carries hashes and that the lock satisfies every pin. Files addressed by
hash do not change, so a lock that passes stays installable whatever an index publishes.

An index does change under a lock, even at a fixed --exclude-newer cutoff: mirrors fill in
late, caches lag and files are yanked, so a file can appear with an upload time before the
cutoff after the lock was made. That is drift, reported by `--drift` (a fresh resolution at
the cutoff and at now, compared with the lock), never a failed gate. Moving the cutoff is a
deliberate step (--upgrade), which prints every package that changed.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ci import pins

LOCKS_DIR = Path(__file__).resolve().parent / "locks"
REQUIREMENTS_DIR = LOCKS_DIR / "requirements"
PLATFORM = "x86_64-manylinux_2_35"
"""Ubuntu 22.04's glibc, so no wheel the base image cannot load is chosen."""
LOCK_COMMAND = "python -m ci.lock"
FLASH_ATTN_DIGEST = "# flash-attn wheel sha256:"
INPUT_LINE = "# input: "
INPUTS_DIGEST = "# inputs sha256: "
"""sha256 over every file the resolution reads (inputs_digest)."""
CUTOFF_LINE = "# resolved by uv "
"""Followed by `<uv version> with --exclude-newer <RFC 3339 UTC time>`."""
TARGET_ENVIRONMENT = {
    "implementation_name": "cpython",
    "os_name": "posix",
    "platform_machine": "x86_64",
    "platform_python_implementation": "CPython",
    "platform_system": "Linux",
    "python_full_version": pins.PYTHON_VERSION,
    "python_version": ".".join(pins.PYTHON_VERSION.split(".")[:2]),
    "sys_platform": "linux",
}
MMCV_RUNTIME = ("addict", "yapf", "pyyaml", "pillow", "packaging")
"""mmcv's own runtime requirements: its wheel is installed without resolving them."""
FLASH_ATTN_RUNTIME = ("einops",)


class LockError(Exception):
    """The lock cannot serve the pins: stale, missing a package, or unreadable."""


def canonical(name: str) -> str:
    return str(canonicalize_name(name))


def requirements_in(text: str, source: str) -> list[Requirement]:
    """The requirements of a requirements.txt that apply to the image (linux, Python 3.11)."""
    found = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement as exc:
            raise LockError(f"{source}:{number}: {line!r} is not a requirement: {exc}") from None
        if requirement.marker is None or requirement.marker.evaluate(TARGET_ENVIRONMENT):
            found.append(requirement)
    return found


def requirements_file(pin: pins.GitPin) -> Path:
    return REQUIREMENTS_DIR / f"{pin.name}.txt"


def requirements_header(pin: pins.GitPin) -> str:
    return f"# {pin.url} @ {pin.commit}: requirements.txt\n"


def requirements_copy(pin: pins.GitPin, text: str) -> str:
    """What ci/locks/requirements/ keeps of a tree's requirements.txt, headed by its origin."""
    return requirements_header(pin) + text + ("" if text.endswith("\n") else "\n")


def pack_requirements(pin: pins.GitPin) -> list[Requirement]:
    """A pinned tree's requirements, from its copy in ci/locks/requirements/."""
    path = requirements_file(pin)
    if not path.is_file():
        raise LockError(f"{path} is missing: run `{LOCK_COMMAND}` or `dagger call lock`")
    text = path.read_text()
    if not text.startswith(requirements_header(pin)):
        raise LockError(
            f"{path} was not taken from {pin.name} @ {pin.commit} (the pin moved): "
            "run `dagger call lock export --path ci/locks` to refresh it"
        )
    return requirements_in(text, str(path))


def sources() -> tuple[pins.GitPin, ...]:
    return (pins.COMFYUI, *pins.NODE_PACKS)


def root_requirements(profile: pins.Profile) -> list[str]:
    """What the lock resolves: every pinned package and each tree's requirements file."""
    return [
        *profile.torch_requirements(),
        pins.NUMPY.requirement,
        pins.SETUPTOOLS.requirement,
        *(pin.requirement for pin in pins.BUILD_TOOLS),
        *MMCV_RUNTIME,
        pins.OPENCV.requirement,
        pins.CHUMPY.requirement,
        *(pin.requirement for pin in pins.OPENMMLAB_PACKAGES),
        pins.XFORMERS.requirement,
        *FLASH_ATTN_RUNTIME,
        pins.RUNPOD.requirement,
        *(f"-r requirements/{pin.name}.txt" for pin in sources()),
    ]


@dataclass(frozen=True)
class Lock:
    """A parsed lock: pinned versions, whether every entry carries hashes, and its header."""

    profile: str
    text: str
    versions: dict[str, str]
    unhashed: tuple[str, ...]
    flash_attn_sha256: str | None = None
    via: dict[str, list[str]] = field(default_factory=dict)
    """For each package, what required it: another package, or `-r file` for a root."""
    entries: dict[str, str] = field(default_factory=dict)
    """For each package, its requirement line and hashes, as in the lock."""
    inputs: dict[str, str] = field(default_factory=dict)
    """The commit of each pinned tree whose requirements were resolved."""
    cutoff: str | None = None
    """uv's --exclude-newer for this lock: nothing published later takes part."""
    uv_version: str | None = None
    header: str = ""
    """The comment lines before the first entry, as written."""

    @classmethod
    def parse(cls, profile: str, text: str) -> Lock:
        versions: dict[str, str] = {}
        hashed: dict[str, bool] = {}
        via: dict[str, list[str]] = {}
        entries: dict[str, list[str]] = {}
        inputs: dict[str, str] = {}
        current = ""
        digest = cutoff = uv_version = None
        head: list[str] = []
        for line in text.splitlines():
            stripped = line.strip()
            if not versions and line.startswith("#"):
                head.append(line)
            if line.startswith(CUTOFF_LINE):
                uv_version, _, cutoff = line.removeprefix(CUTOFF_LINE).partition(
                    " with --exclude-newer "
                )
            if line.startswith(FLASH_ATTN_DIGEST):
                digest = line.removeprefix(FLASH_ATTN_DIGEST).strip() or None
            if line.startswith(INPUT_LINE):
                name, _, commit = line.removeprefix(INPUT_LINE).partition(" @ ")
                inputs[name.strip()] = commit.strip()
            match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)", line)
            if match:
                current = canonical(match.group(1))
                versions[current] = match.group(2)
                hashed[current] = "--hash=" in line
                entries[current] = [line]
            elif current and stripped.startswith("--hash="):
                hashed[current] = True
                entries[current].append(line)
            elif current and stripped.startswith("#"):
                note = stripped.lstrip("#").strip().removeprefix("via").strip()
                if note:
                    via.setdefault(current, []).append(note)
        if not versions:
            raise LockError(f"the {profile} lock pins no package")
        unhashed = tuple(sorted(name for name, ok in hashed.items() if not ok))
        blocks = {name: "\n".join(lines) + "\n" for name, lines in entries.items()}
        return cls(
            profile,
            text,
            versions,
            unhashed,
            digest,
            via,
            blocks,
            inputs,
            cutoff,
            uv_version,
            "".join(f"{line}\n" for line in head),
        )

    def closure(self, names: Iterable[str]) -> set[str]:
        """The packages `names` need, themselves included, following the lock's `via` notes."""
        needs: dict[str, set[str]] = {}
        for package, dependents in self.via.items():
            for dependent in dependents:
                if not dependent.startswith("-"):
                    needs.setdefault(canonical(dependent), set()).add(package)
        found: set[str] = set()
        pending = [canonical(name) for name in names]
        while pending:
            name = pending.pop()
            if name in found or name not in self.versions:
                continue
            found.add(name)
            pending.extend(needs.get(name, ()))
        return found

    def subset(self, roots: Iterable[str]) -> str:
        """The lock entries (with hashes) an install of `roots` draws on, in the lock's order."""
        wanted = self.closure(Requirement(root).name for root in roots)
        return "".join(block for name, block in self.entries.items() if name in wanted)

    def pin(self, spec: str) -> str:
        """`name==version` from the lock for a requirement, checking the lock satisfies it."""
        requirement = Requirement(spec)
        name = canonical(requirement.name)
        version = self.versions.get(name)
        if version is None:
            raise LockError(
                f"{requirement.name} is not in ci/locks/{self.profile}.txt: "
                f"the lock is stale; run `{LOCK_COMMAND} --profile {self.profile}`"
            )
        if not requirement.specifier.contains(version, prereleases=True):
            raise LockError(
                f"ci/locks/{self.profile}.txt has {requirement.name} {version}, but {spec} is "
                f"required: the lock is stale; run `{LOCK_COMMAND} --profile {self.profile}`"
            )
        return f"{requirement.name}=={version}"

    def pin_all(self, specs: Iterable[str]) -> list[str]:
        return [self.pin(spec) for spec in specs]


def lock_path(profile_name: str) -> Path:
    return LOCKS_DIR / f"{profile_name}.txt"


def load(profile_name: str) -> Lock | None:
    """The profile's lock, or None when it has none yet (it then resolves at build time)."""
    path = lock_path(profile_name)
    if not path.is_file():
        return None
    return Lock.parse(profile_name, path.read_text())


def tree_roots(lock: Lock, pin: pins.GitPin) -> list[str]:
    """A pinned tree's requirements at the lock's versions, excluded distributions dropped."""
    return [
        lock.pin(str(requirement))
        for requirement in pack_requirements(pin)
        if canonical(requirement.name) not in pins.EXCLUDED_DISTRIBUTIONS
    ]


def header(
    profile: pins.Profile,
    cutoff: str,
    flash_attn_sha256: str | None = None,
    copies: dict[str, str] | None = None,
) -> str:
    """The lock's header; `copies` are the requirements copies it was resolved from, by tree
    name (default: those in ci/locks/requirements/)."""
    lines = [
        f"# steady-dancer lock, profile {profile.name}: Python {pins.PYTHON_VERSION}, {PLATFORM}.",
        f"# Made by `{LOCK_COMMAND} --profile {profile.name}` (or `dagger call lock`); "
        "do not edit by hand.",
        f"{CUTOFF_LINE}{pins.UV_VERSION} with --exclude-newer {cutoff}",
        *(f"{INPUT_LINE}{pin.name} @ {pin.commit}" for pin in sources()),
        f"{INPUTS_DIGEST}{inputs_digest(profile, copies)}",
        f"{FLASH_ATTN_DIGEST} {flash_attn_sha256 or ''}".rstrip(),
    ]
    return "\n".join(lines) + "\n"


def inputs_digest(profile: pins.Profile, copies: dict[str, str] | None = None) -> str:
    """sha256 over the resolution's inputs: roots, constraints, overrides, requirements copies.

    Any pin or requirements change moves it, so a lock made from other inputs is told apart
    offline, without resolving again.
    """
    files = dict(input_files(profile))
    for pin in sources():
        path = requirements_file(pin)
        if copies is not None:
            files[f"requirements/{pin.name}.txt"] = copies[pin.name]
        else:
            files[f"requirements/{pin.name}.txt"] = path.read_text() if path.is_file() else ""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{name}\0{files[name]}\0".encode())
    return digest.hexdigest()


def problems(profile: pins.Profile) -> list[str]:
    """Why the committed lock does not serve the repository as it is now; empty when it does.

    Offline: the lock is read against the pins, the requirements copies and the uv version the
    repository holds. An index is never asked.
    """
    path = lock_path(profile.name)
    current = load(profile.name)
    if current is None:
        return [f"{path} is missing"]
    found: list[str] = []
    if current.cutoff is None:
        found.append(f"{path} records no cutoff ({CUTOFF_LINE.strip()} ... line)")
    else:
        try:
            if parse_cutoff(current.cutoff) != current.cutoff:
                found.append(f"the cutoff {current.cutoff!r} is not a UTC time to the second")
        except LockError as exc:
            found.append(str(exc))
        expected = header(profile, current.cutoff, current.flash_attn_sha256).splitlines()
        recorded = current.header.splitlines()
        found += [
            f"the header has {line!r}; the repository gives {want!r}"
            for line, want in zip(recorded, expected, strict=False)
            if line != want
        ]
        if len(recorded) != len(expected):
            found.append(
                f"the header has {len(recorded)} lines; the repository gives {len(expected)}"
            )
    found += [f"{name} is pinned without hashes" for name in current.unhashed]
    for pin in sources():
        try:
            tree_roots(current, pin)
        except LockError as exc:
            found.append(str(exc))
    for spec in root_requirements(profile):
        if not spec.startswith("-"):
            try:
                current.pin(spec)
            except LockError as exc:
                found.append(str(exc))
    return found


def input_files(profile: pins.Profile) -> dict[str, str]:
    """The files a resolution reads, by their path relative to its working folder."""
    return {
        "roots.in": "\n".join(root_requirements(profile)) + "\n",
        "constraints.txt": pins.constraints_text(profile),
        "overrides.txt": pins.overrides_text(),
    }


def now_cutoff(now: datetime.datetime | None = None) -> str:
    """A cutoff for --upgrade: the current UTC time, to the second."""
    moment = (now or datetime.datetime.now(datetime.UTC)).astimezone(datetime.UTC)
    return moment.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_cutoff(text: str) -> str:
    """A cutoff as uv reads it (RFC 3339 in UTC), from a date or a date and time."""
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise LockError(
            f"{text!r} is not a cutoff: give a date (2026-12-01) or a UTC time "
            "(2026-12-01T00:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return now_cutoff(moment)


def recorded_cutoff(profile: pins.Profile) -> str:
    """The cutoff the profile's lock was made with; a profile without a lock uses the default's."""
    for name in (profile.name, pins.DEFAULT_PROFILE):
        current = load(name)
        if current is not None and current.cutoff:
            return current.cutoff
    raise LockError(
        f"no lock records a cutoff: run `{LOCK_COMMAND} --profile {profile.name} --upgrade`"
    )


def changes(old: Lock | None, new: Lock) -> list[str]:
    """What moved between two locks: `name old -> new`, added and removed packages."""
    before = old.versions if old else {}
    lines = []
    for name in sorted(set(before) | set(new.versions)):
        was, now = before.get(name), new.versions.get(name)
        if was == now:
            if old is not None and old.entries.get(name) != new.entries.get(name):
                lines.append(f"{name} {now}: other files (hashes changed)")
            continue
        lines.append(f"{name} {was or '(absent)'} -> {now or '(removed)'}")
    return lines


def compile_command(profile: pins.Profile, python: str, output: str, cutoff: str) -> list[str]:
    """The uv resolution, run in a folder holding input_files() and requirements/."""
    index = (
        ["--extra-index-url", profile.torch_index_url, "--index-strategy", "unsafe-best-match"]
        if profile.torch_index_url
        else []
    )
    return [
        "uv",
        "pip",
        "compile",
        "roots.in",
        "--constraint",
        "constraints.txt",
        "--override",
        "overrides.txt",
        "--generate-hashes",
        "--no-header",
        "--quiet",
        "--python-platform",
        PLATFORM,
        "--python-version",
        TARGET_ENVIRONMENT["python_version"],
        # chumpy's setup.py imports pip: its metadata is built in an environment that has it.
        "--python",
        python,
        "--no-build-isolation-package",
        pins.CHUMPY.name,
        "--exclude-newer",
        cutoff,
        *index,
        "--output-file",
        output,
    ]


def resolve_locally(profile: pins.Profile, uv: str, cutoff: str) -> str:
    """Resolve the profile's lock against the indexes reachable from here, as of `cutoff`."""
    with tempfile.TemporaryDirectory(prefix="steadydancer-lock-") as tmp:
        work = Path(tmp)
        for name, text in input_files(profile).items():
            (work / name).write_text(text)
        shutil.copytree(REQUIREMENTS_DIR, work / "requirements")
        for pin in sources():
            pack_requirements(pin)  # fails early on a copy taken at another commit
        env_dir = work / "build-env"
        subprocess.run(
            [
                uv,
                "venv",
                "--quiet",
                "--seed",
                "--python",
                TARGET_ENVIRONMENT["python_version"],
                str(env_dir),
            ],
            check=True,
        )
        python = str(env_dir / "bin" / "python")
        subprocess.run(
            [uv, "pip", "install", "--quiet", "--python", python, pins.SETUPTOOLS.requirement],
            check=True,
        )
        command = compile_command(profile, python, "lock.txt", cutoff)
        command[0] = uv
        resolved = subprocess.run(command, cwd=work, capture_output=True, text=True, check=False)
        if resolved.returncode != 0:
            raise LockError(f"uv could not resolve it:\n{resolved.stderr.strip()}")
        body = (work / "lock.txt").read_text()
    current = load(profile.name)
    return header(profile, cutoff, current.flash_attn_sha256 if current else None) + body


def find_uv() -> str | None:
    """The uv of the dev extra (the `uv` package), else one on PATH."""
    try:
        from uv import find_uv_bin
    except ImportError:
        found = shutil.which("uv")
        return str(Path(found).resolve()) if found else None
    return str(find_uv_bin())


def uv_version(uv: str) -> str:
    return subprocess.run(
        [uv, "--version"], capture_output=True, text=True, check=True
    ).stdout.split()[1]


def report_drift(current: Lock, fresh: Lock, when: str) -> list[str]:
    """Lines naming what a resolution `when` would change: versions first, then other files."""
    moved = changes(current, fresh)
    versions = [line for line in moved if "->" in line]
    files = [line.split()[0] for line in moved if "->" not in line]
    lines = [f"{when}: " + ("no version moves" if not versions else f"{len(versions)} move")]
    lines += [f"  {line}" for line in versions]
    if files:
        lines.append(f"  same versions, other files: {', '.join(files)}")
    return lines


def drift(profile: pins.Profile, uv: str, strict: bool) -> int:
    """Print what fresh resolutions at the lock's cutoff and at now would change.

    A report, not a gate: 0 whatever moved, unless `strict`; 2 when no resolution could be made.
    """
    current = load(profile.name)
    if current is None or current.cutoff is None:
        print(
            f"error: {lock_path(profile.name)} has no recorded cutoff to compare at",
            file=sys.stderr,
        )
        return 2
    moved = False
    for label, cutoff in (("at the cutoff", current.cutoff), ("at now", now_cutoff())):
        try:
            fresh = Lock.parse(profile.name, resolve_locally(profile, uv, cutoff))
        except (LockError, subprocess.CalledProcessError) as exc:
            print(
                f"error: cannot resolve the {profile.name} lock {label} ({cutoff}): {exc}",
                file=sys.stderr,
            )
            return 2
        lines = report_drift(current, fresh, f"{label} ({cutoff})")
        moved = moved or any("->" in line for line in lines)
        print(*lines, sep="\n")
    if moved:
        print(f"to take these: `{LOCK_COMMAND} --profile {profile.name} --upgrade`, then commit")
    return 1 if strict and moved else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Check or resolve a profile's hashed lock (ci/locks/<profile>.txt). "
        "--check reads the repository only; resolving asks the index uv is given "
        "(UV_DEFAULT_INDEX, else PyPI) as of the lock's cutoff, unless --upgrade moves it.",
        epilog="Without --check, --drift or --upgrade, the lock is written again at its "
        "recorded cutoff (after a pin or requirements change).",
    )
    parser.add_argument(
        "--profile",
        default=pins.DEFAULT_PROFILE,
        choices=sorted(pins.PROFILES),
        help=f"CUDA profile whose lock to resolve (default: {pins.DEFAULT_PROFILE})",
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument(
        "--check",
        action="store_true",
        help="offline: fail, naming each cause, unless the committed lock was made from the "
        "repository's pins, requirements copies and uv version, hashes every entry and "
        "satisfies every pin",
    )
    action.add_argument(
        "--drift",
        action="store_true",
        help="report what a fresh resolution at the lock's cutoff, and at now, would change; "
        "exits 0 whatever moved (see --strict)",
    )
    action.add_argument(
        "--upgrade",
        action="store_true",
        help="move the cutoff forward (to now, or to --exclude-newer) and print "
        "every package that changed, old -> new",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="with --drift: exit 1 when a version would move",
    )
    parser.add_argument(
        "--exclude-newer",
        metavar="WHEN",
        help="with --upgrade: the new cutoff, a date or UTC time (default: now)",
    )
    args = parser.parse_args(argv)
    if args.exclude_newer and not args.upgrade:
        parser.error("--exclude-newer moves the cutoff: use it with --upgrade")
    if args.strict and not args.drift:
        parser.error("--strict is for --drift")
    profile = pins.PROFILES[args.profile]
    path = lock_path(profile.name)
    if args.check:
        found = problems(profile)
        if not found:
            current = load(profile.name)
            assert current is not None
            print(
                f"{path} serves the repository's pins (uv {current.uv_version}, "
                f"--exclude-newer {current.cutoff}, {len(current.versions)} packages hashed)"
            )
            return 0
        print(
            f"{path} does not serve the repository as it is:", *found, sep="\n  ", file=sys.stderr
        )
        print(f"run `{LOCK_COMMAND} --profile {profile.name}` and commit it", file=sys.stderr)
        return 1
    uv = find_uv()
    if uv is None:
        print("error: uv is not installed (pip install -e '.[dev]')", file=sys.stderr)
        return 2
    if uv_version(uv) != pins.UV_VERSION:
        print(
            f"error: {uv} is uv {uv_version(uv)}, but locks are made with uv {pins.UV_VERSION}: "
            "pip install -e '.[dev]'",
            file=sys.stderr,
        )
        return 2
    if args.drift:
        return drift(profile, uv, args.strict)
    current = load(profile.name)
    try:
        if args.upgrade:
            cutoff = parse_cutoff(args.exclude_newer) if args.exclude_newer else now_cutoff()
        else:
            cutoff = recorded_cutoff(profile)
        fresh = resolve_locally(profile, uv, cutoff)
    except LockError as exc:
        print(f"error: cannot resolve the {profile.name} lock: {exc}", file=sys.stderr)
        return 1
    moved = changes(current, Lock.parse(profile.name, fresh))
    path.write_text(fresh)
    from ci import sizes  # plan's size model reads what the lock names

    try:
        wheel_sizes = sizes.record(Lock.parse(profile.name, fresh))
    except Exception as exc:  # the lock stands; only plan's size estimate waits for the next run
        print(f"warning: wheel sizes not recorded ({type(exc).__name__}: {exc})", file=sys.stderr)
    else:
        sizes.write(profile.name, wheel_sizes)
    print(
        f"wrote {path} ({len(Lock.parse(profile.name, fresh).versions)} packages, cutoff {cutoff})"
    )
    print(*(moved or ["no package changed"]), sep="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
