"""The parties of Rogatory's reference journeys and the steps they take, over gRPC only.

Used by the demo (story.py) and by the end-to-end tests (tests/e2e/workflow_e2e_test.py),
so both tell the same story: a French investigating judge's EIO to Germany, written in
French, translated into German by a translator, acknowledged, recognised and executed by
the competent German authority; and an urgent EAW that runs out of time on the shared test
clock and escalates.

Every party calls as itself (rogatory_client.Caller: its authority id, state and roles; the
Caller carries whatever credentials the deployment needs). The competent German authority
is the one translation-routing decides from services/routing/data/declarations.json
(DE-PROSECUTOR for an EIO, DE-EAW-COURT for an EAW).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Callable, Optional

import grpc

import rogatory_client as rc

#: The French investigating judge who issues the EIO.
JUDGE = rc.Caller("FR-TJ-PARIS-JI", "FR", ("issuing",))
#: The competent German authority for an EIO, as routing decides it.
DE_PROSECUTOR = rc.Caller("DE-PROSECUTOR", "DE", ("executing",))
#: The French court that issues the EAW.
EAW_JUDGE = rc.Caller("FR-TJ-LYON-JLD", "FR", ("issuing",))
#: The competent German authority for an EAW, as routing decides it.
DE_EAW_COURT = rc.Caller("DE-EAW-COURT", "DE", ("executing",))
#: A sworn French-German translator.
TRANSLATOR = rc.Caller("XL-FR-DE-SWORN-1", "FR", ("translator",))
#: The operator who runs the (test) system and moves the shared test clock.
OPERATOR = rc.Caller("OPS-ROGATORY", "FR", ("operator",))

DAY_S = 24 * 3600

#: Made-up bytes standing for a PDF form: the content does not matter to the services.
FORM_FR = b"%PDF-1.4\n% Decision d'enquete europeenne (exemple fictif)\n" + b"0" * 2048
FORM_DE = b"%PDF-1.4\n% Europaeische Ermittlungsanordnung (fiktives Beispiel)\n" + b"1" * 2048


class Services:
    """The four services' addresses and a stub factory per (service, caller)."""

    def __init__(self, intake: str, routing: str, deadlines: str, notification: str):
        self.addrs = {"intake": intake, "routing": routing, "deadlines": deadlines,
                      "notification": notification}
        self._channels: dict = {}

    def channel(self, service: str, caller: rc.Caller) -> grpc.Channel:
        key = (service, caller)
        if key not in self._channels:
            self._channels[key] = rc.connect(self.addrs[service], caller)
        return self._channels[key]

    def intake(self, caller: rc.Caller):
        return rc.stubs().intake_grpc.IntakeServiceStub(self.channel("intake", caller))

    def routing(self, caller: rc.Caller):
        return rc.stubs().routing_grpc.TranslationRoutingServiceStub(
            self.channel("routing", caller))

    def deadlines(self, caller: rc.Caller):
        return rc.stubs().deadlines_grpc.DeadlineServiceStub(self.channel("deadlines", caller))

    def notification(self, caller: rc.Caller):
        return rc.stubs().notification_grpc.NotificationServiceStub(
            self.channel("notification", caller))

    def clock(self, caller: rc.Caller = OPERATOR, service: str = "notification"):
        return rc.stubs().test_clock_grpc.TestClockServiceStub(
            self.channel(service, caller))

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()


def key() -> str:
    """A fresh idempotency key."""
    return str(uuid.uuid4())


def wait(probe: Callable, timeout: float, what: str):
    """Polls ``probe`` until it returns something truthy (exceptions count as "not yet")."""
    return rc.poll_until(probe, timeout=timeout, interval=0.05, description=what)


# --------------------------------------------------------------------------------------
# Content
# --------------------------------------------------------------------------------------


def eio_content():
    """The French judge's EIO to Germany, in French (made-up data)."""
    return rc.example_eio_content()


def eaw_content():
    """An urgent EAW from Lyon to Germany, in French (made-up data)."""
    pb = rc.stubs()
    types, intake = pb.types, pb.intake
    return intake.RequestContent(
        instrument=types.INSTRUMENT_EAW, urgency=types.URGENCY_URGENT,
        issuing_authority=types.AuthorityRef(
            authority_id=EAW_JUDGE.authority_id, state="FR",
            display_name="Tribunal judiciaire de Lyon"),
        requested_state="DE", source_language="fr",
        legal_basis="Framework Decision 2002/584/JHA",
        statement_of_facts="Fictitious facts: armed robbery committed in Lyon.",
        subjects=[intake.Subject(role=intake.SUBJECT_ROLE_REQUESTED_PERSON,
                                 family_name="Recherche", given_names="Alex",
                                 nationalities=["FR"])],
        offences=[intake.Offence(description="Armed robbery.",
                                 listed_offence_category="ORGANISED_OR_ARMED_ROBBERY",
                                 maximum_penalty_months=240)],
        eaw=intake.EawDetails(purpose=intake.WARRANT_PURPOSE_PROSECUTION,
                              underlying_decision_reference="Mandat SAMPLE-42 (fictitious)"))


# --------------------------------------------------------------------------------------
# Steps
# --------------------------------------------------------------------------------------


def submit(svc: Services, caller: rc.Caller, content, request_id: Optional[str] = None):
    pb = rc.stubs()
    return svc.intake(caller).SubmitRequest(pb.intake.SubmitRequestRequest(
        request_id=request_id or key(), content=content), timeout=10).request


def get(svc: Services, caller: rc.Caller, request_id: str):
    pb = rc.stubs()
    return svc.intake(caller).GetRequest(pb.intake.GetRequestRequest(id=request_id),
                                         timeout=10).request


def upload(svc: Services, caller: rc.Caller, request_id: str, data: bytes, language: str,
           kind=None, translation_of: str = "", title: str = ""):
    pb = rc.stubs()
    metadata = pb.intake.DocumentUpload(
        request_id=key(), id=request_id,
        kind=kind if kind is not None else pb.intake.DOCUMENT_KIND_REQUEST_FORM,
        language=language, media_type="application/pdf", sha256=hashlib.sha256(data).hexdigest(),
        translation_of_document_id=translation_of, title=title)
    parts = [pb.intake.UploadDocumentRequest(metadata=metadata),
             pb.intake.UploadDocumentRequest(chunk=data)]
    return svc.intake(caller).UploadDocument(iter(parts), timeout=30).document


def download(svc: Services, caller: rc.Caller, request_id: str, document_id: str) -> bytes:
    pb = rc.stubs()
    data = bytearray()
    for message in svc.intake(caller).DownloadDocument(pb.intake.DownloadDocumentRequest(
            id=request_id, document_id=document_id), timeout=30):
        if not message.HasField("metadata"):
            data.extend(message.chunk)
    return bytes(data)


def wait_status(svc: Services, caller: rc.Caller, request_id: str, status: int,
                timeout: float = 20.0):
    def probe():
        request = get(svc, caller, request_id)
        return request if request.status == status else None
    return wait(probe, timeout, f"{request_id} in {rc.stubs().types.RequestStatus.Name(status)}")


def transition(svc: Services, caller: rc.Caller, request_id: str, status: int,
               reason: str = "", grounds=(), note: str = ""):
    pb = rc.stubs()
    return svc.intake(caller).TransitionRequest(pb.intake.TransitionRequestRequest(
        request_id=key(), id=request_id, target_status=status, reason_code=reason,
        refusal_grounds=list(grounds), note=note), timeout=10).request


def acknowledge(svc: Services, caller: rc.Caller, request_id: str):
    """The executing authority acknowledges receipt of an EIO (Annex B): FORWARDED ->
    ACKNOWLEDGED, which meets the EIO_ACKNOWLEDGE deadline."""
    pb = rc.stubs()
    return svc.intake(caller).AcknowledgeRequest(pb.intake.AcknowledgeRequestRequest(
        request_id=key(), id=request_id), timeout=10).request


def withdraw(svc: Services, caller: rc.Caller, request_id: str, reason: str):
    pb = rc.stubs()
    return svc.intake(caller).WithdrawRequest(pb.intake.WithdrawRequestRequest(
        request_id=key(), id=request_id, reason_code=reason), timeout=10).request


def history(svc: Services, caller: rc.Caller, request_id: str) -> list:
    pb = rc.stubs()
    events, token = [], ""
    while True:
        response = svc.intake(caller).GetRequestHistory(pb.intake.GetRequestHistoryRequest(
            id=request_id, page_size=1000, page_token=token), timeout=10)
        events.extend(response.events)
        token = response.next_page_token
        if not token:
            return events


def deadlines_of(svc: Services, caller: rc.Caller, request_id: str) -> list:
    pb = rc.stubs()
    return list(svc.deadlines(caller).ListDeadlines(pb.deadlines.ListDeadlinesRequest(
        target_request_id=request_id), timeout=10).deadlines)


def wait_deadline(svc: Services, caller: rc.Caller, request_id: str, rule_id: str,
                  state: int, timeout: float = 20.0):
    def probe():
        found = [d for d in deadlines_of(svc, caller, request_id)
                 if d.rule_id == rule_id and d.state == state]
        return found[0] if found else None
    name = rc.stubs().deadlines.DeadlineState.Name(state)
    return wait(probe, timeout, f"deadline {rule_id} {name}")


def jobs_of(svc: Services, caller: rc.Caller, request_id: str) -> list:
    pb = rc.stubs()
    return list(svc.routing(caller).ListTranslationJobs(pb.routing.ListTranslationJobsRequest(
        request_id=request_id), timeout=10).jobs)


def claim(svc: Services, translator: rc.Caller, source: str, target: str,
          timeout: float = 20.0):
    """Claims the next job for the pair, waiting for one to be queued."""
    pb = rc.stubs()

    def probe():
        try:
            return svc.routing(translator).ClaimTranslationJob(
                pb.routing.ClaimTranslationJobRequest(
                    request_id=key(), source_languages=[source], target_languages=[target]),
                timeout=10).job
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
    return wait(probe, timeout, f"a {source}>{target} job to claim")


def claim_for(svc: Services, translator: rc.Caller, request_id: str, source: str,
              target: str, timeout: float = 30.0, on_other=None):
    """Claims jobs until it holds the one of ``request_id``; jobs of other requests that
    come first in the queue (a database kept from earlier runs) are translated on the way
    (``on_other(job)`` is called for each)."""
    deadline = time.monotonic() + timeout
    while True:
        job = claim(svc, translator, source, target, timeout=max(1.0, deadline - time.monotonic()))
        if job.request_id == request_id:
            return job
        if on_other:
            on_other(job)
        translate(svc, translator, job)
        if time.monotonic() > deadline:
            raise TimeoutError(f"no job of {request_id} within {timeout:.0f}s")


def translate(svc: Services, translator: rc.Caller, job, data: bytes = FORM_DE):
    """The translator reads the source, uploads the translation and completes the job."""
    pb = rc.stubs()
    # Intake lets the translator reach the document once it has recorded the claim (an
    # event from routing): until then the document answers NOT_FOUND.
    wait(lambda: download(svc, translator, job.request_id, job.document_id), 20,
         "the source document readable by its translator")
    document = upload(svc, translator, job.request_id, data, job.target_language,
                      kind=pb.intake.DOCUMENT_KIND_TRANSLATION,
                      translation_of=job.document_id, title="Übersetzung")
    done = svc.routing(translator).CompleteTranslationJob(
        pb.routing.CompleteTranslationJobRequest(
            request_id=key(), job_id=job.id, lease_token=job.lease_token,
            translated_document_id=document.id, translated_document_sha256=document.sha256),
        timeout=10).job
    return document, done


def complete_deadline(svc: Services, caller: rc.Caller, deadline_id: str, reason: str):
    pb = rc.stubs()
    return svc.deadlines(caller).CompleteDeadline(pb.deadlines.CompleteDeadlineRequest(
        request_id=key(), deadline_id=deadline_id, reason_code=reason), timeout=10).deadline


def advance_clock(svc: Services, seconds: int):
    """Moves the shared test clock on and waits until every service has taken it up.

    Each service re-reads the shared offset every 200 ms; moving it through notification
    (the service that stamps what the others tell it) makes sure nothing is stamped with
    the old time after a timer fired on the new one.
    """
    pb = rc.stubs()
    moved = svc.clock().AdvanceTime(pb.test_clock.AdvanceTimeRequest(by={"seconds": seconds}),
                                    timeout=10)
    for service in ("intake", "routing", "deadlines"):
        wait(lambda: svc.clock(service=service).GetTime(
            pb.test_clock.GetTimeRequest(), timeout=10).offset.seconds >= moved.offset.seconds,
            10, f"{service} on the new test time")
    return moved


def inbox(svc: Services, caller: rc.Caller, request_id: Optional[str] = None,
          quiet_s: float = 0.4, timeout: float = 10.0) -> list:
    """Everything retained in ``caller``'s inbox (oldest first), optionally for one request.

    Reads a Subscribe stream from the oldest entry until it has been quiet for ``quiet_s``.
    """
    pb = rc.stubs()
    stream = svc.notification(caller).Subscribe(pb.notification.SubscribeRequest(
        start_position=pb.notification.START_POSITION_OLDEST), timeout=timeout)
    out = []
    import threading
    last = [time.monotonic()]
    done = threading.Event()

    def reader():
        try:
            for message in stream:
                if message.HasField("notification"):
                    out.append(message.notification)
                    last[0] = time.monotonic()
        except grpc.RpcError:
            pass
        finally:
            done.set()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    while not done.is_set() and time.monotonic() - last[0] < quiet_s:
        time.sleep(0.05)
    stream.cancel()
    thread.join(timeout=5)
    if request_id is not None:
        out = [n for n in out if n.event.request_id == request_id]
    return out
