#!/usr/bin/python3
"""End-to-end tests of the whole workflow over the four real services (issue 9).

Starts a private redis-server and rogatory-intake, -routing, -deadlines and -notification
(with the shared test clock), and drives them ONLY through their gRPC APIs, each party as
itself: the issuing French authority, the German executing authority that routing decides,
a translator, an operator for the test clock. Journeys:

- an EIO from a French judge to Germany, in French: translated, forwarded, acknowledged,
  recognised, executed, closed; three deadlines started and met;
- an urgent EAW that runs out of time on the shared test clock and escalates;
- an incomplete request supplemented; a refusal with grounds; a withdrawal that cancels the
  pending translation job and the deadlines; a request that cannot be routed; every sample
  request file accepted;
- resilience: deadline-tracking and notification stopped in the middle of a journey and
  started again: the journey completes with nothing lost and nothing duplicated;
- rogatoryctl drives the first journey's steps; every command's --help exits 0 and
  --output json parses.

Each journey asserts the final status and history, the deadlines, the translation jobs and
the notifications each authority received (and that nobody else received any).

    /usr/bin/python3 tests/e2e/workflow_e2e_test.py --bin-dir <build>/bin [unittest args]
"""

from __future__ import annotations

import collections
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import unittest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import intake_e2e_test as base  # noqa: E402  (fixtures: processes, Redis, run_tests)

rc = base.rc
grpc = base.grpc
sys.path.insert(0, str(base.REPO_ROOT / "tools" / "rogatoryctl"))
import journeys as j  # noqa: E402

ROGATORYCTL = base.REPO_ROOT / "tools" / "rogatoryctl" / "rogatoryctl"
SAMPLES = base.REPO_ROOT / "samples" / "requests"
#: An authority that takes part in none of the journeys' requests.
BYSTANDER = rc.Caller("DE-BY-GSTA-MUENCHEN", "DE", ("executing",))


def names(events) -> list[str]:
    """Sorted short event type names of events (a multiset, as a sorted list)."""
    ev = rc.stubs().events
    return sorted(ev.EventType.Name(e.type)[len("EVENT_TYPE_"):] for e in events)


def told(notifications) -> list[str]:
    """Like names(), for notifications; a re-announcement is marked "/re"."""
    ev = rc.stubs().events
    return sorted(ev.EventType.Name(n.event.type)[len("EVENT_TYPE_"):]
                  + ("/re" if n.reannouncement else "") for n in notifications)


def counted(*items: str) -> list[str]:
    """Expands "NAME*3" into three NAMEs; returns a sorted list."""
    out = []
    for item in items:
        name, _, times = item.partition("*")
        out.extend([name] * int(times or 1))
    return sorted(out)


class WorkflowTestCase(unittest.TestCase):
    """Redis and the four services (test clock on) for the whole class."""

    #: Extra command-line settings per service, for subclasses.
    SERVICE_ARGS: dict[str, tuple[str, ...]] = {}

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
        cls.services = {}
        for name in base.SERVICE_NAMES:
            service = base.ServiceProcess(name, cls.redis, cls.workdir, grpc_ports)
            service.process.argv.append("--test-clock=true")
            if name == "notification":
                service.process.argv.append("--notification-poll-interval=20ms")
            service.process.argv.extend(cls.SERVICE_ARGS.get(name, ()))
            cls.addClassCleanup(service.stop)
            service.start(wait=False)
            cls.services[name] = service
        for service in cls.services.values():
            service.wait_ready()
        cls.svc = j.Services(*(cls.services[n].addr
                               for n in ("intake", "routing", "deadlines", "notification")))
        cls.addClassCleanup(cls.svc.close)

    # ---- assertions -------------------------------------------------------------------

    def assertHistory(self, request_id: str, caller: rc.Caller, expected: list[str],
                      statuses: list[str]) -> list:
        """The history holds exactly ``expected`` event types (any order: services report
        concurrently) and its status changes are ``statuses`` in this order."""
        types = rc.stubs().types

        def settled():
            events = j.history(self.svc, caller, request_id)
            return events if names(events) == expected else None
        try:
            events = j.wait(settled, 20, "the expected history")
        except TimeoutError:
            self.assertEqual(names(j.history(self.svc, caller, request_id)), expected)
            raise
        self.assertEqual([types.RequestStatus.Name(e.status)[len("REQUEST_STATUS_"):]
                          for e in events if e.status], statuses)
        self.assertEqual(len({e.event_id for e in events}), len(events), "duplicate events")
        return events

    def assertDeadlines(self, request_id: str, caller: rc.Caller,
                        expected: dict[str, str]) -> list:
        """The request's deadlines are exactly ``expected`` (rule id -> state)."""
        dl = rc.stubs().deadlines

        def state():
            return {d.rule_id: dl.DeadlineState.Name(d.state)[len("DEADLINE_STATE_"):]
                    for d in j.deadlines_of(self.svc, caller, request_id)}
        try:
            j.wait(lambda: state() == expected, 20, f"deadlines {expected}")
        except TimeoutError:
            self.assertEqual(state(), expected)
        found = j.deadlines_of(self.svc, caller, request_id)
        self.assertEqual(len(found), len(expected), "a deadline was started twice")
        return found

    def assertInbox(self, caller: rc.Caller, request_id: str, expected: list[str],
                    optional: tuple[str, ...] = ()) -> list:
        """``caller``'s inbox holds, for this request, every event type of ``expected`` as
        often as listed, at most the ``optional`` ones besides (events from before the
        authority became a party, which race with the routing decision), nothing else, and
        no event twice."""
        def check(notifications):
            got = collections.Counter(told(notifications))
            need = collections.Counter(expected)
            extra = got - need
            return not (need - got) and not (extra - collections.Counter(optional))
        try:
            notifications = j.wait(
                lambda: (lambda ns: ns if check(ns) else None)(
                    j.inbox(self.svc, caller, request_id)),
                20, f"{caller.authority_id}'s inbox")
        except TimeoutError:
            self.assertEqual(told(j.inbox(self.svc, caller, request_id)),
                             expected, f"{caller.authority_id}'s inbox")
            raise
        ids = [n.event.event_id for n in notifications]
        self.assertEqual(len(set(ids)), len(ids), f"{caller.authority_id} was told twice")
        for n in notifications:
            self.assertEqual(n.recipient.authority_id, caller.authority_id)
        return notifications

    def assertForwardingInHistory(self, request_id: str) -> None:
        """After the translation: REQUEST_RECEIVED_BY_COMPETENT_AUTHORITY (the trigger of the
        recognition limit) is in the history as the move to FORWARDED, after
        TRANSLATION_JOB_COMPLETED, which carries no status change itself."""
        types, ev = rc.stubs().types, rc.stubs().events

        def found():
            events = j.history(self.svc, j.JUDGE, request_id)
            kinds = [e.type for e in events]
            return events if ev.EVENT_TYPE_REQUEST_RECEIVED_BY_COMPETENT_AUTHORITY in kinds \
                else None
        events = j.wait(found, 20, "the forwarding in the history")
        kinds = [e.type for e in events]
        completed = kinds.index(ev.EVENT_TYPE_TRANSLATION_JOB_COMPLETED)
        received = kinds.index(ev.EVENT_TYPE_REQUEST_RECEIVED_BY_COMPETENT_AUTHORITY)
        self.assertEqual(received, completed + 1)
        self.assertEqual(events[completed].status, types.REQUEST_STATUS_UNSPECIFIED)
        self.assertEqual(events[received].status, types.REQUEST_STATUS_FORWARDED)
        self.assertEqual(events[received].previous_status,
                         types.REQUEST_STATUS_TRANSLATION_PENDING)
        self.assertEqual(events[received].request.executing_authority.authority_id,
                         "DE-PROSECUTOR")

    def assertNothingFor(self, caller: rc.Caller, request_id: str) -> None:
        self.assertEqual(told(j.inbox(self.svc, caller, request_id)), [],
                         f"{caller.authority_id} was told about {request_id}")


# The EIO journey, step by step; the resilience test runs it with outages in the middle.

#: Every status change is an entry of its own under the name deadlines and notifications use
#: (issue 22 item 8): routing's decision and the translation's completion are followed by
#: intake's REQUEST_TRANSLATION_PENDING and REQUEST_RECEIVED_BY_COMPETENT_AUTHORITY.
EIO_HISTORY = counted(
    "REQUEST_SUBMITTED", "ROUTING_DECIDED", "REQUEST_TRANSLATION_PENDING", "DOCUMENT_ADDED*2",
    "TRANSLATION_JOB_QUEUED", "TRANSLATION_JOB_CLAIMED", "TRANSLATION_JOB_COMPLETED",
    "REQUEST_RECEIVED_BY_COMPETENT_AUTHORITY", "REQUEST_ACKNOWLEDGED", "DEADLINE_STARTED*3",
    "DEADLINE_MET*3", "REQUEST_RECOGNISED", "REQUEST_EXECUTION_STARTED", "REQUEST_EXECUTED",
    "REQUEST_CLOSED")
EIO_STATUSES = ["RECEIVED", "TRANSLATION_PENDING", "FORWARDED", "ACKNOWLEDGED", "RECOGNISED",
                "IN_EXECUTION", "EXECUTED", "CLOSED"]
EIO_JUDGE_INBOX = counted(
    "REQUEST_SUBMITTED", "ROUTING_DECIDED", "REQUEST_TRANSLATION_PENDING", "DOCUMENT_ADDED*2",
    "TRANSLATION_JOB_QUEUED", "TRANSLATION_JOB_CLAIMED", "TRANSLATION_JOB_COMPLETED",
    "REQUEST_RECEIVED_BY_COMPETENT_AUTHORITY", "REQUEST_ACKNOWLEDGED", "DEADLINE_STARTED*3",
    "DEADLINE_MET*3", "REQUEST_RECOGNISED", "REQUEST_EXECUTION_STARTED", "REQUEST_EXECUTED",
    "REQUEST_CLOSED")
def minus(expected: list[str], optional) -> list[str]:
    """``expected`` without one of each of ``optional`` (a multiset difference)."""
    return sorted((collections.Counter(expected) - collections.Counter(optional)).elements())


#: Nothing the issuer is told is optional: deadline-tracking's events carry the triggering
#: event's RequestFacts, so a DEADLINE_STARTED reaching notification before the submission
#: still finds the issuer.
ISSUER_OPTIONAL: tuple[str, ...] = ()

#: What the executing authority may or may not have been told, depending on whether the
#: routing decision reached notification first: submission and the French form's upload.
#: Not the deadlines running against it: an authority joining a request receives those
#: (issue 22 item 4), so all three DEADLINE_STARTED are required.
EIO_EXECUTOR_OPTIONAL = ("REQUEST_SUBMITTED", "DOCUMENT_ADDED")
EIO_EXECUTOR_INBOX = sorted((collections.Counter(EIO_JUDGE_INBOX)
                             - collections.Counter(EIO_EXECUTOR_OPTIONAL)).elements())


def run_eio_journey(test: WorkflowTestCase, after_submit=None, after_translation=None):
    """The first journey; returns (request id, translation job, translated document)."""
    pb = rc.stubs()
    T, DL = pb.types, pb.deadlines
    svc = test.svc
    submitted = j.submit(svc, j.JUDGE, j.eio_content())
    test.assertEqual(submitted.status, T.REQUEST_STATUS_RECEIVED)
    rid = submitted.id
    if after_submit:
        after_submit()
    # Routing decides: Germany accepts German only, so a translation is needed.
    pending = j.wait_status(svc, j.JUDGE, rid, T.REQUEST_STATUS_TRANSLATION_PENDING)
    test.assertEqual(pending.executing_authority.authority_id, "DE-PROSECUTOR")
    form = j.upload(svc, j.JUDGE, rid, j.FORM_FR, "fr", title="Annexe A")
    job = j.claim(svc, j.TRANSLATOR, "fr", "de")
    test.assertEqual((job.request_id, job.document_id), (rid, form.id))
    translation, done = j.translate(svc, j.TRANSLATOR, job)
    test.assertEqual(done.status, pb.routing.TRANSLATION_JOB_STATUS_COMPLETED)
    forwarded = j.wait_status(svc, j.DE_PROSECUTOR, rid, T.REQUEST_STATUS_FORWARDED)
    test.assertEqual(forwarded.executing_authority.authority_id, "DE-PROSECUTOR")
    if after_translation:
        after_translation()
    # After a translation, the history names the forwarding as the event the limits are
    # counted from (issue 22 item 8), right after the translation's completion.
    test.assertForwardingInHistory(rid)
    # The German authority acknowledges receipt (Annex B) within the week: one operation
    # that moves the status and meets the EIO_ACKNOWLEDGE limit (issue 22 item 5).
    j.wait_deadline(svc, j.DE_PROSECUTOR, rid, "EIO_ACKNOWLEDGE", DL.DEADLINE_STATE_RUNNING)
    with test.assertRaises(grpc.RpcError) as refused:
        j.acknowledge(svc, j.JUDGE, rid)  # the issuer does not acknowledge its own order
    test.assertEqual(refused.exception.code(), grpc.StatusCode.PERMISSION_DENIED)
    acknowledged = j.acknowledge(svc, j.DE_PROSECUTOR, rid)
    test.assertEqual(acknowledged.status, T.REQUEST_STATUS_ACKNOWLEDGED)
    j.wait_deadline(svc, j.DE_PROSECUTOR, rid, "EIO_ACKNOWLEDGE", DL.DEADLINE_STATE_MET)
    j.wait_deadline(svc, j.DE_PROSECUTOR, rid, "EIO_RECOGNITION", DL.DEADLINE_STATE_RUNNING)
    j.transition(svc, j.DE_PROSECUTOR, rid, T.REQUEST_STATUS_RECOGNISED, "RECOGNISED")
    j.wait_deadline(svc, j.DE_PROSECUTOR, rid, "EIO_EXECUTION", DL.DEADLINE_STATE_RUNNING)
    j.transition(svc, j.DE_PROSECUTOR, rid, T.REQUEST_STATUS_IN_EXECUTION)
    j.transition(svc, j.DE_PROSECUTOR, rid, T.REQUEST_STATUS_EXECUTED, "EVIDENCE_SENT")
    j.wait_deadline(svc, j.DE_PROSECUTOR, rid, "EIO_EXECUTION", DL.DEADLINE_STATE_MET)
    closed = j.transition(svc, j.DE_PROSECUTOR, rid, T.REQUEST_STATUS_CLOSED)
    test.assertEqual(closed.status, T.REQUEST_STATUS_CLOSED)
    return rid, job, translation


def assert_eio_journey(test: WorkflowTestCase, rid: str, job, translation) -> None:
    pb = rc.stubs()
    test.assertHistory(rid, j.JUDGE, EIO_HISTORY, EIO_STATUSES)
    test.assertEqual(j.get(test.svc, j.JUDGE, rid).status, pb.types.REQUEST_STATUS_CLOSED)
    test.assertDeadlines(rid, j.DE_PROSECUTOR, {"EIO_ACKNOWLEDGE": "MET",
                                                "EIO_RECOGNITION": "MET",
                                                "EIO_EXECUTION": "MET"})
    jobs = j.jobs_of(test.svc, j.JUDGE, rid)
    test.assertEqual([(x.id, x.status, x.translated_document_id) for x in jobs],
                     [(job.id, pb.routing.TRANSLATION_JOB_STATUS_COMPLETED, translation.id)])
    test.assertInbox(j.JUDGE, rid, minus(EIO_JUDGE_INBOX, ISSUER_OPTIONAL), ISSUER_OPTIONAL)
    test.assertInbox(j.DE_PROSECUTOR, rid, EIO_EXECUTOR_INBOX, EIO_EXECUTOR_OPTIONAL)
    test.assertInbox(j.TRANSLATOR, rid, counted("TRANSLATION_JOB_CLAIMED",
                                                "TRANSLATION_JOB_COMPLETED"))
    for bystander in (BYSTANDER, j.DE_EAW_COURT, j.EAW_JUDGE):
        test.assertNothingFor(bystander, rid)


class EioJourneyTest(WorkflowTestCase):
    """Journey 1: the French judge's EIO to Germany, end to end."""

    def test_eio_is_translated_forwarded_recognised_and_executed_with_deadlines_met(self):
        rid, job, translation = run_eio_journey(self)
        assert_eio_journey(self, rid, job, translation)
        # The delivery evidence names each party's deliveries.
        pb = rc.stubs()
        evidence = self.svc.notification(j.JUDGE).GetDeliveryStatus(
            pb.notification.GetDeliveryStatusRequest(request_id=rid), timeout=10).evidences
        recipients = {e.recipient.authority_id for e in evidence}
        self.assertEqual(recipients, {"FR-TJ-PARIS-JI", "DE-PROSECUTOR", "XL-FR-DE-SWORN-1"})


class EawEscalationTest(WorkflowTestCase):
    """Journey 2: an urgent EAW runs out of time on the shared test clock and escalates."""

    def test_urgent_eaw_decision_deadline_is_missed_and_escalated(self):
        pb = rc.stubs()
        T, DL = pb.types, pb.deadlines
        svc = self.svc
        rid = j.submit(svc, j.EAW_JUDGE, j.eaw_content()).id
        j.wait_status(svc, j.EAW_JUDGE, rid, T.REQUEST_STATUS_TRANSLATION_PENDING)
        j.upload(svc, j.EAW_JUDGE, rid, j.FORM_FR, "fr", title="Mandat d'arret europeen")
        job = j.claim(svc, j.TRANSLATOR, "fr", "de")
        self.assertEqual(job.request_id, rid)
        j.translate(svc, j.TRANSLATOR, job)
        forwarded = j.wait_status(svc, j.DE_EAW_COURT, rid, T.REQUEST_STATUS_FORWARDED)
        self.assertEqual(forwarded.executing_authority.authority_id, "DE-EAW-COURT")
        j.transition(svc, j.DE_EAW_COURT, rid, T.REQUEST_STATUS_ARRESTED, "ARRESTED")
        deadline = j.wait_deadline(svc, j.DE_EAW_COURT, rid, "EAW_DECISION_NO_CONSENT",
                                   DL.DEADLINE_STATE_RUNNING)
        # The request carries its next due deadline, from deadline-tracking's events (issue
        # 20): the decision's, not at risk yet.
        j.wait(lambda: j.get(svc, j.EAW_JUDGE, rid).next_deadline.deadline_id == deadline.id,
               20, "next_deadline from DEADLINE_STARTED")
        nxt = j.get(svc, j.EAW_JUDGE, rid).next_deadline
        self.assertEqual(nxt.rule_id, "EAW_DECISION_NO_CONSENT")
        self.assertEqual(nxt.due_time.seconds, deadline.due_time.seconds)
        self.assertFalse(nxt.at_risk)
        self.assertEqual(len(nxt.tracked), 0)  # intake's bookkeeping is not returned
        # Everyone reads (acknowledges) what they were told so far, so nothing is
        # re-announced when the clock jumps.
        before = {}
        for party in (j.EAW_JUDGE, j.DE_EAW_COURT, j.TRANSLATOR):
            before[party] = j.inbox(svc, party, rid)
            if before[party]:
                svc.notification(party).Ack(pb.notification.AckRequest(
                    cursor=before[party][-1].cursor), timeout=10)
        self.assertIn("PERSON_ARRESTED", names(n.event for n in before[j.EAW_JUDGE]))
        self.assertEqual(names(n.event for n in before[j.TRANSLATOR]),
                         counted("TRANSLATION_JOB_CLAIMED", "TRANSLATION_JOB_COMPLETED"))

        # 60 days on (the deadline ends at midnight in Germany) no decision has been
        # taken: missed (level 1) ...
        now = svc.clock().GetTime(pb.test_clock.GetTimeRequest(), timeout=10).now
        self.assertGreater(deadline.due_time.seconds - now.seconds, 59 * j.DAY_S)
        j.advance_clock(svc, deadline.due_time.seconds - now.seconds + 60)
        overdue = j.wait_deadline(svc, j.DE_EAW_COURT, rid, "EAW_DECISION_NO_CONSENT",
                                  DL.DEADLINE_STATE_OVERDUE)
        self.assertEqual(overdue.id, deadline.id)
        # Missed: still the next deadline (the duty to decide remains), at risk and missed.
        j.wait(lambda: j.get(svc, j.EAW_JUDGE, rid).next_deadline.missed, 20,
               "next_deadline from DEADLINE_MISSED")
        self.assertTrue(j.get(svc, j.EAW_JUDGE, rid).next_deadline.at_risk)
        missed = {}
        for party in (j.EAW_JUDGE, j.DE_EAW_COURT):
            missed[party] = self.assertInbox(party, rid, ["DEADLINE_MISSED"])
            svc.notification(party).Ack(pb.notification.AckRequest(
                cursor=missed[party][-1].cursor), timeout=10)
        # ... and a day on, escalated (level 2).
        j.advance_clock(svc, j.DAY_S)
        j.wait(lambda: [d for d in j.deadlines_of(svc, j.DE_EAW_COURT, rid)
                        if d.escalation_level >= 2], 20, "escalation level 2")
        for party in (j.EAW_JUDGE, j.DE_EAW_COURT):
            self.assertInbox(party, rid, counted("DEADLINE_MISSED", "DEADLINE_ESCALATED"))
        # The translator is told nothing new (what it was told before may have aged out).
        earlier = {n.event.event_id for n in before[j.TRANSLATOR]}
        self.assertEqual([told([n]) for n in j.inbox(svc, j.TRANSLATOR, rid)
                          if n.event.event_id not in earlier or n.reannouncement], [])
        for bystander in (BYSTANDER, j.DE_PROSECUTOR, j.JUDGE):
            self.assertNothingFor(bystander, rid)

        self.assertHistory(rid, j.EAW_JUDGE, counted(
            "REQUEST_SUBMITTED", "ROUTING_DECIDED", "REQUEST_TRANSLATION_PENDING",
            "DOCUMENT_ADDED*2", "TRANSLATION_JOB_QUEUED", "TRANSLATION_JOB_CLAIMED",
            "TRANSLATION_JOB_COMPLETED", "REQUEST_RECEIVED_BY_COMPETENT_AUTHORITY",
            "PERSON_ARRESTED", "DEADLINE_STARTED", "DEADLINE_MISSED", "DEADLINE_ESCALATED"),
            ["RECEIVED", "TRANSLATION_PENDING", "FORWARDED", "ARRESTED"])
        # A missed deadline does not end the duty to decide (Lanigan, C-237/15).
        self.assertEqual(j.get(svc, j.EAW_JUDGE, rid).status, T.REQUEST_STATUS_ARRESTED)
        found = self.assertDeadlines(rid, j.DE_EAW_COURT,
                                     {"EAW_DECISION_NO_CONSENT": "OVERDUE"})
        self.assertEqual(found[0].escalation_level, 2)


class OtherJourneysTest(WorkflowTestCase):
    """Incomplete then supplemented, refused, withdrawn, unroutable; the sample files."""

    def german_eio(self):
        content = j.eio_content()
        content.source_language = "de"  # Germany's language: no translation needed
        return content

    def test_incomplete_request_is_supplemented_and_then_forwarded(self):
        pb = rc.stubs()
        T = pb.types
        content = self.german_eio()
        del content.measures[:]
        submitted = j.submit(self.svc, j.JUDGE, content)
        self.assertEqual(submitted.status, T.REQUEST_STATUS_INCOMPLETE)
        self.assertEqual([m.field for m in submitted.missing_elements], ["content.measures"])
        # Routing's first decision finds the request incomplete: recorded, not applied. No
        # EIO limit runs before a competent authority has received it.
        self.assertHistory(submitted.id, j.JUDGE, counted(
            "REQUEST_SUBMITTED", "ROUTING_DECIDED"), ["INCOMPLETE"])
        supplement = pb.intake.SupplementRequestRequest(
            request_id=j.key(), id=submitted.id,
            content=pb.intake.RequestContent(measures=j.eio_content().measures))
        supplement.update_mask.paths.append("measures")
        done = self.svc.intake(j.JUDGE).SupplementRequest(supplement, timeout=10).request
        self.assertEqual(done.status, T.REQUEST_STATUS_RECEIVED)
        j.wait_status(self.svc, j.DE_PROSECUTOR, submitted.id, T.REQUEST_STATUS_FORWARDED)
        self.assertHistory(submitted.id, j.JUDGE, counted(
            "REQUEST_SUBMITTED", "ROUTING_DECIDED*2", "DEADLINE_STARTED*2",
            "REQUEST_SUPPLEMENTED", "REQUEST_RECEIVED_BY_COMPETENT_AUTHORITY"),
            ["INCOMPLETE", "RECEIVED", "FORWARDED"])
        self.assertDeadlines(submitted.id, j.DE_PROSECUTOR,
                             {"EIO_ACKNOWLEDGE": "RUNNING", "EIO_RECOGNITION": "RUNNING"})
        self.assertEqual(j.jobs_of(self.svc, j.JUDGE, submitted.id), [])
        told = counted("REQUEST_SUBMITTED", "ROUTING_DECIDED*2", "DEADLINE_STARTED*2",
                       "REQUEST_SUPPLEMENTED", "REQUEST_RECEIVED_BY_COMPETENT_AUTHORITY")
        self.assertInbox(j.JUDGE, submitted.id, minus(told, ISSUER_OPTIONAL), ISSUER_OPTIONAL)
        # The deadlines running when the executing authority joined reach it too.
        self.assertInbox(j.DE_PROSECUTOR, submitted.id,
                         minus(told, ["REQUEST_SUBMITTED"]), ("REQUEST_SUBMITTED",))
        self.assertNothingFor(BYSTANDER, submitted.id)

    def test_refusal_records_its_grounds_and_settles_the_deadlines(self):
        pb = rc.stubs()
        T = pb.types
        rid = j.submit(self.svc, j.JUDGE, self.german_eio()).id
        j.wait_status(self.svc, j.DE_PROSECUTOR, rid, T.REQUEST_STATUS_FORWARDED)
        j.wait_deadline(self.svc, j.DE_PROSECUTOR, rid, "EIO_RECOGNITION",
                        pb.deadlines.DEADLINE_STATE_RUNNING)
        refused = j.transition(self.svc, j.DE_PROSECUTOR, rid, T.REQUEST_STATUS_REFUSED,
                               "ART_11_1_G", [T.REFUSAL_GROUND_DUAL_CRIMINALITY],
                               note="Not an offence under German law (made-up).")
        self.assertEqual(refused.status, T.REQUEST_STATUS_REFUSED)
        events = self.assertHistory(rid, j.JUDGE, counted(
            "REQUEST_SUBMITTED", "ROUTING_DECIDED", "REQUEST_RECEIVED_BY_COMPETENT_AUTHORITY",
            "DEADLINE_STARTED*2", "REQUEST_REFUSED", "DEADLINE_CANCELLED", "DEADLINE_MET"),
            ["RECEIVED", "FORWARDED", "REFUSED"])
        refusal = [e for e in events if e.type == pb.events.EVENT_TYPE_REQUEST_REFUSED][0]
        self.assertEqual(list(refusal.status_change.refusal_grounds),
                         [T.REFUSAL_GROUND_DUAL_CRIMINALITY])
        self.assertEqual(refusal.reason_code, "ART_11_1_G")
        self.assertEqual(refusal.actor.authority.authority_id, "DE-PROSECUTOR")
        self.assertDeadlines(rid, j.DE_PROSECUTOR, {"EIO_ACKNOWLEDGE": "CANCELLED",
                                                    "EIO_RECOGNITION": "MET"})
        told = counted("REQUEST_SUBMITTED", "ROUTING_DECIDED", "DEADLINE_STARTED*2",
                       "REQUEST_RECEIVED_BY_COMPETENT_AUTHORITY", "REQUEST_REFUSED",
                       "DEADLINE_CANCELLED", "DEADLINE_MET")
        notifications = self.assertInbox(j.JUDGE, rid, minus(told, ISSUER_OPTIONAL),
                                         ISSUER_OPTIONAL)
        told_refusal = [n.event for n in notifications
                        if n.event.type == pb.events.EVENT_TYPE_REQUEST_REFUSED][0]
        self.assertEqual(list(told_refusal.status_change.refusal_grounds),
                         [T.REFUSAL_GROUND_DUAL_CRIMINALITY])
        self.assertInbox(j.DE_PROSECUTOR, rid, minus(told, ["REQUEST_SUBMITTED"]),
                         ("REQUEST_SUBMITTED",))
        self.assertNothingFor(BYSTANDER, rid)

    def test_withdrawal_cancels_the_pending_translation_job_and_the_deadlines(self):
        pb = rc.stubs()
        T = pb.types
        rid = j.submit(self.svc, j.JUDGE, j.eio_content()).id
        j.wait_status(self.svc, j.JUDGE, rid, T.REQUEST_STATUS_TRANSLATION_PENDING)
        j.upload(self.svc, j.JUDGE, rid, j.FORM_FR, "fr")
        queued = j.wait(lambda: j.jobs_of(self.svc, j.JUDGE, rid), 20, "a queued job")
        self.assertEqual(queued[0].status, pb.routing.TRANSLATION_JOB_STATUS_QUEUED)
        withdrawn = j.withdraw(self.svc, j.JUDGE, rid, "NO_LONGER_NEEDED")
        self.assertEqual(withdrawn.status, T.REQUEST_STATUS_WITHDRAWN)
        # Never forwarded, so never received by the competent authority: no EIO limit ran
        # (the acknowledgment week counts from that reception, Directive 2014/41 Art 16(1)).
        self.assertHistory(rid, j.JUDGE, counted(
            "REQUEST_SUBMITTED", "ROUTING_DECIDED", "REQUEST_TRANSLATION_PENDING",
            "DOCUMENT_ADDED", "TRANSLATION_JOB_QUEUED", "REQUEST_WITHDRAWN",
            "TRANSLATION_JOB_CANCELLED"),
            ["RECEIVED", "TRANSLATION_PENDING", "WITHDRAWN"])
        self.assertDeadlines(rid, j.JUDGE, {})
        j.wait(lambda: [x.status for x in j.jobs_of(self.svc, j.JUDGE, rid)]
               == [pb.routing.TRANSLATION_JOB_STATUS_CANCELLED], 20, "the job cancelled")
        told = counted("REQUEST_SUBMITTED", "ROUTING_DECIDED", "REQUEST_TRANSLATION_PENDING",
                       "DOCUMENT_ADDED", "TRANSLATION_JOB_QUEUED", "REQUEST_WITHDRAWN",
                       "TRANSLATION_JOB_CANCELLED")
        self.assertInbox(j.JUDGE, rid, minus(told, ISSUER_OPTIONAL), ISSUER_OPTIONAL)
        self.assertInbox(j.DE_PROSECUTOR, rid, sorted((collections.Counter(told) - collections.
                         Counter(EIO_EXECUTOR_OPTIONAL)).elements()), EIO_EXECUTOR_OPTIONAL)
        # Nobody can claim the cancelled job.
        pbr = pb.routing
        with self.assertRaises(grpc.RpcError) as raised:
            self.svc.routing(j.TRANSLATOR).ClaimTranslationJob(pbr.ClaimTranslationJobRequest(
                request_id=j.key(), source_languages=["fr"], target_languages=["de"]),
                timeout=10)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.NOT_FOUND)
        self.assertNothingFor(j.TRANSLATOR, rid)
        self.assertNothingFor(BYSTANDER, rid)

    def test_request_to_a_state_that_does_not_apply_the_eio_is_unroutable(self):
        pb = rc.stubs()
        content = j.eio_content()
        content.requested_state = "DK"  # Denmark does not apply Directive 2014/41/EU
        rid = j.submit(self.svc, j.JUDGE, content).id
        events = self.assertHistory(rid, j.JUDGE, counted(
            "REQUEST_SUBMITTED", "ROUTING_DECIDED"), ["RECEIVED"])
        decided = [e for e in events if e.type == pb.events.EVENT_TYPE_ROUTING_DECIDED][0]
        self.assertEqual(decided.reason_code, "UNROUTABLE_INSTRUMENT_NOT_APPLIED")
        decision = self.svc.routing(j.JUDGE).GetRoutingDecision(
            pb.routing.GetRoutingDecisionRequest(request_id=rid), timeout=10).decision
        self.assertTrue(decision.unroutable)
        self.assertFalse(decision.competent_authority.authority_id)
        request = j.get(self.svc, j.JUDGE, rid)
        self.assertEqual(request.status, pb.types.REQUEST_STATUS_RECEIVED)
        self.assertFalse(request.executing_authority.authority_id)
        # No competent authority received it: no EIO limit runs (Art 16(1), 12(3)).
        self.assertDeadlines(rid, j.JUDGE, {})
        self.assertEqual(j.jobs_of(self.svc, j.JUDGE, rid), [])
        self.assertInbox(j.JUDGE, rid, counted("REQUEST_SUBMITTED", "ROUTING_DECIDED"),
                         ISSUER_OPTIONAL)
        self.assertNothingFor(BYSTANDER, rid)

    def test_every_sample_request_file_is_accepted(self):
        import yaml
        from google.protobuf import json_format
        pb = rc.stubs()
        files = sorted(SAMPLES.glob("*.json")) + sorted(SAMPLES.glob("*.yaml"))
        instruments = set()
        for path in files:
            with self.subTest(sample=path.name):
                data = (yaml.safe_load(path.read_text()) if path.suffix == ".yaml"
                        else json.loads(path.read_text()))
                content = json_format.ParseDict(data, pb.intake.RequestContent())
                issuer = content.issuing_authority
                caller = rc.Caller(issuer.authority_id, issuer.state, ("issuing",))
                request = j.submit(self.svc, caller, content)
                self.assertEqual(request.status, pb.types.REQUEST_STATUS_RECEIVED,
                                 [m.field for m in request.missing_elements])
                instruments.add(content.instrument)
        self.assertEqual(instruments, set(pb.types.Instrument.values()) - {0},
                         "a sample for every instrument")


class ResilienceTest(WorkflowTestCase):
    """Downstream services stopped mid-journey: nothing lost, nothing duplicated."""

    def test_journey_completes_after_deadlines_and_notification_come_back(self):
        deadlines = self.services["deadlines"]
        notification = self.services["notification"]

        def stop_downstream():
            deadlines.stop()  # SIGTERM: drains
            notification.process.popen.kill()  # SIGKILL: no goodbye
            notification.process.popen.wait()

        def start_downstream():
            deadlines.start()
            notification.start()

        rid, job, translation = run_eio_journey(self, after_submit=stop_downstream,
                                                after_translation=start_downstream)
        assert_eio_journey(self, rid, job, translation)


class Ctl:
    """Runs rogatoryctl (a checkout's, or ``CTL_ARGV``) against the class's services."""

    CTL_ARGV: tuple[str, ...] = (sys.executable, str(ROGATORYCTL))

    def ctl(self, caller, *args, expect: int = 0, output_json: bool = True,
            parse: bool = True):
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROGATORY_")}
        env.update({
            "ROGATORY_INTAKE_ADDR": self.services["intake"].addr,
            "ROGATORY_ROUTING_ADDR": self.services["routing"].addr,
            "ROGATORY_DEADLINES_ADDR": self.services["deadlines"].addr,
            "ROGATORY_NOTIFICATION_ADDR": self.services["notification"].addr,
        })
        env.update(getattr(self, "ctl_env", {}))
        argv = list(self.CTL_ARGV)
        if caller is not None:
            argv += ["--as", caller.authority_id, "--state", caller.state,
                     "--roles", ",".join(caller.roles)]
        if output_json:
            argv += ["--output", "json"]
        result = subprocess.run(argv + list(args), capture_output=True, text=True, env=env,
                                timeout=60, check=False)
        self.assertEqual(result.returncode, expect,
                         f"rogatoryctl {' '.join(args)}: {result.stderr}")
        if expect == 0 and output_json and parse and result.stdout.strip():
            return json.loads(result.stdout)
        return result

    def ctl_until(self, caller, *args, what: str):
        def probe():
            try:
                return self.ctl(caller, *args)
            except AssertionError:
                return None
        return j.wait(probe, 20, what)


class RogatoryctlTest(Ctl, WorkflowTestCase):
    """rogatoryctl drives the first journey's steps against the real services."""

    def test_help_of_every_command_exits_zero(self):
        commands = [[], ["request"], ["request", "submit"], ["request", "get"],
                    ["request", "list"], ["request", "history"], ["request", "transition"],
                    ["request", "acknowledge"], ["request", "supplement"], ["request", "withdraw"], ["document"],
                    ["document", "upload"], ["document", "download"], ["document", "list"],
                    ["jobs"], ["jobs", "list"], ["jobs", "claim"], ["jobs", "complete"],
                    ["deadlines"], ["deadlines", "list"], ["notifications"],
                    ["notifications", "watch"], ["notifications", "evidence"], ["health"],
                    ["clock"], ["clock", "get"], ["clock", "advance"], ["token"],
                    ["token", "mint"]]
        for command in commands:
            with self.subTest(command=" ".join(command)):
                result = self.ctl(None, *command, "--help", output_json=False)
                self.assertIn("usage: rogatoryctl", result.stdout)
                self.assertIn("exit codes:", result.stdout)
        result = self.ctl(None, "request", "frobnicate", expect=2, output_json=False)
        self.assertIn("invalid choice", result.stderr)

    def test_first_journey_by_hand(self):
        workdir = pathlib.Path(tempfile.mkdtemp(dir=self.workdir))
        judge, de, translator = j.JUDGE, j.DE_PROSECUTOR, j.TRANSLATOR
        health = self.ctl(None, "health")
        self.assertEqual({s["readiness"] for s in health["services"]}, {"SERVING"})

        request = self.ctl(judge, "request", "submit", str(SAMPLES / "eio-fr-de.yaml"))
        rid = request["id"]
        self.assertEqual(request["status"], "REQUEST_STATUS_RECEIVED")
        self.ctl_until(judge, "request", "list", "--requested-state", "DE", "--status",
                       "translation_pending", what="listed as translation pending")
        form = workdir / "annexe-a.pdf"
        form.write_bytes(j.FORM_FR)
        document = self.ctl(judge, "document", "upload", rid, str(form), "--language", "fr")
        job = self.ctl_until(translator, "jobs", "claim", "--from", "fr", "--to", "de",
                             what="a job to claim")
        self.assertEqual((job["requestId"], job["documentId"]), (rid, document["id"]))
        source = workdir / "source.pdf"
        self.ctl_until(translator, "document", "download", rid, document["id"], "--out",
                       str(source), what="the source readable by its translator")
        self.assertEqual(source.read_bytes(), j.FORM_FR)
        german = workdir / "anlage-a.pdf"
        german.write_bytes(j.FORM_DE)
        translated = self.ctl(translator, "document", "upload", rid, str(german),
                              "--language", "de", "--kind", "translation",
                              "--translation-of", document["id"])
        done = self.ctl(translator, "jobs", "complete", job["id"], "--lease-token",
                        str(job["leaseToken"]), "--document", translated["id"],
                        "--sha256", translated["sha256"])
        self.assertEqual(done["status"], "TRANSLATION_JOB_STATUS_COMPLETED")

        j.wait(lambda: self.ctl(de, "request", "get", rid)["status"]
               == "REQUEST_STATUS_FORWARDED", 20, "forwarded")
        deadlines = j.wait(
            lambda: (lambda d: d if len(d) == 2 else None)(
                self.ctl(de, "deadlines", "list", "--request", rid).get("deadlines", [])),
            20, "two deadlines")
        self.assertEqual(sorted(d["ruleId"] for d in deadlines),
                         ["EIO_ACKNOWLEDGE", "EIO_RECOGNITION"])
        acknowledged = self.ctl(de, "request", "acknowledge", rid)
        self.assertEqual(acknowledged["status"], "REQUEST_STATUS_ACKNOWLEDGED")
        recognised = self.ctl(de, "request", "transition", rid, "recognised", "--reason",
                              "RECOGNISED")
        self.assertEqual(recognised["status"], "REQUEST_STATUS_RECOGNISED")
        history = self.ctl(judge, "request", "history", rid)
        self.assertIn("EVENT_TYPE_REQUEST_RECOGNISED", [e["type"] for e in history["events"]])
        self.assertEqual(self.ctl(judge, "document", "list", rid)["documents"][1]["id"],
                         translated["id"])

        watched = self.ctl(de, "notifications", "watch", "--from-start", "--request", rid,
                           "--duration", "2", parse=False)
        lines = [json.loads(line) for line in watched.stdout.splitlines() if line.strip()]
        self.assertEqual([line["recipient"]["authorityId"] for line in lines],
                         ["DE-PROSECUTOR"] * len(lines))
        self.assertIn("EVENT_TYPE_REQUEST_RECOGNISED", [x["event"]["type"] for x in lines])
        watched_table = self.ctl(de, "notifications", "watch", "--from-start", "--request",
                                 rid, "--count", "1", "--duration", "5", output_json=False)
        self.assertIn("CURSOR", watched_table.stdout)
        evidence = self.ctl(judge, "notifications", "evidence", "--request", rid)
        self.assertTrue(evidence["evidences"])
        table = self.ctl(judge, "request", "get", rid, output_json=False)
        self.assertIn("RECOGNISED", table.stdout)
        # A development token minted by rogatoryctl works as --token.
        token = self.ctl(None, "token", "mint", "--sub", de.authority_id, "--state", de.state,
                         "--roles", "executing", "--ttl", "10m")["token"]
        self.assertEqual(self.ctl(None, "--token", token, "request", "get", rid)["status"],
                         "REQUEST_STATUS_RECOGNISED")
        self.ctl(None, "--token", token + "x", "request", "get", rid, expect=5,
                 output_json=False)

        # Exit codes scripts rely on.
        missing = rid[:-6] + ("000000" if not rid.endswith("000000") else "111111")
        self.ctl(judge, "request", "get", missing, expect=3, output_json=False)
        self.ctl(judge, "request", "get", "not-an-id", expect=4, output_json=False)
        bad = workdir / "bad.json"
        bad.write_text('{"instrument": "INSTRUMENT_EIO", "requestedState": "germany"}')
        self.ctl(judge, "request", "submit", str(bad), expect=4, output_json=False)
        bad.write_text("{not json")
        self.ctl(judge, "request", "submit", str(bad), expect=4, output_json=False)


def main() -> int:
    return base.run_tests("rogatory-workflow-e2e-", __doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
