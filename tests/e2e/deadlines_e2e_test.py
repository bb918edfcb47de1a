#!/usr/bin/python3
"""End-to-end tests of rogatory-deadlines with rogatory-intake and the shared test clock.

The real binaries run against a private ``redis-server``; the tests talk to them only
through gRPC and HTTP (metrics). Run by ctest as::

    /usr/bin/python3 tests/e2e/deadlines_e2e_test.py --bin-dir <build>/bin [unittest args]

The process, Redis and fixture helpers are those of ``intake_e2e_test.py``.
"""

from __future__ import annotations

import os
import pathlib
import signal
import sys
import tempfile
import unittest
import urllib.request
import uuid

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import intake_e2e_test as base  # noqa: E402
from intake_e2e_test import rc, grpc  # noqa: E402

DAY_S = 24 * 3600


class DeadlinesE2ETest(base.E2ETestCase):
    """Intake's events start deadlines; the shared test clock makes them fire."""

    SERVICES = ("intake", "deadlines")

    @classmethod
    def setUpClass(cls) -> None:
        # Same as the base fixture, with the shared test clock on for every service and a
        # quick timer loop.
        base._require([pathlib.Path(base.REDIS_SERVER)]
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
            if name == "deadlines":
                service.process.argv.append("--timer-poll-interval=50ms")
            cls.addClassCleanup(service.stop)
            service.start(wait=False)
            cls.services[name] = service
        for service in cls.services.values():
            service.wait_ready()

    def deadlines_stub(self, caller=base.ISSUER):
        channel = rc.connect(self.services["deadlines"].addr, caller)
        self.addCleanup(channel.close)
        return rc.stubs().deadlines_grpc.DeadlineServiceStub(channel)

    def clock_stub(self):
        channel = rc.connect(self.services["deadlines"].addr, base.ISSUER)
        self.addCleanup(channel.close)
        return rc.stubs().test_clock_grpc.TestClockServiceStub(channel)

    def await_known(self, request_id: str):
        """Need-to-know: deadline-tracking learns who a request concerns from intake's
        events; a caller reaches the request once the submission event has arrived."""
        base._poll(lambda: self.list_for(request_id), 15.0, "submission event received")

    def list_for(self, request_id: str):
        pb = rc.stubs()
        return list(self.deadlines_stub().ListDeadlines(
            pb.deadlines.ListDeadlinesRequest(target_request_id=request_id),
            timeout=5.0).deadlines)

    def test_submitted_eio_starts_its_acknowledgement_deadline(self):
        request = self.submit(self.intake_stub())

        def started():
            return [d for d in self.list_for(request.id) if d.rule_id == "EIO_ACKNOWLEDGE"]

        found = base._poll(started, 15.0, "EIO_ACKNOWLEDGE deadline started")
        pb = rc.stubs()
        self.assertEqual(found[0].state, pb.deadlines.DEADLINE_STATE_RUNNING)
        self.assertEqual(found[0].trigger_event_type, pb.events.EVENT_TYPE_REQUEST_SUBMITTED)
        self.assertTrue(found[0].rules_version)
        self.assertGreater(found[0].due_time.seconds, found[0].trigger_time.seconds + 6 * DAY_S)

    def test_rules_are_served_with_their_version(self):
        pb = rc.stubs()
        response = self.deadlines_stub().GetDeadlineRules(
            pb.deadlines.GetDeadlineRulesRequest(instrument=pb.types.INSTRUMENT_EAW), timeout=5.0)
        self.assertIn("EAW_DECISION_NO_CONSENT", [r.id for r in response.rules])
        self.assertTrue(all(r.instrument == pb.types.INSTRUMENT_EAW for r in response.rules))
        self.assertTrue(response.rules_version)

    def test_extension_needs_a_reason_and_is_refused_beyond_the_rule(self):
        pb = rc.stubs()
        stub = self.deadlines_stub()
        request = self.submit(self.intake_stub())
        self.await_known(request.id)
        authority = f"DE-BY-E2E-{uuid.uuid4().hex[:8]}"
        start = pb.deadlines.StartDeadlineRequest(
            request_id=str(uuid.uuid4()), target_request_id=request.id,
            rule_id="EAW_DECISION_CONSENT", requested_state="DE",
            instrument=pb.types.INSTRUMENT_EAW)
        start.executing_authority.authority_id = authority
        start.executing_authority.state = "DE"
        start.executing_authority.region = "DE-BY"
        deadline = stub.StartDeadline(start, timeout=5.0).deadline
        # The same idempotency key gives the same deadline.
        self.assertEqual(stub.StartDeadline(start, timeout=5.0).deadline.id, deadline.id)
        self.assertEqual(deadline.time_zone, "Europe/Berlin")
        listed = stub.ListDeadlines(pb.deadlines.ListDeadlinesRequest(
            executing_authority_id=authority), timeout=5.0).deadlines
        self.assertEqual([d.id for d in listed], [deadline.id])
        error = self.assertRpcCode(
            grpc.StatusCode.INVALID_ARGUMENT, stub.ExtendDeadline,
            pb.deadlines.ExtendDeadlineRequest(deadline_id=deadline.id), timeout=5.0)
        fields = [f for f, _ in rc.field_violations(error)]
        self.assertIn("by", fields)
        self.assertIn("reason_code", fields)
        extend = pb.deadlines.ExtendDeadlineRequest(deadline_id=deadline.id,
                                                    reason_code="COMPLEX_CASE")
        extend.by.seconds = 30 * DAY_S
        extended = stub.ExtendDeadline(extend, timeout=5.0).deadline
        self.assertEqual(len(extended.extensions), 1)
        self.assertGreater(extended.due_time.seconds, deadline.due_time.seconds)
        self.assertRpcCode(grpc.StatusCode.FAILED_PRECONDITION, stub.ExtendDeadline, extend,
                           timeout=5.0)

    def test_zz_eaw_deadline_fires_after_61_days_and_intake_records_it(self):
        # Runs last (name order): it moves the shared clock 61 days on.
        pb = rc.stubs()
        stub = self.deadlines_stub()
        request = self.submit(self.intake_stub())
        self.await_known(request.id)
        deadline = stub.StartDeadline(pb.deadlines.StartDeadlineRequest(
            request_id=str(uuid.uuid4()), target_request_id=request.id,
            rule_id="EAW_DECISION_NO_CONSENT", requested_state="DE",
            instrument=pb.types.INSTRUMENT_EAW), timeout=5.0).deadline
        self.assertEqual(deadline.state, pb.deadlines.DEADLINE_STATE_RUNNING)
        self.clock_stub().AdvanceTime(
            pb.test_clock.AdvanceTimeRequest(by={"seconds": 61 * DAY_S}), timeout=5.0)

        def overdue():
            d = stub.GetDeadline(pb.deadlines.GetDeadlineRequest(deadline_id=deadline.id),
                                 timeout=5.0).deadline
            return d if d.state == pb.deadlines.DEADLINE_STATE_OVERDUE else None

        fired = base._poll(overdue, 15.0, "EAW deadline overdue after 61 days")
        self.assertGreaterEqual(fired.escalation_level, 1)

        def recorded():
            history = self.intake_stub().GetRequestHistory(
                pb.intake.GetRequestHistoryRequest(id=request.id), timeout=5.0).events
            return [e for e in history if e.type == pb.events.EVENT_TYPE_DEADLINE_MISSED
                    and e.deadline.deadline_id == deadline.id]

        missed = base._poll(recorded, 15.0, "DEADLINE_MISSED in intake's history")
        self.assertEqual(len(missed), 1)
        self.assertEqual(missed[0].source, "deadlines")
        # The request itself stays open: a missed deadline does not end the duty to decide.
        self.assertNotEqual(
            self.get(self.intake_stub(), request.id).status, pb.types.REQUEST_STATUS_CLOSED)

        def metric():
            with urllib.request.urlopen(self.services["deadlines"].metrics_url, timeout=5) as r:
                text = r.read().decode()
            return 'rogatory_deadline_timers_fired_total{kind="missed"}' in text and text

        text = base._poll(metric, 10.0, "fired timers in metrics")
        self.assertIn("rogatory_deadline_firing_lateness_seconds_bucket", text)


def main() -> int:
    return base.run_tests("rogatory-deadlines-e2e-", __doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
