#!/usr/bin/python3
"""What callers without a token can make a service spend: metrics series and log lines.

Run by ctest (labels e2e, security) as::

    /usr/bin/python3 tests/e2e/resources_e2e_test.py --bin-dir <build>/bin [unittest args]

A real rogatory-routing binary with token authentication (the development key set) and
its own redis-server. Raw gRPC calls with no token:

* 5,000 calls to method names the service does not serve leave its /metrics page within
  1 MB of its size before (issue 16, item 9): unknown methods share one label value.
* 200 calls, half well-formed and half whose bytes do not parse, write at most a few log
  lines (issue 16, item 12): such failures are summarized, rate-limited, not logged one
  line each.

And a real rogatory-notification with its default per-caller bounds (issue 16, item 10):

* 1,000 idle Subscribe streams of 50 callers (20 each, their bound) are all open at once
  while the process has fewer than 100 threads (no thread per stream), another caller's
  unary call still succeeds, the 21st stream of one caller answers RESOURCE_EXHAUSTED, and
  a notification published afterwards reaches every one of the 1,000 streams.

Bounds are on sizes and counts, never on timings. Process handling comes from
intake_e2e_test.py.
"""

from __future__ import annotations

import asyncio
import pathlib
import re
import sys
import tempfile
import unittest
import urllib.request
import uuid

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import grpc  # noqa: E402
import grpc.aio  # noqa: E402
import intake_e2e_test as base  # noqa: E402  (processes, Redis, services)

rc = base.rc

#: The metrics page may grow by less than this after the unknown-method calls.
METRICS_GROWTH_BOUND = 1 << 20
UNKNOWN_METHOD_CALLS = 5000
#: Calls without a token in the log test, and the log lines they may cause at most.
UNAUTHENTICATED_CALLS = 200
LOG_LINE_BOUND = 5

GET_DECISION = f"/{rc.ROUTING_SERVICE}/GetRoutingDecision"


def _identity(data: bytes) -> bytes:
    return data


def invalid_utf8_request() -> bytes:
    """Field 1 (request_id, a string) holding bytes that are not UTF-8: does not parse."""
    value = b"\xff\xfe\xfd"
    return b"\x0a" + bytes([len(value)]) + value


def well_formed_request() -> bytes:
    value = str(uuid.uuid4()).encode()
    return b"\x0a" + bytes([len(value)]) + value


class ResourcesE2ETest(base.E2ETestCase):
    SERVICES = ("routing",)

    def setUp(self):
        self.routing = self.services["routing"]
        self.channel = grpc.insecure_channel(self.routing.addr)
        self.addCleanup(self.channel.close)

    def metrics_page(self) -> bytes:
        with urllib.request.urlopen(self.routing.metrics_url, timeout=10) as response:
            return response.read()

    def raw_calls(self, methods_and_bodies, expect: set[grpc.StatusCode]) -> None:
        """Raw unary calls without a token, 200 in flight at a time; each must fail with
        one of `expect`."""
        batch = []

        def drain():
            for method, future in batch:
                try:
                    future.result()
                    self.fail(f"{method} answered OK without a token")
                except grpc.RpcError as error:
                    self.assertIn(error.code(), expect, f"{method}: {error.details()}")
            batch.clear()

        for method, body in methods_and_bodies:
            call = self.channel.unary_unary(method, request_serializer=_identity,
                                            response_deserializer=_identity)
            batch.append((method, call.future(body, timeout=30)))
            if len(batch) >= 200:
                drain()
        drain()

    def log_lines(self) -> list[str]:
        return self.routing.log_path.read_text(errors="replace").splitlines()

    def test_unknown_methods_do_not_grow_the_metrics_page(self):
        # One call of a served method first, so its series exist before the baseline.
        self.raw_calls([(GET_DECISION, well_formed_request())],
                       {grpc.StatusCode.UNAUTHENTICATED})
        before = self.metrics_page()
        token = uuid.uuid4().hex[:8]
        self.raw_calls(
            ((f"/probe{token}.Service{i}/Method{i}" if i % 2 else
              f"/{rc.ROUTING_SERVICE}/NoSuch{token}{i}", b"")
             for i in range(UNKNOWN_METHOD_CALLS)),
            {grpc.StatusCode.UNIMPLEMENTED})
        after = self.metrics_page()
        self.assertFalse(token.encode() in after,
                         f"the probe's method names are label values ({len(after)} bytes)")
        self.assertIn(b'grpc_method="unknown"', after)
        self.assertLess(len(after) - len(before), METRICS_GROWTH_BOUND,
                        f"/metrics grew from {len(before)} to {len(after)} bytes")

    def test_calls_without_a_token_do_not_write_a_line_each(self):
        # Every call of the test is in flight or answered once raw_calls returns, and a
        # line is written before its call is answered: counting then sees every line.
        self.raw_calls([(GET_DECISION, well_formed_request())],
                       {grpc.StatusCode.UNAUTHENTICATED})
        before = len(self.log_lines())
        calls = []
        for i in range(UNAUTHENTICATED_CALLS):
            calls.append((GET_DECISION,
                          invalid_utf8_request() if i % 2 else well_formed_request()))
        self.raw_calls(calls, {grpc.StatusCode.UNAUTHENTICATED,
                               grpc.StatusCode.INVALID_ARGUMENT})
        lines = self.log_lines()
        new_lines = lines[before:]
        self.assertLessEqual(len(new_lines), LOG_LINE_BOUND, "\n".join(new_lines[:20]))
        # They are not silent either: a summary names the kind of refusal.
        self.assertTrue([line for line in lines if "(summary)" in line
                         and '"kind":"unauthenticated"' in line], "no summary line")


#: The notification service's default bound of streams per caller, and callers enough for
#: 1,000 streams within it.
STREAMS_PER_CALLER = 20
STREAM_CALLERS = 50
STREAM_COUNT = STREAMS_PER_CALLER * STREAM_CALLERS
THREAD_BOUND = 100
RELAY = rc.Caller("rogatory-intake", "", ("service",))
TIMEOUT_S = 30.0


def _metric(page: str, name: str, labels: str = "") -> float:
    """The value of one series of a text exposition; 0 when absent."""
    pattern = re.escape(name) + (r"\{" + re.escape(labels) + r"\}" if labels else "") + r" (\S+)"
    found = re.search(r"^" + pattern + r"$", page, re.M)
    return float(found.group(1)) if found else 0.0


def _threads(pid: int) -> int:
    status = pathlib.Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^Threads:\s+(\d+)$", status, re.M).group(1))


class StreamsPerCallerE2ETest(unittest.TestCase):
    """1,000 idle Subscribe streams on one rogatory-notification, with its defaults."""

    @classmethod
    def setUpClass(cls):
        base._require([pathlib.Path(base.REDIS_SERVER), base.BIN_DIR / "rogatory-notification"])
        cls.workdir = pathlib.Path(tempfile.mkdtemp(prefix="streams-", dir=base.WORK_ROOT))
        cls.redis = base.RedisServer(cls.workdir)
        cls.addClassCleanup(cls.redis.stop)
        cls.redis.start()
        cls.port = base.free_port()
        cls.metrics_port = base.free_port()
        cls.process = base.ManagedProcess(
            "rogatory-notification",
            [str(base.BIN_DIR / "rogatory-notification"),
             f"--listen=127.0.0.1:{cls.port}",
             f"--metrics-listen=127.0.0.1:{cls.metrics_port}",
             f"--redis-url={cls.redis.url}",
             "--redis-shards=4",
             "--health-probe-interval=200ms",
             # Polls are for other replicas' writes; this process's fan-out wakes the
             # streams itself. A slow poll keeps 1,000 streams cheap on a small machine.
             "--notification-poll-interval=2s",
             *base.AUTH_ARGS],
            cls.workdir / "notification.log")
        cls.addClassCleanup(cls.process.stop)
        cls.process.start()
        cls.addr = f"127.0.0.1:{cls.port}"
        base._poll(lambda: rc.health_check(cls.addr, rc.NOTIFICATION_SERVICE, timeout=1.0)
                   == "SERVING", TIMEOUT_S, "notification ready")
        cls.s = rc.stubs()

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.read().decode()

    def publish(self, recipients) -> str:
        event_id = uuid.uuid4().hex
        ev = self.s.events.Event(
            event_id=event_id, sequence=1, source="intake",
            request_id=f"rq-1-01j0000000000000000000{uuid.uuid4().hex[:4]}",
            type=self.s.events.EVENT_TYPE_REQUEST_RECOGNISED,
            instrument=self.s.types.INSTRUMENT_EIO, trace_id=uuid.uuid4().hex)
        ev.request.issuing_authority.authority_id = "FR-TJ-PARIS-JI"
        ev.request.issuing_authority.state = "FR"
        ev.request.requested_state = "DE"
        ev.occur_time.GetCurrentTime()
        request = self.s.notification.PublishEventRequest(event=ev)
        for caller in recipients:
            request.extra_recipients.add(authority_id=caller.authority_id, state=caller.state)
        with rc.connect(self.addr, RELAY) as channel:
            stub = self.s.notification_grpc.NotificationServiceStub(channel)
            self.assertTrue(stub.PublishEvent(request, timeout=10).accepted)
        return event_id

    def test_thousand_idle_streams_within_caller_bounds_hold_no_thread_each(self):
        asyncio.run(self._thousand_streams())

    async def _thousand_streams(self):
        callers = [rc.Caller(f"DE-STREAMS-{i:02d}", "DE", ("executing",))
                   for i in range(STREAM_CALLERS)]
        channels = [grpc.aio.insecure_channel(self.addr) for _ in range(10)]
        stubs = [self.s.notification_grpc.NotificationServiceStub(c) for c in channels]
        oldest = self.s.notification.SubscribeRequest(
            start_position=self.s.notification.START_POSITION_OLDEST)
        calls = []
        try:
            for i, caller in enumerate(callers):
                for j in range(STREAMS_PER_CALLER):
                    calls.append(stubs[(i + j) % len(stubs)].Subscribe(
                        oldest, metadata=caller.metadata(), timeout=120))

            async def poll(probe, description):
                deadline = asyncio.get_running_loop().time() + TIMEOUT_S
                while not probe():
                    if asyncio.get_running_loop().time() > deadline:
                        self.fail(f"timed out waiting for {description}")
                    await asyncio.sleep(0.2)  # lets the streams' calls run meanwhile

            await poll(lambda: _metric(self.metrics(),
                                       "rogatory_notification_connected_subscribers")
                       == STREAM_COUNT, f"{STREAM_COUNT} open streams")
            threads = _threads(self.process.pid)
            self.assertLess(threads, THREAD_BOUND,
                            f"{threads} threads with {STREAM_COUNT} open streams")
            self.assertEqual(_metric(self.metrics(), "rogatory_calls_in_flight",
                                     'kind="stream"'), STREAM_COUNT)

            # Another caller's unary call is served meanwhile.
            other = rc.Caller("FR-TJ-LYON", "FR", ("issuing",))
            listed = await stubs[0].ListSubscriptions(
                self.s.notification.ListSubscriptionsRequest(), metadata=other.metadata(),
                timeout=10)
            self.assertEqual(len(listed.subscriptions), 0)

            # One caller over its bound of streams is refused at once, with a clear message.
            extra = stubs[0].Subscribe(oldest, metadata=callers[0].metadata(), timeout=10)
            with self.assertRaises(grpc.aio.AioRpcError) as refused:
                await extra.read()
            self.assertEqual(refused.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
            self.assertIn("max-streams-per-caller", refused.exception.details())
            self.assertGreaterEqual(
                _metric(self.metrics(), "rogatory_calls_refused_total",
                        'bound="caller",kind="stream"'), 1)

            # Every idle stream is still served: a notification published now reaches all.
            event_id = self.publish(callers)

            async def first_notification(call):
                while True:
                    response = await call.read()
                    self.assertIsNot(response, grpc.aio.EOF, "stream ended")
                    if response.HasField("notification"):
                        return response.notification.event.event_id

            got = await asyncio.wait_for(
                asyncio.gather(*(first_notification(c) for c in calls)), TIMEOUT_S)
            self.assertEqual(got, [event_id] * STREAM_COUNT)
            threads = _threads(self.process.pid)
            self.assertLess(threads, THREAD_BOUND, f"{threads} threads after the deliveries")
        finally:
            for call in calls:
                call.cancel()
            for channel in channels:
                await channel.close()
            # Lets grpc's own tasks of the cancelled calls end here: asyncio.run would
            # cancel them itself, which hangs grpcio 1.51.
            left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            if left:
                await asyncio.wait(left, timeout=TIMEOUT_S)


if __name__ == "__main__":
    sys.exit(base.run_tests("rogatory-resources-", __doc__.splitlines()[0]))
