#!/usr/bin/python3
"""Every shipped sample request walks the demo's journey over the four real services.

Starts a private redis-server and the four services (shared test clock on) and, for each
file in samples/requests/, acts as each party in turn, only through the gRPC APIs:

- the issuer submits the sample;
- translation-routing routes it (never unroutable): to a competent authority, or for a
  European Production Order to the provider's addressee;
- when a translation is needed, the issuer uploads the form and a translator claims and
  completes the job;
- the executing party walks the instrument's lifecycle to a closing status (the EIO's
  acknowledgment is its own operation);

and then checks what a user relies on:

- every status change stands in the history as its own entry, in order;
- every deadline started is bound to the executing party and, when counted in days, to a
  real time zone (never a silent UTC); at the end none is left running, and the rules the
  path satisfies are MET;
- the executing party and the issuer were each told of every deadline started, whatever
  the order in which routing's and deadline-tracking's events reached notification.

    /usr/bin/python3 tests/e2e/samples_e2e_test.py --bin-dir <build>/bin [unittest args]
"""

from __future__ import annotations

import collections
import json
import pathlib
import sys
import tempfile
import unittest

import grpc

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import intake_e2e_test as base  # noqa: E402  (fixtures: processes, Redis, run_tests)

rc = base.rc
sys.path.insert(0, str(base.REPO_ROOT / "tools" / "rogatoryctl"))
import journeys as j  # noqa: E402

SAMPLES = base.REPO_ROOT / "samples" / "requests"

#: After routing, the statuses the executing party moves the request through, per
#: instrument ("ACKNOWLEDGE" is the EIO's acknowledgment operation), and the rules whose
#: deadlines that path must meet.
PATHS = {
    "INSTRUMENT_EIO": (["ACKNOWLEDGE", "RECOGNISED", "IN_EXECUTION", "EXECUTED", "CLOSED"],
                       {"EIO_ACKNOWLEDGE", "EIO_RECOGNITION", "EIO_EXECUTION"}),
    "INSTRUMENT_MLA": (["IN_EXECUTION", "EXECUTED", "CLOSED"], {"MLA_FOLLOW_UP"}),
    "INSTRUMENT_EAW": (["ARRESTED", "CONSENT_GIVEN", "FINAL_DECISION", "SURRENDERED",
                        "CLOSED"],
                       {"EAW_DECISION_CONSENT", "EAW_SURRENDER"}),
    "INSTRUMENT_EXTRADITION": (["PROVISIONALLY_ARRESTED", "FORMAL_REQUEST_RECEIVED",
                                "CONSENT_GIVEN", "FINAL_DECISION", "SURRENDERED", "CLOSED"],
                               {"EXTRADITION_PROVISIONAL_ARREST_MAY_END",
                                "EXTRADITION_PROVISIONAL_ARREST_MAXIMUM",
                                "EXTRADITION_CONSENT_STATEMENT"}),
    "INSTRUMENT_PROVISIONAL_ARREST": (["PROVISIONALLY_ARRESTED", "CONSENT_GIVEN",
                                       "FINAL_DECISION", "SURRENDERED", "CLOSED"],
                                      {"PROVISIONAL_ARREST_CONSENT_STATEMENT"}),
    "INSTRUMENT_FREEZING_ORDER": (["RECOGNISED", "IN_EXECUTION", "EXECUTED", "CLOSED"],
                                  {"FREEZING_RECOGNITION_URGENT",
                                   "FREEZING_EXECUTION_URGENT"}),
    "INSTRUMENT_PRODUCTION_ORDER": (["DATA_PRODUCED", "CLOSED"], {"PRODUCTION_ORDER_DATA"}),
}

#: Where routing leaves a routed request: with the competent party, or waiting for a
#: translation first.
ROUTED = ("FORWARDED", "SENT_TO_PROVIDER")


def load_sample(path: pathlib.Path):
    from google.protobuf import json_format
    if path.suffix == ".yaml":
        import yaml
        data = yaml.safe_load(path.read_text())
    else:
        data = json.loads(path.read_text())
    return json_format.ParseDict(data, rc.stubs().intake.RequestContent())


def status_name(status: int) -> str:
    return rc.stubs().types.RequestStatus.Name(status)[len("REQUEST_STATUS_"):]


class SampleJourneysTest(unittest.TestCase):
    """Redis and the four services for the whole class; one journey per sample."""

    @classmethod
    def setUpClass(cls) -> None:
        base._require([pathlib.Path(base.REDIS_SERVER)]
                      + [base.BIN_DIR / f"rogatory-{name}" for name in base.SERVICE_NAMES])
        cls.workdir = pathlib.Path(tempfile.mkdtemp(prefix=cls.__name__ + "-",
                                                    dir=base.WORK_ROOT))
        cls.redis = base.RedisServer(cls.workdir)
        cls.addClassCleanup(cls.redis.stop)
        cls.redis.start()
        grpc_ports = {name: base.free_port() for name in base.SERVICE_NAMES}
        services = {}
        for name in base.SERVICE_NAMES:
            service = base.ServiceProcess(name, cls.redis, cls.workdir, grpc_ports)
            service.process.argv.append("--test-clock=true")
            cls.addClassCleanup(service.stop)
            service.start(wait=False)
            services[name] = service
        for service in services.values():
            service.wait_ready()
        cls.svc = j.Services(*(services[n].addr
                               for n in ("intake", "routing", "deadlines", "notification")))
        cls.addClassCleanup(cls.svc.close)

    def test_every_sample_is_routed_walked_to_its_end_and_every_party_told(self):
        files = sorted(SAMPLES.glob("*.json")) + sorted(SAMPLES.glob("*.yaml"))
        instruments = set()
        for path in files:
            content = load_sample(path)
            instruments.add(content.instrument)
            with self.subTest(sample=path.name):
                self.walk(content)
        self.assertEqual(instruments, set(rc.stubs().types.Instrument.values()) - {0},
                         "a sample for every instrument")

    def test_production_order_tells_the_notified_enforcing_authority_which_may_object(self):
        """Reg. 2023/1543: the order goes to the provider's addressee; the enforcing state's
        authority that routing names (Art 8, traffic data asked) is a party: told of the
        decision and of what follows, reads the request and its deadlines, and may object
        but not move the request otherwise."""
        pb = rc.stubs()
        T, E = pb.types, pb.events
        svc = self.svc
        content = load_sample(SAMPLES / "production-order-fr-ie.json")
        issuer_ref = content.issuing_authority
        issuer = rc.Caller(issuer_ref.authority_id, issuer_ref.state, ("issuing",))
        rid, decision, statuses = self.submit_and_forward(issuer, content)
        self.assertEqual(statuses[-1], "SENT_TO_PROVIDER")
        notified_ref = decision.notified_authority
        self.assertTrue(notified_ref.authority_id, "routing names no enforcing authority")
        self.assertEqual(notified_ref.state, content.production_order.enforcing_state)
        enforcing = rc.Caller(notified_ref.authority_id, notified_ref.state, ("executing",))

        def told(*types):
            def probe():
                got = {x.event.type for x in j.inbox(svc, enforcing, rid)}
                return got if set(types) <= got else None
            return probe
        try:
            j.wait(told(E.EVENT_TYPE_ROUTING_DECIDED, E.EVENT_TYPE_SENT_TO_PROVIDER,
                        E.EVENT_TYPE_DEADLINE_STARTED), 20, "enforcing authority told")
        except TimeoutError:
            got = [E.EventType.Name(x.event.type) for x in j.inbox(svc, enforcing, rid)]
            self.fail(f"the enforcing authority was told {got}")

        # It reads the request and the deadlines running on it, as the executing side does.
        request = j.get(svc, enforcing, rid)
        self.assertEqual(request.notified_authority.authority_id, notified_ref.authority_id)
        rules = {d.rule_id for d in j.deadlines_of(svc, enforcing, rid)}
        self.assertIn("PRODUCTION_ORDER_DATA", rules)
        # An authority of the same state that routing did not name reads nothing.
        stranger = rc.Caller(notified_ref.state + "-NOT-NOTIFIED", notified_ref.state,
                             ("executing",))
        with self.assertRaises(grpc.RpcError) as caught:
            j.get(svc, stranger, rid)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.NOT_FOUND)

        # It may not move the request as the addressee does; it may object.
        with self.assertRaises(grpc.RpcError) as caught:
            j.transition(svc, enforcing, rid, T.REQUEST_STATUS_DATA_PRODUCED)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.PERMISSION_DENIED)
        objected = j.transition(svc, enforcing, rid, T.REQUEST_STATUS_OBJECTED,
                                reason="GROUNDS_ART_12")
        self.assertEqual(status_name(objected.status), "OBJECTED")
        for party in (issuer, enforcing):
            j.wait(lambda party=party: any(
                x.event.type == E.EVENT_TYPE_ENFORCING_AUTHORITY_OBJECTED
                for x in j.inbox(svc, party, rid)), 20, f"{party.authority_id} told of it")

    # ---- one journey ------------------------------------------------------------------

    def submit_and_forward(self, issuer, content):
        """Submits `content` as `issuer`, waits for routing and, when the decision asks for
        a translation, translates the form as a translator of the pair would, until the
        request is forwarded. Returns (request id, decision, statuses passed through)."""
        pb = rc.stubs()
        svc = self.svc
        instrument = pb.types.Instrument.Name(content.instrument)
        submitted = j.submit(svc, issuer, content)
        self.assertEqual(status_name(submitted.status), "RECEIVED",
                         [m.field for m in submitted.missing_elements])
        rid = submitted.id

        # Routed, never left for a person to forward by hand.
        def reached(accepted):
            def probe():
                status = status_name(j.get(svc, issuer, rid).status)
                return status if status in accepted else None
            return probe
        first = j.wait(reached(ROUTED + ("TRANSLATION_PENDING",)), 20, f"{instrument} routed")
        decision = svc.routing(issuer).GetRoutingDecision(
            pb.routing.GetRoutingDecisionRequest(request_id=rid), timeout=10).decision
        self.assertFalse(decision.unroutable,
                         [(r.code, r.detail) for r in decision.reasons])
        self.assertTrue(decision.competent_authority.authority_id, "no competent party")

        statuses = ["RECEIVED"]
        if first == "TRANSLATION_PENDING":
            statuses.append("TRANSLATION_PENDING")
            self.assertTrue(decision.translation_required)
            form = j.upload(svc, issuer, rid, j.FORM_FR, content.source_language,
                            title="Form")
            pair = f"{content.source_language}-{decision.target_language}"
            translator = rc.Caller(f"XL-{pair.upper()}-SAMPLES", issuer.state,
                                   ("translator",))
            job = j.claim_for(svc, translator, rid, content.source_language,
                              decision.target_language)
            self.assertEqual(job.document_id, form.id)
            j.translate(svc, translator, job)
            first = j.wait(reached(ROUTED), 20, f"{instrument} forwarded after translation")
        statuses.append(first)
        return rid, decision, statuses

    def walk(self, content) -> None:
        pb = rc.stubs()
        T, DL = pb.types, pb.deadlines
        svc = self.svc
        instrument = T.Instrument.Name(content.instrument)
        path, rules_met = PATHS[instrument]
        issuer_ref = content.issuing_authority
        issuer = rc.Caller(issuer_ref.authority_id, issuer_ref.state, ("issuing",))
        rid, decision, statuses = self.submit_and_forward(issuer, content)

        request = j.get(svc, issuer, rid)
        executor_ref = request.executing_authority
        self.assertEqual(executor_ref.authority_id, decision.competent_authority.authority_id)
        executor = rc.Caller(executor_ref.authority_id, executor_ref.state, ("executing",))

        for step in path:
            if step == "ACKNOWLEDGE":
                svc.intake(executor).AcknowledgeRequest(pb.intake.AcknowledgeRequestRequest(
                    request_id=j.key(), id=rid), timeout=10)
                statuses.append("ACKNOWLEDGED")
                continue
            target = getattr(T, "REQUEST_STATUS_" + step)
            # A transition may wait for the deadline its event must meet to be running:
            # deadline-tracking learns of triggers through events.
            moved = j.transition(svc, executor, rid, target, reason=step)
            self.assertEqual(status_name(moved.status), step)
            statuses.append(step)

        # History: each status change is its own entry, in order.
        events = j.history(svc, issuer, rid)
        self.assertEqual([status_name(e.status) for e in events if e.status], statuses)
        ids = [e.event_id for e in events]
        self.assertEqual(len(set(ids)), len(ids), "an event stands twice in the history")

        # Deadlines: bound to the executing party, counted in its zone, none left running,
        # and the path's rules met.
        def settled():
            found = j.deadlines_of(svc, executor, rid)
            met = {d.rule_id for d in found if d.state == DL.DEADLINE_STATE_MET}
            running = [d for d in found if d.state == DL.DEADLINE_STATE_RUNNING]
            return found if rules_met <= met and not running else None
        try:
            deadlines = j.wait(settled, 20, f"{instrument}'s deadlines settled")
        except TimeoutError:
            found = j.deadlines_of(svc, executor, rid)
            self.fail("deadlines: " + repr(sorted(
                (d.rule_id, DL.DeadlineState.Name(d.state)) for d in found)))
        for d in deadlines:
            self.assertEqual(d.executing_authority_id, executor_ref.authority_id, d.rule_id)
            if d.rule.unit == DL.PERIOD_UNIT_DAYS:
                self.assertNotEqual(d.time_zone, "UTC", f"{d.rule_id} counted in UTC")
                self.assertTrue(d.time_zone, f"{d.rule_id} has no time zone")

        # Every party is told of every deadline that ran against the request.
        started = len(deadlines)
        for party in (issuer, executor):
            def told_all(party=party):
                ns = j.inbox(svc, party, rid)
                n = sum(1 for x in ns if x.event.type == pb.events.EVENT_TYPE_DEADLINE_STARTED)
                return ns if n >= started else None
            try:
                notes = j.wait(told_all, 20, f"{party.authority_id} told of {started} starts")
            except TimeoutError:
                got = collections.Counter(pb.events.EventType.Name(x.event.type)
                                          for x in j.inbox(svc, party, rid))
                self.fail(f"{party.authority_id} was told {dict(got)}, "
                          f"{started} deadlines started")
            starts = [x for x in notes if x.event.type == pb.events.EVENT_TYPE_DEADLINE_STARTED]
            self.assertEqual(len({x.event.event_id for x in starts}), started,
                             f"{party.authority_id} told of a start twice")


if __name__ == "__main__":
    sys.exit(base.run_tests("rogatory-samples-e2e-", __doc__.splitlines()[0]))
