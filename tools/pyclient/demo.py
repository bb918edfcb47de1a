#!/usr/bin/python3
"""The story of two requests, told by the real services; run by deploy/local/run.sh.

1. A French investigating judge sends a European Investigation Order to Germany, written
   in French. Routing finds that Germany accepts German only and names the competent
   German authority; a translator claims the job, translates the form and completes it;
   the request reaches the German authority, which acknowledges it (Annex B), recognises
   it and executes it. The deadlines for acknowledgment, recognition and execution start
   and are met. Each authority's notification stream shows what it was told.
2. A French court sends an urgent European Arrest Warrant to Germany. The person is
   arrested, but no decision is taken: the shared test clock is moved on past the 60-day
   limit (Art 17(4) FD 2002/584/JHA); the deadline is missed and, a day later, escalated.

Every party calls as itself (its own development identity or token, through
rogatory_client.Caller). The services must run with --test-clock=true (the local run
does). The demo prints ids, statuses, codes and counts only, never personal data (the
requests' persons are made up anyway). It copes with a database kept from earlier runs.

    /usr/bin/python3 tools/pyclient/demo.py --intake 127.0.0.1:50051 \\
        --routing 127.0.0.1:50052 --deadlines 127.0.0.1:50053 \\
        --notification 127.0.0.1:50054 [--metrics-urls URL,URL,...]

Exits 1 if any step fails.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import traceback
import urllib.request
import uuid
from typing import Callable

import grpc

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "rogatoryctl"))

import rogatory_client as rc  # noqa: E402
import journeys as j  # noqa: E402


class Story:
    """Runs the steps in order, printing each; remembers which failed and stops there."""

    def __init__(self) -> None:
        self.failures: list[str] = []
        self._number = 0

    def step(self, title: str, action: Callable[[], None]) -> bool:
        if self.failures:
            print(f"\n-- skipped: {title}")
            return False
        self._number += 1
        print(f"\n== {self._number}. {title}", flush=True)
        try:
            action()
            return True
        except grpc.RpcError as error:
            self._fail(title, f"{error.code().name}: {error.details()}")
        except Exception as error:  # noqa: BLE001 - report the failure and stop.
            self._fail(title, f"{type(error).__name__}: {error}")
            traceback.print_exc(limit=4)
        return False

    def _fail(self, title: str, reason: str) -> None:
        print(f"   FAILED: {reason}")
        self.failures.append(f"{title}: {reason}")


def check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def name(enum_type, value: int, prefix: str) -> str:
    return enum_type.Name(value)[len(prefix):]


def status(value: int) -> str:
    return name(rc.stubs().types.RequestStatus, value, "REQUEST_STATUS_")


def event_type(value: int) -> str:
    return name(rc.stubs().events.EventType, value, "EVENT_TYPE_")


def who(caller: rc.Caller) -> str:
    return f"{caller.authority_id} ({caller.state}, {','.join(caller.roles)})"


def show_deadlines(svc: j.Services, caller: rc.Caller, request_id: str) -> None:
    dl = rc.stubs().deadlines
    for d in j.deadlines_of(svc, caller, request_id):
        print(f"     deadline {d.rule_id:<26} {name(dl.DeadlineState, d.state, 'DEADLINE_STATE_'):<9}"
              f" due {d.due_time.ToJsonString()}"
              + (f"  escalation level {d.escalation_level}" if d.escalation_level else ""))


def show_inbox(svc: j.Services, caller: rc.Caller, request_id: str, ack: bool = True) -> list:
    """Prints what ``caller``'s notification stream carried about the request; acks it."""
    pb = rc.stubs()
    notifications = j.inbox(svc, caller, request_id)
    print(f"   {who(caller)}: {len(notifications)} notification(s)")
    for n in notifications:
        e = n.event
        detail = status(e.status) if e.status else (e.reason_code or "")
        if e.HasField("deadline"):
            detail = f"{e.deadline.rule_id} {detail}".strip()
        print(f"     {n.accept_time.ToJsonString()}  {event_type(e.type):<42} "
              f"{detail}{'  (re-announced)' if n.reannouncement else ''}")
    if ack and notifications:
        retrieved = svc.notification(caller).Ack(
            pb.notification.AckRequest(cursor=notifications[-1].cursor), timeout=10)
        print(f"     (read: {retrieved.retrieved_count} marked retrieved)")
    return notifications


def main() -> int:
    parser = argparse.ArgumentParser(description="Rogatory demo: two journeys end to end")
    parser.add_argument("--intake", required=True, help="intake gRPC address host:port")
    parser.add_argument("--routing", required=True, help="routing gRPC address")
    parser.add_argument("--deadlines", required=True, help="deadlines gRPC address")
    parser.add_argument("--notification", required=True, help="notification gRPC address")
    parser.add_argument("--metrics-urls", default="",
                        help="comma-separated metrics URLs (http://host:port/metrics)")
    parser.add_argument("--wait", type=float, default=30.0,
                        help="seconds to wait for the services to become SERVING")
    args = parser.parse_args()

    pb = rc.stubs()
    T, DL = pb.types, pb.deadlines
    story = Story()
    svc = j.Services(args.intake, args.routing, args.deadlines, args.notification)
    services = {
        "intake": (args.intake, rc.INTAKE_SERVICE),
        "routing": (args.routing, rc.ROUTING_SERVICE),
        "deadlines": (args.deadlines, rc.DEADLINE_SERVICE),
        "notification": (args.notification, rc.NOTIFICATION_SERVICE),
    }
    eio: dict = {}
    eaw: dict = {}

    def health() -> None:
        problems = []
        for service, (addr, full_name) in services.items():
            try:
                rc.wait_for_health(addr, full_name, "SERVING", timeout=args.wait)
                state = rc.health_check(addr, full_name)
            except (grpc.RpcError, TimeoutError) as error:
                state = getattr(error, "code", lambda: "NOT SERVING")()
                problems.append(f"{service}: {state}")
            print(f"   {service:<13} {addr:<21} {full_name} {state}")
        check(not problems, "; ".join(problems))
        now = svc.clock().GetTime(pb.test_clock.GetTimeRequest(), timeout=10)
        print(f"   shared test clock: {now.now.ToJsonString()} "
              f"({now.offset.seconds // 86400} day(s) ahead of real time)")

    # ---- Journey 1 ------------------------------------------------------------------

    def submit_eio() -> None:
        print(f"   {who(j.JUDGE)}: an EIO to Germany, in French: one (made-up) suspect, "
              "fraud, bank account information (Art 26).")
        request = j.submit(svc, j.JUDGE, j.eio_content())
        eio["id"] = request.id
        print(f"   accepted: {request.id} {status(request.status)}")

    def routed() -> None:
        request = j.wait_status(svc, j.JUDGE, eio["id"], T.REQUEST_STATUS_TRANSLATION_PENDING)
        decision = svc.routing(j.JUDGE).GetRoutingDecision(
            pb.routing.GetRoutingDecisionRequest(request_id=eio["id"]), timeout=10).decision
        print(f"   routing: competent authority {decision.competent_authority.authority_id}, "
              f"translation into '{decision.target_language}' required, channel "
              f"{name(T.Channel, decision.channel, 'CHANNEL_')}")
        for reason in decision.reasons:
            print(f"     because {reason.code}: {reason.detail}")
        print(f"   status now {status(request.status)}")
        form = j.upload(svc, j.JUDGE, eio["id"], j.FORM_FR, "fr", title="Annexe A")
        eio["form"] = form.id
        print(f"   the judge attaches the form (Annex A, fr): {form.id}, "
              f"{form.size_bytes} bytes")

    def translated() -> None:
        job = j.claim_for(svc, j.TRANSLATOR, eio["id"], "fr", "de", on_other=lambda other:
                          print(f"   (first translating {other.id} of an earlier request)"))
        print(f"   {who(j.TRANSLATOR)} claims job {job.id} "
              f"({job.source_language}>{job.target_language}, lease token {job.lease_token})")
        document, done = j.translate(svc, j.TRANSLATOR, job)
        eio["job"] = job.id
        print(f"   uploads the German translation {document.id} and completes the job: "
              f"{name(pb.routing.TranslationJobStatus, done.status, 'TRANSLATION_JOB_STATUS_')}")
        request = j.wait_status(svc, j.DE_PROSECUTOR, eio["id"], T.REQUEST_STATUS_FORWARDED)
        print(f"   the request reaches {request.executing_authority.authority_id}: "
              f"{status(request.status)}")
        show_deadlines(svc, j.DE_PROSECUTOR, eio["id"])

    def acknowledged() -> None:
        j.wait_deadline(svc, j.DE_PROSECUTOR, eio["id"], "EIO_ACKNOWLEDGE",
                        DL.DEADLINE_STATE_RUNNING)
        request = j.acknowledge(svc, j.DE_PROSECUTOR, eio["id"])
        j.wait_deadline(svc, j.DE_PROSECUTOR, eio["id"], "EIO_ACKNOWLEDGE",
                        DL.DEADLINE_STATE_MET)
        print(f"   {who(j.DE_PROSECUTOR)} acknowledges receipt (Annex B, Art 16(1)): "
              f"{status(request.status)}, EIO_ACKNOWLEDGE met")
        j.wait_deadline(svc, j.DE_PROSECUTOR, eio["id"], "EIO_RECOGNITION",
                        DL.DEADLINE_STATE_RUNNING)
        request = j.transition(svc, j.DE_PROSECUTOR, eio["id"], T.REQUEST_STATUS_RECOGNISED,
                               "RECOGNISED")
        print(f"   and recognises the order (Art 9): {status(request.status)}")
        j.wait_deadline(svc, j.DE_PROSECUTOR, eio["id"], "EIO_EXECUTION",
                        DL.DEADLINE_STATE_RUNNING)
        show_deadlines(svc, j.DE_PROSECUTOR, eio["id"])

    def executed() -> None:
        j.transition(svc, j.DE_PROSECUTOR, eio["id"], T.REQUEST_STATUS_IN_EXECUTION)
        request = j.transition(svc, j.DE_PROSECUTOR, eio["id"], T.REQUEST_STATUS_EXECUTED,
                               "EVIDENCE_SENT")
        print(f"   the bank information is gathered and sent: {status(request.status)}")
        j.wait_deadline(svc, j.DE_PROSECUTOR, eio["id"], "EIO_EXECUTION", DL.DEADLINE_STATE_MET)
        request = j.transition(svc, j.DE_PROSECUTOR, eio["id"], T.REQUEST_STATUS_CLOSED)
        print(f"   and the file is closed: {status(request.status)}")
        show_deadlines(svc, j.DE_PROSECUTOR, eio["id"])
        states = {d.rule_id: d.state for d in j.deadlines_of(svc, j.JUDGE, eio["id"])}
        check(states == {"EIO_ACKNOWLEDGE": DL.DEADLINE_STATE_MET,
                         "EIO_RECOGNITION": DL.DEADLINE_STATE_MET,
                         "EIO_EXECUTION": DL.DEADLINE_STATE_MET}, f"deadlines {states}")

    def eio_history() -> None:
        j.wait(lambda: len(j.history(svc, j.JUDGE, eio["id"])) >= 20, 20, "the whole history")
        for e in j.history(svc, j.JUDGE, eio["id"]):
            actor = e.actor.authority.authority_id or e.source
            print(f"     {e.occur_time.ToJsonString()}  {event_type(e.type):<34} "
                  f"{status(e.status) if e.status else '':<20} {actor}")

    def eio_streams() -> None:
        for party in (j.JUDGE, j.DE_PROSECUTOR, j.TRANSLATOR):
            show_inbox(svc, party, eio["id"])
        for party in (j.DE_EAW_COURT,):
            check(not j.inbox(svc, party, eio["id"]), f"{party.authority_id} was told")
            print(f"   {who(party)}: nothing (not a party)")

    story.step("Are the four services up?", health)
    print("\n#### Journey 1: an EIO from Paris to Germany, in French ####")
    story.step("The investigating judge submits the EIO", submit_eio)
    story.step("Routing decides: Germany, German translation needed", routed)
    story.step("A translator claims the job, translates and completes it", translated)
    story.step("The German authority acknowledges and recognises the order", acknowledged)
    story.step("Execution: evidence sent, file closed, every deadline met", executed)
    story.step("The request's history at intake (system of record)", eio_history)
    story.step("What each authority's notification stream told it", eio_streams)

    # ---- Journey 2 ------------------------------------------------------------------

    def submit_eaw() -> None:
        print(f"   {who(j.EAW_JUDGE)}: an URGENT European Arrest Warrant to Germany, "
              "in French.")
        request = j.submit(svc, j.EAW_JUDGE, j.eaw_content())
        eaw["id"] = request.id
        print(f"   accepted: {request.id} {status(request.status)}")
        j.wait_status(svc, j.EAW_JUDGE, eaw["id"], T.REQUEST_STATUS_TRANSLATION_PENDING)
        j.upload(svc, j.EAW_JUDGE, eaw["id"], j.FORM_FR, "fr", title="Mandat d'arret europeen")
        job = j.claim_for(svc, j.TRANSLATOR, eaw["id"], "fr", "de")
        j.translate(svc, j.TRANSLATOR, job)
        request = j.wait_status(svc, j.DE_EAW_COURT, eaw["id"], T.REQUEST_STATUS_FORWARDED)
        print(f"   translated by {j.TRANSLATOR.authority_id}; forwarded to "
              f"{request.executing_authority.authority_id}")

    def arrested() -> None:
        request = j.transition(svc, j.DE_EAW_COURT, eaw["id"], T.REQUEST_STATUS_ARRESTED,
                               "ARRESTED")
        print(f"   {who(j.DE_EAW_COURT)}: the person is arrested: {status(request.status)}; "
              "no consent to surrender")
        eaw["deadline"] = j.wait_deadline(svc, j.DE_EAW_COURT, eaw["id"],
                                          "EAW_DECISION_NO_CONSENT", DL.DEADLINE_STATE_RUNNING)
        show_deadlines(svc, j.DE_EAW_COURT, eaw["id"])
        for party in (j.EAW_JUDGE, j.DE_EAW_COURT, j.TRANSLATOR):
            show_inbox(svc, party, eaw["id"])

    def missed() -> None:
        now = svc.clock().GetTime(pb.test_clock.GetTimeRequest(), timeout=10).now
        jump = eaw["deadline"].due_time.seconds - now.seconds + 60
        moved = j.advance_clock(svc, jump)
        print(f"   the shared test clock moves on {jump // 86400} days: "
              f"{moved.now.ToJsonString()}; no decision has been taken")
        j.wait_deadline(svc, j.DE_EAW_COURT, eaw["id"], "EAW_DECISION_NO_CONSENT",
                        DL.DEADLINE_STATE_OVERDUE)
        show_deadlines(svc, j.DE_EAW_COURT, eaw["id"])
        for party in (j.EAW_JUDGE, j.DE_EAW_COURT):
            j.wait(lambda: j.inbox(svc, party, eaw["id"]), 20, "the miss told")
            show_inbox(svc, party, eaw["id"])

    def escalated() -> None:
        moved = j.advance_clock(svc, j.DAY_S)
        print(f"   a day later ({moved.now.ToJsonString()}), still nothing:")
        j.wait(lambda: [d for d in j.deadlines_of(svc, j.DE_EAW_COURT, eaw["id"])
                        if d.escalation_level >= 2], 20, "escalation level 2")
        show_deadlines(svc, j.DE_EAW_COURT, eaw["id"])
        for party in (j.EAW_JUDGE, j.DE_EAW_COURT):
            j.wait(lambda: [n for n in j.inbox(svc, party, eaw["id"])
                            if n.event.type == pb.events.EVENT_TYPE_DEADLINE_ESCALATED],
                   20, "the escalation told")
            show_inbox(svc, party, eaw["id"])
        request = j.get(svc, j.EAW_JUDGE, eaw["id"])
        print(f"   the request stays {status(request.status)}: a missed deadline does not "
              "end the duty to decide (CJEU C-237/15 Lanigan)")

    print("\n#### Journey 2: an urgent EAW that runs out of time ####")
    story.step("A French court submits an urgent EAW to Germany", submit_eaw)
    story.step("The person is arrested: the 60-day decision deadline starts", arrested)
    story.step("60 days pass on the test clock: the deadline is missed", missed)
    story.step("One more day: the deadline is escalated", escalated)

    # ---- Odds and ends --------------------------------------------------------------

    def malformed() -> None:
        try:
            svc.intake(j.JUDGE).SubmitRequest(pb.intake.SubmitRequestRequest(
                request_id=str(uuid.uuid4()), content=rc.malformed_content()), timeout=10)
        except grpc.RpcError as error:
            violations = rc.field_violations(error)
            print(f"   refused: {error.code().name}, {len(violations)} field violation(s)")
            for field, description in violations:
                print(f"     {field}: {description}")
            check(error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.code().name)
            return
        raise AssertionError("the malformed request was accepted")

    def metrics() -> None:
        for url in [u.strip() for u in args.metrics_urls.split(",") if u.strip()]:
            with urllib.request.urlopen(url, timeout=5.0) as response:
                text = response.read().decode()
            lines = [line for line in text.splitlines() if line.startswith("rogatory_")]
            print(f"   {url}: {len(lines)} rogatory_* samples; e.g.")
            for line in lines[:4]:
                print(f"     {line}")

    story.step("A malformed request is refused, naming every bad field", malformed)
    if args.metrics_urls:
        story.step("What the metrics say", metrics)

    svc.close()
    print()
    if story.failures:
        print(f"Demo finished with {len(story.failures)} failed step(s):")
        for failure in story.failures:
            print(f"  - {failure}")
        return 1
    print("Demo finished: both journeys told end to end. Try tools/rogatoryctl/rogatoryctl "
          "--help, and the sample requests in samples/requests/.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
