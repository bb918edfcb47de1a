#!/usr/bin/python3
"""End-to-end tests of rogatory-intake (and the health of its three siblings).

They run the real service binaries against a real ``redis-server`` that the tests start
themselves, and talk to them only through gRPC, HTTP (metrics) and signals, as a user or
an orchestrator would. Run by ctest as::

    /usr/bin/python3 tests/e2e/intake_e2e_test.py --bin-dir <build>/bin [unittest args]

Needs Debian's /usr/bin/python3 with python3-grpcio and python3-protobuf, protoc,
/usr/bin/grpc_python_plugin and /usr/bin/redis-server. Nothing is ever skipped: a missing
binary or redis-server fails the run.

Every process started here is stopped when its test class ends, at exit, and (through the
parent-death signal) if this process is killed. When a test fails, the tail of each
process's log is printed after the summary and the work directory is kept.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request
import uuid
from typing import Optional

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "tools" / "pyclient"))

import grpc  # noqa: E402  (after the path set-up, like the client library)
import rogatory_client as rc  # noqa: E402

#: Where the service binaries are; set from --bin-dir in main().
BIN_DIR = REPO_ROOT / "build" / "bin"
#: Holds every fixture's work directory; set in main().
WORK_ROOT: Optional[pathlib.Path] = None

REDIS_SERVER = "/usr/bin/redis-server"
SETPRIV = shutil.which("setpriv")

#: Full service name of each binary's own service.
SERVICE_NAMES = {
    "intake": rc.INTAKE_SERVICE,
    "routing": rc.ROUTING_SERVICE,
    "deadlines": rc.DEADLINE_SERVICE,
    "notification": rc.NOTIFICATION_SERVICE,
}

#: The caller of every call unless a test says otherwise: a French investigating judge.
ISSUER = rc.Caller("FR-TJ-PARIS-JI", "FR", ("issuing",))

STARTUP_TIMEOUT_S = 20.0

#: Token authentication for every service the tests start: callers' tokens are verified
#: with the development key set, and each service signs its own service tokens (for its
#: outbox relay) with the same development key. rc.Caller mints matching tokens.
AUTH_ARGS = [f"--auth-keys={rc.DEV_KEY_FILE}", f"--service-token-key={rc.DEV_KEY_FILE}"]
STOP_TIMEOUT_S = 15.0

# --------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------


_PORTS_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A loopback TCP port that nothing listens on right now and that this test run has not
    handed out before (the kernel may offer a just-closed port again)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _PORTS_HANDED_OUT:
            _PORTS_HANDED_OUT.add(port)
            return port


def _child_env() -> dict[str, str]:
    """Our environment without ROGATORY_* settings, so only the flags given here apply."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ROGATORY_")}


class ManagedProcess:
    """A child process whose output goes to a log file.

    Every instance is remembered so that the logs can be shown after a failure and any
    survivor killed at exit.
    """

    all: list["ManagedProcess"] = []

    def __init__(self, name: str, argv: list[str], log_path: pathlib.Path):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.popen: Optional[subprocess.Popen] = None
        ManagedProcess.all.append(self)

    def start(self) -> None:
        """Starts the process; it is killed if this test process dies (setpriv)."""
        prefix = [SETPRIV, "--pdeathsig", "KILL", "--"] if SETPRIV else []
        with open(self.log_path, "ab") as log:
            log.write(f"---- start: {' '.join(self.argv)}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(
                prefix + self.argv, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, env=_child_env(), close_fds=True)

    @property
    def pid(self) -> Optional[int]:
        return self.popen.pid if self.popen else None

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.running():
            self.popen.send_signal(sig)

    def wait(self, timeout: float) -> Optional[int]:
        """Waits up to ``timeout`` seconds for the process to end; its exit code or None."""
        if self.popen is None:
            return None
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> Optional[int]:
        """SIGTERM, then SIGKILL after ``timeout`` seconds. Returns the exit code."""
        if self.popen is None:
            return None
        if self.running():
            self.popen.send_signal(signal.SIGTERM)
            if self.wait(timeout) is None:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


@atexit.register
def _kill_survivors() -> None:
    for process in ManagedProcess.all:
        if process.running():
            process.popen.kill()
            process.popen.wait()


class RedisServer:
    """A private redis-server on a free loopback port, with AOF and no RDB snapshots.

    ``stop`` then ``start`` restarts it on the same port and data directory.
    """

    def __init__(self, workdir: pathlib.Path):
        self.port = free_port()
        self.data_dir = workdir / "redis-data"
        self.data_dir.mkdir()
        self.process = ManagedProcess(
            "redis-server",
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.data_dir), "--save", "", "--appendonly", "yes",
             "--daemonize", "no", "--protected-mode", "yes", "--logfile", ""],
            workdir / "redis.log")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        self.process.start()

        def ready() -> bool:
            if not self.process.running():
                raise AssertionError(
                    f"redis-server exited with {self.process.popen.returncode}:\n"
                    + self.process.log_tail())
            return self.answers()

        _poll(ready, timeout, "redis-server answering")

    def answers(self) -> bool:
        """Whether the server is up: it answers PING (a variant may expect another reply)."""
        return self.command("PING") == "PONG"

    def stop(self) -> Optional[int]:
        return self.process.stop(timeout=10.0)

    def command(self, *args: str, timeout: float = 2.0):
        """Sends one command over a fresh connection and returns the decoded reply.

        Simple strings and bulk strings come back as str, integers as int; an error reply
        raises RuntimeError. Enough RESP for PING and CLIENT PAUSE.
        """
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
            payload = f"*{len(args)}\r\n".encode()
            for arg in args:
                data = arg.encode()
                payload += b"$%d\r\n%s\r\n" % (len(data), data)
            sock.sendall(payload)
            reader = sock.makefile("rb")
            line = reader.readline().rstrip(b"\r\n")
            kind, rest = line[:1], line[1:].decode()
            if kind == b"+":
                return rest
            if kind == b"-":
                raise RuntimeError(f"redis error: {rest}")
            if kind == b":":
                return int(rest)
            if kind == b"$":
                size = int(rest)
                return None if size < 0 else reader.read(size + 2)[:-2].decode()
            raise RuntimeError(f"unexpected redis reply {line!r}")


class ServiceProcess:
    """One Rogatory service binary with its own gRPC and metrics ports.

    The ports are chosen once, so ``stop`` then ``start`` restarts the service with the
    same configuration, as an orchestrator would.
    """

    def __init__(self, name: str, redis: RedisServer, workdir: pathlib.Path,
                 grpc_ports: dict[str, int]):
        """``grpc_ports`` holds the gRPC port of every service of the test, started or not,
        so each one's relay delivers events to the others' ports."""
        self.name = name
        self.service_name = SERVICE_NAMES[name]
        self.port = grpc_ports[name]
        self.metrics_port = free_port()
        receivers = ",".join(f"{n}=127.0.0.1:{p}" for n, p in sorted(grpc_ports.items()))
        self.log_path = workdir / f"{name}.log"
        self.process = ManagedProcess(
            f"rogatory-{name}",
            [str(BIN_DIR / f"rogatory-{name}"),
             f"--listen=127.0.0.1:{self.port}",
             f"--metrics-listen=127.0.0.1:{self.metrics_port}",
             f"--redis-url={redis.url}",
             f"--event-receivers={receivers}",
             "--relay-poll-interval=20ms",
             "--health-probe-interval=200ms",
             *AUTH_ARGS],
            self.log_path)

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self, wait: bool = True) -> None:
        self.process.start()
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT_S) -> None:
        """Waits until both liveness ("") and readiness (service name) answer SERVING."""
        for name in ("", self.service_name):
            self.wait_health(name, "SERVING", timeout)

    def wait_health(self, service_name: str, want: str, timeout: float) -> None:
        def probe() -> bool:
            if not self.process.running():
                raise AssertionError(
                    f"{self.process.name} exited with {self.process.popen.returncode} "
                    f"before {service_name or '<server>'} was {want}:\n"
                    + self.process.log_tail())
            return rc.health_check(self.addr, service_name, timeout=1.0) == want

        _poll(probe, timeout, f"{self.name} health {service_name or '<server>'} {want}")

    def stop(self) -> Optional[int]:
        return self.process.stop()


def _poll(probe, timeout: float, description: str):
    """Like rc.poll_until, but an AssertionError from the probe fails at once."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            last = probe()
            if last:
                return last
        except AssertionError:
            raise
        except Exception as error:  # noqa: BLE001 - not ready yet.
            last = error
        if time.monotonic() >= deadline:
            raise AssertionError(f"{description}: not reached within {timeout:.0f}s "
                                 f"(last: {last!r})")
        time.sleep(0.1)


# --------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------


def _require(paths: list[pathlib.Path]) -> None:
    """Fails when a needed executable is missing: these tests never skip."""
    missing = [str(p) for p in dict.fromkeys(paths) if not os.access(p, os.X_OK)]
    if missing:
        raise AssertionError("missing executables: " + ", ".join(missing))


class E2ETestCase(unittest.TestCase):
    """Starts a private redis-server and the services in SERVICES for the whole class."""

    SERVICES: tuple[str, ...] = ("intake",)

    @classmethod
    def setUpClass(cls) -> None:
        _require([pathlib.Path(REDIS_SERVER)]
                 + [BIN_DIR / "rogatory-intake"]
                 + [BIN_DIR / f"rogatory-{name}" for name in cls.SERVICES])
        cls.workdir = pathlib.Path(tempfile.mkdtemp(prefix=cls.__name__ + "-", dir=WORK_ROOT))
        cls.redis = RedisServer(cls.workdir)
        cls.addClassCleanup(cls.redis.stop)
        cls.redis.start()
        cls.services = {}
        grpc_ports = {name: free_port() for name in SERVICE_NAMES}
        for name in cls.SERVICES:
            service = ServiceProcess(name, cls.redis, cls.workdir, grpc_ports)
            cls.addClassCleanup(service.stop)
            service.start(wait=False)
            cls.services[name] = service
        for service in cls.services.values():
            service.wait_ready()

    def intake_stub(self, service: Optional[ServiceProcess] = None,
                    caller: Optional[rc.Caller] = ISSUER):
        """A stub on a fresh channel (closed after the test), calling as ``caller``."""
        service = service or self.services["intake"]
        channel = rc.connect(service.addr, caller)
        self.addCleanup(channel.close)
        return rc.stubs().intake_grpc.IntakeServiceStub(channel)

    def submit(self, stub, content=None, request_id: Optional[str] = None,
               timeout: float = 5.0):
        """Submits ``content`` (a fresh example EIO by default); returns the Request."""
        pb = rc.stubs()
        content = content if content is not None else rc.example_eio_content()
        request = pb.intake.SubmitRequestRequest(
            request_id=request_id or str(uuid.uuid4()), content=content)
        return stub.SubmitRequest(request, timeout=timeout).request

    def get(self, stub, request_id: str, view=None, timeout: float = 5.0):
        pb = rc.stubs()
        request = pb.intake.GetRequestRequest(id=request_id)
        if view is not None:
            request.view = view
        return stub.GetRequest(request, timeout=timeout).request

    def assertRpcCode(self, code: grpc.StatusCode, call, *args, **kwargs) -> grpc.RpcError:
        """Asserts that ``call(*args, **kwargs)`` fails with ``code``; returns the error."""
        try:
            call(*args, **kwargs)
        except grpc.RpcError as error:
            self.assertEqual(error.code(), code,
                             f"expected {code.name}, got {error.code().name}: "
                             f"{error.details()!r}")
            return error
        self.fail(f"expected {code.name}, but the call succeeded")


def _status_name(status: int) -> str:
    return rc.stubs().types.RequestStatus.Name(status)


# --------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------


class AllServicesHealthTest(E2ETestCase):
    """Every service is observable by an orchestrator and by grpcurl-like tools."""

    SERVICES = ("intake", "routing", "deadlines", "notification")

    def test_each_service_answers_serving_for_server_and_its_service_name(self):
        for name, service in self.services.items():
            for health_name in ("", service.service_name):
                with self.subTest(service=name, health_name=health_name or "<server>"):
                    self.assertEqual(rc.health_check(service.addr, health_name), "SERVING")

    def test_each_service_lists_itself_and_health_through_reflection(self):
        for name, service in self.services.items():
            with self.subTest(service=name):
                listed = rc.list_services(service.addr)
                self.assertIn(service.service_name, listed)
                self.assertIn(rc.HEALTH_SERVICE, listed)


class EventBackboneTest(E2ETestCase):
    """Intake's events reach the other services through its outbox and relay."""

    SERVICES = ("intake", "routing", "deadlines", "notification")

    def test_trace_id_of_a_request_appears_in_the_logs_of_every_service(self):
        trace_id = uuid.uuid4().hex
        channel = rc.connect(self.services["intake"].addr, ISSUER)
        self.addCleanup(channel.close)
        stub = rc.stubs().intake_grpc.IntakeServiceStub(channel)
        pb = rc.stubs()
        request = pb.intake.SubmitRequestRequest(
            request_id=str(uuid.uuid4()), content=rc.example_eio_content())
        submitted = stub.SubmitRequest(
            request, timeout=5.0, metadata=(("x-rogatory-trace-id", trace_id),)).request
        self.assertEqual(submitted.trace_id, trace_id)

        def received_by(name: str) -> bool:
            for line in self.services[name].log_path.read_text().splitlines():
                # Other events of the request (a deadline started, say) carry the same
                # trace id and may arrive first: look for the submission itself.
                if trace_id in line and '"msg":"event received"' in line:
                    entry = json.loads(line)
                    if entry["type"] == "EVENT_TYPE_REQUEST_SUBMITTED":
                        self.assertEqual(entry["source"], "intake")
                        return True
            return False

        for name in ("routing", "deadlines", "notification"):
            _poll(lambda n=name: received_by(n), 20, f"{name} logs the event of {trace_id}")
        intake_log = self.services["intake"].log_path.read_text()
        self.assertIn(trace_id, intake_log)
        # The log lines carry the trace id, never the subject's personal data.
        for service in self.services.values():
            log = service.log_path.read_text()
            for personal in (rc.example_eio_content().subjects[0].family_name,
                             rc.example_eio_content().issuer_reference):
                if personal:
                    self.assertNotIn(personal, log)

    def test_relay_reports_deliveries_in_metrics(self):
        stub = self.intake_stub()
        self.submit(stub)

        def delivered() -> bool:
            page = urllib.request.urlopen(self.services["intake"].metrics_url, timeout=2).read()
            text = page.decode()
            return all(f'rogatory_events_delivered_total{{emitter="intake",receiver="{r}"}}'
                       in text for r in ("routing", "deadlines", "notification"))

        _poll(delivered, 20, "intake's relay reports deliveries to all three receivers")


class IntakeApiTest(E2ETestCase):
    """The intake API as an issuing authority uses it."""

    def test_submitted_eio_reads_back_with_same_content(self):
        pb = rc.stubs()
        stub = self.intake_stub()
        content = rc.example_eio_content()
        submitted = self.submit(stub, content)

        self.assertTrue(submitted.id, "SubmitRequest returned no id")
        self.assertTrue(submitted.etag, "SubmitRequest returned no etag")
        self.assertIn(_status_name(submitted.status),
                      ("REQUEST_STATUS_RECEIVED", "REQUEST_STATUS_INCOMPLETE"))

        fetched = self.get(stub, submitted.id, view=pb.intake.REQUEST_VIEW_FULL)
        self.assertEqual(fetched.id, submitted.id)
        self.assertEqual(fetched.content, content, "GetRequest (FULL) content differs")
        self.assertIn(_status_name(fetched.status),
                      ("REQUEST_STATUS_RECEIVED", "REQUEST_STATUS_INCOMPLETE"))
        self.assertTrue(fetched.etag, "GetRequest returned no etag")
        self.assertTrue(fetched.HasField("create_time") and fetched.create_time.seconds > 0,
                        "GetRequest returned no create_time")
        with self.subTest("GetRequest defaults to the FULL view"):
            self.assertEqual(self.get(stub, submitted.id).content, content)

    def test_list_requests_filtered_by_instrument_finds_submitted_eio(self):
        pb = rc.stubs()
        stub = self.intake_stub()
        submitted = self.submit(stub)

        eio = self._list_all(stub, instrument=pb.types.INSTRUMENT_EIO)
        self.assertIn(submitted.id, [r.id for r in eio])
        self.assertTrue(all(r.content.instrument == pb.types.INSTRUMENT_EIO for r in eio),
                        "an EIO-filtered list holds another instrument")
        eaw = self._list_all(stub, instrument=pb.types.INSTRUMENT_EAW)
        self.assertNotIn(submitted.id, [r.id for r in eaw],
                         "an EAW-filtered list holds the EIO")

    def test_list_requests_basic_view_omits_personal_data(self):
        pb = rc.stubs()
        stub = self.intake_stub()
        submitted = self.submit(stub)
        listed = {r.id: r for r in self._list_all(stub, instrument=pb.types.INSTRUMENT_EIO)}
        self.assertIn(submitted.id, listed)
        basic = listed[submitted.id].content
        self.assertEqual(len(basic.subjects), 0, "BASIC view lists subjects")
        self.assertEqual(basic.statement_of_facts, "", "BASIC view holds the facts")
        self.assertEqual(basic.requested_state, "DE")

    def _list_all(self, stub, **filters) -> list:
        pb = rc.stubs()
        found, token = [], ""
        for _ in range(20):
            response = stub.ListRequests(
                pb.intake.ListRequestsRequest(page_size=100, page_token=token, **filters),
                timeout=5.0)
            found.extend(response.requests)
            token = response.next_page_token
            if not token:
                return found
        self.fail("ListRequests did not end within 20 pages")

    def test_same_request_id_twice_returns_same_request(self):
        stub = self.intake_stub()
        request_id = str(uuid.uuid4())
        first = self.submit(stub, rc.example_eio_content(), request_id)
        second = self.submit(stub, rc.example_eio_content(), request_id)
        self.assertEqual(second.id, first.id)
        self.assertEqual(second.content, first.content)

    def test_same_request_id_with_different_content_is_already_exists(self):
        stub = self.intake_stub()
        request_id = str(uuid.uuid4())
        self.submit(stub, rc.example_eio_content(), request_id)
        changed = rc.example_eio_content(offence_note=" Amended.")
        self.assertRpcCode(grpc.StatusCode.ALREADY_EXISTS, self.submit, stub, changed,
                           request_id)

    def test_malformed_request_is_invalid_argument_listing_every_bad_field(self):
        stub = self.intake_stub()
        error = self.assertRpcCode(grpc.StatusCode.INVALID_ARGUMENT, self.submit, stub,
                                   rc.malformed_content())
        violations = rc.field_violations(error)
        self.assertTrue(violations, "INVALID_ARGUMENT carries no google.rpc.BadRequest")
        missing = rc.missing_fields(violations, rc.MALFORMED_FIELDS)
        self.assertEqual(missing, [],
                         f"BadRequest does not name {missing}; it names "
                         f"{[field for field, _ in violations]}")

    def test_invalid_utf8_in_a_nested_string_field_is_invalid_argument_naming_it(self):
        # Issue 22, item 10. A client cannot send such bytes through the generated stub
        # (protobuf refuses to encode them): a valid message is encoded, then a placeholder
        # in the second subject's family name is overwritten with bytes that are not UTF-8.
        pb = rc.stubs()
        content = rc.example_eio_content()
        content.subjects.append(pb.intake.Subject(
            role=content.subjects[0].role, family_name="@@bad@@"))
        request = pb.intake.SubmitRequestRequest(request_id=str(uuid.uuid4()),
                                                 content=content)
        raw = request.SerializeToString().replace(b"@@bad@@", b"\xff\xfe\xc0\x80\xed\xa0\x80")
        channel = rc.connect(self.services["intake"].addr, ISSUER)
        self.addCleanup(channel.close)
        submit = channel.unary_unary(
            "/rogatory.intake.v1.IntakeService/SubmitRequest",
            request_serializer=lambda data: data,
            response_deserializer=pb.intake.SubmitRequestResponse.FromString)
        error = self.assertRpcCode(grpc.StatusCode.INVALID_ARGUMENT, submit, raw, timeout=5.0)
        self.assertIn("content.subjects[1].family_name", error.details())
        self.assertEqual([field for field, _ in rc.field_violations(error)],
                         ["content.subjects[1].family_name"])

    def test_call_without_authority_metadata_is_unauthenticated(self):
        pb = rc.stubs()
        stub = self.intake_stub(caller=None)
        with self.subTest("SubmitRequest"):
            self.assertRpcCode(grpc.StatusCode.UNAUTHENTICATED, self.submit, stub)
        with self.subTest("GetRequest"):
            self.assertRpcCode(grpc.StatusCode.UNAUTHENTICATED, stub.GetRequest,
                               pb.intake.GetRequestRequest(id="rq-0-0"), timeout=5.0)
        with self.subTest("ListRequests"):
            self.assertRpcCode(grpc.StatusCode.UNAUTHENTICATED, stub.ListRequests,
                               pb.intake.ListRequestsRequest(), timeout=5.0)

    def test_get_unknown_id_is_not_found(self):
        stub = self.intake_stub()
        real_id = self.submit(stub).id
        # Same shape as a real id (shard prefix, alphabet, length), but a different one.
        unknown_id = real_id[:-1] + ("1" if real_id[-1] == "0" else "0")
        self.assertRpcCode(grpc.StatusCode.NOT_FOUND, self.get, stub, unknown_id)

    def test_metrics_page_counts_rpcs_and_exports_process_metrics(self):
        stub = self.intake_stub()
        self.submit(stub)
        url = self.services["intake"].metrics_url
        handled = re.compile(r'^grpc_server_handled_total\{[^}]*grpc_method="SubmitRequest"',
                             re.M)

        def page_with_submit() -> str:
            with urllib.request.urlopen(url, timeout=2.0) as response:
                text = response.read().decode()
            return text if handled.search(text) else ""

        text = _poll(page_with_submit, 5.0, "grpc_server_handled_total for SubmitRequest")
        submit_lines = [line for line in text.splitlines()
                        if line.startswith("grpc_server_handled_total{")
                        and 'grpc_method="SubmitRequest"' in line]
        self.assertTrue(
            any(f'grpc_service="{rc.INTAKE_SERVICE}"' in line for line in submit_lines),
            f"no grpc_service=\"{rc.INTAKE_SERVICE}\" label on {submit_lines}")
        for metric in ("process_resident_memory_bytes", "process_open_fds"):
            with self.subTest(metric=metric):
                self.assertRegex(text, re.compile(rf"^{metric}(\{{[^}}]*\}})? \S+", re.M))


#: An executing authority in the requested state.
# Without routing running, the requested state's central authority acts for the executing
# side (need-to-know, common/access.h).
EXECUTOR = rc.Caller("DE-STA-FRANKFURT", "DE", ("executing", "central"))


class IntakeLifecycleTest(E2ETestCase):
    """Lifecycle, supplements, history and documents through the public API (issue 4)."""

    def _stub(self, caller):
        return self.intake_stub(caller=caller)

    def _move(self, stub, request_id, status, etag="", reason="", key=None):
        pb = rc.stubs()
        return stub.TransitionRequest(pb.intake.TransitionRequestRequest(
            request_id=key or str(uuid.uuid4()), id=request_id, target_status=status,
            etag=etag, reason_code=reason), timeout=5.0).request

    def _history(self, stub, request_id, page_size=2):
        pb = rc.stubs()
        events, token = [], ""
        for _ in range(50):
            response = stub.GetRequestHistory(pb.intake.GetRequestHistoryRequest(
                id=request_id, page_size=page_size, page_token=token), timeout=5.0)
            events.extend(response.events)
            token = response.next_page_token
            if not token:
                return events
        self.fail("GetRequestHistory did not end within 50 pages")

    def test_walk_history_illegal_move_stale_etag_and_withdrawal(self):
        pb = rc.stubs()
        types = pb.types
        issuer, executor = self._stub(ISSUER), self._stub(EXECUTOR)
        submitted = self.submit(issuer)
        forwarded = self._move(executor, submitted.id, types.REQUEST_STATUS_FORWARDED,
                               etag=submitted.etag, reason="COMPETENT")
        self.assertEqual(forwarded.status, types.REQUEST_STATUS_FORWARDED)
        with self.subTest("stale etag"):
            self.assertRpcCode(grpc.StatusCode.ABORTED, self._move, executor, submitted.id,
                               types.REQUEST_STATUS_RECOGNISED, etag=submitted.etag)
        with self.subTest("illegal move names the allowed statuses"):
            error = self.assertRpcCode(grpc.StatusCode.FAILED_PRECONDITION, self._move,
                                       executor, submitted.id, types.REQUEST_STATUS_EXECUTED)
            self.assertIn("REQUEST_STATUS_RECOGNISED", error.details())
        with self.subTest("the acknowledgment has its own RPC"):
            error = self.assertRpcCode(grpc.StatusCode.INVALID_ARGUMENT, self._move, executor,
                                       submitted.id, types.REQUEST_STATUS_ACKNOWLEDGED)
            self.assertIn("AcknowledgeRequest", error.details())
        with self.subTest("only the executing side acknowledges"):
            self.assertRpcCode(grpc.StatusCode.PERMISSION_DENIED, issuer.AcknowledgeRequest,
                               pb.intake.AcknowledgeRequestRequest(id=submitted.id),
                               timeout=5.0)
        acked = executor.AcknowledgeRequest(pb.intake.AcknowledgeRequestRequest(
            request_id=str(uuid.uuid4()), id=submitted.id, etag=forwarded.etag),
            timeout=5.0).request
        self.assertEqual(acked.status, types.REQUEST_STATUS_ACKNOWLEDGED)
        with self.subTest("acknowledged once"):
            self.assertRpcCode(grpc.StatusCode.FAILED_PRECONDITION, executor.AcknowledgeRequest,
                               pb.intake.AcknowledgeRequestRequest(id=submitted.id),
                               timeout=5.0)
        with self.subTest("only the issuer withdraws"):
            self.assertRpcCode(grpc.StatusCode.PERMISSION_DENIED, executor.WithdrawRequest,
                               pb.intake.WithdrawRequestRequest(id=submitted.id), timeout=5.0)
        withdrawn = issuer.WithdrawRequest(pb.intake.WithdrawRequestRequest(
            request_id=str(uuid.uuid4()), id=submitted.id, reason_code="NO_LONGER_NEEDED",
            etag=acked.etag), timeout=5.0).request
        self.assertEqual(withdrawn.status, types.REQUEST_STATUS_WITHDRAWN)

        history = self._history(issuer, submitted.id)
        self.assertEqual(
            [pb.events.EventType.Name(e.type) for e in history],
            ["EVENT_TYPE_REQUEST_SUBMITTED",
             "EVENT_TYPE_REQUEST_RECEIVED_BY_COMPETENT_AUTHORITY",
             "EVENT_TYPE_REQUEST_ACKNOWLEDGED", "EVENT_TYPE_REQUEST_WITHDRAWN"])
        self.assertEqual([e.sequence for e in history], [1, 2, 3, 4])
        self.assertEqual([e.reason_code for e in history[1:]],
                         ["COMPETENT", "", "NO_LONGER_NEEDED"])
        self.assertEqual([e.actor.authority.authority_id for e in history],
                         ["FR-TJ-PARIS-JI", "DE-STA-FRANKFURT", "DE-STA-FRANKFURT",
                          "FR-TJ-PARIS-JI"])

    def test_supplement_completes_an_incomplete_request(self):
        pb = rc.stubs()
        issuer = self._stub(ISSUER)
        content = rc.example_eio_content()
        del content.measures[:]
        submitted = self.submit(issuer, content)
        self.assertEqual(submitted.status, pb.types.REQUEST_STATUS_INCOMPLETE)
        self.assertEqual([m.field for m in submitted.missing_elements], ["content.measures"])
        supplement = pb.intake.RequestContent(measures=rc.example_eio_content().measures)
        supplement.safeguards.dual_criminality = pb.intake.SAFEGUARD_ASSESSMENT_CLEARED
        request = pb.intake.SupplementRequestRequest(
            request_id=str(uuid.uuid4()), id=submitted.id, content=supplement,
            etag=submitted.etag)
        request.update_mask.paths.extend(["measures", "safeguards"])
        supplemented = issuer.SupplementRequest(request, timeout=5.0).request
        self.assertEqual(supplemented.status, pb.types.REQUEST_STATUS_RECEIVED)
        self.assertEqual(len(supplemented.missing_elements), 0)
        again = issuer.SupplementRequest(request, timeout=5.0).request  # idempotent replay
        self.assertEqual(again.etag, supplemented.etag)
        last = self._history(issuer, submitted.id, page_size=100)[-1]
        self.assertEqual(last.type, pb.events.EVENT_TYPE_REQUEST_SUPPLEMENTED)
        self.assertEqual(sorted(last.status_change.changed_fields),
                         ["content.measures", "content.safeguards.dual_criminality"])

    def test_five_mebibyte_document_round_trips_and_corrupted_upload_is_refused(self):
        import hashlib
        pb = rc.stubs()
        issuer = self._stub(ISSUER)
        submitted = self.submit(issuer)
        data = os.urandom(5 << 20)
        digest = hashlib.sha256(data).hexdigest()

        def parts(corrupt=False):
            yield pb.intake.UploadDocumentRequest(metadata=pb.intake.DocumentUpload(
                request_id=str(uuid.uuid4()), id=submitted.id,
                kind=pb.intake.DOCUMENT_KIND_REQUEST_FORM, language="fr",
                media_type="application/pdf", title="Annex A", sha256=digest))
            for index, at in enumerate(range(0, len(data), 1 << 20)):
                chunk = bytearray(data[at:at + (1 << 20)])
                if corrupt and index == 2:
                    chunk[100] ^= 0xFF
                yield pb.intake.UploadDocumentRequest(chunk=bytes(chunk))

        document = issuer.UploadDocument(parts(), timeout=30.0).document
        self.assertEqual(document.size_bytes, len(data))
        self.assertEqual(document.sha256, digest)
        received, metadata = bytearray(), None
        for message in issuer.DownloadDocument(pb.intake.DownloadDocumentRequest(
                id=submitted.id, document_id=document.id), timeout=30.0):
            if message.HasField("metadata"):
                metadata = message.metadata
            else:
                received.extend(message.chunk)
        self.assertEqual(metadata.id, document.id)
        self.assertTrue(bytes(received) == data, "downloaded bytes differ")

        error = self.assertRpcCode(grpc.StatusCode.INVALID_ARGUMENT, issuer.UploadDocument,
                                   parts(corrupt=True), timeout=30.0)
        self.assertIn("metadata.sha256", [field for field, _ in rc.field_violations(error)])
        listed = issuer.ListDocuments(pb.intake.ListDocumentsRequest(id=submitted.id),
                                      timeout=5.0).documents
        self.assertEqual([d.id for d in listed], [document.id])
        added = [e for e in self._history(issuer, submitted.id, page_size=100)
                 if e.type == pb.events.EVENT_TYPE_DOCUMENT_ADDED]
        self.assertEqual([e.document.document_id for e in added], [document.id])


class RedisOutageTest(E2ETestCase):
    """Intake rides out a Redis outage without a restart and loses nothing."""

    def test_readiness_follows_redis_and_requests_survive_outage(self):
        intake = self.services["intake"]
        stub = self.intake_stub()
        submitted = self.submit(stub)
        pid = intake.process.pid

        self.assertIsNotNone(self.redis.stop(), "redis-server did not stop")
        intake.wait_health(intake.service_name, "NOT_SERVING", timeout=5.0)
        self.assertEqual(rc.health_check(intake.addr, ""), "SERVING",
                         "liveness must stay SERVING while Redis is down")

        for rpc, call in (("SubmitRequest", lambda: self.submit(stub, timeout=3.0)),
                          ("GetRequest", lambda: self.get(stub, submitted.id, timeout=3.0))):
            with self.subTest(rpc=rpc, redis="down"):
                started = time.monotonic()
                self.assertRpcCode(grpc.StatusCode.UNAVAILABLE, call)
                self.assertLess(time.monotonic() - started, 3.0)

        self.redis.start()
        intake.wait_health(intake.service_name, "SERVING", timeout=20.0)
        self.assertEqual(intake.process.pid, pid)
        self.assertTrue(intake.process.running(), "intake restarted or died during outage")
        self.assertEqual(self.get(stub, submitted.id).content, submitted.content,
                         "request submitted before the outage is lost")
        self.assertTrue(self.submit(stub).id, "SubmitRequest fails after Redis came back")


class RedisPauseTest(E2ETestCase):
    """A stalled Redis must not stall health checks (orchestrators would kill the pod)."""

    def test_client_pause_does_not_stall_health_checks(self):
        intake = self.services["intake"]
        channel = rc.connect(intake.addr)
        self.addCleanup(channel.close)
        self.assertEqual(rc.health_check(channel, ""), "SERVING")

        self.assertEqual(self.redis.command("CLIENT", "PAUSE", "5000", "ALL"), "OK")
        paused_until = time.monotonic() + 5.0
        # Sample both checks through 3 s of the 5 s pause (the probe runs every 200 ms).
        samples = []  # (health name, seconds taken, status name or error code name)
        while time.monotonic() < paused_until - 2.0:
            for name in ("", intake.service_name):
                started = time.monotonic()
                try:
                    outcome = rc.health_check(channel, name, timeout=1.0)
                except grpc.RpcError as error:
                    outcome = error.code().name
                samples.append((name or "<server>", time.monotonic() - started, outcome))
            time.sleep(0.2)

        stalled = [s for s in samples
                   if s[1] >= 1.0 or s[2] not in ("SERVING", "NOT_SERVING")]
        self.assertEqual(stalled, [], f"{len(stalled)} of {len(samples)} health checks "
                                      "stalled or failed during CLIENT PAUSE")
        liveness = {outcome for name, _, outcome in samples if name == "<server>"}
        self.assertEqual(liveness, {"SERVING"}, "liveness left SERVING during CLIENT PAUSE")
        intake.wait_health(intake.service_name, "SERVING", timeout=15.0)


class AllServicesShutdownTest(E2ETestCase):
    """Every service drains and exits 0 on SIGTERM, its background threads included."""

    SERVICES = ("intake", "routing", "deadlines", "notification")

    def test_each_service_exits_zero_on_sigterm_after_handling_a_request(self):
        self.submit(self.intake_stub())  # events flow to the three others
        for name, service in self.services.items():
            with self.subTest(service=name):
                service.process.signal(signal.SIGTERM)
                code = service.process.wait(timeout=15.0)
                self.assertIsNotNone(code, f"{name} still running 15 s after SIGTERM")
                self.assertEqual(code, 0, f"{name} exited with {code}:\n"
                                 + service.process.log_tail())


class ServiceLifecycleTest(E2ETestCase):
    """Intake stops cleanly and keeps its data across restarts."""

    SERVICES = ()

    def _intake(self) -> ServiceProcess:
        service = ServiceProcess("intake", self.redis, self.workdir,
                                 {name: free_port() for name in SERVICE_NAMES})
        self.addCleanup(service.stop)
        service.start()
        return service

    def test_sigterm_exits_zero_within_15_seconds(self):
        intake = self._intake()
        self.submit(self.intake_stub(intake))
        intake.process.signal(signal.SIGTERM)
        code = intake.process.wait(timeout=15.0)
        self.assertIsNotNone(code, "intake still running 15 s after SIGTERM")
        self.assertEqual(code, 0)

    def test_accepted_request_survives_service_restart(self):
        intake = self._intake()
        submitted = self.submit(self.intake_stub(intake))
        intake.stop()
        intake.start()
        fetched = self.get(self.intake_stub(intake), submitted.id)
        self.assertEqual(fetched.content, submitted.content)
        self.assertEqual(fetched.status, submitted.status)


# --------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------


def _on_sigterm(signum, frame):  # noqa: ARG001
    raise SystemExit(128 + signum)  # Runs the cleanups and the atexit handler.


def run_tests(work_prefix: str, description: str) -> int:
    """The main of every e2e test script: parses --bin-dir, runs the calling script's tests
    (unittest's `__main__`), and on failure prints each process's last log lines and keeps
    the work directory."""
    global BIN_DIR, WORK_ROOT
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--bin-dir", type=pathlib.Path,
                        default=pathlib.Path(os.environ.get("ROGATORY_BIN_DIR",
                                                            REPO_ROOT / "build" / "bin")),
                        help="directory holding the rogatory-* binaries")
    args, unittest_args = parser.parse_known_args()
    BIN_DIR = args.bin_dir.resolve()
    signal.signal(signal.SIGTERM, _on_sigterm)

    rc.stubs()  # Generate the stubs up front: a protoc failure is not a test failure.
    WORK_ROOT = pathlib.Path(tempfile.mkdtemp(prefix=work_prefix))
    program = unittest.main(module="__main__", argv=[sys.argv[0]] + unittest_args, exit=False,
                            verbosity=2)
    result = program.result
    if result.wasSuccessful():
        shutil.rmtree(WORK_ROOT, ignore_errors=True)
        return 0
    for process in ManagedProcess.all:
        print(f"\n==== {process.name} ({process.log_path}) last lines ====", file=sys.stderr)
        print(process.log_tail(), file=sys.stderr)
    print(f"\nwork directory kept: {WORK_ROOT}", file=sys.stderr)
    return 1


def main() -> int:
    return run_tests("rogatory-e2e-", __doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
