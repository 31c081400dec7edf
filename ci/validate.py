"""Check a profile in seconds, before any heavy layer: compatibility rules, then the lock.

Usage: python -m ci.validate [--profile cu124]

Every finding names the packages, the versions and what requires them, and says
how to fix it. Exit status 1 when anything fails.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field

from packaging.utils import canonicalize_name

from ci import compat, pins
from ci import lock as locks

NOT_FROM_INDEX = {"mmcv": "compiled in the build", "flash-attn": "a release wheel"}


@dataclass
class Section:
    name: str
    reason: str
    findings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def lock_sections(profile: pins.Profile, lock: locks.Lock | None) -> list[Section]:
    path = f"ci/locks/{profile.name}.txt"
    if lock is None:
        if profile.torch_index_url:
            absent = Section(
                "lock",
                f"{profile.name} has no lock yet (its torch index is needed to make one): its "
                "builds resolve at build time under the pins' constraints",
            )
            absent.notes.append(
                f"run `dagger call lock --profile {profile.name} export --path ci/locks` on a "
                f"networked engine and commit {path}"
            )
        else:
            absent = Section("lock", f"{path} resolves the whole image with hashes")
            absent.findings.append(
                f"{path} is missing: run `python -m ci.lock --profile {profile.name} --upgrade`"
            )
        return [absent]

    present = Section("lock", f"{path} resolves the whole image with hashes")

    for pin in locks.sources():
        made_from = lock.inputs.get(pin.name)
        if made_from != pin.commit:
            present.findings.append(
                f"the lock was made from {pin.name} @ {made_from or '(not an input)'}, but "
                f"ci/pins.py pins {pin.commit}: refresh ci/locks/requirements and relock "
                f"(`dagger call lock --profile {profile.name} export --path ci/locks`)"
            )
    if lock.unhashed:
        present.findings.append(f"lock entries without hashes: {', '.join(lock.unhashed)}")
    if lock.flash_attn_sha256 is None:
        present.notes.append(
            "the flash-attn release wheel has no recorded sha256 yet: `dagger call lock` records "
            "it; until then the wheel is checked only by its exact URL"
        )

    matches = Section("lock-matches-pins", "every pinned package is in the lock at its pin")
    for spec in pins.constraints(profile):
        name, _, version = spec.partition("==")
        key = locks.canonical(name)
        if key in NOT_FROM_INDEX:
            matches.notes.append(f"{name} {version}: {NOT_FROM_INDEX[key]}, not in the lock")
            continue
        locked = lock.versions.get(key)
        if locked != version:
            matches.findings.append(
                f"ci/pins.py pins {name} {version}, but ci/locks/{profile.name}.txt has "
                f"{locked or 'no ' + name}: relock (`python -m ci.lock --profile {profile.name}`)"
            )
    for name in pins.EXCLUDED_DISTRIBUTIONS:
        if locks.canonical(name) in lock.versions:
            via = ", ".join(lock.via.get(locks.canonical(name), [])) or "?"
            matches.findings.append(
                f"{name} {lock.versions[locks.canonical(name)]} is in the lock (required by {via}) "
                f"but must never be installed: {pins.EXCLUDED_DISTRIBUTIONS[name]}"
            )

    satisfied = Section(
        "node-requirements", "every requirement of ComfyUI and each node pack is met by the lock"
    )
    for pin in locks.sources():
        try:
            requirements = locks.pack_requirements(pin)
        except locks.LockError as exc:
            satisfied.findings.append(str(exc))
            continue
        for requirement in requirements:
            name = str(canonicalize_name(requirement.name))
            if name in pins.EXCLUDED_DISTRIBUTIONS:
                satisfied.notes.append(
                    f"{pin.name} asks for {requirement}: excluded, not installed"
                )
                continue
            locked = lock.versions.get(name)
            if locked is None or not requirement.specifier.contains(locked, prereleases=True):
                satisfied.findings.append(
                    f"{pin.name} requires {requirement}, but the lock has "
                    f"{requirement.name} {locked or '(absent)'}: relock, or pin {pin.name} to a "
                    "commit whose requirements the other pins allow"
                )
    return [present, matches, satisfied]


def validate(profile: pins.Profile) -> list[Section]:
    lock = locks.load(profile.name)
    distributions = (
        frozenset(lock.versions)
        if lock
        else frozenset(locks.canonical(s.partition("==")[0]) for s in pins.constraints(profile))
    )
    stack = compat.Stack.from_pins(profile, distributions)
    sections = [
        Section(rule.name, f"{rule.reason} ({rule.source})", findings)
        for rule, findings in compat.check(stack)
    ]
    return sections + lock_sections(profile, lock)


def render(profile: pins.Profile, sections: list[Section], seconds: float) -> str:
    lines = [f"validate {profile.name}:"]
    for section in sections:
        status = "FAIL" if section.findings else "ok  "
        lines.append(f"{status} {section.name}: {section.reason}")
        lines += [f"       - {finding}" for finding in section.findings]
        lines += [f"       note: {note}" for note in section.notes]
    failed = sum(1 for section in sections if section.findings)
    verdict = f"{failed} of {len(sections)} checks failed" if failed else "all checks passed"
    lines.append(f"{verdict} in {seconds:.2f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=pins.DEFAULT_PROFILE)
    args = parser.parse_args(argv)
    if args.profile not in pins.PROFILES:
        print(
            f"error: unknown profile {args.profile!r}; accepted: "
            f"{', '.join(sorted(pins.PROFILES))}",
            file=sys.stderr,
        )
        return 2
    profile = pins.PROFILES[args.profile]
    started = time.perf_counter()
    sections = validate(profile)
    print(render(profile, sections, time.perf_counter() - started))
    return 1 if any(section.findings for section in sections) else 0


if __name__ == "__main__":
    sys.exit(main())
