"""Fixtures for the tests that go through rogatory-gateway (gateway_e2e_test.py,
browser_e2e_test.py): the gateway process and small gRPC-Web / Connect helpers over
http.client, so that what is checked is the wire format a browser sees.

The gateway is services/gateway/dist/rogatory-gateway.cjs, built by tools/web/build.sh
(tests/run.sh runs it before ctest); a missing bundle fails the tests, never skips them.
"""

from __future__ import annotations

import base64
import http.client
import json
import pathlib
import shutil
import struct
import urllib.parse
from typing import Optional

import intake_e2e_test as base

REPO_ROOT = base.REPO_ROOT
GATEWAY_BUNDLE = REPO_ROOT / "services" / "gateway" / "dist" / "rogatory-gateway.cjs"
NODE = shutil.which("node") or "/usr/bin/node"


def require_web_build(*paths: pathlib.Path) -> None:
    missing = [str(p) for p in (GATEWAY_BUNDLE, *paths) if not p.exists()]
    if missing:
        raise AssertionError("not built: " + ", ".join(missing)
                             + " (run tools/web/build.sh, as tests/run.sh does)")


class GatewayProcess:
    """rogatory-gateway in front of the services of an E2ETestCase, on free loopback ports."""

    def __init__(self, workdir: pathlib.Path, grpc_ports: dict[str, int],
                 extra_args: Optional[list[str]] = None, name: str = "gateway"):
        self.port = base.free_port()
        self.metrics_port = base.free_port()
        upstreams = ",".join(f"{n}=127.0.0.1:{p}" for n, p in sorted(grpc_ports.items()))
        self.process = base.ManagedProcess(
            f"rogatory-{name}",
            [NODE, "--enable-source-maps", str(GATEWAY_BUNDLE),
             f"--listen=127.0.0.1:{self.port}",
             f"--metrics-listen=127.0.0.1:{self.metrics_port}",
             f"--upstreams={upstreams}", *(extra_args or [])],
            workdir / f"{name}.log")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = base.STARTUP_TIMEOUT_S) -> None:
        self.process.start()

        def ready() -> bool:
            if not self.process.running():
                raise AssertionError(f"rogatory-gateway exited with "
                                     f"{self.process.popen.returncode}:\n"
                                     + self.process.log_tail())
            return request(self.port, "GET", "/readyz")[0] == 200

        base._poll(ready, timeout, "rogatory-gateway ready")

    def stop(self) -> Optional[int]:
        return self.process.stop()

    def metrics(self) -> str:
        return request(self.metrics_port, "GET", "/metrics")[2].decode()

    def dev_token(self, sub: str, state: str, roles: list[str]) -> str:
        status, _, body = request(self.port, "POST", "/dev/token",
                                  json.dumps({"sub": sub, "state": state,
                                              "roles": roles}).encode(),
                                  {"content-type": "application/json"})
        if status != 200:
            raise AssertionError(f"/dev/token answered {status}: {body!r}")
        return json.loads(body)["token"]


def request(port: int, method: str, path: str, body: bytes = b"",
            headers: Optional[dict[str, str]] = None,
            timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request; (status, headers with lower-case names, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body if body or method != "GET" else None,
                     headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def connect_unary(port: int, path: str, message: dict, token: Optional[str] = None,
                  headers: Optional[dict[str, str]] = None):
    """A Connect unary call with a JSON body: (HTTP status, parsed JSON body)."""
    h = {"content-type": "application/json", "connect-protocol-version": "1"}
    if token:
        h["authorization"] = f"Bearer {token}"
    h.update(headers or {})
    status, _, body = request(port, "POST", path, json.dumps(message).encode(), h)
    return status, (json.loads(body) if body else None)


def frame(message: bytes, flags: int = 0) -> bytes:
    return struct.pack(">BI", flags, len(message)) + message


def decode_base64_segments(data: bytes) -> bytes:
    """gRPC-Web text bodies may be several padded base64 segments one after another."""
    out, start = b"", 0
    text = data.replace(b"\r", b"").replace(b"\n", b"")
    for i in range(0, len(text), 4):
        if text[i + 3:i + 4] == b"=":
            out += base64.b64decode(text[start:i + 4])
            start = i + 4
    return out + base64.b64decode(text[start:])


class GrpcWebResult:
    """A gRPC-Web response: HTTP status and headers, data messages, trailers (with
    trailers-only responses' status taken from the headers)."""

    def __init__(self, status: int, headers: dict[str, str], messages: list[bytes],
                 trailers: dict[str, str]):
        self.http_status = status
        self.headers = headers
        self.messages = messages
        self.trailers = trailers

    @property
    def grpc_status(self) -> Optional[int]:
        value = self.trailers.get("grpc-status", self.headers.get("grpc-status"))
        return None if value is None else int(value)

    @property
    def grpc_message(self) -> str:
        value = self.trailers.get("grpc-message", self.headers.get("grpc-message", ""))
        return urllib.parse.unquote(value)

    def status_details(self):
        """The google.rpc.Status of grpc-status-details-bin, or None."""
        value = self.trailers.get("grpc-status-details-bin",
                                  self.headers.get("grpc-status-details-bin"))
        if value is None:
            return None
        raw = base64.b64decode(value + "=" * (-len(value) % 4))
        return base.rc.stubs().status.Status.FromString(raw)


class FrameReader:
    """Splits a gRPC-Web body into data messages and the trailer frame, incrementally."""

    def __init__(self):
        self.buffer = b""
        self.messages: list[bytes] = []
        self.trailers: dict[str, str] = {}
        self.done = False

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= 5:
            flags, length = struct.unpack(">BI", self.buffer[:5])
            if len(self.buffer) < 5 + length:
                return
            payload, self.buffer = self.buffer[5:5 + length], self.buffer[5 + length:]
            if flags & 0x80:
                for line in payload.decode().split("\r\n"):
                    if ":" in line:
                        key, value = line.split(":", 1)
                        self.trailers[key.strip().lower()] = value.strip()
                self.done = True
            else:
                self.messages.append(payload)


def grpc_web_call(port: int, path: str, message: bytes, *, text: bool = False,
                  token: Optional[str] = None, headers: Optional[dict[str, str]] = None,
                  raw_body: Optional[bytes] = None, until=None,
                  timeout: float = 15.0) -> GrpcWebResult:
    """A gRPC-Web call (binary, or text when ``text``) with one request message.

    ``until(messages)`` returning true stops reading a stream early (the connection is then
    closed, which cancels the call)."""
    h = {"content-type": "application/grpc-web-text" if text else "application/grpc-web+proto",
         "x-grpc-web": "1"}
    if text:
        h["accept"] = "application/grpc-web-text"
    if token:
        h["authorization"] = f"Bearer {token}"
    h.update(headers or {})
    body = raw_body if raw_body is not None else frame(message)
    if text and raw_body is None:
        body = base64.b64encode(body)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers=h)
        resp = conn.getresponse()
        resp_headers = {k.lower(): v for k, v in resp.getheaders()}
        reader = FrameReader()
        pending = b""
        while not reader.done:
            chunk = resp.read1(65536)
            if not chunk:
                break
            if text:
                pending += chunk
                cut = len(pending) - len(pending) % 4
                reader.feed(decode_base64_segments(pending[:cut]))
                pending = pending[cut:]
            else:
                reader.feed(chunk)
            if until is not None and until(reader.messages):
                break
        return GrpcWebResult(resp.status, resp_headers, reader.messages, reader.trailers)
    finally:
        conn.close()
