#!/usr/bin/python3
"""Fault test: personal data never reaches the logs or the metrics.

All four services run with ``--log-level=debug``. One journey goes through all of them
with distinctive made-up personal data (names, birth date, identity document numbers, the
issuer's reference, free-text facts, a document title and content): submission, a
document upload, the routing decision, the translation job claimed and completed by a
translator, the document downloaded, recognition by the executing authority,
deadlines started and met, notifications read from both authorities' inboxes, and
submissions refused as invalid because of personal-data fields (so error paths are
exercised too). Then every service's log file and its /metrics page are searched for each
personal-data string: none may appear. The logs must be non-empty and hold the request's
id and trace id, so the search is not vacuous. Prints ``FAULT personal-data: ...``.

Run by ctest (label ``fault``) as::

    /usr/bin/python3 tests/fault/personal_data_test.py --bin-dir <build>/bin
"""

from __future__ import annotations

import hashlib
import sys
import time
import unittest
import urllib.request
import uuid

import fault_harness as fh

grpc, rc = fh.grpc, fh.rc
ISSUER = rc.Caller("FR-TJ-LYON-JI", "FR", ("issuing",))
EXECUTING = fh.EXECUTING
TRANSLATOR = rc.Caller("XL-FAULT-1", "BE", ("translator",))

#: Made-up personal data, each string distinctive enough that a hit is a leak.
FAMILY_NAME = "Wojciechowska-Quaglieri"
GIVEN_NAMES = "Zbigniewa Ottilie"
WITNESS_NAME = "Tarkovsky-Bellamare"
PASSPORT = "XQ7741958Z"
NATIONAL_ID = "880723-4471-QF"
ISSUER_REFERENCE = "JI-LYON-2026-99417-KV"
FACTS_MARKER = "Quellenweg 42 in Wuppertal"
OFFENCE_MARKER = "Bratwurstmanufaktur Ziegenhals"
MEASURE_MARKER = "IBAN DE44 5001 0517 5407 3249 31"
DOCUMENT_TITLE = "Audition de Zbigniewa Wojciechowska-Quaglieri"
DOCUMENT_MARKER = b"PROCES-VERBAL-OXYTOCIN-77813"
BIRTH = (1974, 7, 23)
PERSONAL = [FAMILY_NAME, GIVEN_NAMES, WITNESS_NAME, PASSPORT, NATIONAL_ID, ISSUER_REFERENCE,
            FACTS_MARKER, OFFENCE_MARKER, MEASURE_MARKER, DOCUMENT_TITLE,
            DOCUMENT_MARKER.decode(), "Wojciechowska", "Zbigniewa", "Quaglieri",
            "Tarkovsky", "XQ7741958Z", "1974-07-23", "23.07.1974", "23/07/1974", "19740723",
            "1974-7-23"]


def personal_content():
    pb = rc.stubs()
    content = rc.example_eio_content(issuing_authority_id=ISSUER.authority_id)
    content.issuer_reference = ISSUER_REFERENCE
    content.statement_of_facts = (
        f"Made-up facts: the suspect, living at {FACTS_MARKER}, moved the proceeds of forged "
        f"invoices to an account in Germany; the witness {WITNESS_NAME} saw the transfers.")
    content.offences[0].description = f"Organised fraud through the company {OFFENCE_MARKER}."
    content.measures[0].description = f"Balances and statements of account {MEASURE_MARKER}."
    del content.subjects[:]
    content.subjects.append(pb.intake.Subject(
        role=pb.intake.SUBJECT_ROLE_SUSPECT, family_name=FAMILY_NAME, given_names=GIVEN_NAMES,
        birth_date=pb.types.Date(year=BIRTH[0], month=BIRTH[1], day=BIRTH[2]),
        nationalities=["FR", "PL"],
        identifiers=[pb.intake.PersonIdentifier(kind="PASSPORT", value=PASSPORT,
                                                issuing_state="FR"),
                     pb.intake.PersonIdentifier(kind="NATIONAL_ID", value=NATIONAL_ID,
                                                issuing_state="PL")]))
    content.subjects.append(pb.intake.Subject(role=pb.intake.SUBJECT_ROLE_WITNESS,
                                              family_name=WITNESS_NAME))
    return content


class PersonalDataTest(unittest.TestCase):
    def setUp(self):
        self.cluster = fh.Cluster("personal-data", service_args=("--log-level=debug",))
        self.addCleanup(self.cluster.stop)
        self.cluster.start()

    def stub(self, service: str, caller: rc.Caller, factory: str):
        channel = rc.connect(self.cluster.addr(service), caller)
        self.addCleanup(channel.close)
        return getattr(getattr(rc.stubs(), f"{service}_grpc"), factory)(channel)

    def test_full_journey_leaves_no_personal_data_in_logs_or_metrics(self):
        pb = rc.stubs()
        trace_id = uuid.uuid4().hex
        meta = (("x-rogatory-trace-id", trace_id),)
        issuer = self.stub("intake", ISSUER, "IntakeServiceStub")
        executing = self.stub("intake", EXECUTING, "IntakeServiceStub")
        routing = self.stub("routing", TRANSLATOR, "TranslationRoutingServiceStub")
        deadlines = self.stub("deadlines", ISSUER, "DeadlineServiceStub")
        content = personal_content()

        # Submission, replayed once (idempotency path), and read back in full.
        key = str(uuid.uuid4())
        submit = pb.intake.SubmitRequestRequest(request_id=key, content=content)
        request = issuer.SubmitRequest(submit, timeout=5, metadata=meta).request
        self.assertEqual(issuer.SubmitRequest(submit, timeout=5, metadata=meta).request.id,
                         request.id)
        full = issuer.GetRequest(pb.intake.GetRequestRequest(
            id=request.id, view=pb.intake.REQUEST_VIEW_FULL), timeout=5).request
        self.assertEqual(full.content.subjects[0].family_name, FAMILY_NAME)
        issuer.ListRequests(pb.intake.ListRequestsRequest(view=pb.intake.REQUEST_VIEW_FULL),
                            timeout=5)

        # Refused submissions whose bad fields hold personal data: error paths log too.
        bad = personal_content()
        bad.subjects[0].identifiers[0].value = PASSPORT * 8           # longer than 64
        bad.subjects[0].nationalities.append(FAMILY_NAME)           # not a state code
        bad.subjects[0].birth_date.month = 13                        # no such date
        refused = 0
        for attempt in (bad, pb.intake.RequestContent(issuer_reference=ISSUER_REFERENCE)):
            with self.assertRaises(grpc.RpcError) as ctx:
                issuer.SubmitRequest(pb.intake.SubmitRequestRequest(
                    request_id=str(uuid.uuid4()), content=attempt), timeout=5, metadata=meta)
            self.assertEqual(ctx.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
            refused += 1
        # The same idempotency key with other content: ALREADY_EXISTS.
        other = personal_content()
        other.statement_of_facts += f" Also seen with {WITNESS_NAME}."
        with self.assertRaises(grpc.RpcError) as ctx:
            issuer.SubmitRequest(pb.intake.SubmitRequestRequest(request_id=key, content=other),
                                 timeout=5, metadata=meta)
        self.assertEqual(ctx.exception.code(), grpc.StatusCode.ALREADY_EXISTS)

        # A document in the source language: routing makes a translation job of it.
        data = DOCUMENT_MARKER + b" " + FAMILY_NAME.encode() + b" " + bytes(range(256)) * 64
        digest = hashlib.sha256(data).hexdigest()

        def parts():
            yield pb.intake.UploadDocumentRequest(metadata=pb.intake.DocumentUpload(
                request_id=str(uuid.uuid4()), id=request.id,
                kind=pb.intake.DOCUMENT_KIND_REQUEST_FORM, language="fr",
                media_type="application/pdf", title=DOCUMENT_TITLE, sha256=digest))
            yield pb.intake.UploadDocumentRequest(chunk=data)

        document = issuer.UploadDocument(parts(), timeout=10, metadata=meta).document

        # The translator claims the job and completes it; the issuer reads the document back.
        claim = pb.routing.ClaimTranslationJobRequest(
            request_id=str(uuid.uuid4()), source_languages=["fr"], target_languages=["de"])

        def claimed():
            try:
                return routing.ClaimTranslationJob(claim, timeout=5).job
            except grpc.RpcError as error:
                if error.code() == grpc.StatusCode.NOT_FOUND:
                    claim.request_id = str(uuid.uuid4())
                    return None
                raise

        job = rc.poll_until(claimed, timeout=20, description="a translation job to claim")
        self.assertEqual((job.request_id, job.document_id), (request.id, document.id))
        received = b"".join(m.chunk for m in issuer.DownloadDocument(
            pb.intake.DownloadDocumentRequest(id=request.id, document_id=document.id),
            timeout=10) if not m.HasField("metadata"))
        self.assertEqual(received, data)
        routing.CompleteTranslationJob(pb.routing.CompleteTranslationJobRequest(
            job_id=job.id, lease_token=job.lease_token,
            translated_document_id=f"{document.id}-de",
            translated_document_sha256=hashlib.sha256(b"de").hexdigest()), timeout=5)

        def status_is(status):
            return issuer.GetRequest(pb.intake.GetRequestRequest(id=request.id),
                                     timeout=5).request.status == status

        rc.poll_until(lambda: status_is(pb.types.REQUEST_STATUS_FORWARDED), timeout=20,
                      description="request FORWARDED after the translation")
        current = executing.GetRequest(pb.intake.GetRequestRequest(id=request.id), timeout=5)
        executing.TransitionRequest(pb.intake.TransitionRequestRequest(
            request_id=str(uuid.uuid4()), id=request.id,
            target_status=pb.types.REQUEST_STATUS_RECOGNISED, etag=current.request.etag,
            reason_code="RECOGNISED"), timeout=5, metadata=meta)

        # Deadlines: recognition met, execution started.
        def deadline_states():
            listed = deadlines.ListDeadlines(pb.deadlines.ListDeadlinesRequest(
                target_request_id=request.id), timeout=5).deadlines
            return {d.rule_id: pb.deadlines.DeadlineState.Name(d.state) for d in listed}

        states = rc.poll_until(
            lambda: (s := deadline_states()).get("EIO_EXECUTION") and s, timeout=20,
            description="execution deadline started")
        history = issuer.GetRequestHistory(pb.intake.GetRequestHistoryRequest(
            id=request.id, page_size=100), timeout=5).events
        kinds = [pb.events.EventType.Name(e.type) for e in history]
        self.assertIn("EVENT_TYPE_ROUTING_DECIDED", kinds)
        self.assertIn("EVENT_TYPE_TRANSLATION_JOB_COMPLETED", kinds)

        # Notifications: both authorities read their inboxes (and acknowledge them).
        notified = {}
        for who in (ISSUER, EXECUTING):
            notes = fh._read_inbox(
                self.cluster, who,
                lambda ns: any(n.event.type == pb.events.EVENT_TYPE_REQUEST_RECOGNISED
                               for n in ns), timeout=20)
            notified[who.authority_id] = len(notes)
            self.assertTrue(notes, f"{who.authority_id} was told nothing")
            with rc.connect(self.cluster.addr("notification"), who) as channel:
                stub = pb.notification_grpc.NotificationServiceStub(channel)
                stub.Ack(pb.notification.AckRequest(cursor=notes[-1].cursor), timeout=5)
                stub.GetDeliveryStatus(pb.notification.GetDeliveryStatusRequest(
                    request_id=request.id), timeout=5)

        # Let the last events travel and the metrics pages fill.
        time.sleep(1.0)
        texts = {}
        for name, service in self.cluster.services.items():
            log = service.log_path.read_text(errors="replace")
            with urllib.request.urlopen(service.metrics_url, timeout=5) as response:
                metrics = response.read().decode(errors="replace")
            texts[name] = (log, metrics)

        hits = []
        for name, (log, metrics) in texts.items():
            for where, text in (("log", log), ("metrics", metrics)):
                for needle in PERSONAL:
                    if needle.lower() in text.lower():
                        hits.append(f"{name} {where}: {needle!r}")
        lines = {name: len(log.splitlines()) for name, (log, _) in texts.items()}
        print(f"FAULT personal-data: services=4 log_lines={sum(lines.values())} "
              f"metrics_bytes={sum(len(m) for _, m in texts.values())} "
              f"strings_searched={len(PERSONAL)} refused_submissions={refused} "
              f"notifications={sum(notified.values())} deadlines={len(states)} "
              f"leaks={len(hits)}", flush=True)
        for name, (log, metrics) in texts.items():
            with self.subTest(service=name):
                self.assertGreater(lines[name], 5, f"{name}'s log is (almost) empty")
                self.assertIn(request.id, log, f"{name}'s log never names the request")
                self.assertIn(trace_id, log, f"{name}'s log never names the trace")
                self.assertIn('"level":"debug"', log, f"{name} logged nothing at debug")
                self.assertIn("grpc_server_handled_total", metrics)
        self.assertEqual(hits, [], "personal data found in logs or metrics")


def main() -> int:
    return fh.base.run_tests("rogatory-fault-personal-data-", __doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
