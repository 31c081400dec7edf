"""Bad arguments are refused before any container is built, naming the value and the choices.

Profile, attention mode and tier are Dagger enums: the CLI and the engine refuse other values
before the module runs (tests/test_registration.py checks what they are offered). Variant and
workflow names hold hyphens, which enum members cannot, so the module checks them itself.
"""

from __future__ import annotations

import subprocess
import sys

import anyio
import pytest
from dagger.mod import default_module
from dagger.mod._exceptions import FunctionError

import ci.main  # noqa: F401  (registers the functions)
from tests.dagger_offline import REPO


def call(function: str, **inputs: object):
    result, _ = anyio.run(
        default_module().get_structured_result, "SteadyDancer", {}, function, inputs
    )
    return result


@pytest.mark.parametrize(
    ("function", "inputs", "message"),
    [
        (
            "build",
            {"variant": "fp32"},
            "unknown variant 'fp32'; accepted: fp16, fp8, gguf-q5_k_m, gguf-q6_k",
        ),
        (
            "models",
            {"variant": "q4"},
            "unknown variant 'q4'; accepted: fp16, fp8, gguf-q5_k_m, gguf-q6_k",
        ),
    ],
)
def test_bad_argument_is_named_with_what_is_accepted(
    function: str, inputs: dict[str, object], message: str
) -> None:
    with pytest.raises(FunctionError) as raised:
        call(function, **inputs)
    assert message in str(raised.value)
    assert raised.value.__cause__ is None  # reported without a traceback from inside


def plan_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ci.plan", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )


def test_plan_command_rejects_an_unknown_variant_without_a_traceback() -> None:
    result = plan_command("--variant", "fp32")
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == "error: unknown variant 'fp32'; accepted: fp16, fp8, gguf-q5_k_m, gguf-q6_k"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--profile", "cu118"), "unknown profile 'cu118'; accepted: cu121, cu124"),
        (
            ("--attention", "sage"),
            "unknown attention mode 'sage'; accepted: auto, flash_attn_2, xformers",
        ),
    ],
)
def test_plan_command_names_a_bad_profile_or_attention_mode(
    args: tuple[str, ...], message: str
) -> None:
    result = plan_command(*args)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {message}"
