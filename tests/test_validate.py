"""validate: every compatibility rule fails on a profile that breaks it, naming the culprit."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from ci import compat, pins, validate
from ci import lock as locks
from tests.dagger_offline import REPO

PROFILE = pins.PROFILES["cu124"]


def pinned_stack(**changes: object) -> compat.Stack:
    lock = locks.load("cu124")
    assert lock is not None
    stack = compat.Stack.from_pins(PROFILE, frozenset(lock.versions))
    return dataclasses.replace(stack, **changes)  # type: ignore[arg-type]


def findings(stack: compat.Stack) -> dict[str, list[str]]:
    return {rule.name: found for rule, found in compat.check(stack) if found}


def test_the_pinned_stack_breaks_no_rule() -> None:
    assert findings(pinned_stack()) == {}
    assert len(compat.RULES) >= 9
    for rule in compat.RULES:
        assert rule.reason and rule.source


@pytest.mark.parametrize(
    ("changes", "rule", "message"),
    [
        (
            {"torchvision": "0.21.0"},
            "torch-trio",
            "torchvision 0.21.0 does not go with torch 2.5.1: use torchvision 0.20.1",
        ),
        (
            {"xformers": None},
            "xformers-torch",
            "xformers is not pinned: pip would pick the newest xformers and replace torch 2.5.1; "
            "pin xformers to 0.0.29.post1",
        ),
        (
            {"xformers": "0.0.29.post2"},
            "xformers-torch",
            "xformers 0.0.29.post2 requires torch==2.6.0, but torch is 2.5.1: use xformers "
            "0.0.28.post3, 0.0.29, 0.0.29.post1",
        ),
        (
            {"python_tag": "cp314"},
            "flash-attn-wheel",
            "flash-attn 2.7.4.post1 has no release wheel for cp314 (cu12, torch 2.5, cp314): "
            "use the xformers branch",
        ),
        (
            {"flash_attn": "2.6.3"},
            "flash-attn-wheel",
            "flash-attn 2.6.3 has no release wheel for torch 2.5 (cu12, torch 2.5, cp311): "
            "use 2.7.0.post2 or 2.7.4.post1 or 2.8.3",
        ),
        (
            {"mmcv": "2.2.0"},
            "openmmlab-ranges",
            "mmdet 3.3.0 accepts mmcv>=2.0.0rc4,<2.2.0, but mmcv is 2.2.0",
        ),
        (
            {"mmdet": "3.1.0"},
            "openmmlab-ranges",
            "mmdet 3.1.0 accepts mmcv>=2.0.0rc4,<2.1.0, but mmcv is 2.1.0",
        ),
        (
            {"comfyui_commit": "f" * 40, "comfyui_date": "2026-09-01"},
            "comfyui-torch",
            "ComfyUI ffffffffffff (2026-09-01) requires torch >= 2.7, but torch is 2.5.1",
        ),
        (
            {"comfy_kitchen": "0.2.28"},
            "comfy-kitchen-torch",
            "comfy-kitchen 0.2.28 crashes at import on torch 2.5.1: pin comfy-kitchen 0.2.27",
        ),
        ({"comfy_kitchen": None}, "comfy-kitchen-torch", "comfy-kitchen is not pinned"),
        (
            {"transformers": "5.24.0"},
            "transformers-diffusers-torch",
            "transformers 5.24.0 disables PyTorch 2.5.1: pin transformers 4.57.6",
        ),
        (
            {"numpy": "2.4.6"},
            "numpy-opencv",
            "numpy 2.4.6 breaks xtcocotools, chumpy (built for numpy 1)",
        ),
        (
            {"opencv": "4.12.0.88"},
            "numpy-opencv",
            "opencv-python 4.12.0.88 requires numpy >= 2, but numpy is 1.26.4",
        ),
        (
            {"onnxruntime_gpu": "1.31.1"},
            "onnxruntime-gpu-only",
            "onnxruntime-gpu 1.31.1 is a CUDA 13 build",
        ),
        (
            {"setuptools": "84.2.1"},
            "setuptools-pkg-resources",
            "setuptools 84.2.1 has no pkg_resources",
        ),
    ],
)
def test_a_broken_profile_names_its_culprit(
    changes: dict[str, object], rule: str, message: str
) -> None:
    found = findings(pinned_stack(**changes))
    assert list(found) == [rule]
    assert any(message in line for line in found[rule]), found[rule]


def test_onnxruntime_beside_onnxruntime_gpu_is_refused() -> None:
    stack = pinned_stack(distributions=pinned_stack().distributions | {"onnxruntime"})
    assert findings(stack)["onnxruntime-gpu-only"][0].startswith(
        "onnxruntime (CPU) is installed beside onnxruntime-gpu"
    )


def lock_findings(text: str) -> list[str]:
    lock = locks.Lock.parse("cu124", text)
    return [line for section in validate.lock_sections(PROFILE, lock) for line in section.findings]


def committed_lock() -> str:
    return locks.lock_path("cu124").read_text()


def test_the_committed_lock_matches_the_pins() -> None:
    assert lock_findings(committed_lock()) == []
    result = subprocess.run(
        [sys.executable, "-m", "ci.validate"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout
    assert result.stdout.splitlines()[-1].startswith("all checks passed in ")


def test_lock_behind_a_pin_is_stale() -> None:
    text = committed_lock().replace("transformers==4.57.6", "transformers==4.57.5")
    assert (
        "ci/pins.py pins transformers 4.57.6, but ci/locks/cu124.txt has 4.57.5: relock "
        "(`python -m ci.lock --profile cu124`)"
    ) in lock_findings(text)


def test_lock_made_from_another_commit_is_stale() -> None:
    text = committed_lock().replace(pins.COMFYUI.commit, "1" * 40, 1)
    assert any(
        line.startswith(f"the lock was made from ComfyUI @ {'1' * 40}, but ci/pins.py pins")
        for line in lock_findings(text)
    )


def test_unhashed_entry_and_excluded_distribution_are_refused() -> None:
    text = committed_lock() + "onnxruntime==1.32.0\n    # via rtmlib\n"
    found = lock_findings(text)
    assert "lock entries without hashes: onnxruntime" in found
    assert any(
        line.startswith("onnxruntime 1.32.0 is in the lock (required by rtmlib)") for line in found
    )


def test_node_requirement_the_lock_does_not_meet_names_the_pack() -> None:
    text = committed_lock().replace("pillow==", "pillow==9.5.0\n#", 1)
    found = lock_findings(text)
    assert (
        "ComfyUI-KJNodes requires pillow>=10.3.0, but the lock has pillow 9.5.0: relock, or pin "
        "ComfyUI-KJNodes to a commit whose requirements the other pins allow"
    ) in found


def test_a_profile_without_a_lock_says_so_instead_of_citing_a_missing_file() -> None:
    (section,) = validate.lock_sections(pins.PROFILES["cu121"], None)
    assert not section.findings
    assert section.reason.startswith("cu121 has no lock yet")
    assert "resolves the whole image" not in section.reason
    assert "commit ci/locks/cu121.txt" in section.notes[0]


def test_a_profile_on_pypi_without_a_lock_fails() -> None:
    (section,) = validate.lock_sections(PROFILE, None)
    assert section.findings == [
        "ci/locks/cu124.txt is missing: run `python -m ci.lock --profile cu124 --upgrade`"
    ]
