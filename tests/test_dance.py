"""`dagger call dance`: the user's files checked in a small container, then mounted for the client.

The chain is read offline; the checks themselves are the smoke client's, run here for real on
files made by the tests.
"""

from __future__ import annotations

import inspect
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from dagger import dag
from PIL import Image
from steadydancer import synthetic, workflows

from ci import image, main
from ci import smoke_test as on_engine
from ci.options import BuildOptions, InputError
from tests.conftest import PLANS
from tests.dagger_offline import execs, ops, render


def user_file(name: str) -> object:
    return dag.directory().with_new_file(name, "user bytes").file(name)


INPUTS = {
    "reference_image": ("Me.PNG", user_file("Me.PNG")),
    "driving_video": ("moves.mp4", user_file("moves.mp4")),
}


def test_the_users_files_are_mounted_with_their_suffix_and_named_to_the_client() -> None:
    built = image.image(BuildOptions.parse("fp8", "cu124", "auto"), PLANS["wheel"])
    run = on_engine.client(
        built,
        on_engine.service(built),
        "steadydancer-dance",
        "generate",
        "fp8",
        ["frames=81"],
        "run-1",
        True,
        INPUTS,  # type: ignore[arg-type]
    )
    mounts = [
        args["path"]
        for name, args in ops(run)
        if name == "withMountedFile" and not args["path"].startswith("/tmp/steadydancer-patches")
    ]
    assert mounts == ["/in/driving_video.mp4", "/in/reference_image.png"]
    command = execs(run)[-1]
    assert command[-2:] == ["--set", "reference_image=/in/reference_image.png"] or (
        "reference_image=/in/reference_image.png" in command
    )
    assert "driving_video=/in/driving_video.mp4" in command and "frames=81" in command
    assert render(run.directory(on_engine.OUT))[-1].startswith("{\n  container {")


def test_the_files_are_checked_by_the_client_in_a_small_container_first() -> None:
    check = on_engine.input_check("steadydancer-dance", "fp8", ["frames=81"], INPUTS)  # type: ignore[arg-type]
    (address,) = [args["address"] for name, args in ops(check) if name == "from"]
    assert address.startswith("python:")  # not the image: nothing is built to check a file
    command = execs(check)[-1]
    assert command[:4] == ["python", "-m", "steadydancer.smoke", "--check-only"]
    assert "reference_image=/in/reference_image.png" in command
    install = next(args for args in execs(check) if args[:3] == ["uv", "pip", "install"])
    assert "--require-hashes" in install
    assert {arg.split("==")[0] for arg in install if "==" in arg} >= {"httpx", "av", "pillow"}
    assert render(check)[-1].startswith("{\n  container {")


def check_only(tmp_path: Path, **files: Path) -> subprocess.CompletedProcess[str]:
    sets = [arg for name, path in files.items() for arg in ("--set", f"{name}={path}")]
    return subprocess.run(
        [
            *(sys.executable, "-m", "steadydancer.smoke", "--check-only"),
            *("--url", "http://127.0.0.1:9", "--workflow", "steadydancer-dance"),
            *("--out", str(tmp_path / "out"), *sets),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), "white").save(out, "PNG")
    return out.getvalue()


def test_good_files_pass_the_check_and_nothing_is_sent(tmp_path: Path) -> None:
    reference, driving = tmp_path / "me.png", tmp_path / "moves.mp4"
    reference.write_bytes(png(480, 832))
    driving.write_bytes(synthetic.pose_video(256, 448, 9, 8))
    result = check_only(tmp_path, reference_image=reference, driving_video=driving)
    assert result.returncode == 0, result.stderr
    assert "inputs and parameters checked; nothing sent" in result.stdout
    assert json.loads((tmp_path / "out" / "report.json").read_text())["status"] == "checked"


@pytest.mark.parametrize(
    ("reference_bytes", "message"),
    [
        (b"not an image", "not an image"),
        (png(32, 32), "32x32 pixels; each side must be 64 to 8192"),
    ],
)
def test_bad_files_are_refused_by_name(
    tmp_path: Path, reference_bytes: bytes, message: str
) -> None:
    reference, driving = tmp_path / "me.png", tmp_path / "moves.mp4"
    reference.write_bytes(reference_bytes)
    driving.write_bytes(synthetic.pose_video(256, 448, 9, 8))
    result = check_only(tmp_path, reference_image=reference, driving_video=driving)
    assert result.returncode == 1
    assert f"--set reference_image={reference}: {message}" in result.stderr
    assert "Traceback" not in result.stderr


def test_other_parameters_are_typed_and_the_functions_own_are_refused() -> None:
    official = workflows.load("steadydancer-official")
    assert main.extra_values(official, ["cfg=5", "lora_strength=0", "pose_seed=3"]) == {
        "cfg": 5.0,
        "lora_strength": 0.0,
        "pose_seed": 3,
    }
    with pytest.raises(InputError, match=r"^--set steps: give it with dance's own arguments"):
        main.extra_values(official, ["steps=40"])
    with pytest.raises(InputError, match=r"^unknown parameter 'cfg' for steadydancer-dance"):
        main.extra_values(workflows.load("steadydancer-dance"), ["cfg=5"])
    with pytest.raises(InputError, match=r"^--set cfg=high: cfg must be float"):
        main.extra_values(official, ["cfg=high"])


def test_free_text_has_arguments_of_its_own_as_the_cli_splits_set_at_commas() -> None:
    """`--set "negative_prompt=blurry, static"` reaches the module as two items (the CLI reads
    list flags as comma-separated values): the stray half is refused, naming the way out."""
    dance = workflows.load("steadydancer-dance")
    refused = r"^--set ' static' is not NAME=VALUE: .*--negative-prompt"
    with pytest.raises(InputError, match=refused):
        main.extra_values(dance, ["negative_prompt=blurry", " static"])
    with pytest.raises(InputError, match=r"^--set negative_prompt: give it with dance's own"):
        main.extra_values(dance, ["negative_prompt=blurry"])
    params = inspect.signature(main.SteadyDancer.dance).parameters
    assert params["negative_prompt"].default == "" and params["prompt"].default == ""
