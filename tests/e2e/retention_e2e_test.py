#!/usr/bin/python3
"""End-to-end test of retention and erasure across the four services, on the shared test clock.

A withdrawn request is kept with its personal data for retention-closed, then intake makes
it a tombstone and emits REQUEST_ERASED, on which routing, deadline-tracking and
notification erase what they keep about it; after retention-tombstone it is gone. Run by
ctest as::

    /usr/bin/python3 tests/e2e/retention_e2e_test.py --bin-dir <build>/bin [unittest args]

The process, Redis and fixture helpers are those of ``intake_e2e_test.py``.
"""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import intake_e2e_test as base  # noqa: E402
from intake_e2e_test import rc, grpc  # noqa: E402

OPERATOR = rc.Caller("OPS-1", "", ("operator",))

HOUR_S = 3600
DAY_S = 24 * HOUR_S
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


class RetentionE2ETest(base.E2ETestCase):
    """Closed requests are erased everywhere, personal data first."""

    SERVICES = ("intake", "routing", "deadlines", "notification")

    @classmethod
    def setUpClass(cls) -> None:
        base._require([pathlib.Path(base.REDIS_SERVER), pathlib.Path(REDIS_CLI)]
                      + [base.BIN_DIR / f"rogatory-{name}" for name in cls.SERVICES])
        cls.workdir = pathlib.Path(tempfile.mkdtemp(prefix=cls.__name__ + "-",
                                                    dir=base.WORK_ROOT))
        cls.redis = base.RedisServer(cls.workdir)
        cls.addClassCleanup(cls.redis.stop)
        cls.redis.start()
        cls.services = {}
        grpc_ports = {name: base.free_port() for name in base.SERVICE_NAMES}
        for name in cls.SERVICES:
            service = base.ServiceProcess(name, cls.redis, cls.workdir, grpc_ports)
            service.process.argv.append("--test-clock=true")
            if name == "intake":
                service.process.argv += ["--retention-closed=72h",
                                         "--retention-tombstone=720h",
                                         "--retention-sweep-interval=1s"]
            cls.addClassCleanup(service.stop)
            service.start(wait=False)
            cls.services[name] = service
        for service in cls.services.values():
            service.wait_ready()

    def stub(self, service: str, module: str, name: str, caller=base.ISSUER):
        channel = rc.connect(self.services[service].addr, caller)
        self.addCleanup(channel.close)
        return getattr(getattr(rc.stubs(), module), name)(channel)

    def redis_lines(self, *args: str) -> list[str]:
        out = subprocess.run([REDIS_CLI, "-p", str(self.redis.port), "--raw", *args],
                             check=True, capture_output=True, text=True, timeout=10).stdout
        return [line for line in out.splitlines() if line]

    def advance(self, seconds: int) -> None:
        pb = rc.stubs()
        # Only operators (and Rogatory services) move the shared clock (issue 16, item 1).
        self.stub("intake", "test_clock_grpc", "TestClockServiceStub", OPERATOR).AdvanceTime(
            pb.test_clock.AdvanceTimeRequest(by={"seconds": seconds}), timeout=5.0)

    def test_withdrawn_request_is_erased_in_every_service(self):
        pb = rc.stubs()
        intake = self.stub("intake", "intake_grpc", "IntakeServiceStub")
        routing = self.stub("routing", "routing_grpc", "TranslationRoutingServiceStub")
        deadlines = self.stub("deadlines", "deadlines_grpc", "DeadlineServiceStub")
        # In German: routing forwards it without translation, so the competent authority
        # receives it and its EIO deadlines start (they count from that reception).
        request = self.submit(intake, rc.example_eio_content(source_language="de"))
        shard = int(re.match(r"rq-(\d+)-", request.id).group(1))
        ntf = f"rg:{{s{shard}}}:ntf:"

        # Every service holds something about the request.
        base._poll(lambda: routing.GetRoutingDecision(
            pb.routing.GetRoutingDecisionRequest(request_id=request.id), timeout=5.0),
            15.0, "routing decision")
        base._poll(lambda: list(deadlines.ListDeadlines(pb.deadlines.ListDeadlinesRequest(
            target_request_id=request.id), timeout=5.0).deadlines), 15.0, "deadlines started")
        base._poll(lambda: self.redis_lines("ZRANGE", f"{ntf}rqev:{request.id}", "0", "-1"),
                   15.0, "notification evidence")

        withdraw = pb.intake.WithdrawRequestRequest(id=request.id, reason_code="NOT_NEEDED")
        withdrawn = intake.WithdrawRequest(withdraw, timeout=5.0).request
        self.assertEqual(withdrawn.status, pb.types.REQUEST_STATUS_WITHDRAWN)

        # Within retention-closed: kept.
        self.advance(71 * HOUR_S)
        got = intake.GetRequest(pb.intake.GetRequestRequest(id=request.id), timeout=5.0).request
        self.assertEqual(len(got.content.subjects), 1)

        # Past it: intake keeps a tombstone; the others erase their data.
        self.advance(2 * HOUR_S)

        def tombstone():
            r = intake.GetRequest(pb.intake.GetRequestRequest(id=request.id),
                                  timeout=5.0).request
            return r if not r.content.subjects else None

        got = base._poll(tombstone, 15.0, "personal data erased")
        self.assertEqual(got.status, pb.types.REQUEST_STATUS_WITHDRAWN)
        self.assertEqual(got.content.instrument, pb.types.INSTRUMENT_EIO)
        self.assertFalse(got.content.statement_of_facts)
        self.assertFalse(got.content.issuer_reference)
        history = intake.GetRequestHistory(
            pb.intake.GetRequestHistoryRequest(id=request.id), timeout=5.0).events
        self.assertEqual(history[-1].type, pb.events.EVENT_TYPE_REQUEST_ERASED)

        def routing_gone():
            try:
                routing.GetRoutingDecision(
                    pb.routing.GetRoutingDecisionRequest(request_id=request.id), timeout=5.0)
                return False
            except grpc.RpcError as error:
                self.assertEqual(error.code(), grpc.StatusCode.NOT_FOUND)
                return True

        base._poll(routing_gone, 15.0, "routing decision erased")
        base._poll(lambda: not list(deadlines.ListDeadlines(pb.deadlines.ListDeadlinesRequest(
            target_request_id=request.id), timeout=5.0).deadlines), 15.0, "deadlines erased")

        def payloads_gone():
            events = self.redis_lines("ZRANGE", f"{ntf}rqev:{request.id}", "0", "-1")
            return all(self.redis_lines("HEXISTS", f"{ntf}ev:{e}", "pb") == ["0"]
                       for e in events)

        base._poll(payloads_gone, 15.0, "notification payloads erased")

        with urllib.request.urlopen(self.services["intake"].metrics_url, timeout=5) as r:
            text = r.read().decode()
        self.assertRegex(text, r'rogatory_intake_erasures_total\{step="personal_data"\} [1-9]')

        # After retention-tombstone: gone.
        self.advance(721 * HOUR_S)

        def erased():
            try:
                intake.GetRequest(pb.intake.GetRequestRequest(id=request.id), timeout=5.0)
                return False
            except grpc.RpcError as error:
                self.assertEqual(error.code(), grpc.StatusCode.NOT_FOUND)
                return True

        base._poll(erased, 15.0, "request erased")
        self.assertEqual(self.redis_lines("EXISTS", f"rg:{{s{shard}}}:req:{request.id}"), ["0"])
        self.assertEqual(self.redis_lines("EXISTS", f"rg:{{s{shard}}}:hist:{request.id}"), ["0"])


def main() -> int:
    return base.run_tests("rogatory-retention-e2e-", __doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
