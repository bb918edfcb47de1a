#!/usr/bin/python3
"""End-to-end tests of rogatory-routing: the declarations registry over gRPC, its reload
(a broken file is refused and the running registry kept), start-up refusal on a broken
registry, routing of a request that intake accepted (through intake's outbox and relay),
and the translator checks of the job RPCs.

Run by ctest as::

    /usr/bin/python3 tests/e2e/routing_e2e_test.py --bin-dir <build>/bin [unittest args]

Reuses the process fixtures of intake_e2e_test.py (own redis-server, real binaries on free
ports, logs, cleanup). Nothing is skipped: a missing binary or redis-server fails the run.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import sys
import tempfile
import time
import unittest
import uuid

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import grpc  # noqa: E402
import intake_e2e_test as base  # noqa: E402  (fixtures: processes, Redis, services)

rc = base.rc
REGISTRY_SOURCE = base.REPO_ROOT / "services" / "routing" / "data"
ISSUER = base.ISSUER
TRANSLATOR = rc.Caller("XL-VENDOR-1", "BE", ("translator",))


class RoutingE2ETestCase(unittest.TestCase):
    """A private redis-server, a copy of the reference registry in the work directory, and
    the services in SERVICES (routing started with --registry-dir on that copy)."""

    SERVICES: tuple[str, ...] = ("routing",)

    @classmethod
    def setUpClass(cls) -> None:
        base._require([pathlib.Path(base.REDIS_SERVER)]
                      + [base.BIN_DIR / f"rogatory-{name}" for name in cls.SERVICES])
        cls.workdir = pathlib.Path(tempfile.mkdtemp(prefix=cls.__name__ + "-",
                                                    dir=base.WORK_ROOT))
        cls.registry_dir = cls.workdir / "registry"
        shutil.copytree(REGISTRY_SOURCE, cls.registry_dir)
        cls.redis = base.RedisServer(cls.workdir)
        cls.addClassCleanup(cls.redis.stop)
        cls.redis.start()
        cls.services = {}
        cls.grpc_ports = {name: base.free_port() for name in base.SERVICE_NAMES}
        for name in cls.SERVICES:
            service = cls.make_service(name)
            service.start(wait=False)
            cls.services[name] = service
        for service in cls.services.values():
            service.wait_ready()

    @classmethod
    def make_service(cls, name: str, registry_dir: pathlib.Path | None = None):
        service = base.ServiceProcess(name, cls.redis, cls.workdir, cls.grpc_ports)
        if name == "routing":
            service.process.argv.append(f"--registry-dir={registry_dir or cls.registry_dir}")
        cls.addClassCleanup(service.stop)
        return service

    def routing_stub(self, caller: rc.Caller = ISSUER):
        channel = rc.connect(self.services["routing"].addr, caller)
        self.addCleanup(channel.close)
        return rc.stubs().routing_grpc.TranslationRoutingServiceStub(channel)

    def assertRpcCode(self, code, call, *args, **kwargs) -> grpc.RpcError:
        try:
            call(*args, **kwargs)
        except grpc.RpcError as error:
            self.assertEqual(error.code(), code, f"{error.code().name}: {error.details()!r}")
            return error
        self.fail(f"expected {code.name}, but the call succeeded")

    def assertReason(self, reason: str, code, call, *args, **kwargs) -> None:
        """The call fails with this code, and with google.rpc.ErrorInfo of domain rogatory
        and this reason (errors.proto), as a UI would switch on it."""
        error = self.assertRpcCode(code, call, *args, **kwargs)
        info = rc.error_info(error)
        self.assertIsNotNone(info, f"no ErrorInfo on {code.name}: {error.details()!r}")
        self.assertEqual((info.domain, info.reason), ("rogatory", reason), info)

    def log_lines(self, service: str) -> list[dict]:
        out = []
        for line in self.services[service].log_path.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out


class RegistryE2ETest(RoutingE2ETestCase):
    """The registry is readable over gRPC and reloads safely."""

    def version(self) -> str:
        pb = rc.stubs().routing
        return self.routing_stub().ListDeclarations(pb.ListDeclarationsRequest(),
                                                    timeout=5).registry_version

    def test_declarations_are_served_per_state_and_for_all_states(self):
        pb, types = rc.stubs().routing, rc.stubs().types
        be = self.routing_stub().GetDeclaration(
            pb.GetDeclarationRequest(state="BE", instrument=types.INSTRUMENT_EIO), timeout=5)
        self.assertEqual([l.language for l in be.declarations[0].accepted_languages],
                         ["nl", "fr", "de", "en"])
        self.assertFalse(be.declarations[0].confirmed)
        self.assertTrue(be.declarations[0].source)
        all_eio = self.routing_stub().ListDeclarations(
            pb.ListDeclarationsRequest(instrument=types.INSTRUMENT_EIO), timeout=5)
        states = {d.state for d in all_eio.declarations}
        self.assertGreaterEqual(len(states), 27)
        dk = [d for d in all_eio.declarations if d.state == "DK"][0]
        self.assertFalse(dk.applies)
        self.assertRpcCode(grpc.StatusCode.NOT_FOUND, self.routing_stub().GetDeclaration,
                           pb.GetDeclarationRequest(state="US"), timeout=5)

    def test_declarations_come_in_pages_whose_union_is_the_whole_list(self):
        pb, types = rc.stubs().routing, rc.stubs().types
        stub = self.routing_stub()
        whole = stub.ListDeclarations(pb.ListDeclarationsRequest(page_size=500), timeout=5)
        self.assertEqual(whole.next_page_token, "")
        everything = [(d.state, d.instrument) for d in whole.declarations]
        self.assertGreater(len(everything), 7)
        listed, request, pages = [], pb.ListDeclarationsRequest(page_size=7), 0
        while True:
            page = stub.ListDeclarations(request, timeout=5)
            self.assertLessEqual(len(page.declarations), 7)
            listed += [(d.state, d.instrument) for d in page.declarations]
            pages += 1
            if not page.next_page_token:
                break
            request.page_token = page.next_page_token
        self.assertEqual(listed, everything)  # the same order, nothing twice, nothing missed
        self.assertEqual(pages, -(-len(everything) // 7))
        default = stub.ListDeclarations(pb.ListDeclarationsRequest(), timeout=5)
        self.assertEqual(len(default.declarations), min(50, len(everything)))
        token = stub.ListDeclarations(pb.ListDeclarationsRequest(page_size=2),
                                      timeout=5).next_page_token
        for bad in (pb.ListDeclarationsRequest(instrument=types.INSTRUMENT_EIO, page_token=token),
                    pb.ListDeclarationsRequest(page_token="tampered" + token),
                    pb.ListDeclarationsRequest(page_size=501)):
            with self.subTest(request=str(bad)):
                error = self.assertRpcCode(grpc.StatusCode.INVALID_ARGUMENT,
                                           stub.ListDeclarations, bad, timeout=5)
                fields = [f for f, _ in rc.field_violations(error)]
                self.assertEqual(fields, ["page_size" if bad.page_size else "page_token"])

    def test_preview_explains_croatias_urgent_only_english(self):
        pb, types = rc.stubs().routing, rc.stubs().types
        facts = pb.RoutingFacts(instrument=types.INSTRUMENT_EIO, issuing_state="NL",
                                requested_state="HR", source_language="en",
                                urgency=types.URGENCY_NORMAL)
        normal = self.routing_stub().PreviewRouting(pb.PreviewRoutingRequest(facts=facts),
                                                    timeout=5).decision
        self.assertTrue(normal.translation_required)
        self.assertEqual(normal.target_language, "hr")
        self.assertIn("URGENT_ONLY_NOT_URGENT", [r.code for r in normal.reasons])
        facts.urgency = types.URGENCY_URGENT
        urgent = self.routing_stub().PreviewRouting(pb.PreviewRoutingRequest(facts=facts),
                                                    timeout=5).decision
        self.assertFalse(urgent.translation_required)
        self.assertEqual(urgent.competent_authority.authority_id, "HR-PROSECUTOR")

    def test_preview_names_every_bad_field(self):
        pb = rc.stubs().routing
        error = self.assertRpcCode(
            grpc.StatusCode.INVALID_ARGUMENT, self.routing_stub().PreviewRouting,
            pb.PreviewRoutingRequest(facts=pb.RoutingFacts(requested_state="EL",
                                                           source_language="english")),
            timeout=5)
        fields = {field for field, _ in rc.field_violations(error)}
        self.assertTrue({"facts.instrument", "facts.issuing_state", "facts.requested_state",
                         "facts.source_language"} <= fields, fields)

    def refusals(self) -> list[dict]:
        return [line for line in self.log_lines("routing")
                if line.get("msg", "").startswith("reload refused")]

    def test_broken_file_is_refused_and_the_running_registry_kept(self):
        before = self.version()
        bad = self.registry_dir / "zz-broken.json"
        refused_before = len(self.refusals())
        # A folder change (as a ConfigMap swap) triggers the reload.
        bad.write_text('{"declarations": [{"state": "XX", "instrument": "INSTRUMENT_EIO", '
                       '"applies": true, "source": "test"}]}')
        self.addCleanup(lambda: bad.unlink(missing_ok=True))
        base._poll(lambda: len(self.refusals()) > refused_before, 10,
                   "a refused reload in the log")
        message = self.refusals()[-1]["error"]
        self.assertIn("zz-broken.json", message)
        self.assertIn("declarations[0].state: 'XX' is not an ISO 3166-1 alpha-2 code", message)
        self.assertEqual(self.version(), before)
        pb = rc.stubs().routing
        self.routing_stub().GetDeclaration(pb.GetDeclarationRequest(state="SI"), timeout=5)

        # SIGHUP with the file still broken: refused again, same registry.
        refused = len(self.refusals())
        self.services["routing"].process.signal(signal.SIGHUP)
        base._poll(lambda: len(self.refusals()) > refused, 10, "a refused SIGHUP reload")
        self.assertEqual(self.version(), before)

        # Fixed: the next change is taken.
        bad.write_text(
            '{"version": "extra", "declarations": [{"state": "TR", '
            '"instrument": "INSTRUMENT_MLA", "applies": true, "source": "test", '
            '"acceptedLanguages": [{"language": "tr", "condition": "LANGUAGE_CONDITION_ALWAYS"}],'
            ' "channel": "CHANNEL_CENTRAL_AUTHORITY", "competentAuthorities": [{"authority": '
            '{"authorityId": "TR-PROSECUTOR", "state": "TR"}, "timeZone": "Europe/Istanbul"}]}]}')
        base._poll(lambda: self.version() != before, 10, "the fixed registry in use")
        tr = self.routing_stub().GetDeclaration(pb.GetDeclarationRequest(state="TR"), timeout=5)
        self.assertEqual(tr.declarations[0].accepted_languages[0].language, "tr")

    def test_service_refuses_to_start_on_a_broken_registry(self):
        broken = self.workdir / "broken-registry"
        broken.mkdir()
        (broken / "de.json").write_text('{"declarations": [\n{"state": "DE"\n')
        service = self.make_service("routing", broken)
        service.port = base.free_port()
        service.process.argv = [a if not a.startswith("--listen=") else
                                f"--listen=127.0.0.1:{service.port}"
                                for a in service.process.argv]
        service.start(wait=False)
        code = service.process.wait(timeout=15)
        self.assertIsNotNone(code, "routing still running on a broken registry")
        self.assertNotEqual(code, 0)
        log = service.log_path.read_text(errors="replace")
        self.assertIn("de.json: line 3: unexpected end of file", log)


class RoutingFlowE2ETest(RoutingE2ETestCase):
    """A request intake accepts is routed from intake's events."""

    SERVICES = ("intake", "routing")

    def test_submitted_request_gets_a_routing_decision(self):
        pb = rc.stubs()
        channel = rc.connect(self.services["intake"].addr, ISSUER)
        self.addCleanup(channel.close)
        intake = pb.intake_grpc.IntakeServiceStub(channel)
        # French judge to Germany, in French: Germany accepts only German.
        submitted = intake.SubmitRequest(pb.intake.SubmitRequestRequest(
            request_id=str(uuid.uuid4()), content=rc.example_eio_content()), timeout=5).request

        def decided():
            try:
                return self.routing_stub().GetRoutingDecision(
                    pb.routing.GetRoutingDecisionRequest(request_id=submitted.id),
                    timeout=2).decision
            except grpc.RpcError as error:
                if error.code() == grpc.StatusCode.NOT_FOUND:
                    return None
                raise

        decision = rc.poll_until(decided, timeout=15)
        self.assertEqual(decision.request_id, submitted.id)
        self.assertTrue(decision.translation_required)
        self.assertEqual(decision.target_language, "de")
        self.assertEqual(decision.competent_authority.authority_id, "DE-PROSECUTOR")
        self.assertEqual(decision.channel, pb.types.CHANNEL_DIRECT_JUDICIAL)
        self.assertIn("TRANSLATION_REQUIRED", [r.code for r in decision.reasons])
        jobs = self.routing_stub().ListTranslationJobs(
            pb.routing.ListTranslationJobsRequest(request_id=submitted.id), timeout=5)
        self.assertEqual(len(jobs.jobs), 0)  # no document uploaded yet
        # Intake records the decision: the request waits for its translation.
        rc.poll_until(
            lambda: intake.GetRequest(pb.intake.GetRequestRequest(id=submitted.id),
                                      timeout=2).request.status
            == pb.types.REQUEST_STATUS_TRANSLATION_PENDING, timeout=15)

    def test_every_shipped_sample_is_routed_and_intake_records_it(self):
        from google.protobuf import json_format
        pb = rc.stubs()
        expected_status = {  # what routing asks intake to set, by the sample's decision
            "INSTRUMENT_PRODUCTION_ORDER": pb.types.REQUEST_STATUS_TRANSLATION_PENDING,
        }
        samples = sorted((base.REPO_ROOT / "samples" / "requests").glob("*.json"))
        self.assertGreaterEqual(len(samples), 7)
        for path in samples:
            with self.subTest(sample=path.name):
                content = json_format.Parse(path.read_text(), pb.intake.RequestContent())
                issuer = rc.Caller(content.issuing_authority.authority_id,
                                   content.issuing_authority.state, ("issuing",))
                channel = rc.connect(self.services["intake"].addr, issuer)
                self.addCleanup(channel.close)
                intake = pb.intake_grpc.IntakeServiceStub(channel)
                submitted = intake.SubmitRequest(pb.intake.SubmitRequestRequest(
                    request_id=str(uuid.uuid4()), content=content), timeout=5).request

                def decided():
                    try:
                        return self.routing_stub(issuer).GetRoutingDecision(
                            pb.routing.GetRoutingDecisionRequest(request_id=submitted.id),
                            timeout=2).decision
                    except grpc.RpcError as error:
                        if error.code() == grpc.StatusCode.NOT_FOUND:
                            return None
                        raise

                decision = rc.poll_until(decided, timeout=15)
                self.assertFalse(decision.unroutable,
                                 [(r.code, r.detail) for r in decision.reasons])
                self.assertTrue(decision.competent_authority.authority_id)
                instrument = pb.types.Instrument.Name(content.instrument)
                if instrument == "INSTRUMENT_PRODUCTION_ORDER":
                    self.assertEqual(decision.competent_authority.authority_id,
                                     content.production_order.service_provider.authority_id)
                    self.assertEqual(decision.notified_authority.state, "IE")
                want = expected_status.get(instrument, pb.types.REQUEST_STATUS_TRANSLATION_PENDING
                                           if decision.translation_required
                                           else pb.types.REQUEST_STATUS_FORWARDED)
                # Intake records the decision: the addressee is the executing authority.
                rc.poll_until(
                    lambda: intake.GetRequest(pb.intake.GetRequestRequest(id=submitted.id),
                                              timeout=2).request.status == want, timeout=15)
                request = intake.GetRequest(pb.intake.GetRequestRequest(id=submitted.id),
                                            timeout=5).request
                self.assertEqual(request.executing_authority.authority_id,
                                 decision.competent_authority.authority_id)

    def test_job_rpcs_are_for_translators_only(self):
        pb = rc.stubs().routing
        claim = pb.ClaimTranslationJobRequest(request_id=str(uuid.uuid4()),
                                              source_languages=["fr"], target_languages=["de"])
        self.assertRpcCode(grpc.StatusCode.PERMISSION_DENIED,
                           self.routing_stub(ISSUER).ClaimTranslationJob, claim, timeout=5)
        self.assertRpcCode(grpc.StatusCode.NOT_FOUND,
                           self.routing_stub(TRANSLATOR).ClaimTranslationJob, claim, timeout=5)


class TranslationJobsE2ETest(RoutingE2ETestCase):
    """Jobs from delivered events, claimed and completed over gRPC by translators."""

    SERVICE = rc.Caller("rogatory-intake", "", ("service",))

    def deliver(self, events):
        import importlib
        sink_grpc = importlib.import_module("rogatory.events.v1.event_sink_pb2_grpc")
        sink = importlib.import_module("rogatory.events.v1.event_sink_pb2")
        channel = rc.connect(self.services["routing"].addr, self.SERVICE)
        self.addCleanup(channel.close)
        stub = sink_grpc.EventSinkServiceStub(channel)
        return stub.DeliverEvents(sink.DeliverEventsRequest(source="intake", events=events),
                                  timeout=5)

    def request_events(self, request_id: str):
        ev, types = rc.stubs().events, rc.stubs().types
        facts = ev.RequestFacts(
            issuing_authority=types.AuthorityRef(authority_id="FR-TJ-PARIS-JI", state="FR"),
            requested_state="DE", source_language="fr", urgency=types.URGENCY_NORMAL)
        submitted = ev.Event(event_id=uuid.uuid4().hex[:26], request_id=request_id, sequence=1,
                             type=ev.EVENT_TYPE_REQUEST_SUBMITTED, source="intake",
                             instrument=types.INSTRUMENT_EIO, request=facts,
                             trace_id=uuid.uuid4().hex)
        document = ev.Event(event_id=uuid.uuid4().hex[:26], request_id=request_id, sequence=2,
                            type=ev.EVENT_TYPE_DOCUMENT_ADDED, source="intake",
                            instrument=types.INSTRUMENT_EIO, request=facts,
                            document=ev.DocumentAdded(document_id="doc-fr-1", language="fr",
                                                      sha256="a" * 64))
        return [submitted, document]

    def test_translators_list_their_queue_and_others_are_refused(self):
        pb = rc.stubs().routing
        request_id = f"rq-5-{uuid.uuid4().hex[:26]}"
        self.assertEqual(self.deliver(self.request_events(request_id)).handled_count, 2)
        claimable = pb.ListTranslationJobsRequest(queue=pb.TRANSLATION_JOB_QUEUE_CLAIMABLE,
                                                  source_languages=["fr"],
                                                  target_languages=["de"])
        # Not a translator (nor an operator): refused.
        self.assertRpcCode(grpc.StatusCode.PERMISSION_DENIED,
                           self.routing_stub(ISSUER).ListTranslationJobs, claimable, timeout=5)
        self.assertRpcCode(grpc.StatusCode.PERMISSION_DENIED,
                           self.routing_stub(ISSUER).ListTranslationJobs,
                           pb.ListTranslationJobsRequest(queue=pb.TRANSLATION_JOB_QUEUE_HELD),
                           timeout=5)
        # Without a queue, a request id is still required.
        error = self.assertRpcCode(grpc.StatusCode.INVALID_ARGUMENT,
                                   self.routing_stub(TRANSLATOR).ListTranslationJobs,
                                   pb.ListTranslationJobsRequest(), timeout=5)
        self.assertIn("request_id", error.details())
        lister = rc.Caller("XL-LISTER", "DE", ("translator",))
        waiting = [j for j in self.routing_stub(lister).ListTranslationJobs(
            claimable, timeout=5).jobs]
        self.assertTrue(waiting)
        for job in waiting:  # metadata only, never the request or the document
            self.assertEqual((job.source_language, job.target_language), ("fr", "de"))
            self.assertEqual(job.status, pb.TRANSLATION_JOB_STATUS_QUEUED)
            self.assertFalse(job.request_id)
            self.assertFalse(job.document_id)
        job = self.routing_stub(lister).ClaimTranslationJob(
            pb.ClaimTranslationJobRequest(source_languages=["fr"], target_languages=["de"]),
            timeout=5).job
        held = self.routing_stub(lister).ListTranslationJobs(
            pb.ListTranslationJobsRequest(queue=pb.TRANSLATION_JOB_QUEUE_HELD), timeout=5).jobs
        self.assertEqual([j.id for j in held], [job.id])
        self.assertEqual(held[0].claimed_by, "XL-LISTER")

    def test_claim_fail_reclaim_and_the_stale_token_is_refused(self):
        pb = rc.stubs().routing
        request_id = f"rq-3-{uuid.uuid4().hex[:26]}"
        events = self.request_events(request_id)
        self.assertEqual(self.deliver(events).handled_count, 2)
        again = self.deliver(events)
        self.assertEqual((again.handled_count, again.duplicate_count), (2, 2))

        first, second = rc.Caller("XL-ONE", "DE", ("translator",)), \
            rc.Caller("XL-TWO", "DE", ("translator",))
        claim = pb.ClaimTranslationJobRequest(source_languages=["fr"], target_languages=["de"])
        job = self.routing_stub(first).ClaimTranslationJob(claim, timeout=5).job
        self.assertEqual((job.request_id, job.document_id, job.target_language),
                         (request_id, "doc-fr-1", "de"))
        self.assertEqual(job.status, pb.TRANSLATION_JOB_STATUS_CLAIMED)
        self.assertEqual(job.claimed_by, "XL-ONE")
        beat = self.routing_stub(first).HeartbeatTranslationJob(
            pb.HeartbeatTranslationJobRequest(job_id=job.id, lease_token=job.lease_token),
            timeout=5).job
        self.assertEqual(beat.lease_token, job.lease_token)
        failed = self.routing_stub(first).FailTranslationJob(
            pb.FailTranslationJobRequest(job_id=job.id, lease_token=job.lease_token,
                                         failure_code="TRANSLATOR_UNAVAILABLE", retryable=True),
            timeout=5).job
        self.assertEqual(failed.status, pb.TRANSLATION_JOB_STATUS_QUEUED)

        again = self.routing_stub(second).ClaimTranslationJob(claim, timeout=5).job
        self.assertEqual(again.id, job.id)
        self.assertGreater(again.lease_token, job.lease_token)
        complete = pb.CompleteTranslationJobRequest(
            job_id=job.id, lease_token=job.lease_token, translated_document_id="doc-de-1",
            translated_document_sha256="b" * 64)
        # The job is XL-TWO's now: XL-ONE gets the answer of a missing job, with its own
        # stale token and with XL-TWO's live one alike (issue 16, item 15).
        answers = []
        for token in (job.lease_token, again.lease_token):
            complete.lease_token = token
            with self.assertRaises(grpc.RpcError) as raised:
                self.routing_stub(first).CompleteTranslationJob(complete, timeout=5)
            answers.append((raised.exception.code(), raised.exception.details()))
        self.assertEqual(answers[0], answers[1])
        self.assertEqual(answers[0][0], grpc.StatusCode.NOT_FOUND)
        done = self.routing_stub(second).CompleteTranslationJob(complete, timeout=5).job
        self.assertEqual(done.status, pb.TRANSLATION_JOB_STATUS_COMPLETED)
        fetched = self.routing_stub().GetTranslationJob(
            pb.GetTranslationJobRequest(job_id=job.id), timeout=5).job
        self.assertEqual((fetched.translated_document_id, fetched.translated_document_sha256),
                         ("doc-de-1", "b" * 64))
        self.assertRpcCode(grpc.StatusCode.NOT_FOUND,
                           self.routing_stub(second).ClaimTranslationJob, claim, timeout=5)

        import urllib.request
        metrics = urllib.request.urlopen(self.services["routing"].metrics_url,
                                         timeout=5).read().decode()
        self.assertIn("rogatory_translation_claims_total 2", metrics)
        self.assertIn("rogatory_translation_completions_total 1", metrics)
        self.assertIn("rogatory_translation_turnaround_seconds_count 1", metrics)


    # ---- errors from several paths carry their ErrorInfo reason (issue 20, item 2) -----

    def test_every_refusal_carries_error_info_with_its_reason(self):
        pb = rc.stubs().routing
        invalid, not_found = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
        translator = self.routing_stub(TRANSLATOR)
        # A bad field: no queue and no request id.
        self.assertReason("INVALID_FIELD", invalid, translator.ListTranslationJobs,
                          pb.ListTranslationJobsRequest(), timeout=5)
        # An unknown id.
        unknown = f"tj-3-{uuid.uuid4().hex[:26]}"
        self.assertReason("NOT_FOUND", not_found, self.routing_stub().GetTranslationJob,
                          pb.GetTranslationJobRequest(job_id=unknown), timeout=5)
        # Denied: an issuing authority is no translator.
        self.assertReason("PERMISSION_DENIED", grpc.StatusCode.PERMISSION_DENIED,
                          self.routing_stub(ISSUER).ListTranslationJobs,
                          pb.ListTranslationJobsRequest(queue=pb.TRANSLATION_JOB_QUEUE_HELD),
                          timeout=5)
        # A page token this query never issued.
        self.assertReason("PAGE_TOKEN_INVALID", invalid, self.routing_stub().ListDeclarations,
                          pb.ListDeclarationsRequest(page_token="not-a-token"), timeout=5)
        # No caller at all.
        channel = rc.connect(self.services["routing"].addr)
        self.addCleanup(channel.close)
        anonymous = rc.stubs().routing_grpc.TranslationRoutingServiceStub(channel)
        self.assertReason("UNAUTHENTICATED", grpc.StatusCode.UNAUTHENTICATED,
                          anonymous.ListDeclarations, pb.ListDeclarationsRequest(), timeout=5)

        # A job claimed by another translator: answered as a missing job (issue 16, item 15).
        request_id = f"rq-4-{uuid.uuid4().hex[:26]}"
        self.assertEqual(self.deliver(self.request_events(request_id)).handled_count, 2)
        owner, other = rc.Caller("XL-OWNER", "DE", ("translator",)), \
            rc.Caller("XL-OTHER", "DE", ("translator",))
        job = self.routing_stub(owner).ClaimTranslationJob(
            pb.ClaimTranslationJobRequest(request_id=request_id, source_languages=["fr"],
                                          target_languages=["de"]), timeout=5).job
        beat = pb.HeartbeatTranslationJobRequest(job_id=job.id, lease_token=job.lease_token)
        self.assertReason("NOT_FOUND", not_found,
                          self.routing_stub(other).HeartbeatTranslationJob, beat, timeout=5)
        # The holder with a lease token it does not hold: its job exists, the lease is wrong.
        beat.lease_token = job.lease_token + 1
        self.assertReason("FAILED_PRECONDITION", grpc.StatusCode.FAILED_PRECONDITION,
                          self.routing_stub(owner).HeartbeatTranslationJob, beat, timeout=5)

    def test_request_bytes_that_do_not_parse_are_malformed_request(self):
        channel = rc.connect(self.services["routing"].addr, TRANSLATOR)
        self.addCleanup(channel.close)
        raw = channel.unary_unary(
            "/rogatory.routing.v1.TranslationRoutingService/GetTranslationJob",
            request_serializer=None, response_deserializer=None)
        # Field 1 (job_id) as length-delimited with a length past the end of the bytes.
        self.assertReason("MALFORMED_REQUEST", grpc.StatusCode.INVALID_ARGUMENT, raw,
                          b"\x0a\x7f\x01", timeout=5)


def main() -> int:
    return base.run_tests("rogatory-routing-e2e-", __doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
