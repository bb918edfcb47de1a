#!/usr/bin/python3
"""End-to-end tests of rogatory-notification's webhooks.

They run the real binary against a real ``redis-server`` and a local HTTP receiver started
here (loopback, so the binary runs with --webhook-allow-private-addresses=true), feed it
events through the event backbone's DeliverEvents as a relay would, and check what the
receiver gets: Standard Webhooks signatures, retries, the dead-letter list and redrive,
secret rotation and duplicates. Run by ctest as::

    /usr/bin/python3 tests/e2e/notification_e2e_test.py --bin-dir <build>/bin

Process handling (ports, logs, cleanup, never skipping) comes from intake_e2e_test.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import importlib
import json
import os
import pathlib
import signal
import sys
import tempfile
import threading
import unittest
import uuid

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import intake_e2e_test as base  # noqa: E402  (ManagedProcess, RedisServer, free_port, _poll)
import grpc  # noqa: E402
import rogatory_client as rc  # noqa: E402

RELAY = rc.Caller("rogatory-intake", "", ("service",))
OPERATOR = rc.Caller("OPS-1", "", ("operator",))
ISSUER = rc.Caller("FR-TJ-PARIS-JI", "FR", ("issuing",))
TIMEOUT_S = 20.0


def verify(secret: str, headers: dict, body: bytes) -> bool:
    """Standard Webhooks verification, written independently of the service."""
    key = base64.b64decode(secret[len("whsec_"):])
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for part in headers.get("webhook-signature", "").split(" "):
        version, _, sig = part.partition(",")
        if version == "v1" and hmac.compare_digest(sig, expected):
            return True
    return False


class Receiver:
    """A loopback HTTP server. Per path: how many initial requests fail (503), or fail
    until told otherwise. Records every request."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        self.fail_first: dict[str, int] = {}
        self.down: set[str] = set()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    seen = sum(1 for r in receiver.requests if r["path"] == self.path)
                    failing = (self.path in receiver.down
                               or seen < receiver.fail_first.get(self.path, 0))
                    receiver.requests.append({
                        "path": self.path, "body": body, "status": 503 if failing else 204,
                        "headers": {k.lower(): v for k, v in self.headers.items()}})
                self.send_response(503 if failing else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def on(self, path: str) -> list[dict]:
        with self.lock:
            return [r for r in self.requests if r["path"] == path]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class NotificationWebhookTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        base._require([pathlib.Path(base.REDIS_SERVER), base.BIN_DIR / "rogatory-notification"])
        cls.workdir = pathlib.Path(tempfile.mkdtemp(prefix="notification-", dir=base.WORK_ROOT))
        cls.redis = base.RedisServer(cls.workdir)
        cls.addClassCleanup(cls.redis.stop)
        cls.redis.start()
        cls.receiver = Receiver()
        cls.addClassCleanup(cls.receiver.close)
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
             "--notification-poll-interval=20ms",
             "--webhook-allow-private-addresses=true",
             f"--webhook-allowed-ports={cls.receiver.server.server_address[1]}",
             "--webhook-initial-backoff=50ms",
             "--webhook-max-backoff=200ms",
             "--webhook-max-attempts=4",
             "--webhook-timeout=2s",
             *base.AUTH_ARGS],
            cls.workdir / "notification.log")
        cls.addClassCleanup(cls.process.stop)
        cls.process.start()
        addr = f"127.0.0.1:{cls.port}"
        base._poll(lambda: rc.health_check(addr, rc.NOTIFICATION_SERVICE, timeout=1.0)
                   == "SERVING", TIMEOUT_S, "notification ready")
        cls.s = rc.stubs()
        cls.sink = importlib.import_module("rogatory.events.v1.event_sink_pb2")
        cls.sink_grpc = importlib.import_module("rogatory.events.v1.event_sink_pb2_grpc")
        cls.channels = []

    @classmethod
    def stub(cls, caller: rc.Caller):
        channel = rc.connect(f"127.0.0.1:{cls.port}", caller)
        cls.addClassCleanup(channel.close)
        return cls.s.notification_grpc.NotificationServiceStub(channel)

    def deliver(self, *events):
        channel = rc.connect(f"127.0.0.1:{self.port}", RELAY)
        self.addCleanup(channel.close)
        sink = self.sink_grpc.EventSinkServiceStub(channel)
        return sink.DeliverEvents(
            self.sink.DeliverEventsRequest(source="intake", events=list(events)), timeout=5)

    def event(self, executing: str, event_id: str = "", request_shard: int = 1):
        ev = self.s.events.Event(
            event_id=event_id or uuid.uuid4().hex, sequence=1, source="intake",
            request_id=f"rq-{request_shard}-01j0000000000000000000{uuid.uuid4().hex[:4]}",
            type=self.s.events.EVENT_TYPE_REQUEST_RECOGNISED,
            instrument=self.s.types.INSTRUMENT_EIO,
            trace_id=uuid.uuid4().hex)
        ev.request.issuing_authority.authority_id = ISSUER.authority_id
        ev.request.issuing_authority.state = "FR"
        ev.request.requested_state = "DE"
        ev.request.executing_authority.authority_id = executing
        ev.request.executing_authority.state = "DE"
        ev.occur_time.GetCurrentTime()
        return ev

    def subscribe(self, owner: rc.Caller, path: str):
        created = self.stub(owner).CreateSubscription(
            self.s.notification.CreateSubscriptionRequest(
                request_id=uuid.uuid4().hex, endpoint_uri=self.receiver.url(path)), timeout=5)
        self.assertTrue(created.signing_secret.startswith("whsec_"))
        return created

    def wait_for(self, probe, description: str, timeout: float = TIMEOUT_S):
        return base._poll(probe, timeout, description)

    # ------------------------------------------------------------------------------------

    def test_receiver_failing_three_times_gets_the_fourth_attempt_with_a_valid_signature(self):
        owner = rc.Caller("DE-STA-FLAKY", "DE", ("executing",))
        path = "/flaky"
        self.receiver.fail_first[path] = 3
        created = self.subscribe(owner, path)
        ev = self.event(owner.authority_id)
        self.deliver(ev)
        self.wait_for(lambda: len(self.receiver.on(path)) >= 4, "four attempts")
        attempts = self.receiver.on(path)
        self.assertEqual([a["status"] for a in attempts], [503, 503, 503, 204])
        ok = attempts[3]
        self.assertTrue(verify(created.signing_secret, ok["headers"], ok["body"]))
        self.assertFalse(verify("whsec_" + base64.b64encode(b"x" * 32).decode(),
                                ok["headers"], ok["body"]))
        # One message id across retries, so receivers can drop replays.
        self.assertEqual(len({a["headers"]["webhook-id"] for a in attempts}), 1)
        body = json.loads(ok["body"])
        self.assertEqual(body["eventId"], ev.event_id)
        self.assertEqual(body["type"], "EVENT_TYPE_REQUEST_RECOGNISED")
        # Evidence: accepted, and delivered through the subscription.
        status = self.wait_for(lambda: [
            e for e in self.stub(owner).GetDeliveryStatus(
                self.s.notification.GetDeliveryStatusRequest(event_id=ev.event_id),
                timeout=5).evidences
            if e.stage == self.s.notification.DELIVERY_STAGE_DELIVERED
            and e.subscription_id == created.subscription.id], "delivered evidence")
        self.assertEqual(status[0].recipient.authority_id, owner.authority_id)
        self.assertEqual(len(self.receiver.on(path)), 4)  # a success is final
        # Every attempt is recorded for the audit log, with references only.
        audit = self.wait_for(lambda: [
            json.loads(line) for line in self.process.log_path.read_text().splitlines()
            if '"webhook delivery"' in line and ev.event_id in line], "audit lines")
        self.assertEqual(sorted(a["outcome"] for a in audit),
                         ["http_2xx", "http_5xx", "http_5xx", "http_5xx"])
        self.assertTrue(all(a["subscription_id"] == created.subscription.id
                            and a["recipient"] == owner.authority_id for a in audit))

    def test_always_failing_receiver_ends_in_dead_letters_and_redrive_delivers(self):
        owner = rc.Caller("DE-STA-DOWN", "DE", ("executing",))
        path = "/down"
        self.receiver.down.add(path)
        created = self.subscribe(owner, path)
        ev = self.event(owner.authority_id)
        self.deliver(ev)
        operator = self.stub(OPERATOR)

        def dead():
            listed = operator.ListDeadLetters(
                self.s.notification.ListDeadLettersRequest(page_size=100), timeout=5)
            return [d for d in listed.dead_letters if d.event_id == ev.event_id]

        letters = self.wait_for(dead, "dead letter")
        self.assertEqual(letters[0].attempts, 4)
        self.assertEqual(letters[0].subscription_id, created.subscription.id)
        self.assertEqual(letters[0].last_outcome, "http_5xx")
        self.assertEqual(len(self.receiver.on(path)), 4)
        # The owner sees its own dead letters; someone else does not.
        mine = self.stub(owner).ListDeadLetters(
            self.s.notification.ListDeadLettersRequest(), timeout=5)
        self.assertIn(ev.event_id, [d.event_id for d in mine.dead_letters])
        theirs = self.stub(ISSUER).ListDeadLetters(
            self.s.notification.ListDeadLettersRequest(), timeout=5)
        self.assertNotIn(ev.event_id, [d.event_id for d in theirs.dead_letters])

        self.receiver.down.discard(path)
        operator.RedriveDeadLetter(
            self.s.notification.RedriveDeadLetterRequest(dead_letter_id=letters[0].id), timeout=5)
        self.wait_for(lambda: self.receiver.on(path)[-1]["status"] == 204, "redriven delivery")
        last = self.receiver.on(path)[-1]
        self.assertTrue(verify(created.signing_secret, last["headers"], last["body"]))
        self.assertEqual(dead(), [])
        with self.assertRaises(grpc.RpcError) as ctx:
            operator.RedriveDeadLetter(
                self.s.notification.RedriveDeadLetterRequest(dead_letter_id=letters[0].id),
                timeout=5)
        self.assertEqual(ctx.exception.code(), grpc.StatusCode.NOT_FOUND)

    def test_rotated_secret_keeps_deliveries_verifiable(self):
        owner = rc.Caller("DE-STA-ROTATE", "DE", ("executing",))
        path = "/rotate"
        created = self.subscribe(owner, path)
        self.deliver(self.event(owner.authority_id))
        self.wait_for(lambda: len(self.receiver.on(path)) >= 1, "first delivery")
        first = self.receiver.on(path)[0]
        self.assertTrue(verify(created.signing_secret, first["headers"], first["body"]))

        rotated = self.stub(owner).RotateSubscriptionSecret(
            self.s.notification.RotateSubscriptionSecretRequest(
                subscription_id=created.subscription.id), timeout=5)
        self.assertNotEqual(rotated.signing_secret, created.signing_secret)
        self.deliver(self.event(owner.authority_id))
        self.wait_for(lambda: len(self.receiver.on(path)) >= 2, "delivery after rotation")
        second = self.receiver.on(path)[1]
        # During the switch both the new and the old secret verify.
        self.assertTrue(verify(rotated.signing_secret, second["headers"], second["body"]))
        self.assertTrue(verify(created.signing_secret, second["headers"], second["body"]))
        # Someone else cannot rotate it.
        with self.assertRaises(grpc.RpcError) as ctx:
            self.stub(ISSUER).RotateSubscriptionSecret(
                self.s.notification.RotateSubscriptionSecretRequest(
                    subscription_id=created.subscription.id), timeout=5)
        self.assertEqual(ctx.exception.code(), grpc.StatusCode.NOT_FOUND)

    def assertReason(self, reason: str, code, call, *args, **kwargs) -> None:
        """The call fails with this code and google.rpc.ErrorInfo (domain rogatory, this
        reason from errors.proto)."""
        with self.assertRaises(grpc.RpcError) as ctx:
            call(*args, **kwargs)
        error = ctx.exception
        self.assertEqual(error.code(), code, f"{error.code().name}: {error.details()!r}")
        info = rc.error_info(error)
        self.assertIsNotNone(info, f"no ErrorInfo on {code.name}: {error.details()!r}")
        self.assertEqual((info.domain, info.reason), ("rogatory", reason), info)

    def test_every_refusal_carries_error_info_with_its_reason(self):
        n = self.s.notification
        owner = rc.Caller("DE-STA-REASONS", "DE", ("executing",))
        invalid, not_found = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
        # A bad field: an endpoint that is no URL.
        self.assertReason("INVALID_FIELD", invalid, self.stub(owner).CreateSubscription,
                          n.CreateSubscriptionRequest(request_id=uuid.uuid4().hex,
                                                      endpoint_uri="not a url"), timeout=5)
        # An unknown id.
        unknown = f"sub-1-{uuid.uuid4().hex[:26]}"
        self.assertReason("NOT_FOUND", not_found, self.stub(owner).DeleteSubscription,
                          n.DeleteSubscriptionRequest(subscription_id=unknown), timeout=5)
        # Denied: publishing is for services only.
        self.assertReason("PERMISSION_DENIED", grpc.StatusCode.PERMISSION_DENIED,
                          self.stub(ISSUER).PublishEvent, n.PublishEventRequest(), timeout=5)
        # A page token this query never issued.
        self.assertReason("PAGE_TOKEN_INVALID", invalid, self.stub(owner).ListSubscriptions,
                          n.ListSubscriptionsRequest(page_token="not-a-token"), timeout=5)
        # No caller at all.
        channel = rc.connect(f"127.0.0.1:{self.port}")
        self.addCleanup(channel.close)
        anonymous = self.s.notification_grpc.NotificationServiceStub(channel)
        self.assertReason("UNAUTHENTICATED", grpc.StatusCode.UNAUTHENTICATED,
                          anonymous.ListSubscriptions, n.ListSubscriptionsRequest(), timeout=5)
        # Someone else's subscription, and one that was deleted (stale).
        created = self.subscribe(owner, "/reasons")
        rotate = n.RotateSubscriptionSecretRequest(subscription_id=created.subscription.id)
        self.assertReason("NOT_FOUND", not_found, self.stub(ISSUER).RotateSubscriptionSecret,
                          rotate, timeout=5)
        self.stub(owner).DeleteSubscription(
            n.DeleteSubscriptionRequest(subscription_id=created.subscription.id), timeout=5)
        self.assertReason("NOT_FOUND", not_found, self.stub(owner).RotateSubscriptionSecret,
                          rotate, timeout=5)

    def test_request_bytes_that_do_not_parse_are_malformed_request(self):
        channel = rc.connect(f"127.0.0.1:{self.port}", ISSUER)
        self.addCleanup(channel.close)
        raw = channel.unary_unary(
            "/rogatory.notification.v1.NotificationService/ListSubscriptions",
            request_serializer=None, response_deserializer=None)
        # Field 2 (page_token) as length-delimited with a length past the end of the bytes.
        self.assertReason("MALFORMED_REQUEST", grpc.StatusCode.INVALID_ARGUMENT, raw,
                          b"\x12\x7f\x01", timeout=5)

    def test_duplicate_event_id_reaches_no_one_twice(self):
        owner = rc.Caller("DE-STA-DUP", "DE", ("executing",))
        path = "/dup"
        self.subscribe(owner, path)
        ev = self.event(owner.authority_id)
        first = self.deliver(ev)
        again = self.deliver(ev)
        self.assertEqual((first.handled_count, first.duplicate_count), (1, 0))
        self.assertEqual(again.duplicate_count, 1)
        marker = self.event(owner.authority_id)
        self.deliver(marker)
        self.wait_for(lambda: len(self.receiver.on(path)) >= 2, "marker delivered")
        ids = [json.loads(r["body"])["eventId"] for r in self.receiver.on(path)]
        self.assertEqual(sorted(ids), sorted([ev.event_id, marker.event_id]))
        # The stream shows the duplicate once too.
        stream = self.stub(owner).Subscribe(
            self.s.notification.SubscribeRequest(
                start_position=self.s.notification.START_POSITION_OLDEST), timeout=10)
        got = []
        for item in stream:
            if item.HasField("notification"):
                got.append(item.notification.event.event_id)
            if marker.event_id in got:
                break
        stream.cancel()
        self.assertEqual(got, [ev.event_id, marker.event_id])

    def test_metrics_are_exported(self):
        import urllib.request
        text = urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).read().decode()
        for name in ("rogatory_notification_events_received_total",
                     "rogatory_notification_fanout_recipients",
                     "rogatory_notification_webhook_deliveries_total",
                     "rogatory_notification_dead_letters",
                     "rogatory_notification_connected_subscribers",
                     "rogatory_notification_unretrieved"):
            self.assertIn(name, text)


def main() -> int:
    return base.run_tests("rogatory-notification-e2e-", __doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
