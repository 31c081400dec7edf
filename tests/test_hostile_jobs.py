"""Jobs from strangers: the serverless handler against hostile input, one test per class.

Peers: the stand-in ComfyUI of tests/comfy_stand_in.py (real folders, ComfyUI's routes), media
servers on loopback addresses (plain HTTP and HTTPS with a test CA), moto's S3 server. Every
connection is confined to loopback by the `loopback_only` fixture: a connection to any other
address is recorded and refused, and host names resolve from the test's own table (no DNS
query leaves the machine).
"""

from __future__ import annotations

import base64
import datetime
import io
import ipaddress
import re
import socket
import ssl
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from steadydancer import smoke, synthetic
from steadydancer.serve import destinations, handler, inputs

from tests.comfy_stand_in import OTHER_CALLERS_LOG, ComfyFolders, StandIn, serving

VIDEO_A = synthetic.pose_video(64, 112, 8, 8)
VIDEO_B = synthetic.pose_video(64, 96, 8, 8)
IMAGE = synthetic.reference_image(64, 112)


@dataclass
class Network:
    """What the test lets the handler reach: names it resolves, connections it refused."""

    names: dict[str, Callable[[], list[str]]] = field(default_factory=dict)
    refused: list[Any] = field(default_factory=list)
    lookups: list[str] = field(default_factory=list)


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Network:
    network = Network()
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> None:
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and not ipaddress.ip_address(host.split("%")[0]).is_loopback:
            network.refused.append(address)
            raise ConnectionRefusedError(f"the test refuses connections to {host}")
        real_connect(self, address)

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        network.lookups.append(name)
        if name in network.names:
            return [
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port or 0))
                for address in network.names[name]()
            ]
        if name == "localhost":
            name = "127.0.0.1"
        try:
            return real_getaddrinfo(name, port, *args, flags=socket.AI_NUMERICHOST)
        except socket.gaierror:
            raise socket.gaierror(socket.EAI_NONAME, f"the test resolves no {name}") from None

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return network


@pytest.fixture(autouse=True)
def no_delivery_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (*handler.BUCKET_VARIABLES, "BUCKET_REGION", destinations.ALLOW_VARIABLE):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STEADYDANCER_VOLUMES", str(tmp_path / "no-volume"))


# --- media servers ---------------------------------------------------------------------------


@dataclass
class Media:
    """Path -> (status, headers, body); `drip` sends a body a byte at a time, that far apart."""

    replies: dict[str, tuple[int, dict[str, str], bytes]] = field(default_factory=dict)
    drip: float = 0.0
    chunked: bool = False
    requests: list[str] = field(default_factory=list)
    sent: int = 0


@contextmanager
def media_server(
    media: Media, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None
) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            media.requests.append(f"{self.headers.get('Host')} {self.path}")
            status, headers, body = media.replies.get(self.path, (404, {}, b""))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            if media.chunked:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                step = 1 if media.drip else 1 << 16
                for start in range(0, len(body), step):
                    piece = body[start : start + step]
                    if media.chunked:
                        piece = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
                    self.wfile.write(piece)
                    self.wfile.flush()
                    media.sent += step
                    if media.drip:
                        time.sleep(media.drip)
                if media.chunked:
                    self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    scheme = "https" if tls else "http"
    try:
        yield f"{scheme}://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def allow(*networks: str) -> dict[str, str]:
    return {destinations.ALLOW_VARIABLE: ",".join(networks)}


def smoke_job(driving: str, **request: Any) -> dict[str, Any]:
    return {"id": "job-1", "input": {"workflow": "cpu-smoke", "driving": driving, **request}}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- 1. a job cannot name an address inside the pod or its network -----------------------------


def test_a_job_cannot_read_comfyuis_own_files(tmp_path: Path, loopback_only: Network) -> None:
    """The previous caller's photo at ComfyUI's /view is refused before any request is made."""
    folders = ComfyFolders(tmp_path / "comfy")
    (folders.of("input") / "reference.png").write_bytes(IMAGE)
    (folders.of("output") / "cpu_00001_.mp4").write_bytes(VIDEO_A)
    state = StandIn(folders)
    with serving(state) as url:
        for kind, name in (("input", "reference.png"), ("output", "cpu_00001_.mp4")):
            result = handler.handle(
                smoke_job(f"{url}/view?filename={name}&type={kind}"), url, env=folders.env()
            )
            assert result == {
                "error": "input driving: refused: '127.0.0.1' is a loopback address: only "
                "public addresses are fetched"
            }
    assert state.requests == []


@pytest.mark.parametrize(
    ("host", "rule"),
    [
        ("169.254.169.254", "'169.254.169.254' is a link-local address"),
        ("10.0.0.7", "'10.0.0.7' is a private address"),
        ("192.168.1.1", "'192.168.1.1' is a private address"),
        ("100.64.0.1", "'100.64.0.1' is a shared (carrier-grade NAT) address"),
        ("224.0.0.1", "'224.0.0.1' is a multicast address"),
        ("240.0.0.1", "'240.0.0.1' is a reserved address"),
        ("0.0.0.0", "'0.0.0.0' is an unspecified address"),
        ("[::1]", "'::1' is a loopback address"),
        ("[fd00::1]", "'fd00::1' is a private address"),
        ("[::ffff:127.0.0.1]", "'::ffff:127.0.0.1' is an IPv6 address carrying an IPv4 one"),
        ("[2002:7f00:1::]", "'2002:7f00:1::' is an IPv6 address carrying an IPv4 one"),
        ("2130706433", "host '2130706433' is an IPv4 address not spelled a.b.c.d"),
        ("0x7f.0.0.1", "host '0x7f.0.0.1' is an IPv4 address not spelled a.b.c.d"),
        ("0177.0.0.1", "host '0177.0.0.1' is an IPv4 address not spelled a.b.c.d"),
        ("127.1", "host '127.1' is an IPv4 address not spelled a.b.c.d"),
        ("metadata.internal", "'metadata.internal' resolves to 169.254.169.254, which is a"),
        ("mixed.example", "'mixed.example' resolves to 10.1.2.3, which is a private address"),
    ],
)
def test_inner_addresses_are_refused_by_rule_without_a_connection(
    host: str, rule: str, loopback_only: Network
) -> None:
    loopback_only.names["metadata.internal"] = lambda: ["169.254.169.254"]
    loopback_only.names["mixed.example"] = lambda: ["93.184.215.14", "10.1.2.3"]
    result = handler.handle(smoke_job(f"http://{host}/clip.mp4"), "http://127.0.0.1:9")
    assert result["error"].startswith(f"input driving: refused: {rule}"), result
    assert loopback_only.refused == []


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/passwd", "scheme 'file': only http and https are fetched"),
        ("ftp://93.184.215.14/clip.mp4", "scheme 'ftp': only http and https are fetched"),
        ("gopher://127.0.0.1:8188/", "scheme 'gopher': only http and https are fetched"),
        ("http://[::1/clip.mp4", "not a well-formed URL"),
    ],
)
def test_other_schemes_are_refused(url: str, message: str) -> None:
    result = handler.handle(smoke_job(url), "http://127.0.0.1:9")
    assert result == {"error": f"input driving: refused: {message}"}


def test_closed_and_open_ports_inside_the_pod_read_the_same(tmp_path: Path) -> None:
    """A refusal says the rule, not what answered: the worker is no port scanner."""
    with media_server(Media({"/ok.mp4": (200, {}, VIDEO_A)})) as open_url:
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            closed_port = closed.getsockname()[1]
        answers = {
            handler.handle(smoke_job(target), "http://127.0.0.1:9")["error"]
            for target in (
                f"{open_url}/ok.mp4",
                f"{open_url}/missing.mp4",
                f"http://127.0.0.1:{closed_port}/x.mp4",
            )
        }
    assert answers == {
        "input driving: refused: '127.0.0.1' is a loopback address: only public addresses "
        "are fetched"
    }


def test_each_redirect_hop_is_checked(loopback_only: Network) -> None:
    """An allowed server (127.0.0.2, admitted by the allow-list) redirecting inside the pod."""
    media = Media()
    with media_server(media, host="127.0.0.2") as url:
        media.replies["/to-comfy"] = (302, {"Location": "http://127.0.0.1:8188/view"}, b"")
        media.replies["/to-metadata"] = (301, {"Location": "http://169.254.169.254/"}, b"")
        media.replies["/loop"] = (302, {"Location": "/loop"}, b"")
        media.replies["/hop"] = (307, {"Location": "/clip.mp4"}, b"")
        media.replies["/clip.mp4"] = (200, {}, VIDEO_A)
        env = allow("127.0.0.2/32")
        for path, message in (
            ("/to-comfy", "redirect refused: '127.0.0.1' is a loopback address"),
            ("/to-metadata", "redirect refused: '169.254.169.254' is a link-local address"),
            ("/loop", f"more than {destinations.MAX_REDIRECTS} redirects"),
        ):
            result = handler.handle(smoke_job(f"{url}{path}"), "http://127.0.0.1:9", env=env)
            assert result["error"].startswith(f"input driving (127.0.0.2): {message}"), result
        assert media.requests.count("127.0.0.2:" + url.rsplit(":", 1)[1] + " /loop") == (
            destinations.MAX_REDIRECTS + 1
        )
    assert loopback_only.refused == []


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A test CA and a certificate for media.test: (server context, client context)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "media.test")])
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=3650))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("media.test")]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client


def test_https_is_kept_through_redirects_and_checked_against_the_host(
    tls: tuple[ssl.SSLContext, ssl.SSLContext], loopback_only: Network, tmp_path: Path
) -> None:
    server_context, client_context = tls
    media = Media({"/clip.mp4": (200, {}, VIDEO_A)})
    env = allow("127.0.0.2/32")
    loopback_only.names["media.test"] = lambda: ["127.0.0.2"]
    with media_server(media, host="127.0.0.2", tls=server_context) as url:
        port = url.rsplit(":", 1)[1]
        media.replies["/down"] = (302, {"Location": f"http://media.test:{port}/clip.mp4"}, b"")

        def fetch(target: str) -> Path:
            return inputs.materialize(
                "driving", "video", target, tmp_path, inputs.Budgets(),
                time.monotonic() + 30, env, verify=client_context,
            )  # fmt: skip

        path = fetch(f"https://media.test:{port}/clip.mp4")
        assert path.read_bytes() == VIDEO_A
        # The TLS name is the URL's host: the certificate does not name the address.
        with pytest.raises(inputs.InputError, match=r"cannot connect \(ConnectError\)"):
            fetch(f"https://127.0.0.2:{port}/clip.mp4")
        with pytest.raises(inputs.InputError, match="redirect refused: a redirect from https"):
            fetch(f"https://media.test:{port}/down")


def test_the_checked_address_is_the_one_connected_to(
    loopback_only: Network, tmp_path: Path
) -> None:
    """A name that answers an allowed address first and ComfyUI's next (DNS rebinding)."""
    answers = iter([["127.0.0.2"]])
    loopback_only.names["rebind.test"] = lambda: next(answers, ["127.0.0.1"])
    with media_server(Media({"/clip.mp4": (200, {}, VIDEO_A)}), host="127.0.0.2") as good:
        with media_server(Media({"/clip.mp4": (200, {}, VIDEO_B)})) as inner:
            assert inner.startswith("http://127.0.0.1:")
            port = good.rsplit(":", 1)[1]
            path = inputs.materialize(
                "driving", "video", f"http://rebind.test:{port}/clip.mp4", tmp_path,
                inputs.Budgets(), time.monotonic() + 30, allow("127.0.0.2/32"),
            )  # fmt: skip
    assert path.read_bytes() == VIDEO_A
    assert loopback_only.lookups.count("rebind.test") == 1


def run_concurrently(*calls: Callable[[], dict[str, Any]]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = [{} for _ in calls]

    def run(index: int) -> None:
        results[index] = calls[index]()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_two_workers_sharing_a_volume_never_see_each_others_inputs(tmp_path: Path) -> None:
    """Two ComfyUIs on one volume's folders; both uploads happen before either prompt reads."""
    folders = ComfyFolders(tmp_path / "volume" / "steadydancer")
    barrier = threading.Barrier(2)
    first, second = StandIn(folders, barrier=barrier), StandIn(folders, barrier=barrier)
    with serving(first) as url_a, serving(second) as url_b:
        result_a, result_b = run_concurrently(
            lambda: handler.handle(smoke_job(b64(VIDEO_A)), url_a, env=folders.env()),
            lambda: handler.handle(smoke_job(b64(VIDEO_B)), url_b, env=folders.env()),
        )
    assert base64.b64decode(result_a["videos"][0]["base64"]) == VIDEO_A
    assert base64.b64decode(result_b["videos"][0]["base64"]) == VIDEO_B
    assert folders.files() == []


def test_back_to_back_jobs_leave_nothing_for_the_next(tmp_path: Path) -> None:
    folders = ComfyFolders(tmp_path / "comfy")
    state = StandIn(folders)
    with serving(state) as url:
        first = handler.handle(smoke_job(b64(VIDEO_A)), url, env=folders.env())
        assert base64.b64decode(first["videos"][0]["base64"]) == VIDEO_A
        assert folders.files() == []
        (prompt_id,) = state.deleted_from_history
        assert state.history == {}
        uploads = [r for r in state.requests if r == "POST /upload/image"]
        assert len(uploads) == 1 and prompt_id
        second = handler.handle(smoke_job(b64(VIDEO_B)), url, env=folders.env())
    assert base64.b64decode(second["videos"][0]["base64"]) == VIDEO_B
    assert folders.files() == []


def test_a_jobs_folder_cannot_be_guessed(tmp_path: Path) -> None:
    folders = ComfyFolders(tmp_path / "comfy")
    names: list[str] = []
    state = StandIn(folders, hold=True)
    with serving(state) as url:
        for _ in range(2):
            handler.handle(smoke_job(b64(VIDEO_A)), url, run_timeout=0.5, env=folders.env())
            names += [p.name for p in folders.of("input").iterdir()]
    assert names == []  # removed after each job, even a failed one
    assert len(state.subfolders) == 2 and len(set(state.subfolders)) == 2
    for name in state.subfolders:  # as docs/security.md states: job- and 32 hex digits
        assert re.fullmatch(r"job-[0-9a-f]{32}", name), name


# --- 2. budgets -------------------------------------------------------------------------------


def test_a_slow_server_is_cut_at_the_inputs_deadline() -> None:
    media = Media({"/clip.mp4": (200, {}, VIDEO_A)}, drip=0.05)
    with media_server(media, host="127.0.0.2") as url:
        started = time.monotonic()
        result = handler.handle(
            smoke_job(f"{url}/clip.mp4"),
            "http://127.0.0.1:9",
            budgets=inputs.Budgets(input_s=1.0),
            env=allow("127.0.0.2/32"),
        )
        took = time.monotonic() - started
    assert result == {"error": "input driving (127.0.0.2): not received within its deadline"}
    assert took < 3.0 and media.sent < len(VIDEO_A)


@pytest.mark.parametrize("chunked", [False, True])
def test_an_image_is_held_far_below_a_video(chunked: bool, tmp_path: Path) -> None:
    budgets = inputs.Budgets()
    big = IMAGE + b"\0" * 2 * budgets.image_bytes
    media = Media({"/big.png": (200, {}, big)}, chunked=chunked)
    with media_server(media, host="127.0.0.2") as url:
        with pytest.raises(inputs.InputError) as refused:
            inputs.materialize(
                "reference", "image", f"{url}/big.png", tmp_path, budgets,
                time.monotonic() + 30, allow("127.0.0.2/32"),
            )  # fmt: skip
    assert str(refused.value) == (
        "input reference (127.0.0.2): over the 32 MB accepted for an image"
    )
    assert media.sent < len(big)
    assert budgets.video_bytes >= 10 * budgets.image_bytes
    assert list(tmp_path.iterdir()) == []


def piped_matroska(frames: int) -> bytes:
    """A Matroska written to a pipe, as a streamer sends it: no duration in the container."""
    import av
    import numpy as np

    class Pipe(io.RawIOBase):
        def __init__(self) -> None:
            self.data = bytearray()

        def writable(self) -> bool:
            return True

        def seekable(self) -> bool:
            return False

        def write(self, chunk: Any) -> int:
            self.data += bytes(chunk)
            return len(chunk)

    pipe = Pipe()
    with av.open(pipe, "w", format="matroska") as container:
        stream = container.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        picture = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
        for _ in range(frames):
            container.mux(stream.encode(picture))
        container.mux(stream.encode())
    return bytes(pipe.data)


def test_a_video_without_a_stated_duration_is_counted(tmp_path: Path) -> None:
    data = piped_matroska(smoke.MAX_VIDEO_FRAMES + 1)
    path = tmp_path / "driving.mkv"
    path.write_bytes(data)
    import av

    with av.open(str(path)) as container:
        assert container.duration is None  # what the old check read as 0 s
    with pytest.raises(smoke.SmokeError, match=f"over {smoke.MAX_VIDEO_FRAMES} frames"):
        smoke.check_media("driving", path, "video", "input driving")


def test_an_abandoned_prompt_is_interrupted_and_dequeued(tmp_path: Path) -> None:
    folders = ComfyFolders(tmp_path / "comfy")
    state = StandIn(folders, hold=True)
    with serving(state) as url:
        result = handler.handle(smoke_job(b64(VIDEO_A)), url, run_timeout=1.0, env=folders.env())
    assert result["error"].startswith("generate: prompt ") and "within 1 s" in result["error"]
    assert state.deleted_from_queue == state.interrupted != []
    assert state.running == set()
    assert folders.files() == []


# --- 3. one error shape -----------------------------------------------------------------------


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height (PIL reads the size from IHDR alone)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    crc = struct.pack(">I", zlib.crc32(chunk))
    end = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + crc + end


@pytest.mark.parametrize(
    ("job", "message"),
    [
        ([1, 2], "the job must be an object with an input object"),
        ({"id": "j", "input": [1]}, "the job has no input object"),
        ({"id": "j", "input": {"parameters": "frames=9"}}, "input parameters must be an object"),
        (
            {"id": "j", "input": {"workflow": "cpu-smoke", "parameters": {"fps": float("nan")}}},
            "input parameters.fps is NaN or infinite: only finite numbers are accepted",
        ),
        (
            {"id": "j", "input": {"workflow": "cpu-smoke", "parameters": {"fps": float("inf")}}},
            "input parameters.fps is NaN or infinite",
        ),
        ({"id": "j", "input": {"workflow": ["cpu-smoke"]}}, "input workflow must be a name"),
        ({"id": "../../etc", "input": {}}, "the job id must be letters, digits"),
    ],
)
def test_malformed_jobs_get_one_line(job: Any, message: str) -> None:
    result = handler.handle(job, "http://127.0.0.1:9")
    assert set(result) == {"error"} and result["error"].startswith(message), result


def test_a_declared_pixel_bomb_is_refused_by_rule(tmp_path: Path) -> None:
    folders = ComfyFolders(tmp_path / "comfy")
    with serving(StandIn(folders)) as url:
        result = handler.handle(
            {
                "id": "j",
                "input": {
                    "workflow": "steadydancer-dance",
                    "reference": b64(png_header(60000, 60000)),
                    "driving": b64(VIDEO_A),
                },
            },
            url,
            env=folders.env(),
        )
    assert result == {
        "error": "inputs: input reference: its header declares more pixels than accepted; "
        "each side must be 64 to 8192"
    }


def test_a_long_url_suffix_is_not_a_file_name(tmp_path: Path) -> None:
    media = Media({"/clip." + "x" * 300: (200, {}, VIDEO_A)})
    with media_server(media, host="127.0.0.2") as url:
        path = inputs.materialize(
            "driving", "video", f"{url}/clip.{'x' * 300}", tmp_path, inputs.Budgets(),
            time.monotonic() + 30, allow("127.0.0.2/32"),
        )  # fmt: skip
    assert path.name == "driving.mp4"


def test_comfyuis_log_never_reaches_the_caller(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folders = ComfyFolders(tmp_path / "comfy")
    with serving(StandIn(folders, hold=True)) as url:
        result = handler.handle(smoke_job(b64(VIDEO_A)), url, run_timeout=0.5, env=folders.env())
    assert "secret-dance-of-alice" not in result["error"] and "\n" not in result["error"]
    assert "secret-dance-of-alice" in capsys.readouterr().out  # the operator's log keeps it
    assert OTHER_CALLERS_LOG


def test_an_unexpected_failure_is_one_line_and_logged(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise KeyError("/tmp/steadydancer-job-x/driving.mp4")

    monkeypatch.setattr(smoke, "check_media", broken)
    result = handler.handle(smoke_job(b64(VIDEO_A)), "http://127.0.0.1:9")
    assert result["error"].startswith("the worker failed unexpectedly (reference job-")
    assert "Traceback" in capsys.readouterr().err


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def bucket_env(endpoint: str, name: str = "clips") -> dict[str, str]:
    return {
        "BUCKET_ENDPOINT_URL": endpoint,
        "BUCKET_ACCESS_KEY_ID": "test-key",
        "BUCKET_SECRET_ACCESS_KEY": "test-secret",
        "BUCKET_NAME": name,
    }


def test_a_bucket_failure_names_no_endpoint_or_credential(s3: str, tmp_path: Path) -> None:
    folders = ComfyFolders(tmp_path / "comfy")
    endpoint = s3.replace("http://", "http://operator:hunter2@")
    with serving(StandIn(folders)) as url:
        result = handler.handle(
            smoke_job(b64(VIDEO_A)), url, env={**folders.env(), **bucket_env(endpoint, "none")}
        )
    assert result == {"error": "delivery to the bucket failed: the store answered NoSuchBucket"}


def test_one_line_drops_userinfo_queries_and_paths() -> None:
    text = handler.one_line(
        "cannot read https://u:p@host.example/clip.mp4?X-Amz-Signature=abc at\n"
        "/tmp/steadydancer-job-1/driving.mp4 (see /opt/ComfyUI/input/job-1/x.png)"
    )
    assert text == ("cannot read https://host.example/clip.mp4 at driving.mp4 (see x.png)")


# --- smaller: bucket signatures, partial settings, MIME base64, job ids -------------------------


def test_presigned_urls_are_sigv4_and_work(s3: str, tmp_path: Path) -> None:
    import boto3
    import httpx

    client = boto3.client(
        "s3", endpoint_url=s3, aws_access_key_id="k", aws_secret_access_key="s",
        region_name="us-east-1",
    )  # fmt: skip
    client.create_bucket(Bucket="clips")
    folders = ComfyFolders(tmp_path / "comfy")
    with serving(StandIn(folders)) as url:
        result = handler.handle(
            smoke_job(b64(VIDEO_A)), url, env={**folders.env(), **bucket_env(s3)}
        )
    (video,) = result["videos"]
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in video["url"]
    assert httpx.get(video["url"]).content == VIDEO_A
    assert handler.bucket_region("https://s3.eu-west-3.amazonaws.com", None) == "eu-west-3"
    assert handler.bucket_region("https://b.s3-us-west-2.amazonaws.com", None) == "us-west-2"
    assert handler.bucket_region("https://x.r2.cloudflarestorage.com", "auto") == "auto"


@pytest.mark.parametrize("missing", handler.BUCKET_VARIABLES)
def test_a_partial_bucket_setting_is_named_before_any_work(missing: str) -> None:
    env = {name: "x" for name in handler.BUCKET_VARIABLES if name != missing}
    result = handler.handle(smoke_job(b64(VIDEO_A)), "http://127.0.0.1:9", env=env)
    assert result == {
        "error": f"the worker's bucket settings are incomplete: {missing} missing "
        f"({', '.join(handler.BUCKET_VARIABLES)} are all needed for bucket delivery)"
    }


def test_mime_wrapped_base64_is_accepted(tmp_path: Path) -> None:
    wrapped = base64.encodebytes(VIDEO_A).decode()  # 76-character lines
    assert "\n" in wrapped.strip()
    path = inputs.materialize(
        "driving", "video", wrapped, tmp_path, inputs.Budgets(), time.monotonic() + 5
    )
    assert path.read_bytes() == VIDEO_A


def test_the_numbers_docs_security_states_are_the_codes() -> None:
    text = (Path(__file__).parents[1] / "docs" / "security.md").read_text()
    budgets = inputs.Budgets()
    stated = [
        f"{budgets.image_bytes // 1_000_000} MB for an image",
        f"{budgets.video_bytes // 1_000_000} MB for a video",
        f"{budgets.input_s:.0f} s for the whole transfer",
        f"more than {inputs.READ_S:.0f} s",
        f"Per job: {budgets.job_s / 3600:.0f} h overall",
        f"at most {smoke.MAX_VIDEO_FRAMES} frames",
        f"at most {smoke.MAX_VIDEO_S:.0f} s",
        f"each side {smoke.SIDES[0]} to {smoke.SIDES[1]} pixels",
        f"at most {destinations.MAX_REDIRECTS} hops",
    ]
    for phrase in stated:
        assert phrase in text, phrase
