"""A job's image and video inputs, from a URL, a data URL or base64, onto the job's own disk.

Each input is held to a budget: bytes by kind (an image far below a video), counted while
it streams, and one deadline for the whole transfer, redirects included (a server sending
a byte a second is cut at the deadline, not kept alive by each byte). URLs go through the
destination policy (destinations.py); the file is named by the worker from its content,
never from the URL. Every refusal is an InputError naming the input and the rule.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from steadydancer.serve import destinations

IMAGE_SUFFIXES = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp"}
VIDEO_SUFFIXES = {
    "video/mp4": ".mp4",
    "video/quicktime": ".mov",
    "video/webm": ".webm",
    "video/x-matroska": ".mkv",
}
READ_S = 15.0
"""The longest one read may wait; a stall ends by the deadline plus at most this."""
ACCEPTED = {
    "image": "a PNG, JPEG or WebP image",
    "video": "an MP4, MOV, WebM or Matroska video",
}


@dataclass(frozen=True)
class Budgets:
    """What one job may spend; the defaults are the worker's."""

    image_bytes: int = 32_000_000
    video_bytes: int = 512_000_000
    input_s: float = 300.0
    """One input's whole transfer, redirects included."""
    job_s: float = 3 * 3600.0
    """The whole job: inputs, waiting for ComfyUI, the run, delivery."""

    def bytes_for(self, kind: str) -> int:
        return self.image_bytes if kind == "image" else self.video_bytes


class InputError(ValueError):
    """An input refused, worded for the caller: the input's name and the rule."""


def sniffed_suffix(head: bytes, kind: str) -> str | None:
    """The file's kind from its first bytes, within what the input's kind accepts."""
    if kind == "image":
        if head.startswith(b"\x89PNG\r\n\x1a\n"):
            return ".png"
        if head.startswith(b"\xff\xd8\xff"):
            return ".jpg"
        if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            return ".webp"
        return None
    if head[4:8] == b"ftyp":
        return ".mov" if head[8:10] == b"qt" else ".mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return ".webm" if b"webm" in head[:64] else ".mkv"
    return None


def named(name: str, kind: str, head: bytes, folder: Path) -> Path:
    suffix = sniffed_suffix(head, kind)
    if suffix is None:
        raise InputError(f"input {name}: not {ACCEPTED[kind]}")
    return folder / f"{name}{suffix}"


BASE64_SPACE = re.compile(rb"[ \t\r\n]+")


def decode_base64(name: str, text: str) -> bytes:
    """Plain or MIME-wrapped base64 (line breaks and spaces between groups)."""
    try:
        return base64.b64decode(BASE64_SPACE.sub(b"", text.encode("ascii")), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise InputError(f"input {name}: neither an http(s) URL nor valid base64") from None


def materialize(
    name: str,
    kind: str,
    value: object,
    folder: Path,
    budgets: Budgets,
    deadline: float,
    env: Mapping[str, str] = os.environ,
    verify: ssl.SSLContext | bool = True,
) -> Path:
    """An input written to `folder` as NAME.SUFFIX; InputError names the rule it broke."""
    if not isinstance(value, str) or not value:
        raise InputError(f"input {name} must be an http(s) URL, a data URL or base64 text")
    limit = budgets.bytes_for(kind)
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value):
        return download(name, kind, value, folder, limit, deadline, env, verify)
    if value.startswith("data:"):
        value = value.partition(",")[2]
    if len(value) * 3 // 4 > limit + 3:
        raise InputError(f"input {name}: over the {limit / 1e6:.0f} MB accepted for an {kind}")
    data = decode_base64(name, value)
    if len(data) > limit:
        raise InputError(f"input {name}: over the {limit / 1e6:.0f} MB accepted for an {kind}")
    path = named(name, kind, data[:64], folder)
    path.write_bytes(data)
    return path


def download(
    name: str,
    kind: str,
    url: str,
    folder: Path,
    limit: int,
    deadline: float,
    env: Mapping[str, str] = os.environ,
    verify: ssl.SSLContext | bool = True,
) -> Path:
    """Stream `url` to disk within `limit` bytes and by `deadline`, every hop checked."""
    try:
        target = destinations.check(url, env)
    except destinations.Refused as exc:
        raise InputError(f"input {name}: refused: {exc}") from None
    where = f"input {name} ({target.host})"
    with httpx.Client(verify=verify, follow_redirects=False, trust_env=False) as client:
        for _hop in range(destinations.MAX_REDIRECTS + 1):
            left = deadline - time.monotonic()
            if left <= 0:
                raise InputError(f"{where}: not received within its deadline")
            request = client.build_request(
                "GET",
                target.pinned_url,
                headers={"Host": target.host_header, "Accept-Encoding": "identity"},
                extensions={
                    "sni_hostname": target.host,
                    "timeout": httpx.Timeout(min(left, READ_S)).as_dict(),
                },
            )
            try:
                response = client.send(request, stream=True)
            except httpx.TimeoutException:
                raise InputError(f"{where}: the server did not answer in time") from None
            except httpx.HTTPError as exc:
                raise InputError(f"{where}: cannot connect ({type(exc).__name__})") from None
            try:
                if response.is_redirect:
                    location = response.headers.get("location", "")
                    try:
                        target = destinations.redirect_target(target, location, env)
                    except destinations.Refused as exc:
                        raise InputError(f"{where}: redirect refused: {exc}") from None
                    continue
                if response.status_code != 200:
                    raise InputError(f"{where}: the server answered HTTP {response.status_code}")
                return receive(where, name, kind, response, folder, limit, deadline)
            finally:
                response.close()
    raise InputError(f"{where}: more than {destinations.MAX_REDIRECTS} redirects")


def receive(
    where: str,
    name: str,
    kind: str,
    response: httpx.Response,
    folder: Path,
    limit: int,
    deadline: float,
) -> Path:
    over = f"{where}: over the {limit / 1e6:.0f} MB accepted for an {kind}"
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise InputError(over)
    partial = folder / f".{name}.partial"
    size = 0
    head = b""
    try:
        with partial.open("wb") as out:
            # iter_raw yields each read as it arrives, so the deadline is checked per read.
            for chunk in response.iter_raw():
                size += len(chunk)
                if size > limit:
                    raise InputError(over)
                if time.monotonic() > deadline:
                    raise InputError(f"{where}: not received within its deadline")
                if len(head) < 64:
                    head += chunk[: 64 - len(head)]
                out.write(chunk)
    except httpx.TimeoutException:
        partial.unlink(missing_ok=True)
        raise InputError(f"{where}: not received within its deadline") from None
    except httpx.HTTPError as exc:
        partial.unlink(missing_ok=True)
        raise InputError(f"{where}: the transfer broke ({type(exc).__name__})") from None
    except InputError:
        partial.unlink(missing_ok=True)
        raise
    path = named(name, kind, head, folder)
    partial.rename(path)
    return path
