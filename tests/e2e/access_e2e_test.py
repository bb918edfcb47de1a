#!/usr/bin/python3
"""End-to-end need-to-know tests: every role against every RPC of routing, deadlines, notification.

Issue 8, point 3 ("Tests cover every role against every RPC"); the policy is
common/include/rogatory/common/access.h. Intake's side is tests/access/intake_access_test.cc.

Starts a private redis-server and the four real services (as workflow_e2e_test.py does),
submits one French EIO to Germany (routed to DE-PROSECUTOR), waits until routing,
deadline-tracking and notification know it, lets a translator claim its translation job,
and then calls every RPC of rogatory.routing.v1.TranslationRoutingService,
rogatory.deadlines.v1.DeadlineService and rogatory.notification.v1.NotificationService as
each of eight callers, asserting the status code the policy gives:

  issuer     the French judge who issued the request            reaches it (read, change)
  stranger   an Italian issuing authority                         out of reach: NOT_FOUND
  central    Germany's central authority (requested state)        reaches it (read, change)
  executing  DE-PROSECUTOR, the competent authority routing chose reaches it (read, change)
  holder     the translator holding the request's job             only that job
  xl_other   a translator not holding it                          nothing: NOT_FOUND
  auditor    reads everything, changes nothing                    PERMISSION_DENIED on changes
  operator   admin RPCs only, reads no request                    PERMISSION_DENIED for requests

Which role may call which RPC at all is the role table (common/include/rogatory/common/
rpc_roles.h, issue 16 item 6): a role the table refuses gets PERMISSION_DENIED whatever the
call names (so translators and operators asking for a request are refused outright, which
says nothing about the request); within what the table allows, need-to-know answers
NOT_FOUND outside the caller's reach.

Codes in the tables: OK, EMPTY (OK and an empty list), NF (NOT_FOUND), PD
(PERMISSION_DENIED), FP (FAILED_PRECONDITION). Where the running services disagree with the
policy the row says so in a FINDING comment and expects what they do, so the test passes and
the disagreement stays visible.

    /usr/bin/python3 tests/e2e/access_e2e_test.py --bin-dir <build>/bin [unittest args]
"""

from __future__ import annotations

import pathlib
import sys
import tempfile
import time
import unittest
import uuid

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import intake_e2e_test as base  # noqa: E402  (fixtures: processes, Redis, run_tests)

rc = base.rc
grpc = base.grpc
sys.path.insert(0, str(base.REPO_ROOT / "tools" / "rogatoryctl"))
import journeys as j  # noqa: E402

ROLES = ("issuer", "stranger", "central", "executing", "holder", "xl_other", "auditor",
         "operator")
CALLERS = {
    "issuer": j.JUDGE,
    "stranger": rc.Caller("IT-PROCURA-ROMA", "IT", ("issuing",)),
    "central": rc.Caller("DE-BFJ-CENTRAL", "DE", ("central",)),
    "executing": j.DE_PROSECUTOR,
    "holder": j.TRANSLATOR,
    "xl_other": rc.Caller("XL-FR-DE-SWORN-2", "FR", ("translator",)),
    "auditor": rc.Caller("AUDIT-EDPS-1", "FR", ("auditor",)),
    "operator": j.OPERATOR,
}
#: A Rogatory service (role service), for the RPCs that are theirs alone.
SERVICE = rc.Caller("rogatory-intake", "", ("service",))
SHORT = {"OK": grpc.StatusCode.OK, "NF": grpc.StatusCode.NOT_FOUND,
         "PD": grpc.StatusCode.PERMISSION_DENIED, "FP": grpc.StatusCode.FAILED_PRECONDITION}
NAMES = {code: short for short, code in SHORT.items()}


def row(issuer, stranger, central, executing, holder, xl_other, auditor, operator):
    return dict(zip(ROLES, (issuer, stranger, central, executing, holder, xl_other, auditor,
                            operator)))


def everyone(code):
    return dict.fromkeys(ROLES, code)


#: What a caller reaches of the request: read it (GetRoutingDecision, GetDeadline, ...).
#: Translators and operators read no request (the role table: PD whatever the id).
READ_REQUEST = row("OK", "NF", "OK", "OK", "PD", "PD", "OK", "PD")
#: List the request's jobs: the request's parties, the auditor, and the translator holding
#: it (operators may list the claimable queue, so the table lets them call; they reach no
#: request's jobs).
LIST_JOBS = row("OK", "NF", "OK", "OK", "OK", "NF", "OK", "NF")
#: Read the job: the same, but operators are refused by the role table.
READ_JOB = row("OK", "NF", "OK", "OK", "OK", "NF", "OK", "PD")
#: Work on a job: translators only (a role check, PERMISSION_DENIED for everyone else; it
#: says nothing about the job); a translator not holding the job is out of its reach.
WORK_ON_JOB_OTHER_TRANSLATOR = "NF"


def key() -> str:
    return str(uuid.uuid4())


class AccessMatrixTest(unittest.TestCase):
    """Redis and the four services; one EIO; the matrix."""

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
            if name == "notification":
                service.process.argv += ["--notification-poll-interval=20ms",
                                         "--webhook-allow-private-addresses=true",
                                         "--webhook-allowed-ports=9"]
            cls.addClassCleanup(service.stop)
            service.start(wait=False)
            cls.services[name] = service
        for service in cls.services.values():
            service.wait_ready()
        cls.svc = j.Services(*(cls.services[n].addr
                               for n in ("intake", "routing", "deadlines", "notification")))
        cls.addClassCleanup(cls.svc.close)
        cls.prepare()

    @classmethod
    def prepare(cls) -> None:
        """The French EIO, known to every service, with its job claimed."""
        pb = rc.stubs()
        svc, judge = cls.svc, j.JUDGE
        cls.rid = j.submit(svc, judge, j.eio_content()).id
        j.wait_status(svc, judge, cls.rid, pb.types.REQUEST_STATUS_TRANSLATION_PENDING)
        # Routing decided (the registry's competent authority for a German EIO) ...
        cls.decision = j.wait(lambda: svc.routing(judge).GetRoutingDecision(
            pb.routing.GetRoutingDecisionRequest(request_id=cls.rid), timeout=10).decision,
            20, "the routing decision")
        assert cls.decision.competent_authority.authority_id == "DE-PROSECUTOR", cls.decision
        # ... deadline-tracking knows the request and a running deadline on it (the
        # acknowledgment week itself starts only once the competent authority received the
        # request, Directive 2014/41 Art 16(1): here the judge starts one by hand) ...
        start = pb.deadlines.StartDeadlineRequest(
            request_id=key(), target_request_id=cls.rid, rule_id="EIO_ACKNOWLEDGE")
        cls.ack = j.wait(lambda: svc.deadlines(judge).StartDeadline(start, timeout=10).deadline,
                         20, "a running deadline on the request")
        j.wait(lambda: j.deadlines_of(svc, j.DE_PROSECUTOR, cls.rid), 20,
               "deadlines readable by the executing authority")
        # ... the translator claims the job of the French form ...
        j.upload(svc, judge, cls.rid, j.FORM_FR, "fr", title="Annexe A")
        cls.job = j.claim_for(svc, j.TRANSLATOR, cls.rid, "fr", "de")
        j.wait(lambda: j.jobs_of(svc, j.TRANSLATOR, cls.rid), 20, "the job readable by its holder")
        # ... and notification has told the parties (the claim included).
        for caller, event in ((judge, "TRANSLATION_JOB_CLAIMED"),
                              (j.DE_PROSECUTOR, "ROUTING_DECIDED"),
                              (j.TRANSLATOR, "TRANSLATION_JOB_CLAIMED")):
            j.wait(lambda: [n for n in j.inbox(svc, caller, cls.rid, quiet_s=0.2)
                            if pb.events.EventType.Name(n.event.type).endswith(event)],
                   20, f"{caller.authority_id} told {event}")
        # Two deadlines for the change rows whose outcome does not depend on their state:
        # one cancelled (cancelling again: OK; extend/suspend/resume: FAILED_PRECONDITION),
        # one met (completing again: OK).
        dl = pb.deadlines
        cls.cancelled = svc.deadlines(judge).StartDeadline(dl.StartDeadlineRequest(
            request_id=key(), target_request_id=cls.rid, rule_id="EIO_RECOGNITION"),
            timeout=10).deadline
        # The executing side cancels and meets its time limits (issue 16, item 6).
        svc.deadlines(j.DE_PROSECUTOR).CancelDeadline(dl.CancelDeadlineRequest(
            request_id=key(), deadline_id=cls.cancelled.id, reason_code="TEST"), timeout=10)
        cls.met = svc.deadlines(judge).StartDeadline(dl.StartDeadlineRequest(
            request_id=key(), target_request_id=cls.rid, rule_id="EIO_EXECUTION"),
            timeout=10).deadline
        j.complete_deadline(svc, j.DE_PROSECUTOR, cls.met.id, "TEST")
        # The issuer's webhook subscription (nothing listens there; it is never delivered to
        # within the test's time).
        cls.issuer_sub = cls.create_subscription(judge).subscription

    @classmethod
    def create_subscription(cls, caller):
        pb = rc.stubs()
        return cls.svc.notification(caller).CreateSubscription(
            pb.notification.CreateSubscriptionRequest(
                request_id=key(), endpoint_uri="http://127.0.0.1:9/rogatory-hook"),
            timeout=10)

    # ---- helpers ------------------------------------------------------------------------

    def outcome(self, call) -> str:
        """Runs call(); "OK", "EMPTY" (when it returns an empty list) or the short code."""
        try:
            result = call()
        except grpc.RpcError as error:
            return NAMES.get(error.code(), error.code().name)
        if isinstance(result, list) and not result:
            return "EMPTY"
        return "OK"

    def check_matrix(self, service: str, rpcs: dict) -> None:
        """rpcs: name -> (expected row, call(caller) -> result). Every cell is run; a mismatch
        fails with the whole observed table."""
        mismatches, observed = [], {}
        for name, (expected, call) in rpcs.items():
            self.assertEqual(set(expected), set(ROLES), name)
            got = {role: self.outcome(lambda: call(CALLERS[role])) for role in ROLES}
            observed[name] = got
            for role in ROLES:
                if got[role] != expected[role]:
                    mismatches.append(f"{name} as {role}: expected {expected[role]}, "
                                      f"got {got[role]}")
        table = "\n".join(f"  {name:36} " + " ".join(f"{observed[name][r]:5}" for r in ROLES)
                          for name in observed)
        header = f"  {service:36} " + " ".join(f"{r[:5]:5}" for r in ROLES)
        type(self).cells = getattr(type(self), "cells", 0) + len(rpcs) * len(ROLES)
        print("\n" + header + "\n" + table, file=sys.stderr)
        self.assertEqual(mismatches, [], "\n" + header + "\n" + table)

    # ---- routing ------------------------------------------------------------------------

    def test_routing_every_role_every_rpc(self):
        pb = rc.stubs()
        r = pb.routing
        svc, rid, job = self.svc, self.rid, self.job
        facts = r.RoutingFacts(instrument=pb.types.INSTRUMENT_EIO, issuing_state="FR",
                               requested_state="DE", source_language="fr")
        stale = job.lease_token + 1000  # the holder's lease token is never this
        token = lambda caller: stale if caller == j.TRANSLATOR else job.lease_token  # noqa: E731
        sha = "0" * 64
        self.check_matrix("routing", {
            "GetRoutingDecision": (READ_REQUEST, lambda c: svc.routing(c).GetRoutingDecision(
                r.GetRoutingDecisionRequest(request_id=rid), timeout=10)),
            # The declarations registry is public law: open to every authenticated caller.
            "PreviewRouting": (everyone("OK"), lambda c: svc.routing(c).PreviewRouting(
                r.PreviewRoutingRequest(facts=facts), timeout=10)),
            "GetDeclaration": (everyone("OK"), lambda c: svc.routing(c).GetDeclaration(
                r.GetDeclarationRequest(state="DE", instrument=pb.types.INSTRUMENT_EIO),
                timeout=10)),
            "ListDeclarations": (everyone("OK"), lambda c: list(svc.routing(c).ListDeclarations(
                r.ListDeclarationsRequest(), timeout=10).declarations)),
            # The holder sees its job (EMPTY would mean it saw none).
            "ListTranslationJobs": (LIST_JOBS, lambda c: list(svc.routing(c).ListTranslationJobs(
                r.ListTranslationJobsRequest(request_id=rid), timeout=10).jobs)),
            "GetTranslationJob": (READ_JOB, lambda c: svc.routing(c).GetTranslationJob(
                r.GetTranslationJobRequest(job_id=job.id), timeout=10)),
            # Translators only (PD for every other role); no job is queued for fi>et, so a
            # translator gets the NOT_FOUND of an empty queue.
            "ClaimTranslationJob": (
                row("PD", "PD", "PD", "PD", "NF", "NF", "PD", "PD"),
                lambda c: svc.routing(c).ClaimTranslationJob(r.ClaimTranslationJobRequest(
                    request_id=key(), source_languages=["fi"], target_languages=["et"]),
                    timeout=10)),
            # The holder renews its lease (OK); another translator is out of the job's reach.
            "HeartbeatTranslationJob": (
                # Another translator gets NOT_FOUND, as for a missing job (no leak).
                row("PD", "PD", "PD", "PD", "OK", "NF", "PD", "PD"),
                lambda c: svc.routing(c).HeartbeatTranslationJob(
                    r.HeartbeatTranslationJobRequest(job_id=job.id, lease_token=job.lease_token),
                    timeout=10)),
            # The holder with a stale lease token gets FAILED_PRECONDITION (so the job stays
            # claimed); every other caller presents the holder's real token.
            "CompleteTranslationJob": (
                row("PD", "PD", "PD", "PD", "FP", "NF", "PD", "PD"),
                lambda c: svc.routing(c).CompleteTranslationJob(r.CompleteTranslationJobRequest(
                    request_id=key(), job_id=job.id, lease_token=token(c),
                    translated_document_id=job.document_id, translated_document_sha256=sha),
                    timeout=10)),
            "FailTranslationJob": (
                row("PD", "PD", "PD", "PD", "FP", "NF", "PD", "PD"),
                lambda c: svc.routing(c).FailTranslationJob(r.FailTranslationJobRequest(
                    request_id=key(), job_id=job.id, lease_token=token(c),
                    failure_code="TEST", retryable=True), timeout=10)),
        })
        # The job is still claimed by its holder after all that.
        self.assertEqual(svc.routing(j.TRANSLATOR).GetTranslationJob(
            r.GetTranslationJobRequest(job_id=job.id), timeout=10).job.status,
            r.TRANSLATION_JOB_STATUS_CLAIMED)

    # ---- deadlines ----------------------------------------------------------------------

    def test_deadlines_every_role_every_rpc(self):
        pb = rc.stubs()
        d = pb.deadlines
        svc, rid = self.svc, self.rid
        ack, cancelled, met = self.ack.id, self.cancelled.id, self.met.id
        # The role table (issue 16, item 6): either side of the request starts a deadline;
        # the executing side (the competent authority, the requested state's central
        # authority) extends, meets and cancels its time limits, the issuing side may not
        # (PD); operators suspend and resume (with a reason), nobody else; translators, the
        # auditor and operators change nothing else (PD whatever the id); a stranger is
        # out of reach (NF). Allowed changes answer OK, or FAILED_PRECONDITION from the
        # deadline's state.
        either = lambda allowed: row(allowed, "NF", allowed, allowed, "PD", "PD", "PD",  # noqa
                                     "PD")
        executing = lambda allowed: row("PD", "NF", allowed, allowed, "PD", "PD", "PD",  # noqa
                                        "PD")
        operators = lambda allowed: dict(everyone("PD"), operator=allowed)  # noqa: E731
        self.check_matrix("deadlines", {
            "StartDeadline": (either("OK"), lambda c: svc.deadlines(c).StartDeadline(
                d.StartDeadlineRequest(request_id=key(), target_request_id=rid,
                                       rule_id="EIO_RECOGNITION"), timeout=10)),
            "ExtendDeadline": (executing("FP"), lambda c: svc.deadlines(c).ExtendDeadline(
                d.ExtendDeadlineRequest(request_id=key(), deadline_id=cancelled,
                                        by={"seconds": 86400}, reason_code="TEST"),
                timeout=10)),
            "SuspendDeadline": (operators("FP"), lambda c: svc.deadlines(c).SuspendDeadline(
                d.SuspendDeadlineRequest(request_id=key(), deadline_id=cancelled,
                                         reason_code="TEST"), timeout=10)),
            "ResumeDeadline": (operators("FP"), lambda c: svc.deadlines(c).ResumeDeadline(
                d.ResumeDeadlineRequest(request_id=key(), deadline_id=cancelled,
                                        reason_code="TEST"), timeout=10)),
            "CompleteDeadline": (executing("OK"), lambda c: svc.deadlines(c).CompleteDeadline(
                d.CompleteDeadlineRequest(request_id=key(), deadline_id=met,
                                          reason_code="TEST"), timeout=10)),
            "CancelDeadline": (executing("OK"), lambda c: svc.deadlines(c).CancelDeadline(
                d.CancelDeadlineRequest(request_id=key(), deadline_id=cancelled,
                                        reason_code="TEST"), timeout=10)),
            "GetDeadline": (READ_REQUEST, lambda c: svc.deadlines(c).GetDeadline(
                d.GetDeadlineRequest(deadline_id=ack), timeout=10)),
            # Listing is for authorities (their scope), auditors and services: translators
            # and operators list nothing (PD, access.h ListScopeOf); a stranger's list of
            # the request is empty.
            # The auditor's list is every reachable deadline (scope all).
            "ListDeadlines": (row("OK", "EMPTY", "OK", "OK", "PD", "PD", "OK", "PD"),
                              lambda c: list(svc.deadlines(c).ListDeadlines(
                                  d.ListDeadlinesRequest(target_request_id=rid),
                                  timeout=10).deadlines)),
            # The rules are law: open to every authenticated caller.
            "GetDeadlineRules": (everyone("OK"), lambda c: list(svc.deadlines(c).GetDeadlineRules(
                d.GetDeadlineRulesRequest(), timeout=10).rules)),
        })
        states = {x.id: x.state for x in j.deadlines_of(svc, j.JUDGE, rid)}
        self.assertEqual((states[ack], states[cancelled], states[met]),
                         (d.DEADLINE_STATE_RUNNING, d.DEADLINE_STATE_CANCELLED,
                          d.DEADLINE_STATE_MET))

    def test_auditor_lists_deadlines(self):
        # Regression: an unscoped list (auditor, service) used to self-deadlock
        # rogatory-deadlines (ListState::Scope called Finish with the lock held).
        pb = rc.stubs()
        found = self.svc.deadlines(CALLERS["auditor"]).ListDeadlines(
            pb.deadlines.ListDeadlinesRequest(target_request_id=self.rid), timeout=10).deadlines
        self.assertIn(self.ack.id, [x.id for x in found])

    # ---- notification -------------------------------------------------------------------

    def test_notification_every_role_every_rpc(self):
        pb = rc.stubs()
        n = pb.notification
        svc, rid = self.svc, self.rid
        issuer_sub = self.issuer_sub.id

        def event():
            ev = pb.events.Event(
                event_id=uuid.uuid4().hex, sequence=1, source="intake",
                request_id=f"rq-1-01j0000000000000000000{uuid.uuid4().hex[:4]}",
                type=pb.events.EVENT_TYPE_REQUEST_RECOGNISED,
                instrument=pb.types.INSTRUMENT_EIO, trace_id=uuid.uuid4().hex)
            ev.request.issuing_authority.authority_id = "FR-TJ-NOWHERE"
            ev.request.issuing_authority.state = "FR"
            ev.request.requested_state = "DE"
            ev.occur_time.GetCurrentTime()
            return ev

        def subscribe(c):
            """The caller's own inbox from the oldest entry: OK when the stream is accepted
            (a first message, or the stream still open when the short deadline passes)."""
            stream = svc.notification(c).Subscribe(n.SubscribeRequest(
                start_position=n.START_POSITION_OLDEST), timeout=1.0)
            try:
                next(iter(stream))
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise
            except StopIteration:
                pass
            finally:
                stream.cancel()

        def own_subscription_then(c, what):
            sub = self.create_subscription(c).subscription.id
            if what == "rotate":
                return svc.notification(c).RotateSubscriptionSecret(
                    n.RotateSubscriptionSecretRequest(subscription_id=sub), timeout=10)
            return svc.notification(c).DeleteSubscription(
                n.DeleteSubscriptionRequest(subscription_id=sub), timeout=10)

        subscriptions_of = lambda c: list(svc.notification(c).ListSubscriptions(  # noqa: E731
            n.ListSubscriptionsRequest(), timeout=10).subscriptions)
        others = row("OK", "NF", "NF", "NF", "NF", "NF", "NF", "NF")
        self.check_matrix("notification", {
            # Rogatory services only (issue 16, item 5): an operator's forged event could
            # rewrite notification's record of a request's parties. A service publishes in
            # test_only_services_publish_events.
            "PublishEvent": (everyone("PD"),
                             lambda c: svc.notification(c).PublishEvent(
                                 n.PublishEventRequest(event=event()), timeout=10)),
            # Everyone has an inbox of its own (subscriptions are limited to it).
            "Subscribe(own inbox)": (everyone("OK"), subscribe),
            "Ack(own inbox)": (everyone("OK"), lambda c: svc.notification(c).Ack(
                n.AckRequest(cursor="1-0"), timeout=10)),
            "CreateSubscription": (everyone("OK"), self.create_subscription),
            # Every caller lists its own (created in the row above): never empty.
            "ListSubscriptions": (everyone("OK"), subscriptions_of),
            "RotateSubscriptionSecret(own)": (everyone("OK"),
                                              lambda c: own_subscription_then(c, "rotate")),
            "RotateSubscriptionSecret(issuer's)": (others, lambda c: svc.notification(c)
                                                   .RotateSubscriptionSecret(
                n.RotateSubscriptionSecretRequest(subscription_id=issuer_sub), timeout=10)),
            "DeleteSubscription(own)": (everyone("OK"),
                                        lambda c: own_subscription_then(c, "delete")),
            # The issuer's row runs first: its subscription must outlive the others' tries,
            # so this deletes a copy made for the purpose.
            "DeleteSubscription(issuer's)": (
                others, lambda c: svc.notification(c).DeleteSubscription(
                    n.DeleteSubscriptionRequest(subscription_id=(
                        self.create_subscription(c).subscription.id if c == j.JUDGE
                        else issuer_sub)), timeout=10)),
            # Delivery evidence: the request's parties and auditors see every delivery of it;
            # the translator holding the job only its own; others nothing; operators read no
            # evidence (the role table: PD).
            "GetDeliveryStatus": (
                row("OK", "NF", "NF", "OK", "OK", "NF", "OK", "PD"),
                lambda c: svc.notification(c).GetDeliveryStatus(
                    n.GetDeliveryStatusRequest(request_id=rid), timeout=10)),
            # Operators: every dead letter; others: their own subscriptions' (none here).
            "ListDeadLetters": (everyone("OK"), lambda c: svc.notification(c).ListDeadLetters(
                n.ListDeadLettersRequest(), timeout=10)),
            # No such dead letter: NF for everyone (nobody is refused outright).
            "RedriveDeadLetter": (everyone("NF"), lambda c: svc.notification(c).RedriveDeadLetter(
                n.RedriveDeadLetterRequest(dead_letter_id=f"{issuer_sub}/1-0"), timeout=10)),
        })
        # The issuer's subscription survived everyone else's attempts.
        self.assertIn(issuer_sub, [s.id for s in subscriptions_of(j.JUDGE)])
        # Each caller's inbox holds only what concerns it: the request's parties and the
        # holder were told about it, nobody else was.
        told = {role: bool(j.inbox(svc, CALLERS[role], rid, quiet_s=0.2)) for role in ROLES}
        self.assertEqual(told, row(True, False, False, True, True, False, False, False))

    def test_translator_sees_only_the_evidence_of_its_own_deliveries(self):
        pb = rc.stubs()
        request = pb.notification.GetDeliveryStatusRequest(request_id=self.rid)
        translator = CALLERS["holder"]
        own = self.svc.notification(translator).GetDeliveryStatus(request, timeout=10).evidences
        self.assertTrue(own)
        self.assertEqual({e.recipient.authority_id for e in own}, {translator.authority_id})
        # The request's parties see every delivery of it (proof that the others were told).
        everyone = self.svc.notification(CALLERS["issuer"]).GetDeliveryStatus(
            request, timeout=10).evidences
        self.assertIn(translator.authority_id, {e.recipient.authority_id for e in everyone})
        self.assertGreaterEqual(len({e.recipient.authority_id for e in everyone}), 3)

    # ---- admin and service-only RPCs (issue 16, items 1 and 5) ----------------------------

    def test_only_operators_move_the_test_clock_on_every_service(self):
        """TestClockService is served by all four services (common/): each refuses a move
        from every role but operator with PERMISSION_DENIED, before it looks at anything
        else. The clock is disabled here, so the operator's move (and a service's) gets as far
        as FAILED_PRECONDITION and nothing moves."""
        pb = rc.stubs()
        tc = pb.test_clock
        callers = dict(CALLERS, service=SERVICE)
        expected = dict(everyone("PD"), operator="FP", service="FP")
        observed, mismatches = {}, []
        for service in ("intake", "routing", "deadlines", "notification"):
            for name, call in {
                    "AdvanceTime": lambda stub: stub.AdvanceTime(
                        tc.AdvanceTimeRequest(by={"seconds": 400 * 86400}), timeout=10),
                    "SetTime": lambda stub: stub.SetTime(
                        tc.SetTimeRequest(now={"seconds": 4102444800}), timeout=10)}.items():
                for role, caller in callers.items():
                    stub = pb.test_clock_grpc.TestClockServiceStub(
                        self.svc.channel(service, caller))
                    got = self.outcome(lambda: call(stub))
                    observed[(service, name, role)] = got
                    if got != expected[role]:
                        mismatches.append(f"{service} {name} as {role}: expected "
                                          f"{expected[role]}, got {got}")
        type(self).cells = getattr(type(self), "cells", 0) + len(observed)
        self.assertEqual(mismatches, [])

    def test_only_services_publish_events(self):
        """The operator lost event injection (the matrix: PD for every role); a Rogatory
        service still publishes."""
        pb = rc.stubs()
        ev = pb.events.Event(
            event_id=uuid.uuid4().hex, sequence=1, source="intake",
            request_id=f"rq-1-01j0000000000000000000{uuid.uuid4().hex[:4]}",
            type=pb.events.EVENT_TYPE_REQUEST_RECOGNISED,
            instrument=pb.types.INSTRUMENT_EIO, trace_id=uuid.uuid4().hex)
        ev.request.issuing_authority.authority_id = "FR-TJ-NOWHERE"
        ev.request.issuing_authority.state = "FR"
        ev.request.requested_state = "DE"
        ev.occur_time.GetCurrentTime()
        published = self.svc.notification(SERVICE).PublishEvent(
            pb.notification.PublishEventRequest(event=ev), timeout=10)
        self.assertTrue(published.accepted)

    def test_translator_asking_for_another_translators_job_gets_the_missing_job_answer(self):
        """Issue 16, item 15: a translator not holding the job learns nothing from the answer,
        whatever lease token it sends: the very code and message of a job that does not
        exist."""
        pb = rc.stubs()
        r = pb.routing
        svc, job, other = self.svc, self.job, CALLERS["xl_other"]
        missing = job.id[:-1] + ("0" if job.id[-1] != "0" else "1")
        sha = "0" * 64
        calls = {
            "HeartbeatTranslationJob": lambda job_id, token: svc.routing(other)
            .HeartbeatTranslationJob(r.HeartbeatTranslationJobRequest(
                job_id=job_id, lease_token=token), timeout=10),
            "CompleteTranslationJob": lambda job_id, token: svc.routing(other)
            .CompleteTranslationJob(r.CompleteTranslationJobRequest(
                request_id=key(), job_id=job_id, lease_token=token,
                translated_document_id=job.document_id, translated_document_sha256=sha),
                timeout=10),
            "FailTranslationJob": lambda job_id, token: svc.routing(other).FailTranslationJob(
                r.FailTranslationJobRequest(request_id=key(), job_id=job_id, lease_token=token,
                                            failure_code="TEST", retryable=True), timeout=10),
        }

        def answer(call):
            with self.assertRaises(grpc.RpcError) as raised:
                call()
            return raised.exception.code(), raised.exception.details()

        for name, call in calls.items():
            absent = answer(lambda: call(missing, 1))
            self.assertEqual(absent[0], grpc.StatusCode.NOT_FOUND, name)
            for token in (job.lease_token, job.lease_token + 1, job.lease_token + 1000, 1):
                with self.subTest(rpc=name, token=token):
                    self.assertEqual(answer(lambda: call(job.id, token)), absent)
        # The holder still holds it.
        self.assertEqual(svc.routing(j.TRANSLATOR).GetTranslationJob(
            r.GetTranslationJobRequest(job_id=job.id), timeout=10).job.status,
            r.TRANSLATION_JOB_STATUS_CLAIMED)

    # ---- the explicit need-to-know statements -------------------------------------------

    def test_authority_reading_another_authoritys_request_gets_not_found(self):
        pb = rc.stubs()
        svc, rid, stranger = self.svc, self.rid, CALLERS["stranger"]
        missing = rid[:-6] + ("000000" if not rid.endswith("000000") else "111111")
        for name, call in {
                "GetRoutingDecision": lambda x: svc.routing(stranger).GetRoutingDecision(
                    pb.routing.GetRoutingDecisionRequest(request_id=x), timeout=10),
                "ListTranslationJobs": lambda x: svc.routing(stranger).ListTranslationJobs(
                    pb.routing.ListTranslationJobsRequest(request_id=x), timeout=10)}.items():
            with self.subTest(rpc=name):
                errors = []
                for request_id in (rid, missing):
                    with self.assertRaises(grpc.RpcError) as raised:
                        call(request_id)
                    errors.append((raised.exception.code(), raised.exception.details()))
                # The very answer a missing request gets: existence does not leak.
                self.assertEqual(errors[0], errors[1])
                self.assertEqual(errors[0][0], grpc.StatusCode.NOT_FOUND)
        with self.assertRaises(grpc.RpcError) as raised:
            svc.deadlines(stranger).GetDeadline(
                pb.deadlines.GetDeadlineRequest(deadline_id=self.ack.id), timeout=10)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.NOT_FOUND)
        self.assertEqual(j.deadlines_of(svc, stranger, rid), [])
        everything = svc.deadlines(stranger).ListDeadlines(
            pb.deadlines.ListDeadlinesRequest(), timeout=10).deadlines
        self.assertEqual([x.id for x in everything if x.request_id == rid], [])
        # ... while the issuer sees them.
        self.assertIn(self.ack.id, [x.id for x in j.deadlines_of(svc, j.JUDGE, rid)])

    def test_calls_without_a_token_are_unauthenticated(self):
        pb = rc.stubs()
        calls = {
            "routing": lambda ch: pb.routing_grpc.TranslationRoutingServiceStub(ch)
            .ListDeclarations(pb.routing.ListDeclarationsRequest(), timeout=10),
            "deadlines": lambda ch: pb.deadlines_grpc.DeadlineServiceStub(ch)
            .GetDeadlineRules(pb.deadlines.GetDeadlineRulesRequest(), timeout=10),
            "notification": lambda ch: pb.notification_grpc.NotificationServiceStub(ch)
            .ListSubscriptions(pb.notification.ListSubscriptionsRequest(), timeout=10),
        }
        for service, call in calls.items():
            with self.subTest(service=service):
                with grpc.insecure_channel(self.services[service].addr) as channel:
                    with self.assertRaises(grpc.RpcError) as raised:
                        call(channel)
                self.assertEqual(raised.exception.code(), grpc.StatusCode.UNAUTHENTICATED)


def main() -> int:
    started = time.monotonic()
    code = base.run_tests("rogatory-access-e2e-", __doc__.splitlines()[0])
    print(f"matrix cells: {getattr(AccessMatrixTest, 'cells', 0)}; "
          f"{time.monotonic() - started:.1f}s", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
