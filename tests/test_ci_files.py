"""The CI files: pushes run the README's tests and never resolve a lock; drift is scheduled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ci import module_lock, replay
from tests import pod_image
from tests.dagger_offline import REPO

DRIFT = ("python -m ci.lock --drift", "python -m ci.module_lock --drift")


def load(path: str) -> dict[Any, Any]:
    loaded = yaml.safe_load((REPO / path).read_text())
    assert isinstance(loaded, dict)
    return loaded


def commands(job: dict[str, Any]) -> list[str]:
    if "steps" in job:
        return [step["run"] for step in job["steps"] if "run" in step]
    return list(job.get("script", []))


def test_ci_run_ends_with_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text().splitlines()
    first_commands = [line.strip() for line in readme[:6] if line.startswith("    ")]
    assert len(first_commands) == 2
    run = [line for line in (REPO / ".ci" / "run").read_text().splitlines() if line.strip()]
    assert run[-1] == first_commands[1] == ".venv/bin/python -m pytest"


def test_github_reports_drift_on_a_schedule_and_never_on_a_push() -> None:
    drift = load(".github/workflows/drift.yml")
    triggers = drift[True]  # YAML 1.1 reads the key `on` as true
    assert set(triggers) == {"schedule", "workflow_dispatch"}
    assert triggers["schedule"][0]["cron"]
    assert [c for job in drift["jobs"].values() for c in commands(job) if "--drift" in c] == list(
        DRIFT
    )
    image = load(".github/workflows/image.yml")
    assert set(image[True]) == {"push", "pull_request"}
    pushed = [c for job in image["jobs"].values() for c in commands(job)]
    assert "bash .ci/run" in pushed
    assert not [c for c in pushed if "ci.lock" in c or "ci.module_lock" in c]


def test_github_keeps_the_caches_that_make_a_cold_run_long() -> None:
    (job,) = [j for j in load(".github/workflows/image.yml")["jobs"].values()
              if "bash .ci/run" in commands(j)]  # fmt: skip
    (cache,) = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/cache@")]
    kept = cache["with"]["path"].split()
    home = Path.home()
    for folder in (replay.CACHE_HOME, pod_image.CACHE, module_lock.CACHE):
        if folder.is_relative_to(home):  # under XDG_CACHE_HOME elsewhere, as GitLab sets it
            assert f"~/{folder.relative_to(home)}" in kept
    assert "ci/locks/cu124.txt" in cache["with"]["key"]


def test_gitlab_schedules_run_only_the_drift_report() -> None:
    gitlab = load(".gitlab-ci.yml")
    hidden = {name: job for name, job in gitlab.items() if name.startswith(".")}
    jobs = {
        name: job
        for name, job in gitlab.items()
        if isinstance(job, dict) and not name.startswith(".") and "stage" in job
    }

    def rules(job: dict[str, Any]) -> list[dict[str, str]]:
        found = list(job.get("rules", []))
        extends = job.get("extends", [])
        for parent in [extends] if isinstance(extends, str) else extends:
            found += hidden[parent].get("rules", [])
        return found

    assert [r["if"] for r in rules(jobs["lock-drift"])] == ['$CI_PIPELINE_SOURCE == "schedule"']
    assert commands(jobs["lock-drift"])[-2:] == list(DRIFT)
    for name, job in jobs.items():
        if name == "lock-drift":
            continue
        conditions = [r["if"] for r in rules(job)]
        assert conditions in (['$CI_PIPELINE_SOURCE != "schedule"'], ["$CI_COMMIT_TAG"]), name
        assert not [c for c in commands(job) if "--drift" in c], name
    tests = jobs["offline-tests"]
    assert tests["script"] == ["bash .ci/run"]
    assert tests["variables"]["XDG_CACHE_HOME"] == "$CI_PROJECT_DIR/.cache"
    assert tests["cache"]["paths"] == [".cache/"]
    assert "/.cache/" in (REPO / ".gitignore").read_text().split()
