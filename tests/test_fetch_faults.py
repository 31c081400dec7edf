"""The model fetcher against the faults a 28 GB transfer meets, each from the local Hub server.

tests/hub_server.py speaks the Hub's file protocol and injects each fault: a TCP reset
mid-file, a slow or silent Hub, 503 with Retry-After, a renamed private repository, Xet
advertised but unavailable. Every test asserts the bytes sent, the files present and that
nothing was written outside the destination.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.hub_server import Hub, serve
from tests.test_fetch_models import MiB, entry, run, vae

VAE = "Wan2_1_VAE_bf16.safetensors"


def landed(tmp_path: Path, content: bytes, folder: str = "vae") -> bool:
    return (tmp_path / "models" / folder / VAE).read_bytes() == content


def everything_under(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*")}


def test_a_tcp_reset_mid_file_resumes_from_the_bytes_on_disk(tmp_path: Path) -> None:
    hub = Hub()
    content = os.urandom(12 * MiB)
    entries = vae(hub, content)
    hub.reset_after[VAE] = 7 * MiB
    # Paced, so the bytes before the reset reach the client: a RST discards what it has not read.
    hub.rate = 32 * MiB
    with serve(hub) as endpoint:
        result = run(endpoint, tmp_path, entries)
    assert result.returncode == 0, result.stderr
    assert landed(tmp_path, content)
    ranges = [h.get("range") for m, p, h in hub.requests if p.startswith("/cdn/")]
    assert len(ranges) == 2 and ranges[0] is None
    resumed_at = int(str(ranges[1]).removeprefix("bytes=").rstrip("-"))
    # Only what the reset destroyed in flight travels again, never what reached the disk.
    assert 0 < resumed_at <= 7 * MiB and resumed_at % MiB == 0
    assert hub.sent[VAE] == 7 * MiB + len(content) - resumed_at
    assert "retry 1/5" in result.stdout and "Traceback" not in result.stderr


def test_retry_after_is_honoured_and_said(tmp_path: Path) -> None:
    hub = Hub()
    content = os.urandom(MiB)
    entries = vae(hub, content)
    hub.errors[VAE] = [503]
    hub.retry_after[VAE] = "3"
    with serve(hub) as endpoint:
        started = time.monotonic()
        result = run(endpoint, tmp_path, entries)
        elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert "HTTP 503 at 0.0 kB; retry 1/5 in 3.0 s (as the server asked)" in result.stdout
    assert elapsed >= 3 and landed(tmp_path, content)
    gets = [t for m, p, _ in hub.requests if p.startswith("/cdn/") for t in [m]]
    assert len(gets) == 2


def test_a_slow_hub_is_asked_again_and_said_so(tmp_path: Path) -> None:
    hub = Hub()
    content = os.urandom(MiB)
    entries = vae(hub, content)
    hub.resolve_stall[VAE] = 3.0
    with serve(hub) as endpoint:
        result = run(endpoint, tmp_path, entries, "--timeout", "1")
    assert result.returncode == 0, result.stderr
    assert f"{VAE}: the Hub did not answer (" in result.stdout and "retry 1/5" in result.stdout
    assert landed(tmp_path, content)


def test_a_hub_that_cannot_be_reached_is_one_line_naming_it(tmp_path: Path) -> None:
    hub = Hub()
    entries = vae(hub, os.urandom(MiB))
    with serve(hub) as endpoint:
        pass  # the server is gone: nothing listens there any more
    result = run(endpoint, tmp_path, entries, "--retries", "1")
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"model fetch failed: the Hub at {endpoint} gave no answer about any")
    assert "check the network and HF_ENDPOINT" in line
    assert "Traceback" not in result.stderr and not (tmp_path / "models").exists()


def test_server_errors_on_the_hub_itself_are_retried_with_its_retry_after(tmp_path: Path) -> None:
    hub = Hub()
    content = os.urandom(MiB)
    entries = vae(hub, content)
    hub.resolve_errors[VAE] = [429]
    hub.retry_after[VAE] = "2"
    with serve(hub) as endpoint:
        result = run(endpoint, tmp_path, entries)
    assert result.returncode == 0, result.stderr
    assert "the Hub did not answer (HTTP 429); retry 1/5 in 2.0 s" in result.stdout


def test_a_renamed_private_repository_keeps_the_token_on_the_hub_only(tmp_path: Path) -> None:
    hub = Hub(renamed={"old-org/weights": "new-org/weights"}, private={"new-org/weights"})
    content = os.urandom(2 * MiB)
    hub.add("new-org/weights", VAE, content)
    entries = [entry("old-org/weights", VAE, "vae", content)]
    with serve(hub) as endpoint:
        result = run(endpoint, tmp_path, entries, env={"HF_TOKEN": "hf_secret_for_tests"})
    assert result.returncode == 0, result.stderr
    assert landed(tmp_path, content)
    hub_requests = [h for m, p, h in hub.requests if "/resolve/" in p]
    assert all(h.get("authorization") == "Bearer hf_secret_for_tests" for h in hub_requests)
    assert any("/new-org/weights/resolve/" in p for m, p, _ in hub.requests)
    cdn = [h for m, p, h in hub.requests if p.startswith("/cdn/")]
    assert cdn and all("authorization" not in h for h in cdn)
    assert "hf_secret_for_tests" not in result.stdout + result.stderr


@pytest.mark.parametrize("target", ["../../x", "/etc/x", "../custom_nodes/pack/x", "vae/./x"])
def test_a_target_outside_models_is_refused_by_name(tmp_path: Path, target: str) -> None:
    hub = Hub()
    content = os.urandom(MiB)
    hub.add("Kijai/WanVideo_comfy", VAE, content)
    item = entry("Kijai/WanVideo_comfy", VAE, "vae", content)
    item["target"] = target
    with serve(hub) as endpoint:
        result = run(endpoint, tmp_path, [item], dest=tmp_path / "root" / "models")
    assert result.returncode == 1
    assert (
        f"Kijai/WanVideo_comfy/{VAE}: its target {target!r} is not a plain relative path"
        in result.stderr
    )
    assert everything_under(tmp_path) == {"manifest.json"}
    assert hub.requests == []


def test_a_symlink_planted_at_the_partial_is_not_followed(tmp_path: Path) -> None:
    hub = Hub()
    content = os.urandom(MiB)
    entries = vae(hub, content)
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    folder = tmp_path / "models" / "vae"
    folder.mkdir(parents=True)
    (folder / f".{VAE}.partial").symlink_to(outside)
    with serve(hub) as endpoint:
        result = run(endpoint, tmp_path, entries)
    assert result.returncode == 0, result.stderr
    assert outside.read_text() == "keep me"
    assert landed(tmp_path, content)
    assert "is a symbolic link, not a partial download: removed" in result.stdout


def test_a_symlinked_model_folder_is_not_written_through(tmp_path: Path) -> None:
    hub = Hub()
    entries = vae(hub, os.urandom(MiB))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "vae").symlink_to(elsewhere)
    with serve(hub) as endpoint:
        result = run(endpoint, tmp_path, entries)
    assert result.returncode == 1
    assert "is a symbolic link or not a folder: nothing is written there" in result.stderr
    assert list(elsewhere.iterdir()) == []


def test_a_symlink_planted_at_a_markers_temporary_file_is_not_followed(tmp_path: Path) -> None:
    from steadydancer import fetch_models

    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    root = tmp_path / "models"
    item = fetch_models.Entry("r/x", VAE, "main", f"vae/{VAE}", 3, None)
    planted = root / fetch_models.MARKERS / "vae" / f".{VAE}.json.{os.getpid()}"
    planted.parent.mkdir(parents=True)
    import threading

    link = planted.with_name(f"{planted.name}.{threading.get_ident()}.partial")
    link.symlink_to(outside)
    fetch_models.write_marker(root, item, 3, "a" * 64, "c" * 40)
    assert outside.read_text() == "keep me"
    assert fetch_models.read_marker(root, item) == {
        "repo": "r/x",
        "path": VAE,
        "commit": "c" * 40,
        "size": 3,
        "sha256": "a" * 64,
    }


def test_the_xet_path_is_taken_when_the_hub_offers_it(tmp_path: Path) -> None:
    """The Hub's Xet headers make the fetcher go through hf_xet, which first asks the Hub for
    a Xet read token; this server's Xet service is down, so the file comes over HTTP."""
    hub = Hub()
    content = os.urandom(MiB)
    entries = vae(hub, content)
    hub.xet.add(VAE)
    with serve(hub) as endpoint:
        result = run(endpoint, tmp_path, entries, env={"HF_HUB_DISABLE_XET": None})
    assert result.returncode == 0, result.stderr
    assert hub.count("GET", "/xet-read-token/") >= 1
    assert f"{VAE}: Xet transfer failed" in result.stdout
    assert "downloading over HTTP instead" in result.stdout
    assert landed(tmp_path, content) and hub.sent[VAE] == len(content)


def test_small_sizes_are_said_in_the_unit_they_have(tmp_path: Path) -> None:
    hub = Hub()
    content = os.urandom(16 * MiB + 12345)
    entries = vae(hub, content)
    hub.errors[VAE] = [500, 500, 500]
    with serve(hub) as endpoint:
        result = run(endpoint, tmp_path, entries, "--retries", "1")
    assert result.returncode == 1
    assert "gave up after 2 attempts (HTTP 500)" in result.stderr
    assert "kept in" not in result.stderr  # nothing was fetched, so nothing is said to be kept


def test_a_partial_from_an_earlier_run_is_resumed_over_http_even_where_xet_is_offered(
    tmp_path: Path,
) -> None:
    hub = Hub()
    content = os.urandom(4 * MiB)
    entries = vae(hub, content)
    hub.xet.add(VAE)
    folder = tmp_path / "models" / "vae"
    folder.mkdir(parents=True)
    (folder / f".{VAE}.partial").write_bytes(content[: 3 * MiB])
    with serve(hub) as endpoint:
        result = run(endpoint, tmp_path, entries, env={"HF_HUB_DISABLE_XET": None})
    assert result.returncode == 0, result.stderr
    assert hub.count("GET", "/xet-read-token/") == 0
    assert hub.sent[VAE] == MiB and landed(tmp_path, content)


def url_entry(hub: Hub, content: bytes, endpoint: str) -> list[dict[str, object]]:
    """A file outside the Hub, at a plain address: the local server's /cdn/ path, reached as
    `localhost` while HF_ENDPOINT names 127.0.0.1, so it is another host to the fetcher."""
    digest = hub.add("openmmlab/site", "yolox_l.pth", content)
    address = endpoint.replace("127.0.0.1", "localhost") + f"/cdn/{digest}"
    return [
        entry(
            "localhost", f"cdn/{digest}", "dwpose", content, url=address, sha256=digest, revision=""
        )
    ]


def test_a_file_at_a_plain_url_resumes_verifies_and_never_gets_the_token(tmp_path: Path) -> None:
    hub = Hub()
    content = os.urandom(6 * MiB)
    with serve(hub) as endpoint:
        entries = url_entry(hub, content, endpoint)
        hub.reset_after["yolox_l.pth"] = 4 * MiB
        hub.rate = 32 * MiB  # as above: what was sent before the reset is read, then resumed
        result = run(endpoint, tmp_path, entries, env={"HF_TOKEN": "hf_secret"})
    assert result.returncode == 0, result.stderr
    digest = str(entries[0]["sha256"])
    assert (tmp_path / "models" / "dwpose" / digest).read_bytes() == content
    asked = [(m, h.get("range")) for m, p, h in hub.requests if p.startswith("/cdn/")]
    assert asked[0] == ("HEAD", None) and len(asked) == 3 and asked[2][1] is not None
    assert all("authorization" not in h for _, _, h in hub.requests)
    assert not any("/resolve/" in p or "/api/" in p for _, p, _ in hub.requests)
    assert "retry 1/5" in result.stdout


def test_a_url_that_is_gone_is_one_line_naming_it(tmp_path: Path) -> None:
    hub = Hub()
    with serve(hub) as endpoint:
        entries = url_entry(hub, os.urandom(MiB), endpoint)
        entries[0]["url"] = str(entries[0]["url"]).replace("/cdn/", "/cdn/0")
        result = run(endpoint, tmp_path, entries)
    assert result.returncode != 0
    assert f"{entries[0]['url']}: HTTP 404" in result.stderr
    assert "fix its url in the catalog" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "models" / "dwpose").exists()


def test_a_url_file_with_other_bytes_is_removed_naming_the_url(tmp_path: Path) -> None:
    hub = Hub()
    content = os.urandom(2 * MiB)
    with serve(hub) as endpoint:
        entries = url_entry(hub, content, endpoint)
        hub.corrupt["yolox_l.pth"] = os.urandom(2 * MiB)
        result = run(endpoint, tmp_path, entries)
    assert result.returncode != 0
    assert f"{entries[0]['url']}: checksum mismatch, the file was removed" in result.stderr
    assert not (tmp_path / "models" / "dwpose" / str(entries[0]["sha256"])).exists()
    assert not list((tmp_path / "models" / "dwpose").glob(".*.partial"))


def test_a_file_whose_digest_nobody_states_is_not_placed(tmp_path: Path) -> None:
    """A URL entry without a sha256 (the server states none): refused before a byte is fetched,
    named with the way out; the other files still arrive, verified."""
    hub = Hub()
    vae_content = os.urandom(MiB)
    with serve(hub) as endpoint:
        entries = [*url_entry(hub, os.urandom(MiB), endpoint), *vae(hub, vae_content)]
        refused = entries[0]["sha256"]
        entries[0]["sha256"] = None
        result = run(endpoint, tmp_path, entries)
    assert result.returncode != 0
    assert "no sha256 is known for it" in result.stderr and "STEADYDANCER_CATALOG" in result.stderr
    assert not any(m == "GET" and p == f"/cdn/{refused}" for m, p, _ in hub.requests)
    assert not (tmp_path / "models" / "dwpose").exists()
    assert landed(tmp_path, vae_content)
    assert f"vae/{VAE}: verified" in result.stdout


def test_an_https_address_redirecting_to_plain_http_is_not_followed() -> None:
    import urllib.request

    from steadydancer import fetch_models

    request = urllib.request.Request("https://download.example/yolox.pth", method="HEAD")
    with pytest.raises(fetch_models.FetchError, match="redirected to a plain http address"):
        fetch_models.KeepHttps().redirect_request(
            request, None, 302, "Found", {}, "http://download.example/yolox.pth"
        )
    followed = fetch_models.KeepHttps().redirect_request(
        request, None, 302, "Found", {}, "https://mirror.example/yolox.pth"
    )
    assert followed is not None and followed.full_url == "https://mirror.example/yolox.pth"
