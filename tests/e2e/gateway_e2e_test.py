#!/usr/bin/python3
"""End-to-end tests of rogatory-gateway, the browser path (issue 20, items 3 and 6).

A private Redis, the four real services and the gateway (services/gateway/dist, built by
tools/web/build.sh) on free loopback ports; every call goes over HTTP/1.1 as a browser's
would, in the Connect protocol (JSON) or gRPC-Web (binary and base64 text), and the answers
are checked as the specs map them: Connect errors as HTTP statuses with a JSON code,
gRPC-Web errors as grpc-status trailers. Run by ctest as::

    /usr/bin/python3 tests/e2e/gateway_e2e_test.py --bin-dir <build>/bin
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pathlib
import re
import subprocess
import sys
import threading
import uuid

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import intake_e2e_test as base  # noqa: E402
import gateway_support as gw  # noqa: E402

rc = base.rc
INTAKE = "/rogatory.intake.v1.IntakeService"
NOTIFICATION = "/rogatory.notification.v1.NotificationService"
ORIGIN = "https://app.rogatory.test"
SAMPLE = base.REPO_ROOT / "samples" / "requests" / "eio-fr-de.json"
MAKE_CERTS = base.REPO_ROOT / "deploy" / "tls" / "make-certs.sh"

# gRPC codes, as numbers on the wire.
OK, CANCELLED, INVALID_ARGUMENT, DEADLINE_EXCEEDED = 0, 1, 3, 4
RESOURCE_EXHAUSTED, UNIMPLEMENTED, UNAVAILABLE, UNAUTHENTICATED = 8, 12, 14, 16


def sample_content(note: str) -> dict:
    content = json.loads(SAMPLE.read_text())
    content["issuerReference"] = f"JI-GW-{note} (fictitious)"
    return content


def connect_error_info(body) -> dict:
    """The one google.rpc.ErrorInfo of a Connect error body, in its decoded `debug` form
    (and checked against its binary `value`)."""
    infos = [d for d in (body or {}).get("details", []) if d["type"] == "google.rpc.ErrorInfo"]
    assert len(infos) == 1, body
    binary = rc.stubs().error_details.ErrorInfo.FromString(
        base64.b64decode(infos[0]["value"] + "=" * (-len(infos[0]["value"]) % 4)))
    assert binary.reason == infos[0]["debug"]["reason"], (binary, infos)
    return infos[0]["debug"]


def grpc_web_error_info(result: gw.GrpcWebResult):
    """The one google.rpc.ErrorInfo of a gRPC-Web error (grpc-status-details-bin)."""
    status_pb = result.status_details()
    assert status_pb is not None, ("no grpc-status-details-bin", result.grpc_message)
    infos = []
    for any_pb in status_pb.details:
        info = rc.stubs().error_details.ErrorInfo()
        if any_pb.Unpack(info):
            infos.append(info)
    assert len(infos) == 1, status_pb
    return infos[0]


class GatewayTest(base.E2ETestCase):
    SERVICES = ("intake", "routing", "deadlines", "notification")

    @classmethod
    def setUpClass(cls) -> None:
        gw.require_web_build()
        super().setUpClass()
        cls.ports = {name: s.port for name, s in cls.services.items()}
        cls.gateway = gw.GatewayProcess(
            cls.workdir, cls.ports,
            [f"--allowed-origins={ORIGIN}", "--dev-token",
             f"--dev-token-key-file={rc.DEV_KEY_FILE}", "--log-level=debug"])
        cls.addClassCleanup(cls.gateway.stop)
        cls.gateway.start()
        cls.port = cls.gateway.port
        cls.token = cls.gateway.dev_token("FR-TJ-PARIS-JI", "FR", ["issuing"])
        status, body = gw.connect_unary(
            cls.port, f"{INTAKE}/SubmitRequest",
            {"requestId": str(uuid.uuid4()), "content": sample_content("setup")}, cls.token)
        assert status == 200, (status, body)
        cls.request_id = body["request"]["id"]

    # ---- the three wire formats work -----------------------------------------------------

    def test_connect_json_submission_returns_the_request_and_get_reads_it(self):
        status, body = gw.connect_unary(
            self.port, f"{INTAKE}/SubmitRequest",
            {"requestId": str(uuid.uuid4()), "content": sample_content("connect")}, self.token)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["request"]["content"]["requestedState"], "DE")
        status, got = gw.connect_unary(self.port, f"{INTAKE}/GetRequest",
                                       {"id": body["request"]["id"]}, self.token)
        self.assertEqual(status, 200, got)
        self.assertEqual(got["request"]["id"], body["request"]["id"])

    def test_grpc_web_binary_and_text_unary_calls_return_the_message(self):
        pb = rc.stubs()
        message = pb.intake.GetRequestRequest(id=self.request_id).SerializeToString()
        for text in (False, True):
            with self.subTest(text=text):
                result = gw.grpc_web_call(self.port, f"{INTAKE}/GetRequest", message,
                                          text=text, token=self.token)
                self.assertEqual(result.http_status, 200)
                self.assertEqual(result.grpc_status, OK, result.grpc_message)
                self.assertTrue(result.headers["content-type"].startswith(
                    "application/grpc-web-text" if text else "application/grpc-web+proto"))
                self.assertEqual(len(result.messages), 1)
                response = pb.intake.GetRequestResponse.FromString(result.messages[0])
                self.assertEqual(response.request.id, self.request_id)

    def test_a_browser_uploads_a_document_in_chunks_over_connect_and_downloads_it(self):
        data = os.urandom((1 << 20) + 300_000)  # a full 1 MiB chunk (~1.4 MB as JSON) and a rest
        status, started = gw.connect_unary(self.port, f"{INTAKE}/StartDocumentUpload", {
            "metadata": {"requestId": str(uuid.uuid4()), "id": self.request_id,
                         "kind": "DOCUMENT_KIND_REQUEST_FORM", "language": "fr",
                         "mediaType": "application/pdf", "title": "Annex C",
                         "sha256": hashlib.sha256(data).hexdigest()}}, self.token)
        self.assertEqual(status, 200, started)
        upload_id = started["uploadId"]
        for at in range(0, len(data), 1 << 20):
            part = data[at:at + (1 << 20)]
            chunk = {"uploadId": upload_id, "offset": str(at),
                     "chunk": base64.b64encode(part).decode()}
            status, body = gw.connect_unary(self.port, f"{INTAKE}/UploadDocumentChunk", chunk,
                                            self.token)
            self.assertEqual(status, 200, body)
            self.assertEqual(int(body["receivedBytes"]), at + len(part))
            if at == 0:  # a retried chunk (its answer lost) is harmless
                status, body = gw.connect_unary(self.port, f"{INTAKE}/UploadDocumentChunk",
                                                chunk, self.token)
                self.assertEqual((status, int(body["receivedBytes"])), (200, len(part)), body)
        status, body = gw.connect_unary(self.port, f"{INTAKE}/UploadDocumentChunk",
                                        {"uploadId": upload_id, "offset": "5",
                                         "chunk": base64.b64encode(b"late").decode()}, self.token)
        self.assertEqual((status, body["code"]), (400, "invalid_argument"), body)
        self.assertIn("offset", body["message"])
        status, committed = gw.connect_unary(self.port, f"{INTAKE}/CommitDocumentUpload",
                                             {"uploadId": upload_id}, self.token)
        self.assertEqual(status, 200, committed)
        document = committed["document"]
        self.assertEqual(int(document["sizeBytes"]), len(data))
        self.assertEqual(document["sha256"], hashlib.sha256(data).hexdigest())
        pb = rc.stubs()
        result = gw.grpc_web_call(
            self.port, f"{INTAKE}/DownloadDocument",
            pb.intake.DownloadDocumentRequest(id=self.request_id,
                                              document_id=document["id"]).SerializeToString(),
            token=self.token)
        self.assertEqual(result.grpc_status, OK, result.grpc_message)
        received = b"".join(pb.intake.DownloadDocumentResponse.FromString(m).chunk
                            for m in result.messages)
        self.assertTrue(received == data, "downloaded bytes differ")

    def test_grpc_web_binary_and_text_subscribe_streams_the_callers_notifications(self):
        pb = rc.stubs()
        message = pb.notification.SubscribeRequest(
            start_position=pb.notification.START_POSITION_OLDEST).SerializeToString()

        def first_notification(text: bool):
            def probe():
                result = gw.grpc_web_call(
                    self.port, f"{NOTIFICATION}/Subscribe", message, text=text,
                    token=self.token, headers={"grpc-timeout": "5S"},
                    until=lambda msgs: any(
                        pb.notification.SubscribeResponse.FromString(m).HasField(
                            "notification") for m in msgs))
                self.assertIn(result.grpc_status, (None, OK, DEADLINE_EXCEEDED),
                              result.grpc_message)
                items = [pb.notification.SubscribeResponse.FromString(m)
                         for m in result.messages]
                return [i.notification for i in items if i.HasField("notification")]
            return base._poll(probe, 30, f"a notification over gRPC-Web (text={text})")

        for text in (False, True):
            with self.subTest(text=text):
                notes = first_notification(text)
                self.assertEqual(notes[0].recipient.authority_id, "FR-TJ-PARIS-JI")
                self.assertTrue(notes[0].cursor)

    def test_the_callers_deadline_is_forwarded_and_ends_a_stream(self):
        pb = rc.stubs()
        message = pb.notification.SubscribeRequest(
            start_position=pb.notification.START_POSITION_LIVE).SerializeToString()
        result = gw.grpc_web_call(self.port, f"{NOTIFICATION}/Subscribe", message,
                                  token=self.token, headers={"grpc-timeout": "300m"})
        self.assertEqual(result.grpc_status, DEADLINE_EXCEEDED, result.grpc_message)

    def test_a_browser_closing_a_stream_cancels_it_at_the_service(self):
        pb = rc.stubs()
        notification = self.services["notification"]
        pattern = re.compile(r'grpc_server_handled_total\{[^}]*grpc_code="Canceled"[^}]*'
                             r'grpc_method="Subscribe"[^}]*\} (\d+)|grpc_server_handled_total'
                             r'\{[^}]*grpc_method="Subscribe"[^}]*grpc_code="Canceled"[^}]*\} (\d+)')

        def cancelled() -> int:
            text = urllib_get(notification.metrics_url)
            return sum(int(a or b) for a, b in pattern.findall(text))

        before = cancelled()
        message = pb.notification.SubscribeRequest(
            start_position=pb.notification.START_POSITION_OLDEST).SerializeToString()
        result = gw.grpc_web_call(self.port, f"{NOTIFICATION}/Subscribe", message,
                                  token=self.token, until=lambda msgs: len(msgs) >= 1)
        self.assertGreaterEqual(len(result.messages), 1)  # closed while the stream was open
        base._poll(lambda: cancelled() > before, 20, "the service saw the stream cancelled")

    def test_sigterm_ends_open_streams_with_unavailable_and_exits_cleanly(self):
        gateway = gw.GatewayProcess(self.workdir, self.ports, [], name="gateway-drain")
        self.addCleanup(gateway.stop)
        gateway.start()
        pb = rc.stubs()
        message = pb.notification.SubscribeRequest(
            start_position=pb.notification.START_POSITION_LIVE).SerializeToString()
        results = {}

        def subscribe() -> None:
            results["stream"] = gw.grpc_web_call(gateway.port, f"{NOTIFICATION}/Subscribe",
                                                 message, token=self.token,
                                                 headers={"grpc-timeout": "60S"}, timeout=60)

        thread = threading.Thread(target=subscribe)
        thread.start()
        base._poll(lambda: 'rogatory_gateway_streams_opened_total{grpc_method="Subscribe"} 1'
                   in gateway.metrics(), 15, "the stream open at the gateway")
        self.assertEqual(gateway.stop(), 0)
        thread.join(30)
        self.assertFalse(thread.is_alive(), "the stream outlived the gateway")
        self.assertEqual(results["stream"].grpc_status, UNAVAILABLE,
                         results["stream"].grpc_message)
        self.assertReason(grpc_web_error_info(results["stream"]), "STORE_UNAVAILABLE")

    # ---- bad input gets a clear status and never reaches a service ------------------------

    def test_malformed_json_and_protobuf_are_invalid_argument(self):
        status, _, body = gw.request(self.port, "POST", f"{INTAKE}/GetRequest", b"{not json",
                                     {"content-type": "application/json",
                                      "authorization": f"Bearer {self.token}"})
        self.assertEqual(status, 400)
        self.assertEqual(json.loads(body)["code"], "invalid_argument")
        self.assertReason(connect_error_info(json.loads(body)), "MALFORMED_REQUEST")
        # JSON that parses but is not the request message (a field it does not have).
        status, body = gw.connect_unary(self.port, f"{INTAKE}/GetRequest", {"noSuchField": 1},
                                        self.token)
        self.assertEqual(status, 400, body)
        self.assertReason(connect_error_info(body), "MALFORMED_REQUEST")
        result = gw.grpc_web_call(self.port, f"{INTAKE}/GetRequest", b"\xff\xff\xff\xff",
                                  token=self.token)
        self.assertEqual(result.grpc_status, INVALID_ARGUMENT, result.grpc_message)
        self.assertReason(grpc_web_error_info(result), "MALFORMED_REQUEST")
        result = gw.grpc_web_call(self.port, f"{INTAKE}/GetRequest", b"", text=True,
                                  token=self.token, raw_body=b"%%%not base64%%%")
        self.assertEqual(result.grpc_status, INVALID_ARGUMENT, result.grpc_message)
        self.assertReason(grpc_web_error_info(result), "MALFORMED_REQUEST")
        # A Connect stream in binary: HTTP 200, the error in the end-of-stream message.
        status, headers, body = gw.request(
            self.port, "POST", f"{NOTIFICATION}/Subscribe", gw.frame(b"\xff\xff\xff"),
            {"content-type": "application/connect+proto", "connect-protocol-version": "1",
             "authorization": f"Bearer {self.token}"})
        self.assertEqual(status, 200)
        self.assertEqual(body[0], 0x02, body)  # end-of-stream flag
        end = json.loads(body[5:])
        self.assertEqual(end["error"]["code"], "invalid_argument", end)
        self.assertReason(connect_error_info(end["error"]), "MALFORMED_REQUEST")

    def assertReason(self, info, reason: str) -> None:
        """An ErrorInfo (decoded JSON dict or protobuf) has domain rogatory and this reason."""
        domain = info["domain"] if isinstance(info, dict) else info.domain
        actual = info["reason"] if isinstance(info, dict) else info.reason
        self.assertEqual(domain, "rogatory", info)
        self.assertEqual(actual, reason, info)

    def test_a_connect_call_connect_es_refuses_itself_still_carries_error_info(self):
        # An unparsable deadline header is refused by the protocol library before any
        # handler runs; the gateway adds the code's default reason to its answer.
        status, _, body = gw.request(
            self.port, "POST", f"{INTAKE}/GetRequest", json.dumps({"id": "x"}).encode(),
            {"content-type": "application/json", "connect-timeout-ms": "soon",
             "authorization": f"Bearer {self.token}"})
        error = json.loads(body)
        self.assertEqual((status, error["code"]), (400, "invalid_argument"), error)
        self.assertReason(connect_error_info(error), "INVALID_FIELD")

    def test_wrong_content_type_is_unsupported_media_type(self):
        status, _, body = gw.request(self.port, "POST", f"{INTAKE}/GetRequest", b"id=x",
                                     {"content-type": "application/x-www-form-urlencoded",
                                      "authorization": f"Bearer {self.token}"})
        self.assertEqual(status, 415)
        error = json.loads(body)
        self.assertEqual(error["code"], "invalid_argument", error)
        self.assertReason(connect_error_info(error), "MALFORMED_REQUEST")

    def test_oversized_bodies_are_resource_exhausted(self):
        big = "x" * (2 << 20)
        status, body = gw.connect_unary(self.port, f"{INTAKE}/GetRequest", {"id": big},
                                        self.token)
        self.assertEqual(status, 429, body)  # Connect maps resource_exhausted to HTTP 429
        self.assertEqual(body["code"], "resource_exhausted")
        self.assertReason(connect_error_info(body), "MESSAGE_TOO_LARGE")
        pb = rc.stubs()
        message = pb.intake.GetRequestRequest(id=big).SerializeToString()
        for text in (False, True):
            with self.subTest(text=text):
                result = gw.grpc_web_call(self.port, f"{INTAKE}/GetRequest", message,
                                          text=text, token=self.token)
                self.assertEqual(result.grpc_status, RESOURCE_EXHAUSTED, result.grpc_message)
                self.assertReason(grpc_web_error_info(result), "MESSAGE_TOO_LARGE")

    def test_unknown_and_non_allow_listed_methods_are_unimplemented_at_the_gateway(self):
        notification = self.services["notification"]
        publish = re.compile(r'grpc_server_started_total\{[^}]*grpc_method="PublishEvent"'
                             r'[^}]*\} (\d+)')

        def publish_calls() -> int:
            return sum(int(n) for n in publish.findall(urllib_get(notification.metrics_url)))

        before = publish_calls()
        paths = [
            f"{INTAKE}/NoSuchMethod",
            "/rogatory.nosuch.v1.Service/Method",
            f"{NOTIFICATION}/PublishEvent",
            "/rogatory.admin.v1.TestClockService/AdvanceTime",
            "/rogatory.admin.v1.AuditService/ListAuditEntries",
            "/rogatory.events.v1.EventSinkService/DeliverEvents",
            f"{INTAKE}/UploadDocument",
            "/grpc.health.v1.Health/Check",
        ]
        for path in paths:
            with self.subTest(path=path, protocol="connect"):
                status, body = gw.connect_unary(self.port, path, {}, self.token)
                self.assertEqual(status, 404)
                self.assertEqual(body["code"], "unimplemented")
                self.assertReason(connect_error_info(body), "UNIMPLEMENTED")
            for text in (False, True):
                with self.subTest(path=path, protocol="grpc-web", text=text):
                    result = gw.grpc_web_call(self.port, path, b"", text=text,
                                              token=self.token)
                    self.assertEqual(result.grpc_status, UNIMPLEMENTED)
                    self.assertReason(grpc_web_error_info(result), "UNIMPLEMENTED")
        self.assertEqual(publish_calls(), before, "PublishEvent reached the service")
        metrics = self.gateway.metrics()
        self.assertNotIn("NoSuchMethod", metrics)  # bounded labels: one value for unknowns
        self.assertRegex(metrics, r'grpc_server_handled_total\{grpc_service="unknown",'
                                  r'grpc_method="unknown",grpc_type="unknown",'
                                  r'grpc_code="Unimplemented"\} \d+')

    def test_missing_token_is_unauthenticated(self):
        status, body = gw.connect_unary(self.port, f"{INTAKE}/GetRequest",
                                        {"id": self.request_id})
        self.assertEqual(status, 401, body)
        self.assertEqual(body["code"], "unauthenticated")
        self.assertReason(connect_error_info(body), "UNAUTHENTICATED")
        pb = rc.stubs()
        for text in (False, True):
            with self.subTest(text=text):
                result = gw.grpc_web_call(self.port, f"{INTAKE}/GetRequest",
                                          pb.intake.GetRequestRequest(id=self.request_id)
                                          .SerializeToString(), text=text)
                self.assertEqual(result.grpc_status, UNAUTHENTICATED)
                self.assertReason(grpc_web_error_info(result), "UNAUTHENTICATED")

    def test_invalid_submission_brings_bad_request_details_to_the_browser(self):
        content = sample_content("bad")
        del content["statementOfFacts"]
        content["requestedState"] = "XX"
        status, body = gw.connect_unary(self.port, f"{INTAKE}/SubmitRequest",
                                        {"requestId": str(uuid.uuid4()), "content": content},
                                        self.token)
        self.assertEqual(status, 400, body)
        self.assertEqual(body["code"], "invalid_argument")
        details = [d for d in body.get("details", []) if d["type"] == "google.rpc.BadRequest"]
        self.assertEqual(len(details), 1, body)
        fields = [v["field"] for v in details[0]["debug"]["fieldViolations"]]
        self.assertTrue(any("requested_state" in f or "requestedState" in f for f in fields),
                        fields)
        # The reason a UI switches on (errors.proto), decoded for Connect JSON clients too.
        infos = [d for d in body["details"] if d["type"] == "google.rpc.ErrorInfo"]
        self.assertEqual(len(infos), 1, body)
        self.assertEqual(infos[0]["debug"]["domain"], "rogatory", infos)
        self.assertEqual(infos[0]["debug"]["reason"], "INVALID_FIELD", infos)

        pb = rc.stubs()
        message = pb.intake.SubmitRequestRequest(
            request_id=str(uuid.uuid4()),
            content=rc.example_eio_content(requested_state="XX")).SerializeToString()
        for text in (False, True):
            with self.subTest(text=text):
                result = gw.grpc_web_call(self.port, f"{INTAKE}/SubmitRequest", message,
                                          text=text, token=self.token)
                self.assertEqual(result.grpc_status, INVALID_ARGUMENT)
                status_pb = result.status_details()
                self.assertIsNotNone(status_pb, "no grpc-status-details-bin")
                bad = pb.error_details.BadRequest()
                self.assertTrue(status_pb.details[0].Unpack(bad))
                self.assertTrue(any("requested_state" in v.field
                                    for v in bad.field_violations), bad)

    # ---- CORS --------------------------------------------------------------------------

    def test_cors_preflight_is_allowed_for_a_configured_origin_only(self):
        preflight = {"access-control-request-method": "POST",
                     "access-control-request-headers": "authorization,content-type"}
        status, headers, _ = gw.request(self.port, "OPTIONS", f"{INTAKE}/GetRequest", b"",
                                        {"origin": ORIGIN, **preflight})
        self.assertEqual(status, 204)
        self.assertEqual(headers.get("access-control-allow-origin"), ORIGIN)
        self.assertIn("authorization", headers["access-control-allow-headers"].lower())
        self.assertIn("grpc-status-details-bin",
                      headers["access-control-expose-headers"].lower())

        other = "https://elsewhere.example"
        status, headers, _ = gw.request(self.port, "OPTIONS", f"{INTAKE}/GetRequest", b"",
                                        {"origin": other, **preflight})
        self.assertEqual(status, 403)
        self.assertNotIn("access-control-allow-origin", headers)
        # The call itself from that origin is refused too, whatever the browser would do.
        status, headers, body = gw.request(
            self.port, "POST", f"{INTAKE}/GetRequest",
            json.dumps({"id": self.request_id}).encode(),
            {"origin": other, "content-type": "application/json",
             "authorization": f"Bearer {self.token}"})
        self.assertEqual(status, 403)
        self.assertNotIn("access-control-allow-origin", headers)
        self.assertReason(connect_error_info(json.loads(body)), "PERMISSION_DENIED")
        status, body = gw.connect_unary(self.port, f"{INTAKE}/GetRequest",
                                        {"id": self.request_id}, self.token,
                                        headers={"origin": ORIGIN})
        self.assertEqual(status, 200, body)

    # ---- operations ----------------------------------------------------------------------

    def test_metrics_count_calls_by_method_and_code(self):
        gw.connect_unary(self.port, f"{INTAKE}/GetRequest", {"id": self.request_id}, self.token)
        metrics = self.gateway.metrics()
        self.assertRegex(metrics, r'grpc_server_handled_total\{grpc_service="rogatory.intake.v1.'
                                  r'IntakeService",grpc_method="GetRequest",grpc_type="unary",'
                                  r'grpc_code="OK"\} [1-9]')
        self.assertIn('grpc_server_handling_seconds_bucket{le="0.005",grpc_service=', metrics)

    def test_logs_are_json_lines_without_tokens(self):
        token = self.gateway.dev_token("FR-TJ-LYON-JI", "FR", ["issuing"])
        gw.connect_unary(self.port, f"{INTAKE}/GetRequest", {"id": self.request_id}, token)
        gw.connect_unary(self.port, f"{INTAKE}/GetRequest", {"id": "x" * 40}, token)
        text = self.gateway.process.log_path.read_text()
        lines = [line for line in text.splitlines() if not line.startswith("---- start")]
        self.assertTrue(any('"msg":"call"' in line for line in lines), "no call was logged")
        for line in lines:
            entry = json.loads(line)
            self.assertEqual(entry["service"], "rogatory-gateway")
        self.assertNotIn(token, text)
        self.assertNotIn(token.split(".")[2], text)
        self.assertNotIn(self.token.split(".")[2], text)
        self.assertNotIn("FR-TJ-LYON-JI", text)


class GatewayStartupTest(base.E2ETestCase):
    """Start-up refusals and shutdown, with no service behind the gateway."""

    SERVICES = ()

    @classmethod
    def setUpClass(cls) -> None:
        gw.require_web_build()
        super().setUpClass()
        cls.ports = {n: base.free_port() for n in ("intake", "routing", "deadlines",
                                                    "notification")}

    def test_production_refuses_the_development_token_endpoint(self):
        gateway = gw.GatewayProcess(self.workdir, self.ports,
                                    ["--env=production", "--dev-token",
                                     f"--dev-token-key-file={rc.DEV_KEY_FILE}"], name="prod")
        gateway.process.start()
        code = gateway.process.wait(15)
        self.assertEqual(code, 2)
        self.assertIn("refused with env=production", gateway.process.log_tail())

    def test_without_the_setting_dev_token_is_not_found_and_sigterm_stops_cleanly(self):
        gateway = gw.GatewayProcess(self.workdir, self.ports, [], name="plain")
        self.addCleanup(gateway.stop)
        gateway.start()
        status, _, _ = gw.request(gateway.port, "POST", "/dev/token",
                                  b'{"sub":"X","state":"FR","roles":["issuing"]}',
                                  {"content-type": "application/json"})
        self.assertEqual(status, 404)
        # No service listens behind it: a call answers UNAVAILABLE (HTTP 503), not a hang.
        status, body = gw.connect_unary(gateway.port, f"{INTAKE}/GetRequest", {"id": "x"},
                                        "not-a-token")
        self.assertEqual((status, body["code"]), (503, "unavailable"))
        info = connect_error_info(body)
        self.assertEqual((info["domain"], info["reason"]), ("rogatory", "STORE_UNAVAILABLE"))
        self.assertEqual(gateway.stop(), 0)


class GatewayMutualTlsTest(base.E2ETestCase):
    """The gateway in front of intake run with tls=mtls (deploy/tls/make-certs.sh's
    development CA): it verifies the service's certificate and presents its client one."""

    SERVICES = ()

    @classmethod
    def setUpClass(cls) -> None:
        gw.require_web_build()
        super().setUpClass()
        cls.certs = cls.workdir / "certs"
        subprocess.run([str(MAKE_CERTS), str(cls.certs)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ports = {name: base.free_port() for name in base.SERVICE_NAMES}
        intake = base.ServiceProcess("intake", cls.redis, cls.workdir, ports)
        health_port = base.free_port()
        intake.process.argv += [
            "--tls=mtls", f"--tls-cert-file={cls.certs / 'intake.crt'}",
            f"--tls-key-file={cls.certs / 'intake.key'}", f"--tls-ca-file={cls.certs / 'ca.crt'}",
            f"--health-listen=127.0.0.1:{health_port}"]
        cls.addClassCleanup(intake.stop)
        intake.start(wait=False)
        base._poll(lambda: rc.health_check(f"127.0.0.1:{health_port}",
                                           base.SERVICE_NAMES["intake"], timeout=1.0)
                   == "SERVING", 20, "intake (mTLS) ready")
        cls.with_cert = gw.GatewayProcess(
            cls.workdir, ports,
            [f"--tls-ca-file={cls.certs / 'ca.crt'}",
             f"--tls-client-cert-file={cls.certs / 'client.crt'}",
             f"--tls-client-key-file={cls.certs / 'client.key'}"], name="gateway-mtls")
        cls.addClassCleanup(cls.with_cert.stop)
        cls.with_cert.start()
        cls.without_cert = gw.GatewayProcess(
            cls.workdir, ports, [f"--tls-ca-file={cls.certs / 'ca.crt'}"], name="gateway-tls")
        cls.addClassCleanup(cls.without_cert.stop)
        cls.without_cert.start()

    def test_calls_reach_an_mtls_service_only_with_the_client_certificate(self):
        token = rc.Caller("FR-TJ-PARIS-JI", "FR", ("issuing",)).bearer_token()
        status, body = gw.connect_unary(self.with_cert.port, f"{INTAKE}/ListRequests",
                                        {"pageSize": 5}, token)
        self.assertEqual(status, 200, body)
        status, body = gw.connect_unary(self.without_cert.port, f"{INTAKE}/ListRequests",
                                        {"pageSize": 5}, token)
        self.assertEqual((status, body["code"]), (503, "unavailable"), body)


def urllib_get(url: str) -> str:
    import urllib.request
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.read().decode()


if __name__ == "__main__":
    sys.exit(base.run_tests("rogatory-gateway-e2e-", __doc__.splitlines()[0]))
