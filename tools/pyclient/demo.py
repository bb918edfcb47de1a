#!/usr/bin/python3
"""A guided tour of a running Rogatory deployment, used by deploy/local/run.sh.

It checks that the four services are up (health and reflection), has a French
investigating judge submit a European Investigation Order to Germany, reads it back,
lists requests, shows how a malformed request is refused field by field, and prints the
gRPC server counters from each metrics page.

    /usr/bin/python3 tools/pyclient/demo.py --intake 127.0.0.1:50051 \\
        --routing 127.0.0.1:50052 --deadlines 127.0.0.1:50053 \\
        --notification 127.0.0.1:50054 \\
        --metrics-urls http://127.0.0.1:9464/metrics,http://127.0.0.1:9465/metrics,...

The subject of the demo request is made up, and the demo still never prints personal
data: only ids, statuses, states, languages and counts. Exits 1 if any step fails.
"""

from __future__ import annotations

import argparse
import sys
import traceback
import urllib.request
import uuid
from typing import Callable

import grpc

import rogatory_client as rc

#: The demo's caller: an investigating judge at the Paris judicial court.
JUDGE = rc.Caller("FR-TJ-PARIS-JI", "FR", ("issuing",))


class Story:
    """Runs the demo's steps in order, printing each, and remembers which failed."""

    def __init__(self) -> None:
        self.failures: list[str] = []
        self._number = 0

    def step(self, title: str, action: Callable[[], None]) -> bool:
        self._number += 1
        print(f"\n== {self._number}. {title}")
        try:
            action()
            return True
        except grpc.RpcError as error:
            self._fail(title, f"{error.code().name}: {error.details()}")
        except Exception as error:  # noqa: BLE001 - report every failure and go on.
            self._fail(title, f"{type(error).__name__}: {error}")
            traceback.print_exc(limit=3)
        return False

    def _fail(self, title: str, reason: str) -> None:
        print(f"   FAILED: {reason}")
        self.failures.append(f"{title}: {reason}")


def check(condition: bool, message: str) -> None:
    """Raises (ending the current step as failed) unless ``condition`` holds."""
    if not condition:
        raise AssertionError(message)


def describe(request) -> str:
    """A one-line summary of a request without personal data."""
    pb = rc.stubs()
    content = request.content
    return (f"{request.id}  {pb.types.RequestStatus.Name(request.status)}  "
            f"{pb.types.Instrument.Name(content.instrument)}  "
            f"{content.issuing_authority.state or '??'} -> {content.requested_state or '??'}")


def main() -> int:
    parser = argparse.ArgumentParser(description="Rogatory demo")
    parser.add_argument("--intake", required=True, help="intake gRPC address host:port")
    parser.add_argument("--routing", required=True, help="routing gRPC address")
    parser.add_argument("--deadlines", required=True, help="deadlines gRPC address")
    parser.add_argument("--notification", required=True, help="notification gRPC address")
    parser.add_argument("--metrics-urls", required=True,
                        help="comma-separated metrics URLs (http://host:port/metrics)")
    parser.add_argument("--wait", type=float, default=30.0,
                        help="seconds to wait for the services to become SERVING")
    args = parser.parse_args()

    pb = rc.stubs()
    story = Story()
    services = {
        "intake": (args.intake, rc.INTAKE_SERVICE),
        "routing": (args.routing, rc.ROUTING_SERVICE),
        "deadlines": (args.deadlines, rc.DEADLINE_SERVICE),
        "notification": (args.notification, rc.NOTIFICATION_SERVICE),
    }

    def health_and_reflection() -> None:
        problems = []
        for name, (addr, full_name) in services.items():
            try:
                rc.wait_for_health(addr, full_name, "SERVING", timeout=args.wait)
            except TimeoutError:
                pass  # Reported just below, with the status seen.
            try:
                liveness = rc.health_check(addr, "")
                readiness = rc.health_check(addr, full_name)
                listed = rc.list_services(addr)
            except grpc.RpcError as error:
                problems.append(f"{name}: {error.code().name}")
                print(f"   {name:<13} {addr:<21} unreachable: {error.code().name}")
                continue
            print(f"   {name:<13} {addr:<21} server {liveness}, {full_name} {readiness}")
            print(f"   {'':<13} services: {', '.join(listed)}")
            if liveness != "SERVING" or readiness != "SERVING":
                problems.append(f"{name} is not SERVING")
            if full_name not in listed:
                problems.append(f"{name} does not list {full_name} through reflection")
        check(not problems, "; ".join(problems))

    story.step("Are the four services up? (gRPC health and reflection)", health_and_reflection)

    with rc.connect(args.intake, JUDGE) as channel:
        intake = pb.intake_grpc.IntakeServiceStub(channel)
        submitted = {}

        def submit() -> None:
            print(f"   Caller: {JUDGE.authority_id} ({JUDGE.state}), roles "
                  f"{','.join(JUDGE.roles)}")
            print("   An EIO to Germany, written in French: one suspect (made-up), fraud, "
                  "and a request for bank account information (EIO Art 26).")
            content = rc.example_eio_content()
            response = intake.SubmitRequest(
                pb.intake.SubmitRequestRequest(request_id=str(uuid.uuid4()), content=content),
                timeout=10.0)
            request = response.request
            submitted["request"], submitted["content"] = request, content
            print(f"   Accepted: {describe(request)}")
            for missing in request.missing_elements:
                print(f"   Missing element: {missing.field} ({missing.code})")
            check(bool(request.id), "no id returned")

        def read_back() -> None:
            check("request" in submitted, "nothing was submitted")
            request = intake.GetRequest(
                pb.intake.GetRequestRequest(id=submitted["request"].id), timeout=10.0).request
            same = request.content == submitted["content"]
            print(f"   {describe(request)}")
            print(f"   Submitted {request.create_time.ToJsonString()}, etag {request.etag}; "
                  f"{len(request.content.subjects)} subject(s), "
                  f"{len(request.content.offences)} offence(s), "
                  f"{len(request.content.measures)} measure(s); "
                  f"content as submitted: {'yes' if same else 'NO'}")
            check(same, "the stored content differs from what was submitted")

        def list_requests() -> None:
            response = intake.ListRequests(
                pb.intake.ListRequestsRequest(page_size=20, requested_state="DE"),
                timeout=10.0)
            print(f"   {len(response.requests)} request(s) to DE on the first page "
                  f"(BASIC view, newest first):")
            for request in response.requests:
                print(f"     {describe(request)}")
            if "request" in submitted:
                ids = {r.id for r in response.requests}
                check(submitted["request"].id in ids, "the demo request is not listed")

        def malformed() -> None:
            print("   No instrument, requested state 'germany', no source language, no "
                  "issuing authority, a subject without a family name:")
            try:
                intake.SubmitRequest(
                    pb.intake.SubmitRequestRequest(request_id=str(uuid.uuid4()),
                                                   content=rc.malformed_content()),
                    timeout=10.0)
            except grpc.RpcError as error:
                violations = rc.field_violations(error)
                print(f"   Refused: {error.code().name}, {len(violations)} field violation(s)")
                for field, description in violations:
                    print(f"     {field}: {description}")
                check(error.code() == grpc.StatusCode.INVALID_ARGUMENT,
                      f"expected INVALID_ARGUMENT, got {error.code().name}")
                missing = rc.missing_fields(violations, rc.MALFORMED_FIELDS)
                check(not missing, f"violations do not name {missing}")
                return
            raise AssertionError("the malformed request was accepted")

        story.step("A French investigating judge submits an EIO to Germany", submit)
        story.step("Reading it back (GetRequest)", read_back)
        story.step("Listing requests addressed to Germany (ListRequests)", list_requests)
        story.step("A malformed request is refused, naming every bad field", malformed)

    def metrics() -> None:
        urls = [url.strip() for url in args.metrics_urls.split(",") if url.strip()]
        saw_submit = False
        for url in urls:
            with urllib.request.urlopen(url, timeout=5.0) as response:
                text = response.read().decode()
            lines = [line for line in text.splitlines()
                     if line.startswith("grpc_server_handled_total")]
            print(f"   {url}")
            for line in lines or ["(no grpc_server_handled_total samples)"]:
                print(f"     {line}")
            saw_submit = saw_submit or any('grpc_method="SubmitRequest"' in l for l in lines)
        check(saw_submit, "no metrics page counts SubmitRequest")

    story.step("What the metrics say (grpc_server_handled_total)", metrics)

    print()
    if story.failures:
        print(f"Demo finished with {len(story.failures)} failed step(s):")
        for failure in story.failures:
            print(f"  - {failure}")
        return 1
    print("Demo finished: every step succeeded.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
